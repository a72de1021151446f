/* Tests for KGW (watermark/kgw.c) against outside references: the spec's test
 * vectors from docs/schemes/kgw.md, computed by the independent Python
 * reference docs/reference/schemes_kgw.py (held here as constants); the
 * green fraction against gamma within binomial bounds; the generation stage
 * against its definition (exactly +delta on green logits, nothing else, the
 * batched/AVX2 path equal to the one-token PRF path on a whole vocabulary);
 * and the watermark's effect on simulated generation. No timing is asserted. */
#include "tracemark/watermark.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "watermark_testing.h"

/* ---- helpers ------------------------------------------------------------- */

static tm_wm_config kgw_config(tm_wm_seeding seeding, int32_t h) {
    tm_wm_config c;
    tm_wm_config_default(&c, TM_WM_KGW);
    c.seeding = seeding;
    c.context_width = h;
    c.gamma = 0.25; /* the spec vectors' settings, whatever the defaults become */
    c.delta = 2.0;
    c.skip_repeated_context = false;
    return c;
}

/* ---- spec vectors (docs/schemes/kgw.md, from schemes_kgw.py) ----------------- */

Test(kgw, lefthash_spec_vectors) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = kgw_config(TM_WM_SEEDING_LEFTHASH, 1);
    char info[256];
    tm_wm_config_describe(&config, info, sizeof info);
    cr_assert_str_eq(info, "kgw;seeding=lefthash;h=1;gamma=0.25;delta=2");
    tm_wm_subkey subkey = wm_test_subkey(&config, key);
    cr_assert_eq(subkey.k0, 0x9043427d5abbfd4cULL);
    cr_assert_eq(subkey.k1, 0x049550c034ed5ba7ULL);
    static const struct {
        int32_t context, token;
        uint64_t prf;
        int green;
    } vectors[] = {
        {1, 0, 0x7fc64dc28071a38bULL, 0},         {1, 1, 0xb155c174d6bbbdfbULL, 0},
        {1, 2, 0x9bc112f06a0eba92ULL, 0},         {1, 3, 0xf9174fa3ac0cb37eULL, 0},
        {29871, 450, 0x3ce457622fd717ffULL, 1},   {450, 29871, 0xd35fd74c761ea547ULL, 0},
        {2, 31999, 0xb242ef5fff5303f0ULL, 0},     {100, 7, 0xdb833f7d18ae2fb5ULL, 0},
    };
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        int32_t tokens[2] = {vectors[i].context, vectors[i].token};
        cr_assert_eq(tm_wm_prf(&subkey, 0x01, tokens, 2, 0), vectors[i].prf, "vector %zu", i);
        cr_assert_eq(wm_test_green(scheme, &vectors[i].context, 1, vectors[i].token), vectors[i].green,
                     "vector %zu", i);
    }
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(kgw, selfhash_spec_vectors) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = kgw_config(TM_WM_SEEDING_SELFHASH, 4);
    tm_wm_subkey subkey = wm_test_subkey(&config, key);
    cr_assert_eq(subkey.k0, 0x9078094b3911db3aULL);
    cr_assert_eq(subkey.k1, 0x06512d6da54b2031ULL);
    static const struct {
        int32_t context[3], token, anchor;
        uint64_t prf;
        int green;
    } vectors[] = {
        {{10, 20, 30}, 40, 30, 0xacc7d8ab1c0eb44bULL, 0},    {{10, 20, 30}, 10, 30, 0x1d8f594423adfb10ULL, 1},
        {{1, 1, 1}, 1, 1, 0x7674ab62ca536b23ULL, 0},         {{5, 6, 7}, 0, 0, 0x0233bcab206166c0ULL, 1},
        {{5, 6, 7}, 31999, 7, 0x170f4a3c24c2e0bdULL, 1},     {{100, 200, 300}, 400, 300, 0x73251dc82c09bc16ULL, 0},
    };
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        int32_t draw[2] = {vectors[i].anchor, vectors[i].token};
        cr_assert_eq(tm_wm_prf(&subkey, 0x02, draw, 2, 1), vectors[i].prf, "vector %zu", i);
        cr_assert_eq(wm_test_green(scheme, vectors[i].context, 3, vectors[i].token), vectors[i].green, "vector %zu", i);
        /* Only the last h-1 = 3 tokens count: a longer context gives the same answer. */
        int32_t longer[5] = {9, 8, vectors[i].context[0], vectors[i].context[1], vectors[i].context[2]};
        cr_assert_eq(wm_test_green(scheme, longer, 5, vectors[i].token), vectors[i].green);
    }
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

/* ---- statistics of the green list ----------------------------------------------- */

/* Over V tokens and many contexts the green fraction is Binomial(N, gamma)/N:
 * within 4.5 standard deviations (a false alarm about once in 150,000 runs). */
