/* The detector: turns text into a verdict for one scheme and one or more
 * keys. It normalises and tokenizes the text, asks the scheme (watermark/)
 * for each token's secret values given its context, skips what must not be
 * scored (the prompt, tokens without full context, repeated (context, token)
 * pairs), computes the scheme's statistic with its exact p-value, optionally
 * finds the best-scoring window for a passage pasted into other text, and
 * picks the best of several keys with a family-wise correction. The secret
 * values come from the scheme's batched face (tm_wm_token_values_run: one
 * PRF batch per run of positions) where it has one, and the sums are
 * formed in the order of the token-by-token loop, so that every score and
 * p-value is the same to the last bit either way. It never touches a
 * model's weights or the forward pass. */
#include "tracemark/detect.h"

#include "detect_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

struct tm_detector {
    const tm_tokenizer *tokenizer;
    tm_wm_config config;
    tm_detect_options options;
    size_t n_keys;
    tm_wm_scheme **schemes;
};

void tm_detect_options_default(tm_detect_options *options) {
    memset(options, 0, sizeof *options);
    tm_normalize_options_default(&options->normalize);
    options->fpr = 1e-3;
    options->min_window = 25;
    options->ignore_repeated = true;
    options->permutations = 0; /* automatic: tm_detect_permutations_needed, at least 999 */
    options->sequential = true;
}

void tm_detector_free(tm_detector *detector) {
    if (!detector) return;
    for (size_t i = 0; i < detector->n_keys; i++) tm_wm_scheme_free(detector->schemes[i]);
    free(detector->schemes);
    free(detector);
}

size_t tm_detector_key_count(const tm_detector *detector) { return detector->n_keys; }

tm_status tm_detector_create(tm_detector **out, const tm_tokenizer *tokenizer, const tm_wm_config *config,
                             const tm_wm_key *const *keys, size_t n_keys, const tm_detect_options *options,
                             tm_error *err) {
    *out = NULL;
    if (n_keys == 0) return tm_error_set(err, TM_ERR_ARGUMENT, "no watermark key given");
    if (!(options->fpr > 0 && options->fpr < 1))
        return tm_error_set(err, TM_ERR_ARGUMENT, "false-positive rate %g must lie in (0, 1)", options->fpr);
    if (options->min_window < 1)
        return tm_error_set(err, TM_ERR_ARGUMENT, "minimum window %d must be positive", options->min_window);
    if (options->permutations < 0 || options->permutations > 1000000)
        return tm_error_set(err, TM_ERR_ARGUMENT, "permutations %d must lie in [1, 1000000] (0: automatic)",
                            options->permutations);
    if (config->kind == TM_WM_EXP_EDIT) {
        /* A permutation p never falls below K / (N + 1): refuse a test that can never detect. */
        int32_t needed = tm_detect_permutations_needed(options->fpr, n_keys);
        if (needed == 0)
            return tm_error_set(err, TM_ERR_LIMIT,
                                "EXP-edit detection at fpr %g with %zu keys needs more than 1000000 permutations",
                                options->fpr, n_keys);
        if (options->permutations > 0 && options->permutations < needed)
            return tm_error_set(err, TM_ERR_ARGUMENT,
                                "%d permutations can never detect at fpr %g with %zu key%s (the smallest p is "
                                "%zu/(N+1)): use at least %d",
                                options->permutations, options->fpr, n_keys, n_keys == 1 ? "" : "s", n_keys, needed);
        if (options->windows)
            return tm_error_set(err, TM_ERR_ARGUMENT,
                                "windows are not available for EXP-edit/ITS-edit detection: its statistic is an "
                                "alignment of the whole text, not a sum over tokens; detect without --window");
    }
    tm_detector *d = tm_alloc_array(1, sizeof *d, err);
    if (!d) return TM_ERR_NOMEM;
    d->tokenizer = tokenizer;
    d->config = *config;
    d->options = *options;
    d->schemes = tm_alloc_array(n_keys, sizeof *d->schemes, err);
    if (!d->schemes) {
        free(d);
        return TM_ERR_NOMEM;
    }
    for (size_t i = 0; i < n_keys; i++) {
        tm_status status = tm_wm_scheme_create(&d->schemes[i], config, keys[i], err);
        if (status != TM_OK) {
            d->n_keys = i;
            tm_detector_free(d);
            return status;
        }
    }
    d->n_keys = n_keys;
    *out = d;
    return TM_OK;
}

