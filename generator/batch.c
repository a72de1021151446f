/* The decode step of continuous batching for quantized weights: a handful of
 * sequences (n <= TM_BATCH_MATVEC_MAX) each bring one activation row. The
 * rows of the weight are cut into tiles that stay in the core's cache while
 * every sequence meets them, so memory traffic is one pass over the weights
 * per step, as with one sequence. For Q4_K and Q6_K (Q4_K_M's types) a
 * weight block is also unpacked once (nibbles, 6-bit quants, scales) for
 * several sequences: on AVX-512 for up to eight, 512 bits wide, with fewer
 * multiply instructions per sequence than the 256-bit kernels and the float
 * work of two sequences per instruction; on AVX-VNNI and AVX2 for up to four
 * (Q4_K on AVX-VNNI with the activations' own work prepared once per product
 * and the mins of two sequences in one instruction).
 * Every kernel computes each sequence's integer block sums lane for lane as
 * the single-sequence kernel of its path (quant_dot.c) does, then the same
 * float operations in the same order, so every result is bit for bit the
 * single-sequence one (the tests compare, on every forced path). Other types
 * and the portable path run the matrix-vector kernel per sequence over each
 * tile. Nothing here checks shapes: forward.c calls it with the model's own
 * tensors. */
#include "batch.h"

#include "quant_dot.h"

#include <omp.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TM_X86 1
#endif

/* Rows per tile: 32 rows of a 768-wide Q4_K matrix are 14 KiB, of a
 * 2048-wide one 37 KiB, within the L2 of any core this runs on. */
enum { TILE_ROWS = 32, GROUP = 4 };
/* Rows' worth of bytes the kernels prefetch ahead, in memory order: a row is
 * a few hundred bytes, too short for the hardware prefetcher to learn before
 * it ends, and in row groups a row's blocks are spread over its group. */
#ifndef PREFETCH_ROWS
#define PREFETCH_ROWS 16
#endif

bool tm_batch_matvec_supports(uint32_t type) { return tm_quant_is_quantized(type); }

/* One weight row against up to GROUP activation rows: out[v] = row . a[v]. */
typedef void (*multi_kernel)(const uint8_t *row, size_t stride, const tm_q8k_block *const *a, int nv, int64_t nb,
                             float *out);

#ifdef TM_X86
#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
/* quant_dot.c's reductions and F16 read, restated so the sums round alike. */
AVX2_TARGET static inline float hsum_ps(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}
AVX2_TARGET static inline float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
/* llama.cpp's 6-bit scale/min unpacking: scales in bytes 0..7, mins in 8..15. */
static inline __m128i k4_scales_mins(const uint8_t *q) {
    uint32_t u[4];
    memcpy(u, q, 12);
    u[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    uint32_t mins_low = u[1] & 0x3f3f3f3fu;
    u[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    u[2] = mins_low;
    u[0] &= 0x3f3f3f3fu;
    return _mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]);
}

/* Each kernel is written once for a constant count of sequences NV and
 * inlined per count, so that the NV integer sums of a block form independent
 * chains the core overlaps (integer sums: the order changes no bit). */
