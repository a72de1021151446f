/* The numeric kernels of the forward pass. Decode is memory-bound, so the
 * matrix-vector products are hand-written (AVX-512 or AVX2/FMA/F16C when
 * the CPU has them, chosen at run time, with a portable fallback; the
 * quantized ones live in quant.c) and split over threads by rows, as are
 * attention's dot and axpy loops (over an F32 or an F16 KV cache). A prompt's batched products go through
 * OpenBLAS sgemm for float weights (F16/BF16 widened in parallel slices)
 * and through quant_gemm.c's integer kernels for quantized ones. The
 * element-wise kernels give the same bits on every path (expf is glibc's,
 * vectorised). These functions trust their callers (the forward pass
 * checked every shape at load time). */
#include "kernels.h"

#include "../core/expf_simd.h"
#include "quant_dot.h"
#include "quant_gemm.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TM_X86 1
#endif

static float round_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFF) > 0x7F800000) return f;
    x = (x + (0x7FFF + ((x >> 16) & 1))) & 0xFFFF0000u;
    memcpy(&f, &x, 4);
    return f;
}

#ifdef TM_X86
static bool cpu_has_avx512(void);
static bool cpu_has_avx2(void);

/* F16C rounds to nearest even, overflowing to infinity, with subnormals:
 * the same halves as tm_f32_to_f16 (the tests compare them). */
__attribute__((target("avx512f"))) static void round_to_f16_avx512(float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) x[i] = tm_f16_to_f32(tm_f32_to_f16(x[i]));
}

__attribute__((target("avx2,fma,f16c"))) static void round_to_f16_avx2(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) x[i] = tm_f16_to_f32(tm_f32_to_f16(x[i]));
}
#endif

#ifdef TM_X86
__attribute__((target("avx512f"))) static size_t to_f16_avx512(const float *x, uint16_t *out, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(void *)(out + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    return i;
}

__attribute__((target("avx2,fma,f16c"))) static size_t to_f16_avx2(const float *x, uint16_t *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    return i;
}
#endif

void tm_kernel_to_f16(const float *x, uint16_t *out, size_t n) {
    size_t i = 0;
#ifdef TM_X86
    if (cpu_has_avx512()) i = to_f16_avx512(x, out, n);
    else if (cpu_has_avx2()) i = to_f16_avx2(x, out, n);
#endif
    for (; i < n; i++) out[i] = tm_f32_to_f16(x[i]);
}

void tm_kernel_round_activations(uint32_t weight_type, float *x, size_t n) {
#ifdef TM_X86
    if (weight_type == TM_GGML_F16 && cpu_has_avx512()) {
        round_to_f16_avx512(x, n);
        return;
    }
    if (weight_type == TM_GGML_F16 && cpu_has_avx2()) {
        round_to_f16_avx2(x, n);
        return;
    }
#endif
    if (weight_type == TM_GGML_F16) {
        for (size_t i = 0; i < n; i++) x[i] = tm_f16_to_f32(tm_f32_to_f16(x[i]));
    } else if (weight_type == TM_GGML_BF16) {
        for (size_t i = 0; i < n; i++) x[i] = round_to_bf16(x[i]);
    }
}

size_t tm_kernel_activation_bytes(uint32_t weight_type, int64_t cols) {
    if (tm_quant_is_quantized(weight_type)) return tm_quant_activation_bytes(weight_type, cols);
    return (size_t)cols * sizeof(float);
}

void tm_kernel_prepare_activations(uint32_t weight_type, const float *x, int64_t cols, void *out) {
    if (tm_quant_is_quantized(weight_type)) {
        tm_quant_quantize_activations(weight_type, x, out, cols);
        return;
    }
    memcpy(out, x, (size_t)cols * sizeof(float));
    tm_kernel_round_activations(weight_type, out, (size_t)cols);
}

void tm_kernel_dequantize_row(const tm_tensor *w, int64_t row, float *out) {
    int64_t cols = w->cols;
    if (tm_quant_is_quantized(w->type)) {
        tm_quant_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)row * tm_quant_row_bytes(w->type, cols), out,
                                cols);
        return;
    }
    if (w->type == TM_GGML_F32) {
        memcpy(out, (const float *)w->data + row * cols, (size_t)cols * sizeof(float));
        return;
    }
    const uint16_t *src = (const uint16_t *)w->data + row * cols;
    if (w->type == TM_GGML_F16) {
        for (int64_t i = 0; i < cols; i++) out[i] = tm_f16_to_f32(src[i]);
    } else {
        for (int64_t i = 0; i < cols; i++) out[i] = tm_bf16_to_f32(src[i]);
    }
}

