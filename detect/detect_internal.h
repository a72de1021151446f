/* Internal to detect/: the EXP-edit / ITS-edit test, which scores a text by
 * its edit-distance alignment with the key sequence rather than token by
 * token, and so lives beside the per-token statistics of detect.c. */
#ifndef TRACEMARK_DETECT_INTERNAL_H
#define TRACEMARK_DETECT_INTERNAL_H

#include "tracemark/detect.h"

/* Fill out->statistic_name ("edit_alignment"), statistic, expected, log_p,
 * p_resolution, p_at_floor and n_scored for tokens[0..n) (the prompt already
 * removed) against the scheme's key sequence, with a permutation test over
 * options->permutations pseudo-random keys (0: tm_detect_permutations_needed
 * for n_keys) seeded by options->permutation_seed, stopped early when
 * options->sequential and the decision at options->fpr for n_keys keys is
 * settled. */
tm_status tm_detect_exp_edit(const tm_wm_scheme *scheme, const int32_t *tokens, size_t n,
                             const tm_detect_options *options, size_t n_keys, tm_detection *out, tm_error *err);

/* Which path computes the null keys' statistics. EXACT: every key in double
 * (the test as it was first written). AUTO (what tm_detect_exp_edit uses):
 * where the CPU has AVX-512 or AVX2 + FMA, null keys 16 at a time in float32 with a
 * rigorous error bound each, recomputed in double where the bound cannot
 * tell their side of the observed statistic, so every count, p-value and
 * decision is EXACT's to the bit; only `expected` (the null mean) may differ,
 * by less than the bounds (~0.1 for 200 tokens on the precise tier; AVX-512's
 * coarse tier for EXP, lower bounds within ~7.5, moves it by ~0.03, against
 * statistics of hundreds). Elsewhere AUTO is EXACT. */
typedef enum {
    TM_EXP_EDIT_PATH_AUTO,
    TM_EXP_EDIT_PATH_EXACT,
    /* AUTO with a chosen fast kernel (tests and benchmarks compare them on
     * one machine); TM_ERR_UNSUPPORTED where that kernel cannot run. AUTO
     * takes AVX-512, else AVX2 + FMA (TM_NO_AVX512 forces AVX2). */
    TM_EXP_EDIT_PATH_AVX512,
    TM_EXP_EDIT_PATH_AVX2,
    /* AVX512 without its coarse tier for EXP (every batch on the precise
     * log): what the tests and the benchmark compare the tiers with. */
    TM_EXP_EDIT_PATH_AVX512_PRECISE,
} tm_exp_edit_path;

/* Null keys whose side of phi the float values settled, those computed in
 * double, and of these the ones the float bound sent back; of the float
 * ones, those the coarse tier settled, and the batches of 16 it sent to the
 * precise tier. */
typedef struct {
    uint64_t fast, exact, recomputed, coarse, refined;
} tm_exp_edit_path_stats;

/* tm_detect_exp_edit on a chosen path; stats may be NULL. */
tm_status tm_detect_exp_edit_path(const tm_wm_scheme *scheme, const int32_t *tokens, size_t n,
                                  const tm_detect_options *options, size_t n_keys, tm_exp_edit_path path,
                                  tm_exp_edit_path_stats *stats, tm_detection *out, tm_error *err);

/* For the tests: null keys first .. first + count - 1 (count <= 16) of the
 * permutation test on tokens, exact (double), fast (float, on path's kernel:
 * AUTO, AVX512 or AVX2) and the bound the fast path carries for each;
 * coarse_wrap 0: the precise tier, else EXP's coarse tier with a second lap
 * of that many columns (TM_EXP_EDIT_FAST_COARSE_WRAP is the detector's; its
 * values are lower bounds, fast - bound <= exact, NaN where a pass was not
 * settled); TM_ERR_UNSUPPORTED where that fast path (or tier) does not run. */
tm_status tm_detect_exp_edit_nulls(const tm_wm_scheme *scheme, const int32_t *tokens, size_t n, uint64_t seed,
                                   uint64_t first, size_t count, tm_exp_edit_path path, size_t coarse_wrap,
                                   double *exact, double *fast, double *bound, tm_error *err);

/* tm_text_normalize with its ASCII fast path limited, for the tests that
 * compare the paths: ascii_runs 0 takes every character through the
 * general path, 1 copies runs of plain ASCII (no whitespace), 2 (what
 * tm_text_normalize does) also lets a lone space or line feed between two
 * plain characters into a run. */
tm_status tm_text_normalize_paths(const char *text, size_t size, const tm_normalize_options *options, char **out,
                                  size_t *out_size, size_t **offsets, int ascii_runs, tm_error *err);

/* SynthID's weighted sum of each token, as the detector forms it:
 * sums[i] = the weights[l] of the set bits l < nv of bits[i], added in
 * layer order from 0. simd: 2 AVX-512 where the CPU has it, 1 AVX2 at most,
 * 0 none (the tests compare the three with the plain loop). */
void tm_detect_weighted_sums(const uint64_t *bits, size_t n, size_t nv, const double *weights, double *sums,
                             int simd);

#endif
