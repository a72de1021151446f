/* Tests of model loading (tm_model_load, tm_model_tokenizer,
 * tm_model_parameter_count, tm_model_resolve). Good files are the real models
 * in ../shared, checked against the numbers in their own headers and the
 * shared README, and against each other: the llama2.c checkpoint and the GGUF
 * of stories260K hold the same weights. Malformed models are built inside
 * each test, by corrupting a copy of a good file or with the small GGUF writer
 * below (which also writes Qwen2 files, rope factors and rope scaling), and
 * must fail with the right status and a message that names the
 * file and the problem, never a crash. */
#include "fixtures.h"
#include "gguf_testing.h"
#include "tracemark/generator.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ======================================================================== */
/* Helpers                                                                  */
/* ======================================================================== */

static uint8_t *read_fixture(const char *relative, size_t *size) {
    char *path = tm_fixture(relative);
    uint8_t *data = (uint8_t *)tm_test_read_file(path, size);
    cr_assert_not_null(data, "cannot read fixture %s", path);
    free(path);
    return data;
}

static tm_model *load_fixture(const char *relative) {
    char *path = tm_fixture(relative);
    tm_model *model = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_model_load(&model, path, &err), TM_OK, "%s", err.message);
    cr_assert_not_null(model);
    cr_assert_str_eq(tm_model_get_path(model), path);
    free(path);
    return model;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Write bytes to a fresh scratch file called name and load it as a model; the
 * load must fail with code, leave *out NULL, and say path and needle. */
static void expect_load_failure(const void *data, size_t size, const char *name, tm_status code, const char *needle) {
    char *dir = tm_test_scratch_dir();
    cr_assert_not_null(dir);
    char *path = tm_test_path(dir, name);
    cr_assert_eq(tm_test_write_file(path, data, size), 0);
    tm_model *model = (tm_model *)&model; /* must be overwritten with NULL */
    tm_error err = {0};
    tm_status s = tm_model_load(&model, path, &err);
    if (s == TM_OK) tm_model_free(model);
    cr_assert_eq(s, code, "%zu-byte %s: expected %s, got %s: %s", size, name, tm_status_name(code), tm_status_name(s),
                 err.message);
    cr_assert_null(model);
    cr_assert_eq(err.code, s);
    cr_assert_not_null(strstr(err.message, path), "message does not name the file %s: %s", path, err.message);
    cr_assert_not_null(strstr(err.message, needle), "message lacks \"%s\": %s", needle, err.message);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

/* Load bytes written to a scratch file; the caller frees the model (the file
 * is removed at once: the mapping outlives it). */
static tm_model *load_bytes(const void *data, size_t size, const char *name) {
    char *dir = tm_test_scratch_dir();
    char *path = tm_test_path(dir, name);
    cr_assert_eq(tm_test_write_file(path, data, size), 0);
    tm_model *model = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_model_load(&model, path, &err), TM_OK, "%s", err.message);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
    return model;
}

/* Bytes of a tensor view. */
static size_t tensor_bytes(const tm_tensor *t) {
    size_t element = t->type == TM_GGML_F32 ? 4 : t->type == TM_GGML_F16 ? 2 : 0;
    cr_assert_neq(element, 0, "unexpected tensor type %u", t->type);
    return (size_t)(t->rows * t->cols) * element;
}

static void assert_same_tensor(const tm_tensor *a, const tm_tensor *b, const char *what) {
    cr_assert_eq(a->type, b->type, "%s: types differ", what);
    cr_assert_eq(a->rows, b->rows, "%s: %lld rows vs %lld", what, (long long)a->rows, (long long)b->rows);
    cr_assert_eq(a->cols, b->cols, "%s: %lld cols vs %lld", what, (long long)a->cols, (long long)b->cols);
    cr_assert(memcmp(a->data, b->data, tensor_bytes(a)) == 0, "%s: bytes differ", what);
}

/* ======================================================================== */
/* Good files                                                               */
/* ======================================================================== */

/* Parameters of a llama2.c model, counted from its header numbers as
 * llama2.c's run.c lays the weights out (RoPE tables are not parameters). */
static uint64_t llama2c_parameters(const int32_t h[7]) {
    uint64_t dim = (uint64_t)h[0], hidden = (uint64_t)h[1], layers = (uint64_t)h[2], heads = (uint64_t)h[3];
    uint64_t kv_heads = (uint64_t)h[4], vocab = (uint64_t)(h[5] < 0 ? -(int64_t)h[5] : h[5]);
    uint64_t head_size = dim / heads;
    uint64_t per_layer = dim                        /* rms_att */
                         + dim * heads * head_size   /* wq */
                         + 2 * dim * kv_heads * head_size /* wk, wv */
                         + heads * head_size * dim   /* wo */
                         + dim                       /* rms_ffn */
                         + 3 * dim * hidden;         /* w1, w2, w3 */
    return vocab * dim + layers * per_layer + dim + (h[5] < 0 ? vocab * dim : 0);
}

Test(model, stories260K_llama2c_config) {
    size_t size;
    uint8_t *raw = read_fixture("models/stories260K.bin", &size);
    cr_assert_eq(size, 1056540, "README: stories260K.bin is 1056540 bytes");
    int32_t header[7];
    memcpy(header, raw, sizeof header);
    /* README: dim 64, hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512, seq 512. */
    const int32_t readme[7] = {64, 172, 5, 8, 4, 512, 512};
    cr_assert(memcmp(header, readme, sizeof header) == 0, "header differs from the README");

    tm_model *m = load_fixture("models/stories260K.bin");
    const tm_model_config *c = tm_model_get_config(m);
    cr_assert_eq(tm_model_get_format(m), TM_MODEL_FORMAT_LLAMA2C);
    cr_assert_str_eq(tm_model_format_name(tm_model_get_format(m)), "llama2.c");
    cr_assert_null(tm_model_get_gguf(m));
    cr_assert_str_eq(c->architecture, "llama");
    cr_assert_eq(c->dim, 64);
    cr_assert_eq(c->hidden_dim, 172);
    cr_assert_eq(c->n_layers, 5);
    cr_assert_eq(c->n_heads, 8);
    cr_assert_eq(c->n_kv_heads, 4);
    cr_assert_eq(c->head_dim, 8);
    cr_assert_eq(c->n_vocab, 512);
    cr_assert_eq(c->context_length, 512);
    cr_assert(c->tied_classifier, "a positive vocab size in the header means a shared classifier");
    cr_assert_float_eq(c->norm_eps, 1e-5f, 1e-10);
    cr_assert_float_eq(c->rope_freq_base, 10000.0f, 1e-3);
    cr_assert_eq(c->rope_style, TM_ROPE_NORMAL);

    uint64_t expected = llama2c_parameters(header);
    cr_assert_eq(expected, 260032); /* "260K" */
    cr_assert_eq(tm_model_parameter_count(m), expected, "counted %llu, header implies %llu",
                 (unsigned long long)tm_model_parameter_count(m), (unsigned long long)expected);

    /* The views sit where run.c's memory_map_weights puts them. */
    const float *base = (const float *)(tm_model_get_file(m)->data + 28);
    cr_assert_eq(tm_model_get_token_embedding(m)->data, (const void *)base);
    cr_assert_eq(tm_model_get_token_embedding(m)->rows, 512);
    cr_assert_eq(tm_model_get_token_embedding(m)->cols, 64);
    cr_assert_eq(tm_model_get_layer(m, 0)->attn_norm.data, (const void *)(base + 512 * 64));
    cr_assert_eq(tm_model_get_layer(m, 1)->attn_norm.data, (const void *)(base + 512 * 64 + 64));
    cr_assert_eq(tm_model_get_layer(m, 0)->wq.data, (const void *)(base + 512 * 64 + 5 * 64));
    cr_assert_eq(tm_model_get_layer(m, 0)->wk.rows, 32);
    cr_assert_eq(tm_model_get_layer(m, 0)->wk.cols, 64);
    cr_assert_eq(tm_model_get_layer(m, 0)->w_down.rows, 64);
    cr_assert_eq(tm_model_get_layer(m, 0)->w_down.cols, 172);
    cr_assert_eq(tm_model_get_classifier(m)->data, tm_model_get_token_embedding(m)->data,
                 "tied classifier is the embedding");
    /* output_norm is followed by the RoPE tables (seq * head_size floats) up to the end of the file. */
    const float *end = (const float *)(tm_model_get_file(m)->data + size);
    cr_assert_eq((const float *)tm_model_get_output_norm(m)->data + 64 + 512 * 8, end);
    tm_model_free(m);
    free(raw);
}

