/* Tests for DiPmark (watermark/dipmark.c) against outside references: the
 * spec's test vectors from docs/schemes/dipmark.md, computed by the
 * independent Python reference docs/reference/schemes_kgw.py (constants
 * here); the alpha-reweight against the paper's formula on a hand-computed
 * example; distortion-freeness (over many keys the drawn tokens follow P, by
 * a chi-square test whose critical value is derived below); the
 * skip_repeated_context path; the detector's green half; and determinism.
 * No timing is asserted. */
#include "tracemark/watermark.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distortion_free_testing.h"
#include "fixtures.h"

/* ---- helpers ------------------------------------------------------------- */

static tm_wm_config dipmark_config(void) {
    tm_wm_config c;
    tm_wm_config_default(&c, TM_WM_DIPMARK);
    c.context_width = 1; /* the spec vectors' settings, whatever the defaults become */
    c.alpha = 0.45;
    c.skip_repeated_context = true;
    return c;
}

/* Candidates 0..n-1 with logits ln p (the softmax gives p back). */
static tm_candidates candidates_from_p(tm_token_data *data, const double *p, size_t n) {
    for (size_t i = 0; i < n; i++) data[i] = (tm_token_data){(int32_t)i, (float)log(p[i]), 0.0f};
    return (tm_candidates){data, n, false, -1};
}

static float p_of(const tm_candidates *c, int32_t id) {
    for (size_t i = 0; i < c->size; i++)
        if (c->data[i].id == id) return c->data[i].p;
    cr_assert_fail("token %d missing", id);
    return 0;
}

/* ---- spec vectors (docs/schemes/dipmark.md, from schemes_kgw.py) -------------- */

Test(dipmark, spec_vectors) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = dipmark_config();
    char info[256];
    tm_wm_config_describe(&config, info, sizeof info);
    cr_assert_str_eq(info, "dipmark;h=1;alpha=0.45000000000000001");
    tm_wm_subkey subkey = wm_test_subkey(&config, key);
    cr_assert_eq(subkey.k0, 0x35202a74b98a5457ULL);
    cr_assert_eq(subkey.k1, 0xf386a748bd9c693fULL);
    static const struct {
        int32_t context, token;
        double u;
        int green;
    } vectors[] = {
        {42, 0, 0.99820484265278553, 1},  {42, 1, 0.050428838924636232, 0}, {42, 2, 0.61788295638107626, 1},
        {42, 3, 0.741042699416535, 1},  {7, 100, 0.76552650823629331, 1},  {31999, 31999, 0.32985875983073731, 0},
    };
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    cr_assert_eq(tm_wm_scheme_stage(scheme), TM_WM_STAGE_SELECTOR);
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        int32_t tokens[2] = {vectors[i].context, vectors[i].token};
        cr_assert_eq(tm_wm_uniform(tm_wm_prf(&subkey, 0x06, tokens, 2, 0)), vectors[i].u, "vector %zu", i);
        cr_assert_eq(wm_test_green(scheme, &vectors[i].context, 1, vectors[i].token), vectors[i].green,
                     "vector %zu", i);
    }
    int32_t context = 42;
    cr_assert_eq(tm_wm_prf(&subkey, 0x06, &context, 1, 0xFFFFFFFFu), 0x518ff0f55c219a51ULL, "context fingerprint");
    double value;
    cr_assert_eq(tm_wm_token_values(scheme, NULL, 0, 1, &value, 1), 0, "no context, unscored");
    cr_assert_eq(tm_wm_token_values(scheme, &context, 1, 1, &value, 0), 0, "no room, no value");
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

/* The hand-computed example of docs/schemes/dipmark.md: after context [42]
 * the order by u is 1, 2, 3, 0 (u = 0.050, 0.618, 0.741, 0.998), so with
 * P = (0.1, 0.2, 0.3, 0.4) the cumulative F along the order is 0.2, 0.5,
 * 0.9, 1.0; g(F) = max(F - 0.45, 0) + max(F - 0.55, 0) is 0, 0.05, 0.8, 1;
 * P'(1) = 0, P'(2) = 0.05, P'(3) = 0.75, P'(0) = 0.2. */
