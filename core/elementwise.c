/* The element-wise steps of the softmaxes of the sampler, the watermark
 * stages and attention, over whole arrays: the candidates made from the
 * logits, expf with libm's bits (glibc's method vectorised, expf_simd.h), the
 * largest value, which candidates reach a bound (a bitmap, for top-k and the
 * pre-truncation), and the float-to-double divisions and products that
 * normalise, each giving the very bits of the plain loop it replaces. AVX-512
 * and AVX2 versions are chosen at run time (tm_cpu_has, so TM_NO_AVX512 and
 * TM_NO_AVX2 force the narrower paths), with the plain loops elsewhere. The
 * sums stay in order. */
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
#endif

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
/* The candidates hold id, logit and p side by side (12 bytes each). The
 * vector code takes 16 of them (8 on AVX2) as three loads of 48 (24) int32,
 * gathers a field into one vector with permutes, and puts p back the same
 * way, so no step copies the candidates out and back. The index tables
 * follow from the layout: field f of candidate j is int 3j + f. The tail (and
 * every CPU without AVX2) takes the one-by-one loops, which also define the
 * bits: expf's, the sum in order in double, one rounding per division. */
#if defined(__x86_64__) || defined(__i386__)
typedef struct {
    __m512i from_ab, from_c; /* the field's ints in the first two loads, and in the third */
    __mmask16 in_c;          /* the candidates whose field sits in the third load */
} field16;

static const int32_t LOGIT16_AB[16] = {1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 0, 0, 0, 0, 0};
static const int32_t LOGIT16_C[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 5, 8, 11, 14};
static const int32_t P16_AB[16] = {2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 0, 0, 0, 0, 0, 0};
static const int32_t P16_C[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 6, 9, 12, 15};
/* load k, int q: candidate (16k + q) / 3, where (16k + q) % 3 is 2 (PUT) or
 * not (FILL: ids from the first vector, logits from the second, +16) */
static const int32_t PUT16[3][16] = {{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5},
                                     {5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 9, 10, 10},
                                     {10, 11, 11, 11, 12, 12, 12, 13, 13, 13, 14, 14, 14, 15, 15, 15}};
static const __mmask16 PUT16_MASK[3] = {0x4924, 0x2492, 0x9249};
static const int32_t FILL16[3][16] = {{0, 16, 16, 1, 17, 17, 2, 18, 18, 3, 19, 19, 4, 20, 20, 5},
                                      {21, 21, 6, 22, 22, 7, 23, 23, 8, 24, 24, 9, 25, 25, 10, 26},
                                      {26, 11, 27, 27, 12, 28, 28, 13, 29, 29, 14, 30, 30, 15, 31, 31}};

TM_EXPF_AVX512 static inline field16 field16_of(const int32_t *ab, const int32_t *c, __mmask16 in_c) {
    return (field16){_mm512_loadu_si512(ab), _mm512_loadu_si512(c), in_c};
}

TM_EXPF_AVX512 static inline void load16(const tm_token_data *d, __m512 v[3]) {
    const float *f = (const float *)(const void *)d;
    for (int k = 0; k < 3; k++) v[k] = _mm512_loadu_ps(f + 16 * k);
}

TM_EXPF_AVX512 static inline void store16(tm_token_data *d, const __m512 v[3]) {
    float *f = (float *)(void *)d;
    for (int k = 0; k < 3; k++) _mm512_storeu_ps(f + 16 * k, v[k]);
}

TM_EXPF_AVX512 static inline __m512 gather16(const __m512 v[3], const field16 *f) {
    return _mm512_mask_permutexvar_ps(_mm512_permutex2var_ps(v[0], f->from_ab, v[1]), f->in_c, f->from_c, v[2]);
}

TM_EXPF_AVX512 static inline void put_p16(__m512 v[3], const __m512i put[3], __m512 p) {
    for (int k = 0; k < 3; k++) v[k] = _mm512_mask_permutexvar_ps(v[k], PUT16_MASK[k], put[k], p);
}

