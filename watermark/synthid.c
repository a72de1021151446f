/* The SynthID-Text watermark (Dathathri et al., Nature 2024), both faces: at
 * generation, the non-distortionary tournament with two competitors per match
 * in its vectorised form (google-deepmind/synthid-text, update_scores): from
 * the candidates' p, for each layer l = 1..m, p <- p * (1 + g_l - E_p[g_l]),
 * then one draw from the result with the sampler's RNG; at detection, the m
 * g-values of a token, g_l(w) = bit l - 1 of PRF(SYNTHID, [context, w], 0)
 * (m <= 64: one PRF call gives them all). Averaged over keys the draw follows
 * p exactly (E[g_l] = 1/2 in every layer), while under the key tokens with
 * g = 1 win more often. Work per token is one batched PRF call per candidate
 * with p > 0, m / 6 passes over the candidates and O(candidates) memory;
 * this file must never touch the rest of the vocabulary, never print, and
 * never abort on any input (out of memory, it samples plainly). */
#include "scheme.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The PRF word that holds the g-values of layers 64e + 1 .. 64e + 64 for the
 * message [context, w] already in place (n tokens): g_l is bit (l - 1) mod 64
 * of the word with extra = e = (l - 1) div 64. */
static inline uint64_t g_word(const tm_wm_scheme *scheme, const int32_t *message, size_t n, uint32_t extra) {
    return tm_wm_prf(&scheme->subkey, TM_WM_DOMAIN_SYNTHID, message, n, extra);
}

/* The tournament on weights[] (the candidates' p, 0 where p = 0) with the
 * g-values words[i] (bit l - 1 = g_l, m <= 64 layers): for l = 1..m,
 * E_l = sum q g_l / total and q <- q (1 + g_l - E_l). Candidates that share
 * their next K g-values share the factor of those K layers, so the layers
 * are taken K at a time: the weight of each pattern of K bits (2^K buckets)
 * gives E of the K layers one after the other, the product of each pattern's
 * K factors goes into a table, and one pass multiplies every weight by its
 * pattern's entry and fills the next block's buckets. The same quantities as
 * layer by layer (up to rounding in the last bits), in m / K passes over the
 * candidates instead of 2m. */
enum { BLOCK_BITS = 6, BLOCK_SIZE = 1 << BLOCK_BITS };

/* The factors of one block of k layers from its
 * buckets: layer by layer, each pattern's factor times 1 + bit - E, E the
 * mass of the patterns with that layer's bit set over the total. */
static void block_factors(const double *bucket, int32_t k, double total, double *factor) {
    size_t patterns = (size_t)1 << k;
    for (size_t v = 0; v < patterns; v++) factor[v] = 1.0;
    for (int32_t j = 0; j < k; j++) { /* the block's layer j + 1 */
        double mass = 0.0;
        for (size_t v = 0; v < patterns; v++)
            if (v >> j & 1) mass += factor[v] * bucket[v];
        double expected = mass / total;
        for (size_t v = 0; v < patterns; v++) factor[v] *= 1.0 + (double)(v >> j & 1) - expected;
    }
}

/* Multiplies every weight by its pattern's factor (bits first.. of its word,
 * mask wide) and fills the next block's buckets (bits next.., next_k wide);
 * returns the next block's mask. */
static uint64_t reweight_into_buckets(double *weights, const uint64_t *words, size_t n, const double *factor,
                                      int32_t first, uint64_t mask, int32_t next, int32_t next_k, double *bucket) {
    uint64_t next_mask = ((uint64_t)1 << next_k) - 1;
    memset(bucket, 0, BLOCK_SIZE * sizeof *bucket);
    for (size_t i = 0; i < n; i++) {
        double w = weights[i] * factor[words[i] >> first & mask];
        weights[i] = w;
        bucket[words[i] >> next & next_mask] += w;
    }
    return next_mask;
}

