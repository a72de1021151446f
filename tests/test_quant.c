/* Quantized weights against llama.cpp: dequantization of blocks written by
 * llama.cpp's quantizer is bit-exact with ggml's own (tests/quant_vectors.h),
 * activation quantization gives llama.cpp's bytes, the vectorised and
 * portable dot products agree with a double-precision sum over the
 * dequantized operands, every instruction-set path the CPU has agrees with
 * the portable one, and whole models quantized by llama.cpp (Q8_0 and
 * Q4_K_M, tests/data/, made from one random synthetic model) give llama.cpp's
 * logits within tolerance. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../generator/kernels.h"
#include "../generator/quant_dot.h"
#include "fixtures.h"
#include "quant_vectors.h"
#include "row_groups.h"

typedef struct {
    uint32_t type;
    const char *name;
    const uint8_t *blocks;
    const uint32_t *expected;
    int64_t n;
} vector;

static const vector vectors[] = {
    {TM_GGML_Q8_0, "Q8_0", q8_0_blocks, q8_0_expected, 128}, {TM_GGML_Q4_0, "Q4_0", q4_0_blocks, q4_0_expected, 128},
    {TM_GGML_Q4_1, "Q4_1", q4_1_blocks, q4_1_expected, 128}, {TM_GGML_Q5_0, "Q5_0", q5_0_blocks, q5_0_expected, 128},
    {TM_GGML_Q5_1, "Q5_1", q5_1_blocks, q5_1_expected, 128}, {TM_GGML_Q4_K, "Q4_K", q4_K_blocks, q4_K_expected, 512},
    {TM_GGML_Q5_K, "Q5_K", q5_K_blocks, q5_K_expected, 512}, {TM_GGML_Q6_K, "Q6_K", q6_K_blocks, q6_K_expected, 512},
};
enum { N_VECTORS = sizeof vectors / sizeof vectors[0] };

static uint32_t bits_of(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static float half_bits(const uint8_t *p) { return tm_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

Test(quant, dequantization_is_bit_exact_with_llama_cpp) {
    for (size_t v = 0; v < N_VECTORS; v++) {
        const vector *t = &vectors[v];
        cr_assert_eq(tm_quant_row_bytes(t->type, t->n),
                     (size_t)(t->n / (int64_t)tm_ggml_block_elements(t->type)) * tm_ggml_block_bytes(t->type));
        float out[512];
        memset(out, 0xFF, sizeof out);
        /* Through the kernel interface, as the forward pass reads a row. */
        tm_tensor w = {.type = t->type, .data = t->blocks, .rows = 1, .cols = t->n};
        tm_kernel_dequantize_row(&w, 0, out);
        int nonzero = 0;
        for (int64_t i = 0; i < t->n; i++) {
            cr_assert_eq(bits_of(out[i]), t->expected[i], "%s element %lld: %a, llama.cpp %a", t->name, (long long)i,
                         (double)out[i], (double)((const float *)(const void *)t->expected)[i]);
            nonzero += out[i] != 0;
        }
        cr_assert_gt(nonzero, t->n / 2, "%s: the vector should exercise real values", t->name);
    }
}

Test(quant, the_second_row_starts_after_the_first) {
    /* Two rows of one Q4_K block each: row 1 must read the second block. */
    tm_tensor w = {.type = TM_GGML_Q4_K, .data = q4_K_blocks, .rows = 2, .cols = 256};
    float out[256];
    tm_kernel_dequantize_row(&w, 1, out);
    for (int i = 0; i < 256; i++) cr_assert_eq(bits_of(out[i]), q4_K_expected[256 + i]);
}