TM_EXPF_AVX512 static size_t fill_avx512(tm_token_data *d, const float *logits, size_t n) {
    __m512i fill[3];
    for (int k = 0; k < 3; k++) fill[k] = _mm512_loadu_si512(FILL16[k]);
    __m512i ids = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    size_t i = 0;
    for (; i + 16 <= n && i + 16 <= (size_t)INT32_MAX; i += 16, ids = _mm512_add_epi32(ids, _mm512_set1_epi32(16))) {
        __m512 x = _mm512_loadu_ps(logits + i);
        x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_set1_ps(-INFINITY));
        __m512 v[3];
        for (int k = 0; k < 3; k++)
            v[k] = _mm512_maskz_permutex2var_ps((__mmask16)~PUT16_MASK[k], _mm512_castsi512_ps(ids), fill[k], x);
        store16(d + i, v);
    }
    return i;
}

TM_EXPF_AVX512 static size_t max_logit_avx512(const tm_token_data *d, size_t n, float *max) {
    field16 logit = field16_of(LOGIT16_AB, LOGIT16_C, 0xf800);
    __m512 m = _mm512_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v[3];
        load16(d + i, v);
        m = _mm512_max_ps(gather16(v, &logit), m); /* b when either is NaN: NaNs passed over */
    }
    *max = _mm512_reduce_max_ps(m);
    return i;
}

/* Bits of 64 candidates a word, from 16 at a time; i stays a multiple of 64
 * until the last full word, the rest is the scalar loop's. */
TM_EXPF_AVX512 static size_t at_least_avx512(const tm_token_data *d, size_t n, float raise, float bound,
                                             uint64_t *bits, size_t *count) {
    field16 logit = field16_of(LOGIT16_AB, LOGIT16_C, 0xf800);
    const __m512 r = _mm512_set1_ps(raise), b = _mm512_set1_ps(bound);
    size_t i = 0, total = 0;
    for (; i + 64 <= n; i += 64) {
        uint64_t word = 0;
        for (int q = 0; q < 4; q++) {
            __m512 v[3];
            load16(d + i + 16 * q, v);
            __mmask16 m = _mm512_cmp_ps_mask(_mm512_add_ps(gather16(v, &logit), r), b, _CMP_GE_OQ);
            word |= (uint64_t)m << (16 * q);
        }
        bits[i / 64] = word;
        total += (size_t)__builtin_popcountll(word);
    }
    *count = total;
    return i;
}

TM_EXPF_AVX512 static size_t exp_avx512(tm_token_data *d, size_t n, float shift, bool nan_as_zero, double *sum) {
    __m512d table[4];
    tm_expf_load_table(table);
    field16 logit = field16_of(LOGIT16_AB, LOGIT16_C, 0xf800);
    __m512i put[3];
    for (int k = 0; k < 3; k++) put[k] = _mm512_loadu_si512(PUT16[k]);
    double total = *sum;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v[3];
        load16(d + i, v);
        __m512 e = tm_expf_16_avx512(_mm512_sub_ps(gather16(v, &logit), _mm512_set1_ps(shift)), table);
        if (nan_as_zero) e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(e, _mm512_setzero_ps(), _CMP_GE_OQ), e);
        put_p16(v, put, e);
        store16(d + i, v);
        float lanes[16];
        _mm512_storeu_ps(lanes, e);
        for (int k = 0; k < 16; k++) total += lanes[k];
    }
    *sum = total;
    return i;
}

