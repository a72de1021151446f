/* Zero-shot detection throughput: texts/s and tokens/s of each method on K
 * texts of N tokens, three ways side by side in one run:
 *   rows:      tm_zeroshot_score_ids, the room's path: each window through
 *              each model in one prompt-style pass returning every
 *              position's logits (tm_context_eval_rows), one text after
 *              another;
 *   positions: the same with one_position_at_a_time, the decode path the
 *              room used before (one tm_context_eval per position);
 *   decode batch: B texts at once through tm_context_eval_batch (one token
 *              of each of B sequences per pass, the engine's multi-sequence
 *              decode path), each row's distribution through the same
 *              tm_zeroshot_position_stats;
 *   packed:    tm_zeroshot_score_ids_many, the room's batch path: all K
 *              texts handed over at once, short ones packed into passes of
 *              up to 256 rows (tm_context_eval_rows_packed), so the weights
 *              are read once for several texts.
 * The window is the model's trained context (so that short texts can share
 * a pass; every text fits it).
 * Plus the forward pass alone (tm_context_eval of the text, last logits
 * only) as the floor. One JSON line per measurement on stdout, with wall
 * and process CPU seconds (read the CPU figures at --threads 1 on a shared
 * machine); nothing is asserted (speed is measured, never tested).
 *
 * usage: bench_zeroshot MODEL [PERFORMER] [--tokens N] [--texts K] [--threads T] [--batch B] [--methods LIST]
 *        LIST: comma-separated method names (default: all; binoculars needs PERFORMER) */
#include "tracemark/generator.h"
#include "tracemark/zeroshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU seconds of the process: on a shared machine wall time mostly measures
 * the other tenants; with --threads 1 CPU time is the cost of the work. */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int fail(const tm_error *err) {
    fprintf(stderr, "bench_zeroshot: %s\n", err->message);
    return 1;
}

static void report(const char *method, const char *path, const tm_model *model, int tokens, int texts, int threads,
                   int batch, double seconds, double cpu_seconds) {
    printf("{\"bench\":\"zeroshot\",\"method\":\"%s\",\"path\":\"%s\",\"model\":\"%s\",\"tokens\":%d,\"texts\":%d,"
           "\"threads\":%d,\"batch\":%d,\"seconds\":%.3f,\"texts_per_s\":%.3f,\"tokens_per_s\":%.1f,"
           "\"cpu_seconds\":%.3f,\"texts_per_cpu_s\":%.3f}\n",
           method, path, tm_model_get_config(model)->name, tokens, texts, threads, batch, seconds, texts / seconds,
           (double)texts * tokens / seconds, cpu_seconds, texts / cpu_seconds);
    fflush(stdout);
}

/* B texts at a time: prompt ids[0] of each, then one token of each per
 * tm_context_eval_batch pass; every row's facts through
 * tm_zeroshot_position_stats, then the method's score per text. */
