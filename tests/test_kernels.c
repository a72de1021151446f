/* The forward pass's kernels against definitions computed independently in
 * the test: IEEE half and bfloat16 conversions against their bit-level
 * definitions, matrix-vector and batched products against a double-precision
 * reference for F32, F16 and BF16 weights at awkward sizes, on 1 and 2 threads,
 * and attention's dot product and axpy at every length up to 70. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../generator/kernels.h"

/* Half precision by definition: sign, 5-bit exponent (bias 15), 10-bit fraction. */
static double half_by_definition(uint16_t h) {
    int sign = h >> 15, exponent = (h >> 10) & 31, fraction = h & 1023;
    double magnitude = exponent == 0 ? ldexp(fraction, -24) : ldexp(1024 + fraction, exponent - 25);
    return sign ? -magnitude : magnitude;
}

Test(kernels, every_finite_half_converts_exactly_and_back) {
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 31) == 31) continue; /* inf and NaN below */
        float f = tm_f16_to_f32((uint16_t)h);
        cr_assert_eq((double)f, half_by_definition((uint16_t)h), "half 0x%04x", h);
        cr_assert_eq(tm_f32_to_f16(f), (uint16_t)h, "round trip of 0x%04x", h);
    }
    cr_assert(isinf(tm_f16_to_f32(0x7C00)) && tm_f16_to_f32(0x7C00) > 0);
    cr_assert(isnan(tm_f16_to_f32(0x7E00)));
    cr_assert(isnan(tm_f16_to_f32(tm_f32_to_f16(NAN))));
}

Test(kernels, float_to_half_rounds_to_nearest_even) {
    /* Halfway between 1 and the next half (1 + 2^-10) rounds to even (1). */
    cr_assert_eq(tm_f32_to_f16(1.0f + 0x1p-11f), 0x3C00);
    /* Halfway between 1 + 2^-10 and 1 + 2^-9 rounds to even (1 + 2^-9). */
    cr_assert_eq(tm_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02);
    cr_assert_eq(tm_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3C01);
    cr_assert_eq(tm_f32_to_f16(65504.0f), 0x7BFF);
    cr_assert_eq(tm_f32_to_f16(65520.0f), 0x7C00); /* rounds up past the largest half */
    cr_assert_eq(tm_f32_to_f16(-1e9f), 0xFC00);
    cr_assert_eq(tm_f32_to_f16(0x1p-24f), 0x0001);  /* smallest subnormal */
    cr_assert_eq(tm_f32_to_f16(0x1p-25f), 0x0000);  /* halfway to zero: even */
    cr_assert_eq(tm_f32_to_f16(0x1.8p-25f), 0x0001);
    cr_assert_eq(tm_f32_to_f16(-0.0f), 0x8000);
    /* Exhaustive check against a double-precision nearest search on a sweep of floats. */
    for (float f = -70000.0f; f < 70000.0f; f += 0.37f) {
        uint16_t h = tm_f32_to_f16(f);
        if (fabsf(f) >= 65520.0f) {
            cr_assert_eq(h & 0x7FFF, 0x7C00);
            continue;
        }
        double got = half_by_definition(h), error = fabs(got - f);
        uint16_t up = (uint16_t)(h + 1), down = (uint16_t)(h - 1);
        if ((up & 0x7C00) != 0x7C00) cr_assert_leq(error, fabs(half_by_definition(up) - f), "f=%g", (double)f);
        if ((h & 0x7FFF) != 0) cr_assert_leq(error, fabs(half_by_definition(down) - f), "f=%g", (double)f);
    }
}

Test(kernels, bfloat16_is_the_top_half_of_a_float) {
    for (uint32_t h = 0; h < 65536; h += 7) {
        uint32_t bits = h << 16;
        float expected;
        memcpy(&expected, &bits, 4);
        float got = tm_bf16_to_f32((uint16_t)h);
        if (isnan(expected)) cr_assert(isnan(got));
        else cr_assert_eq(got, expected);
    }
}

