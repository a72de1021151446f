/* Tests of the byte-level BPE tokenizer against outside references:
 * llama.cpp's own vectors for Llama 3 (ggml-vocab-llama-bpe.gguf.inp/.out),
 * and ids that llama.cpp itself (libllama of node-llama-cpp 3.21.1, through
 * llama_tokenize with add_special and parse_special off) gave for tricky
 * strings under the Llama 3, Qwen2, GPT-2 and default pre-tokenizers, the
 * last three on copies of the Llama 3 vocabulary with tokenizer.ggml.pre
 * changed. Small synthetic vocabularies written with the GGUF writer below
 * pin the merge order, user-defined tokens and every validation error; round
 * trips of random UTF-8 and threads sharing one tokenizer close the set. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tokenizer/tokenizer_bpe.h"
#include "fixtures.h"
#include "gguf_testing.h"
#include "tracemark/detect.h"

static const char *LLAMA_BPE = "tokenizer-tests/ggml-vocab-llama-bpe.gguf";

/* ======================================================================== */
/* A small GGUF writer (tokenizer metadata only, no tensors)                */
/* ======================================================================== */

/* Key/values are collected in kvs and counted in n_kv. */
typedef struct {
    buffer kvs;
    uint64_t n_kv;
} metadata;

static void kv_string(metadata *m, const char *key, const char *v) {
    put_kv_string(&m->kvs, key, v);
    m->n_kv++;
}
static void kv_u32(metadata *m, const char *key, uint32_t v) {
    put_kv_u32(&m->kvs, key, v);
    m->n_kv++;
}
static void kv_i32(metadata *m, const char *key, int32_t v) {
    put_kv_i32(&m->kvs, key, v);
    m->n_kv++;
}
/* An array of n strings with explicit sizes (sizes NULL: strlen). */
static void kv_strings(metadata *m, const char *key, const char *const *items, const size_t *sizes, size_t n) {
    put_string(&m->kvs, key);
    put_u32(&m->kvs, TM_GGUF_ARRAY);
    put_u32(&m->kvs, TM_GGUF_STRING);
    put_u64(&m->kvs, n);
    for (size_t i = 0; i < n; i++) put_bytes_string(&m->kvs, items[i], sizes ? sizes[i] : strlen(items[i]));
    m->n_kv++;
}
static void kv_i32s(metadata *m, const char *key, const int32_t *items, size_t n) {
    put_string(&m->kvs, key);
    put_u32(&m->kvs, TM_GGUF_ARRAY);
    put_u32(&m->kvs, TM_GGUF_INT32);
    put_u64(&m->kvs, n);
    for (size_t i = 0; i < n; i++) put_u32(&m->kvs, (uint32_t)items[i]);
    m->n_kv++;
}

static buffer finish_gguf(metadata *m) {
    buffer b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0); /* tensors */
    put_u64(&b, m->n_kv);
    put(&b, m->kvs.data, m->kvs.size);
    free(m->kvs.data);
    *m = (metadata){0};
    return b;
}

/* Write the file, open it and build the tokenizer. On failure the message
 * must start with the path, and *out stays NULL. The file is removed. */
static tm_status build_from_bytes(const buffer *file, tm_bpe **out, tm_error *err) {
    char *dir = tm_test_scratch_dir();
    cr_assert_not_null(dir);
    char *path = tm_test_path(dir, "vocab.gguf");
    cr_assert_eq(tm_test_write_file(path, file->data, file->size), 0);
    tm_gguf *g = NULL;
    memset(err, 0, sizeof *err);
    tm_status s = tm_gguf_open(&g, path, err);
    cr_assert_eq(s, TM_OK, "the writer made a bad GGUF: %s", err->message);
    *out = (tm_bpe *)1;
    s = tm_bpe_from_gguf(out, g, err);
    if (s != TM_OK) {
        cr_assert_null(*out);
        cr_assert_eq(err->code, s);
        cr_assert(strncmp(err->message, path, strlen(path)) == 0 && err->message[strlen(path)] == ':',
                  "message does not start with the path: %s", err->message);
    } else {
        cr_assert_not_null(*out);
    }
    tm_gguf_close(g); /* the tokenizer must not need the file any more */
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
    return s;
}

/* ======================================================================== */
/* Synthetic byte-level vocabularies                                        */
/* ======================================================================== */

/* GPT-2's bytes_to_unicode, written here from its published definition (not
 * from the code under test): printable Latin-1 bytes stand for themselves,
 * the other 68 bytes take U+0100, U+0101, ... in byte order. */
static void gpt2_byte_char(int byte, char out[3]) {
    int next = 256, cp = -1;
    for (int b = 0; b <= byte; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp = printable ? b : next++;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = '\0';
    }
}

/* A vocabulary being assembled: by default the 256 byte characters (ids
 * 0..255 in byte order) and then the extra pieces. */
typedef struct {
    char *tokens[512];
    size_t sizes[512];
    int32_t types[512];
    size_t n_tokens;
    const char *merges[64];
    size_t n_merges;
} vocab;

static void vocab_init(vocab *v, bool byte_tokens) {
    memset(v, 0, sizeof *v);
    if (!byte_tokens) return;
    for (int b = 0; b < 256; b++) {
        char c[3];
        gpt2_byte_char(b, c);
        v->tokens[v->n_tokens] = strdup(c);
        v->sizes[v->n_tokens] = strlen(c);
        v->types[v->n_tokens++] = TM_TOKEN_NORMAL;
    }
}

static int32_t vocab_add(vocab *v, const char *piece, int32_t type) {
    cr_assert_lt(v->n_tokens, sizeof v->tokens / sizeof *v->tokens);
    v->tokens[v->n_tokens] = strdup(piece);
    v->sizes[v->n_tokens] = strlen(piece);
    v->types[v->n_tokens] = type;
    return (int32_t)v->n_tokens++;
}

static void vocab_merge(vocab *v, const char *merge) {
    cr_assert_lt(v->n_merges, sizeof v->merges / sizeof *v->merges);
    v->merges[v->n_merges++] = merge;
}

static void vocab_free(vocab *v) {
    for (size_t i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
}

/* The usual metadata of a "gpt2" model with this vocabulary. */
static void vocab_metadata(const vocab *v, metadata *m, const char *pre) {
    kv_string(m, "tokenizer.ggml.model", "gpt2");
    if (pre) kv_string(m, "tokenizer.ggml.pre", pre);
    kv_strings(m, "tokenizer.ggml.tokens", (const char *const *)v->tokens, v->sizes, v->n_tokens);
    kv_i32s(m, "tokenizer.ggml.token_type", v->types, v->n_tokens);
    kv_strings(m, "tokenizer.ggml.merges", v->merges, NULL, v->n_merges);
}

static tm_bpe *build_vocab(const vocab *v, const char *pre) {
    metadata m = {0};
    vocab_metadata(v, &m, pre);
    buffer file = finish_gguf(&m);
    tm_bpe *bpe = NULL;
    tm_error err;
    tm_status s = build_from_bytes(&file, &bpe, &err);
    cr_assert_eq(s, TM_OK, "%s", err.message);
    free(file.data);
    return bpe;
}

/* ======================================================================== */
/* Helpers                                                                  */
/* ======================================================================== */

static tm_bpe *load_fixture(const char *relative) {
    char *path = tm_fixture(relative);
    tm_gguf *g = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_gguf_open(&g, path, &err), TM_OK, "%s", err.message);
    tm_bpe *bpe = NULL;
    cr_assert_eq(tm_bpe_from_gguf(&bpe, g, &err), TM_OK, "%s", err.message);
    tm_gguf_close(g);
    free(path);
    return bpe;
}

static size_t encode(const tm_bpe *bpe, const char *text, size_t size, int32_t **ids) {
    size_t n = 0;
    tm_error err = {0};
    tm_status s = tm_bpe_encode(bpe, text, size, ids, &n, &err);
    cr_assert_eq(s, TM_OK, "encode: %s", err.message);
    return n;
}

/* Space-separated ids into want; returns the count. */
static size_t parse_ids(const char *line, int32_t *want, size_t capacity) {
    size_t n = 0;
    for (const char *p = line;;) {
        char *after;
        long v = strtol(p, &after, 10);
        if (after == p) break;
        cr_assert_lt(n, capacity);
        want[n++] = (int32_t)v;
        p = after;
    }
    return n;
}

static bool same_ids(const int32_t *a, size_t n_a, const int32_t *b, size_t n_b) {
    return n_a == n_b && (n_a == 0 || memcmp(a, b, n_a * sizeof *a) == 0);
}

static void expect_ids(const tm_bpe *bpe, const char *text, const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = encode(bpe, text, strlen(text), &ids);
    cr_expect(same_ids(ids, n, want, n_want), "\"%s\": %zu ids, expected %zu", text, n, n_want);
    for (size_t i = 0; i < n && i < n_want; i++)
        cr_expect_eq(ids[i], want[i], "\"%s\": id %zu is %d, expected %d", text, i, ids[i], want[i]);
    free(ids);
}

