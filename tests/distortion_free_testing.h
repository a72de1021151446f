/* Helpers shared by the tests of the distortion-free schemes (test_gumbel.c,
 * test_synthid.c, test_exp_edit.c, test_dipmark.c), on top of the keys and
 * schemes of watermark_testing.h: candidates from given probabilities, one
 * watermarked selection through the public sampler, the chi-square test
 * of "the selection follows p" with tabulated critical values, a real
 * next-token distribution from stories260K, the two distortion-free
 * checks built from them, and simulated text with edits for the EXP/ITS-edit
 * detection tests. Static functions only, so each
 * test file stays one translation unit; nothing here asserts on behalf of the
 * code under test except where a helper says so. */
#ifndef TRACEMARK_TEST_DISTORTION_FREE_TESTING_H
#define TRACEMARK_TEST_DISTORTION_FREE_TESTING_H

#include "fixtures.h"
#include "tracemark/watermark.h"
#include "watermark_testing.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- candidates and one selection ---------------------------------------------- */

/* The spec's small distribution (docs/schemes/ pages, "Test vectors"). */
static const int32_t wm_test_ids[] = {3, 17, 42, 99, 250, 511};
static const double wm_test_probs[] = {0.40, 0.25, 0.15, 0.10, 0.06, 0.04};
enum { WM_TEST_N = 6 };
static const int32_t wm_test_context[] = {1, 2, 3, 4, 5, 6};
enum { WM_TEST_CONTEXT_N = 6 };

/* Candidates whose softmax is probs (logit = log p), unsorted, in storage. */
static inline tm_candidates wm_test_candidates(tm_token_data *storage, const int32_t *ids, const double *probs, size_t n) {
    for (size_t i = 0; i < n; i++) storage[i] = (tm_token_data){ids[i], (float)log(probs[i]), 0.0f};
    return (tm_candidates){storage, n, false, -1};
}

static inline void wm_test_apply(tm_sampler *sampler, tm_candidates *candidates) {
    sampler->interface->apply(sampler, candidates);
}

static inline void wm_test_accept(tm_sampler *sampler, const int32_t *tokens, size_t n) {
    for (size_t i = 0; i < n; i++) sampler->interface->accept(sampler, tokens[i]);
}

/* One selection by a fresh watermark sampler (seed) after the context. */
static inline int32_t wm_test_select(tm_wm_scheme *scheme, uint64_t seed, const int32_t *context, size_t n_context,
                              const int32_t *ids, const double *probs, size_t n) {
    tm_sampler *sampler = tm_wm_sampler(scheme, seed);
    cr_assert_not_null(sampler);
    wm_test_accept(sampler, context, n_context);
    tm_token_data storage[64];
    cr_assert(n <= 64);
    tm_candidates candidates = wm_test_candidates(storage, ids, probs, n);
    wm_test_apply(sampler, &candidates);
    tm_sampler_free(sampler);
    return candidates.selected;
}

static inline size_t wm_test_index_of(const int32_t *ids, size_t n, int32_t id) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return i;
    cr_assert_fail("token %d is not a candidate", (int)id);
    return 0;
}

/* The edge cases every watermark selector must survive: no candidates
 * (nothing is selected), a single candidate (it is selected), tokens of
 * probability zero (never selected over `draws` draws; with vary_history a
 * random token is accepted before each draw, so the secret values change),
 * and NaN logits from a broken upstream stage (still a selection, no crash). */
static inline void wm_test_degenerate_candidates(tm_sampler *sampler, int draws, bool vary_history) {
    tm_token_data storage[WM_TEST_N];
    tm_candidates empty = {storage, 0, false, -1};
    wm_test_apply(sampler, &empty);
    cr_assert_eq(empty.selected, -1);
    tm_candidates one = wm_test_candidates(storage, wm_test_ids + 2, wm_test_probs + 2, 1);
    wm_test_apply(sampler, &one);
    cr_assert_eq(one.selected, 42);
    uint64_t x = 5;
    for (int t = 0; t < draws; t++) {
        if (vary_history) sampler->interface->accept(sampler, (int32_t)(wm_test_lcg(&x) % 512));
        tm_candidates c = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
        storage[0].logit = storage[3].logit = -INFINITY;
        wm_test_apply(sampler, &c);
        cr_assert(c.selected != 3 && c.selected != 99 && c.selected >= 0);
    }
    tm_candidates c = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
    for (size_t i = 0; i < WM_TEST_N; i++) storage[i].logit = NAN;
    wm_test_apply(sampler, &c);
    cr_assert(c.selected >= 0);
}

