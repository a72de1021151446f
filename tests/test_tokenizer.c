/* Tests of the SentencePiece-BPE tokenizer against outside references:
 * llama.cpp's own tokenizer vectors (ggml-vocab-llama-spm.gguf.inp/.out),
 * the prompt ids llama.cpp produced for the shared models, llama2.c's
 * tokenizer.bin against the GGUF llama.cpp converted from it, round trips of
 * random UTF-8, streaming decode, and malformed vocabularies and texts,
 * which must come back as errors and never crash. The fast word-by-word
 * encoder is held to the whole-text algorithm it replaces (kept as
 * tm_tokenizer_encode_reference) on real English, random Unicode, damaged
 * vocabularies, several tokenizers in turn and several threads at once.
 * Special-token parsing (tm_tokenizer_encode_special) and the set of tokens
 * that end a generation are held to what llama.cpp's libllama gives for the
 * same vocabularies (see "special tokens" at the end). */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tokenizer/tokenizer_internal.h"
#include "fixtures.h"
#include "tracemark/tokenizer.h"
#include "tracemark/generator.h"

/* ---- helpers ------------------------------------------------------------ */

static tm_tokenizer *load(const char *relative) {
    char *path = tm_fixture(relative);
    tm_tokenizer *t = NULL;
    tm_error err = {0};
    tm_status s = tm_tokenizer_load(&t, path, &err);
    cr_assert_eq(s, TM_OK, "loading %s: %s", path, err.message);
    free(path);
    return t;
}

static size_t encode(const tm_tokenizer *t, const char *text, size_t size, bool bos, int32_t **ids) {
    size_t n = 0;
    tm_error err = {0};
    tm_status s = tm_tokenizer_encode(t, text, size, bos, ids, &n, &err);
    cr_assert_eq(s, TM_OK, "encode: %s", err.message);
    return n;
}

static void expect_ids(const tm_tokenizer *t, const char *text, bool bos, const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = encode(t, text, strlen(text), bos, &ids);
    cr_expect_eq(n, n_want, "\"%s\": %zu ids, expected %zu", text, n, n_want);
    for (size_t i = 0; i < n && i < n_want; i++)
        cr_expect_eq(ids[i], want[i], "\"%s\": id %zu is %d, expected %d", text, i, ids[i], want[i]);
    free(ids);
}

static char *decode(const tm_tokenizer *t, const int32_t *ids, size_t n, size_t *size) {
    char *text = NULL;
    tm_error err = {0};
    tm_status s = tm_tokenizer_decode(t, ids, n, &text, size, &err);
    cr_assert_eq(s, TM_OK, "decode: %s", err.message);
    return text;
}

/* The prompt_ids array on the first line of a llama.cpp reference file. */
static size_t reference_prompt_ids(const char *relative, int32_t *ids, size_t capacity) {
    char *path = tm_fixture(relative);
    size_t size = 0;
    char *data = tm_test_read_file(path, &size);
    cr_assert_not_null(data, "cannot read %s", path);
    char *newline = strchr(data, '\n');
    json_error_t jerr;
    json_t *line = json_loadb(data, newline ? (size_t)(newline - data) : size, 0, &jerr);
    cr_assert_not_null(line, "%s: %s", path, jerr.text);
    json_t *array = json_object_get(line, "prompt_ids");
    cr_assert(json_is_array(array));
    size_t n = json_array_size(array);
    cr_assert_leq(n, capacity);
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(array, i));
    json_decref(line);
    free(data);
    free(path);
    return n;
}

static tm_status load_status(const char *path, tm_error *err) {
    tm_tokenizer *t = NULL;
    tm_status s = tm_tokenizer_load(&t, path, err);
    cr_expect((s == TM_OK) == (t != NULL));
    tm_tokenizer_free(t);
    return s;
}

/* ---- llama.cpp's tokenizer vectors ---------------------------------------- */

Test(tokenizer, llama_cpp_spm_vectors) {
    tm_tokenizer *t = load("tokenizer-tests/ggml-vocab-llama-spm.gguf");
    cr_assert_eq(tm_tokenizer_vocab_size(t), 32000);
    cr_assert_str_eq(tm_tokenizer_kind(t), "llama-spm");

    char *inp_path = tm_fixture("tokenizer-tests/ggml-vocab-llama-spm.gguf.inp");
    char *out_path = tm_fixture("tokenizer-tests/ggml-vocab-llama-spm.gguf.out");
    size_t inp_size = 0, out_size = 0;
    char *inp = tm_test_read_file(inp_path, &inp_size);
    char *expected = tm_test_read_file(out_path, &out_size);
    cr_assert_not_null(inp);
    cr_assert_not_null(expected);

    char **inputs;
    size_t *sizes;
    size_t n_inputs = tm_test_split_vocab_inputs(inp, inp_size, &inputs, &sizes);

    size_t n_lines = 0, passed = 0;
    /* strtok_r would skip empty lines, and an empty line is a case (""). */
    for (char *line = expected; line && *line; n_lines++) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        cr_assert_lt(n_lines, n_inputs, "more expected lines than inputs");
        int32_t want[512];
        size_t n_want = 0;
        for (char *p = line;;) {
            char *after;
            long v = strtol(p, &after, 10);
            if (after == p) break;
            cr_assert_lt(n_want, sizeof want / sizeof *want);
            want[n_want++] = (int32_t)v;
            p = after;
        }
        int32_t *ids = NULL;
        size_t n = encode(t, inputs[n_lines], sizes[n_lines], false, &ids);
        bool same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
        cr_expect(same, "case %zu (\"%s\"): got %zu ids, expected %zu", n_lines, inputs[n_lines], n, n_want);
        passed += same;

        /* And back: decoding gives the input again. */
        size_t text_size = 0;
        char *text = decode(t, ids, n, &text_size);
        cr_expect(text_size == sizes[n_lines] && memcmp(text, inputs[n_lines], text_size) == 0,
                  "case %zu: decode gives \"%s\", not \"%s\"", n_lines, text, inputs[n_lines]);
        free(text);
        free(ids);
        line = end ? end + 1 : NULL;
    }
    cr_expect_eq(n_lines, n_inputs, "%zu expected lines for %zu inputs", n_lines, n_inputs);
    cr_expect_gt(n_inputs, 40);
    cr_log_info("llama.cpp spm vectors: %zu of %zu cases pass", passed, n_inputs);
    cr_expect_eq(passed, n_inputs);

    for (size_t i = 0; i < n_inputs; i++) free(inputs[i]);
    free(inputs);
    free(sizes);
    free(inp);
    free(expected);
    free(inp_path);
    free(out_path);
    tm_tokenizer_free(t);
}

/* ---- the shared models -------------------------------------------------- */

Test(tokenizer, tok512_bin) {
    tm_tokenizer *t = load("models/tok512.bin");
    cr_assert_eq(tm_tokenizer_vocab_size(t), 512);
    cr_expect_eq(tm_tokenizer_bos(t), 1);
    cr_expect_eq(tm_tokenizer_eos(t), 2);
    cr_expect_eq(tm_tokenizer_token_type(t, 0), TM_TOKEN_UNKNOWN);
    cr_expect_eq(tm_tokenizer_token_type(t, 1), TM_TOKEN_CONTROL);
    cr_expect_eq(tm_tokenizer_token_type(t, 2), TM_TOKEN_CONTROL);
    cr_expect_eq(tm_tokenizer_token_type(t, 3), TM_TOKEN_BYTE);
    size_t size;
    cr_expect_str_eq(tm_tokenizer_piece(t, 1, &size), "<s>");
    cr_expect_str_eq(tm_tokenizer_piece(t, 3 + 0x41, &size), "<0x41>");
    cr_expect_gt(tm_tokenizer_max_piece_size(t), 0);

    const int32_t want[] = {403, 407, 261, 378};
    expect_ids(t, "Once upon a time", false, want, 4);
    const int32_t with_bos[] = {1, 403, 407, 261, 378};
    expect_ids(t, "Once upon a time", true, with_bos, 5);
    tm_tokenizer_free(t);
}