static void check_green_fraction(tm_wm_seeding seeding, int32_t h) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = kgw_config(seeding, h);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    enum { V = 32000, CONTEXTS = 8 };
    uint64_t rng = 7;
    size_t green = 0, total = 0;
    for (int c = 0; c < CONTEXTS; c++) {
        int32_t context[4];
        for (int i = 0; i < 4; i++) context[i] = (int32_t)(wm_test_lcg(&rng) % V);
        for (int32_t w = 0; w < V; w++, total++) green += (size_t)wm_test_green(scheme, context, 4, w);
    }
    double gamma = config.gamma, mean = (double)green / (double)total;
    double sigma = sqrt(gamma * (1 - gamma) / (double)total);
    cr_assert(fabs(mean - gamma) < 4.5 * sigma, "green fraction %.5f, gamma %.2f, sigma %.5f", mean, gamma, sigma);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(kgw, lefthash_green_fraction_is_gamma) { check_green_fraction(TM_WM_SEEDING_LEFTHASH, 1); }
Test(kgw, selfhash_green_fraction_is_gamma) { check_green_fraction(TM_WM_SEEDING_SELFHASH, 4); }

/* Two keys give independent lists: they agree on a token with probability
 * gamma^2 + (1-gamma)^2 = 0.625 (gamma 0.25), within 4.5 sigma, and differ somewhere. */
Test(kgw, two_keys_give_different_lists) {
    tm_wm_key *a = wm_test_master_key(), *b = wm_test_seeded_key(0);
    tm_wm_config config = kgw_config(TM_WM_SEEDING_LEFTHASH, 1);
    tm_wm_scheme *sa = wm_test_scheme(&config, a), *sb = wm_test_scheme(&config, b);
    enum { V = 32000 };
    size_t agree = 0;
    int32_t context = 1234;
    for (int32_t w = 0; w < V; w++) agree += wm_test_green(sa, &context, 1, w) == wm_test_green(sb, &context, 1, w);
    double p = 0.625, sigma = sqrt(p * (1 - p) / V);
    cr_assert(agree < V);
    cr_assert(fabs((double)agree / V - p) < 4.5 * sigma, "agreement %.4f", (double)agree / V);
    tm_wm_scheme_free(sa);
    tm_wm_scheme_free(sb);
    tm_wm_key_free(a);
    tm_wm_key_free(b);
}

/* ---- the generation face --------------------------------------------------------- */

/* Apply the stage to candidates with ids in a scrambled order (not a multiple
 * of the batch width): each logit must move by exactly delta when the
 * detector calls the token green, and not at all otherwise. */
static void check_stage_matches_detector(tm_wm_seeding seeding, int32_t h, const int32_t *history, size_t n_history) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = kgw_config(seeding, h);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    cr_assert_eq(tm_wm_scheme_stage(scheme), TM_WM_STAGE_LOGITS);
    tm_sampler *sampler = tm_wm_sampler(scheme, 1);
    cr_assert_not_null(sampler);
    for (size_t i = 0; i < n_history; i++) sampler->interface->accept(sampler, history[i]);
    enum { V = 32003 };
    tm_token_data *data = malloc(V * sizeof *data);
    float *base = malloc(V * sizeof *base);
    uint64_t rng = 99;
    for (int32_t i = 0; i < V; i++) {
        int32_t id = (int32_t)(((int64_t)i * 7919) % V); /* a permutation of 0..V-1 */
        base[i] = (float)(wm_test_lcg(&rng) % 1000) / 100.0f - 5.0f;
        data[i] = (tm_token_data){id, base[i], 0.0f};
    }
    tm_candidates candidates = {data, V, true, -1};
    sampler->interface->apply(sampler, &candidates);
    cr_assert_eq(candidates.size, (size_t)V);
    size_t green = 0;
    for (int32_t i = 0; i < V; i++) {
        int g = wm_test_green(scheme, history, n_history, data[i].id);
        green += (size_t)g;
        float expected = g ? base[i] + (float)config.delta : base[i];
        cr_assert(data[i].logit == expected, "token %d: logit %g, expected %g", data[i].id, data[i].logit, expected);
    }
    cr_assert(green > 0 && green < V);
    cr_assert_not(candidates.sorted, "biased logits are no longer sorted");
    tm_sampler_free(sampler);
    free(data);
    free(base);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(kgw, lefthash_stage_adds_delta_to_green_only) {
    int32_t history[] = {5, 17, 29871};
    check_stage_matches_detector(TM_WM_SEEDING_LEFTHASH, 1, history, 3);
}
Test(kgw, lefthash_h3_stage_adds_delta_to_green_only) {
    int32_t history[] = {5, 17, 29871};
    check_stage_matches_detector(TM_WM_SEEDING_LEFTHASH, 3, history, 3);
}
Test(kgw, selfhash_stage_adds_delta_to_green_only) {
    int32_t history[] = {1, 31999, 450, 450, 13};
    check_stage_matches_detector(TM_WM_SEEDING_SELFHASH, 4, history, 5);
}