/* ---- chi-square goodness of fit ------------------------------------------------ */

/* Critical values of the chi-square distribution at significance 0.001
 * (upper tail), df = 1..40, as tabulated (e.g. NIST/SEMATECH e-Handbook
 * 1.3.6.7.4) and recomputed from the regularised incomplete gamma function:
 * a statistic above them means p < 0.001. */
static inline double wm_test_chi_square_critical(int df) {
    static const double table[] = {
        10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877, 29.588,
        31.264, 32.909, 34.528, 36.123, 37.697, 39.252, 40.790, 42.312, 43.820, 45.315,
        46.797, 48.268, 49.728, 51.179, 52.620, 54.052, 55.476, 56.892, 58.301, 59.703,
        61.098, 62.487, 63.870, 65.247, 66.619, 67.985, 69.346, 70.703, 72.055, 73.402};
    cr_assert(df >= 1 && df <= 40, "df %d outside the table", df);
    return table[df - 1];
}

/* Pearson's statistic of counts against trials * probs (probs sum to 1). Bins
 * with an expected count under 5 are pooled, from the least likely up, so
 * the chi-square approximation holds. Asserts p > 0.001. */
static inline void wm_test_assert_follows(const size_t *counts, const double *probs, size_t n, size_t trials,
                                   const char *what) {
    size_t order[64];
    cr_assert(n <= 64);
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = 1; i < n; i++) /* insertion sort, most likely first */
        for (size_t j = i; j > 0 && probs[order[j]] > probs[order[j - 1]]; j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    double statistic = 0.0, pooled_expected = 0.0, pooled_observed = 0.0;
    int bins = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        double expected = probs[i] * (double)trials;
        if (expected >= 5.0 && pooled_expected == 0.0) {
            statistic += (counts[i] - expected) * (counts[i] - expected) / expected;
            bins++;
        } else {
            pooled_expected += expected;
            pooled_observed += (double)counts[i];
        }
    }
    if (pooled_expected > 0.0) {
        statistic += (pooled_observed - pooled_expected) * (pooled_observed - pooled_expected) / pooled_expected;
        bins++;
    }
    double critical = wm_test_chi_square_critical(bins - 1);
    cr_assert(statistic < critical, "%s: chi-square %.3f with %d df exceeds %.3f (p < 0.001)", what, statistic,
              bins - 1, critical);
}

/* Frequencies of the selection over `trials` keys (wm_test_seeded_key 0..
 * trials-1), each with its own sampler seed, after the same context. */
static inline void wm_test_random_key_counts(const tm_wm_config *config, const int32_t *context, size_t n_context,
                                      const int32_t *ids, const double *probs, size_t n, size_t trials,
                                      size_t *counts) {
    memset(counts, 0, n * sizeof *counts);
    for (size_t t = 0; t < trials; t++) {
        tm_wm_key *key = wm_test_seeded_key((uint32_t)t);
        tm_wm_scheme *scheme = wm_test_scheme(config, key);
        int32_t chosen = wm_test_select(scheme, 1000 + t, context, n_context, ids, probs, n);
        counts[wm_test_index_of(ids, n, chosen)]++;
        tm_wm_scheme_free(scheme);
        tm_wm_key_free(key);
    }
}

/* ---- a real next-token distribution: stories260K -------------------------------- */

enum { WM_TEST_STORIES_TOP_K = 20 };
/* A prompt whose next-token distribution is spread (entropy 1.7 nats over the
 * top 20, every one expected at least 5 times in 20000 draws), so the
 * chi-square test sees all 20 bins. */
#define WM_TEST_STORIES_PROMPT "Lily and Tom went to the"

