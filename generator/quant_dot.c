/* The quantized half of the decode kernels: activations quantized to 8 bits
 * with llama.cpp's rounding, and the dot products of block-quantized weight
 * rows with them, hand-written for AVX-VNNI, AVX512-VNNI and AVX2 (decode is
 * memory-bound and no packaged library does these formats) with portable
 * versions, chosen at run time. The block layouts and the field readers come
 * from the model room (tracemark/model.h): formats are read here, never
 * defined here. Nothing here checks shapes (model.c did at load time).
 * Rows come in either layout of tm_tensor: in the engine's row groups
 * (model/engine_weights.c) a kernel that takes a group's rows at once reads
 * memory in address order, which the hardware prefetcher follows, so no
 * kernel prefetches by hand (with the rows as the file holds them, 4 or 8
 * short streams side by side, 8 rows of Q8_0 read at a third of memory speed
 * on a Zen 4). */
#include "quant_dot.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TM_X86 1
#endif

size_t tm_quant_activation_bytes(uint32_t type, int64_t cols) {
    if (tm_quant_is_k_type(type)) return (size_t)(cols / TM_QK_K) * sizeof(tm_q8k_block);
    return (size_t)(cols / TM_QK) * sizeof(tm_q8_block);
}

/* ---- activation quantization ----------------------------------------------- */

/* Round half to even through the float adder (ggml's nearest_int); exact for
 * |x| <= 2^22, far beyond the +-128 it is used for. */
static inline int nearest_int(float x) {
    float shifted = x + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    return (bits & 0x007FFFFF) - 0x00400000;
}

/* llama.cpp's x86 quantize_row_q8_0/q8_1 (the AVX path every x86-64 CPU with
 * AVX takes): d = amax / 127, id = 127 / amax, round half to even. The same
 * arithmetic on every machine keeps the tokens deterministic. */
static void quantize_q8(const float *x, tm_q8_block *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += TM_QK) {
        float amax = 0;
        for (int j = 0; j < TM_QK; j++) {
            float a = x[j] < 0 ? -x[j] : x[j];
            if (a > amax) amax = a;
        }
        float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < TM_QK; j++) {
            int q = nearest_int(x[j] * id);
            y[i].qs[j] = (int8_t)q;
            sum += q;
        }
        y[i].d = tm_f16_to_f32(tm_f32_to_f16(d));
        y[i].s = tm_f16_to_f32(tm_f32_to_f16(d * (float)sum));
        y[i].sum = sum;
    }
}

/* quantize_row_q8_K_ref: the scale comes from the value of largest magnitude
 * (with its sign), so that value maps to -127. */
static void quantize_q8_k(const float *x, tm_q8k_block *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += TM_QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < TM_QK_K; j++) {
            float a = x[j] < 0 ? -x[j] : x[j];
            if (a > amax) {
                amax = a;
                max = x[j];
            }
        }
        if (amax == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float iscale = -127.0f / max;
        for (int j = 0; j < TM_QK_K; j++) {
            int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < TM_QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[j * 16 + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

#ifdef TM_X86
/* The same two quantizers on 512-bit vectors, bit for bit: the products
 * x * id are the same float operations, vcvtps2dq rounds half to even as
 * nearest_int does, and F16C rounds to nearest even as tm_f32_to_f16 does.
 * A prompt's batched products quantize every token's activations, which the
 * scalar loops made a quarter of the prompt time. */
#define AVX512_QUANTIZE __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")))

AVX512_QUANTIZE static void quantize_q8_avx512(const float *x, tm_q8_block *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += TM_QK) {
        __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
        float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, _mm512_set1_ps(id)));
        __m512i qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, _mm512_set1_ps(id)));
        _mm_storeu_si128((__m128i *)y[i].qs, _mm512_cvtepi32_epi8(qa));
        _mm_storeu_si128((__m128i *)(y[i].qs + 16), _mm512_cvtepi32_epi8(qb));
        int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
        y[i].d = _cvtsh_ss(_cvtss_sh(d, 0));
        y[i].s = _cvtsh_ss(_cvtss_sh(d * (float)sum, 0));
        y[i].sum = sum;
    }
}

AVX512_QUANTIZE static void quantize_q8_k_avx512(const float *x, tm_q8k_block *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += TM_QK_K) {
        __m512 m = _mm512_setzero_ps();
        for (int k = 0; k < 16; k++) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)));
        float amax = _mm512_reduce_max_ps(m);
        if (amax == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0; /* the first value of largest magnitude, as the scalar loop finds it */
        for (int k = 0; k < 16; k++) {
            __mmask16 at = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
            if (at) {
                max = x[16 * k + __builtin_ctz(at)];
                break;
            }
        }
        float iscale = -127.0f / max;
        for (int k = 0; k < 16; k++) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_set1_ps(iscale), _mm512_loadu_ps(x + 16 * k)));
            q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
            _mm_storeu_si128((__m128i *)(y[i].qs + 16 * k), _mm512_cvtepi32_epi8(q));
            y[i].bsums[k] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        y[i].d = 1 / iscale;
    }
}

/* The same two on AVX2 for CPUs without AVX-512 (and the AVX2 path forced),
 * bit for bit in the same way; the int32 to int8 narrowing goes through the
 * saturating packs, exact for these values (-127..127). A scalar quantizer
 * took 3% of an AVX2 decode. */
#define AVX2_QUANTIZE __attribute__((target("avx2,fma,f16c")))

AVX2_QUANTIZE static inline float max_abs8(__m256 m) {
    __m128 v = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_max_ss(v, _mm_movehdup_ps(v)));
}

AVX2_QUANTIZE static inline __m256 abs8(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

AVX2_QUANTIZE static inline int sum8_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 1)));
}

/* 16 int32 (two vectors, in order) to 16 int8 at out. */
AVX2_QUANTIZE static inline void store16_epi8(int8_t *out, __m256i a, __m256i b) {
    __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
    __m128i w = _mm_packs_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
    _mm_storeu_si128((__m128i *)out, w);
}

AVX2_QUANTIZE static void quantize_q8_avx2(const float *x, tm_q8_block *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += TM_QK) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) m = _mm256_max_ps(m, abs8(v[k] = _mm256_loadu_ps(x + 8 * k)));
        float amax = max_abs8(m);
        float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        __m256i q[4];
        for (int k = 0; k < 4; k++) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], _mm256_set1_ps(id)));
        store16_epi8(y[i].qs, q[0], q[1]);
        store16_epi8(y[i].qs + 16, q[2], q[3]);
        int sum = sum8_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
        y[i].d = _cvtsh_ss(_cvtss_sh(d, 0));
        y[i].s = _cvtsh_ss(_cvtss_sh(d * (float)sum, 0));
        y[i].sum = sum;
    }
}

AVX2_QUANTIZE static void quantize_q8_k_avx2(const float *x, tm_q8k_block *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += TM_QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 32; k++) m = _mm256_max_ps(m, abs8(_mm256_loadu_ps(x + 8 * k)));
        float amax = max_abs8(m);
        if (amax == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0; /* the first value of largest magnitude, as the scalar loop finds it */
        for (int k = 0; k < 32; k++) {
            int at = _mm256_movemask_ps(_mm256_cmp_ps(abs8(_mm256_loadu_ps(x + 8 * k)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
            if (at) {
                max = x[8 * k + __builtin_ctz((unsigned)at)];
                break;
            }
        }
        float iscale = -127.0f / max;
        for (int k = 0; k < 16; k++) {
            __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_set1_ps(iscale), _mm256_loadu_ps(x + 16 * k)));
            __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_set1_ps(iscale), _mm256_loadu_ps(x + 16 * k + 8)));
            a = _mm256_min_epi32(a, _mm256_set1_epi32(127));
            b = _mm256_min_epi32(b, _mm256_set1_epi32(127));
            store16_epi8(y[i].qs + 16 * k, a, b);
            y[i].bsums[k] = (int16_t)sum8_epi32(_mm256_add_epi32(a, b));
        }
        y[i].d = 1 / iscale;
    }
}

static bool quantize_with_avx2(void) {
    static int cached = -1;
    if (cached < 0) cached = tm_cpu_has(TM_CPU_AVX2) && tm_cpu_has(TM_CPU_FMA) && tm_cpu_has(TM_CPU_F16C);
    return cached == 1;
}

static bool quantize_with_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        cached = tm_cpu_has(TM_CPU_AVX512F) && tm_cpu_has(TM_CPU_AVX512BW) && tm_cpu_has(TM_CPU_AVX512VL) &&
                 tm_cpu_has(TM_CPU_F16C);
    }
    return cached == 1;
}
#endif

void tm_quant_quantize_activations_portable(uint32_t type, const float *x, void *out, int64_t cols) {
    if (tm_quant_is_k_type(type)) quantize_q8_k(x, out, cols / TM_QK_K);
    else quantize_q8(x, out, cols / TM_QK);
}

void tm_quant_quantize_activations(uint32_t type, const float *x, void *out, int64_t cols) {
#ifdef TM_X86
    if (quantize_with_avx512()) {
        if (tm_quant_is_k_type(type)) quantize_q8_k_avx512(x, out, cols / TM_QK_K);
        else quantize_q8_avx512(x, out, cols / TM_QK);
        return;
    }
    if (quantize_with_avx2()) {
        if (tm_quant_is_k_type(type)) quantize_q8_k_avx2(x, out, cols / TM_QK_K);
        else quantize_q8_avx2(x, out, cols / TM_QK);
        return;
    }
#endif
    if (tm_quant_is_k_type(type)) quantize_q8_k(x, out, cols / TM_QK_K);
    else quantize_q8(x, out, cols / TM_QK);
}

/* ---- portable dot products ------------------------------------------------- */
/* Each block's products are summed exactly in integers, then scaled once. */

