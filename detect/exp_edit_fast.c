/* The EXP-edit / ITS-edit permutation test's fast path for null keys: 16
 * null keys side by side in float32 lanes (one AVX-512 register, or two
 * halves of 8 in AVX2 registers one after the other), their cost tables built
 * in those lanes (xoshiro256** on 64-bit lanes, a vectorised log) and aligned
 * with the same recurrence as the exact double path (exp_edit_detect.c). It
 * exists because a detected text needs every null key and the exact path
 * spends most of its time in scalar log and in a 4-key double alignment. Its
 * values are only approximations: the caller (exp_edit_detect.c) carries a
 * rigorous error bound for each of them and recomputes exactly every null
 * key whose fast value lies within the bound of the observed statistic, so
 * counts and p-values never depend on this file's rounding, nor on which
 * kernel ran. AVX-512 also has a coarse tier for EXP (a four-operation
 * log, the key as a cycle of n rows): lower bounds, for the null keys of a
 * detected text, which lie far above phi. It must never run a kernel the
 * CPU lacks (tm_exp_edit_fast_runs says; TM_NO_AVX512 leaves AVX2,
 * TM_NO_AVX2 turns both off), never allocate, print or abort, and never
 * return a cost further than TM_EXP_EDIT_FAST_EPS_EXP (EXP),
 * TM_EXP_EDIT_FAST_EPS_COARSE (coarse tier) or TM_EXP_EDIT_FAST_EPS_ITS
 * (ITS) from the exact path's double cost (tests/test_exp_edit_fast.c checks
 * each EXP log exhaustively over every float mantissa). */
#include "exp_edit_fast.h"

#include "tracemark/core.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX512_KERNEL 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl")))
#define AVX2 __attribute__((target("avx2,fma")))
#else
#define HAVE_AVX512_KERNEL 0
#endif

bool tm_exp_edit_fast_runs(tm_exp_edit_kernel kernel) {
#if HAVE_AVX512_KERNEL
    /* tm_cpu_has for what it knows (and TM_NO_AVX512 / TM_NO_AVX2 turn the
     * kernels off with the other AVX-512 / AVX2 kernels); DQ it does not list. */
    switch (kernel) {
    case TM_EXP_EDIT_KERNEL_AVX512:
        if (!tm_cpu_has(TM_CPU_AVX512F) || !tm_cpu_has(TM_CPU_AVX512VL)) return false;
        return __builtin_cpu_supports("avx512dq"); /* libgcc's constructor has filled its table */
    case TM_EXP_EDIT_KERNEL_AVX2:
        return tm_cpu_has(TM_CPU_AVX2) && tm_cpu_has(TM_CPU_FMA);
    default:
        return false;
    }
#else
    (void)kernel;
    return false;
#endif
}

tm_exp_edit_kernel tm_exp_edit_fast_best(void) {
    if (tm_exp_edit_fast_runs(TM_EXP_EDIT_KERNEL_AVX512)) return TM_EXP_EDIT_KERNEL_AVX512;
    if (tm_exp_edit_fast_runs(TM_EXP_EDIT_KERNEL_AVX2)) return TM_EXP_EDIT_KERNEL_AVX2;
    return TM_EXP_EDIT_KERNEL_NONE;
}

bool tm_exp_edit_fast_available(void) { return tm_exp_edit_fast_best() != TM_EXP_EDIT_KERNEL_NONE; }

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

/* The coarse tier's log (tm_exp_edit_fast_align with coarse set): from a
 * float f = 2^e (1 + t) near the value times 2^32 (stream_coarse16), its
 * bits read as an integer are (e + 127 + t) 2^23, so bits 2^-23 ln 2 is
 * e ln 2 + t ln 2 + 127 ln 2, and log f = that + h(t) - 127 ln 2 with
 * h(t) = ln(1 + t) - t ln 2 in [0, 0.06]. The table holds, per sixteenth j
 * of t (the fraction's top four bits), the middle of h's range there, less
 * 127 ln 2, 32 ln 2 and shift: one conversion, one shift, one permute and
 * one FMA in place of the precise log's eleven operations, within 0.0096 of
 * log (h' = 1 / (1 + t) - ln 2 lies in [-0.19, 0.31], so h varies by at most
 * 0.31 / 16 over a sixteenth; tests/test_exp_edit_fast.c measures the whole,
 * 0.0088, over every float mantissa, as the precise log). Its
 * wider bound settles the null keys of a detected text (far from phi) all
 * the same. */