/* ---- dot products, one row at a time ------------------------------------- */

static float dot_f32_portable(const float *a, const float *b, int64_t n) {
    float sum[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) sum[j] += a[i + j] * b[i + j];
    float total = 0;
    for (int j = 0; j < 8; j++) total += sum[j];
    for (; i < n; i++) total += a[i] * b[i];
    return total;
}

static float dot_f16_portable(const uint16_t *a, const float *b, int64_t n) {
    float total = 0;
    for (int64_t i = 0; i < n; i++) total += tm_f16_to_f32(a[i]) * b[i];
    return total;
}

static float dot_bf16(const uint16_t *a, const float *b, int64_t n) {
    float total = 0;
    for (int64_t i = 0; i < n; i++) total += tm_bf16_to_f32(a[i]) * b[i];
    return total;
}

#ifdef TM_X86
__attribute__((target("avx2,fma"))) static inline float horizontal_sum(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* One row at a time, 32 floats per step in four accumulators: the matrix is
 * read as one sequential stream, which the hardware prefetcher follows (see
 * matvec_f32_avx512). */
__attribute__((target("avx2,fma"))) static void matvec_f32_avx2(const float *w, const float *x, float *y,
                                                               int64_t row_begin, int64_t row_end, int64_t cols) {
    for (int64_t r = row_begin; r < row_end; r++) {
        const float *row = w + r * cols;
        __m256 a[4];
        for (int k = 0; k < 4; k++) a[k] = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 32 <= cols; i += 32)
            for (int k = 0; k < 4; k++)
                a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(row + i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), a[k]);
        for (; i + 8 <= cols; i += 8) a[0] = _mm256_fmadd_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(x + i), a[0]);
        float s = horizontal_sum(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
        for (; i < cols; i++) s += row[i] * x[i];
        y[r] = s;
    }
}

/* F16 weights: one row at a time, 32 halves per step in four accumulators,
 * the matrix read as one sequential stream. On every CPU with AVX2: with
 * 512-bit vectors (64 halves a step) the 110M-shaped F16 model decoded at 92
 * tokens/s on one thread of an AMD EPYC (Zen 4) VM, with these at 118 (the
 * bandwidth bound; `benchmarks/results/decode-ab-row-groups.md`). */
__attribute__((target("avx2,fma,f16c"))) static void matvec_f16_avx2(const uint16_t *w, const float *x, float *y,
                                                                    int64_t row_begin, int64_t row_end, int64_t cols) {
    for (int64_t r = row_begin; r < row_end; r++) {
        const uint16_t *row = w + r * cols;
        __m256 a[4];
        for (int k = 0; k < 4; k++) a[k] = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 32 <= cols; i += 32)
            for (int k = 0; k < 4; k++)
                a[k] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + i + 8 * k))),
                                       _mm256_loadu_ps(x + i + 8 * k), a[k]);
        for (; i + 8 <= cols; i += 8)
            a[0] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + i))), _mm256_loadu_ps(x + i),
                                   a[0]);
        float s = horizontal_sum(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
        for (; i < cols; i++) s += _cvtsh_ss(row[i]) * x[i];
        y[r] = s;
    }
}

/* F32 weights with 512-bit vectors: one row at a time, 64 floats per step
 * in four accumulators, so the matrix is read as one sequential stream, which
 * the hardware prefetcher follows. Four rows side by side (four short
 * streams) decoded the 110M-shaped F32 model at 33 tokens/s on one thread of
 * an AMD EPYC (Zen 4) VM where llama.cpp made 52; this makes 55. */
__attribute__((target("avx512f"))) static void matvec_f32_avx512(const float *w, const float *x, float *y,
                                                                int64_t row_begin, int64_t row_end, int64_t cols) {
    for (int64_t r = row_begin; r < row_end; r++) {
        const float *row = w + r * cols;
        __m512 a[4];
        for (int k = 0; k < 4; k++) a[k] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 64 <= cols; i += 64)
            for (int k = 0; k < 4; k++)
                a[k] = _mm512_fmadd_ps(_mm512_loadu_ps(row + i + 16 * k), _mm512_loadu_ps(x + i + 16 * k), a[k]);
        for (; i + 16 <= cols; i += 16) a[0] = _mm512_fmadd_ps(_mm512_loadu_ps(row + i), _mm512_loadu_ps(x + i), a[0]);
        float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
        for (; i < cols; i++) s += row[i] * x[i];
        y[r] = s;
    }
}