static float dot_q8_0(const uint8_t *b, size_t stride, const tm_q8_block *a, int64_t nb) {
    float sum = 0;
    for (int64_t i = 0; i < nb; i++, b += stride) {
        int sumi = 0;
        for (int j = 0; j < TM_QK; j++) sumi += (int8_t)b[2 + j] * a[i].qs[j];
        sum += (float)sumi * (tm_block_f16(b) * a[i].d);
    }
    return sum;
}

static float dot_q4_0(const uint8_t *b, size_t stride, const tm_q8_block *a, int64_t nb) {
    float sum = 0;
    for (int64_t i = 0; i < nb; i++, b += stride) {
        int sumi = 0;
        for (int j = 0; j < TM_QK / 2; j++)
            sumi += ((b[2 + j] & 0x0F) - 8) * a[i].qs[j] + ((b[2 + j] >> 4) - 8) * a[i].qs[j + TM_QK / 2];
        sum += (float)sumi * (tm_block_f16(b) * a[i].d);
    }
    return sum;
}

static float dot_q4_1(const uint8_t *b, size_t stride, const tm_q8_block *a, int64_t nb) {
    float sum = 0;
    for (int64_t i = 0; i < nb; i++, b += stride) {
        int sumi = 0;
        for (int j = 0; j < TM_QK / 2; j++)
            sumi += (b[4 + j] & 0x0F) * a[i].qs[j] + (b[4 + j] >> 4) * a[i].qs[j + TM_QK / 2];
        sum += (float)sumi * (tm_block_f16(b) * a[i].d) + tm_block_f16(b + 2) * a[i].s;
    }
    return sum;
}

static float dot_q5_0(const uint8_t *b, size_t stride, const tm_q8_block *a, int64_t nb) {
    float sum = 0;
    for (int64_t i = 0; i < nb; i++, b += stride) {
        uint32_t qh = tm_block_u32(b + 2);
        int sumi = 0;
        for (int j = 0; j < TM_QK / 2; j++) {
            int high0 = (int)(((qh >> j) << 4) & 0x10), high1 = (int)((qh >> (j + 12)) & 0x10);
            sumi += (((b[6 + j] & 0x0F) | high0) - 16) * a[i].qs[j] +
                    (((b[6 + j] >> 4) | high1) - 16) * a[i].qs[j + TM_QK / 2];
        }
        sum += (float)sumi * (tm_block_f16(b) * a[i].d);
    }
    return sum;
}

static float dot_q5_1(const uint8_t *b, size_t stride, const tm_q8_block *a, int64_t nb) {
    float sum = 0;
    for (int64_t i = 0; i < nb; i++, b += stride) {
        uint32_t qh = tm_block_u32(b + 4);
        int sumi = 0;
        for (int j = 0; j < TM_QK / 2; j++) {
            int high0 = (int)(((qh >> j) << 4) & 0x10), high1 = (int)((qh >> (j + 12)) & 0x10);
            sumi += ((b[8 + j] & 0x0F) | high0) * a[i].qs[j] + ((b[8 + j] >> 4) | high1) * a[i].qs[j + TM_QK / 2];
        }
        sum += (float)sumi * (tm_block_f16(b) * a[i].d) + tm_block_f16(b + 2) * a[i].s;
    }
    return sum;
}

/* Sum over the 8 sub-blocks of min_j * (activation sum of sub-block j). */
static inline __attribute__((always_inline)) int k4_mins_dot(const uint8_t *scales, const tm_q8k_block *a, uint8_t sc[8]) {
    int mins = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t m;
        tm_block_scale_min_k4(j, scales, &sc[j], &m);
        mins += m * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
    }
    return mins;
}

static float dot_q4_k(const uint8_t *b, size_t stride, const tm_q8k_block *a, int64_t nb) {
    float sum = 0;
    for (int64_t i = 0; i < nb; i++, b += stride) {
        uint8_t sc[8];
        int mins = k4_mins_dot(b + 4, &a[i], sc), sumi = 0;
        const uint8_t *q = b + 16;
        const int8_t *x = a[i].qs;
        for (int j = 0; j < 4; j++, q += 32, x += 64) {
            int lo = 0, hi = 0;
            for (int l = 0; l < 32; l++) {
                lo += (q[l] & 0xF) * x[l];
                hi += (q[l] >> 4) * x[l + 32];
            }
            sumi += sc[2 * j] * lo + sc[2 * j + 1] * hi;
        }
        sum += tm_block_f16(b) * a[i].d * (float)sumi - tm_block_f16(b + 2) * a[i].d * (float)mins;
    }
    return sum;
}

static float dot_q5_k(const uint8_t *b, size_t stride, const tm_q8k_block *a, int64_t nb) {
    float sum = 0;
    for (int64_t i = 0; i < nb; i++, b += stride) {
        uint8_t sc[8];
        int mins = k4_mins_dot(b + 4, &a[i], sc), sumi = 0;
        const uint8_t *qh = b + 16, *q = b + 48;
        const int8_t *x = a[i].qs;
        for (int j = 0; j < 4; j++, q += 32, x += 64) {
            int lo = 0, hi = 0;
            for (int l = 0; l < 32; l++) {
                lo += ((q[l] & 0xF) | (((qh[l] >> (2 * j)) & 1) << 4)) * x[l];
                hi += ((q[l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4)) * x[l + 32];
            }
            sumi += sc[2 * j] * lo + sc[2 * j + 1] * hi;
        }
        sum += tm_block_f16(b) * a[i].d * (float)sumi - tm_block_f16(b + 2) * a[i].d * (float)mins;
    }
    return sum;
}

static float dot_q6_k(const uint8_t *b, size_t stride, const tm_q8k_block *a, int64_t nb) {
    float sum = 0;
    for (int64_t i = 0; i < nb; i++, b += stride) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192), *x = a[i].qs;
        int sumi = 0;
        for (int n = 0; n < 2; n++, ql += 64, qh += 32, sc += 8, x += 128) {
            int part[8] = {0};
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                part[is] += (((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32) * x[l];
                part[is + 2] += (((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32) * x[l + 32];
                part[is + 4] += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * x[l + 64];
                part[is + 6] += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * x[l + 96];
            }
            for (int g = 0; g < 8; g++) sumi += sc[g] * part[g];
        }
        sum += tm_block_f16(b + 208) * a[i].d * (float)sumi;
    }
    return sum;
}

/* The portable dot product of the row whose blocks start at b, stride bytes apart. */
static float dot_row_portable(uint32_t type, const uint8_t *b, size_t stride, const void *xq, int64_t cols) {
    switch (type) {
    case TM_GGML_Q8_0: return dot_q8_0(b, stride, xq, cols / TM_QK);
    case TM_GGML_Q4_0: return dot_q4_0(b, stride, xq, cols / TM_QK);
    case TM_GGML_Q4_1: return dot_q4_1(b, stride, xq, cols / TM_QK);
    case TM_GGML_Q5_0: return dot_q5_0(b, stride, xq, cols / TM_QK);
    case TM_GGML_Q5_1: return dot_q5_1(b, stride, xq, cols / TM_QK);
    case TM_GGML_Q4_K: return dot_q4_k(b, stride, xq, cols / TM_QK_K);
    case TM_GGML_Q5_K: return dot_q5_k(b, stride, xq, cols / TM_QK_K);
    case TM_GGML_Q6_K: return dot_q6_k(b, stride, xq, cols / TM_QK_K);
    default: return 0;
    }
}

float tm_quant_dot_portable(uint32_t type, const void *row, const void *xq, int64_t cols) {
    return dot_row_portable(type, row, (size_t)tm_ggml_block_bytes(type), xq, cols);
}

/* ---- AVX2 dot products ------------------------------------------------------ */

#ifdef TM_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float hsum_ps(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

AVX2 static inline float half_fast(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* Sum of products of 32 signed bytes, as 8 int32 lanes: the sign of x moves
 * onto y so that maddubs (unsigned x signed) can multiply. */
AVX2 static inline __m256i dot_i8(__m256i x, __m256i y) {
    __m256i products = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(products, _mm256_set1_epi16(1));
}

/* Sum of products of 32 unsigned bytes (< 128) with 32 signed bytes. */
AVX2 static inline __m256i dot_u8_i8(__m256i x, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

/* The 32 4-bit values of 16 bytes: low nibbles first, then high nibbles. */
AVX2 static inline __m256i nibbles_32(const uint8_t *p) {
    __m128i bytes = _mm_loadu_si128((const __m128i *)p);
    __m256i both = _mm256_insertf128_si256(_mm256_castsi128_si256(bytes), _mm_srli_epi16(bytes, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

/* The fifth bits of a Q5 block as 0x10 in each of 32 bytes. */
AVX2 static inline __m256i fifth_bits_32(const uint8_t *qh) {
    uint32_t bits = tm_block_u32(qh);
    __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits),
                                         _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                                           0x0101010101010101LL, 0x0000000000000000LL));
    __m256i mask = _mm256_set1_epi64x((long long)0x7fbfdfeff7fbfdfeULL);
    spread = _mm256_or_si256(spread, mask);
    spread = _mm256_cmpeq_epi8(spread, _mm256_set1_epi64x(-1));
    return _mm256_and_si256(spread, _mm256_set1_epi8(0x10));
}

AVX2 static float dot_q8_0_avx2(const uint8_t *b, size_t stride, const tm_q8_block *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, b += stride) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(b + 2));
        __m256i x = _mm256_loadu_si256((const __m256i *)a[i].qs);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_fast(b) * a[i].d), _mm256_cvtepi32_ps(dot_i8(w, x)), acc);
    }
    return hsum_ps(acc);
}

/* The nibbles are multiplied unsigned (0..15) and the offset of 8 comes off
 * once per block through the activations' sum: two fewer operations per block
 * than making them signed. */
