/* Tests for the sampler chain (generator/sampler.c) against outside references:
 * the published SplitMix64 and xoshiro256** outputs plus a separate
 * implementation written from the definitions at prng.di.unimi.it, llama.cpp's
 * formulas for every stage checked on hand-computed logits, and the
 * distribution sampler's empirical frequencies checked against the softmax
 * with a chi-square test at a tabulated critical value. No timing is asserted. */
#include "chain_testing.h"
#include "tracemark/generator.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------- */

/* Candidates over logits[0..n), ids 0..n-1, in a caller-owned array. */
static tm_candidates make_candidates(tm_token_data *storage, const float *logits, size_t n) {
    for (size_t i = 0; i < n; i++) storage[i] = (tm_token_data){(int32_t)i, logits[i], 0.0f};
    return (tm_candidates){storage, n, false, -1};
}

static void apply(tm_sampler *sampler, tm_candidates *candidates) {
    cr_assert_not_null(sampler);
    sampler->interface->apply(sampler, candidates);
}

static bool contains(const tm_candidates *candidates, int32_t id) {
    for (size_t i = 0; i < candidates->size; i++)
        if (candidates->data[i].id == id) return true;
    return false;
}

static int by_logit_descending(const void *a, const void *b) {
    const tm_token_data *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Deterministic pseudo-random logits in [-8, 8) from a tiny LCG (not tm_rng,
 * so that the data does not depend on the code under test). */
static void fill_logits(float *logits, size_t n, uint64_t seed) {
    uint64_t x = seed * 2 + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        logits[i] = (float)((double)(x >> 11) * 0x1.0p-53 * 16.0 - 8.0);
    }
}

/* Logits whose softmax is exactly the given probabilities (up to rounding). */
static void logits_from_probabilities(float *logits, const double *p, size_t n) {
    for (size_t i = 0; i < n; i++) logits[i] = (float)log(p[i]);
}

/* ---- independent reference PRNGs (from the definitions at prng.di.unimi.it) */

static uint64_t reference_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t reference_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t reference_xoshiro256ss(uint64_t s[4]) {
    uint64_t result = reference_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = reference_rotl(s[3], 45);
    return result;
}

/* ======================================================================== */
/* RNG                                                                       */
/* ======================================================================== */

Test(rng, seeding_uses_published_splitmix64_outputs) {
    /* SplitMix64 seeded with 0: the published first outputs. */
    tm_rng rng;
    tm_rng_seed(&rng, 0);
    cr_assert_eq(rng.s[0], 0xe220a8397b1dcdafULL);
    cr_assert_eq(rng.s[1], 0x6e789e6aa1b965f4ULL);
    cr_assert_eq(rng.s[2], 0x06c45d188009454fULL);
    cr_assert_eq(rng.s[3], 0xf88bb8a8724c81ecULL);

    uint64_t x = 42;
    tm_rng_seed(&rng, 42);
    for (int i = 0; i < 4; i++) cr_assert_eq(rng.s[i], reference_splitmix64(&x), "word %d", i);
    cr_assert_eq(rng.s[0], 0xbdd732262feb6e95ULL);
}

Test(rng, xoshiro256starstar_matches_published_vector) {
    /* Known-answer vector of xoshiro256** from state {1, 2, 3, 4}. */
    static const uint64_t expected[10] = {
        11520ULL, 0ULL, 1509978240ULL, 1215971899390074240ULL, 1216172134540287360ULL,
        607988272756665600ULL, 16172922978634559625ULL, 8476171486693032832ULL,
        10595114339597558777ULL, 2904607092377533576ULL};
    tm_rng rng = {{1, 2, 3, 4}};
    for (int i = 0; i < 10; i++) cr_assert_eq(tm_rng_next(&rng), expected[i], "output %d", i);
}

Test(rng, seeded_stream_matches_reference_implementation) {
    const uint64_t seeds[] = {0, 1, 42, 0xdeadbeefULL, UINT64_MAX};
    for (size_t k = 0; k < sizeof seeds / sizeof *seeds; k++) {
        uint64_t x = seeds[k], s[4];
        for (int i = 0; i < 4; i++) s[i] = reference_splitmix64(&x);
        tm_rng rng;
        tm_rng_seed(&rng, seeds[k]);
        for (int i = 0; i < 1000; i++) cr_assert_eq(tm_rng_next(&rng), reference_xoshiro256ss(s));
    }
}

Test(rng, uniform_is_top_24_bits) {
    tm_rng rng, twin;
    tm_rng_seed(&rng, 7);
    tm_rng_seed(&twin, 7);
    double sum = 0.0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        float u = tm_rng_uniform(&rng);
        uint64_t bits = tm_rng_next(&twin) >> 40;
        cr_assert_eq(u, (float)((double)bits / 16777216.0));
        cr_assert(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    /* Mean of U[0,1): sd of the mean is 1/sqrt(12 n) ~ 0.0009; 5 sd. */
    cr_assert(fabs(sum / n - 0.5) < 0.0046, "mean %f", sum / n);
}

/* ======================================================================== */
/* Sorting and softmax                                                       */
/* ======================================================================== */

Test(candidates, sort_matches_qsort_with_ties) {
    enum { N = 5000 };
    static float logits[N];
    static tm_token_data storage[N], reference[N];
    fill_logits(logits, N, 3);
    for (size_t i = 0; i < N; i += 7) logits[i] = 1.5f; /* many ties */
    tm_candidates c = make_candidates(storage, logits, N);
    memcpy(reference, storage, sizeof storage);
    qsort(reference, N, sizeof *reference, by_logit_descending);
    tm_candidates_sort(&c);
    cr_assert(c.sorted);
    cr_assert_eq(c.size, N);
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(c.data[i].id, reference[i].id, "position %zu", i);
        cr_assert_eq(c.data[i].logit, reference[i].logit);
    }
}