static bool cpu_has_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        cached = tm_cpu_has(TM_CPU_AVX512F); /* TM_NO_AVX512 / TM_NO_AVX2 turn it off */
    }
    return cached == 1;
}

static bool cpu_has_avx2(void) {
    static int cached = -1;
    if (cached < 0) {
        cached = tm_cpu_has(TM_CPU_AVX2) && tm_cpu_has(TM_CPU_FMA) && tm_cpu_has(TM_CPU_F16C);
    }
    return cached == 1;
}
#endif

static void matvec_rows(const tm_tensor *w, const void *prepared, float *y, int64_t begin, int64_t end) {
    int64_t cols = w->cols;
    if (tm_quant_is_quantized(w->type)) {
        tm_quant_matvec_rows(w, prepared, y, begin, end);
        return;
    }
    const float *x = prepared;
#ifdef TM_X86
    if (cpu_has_avx2()) {
        if (w->type == TM_GGML_F32) {
            if (cpu_has_avx512()) matvec_f32_avx512(w->data, x, y, begin, end, cols);
            else matvec_f32_avx2(w->data, x, y, begin, end, cols);
            return;
        }
        if (w->type == TM_GGML_F16) {
            matvec_f16_avx2(w->data, x, y, begin, end, cols);
            return;
        }
    }
#endif
    for (int64_t r = begin; r < end; r++) {
        if (w->type == TM_GGML_F32) y[r] = dot_f32_portable((const float *)w->data + r * cols, x, cols);
        else if (w->type == TM_GGML_F16) y[r] = dot_f16_portable((const uint16_t *)w->data + r * cols, x, cols);
        else y[r] = dot_bf16((const uint16_t *)w->data + r * cols, x, cols);
    }
}

#ifdef TM_X86
__attribute__((target("avx2,fma"))) static float dot_f32_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = horizontal_sum(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

__attribute__((target("avx2,fma"))) static void axpy_f32_avx2(float *y, float a, const float *x, int64_t n) {
    __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
#endif

#ifdef TM_X86
/* Attention heads of 64 or more: one 512-bit vector per 16 floats. Shorter
 * ones keep the AVX2 kernel (and the bits they had). */
__attribute__((target("avx512f"))) static float dot_f32_avx512(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Element by element the same fused multiply-add as the AVX2 kernel. */
__attribute__((target("avx512f,avx2,fma"))) static void axpy_f32_avx512(float *y, float a, const float *x, int64_t n) {
    __m512 av = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_set1_ps(a), _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
#endif

#ifdef TM_X86
/* Attention over heads of 64 or 128 (nearly every Llama and Qwen2 model):
 * the query (or the output) stays in registers across all positions instead
 * of being reloaded by a call per position. Each score is dot_f32_avx512's
 * arithmetic (two chains over 32-wide steps, then the reduction) and each
 * output the same fused multiply-adds axpy_f32_avx512 makes from zero, in the
 * same order, so results are the same bits as the per-position calls. With
 * the keys in L3, 1024 positions of a 128-wide head took 6.8-7.2 us for the
 * scores against 9.5-10.9 by the calls, 7.0-8.2 for the values against
 * 10.7-16.3, on this path and on AVX2 alike. Over an F16 cache (half) each
 * row is widened to F32 as it is loaded, which is exact, so the results are
 * the F32 loops' on the widened rows, bit for bit. */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) __m512
row16(const void *rows, int64_t at, const bool half) {
    return half ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)((const uint16_t *)rows + at)))
                : _mm512_loadu_ps((const float *)rows + at);
}