AVX2 static float dot_q4_0_avx2(const uint8_t *b, size_t stride, const tm_q8_block *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0;
    for (int64_t i = 0; i < nb; i++, b += stride) {
        __m256i x = _mm256_loadu_si256((const __m256i *)a[i].qs);
        float d = half_fast(b) * a[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot_u8_i8(nibbles_32(b + 2), x)), acc);
        offsets += d * (float)(8 * a[i].sum);
    }
    return hsum_ps(acc) - offsets;
}

AVX2 static float dot_q4_1_avx2(const uint8_t *b, size_t stride, const tm_q8_block *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t i = 0; i < nb; i++, b += stride) {
        __m256i x = _mm256_loadu_si256((const __m256i *)a[i].qs);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_fast(b) * a[i].d), _mm256_cvtepi32_ps(dot_u8_i8(nibbles_32(b + 4), x)),
                              acc);
        mins += half_fast(b + 2) * a[i].s;
    }
    return hsum_ps(acc) + mins;
}

AVX2 static float dot_q5_0_avx2(const uint8_t *b, size_t stride, const tm_q8_block *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, b += stride) {
        __m256i w = _mm256_or_si256(nibbles_32(b + 6), fifth_bits_32(b + 2));
        w = _mm256_sub_epi8(w, _mm256_set1_epi8(16));
        __m256i x = _mm256_loadu_si256((const __m256i *)a[i].qs);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_fast(b) * a[i].d), _mm256_cvtepi32_ps(dot_i8(w, x)), acc);
    }
    return hsum_ps(acc);
}

AVX2 static float dot_q5_1_avx2(const uint8_t *b, size_t stride, const tm_q8_block *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t i = 0; i < nb; i++, b += stride) {
        __m256i w = _mm256_or_si256(nibbles_32(b + 8), fifth_bits_32(b + 4));
        __m256i x = _mm256_loadu_si256((const __m256i *)a[i].qs);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_fast(b) * a[i].d), _mm256_cvtepi32_ps(dot_u8_i8(w, x)), acc);
        mins += half_fast(b + 2) * a[i].s;
    }
    return hsum_ps(acc) + mins;
}

AVX2 __attribute__((unused)) static inline int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

AVX2 static float dot_q4_k_avx2(const uint8_t *b, size_t stride, const tm_q8k_block *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float mins_total = 0;
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < nb; i++, b += stride) {
        uint8_t sc[8];
        int mins = k4_mins_dot(b + 4, &a[i], sc);
        const uint8_t *q = b + 16;
        const int8_t *x = a[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++, q += 32, x += 64) {
            __m256i bytes = _mm256_loadu_si256((const __m256i *)q);
            __m256i lo = _mm256_and_si256(bytes, low), hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low);
            __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)x));
            __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(x + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * j])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * j + 1])));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_fast(b) * a[i].d), _mm256_cvtepi32_ps(sumi), acc);
        mins_total += half_fast(b + 2) * a[i].d * (float)mins;
    }
    return hsum_ps(acc) - mins_total;
}

AVX2 static float dot_q5_k_avx2(const uint8_t *b, size_t stride, const tm_q8k_block *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float mins_total = 0;
    const __m256i low = _mm256_set1_epi8(0x0F), bit = _mm256_set1_epi8(0x10);
    for (int64_t i = 0; i < nb; i++, b += stride) {
        uint8_t sc[8];
        int mins = k4_mins_dot(b + 4, &a[i], sc);
        const uint8_t *q = b + 48;
        const int8_t *x = a[i].qs;
        __m256i high = _mm256_loadu_si256((const __m256i *)(b + 16));
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++, q += 32, x += 64) {
            __m256i bytes = _mm256_loadu_si256((const __m256i *)q);
            /* bit 2j of qh is the fifth bit of the low nibbles, bit 2j+1 of the high ones */
            __m256i hlo = _mm256_and_si256(_mm256_slli_epi16(high, 4), bit);
            __m256i hhi = _mm256_and_si256(_mm256_slli_epi16(high, 3), bit);
            high = _mm256_srli_epi16(high, 2);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(bytes, low), hlo);
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bytes, 4), low), hhi);
            __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)x));
            __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(x + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * j])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * j + 1])));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_fast(b) * a[i].d), _mm256_cvtepi32_ps(sumi), acc);
        mins_total += half_fast(b + 2) * a[i].d * (float)mins;
    }
    return hsum_ps(acc) - mins_total;
}

/* Q6_K: the 6-bit quants are taken unsigned (0..63) and the offset of 32 is
 * removed afterwards through the activations' 16-element sums. */
AVX2 static float dot_q6_k_avx2(const uint8_t *b, size_t stride, const tm_q8k_block *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0;
    const __m256i low = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x30);
    for (int64_t i = 0; i < nb; i++, b += stride) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192), *x = a[i].qs;
        int offset = 0;
        for (int g = 0; g < 16; g++) offset += sc[g] * a[i].bsums[g];
        __m256i sumi = _mm256_setzero_si256();
        for (int n = 0; n < 2; n++, ql += 64, qh += 32, sc += 8, x += 128) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q1 = _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_and_si256(_mm256_slli_epi16(h, 4), two));
            __m256i q2 = _mm256_or_si256(_mm256_and_si256(l1, low), _mm256_and_si256(_mm256_slli_epi16(h, 2), two));
            __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(h, two));
            __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                                         _mm256_and_si256(_mm256_srli_epi16(h, 2), two));
            __m256i quads[4] = {q1, q2, q3, q4};
            for (int k = 0; k < 4; k++) {
                __m256i p = _mm256_maddubs_epi16(quads[k], _mm256_loadu_si256((const __m256i *)(x + 32 * k)));
                __m256i scales = _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scales));
            }
        }
        float d = half_fast(b + 208) * a[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        offsets += d * (float)(32 * offset);
    }
    return hsum_ps(acc) - offsets;
}

/* ---- VNNI dot products ------------------------------------------------------ */
/* vpdpbusd multiplies 32 unsigned by 32 signed bytes and adds each group of
 * four products into an int32 lane: one instruction for AVX2's
 * maddubs + madd + add. vpdpwssd does the same for pairs of int16, which
 * applies the K types' sub-block scales in the same step as the sum. The
 * kernels are written once and compiled twice, for AVX-VNNI (VEX) and for
 * AVX512-VNNI with AVX512VL (EVEX): the same 256-bit instructions in two
 * encodings, because CPUs have either one, the other or both.
 *
 * Several rows go through one pass over the activations, so each activation
 * block (and what is derived from it) is loaded once per group of rows. A
 * group that runs past the last row repeats that row and drops the extra
 * results, so every row's arithmetic is the same wherever a thread's share
 * of the rows begins or ends (1 and 2 threads give the same bits).
 *
 * Signed weights (Q8_0) are made unsigned by flipping their sign bit, which
 * adds 128 to each; the 128 * sum(x) this adds is taken off by starting the
 * int32 accumulator at -128 * sum(x). Q4_0's nibbles are used as they are
 * (0..15) with the accumulator starting at -8 * sum(x). Each block's integer
 * sum is exact, so only the float accumulation of the scaled block sums can
 * round differently from the portable path. */

#define VNNI_ROWS 4 /* rows one row_sums/row_scales call combines (Q8_0 and Q4_0 take two at a time) */
#define VNNI_K_ROWS 4 /* rows per pass of the K kernels */

static inline uint16_t u16_at(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Row pointers of a group starting at row r, padded by repeating the last row. */
static inline void group_rows(const uint8_t **p, int count, const tm_quant_rows *m, int64_t r, int64_t end) {
    for (int k = 0; k < count; k++) p[k] = tm_quant_row(m, r + k < end ? r + k : end - 1);
}

/* llama.cpp's 6-bit scale/min unpacking of a Q4_K/Q5_K super-block (scales
 * 0..7 in bytes 0..7, mins 0..7 in bytes 8..15) for two rows at once, one per
 * 128-bit lane: the 32-bit words u0 u1 u2 of each row as [u0, u2, u1, u2 >> 4]
 * masked to 6, 4, 6 and 4 bits, with the top two bits of u0 and u1 as bits
 * 4-5 of words 1 and 3. */
AVX2 static inline __m256i k4_scales_mins_x2(const uint8_t *row0, const uint8_t *row1) {
    __m256i v = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(row1 + 4)), _mm_loadu_si128((const __m128i *)(row0 + 4)));
    __m256i a = _mm256_srlv_epi32(_mm256_shuffle_epi32(v, 0x98), _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4));
    __m256i b = _mm256_srli_epi32(_mm256_shuffle_epi32(v, 0x40), 2);
    __m256i low = _mm256_and_si256(a, _mm256_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f,
                                                        0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    return _mm256_or_si256(low, _mm256_and_si256(b, _mm256_setr_epi32(0, 0x30303030, 0, 0x30303030, 0, 0x30303030, 0,
                                                                      0x30303030)));
}

/* A K block's d and dmin (its first four bytes), converted together and
 * times the activations' scale: lane 0 d * dx, lane 1 dmin * dx. */
AVX2 static inline __m128 k_block_scales(const uint8_t *b, float dx) {
    return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)tm_block_u32(b))), _mm_set1_ps(dx));
}

/* ---- AVX2 kernels over groups of rows ---------------------------------------- */
/* The decode path of CPUs without VNNI. One row at a time, each block's float
 * work (scale conversion, int-to-float, fused multiply-add) sits on a single
 * accumulator's dependency chain, so the core waits on latency, not on memory:
 * the 110M-shaped Q8_0 model decoded at half the bandwidth bound on an
 * AVX2-only EPYC. These kernels run AVX2_ROWS rows through one pass over the
 * activations with one accumulator per row (independent chains the core
 * overlaps) and load each activation block once per group. Each row's arithmetic is, operation
 * for operation, the single-row kernel's above, so the results are the same
 * bits (tests/test_quant.c checks it through tm_quant_dot_avx2_row). A group
 * that runs past the last row repeats that row and drops the extra results. */
#define AVX2_ROWS 4

