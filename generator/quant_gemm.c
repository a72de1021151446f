/* Batched products of block-quantized weights (a prompt's projections), as
 * llama.cpp computes them: the activations are quantized to 8 bits once per
 * call, then multiplied with the weights in integers. Hand-written because
 * no packaged library multiplies these formats, and converting the weights
 * to floats for sgemm was the measured bottleneck of prompt processing.
 *
 * How: each thread takes panels of 16 weight rows. A panel's quants, over a
 * chunk of at most 1024 columns, are unpacked once into a small buffer
 * (16 KiB, L1-resident) as unsigned bytes laid out so that every group of 4
 * columns holds the 16 rows side by side: one 512-bit vpdpbusd multiplies
 * 16 rows by the same 4 activation bytes (broadcast), so each weight byte
 * loaded is used for a tile of up to 8 tokens. The weights stay in their
 * mapped layout; only the panel buffer on each thread's stack is extra.
 *
 * Paths (tm_quant_gemm_path): AVX512-VNNI runs 16 rows x 8 tokens on
 * 512-bit vectors and unpacks with AVX-512 (rows in a transposed order);
 * AVX-VNNI (vpdpbusd) and AVX2 (maddubs, int16 sums widened by madd once
 * per run of groups) run 16 rows (two vectors; 8 where AVX2's registers
 * run short) x 4 tokens on 256-bit vectors and share an AVX2 unpacking that
 * writes the portable panel byte for byte; the portable path is plain C.
 * Results do not depend on the thread count.
 *
 * Every type is brought to one form: per block of 32 elements (16 for
 * Q6_K), row . x = dw * dx * (sum u * q - offset * sum q) + mw * sx, where u
 * are the unsigned weight quants, q the activation quants, dw/mw the
 * block's weight scale and minimum, dx/sx the activation block's scale and
 * scaled sum. The integer part is exact; only the float accumulation of the
 * blocks can round differently from the portable dot products.
 *
 * Nothing here checks shapes (model.c did at load time) or allocates. */
#include "quant_gemm.h"


#include <omp.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TM_X86 1
#endif

enum {
    PANEL_ROWS = 16,
    CHUNK_COLS = 1024,         /* columns of a panel unpacked at a time (a multiple of 256) */
    MAX_TILE_TOKENS = 8,       /* tokens per micro-kernel call */
    MAX_CHUNK_BLOCKS = CHUNK_COLS / 16
};

/* A panel of 16 rows over one chunk of columns (24 KiB, on each thread's
 * stack): for column group c (4 columns), q[c * 64 + r * 4 + j] is lane r's
 * unsigned quant of column 4c + j; d and m hold each block's 16 lane scales
 * and minimums. Lane r is row r, except after unpack_avx512, which leaves
 * the rows in a transposed order that tile_zmm undoes when it stores. */
typedef struct {
    _Alignas(64) uint8_t q[CHUNK_COLS * PANEL_ROWS];
    _Alignas(64) float d[MAX_CHUNK_BLOCKS * PANEL_ROWS];
    _Alignas(64) float m[MAX_CHUNK_BLOCKS * PANEL_ROWS];
} gemm_panel;

typedef struct {
    uint32_t type;
    int block;    /* elements per scale: 32, or 16 for Q6_K */
    int offset;   /* the unsigned quants' excess over the signed value */
    bool has_min; /* Q4_1, Q5_1, Q4_K, Q5_K */
    bool k_type;
} gemm_format;

static gemm_format format_of(uint32_t type) {
    gemm_format f = {.type = type, .block = TM_QK};
    switch (type) {
    case TM_GGML_Q8_0: f.offset = 128; break;
    case TM_GGML_Q4_0: f.offset = 8; break;
    case TM_GGML_Q5_0: f.offset = 16; break;
    case TM_GGML_Q4_1: case TM_GGML_Q5_1: f.has_min = true; break;
    case TM_GGML_Q4_K: case TM_GGML_Q5_K: f.has_min = f.k_type = true; break;
    case TM_GGML_Q6_K: f.k_type = true; f.block = 16; f.offset = 32; break;
    default: break;
    }
    return f;
}

/* The quantized activations: q[n][cols] in column order, and per token and
 * block the scale d, the integer accumulator's start (-offset * sum q) and
 * the scaled sum s that meets the weights' minimum. */
typedef struct {
    int8_t *q;
    float *d;
    int32_t *start;
    float *s;
    int64_t cols, blocks;
} gemm_activations;

static size_t round_up_64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t tm_quant_gemm_scratch_bytes(uint32_t type, int64_t cols, int64_t n) {
    size_t blocks = (size_t)(cols / format_of(type).block);
    return round_up_64((size_t)(n * cols)) + 3 * round_up_64((size_t)n * blocks * 4) + 64;
}

static gemm_activations activations_in(void *scratch, const gemm_format *f, int64_t cols, int64_t n) {
    gemm_activations a = {.cols = cols, .blocks = cols / f->block};
    uint8_t *p = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    a.q = (int8_t *)p;
    p += round_up_64((size_t)(n * cols));
    size_t meta = round_up_64((size_t)n * (size_t)a.blocks * 4);
    a.d = (float *)p;
    a.start = (int32_t *)(p + meta);
    a.s = (float *)(p + 2 * meta);
    return a;
}

/* One token's activations, quantized by quant.c exactly as for the
 * matrix-vector product (llama.cpp's rounding), 256 columns at a time. */
static void quantize_token(const gemm_format *f, int offset, const float *x, const gemm_activations *a, int64_t t) {
    union {
        tm_q8_block b[TM_QK_K / TM_QK];
        tm_q8k_block k;
    } tmp;
    int8_t *q = a->q + t * a->cols;
    float *d = a->d + t * a->blocks, *s = a->s + t * a->blocks;
    int32_t *start = a->start + t * a->blocks;
    for (int64_t c0 = 0; c0 < a->cols; c0 += TM_QK_K) {
        int64_t len = a->cols - c0 < TM_QK_K ? a->cols - c0 : TM_QK_K;
        tm_quant_quantize_activations(f->type, x + c0, &tmp, len);
        if (f->k_type) {
            memcpy(q + c0, tmp.k.qs, TM_QK_K);
            int per = TM_QK_K / f->block, sums = f->block / 16;
            for (int j = 0; j < per; j++) {
                int sum = 0;
                for (int l = 0; l < sums; l++) sum += tmp.k.bsums[j * sums + l];
                int64_t b = c0 / f->block + j;
                d[b] = tmp.k.d;
                start[b] = -offset * sum;
                s[b] = tmp.k.d * (float)sum;
            }
        } else {
            for (int64_t i = 0; i < len / TM_QK; i++) {
                int64_t b = c0 / TM_QK + i;
                memcpy(q + c0 + i * TM_QK, tmp.b[i].qs, TM_QK);
                d[b] = tmp.b[i].d;
                start[b] = -offset * tmp.b[i].sum;
                s[b] = tmp.b[i].s;
            }
        }
    }
}

