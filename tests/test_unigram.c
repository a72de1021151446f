/* Tests for Unigram (watermark/unigram.c) against outside references: the
 * spec's test vectors from docs/schemes/unigram.md, computed by the
 * independent Python reference docs/reference/schemes_kgw.py (constants
 * here); the green fraction against gamma within binomial bounds; the
 * generation stage against its definition (exactly +delta on green logits,
 * the cached bitmap equal to the PRF on every id, also as the id range
 * grows); context-freeness; and the watermark's effect on simulated
 * generation. No timing is asserted. */
#include "tracemark/watermark.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "watermark_testing.h"

/* ---- helpers ------------------------------------------------------------- */

static tm_wm_config unigram_config(void) {
    tm_wm_config c;
    tm_wm_config_default(&c, TM_WM_UNIGRAM);
    c.gamma = 0.5; /* the spec vectors' settings, whatever the defaults become */
    c.delta = 2.0;
    return c;
}

/* ---- spec vectors (docs/schemes/unigram.md, from schemes_kgw.py) -------------- */

Test(unigram, spec_vectors) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = unigram_config();
    char info[256];
    tm_wm_config_describe(&config, info, sizeof info);
    cr_assert_str_eq(info, "unigram;gamma=0.5;delta=2");
    tm_wm_subkey subkey = wm_test_subkey(&config, key);
    cr_assert_eq(subkey.k0, 0x47ff439abe6cdc21ULL);
    cr_assert_eq(subkey.k1, 0xbc8c0bea58021866ULL);
    static const struct {
        int32_t token;
        uint64_t prf;
        int green;
    } vectors[] = {
        {0, 0xdaa346297a7bdd33ULL, 0},   {1, 0xda9bec26eefd20d1ULL, 0},     {2, 0x0acbacb9ff6caf49ULL, 1},
        {3, 0xe53fb0619a14b963ULL, 0},   {450, 0x55d4e14345f3dc79ULL, 1},   {29871, 0x19634b50af0e3836ULL, 1},
        {31999, 0x3366ee3273382f72ULL, 1},
    };
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    cr_assert_eq(tm_wm_scheme_stage(scheme), TM_WM_STAGE_LOGITS);
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        cr_assert_eq(tm_wm_prf(&subkey, 0x03, &vectors[i].token, 1, 0), vectors[i].prf, "vector %zu", i);
        cr_assert_eq(wm_test_green(scheme, NULL, 0, vectors[i].token), vectors[i].green, "vector %zu", i);
    }
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

/* The list ignores the context: any context, or none, gives the same bit. */
Test(unigram, context_free) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = unigram_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    int32_t context[3] = {5, 6, 7};
    for (int32_t w = 0; w < 2000; w++) {
        int g = wm_test_green(scheme, NULL, 0, w);
        cr_assert_eq(wm_test_green(scheme, context, 3, w), g);
        cr_assert_eq(wm_test_green(scheme, context + 2, 1, w), g);
    }
    double value;
    cr_assert_eq(tm_wm_token_values(scheme, NULL, 0, 1, &value, 0), 0, "no room, no value");
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

/* Over 32000 tokens the green fraction is Binomial(32000, 0.5)/32000: within
 * 4.5 sigma. Two keys agree on a token with probability 1/2, also within 4.5 sigma. */
Test(unigram, green_fraction_and_two_keys) {
    tm_wm_key *a = wm_test_master_key(), *b = wm_test_seeded_key(0);
    tm_wm_config config = unigram_config();
    tm_wm_scheme *sa = wm_test_scheme(&config, a), *sb = wm_test_scheme(&config, b);
    enum { V = 32000 };
    size_t green = 0, agree = 0;
    for (int32_t w = 0; w < V; w++) {
        int ga = wm_test_green(sa, NULL, 0, w);
        green += (size_t)ga;
        agree += ga == wm_test_green(sb, NULL, 0, w);
    }
    double sigma = sqrt(0.25 / V);
    cr_assert(fabs((double)green / V - config.gamma) < 4.5 * sigma, "green fraction %.4f", (double)green / V);
    cr_assert(fabs((double)agree / V - 0.5) < 4.5 * sigma, "agreement %.4f", (double)agree / V);
    tm_wm_scheme_free(sa);
    tm_wm_scheme_free(sb);
    tm_wm_key_free(a);
    tm_wm_key_free(b);
}

/* The stage moves a logit by exactly delta when the detector calls the token
 * green and not at all otherwise; first over a small vocabulary, then a
 * larger one (the cached bitmap grows), with scrambled ids, a negative id
 * and an id beyond the cache, which go to the PRF directly. */
Test(unigram, stage_adds_delta_to_green_only) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = unigram_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampler *sampler = tm_wm_sampler(scheme, 1);
    cr_assert_not_null(sampler);
    size_t sizes[3] = {1000, 32003, 32003};
    tm_token_data *data = malloc(32005 * sizeof *data);
    float *base = malloc(32005 * sizeof *base);
    uint64_t rng = 3;
    for (int round = 0; round < 3; round++) {
        size_t n = sizes[round];
        for (size_t i = 0; i < n; i++) {
            base[i] = (float)(wm_test_lcg(&rng) % 1000) / 100.0f;
            data[i] = (tm_token_data){(int32_t)((i * 7919) % n), base[i], 0.0f};
        }
        if (round == 2) { /* ids the bitmap does not hold */
            data[n] = (tm_token_data){-5, base[n] = 1.0f, 0.0f};
            data[n + 1] = (tm_token_data){1 << 26, base[n + 1] = 2.0f, 0.0f};
            n += 2;
        }
        tm_candidates candidates = {data, n, true, -1};
        sampler->interface->apply(sampler, &candidates);
        size_t green = 0;
        for (size_t i = 0; i < n; i++) {
            int g = wm_test_green(scheme, NULL, 0, data[i].id);
            green += (size_t)g;
            float expected = g ? base[i] + (float)config.delta : base[i];
            cr_assert(data[i].logit == expected, "round %d token %d", round, data[i].id);
        }
        cr_assert(green > 0 && green < n);
        cr_assert_not(candidates.sorted);
        sampler->interface->accept(sampler, 1);
    }
    tm_sampler_free(sampler);
    free(data);
    free(base);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

/* Simulated generation over a flat-ish distribution: with delta 2 and gamma
 * 0.5 a green token is drawn with probability about e^2/(e^2+1) = 0.88;
 * over 400 tokens the fraction is far above the null's 0.5 + 4.5 sigma = 0.61. */
static double generated_green_fraction(uint64_t seed, int32_t *out, size_t n) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = unigram_config();
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    params.seed = seed;
    double fraction = wm_test_generate_green_fraction(scheme, false, &params, NULL, 0, out, n);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
    return fraction;
}

Test(unigram, generation_is_mostly_green) {
    double fraction = generated_green_fraction(11, NULL, 400);
    cr_assert_gt(fraction, 0.7, "green fraction %.3f", fraction);
}

Test(unigram, same_key_and_seed_give_the_same_tokens) {
    int32_t a[100], b[100];
    generated_green_fraction(3, a, 100);
    generated_green_fraction(3, b, 100);
    cr_assert_arr_eq(a, b, sizeof a);
}
