/* The batched products of the prompt path (tm_kernel_matmul) against a
 * straightforward reference: weights dequantized with ggml's formulas,
 * activations quantized as llama.cpp quantizes them and dequantized again,
 * and the dot product taken in double precision. Every quantized type on
 * every kernel path this CPU supports (each forced in turn), 1 to 17 tokens,
 * row counts that are no multiple of the 16-row panels, column counts past
 * the 1024-column chunks, and the K types' fallbacks of a Q4_K_M file (Q5_0,
 * Q8_0 on 224-column rows). F32, F16 and BF16 weights too. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../generator/kernels.h"
#include "../generator/quant_dot.h"
#include "../generator/quant_gemm.h"
#include "../model/quantize.h"
#include "row_groups.h"

enum { MAX_TOKENS = 17 };

static const char *type_name(uint32_t type) {
    switch (type) {
    case TM_GGML_F32: return "F32";
    case TM_GGML_F16: return "F16";
    case TM_GGML_BF16: return "BF16";
    case TM_GGML_Q8_0: return "Q8_0";
    case TM_GGML_Q4_0: return "Q4_0";
    case TM_GGML_Q4_1: return "Q4_1";
    case TM_GGML_Q5_0: return "Q5_0";
    case TM_GGML_Q5_1: return "Q5_1";
    case TM_GGML_Q4_K: return "Q4_K";
    case TM_GGML_Q5_K: return "Q5_K";
    case TM_GGML_Q6_K: return "Q6_K";
    default: return "?";
    }
}

static bool is_k_type(uint32_t type) { return type == TM_GGML_Q4_K || type == TM_GGML_Q5_K || type == TM_GGML_Q6_K; }

static double half_value(const uint8_t *p) { return tm_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

/* The magnitude of the minimum term of element i of a row (0 for the types
 * without one), read from the block as ggml-common.h lays it out: Q4_1/Q5_1
 * store m after d; Q4_K/Q5_K store dmin and 6-bit mins packed with the scales
 * (get_scale_min_k4). */
static double minimum_at(uint32_t type, const uint8_t *row, int64_t i) {
    if (type == TM_GGML_Q4_1) return fabs(half_value(row + (i / 32) * 20 + 2));
    if (type == TM_GGML_Q5_1) return fabs(half_value(row + (i / 32) * 24 + 2));
    if (type != TM_GGML_Q4_K && type != TM_GGML_Q5_K) return 0;
    const uint8_t *b = row + (i / 256) * (type == TM_GGML_Q4_K ? 144 : 176), *q = b + 4;
    int j = (int)(i % 256) / 32, m = j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    return fabs(half_value(b + 2)) * m;
}

/* Random weights that look like a model's: Gaussian-ish, a few outliers. */
static float *random_floats(int64_t count, unsigned seed) {
    float *x = malloc(sizeof(float) * (size_t)count);
    srand(seed);
    for (int64_t i = 0; i < count; i++) {
        double u = (rand() + 1.0) / (RAND_MAX + 2.0), v = (rand() + 1.0) / (RAND_MAX + 2.0);
        x[i] = (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v) * (i % 97 == 0 ? 4 : 1));
    }
    return x;
}

typedef struct {
    double expected, magnitude;
} reference;

/* ref[t][r]: the double-precision dot product of row r's dequantized weights
 * with token t's activations as the product sees them, and the sum of the
 * magnitudes of what is added up (the scale of the rounding error). */