#define DEFINE_MULTI_KERNELS(SUFFIX, TARGET, DPWSSD)                                                                  \
    TARGET static inline __attribute__((always_inline)) void q4_k_nv_##SUFFIX(                                        \
        const uint8_t *row, size_t stride, const tm_q8k_block *const *a, const int NV, int64_t nb, float *out) {                     \
        const __m256i low = _mm256_set1_epi8(0x0F);                                                                   \
        __m256 acc[GROUP];                                                                                            \
        __m128 mins_acc[GROUP];                                                                                       \
        for (int v = 0; v < NV; v++) acc[v] = _mm256_setzero_ps(), mins_acc[v] = _mm_setzero_ps();                    \
        for (int64_t i = 0; i < nb; i++) {                                                                            \
            const uint8_t *b = row + (size_t)i * stride;                                                       \
            __m256i scales_mins = _mm256_cvtepu8_epi16(k4_scales_mins(b + 4));                                        \
            __m128i mins_w = _mm256_extracti128_si256(scales_mins, 1);                                                \
            __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(scales_mins));                        \
            float d = half_at(b), dmin = half_at(b + 2);                                                              \
            __m256i sumi[GROUP];                                                                                      \
            for (int v = 0; v < NV; v++) sumi[v] = _mm256_setzero_si256();                                            \
            for (int j = 0; j < 4; j++) {                                                                             \
                __m256i bytes = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * j));                               \
                __m256i lo = _mm256_and_si256(bytes, low);                                                            \
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low);                                      \
                __m256i slo = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0100 + 0x0404 * j)));           \
                __m256i shi = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0302 + 0x0404 * j)));           \
                for (int v = 0; v < NV; v++)                                                                          \
                    sumi[v] = DPWSSD(sumi[v],                                                                         \
                                     _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(a[v][i].qs + 64 * j))), \
                                     slo);                                                                            \
                for (int v = 0; v < NV; v++)                                                                          \
                    sumi[v] = DPWSSD(sumi[v],                                                                         \
                                     _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a[v][i].qs + 64 * j + 32))), \
                                     shi);                                                                            \
            }                                                                                                         \
            for (int v = 0; v < NV; v++) {                                                                            \
                const tm_q8k_block *x = &a[v][i];                                                                     \
                __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums),                            \
                                               _mm_loadu_si128((const __m128i *)(x->bsums + 8)));                     \
                __m128i mins = _mm_madd_epi16(mins_w, pairs);                                                         \
                mins_acc[v] = _mm_fmadd_ps(_mm_set1_ps(dmin * x->d), _mm_cvtepi32_ps(mins), mins_acc[v]);             \
                acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(d * x->d), _mm256_cvtepi32_ps(sumi[v]), acc[v]);              \
            }                                                                                                         \
        }                                                                                                             \
        for (int v = 0; v < NV; v++) {                                                                                \
            __m128 m = _mm_add_ps(mins_acc[v], _mm_movehl_ps(mins_acc[v], mins_acc[v]));                              \
            m = _mm_add_ss(m, _mm_movehdup_ps(m));                                                                    \
            out[v] = hsum_ps(acc[v]) - _mm_cvtss_f32(m);                                                              \
        }                                                                                                             \
    }                                                                                                                 \
    TARGET static inline __attribute__((always_inline)) void q6_k_nv_##SUFFIX(                                        \
        const uint8_t *row, size_t stride, const tm_q8k_block *const *a, const int NV, int64_t nb, float *out) {                     \
        const __m256i low = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x30);                                     \
        __m256 acc[GROUP];                                                                                            \
        for (int v = 0; v < NV; v++) acc[v] = _mm256_setzero_ps();                                                    \
        for (int64_t i = 0; i < nb; i++) {                                                                            \
            const uint8_t *b = row + (size_t)i * stride;                                                       \
            __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192)));                     \
            float d = half_at(b + 208);                                                                               \
            __m256i sumi[GROUP];                                                                                      \
            for (int v = 0; v < NV; v++)                                                                              \
                sumi[v] = _mm256_sub_epi32(                                                                           \
                    _mm256_setzero_si256(),                                                                           \
                    _mm256_slli_epi32(_mm256_madd_epi16(scales16, _mm256_loadu_si256((const __m256i *)a[v][i].bsums)), 5)); \
            for (int n = 0; n < 2; n++) {                                                                             \
                const uint8_t *ql = b + 64 * n, *qh = b + 128 + 32 * n;                                               \
                __m256i scales = _mm256_broadcastsi128_si256(n ? _mm256_extracti128_si256(scales16, 1)                \
                                                               : _mm256_castsi256_si128(scales16));                   \
                __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);                                                 \
                __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));                                          \
                __m256i h = _mm256_loadu_si256((const __m256i *)qh);                                                  \
                __m256i q[4];                                                                                         \
                q[0] = _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_and_si256(_mm256_slli_epi16(h, 4), two));    \
                q[1] = _mm256_or_si256(_mm256_and_si256(l1, low), _mm256_and_si256(_mm256_slli_epi16(h, 2), two));    \
                q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(h, two));    \
                q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),                               \
                                       _mm256_and_si256(_mm256_srli_epi16(h, 2), two));                               \
                for (int g = 0; g < 4; g++) {                                                                         \
                    __m256i sg = _mm256_shuffle_epi8(scales, _mm256_set_m128i(_mm_set1_epi16((short)(0x0302 + 0x0404 * g)), \
                                                                               _mm_set1_epi16((short)(0x0100 + 0x0404 * g)))); \
                    for (int v = 0; v < NV; v++)                                                                      \
                        sumi[v] = DPWSSD(sumi[v],                                                                     \
                                         _mm256_maddubs_epi16(q[g], _mm256_loadu_si256(                               \
                                                                        (const __m256i *)(a[v][i].qs + 128 * n + 32 * g))), \
                                         sg);                                                                         \
                }                                                                                                     \
            }                                                                                                         \
            for (int v = 0; v < NV; v++)                                                                              \
                acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(d * a[v][i].d), _mm256_cvtepi32_ps(sumi[v]), acc[v]);         \
        }                                                                                                             \
        for (int v = 0; v < NV; v++) out[v] = hsum_ps(acc[v]);                                                        \
    }                                                                                                                 \
    TARGET static void q4_k_##SUFFIX(const uint8_t *row, size_t stride, const tm_q8k_block *const *a, int nv, int64_t nb,           \
                                     float *out) {                                                                    \
        switch (nv) {                                                                                                 \
        case 1: q4_k_nv_##SUFFIX(row, stride, a, 1, nb, out); break;                                                          \
        case 2: q4_k_nv_##SUFFIX(row, stride, a, 2, nb, out); break;                                                          \
        case 3: q4_k_nv_##SUFFIX(row, stride, a, 3, nb, out); break;                                                          \
        default: q4_k_nv_##SUFFIX(row, stride, a, 4, nb, out); break;                                                         \
        }                                                                                                             \
    }                                                                                                                 \
    TARGET static void q6_k_##SUFFIX(const uint8_t *row, size_t stride, const tm_q8k_block *const *a, int nv, int64_t nb,           \
                                     float *out) {                                                                    \
        switch (nv) {                                                                                                 \
        case 1: q6_k_nv_##SUFFIX(row, stride, a, 1, nb, out); break;                                                          \
        case 2: q6_k_nv_##SUFFIX(row, stride, a, 2, nb, out); break;                                                          \
        case 3: q6_k_nv_##SUFFIX(row, stride, a, 3, nb, out); break;                                                          \
        default: q6_k_nv_##SUFFIX(row, stride, a, 4, nb, out); break;                                                         \
        }                                                                                                             \
    }

AVX2_TARGET static inline int hsum_epi32x4(__m128i v) {
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4E));
    return _mm_cvtsi128_si32(_mm_add_epi32(v, _mm_shuffle_epi32(v, 0xB1)));
}

/* AVX2 without VNNI: quant_dot.c's dot_q4_k_avx2 / dot_q6_k_avx2 (maddubs,
 * then madd by the sub-block's scale, then add) with the weight block
 * unpacked once for up to GROUP sequences. The integer sums are the same
 * in every lane, the mins (Q4_K) and the offset of 32 (Q6_K) are the same
 * integers, and the float steps are the same expressions in the same order. */
