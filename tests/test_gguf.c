/* Tests of the GGUF reader and the GGML type table. Good files are the real
 * models in ../shared (values cross-checked against an independent reading of
 * the raw bytes, the llama2.c checkpoint of the same model, and the shared
 * README); malformed files are built inside each test, by corrupting a copy
 * of a good file or with the small GGUF writer below, and must give the right
 * status and a message naming the problem, never a crash. */
#include "fixtures.h"
#include "gguf_testing.h"
#include "tracemark/generator.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ======================================================================== */
/* A small GGUF writer                                                      */
/* ======================================================================== */

typedef struct {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type;
    uint64_t offset;
} tensor_spec;

/* Header, the pre-encoded key/values, tensor infos, padding to alignment,
 * then data_bytes of data (zeros). */
static buffer make_gguf(uint32_t version, const buffer *kvs, uint64_t n_kv, const tensor_spec *tensors,
                        size_t n_tensors, uint64_t alignment, size_t data_bytes) {
    buffer b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, version);
    put_u64(&b, n_tensors);
    put_u64(&b, n_kv);
    if (kvs) put(&b, kvs->data, kvs->size);
    for (size_t i = 0; i < n_tensors; i++) {
        put_string(&b, tensors[i].name);
        put_u32(&b, tensors[i].n_dims);
        for (uint32_t d = 0; d < tensors[i].n_dims; d++) put_u64(&b, tensors[i].ne[d]);
        put_u32(&b, tensors[i].type);
        put_u64(&b, tensors[i].offset);
    }
    while (b.size % alignment) put_u8(&b, 0);
    put_zeros(&b, data_bytes);
    return b;
}

/* Two F32 tensors, 16 and 8 elements, back to back, default alignment. */
static buffer make_simple(const buffer *kvs, uint64_t n_kv) {
    tensor_spec t[] = {{"a", 2, {4, 4}, TM_GGML_F32, 0}, {"b", 1, {8}, TM_GGML_F32, 64}};
    return make_gguf(3, kvs, n_kv, t, 2, 32, 96);
}

/* ======================================================================== */
/* Opening bytes and checking failures                                      */
/* ======================================================================== */

/* Write bytes to a fresh scratch file and open it; the file is removed at
 * once (the mapping outlives it). On failure the message must start with the
 * path. */
static tm_status open_bytes(const void *data, size_t size, tm_gguf **out, tm_error *err) {
    char *dir = tm_test_scratch_dir();
    cr_assert_not_null(dir);
    char *path = tm_test_path(dir, "test.gguf");
    cr_assert_eq(tm_test_write_file(path, data, size), 0);
    *out = NULL;
    memset(err, 0, sizeof *err);
    tm_status s = tm_gguf_open(out, path, err);
    if (s != TM_OK) {
        cr_assert_null(*out);
        cr_assert_eq(err->code, s);
        cr_assert(strncmp(err->message, path, strlen(path)) == 0 && err->message[strlen(path)] == ':',
                  "message does not start with the path: %s", err->message);
    }
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
    return s;
}

static void expect_failure(const void *data, size_t size, tm_status code, const char *needle) {
    tm_gguf *g;
    tm_error err;
    tm_status s = open_bytes(data, size, &g, &err);
    if (s == TM_OK) tm_gguf_close(g);
    cr_assert_eq(s, code, "expected %s, got %s: %s", tm_status_name(code), tm_status_name(s), err.message);
    cr_assert_not_null(strstr(err.message, needle), "message lacks \"%s\": %s", needle, err.message);
}

static void expect_buffer_failure(buffer *b, tm_status code, const char *needle) {
    expect_failure(b->data, b->size, code, needle);
    free(b->data);
    b->data = NULL;
}

static uint8_t *read_fixture(const char *relative, size_t *size) {
    char *path = tm_fixture(relative);
    uint8_t *data = (uint8_t *)tm_test_read_file(path, size);
    cr_assert_not_null(data, "cannot read fixture %s", path);
    free(path);
    return data;
}

static tm_gguf *open_fixture(const char *relative) {
    char *path = tm_fixture(relative);
    tm_gguf *g = NULL;
    tm_error err = {0};
    tm_status s = tm_gguf_open(&g, path, &err);
    cr_assert_eq(s, TM_OK, "%s", err.message);
    free(path);
    return g;
}

/* ---- an independent reader of raw bytes, for cross-checks ------------------ */

static uint64_t raw_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static void raw_put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Offset of the u64 length that precedes the string `name` in the file. */
static size_t raw_find_string(const uint8_t *data, size_t size, const char *name) {
    size_t n = strlen(name);
    for (size_t at = 8; at + n <= size; at++) {
        const uint8_t *hit = memmem(data + at, size - at, name, n);
        if (!hit) break;
        at = (size_t)(hit - data);
        if (raw_le(hit - 8, 8) == n) return at - 8;
    }
    cr_assert_fail("string %s not found in the raw file", name);
    return 0;
}

/* Offset of the value type that follows key in the file. */
static size_t raw_key_type_offset(const uint8_t *data, size_t size, const char *key) {
    return raw_find_string(data, size, key) + 8 + strlen(key);
}

static uint32_t raw_u32_value(const uint8_t *data, size_t size, const char *key) {
    size_t at = raw_key_type_offset(data, size, key);
    cr_assert_eq(raw_le(data + at, 4), TM_GGUF_UINT32, "%s is not a uint32 in the raw file", key);
    return (uint32_t)raw_le(data + at + 4, 4);
}

/* Offset of the n_dims field of a tensor info. */
static size_t raw_tensor_info(const uint8_t *data, size_t size, const char *name) {
    return raw_find_string(data, size, name) + 8 + strlen(name);
}

/* ======================================================================== */
/* GGML type table                                                          */
/* ======================================================================== */