/* ---- scoring ------------------------------------------------------------- */

/* A set of 64-bit fingerprints of (context, token) pairs: open addressing,
 * sized for every token of the text up front. */
typedef struct {
    uint64_t *slots;
    size_t mask;
} pair_set;

static bool pair_set_init(pair_set *set, size_t n, tm_error *err) {
    size_t capacity = 16;
    while (capacity < 2 * n + 2) capacity *= 2;
    set->slots = tm_alloc_array(capacity, sizeof(uint64_t), err);
    set->mask = capacity - 1;
    return set->slots != NULL;
}

/* True when the pair was there already; inserts it otherwise. */
static bool pair_set_seen(pair_set *set, uint64_t fingerprint) {
    fingerprint |= 1; /* 0 marks an empty slot */
    size_t slot = (size_t)(fingerprint >> 17) & set->mask;
    while (set->slots[slot]) {
        if (set->slots[slot] == fingerprint) return true;
        slot = (slot + 1) & set->mask;
    }
    set->slots[slot] = fingerprint;
    return false;
}

/* Per scored token: its index in the text and its contribution to the statistic. */
typedef struct {
    size_t *index;
    double *score;
    size_t n;
} scored_tokens;

/* z of a score sum over n scored tokens: the one formula the whole text
 * (finish_*) and every window (best_window) use. NAN when n = 0. */
static double score_z(const tm_wm_config *c, double gamma, double sum, double n) {
    if (!(n > 0)) return NAN;
    switch (c->kind) {
    case TM_WM_GUMBEL: return (sum - n) / sqrt(n);
    case TM_WM_SYNTHID: {
        double bits = n * c->layers;
        return (sum - bits / 2) / sqrt(bits / 4);
    }
    default: return (sum - gamma * n) / sqrt(n * gamma * (1 - gamma));
    }
}

static void finish_green(tm_detection *out, const tm_wm_config *c, double green, double n, double gamma) {
    out->statistic_name = "green_count";
    out->statistic = green;
    out->expected = gamma * n;
    out->z = score_z(c, gamma, green, n);
    out->log_p = tm_stat_binomial_log_sf((uint64_t)green, (uint64_t)n, gamma);
    out->p_normal = n > 0 ? tm_stat_p_from_log(tm_stat_normal_log_sf(out->z)) : NAN;
}

static void finish_gumbel(tm_detection *out, const tm_wm_config *c, double sum, double n) {
    out->statistic_name = "gumbel_score";
    out->statistic = sum;
    out->expected = n;
    out->z = score_z(c, NAN, sum, n);
    out->log_p = n > 0 ? tm_stat_gamma_log_q(n, sum) : 0;
    out->p_normal = n > 0 ? tm_stat_p_from_log(tm_stat_normal_log_sf(out->z)) : NAN;
}

static void finish_synthid(tm_detection *out, const tm_wm_config *c, double ones, double weighted, double n,
                           bool weighted_p) {
    int32_t layers = c->layers;
    double bits = n * layers;
    out->statistic_name = "mean_g";
    out->statistic = bits > 0 ? ones / bits : 0;
    out->expected = 0.5;
    out->z = score_z(c, NAN, ones, n);
    out->log_p = tm_stat_binomial_log_sf((uint64_t)ones, (uint64_t)bits, 0.5);
    out->p_normal = bits > 0 ? tm_stat_p_from_log(tm_stat_normal_log_sf(out->z)) : NAN;
    double weight_sum = 0;
    for (int32_t l = 0; l < layers; l++) weight_sum += tm_stat_synthid_weight(l, layers);
    out->weighted_score = n > 0 ? weighted / (n * weight_sum) : 0;
    /* The weighted tail can take tens of milliseconds: only where it is reported. */
    out->weighted_log_p = !weighted_p ? NAN
                          : n > 0     ? tm_stat_synthid_weighted_log_sf(out->weighted_score, (uint64_t)n, layers, NULL)
                                      : 0;
}

