/* The EXP-edit / ITS-edit permutation test's fast path for null keys: 16
 * null keys side by side in the float32 lanes of one AVX-512 register, their
 * cost tables built in those lanes (xoshiro256** on 64-bit lanes, a
 * vectorised log) and aligned with the same recurrence as the exact double
 * path (exp_edit_detect.c). It exists because a detected text needs every
 * null key and the exact path spends most of its time in scalar log and in
 * a 4-key double alignment. Its values are only approximations: the caller
 * (exp_edit_detect.c) carries a rigorous error bound for each of them and
 * recomputes exactly every null key whose fast value lies within the bound
 * of the observed statistic, so counts and p-values never depend on this
 * file's rounding. It must never be used where the CPU lacks AVX-512F/VL/DQ
 * (tm_exp_edit_fast_available says; TM_NO_AVX512 turns it off), never
 * allocate, print or abort, and never return a cost further than TM_EXP_EDIT_FAST_EPS_EXP (EXP) or
 * TM_EXP_EDIT_FAST_EPS_ITS (ITS) from the exact path's double cost
 * (tests/test_exp_edit_fast.c checks the EXP log exhaustively over every
 * float mantissa). */
#include "exp_edit_fast.h"

#include "tracemark/core.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX512_KERNEL 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl")))
#else
#define HAVE_AVX512_KERNEL 0
#endif

bool tm_exp_edit_fast_available(void) {
#if HAVE_AVX512_KERNEL
    /* tm_cpu_has for what it knows (and TM_NO_AVX512 / TM_NO_AVX2 turn the
     * fast path off with the other AVX-512 kernels); DQ it does not list. */
    if (!tm_cpu_has(TM_CPU_AVX512F) || !tm_cpu_has(TM_CPU_AVX512VL)) return false;
    return __builtin_cpu_supports("avx512dq"); /* libgcc's constructor has filled its table */
#else
    return false;
#endif
}

#if HAVE_AVX512_KERNEL

/* 16 xoshiro256** generators: word w of lanes 0-7 in s[w][0], lanes 8-15 in s[w][1]. */
typedef struct {
    __m512i s[4][2];
} xoshiro16;

/* One output of each of 8 generators, advancing them (Blackman & Vigna's
 * xoshiro256**: result = rotl(s1 * 5, 7) * 9; then the xorshift update, the
 * three-way XORs as ternary logic, 0x96 = a ^ b ^ c). */
AVX512 static inline __m512i xoshiro8_next(__m512i *s0, __m512i *s1, __m512i *s2, __m512i *s3) {
    __m512i a = *s0, b = *s1, c = *s2, d = *s3;
    /* Multiplies, not shift-and-add: the shift units are this loop's
     * bottleneck (the empty asm keeps GCC from turning them back). */
    __m512i five = _mm512_set1_epi64(5), nine = _mm512_set1_epi64(9);
    __asm__("" : "+v"(five), "+v"(nine));
    __m512i r = _mm512_rol_epi64(_mm512_mullo_epi64(b, five), 7);
    r = _mm512_mullo_epi64(r, nine);
    __m512i t = _mm512_slli_epi64(b, 17);
    *s1 = _mm512_ternarylogic_epi64(b, c, a, 0x96); /* s1 ^ (s2 ^ s0) */
    *s0 = _mm512_ternarylogic_epi64(a, d, b, 0x96); /* s0 ^ (s3 ^ s1) */
    *s2 = _mm512_ternarylogic_epi64(c, a, t, 0x96); /* s2 ^ s0 ^ t */
    *s3 = _mm512_rol_epi64(_mm512_xor_si512(d, b), 45);
    return r;
}