Test(quant, activations_quantize_as_llama_cpp_does) {
    const float *x = (const float *)(const void *)act_input;
    /* Q8_0 (for Q8_0/Q4_0/Q5_0 weights): the block holds an F16 scale and 32 int8. */
    tm_q8_block q8[16];
    tm_kernel_prepare_activations(TM_GGML_Q8_0, x, 512, q8);
    for (int b = 0; b < 16; b++) {
        const uint8_t *ref = act_q8_0 + b * 34;
        cr_assert_eq(bits_of(q8[b].d), bits_of(half_bits(ref)), "Q8_0 block %d scale", b);
        for (int j = 0; j < 32; j++) cr_assert_eq(q8[b].qs[j], (int8_t)ref[2 + j], "Q8_0 block %d quant %d", b, j);
    }
    /* Q8_1 (for Q4_1/Q5_1): the same quants plus F16(d * sum). */
    tm_kernel_prepare_activations(TM_GGML_Q4_1, x, 512, q8);
    for (int b = 0; b < 16; b++) {
        const uint8_t *ref = act_q8_1 + b * 36;
        cr_assert_eq(bits_of(q8[b].d), bits_of(half_bits(ref)), "Q8_1 block %d scale", b);
        cr_assert_eq(bits_of(q8[b].s), bits_of(half_bits(ref + 2)), "Q8_1 block %d sum", b);
        for (int j = 0; j < 32; j++) cr_assert_eq(q8[b].qs[j], (int8_t)ref[4 + j], "Q8_1 block %d quant %d", b, j);
    }
    /* Q8_K (for the K types): float d, 256 int8, 16 int16 sums. */
    tm_q8k_block q8k[2];
    cr_assert_eq(tm_kernel_activation_bytes(TM_GGML_Q6_K, 512), sizeof q8k);
    tm_kernel_prepare_activations(TM_GGML_Q6_K, x, 512, q8k);
    for (int b = 0; b < 2; b++) {
        const uint8_t *ref = act_q8_K + b * 292;
        float d;
        memcpy(&d, ref, 4);
        cr_assert_eq(bits_of(q8k[b].d), bits_of(d), "Q8_K block %d scale", b);
        for (int j = 0; j < 256; j++) cr_assert_eq(q8k[b].qs[j], (int8_t)ref[4 + j], "Q8_K block %d quant %d", b, j);
        for (int j = 0; j < 16; j++) {
            int16_t sum;
            memcpy(&sum, ref + 260 + 2 * j, 2);
            cr_assert_eq(q8k[b].bsums[j], sum, "Q8_K block %d sum %d", b, j);
        }
    }
    /* An all-zero block quantizes to zeros with a zero scale, not NaN. */
    float zeros[256] = {0};
    tm_kernel_prepare_activations(TM_GGML_Q4_K, zeros, 256, q8k);
    cr_assert_eq(q8k[0].d, 0.0f);
    tm_kernel_prepare_activations(TM_GGML_Q8_0, zeros, 32, q8);
    cr_assert_eq(q8[0].d, 0.0f);
    cr_assert_eq(q8[0].qs[0], 0);
}

/* Offsets of the F16 fields of each block type (d, and m/dmin where present). */
static void sane_halves(uint32_t type, uint8_t *block, unsigned *seed) {
    int offsets[2] = {-1, -1};
    switch (type) {
    case TM_GGML_Q8_0: case TM_GGML_Q4_0: case TM_GGML_Q5_0: offsets[0] = 0; break;
    case TM_GGML_Q4_1: case TM_GGML_Q5_1: case TM_GGML_Q4_K: case TM_GGML_Q5_K: offsets[0] = 0; offsets[1] = 2; break;
    case TM_GGML_Q6_K: offsets[0] = 208; break;
    }
    for (int k = 0; k < 2; k++) {
        if (offsets[k] < 0) continue;
        float v = (float)(rand_r(seed) % 1000 + 1) * 2e-5f * (rand_r(seed) % 4 == 0 ? -1.0f : 1.0f);
        uint16_t h = tm_f32_to_f16(v);
        block[offsets[k]] = (uint8_t)h;
        block[offsets[k] + 1] = (uint8_t)(h >> 8);
    }
}

/* The activations (quantized for the type) of x[i] = wave(i * step + phase) *
 * (1 + i % period): a smooth signal with a varying amplitude. */
/* tm_quant_matvec_rows over rows x cols weights at w as the file holds them. */
static void matvec_plain(uint32_t type, const void *w, int64_t rows, int64_t cols, const void *xq, float *y,
                         int64_t begin, int64_t end) {
    tm_tensor t = {.type = type, .data = w, .rows = rows, .cols = cols};
    tm_quant_matvec_rows(&t, xq, y, begin, end);
}

static void *wave_activations(uint32_t type, int64_t cols, double (*wave)(double), double step, double phase,
                              int period) {
    float *x = malloc(sizeof(float) * (size_t)cols);
    void *xq = malloc(tm_kernel_activation_bytes(type, cols));
    cr_assert(x != NULL && xq != NULL);
    for (int64_t i = 0; i < cols; i++) x[i] = (float)(wave((double)i * step + phase) * (1 + i % period));
    tm_kernel_prepare_activations(type, x, cols, xq);
    free(x);
    return xq;
}