/* Statistic and exact p of scored tokens [from, to) of a window, for the scheme. */
static void window_statistic(const tm_wm_config *c, double gamma, const double *prefix, size_t from, size_t to,
                             double *statistic, double *z, double *log_p) {
    double sum = prefix[to] - prefix[from], n = (double)(to - from);
    tm_detection d;
    memset(&d, 0, sizeof d);
    switch (c->kind) {
    case TM_WM_GUMBEL: finish_gumbel(&d, c, sum, n); break;
    case TM_WM_SYNTHID: finish_synthid(&d, c, sum, 0, n, false); break;
    default: finish_green(&d, c, sum, n, gamma); break;
    }
    *statistic = d.statistic;
    *z = d.z;
    *log_p = d.log_p;
}

/* The window of scored tokens with the highest z (WinMax-style), and its
 * exact p corrected (Bonferroni) for the number of windows examined. The
 * windows form a grid: lengths grow geometrically (x1.1) from min_window and
 * starts step by an eighth of the length, so a passage of any length is
 * covered by a window that misses at most about a fifth of it, while the
 * correction stays near ln(8 n / min_window * 11) rather than ln(n^2 / 2). */
static tm_status best_window(const tm_detector *d, double gamma, const scored_tokens *scored, tm_detection *out,
                             tm_error *err) {
    size_t n = scored->n, min = (size_t)d->options.min_window;
    out->has_window = false;
    if (n < min) return TM_OK;
    double *prefix = tm_alloc_array(n + 1, sizeof *prefix, err);
    if (!prefix) return TM_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) prefix[i + 1] = prefix[i] + scored->score[i];
    double best_z = -INFINITY;
    size_t best_from = 0, best_to = n;
    uint64_t examined = 0;
    for (size_t length = min; length <= n;) {
        size_t stride = length / 8 > 1 ? length / 8 : 1;
        for (size_t from = 0;; from += stride) {
            if (from + length > n) from = n - length; /* the last window ends at the text's end */
            double z = score_z(&d->config, gamma, prefix[from + length] - prefix[from], (double)length);
            examined++;
            if (z > best_z) {
                best_z = z;
                best_from = from;
                best_to = from + length;
            }
            if (from + length >= n) break;
        }
        size_t next = (size_t)ceil((double)length * 1.1);
        if (length < n && next > n) next = n; /* always examine the whole text as one window too */
        length = next > length ? next : length + 1;
    }
    tm_detect_window *w = &out->window;
    w->start_token = scored->index[best_from];
    w->end_token = scored->index[best_to - 1] + 1;
    w->n_scored = best_to - best_from;
    window_statistic(&d->config, gamma, prefix, best_from, best_to, &w->statistic, &w->z, &w->log_p);
    w->n_windows = examined;
    w->log_p_corrected = fmin(0, w->log_p + log((double)examined));
    out->has_window = true;
    free(prefix);
    return TM_OK;
}

/* What the scheme's batched face gives for a run of positions. */
enum { RUN = 256 };
typedef struct {
    uint64_t fingerprints[RUN], bits[RUN];
    double values[RUN], token_weighted[RUN];
} run_scratch;

/* Set bits of x (a SWAR count: without -mpopcnt the builtin is a library call). */
static inline unsigned popcount64(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (unsigned)((x * 0x0101010101010101ULL) >> 56);
}

/* sums[i] = the weights of the set bits of bits[i] among the first nv,
 * added in layer order from +0.0 (an unset bit adds +0.0, which changes
 * nothing), as the per-token loop forms them. The positions are independent,
 * so they go side by side in SIMD lanes: each lane does the same IEEE adds
 * in the same order as the scalar loop. Hand-vectorised because these
 * dependent adds (m per token) were the largest cost of SynthID detection,
 * and the x86-64 baseline the project builds for has no 64-bit compares
 * for the compiler to use. */