/* ---- unpacking a panel (portable) ------------------------------------------ */


/* Row r of the panel from one row's bytes for columns [0, len) of the chunk
 * (b points at the chunk's first block, the next ones stride bytes apart). */
static void unpack_row(const gemm_format *f, const uint8_t *b, size_t stride, int64_t len, gemm_panel *p, int r) {
    uint8_t u[TM_QK_K];
    float d[TM_QK_K / 16], m[TM_QK_K / 16];
    int64_t native = f->k_type ? TM_QK_K : TM_QK;
    for (int64_t c0 = 0; c0 < len; c0 += native) {
        int nsub = (int)(native / f->block);
        memset(m, 0, sizeof m);
        switch (f->type) {
        case TM_GGML_Q8_0:
            d[0] = tm_block_f16(b);
            for (int j = 0; j < TM_QK; j++) u[j] = (uint8_t)(b[2 + j] ^ 0x80);
            b += stride;
            break;
        case TM_GGML_Q4_0: case TM_GGML_Q4_1: {
            bool one = f->type == TM_GGML_Q4_1;
            d[0] = tm_block_f16(b);
            if (one) m[0] = tm_block_f16(b + 2);
            const uint8_t *qs = b + (one ? 4 : 2);
            for (int j = 0; j < TM_QK / 2; j++) {
                u[j] = qs[j] & 0xF;
                u[j + 16] = qs[j] >> 4;
            }
            b += stride;
            break;
        }
        case TM_GGML_Q5_0: case TM_GGML_Q5_1: {
            bool one = f->type == TM_GGML_Q5_1;
            d[0] = tm_block_f16(b);
            if (one) m[0] = tm_block_f16(b + 2);
            uint32_t qh = tm_block_u32(b + (one ? 4 : 2));
            const uint8_t *qs = b + (one ? 8 : 6);
            for (int j = 0; j < TM_QK / 2; j++) {
                u[j] = (uint8_t)((qs[j] & 0xF) | (((qh >> j) & 1) << 4));
                u[j + 16] = (uint8_t)((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
            }
            b += stride;
            break;
        }
        case TM_GGML_Q4_K: case TM_GGML_Q5_K: {
            bool five = f->type == TM_GGML_Q5_K;
            float dd = tm_block_f16(b), dmin = tm_block_f16(b + 2);
            for (int j = 0; j < 8; j++) {
                uint8_t sc, mn;
                tm_block_scale_min_k4(j, b + 4, &sc, &mn);
                d[j] = dd * (float)sc;
                m[j] = -(dmin * (float)mn);
            }
            const uint8_t *qh = b + 16, *ql = b + (five ? 48 : 16);
            for (int c = 0; c < 4; c++)
                for (int l = 0; l < 32; l++) {
                    int lo = ql[32 * c + l] & 0xF, hi = ql[32 * c + l] >> 4;
                    if (five) {
                        lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                        hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
                    }
                    u[64 * c + l] = (uint8_t)lo;
                    u[64 * c + 32 + l] = (uint8_t)hi;
                }
            b += stride;
            break;
        }
        case TM_GGML_Q6_K: {
            float dd = tm_block_f16(b + 208);
            for (int j = 0; j < 16; j++) d[j] = dd * (float)(int8_t)b[192 + j];
            for (int n = 0; n < 2; n++) {
                const uint8_t *ql = b + 64 * n, *qh = b + 128 + 32 * n;
                uint8_t *y = u + 128 * n;
                for (int l = 0; l < 32; l++) {
                    y[l] = (uint8_t)((ql[l] & 0xF) | ((qh[l] & 3) << 4));
                    y[l + 32] = (uint8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
                    y[l + 64] = (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
                    y[l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
                }
            }
            b += stride;
            break;
        }
        default: return;
        }
        for (int64_t e = 0; e < native; e += 4) memcpy(p->q + (c0 + e) * PANEL_ROWS + r * 4, u + e, 4);
        for (int j = 0; j < nsub; j++) {
            int64_t blk = c0 / f->block + j;
            p->d[blk * PANEL_ROWS + r] = d[j];
            p->m[blk * PANEL_ROWS + r] = m[j];
        }
    }
}

/* Where the chunk starting at block b0 of row r (or of the last row, past
 * it) begins, in either layout of tm_tensor; the row's next blocks follow
 * m->stride bytes apart. */
static inline const uint8_t *chunk_start(const tm_quant_rows *m, int64_t rows, int64_t r, int64_t b0) {
    return tm_quant_row(m, r < rows ? r : rows - 1) + (size_t)b0 * m->stride;
}

/* Rows past the last are copies of it, so the kernels never branch on rows. */
static void unpack_portable(const gemm_format *f, const tm_tensor *w, int64_t r0, int64_t b0, int64_t len,
                            gemm_panel *p) {
    tm_quant_rows m = tm_quant_rows_of(w);
    for (int r = 0; r < PANEL_ROWS; r++) unpack_row(f, chunk_start(&m, w->rows, r0 + r, b0), m.stride, len, p, r);
}

/* ---- micro-kernels ------------------------------------------------------------ */

/* A tile: tokens [t0, t0 + T) against the panel's blocks [0, blocks) of the
 * chunk starting at column col0; out[t][r] receives the 16 rows' sums. */
typedef struct {
    const int8_t *q[MAX_TILE_TOKENS];
    const float *d[MAX_TILE_TOKENS], *s[MAX_TILE_TOKENS];
    const int32_t *start[MAX_TILE_TOKENS];
} gemm_tile;

static void tile_portable(const gemm_format *f, const gemm_panel *p, int64_t blocks, const gemm_tile *x, int T,
                          float out[][PANEL_ROWS]) {
    int bs = f->block;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < PANEL_ROWS; r++) {
            float acc = 0;
            for (int64_t b = 0; b < blocks; b++) {
                int32_t sum = x->start[t][b];
                const uint8_t *wq = p->q + b * bs * PANEL_ROWS + r * 4;
                const int8_t *xq = x->q[t] + b * bs;
                for (int e = 0; e < bs; e++) sum += wq[(e / 4) * 64 + e % 4] * xq[e];
                acc += (float)sum * x->d[t][b] * p->d[b * PANEL_ROWS + r];
                if (f->has_min) acc += p->m[b * PANEL_ROWS + r] * x->s[t][b];
            }
            out[t][r] = acc;
        }
}

#ifdef TM_X86
static inline int32_t load_i32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))
#define AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

/* 16 rows x T tokens on 512-bit vectors: per group of 4 columns, one load of
 * the weights and T vpdpbusd with the tokens' 4 bytes broadcast. */
AVX512 INLINE void tile_zmm(const gemm_panel *p, int64_t blocks, const gemm_tile *x, float out[][PANEL_ROWS],
                            const int T, const int bs, const bool has_min) {
    __m512 acc[MAX_TILE_TOKENS];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *wq = p->q + b * bs * PANEL_ROWS;
        /* two accumulators per token (even and odd column groups): half the
         * length of the vpdpbusd dependency chains */
        __m512i sum[MAX_TILE_TOKENS], odd[MAX_TILE_TOKENS];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            sum[t] = _mm512_set1_epi32(x->start[t][b]);
            odd[t] = _mm512_setzero_si512();
        }
#pragma GCC unroll 8
        for (int g = 0; g < bs / 4; g += 2) {
            __m512i w0 = _mm512_load_si512((const void *)(wq + g * 64));
            __m512i w1 = _mm512_load_si512((const void *)(wq + g * 64 + 64));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                sum[t] = _mm512_dpbusd_epi32(sum[t], w0, _mm512_set1_epi32(load_i32(x->q[t] + b * bs + g * 4)));
                odd[t] = _mm512_dpbusd_epi32(odd[t], w1, _mm512_set1_epi32(load_i32(x->q[t] + b * bs + g * 4 + 4)));
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) sum[t] = _mm512_add_epi32(sum[t], odd[t]);
        __m512 wd = _mm512_load_ps(p->d + b * PANEL_ROWS);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sum[t]), _mm512_set1_ps(x->d[t][b])), wd, acc[t]);
        if (has_min) {
            __m512 wm = _mm512_load_ps(p->m + b * PANEL_ROWS);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) acc[t] = _mm512_fmadd_ps(wm, _mm512_set1_ps(x->s[t][b]), acc[t]);
        }
    }
    /* unpack_avx512 leaves the panel's rows in transposed order (row 4k + j at
     * lane 4j + k): put them back. */
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_store_ps(out[t], _mm512_permutexvar_ps(order, acc[t]));
}