static reference *references(const tm_tensor *w, const float *x, int64_t n) {
    int64_t rows = w->rows, cols = w->cols;
    reference *ref = calloc((size_t)(n * rows), sizeof *ref);
    float *row = malloc(sizeof(float) * (size_t)cols);
    double *xd = malloc(sizeof(double) * (size_t)cols);
    void *xq = malloc(tm_kernel_activation_bytes(w->type, cols) + sizeof(float) * (size_t)cols);
    size_t row_bytes = tm_quant_is_quantized(w->type) ? tm_quant_row_bytes(w->type, cols) : 0;
    for (int64_t t = 0; t < n; t++) {
        const float *xt = x + t * cols;
        /* llama.cpp's Q4_1/Q5_1 kernels meet the minimum with s = F16(d * sum q)
         * rather than d * sum q: the reference does too (per block, below). */
        double s_correction[1024 / 32 * 8] = {0};
        if (tm_quant_is_quantized(w->type)) {
            tm_kernel_prepare_activations(w->type, xt, cols, xq);
            if (is_k_type(w->type)) {
                const tm_q8k_block *b = xq;
                for (int64_t i = 0; i < cols; i++) xd[i] = (double)b[i / 256].d * b[i / 256].qs[i % 256];
            } else {
                const tm_q8_block *b = xq;
                for (int64_t i = 0; i < cols; i++) xd[i] = (double)b[i / 32].d * b[i / 32].qs[i % 32];
                for (int64_t i = 0; i < cols / 32; i++)
                    s_correction[i] = (double)b[i].s - (double)b[i].d * b[i].sum;
            }
        } else {
            float *rounded = xq;
            memcpy(rounded, xt, sizeof(float) * (size_t)cols);
            tm_kernel_round_activations(w->type, rounded, (size_t)cols);
            for (int64_t i = 0; i < cols; i++) xd[i] = rounded[i];
        }
        for (int64_t r = 0; r < rows; r++) {
            tm_kernel_dequantize_row(w, r, row);
            const uint8_t *raw = (const uint8_t *)w->data + (size_t)r * row_bytes;
            double sum = 0, magnitude = 0;
            for (int64_t i = 0; i < cols; i++) {
                sum += (double)row[i] * xd[i];
                magnitude += (fabs((double)row[i]) + minimum_at(w->type, raw, i)) * fabs(xd[i]);
            }
            if (w->type == TM_GGML_Q4_1 || w->type == TM_GGML_Q5_1)
                for (int64_t i = 0; i < cols / 32; i++) {
                    double m = half_value(raw + i * (w->type == TM_GGML_Q4_1 ? 20 : 24) + 2);
                    sum += m * s_correction[i];
                    magnitude += fabs(m * s_correction[i]);
                }
            ref[t * rows + r] = (reference){sum, magnitude};
        }
    }
    free(xq);
    free(xd);
    free(row);
    return ref;
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Each (token, row) result is a float sum of one term per block (32 or 16
 * elements; per element for F32/F16/BF16), each term a product of exact
 * integers with at most three rounded factors, added in some order, plus one
 * addition per 1024-column chunk; the reference's own inputs (dequantized
 * weights and activations) are each within one rounding of the exact values.
 * So |got - expected| <= (terms + 8) * 2^-24 * magnitude bounds the float
 * rounding of any summation order; a wrong scale, minimum, offset or lane is
 * off by a large fraction of the magnitude. */