static void weighted_sums_scalar(const uint64_t *bits, size_t n, size_t nv, const double *weights, double *sums) {
    for (size_t i = 0; i < n; i++) sums[i] = 0;
    for (size_t l = 0; l < nv; l++)
        for (size_t i = 0; i < n; i++) sums[i] += (double)(bits[i] >> l & 1) * weights[l];
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) static void weighted_sums_avx512(const uint64_t *bits, size_t n, size_t nv,
                                                                    const double *weights, double *sums) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i b0 = _mm512_loadu_si512((const void *)(bits + i)), b1 = _mm512_loadu_si512((const void *)(bits + i + 8));
        __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
        for (size_t l = 0; l < nv; l++) {
            __m512i bit = _mm512_set1_epi64((long long)((uint64_t)1 << l));
            __m512d w = _mm512_set1_pd(weights[l]);
            s0 = _mm512_mask_add_pd(s0, _mm512_test_epi64_mask(b0, bit), s0, w);
            s1 = _mm512_mask_add_pd(s1, _mm512_test_epi64_mask(b1, bit), s1, w);
        }
        _mm512_storeu_pd(sums + i, s0);
        _mm512_storeu_pd(sums + i + 8, s1);
    }
    if (i < n) weighted_sums_scalar(bits + i, n - i, nv, weights, sums + i);
}

__attribute__((target("avx2"))) static void weighted_sums_avx2(const uint64_t *bits, size_t n, size_t nv,
                                                                const double *weights, double *sums) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)(bits + i));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(const void *)(bits + i + 4));
        __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
        for (size_t l = 0; l < nv; l++) {
            __m256i bit = _mm256_set1_epi64x((long long)((uint64_t)1 << l));
            __m256d w = _mm256_set1_pd(weights[l]);
            __m256d m0 = _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(b0, bit), bit));
            __m256d m1 = _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(b1, bit), bit));
            s0 = _mm256_add_pd(s0, _mm256_and_pd(m0, w));
            s1 = _mm256_add_pd(s1, _mm256_and_pd(m1, w));
        }
        _mm256_storeu_pd(sums + i, s0);
        _mm256_storeu_pd(sums + i + 4, s1);
    }
    if (i < n) weighted_sums_scalar(bits + i, n - i, nv, weights, sums + i);
}
#endif

void tm_detect_weighted_sums(const uint64_t *bits, size_t n, size_t nv, const double *weights, double *sums,
                             int simd) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (simd >= 2 && tm_cpu_has(TM_CPU_AVX512F)) {
        weighted_sums_avx512(bits, n, nv, weights, sums);
        return;
    }
    if (simd >= 1 && tm_cpu_has(TM_CPU_AVX2)) {
        weighted_sums_avx2(bits, n, nv, weights, sums);
        return;
    }
#else
    (void)simd;
#endif
    weighted_sums_scalar(bits, n, nv, weights, sums);
}

/* The one scoring loop, for a run of n consecutive positions whose secret
 * values are in r (index: the first one's, less the prompt): skip a repeated
 * pair, else add the token's score. Both faces of a scheme end here, the
 * batched one (a run of up to RUN positions) and the token-by-token one (a
 * run of one), so every sum is formed by the same adds in the same order.
 * SynthID's weighted sums are formed for every position of the run first,
 * positions side by side rather than one long chain of dependent adds (each
 * position's sum still adds its layers in order). */
static void score_run(const tm_detector *d, run_scratch *r, size_t n, size_t nv, const double *weights, size_t index,
                      pair_set *seen, scored_tokens *scored, double *total, double *weighted, tm_detection *out) {
    tm_wm_kind kind = d->config.kind;
    if (kind == TM_WM_SYNTHID) tm_detect_weighted_sums(r->bits, n, nv, weights, r->token_weighted, 2);
    for (size_t i = 0; i < n; i++) {
        if (d->options.ignore_repeated && pair_set_seen(seen, r->fingerprints[i])) {
            out->n_ignored_repeated++;
            continue;
        }
        double score;
        if (kind == TM_WM_GUMBEL) {
            score = -log1p(-r->values[i]);
        } else if (kind == TM_WM_SYNTHID) {
            score = (double)popcount64(r->bits[i]); /* the sum of nv values 0 and 1, exact */
            *weighted += r->token_weighted[i];
        } else {
            score = r->values[i];
        }
        *total += score;
        scored->index[scored->n] = index + i;
        scored->score[scored->n++] = score;
    }
}

