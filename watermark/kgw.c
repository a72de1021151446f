/* KGW (Kirchenbauer et al. 2023, "A Watermark for Large Language Models", and
 * "On the Reliability of Watermarks for Large Language Models"): both faces of
 * the green-list scheme. A candidate w after context x is green when
 * uniform(prf(...)) < gamma, a keyed Bernoulli(gamma) per (context, token)
 * (docs/schemes/kgw.md says why this stands in for the paper's gamma|V| list);
 * LeftHash hashes the h previous tokens and w, SelfHash takes the anchored
 * min-hash of {x_{t-h+1..t-1}, w}. Generation adds delta to the logits of the
 * green candidates, before truncation; detection reports 1.0 green / 0.0 red.
 * The generation stage runs on the whole vocabulary at every step, so the PRF
 * is computed in batches (tm_wm_prf_batch, AVX2 where the CPU has it), and
 * SelfHash keeps what does not change from one step to the next in the
 * sampler's cache: the rank and draw of every (w, w), and the ranks (and the
 * draws found so far) of every token against the last h - 1 history tokens,
 * so a step computes one new rank per candidate and the draws it has not met
 * before, instead of h + 1 PRF calls; LeftHash keeps the green lists of its
 * last contexts, so a context met again costs no PRF. Every path gives
 * tm_wm_prf's values bit for bit, which the tests check over a whole
 * vocabulary and across steps.
 * This file must never change a logit that is not green, nor give generation
 * and detection different answers for one (context, token). */
#include "scheme.h"

#include <stdint.h>
#include <string.h>

/* ======================================================================== */
/* The green test                                                            */
/* ======================================================================== */

/* How many history tokens a green test needs: LeftHash h, SelfHash h - 1. */
static size_t history_needed(const tm_wm_config *config) {
    size_t h = (size_t)config->context_width;
    if (h < 1) h = 1;
    if (h > TM_WM_PRF_MAX_TOKENS - 1) h = TM_WM_PRF_MAX_TOKENS - 1;
    return config->seeding == TM_WM_SEEDING_SELFHASH ? h - 1 : h;
}

/* SelfHash's min-hash rank of (y, w), the anchor w last: prf(SELFHASH, [y, w], 0).
 * The smallest rank wins; a tie between different tokens goes to the smaller id. */
static inline bool rank_before(uint64_t rank, int32_t y, uint64_t best_rank, int32_t best_y) {
    return rank < best_rank || (rank == best_rank && y < best_y);
}

enum { CHUNK = 256 };

/* green[i] for ids[0..count): the whole scheme, batched. context holds exactly
 * history_needed() tokens, oldest first. */
static void green_batch(const tm_wm_scheme *scheme, const int32_t *context, const int32_t *ids, size_t count,
                        bool *green) {
    const tm_wm_config *config = &scheme->config;
    size_t needed = history_needed(config);
    uint64_t values[CHUNK];
    if (config->seeding != TM_WM_SEEDING_SELFHASH) {
        tm_wm_prf_template t;
        tm_wm_prf_template_init(&t, TM_WM_DOMAIN_KGW_LEFTHASH, context, needed, 1, 0);
        for (size_t start = 0; start < count; start += CHUNK) {
            size_t n = count - start < CHUNK ? count - start : CHUNK;
            const int32_t *const slots[2] = {ids + start, NULL};
            tm_wm_prf_batch(&scheme->subkey, &t, slots, n, values);
            for (size_t i = 0; i < n; i++) green[start + i] = tm_wm_uniform(values[i]) < config->gamma;
        }
        return;
    }
    uint64_t best_rank[CHUNK];
    int32_t best_y[CHUNK];
    tm_wm_prf_template self, pair[TM_WM_PRF_MAX_TOKENS], draw;
    tm_wm_prf_template_init(&self, TM_WM_DOMAIN_KGW_SELFHASH, NULL, 0, 2, 0);
    for (size_t k = 0; k < needed; k++) tm_wm_prf_template_init(&pair[k], TM_WM_DOMAIN_KGW_SELFHASH, &context[k], 1, 1, 0);
    tm_wm_prf_template_init(&draw, TM_WM_DOMAIN_KGW_SELFHASH, NULL, 0, 2, 1);
    for (size_t start = 0; start < count; start += CHUNK) {
        size_t n = count - start < CHUNK ? count - start : CHUNK;
        const int32_t *w = ids + start;
        const int32_t *const self_slots[2] = {w, w};
        tm_wm_prf_batch(&scheme->subkey, &self, self_slots, n, best_rank);
        memcpy(best_y, w, n * sizeof *w);
        for (size_t k = 0; k < needed; k++) {
            const int32_t *const slots[2] = {w, NULL};
            tm_wm_prf_batch(&scheme->subkey, &pair[k], slots, n, values);
            for (size_t i = 0; i < n; i++)
                if (rank_before(values[i], context[k], best_rank[i], best_y[i])) {
                    best_rank[i] = values[i];
                    best_y[i] = context[k];
                }
        }
        const int32_t *const draw_slots[2] = {best_y, w};
        tm_wm_prf_batch(&scheme->subkey, &draw, draw_slots, n, values);
        for (size_t i = 0; i < n; i++) green[start + i] = tm_wm_uniform(values[i]) < config->gamma;
    }
}