Test(candidates, softmax_is_stable_and_sorted) {
    const float logits[4] = {1000.0f, 998.0f, 1001.0f, -INFINITY};
    tm_token_data storage[4];
    tm_candidates c = make_candidates(storage, logits, 4);
    tm_candidates_softmax(&c);
    cr_assert(c.sorted);
    /* exp(0), exp(-1), exp(-3), 0 over their sum. */
    double z = 1.0 + exp(-1.0) + exp(-3.0);
    cr_assert_eq(c.data[0].id, 2);
    cr_assert_float_eq(c.data[0].p, 1.0 / z, 1e-6);
    cr_assert_eq(c.data[1].id, 0);
    cr_assert_float_eq(c.data[1].p, exp(-1.0) / z, 1e-6);
    cr_assert_eq(c.data[2].id, 1);
    cr_assert_float_eq(c.data[2].p, exp(-3.0) / z, 1e-6);
    cr_assert_eq(c.data[3].id, 3);
    cr_assert_eq(c.data[3].p, 0.0f);
}

Test(candidates, softmax_of_all_negative_infinity_is_uniform) {
    const float logits[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    tm_token_data storage[4];
    tm_candidates c = make_candidates(storage, logits, 4);
    tm_candidates_softmax(&c);
    for (int i = 0; i < 4; i++) cr_assert_float_eq(c.data[i].p, 0.25f, 1e-7);
}

/* ======================================================================== */
/* Processors                                                                */
/* ======================================================================== */

Test(greedy, picks_argmax_lowest_id_on_ties) {
    const float logits[6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f, 3.0f};
    tm_token_data storage[6];
    tm_sampler *greedy = tm_sampler_greedy();
    tm_candidates c = make_candidates(storage, logits, 6);
    apply(greedy, &c);
    cr_assert_eq(c.selected, 1);

    /* Same answer when the array is sorted with ties in a foreign order. */
    c = make_candidates(storage, logits, 6);
    tm_token_data sorted[6] = {{5, 3.0f, 0}, {3, 3.0f, 0}, {1, 3.0f, 0}, {4, 2.9f, 0}, {0, 0.5f, 0}, {2, -1.0f, 0}};
    c = (tm_candidates){sorted, 6, true, -1};
    apply(greedy, &c);
    cr_assert_eq(c.selected, 1);
    tm_sampler_free(greedy);
}

Test(top_k, keeps_exactly_the_k_largest_sorted) {
    enum { N = 32000 };
    static float logits[N];
    static tm_token_data storage[N], reference[N];
    fill_logits(logits, N, 11);
    tm_candidates c = make_candidates(storage, logits, N);
    memcpy(reference, storage, sizeof storage);
    qsort(reference, N, sizeof *reference, by_logit_descending);

    const int32_t ks[] = {1, 2, 10, 40, 1000};
    for (size_t j = 0; j < sizeof ks / sizeof *ks; j++) {
        tm_sampler *top_k = tm_sampler_top_k(ks[j]);
        c = make_candidates(storage, logits, N);
        apply(top_k, &c);
        cr_assert_eq(c.size, (size_t)ks[j]);
        cr_assert(c.sorted);
        for (int32_t i = 0; i < ks[j]; i++) cr_assert_eq(c.data[i].id, reference[i].id, "k %d rank %d", ks[j], i);
        tm_sampler_free(top_k);
    }
}

/* The k best through the vector passes that set aside the candidates near
 * the top (k up to an eighth of them) are the k best of a full sort, on
 * peaked logits (the pass gathers a few), flat ones (it gives up, more than
 * a quarter near the top), ties at the k-th logit (every tied id must be
 * weighed), -inf and NaN, the largest logit alone far above, and fewer than
 * k finite logits; and the same stage is used again over several sizes. */
Test(top_k, the_near_top_pass_keeps_what_a_full_sort_keeps) {
    enum { N = 5000 };
    static float logits[N];
    static tm_token_data storage[N], reference[N];
    const int32_t ks[] = {1, 3, 40, 400, 625};
    for (size_t j = 0; j < sizeof ks / sizeof *ks; j++) {
        tm_sampler *top_k = tm_sampler_top_k(ks[j]);
        for (int shape = 0; shape < 6; shape++) {
            size_t n = shape == 5 ? N / 2 + 17 : N; /* the stage's bits sized for one n, then another */
            fill_logits(logits, n, 100 * j + (size_t)shape);
            for (size_t i = 0; i < n; i++) {
                if (shape == 0) logits[i] *= 3.0f;                                       /* peaked: [-24, 24) */
                if (shape == 1) logits[i] *= 0.01f;                                      /* flat */
                if (shape == 2) logits[i] = floorf(logits[i] * 2.0f) / 2.0f * 3.0f;      /* many ties */
                if (shape == 3) logits[i] = i % 3 ? -INFINITY : i % 7 ? logits[i] : NAN; /* few finite */
                if (shape == 4 && i == 77) logits[i] = 1e30f;                            /* one far above */
            }
            tm_candidates c = make_candidates(storage, logits, n);
            memcpy(reference, storage, n * sizeof *reference);
            tm_candidates r = {reference, n, false, -1};
            tm_candidates_sort(&r);
            apply(top_k, &c);
            size_t k = (size_t)ks[j] < n ? (size_t)ks[j] : n;
            cr_assert_eq(c.size, k);
            cr_assert(c.sorted);
            for (size_t i = 0; i < k; i++)
                cr_assert_eq(c.data[i].id, reference[i].id, "k %d, shape %d, rank %zu", ks[j], shape, i);
        }
        tm_sampler_free(top_k);
    }
}

Test(top_k, off_and_oversized) {
    const float logits[5] = {0.1f, 0.4f, 0.3f, 0.0f, 0.2f};
    tm_token_data storage[5];
    tm_sampler *off = tm_sampler_top_k(0), *negative = tm_sampler_top_k(-3), *big = tm_sampler_top_k(99);
    tm_candidates c = make_candidates(storage, logits, 5);
    apply(off, &c);
    apply(negative, &c);
    cr_assert_eq(c.size, 5);
    cr_assert_not(c.sorted);
    for (int i = 0; i < 5; i++) cr_assert_eq(c.data[i].id, i);
    apply(big, &c);
    cr_assert_eq(c.size, 5);
    cr_assert(c.sorted);
    const int32_t order[5] = {1, 2, 4, 0, 3};
    for (int i = 0; i < 5; i++) cr_assert_eq(c.data[i].id, order[i]);
    tm_sampler_free(off);
    tm_sampler_free(negative);
    tm_sampler_free(big);
}

/* Probabilities 0.5, 0.2, 0.15, 0.1, 0.05 placed at ids 3, 0, 4, 1, 2. */
static const double hand_p[5] = {0.2, 0.1, 0.05, 0.5, 0.15};

Test(top_p, keeps_smallest_prefix_reaching_p) {
    float logits[5];
    logits_from_probabilities(logits, hand_p, 5);
    tm_token_data storage[5];
    struct { float p; size_t min_keep; size_t expect; } cases[] = {
        {0.45f, 1, 1}, /* 0.5 >= 0.45 */
        {0.6f, 1, 2},  /* 0.5, 0.7 */
        {0.8f, 1, 3},  /* 0.5, 0.7, 0.85 */
        {0.9f, 1, 4},  /* ..., 0.95 */
        {0.6f, 4, 4},  /* min_keep wins */
        {0.0f, 0, 1},  /* never empty */
    };
    const int32_t ranked[5] = {3, 0, 4, 1, 2};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tm_sampler *top_p = tm_sampler_top_p(cases[k].p, cases[k].min_keep);
        for (int presorted = 0; presorted < 2; presorted++) {
            tm_candidates c = make_candidates(storage, logits, 5);
            if (presorted) tm_candidates_sort(&c);
            apply(top_p, &c);
            cr_assert_eq(c.size, cases[k].expect, "p %g presorted %d: size %zu", cases[k].p, presorted, c.size);
            cr_assert(c.sorted);
            for (size_t i = 0; i < c.size; i++) {
                cr_assert_eq(c.data[i].id, ranked[i]);
                cr_assert_float_eq(c.data[i].p, hand_p[ranked[i]], 1e-6);
            }
        }
        tm_sampler_free(top_p);
    }
    /* p >= 1 is off. */
    tm_sampler *off = tm_sampler_top_p(1.0f, 1);
    tm_candidates c = make_candidates(storage, logits, 5);
    apply(off, &c);
    cr_assert_eq(c.size, 5);
    cr_assert_not(c.sorted);
    tm_sampler_free(off);
}