AVX2_TARGET static inline __attribute__((always_inline)) void q4_k_nv_avx2(const uint8_t *row, size_t stride,
                                                                           const tm_q8k_block *const *a, const int NV,
                                                                           int64_t nb, float *out) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    __m256 acc[GROUP];
    float mins_total[GROUP];
    for (int v = 0; v < NV; v++) acc[v] = _mm256_setzero_ps(), mins_total[v] = 0;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = row + (size_t)i * stride;
        uint8_t sc[8], m[8];
        for (int j = 0; j < 8; j++) tm_block_scale_min_k4(j, b + 4, &sc[j], &m[j]);
        __m128i mins16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)m));
        float d = half_at(b), dmin = half_at(b + 2);
        __m256i sumi[GROUP];
        for (int v = 0; v < NV; v++) sumi[v] = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i bytes = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * j));
            __m256i lo = _mm256_and_si256(bytes, low), hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low);
            __m256i slo = _mm256_set1_epi16(sc[2 * j]), shi = _mm256_set1_epi16(sc[2 * j + 1]);
            for (int v = 0; v < NV; v++) {
                const int8_t *x = a[v][i].qs + 64 * j;
                __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)x));
                __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(x + 32)));
                sumi[v] = _mm256_add_epi32(sumi[v], _mm256_madd_epi16(plo, slo));
                sumi[v] = _mm256_add_epi32(sumi[v], _mm256_madd_epi16(phi, shi));
            }
        }
        for (int v = 0; v < NV; v++) {
            const tm_q8k_block *x = &a[v][i];
            /* the integer sum of m[j] * (bsums[2j] + bsums[2j + 1]): pair sums < 2^13, no int16 wrap */
            __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums),
                                           _mm_loadu_si128((const __m128i *)(x->bsums + 8)));
            int mins = hsum_epi32x4(_mm_madd_epi16(mins16, pairs));
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(d * x->d), _mm256_cvtepi32_ps(sumi[v]), acc[v]);
            mins_total[v] += dmin * x->d * (float)mins;
        }
    }
    for (int v = 0; v < NV; v++) out[v] = hsum_ps(acc[v]) - mins_total[v];
}

AVX2_TARGET static inline __attribute__((always_inline)) void q6_k_nv_avx2(const uint8_t *row, size_t stride,
                                                                           const tm_q8k_block *const *a, const int NV,
                                                                           int64_t nb, float *out) {
    const __m256i low = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x30);
    __m256 acc[GROUP];
    float offsets[GROUP];
    for (int v = 0; v < NV; v++) acc[v] = _mm256_setzero_ps(), offsets[v] = 0;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = row + (size_t)i * stride;
        const int8_t *sc = (const int8_t *)(b + 192);
        __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        __m256i sumi[GROUP];
        for (int v = 0; v < NV; v++) sumi[v] = _mm256_setzero_si256();
        for (int n = 0; n < 2; n++) {
            const uint8_t *ql = b + 64 * n, *qh = b + 128 + 32 * n;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_and_si256(_mm256_slli_epi16(h, 4), two));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, low), _mm256_and_si256(_mm256_slli_epi16(h, 2), two));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(h, two));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                                   _mm256_and_si256(_mm256_srli_epi16(h, 2), two));
            for (int k = 0; k < 4; k++) {
                __m256i scales = _mm256_set_m128i(_mm_set1_epi16(sc[8 * n + 2 * k + 1]), _mm_set1_epi16(sc[8 * n + 2 * k]));
                for (int v = 0; v < NV; v++) {
                    __m256i p = _mm256_maddubs_epi16(
                        q[k], _mm256_loadu_si256((const __m256i *)(a[v][i].qs + 128 * n + 32 * k)));
                    sumi[v] = _mm256_add_epi32(sumi[v], _mm256_madd_epi16(p, scales));
                }
            }
        }
        float dq = half_at(b + 208);
        for (int v = 0; v < NV; v++) {
            const tm_q8k_block *x = &a[v][i];
            __m256i products = _mm256_madd_epi16(scales16, _mm256_loadu_si256((const __m256i *)x->bsums));
            int offset = hsum_epi32x4(_mm_add_epi32(_mm256_castsi256_si128(products), _mm256_extracti128_si256(products, 1)));
            float d = dq * x->d;
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[v]), acc[v]);
            offsets[v] += d * (float)(32 * offset);
        }
    }
    for (int v = 0; v < NV; v++) out[v] = hsum_ps(acc[v]) - offsets[v];
}

AVX2_TARGET static void q4_k_avx2(const uint8_t *row, size_t stride, const tm_q8k_block *const *a, int nv, int64_t nb, float *out) {
    switch (nv) {
    case 1: q4_k_nv_avx2(row, stride, a, 1, nb, out); break;
    case 2: q4_k_nv_avx2(row, stride, a, 2, nb, out); break;
    case 3: q4_k_nv_avx2(row, stride, a, 3, nb, out); break;
    default: q4_k_nv_avx2(row, stride, a, 4, nb, out); break;
    }
}
AVX2_TARGET static void q6_k_avx2(const uint8_t *row, size_t stride, const tm_q8k_block *const *a, int nv, int64_t nb, float *out) {
    switch (nv) {
    case 1: q6_k_nv_avx2(row, stride, a, 1, nb, out); break;
    case 2: q6_k_nv_avx2(row, stride, a, 2, nb, out); break;
    case 3: q6_k_nv_avx2(row, stride, a, 3, nb, out); break;
    default: q6_k_nv_avx2(row, stride, a, 4, nb, out); break;
    }
}

#define AVX_VNNI_TARGET __attribute__((target("avx2,fma,f16c,avxvnni")))
#define AVX512_VNNI_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))
DEFINE_MULTI_KERNELS(avxvnni, AVX_VNNI_TARGET, _mm256_dpwssd_avx_epi32)
DEFINE_MULTI_KERNELS(avx512vnni, AVX512_VNNI_TARGET, _mm256_dpwssd_epi32)

