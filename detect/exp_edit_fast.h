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

/* Bounds on |fast cost - exact double cost| for one (token, row) pair:
 * EXP log(((x >> 12) + 0.5) 2^-52) (tests/test_exp_edit_fast.c measures the
 * kernel against libm over every float mantissa and asserts half of this),
 * ITS |u - eta| from doubles rounded to float (3 roundings of <= 2^-25). */
#define TM_EXP_EDIT_FAST_EPS_EXP 1e-5
#define TM_EXP_EDIT_FAST_EPS_ITS 1e-6

/* The text's side of an alignment, shared by the 16 lanes. */
typedef struct {
    const uint32_t *index; /* per scored token: its row block in the table */
    size_t n_text, block, block_stride, n_blocks, n_rows;
    float gap;
    const float *row_init;    /* [0 .. n + 2k]: float(-r gamma) */
    const float *row_end;     /* [0 .. n + 2k]: float(r gamma) */
    const float *column_init; /* [0 .. k]: float(i gamma) */
} tm_exp_edit_fast_text;

/* Whether this CPU runs the kernels (AVX-512F and DQ). */
bool tm_exp_edit_fast_available(void);

/* EXP: table[(c * 16) + l] = log(((x_c >> 12) + 0.5) 2^-52) - gap for the
 * c-th output x_c (c < cells) of lane l's xoshiro256** started at state[4 l .. 4 l + 3];
 * minimum[l] = the least cost (before - gap) of lane l. table is 64-byte aligned. */
void tm_exp_edit_fast_exp_table(const uint64_t *state, size_t cells, float gap,
                                float *table, float minimum[TM_EXP_EDIT_FAST_LANES]);

/* ITS: table[((t * n_rows + r) * 16) + l] = |u[r][l] - eta[t][l]| - gap. */
void tm_exp_edit_fast_its_table(const float *eta, const float *u, size_t n_distinct, size_t n_rows, float gap,
                                float *table);

/* phi of each lane (min over blocks of the fitting alignment), previous and
 * current: (n + 2k + 1) x 16 floats each, 64-byte aligned. With state
 * (EXP), the table is filled as tm_exp_edit_fast_exp_table would, token by
 * token as the alignment reaches it, and minimum is set; with state NULL
 * the table is read as it is and minimum (may be NULL) is left alone. */
void tm_exp_edit_fast_align(const tm_exp_edit_fast_text *text, float *table, float *previous, float *current,
                            const uint64_t *state, float out[TM_EXP_EDIT_FAST_LANES],
                            float minimum[TM_EXP_EDIT_FAST_LANES]);

/* The EXP cost of each raw stream word, as the table holds it (plus gap): for the tests. */
void tm_exp_edit_fast_stream_costs(const uint64_t *x, size_t n, float *out);

#endif
