/* End-to-end tests of the tracemark command: each test runs the built binary
 * through /bin/sh (tm_run_cli) and checks its exit status, stdout and stderr
 * against outside references where they exist (llama2.c's run.c text and
 * llama.cpp's token ids in ../shared/reference, the SHA-256 sums in the
 * models README, llama.cpp's tokenizer vectors), and against the CLI's own
 * contract otherwise: exit 0 on success, 1 when the command ran and failed
 * (with "tracemark: error: <what>: <where>" on stderr), 2 for a bad command line. */
#include "fixtures.h"
#include "tracemark/core.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ======================================================================== */
/* Helpers                                                                  */
/* ======================================================================== */

/* Fixture paths, single-quoted for /bin/sh. */
typedef struct {
    char bin[4200], tok[4200], gguf[4200], tiny[4200], vocab[4200];
} fixtures;

static void quote(char *out, size_t size, const char *relative) {
    char *path = tm_fixture(relative);
    cr_assert_null(strchr(path, '\''), "fixture path with a quote: %s", path);
    snprintf(out, size, "'%s'", path);
    free(path);
}

static fixtures paths(void) {
    fixtures f;
    quote(f.bin, sizeof f.bin, "models/stories260K.bin");
    quote(f.tok, sizeof f.tok, "models/tok512.bin");
    quote(f.gguf, sizeof f.gguf, "models/stories260K.gguf");
    quote(f.tiny, sizeof f.tiny, "models/llama-2-tiny-random.gguf");
    quote(f.vocab, sizeof f.vocab, "tokenizer-tests/ggml-vocab-llama-spm.gguf");
    return f;
}

static char *read_fixture(const char *relative, size_t *size) {
    char *path = tm_fixture(relative);
    char *data = tm_test_read_file(path, size);
    cr_assert_not_null(data, "cannot read %s", path);
    free(path);
    return data;
}

static json_t *parse_json(const char *text) {
    json_error_t jerr;
    json_t *value = json_loads(text, 0, &jerr);
    cr_assert_not_null(value, "stdout is not JSON (%s): %s", jerr.text, text);
    return value;
}

/* The numbers of a JSON array of integers. */
static size_t json_ids(const json_t *array, int64_t *ids, size_t capacity) {
    cr_assert(json_is_array(array), "not an array");
    size_t n = json_array_size(array);
    cr_assert_leq(n, capacity);
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_array_get(array, i);
        cr_assert(json_is_integer(item), "element %zu is not an integer", i);
        ids[i] = json_integer_value(item);
    }
    return n;
}

static void assert_same_ids(const json_t *got, const json_t *expected, size_t count, const char *what) {
    cr_assert(json_is_array(got) && json_is_array(expected), "%s: not arrays", what);
    cr_assert_geq(json_array_size(expected), count, "%s: reference too short", what);
    cr_assert_eq(json_array_size(got), count, "%s: %zu ids, expected %zu", what, json_array_size(got), count);
    for (size_t i = 0; i < count; i++)
        cr_assert_eq(json_integer_value(json_array_get(got, i)), json_integer_value(json_array_get(expected, i)),
                     "%s: id %zu is %lld, reference %lld", what, i, json_integer_value(json_array_get(got, i)),
                     json_integer_value(json_array_get(expected, i)));
}

/* llama.cpp's greedy reference for stories260K.gguf, "Once upon a time":
 * the header line's prompt_ids and the id of each step, as JSON arrays. */
static void llama_cpp_greedy64(json_t **prompt_ids, json_t **ids) {
    size_t size;
    char *text = read_fixture("reference/stories260K.gguf.llamacpp.greedy64.jsonl", &size);
    *ids = json_array();
    *prompt_ids = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *object = parse_json(line);
        if (!*prompt_ids) {
            *prompt_ids = json_incref(json_object_get(object, "prompt_ids"));
        } else {
            cr_assert_eq(json_integer_value(json_object_get(object, "step")), (json_int_t)json_array_size(*ids));
            json_array_append(*ids, json_object_get(object, "id"));
        }
        json_decref(object);
    }
    cr_assert_not_null(*prompt_ids);
    cr_assert_eq(json_array_size(*ids), 64);
    free(text);
}

/* SHA-256 of a model file as the models README lists it. */
static void readme_sha256(const char *file, char hex[65]) {
    size_t size;
    char *readme = read_fixture("models/README.md", &size);
    char cell[128];
    snprintf(cell, sizeof cell, "| `%s` |", file);
    char *row = strstr(readme, cell);
    cr_assert_not_null(row, "README has no row for %s", file);
    /* | `file` | bytes | sha256 | what | */
    char *p = row + strlen(cell);
    p = strchr(p, '|');
    cr_assert_not_null(p);
    p++;
    while (*p == ' ') p++;
    cr_assert_eq(strspn(p, "0123456789abcdef"), 64, "no SHA-256 in the README row of %s", file);
    memcpy(hex, p, 64);
    hex[64] = '\0';
    free(readme);
}

/* Bytes made printable for a failure message: \xNN for anything outside ASCII's printable range. */
static const char *escaped(const char *bytes) {
    static char out[1024];
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)bytes; *p && n + 5 < sizeof out; p++)
        n += (size_t)snprintf(out + n, sizeof out - n, (*p >= 0x20 && *p < 0x7f) ? "%c" : "\\x%02x", *p);
    out[n] = '\0';
    return out;
}

static void assert_usage_error(const tm_test_cli_result *r, const char *needle) {
    cr_assert_eq(r->code, 2, "exit %d, expected 2 (usage); stderr: %s", r->code, r->err);
    cr_assert_str_empty(r->out, "a usage error prints nothing on stdout: %s", r->out);
    cr_assert_not_null(strstr(r->err, needle), "stderr lacks \"%s\": %s", needle, r->err);
}

static void assert_failure(const tm_test_cli_result *r, const char *needle) {
    cr_assert_eq(r->code, 1, "exit %d, expected 1; stdout: %s stderr: %s", r->code, r->out, r->err);
    cr_assert(strncmp(r->err, "tracemark: error: ", 18) == 0, "stderr does not start with \"tracemark: error: \": %s",
              r->err);
    cr_assert_not_null(strstr(r->err, needle), "stderr lacks \"%s\": %s", needle, r->err);
}

/* ======================================================================== */
/* generate                                                                 */
/* ======================================================================== */