static void tournament(double *weights, const uint64_t *words, size_t n, int32_t layers, double total) {
    double bucket[BLOCK_SIZE], factor[BLOCK_SIZE];
    int32_t first = 0, k = layers < BLOCK_BITS ? layers : BLOCK_BITS;
    uint64_t mask = ((uint64_t)1 << k) - 1;
    memset(bucket, 0, sizeof bucket);
    for (size_t i = 0; i < n; i++) bucket[words[i] & mask] += weights[i];
    while (first < layers) {
        block_factors(bucket, k, total, factor);
        int32_t next = first + k, next_k = layers - next < BLOCK_BITS ? layers - next : BLOCK_BITS;
        if (next_k > 0) {
            mask = reweight_into_buckets(weights, words, n, factor, first, mask, next, next_k, bucket);
        } else {
            for (size_t i = 0; i < n; i++) weights[i] *= factor[words[i] >> first & mask];
        }
        first = next;
        k = next_k;
    }
}

/* tournament, then tm_wm_draw, with two passes over the candidates fewer:
 * the first block's buckets are filled while the words are spread back,
 * and the draw's total is summed while the last block's factors are
 * applied. Every sum takes the same terms in the same order as there, so
 * the weights, the total and the token are the same bits. words holds the
 * m PRF words at its end (the candidates with weight > 0, in order). */
static void tournament_and_draw(tm_candidates *candidates, double *weights, uint64_t *words, size_t m,
                                int32_t layers, double total, double u) {
    size_t n = candidates->size;
    double bucket[BLOCK_SIZE], factor[BLOCK_SIZE];
    int32_t first = 0, k = layers < BLOCK_BITS ? layers : BLOCK_BITS;
    uint64_t mask = ((uint64_t)1 << k) - 1;
    memset(bucket, 0, sizeof bucket);
    for (size_t i = 0, j = n - m; i < n; i++) { /* spread them back in place: j >= i throughout */
        uint64_t word = weights[i] > 0.0 ? words[j++] : 0;
        words[i] = word;
        bucket[word & mask] += weights[i];
    }
    double drawn_total = 0.0;
    while (first < layers) {
        block_factors(bucket, k, total, factor);
        int32_t next = first + k, next_k = layers - next < BLOCK_BITS ? layers - next : BLOCK_BITS;
        if (next_k > 0) {
            mask = reweight_into_buckets(weights, words, n, factor, first, mask, next, next_k, bucket);
        } else {
            for (size_t i = 0; i < n; i++) {
                double w = weights[i] * factor[words[i] >> first & mask];
                weights[i] = w;
                if (w > 0.0) drawn_total += w; /* tm_wm_draw's total */
            }
        }
        first = next;
        k = next_k;
    }
    /* tm_wm_draw's walk with that total. */
    const tm_token_data *d = candidates->data;
    candidates->selected = d[0].id;
    if (!(drawn_total > 0.0) || !isfinite(drawn_total)) return;
    double target = u * drawn_total, cumulative = 0.0;
    for (size_t i = 0; i < n; i++) {
        double w = weights[i];
        if (!(w > 0.0)) continue;
        cumulative += w;
        candidates->selected = d[i].id; /* the last possible one if rounding leaves target >= total */
        if (target < cumulative) return;
    }
}

