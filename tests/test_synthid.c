/* Tests for the SynthID-Text watermark (watermark/synthid.c) against outside
 * references: the spec's test vectors, which docs/reference/
 * schemes_distortion_free.py computes independently from docs/schemes/
 * synthid.md; the tournament update of google-deepmind/synthid-text
 * (update_scores: p <- p (1 + g - E_p[g]) per layer), recomputed here from the
 * detection face's g-values; the non-distortionary property (over random
 * keys the selection follows p: chi-square on a fixed distribution and on
 * stories260K's real next-token distribution); and the one-layer win rate
 * E[g] = E[2G - G^2] = 3/4 - 1/(4V) for V equally likely tokens. The tests
 * over keys use the fixed pseudo-random keys 0..N-1 of wm_test_seeded_key, so
 * each chi-square test (p > 0.001) gives the same verdict on every run. */
#include "distortion_free_testing.h"

static tm_wm_config synthid_config(void) {
    tm_wm_config config;
    tm_wm_config_default(&config, TM_WM_SYNTHID);
    return config;
}

static void g_values(const tm_wm_scheme *scheme, const int32_t *context, size_t n, int32_t token, double *g) {
    size_t layers = (size_t)tm_wm_scheme_config(scheme)->layers;
    cr_assert_eq(tm_wm_token_values(scheme, context, n, token, g, layers), layers);
}

static void g_string(const tm_wm_scheme *scheme, const int32_t *context, size_t n, int32_t token, char *out) {
    double g[64];
    g_values(scheme, context, n, token, g);
    size_t layers = (size_t)tm_wm_scheme_config(scheme)->layers;
    for (size_t l = 0; l < layers; l++) {
        cr_assert(g[l] == 0.0 || g[l] == 1.0);
        out[l] = g[l] == 1.0 ? '1' : '0';
    }
    out[layers] = '\0';
}

/* synthid-text's update_scores, in double, from the detection face's g-values. */
static void tournament(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context, const int32_t *ids,
                       const double *probs, size_t n, double *weights) {
    size_t layers = (size_t)tm_wm_scheme_config(scheme)->layers;
    double g[64][64];
    cr_assert(n <= 64 && layers <= 64);
    for (size_t i = 0; i < n; i++) {
        weights[i] = probs[i];
        g_values(scheme, context, n_context, ids[i], g[i]);
    }
    for (size_t l = 0; l < layers; l++) {
        double mass = 0.0;
        for (size_t i = 0; i < n; i++) mass += weights[i] * g[i][l];
        for (size_t i = 0; i < n; i++) weights[i] *= 1.0 + g[i][l] - mass;
    }
}

Test(synthid, spec_test_vectors) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = synthid_config();
    char description[128];
    tm_wm_config_describe(&config, description, sizeof description);
    cr_assert_str_eq(description, "synthid;h=4;layers=30");
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    cr_assert_eq(tm_wm_scheme_stage(scheme), TM_WM_STAGE_SELECTOR);
    char bits[64];
    g_string(scheme, wm_test_context, WM_TEST_CONTEXT_N, 7, bits);
    cr_assert_str_eq(bits, "011110110101100011111110000010"); /* layers 1..30 */
    const int32_t short_context[] = {9};
    g_string(scheme, short_context, 1, 7, bits);
    cr_assert_str_eq(bits, "111010001101110000010111010011");
    /* All g-values of a token are the bits of one PRF word (extra 0), low bit first. */
    char info[64];
    tm_wm_config_describe(&config, info, sizeof info);
    tm_wm_subkey subkey;
    tm_error err = {0};
    cr_assert_eq(tm_wm_derive_subkey(key, info, &subkey, &err), TM_OK);
    const int32_t message[] = {3, 4, 5, 6, 7};
    cr_assert_eq(tm_wm_prf(&subkey, 0x05, message, 5, 0), 0x216df092507f1adeULL);

    /* Seed 42: the tournament's draw (the RNG's first uniform) is 3; the same
     * context again is repeated and drawn plainly (second uniform): 3. */
    tm_sampler *sampler = tm_wm_sampler(scheme, 42);
    wm_test_accept(sampler, wm_test_context, WM_TEST_CONTEXT_N);
    tm_token_data storage[WM_TEST_N];
    tm_candidates candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
    wm_test_apply(sampler, &candidates);
    cr_assert_eq(candidates.selected, 3);
    candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
    wm_test_apply(sampler, &candidates);
    cr_assert_eq(candidates.selected, 3);
    tm_sampler_free(sampler);
    /* After context 9 the tournament moves the mass to 17 and 99; seed 42's
     * first uniform (0.0839) picks 17. */
    sampler = tm_wm_sampler(scheme, 42);
    wm_test_accept(sampler, short_context, 1);
    candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
    wm_test_apply(sampler, &candidates);
    cr_assert_eq(candidates.selected, 17);
    tm_sampler_free(sampler);

    /* The reference's tournament weights for those contexts. */
    double weights[WM_TEST_N];
    tournament(scheme, wm_test_context, WM_TEST_CONTEXT_N, wm_test_ids, wm_test_probs, WM_TEST_N, weights);
    const double expected[WM_TEST_N] = {0.998162, 0.000000, 0.001838, 0.000000, 0.000000, 0.000000};
    for (size_t i = 0; i < WM_TEST_N; i++) cr_assert(fabs(weights[i] - expected[i]) < 5e-7, "weight %zu", i);
    tournament(scheme, short_context, 1, wm_test_ids, wm_test_probs, WM_TEST_N, weights);
    const double expected_9[WM_TEST_N] = {0.000000, 0.146290, 0.000000, 0.853710, 0.000000, 0.000000};
    for (size_t i = 0; i < WM_TEST_N; i++) cr_assert(fabs(weights[i] - expected_9[i]) < 5e-7, "weight %zu after 9", i);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(synthid, token_values_respect_capacity_and_context_width) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = synthid_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    double all[30], some[40];
    for (size_t i = 0; i < 40; i++) some[i] = -1.0;
    g_values(scheme, wm_test_context, WM_TEST_CONTEXT_N, 7, all);
    cr_assert_eq(tm_wm_token_values(scheme, wm_test_context, WM_TEST_CONTEXT_N, 7, some, 10), 10);
    for (size_t i = 0; i < 10; i++) cr_assert_eq(some[i], all[i]);
    cr_assert_eq(some[10], -1.0);
    cr_assert_eq(tm_wm_token_values(scheme, wm_test_context, WM_TEST_CONTEXT_N, 7, some, 40), 30);
    cr_assert_eq(tm_wm_token_values(scheme, wm_test_context, WM_TEST_CONTEXT_N, 7, some, 0), 0);
    /* Only the last 4 tokens count. */
    double last4[30];
    g_values(scheme, wm_test_context + 2, 4, 7, last4);
    for (size_t i = 0; i < 30; i++) cr_assert_eq(last4[i], all[i]);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