Test(ggml_types, block_geometry_matches_ggml_block_structs) {
    enum { QK_K = 256 };
    /* Written from ggml-common.h's block structs (ggml_half is 2 bytes). */
    struct {
        uint32_t id;
        const char *name;
        uint64_t elements, bytes;
    } expected[] = {
        {0, "F32", 1, 4},
        {1, "F16", 1, 2},
        {2, "Q4_0", 32, 2 + 32 / 2},
        {3, "Q4_1", 32, 2 * 2 + 32 / 2},
        {6, "Q5_0", 32, 2 + 4 + 32 / 2},
        {7, "Q5_1", 32, 2 * 2 + 4 + 32 / 2},
        {8, "Q8_0", 32, 2 + 32},
        {9, "Q8_1", 32, 2 * 2 + 32},
        {10, "Q2_K", QK_K, QK_K / 16 + QK_K / 4 + 2 * 2},
        {11, "Q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2},
        {12, "Q4_K", QK_K, 2 * 2 + 12 + QK_K / 2},
        {13, "Q5_K", QK_K, 2 * 2 + 12 + QK_K / 8 + QK_K / 2},
        {14, "Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2},
        {15, "Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2},
        {16, "IQ2_XXS", QK_K, 2 + QK_K / 8 * 2},
        {17, "IQ2_XS", QK_K, 2 + QK_K / 8 * 2 + QK_K / 32},
        {18, "IQ3_XXS", QK_K, 2 + 3 * QK_K / 8},
        {19, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 32 * 2},
        {20, "IQ4_NL", 32, 2 + 32 / 2},
        {21, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64},
        {22, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 32},
        {23, "IQ4_XS", QK_K, 2 + 2 + QK_K / 64 + QK_K / 2},
        {24, "I8", 1, 1},
        {25, "I16", 1, 2},
        {26, "I32", 1, 4},
        {27, "I64", 1, 8},
        {28, "F64", 1, 8},
        {29, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32},
        {30, "BF16", 1, 2},
        {34, "TQ1_0", QK_K, (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2},
        {35, "TQ2_0", QK_K, QK_K / 4 + 2},
        {39, "MXFP4", 32, 1 + 32 / 2},
    };
    bool known[TM_GGML_TYPE_LIMIT + 1] = {0};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        uint32_t id = expected[i].id;
        known[id] = true;
        cr_assert_str_eq(tm_ggml_type_name(id), expected[i].name, "type %u", id);
        cr_assert_eq(tm_ggml_block_elements(id), expected[i].elements, "%s", expected[i].name);
        cr_assert_eq(tm_ggml_block_bytes(id), expected[i].bytes, "%s", expected[i].name);
    }
    /* Spot values as ggml's type_traits state them. */
    cr_assert_eq(tm_ggml_block_bytes(TM_GGML_Q4_K), 144);
    cr_assert_eq(tm_ggml_block_bytes(TM_GGML_Q6_K), 210);
    cr_assert_eq(tm_ggml_block_bytes(TM_GGML_Q8_K), 292);
    cr_assert_eq(tm_ggml_block_bytes(TM_GGML_IQ4_XS), 136);
    cr_assert_eq(tm_ggml_block_bytes(TM_GGML_TQ1_0), 54);
    cr_assert_eq(tm_ggml_block_bytes(TM_GGML_MXFP4), 17);
    /* Removed ids (4, 5, 31..33, 36..38) and ids past the end are unknown. */
    for (uint32_t id = 0; id <= TM_GGML_TYPE_LIMIT; id++) {
        if (known[id]) continue;
        cr_assert_null(tm_ggml_type_name(id), "id %u", id);
        cr_assert_eq(tm_ggml_block_elements(id), 0);
        cr_assert_eq(tm_ggml_block_bytes(id), 0);
    }
    cr_assert_null(tm_ggml_type_name(99));
    cr_assert_null(tm_ggml_type_name(UINT32_MAX));
    cr_assert_eq(tm_ggml_block_bytes(UINT32_MAX), 0);
}

Test(gguf, value_type_names_and_string_views) {
    cr_assert_str_eq(tm_gguf_type_name(TM_GGUF_UINT8), "uint8");
    cr_assert_str_eq(tm_gguf_type_name(TM_GGUF_STRING), "string");
    cr_assert_str_eq(tm_gguf_type_name(TM_GGUF_ARRAY), "array");
    cr_assert_str_eq(tm_gguf_type_name(TM_GGUF_FLOAT64), "float64");
    cr_assert_str_eq(tm_gguf_type_name((tm_gguf_type)77), "unknown");

    tm_string_view v = {"llama!", 5};
    cr_assert(tm_string_view_equals(v, "llama"));
    cr_assert(!tm_string_view_equals(v, "llama!"));
    cr_assert(!tm_string_view_equals(v, "llam"));
    cr_assert(!tm_string_view_equals(v, "llamb"));
    cr_assert(!tm_string_view_equals(v, NULL));
    tm_string_view empty = {NULL, 0};
    cr_assert(tm_string_view_equals(empty, ""));
    cr_assert(!tm_string_view_equals(empty, "x"));
}

/* ======================================================================== */
/* Real files                                                               */
/* ======================================================================== */

static void assert_u64(const tm_gguf *g, const char *key, uint64_t expected) {
    uint64_t v = 0;
    cr_assert(tm_gguf_get_u64(g, key, &v), "%s missing", key);
    cr_assert_eq(v, expected, "%s = %llu, expected %llu", key, (unsigned long long)v, (unsigned long long)expected);
}

static void assert_string(const tm_gguf *g, const char *key, const char *expected) {
    tm_string_view v;
    cr_assert(tm_gguf_get_string(g, key, &v), "%s missing", key);
    cr_assert(tm_string_view_equals(v, expected), "%s = %.*s, expected %s", key, (int)v.size, v.data, expected);
}

static void assert_token(const tm_gguf_value *tokens, uint64_t i, const char *expected) {
    cr_assert_lt(i, tokens->as.array.count);
    tm_string_view v = tokens->as.array.items[i].as.string;
    cr_assert_eq(tokens->as.array.items[i].type, TM_GGUF_STRING);
    cr_assert(tm_string_view_equals(v, expected), "token %llu = %.*s, expected %s", (unsigned long long)i,
              (int)v.size, v.data, expected);
}

/* Every tensor: data inside the mapping, aligned, sized from its shape. */
static void assert_tensors_sane(const tm_gguf *g) {
    for (uint64_t i = 0; i < tm_gguf_tensor_count(g); i++) {
        const tm_gguf_tensor *t = tm_gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        const tm_mapped_file *file = tm_gguf_file(g);
        cr_assert(p >= file->data + tm_gguf_data_offset(g) && p + t->n_bytes <= file->data + file->size);
        cr_assert_eq((uintptr_t)p % tm_gguf_alignment(g), 0, "%.*s not aligned", (int)t->name.size, t->name.data);
        cr_assert_eq(t->n_bytes, t->n_elements / tm_ggml_block_elements(t->type) * tm_ggml_block_bytes(t->type));
        cr_assert_null(tm_gguf_find_tensor(g, ""));
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.size, t->name.data);
        cr_assert_eq(tm_gguf_find_tensor(g, name), t);
    }
}

Test(gguf, stories260K_metadata_and_tensors) {
    tm_gguf *g = open_fixture("models/stories260K.gguf");
    size_t size;
    uint8_t *raw = read_fixture("models/stories260K.gguf", &size);
    cr_assert_eq(tm_gguf_version(g), 3);
    cr_assert_eq(tm_gguf_kv_count(g), 19);
    cr_assert_eq(tm_gguf_tensor_count(g), 48);
    cr_assert_eq(tm_gguf_alignment(g), 32);
    assert_string(g, "general.architecture", "llama");
    assert_string(g, "tokenizer.ggml.model", "llama");
    /* The README: llama.context_length is 128 in this conversion. */
    assert_u64(g, "llama.context_length", 128);
    /* Independent reading of the raw bytes agrees with the parser. */
    const char *u32_keys[] = {"llama.context_length", "llama.embedding_length", "llama.feed_forward_length",
                              "llama.attention.head_count", "llama.attention.head_count_kv", "llama.block_count",
                              "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    for (size_t i = 0; i < sizeof u32_keys / sizeof u32_keys[0]; i++)
        assert_u64(g, u32_keys[i], raw_u32_value(raw, size, u32_keys[i]));

    /* The same model as a llama2.c checkpoint: header dim, hidden, layers, heads, kv heads, vocab. */
    size_t bin_size;
    uint8_t *bin = read_fixture("models/stories260K.bin", &bin_size);
    cr_assert_gt(bin_size, 28);
    assert_u64(g, "llama.embedding_length", raw_le(bin + 0, 4));
    assert_u64(g, "llama.feed_forward_length", raw_le(bin + 4, 4));
    assert_u64(g, "llama.block_count", raw_le(bin + 8, 4));
    assert_u64(g, "llama.attention.head_count", raw_le(bin + 12, 4));
    assert_u64(g, "llama.attention.head_count_kv", raw_le(bin + 16, 4));
    assert_u64(g, "llama.embedding_length", 64);
    assert_u64(g, "llama.block_count", 5);

    double eps;
    cr_assert(tm_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &eps));
    cr_assert_float_eq(eps, 1e-5, 1e-9);
    uint64_t u;
    cr_assert(!tm_gguf_get_u64(g, "llama.attention.layer_norm_rms_epsilon", &u), "a float is not an integer");
    cr_assert(!tm_gguf_get_u64(g, "general.architecture", &u));
    cr_assert(!tm_gguf_get_u64(g, "no.such.key", &u));
    tm_string_view sv;
    cr_assert(!tm_gguf_get_string(g, "llama.block_count", &sv));
    bool b;
    cr_assert(!tm_gguf_get_bool(g, "llama.block_count", &b));
    double d;
    cr_assert(tm_gguf_get_f64(g, "llama.block_count", &d) && d == 5.0, "integers read as floats");
    /* seperator_token_id is stored as uint32 0xFFFFFFFF. */
    assert_u64(g, "tokenizer.ggml.seperator_token_id", 4294967295u);

    const tm_gguf_value *tokens = tm_gguf_find(g, "tokenizer.ggml.tokens");
    cr_assert_not_null(tokens);
    cr_assert_eq(tokens->type, TM_GGUF_ARRAY);
    cr_assert_eq(tokens->as.array.element_type, TM_GGUF_STRING);
    cr_assert_eq(tokens->as.array.count, 512);
    cr_assert_not_null(tokens->as.array.items);
    assert_token(tokens, 0, "<unk>");
    assert_token(tokens, 1, "<s>");
    assert_token(tokens, 2, "</s>");
    assert_token(tokens, 3, "<0x00>");
    assert_token(tokens, 13, "<0x0A>");
    assert_token(tokens, 259, "\xe2\x96\x81t");
    assert_token(tokens, 260, "he");

    const tm_gguf_value *scores = tm_gguf_find(g, "tokenizer.ggml.scores");
    cr_assert_not_null(scores);
    cr_assert_eq(scores->as.array.element_type, TM_GGUF_FLOAT32);
    cr_assert_eq(scores->as.array.count, 512);
    cr_assert_null(scores->as.array.items);
    cr_assert_eq(tm_gguf_array_f64(scores, 300), -41.0);
    cr_assert_eq(tm_gguf_array_f64(scores, 511), -252.0);
    cr_assert_eq(tm_gguf_array_i64(scores, 511), -252);
    const tm_gguf_value *types = tm_gguf_find(g, "tokenizer.ggml.token_type");
    cr_assert_eq(types->as.array.element_type, TM_GGUF_INT32);
    cr_assert_eq(tm_gguf_array_i64(types, 0), TM_TOKEN_UNKNOWN);
    cr_assert_eq(tm_gguf_array_i64(types, 1), TM_TOKEN_CONTROL);
    cr_assert_eq(tm_gguf_array_i64(types, 3), TM_TOKEN_BYTE);
    cr_assert_eq(tm_gguf_array_i64(types, 300), TM_TOKEN_NORMAL);
    /* Out of range and non-numeric arrays read as 0, never outside the map. */
    cr_assert_eq(tm_gguf_array_i64(types, 512), 0);
    cr_assert_eq(tm_gguf_array_i64(tokens, 0), 0);

    const tm_gguf_tensor *embd = tm_gguf_find_tensor(g, "token_embd.weight");
    cr_assert_not_null(embd);
    cr_assert_eq(embd->type, TM_GGML_F32);
    cr_assert_eq(embd->n_dims, 2);
    cr_assert_eq(embd->ne[0], 64);
    cr_assert_eq(embd->ne[1], 512);
    cr_assert_eq(embd->ne[2], 1);
    cr_assert_eq(embd->ne[3], 1);
    cr_assert_eq(embd->n_elements, 64 * 512);
    cr_assert_eq(embd->n_bytes, 64 * 512 * 4);
    cr_assert_null(tm_gguf_find_tensor(g, "token_embd"));
    const tm_gguf_tensor *norm = tm_gguf_find_tensor(g, "blk.4.ffn_norm.weight");
    cr_assert_not_null(norm);
    cr_assert_eq(norm->n_dims, 1);
    cr_assert_eq(norm->ne[0], 64);
    const tm_gguf_tensor *down = tm_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    cr_assert_eq(down->ne[0], 172);
    cr_assert_eq(down->ne[1], 64);
    assert_tensors_sane(g);

    /* The tensors fill the file up to its end: data_offset = size - their bytes,
     * with the byte count derived from the model shape (dim 64, hidden 172,
     * kv dim 32, 5 layers, vocab 512, untied output). */
    uint64_t total = 0;
    for (uint64_t i = 0; i < tm_gguf_tensor_count(g); i++) total += tm_gguf_tensor_at(g, i)->n_bytes;
    uint64_t floats = 2 * 64 * 512 + 64 + 5 * (64 * 64 * 2 + 64 * 32 * 2 + 64 * 2 + 3 * 64 * 172);
    cr_assert_eq(total, floats * 4);
    cr_assert_eq(tm_gguf_data_offset(g), size - total);
    cr_assert_eq(tm_gguf_data_offset(g) % 32, 0);

    /* The embedding and the first attention norm are the checkpoint's own bytes. */
    cr_assert_geq(bin_size, 28 + 64 * 512 * 4 + 64 * 4);
    cr_assert(memcmp(embd->data, bin + 28, 64 * 512 * 4) == 0);
    const tm_gguf_tensor *attn_norm = tm_gguf_find_tensor(g, "blk.0.attn_norm.weight");
    cr_assert(memcmp(attn_norm->data, bin + 28 + 64 * 512 * 4, 64 * 4) == 0);

    free(bin);
    free(raw);
    tm_gguf_close(g);
}

Test(gguf, llama2_tiny_random_v3_f16) {
    tm_gguf *g = open_fixture("models/llama-2-tiny-random.gguf");
    size_t size;
    uint8_t *raw = read_fixture("models/llama-2-tiny-random.gguf", &size);
    cr_assert_eq(tm_gguf_version(g), 3);
    cr_assert_eq(tm_gguf_tensor_count(g), 12);
    cr_assert_eq(tm_gguf_kv_count(g), 18);
    assert_string(g, "general.architecture", "llama");
    assert_string(g, "general.name", "LLaMA v2");
    /* README: 1 block, width 8, 2 heads, F16/F32. */
    assert_u64(g, "llama.block_count", 1);
    assert_u64(g, "llama.embedding_length", 8);
    assert_u64(g, "llama.attention.head_count", 2);
    assert_u64(g, "general.file_type", 1);
    const char *keys[] = {"llama.context_length", "llama.feed_forward_length", "llama.rope.dimension_count",
                          "llama.attention.head_count_kv", "tokenizer.ggml.unknown_token_id"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) assert_u64(g, keys[i], raw_u32_value(raw, size, keys[i]));

    const tm_gguf_value *tokens = tm_gguf_find(g, "tokenizer.ggml.tokens");
    cr_assert_eq(tokens->as.array.count, 32000);
    assert_token(tokens, 1, "<s>");
    assert_token(tokens, 29871, "\xe2\x96\x81");
    assert_token(tokens, 31999, "\xe7\xbb\x99");
    const tm_gguf_value *scores = tm_gguf_find(g, "tokenizer.ggml.scores");
    cr_assert_eq(scores->as.array.count, 32000);
    cr_assert_eq(tm_gguf_array_f64(scores, 259), -1e9);
    cr_assert_eq(tm_gguf_array_f64(scores, 31999), -31740.0);

    const tm_gguf_tensor *embd = tm_gguf_find_tensor(g, "token_embd.weight");
    cr_assert_eq(embd->type, TM_GGML_F16);
    cr_assert_str_eq(tm_ggml_type_name(embd->type), "F16");
    cr_assert_eq(embd->ne[0], 8);
    cr_assert_eq(embd->ne[1], 32000);
    cr_assert_eq(embd->n_bytes, 8 * 32000 * 2);
    const tm_gguf_tensor *norm = tm_gguf_find_tensor(g, "output_norm.weight");
    cr_assert_eq(norm->type, TM_GGML_F32);
    cr_assert_eq(norm->n_bytes, 32);
    const tm_gguf_tensor *output = tm_gguf_find_tensor(g, "output.weight");
    cr_assert_eq(output->type, TM_GGML_F16);
    /* The last tensor ends exactly at the end of the file. */
    cr_assert_eq((const uint8_t *)output->data + output->n_bytes, tm_gguf_file(g)->data + size);
    assert_tensors_sane(g);
    free(raw);
    tm_gguf_close(g);
}

Test(gguf, vocab_only_file_without_tensors) {
    tm_gguf *g = open_fixture("tokenizer-tests/ggml-vocab-llama-spm.gguf");
    cr_assert_eq(tm_gguf_tensor_count(g), 0);
    cr_assert_eq(tm_gguf_kv_count(g), 22);
    assert_u64(g, "llama.vocab_size", 32000);
    assert_string(g, "tokenizer.ggml.pre", "default");
    bool add_bos = false, add_eos = true;
    cr_assert(tm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos));
    cr_assert(tm_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &add_eos));
    cr_assert(add_bos);
    cr_assert(!add_eos);
    const tm_gguf_value *tokens = tm_gguf_find(g, "tokenizer.ggml.tokens");
    cr_assert_eq(tokens->as.array.count, 32000);
    assert_token(tokens, 1, "<s>");
    assert_token(tokens, 29872, "e");
    cr_assert_null(tm_gguf_find_tensor(g, "token_embd.weight"));
    tm_gguf_close(g);
}