/* The same on 256-bit vectors, T <= 4 tokens against NH halves of the panel
 * (rows 8 * h0 on: NH = 2 takes all 16 rows, so each broadcast token word
 * meets two weight vectors and is loaded half as often).
 *
 * The integer sums are exact on both paths. AVX-VNNI: vpdpbusd. AVX2:
 * maddubs gives int16 sums of pairs u * q, and the pairs of `run`
 * consecutive column groups are added in int16 before one madd widens them
 * (a 4-bit quant's pair is at most 2 * 15 * 128 = 3840 in magnitude, so 8
 * groups fit; 5-bit: 4 groups; 6-bit: 2). With signed8 the Q8_0 weights are
 * made signed again and multiplied through their sign, as maddubs would
 * saturate on u * q pairs past 32767; a pair can reach 2 * 128 * 127 =
 * 32512, so each group is widened alone (run 1). The float arithmetic is the same on both paths. */
#define UNROLL _Pragma("GCC unroll 8")
/* Keeps GCC from reassociating a chain of additions into a tree, which holds
 * every product at once and spills them to the stack. */
#define IN_ORDER(v) __asm__("" : "+x"(v))
#define DEFINE_TILE_YMM(SUFFIX, TARGET, STEP)                                                                       \
    TARGET INLINE void tile_ymm_##SUFFIX(const gemm_panel *p, int64_t blocks, const gemm_tile *x,                   \
                                         float out[][PANEL_ROWS], const int t0, const int T, const int bs,         \
                                         const bool has_min, const bool signed8, const int run, const int h0,      \
                                         const int NH) {                                                            \
        const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8((char)0x80);                             \
        /* local copies: the vector stores below may alias anything, x included */                                 \
        const int8_t *xq[4];                                                                                        \
        const float *xd[4], *xs[4];                                                                                 \
        const int32_t *xstart[4];                                                                                   \
        float *o[4];                                                                                                \
        __m256 acc[4][2];                                                                                           \
        UNROLL for (int t = 0; t < T; t++) {                                                                        \
            xq[t] = x->q[t0 + t], xd[t] = x->d[t0 + t], xs[t] = x->s[t0 + t], xstart[t] = x->start[t0 + t];         \
            o[t] = out[t0 + t] + h0 * 8;                                                                            \
            UNROLL for (int h = 0; h < NH; h++) acc[t][h] = _mm256_setzero_ps();                                    \
        }                                                                                                           \
        const uint8_t *wq = p->q + h0 * 32;                                                                         \
        const float *pd = p->d + h0 * 8, *pm = p->m + h0 * 8;                                                       \
        for (int64_t b = 0; b < blocks; b++, wq += bs * PANEL_ROWS, pd += PANEL_ROWS, pm += PANEL_ROWS) {           \
            __m256i sum[4][2];                                                                                      \
            UNROLL for (int g0 = 0; g0 < bs / 4; g0 += run) {                                                       \
                __m256i part[4][2];                                                                                 \
                UNROLL for (int g = g0; g < g0 + run; g++) {                                                        \
                    __m256i wa[2], ws[2];                                                                           \
                    UNROLL for (int h = 0; h < NH; h++) {                                                           \
                        __m256i wv = _mm256_load_si256((const __m256i *)(wq + g * 64 + h * 32));                    \
                        ws[h] = signed8 ? _mm256_xor_si256(wv, flip) : wv;                                          \
                        wa[h] = signed8 ? _mm256_sign_epi8(ws[h], ws[h]) : wv;                                      \
                    }                                                                                               \
                    UNROLL for (int t = 0; t < T; t++) {                                                            \
                        __m256i xv = _mm256_set1_epi32(load_i32(xq[t] + b * bs + g * 4));                           \
                        UNROLL for (int h = 0; h < NH; h++)                                                         \
                            part[t][h] = STEP(part[t][h], wa[h], ws[h], xv, g == g0, signed8);                      \
                    }                                                                                               \
                }                                                                                                   \
                UNROLL for (int t = 0; t < T; t++)                                                                  \
                    UNROLL for (int h = 0; h < NH; h++) {                                                           \
                        __m256i wide = widen_##SUFFIX(part[t][h], ones);                                            \
                        sum[t][h] = _mm256_add_epi32(g0 == 0 ? _mm256_set1_epi32(xstart[t][b]) : sum[t][h], wide);  \
                        IN_ORDER(sum[t][h]);                                                                        \
                    }                                                                                               \
            }                                                                                                       \
            UNROLL for (int h = 0; h < NH; h++) {                                                                   \
                __m256 wd = _mm256_load_ps(pd + h * 8);                                                             \
                __m256 wm = has_min ? _mm256_load_ps(pm + h * 8) : _mm256_setzero_ps();                             \
                UNROLL for (int t = 0; t < T; t++) {                                                                \
                    acc[t][h] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sum[t][h]), _mm256_set1_ps(xd[t][b])), \
                                                wd, acc[t][h]);                                                     \
                    if (has_min) acc[t][h] = _mm256_fmadd_ps(wm, _mm256_set1_ps(xs[t][b]), acc[t][h]);              \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
        UNROLL for (int t = 0; t < T; t++)                                                                          \
            UNROLL for (int h = 0; h < NH; h++) _mm256_store_ps(o[t] + h * 8, acc[t][h]);                           \
    }

