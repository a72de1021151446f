/* Unigram (Zhao et al. 2023, "Provable Robust Watermarking for AI-Generated
 * Text"): both faces of the fixed green list. A token w is green when
 * uniform(prf(UNIGRAM, [w], 0)) < gamma, the same for every context, a keyed
 * Bernoulli(gamma) per token (docs/schemes/unigram.md says why this stands in
 * for the paper's exact gamma|V| list). Generation adds delta to the logits of
 * the green candidates before truncation; detection reports 1.0 green / 0.0
 * red and needs no context. Because the list never changes, the sampler keeps
 * it as a bitmap over token ids in its scratch memory, filled once per id
 * range, so the stage costs one bit test per candidate after the first step.
 * This file must never change a logit that is not green, nor let the bitmap
 * and the PRF disagree (the tests compare them over the whole vocabulary). */
#include "scheme.h"

/* Ids beyond this are tested with the PRF directly instead of being cached
 * (4 MiB of bits); real vocabularies stay far below it. */
enum { BITMAP_MAX_TOKENS = 1 << 25 };

static bool green_token(const tm_wm_scheme *scheme, int32_t token) {
    return tm_wm_uniform(tm_wm_prf(&scheme->subkey, TM_WM_DOMAIN_UNIGRAM, &token, 1, 0)) < scheme->config.gamma;
}

/* The scratch memory holds words[0] = how many ids the bitmap covers (a
 * multiple of 64), then the bits. Returns it grown to cover `tokens` ids, or
 * NULL when out of memory (the caller then asks the PRF directly). */
static uint64_t *green_bitmap(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, size_t tokens) {
    bool fresh = state->scratch_size < sizeof(uint64_t);
    uint64_t covered = fresh ? 0 : ((uint64_t *)state->scratch)[0];
    if (tokens <= covered) return state->scratch;
    size_t target = (tokens + 63) / 64 * 64;
    uint64_t *words = tm_wm_state_scratch(state, (1 + target / 64) * sizeof(uint64_t));
    if (!words) return NULL;
    if (fresh) words[0] = 0;
    for (size_t id = (size_t)words[0]; id < target; id++) {
        if (id % 64 == 0) words[1 + id / 64] = 0;
        if (green_token(scheme, (int32_t)id)) words[1 + id / 64] |= 1ULL << (id % 64);
    }
    words[0] = target;
    return words;
}

static void unigram_apply(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, tm_candidates *candidates) {
    if (candidates->size == 0) return;
    int32_t max_id = -1;
    for (size_t i = 0; i < candidates->size; i++)
        if (candidates->data[i].id > max_id) max_id = candidates->data[i].id;
    const uint64_t *bits = NULL;
    if (max_id >= 0 && max_id < BITMAP_MAX_TOKENS) bits = green_bitmap(scheme, state, (size_t)max_id + 1);
    const float bias[2] = {0.0f, (float)scheme->config.delta};
    for (size_t i = 0; i < candidates->size; i++) {
        int32_t id = candidates->data[i].id;
        bool green = bits && id >= 0 && id <= max_id ? (bits[1 + (size_t)id / 64] >> ((size_t)id % 64)) & 1
                                                     : green_token(scheme, id);
        candidates->data[i].logit += bias[green]; /* a lookup, not a branch: green is a coin flip */
    }
    candidates->sorted = false;
}

static size_t unigram_token_values(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context,
                                   int32_t token, double *values, size_t capacity) {
    (void)context, (void)n_context; /* one list for every context */
    if (capacity < 1) return 0;
    values[0] = green_token(scheme, token) ? 1.0 : 0.0;
    return 1;
}

const tm_wm_scheme_ops tm_wm_unigram_ops = {TM_WM_STAGE_LOGITS, unigram_apply, unigram_token_values, NULL, NULL};