Test(cli_generate, greedy_llama2c_matches_run_c_byte_for_byte) {
    fixtures f = paths();
    tm_test_cli_result r = tm_test_cli("generate --model %s --tokenizer %s --prompt '' --temperature 0 --max-tokens 256", f.bin, f.tok);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    size_t size;
    char *expected = read_fixture("reference/stories260K.runc.greedy256.txt", &size);
    cr_assert_eq(strlen(r.out), size, "stdout has %zu bytes, run.c printed %zu:\n%s", strlen(r.out), size, r.out);
    cr_assert(memcmp(r.out, expected, size) == 0, "stdout differs from run.c:\n%s", r.out);
    cr_assert_str_empty(r.err, "nothing on stderr: %s", r.err);
    free(expected);
    tm_test_cli_free(&r);
}

Test(cli_generate, greedy_gguf_json_matches_llama_cpp) {
    fixtures f = paths();
    json_t *prompt_ids, *ids;
    llama_cpp_greedy64(&prompt_ids, &ids);
    tm_test_cli_result r =
        tm_test_cli("generate --model %s --prompt 'Once upon a time' --temperature 0 --max-tokens 64 --json", f.gguf);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_assert_eq(strchr(r.out, '\n'), r.out + strlen(r.out) - 1, "one JSON object on one line: %s", r.out);
    json_t *root = parse_json(r.out);
    assert_same_ids(json_object_get(root, "prompt_ids"), prompt_ids, 5, "prompt_ids");
    assert_same_ids(json_object_get(root, "ids"), ids, 64, "ids");
    cr_assert_str_eq(json_string_value(json_object_get(root, "prompt")), "Once upon a time");
    cr_assert_not_null(strstr(json_string_value(json_object_get(root, "model")), "stories260K.gguf"));
    cr_assert_str_eq(json_string_value(json_object_get(root, "stop_reason")), "max_tokens");
    const json_t *text = json_object_get(root, "text");
    cr_assert(json_is_string(text));
    size_t text_size = json_string_length(text);
    cr_assert_gt(text_size, 0);
    cr_assert(tm_utf8_valid(json_string_value(text), text_size));
    /* The greedy continuation of llama.cpp's ids starts ", there was a little girl named Lily." */
    cr_assert(strncmp(json_string_value(text), ", there was a little girl named Lily.", 37) == 0, "text: %s",
              json_string_value(text));
    const json_t *timing = json_object_get(root, "timing");
    cr_assert(json_is_object(timing), "no timing object");
    const char *fields[] = {"prompt_seconds", "decode_seconds", "prompt_tokens_per_second", "decode_tokens_per_second"};
    for (size_t i = 0; i < 4; i++) {
        const json_t *value = json_object_get(timing, fields[i]);
        cr_assert(json_is_number(value), "timing.%s missing", fields[i]);
        cr_assert_gt(json_number_value(value), 0, "timing.%s = %g", fields[i], json_number_value(value));
    }

    /* Streamed to a pipe, the same run prints the prompt and exactly that text. */
    tm_test_cli_result plain = tm_test_cli("generate --model %s --prompt 'Once upon a time' --temperature 0 --max-tokens 64", f.gguf);
    cr_assert_eq(plain.code, 0, "%s", plain.err);
    cr_assert(strncmp(plain.out, "Once upon a time", 16) == 0);
    cr_assert_str_eq(plain.out + 16, json_string_value(text));
    tm_test_cli_free(&plain);
    json_decref(root);
    json_decref(prompt_ids);
    json_decref(ids);
    tm_test_cli_free(&r);
}

Test(cli_generate, greedy_gguf_from_bos_matches_llama_cpp_and_run_c) {
    /* The GGUF says context 128 but the model was trained at 512: --ctx 512
     * lets 256 tokens through, and they are llama.cpp's ids and run.c's text. */
    fixtures f = paths();
    size_t size;
    char *reference = read_fixture("reference/stories260K.gguf.llamacpp.bos-greedy256.json", &size);
    json_t *expected = parse_json(reference);
    char *text = read_fixture("reference/stories260K.runc.greedy256.txt", &size);
    tm_test_cli_result r = tm_test_cli("generate --model %s --prompt '' --temperature 0 --max-tokens 256 --ctx 512 --json", f.gguf);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    json_t *root = parse_json(r.out);
    assert_same_ids(json_object_get(root, "prompt_ids"), json_object_get(expected, "prompt_ids"), 1, "prompt_ids");
    assert_same_ids(json_object_get(root, "ids"), json_object_get(expected, "greedy_ids"), 256, "ids");
    cr_assert_str_eq(json_string_value(json_object_get(root, "text")), text);
    json_decref(root);
    json_decref(expected);
    free(text);
    free(reference);
    tm_test_cli_free(&r);
}

Test(cli_generate, seeded_sampling_is_deterministic) {
    fixtures f = paths();
    const char *common = "--prompt 'Once upon a time' --temperature 1.0 --max-tokens 64";
    tm_test_cli_result a = tm_test_cli("generate --model %s --tokenizer %s %s --seed 7", f.bin, f.tok, common);
    tm_test_cli_result b = tm_test_cli("generate --model %s --tokenizer %s %s --seed 7", f.bin, f.tok, common);
    tm_test_cli_result c = tm_test_cli("generate --model %s --tokenizer %s %s --seed 8", f.bin, f.tok, common);
    cr_assert_eq(a.code, 0, "%s", a.err);
    cr_assert_eq(b.code, 0, "%s", b.err);
    cr_assert_eq(c.code, 0, "%s", c.err);
    cr_assert(strncmp(a.out, "Once upon a time", 16) == 0);
    cr_assert_gt(strlen(a.out), 16);
    cr_assert_str_eq(a.out, b.out, "the same seed gave different text");
    cr_assert_str_neq(a.out, c.out, "seeds 7 and 8 gave the same text: %s", a.out);

    /* The same with --json, and the JSON text is what the stream printed. */
    tm_test_cli_result j = tm_test_cli("generate --model %s --tokenizer %s %s --seed 7 --json", f.bin, f.tok, common);
    cr_assert_eq(j.code, 0, "%s", j.err);
    json_t *root = parse_json(j.out);
    cr_assert_str_eq(a.out + 16, json_string_value(json_object_get(root, "text")));
    /* Sampling at temperature 1 is not greedy: it leaves run.c's greedy path. */
    size_t size;
    char *greedy = read_fixture("reference/stories260K.runc.greedy256.txt", &size);
    cr_assert(strncmp(a.out, greedy, strlen(a.out)) != 0, "seeded sampling reproduced the greedy text");
    free(greedy);
    json_decref(root);
    tm_test_cli_free(&j);
    tm_test_cli_free(&a);
    tm_test_cli_free(&b);
    tm_test_cli_free(&c);
}

