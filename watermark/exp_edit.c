/* The EXP-edit and ITS-edit watermarks (Kuditipudi, Thickstun, Hashimoto,
 * Liang 2023, "Robust Distortion-free Watermarks for Language Models"): a
 * keyed sequence xi of n positions, walked from a random shift drawn once
 * per sequence, drives the choice of each token. EXP: xi[j][w] =
 * uniform(PRF(EXP_EDIT, [w], j)) and the token is argmax over the candidates
 * of xi[j][w]^(1/p_w). ITS: one uniform u_j = uniform(PRF(EXP_EDIT, [], j))
 * per position and one key permutation pi of the vocabulary (tokens ordered by
 * PRF(ITS_PERMUTATION, [w], 0)); the token is the one at u_j of p's CDF taken
 * in pi order. Detection aligns the text with xi (edit distance, not per-token
 * values), so token_values gives nothing and tm_wm_xi and tm_wm_its_uniform
 * expose the key sequence. The work per token grows with the candidates only: EXP is one
 * batched PRF per candidate (a log only for the few that could still win);
 * ITS radix-sorts the candidates by rank keys the sampler caches per token id,
 * never the vocabulary, or, for a set that covers much of the vocabulary,
 * walks the cached permutation through a table of p by id. This file must never print or abort on any input, and
 * out of memory it samples plainly. */
#include "scheme.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static double xi_value(const tm_wm_scheme *scheme, uint32_t row, int32_t token) {
    return tm_wm_uniform(tm_wm_prf(&scheme->subkey, TM_WM_DOMAIN_EXP_EDIT, &token, 1, row));
}

static double its_uniform(const tm_wm_scheme *scheme, uint32_t row) {
    return tm_wm_uniform(tm_wm_prf(&scheme->subkey, TM_WM_DOMAIN_EXP_EDIT, NULL, 0, row));
}

static uint64_t its_rank_key(const tm_wm_scheme *scheme, int32_t token) {
    return tm_wm_prf(&scheme->subkey, TM_WM_DOMAIN_ITS_PERMUTATION, &token, 1, 0);
}

/* ITS: the candidates with p > 0 in pi's order (rank key, then id), and the
 * first whose cumulative p exceeds u_row times the total. Rank keys depend on
 * the key alone, so the sampler caches them per token id (filled once, in
 * batches), and with them pi itself, the ids in order: a candidate set that
 * covers much of the vocabulary is then walked along pi through a table of
 * p by id, adding the same p in the same order as the sort would, without
 * sorting anything. Smaller sets are sorted by their cached keys; ids beyond
 * the cache are hashed one by one. */
enum { ITS_CACHE_MAX_TOKENS = 1 << 22, ITS_CHUNK = 256 };

/* The cache: words[0] = how many ids it covers (a multiple of ITS_CHUNK),
 * words[1] = whether pi is there, then one rank key per id, then pi (uint32). */
typedef struct {
    const uint64_t *keys;
    const uint32_t *order; /* pi over [0, covered), NULL until a walk needs it */
    size_t covered;
} its_cache;

static bool its_rank_cache(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, size_t tokens, its_cache *out) {
    uint64_t covered = state->cache_size >= 2 * sizeof(uint64_t) ? ((uint64_t *)state->cache)[0] : 0;
    if (tokens > covered) {
        if (tokens > ITS_CACHE_MAX_TOKENS) return false;
        size_t target = (tokens + ITS_CHUNK - 1) / ITS_CHUNK * ITS_CHUNK;
        uint64_t *grown = tm_wm_state_cache(state, (2 + target) * sizeof(uint64_t) + target * sizeof(uint32_t));
        if (!grown) return false;
        grown[0] = grown[1] = 0;
        tm_wm_prf_template t;
        tm_wm_prf_template_init(&t, TM_WM_DOMAIN_ITS_PERMUTATION, NULL, 0, 1, 0);
        int32_t ids[ITS_CHUNK];
        for (size_t start = 0; start < target; start += ITS_CHUNK) {
            for (size_t i = 0; i < ITS_CHUNK; i++) ids[i] = (int32_t)(start + i);
            const int32_t *const slots[2] = {ids, NULL};
            tm_wm_prf_batch(&scheme->subkey, &t, slots, ITS_CHUNK, grown + 2 + start);
        }
        grown[0] = covered = target;
    }
    uint64_t *words = state->cache;
    out->keys = words + 2;
    out->covered = (size_t)covered;
    out->order = words[1] ? (const uint32_t *)(const void *)(words + 2 + covered) : NULL;
    return true;
}