/* ---- 512-bit kernels: up to 8 sequences per pass over a row ------------------
 * The 256-bit kernels above spend as many instructions per sequence as the
 * single-sequence kernel does (maddubs + dpwssd per 32 weights, then the
 * block's float work), so four sequences cost about 1.8 times one. Here the
 * unpacked block is 512 bits wide: the low half holds the nibbles (or 6-bit
 * quants) that the 256-bit kernel feeds in one instruction, the high half
 * those of the next one. Per sequence, two vpdpbusd sum four products per
 * lane for two such vectors, and one vpdpwssd scales both (their sums fit
 * 16 bits, so they go in as the two words of a lane): three multiply
 * instructions per 128 weights where the 256-bit kernel takes eight. Q4_K
 * instead takes vpmaddubsw (pairs of products) and vpdpwssd by the
 * sub-block's scale per vector, four per 128 weights but no zeroed vpdpbusd
 * and no word interleave, the same integer in every lane: 3-10% faster at
 * 2-6 sequences, the same at 8; Q6_K, bound by its multiplies at 8
 * sequences, was 15% slower that way and keeps the form above. Each
 * 32-bit lane of the low half sums the same products as lane m of the
 * 256-bit kernel's first instruction, the high half those of its second,
 * and adding the two halves (integers: exact in any order) gives the 256-bit
 * kernel's block sum lane by lane. The float work of a block is
 * per lane, so two sequences share one 512-bit conversion and multiply-add
 * (and four share the mins' one): each lane does the single-sequence
 * kernel's operations on the same values, and the results are its bits.
 * What depends on the activations alone (scale products, bsums pairs) is
 * prepared once per product rather than once per row. */
#define AVX512_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))

enum { PAIRS = TM_BATCH_WIDE_MAX / 2, QUADS = TM_BATCH_WIDE_MAX / 4, WIDE_MAX_BLOCKS = 32 };

/* Per block i of the activations: pair p's scales [d of 2p] x 8 ++ [d of 2p+1] x 8,
 * quad q's [d of 4q+k] x 4 for k < 4, quad q's bsums pair sums (Q4_K) and
 * pair p's bsums (Q6_K). Padding sequences repeat a call's last real one.
 * About 24 KiB; wide_matvec keeps two on its stack. */
typedef struct {
    _Alignas(64) float d2[WIDE_MAX_BLOCKS][PAIRS][16];
    _Alignas(64) float d4[WIDE_MAX_BLOCKS][QUADS][16];
    _Alignas(64) int16_t pairs4[WIDE_MAX_BLOCKS][QUADS][32];
    _Alignas(64) int16_t bsums2[WIDE_MAX_BLOCKS][PAIRS][32];
} wide_prep;

/* AVX2 only: it also serves the AVX-VNNI path, on CPUs without AVX-512. */
AVX2_TARGET static void wide_prepare(wide_prep *pp, const tm_q8k_block *const *a, int padded, int64_t nb, bool q4) {
    for (int64_t i = 0; i < nb; i++)
        for (int v = 0; v < padded; v++) {
            const tm_q8k_block *x = &a[v][i];
            for (int k = 0; k < 8; k++) pp->d2[i][v / 2][8 * (v % 2) + k] = x->d;
            if (q4) {
                for (int k = 0; k < 4; k++) pp->d4[i][v / 4][4 * (v % 4) + k] = x->d;
                /* the same instruction as the 256-bit kernel: int16 sums wrap alike */
                __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums),
                                               _mm_loadu_si128((const __m128i *)(x->bsums + 8)));
                _mm_storeu_si128((__m128i *)&pp->pairs4[i][v / 4][8 * (v % 4)], pairs);
            } else {
                memcpy(&pp->bsums2[i][v / 2][16 * (v % 2)], x->bsums, sizeof x->bsums);
            }
        }
}

/* The two 256-bit halves of each of two sequences' sums, as [x0 lo + x0 hi, x1 lo + x1 hi]. */
AVX512_TARGET static inline __m512i fold_pair(__m512i x0, __m512i x1) {
    return _mm512_add_epi32(_mm512_shuffle_i64x2(x0, x1, 0x44), _mm512_shuffle_i64x2(x0, x1, 0xEE));
}

/* k4_scales_mins in vector instructions (the same 16 bytes): the 6-bit
 * scales and mins of sub-blocks 0..3 are bytes 0..7 masked, those of 4..7
 * take their low four bits from bytes 8..11 and their top two from the top
 * of bytes 0..7. */
AVX512_TARGET static inline __m128i k4_scales_mins_vec(const uint8_t *q) {
    __m128i bytes = _mm_loadu_si128((const __m128i *)q); /* 12 used; the block goes on past them */
    __m128i a = _mm_shuffle_epi8(bytes, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    __m128i b = _mm_shuffle_epi8(bytes, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    __m128i lows = _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
    __m128i highs = _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
    __m128i tops = _mm_and_si128(_mm_srli_epi16(b, 2),
                                 _mm_setr_epi8(0, 0, 0, 0, 48, 48, 48, 48, 0, 0, 0, 0, 48, 48, 48, 48));
    return _mm_or_si128(_mm_or_si128(lows, highs), tops);
}

/* hsum_ps of each 256-bit half, in lanes 0 and 8, adding the same lanes in
 * the same order (lane k + lane k + 4, then 0 + 2 and 1 + 3, then those two). */
AVX512_TARGET static inline __m512 hsum_halves(__m512 x) {
    __m512 t = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, 0xB1));
    __m512 u = _mm512_add_ps(t, _mm512_permute_ps(t, 0xEE));
    return _mm512_add_ps(u, _mm512_movehdup_ps(u));
}

/* The mins' final sum of each 128-bit quarter, in lanes 0, 4, 8, 12 (lane 0 + 2, 1 + 3, then those two). */
AVX512_TARGET static inline __m512 hsum_quarters(__m512 x) {
    __m512 u = _mm512_add_ps(x, _mm512_permute_ps(x, 0xEE));
    return _mm512_add_ps(u, _mm512_movehdup_ps(u));
}