__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
scores_avx512(const float *q, const void *keys, int64_t stride, int64_t n, float scale, float *scores, const int width,
              const bool half) {
    __m512 qv[8];
    for (int j = 0; j < width / 16; j++) qv[j] = _mm512_loadu_ps(q + 16 * j);
    for (int64_t t = 0; t < n; t++) {
        int64_t k = t * stride;
        __m512 s0 = _mm512_fmadd_ps(qv[0], row16(keys, k, half), _mm512_setzero_ps());
        __m512 s1 = _mm512_fmadd_ps(qv[1], row16(keys, k + 16, half), _mm512_setzero_ps());
        for (int j = 2; j < width / 16; j += 2) {
            s0 = _mm512_fmadd_ps(qv[j], row16(keys, k + 16 * j, half), s0);
            s1 = _mm512_fmadd_ps(qv[j + 1], row16(keys, k + 16 * j + 16, half), s1);
        }
        scores[t] = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) * scale;
    }
}

__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
values_avx512(const float *weights, const void *values, int64_t stride, int64_t n, float *out, const int width,
              const bool half) {
    __m512 o[8];
    for (int j = 0; j < width / 16; j++) o[j] = _mm512_setzero_ps();
    for (int64_t t = 0; t < n; t++) {
        __m512 w = _mm512_set1_ps(weights[t]);
        for (int j = 0; j < width / 16; j++) o[j] = _mm512_fmadd_ps(w, row16(values, t * stride + 16 * j, half), o[j]);
    }
    for (int j = 0; j < width / 16; j++) _mm512_storeu_ps(out + 16 * j, o[j]);
}

/* The same two loops on AVX2 (CPUs without AVX-512, and the path forced with
 * TM_NO_AVX512): each score dot_f32_avx2's two chains over 16-wide steps and
 * horizontal_sum, each output axpy_f32_avx2's fused multiply-adds from zero,
 * so again the per-position calls' bits. */
__attribute__((target("avx2,fma,f16c"))) static inline __attribute__((always_inline)) __m256
row8(const void *rows, int64_t at, const bool half) {
    return half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)((const uint16_t *)rows + at)))
                : _mm256_loadu_ps((const float *)rows + at);
}

__attribute__((target("avx2,fma,f16c"))) static inline __attribute__((always_inline)) void
scores_avx2(const float *q, const void *keys, int64_t stride, int64_t n, float scale, float *scores, const int width,
            const bool half) {
    __m256 qv[16];
    for (int j = 0; j < width / 8; j++) qv[j] = _mm256_loadu_ps(q + 8 * j);
    for (int64_t t = 0; t < n; t++) {
        int64_t k = t * stride;
        __m256 s0 = _mm256_fmadd_ps(qv[0], row8(keys, k, half), _mm256_setzero_ps());
        __m256 s1 = _mm256_fmadd_ps(qv[1], row8(keys, k + 8, half), _mm256_setzero_ps());
        for (int j = 2; j < width / 8; j += 2) {
            s0 = _mm256_fmadd_ps(qv[j], row8(keys, k + 8 * j, half), s0);
            s1 = _mm256_fmadd_ps(qv[j + 1], row8(keys, k + 8 * j + 8, half), s1);
        }
        scores[t] = horizontal_sum(_mm256_add_ps(s0, s1)) * scale;
    }
}

__attribute__((target("avx2,fma,f16c"))) static inline __attribute__((always_inline)) void
values_avx2(const float *weights, const void *values, int64_t stride, int64_t n, float *out, const int width,
            const bool half) {
    __m256 o[16];
    for (int j = 0; j < width / 8; j++) o[j] = _mm256_setzero_ps();
    for (int64_t t = 0; t < n; t++) {
        __m256 w = _mm256_set1_ps(weights[t]);
        for (int j = 0; j < width / 8; j++) o[j] = _mm256_fmadd_ps(w, row8(values, t * stride + 8 * j, half), o[j]);
    }
    for (int j = 0; j < width / 8; j++) _mm256_storeu_ps(out + 8 * j, o[j]);
}

/* One instance per width, path and element type, so that each loop is
 * unrolled with its registers: scores_64_f32_avx512 and so on. */