Test(gguf, missing_file_and_bad_arguments) {
    tm_gguf *g = (tm_gguf *)1;
    tm_error err = {0};
    cr_assert_eq(tm_gguf_open(&g, "/nonexistent/tracemark/model.gguf", &err), TM_ERR_IO);
    cr_assert_null(g);
    cr_assert_not_null(strstr(err.message, "/nonexistent/tracemark/model.gguf"));
    cr_assert_eq(tm_gguf_open(NULL, "x", &err), TM_ERR_ARGUMENT);
    cr_assert_eq(tm_gguf_open(&g, NULL, &err), TM_ERR_ARGUMENT);
    tm_gguf_close(NULL);
    cr_assert_null(tm_gguf_find(NULL, "x"));
    cr_assert_null(tm_gguf_find_tensor(NULL, "x"));
}

/* ======================================================================== */
/* Every value type, in a synthetic file                                    */
/* ======================================================================== */

/* level array levels around one uint8 element 7. */
static void put_nested_array(buffer *b, int levels) {
    for (int i = 1; i < levels; i++) {
        put_u32(b, TM_GGUF_ARRAY);
        put_u64(b, 1);
    }
    put_u32(b, TM_GGUF_UINT8);
    put_u64(b, 1);
    put_u8(b, 7);
}