static void check_type(uint32_t type, int64_t rows, int64_t cols, int threads) {
    void *weights;
    tm_tensor w = {.type = type, .rows = rows, .cols = cols};
    float *values = random_floats(rows * cols, (unsigned)(type * 1000 + rows + cols));
    if (tm_quant_is_quantized(type)) {
        size_t row_bytes = tm_quant_row_bytes(type, cols);
        weights = malloc(row_bytes * (size_t)rows);
        for (int64_t r = 0; r < rows; r++)
            tm_quantize_row(type, values + r * cols, (uint8_t *)weights + (size_t)r * row_bytes, cols);
    } else {
        weights = malloc((size_t)tm_quantize_row_bytes(type, cols) * (size_t)rows);
        for (int64_t r = 0; r < rows; r++)
            tm_quantize_row(type, values + r * cols, (uint8_t *)weights + (size_t)tm_quantize_row_bytes(type, cols) * r,
                            cols);
    }
    w.data = weights;
    float *x = random_floats(MAX_TOKENS * cols, (unsigned)(type * 7 + cols));
    float *rounded = malloc(sizeof(float) * (size_t)(MAX_TOKENS * cols));
    memcpy(rounded, x, sizeof(float) * (size_t)(MAX_TOKENS * cols));
    tm_kernel_round_activations(type, rounded, (size_t)(MAX_TOKENS * cols));
    reference *ref = references(&w, x, MAX_TOKENS);
    double terms = tm_quant_is_quantized(type) ? (double)cols / (type == TM_GGML_Q6_K ? 16 : 32) : (double)cols;
    float *y = malloc(sizeof(float) * (size_t)(MAX_TOKENS * rows));
    float *y1 = malloc(sizeof(float) * (size_t)(MAX_TOKENS * rows));
    float *scratch = malloc(sizeof(float) * tm_kernel_matmul_scratch(cols));
    int paths = tm_quant_is_quantized(type) ? TM_QUANT_PATH_COUNT : 1;
    tm_tensor grouped = w;
    grouped.data = NULL;
    if (tm_quant_is_quantized(type)) {
        grouped.row_group = tm_quant_row_group(type) > 1 ? tm_quant_row_group(type) : 4;
        if (rows % grouped.row_group == 0) grouped.data = row_groups_copy(type, weights, rows, cols, grouped.row_group);
    }
    for (int p = 0; p < paths; p++) {
        if (tm_quant_is_quantized(type)) {
            if (!tm_quant_path_supported((tm_quant_path)p)) continue;
            tm_quant_force_path((tm_quant_path)p);
        }
        for (int64_t n = 1; n <= MAX_TOKENS; n++) {
            tm_kernel_matmul(&w, rounded, n, y, scratch, threads);
            for (int64_t t = 0; t < n; t++)
                for (int64_t r = 0; r < rows; r++) {
                    reference e = ref[t * rows + r];
                    double got = y[t * rows + r], tolerance = (terms + 8) * 0x1p-24 * e.magnitude + 1e-30;
                    if (!(fabs(got - e.expected) <= tolerance))
                        cr_assert_fail("%s path %d %lldx%lld, %lld tokens, %d threads, token %lld row %lld: %.9g vs "
                                       "%.9g (tolerance %.3g)",
                                       type_name(type), p, (long long)rows, (long long)cols, (long long)n, threads,
                                       (long long)t, (long long)r, got, e.expected, tolerance);
                }
            if (grouped.data) {
                /* The engine's layout reads the same blocks from other addresses: the same bits. */
                tm_kernel_matmul(&grouped, rounded, n, y1, scratch, threads);
                for (int64_t i = 0; i < n * rows; i++)
                    cr_assert_eq(bits_of(y[i]), bits_of(y1[i]), "%s path %d, %lld tokens: row groups of %d differ at %lld",
                                 type_name(type), p, (long long)n, grouped.row_group, (long long)i);
            }
            if (n == MAX_TOKENS && threads > 1 && tm_quant_is_quantized(type)) {
                /* The thread count changes which thread computes a panel, never how. */
                tm_kernel_matmul(&w, rounded, n, y1, scratch, 1);
                for (int64_t i = 0; i < n * rows; i++)
                    cr_assert_eq(bits_of(y[i]), bits_of(y1[i]), "%s path %d: 1 and %d threads differ at %lld",
                                 type_name(type), p, threads, (long long)i);
            }
        }
    }
    tm_quant_force_path(TM_QUANT_PATH_COUNT);
    free((void *)grouped.data);
    free(scratch);
    free(y1);
    free(y);
    free(ref);
    free(rounded);
    free(x);
    free(values);
    free(weights);
}