Test(tokenizer, stories260k_gguf_matches_llama_cpp) {
    int32_t want[64];
    size_t n_want = reference_prompt_ids("reference/stories260K.gguf.llamacpp.greedy64.jsonl", want, 64);
    tm_tokenizer *t = load("models/stories260K.gguf");
    cr_assert_eq(tm_tokenizer_vocab_size(t), 512);
    expect_ids(t, "Once upon a time", true, want, n_want);
    tm_tokenizer_free(t);

    tm_tokenizer *bin = load("models/tok512.bin");
    expect_ids(bin, "Once upon a time", true, want, n_want);
    tm_tokenizer_free(bin);
}

/* The GGUF llama.cpp converted from tok512.bin holds the same vocabulary:
 * pieces (with U+2581), scores and types must agree token for token. */
Test(tokenizer, llama2c_vocabulary_equals_converted_gguf) {
    tm_tokenizer *bin = load("models/tok512.bin");
    tm_tokenizer *gguf = load("models/stories260K.gguf");
    for (int32_t id = 0; id < 512; id++) {
        size_t a_size, b_size;
        const char *a = tm_tokenizer_piece(bin, id, &a_size), *b = tm_tokenizer_piece(gguf, id, &b_size);
        cr_expect(a_size == b_size && memcmp(a, b, a_size) == 0, "token %d: \"%s\" vs \"%s\"", id, a, b);
        cr_expect_eq(tm_tokenizer_token_type(bin, id), tm_tokenizer_token_type(gguf, id), "token %d type", id);
    }
    cr_expect_null(tm_tokenizer_piece(bin, 512, NULL));
    cr_expect_null(tm_tokenizer_piece(bin, -1, NULL));
    tm_tokenizer_free(bin);
    tm_tokenizer_free(gguf);
}

Test(tokenizer, llama2_tiny_random_matches_llama_cpp) {
    int32_t want[64];
    size_t n_want = reference_prompt_ids("reference/llama-2-tiny-random.llamacpp.logits.jsonl", want, 64);
    cr_assert_eq(n_want, 5);
    tm_tokenizer *t = load("models/llama-2-tiny-random.gguf");
    cr_assert_eq(tm_tokenizer_vocab_size(t), 32000);
    expect_ids(t, "Once upon a time", true, want, n_want);
    size_t size;
    char *text = decode(t, want, n_want, &size);
    cr_expect_str_eq(text, "Once upon a time");
    free(text);
    tm_tokenizer_free(t);
}

Test(tokenizer, empty_text) {
    tm_tokenizer *t = load("models/tok512.bin");
    int32_t *ids = NULL;
    cr_expect_eq(encode(t, "", 0, false, &ids), 0);
    free(ids);
    cr_expect_eq(encode(t, NULL, 0, true, &ids), 1);
    cr_expect_eq(ids[0], 1);
    free(ids);
    tm_tokenizer_free(t);
}

/* The fast encoder against the whole-text reference: same status, same
 * ids. Returns whether they agree. */
static bool expect_same_as_reference(const tm_tokenizer *t, const char *text, size_t size, bool bos,
                                     const char *what) {
    int32_t *fast = NULL, *slow = NULL;
    size_t n_fast = 0, n_slow = 0;
    tm_error fast_err = {0}, slow_err = {0};
    tm_status fast_status = tm_tokenizer_encode(t, text, size, bos, &fast, &n_fast, &fast_err);
    tm_status slow_status = tm_tokenizer_encode_reference(t, text, size, bos, &slow, &n_slow, &slow_err);
    bool same = fast_status == slow_status && n_fast == n_slow &&
                (n_fast == 0 || memcmp(fast, slow, n_fast * sizeof *fast) == 0);
    size_t first = 0;
    while (first < n_fast && first < n_slow && fast[first] == slow[first]) first++;
    cr_expect(same, "%s: \"%.*s\": status %d/%d, %zu/%zu ids, first difference at id %zu", what,
              size > 200 ? 200 : (int)size, text, (int)fast_status, (int)slow_status, n_fast, n_slow, first);
    free(fast);
    free(slow);
    return same;
}

/* ---- round trips -------------------------------------------------------- */

static uint64_t next_random(uint64_t *state) { /* SplitMix64 */
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t put_utf8(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A random code point: mostly text-like, sometimes anything valid. U+2581 is
 * left out: the encoder reads it as a space, so it cannot round-trip. */
static uint32_t random_code_point(uint64_t *state) {
    static const uint32_t common[] = {' ', ' ', ' ', '\n', '\t', 'e', 'a', '.', ',', '\'', 0xE9, 0xDF, 0x436,
                                      0x4E2D, 0x20AC, 0xBD, 0x1F600, 0x1F999, 0x2705, 0x200D, 0xFE0F, 0x0};
    for (;;) {
        uint64_t r = next_random(state);
        uint32_t cp;
        switch (r % 8) {
        case 0: case 1: case 2: cp = 0x20 + (uint32_t)((r >> 8) % 95); break;
        case 3: cp = common[(r >> 8) % (sizeof common / sizeof *common)]; break;
        case 4: cp = 0x80 + (uint32_t)((r >> 8) % 0x780); break;
        case 5: cp = 0x800 + (uint32_t)((r >> 8) % 0xF800); break;
        case 6: cp = 0x10000 + (uint32_t)((r >> 8) % 0x100000); break;
        default: cp = (uint32_t)((r >> 8) % 0x80); break;
        }
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581) continue;
        return cp;
    }
}

static bool is_valid_utf8_chunk(const char *s, size_t n) {
    /* Every chunk a streaming decoder emits must hold whole characters. */
    return tm_utf8_valid(s, n);
}

static void round_trip(const tm_tokenizer *t, uint64_t seed, int count) {
    uint64_t state = seed;
    size_t chunk_capacity = tm_tokenizer_max_piece_size(t) + TM_DETOKENIZE_MAX;
    char *chunk = malloc(chunk_capacity);
    for (int iteration = 0; iteration < count; iteration++) {
        char text[1024];
        size_t size = 0;
        size_t length = (size_t)(next_random(&state) % 60);
        for (size_t i = 0; i < length; i++) size += put_utf8(random_code_point(&state), text + size);

        int32_t *ids = NULL;
        size_t n = encode(t, text, size, iteration % 2 == 0, &ids);
        size_t decoded_size = 0;
        char *decoded = decode(t, ids, n, &decoded_size);
        cr_assert(decoded_size == size && memcmp(decoded, text, size) == 0,
                  "seed %llu iteration %d: round trip of %zu bytes gave %zu bytes", (unsigned long long)seed,
                  iteration, size, decoded_size);

        /* Streaming gives the same bytes, in whole characters only. */
        tm_detokenizer d;
        tm_detokenizer_init(&d, t);
        char streamed[4096];
        size_t streamed_size = 0;
        for (size_t i = 0; i <= n; i++) {
            size_t got = i < n ? tm_detokenizer_push(&d, ids[i], chunk, chunk_capacity)
                               : tm_detokenizer_flush(&d, chunk, chunk_capacity);
            cr_assert(is_valid_utf8_chunk(chunk, got), "iteration %d: chunk %zu splits a character", iteration, i);
            cr_assert_leq(streamed_size + got, sizeof streamed);
            memcpy(streamed + streamed_size, chunk, got);
            streamed_size += got;
        }
        cr_assert(streamed_size == size && memcmp(streamed, text, size) == 0);
        free(decoded);
        free(ids);
    }
    free(chunk);
}

Test(tokenizer, round_trip_small_vocabulary) {
    tm_tokenizer *t = load("models/tok512.bin"); /* mostly byte fallback beyond ASCII */
    round_trip(t, 42, 2000);
    tm_tokenizer_free(t);
}

Test(tokenizer, round_trip_llama2_vocabulary) {
    tm_tokenizer *t = load("models/llama-2-tiny-random.gguf");
    round_trip(t, 7, 2000);
    tm_tokenizer_free(t);
}

/* ---- streaming decode ------------------------------------------------------ */

static int32_t byte_token(const tm_tokenizer *t, uint8_t b) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    for (int32_t id = 0; id < tm_tokenizer_vocab_size(t); id++) {
        size_t size;
        const char *piece = tm_tokenizer_piece(t, id, &size);
        if (size == 6 && memcmp(piece, name, 6) == 0) return id;
    }
    cr_assert_fail("no byte token %s", name);
    return -1;
}

