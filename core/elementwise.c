/* The element-wise steps of the softmaxes of the sampler, the watermark
 * stages and attention, over whole arrays: expf with libm's bits (glibc's
 * method vectorised, expf_simd.h), the largest value, and the float-to-double
 * divisions and products that normalise, each giving the very bits of the
 * plain loop it replaces. AVX-512 and AVX2 versions are chosen at run time
 * (tm_cpu_has, so TM_NO_AVX512 and TM_NO_AVX2 force the narrower paths), with
 * the plain loops elsewhere. The sums stay with the callers, in order. */
#include "expf_simd.h"
#include "tracemark/core.h"

#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
TM_EXPF_AVX512 static void expf_shifted_avx512(float *x, size_t n, float shift) {
    __m512d table[4];
    tm_expf_load_table(table);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, tm_expf_16_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_set1_ps(shift)), table));
    for (; i < n; i++) x[i] = expf(x[i] - shift);
}

TM_EXPF_AVX2 static void expf_shifted_avx2(float *x, size_t n, float shift) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, tm_expf_8_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(shift))));
    for (; i < n; i++) x[i] = expf(x[i] - shift);
}

/* _mm256_max_ps(a, b) returns b when either is NaN: with the running maxima
 * as b, a NaN in x is passed over, as the scalar comparison passes it. */
TM_EXPF_AVX2 static float max_avx2(const float *x, size_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + i), m);
    float lanes[8], max = -INFINITY;
    _mm256_storeu_ps(lanes, m);
    for (int k = 0; k < 8; k++)
        if (lanes[k] > max) max = lanes[k];
    for (; i < n; i++)
        if (x[i] > max) max = x[i];
    return max;
}

/* x[i] = (float)((double)x[i] / by), or * by: IEEE division and product are
 * exactly rounded, so four lanes give the scalar bits. */
TM_EXPF_AVX2 static void scale_avx2(float *x, size_t n, double by, bool divide) {
    const __m256d b = _mm256_set1_pd(by);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
        _mm_storeu_ps(x + i, _mm256_cvtpd_ps(divide ? _mm256_div_pd(v, b) : _mm256_mul_pd(v, b)));
    }
    for (; i < n; i++) x[i] = (float)(divide ? (double)x[i] / by : (double)x[i] * by);
}
#endif

static void scale_floats(float *x, size_t n, double by, bool divide) {
#if defined(__x86_64__) || defined(__i386__)
    if (tm_cpu_has(TM_CPU_AVX2)) {
        scale_avx2(x, n, by, divide);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) x[i] = (float)(divide ? (double)x[i] / by : (double)x[i] * by);
}

void tm_expf_shifted(float *x, size_t n, float shift) {
#if defined(__x86_64__) || defined(__i386__)
    if (tm_cpu_has(TM_CPU_AVX512F)) {
        expf_shifted_avx512(x, n, shift);
        return;
    }
    if (tm_cpu_has(TM_CPU_AVX2) && tm_cpu_has(TM_CPU_FMA)) {
        expf_shifted_avx2(x, n, shift);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) x[i] = expf(x[i] - shift);
}

float tm_max_float(const float *x, size_t n) {
#if defined(__x86_64__) || defined(__i386__)
    if (tm_cpu_has(TM_CPU_AVX2)) return max_avx2(x, n);
#endif
    float max = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (x[i] > max) max = x[i];
    return max;
}

/* Four running maxima, so that the comparisons do not wait on each other;
 * `x > m ? x : m` passes NaNs over as the one-by-one loop does, and the
 * largest value is the same whatever the order (equal values are equal bits,
 * but for -0 and +0, which give the same softmax). */
float tm_candidates_max_logit(const tm_token_data *d, size_t n) {
    float m[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) m[k] = d[i + k].logit > m[k] ? d[i + k].logit : m[k];
    for (; i < n; i++) m[0] = d[i].logit > m[0] ? d[i].logit : m[0];
    float max = m[0];
    for (int k = 1; k < 4; k++) max = m[k] > max ? m[k] : max;
    return max;
}

/* ---- whether candidates are the whole vocabulary in order --------------------- */
/* The ids sit every third int32 of the candidates (id, logit, p). Vector
 * code compares 16 (8) candidates at a time: their 48 (24) ints as three
 * loads, each checked at its id positions against the ids expected there. */
