/* llama.cpp's block-quantized weights as a file holds them: which types are
 * block types, how many bytes a row takes, and dequantization bit-exact with
 * ggml's dequantize_row_* (the same float operations in the same order, never
 * fused into FMAs). The engine's kernels and the quantizer both read blocks
 * through here and through the layouts in tracemark/model.h. Blocks are read
 * byte by byte: nothing here assumes the file aligned them, and nothing here
 * checks shapes (model.c did at load time). */
#include "tracemark/model.h"

bool tm_quant_is_quantized(uint32_t type) {
    switch (type) {
    case TM_GGML_Q8_0: case TM_GGML_Q4_0: case TM_GGML_Q4_1: case TM_GGML_Q5_0: case TM_GGML_Q5_1:
    case TM_GGML_Q4_K: case TM_GGML_Q5_K: case TM_GGML_Q6_K:
        return true;
    default:
        return false;
    }
}

size_t tm_quant_row_bytes(uint32_t type, int64_t cols) {
    return (size_t)(cols / (int64_t)tm_ggml_block_elements(type)) * (size_t)tm_ggml_block_bytes(type);
}

int32_t tm_quant_row_group(uint32_t type) {
    switch (type) {
    case TM_GGML_Q8_0: case TM_GGML_Q4_0: return 8;
    case TM_GGML_Q4_K: case TM_GGML_Q5_K: case TM_GGML_Q6_K: return 4;
    default: return 1;
    }
}

/* ---- dequantization (ggml-quants.c, operation for operation) -------------- */

static void dequantize_q8_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += TM_Q8_0_BYTES, y += TM_QK) {
        float d = tm_block_f16(b);
        for (int j = 0; j < TM_QK; j++) y[j] = (float)(int8_t)b[2 + j] * d;
    }
}

static void dequantize_q4_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += TM_Q4_0_BYTES, y += TM_QK) {
        float d = tm_block_f16(b);
        const uint8_t *qs = b + 2;
        for (int j = 0; j < TM_QK / 2; j++) {
            y[j] = (float)((qs[j] & 0x0F) - 8) * d;
            y[j + TM_QK / 2] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequantize_q4_1(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += TM_Q4_1_BYTES, y += TM_QK) {
        float d = tm_block_f16(b), m = tm_block_f16(b + 2);
        const uint8_t *qs = b + 4;
        for (int j = 0; j < TM_QK / 2; j++) {
            float x0 = (float)(qs[j] & 0x0F) * d, x1 = (float)(qs[j] >> 4) * d;
            y[j] = x0 + m;
            y[j + TM_QK / 2] = x1 + m;
        }
    }
}

static void dequantize_q5_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += TM_Q5_0_BYTES, y += TM_QK) {
        float d = tm_block_f16(b);
        uint32_t qh = tm_block_u32(b + 2);
        const uint8_t *qs = b + 6;
        for (int j = 0; j < TM_QK / 2; j++) {
            int high0 = (int)(((qh >> j) << 4) & 0x10), high1 = (int)((qh >> (j + 12)) & 0x10);
            y[j] = (float)(((qs[j] & 0x0F) | high0) - 16) * d;
            y[j + TM_QK / 2] = (float)(((qs[j] >> 4) | high1) - 16) * d;
        }
    }
}

static void dequantize_q5_1(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += TM_Q5_1_BYTES, y += TM_QK) {
        float d = tm_block_f16(b), m = tm_block_f16(b + 2);
        uint32_t qh = tm_block_u32(b + 4);
        const uint8_t *qs = b + 8;
        for (int j = 0; j < TM_QK / 2; j++) {
            int high0 = (int)(((qh >> j) << 4) & 0x10), high1 = (int)((qh >> (j + 12)) & 0x10);
            float x0 = (float)((qs[j] & 0x0F) | high0) * d, x1 = (float)((qs[j] >> 4) | high1) * d;
            y[j] = x0 + m;
            y[j + TM_QK / 2] = x1 + m;
        }
    }
}

static void dequantize_q4_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += TM_Q4_K_BYTES) {
        float d = tm_block_f16(b), dmin = tm_block_f16(b + 2);
        const uint8_t *scales = b + 4, *q = b + 16;
        for (int j = 0; j < 4; j++, q += 32) {
            uint8_t sc, m;
            tm_block_scale_min_k4(2 * j, scales, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            tm_block_scale_min_k4(2 * j + 1, scales, &sc, &m);
            float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                float v = d1 * (float)(q[l] & 0xF);
                *y++ = v - m1;
            }
            for (int l = 0; l < 32; l++) {
                float v = d2 * (float)(q[l] >> 4);
                *y++ = v - m2;
            }
        }
    }
}

static void dequantize_q5_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += TM_Q5_K_BYTES) {
        float d = tm_block_f16(b), dmin = tm_block_f16(b + 2);
        const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
        unsigned u1 = 1, u2 = 2;
        for (int j = 0; j < 4; j++, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            tm_block_scale_min_k4(2 * j, scales, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            tm_block_scale_min_k4(2 * j + 1, scales, &sc, &m);
            float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                float v = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0));
                *y++ = v - m1;
            }
            for (int l = 0; l < 32; l++) {
                float v = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0));
                *y++ = v - m2;
            }
        }
    }
}

static void dequantize_q6_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += TM_Q6_K_BYTES) {
        float d = tm_block_f16(b + 208);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int n = 0; n < TM_QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

void tm_quant_dequantize_row(uint32_t type, const void *src, float *out, int64_t cols) {
    const uint8_t *b = src;
    switch (type) {
    case TM_GGML_Q8_0: dequantize_q8_0(b, out, cols / TM_QK); break;
    case TM_GGML_Q4_0: dequantize_q4_0(b, out, cols / TM_QK); break;
    case TM_GGML_Q4_1: dequantize_q4_1(b, out, cols / TM_QK); break;
    case TM_GGML_Q5_0: dequantize_q5_0(b, out, cols / TM_QK); break;
    case TM_GGML_Q5_1: dequantize_q5_1(b, out, cols / TM_QK); break;
    case TM_GGML_Q4_K: dequantize_q4_k(b, out, cols / TM_QK_K); break;
    case TM_GGML_Q5_K: dequantize_q5_k(b, out, cols / TM_QK_K); break;
    case TM_GGML_Q6_K: dequantize_q6_k(b, out, cols / TM_QK_K); break;
    default: break;
    }
}