/* The nibbles of 32 bytes as 64 bytes: the low ones, then the high ones. */
AVX512_TARGET static inline __m512i nibbles(const uint8_t *p, __m512i shift, __m512i low) {
    __m512i bytes = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_and_si512(_mm512_srlv_epi16(bytes, shift), low);
}

/* Two vectors of 32-bit sums that fit 16 bits (vpdpbusd's sums of four
 * products of a <= 6-bit quant and an 8-bit activation) as word pairs
 * (lo of d0[l], lo of d1[l]) in lane l, for one vpdpwssd to scale and add. */
AVX512_TARGET static inline __m512i interleave(__m512i d0, __m512i d1) {
    return _mm512_mask_blend_epi16(0xAAAAAAAAu, d0, _mm512_slli_epi32(d1, 16));
}

AVX512_TARGET static inline __attribute__((always_inline)) void q4_k_wide_np(
    const tm_tensor *w, int64_t begin, int64_t end, const tm_q8k_block *const *a,
    const wide_prep *pp, int p0, int64_t nb, float *y, size_t y_stride, int nv, const int NP) {
    const int NQ = (2 * NP + 3) / 4, quad0 = p0 / 2;
    const __m512i low = _mm512_set1_epi8(0x0F);
    /* low half: the nibbles as they are; high half: shifted down by 4 */
    const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    /* nibbles() of the block's 32-byte chunk k puts sub-block 2k in the low half and
     * 2k + 1 in the high half; pick[k] selects their scales into every word of each half */
    __m512i pick[4];
    for (int k = 0; k < 4; k++)
        pick[k] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)(2 * k))),
                                     _mm256_set1_epi16((short)(2 * k + 1)), 1);
    const tm_quant_rows m = tm_quant_rows_of(w);
    const size_t stride = m.stride, row_bytes = m.row_bytes;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *row = tm_quant_row(&m, r);
        const uint8_t *ahead = m.data + (size_t)(r + PREFETCH_ROWS) * row_bytes;
        for (size_t line = 0; line < row_bytes; line += 64) _mm_prefetch((const char *)(ahead + line), _MM_HINT_T0);
        __m512 acc[PAIRS], mins_acc[QUADS];
        for (int p = 0; p < NP; p++) acc[p] = _mm512_setzero_ps();
        for (int q = 0; q < NQ; q++) mins_acc[q] = _mm512_setzero_ps();
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *b = row + (size_t)i * stride;
            __m256i scales_mins = _mm256_cvtepu8_epi16(k4_scales_mins_vec(b + 4));
            __m512i mins_w = _mm512_broadcast_i32x4(_mm256_extracti128_si256(scales_mins, 1));
            __m512i scales = _mm512_castsi256_si512(scales_mins); /* words 0..7 */
            __m512 d = _mm512_set1_ps(half_at(b)), dmin = _mm512_set1_ps(half_at(b + 2));
            for (int q = 0; q < NQ; q++) {
                __m512i mins = _mm512_madd_epi16(mins_w, _mm512_load_si512(pp->pairs4[i][quad0 + q]));
                mins_acc[q] = _mm512_fmadd_ps(_mm512_mul_ps(dmin, _mm512_load_ps(pp->d4[i][quad0 + q])),
                                              _mm512_cvtepi32_ps(mins), mins_acc[q]);
            }
            __m512i sumi[TM_BATCH_WIDE_MAX];
            for (int v = 0; v < 2 * NP; v++) sumi[v] = _mm512_setzero_si512();
            for (int j = 0; j < 4; j += 2) {
                __m512i q0 = nibbles(b + 16 + 32 * j, shift, low), q1 = nibbles(b + 48 + 32 * j, shift, low);
                __m512i s0 = _mm512_permutexvar_epi16(pick[j], scales), s1 = _mm512_permutexvar_epi16(pick[j + 1], scales);
                for (int v = 0; v < 2 * NP; v++) {
                    const int8_t *x = a[v][i].qs + 64 * j;
                    /* word pairs of 2 products each (|sum| <= 2 * 15 * 128: no saturation), then
                     * each lane's two words times the sub-block's scale: lane l gets
                     * scale * (its four products), the integer vpdpbusd and vpdpwssd made */
                    sumi[v] = _mm512_dpwssd_epi32(sumi[v], _mm512_maddubs_epi16(q0, _mm512_loadu_si512((const void *)x)), s0);
                    sumi[v] = _mm512_dpwssd_epi32(sumi[v], _mm512_maddubs_epi16(q1, _mm512_loadu_si512((const void *)(x + 64))), s1);
                }
            }
            for (int p = 0; p < NP; p++)
                acc[p] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_load_ps(pp->d2[i][p0 + p])),
                                         _mm512_cvtepi32_ps(fold_pair(sumi[2 * p], sumi[2 * p + 1])), acc[p]);
        }
        _Alignas(64) float lanes[PAIRS][16], mins[QUADS][16];
        for (int p = 0; p < NP; p++) _mm512_store_ps(lanes[p], hsum_halves(acc[p]));
        for (int q = 0; q < NQ; q++) _mm512_store_ps(mins[q], hsum_quarters(mins_acc[q]));
        for (int v = 0; v < nv; v++)
            y[(size_t)v * y_stride + (size_t)r] = lanes[v / 2][8 * (v % 2)] - mins[v / 4][4 * (v % 4)];
    }
}

