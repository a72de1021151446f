/* The project's quantizer. The row quantizers are ports of ggml's reference
 * (no importance matrix) quantize_row_*_ref and of its helpers nearest_int,
 * make_qx_quants and make_qkx2_quants: the same float operations in the same
 * order, so that the bytes equal llama.cpp's (this file is compiled as ISO C,
 * where GCC does not fuse multiply-adds, and nothing here may be rewritten
 * into a "faster" but differently rounded form). Where ggml converts a float
 * to an 8-bit integer by a plain cast, the x86 result is spelled out so that
 * NaN or out-of-range values stay defined. The per-tensor type rules follow
 * llama.cpp's llama_tensor_get_type for the file types listed in quantize.h.
 * The file quantizer streams: it reads the source through its mapping one
 * slab of rows at a time and never holds a whole tensor in floats. It must
 * never leave a partial output file, and never trust the source's shapes
 * beyond what tm_gguf_open validated. */
#include "model_internal.h"
#include "quantize.h"

#include "gguf_writer.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { QK = 32, QK_K = 256 };
#define GROUP_MAX_EPS 1e-15f

/* ======================================================================== */
/* File types                                                               */
/* ======================================================================== */

typedef struct {
    const char *name;
    tm_ftype ftype;
    uint32_t type;
} ftype_info;

static const ftype_info ftypes[] = {
    {"F32", TM_FTYPE_ALL_F32, TM_GGML_F32},     {"F16", TM_FTYPE_F16, TM_GGML_F16},
    {"BF16", TM_FTYPE_BF16, TM_GGML_BF16},      {"Q8_0", TM_FTYPE_Q8_0, TM_GGML_Q8_0},
    {"Q4_0", TM_FTYPE_Q4_0, TM_GGML_Q4_0},      {"Q4_1", TM_FTYPE_Q4_1, TM_GGML_Q4_1},
    {"Q5_0", TM_FTYPE_Q5_0, TM_GGML_Q5_0},      {"Q5_1", TM_FTYPE_Q5_1, TM_GGML_Q5_1},
    {"Q4_K_S", TM_FTYPE_Q4_K_S, TM_GGML_Q4_K},  {"Q4_K_M", TM_FTYPE_Q4_K_M, TM_GGML_Q4_K},
    {"Q5_K_S", TM_FTYPE_Q5_K_S, TM_GGML_Q5_K},  {"Q5_K_M", TM_FTYPE_Q5_K_M, TM_GGML_Q5_K},
    {"Q6_K", TM_FTYPE_Q6_K, TM_GGML_Q6_K},
};
enum { N_FTYPES = sizeof ftypes / sizeof ftypes[0] };

bool tm_ftype_parse(const char *name, tm_ftype *out) {
    if (!name) return false;
    if (!strcasecmp(name, "Q4_K")) name = "Q4_K_M";
    else if (!strcasecmp(name, "Q5_K")) name = "Q5_K_M";
    for (size_t i = 0; i < N_FTYPES; i++)
        if (!strcasecmp(name, ftypes[i].name)) {
            *out = ftypes[i].ftype;
            return true;
        }
    return false;
}

static const ftype_info *ftype_lookup(tm_ftype ftype) {
    for (size_t i = 0; i < N_FTYPES; i++)
        if (ftypes[i].ftype == ftype) return &ftypes[i];
    return NULL;
}

const char *tm_ftype_name(tm_ftype ftype) {
    const ftype_info *f = ftype_lookup(ftype);
    return f ? f->name : NULL;
}

const char *tm_ftype_names(void) {
    return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_S, Q4_K_M (or Q4_K), Q5_K_S, Q5_K_M (or Q5_K), Q6_K";
}

uint32_t tm_ftype_default_type(tm_ftype ftype) {
    const ftype_info *f = ftype_lookup(ftype);
    return f ? f->type : TM_GGML_TYPE_LIMIT;
}

/* ======================================================================== */
/* Helpers with ggml's exact arithmetic                                      */
/* ======================================================================== */

/* ggml's nearest_int: round half to even through the 1.5 * 2^23 trick (its
 * assert on the range is compiled out in release builds, and so is ours). */
static inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int32_t i;
    memcpy(&i, &val, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* What x86's cvttss2si gives for a float: truncation toward zero, or
 * INT32_MIN for NaN and values outside int32. ggml's (int8_t)/(uint8_t)
 * casts of floats compile to it followed by taking the low byte. */
static inline int32_t truncate_x86(float f) {
    if (!(f > -2147483904.0f && f < 2147483648.0f)) return INT32_MIN;
    return (int32_t)f;
}

static inline int low_byte_signed(int32_t v) {
    int b = (int)((uint32_t)v & 0xFF);
    return b > 127 ? b - 256 : b;
}

static inline uint8_t low_byte(int32_t v) { return (uint8_t)((uint32_t)v & 0xFF); }

static inline void put_half(uint8_t *p, float f) {
    uint16_t h = tm_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static inline float get_half(const uint8_t *p) { return tm_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int max_int(int a, int b) { return a > b ? a : b; }

/* ggml_compute_fp32_to_bf16: round to nearest even, NaN made quiet. */
static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

/* ======================================================================== */
/* 32-element block types (quantize_row_q*_ref)                              */
/* ======================================================================== */

static void quantize_q4_0(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK, y += 18) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK; j++) {
            const float v = x[j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        put_half(y, d);
        for (int j = 0; j < QK / 2; ++j) {
            const float x0 = x[j] * id, x1 = x[QK / 2 + j] * id;
            const uint8_t xi0 = (uint8_t)min_int(15, low_byte_signed(truncate_x86(x0 + 8.5f)));
            const uint8_t xi1 = (uint8_t)min_int(15, low_byte_signed(truncate_x86(x1 + 8.5f)));
            y[2 + j] = (uint8_t)(xi0 | (uint8_t)(xi1 << 4));
        }
    }
}

static void quantize_q4_1(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK, y += 20) {
        float min = 3.402823466e+38F, max = -3.402823466e+38F;
        for (int j = 0; j < QK; j++) {
            const float v = x[j];
            if (v < min) min = v;
            if (v > max) max = v;
        }
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        put_half(y, d);
        put_half(y + 2, min);
        for (int j = 0; j < QK / 2; ++j) {
            const float x0 = (x[j] - min) * id, x1 = (x[QK / 2 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)min_int(15, low_byte_signed(truncate_x86(x0 + 0.5f)));
            const uint8_t xi1 = (uint8_t)min_int(15, low_byte_signed(truncate_x86(x1 + 0.5f)));
            y[4 + j] = (uint8_t)(xi0 | (uint8_t)(xi1 << 4));
        }
    }
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void quantize_q5_0(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK, y += 22) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK; j++) {
            const float v = x[j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        put_half(y, d);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; ++j) {
            const float x0 = x[j] * id, x1 = x[QK / 2 + j] * id;
            const uint8_t xi0 = (uint8_t)min_int(31, low_byte_signed(truncate_x86(x0 + 16.5f)));
            const uint8_t xi1 = (uint8_t)min_int(31, low_byte_signed(truncate_x86(x1 + 16.5f)));
            y[6 + j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK / 2);
        }
        put_u32(y + 2, qh);
    }
}

static void quantize_q5_1(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK, y += 24) {
        float min = 3.402823466e+38F, max = -3.402823466e+38F;
        for (int j = 0; j < QK; j++) {
            const float v = x[j];
            if (v < min) min = v;
            if (v > max) max = v;
        }
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        put_half(y, d);
        put_half(y + 2, min);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; ++j) {
            const float x0 = (x[j] - min) * id, x1 = (x[QK / 2 + j] - min) * id;
            const uint8_t xi0 = low_byte(truncate_x86(x0 + 0.5f));
            const uint8_t xi1 = low_byte(truncate_x86(x1 + 0.5f));
            y[8 + j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK / 2);
        }
        put_u32(y + 4, qh);
    }
}

static void quantize_q8_0(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK, y += 34) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) {
            const float v = fabsf(x[j]);
            amax = amax > v ? amax : v; /* ggml's MAX(amax, v) */
        }
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        put_half(y, d);
        for (int j = 0; j < QK; ++j) y[2 + j] = low_byte(truncate_x86(roundf(x[j] * id)));
    }
}

/* ======================================================================== */
/* K-quants (quantize_row_q4_K_ref, _q5_K_ref, _q6_K_ref)                    */
/* ======================================================================== */