/* Generation runs the layers ten at a time; the reference here runs them one
 * by one from the detection face's g-values: for 1, 7, 10, 11 (a block and
 * one layer more), 30 and all 64 layers the chosen tokens must agree. */
Test(synthid, generation_is_the_reference_tournament_then_one_draw) {
    tm_wm_key *key = wm_test_master_key();
    static const int32_t layer_counts[] = {1, 7, 10, 11, 30, 64};
    uint64_t x = 17;
    for (size_t c = 0; c < sizeof layer_counts / sizeof layer_counts[0]; c++) {
        tm_wm_config config = synthid_config();
        config.layers = layer_counts[c];
        tm_wm_scheme *scheme = wm_test_scheme(&config, key);
        for (int trial = 0; trial < 150; trial++) {
            int32_t context[4];
            for (int i = 0; i < 4; i++) context[i] = (int32_t)(wm_test_lcg(&x) % 32000);
            uint64_t seed = 100 + (uint64_t)trial;
            int32_t chosen = wm_test_select(scheme, seed, context, 4, wm_test_ids, wm_test_probs, WM_TEST_N);
            /* The draw walks the candidates in their order (as given) with
             * the sampler's first uniform. */
            double weights[WM_TEST_N], total = 0.0;
            tournament(scheme, context, 4, wm_test_ids, wm_test_probs, WM_TEST_N, weights);
            for (size_t i = 0; i < WM_TEST_N; i++) total += weights[i];
            tm_rng rng;
            tm_rng_seed(&rng, seed);
            double target = tm_rng_uniform(&rng) * total, cumulative = 0.0;
            size_t expected = WM_TEST_N - 1;
            for (size_t i = 0; i < WM_TEST_N; i++) {
                cumulative += weights[i];
                if (target < cumulative) {
                    expected = i;
                    break;
                }
            }
            cr_assert_eq(chosen, wm_test_ids[expected], "layers %d trial %d", (int)layer_counts[c], trial);
        }
        tm_wm_scheme_free(scheme);
    }
    tm_wm_key_free(key);
}

Test(synthid, distortion_free_on_a_fixed_distribution, .timeout = 120) {
    tm_wm_config config = synthid_config();
    wm_test_assert_distortion_free_fixed(&config, "synthid, 6 tokens");
}

Test(synthid, distortion_free_on_stories260K, .timeout = 120) {
    tm_wm_config config = synthid_config();
    wm_test_assert_distortion_free_on_stories(&config, "synthid, stories260K top-20");
}

