/* LeftHash's generation stage keeps the green lists of recent contexts
 * (watermark/kgw.c, lefthash_cached_apply) and decides green with an integer
 * threshold in place of tm_wm_uniform(x) < gamma. Neither may change a
 * logit: over steps whose contexts come back (hits), outnumber the cache
 * (evictions), with a vocabulary that grows (rebuilt) and a step whose ids
 * are not 0..n-1 in order (the uncached path), every logit must move by
 * exactly delta where the one-token detector (tm_wm_token_values, the
 * scalar PRF) says green and stay put elsewhere, for h = 1 and 2 and for
 * gammas whose thresholds fall between representable values. */
#include "tracemark/watermark.h"

#include <criterion/criterion.h>
#include <stdlib.h>

#include "watermark_testing.h"

static void check_steps(int32_t h, double gamma) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config;
    tm_wm_config_default(&config, TM_WM_KGW);
    config.seeding = TM_WM_SEEDING_LEFTHASH;
    config.context_width = h;
    config.gamma = gamma;
    config.delta = 2.0;
    config.skip_repeated_context = false;
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampler *sampler = tm_wm_sampler(scheme, 1);
    cr_assert_not_null(sampler);
    enum { V = 3001, GROWN = V + 500, STEPS = 140, POOL = 45 };
    tm_token_data *data = malloc(GROWN * sizeof *data);
    float *base = malloc(GROWN * sizeof *base);
    int32_t history[STEPS + 4] = {11, 12};
    size_t n_history = 2;
    for (size_t i = 0; i < n_history; i++) sampler->interface->accept(sampler, history[i]);
    uint64_t rng = 7;
    size_t greens = 0, checked = 0;
    for (int step = 0; step < STEPS; step++) {
        /* The lists are rebuilt when the vocabulary grows (step 90) and when
         * it shrinks by one id within the same 64-bit word (step 95). */
        size_t n = step < 90 ? V : step < 95 ? GROWN : GROWN - 1;
        bool scrambled = step == 100;     /* ids not in order: the uncached path */
        for (size_t i = 0; i < n; i++) {
            int32_t id = scrambled ? (int32_t)((i * 7919) % n) : (int32_t)i;
            base[i] = (float)(wm_test_lcg(&rng) % 1000) / 100.0f - 5.0f;
            data[i] = (tm_token_data){id, base[i], 0.0f};
        }
        tm_candidates candidates = {data, n, false, -1};
        sampler->interface->apply(sampler, &candidates);
        cr_assert_eq(candidates.size, n);
        for (size_t i = 0; i < n; i++) {
            int g = wm_test_green(scheme, history + n_history - (size_t)h, (size_t)h, data[i].id);
            float expected = g ? base[i] + (float)config.delta : base[i];
            cr_assert(data[i].logit == expected, "h %d gamma %g step %d token %d", h, gamma, step, data[i].id);
            greens += (size_t)g;
            checked++;
        }
        /* The next token from a pool larger than the cache: contexts come back,
         * and some are evicted before they do. */
        int32_t next = (int32_t)(100 + wm_test_lcg(&rng) % POOL);
        sampler->interface->accept(sampler, next);
        history[n_history++] = next;
    }
    double fraction = (double)greens / (double)checked;
    cr_assert(fraction > gamma - 0.02 && fraction < gamma + 0.02, "green fraction %g for gamma %g", fraction, gamma);
    tm_sampler_free(sampler);
    free(data);
    free(base);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(kgw_lefthash_cache, h1_matches_detector_across_steps) { check_steps(1, 0.25); }
Test(kgw_lefthash_cache, h2_matches_detector_across_steps) { check_steps(2, 0.5); }
Test(kgw_lefthash_cache, odd_gamma_matches_detector_across_steps) { check_steps(1, 0.3); }
