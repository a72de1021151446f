/* DiPmark (Wu et al. 2023, "DiPmark: A Stealthy, Efficient and Resilient
 * Watermark for Large Language Models"), alpha-reweight: both faces. The key
 * and the h previous tokens order the vocabulary by u(w) = uniform(prf(DIPMARK,
 * [x_{t-h..t-1}, w], 0)), ascending, which is a uniformly random permutation;
 * along that order the distribution P, with cumulative F, is reweighted to
 * P'(w_i) = g(F_i) - g(F_{i-1}), g(F) = max(F - alpha, 0) + max(F - (1 - alpha), 0),
 * which moves mass towards the end of the permutation and equals P on
 * average over keys (docs/schemes/dipmark.md). The stage is the chain's
 * selector: it runs after temperature and truncation, orders only the
 * candidates with p > 0 (one batched PRF call each and a radix sort: the work
 * grows with the candidate set, not the vocabulary), reweights them in passes
 * that give the spec loop's bits (reweight_reference, kept as the reference),
 * writes P' into the
 * candidates' p, and draws the token with the sampler's RNG, one draw per
 * step on every path. Detection reports 1.0 when
 * u(w) >= 1/2 (the upper half of the permutation, DiPmark's gamma = 0.5).
 * This file must never select a token of probability zero, and never fail:
 * without scratch memory it samples from P unchanged. */
#include "scheme.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static size_t context_width(const tm_wm_config *config) {
    size_t h = (size_t)config->context_width;
    if (h < 1) h = 1;
    if (h > TM_WM_PRF_MAX_TOKENS - 1) h = TM_WM_PRF_MAX_TOKENS - 1;
    return h;
}

/* u(w) for a context of exactly h tokens. */
static double permutation_value(const tm_wm_scheme *scheme, const int32_t *context, size_t h, int32_t token) {
    int32_t tokens[TM_WM_PRF_MAX_TOKENS];
    for (size_t i = 0; i < h; i++) tokens[i] = context[i];
    tokens[h] = token;
    return tm_wm_uniform(tm_wm_prf(&scheme->subkey, TM_WM_DOMAIN_DIPMARK, tokens, h + 1, 0));
}

static double reweight_cdf(double F, double alpha) {
    return fmax(F - alpha, 0.0) + fmax(F - (1.0 - alpha), 0.0);
}

/* Along the order: F_k = (p_1 + ... + p_k) / total summed in double in that
 * order (F_n = 1 exactly), P'_k = g(F_k) - g(F_{k-1}) written into the
 * candidates' p, and the token selected: the first with r < g and P' > 0,
 * else the last with P' > 0. The loop as the spec states it; reweight
 * below must give the same bits. */
static void reweight_reference(tm_candidates *candidates, const uint32_t *position, size_t n, double total,
                               double alpha, double r) {
    double cumulative = 0.0, previous = 0.0;
    int32_t selected = -1, last_possible = -1;
    for (size_t k = 0; k < n; k++) {
        tm_token_data *d = &candidates->data[position[k]];
        cumulative += d->p;
        double g = reweight_cdf(k + 1 == n ? 1.0 : cumulative / total, alpha);
        double reweighted = g - previous;
        previous = g;
        d->p = (float)reweighted;
        if (reweighted > 0.0) {
            last_possible = d->id;
            if (selected < 0 && r < g) selected = d->id;
        }
    }
    candidates->selected = selected >= 0 ? selected : last_possible;
}

/* g of every F = c[k] / total, in place: the same IEEE operations as
 * reweight_cdf (max(v, 0) is fmax(v, 0.0) for every v this sees: F is
 * finite and >= 0, so v is never NaN or -0), four at a time where the CPU
 * has AVX2 (a division per candidate is most of the loop's time). */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx2"))) static size_t cdf_to_g_avx2(double *c, size_t n, double total, double alpha) {
    const __m256d t = _mm256_set1_pd(total), a = _mm256_set1_pd(alpha), b = _mm256_set1_pd(1.0 - alpha);
    const __m256d zero = _mm256_setzero_pd();
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
        __m256d F = _mm256_div_pd(_mm256_loadu_pd(c + k), t);
        __m256d g = _mm256_add_pd(_mm256_max_pd(_mm256_sub_pd(F, a), zero), _mm256_max_pd(_mm256_sub_pd(F, b), zero));
        _mm256_storeu_pd(c + k, g);
    }
    return k;
}
#define DIPMARK_HAVE_AVX2 1
#else
#define DIPMARK_HAVE_AVX2 0
#endif

static void cdf_to_g(double *c, size_t n, double total, double alpha) {
    size_t k = 0;
#if DIPMARK_HAVE_AVX2
    if (tm_cpu_has(TM_CPU_AVX2)) k = cdf_to_g_avx2(c, n, total, alpha);
#endif
    double b = 1.0 - alpha;
    for (; k < n; k++) {
        double F = c[k] / total, u = F - alpha, v = F - b;
        c[k] = (u > 0.0 ? u : 0.0) + (v > 0.0 ? v : 0.0);
    }
}

/* reweight_reference in passes: p gathered along the order, the running
 * sums (in 64-bit integers when they are exact, see below, else in double
 * as the reference adds them), g of every sum, then P' and the selection.
 * cumulative holds n doubles. */