Test(cli_generate, hot_sampling_stays_valid_utf8_and_streams_what_json_says) {
    /* Temperature 2 reaches byte-fallback tokens; whatever comes out must be
     * valid UTF-8, and the streamed text must equal the JSON text, with or
     * without a stop string holding text back. */
    fixtures f = paths();
    for (int seed = 1; seed <= 4; seed++) {
        const char *stops[] = {"", "--stop the --stop '.'"};
        for (int s = 0; s < 2; s++) {
            tm_test_cli_result j = tm_test_cli("generate --model %s --tokenizer %s --prompt 'Once' --temperature 2 --max-tokens 96 "
                               "--seed %d %s --json",
                               f.bin, f.tok, seed, stops[s]);
            cr_assert_eq(j.code, 0, "seed %d: exit %d: %s", seed, j.code, j.err);
            json_t *root = parse_json(j.out);
            const char *text = json_string_value(json_object_get(root, "text"));
            cr_assert_not_null(text);
            cr_assert(tm_utf8_valid(text, strlen(text)));
            int64_t ids[128];
            size_t n = json_ids(json_object_get(root, "ids"), ids, 128);
            for (size_t i = 0; i < n; i++) cr_assert(ids[i] >= 0 && ids[i] < 512, "id %lld", (long long)ids[i]);
            const char *reason = json_string_value(json_object_get(root, "stop_reason"));
            cr_assert_not_null(reason);
            /* With stop strings, none may survive in the text, however generation ended. */
            if (s == 1)
                cr_assert(!strstr(text, "the") && !strchr(text, '.'), "seed %d (%s): text holds a stop string: %s",
                          seed, reason, text);
            tm_test_cli_result p = tm_test_cli("generate --model %s --tokenizer %s --prompt 'Once' --temperature 2 --max-tokens 96 "
                               "--seed %d %s",
                               f.bin, f.tok, seed, stops[s]);
            cr_assert_eq(p.code, 0, "%s", p.err);
            cr_assert(strncmp(p.out, "Once", 4) == 0);
            cr_assert(tm_utf8_valid(p.out, strlen(p.out)));
            cr_assert_str_eq(p.out + 4, text, "seed %d: streamed text differs from the JSON text", seed);
            tm_test_cli_free(&p);
            json_decref(root);
            tm_test_cli_free(&j);
        }
    }
}

Test(cli_generate, stop_string_cuts_the_text) {
    fixtures f = paths();
    size_t size;
    char *greedy = read_fixture("reference/stories260K.runc.greedy256.txt", &size);
    const char *lily = strstr(greedy, "Lily");
    cr_assert_not_null(lily);
    size_t cut = (size_t)(lily - greedy);
    cr_assert_gt(cut, 0);

    tm_test_cli_result r = tm_test_cli("generate --model %s --tokenizer %s --prompt '' --temperature 0 --max-tokens 256 --stop Lily",
                       f.bin, f.tok);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_eq(strlen(r.out), cut, "stdout: \"%s\", expected the %zu bytes before \"Lily\"", r.out, cut);
    cr_assert(strncmp(r.out, greedy, cut) == 0, "stdout: %s", r.out);
    tm_test_cli_free(&r);

    /* Two stop strings: the earliest occurrence wins, whatever the order. */
    const char *park = strstr(greedy, "park");
    cr_assert_not_null(park);
    cr_assert_gt(park, lily);
    r = tm_test_cli("generate --model %s --tokenizer %s --prompt '' --temperature 0 --max-tokens 256 --stop park --stop Lily "
            "--json",
            f.bin, f.tok);
    cr_assert_eq(r.code, 0, "%s", r.err);
    json_t *root = parse_json(r.out);
    const char *text = json_string_value(json_object_get(root, "text"));
    cr_assert_eq(strlen(text), cut, "text: %s", text);
    cr_assert(strncmp(text, greedy, cut) == 0);
    cr_assert_str_eq(json_string_value(json_object_get(root, "stop_reason")), "stop_string");
    json_decref(root);
    tm_test_cli_free(&r);

    /* A stop string that never occurs changes nothing. */
    r = tm_test_cli("generate --model %s --tokenizer %s --prompt '' --temperature 0 --max-tokens 256 --stop zebra", f.bin,
            f.tok);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, greedy);
    tm_test_cli_free(&r);
    free(greedy);
}

Test(cli_generate, small_context_stops_with_context_full) {
    /* 5 prompt tokens in a context of 16: positions 5..15 take 11 generated
     * tokens, and the 12th is sampled from the last logits without needing a
     * position of its own. They are llama.cpp's first 12 greedy ids. */
    fixtures f = paths();
    json_t *prompt_ids, *ids;
    llama_cpp_greedy64(&prompt_ids, &ids);
    tm_test_cli_result r = tm_test_cli("generate --model %s --prompt 'Once upon a time' --temperature 0 --max-tokens 100 --ctx 16 --json",
                       f.gguf);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    json_t *root = parse_json(r.out);
    cr_assert_str_eq(json_string_value(json_object_get(root, "stop_reason")), "context_full");
    assert_same_ids(json_object_get(root, "ids"), ids, 16 - 5 + 1, "ids");
    json_decref(root);
    tm_test_cli_free(&r);

    /* A prompt that does not fit at all is an error that says what to do. */
    r = tm_test_cli("generate --model %s --prompt 'Once upon a time' --ctx 4", f.gguf);
    assert_failure(&r, "raise --ctx");
    cr_expect_str_empty(r.out, "a failed run prints no text on stdout, got: \"%s\"", escaped(r.out));
    tm_test_cli_free(&r);
    json_decref(prompt_ids);
    json_decref(ids);
}

/* ======================================================================== */
/* model info                                                                */
/* ======================================================================== */