AVX512 static inline __m512 coarse_from_bits(__m512i bits, __m512 offset) {
    __m512 h = _mm512_permutexvar_ps(_mm512_srli_epi32(bits, 19), offset); /* low four bits: j */
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(bits), _mm512_set1_ps(0x1.62e430p-24f), h);
}

/* The float f: usually from the words' high halves alone, hi = x >> 32 (one
 * permute gathers the 16 of them, one conversion), f = float(hi) 2^32,
 * below the exact value by less than a factor 1 - 2^-12 (log by < 2.5e-4)
 * where hi >= 2^12; where some lane's hi is smaller (2^-20 of the words) the
 * 16 go through stream_log16's full 64-bit conversion instead (divided by
 * 2^32 in the exponent field, so that one table, for the 2^32 scale, serves). */
AVX512 static inline __m512 stream_coarse16(__m512i xa, __m512i xb, __m512 offset) {
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512i hi = _mm512_permutex2var_epi32(xa, odd, xb);
    if (__builtin_expect(_mm512_cmplt_epu32_mask(hi, _mm512_set1_epi32(1 << 12)) != 0, 0)) {
        const __m512i high = _mm512_set1_epi64((long long)~UINT64_C(0x7FF)), bit = _mm512_set1_epi64(0x800);
        __m256 fa = _mm512_cvtepu64_ps(_mm512_ternarylogic_epi64(xa, high, bit, 0xEA));
        __m256 fb = _mm512_cvtepu64_ps(_mm512_ternarylogic_epi64(xb, high, bit, 0xEA));
        __m512i bits = _mm512_castps_si512(_mm512_insertf32x8(_mm512_castps256_ps512(fa), fb, 1));
        return coarse_from_bits(_mm512_sub_epi32(bits, _mm512_set1_epi32(32 << 23)), offset); /* f 2^-32 */
    }
    return coarse_from_bits(_mm512_castps_si512(_mm512_cvtepu32_ps(hi)), offset);
}

/* The coarse table of size entries (16 or 8): per segment j of t in [0, 1),
 * the middle of h's range over it (h is concave, its maximum at t = 1 / ln 2
 * - 1), less (127 + scale) ln 2 and shift. The kernel's float ln 2 2^-23 is
 * off by a relative 2^-25 or less (< 4e-6 at these magnitudes), which the
 * test measures with the rest. */
static void coarse_table_values(float shift, int scale, int size, float *os) {
    const double ln2 = 0.69314718055994531, top = 1.0 / ln2 - 1.0;
    for (int j = 0; j < size; j++) {
        double lo = (double)j / size, hi = (double)(j + 1) / size;
        double h_lo = log1p(lo) - lo * ln2, h_hi = log1p(hi) - hi * ln2;
        double h_max = lo < top && top < hi ? log1p(top) - top * ln2 : fmax(h_lo, h_hi);
        double h_min = fmin(h_lo, h_hi);
        os[j] = (float)((h_max + h_min) / 2 - (127 + scale) * ln2 - (double)shift);
    }
}

AVX512 static __m512 coarse_table(float shift) {
    float os[16];
    coarse_table_values(shift, 32, 16, os);
    return _mm512_loadu_ps(os);
}

/* The logs' tables of size entries (16 or 8): q_j, and -log(q_j) - scale ln 2 -
 * shift (scale: the power of two the kernel's float carries beyond the value). */