Test(model, stories260K_gguf_config) {
    tm_model *m = load_fixture("models/stories260K.gguf");
    const tm_model_config *c = tm_model_get_config(m);
    cr_assert_eq(tm_model_get_format(m), TM_MODEL_FORMAT_GGUF);
    cr_assert_str_eq(tm_model_format_name(tm_model_get_format(m)), "gguf");
    cr_assert_not_null(tm_model_get_gguf(m));
    cr_assert_str_eq(c->architecture, "llama");
    cr_assert_eq(c->dim, 64);
    cr_assert_eq(c->hidden_dim, 172);
    cr_assert_eq(c->n_layers, 5);
    cr_assert_eq(c->n_heads, 8);
    cr_assert_eq(c->n_kv_heads, 4);
    cr_assert_eq(c->head_dim, 8);
    cr_assert_eq(c->n_vocab, 512);
    cr_assert_eq(c->context_length, 128, "README: this conversion says context 128");
    cr_assert(!c->tied_classifier, "the converter wrote a separate output.weight");
    cr_assert_neq(tm_model_get_classifier(m)->data, tm_model_get_token_embedding(m)->data);
    cr_assert_float_eq(c->norm_eps, 1e-5f, 1e-10);
    cr_assert_float_eq(c->rope_freq_base, 10000.0f, 1e-3);

    /* Every tensor in the file is a weight of the model: the count is their sum,
     * and it is the llama2.c count plus the separate classifier. */
    uint64_t sum = 0;
    const tm_gguf *g = tm_model_get_gguf(m);
    for (uint64_t i = 0; i < tm_gguf_tensor_count(g); i++) sum += tm_gguf_tensor_at(g, i)->n_elements;
    const int32_t header[7] = {64, 172, 5, 8, 4, -512, 512};
    cr_assert_eq(sum, llama2c_parameters(header));
    cr_assert_eq(tm_model_parameter_count(m), sum);
    cr_assert_eq(tm_model_parameter_count(m), 260032 + 512 * 64);
    tm_model_free(m);
}

Test(model, llama2_tiny_random_f16) {
    tm_model *m = load_fixture("models/llama-2-tiny-random.gguf");
    const tm_model_config *c = tm_model_get_config(m);
    /* README: 1 block, width 8, 2 heads, F16/F32, 32000-token vocabulary. */
    cr_assert_eq(c->n_layers, 1);
    cr_assert_eq(c->dim, 8);
    cr_assert_eq(c->n_heads, 2);
    cr_assert_eq(c->head_dim, 4);
    cr_assert_eq(c->n_vocab, 32000);
    cr_assert_str_eq(c->name, "LLaMA v2");
    uint64_t hidden = 0, kv = 0, context = 0;
    const tm_gguf *g = tm_model_get_gguf(m);
    cr_assert(tm_gguf_get_u64(g, "llama.feed_forward_length", &hidden));
    cr_assert(tm_gguf_get_u64(g, "llama.attention.head_count_kv", &kv));
    cr_assert(tm_gguf_get_u64(g, "llama.context_length", &context));
    cr_assert_eq((uint64_t)c->hidden_dim, hidden);
    cr_assert_eq((uint64_t)c->n_kv_heads, kv);
    cr_assert_eq((uint64_t)c->context_length, context);
    cr_assert(!c->tied_classifier);

    /* Matrices are F16, norm vectors F32. */
    const tm_layer_weights *w = tm_model_get_layer(m, 0);
    const tm_tensor *matrices[] = {tm_model_get_token_embedding(m), tm_model_get_classifier(m), &w->wq, &w->wk,
                                   &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
    for (size_t i = 0; i < sizeof matrices / sizeof matrices[0]; i++)
        cr_assert_eq(matrices[i]->type, TM_GGML_F16, "matrix %zu has type %u", i, matrices[i]->type);
    cr_assert_eq(tm_model_get_output_norm(m)->type, TM_GGML_F32);
    cr_assert_eq(w->attn_norm.type, TM_GGML_F32);
    cr_assert_eq(w->ffn_norm.type, TM_GGML_F32);
    cr_assert_eq(tm_model_get_token_embedding(m)->rows, 32000);
    cr_assert_eq(tm_model_get_token_embedding(m)->cols, 8);
    cr_assert_eq(w->w_down.cols, (int64_t)hidden);

    uint64_t sum = 0;
    for (uint64_t i = 0; i < tm_gguf_tensor_count(g); i++) sum += tm_gguf_tensor_at(g, i)->n_elements;
    cr_assert_eq(tm_gguf_tensor_count(g), 12);
    cr_assert_eq(tm_model_parameter_count(m), sum);
    uint64_t D = 8, H = hidden, V = 32000, Q = 8, KV = kv * 4;
    cr_assert_eq(sum, 2 * V * D + D + (2 * D + D * Q + 2 * D * KV + Q * D + 3 * D * H));
    tm_model_free(m);
}

Test(model, llama2c_and_gguf_hold_the_same_weights) {
    tm_model *bin = load_fixture("models/stories260K.bin");
    tm_model *gguf = load_fixture("models/stories260K.gguf");
    /* Row by row, so that a mismatch says which token. */
    const uint8_t *a = tm_model_get_token_embedding(bin)->data, *b = tm_model_get_token_embedding(gguf)->data;
    for (int32_t row = 0; row < 512; row++)
        cr_assert(memcmp(a + (size_t)row * 64 * 4, b + (size_t)row * 64 * 4, 64 * 4) == 0,
                  "token embedding row %d differs", row);
    assert_same_tensor(tm_model_get_token_embedding(bin), tm_model_get_token_embedding(gguf), "token_embd");
    assert_same_tensor(tm_model_get_output_norm(bin), tm_model_get_output_norm(gguf), "output_norm");
    /* The GGUF's separate output.weight is a copy of the shared classifier. */
    assert_same_tensor(tm_model_get_classifier(bin), tm_model_get_classifier(gguf), "classifier");
    for (int32_t l = 0; l < 5; l++) {
        const tm_layer_weights *x = tm_model_get_layer(bin, l), *y = tm_model_get_layer(gguf, l);
        char what[64];
        const tm_tensor *xs[] = {&x->attn_norm, &x->wq, &x->wk, &x->wv, &x->wo,
                                 &x->ffn_norm, &x->w_gate, &x->w_up, &x->w_down};
        const tm_tensor *ys[] = {&y->attn_norm, &y->wq, &y->wk, &y->wv, &y->wo,
                                 &y->ffn_norm, &y->w_gate, &y->w_up, &y->w_down};
        for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
            snprintf(what, sizeof what, "layer %d tensor %zu", l, i);
            assert_same_tensor(xs[i], ys[i], what);
        }
    }
    tm_model_free(gguf);
    tm_model_free(bin);
}

