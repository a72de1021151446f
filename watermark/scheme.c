/* What all schemes share: binding a configuration to a key (the subkey comes
 * from HKDF with the configuration's canonical description as info, so one
 * master key serves every scheme without one leaking into another), the
 * generic watermark sampler that keeps the token history and hands the
 * candidates to the scheme, the dispatch of the detection face, the
 * context message of the schemes that hash a short context, and the
 * pieces the selectors share (softmax without sorting, the inverse-CDF draw,
 * argmax log(r)/p, ordering by PRF values). Per-token work here grows with
 * the candidates, never with the vocabulary, and nothing here may change
 * which token a scheme's spec selects. */
#include "scheme.h"

#include <math.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SCHEME_HAVE_AVX2 1
#else
#define SCHEME_HAVE_AVX2 0
#endif

/* Set by tests only, before the samplers run; read on every step, by any
 * thread that samples (atomic, so that a switch while a server samples is
 * not a data race). */
static atomic_bool reference_switch;

void tm_wm_use_reference_paths(bool on) { atomic_store_explicit(&reference_switch, on, memory_order_relaxed); }
bool tm_wm_reference_paths(void) { return atomic_load_explicit(&reference_switch, memory_order_relaxed); }

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
    /* OPENSSL_cleanse, not memset: a store just before free is dead to the
     * compiler and may be dropped. */
    OPENSSL_cleanse(&scheme->subkey, sizeof scheme->subkey);
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

uint64_t tm_wm_context_fingerprint(const int32_t *context, size_t n_context, size_t width, int32_t token) {
    size_t n = width < n_context ? width : n_context;
    const int32_t *recent = n ? context + (n_context - n) : NULL;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    for (size_t i = 0; i <= n; i++) {
        uint64_t v = (uint64_t)(uint32_t)(i < n ? recent[i] : token);
        h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
        h *= 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
    }
    return h;
}

size_t tm_wm_context_width(const tm_wm_scheme *scheme) {
    int32_t h = scheme->config.context_width;
    if (h < 0) return 0;
    if ((size_t)h > TM_WM_PRF_MAX_TOKENS - 1) return TM_WM_PRF_MAX_TOKENS - 1;
    return (size_t)h;
}

size_t tm_wm_context_message(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context,
                             int32_t *message) {
    size_t h = tm_wm_context_width(scheme);
    size_t take = n_context < h ? n_context : h;
    if (take > 0) memcpy(message, context + (n_context - take), take * sizeof *message);
    return take;
}

size_t tm_wm_scheme_context_needed(const tm_wm_scheme *scheme) {
    const tm_wm_config *c = &scheme->config;
    size_t h = c->context_width < 1 ? 1 : (size_t)c->context_width;
    if (h > TM_WM_PRF_MAX_TOKENS - 1) h = TM_WM_PRF_MAX_TOKENS - 1;
    switch (c->kind) {
    case TM_WM_UNIGRAM:
    case TM_WM_EXP_EDIT: return 0;
    case TM_WM_KGW: return c->seeding == TM_WM_SEEDING_SELFHASH ? h - 1 : h;
    default: return h;
    }
}

double tm_wm_scheme_null_green_rate(const tm_wm_scheme *scheme) {
    switch (scheme->config.kind) {
    case TM_WM_KGW:
    case TM_WM_UNIGRAM: return scheme->config.gamma;
    case TM_WM_DIPMARK: return TM_WM_DIPMARK_DETECTION_GAMMA;
    default: return NAN;
    }
}

uint64_t tm_wm_token_fingerprint(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context, int32_t token) {
    if (scheme->ops->fingerprint) return scheme->ops->fingerprint(scheme, context, n_context, token);
    tm_wm_kind kind = scheme->config.kind;
    size_t width = kind == TM_WM_UNIGRAM || kind == TM_WM_EXP_EDIT ? 0 : (size_t)scheme->config.context_width;
    return tm_wm_context_fingerprint(context, n_context, width, token);
}

