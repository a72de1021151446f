/* The SynthID-Text watermark (Dathathri et al., Nature 2024), both faces: at
 * generation, the non-distortionary tournament with two competitors per match
 * in its vectorised form (google-deepmind/synthid-text, update_scores): from
 * the candidates' p, for each layer l = 1..m, p <- p * (1 + g_l - E_p[g_l]),
 * then one draw from the result with the sampler's RNG; at detection, the m
 * g-values of a token, g_l(w) = bit l - 1 of PRF(SYNTHID, [context, w], 0)
 * (m <= 64: one PRF call gives them all). Averaged over keys the draw follows
 * p exactly (E[g_l] = 1/2 in every layer), while under the key tokens with
 * g = 1 win more often. Work per token is one batched PRF call per candidate
 * with p > 0, m / 10 passes over the candidates and O(candidates) memory;
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
 * candidates instead of 2m (K = 10: 3 passes for the default 30 layers). */
enum { BLOCK_BITS = 10, BLOCK_SIZE = 1 << BLOCK_BITS };

/* The factors of one block of k layers from its buckets (bucket[v]: the
 * weight of the candidates whose block bits are v; bit j is the block's
 * layer j + 1). Layer by layer, E_j is the weight with bit j set, each
 * pattern counted with its factor over the block's earlier layers, over the
 * total. Those factors depend on bits 0..j-1 only, so E_j takes 2^j terms:
 * the factor of each pattern u of bits 0..j-1 times the weight of the
 * patterns that begin with u and have bit j set (marginal sums, summed once
 * from the buckets), and the table grows by one bit a layer: F(u with bit j)
 * = F(u) (2 - E_j), F(u) <- F(u) (1 - E_j), the same products as layer by
 * layer. O(2^k) in all, which lets a block be 10 layers wide. marginal holds
 * 2^(k+1) doubles: the sums over bits 0..j sit at marginal + 2^(j+1). */
static void block_factors(const double *bucket, int32_t k, double total, double *factor, double *marginal) {
    size_t patterns = (size_t)1 << k;
    memcpy(marginal + patterns, bucket, patterns * sizeof *bucket);
    for (size_t size = patterns / 2; size >= 2; size /= 2) /* bits 0..j from bits 0..j+1 */
        for (size_t u = 0; u < size; u++) marginal[size + u] = marginal[2 * size + u] + marginal[2 * size + size + u];
    factor[0] = 1.0;
    for (int32_t j = 0; j < k; j++) {
        size_t half = (size_t)1 << j;
        const double *with_bit = marginal + 2 * half + half; /* bits 0..j, bit j set */
        double mass = 0.0;
        for (size_t u = 0; u < half; u++) mass += factor[u] * with_bit[u];
        double expected = mass / total;
        for (size_t u = 0; u < half; u++) {
            factor[half + u] = factor[u] * (2.0 - expected);
            factor[u] *= 1.0 - expected;
        }
    }
}

/* Every candidate's pattern in the block of k layers from layer first + 1:
 * bits first.. of its word (one shift count for all: a loop compilers
 * vectorise, where a shift per candidate by a variable count is not). */
static void block_patterns(const uint64_t *words, size_t n, int32_t first, int32_t k, uint16_t *pattern) {
    uint64_t mask = ((uint64_t)1 << k) - 1;
    for (size_t i = 0; i < n; i++) pattern[i] = (uint16_t)(words[i] >> first & mask);
}

/* The blocks' passes, the first block's buckets filled and its patterns in
 * pattern: each block's factors, every weight times its pattern's factor
 * and the next block's buckets. The last block's factors are left in
 * factor, its buckets in bucket and its width in *last_k, for the caller's
 * final step, and its patterns in the array returned (one of pattern and
 * spare, each n long). */
static const uint16_t *blocks_but_last(double *weights, const uint64_t *words, size_t n, int32_t layers, double total,
                                       double *bucket, double *factor, uint16_t *pattern, uint16_t *spare,
                                       int32_t *last_k) {
    double marginal[2 * BLOCK_SIZE];
    int32_t first = 0, k = layers < BLOCK_BITS ? layers : BLOCK_BITS;
    for (;;) {
        block_factors(bucket, k, total, factor, marginal);
        int32_t next = first + k, next_k = layers - next < BLOCK_BITS ? layers - next : BLOCK_BITS;
        if (next_k <= 0) {
            *last_k = k;
            return pattern;
        }
        block_patterns(words, n, next, next_k, spare);
        memset(bucket, 0, BLOCK_SIZE * sizeof *bucket);
        for (size_t i = 0; i < n; i++) {
            double w = weights[i] * factor[pattern[i]];
            weights[i] = w;
            bucket[spare[i]] += w;
        }
        uint16_t *swap = pattern;
        pattern = spare;
        spare = swap;
        first = next;
        k = next_k;
    }
}