/* A rows x cols weight of the given type with values exactly representable in it. */
static tm_tensor make_weight(uint32_t type, int64_t rows, int64_t cols, void **storage, unsigned seed) {
    srand(seed);
    size_t n = (size_t)(rows * cols);
    tm_tensor w = {.type = type, .rows = rows, .cols = cols};
    if (type == TM_GGML_F32) {
        float *data = malloc(n * sizeof *data);
        for (size_t i = 0; i < n; i++) data[i] = (float)(rand() % 2001 - 1000) / 1024.0f;
        *storage = data;
    } else {
        uint16_t *data = malloc(n * sizeof *data);
        for (size_t i = 0; i < n; i++) {
            float v = (float)(rand() % 2001 - 1000) / 1024.0f;
            if (type == TM_GGML_F16) {
                data[i] = tm_f32_to_f16(v);
            } else {
                uint32_t bits;
                memcpy(&bits, &v, 4);
                data[i] = (uint16_t)(bits >> 16);
            }
        }
        *storage = data;
    }
    w.data = *storage;
    return w;
}

static double weight_at(const tm_tensor *w, int64_t r, int64_t c) {
    size_t i = (size_t)(r * w->cols + c);
    if (w->type == TM_GGML_F32) return ((const float *)w->data)[i];
    uint16_t v = ((const uint16_t *)w->data)[i];
    return w->type == TM_GGML_F16 ? half_by_definition(v) : (double)tm_bf16_to_f32(v);
}

static void check_products(uint32_t type, int64_t rows, int64_t cols, int threads) {
    void *storage;
    tm_tensor w = make_weight(type, rows, cols, &storage, (unsigned)(rows * 31 + cols));
    int64_t batch = 5;
    float *x = malloc(sizeof(float) * (size_t)(batch * cols));
    for (int64_t i = 0; i < batch * cols; i++) x[i] = (float)sin((double)i * 0.37);
    tm_kernel_round_activations(type, x, (size_t)(batch * cols));
    float *y = malloc(sizeof(float) * (size_t)(batch * rows));
    float *scratch = malloc(sizeof(float) * tm_kernel_matmul_scratch(cols));
    float *prepared = malloc(tm_kernel_activation_bytes(type, cols));
    tm_kernel_prepare_activations(type, x, cols, prepared);
    cr_assert(memcmp(prepared, x, (size_t)cols * sizeof(float)) == 0, "already rounded activations stay as they are");
    tm_kernel_matvec(&w, prepared, y, threads);
    free(prepared);
    for (int64_t r = 0; r < rows; r++) {
        double expected = 0;
        for (int64_t c = 0; c < cols; c++) expected += weight_at(&w, r, c) * x[c];
        cr_assert_leq(fabs(y[r] - expected), 1e-4 * (1 + fabs(expected)), "matvec %s %lldx%lld row %lld: %g vs %g",
                      type == TM_GGML_F32 ? "F32" : type == TM_GGML_F16 ? "F16" : "BF16", (long long)rows,
                      (long long)cols, (long long)r, (double)y[r], expected);
    }
    tm_kernel_matmul(&w, x, batch, y, scratch, threads);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t r = 0; r < rows; r++) {
            double expected = 0;
            for (int64_t c = 0; c < cols; c++) expected += weight_at(&w, r, c) * x[b * cols + c];
            cr_assert_leq(fabs(y[b * rows + r] - expected), 1e-4 * (1 + fabs(expected)), "matmul row %lld", (long long)r);
        }
    free(scratch);
    free(y);
    free(x);
    free(storage);
}

Test(kernels, products_match_a_double_precision_reference) {
    cr_log_info("kernel path: %s (TM_NO_AVX2=1 forces the portable one)", tm_cpu_kernel_path());
    uint32_t types[] = {TM_GGML_F32, TM_GGML_F16, TM_GGML_BF16};
    int64_t shapes[][2] = {{1, 1}, {3, 7}, {4, 8}, {5, 17}, {33, 64}, {300, 129}, {700, 520}, {1031, 768}};
    for (size_t t = 0; t < 3; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int threads = 1; threads <= 2; threads++) check_products(types[t], shapes[s][0], shapes[s][1], threads);
}

