/* Tests for the EXP-edit and ITS-edit watermarks (watermark/exp_edit.c)
 * against outside references: the spec's test vectors, which docs/reference/
 * schemes_distortion_free.py computes independently from docs/schemes/
 * exp-edit.md (key sequence values, the shift a seed gives, the tokens chosen
 * step by step); the decoders of Kuditipudi et al. 2023 recomputed from
 * tm_wm_xi and tm_wm_its_uniform (EXP: argmax xi^(1/p); ITS: inverse
 * transform at u in pi order); the distortion-free property over random keys (chi-square on a fixed
 * distribution and on stories260K's real next-token distribution); and for
 * EXP, Aaronson's expected score sum_w p_w (psi(1 + 1/p_w) + gamma). The
 * tests over keys use the fixed pseudo-random keys 0..N-1 of
 * wm_test_seeded_key, so each chi-square test (p > 0.001) gives the same
 * verdict on every run. */
#include "distortion_free_testing.h"

static tm_wm_config exp_config(tm_wm_decoder decoder) {
    tm_wm_config config;
    tm_wm_config_default(&config, TM_WM_EXP_EDIT);
    config.decoder = decoder;
    return config;
}

/* The shift the spec gives a sampler seed: xoshiro256**'s first output mod n. */
static int32_t shift_of(uint64_t seed, int32_t n) {
    tm_rng rng;
    tm_rng_seed(&rng, seed);
    return (int32_t)(tm_rng_next(&rng) % (uint64_t)n);
}

/* Apply `steps` times on the spec's candidates, accepting each choice. */
static void run_steps(tm_sampler *sampler, int steps, int32_t *chosen) {
    tm_token_data storage[WM_TEST_N];
    for (int s = 0; s < steps; s++) {
        tm_candidates candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
        wm_test_apply(sampler, &candidates);
        chosen[s] = candidates.selected;
        sampler->interface->accept(sampler, candidates.selected);
    }
}

/* EXP's choice at a position, recomputed from tm_wm_xi. */
static int32_t exp_choice(const tm_wm_scheme *scheme, int32_t position, const int32_t *ids, const double *probs,
                          size_t n) {
    size_t best = 0;
    double best_score = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double score = log(tm_wm_xi(scheme, position, ids[i])) / probs[i];
        if (score > best_score) best_score = score, best = i;
    }
    return ids[best];
}

/* ITS's choice at a position: order by eta (tm_wm_xi(.., w)), walk p's CDF to u. */
static int32_t its_choice(const tm_wm_scheme *scheme, int32_t position, const int32_t *ids, const double *probs,
                          size_t n) {
    size_t order[64];
    cr_assert(n <= 64);
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && tm_wm_xi(scheme, 0, ids[order[j]]) < tm_wm_xi(scheme, 0, ids[order[j - 1]]); j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    double u = tm_wm_its_uniform(scheme, position), cumulative = 0.0;
    for (size_t k = 0; k < n; k++) {
        cumulative += probs[order[k]];
        if (u < cumulative) return ids[order[k]];
    }
    return ids[order[n - 1]];
}

