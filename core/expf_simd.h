/* glibc's expf, vectorised, bit for bit: the method of
 * sysdeps/ieee754/flt-32/e_expf.c as its FMA build runs it (the same
 * double-precision steps, fused where it fuses them, with the table of
 * 2^(i/32) and the polynomial it uses), on eight doubles per AVX-512 vector
 * or four per AVX2 vector. Lanes outside glibc's fast range (|x| >= 88, inf,
 * NaN) are handed to expf itself. The results are libm's bits, which the
 * forward pass needs (llama2.c's run.c uses expf, and its greedy text is
 * matched exactly) and the samplers need (a softmax decides which token a
 * seed draws). Included by core/expf.c and generator/kernels.c only; the
 * tests compare it with expf over whole ranges on every forced path. */
#ifndef TRACEMARK_CORE_EXPF_SIMD_H
#define TRACEMARK_CORE_EXPF_SIMD_H

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

static const uint64_t tm_expf_table[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51, 0x3fef72b83c7d517b,
    0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1, 0x3fef06fe0a31b715, 0x3feef1a7373aa9cb,
    0x3feedea64c123422, 0x3feece086061892d, 0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429,
    0x3feea47eb03a5585, 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d, 0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069, 0x3fef5818dcfba487, 0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da, 0x3fefd0765b6e4540}; /* uint(2^(i/32)) - (i << 47) */

#define TM_EXPF_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define TM_EXPF_AVX2 __attribute__((target("avx2,fma")))

/* ---- AVX-512 ------------------------------------------------------------------ */

TM_EXPF_AVX512 static inline void tm_expf_load_table(__m512d table[4]) {
    for (int i = 0; i < 4; i++) table[i] = _mm512_loadu_pd((const double *)(const void *)(tm_expf_table + 8 * i));
}

/* expf of eight floats in the fast range (the caller fixes the others). */
TM_EXPF_AVX512 static inline __m256 tm_expf_8_avx512(__m256 x, const __m512d *table) {
    const __m512d inverse_ln2 = _mm512_set1_pd(0x1.71547652b82fep+5), shift = _mm512_set1_pd(0x1.8p+52);
    __m512d xd = _mm512_cvtps_pd(x);
    __m512d kd = _mm512_fmadd_pd(inverse_ln2, xd, shift);
    __m512i ki = _mm512_castpd_si512(kd);
    kd = _mm512_sub_pd(kd, shift);
    __m512d r = _mm512_fmsub_pd(inverse_ln2, xd, kd);
    __m512i index = _mm512_and_si512(ki, _mm512_set1_epi64(31));
    __m512d low = _mm512_permutex2var_pd(table[0], index, table[1]);
    __m512d high = _mm512_permutex2var_pd(table[2], index, table[3]);
    __m512d t = _mm512_mask_blend_pd(_mm512_test_epi64_mask(index, _mm512_set1_epi64(16)), low, high);
    __m512d s = _mm512_castsi512_pd(_mm512_add_epi64(_mm512_castpd_si512(t), _mm512_slli_epi64(ki, 47)));
    __m512d z = _mm512_fmadd_pd(r, _mm512_set1_pd(0x1.c6af84b912394p-20), _mm512_set1_pd(0x1.ebfce50fac4f3p-13));
    __m512d r2 = _mm512_mul_pd(r, r);
    __m512d y = _mm512_fmadd_pd(r, _mm512_set1_pd(0x1.62e42ff0c52d6p-6), _mm512_set1_pd(1.0));
    y = _mm512_fmadd_pd(z, r2, y);
    return _mm512_cvtpd_ps(_mm512_mul_pd(y, s));
}

/* expf of 16 floats, every lane. */
TM_EXPF_AVX512 static inline __m512 tm_expf_16_avx512(__m512 x, const __m512d *table) {
    __m256 lo = tm_expf_8_avx512(_mm512_castps512_ps256(x), table);
    __m256 hi = tm_expf_8_avx512(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)), table);
    __m512 e = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
    /* glibc's slow path: top 12 bits of |x| at or above those of 88.0f */
    __m512i top = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(x), 20), _mm512_set1_epi32(0x7ff));
    __mmask16 slow = _mm512_cmpgt_epi32_mask(top, _mm512_set1_epi32(0x42a));
    if (slow) {
        float in[16], out[16];
        _mm512_storeu_ps(in, x);
        _mm512_storeu_ps(out, e);
        for (int i = 0; i < 16; i++)
            if (slow >> i & 1) out[i] = expf(in[i]);
        e = _mm512_loadu_ps(out);
    }
    return e;
}

/* ---- AVX2 ----------------------------------------------------------------------- */

/* expf of four floats in the fast range: the steps above on four doubles,
 * the table read with a gather. */
TM_EXPF_AVX2 static inline __m128 tm_expf_4_avx2(__m128 x) {
    const __m256d inverse_ln2 = _mm256_set1_pd(0x1.71547652b82fep+5), shift = _mm256_set1_pd(0x1.8p+52);
    __m256d xd = _mm256_cvtps_pd(x);
    __m256d kd = _mm256_fmadd_pd(inverse_ln2, xd, shift);
    __m256i ki = _mm256_castpd_si256(kd);
    kd = _mm256_sub_pd(kd, shift);
    __m256d r = _mm256_fmsub_pd(inverse_ln2, xd, kd);
    __m256i index = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
    __m256d t = _mm256_i64gather_pd((const double *)(const void *)tm_expf_table, index, 8);
    __m256d s = _mm256_castsi256_pd(_mm256_add_epi64(_mm256_castpd_si256(t), _mm256_slli_epi64(ki, 47)));
    __m256d z = _mm256_fmadd_pd(r, _mm256_set1_pd(0x1.c6af84b912394p-20), _mm256_set1_pd(0x1.ebfce50fac4f3p-13));
    __m256d r2 = _mm256_mul_pd(r, r);
    __m256d y = _mm256_fmadd_pd(r, _mm256_set1_pd(0x1.62e42ff0c52d6p-6), _mm256_set1_pd(1.0));
    y = _mm256_fmadd_pd(z, r2, y);
    return _mm256_cvtpd_ps(_mm256_mul_pd(y, s));
}

/* expf of 8 floats, every lane. */
TM_EXPF_AVX2 static inline __m256 tm_expf_8_avx2(__m256 x) {
    __m256 e = _mm256_set_m128(tm_expf_4_avx2(_mm256_extractf128_ps(x, 1)), tm_expf_4_avx2(_mm256_castps256_ps128(x)));
    __m256i top = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(x), 20), _mm256_set1_epi32(0x7ff));
    int slow = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(top, _mm256_set1_epi32(0x42a))));
    if (slow) {
        float in[8], out[8];
        _mm256_storeu_ps(in, x);
        _mm256_storeu_ps(out, e);
        for (int i = 0; i < 8; i++)
            if (slow >> i & 1) out[i] = expf(in[i]);
        e = _mm256_loadu_ps(out);
    }
    return e;
}
#endif
#endif