Test(kernels, rmsnorm_softmax_and_swiglu_follow_their_formulas) {
    float x[5] = {1, -2, 3, -4, 5}, w[5] = {1, 0.5f, 2, 1, 0.25f}, out[5];
    tm_kernel_rmsnorm(out, x, w, 5, 1e-5f);
    double mean_square = (1 + 4 + 9 + 16 + 25) / 5.0, scale = 1 / sqrt(mean_square + 1e-5);
    for (int i = 0; i < 5; i++) cr_assert_float_eq(out[i], x[i] * scale * w[i], 1e-6);
    float s[4] = {1000, 1001, 999, -INFINITY};
    tm_kernel_softmax(s, 4);
    double z = 1 + exp(1) + exp(-1);
    cr_assert_float_eq(s[0], 1 / z, 1e-6);
    cr_assert_float_eq(s[1], exp(1) / z, 1e-6);
    cr_assert_float_eq(s[2], exp(-1) / z, 1e-6);
    cr_assert_eq(s[3], 0.0f);
    float gate[3] = {-2, 0, 3}, up[3] = {1, 2, -1}, g[3];
    tm_kernel_swiglu(g, gate, up, 3);
    for (int i = 0; i < 3; i++) cr_assert_float_eq(g[i], gate[i] / (1 + exp(-gate[i])) * up[i], 1e-6);
}

Test(kernels, attention_dot_and_axpy_match_a_double_precision_reference) {
    for (int64_t n = 0; n <= 70; n++) {
        float a[70], b[70], y[70];
        double expected = 0;
        for (int64_t i = 0; i < n; i++) {
            a[i] = (float)sin((double)i * 1.3);
            b[i] = (float)cos((double)i * 0.7);
            y[i] = (float)i;
            expected += (double)a[i] * b[i];
        }
        cr_assert_leq(fabs(tm_kernel_dot(a, b, n) - expected), 1e-5, "dot of %lld", (long long)n);
        tm_kernel_axpy(y, 0.5f, a, n);
        for (int64_t i = 0; i < n; i++) cr_assert_float_eq(y[i], (double)i + 0.5 * a[i], 1e-5, "axpy %lld", (long long)i);
    }
}

/* A head's whole attention in one call gives the same bits as the per-position
 * dot products and multiply-adds it replaces (the 64-wide heads take their own
 * kernel; other widths the loop), over strided rows and many lengths. */
Test(kernels, attention_over_positions_equals_the_per_position_calls) {
    const int64_t widths[] = {8, 48, 64, 128}, stride = 3 * 128 + 5, max_n = 300;
    float *keys = malloc(sizeof(float) * (size_t)(stride * max_n)), q[128], weights[300];
    float *scores = malloc(sizeof(float) * (size_t)max_n), *expected = malloc(sizeof(float) * (size_t)max_n);
    cr_assert(keys && scores && expected);
    for (int64_t i = 0; i < stride * max_n; i++) keys[i] = (float)sin((double)i * 0.37) * (float)(1 + i % 7);
    for (int64_t i = 0; i < 128; i++) q[i] = (float)cos((double)i * 1.1);
    for (int64_t t = 0; t < max_n; t++) weights[t] = (float)(1.0 / (double)(t + 2));
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
        int64_t hd = widths[w];
        for (int64_t n = 1; n <= max_n; n += n < 20 ? 1 : 37) {
            const float *base = keys + 5; /* rows not aligned to a vector */
            tm_kernel_attention_scores(q, base, stride, n, hd, 0.125f, scores);
            for (int64_t t = 0; t < n; t++) expected[t] = tm_kernel_dot(q, base + t * stride, hd) * 0.125f;
            cr_assert(memcmp(scores, expected, sizeof(float) * (size_t)n) == 0, "scores, width %lld, %lld positions",
                      (long long)hd, (long long)n);
            float out[128], want[128];
            tm_kernel_attention_values(weights, base, stride, n, hd, out);
            memset(want, 0, sizeof want);
            for (int64_t t = 0; t < n; t++) tm_kernel_axpy(want, weights[t], base + t * stride, hd);
            cr_assert(memcmp(out, want, sizeof(float) * (size_t)hd) == 0, "values, width %lld, %lld positions",
                      (long long)hd, (long long)n);
        }
    }
    free(expected);
    free(scores);
    free(keys);
}