/* One group's products added to a run's partial sums (first: the run's first group). */
AVX2 INLINE __m256i step_avx2(__m256i part, __m256i wa, __m256i ws, __m256i x, bool first, bool signed8) {
    __m256i products = _mm256_maddubs_epi16(wa, signed8 ? _mm256_sign_epi8(x, ws) : x);
    if (first) return products;
    part = _mm256_add_epi16(part, products);
    IN_ORDER(part);
    return part;
}

AVX2 INLINE __m256i widen_avx2(__m256i part, __m256i ones) { return _mm256_madd_epi16(part, ones); }

AVXVNNI INLINE __m256i step_avxvnni(__m256i part, __m256i wa, __m256i ws, __m256i x, bool first, bool signed8) {
    (void)ws, (void)signed8;
    return _mm256_dpbusd_avx_epi32(first ? _mm256_setzero_si256() : part, wa, x);
}

AVXVNNI INLINE __m256i widen_avxvnni(__m256i part, __m256i ones) {
    (void)ones;
    return part;
}

DEFINE_TILE_YMM(avx2, AVX2, step_avx2)
DEFINE_TILE_YMM(avxvnni, AVXVNNI, step_avxvnni)

/* One function per path that instantiates the tile for every constant
 * (token count, block size, minimum) so the loops above unroll. */
#define CASES_T(CALL)                                                                                               \
    switch (T) {                                                                                                    \
    case 1: CALL(1); break;                                                                                         \
    case 2: CALL(2); break;                                                                                         \
    case 3: CALL(3); break;                                                                                         \
    case 4: CALL(4); break;                                                                                         \
    case 5: CALL(5); break;                                                                                         \
    case 6: CALL(6); break;                                                                                         \
    case 7: CALL(7); break;                                                                                         \
    default: CALL(8); break;                                                                                        \
    }

AVX512 static void tiles_avx512(const gemm_format *f, const gemm_panel *p, int64_t blocks, const gemm_tile *x, int T,
                                float out[][PANEL_ROWS]) {
#define Z16(n) tile_zmm(p, blocks, x, out, n, 16, false)
#define Z32(n) tile_zmm(p, blocks, x, out, n, 32, false)
#define Z32M(n) tile_zmm(p, blocks, x, out, n, 32, true)
    if (f->block == 16) {
        CASES_T(Z16)
    } else if (f->has_min) {
        CASES_T(Z32M)
    } else {
        CASES_T(Z32)
    }
#undef Z16
#undef Z32
#undef Z32M
}

#define CASES_T4(CALL)                                                                                              \
    for (int t0 = 0; t0 < T; t0 += 4) {                                                                             \
        int part = T - t0 < 4 ? T - t0 : 4;                                                                         \
        switch (part) {                                                                                             \
        case 1: CALL(1); break;                                                                                     \
        case 2: CALL(2); break;                                                                                     \
        case 3: CALL(3); break;                                                                                     \
        default: CALL(4); break;                                                                                    \
        }                                                                                                           \
    }

/* AVX2: the longest int16 runs each quant width allows; both halves of the
 * panel at once where one run spans the block. Where it does not (5- and
 * 6-bit quants), and for Q8_0's signed products, the halves go one at a
 * time: the running int32 sums of both next to the int16 ones would not fit
 * the 16 registers (measured: Q8_0 both at once was 6% slower). */
AVX2 static void tiles_avx2(const gemm_format *f, const gemm_panel *p, int64_t blocks, const gemm_tile *x, int T,
                            float out[][PANEL_ROWS], bool signed8) {
#define Y(n, bs, min, s8, run, h0, nh) tile_ymm_avx2(p, blocks, x, out, t0, n, bs, min, s8, run, h0, nh)
#define Y6(n) (Y(n, 16, false, false, 2, 0, 1), Y(n, 16, false, false, 2, 1, 1))
#define Y8S(n) (Y(n, 32, false, true, 1, 0, 1), Y(n, 32, false, true, 1, 1, 1))
#define Y4(n) Y(n, 32, false, false, 8, 0, 2)
#define Y4M(n) Y(n, 32, true, false, 8, 0, 2)
#define Y5(n) (Y(n, 32, false, false, 4, 0, 1), Y(n, 32, false, false, 4, 1, 1))
#define Y5M(n) (Y(n, 32, true, false, 4, 0, 1), Y(n, 32, true, false, 4, 1, 1))
    bool five = f->type == TM_GGML_Q5_0 || f->type == TM_GGML_Q5_1 || f->type == TM_GGML_Q5_K;
    if (f->block == 16) {
        CASES_T4(Y6)
    } else if (signed8) {
        CASES_T4(Y8S)
    } else if (five) {
        if (f->has_min) {
            CASES_T4(Y5M)
        } else {
            CASES_T4(Y5)
        }
    } else if (f->has_min) {
        CASES_T4(Y4M)
    } else {
        CASES_T4(Y4)
    }
#undef Y
#undef Y6
#undef Y8S
#undef Y4
#undef Y4M
#undef Y5
#undef Y5M
}

AVXVNNI static void tiles_avxvnni(const gemm_format *f, const gemm_panel *p, int64_t blocks, const gemm_tile *x, int T,
                                  float out[][PANEL_ROWS]) {
#define V(n, bs, min) tile_ymm_avxvnni(p, blocks, x, out, t0, n, bs, min, false, bs / 4, 0, 2)
#define V16(n) V(n, 16, false)
#define V32(n) V(n, 32, false)
#define V32M(n) V(n, 32, true)
    if (f->block == 16) {
        CASES_T4(V16)
    } else if (f->has_min) {
        CASES_T4(V32M)
    } else {
        CASES_T4(V32)
    }
#undef V
#undef V16
#undef V32
#undef V32M
}

/* ---- unpacking a panel with AVX-512 ------------------------------------------ */
/* The same 16 bytes of 16 rows, loaded four rows to a vector and transposed
 * as 4x4 words within each 128-bit lane: out[k] holds word k (bytes 4k..4k+3)
 * of every row, row 4i + j at lane 4j + i. One such vector is one column
 * group of the panel (two, for the low and high nibbles). Scales are
 * gathered in the same lane order. (Gathering the quants directly was a
 * fifth of the prompt time.) */
