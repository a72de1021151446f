/* The task runner: dispatches a task to its kind's runner, creates or
 * resumes the run store, hands the shard's missing samples to worker
 * threads (each with its own inference context, so a sample's result never
 * depends on which thread ran it or in what order), stores each completed
 * sample in its own transaction, and merges shard stores. Resuming checks
 * that the store belongs to the same task bytes and model; merging refuses
 * stores of other tasks. It never prints: progress goes to a callback. */
#include "tracemark/evals.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef TRACEMARK_VERSION_STRING
#define TRACEMARK_VERSION_STRING "0.1.0"
#endif
#include "tracemark_commit.h" /* TRACEMARK_COMMIT, written at every build by cmake/commit_header.cmake */

const char *tm_eval_version(void) { return TRACEMARK_VERSION_STRING; }
const char *tm_eval_commit(void) { return TRACEMARK_COMMIT; }

const tm_eval_runner *tm_eval_runner_for(tm_eval_kind kind) {
    switch (kind) {
    case TM_EVAL_KIND_WATERMARK: return &tm_eval_watermark_runner;
    case TM_EVAL_KIND_TRUTHFULQA_MC: return &tm_eval_truthfulqa_mc_runner;
    case TM_EVAL_KIND_HALUEVAL_QA: return &tm_eval_halueval_qa_runner;
    case TM_EVAL_KIND_HALUEVAL_GENERAL: return &tm_eval_halueval_general_runner;
    case TM_EVAL_KIND_TRUTHFULQA_GEN: return &tm_eval_truthfulqa_gen_runner;
    case TM_EVAL_KIND_SELFCHECK: return &tm_eval_selfcheck_runner;
    case TM_EVAL_KIND_ZERO_SHOT: return &tm_eval_zeroshot_runner;
    default: return NULL;
    }
}

/* "Linux 6.1.0 x86_64, <cpu model>, 2 cores": what a reader needs to judge timings. */
static void describe_machine(char *out, size_t size) {
    struct utsname u;
    char cpu[160] = "unknown cpu";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
                cpu[strcspn(cpu, "\n")] = '\0';
                break;
            }
        fclose(f);
    }
    if (uname(&u) == 0)
        snprintf(out, size, "%s %s %s, %s, %ld cores", u.sysname, u.release, u.machine, cpu,
                 sysconf(_SC_NPROCESSORS_ONLN));
    else snprintf(out, size, "%s", cpu);
}

/* ---- workers ------------------------------------------------------------------- */

typedef struct {
    const tm_eval_runner *runner;
    void *state;
    tm_eval_store *store;
    const int64_t *pending;
    size_t n_pending, next;
    int64_t done, total;
    pthread_mutex_t lock;
    bool failed;
    tm_error error;
    const tm_eval_run_options *options;
} shared_run;

