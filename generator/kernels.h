/* Internal to generator/: the numeric kernels of the forward pass (matrix
 * products over F32/F16/BF16 weights, RMSNorm, RoPE, softmax, SwiGLU) and the
 * half-precision conversions. Not part of the public API. */
#ifndef TRACEMARK_GENERATOR_KERNELS_H
#define TRACEMARK_GENERATOR_KERNELS_H

#include "tracemark/generator.h"

/* IEEE half and bfloat16 <-> float, round to nearest even. */
float tm_f16_to_f32(uint16_t h);
uint16_t tm_f32_to_f16(float f);
float tm_bf16_to_f32(uint16_t h);

/* True when the weight type has a matrix kernel (F32, F16, BF16). */
bool tm_kernel_supports(uint32_t type);

/* Rows [row_begin, row_end) of one weight row converted to floats. */
void tm_kernel_dequantize_row(const tm_tensor *w, int64_t row, float *out);

/* y[rows] = W x. x must be prepared with tm_kernel_prepare_activations for
 * W's type (F16 weights see x rounded to F16, as llama.cpp computes). */
void tm_kernel_matvec(const tm_tensor *w, const float *x, float *y, int n_threads);
/* Several matrices against the same x in one parallel region (Q, K, V; gate, up). */
void tm_kernel_matvec_multi(const tm_tensor *const *w, const float *x, float *const *y, int n, int n_threads);

/* Y[n][rows] = X[n][cols] W^T through OpenBLAS sgemm; F16/BF16 weights are
 * converted in tiles into scratch (tm_kernel_matmul_scratch floats). */
void tm_kernel_matmul(const tm_tensor *w, const float *x, int64_t n, float *y, float *scratch);
size_t tm_kernel_matmul_scratch(int64_t cols);

/* Round activations in place to the precision the weight type's dot product
 * uses (F16 for F16 weights, BF16 for BF16, none for F32). */
void tm_kernel_prepare_activations(uint32_t weight_type, float *x, size_t n);

void tm_kernel_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps);
void tm_kernel_softmax(float *x, int64_t n);
/* out[i] = silu(gate[i]) * up[i] */
void tm_kernel_swiglu(float *out, const float *gate, const float *up, int64_t n);
void tm_kernel_add(float *acc, const float *x, int64_t n);

#endif