/* rows x cols weights of random bytes (every byte pattern is a valid block)
 * with finite scales; the first row is llama.cpp's test vector when it fits. */
static uint8_t *random_weights(uint32_t type, int64_t rows, int64_t cols, unsigned seed) {
    size_t row_bytes = tm_quant_row_bytes(type, cols), block = tm_ggml_block_bytes(type);
    uint8_t *w = malloc(row_bytes * (size_t)rows);
    for (size_t i = 0; i < row_bytes * (size_t)rows; i++) w[i] = (uint8_t)rand_r(&seed);
    for (size_t b = 0; b < row_bytes * (size_t)rows / block; b++) sane_halves(type, w + b * block, &seed);
    for (size_t v = 0; v < N_VECTORS; v++)
        if (vectors[v].type == type && vectors[v].n <= cols)
            memcpy(w, vectors[v].blocks, tm_quant_row_bytes(type, vectors[v].n));
    return w;
}

/* The activations a quantized dot product actually sees, back as floats. */
static void dequantized_activations(uint32_t type, const void *xq, int64_t cols, double *out) {
    if (type == TM_GGML_Q4_K || type == TM_GGML_Q5_K || type == TM_GGML_Q6_K) {
        const tm_q8k_block *b = xq;
        for (int64_t i = 0; i < cols; i++) out[i] = (double)b[i / 256].d * b[i / 256].qs[i % 256];
    } else {
        const tm_q8_block *b = xq;
        for (int64_t i = 0; i < cols; i++) out[i] = (double)b[i / 32].d * b[i / 32].qs[i % 32];
    }
}

static void check_dot_products(int64_t rows, int64_t cols) {
    for (size_t v = 0; v < N_VECTORS; v++) {
        uint32_t type = vectors[v].type;
        if (cols % (int64_t)tm_ggml_block_elements(type)) continue;
        uint8_t *w = random_weights(type, rows, cols, (unsigned)(rows * 7 + cols + v));
        float *x = malloc(sizeof(float) * (size_t)cols), *row = malloc(sizeof(float) * (size_t)cols);
        for (int64_t i = 0; i < cols; i++) x[i] = (float)(sin((double)i * 0.61 + (double)v) * (1 + i % 5));
        void *xq = malloc(tm_kernel_activation_bytes(type, cols));
        tm_kernel_prepare_activations(type, x, cols, xq);
        double *xd = malloc(sizeof(double) * (size_t)cols);
        dequantized_activations(type, xq, cols, xd);
        float *y1 = malloc(sizeof(float) * (size_t)rows), *y2 = malloc(sizeof(float) * (size_t)rows);
        tm_tensor t = {.type = type, .data = w, .rows = rows, .cols = cols};
        tm_kernel_matvec(&t, xq, y1, 1);
        tm_kernel_matvec(&t, xq, y2, 2);
        for (int64_t r = 0; r < rows; r++) {
            tm_kernel_dequantize_row(&t, r, row);
            double expected = 0, scale = 0;
            for (int64_t i = 0; i < cols; i++) {
                expected += (double)row[i] * xd[i];
                scale += fabs((double)row[i] * xd[i]);
            }
            /* For Q4_1/Q5_1 llama.cpp folds the minimum in through F16(d * sum),
             * which rounds; everywhere else only float summation order differs. */
            double tolerance = 1e-5 * scale + 1e-6;
            if (type == TM_GGML_Q4_1 || type == TM_GGML_Q5_1) {
                for (int64_t b = 0; b < cols / 32; b++) {
                    const tm_q8_block *a = (const tm_q8_block *)xq + b;
                    float m = half_bits(w + (size_t)r * tm_quant_row_bytes(type, cols) + (size_t)b * tm_ggml_block_bytes(type) + 2);
                    int sum = 0;
                    for (int j = 0; j < 32; j++) sum += a->qs[j];
                    expected += (double)m * ((double)a->s - (double)a->d * sum);
                }
            }
            float portable = tm_quant_dot_portable(type, w + (size_t)r * tm_quant_row_bytes(type, cols), xq, cols);
            cr_assert_leq(fabs(portable - expected), tolerance, "%s %lldx%lld row %lld portable %.9g vs %.9g",
                          vectors[v].name, (long long)rows, (long long)cols, (long long)r, (double)portable, expected);
            cr_assert_leq(fabs(y1[r] - expected), tolerance, "%s %lldx%lld row %lld matvec %.9g vs %.9g",
                          vectors[v].name, (long long)rows, (long long)cols, (long long)r, (double)y1[r], expected);
            cr_assert_eq(bits_of(y1[r]), bits_of(y2[r]), "%s: 1 and 2 threads differ on row %lld", vectors[v].name,
                         (long long)r);
        }
        /* The batched product of quantized weights is tested in test_matmul.c. */
        free(y1);
        free(y2);
        free(xd);
        free(xq);
        free(row);
        free(x);
        free(w);
    }
}