Test(top_p, heap_path_matches_sorted_path_on_large_vocab) {
    enum { N = 32000 };
    static float logits[N];
    static tm_token_data a[N], b[N];
    fill_logits(logits, N, 5);
    for (size_t i = 0; i < N; i++) logits[i] *= 1.5f; /* a peakier distribution */
    const float ps[] = {0.1f, 0.5f, 0.9f, 0.95f};
    for (size_t k = 0; k < 4; k++) {
        tm_sampler *top_p = tm_sampler_top_p(ps[k], 1);
        tm_candidates unsorted = make_candidates(a, logits, N);
        tm_candidates sorted = make_candidates(b, logits, N);
        tm_candidates_sort(&sorted);
        apply(top_p, &unsorted);
        apply(top_p, &sorted);
        cr_assert_eq(unsorted.size, sorted.size, "p %g", ps[k]);
        cr_assert(unsorted.size > 0 && unsorted.size < N);
        double total = 0.0;
        for (size_t i = 0; i < sorted.size; i++) {
            cr_assert_eq(unsorted.data[i].id, sorted.data[i].id);
            total += sorted.data[i].p;
        }
        cr_assert(total >= ps[k] && total - sorted.data[sorted.size - 1].p < ps[k]);
        tm_sampler_free(top_p);
    }
}

Test(min_p, keeps_tokens_above_fraction_of_max) {
    float logits[5];
    logits_from_probabilities(logits, hand_p, 5);
    tm_token_data storage[5];
    struct { float p; size_t min_keep; size_t expect; } cases[] = {
        {0.25f, 1, 3}, /* threshold 0.125: 0.5, 0.2, 0.15 */
        {0.35f, 1, 2}, /* threshold 0.175: 0.5, 0.2 */
        {0.15f, 1, 4}, /* threshold 0.075: all but 0.05 */
        {0.35f, 4, 4}, /* min_keep wins: the 4 best */
        {0.9f, 1, 1},
        {0.0f, 1, 5}, /* off */
    };
    const int32_t ranked[5] = {3, 0, 4, 1, 2};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tm_sampler *min_p = tm_sampler_min_p(cases[k].p, cases[k].min_keep);
        for (int presorted = 0; presorted < 2; presorted++) {
            tm_candidates c = make_candidates(storage, logits, 5);
            if (presorted) tm_candidates_sort(&c);
            apply(min_p, &c);
            cr_assert_eq(c.size, cases[k].expect, "min_p %g presorted %d: size %zu", cases[k].p, presorted, c.size);
            for (size_t i = 0; i < cases[k].expect; i++) cr_assert(contains(&c, ranked[i]));
            if (!presorted && cases[k].min_keep == 1) {
                /* The unsorted path compacts in place: ids stay ascending. */
                for (size_t i = 1; i < c.size; i++) cr_assert_lt(c.data[i - 1].id, c.data[i].id);
            }
        }
        tm_sampler_free(min_p);
    }
}

Test(min_p, threshold_is_exact_fraction_of_max) {
    /* p_max 0.5: min_p 0.3 puts the bar at 0.15, between 0.16 and 0.14;
     * min_p 0.27 puts it at 0.135, just under 0.14; 0.21 and 0.19 put it
     * just above and just below the two 0.1 tokens. */
    const double p[5] = {0.1, 0.16, 0.5, 0.14, 0.1};
    float logits[5];
    logits_from_probabilities(logits, p, 5);
    tm_token_data storage[5];
    struct { float p; size_t expect; } cases[] = {{0.3f, 2}, {0.27f, 3}, {0.21f, 3}, {0.19f, 5}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tm_sampler *min_p = tm_sampler_min_p(cases[k].p, 1);
        for (int presorted = 0; presorted < 2; presorted++) {
            tm_candidates c = make_candidates(storage, logits, 5);
            if (presorted) tm_candidates_sort(&c);
            apply(min_p, &c);
            cr_assert_eq(c.size, cases[k].expect, "min_p %g presorted %d", cases[k].p, presorted);
            for (size_t i = 0; i < c.size; i++) cr_assert_geq(p[c.data[i].id], cases[k].p * 0.5);
        }
        tm_sampler_free(min_p);
    }
}