/* Q8_0 and Q4_0 take 8 rows per pass in the VNNI kernels' form: each row's
 * integer block sum (exact) goes into one lane of a vector, so the float work
 * of a block (scales, conversion, fused multiply-add) is one vector operation
 * for 8 rows instead of one per row. Each row then accumulates its blocks in
 * one float lane, as the VNNI paths do, so these two types give the VNNI
 * paths' bits (not the single-row kernel's; tests/test_quant.c checks both). */
AVX2 static inline __m128i row_sums4_avx2(__m256i s0, __m256i s1, __m256i s2, __m256i s3) {
    __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(s0, s1), _mm256_hadd_epi32(s2, s3));
    return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

AVX2 static inline __m256i row_sums8_avx2(const __m256i *s) {
    return _mm256_set_m128i(row_sums4_avx2(s[4], s[5], s[6], s[7]), row_sums4_avx2(s[0], s[1], s[2], s[3]));
}

AVX2 static inline __m256 row_scales8_avx2(const uint8_t *const *p, size_t o, float dx) {
    __m128i h = _mm_setr_epi16((short)u16_at(p[0] + o), (short)u16_at(p[1] + o), (short)u16_at(p[2] + o),
                               (short)u16_at(p[3] + o), (short)u16_at(p[4] + o), (short)u16_at(p[5] + o),
                               (short)u16_at(p[6] + o), (short)u16_at(p[7] + o));
    return _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(dx));
}

AVX2 static void matvec_q8_0_avx2(const tm_quant_rows *m, const tm_q8_block *a, float *y, int64_t begin,
                                  int64_t end, int64_t nb) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t r = begin; r < end; r += 8) {
        const uint8_t *p[8];
        group_rows(p, 8, m, r, end);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = 0; i < nb; i++) {
            size_t o = (size_t)i * m->stride;
            __m256i x = _mm256_loadu_si256((const __m256i *)a[i].qs);
            __m256i s[8];
            for (int k = 0; k < 8; k++) {
                /* |w| times x with w's sign (dot_i8): |w| as unsigned is right
                 * even for a weight of -128, which negating x's side would not be */
                __m256i q = _mm256_loadu_si256((const __m256i *)(p[k] + o + 2));
                s[k] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q)), ones);
            }
            acc = _mm256_fmadd_ps(row_scales8_avx2(p, o, a[i].d), _mm256_cvtepi32_ps(row_sums8_avx2(s)), acc);
        }
        float out[8];
        _mm256_storeu_ps(out, acc);
        for (int k = 0; k < 8 && r + k < end; k++) y[r + k] = out[k];
    }
}

/* Two blocks of each of the 8 rows per step: the two blocks' nibbles share
 * one 256-bit unpacking (block i in the low lane, i + 1 in the high one,
 * against the activations laid out the same way), the lane sums of 8 rows
 * reduce to both blocks' row sums in one tree, and one prefetch covers the
 * 36 bytes. The integer sums are exact and each row's float steps are the
 * one-block loop's in the same order, so the bits are the same. */
AVX2 static void matvec_q4_0_avx2(const tm_quant_rows *m, const tm_q8_block *a, float *y, int64_t begin,
                                  int64_t end, int64_t nb) {
    const __m256i low = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    for (int64_t r = begin; r < end; r += 8) {
        const uint8_t *p[8];
        group_rows(p, 8, m, r, end);
        __m256 acc = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 2 <= nb; i += 2) {
            size_t o = (size_t)i * m->stride, o1 = o + m->stride;
            __m256i xl = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)a[i + 1].qs),
                                          _mm_loadu_si128((const __m128i *)a[i].qs));
            __m256i xh = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(a[i + 1].qs + 16)),
                                          _mm_loadu_si128((const __m128i *)(a[i].qs + 16)));
            __m256i s[8];
            for (int k = 0; k < 8; k++) {
                __m256i q = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(p[k] + o1 + 2)),
                                             _mm_loadu_si128((const __m128i *)(p[k] + o + 2)));
                __m256i lo = _mm256_and_si256(q, low), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
                /* pairs of products are at most 2 * 15 * 128 in magnitude: two add in int16 */
                s[k] = _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_maddubs_epi16(hi, xh)),
                                         ones);
            }
            /* lanes 0..3 of each 128-bit half: block i of rows 0..3 (low) and 4..7 (high
             * tree); lanes 4..7: block i + 1 */
            __m256i t0 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
            __m256i t1 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));
            __m256i b0 = _mm256_add_epi32(_mm256_permute2x128_si256(t0, t1, 0x20), _mm256_set1_epi32(-8 * a[i].sum));
            __m256i b1 = _mm256_add_epi32(_mm256_permute2x128_si256(t0, t1, 0x31), _mm256_set1_epi32(-8 * a[i + 1].sum));
            acc = _mm256_fmadd_ps(row_scales8_avx2(p, o, a[i].d), _mm256_cvtepi32_ps(b0), acc);
            acc = _mm256_fmadd_ps(row_scales8_avx2(p, o1, a[i + 1].d), _mm256_cvtepi32_ps(b1), acc);
        }
        for (; i < nb; i++) {
            size_t o = (size_t)i * m->stride;
            __m256i x = _mm256_loadu_si256((const __m256i *)a[i].qs);
            /* the offset of 8 comes off in integers, as in the VNNI kernel */
            __m256i start = _mm256_castsi128_si256(_mm_cvtsi32_si128(-8 * a[i].sum));
            __m256i s[8];
            for (int k = 0; k < 8; k++) {
                __m128i q = _mm_loadu_si128((const __m128i *)(p[k] + o + 2));
                __m256i n = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low);
                s[k] = _mm256_add_epi32(start, _mm256_madd_epi16(_mm256_maddubs_epi16(n, x), ones));
            }
            acc = _mm256_fmadd_ps(row_scales8_avx2(p, o, a[i].d), _mm256_cvtepi32_ps(row_sums8_avx2(s)), acc);
        }
        float out[8];
        _mm256_storeu_ps(out, acc);
        for (int k = 0; k < 8 && r + k < end; k++) y[r + k] = out[k];
    }
}

/* Q4_K and Q5_K: AVX2_ROWS rows of one super-block at a time. FIVE adds the
 * fifth bits (qh) of Q5_K. */
AVX2 static inline __attribute__((always_inline)) void matvec_k4_avx2(const tm_quant_rows *m,
                                                                      const tm_q8k_block *a, float *y, int64_t begin,
                                                                      int64_t end, int64_t nb, bool five) {
    const __m256i low = _mm256_set1_epi8(0x0F), bit = _mm256_set1_epi8(0x10);
    for (int64_t r = begin; r < end; r += AVX2_ROWS) {
        const uint8_t *p[AVX2_ROWS];
        group_rows(p, AVX2_ROWS, m, r, end);
        __m256 acc[AVX2_ROWS];
        float mins_total[AVX2_ROWS];
        for (int k = 0; k < AVX2_ROWS; k++) {
            acc[k] = _mm256_setzero_ps();
            mins_total[k] = 0;
        }
        for (int64_t i = 0; i < nb; i++) {
            size_t o = (size_t)i * m->stride;
            __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)a[i].bsums),
                                           _mm_loadu_si128((const __m128i *)(a[i].bsums + 8)));
            __m256i packed[AVX2_ROWS / 2];
            for (int k = 0; k < AVX2_ROWS; k += 2) packed[k / 2] = k4_scales_mins_x2(p[k] + o, p[k + 1] + o);
            for (int k = 0; k < AVX2_ROWS; k++) {
                const uint8_t *b = p[k] + o;
                /* scales and mins unpacked in vector form; the mins' integer sum
                 * is the scalar kernel's exactly */
                __m256i scales_mins = _mm256_cvtepu8_epi16(k % 2 ? _mm256_extracti128_si256(packed[k / 2], 1)
                                                                 : _mm256_castsi256_si128(packed[k / 2]));
                __m128 dm = k_block_scales(b, a[i].d);
                __m128i m4 = _mm_madd_epi16(_mm256_extracti128_si256(scales_mins, 1), pairs);
                m4 = _mm_add_epi32(m4, _mm_shuffle_epi32(m4, 0x4E));
                m4 = _mm_add_epi32(m4, _mm_shuffle_epi32(m4, 0xB1));
                int mins = _mm_cvtsi128_si32(m4);
                __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(scales_mins));
                const uint8_t *q = b + (five ? 48 : 16);
                const int8_t *x = a[i].qs;
                __m256i high = five ? _mm256_loadu_si256((const __m256i *)(b + 16)) : _mm256_setzero_si256();
                __m256i sumi = _mm256_setzero_si256();
                for (int j = 0; j < 4; j++, q += 32, x += 64) {
                    __m256i bytes = _mm256_loadu_si256((const __m256i *)q);
                    __m256i lo = _mm256_and_si256(bytes, low), hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low);
                    if (five) {
                        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(high, 4), bit));
                        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(high, 3), bit));
                        high = _mm256_srli_epi16(high, 2);
                    }
                    __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)x));
                    __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(x + 32)));
                    __m256i slo = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0100 + 0x0404 * j)));
                    __m256i shi = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0302 + 0x0404 * j)));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, slo));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, shi));
                }
                acc[k] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), _mm256_cvtepi32_ps(sumi), acc[k]);
                mins_total[k] += _mm_cvtss_f32(_mm_movehdup_ps(dm)) * (float)mins;
            }
        }
        for (int k = 0; k < AVX2_ROWS && r + k < end; k++) y[r + k] = hsum_ps(acc[k]) - mins_total[k];
    }
}

AVX2 static void matvec_q4_k_avx2(const tm_quant_rows *m, const tm_q8k_block *a, float *y, int64_t begin,
                                  int64_t end, int64_t nb) {
    matvec_k4_avx2(m, a, y, begin, end, nb, false);
}

AVX2 static void matvec_q5_k_avx2(const tm_quant_rows *m, const tm_q8k_block *a, float *y, int64_t begin,
                                  int64_t end, int64_t nb) {
    matvec_k4_avx2(m, a, y, begin, end, nb, true);
}