typedef struct {
    float *logits; /* full vocabulary after the prompt */
    int32_t n_vocab;
    int32_t *prompt;
    size_t n_prompt;
    int32_t ids[WM_TEST_STORIES_TOP_K]; /* the top-k tokens, most likely first */
    double probs[WM_TEST_STORIES_TOP_K]; /* their softmax restricted to the top k, in double */
} wm_test_stories;

/* Run stories260K on the prompt and keep the next-token logits. */
static inline void wm_test_stories_load(wm_test_stories *s, const char *prompt) {
    char *model_path = tm_fixture("models/stories260K.bin"), *tokenizer_path = tm_fixture("models/tok512.bin");
    tm_error err = {0};
    tm_model *model = NULL;
    tm_tokenizer *tokenizer = NULL;
    tm_context *context = NULL;
    cr_assert_eq(tm_model_load(&model, model_path, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_tokenizer(&tokenizer, model, tokenizer_path, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_context_create(&context, model, 0, 1, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_tokenizer_encode(tokenizer, prompt, strlen(prompt), true, &s->prompt, &s->n_prompt, &err), TM_OK,
                 "%s", err.message);
    const float *logits = NULL;
    cr_assert_eq(tm_context_eval(context, s->prompt, s->n_prompt, &logits, &err), TM_OK, "%s", err.message);
    s->n_vocab = tm_model_get_config(model)->n_vocab;
    s->logits = malloc((size_t)s->n_vocab * sizeof *s->logits);
    cr_assert_not_null(s->logits);
    memcpy(s->logits, logits, (size_t)s->n_vocab * sizeof *s->logits);
    /* The top k (larger logit first, then smaller id) and their softmax,
     * computed here by plain selection rather than by the chain. */
    double sum = 0.0;
    for (int k = 0; k < WM_TEST_STORIES_TOP_K; k++) {
        int32_t best = -1;
        for (int32_t i = 0; i < s->n_vocab; i++) {
            bool taken = false;
            for (int j = 0; j < k; j++) taken = taken || s->ids[j] == i;
            if (!taken && (best < 0 || s->logits[i] > s->logits[best])) best = i;
        }
        s->ids[k] = best;
        s->probs[k] = exp((double)s->logits[best] - (double)s->logits[s->ids[0]]);
        sum += s->probs[k];
    }
    for (int k = 0; k < WM_TEST_STORIES_TOP_K; k++) s->probs[k] /= sum;
    tm_context_free(context);
    tm_tokenizer_free(tokenizer);
    tm_model_free(model);
    free(model_path);
    free(tokenizer_path);
}

static inline void wm_test_stories_free(wm_test_stories *s) {
    free(s->logits);
    free(s->prompt);
}

/* Frequencies of the next token over `trials` keys (wm_test_seeded_key
 * 0..trials-1), each through the generator's own chain (top-k 20,
 * temperature 1) with the scheme as its selector, after the prompt was
 * accepted. */
static inline void wm_test_stories_counts(const tm_wm_config *config, const wm_test_stories *s, size_t trials,
                                   size_t *counts) {
    memset(counts, 0, WM_TEST_STORIES_TOP_K * sizeof *counts);
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    params.top_k = WM_TEST_STORIES_TOP_K;
    for (size_t t = 0; t < trials; t++) {
        tm_wm_key *key = wm_test_seeded_key((uint32_t)t);
        tm_wm_scheme *scheme = wm_test_scheme(config, key);
        params.seed = 5000 + t;
        tm_sampler_chain *chain = tm_sampler_chain_build(&params, NULL, tm_wm_sampler(scheme, params.seed));
        cr_assert_not_null(chain);
        for (size_t i = 0; i < s->n_prompt; i++) tm_sampler_chain_accept(chain, s->prompt[i]);
        int32_t chosen = tm_sampler_chain_sample(chain, s->logits, s->n_vocab);
        counts[wm_test_index_of(s->ids, WM_TEST_STORIES_TOP_K, chosen)]++;
        tm_sampler_chain_free(chain);
        tm_wm_scheme_free(scheme);
        tm_wm_key_free(key);
    }
}

/* ---- the distortion-free checks ------------------------------------------------ */

/* Over 20,000 fixed pseudo-random keys, the scheme's choice after the spec's
 * context follows the spec's small distribution (chi-square, p > 0.001). */
static inline void wm_test_assert_distortion_free_fixed(const tm_wm_config *config, const char *what) {
    size_t counts[WM_TEST_N], trials = 20000;
    wm_test_random_key_counts(config, wm_test_context, WM_TEST_CONTEXT_N, wm_test_ids, wm_test_probs, WM_TEST_N,
                              trials, counts);
    wm_test_assert_follows(counts, wm_test_probs, WM_TEST_N, trials, what);
}

/* The same on a real model: stories260K's next-token distribution (top 20). */
static inline void wm_test_assert_distortion_free_on_stories(const tm_wm_config *config, const char *what) {
    wm_test_stories stories;
    wm_test_stories_load(&stories, WM_TEST_STORIES_PROMPT);
    size_t counts[WM_TEST_STORIES_TOP_K], trials = 20000;
    wm_test_stories_counts(config, &stories, trials, counts);
    wm_test_assert_follows(counts, stories.probs, WM_TEST_STORIES_TOP_K, trials, what);
    wm_test_stories_free(&stories);
}

/* ---- simulated language-model text (the EXP/ITS-edit detection tests) ----------- */

enum { WM_TEST_TEXT_VOCAB = 512, WM_TEST_TEXT_CANDIDATES = 50 };

static inline double wm_test_uniform(uint64_t *x) { return ((double)wm_test_lcg(x) + 0.5) / 2147483648.0; }

/* Candidates: 50 distinct ids below 512 with logits 2 N(0, 1) (Box-Muller), a
 * spread next-token distribution like a language model's at temperature 1. */
static inline tm_candidates wm_test_spread_candidates(tm_token_data storage[WM_TEST_TEXT_CANDIDATES], uint64_t *x) {
    for (size_t i = 0; i < WM_TEST_TEXT_CANDIDATES; i++) {
        int32_t id;
        bool taken;
        do {
            id = (int32_t)(wm_test_lcg(x) % WM_TEST_TEXT_VOCAB);
            taken = false;
            for (size_t j = 0; j < i; j++) taken = taken || storage[j].id == id;
        } while (taken);
        double g = sqrt(-2.0 * log(wm_test_uniform(x))) * cos(6.283185307179586 * wm_test_uniform(x));
        storage[i] = (tm_token_data){id, (float)(2.0 * g), 0.0f};
    }
    return (tm_candidates){storage, WM_TEST_TEXT_CANDIDATES, false, -1};
}

/* m tokens chosen by the scheme's own sampler face over spread candidates. */
static inline void wm_test_watermarked_tokens(tm_wm_scheme *scheme, uint64_t sampler_seed, uint64_t data_seed,
                                              int32_t *out, size_t m) {
    tm_sampler *sampler = tm_wm_sampler(scheme, sampler_seed);
    cr_assert_not_null(sampler);
    uint64_t x = data_seed;
    tm_token_data storage[WM_TEST_TEXT_CANDIDATES];
    for (size_t t = 0; t < m; t++) {
        tm_candidates candidates = wm_test_spread_candidates(storage, &x);
        wm_test_apply(sampler, &candidates);
        cr_assert(candidates.selected >= 0);
        out[t] = candidates.selected;
        sampler->interface->accept(sampler, out[t]);
    }
    tm_sampler_free(sampler);
}

/* Each token deleted with probability rate, else preceded by a random
 * inserted token with probability rate; returns the new length. */
static inline size_t wm_test_edit_tokens(const int32_t *in, size_t m, int32_t *out, double rate, uint64_t seed) {
    uint64_t x = seed;
    size_t n = 0;
    for (size_t i = 0; i < m; i++) {
        double u = wm_test_uniform(&x);
        if (u < rate) continue;
        if (u < 2 * rate) out[n++] = (int32_t)(wm_test_lcg(&x) % WM_TEST_TEXT_VOCAB);
        out[n++] = in[i];
    }
    return n;
}

#endif
