/* Internal to detect/: the float32 AVX-512 kernels of the EXP-edit / ITS-edit
 * permutation test's fast path (exp_edit_fast.c). exp_edit_detect.c decides
 * with them only where their error bound settles a null key's side of the
 * observed statistic; nothing else may use them. */
#ifndef TRACEMARK_DETECT_EXP_EDIT_FAST_H
#define TRACEMARK_DETECT_EXP_EDIT_FAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { TM_EXP_EDIT_FAST_LANES = 16 };

/* Bounds on |fast (cost - 2 gap) - (exact double cost - 2 gap)| for one
 * (token, row) pair: EXP log(((x >> 12) + 0.5) 2^-52) (tests/test_exp_edit_fast.c
 * measures the kernel against libm over every float mantissa and asserts
 * half of this), ITS |u - eta| from doubles rounded to float (3 roundings
 * of <= 2^-25; the subtraction of 2 gap is bounded separately). */
#define TM_EXP_EDIT_FAST_EPS_EXP 2e-5
#define TM_EXP_EDIT_FAST_EPS_ITS 1e-6

/* The text's side of an alignment, shared by the 16 lanes. */
typedef struct {
    const uint32_t *index; /* per scored token: its row block in the table */
    size_t n_text, block, block_stride, n_blocks, n_rows;
    float gap;
    const float *row_init; /* [0 .. n + 2k]: float(-r gamma) */
    const float *row_end;  /* [0 .. n + 2k]: float((r + k) gamma) */
} tm_exp_edit_fast_text;

/* Whether the kernels may run: AVX-512F, VL and DQ, not turned off by TM_NO_AVX512 / TM_NO_AVX2. */
bool tm_exp_edit_fast_available(void);

/* phi of each lane (min over blocks of the fitting alignment), previous and
 * current: (n + 2k + 1) x 16 floats each, 64-byte aligned. The table (64-byte
 * aligned, distinct tokens x n_rows x 16 floats) is filled token by token as
 * the alignment first reaches each, with cost - 2 gap: EXP (state: lane l's
 * xoshiro256** state in state[4 l .. 4 l + 3]) log(((x_c >> 12) + 0.5) 2^-52)
 * for the c-th output x_c of lane l's stream (c = distinct token * n_rows +
 * row), and minimum[l] set to the least of lane l's values; ITS (state NULL,
 * eta [distinct token][16], u [row][16]) |u - eta|, minimum left alone. */
void tm_exp_edit_fast_align(const tm_exp_edit_fast_text *text, float *table, float *previous, float *current,
                            const uint64_t *state, const float *eta, const float *u,
                            float out[TM_EXP_EDIT_FAST_LANES], float minimum[TM_EXP_EDIT_FAST_LANES]);

/* The EXP cost less shift of each raw stream word (the table's with shift 2 gap): for the tests. */
void tm_exp_edit_fast_stream_costs(const uint64_t *x, size_t n, float shift, float *out);

#endif