/* pi over the cached ids, put in the cache once (work: 2 * covered words of scratch). */
static const uint32_t *its_order(tm_wm_sampler_state *state, its_cache *cache) {
    if (cache->order) return cache->order;
    size_t n = cache->covered;
    if (n > SIZE_MAX / (2 * sizeof(uint64_t) + sizeof(int32_t))) return NULL;
    uint64_t *work = tm_wm_state_scratch(state, n * (2 * sizeof(uint64_t) + sizeof(int32_t)));
    if (!work) return NULL;
    int32_t *ids = (int32_t *)(void *)(work + 2 * n);
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)i;
    uint64_t *words = state->cache;
    uint32_t *order = (uint32_t *)(void *)(words + 2 + n);
    tm_wm_order_by_key(cache->keys, ids, n, 0, order, work);
    words[1] = 1;
    cache->order = order;
    return order;
}

/* The walk along pi; false when it does not apply (ids outside the cache or
 * repeated, or no memory), and the caller sorts. */
static bool its_walk(tm_wm_sampler_state *state, its_cache *cache, double u, tm_candidates *candidates,
                     bool dense) {
    const tm_token_data *d = candidates->data;
    size_t n = candidates->size, covered = cache->covered;
    const uint32_t *order = its_order(state, cache);
    if (!order) return false;
    double total = 0.0;
    float *p_of = NULL; /* dense candidates are their own table: d[id].p */
    if (dense) {
        for (size_t i = 0; i < n; i++)
            if (d[i].p > 0.0f) total += d[i].p;
    } else {
        p_of = tm_wm_state_scratch(state, covered * sizeof(float));
        if (!p_of) return false;
        memset(p_of, 0, covered * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            float p = d[i].p;
            if (!(p > 0.0f)) continue;
            int32_t id = d[i].id;
            if (id < 0 || (size_t)id >= covered || p_of[id] != 0.0f) return false; /* the sort handles these */
            p_of[id] = p;
            total += p; /* in the candidates' order, as the sort path adds it */
        }
    }
    if (!(total > 0.0)) return true; /* no candidate with p > 0: d[0] stays selected */
    double target = u * total, cumulative = 0.0;
    for (size_t k = 0; k < covered; k++) {
        uint32_t id = order[k];
        if (dense && id >= n) continue; /* pi covers ids up to a whole chunk beyond the vocabulary */
        float p = dense ? d[id].p : p_of[id];
        if (!(p > 0.0f)) continue;
        cumulative += p;
        candidates->selected = (int32_t)id; /* the last one if rounding leaves target >= total */
        if (target < cumulative) return true;
    }
    return true;
}

static void its_select(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, uint32_t row,
                       tm_candidates *candidates) {
    const tm_token_data *d = candidates->data;
    size_t n = candidates->size;
    candidates->selected = d[0].id;
    bool dense = n <= (size_t)INT32_MAX && tm_candidates_dense(d, n); /* the whole vocabulary, in order */
    int32_t max_id = dense ? (int32_t)n - 1 : -1;
    for (size_t i = 0; i < n && !dense; i++) max_id = d[i].id > max_id ? d[i].id : max_id;
    its_cache cache = {NULL, NULL, 0};
    bool cached = max_id >= 0 && its_rank_cache(scheme, state, (size_t)max_id + 1, &cache);
    /* The walk visits every cached id: worth it when the candidates are a
     * good part of them (a whole vocabulary, as without truncation). */
    if (cached && !tm_wm_reference_paths() && n >= cache.covered / 4 &&
        its_walk(state, &cache, its_uniform(scheme, row), candidates, dense))
        return;
    candidates->selected = d[0].id;
    const uint64_t *keys_cache = cached ? cache.keys : NULL;
    /* Scratch: keys, ids and p of the candidates with p > 0, their order,
     * and the radix sort's two buffers. */
    size_t per = 3 * sizeof(uint64_t) + sizeof(int32_t) + sizeof(float) + sizeof(uint32_t);
    uint64_t *keys = n <= SIZE_MAX / per ? tm_wm_state_scratch(state, n * per) : NULL;
    if (!keys) { /* out of memory: unwatermarked but correct */
        tm_wm_draw(candidates, NULL, (double)tm_rng_uniform(&state->rng));
        return;
    }
    uint64_t *work = keys + n;
    int32_t *ids = (int32_t *)(void *)(work + 2 * n);
    float *p = (float *)(void *)(ids + n);
    uint32_t *order = (uint32_t *)(void *)(p + n);
    size_t m = 0;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!(d[i].p > 0.0f)) continue; /* zero-probability tokens take no room in the CDF */
        int32_t id = d[i].id;
        keys[m] = keys_cache && id >= 0 && (size_t)id < cache.covered ? keys_cache[id] : its_rank_key(scheme, id);
        ids[m] = id;
        p[m++] = d[i].p;
        total += d[i].p;
    }
    if (m == 0) return;
    tm_wm_order_by_key(keys, ids, m, 0, order, work);
    double target = its_uniform(scheme, row) * total, cumulative = 0.0;
    for (size_t k = 0; k < m; k++) {
        cumulative += p[order[k]];
        candidates->selected = ids[order[k]]; /* the last one if rounding leaves target >= total */
        if (target < cumulative) return;
    }
}