static void log_table_values(float shift, int scale, int size, float *qs, float *os) {
    for (int j = 0; j < size; j++) {
        qs[j] = (float)(1.0 / (1.0 + (j + 0.5) / size));
        os[j] = (float)(-log((double)qs[j]) - scale * 0.69314718055994531 - (double)shift);
    }
}

AVX512 static void log_tables(float shift, __m512 *q, __m512 *offset) {
    float qs[16], os[16];
    log_table_values(shift, 64, 16, qs, os);
    *q = _mm512_loadu_ps(qs);
    *offset = _mm512_loadu_ps(os);
}

/* Cost rows of one distinct token (n_rows cells) into out, from the 16
 * streams, with the precise log (coarse false) or the coarse one (q unused). */
AVX512 static inline void exp_rows(xoshiro16 *g, size_t n_rows, bool coarse, __m512 q, __m512 offset, float *out,
                                   __m512 *low) {
    if (coarse) {
        for (size_t c = 0; c < n_rows; c++) {
            __m512i xa = xoshiro8_next(&g->s[0][0], &g->s[1][0], &g->s[2][0], &g->s[3][0]);
            __m512i xb = xoshiro8_next(&g->s[0][1], &g->s[1][1], &g->s[2][1], &g->s[3][1]);
            __m512 cost = stream_coarse16(xa, xb, offset); /* already less shift */
            *low = _mm512_min_ps(*low, cost);
            _mm512_store_ps(out + c * TM_EXP_EDIT_FAST_LANES, cost);
        }
        return;
    }
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
 * operations and their order are those of a single-row pass. ALIGN_START
 * sets a pass up (column 0); ALIGN_COLUMNS runs it over columns FROM .. TO
 * (column r costs key row (r - 1) mod n), so that a pass may stop between
 * columns and go on. */
#define ALIGN_START(R)                                                                                                \
    const float *costs[R];                                                                                            \
    __m512 left[R], base[R];                                                                                          \
    for (int q = 0; q < (R); q++) {                                                                                   \
        costs[q] = table + (size_t)text->index[start + i - 1 + (size_t)q] * n * L;                                    \
        left[q] = _mm512_setzero_ps(); /* H[i][0] = 0 */                                                              \
    }                                                                                                                 \
    base[0] = _mm512_load_ps(prev);                                                                                   \
    for (int q = 1; q < (R); q++) base[q] = left[q - 1];                                                              \
    _mm512_store_ps(cur, left[(R) - 1])

#define ALIGN_COLUMNS(R, FROM, TO)                                                                                    \
    do {                                                                                                              \
        size_t r = (FROM);                                                                                            \
        while (r <= (TO)) {                                                                                           \
            size_t row = (r - 1) % n, span = (TO) + 1 - r < n - row ? (TO) + 1 - r : n - row;                         \
            const float *above_p = prev + r * L;                                                                      \
            float *out_p = cur + r * L;                                                                               \
            for (size_t j = 0; j < span; j++) {                                                                       \
                __m512 above = _mm512_load_ps(above_p + j * L);                                                       \
                for (int q = 0; q < (R); q++) {                                                                       \
                    __m512 diagonal = _mm512_add_ps(base[q], _mm512_load_ps(costs[q] + (row + j) * L));               \
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

#define ALIGN_PASS(R)                                                                                                 \
    do {                                                                                                              \
        ALIGN_START(R);                                                                                               \
        ALIGN_COLUMNS(R, 1, columns);                                                                                 \
    } while (0)

/* The coarse tier's pass over a cyclic key (see align_avx512): columns 1 ..
 * n (lap 1), then n + 1 .. n + W (lap 2, where only paths that crossed
 * column n in this pass live: prev holds +inf there), H of every row at
 * column W kept from lap 1; the pass is settled where each row's lap-2
 * value at n + W, moved back by n gamma, is above its lap-1 value at W by
 * the margin (a path going on beyond n + W is then no better than the same
 * path from column W of lap 1); otherwise unsettled is set. The last row's
 * lap 2 is folded onto its columns 1 .. W and cleared to +inf. */
#define ALIGN_PASS_CYCLIC(R)                                                                                          \
    do {                                                                                                              \
        ALIGN_START(R);                                                                                               \
        ALIGN_COLUMNS(R, 1, wrap);                                                                                    \
        __m512 at_wrap[R];                                                                                            \
        for (int q = 0; q < (R); q++) at_wrap[q] = _mm512_add_ps(left[q], margin);                                    \
        ALIGN_COLUMNS(R, wrap + 1, n + wrap);                                                                         \
        for (int q = 0; q < (R); q++)                                                                                 \
            if (_mm512_cmp_ps_mask(_mm512_add_ps(left[q], lap), at_wrap[q], _CMP_GE_OQ) != 0xFFFF) unsettled = true;  \
        for (size_t p = 1; p <= wrap; p++) {                                                                          \
            __m512 folded = _mm512_add_ps(_mm512_load_ps(cur + (n + p) * L), lap);                                    \
            _mm512_store_ps(cur + p * L, _mm512_min_ps(_mm512_load_ps(cur + p * L), folded));                         \
            _mm512_store_ps(cur + (n + p) * L, _mm512_set1_ps(INFINITY));                                             \
        }                                                                                                             \
    } while (0)

AVX512 static void align_avx512(const tm_exp_edit_fast_text *text, float *table, float *previous, float *current,
                                const uint64_t *state, bool coarse, const float *eta, const float *u,
                                float out[TM_EXP_EDIT_FAST_LANES], float minimum[TM_EXP_EDIT_FAST_LANES]) {
    enum { L = TM_EXP_EDIT_FAST_LANES, ROWS = 4 };
    xoshiro16 g;
    size_t generated = SIZE_MAX;
    __m512 low = _mm512_set1_ps(INFINITY);
    __m512 log_q = _mm512_setzero_ps(), log_offset = _mm512_setzero_ps();
    if (state) {
        xoshiro16_load(&g, state);
        generated = 0;
        if (coarse) log_offset = coarse_table(2 * text->gap);
        else log_tables(2 * text->gap, &log_q, &log_offset);
    }
    if (eta) generated = 0;
    const size_t k = text->block, n = text->n_rows;
    const size_t stride = text->block_stride;
    const float shift = 2 * text->gap; /* exact: a power of two times a float */
    /* The coarse tier (EXP) aligns against the key as a cycle of n rows
     * instead of the n + 2k rows of the extended key: a relaxation (every
     * alignment with the extended key is one with the cycle, at the same
     * cost), so its phi is a lower bound, up to rounding, of the exact one,
     * and equal to it unless the best alignment with the cycle wraps around
     * it more than the extended key allows. Each pass runs n + W columns
     * instead of n + 2k (ALIGN_PASS_CYCLIC); a pass it cannot settle makes
     * every lane NaN, for the caller to compute again on the precise tier. */
    const bool cyclic = state && coarse && text->cyclic_wrap > 0;
    const size_t wrap = cyclic ? text->cyclic_wrap : 0;
    const size_t columns = cyclic ? n + wrap : text->n_rows + 2 * text->block;
    const __m512 lap = _mm512_set1_ps((float)n * text->gap), margin = _mm512_set1_ps(text->cyclic_margin);
    bool unsettled = false;
    __m512 phi = _mm512_set1_ps(INFINITY);
    for (size_t b = 0; b < text->n_blocks; b++) {
        size_t start = b + 1 == text->n_blocks ? text->n_text - k : b * stride;
        float *prev = previous, *cur = current;
        for (size_t r = 0; r <= columns; r++)
            _mm512_store_ps(prev + r * L, _mm512_set1_ps(cyclic && r > n ? INFINITY : text->row_init[r]));
        for (size_t i = 1; i <= k;) {
            size_t rows = k + 1 - i >= ROWS ? ROWS : 1;
            for (size_t q = 0; q < rows; q++) {
                size_t token = text->index[start + i - 1 + q];
                while (generated <= token) { /* first appearance: token == generated */
                    if (state) exp_rows(&g, n, coarse, log_q, log_offset, table + generated * n * L, &low);
                    else its_rows(eta, u, generated, n, _mm512_set1_ps(shift), table + generated * n * L);
                    generated++;
                }
            }
            if (cyclic && rows == ROWS) ALIGN_PASS_CYCLIC(4);
            else if (cyclic) ALIGN_PASS_CYCLIC(1);
            else if (rows == ROWS) ALIGN_PASS(4);
            else ALIGN_PASS(1);
            i += rows;
            float *swap = prev;
            prev = cur;
            cur = swap;
        }
        for (size_t r = 0; r <= columns; r++)
            phi = _mm512_min_ps(phi, _mm512_add_ps(_mm512_load_ps(prev + r * L), _mm512_set1_ps(text->row_end[r])));
    }
    _mm512_storeu_ps(out, unsettled ? _mm512_set1_ps(NAN) : phi);
    if (minimum) _mm512_storeu_ps(minimum, low);
}

AVX512 static void stream_costs_avx512(const uint64_t *x, size_t n, float shift, bool coarse, float *out) {
    __m512 q, offset;
    log_tables(shift, &q, &offset);
    if (coarse) offset = coarse_table(shift);
    for (size_t i = 0; i < n; i += 16) {
        uint64_t words[16] = {0};
        for (size_t j = 0; j < 16 && i + j < n; j++) words[j] = x[i + j];
        float values[16];
        __m512i xa = _mm512_loadu_si512(words), xb = _mm512_loadu_si512(words + 8);
        _mm512_storeu_ps(values, coarse ? stream_coarse16(xa, xb, offset) : stream_log16(xa, xb, q, offset));
        for (size_t j = 0; j < 16 && i + j < n; j++) out[i + j] = values[j];
    }
}

/* ---- AVX2 + FMA: the same computation in two halves of 8 lanes ---------------------- */

/* Four xoshiro256** generators (one per 64-bit lane) as xoshiro8_next, with
 * AVX2's operations: no 64-bit multiply or rotate, so s1 * 5 = (s1 << 2) +
 * s1, r * 9 = (r << 3) + r, and rotations are two shifts and an OR. */
AVX2 static inline __m256i xoshiro4_next(__m256i *s0, __m256i *s1, __m256i *s2, __m256i *s3) {
    __m256i a = *s0, b = *s1, c = *s2, d = *s3;
    __m256i b5 = _mm256_add_epi64(_mm256_slli_epi64(b, 2), b);
    __m256i r = _mm256_or_si256(_mm256_slli_epi64(b5, 7), _mm256_srli_epi64(b5, 57));
    r = _mm256_add_epi64(_mm256_slli_epi64(r, 3), r);
    __m256i t = _mm256_slli_epi64(b, 17);
    c = _mm256_xor_si256(c, a); /* s2 ^= s0 */
    d = _mm256_xor_si256(d, b); /* s3 ^= s1 */
    b = _mm256_xor_si256(b, c); /* s1 ^= s2 */
    a = _mm256_xor_si256(a, d); /* s0 ^= s3 */
    c = _mm256_xor_si256(c, t);
    d = _mm256_or_si256(_mm256_slli_epi64(d, 45), _mm256_srli_epi64(d, 19));
    *s0 = a, *s1 = b, *s2 = c, *s3 = d;
    return r;
}

/* ((x >> 12) + 0.5) 2^-52 = (2 (x >> 12) + 1) 2^-53 of four words, rounded
 * once to float. AVX2 converts no 64-bit integer, so through double: the bits
 * 1.0 | (x >> 12) are d = 1 + (x >> 12) 2^-52 in [1, 2), and d - (1 - 2^-53)
 * is exact (Sterbenz: 1 - 2^-53 <= d <= 2 (1 - 2^-53), and the difference
 * has 53 bits). The float is the AVX-512 kernel's float(w 2^11) times 2^-64
 * (the same value rounded the same way), so only the log's table shifts. */
AVX2 static inline __m128 stream_float4(__m256i x) {
    const __m256i one = _mm256_set1_epi64x(0x3FF0000000000000LL);
    __m256d d = _mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(x, 12), one));
    return _mm256_cvtpd_ps(_mm256_sub_pd(d, _mm256_set1_pd(1.0 - 0x1.0p-53)));
}

/* stream_log16's log for 8 values (xa: lanes 0-3, xb: lanes 4-7): exponent
 * and mantissa from the float's bits (f >= 2^-53 is normal), then an
 * 8-entry table (what one permutevar8x32 reads: j = the fraction's top three
 * bits, c_j = 1 + (j + 0.5) / 8, so |r| <= 1/16) and log(1 + r) to r^4
 * (truncation <= (1/16)^5 / 5 / (1 - 1/16) = 2.1e-7): four fewer operations
 * than AVX-512's 16 entries, which AVX2 would read as two permutes and two
 * blends. The table holds -log(q_j) - shift (no 2^64 scale to undo).
 * tests/test_exp_edit_fast.c measures it against libm over every float
 * mantissa, as the AVX-512 one. */
AVX2 static inline __m256 stream_log8(__m256i xa, __m256i xb, __m256 q, __m256 offset) {
    __m256 f = _mm256_insertf128_ps(_mm256_castps128_ps256(stream_float4(xa)), stream_float4(xb), 1);
    __m256i bits = _mm256_castps_si256(f);
    __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127)));
    __m256 m = _mm256_castsi256_ps(
        _mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFF)), _mm256_set1_epi32(0x3F800000)));
    __m256i j = _mm256_srli_epi32(bits, 20); /* low three bits: the fraction's top three */
    __m256 qj = _mm256_permutevar8x32_ps(q, j);
    __m256 lj = _mm256_permutevar8x32_ps(offset, j);
    __m256 r = _mm256_fmsub_ps(m, qj, _mm256_set1_ps(1.0f));
    __m256 c = _mm256_fmadd_ps(r, _mm256_set1_ps(-0.25f), _mm256_set1_ps(1.0f / 3.0f));
    c = _mm256_fmadd_ps(r, c, _mm256_set1_ps(-0.5f));
    __m256 p = _mm256_fmadd_ps(_mm256_mul_ps(r, r), c, r);
    return _mm256_fmadd_ps(e, _mm256_set1_ps(0.693147180559945f), _mm256_add_ps(lj, p));
}

