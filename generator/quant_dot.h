/* Internal to generator/: dot products of llama.cpp's block-quantized weight
 * rows (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; layouts in
 * tracemark/model.h) with activations quantized to 8 bits first, as
 * llama.cpp's CPU backend does (Q8_0/Q8_1 for the 32-element block types,
 * Q8_K for the 256-element K types). Not part of the public API. */
#ifndef TRACEMARK_GENERATOR_QUANT_DOT_H
#define TRACEMARK_GENERATOR_QUANT_DOT_H

#include "tracemark/model.h"

/* Activations quantized for a 32-element block type: d is the scale after
 * rounding through F16 (as stored by llama.cpp), s = F16(d * sum(qs)) for the
 * Q8_1 partners of Q4_1 and Q5_1, sum = sum(qs) (lets the Q4_0 kernel take its
 * quants unsigned and subtract the offset of 8 once per block). */
typedef struct {
    float d, s;
    int32_t sum;
    int8_t qs[32];
} tm_q8_block;

/* Activations quantized for a K type (llama.cpp's block_q8_K): d is a plain
 * float; bsums are the sums of each 16 quants. */
typedef struct {
    float d;
    int16_t bsums[16];
    int8_t qs[256];
} tm_q8k_block;

/* Bytes the quantized activations of one row of cols floats take for
 * weights of this type (a multiple of the activation block's alignment). */
size_t tm_quant_activation_bytes(uint32_t type, int64_t cols);

/* Quantize cols activations for weights of type into out
 * (tm_quant_activation_bytes bytes), rounding as llama.cpp's x86 CPU backend
 * does: Q8_0/Q8_1 with d = max|x| / 127 and round-half-even of x * 127 / max|x|,
 * Q8_K as quantize_row_q8_K_ref. */
void tm_quant_quantize_activations(uint32_t type, const float *x, void *out, int64_t cols);

/* The same with the scalar loops (for the tests: the vectorised quantizers
 * must give the same bytes). */
void tm_quant_quantize_activations_portable(uint32_t type, const float *x, void *out, int64_t cols);

/* A block-quantized matrix's rows in either layout of tm_tensor, its sizes
 * worked out once for the kernels' inner loops (row groups are a power of
 * two: tm_quant_row_group). */
typedef struct {
    const uint8_t *data;
    size_t row_bytes, block_bytes, stride; /* stride: from one of a row's blocks to the next */
    int64_t group_mask;                    /* rows per group - 1 */
} tm_quant_rows;

static inline tm_quant_rows tm_quant_rows_of(const tm_tensor *w) {
    int64_t group = w->row_group > 1 ? w->row_group : 1;
    tm_quant_rows m = {.data = (const uint8_t *)w->data,
                       .row_bytes = tm_quant_row_bytes(w->type, w->cols),
                       .block_bytes = (size_t)tm_ggml_block_bytes(w->type),
                       .group_mask = group - 1};
    m.stride = (size_t)group * m.block_bytes;
    return m;
}

/* Where row r's first block is. */
static inline const uint8_t *tm_quant_row(const tm_quant_rows *m, int64_t r) {
    int64_t k = r & m->group_mask;
    return m->data + (size_t)(r - k) * m->row_bytes + (size_t)k * m->block_bytes;
}

/* y[r] = row r of w . x for r in [begin, end): w a block-quantized matrix in
 * either layout of tm_tensor (the same results in both), xq the activations
 * from tm_quant_quantize_activations. Vectorised when the CPU allows. */
void tm_quant_matvec_rows(const tm_tensor *w, const void *xq, float *y, int64_t begin, int64_t end);

/* The instruction-set paths of the quantized dot products, best last. Every
 * path gives the portable path's results up to float rounding order. */
typedef enum {
    TM_QUANT_PATH_PORTABLE,
    TM_QUANT_PATH_AVX2,       /* AVX2/FMA/F16C: maddubs + madd */
    TM_QUANT_PATH_AVX_VNNI,   /* AVX-VNNI (VEX vpdpbusd/vpdpwssd on 256 bits) */
    TM_QUANT_PATH_AVX512_VNNI, /* AVX512-VNNI + AVX512VL (EVEX, 256 bits) */
    TM_QUANT_PATH_COUNT
} tm_quant_path;

/* True when this CPU can run the path (TM_NO_AVX2 in the environment turns
 * off every vectorised path, TM_NO_VNNI the VNNI ones). */
bool tm_quant_path_supported(tm_quant_path path);

/* For the tests: make tm_quant_matvec_rows and tm_quant_gemm take this path (which must be
 * supported), or the best supported one again after TM_QUANT_PATH_COUNT. */
void tm_quant_force_path(tm_quant_path path);

/* The path the batched products (quant_gemm.c) take: the forced one, else
 * the widest supported (AVX512-VNNI on 512-bit vectors before AVX-VNNI:
 * there, unlike in the matrix-vector kernels, the width pays). */
tm_quant_path tm_quant_gemm_path(void);

/* The portable dot product of one row with quantized activations (for the
 * tests: the vectorised kernels must agree with it). */
float tm_quant_dot_portable(uint32_t type, const void *row, const void *xq, int64_t cols);

/* For the tests: the single-row AVX2 dot product of one row (the AVX2
 * path's multi-row kernels must give its bits); false when this CPU lacks
 * AVX2 or AVX2 has no kernel for the type. */
bool tm_quant_dot_avx2_row(uint32_t type, const void *row, const void *xq, int64_t cols, float *out);

#endif
