/* The numeric kernels of the forward pass. Decode is memory-bound, so the
 * matrix-vector products are hand-written (AVX-512 or AVX2/FMA/F16C when
 * the CPU has them, chosen at run time, with a portable fallback; the
 * quantized ones live in quant.c) and split over threads by rows, as are
 * attention's dot and axpy loops; batched prompt products go through
 * OpenBLAS sgemm. These functions trust their callers (the forward
 * pass checked every shape at load time). */
#include "kernels.h"

#include "quant.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TM_X86 1
#endif

/* ---- half precision ------------------------------------------------------ */

float tm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int shift = 0;
            while (!(mantissa & 0x400)) { mantissa <<= 1; shift++; }
            mantissa &= 0x3FF;
            bits = sign | ((uint32_t)(127 - 15 - shift + 1) << 23) | (mantissa << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t tm_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t abs = x & 0x7FFFFFFF;
    if (abs > 0x7F800000) return (uint16_t)(sign | 0x7E00); /* NaN */
    if (abs >= 0x477FF000) return (uint16_t)(sign | 0x7C00); /* overflow (after rounding) to inf */
    if (abs < 0x38800000) { /* result is subnormal or zero */
        if (abs < 0x33000000) return (uint16_t)sign;
        uint32_t exponent = abs >> 23, mantissa = (abs & 0x7FFFFF) | 0x800000;
        uint32_t shift = 126 - exponent; /* 14..24 */
        uint32_t half = mantissa >> shift, rest = mantissa & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rest > mid || (rest == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((abs >> 13) - (112u << 10)), rest = abs & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;
    return (uint16_t)(sign | half);
}

float tm_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float round_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFF) > 0x7F800000) return f;
    x = (x + (0x7FFF + ((x >> 16) & 1))) & 0xFFFF0000u;
    memcpy(&f, &x, 4);
    return f;
}

bool tm_kernel_supports(uint32_t type) {
    return type == TM_GGML_F32 || type == TM_GGML_F16 || type == TM_GGML_BF16 || tm_quant_is_quantized(type);
}

void tm_kernel_round_activations(uint32_t weight_type, float *x, size_t n) {
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

/* Four rows against one x: x is loaded once per four rows, which halves the
 * load traffic from L1 compared with one row at a time. */
__attribute__((target("avx2,fma"))) static void matvec_f32_avx2(const float *w, const float *x, float *y,
                                                               int64_t row_begin, int64_t row_end, int64_t cols) {
    int64_t r = row_begin;
    for (; r + 4 <= row_end; r += 4) {
        const float *w0 = w + r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 <= cols; i += 8) {
            __m256 xv = _mm256_loadu_ps(x + i);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, a3);
        }
        float s0 = horizontal_sum(a0), s1 = horizontal_sum(a1), s2 = horizontal_sum(a2), s3 = horizontal_sum(a3);
        for (; i < cols; i++) {
            s0 += w0[i] * x[i];
            s1 += w1[i] * x[i];
            s2 += w2[i] * x[i];
            s3 += w3[i] * x[i];
        }
        y[r] = s0;
        y[r + 1] = s1;
        y[r + 2] = s2;
        y[r + 3] = s3;
    }
    for (; r < row_end; r++) {
        const float *wr = w + r * cols;
        __m256 a = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 <= cols; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(wr + i), _mm256_loadu_ps(x + i), a);
        float s = horizontal_sum(a);
        for (; i < cols; i++) s += wr[i] * x[i];
        y[r] = s;
    }
}

__attribute__((target("avx2,fma,f16c"))) static void matvec_f16_avx2(const uint16_t *w, const float *x, float *y,
                                                                    int64_t row_begin, int64_t row_end, int64_t cols) {
    int64_t r = row_begin;
    for (; r + 2 <= row_end; r += 2) {
        const uint16_t *w0 = w + r * cols, *w1 = w0 + cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= cols; i += 16) {
            __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
            a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w0 + i))), x0, a0);
            b0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w0 + i + 8))), x1, b0);
            a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w1 + i))), x0, a1);
            b1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w1 + i + 8))), x1, b1);
        }
        float s0 = horizontal_sum(_mm256_add_ps(a0, b0)), s1 = horizontal_sum(_mm256_add_ps(a1, b1));
        for (; i < cols; i++) {
            s0 += _cvtsh_ss(w0[i]) * x[i];
            s1 += _cvtsh_ss(w1[i]) * x[i];
        }
        y[r] = s0;
        y[r + 1] = s1;
    }
    for (; r < row_end; r++) {
        const uint16_t *wr = w + r * cols;
        __m256 a = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 <= cols; i += 8)
            a = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wr + i))), _mm256_loadu_ps(x + i), a);
        float s = horizontal_sum(a);
        for (; i < cols; i++) s += _cvtsh_ss(wr[i]) * x[i];
        y[r] = s;
    }
}