AVX512 INLINE void transposed_words(const uint8_t *const *row, size_t offset, __m512i out[4]) {
    __m512i z[4];
    for (int i = 0; i < 4; i++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(row[4 * i] + offset)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(row[4 * i + 1] + offset)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(row[4 * i + 2] + offset)), 2);
        z[i] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(row[4 * i + 3] + offset)), 3);
    }
    __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    out[0] = _mm512_unpacklo_epi64(t0, t2);
    out[1] = _mm512_unpackhi_epi64(t0, t2);
    out[2] = _mm512_unpacklo_epi64(t1, t3);
    out[3] = _mm512_unpackhi_epi64(t1, t3);
}

AVX512 INLINE __m512i gather(__m512i rows, const uint8_t *base, size_t offset) {
    return _mm512_i32gather_epi32(rows, (const void *)(base + offset), 1);
}

/* The F16 in the low (high = false) or high half of each 32-bit lane. */
AVX512 INLINE __m512 halves(__m512i v, bool high) {
    if (high) v = _mm512_srli_epi32(v, 16);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
}

/* Byte k of each lane (k a constant), as floats; signed for int8 scales. */
AVX512 INLINE __m512 byte_lane(__m512i v, int k, bool is_signed) {
    __m512i shifted = _mm512_slli_epi32(v, 24 - 8 * k);
    return _mm512_cvtepi32_ps(is_signed ? _mm512_srai_epi32(shifted, 24) : _mm512_srli_epi32(shifted, 24));
}

/* Bits 0..3 of each lane spread to bit 4 of its four bytes (Q5_0/Q5_1's fifth bits). */
AVX512 INLINE __m512i spread_bits(__m512i bits) {
    __m512i x = _mm512_and_si512(bits, _mm512_set1_epi32(0xF));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x00204081));
    return _mm512_slli_epi32(_mm512_and_si512(x, _mm512_set1_epi32(0x01010101)), 4);
}

AVX512 static void unpack_avx512(const gemm_format *f, const tm_tensor *w, int64_t r0, int64_t b0, int64_t len,
                                 gemm_panel *p) {
    int32_t offsets[PANEL_ROWS];
    const uint8_t *row[PANEL_ROWS];
    tm_quant_rows m = tm_quant_rows_of(w);
    size_t stride = m.stride;
    const uint8_t *base = chunk_start(&m, w->rows, r0, b0);
    for (int r = 0; r < PANEL_ROWS; r++) {
        int64_t physical = 4 * (r % 4) + r / 4; /* lane r holds this row */
        offsets[r] = (int32_t)(chunk_start(&m, w->rows, r0 + physical, b0) - base);
        row[r] = chunk_start(&m, w->rows, r0 + r, b0);
    }
    const __m512i idx = _mm512_loadu_si512((const void *)offsets);
    __m512i v[8];
    const __m512i low = _mm512_set1_epi32(0x0F0F0F0F), flip = _mm512_set1_epi32((int)0x80808080u);
    uint8_t *q = p->q;
    switch (f->type) {
    case TM_GGML_Q8_0:
        for (int64_t i = 0; i < len / TM_QK; i++, base += stride, q += TM_QK * PANEL_ROWS) {
            _mm512_store_ps(p->d + i * PANEL_ROWS, halves(gather(idx, base, 0), false));
            size_t o = (size_t)(base - row[0]);
            transposed_words(row, o + 2, v);
            transposed_words(row, o + 18, v + 4);
            for (int g = 0; g < 8; g++) _mm512_store_si512((void *)(q + g * 64), _mm512_xor_si512(v[g], flip));
        }
        return;
    case TM_GGML_Q4_0: case TM_GGML_Q4_1: case TM_GGML_Q5_0: case TM_GGML_Q5_1: {
        bool one = f->type == TM_GGML_Q4_1 || f->type == TM_GGML_Q5_1;
        bool five = f->type == TM_GGML_Q5_0 || f->type == TM_GGML_Q5_1;
        size_t qs = (one ? 4 : 2) + (five ? 4 : 0);
        for (int64_t i = 0; i < len / TM_QK; i++, base += stride, q += TM_QK * PANEL_ROWS) {
            __m512i head = gather(idx, base, 0);
            _mm512_store_ps(p->d + i * PANEL_ROWS, halves(head, false));
            _mm512_store_ps(p->m + i * PANEL_ROWS, one ? halves(head, true) : _mm512_setzero_ps());
            __m512i qh = five ? gather(idx, base, one ? 4 : 2) : _mm512_setzero_si512();
            transposed_words(row, (size_t)(base - row[0]) + qs, v);
            for (int g = 0; g < 4; g++) {
                __m512i lo = _mm512_and_si512(v[g], low), hi = _mm512_and_si512(_mm512_srli_epi32(v[g], 4), low);
                if (five) {
                    lo = _mm512_or_si512(lo, spread_bits(_mm512_srli_epi32(qh, 4 * g)));
                    hi = _mm512_or_si512(hi, spread_bits(_mm512_srli_epi32(qh, 16 + 4 * g)));
                }
                _mm512_store_si512((void *)(q + g * 64), lo);
                _mm512_store_si512((void *)(q + (g + 4) * 64), hi);
            }
        }
        return;
    }
    case TM_GGML_Q4_K: case TM_GGML_Q5_K: {
        bool five = f->type == TM_GGML_Q5_K;
        const __m512i six = _mm512_set1_epi32(0x3F3F3F3F), two = _mm512_set1_epi32(0x03030303);
        const __m512i bit = _mm512_set1_epi32(0x01010101);
        for (int64_t i = 0; i < len / TM_QK_K; i++, base += stride, q += TM_QK_K * PANEL_ROWS) {
            __m512i head = gather(idx, base, 0);
            __m512 d = halves(head, false), dmin = halves(head, true);
            __m512i u0 = gather(idx, base, 4), u1 = gather(idx, base, 8), u2 = gather(idx, base, 12);
            /* llama.cpp's unpacking of the 12 scale bytes, on each row's 32-bit words */
            __m512i sc_lo = _mm512_and_si512(u0, six), mn_lo = _mm512_and_si512(u1, six);
            __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(u2, low),
                                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u0, 6), two), 4));
            __m512i mn_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), low),
                                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u1, 6), two), 4));
            for (int j = 0; j < 8; j++) {
                __m512 sc = byte_lane(j < 4 ? sc_lo : sc_hi, j & 3, false);
                __m512 mn = byte_lane(j < 4 ? mn_lo : mn_hi, j & 3, false);
                _mm512_store_ps(p->d + (i * 8 + j) * PANEL_ROWS, _mm512_mul_ps(d, sc));
                _mm512_store_ps(p->m + (i * 8 + j) * PANEL_ROWS,
                                _mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(dmin, mn)));
            }
            size_t ql = five ? 48 : 16, o = (size_t)(base - row[0]);
            __m512i hv[8];
            if (five) {
                transposed_words(row, o + 16, hv);
                transposed_words(row, o + 32, hv + 4);
            }
            for (int c = 0; c < 4; c++) {
                transposed_words(row, o + ql + 32 * (size_t)c, v);
                transposed_words(row, o + ql + 32 * (size_t)c + 16, v + 4);
                for (int l = 0; l < 32; l += 4) {
                    __m512i lo = _mm512_and_si512(v[l / 4], low), hi = _mm512_and_si512(_mm512_srli_epi32(v[l / 4], 4), low);
                    if (five) {
                        __m512i h = hv[l / 4];
                        lo = _mm512_or_si512(lo, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 2 * c), bit), 4));
                        hi = _mm512_or_si512(hi,
                                             _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 2 * c + 1), bit), 4));
                    }
                    _mm512_store_si512((void *)(q + (64 * c + l) * PANEL_ROWS), lo);
                    _mm512_store_si512((void *)(q + (64 * c + 32 + l) * PANEL_ROWS), hi);
                }
            }
        }
        return;
    }
    case TM_GGML_Q6_K: {
        const __m512i two = _mm512_set1_epi32(0x03030303);
        for (int64_t i = 0; i < len / TM_QK_K; i++, base += stride, q += TM_QK_K * PANEL_ROWS) {
            /* d is the last 2 bytes of the block: gather the word before it so as not to read past the row */
            __m512 d = halves(gather(idx, base, 206), true);
            for (int k = 0; k < 4; k++) {
                __m512i sc = gather(idx, base, 192 + 4 * (size_t)k);
                for (int j = 0; j < 4; j++)
                    _mm512_store_ps(p->d + (i * 16 + 4 * k + j) * PANEL_ROWS, _mm512_mul_ps(d, byte_lane(sc, j, true)));
            }
            size_t o = (size_t)(base - row[0]);
            for (int n = 0; n < 2; n++) {
                __m512i lv[16], hv[8];
                for (int k = 0; k < 4; k++) transposed_words(row, o + 64 * (size_t)n + 16 * (size_t)k, lv + 4 * k);
                transposed_words(row, o + 128 + 32 * (size_t)n, hv);
                transposed_words(row, o + 144 + 32 * (size_t)n, hv + 4);
                for (int l = 0; l < 32; l += 4) {
                    __m512i l0 = lv[l / 4], l1 = lv[8 + l / 4], h = hv[l / 4];
                    uint8_t *y = q + (128 * n + l) * PANEL_ROWS;
                    __m512i v0 = _mm512_or_si512(_mm512_and_si512(l0, low), _mm512_slli_epi32(_mm512_and_si512(h, two), 4));
                    __m512i v1 = _mm512_or_si512(_mm512_and_si512(l1, low),
                                                 _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 2), two), 4));
                    __m512i v2 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(l0, 4), low),
                                                 _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 4), two), 4));
                    __m512i v3 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(l1, 4), low),
                                                 _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 6), two), 4));
                    _mm512_store_si512((void *)y, v0);
                    _mm512_store_si512((void *)(y + 32 * PANEL_ROWS), v1);
                    _mm512_store_si512((void *)(y + 64 * PANEL_ROWS), v2);
                    _mm512_store_si512((void *)(y + 96 * PANEL_ROWS), v3);
                }
            }
        }
        return;
    }
    default: return;
    }
}