/* decode(encode(text)) must give text back. */
static void expect_round_trip(const tm_bpe *bpe, const char *text, size_t size) {
    int32_t *ids = NULL;
    size_t n = encode(bpe, text, size, &ids);
    char *back = NULL;
    size_t back_size = 0;
    tm_error err = {0};
    cr_assert_eq(tm_bpe_decode(bpe, ids, n, &back, &back_size, &err), TM_OK, "%s", err.message);
    cr_expect(back_size == size && memcmp(back, text, size) == 0, "round trip of %zu bytes gives %zu bytes", size,
              back_size);
    cr_expect_eq(back[back_size], '\0');
    free(back);
    free(ids);
}

/* A copy of the Llama 3 vocabulary and merges under another pre-tokenizer
 * ("-": no tokenizer.ggml.pre at all). */
static buffer llama_bpe_variant_bytes(const char *pre, int32_t bos, bool add_bos_false);
static tm_bpe *build_llama_bpe_variant(const char *pre) {
    buffer file = llama_bpe_variant_bytes(pre, -1, false);
    tm_bpe *bpe = NULL;
    tm_error err = {0};
    cr_assert_eq(build_from_bytes(&file, &bpe, &err), TM_OK, "%s", err.message);
    free(file.data);
    return bpe;
}

/* The bytes of that copy; bos >= 0 adds tokenizer.ggml.bos_token_id, and
 * add_bos_false tokenizer.ggml.add_bos_token = false (as Qwen2's GGUFs). */
static buffer llama_bpe_variant_bytes(const char *pre, int32_t bos, bool add_bos_false) {
    char *path = tm_fixture(LLAMA_BPE);
    tm_gguf *g = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_gguf_open(&g, path, &err), TM_OK, "%s", err.message);
    const tm_gguf_value *tokens = tm_gguf_find(g, "tokenizer.ggml.tokens");
    const tm_gguf_value *types = tm_gguf_find(g, "tokenizer.ggml.token_type");
    const tm_gguf_value *merges = tm_gguf_find(g, "tokenizer.ggml.merges");
    cr_assert(tokens && types && merges);
    size_t n_tokens = (size_t)tokens->as.array.count, n_merges = (size_t)merges->as.array.count;
    const char **items = calloc(n_tokens > n_merges ? n_tokens : n_merges, sizeof *items);
    size_t *sizes = calloc(n_tokens > n_merges ? n_tokens : n_merges, sizeof *sizes);
    int32_t *type_values = malloc(n_tokens * sizeof *type_values);
    cr_assert(items && sizes && type_values);

    metadata m = {0};
    kv_string(&m, "tokenizer.ggml.model", "gpt2");
    if (strcmp(pre, "-") != 0) kv_string(&m, "tokenizer.ggml.pre", pre);
    for (size_t i = 0; i < n_tokens; i++) {
        items[i] = tokens->as.array.items[i].as.string.data;
        sizes[i] = (size_t)tokens->as.array.items[i].as.string.size;
        type_values[i] = (int32_t)tm_gguf_array_i64(types, i);
    }
    kv_strings(&m, "tokenizer.ggml.tokens", items, sizes, n_tokens);
    kv_i32s(&m, "tokenizer.ggml.token_type", type_values, n_tokens);
    for (size_t i = 0; i < n_merges; i++) {
        items[i] = merges->as.array.items[i].as.string.data;
        sizes[i] = (size_t)merges->as.array.items[i].as.string.size;
    }
    kv_strings(&m, "tokenizer.ggml.merges", items, sizes, n_merges);
    if (bos >= 0) kv_u32(&m, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (add_bos_false) {
        put_string(&m.kvs, "tokenizer.ggml.add_bos_token");
        put_u32(&m.kvs, TM_GGUF_BOOL);
        put_u8(&m.kvs, 0);
        m.n_kv++;
    }
    buffer file = finish_gguf(&m);
    tm_gguf_close(g);
    free(items);
    free(sizes);
    free(type_values);
    free(path);
    return file;
}

/* ======================================================================== */
/* llama.cpp's vectors                                                      */
/* ======================================================================== */

Test(tokenizer_bpe, llama_cpp_llama_bpe_vectors) {
    tm_bpe *bpe = load_fixture(LLAMA_BPE);
    char *inp_path = tm_fixture("tokenizer-tests/ggml-vocab-llama-bpe.gguf.inp");
    char *out_path = tm_fixture("tokenizer-tests/ggml-vocab-llama-bpe.gguf.out");
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
        size_t n_want = parse_ids(line, want, sizeof want / sizeof *want);
        int32_t *ids = NULL;
        size_t n = encode(bpe, inputs[n_lines], sizes[n_lines], &ids);
        bool same = same_ids(ids, n, want, n_want);
        cr_expect(same, "case %zu (\"%s\"): got %zu ids, expected %zu", n_lines, inputs[n_lines], n, n_want);
        passed += same;
        free(ids);
        expect_round_trip(bpe, inputs[n_lines], sizes[n_lines]);
        line = end ? end + 1 : NULL;
    }
    cr_expect_eq(n_lines, n_inputs, "%zu expected lines for %zu inputs", n_lines, n_inputs);
    cr_expect_eq(n_inputs, 46);
    cr_log_info("llama.cpp llama-bpe vectors: %zu of %zu cases pass", passed, n_inputs);
    cr_expect_eq(passed, n_inputs);

    for (size_t i = 0; i < n_inputs; i++) free(inputs[i]);
    free(inputs);
    free(sizes);
    free(inp);
    free(expected);
    free(inp_path);
    free(out_path);
    tm_bpe_free(bpe);
}

/* ======================================================================== */
/* More ids from llama.cpp, four pre-tokenizers                             */
/* ======================================================================== */

/* Made by llama.cpp (see the file head) for strings that probe where a
 * regex engine and llama.cpp's splitters could part: contractions in mixed
 * case and U+017F, U+0085 (White_Space, a control), U+180E (PCRE2's \s, not
 * White_Space), letters and digits that Unicode 15.0/15.1 added, no-break
 * and ideographic spaces, CR/LF runs, marks, emoji, controls, and random
 * mixes of these. Ids per pre-tokenizer: llama-bpe (the fixture itself),
 * qwen2, gpt-2, and the default (no tokenizer.ggml.pre). */