/* The same four-row kernel with 512-bit vectors, for CPUs that have them. */
__attribute__((target("avx512f"))) static void matvec_f32_avx512(const float *w, const float *x, float *y,
                                                                int64_t row_begin, int64_t row_end, int64_t cols) {
    int64_t r = row_begin;
    for (; r + 4 <= row_end; r += 4) {
        const float *w0 = w + r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        int64_t i = 0;
        /* The next four rows, a few cache lines ahead: each row is a short stream
         * the hardware prefetcher has barely learnt before it ends. */
        const float *next = r + 8 <= row_end ? w3 + cols : w0;
        for (; i + 16 <= cols; i += 16) {
            if ((i & 31) == 0) {
                _mm_prefetch((const char *)(next + i), _MM_HINT_T0);
                _mm_prefetch((const char *)(next + cols + i), _MM_HINT_T0);
                _mm_prefetch((const char *)(next + 2 * cols + i), _MM_HINT_T0);
                _mm_prefetch((const char *)(next + 3 * cols + i), _MM_HINT_T0);
            }
            __m512 xv = _mm512_loadu_ps(x + i);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + i), xv, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + i), xv, a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + i), xv, a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + i), xv, a3);
        }
        float s0 = _mm512_reduce_add_ps(a0), s1 = _mm512_reduce_add_ps(a1);
        float s2 = _mm512_reduce_add_ps(a2), s3 = _mm512_reduce_add_ps(a3);
        for (; i < cols; i++) {
            s0 += w0[i] * x[i];
            s1 += w1[i] * x[i];
            s2 += w2[i] * x[i];
            s3 += w3[i] * x[i];
        }
        y[r] = s0;
        y[r + 1] = s1;
        y[r + 2] = s2;
        y[r + 3] = s3;
    }
    if (r < row_end) matvec_f32_avx2(w, x, y, r, row_end, cols);
}

/* F16 weights: four rows per pass, 32 halves (one cache line) per row per
 * step. Rows of a few kilobytes are short streams for the hardware
 * prefetcher, so the group PREFETCH_GROUPS groups ahead is prefetched line by
 * line (measured on Zen 4: the kernel without it read at under half the F32
 * kernel's speed). */
enum { PREFETCH_GROUPS = 4 };

__attribute__((target("avx512f,f16c,avx2,fma"))) static void matvec_f16_avx512(const uint16_t *w, const float *x,
                                                                              float *y, int64_t row_begin,
                                                                              int64_t row_end, int64_t cols) {
    int64_t r = row_begin;
    size_t ahead = (size_t)(PREFETCH_GROUPS * 4 * cols);
    for (; r + 4 <= row_end; r += 4) {
        const uint16_t *row[4] = {w + r * cols, w + (r + 1) * cols, w + (r + 2) * cols, w + (r + 3) * cols};
        __m512 a[4], b[4];
        for (int k = 0; k < 4; k++) a[k] = b[k] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 32 <= cols; i += 32) {
            __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
            for (int k = 0; k < 4; k++) {
                _mm_prefetch((const char *)(row[k] + i + ahead), _MM_HINT_T0);
                a[k] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row[k] + i))), x0, a[k]);
                b[k] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row[k] + i + 16))), x1, b[k]);
            }
        }
        for (int k = 0; k < 4; k++) {
            float s = _mm512_reduce_add_ps(_mm512_add_ps(a[k], b[k]));
            for (int64_t j = i; j < cols; j++) s += _cvtsh_ss(row[k][j]) * x[j];
            y[r + k] = s;
        }
    }
    if (r < row_end) matvec_f16_avx2(w, x, y, r, row_end, cols);
}

static bool cpu_has_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && getenv("TM_NO_AVX512") == NULL;
    }
    return cached == 1;
}

static bool cpu_has_avx2(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    }
    return cached == 1;
}
#endif

static void matvec_rows(const tm_tensor *w, const void *prepared, float *y, int64_t begin, int64_t end) {
    int64_t cols = w->cols;
    if (tm_quant_is_quantized(w->type)) {
        tm_quant_matvec_rows(w->type, w->data, prepared, y, begin, end, cols);
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
            if (cpu_has_avx512()) matvec_f16_avx512(w->data, x, y, begin, end, cols);
            else matvec_f16_avx2(w->data, x, y, begin, end, cols);
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

float tm_kernel_dot(const float *a, const float *b, int64_t n) {
#ifdef TM_X86
    if (cpu_has_avx2()) return dot_f32_avx2(a, b, n);
#endif
    return dot_f32_portable(a, b, n);
}

void tm_kernel_axpy(float *y, float a, const float *x, int64_t n) {
#ifdef TM_X86
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

/* ---- batched products through OpenBLAS ------------------------------------ */

enum { MATMUL_TILE_ROWS = 256 };

size_t tm_kernel_matmul_scratch(int64_t cols) { return (size_t)MATMUL_TILE_ROWS * (size_t)cols; }

void tm_kernel_matmul(const tm_tensor *w, const float *x, int64_t n, float *y, float *scratch) {
    int64_t rows = w->rows, cols = w->cols;
    if (w->type == TM_GGML_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)rows, (int)cols, 1.0f, x, (int)cols,
                    (const float *)w->data, (int)cols, 0.0f, y, (int)rows);
        return;
    }
    for (int64_t r0 = 0; r0 < rows; r0 += MATMUL_TILE_ROWS) {
        int64_t tile = rows - r0 < MATMUL_TILE_ROWS ? rows - r0 : MATMUL_TILE_ROWS;
        for (int64_t r = 0; r < tile; r++) tm_kernel_dequantize_row(w, r0 + r, scratch + r * cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)tile, (int)cols, 1.0f, x, (int)cols, scratch,
                    (int)cols, 0.0f, y + r0, (int)rows);
    }
}

/* ---- element-wise kernels -------------------------------------------------- */

void tm_kernel_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps) {
    double sum = 0; /* double, as llama.cpp accumulates it */
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    float scale = 1.0f / sqrtf((float)(sum / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] * scale) * weight[i];
}

void tm_kernel_softmax(float *x, int64_t n) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inverse = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inverse;
}

void tm_kernel_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void tm_kernel_add(float *acc, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) acc[i] += x[i];
}