static void check_all_shapes(void) {
    int64_t shapes[][2] = {{1, 32}, {3, 64}, {5, 256}, {37, 512}, {300, 768}, {1100, 512}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) check_dot_products(shapes[s][0], shapes[s][1]);
}

/* On this CPU the dispatcher picks the vectorised kernels... */
Test(quant, dot_products_match_a_double_precision_reference) { check_all_shapes(); }

/* ...and with them switched off (each Criterion test runs in its own process,
 * so the dispatcher's cached choice starts fresh), the portable ones. */
Test(quant, portable_dot_products_match_a_double_precision_reference) {
    setenv("TM_NO_AVX2", "1", 1);
    check_all_shapes();
}

/* Every instruction-set path this CPU has (forced through the dispatcher's
 * hook) agrees with the portable dot product up to float rounding order, and
 * a row's result does not depend on where a thread's share of rows begins. */
Test(quant, every_dispatch_path_agrees_with_the_portable_one) {
    static const char *path_names[] = {"portable", "AVX2", "AVX-VNNI", "AVX512-VNNI"};
    int64_t shapes[][2] = {{1, 256}, {5, 256}, {37, 512}, {300, 768}, {9, 2048}};
    int paths_run = 0;
    for (int p = 0; p < TM_QUANT_PATH_COUNT; p++) paths_run += tm_quant_path_supported((tm_quant_path)p);
    cr_log_info("dispatch paths on this CPU: %d", paths_run);
    cr_assert(tm_quant_path_supported(TM_QUANT_PATH_PORTABLE));
    for (size_t v = 0; v < N_VECTORS; v++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            uint32_t type = vectors[v].type;
            int64_t rows = shapes[s][0], cols = shapes[s][1];
            if (cols % (int64_t)tm_ggml_block_elements(type)) continue;
            uint8_t *w = random_weights(type, rows, cols, (unsigned)(rows * 13 + cols + v));
            size_t row_bytes = tm_quant_row_bytes(type, cols);
            void *xq = wave_activations(type, cols, cos, 0.77, (double)s, 7);
            float *whole = malloc(sizeof(float) * (size_t)rows), *split = malloc(sizeof(float) * (size_t)rows);
            for (int p = 0; p < TM_QUANT_PATH_COUNT; p++) {
                if (!tm_quant_path_supported((tm_quant_path)p)) continue;
                tm_quant_force_path((tm_quant_path)p);
                matvec_plain(type, w, rows, cols, xq, whole, 0, rows);
                int64_t cut = rows > 3 ? 3 : rows; /* a share that ends inside a group of rows */
                matvec_plain(type, w, rows, cols, xq, split, 0, cut);
                matvec_plain(type, w, rows, cols, xq, split, cut, rows);
                for (int64_t r = 0; r < rows; r++) {
                    const uint8_t *row = w + (size_t)r * row_bytes;
                    float portable = tm_quant_dot_portable(type, row, xq, cols);
                    /* The size of the terms bounds what rounding order can change. */
                    tm_tensor t = {.type = type, .data = w, .rows = rows, .cols = cols};
                    float *deq = malloc(sizeof(float) * (size_t)cols);
                    tm_kernel_dequantize_row(&t, r, deq);
                    double xd[2048], scale = 0;
                    dequantized_activations(type, xq, cols, xd);
                    for (int64_t i = 0; i < cols; i++) scale += fabs((double)deq[i] * xd[i]);
                    free(deq);
                    cr_assert_leq(fabs((double)whole[r] - portable), 1e-5 * scale + 1e-6,
                                  "%s %lldx%lld row %lld: %s %.9g, portable %.9g", vectors[v].name, (long long)rows,
                                  (long long)cols, (long long)r, path_names[p], (double)whole[r], (double)portable);
                    cr_assert_eq(bits_of(whole[r]), bits_of(split[r]), "%s %s row %lld depends on the split",
                                 vectors[v].name, path_names[p], (long long)r);
                }
            }
            tm_quant_force_path(TM_QUANT_PATH_COUNT);
            free(split);
            free(whole);
            free(xq);
            free(w);
        }
}