static const struct {
    const char *text;
    const char *ids[4];
} LLAMA_CPP_CASES[] = {
    /* 0049 0027 004D 0020 0068 0065 0072 0065 */
    {"I\047M here",
     {"40 28703 1618", "40 28703 1618",
      "40 6 44 1618", "40 6 44 1618"}},
    /* 0027 0052 0065 0020 0027 0072 0045 0020 0027 0056 0045 */
    {"\047Re \047rE \047VE",
     {"50527 364 81 36 364 4592", "50527 364 81 36 364 4592",
      "6 697 364 81 36 364 4592", "6 697 220 6 81 36 220 6 4592"}},
    /* 0078 0027 017F 0020 017F 0027 0073 */
    {"x\047\305\277 \305\277\047s",
     {"87 6 129 123 27006 123 596", "87 6 129 123 27006 123 596",
      "87 6 129 123 27006 123 596", "87 6 129 123 27006 123 6 82"}},
    /* 0085 0078 0020 0085 0085 0079 */
    {"\302\205x \302\205\302\205y",
     {"116360 87 2188 227 116360 88", "116360 87 2188 227 116360 88",
      "116360 87 2188 227 116360 88", "116360 87 2188 227 116360 88"}},
    /* 0061 180E 0062 0020 180E */
    {"a\341\240\216b \341\240\216",
     {"64 157 254 236 65 87189 254 236", "64 157 254 236 65 87189 254 236",
      "64 157 254 236 65 87189 254 236", "64 157 254 236 65 87189 254 236"}},
    /* 0031 0032 0033 0034 0035 0036 0037 0020 0031 0032 0020 217B 00BD 00B2 */
    {"1234567 12 \342\205\273\302\275\302\262",
     {"4513 10961 22 220 717 220 71567 119 27154 30556", "16 17 18 19 20 21 22 220 16 17 220 71567 119 27154 30556",
      "4513 1774 3080 220 717 2928 227 119 27154 30556", "4513 10961 22 220 717 220 71567 119 27154 30556"}},
    /* 0020 0020 000A 000A 0020 0078 */
    {"  \012\012 x",
     {"19124 865", "19124 865",
      "19124 865", "19124 865"}},
    /* 000D 000A 000D 000A 0009 0009 0066 006F 006F 0020 0020 */
    {"\015\012\015\012\011\011foo  ",
     {"881 197 197 8134 256", "881 197 197 8134 256",
      "881 197 197 8134 256", "881 197 197 8134 256"}},
    /* 0048 0065 006C 006C 006F 00A0 0057 006F 0072 006C 0064 3000 0021 */
    {"Hello\302\240World\343\200\200\041",
     {"9906 4194 10343 23249 0", "9906 4194 10343 23249 0",
      "9906 4194 10343 23249 0", "9906 4194 10343 23249 0"}},
    /* 0044 004F 004E 0027 0054 0020 0064 006F 006E 0027 0074 0020 0044 006F 006E 0027 0054 */
    {"DON\047T don\047t Don\047T",
     {"85741 17773 1541 956 4418 17773", "85741 17773 1541 956 4418 17773",
      "85741 6 51 1541 956 4418 6 51", "85741 6 51 1541 6 83 4418 6 51"}},
    /* 1E4D0 0062 003F 0066 0020 2EBF0 31350 */
    {"\360\236\223\220b\077f \360\256\257\260\360\261\215\220",
     {"172 252 241 238 65 90009 109697 106 107 108 172 109 235 238", "172 252 241 238 65 90009 109697 106 107 108 172 109 235 238",
      "172 252 241 238 65 30 69 109697 106 107 108 172 109 235 238", "172 252 241 238 65 30 69 109697 106 107 108 172 109 235 238"}},
    /* 1D2C0 1D2C1 1D2C2 1D2C3 */
    {"\360\235\213\200\360\235\213\201\360\235\213\202\360\235\213\203",
     {"57352 233 222 57352 233 223 57352 233 224 57352 233 225", "57352 233 222 57352 233 223 57352 233 224 57352 233 225",
      "57352 233 222 57352 233 223 57352 233 224 57352 233 225", "57352 233 222 57352 233 223 57352 233 224 57352 233 225"}},
    /* 2028 2029 0020 205F 202F 002E */
    {"\342\200\250\342\200\251 \342\201\237\342\200\257\056",
     {"378 101 378 102 78237 253 113012 13", "378 101 378 102 78237 253 113012 13",
      "378 101 378 102 78237 253 113012 13", "378 101 378 102 78237 253 113012 13"}},
    /* 006E 0061 00EF 0076 0065 0020 0063 0061 0066 00E9 */
    {"na\303\257ve caf\303\251",
     {"3458 38672 588 53050", "3458 38672 588 53050",
      "3458 38672 588 53050", "3458 38672 588 53050"}},
    /* 0915 093F 0938 */
    {"\340\244\225\340\244\277\340\244\270",
     {"65804 100511", "65804 100511",
      "65804 39951 79468", "65804 39951 79468"}},
    /* 1F600 1F44D 1F3FD 0020 1F1FA 1F1F8 */
    {"\360\237\230\200\360\237\221\215\360\237\217\275 \360\237\207\272\360\237\207\270",
     {"76460 222 9468 239 235 9468 237 121 11410 229 118 9468 229 116", "76460 222 9468 239 235 9468 237 121 11410 229 118 9468 229 116",
      "76460 222 9468 239 235 9468 237 121 11410 229 118 9468 229 116", "76460 222 9468 239 235 9468 237 121 11410 229 118 9468 229 116"}},
    /* 002E 002E 002E 0021 0021 0021 003F 003F 003F 0020 002D 002D 002D */
    {"\056\056\056\041\041\041\077\077\077 \055\055\055",
     {"1131 12340 34115 12730", "1131 12340 34115 12730",
      "1131 12340 34115 12730", "1131 12340 34115 220 4521"}},
    /* 0024 002B 003C 003D 003E 005E 007E 007C 0060 0020 0040 0023 */
    {"\044\053\074\075\076\136\176\174\140 \100\043",
     {"3 10 27 2228 61 93 91 63 571 2", "3 10 27 2228 61 93 91 63 571 2",
      "3 10 27 2228 61 93 91 63 571 2", "3 10 27 2228 61 93 91 63 220 31 2"}},
    /* 0663 0664 0665 0666 0020 0661 0662 */
    {"\331\243\331\244\331\245\331\246 \331\241\331\242",
     {"117413 124079 124043 149 99 220 109610 110546", "117413 124079 124043 149 99 220 109610 110546",
      "117413 124079 124043 149 99 100256 94 110546", "117413 124079 124043 149 99 220 109610 110546"}},
    /* 00AD 200B 200D 2060 0078 */
    {"\302\255\342\200\213\342\200\215\342\201\240x",
     {"5879 16067 102470 53233 254 87", "5879 16067 102470 53233 254 87",
      "5879 16067 102470 53233 254 87", "5879 16067 102470 53233 254 87"}},
    /* 1E030 0061 11F05 */
    {"\360\236\200\260a\360\221\274\205",
     {"172 252 222 108 64 172 239 120 227", "172 252 222 108 64 172 239 120 227",
      "172 252 222 108 64 172 239 120 227", "172 252 222 108 64 172 239 120 227"}},
    /* 003A 000A 000A 003A 000D 003A */
    {"\072\012\012\072\015\072",
     {"1473 25 201 25", "1473 25 201 25",
      "25 198 198 25 201 25", "25 271 25 201 25"}},
    /* 0001 001F 007F 0080 */
    {"\001\037\177\302\200",
     {"189 219 221 42516", "189 219 221 42516",
      "189 219 221 42516", "189 219 221 42516"}},
    /* 0064 006F 006E 0027 0074 000A 0027 006C 006C */
    {"don\047t\012\047ll",
     {"15357 956 198 3358", "15357 956 198 3358",
      "15357 956 198 3358", "15357 6 83 198 6 657"}},
    /* 0078 180E 180E 002E */
    {"x\341\240\216\341\240\216\056",
     {"87 157 254 236 157 254 236 13", "87 157 254 236 157 254 236 13",
      "87 157 254 236 157 254 236 13", "87 157 254 236 157 254 236 13"}},
    /* 0020 180E 180E 0021 */
    {" \341\240\216\341\240\216\041",
     {"87189 254 236 157 254 236 0", "87189 254 236 157 254 236 0",
      "87189 254 236 157 254 236 0", "87189 254 236 157 254 236 0"}},
    /* 180E 180E 000A */
    {"\341\240\216\341\240\216\012",
     {"157 254 236 157 254 236 198", "157 254 236 157 254 236 198",
      "157 254 236 157 254 236 198", "157 254 236 157 254 236 198"}},
    /* 0061 0062 180E 0020 0020 0063 0064 */
    {"ab\341\240\216  cd",
     {"370 157 254 236 220 15667", "370 157 254 236 220 15667",
      "370 157 254 236 220 15667", "370 157 254 236 220 15667"}},
    /* 0062 1E4D0 1E4D1 0020 003F 1E4D0 1E4D1 */
    {"b\360\236\223\220\360\236\223\221 \077\360\236\223\220\360\236\223\221",
     {"65 172 252 241 238 172 252 241 239 949 172 252 241 238 172 252 241 239", "65 172 252 241 238 172 252 241 239 949 172 252 241 238 172 252 241 239",
      "65 172 252 241 238 172 252 241 239 949 172 252 241 238 172 252 241 239", "65 172 252 241 238 172 252 241 239 220 30 172 252 241 238 172 252 241 239"}},
    /* 2EBF0 2EBF1 2EBF2 */
    {"\360\256\257\260\360\256\257\261\360\256\257\262",
     {"172 106 107 108 172 106 107 109 172 106 107 110", "172 106 107 108 172 106 107 109 172 106 107 110",
      "172 106 107 108 172 106 107 109 172 106 107 110", "172 106 107 108 172 106 107 109 172 106 107 110"}},
    /* 0078 31350 31351 */
    {"x\360\261\215\220\360\261\215\221",
     {"87 172 109 235 238 172 109 235 239", "87 172 109 235 238 172 109 235 239",
      "87 172 109 235 238 172 109 235 239", "87 172 109 235 238 172 109 235 239"}},
    /* 0031 1D2C0 1D2C1 1D2C2 1D2C3 */
    {"1\360\235\213\200\360\235\213\201\360\235\213\202\360\235\213\203",
     {"16 57352 233 222 57352 233 223 57352 233 224 57352 233 225", "16 57352 233 222 57352 233 223 57352 233 224 57352 233 225",
      "16 57352 233 222 57352 233 223 57352 233 224 57352 233 225", "16 57352 233 222 57352 233 223 57352 233 224 57352 233 225"}},
    /* 11F50 11F51 11F52 11F53 */
    {"\360\221\275\220\360\221\275\221\360\221\275\222\360\221\275\223",
     {"172 239 121 238 172 239 121 239 172 239 121 240 172 239 121 241", "172 239 121 238 172 239 121 239 172 239 121 240 172 239 121 241",
      "172 239 121 238 172 239 121 239 172 239 121 240 172 239 121 241", "172 239 121 238 172 239 121 239 172 239 121 240 172 239 121 241"}},
    /* 0061 11F43 11F44 0062 */
    {"a\360\221\275\203\360\221\275\204b",
     {"64 172 239 121 225 172 239 121 226 65", "64 172 239 121 225 172 239 121 226 65",
      "64 172 239 121 225 172 239 121 226 65", "64 172 239 121 225 172 239 121 226 65"}},
    /* 0078 0027 017F 0061 0020 0027 017F 0074 */
    {"x\047\305\277a \047\305\277t",
     {"87 6 129 123 64 364 129 123 83", "87 6 129 123 64 364 129 123 83",
      "87 6 129 123 64 364 129 123 83", "87 6 129 123 64 220 6 129 123 83"}},
    /* 0020 180E 0062 */
    {" \341\240\216b",
     {"87189 254 236 65", "87189 254 236 65",
      "87189 254 236 65", "87189 254 236 65"}},
    /* 180E 002E 0062 */
    {"\341\240\216\056b",
     {"157 254 236 13 65", "157 254 236 13 65",
      "157 254 236 13 65", "157 254 236 13 65"}},
    /* 0020 1D2C0 */
    {" \360\235\213\200",
     {"220 57352 233 222", "220 57352 233 222",
      "82350 233 222", "220 57352 233 222"}},
    /* 31350 0020 1D2C0 */
    {"\360\261\215\220 \360\235\213\200",
     {"172 109 235 238 220 57352 233 222", "172 109 235 238 220 57352 233 222",
      "172 109 235 238 82350 233 222", "172 109 235 238 220 57352 233 222"}},
    /* 11F04 002E 0062 */
    {"\360\221\274\204\056b",
     {"172 239 120 226 960", "172 239 120 226 960",
      "172 239 120 226 13 65", "172 239 120 226 13 65"}},
    /* 1E4D0 002E 0061 */
    {"\360\236\223\220\056a",
     {"172 252 241 238 5973", "172 252 241 238 5973",
      "172 252 241 238 13 64", "172 252 241 238 13 64"}},
    /* 0064 0027 002E 1D2C0 E0001 002E 0020 0062 */
    {"d\047\056\360\235\213\200\363\240\200\201\056 b",
     {"67 4527 57352 233 222 175 64319 223 13 293", "67 4527 57352 233 222 175 64319 223 13 293",
      "67 4527 57352 233 222 175 64319 223 13 293", "67 4527 57352 233 222 175 64319 223 13 293"}},
    /* 2EBF0 1E4D0 000D 00BD 0027 0058 */
    {"\360\256\257\260\360\236\223\220\015\302\275\047X",
     {"172 106 107 108 172 252 241 238 201 27154 6 55", "172 106 107 108 172 252 241 238 201 27154 6 55",
      "172 106 107 108 172 252 241 238 201 27154 6 55", "172 106 107 108 172 252 241 238 201 27154 6 55"}},
    /* 0020 0378 000D 1E4D0 00BD 005A 0053 0027 0062 */
    {" \315\270\015\360\236\223\220\302\275ZS\047b",
     {"220 137 116 201 172 252 241 238 27154 57 50 91953", "220 137 116 201 172 252 241 238 27154 57 50 91953",
      "220 137 116 201 172 252 241 238 27154 57 50 6 65", "220 137 116 201 172 252 241 238 27154 57 50 6 65"}},
    /* 0009 0061 004D 000D 000D 003F */
    {"\011aM\015\015\077",
     {"11575 44 201 201 30", "11575 44 201 201 30",
      "197 64 44 201 201 30", "197 64 44 201 201 30"}},
    /* 0054 00A0 00B2 1E4D0 11F50 1F600 002E 003F 004D */
    {"T\302\240\302\262\360\236\223\220\360\221\275\220\360\237\230\200\056\077M",
     {"51 4194 30556 172 252 241 238 172 239 121 238 76460 222 82508 44", "51 4194 30556 172 252 241 238 172 239 121 238 76460 222 82508 44",
      "51 4194 30556 172 252 241 238 172 239 121 238 76460 222 82508 44", "51 4194 30556 172 252 241 238 172 239 121 238 76460 222 82508 44"}},
    /* 0378 D55C 0064 */
    {"\315\270\355\225\234d",
     {"137 116 24486 67", "137 116 24486 67",
      "137 116 24486 67", "137 116 24486 67"}},
    /* 0044 002C 006D 0054 0416 0027 002D 1E4D0 */
    {"D\054mT\320\226\047\055\360\236\223\220",
     {"35 13387 51 104631 25279 172 252 241 238", "35 13387 51 104631 25279 172 252 241 238",
      "35 11 76 51 104631 25279 172 252 241 238", "35 11 76 51 104631 25279 172 252 241 238"}},
    /* 1F600 002C 0062 */
    {"\360\237\230\200\054b",
     {"76460 222 11 65", "76460 222 11 65",
      "76460 222 11 65", "76460 222 11 65"}},
    /* 2EBF0 00DF 0021 002E 0020 1F600 003F 1D2C0 */
    {"\360\256\257\260\303\237\041\056 \360\237\230\200\077\360\235\213\200",
     {"172 106 107 108 8156 15725 91416 30 57352 233 222", "172 106 107 108 8156 15725 91416 30 57352 233 222",
      "172 106 107 108 8156 15725 91416 30 57352 233 222", "172 106 107 108 8156 15725 91416 30 57352 233 222"}},
    /* 0020 0058 0027 D55C 00BD 0053 1E4D0 0058 1F600 1F600 */
    {" X\047\355\225\234\302\275S\360\236\223\220X\360\237\230\200\360\237\230\200",
     {"1630 6 24486 27154 50 172 252 241 238 55 76460 222 76460 222", "1630 6 24486 27154 50 172 252 241 238 55 76460 222 76460 222",
      "1630 6 24486 27154 50 172 252 241 238 55 76460 222 76460 222", "1630 6 24486 27154 50 172 252 241 238 55 76460 222 76460 222"}},
    /* 1D2C0 11F50 0009 2EBF0 0054 00DF 0061 */
    {"\360\235\213\200\360\221\275\220\011\360\256\257\260T\303\237a",
     {"57352 233 222 172 239 121 238 197 172 106 107 108 51 8156 64", "57352 233 222 172 239 121 238 197 172 106 107 108 51 8156 64",
      "57352 233 222 172 239 121 238 197 172 106 107 108 51 8156 64", "57352 233 222 172 239 121 238 197 172 106 107 108 51 8156 64"}},
    /* 0416 0062 004D 004D 002E 002E 00DF 11F50 */
    {"\320\226bMM\056\056\303\237\360\221\275\220",
     {"104631 65 8195 497 8156 172 239 121 238", "104631 65 8195 497 8156 172 239 121 238",
      "104631 65 8195 497 8156 172 239 121 238", "104631 65 8195 497 8156 172 239 121 238"}},
    /* 2EBF0 0063 4E2D 0027 0059 0378 0064 0064 0061 */
    {"\360\256\257\260c\344\270\255\047Y\315\270dda",
     {"172 106 107 108 66 16325 6 56 137 116 72587", "172 106 107 108 66 16325 6 56 137 116 72587",
      "172 106 107 108 66 16325 6 56 137 116 72587", "172 106 107 108 66 16325 6 56 137 116 72587"}},
    /* 0064 00B2 00B2 0027 005A 004D 0009 0020 0085 00A0 */
    {"d\302\262\302\262\047ZM\011 \302\205\302\240",
     {"67 30556 30556 6 57 44 197 2188 227 4194", "67 30556 30556 6 57 44 197 2188 227 4194",
      "67 30556 30556 6 57 44 197 2188 227 4194", "67 30556 30556 6 57 44 197 2188 227 4194"}},
    /* 0058 0059 000A 006D 0073 3000 00B2 2EBF0 003F */
    {"XY\012ms\343\200\200\302\262\360\256\257\260\077",
     {"16760 198 1026 23249 30556 172 106 107 108 30", "16760 198 1026 23249 30556 172 106 107 108 30",
      "16760 198 1026 23249 30556 172 106 107 108 30", "16760 198 1026 23249 30556 172 106 107 108 30"}},
    /* 0053 000A 00B2 0058 0378 */
    {"S\012\302\262X\315\270",
     {"50 198 30556 55 137 116", "50 198 30556 55 137 116",
      "50 198 30556 55 137 116", "50 198 30556 55 137 116"}},
    /* 1D2C0 0085 E0001 */
    {"\360\235\213\200\302\205\363\240\200\201",
     {"57352 233 222 116360 175 64319 223", "57352 233 222 116360 175 64319 223",
      "57352 233 222 116360 175 64319 223", "57352 233 222 116360 175 64319 223"}},
    /* 1E4D0 2EBF0 0059 002C 002E 003F 0020 2EBF0 */
    {"\360\236\223\220\360\256\257\260Y\054\056\077 \360\256\257\260",
     {"172 252 241 238 172 106 107 108 56 17974 30 109697 106 107 108", "172 252 241 238 172 106 107 108 56 17974 30 109697 106 107 108",
      "172 252 241 238 172 106 107 108 56 17974 30 109697 106 107 108", "172 252 241 238 172 106 107 108 56 17974 30 109697 106 107 108"}},
    /* 0061 002E 1D2C0 0074 0073 0054 0009 */
    {"a\056\360\235\213\200tsT\011",
     {"64 13 57352 233 222 2641 51 197", "64 13 57352 233 222 2641 51 197",
      "64 13 57352 233 222 2641 51 197", "64 13 57352 233 222 2641 51 197"}},
    /* 003F 0378 00BD 0059 0020 */
    {"\077\315\270\302\275Y ",
     {"30 137 116 27154 56 220", "30 137 116 27154 56 220",
      "30 137 116 27154 56 220", "30 137 116 27154 56 220"}},
    /* 002D 0044 005A 00B2 0063 003F D55C 180E */
    {"\055DZ\302\262c\077\355\225\234\341\240\216",
     {"9607 57 30556 66 30 24486 157 254 236", "9607 57 30556 66 30 24486 157 254 236",
      "12 35 57 30556 66 30 24486 157 254 236", "12 35 57 30556 66 30 24486 157 254 236"}},
    /* 000D 004D 003F 1D2C0 0416 0073 005A */
    {"\015M\077\360\235\213\200\320\226sZ",
     {"201 44 30 57352 233 222 104631 82 57", "201 44 30 57352 233 222 104631 82 57",
      "201 44 30 57352 233 222 104631 82 57", "201 44 30 57352 233 222 104631 82 57"}},
    /* 000D 00E9 006D 0053 11F50 002D 002C */
    {"\015\303\251mS\360\221\275\220\055\054",
     {"201 17060 50 172 239 121 238 37619", "201 17060 50 172 239 121 238 37619",
      "201 17060 50 172 239 121 238 37619", "201 17060 50 172 239 121 238 37619"}},
    /* 1E4D0 0074 002D 1F600 00A0 0378 0062 004D */
    {"\360\236\223\220t\055\360\237\230\200\302\240\315\270bM",
     {"172 252 241 238 83 12 76460 222 4194 137 116 65 44", "172 252 241 238 83 12 76460 222 4194 137 116 65 44",
      "172 252 241 238 83 12 76460 222 4194 137 116 65 44", "172 252 241 238 83 12 76460 222 4194 137 116 65 44"}},
};