AVX2 static void log_tables8(float shift, __m256 *q, __m256 *offset) {
    float qs[8], os[8];
    log_table_values(shift, 0, 8, qs, os);
    *q = _mm256_loadu_ps(qs);
    *offset = _mm256_loadu_ps(os);
}

/* The 8 generators of lanes 8 half .. 8 half + 7: s[w][g] holds word w of lanes 8 half + 4 g .. + 3. */
typedef struct {
    __m256i s[4][2];
} xoshiro8;

AVX2 static void xoshiro8_load(xoshiro8 *g, const uint64_t *state, int half) {
    for (int w = 0; w < 4; w++)
        for (int h = 0; h < 2; h++) {
            long long words[4];
            for (int l = 0; l < 4; l++) words[l] = (long long)state[(8 * half + 4 * h + l) * 4 + w];
            g->s[w][h] = _mm256_loadu_si256((const __m256i *)words);
        }
}

AVX2 static inline void exp_rows8(xoshiro8 *g, size_t n_rows, __m256 q, __m256 offset, float *out, __m256 *low) {
    for (size_t c = 0; c < n_rows; c++) {
        __m256i xa = xoshiro4_next(&g->s[0][0], &g->s[1][0], &g->s[2][0], &g->s[3][0]);
        __m256i xb = xoshiro4_next(&g->s[0][1], &g->s[1][1], &g->s[2][1], &g->s[3][1]);
        __m256 cost = stream_log8(xa, xb, q, offset);
        *low = _mm256_min_ps(*low, cost);
        _mm256_store_ps(out + c * 8, cost);
    }
}