/* SelfHash keeps ranks and draws from step to step (the sampler's cache):
 * over 60 steps whose contexts repeat tokens, slide, come back after leaving
 * and hold one token twice, with a vocabulary that grows once (the cache is
 * rebuilt) and a sparse step (the uncached path), every step's logits must
 * still move by exactly delta where the one-token detector says green. */
Test(kgw, selfhash_stage_matches_detector_across_steps) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = kgw_config(TM_WM_SEEDING_SELFHASH, 4);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampler *sampler = tm_wm_sampler(scheme, 1);
    enum { V = 3001, STEPS = 60 };
    tm_token_data *data = malloc((V + 500) * sizeof *data);
    float *base = malloc((V + 500) * sizeof *base);
    int32_t history[STEPS + 8] = {7, 8, 9};
    size_t n_history = 3;
    for (size_t i = 0; i < n_history; i++) sampler->interface->accept(sampler, history[i]);
    uint64_t rng = 41;
    for (int step = 0; step < STEPS; step++) {
        size_t n = step < 30 ? V : V + 500; /* ids beyond the first cover from step 30 */
        bool sparse = step == 45;           /* a few scattered ids */
        if (sparse) n = 50;
        for (size_t i = 0; i < n; i++) {
            int32_t id = sparse ? (int32_t)(i * 67 + 3) : (int32_t)((i * 7919) % n);
            base[i] = (float)(wm_test_lcg(&rng) % 1000) / 100.0f;
            data[i] = (tm_token_data){id, base[i], 0.0f};
        }
        tm_candidates candidates = {data, n, false, -1};
        sampler->interface->apply(sampler, &candidates);
        for (size_t i = 0; i < n; i++) {
            int g = wm_test_green(scheme, history, n_history, data[i].id);
            float expected = g ? base[i] + (float)config.delta : base[i];
            cr_assert(data[i].logit == expected, "step %d token %d", step, data[i].id);
        }
        /* The next token: often one seen a few steps back, sometimes the
         * same as the last, sometimes new. */
        int32_t next;
        uint32_t pick = wm_test_lcg(&rng) % 4;
        if (pick == 0) next = history[n_history - 1];
        else if (pick == 1 && n_history > 5) next = history[n_history - 5];
        else next = (int32_t)(wm_test_lcg(&rng) % (uint32_t)n);
        if (sparse) next = 3;
        sampler->interface->accept(sampler, next);
        history[n_history++] = next;
    }
    tm_sampler_free(sampler);
    free(data);
    free(base);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

/* Fewer than h history tokens (LeftHash) or h-1 (SelfHash): logits untouched,
 * and the detector leaves such tokens unscored. */
Test(kgw, short_history_leaves_logits_untouched) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_seeding seedings[2] = {TM_WM_SEEDING_LEFTHASH, TM_WM_SEEDING_SELFHASH};
    int32_t widths[2] = {2, 4};
    for (int s = 0; s < 2; s++) {
        tm_wm_config config = kgw_config(seedings[s], widths[s]);
        tm_wm_scheme *scheme = wm_test_scheme(&config, key);
        tm_sampler *sampler = tm_wm_sampler(scheme, 1);
        size_t needed = s == 0 ? 2 : 3;
        enum { V = 500 };
        tm_token_data data[V];
        for (size_t step = 0; step <= needed; step++) {
            for (int32_t i = 0; i < V; i++) data[i] = (tm_token_data){i, 0.0f, 0.0f};
            tm_candidates candidates = {data, V, false, -1};
            sampler->interface->apply(sampler, &candidates);
            size_t changed = 0;
            for (int32_t i = 0; i < V; i++) changed += data[i].logit != 0.0f;
            if (step < needed) cr_assert_eq(changed, 0, "step %zu", step);
            else cr_assert_gt(changed, 0);
            sampler->interface->accept(sampler, (int32_t)(10 + step));
        }
        int32_t context[3] = {1, 2, 3};
        double value;
        cr_assert_eq(tm_wm_token_values(scheme, context, needed - 1, 7, &value, 1), 0);
        cr_assert_eq(tm_wm_token_values(scheme, context, needed, 7, &value, 0), 0, "no room, no value");
        tm_sampler_free(sampler);
        tm_wm_scheme_free(scheme);
    }
    tm_wm_key_free(key);
}

/* Simulated generation over a flat-ish distribution: with delta 2 and gamma
 * 0.25 a green token is drawn with probability about gamma e^delta /
 * (gamma e^delta + 1 - gamma) = 0.71; over 400 tokens the green fraction is
 * far above gamma (the null's mean 0.25 plus 4.5 sigma is 0.35). */