Test(temperature, divides_logits) {
    const float logits[4] = {2.0f, -1.0f, 0.5f, 4.0f};
    tm_token_data storage[4];
    tm_sampler *t = tm_sampler_temperature(0.5f);
    tm_candidates c = make_candidates(storage, logits, 4);
    apply(t, &c);
    cr_assert_eq(c.size, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(c.data[i].id, i);
        cr_assert_float_eq(c.data[i].logit, logits[i] / 0.5f, 1e-6);
    }
    tm_sampler_free(t);

    /* Softmax after temperature T is softmax(l / T). */
    t = tm_sampler_temperature(2.0f);
    c = make_candidates(storage, logits, 4);
    apply(t, &c);
    tm_candidates_softmax(&c);
    double z = exp(1.0) + exp(-0.5) + exp(0.25) + exp(2.0);
    cr_assert_eq(c.data[0].id, 3);
    cr_assert_float_eq(c.data[0].p, exp(2.0) / z, 1e-6);
    tm_sampler_free(t);
}

Test(temperature, zero_or_negative_keeps_only_the_argmax) {
    const float logits[5] = {2.0f, 7.0f, 7.0f, -3.0f, 1.0f};
    tm_token_data storage[5];
    const float ts[] = {0.0f, -1.0f};
    for (int k = 0; k < 2; k++) {
        tm_sampler *t = tm_sampler_temperature(ts[k]);
        tm_candidates c = make_candidates(storage, logits, 5);
        apply(t, &c);
        cr_assert_eq(c.size, 1);
        cr_assert_eq(c.data[0].id, 1);
        cr_assert_eq(c.data[0].logit, 7.0f); /* values are left alone */
        tm_sampler_free(t);
    }
    cr_assert_null(tm_sampler_temperature(NAN));
}

Test(penalties, hand_computed_logits) {
    /* window 3, repeat 2, frequency 0.5, presence 0.25; accepted 1, 2, 2, 3:
     * the window holds 2, 2, 3 (token 1 has slid out). */
    const float logits[5] = {1.0f, 2.0f, -1.0f, 4.0f, 0.5f};
    tm_token_data storage[5];
    tm_sampler *penalties = tm_sampler_penalties(3, 2.0f, 0.5f, 0.25f);
    cr_assert_not_null(penalties);
    const int32_t accepted[4] = {1, 2, 2, 3};
    for (int i = 0; i < 4; i++) penalties->interface->accept(penalties, accepted[i]);
    tm_candidates c = make_candidates(storage, logits, 5);
    tm_candidates_sort(&c);
    apply(penalties, &c);
    cr_assert_not(c.sorted, "penalties change the order, so the array is no longer sorted");
    float expect[5];
    expect[0] = 1.0f;                      /* never seen */
    expect[1] = 2.0f;                      /* slid out of the window */
    expect[2] = -1.0f * 2.0f - (2 * 0.5f + 0.25f); /* negative: multiplied; count 2 */
    expect[3] = 4.0f / 2.0f - (1 * 0.5f + 0.25f);  /* positive: divided; count 1 */
    expect[4] = 0.5f;
    for (size_t i = 0; i < 5; i++) cr_assert_float_eq(c.data[i].logit, expect[c.data[i].id], 1e-6, "id %d", c.data[i].id);

    /* reset forgets the history. */
    penalties->interface->reset(penalties);
    c = make_candidates(storage, logits, 5);
    apply(penalties, &c);
    for (int i = 0; i < 5; i++) cr_assert_eq(c.data[i].logit, logits[i]);
    tm_sampler_free(penalties);
}

Test(penalties, repeat_only_and_invalid_parameters) {
    const float logits[3] = {3.0f, -3.0f, 0.0f};
    tm_token_data storage[3];
    tm_sampler *penalties = tm_sampler_penalties(64, 1.5f, 0.0f, 0.0f);
    for (int32_t id = 0; id < 3; id++) penalties->interface->accept(penalties, id);
    penalties->interface->accept(penalties, 0); /* counts don't matter to repeat */
    tm_candidates c = make_candidates(storage, logits, 3);
    apply(penalties, &c);
    cr_assert_float_eq(c.data[0].logit, 2.0f, 1e-6);
    cr_assert_float_eq(c.data[1].logit, -4.5f, 1e-6);
    cr_assert_eq(c.data[2].logit, 0.0f);
    tm_sampler_free(penalties);

    cr_assert_null(tm_sampler_penalties(64, 0.0f, 0.0f, 0.0f));
    cr_assert_null(tm_sampler_penalties(64, NAN, 0.0f, 0.0f));
    cr_assert_null(tm_sampler_penalties(64, 1.0f, INFINITY, 0.0f));
    /* A zero window is a stage that does nothing. */
    tm_sampler *none = tm_sampler_penalties(0, 2.0f, 1.0f, 1.0f);
    cr_assert_not_null(none);
    none->interface->accept(none, 0);
    c = make_candidates(storage, logits, 3);
    apply(none, &c);
    cr_assert_eq(c.data[0].logit, 3.0f);
    tm_sampler_free(none);
}

Test(penalties, many_distinct_tokens_in_window) {
    /* More distinct tokens than half the table: counts stay exact. */
    enum { N = 300 };
    static float logits[N];
    static tm_token_data storage[N];
    for (int i = 0; i < N; i++) logits[i] = 1.0f;
    tm_sampler *penalties = tm_sampler_penalties(200, 1.0f, 1.0f, 0.0f);
    for (int32_t id = 0; id < 250; id++) penalties->interface->accept(penalties, id % 150);
    /* The last 200 accepted are ids 50..149 then 0..99: ids 50..99 twice,
     * 0..49 and 100..149 once, the rest never. */
    tm_candidates c = make_candidates(storage, logits, N);
    apply(penalties, &c);
    for (int i = 0; i < N; i++) {
        float count = (i >= 50 && i < 100) ? 2.0f : (i < 150 ? 1.0f : 0.0f);
        cr_assert_float_eq(c.data[i].logit, 1.0f - count, 1e-6, "id %d", i);
    }
    tm_sampler_free(penalties);
}

/* ======================================================================== */
/* Distribution sampler                                                      */
/* ======================================================================== */