/* ITS cost rows of distinct token t for lanes 8 half .. + 7: |u[r] - eta[t]| - shift. */
AVX2 static inline void its_rows8(const float *eta, const float *u, size_t t, size_t n_rows, int half, __m256 shifts,
                                  float *out) {
    __m256 e = _mm256_loadu_ps(eta + t * TM_EXP_EDIT_FAST_LANES + 8 * half);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (size_t r = 0; r < n_rows; r++) {
        __m256 d = _mm256_andnot_ps(sign, _mm256_sub_ps(_mm256_loadu_ps(u + r * TM_EXP_EDIT_FAST_LANES + 8 * half), e));
        _mm256_store_ps(out + r * 8, _mm256_sub_ps(d, shifts));
    }
}

/* ALIGN_PASS on 8 lanes (the table, prev and cur with 8 floats a cell). */
#define ALIGN_PASS8(R)                                                                                                \
    do {                                                                                                              \
        const float *costs[R];                                                                                        \
        __m256 left[R], base[R];                                                                                      \
        for (int q = 0; q < (R); q++) {                                                                               \
            costs[q] = table + (size_t)text->index[start + i - 1 + (size_t)q] * n * L;                                \
            left[q] = _mm256_setzero_ps(); /* H[i][0] = 0 */                                                          \
        }                                                                                                             \
        base[0] = _mm256_load_ps(prev);                                                                               \
        for (int q = 1; q < (R); q++) base[q] = left[q - 1];                                                          \
        _mm256_store_ps(cur, left[(R) - 1]);                                                                          \
        size_t r = 1;                                                                                                 \
        while (r <= columns) {                                                                                        \
            size_t span = columns + 1 - r < n ? columns + 1 - r : n;                                                  \
            const float *above_p = prev + r * L;                                                                      \
            float *out_p = cur + r * L;                                                                               \
            for (size_t j = 0; j < span; j++) {                                                                       \
                __m256 above = _mm256_load_ps(above_p + j * L);                                                       \
                for (int q = 0; q < (R); q++) {                                                                       \
                    __m256 diagonal = _mm256_add_ps(base[q], _mm256_load_ps(costs[q] + j * L));                       \
                    __m256 value = _mm256_min_ps(diagonal, above);                                                    \
                    base[q] = above;                                                                                  \
                    left[q] = _mm256_min_ps(value, left[q]);                                                          \
                    above = left[q];                                                                                  \
                }                                                                                                     \
                _mm256_store_ps(out_p + j * L, left[(R) - 1]);                                                        \
            }                                                                                                         \
            r += span;                                                                                                \
        }                                                                                                             \
    } while (0)