/* log(((x >> 12) + 0.5) 2^-52) - shift for 16 outputs x (two halves of 8),
 * in float: w = (x >> 11) | 1 = 2 (x >> 12) + 1 is the value times 2^53;
 * f = float(w 2^11) (relative error <= 2^-24) = 2^e m, m in [1, 2). With j
 * the top four bits of m's fraction and q_j = float(1 / c_j) for c_j the
 * middle of j's interval, log m = log(m q_j) - log(q_j), where r = m q_j - 1
 * (one fused rounding) is within 1/32 of 0 and log(1 + r) = r - r^2/2 +
 * r^3/3 to 2.5e-7. The table holds -log(q_j) - 64 ln 2 - shift (from double),
 * so the result is e ln 2 + that + the cubic. tests/test_exp_edit_fast.c
 * measures the whole against libm over every float mantissa. */
AVX512 static inline __m512 stream_log16(__m512i xa, __m512i xb, __m512 q, __m512 offset) {
    /* w 2^11 = (x with bits 0-10 cleared and bit 11 set): one ternary logic op, (x & high) | bit. */
    const __m512i high = _mm512_set1_epi64((long long)~UINT64_C(0x7FF)), bit = _mm512_set1_epi64(0x800);
    __m256 fa = _mm512_cvtepu64_ps(_mm512_ternarylogic_epi64(xa, high, bit, 0xEA));
    __m256 fb = _mm512_cvtepu64_ps(_mm512_ternarylogic_epi64(xb, high, bit, 0xEA));
    __m512 f = _mm512_insertf32x8(_mm512_castps256_ps512(fa), fb, 1);
    __m512 e = _mm512_getexp_ps(f);
    __m512 m = _mm512_getmant_ps(f, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
    __m512i j = _mm512_srli_epi32(_mm512_castps_si512(m), 19); /* the permutes read its low four bits */
    __m512 qj = _mm512_permutexvar_ps(j, q);
    __m512 lj = _mm512_permutexvar_ps(j, offset);
    __m512 r = _mm512_fmsub_ps(m, qj, _mm512_set1_ps(1.0f));
    __m512 c = _mm512_fmadd_ps(r, _mm512_set1_ps(1.0f / 3.0f), _mm512_set1_ps(-0.5f));
    __m512 p = _mm512_fmadd_ps(_mm512_mul_ps(r, r), c, r);
    return _mm512_fmadd_ps(e, _mm512_set1_ps(0.693147180559945f), _mm512_add_ps(lj, p));
}

/* The two 16-entry tables of stream_log16. */
AVX512 static void log_tables(float shift, __m512 *q, __m512 *offset) {
    float qs[16], os[16];
    for (int j = 0; j < 16; j++) {
        qs[j] = (float)(1.0 / (1.0 + (j + 0.5) / 16.0));
        os[j] = (float)(-log((double)qs[j]) - 64 * 0.69314718055994531 - (double)shift);
    }
    *q = _mm512_loadu_ps(qs);
    *offset = _mm512_loadu_ps(os);
}

/* Cost rows of one distinct token (n_rows cells) into out, from the 16 streams. */
AVX512 static inline void exp_rows(xoshiro16 *g, size_t n_rows, __m512 q, __m512 offset, float *out, __m512 *low) {
    for (size_t c = 0; c < n_rows; c++) {
        __m512i xa = xoshiro8_next(&g->s[0][0], &g->s[1][0], &g->s[2][0], &g->s[3][0]);
        __m512i xb = xoshiro8_next(&g->s[0][1], &g->s[1][1], &g->s[2][1], &g->s[3][1]);
        __m512 cost = stream_log16(xa, xb, q, offset); /* already less shift */
        *low = _mm512_min_ps(*low, cost);
        _mm512_store_ps(out + c * TM_EXP_EDIT_FAST_LANES, cost);
    }
}

AVX512 static void xoshiro16_load(xoshiro16 *g, const uint64_t *state) {
    for (int w = 0; w < 4; w++)
        for (int h = 0; h < 2; h++) {
            uint64_t words[8];
            for (int l = 0; l < 8; l++) words[l] = state[(8 * h + l) * 4 + w];
            g->s[w][h] = _mm512_loadu_si512(words);
        }
}

/* ITS cost rows of distinct token t: |u[r] - eta[t]| - shift. */
AVX512 static inline void its_rows(const float *eta, const float *u, size_t t, size_t n_rows, __m512 shifts,
                                   float *out) {
    __m512 e = _mm512_loadu_ps(eta + t * TM_EXP_EDIT_FAST_LANES);
    for (size_t r = 0; r < n_rows; r++) {
        __m512 d = _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(u + r * TM_EXP_EDIT_FAST_LANES), e));
        _mm512_store_ps(out + r * TM_EXP_EDIT_FAST_LANES, _mm512_sub_ps(d, shifts));
    }
}