Test(tokenizer, streaming_emits_whole_characters) {
    tm_tokenizer *t = load("models/tok512.bin");
    int32_t *ids = NULL;
    const char *emoji = "\xF0\x9F\x98\x80"; /* U+1F600, surely not among 512 pieces */
    size_t n = encode(t, emoji, 4, false, &ids);
    cr_assert_eq(n, 5, "space prefix then four byte tokens, got %zu ids", n);
    for (size_t i = 1; i < 5; i++) cr_expect_eq(tm_tokenizer_token_type(t, ids[i]), TM_TOKEN_BYTE);

    tm_detokenizer d;
    tm_detokenizer_init(&d, t);
    char out[256];
    cr_expect_eq(tm_detokenizer_push(&d, ids[0], out, sizeof out), 0); /* the stripped leading space */
    for (size_t i = 1; i < 4; i++) cr_expect_eq(tm_detokenizer_push(&d, ids[i], out, sizeof out), 0);
    size_t got = tm_detokenizer_push(&d, ids[4], out, sizeof out);
    cr_expect(got == 4 && memcmp(out, emoji, 4) == 0);
    cr_expect_eq(tm_detokenizer_flush(&d, out, sizeof out), 0);
    free(ids);

    /* A broken sequence becomes U+FFFD as soon as it is known to be broken. */
    const char *fffd = "\xEF\xBF\xBD";
    tm_detokenizer_init(&d, t);
    cr_expect_eq(tm_detokenizer_push(&d, byte_token(t, 0xE2), out, sizeof out), 0);
    cr_expect_eq(tm_detokenizer_push(&d, byte_token(t, 0x82), out, sizeof out), 0);
    got = tm_detokenizer_push(&d, byte_token(t, 'A'), out, sizeof out);
    cr_expect(got == 4 && memcmp(out, fffd, 3) == 0 && out[3] == 'A');
    got = tm_detokenizer_push(&d, byte_token(t, 0x80), out, sizeof out); /* stray continuation */
    cr_expect(got == 3 && memcmp(out, fffd, 3) == 0);
    got = tm_detokenizer_push(&d, byte_token(t, 0xED), out, sizeof out);
    cr_expect_eq(got, 0);
    got = tm_detokenizer_push(&d, byte_token(t, 0xA0), out, sizeof out); /* a surrogate: both bytes bad */
    cr_expect(got == 6 && memcmp(out, fffd, 3) == 0 && memcmp(out + 3, fffd, 3) == 0);
    cr_expect_eq(tm_detokenizer_push(&d, byte_token(t, 0xF0), out, sizeof out), 0);
    got = tm_detokenizer_flush(&d, out, sizeof out); /* leftovers at the end */
    cr_expect(got == 3 && memcmp(out, fffd, 3) == 0);

    /* BOS and EOS vanish; the space after BOS goes, later ones stay. */
    int32_t *once = NULL;
    size_t n_once = encode(t, "Once upon", 9, true, &once);
    tm_detokenizer_init(&d, t);
    char text[64];
    size_t size = 0;
    for (size_t i = 0; i < n_once; i++) size += tm_detokenizer_push(&d, once[i], text + size, sizeof text - size);
    size += tm_detokenizer_push(&d, tm_tokenizer_eos(t), text + size, sizeof text - size);
    cr_expect(size == 9 && memcmp(text, "Once upon", 9) == 0, "got \"%.*s\"", (int)size, text);
    free(once);

    /* Out-of-range ids write nothing; decode refuses them. */
    cr_expect_eq(tm_detokenizer_push(&d, 512, out, sizeof out), 0);
    cr_expect_eq(tm_detokenizer_push(&d, -5, out, sizeof out), 0);
    int32_t bad[] = {1, 600};
    char *decoded = NULL;
    size_t decoded_size;
    tm_error err = {0};
    cr_expect_eq(tm_tokenizer_decode(t, bad, 2, &decoded, &decoded_size, &err), TM_ERR_ARGUMENT);
    cr_expect_null(decoded);
    tm_tokenizer_free(t);
}

/* ---- errors ------------------------------------------------------------- */

Test(tokenizer, invalid_utf8_is_an_error) {
    tm_tokenizer *t = load("models/tok512.bin");
    static const struct {
        const char *text;
        size_t offset;
    } cases[] = {
        {"ab\xFF" "cd", 2},       {"\xC0\x80", 0},            {"ok \xED\xA0\x80", 3},
        {"x\xE2\x82", 1},          {"\xF4\x90\x80\x80", 0},    {"tail\x80", 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int32_t *ids = (int32_t *)1;
        size_t n = 99;
        tm_error err = {0};
        tm_status s = tm_tokenizer_encode(t, cases[i].text, strlen(cases[i].text), true, &ids, &n, &err);
        cr_expect_eq(s, TM_ERR_FORMAT, "case %zu", i);
        cr_expect_null(ids);
        cr_expect_eq(n, 0);
        char where[64];
        snprintf(where, sizeof where, "offset %zu", cases[i].offset);
        cr_expect(strstr(err.message, where) != NULL, "case %zu: \"%s\" lacks \"%s\"", i, err.message, where);
    }
    tm_tokenizer_free(t);
}

static void append_u32(char *buf, size_t *at, uint32_t v) {
    for (int i = 0; i < 4; i++) buf[(*at)++] = (char)(v >> (8 * i));
}

Test(tokenizer, malformed_llama2c_files) {
    char *dir = tm_test_scratch_dir();
    char *source = tm_fixture("models/tok512.bin");
    size_t size = 0;
    char *bin = tm_test_read_file(source, &size);
    cr_assert_not_null(bin);
    char *path = tm_test_path(dir, "tokenizer.bin");
    tm_error err = {0};

    /* Cut inside the last token's text, inside a record header, and right
     * after max_token_length (no tokens at all). */
    cr_assert_eq(tm_test_write_file(path, bin, size - 2), 0);
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "past the end") != NULL, "%s", err.message);
    cr_assert_eq(tm_test_write_file(path, bin, 4 + 13 + 3), 0); /* <unk>, then 3 bytes of a header */
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "truncated token record 1 at byte offset 17") != NULL, "%s", err.message);
    cr_assert_eq(tm_test_write_file(path, bin, 4 + 3), 0);
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "truncated") != NULL, "%s", err.message);
    cr_assert_eq(tm_test_write_file(path, bin, 4), 0);
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "empty vocabulary") != NULL, "%s", err.message);
    cr_assert_eq(tm_test_write_file(path, bin, 2), 0);
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);
    cr_assert_eq(tm_test_write_file(path, "", 0), 0);
    cr_expect_neq(load_status(path, &err), TM_OK);

    /* A negative and a huge length in an otherwise good file. */
    char record[64];
    size_t at = 0;
    append_u32(record, &at, 8);
    append_u32(record, &at, 0);
    append_u32(record, &at, 5);
    memcpy(record + at, "<unk>", 5);
    at += 5;
    size_t good = at;
    append_u32(record, &at, 0);
    append_u32(record, &at, 0xFFFFFFFFu); /* -1 */
    cr_assert_eq(tm_test_write_file(path, record, at), 0);
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "negative length") != NULL, "%s", err.message);
    at = good;
    append_u32(record, &at, 0);
    append_u32(record, &at, 0x7FFFFFFFu);
    memcpy(record + at, "abc", 3);
    at += 3;
    cr_assert_eq(tm_test_write_file(path, record, at), 0);
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "past the end") != NULL, "%s", err.message);
    /* Well-formed, but too few tokens for <s> and </s>. */
    cr_assert_eq(tm_test_write_file(path, record, good), 0);
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);

    cr_expect_neq(load_status("/nonexistent/tokenizer.bin", &err), TM_OK);

    remove(path);
    rmdir(dir);
    free(path);
    free(bin);
    free(source);
    free(dir);
}