AVX512_TARGET static inline __attribute__((always_inline)) void q6_k_wide_np(
    const tm_tensor *w, int64_t begin, int64_t end, const tm_q8k_block *const *a,
    const wide_prep *pp, int p0, int64_t nb, float *y, size_t y_stride, int nv, const int NP) {
    const __m512i low = _mm512_set1_epi8(0x0F), two = _mm512_set1_epi8(0x30);
    /* [q0 | q1] takes qh shifted up by 4 | 2, [q2 | q3] shifted down by 0 | 2 */
    const __m512i up = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(4)), _mm256_set1_epi16(2), 1);
    const __m512i down = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    /* quarter L of [q(2h) | q(2h+1)] in half n takes scale 8n + 4h + L: lanes of
     * quarter L pair the words of h = 0 and h = 1, (scale 8n + L, scale 8n + 4 + L) */
    __m512i pick[2];
    for (int n = 0; n < 2; n++)
        pick[n] = _mm512_set_epi32(
            (8 * n + 7) << 16 | (8 * n + 3), (8 * n + 7) << 16 | (8 * n + 3), (8 * n + 7) << 16 | (8 * n + 3),
            (8 * n + 7) << 16 | (8 * n + 3), (8 * n + 6) << 16 | (8 * n + 2), (8 * n + 6) << 16 | (8 * n + 2),
            (8 * n + 6) << 16 | (8 * n + 2), (8 * n + 6) << 16 | (8 * n + 2), (8 * n + 5) << 16 | (8 * n + 1),
            (8 * n + 5) << 16 | (8 * n + 1), (8 * n + 5) << 16 | (8 * n + 1), (8 * n + 5) << 16 | (8 * n + 1),
            (8 * n + 4) << 16 | (8 * n), (8 * n + 4) << 16 | (8 * n), (8 * n + 4) << 16 | (8 * n),
            (8 * n + 4) << 16 | (8 * n));
    const tm_quant_rows m = tm_quant_rows_of(w);
    const size_t stride = m.stride, row_bytes = m.row_bytes;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *row = tm_quant_row(&m, r);
        const uint8_t *ahead = m.data + (size_t)(r + PREFETCH_ROWS) * row_bytes;
        for (size_t line = 0; line < row_bytes; line += 64) _mm_prefetch((const char *)(ahead + line), _MM_HINT_T0);
        __m512 acc[PAIRS];
        for (int p = 0; p < NP; p++) acc[p] = _mm512_setzero_ps();
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *b = row + (size_t)i * stride;
            __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192)));
            __m512i scales = _mm512_zextsi256_si512(scales16);
            __m512i scales2 = _mm512_broadcast_i64x4(scales16);
            __m512 d = _mm512_set1_ps(half_at(b + 208));
            __m512i sumi[TM_BATCH_WIDE_MAX];
            for (int v = 0; v < 2 * NP; v++) sumi[v] = _mm512_setzero_si512();
            for (int n = 0; n < 2; n++) {
                __m512i l = _mm512_loadu_si512((const void *)(b + 64 * n));
                __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 128 + 32 * n)));
                __m512i q[2];
                q[0] = _mm512_or_si512(_mm512_and_si512(l, low), _mm512_and_si512(_mm512_sllv_epi16(h, up), two));
                q[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low),
                                       _mm512_and_si512(_mm512_srlv_epi16(h, down), two));
                __m512i sn = _mm512_permutexvar_epi16(pick[n], scales);
                for (int v = 0; v < 2 * NP; v++) {
                    const int8_t *x = a[v][i].qs + 128 * n;
                    __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[0], _mm512_loadu_si512((const void *)x));
                    __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[1], _mm512_loadu_si512((const void *)(x + 64)));
                    sumi[v] = _mm512_dpwssd_epi32(sumi[v], interleave(d0, d1), sn);
                }
            }
            for (int p = 0; p < NP; p++) {
                /* the offset of 32: 0 - (scales . bsums) * 32, as the 256-bit kernel starts from */
                __m512i offset = _mm512_sub_epi32(
                    _mm512_setzero_si512(),
                    _mm512_slli_epi32(_mm512_madd_epi16(scales2, _mm512_load_si512(pp->bsums2[i][p0 + p])), 5));
                __m512i sum = _mm512_add_epi32(offset, fold_pair(sumi[2 * p], sumi[2 * p + 1]));
                acc[p] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_load_ps(pp->d2[i][p0 + p])), _mm512_cvtepi32_ps(sum),
                                         acc[p]);
            }
        }
        _Alignas(64) float lanes[PAIRS][16];
        for (int p = 0; p < NP; p++) _mm512_store_ps(lanes[p], hsum_halves(acc[p]));
        for (int v = 0; v < nv; v++) y[(size_t)v * y_stride + (size_t)r] = lanes[v / 2][8 * (v % 2)];
    }
}

/* Rows [begin, end) for the sequences a[0..nv) (padded to whole pairs), which
 * are pairs p0, p0 + 1, ... of the prepared activations. */
typedef void (*wide_kernel)(const tm_tensor *w, int64_t begin, int64_t end,
                            const tm_q8k_block *const *a, const wide_prep *pp, int p0, int64_t nb, float *y,
                            size_t y_stride, int nv);
#define WIDE_KERNEL(NAME, NP, TARGET)                                                                                 \
    TARGET static void NAME##_##NP(const tm_tensor *w, int64_t begin, int64_t end,                     \
                                   const tm_q8k_block *const *a, const wide_prep *pp, int p0, int64_t nb, float *y,    \
                                   size_t y_stride, int nv) {                                                          \
        NAME##_np(w, begin, end, a, pp, p0, nb, y, y_stride, nv, NP);                                       \
    }
/* AVX-VNNI (256 bits, no AVX-512): Q4_K for up to four sequences, the
 * 256-bit VNNI matrix-vector kernel's instructions per sequence, with the
 * activations' bsums pairs and scale products prepared once per product and
 * the mins of two sequences in one 256-bit multiply-add. */
