/* Unigram (Zhao et al. 2023, "Provable Robust Watermarking for AI-Generated
 * Text"): both faces of the fixed green list. A token w is green when
 * uniform(prf(UNIGRAM, [w], 0)) < gamma, the same for every context, a keyed
 * Bernoulli(gamma) per token (docs/schemes/unigram.md says why this stands in
 * for the paper's exact gamma|V| list). Generation adds delta to the logits of
 * the green candidates before truncation; detection reports 1.0 green / 0.0
 * red and needs no context. Because the list never changes, the sampler keeps
 * it as a bitmap over token ids in its scratch memory, filled once per id
 * range with batched PRF calls, so the stage costs one bit test per
 * candidate after the first step.
 * This file must never change a logit that is not green, nor let the bitmap
 * and the PRF disagree (the tests compare them over the whole vocabulary). */
#include "scheme.h"

#include <string.h>

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
    /* 64 ids a word, their PRF values in one batched call (vector SipHash
     * where the CPU has it): the first step of every sequence fills the
     * whole vocabulary. */
    tm_wm_prf_template t;
    tm_wm_prf_template_init(&t, TM_WM_DOMAIN_UNIGRAM, NULL, 0, 1, 0);
    int32_t ids[64];
    uint64_t values[64];
    for (size_t start = (size_t)words[0]; start < target; start += 64) {
        for (size_t i = 0; i < 64; i++) ids[i] = (int32_t)(start + i);
        const int32_t *const slots[2] = {ids, NULL};
        tm_wm_prf_batch(&scheme->subkey, &t, slots, 64, values);
        uint64_t bits = 0;
        for (size_t i = 0; i < 64; i++) bits |= (uint64_t)(tm_wm_uniform(values[i]) < scheme->config.gamma) << i;
        words[1 + start / 64] = bits;
    }
    words[0] = target;
    return words;
}

/* The bias from the bitmap of ids [0, covered): green candidates get delta,
 * the others +0.0f; returns how many ids lie outside the bitmap. A bit test
 * and an addition per candidate that compilers cannot turn into a branch:
 * the green bit is a coin flip no predictor learns, and a branch on it
 * costs more than the rest of the loop. Adding +0.0f more than once leaves
 * x + delta what one addition gives (x + 0 + d = x + d for every float x
 * and every delta but -0.0, which unigram_apply takes as +0.0). */
static size_t add_bias_from_bitmap(tm_token_data *data, size_t n, const uint64_t *bits, size_t covered, float delta) {
    uint32_t delta_bits;
    memcpy(&delta_bits, &delta, sizeof delta_bits);
    size_t outside = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = (uint32_t)data[i].id; /* a negative id wraps beyond covered */
        uint32_t inside = id < covered, at = inside ? id : 0;
        uint32_t green = (uint32_t)(bits[at / 64] >> (at % 64)) & inside;
        uint32_t add_bits = delta_bits & (0u - green);
        float add;
        memcpy(&add, &add_bits, sizeof add);
        data[i].logit += add;
        outside += !inside;
    }
    return outside;
}

static void unigram_apply(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, tm_candidates *candidates) {
    size_t n = candidates->size;
    if (n == 0) return;
    tm_token_data *data = candidates->data;
    float delta = (float)scheme->config.delta + 0.0f; /* -0.0 as +0.0 */
    candidates->sorted = false;
    const uint64_t *words = state->scratch_size >= sizeof(uint64_t) ? state->scratch : NULL;
    size_t covered = words ? (size_t)words[0] : 0;
    if (covered > 0 && add_bias_from_bitmap(data, n, words + 1, covered, delta) == 0) return;
    /* The first step, or ids beyond the bitmap: grow it to the largest id
     * and bias the ones it did not cover; what it cannot hold (negative
     * ids, out of memory) asks the PRF directly. */
    int32_t max_id = -1;
    for (size_t i = 0; i < n; i++) max_id = data[i].id > max_id ? data[i].id : max_id;
    if (max_id >= 0 && (size_t)max_id >= covered && max_id < BITMAP_MAX_TOKENS) {
        const uint64_t *grown = green_bitmap(scheme, state, (size_t)max_id + 1);
        if (grown) {
            size_t before = covered;
            covered = (size_t)grown[0];
            for (size_t i = 0; i < n; i++) {
                uint32_t id = (uint32_t)data[i].id;
                if (id >= before && id < covered) data[i].logit += (grown[1 + id / 64] >> (id % 64) & 1) ? delta : 0.0f;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if ((uint32_t)data[i].id >= covered) data[i].logit += green_token(scheme, data[i].id) ? delta : 0.0f;
}

static size_t unigram_token_values(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context,
                                   int32_t token, double *values, size_t capacity) {
    (void)context, (void)n_context; /* one list for every context */
    if (capacity < 1) return 0;
    values[0] = green_token(scheme, token) ? 1.0 : 0.0;
    return 1;
}

const tm_wm_scheme_ops tm_wm_unigram_ops = {TM_WM_STAGE_LOGITS, unigram_apply, unigram_token_values, NULL, NULL};