/* SelfHash's anchor: the token of {context[0..needed), token} with the lowest
 * rank prf(SELFHASH, [y, token], 0), ties to the smaller id. */
static int32_t selfhash_anchor(const tm_wm_scheme *scheme, const int32_t *context, size_t needed, int32_t token) {
    int32_t pair[2] = {token, token};
    uint64_t best_rank = tm_wm_prf(&scheme->subkey, TM_WM_DOMAIN_KGW_SELFHASH, pair, 2, 0);
    int32_t best_y = token;
    for (size_t k = 0; k < needed; k++) {
        pair[0] = context[k];
        uint64_t rank = tm_wm_prf(&scheme->subkey, TM_WM_DOMAIN_KGW_SELFHASH, pair, 2, 0);
        if (rank_before(rank, context[k], best_rank, best_y)) {
            best_rank = rank;
            best_y = context[k];
        }
    }
    return best_y;
}

/* One token, with the plain PRF: the reference the batched path must match. */
static bool green_one(const tm_wm_scheme *scheme, const int32_t *context, int32_t token) {
    const tm_wm_config *config = &scheme->config;
    size_t needed = history_needed(config);
    if (config->seeding != TM_WM_SEEDING_SELFHASH) {
        int32_t tokens[TM_WM_PRF_MAX_TOKENS];
        if (needed > 0) memcpy(tokens, context, needed * sizeof *tokens);
        tokens[needed] = token;
        return tm_wm_uniform(tm_wm_prf(&scheme->subkey, TM_WM_DOMAIN_KGW_LEFTHASH, tokens, needed + 1, 0)) <
               config->gamma;
    }
    int32_t pair[2] = {selfhash_anchor(scheme, context, needed, token), token};
    return tm_wm_uniform(tm_wm_prf(&scheme->subkey, TM_WM_DOMAIN_KGW_SELFHASH, pair, 2, 1)) < config->gamma;
}

/* ======================================================================== */
/* SelfHash across steps                                                     */
/* ======================================================================== */

/* The cache holds, over token ids [0, cover), for the n_slots = h - 1 slots
 * (one per recent history token y, assigned as tokens come and go) and one
 * last slot for the candidate itself:
 *   rank[s][w]  = prf(SELFHASH, [y_s, w], 0)   (self slot: [w, w])
 *   state[s][w] = whether prf(SELFHASH, [y_s, w], 1) is green, or not yet known
 * Ranks are filled when a token takes a slot; draws when a step first needs
 * them. The values depend on the key and the tokens only, so they outlive
 * reset. A vocabulary beyond SELFHASH_CACHE_MAX_TOKENS, negative ids, or a
 * sparse candidate set (less than half the id range) take the uncached path. */
enum {
    SELFHASH_CACHE_MAX_TOKENS = 1 << 20, /* ids fit in 20 bits of a pending entry */
    STATE_UNKNOWN = 0,
    STATE_RED = 1,
    STATE_GREEN = 2,
};

typedef struct {
    size_t cover, n_slots;
    int32_t token[TM_WM_PRF_MAX_TOKENS];
    bool used[TM_WM_PRF_MAX_TOKENS];
} selfhash_cache;

static size_t cache_header_size(void) { return (sizeof(selfhash_cache) + 63) / 64 * 64; }

static uint64_t *cache_rank(selfhash_cache *c, size_t slot) {
    return (uint64_t *)(void *)((char *)c + cache_header_size()) + slot * c->cover;
}

static uint8_t *cache_state(selfhash_cache *c, size_t slot) {
    return (uint8_t *)(cache_rank(c, c->n_slots + 1)) + slot * c->cover;
}

/* tm_wm_uniform(x) < gamma as (x >> 12) < threshold: uniform is monotone in
 * x >> 12, so one integer compare decides every x exactly as the double
 * compare does (the threshold is found with tm_wm_uniform itself). */
static uint64_t green_threshold(double gamma) {
    const uint64_t top = UINT64_C(1) << 52;
    double g = gamma * 0x1.0p52;
    uint64_t t = !(g > 0) ? 0 : g >= (double)top ? top : (uint64_t)g;
    while (t > 0 && !(tm_wm_uniform((t - 1) << 12) < gamma)) t--;
    while (t < top && tm_wm_uniform(t << 12) < gamma) t++;
    return t;
}

