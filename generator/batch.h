/* Internal to generator/: the small-batch product of continuous batching
 * (batch.c), used by forward.c's tm_context_eval_batch. Not public API. */
#ifndef TRACEMARK_GENERATOR_BATCH_H
#define TRACEMARK_GENERATOR_BATCH_H

#include "tracemark/generator.h"

/* Up to this many rows a quantized weight goes through tm_batch_matvec;
 * beyond it the prompt's batched product (8-bit tiles) is the faster. */
enum { TM_BATCH_MATVEC_MAX = 16 };

/* Up to this many rows go through one pass of the 512-bit kernels (more in
 * several passes). */
enum { TM_BATCH_WIDE_MAX = 8 };

/* Whether tm_batch_matvec takes this weight type (the block-quantized ones). */
bool tm_batch_matvec_supports(uint32_t type);

/* y_i = W x_i for i < n: x_i are the activations prepared for W's type
 * (tm_kernel_prepare_activations) at xq + i * xq_stride bytes, y_i are at
 * y + i * y_stride floats. The rows of W are walked in tiles small enough
 * to stay in cache while every x_i meets them, so W is read from memory
 * once for the whole batch; each y_i[r] is the matrix-vector kernel's own
 * dot product, bit for bit what a single sequence gets. */
void tm_batch_matvec(const tm_tensor *w, const void *xq, size_t xq_stride, float *y, size_t y_stride, int n,
                     int n_threads);

#endif