static void check_all(uint32_t type) {
    int64_t block = is_k_type(type) ? 256 : 32;
    cr_log_info("gemm path: %d (0 portable, 1 AVX2, 2 AVX-VNNI, 3 AVX512-VNNI)", (int)tm_quant_gemm_path());
    /* 37 rows: two full 16-row panels and a part; 5 rows: less than one;
     * 40 rows: also in the engine's row groups. 1280 columns: a full
     * 1024-column chunk and a part. */
    int64_t shapes[][2] = {{37, block == 256 ? 256 : 224}, {5, 1280}, {37, 1280}, {40, 1280}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int threads = 1; threads <= 2; threads++) check_type(type, shapes[s][0], shapes[s][1], threads);
}

Test(matmul, q8_0) { check_all(TM_GGML_Q8_0); }
Test(matmul, q4_0) { check_all(TM_GGML_Q4_0); }
Test(matmul, q4_1) { check_all(TM_GGML_Q4_1); }
Test(matmul, q5_0) { check_all(TM_GGML_Q5_0); }
Test(matmul, q5_1) { check_all(TM_GGML_Q5_1); }
Test(matmul, q4_k) { check_all(TM_GGML_Q4_K); }
Test(matmul, q5_k) { check_all(TM_GGML_Q5_K); }
Test(matmul, q6_k) { check_all(TM_GGML_Q6_K); }
Test(matmul, f32) { check_all(TM_GGML_F32); }
Test(matmul, f16) { check_all(TM_GGML_F16); }
Test(matmul, bf16) { check_all(TM_GGML_BF16); }

/* Every path the CPU has is exercised above; say which ones, for the log. */
Test(matmul, reports_the_paths_it_tested) {
    const char *names[] = {"portable", "AVX2", "AVX-VNNI", "AVX512-VNNI"};
    for (int p = 0; p < TM_QUANT_PATH_COUNT; p++)
        cr_log_info("path %s: %s", names[p], tm_quant_path_supported((tm_quant_path)p) ? "tested" : "not on this CPU");
    cr_assert(tm_quant_path_supported(TM_QUANT_PATH_PORTABLE));
}

/* The F16 fields of a block (scales, minimums) at their offsets in
 * ggml-common.h's layouts; -1 ends the list. */
static const int *half_offsets(uint32_t type) {
    static const int one[] = {0, -1}, two[] = {0, 2, -1}, q6_k[] = {208, -1};
    switch (type) {
    case TM_GGML_Q4_1: case TM_GGML_Q5_1: case TM_GGML_Q4_K: case TM_GGML_Q5_K: return two;
    case TM_GGML_Q6_K: return q6_k;
    default: return one;
    }
}

/* The AVX2 unpacking of weight panels (shared by the AVX2 and AVX-VNNI
 * paths) writes the portable unpacking's bytes: quants, scales (negated
 * minimums' signed zeros included) and minimums, for every type, in every
 * panel and chunk of shapes whose last panel is partial (rows past the last
 * repeat it) and whose last chunk is short. The weights are random bytes, so
 * every bit of the packed quants and 6-bit scales is exercised; only the F16
 * fields are kept finite (their conversion is F16C's on one side and
 * tm_f16_to_f32 on the other, which agree there; a signaling NaN would be
 * quieted by one only). */