static void *worker_main(void *arg) {
    shared_run *s = arg;
    void *worker = NULL;
    tm_error err = {0};
    tm_status status = s->runner->worker_create(s->state, &worker, &err);
    while (!status) {
        pthread_mutex_lock(&s->lock);
        bool stop = s->failed || s->next == s->n_pending;
        int64_t id = stop ? -1 : s->pending[s->next++];
        pthread_mutex_unlock(&s->lock);
        if (stop) break;
        tm_eval_record record;
        memset(&record, 0, sizeof record);
        double start = tm_seconds_now();
        status = s->runner->run_sample(s->state, worker, id, &record, &err);
        record.id = id;
        record.seconds = tm_seconds_now() - start;
        if (!status) {
            pthread_mutex_lock(&s->lock);
            status = tm_eval_store_put(s->store, &record, &err);
            if (!status) {
                s->done++;
                if (s->options->progress) s->options->progress(s->options->user, s->done, s->total);
            }
            pthread_mutex_unlock(&s->lock);
        } else {
            tm_error_prefix(&err, "sample %lld", (long long)id);
        }
        tm_eval_record_free(&record);
    }
    if (worker) s->runner->worker_free(worker);
    if (status) {
        pthread_mutex_lock(&s->lock);
        if (!s->failed) s->error = err;
        s->failed = true;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

static tm_status check_same_task(const tm_eval_store_meta *meta, const char *task_sha, const char *model_sha,
                                 const char *where, tm_error *err) {
    if (strcmp(meta->task_sha256, task_sha))
        return tm_error_set(err, TM_ERR_ARGUMENT,
                            "%s: the store belongs to another task (task SHA-256 %.16s..., this task %.16s...)", where,
                            meta->task_sha256, task_sha);
    if (model_sha && strcmp(meta->model_sha256, model_sha))
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: the store was run with another model (SHA-256 %.16s..., now %.16s...)",
                            where, meta->model_sha256, model_sha);
    return TM_OK;
}

tm_status tm_eval_run(const tm_eval_task *task, const tm_eval_run_options *options, tm_error *err) {
    const tm_eval_runner *runner = tm_eval_runner_for(task->kind);
    if (!runner) return tm_error_set(err, TM_ERR_UNSUPPORTED, "%s: kind: no runner for this task kind", task->path);
    int32_t shard_count = options->shard_count > 0 ? options->shard_count : 1;
    int32_t shard_index = options->shard_count > 0 ? options->shard_index : 0;
    if (shard_index < 0 || shard_index >= shard_count)
        return tm_error_set(err, TM_ERR_ARGUMENT, "shard %d/%d: the index must lie in [0, %d)", (int)shard_index,
                            (int)shard_count, (int)shard_count);
    int32_t threads = options->threads > 0 ? options->threads : 1;
    if (options->samples_run) *options->samples_run = 0;

    /* Everything that can fail on the task's account fails here, before the
     * run folder is touched. */
    void *state = NULL;
    tm_status status = runner->prepare(task, &state, err);
    if (status) return status;
    const char *model_sha = runner->model_sha256(state);
    int64_t n_samples = runner->sample_count(task);

    char store_path[TM_EVAL_PATH_MAX + 16];
    snprintf(store_path, sizeof store_path, "%s/run.sqlite", options->run_dir);
    tm_eval_store *store = NULL;
    tm_eval_store_meta meta;
    memset(&meta, 0, sizeof meta);
    if (options->resume && tm_file_exists(store_path)) {
        status = tm_eval_store_open(&store, options->run_dir, &meta, err);
        if (!status) status = check_same_task(&meta, task->sha256, model_sha, store_path, err);
        if (!status && (meta.shard_index != shard_index || meta.shard_count != shard_count))
            status = tm_error_set(err, TM_ERR_ARGUMENT, "%s: the store holds shard %d/%d, not %d/%d", store_path,
                                  (int)meta.shard_index, (int)meta.shard_count, (int)shard_index, (int)shard_count);
    } else {
        if (mkdir(options->run_dir, 0755) != 0 && errno != EEXIST)
            status = tm_error_set(err, TM_ERR_IO, "%s: cannot create the run folder: %s", options->run_dir,
                                  strerror(errno));
        if (!status) {
            snprintf(meta.task_sha256, sizeof meta.task_sha256, "%s", task->sha256);
            snprintf(meta.model_sha256, sizeof meta.model_sha256, "%s", model_sha);
            meta.task_snapshot = task->snapshot;
            char *absolute = realpath(task->path, NULL);
            snprintf(meta.task_path, sizeof meta.task_path, "%s", absolute ? absolute : task->path);
            free(absolute);
            snprintf(meta.kind, sizeof meta.kind, "%s", tm_eval_kind_name(task->kind));
            meta.seed = task->seed;
            meta.n_samples = n_samples;
            meta.shard_index = shard_index;
            meta.shard_count = shard_count;
            snprintf(meta.version, sizeof meta.version, "%s", tm_eval_version());
            snprintf(meta.commit, sizeof meta.commit, "%s", tm_eval_commit());
            describe_machine(meta.machine, sizeof meta.machine);
            status = tm_eval_store_create(&store, options->run_dir, &meta, err);
            meta.task_snapshot = NULL; /* borrowed from the task */
        }
    }

    int64_t *pending = NULL;
    size_t n_pending = 0;
    if (!status) {
        pending = tm_alloc_array((size_t)(n_samples / shard_count + 1), sizeof *pending, err);
        if (!pending) status = TM_ERR_NOMEM;
        for (int64_t id = shard_index; !status && id < n_samples; id += shard_count)
            if (!tm_eval_store_has(store, id)) pending[n_pending++] = id;
    }
    if (!status && n_pending > 0) {
        shared_run s = {.runner = runner, .state = state, .store = store, .pending = pending,
                        .n_pending = n_pending, .options = options};
        s.total = (int64_t)n_pending;
        pthread_mutex_init(&s.lock, NULL);
        if ((size_t)threads > n_pending) threads = (int32_t)n_pending;
        pthread_t *ids = calloc((size_t)threads, sizeof *ids);
        int started = 0;
        if (!ids) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        for (int t = 0; !status && t < threads; t++, started++)
            if (pthread_create(&ids[t], NULL, worker_main, &s) != 0) {
                pthread_mutex_lock(&s.lock);
                s.failed = true;
                tm_error_set(&s.error, TM_ERR_NOMEM, "cannot start a worker thread");
                pthread_mutex_unlock(&s.lock);
                break;
            }
        for (int t = 0; t < started; t++) pthread_join(ids[t], NULL);
        free(ids);
        pthread_mutex_destroy(&s.lock);
        if (options->samples_run) *options->samples_run = s.done;
        if (!status && s.failed) {
            if (err) *err = s.error;
            status = s.error.code ? s.error.code : TM_ERR_IO;
        }
    }
    free(pending);
    tm_eval_store_close(store);
    tm_eval_store_meta_free(&meta);
    runner->release(state);
    if (!status) status = tm_eval_export(options->run_dir, err);
    return status;
}

tm_status tm_eval_merge(const char *const *run_dirs, size_t n_run_dirs, const char *out_dir, tm_error *err) {
    if (n_run_dirs == 0) return tm_error_set(err, TM_ERR_ARGUMENT, "merge: no run folders given");
    tm_eval_store_meta first;
    tm_eval_store *store = NULL;
    tm_status status = tm_eval_store_open(&store, run_dirs[0], &first, err);
    if (status) return status;
    tm_eval_store_close(store);
    /* Check every store before writing anything. */
    for (size_t i = 1; !status && i < n_run_dirs; i++) {
        tm_eval_store_meta meta;
        status = tm_eval_store_open(&store, run_dirs[i], &meta, err);
        if (status) break;
        tm_eval_store_close(store);
        status = check_same_task(&meta, first.task_sha256, first.model_sha256, run_dirs[i], err);
        tm_eval_store_meta_free(&meta);
    }
    if (!status && mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        status = tm_error_set(err, TM_ERR_IO, "%s: cannot create: %s", out_dir, strerror(errno));
    tm_eval_store *out = NULL;
    if (!status) {
        tm_eval_store_meta meta = first;
        meta.shard_index = 0;
        meta.shard_count = 1;
        status = tm_eval_store_create(&out, out_dir, &meta, err);
    }
    for (size_t i = 0; !status && i < n_run_dirs; i++) {
        tm_eval_store_meta meta;
        status = tm_eval_store_open(&store, run_dirs[i], &meta, err);
        if (status) break;
        tm_eval_store_meta_free(&meta);
        tm_eval_record *records = NULL;
        size_t n = 0;
        status = tm_eval_store_records(store, &records, &n, err);
        for (size_t k = 0; !status && k < n; k++) status = tm_eval_store_put(out, &records[k], err);
        for (size_t k = 0; k < n; k++) tm_eval_record_free(&records[k]);
        free(records);
        tm_eval_store_close(store);
        if (status) tm_error_prefix(err, "%s", run_dirs[i]);
    }
    tm_eval_store_close(out);
    tm_eval_store_meta_free(&first);
    if (status && out) {
        /* A merge that failed half-way (a sample stored twice with different
         * contents) leaves no store behind. */
        const char *suffixes[] = {"", "-wal", "-shm"};
        for (int i = 0; i < 3; i++) {
            char path[TM_EVAL_PATH_MAX + 32];
            snprintf(path, sizeof path, "%s/run.sqlite%s", out_dir, suffixes[i]);
            unlink(path);
        }
    }
    if (!status) status = tm_eval_export(out_dir, err);
    return status;
}