/* A minimal GGUF v3 writer for vocabularies: metadata only, no tensors. */
typedef struct {
    char *data;
    size_t size, capacity;
    uint64_t n_kv;
} gguf_builder;

static void put(gguf_builder *b, const void *data, size_t size) {
    while (b->size + size > b->capacity) {
        b->capacity = b->capacity ? b->capacity * 2 : 4096;
        b->data = realloc(b->data, b->capacity);
    }
    memcpy(b->data + b->size, data, size);
    b->size += size;
}
static void put_u32(gguf_builder *b, uint32_t v) {
    unsigned char bytes[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                              (unsigned char)(v >> 24)};
    put(b, bytes, 4);
}
static void put_u64(gguf_builder *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}
static void put_string(gguf_builder *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void key(gguf_builder *b, const char *name, uint32_t type) {
    put_string(b, name);
    put_u32(b, type);
    b->n_kv++;
}

static const char *const small_vocab[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81\x61"}; /* "▁a" */
enum { SMALL_VOCAB = sizeof small_vocab / sizeof *small_vocab };

typedef struct {
    const char *model;
    uint64_t n_scores, n_types;
    int32_t type_override; /* token 4's type when non-zero */
    int64_t bos;
    bool skip_tokens;
} vocab_spec;

static char *write_vocab_gguf(const char *dir, const vocab_spec *spec) {
    gguf_builder body = {0};
    key(&body, "tokenizer.ggml.model", TM_GGUF_STRING);
    put_string(&body, spec->model);
    if (!spec->skip_tokens) {
        key(&body, "tokenizer.ggml.tokens", TM_GGUF_ARRAY);
        put_u32(&body, TM_GGUF_STRING);
        put_u64(&body, SMALL_VOCAB);
        for (size_t i = 0; i < SMALL_VOCAB; i++) put_string(&body, small_vocab[i]);
    }
    key(&body, "tokenizer.ggml.scores", TM_GGUF_ARRAY);
    put_u32(&body, TM_GGUF_FLOAT32);
    put_u64(&body, spec->n_scores);
    for (uint64_t i = 0; i < spec->n_scores; i++) {
        float score = -(float)i;
        uint32_t bits;
        memcpy(&bits, &score, 4);
        put_u32(&body, bits);
    }
    key(&body, "tokenizer.ggml.token_type", TM_GGUF_ARRAY);
    put_u32(&body, TM_GGUF_INT32);
    put_u64(&body, spec->n_types);
    for (uint64_t i = 0; i < spec->n_types; i++) {
        int32_t type = i == 0 ? 2 : i < 3 ? 3 : 1;
        if (i == 4 && spec->type_override) type = spec->type_override;
        put_u32(&body, (uint32_t)type);
    }
    if (spec->bos >= 0) {
        key(&body, "tokenizer.ggml.bos_token_id", TM_GGUF_UINT32);
        put_u32(&body, (uint32_t)spec->bos);
    }
    gguf_builder file = {0};
    put(&file, "GGUF", 4);
    put_u32(&file, 3);
    put_u64(&file, 0); /* tensors */
    put_u64(&file, body.n_kv);
    put(&file, body.data, body.size);
    while (file.size % 32) put(&file, "", 1);
    char *path = tm_test_path(dir, "vocab.gguf");
    cr_assert_eq(tm_test_write_file(path, file.data, file.size), 0);
    free(body.data);
    free(file.data);
    return path;
}

Test(tokenizer, gguf_vocabulary_checks) {
    char *dir = tm_test_scratch_dir();
    tm_error err = {0};
    vocab_spec good = {.model = "llama", .n_scores = SMALL_VOCAB, .n_types = SMALL_VOCAB, .bos = 1};

    char *path = write_vocab_gguf(dir, &good);
    tm_tokenizer *t = NULL;
    cr_assert_eq(tm_tokenizer_load(&t, path, &err), TM_OK, "%s", err.message);
    const int32_t want[] = {6, 5, 4}; /* "▁a" is the only pair in the vocabulary */
    expect_ids(t, "aba", false, want, 3);
    tm_tokenizer_free(t);
    free(path);

    vocab_spec wrong_kind = good;
    wrong_kind.model = "t5";
    path = write_vocab_gguf(dir, &wrong_kind);
    cr_expect_eq(load_status(path, &err), TM_ERR_UNSUPPORTED);
    cr_expect(strstr(err.message, "t5") != NULL, "%s", err.message);
    free(path);

    /* "gpt2" is byte-level BPE (tokenizer_bpe.c), which cannot work without merges. */
    vocab_spec bpe_without_merges = good;
    bpe_without_merges.model = "gpt2";
    path = write_vocab_gguf(dir, &bpe_without_merges);
    cr_expect_neq(load_status(path, &err), TM_OK);
    cr_expect(strstr(err.message, "merges") != NULL, "%s", err.message);
    free(path);

    vocab_spec short_scores = good;
    short_scores.n_scores = SMALL_VOCAB - 1;
    path = write_vocab_gguf(dir, &short_scores);
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "tokenizer.ggml.scores") != NULL, "%s", err.message);
    free(path);

    vocab_spec long_types = good;
    long_types.n_types = SMALL_VOCAB + 2;
    path = write_vocab_gguf(dir, &long_types);
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "tokenizer.ggml.token_type") != NULL, "%s", err.message);
    free(path);

    vocab_spec bad_bos = good;
    bad_bos.bos = 70;
    path = write_vocab_gguf(dir, &bad_bos);
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "bos") != NULL, "%s", err.message);
    free(path);

    vocab_spec bad_type = good;
    bad_type.type_override = 9;
    path = write_vocab_gguf(dir, &bad_type);
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);
    free(path);

    vocab_spec byte_not_byte = good;
    byte_not_byte.type_override = TM_TOKEN_BYTE; /* "a" is not <0xNN> */
    path = write_vocab_gguf(dir, &byte_not_byte);
    cr_expect_eq(load_status(path, &err), TM_ERR_FORMAT);
    free(path);

    vocab_spec no_tokens = good;
    no_tokens.skip_tokens = true;
    path = write_vocab_gguf(dir, &no_tokens);
    cr_expect_eq(load_status(path, &err), TM_ERR_NOT_FOUND);
    remove(path);
    free(path);

    /* A corrupted copy of a real model: its tokenizer.ggml.model turned into
     * another kind of the same length. */
    char *source = tm_fixture("models/stories260K.gguf");
    size_t size = 0;
    char *data = tm_test_read_file(source, &size);
    cr_assert_not_null(data);
    const char *needle = "tokenizer.ggml.model";
    char *at = memmem(data, size, needle, strlen(needle));
    cr_assert_not_null(at);
    char *value = at + strlen(needle) + 4 + 8; /* type, length */
    cr_assert(memcmp(value, "llama", 5) == 0);
    memcpy(value, "bloom", 5);
    path = tm_test_path(dir, "corrupt.gguf");
    cr_assert_eq(tm_test_write_file(path, data, size), 0);
    cr_expect_eq(load_status(path, &err), TM_ERR_UNSUPPORTED);
    cr_expect(strstr(err.message, "bloom") != NULL, "%s", err.message);
    remove(path);
    free(path);
    free(data);
    free(source);
    rmdir(dir);
    free(dir);
}