Test(matmul, avx2_unpacking_gives_the_portable_panels) {
    if (!tm_quant_path_supported(TM_QUANT_PATH_AVX2))
        cr_skip_test("no AVX2 on this CPU (or TM_NO_AVX2 set): the AVX2 unpacking is not tested here");
    cr_log_info("kernel path: AVX2 unpacking against the portable one");
    uint32_t types[] = {TM_GGML_Q8_0, TM_GGML_Q4_0, TM_GGML_Q4_1, TM_GGML_Q5_0,
                        TM_GGML_Q5_1, TM_GGML_Q4_K, TM_GGML_Q5_K, TM_GGML_Q6_K};
    int64_t row_counts[] = {1, 5, 16, 17, 37};
    size_t panel_bytes = tm_quant_gemm_panel_bytes();
    uint8_t *expected = aligned_alloc(64, (panel_bytes + 63) & ~(size_t)63);
    uint8_t *got = aligned_alloc(64, (panel_bytes + 63) & ~(size_t)63);
    srand(17);
    int compared = 0;
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        uint32_t type = types[k];
        int64_t block = is_k_type(type) ? 256 : 32;
        int64_t col_counts[] = {block, 7 * block, 1024 + block, 2048 + 3 * block};
        for (size_t ci = 0; ci < sizeof col_counts / sizeof col_counts[0]; ci++)
            for (size_t ri = 0; ri < sizeof row_counts / sizeof row_counts[0]; ri++) {
                int64_t rows = row_counts[ri], cols = col_counts[ci];
                size_t row_bytes = tm_quant_row_bytes(type, cols), block_bytes = row_bytes / (size_t)(cols / block);
                uint8_t *w = malloc(row_bytes * (size_t)rows);
                for (size_t i = 0; i < row_bytes * (size_t)rows; i++) w[i] = (uint8_t)(rand() >> 7);
                for (size_t b = 0; b < row_bytes * (size_t)rows / block_bytes; b++)
                    for (const int *o = half_offsets(type); *o >= 0; o++) {
                        /* finite halves of both signs, subnormals and zeros included */
                        uint16_t h = (uint16_t)((rand() >> 3) & 0xBBFF);
                        w[b * block_bytes + (size_t)*o] = (uint8_t)h;
                        w[b * block_bytes + (size_t)*o + 1] = (uint8_t)(h >> 8);
                    }
                for (int64_t r0 = 0; r0 < rows; r0 += 16)
                    for (int64_t c0 = 0; c0 < cols; c0 += 1024) {
                        memset(expected, 0xA5, panel_bytes);
                        memset(got, 0xA5, panel_bytes);
                        tm_tensor t = {.type = type, .data = w, .rows = rows, .cols = cols};
                        cr_assert(tm_quant_gemm_unpack_panel(TM_QUANT_PATH_PORTABLE, &t, r0, c0, expected));
                        cr_assert(tm_quant_gemm_unpack_panel(TM_QUANT_PATH_AVX2, &t, r0, c0, got));
                        for (size_t i = 0; i < panel_bytes; i++)
                            if (got[i] != expected[i])
                                cr_assert_fail("%s %lldx%lld, panel at row %lld, chunk at column %lld: byte %zu is %#x, "
                                               "portable %#x",
                                               type_name(type), (long long)rows, (long long)cols, (long long)r0,
                                               (long long)c0, i, got[i], expected[i]);
                        compared++;
                    }
                free(w);
            }
    }
    cr_assert_gt(compared, 8 * 4 * 5);
    free(got);
    free(expected);
}

/* The vectorised activation quantizers give the scalar ones' bytes, ties
 * and equal magnitudes of both signs included. */
Test(matmul, activation_quantizers_agree_with_the_scalar_ones) {
    enum { COLS = 2048 };
    float *x = random_floats(COLS, 5);
    for (int i = 0; i < 64; i++) x[i] = (float)(i % 9 - 4) * 0.5f;  /* ties after scaling */
    x[300] = 7.5f, x[301] = -7.5f;                                    /* equal magnitudes */
    for (int i = 512; i < 768; i++) x[i] = 0;                         /* an all-zero block */
    x[1000] = -9.0f, x[1001] = 9.0f;
    uint32_t types[] = {TM_GGML_Q8_0, TM_GGML_Q4_1, TM_GGML_Q4_K, TM_GGML_Q6_K};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        size_t bytes = tm_quant_activation_bytes(types[k], COLS);
        uint8_t *a = calloc(1, bytes), *b = calloc(1, bytes);
        tm_quant_quantize_activations(types[k], x, a, COLS);
        tm_quant_quantize_activations_portable(types[k], x, b, COLS);
        cr_assert(memcmp(a, b, bytes) == 0, "%s activations differ", type_name(types[k]));
        free(a);
        free(b);
    }
    free(x);
}