/* align_avx512 for lanes 8 half .. 8 half + 7, the table refilled for them:
 * each half is a whole alignment of its own (16 lanes at once would need
 * twice the registers AVX2 has). */
AVX2 static void align_avx2_half(const tm_exp_edit_fast_text *text, float *table, float *previous, float *current,
                                 const uint64_t *state, const float *eta, const float *u, int half, float *out,
                                 float *minimum) {
    enum { L = 8, ROWS = 4 };
    xoshiro8 g;
    size_t generated = SIZE_MAX;
    __m256 low = _mm256_set1_ps(INFINITY);
    __m256 log_q = _mm256_setzero_ps(), log_offset = _mm256_setzero_ps();
    if (state) {
        xoshiro8_load(&g, state, half);
        generated = 0;
        log_tables8(2 * text->gap, &log_q, &log_offset);
    }
    if (eta) generated = 0;
    const size_t k = text->block, n = text->n_rows, columns = text->n_rows + 2 * text->block;
    const size_t stride = text->block_stride;
    const float shift = 2 * text->gap;
    __m256 phi = _mm256_set1_ps(INFINITY);
    for (size_t b = 0; b < text->n_blocks; b++) {
        size_t start = b + 1 == text->n_blocks ? text->n_text - k : b * stride;
        float *prev = previous, *cur = current;
        for (size_t r = 0; r <= columns; r++) _mm256_store_ps(prev + r * L, _mm256_set1_ps(text->row_init[r]));
        for (size_t i = 1; i <= k;) {
            size_t rows = k + 1 - i >= ROWS ? ROWS : 1;
            for (size_t q = 0; q < rows; q++) {
                size_t token = text->index[start + i - 1 + q];
                while (generated <= token) {
                    if (state) exp_rows8(&g, n, log_q, log_offset, table + generated * n * L, &low);
                    else its_rows8(eta, u, generated, n, half, _mm256_set1_ps(shift), table + generated * n * L);
                    generated++;
                }
            }
            if (rows == ROWS) ALIGN_PASS8(4);
            else ALIGN_PASS8(1);
            i += rows;
            float *swap = prev;
            prev = cur;
            cur = swap;
        }
        for (size_t r = 0; r <= columns; r++)
            phi = _mm256_min_ps(phi, _mm256_add_ps(_mm256_load_ps(prev + r * L), _mm256_set1_ps(text->row_end[r])));
    }
    _mm256_storeu_ps(out, phi);
    if (minimum) _mm256_storeu_ps(minimum, low);
}

