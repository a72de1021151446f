/* Internal to generator/: batched products of block-quantized weights with a
 * batch of activations, as llama.cpp's CPU backend computes them for a
 * prompt: the activations are quantized to 8 bits once per call (Q8_0/Q8_1
 * for the 32-element block types, Q8_K for the K types) and multiplied in
 * integers, block by block. Not part of the public API. */
#ifndef TRACEMARK_GENERATOR_QUANT_GEMM_H
#define TRACEMARK_GENERATOR_QUANT_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quant_dot.h"

/* Scratch bytes tm_quant_gemm needs for n tokens of cols activations (at
 * most 1.75 * n * cols + 256 bytes). */
size_t tm_quant_gemm_scratch_bytes(uint32_t type, int64_t cols, int64_t n);

/* Y[n][rows] = X[n][cols] W^T for W of a block-quantized type (in either
 * layout of tm_tensor), on n_threads threads. The result of each
 * (token, row) pair does not depend on the thread count. The kernel path is
 * tm_quant_gemm_path()'s. */
void tm_quant_gemm(const tm_tensor *w, const float *x, int64_t n, float *y, void *scratch, int n_threads);

/* For the tests: bytes of the weight panel buffer the kernels unpack into. */
size_t tm_quant_gemm_panel_bytes(void);

/* For the tests: unpack the panel of rows [r0, r0 + 16) (rows past the last
 * repeat it) over the chunk of at most 1024 columns from c0 (a multiple of
 * 1024) as path's kernels do, into panel (tm_quant_gemm_panel_bytes() bytes,
 * 64-byte aligned; bytes past the chunk are left alone). False when this CPU
 * or build lacks the path. The AVX2 and AVX-VNNI paths share one unpacking
 * that must give the portable panel byte for byte; AVX512-VNNI's orders the
 * rows differently. */
bool tm_quant_gemm_unpack_panel(tm_quant_path path, const tm_tensor *w, int64_t r0, int64_t c0, void *panel);

#endif