/* The F16 cache's kernels give the F32 kernels' bits on the rows widened to
 * F32 (the 64- and 128-wide heads take their own loops, other widths widen a
 * row at a time), over strided, unaligned rows and many lengths; and the
 * cache writes round as tm_f32_to_f16 does, at every length (the vector
 * conversions and their tails), for ordinary values, halfway cases,
 * overflow, subnormals, zeros of either sign and NaN. */
Test(kernels, f16_cache_attention_is_the_f32_kernels_on_the_widened_rows) {
    const int64_t widths[] = {8, 48, 64, 80, 128}, stride = 3 * 128 + 5, max_n = 300;
    uint16_t *keys = malloc(sizeof(uint16_t) * (size_t)(stride * max_n));
    float *wide = malloc(sizeof(float) * (size_t)(stride * max_n)), q[128], weights[300];
    float *scores = malloc(sizeof(float) * (size_t)max_n), *expected = malloc(sizeof(float) * (size_t)max_n);
    cr_assert(keys && wide && scores && expected);
    for (int64_t i = 0; i < stride * max_n; i++) {
        keys[i] = tm_f32_to_f16((float)sin((double)i * 0.37) * (float)(1 + i % 7));
        wide[i] = tm_f16_to_f32(keys[i]);
    }
    for (int64_t i = 0; i < 128; i++) q[i] = (float)cos((double)i * 1.1);
    for (int64_t t = 0; t < max_n; t++) weights[t] = (float)(1.0 / (double)(t + 2));
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
        int64_t hd = widths[w];
        for (int64_t n = 1; n <= max_n; n += n < 20 ? 1 : 37) {
            tm_kernel_attention_scores_f16(q, keys + 5, stride, n, hd, 0.125f, scores);
            tm_kernel_attention_scores(q, wide + 5, stride, n, hd, 0.125f, expected);
            cr_assert(memcmp(scores, expected, sizeof(float) * (size_t)n) == 0, "scores, width %lld, %lld positions",
                      (long long)hd, (long long)n);
            float out[128], want[128];
            tm_kernel_attention_values_f16(weights, keys + 5, stride, n, hd, out);
            tm_kernel_attention_values(weights, wide + 5, stride, n, hd, want);
            cr_assert(memcmp(out, want, sizeof(float) * (size_t)hd) == 0, "values, width %lld, %lld positions",
                      (long long)hd, (long long)n);
        }
    }
    float x[67];
    uint16_t got[67];
    const float special[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65504.0f, 65520.0f, -1e9f, 0x1p-24f, 0x1p-25f,
                             0x1.8p-25f, -0.0f, 0.0f, NAN, -INFINITY, 3.14159f, -2.71828f, 1e-6f, -7e-5f};
    for (size_t n = 0; n <= 67; n++) {
        for (size_t i = 0; i < n; i++) x[i] = special[(i * 5 + n) % (sizeof special / sizeof *special)] * (i % 3 ? 1 : -1);
        memset(got, 0xAB, sizeof got);
        tm_kernel_to_f16(x, got, n);
        for (size_t i = 0; i < n; i++) {
            uint16_t want = tm_f32_to_f16(x[i]);
            if (isnan(x[i])) cr_assert((got[i] & 0x7C00) == 0x7C00 && (got[i] & 0x3FF), "NaN stays NaN at %zu", i);
            else cr_assert_eq(got[i], want, "%a of %zu: 0x%04x, want 0x%04x", (double)x[i], n, got[i], want);
        }
        if (n < 67) cr_assert_eq(got[n], 0xABAB, "wrote past %zu", n);
    }
    free(expected);
    free(scores);
    free(wide);
    free(keys);
}