AVX2 static void matvec_q6_k_avx2(const tm_quant_rows *m, const tm_q8k_block *a, float *y, int64_t begin,
                                  int64_t end, int64_t nb) {
    const __m256i low = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x30);
    for (int64_t r = begin; r < end; r += AVX2_ROWS) {
        const uint8_t *p[AVX2_ROWS];
        group_rows(p, AVX2_ROWS, m, r, end);
        __m256 acc[AVX2_ROWS];
        float offsets[AVX2_ROWS];
        for (int k = 0; k < AVX2_ROWS; k++) {
            acc[k] = _mm256_setzero_ps();
            offsets[k] = 0;
        }
        for (int64_t i = 0; i < nb; i++) {
            size_t o = (size_t)i * m->stride;
            __m256i bsums = _mm256_loadu_si256((const __m256i *)a[i].bsums);
            for (int k = 0; k < AVX2_ROWS; k++) {
                const uint8_t *b = p[k] + o, *ql = b, *qh = b + 128;
                const int8_t *x = a[i].qs;
                /* sum of scale * 16-element activation sum, exact in int32 as the scalar loop's */
                __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192)));
                __m256i o8 = _mm256_madd_epi16(scales16, bsums);
                __m128i o4 = _mm_add_epi32(_mm256_castsi256_si128(o8), _mm256_extracti128_si256(o8, 1));
                o4 = _mm_add_epi32(o4, _mm_shuffle_epi32(o4, 0x4E));
                o4 = _mm_add_epi32(o4, _mm_shuffle_epi32(o4, 0xB1));
                int offset = _mm_cvtsi128_si32(o4);
                __m256i sumi = _mm256_setzero_si256();
                for (int n = 0; n < 2; n++, ql += 64, qh += 32, x += 128) {
                    __m256i scales = _mm256_broadcastsi128_si256(n ? _mm256_extracti128_si256(scales16, 1)
                                                                   : _mm256_castsi256_si128(scales16));
                    __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
                    __m256i h = _mm256_loadu_si256((const __m256i *)qh);
                    __m256i quads[4];
                    quads[0] = _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_and_si256(_mm256_slli_epi16(h, 4), two));
                    quads[1] = _mm256_or_si256(_mm256_and_si256(l1, low), _mm256_and_si256(_mm256_slli_epi16(h, 2), two));
                    quads[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(h, two));
                    quads[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                                               _mm256_and_si256(_mm256_srli_epi16(h, 2), two));
                    for (int g = 0; g < 4; g++) {
                        /* elements 0..15 take scale 2g of this half, 16..31 scale 2g+1 */
                        __m256i pick = _mm256_set_m128i(_mm_set1_epi16((short)(0x0302 + 0x0404 * g)),
                                                        _mm_set1_epi16((short)(0x0100 + 0x0404 * g)));
                        __m256i prod = _mm256_maddubs_epi16(quads[g], _mm256_loadu_si256((const __m256i *)(x + 32 * g)));
                        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(prod, _mm256_shuffle_epi8(scales, pick)));
                    }
                }
                float d = half_fast(b + 208) * a[i].d;
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[k]);
                offsets[k] += d * (float)(32 * offset);
            }
        }
        for (int k = 0; k < AVX2_ROWS && r + k < end; k++) y[r + k] = hsum_ps(acc[k]) - offsets[k];
    }
}

/* True when the AVX2 path has a multi-row kernel for the type (Q4_1, Q5_0
 * and Q5_1 go one row at a time). */
static bool matvec_avx2(uint32_t type, const tm_quant_rows *m, const void *xq, float *y, int64_t begin,
                        int64_t end, int64_t nb) {
    switch (type) {
    case TM_GGML_Q8_0: matvec_q8_0_avx2(m, xq, y, begin, end, nb); return true;
    case TM_GGML_Q4_0: matvec_q4_0_avx2(m, xq, y, begin, end, nb); return true;
    case TM_GGML_Q4_K: matvec_q4_k_avx2(m, xq, y, begin, end, nb); return true;
    case TM_GGML_Q5_K: matvec_q5_k_avx2(m, xq, y, begin, end, nb); return true;
    case TM_GGML_Q6_K: matvec_q6_k_avx2(m, xq, y, begin, end, nb); return true;
    default: return false;
    }
}