/* The sequence's shift: the first output of xoshiro256** seeded with the
 * sampler's seed (what the state's RNG gives first after a reset), modulo n.
 * Recomputed from the seed at every step rather than stored, so it needs no
 * memory that could fail, and takes nothing from the state's stream. */
static uint64_t sequence_shift(const tm_wm_sampler_state *state, int32_t length) {
    tm_rng rng;
    tm_rng_seed(&rng, state->seed);
    return tm_rng_next(&rng) % (uint64_t)length;
}

static void exp_edit_apply(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, tm_candidates *candidates) {
    if (candidates->size == 0) return;
    tm_wm_softmax(candidates);
    int32_t length = scheme->config.sequence_length;
    if (length <= 0) { /* no key sequence to walk: fail open */
        tm_wm_draw(candidates, NULL, (double)tm_rng_uniform(&state->rng));
        return;
    }
    uint32_t row = (uint32_t)((sequence_shift(state, length) + (uint64_t)state->step) % (uint64_t)length);
    if (scheme->config.decoder == TM_WM_DECODER_ITS) {
        its_select(scheme, state, row, candidates);
        return;
    }
    /* EXP: argmax xi[row][w]^(1/p_w) = argmax log(xi[row][w]) / p_w. */
    tm_wm_prf_template t;
    tm_wm_prf_template_init(&t, TM_WM_DOMAIN_EXP_EDIT, NULL, 0, 1, row);
    tm_wm_select_argmax_log_over_p(&scheme->subkey, &t, candidates);
}

static size_t exp_edit_token_values(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context,
                                    int32_t token, double *values, size_t capacity) {
    (void)scheme, (void)context, (void)n_context, (void)token, (void)values, (void)capacity;
    return 0; /* detection aligns the text with xi: see tm_wm_xi */
}

const tm_wm_scheme_ops tm_wm_exp_edit_ops = {TM_WM_STAGE_SELECTOR, exp_edit_apply, exp_edit_token_values, NULL, NULL};

/* The scheme's key-sequence length when it is an EXP-edit scheme with a
 * sequence to walk, else 0; *row is position modulo n (negative positions
 * wrap too). */
static int32_t sequence_row(const tm_wm_scheme *scheme, int32_t position, uint32_t *row) {
    if (!scheme || scheme->config.kind != TM_WM_EXP_EDIT || scheme->config.sequence_length <= 0) return 0;
    int32_t length = scheme->config.sequence_length;
    int64_t wrapped = ((int64_t)position % length + length) % length; /* 64-bit: no overflow near INT32_MAX */
    *row = (uint32_t)wrapped;
    return length;
}

double tm_wm_xi(const tm_wm_scheme *scheme, int32_t position, int32_t token) {
    uint32_t row;
    if (!sequence_row(scheme, position, &row) || token < 0) return NAN;
    if (scheme->config.decoder == TM_WM_DECODER_ITS)
        return tm_wm_uniform(its_rank_key(scheme, token)); /* eta(w): pi's order as a number in (0, 1) */
    return xi_value(scheme, row, token);
}

double tm_wm_its_uniform(const tm_wm_scheme *scheme, int32_t position) {
    uint32_t row;
    if (!sequence_row(scheme, position, &row) || scheme->config.decoder != TM_WM_DECODER_ITS) return NAN;
    return its_uniform(scheme, row);
}