typedef void scores_fn(const float *q, const void *keys, int64_t stride, int64_t n, float scale, float *scores);
typedef void values_fn(const float *weights, const void *values, int64_t stride, int64_t n, float *out);
#define ATTENTION_INSTANCES(width, type, half)                                                                          \
    __attribute__((target("avx512f"))) static void scores_##width##_##type##_avx512(                                   \
        const float *q, const void *k, int64_t stride, int64_t n, float scale, float *scores) {                         \
        scores_avx512(q, k, stride, n, scale, scores, width, half);                                                     \
    }                                                                                                                   \
    __attribute__((target("avx512f"))) static void values_##width##_##type##_avx512(                                   \
        const float *w, const void *v, int64_t stride, int64_t n, float *out) {                                         \
        values_avx512(w, v, stride, n, out, width, half);                                                               \
    }                                                                                                                   \
    __attribute__((target("avx2,fma,f16c"))) static void scores_##width##_##type##_avx2(                               \
        const float *q, const void *k, int64_t stride, int64_t n, float scale, float *scores) {                         \
        scores_avx2(q, k, stride, n, scale, scores, width, half);                                                       \
    }                                                                                                                   \
    __attribute__((target("avx2,fma,f16c"))) static void values_##width##_##type##_avx2(                               \
        const float *w, const void *v, int64_t stride, int64_t n, float *out) {                                         \
        values_avx2(w, v, stride, n, out, width, half);                                                                 \
    }
ATTENTION_INSTANCES(64, f32, false)
ATTENTION_INSTANCES(128, f32, false)
ATTENTION_INSTANCES(64, f16, true)
ATTENTION_INSTANCES(128, f16, true)
#undef ATTENTION_INSTANCES

/* The in-register loop for this width, element type and CPU, or NULL. */
static scores_fn *scores_loop(int64_t head_dim, bool half) {
    if (head_dim != 64 && head_dim != 128) return NULL;
    bool w64 = head_dim == 64;
    if (cpu_has_avx512())
        return half ? (w64 ? scores_64_f16_avx512 : scores_128_f16_avx512) : (w64 ? scores_64_f32_avx512 : scores_128_f32_avx512);
    if (cpu_has_avx2())
        return half ? (w64 ? scores_64_f16_avx2 : scores_128_f16_avx2) : (w64 ? scores_64_f32_avx2 : scores_128_f32_avx2);
    return NULL;
}

static values_fn *values_loop(int64_t head_dim, bool half) {
    if (head_dim != 64 && head_dim != 128) return NULL;
    bool w64 = head_dim == 64;
    if (cpu_has_avx512())
        return half ? (w64 ? values_64_f16_avx512 : values_128_f16_avx512) : (w64 ? values_64_f32_avx512 : values_128_f32_avx512);
    if (cpu_has_avx2())
        return half ? (w64 ? values_64_f16_avx2 : values_128_f16_avx2) : (w64 ? values_64_f32_avx2 : values_128_f32_avx2);
    return NULL;
}
#endif

/* Other widths and CPUs: the per-position calls (an F16 row widened into a buffer first). */
static void widen_f16(const uint16_t *in, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = tm_f16_to_f32(in[i]);
}

void tm_kernel_attention_scores(const float *q, const float *keys, int64_t stride, int64_t n, int64_t head_dim,
                                float scale, float *scores) {
#ifdef TM_X86
    scores_fn *loop = scores_loop(head_dim, false);
    if (loop) {
        loop(q, keys, stride, n, scale, scores);
        return;
    }
#endif
    for (int64_t t = 0; t < n; t++) scores[t] = tm_kernel_dot(q, keys + t * stride, head_dim) * scale;
}

void tm_kernel_attention_values(const float *weights, const float *values, int64_t stride, int64_t n,
                                int64_t head_dim, float *out) {
#ifdef TM_X86
    values_fn *loop = values_loop(head_dim, false);
    if (loop) {
        loop(weights, values, stride, n, out);
        return;
    }
#endif
    memset(out, 0, (size_t)head_dim * sizeof(float));
    for (int64_t t = 0; t < n; t++) tm_kernel_axpy(out, weights[t], values + t * stride, head_dim);
}

void tm_kernel_attention_scores_f16(const float *q, const uint16_t *keys, int64_t stride, int64_t n, int64_t head_dim,
                                    float scale, float *scores) {
#ifdef TM_X86
    scores_fn *loop = scores_loop(head_dim, true);
    if (loop) {
        loop(q, keys, stride, n, scale, scores);
        return;
    }
#endif
    float row[TM_KERNEL_MAX_HEAD_DIM];
    for (int64_t t = 0; t < n; t++) {
        widen_f16(keys + t * stride, row, head_dim);
        scores[t] = tm_kernel_dot(q, row, head_dim) * scale;
    }
}