/* make_qx_quants with rmse_type 1 and no weights: what Q6_K uses. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = max_int(-nmax, min_int(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = max_int(-nmax, min_int(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + max_int(-nmax, min_int(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* make_qkx2_quants with use_mad false (Q4_K and Q5_K). */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)max_int(0, min_int(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = diff * diff;
        float w = weights[i];
        best_error += w * diff;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = max_int(0, min_int(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = diff * diff;
                float w = weights[i];
                cur_error += w * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

static inline void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* The shared first half of Q4_K and Q5_K: sub-block scales and mins packed
 * into 6 bits each, d and dmin, then the final levels in L. Block layout:
 * d, dmin, scales[12] at bytes 0..15. */
static void quantize_k_scales(const float *x, uint8_t *y, uint8_t *L, int nmax, float rmin, int nstep) {
    uint8_t Laux[32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    uint8_t *sc_bytes = y + 4;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
        float scale = scales[j];
        if (scale > max_scale) max_scale = scale;
        float min = mins[j];
        if (min > max_min) max_min = min;
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            sc_bytes[j] = ls;
            sc_bytes[j + 4] = lm;
        } else {
            sc_bytes[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc_bytes[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc_bytes[j - 0] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    put_half(y, max_scale / 63.f);
    put_half(y + 2, max_min / 63.f);
    uint8_t sc, m;
    for (int j = 0; j < QK_K / 32; ++j) {
        get_scale_min_k4(j, sc_bytes, &sc, &m);
        const float d = get_half(y) * sc;
        if (!d) continue;
        const float dm = get_half(y + 2) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)max_int(0, min_int(nmax, l));
        }
    }
}

static void quantize_q4_k(const float *x, uint8_t *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 144) {
        quantize_k_scales(x, y, L, 15, -1.f, 20);
        uint8_t *q = y + 16;
        for (int j = 0; j < QK_K; j += 64) {
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
    }
}

static void quantize_q5_k(const float *x, uint8_t *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 176) {
        quantize_k_scales(x, y, L, 31, -0.5f, 15);
        uint8_t *qh = y + 16, *ql = y + 48;
        memset(qh, 0, QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < QK_K; n += 64) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n + j];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                int l2 = L[n + j + 32];
                if (l2 > 15) {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
            ql += 32;
        }
    }
}

/* Q6_K layout: ql[128], qh[64], scales[16] (int8), d. */
static void quantize_q6_k(const float *x, uint8_t *y, int64_t nb) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 210) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(y, 0, 210);
            put_half(y + 208, 0.f);
            continue;
        }
        uint8_t *ql = y, *qh = y + 128;
        int8_t *sc = (int8_t *)(y + 192);
        float iscale = -128.f / max_scale;
        put_half(y + 208, 1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ++ib) sc[ib] = (int8_t)min_int(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; ++j) {
            float d = get_half(y + 208) * sc[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                l = max_int(-32, min_int(31, l));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        for (int j = 0; j < QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
    }
}

/* ======================================================================== */
/* Rows                                                                      */
/* ======================================================================== */

bool tm_quantize_can_write(uint32_t type) {
    return type == TM_GGML_F32 || type == TM_GGML_F16 || type == TM_GGML_BF16 || tm_quant_is_quantized(type);
}

bool tm_quantize_can_read(uint32_t type) { return tm_quantize_can_write(type); }

uint64_t tm_quantize_row_bytes(uint32_t type, int64_t n) {
    return (uint64_t)n / tm_ggml_block_elements(type) * tm_ggml_block_bytes(type);
}

void tm_quantize_row(uint32_t type, const float *x, void *out, int64_t n) {
    uint8_t *y = out;
    switch (type) {
    case TM_GGML_F32: memcpy(out, x, (size_t)n * sizeof *x); return;
    case TM_GGML_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = tm_f32_to_f16(x[i]);
            y[2 * i] = (uint8_t)h;
            y[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return;
    case TM_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = f32_to_bf16(x[i]);
            y[2 * i] = (uint8_t)h;
            y[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return;
    case TM_GGML_Q4_0: quantize_q4_0(x, y, n / QK); return;
    case TM_GGML_Q4_1: quantize_q4_1(x, y, n / QK); return;
    case TM_GGML_Q5_0: quantize_q5_0(x, y, n / QK); return;
    case TM_GGML_Q5_1: quantize_q5_1(x, y, n / QK); return;
    case TM_GGML_Q8_0: quantize_q8_0(x, y, n / QK); return;
    case TM_GGML_Q4_K: quantize_q4_k(x, y, n / QK_K); return;
    case TM_GGML_Q5_K: quantize_q5_k(x, y, n / QK_K); return;
    case TM_GGML_Q6_K: quantize_q6_k(x, y, n / QK_K); return;
    default: return;
    }
}

void tm_quantize_row_to_f32(uint32_t type, const void *src, float *out, int64_t n) {
    const uint8_t *p = src;
    switch (type) {
    case TM_GGML_F32: memcpy(out, src, (size_t)n * sizeof *out); return;
    case TM_GGML_F16:
        for (int64_t i = 0; i < n; i++) out[i] = tm_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return;
    case TM_GGML_BF16:
        for (int64_t i = 0; i < n; i++) out[i] = tm_bf16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return;
    default:
        if (tm_quant_is_quantized(type)) tm_quant_dequantize_row(type, src, out, n);
        return;
    }
}

/* Offsets of the F16 scale fields in a block, for the overflow check that
 * llama.cpp's ggml_validate_row_data makes on quantized output. */
static int half_fields(uint32_t type, int offsets[2]) {
    switch (type) {
    case TM_GGML_Q4_0: case TM_GGML_Q5_0: case TM_GGML_Q8_0: offsets[0] = 0; return 1;
    case TM_GGML_Q4_1: case TM_GGML_Q5_1: case TM_GGML_Q4_K: case TM_GGML_Q5_K:
        offsets[0] = 0;
        offsets[1] = 2;
        return 2;
    case TM_GGML_Q6_K: offsets[0] = 208; return 1;
    default: return 0;
    }
}

static bool scales_finite(uint32_t type, const uint8_t *row, int64_t n) {
    int offsets[2];
    int k = half_fields(type, offsets);
    if (!k) return true;
    int64_t nb = n / (int64_t)tm_ggml_block_elements(type), bytes = (int64_t)tm_ggml_block_bytes(type);
    for (int64_t b = 0; b < nb; b++)
        for (int f = 0; f < k; f++) {
            const uint8_t *h = row + b * bytes + offsets[f];
            if ((h[1] & 0x7C) == 0x7C) return false; /* exponent all ones: inf or NaN */
        }
    return true;
}

/* ======================================================================== */
/* llama.cpp's per-tensor type rules                                        */
/* ======================================================================== */

typedef enum {
    CAT_TOKEN_EMBD, CAT_ATTN_Q, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_QKV, CAT_ATTN_KV_B, CAT_ATTN_OUTPUT,
    CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN, CAT_OUTPUT, CAT_OTHER
} category;

static bool contains(const char *s, const char *part) { return strstr(s, part) != NULL; }

static category tensor_category(const char *name) {
    if (!strcmp(name, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight")) return CAT_TOKEN_EMBD;
    if (contains(name, "attn_qkv.weight")) return CAT_ATTN_QKV;
    if (contains(name, "attn_kv_b.weight")) return CAT_ATTN_KV_B;
    if (contains(name, "attn_v.weight")) return CAT_ATTN_V;
    if (contains(name, "attn_k.weight")) return CAT_ATTN_K;
    if (contains(name, "attn_q.weight")) return CAT_ATTN_Q;
    if (contains(name, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (contains(name, "ffn_up")) return CAT_FFN_UP;
    if (contains(name, "ffn_gate")) return CAT_FFN_GATE;
    if (contains(name, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

static bool category_is_attn_v(category c) { return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B; }

/* ggml_n_dims: trailing dimensions of 1 do not count. */
static int significant_dims(const uint64_t ne[4]) {
    for (int d = 3; d >= 1; d--)
        if (ne[d] > 1) return d + 1;
    return 1;
}

/* tensor_allows_quantization: 2-D+ weights that are not norms, routers or
 * the small special tensors llama.cpp keeps as they are. */
static bool allows_quantization(const char *name, const uint64_t ne[4]) {
    if (significant_dims(ne) < 2) return false;
    size_t n = strlen(name);
    if (n < 6 || strcmp(name + n - 6, "weight") != 0) return false;
    static const char *const kept[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
        "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
        "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
        "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
        "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
        "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
        ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger",
        "a.rvq.codebook", "mm.a.code_embd",
    };
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (contains(name, kept[i])) return false;
    return strcmp(name, "position_embd.weight") != 0 && strcmp(name, "token_types.weight") != 0;
}

void tm_quantize_rules_init(tm_quantize_rules *r, tm_ftype ftype, bool pure, const char *architecture, int n_layers,
                            int n_heads, int n_kv_heads) {
    memset(r, 0, sizeof *r);
    r->ftype = ftype;
    r->pure = pure;
    r->falcon = architecture && !strcmp(architecture, "falcon");
    /* llama.cpp's LLM_TYPE_70B: a llama of 80 layers with grouped-query attention. */
    r->is_70b = architecture && !strcmp(architecture, "llama") && n_layers == 80 && n_heads != n_kv_heads;
    r->n_layers = n_layers;
}

void tm_quantize_rules_count(tm_quantize_rules *r, const char *name) {
    category c = tensor_category(name);
    if (category_is_attn_v(c)) r->n_attention_wv++;
    if (c == CAT_OUTPUT) r->has_output = true;
}

static bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

/* llama_tensor_get_type_impl, for the file types of quantize.h. */
static uint32_t mixture_type(tm_quantize_rules *r, uint32_t new_type, const char *name, const uint64_t ne[4]) {
    category c = tensor_category(name);
    tm_ftype f = r->ftype;
    if (c == CAT_OUTPUT || (!r->has_output && c == CAT_TOKEN_EMBD)) {
        if (r->falcon || ne[0] % tm_ggml_block_elements(new_type) != 0) new_type = TM_GGML_Q8_0;
        else if (new_type != TM_GGML_Q8_0) new_type = TM_GGML_Q6_K;
    } else if (c == CAT_TOKEN_EMBD) {
        /* only the IQ and ternary file types change it */
    } else if (category_is_attn_v(c)) {
        if ((f == TM_FTYPE_Q4_K_M || f == TM_FTYPE_Q5_K_M) && use_more_bits(r->i_attention_wv, r->n_attention_wv))
            new_type = TM_GGML_Q6_K;
        else if (f == TM_FTYPE_Q4_K_S && r->i_attention_wv < 4)
            new_type = TM_GGML_Q5_K;
        if (r->is_70b && new_type == TM_GGML_Q4_K) new_type = TM_GGML_Q5_K;
        ++r->i_attention_wv;
    } else if (c == CAT_FFN_DOWN) {
        int i_layer = r->i_ffn_down, n_layer = r->n_layers;
        if (f == TM_FTYPE_Q4_K_M) {
            if (r->falcon)
                new_type = i_layer < n_layer / 16 ? TM_GGML_Q6_K
                           : use_more_bits(i_layer, n_layer) ? TM_GGML_Q5_K
                                                             : TM_GGML_Q4_K;
            else if (use_more_bits(i_layer, n_layer))
                new_type = TM_GGML_Q6_K;
        } else if (f == TM_FTYPE_Q5_K_M && use_more_bits(i_layer, n_layer)) {
            new_type = TM_GGML_Q6_K;
        } else if (f == TM_FTYPE_Q4_K_S && !r->falcon && i_layer < n_layer / 8) {
            new_type = TM_GGML_Q5_K;
        }
        ++r->i_ffn_down;
    }
    /* attn_output, attn_q/k, ffn_gate/up: only Q2/Q3 and IQ file types change them. */
    return new_type;
}

/* tensor_type_fallback: rows that are not a multiple of the block. */
static uint32_t fallback_type(tm_quantize_rules *r, uint32_t type, const uint64_t ne[4]) {
    uint64_t block = tm_ggml_block_elements(type);
    if (ne[0] % block == 0) return type;
    r->n_fallback++;
    uint32_t fallback = type;
    switch (type) {
    case TM_GGML_Q4_K: fallback = TM_GGML_Q5_0; break;
    case TM_GGML_Q5_K: fallback = TM_GGML_Q5_1; break;
    case TM_GGML_Q6_K: fallback = TM_GGML_Q8_0; break;
    default: break; /* a 32-block type has nothing smaller: F16 below */
    }
    if (ne[0] % tm_ggml_block_elements(fallback) != 0) fallback = TM_GGML_F16;
    return fallback;
}

uint32_t tm_quantize_rules_choose(tm_quantize_rules *r, const char *name, const uint64_t ne[4], uint32_t current_type) {
    if (!allows_quantization(name, ne)) return current_type;
    uint32_t type = tm_ftype_default_type(r->ftype);
    if (!tm_quant_is_quantized(type)) return type; /* F32, F16, BF16: no mixture, no fallback */
    if (!r->pure) type = mixture_type(r, type, name, ne);
    return fallback_type(r, type, ne);
}

/* N of "blk.N", or -1 for other names: what llama.cpp's sscanf(name, "blk.%d.")
 * leaves in its layer variable (it assigns N before matching the dot). */
static int layer_of(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    const char *p = name + 4;
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    while (*p >= '0' && *p <= '9' && v < 100000000) v = v * 10 + (*p++ - '0');
    return (int)v;
}

int tm_quantize_compare_names(const char *a, const char *b) {
    int la = layer_of(a), lb = layer_of(b);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a, b);
}

/* ======================================================================== */
/* Whole files                                                               */
/* ======================================================================== */

typedef struct {
    const tm_gguf_tensor *tensor;
    char name[TM_GGUF_MAX_TENSOR_NAME];
    uint32_t to_type;
} plan_entry;

static int plan_compare(const void *a, const void *b) {
    return tm_quantize_compare_names(((const plan_entry *)a)->name, ((const plan_entry *)b)->name);
}

static bool keep_key(const char *key, void *user) {
    (void)user;
    return strcmp(key, "split.no") != 0 && strcmp(key, "split.count") != 0 &&
           strcmp(key, "split.tensors.count") != 0;
}

enum { SLAB_BYTES = 64 << 20 };

/* Convert rows [first, first + count) of t into out; returns the first bad
 * row (non-finite input or overflowing scales) or -1. */
static int64_t convert_rows(const plan_entry *e, int64_t first, int64_t count, uint8_t *out, float *scratch,
                            int n_threads, int *why) {
    const tm_gguf_tensor *t = e->tensor;
    int64_t cols = (int64_t)t->ne[0];
    uint64_t src_row = tm_quantize_row_bytes(t->type, cols), dst_row = tm_quantize_row_bytes(e->to_type, cols);
    bool check = tm_quant_is_quantized(e->to_type);
    int64_t bad = -1;
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 1)
    for (int64_t r = 0; r < count; r++) {
        float *x = scratch + (size_t)omp_get_thread_num() * (size_t)cols;
        const uint8_t *src = (const uint8_t *)t->data + (uint64_t)(first + r) * src_row;
        uint8_t *dst = out + (uint64_t)r * dst_row;
        tm_quantize_row_to_f32(t->type, src, x, cols);
        int problem = 0;
        if (check) {
            for (int64_t i = 0; i < cols; i++)
                if (!isfinite(x[i])) {
                    problem = 1;
                    break;
                }
        }
        if (!problem) {
            tm_quantize_row(e->to_type, x, dst, cols);
            if (check && !scales_finite(e->to_type, dst, cols)) problem = 2;
        }
        if (problem) {
#pragma omp critical(tm_quantize_bad_row)
            if (bad < 0 || first + r < bad) {
                bad = first + r;
                *why = problem;
            }
        }
    }
    return bad;
}

/* What steers llama.cpp's mixture: general.architecture (empty when absent,
 * too long or holding a NUL) and the layer and head counts under its prefix
 * (0 when absent, kv heads defaulting to heads), capped at a million. */
typedef struct {
    char arch[64];
    uint64_t n_layers, n_heads, n_kv_heads;
} mixture_facts;

static void read_mixture_facts(const tm_gguf *src, mixture_facts *f) {
    *f = (mixture_facts){0};
    tm_string_view view;
    if (tm_gguf_get_string(src, "general.architecture", &view) && view.size < sizeof f->arch &&
        !memchr(view.data, 0, (size_t)view.size)) {
        memcpy(f->arch, view.data, (size_t)view.size);
        f->arch[view.size] = 0;
    }
    char key[128];
    snprintf(key, sizeof key, "%s.block_count", f->arch);
    tm_gguf_get_u64(src, key, &f->n_layers);
    snprintf(key, sizeof key, "%s.attention.head_count", f->arch);
    tm_gguf_get_u64(src, key, &f->n_heads);
    snprintf(key, sizeof key, "%s.attention.head_count_kv", f->arch);
    if (!tm_gguf_get_u64(src, key, &f->n_kv_heads)) f->n_kv_heads = f->n_heads;
    if (f->n_layers > 1000000) f->n_layers = 1000000;
    if (f->n_heads > 1000000) f->n_heads = 1000000;
    if (f->n_kv_heads > 1000000) f->n_kv_heads = 1000000;
}

/* The source's tensors in llama.cpp's order, each with its new type, and
 * the sizes the streaming step allocates for. */
typedef struct {
    plan_entry *entries;
    size_t n;
    uint64_t max_cols;    /* the longest row that is converted, in elements */
    uint64_t bytes_total; /* every source tensor's bytes, for progress */
} quantize_plan;

/* One entry per source tensor (its name NUL-terminated), sorted. */
static tm_status list_tensors(const tm_gguf *src, const char *in_path, quantize_plan *plan, tm_error *err) {
    size_t n = (size_t)src->n_tensors;
    plan->entries = tm_alloc_array(n ? n : 1, sizeof *plan->entries, err);
    if (!plan->entries) return TM_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const tm_gguf_tensor *t = &src->tensors[i];
        if (t->name.size >= TM_GGUF_MAX_TENSOR_NAME || memchr(t->name.data, 0, (size_t)t->name.size))
            return tm_error_set(err, TM_ERR_FORMAT, "%s: tensor #%zu has a name longer than %d bytes or holding a NUL",
                                in_path, i, TM_GGUF_MAX_TENSOR_NAME - 1);
        plan->entries[i].tensor = t;
        memcpy(plan->entries[i].name, t->name.data, (size_t)t->name.size);
        plan->entries[i].name[t->name.size] = 0;
    }
    plan->n = n;
    qsort(plan->entries, n, sizeof *plan->entries, plan_compare);
    return TM_OK;
}

/* Refuse a tensor that is to change type but cannot be read, or that is
 * already quantized when requantizing is not allowed. */
static tm_status check_convertible(const plan_entry *e, const char *in_path, const tm_quantize_options *o,
                                   tm_error *err) {
    const tm_gguf_tensor *t = e->tensor;
    if (!tm_quantize_can_read(t->type))
        return tm_error_set(err, TM_ERR_UNSUPPORTED,
                            "%s: tensor '%s' is %s, which cannot be converted (sources: F32, F16, BF16, Q8_0, Q4_0, "
                            "Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)",
                            in_path, e->name, tm_ggml_type_name(t->type));
    if (tm_quant_is_quantized(t->type) && !o->allow_requantize)
        return tm_error_set(err, TM_ERR_UNSUPPORTED,
                            "%s: tensor '%s' is already quantized (%s); requantizing loses precision and is off "
                            "unless allowed (--allow-requantize)",
                            in_path, e->name, tm_ggml_type_name(t->type));
    return TM_OK;
}

/* List and sort the tensors, then choose each one's type with llama.cpp's
 * rules for the file type. The caller frees plan->entries. */
static tm_status plan_tensors(const tm_gguf *src, const char *in_path, const tm_quantize_options *o,
                              quantize_plan *plan, tm_error *err) {
    *plan = (quantize_plan){.max_cols = 1};
    tm_status s = list_tensors(src, in_path, plan, err);
    if (s) return s;
    mixture_facts facts;
    read_mixture_facts(src, &facts);
    tm_quantize_rules rules;
    tm_quantize_rules_init(&rules, o->ftype, o->pure, facts.arch, (int)facts.n_layers, (int)facts.n_heads,
                           (int)facts.n_kv_heads);
    for (size_t i = 0; i < plan->n; i++) tm_quantize_rules_count(&rules, plan->entries[i].name);
    for (size_t i = 0; i < plan->n; i++) {
        plan_entry *e = &plan->entries[i];
        const tm_gguf_tensor *t = e->tensor;
        e->to_type = tm_quantize_rules_choose(&rules, e->name, t->ne, t->type);
        plan->bytes_total += t->n_bytes;
        if (e->to_type == t->type) continue;
        if ((s = check_convertible(e, in_path, o, err))) return s;
        if (t->ne[0] > plan->max_cols) plan->max_cols = t->ne[0];
    }
    return TM_OK;
}

/* The source's metadata (less the split.* keys), then general.quantization_version
 * and general.file_type moved to the end, as llama.cpp's gguf_set_val_u32
 * does, so that the file is byte for byte llama.cpp's. */
static tm_status write_metadata(tm_gguf_writer *w, const tm_gguf *src, const tm_quantize_options *o, tm_error *err) {
    tm_status s = tm_gguf_writer_copy_metadata(w, src, keep_key, NULL, err);
    if (s) return s;
    tm_gguf_writer_remove(w, "general.quantization_version");
    tm_gguf_writer_remove(w, "general.file_type");
    if ((s = tm_gguf_writer_set_u32(w, "general.quantization_version", 2, err))) return s;
    return tm_gguf_writer_set_u32(w, "general.file_type", (uint32_t)o->ftype, err);
}

/* Buffers of the streaming step: one row of floats per thread, and a slab
 * of converted rows (SLAB_BYTES, or one row where a row is larger). */
typedef struct {
    int n_threads;
    float *scratch;
    uint8_t *slab;
} quantize_buffers;

/* The error for the first bad row convert_rows found. */
static tm_status bad_row_error(const char *in_path, const plan_entry *e, int64_t bad, int why, tm_error *err) {
    if (why == 1)
        return tm_error_set(err, TM_ERR_FORMAT,
                            "%s: tensor '%s' row %lld holds a NaN or infinity; refusing to quantize it", in_path,
                            e->name, (long long)bad);
    return tm_error_set(err, TM_ERR_FORMAT,
                        "%s: tensor '%s' row %lld: values too large for %s (its F16 scale overflows)", in_path,
                        e->name, (long long)bad, tm_ggml_type_name(e->to_type));
}

/* Convert and write one tensor whose type changes, a slab of rows at a
 * time; *bytes_done counts source bytes for progress. */
static tm_status convert_tensor(tm_gguf_writer *w, const char *in_path, const tm_quantize_options *o,
                                const quantize_plan *plan, size_t index, quantize_buffers *b, uint64_t *bytes_done,
                                tm_error *err) {
    const plan_entry *e = &plan->entries[index];
    const tm_gguf_tensor *t = e->tensor;
    int64_t cols = (int64_t)t->ne[0], rows = (int64_t)(t->n_elements / t->ne[0]);
    uint64_t dst_row = tm_quantize_row_bytes(e->to_type, cols), src_row = tm_quantize_row_bytes(t->type, cols);
    uint64_t capacity = (uint64_t)SLAB_BYTES;
    if (dst_row > capacity) { /* a single enormous row: grow the slab for it */
        free(b->slab);
        b->slab = tm_alloc_array(1, (size_t)dst_row, err);
        if (!b->slab) return TM_ERR_NOMEM;
        capacity = dst_row;
    }
    int64_t per_slab = (int64_t)(capacity / dst_row);
    for (int64_t first = 0; first < rows; first += per_slab) {
        int64_t count = rows - first < per_slab ? rows - first : per_slab;
        int why = 0;
        int64_t bad = convert_rows(e, first, count, b->slab, b->scratch, b->n_threads, &why);
        if (bad >= 0) return bad_row_error(in_path, e, bad, why, err);
        tm_status s = tm_gguf_writer_write(w, b->slab, (size_t)((uint64_t)count * dst_row), err);
        if (s) return s;
        *bytes_done += (uint64_t)count * src_row;
        if (o->progress)
            o->progress(o->user, index, plan->n, e->name, t->type, e->to_type, *bytes_done, plan->bytes_total);
    }
    return TM_OK;
}

/* The data section: each tensor copied as it is or converted, in the plan's
 * order, with progress before each tensor and after each converted slab. */
static tm_status stream_tensors(tm_gguf_writer *w, const char *in_path, const tm_quantize_options *o,
                                const quantize_plan *plan, tm_error *err) {
    int n_threads = o->n_threads > 0 ? o->n_threads : omp_get_num_procs();
    quantize_buffers b = {.n_threads = n_threads < 1 ? 1 : n_threads};
    b.scratch = tm_alloc_array((size_t)b.n_threads, (size_t)plan->max_cols * sizeof(float), err);
    b.slab = tm_alloc_array(1, SLAB_BYTES, err);
    tm_status s = b.scratch && b.slab ? TM_OK : TM_ERR_NOMEM;
    uint64_t bytes_done = 0;
    for (size_t i = 0; i < plan->n && !s; i++) {
        const plan_entry *e = &plan->entries[i];
        const tm_gguf_tensor *t = e->tensor;
        if (o->progress) o->progress(o->user, i, plan->n, e->name, t->type, e->to_type, bytes_done, plan->bytes_total);
        if (e->to_type != t->type) {
            s = convert_tensor(w, in_path, o, plan, i, &b, &bytes_done, err);
        } else if (!(s = tm_gguf_writer_write(w, t->data, (size_t)t->n_bytes, err))) {
            bytes_done += t->n_bytes;
        }
    }
    if (!s && o->progress) o->progress(o->user, plan->n, plan->n, "", 0, 0, plan->bytes_total, plan->bytes_total);
    free(b.scratch);
    free(b.slab);
    return s;
}

/* Metadata, the tensor infos, then the data, at the source's alignment; the
 * writer renames the file into place only when all of it is written. */
static tm_status write_file(const char *in_path, const char *out_path, const tm_gguf *src,
                            const tm_quantize_options *o, const quantize_plan *plan, tm_error *err) {
    tm_gguf_writer *w = NULL;
    tm_status s = tm_gguf_writer_create(&w, out_path, (uint32_t)src->alignment, err);
    if (!s) s = write_metadata(w, src, o, err);
    for (size_t i = 0; i < plan->n && !s; i++) {
        const plan_entry *e = &plan->entries[i];
        s = tm_gguf_writer_add_tensor(w, e->name, e->to_type, e->tensor->n_dims, e->tensor->ne, err);
    }
    if (!s) s = tm_gguf_writer_begin_data(w, err);
    if (!s) s = stream_tensors(w, in_path, o, plan, err);
    if (!s) s = tm_gguf_writer_finish(w, err);
    tm_gguf_writer_free(w);
    return s;
}

tm_status tm_quantize_file(const char *in_path, const char *out_path, const tm_quantize_options *o, tm_error *err) {
    if (tm_ftype_default_type(o->ftype) == TM_GGML_TYPE_LIMIT)
        return tm_error_set(err, TM_ERR_ARGUMENT, "unknown file type %d (known: %s)", (int)o->ftype, tm_ftype_names());
    tm_gguf *src = NULL;
    tm_status s = tm_gguf_open(&src, in_path, err);
    if (s) return s;
    quantize_plan plan;
    s = plan_tensors(src, in_path, o, &plan, err);
    if (!s) s = write_file(in_path, out_path, src, o, &plan, err);
    free(plan.entries);
    tm_gguf_close(src);
    return s;
}