Test(tokenizer, null_arguments) {
    tm_error err = {0};
    tm_tokenizer *t = NULL;
    cr_expect_eq(tm_tokenizer_load(&t, NULL, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_tokenizer_from_llama2c(NULL, "x", &err), TM_ERR_ARGUMENT);
    int32_t *ids;
    size_t n;
    cr_expect_eq(tm_tokenizer_encode(NULL, "a", 1, false, &ids, &n, &err), TM_ERR_ARGUMENT);
    tm_tokenizer_free(NULL);
}

/* Damaged copies of tok512.bin either load or fail cleanly; whatever loads
 * encodes and decodes without reading or writing out of bounds, and one push
 * never needs more than max_piece_size + TM_DETOKENIZE_MAX bytes, even when
 * damage left pieces that are not valid UTF-8. */
Test(tokenizer, damaged_llama2c_files_never_crash) {
    char *dir = tm_test_scratch_dir();
    char *source = tm_fixture("models/tok512.bin");
    size_t size = 0;
    char *bin = tm_test_read_file(source, &size);
    cr_assert_not_null(bin);
    char *damaged = malloc(size);
    char *path = tm_test_path(dir, "damaged.bin");
    uint64_t state = 2024;
    int loaded = 0;
    for (int round = 0; round < 300; round++) {
        memcpy(damaged, bin, size);
        size_t n_size = size;
        int flips = 1 + (int)(next_random(&state) % 4);
        for (int f = 0; f < flips; f++) damaged[next_random(&state) % size] = (char)next_random(&state);
        if (round % 3 == 0) n_size = (size_t)(next_random(&state) % size);
        cr_assert_eq(tm_test_write_file(path, damaged, n_size), 0);
        tm_tokenizer *t = NULL;
        tm_error err = {0};
        if (tm_tokenizer_load(&t, path, &err) != TM_OK) {
            cr_expect_null(t);
            cr_expect_neq(err.message[0], '\0');
            continue;
        }
        loaded++;
        int32_t *ids = NULL;
        size_t n = encode(t, "Once upon a time, \xE4\xB8\xAD \xF0\x9F\x98\x80!", 26, true, &ids);
        int32_t vocab = tm_tokenizer_vocab_size(t);
        for (size_t i = 0; i < n; i++) cr_expect(ids[i] >= 0 && ids[i] < vocab);
        free(ids);
        const char *english = "The  quick brown fox\njumps over the lazy dog's back; it's 42 degrees.";
        expect_same_as_reference(t, english, strlen(english), true, "damaged vocabulary");

        size_t capacity = tm_tokenizer_max_piece_size(t) + TM_DETOKENIZE_MAX;
        char *exact = malloc(capacity), *roomy = malloc(4 * capacity + 64);
        tm_detokenizer d;
        tm_detokenizer_init(&d, t);
        for (int k = 0; k < 200; k++) {
            int32_t id = (int32_t)(next_random(&state) % (uint64_t)vocab);
            tm_detokenizer copy = d;
            size_t a = tm_detokenizer_push(&d, id, exact, capacity);
            size_t b = tm_detokenizer_push(&copy, id, roomy, 4 * capacity + 64);
            cr_assert(a == b && memcmp(exact, roomy, a) == 0, "token %d needed %zu bytes, bound %zu", id, b, capacity);
        }
        free(exact);
        free(roomy);
        tm_tokenizer_free(t);
    }
    cr_log_info("damaged tokenizer.bin: %d of 300 still loaded", loaded);
    remove(path);
    rmdir(dir);
    free(path);
    free(damaged);
    free(bin);
    free(source);
    free(dir);
}

/* ---- the word-by-word encoder against the whole-text one ------------------ */

static const char *const shipped_vocabularies[] = {"models/tok512.bin", "tokenizer-tests/ggml-vocab-llama-spm.gguf",
                                                   "models/stories260K.gguf", "models/llama-2-tiny-random.gguf"};

Test(tokenizer, shipped_vocabularies_encode_word_by_word) {
    for (size_t i = 0; i < sizeof shipped_vocabularies / sizeof *shipped_vocabularies; i++) {
        tm_tokenizer *t = load(shipped_vocabularies[i]);
        cr_expect(tm_tokenizer_words_independent(t), "%s", shipped_vocabularies[i]);
        tm_tokenizer_free(t);
    }
    cr_expect_not(tm_tokenizer_words_independent(NULL));
}

/* A llama2.c tokenizer.bin (spaces stand for U+2581) from pieces and scores. */
static char *write_llama2c_vocab(const char *dir, const char *const *pieces, const float *scores, size_t n) {
    char *buf = malloc(4 + n * (8 + 64));
    size_t at = 0;
    append_u32(buf, &at, 16);
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &scores[i], 4);
        append_u32(buf, &at, bits);
        append_u32(buf, &at, (uint32_t)strlen(pieces[i]));
        memcpy(buf + at, pieces[i], strlen(pieces[i]));
        at += strlen(pieces[i]);
    }
    char *path = tm_test_path(dir, "tokenizer.bin");
    cr_assert_eq(tm_test_write_file(path, buf, at), 0);
    free(buf);
    return path;
}

/* With "a▁" and "a▁b" in the vocabulary, " a b" merges across the word
 * boundary, so word by word would be wrong: the flag must be off and the
 * whole-text algorithm used. A NaN score (no order among pairs) turns it
 * off too. */
Test(tokenizer, vocabulary_gluing_words_falls_back_to_whole_text) {
    char *dir = tm_test_scratch_dir();
    const char *pieces[] = {"<unk>", "\n<s>\n", "\n</s>\n", " ", "a", "b", " a", "a ", "a b", "c"};
    float scores[] = {0, 0, 0, -1, -1, -1, -10, -1, -2, -1};
    enum { N = sizeof pieces / sizeof *pieces };
    char *path = write_llama2c_vocab(dir, pieces, scores, N);
    tm_tokenizer *t = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_load(&t, path, &err), TM_OK, "%s", err.message);
    cr_expect_not(tm_tokenizer_words_independent(t));
    const int32_t want[] = {3, 8}; /* "▁", "a▁b": a merge across the boundary before "b" */
    expect_ids(t, "a b", false, want, 2);
    const char *texts[] = {"a b", "ca b a  b", " a b ", "ab ba a b c", "a"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        expect_same_as_reference(t, texts[i], strlen(texts[i]), i % 2 == 0, "glued vocabulary");
    tm_tokenizer_free(t);
    remove(path);
    free(path);

    /* The same vocabulary without the glued pieces, then with a NaN score. */
    const char *plain[] = {"<unk>", "\n<s>\n", "\n</s>\n", " ", "a", "b", " a", "  ", " b"};
    float plain_scores[] = {0, 0, 0, -1, -1, -1, -3, -2, -4};
    enum { P = sizeof plain / sizeof *plain };
    path = write_llama2c_vocab(dir, plain, plain_scores, P);
    cr_assert_eq(tm_tokenizer_load(&t, path, &err), TM_OK, "%s", err.message);
    cr_expect(tm_tokenizer_words_independent(t), "\"▁▁\" has U+2581 only after U+2581");
    tm_tokenizer_free(t);
    remove(path);
    free(path);
    plain_scores[6] = NAN;
    path = write_llama2c_vocab(dir, plain, plain_scores, P);
    cr_assert_eq(tm_tokenizer_load(&t, path, &err), TM_OK, "%s", err.message);
    cr_expect_not(tm_tokenizer_words_independent(t));
    expect_same_as_reference(t, "a b  a", 6, false, "NaN score");
    tm_tokenizer_free(t);
    remove(path);
    free(path);
    rmdir(dir);
    free(dir);
}

/* Real English: every line of TruthfulQA.csv, every field of the HaluEval QA
 * records, and both files' first 64 KiB as one text each. Returns how many
 * texts agreed; *total counts them. */