/* rank[slot][w] for w in [0, cover): the message [fixed..., w] (self: [w, w]). */
static void fill_ranks(const tm_wm_scheme *scheme, selfhash_cache *c, size_t slot, const int32_t *fixed) {
    tm_wm_prf_template t;
    tm_wm_prf_template_init(&t, TM_WM_DOMAIN_KGW_SELFHASH, fixed, fixed ? 1 : 0, fixed ? 1 : 2, 0);
    uint64_t *rank = cache_rank(c, slot);
    int32_t ids[CHUNK];
    for (size_t start = 0; start < c->cover; start += CHUNK) {
        size_t n = c->cover - start < CHUNK ? c->cover - start : CHUNK;
        for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(start + i);
        const int32_t *const slots[2] = {ids, ids};
        tm_wm_prf_batch(&scheme->subkey, &t, slots, n, rank + start);
    }
}

/* state[slot][w] for the listed w: the draw prf(SELFHASH, [y, w], 1) (self: [w, w]). */
static void fill_draws(const tm_wm_scheme *scheme, selfhash_cache *c, size_t slot, const int32_t *w, size_t count) {
    tm_wm_prf_template t;
    bool self = slot == c->n_slots;
    tm_wm_prf_template_init(&t, TM_WM_DOMAIN_KGW_SELFHASH, self ? NULL : &c->token[slot], self ? 0 : 1,
                            self ? 2 : 1, 1);
    uint8_t *state = cache_state(c, slot);
    uint64_t values[CHUNK];
    /* green = uniform(x) < gamma, as the integer compare green_threshold
     * makes exact, without a branch: the draws are coin flips. */
    uint64_t threshold = green_threshold(scheme->config.gamma);
    for (size_t start = 0; start < count; start += CHUNK) {
        size_t n = count - start < CHUNK ? count - start : CHUNK;
        const int32_t *const slots[2] = {w + start, w + start};
        tm_wm_prf_batch(&scheme->subkey, &t, slots, n, values);
        for (size_t i = 0; i < n; i++) state[w[start + i]] = (uint8_t)(STATE_RED + ((values[i] >> 12) < threshold));
    }
}

/* The cache ready for ids [0, cover) and the slots of `context` (needed
 * tokens): slot_of[k] is the slot of context[k]. NULL when out of memory. */
static selfhash_cache *selfhash_cache_prepare(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, size_t needed,
                                              size_t cover, const int32_t *context, size_t *slot_of) {
    selfhash_cache *c = state->cache_size >= sizeof *c ? state->cache : NULL;
    if (!c || c->cover < cover || c->n_slots != needed) {
        if (cover > SIZE_MAX / 9 / (needed + 1)) return NULL;
        size_t size = cache_header_size() + (needed + 1) * cover * (sizeof(uint64_t) + 1);
        c = tm_wm_state_cache(state, size);
        if (!c) return NULL;
        memset(c, 0, sizeof *c);
        c->cover = cover;
        c->n_slots = needed;
        memset(cache_state(c, 0), STATE_UNKNOWN, (needed + 1) * cover);
        fill_ranks(scheme, c, needed, NULL); /* the self slot: every (w, w) */
        int32_t ids[CHUNK];
        for (size_t start = 0; start < cover; start += CHUNK) {
            size_t n = cover - start < CHUNK ? cover - start : CHUNK;
            for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(start + i);
            fill_draws(scheme, c, needed, ids, n);
        }
    }
    bool keep[TM_WM_PRF_MAX_TOKENS] = {false};
    for (size_t k = 0; k < needed; k++) {
        slot_of[k] = SIZE_MAX;
        for (size_t s = 0; s < needed; s++)
            if (c->used[s] && c->token[s] == context[k]) slot_of[k] = s, keep[s] = true;
    }
    for (size_t k = 0; k < needed; k++) {
        if (slot_of[k] != SIZE_MAX) continue;
        for (size_t j = 0; j < k; j++) /* a repeat of a token given a slot just now */
            if (context[j] == context[k]) slot_of[k] = slot_of[j];
        if (slot_of[k] != SIZE_MAX) continue;
        size_t s = 0;
        while (keep[s]) s++; /* needed slots, fewer than needed tokens kept: one is free */
        c->token[s] = context[k];
        c->used[s] = keep[s] = true;
        fill_ranks(scheme, c, s, &context[k]);
        memset(cache_state(c, s), STATE_UNKNOWN, c->cover);
        slot_of[k] = s;
    }
    return c;
}

/* The min-hash winner of {context slots, w} for every candidate (its slot in
 * winner[]), and the candidates whose winning draw is not known yet, as
 * slot << 20 | w in pending[]; returns how many. Branch-free, since which
 * member wins is a coin flip a predictor cannot learn; always inlined so that
 * a constant slot count keeps everything in registers. */