Test(dipmark, reweight_matches_hand_computed_example) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = dipmark_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampler *sampler = tm_wm_sampler(scheme, 9);
    sampler->interface->accept(sampler, 42);
    double p[4] = {0.1, 0.2, 0.3, 0.4};
    tm_token_data data[4];
    for (int draw = 0; draw < 50; draw++) {
        tm_candidates c = candidates_from_p(data, p, 4);
        sampler->interface->apply(sampler, &c);
        cr_assert_float_eq(p_of(&c, 0), 0.20f, 1e-6);
        cr_assert_float_eq(p_of(&c, 1), 0.00f, 1e-6);
        cr_assert_float_eq(p_of(&c, 2), 0.05f, 1e-6);
        cr_assert_float_eq(p_of(&c, 3), 0.75f, 1e-6);
        cr_assert(c.selected == 0 || c.selected == 2 || c.selected == 3, "never a token of P' = 0");
        sampler->interface->reset(sampler); /* forget the context, keep the reweight */
        sampler->interface->accept(sampler, 42);
    }
    tm_sampler_free(sampler);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

/* For random distributions and contexts, P' is a distribution (non-negative,
 * sums to 1), and the stage draws only tokens with P' > 0. */
Test(dipmark, reweighted_distribution_sums_to_one) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = dipmark_config();
    config.skip_repeated_context = false;
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampler *sampler = tm_wm_sampler(scheme, 1);
    enum { N = 300 };
    tm_token_data data[N];
    uint64_t rng = 17;
    for (int round = 0; round < 200; round++) {
        sampler->interface->accept(sampler, (int32_t)(wm_test_lcg(&rng) % 32000));
        size_t n = 1 + wm_test_lcg(&rng) % N;
        for (size_t i = 0; i < n; i++)
            data[i] = (tm_token_data){(int32_t)i, (float)(wm_test_lcg(&rng) % 2000) / 200.0f, 0.0f};
        tm_candidates c = {data, n, false, -1};
        sampler->interface->apply(sampler, &c);
        double total = 0;
        for (size_t i = 0; i < n; i++) {
            cr_assert(c.data[i].p >= 0.0f);
            total += c.data[i].p;
        }
        cr_assert_float_eq(total, 1.0, 1e-5, "round %d: total %.9f", round, total);
        cr_assert_gt(p_of(&c, c.selected), 0.0f);
    }
    tm_sampler_free(sampler);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

/* Distortion-freeness: averaged over keys (uniformly random permutations)
 * P' equals P, so tokens drawn with many keys and contexts follow P. 400
 * keys (seeded_key 0..399, pseudo-random and fixed, so the verdict is the same
 * on every run) x 50 contexts = 20,000 draws from P = (0.05, 0.15, 0.2, 0.25, 0.35);
 * Pearson's statistic then has a chi-square law with 4 degrees of freedom,
 * whose survival function is exactly e^{-x/2} (1 + x/2); solving
 * e^{-x/2} (1 + x/2) = 0.001 gives x = 18.467 (p > 0.001 passes). The
 * watermarked tokens' own per-key distribution P' is far from P (the hand
 * example above), so this checks the averaging, not a no-op. */
Test(dipmark, distortion_free_over_keys) {
    double p[5] = {0.05, 0.15, 0.2, 0.25, 0.35};
    double counts[5] = {0};
    tm_wm_config config = dipmark_config();
    config.skip_repeated_context = false;
    size_t draws = 0;
    for (int k = 0; k < 400; k++) {
        tm_wm_key *key = wm_test_seeded_key((uint32_t)k);
        tm_wm_scheme *scheme = wm_test_scheme(&config, key);
        tm_sampler *sampler = tm_wm_sampler(scheme, (uint64_t)k);
        for (int32_t context = 0; context < 50; context++) {
            sampler->interface->accept(sampler, 1000 + context);
            tm_token_data data[5];
            tm_candidates c = candidates_from_p(data, p, 5);
            sampler->interface->apply(sampler, &c);
            cr_assert(c.selected >= 0 && c.selected < 5);
            counts[c.selected] += 1;
            draws++;
        }
        tm_sampler_free(sampler);
        tm_wm_scheme_free(scheme);
        tm_wm_key_free(key);
    }
    double chi2 = 0;
    for (int i = 0; i < 5; i++) {
        double expected = p[i] * (double)draws;
        chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
    }
    cr_assert_lt(chi2, 18.467, "chi-square %.3f over %zu draws", chi2, draws);
}