AVX_VNNI_TARGET static inline __attribute__((always_inline)) void q4_k_vnni256_np(
    const tm_tensor *w, int64_t begin, int64_t end, const tm_q8k_block *const *a,
    const wide_prep *pp, int p0, int64_t nb, float *y, size_t y_stride, int nv, const int NP) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    const tm_quant_rows m = tm_quant_rows_of(w);
    const size_t stride = m.stride, row_bytes = m.row_bytes;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *row = tm_quant_row(&m, r);
        const uint8_t *ahead = m.data + (size_t)(r + PREFETCH_ROWS) * row_bytes;
        for (size_t line = 0; line < row_bytes; line += 64) _mm_prefetch((const char *)(ahead + line), _MM_HINT_T0);
        __m256 acc[4], mins_acc[2];
        for (int v = 0; v < 2 * NP; v++) acc[v] = _mm256_setzero_ps();
        for (int p = 0; p < NP; p++) mins_acc[p] = _mm256_setzero_ps();
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *b = row + (size_t)i * stride;
            __m256i scales_mins = _mm256_cvtepu8_epi16(k4_scales_mins(b + 4));
            __m256i mins_w = _mm256_broadcastsi128_si256(_mm256_extracti128_si256(scales_mins, 1));
            __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(scales_mins));
            __m256 d = _mm256_set1_ps(half_at(b)), dmin = _mm256_set1_ps(half_at(b + 2));
            for (int p = 0; p < NP; p++) {
                int g = p0 + p; /* pair g: sequences 2g and 2g + 1, a quarter each of quad g / 2 */
                __m256i mins = _mm256_madd_epi16(mins_w, _mm256_load_si256((const __m256i *)&pp->pairs4[i][g / 2][16 * (g % 2)]));
                mins_acc[p] = _mm256_fmadd_ps(_mm256_mul_ps(dmin, _mm256_load_ps(&pp->d4[i][g / 2][8 * (g % 2)])),
                                              _mm256_cvtepi32_ps(mins), mins_acc[p]);
            }
            __m256i sumi[4];
            for (int v = 0; v < 2 * NP; v++) sumi[v] = _mm256_setzero_si256();
            for (int j = 0; j < 4; j++) {
                __m256i bytes = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * j));
                __m256i lo = _mm256_and_si256(bytes, low);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low);
                __m256i slo = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0100 + 0x0404 * j)));
                __m256i shi = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0302 + 0x0404 * j)));
                for (int v = 0; v < 2 * NP; v++) {
                    const int8_t *x = a[v][i].qs + 64 * j;
                    sumi[v] = _mm256_dpwssd_avx_epi32(sumi[v], _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)x)), slo);
                    sumi[v] = _mm256_dpwssd_avx_epi32(
                        sumi[v], _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(x + 32))), shi);
                }
            }
            for (int v = 0; v < 2 * NP; v++) {
                int g = p0 + v / 2;
                acc[v] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_load_ps(&pp->d2[i][g][8 * (v % 2)])),
                                         _mm256_cvtepi32_ps(sumi[v]), acc[v]);
            }
        }
        _Alignas(32) float mins[2][8];
        for (int p = 0; p < NP; p++) _mm256_store_ps(mins[p], mins_acc[p]);
        for (int v = 0; v < 2 * NP && v < nv; v++) {
            const float *m = &mins[v / 2][4 * (v % 2)];
            y[(size_t)v * y_stride + (size_t)r] = hsum_ps(acc[v]) - ((m[0] + m[2]) + (m[1] + m[3]));
        }
    }
}
WIDE_KERNEL(q4_k_vnni256, 1, AVX_VNNI_TARGET)
WIDE_KERNEL(q4_k_vnni256, 2, AVX_VNNI_TARGET)

WIDE_KERNEL(q4_k_wide, 1, AVX512_TARGET)
WIDE_KERNEL(q4_k_wide, 2, AVX512_TARGET)
WIDE_KERNEL(q4_k_wide, 3, AVX512_TARGET)
WIDE_KERNEL(q4_k_wide, 4, AVX512_TARGET)
WIDE_KERNEL(q6_k_wide, 1, AVX512_TARGET)
WIDE_KERNEL(q6_k_wide, 2, AVX512_TARGET)
WIDE_KERNEL(q6_k_wide, 3, AVX512_TARGET)
WIDE_KERNEL(q6_k_wide, 4, AVX512_TARGET)
#endif

/* The shared-unpacking kernel for the type on the path the matrix-vector
 * kernels take, or NULL (portable: the per-sequence kernel runs). AVX-VNNI
 * and AVX512-VNNI give the same bits there, AVX2 its own. */
static multi_kernel kernel_for(uint32_t type, tm_quant_path path) {
#ifdef TM_X86
    bool q4 = type == TM_GGML_Q4_K, q6 = type == TM_GGML_Q6_K;
    if (!q4 && !q6) return NULL;
    if (path == TM_QUANT_PATH_AVX2) return q4 ? q4_k_avx2 : q6_k_avx2;
    if (path != TM_QUANT_PATH_AVX_VNNI && path != TM_QUANT_PATH_AVX512_VNNI) return NULL;
    if (tm_quant_path_supported(TM_QUANT_PATH_AVX_VNNI)) return q4 ? q4_k_avxvnni : q6_k_avxvnni;
    if (tm_quant_path_supported(TM_QUANT_PATH_AVX512_VNNI)) return q4 ? q4_k_avx512vnni : q6_k_avx512vnni;
#else
    (void)type;
    (void)path;
#endif
    return NULL;
}

#ifdef TM_X86
/* The prepared kernel for np pairs of sequences on this path, or NULL
 * (another type, a row wider than the prepared blocks, or a path without
 * one); *width is the most sequences one call takes. */
