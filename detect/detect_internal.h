/* Internal to detect/: the EXP-edit / ITS-edit test, which scores a text by
 * its edit-distance alignment with the key sequence rather than token by
 * token, and so lives beside the per-token statistics of detect.c. */
#ifndef TRACEMARK_DETECT_INTERNAL_H
#define TRACEMARK_DETECT_INTERNAL_H

#include "tracemark/detect.h"

/* Fill out->statistic_name ("edit_alignment"), statistic, expected, log_p,
 * p_resolution, p_at_floor and n_scored for tokens[0..n) (the prompt already
 * removed) against the scheme's key sequence, with a permutation test over
 * options->permutations pseudo-random keys seeded by options->permutation_seed. */
tm_status tm_detect_exp_edit(const tm_wm_scheme *scheme, const int32_t *tokens, size_t n,
                             const tm_detect_options *options, tm_detection *out, tm_error *err);

#endif