static size_t compare_on_real_text(const tm_tokenizer *t, const char *name, size_t *total) {
    size_t agreed = 0;
    *total = 0;
    char *path = tm_fixture("data/truthfulqa/TruthfulQA.csv");
    size_t size = 0;
    char *csv = tm_test_read_file(path, &size);
    cr_assert_not_null(csv, "cannot read %s", path);
    agreed += expect_same_as_reference(t, csv, size < 65536 ? size : 65536, false, name);
    ++*total;
    for (char *line = csv, *end; line < csv + size; line = end + 1) {
        end = memchr(line, '\n', (size_t)(csv + size - line));
        if (!end) end = csv + size;
        agreed += expect_same_as_reference(t, line, (size_t)(end - line), *total % 2 == 0, name);
        ++*total;
    }
    free(csv);
    free(path);

    path = tm_fixture("data/halueval/qa_one-turn_data.json");
    char *jsonl = tm_test_read_file(path, &size);
    cr_assert_not_null(jsonl, "cannot read %s", path);
    char *joined = malloc(65536);
    size_t joined_size = 0;
    char *save = NULL;
    for (char *line = strtok_r(jsonl, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *record = json_loads(line, 0, &jerr);
        cr_assert_not_null(record, "%s: %s", path, jerr.text);
        const char *field;
        json_t *value;
        json_object_foreach(record, field, value) {
            const char *text = json_string_value(value);
            if (!text) continue;
            size_t length = strlen(text);
            agreed += expect_same_as_reference(t, text, length, *total % 2 == 0, name);
            ++*total;
            if (joined_size + length + 1 <= 65536) {
                memcpy(joined + joined_size, text, length);
                joined_size += length;
                joined[joined_size++] = ' ';
            }
        }
        json_decref(record);
    }
    agreed += expect_same_as_reference(t, joined, joined_size, true, name);
    ++*total;
    free(joined);
    free(jsonl);
    free(path);
    return agreed;
}

/* Random text built to stress the cuts: runs of spaces, literal U+2581
 * (which the encoder reads as a space), leading and trailing spaces, words
 * from a small set so that they recur, and long runs without any space
 * (which take the heap and skip the word cache). */
static size_t random_stress_text(uint64_t *state, char *text, size_t capacity) {
    static const char *const words[] = {"the", "The", "quick", "brown", "fox,", "don't", "\xE2\x96\x81", "\xE2\x96\x81x",
                                        "x\xE2\x96\x81", "\xC3\xA9t\xC3\xA9", "\xE4\xB8\xAD\xE6\x96\x87", "\xF0\x9F\x98\x80",
                                        "1984", "...", "\n", "\t", "a", "I"};
    size_t size = 0, target = (size_t)(next_random(state) % 400);
    while (size < target && capacity - size > 1100) {
        uint64_t r = next_random(state);
        switch (r % 6) {
        case 0: /* spaces */
            for (uint64_t k = 0, n = 1 + (r >> 8) % 4; k < n; k++) text[size++] = ' ';
            break;
        case 1: case 2: { /* a word from the set */
            const char *w = words[(r >> 8) % (sizeof words / sizeof *words)];
            memcpy(text + size, w, strlen(w));
            size += strlen(w);
            break;
        }
        case 3: /* a few random characters */
            for (uint64_t k = 0, n = 1 + (r >> 8) % 6; k < n; k++) {
                uint32_t cp = random_code_point(state);
                size += put_utf8(cp, text + size);
            }
            break;
        case 4: /* a literal U+2581 */
            memcpy(text + size, "\xE2\x96\x81", 3);
            size += 3;
            break;
        default: /* rarely, a long spaceless run: past SCAN_SYMBOLS, sometimes past the cache's word size */
            if ((r >> 8) % 8 == 0)
                for (uint64_t k = 0, n = 20 + (r >> 16) % 250; k < n; k++) {
                    uint32_t cp = random_code_point(state);
                    if (cp == ' ') cp = 'q';
                    size += put_utf8(cp, text + size);
                }
            break;
        }
    }
    return size;
}

static size_t compare_on_random_text(const tm_tokenizer *t, const char *name, uint64_t seed, int count) {
    uint64_t state = seed;
    char *text = malloc(8192);
    size_t agreed = 0;
    for (int i = 0; i < count; i++) {
        size_t size = random_stress_text(&state, text, 8192);
        agreed += expect_same_as_reference(t, text, size, i % 2 == 0, name);
    }
    free(text);
    return agreed;
}

Test(tokenizer, word_by_word_equals_whole_text_tok512) {
    tm_tokenizer *t = load("models/tok512.bin");
    size_t total = 0, agreed = compare_on_real_text(t, "tok512", &total);
    agreed += compare_on_random_text(t, "tok512", 11, 3000);
    total += 3000;
    cr_log_info("tok512: fast encoder equals the reference on %zu of %zu texts", agreed, total);
    cr_expect_eq(agreed, total);
    cr_expect_gt(total, 5000);
    tm_tokenizer_free(t);
}

Test(tokenizer, word_by_word_equals_whole_text_llama_spm) {
    tm_tokenizer *t = load("tokenizer-tests/ggml-vocab-llama-spm.gguf");
    size_t total = 0, agreed = compare_on_real_text(t, "llama-spm", &total);
    agreed += compare_on_random_text(t, "llama-spm", 12, 3000);
    total += 3000;
    cr_log_info("llama-spm: fast encoder equals the reference on %zu of %zu texts", agreed, total);
    cr_expect_eq(agreed, total);
    cr_expect_gt(total, 5000);
    tm_tokenizer_free(t);
}

/* The word cache outlives a call and is kept per thread: alternating
 * tokenizers, and a tokenizer freed and another loaded (possibly at the same
 * address), must never see each other's words. */
Test(tokenizer, word_cache_never_crosses_tokenizers) {
    const char *text = "Once upon a time there was a little girl who loved the sea and the sky.";
    for (int round = 0; round < 6; round++) {
        tm_tokenizer *a = load("models/tok512.bin");
        tm_tokenizer *b = load("tokenizer-tests/ggml-vocab-llama-spm.gguf");
        for (int k = 0; k < 3; k++) {
            expect_same_as_reference(a, text, strlen(text), false, "tok512 after llama-spm");
            expect_same_as_reference(b, text, strlen(text), false, "llama-spm after tok512");
        }
        tm_tokenizer_free(round % 2 ? a : b);
        tm_tokenizer *c = load(round % 2 ? "models/llama-2-tiny-random.gguf" : "models/stories260K.gguf");
        expect_same_as_reference(c, text, strlen(text), true, "a tokenizer loaded after another was freed");
        expect_same_as_reference(round % 2 ? b : a, text, strlen(text), true, "the one left");
        tm_tokenizer_free(c);
        tm_tokenizer_free(round % 2 ? b : a);
    }
}

/* One tokenizer shared by several threads, each with its own word cache:
 * every thread's ids equal the reference computed beforehand. */
typedef struct {
    const tm_tokenizer *tokenizer;
    const char *const *texts;
    const size_t *sizes;
    int32_t *const *want;
    const size_t *n_want;
    size_t n_texts, offset;
    size_t mismatches;
} thread_job;

static void *encode_in_thread(void *arg) {
    thread_job *job = arg;
    for (int pass = 0; pass < 3; pass++)
        for (size_t k = 0; k < job->n_texts; k++) {
            size_t i = (k + job->offset) % job->n_texts;
            int32_t *ids = NULL;
            size_t n = 0;
            tm_error err = {0};
            if (tm_tokenizer_encode(job->tokenizer, job->texts[i], job->sizes[i], false, &ids, &n, &err) != TM_OK ||
                n != job->n_want[i] || (n && memcmp(ids, job->want[i], n * sizeof *ids) != 0))
                job->mismatches++;
            free(ids);
        }
    return NULL;
}

Test(tokenizer, threads_share_a_tokenizer) {
    tm_tokenizer *t = load("tokenizer-tests/ggml-vocab-llama-spm.gguf");
    enum { TEXTS = 200, THREADS = 4 };
    char *texts[TEXTS];
    size_t sizes[TEXTS], n_want[TEXTS];
    int32_t *want[TEXTS];
    uint64_t state = 99;
    for (size_t i = 0; i < TEXTS; i++) {
        texts[i] = malloc(8192);
        sizes[i] = random_stress_text(&state, texts[i], 8192);
        tm_error err = {0};
        cr_assert_eq(tm_tokenizer_encode_reference(t, texts[i], sizes[i], false, &want[i], &n_want[i], &err), TM_OK);
    }
    pthread_t threads[THREADS];
    thread_job jobs[THREADS];
    for (size_t k = 0; k < THREADS; k++) {
        jobs[k] = (thread_job){.tokenizer = t, .texts = (const char *const *)texts, .sizes = sizes, .want = want,
                               .n_want = n_want, .n_texts = TEXTS, .offset = k * 37};
        cr_assert_eq(pthread_create(&threads[k], NULL, encode_in_thread, &jobs[k]), 0);
    }
    for (size_t k = 0; k < THREADS; k++) {
        pthread_join(threads[k], NULL);
        cr_expect_eq(jobs[k].mismatches, 0, "thread %zu: %zu texts differ from the reference", k, jobs[k].mismatches);
    }
    for (size_t i = 0; i < TEXTS; i++) {
        free(texts[i]);
        free(want[i]);
    }
    tm_tokenizer_free(t);
}

/* ---- special tokens --------------------------------------------------------- */

/* Expected ids below come from llama.cpp itself: libllama of node-llama-cpp
 * 3.21.1 (the library ../shared/tools/llamaref links), loading each GGUF with
 * vocab_only and calling llama_tokenize(vocab, text, len, ids, cap,
 * add_special = true, parse_special = true), and llama_vocab_is_eog over
 * every id. (llamaref itself tokenizes with parse_special off, so a
 * ten-line C program against the same library made these.) */

static void expect_special(const tm_tokenizer *t, const char *text, const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = 0;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_encode_special(t, text, strlen(text), tm_tokenizer_adds_bos(t), &ids, &n, &err), TM_OK,
                 "\"%s\": %s", text, err.message);
    cr_expect_eq(n, n_want, "\"%s\": %zu ids, expected %zu", text, n, n_want);
    for (size_t i = 0; i < n && i < n_want; i++)
        cr_expect_eq(ids[i], want[i], "\"%s\": id %zu is %d, expected %d", text, i, ids[i], want[i]);
    free(ids);
}

