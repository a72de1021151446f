/* Tests that `tracemark tokenize --model` / `detokenize --model` take any
 * GGUF whose vocabulary the tokenizer reads, whatever its
 * general.architecture: a vocabulary-only GGUF rewritten here (in the test's
 * scratch folder, with the project's GGUF writer) from llama.cpp's
 * ggml-vocab-llama-spm.gguf to say `phi3`, an architecture the engine does
 * not run, gives the same ids as the original through --model and as
 * --tokenizer on the same file, and the ids llama.cpp wrote for the
 * original (its .inp/.out pair); a GGUF with no vocabulary at all is refused
 * with an error naming the file. */
#include <criterion/criterion.h>

#include "fixtures.h"
#include "tracemark/model.h"

#include "../model/gguf_writer.h"

#include <stdlib.h>
#include <string.h>

static bool drop_vocabulary(const char *key, void *user) {
    (void)user;
    return strncmp(key, "tokenizer.", 10) != 0;
}

/* A copy of the llama SPM vocabulary GGUF with general.architecture = arch,
 * and without any tokenizer.* key when !vocabulary. */
static char *vocab_gguf(const char *name, const char *arch, bool vocabulary) {
    char *source = tm_fixture("tokenizer-tests/ggml-vocab-llama-spm.gguf");
    char *dir = tm_test_scratch_dir();
    char *path = tm_test_path(dir, name);
    tm_error err = {0};
    tm_gguf *gguf = NULL;
    tm_gguf_writer *w = NULL;
    cr_assert_eq(tm_gguf_open(&gguf, source, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_gguf_tensor_count(gguf), 0, "the fixture is vocabulary-only");
    cr_assert_eq(tm_gguf_writer_create(&w, path, (uint32_t)tm_gguf_alignment(gguf), &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_gguf_writer_copy_metadata(w, gguf, vocabulary ? NULL : drop_vocabulary, NULL, &err), TM_OK, "%s",
                 err.message);
    cr_assert_eq(tm_gguf_writer_set_string(w, "general.architecture", arch, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_gguf_writer_begin_data(w, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_gguf_writer_finish(w, &err), TM_OK, "%s", err.message);
    tm_gguf_writer_free(w);
    tm_gguf_close(gguf);
    free(source);
    free(dir);
    return path;
}

/* The ids `tokenize` prints (one line, space-separated), as a string. */
static char *ids_of(const char *flag, const char *path, const char *text) {
    tm_test_cli_result r = tm_test_cli("tokenize --no-bos %s \"%s\" \"%s\"", flag, path, text);
    cr_assert_eq(r.code, 0, "tokenize %s %s: %s", flag, path, r.err);
    char *ids = strdup(r.out);
    char *nl = strchr(ids, '\n');
    if (nl) *nl = '\0';
    tm_test_cli_free(&r);
    return ids;
}

Test(tokenize_vocab_only, phi3_vocabulary_through_model) {
    char *phi3 = vocab_gguf("phi3-vocab.gguf", "phi3", true);
    char *source = tm_fixture("tokenizer-tests/ggml-vocab-llama-spm.gguf");
    const char *text = "Hello world, this is a phi3 vocabulary";
    char *by_model = ids_of("--model", phi3, text), *by_tokenizer = ids_of("--tokenizer", phi3, text),
         *original = ids_of("--model", source, text);
    cr_assert_str_eq(by_model, by_tokenizer);
    cr_assert_str_eq(by_model, original);
    cr_assert(strlen(by_model) > 10, "ids printed: '%s'", by_model);

    /* llama.cpp's own ids for the original's first test input (the .out file holds them). */
    size_t in_size = 0, out_size = 0;
    char *in_path = tm_fixture("tokenizer-tests/ggml-vocab-llama-spm.gguf.inp"),
         *out_path = tm_fixture("tokenizer-tests/ggml-vocab-llama-spm.gguf.out");
    char *inputs = tm_test_read_file(in_path, &in_size), *outputs = tm_test_read_file(out_path, &out_size);
    cr_assert(inputs && outputs);
    char **texts = NULL;
    size_t *sizes = NULL;
    size_t n = tm_test_split_vocab_inputs(inputs, in_size, &texts, &sizes);
    size_t checked = 0;
    char *line = outputs;
    for (size_t i = 0; i < n && line; i++) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        /* Inputs of letters and inner single spaces only: safe inside double quotes and through argv. */
        bool plain = sizes[i] > 0 && texts[i][0] != ' ' && texts[i][sizes[i] - 1] != ' ';
        for (size_t c = 0; plain && c < sizes[i]; c++)
            plain = (texts[i][c] >= 'a' && texts[i][c] <= 'z') || (texts[i][c] >= 'A' && texts[i][c] <= 'Z') ||
                    (texts[i][c] == ' ' && texts[i][c + 1] != ' ');
        if (plain && checked < 3) { /* texts safe inside double quotes */
            char *got = ids_of("--model", phi3, texts[i]);
            /* tokenize prints ids separated by one space; the .out lines open with one. */
            cr_assert_str_eq(got, line + (line[0] == ' '), "input %zu '%s'", i, texts[i]);
            free(got);
            checked++;
        }
        line = end ? end + 1 : NULL;
    }
    cr_assert(checked > 0, "no plain input among the llama.cpp vectors");
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(sizes);

    /* detokenize --model reads it too and gives the text back. */
    tm_test_cli_result r = tm_test_cli("detokenize --model \"%s\" %s", phi3, by_model);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, text), "detokenized '%s'", r.out);
    tm_test_cli_free(&r);
    free(in_path), free(out_path), free(inputs), free(outputs);
    free(by_model), free(by_tokenizer), free(original), free(phi3), free(source);
}

Test(tokenize_vocab_only, gguf_without_vocabulary_is_refused) {
    char *bare = vocab_gguf("no-vocab.gguf", "phi3", false);
    tm_test_cli_result r = tm_test_cli("tokenize --model \"%s\" Hello", bare);
    cr_assert_eq(r.code, 1, "exit %d, stderr %s", r.code, r.err);
    cr_assert(strstr(r.err, "tracemark: error: "), "%s", r.err);
    cr_assert(strstr(r.err, "no-vocab.gguf"), "the error names the file: %s", r.err);
    tm_test_cli_free(&r);
    free(bare);
}
