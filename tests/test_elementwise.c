/* The element-wise steps of the softmaxes (core/elementwise.c) give the bits
 * of the one-by-one loops they replace, and so do the softmaxes built on them:
 * the sampler's draw (the token a seed picks) and the watermark stages'
 * tm_wm_softmax. .ci/run runs this file on every forced SIMD path
 * (TM_NO_AVX512, TM_NO_AVX2), so each vector version meets the loops. */
#include "tracemark/core.h"
#include "tracemark/generator.h"
#include "../watermark/scheme.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Logits as models give them (a few units apart), with -inf entries (a
 * stage that masked tokens), and some NaNs where asked. */
static void fill_logits(float *x, size_t n, uint64_t seed, bool nans) {
    tm_rng rng;
    tm_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        float u = tm_rng_uniform(&rng);
        x[i] = 12.0f * u - 6.0f;
        if (i % 97 == 5) x[i] = -INFINITY;
        if (nans && i % 211 == 7) x[i] = NAN;
    }
}

/* Each step over all lengths from 1 to 40 and a few more, so that every
 * vector width meets its tail: fill, max, exp with its sum, division. */
Test(elementwise, max_exp_sum_and_normalisation_match_the_loops) {
    enum { N = 1000 };
    float x[N], y[N];
    for (size_t n = 1; n <= N; n = n < 40 ? n + 1 : n * 3) {
        fill_logits(x, n, n, true);
        x[n / 2] = n % 2 ? 95.0f : -104.0f; /* expf's slow range */
        float max = -INFINITY;
        for (size_t i = 0; i < n; i++)
            if (x[i] > max) max = x[i];
        cr_assert_eq(bits_of(tm_max_float(x, n)), bits_of(max), "max of %zu", n);
        tm_token_data d[N + 1];
        d[n] = (tm_token_data){-7, 1.0f, 2.0f}; /* past the end: must stay as it is */
        for (size_t i = 0; i < n; i++) d[i] = (tm_token_data){-1, 1.0f, 1.0f};
        tm_candidates_fill(d, x, n);
        for (size_t i = 0; i < n; i++) {
            cr_assert(d[i].id == (int32_t)i && bits_of(d[i].p) == 0, "candidate %zu of %zu", i, n);
            cr_assert_eq(bits_of(d[i].logit), bits_of(isnan(x[i]) ? -INFINITY : x[i]), "logit %zu of %zu", i, n);
        }
        cr_assert(d[n].id == -7 && d[n].logit == 1.0f && d[n].p == 2.0f, "fill wrote past %zu candidates", n);
        for (size_t i = 0; i < n; i++) d[i].logit = x[i]; /* NaNs again, for the steps below */
        cr_assert_eq(bits_of(tm_candidates_max_logit(d, n)), bits_of(max), "candidates' max of %zu", n);

        memcpy(y, x, n * sizeof *x);
        tm_expf_shifted(y, n, 1.25f);
        for (size_t i = 0; i < n; i++) {
            float e = expf(x[i] - 1.25f);
            cr_assert(isnan(e) ? isnan(y[i]) : bits_of(y[i]) == bits_of(e), "expf(%a - 1.25) of %zu", (double)x[i], n);
        }
        double sum = 0.0;
        for (size_t i = 0; i < n; i++) {
            d[i].p = -1.0f;
            y[i] = expf(x[i] - 1.25f);
            sum += y[i];
        }
        double got = tm_candidates_exp(d, n, 1.25f, false);
        cr_assert(isnan(sum) ? isnan(got) : got == sum, "sum of %zu", n);
        for (size_t i = 0; i < n; i++) cr_assert(isnan(y[i]) ? isnan(d[i].p) : bits_of(d[i].p) == bits_of(y[i]));
        sum = 0.0;
        for (size_t i = 0; i < n; i++) {
            y[i] = y[i] >= 0.0f ? y[i] : 0.0f;
            sum += y[i];
        }
        cr_assert(tm_candidates_exp(d, n, 1.25f, true) == sum, "sum of %zu, NaNs as 0", n);
        for (size_t i = 0; i < n; i++) cr_assert_eq(bits_of(d[i].p), bits_of(y[i]));
        tm_candidates_divide_p(d, n, sum);
        for (size_t i = 0; i < n; i++) cr_assert_eq(bits_of(d[i].p), bits_of((float)((double)y[i] / sum)));
        for (size_t i = 0; i < n; i++) d[i].p = y[i];
        tm_candidates_multiply_p(d, n, 1.0 / sum);
        for (size_t i = 0; i < n; i++) cr_assert_eq(bits_of(d[i].p), bits_of((float)((double)y[i] * (1.0 / sum))));
    }
    float none[1] = {-INFINITY};
    cr_assert(isinf(tm_max_float(none, 1)) && tm_max_float(none, 1) < 0);
}

