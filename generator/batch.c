/* The decode step of continuous batching for quantized weights: a handful of
 * sequences (n <= TM_BATCH_MATVEC_MAX) each bring one activation row. The
 * rows of the weight are cut into tiles that stay in the core's cache while
 * every sequence meets them, so memory traffic is one pass over the weights
 * per step, as with one sequence. For Q4_K and Q6_K (Q4_K_M's types) on the
 * VNNI paths, a weight block is also unpacked once (nibbles, 6-bit scales)
 * for up to four sequences: the same instructions as quant_dot.c's VNNI
 * matrix-vector kernels in the same order per sequence, so every result is
 * bit for bit the single-sequence one (the tests compare). Other types and
 * paths run the matrix-vector kernel per sequence over each tile. Nothing
 * here checks shapes: forward.c calls it with the model's own tensors. */
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

bool tm_batch_matvec_supports(uint32_t type) { return tm_quant_is_quantized(type); }

/* One weight row against up to GROUP activation rows: out[v] = row . a[v]. */
typedef void (*multi_kernel)(const uint8_t *row, const tm_q8k_block *const *a, int nv, int64_t nb, float *out);

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
        const uint8_t *row, const tm_q8k_block *const *a, const int NV, int64_t nb, float *out) {                     \
        const __m256i low = _mm256_set1_epi8(0x0F);                                                                   \
        __m256 acc[GROUP];                                                                                            \
        __m128 mins_acc[GROUP];                                                                                       \
        for (int v = 0; v < NV; v++) acc[v] = _mm256_setzero_ps(), mins_acc[v] = _mm_setzero_ps();                    \
        for (int64_t i = 0; i < nb; i++) {                                                                            \
            const uint8_t *b = row + (size_t)i * TM_Q4_K_BYTES;                                                       \
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
        const uint8_t *row, const tm_q8k_block *const *a, const int NV, int64_t nb, float *out) {                     \
        const __m256i low = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x30);                                     \
        __m256 acc[GROUP];                                                                                            \
        for (int v = 0; v < NV; v++) acc[v] = _mm256_setzero_ps();                                                    \
        for (int64_t i = 0; i < nb; i++) {                                                                            \
            const uint8_t *b = row + (size_t)i * TM_Q6_K_BYTES;                                                       \
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
    TARGET static void q4_k_##SUFFIX(const uint8_t *row, const tm_q8k_block *const *a, int nv, int64_t nb,           \
                                     float *out) {                                                                    \
        switch (nv) {                                                                                                 \
        case 1: q4_k_nv_##SUFFIX(row, a, 1, nb, out); break;                                                          \
        case 2: q4_k_nv_##SUFFIX(row, a, 2, nb, out); break;                                                          \
        case 3: q4_k_nv_##SUFFIX(row, a, 3, nb, out); break;                                                          \
        default: q4_k_nv_##SUFFIX(row, a, 4, nb, out); break;                                                         \
        }                                                                                                             \
    }                                                                                                                 \
    TARGET static void q6_k_##SUFFIX(const uint8_t *row, const tm_q8k_block *const *a, int nv, int64_t nb,           \
                                     float *out) {                                                                    \
        switch (nv) {                                                                                                 \
        case 1: q6_k_nv_##SUFFIX(row, a, 1, nb, out); break;                                                          \
        case 2: q6_k_nv_##SUFFIX(row, a, 2, nb, out); break;                                                          \
        case 3: q6_k_nv_##SUFFIX(row, a, 3, nb, out); break;                                                          \
        default: q6_k_nv_##SUFFIX(row, a, 4, nb, out); break;                                                         \
        }                                                                                                             \
    }

#define AVX_VNNI_TARGET __attribute__((target("avx2,fma,f16c,avxvnni")))
#define AVX512_VNNI_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))
DEFINE_MULTI_KERNELS(avxvnni, AVX_VNNI_TARGET, _mm256_dpwssd_avx_epi32)
DEFINE_MULTI_KERNELS(avx512vnni, AVX512_VNNI_TARGET, _mm256_dpwssd_epi32)
#endif

/* The shared-unpacking kernel for the type on the path the matrix-vector
 * kernels take (quant_dot.c prefers AVX-VNNI, then AVX512-VNNI), or NULL. */
static multi_kernel kernel_for(uint32_t type) {
#ifdef TM_X86
    bool q4 = type == TM_GGML_Q4_K, q6 = type == TM_GGML_Q6_K;
    if (!q4 && !q6) return NULL;
    if (tm_quant_path_supported(TM_QUANT_PATH_AVX_VNNI)) return q4 ? q4_k_avxvnni : q6_k_avxvnni;
    if (tm_quant_path_supported(TM_QUANT_PATH_AVX512_VNNI)) return q4 ? q4_k_avx512vnni : q6_k_avx512vnni;
#else
    (void)type;
#endif
    return NULL;
}

void tm_batch_matvec(const tm_tensor *w, const void *xq, size_t xq_stride, float *y, size_t y_stride, int n,
                     int n_threads) {
    int64_t rows = w->rows, cols = w->cols, tiles = (rows + TILE_ROWS - 1) / TILE_ROWS;
    multi_kernel kernel = kernel_for(w->type);
    size_t row_bytes = tm_quant_row_bytes(w->type, cols);
    int64_t nb = cols / TM_QK_K;
    /* A parallel region costs microseconds: small matrices stay on one thread. */
    int threads = rows * cols * n >= (1 << 18) ? n_threads : 1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t t = 0; t < tiles; t++) {
        int64_t begin = t * TILE_ROWS, end = begin + TILE_ROWS < rows ? begin + TILE_ROWS : rows;
        if (!kernel) {
            for (int i = 0; i < n; i++)
                tm_quant_matvec_rows(w->type, w->data, (const char *)xq + (size_t)i * xq_stride,
                                     y + (size_t)i * y_stride, begin, end, cols);
            continue;
        }
        for (int64_t r = begin; r < end; r++) {
            const uint8_t *row = (const uint8_t *)w->data + (size_t)r * row_bytes;
            for (int v0 = 0; v0 < n; v0 += GROUP) {
                int nv = n - v0 < GROUP ? n - v0 : GROUP;
                const tm_q8k_block *a[GROUP];
                float out[GROUP];
                for (int v = 0; v < nv; v++) a[v] = (const tm_q8k_block *)((const char *)xq + (size_t)(v0 + v) * xq_stride);
                kernel(row, a, nv, nb, out);
                for (int v = 0; v < nv; v++) y[(size_t)(v0 + v) * y_stride + (size_t)r] = out[v];
            }
        }
    }
}