Test(model, untied_llama2c_checkpoint) {
    /* A negative vocab size means a separate classifier after the RoPE tables. */
    size_t size;
    uint8_t *raw = read_fixture("models/stories260K.bin", &size);
    size_t classifier = 512 * 64 * 4;
    uint8_t *untied = malloc(size + classifier);
    memcpy(untied, raw, size);
    for (size_t i = 0; i < classifier; i++) untied[size + i] = (uint8_t)(i * 7 + 3);
    put_le32(untied + 20, (uint32_t)-512);
    tm_model *m = load_bytes(untied, size + classifier, "untied.bin");
    cr_assert(!tm_model_get_config(m)->tied_classifier);
    cr_assert_eq(tm_model_get_config(m)->n_vocab, 512);
    cr_assert_eq(tm_model_get_classifier(m)->rows, 512);
    cr_assert_eq(tm_model_get_classifier(m)->cols, 64);
    cr_assert(memcmp(tm_model_get_classifier(m)->data, untied + size, classifier) == 0,
              "classifier is the trailing block");
    cr_assert_eq(tm_model_parameter_count(m), 260032 + 512 * 64);
    tm_model_free(m);
    free(untied);
    free(raw);
}

/* ======================================================================== */
/* Malformed llama2.c checkpoints                                           */
/* ======================================================================== */

static uint8_t *stories_bin(size_t *size) { return read_fixture("models/stories260K.bin", size); }

Test(model_llama2c_malformed, truncated) {
    size_t size;
    uint8_t *raw = stories_bin(&size);
    const size_t short_cuts[] = {0, 1, 4, 27};
    for (size_t i = 0; i < sizeof short_cuts / sizeof short_cuts[0]; i++) {
        char needle[96];
        snprintf(needle, sizeof needle, "%zu bytes is too short for a llama2.c header", short_cuts[i]);
        expect_load_failure(raw, short_cuts[i], "short.bin", TM_ERR_FORMAT, needle);
    }
    const size_t cuts[] = {28, 29, 100, 28 + 512 * 64 * 4, size / 2, size - 4, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char needle[96];
        snprintf(needle, sizeof needle, "file has %zu bytes", cuts[i]);
        expect_load_failure(raw, cuts[i], "cut.bin", TM_ERR_FORMAT, needle);
        expect_load_failure(raw, cuts[i], "cut.bin", TM_ERR_FORMAT, "implies 1056540");
    }
    free(raw);
}

Test(model_llama2c_malformed, extra_trailing_bytes) {
    size_t size;
    uint8_t *raw = stories_bin(&size);
    uint8_t *longer = calloc(size + 4096, 1);
    memcpy(longer, raw, size);
    const size_t extra[] = {1, 3, 4, 4096};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        char needle[96];
        snprintf(needle, sizeof needle, "file has %zu bytes", size + extra[i]);
        expect_load_failure(longer, size + extra[i], "long.bin", TM_ERR_FORMAT, needle);
        expect_load_failure(longer, size + extra[i], "long.bin", TM_ERR_FORMAT, "implies 1056540");
    }
    free(longer);
    free(raw);
}

/* A copy of the good checkpoint with header field `field` set to value. */
static void expect_header_failure(int field, int32_t value, tm_status code, const char *needle) {
    size_t size;
    uint8_t *raw = stories_bin(&size);
    put_le32(raw + 4 * field, (uint32_t)value);
    expect_load_failure(raw, size, "bad-header.bin", code, needle);
    free(raw);
}

Test(model_llama2c_malformed, zero_and_negative_dimensions) {
    /* dim, hidden, layers, heads, kv heads, vocab (negative is legal: untied), seq */
    for (int field = 0; field < 7; field++) {
        if (field != 5) expect_header_failure(field, -1, TM_ERR_FORMAT, "non-positive hyper-parameter");
        expect_header_failure(field, 0, TM_ERR_FORMAT, "non-positive hyper-parameter");
        expect_header_failure(field, INT32_MIN, TM_ERR_FORMAT, "non-positive hyper-parameter");
    }
    /* -512 is a legal untied vocabulary, but then the file lacks the classifier. */
    expect_header_failure(5, -512, TM_ERR_FORMAT, "implies 1187612");
}

Test(model_llama2c_malformed, heads_must_divide) {
    /* 6 heads (kv 3): head size 64/6 = 10 would be even, yet 6 does not divide 64. */
    size_t size;
    uint8_t *raw = stories_bin(&size);
    put_le32(raw + 12, 6);
    put_le32(raw + 16, 3);
    expect_load_failure(raw, size, "heads.bin", TM_ERR_FORMAT, "dim 64 is not a multiple of 6 heads");
    /* 5 heads, 5 kv heads: head size 12, 5 does not divide 64. */
    put_le32(raw + 12, 5);
    put_le32(raw + 16, 5);
    expect_load_failure(raw, size, "heads.bin", TM_ERR_FORMAT, "is not a multiple of 5 heads");
    free(raw);
    /* kv heads must divide heads. */
    expect_header_failure(4, 3, TM_ERR_FORMAT, "8 heads is not a multiple of 3 kv heads");
    expect_header_failure(4, 16, TM_ERR_FORMAT, "8 heads is not a multiple of 16 kv heads");
    /* 64 heads of size 1: an odd head size cannot be rotated in pairs. */
    size = 0;
    raw = stories_bin(&size);
    put_le32(raw + 12, 64);
    put_le32(raw + 16, 64);
    expect_load_failure(raw, size, "heads.bin", TM_ERR_FORMAT, "head size 1 must be positive and even");
    free(raw);
}

Test(model_llama2c_malformed, huge_dimensions) {
    /* Each alone: far beyond any model, and the products would overflow 64 bits. */
    expect_header_failure(0, 1 << 30, TM_ERR_FORMAT, "beyond any supported model");
    expect_header_failure(1, INT32_MAX, TM_ERR_FORMAT, "beyond any supported model");
    expect_header_failure(2, INT32_MAX, TM_ERR_FORMAT, "beyond any supported model");
    expect_header_failure(5, INT32_MAX, TM_ERR_FORMAT, "beyond any supported model");
    expect_header_failure(5, -INT32_MAX, TM_ERR_FORMAT, "beyond any supported model");

    /* All at once, every one as large as can be without the product overflowing. */
    size_t size;
    uint8_t *raw = stories_bin(&size);
    int32_t h[7] = {INT32_MAX, INT32_MAX, INT32_MAX, 2, 2, INT32_MAX, INT32_MAX};
    for (int i = 0; i < 7; i++) put_le32(raw + 4 * i, (uint32_t)h[i]);
    expect_load_failure(raw, size, "huge.bin", TM_ERR_FORMAT, "head size 1073741823 must be positive and even");
    int32_t big[7] = {1 << 30, 1 << 30, 1 << 30, 1 << 10, 1 << 10, 1 << 30, 1 << 30};
    for (int i = 0; i < 7; i++) put_le32(raw + 4 * i, (uint32_t)big[i]);
    expect_load_failure(raw, size, "huge.bin", TM_ERR_FORMAT, "beyond any supported model");

    /* The largest header the limits admit: the size it implies is computed
     * without overflow (checked here independently) and does not match. */
    int32_t edge[7] = {1 << 20, 1 << 22, 4096, 256, 256, 1 << 24, INT32_MAX};
    for (int i = 0; i < 7; i++) put_le32(raw + 4 * i, (uint32_t)edge[i]);
    uint64_t floats = llama2c_parameters(edge), rope, bytes;
    cr_assert(tm_mul_u64((uint64_t)INT32_MAX, 4096, &rope));
    cr_assert(tm_add_u64(floats, rope, &floats));
    cr_assert(tm_mul_u64(floats, 4, &bytes) && tm_add_u64(bytes, 28, &bytes), "the edge header overflows");
    char needle[64];
    snprintf(needle, sizeof needle, "implies %llu", (unsigned long long)bytes);
    expect_load_failure(raw, size, "edge.bin", TM_ERR_FORMAT, needle);
    free(raw);
}