Test(tokenizer_bpe, matches_llama_cpp_for_four_pre_tokenizers) {
    const char *pres[4] = {NULL, "qwen2", "gpt-2", "-"};
    const char *families[4] = {"llama3", "qwen2", "gpt2", "default"};
    size_t n_cases = sizeof LLAMA_CPP_CASES / sizeof *LLAMA_CPP_CASES, passed = 0;
    for (int f = 0; f < 4; f++) {
        tm_bpe *bpe = pres[f] ? build_llama_bpe_variant(pres[f]) : load_fixture(LLAMA_BPE);
        cr_expect_str_eq(tm_bpe_pre_family(bpe), families[f]);
        for (size_t i = 0; i < n_cases; i++) {
            int32_t want[256];
            size_t n_want = parse_ids(LLAMA_CPP_CASES[i].ids[f], want, sizeof want / sizeof *want);
            const char *text = LLAMA_CPP_CASES[i].text;
            int32_t *ids = NULL;
            size_t n = encode(bpe, text, strlen(text), &ids);
            bool same = same_ids(ids, n, want, n_want);
            cr_expect(same, "%s, case %zu: got %zu ids, expected %zu", families[f], i, n, n_want);
            passed += same;
            free(ids);
            expect_round_trip(bpe, text, strlen(text));
        }
        tm_bpe_free(bpe);
    }
    cr_log_info("llama.cpp pre-tokenizer cases: %zu of %zu pass", passed, 4 * n_cases);
}