void tm_kernel_attention_values_f16(const float *weights, const uint16_t *values, int64_t stride, int64_t n,
                                    int64_t head_dim, float *out) {
#ifdef TM_X86
    values_fn *loop = values_loop(head_dim, true);
    if (loop) {
        loop(weights, values, stride, n, out);
        return;
    }
#endif
    float row[TM_KERNEL_MAX_HEAD_DIM];
    memset(out, 0, (size_t)head_dim * sizeof(float));
    for (int64_t t = 0; t < n; t++) {
        widen_f16(values + t * stride, row, head_dim);
        tm_kernel_axpy(out, weights[t], row, head_dim);
    }
}

float tm_kernel_dot(const float *a, const float *b, int64_t n) {
#ifdef TM_X86
    if (n >= 64 && cpu_has_avx512()) return dot_f32_avx512(a, b, n);
    if (cpu_has_avx2()) return dot_f32_avx2(a, b, n);
#endif
    return dot_f32_portable(a, b, n);
}

void tm_kernel_axpy(float *y, float a, const float *x, int64_t n) {
#ifdef TM_X86
    if (n >= 16 && cpu_has_avx512()) {
        axpy_f32_avx512(y, a, x, n);
        return;
    }
    if (cpu_has_avx2()) {
        axpy_f32_avx2(y, a, x, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* Below this many weights a matrix is multiplied on one thread: the fork and
 * join of a parallel region would cost more than the work. */
enum { PARALLEL_MIN_WEIGHTS = 1 << 18 };

void tm_kernel_matvec(const tm_tensor *w, const void *x, float *y, int n_threads) {
    tm_kernel_matvec_multi(&w, x, &y, 1, n_threads);
}

void tm_kernel_matvec_multi(const tm_tensor *const *w, const void *x, float *const *y, int n, int n_threads) {
    int64_t total_rows = 0, weights = 0;
    for (int m = 0; m < n; m++) {
        total_rows += w[m]->rows;
        weights += w[m]->rows * w[m]->cols;
    }
    if (n_threads <= 1 || weights < PARALLEL_MIN_WEIGHTS) {
        for (int m = 0; m < n; m++) matvec_rows(w[m], x, y[m], 0, w[m]->rows);
        return;
    }
    /* One parallel region for all the matrices: the rows of all of them are
     * split evenly, in blocks of 4 so each thread keeps the 4-row kernel. */
#pragma omp parallel num_threads(n_threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t blocks = (total_rows + 3) / 4;
        int64_t begin = blocks * t / nt * 4, end = blocks * (t + 1) / nt * 4;
        int64_t offset = 0;
        for (int m = 0; m < n && begin < end; m++) {
            int64_t rows = w[m]->rows;
            int64_t lo = begin - offset, hi = end - offset;
            if (lo < 0) lo = 0;
            if (hi > rows) hi = rows;
            if (lo < hi) matvec_rows(w[m], x, y[m], lo, hi);
            offset += rows;
        }
    }
}

/* ---- batched products (prompts) ------------------------------------------- */

enum { MATMUL_TILE_ROWS = 256 };

size_t tm_kernel_matmul_scratch(int64_t cols) { return (size_t)MATMUL_TILE_ROWS * (size_t)cols; }

#ifdef TM_X86
__attribute__((target("avx512f"))) static void f16_to_f32_avx512(const uint16_t *src, float *dst, int64_t count) {
    int64_t i = 0;
    for (; i + 16 <= count; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < count; i++) dst[i] = tm_f16_to_f32(src[i]);
}

__attribute__((target("avx2,fma,f16c"))) static void f16_to_f32_avx2(const uint16_t *src, float *dst, int64_t count) {
    int64_t i = 0;
    for (; i + 8 <= count; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < count; i++) dst[i] = tm_f16_to_f32(src[i]);
}
#endif

/* count halves or bfloat16s to floats (exact either way). */
static void widen(uint32_t type, const uint16_t *src, float *dst, int64_t count) {
    if (type == TM_GGML_BF16) {
        for (int64_t i = 0; i < count; i++) {
            uint32_t bits = (uint32_t)src[i] << 16;
            memcpy(dst + i, &bits, 4);
        }
        return;
    }
#ifdef TM_X86
    if (cpu_has_avx512()) {
        f16_to_f32_avx512(src, dst, count);
        return;
    }
    if (cpu_has_avx2()) {
        f16_to_f32_avx2(src, dst, count);
        return;
    }
#endif
    for (int64_t i = 0; i < count; i++) dst[i] = tm_f16_to_f32(src[i]);
}

/* F16/BF16: each thread widens its own rows, a slice of scratch at a time,
 * and multiplies them with a one-thread sgemm (OpenBLAS runs single-threaded
 * inside a parallel region): the conversion, which made the old tiled path
 * slow, is spread over the threads and no thread waits for another. */
static void batch_matmul_half(const tm_tensor *w, const float *x, int64_t n, float *y, float *scratch, int n_threads) {
    int64_t rows = w->rows, cols = w->cols;
    int threads = n_threads < 1 ? 1 : n_threads > 16 ? 16 : n_threads;
    if ((int64_t)threads * 16 > rows) threads = (int)((rows + 15) / 16);
    if (rows * cols * n < (1 << 20)) threads = 1;
    int64_t slice = MATMUL_TILE_ROWS / threads / 16 * 16;
    int64_t slices = (rows + slice - 1) / slice;
#pragma omp parallel num_threads(threads)
    {
        float *mine = scratch + (size_t)omp_get_thread_num() * (size_t)slice * (size_t)cols;
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < slices; i++) {
            int64_t r0 = i * slice, tile = rows - r0 < slice ? rows - r0 : slice;
            widen(w->type, (const uint16_t *)w->data + r0 * cols, mine, tile * cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)tile, (int)cols, 1.0f, x, (int)cols, mine,
                        (int)cols, 0.0f, y + r0, (int)rows);
        }
    }
}