size_t tm_wm_token_values_run(const tm_wm_scheme *scheme, const int32_t *tokens, size_t first, size_t count,
                              uint64_t *fingerprints, uint64_t *bits, double *values) {
    if (!scheme->ops->values_run || first < tm_wm_scheme_context_needed(scheme)) return 0;
    return scheme->ops->values_run(scheme, tokens, first, count, fingerprints, bits, values);
}

void tm_wm_default_fingerprints(const tm_wm_scheme *scheme, const int32_t *tokens, size_t first, size_t count,
                                uint64_t *fingerprints) {
    size_t needed = tm_wm_scheme_context_needed(scheme);
    tm_wm_kind kind = scheme->config.kind;
    size_t width = kind == TM_WM_UNIGRAM || kind == TM_WM_EXP_EDIT ? 0 : (size_t)scheme->config.context_width;
    for (size_t i = 0; i < count; i++) {
        size_t p = first + i;
        fingerprints[i] = tm_wm_context_fingerprint(tokens + p - needed, needed, width, tokens[p]);
    }
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

/* Grow a buffer that may hold keyed values (a green list, PRF ranks): like
 * realloc, but the old block is wiped before it is freed, where realloc
 * would leave its copy in the heap. */
static void *grow_wiped(void **buffer, size_t *size, size_t wanted) {
    if (wanted > *size) {
        void *grown = malloc(wanted);
        if (!grown) return NULL;
        if (*buffer) {
            memcpy(grown, *buffer, *size);
            OPENSSL_cleanse(*buffer, *size);
            free(*buffer);
        }
        *buffer = grown;
        *size = wanted;
    }
    return *buffer;
}

void *tm_wm_state_scratch(tm_wm_sampler_state *state, size_t size) {
    return grow_wiped(&state->scratch, &state->scratch_size, size);
}

void *tm_wm_state_cache(tm_wm_sampler_state *state, size_t size) {
    return grow_wiped(&state->cache, &state->cache_size, size);
}

const int32_t *tm_wm_state_context(const tm_wm_sampler_state *state, size_t n, size_t *available) {
    size_t take = n < state->n_history ? n : state->n_history;
    *available = take;
    return take ? state->history + (state->n_history - take) : NULL;
}

/* ---- shared pieces of the selectors ------------------------------------------ */

void tm_wm_softmax(tm_candidates *candidates) {
    tm_token_data *d = candidates->data;
    size_t n = candidates->size;
    float max = tm_candidates_max_logit(d, n); /* NaN never compares greater */
    double sum = 0.0;
    if (isfinite(max)) {
        sum = tm_candidates_exp(d, n, max, true); /* a NaN logit gets p = 0 */
    } else { /* the limit of the finite case: the entries at the extreme share the mass */
        for (size_t i = 0; i < n; i++) {
            d[i].p = d[i].logit == max ? 1.0f : 0.0f;
            sum += d[i].p;
        }
    }
    if (!(sum > 0.0)) return;
    tm_candidates_multiply_p(d, n, 1.0 / sum);
}

void tm_wm_draw(tm_candidates *candidates, const double *weights, double u) {
    const tm_token_data *d = candidates->data;
    size_t n = candidates->size;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        double w = weights ? weights[i] : (double)d[i].p;
        if (w > 0.0) total += w;
    }
    candidates->selected = d[0].id;
    if (!(total > 0.0) || !isfinite(total)) return;
    double target = u * total, cumulative = 0.0;
    for (size_t i = 0; i < n; i++) {
        double w = weights ? weights[i] : (double)d[i].p;
        if (!(w > 0.0)) continue;
        cumulative += w;
        candidates->selected = d[i].id; /* the last possible one if rounding leaves target >= total */
        if (target < cumulative) return;
    }
}