/* The exact path's alignment (exp_edit_detect.c, align_block) in float, in
 * another but equivalent form: with D the recurrence of align_block and
 * H[i][r] = D[i][r] - (r + i) gamma, both gap moves lose their addition,
 * H[i][r] = min(H[i-1][r-1] + (d - 2 gamma), H[i-1][r], H[i][r-1]),
 * H[0][r] = -r gamma, H[i][0] = 0, phi = min_r H[k][r] + (r + k) gamma:
 * one addition and two minima a cell, and the table holds d - 2 gamma. In
 * real arithmetic it equals align_block's value; the bound of
 * exp_edit_detect.c (lane_bound) covers the float roundings. Each distinct
 * token's rows (EXP from state's streams, ITS from eta and u) are made when
 * the alignment first meets it (distinct tokens are numbered in order of first appearance, and
 * blocks advance through the text), so they are still in cache for that row. */
/* Rows i0 .. i0 + R - 1 of the recurrence in one pass over the columns: row
 * i0 - 1 is read from prev, the last row written to cur, the rows between
 * stay in registers (row j at column r needs row j - 1 at r - 1 and r, both
 * just computed), so memory traffic per cell falls R-fold. Each cell's
 * operations and their order are those of a single-row pass. */
#define ALIGN_PASS(R)                                                                                                 \
    do {                                                                                                              \
        const float *costs[R];                                                                                        \
        __m512 left[R], base[R];                                                                                      \
        for (int q = 0; q < (R); q++) {                                                                               \
            costs[q] = table + (size_t)text->index[start + i - 1 + (size_t)q] * n * L;                                \
            left[q] = _mm512_setzero_ps(); /* H[i][0] = 0 */                                                          \
        }                                                                                                             \
        base[0] = _mm512_load_ps(prev);                                                                               \
        for (int q = 1; q < (R); q++) base[q] = left[q - 1];                                                          \
        _mm512_store_ps(cur, left[(R) - 1]);                                                                          \
        size_t r = 1;                                                                                                 \
        while (r <= columns) {                                                                                        \
            size_t span = columns + 1 - r < n ? columns + 1 - r : n;                                                  \
            const float *above_p = prev + r * L;                                                                      \
            float *out_p = cur + r * L;                                                                               \
            for (size_t j = 0; j < span; j++) {                                                                       \
                __m512 above = _mm512_load_ps(above_p + j * L);                                                       \
                for (int q = 0; q < (R); q++) {                                                                       \
                    __m512 diagonal = _mm512_add_ps(base[q], _mm512_load_ps(costs[q] + j * L));                       \
                    __m512 value = _mm512_min_ps(diagonal, above);                                                    \
                    base[q] = above;                                                                                  \
                    left[q] = _mm512_min_ps(value, left[q]);                                                          \
                    above = left[q];                                                                                  \
                }                                                                                                     \
                _mm512_store_ps(out_p + j * L, left[(R) - 1]);                                                        \
            }                                                                                                         \
            r += span;                                                                                                \
        }                                                                                                             \
    } while (0)