/* The total of the final weights, pattern by pattern of the last block of
 * k layers: each pattern's weight before that block times its factor. The
 * quantity the draw needs (up to rounding), without a pass over the
 * candidates. */
static double final_total(const double *bucket, const double *factor, int32_t k) {
    double total = 0.0;
    for (size_t v = 0; v < (size_t)1 << k; v++) total += factor[v] * bucket[v];
    return total;
}

/* The draw: the first candidate whose cumulative final weight (counting
 * the ones > 0, in the candidates' order) exceeds u times total; the last
 * of them if rounding leaves the target beyond; the first candidate when
 * total is not a positive number. The final weight is weights[i], or
 * weights[i] * factor[last[i]] when factor is given: the walk applies the
 * last block's factors itself, to the candidates it passes only. */
static void draw(tm_candidates *candidates, const double *weights, const double *factor, const uint16_t *last,
                 double total, double u) {
    const tm_token_data *d = candidates->data;
    candidates->selected = d[0].id;
    if (!(total > 0.0) || !isfinite(total)) return;
    double target = u * total, cumulative = 0.0;
    for (size_t i = 0; i < candidates->size; i++) {
        double w = factor ? weights[i] * factor[last[i]] : weights[i];
        if (!(w > 0.0)) continue;
        cumulative += w;
        candidates->selected = d[i].id;
        if (target < cumulative) return;
    }
}

/* The tournament as the spec states it, pass by pass: every final weight
 * written. Returns their total (final_total). pattern and spare: n entries
 * each, scratch. */
static double tournament(double *weights, const uint64_t *words, size_t n, int32_t layers, double total,
                         uint16_t *pattern, uint16_t *spare) {
    double bucket[BLOCK_SIZE], factor[BLOCK_SIZE];
    int32_t k;
    block_patterns(words, n, 0, layers < BLOCK_BITS ? layers : BLOCK_BITS, pattern);
    memset(bucket, 0, sizeof bucket);
    for (size_t i = 0; i < n; i++) bucket[pattern[i]] += weights[i];
    const uint16_t *last = blocks_but_last(weights, words, n, layers, total, bucket, factor, pattern, spare, &k);
    for (size_t i = 0; i < n; i++) weights[i] *= factor[last[i]];
    return final_total(bucket, factor, k);
}

/* tournament, then the draw, with two passes over the candidates fewer:
 * the first block's buckets are filled while the words are spread back,
 * and the last block's factors are applied by the draw's walk, which stops
 * at the token. The same terms in the same order, so the same token. words
 * holds the m PRF words at its end (the candidates with weight > 0, in
 * order). */
static void tournament_and_draw(tm_candidates *candidates, double *weights, uint64_t *words, size_t m,
                                int32_t layers, double total, double u, uint16_t *pattern, uint16_t *spare) {
    size_t n = candidates->size;
    double bucket[BLOCK_SIZE], factor[BLOCK_SIZE];
    int32_t k;
    uint64_t mask = ((uint64_t)1 << (layers < BLOCK_BITS ? layers : BLOCK_BITS)) - 1;
    memset(bucket, 0, sizeof bucket);
    for (size_t i = 0, j = n - m; i < n; i++) { /* spread them back in place: j >= i throughout */
        uint64_t word = weights[i] > 0.0 ? words[j++] : 0;
        words[i] = word;
        pattern[i] = (uint16_t)(word & mask);
        bucket[pattern[i]] += weights[i];
    }
    const uint16_t *last = blocks_but_last(weights, words, n, layers, total, bucket, factor, pattern, spare, &k);
    draw(candidates, weights, factor, last, final_total(bucket, factor, k), u);
}

static void synthid_apply(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, tm_candidates *candidates) {
    size_t n = candidates->size;
    if (n == 0) return;
    int32_t message[TM_WM_PRF_MAX_TOKENS];
    size_t n_context;
    if (!tm_wm_selector_begin(scheme, state, candidates, TM_WM_DOMAIN_SYNTHID, message, &n_context)) return;
    /* Scratch: weights, the g-value words, and the candidates' ids (then two arrays of block patterns). */
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
    uint16_t *pattern = (uint16_t *)(void *)ids; /* the ids are hashed: their room holds two pattern arrays */
    if (tm_wm_reference_paths()) {
        for (size_t i = 0, k = n - m; i < n; i++) /* spread them back in place: k >= i throughout */
            words[i] = weights[i] > 0.0 ? words[k++] : 0;
        double drawn_total = tournament(weights, words, n, layers, total, pattern, pattern + n);
        draw(candidates, weights, NULL, NULL, drawn_total, (double)tm_rng_uniform(&state->rng));
        return;
    }
    tournament_and_draw(candidates, weights, words, m, layers, total, (double)tm_rng_uniform(&state->rng), pattern,
                        pattern + n);
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