bool tm_wm_selector_begin(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, tm_candidates *candidates,
                          uint8_t domain, int32_t message[TM_WM_PRF_MAX_TOKENS], size_t *n_context) {
    tm_wm_softmax(candidates);
    *n_context = 0;
    if (state->n_history > 0) {
        const int32_t *context = tm_wm_state_context(state, tm_wm_context_width(scheme), n_context);
        *n_context = tm_wm_context_message(scheme, context, *n_context, message);
    }
    if (!scheme->config.skip_repeated_context) return true;
    uint64_t fingerprint = tm_wm_prf(&scheme->subkey, domain, message, *n_context, TM_WM_FINGERPRINT_EXTRA);
    if (tm_wm_state_seen_before(state, fingerprint)) {
        tm_wm_draw(candidates, NULL, (double)tm_rng_uniform(&state->rng));
        return false;
    }
    return true;
}

enum { SELECT_CHUNK = 256 };

/* One candidate of argmax log(r)/p, in order: the reference step. */
static inline void argmax_step(uint64_t x, float p, int32_t id, double *best, double *threshold, int32_t *selected) {
    double r = tm_wm_uniform(x), pk = (double)p;
    if (r - 1.0 < *threshold * pk) return;
    double score = log(r) / pk;
    if (score > *best) {
        *best = score;
        *threshold = *best * (1.0 + 0x1.0p-30);
        *selected = id;
    }
}

#if SCHEME_HAVE_AVX2
/* Bit i set when candidate i of eight fails argmax_step's skip test: r - 1 >=
 * threshold * p (or unordered), with r = tm_wm_uniform(x) computed exactly
 * as there: x >> 12 < 2^52 becomes a double by the 2^52 bias trick (exact),
 * and + 0.5, * 2^-52, - 1 and the product are the same IEEE operations. */
__attribute__((target("avx2"))) static unsigned may_win8(const uint64_t *x, const float *p, double threshold) {
    const __m256d bias = _mm256_set1_pd(0x1.0p52), half = _mm256_set1_pd(0.5), scale = _mm256_set1_pd(0x1.0p-52);
    const __m256d one = _mm256_set1_pd(1.0), limit = _mm256_set1_pd(threshold);
    const __m256i bias_bits = _mm256_set1_epi64x(0x4330000000000000LL);
    unsigned bits = 0;
    for (int h = 0; h < 2; h++) {
        __m256i top = _mm256_srli_epi64(_mm256_loadu_si256((const __m256i *)(const void *)(x + 4 * h)), 12);
        __m256d v = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(top, bias_bits)), bias);
        __m256d r = _mm256_mul_pd(_mm256_add_pd(v, half), scale);
        __m256d lhs = _mm256_sub_pd(r, one);
        __m256d rhs = _mm256_mul_pd(limit, _mm256_cvtps_pd(_mm_loadu_ps(p + 4 * h)));
        __m256d skip = _mm256_cmp_pd(lhs, rhs, _CMP_LT_OQ);
        bits |= (unsigned)(~_mm256_movemask_pd(skip) & 0xF) << (4 * h);
    }
    return bits;
}
#endif

