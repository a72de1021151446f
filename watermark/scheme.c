/* What all schemes share: binding a configuration to a key (the subkey comes
 * from HKDF with the configuration's canonical description as info, so one
 * master key serves every scheme without one leaking into another), the
 * generic watermark sampler that keeps the token history and hands the
 * candidates to the scheme, and the dispatch of the detection face. */
#include "scheme.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const tm_wm_scheme_ops *ops_for(tm_wm_kind kind) {
    switch (kind) {
    case TM_WM_KGW: return &tm_wm_kgw_ops;
    case TM_WM_UNIGRAM: return &tm_wm_unigram_ops;
    case TM_WM_GUMBEL: return &tm_wm_gumbel_ops;
    case TM_WM_SYNTHID: return &tm_wm_synthid_ops;
    case TM_WM_DIPMARK: return &tm_wm_dipmark_ops;
    case TM_WM_EXP_EDIT: return &tm_wm_exp_edit_ops;
    case TM_WM_KIND_COUNT: break;
    }
    return NULL;
}

tm_status tm_wm_scheme_create(tm_wm_scheme **out, const tm_wm_config *config, const tm_wm_key *key, tm_error *err) {
    *out = NULL;
    tm_status status = tm_wm_config_validate(config, err);
    if (status != TM_OK) return status;
    tm_wm_scheme *scheme = tm_alloc_array(1, sizeof *scheme, err);
    if (!scheme) return TM_ERR_NOMEM;
    scheme->config = *config;
    scheme->ops = ops_for(config->kind);
    snprintf(scheme->key_id, sizeof scheme->key_id, "%s", tm_wm_key_id(key));
    char info[256];
    tm_wm_config_describe(config, info, sizeof info);
    status = tm_wm_derive_subkey(key, info, &scheme->subkey, err);
    if (status != TM_OK) {
        tm_wm_scheme_free(scheme);
        return status;
    }
    *out = scheme;
    return TM_OK;
}

void tm_wm_scheme_free(tm_wm_scheme *scheme) {
    if (!scheme) return;
    memset(&scheme->subkey, 0, sizeof scheme->subkey);
    free(scheme);
}

const tm_wm_config *tm_wm_scheme_config(const tm_wm_scheme *scheme) { return &scheme->config; }
const char *tm_wm_scheme_key_id(const tm_wm_scheme *scheme) { return scheme->key_id; }
tm_wm_stage tm_wm_scheme_stage(const tm_wm_scheme *scheme) { return scheme->ops->stage; }

size_t tm_wm_token_values(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context, int32_t token,
                          double *values, size_t capacity) {
    if (!scheme->ops->token_values) return 0;
    return scheme->ops->token_values(scheme, context, n_context, token, values, capacity);
}

/* ---- sampler state --------------------------------------------------------- */

bool tm_wm_state_seen_before(tm_wm_sampler_state *state, uint64_t fingerprint) {
    if (fingerprint == 0) fingerprint = 1; /* 0 marks an empty slot */
    if (2 * (state->n_seen + 1) > state->seen_capacity) {
        size_t capacity = state->seen_capacity ? 2 * state->seen_capacity : 1024;
        uint64_t *grown = calloc(capacity, sizeof *grown);
        if (!grown) return false;
        for (size_t i = 0; i < state->seen_capacity; i++) {
            uint64_t f = state->seen[i];
            if (!f) continue;
            size_t slot = (size_t)(f * 0x9E3779B97F4A7C15ULL >> 20) & (capacity - 1);
            while (grown[slot]) slot = (slot + 1) & (capacity - 1);
            grown[slot] = f;
        }
        free(state->seen);
        state->seen = grown;
        state->seen_capacity = capacity;
    }
    size_t slot = (size_t)(fingerprint * 0x9E3779B97F4A7C15ULL >> 20) & (state->seen_capacity - 1);
    while (state->seen[slot]) {
        if (state->seen[slot] == fingerprint) return true;
        slot = (slot + 1) & (state->seen_capacity - 1);
    }
    state->seen[slot] = fingerprint;
    state->n_seen++;
    return false;
}

void *tm_wm_state_scratch(tm_wm_sampler_state *state, size_t size) {
    if (size > state->scratch_size) {
        void *grown = realloc(state->scratch, size);
        if (!grown) return NULL;
        state->scratch = grown;
        state->scratch_size = size;
    }
    return state->scratch;
}

const int32_t *tm_wm_state_context(const tm_wm_sampler_state *state, size_t n, size_t *available) {
    size_t take = n < state->n_history ? n : state->n_history;
    *available = take;
    return state->history + (state->n_history - take);
}

/* ---- the generic watermark sampler ------------------------------------------ */

typedef struct {
    tm_wm_scheme *scheme;
    tm_wm_sampler_state state;
} wm_sampler;

static const char *wm_name(const tm_sampler *sampler) {
    const wm_sampler *s = sampler->state;
    return tm_wm_kind_name(s->scheme->config.kind);
}

static void wm_apply(tm_sampler *sampler, tm_candidates *candidates) {
    wm_sampler *s = sampler->state;
    s->scheme->ops->apply(s->scheme, &s->state, candidates);
    s->state.step++;
}

static void wm_accept(tm_sampler *sampler, int32_t token) {
    wm_sampler *s = sampler->state;
    tm_wm_sampler_state *st = &s->state;
    if (st->n_history == st->history_capacity) {
        size_t capacity = st->history_capacity ? 2 * st->history_capacity : 256;
        int32_t *grown = realloc(st->history, capacity * sizeof *grown);
        if (!grown) { /* keep the most recent half rather than fail */
            size_t keep = st->n_history / 2;
            memmove(st->history, st->history + st->n_history - keep, keep * sizeof *grown);
            st->n_history = keep;
        } else {
            st->history = grown;
            st->history_capacity = capacity;
        }
    }
    if (st->n_history < st->history_capacity) st->history[st->n_history++] = token;
}

static void wm_reset(tm_sampler *sampler) {
    wm_sampler *s = sampler->state;
    tm_wm_sampler_state *st = &s->state;
    st->n_history = 0;
    st->step = 0;
    st->n_seen = 0;
    if (st->seen) memset(st->seen, 0, st->seen_capacity * sizeof *st->seen);
    tm_rng_seed(&st->rng, st->seed);
}

static void wm_free(tm_sampler *sampler) {
    wm_sampler *s = sampler->state;
    free(s->state.history);
    free(s->state.seen);
    free(s->state.scratch);
    free(s);
}

static const tm_sampler_interface wm_interface = {wm_name, wm_apply, wm_accept, wm_reset, wm_free};

tm_sampler *tm_wm_sampler(tm_wm_scheme *scheme, uint64_t seed) {
    wm_sampler *s = calloc(1, sizeof *s);
    tm_sampler *sampler = calloc(1, sizeof *sampler);
    if (!s || !sampler) {
        free(s);
        free(sampler);
        return NULL;
    }
    s->scheme = scheme;
    s->state.seed = seed;
    tm_rng_seed(&s->state.rng, seed);
    sampler->interface = &wm_interface;
    sampler->state = s;
    return sampler;
}