/* The AVX2 path's kernels that take several rows per pass give each row the
 * bits of the single-row AVX2 dot product (the same operations in the same
 * order per row), for every row count around the group size and a thread
 * share that starts inside a group; Q8_0 and Q4_0, which accumulate each row
 * in one float lane as the VNNI kernels do, give the VNNI paths' bits instead
 * (checked where this CPU has a VNNI path; elsewhere the tolerance test above
 * holds them). */
Test(quant, avx2_row_groups_give_the_single_row_bits) {
    if (!tm_quant_path_supported(TM_QUANT_PATH_AVX2)) cr_skip_test("this CPU has no AVX2");
    int64_t shapes[][2] = {{1, 256}, {3, 512}, {4, 256}, {5, 768}, {9, 2048}, {37, 256}};
    size_t checked = 0;
    tm_quant_force_path(TM_QUANT_PATH_AVX2);
    for (size_t v = 0; v < N_VECTORS; v++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            uint32_t type = vectors[v].type;
            int64_t rows = shapes[s][0], cols = shapes[s][1];
            if (cols % (int64_t)tm_ggml_block_elements(type)) continue;
            uint8_t *w = random_weights(type, rows, cols, (unsigned)(rows * 31 + cols + v));
            size_t row_bytes = tm_quant_row_bytes(type, cols);
            void *xq = wave_activations(type, cols, sin, 0.53, (double)s, 5);
            float *y = malloc(sizeof(float) * (size_t)rows);
            int64_t cut = rows / 2 + 1 < rows ? rows / 2 + 1 : rows;
            matvec_plain(type, w, rows, cols, xq, y, 0, cut);
            matvec_plain(type, w, rows, cols, xq, y, cut, rows);
            bool lane_form = type == TM_GGML_Q8_0 || type == TM_GGML_Q4_0;
            float *vnni = NULL;
            if (lane_form) {
                tm_quant_path other = tm_quant_path_supported(TM_QUANT_PATH_AVX_VNNI)      ? TM_QUANT_PATH_AVX_VNNI
                                      : tm_quant_path_supported(TM_QUANT_PATH_AVX512_VNNI) ? TM_QUANT_PATH_AVX512_VNNI
                                                                                           : TM_QUANT_PATH_COUNT;
                if (other != TM_QUANT_PATH_COUNT) {
                    vnni = malloc(sizeof(float) * (size_t)rows);
                    tm_quant_force_path(other);
                    matvec_plain(type, w, rows, cols, xq, vnni, 0, rows);
                    tm_quant_force_path(TM_QUANT_PATH_AVX2);
                }
            }
            for (int64_t r = 0; r < rows && lane_form; r++) {
                if (!vnni) break;
                cr_assert_eq(bits_of(y[r]), bits_of(vnni[r]), "%s %lldx%lld row %lld: %.9g, VNNI path %.9g",
                             vectors[v].name, (long long)rows, (long long)cols, (long long)r, (double)y[r],
                             (double)vnni[r]);
                checked++;
            }
            free(vnni);
            for (int64_t r = 0; r < rows && !lane_form; r++) {
                float single;
                if (!tm_quant_dot_avx2_row(type, w + (size_t)r * row_bytes, xq, cols, &single)) break;
                cr_assert_eq(bits_of(y[r]), bits_of(single), "%s %lldx%lld row %lld: %.9g, single-row kernel %.9g",
                             vectors[v].name, (long long)rows, (long long)cols, (long long)r, (double)y[r],
                             (double)single);
                checked++;
            }
            free(y);
            free(xq);
            free(w);
        }
    tm_quant_force_path(TM_QUANT_PATH_COUNT);
    cr_assert_gt(checked, 100);
}

/* The AVX512-VNNI path (512-bit Q4_K and Q6_K kernels, the 256-bit EVEX
 * ones for the rest) gives the AVX-VNNI path's bits: each lane holds the
 * same integer and the float steps are the same. Needs a CPU with both. */