void tm_wm_select_argmax_log_over_p(const tm_wm_subkey *key, const tm_wm_prf_template *t,
                                    tm_candidates *candidates) {
    const tm_token_data *d = candidates->data;
    size_t n = candidates->size;
    int32_t ids[SELECT_CHUNK];
    float p[SELECT_CHUNK];
    uint64_t x[SELECT_CHUNK];
    /* threshold = best * (1 + 2^-30): a candidate with r - 1 < threshold * p
     * has log(r)/p <= (r - 1)/p < best by far more than the rounding of log
     * and of the division (2^-51 relative), so it cannot win and its log is
     * skipped; -inf until there is a best. */
    double best = -INFINITY, threshold = -INFINITY;
    candidates->selected = n > 0 ? d[0].id : -1;
#if SCHEME_HAVE_AVX2
    bool avx2 = !tm_wm_reference_paths() && tm_cpu_has(TM_CPU_AVX2);
#endif
    for (size_t start = 0; start < n; start += SELECT_CHUNK) {
        size_t end = n - start < SELECT_CHUNK ? n : start + SELECT_CHUNK, m = 0;
        for (size_t i = start; i < end; i++)
            if (d[i].p > 0.0f) ids[m] = d[i].id, p[m++] = d[i].p;
        const int32_t *const slots[2] = {ids, NULL};
        tm_wm_prf_batch(key, t, slots, m, x);
        size_t k = 0;
#if SCHEME_HAVE_AVX2
        if (avx2) {
            /* Eight at a time, the bits of those that pass the test with the
             * threshold as it was; each of them is then tested again in
             * order with the threshold as it is, as the loop below does.
             * The threshold only grows, so a candidate that fails the old
             * one fails the new one too: the same candidates reach log. */
            for (; k + 8 <= m; k += 8) {
                for (unsigned bits = may_win8(x + k, p + k, threshold); bits; bits &= bits - 1) {
                    size_t j = k + (size_t)__builtin_ctz(bits);
                    argmax_step(x[j], p[j], ids[j], &best, &threshold, &candidates->selected);
                }
            }
        }
#endif
        for (; k < m; k++) argmax_step(x[k], p[k], ids[k], &best, &threshold, &candidates->selected);
    }
}

/* Insertion sort of order[0..n) by (keys >> shift, ids): for short runs. */
static void order_insertion(const uint64_t *keys, const int32_t *ids, unsigned shift, uint32_t *order, size_t n) {
    for (size_t i = 1; i < n; i++) {
        uint32_t item = order[i];
        uint64_t key = keys[item] >> shift;
        size_t j = i;
        while (j > 0) {
            uint32_t other = order[j - 1];
            uint64_t other_key = keys[other] >> shift;
            if (other_key < key || (other_key == key && ids[other] <= ids[item])) break;
            order[j] = other;
            j--;
        }
        order[j] = item;
    }
}

/* Radix digits over the top 32 bits of a packed item (key bits << 32 |
 * index): three 11-bit digits for large sets, four 8-bit ones for small sets,
 * where clearing and summing 2048 counters would cost more than the items. */
enum { RADIX_MAX_BITS = 11, RADIX_MAX_PASSES = 4, RADIX_SMALL_SET = 4096, RADIX_TWO_PASS_MAX = 1 << 17 };

/* After the radix passes (a: the packed items, sorted by bits low..63):
 * runs of items equal in those bits are put in order by (keys >> shift,
 * ids). Rare: about n^2 / 2^(65 - low) pairs. */
static void settle_ties(const uint64_t *keys, const int32_t *ids, unsigned shift, const uint64_t *a, size_t n,
                        unsigned low, uint32_t *order) {
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && (a[j] >> low) == (a[i] >> low)) j++;
        if (j - i > 1) order_insertion(keys, ids, shift, order + i, j - i);
        i = j;
    }
}

/* The radix passes of a large set, two 11-bit digits (bits 42..63 of the
 * packed items), with the shifts as constants: the general loop's shift by
 * a count in a register costs more than the rest of its work on x86 without
 * BMI2. The same counting and the same stable scatters as the general loop;
 * returns the buffer that holds the sorted items. */
static uint64_t *sort_top_22_bits(const uint64_t *keys, size_t n, uint64_t *a, uint64_t *b) {
    uint32_t low[1 << RADIX_MAX_BITS] = {0}, high[1 << RADIX_MAX_BITS] = {0};
    for (size_t i = 0; i < n; i++) {
        uint64_t item = (keys[i] >> 32) << 32 | (uint64_t)i;
        a[i] = item;
        low[item >> 42 & 0x7FF]++;
        high[item >> 53]++;
    }
    uint32_t sum_low = 0, sum_high = 0;
    for (size_t v = 0; v < (size_t)1 << RADIX_MAX_BITS; v++) {
        uint32_t c = low[v], d = high[v];
        low[v] = sum_low, high[v] = sum_high;
        sum_low += c, sum_high += d;
    }
    for (size_t i = 0; i < n; i++) b[low[a[i] >> 42 & 0x7FF]++] = a[i];
    for (size_t i = 0; i < n; i++) a[high[b[i] >> 53]++] = b[i];
    return a;
}