/* Pearson's chi-square of observed counts against expected probabilities. */
static double chi_square(const long *observed, const double *p, size_t n, long draws) {
    double chi = 0.0;
    for (size_t i = 0; i < n; i++) {
        double expected = p[i] * (double)draws;
        cr_assert(expected >= 5.0, "cell %zu too small for chi-square", i);
        chi += (observed[i] - expected) * (observed[i] - expected) / expected;
    }
    return chi;
}

Test(distribution, frequencies_match_softmax) {
    enum { N = 8, DRAWS = 100000 };
    const float logits[N] = {1.0f, 0.0f, 2.0f, -0.5f, 1.5f, 0.3f, -1.0f, 0.8f};
    double p[N], z = 0.0;
    for (int i = 0; i < N; i++) z += exp(logits[i]);
    for (int i = 0; i < N; i++) p[i] = exp(logits[i]) / z;

    tm_sampler_chain *chain = tm_sampler_chain_create();
    cr_assert(tm_sampler_chain_add(chain, tm_sampler_distribution(1234)));
    long counts[N] = {0};
    for (int d = 0; d < DRAWS; d++) {
        int32_t id = tm_sampler_chain_sample(chain, logits, N);
        cr_assert(id >= 0 && id < N);
        counts[id]++;
    }
    /* 7 degrees of freedom; the 0.999 quantile of chi-square(7) is 24.322. */
    double chi = chi_square(counts, p, N, DRAWS);
    cr_assert_lt(chi, 24.322, "chi-square %f", chi);
    tm_sampler_chain_free(chain);
}

Test(distribution, frequencies_after_top_k_and_temperature) {
    enum { N = 8, K = 4, DRAWS = 100000 };
    const float logits[N] = {1.0f, 0.0f, 2.0f, -0.5f, 1.5f, 0.3f, -1.0f, 0.8f};
    const float temperature = 0.7f;
    /* Top 4 are ids 2, 4, 0, 7; the rest must never appear. */
    const int kept[K] = {2, 4, 0, 7};
    double p[K], z = 0.0;
    for (int i = 0; i < K; i++) z += exp(logits[kept[i]] / temperature);
    for (int i = 0; i < K; i++) p[i] = exp(logits[kept[i]] / temperature) / z;

    tm_sampler_chain *chain = tm_sampler_chain_create();
    cr_assert(tm_sampler_chain_add(chain, tm_sampler_top_k(K)));
    cr_assert(tm_sampler_chain_add(chain, tm_sampler_temperature(temperature)));
    cr_assert(tm_sampler_chain_add(chain, tm_sampler_distribution(99)));
    long all[N] = {0}, counts[K];
    for (int d = 0; d < DRAWS; d++) all[tm_sampler_chain_sample(chain, logits, N)]++;
    for (int i = 0; i < K; i++) counts[i] = all[kept[i]];
    cr_assert_eq(all[1] + all[3] + all[5] + all[6], 0);
    /* 3 degrees of freedom; the 0.999 quantile of chi-square(3) is 16.266. */
    double chi = chi_square(counts, p, K, DRAWS);
    cr_assert_lt(chi, 16.266, "chi-square %f", chi);
    tm_sampler_chain_free(chain);
}

static void sample_sequence(uint64_t seed, int32_t *out, int n, bool reset_halfway) {
    enum { V = 512 };
    static float logits[V];
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    params.seed = seed;
    params.top_k = 100;
    params.top_p = 0.95f;
    params.temperature = 0.9f;
    params.repeat_penalty = 1.1f;
    tm_sampler_chain *chain = tm_sampler_chain_from_params(&params);
    cr_assert_not_null(chain);
    for (int i = 0; i < n; i++) {
        if (reset_halfway && i == n / 2) tm_sampler_chain_reset(chain);
        fill_logits(logits, V, (uint64_t)i % 37); /* the "model" depends on position only */
        out[i] = tm_sampler_chain_sample(chain, logits, V);
        cr_assert(out[i] >= 0 && out[i] < V);
        tm_sampler_chain_accept(chain, out[i]);
    }
    tm_sampler_chain_free(chain);
}

Test(distribution, same_seed_same_tokens_different_seed_differs) {
    enum { N = 400 };
    int32_t a[N], b[N], c[N];
    sample_sequence(42, a, N, false);
    sample_sequence(42, b, N, false);
    sample_sequence(43, c, N, false);
    cr_assert_arr_eq(a, b, sizeof a);
    int differ = 0;
    for (int i = 0; i < N; i++) differ += a[i] != c[i];
    cr_assert_gt(differ, N / 4, "only %d of %d tokens differ between seeds", differ, N);
}

Test(distribution, reset_reseeds) {
    enum { V = 64, N = 100 };
    float logits[V];
    fill_logits(logits, V, 17);
    tm_sampler_chain *chain = tm_sampler_chain_create();
    cr_assert(tm_sampler_chain_add(chain, tm_sampler_distribution(5)));
    int32_t first[N], second[N];
    for (int i = 0; i < N; i++) first[i] = tm_sampler_chain_sample(chain, logits, V);
    tm_sampler_chain_reset(chain);
    for (int i = 0; i < N; i++) second[i] = tm_sampler_chain_sample(chain, logits, V);
    cr_assert_arr_eq(first, second, sizeof first);
    tm_sampler_chain_free(chain);
}

/* ======================================================================== */
/* Chain                                                                     */
/* ======================================================================== */

Test(chain, top_k_one_equals_greedy) {
    enum { V = 32000 };
    static float logits[V];
    tm_sampler_chain *topk = tm_sampler_chain_create(), *greedy = tm_sampler_chain_create();
    cr_assert(tm_sampler_chain_add(topk, tm_sampler_top_k(1)));
    cr_assert(tm_sampler_chain_add(topk, tm_sampler_distribution(8)));
    cr_assert(tm_sampler_chain_add(greedy, tm_sampler_greedy()));
    for (uint64_t row = 0; row < 20; row++) {
        fill_logits(logits, V, row + 100);
        size_t argmax = 0;
        for (size_t i = 1; i < V; i++)
            if (logits[i] > logits[argmax]) argmax = i;
        int32_t a = tm_sampler_chain_sample(topk, logits, V), b = tm_sampler_chain_sample(greedy, logits, V);
        cr_assert_eq(a, b);
        cr_assert_eq(a, (int32_t)argmax);
    }
    tm_sampler_chain_free(topk);
    tm_sampler_chain_free(greedy);
}