TM_EXPF_AVX512 static size_t scale_avx512(tm_token_data *d, size_t n, double by, bool divide) {
    field16 p = field16_of(P16_AB, P16_C, 0xfc00);
    __m512i put[3];
    for (int k = 0; k < 3; k++) put[k] = _mm512_loadu_si512(PUT16[k]);
    const __m512d b = _mm512_set1_pd(by);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v[3];
        load16(d + i, v);
        __m512 x = gather16(v, &p);
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
        __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
        lo = divide ? _mm512_div_pd(lo, b) : _mm512_mul_pd(lo, b);
        hi = divide ? _mm512_div_pd(hi, b) : _mm512_mul_pd(hi, b);
        __m512 y = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo))),
                                                       _mm256_castps_pd(_mm512_cvtpd_ps(hi)), 1));
        put_p16(v, put, y);
        store16(d + i, v);
    }
    return i;
}

/* AVX2: 8 candidates in three 256-bit loads. A field is permuted out of each
 * load and the three are blended (candidates 0-2 | 3-4 | 5-7 for the logit,
 * 0-1 | 2-4 | 5-7 for p); p goes back into the ints whose field is 2, which
 * are the ints of the logit one load later (masks 0x24, 0x49, 0x92). */
static const int32_t LOGIT8[3][8] = {{1, 4, 7, 0, 0, 0, 0, 0}, {0, 0, 0, 2, 5, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 3, 6}};
static const int32_t P8[3][8] = {{2, 5, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 3, 6, 0, 0, 0}, {0, 0, 0, 0, 0, 1, 4, 7}};
static const int32_t PUT8[3][8] = {{0, 0, 0, 1, 1, 1, 2, 2}, {2, 3, 3, 3, 4, 4, 4, 5}, {5, 5, 6, 6, 6, 7, 7, 7}};

TM_EXPF_AVX2 static inline void load8(const tm_token_data *d, __m256 v[3]) {
    const float *f = (const float *)(const void *)d;
    for (int k = 0; k < 3; k++) v[k] = _mm256_loadu_ps(f + 8 * k);
}

TM_EXPF_AVX2 static inline void store8(tm_token_data *d, const __m256 v[3]) {
    float *f = (float *)(void *)d;
    for (int k = 0; k < 3; k++) _mm256_storeu_ps(f + 8 * k, v[k]);
}

TM_EXPF_AVX2 static inline __m256 logit8(const __m256 v[3], const __m256i idx[3]) {
    __m256 a = _mm256_permutevar8x32_ps(v[0], idx[0]), b = _mm256_permutevar8x32_ps(v[1], idx[1]);
    return _mm256_blend_ps(_mm256_blend_ps(a, b, 0x18), _mm256_permutevar8x32_ps(v[2], idx[2]), 0xE0);
}

TM_EXPF_AVX2 static inline __m256 p8(const __m256 v[3], const __m256i idx[3]) {
    __m256 a = _mm256_permutevar8x32_ps(v[0], idx[0]), b = _mm256_permutevar8x32_ps(v[1], idx[1]);
    return _mm256_blend_ps(_mm256_blend_ps(a, b, 0x1C), _mm256_permutevar8x32_ps(v[2], idx[2]), 0xE0);
}

TM_EXPF_AVX2 static inline void put_p8(__m256 v[3], const __m256i put[3], __m256 p) {
    v[0] = _mm256_blend_ps(v[0], _mm256_permutevar8x32_ps(p, put[0]), 0x24);
    v[1] = _mm256_blend_ps(v[1], _mm256_permutevar8x32_ps(p, put[1]), 0x49);
    v[2] = _mm256_blend_ps(v[2], _mm256_permutevar8x32_ps(p, put[2]), 0x92);
}

TM_EXPF_AVX2 static inline void load_indices8(const int32_t table[3][8], __m256i idx[3]) {
    for (int k = 0; k < 3; k++) idx[k] = _mm256_loadu_si256((const __m256i *)(const void *)table[k]);
}