/* Rounding activations to F16 (vectorised with F16C where the CPU has it)
 * gives tm_f32_to_f16's halves: ties, overflow, subnormals, signed zeros. */
Test(matmul, f16_rounding_of_activations_matches_the_scalar_conversion) {
    enum { N = 4099 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    srand(11);
    for (int i = 0; i < N; i++) {
        uint32_t bits = (uint32_t)rand() ^ ((uint32_t)rand() << 16);
        memcpy(&x[i], &bits, 4);
        if (isnan(x[i])) x[i] = 1.0f;
        if (i % 3 == 0) x[i] = ldexpf((float)(rand() % 4096) + 0.5f, rand() % 40 - 36); /* near halves and ties */
    }
    x[0] = 65520.0f, x[1] = -65519.0f, x[2] = 0x1p-25f, x[3] = -0.0f, x[4] = 1.0f + 0x1p-11f;
    memcpy(y, x, sizeof(float) * N);
    tm_kernel_round_activations(TM_GGML_F16, y, N);
    for (int i = 0; i < N; i++) {
        float expected = tm_f16_to_f32(tm_f32_to_f16(x[i]));
        cr_assert_eq(bits_of(y[i]), bits_of(expected), "x = %a: %a vs %a", (double)x[i], (double)y[i], (double)expected);
    }
    free(y);
    free(x);
}

/* expf over arrays (tm_expf_shifted), SwiGLU and softmax (vectorised on AVX-512 and AVX2 with a copy of
 * glibc's expf) give libm's bits: llama2.c's run.c uses expf and its greedy
 * text is matched exactly. Every 997th bit pattern of the whole float range
 * (4 million values; all 2^32 were compared once by hand) and the slow-path
 * edges (|x| near 88, infinities, NaN). */
Test(matmul, exp_swiglu_and_softmax_give_libm_bits) {
    enum { B = 4096 };
    float x[B], y[B];
    uint64_t checked = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += (uint64_t)997 * B) {
        for (int i = 0; i < B; i++) {
            uint32_t bits = (uint32_t)(u + (uint64_t)i * 997);
            memcpy(&x[i], &bits, 4);
        }
        x[0] = 88.0f, x[1] = -88.0f, x[2] = 0x1.62e42ep6f, x[3] = -0x1.9fe368p6f, x[4] = INFINITY, x[5] = -INFINITY;
        x[6] = NAN, x[7] = 87.99f;
        memcpy(y, x, sizeof x);
        tm_expf_shifted(y, B - 3, 0.0f); /* a tail that is no multiple of 16 */
        for (int i = 0; i < B - 3; i++) {
            float e = expf(x[i]);
            if (isnan(e)) cr_assert(isnan(y[i]));
            else cr_assert_eq(bits_of(y[i]), bits_of(e), "expf(%a): %a vs %a", (double)x[i], (double)y[i], (double)e);
            checked++;
        }
    }
    cr_assert_gt(checked, 1000000);
    float *gate = random_floats(1000, 3), *up = random_floats(1000, 4), out[1000];
    for (int i = 0; i < 1000; i++) gate[i] *= 8;
    tm_kernel_swiglu(out, gate, up, 1000);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(bits_of(out[i]), bits_of(gate[i] / (1.0f + expf(-gate[i])) * up[i]), "swiglu %d", i);
    for (int n = 1; n <= 70; n++) {
        float s[70], expected[70];
        for (int i = 0; i < n; i++) s[i] = gate[i + n];
        float max = -INFINITY;
        for (int i = 0; i < n; i++) max = s[i] > max ? s[i] : max;
        double sum = 0;
        for (int i = 0; i < n; i++) sum += expected[i] = expf(s[i] - max);
        tm_kernel_softmax(s, n);
        for (int i = 0; i < n; i++)
            cr_assert_eq(bits_of(s[i]), bits_of(expected[i] * (float)(1.0 / sum)), "softmax %d of %d", i, n);
    }
    free(up);
    free(gate);
}