void tm_wm_order_by_key(const uint64_t *keys, const int32_t *ids, size_t n, unsigned shift, uint32_t *order,
                        uint64_t *work) {
    if (n < 64) {
        for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
        order_insertion(keys, ids, shift, order, n);
        return;
    }
    /* Sorting by the top 32 bits of keys is sorting by the top bits of keys >>
     * shift (shift <= 32), so the radix passes give the right order up to ties
     * in those bits, which the last loop settles. */
    unsigned bits = n < RADIX_SMALL_SET ? 8 : RADIX_MAX_BITS, passes = (32 + bits - 1) / bits;
    /* Two passes already order the items by their top 16 (22) bits, leaving
     * about n^2 / 2^17 (n^2 / 2^23) pairs of ties for the last loop: a few
     * dozen for a whole vocabulary, so the third (and fourth) pass of the
     * reference costs more than the ties it would save settling. */
    if (!tm_wm_reference_paths() && n <= RADIX_TWO_PASS_MAX) passes = 2;
    unsigned low = 64 - passes * bits < 32 ? 32 : 64 - passes * bits; /* the lowest bit the passes sort by */
    size_t radix = (size_t)1 << bits;
    uint64_t *a = work, *b = work + n;
    if (passes == 2 && bits == RADIX_MAX_BITS) {
        a = sort_top_22_bits(keys, n, a, b);
        for (size_t i = 0; i < n; i++) order[i] = (uint32_t)a[i];
        settle_ties(keys, ids, shift, a, n, low, order);
        return;
    }
    uint32_t count[RADIX_MAX_PASSES][1 << RADIX_MAX_BITS]; /* n < 2^31: candidates come from an int32 vocabulary */
    for (unsigned pass = 0; pass < passes; pass++) memset(count[pass], 0, radix * sizeof count[pass][0]);
    for (size_t i = 0; i < n; i++) {
        uint64_t item = (keys[i] >> 32) << 32 | (uint64_t)i;
        a[i] = item;
        for (unsigned pass = 0; pass < passes; pass++) count[pass][(item >> (low + pass * bits)) & (radix - 1)]++;
    }
    for (unsigned pass = 0; pass < passes; pass++) {
        uint32_t sum = 0;
        for (size_t v = 0; v < radix; v++) {
            uint32_t c = count[pass][v];
            count[pass][v] = sum;
            sum += c;
        }
        unsigned digit_shift = low + pass * bits;
        for (size_t i = 0; i < n; i++) b[count[pass][(a[i] >> digit_shift) & (radix - 1)]++] = a[i];
        uint64_t *swap = a;
        a = b;
        b = swap;
    }
    for (size_t i = 0; i < n; i++) order[i] = (uint32_t)a[i];
    settle_ties(keys, ids, shift, a, n, low, order);
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
    /* The caches hold keyed values (Unigram's whole green list): wipe them. */
    if (s->state.scratch) OPENSSL_cleanse(s->state.scratch, s->state.scratch_size);
    if (s->state.cache) OPENSSL_cleanse(s->state.cache, s->state.cache_size);
    free(s->state.scratch);
    free(s->state.cache);
    free(s);
}

/* The logit-bias schemes add delta (a finite value >= 0, config.c checks)
 * to green logits and nothing to the others; the chain may then drop what
 * its truncation would drop anyway (generator/sampler.c, pre-truncation). */
static float wm_max_raise(const tm_sampler *sampler) {
    const tm_wm_config *config = &((const wm_sampler *)sampler->state)->scheme->config;
    bool biases = config->kind == TM_WM_KGW || config->kind == TM_WM_UNIGRAM;
    return biases && config->delta >= 0.0 && isfinite(config->delta) ? (float)config->delta : NAN;
}

static const tm_sampler_interface wm_interface = {wm_name, wm_apply, wm_accept, wm_reset, wm_free, wm_max_raise};

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