static buffer all_types_kvs(uint64_t *n_kv) {
    buffer kv = {0};
    put_string(&kv, "u8"), put_u32(&kv, TM_GGUF_UINT8), put_u8(&kv, 200);
    put_string(&kv, "i8"), put_u32(&kv, TM_GGUF_INT8), put_u8(&kv, 0x80);
    put_string(&kv, "u16"), put_u32(&kv, TM_GGUF_UINT16), put_u16(&kv, 65535);
    put_string(&kv, "i16"), put_u32(&kv, TM_GGUF_INT16), put_u16(&kv, 0xFFFE);
    put_string(&kv, "u32"), put_u32(&kv, TM_GGUF_UINT32), put_u32(&kv, 4000000000u);
    put_string(&kv, "i32"), put_u32(&kv, TM_GGUF_INT32), put_u32(&kv, (uint32_t)-123456);
    put_string(&kv, "f32"), put_u32(&kv, TM_GGUF_FLOAT32), put_f32(&kv, 0.25f);
    put_string(&kv, "bool"), put_u32(&kv, TM_GGUF_BOOL), put_u8(&kv, 1);
    put_string(&kv, "string"), put_u32(&kv, TM_GGUF_STRING), put_string(&kv, "h\xc3\xa9llo");
    put_string(&kv, "empty"), put_u32(&kv, TM_GGUF_STRING), put_string(&kv, "");
    put_string(&kv, "u64"), put_u32(&kv, TM_GGUF_UINT64), put_u64(&kv, UINT64_MAX);
    put_string(&kv, "i64"), put_u32(&kv, TM_GGUF_INT64), put_u64(&kv, (uint64_t)INT64_MIN);
    put_string(&kv, "f64"), put_u32(&kv, TM_GGUF_FLOAT64), put_f64(&kv, -2.5e300);
    /* Arrays whose elements start at odd offsets. */
    put_string(&kv, "a.i16"), put_u32(&kv, TM_GGUF_ARRAY), put_u32(&kv, TM_GGUF_INT16), put_u64(&kv, 3);
    put_u16(&kv, 1), put_u16(&kv, 0x8000), put_u16(&kv, 0xFFFF);
    put_string(&kv, "a.u64"), put_u32(&kv, TM_GGUF_ARRAY), put_u32(&kv, TM_GGUF_UINT64), put_u64(&kv, 2);
    put_u64(&kv, 42), put_u64(&kv, UINT64_MAX);
    put_string(&kv, "a.f64"), put_u32(&kv, TM_GGUF_ARRAY), put_u32(&kv, TM_GGUF_FLOAT64), put_u64(&kv, 2);
    put_f64(&kv, 1.5), put_f64(&kv, -7.75);
    put_string(&kv, "a.f32"), put_u32(&kv, TM_GGUF_ARRAY), put_u32(&kv, TM_GGUF_FLOAT32), put_u64(&kv, 1);
    put_f32(&kv, -3.5f);
    put_string(&kv, "a.bool"), put_u32(&kv, TM_GGUF_ARRAY), put_u32(&kv, TM_GGUF_BOOL), put_u64(&kv, 2);
    put_u8(&kv, 0), put_u8(&kv, 1);
    put_string(&kv, "a.u8.empty"), put_u32(&kv, TM_GGUF_ARRAY), put_u32(&kv, TM_GGUF_UINT8), put_u64(&kv, 0);
    put_string(&kv, "a.str"), put_u32(&kv, TM_GGUF_ARRAY), put_u32(&kv, TM_GGUF_STRING), put_u64(&kv, 3);
    put_string(&kv, "x"), put_string(&kv, ""), put_string(&kv, "zz");
    /* [[1, 2], ["a"], []] */
    put_string(&kv, "a.nested"), put_u32(&kv, TM_GGUF_ARRAY), put_u32(&kv, TM_GGUF_ARRAY), put_u64(&kv, 3);
    put_u32(&kv, TM_GGUF_INT32), put_u64(&kv, 2), put_u32(&kv, 1), put_u32(&kv, 2);
    put_u32(&kv, TM_GGUF_STRING), put_u64(&kv, 1), put_string(&kv, "a");
    put_u32(&kv, TM_GGUF_ARRAY), put_u64(&kv, 0);
    put_string(&kv, "a.deep8"), put_u32(&kv, TM_GGUF_ARRAY), put_nested_array(&kv, 8);
    put_string(&kv, "i32.negative"), put_u32(&kv, TM_GGUF_INT32), put_u32(&kv, (uint32_t)-1);
    *n_kv = 23;
    return kv;
}