AVX2 static void stream_costs_avx2(const uint64_t *x, size_t n, float shift, float *out) {
    __m256 q, offset;
    log_tables8(shift, &q, &offset);
    for (size_t i = 0; i < n; i += 8) {
        long long words[8] = {0};
        for (size_t j = 0; j < 8 && i + j < n; j++) words[j] = (long long)x[i + j];
        float values[8];
        _mm256_storeu_ps(values, stream_log8(_mm256_loadu_si256((const __m256i *)words),
                                             _mm256_loadu_si256((const __m256i *)(words + 4)), q, offset));
        for (size_t j = 0; j < 8 && i + j < n; j++) out[i + j] = values[j];
    }
}

#endif

bool tm_exp_edit_fast_coarse_runs(tm_exp_edit_kernel kernel) {
    return kernel == TM_EXP_EDIT_KERNEL_AVX512 && tm_exp_edit_fast_runs(kernel);
}

void tm_exp_edit_fast_align(const tm_exp_edit_fast_text *text, float *table, float *previous, float *current,
                            const uint64_t *state, bool coarse, const float *eta, const float *u,
                            float out[TM_EXP_EDIT_FAST_LANES], float minimum[TM_EXP_EDIT_FAST_LANES]) {
#if HAVE_AVX512_KERNEL
    if (text->kernel == TM_EXP_EDIT_KERNEL_AVX512) {
        align_avx512(text, table, previous, current, state, coarse, eta, u, out, minimum);
        return;
    }
    if (text->kernel == TM_EXP_EDIT_KERNEL_AVX2 && !coarse) { /* no coarse tier (tm_exp_edit_fast_coarse_runs) */
        for (int half = 0; half < 2; half++)
            align_avx2_half(text, table, previous, current, state, eta, u, half, out + 8 * half,
                            minimum ? minimum + 8 * half : NULL);
        return;
    }
#endif
    (void)table, (void)previous, (void)current, (void)state, (void)coarse, (void)eta, (void)u, (void)minimum;
    for (int l = 0; l < TM_EXP_EDIT_FAST_LANES; l++) out[l] = NAN;
}

void tm_exp_edit_fast_stream_costs(tm_exp_edit_kernel kernel, const uint64_t *x, size_t n, float shift, bool coarse,
                                   float *out) {
#if HAVE_AVX512_KERNEL
    if (kernel == TM_EXP_EDIT_KERNEL_AVX512) {
        stream_costs_avx512(x, n, shift, coarse, out);
        return;
    }
    if (kernel == TM_EXP_EDIT_KERNEL_AVX2 && !coarse) {
        stream_costs_avx2(x, n, shift, out);
        return;
    }
#endif
    (void)kernel, (void)x, (void)shift, (void)coarse;
    for (size_t i = 0; i < n; i++) out[i] = NAN;
}