static inline __attribute__((always_inline)) size_t find_winners(const tm_token_data *data, size_t n,
                                                                 size_t n_distinct, const uint64_t *const *rank,
                                                                 const int32_t *token, const uint8_t *slot,
                                                                 const uint64_t *self_rank, uint8_t self_slot,
                                                                 const uint8_t *states, size_t cover,
                                                                 uint8_t *winner, uint32_t *pending) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t w = data[i].id;
        uint64_t best_rank = self_rank[w];
        int32_t best_y = w;
        uint8_t best_slot = self_slot;
        for (size_t j = 0; j < n_distinct; j++) {
            uint64_t r = rank[j][w];
            int32_t y = token[j];
            bool take = (r < best_rank) | ((r == best_rank) & (y < best_y));
            uint64_t mask = 0 - (uint64_t)take;
            best_rank = (r & mask) | (best_rank & ~mask);
            best_y = (int32_t)(((uint32_t)y & (uint32_t)mask) | ((uint32_t)best_y & ~(uint32_t)mask));
            best_slot = (uint8_t)((slot[j] & mask) | (best_slot & ~mask));
        }
        winner[i] = best_slot;
        pending[count] = (uint32_t)best_slot << 20 | (uint32_t)w;
        count += states[best_slot * cover + (size_t)w] == STATE_UNKNOWN;
    }
    return count;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KGW_HAVE_AVX2 1
/* The winning slot of dense candidate i (id i), one by one, as find_winners
 * does: the vector versions' last few. */
static uint8_t dense_winner(size_t i, size_t n_distinct, const uint64_t *const *rank, const int32_t *token,
                            const uint8_t *slot, const uint64_t *self_rank, uint8_t self_slot) {
    uint64_t best_rank = self_rank[i];
    int32_t best_y = (int32_t)i;
    uint8_t best_slot = self_slot;
    for (size_t j = 0; j < n_distinct; j++) {
        uint64_t r = rank[j][i];
        if (rank_before(r, token[j], best_rank, best_y)) best_rank = r, best_y = token[j], best_slot = slot[j];
    }
    return best_slot;
}

/* find_winners' min-hash for dense candidates (data[i].id == i), four
 * at a time: the same comparisons (rank first, unsigned, by flipping the
 * sign bit for AVX2's signed compare; then the smaller token), the same
 * order of members, so the same winner. Only the winners' slots are
 * written; the caller looks their draws up. */
__attribute__((target("avx2"))) static void winners_dense_avx2(size_t n, size_t n_distinct,
                                                                 const uint64_t *const *rank, const int32_t *token,
                                                                 const uint8_t *slot, const uint64_t *self_rank,
                                                                 uint8_t self_slot, uint8_t *winner) {
    const __m256i sign = _mm256_set1_epi64x((long long)0x8000000000000000ULL), four = _mm256_set1_epi64x(4);
    __m256i ids = _mm256_setr_epi64x(0, 1, 2, 3);
    __m256i y_of[TM_WM_PRF_MAX_TOKENS], slot_of[TM_WM_PRF_MAX_TOKENS];
    for (size_t j = 0; j < n_distinct; j++) {
        y_of[j] = _mm256_set1_epi64x(token[j]);
        slot_of[j] = _mm256_set1_epi64x(slot[j]);
    }
    size_t i = 0;
    for (; i + 4 <= n; i += 4, ids = _mm256_add_epi64(ids, four)) {
        __m256i best = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(self_rank + i)), sign);
        __m256i best_y = ids, best_slot = _mm256_set1_epi64x(self_slot);
        for (size_t j = 0; j < n_distinct; j++) {
            __m256i r = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(rank[j] + i)), sign);
            __m256i take = _mm256_or_si256(_mm256_cmpgt_epi64(best, r),
                                           _mm256_and_si256(_mm256_cmpeq_epi64(r, best),
                                                            _mm256_cmpgt_epi64(best_y, y_of[j])));
            best = _mm256_blendv_epi8(best, r, take);
            best_y = _mm256_blendv_epi8(best_y, y_of[j], take);
            best_slot = _mm256_blendv_epi8(best_slot, slot_of[j], take);
        }
        uint64_t lanes[4];
        _mm256_storeu_si256((__m256i *)(void *)lanes, best_slot);
        for (size_t k = 0; k < 4; k++) winner[i + k] = (uint8_t)lanes[k];
    }
    for (; i < n; i++) winner[i] = dense_winner(i, n_distinct, rank, token, slot, self_rank, self_slot);
}

/* winners_dense_avx2 eight at a time with AVX-512's unsigned compares
 * (no sign flip), the same comparisons in the same order of members. */