/* The distribution stage draws the token of the inverse CDF of the
 * one-by-one softmax: largest logit first, expf of each difference, the sum
 * in order in double, each p rounded to float, the cumulative sum in order. */
static int32_t reference_draw(const float *logits, size_t n, float u) {
    float max = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        float l = isnan(logits[i]) ? -INFINITY : logits[i];
        if (l > max) max = l;
    }
    float *p = malloc(n * sizeof *p);
    cr_assert_not_null(p);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        float l = isnan(logits[i]) ? -INFINITY : logits[i];
        p[i] = expf(l - max);
        sum += p[i];
    }
    int32_t selected = -1;
    double cumulative = 0.0;
    for (size_t i = 0; i < n && selected < 0; i++) {
        p[i] = (float)(p[i] / sum);
        cumulative += p[i];
        if (u < cumulative) selected = (int32_t)i;
    }
    for (size_t i = n; selected < 0 && i-- > 0;)
        if (p[i] > 0.0f) selected = (int32_t)i;
    free(p);
    return selected;
}

Test(elementwise, distribution_draws_the_tokens_of_the_one_by_one_softmax) {
    enum { VOCAB = 32000, DRAWS = 60 };
    float *logits = malloc(VOCAB * sizeof *logits);
    cr_assert_not_null(logits);
    for (uint64_t seed = 1; seed <= 4; seed++) {
        fill_logits(logits, VOCAB, 100 + seed, seed % 2 == 0);
        logits[(seed * 7919) % VOCAB] = 9.0f; /* one likely token, as after a confident step */
        tm_sampler_chain *chain = tm_sampler_chain_create();
        cr_assert(tm_sampler_chain_add(chain, tm_sampler_distribution(seed)));
        tm_rng rng;
        tm_rng_seed(&rng, seed);
        for (int d = 0; d < DRAWS; d++) {
            int32_t expected = reference_draw(logits, VOCAB, tm_rng_uniform(&rng));
            cr_assert_eq(tm_sampler_chain_sample(chain, logits, VOCAB), expected, "seed %llu draw %d",
                         (unsigned long long)seed, d);
        }
        tm_sampler_chain_free(chain);
    }
    free(logits);
}

Test(elementwise, watermark_softmax_is_the_one_by_one_loop) {
    enum { VOCAB = 32000 };
    tm_token_data *d = malloc(VOCAB * sizeof *d);
    float *logits = malloc(VOCAB * sizeof *logits), *expected = malloc(VOCAB * sizeof *expected);
    cr_assert(d != NULL && logits != NULL && expected != NULL);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        size_t n = VOCAB - (size_t)seed * 37; /* tails that are no multiple of a vector */
        fill_logits(logits, n, 200 + seed, seed != 2);
        float max = -INFINITY;
        for (size_t i = 0; i < n; i++)
            if (logits[i] > max) max = logits[i];
        double sum = 0.0;
        for (size_t i = 0; i < n; i++) {
            float e = expf(logits[i] - max);
            expected[i] = e >= 0.0f ? e : 0.0f;
            sum += expected[i];
        }
        for (size_t i = 0; i < n; i++) expected[i] = (float)(expected[i] * (1.0 / sum));
        for (size_t i = 0; i < n; i++) d[i] = (tm_token_data){(int32_t)i, logits[i], -1.0f};
        tm_candidates candidates = {d, n, false, -1};
        tm_wm_softmax(&candidates);
        for (size_t i = 0; i < n; i++) cr_assert_eq(bits_of(d[i].p), bits_of(expected[i]), "p[%zu], seed %llu", i,
                                                    (unsigned long long)seed);
    }
    free(expected);
    free(logits);
    free(d);
}