/* Position i's values token by token, into slot 0 of r, for a scheme without
 * the batched face: false when the scheme gives it none (no full context). */
static bool token_values_one(const tm_wm_scheme *scheme, const int32_t *tokens, size_t i, size_t h, run_scratch *r,
                             size_t *nv) {
    double values[TM_WM_LAYERS_MAX];
    const int32_t *context = tokens + i - h;
    *nv = tm_wm_token_values(scheme, h ? context : tokens + i, h, tokens[i], values, TM_WM_LAYERS_MAX);
    if (*nv == 0 || *nv > TM_WM_LAYERS_MAX) return false;
    r->fingerprints[0] = tm_wm_token_fingerprint(scheme, context, h, tokens[i]);
    r->values[0] = values[0];
    r->bits[0] = 0;
    for (size_t l = 0; l < *nv; l++)
        if (values[l] == 1.0) r->bits[0] |= (uint64_t)1 << l;
    return true;
}

/* Family-wise correction for K keys (Bonferroni): the decision and the
 * reported family p of one key's result. A permutation p is a ratio of
 * integers (e + 1) / (N + 1) compared with a decimal fpr: the comparison
 * allows for the rounding of fpr (relative 1e-9), so that N + 1 = K / fpr
 * permutations detect at the floor (documented in docs/detect-spec.md). */
static void apply_key_correction(const tm_detector *d, tm_detection *out) {
    double log_k = log((double)d->n_keys);
    out->n_keys = d->n_keys;
    out->log_p_family = fmin(0, out->log_p_decision + log_k);
    double threshold = log(d->options.fpr) + (out->p_resolution > 0 ? 1e-9 : 0);
    out->detected = out->log_p_family <= threshold;
    out->weighted_log_p_family = isnan(out->weighted_log_p) ? NAN : fmin(0, out->weighted_log_p + log_k);
}

