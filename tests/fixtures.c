/* Implementation of the shared test helpers (see fixtures.h). */
#include "fixtures.h"

#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *format(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

char *tm_fixture(const char *relative) {
    const char *root = getenv("TRACEMARK_FIXTURES");
    if (root && *root) return format(root, relative);
    return format(TRACEMARK_SOURCE_DIR "/../shared", relative);
}

char *tm_test_scratch_dir(void) {
    const char *tmp = getenv("TMPDIR");
    char *templ = format(tmp && *tmp ? tmp : "/tmp", "tracemark-test-XXXXXX");
    if (!mkdtemp(templ)) {
        free(templ);
        return NULL;
    }
    return templ;
}

char *tm_test_path(const char *folder, const char *name) { return format(folder, name); }

char *tm_test_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t capacity = 1 << 16, used = 0;
    char *data = malloc(capacity);
    size_t n;
    while ((n = fread(data + used, 1, capacity - used - 1, f)) > 0) {
        used += n;
        if (capacity - used < 2) data = realloc(data, capacity *= 2);
    }
    fclose(f);
    data[used] = '\0';
    if (size) *size = used;
    return data;
}

int tm_test_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, size, f);
    return (fclose(f) == 0 && w == size) ? 0 : -1;
}

int tm_run_cli(const char *args, char **out, char **err) {
    char *dir = tm_test_scratch_dir();
    if (!dir) return -1;
    char *out_path = format(dir, "stdout"), *err_path = format(dir, "stderr");
    size_t n = strlen(args) + strlen(out_path) + strlen(err_path) + strlen(TRACEMARK_CLI) + 32;
    char *command = malloc(n);
    snprintf(command, n, "%s %s >%s 2>%s </dev/null", TRACEMARK_CLI, args, out_path, err_path);
    int status = system(command);
    int code = (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
    if (out) *out = tm_test_read_file(out_path, NULL);
    if (err) *err = tm_test_read_file(err_path, NULL);
    remove(out_path);
    remove(err_path);
    rmdir(dir);
    free(command);
    free(out_path);
    free(err_path);
    free(dir);
    return code;
}

tm_test_cli_result tm_test_cli(const char *format, ...) {
    char *root = tm_fixture(".");
    setenv("TRACEMARK_FIXTURES", root, 0);
    free(root);
    char args[16384];
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(args, sizeof args, format, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < sizeof args, "command line too long");
    tm_test_cli_result r = {0};
    r.code = tm_run_cli(args, &r.out, &r.err);
    cr_assert_not_null(r.out, "no stdout captured for: %s", args);
    cr_assert_not_null(r.err, "no stderr captured for: %s", args);
    return r;
}

void tm_test_cli_free(tm_test_cli_result *result) {
    free(result->out);
    free(result->err);
}

size_t tm_test_split_vocab_inputs(const char *raw, size_t size, char ***inputs, size_t **sizes) {
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t sep_size = strlen(sep), n = 0, capacity = 64, pos = 0;
    *inputs = malloc(capacity * sizeof **inputs);
    *sizes = malloc(capacity * sizeof **sizes);
    while (pos < size) {
        const char *next = memmem(raw + pos, size - pos, sep, sep_size);
        size_t end = next ? (size_t)(next - raw) : size;
        if (n == capacity) {
            capacity *= 2;
            *inputs = realloc(*inputs, capacity * sizeof **inputs);
            *sizes = realloc(*sizes, capacity * sizeof **sizes);
        }
        (*inputs)[n] = malloc(end - pos + 1);
        memcpy((*inputs)[n], raw + pos, end - pos);
        (*inputs)[n][end - pos] = '\0';
        (*sizes)[n] = end - pos;
        n++;
        if (!next) break;
        pos = end + sep_size;
    }
    return n;
}

tm_test_story tm_test_story_open(void) {
    tm_test_story m = {0};
    char *bin = tm_fixture("models/stories260K.bin"), *tok = tm_fixture("models/tok512.bin");
    tm_error err = {0};
    cr_assert_eq(tm_model_load(&m.model, bin, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_tokenizer(&m.tokenizer, m.model, tok, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_context_create(&m.context, m.model, 0, 1, &err), TM_OK, "%s", err.message);
    free(bin);
    free(tok);
    return m;
}

void tm_test_story_close(tm_test_story *m) {
    tm_context_free(m->context);
    tm_tokenizer_free(m->tokenizer);
    tm_model_free(m->model);
}