/* skip_repeated_context: the second time a context comes, P is sampled
 * unchanged (the candidates keep the softmax); without the option, the
 * reweight applies again. */
Test(dipmark, repeated_context_samples_plainly) {
    tm_wm_key *key = wm_test_master_key();
    double p[4] = {0.1, 0.2, 0.3, 0.4};
    for (int skip = 0; skip < 2; skip++) {
        tm_wm_config config = dipmark_config();
        config.skip_repeated_context = skip;
        tm_wm_scheme *scheme = wm_test_scheme(&config, key);
        tm_sampler *sampler = tm_wm_sampler(scheme, 2);
        tm_token_data data[4];
        for (int time = 0; time < 2; time++) {
            sampler->interface->accept(sampler, 42);
            tm_candidates c = candidates_from_p(data, p, 4);
            sampler->interface->apply(sampler, &c);
            bool plain = skip && time == 1;
            cr_assert_float_eq(p_of(&c, 1), plain ? 0.2f : 0.0f, 1e-6, "skip %d time %d", skip, time);
            cr_assert_float_eq(p_of(&c, 3), plain ? 0.4f : 0.75f, 1e-6, "skip %d time %d", skip, time);
        }
        /* After reset the context is new again. */
        sampler->interface->reset(sampler);
        sampler->interface->accept(sampler, 42);
        tm_candidates c = candidates_from_p(data, p, 4);
        sampler->interface->apply(sampler, &c);
        cr_assert_float_eq(p_of(&c, 1), 0.0f, 1e-6);
        tm_sampler_free(sampler);
        tm_wm_scheme_free(scheme);
    }
    tm_wm_key_free(key);
}

/* Without history there is no permutation: P is sampled unchanged. */
Test(dipmark, no_history_samples_plainly) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = dipmark_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampler *sampler = tm_wm_sampler(scheme, 2);
    double p[4] = {0.1, 0.2, 0.3, 0.4};
    tm_token_data data[4];
    tm_candidates c = candidates_from_p(data, p, 4);
    sampler->interface->apply(sampler, &c);
    cr_assert_float_eq(p_of(&c, 1), 0.2f, 1e-6);
    cr_assert(c.selected >= 0 && c.selected < 4);
    tm_sampler_free(sampler);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

/* Simulated generation through the chain (top-k 50 before the selector) over
 * a flat-ish distribution: P' puts mass g(1/2) - g(0) = 0.05 on the lower
 * half of the permutation, so far more than half of the tokens land in the
 * detector's green upper half (the null's 0.5 + 4.5 sigma over 400 is 0.61). */
static double generated_green_fraction(uint64_t seed, int32_t *out, size_t n) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = dipmark_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    params.seed = seed;
    params.top_k = 50;
    static const int32_t prefix[] = {1};
    double fraction = wm_test_generate_green_fraction(scheme, true, &params, prefix, 1, out, n);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
    return fraction;
}

Test(dipmark, generation_is_mostly_green) {
    double fraction = generated_green_fraction(11, NULL, 400);
    cr_assert_gt(fraction, 0.75, "green fraction %.3f", fraction);
}

Test(dipmark, same_key_seed_and_context_give_the_same_tokens) {
    int32_t a[100], b[100], c[100];
    generated_green_fraction(3, a, 100);
    generated_green_fraction(3, b, 100);
    generated_green_fraction(4, c, 100);
    cr_assert_arr_eq(a, b, sizeof a);
    cr_assert(memcmp(a, c, sizeof a) != 0);
}

/* The check on a real model: over many keys, DiPmark's next token on
 * a fixed stories260K context follows the model's own distribution. */
Test(dipmark, distortion_free_on_stories260K, .timeout = 120) {
    tm_wm_config config;
    tm_wm_config_default(&config, TM_WM_DIPMARK);
    wm_test_assert_distortion_free_on_stories(&config, "dipmark, stories260K top-20");
}