Test(chain, empty_chain_falls_back_to_greedy) {
    const float logits[4] = {0.0f, 5.0f, 1.0f, 5.0f};
    tm_sampler_chain *chain = tm_sampler_chain_create();
    cr_assert_eq(tm_sampler_chain_sample(chain, logits, 4), 1);
    cr_assert(tm_sampler_chain_add(chain, tm_sampler_temperature(0.5f))); /* no selector */
    cr_assert_eq(tm_sampler_chain_sample(chain, logits, 4), 1);
    tm_sampler_chain_free(chain);
}

/* Every chain a caller is likely to build, for the edge-case tests. */
static tm_sampler_chain *edge_chain(int which) {
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    switch (which) {
    case 0: break;                              /* defaults: distribution */
    case 1: params.temperature = 0.0f; break;   /* greedy */
    case 2: params.top_k = 40; params.top_p = 0.9f; params.min_p = 0.05f; params.temperature = 0.8f; break;
    case 3: params.top_p = 0.5f; break;
    case 4: params.min_p = 0.2f; break;
    case 5: params.repeat_penalty = 1.3f; params.frequency_penalty = 0.2f; params.presence_penalty = 0.1f; break;
    case 6: params.temperature = 0.0f; params.repeat_penalty = 2.0f; break;
    default: return NULL;
    }
    return tm_sampler_chain_from_params(&params);
}

Test(chain, single_token_vocabulary) {
    const float logit[1] = {-3.0f};
    for (int which = 0; which <= 6; which++) {
        tm_sampler_chain *chain = edge_chain(which);
        cr_assert_not_null(chain);
        for (int i = 0; i < 5; i++) {
            cr_assert_eq(tm_sampler_chain_sample(chain, logit, 1), 0, "chain %d", which);
            tm_sampler_chain_accept(chain, 0);
        }
        tm_sampler_chain_free(chain);
    }
}

Test(chain, all_negative_infinity_but_one) {
    enum { V = 1000 };
    static float logits[V];
    for (int i = 0; i < V; i++) logits[i] = -INFINITY;
    logits[777] = -50.0f;
    for (int which = 0; which <= 6; which++) {
        tm_sampler_chain *chain = edge_chain(which);
        for (int i = 0; i < 50; i++) {
            cr_assert_eq(tm_sampler_chain_sample(chain, logits, V), 777, "chain %d", which);
            tm_sampler_chain_accept(chain, 777);
        }
        tm_sampler_chain_free(chain);
    }
}

Test(chain, degenerate_logits_still_give_a_valid_token) {
    enum { V = 16 };
    float logits[V];
    for (int which = 0; which <= 6; which++) {
        tm_sampler_chain *chain = edge_chain(which);
        for (int i = 0; i < V; i++) logits[i] = -INFINITY;
        int32_t id = tm_sampler_chain_sample(chain, logits, V);
        cr_assert(id >= 0 && id < V, "chain %d: all -inf gave %d", which, id);
        for (int i = 0; i < V; i++) logits[i] = NAN;
        logits[9] = 0.0f;
        cr_assert_eq(tm_sampler_chain_sample(chain, logits, V), 9, "chain %d: NaN must never win", which);
        logits[3] = INFINITY;
        cr_assert_eq(tm_sampler_chain_sample(chain, logits, V), 3, "chain %d: +inf must win", which);
        tm_sampler_chain_free(chain);
    }
}

Test(chain, bad_arguments) {
    const float logits[2] = {0.0f, 1.0f};
    tm_sampler_chain *chain = tm_sampler_chain_create();
    cr_assert_eq(tm_sampler_chain_sample(chain, NULL, 2), -1);
    cr_assert_eq(tm_sampler_chain_sample(chain, logits, 0), -1);
    cr_assert_eq(tm_sampler_chain_sample(chain, logits, -5), -1);
    cr_assert_eq(tm_sampler_chain_sample(NULL, logits, 2), -1);
    cr_assert_not(tm_sampler_chain_add(chain, NULL));
    cr_assert_not(tm_sampler_chain_add(NULL, tm_sampler_greedy())); /* frees it */
    tm_sampler_chain_accept(NULL, 1);
    tm_sampler_chain_reset(NULL);
    tm_sampler_chain_free(NULL);
    tm_sampler_free(NULL);
    tm_sampler_chain_free(chain);
}

Test(chain, buffer_grows_with_vocabulary) {
    static float big[4096];
    fill_logits(big, 4096, 1);
    big[4000] = 100.0f;
    const float small[3] = {0.0f, 2.0f, 1.0f};
    tm_sampler_chain *chain = tm_sampler_chain_create();
    cr_assert(tm_sampler_chain_add(chain, tm_sampler_greedy()));
    cr_assert_eq(tm_sampler_chain_sample(chain, small, 3), 1);
    cr_assert_eq(tm_sampler_chain_sample(chain, big, 4096), 4000);
    cr_assert_eq(tm_sampler_chain_sample(chain, small, 3), 1);
    tm_sampler_chain_free(chain);
}

/* ======================================================================== */
/* Parameters                                                                */
/* ======================================================================== */

Test(params, defaults) {
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    cr_assert_eq(params.temperature, 1.0f);
    cr_assert_eq(params.top_k, 0);
    cr_assert_eq(params.top_p, 1.0f);
    cr_assert_eq(params.min_p, 0.0f);
    cr_assert_eq(params.repeat_penalty, 1.0f);
    cr_assert_eq(params.frequency_penalty, 0.0f);
    cr_assert_eq(params.presence_penalty, 0.0f);
    cr_assert_eq(params.penalty_window, 64);
    cr_assert_eq(params.seed, 42);
}

Test(params, default_chain_is_plain_distribution_with_seed) {
    enum { V = 300, N = 200 };
    static float logits[V];
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    tm_sampler_chain *from_params = tm_sampler_chain_from_params(&params), *manual = tm_sampler_chain_create();
    cr_assert(tm_sampler_chain_add(manual, tm_sampler_distribution(42)));
    for (int i = 0; i < N; i++) {
        fill_logits(logits, V, (uint64_t)i);
        int32_t a = tm_sampler_chain_sample(from_params, logits, V), b = tm_sampler_chain_sample(manual, logits, V);
        cr_assert_eq(a, b, "token %d", i);
    }
    tm_sampler_chain_free(from_params);
    tm_sampler_chain_free(manual);
}

