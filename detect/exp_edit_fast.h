/* Internal to detect/: the float32 AVX-512 and AVX2 kernels of the EXP-edit / ITS-edit
 * permutation test's fast path (exp_edit_fast.c). exp_edit_detect.c decides
 * with them only where their error bound settles a null key's side of the
 * observed statistic; nothing else may use them. */
#ifndef TRACEMARK_DETECT_EXP_EDIT_FAST_H
#define TRACEMARK_DETECT_EXP_EDIT_FAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { TM_EXP_EDIT_FAST_LANES = 16 };

/* Which kernel runs the 16 lanes: AVX-512 (one register), AVX2+FMA (two
 * halves of 8, one after the other), or none (the exact path only). */
typedef enum { TM_EXP_EDIT_KERNEL_NONE, TM_EXP_EDIT_KERNEL_AVX2, TM_EXP_EDIT_KERNEL_AVX512 } tm_exp_edit_kernel;

/* Bounds on |fast (cost - 2 gap) - (exact double cost - 2 gap)| for one
 * (token, row) pair: EXP log(((x >> 12) + 0.5) 2^-52) (tests/test_exp_edit_fast.c
 * measures the kernel against libm over every float mantissa and asserts
 * half of this), ITS |u - eta| from doubles rounded to float (3 roundings
 * of <= 2^-25; the subtraction of 2 gap is bounded separately). */
#define TM_EXP_EDIT_FAST_EPS_EXP 2e-5
#define TM_EXP_EDIT_FAST_EPS_ITS 1e-6
/* The same for the coarse tier's EXP log (AVX-512 only): a segment-wise
 * constant correction of the float's bits read as a logarithm, within 0.0095
 * of log (0.0087 measured over every float mantissa; the test asserts half of this). */
#define TM_EXP_EDIT_FAST_EPS_COARSE 0.018

/* Columns of the coarse tier's second lap (see tm_exp_edit_fast_text). */
enum { TM_EXP_EDIT_FAST_COARSE_WRAP = 64 };

/* The text's side of an alignment, shared by the 16 lanes. */
typedef struct {
    const uint32_t *index; /* per scored token: its row block in the table */
    size_t n_text, block, block_stride, n_blocks, n_rows;
    float gap;
    const float *row_init; /* [0 .. n + 2k]: float(-r gamma) */
    const float *row_end;  /* [0 .. n + 2k]: float((r + k) gamma) */
    tm_exp_edit_kernel kernel; /* one tm_exp_edit_fast_runs accepts */
    /* The coarse tier's cyclic alignment (0: the extended key as the other
     * tiers): W, the columns of its second lap (0 < W < n, W < 2k), and the
     * margin by which a pass must be settled (twice a bound on any value's
     * rounding error, plus one). */
    size_t cyclic_wrap;
    float cyclic_margin;
} tm_exp_edit_fast_text;

/* Whether a kernel may run here: AVX-512 needs AVX-512F, VL and DQ and no
 * TM_NO_AVX512; AVX2 needs AVX2 and FMA; TM_NO_AVX2 turns both off. */
bool tm_exp_edit_fast_runs(tm_exp_edit_kernel kernel);

/* The fastest kernel that runs here (NONE where neither does). */
tm_exp_edit_kernel tm_exp_edit_fast_best(void);

/* Whether any kernel runs here. */
bool tm_exp_edit_fast_available(void);

/* Whether kernel has the coarse tier of EXP costs (AVX-512 does, AVX2 not). */
bool tm_exp_edit_fast_coarse_runs(tm_exp_edit_kernel kernel);

/* phi of each lane (min over blocks of the fitting alignment), previous and
 * current: (n + 2k + 1) x 16 floats each, 64-byte aligned. The table (64-byte
 * aligned, distinct tokens x n_rows x 16 floats; the AVX2 kernel uses half of
 * it at a time, [token][row][8] for lanes 0-7, then for lanes 8-15) is filled token by token as
 * the alignment first reaches each, with cost - 2 gap: EXP (state: lane l's
 * xoshiro256** state in state[4 l .. 4 l + 3]) log(((x_c >> 12) + 0.5) 2^-52)
 * for the c-th output x_c of lane l's stream (c = distinct token * n_rows +
 * row), and minimum[l] set to the least of lane l's values, within
 * TM_EXP_EDIT_FAST_EPS_EXP of the exact cost, or with coarse set (where
 * tm_exp_edit_fast_coarse_runs; NaN elsewhere) within
 * TM_EXP_EDIT_FAST_EPS_COARSE; ITS (state NULL, coarse false, eta [distinct
 * token][16], u [row][16]) |u - eta|, minimum left alone. */
void tm_exp_edit_fast_align(const tm_exp_edit_fast_text *text, float *table, float *previous, float *current,
                            const uint64_t *state, bool coarse, const float *eta, const float *u,
                            float out[TM_EXP_EDIT_FAST_LANES], float minimum[TM_EXP_EDIT_FAST_LANES]);

/* The EXP cost less shift of each raw stream word (the table's with shift 2
 * gap) as kernel computes it (coarse: the coarse tier's; NaN where the
 * kernel has none): for the tests. */
void tm_exp_edit_fast_stream_costs(tm_exp_edit_kernel kernel, const uint64_t *x, size_t n, float shift, bool coarse,
                                   float *out);

#endif