__attribute__((target("avx512f"))) static void winners_dense_avx512(size_t n, size_t n_distinct,
                                                                   const uint64_t *const *rank, const int32_t *token,
                                                                   const uint8_t *slot, const uint64_t *self_rank,
                                                                   uint8_t self_slot, uint8_t *winner) {
    const __m512i eight = _mm512_set1_epi64(8);
    __m512i ids = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    __m512i y_of[TM_WM_PRF_MAX_TOKENS], slot_of[TM_WM_PRF_MAX_TOKENS];
    for (size_t j = 0; j < n_distinct; j++) {
        y_of[j] = _mm512_set1_epi64(token[j]);
        slot_of[j] = _mm512_set1_epi64(slot[j]);
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8, ids = _mm512_add_epi64(ids, eight)) {
        __m512i best = _mm512_loadu_si512(self_rank + i), best_y = ids, best_slot = _mm512_set1_epi64(self_slot);
        for (size_t j = 0; j < n_distinct; j++) {
            __m512i r = _mm512_loadu_si512(rank[j] + i);
            __mmask8 take = _mm512_cmplt_epu64_mask(r, best) |
                            (_mm512_cmpeq_epu64_mask(r, best) & _mm512_cmplt_epi64_mask(y_of[j], best_y));
            best = _mm512_mask_mov_epi64(best, take, r);
            best_y = _mm512_mask_mov_epi64(best_y, take, y_of[j]);
            best_slot = _mm512_mask_mov_epi64(best_slot, take, slot_of[j]);
        }
        _mm_storel_epi64((__m128i *)(void *)(winner + i), _mm512_cvtepi64_epi8(best_slot));
    }
    for (; i < n; i++) winner[i] = dense_winner(i, n_distinct, rank, token, slot, self_rank, self_slot);
}

/* The green bits of 64 PRF values, bit j = (x_j >> 12) < threshold, four
 * compares at a time (both sides are below 2^53, so the signed compare is
 * the unsigned one). */
__attribute__((target("avx2"))) static uint64_t green_bits64_avx2(const uint64_t *values, uint64_t threshold) {
    const __m256i limit = _mm256_set1_epi64x((long long)threshold);
    uint64_t word = 0;
    for (size_t j = 0; j < 64; j += 4) {
        __m256i top = _mm256_srli_epi64(_mm256_loadu_si256((const __m256i *)(const void *)(values + j)), 12);
        unsigned bits = (unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(limit, top)));
        word |= (uint64_t)bits << j;
    }
    return word;
}
#else
#define KGW_HAVE_AVX2 0
#endif

/* SelfHash's stage through the cache; false when the cache does not apply
 * (the caller then takes the uncached path). */