TM_EXPF_AVX2 static size_t fill_avx2(tm_token_data *d, const float *logits, size_t n) {
    __m256i put[3];
    load_indices8(PUT8, put);
    __m256i ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    size_t i = 0;
    for (; i + 8 <= n && i + 8 <= (size_t)INT32_MAX; i += 8, ids = _mm256_add_epi32(ids, _mm256_set1_epi32(8))) {
        __m256 x = _mm256_loadu_ps(logits + i);
        x = _mm256_blendv_ps(x, _mm256_set1_ps(-INFINITY), _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        __m256 id = _mm256_castsi256_ps(ids), v[3];
        /* ids where the field is 0, logits where it is 1 (the p ints of one load
         * earlier: 0x92, 0x24, 0x49), zero where it is 2 */
        v[0] = _mm256_blend_ps(_mm256_permutevar8x32_ps(id, put[0]), _mm256_permutevar8x32_ps(x, put[0]), 0x92);
        v[1] = _mm256_blend_ps(_mm256_permutevar8x32_ps(id, put[1]), _mm256_permutevar8x32_ps(x, put[1]), 0x24);
        v[2] = _mm256_blend_ps(_mm256_permutevar8x32_ps(id, put[2]), _mm256_permutevar8x32_ps(x, put[2]), 0x49);
        put_p8(v, put, _mm256_setzero_ps());
        store8(d + i, v);
    }
    return i;
}

TM_EXPF_AVX2 static size_t max_logit_avx2(const tm_token_data *d, size_t n, float *max) {
    __m256i idx[3];
    load_indices8(LOGIT8, idx);
    __m256 m = _mm256_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v[3];
        load8(d + i, v);
        m = _mm256_max_ps(logit8(v, idx), m);
    }
    float lanes[8], best = -INFINITY;
    _mm256_storeu_ps(lanes, m);
    for (int k = 0; k < 8; k++) best = lanes[k] > best ? lanes[k] : best;
    *max = best;
    return i;
}

TM_EXPF_AVX2 static size_t at_least_avx2(const tm_token_data *d, size_t n, float raise, float bound, uint64_t *bits,
                                         size_t *count) {
    __m256i idx[3];
    load_indices8(LOGIT8, idx);
    const __m256 r = _mm256_set1_ps(raise), b = _mm256_set1_ps(bound);
    size_t i = 0, total = 0;
    for (; i + 64 <= n; i += 64) {
        uint64_t word = 0;
        for (int q = 0; q < 8; q++) {
            __m256 v[3];
            load8(d + i + 8 * q, v);
            __m256 ge = _mm256_cmp_ps(_mm256_add_ps(logit8(v, idx), r), b, _CMP_GE_OQ);
            word |= (uint64_t)(unsigned)_mm256_movemask_ps(ge) << (8 * q);
        }
        bits[i / 64] = word;
        total += (size_t)__builtin_popcountll(word);
    }
    *count = total;
    return i;
}

TM_EXPF_AVX2 static size_t exp_avx2(tm_token_data *d, size_t n, float shift, bool nan_as_zero, double *sum) {
    __m256i idx[3], put[3];
    load_indices8(LOGIT8, idx);
    load_indices8(PUT8, put);
    double total = *sum;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v[3];
        load8(d + i, v);
        __m256 e = tm_expf_8_avx2(_mm256_sub_ps(logit8(v, idx), _mm256_set1_ps(shift)));
        if (nan_as_zero) e = _mm256_and_ps(e, _mm256_cmp_ps(e, _mm256_setzero_ps(), _CMP_GE_OQ));
        put_p8(v, put, e);
        store8(d + i, v);
        float lanes[8];
        _mm256_storeu_ps(lanes, e);
        for (int k = 0; k < 8; k++) total += lanes[k];
    }
    *sum = total;
    return i;
}

TM_EXPF_AVX2 static size_t scale_avx2(tm_token_data *d, size_t n, double by, bool divide) {
    __m256i idx[3], put[3];
    load_indices8(P8, idx);
    load_indices8(PUT8, put);
    const __m256d b = _mm256_set1_pd(by);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v[3];
        load8(d + i, v);
        __m256 x = p8(v, idx);
        __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(x)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
        lo = divide ? _mm256_div_pd(lo, b) : _mm256_mul_pd(lo, b);
        hi = divide ? _mm256_div_pd(hi, b) : _mm256_mul_pd(hi, b);
        put_p8(v, put, _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo)));
        store8(d + i, v);
    }
    return i;
}
#endif