/* llama2.c's export.py version 1/2 layout: magic "ak42" as a little-endian
 * uint32 0x616b3432, version, 7 header ints, shared-classifier flag, padding
 * to 256 bytes, then weights. */
Test(model_llama2c_malformed, ak42_exports_are_unsupported) {
    for (int32_t version = 1; version <= 2; version++) {
        size_t size = 256 + 4096;
        uint8_t *file = calloc(size, 1);
        put_le32(file, 0x616b3432);
        cr_assert(memcmp(file, "24ka", 4) == 0, "the magic as export.py's struct.pack('I', 0x616b3432) writes it");
        put_le32(file + 4, (uint32_t)version);
        const int32_t header[7] = {64, 172, 5, 8, 4, 512, 512};
        for (int i = 0; i < 7; i++) put_le32(file + 8 + 4 * i, (uint32_t)header[i]);
        file[36] = 1;
        char needle[96];
        snprintf(needle, sizeof needle, "llama2.c export format version %d is not supported", version);
        expect_load_failure(file, size, "v1.bin", TM_ERR_UNSUPPORTED, needle);
        free(file);
    }
}

Test(model_llama2c_malformed, missing_file_and_folder) {
    tm_model *model = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_model_load(&model, "/nonexistent/tracemark/model.bin", &err), TM_ERR_IO);
    cr_assert_null(model);
    cr_assert_not_null(strstr(err.message, "/nonexistent/tracemark/model.bin"), "%s", err.message);
    char *dir = tm_test_scratch_dir();
    cr_assert_eq(tm_model_load(&model, dir, &err), TM_ERR_IO);
    cr_assert_null(model);
    cr_assert_not_null(strstr(err.message, dir), "%s", err.message);
    rmdir(dir);
    free(dir);
}

/* ======================================================================== */
/* A small GGUF writer for synthetic Llama models                           */
/* ======================================================================== */

typedef struct {
    const char *architecture;
    uint32_t dim, hidden, layers, heads, kv_heads, vocab;
    const char *omit_key;      /* metadata suffix left out, e.g. "embedding_length" */
    bool tied;                 /* no output.weight */
    const char *odd_tensor;    /* this tensor gets odd_type / odd_rows */
    uint32_t odd_type;
    uint64_t odd_rows;         /* 0: keep */
    const char *extra_tensor;  /* one more F32 vector of extra_cols elements, each extra_value */
    uint32_t extra_cols;
    float extra_value;
    const char *rope_scaling;  /* <arch>.rope.scaling.type; NULL: absent */
    float rope_scaling_factor; /* <arch>.rope.scaling.factor unless 0 */
} synthetic;

static synthetic synthetic_default(void) {
    /* dim 256 so that a row is one Q4_K block. */
    return (synthetic){.architecture = "llama", .dim = 256, .hidden = 32, .layers = 2, .heads = 2, .kv_heads = 1,
                       .vocab = 8, .odd_type = TM_GGML_F32};
}

/* Row bytes per type, from ggml's block structs (independent of the reader). */
static uint64_t row_bytes(uint32_t type, uint64_t cols) {
    switch (type) {
    case TM_GGML_F32: return cols * 4;
    case TM_GGML_F16: return cols * 2;
    case TM_GGML_Q4_K: return cols / 256 * 144; /* block_q4_K: 2 halves, 12 scale bytes, 128 quant bytes */
    case TM_GGML_Q8_0: return cols / 32 * 34;   /* block_q8_0: a half and 32 int8 */
    case TM_GGML_Q2_K: return cols / 256 * 84;  /* block_q2_K: 16 scale bytes, 64 quant bytes, 2 halves */
    }
    cr_assert_fail("row_bytes: type %u", type);
    return 0;
}

static buffer write_synthetic(const synthetic *s) {
    typedef struct {
        char name[64];
        uint64_t ne[2];
        uint32_t n_dims, type;
    } info;
    info tensors[4 + 9 * 8];
    size_t n = 0;
    uint32_t D = s->dim, H = s->hidden, V = s->vocab, head = s->dim / s->heads, Q = s->heads * head,
             KV = s->kv_heads * head;
#define ADD(nm, cols, rows, dims)                                                                                  \
    do {                                                                                                           \
        snprintf(tensors[n].name, sizeof tensors[n].name, "%s", nm);                                             \
        tensors[n].ne[0] = (cols);                                                                                 \
        tensors[n].ne[1] = (rows);                                                                                 \
        tensors[n].n_dims = (dims);                                                                                \
        tensors[n].type = TM_GGML_F32;                                                                             \
        n++;                                                                                                       \
    } while (0)
    ADD("token_embd.weight", D, V, 2);
    ADD("output_norm.weight", D, 1, 1);
    if (!s->tied) ADD("output.weight", D, V, 2);
    cr_assert_leq(s->layers, 8);
    for (uint32_t l = 0; l < s->layers; l++) {
        const struct { const char *suffix; uint32_t cols, rows, dims; } layer[] = {
            {"attn_norm", D, 1, 1}, {"attn_q", D, Q, 2},      {"attn_k", D, KV, 2},   {"attn_v", D, KV, 2},
            {"attn_output", Q, D, 2}, {"ffn_norm", D, 1, 1}, {"ffn_gate", D, H, 2}, {"ffn_up", D, H, 2},
            {"ffn_down", H, D, 2}};
        for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, layer[i].suffix);
            ADD(name, layer[i].cols, layer[i].rows, layer[i].dims);
        }
    }
    if (s->extra_tensor) ADD(s->extra_tensor, s->extra_cols, 1, 1);