_Static_assert(sizeof(tm_token_data) == 3 * sizeof(int32_t), "candidates are (id, logit, p), 12 bytes");
#if defined(__x86_64__) || defined(__i386__)
TM_EXPF_AVX512 static size_t dense_prefix_avx512(const tm_token_data *d, size_t n) {
    const int32_t *ints = (const int32_t *)(const void *)d;
    /* In load k (ints 16k..16k+15), an int at position j is an id when
     * 16k + j is a multiple of 3; it is then the id of candidate (16k + j) / 3. */
    __m512i expected[3];
    __mmask16 is_id[3];
    for (int k = 0; k < 3; k++) {
        int32_t lanes[16];
        unsigned mask = 0;
        for (int j = 0; j < 16; j++) {
            int at = 16 * k + j;
            lanes[j] = at / 3;
            mask |= (unsigned)(at % 3 == 0) << j;
        }
        expected[k] = _mm512_loadu_si512(lanes);
        is_id[k] = (__mmask16)mask;
    }
    const __m512i step = _mm512_set1_epi32(16);
    size_t i = 0;
    for (; i + 16 <= n && i + 16 <= (size_t)INT32_MAX; i += 16) {
        __mmask16 wrong = 0;
        for (int k = 0; k < 3; k++) {
            wrong |= _mm512_mask_cmpneq_epi32_mask(is_id[k], _mm512_loadu_si512(ints + 3 * i + 16 * k), expected[k]);
            expected[k] = _mm512_add_epi32(expected[k], step);
        }
        if (wrong) return i;
    }
    return i;
}

TM_EXPF_AVX2 static size_t dense_prefix_avx2(const tm_token_data *d, size_t n) {
    const int32_t *ints = (const int32_t *)(const void *)d;
    __m256i expected[3], not_id[3];
    for (int k = 0; k < 3; k++) {
        int32_t lanes[8], other[8];
        for (int j = 0; j < 8; j++) {
            int at = 8 * k + j;
            lanes[j] = at / 3;
            other[j] = at % 3 == 0 ? 0 : -1;
        }
        expected[k] = _mm256_loadu_si256((const __m256i *)(const void *)lanes);
        not_id[k] = _mm256_loadu_si256((const __m256i *)(const void *)other);
    }
    const __m256i step = _mm256_set1_epi32(8);
    size_t i = 0;
    for (; i + 8 <= n && i + 8 <= (size_t)INT32_MAX; i += 8) {
        __m256i right = _mm256_set1_epi32(-1);
        for (int k = 0; k < 3; k++) {
            __m256i equal = _mm256_cmpeq_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(ints + 3 * i + 8 * k)),
                                               expected[k]);
            right = _mm256_and_si256(right, _mm256_or_si256(equal, not_id[k]));
            expected[k] = _mm256_add_epi32(expected[k], step);
        }
        if (_mm256_movemask_epi8(right) != -1) return i;
    }
    return i;
}
#endif

bool tm_candidates_dense(const tm_token_data *d, size_t n) {
    if (n > (size_t)INT32_MAX + 1) return false;
    size_t i = 0;
#if defined(__x86_64__) || defined(__i386__)
    if (tm_cpu_has(TM_CPU_AVX512F)) i = dense_prefix_avx512(d, n);
    else if (tm_cpu_has(TM_CPU_AVX2)) i = dense_prefix_avx2(d, n);
#endif
    for (; i < n; i++) /* the rest, or where the vector code stopped at a mismatch */
        if (d[i].id != (int32_t)i) return false;
    return true;
}

/* ---- the softmax steps over candidates ---------------------------------------- */
/* The candidates hold id, logit and p side by side, so each step copies a
 * chunk into a plain array, runs the vector code on it and copies it back. */
enum { CHUNK = 256 };

double tm_candidates_exp(tm_token_data *d, size_t n, float shift, bool nan_as_zero) {
    float e[CHUNK];
    double sum = 0.0;
    for (size_t start = 0; start < n; start += CHUNK) {
        size_t m = n - start < CHUNK ? n - start : CHUNK;
        for (size_t i = 0; i < m; i++) e[i] = d[start + i].logit;
        tm_expf_shifted(e, m, shift);
        for (size_t i = 0; i < m; i++) {
            float p = nan_as_zero && !(e[i] >= 0.0f) ? 0.0f : e[i];
            d[start + i].p = p;
            sum += p;
        }
    }
    return sum;
}

static void candidates_scale(tm_token_data *d, size_t n, double by, bool divide) {
    float e[CHUNK];
    for (size_t start = 0; start < n; start += CHUNK) {
        size_t m = n - start < CHUNK ? n - start : CHUNK;
        for (size_t i = 0; i < m; i++) e[i] = d[start + i].p;
        scale_floats(e, m, by, divide);
        for (size_t i = 0; i < m; i++) d[start + i].p = e[i];
    }
}

void tm_candidates_divide_p(tm_token_data *d, size_t n, double divisor) { candidates_scale(d, n, divisor, true); }

void tm_candidates_multiply_p(tm_token_data *d, size_t n, double factor) { candidates_scale(d, n, factor, false); }