static void check_info(const char *fixture, const char *file, const char *format, int64_t context, bool tied,
                       int64_t parameters, int64_t tensors) {
    char quoted[4200];
    quote(quoted, sizeof quoted, fixture);
    tm_test_cli_result r = tm_test_cli("model info --json %s", quoted);
    cr_assert_eq(r.code, 0, "%s", r.err);
    json_t *root = parse_json(r.out);
    char sha[65];
    readme_sha256(file, sha);
    cr_assert_str_eq(json_string_value(json_object_get(root, "sha256")), sha, "%s: sha256 differs from the README", file);
    cr_assert_str_eq(json_string_value(json_object_get(root, "format")), format);
    cr_assert_str_eq(json_string_value(json_object_get(root, "architecture")), "llama");
    const json_t *d = json_object_get(root, "dimensions");
    const struct { const char *key; int64_t value; } dims[] = {
        {"n_vocab", 512}, {"dim", 64}, {"hidden_dim", 172}, {"n_layers", 5}, {"n_heads", 8}, {"n_kv_heads", 4},
        {"head_dim", 8}, {"context_length", context}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        cr_assert_eq(json_integer_value(json_object_get(d, dims[i].key)), dims[i].value, "%s: %s", file, dims[i].key);
    cr_assert_eq(json_is_true(json_object_get(root, "tied_classifier")), tied);
    cr_assert_eq(json_integer_value(json_object_get(root, "parameters")), parameters);
    cr_assert_float_eq(json_number_value(json_object_get(root, "norm_eps")), 1e-5, 1e-9);
    cr_assert_float_eq(json_number_value(json_object_get(root, "rope_freq_base")), 10000.0, 1e-6);
    const json_t *types = json_object_get(root, "tensor_types");
    cr_assert_eq(json_object_size(types), 1, "all F32");
    cr_assert_eq(json_integer_value(json_object_get(types, "F32")), tensors);
    /* The checkpoint's tokenizer is found beside it; the GGUF carries its own. */
    const json_t *tokenizer = json_object_get(root, "tokenizer");
    cr_assert(json_is_object(tokenizer), "%s: no tokenizer", file);
    cr_assert_str_eq(json_string_value(json_object_get(tokenizer, "kind")), "llama-spm");
    cr_assert_eq(json_integer_value(json_object_get(tokenizer, "size")), 512);
    cr_assert_eq(json_integer_value(json_object_get(tokenizer, "bos")), 1);
    cr_assert_eq(json_integer_value(json_object_get(tokenizer, "eos")), 2);
    json_decref(root);
    tm_test_cli_free(&r);

    /* The text form says the same. */
    r = tm_test_cli("model info %s", quoted);
    cr_assert_eq(r.code, 0, "%s", r.err);
    char line[128];
    snprintf(line, sizeof line, "parameters:     %lld\n", (long long)parameters);
    cr_assert_not_null(strstr(r.out, line), "%s", r.out);
    snprintf(line, sizeof line, "sha256:         %s\n", sha);
    cr_assert_not_null(strstr(r.out, line), "%s", r.out);
    snprintf(line, sizeof line, "context:        %lld tokens\n", (long long)context);
    cr_assert_not_null(strstr(r.out, line), "%s", r.out);
    tm_test_cli_free(&r);
}

Test(cli_model, info_stories260K_bin) {
    /* 260032 = 512*64 + 5*(64 + 64*64 + 2*64*32 + 64*64 + 64 + 3*64*172) + 64; 2 + 9*5 tensors (tied). */
    check_info("models/stories260K.bin", "stories260K.bin", "llama2.c", 512, true, 260032, 47);
}

Test(cli_model, info_stories260K_gguf) {
    /* Plus the separate 512x64 output.weight. */
    check_info("models/stories260K.gguf", "stories260K.gguf", "gguf", 128, false, 260032 + 512 * 64, 48);
}

Test(cli_model, info_tiny_random_and_lone_checkpoint) {
    fixtures f = paths();
    tm_test_cli_result r = tm_test_cli("model info --json %s", f.tiny);
    cr_assert_eq(r.code, 0, "%s", r.err);
    json_t *root = parse_json(r.out);
    char sha[65];
    readme_sha256("llama-2-tiny-random.gguf", sha);
    cr_assert_str_eq(json_string_value(json_object_get(root, "sha256")), sha);
    cr_assert_eq(json_integer_value(json_object_get(root, "gguf_version")), 3);
    const json_t *types = json_object_get(root, "tensor_types");
    cr_assert_gt(json_integer_value(json_object_get(types, "F16")), 0, "README: F16 tensors");
    cr_assert_gt(json_integer_value(json_object_get(types, "F32")), 0, "README: F32 norms");
    cr_assert_eq(json_integer_value(json_object_get(types, "F16")) + json_integer_value(json_object_get(types, "F32")),
                 12);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(root, "tokenizer"), "size")), 32000);
    json_decref(root);
    tm_test_cli_free(&r);

    /* A checkpoint with no tokenizer beside it still has info; its tokenizer is null. */
    char *dir = tm_test_scratch_dir();
    char *link = tm_test_path(dir, "lone.bin"), *bin = tm_fixture("models/stories260K.bin");
    cr_assert_eq(symlink(bin, link), 0);
    r = tm_test_cli("model info --json '%s'", link);
    cr_assert_eq(r.code, 0, "%s", r.err);
    root = parse_json(r.out);
    cr_assert(json_is_null(json_object_get(root, "tokenizer")));
    cr_assert_eq(json_integer_value(json_object_get(root, "parameters")), 260032);
    json_decref(root);
    tm_test_cli_free(&r);
    r = tm_test_cli("model info '%s'", link);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "pass --tokenizer"), "%s", r.out);
    tm_test_cli_free(&r);
    unlink(link);
    rmdir(dir);
    free(bin);
    free(link);
    free(dir);
}

Test(cli_model, info_errors) {
    tm_test_cli_result r = tm_test_cli("model info --json /nonexistent/model.gguf");
    assert_failure(&r, "/nonexistent/model.gguf");
    tm_test_cli_free(&r);
    r = tm_test_cli("model info");
    assert_usage_error(&r, "--help");
    tm_test_cli_free(&r);
    r = tm_test_cli("model frobnicate");
    assert_usage_error(&r, "frobnicate");
    tm_test_cli_free(&r);
    r = tm_test_cli("model");
    cr_assert_eq(r.code, 2, "%s", r.err);
    tm_test_cli_free(&r);
    fixtures f = paths();
    r = tm_test_cli("model info --tokenizer %s %s", f.vocab, f.gguf);
    assert_failure(&r, "32000");
    tm_test_cli_free(&r);
}