/* ---- unpacking a panel with AVX2 ------------------------------------------------ */
/* The AVX-512 unpacking on 256-bit vectors, eight rows at a time and in row
 * order, so that its panel is byte for byte unpack_portable's (the 256-bit
 * tiles read rows in order). out[k] holds word k (bytes 4k..4k+3) of the 16
 * bytes at offset of rows 0..7, row r at lane r: one half of a column group. */
AVX2 INLINE void words_of_eight(const uint8_t *const *row, size_t offset, __m256i out[4]) {
    __m256i z[4];
    for (int i = 0; i < 4; i++)
        z[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(row[i] + offset))),
                                       _mm_loadu_si128((const __m128i *)(row[i + 4] + offset)), 1);
    __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
    __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
    out[0] = _mm256_unpacklo_epi64(t0, t2);
    out[1] = _mm256_unpackhi_epi64(t0, t2);
    out[2] = _mm256_unpacklo_epi64(t1, t3);
    out[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* The 32-bit word at offset of each of the eight rows. */
AVX2 INLINE __m256i words_at(const uint8_t *const *row, size_t offset) {
    uint32_t v[8];
    for (int r = 0; r < 8; r++) v[r] = tm_block_u32(row[r] + offset);
    return _mm256_loadu_si256((const __m256i *)v);
}

/* The F16 at offset of each of the eight rows, as floats (F16C converts
 * exactly, as tm_f16_to_f32 does). */
AVX2 INLINE __m256 halves_at(const uint8_t *const *row, size_t offset) {
    uint16_t v[8];
    for (int r = 0; r < 8; r++) v[r] = (uint16_t)(row[r][offset] | (row[r][offset + 1] << 8));
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)v));
}

/* Byte k of each lane (k a constant), as floats; signed for int8 scales. */
AVX2 INLINE __m256 byte_lane_ymm(__m256i v, int k, bool is_signed) {
    __m256i shifted = _mm256_slli_epi32(v, 24 - 8 * k);
    return _mm256_cvtepi32_ps(is_signed ? _mm256_srai_epi32(shifted, 24) : _mm256_srli_epi32(shifted, 24));
}

/* Bits 0..3 of each lane spread to bit 4 of its four bytes (Q5_0/Q5_1's fifth bits). */
AVX2 INLINE __m256i spread_bits_ymm(__m256i bits) {
    __m256i x = _mm256_and_si256(bits, _mm256_set1_epi32(0xF));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x00204081));
    return _mm256_slli_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x01010101)), 4);
}

/* -x exactly as the portable code negates (0 - x would turn -0 into +0). */
AVX2 INLINE __m256 negated(__m256 x) { return _mm256_xor_ps(x, _mm256_set1_ps(-0.0f)); }