static void reweight(tm_candidates *candidates, const uint32_t *position, size_t n, double total, double alpha,
                     double r, double *cumulative) {
    tm_token_data *data = candidates->data;
    /* Every p is a multiple of its float ulp 2^(e - 150) (e: the biased
     * exponent, 1 for subnormals), so every partial sum is a multiple of the
     * smallest such ulp, 2^-s. While total * 2^s < 2^52, each partial sum is
     * an integer below 2^53 times 2^-s: a double holds it exactly, the
     * reference's additions never round, and integer sums give the very
     * same values faster than a chain of dependent double additions. */
    unsigned min_exponent = 255;
    for (size_t k = 0; k < n; k++) {
        float p = data[position[k]].p;
        uint32_t bits;
        memcpy(&bits, &p, sizeof bits);
        unsigned e = bits >> 23 & 0xFF;
        e = e ? e : 1;
        min_exponent = e < min_exponent ? e : min_exponent;
        cumulative[k] = (double)p; /* p along the order, for now */
    }
    int s = 150 - (int)min_exponent; /* p * 2^s is an integer */
    if (s <= 1000 && ldexp(total, s) < 0x1.0p52 && n < (size_t)1 << 40) {
        double scale = ldexp(1.0, s), unscale = ldexp(1.0, -s);
        int64_t sum = 0; /* below 2^53: signed conversions, one instruction each way */
        for (size_t k = 0; k < n; k++) {
            sum += (int64_t)(cumulative[k] * scale);
            cumulative[k] = (double)sum * unscale;
        }
    } else {
        double sum = 0.0;
        for (size_t k = 0; k < n; k++) cumulative[k] = sum += cumulative[k];
    }
    cdf_to_g(cumulative, n - 1, total, alpha);
    cumulative[n - 1] = reweight_cdf(1.0, alpha); /* F_n = 1 exactly */
    double previous = 0.0;
    int32_t selected = -1, last_possible = -1;
    for (size_t k = 0; k < n; k++) {
        tm_token_data *d = &data[position[k]];
        double g = cumulative[k], reweighted = g - previous;
        previous = g;
        d->p = (float)reweighted;
        if (reweighted > 0.0) {
            last_possible = d->id;
            if (selected < 0 && r < g) selected = d->id;
        }
    }
    candidates->selected = selected >= 0 ? selected : last_possible;
}

static void dipmark_apply(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, tm_candidates *candidates) {
    double r = tm_rng_uniform(&state->rng); /* one draw per step, whatever path follows */
    size_t n_candidates = candidates->size;
    if (n_candidates == 0) return;
    tm_wm_softmax(candidates);
    size_t h = context_width(&scheme->config), available = 0;
    const int32_t *context = tm_wm_state_context(state, h, &available);
    if (available < h) { /* too little history to seed the permutation: unwatermarked */
        tm_wm_draw(candidates, NULL, r);
        return;
    }
    if (scheme->config.skip_repeated_context) {
        uint64_t fingerprint =
            tm_wm_prf(&scheme->subkey, TM_WM_DOMAIN_DIPMARK, context, h, TM_WM_FINGERPRINT_EXTRA);
        if (tm_wm_state_seen_before(state, fingerprint)) {
            tm_wm_draw(candidates, NULL, r);
            return;
        }
    }
    /* Scratch: PRF values, ids and indices of the candidates with p > 0,
     * their order, and the radix sort's two buffers, room for every
     * candidate (one pass over them, not a count first). */
    size_t cap = n_candidates, per = 3 * sizeof(uint64_t) + sizeof(int32_t) + 2 * sizeof(uint32_t);
    uint64_t *x = cap <= SIZE_MAX / per ? tm_wm_state_scratch(state, cap * per) : NULL;
    if (!x) {
        tm_wm_draw(candidates, NULL, r);
        return;
    }
    uint64_t *work = x + cap;
    int32_t *ids = (int32_t *)(void *)(work + 2 * cap);
    uint32_t *index = (uint32_t *)(void *)(ids + cap), *order = index + cap;
    double total = 0.0;
    size_t n = 0;
    for (size_t i = 0; i < n_candidates; i++) {
        const tm_token_data *d = &candidates->data[i];
        if (!(d->p > 0.0f)) continue;
        ids[n] = d->id;
        index[n++] = (uint32_t)i;
        total += d->p;
    }
    if (n == 0 || !(total > 0.0) || !isfinite(total)) {
        tm_wm_draw(candidates, NULL, r);
        return;
    }
    tm_wm_prf_template t;
    tm_wm_prf_template_init(&t, TM_WM_DOMAIN_DIPMARK, context, h, 1, 0);
    const int32_t *const slots[2] = {ids, NULL};
    tm_wm_prf_batch(&scheme->subkey, &t, slots, n, x);
    /* Ascending u = uniform(x), which orders as x >> 12; ties by id. */
    tm_wm_order_by_key(x, ids, n, 12, order, work);
    /* The candidates' places along the order, in place of the order: with
     * every candidate at p > 0 (no truncation), index is the identity. */
    if (n < n_candidates)
        for (size_t k = 0; k < n; k++) order[k] = index[order[k]];
    if (tm_wm_reference_paths())
        reweight_reference(candidates, order, n, total, scheme->config.alpha, r);
    else
        reweight(candidates, order, n, total, scheme->config.alpha, r, (double *)(void *)work);
}

static size_t dipmark_token_values(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context,
                                   int32_t token, double *values, size_t capacity) {
    size_t h = context_width(&scheme->config);
    /* A token without enough context was generated unwatermarked: unscored. */
    if (capacity < 1 || n_context < h || !context) return 0;
    double u = permutation_value(scheme, context + (n_context - h), h, token);
    values[0] = u >= TM_WM_DIPMARK_DETECTION_GAMMA ? 1.0 : 0.0;
    return 1;
}

const tm_wm_scheme_ops tm_wm_dipmark_ops = {TM_WM_STAGE_SELECTOR, dipmark_apply, dipmark_token_values, NULL, NULL};
