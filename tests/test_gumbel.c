/* Tests for the Gumbel watermark (watermark/gumbel.c) against outside
 * references: the spec's test vectors, which docs/reference/
 * schemes_distortion_free.py computes independently from docs/schemes/
 * gumbel.md; the Gumbel-max identity P(argmax r^(1/p) = w) = p_w, checked
 * by chi-square over random keys on a fixed distribution and on stories260K's
 * real next-token distribution; and Aaronson's expected score
 * E[-ln(1 - r)] = sum_w p_w (psi(1 + 1/p_w) + gamma) for the selected tokens.
 * The tests over keys use the fixed pseudo-random keys 0..N-1 of
 * wm_test_seeded_key, so each chi-square test (p > 0.001) is one fixed draw
 * that gives the same verdict on every run. */
#include "distortion_free_testing.h"

static tm_wm_config gumbel_config(void) {
    tm_wm_config config;
    tm_wm_config_default(&config, TM_WM_GUMBEL);
    return config;
}

/* r of token after context, through the detection face. */
static double r_of(const tm_wm_scheme *scheme, const int32_t *context, size_t n, int32_t token) {
    double r = -1.0;
    cr_assert_eq(tm_wm_token_values(scheme, context, n, token, &r, 1), 1);
    return r;
}

Test(gumbel, spec_test_vectors) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = gumbel_config();
    char description[128];
    tm_wm_config_describe(&config, description, sizeof description);
    cr_assert_str_eq(description, "gumbel;h=4"); /* the HKDF info the Python reference used */
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    cr_assert_eq(tm_wm_scheme_stage(scheme), TM_WM_STAGE_SELECTOR);

    /* Values from docs/reference/schemes_distortion_free.py. */
    cr_assert_eq(r_of(scheme, wm_test_context, WM_TEST_CONTEXT_N, 7), 0.3554082411776386);
    const int32_t short_context[] = {9};
    cr_assert_eq(r_of(scheme, short_context, 1, 7), 0.13526267975179473);
    cr_assert_eq(r_of(scheme, NULL, 0, 7), 0.4583501788725389);

    cr_assert_eq(wm_test_select(scheme, 42, wm_test_context, WM_TEST_CONTEXT_N, wm_test_ids, wm_test_probs, WM_TEST_N),
                 3);
    /* The same context again in the same sequence: a plain draw with the
     * sampler's first uniform (seed 14), which the reference puts on 42. */
    tm_sampler *sampler = tm_wm_sampler(scheme, 14);
    wm_test_accept(sampler, wm_test_context, WM_TEST_CONTEXT_N);
    tm_token_data storage[WM_TEST_N];
    tm_candidates candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
    wm_test_apply(sampler, &candidates);
    cr_assert_eq(candidates.selected, 3);
    candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
    wm_test_apply(sampler, &candidates);
    cr_assert_eq(candidates.selected, 42);
    tm_sampler_free(sampler);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(gumbel, only_the_last_h_tokens_count_and_a_short_history_is_its_own_context) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = gumbel_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    const int32_t long_context[] = {100, 200, 300, 400, 500, 3, 4, 5, 6};
    cr_assert_eq(r_of(scheme, long_context, 9, 7), r_of(scheme, long_context + 5, 4, 7));
    cr_assert_eq(r_of(scheme, long_context, 9, 7), 0.3554082411776386); /* the last 4 are 3 4 5 6 */
    /* Three tokens of history are a context of three, not a padded four. */
    cr_assert_neq(r_of(scheme, long_context + 6, 3, 7), r_of(scheme, long_context + 5, 4, 7));
    double values[4] = {-1, -1, -1, -1};
    cr_assert_eq(tm_wm_token_values(scheme, long_context, 9, 7, values, 0), 0);
    cr_assert_eq(tm_wm_token_values(scheme, long_context, 9, 7, values, 4), 1);
    cr_assert_eq(values[1], -1.0);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(gumbel, generation_picks_the_argmax_of_the_detection_values) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = gumbel_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    uint64_t x = 7;
    for (int trial = 0; trial < 300; trial++) {
        int32_t context[4];
        for (int i = 0; i < 4; i++) context[i] = (int32_t)(wm_test_lcg(&x) % 32000);
        int32_t chosen = wm_test_select(scheme, 1, context, 4, wm_test_ids, wm_test_probs, WM_TEST_N);
        size_t best = 0;
        double best_score = -INFINITY;
        for (size_t i = 0; i < WM_TEST_N; i++) {
            double score = log(r_of(scheme, context, 4, wm_test_ids[i])) / wm_test_probs[i];
            if (score > best_score) best_score = score, best = i;
        }
        cr_assert_eq(chosen, wm_test_ids[best], "trial %d", trial);
    }
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(gumbel, distortion_free_on_a_fixed_distribution, .timeout = 120) {
    tm_wm_config config = gumbel_config();
    wm_test_assert_distortion_free_fixed(&config, "gumbel, 6 tokens");
}

Test(gumbel, distortion_free_on_stories260K, .timeout = 120) {
    tm_wm_config config = gumbel_config();
    wm_test_assert_distortion_free_on_stories(&config, "gumbel, stories260K top-20");
}

/* psi(1 + x) + gamma = sum_{k>=1} x / (k (k + x)); the tail past K is x/K
 * to first order (the sum of x/k^2), which the last term corrects. */