Test(tokenizer_bpe, pre_tokenizer_names) {
    tm_bpe *bpe = build_llama_bpe_variant("qwen2");
    cr_expect_str_eq(tm_bpe_pre_name(bpe), "qwen2");
    cr_expect_not(tm_bpe_add_bos(bpe), "only Llama 3 adds BOS by default");
    tm_bpe_free(bpe);
    bpe = build_llama_bpe_variant("-");
    cr_expect_str_eq(tm_bpe_pre_name(bpe), "default");
    cr_expect_str_eq(tm_bpe_pre_family(bpe), "default");
    tm_bpe_free(bpe);
}

/* ======================================================================== */
/* The Llama 3 vocabulary                                                   */
/* ======================================================================== */

Test(tokenizer_bpe, llama_bpe_metadata_and_pieces) {
    tm_bpe *bpe = load_fixture(LLAMA_BPE);
    cr_expect_eq(tm_bpe_vocab_size(bpe), 128256);
    cr_expect_eq(tm_bpe_merge_count(bpe), 280147);
    cr_expect_eq(tm_bpe_bos(bpe), 128000);
    cr_expect_eq(tm_bpe_eos(bpe), 128001);
    cr_expect(tm_bpe_add_bos(bpe));
    cr_expect_str_eq(tm_bpe_pre_name(bpe), "llama-bpe");
    cr_expect_str_eq(tm_bpe_pre_family(bpe), "llama3");

    size_t size = 0;
    cr_expect_str_eq(tm_bpe_piece(bpe, 128000, &size), "<|begin_of_text|>");
    cr_expect_eq(size, 17);
    cr_expect_eq(tm_bpe_token_type(bpe, 128000), TM_TOKEN_CONTROL);
    cr_expect_eq(tm_bpe_token_type(bpe, 9906), TM_TOKEN_NORMAL);
    cr_expect_str_eq(tm_bpe_piece(bpe, 220, &size), "\xC4\xA0"); /* U+0120, the space byte */
    cr_expect_null(tm_bpe_piece(bpe, 128256, &size));
    cr_expect_eq(size, 0);
    cr_expect_null(tm_bpe_piece(bpe, -1, NULL));
    cr_expect_eq(tm_bpe_token_type(bpe, 128256), TM_TOKEN_UNUSED);

    char out[64];
    cr_expect_eq(tm_bpe_token_bytes(bpe, 220, out, sizeof out), 1);
    cr_expect_eq(out[0], ' ');
    cr_expect_eq(tm_bpe_token_bytes(bpe, 198, out, sizeof out), 1); /* U+010A */
    cr_expect_eq(out[0], '\n');
    cr_expect_eq(tm_bpe_token_bytes(bpe, 9906, out, sizeof out), 5);
    cr_expect(memcmp(out, "Hello", 5) == 0);
    /* A truncated copy still reports the full size. */
    memset(out, '#', sizeof out);
    cr_expect_eq(tm_bpe_token_bytes(bpe, 9906, out, 2), 5);
    cr_expect(memcmp(out, "He#", 3) == 0);
    cr_expect_eq(tm_bpe_token_bytes(bpe, 128000, out, sizeof out), 0, "control tokens decode to nothing");
    cr_expect_eq(tm_bpe_token_bytes(bpe, 128256, out, sizeof out), 0);
    cr_expect_eq(tm_bpe_token_bytes(bpe, -5, out, sizeof out), 0);
    cr_expect_geq(tm_bpe_max_token_bytes(bpe), 5);

    /* No special-token parsing: the text of BOS is ordinary text. */
    int32_t *ids = NULL;
    size_t n = encode(bpe, "<|begin_of_text|>", 17, &ids);
    cr_expect_gt(n, 1);
    for (size_t i = 0; i < n; i++) cr_expect_neq(ids[i], 128000);
    free(ids);
    tm_bpe_free(bpe);
}