Test(synthid, one_layer_win_rate_matches_the_tournament_formula) {
    /* One layer over V equally likely tokens, G the fraction with g = 1: the
     * winner has g = 1 with probability sum p (1 + 1 - G) over g = 1 tokens =
     * 2G - G^2; G ~ Binomial(V, 1/2)/V, so E = 1 - 1/4 - 1/(4V). */
    enum { V = 64 };
    int32_t ids[V];
    double probs[V];
    for (int i = 0; i < V; i++) ids[i] = 1000 + 7 * i, probs[i] = 1.0 / V;
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = synthid_config();
    config.layers = 1;
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    uint64_t x = 23;
    const int trials = 20000;
    double wins = 0.0;
    for (int t = 0; t < trials; t++) {
        int32_t context[4];
        for (int i = 0; i < 4; i++) context[i] = (int32_t)(wm_test_lcg(&x) % 32000);
        int32_t chosen = wm_test_select(scheme, (uint64_t)t, context, 4, ids, probs, V);
        double g;
        cr_assert_eq(tm_wm_token_values(scheme, context, 4, chosen, &g, 1), 1);
        wins += g;
    }
    double predicted = 0.75 - 0.25 / V, mean = wins / trials;
    double se = sqrt(predicted * (1 - predicted) / trials);
    cr_assert(fabs(mean - predicted) < 5 * se, "win rate %.4f, predicted %.4f (se %.4f)", mean, predicted, se);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(synthid, selected_tokens_carry_high_g_values) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = synthid_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    uint64_t x = 29;
    const int trials = 2000;
    double sum = 0.0, null_sum = 0.0, g[30];
    for (int t = 0; t < trials; t++) {
        int32_t context[4];
        for (int i = 0; i < 4; i++) context[i] = (int32_t)(wm_test_lcg(&x) % 32000);
        int32_t chosen = wm_test_select(scheme, (uint64_t)t, context, 4, wm_test_ids, wm_test_probs, WM_TEST_N);
        g_values(scheme, context, 4, chosen, g);
        for (int l = 0; l < 30; l++) sum += g[l];
        g_values(scheme, context, 4, wm_test_ids[wm_test_lcg(&x) % WM_TEST_N], g);
        for (int l = 0; l < 30; l++) null_sum += g[l];
    }
    double mean = sum / (30.0 * trials), null_mean = null_sum / (30.0 * trials);
    /* A token's 30 g-values are independent fair bits without the key. */
    double null_se = sqrt(0.25 / (30.0 * trials));
    cr_assert(mean > 0.5 + 10 * null_se, "mean g-value %.4f is not clearly above 0.5", mean);
    cr_assert(fabs(null_mean - 0.5) < 5 * null_se, "null mean g-value %.4f", null_mean);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(synthid, same_key_context_and_seed_give_the_same_choice) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = synthid_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key), *again = wm_test_scheme(&config, key);
    uint64_t x = 31;
    for (int t = 0; t < 200; t++) {
        int32_t context[4];
        for (int i = 0; i < 4; i++) context[i] = (int32_t)(wm_test_lcg(&x) % 512);
        cr_assert_eq(wm_test_select(scheme, (uint64_t)t, context, 4, wm_test_ids, wm_test_probs, WM_TEST_N),
                     wm_test_select(again, (uint64_t)t, context, 4, wm_test_ids, wm_test_probs, WM_TEST_N));
    }
    tm_wm_scheme_free(again);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(synthid, a_repeated_context_is_sampled_from_p_unmodified) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = synthid_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampler *sampler = tm_wm_sampler(scheme, 77);
    wm_test_accept(sampler, wm_test_context, WM_TEST_CONTEXT_N);
    tm_token_data storage[WM_TEST_N];
    tm_candidates candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
    wm_test_apply(sampler, &candidates); /* first use: the tournament */
    size_t counts[WM_TEST_N] = {0}, trials = 20000;
    for (size_t t = 0; t < trials; t++) {
        candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
        wm_test_apply(sampler, &candidates);
        counts[wm_test_index_of(wm_test_ids, WM_TEST_N, candidates.selected)]++;
    }
    wm_test_assert_follows(counts, wm_test_probs, WM_TEST_N, trials, "synthid, repeated context");
    tm_sampler_free(sampler);
    tm_wm_scheme_free(scheme);

    /* Without masking every use of the context runs the tournament: the
     * draws follow its weights, not p. */
    config.skip_repeated_context = false;
    scheme = wm_test_scheme(&config, key);
    double weights[WM_TEST_N];
    tournament(scheme, wm_test_context, WM_TEST_CONTEXT_N, wm_test_ids, wm_test_probs, WM_TEST_N, weights);
    sampler = tm_wm_sampler(scheme, 77);
    wm_test_accept(sampler, wm_test_context, WM_TEST_CONTEXT_N);
    memset(counts, 0, sizeof counts);
    for (size_t t = 0; t < trials; t++) {
        candidates = wm_test_candidates(storage, wm_test_ids, wm_test_probs, WM_TEST_N);
        wm_test_apply(sampler, &candidates);
        counts[wm_test_index_of(wm_test_ids, WM_TEST_N, candidates.selected)]++;
    }
    wm_test_assert_follows(counts, weights, WM_TEST_N, trials, "synthid, tournament weights");
    tm_sampler_free(sampler);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(synthid, degenerate_candidates) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = synthid_config();
    config.skip_repeated_context = false;
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampler *sampler = tm_wm_sampler(scheme, 1);
    wm_test_degenerate_candidates(sampler, 200, true);
    tm_sampler_free(sampler);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}