Test(gguf, every_value_type) {
    uint64_t n_kv;
    buffer kv = all_types_kvs(&n_kv);
    buffer file = make_simple(&kv, n_kv);
    tm_gguf *g;
    tm_error err;
    cr_assert_eq(open_bytes(file.data, file.size, &g, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_gguf_kv_count(g), n_kv);
    uint64_t u;
    double d;
    bool b;
    tm_string_view s;
    assert_u64(g, "u8", 200);
    cr_assert_eq(tm_gguf_find(g, "i8")->as.i64, -128);
    cr_assert(!tm_gguf_get_u64(g, "i8", &u), "negative integers do not read as u64");
    cr_assert(tm_gguf_get_f64(g, "i8", &d) && d == -128.0);
    assert_u64(g, "u16", 65535);
    cr_assert_eq(tm_gguf_find(g, "i16")->as.i64, -2);
    assert_u64(g, "u32", 4000000000u);
    cr_assert_eq(tm_gguf_find(g, "i32")->as.i64, -123456);
    cr_assert(tm_gguf_get_f64(g, "f32", &d) && d == 0.25);
    cr_assert(tm_gguf_get_bool(g, "bool", &b) && b);
    cr_assert(!tm_gguf_get_bool(g, "u8", &b));
    assert_string(g, "string", "h\xc3\xa9llo");
    assert_string(g, "empty", "");
    assert_u64(g, "u64", UINT64_MAX);
    cr_assert_eq(tm_gguf_find(g, "i64")->as.i64, INT64_MIN);
    cr_assert(tm_gguf_get_f64(g, "f64", &d) && d == -2.5e300);
    cr_assert(!tm_gguf_get_string(g, "a.str", &s));
    cr_assert(!tm_gguf_get_u64(g, "i32.negative", &u));

    const tm_gguf_value *a = tm_gguf_find(g, "a.i16");
    cr_assert_eq(a->as.array.count, 3);
    cr_assert_eq(tm_gguf_array_i64(a, 0), 1);
    cr_assert_eq(tm_gguf_array_i64(a, 1), -32768);
    cr_assert_eq(tm_gguf_array_i64(a, 2), -1);
    cr_assert_eq(tm_gguf_array_f64(a, 2), -1.0);
    a = tm_gguf_find(g, "a.u64");
    cr_assert_eq(tm_gguf_array_i64(a, 0), 42);
    cr_assert_eq(tm_gguf_array_i64(a, 1), INT64_MAX, "uint64 beyond int64 clamps");
    cr_assert_eq(tm_gguf_array_f64(a, 1), 18446744073709551615.0);
    a = tm_gguf_find(g, "a.f64");
    cr_assert_eq(tm_gguf_array_f64(a, 0), 1.5);
    cr_assert_eq(tm_gguf_array_f64(a, 1), -7.75);
    cr_assert_eq(tm_gguf_array_i64(a, 1), -7);
    a = tm_gguf_find(g, "a.f32");
    cr_assert_eq(tm_gguf_array_f64(a, 0), -3.5);
    a = tm_gguf_find(g, "a.bool");
    cr_assert_eq(tm_gguf_array_i64(a, 0), 0);
    cr_assert_eq(tm_gguf_array_i64(a, 1), 1);
    a = tm_gguf_find(g, "a.u8.empty");
    cr_assert_eq(a->as.array.count, 0);
    cr_assert_eq(tm_gguf_array_i64(a, 0), 0);

    a = tm_gguf_find(g, "a.str");
    cr_assert_eq(a->as.array.count, 3);
    assert_token(a, 0, "x");
    assert_token(a, 1, "");
    assert_token(a, 2, "zz");

    a = tm_gguf_find(g, "a.nested");
    cr_assert_eq(a->as.array.element_type, TM_GGUF_ARRAY);
    cr_assert_eq(a->as.array.count, 3);
    const tm_gguf_value *inner = &a->as.array.items[0];
    cr_assert_eq(inner->type, TM_GGUF_ARRAY);
    cr_assert_eq(inner->as.array.element_type, TM_GGUF_INT32);
    cr_assert_eq(tm_gguf_array_i64(inner, 1), 2);
    inner = &a->as.array.items[1];
    cr_assert_eq(inner->as.array.element_type, TM_GGUF_STRING);
    assert_token(inner, 0, "a");
    inner = &a->as.array.items[2];
    cr_assert_eq(inner->as.array.count, 0);

    const tm_gguf_value *deep = tm_gguf_find(g, "a.deep8");
    for (int level = 1; level < 8; level++) {
        cr_assert_eq(deep->as.array.element_type, TM_GGUF_ARRAY);
        deep = &deep->as.array.items[0];
    }
    cr_assert_eq(tm_gguf_array_i64(deep, 0), 7);

    const tm_gguf_tensor *t = tm_gguf_find_tensor(g, "b");
    cr_assert_eq(t->offset, 64);
    cr_assert_eq(t->n_bytes, 32);
    assert_tensors_sane(g);
    tm_gguf_close(g);
    free(file.data);
    free(kv.data);
}

Test(gguf, version_2_and_custom_alignment) {
    buffer kv = {0};
    put_kv_u32(&kv, "general.alignment", 64);
    put_kv_string(&kv, "general.architecture", "llama");
    tensor_spec t[] = {{"a", 1, {16}, TM_GGML_F32, 0}, {"q", 2, {64, 2}, TM_GGML_Q8_0, 64}};
    buffer file = make_gguf(2, &kv, 2, t, 2, 64, 64 + 2 * 2 * 34);
    tm_gguf *g;
    tm_error err;
    cr_assert_eq(open_bytes(file.data, file.size, &g, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_gguf_version(g), 2);
    cr_assert_eq(tm_gguf_alignment(g), 64);
    cr_assert_eq(tm_gguf_data_offset(g) % 64, 0);
    cr_assert_eq(tm_gguf_data_offset(g), file.size - (64 + 2 * 2 * 34));
    const tm_gguf_tensor *q = tm_gguf_find_tensor(g, "q");
    cr_assert_eq(q->n_bytes, 2 * 2 * 34);
    cr_assert_eq(q->n_elements, 128);
    assert_tensors_sane(g);
    tm_gguf_close(g);
    free(file.data);

    /* The same tensors at a 32-byte offset break a 64-byte alignment. */
    t[1].offset = 32;
    file = make_gguf(3, &kv, 2, t, 2, 64, 32 + 2 * 2 * 34);
    expect_buffer_failure(&file, TM_ERR_FORMAT, "not a multiple of the alignment 64");
    free(kv.data);
}

/* ======================================================================== */
/* Malformed files                                                          */
/* ======================================================================== */

static uint8_t *stories(size_t *size) { return read_fixture("models/stories260K.gguf", size); }

Test(gguf_malformed, bad_magic_and_versions) {
    size_t size;
    uint8_t *data = stories(&size);
    data[3] = 'X';
    expect_failure(data, size, TM_ERR_FORMAT, "not a GGUF file");
    data[3] = 'F';
    raw_put_le(data + 4, 1, 4);
    expect_failure(data, size, TM_ERR_UNSUPPORTED, "unsupported GGUF version 1");
    raw_put_le(data + 4, 4, 4);
    expect_failure(data, size, TM_ERR_UNSUPPORTED, "unsupported GGUF version 4");
    raw_put_le(data + 4, 0x03000000, 4); /* a big-endian v3 file */
    expect_failure(data, size, TM_ERR_UNSUPPORTED, "unsupported GGUF version");
    expect_failure(data, 0, TM_ERR_FORMAT, "truncated");
    expect_failure("GG", 2, TM_ERR_FORMAT, "truncated");
    free(data);
}

/* Every cut of a file must fail cleanly: through the whole header of the
 * small model byte by byte, then through its data in strides. */
Test(gguf_malformed, every_truncation_fails, .timeout = 300) {
    size_t size;
    uint8_t *data = stories(&size);
    tm_gguf *g;
    tm_error err;
    cr_assert_eq(open_bytes(data, size, &g, &err), TM_OK, "%s", err.message);
    size_t header_end = (size_t)tm_gguf_data_offset(g);
    tm_gguf_close(g);
    for (size_t cut = 0; cut < size; cut = cut < header_end + 64 ? cut + 1 : cut + 4093) {
        tm_status s = open_bytes(data, cut, &g, &err);
        if (s == TM_OK) tm_gguf_close(g);
        cr_assert_eq(s, TM_ERR_FORMAT, "cut at %zu: %s", cut, err.message);
    }
    expect_failure(data, header_end - 1, TM_ERR_FORMAT, "lies beyond the end of the file");
    expect_failure(data, size - 1, TM_ERR_FORMAT, "tensor 'blk.4.ffn_norm.weight': data [");
    size_t last = raw_find_string(data, size, "blk.4.ffn_norm.weight");
    expect_failure(data, last + 3, TM_ERR_FORMAT, "truncated: tensor name of tensor info #47");
    expect_failure(data, 30, TM_ERR_FORMAT, "metadata key/value count 19 cannot fit in the 6 bytes left");
    free(data);

    uint64_t n_kv;
    buffer kv = all_types_kvs(&n_kv);
    buffer file = make_simple(&kv, n_kv);
    for (size_t cut = 0; cut < file.size; cut++) {
        tm_status s = open_bytes(file.data, cut, &g, &err);
        if (s == TM_OK) tm_gguf_close(g);
        cr_assert_eq(s, TM_ERR_FORMAT, "cut at %zu: %s", cut, err.message);
    }
    free(file.data);
    free(kv.data);
}

Test(gguf_malformed, huge_counts_fail_before_allocating) {
    size_t size;
    uint8_t *data = stories(&size);
    uint8_t *copy = malloc(size);
    const uint64_t huge = (uint64_t)1 << 60;

    memcpy(copy, data, size);
    raw_put_le(copy + 16, huge, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "metadata key/value count 1152921504606846976 cannot fit");
    memcpy(copy, data, size);
    raw_put_le(copy + 16, UINT64_MAX, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "metadata key/value count");

    memcpy(copy, data, size);
    raw_put_le(copy + 8, huge, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "tensor count 1152921504606846976 cannot fit");

    /* tokenizer.ggml.tokens: type, element type, count, then the strings. */
    size_t tokens = raw_key_type_offset(data, size, "tokenizer.ggml.tokens");
    memcpy(copy, data, size);
    raw_put_le(copy + tokens + 8, huge, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "array count 1152921504606846976 of string");
    memcpy(copy, data, size);
    raw_put_le(copy + tokens + 8, UINT64_MAX, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "key 'tokenizer.ggml.tokens'");

    size_t scores = raw_key_type_offset(data, size, "tokenizer.ggml.scores");
    memcpy(copy, data, size);
    raw_put_le(copy + scores + 8, (uint64_t)1 << 62, 8); /* * 4 bytes would overflow */
    expect_failure(copy, size, TM_ERR_FORMAT, "array count 4611686018427387904 of float32");

    /* A string longer than the file: the first token, and a key. */
    memcpy(copy, data, size);
    raw_put_le(copy + tokens + 16, 0xFFFFFFFFu, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "claims 4294967295 bytes");
    memcpy(copy, data, size);
    raw_put_le(copy + 24, UINT64_MAX, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "key of metadata entry #0");
    size_t arch = raw_key_type_offset(data, size, "general.architecture");
    memcpy(copy, data, size);
    raw_put_le(copy + arch + 4, size, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "string value of key 'general.architecture'");
    size_t embd = raw_find_string(data, size, "token_embd.weight");
    memcpy(copy, data, size);
    raw_put_le(copy + embd, size, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "tensor name of tensor info #0");

    free(copy);
    free(data);
}

Test(gguf_malformed, unknown_value_types_and_deep_nesting) {
    size_t size;
    uint8_t *data = stories(&size);
    size_t arch = raw_key_type_offset(data, size, "general.architecture");
    raw_put_le(data + arch, 13, 4);
    expect_failure(data, size, TM_ERR_FORMAT, "key 'general.architecture'");
    expect_failure(data, size, TM_ERR_FORMAT, "unknown value type 13");
    raw_put_le(data + arch, TM_GGUF_STRING, 4);
    size_t tokens = raw_key_type_offset(data, size, "tokenizer.ggml.tokens");
    raw_put_le(data + tokens + 4, 0xDEAD, 4);
    expect_failure(data, size, TM_ERR_FORMAT, "unknown array element type 57005");
    free(data);

    /* A value type inside a nested array. */
    buffer kv = {0};
    put_string(&kv, "bad"), put_u32(&kv, TM_GGUF_ARRAY), put_u32(&kv, TM_GGUF_ARRAY), put_u64(&kv, 1);
    put_u32(&kv, 42), put_u64(&kv, 0);
    buffer file = make_simple(&kv, 1);
    expect_buffer_failure(&file, TM_ERR_FORMAT, "unknown array element type 42");
    free(kv.data);

    kv = (buffer){0};
    put_string(&kv, "deep"), put_u32(&kv, TM_GGUF_ARRAY), put_nested_array(&kv, 9);
    file = make_simple(&kv, 1);
    expect_buffer_failure(&file, TM_ERR_FORMAT, "nested more than 8 deep");
    free(kv.data);

    /* Far deeper than the limit, with a count that would not fit either. */
    kv = (buffer){0};
    put_string(&kv, "deeper");
    put_u32(&kv, TM_GGUF_ARRAY);
    for (int i = 0; i < 10000; i++) put_u32(&kv, TM_GGUF_ARRAY), put_u64(&kv, 1);
    file = make_simple(&kv, 1);
    expect_buffer_failure(&file, TM_ERR_FORMAT, "nested more than 8 deep");
    free(kv.data);
}

Test(gguf_malformed, duplicate_keys_and_tensor_names) {
    size_t size;
    uint8_t *data = stories(&size);
    size_t bos = raw_find_string(data, size, "tokenizer.ggml.bos_token_id");
    data[bos + 8 + strlen("tokenizer.ggml.")] = 'e';
    expect_failure(data, size, TM_ERR_FORMAT, "duplicate metadata key 'tokenizer.ggml.eos_token_id'");
    free(data);

    data = stories(&size);
    size_t q = raw_find_string(data, size, "blk.0.attn_q.weight");
    data[q + 8 + 4] = '3';
    expect_failure(data, size, TM_ERR_FORMAT, "duplicate tensor name 'blk.3.attn_q.weight'");
    free(data);
}

Test(gguf_malformed, bad_tensor_infos) {
    size_t size;
    uint8_t *data = stories(&size);
    uint8_t *copy = malloc(size);
    /* token_embd.weight: n_dims, ne[0], ne[1], type, offset. */
    size_t embd = raw_tensor_info(data, size, "token_embd.weight");
    cr_assert_eq(raw_le(data + embd, 4), 2);
    cr_assert_eq(raw_le(data + embd + 20, 4), TM_GGML_F32);

    memcpy(copy, data, size);
    raw_put_le(copy + embd + 20, 99, 4);
    expect_failure(copy, size, TM_ERR_FORMAT, "unknown tensor type id 99 for 'token_embd.weight'");
    memcpy(copy, data, size);
    raw_put_le(copy + embd + 20, 4, 4); /* removed Q4_2 */
    expect_failure(copy, size, TM_ERR_FORMAT, "unknown tensor type");

    memcpy(copy, data, size);
    raw_put_le(copy + embd, 0, 4);
    expect_failure(copy, size, TM_ERR_FORMAT, "tensor 'token_embd.weight' (info at byte offset");
    expect_failure(copy, size, TM_ERR_FORMAT, "n_dims 0 is outside 1..4");
    memcpy(copy, data, size);
    raw_put_le(copy + embd, 5, 4);
    expect_failure(copy, size, TM_ERR_FORMAT, "n_dims 5 is outside 1..4");

    memcpy(copy, data, size);
    raw_put_le(copy + embd + 4, 0, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "ne[0] = 0 is outside");
    memcpy(copy, data, size);
    raw_put_le(copy + embd + 12, (uint64_t)1 << 62, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "ne[1] = 4611686018427387904 is outside");
    /* 64 elements in a row cannot hold Q4_K's 256-element blocks. */
    memcpy(copy, data, size);
    raw_put_le(copy + embd + 20, TM_GGML_Q4_K, 4);
    expect_failure(copy, size, TM_ERR_FORMAT, "not a multiple of the Q4_K block size 256");

    /* Offsets: misaligned, beyond the file, overlapping. */
    memcpy(copy, data, size);
    raw_put_le(copy + embd + 24, 4, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "data offset 4 is not a multiple of the alignment 32");
    size_t last = raw_tensor_info(data, size, "blk.4.ffn_norm.weight");
    cr_assert_eq(raw_le(data + last + 16, 8), 1170944);
    memcpy(copy, data, size);
    raw_put_le(copy + last + 16, 1171200, 8);
    expect_failure(copy, size, TM_ERR_FORMAT,
                   "tensor 'blk.4.ffn_norm.weight': data [1185376, 1185632) lies beyond the end of the file "
                   "(size 1185376)");
    memcpy(copy, data, size);
    raw_put_le(copy + last + 16, UINT64_MAX - 31, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "overflows");
    size_t norm = raw_tensor_info(data, size, "output_norm.weight");
    cr_assert_eq(raw_le(data + norm + 16, 8), 131072);
    memcpy(copy, data, size);
    raw_put_le(copy + norm + 16, 131040, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "overlap");
    expect_failure(copy, size, TM_ERR_FORMAT, "'token_embd.weight'");
    memcpy(copy, data, size);
    raw_put_le(copy + norm + 16, 0, 8);
    expect_failure(copy, size, TM_ERR_FORMAT, "overlap");
    free(copy);
    free(data);
}

Test(gguf_malformed, element_count_overflow) {
    tensor_spec t[] = {{"big", 3, {(uint64_t)1 << 40, (uint64_t)1 << 40, 4}, TM_GGML_F32, 0}};
    buffer file = make_gguf(3, NULL, 0, t, 1, 32, 64);
    expect_buffer_failure(&file, TM_ERR_FORMAT, "tensor 'big'");
    file = make_gguf(3, NULL, 0, t, 1, 32, 64);
    expect_buffer_failure(&file, TM_ERR_FORMAT, "element count (product of ne) overflows");
    /* Fits in the count but not in the file. */
    tensor_spec u[] = {{"wide", 2, {(uint64_t)1 << 30, (uint64_t)1 << 30}, TM_GGML_F64, 0}};
    file = make_gguf(3, NULL, 0, u, 1, 32, 64);
    expect_buffer_failure(&file, TM_ERR_FORMAT, "lies beyond the end of the file");
    /* Block geometry in synthetic files: 33 is not a multiple of Q4_0's 32. */
    tensor_spec v[] = {{"q", 1, {33}, TM_GGML_Q4_0, 0}};
    file = make_gguf(3, NULL, 0, v, 1, 32, 64);
    expect_buffer_failure(&file, TM_ERR_FORMAT, "not a multiple of the Q4_0 block size 32");
}

Test(gguf_malformed, bad_alignment) {
    uint32_t bad[] = {0, 3, 48};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buffer kv = {0};
        put_kv_u32(&kv, "general.alignment", bad[i]);
        buffer file = make_simple(&kv, 1);
        char needle[80];
        snprintf(needle, sizeof needle, "general.alignment %u is not a non-zero power of two", bad[i]);
        expect_buffer_failure(&file, TM_ERR_FORMAT, needle);
        free(kv.data);
    }
    buffer kv = {0};
    put_kv_string(&kv, "general.alignment", "32");
    buffer file = make_simple(&kv, 1);
    expect_buffer_failure(&file, TM_ERR_FORMAT, "general.alignment must be a uint32, not string");
    free(kv.data);
}