/* tm_candidates_dense against the plain check: every length around the
 * vector widths (16 and 8 candidates a step), the whole vocabulary in
 * order, and one id wrong at each of the first 64 positions (every lane of
 * the vector steps, in either width) and in the tail. */
Test(elementwise, dense_is_the_plain_check) {
    enum { N = 32003 };
    tm_token_data *d = malloc(N * sizeof *d);
    cr_assert_not_null(d);
    for (size_t i = 0; i < N; i++) d[i] = (tm_token_data){(int32_t)i, 0.5f, 0.25f};
    for (size_t n = 0; n <= 70; n++) cr_assert(tm_candidates_dense(d, n), "n = %zu", n);
    cr_assert(tm_candidates_dense(d, N));
    for (size_t at = 0; at < N; at = at < 63 ? at + 1 : at < N - 20 ? N - 20 : at + 1) {
        d[at].id = (int32_t)at + 1;
        cr_assert_not(tm_candidates_dense(d, N), "id wrong at %zu", at);
        cr_assert(tm_candidates_dense(d, at), "the %zu before it are in order", at);
        d[at].id = (int32_t)at;
    }
    d[100].id = 101, d[101].id = 100; /* two swapped */
    cr_assert_not(tm_candidates_dense(d, 200));
    free(d);
}

/* tm_candidates_at_least against the plain predicate: every length up to 200
 * and a few long ones (every lane of the 64-candidate words, both vector
 * widths, and the tail), values right at the bound (an ulp either side of
 * bound - raise, where the addition's rounding decides), NaN, -inf and +inf;
 * no bit past n set, the count right, and the candidates untouched. */
Test(elementwise, at_least_is_the_plain_predicate) {
    enum { N = 5000 };
    static tm_token_data d[N];
    static uint64_t bits[N / 64 + 2];
    float x[N];
    const float raise = 2.0f, bound = 1.5f;
    for (size_t n = 0; n <= N; n = n < 200 ? n + 1 : n * 2 + 3) {
        fill_logits(x, n, n + 7, true);
        for (size_t i = 0; i < n; i += 5) { /* crowd the bound */
            float edge = bound - raise;
            x[i] = i % 3 == 0 ? edge : nextafterf(edge, i % 3 == 1 ? INFINITY : -INFINITY);
        }
        if (n > 9) x[9] = INFINITY;
        for (size_t i = 0; i < n; i++) d[i] = (tm_token_data){(int32_t)i, x[i], 0.5f};
        memset(bits, 0xA5, sizeof bits);
        size_t count = tm_candidates_at_least(d, n, raise, bound, bits), expected = 0;
        for (size_t i = 0; i < n; i++) {
            bool in = x[i] + raise >= bound;
            expected += in;
            cr_assert_eq((bits[i / 64] >> (i % 64)) & 1, (uint64_t)in, "candidate %zu of %zu (%a)", i, n, (double)x[i]);
            cr_assert(d[i].id == (int32_t)i && bits_of(d[i].logit) == bits_of(x[i]) && d[i].p == 0.5f);
        }
        cr_assert_eq(count, expected, "count of %zu", n);
        if (n % 64) cr_assert_eq(bits[n / 64] >> (n % 64), 0, "bits past %zu", n);
    }
}