AVX2 static void unpack_avx2(const gemm_format *f, const tm_tensor *w, int64_t r0, int64_t b0, int64_t len,
                             gemm_panel *p) {
    const uint8_t *all[PANEL_ROWS];
    tm_quant_rows m = tm_quant_rows_of(w);
    size_t stride = m.stride;
    for (int r = 0; r < PANEL_ROWS; r++) all[r] = chunk_start(&m, w->rows, r0 + r, b0);
    const __m256i low = _mm256_set1_epi8(0x0F), flip = _mm256_set1_epi8((char)0x80);
    const __m256 zero = _mm256_setzero_ps();
    __m256i v[8];
    for (int h = 0; h < 2; h++) {
        const uint8_t *const *row = all + 8 * h;
        uint8_t *q = p->q + 32 * h;
        float *d = p->d + 8 * h, *m = p->m + 8 * h;
        switch (f->type) {
        case TM_GGML_Q8_0:
            for (int64_t i = 0; i < len / TM_QK; i++, q += TM_QK * PANEL_ROWS) {
                size_t o = (size_t)i * stride;
                _mm256_store_ps(d + i * PANEL_ROWS, halves_at(row, o));
                _mm256_store_ps(m + i * PANEL_ROWS, zero);
                words_of_eight(row, o + 2, v);
                words_of_eight(row, o + 18, v + 4);
                for (int g = 0; g < 8; g++) _mm256_store_si256((__m256i *)(q + g * 64), _mm256_xor_si256(v[g], flip));
            }
            break;
        case TM_GGML_Q4_0: case TM_GGML_Q4_1: case TM_GGML_Q5_0: case TM_GGML_Q5_1: {
            bool one = f->type == TM_GGML_Q4_1 || f->type == TM_GGML_Q5_1;
            bool five = f->type == TM_GGML_Q5_0 || f->type == TM_GGML_Q5_1;
            size_t qs = (one ? 4 : 2) + (five ? 4 : 0);
            for (int64_t i = 0; i < len / TM_QK; i++, q += TM_QK * PANEL_ROWS) {
                size_t o = (size_t)i * stride;
                _mm256_store_ps(d + i * PANEL_ROWS, halves_at(row, o));
                _mm256_store_ps(m + i * PANEL_ROWS, one ? halves_at(row, o + 2) : zero);
                __m256i qh = five ? words_at(row, o + (one ? 4 : 2)) : _mm256_setzero_si256();
                words_of_eight(row, o + qs, v);
                for (int g = 0; g < 4; g++) {
                    __m256i lo = _mm256_and_si256(v[g], low), hi = _mm256_and_si256(_mm256_srli_epi32(v[g], 4), low);
                    if (five) {
                        lo = _mm256_or_si256(lo, spread_bits_ymm(_mm256_srli_epi32(qh, 4 * g)));
                        hi = _mm256_or_si256(hi, spread_bits_ymm(_mm256_srli_epi32(qh, 16 + 4 * g)));
                    }
                    _mm256_store_si256((__m256i *)(q + g * 64), lo);
                    _mm256_store_si256((__m256i *)(q + (g + 4) * 64), hi);
                }
            }
            break;
        }
        case TM_GGML_Q4_K: case TM_GGML_Q5_K: {
            bool five = f->type == TM_GGML_Q5_K;
            const __m256i six = _mm256_set1_epi8(0x3F), two = _mm256_set1_epi8(0x03), bit = _mm256_set1_epi8(0x01);
            for (int64_t i = 0; i < len / TM_QK_K; i++, q += TM_QK_K * PANEL_ROWS) {
                size_t o = (size_t)i * stride;
                __m256 dd = halves_at(row, o), dmin = halves_at(row, o + 2);
                __m256i u0 = words_at(row, o + 4), u1 = words_at(row, o + 8), u2 = words_at(row, o + 12);
                /* llama.cpp's unpacking of the 12 scale bytes, on each row's 32-bit words */
                __m256i sc_lo = _mm256_and_si256(u0, six), mn_lo = _mm256_and_si256(u1, six);
                __m256i sc_hi = _mm256_or_si256(_mm256_and_si256(u2, low),
                                                _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u0, 6), two), 4));
                __m256i mn_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), low),
                                                _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u1, 6), two), 4));
                for (int j = 0; j < 8; j++) {
                    __m256 sc = byte_lane_ymm(j < 4 ? sc_lo : sc_hi, j & 3, false);
                    __m256 mn = byte_lane_ymm(j < 4 ? mn_lo : mn_hi, j & 3, false);
                    _mm256_store_ps(d + (i * 8 + j) * PANEL_ROWS, _mm256_mul_ps(dd, sc));
                    _mm256_store_ps(m + (i * 8 + j) * PANEL_ROWS, negated(_mm256_mul_ps(dmin, mn)));
                }
                size_t ql = o + (five ? 48 : 16);
                __m256i hv[8];
                if (five) {
                    words_of_eight(row, o + 16, hv);
                    words_of_eight(row, o + 32, hv + 4);
                }
                for (int c = 0; c < 4; c++) {
                    words_of_eight(row, ql + 32 * (size_t)c, v);
                    words_of_eight(row, ql + 32 * (size_t)c + 16, v + 4);
                    for (int l = 0; l < 32; l += 4) {
                        __m256i lo = _mm256_and_si256(v[l / 4], low);
                        __m256i hi = _mm256_and_si256(_mm256_srli_epi32(v[l / 4], 4), low);
                        if (five) {
                            __m256i hb = hv[l / 4];
                            lo = _mm256_or_si256(lo, _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 2 * c), bit), 4));
                            hi = _mm256_or_si256(hi,
                                                 _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 2 * c + 1), bit), 4));
                        }
                        _mm256_store_si256((__m256i *)(q + (64 * c + l) * PANEL_ROWS), lo);
                        _mm256_store_si256((__m256i *)(q + (64 * c + 32 + l) * PANEL_ROWS), hi);
                    }
                }
            }
            break;
        }
        case TM_GGML_Q6_K: {
            const __m256i two = _mm256_set1_epi8(0x03);
            for (int64_t i = 0; i < len / TM_QK_K; i++, q += TM_QK_K * PANEL_ROWS) {
                size_t o = (size_t)i * stride;
                __m256 dd = halves_at(row, o + 208);
                for (int k = 0; k < 4; k++) {
                    __m256i sc = words_at(row, o + 192 + 4 * (size_t)k);
                    for (int j = 0; j < 4; j++) {
                        _mm256_store_ps(d + (i * 16 + 4 * k + j) * PANEL_ROWS, _mm256_mul_ps(dd, byte_lane_ymm(sc, j, true)));
                        _mm256_store_ps(m + (i * 16 + 4 * k + j) * PANEL_ROWS, zero);
                    }
                }
                for (int n = 0; n < 2; n++) {
                    __m256i lv[16], hv[8];
                    for (int k = 0; k < 4; k++) words_of_eight(row, o + 64 * (size_t)n + 16 * (size_t)k, lv + 4 * k);
                    words_of_eight(row, o + 128 + 32 * (size_t)n, hv);
                    words_of_eight(row, o + 144 + 32 * (size_t)n, hv + 4);
                    for (int l = 0; l < 32; l += 4) {
                        __m256i l0 = lv[l / 4], l1 = lv[8 + l / 4], hb = hv[l / 4];
                        uint8_t *y = q + (128 * n + l) * PANEL_ROWS;
                        __m256i v0 = _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_slli_epi32(_mm256_and_si256(hb, two), 4));
                        __m256i v1 = _mm256_or_si256(_mm256_and_si256(l1, low),
                                                     _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 2), two), 4));
                        __m256i v2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(l0, 4), low),
                                                     _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 4), two), 4));
                        __m256i v3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(l1, 4), low),
                                                     _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 6), two), 4));
                        _mm256_store_si256((__m256i *)y, v0);
                        _mm256_store_si256((__m256i *)(y + 32 * PANEL_ROWS), v1);
                        _mm256_store_si256((__m256i *)(y + 64 * PANEL_ROWS), v2);
                        _mm256_store_si256((__m256i *)(y + 96 * PANEL_ROWS), v3);
                    }
                }
            }
            break;
        }
        default: return;
        }
    }
}
#endif