#undef ADD
    for (size_t i = 0; i < n; i++)
        if (s->odd_tensor && strcmp(tensors[i].name, s->odd_tensor) == 0) {
            tensors[i].type = s->odd_type;
            if (s->odd_rows) {
                tensors[i].ne[1] = s->odd_rows;
                tensors[i].n_dims = 2;
            }
        }

    buffer kvs = {0};
    uint64_t n_kv = 0;
    char key[96];
    put_kv_string(&kvs, "general.architecture", s->architecture), n_kv++;
    put_kv_string(&kvs, "general.name", "synthetic"), n_kv++;
    const struct { const char *suffix; uint32_t value; } numbers[] = {
        {"context_length", 64}, {"embedding_length", D},       {"feed_forward_length", H},
        {"block_count", s->layers}, {"attention.head_count", s->heads}, {"attention.head_count_kv", s->kv_heads}};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        if (s->omit_key && strcmp(s->omit_key, numbers[i].suffix) == 0) continue;
        snprintf(key, sizeof key, "%s.%s", s->architecture, numbers[i].suffix);
        put_kv_u32(&kvs, key, numbers[i].value), n_kv++;
    }
    if (s->rope_scaling) {
        snprintf(key, sizeof key, "%s.rope.scaling.type", s->architecture);
        put_kv_string(&kvs, key, s->rope_scaling), n_kv++;
    }
    if (s->rope_scaling_factor != 0) {
        snprintf(key, sizeof key, "%s.rope.scaling.factor", s->architecture);
        put_kv_f32(&kvs, key, s->rope_scaling_factor), n_kv++;
    }

    buffer b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, n);
    put_u64(&b, n_kv);
    put(&b, kvs.data, kvs.size);
    uint64_t offset = 0, extra_offset = 0;
    for (size_t i = 0; i < n; i++) {
        if (s->extra_tensor && !strcmp(tensors[i].name, s->extra_tensor)) extra_offset = offset;
        put_string(&b, tensors[i].name);
        put_u32(&b, tensors[i].n_dims);
        for (uint32_t d = 0; d < tensors[i].n_dims; d++) put_u64(&b, tensors[i].ne[d]);
        put_u32(&b, tensors[i].type);
        put_u64(&b, offset);
        offset += row_bytes(tensors[i].type, tensors[i].ne[0]) * tensors[i].ne[1];
        offset = (offset + 31) / 32 * 32;
    }
    while (b.size % 32) put(&b, "", 1);
    /* Weights: a simple pattern, so that views can be checked against the bytes. */
    size_t data_start = b.size;
    for (uint64_t i = 0; i < offset; i++) {
        uint8_t byte = (uint8_t)(i * 31 + 7);
        put(&b, &byte, 1);
    }
    for (uint32_t i = 0; s->extra_tensor && i < s->extra_cols; i++)
        memcpy(b.data + data_start + extra_offset + 4 * i, &s->extra_value, 4);
    free(kvs.data);
    return b;
}

static void expect_synthetic_failure(const synthetic *s, tm_status code, const char *needle) {
    buffer b = write_synthetic(s);
    expect_load_failure(b.data, b.size, "synthetic.gguf", code, needle);
    free(b.data);
}

/* ======================================================================== */
/* GGUF models                                                              */
/* ======================================================================== */

Test(model_gguf, synthetic_writer_makes_a_loadable_model) {
    /* The failure tests below change one thing in this file; it must load as is. */
    synthetic s = synthetic_default();
    buffer b = write_synthetic(&s);
    tm_model *m = load_bytes(b.data, b.size, "synthetic.gguf");
    const tm_model_config *c = tm_model_get_config(m);
    cr_assert_eq(c->dim, 256);
    cr_assert_eq(c->hidden_dim, 32);
    cr_assert_eq(c->n_layers, 2);
    cr_assert_eq(c->n_heads, 2);
    cr_assert_eq(c->n_kv_heads, 1);
    cr_assert_eq(c->head_dim, 128);
    cr_assert_eq(c->n_vocab, 8);
    cr_assert_eq(c->context_length, 64);
    cr_assert_str_eq(c->name, "synthetic");
    cr_assert(!c->tied_classifier);
    uint64_t per_layer = 256 + 256 * 256 + 2 * 256 * 128 + 256 * 256 + 256 + 3 * 256 * 32;
    cr_assert_eq(tm_model_parameter_count(m), 2 * 8 * 256 + 256 + 2 * per_layer);
    /* Views point at the tensor data the writer laid out. */
    const tm_gguf_tensor *q = tm_gguf_find_tensor(tm_model_get_gguf(m), "blk.1.attn_q.weight");
    cr_assert_eq(tm_model_get_layer(m, 1)->wq.data, q->data);
    cr_assert_eq(tm_model_get_layer(m, 1)->wk.rows, 128);
    cr_assert_eq(tm_model_get_layer(m, 1)->w_down.cols, 32);
    tm_model_free(m);
    free(b.data);

    s.tied = true;
    b = write_synthetic(&s);
    m = load_bytes(b.data, b.size, "tied.gguf");
    cr_assert(tm_model_get_config(m)->tied_classifier, "no output.weight: the classifier is the embedding");
    cr_assert_eq(tm_model_get_classifier(m)->data, tm_model_get_token_embedding(m)->data);
    cr_assert_eq(tm_model_parameter_count(m), 8 * 256 + 256 + 2 * per_layer);
    tm_model_free(m);
    free(b.data);

    /* F16 matrices are supported. */
    s = synthetic_default();
    s.odd_tensor = "blk.0.attn_q.weight";
    s.odd_type = TM_GGML_F16;
    b = write_synthetic(&s);
    m = load_bytes(b.data, b.size, "f16.gguf");
    cr_assert_eq(tm_model_get_layer(m, 0)->wq.type, TM_GGML_F16);
    tm_model_free(m);
    free(b.data);
}

Test(model_gguf, quantized_matrices_load_and_other_types_are_unsupported) {
    synthetic s = synthetic_default();
    s.odd_tensor = "blk.0.attn_q.weight";
    s.odd_type = TM_GGML_Q4_K;
    buffer b = write_synthetic(&s);
    tm_model *m = load_bytes(b.data, b.size, "q4k.gguf");
    cr_assert_eq(tm_model_get_layer(m, 0)->wq.type, TM_GGML_Q4_K);
    tm_model_free(m);
    free(b.data);
    s.odd_tensor = "token_embd.weight";
    s.odd_type = TM_GGML_Q8_0;
    b = write_synthetic(&s);
    m = load_bytes(b.data, b.size, "q8.gguf");
    cr_assert_eq(tm_model_get_token_embedding(m)->type, TM_GGML_Q8_0);
    tm_model_free(m);
    free(b.data);
    /* Types without a kernel are refused by name. */
    s.odd_tensor = "blk.1.ffn_up.weight";
    s.odd_type = TM_GGML_Q2_K;
    expect_synthetic_failure(&s, TM_ERR_UNSUPPORTED, "unsupported tensor type Q2_K for blk.1.ffn_up.weight");
    /* Norm weights must be F32 even where F16 and quantized matrices are fine. */
    s.odd_tensor = "blk.0.attn_norm.weight";
    s.odd_type = TM_GGML_F16;
    expect_synthetic_failure(&s, TM_ERR_UNSUPPORTED, "unsupported tensor type F16 for blk.0.attn_norm.weight");
    s.odd_type = TM_GGML_Q8_0;
    expect_synthetic_failure(&s, TM_ERR_UNSUPPORTED, "unsupported tensor type Q8_0 for blk.0.attn_norm.weight");
}