void tm_kernel_matmul(const tm_tensor *w, const float *x, int64_t n, float *y, float *scratch, int n_threads) {
    int64_t rows = w->rows, cols = w->cols;
    if (w->type == TM_GGML_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)rows, (int)cols, 1.0f, x, (int)cols,
                    (const float *)w->data, (int)cols, 0.0f, y, (int)rows);
        return;
    }
    if (w->type == TM_GGML_F16 || w->type == TM_GGML_BF16) {
        batch_matmul_half(w, x, n, y, scratch, n_threads);
        return;
    }
    /* The quantized activations of MATMUL_TILE_ROWS tokens fit in the scratch. */
    for (int64_t t0 = 0; t0 < n; t0 += MATMUL_TILE_ROWS) {
        int64_t count = n - t0 < MATMUL_TILE_ROWS ? n - t0 : MATMUL_TILE_ROWS;
        tm_quant_gemm(w, x + t0 * cols, count, y + t0 * rows, scratch, n_threads);
    }
}

/* ---- element-wise kernels -------------------------------------------------- */

void tm_kernel_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps) {
    double sum = 0; /* double, as llama.cpp accumulates it */
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    float scale = 1.0f / sqrtf((float)(sum / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] * scale) * weight[i];
}

/* ---- expf through core's vectorised copy of glibc's (libm's bits) -------------- */
/* The prompt's SwiGLU takes an expf per hidden unit per token, and softmax
 * one per score; both go through core/expf_simd.h, the same bits as expf on
 * every path. */
#ifdef TM_X86
TM_EXPF_AVX512 static void swiglu_avx512(float *out, const float *gate, const float *up, int64_t n) {
    __m512d table[4];
    tm_expf_load_table(table);
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i);
        __m512 e = tm_expf_16_avx512(_mm512_sub_ps(_mm512_setzero_ps(), g), table);
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
    }
    for (; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

TM_EXPF_AVX2 static void swiglu_avx2(float *out, const float *gate, const float *up, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = tm_expf_8_avx2(_mm256_sub_ps(_mm256_setzero_ps(), g));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}
#endif

void tm_kernel_softmax(float *x, int64_t n) {
    float max = tm_max_float(x, (size_t)n);
    tm_expf_shifted(x, (size_t)n, max);
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += x[i];
    float inverse = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inverse;
}

void tm_kernel_swiglu(float *out, const float *gate, const float *up, int64_t n) {
#ifdef TM_X86
    if (cpu_has_avx512()) {
        swiglu_avx512(out, gate, up, n);
        return;
    }
    if (cpu_has_avx2()) {
        swiglu_avx2(out, gate, up, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void tm_kernel_add(float *acc, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) acc[i] += x[i];
}