static wide_kernel wide_for(uint32_t type, tm_quant_path path, int64_t nb, int np, int *width) {
    static const wide_kernel q4[] = {q4_k_wide_1, q4_k_wide_2, q4_k_wide_3, q4_k_wide_4};
    static const wide_kernel q6[] = {q6_k_wide_1, q6_k_wide_2, q6_k_wide_3, q6_k_wide_4};
    static const wide_kernel q4_256[] = {q4_k_vnni256_1, q4_k_vnni256_2};
    if (nb > WIDE_MAX_BLOCKS || np < 1) return NULL;
    if (path == TM_QUANT_PATH_AVX512_VNNI && np <= PAIRS) {
        *width = TM_BATCH_WIDE_MAX;
        if (type == TM_GGML_Q4_K) return q4[np - 1];
        if (type == TM_GGML_Q6_K) return q6[np - 1];
    }
    if (path == TM_QUANT_PATH_AVX_VNNI && np <= 2 && type == TM_GGML_Q4_K) {
        *width = 4;
        return q4_256[np - 1];
    }
    return NULL;
}

/* Up to TM_BATCH_MATVEC_MAX rows through the prepared kernels, the
 * activations prepared for TM_BATCH_WIDE_MAX at a time and taken by calls of
 * the path's width; false when no such kernel takes this product. */
static bool wide_matvec(const tm_tensor *w, tm_quant_path path, const void *xq, size_t xq_stride, float *y,
                        size_t y_stride, int n, int threads) {
    enum { PASSES = (TM_BATCH_MATVEC_MAX + TM_BATCH_WIDE_MAX - 1) / TM_BATCH_WIDE_MAX, CALLS = TM_BATCH_MATVEC_MAX / 2 };
    int64_t rows = w->rows, cols = w->cols, nb = cols / TM_QK_K;
    int width = 0;
    if (n < 1 || n > TM_BATCH_MATVEC_MAX || !wide_for(w->type, path, nb, 1, &width)) return false;
    wide_prep prep[PASSES];
    const tm_q8k_block *a[PASSES][TM_BATCH_WIDE_MAX];
    struct {
        wide_kernel kernel;
        int pass, p0, first, count;
    } calls[CALLS];
    int n_calls = 0;
    for (int pass = 0, v0 = 0; v0 < n; v0 += TM_BATCH_WIDE_MAX, pass++) {
        int nv = n - v0 < TM_BATCH_WIDE_MAX ? n - v0 : TM_BATCH_WIDE_MAX;
        /* each call of width sequences (a multiple of 4) pads its own to whole pairs
         * and quads by repeating its last one, whose results are dropped, so every
         * lane computes on real data */
        for (int c0 = 0; c0 < nv; c0 += width) {
            int count = nv - c0 < width ? nv - c0 : width, np = (count + 1) / 2, padded = 4 * ((2 * np + 3) / 4);
            for (int v = c0; v < c0 + padded; v++)
                a[pass][v] = (const tm_q8k_block *)((const char *)xq +
                                                    (size_t)(v0 + (v < c0 + count ? v : c0 + count - 1)) * xq_stride);
            calls[n_calls].kernel = wide_for(w->type, path, nb, np, &width);
            calls[n_calls].pass = pass, calls[n_calls].p0 = c0 / 2, calls[n_calls].first = v0 + c0;
            calls[n_calls++].count = count;
        }
        int used = 4 * ((nv + 3) / 4);
        wide_prepare(&prep[pass], a[pass], used, nb, w->type == TM_GGML_Q4_K);
    }
    int64_t tiles = (rows + TILE_ROWS - 1) / TILE_ROWS;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t t = 0; t < tiles; t++) {
        int64_t begin = t * TILE_ROWS, end = begin + TILE_ROWS < rows ? begin + TILE_ROWS : rows;
        for (int c = 0; c < n_calls; c++)
            calls[c].kernel(w, begin, end, a[calls[c].pass] + 2 * calls[c].p0, &prep[calls[c].pass],
                            calls[c].p0, nb, y + (size_t)calls[c].first * y_stride, y_stride, calls[c].count);
    }
    return true;
}
#endif

void tm_batch_matvec(const tm_tensor *w, const void *xq, size_t xq_stride, float *y, size_t y_stride, int n,
                     int n_threads) {
    int64_t rows = w->rows, cols = w->cols, tiles = (rows + TILE_ROWS - 1) / TILE_ROWS;
    /* the batched products' path: the forced one in the tests, else the widest */
    tm_quant_path path = tm_quant_gemm_path();
    /* A parallel region costs microseconds: small matrices stay on one thread. */
    int threads = rows * cols * n >= (1 << 18) ? n_threads : 1;
#ifdef TM_X86
    if (wide_matvec(w, path, xq, xq_stride, y, y_stride, n, threads)) return;
#endif
    multi_kernel kernel = kernel_for(w->type, path);
    const tm_quant_rows m = tm_quant_rows_of(w);
    int64_t nb = cols / TM_QK_K;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t t = 0; t < tiles; t++) {
        int64_t begin = t * TILE_ROWS, end = begin + TILE_ROWS < rows ? begin + TILE_ROWS : rows;
        if (!kernel) {
            for (int i = 0; i < n; i++)
                tm_quant_matvec_rows(w, (const char *)xq + (size_t)i * xq_stride, y + (size_t)i * y_stride, begin,
                                     end);
            continue;
        }
        for (int64_t r = begin; r < end; r++) {
            const uint8_t *row = tm_quant_row(&m, r), *ahead = m.data + (size_t)(r + PREFETCH_ROWS) * m.row_bytes;
            for (size_t line = 0; line < m.row_bytes; line += 64) __builtin_prefetch(ahead + line, 0, 3);
            for (int v0 = 0; v0 < n; v0 += GROUP) {
                int nv = n - v0 < GROUP ? n - v0 : GROUP;
                const tm_q8k_block *a[GROUP];
                float out[GROUP];
                for (int v = 0; v < nv; v++) a[v] = (const tm_q8k_block *)((const char *)xq + (size_t)(v0 + v) * xq_stride);
                kernel(row, m.stride, a, nv, nb, out);
                for (int v = 0; v < nv; v++) y[(size_t)(v0 + v) * y_stride + (size_t)r] = out[v];
            }
        }
    }
}