static void synthid_apply(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, tm_candidates *candidates) {
    size_t n = candidates->size;
    if (n == 0) return;
    int32_t message[TM_WM_PRF_MAX_TOKENS];
    size_t n_context;
    if (!tm_wm_selector_begin(scheme, state, candidates, TM_WM_DOMAIN_SYNTHID, message, &n_context)) return;
    /* Scratch: weights, the g-value words, and the candidates' ids. */
    size_t per = sizeof(double) + sizeof(uint64_t) + sizeof(int32_t);
    double *weights = n <= SIZE_MAX / per ? tm_wm_state_scratch(state, n * per) : NULL;
    int32_t layers = scheme->config.layers;
    if (!weights || layers < 1 || layers > 64) { /* fail open: unwatermarked but correct */
        tm_wm_draw(candidates, NULL, (double)tm_rng_uniform(&state->rng));
        return;
    }
    uint64_t *words = (uint64_t *)(void *)(weights + n);
    int32_t *ids = (int32_t *)(void *)(words + n);
    const tm_token_data *d = candidates->data;
    double total = 0.0;
    size_t m = 0; /* only the candidates with p > 0 are hashed; the rest keep weight 0 */
    for (size_t i = 0; i < n; i++) {
        weights[i] = d[i].p > 0.0f ? (double)d[i].p : 0.0;
        total += weights[i];
        if (weights[i] > 0.0) ids[m++] = d[i].id;
    }
    if (!(total > 0.0)) {
        candidates->selected = d[0].id;
        return;
    }
    /* One PRF call per candidate gives all its g-values (m <= 64 layers). */
    tm_wm_prf_template t;
    tm_wm_prf_template_init(&t, TM_WM_DOMAIN_SYNTHID, message, n_context, 1, 0);
    const int32_t *const slots[2] = {ids, NULL};
    tm_wm_prf_batch(&scheme->subkey, &t, slots, m, words + (n - m));
    if (tm_wm_reference_paths()) {
        for (size_t i = 0, k = n - m; i < n; i++) /* spread them back in place: k >= i throughout */
            words[i] = weights[i] > 0.0 ? words[k++] : 0;
        tournament(weights, words, n, layers, total);
        tm_wm_draw(candidates, weights, (double)tm_rng_uniform(&state->rng));
        return;
    }
    tournament_and_draw(candidates, weights, words, m, layers, total, (double)tm_rng_uniform(&state->rng));
}

static size_t synthid_token_values(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context,
                                   int32_t token, double *values, size_t capacity) {
    int32_t message[TM_WM_PRF_MAX_TOKENS];
    size_t n = context ? tm_wm_context_message(scheme, context, n_context, message) : 0;
    message[n] = token;
    size_t layers = scheme->config.layers > 0 ? (size_t)scheme->config.layers : 0;
    if (layers > capacity) layers = capacity;
    uint64_t word = 0;
    for (size_t l = 0; l < layers; l++) {
        if (l % 64 == 0) word = g_word(scheme, message, n + 1, (uint32_t)(l / 64));
        values[l] = (double)(word >> (l % 64) & 1);
    }
    return layers;
}

/* synthid_token_values over a run (capacity 64: one PRF word a token), the
 * messages a sliding window as in gumbel.c. */
static size_t synthid_values_run(const tm_wm_scheme *scheme, const int32_t *tokens, size_t first, size_t count,
                                 uint64_t *fingerprints, uint64_t *bits, double *values) {
    size_t needed = tm_wm_scheme_context_needed(scheme), width = tm_wm_context_width(scheme);
    size_t take = needed < width ? needed : width;
    size_t layers = scheme->config.layers > 0 ? (size_t)scheme->config.layers : 0;
    if (layers > 64) layers = 64;
    if (layers == 0) return 0;
    uint64_t mask = layers == 64 ? ~(uint64_t)0 : ((uint64_t)1 << layers) - 1;
    enum { CHUNK = 256 };
    uint64_t words[CHUNK];
    for (size_t start = 0; start < count; start += CHUNK) {
        size_t n = count - start < CHUNK ? count - start : CHUNK;
        tm_wm_prf_window(&scheme->subkey, TM_WM_DOMAIN_SYNTHID, tokens + first + start - take, take + 1, 0, n, words);
        for (size_t i = 0; i < n; i++) {
            bits[start + i] = words[i] & mask;
            values[start + i] = (double)(words[i] & 1);
        }
    }
    tm_wm_default_fingerprints(scheme, tokens, first, count, fingerprints);
    return layers;
}

const tm_wm_scheme_ops tm_wm_synthid_ops = {TM_WM_STAGE_SELECTOR, synthid_apply, synthid_token_values, NULL,
                                            synthid_values_run};
