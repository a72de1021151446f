/* Many texts through one detector on several threads, the verdicts handed
 * back as JSON arrays: the batch path of the bindings, which would otherwise
 * pay a foreign call and a JSON decode per text. The batch starts its threads
 * and returns at once; the caller then takes the verdicts in input order, a
 * run at a time, while the threads go on with the texts after it, so that a
 * caller decoding one run (Python's json) overlaps the detection of the next.
 * Each element is exactly what tm_detection_json gives for that text (what
 * `detect --jsonl` prints, less the id), or {"error", "status", "code"} when
 * that text failed; one failure never stops the others. The threads are plain
 * pthreads pulling small runs of indices from a shared counter, so that this
 * works in libtracemark-detect, which links no OpenMP. */
#include "tracemark/detect.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { RUN_LENGTH = 16, MAX_THREADS = 1024 };

struct tm_detect_batch {
    const tm_detector *detector;
    const char *const *texts;
    const size_t *sizes;
    const char *const *prompts;
    double fpr;
    size_t n;
    atomic_size_t next; /* the first index no thread has claimed */
    atomic_bool stop;   /* set by tm_detect_batch_free: claim nothing more */
    char **encoded;     /* one JSON text per input, NULL where out of memory */
    bool *done;
    size_t ready;     /* every index below it is done (under lock) */
    size_t delivered; /* what tm_detect_batch_next has handed out */
    pthread_mutex_t lock;
    pthread_cond_t progress;
    pthread_t *threads;
    size_t n_threads;
};

static char *error_json(const tm_error *err, tm_status status) {
    json_t *root = json_pack("{s:s, s:s, s:i}", "error", err->message[0] ? err->message : tm_status_name(status),
                             "status", tm_status_name(status), "code", (int)status);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

static void detect_one(tm_detect_batch *b, size_t i) {
    tm_detection detection;
    tm_error err = {0};
    tm_status status = tm_detect_text(b->detector, b->texts[i], b->sizes[i], b->prompts ? b->prompts[i] : NULL,
                                      &detection, &err);
    b->encoded[i] = status == TM_OK ? tm_detection_json_text(&detection, b->fpr) : error_json(&err, status);
}

static void *worker(void *arg) {
    tm_detect_batch *b = arg;
    while (!atomic_load(&b->stop)) {
        size_t start = atomic_fetch_add(&b->next, RUN_LENGTH);
        if (start >= b->n) break;
        size_t stop = b->n - start < RUN_LENGTH ? b->n : start + RUN_LENGTH;
        for (size_t i = start; i < stop; i++) detect_one(b, i);
        pthread_mutex_lock(&b->lock);
        for (size_t i = start; i < stop; i++) b->done[i] = true;
        while (b->ready < b->n && b->done[b->ready]) b->ready++;
        pthread_cond_broadcast(&b->progress);
        pthread_mutex_unlock(&b->lock);
    }
    return NULL;
}

tm_status tm_detect_batch_start(tm_detect_batch **out, const tm_detector *detector, size_t n,
                                const char *const *texts, const size_t *sizes, const char *const *prompts, double fpr,
                                size_t threads, tm_error *err) {
    if (!out) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_detect_batch_start: no place for the batch");
    *out = NULL;
    if (!detector || (n > 0 && (!texts || !sizes)))
        return tm_error_set(err, TM_ERR_ARGUMENT, "tm_detect_batch_start: a detector, texts and sizes are needed");
    if (!(fpr > 0 && fpr < 1)) return tm_error_set(err, TM_ERR_ARGUMENT, "fpr must lie in (0, 1), got %g", fpr);
    for (size_t i = 0; i < n; i++)
        if (!texts[i] && sizes[i] > 0) return tm_error_set(err, TM_ERR_ARGUMENT, "text %zu is NULL", i);
    if (threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? (size_t)cores : 1;
    }
    size_t runs = (n + RUN_LENGTH - 1) / RUN_LENGTH;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > runs) threads = runs;

    tm_detect_batch *b = calloc(1, sizeof *b);
    if (!b) return tm_error_set(err, TM_ERR_NOMEM, "out of memory starting a batch of %zu texts", n);
    *b = (tm_detect_batch){.detector = detector, .texts = texts, .sizes = sizes, .prompts = prompts, .fpr = fpr,
                           .n = n};
    atomic_init(&b->next, 0);
    atomic_init(&b->stop, false);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->progress, NULL);
    b->encoded = calloc(n ? n : 1, sizeof *b->encoded);
    b->done = calloc(n ? n : 1, sizeof *b->done);
    b->threads = calloc(threads ? threads : 1, sizeof *b->threads);
    if (!b->encoded || !b->done || !b->threads) {
        tm_detect_batch_free(b);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory starting a batch of %zu texts", n);
    }
    for (; b->n_threads < threads; b->n_threads++)
        if (pthread_create(&b->threads[b->n_threads], NULL, worker, b) != 0) break;
    if (b->n_threads == 0 && n > 0) { /* no thread could start: detect here, now */
        worker(b);
    }
    *out = b;
    return TM_OK;
}

/* The JSON array of encoded[from, upto). */
static tm_status join_array(char *const *encoded, size_t from, size_t upto, char **out, tm_error *err) {
    size_t total = 3; /* "[", "]" and the terminating NUL */
    for (size_t i = from; i < upto; i++) {
        if (!encoded[i]) return tm_error_set(err, TM_ERR_NOMEM, "out of memory encoding verdict %zu", i);
        if (!tm_add_size(total, strlen(encoded[i]) + 1, &total))
            return tm_error_set(err, TM_ERR_NOMEM, "the verdicts are too large to encode");
    }
    char *text = malloc(total), *p = text;
    if (!text) return tm_error_set(err, TM_ERR_NOMEM, "out of memory joining %zu verdicts", upto - from);
    *p++ = '[';
    for (size_t i = from; i < upto; i++) {
        if (i > from) *p++ = ',';
        size_t len = strlen(encoded[i]);
        memcpy(p, encoded[i], len);
        p += len;
    }
    *p++ = ']';
    *p = '\0';
    *out = text;
    return TM_OK;
}

tm_status tm_detect_batch_next(tm_detect_batch *b, size_t count, char **out, tm_error *err) {
    if (!out) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_detect_batch_next: no place for the verdicts");
    *out = NULL;
    if (!b) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_detect_batch_next: no batch");
    size_t from = b->delivered, upto = b->n - from < count ? b->n : from + count;
    pthread_mutex_lock(&b->lock);
    while (b->ready < upto) pthread_cond_wait(&b->progress, &b->lock);
    pthread_mutex_unlock(&b->lock);
    tm_status status = join_array(b->encoded, from, upto, out, err);
    if (status != TM_OK) return status;
    for (size_t i = from; i < upto; i++) {
        free(b->encoded[i]);
        b->encoded[i] = NULL;
    }
    b->delivered = upto;
    return TM_OK;
}

size_t tm_detect_batch_remaining(const tm_detect_batch *b) { return b ? b->n - b->delivered : 0; }

void tm_detect_batch_free(tm_detect_batch *b) {
    if (!b) return;
    atomic_store(&b->stop, true);
    for (size_t t = 0; t < b->n_threads; t++) pthread_join(b->threads[t], NULL);
    if (b->encoded)
        for (size_t i = 0; i < b->n; i++) free(b->encoded[i]);
    free(b->encoded);
    free(b->done);
    free(b->threads);
    pthread_cond_destroy(&b->progress);
    pthread_mutex_destroy(&b->lock);
    free(b);
}
