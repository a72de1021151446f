/* Internal to generator/: the numeric kernels of the forward pass (matrix
 * products over F32/F16/BF16 and block-quantized weights, RMSNorm, softmax,
 * SwiGLU) and the half-precision conversions. Not part of the public API. */
#ifndef TRACEMARK_GENERATOR_KERNELS_H
#define TRACEMARK_GENERATOR_KERNELS_H

#include "tracemark/generator.h"

/* One weight row converted to floats (bit-exact with ggml's dequantization). */
void tm_kernel_dequantize_row(const tm_tensor *w, int64_t row, float *out);

/* Bytes tm_kernel_prepare_activations writes for cols activations (never more
 * than cols floats take). */
size_t tm_kernel_activation_bytes(uint32_t weight_type, int64_t cols);
/* x[cols] in the form the matrix-vector product over weight_type reads, as
 * llama.cpp computes it: floats as they are for F32, rounded to F16 or BF16
 * for those weights, quantized to Q8_0/Q8_1/Q8_K blocks for quantized ones. */
void tm_kernel_prepare_activations(uint32_t weight_type, const float *x, int64_t cols, void *out);

/* y[rows] = W x, x from tm_kernel_prepare_activations for W's type (for F32
 * weights the plain floats may be passed instead). */
void tm_kernel_matvec(const tm_tensor *w, const void *x, float *y, int n_threads);
/* Several matrices of one type against the same x in one parallel region (Q, K, V; gate, up). */
void tm_kernel_matvec_multi(const tm_tensor *const *w, const void *x, float *const *y, int n, int n_threads);

/* Y[n][rows] = X[n][cols] W^T as llama.cpp's batched product computes it,
 * on n_threads threads: quantized weights meet activations quantized to 8
 * bits once per call (quant_gemm.c), F16 and BF16 weights are widened in
 * parallel slices for sgemm (X rounded first with
 * tm_kernel_round_activations), F32 goes to sgemm as it is. scratch holds
 * tm_kernel_matmul_scratch(cols) floats. The forward pass's prompt path. */
void tm_kernel_matmul(const tm_tensor *w, const float *x, int64_t n, float *y, float *scratch, int n_threads);
size_t tm_kernel_matmul_scratch(int64_t cols);

/* Round activations in place to the precision llama.cpp's batched product
 * over the weight type uses (F16 for F16 weights, BF16 for BF16; the others
 * are left as they are: the batched product quantizes them itself for
 * quantized weights). */
void tm_kernel_round_activations(uint32_t weight_type, float *x, size_t n);

/* Attention's inner loops: a . b over n floats, and y += a * x. */
float tm_kernel_dot(const float *a, const float *b, int64_t n);
void tm_kernel_axpy(float *y, float a, const float *x, int64_t n);

/* One head's attention over n cached positions, rows stride floats apart:
 * scores[t] = scale * (q . keys[t]), and out = sum_t weights[t] * values[t]
 * accumulated in t order from zero. The same bits as tm_kernel_dot and
 * tm_kernel_axpy called per position (the tests check it). */
void tm_kernel_attention_scores(const float *q, const float *keys, int64_t stride, int64_t n, int64_t head_dim,
                                float scale, float *scores);
void tm_kernel_attention_values(const float *weights, const float *values, int64_t stride, int64_t n,
                                int64_t head_dim, float *out);
/* The same over an F16 cache (rows of stride halves): the F32 kernels' bits
 * on the rows widened to F32. head_dim <= TM_KERNEL_MAX_HEAD_DIM (the model
 * loader's limit). */
enum { TM_KERNEL_MAX_HEAD_DIM = 4096 };
void tm_kernel_attention_scores_f16(const float *q, const uint16_t *keys, int64_t stride, int64_t n, int64_t head_dim,
                                    float scale, float *scores);
void tm_kernel_attention_values_f16(const float *weights, const uint16_t *values, int64_t stride, int64_t n,
                                    int64_t head_dim, float *out);
/* out[i] = x[i] rounded to F16 (to nearest, ties to even: tm_f32_to_f16). */
void tm_kernel_to_f16(const float *x, uint16_t *out, size_t n);


void tm_kernel_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps);
void tm_kernel_softmax(float *x, int64_t n);
/* out[i] = silu(gate[i]) * up[i] */
void tm_kernel_swiglu(float *out, const float *gate, const float *up, int64_t n);
void tm_kernel_add(float *acc, const float *x, int64_t n);

#endif
