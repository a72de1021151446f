/* libFuzzer harness: evaluation task YAML (evals/task.c, every task kind:
 * watermark, truthfulqa_mc/gen, halueval_qa/general, selfcheck), parsed from
 * memory as if it were configs/tasks/fuzz.yaml in the source tree, so that
 * relative scheme paths (../schemes/NAME.yaml) resolve to the real scheme
 * configs. The first byte says whether the files a task names (models, data)
 * are checked too, as `tracemark eval` does, or skipped, as re-reading a
 * run store's snapshot does; the rest is the file. A task that parses must
 * keep its counts within the schema's limits. Seeds: tests/fuzz/corpus/
 * task_yaml (configs/tasks). */
#include "fuzz_common.h"
#include "tracemark/evals.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    static tm_eval_task task; /* large (paths, scheme configs): not on the stack */
    tm_error err = {0};
    bool check_files = data[0] & 1;
    const char *path = TRACEMARK_SOURCE_DIR "/configs/tasks/fuzz.yaml";
    if (tm_eval_task_parse(&task, path, (const char *)data + 1, size - 1, check_files, &err) != TM_OK) {
        tm_eval_task_free(&task);
        return 0;
    }
    if (task.n_schemes > TM_EVAL_MAX_SCHEMES || task.n_key_files > TM_EVAL_MAX_KEYS ||
        task.n_lengths > TM_EVAL_MAX_LENGTHS || task.n_attacks > TM_EVAL_MAX_ATTACKS || task.n_fprs > TM_EVAL_MAX_FPRS ||
        task.snapshot_size != size - 1 || strlen(task.sha256) != TM_SHA256_HEX_SIZE - 1)
        abort();
    (void)tm_eval_kind_name(task.kind);
    tm_eval_task_free(&task);
    return 0;
}