static double generated_green_fraction(tm_wm_seeding seeding, int32_t h, uint64_t seed, int32_t *out, size_t n) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = kgw_config(seeding, h);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    params.seed = seed;
    static const int32_t prefix[] = {1, 2, 3, 4};
    double fraction = wm_test_generate_green_fraction(scheme, false, &params, prefix, 4, out, n);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
    return fraction;
}

Test(kgw, generation_is_mostly_green) {
    double lefthash = generated_green_fraction(TM_WM_SEEDING_LEFTHASH, 1, 11, NULL, 400);
    double selfhash = generated_green_fraction(TM_WM_SEEDING_SELFHASH, 4, 11, NULL, 400);
    cr_assert_gt(lefthash, 0.5, "LeftHash green fraction %.3f", lefthash);
    cr_assert_gt(selfhash, 0.5, "SelfHash green fraction %.3f", selfhash);
}

Test(kgw, same_key_seed_and_context_give_the_same_tokens) {
    int32_t a[100], b[100], c[100];
    generated_green_fraction(TM_WM_SEEDING_LEFTHASH, 1, 3, a, 100);
    generated_green_fraction(TM_WM_SEEDING_LEFTHASH, 1, 3, b, 100);
    generated_green_fraction(TM_WM_SEEDING_LEFTHASH, 1, 4, c, 100);
    cr_assert_arr_eq(a, b, sizeof a);
    cr_assert(memcmp(a, c, sizeof a) != 0, "another seed, another text");
}

/* A detector counts each draw once by the scheme's fingerprint. For SelfHash
 * the green bit reads only (anchor, token): equal fingerprints must mean equal
 * bits, different contexts with one anchor must share a fingerprint (the
 * correlation that inflated false positives when pairs were keyed by the whole
 * context), and LeftHash must still tell contexts apart. */
Test(kgw, fingerprints_name_exactly_the_draw) {
    tm_wm_key *key = wm_test_seeded_key(3);
    tm_wm_config self_config = kgw_config(TM_WM_SEEDING_SELFHASH, 4), left_config = kgw_config(TM_WM_SEEDING_LEFTHASH, 1);
    tm_wm_scheme *self = wm_test_scheme(&self_config, key), *left = wm_test_scheme(&left_config, key);
    enum { PAIRS = 20000, SLOTS = 1 << 16 };
    uint64_t *fingerprints = calloc(SLOTS, sizeof *fingerprints);
    signed char *bits = calloc(SLOTS, 1);
    uint64_t state = 12345;
    size_t shared = 0;
    for (int i = 0; i < PAIRS; i++) {
        int32_t context[4], token;
        for (int k = 0; k < 4; k++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            context[k] = (int32_t)(state >> 59); /* 32 ids: many contexts share an anchor */
        }
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        token = (int32_t)(state >> 59);
        double value;
        cr_assert_eq(tm_wm_token_values(self, context, 4, token, &value, 1), 1);
        uint64_t f = tm_wm_token_fingerprint(self, context, 4, token);
        size_t slot = (size_t)(f >> 48);
        while (fingerprints[slot] && fingerprints[slot] != f) slot = (slot + 1) & (SLOTS - 1);
        if (fingerprints[slot] == f) {
            shared++;
            cr_assert_eq(bits[slot], (signed char)value, "one fingerprint, two green bits");
        } else {
            fingerprints[slot] = f;
            bits[slot] = (signed char)value;
        }
    }
    /* 32^5 contexts x tokens but only 32 x 32 (anchor, token) pairs: nearly all repeat. */
    cr_assert_gt(shared, PAIRS - 32 * 32);
    /* Same anchor (the token ranks itself first), different contexts: one draw. */
    int32_t a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    size_t same_anchor = 0;
    for (int32_t token = 0; token < 512; token++) {
        if (tm_wm_token_fingerprint(self, a, 4, token) == tm_wm_token_fingerprint(self, b, 4, token)) {
            double va, vb;
            tm_wm_token_values(self, a, 4, token, &va, 1);
            tm_wm_token_values(self, b, 4, token, &vb, 1);
            cr_assert_eq(va, vb);
            same_anchor++;
        }
    }
    /* The branch must have run: tokens that rank themselves first exist. */
    cr_assert_gt(same_anchor, 0, "no token shares its fingerprint across the two contexts");
    int32_t x = 7, y = 9;
    cr_assert_neq(tm_wm_token_fingerprint(left, &x, 1, 3), tm_wm_token_fingerprint(left, &y, 1, 3));
    free(fingerprints);
    free(bits);
    tm_wm_scheme_free(self);
    tm_wm_scheme_free(left);
    tm_wm_key_free(key);
}