Test(model_gguf, wrongly_shaped_tensors) {
    synthetic s = synthetic_default();
    s.odd_tensor = "blk.1.attn_v.weight";
    s.odd_rows = 64;
    expect_synthetic_failure(&s, TM_ERR_FORMAT, "tensor blk.1.attn_v.weight has shape [256, 64, 1, 1], expected [256, 128]");

    /* The same in the real file: swap the dimensions of blk.0.attn_k.weight
     * ([64, 32] -> [32, 64], same byte count), or halve output_norm. */
    size_t size;
    uint8_t *raw = read_fixture("models/stories260K.gguf", &size);
    const char *name = "blk.0.attn_k.weight";
    uint8_t *hit = memmem(raw, size, name, strlen(name));
    cr_assert_not_null(hit);
    cr_assert_eq(le64(hit - 8), strlen(name));
    uint8_t *dims = hit + strlen(name);
    cr_assert_eq(le32(dims), 2);
    cr_assert_eq(le64(dims + 4), 64);
    cr_assert_eq(le64(dims + 12), 32);
    put_le64(dims + 4, 32);
    put_le64(dims + 12, 64);
    expect_load_failure(raw, size, "shape.gguf", TM_ERR_FORMAT,
                        "tensor blk.0.attn_k.weight has shape [32, 64, 1, 1], expected [64, 32]");
    free(raw);

    raw = read_fixture("models/stories260K.gguf", &size);
    name = "output_norm.weight";
    hit = memmem(raw, size, name, strlen(name));
    cr_assert_not_null(hit);
    dims = hit + strlen(name);
    cr_assert_eq(le32(dims), 1);
    cr_assert_eq(le64(dims + 4), 64);
    put_le64(dims + 4, 32);
    expect_load_failure(raw, size, "shape.gguf", TM_ERR_FORMAT,
                        "tensor output_norm.weight has shape [32, 1, 1, 1], expected [64, 1]");
    free(raw);
}

Test(model_gguf, missing_tensor) {
    /* Rename blk.0.attn_q.weight to blk.0.attn_x.weight in the real file. */
    size_t size;
    uint8_t *raw = read_fixture("models/stories260K.gguf", &size);
    const char *name = "blk.0.attn_q.weight";
    uint8_t *hit = memmem(raw, size, name, strlen(name));
    cr_assert_not_null(hit);
    cr_assert_eq(le64(hit - 8), strlen(name));
    hit[strlen("blk.0.attn_")] = 'x';
    expect_load_failure(raw, size, "missing.gguf", TM_ERR_FORMAT, "missing tensor blk.0.attn_q.weight");
    free(raw);

    synthetic s = synthetic_default();
    s.layers = 1;
    buffer b = write_synthetic(&s);
    /* A model whose block_count promises more blocks than it has. */
    hit = memmem(b.data, b.size, "llama.block_count", strlen("llama.block_count"));
    cr_assert_not_null(hit);
    put_le32(hit + strlen("llama.block_count") + 4, 2);
    expect_load_failure(b.data, b.size, "blocks.gguf", TM_ERR_FORMAT, "missing tensor blk.1.attn_norm.weight");
    free(b.data);
}

Test(model_gguf, missing_metadata) {
    size_t size;
    uint8_t *raw = read_fixture("models/stories260K.gguf", &size);
    const char *key = "llama.embedding_length";
    uint8_t *hit = memmem(raw, size, key, strlen(key));
    cr_assert_not_null(hit);
    hit[strlen(key) - 1] = 'X';
    expect_load_failure(raw, size, "metadata.gguf", TM_ERR_FORMAT, "missing metadata llama.embedding_length");
    free(raw);

    const char *required[] = {"embedding_length", "feed_forward_length", "block_count", "attention.head_count",
                              "context_length"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        synthetic s = synthetic_default();
        s.omit_key = required[i];
        char needle[96];
        snprintf(needle, sizeof needle, "missing metadata llama.%s", required[i]);
        expect_synthetic_failure(&s, TM_ERR_FORMAT, needle);
    }
    /* head_count_kv is optional: it defaults to head_count. */
    synthetic s = synthetic_default();
    s.kv_heads = 2;
    s.omit_key = "attention.head_count_kv";
    buffer b = write_synthetic(&s);
    tm_model *m = load_bytes(b.data, b.size, "kv.gguf");
    cr_assert_eq(tm_model_get_config(m)->n_kv_heads, 2);
    tm_model_free(m);
    free(b.data);
}

Test(model_gguf, unsupported_architecture) {
    synthetic s = synthetic_default();
    s.architecture = "gpt2";
    expect_synthetic_failure(&s, TM_ERR_UNSUPPORTED, "unsupported architecture 'gpt2' (supported: llama, qwen2)");
}

/* Qwen2: metadata under "qwen2.", NeoX rotation, optional F32 Q/K/V biases
 * of the projections' widths (the logits are checked in test_families). */
Test(model_gguf, qwen2_loads_with_its_biases) {
    synthetic s = synthetic_default();
    s.architecture = "qwen2";
    buffer b = write_synthetic(&s);
    tm_model *m = load_bytes(b.data, b.size, "qwen2.gguf");
    cr_assert_str_eq(tm_model_get_config(m)->architecture, "qwen2");
    cr_assert_eq(tm_model_get_config(m)->arch, TM_ARCH_QWEN2);
    cr_assert_eq(tm_model_get_config(m)->rope_style, TM_ROPE_NEOX);
    cr_assert_null(tm_model_get_layer(m, 0)->bq.data, "biases are optional");
    uint64_t without = tm_model_parameter_count(m);
    tm_model_free(m);
    free(b.data);

    s.extra_tensor = "blk.1.attn_k.bias", s.extra_cols = 128;
    b = write_synthetic(&s);
    m = load_bytes(b.data, b.size, "qwen2-bias.gguf");
    cr_assert_eq(tm_model_get_layer(m, 1)->bk.data,
                 tm_gguf_find_tensor(tm_model_get_gguf(m), "blk.1.attn_k.bias")->data);
    cr_assert_eq(tm_model_get_layer(m, 1)->bk.cols, 128);
    cr_assert_null(tm_model_get_layer(m, 1)->bq.data);
    cr_assert_eq(tm_model_parameter_count(m), without + 128);
    tm_model_free(m);
    free(b.data);

    s.extra_cols = 256; /* the query's width, not the key's */
    expect_synthetic_failure(&s, TM_ERR_FORMAT, "tensor blk.1.attn_k.bias has shape [256, 1, 1, 1], expected [128, 1]");
    s.extra_tensor = "rope_freqs.weight", s.extra_cols = 64, s.extra_value = 1;
    expect_synthetic_failure(&s, TM_ERR_UNSUPPORTED, "tensor rope_freqs.weight is not used by the qwen2 forward pass");
}

/* A tensor the forward pass would not apply is refused by name, as llama.cpp
 * refuses it, instead of being silently left out of the logits. */
Test(model_gguf, tensors_the_forward_pass_would_ignore_are_refused) {
    const struct { const char *name; uint32_t cols; } unused[] = {
        {"blk.0.attn_output.bias", 256}, {"output.bias", 8}, {"blk.2.attn_norm.weight", 256},
        {"blk.01.attn_q.bias", 256},     {"blk.0.ffn_up.bias", 32}};
    for (size_t i = 0; i < sizeof unused / sizeof unused[0]; i++) {
        synthetic s = synthetic_default();
        s.extra_tensor = unused[i].name, s.extra_cols = unused[i].cols;
        char needle[128];
        snprintf(needle, sizeof needle, "tensor %s is not used by the llama forward pass", unused[i].name);
        expect_synthetic_failure(&s, TM_ERR_UNSUPPORTED, needle);
    }
}