#define DEFINE_VNNI_KERNELS(SUFFIX, TARGET, DPBUSD, DPWSSD)                                                          \
    /* Integer block sums of VNNI_ROWS rows -> [row0..row3] as 4 int32. */                                            \
    TARGET static inline __m128i row_sums_##SUFFIX(__m256i s0, __m256i s1, __m256i s2, __m256i s3) {                  \
        __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(s0, s1), _mm256_hadd_epi32(s2, s3));                          \
        return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));                              \
    }                                                                                                                 \
    /* F16 scales of one block of each of VNNI_ROWS rows, times the activations' scale. */                            \
    TARGET __attribute__((unused)) static inline __m128 row_scales_##SUFFIX(const uint8_t *const *p, size_t o,       \
                                                                         float dx) {                             \
        __m128i h = _mm_setr_epi16((short)u16_at(p[0] + o), (short)u16_at(p[1] + o), (short)u16_at(p[2] + o),         \
                                   (short)u16_at(p[3] + o), 0, 0, 0, 0);                                              \
        return _mm_mul_ps(_mm_cvtph_ps(h), _mm_set1_ps(dx));                                                          \
    }                                                                                                                 \
    /* The same for 8 rows, in 256-bit vectors. */                                                                  \
    TARGET static inline __m256i row_sums8_##SUFFIX(const __m256i *s) {                                               \
        return _mm256_set_m128i(row_sums_##SUFFIX(s[4], s[5], s[6], s[7]), row_sums_##SUFFIX(s[0], s[1], s[2], s[3])); \
    }                                                                                                                 \
    TARGET static inline __m256 row_scales8_##SUFFIX(const uint8_t *const *p, size_t o, float dx) {                    \
        __m128i h = _mm_setr_epi16((short)u16_at(p[0] + o), (short)u16_at(p[1] + o), (short)u16_at(p[2] + o),         \
                                   (short)u16_at(p[3] + o), (short)u16_at(p[4] + o), (short)u16_at(p[5] + o),         \
                                   (short)u16_at(p[6] + o), (short)u16_at(p[7] + o));                                 \
        return _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(dx));                                                 \
    }                                                                                                                 \
    TARGET static void matvec_q8_0_##SUFFIX(const tm_quant_rows *m, const tm_q8_block *a, float *y,       \
                                           int64_t begin, int64_t end, int64_t nb) {                                 \
        /* 8 rows per pass, as Q4_0 below. */                                                                        \
        const __m256i flip = _mm256_set1_epi8((char)0x80);                                                            \
        for (int64_t r = begin; r < end; r += 8) {                                                                    \
            const uint8_t *p[8];                                                                                      \
            group_rows(p, 8, m, r, end);                                                                   \
            __m256 acc = _mm256_setzero_ps();                                                                         \
            for (int64_t i = 0; i < nb; i++) {                                                                        \
                size_t o = (size_t)i * m->stride;                                                                    \
                __m256i x = _mm256_loadu_si256((const __m256i *)a[i].qs);                                             \
                __m256i start = _mm256_castsi128_si256(_mm_cvtsi32_si128(-128 * a[i].sum));                          \
                __m256i s[8];                                                                                         \
                for (int k = 0; k < 8; k++)                                                                           \
                    s[k] = DPBUSD(start, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p[k] + o + 2)), flip), \
                                  x);                                                                                 \
                acc = _mm256_fmadd_ps(row_scales8_##SUFFIX(p, o, a[i].d), _mm256_cvtepi32_ps(row_sums8_##SUFFIX(s)), acc); \
            }                                                                                                         \
            float out[8];                                                                                             \
            _mm256_storeu_ps(out, acc);                                                                               \
            for (int k = 0; k < 8 && r + k < end; k++) y[r + k] = out[k];                                             \
        }                                                                                                             \
    }                                                                                                                 \
    TARGET static void matvec_q4_0_##SUFFIX(const tm_quant_rows *m, const tm_q8_block *a, float *y,       \
                                           int64_t begin, int64_t end, int64_t nb) {                                 \
        /* 8 rows per pass: the activations, and the float work of a block (scales,                                  \
         * conversion, accumulation), are shared by 8 rows in 256-bit vectors; two blocks                           \
         * per step as matvec_q4_0_avx2 takes them (the same bits). */                                               \
        const __m256i low = _mm256_set1_epi8(0x0F);                                                                   \
        for (int64_t r = begin; r < end; r += 8) {                                                                    \
            const uint8_t *p[8];                                                                                      \
            group_rows(p, 8, m, r, end);                                                                   \
            __m256 acc = _mm256_setzero_ps();                                                                         \
            int64_t i = 0;                                                                                            \
            for (; i + 2 <= nb; i += 2) {                                                                             \
                size_t o = (size_t)i * m->stride, o1 = o + m->stride;                                            \
                __m256i xl = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)a[i + 1].qs),                          \
                                              _mm_loadu_si128((const __m128i *)a[i].qs));                              \
                __m256i xh = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(a[i + 1].qs + 16)),                   \
                                              _mm_loadu_si128((const __m128i *)(a[i].qs + 16)));                       \
                __m256i s[8];                                                                                         \
                for (int k = 0; k < 8; k++) {                                                                         \
                    __m256i q = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(p[k] + o1 + 2)),                   \
                                                 _mm_loadu_si128((const __m128i *)(p[k] + o + 2)));                    \
                    __m256i lo = _mm256_and_si256(q, low), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);       \
                    s[k] = DPBUSD(DPBUSD(_mm256_setzero_si256(), lo, xl), hi, xh);                                    \
                }                                                                                                     \
                __m256i t0 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));        \
                __m256i t1 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));        \
                __m256i b0 = _mm256_add_epi32(_mm256_permute2x128_si256(t0, t1, 0x20),                                \
                                              _mm256_set1_epi32(-8 * a[i].sum));                                      \
                __m256i b1 = _mm256_add_epi32(_mm256_permute2x128_si256(t0, t1, 0x31),                                \
                                              _mm256_set1_epi32(-8 * a[i + 1].sum));                                  \
                acc = _mm256_fmadd_ps(row_scales8_##SUFFIX(p, o, a[i].d), _mm256_cvtepi32_ps(b0), acc);               \
                acc = _mm256_fmadd_ps(row_scales8_##SUFFIX(p, o1, a[i + 1].d), _mm256_cvtepi32_ps(b1), acc);          \
            }                                                                                                         \
            for (; i < nb; i++) {                                                                                     \
                size_t o = (size_t)i * m->stride;                                                                    \
                __m256i x = _mm256_loadu_si256((const __m256i *)a[i].qs);                                             \
                __m256i start = _mm256_castsi128_si256(_mm_cvtsi32_si128(-8 * a[i].sum));                            \
                __m256i s[8];                                                                                         \
                for (int k = 0; k < 8; k++) {                                                                         \
                    __m128i q = _mm_loadu_si128((const __m128i *)(p[k] + o + 2));                                     \
                    __m256i n = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low);                     \
                    s[k] = DPBUSD(start, n, x);                                                                       \
                }                                                                                                     \
                acc = _mm256_fmadd_ps(row_scales8_##SUFFIX(p, o, a[i].d), _mm256_cvtepi32_ps(row_sums8_##SUFFIX(s)), acc); \
            }                                                                                                         \
            float out[8];                                                                                             \
            _mm256_storeu_ps(out, acc);                                                                               \
            for (int k = 0; k < 8 && r + k < end; k++) y[r + k] = out[k];                                             \
        }                                                                                                             \
    }                                                                                                                 \
    /* Q4_K: per super-block the 8 scales and mins are unpacked in vector form; the                                  \
     * nibbles times the activations (maddubs, < 2^15) meet their sub-block's scale in                               \
     * vpdpwssd; the mins meet the activations' pair sums of bsums in one madd. */                                    \
    TARGET static void matvec_q4_k_##SUFFIX(const tm_quant_rows *m, const tm_q8k_block *a, float *y,      \
                                           int64_t begin, int64_t end, int64_t nb) {                                 \
        const __m256i low = _mm256_set1_epi8(0x0F);                                                                   \
        for (int64_t r = begin; r < end; r += VNNI_K_ROWS) {                                                          \
            const uint8_t *p[VNNI_K_ROWS];                                                                            \
            group_rows(p, VNNI_K_ROWS, m, r, end);                                                         \
            __m256 acc[VNNI_K_ROWS];                                                                                  \
            __m128 mins_acc[VNNI_K_ROWS];                                                                             \
            for (int k = 0; k < VNNI_K_ROWS; k++) {                                                                   \
                acc[k] = _mm256_setzero_ps();                                                                         \
                mins_acc[k] = _mm_setzero_ps();                                                                       \
            }                                                                                                         \
            for (int64_t i = 0; i < nb; i++) {                                                                        \
                size_t o = (size_t)i * m->stride;                                                                    \
                const int8_t *x = a[i].qs;                                                                            \
                __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)a[i].bsums),                          \
                                               _mm_loadu_si128((const __m128i *)(a[i].bsums + 8)));                   \
                __m256i packed[VNNI_K_ROWS / 2];                                                                      \
                for (int k = 0; k < VNNI_K_ROWS; k += 2) packed[k / 2] = k4_scales_mins_x2(p[k] + o, p[k + 1] + o);     \
                for (int k = 0; k < VNNI_K_ROWS; k++) {                                                               \
                    const uint8_t *b = p[k] + o;                                                                      \
                    __m256i scales_mins = _mm256_cvtepu8_epi16(k % 2 ? _mm256_extracti128_si256(packed[k / 2], 1)      \
                                                                     : _mm256_castsi256_si128(packed[k / 2]));         \
                    __m128 dm = k_block_scales(b, a[i].d);                                                            \
                    __m128i mins = _mm_madd_epi16(_mm256_extracti128_si256(scales_mins, 1), pairs);                   \
                    mins_acc[k] = _mm_fmadd_ps(_mm_permute_ps(dm, 0x55), _mm_cvtepi32_ps(mins), mins_acc[k]);         \
                    __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(scales_mins));                \
                    __m256i sumi = _mm256_setzero_si256();                                                            \
                    for (int j = 0; j < 4; j++) {                                                                     \
                        __m256i bytes = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * j));                       \
                        __m256i lo = _mm256_and_si256(bytes, low);                                                    \
                        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low);                              \
                        __m256i slo = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0100 + 0x0404 * j)));   \
                        __m256i shi = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0302 + 0x0404 * j)));   \
                        sumi = DPWSSD(sumi,                                                                           \
                                      _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(x + 64 * j))),    \
                                      slo);                                                                           \
                        sumi = DPWSSD(                                                                                \
                            sumi, _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(x + 64 * j + 32))),   \
                            shi);                                                                                     \
                    }                                                                                                 \
                    acc[k] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), _mm256_cvtepi32_ps(sumi), acc[k]);            \
                }                                                                                                     \
            }                                                                                                         \
            for (int k = 0; k < VNNI_K_ROWS && r + k < end; k++) {                                                    \
                __m128 m = _mm_add_ps(mins_acc[k], _mm_movehl_ps(mins_acc[k], mins_acc[k]));                          \
                m = _mm_add_ss(m, _mm_movehdup_ps(m));                                                                \
                y[r + k] = hsum_ps(acc[k]) - _mm_cvtss_f32(m);                                                        \
            }                                                                                                         \
        }                                                                                                             \
    }                                                                                                                 \
    /* Q6_K: quants taken unsigned (0..63); the offset of 32 comes off in integers                                   \
     * through the scales times the activations' 16-element sums. */                                                  \
    TARGET static void matvec_q6_k_##SUFFIX(const tm_quant_rows *m, const tm_q8k_block *a, float *y,      \
                                           int64_t begin, int64_t end, int64_t nb) {                                 \
        const __m256i low = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x30);                                     \
        for (int64_t r = begin; r < end; r += VNNI_K_ROWS) {                                                          \
            const uint8_t *p[VNNI_K_ROWS];                                                                            \
            group_rows(p, VNNI_K_ROWS, m, r, end);                                                         \
            __m256 acc[VNNI_K_ROWS];                                                                                  \
            for (int k = 0; k < VNNI_K_ROWS; k++) acc[k] = _mm256_setzero_ps();                                       \
            for (int64_t i = 0; i < nb; i++) {                                                                        \
                size_t o = (size_t)i * m->stride;                                                                    \
                __m256i bsums = _mm256_loadu_si256((const __m256i *)a[i].bsums);                                      \
                for (int k = 0; k < VNNI_K_ROWS; k++) {                                                               \
                    const uint8_t *b = p[k] + o, *ql = b, *qh = b + 128;                                              \
                    const int8_t *x = a[i].qs;                                                                        \
                    __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192)));             \
                    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(),                                           \
                                                    _mm256_slli_epi32(_mm256_madd_epi16(scales16, bsums), 5));        \
                    for (int n = 0; n < 2; n++, ql += 64, qh += 32, x += 128) {                                       \
                        __m256i scales = _mm256_broadcastsi128_si256(n ? _mm256_extracti128_si256(scales16, 1)        \
                                                                       : _mm256_castsi256_si128(scales16));           \
                        __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);                                         \
                        __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));                                  \
                        __m256i h = _mm256_loadu_si256((const __m256i *)qh);                                          \
                        __m256i q[4];                                                                                 \
                        q[0] = _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_and_si256(_mm256_slli_epi16(h, 4), two)); \
                        q[1] = _mm256_or_si256(_mm256_and_si256(l1, low), _mm256_and_si256(_mm256_slli_epi16(h, 2), two)); \
                        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(h, two)); \
                        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),                       \
                                               _mm256_and_si256(_mm256_srli_epi16(h, 2), two));                       \
                        for (int g = 0; g < 4; g++) {                                                                 \
                            /* elements 0..15 take scale 2g of this half, 16..31 scale 2g+1 */                        \
                            __m256i pick = _mm256_set_m128i(_mm_set1_epi16((short)(0x0302 + 0x0404 * g)),             \
                                                            _mm_set1_epi16((short)(0x0100 + 0x0404 * g)));            \
                            __m256i prod = _mm256_maddubs_epi16(q[g], _mm256_loadu_si256((const __m256i *)(x + 32 * g))); \
                            sumi = DPWSSD(sumi, prod, _mm256_shuffle_epi8(scales, pick));                             \
                        }                                                                                             \
                    }                                                                                                 \
                    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(half_fast(b + 208) * a[i].d), _mm256_cvtepi32_ps(sumi),   \
                                             acc[k]);                                                                 \
                }                                                                                                     \
            }                                                                                                         \
            for (int k = 0; k < VNNI_K_ROWS && r + k < end; k++) y[r + k] = hsum_ps(acc[k]);                          \
        }                                                                                                             \
    }                                                                                                                 \
    /* True when this path has a kernel for the type (the others take AVX2's). */                                    \
    static bool matvec_##SUFFIX(uint32_t type, const tm_quant_rows *m, const void *xq, float *y,          \
                                int64_t begin, int64_t end, int64_t nb) {                                             \
        switch (type) {                                                                                               \
        case TM_GGML_Q8_0: matvec_q8_0_##SUFFIX(m, xq, y, begin, end, nb); return true;                   \
        case TM_GGML_Q4_0: matvec_q4_0_##SUFFIX(m, xq, y, begin, end, nb); return true;                   \
        case TM_GGML_Q4_K: matvec_q4_k_##SUFFIX(m, xq, y, begin, end, nb); return true;                   \
        case TM_GGML_Q6_K: matvec_q6_k_##SUFFIX(m, xq, y, begin, end, nb); return true;                   \
        default: return false;                                                                                        \
        }                                                                                                             \
    }