static tm_status detect_tokens(const tm_detector *d, size_t key_index, const int32_t *tokens, size_t n_tokens,
                               size_t n_prompt, bool weighted_p, tm_detection *out, tm_error *err) {
    memset(out, 0, sizeof *out);
    if (key_index >= d->n_keys) return tm_error_set(err, TM_ERR_ARGUMENT, "key index %zu out of range", key_index);
    if (n_prompt > n_tokens) return tm_error_set(err, TM_ERR_ARGUMENT, "prompt longer than the text");
    int32_t vocab = tm_tokenizer_vocab_size(d->tokenizer);
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            return tm_error_set(err, TM_ERR_ARGUMENT, "token id %d at index %zu is outside the vocabulary (0..%d)",
                                tokens[i], i, vocab - 1);
    const tm_wm_scheme *scheme = d->schemes[key_index];
    const tm_wm_config *c = &d->config;
    out->kind = c->kind;
    snprintf(out->key_id, sizeof out->key_id, "%s", tm_wm_scheme_key_id(scheme));
    tm_wm_config_describe(c, out->parameters, sizeof out->parameters);
    snprintf(out->normalization, sizeof out->normalization, "%s", tm_normalize_options_describe(&d->options.normalize));
    out->n_tokens = n_tokens - n_prompt;
    out->n_prompt = n_prompt;
    out->z = out->p_normal = out->weighted_score = out->weighted_log_p = out->weighted_log_p_family = NAN;

    if (c->kind == TM_WM_EXP_EDIT) {
        tm_status status = tm_detect_exp_edit(scheme, tokens + n_prompt, n_tokens - n_prompt, &d->options,
                                              d->n_keys, out, err);
        if (status != TM_OK) return status;
    } else {
        size_t h = tm_wm_scheme_context_needed(scheme);
        double gamma = tm_wm_scheme_null_green_rate(scheme);
        pair_set seen = {0};
        scored_tokens scored = {0};
        run_scratch *r = tm_alloc_array(1, sizeof *r, err);
        scored.index = tm_alloc_array(n_tokens + 1, sizeof *scored.index, err);
        scored.score = tm_alloc_array(n_tokens + 1, sizeof *scored.score, err);
        if (!r || !scored.index || !scored.score ||
            (d->options.ignore_repeated && !pair_set_init(&seen, n_tokens, err))) {
            free(r);
            free(scored.index);
            free(scored.score);
            free(seen.slots);
            return TM_ERR_NOMEM;
        }
        double weights[TM_WM_LAYERS_MAX], total = 0, weighted = 0;
        for (int32_t l = 0; c->kind == TM_WM_SYNTHID && l < c->layers && l < TM_WM_LAYERS_MAX; l++)
            weights[l] = tm_stat_synthid_weight(l, c->layers);
        /* Only positions with their full context of h tokens are scored
         * (the prompt's tokens count as context): a run at a time where the
         * scheme has a batched face, token by token otherwise. */
        size_t first = n_prompt > h ? n_prompt : h;
        out->n_ignored_context += (first < n_tokens ? first : n_tokens) - n_prompt;
        size_t nv = first < n_tokens ? tm_wm_token_values_run(scheme, tokens, first,
                                                              first + RUN <= n_tokens ? RUN : n_tokens - first,
                                                              r->fingerprints, r->bits, r->values)
                                     : 0;
        if (nv > 0 && nv <= TM_WM_LAYERS_MAX) {
            for (size_t start = first; start < n_tokens; start += RUN) {
                size_t n = n_tokens - start < RUN ? n_tokens - start : RUN;
                if (start > first) tm_wm_token_values_run(scheme, tokens, start, n, r->fingerprints, r->bits, r->values);
                score_run(d, r, n, nv, weights, start - n_prompt, &seen, &scored, &total, &weighted, out);
            }
        } else {
            for (size_t i = first; i < n_tokens; i++) {
                if (!token_values_one(scheme, tokens, i, h, r, &nv)) out->n_ignored_context++;
                else score_run(d, r, 1, nv, weights, i - n_prompt, &seen, &scored, &total, &weighted, out);
            }
        }
        free(r);
        out->n_scored = scored.n;
        double n = (double)scored.n;
        if (c->kind == TM_WM_GUMBEL) finish_gumbel(out, c, total, n);
        else if (c->kind == TM_WM_SYNTHID) finish_synthid(out, c, total, weighted, n, weighted_p);
        else finish_green(out, c, total, n, gamma);
        tm_status status = d->options.windows ? best_window(d, gamma, &scored, out, err) : TM_OK;
        free(scored.index);
        free(scored.score);
        free(seen.slots);
        if (status != TM_OK) return status;
    }
    out->p = tm_stat_p_from_log(out->log_p);
    out->log_p_decision = out->log_p;
    if (out->has_window) out->log_p_decision = fmin(0, fmin(out->log_p, out->window.log_p_corrected) + log(2.0));
    apply_key_correction(d, out);
    return TM_OK;
}

tm_status tm_detect_tokens(const tm_detector *d, size_t key_index, const int32_t *tokens, size_t n_tokens,
                           size_t n_prompt, tm_detection *out, tm_error *err) {
    return detect_tokens(d, key_index, tokens, n_tokens, n_prompt, true, out, err);
}

/* ---- text ------------------------------------------------------------------ */

/* Byte offset in the normalised text where each token's text starts
 * (offsets[n] = the end), from the lengths of the decoded pieces. */