/* Llama 3's rope_freqs.weight: head_dim/2 F32 divisors, each checked. */
Test(model_gguf, llama3_rope_factors_load_and_bad_ones_are_refused) {
    synthetic s = synthetic_default();
    s.extra_tensor = "rope_freqs.weight", s.extra_cols = 64, s.extra_value = 4;
    buffer b = write_synthetic(&s);
    tm_model *m = load_bytes(b.data, b.size, "factors.gguf");
    cr_assert_eq(tm_model_get_rope_factors(m)->data,
                 tm_gguf_find_tensor(tm_model_get_gguf(m), "rope_freqs.weight")->data);
    cr_assert_eq(tm_model_get_rope_factors(m)->cols, 64);
    tm_model_free(m);
    free(b.data);
    s.extra_value = 0;
    expect_synthetic_failure(&s, TM_ERR_FORMAT, "rope_freqs.weight[0] = 0 must be positive and finite");
    s.extra_value = NAN;
    expect_synthetic_failure(&s, TM_ERR_FORMAT, "rope_freqs.weight[0] = nan must be positive and finite");
    s.extra_value = 1, s.extra_cols = 32;
    expect_synthetic_failure(&s, TM_ERR_FORMAT, "tensor rope_freqs.weight has shape [32, 1, 1, 1], expected [64, 1]");
}

/* <arch>.rope.scaling.*: linear divides the angles by the factor, none
 * ignores it, the others are refused by name. */
Test(model_gguf, rope_scaling_linear_none_and_refused_types) {
    synthetic s = synthetic_default();
    buffer b = write_synthetic(&s);
    tm_model *m = load_bytes(b.data, b.size, "plain.gguf");
    cr_assert_eq(tm_model_get_config(m)->rope_freq_scale, 1.0f);
    tm_model_free(m);
    free(b.data);
    s.rope_scaling = "linear", s.rope_scaling_factor = 4;
    b = write_synthetic(&s);
    m = load_bytes(b.data, b.size, "linear.gguf");
    cr_assert_eq(tm_model_get_config(m)->rope_freq_scale, 0.25f);
    tm_model_free(m);
    free(b.data);
    s.rope_scaling = NULL; /* llama.cpp's default type is linear */
    b = write_synthetic(&s);
    m = load_bytes(b.data, b.size, "factor-only.gguf");
    cr_assert_eq(tm_model_get_config(m)->rope_freq_scale, 0.25f);
    tm_model_free(m);
    free(b.data);
    s.rope_scaling = "none";
    b = write_synthetic(&s);
    m = load_bytes(b.data, b.size, "none.gguf");
    cr_assert_eq(tm_model_get_config(m)->rope_freq_scale, 1.0f);
    tm_model_free(m);
    free(b.data);
    s.rope_scaling = "yarn";
    expect_synthetic_failure(&s, TM_ERR_UNSUPPORTED,
                             "rope scaling type 'yarn' (llama.rope.scaling.type) is not supported");
    s.rope_scaling = "longrope";
    expect_synthetic_failure(&s, TM_ERR_UNSUPPORTED, "rope scaling type 'longrope'");
    s.rope_scaling = "linear", s.rope_scaling_factor = -2;
    expect_synthetic_failure(&s, TM_ERR_FORMAT, "llama.rope.scaling.factor = -2");
}

Test(model_gguf, vocab_only_file_has_no_weights) {
    char *path = tm_fixture("tokenizer-tests/ggml-vocab-llama-spm.gguf");
    tm_model *model = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_model_load(&model, path, &err), TM_ERR_FORMAT, "%s", err.message);
    cr_assert_null(model);
    cr_assert_not_null(strstr(err.message, path), "%s", err.message);
    cr_assert_not_null(strstr(err.message, "missing tensor token_embd.weight"), "%s", err.message);
    free(path);
}

/* ======================================================================== */
/* The tokenizer that goes with a model                                      */
/* ======================================================================== */