#define EXPECT_SPECIAL(t, text, ...)                                                                 \
    do {                                                                                            \
        const int32_t want_[] = {__VA_ARGS__};                                                     \
        expect_special(t, text, want_, sizeof want_ / sizeof *want_);                              \
    } while (0)

Test(tokenizer, special_tokens_llama_spm_match_llama_cpp) {
    tm_tokenizer *t = load("tokenizer-tests/ggml-vocab-llama-spm.gguf");
    EXPECT_SPECIAL(t, "<s>[INST] Hello [/INST]Hi</s>[INST] Again [/INST]", 1, 1, 518, 25580, 29962, 15043, 518, 29914,
                   25580, 29962, 18567, 2, 518, 25580, 29962, 11454, 518, 29914, 25580, 29962);
    EXPECT_SPECIAL(t, "<unk>text</s> <s>", 1, 0, 1426, 2, 259, 1);
    /* llama2-sys, as formatted: no special token, the same as plain encoding */
    EXPECT_SPECIAL(t, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST]", 1, 518, 25580, 29962, 3532, 14816,
                   29903, 6778, 13, 3629, 11473, 29889, 13, 29966, 829, 14816, 29903, 6778, 13, 13, 18567, 29991,
                   518, 29914, 25580, 29962);
    /* zephyr with </s>: the text after a special token gets the space prefix (29871 before "\n") */
    EXPECT_SPECIAL(t, "<|system|>\nBe brief.</s>\n<|user|>\nHi!</s>\n<|assistant|>", 1, 529, 29989, 5205, 29989,
                   29958, 13, 3629, 11473, 29889, 2, 29871, 13, 29966, 29989, 1792, 29989, 29958, 13, 18567, 29991,
                   2, 29871, 13, 29966, 29989, 465, 22137, 29989, 29958);
    EXPECT_SPECIAL(t, "  </s>  x", 1, 1678, 2, 259, 921);
    EXPECT_SPECIAL(t, "", 1);
    EXPECT_SPECIAL(t, "<s>", 1, 1);
    EXPECT_SPECIAL(t, "</s></s>", 1, 2, 2);
    /* Without special tokens in the text it is tm_tokenizer_encode. */
    int32_t *plain = NULL, *special = NULL;
    size_t n_plain = 0, n_special = 0;
    tm_error err = {0};
    const char *text = "Hello world, and <<nothing special>> here.";
    cr_assert_eq(tm_tokenizer_encode(t, text, strlen(text), true, &plain, &n_plain, &err), TM_OK);
    cr_assert_eq(tm_tokenizer_encode_special(t, text, strlen(text), true, &special, &n_special, &err), TM_OK);
    cr_assert_eq(n_plain, n_special);
    cr_expect_arr_eq(plain, special, n_plain * sizeof *plain);
    free(plain);
    free(special);
    /* llama_vocab_is_eog: only </s> */
    for (int32_t id = 0; id < tm_tokenizer_vocab_size(t); id++)
        cr_expect_eq(tm_tokenizer_is_end_of_generation(t, id), id == 2, "id %d", id);
    cr_expect_not(tm_tokenizer_is_end_of_generation(t, -1));
    cr_expect_not(tm_tokenizer_is_end_of_generation(t, 32000));
    tm_tokenizer_free(t);
}

Test(tokenizer, special_tokens_tok512_match_llama_cpp) {
    /* llama.cpp on stories260K.gguf, whose vocabulary is tok512.bin's. */
    const char *files[] = {"models/tok512.bin", "models/stories260K.gguf"};
    for (size_t f = 0; f < 2; f++) {
        tm_tokenizer *t = load(files[f]);
        EXPECT_SPECIAL(t, "<unk>text</s> <s>", 1, 0, 259, 411, 444, 413, 2, 410, 410, 1);
        EXPECT_SPECIAL(t, "<s>[INST] Hello [/INST]Hi</s>[INST] Again [/INST]", 1, 1, 410, 508, 442, 458, 437, 434,
                       509, 346, 306, 414, 410, 508, 492, 442, 458, 437, 434, 509, 440, 417, 2, 410, 508, 442, 458,
                       437, 434, 509, 410, 447, 428, 412, 271, 410, 508, 492, 442, 458, 437, 434, 509);
        EXPECT_SPECIAL(t, "  </s>  x", 1, 410, 410, 410, 2, 410, 410, 410, 444);
        for (int32_t id = 0; id < tm_tokenizer_vocab_size(t); id++)
            cr_expect_eq(tm_tokenizer_is_end_of_generation(t, id), id == 2, "%s: id %d", files[f], id);
        cr_expect(tm_tokenizer_adds_bos(t));
        tm_tokenizer_free(t);
    }
}