static size_t *token_offsets(const tm_tokenizer *tokenizer, const int32_t *ids, size_t n, tm_error *err) {
    size_t *offsets = tm_alloc_array(n + 1, sizeof *offsets, err);
    size_t capacity = tm_tokenizer_max_piece_size(tokenizer) + TM_DETOKENIZE_MAX;
    char *piece = malloc(capacity);
    if (!offsets || !piece) {
        free(offsets);
        free(piece);
        if (err && !err->code) tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    tm_detokenizer detokenizer;
    tm_detokenizer_init(&detokenizer, tokenizer);
    size_t position = 0;
    for (size_t i = 0; i < n; i++) {
        offsets[i] = position;
        position += tm_detokenizer_push(&detokenizer, ids[i], piece, capacity);
    }
    offsets[n] = position + tm_detokenizer_flush(&detokenizer, piece, capacity);
    free(piece);
    return offsets;
}

/* Map a window's token range to bytes and characters of the text as given. */
static void locate_window(tm_detect_window *w, const size_t *token_bytes, size_t n_text_tokens,
                          const size_t *normalized_to_input, size_t normalized_size, const char *text, size_t size) {
    size_t start = token_bytes[w->start_token < n_text_tokens ? w->start_token : n_text_tokens];
    size_t end = token_bytes[w->end_token < n_text_tokens ? w->end_token : n_text_tokens];
    if (start > normalized_size) start = normalized_size;
    if (end > normalized_size) end = normalized_size;
    w->start_byte = normalized_to_input[start];
    w->end_byte = normalized_to_input[end];
    if (w->end_byte > size) w->end_byte = size;
    w->start_char = tm_utf8_count_chars(text, w->start_byte);
    w->end_char = tm_utf8_count_chars(text, w->end_byte);
}

tm_status tm_detect_text(const tm_detector *d, const char *text, size_t size, const char *prompt, tm_detection *out,
                         tm_error *err) {
    memset(out, 0, sizeof *out);
    char *normalized = NULL, *normalized_prompt = NULL;
    size_t normalized_size = 0, prompt_size = 0, *to_input = NULL, *token_bytes = NULL;
    int32_t *text_ids = NULL, *prompt_ids = NULL, *ids = NULL;
    size_t n_text = 0, n_prompt = 0;
    /* The byte map back to the input only matters for reporting a window. */
    tm_status status = tm_text_normalize(text, size, &d->options.normalize, &normalized, &normalized_size,
                                         d->options.windows ? &to_input : NULL, err);
    if (status == TM_OK && prompt)
        status = tm_text_normalize(prompt, strlen(prompt), &d->options.normalize, &normalized_prompt, &prompt_size, NULL, err);
    if (status == TM_OK)
        status = tm_tokenizer_encode(d->tokenizer, normalized, normalized_size, false, &text_ids, &n_text, err);
    /* The prompt as generate encodes it: BOS in front only where the
     * tokenizer adds one (Qwen2's GGUFs say add_bos_token = false), so that
     * the history of the first text tokens is the one generation had. */
    if (status == TM_OK && prompt)
        status = tm_tokenizer_encode(d->tokenizer, normalized_prompt, prompt_size, tm_tokenizer_adds_bos(d->tokenizer),
                                     &prompt_ids, &n_prompt, err);
    if (status == TM_OK && n_text == 0) status = tm_error_set(err, TM_ERR_ARGUMENT, "the text is empty: nothing to score");
    if (status == TM_OK && !(ids = tm_alloc_array(n_text + n_prompt, sizeof *ids, err))) status = TM_ERR_NOMEM;
    if (status == TM_OK) {
        if (n_prompt) memcpy(ids, prompt_ids, n_prompt * sizeof *ids);
        memcpy(ids + n_prompt, text_ids, n_text * sizeof *ids);
        tm_detection candidate;
        for (size_t k = 0; status == TM_OK && k < d->n_keys; k++) {
            status = detect_tokens(d, k, ids, n_text + n_prompt, n_prompt, d->n_keys == 1, &candidate, err);
            if (status == TM_OK && (k == 0 || candidate.log_p_decision < out->log_p_decision)) {
                *out = candidate;
                out->best_key = k;
            }
        }
    }
    if (status == TM_OK) {
        /* The weighted tail is computed once, for the best key only. */
        if (out->kind == TM_WM_SYNTHID && d->n_keys > 1)
            out->weighted_log_p = out->n_scored > 0 ? tm_stat_synthid_weighted_log_sf(
                                                          out->weighted_score, out->n_scored, d->config.layers, NULL)
                                                    : 0;
        apply_key_correction(d, out);
        if (out->has_window) {
            token_bytes = token_offsets(d->tokenizer, text_ids, n_text, err);
            if (!token_bytes) status = TM_ERR_NOMEM;
            else locate_window(&out->window, token_bytes, n_text, to_input, normalized_size, text, size);
        }
    }
    free(token_bytes);
    free(ids);
    free(prompt_ids);
    free(text_ids);
    free(to_input);
    free(normalized_prompt);
    free(normalized);
    return status;
}