Test(exp_edit, spec_test_vectors_exp) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = exp_config(TM_WM_DECODER_EXP);
    char description[128];
    tm_wm_config_describe(&config, description, sizeof description);
    cr_assert_str_eq(description, "exp-edit;decoder=exp;n=256");
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    cr_assert_eq(tm_wm_scheme_stage(scheme), TM_WM_STAGE_SELECTOR);
    cr_assert_eq(tm_wm_xi(scheme, 0, 7), 0.5924752500317584);
    cr_assert_eq(tm_wm_xi(scheme, 255, 7), 0.9339892905443817);
    /* Positions wrap around the key sequence, both ways. */
    cr_assert_eq(tm_wm_xi(scheme, 256, 7), tm_wm_xi(scheme, 0, 7));
    cr_assert_eq(tm_wm_xi(scheme, -1, 7), tm_wm_xi(scheme, 255, 7));
    cr_assert_eq(tm_wm_xi(scheme, INT32_MIN, 7), tm_wm_xi(scheme, 0, 7)); /* -2^31 = -2^23 * 256 */
    cr_assert_eq(shift_of(42, 256), 22);
    tm_sampler *sampler = tm_wm_sampler(scheme, 42);
    int32_t chosen[3];
    run_steps(sampler, 3, chosen); /* rows 22, 23, 24 */
    cr_assert_eq(chosen[0], 17);
    cr_assert_eq(chosen[1], 17);
    cr_assert_eq(chosen[2], 3);
    tm_sampler_free(sampler);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(exp_edit, spec_test_vectors_its) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = exp_config(TM_WM_DECODER_ITS);
    char description[128];
    tm_wm_config_describe(&config, description, sizeof description);
    cr_assert_str_eq(description, "exp-edit;decoder=its;n=256");
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    cr_assert_eq(tm_wm_its_uniform(scheme, 0), 0.6785514830805567);   /* u_0 */
    cr_assert_eq(tm_wm_its_uniform(scheme, 255), 0.9793141376388411); /* u_255 */
    cr_assert_eq(tm_wm_its_uniform(scheme, -1), 0.9793141376388411);  /* positions wrap as in tm_wm_xi */
    cr_assert_eq(tm_wm_xi(scheme, 0, 7), 0.8662651729038128);    /* eta(7): the same at every position */
    cr_assert_eq(tm_wm_xi(scheme, 100, 7), 0.8662651729038128);
    /* pi orders the candidates 250, 511, 42, 17, 99, 3. */
    const int32_t pi[] = {250, 511, 42, 17, 99, 3};
    for (int i = 0; i + 1 < 6; i++) cr_assert(tm_wm_xi(scheme, 0, pi[i]) < tm_wm_xi(scheme, 0, pi[i + 1]));
    tm_sampler *sampler = tm_wm_sampler(scheme, 42);
    int32_t chosen[3];
    run_steps(sampler, 3, chosen);
    cr_assert_eq(chosen[0], 17);
    cr_assert_eq(chosen[1], 3);
    cr_assert_eq(chosen[2], 3);
    tm_sampler_free(sampler);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(exp_edit, detection_face_and_xi_on_bad_input) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = exp_config(TM_WM_DECODER_EXP);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    double values[4];
    cr_assert_eq(tm_wm_token_values(scheme, wm_test_context, WM_TEST_CONTEXT_N, 7, values, 4), 0);
    cr_assert(isnan(tm_wm_its_uniform(scheme, 0))); /* EXP has no per-position uniform */
    cr_assert(isnan(tm_wm_xi(scheme, 0, -1)));
    cr_assert(isnan(tm_wm_its_uniform(NULL, 0)));
    cr_assert(isnan(tm_wm_xi(NULL, 0, 7)));
    tm_wm_scheme_free(scheme);
    config = exp_config(TM_WM_DECODER_ITS);
    scheme = wm_test_scheme(&config, key);
    cr_assert(isnan(tm_wm_xi(scheme, 0, -1))); /* a token id is never negative; u_j is tm_wm_its_uniform */
    cr_assert(isnan(tm_wm_xi(scheme, 0, -2)));
    tm_wm_scheme_free(scheme);
    tm_wm_config_default(&config, TM_WM_GUMBEL);
    scheme = wm_test_scheme(&config, key);
    cr_assert(isnan(tm_wm_xi(scheme, 0, 7))); /* not an EXP-edit scheme */
    cr_assert(isnan(tm_wm_its_uniform(scheme, 0)));
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(exp_edit, generation_walks_the_key_sequence_from_the_seeds_shift) {
    tm_wm_key *key = wm_test_master_key();
    for (int decoder = 0; decoder < 2; decoder++) {
        tm_wm_config config = exp_config(decoder ? TM_WM_DECODER_ITS : TM_WM_DECODER_EXP);
        config.sequence_length = 16; /* short, so the walk wraps around */
        tm_wm_scheme *scheme = wm_test_scheme(&config, key);
        for (uint64_t seed = 0; seed < 20; seed++) {
            tm_sampler *sampler = tm_wm_sampler(scheme, seed);
            int32_t chosen[40];
            run_steps(sampler, 40, chosen);
            int32_t shift = shift_of(seed, 16);
            for (int t = 0; t < 40; t++) {
                int32_t expected = decoder ? its_choice(scheme, shift + t, wm_test_ids, wm_test_probs, WM_TEST_N)
                                           : exp_choice(scheme, shift + t, wm_test_ids, wm_test_probs, WM_TEST_N);
                cr_assert_eq(chosen[t], expected, "decoder %d seed %d step %d", decoder, (int)seed, t);
            }
            /* A reset starts the walk again from the same shift. */
            sampler->interface->reset(sampler);
            int32_t again[40];
            run_steps(sampler, 40, again);
            cr_assert_arr_eq(again, chosen, sizeof chosen);
            tm_sampler_free(sampler);
        }
        tm_wm_scheme_free(scheme);
    }
    tm_wm_key_free(key);
}

Test(exp_edit, seeds_spread_the_shift) {
    bool seen[256] = {false};
    int distinct = 0;
    for (uint64_t seed = 0; seed < 100; seed++) {
        int32_t s = shift_of(seed, 256);
        distinct += !seen[s];
        seen[s] = true;
    }
    cr_assert(distinct > 60, "100 seeds gave only %d shifts", distinct); /* about 82 expected */
}

static void distortion_free_fixed(tm_wm_decoder decoder, const char *what) {
    tm_wm_config config = exp_config(decoder);
    wm_test_assert_distortion_free_fixed(&config, what);
}