static bool selfhash_cached_apply(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, const int32_t *context,
                                  tm_candidates *candidates) {
    size_t n = candidates->size, needed = history_needed(&scheme->config);
    tm_token_data *data = candidates->data;
    /* ids 0..n-1 in order (the dense case below), else their range */
    bool in_order = n > 0 && n <= (size_t)INT32_MAX && tm_candidates_dense(data, n);
    int32_t min_id = in_order ? 0 : INT32_MAX, max_id = in_order ? (int32_t)(n - 1) : -1;
    for (size_t i = 0; i < n && !in_order; i++) {
        int32_t id = data[i].id;
        min_id = id < min_id ? id : min_id;
        max_id = id > max_id ? id : max_id;
    }
    if (min_id < 0 || max_id >= SELFHASH_CACHE_MAX_TOKENS || n < ((size_t)max_id + 1) / 2) return false;
    size_t cover = ((size_t)max_id + 64) / 64 * 64;
    /* Scratch: pending entries, the ids of one slot's pending draws, and the
     * winning slot per candidate. */
    if (n > SIZE_MAX / (2 * sizeof(uint32_t) + 1)) return false;
    uint32_t *pending = tm_wm_state_scratch(state, n * (2 * sizeof(uint32_t) + 1));
    if (!pending) return false;
    int32_t *draw_ids = (int32_t *)(void *)(pending + n);
    uint8_t *winner = (uint8_t *)(void *)(draw_ids + n);
    size_t slot_of[TM_WM_PRF_MAX_TOKENS];
    selfhash_cache *c = selfhash_cache_prepare(scheme, state, needed, cover, context, slot_of);
    if (!c) return false;
    /* The distinct slots of the context, with their tokens and rank vectors. */
    const uint64_t *rank[TM_WM_PRF_MAX_TOKENS];
    int32_t token[TM_WM_PRF_MAX_TOKENS];
    uint8_t slot[TM_WM_PRF_MAX_TOKENS];
    size_t n_distinct = 0;
    for (size_t k = 0; k < needed; k++) {
        bool seen = false;
        for (size_t j = 0; j < n_distinct; j++) seen = seen || slot[j] == slot_of[k];
        if (seen) continue;
        slot[n_distinct] = (uint8_t)slot_of[k];
        rank[n_distinct] = cache_rank(c, slot_of[k]);
        token[n_distinct++] = c->token[slot_of[k]];
    }
    const uint64_t *self_rank = cache_rank(c, needed);
    const uint8_t *states = cache_state(c, 0);
    size_t cover_now = c->cover, count;
    uint8_t self_slot = (uint8_t)needed;
    /* A table lookup rather than a conditional, which compilers may turn
     * into a branch: the green bits are coin flips. */
    const float bias[3] = {0.0f, 0.0f, (float)scheme->config.delta}; /* unknown (none left), red, green */
#if KGW_HAVE_AVX2
    /* Dense candidates (ids 0..n-1 in order, as the chain hands the
     * vocabulary to its bias stage): the winners four at a time, the known
     * draws applied in the same pass, and only the pending ones visited
     * again once drawn. An unknown draw adds 0 first, which leaves every
     * logit what the one addition of the loop below gives (x + 0 + d = x + d
     * in floats, -0 included). */
    if (in_order && !tm_wm_reference_paths() && tm_cpu_has(TM_CPU_AVX2)) {
        if (tm_cpu_has(TM_CPU_AVX512F))
            winners_dense_avx512(n, n_distinct, rank, token, slot, self_rank, self_slot, winner);
        else
            winners_dense_avx2(n, n_distinct, rank, token, slot, self_rank, self_slot, winner);
        count = 0;
        for (size_t i = 0; i < n; i++) {
            uint8_t drawn = states[winner[i] * cover_now + i];
            data[i].logit += bias[drawn];
            pending[count] = (uint32_t)winner[i] << 20 | (uint32_t)i;
            count += drawn == STATE_UNKNOWN;
        }
        for (size_t j = 0; j < n_distinct && count > 0; j++) {
            size_t m = 0;
            for (size_t k = 0; k < count; k++) {
                draw_ids[m] = (int32_t)(pending[k] & 0xFFFFF);
                m += pending[k] >> 20 == slot[j];
            }
            if (m == 0) continue;
            fill_draws(scheme, c, slot[j], draw_ids, m);
            const uint8_t *drawn = states + slot[j] * cover_now;
            for (size_t k = 0; k < m; k++) data[draw_ids[k]].logit += bias[drawn[draw_ids[k]]];
        }
        return true;
    }
#endif
    switch (n_distinct) { /* constant counts for the usual h (SelfHash h = 4: 3 slots) */
    case 0: count = find_winners(data, n, 0, rank, token, slot, self_rank, self_slot, states, cover_now, winner, pending); break;
    case 1: count = find_winners(data, n, 1, rank, token, slot, self_rank, self_slot, states, cover_now, winner, pending); break;
    case 2: count = find_winners(data, n, 2, rank, token, slot, self_rank, self_slot, states, cover_now, winner, pending); break;
    case 3: count = find_winners(data, n, 3, rank, token, slot, self_rank, self_slot, states, cover_now, winner, pending); break;
    default:
        count = find_winners(data, n, n_distinct, rank, token, slot, self_rank, self_slot, states, cover_now, winner,
                             pending);
    }
    for (size_t j = 0; j < n_distinct && count > 0; j++) {
        size_t m = 0;
        for (size_t k = 0; k < count; k++) {
            draw_ids[m] = (int32_t)(pending[k] & 0xFFFFF);
            m += pending[k] >> 20 == slot[j];
        }
        if (m) fill_draws(scheme, c, slot[j], draw_ids, m);
    }
    for (size_t i = 0; i < n; i++) data[i].logit += bias[states[winner[i] * cover_now + (size_t)data[i].id]];
    return true;
}

/* ======================================================================== */
/* LeftHash across steps                                                     */
/* ======================================================================== */

/* The green lists, as bits over ids [0, n), of the last
 * LEFTHASH_CACHE_ENTRIES contexts met, the least recently used replaced
 * first. Text comes back to its contexts: in 200-token English answers
 * (HaluEval, Llama-2 tokens) 52% of the steps follow a context met before in
 * the same answer with 32 entries (54% with no limit), and such a step costs
 * a walk over its green bits instead of a PRF per candidate. The bits depend on the key
 * and the context only, so they outlive reset. Only a dense candidate set
 * (ids 0..n-1 in order, as a chain hands the vocabulary to its bias stage)
 * uses it; anything else takes the batched path. */
enum { LEFTHASH_CACHE_ENTRIES = 32 };

typedef struct {
    size_t n_ids, needed, n_used; /* n_ids: the lists cover ids [0, n_ids) */
    uint64_t clock;
    uint64_t last_used[LEFTHASH_CACHE_ENTRIES];
    int32_t context[LEFTHASH_CACHE_ENTRIES][TM_WM_PRF_MAX_TOKENS];
} lefthash_cache;