Test(quant, avx512_kernels_give_the_avx_vnni_bits) {
    if (!tm_quant_path_supported(TM_QUANT_PATH_AVX512_VNNI) || !tm_quant_path_supported(TM_QUANT_PATH_AVX_VNNI))
        cr_skip_test("this CPU lacks AVX512-VNNI or AVX-VNNI");
    int64_t shapes[][2] = {{1, 256}, {3, 512}, {4, 256}, {5, 768}, {9, 2048}, {37, 256}};
    size_t checked = 0;
    for (size_t v = 0; v < N_VECTORS; v++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            uint32_t type = vectors[v].type;
            int64_t rows = shapes[s][0], cols = shapes[s][1];
            if (cols % (int64_t)tm_ggml_block_elements(type)) continue;
            uint8_t *w = random_weights(type, rows, cols, (unsigned)(rows * 17 + cols + v));
            void *xq = wave_activations(type, cols, cos, 0.29, (double)s, 9);
            float *wide = malloc(sizeof(float) * (size_t)rows), *narrow = malloc(sizeof(float) * (size_t)rows);
            tm_quant_force_path(TM_QUANT_PATH_AVX512_VNNI);
            matvec_plain(type, w, rows, cols, xq, wide, 0, rows);
            tm_quant_force_path(TM_QUANT_PATH_AVX_VNNI);
            matvec_plain(type, w, rows, cols, xq, narrow, 0, rows);
            for (int64_t r = 0; r < rows; r++, checked++)
                cr_assert_eq(bits_of(wide[r]), bits_of(narrow[r]), "%s %lldx%lld row %lld: %.9g, AVX-VNNI %.9g",
                             vectors[v].name, (long long)rows, (long long)cols, (long long)r, (double)wide[r],
                             (double)narrow[r]);
            free(narrow);
            free(wide);
            free(xq);
            free(w);
        }
    tm_quant_force_path(TM_QUANT_PATH_COUNT);
    cr_assert_gt(checked, 100);
}

/* The engine's layout (row groups, tracemark/model.h) gives the plain rows'
 * bits on every path: the kernels read the same blocks, only from other
 * addresses. Row counts of one and several groups, thread shares that start
 * and end inside a group, widths of 1 to 8 super-blocks; every type, also
 * those the engine keeps plain, in groups of 4 and 8. */