#define AVX_VNNI_TARGET __attribute__((target("avx2,fma,f16c,avxvnni")))
#define AVX512_VNNI_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))
DEFINE_VNNI_KERNELS(avxvnni, AVX_VNNI_TARGET, _mm256_dpbusd_avx_epi32, _mm256_dpwssd_avx_epi32)
DEFINE_VNNI_KERNELS(avx512vnni, AVX512_VNNI_TARGET, _mm256_dpbusd_epi32, _mm256_dpwssd_epi32)

/* ---- 512-bit single-sequence kernels ------------------------------------------ */
/* k4_scales_mins_x2 for the 4 rows of a group at once, one row per 128-bit
 * lane. */
AVX512_VNNI_TARGET static inline __m512i k4_scales_mins_x4(const uint8_t *const *p, size_t o) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p[0] + o + 4)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[1] + o + 4)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[2] + o + 4)), 2);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[3] + o + 4)), 3);
    /* words u0 u1 u2 of each lane: [u0, u2, u1, u2 >> 4] masked to 6, 4, 6, 4 bits, and
     * the top two bits of u0 and u1 (>> 6) as bits 4-5 of words 1 and 3 */
    __m512i a = _mm512_srlv_epi32(_mm512_shuffle_epi32(v, (_MM_PERM_ENUM)0x98), _mm512_set4_epi32(4, 0, 0, 0));
    __m512i b = _mm512_srli_epi32(_mm512_shuffle_epi32(v, (_MM_PERM_ENUM)0x40), 2);
    __m512i low = _mm512_and_si512(a, _mm512_set4_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
    return _mm512_or_si512(low, _mm512_and_si512(b, _mm512_set4_epi32(0x30303030, 0, 0x30303030, 0)));
}

/* Q4_K (and with five, Q5_K) on CPUs with 512-bit data paths: the 256-bit
 * kernels spend most of their instructions unpacking nibbles and
 * multiplying; here two of their 32-byte steps (j and j + 1) run as one
 * 512-bit step, against the activations of the two steps laid side by side
 * (once per block for the group's rows). The halves are added in integers at
 * the end of the block, which gives each of the 8 lanes the very integer of
 * the 256-bit kernel, so the float steps, and the bits, are the same: those
 * of the AVX-VNNI kernel for Q4_K, and of the AVX2 path's matvec_k4_avx2 for
 * Q5_K (no VNNI path has its own), whose mins it sums and scales the same
 * way. Q5_K's fifth bits of steps j and j + 1 come from qh shifted by 2j and
 * 2j + 2 in the two halves. */
AVX512_VNNI_TARGET static inline __attribute__((always_inline)) void matvec_k4_zmm(
    const tm_quant_rows *m, const tm_q8k_block *a, float *y, int64_t begin, int64_t end, int64_t nb,
    bool five) {
    const size_t quants = five ? 48 : 16;
    const __m512i low = _mm512_set1_epi8(0x0F), bit = _mm512_set1_epi8(0x10);
    /* the word of sub-block 2j (low nibbles) and 2j + 1 (high) in each half */
    __m512i pick_lo[2], pick_hi[2], fifth[2];
    for (int jp = 0; jp < 2; jp++) {
        short j0 = (short)(2 * jp), j1 = (short)(2 * jp + 1);
        pick_lo[jp] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)(0x0100 + 0x0404 * j0))),
                                         _mm256_set1_epi16((short)(0x0100 + 0x0404 * j1)), 1);
        pick_hi[jp] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)(0x0302 + 0x0404 * j0))),
                                         _mm256_set1_epi16((short)(0x0302 + 0x0404 * j1)), 1);
        fifth[jp] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)(2 * j0))),
                                       _mm256_set1_epi16((short)(2 * j1)), 1);
    }
    for (int64_t r = begin; r < end; r += VNNI_K_ROWS) {
        const uint8_t *p[VNNI_K_ROWS];
        group_rows(p, VNNI_K_ROWS, m, r, end);
        __m256 acc[VNNI_K_ROWS];
        __m128 mins_acc[VNNI_K_ROWS];
        float mins_total[VNNI_K_ROWS];
        for (int k = 0; k < VNNI_K_ROWS; k++) {
            acc[k] = _mm256_setzero_ps();
            mins_acc[k] = _mm_setzero_ps();
            mins_total[k] = 0;
        }
        for (int64_t i = 0; i < nb; i++) {
            size_t o = (size_t)i * m->stride;
            const int8_t *x = a[i].qs;
            __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)a[i].bsums),
                                           _mm_loadu_si128((const __m128i *)(a[i].bsums + 8)));
            __m512i xl[2], xh[2];
            for (int jp = 0; jp < 2; jp++) { /* step j = 2jp in the low half, 2jp + 1 in the high one */
                __m512i a0 = _mm512_loadu_si512((const void *)(x + 128 * jp)),
                        a1 = _mm512_loadu_si512((const void *)(x + 128 * jp + 64));
                xl[jp] = _mm512_shuffle_i64x2(a0, a1, 0x44);
                xh[jp] = _mm512_shuffle_i64x2(a0, a1, 0xEE);
            }
            __m512i packed = k4_scales_mins_x4(p, o);
            __m128i row_scales_mins[VNNI_K_ROWS] = {
                _mm512_castsi512_si128(packed), _mm512_extracti32x4_epi32(packed, 1),
                _mm512_extracti32x4_epi32(packed, 2), _mm512_extracti32x4_epi32(packed, 3)};
            for (int k = 0; k < VNNI_K_ROWS; k++) {
                const uint8_t *b = p[k] + o;
                __m128 dm = k_block_scales(b, a[i].d);
                __m256i scales_mins = _mm256_cvtepu8_epi16(row_scales_mins[k]);
                __m128i mins = _mm_madd_epi16(_mm256_extracti128_si256(scales_mins, 1), pairs);
                if (five) { /* the integer sum first, as matvec_k4_avx2 reduces it */
                    mins = _mm_add_epi32(mins, _mm_shuffle_epi32(mins, 0x4E));
                    mins = _mm_add_epi32(mins, _mm_shuffle_epi32(mins, 0xB1));
                    mins_total[k] += _mm_cvtss_f32(_mm_movehdup_ps(dm)) * (float)_mm_cvtsi128_si32(mins);
                } else {
                    mins_acc[k] = _mm_fmadd_ps(_mm_permute_ps(dm, 0x55), _mm_cvtepi32_ps(mins), mins_acc[k]);
                }
                __m512i scales = _mm512_broadcast_i32x4(_mm256_castsi256_si128(scales_mins));
                __m512i high = five ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 16)))
                                    : _mm512_setzero_si512();
                __m512i sumi = _mm512_setzero_si512();
                for (int jp = 0; jp < 2; jp++) {
                    __m512i bytes = _mm512_loadu_si512((const void *)(b + quants + 64 * jp));
                    __m512i lo = _mm512_and_si512(bytes, low), hi = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low);
                    if (five) {
                        __m512i h = _mm512_srlv_epi16(high, fifth[jp]);
                        lo = _mm512_or_si512(lo, _mm512_and_si512(_mm512_slli_epi16(h, 4), bit));
                        hi = _mm512_or_si512(hi, _mm512_and_si512(_mm512_slli_epi16(h, 3), bit));
                    }
                    sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(lo, xl[jp]),
                                               _mm512_shuffle_epi8(scales, pick_lo[jp]));
                    sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(hi, xh[jp]),
                                               _mm512_shuffle_epi8(scales, pick_hi[jp]));
                }
                __m256i sum8 = _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
                acc[k] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), _mm256_cvtepi32_ps(sum8), acc[k]);
            }
        }
        for (int k = 0; k < VNNI_K_ROWS && r + k < end; k++) {
            if (five) {
                y[r + k] = hsum_ps(acc[k]) - mins_total[k];
                continue;
            }
            __m128 m = _mm_add_ps(mins_acc[k], _mm_movehl_ps(mins_acc[k], mins_acc[k]));
            m = _mm_add_ss(m, _mm_movehdup_ps(m));
            y[r + k] = hsum_ps(acc[k]) - _mm_cvtss_f32(m);
        }
    }
}

AVX512_VNNI_TARGET static void matvec_q4_k_zmm(const tm_quant_rows *m, const tm_q8k_block *a, float *y,
                                               int64_t begin, int64_t end, int64_t nb) {
    matvec_k4_zmm(m, a, y, begin, end, nb, false);
}

AVX512_VNNI_TARGET static void matvec_q5_k_zmm(const tm_quant_rows *m, const tm_q8k_block *a, float *y,
                                               int64_t begin, int64_t end, int64_t nb) {
    matvec_k4_zmm(m, a, y, begin, end, nb, true);
}

/* Q6_K the same way: the 32 bytes of ql that two of the 256-bit kernel's
 * quads take (l0 for quads 0 and 2, l1 for 1 and 3) are one 512-bit load, the
 * shared 32 bytes of qh sit in both halves and get each half's shift (vpsllvw,
 * vpsrlvw), and the offset of 32 comes off after the halves are added, in
 * integers, so each lane's integer, and the bits, are the 256-bit kernel's. */