Test(params, zero_temperature_is_greedy_after_penalties) {
    /* Token 0 leads; with repeat penalty 4 after it was emitted, token 1 leads. */
    const float logits[3] = {4.0f, 3.0f, -2.0f};
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    params.temperature = 0.0f;
    params.repeat_penalty = 4.0f;
    tm_sampler_chain *chain = tm_sampler_chain_from_params(&params);
    for (int i = 0; i < 10; i++) cr_assert_eq(tm_sampler_chain_sample(chain, logits, 3), 0);
    tm_sampler_chain_accept(chain, 0);
    cr_assert_eq(tm_sampler_chain_sample(chain, logits, 3), 1);
    tm_sampler_chain_reset(chain);
    cr_assert_eq(tm_sampler_chain_sample(chain, logits, 3), 0);
    tm_sampler_chain_free(chain);
}

Test(params, invalid_parameters_give_null) {
    tm_sampling_params params;
    cr_assert_null(tm_sampler_chain_from_params(NULL));
    tm_sampling_params_default(&params);
    params.temperature = NAN;
    cr_assert_null(tm_sampler_chain_from_params(&params));
    tm_sampling_params_default(&params);
    params.repeat_penalty = -1.0f;
    cr_assert_null(tm_sampler_chain_from_params(&params));
    tm_sampling_params_default(&params);
    params.top_p = NAN;
    cr_assert_null(tm_sampler_chain_from_params(&params));
}

/* ======================================================================== */
/* Pre-truncation before a logit-raising stage                              */
/* ======================================================================== */

/* A stand-in for a watermark's logit bias: adds delta to about a quarter of
 * the candidates (by a hash of id and step), declares delta as its largest
 * raise, and counts the candidates it was handed. */
typedef struct {
    float delta;
    uint64_t step;
    size_t seen;
} raising_state;

static const char *raising_name(const tm_sampler *sampler) { (void)sampler; return "raising"; }

static bool raised(int32_t id, uint64_t step) {
    uint64_t h = ((uint64_t)id + 1) * UINT64_C(0x9E3779B97F4A7C15) ^ step * UINT64_C(0xD6E8FEB86659FD93);
    return (h >> 61) < 2;
}

static void raising_apply(tm_sampler *sampler, tm_candidates *candidates) {
    raising_state *s = sampler->state;
    for (size_t i = 0; i < candidates->size; i++)
        if (raised(candidates->data[i].id, s->step)) candidates->data[i].logit += s->delta;
    candidates->sorted = false;
    s->seen += candidates->size;
    s->step++;
}

static float raising_max(const tm_sampler *sampler) { return ((const raising_state *)sampler->state)->delta; }

static void raising_free(tm_sampler *sampler) { free(sampler->state); }

static const tm_sampler_interface raising_interface = {
    .name = raising_name, .apply = raising_apply, .free = raising_free, .max_raise = raising_max};

static tm_sampler *raising_stage(float delta, raising_state **state) {
    tm_sampler *sampler = malloc(sizeof *sampler);
    raising_state *s = calloc(1, sizeof *s);
    cr_assert(sampler && s);
    s->delta = delta;
    *sampler = (tm_sampler){&raising_interface, s};
    *state = s;
    return sampler;
}

/* A selector that records what reaches it (ids and logits, by id) and
 * selects the first candidate. */
enum { RECORDED_MAX = 4096 };
typedef struct {
    size_t n;
    tm_token_data set[RECORDED_MAX];
} recording_state;

static const char *recording_name(const tm_sampler *sampler) { (void)sampler; return "recording"; }