/* ---- for the tests -------------------------------------------------------------- */

size_t tm_quant_gemm_panel_bytes(void) { return sizeof(gemm_panel); }

bool tm_quant_gemm_unpack_panel(tm_quant_path path, const tm_tensor *w, int64_t r0, int64_t c0, void *panel) {
    if (!tm_quant_path_supported(path)) return false;
    gemm_format f = format_of(w->type);
    int64_t len = w->cols - c0 < CHUNK_COLS ? w->cols - c0 : CHUNK_COLS;
    int64_t b0 = c0 / (int64_t)tm_ggml_block_elements(w->type); /* the chunk's first block in the row */
    switch (path) {
    case TM_QUANT_PATH_PORTABLE: unpack_portable(&f, w, r0, b0, len, panel); return true;
#ifdef TM_X86
    case TM_QUANT_PATH_AVX2: case TM_QUANT_PATH_AVX_VNNI: unpack_avx2(&f, w, r0, b0, len, panel); return true;
    case TM_QUANT_PATH_AVX512_VNNI: unpack_avx512(&f, w, r0, b0, len, panel); return true;
#endif
    default: return false;
    }
}

/* ---- the driver ---------------------------------------------------------------- */

/* Below this many multiply-adds a product runs on one thread. */
enum { PARALLEL_MIN_WORK = 1 << 20 };

void tm_quant_gemm(const tm_tensor *w, const float *x, int64_t n, float *y, void *scratch, int n_threads) {
    uint32_t type = w->type;
    int64_t rows = w->rows, cols = w->cols;
    gemm_format f = format_of(type);
    tm_quant_path path = tm_quant_gemm_path();
    bool signed8 = path == TM_QUANT_PATH_AVX2 && type == TM_GGML_Q8_0;
    int offset = signed8 ? 0 : f.offset;
    gemm_activations a = activations_in(scratch, &f, cols, n);
    int64_t panels = (rows + PANEL_ROWS - 1) / PANEL_ROWS, native = (int64_t)tm_ggml_block_elements(type);
    const tm_quant_rows m = tm_quant_rows_of(w);
    int threads = rows * cols * n < PARALLEL_MIN_WORK ? 1 : n_threads;
    if (threads > panels) threads = (int)panels;
    if (threads < 1) threads = 1;
#pragma omp parallel num_threads(threads)
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        for (int64_t t = n * id / nt; t < n * (id + 1) / nt; t++) quantize_token(&f, offset, x + t * cols, &a, t);
#pragma omp barrier
        gemm_panel panel;
        _Alignas(64) float out[MAX_TILE_TOKENS][PANEL_ROWS];
        /* Panels are handed out one at a time: on a shared machine a thread that
         * loses its core for a while does not hold the others back. */
#pragma omp for schedule(dynamic, 1)
        for (int64_t pi = 0; pi < panels; pi++) {
            int64_t r0 = pi * PANEL_ROWS, valid = rows - r0 < PANEL_ROWS ? rows - r0 : PANEL_ROWS;
            for (int64_t c0 = 0; c0 < cols; c0 += CHUNK_COLS) {
                int64_t len = cols - c0 < CHUNK_COLS ? cols - c0 : CHUNK_COLS;
                int64_t blocks = len / f.block, b0 = c0 / f.block;
                int64_t first = c0 / native, stored = len / native; /* the chunk's blocks as stored */
#ifdef TM_X86
                if (path == TM_QUANT_PATH_AVX512_VNNI) unpack_avx512(&f, w, r0, first, len, &panel);
                else if (path == TM_QUANT_PATH_AVX_VNNI || path == TM_QUANT_PATH_AVX2)
                    unpack_avx2(&f, w, r0, first, len, &panel);
                else
#endif
                    unpack_portable(&f, w, r0, first, len, &panel);
                /* The next panel's chunk, while this one is multiplied: unpacking reads
                 * 16 rows at once, which the hardware prefetcher does not foresee. */
                if (pi + 1 < panels) {
                    int64_t next = r0 + PANEL_ROWS, count = rows - next < PANEL_ROWS ? rows - next : PANEL_ROWS;
                    for (int64_t r = 0; r < count; r++) {
                        const char *start = (const char *)chunk_start(&m, rows, next + r, first);
                        for (int64_t b = 0; b < stored; b++)
                            for (size_t o = 0; o < m.block_bytes; o += 64)
                                __builtin_prefetch(start + b * m.stride + o, 0, 2);
                    }
                }
                for (int64_t t0 = 0; t0 < n; t0 += MAX_TILE_TOKENS) {
                    int T = n - t0 < MAX_TILE_TOKENS ? (int)(n - t0) : MAX_TILE_TOKENS;
                    gemm_tile tile;
                    for (int t = 0; t < T; t++) {
                        tile.q[t] = a.q + (t0 + t) * cols + c0;
                        tile.d[t] = a.d + (t0 + t) * a.blocks + b0;
                        tile.s[t] = a.s + (t0 + t) * a.blocks + b0;
                        tile.start[t] = a.start + (t0 + t) * a.blocks + b0;
                    }
                    switch (path) {
#ifdef TM_X86
                    case TM_QUANT_PATH_AVX512_VNNI: tiles_avx512(&f, &panel, blocks, &tile, T, out); break;
                    case TM_QUANT_PATH_AVX_VNNI: tiles_avxvnni(&f, &panel, blocks, &tile, T, out); break;
                    case TM_QUANT_PATH_AVX2: tiles_avx2(&f, &panel, blocks, &tile, T, out, signed8); break;
#endif
                    default: tile_portable(&f, &panel, blocks, &tile, T, out); break;
                    }
                    for (int t = 0; t < T; t++) {
                        float *dst = y + (t0 + t) * rows + r0;
                        if (c0 == 0) memcpy(dst, out[t], (size_t)valid * sizeof(float));
                        else
                            for (int64_t r = 0; r < valid; r++) dst[r] += out[t][r];
                    }
                }
            }
        }
    }
}