static void distortion_free_stories(tm_wm_decoder decoder, const char *what) {
    tm_wm_config config = exp_config(decoder);
    wm_test_assert_distortion_free_on_stories(&config, what);
}

Test(exp_edit, exp_distortion_free_on_a_fixed_distribution, .timeout = 120) {
    distortion_free_fixed(TM_WM_DECODER_EXP, "exp-edit EXP, 6 tokens");
}
Test(exp_edit, its_distortion_free_on_a_fixed_distribution, .timeout = 120) {
    distortion_free_fixed(TM_WM_DECODER_ITS, "exp-edit ITS, 6 tokens");
}
Test(exp_edit, exp_distortion_free_on_stories260K, .timeout = 120) {
    distortion_free_stories(TM_WM_DECODER_EXP, "exp-edit EXP, stories260K top-20");
}
Test(exp_edit, its_distortion_free_on_stories260K, .timeout = 120) {
    distortion_free_stories(TM_WM_DECODER_ITS, "exp-edit ITS, stories260K top-20");
}

/* psi(1 + x) + gamma = sum_{k>=1} x / (k (k + x)), tail corrected. */
static double harmonic(double x) {
    double sum = 0.0;
    const int K = 200000;
    for (int k = 1; k <= K; k++) sum += x / ((double)k * (k + x));
    return sum + x / (K + 0.5);
}

Test(exp_edit, selected_tokens_carry_the_key_sequence) {
    tm_wm_key *key = wm_test_master_key();
    /* EXP: -ln(1 - xi) of the chosen token has mean sum_w p_w (psi(1 + 1/p_w) + gamma). */
    tm_wm_config config = exp_config(TM_WM_DECODER_EXP);
    config.sequence_length = 4096; /* many rows, so seeds and steps meet fresh ones */
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    double predicted = 0.0;
    for (size_t i = 0; i < WM_TEST_N; i++) predicted += wm_test_probs[i] * harmonic(1.0 / wm_test_probs[i]);
    double sum = 0.0, sum_squares = 0.0;
    int n = 0;
    for (uint64_t seed = 0; seed < 40; seed++) {
        tm_sampler *sampler = tm_wm_sampler(scheme, seed);
        int32_t chosen[100];
        run_steps(sampler, 100, chosen);
        int32_t shift = shift_of(seed, 4096);
        for (int t = 0; t < 100; t++, n++) {
            double score = -log(1.0 - tm_wm_xi(scheme, shift + t, chosen[t]));
            sum += score;
            sum_squares += score * score;
        }
        tm_sampler_free(sampler);
    }
    double mean = sum / n, se = sqrt(sum_squares / n - mean * mean) / sqrt(n);
    cr_assert(mean > 1.2, "EXP mean score %.4f is not clearly above the null's 1", mean);
    cr_assert(fabs(mean - predicted) < 6 * se, "EXP mean score %.4f, predicted %.4f (se %.4f)", mean, predicted, se);
    tm_wm_scheme_free(scheme);

    /* ITS: the chosen token's eta moves with u (Kuditipudi et al.'s test
     * statistic (u - 1/2)(eta - 1/2) has mean 0 without the key, above with it). */
    config = exp_config(TM_WM_DECODER_ITS);
    config.sequence_length = 4096;
    scheme = wm_test_scheme(&config, key);
    double covariance = 0.0;
    n = 0;
    for (uint64_t seed = 0; seed < 40; seed++) {
        tm_sampler *sampler = tm_wm_sampler(scheme, seed);
        int32_t chosen[100];
        run_steps(sampler, 100, chosen);
        int32_t shift = shift_of(seed, 4096);
        for (int t = 0; t < 100; t++, n++)
            covariance += (tm_wm_its_uniform(scheme, shift + t) - 0.5) * (tm_wm_xi(scheme, 0, chosen[t]) - 0.5);
        tm_sampler_free(sampler);
    }
    /* Without the key each term has mean 0 and sd at most 1/4. */
    cr_assert(covariance / n > 6 * 0.25 / sqrt(n), "ITS mean (u - 1/2)(eta - 1/2) = %.4f", covariance / n);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(exp_edit, degenerate_candidates) {
    tm_wm_key *key = wm_test_master_key();
    for (int decoder = 0; decoder < 2; decoder++) {
        tm_wm_config config = exp_config(decoder ? TM_WM_DECODER_ITS : TM_WM_DECODER_EXP);
        tm_wm_scheme *scheme = wm_test_scheme(&config, key);
        tm_sampler *sampler = tm_wm_sampler(scheme, 1);
        wm_test_degenerate_candidates(sampler, 300, false);
        tm_sampler_free(sampler);
        tm_wm_scheme_free(scheme);
    }
    tm_wm_key_free(key);
}
