/* The Gumbel (Aaronson 2022, "EXP") watermark, both faces: at generation it
 * replaces the final draw with argmax over the candidates of r_w^(1/p_w),
 * where r_w = uniform(PRF(GUMBEL, [context, w])) - an exact sample from p
 * whenever the r are fresh uniforms - and at detection it returns the r of a
 * token, which is uniform for text written without the key and skewed towards
 * 1 for text written with it. Both faces build the PRF message with the one
 * function tm_wm_context_message() (scheme.c), so they cannot drift apart.
 * The per-token work is one batched PRF call per candidate that has p > 0
 * (and a log only for the few that could still win): this file must never
 * touch the rest of the vocabulary, never print, and never abort on any
 * input. */
#include "scheme.h"

#include <math.h>

static void gumbel_apply(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, tm_candidates *candidates) {
    if (candidates->size == 0) return;
    int32_t message[TM_WM_PRF_MAX_TOKENS];
    size_t n_context;
    if (!tm_wm_selector_begin(scheme, state, candidates, TM_WM_DOMAIN_GUMBEL, message, &n_context)) return;
    /* argmax r^(1/p) = argmax log(r)/p, r = uniform(PRF([context, w], 0)). */
    tm_wm_prf_template t;
    tm_wm_prf_template_init(&t, TM_WM_DOMAIN_GUMBEL, message, n_context, 1, 0);
    tm_wm_select_argmax_log_over_p(&scheme->subkey, &t, candidates);
}

static size_t gumbel_token_values(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context, int32_t token,
                                  double *values, size_t capacity) {
    if (capacity == 0) return 0;
    int32_t message[TM_WM_PRF_MAX_TOKENS];
    size_t n = context ? tm_wm_context_message(scheme, context, n_context, message) : 0;
    message[n] = token;
    values[0] = tm_wm_uniform(tm_wm_prf(&scheme->subkey, TM_WM_DOMAIN_GUMBEL, message, n + 1, 0));
    return 1;
}

/* gumbel_token_values over a run: the message of position p is the last
 * min(needed, width) tokens before it and the token, a sliding window. */
static size_t gumbel_values_run(const tm_wm_scheme *scheme, const int32_t *tokens, size_t first, size_t count,
                                uint64_t *fingerprints, uint64_t *bits, double *values) {
    size_t needed = tm_wm_scheme_context_needed(scheme), width = tm_wm_context_width(scheme);
    size_t take = needed < width ? needed : width;
    enum { CHUNK = 256 };
    uint64_t words[CHUNK];
    for (size_t start = 0; start < count; start += CHUNK) {
        size_t n = count - start < CHUNK ? count - start : CHUNK;
        tm_wm_prf_window(&scheme->subkey, TM_WM_DOMAIN_GUMBEL, tokens + first + start - take, take + 1, 0, n, words);
        for (size_t i = 0; i < n; i++) {
            values[start + i] = tm_wm_uniform(words[i]);
            bits[start + i] = 0;
        }
    }
    tm_wm_default_fingerprints(scheme, tokens, first, count, fingerprints);
    return 1;
}

const tm_wm_scheme_ops tm_wm_gumbel_ops = {TM_WM_STAGE_SELECTOR, gumbel_apply, gumbel_token_values, NULL,
                                           gumbel_values_run};