Test(quant, row_groups_give_the_plain_rows_bits) {
    int64_t shapes[][2] = {{8, 256}, {16, 512}, {24, 768}, {40, 2048}};
    size_t checked = 0;
    for (int p = 0; p < TM_QUANT_PATH_COUNT; p++) {
        if (!tm_quant_path_supported((tm_quant_path)p)) continue;
        tm_quant_force_path((tm_quant_path)p);
        for (size_t v = 0; v < N_VECTORS; v++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                for (int32_t g = 4; g <= 8; g += 4) {
                    uint32_t type = vectors[v].type;
                    int64_t rows = shapes[s][0], cols = shapes[s][1];
                    if (cols % (int64_t)tm_ggml_block_elements(type)) continue;
                    uint8_t *w = random_weights(type, rows, cols, (unsigned)(rows * 7 + cols + v));
                    uint8_t *grouped = row_groups_copy(type, w, rows, cols, g);
                    void *xq = wave_activations(type, cols, sin, 0.41, (double)s, 3);
                    float *plain = malloc(sizeof(float) * (size_t)rows), *got = malloc(sizeof(float) * (size_t)rows);
                    cr_assert(grouped && plain && got);
                    matvec_plain(type, w, rows, cols, xq, plain, 0, rows);
                    tm_tensor t = {.type = type, .data = grouped, .rows = rows, .cols = cols, .row_group = g};
                    /* a share that ends inside a group, and one that starts there */
                    int64_t cut = g + 3 < rows ? g + 3 : 3;
                    tm_quant_matvec_rows(&t, xq, got, 0, cut);
                    tm_quant_matvec_rows(&t, xq, got, cut, rows);
                    tm_quant_rows m = tm_quant_rows_of(&t);
                    cr_assert_eq(m.stride, (size_t)g * tm_ggml_block_bytes(type));
                    for (int64_t r = 0; r < rows; r++, checked++) {
                        cr_assert_eq(tm_quant_row(&m, r) - grouped, (r - r % g) * (int64_t)tm_quant_row_bytes(type, cols) +
                                                                        (r % g) * (int64_t)tm_ggml_block_bytes(type));
                        cr_assert_eq(bits_of(got[r]), bits_of(plain[r]),
                                     "%s path %d, %lldx%lld in groups of %d, row %lld: %.9g, plain %.9g",
                                     vectors[v].name, p, (long long)rows, (long long)cols, g, (long long)r,
                                     (double)got[r], (double)plain[r]);
                    }
                    free(got);
                    free(plain);
                    free(xq);
                    free(grouped);
                    free(w);
                }
    }
    tm_quant_force_path(TM_QUANT_PATH_COUNT);
    cr_assert_gt(checked, 1000);
}

/* ---- whole models ------------------------------------------------------------ */


/* The small model of these tests, made here the same way every time:
 * `tracemark model synth --like llama2-110m --dim 256 --layers 2 --heads 4
 * --kv-heads 2 --hidden 224 --ctx 128 --seed 1 --tokenizer
 * ../shared/models/stories260K.gguf` (random N(0, 0.02) F32 weights,
 * stories260K's 512-token vocabulary), then quantized by the project's
 * quantizer. llama.cpp's quantizer made files from the same F32 file
 * (`llamaref LIBDIR tiny.gguf quantize OUT 7|15 2`) whose SHA-256 the caller
 * passes: the file is checked to be llama.cpp's own, byte for byte, before
 * its logits are compared with llama.cpp's on it. Returns the path. */
static char *tiny_model(const char *scratch, tm_ftype ftype, const char *llama_cpp_sha256) {
    tm_synth_options synth = {.ftype = TM_FTYPE_ALL_F32, .seed = 1};
    cr_assert(tm_synth_lookup("llama2-110m", &synth.shape));
    synth.shape.dim = 256;
    synth.shape.n_layers = 2;
    synth.shape.n_heads = 4;
    synth.shape.n_kv_heads = 2;
    synth.shape.hidden_dim = 224;
    synth.shape.context_length = 128;
    char *tokenizer = tm_fixture("models/stories260K.gguf");
    synth.tokenizer_path = tokenizer;
    char *f32 = tm_test_path(scratch, "tiny-f32.gguf"), *out = tm_test_path(scratch, "tiny.gguf");
    tm_error err = {0};
    cr_assert_eq(tm_synth_write(f32, &synth, &err), TM_OK, "%s", err.message);
    tm_quantize_options quantize = {.ftype = ftype};
    cr_assert_eq(tm_quantize_file(f32, out, &quantize, &err), TM_OK, "%s", err.message);
    char hex[TM_SHA256_HEX_SIZE];
    cr_assert_eq(tm_sha256_file_hex(out, hex, &err), TM_OK, "%s", err.message);
    cr_assert_str_eq(hex, llama_cpp_sha256, "the quantized file is not the one llama.cpp's quantizer made");
    remove(f32);
    free(f32);
    free(tokenizer);
    return out;
}

/* One matrix of the engine's view against the file's: in row groups with the
 * file's blocks (row_groups_copy, written from the layout's definition) where
 * the engine groups the type and the rows divide into groups, else the file's
 * own view. */
static void check_engine_tensor(const tm_tensor *file, const tm_tensor *engine, int *grouped, int *plain) {
    cr_assert(engine->type == file->type && engine->rows == file->rows && engine->cols == file->cols);
    int32_t g = tm_quant_is_quantized(file->type) ? tm_quant_row_group(file->type) : 1;
    if (g > 1 && file->rows % g == 0) {
        size_t bytes = tm_quant_row_bytes(file->type, file->cols) * (size_t)file->rows;
        uint8_t *expected = row_groups_copy(file->type, file->data, file->rows, file->cols, g);
        cr_assert(expected);
        cr_assert_eq(engine->row_group, g);
        cr_assert_neq(engine->data, file->data);
        cr_assert(memcmp(expected, engine->data, bytes) == 0, "%s %lldx%lld: not the file's rows in groups of %d",
                  tm_ggml_type_name(file->type), (long long)file->rows, (long long)file->cols, g);
        free(expected);
        (*grouped)++;
    } else {
        cr_assert_eq(engine->data, file->data);
        cr_assert_eq(engine->row_group, 0);
        (*plain)++;
    }
}

/* tm_model_engine_weights: every layer matrix and the classifier as
 * check_engine_tensor wants them, and the same views on a second call. */
static void check_engine_weights(const tm_model *model, int expect_plain) {
    const tm_layer_weights *layers, *layers_again;
    const tm_tensor *classifier, *classifier_again;
    tm_error err = {0};
    cr_assert_eq(tm_model_engine_weights(model, &layers, &classifier, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_engine_weights(model, &layers_again, &classifier_again, &err), TM_OK, "%s", err.message);
    cr_assert(layers == layers_again && classifier == classifier_again);
    int grouped = 0, plain = 0;
    for (int32_t l = 0; l < tm_model_get_config(model)->n_layers; l++) {
        const tm_layer_weights *f = tm_model_get_layer(model, l), *e = &layers[l];
        const tm_tensor *file[] = {&f->wq, &f->wk, &f->wv, &f->wo, &f->w_gate, &f->w_up, &f->w_down};
        const tm_tensor *engine[] = {&e->wq, &e->wk, &e->wv, &e->wo, &e->w_gate, &e->w_up, &e->w_down};
        for (size_t i = 0; i < sizeof file / sizeof *file; i++) check_engine_tensor(file[i], engine[i], &grouped, &plain);
        cr_assert_eq(e->attn_norm.data, f->attn_norm.data);
    }
    check_engine_tensor(tm_model_get_classifier(model), classifier, &grouped, &plain);
    cr_assert_gt(grouped, 0);
    cr_assert_eq(plain, expect_plain, "%d plain matrices", plain);
}

/* The references are `llamaref LIBDIR OUT logits "Once upon a time" 8 1` on
 * llama.cpp's quantized files (see tiny_model). The Q4_K_M file holds Q4_K,
 * Q6_K, and (for ffn_down, whose 224-wide rows are no multiple of 256) Q5_0
 * and Q8_0 matrices. Logits are O(1). The F32 model agrees with llama.cpp to
 * about 7e-4 (llama.cpp keeps K and V in F16); quantizing the weights moves
 * its logits by 0.02 (Q8_0). Quantizing activations to 8 bits turns those
 * 1e-4-relative differences into whole quantization steps wherever a value
 * sits near a rounding boundary, so agreement is to about 0.01-0.02; a wrong
 * scale, minimum or bit layout moves logits by O(1). Greedy choices must
 * agree wherever llama.cpp's top two logits are further apart than that.
 * Then the engine's view of the weights (check_engine_weights), of which
 * plain_matrices stay as the file holds them. */
static void check_tiny_model(tm_ftype ftype, const char *llama_cpp_sha256, const char *reference_name,
                             int plain_matrices) {
    char *scratch = tm_test_scratch_dir();
    char *path = tiny_model(scratch, ftype, llama_cpp_sha256), *reference = tm_test_data_path(reference_name);
    tm_model *model;
    tm_error err = {0};
    cr_assert_eq(tm_model_load(&model, path, &err), TM_OK, "%s", err.message);
    for (int threads = 1; threads <= 2; threads++) {
        int steps = 0;
        double worst = tm_test_llama_cpp_logit_difference(model, reference, threads, 4e-2, &steps);
        cr_assert_eq(steps, 8);
        cr_log_info("tiny %s, %d threads: largest logit difference from llama.cpp %.3g", tm_ftype_name(ftype), threads,
                    worst);
        cr_assert_lt(worst, 3e-2);
    }
    check_engine_weights(model, plain_matrices);
    tm_model_free(model);
    free(reference);
    remove(path);
    remove(scratch);
    free(path);
    free(scratch);
}

Test(quant, q8_0_model_logits_match_llama_cpp) {
    check_tiny_model(TM_FTYPE_Q8_0, "450b26348837f33fcd4f25fc31d45df5b65d53b733b01f8c73558b5bc12cedec",
                     "tiny-q8_0.llamacpp.logits.jsonl", 0);
}

Test(quant, q4_k_m_model_logits_match_llama_cpp) {
    check_tiny_model(TM_FTYPE_Q4_K_M, "ad59f1352e71f07fec75d7154598ce4a915fa0638efbb8979f6604c563ddf6e4",
                     "tiny-q4_k_m.llamacpp.logits.jsonl", 1); /* one ffn_down is Q5_0: kept as the file holds it */
}