Test(tokenizer_bpe, empty_text_and_bad_arguments) {
    tm_bpe *bpe = load_fixture(LLAMA_BPE);
    int32_t *ids = (int32_t *)1;
    size_t n = 7;
    tm_error err = {0};
    cr_expect_eq(tm_bpe_encode(bpe, "", 0, &ids, &n, &err), TM_OK);
    cr_expect_null(ids);
    cr_expect_eq(n, 0);
    cr_expect_eq(tm_bpe_encode(bpe, NULL, 0, &ids, &n, &err), TM_OK);
    cr_expect_eq(tm_bpe_encode(NULL, "a", 1, &ids, &n, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_bpe_encode(bpe, NULL, 3, &ids, &n, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_bpe_encode(bpe, "a", 1, NULL, &n, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_bpe_encode(bpe, "a", 1, &ids, NULL, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_bpe_encode(bpe, "a", 1, &ids, &n, NULL), TM_OK, "err may be NULL");
    free(ids);

    char *text = NULL;
    size_t size = 9;
    cr_expect_eq(tm_bpe_decode(bpe, NULL, 0, &text, &size, &err), TM_OK);
    cr_expect_eq(size, 0);
    cr_expect_str_eq(text, "");
    free(text);
    const int32_t junk[] = {-1, 128256, 128000, INT32_MAX};
    cr_expect_eq(tm_bpe_decode(bpe, junk, 4, &text, &size, &err), TM_OK);
    cr_expect_eq(size, 0, "ids outside the vocabulary and control tokens decode to nothing");
    free(text);
    cr_expect_eq(tm_bpe_decode(bpe, NULL, 2, &text, &size, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_bpe_decode(NULL, junk, 1, &text, &size, &err), TM_ERR_ARGUMENT);

    tm_bpe *none = (tm_bpe *)1;
    cr_expect_eq(tm_bpe_from_gguf(&none, NULL, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_bpe_from_gguf(NULL, NULL, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_bpe_vocab_size(NULL), 0);
    cr_expect_eq(tm_bpe_bos(NULL), -1);
    cr_expect_null(tm_bpe_pre_name(NULL));
    tm_bpe_free(NULL);
    tm_bpe_free(bpe);
}

Test(tokenizer_bpe, invalid_utf8_is_an_error) {
    tm_bpe *bpe = load_fixture(LLAMA_BPE);
    static const struct {
        const char *text;
        size_t offset;
    } cases[] = {
        {"ab\xFF" "cd", 2},    {"\xC0\x80", 0},         {"ok \xED\xA0\x80", 3},
        {"x\xE2\x82", 1},       {"\xF4\x90\x80\x80", 0}, {"tail\x80", 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int32_t *ids = (int32_t *)1;
        size_t n = 99;
        tm_error err = {0};
        tm_status s = tm_bpe_encode(bpe, cases[i].text, strlen(cases[i].text), &ids, &n, &err);
        cr_expect_eq(s, TM_ERR_FORMAT, "case %zu", i);
        cr_expect_null(ids);
        cr_expect_eq(n, 0);
        char where[64];
        snprintf(where, sizeof where, "offset %zu", cases[i].offset);
        cr_expect(strstr(err.message, where) != NULL, "case %zu: \"%s\" lacks \"%s\"", i, err.message, where);
    }
    tm_bpe_free(bpe);
}

/* ======================================================================== */
/* Round trips                                                              */
/* ======================================================================== */

static uint64_t rng_next(uint64_t *state) { /* splitmix64 */
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t put_code_point(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Random valid UTF-8 of up to max_chars characters: mostly ASCII (spaces,
 * newlines, quotes and letters weighted up), else any scalar value. */
static size_t random_text(uint64_t *state, char *out, size_t max_chars) {
    static const char ascii[] = "  \n\r\t'sStTdDlLmMvVeErR0123456789abcxyz.,!?-_()";
    size_t n_chars = (size_t)(rng_next(state) % (max_chars + 1)), at = 0;
    for (size_t i = 0; i < n_chars; i++) {
        uint64_t r = rng_next(state);
        uint32_t cp;
        switch (r % 4) {
        case 0: cp = (uint8_t)ascii[(r >> 8) % (sizeof ascii - 1)]; break;
        case 1: cp = (uint32_t)((r >> 8) % 0x80); break;
        case 2: cp = (uint32_t)((r >> 8) % 0x3000); break;
        default: cp = (uint32_t)((r >> 8) % 0x110000); break;
        }
        if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* surrogates are not scalar values */
        at += put_code_point(out + at, cp);
    }
    return at;
}

Test(tokenizer_bpe, round_trip_random_utf8) {
    tm_bpe *bpe = load_fixture(LLAMA_BPE);
    tm_bpe *gpt2 = build_llama_bpe_variant("gpt-2");
    uint64_t state = 42;
    char text[4 * 200];
    for (int i = 0; i < 400; i++) {
        size_t size = random_text(&state, text, 200);
        expect_round_trip(bpe, text, size);
        expect_round_trip(gpt2, text, size);
    }
    tm_bpe_free(gpt2);
    tm_bpe_free(bpe);
}

Test(tokenizer_bpe, long_pre_tokens_round_trip) {
    tm_bpe *bpe = load_fixture(LLAMA_BPE);
    enum { SIZE = 200000 };
    char *text = malloc(SIZE);
    cr_assert_not_null(text);
    /* One letter run (a single pre-token that no vocabulary entry covers,
     * merged pair by pair), then whitespace runs and a number run. */
    for (size_t i = 0; i < SIZE; i++) text[i] = (char)('a' + (i * 7 + i / 13) % 26);
    expect_round_trip(bpe, text, SIZE);
    for (size_t i = 0; i < SIZE; i++) text[i] = " \n\t"[(i / 5) % 3];
    expect_round_trip(bpe, text, SIZE);
    for (size_t i = 0; i < SIZE; i++) text[i] = (char)('0' + i % 10);
    int32_t *ids = NULL;
    size_t n = encode(bpe, text, SIZE, &ids);
    cr_expect_eq(n, (SIZE + 2) / 3, "Llama 3 takes digits three at a time");
    free(ids);
    free(text);
    tm_bpe_free(bpe);
}

/* Repeated words come from the per-call cache: the ids must not depend on
 * what else the text holds. */
Test(tokenizer_bpe, repeated_words_encode_as_alone) {
    tm_bpe *bpe = build_llama_bpe_variant("gpt-2"); /* every word merged, none whole */
    const char *words[] = {" the", " tokenizer", " öffentlich", " 12345", " x", "\n\n", " ...", " the"};
    char text[512] = "";
    int32_t all[512];
    size_t n_all = 0;
    for (int round = 0; round < 3; round++) {
        for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
            strcat(text, words[w]);
            int32_t *ids = NULL;
            size_t n = encode(bpe, words[w], strlen(words[w]), &ids);
            memcpy(all + n_all, ids, n * sizeof *ids);
            n_all += n;
            free(ids);
        }
    }
    int32_t *ids = NULL;
    size_t n = encode(bpe, text, strlen(text), &ids);
    cr_expect(same_ids(ids, n, all, n_all), "%zu ids, word by word %zu", n, n_all);
    free(ids);
    tm_bpe_free(bpe);
}

/* ======================================================================== */
/* Threads                                                                  */
/* ======================================================================== */

enum { THREAD_TEXTS = 40, THREADS = 4 };

typedef struct {
    const tm_bpe *bpe;
    char texts[THREAD_TEXTS][4 * 120];
    size_t sizes[THREAD_TEXTS];
    int32_t *expected[THREAD_TEXTS];
    size_t n_expected[THREAD_TEXTS];
    int mismatches[THREADS];
} thread_work;

typedef struct {
    thread_work *work;
    int index;
} thread_arg;

static void *encode_all(void *p) {
    thread_arg *arg = p;
    thread_work *w = arg->work;
    for (int round = 0; round < 5; round++) {
        for (int k = 0; k < THREAD_TEXTS; k++) {
            int i = (k + arg->index * 7) % THREAD_TEXTS; /* threads walk in different orders */
            int32_t *ids = NULL;
            size_t n = 0;
            if (tm_bpe_encode(w->bpe, w->texts[i], w->sizes[i], &ids, &n, NULL) != TM_OK ||
                !same_ids(ids, n, w->expected[i], w->n_expected[i]))
                w->mismatches[arg->index]++;
            free(ids);
        }
    }
    return NULL;
}

Test(tokenizer_bpe, threads_share_a_tokenizer) {
    tm_bpe *bpe = load_fixture(LLAMA_BPE);
    thread_work *w = calloc(1, sizeof *w);
    cr_assert_not_null(w);
    w->bpe = bpe;
    uint64_t state = 7;
    for (int i = 0; i < THREAD_TEXTS; i++) {
        w->sizes[i] = random_text(&state, w->texts[i], 120);
        w->n_expected[i] = encode(bpe, w->texts[i], w->sizes[i], &w->expected[i]);
    }
    pthread_t threads[THREADS];
    thread_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (thread_arg){w, t};
        cr_assert_eq(pthread_create(&threads[t], NULL, encode_all, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        cr_expect_eq(w->mismatches[t], 0, "thread %d saw %d different encodings", t, w->mismatches[t]);
    }
    for (int i = 0; i < THREAD_TEXTS; i++) free(w->expected[i]);
    free(w);
    tm_bpe_free(bpe);
}

/* ======================================================================== */
/* Synthetic vocabularies: merge order, user-defined tokens, fallbacks      */
/* ======================================================================== */

/* Byte ids in the synthetic vocabularies are the bytes themselves. */
enum { A = 'a', B = 'b', C = 'c', SPACE = ' ' };

Test(tokenizer_bpe, merges_apply_by_rank_not_length) {
    vocab v;
    vocab_init(&v, true);
    int32_t ab = vocab_add(&v, "ab", TM_TOKEN_NORMAL), bc = vocab_add(&v, "bc", TM_TOKEN_NORMAL);
    int32_t abc = vocab_add(&v, "abc", TM_TOKEN_NORMAL);
    vocab_merge(&v, "b c");
    vocab_merge(&v, "a b");
    vocab_merge(&v, "a bc");
    tm_bpe *bpe = build_vocab(&v, "gpt-2");
    expect_ids(bpe, "abc", (int32_t[]){abc}, 1); /* b+c, then a+bc */
    expect_ids(bpe, "ab", (int32_t[]){ab}, 1);
    expect_ids(bpe, "abab", (int32_t[]){ab, ab}, 2);
    tm_bpe_free(bpe);

    /* Without "a bc", b+c still goes first and a stays alone. */
    v.n_merges = 2;
    bpe = build_vocab(&v, "gpt-2");
    expect_ids(bpe, "abc", (int32_t[]){A, bc}, 2);
    tm_bpe_free(bpe);

    /* With a+b ranked first the same word ends as ab, c. */
    v.merges[0] = "a b";
    v.merges[1] = "b c";
    bpe = build_vocab(&v, "gpt-2");
    expect_ids(bpe, "abc", (int32_t[]){ab, C}, 2);
    tm_bpe_free(bpe);

    /* A repeated pair keeps its first rank (llama.cpp's bpe_ranks.emplace):
     * were the later "a b" to win, b+c (rank 1) would merge first. */
    v.merges[2] = "a b";
    v.n_merges = 3;
    bpe = build_vocab(&v, "gpt-2");
    cr_expect_eq(tm_bpe_merge_count(bpe), 3);
    expect_ids(bpe, "abc", (int32_t[]){ab, C}, 2);
    tm_bpe_free(bpe);
    vocab_free(&v);
}

Test(tokenizer_bpe, equal_ranks_merge_leftmost_first) {
    vocab v;
    vocab_init(&v, true);
    int32_t aa = vocab_add(&v, "aa", TM_TOKEN_NORMAL);
    vocab_merge(&v, "a a");
    tm_bpe *bpe = build_vocab(&v, "gpt-2");
    expect_ids(bpe, "aaa", (int32_t[]){aa, A}, 2);
    expect_ids(bpe, "aaaa", (int32_t[]){aa, aa}, 2);
    expect_ids(bpe, "aaaaa", (int32_t[]){aa, aa, A}, 3);
    tm_bpe_free(bpe);
    vocab_free(&v);
}

Test(tokenizer_bpe, llama3_takes_whole_tokens_without_merging) {
    vocab v;
    vocab_init(&v, true);
    int32_t abc = vocab_add(&v, "abc", TM_TOKEN_NORMAL); /* no merge reaches it */
    int32_t space_abc = vocab_add(&v, "\xC4\xA0" "abc", TM_TOKEN_NORMAL);
    tm_bpe *llama3 = build_vocab(&v, "llama-bpe"), *gpt2 = build_vocab(&v, "gpt-2");
    expect_ids(llama3, "abc abc", (int32_t[]){abc, space_abc}, 2);
    expect_ids(gpt2, "abc abc", (int32_t[]){A, B, C, SPACE, A, B, C}, 7);
    tm_bpe_free(llama3);
    tm_bpe_free(gpt2);
    vocab_free(&v);
}

Test(tokenizer_bpe, user_defined_tokens_are_cut_out_longest_first) {
    vocab v;
    vocab_init(&v, true);
    int32_t pq = vocab_add(&v, "PQ", TM_TOKEN_USER_DEFINED);
    int32_t qrs = vocab_add(&v, "QRS", TM_TOKEN_USER_DEFINED);
    int32_t control = vocab_add(&v, "<|c|>", TM_TOKEN_CONTROL);
    int32_t unused = vocab_add(&v, "", TM_TOKEN_NORMAL); /* llama.cpp warns and never matches it */
    tm_bpe *bpe = build_vocab(&v, "gpt-2");
    /* QRS (longer) is cut first over the whole text, so PQ no longer fits. */
    expect_ids(bpe, "PQRS", (int32_t[]){'P', qrs}, 2);
    expect_ids(bpe, "xPQ PQ", (int32_t[]){'x', pq, SPACE, pq}, 4);
    expect_ids(bpe, "PQPQ", (int32_t[]){pq, pq}, 2);

    /* Control tokens are not parsed from text. */
    int32_t *ids = NULL;
    size_t n = encode(bpe, "<|c|>", 5, &ids);
    cr_expect_eq(n, 5);
    for (size_t i = 0; i < n; i++) cr_expect_neq(ids[i], control);
    free(ids);

    char out[16];
    cr_expect_eq(tm_bpe_token_bytes(bpe, pq, out, sizeof out), 2);
    cr_expect(memcmp(out, "PQ", 2) == 0);
    cr_expect_eq(tm_bpe_token_bytes(bpe, control, out, sizeof out), 0);
    cr_expect_eq(tm_bpe_token_bytes(bpe, unused, out, sizeof out), 0);
    expect_round_trip(bpe, "xPQRS PQ\nQR", 11);
    tm_bpe_free(bpe);
    vocab_free(&v);
}

/* Llama 3's contractions are (?i:'s|'t|...) in tokenizer.json, but
 * llama.cpp matches ASCII letters only: PCRE2's caseless matching would also
 * take U+017F (long s) and cut "'ſa" into "'ſ" and "a". Here the whole
 * pre-token is one token, so one id shows the pre-token stayed whole. */
Test(tokenizer_bpe, contractions_are_ascii_only) {
    vocab v;
    vocab_init(&v, true);
    /* U+017F is C5 BF, spelled U+00C5 U+00BF in the byte alphabet. */
    int32_t quote_long_s_a = vocab_add(&v, "'\xC3\x85\xC2\xBF" "a", TM_TOKEN_NORMAL);
    int32_t quote_s = vocab_add(&v, "'s", TM_TOKEN_NORMAL), quote_capital_s = vocab_add(&v, "'S", TM_TOKEN_NORMAL);
    tm_bpe *bpe = build_vocab(&v, "llama-bpe");
    expect_ids(bpe, "'\xC5\xBF" "a", (int32_t[]){quote_long_s_a}, 1);
    expect_ids(bpe, "'sa", (int32_t[]){quote_s, A}, 2);
    expect_ids(bpe, "'Sa", (int32_t[]){quote_capital_s, A}, 2);
    tm_bpe_free(bpe);
    vocab_free(&v);
}

Test(tokenizer_bpe, a_byte_without_a_token_vanishes_as_in_llama_cpp) {
    vocab v;
    vocab_init(&v, true);
    free(v.tokens['z']);
    v.tokens['z'] = strdup("zz"); /* "z" is no longer a token */
    v.sizes['z'] = 2;
    tm_bpe *bpe = build_vocab(&v, "gpt-2");
    expect_ids(bpe, "azb", (int32_t[]){A, B}, 2);
    expect_ids(bpe, "z", NULL, 0);
    tm_bpe_free(bpe);
    vocab_free(&v);
}

/* ======================================================================== */
/* Malformed metadata                                                       */
/* ======================================================================== */

/* A small valid vocabulary (the 256 bytes and "ab", merge "a b") with one
 * thing changed at a time. */
typedef struct {
    const char *model;       /* NULL: absent */
    bool model_is_number;
    const char *pre;         /* NULL: absent */
    bool pre_is_number;
    int tokens;              /* 0 as usual, 1 absent, 2 empty, 3 integers */
    const char *last_token;  /* replaces "ab" (size last_size) */
    size_t last_size;
    int types;               /* 0 as usual, 1 one short, 2 the value 9 at id 5, 3 strings, 4 absent */
    int merges;              /* 0 as usual, 1 absent, 2 integers */
    const char *extra_merge; /* appended after "a b" */
    int bos;                 /* 0 absent, 1 id 1000, 2 int32 -1 */
    bool add_bos_is_number;
} variation;

static void expect_build_failure(variation var, tm_status code, const char *needle) {
    vocab v;
    vocab_init(&v, true);
    if (var.last_token) {
        v.tokens[v.n_tokens] = malloc(var.last_size ? var.last_size : 1);
        memcpy(v.tokens[v.n_tokens], var.last_token, var.last_size);
        v.sizes[v.n_tokens] = var.last_size;
        v.types[v.n_tokens++] = TM_TOKEN_NORMAL;
    } else {
        vocab_add(&v, "ab", TM_TOKEN_NORMAL);
    }
    metadata m = {0};
    if (var.model_is_number) kv_u32(&m, "tokenizer.ggml.model", 2);
    else if (var.model) kv_string(&m, "tokenizer.ggml.model", var.model);
    if (var.pre_is_number) kv_u32(&m, "tokenizer.ggml.pre", 3);
    else if (var.pre) kv_string(&m, "tokenizer.ggml.pre", var.pre);
    if (var.tokens == 0) kv_strings(&m, "tokenizer.ggml.tokens", (const char *const *)v.tokens, v.sizes, v.n_tokens);
    if (var.tokens == 2) kv_strings(&m, "tokenizer.ggml.tokens", NULL, NULL, 0);
    if (var.tokens == 3) kv_i32s(&m, "tokenizer.ggml.tokens", v.types, v.n_tokens);
    if (var.types == 2) v.types[5] = 9;
    if (var.types == 0 || var.types == 2) kv_i32s(&m, "tokenizer.ggml.token_type", v.types, v.n_tokens);
    if (var.types == 1) kv_i32s(&m, "tokenizer.ggml.token_type", v.types, v.n_tokens - 1);
    if (var.types == 3) kv_strings(&m, "tokenizer.ggml.token_type", (const char *const *)v.tokens, v.sizes, v.n_tokens);
    const char *merges[2] = {"a b", var.extra_merge};
    if (var.merges == 0) kv_strings(&m, "tokenizer.ggml.merges", merges, NULL, var.extra_merge ? 2 : 1);
    if (var.merges == 2) kv_i32s(&m, "tokenizer.ggml.merges", v.types, 2);
    if (var.bos == 1) kv_u32(&m, "tokenizer.ggml.bos_token_id", 1000);
    if (var.bos == 2) kv_i32(&m, "tokenizer.ggml.bos_token_id", -1);
    if (var.add_bos_is_number) kv_u32(&m, "tokenizer.ggml.add_bos_token", 1);
    buffer file = finish_gguf(&m);

    tm_bpe *bpe = NULL;
    tm_error err;
    tm_status s = build_from_bytes(&file, &bpe, &err);
    if (s == TM_OK) tm_bpe_free(bpe);
    cr_expect_eq(s, code, "expected %s, got %s: %s", tm_status_name(code), tm_status_name(s), err.message);
    cr_expect_not_null(strstr(err.message, needle), "message lacks \"%s\": %s", needle, err.message);
    free(file.data);
    vocab_free(&v);
}

Test(tokenizer_bpe, malformed_metadata_gives_clear_errors) {
    const variation ok = {.model = "gpt2"};
    variation v;

    v = ok, v.model = NULL;
    expect_build_failure(v, TM_ERR_NOT_FOUND, "no tokenizer.ggml.model");
    v = ok, v.model = "llama";
    expect_build_failure(v, TM_ERR_UNSUPPORTED, "\"llama\" is not byte-level BPE");
    v = ok, v.model_is_number = true;
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.model is not a string");
    v = ok, v.pre = "deepseek-llm";
    expect_build_failure(v, TM_ERR_UNSUPPORTED, "tokenizer.ggml.pre \"deepseek-llm\" is not a supported");
    v = ok, v.pre_is_number = true;
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.pre is not a string");

    v = ok, v.tokens = 1;
    expect_build_failure(v, TM_ERR_NOT_FOUND, "no tokenizer.ggml.tokens");
    v = ok, v.tokens = 2, v.types = 4; /* no token_type either, so the empty list is the fault */
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.tokens is empty");
    v = ok, v.tokens = 3;
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    v = ok, v.last_token = "a\xFF", v.last_size = 2;
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.tokens[256] is not valid UTF-8 at byte 1");
    static char long_token[70000];
    memset(long_token, 'x', sizeof long_token);
    v = ok, v.last_token = long_token, v.last_size = sizeof long_token;
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.tokens[256] is 70000 bytes long");

    v = ok, v.types = 1;
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.token_type has 256 entries but tokenizer.ggml.tokens has 257");
    v = ok, v.types = 2;
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.token_type[5] is 9");
    v = ok, v.types = 3;
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.token_type is not an array of integers");

    v = ok, v.merges = 1;
    expect_build_failure(v, TM_ERR_NOT_FOUND, "no tokenizer.ggml.merges");
    v = ok, v.merges = 2;
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.merges is not an array of strings");
    v = ok, v.extra_merge = "ab";
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.merges[1] \"ab\" is not two pieces separated by a space");
    v = ok, v.extra_merge = "a ";
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.merges[1] \"a \" is not two pieces");
    v = ok, v.extra_merge = " a";
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.merges[1] \" a\" is not two pieces");
    v = ok, v.extra_merge = "";
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.merges[1] \"\" is not two pieces");
    v = ok, v.extra_merge = "q# b";
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.merges[1] \"q# b\": its left piece is not in the vocabulary");
    v = ok, v.extra_merge = "a q#";
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.merges[1] \"a q#\": its right piece is not in the vocabulary");
    v = ok, v.extra_merge = "b a";
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.merges[1] \"b a\": the merged piece is not in the vocabulary");

    v = ok, v.bos = 1;
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.bos_token_id = 1000 is outside the vocabulary of 257 tokens");
    v = ok, v.bos = 2;
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.bos_token_id is not a non-negative integer");
    v = ok, v.add_bos_is_number = true;
    expect_build_failure(v, TM_ERR_FORMAT, "tokenizer.ggml.add_bos_token is not a boolean");
}

/* The same builder with nothing changed must succeed, or the failures above
 * would prove nothing. */
Test(tokenizer_bpe, the_unchanged_variation_builds) {
    vocab v;
    vocab_init(&v, true);
    int32_t ab = vocab_add(&v, "ab", TM_TOKEN_NORMAL);
    vocab_merge(&v, "a b");
    tm_bpe *bpe = build_vocab(&v, NULL);
    cr_expect_str_eq(tm_bpe_pre_family(bpe), "default");
    cr_expect_eq(tm_bpe_bos(bpe), -1, "no bos_token_id in the file");
    expect_ids(bpe, "ab", (int32_t[]){ab}, 1);
    tm_bpe_free(bpe);
    vocab_free(&v);
}

/* The same vectors through the public tokenizer (tm_tokenizer_load picks BPE
 * from tokenizer.ggml.model = "gpt2"), with BOS, and the streaming decoder
 * giving the text back. */
Test(tokenizer_bpe, public_tokenizer_api_on_the_llama_cpp_vectors) {
    char *path = tm_fixture(LLAMA_BPE);
    tm_tokenizer *t = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_load(&t, path, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_tokenizer_vocab_size(t), 128256);
    cr_assert_str_eq(tm_tokenizer_kind(t), "bpe-llama3");
    char *inp_path = tm_fixture("tokenizer-tests/ggml-vocab-llama-bpe.gguf.inp");
    char *out_path = tm_fixture("tokenizer-tests/ggml-vocab-llama-bpe.gguf.out");
    size_t inp_size = 0, out_size = 0;
    char *inp = tm_test_read_file(inp_path, &inp_size), *expected = tm_test_read_file(out_path, &out_size);
    char **inputs;
    size_t *sizes;
    size_t n_inputs = tm_test_split_vocab_inputs(inp, inp_size, &inputs, &sizes), n_lines = 0;
    for (char *line = expected; line && *line; n_lines++) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        int32_t want[512];
        size_t n_want = parse_ids(line, want, sizeof want / sizeof *want);
        int32_t *ids = NULL;
        size_t n = 0;
        cr_assert_eq(tm_tokenizer_encode(t, inputs[n_lines], sizes[n_lines], true, &ids, &n, &err), TM_OK, "%s",
                     err.message);
        cr_assert_eq(ids[0], tm_tokenizer_bos(t));
        cr_expect(same_ids(ids + 1, n - 1, want, n_want), "case %zu", n_lines);
        char *text = NULL;
        size_t size = 0;
        cr_assert_eq(tm_tokenizer_decode(t, ids, n, &text, &size, &err), TM_OK, "%s", err.message);
        cr_expect(size == sizes[n_lines] && memcmp(text, inputs[n_lines], size) == 0, "case %zu round trip", n_lines);
        free(text);
        free(ids);
        line = end ? end + 1 : NULL;
    }
    cr_expect_eq(n_lines, n_inputs);
    for (size_t i = 0; i < n_inputs; i++) free(inputs[i]);
    free(inputs);
    free(sizes);
    free(inp);
    free(expected);
    free(inp_path);
    free(out_path);
    free(path);
    tm_tokenizer_free(t);
}

/* The detector encodes a prompt as generate does: with BOS only where the
 * tokenizer adds one. A Qwen2-style vocabulary (pre "qwen2", a BOS id,
 * add_bos_token false) generates from the prompt's ids alone; the detector
 * put BOS in front anyway, so the token after a prompt shorter than the
 * context width was scored with a history generation never had. Here the
 * prompt's ids counted by the detector equal the tokenizer's own encoding. */
Test(tokenizer_bpe, detector_encodes_the_prompt_as_generate_does) {
    buffer file = llama_bpe_variant_bytes("qwen2", 128000, true);
    char *dir = tm_test_scratch_dir();
    char *path = tm_test_path(dir, "qwen-like.gguf");
    cr_assert_eq(tm_test_write_file(path, file.data, file.size), 0);
    free(file.data);
    tm_tokenizer *t = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_load(&t, path, &err), TM_OK, "%s", err.message);
    cr_assert_not(tm_tokenizer_adds_bos(t));
    int32_t *ids = NULL;
    size_t n = 0;
    const char prompt[] = "Hello there";
    cr_assert_eq(tm_tokenizer_encode(t, prompt, strlen(prompt), tm_tokenizer_adds_bos(t), &ids, &n, &err), TM_OK);
    cr_assert(n > 0 && ids[0] != 128000);
    free(ids);
    tm_wm_config config;
    tm_wm_config_default(&config, TM_WM_GUMBEL);
    uint8_t bytes[32] = {7};
    tm_wm_key *key = NULL;
    cr_assert_eq(tm_wm_key_from_secret(&key, bytes, &err), TM_OK, "%s", err.message);
    tm_detect_options options;
    tm_detect_options_default(&options);
    tm_detector *d = NULL;
    cr_assert_eq(tm_detector_create(&d, t, &config, (const tm_wm_key *const *)&key, 1, &options, &err), TM_OK, "%s",
                 err.message);
    const char text[] = " and a little more text after the prompt";
    tm_detection v;
    cr_assert_eq(tm_detect_text(d, text, strlen(text), prompt, &v, &err), TM_OK, "%s", err.message);
    cr_expect_eq(v.n_prompt, n, "the detector counted %zu prompt ids, generate encodes %zu", v.n_prompt, n);
    tm_detector_free(d);
    tm_wm_key_free(key);
    tm_tokenizer_free(t);
    free(path), free(dir);
}