/* ======================================================================== */
/* tokenize / detokenize                                                    */
/* ======================================================================== */

Test(cli_tokenize, ids_pieces_and_back) {
    fixtures f = paths();
    tm_test_cli_result r = tm_test_cli("tokenize --tokenizer %s 'Once upon a time'", f.tok);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "1 403 407 261 378\n");
    tm_test_cli_free(&r);

    r = tm_test_cli("tokenize --tokenizer %s --no-bos 'Once upon a time'", f.tok);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "403 407 261 378\n");
    tm_test_cli_free(&r);

    /* The GGUF's own tokenizer gives llama.cpp's prompt ids. */
    json_t *prompt_ids, *ids;
    llama_cpp_greedy64(&prompt_ids, &ids);
    r = tm_test_cli("tokenize --model %s 'Once upon a time'", f.gguf);
    cr_assert_eq(r.code, 0, "%s", r.err);
    char expected[128] = "";
    for (size_t i = 0; i < json_array_size(prompt_ids); i++)
        snprintf(expected + strlen(expected), sizeof expected - strlen(expected), i ? " %lld" : "%lld",
                 json_integer_value(json_array_get(prompt_ids, i)));
    strcat(expected, "\n");
    cr_assert_str_eq(r.out, expected);
    tm_test_cli_free(&r);
    json_decref(prompt_ids);
    json_decref(ids);

    /* --json: each id with its vocabulary piece (U+2581 for a space). */
    r = tm_test_cli("tokenize --tokenizer %s --json 'Once upon a time'", f.tok);
    cr_assert_eq(r.code, 0, "%s", r.err);
    json_t *array = parse_json(r.out);
    cr_assert(json_is_array(array));
    const struct { int id; const char *piece; } want[] = {
        {1, "<s>"}, {403, "\xe2\x96\x81Once"}, {407, "\xe2\x96\x81upon"}, {261, "\xe2\x96\x81" "a"},
        {378, "\xe2\x96\x81time"}};
    cr_assert_eq(json_array_size(array), 5);
    for (size_t i = 0; i < 5; i++) {
        const json_t *item = json_array_get(array, i);
        cr_assert_eq(json_integer_value(json_object_get(item, "id")), want[i].id);
        cr_assert_str_eq(json_string_value(json_object_get(item, "piece")), want[i].piece, "piece %zu", i);
    }
    json_decref(array);
    tm_test_cli_free(&r);

    r = tm_test_cli("detokenize --tokenizer %s 403 407 261 378", f.tok);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "Once upon a time\n");
    tm_test_cli_free(&r);
    r = tm_test_cli("detokenize --tokenizer %s 1 403 407 261 378 2", f.tok);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "Once upon a time\n", "BOS and EOS print nothing");
    tm_test_cli_free(&r);
}

Test(cli_tokenize, files_and_stdin) {
    fixtures f = paths();
    char *dir = tm_test_scratch_dir();
    char *text = tm_test_path(dir, "text.txt"), *list = tm_test_path(dir, "ids.txt");
    cr_assert_eq(tm_test_write_file(text, "Once upon a time", 16), 0);
    cr_assert_eq(tm_test_write_file(list, "403 407\n261,378\n", 16), 0);
    tm_test_cli_result r = tm_test_cli("tokenize --tokenizer %s --file '%s'", f.tok, text);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "1 403 407 261 378\n");
    tm_test_cli_free(&r);
    r = tm_test_cli("detokenize --tokenizer %s --file '%s'", f.tok, list);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "Once upon a time\n");
    tm_test_cli_free(&r);
    /* tm_run_cli feeds /dev/null: empty input, just BOS / an empty line. */
    r = tm_test_cli("tokenize --tokenizer %s --file -", f.tok);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "1\n");
    tm_test_cli_free(&r);
    r = tm_test_cli("detokenize --tokenizer %s", f.tok);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "\n");
    tm_test_cli_free(&r);
    unlink(text);
    unlink(list);
    rmdir(dir);
    free(text);
    free(list);
    free(dir);
}

Test(cli_tokenize, llama_cpp_vectors_through_the_cli, .timeout = 300) {
    /* llama.cpp's test-tokenizer-0 vectors for the Llama SPM vocabulary,
     * tokenized without BOS from a file. */
    fixtures f = paths();
    size_t size;
    char *inputs = read_fixture("tokenizer-tests/ggml-vocab-llama-spm.gguf.inp", &size);
    char *outputs = read_fixture("tokenizer-tests/ggml-vocab-llama-spm.gguf.out", &size);
    char *dir = tm_test_scratch_dir();
    char *file = tm_test_path(dir, "input.txt");
    const char *separator = "\n__ggml_vocab_test__\n";
    char *input = inputs, *output = outputs;
    size_t cases = 0;
    for (char *end; (end = strstr(input, separator)) != NULL; input = end + strlen(separator), cases++) {
        char *line_end = strchr(output, '\n');
        cr_assert_not_null(line_end, "fewer outputs than inputs");
        *line_end = '\0';
        cr_assert_eq(tm_test_write_file(file, input, (size_t)(end - input)), 0);
        tm_test_cli_result r = tm_test_cli("tokenize --tokenizer %s --no-bos --file '%s'", f.vocab, file);
        cr_assert_eq(r.code, 0, "case %zu: %s", cases, r.err);
        /* Compare as numbers: the .out lines start with a space. */
        char *got = r.out, *want = output;
        for (;;) {
            char *got_end, *want_end;
            long g = strtol(got, &got_end, 10), w = strtol(want, &want_end, 10);
            bool got_more = got_end != got, want_more = want_end != want;
            cr_assert_eq(got_more, want_more, "case %zu (\"%.*s\"): got \"%s\", llama.cpp \"%s\"", cases,
                         (int)(end - input), input, r.out, output);
            if (!got_more) break;
            cr_assert_eq(g, w, "case %zu (\"%.*s\"): got \"%s\", llama.cpp \"%s\"", cases, (int)(end - input), input,
                         r.out, output);
            got = got_end;
            want = want_end;
        }
        tm_test_cli_free(&r);
        output = line_end + 1;
    }
    cr_assert_eq(cases, 46);
    unlink(file);
    rmdir(dir);
    free(file);
    free(dir);
    free(inputs);
    free(outputs);
}