AVX512_VNNI_TARGET static void matvec_q6_k_zmm(const tm_quant_rows *m, const tm_q8k_block *a, float *y,
                                               int64_t begin, int64_t end, int64_t nb) {
    const __m512i low = _mm512_set1_epi8(0x0F), two = _mm512_set1_epi8(0x30);
    /* qh's bits 0-1 go to 4-5 for quad 0 (<< 4), bits 2-3 for quad 1 (<< 2);
     * bits 4-5 for quad 2 (as they are), bits 6-7 for quad 3 (>> 2) */
    const __m512i up01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i down23 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    __m512i pick[2]; /* quads 2h and 2h + 1: elements 0..15 take scale 2g of the half, 16..31 scale 2g + 1 */
    for (int h = 0; h < 2; h++) {
        __m256i g0 = _mm256_set_m128i(_mm_set1_epi16((short)(0x0302 + 0x0404 * (2 * h))),
                                      _mm_set1_epi16((short)(0x0100 + 0x0404 * (2 * h))));
        __m256i g1 = _mm256_set_m128i(_mm_set1_epi16((short)(0x0302 + 0x0404 * (2 * h + 1))),
                                      _mm_set1_epi16((short)(0x0100 + 0x0404 * (2 * h + 1))));
        pick[h] = _mm512_inserti64x4(_mm512_castsi256_si512(g0), g1, 1);
    }
    for (int64_t r = begin; r < end; r += VNNI_K_ROWS) {
        const uint8_t *p[VNNI_K_ROWS];
        group_rows(p, VNNI_K_ROWS, m, r, end);
        __m256 acc[VNNI_K_ROWS];
        for (int k = 0; k < VNNI_K_ROWS; k++) acc[k] = _mm256_setzero_ps();
        for (int64_t i = 0; i < nb; i++) {
            size_t o = (size_t)i * m->stride;
            __m256i bsums = _mm256_loadu_si256((const __m256i *)a[i].bsums);
            const int8_t *x = a[i].qs;
            __m512i xq[4]; /* quads 0,1 / 2,3 of the two halves: 64 consecutive activations each */
            for (int v = 0; v < 4; v++) xq[v] = _mm512_loadu_si512((const void *)(x + 64 * v));
            for (int k = 0; k < VNNI_K_ROWS; k++) {
                const uint8_t *b = p[k] + o, *ql = b, *qh = b + 128;
                __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192)));
                __m512i sumi = _mm512_setzero_si512();
                for (int n = 0; n < 2; n++, ql += 64, qh += 32) {
                    __m512i scales = _mm512_broadcast_i32x4(n ? _mm256_extracti128_si256(scales16, 1)
                                                              : _mm256_castsi256_si128(scales16));
                    __m512i l = _mm512_loadu_si512((const void *)ql);
                    __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh));
                    __m512i q01 = _mm512_or_si512(_mm512_and_si512(l, low), _mm512_and_si512(_mm512_sllv_epi16(h, up01), two));
                    __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low),
                                                  _mm512_and_si512(_mm512_srlv_epi16(h, down23), two));
                    sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q01, xq[2 * n]),
                                               _mm512_shuffle_epi8(scales, pick[0]));
                    sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q23, xq[2 * n + 1]),
                                               _mm512_shuffle_epi8(scales, pick[1]));
                }
                __m256i sum8 = _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
                sum8 = _mm256_sub_epi32(sum8, _mm256_slli_epi32(_mm256_madd_epi16(scales16, bsums), 5));
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(half_fast(b + 208) * a[i].d), _mm256_cvtepi32_ps(sum8), acc[k]);
            }
        }
        for (int k = 0; k < VNNI_K_ROWS && r + k < end; k++) y[r + k] = hsum_ps(acc[k]);
    }
}

/* True when the AVX512-VNNI path has a 512-bit kernel for the type. */
static bool matvec_zmm(uint32_t type, const tm_quant_rows *m, const void *xq, float *y, int64_t begin,
                       int64_t end, int64_t nb) {
    switch (type) {
    case TM_GGML_Q4_K: matvec_q4_k_zmm(m, xq, y, begin, end, nb); return true;
    case TM_GGML_Q5_K: matvec_q5_k_zmm(m, xq, y, begin, end, nb); return true;
    case TM_GGML_Q6_K: matvec_q6_k_zmm(m, xq, y, begin, end, nb); return true;
    default: return false;
    }
}
#endif

/* ---- dispatch ---------------------------------------------------------------- */

static bool cpu_supports_path(tm_quant_path path) {
    if (path == TM_QUANT_PATH_PORTABLE) return true;
#ifdef TM_X86
    /* tm_cpu_has honours TM_NO_AVX2 / TM_NO_AVX512 / TM_NO_VNNI. */
    bool avx2 = tm_cpu_has(TM_CPU_AVX2) && tm_cpu_has(TM_CPU_FMA) && tm_cpu_has(TM_CPU_F16C);
    if (path == TM_QUANT_PATH_AVX2) return avx2;
    if (path == TM_QUANT_PATH_AVX_VNNI) return avx2 && tm_cpu_has(TM_CPU_AVXVNNI);
    if (path == TM_QUANT_PATH_AVX512_VNNI)
        return avx2 && tm_cpu_has(TM_CPU_AVX512VNNI) && tm_cpu_has(TM_CPU_AVX512VL) && tm_cpu_has(TM_CPU_AVX512BW);
#endif
    return false;
}

static int supported_paths = -1; /* bit p set when path p is supported */
static int forced_path = -1;

bool tm_quant_path_supported(tm_quant_path path) {
    if (supported_paths < 0) {
        int bits = 0;
        for (int p = 0; p < TM_QUANT_PATH_COUNT; p++)
            if (cpu_supports_path((tm_quant_path)p)) bits |= 1 << p;
        supported_paths = bits;
    }
    return path < TM_QUANT_PATH_COUNT && (supported_paths >> path & 1);
}

void tm_quant_force_path(tm_quant_path path) { forced_path = path < TM_QUANT_PATH_COUNT ? (int)path : -1; }

/* AVX-VNNI before AVX512-VNNI when a CPU has both: the same instructions,
 * and the VEX encoding is shorter. */
static tm_quant_path current_path(void) {
    static int best = -1;
    if (forced_path >= 0) return (tm_quant_path)forced_path;
    if (best < 0) {
        best = TM_QUANT_PATH_PORTABLE;
        /* the last one supported wins: AVX512-VNNI has the 512-bit K kernels */
        tm_quant_path order[] = {TM_QUANT_PATH_AVX2, TM_QUANT_PATH_AVX_VNNI, TM_QUANT_PATH_AVX512_VNNI};
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
            if (tm_quant_path_supported(order[i])) best = order[i];
    }
    return (tm_quant_path)best;
}

tm_quant_path tm_quant_gemm_path(void) {
    if (forced_path >= 0) return (tm_quant_path)forced_path;
    tm_quant_path order[] = {TM_QUANT_PATH_AVX512_VNNI, TM_QUANT_PATH_AVX_VNNI, TM_QUANT_PATH_AVX2};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (tm_quant_path_supported(order[i])) return order[i];
    return TM_QUANT_PATH_PORTABLE;
}

#ifdef TM_X86
/* The single-row AVX2 dot product of the row whose blocks start at row, stride
 * bytes apart (into *out unless NULL); false when AVX2 has none for the type. */
static bool dot_row_avx2(uint32_t type, const uint8_t *row, size_t stride, const void *xq, int64_t nb, float *out) {
    float (*dot32)(const uint8_t *, size_t, const tm_q8_block *, int64_t) = NULL;
    float (*dot256)(const uint8_t *, size_t, const tm_q8k_block *, int64_t) = NULL;
    switch (type) {
    case TM_GGML_Q8_0: dot32 = dot_q8_0_avx2; break;
    case TM_GGML_Q4_0: dot32 = dot_q4_0_avx2; break;
    case TM_GGML_Q4_1: dot32 = dot_q4_1_avx2; break;
    case TM_GGML_Q5_0: dot32 = dot_q5_0_avx2; break;
    case TM_GGML_Q5_1: dot32 = dot_q5_1_avx2; break;
    case TM_GGML_Q4_K: dot256 = dot_q4_k_avx2; break;
    case TM_GGML_Q5_K: dot256 = dot_q5_k_avx2; break;
    case TM_GGML_Q6_K: dot256 = dot_q6_k_avx2; break;
    default: return false;
    }
    if (out) *out = dot32 ? dot32(row, stride, xq, nb) : dot256(row, stride, xq, nb);
    return true;
}
#endif

bool tm_quant_dot_avx2_row(uint32_t type, const void *row, const void *xq, int64_t cols, float *out) {
#ifdef TM_X86
    if (!tm_quant_path_supported(TM_QUANT_PATH_AVX2)) return false;
    return dot_row_avx2(type, row, (size_t)tm_ggml_block_bytes(type), xq, cols / (int64_t)tm_ggml_block_elements(type), out);
#else
    (void)type, (void)row, (void)xq, (void)cols, (void)out;
    return false;
#endif
}

void tm_quant_matvec_rows(const tm_tensor *w, const void *xq, float *y, int64_t begin, int64_t end) {
    uint32_t type = w->type;
    int64_t cols = w->cols, nb = cols / (int64_t)tm_ggml_block_elements(type);
    tm_quant_rows m = tm_quant_rows_of(w);
#ifdef TM_X86
    tm_quant_path path = current_path();
    if (path == TM_QUANT_PATH_AVX512_VNNI && matvec_zmm(type, &m, xq, y, begin, end, nb)) return;
    if (path == TM_QUANT_PATH_AVX512_VNNI && matvec_avx512vnni(type, &m, xq, y, begin, end, nb)) return;
    if (path == TM_QUANT_PATH_AVX_VNNI && matvec_avxvnni(type, &m, xq, y, begin, end, nb)) return;
    if (path != TM_QUANT_PATH_PORTABLE && matvec_avx2(type, &m, xq, y, begin, end, nb)) return;
    if (path != TM_QUANT_PATH_PORTABLE && dot_row_avx2(type, m.data, m.stride, xq, nb, NULL)) {
        for (int64_t r = begin; r < end; r++) dot_row_avx2(type, tm_quant_row(&m, r), m.stride, xq, nb, &y[r]);
        return;
    }
#endif
    for (int64_t r = begin; r < end; r++) y[r] = dot_row_portable(type, tm_quant_row(&m, r), m.stride, xq, cols);
}