static bool lefthash_cached_apply(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, const int32_t *context,
                                  tm_candidates *candidates) {
    size_t n = candidates->size, needed = history_needed(&scheme->config);
    tm_token_data *data = candidates->data;
    if (n == 0 || n > (size_t)INT32_MAX || !tm_candidates_dense(data, n)) return false;
    size_t words = (n + 63) / 64, header = (sizeof(lefthash_cache) + 63) / 64 * 64;
    lefthash_cache *c = state->cache_size >= sizeof *c ? state->cache : NULL;
    if (!c || c->n_ids != n || c->needed != needed) { /* lists over another id range are no use */
        if (words > (SIZE_MAX - header) / sizeof(uint64_t) / LEFTHASH_CACHE_ENTRIES) return false;
        c = tm_wm_state_cache(state, header + LEFTHASH_CACHE_ENTRIES * words * sizeof(uint64_t));
        if (!c) return false;
        memset(c, 0, sizeof *c);
        c->n_ids = n;
        c->needed = needed;
    }
    uint64_t *bits = (uint64_t *)(void *)((char *)c + header);
#if KGW_HAVE_AVX2
    bool avx2 = !tm_wm_reference_paths() && tm_cpu_has(TM_CPU_AVX2);
#endif
    size_t e = 0;
    while (e < c->n_used && memcmp(c->context[e], context, needed * sizeof *context) != 0) e++;
    if (e == c->n_used) { /* not met: its green list, in a free or the least recently used entry */
        if (c->n_used < LEFTHASH_CACHE_ENTRIES) c->n_used++;
        else
            for (size_t k = e = 0; k < LEFTHASH_CACHE_ENTRIES; k++) e = c->last_used[k] < c->last_used[e] ? k : e;
        memcpy(c->context[e], context, needed * sizeof *context);
        uint64_t *entry = bits + e * words, threshold = green_threshold(scheme->config.gamma), values[CHUNK];
        tm_wm_prf_template t;
        tm_wm_prf_template_init(&t, TM_WM_DOMAIN_KGW_LEFTHASH, context, needed, 1, 0);
        int32_t ids[CHUNK];
        for (size_t start = 0; start < n; start += CHUNK) { /* CHUNK is a multiple of 64: whole words */
            size_t m = n - start < CHUNK ? n - start : CHUNK;
            for (size_t i = 0; i < m; i++) ids[i] = (int32_t)(start + i);
            const int32_t *const slots[2] = {ids, NULL};
            tm_wm_prf_batch(&scheme->subkey, &t, slots, m, values);
            for (size_t w = 0; w < m; w += 64) {
                size_t end = m - w < 64 ? m - w : 64;
                uint64_t word = 0;
                size_t j = 0;
#if KGW_HAVE_AVX2
                if (end == 64 && avx2) j = 64, word = green_bits64_avx2(values + w, threshold);
#endif
                for (; j < end; j++) word |= (uint64_t)((values[w + j] >> 12) < threshold) << j;
                entry[(start + w) / 64] = word;
            }
        }
    }
    c->last_used[e] = ++c->clock;
    /* +delta on the green ids, found bit by bit (about gamma of them); the
     * red logits are not touched at all. */
    const uint64_t *green = bits + e * words;
    float delta = (float)scheme->config.delta;
    for (size_t w = 0; w < words; w++) {
        tm_token_data *d = data + w * 64;
        for (uint64_t word = green[w]; word; word &= word - 1) d[__builtin_ctzll(word)].logit += delta;
    }
    return true;
}

/* ======================================================================== */
/* The two faces                                                             */
/* ======================================================================== */

static void kgw_apply(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, tm_candidates *candidates) {
    size_t needed = history_needed(&scheme->config), available = 0;
    const int32_t *context = needed > 0 ? tm_wm_state_context(state, needed, &available) : NULL;
    /* Too little history to seed the green list: the paper's processor
     * refuses such a prefix; generation goes on unwatermarked instead. */
    if (available < needed || candidates->size == 0) return;
    candidates->sorted = false;
    if (scheme->config.seeding == TM_WM_SEEDING_SELFHASH && selfhash_cached_apply(scheme, state, context, candidates))
        return;
    if (scheme->config.seeding != TM_WM_SEEDING_SELFHASH && lefthash_cached_apply(scheme, state, context, candidates))
        return;
    const float bias[2] = {0.0f, (float)scheme->config.delta};
    int32_t ids[CHUNK];
    bool green[CHUNK];
    for (size_t start = 0; start < candidates->size; start += CHUNK) {
        size_t n = candidates->size - start < CHUNK ? candidates->size - start : CHUNK;
        tm_token_data *data = candidates->data + start;
        for (size_t i = 0; i < n; i++) ids[i] = data[i].id;
        green_batch(scheme, context, ids, n, green);
        /* A table lookup, not a branch: the green bits are coin flips a predictor cannot learn. */
        for (size_t i = 0; i < n; i++) data[i].logit += bias[green[i]];
    }
}