static int decode_batch(tm_zeroshot_method method, const tm_model *model, const tm_model *performer,
                        const int32_t *ids, int tokens, int texts, int threads, int batch, double *seconds,
                        double *cpu_seconds) {
    tm_error err = {0};
    int32_t n_vocab = tm_model_get_config(model)->n_vocab;
    bool two = method == TM_ZEROSHOT_BINOCULARS;
    tm_context *scoring[TM_CONTEXT_BATCH_MAX] = {0}, *second[TM_CONTEXT_BATCH_MAX] = {0};
    for (int b = 0; b < batch; b++) {
        if (tm_context_create(&scoring[b], model, tokens, threads, &err) != TM_OK) return fail(&err);
        if (two && tm_context_create(&second[b], performer, tokens, threads, &err) != TM_OK) return fail(&err);
    }
    tm_zeroshot_position *positions = malloc(sizeof *positions * (size_t)batch * (size_t)(tokens - 1));
    int32_t *step = malloc(sizeof *step * (size_t)batch);
    const float *logits[TM_CONTEXT_BATCH_MAX], *logits2[TM_CONTEXT_BATCH_MAX];
    double start = tm_seconds_now(), cpu_start = cpu_now();
    for (int first = 0; first < texts; first += batch) {
        int n = texts - first < batch ? texts - first : batch;
        for (int b = 0; b < n; b++) {
            tm_context_reset(scoring[b]);
            if (two) tm_context_reset(second[b]);
        }
        for (int i = 0; i + 1 < tokens; i++) {
            for (int b = 0; b < n; b++) step[b] = ids[(size_t)(first + b) * (size_t)tokens + (size_t)i];
            if (tm_context_eval_batch(scoring, step, (size_t)n, logits, &err) != TM_OK) return fail(&err);
            if (two && tm_context_eval_batch(second, step, (size_t)n, logits2, &err) != TM_OK) return fail(&err);
            for (int b = 0; b < n; b++) {
                int32_t target = ids[(size_t)(first + b) * (size_t)tokens + (size_t)i + 1];
                if (tm_zeroshot_position_stats(logits[b], NULL, two ? logits2[b] : NULL, n_vocab, target,
                                               &positions[(size_t)b * (size_t)(tokens - 1) + (size_t)i], &err) != TM_OK)
                    return fail(&err);
            }
        }
        for (int b = 0; b < n; b++) {
            tm_zeroshot_score score;
            if (tm_zeroshot_score_positions(method, &positions[(size_t)b * (size_t)(tokens - 1)], (size_t)tokens - 1,
                                            &score, &err) != TM_OK)
                return fail(&err);
        }
    }
    *seconds = tm_seconds_now() - start;
    *cpu_seconds = cpu_now() - cpu_start;
    for (int b = 0; b < batch; b++) {
        tm_context_free(scoring[b]);
        tm_context_free(second[b]);
    }
    free(positions);
    free(step);
    return 0;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *performer_path = NULL, *methods = NULL;
    int tokens = 200, texts = 3, threads = 2, batch = 8;
    const char *usage = "usage: bench_zeroshot MODEL [PERFORMER] [--tokens N] [--texts K] [--threads T] [--batch B] "
                        "[--methods LIST]\n";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--texts") && i + 1 < argc) texts = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--methods") && i + 1 < argc) methods = argv[++i];
        else if (!model_path) model_path = argv[i];
        else if (!performer_path) performer_path = argv[i];
        else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!model_path || tokens < 2 || texts < 1 || threads < 1 || batch < 1 || batch > TM_CONTEXT_BATCH_MAX) {
        fputs(usage, stderr);
        return 2;
    }
    tm_error err = {0};
    tm_model *model = NULL, *performer = NULL;
    if (tm_model_load(&model, model_path, &err) != TM_OK) return fail(&err);
    if (performer_path && tm_model_load(&performer, performer_path, &err) != TM_OK) return fail(&err);
    if (tokens > tm_model_get_config(model)->context_length) tokens = tm_model_get_config(model)->context_length;
    /* Pseudo-random ids (BOS first), the same for every method and path. */
    int32_t *ids = malloc(sizeof *ids * (size_t)tokens * (size_t)texts);
    uint64_t state = 1;
    for (int t = 0; t < texts; t++)
        for (int i = 0; i < tokens; i++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            ids[t * tokens + i] =
                i == 0 ? 1 : (int32_t)(3 + (state >> 33) % (uint64_t)(tm_model_get_config(model)->n_vocab - 3));
        }
    tm_context *context = NULL;
    if (tm_context_create(&context, model, tokens, threads, &err) != TM_OK) return fail(&err);
    double t0 = tm_seconds_now(), c0 = cpu_now();
    for (int t = 0; t < texts; t++) {
        const float *logits;
        tm_context_reset(context);
        if (tm_context_eval(context, ids + t * tokens, (size_t)tokens, &logits, &err) != TM_OK) return fail(&err);
    }
    report("none", "forward pass only (last logits)", model, tokens, texts, threads, 1, tm_seconds_now() - t0,
           cpu_now() - c0);
    tm_context_free(context);
    for (int m = 0; m < TM_ZEROSHOT_METHOD_COUNT; m++) {
        const char *name = tm_zeroshot_method_name((tm_zeroshot_method)m);
        if (m == TM_ZEROSHOT_BINOCULARS && !performer) continue;
        if (methods) {
            const char *hit = strstr(methods, name);
            size_t len = strlen(name);
            if (!hit || (hit != methods && hit[-1] != ',') || (hit[len] && hit[len] != ',')) continue;
        }
        for (int path = 0; path < 2; path++) {
            tm_zeroshot_options o = {.method = (tm_zeroshot_method)m, .model = model, .performer = performer,
                                     .n_threads = threads, .one_position_at_a_time = path == 1};
            tm_zeroshot *z = NULL;
            if (tm_zeroshot_create(&z, &o, &err) != TM_OK) return fail(&err);
            double start = tm_seconds_now(), cpu_start = cpu_now();
            for (int t = 0; t < texts; t++) {
                tm_zeroshot_result r;
                if (tm_zeroshot_score_ids(z, ids + t * tokens, (size_t)tokens, &r, &err) != TM_OK) return fail(&err);
                tm_zeroshot_result_free(&r);
            }
            report(name, path == 0 ? "rows (all positions per pass, one text at a time)" : "one position at a time",
                   model, tokens, texts, threads, 1, tm_seconds_now() - start, cpu_now() - cpu_start);
            tm_zeroshot_free(z);
        }
        {
            tm_zeroshot_options o = {.method = (tm_zeroshot_method)m, .model = model, .performer = performer,
                                     .n_threads = threads};
            tm_zeroshot *z = NULL;
            if (tm_zeroshot_create(&z, &o, &err) != TM_OK) return fail(&err);
            const int32_t **many = malloc(sizeof *many * (size_t)texts);
            size_t *sizes = malloc(sizeof *sizes * (size_t)texts);
            tm_zeroshot_result *results = malloc(sizeof *results * (size_t)texts);
            tm_status *statuses = malloc(sizeof *statuses * (size_t)texts);
            for (int t = 0; t < texts; t++) many[t] = ids + t * tokens, sizes[t] = (size_t)tokens;
            double start = tm_seconds_now(), cpu_start = cpu_now();
            if (tm_zeroshot_score_ids_many(z, many, sizes, (size_t)texts, results, statuses, NULL, &err) != TM_OK)
                return fail(&err);
            double seconds = tm_seconds_now() - start, cpu_seconds = cpu_now() - cpu_start;
            for (int t = 0; t < texts; t++) {
                if (statuses[t] != TM_OK) {
                    fprintf(stderr, "bench_zeroshot: text %d failed\n", t);
                    return 1;
                }
                tm_zeroshot_result_free(&results[t]);
            }
            report(name, "packed (texts per pass, tm_zeroshot_score_ids_many)", model, tokens, texts, threads,
                   256 / (tokens - 1) > 0 ? 256 / (tokens - 1) : 1, seconds, cpu_seconds);
            free(many);
            free(sizes);
            free(results);
            free(statuses);
            tm_zeroshot_free(z);
        }
        double seconds = 0, cpu_seconds = 0;
        if (decode_batch((tm_zeroshot_method)m, model, performer, ids, tokens, texts, threads, batch, &seconds,
                         &cpu_seconds))
            return 1;
        report(name, "decode batch (texts per tm_context_eval_batch pass)", model, tokens, texts, threads, batch,
               seconds, cpu_seconds);
    }
    free(ids);
    tm_model_free(model);
    tm_model_free(performer);
    return 0;
}
