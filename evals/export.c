/* Exports of a run, rebuilt from its store alone: samples.jsonl (one line per
 * sample in id order, lm-evaluation-harness style, with the SHA-256 of its
 * prompt, document and target) and results.json (the kind's aggregates
 * under "results", with the task and model hashes, seed, version and
 * commit). Both are written atomically (temporary file, fsync, rename), and
 * neither holds a timing, a date or a machine name, so an interrupted and
 * resumed run exports the same bytes as an uninterrupted one. */
#include "tracemark/evals.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void append_json_string(tm_buffer *b, const char *text) {
    json_t *s = json_string(text);
    char *dumped = s ? json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    if (!dumped) b->failed = true;
    else tm_buffer_puts(b, dumped);
    free(dumped);
    json_decref(s);
}

/* Keys in sorted order, as every other JSON text of the run. */
static void sample_line(tm_buffer *b, const tm_eval_record *r) {
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)r->id);
    tm_buffer_puts(b, "{\"doc\":");
    tm_buffer_puts(b, r->input);
    tm_buffer_puts(b, ",\"doc_hash\":\"");
    tm_buffer_puts(b, r->document_sha256);
    tm_buffer_puts(b, "\",\"doc_id\":");
    tm_buffer_puts(b, id);
    tm_buffer_puts(b, ",\"group\":");
    append_json_string(b, r->group);
    tm_buffer_puts(b, ",\"output\":");
    tm_buffer_puts(b, r->output);
    tm_buffer_puts(b, ",\"prompt_hash\":\"");
    tm_buffer_puts(b, r->prompt_sha256);
    tm_buffer_puts(b, "\",\"scores\":");
    tm_buffer_puts(b, r->scores);
    tm_buffer_puts(b, ",\"target_hash\":\"");
    tm_buffer_puts(b, r->target_sha256);
    tm_buffer_puts(b, "\"}\n");
}

tm_status tm_eval_export(const char *run_dir, tm_error *err) {
    tm_eval_store *store = NULL;
    tm_eval_store_meta meta;
    tm_status status = tm_eval_store_open(&store, run_dir, &meta, err);
    if (status) return status;
    tm_eval_record *records = NULL;
    size_t n = 0;
    status = tm_eval_store_records(store, &records, &n, err);
    tm_eval_store_close(store);
    tm_eval_task task;
    memset(&task, 0, sizeof task);
    if (!status) {
        status = tm_eval_task_parse(&task, meta.task_path, meta.task_snapshot, strlen(meta.task_snapshot), false, err);
        if (status) tm_error_prefix(err, "%s/run.sqlite: re-reading the task snapshot", run_dir);
    }
    const tm_eval_runner *runner = status ? NULL : tm_eval_runner_for(task.kind);
    if (!status && !runner) status = tm_error_set(err, TM_ERR_UNSUPPORTED, "%s: no runner for kind %s", run_dir, meta.kind);
    char *aggregate = NULL;
    if (!status) status = runner->aggregate(&task, records, n, &aggregate, err);

    tm_buffer lines = {0};
    for (size_t i = 0; !status && i < n; i++) sample_line(&lines, &records[i]);
    if (!status && lines.failed) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    char path[TM_EVAL_PATH_MAX + 32];
    if (!status) {
        snprintf(path, sizeof path, "%s/samples.jsonl", run_dir);
        status = tm_write_file_atomic(path, lines.data ? lines.data : "", lines.size, 0644, err);
    }
    if (!status) {
        json_error_t jerr;
        json_t *results = json_loads(aggregate, 0, &jerr);
        json_t *root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:o}", "task", task.name,
                                 "kind", meta.kind, "task_sha256", meta.task_sha256, "model_sha256",
                                 meta.model_sha256, "seed", "", "tracemark_version", meta.version,
                                 "tracemark_commit", meta.commit, "n_samples", (json_int_t)meta.n_samples,
                                 "n_present", (json_int_t)n, "shard_count", (json_int_t)meta.shard_count,
                                 "complete", (int64_t)n == meta.n_samples, "results",
                                 results ? results : json_null());
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)meta.seed);
        /* The seed as a string: JSON readers lose integers above 2^53. */
        if (root) json_object_set_new(root, "seed", json_string(seed));
        char *text = root ? json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(1)) : NULL;
        json_decref(root);
        if (!text) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        else {
            size_t len = strlen(text);
            char *with_newline = malloc(len + 2);
            if (!with_newline) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            else {
                memcpy(with_newline, text, len);
                with_newline[len] = '\n';
                snprintf(path, sizeof path, "%s/results.json", run_dir);
                status = tm_write_file_atomic(path, with_newline, len + 1, 0644, err);
                free(with_newline);
            }
            free(text);
        }
    }
    free(lines.data);
    free(aggregate);
    for (size_t i = 0; i < n; i++) tm_eval_record_free(&records[i]);
    free(records);
    tm_eval_task_free(&task);
    tm_eval_store_meta_free(&meta);
    return status;
}