AVX512 static void align_avx512(const tm_exp_edit_fast_text *text, float *table, float *previous, float *current,
                                const uint64_t *state, const float *eta, const float *u,
                                float out[TM_EXP_EDIT_FAST_LANES], float minimum[TM_EXP_EDIT_FAST_LANES]) {
    enum { L = TM_EXP_EDIT_FAST_LANES, ROWS = 4 };
    xoshiro16 g;
    size_t generated = SIZE_MAX;
    __m512 low = _mm512_set1_ps(INFINITY);
    __m512 log_q = _mm512_setzero_ps(), log_offset = _mm512_setzero_ps();
    if (state) {
        xoshiro16_load(&g, state);
        generated = 0;
        log_tables(2 * text->gap, &log_q, &log_offset);
    }
    if (eta) generated = 0;
    const size_t k = text->block, n = text->n_rows, columns = text->n_rows + 2 * text->block;
    const size_t stride = text->block_stride;
    const float shift = 2 * text->gap; /* exact: a power of two times a float */
    __m512 phi = _mm512_set1_ps(INFINITY);
    for (size_t b = 0; b < text->n_blocks; b++) {
        size_t start = b + 1 == text->n_blocks ? text->n_text - k : b * stride;
        float *prev = previous, *cur = current;
        for (size_t r = 0; r <= columns; r++) _mm512_store_ps(prev + r * L, _mm512_set1_ps(text->row_init[r]));
        for (size_t i = 1; i <= k;) {
            size_t rows = k + 1 - i >= ROWS ? ROWS : 1;
            for (size_t q = 0; q < rows; q++) {
                size_t token = text->index[start + i - 1 + q];
                while (generated <= token) { /* first appearance: token == generated */
                    if (state) exp_rows(&g, n, log_q, log_offset, table + generated * n * L, &low);
                    else its_rows(eta, u, generated, n, _mm512_set1_ps(shift), table + generated * n * L);
                    generated++;
                }
            }
            if (rows == ROWS) ALIGN_PASS(4);
            else ALIGN_PASS(1);
            i += rows;
            float *swap = prev;
            prev = cur;
            cur = swap;
        }
        for (size_t r = 0; r <= columns; r++)
            phi = _mm512_min_ps(phi, _mm512_add_ps(_mm512_load_ps(prev + r * L), _mm512_set1_ps(text->row_end[r])));
    }
    _mm512_storeu_ps(out, phi);
    if (minimum) _mm512_storeu_ps(minimum, low);
}

AVX512 static void stream_costs_avx512(const uint64_t *x, size_t n, float shift, float *out) {
    __m512 q, offset;
    log_tables(shift, &q, &offset);
    for (size_t i = 0; i < n; i += 16) {
        uint64_t words[16] = {0};
        for (size_t j = 0; j < 16 && i + j < n; j++) words[j] = x[i + j];
        float values[16];
        _mm512_storeu_ps(values, stream_log16(_mm512_loadu_si512(words), _mm512_loadu_si512(words + 8), q, offset));
        for (size_t j = 0; j < 16 && i + j < n; j++) out[i + j] = values[j];
    }
}

#endif

void tm_exp_edit_fast_align(const tm_exp_edit_fast_text *text, float *table, float *previous, float *current,
                            const uint64_t *state, const float *eta, const float *u,
                            float out[TM_EXP_EDIT_FAST_LANES], float minimum[TM_EXP_EDIT_FAST_LANES]) {
#if HAVE_AVX512_KERNEL
    align_avx512(text, table, previous, current, state, eta, u, out, minimum);
#else
    (void)text, (void)table, (void)previous, (void)current, (void)state, (void)eta, (void)u, (void)minimum;
    for (int l = 0; l < TM_EXP_EDIT_FAST_LANES; l++) out[l] = NAN;
#endif
}

void tm_exp_edit_fast_stream_costs(const uint64_t *x, size_t n, float shift, float *out) {
#if HAVE_AVX512_KERNEL
    stream_costs_avx512(x, n, shift, out);
#else
    for (size_t i = 0; i < n; i++) out[i] = NAN;
    (void)x, (void)shift;
#endif
}