Test(cli_tokenize, errors) {
    fixtures f = paths();
    tm_test_cli_result r = tm_test_cli("detokenize --tokenizer %s 403 512", f.tok);
    assert_failure(&r, "512");
    tm_test_cli_free(&r);
    r = tm_test_cli("detokenize --tokenizer %s 403 x7", f.tok);
    assert_failure(&r, "x7");
    tm_test_cli_free(&r);
    r = tm_test_cli("tokenize --tokenizer %s", f.tok);
    assert_usage_error(&r, "--help");
    tm_test_cli_free(&r);
    r = tm_test_cli("tokenize --tokenizer /nonexistent/tok.bin hello");
    assert_failure(&r, "/nonexistent/tok.bin");
    tm_test_cli_free(&r);
    r = tm_test_cli("tokenize --tokenizer %s --bogus hello", f.tok);
    assert_usage_error(&r, "--help");
    tm_test_cli_free(&r);
}

/* ======================================================================== */
/* Errors and help                                                           */
/* ======================================================================== */

Test(cli_errors, command_line_mistakes_exit_2) {
    fixtures f = paths();
    tm_test_cli_result r = tm_test_cli("frobnicate");
    assert_usage_error(&r, "frobnicate");
    tm_test_cli_free(&r);
    r = tm_test_cli("%s", "");
    cr_assert_eq(r.code, 2, "no command at all");
    cr_assert_not_null(strstr(r.err, "usage:"), "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("generate --model %s --prompt hi --bogus", f.gguf);
    assert_usage_error(&r, "--help");
    cr_assert_not_null(strstr(r.err, "--bogus"), "names the flag: %s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("generate --model %s", f.gguf);
    assert_usage_error(&r, "--prompt");
    tm_test_cli_free(&r);
    r = tm_test_cli("generate --model %s --prompt hi --max-tokens abc", f.gguf);
    assert_usage_error(&r, "--max-tokens");
    cr_assert_not_null(strstr(r.err, "abc"), "%s", r.err);
    tm_test_cli_free(&r);
    const char *bad_values[] = {"--max-tokens -1", "--max-tokens 12x", "--temperature nan", "--temperature -1",
                                "--top-p 1.5",     "--seed -3",        "--ctx 0",           "--threads abc",
                                "--max-tokens"};
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        r = tm_test_cli("generate --model %s --prompt hi %s", f.gguf, bad_values[i]);
        cr_assert_eq(r.code, 2, "%s: exit %d: %s", bad_values[i], r.code, r.err);
        cr_assert_str_empty(r.out, "%s: %s", bad_values[i], r.out);
        tm_test_cli_free(&r);
    }
    r = tm_test_cli("generate --model %s --prompt hi --prompt-file /dev/null", f.gguf);
    assert_usage_error(&r, "not both");
    tm_test_cli_free(&r);
    r = tm_test_cli("generate --model %s --prompt hi extra", f.gguf);
    assert_usage_error(&r, "extra");
    tm_test_cli_free(&r);
}

Test(cli_errors, failures_exit_1_and_say_where) {
    tm_test_cli_result r = tm_test_cli("generate --model /nonexistent/dir/model.gguf --prompt hi");
    assert_failure(&r, "/nonexistent/dir/model.gguf");
    cr_assert_str_empty(r.out);
    tm_test_cli_free(&r);

    /* A llama2.c checkpoint with nothing beside it needs --tokenizer. */
    char *dir = tm_test_scratch_dir();
    char *link = tm_test_path(dir, "model.bin"), *bin = tm_fixture("models/stories260K.bin");
    cr_assert_eq(symlink(bin, link), 0);
    r = tm_test_cli("generate --model '%s' --prompt hi", link);
    assert_failure(&r, "--tokenizer");
    cr_assert_not_null(strstr(r.err, link), "names the model: %s", r.err);
    cr_assert_str_empty(r.out);
    tm_test_cli_free(&r);

    /* A malformed model file. */
    char *broken = tm_test_path(dir, "broken.bin");
    cr_assert_eq(tm_test_write_file(broken, "not a model", 11), 0);
    r = tm_test_cli("generate --model '%s' --prompt hi", broken);
    assert_failure(&r, broken);
    cr_assert_not_null(strstr(r.err, "too short"), "%s", r.err);
    tm_test_cli_free(&r);

    /* A tokenizer that does not fit the model. */
    fixtures f = paths();
    r = tm_test_cli("generate --model %s --tokenizer %s --prompt hi", f.gguf, f.vocab);
    assert_failure(&r, "32000");
    tm_test_cli_free(&r);

    /* A prompt file with a NUL byte, and a missing prompt file. */
    char *nul = tm_test_path(dir, "nul.txt");
    cr_assert_eq(tm_test_write_file(nul, "Once\0upon", 9), 0);
    r = tm_test_cli("generate --model %s --prompt-file '%s'", f.gguf, nul);
    assert_failure(&r, nul);
    tm_test_cli_free(&r);
    r = tm_test_cli("generate --model %s --prompt-file /nonexistent/prompt.txt", f.gguf);
    assert_failure(&r, "/nonexistent/prompt.txt");
    tm_test_cli_free(&r);

    unlink(nul);
    unlink(broken);
    unlink(link);
    rmdir(dir);
    free(nul);
    free(broken);
    free(link);
    free(bin);
    free(dir);
}

Test(cli_errors, invalid_utf8_prompt_file) {
    fixtures f = paths();
    char *dir = tm_test_scratch_dir();
    char *file = tm_test_path(dir, "prompt.txt");
    cr_assert_eq(tm_test_write_file(file, "\xff\xfeOnce upon a time", 18), 0);
    tm_test_cli_result r = tm_test_cli("generate --model %s --prompt-file '%s' --max-tokens 8", f.gguf, file);
    assert_failure(&r, "UTF-8");
    /* "<what>: <where>": the message names the prompt file it could not use. */
    cr_expect_not_null(strstr(r.err, file), "stderr does not name the prompt file %s: %s", file, r.err);
    /* Nothing reaches stdout: not the invalid bytes, not a stray newline. */
    cr_expect_str_empty(r.out, "a failed run printed %zu bytes on stdout: \"%s\"", strlen(r.out), escaped(r.out));
    tm_test_cli_free(&r);
    r = tm_test_cli("generate --model %s --prompt-file '%s' --max-tokens 8 --json", f.gguf, file);
    assert_failure(&r, "UTF-8");
    cr_assert_str_empty(r.out);
    tm_test_cli_free(&r);
    unlink(file);
    rmdir(dir);
    free(file);
    free(dir);
}

Test(cli_errors, help_on_every_command) {
    const char *commands[] = {"--help", "-h", "help", "generate --help", "generate -h", "model --help",
                              "model info --help", "tokenize --help", "detokenize --help"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        tm_test_cli_result r = tm_test_cli("%s", commands[i]);
        cr_assert_eq(r.code, 0, "tracemark %s: exit %d: %s", commands[i], r.code, r.err);
        cr_assert(strncmp(r.out, "usage:", 6) == 0, "tracemark %s: stdout does not start with usage: %s", commands[i],
                  r.out);
        cr_assert_str_empty(r.err, "tracemark %s: %s", commands[i], r.err);
        tm_test_cli_free(&r);
    }
    /* The top-level help lists every command. */
    tm_test_cli_result r = tm_test_cli("--help");
    const char *names[] = {"generate", "model", "tokenize", "detokenize"};
    for (size_t i = 0; i < 4; i++) cr_assert_not_null(strstr(r.out, names[i]), "%s missing from --help", names[i]);
    tm_test_cli_free(&r);
    r = tm_test_cli("--version");
    cr_assert_eq(r.code, 0);
    cr_assert(strncmp(r.out, "tracemark ", 10) == 0, "%s", r.out);
    tm_test_cli_free(&r);
}

/* ---- generate through a watermark ------------------------------------------- */

static char *new_key(const char *dir) {
    char *key = tm_test_path(dir, "k.key");
    tm_test_cli_result r = tm_test_cli("keygen --out '%s'", key);
    cr_assert_eq(r.code, 0, "keygen: %s", r.err);
    tm_test_cli_free(&r);
    return key;
}

Test(cli_watermark, same_key_seed_and_prompt_give_the_same_tokens_and_the_json_names_the_key) {
    fixtures f = paths();
    char *dir = tm_test_scratch_dir();
    char *key = new_key(dir);
    size_t key_size;
    char *key_file = tm_test_read_file(key, &key_size);
    const char *secret = strstr(key_file, "key: ") + 5;
    char secret_hex[65];
    snprintf(secret_hex, sizeof secret_hex, "%.64s", secret);
    const char *schemes[] = {"kgw-lefthash", "kgw-selfhash", "unigram", "gumbel", "synthid", "dipmark", "exp-edit", "its-edit"};
    for (size_t s = 0; s < sizeof schemes / sizeof schemes[0]; s++) {
        const char *cmd = "generate --model %s --tokenizer %s --prompt 'Once upon a time' --max-tokens 48 --seed 7 "
                          "--watermark " TRACEMARK_SOURCE_DIR "/configs/schemes/%s.yaml --key '%s' --json";
        tm_test_cli_result a = tm_test_cli(cmd, f.bin, f.tok, schemes[s], key), b = tm_test_cli(cmd, f.bin, f.tok, schemes[s], key);
        cr_assert_eq(a.code, 0, "%s: %s", schemes[s], a.err);
        json_t *root = parse_json(a.out), *again = parse_json(b.out), *wm = json_object_get(root, "watermark");
        cr_assert(json_equal(json_object_get(root, "ids"), json_object_get(again, "ids")),
                  "%s: two runs with the same key and seed differ", schemes[s]);
        cr_assert_gt(json_array_size(json_object_get(root, "ids")), 0);
        cr_assert_not_null(wm, "%s: no watermark record", schemes[s]);
        cr_assert_eq(strlen(json_string_value(json_object_get(wm, "key_id"))), 16);
        cr_assert_not_null(strstr(key_file, json_string_value(json_object_get(wm, "key_id"))),
                           "the key id is the one in the key file");
        cr_assert_null(strstr(a.out, secret_hex), "%s: the secret key appears in the output", schemes[s]);
        cr_assert_null(strstr(a.err, secret_hex), "%s: the secret key appears on stderr", schemes[s]);
        json_decref(root);
        json_decref(again);
        tm_test_cli_free(&a);
        tm_test_cli_free(&b);
    }
    unlink(key);
    rmdir(dir);
    free(key_file);
    free(key);
    free(dir);
}

Test(cli_watermark, bad_keys_and_configs_get_clear_errors) {
    fixtures f = paths();
    char *dir = tm_test_scratch_dir();
    char *key = new_key(dir);
    const char *kgw = TRACEMARK_SOURCE_DIR "/configs/schemes/kgw-lefthash.yaml";
    tm_test_cli_result r = tm_test_cli("generate --model %s --tokenizer %s --prompt x --watermark %s", f.bin, f.tok, kgw);
    assert_usage_error(&r, "--key");
    tm_test_cli_free(&r);
    cr_assert_eq(chmod(key, 0644), 0);
    r = tm_test_cli("generate --model %s --tokenizer %s --prompt x --watermark %s --key '%s'", f.bin, f.tok, kgw, key);
    assert_failure(&r, "chmod 600");
    cr_assert_str_empty(r.out);
    tm_test_cli_free(&r);
    cr_assert_eq(chmod(key, 0600), 0);
    char *yaml = tm_test_path(dir, "bad.yaml");
    cr_assert_eq(tm_test_write_file(yaml, "scheme: kgw\ngamma: 1.5\n", 23), 0);
    r = tm_test_cli("generate --model %s --tokenizer %s --prompt x --watermark '%s' --key '%s'", f.bin, f.tok, yaml, key);
    assert_failure(&r, "bad.yaml:2: gamma");
    tm_test_cli_free(&r);
    unlink(yaml);
    unlink(key);
    rmdir(dir);
    free(yaml);
    free(key);
    free(dir);
}

/* Greedy output cannot carry a selecting (distortion-free) watermark: refused
 * rather than recorded as watermarked. KGW still biases greedy decoding. */
Test(cli_watermark, greedy_with_a_selecting_scheme_is_refused) {
    fixtures f = paths();
    char *dir = tm_test_scratch_dir();
    char *key = new_key(dir);
    const char *selecting[] = {"gumbel", "synthid", "dipmark", "exp-edit", "its-edit"};
    for (size_t s = 0; s < sizeof selecting / sizeof selecting[0]; s++) {
        tm_test_cli_result r = tm_test_cli("generate --model %s --tokenizer %s --prompt x --temperature 0 --watermark "
                           TRACEMARK_SOURCE_DIR "/configs/schemes/%s.yaml --key '%s' --json",
                           f.bin, f.tok, selecting[s], key);
        assert_usage_error(&r, "--temperature");
        cr_assert_str_empty(r.out, "%s: printed a record for greedy output", selecting[s]);
        tm_test_cli_free(&r);
    }
    tm_test_cli_result r = tm_test_cli("generate --model %s --tokenizer %s --prompt x --temperature 0 --max-tokens 4 --watermark "
                       TRACEMARK_SOURCE_DIR "/configs/schemes/kgw-lefthash.yaml --key '%s'", f.bin, f.tok, key);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    unlink(key);
    rmdir(dir);
    free(key);
    free(dir);
}

/* keygen writes through a private temporary name: a file called KEY.new
 * beside the key is somebody's, and stays. */
Test(cli_watermark, keygen_leaves_neighbouring_files_alone) {
    char *dir = tm_test_scratch_dir();
    char *key = tm_test_path(dir, "k.key"), *neighbour = tm_test_path(dir, "k.key.new");
    cr_assert_eq(tm_test_write_file(neighbour, "notes\n", 6), 0);
    tm_test_cli_result r = tm_test_cli("keygen --out '%s'", key);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    size_t size;
    char *kept = tm_test_read_file(neighbour, &size);
    cr_assert_not_null(kept, "keygen deleted %s", neighbour);
    cr_assert_str_eq(kept, "notes\n");
    free(kept);
    unlink(neighbour);
    unlink(key);
    rmdir(dir);
    free(neighbour);
    free(key);
    free(dir);
}

/* A key folder must hold key files: subfolders and dotfiles are not keys. */
Test(cli_watermark, a_key_folder_without_keys_is_an_error) {
    fixtures f = paths();
    char *dir = tm_test_scratch_dir();
    char *folder = tm_test_path(dir, "keys"), *sub = tm_test_path(folder, "sub"), *key = new_key(dir);
    cr_assert_eq(mkdir(folder, 0700), 0);
    cr_assert_eq(mkdir(sub, 0700), 0);
    char *text = tm_test_path(dir, "text.txt");
    cr_assert_eq(tm_test_write_file(text, "Once upon a time there was a cat.", 33), 0);
    tm_test_cli_result r = tm_test_cli("detect --key '%s' --key '%s' --watermark " TRACEMARK_SOURCE_DIR
                       "/configs/schemes/kgw-lefthash.yaml --tokenizer %s '%s'", folder, key, f.tok, text);
    assert_failure(&r, "no key files");
    tm_test_cli_free(&r);
    rmdir(sub);
    rmdir(folder);
    unlink(key);
    unlink(text);
    rmdir(dir);
    free(text);
    free(key);
    free(sub);
    free(folder);
    free(dir);
}

/* The record writes each float setting as the decimal the user gave, not as
 * the float widened to a double: --temperature 0.8 was recorded 0.800000011920929
 * (and signed so into manifests). Values compared exactly with the doubles
 * the decimals denote; the unit test covers the shortest-decimal search. */
Test(cli_generate, json_record_writes_float_settings_as_given) {
    cr_expect_eq(tm_float_shortest(0.8f), 0.8);
    cr_expect_eq(tm_float_shortest(0.95f), 0.95);
    cr_expect_eq(tm_float_shortest(1e-7f), 1e-7);
    cr_expect_eq(tm_float_shortest(1.0f), 1.0);
    cr_expect_eq(tm_float_shortest(0.0f), 0.0);
    cr_expect_eq(tm_float_shortest(-2.0f), -2.0);
    cr_expect_eq(tm_float_shortest(16777217.0f), 16777216.0); /* not a float: its nearest */
    cr_expect_eq((float)tm_float_shortest(0.1234567891f), 0.1234567891f); /* nine digits still read back */
    fixtures f = paths();
    tm_test_cli_result r = tm_test_cli("generate --model %s --tokenizer %s --prompt 'Once' --max-tokens 4 --seed 1 "
                                       "--temperature 0.8 --top-p 0.95 --min-p 0.05 --repeat-penalty 1.1 "
                                       "--frequency-penalty 0.3 --presence-penalty -0.7 --json",
                                       f.bin, f.tok);
    cr_assert_eq(r.code, 0, "%s", r.err);
    json_t *root = parse_json(r.out);
    json_t *s = json_object_get(root, "sampling");
    const char *names[] = {"temperature", "top_p", "min_p", "repeat_penalty", "frequency_penalty", "presence_penalty"};
    const double given[] = {0.8, 0.95, 0.05, 1.1, 0.3, -0.7};
    for (size_t i = 0; i < 6; i++)
        cr_expect_eq(json_real_value(json_object_get(s, names[i])), given[i], "%s: %.17g", names[i],
                     json_real_value(json_object_get(s, names[i])));
    cr_expect_null(json_object_get(s, "kv_cache"), "the default F32 cache is not named");
    json_decref(root);
    tm_test_cli_free(&r);
}

/* --kv-type f16, llama.cpp's own cache type, gives its greedy ids too; an
 * unknown type is a usage error. */
Test(cli_generate, f16_cache_greedy_matches_llama_cpp_and_bad_types_are_usage_errors) {
    fixtures f = paths();
    json_t *prompt_ids, *ids;
    llama_cpp_greedy64(&prompt_ids, &ids);
    tm_test_cli_result r = tm_test_cli(
        "generate --model %s --prompt 'Once upon a time' --temperature 0 --max-tokens 64 --kv-type f16 --json", f.gguf);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    json_t *root = parse_json(r.out);
    assert_same_ids(json_object_get(root, "ids"), ids, 64, "ids");
    /* the record names the cache type, which moves the tokens */
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "sampling"), "kv_cache")), "f16");
    json_decref(root);
    tm_test_cli_free(&r);
    r = tm_test_cli("generate --model %s --prompt 'x' --kv-type q8_0", f.gguf);
    cr_assert_eq(r.code, 2, "exit %d", r.code);
    cr_assert(strstr(r.err, "f32 or f16"), "%s", r.err);
    tm_test_cli_free(&r);
    json_decref(prompt_ids);
    json_decref(ids);
}