static int by_id(const void *a, const void *b) {
    const tm_token_data *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static void recording_apply(tm_sampler *sampler, tm_candidates *candidates) {
    recording_state *s = sampler->state;
    cr_assert_leq(candidates->size, (size_t)RECORDED_MAX);
    s->n = candidates->size;
    memcpy(s->set, candidates->data, s->n * sizeof *s->set);
    qsort(s->set, s->n, sizeof *s->set, by_id);
    candidates->selected = s->n ? candidates->data[0].id : -1;
}

static const tm_sampler_interface recording_interface = {
    .name = recording_name, .apply = recording_apply, .free = raising_free};

static tm_sampler *recording_stage(recording_state **state) {
    tm_sampler *sampler = malloc(sizeof *sampler);
    recording_state *s = calloc(1, sizeof *s);
    cr_assert(sampler && s);
    *sampler = (tm_sampler){&recording_interface, s};
    *state = s;
    return sampler;
}

Test(pre_truncation, draws_what_the_chain_without_it_draws) {
    enum { V = 4096, ROWS = 60 };
    static float logits[V];
    /* What reaches the raising stage: most candidates dropped, or all kept
     * (nothing to drop, or more than a quarter would pass: then the stage
     * gets the whole vocabulary, for its dense paths). */
    enum { DROPS_MOST, KEEPS_ALL };
    const struct { float t; int32_t k; float top_p, min_p, delta; int expect; } cases[] = {
        {1.0f, 40, 1.0f, 0.0f, 2.0f, DROPS_MOST},    {0.8f, 40, 0.95f, 0.05f, 2.0f, DROPS_MOST},
        {1.0f, 0, 1.0f, 0.2f, 2.0f, DROPS_MOST},     {1.0f, 5, 1.0f, 0.2f, 3.0f, DROPS_MOST},
        {0.0f, 0, 1.0f, 0.0f, 2.0f, DROPS_MOST},     {1.0f, 1, 1.0f, 0.0f, 0.0f, DROPS_MOST},
        {1.0f, 500, 1.0f, 0.0f, 1.0f, DROPS_MOST},   {1.0f, 0, 0.9f, 0.05f, 2.0f, KEEPS_ALL},
        {1.0f, 5000, 1.0f, 0.0f, 2.0f, KEEPS_ALL},   {1.0f, 0, 1.0f, 0.0f, 2.0f, KEEPS_ALL},
        {1.0f, 40, 1.0f, 0.0f, 64.0f, KEEPS_ALL},    {1.0f, 0, 1.0f, 0.05f, 2.0f, KEEPS_ALL},
        {1.0f, 0, 0.9f, 0.3f, 2.0f, KEEPS_ALL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tm_sampling_params p;
        tm_sampling_params_default(&p);
        p.temperature = cases[c].t, p.top_k = cases[c].k, p.top_p = cases[c].top_p, p.min_p = cases[c].min_p;
        p.seed = 1000 + c;
        raising_state *with_state, *without_state;
        tm_sampler_chain *with = tm_sampler_chain_build(&p, raising_stage(cases[c].delta, &with_state), NULL);
        tm_sampler_chain *without =
            chain_without_pre_truncation(&p, raising_stage(cases[c].delta, &without_state), NULL);
        cr_assert_not_null(with);
        for (uint64_t row = 0; row < ROWS; row++) {
            fill_logits(logits, V, 7 * row + c);
            /* Ties within and across the raise: logits on a grid of 1/4, some -inf. */
            for (size_t i = 0; i < V; i++) logits[i] = row % 2 ? floorf(logits[i] * 4.0f) / 4.0f : logits[i];
            if (row % 3 == 0)
                for (size_t i = 0; i < V; i += 17) logits[i] = -INFINITY;
            int32_t a = tm_sampler_chain_sample(with, logits, V), b = tm_sampler_chain_sample(without, logits, V);
            cr_assert_eq(a, b, "case %zu row %llu: %d with the pre-truncation, %d without", c,
                         (unsigned long long)row, a, b);
        }
        cr_assert_eq(without_state->seen, (size_t)V * ROWS);
        size_t all = (size_t)V * ROWS;
        if (cases[c].expect == DROPS_MOST)
            cr_assert_lt(with_state->seen, all / 4, "case %zu: %zu candidates reached the stage", c, with_state->seen);
        else
            cr_assert_eq(with_state->seen, all, "case %zu: %zu candidates reached the stage", c, with_state->seen);
        tm_sampler_chain_free(with);
        tm_sampler_chain_free(without);
    }
}

/* Stronger than the draws: the set the final stage receives, ids and
 * logits, is the same with and without the pre-truncation, including
 * candidates right at the bounds (logits placed just above and below them). */
Test(pre_truncation, the_truncated_set_is_the_same) {
    enum { V = 4096, ROWS = 40 };
    static float logits[V];
    const struct { int32_t k; float min_p, delta; } cases[] = {
        {40, 0.0f, 2.0f}, {0, 0.05f, 2.0f}, {7, 0.3f, 1.5f}, {1, 0.0f, 3.0f}, {100, 0.01f, 0.5f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tm_sampling_params p;
        tm_sampling_params_default(&p);
        p.top_k = cases[c].k, p.min_p = cases[c].min_p;
        raising_state *with_raise, *without_raise;
        recording_state *with_set, *without_set;
        tm_sampler_chain *with =
            tm_sampler_chain_build(&p, raising_stage(cases[c].delta, &with_raise), recording_stage(&with_set));
        tm_sampler_chain *without = chain_without_pre_truncation(&p, raising_stage(cases[c].delta, &without_raise),
                                                                 recording_stage(&without_set));
        cr_assert_not_null(with);
        for (uint64_t row = 0; row < ROWS; row++) {
            fill_logits(logits, V, 11 * row + c);
            /* Crowd the min-p bound: on odd rows the largest logit is one the
             * stage leaves alone, 10 above the rest, so the largest after the
             * stage is the largest before it; then a fifth of the logits go to
             * a few ulps around max + log(min_p) - delta, where float
             * rounding decides whether a raised one stays. */
            size_t top = 0;
            for (size_t i = 0; i < V; i++)
                if (!raised((int32_t)i, row) && (raised((int32_t)top, row) || logits[i] > logits[top])) top = i;
            if (row % 2) logits[top] += 10.0f;
            float max = -INFINITY;
            for (size_t i = 0; i < V; i++) max = logits[i] > max ? logits[i] : max;
            if (cases[c].min_p > 0.0f) {
                float edge = max + logf(cases[c].min_p) - cases[c].delta;
                for (size_t i = 1; i < V; i += 10) { /* edge moved by -3..3 ulps */
                    float x = edge;
                    for (int step = (int)(i / 10 % 7) - 3; step != 0; step += step < 0 ? 1 : -1)
                        x = nextafterf(x, step < 0 ? -INFINITY : INFINITY);
                    if (i != top) logits[i] = x;
                }
                for (size_t i = 3; i < V; i += 10)
                    if (i != top) logits[i] = edge + (float)((int)(i % 9) - 4) * 0x1.0p-20f;
            }
            tm_sampler_chain_sample(with, logits, V);
            tm_sampler_chain_sample(without, logits, V);
            cr_assert_eq(with_set->n, without_set->n, "case %zu row %llu: %zu candidates against %zu", c,
                         (unsigned long long)row, with_set->n, without_set->n);
            for (size_t i = 0; i < with_set->n; i++) {
                cr_assert_eq(with_set->set[i].id, without_set->set[i].id);
                cr_assert_eq(with_set->set[i].logit, without_set->set[i].logit);
            }
        }
        cr_assert_lt(with_raise->seen, without_raise->seen);
        tm_sampler_chain_free(with);
        tm_sampler_chain_free(without);
    }
}

Test(pre_truncation, a_stage_without_a_bound_sees_every_candidate) {
    enum { V = 1000 };
    static float logits[V];
    fill_logits(logits, V, 3);
    tm_sampling_params p;
    tm_sampling_params_default(&p);
    p.top_k = 10;
    const float bounds[] = {NAN, INFINITY, -1.0f};
    for (size_t b = 0; b < 3; b++) {
        raising_state *state;
        tm_sampler *stage = raising_stage(bounds[b], &state);
        tm_sampler_chain *chain = tm_sampler_chain_build(&p, stage, NULL);
        cr_assert_not_null(chain);
        cr_assert_geq(tm_sampler_chain_sample(chain, logits, V), 0);
        cr_assert_eq(state->seen, (size_t)V, "bound %g", (double)bounds[b]);
        tm_sampler_chain_free(chain);
    }
}
