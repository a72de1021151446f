/* Test helpers shared by every Criterion test: where fixtures live
 * ($TRACEMARK_FIXTURES, else ../shared beside the source tree), scratch
 * folders, and running the tracemark CLI with its output captured. */
#ifndef TRACEMARK_TEST_FIXTURES_H
#define TRACEMARK_TEST_FIXTURES_H

#include <stddef.h>

#include "tracemark/generator.h"

/* Path of a file under the fixtures root, e.g. "models/stories260K.bin".
 * Returns a heap string the caller frees. */
char *tm_fixture(const char *relative);
/* A fresh empty folder under $TMPDIR; heap string. */
char *tm_test_scratch_dir(void);
/* Join folder and name; heap string. */
char *tm_test_path(const char *folder, const char *name);
/* Run `tracemark ARGS` through /bin/sh; capture stdout and stderr into heap
 * strings (either pointer may be NULL). Returns the exit status, or -1. */
int tm_run_cli(const char *args, char **out, char **err);
/* The same with ARGS formatted printf-style, for the CLI tests: asserts that
 * both streams were captured. The CLI sees $TRACEMARK_FIXTURES set to the
 * fixtures root (unless already set), so its own lookups find what
 * tm_fixture finds. */
typedef struct {
    int code;
    char *out, *err;
} tm_test_cli_result;
tm_test_cli_result tm_test_cli(const char *format, ...) __attribute__((format(printf, 1, 2)));
void tm_test_cli_free(tm_test_cli_result *result);
/* Read a whole file into a heap buffer (NUL-terminated); NULL on failure. */
char *tm_test_read_file(const char *path, size_t *size);
/* Write bytes to a file; returns 0 on success. */
int tm_test_write_file(const char *path, const void *data, size_t size);

/* Split llama.cpp's tokenizer vectors as its test-tokenizer-0 does: inputs
 * are separated by "\n__ggml_vocab_test__\n"; text after the last separator,
 * if any, is one more input. Returns the count; each input is a heap copy. */
size_t tm_test_split_vocab_inputs(const char *raw, size_t size, char ***inputs, size_t **sizes);

/* Path of a file committed under tests/data/; heap string. */
char *tm_test_data_path(const char *name);

/* Compare a model with llama.cpp's logits in a llamaref `logits` JSONL file
 * (prompt ids, then each greedy step's id and full logits) on the prompt
 * "Once upon a time": the prompt's ids must equal llama.cpp's, the prompt
 * runs as one batch, then one token at a time following llama.cpp's choices.
 * Asserts that a greedy choice differs only where llama.cpp's top two are
 * closer than tie; returns the largest difference over every logit of every
 * step, and *steps (optional) the number of steps. The context's KV cache
 * is F32; the _kv form takes its type. */
double tm_test_llama_cpp_logit_difference(const tm_model *model, const char *reference_path, int32_t threads,
                                          double tie, int *steps);
double tm_test_llama_cpp_logit_difference_kv(const tm_model *model, const char *reference_path, int32_t threads,
                                             tm_kv_type kv, double tie, int *steps);

/* stories260K.bin with tok512.bin and a context of its trained length, 1 thread. */
typedef struct {
    tm_model *model;
    tm_tokenizer *tokenizer;
    tm_context *context;
} tm_test_story;
tm_test_story tm_test_story_open(void);
void tm_test_story_close(tm_test_story *story);

/* A random model of the given shape and type (tm_synth_write with
 * llama-2-tiny-random's vocabulary, 1 thread) written to a scratch folder
 * as file_name and loaded; the caller frees it. */
tm_model *tm_test_synth_model(tm_synth_shape shape, tm_ftype ftype, uint64_t seed, const char *file_name);

#endif