static size_t kgw_token_values(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context, int32_t token,
                               double *values, size_t capacity) {
    size_t needed = history_needed(&scheme->config);
    /* A token without enough context was generated unwatermarked: unscored. */
    if (capacity < 1 || n_context < needed || (needed > 0 && !context)) return 0;
    const int32_t *recent = needed > 0 ? context + (n_context - needed) : NULL;
    values[0] = green_one(scheme, recent, token) ? 1.0 : 0.0;
    return 1;
}

/* SelfHash's green bit reads only (anchor, token): pairs that share them are
 * one draw, and a detector must count them once. LeftHash reads the context. */
static uint64_t kgw_fingerprint(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context, int32_t token) {
    size_t needed = history_needed(&scheme->config);
    if (scheme->config.seeding != TM_WM_SEEDING_SELFHASH || n_context < needed)
        return tm_wm_context_fingerprint(context, n_context, needed, token);
    int32_t anchor = selfhash_anchor(scheme, needed ? context + (n_context - needed) : NULL, needed, token);
    return tm_wm_context_fingerprint(&anchor, 1, 1, token);
}

/* kgw_token_values and kgw_fingerprint over a run, batched: LeftHash's
 * messages are a window sliding along the text; SelfHash's ranks, one PRF
 * batch per member of {x_{t-h+1..t-1}, w} (the pairs (x_{t-k}, w) at a fixed
 * distance k line up as two slots), then the anchors' draws in one more.
 * The anchor search keeps selfhash_anchor's order: the token itself first,
 * then the context oldest first, ties to the smaller id. */
static size_t kgw_values_run(const tm_wm_scheme *scheme, const int32_t *tokens, size_t first, size_t count,
                             uint64_t *fingerprints, uint64_t *bits, double *values) {
    const tm_wm_config *config = &scheme->config;
    size_t needed = history_needed(config);
    uint64_t prf[CHUNK];
    if (config->seeding != TM_WM_SEEDING_SELFHASH) {
        for (size_t start = 0; start < count; start += CHUNK) {
            size_t n = count - start < CHUNK ? count - start : CHUNK, p0 = first + start;
            tm_wm_prf_window(&scheme->subkey, TM_WM_DOMAIN_KGW_LEFTHASH, tokens + p0 - needed, needed + 1, 0, n, prf);
            for (size_t i = 0; i < n; i++) {
                bool green = tm_wm_uniform(prf[i]) < config->gamma;
                bits[start + i] = green;
                values[start + i] = green ? 1.0 : 0.0;
                fingerprints[start + i] = tm_wm_context_fingerprint(tokens + p0 + i - needed, needed, needed, tokens[p0 + i]);
            }
        }
        return 1;
    }
    tm_wm_prf_template rank, draw;
    tm_wm_prf_template_init(&rank, TM_WM_DOMAIN_KGW_SELFHASH, NULL, 0, 2, 0);
    tm_wm_prf_template_init(&draw, TM_WM_DOMAIN_KGW_SELFHASH, NULL, 0, 2, 1);
    uint64_t best_rank[CHUNK];
    int32_t best_y[CHUNK];
    for (size_t start = 0; start < count; start += CHUNK) {
        size_t n = count - start < CHUNK ? count - start : CHUNK, p0 = first + start;
        const int32_t *w = tokens + p0;
        const int32_t *const self_slots[2] = {w, w};
        tm_wm_prf_batch(&scheme->subkey, &rank, self_slots, n, best_rank);
        memcpy(best_y, w, n * sizeof *w);
        for (size_t k = 0; k < needed; k++) {
            const int32_t *y = tokens + p0 - needed + k;
            const int32_t *const slots[2] = {y, w};
            tm_wm_prf_batch(&scheme->subkey, &rank, slots, n, prf);
            for (size_t i = 0; i < n; i++) {
                /* Branch-free: which member wins is a coin flip. */
                bool take = rank_before(prf[i], y[i], best_rank[i], best_y[i]);
                uint64_t mask = 0 - (uint64_t)take;
                best_rank[i] = (prf[i] & mask) | (best_rank[i] & ~mask);
                best_y[i] = (int32_t)(((uint32_t)y[i] & (uint32_t)mask) | ((uint32_t)best_y[i] & ~(uint32_t)mask));
            }
        }
        const int32_t *const draw_slots[2] = {best_y, w};
        tm_wm_prf_batch(&scheme->subkey, &draw, draw_slots, n, prf);
        for (size_t i = 0; i < n; i++) {
            bool green = tm_wm_uniform(prf[i]) < config->gamma;
            bits[start + i] = green;
            values[start + i] = green ? 1.0 : 0.0;
            fingerprints[start + i] = tm_wm_context_fingerprint(&best_y[i], 1, 1, w[i]);
        }
    }
    return 1;
}

const tm_wm_scheme_ops tm_wm_kgw_ops = {TM_WM_STAGE_LOGITS, kgw_apply, kgw_token_values, kgw_fingerprint,
                                        kgw_values_run};