Test(tokenizer, special_tokens_llama_bpe_match_llama_cpp) {
    tm_tokenizer *t = load("tokenizer-tests/ggml-vocab-llama-bpe.gguf");
    cr_expect(tm_tokenizer_adds_bos(t)); /* no add_bos_token key: Llama 3's default */
    /* llama3, as formatted (system "Be brief.", user "Hi!", generation prompt; no final "\n\n") */
    EXPECT_SPECIAL(t,
                   "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user"
                   "<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>",
                   128000, 128006, 9125, 128007, 271, 3513, 10015, 13, 128009, 128006, 882, 128007, 271, 13347, 0,
                   128009, 128006, 78191, 128007);
    EXPECT_SPECIAL(t, "<|begin_of_text|>Hello<|end_of_text|>", 128000, 128000, 9906, 128001);
    /* tokens this vocabulary lacks stay text */
    EXPECT_SPECIAL(t, "<|im_start|>user\nHi<|im_end|>", 128000, 27, 91, 318, 5011, 91, 29, 882, 198, 13347, 27, 91,
                   318, 6345, 91, 29);
    EXPECT_SPECIAL(t, "a<|eot_id|><|eot_id|>b <|end_of_text|> c", 128000, 64, 128009, 128009, 65, 220, 128001, 272);
    EXPECT_SPECIAL(t, "<|reserved_special_token_5|>x", 128000, 128010, 87);
    EXPECT_SPECIAL(t, "<|eot_id", 128000, 27, 91, 68, 354, 851);
    EXPECT_SPECIAL(t, "", 128000);
    /* llama_vocab_is_eog: <|end_of_text|> (EOS) and <|eot_id|> (by its text) */
    for (int32_t id = 0; id < tm_tokenizer_vocab_size(t); id++)
        cr_expect_eq(tm_tokenizer_is_end_of_generation(t, id), id == 128001 || id == 128009, "id %d", id);
    tm_tokenizer_free(t);
}

Test(tokenizer, special_encoding_errors) {
    tm_tokenizer *t = load("tokenizer-tests/ggml-vocab-llama-bpe.gguf");
    int32_t *ids = NULL;
    size_t n = 0;
    tm_error err = {0};
    cr_expect_eq(tm_tokenizer_encode_special(t, "ok<|eot_id|>\xC3(", 15, true, &ids, &n, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "byte offset 12") != NULL, "%s", err.message);
    cr_expect_null(ids);
    cr_expect_eq(tm_tokenizer_encode_special(NULL, "x", 1, true, &ids, &n, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_tokenizer_encode_special(t, NULL, 1, true, &ids, &n, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_tokenizer_encode_special(t, NULL, 0, false, &ids, &n, &err), TM_OK);
    cr_expect_eq(n, 0);
    cr_expect_null(ids);
    cr_expect_not(tm_tokenizer_is_end_of_generation(NULL, 0));
    cr_expect_not(tm_tokenizer_adds_bos(NULL));
    tm_tokenizer_free(t);
}

/* A SentencePiece vocabulary of the given pieces and types, with optional
 * integer keys, for the rules no shipped vocabulary exercises. */
typedef struct {
    const char *piece;
    int32_t type;
} synthetic_token;

static char *write_synthetic_vocab(const char *dir, const char *name, const synthetic_token *tokens, size_t n,
                                   const char *const *keys, const uint32_t *values, size_t n_keys) {
    gguf_builder body = {0};
    key(&body, "general.architecture", TM_GGUF_STRING); /* llama.cpp wants it even for a vocabulary */
    put_string(&body, "llama");
    key(&body, "tokenizer.ggml.model", TM_GGUF_STRING);
    put_string(&body, "llama");
    key(&body, "tokenizer.ggml.tokens", TM_GGUF_ARRAY);
    put_u32(&body, TM_GGUF_STRING);
    put_u64(&body, n);
    for (size_t i = 0; i < n; i++) put_string(&body, tokens[i].piece);
    key(&body, "tokenizer.ggml.scores", TM_GGUF_ARRAY);
    put_u32(&body, TM_GGUF_FLOAT32);
    put_u64(&body, n);
    for (size_t i = 0; i < n; i++) {
        float score = -(float)i;
        uint32_t bits;
        memcpy(&bits, &score, 4);
        put_u32(&body, bits);
    }
    key(&body, "tokenizer.ggml.token_type", TM_GGUF_ARRAY);
    put_u32(&body, TM_GGUF_INT32);
    put_u64(&body, n);
    for (size_t i = 0; i < n; i++) put_u32(&body, (uint32_t)tokens[i].type);
    for (size_t k = 0; k < n_keys; k++) {
        key(&body, keys[k], TM_GGUF_UINT32);
        put_u32(&body, values[k]);
    }
    gguf_builder file = {0};
    put(&file, "GGUF", 4);
    put_u32(&file, 3);
    put_u64(&file, 0);
    put_u64(&file, body.n_kv);
    put(&file, body.data, body.size);
    char *path = tm_test_path(dir, name);
    cr_assert_eq(tm_test_write_file(path, file.data, file.size), 0);
    free(body.data);
    free(file.data);
    return path;
}

static void expect_end_of_generation(const char *path, const int32_t *want, size_t n_want) {
    tm_tokenizer *t = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_load(&t, path, &err), TM_OK, "%s", err.message);
    size_t found = 0;
    for (int32_t id = 0; id < tm_tokenizer_vocab_size(t); id++) {
        bool expected = false;
        for (size_t k = 0; k < n_want; k++) expected |= want[k] == id;
        cr_expect_eq(tm_tokenizer_is_end_of_generation(t, id), expected, "%s: id %d", path, id);
        found += expected;
    }
    cr_expect_eq(found, n_want);
    tm_tokenizer_free(t);
}

/* The same files given to llama.cpp (libllama, vocab_only; see above) gave
 * the end-of-generation ids and the special-token ids expected here. */
Test(tokenizer, end_of_generation_rules_match_llama_cpp) {
    char *dir = tm_test_scratch_dir();
    const synthetic_token chat[] = {
        {"<unk>", 2}, {"<s>", 3}, {"</s>", 3}, {"\xE2\x96\x81", 1}, {"a", 1}, {"b", 1},
        {"<|im_end|>", 1},          /* NORMAL, yet it ends a generation by its text */
        {"<|im_start|>", 3}, {"<|end|>", 3}, {"<|fim_pad|>", 3}, {"<my_token>", 4}, {"<|turn_over|>", 3},
        {"<|im_start|>a", 3},       /* longer than <|im_start|>: matched first */
        {"\n", 1}, {"\xE2\x96\x81\x61", 1},
        {"<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", 1}, /* DeepSeek's */
    };
    const char *eot_key[] = {"tokenizer.ggml.eot_token_id"};
    const uint32_t eot_value[] = {11};
    char *path = write_synthetic_vocab(dir, "chat.gguf", chat, sizeof chat / sizeof *chat, eot_key, eot_value, 1);
    const int32_t chat_eog[] = {2, 6, 8, 9, 11, 15};
    expect_end_of_generation(path, chat_eog, 6);
    tm_tokenizer *t = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_load(&t, path, &err), TM_OK, "%s", err.message);
    EXPECT_SPECIAL(t, "<|im_start|>a<|im_end|>b<my_token>a<|im_start|>b<|turn_over|>", 1, 12, 6, 3, 5, 10, 14, 7,
                   3, 5, 11);
    tm_tokenizer_free(t);
    remove(path);
    free(path);

    /* gpt-oss: with <|return|> and <|call|>, <|end|> does not end a generation */
    const synthetic_token harmony[] = {{"<unk>", 2}, {"<s>", 3}, {"</s>", 3}, {"<|return|>", 3}, {"<|call|>", 3},
                                       {"<|end|>", 3}, {"a", 1}};
    path = write_synthetic_vocab(dir, "harmony.gguf", harmony, sizeof harmony / sizeof *harmony, NULL, NULL, 0);
    const int32_t harmony_eog[] = {2, 3, 4};
    expect_end_of_generation(path, harmony_eog, 3);
    remove(path);
    free(path);

    /* Gemma 4: with <|tool_response>, </s> does not, even as EOS */
    const synthetic_token gemma[] = {{"<unk>", 2}, {"<s>", 3}, {"</s>", 3}, {"<|tool_response>", 3}, {"<eos>", 3},
                                     {"a", 1}};
    const char *eos_key[] = {"tokenizer.ggml.eos_token_id"};
    const uint32_t eos_value[] = {2};
    path = write_synthetic_vocab(dir, "gemma.gguf", gemma, sizeof gemma / sizeof *gemma, eos_key, eos_value, 1);
    const int32_t gemma_eog[] = {3, 4};
    expect_end_of_generation(path, gemma_eog, 2);
    remove(path);
    free(path);
    rmdir(dir);
    free(dir);
}
