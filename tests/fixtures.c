/* Implementation of the shared test helpers (see fixtures.h). */
#include "fixtures.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>

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

char *tm_test_data_path(const char *name) { return format(TRACEMARK_SOURCE_DIR "/tests/data", name); }

double tm_test_llama_cpp_logit_difference(const tm_model *model, const char *reference_path, int32_t threads,
                                          double tie, int *steps_out) {
    return tm_test_llama_cpp_logit_difference_kv(model, reference_path, threads, TM_KV_F32, tie, steps_out);
}

double tm_test_llama_cpp_logit_difference_kv(const tm_model *model, const char *reference_path, int32_t threads,
                                             tm_kv_type kv, double tie, int *steps_out) {
    size_t size;
    char *text = tm_test_read_file(reference_path, &size);
    cr_assert_not_null(text, "cannot read %s", reference_path);
    tm_tokenizer *tokenizer;
    tm_context *context;
    tm_error err = {0};
    cr_assert_eq(tm_model_tokenizer(&tokenizer, model, NULL, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_context_create_kv(&context, model, 64, threads, kv, &err), TM_OK, "%s", err.message);
    int32_t n_vocab = tm_model_get_config(model)->n_vocab, *ids = NULL;
    size_t n_ids = 0;
    cr_assert_eq(tm_tokenizer_encode(tokenizer, "Once upon a time", 16, true, &ids, &n_ids, &err), TM_OK);
    const float *logits = NULL;
    double worst = 0;
    int steps = 0;
    char *cursor = text;
    for (char *line = strtok_r(text, "\n", &cursor); line; line = strtok_r(NULL, "\n", &cursor)) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        cr_assert_not_null(j, "%s: %s", reference_path, jerr.text);
        json_t *prompt = json_object_get(j, "prompt_ids");
        if (prompt) {
            cr_assert_eq(json_integer_value(json_object_get(j, "n_vocab")), n_vocab);
            cr_assert_eq(json_array_size(prompt), n_ids);
            for (size_t i = 0; i < n_ids; i++) cr_assert_eq(ids[i], json_integer_value(json_array_get(prompt, i)));
            cr_assert_eq(tm_context_eval(context, ids, n_ids, &logits, &err), TM_OK, "%s", err.message);
        } else {
            cr_assert_not_null(logits, "%s: a step before the prompt", reference_path);
            json_t *all = json_object_get(j, "logits");
            cr_assert_eq(json_array_size(all), (size_t)n_vocab);
            for (int32_t v = 0; v < n_vocab; v++) {
                double d = fabs(logits[v] - json_number_value(json_array_get(all, (size_t)v)));
                if (d > worst) worst = d;
            }
            int32_t id = (int32_t)json_integer_value(json_object_get(j, "id")), best = 0;
            for (int32_t v = 1; v < n_vocab; v++)
                if (logits[v] > logits[best]) best = v;
            if (best != id)
                cr_assert_lt(fabs(logits[best] - logits[id]), tie, "step %d: chose %d, llama.cpp %d", steps, best, id);
            cr_assert_eq(tm_context_eval(context, &id, 1, &logits, &err), TM_OK, "%s", err.message);
            steps++;
        }
        json_decref(j);
    }
    free(ids);
    tm_context_free(context);
    tm_tokenizer_free(tokenizer);
    free(text);
    if (steps_out) *steps_out = steps;
    return worst;
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

tm_model *tm_test_synth_model(tm_synth_shape shape, tm_ftype ftype, uint64_t seed, const char *file_name) {
    char *dir = tm_test_scratch_dir(), *path = tm_test_path(dir, file_name);
    char *tokenizer = tm_fixture("models/llama-2-tiny-random.gguf");
    tm_synth_options o = {.tokenizer_path = tokenizer, .ftype = ftype, .seed = seed, .n_threads = 1, .shape = shape};
    tm_error err = {0};
    cr_assert_eq(tm_synth_write(path, &o, &err), TM_OK, "%s", err.message);
    tm_model *model = NULL;
    cr_assert_eq(tm_model_load(&model, path, &err), TM_OK, "%s", err.message);
    free(tokenizer);
    free(path);
    free(dir);
    return model;
}