Test(model_tokenizer, matching_tokenizers) {
    tm_model *bin = load_fixture("models/stories260K.bin");
    char *tok512 = tm_fixture("models/tok512.bin");
    tm_tokenizer *t = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_model_tokenizer(&t, bin, tok512, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_tokenizer_vocab_size(t), 512);
    cr_assert_eq(tm_tokenizer_bos(t), 1);
    cr_assert_eq(tm_tokenizer_eos(t), 2);
    tm_tokenizer_free(t);

    tm_model *gguf = load_fixture("models/stories260K.gguf");
    cr_assert_eq(tm_model_tokenizer(&t, gguf, NULL, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_tokenizer_vocab_size(t), 512);
    tm_tokenizer_free(t);
    cr_assert_eq(tm_model_tokenizer(&t, gguf, "", &err), TM_OK, "an empty path means the model's own: %s", err.message);
    tm_tokenizer_free(t);
    /* A GGUF model may still take an explicit tokenizer of the right size. */
    cr_assert_eq(tm_model_tokenizer(&t, gguf, tok512, &err), TM_OK, "%s", err.message);
    tm_tokenizer_free(t);
    free(tok512);
    tm_model_free(gguf);
    tm_model_free(bin);
}

Test(model_tokenizer, size_mismatch_names_both_sizes) {
    char *vocab = tm_fixture("tokenizer-tests/ggml-vocab-llama-spm.gguf");
    const char *models[] = {"models/stories260K.gguf", "models/stories260K.bin"};
    for (size_t i = 0; i < 2; i++) {
        tm_model *m = load_fixture(models[i]);
        tm_tokenizer *t = (tm_tokenizer *)&t;
        tm_error err = {0};
        cr_assert_eq(tm_model_tokenizer(&t, m, vocab, &err), TM_ERR_FORMAT, "%s", err.message);
        cr_assert_null(t);
        cr_assert_not_null(strstr(err.message, "32000"), "%s", err.message);
        cr_assert_not_null(strstr(err.message, "512"), "%s", err.message);
        cr_assert_not_null(strstr(err.message, vocab), "names the tokenizer: %s", err.message);
        cr_assert_not_null(strstr(err.message, tm_model_get_path(m)), "names the model: %s", err.message);
        tm_model_free(m);
    }
    free(vocab);
}

Test(model_tokenizer, llama2c_needs_a_tokenizer) {
    tm_model *m = load_fixture("models/stories260K.bin");
    const char *none[] = {NULL, ""};
    for (size_t i = 0; i < 2; i++) {
        tm_tokenizer *t = (tm_tokenizer *)&t;
        tm_error err = {0};
        cr_assert_eq(tm_model_tokenizer(&t, m, none[i], &err), TM_ERR_ARGUMENT, "%s", err.message);
        cr_assert_null(t);
        cr_assert_not_null(strstr(err.message, "--tokenizer"), "%s", err.message);
        cr_assert_not_null(strstr(err.message, tm_model_get_path(m)), "%s", err.message);
    }
    tm_tokenizer *t = NULL;
    tm_error err = {0};
    cr_assert_neq(tm_model_tokenizer(&t, m, "/nonexistent/tok512.bin", &err), TM_OK);
    cr_assert_null(t);
    cr_assert_not_null(strstr(err.message, "/nonexistent/tok512.bin"), "%s", err.message);
    tm_model_free(m);
}

/* ======================================================================== */
/* Resolving which model to run                                              */
/* ======================================================================== */

enum { PATH_SIZE = 4096 };

Test(model_resolve, explicit_path_that_does_not_exist) {
    char model[PATH_SIZE], tokenizer[PATH_SIZE];
    tm_error err = {0};
    setenv("TRACEMARK_MODEL", "/also/not/there.bin", 1);
    cr_assert_eq(tm_model_resolve("/nonexistent/model.gguf", model, sizeof model, tokenizer, sizeof tokenizer, &err),
                 TM_ERR_NOT_FOUND);
    cr_assert_not_null(strstr(err.message, "/nonexistent/model.gguf"), "%s", err.message);
    /* A folder is not a model file. */
    char *dir = tm_test_scratch_dir();
    cr_assert_eq(tm_model_resolve(dir, model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_ERR_NOT_FOUND);
    rmdir(dir);
    free(dir);
}

Test(model_resolve, explicit_bin_finds_its_tokenizer) {
    char model[PATH_SIZE], tokenizer[PATH_SIZE];
    tm_error err = {0};
    char *bin = tm_fixture("models/stories260K.bin");
    char *tok = tm_fixture("models/tok512.bin");
    cr_assert_eq(tm_model_resolve(bin, model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_OK, "%s",
                 err.message);
    cr_assert_str_eq(model, bin);
    cr_assert_str_eq(tokenizer, tok);

    /* A GGUF carries its own tokenizer. */
    char *gguf = tm_fixture("models/stories260K.gguf");
    cr_assert_eq(tm_model_resolve(gguf, model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_OK);
    cr_assert_str_eq(model, gguf);
    cr_assert_str_eq(tokenizer, "");

    /* A checkpoint with tokenizer.bin beside it, and one with nothing beside it. */
    char *dir = tm_test_scratch_dir();
    char *copy = tm_test_path(dir, "model.bin"), *tokenizer_bin = tm_test_path(dir, "tokenizer.bin");
    cr_assert_eq(symlink(bin, copy), 0);
    cr_assert_eq(tm_model_resolve(copy, model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_OK);
    cr_assert_str_eq(model, copy);
    cr_assert_str_eq(tokenizer, "", "nothing lies beside it");
    cr_assert_eq(symlink(tok, tokenizer_bin), 0);
    cr_assert_eq(tm_model_resolve(copy, model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_OK);
    cr_assert_str_eq(tokenizer, tokenizer_bin);
    /* A relative path in the current folder. */
    cr_assert_eq(chdir(dir), 0);
    cr_assert_eq(tm_model_resolve("model.bin", model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_OK);
    cr_assert_str_eq(model, "model.bin");
    cr_assert_str_eq(tokenizer, "./tokenizer.bin");
    /* Path buffers too small are an error, not a truncated path. */
    char tiny[8];
    cr_assert_eq(tm_model_resolve(bin, tiny, sizeof tiny, tokenizer, sizeof tokenizer, &err), TM_ERR_ARGUMENT);
    unlink(copy);
    unlink(tokenizer_bin);
    rmdir(dir);
    free(copy);
    free(tokenizer_bin);
    free(dir);
    free(gguf);
    free(tok);
    free(bin);
}

Test(model_resolve, tokenizer_path_that_does_not_fit) {
    /* The tokenizer found beside the model must fit its buffer: a cut path
     * would name another file (or none), so it is an error like a long model path. */
    char model[PATH_SIZE], tiny[8];
    tm_error err = {0};
    char *bin = tm_fixture("models/stories260K.bin");
    tm_status s = tm_model_resolve(bin, model, sizeof model, tiny, sizeof tiny, &err);
    char got[sizeof tiny + 1];
    snprintf(got, sizeof got, "%s", tiny);
    free(bin);
    cr_assert_eq(s, TM_ERR_ARGUMENT, "a %zu-byte tokenizer buffer: got %s with tokenizer path \"%s\"", sizeof tiny,
                 tm_status_name(s), got);
}

Test(model_resolve, environment_variable) {
    char model[PATH_SIZE], tokenizer[PATH_SIZE];
    tm_error err = {0};
    char *gguf = tm_fixture("models/stories260K.gguf");
    char *bin = tm_fixture("models/stories260K.bin");
    char *tok = tm_fixture("models/tok512.bin");
    setenv("TRACEMARK_MODEL", gguf, 1);
    cr_assert_eq(tm_model_resolve(NULL, model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_OK, "%s",
                 err.message);
    cr_assert_str_eq(model, gguf);
    cr_assert_str_eq(tokenizer, "");
    cr_assert_eq(tm_model_resolve("", model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_OK);
    cr_assert_str_eq(model, gguf, "an empty --model falls through to the environment");
    /* --model wins over the environment. */
    cr_assert_eq(tm_model_resolve(bin, model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_OK);
    cr_assert_str_eq(model, bin);
    cr_assert_str_eq(tokenizer, tok);
    /* The environment's .bin finds its tokenizer too. */
    setenv("TRACEMARK_MODEL", bin, 1);
    cr_assert_eq(tm_model_resolve(NULL, model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_OK);
    cr_assert_str_eq(model, bin);
    cr_assert_str_eq(tokenizer, tok);
    /* A variable naming a missing file is an error, not a reason to download. */
    setenv("TRACEMARK_MODEL", "/nonexistent/env-model.gguf", 1);
    cr_assert_eq(tm_model_resolve(NULL, model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_ERR_NOT_FOUND);
    cr_assert_not_null(strstr(err.message, "/nonexistent/env-model.gguf"), "%s", err.message);
    free(tok);
    free(bin);
    free(gguf);
}

Test(model_resolve, default_folders) {
    /* ./models/ first, then ../shared/models/; both need the pinned pair. */
    char model[PATH_SIZE], tokenizer[PATH_SIZE];
    tm_error err = {0};
    unsetenv("TRACEMARK_MODEL");
    char *bin = tm_fixture("models/stories260K.bin"), *tok = tm_fixture("models/tok512.bin");
    char *root = tm_test_scratch_dir();
    char *work = tm_test_path(root, "work"), *shared = tm_test_path(root, "shared");
    char *shared_models = tm_test_path(shared, "models"), *work_models = tm_test_path(work, "models");
    cr_assert_eq(mkdir(work, 0755), 0);
    cr_assert_eq(mkdir(shared, 0755), 0);
    cr_assert_eq(mkdir(shared_models, 0755), 0);
    cr_assert_eq(mkdir(work_models, 0755), 0);
    char *links[4] = {tm_test_path(shared_models, "stories260K.bin"), tm_test_path(shared_models, "tok512.bin"),
                      tm_test_path(work_models, "stories260K.bin"), tm_test_path(work_models, "tok512.bin")};
    for (int i = 0; i < 4; i++) cr_assert_eq(symlink(i % 2 ? tok : bin, links[i]), 0);
    cr_assert_eq(chdir(work), 0);
    cr_assert_eq(tm_model_resolve(NULL, model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_OK, "%s",
                 err.message);
    cr_assert_str_eq(model, "models/stories260K.bin");
    cr_assert_str_eq(tokenizer, "models/tok512.bin");
    unlink(links[2]);
    unlink(links[3]);
    cr_assert_eq(tm_model_resolve(NULL, model, sizeof model, tokenizer, sizeof tokenizer, &err), TM_OK, "%s",
                 err.message);
    cr_assert_str_eq(model, "../shared/models/stories260K.bin");
    cr_assert_str_eq(tokenizer, "../shared/models/tok512.bin");
    for (int i = 0; i < 2; i++) unlink(links[i]);
    for (int i = 0; i < 4; i++) free(links[i]);
    rmdir(work_models);
    rmdir(shared_models);
    rmdir(shared);
    rmdir(work);
    rmdir(root);
    free(work_models);
    free(shared_models);
    free(shared);
    free(work);
    free(root);
    free(tok);
    free(bin);
}