void tm_candidates_fill(tm_token_data *d, const float *logits, size_t n) {
    size_t i = 0;
#if defined(__x86_64__) || defined(__i386__)
    if (tm_cpu_has(TM_CPU_AVX512F)) i = fill_avx512(d, logits, n);
    else if (tm_cpu_has(TM_CPU_AVX2)) i = fill_avx2(d, logits, n);
#endif
    for (; i < n; i++) d[i] = (tm_token_data){(int32_t)i, isnan(logits[i]) ? -INFINITY : logits[i], 0.0f};
}

/* The largest value is the same whatever the order of the comparisons (equal
 * values are equal bits, but for -0 and +0, which give the same softmax);
 * `x > m ? x : m` passes NaNs over as the vector maxima do. */
float tm_candidates_max_logit(const tm_token_data *d, size_t n) {
    float max = -INFINITY;
    size_t i = 0;
#if defined(__x86_64__) || defined(__i386__)
    if (tm_cpu_has(TM_CPU_AVX512F)) i = max_logit_avx512(d, n, &max);
    else if (tm_cpu_has(TM_CPU_AVX2)) i = max_logit_avx2(d, n, &max);
#endif
    for (; i < n; i++) max = d[i].logit > max ? d[i].logit : max;
    return max;
}

size_t tm_candidates_at_least(const tm_token_data *d, size_t n, float raise, float bound, uint64_t *bits) {
    size_t i = 0, count = 0;
#if defined(__x86_64__) || defined(__i386__)
    if (tm_cpu_has(TM_CPU_AVX512F)) i = at_least_avx512(d, n, raise, bound, bits, &count);
    else if (tm_cpu_has(TM_CPU_AVX2)) i = at_least_avx2(d, n, raise, bound, bits, &count);
#endif
    for (; i < n; i += 64) {
        uint64_t word = 0;
        for (size_t j = 0; j < 64 && i + j < n; j++) word |= (uint64_t)(d[i + j].logit + raise >= bound) << j;
        bits[i / 64] = word;
        count += (size_t)__builtin_popcountll(word);
    }
    return count;
}

double tm_candidates_exp(tm_token_data *d, size_t n, float shift, bool nan_as_zero) {
    double sum = 0.0;
    size_t i = 0;
#if defined(__x86_64__) || defined(__i386__)
    if (tm_cpu_has(TM_CPU_AVX512F)) i = exp_avx512(d, n, shift, nan_as_zero, &sum);
    else if (tm_cpu_has(TM_CPU_AVX2) && tm_cpu_has(TM_CPU_FMA)) i = exp_avx2(d, n, shift, nan_as_zero, &sum);
#endif
    for (; i < n; i++) {
        float p = expf(d[i].logit - shift);
        p = nan_as_zero && !(p >= 0.0f) ? 0.0f : p;
        d[i].p = p;
        sum += p;
    }
    return sum;
}

static void candidates_scale(tm_token_data *d, size_t n, double by, bool divide) {
    size_t i = 0;
#if defined(__x86_64__) || defined(__i386__)
    if (tm_cpu_has(TM_CPU_AVX512F)) i = scale_avx512(d, n, by, divide);
    else if (tm_cpu_has(TM_CPU_AVX2)) i = scale_avx2(d, n, by, divide);
#endif
    for (; i < n; i++) d[i].p = (float)(divide ? (double)d[i].p / by : (double)d[i].p * by);
}

void tm_candidates_divide_p(tm_token_data *d, size_t n, double divisor) { candidates_scale(d, n, divisor, true); }

void tm_candidates_multiply_p(tm_token_data *d, size_t n, double factor) { candidates_scale(d, n, factor, false); }