static double harmonic(double x) {
    double sum = 0.0;
    const int K = 200000;
    for (int k = 1; k <= K; k++) sum += x / ((double)k * (k + x));
    return sum + x / (K + 0.5);
}

Test(gumbel, selected_tokens_score_as_aaronson_predicts) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = gumbel_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    /* Under the key the selected token's r = M^p with M uniform, so
     * E[-ln(1 - r)] = sum_w p_w * integral_0^1 -ln(1 - m^p_w) dm
     *               = sum_w p_w (psi(1 + 1/p_w) + gamma); without it, 1. */
    double predicted = 0.0;
    for (size_t i = 0; i < WM_TEST_N; i++) predicted += wm_test_probs[i] * harmonic(1.0 / wm_test_probs[i]);
    uint64_t x = 11;
    const int trials = 4000;
    double sum = 0.0, sum_squares = 0.0, null_sum = 0.0;
    for (int t = 0; t < trials; t++) {
        int32_t context[4];
        for (int i = 0; i < 4; i++) context[i] = (int32_t)(wm_test_lcg(&x) % 32000);
        int32_t chosen = wm_test_select(scheme, 1, context, 4, wm_test_ids, wm_test_probs, WM_TEST_N);
        double score = -log(1.0 - r_of(scheme, context, 4, chosen));
        sum += score;
        sum_squares += score * score;
        /* A token chosen without the key (the LCG) scores as the null. */
        null_sum += -log(1.0 - r_of(scheme, context, 4, wm_test_ids[wm_test_lcg(&x) % WM_TEST_N]));
    }
    double mean = sum / trials, sd = sqrt(sum_squares / trials - mean * mean), se = sd / sqrt(trials);
    cr_assert(mean > 1.2, "mean score %.4f is not clearly above the null's 1", mean);
    cr_assert(fabs(mean - predicted) < 6 * se, "mean score %.4f, predicted %.4f (se %.4f)", mean, predicted, se);
    cr_assert(fabs(null_sum / trials - 1.0) < 6 * (1.0 / sqrt(trials)), "null mean %.4f", null_sum / trials);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(gumbel, same_key_and_context_give_the_same_choice) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = gumbel_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_wm_scheme *again = wm_test_scheme(&config, key);
    tm_wm_key *other_key = wm_test_seeded_key(0);
    tm_wm_scheme *other = wm_test_scheme(&config, other_key);
    uint64_t x = 3;
    int differ = 0;
    for (int t = 0; t < 200; t++) {
        int32_t context[5];
        for (int i = 0; i < 5; i++) context[i] = (int32_t)(wm_test_lcg(&x) % 512);
        int32_t a = wm_test_select(scheme, 1, context, 5, wm_test_ids, wm_test_probs, WM_TEST_N);
        /* The watermarked choice uses no randomness beyond the key: any seed. */
        int32_t b = wm_test_select(again, 99, context, 5, wm_test_ids, wm_test_probs, WM_TEST_N);
        cr_assert_eq(a, b);
        differ += a != wm_test_select(other, 1, context, 5, wm_test_ids, wm_test_probs, WM_TEST_N);
    }
    cr_assert(differ > 50, "another key changed only %d of 200 choices", differ);
    tm_wm_scheme_free(other);
    tm_wm_key_free(other_key);
    tm_wm_scheme_free(again);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(gumbel, a_repeated_context_is_sampled_plainly) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = gumbel_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampler *sampler = tm_wm_sampler(scheme, 2024);
    wm_test_accept(sampler, wm_test_context, WM_TEST_CONTEXT_N);
    tm_token_data storage[WM_TEST_N];
    tm_candidates candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
    wm_test_apply(sampler, &candidates);
    int32_t first = candidates.selected;
    /* Every later apply sees the same context: plain draws from p. */
    size_t counts[WM_TEST_N] = {0}, trials = 20000;
    for (size_t t = 0; t < trials; t++) {
        candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
        wm_test_apply(sampler, &candidates);
        counts[wm_test_index_of(wm_test_ids, WM_TEST_N, candidates.selected)]++;
    }
    wm_test_assert_follows(counts, wm_test_probs, WM_TEST_N, trials, "gumbel, repeated context");
    /* After a reset the context is new again: the watermarked choice returns. */
    sampler->interface->reset(sampler);
    wm_test_accept(sampler, wm_test_context, WM_TEST_CONTEXT_N);
    candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
    wm_test_apply(sampler, &candidates);
    cr_assert_eq(candidates.selected, first);
    tm_sampler_free(sampler);
    tm_wm_scheme_free(scheme);

    /* Without the remedy the same context always repeats the same choice. */
    config.skip_repeated_context = false;
    scheme = wm_test_scheme(&config, key);
    sampler = tm_wm_sampler(scheme, 2024);
    wm_test_accept(sampler, wm_test_context, WM_TEST_CONTEXT_N);
    for (int t = 0; t < 100; t++) {
        candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
        wm_test_apply(sampler, &candidates);
        cr_assert_eq(candidates.selected, first);
    }
    tm_sampler_free(sampler);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(gumbel, degenerate_candidates) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = gumbel_config();
    config.skip_repeated_context = false;
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampler *sampler = tm_wm_sampler(scheme, 1);
    wm_test_degenerate_candidates(sampler, 200, true);
    tm_sampler_free(sampler);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}
