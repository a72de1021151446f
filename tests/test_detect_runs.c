/* Tests of the detector's batched paths against the one-token functions
 * they replace, which the formula tests of test_detect.c check against
 * outside references: tm_wm_token_values_run (KGW LeftHash and SelfHash,
 * Gumbel, SynthID; context widths from 1 to 15, SynthID from 1 to 64
 * layers) gives every position's fingerprint and values bit for bit as
 * tm_wm_token_fingerprint and tm_wm_token_values do, on texts long enough
 * to cross the runs' chunks, with many repeated tokens (SelfHash's anchor
 * ties: a context holding the token itself, or one token twice) and with
 * ids up to 2^31 - 1; SynthID's weighted sums come out of every SIMD path
 * as the plain per-token loop adds them; and tm_detect_tokens' sums equal
 * those of the token-by-token loop the detector ran before, recomputed here
 * with the public one-token functions (the p-values are functions of those
 * sums, so they follow). Schemes without a batched face say so (0). */
#include "fixtures.h"
#include "tracemark/detect.h"
#include "tracemark/generator.h"
#include "tracemark/watermark.h"
#include "watermark_testing.h"
/* Internal to detect/: the SIMD weighted sums. */
#include "../detect/detect_internal.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RUN_KEYS "tracemark-test-detect-runs"

static uint64_t splitmix(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* n token ids: from a handful of ids (many repeats and anchor ties), from
 * a 512-token vocabulary, or from the whole non-negative int32 range. */
static void random_tokens(int32_t *tokens, size_t n, int kind, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) {
        uint64_t x = splitmix(rng);
        tokens[i] = kind == 0 ? (int32_t)(x % 5) : kind == 1 ? (int32_t)(x % 512) : (int32_t)(x >> 33);
        if (kind == 2 && i % 17 == 3) tokens[i] = INT32_MAX - (int32_t)(x % 3);
        if (i >= 3 && x % 11 == 0) tokens[i] = tokens[i - 1 - (size_t)(x >> 60) % 3]; /* a token of its context */
    }
}

static tm_wm_config kgw(tm_wm_seeding seeding, int32_t h, double gamma) {
    tm_wm_config c;
    tm_wm_config_default(&c, TM_WM_KGW);
    c.seeding = seeding;
    c.context_width = h;
    c.gamma = gamma;
    c.delta = 2.0;
    return c;
}

static tm_wm_config gumbel(int32_t h) {
    tm_wm_config c;
    tm_wm_config_default(&c, TM_WM_GUMBEL);
    c.context_width = h;
    return c;
}

static tm_wm_config synthid(int32_t h, int32_t layers) {
    tm_wm_config c;
    tm_wm_config_default(&c, TM_WM_SYNTHID);
    c.context_width = h;
    c.layers = layers;
    return c;
}

enum { TEXT = 700 };

/* Every position from `first` on, for several firsts and kinds of text. */
static void check_run_equals_one_token(const tm_wm_config *config, uint32_t key_index) {
    tm_wm_key *key = wm_test_labelled_key(RUN_KEYS, key_index);
    tm_wm_scheme *scheme = wm_test_scheme(config, key);
    size_t needed = tm_wm_scheme_context_needed(scheme);
    static int32_t tokens[TEXT];
    static uint64_t fingerprints[TEXT], bits[TEXT];
    static double values[TEXT];
    uint64_t rng = 1000 + key_index;
    for (int kind = 0; kind < 3; kind++) {
        random_tokens(tokens, TEXT, kind, &rng);
        size_t firsts[3] = {needed, needed + 1, needed + 37};
        for (int f = 0; f < 3; f++) {
            size_t first = firsts[f], count = TEXT - first - (size_t)f; /* counts that end mid-lane too */
            size_t nv = tm_wm_token_values_run(scheme, tokens, first, count, fingerprints, bits, values);
            cr_assert(nv >= 1 && nv <= 64, "%s: nv %zu", tm_wm_kind_name(config->kind), nv);
            for (size_t i = 0; i < count; i++) {
                size_t p = first + i;
                const int32_t *context = tokens + p - needed;
                double expected[64];
                size_t n = tm_wm_token_values(scheme, context, needed, tokens[p], expected, 64);
                cr_assert_eq(n, nv, "position %zu", p);
                uint64_t fingerprint = tm_wm_token_fingerprint(scheme, context, needed, tokens[p]);
                cr_assert_eq(fingerprints[i], fingerprint, "%s h=%d kind %d: fingerprint of position %zu",
                             tm_wm_kind_name(config->kind), config->context_width, kind, p);
                cr_assert(memcmp(&values[i], &expected[0], sizeof(double)) == 0,
                          "%s h=%d kind %d: value of position %zu: %a, one token %a", tm_wm_kind_name(config->kind),
                          config->context_width, kind, p, values[i], expected[0]);
                if (config->kind != TM_WM_GUMBEL)
                    for (size_t l = 0; l < nv; l++)
                        cr_assert_eq((double)(bits[i] >> l & 1), expected[l], "position %zu value %zu", p, l);
                if (config->kind != TM_WM_GUMBEL && nv < 64) cr_assert_eq(bits[i] >> nv, 0);
            }
        }
    }
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(token_values_run, kgw_lefthash_equals_one_token) {
    static const int32_t widths[] = {1, 2, 3, 4, 7, 15};
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++) {
        tm_wm_config c = kgw(TM_WM_SEEDING_LEFTHASH, widths[i], i % 2 ? 0.5 : 0.25);
        check_run_equals_one_token(&c, (uint32_t)i);
    }
}

Test(token_values_run, kgw_selfhash_equals_one_token) {
    static const int32_t widths[] = {1, 2, 3, 4, 5, 8, 15};
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++) {
        tm_wm_config c = kgw(TM_WM_SEEDING_SELFHASH, widths[i], i % 2 ? 0.5 : 0.25);
        check_run_equals_one_token(&c, 10 + (uint32_t)i);
    }
}

Test(token_values_run, gumbel_equals_one_token) {
    static const int32_t widths[] = {1, 2, 4, 9, 15};
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++) {
        tm_wm_config c = gumbel(widths[i]);
        check_run_equals_one_token(&c, 20 + (uint32_t)i);
    }
}

Test(token_values_run, synthid_equals_one_token) {
    static const int32_t widths[] = {1, 4, 15}, layers[] = {1, 2, 30, 63, 64};
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++)
        for (size_t j = 0; j < sizeof layers / sizeof *layers; j++) {
            tm_wm_config c = synthid(widths[i], layers[j]);
            check_run_equals_one_token(&c, 30 + (uint32_t)(5 * i + j));
        }
}

Test(token_values_run, other_schemes_have_no_batched_face) {
    static const char *const names[] = {"unigram", "dipmark", "exp-edit", "its-edit"};
    tm_wm_key *key = wm_test_labelled_key(RUN_KEYS, 99);
    int32_t tokens[40] = {0};
    uint64_t fingerprints[40], bits[40];
    double values[40];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        tm_wm_config c = wm_test_scheme_config(names[i]);
        tm_wm_scheme *scheme = wm_test_scheme(&c, key);
        cr_assert_eq(tm_wm_token_values_run(scheme, tokens, 20, 10, fingerprints, bits, values), 0, "%s", names[i]);
        tm_wm_scheme_free(scheme);
    }
    tm_wm_key_free(key);
}

/* The plain loop the detector ran per token before: weights added in layer
 * order, value times weight. */
static double weighted_one(uint64_t bits, size_t nv, const double *weights) {
    double sum = 0;
    for (size_t l = 0; l < nv; l++) sum += (double)(bits >> l & 1) * weights[l];
    return sum;
}

/* One SIMD level (0 scalar, 1 AVX2, 2 AVX-512) of tm_detect_weighted_sums
 * against the plain loop. Each level is its own test, skipped visibly where
 * the CPU (or TM_NO_AVX2 / TM_NO_AVX512) does not give it: the dispatcher
 * would silently run a narrower path under the wider name. */
static void check_weighted_sums(int simd) {
    double weights[64];
    uint64_t rng = 77, bits[203];
    double sums[203];
    for (size_t nv = 1; nv <= 64; nv++) {
        for (size_t l = 0; l < nv; l++) weights[l] = nv == 1 ? 1.0 : 10.0 - 9.0 * (double)l / (double)(nv - 1);
        uint64_t mask = nv == 64 ? ~(uint64_t)0 : ((uint64_t)1 << nv) - 1;
        for (size_t i = 0; i < 203; i++) {
            bits[i] = splitmix(&rng) & mask;
            if (i % 13 == 0) bits[i] = i % 2 ? mask : 0;
        }
        for (size_t n = 203; n >= 193; n -= 5) { /* remainders past every lane width */
            tm_detect_weighted_sums(bits, n, nv, weights, sums, simd);
            for (size_t i = 0; i < n; i++) {
                double expected = weighted_one(bits[i], nv, weights);
                cr_assert(memcmp(&sums[i], &expected, sizeof expected) == 0, "simd %d nv %zu token %zu: %a, loop %a",
                          simd, nv, i, sums[i], expected);
            }
        }
    }
}

Test(weighted_sums, the_scalar_path_adds_as_the_plain_loop) {
    cr_log_info("kernel path: scalar");
    check_weighted_sums(0);
}

Test(weighted_sums, the_avx2_path_adds_as_the_plain_loop) {
    if (!tm_cpu_has(TM_CPU_AVX2)) cr_skip_test("no AVX2 on this CPU (or TM_NO_AVX2 set): AVX2 path not tested");
    cr_log_info("kernel path: AVX2");
    check_weighted_sums(1);
}

Test(weighted_sums, the_avx512_path_adds_as_the_plain_loop) {
    if (!tm_cpu_has(TM_CPU_AVX512F))
        cr_skip_test("no AVX-512F on this CPU (or TM_NO_AVX512 set): AVX-512 path not tested");
    cr_log_info("kernel path: AVX-512");
    check_weighted_sums(2);
}

/* tm_detect_tokens against the token-by-token loop, recomputed here from the
 * one-token functions in the detector's order: the same counts, and sums
 * equal to the last bit (for KGW the green count, Gumbel sum -ln(1 - r),
 * SynthID the ones and the weighted mean). */
static void check_detector_sums(const tm_wm_config *config, size_t n_prompt, bool ignore_repeated, uint32_t key_index) {
    char *path = tm_fixture("models/tok512.bin");
    tm_tokenizer *tokenizer = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_load(&tokenizer, path, &err), TM_OK, "%s", err.message);
    free(path);
    tm_wm_key *key = wm_test_labelled_key(RUN_KEYS, key_index);
    tm_wm_scheme *scheme = wm_test_scheme(config, key);
    tm_detect_options options;
    tm_detect_options_default(&options);
    options.ignore_repeated = ignore_repeated;
    tm_detector *detector = NULL;
    cr_assert_eq(tm_detector_create(&detector, tokenizer, config, (const tm_wm_key *const *)&key, 1, &options, &err),
                 TM_OK, "%s", err.message);
    enum { N = 900 };
    static int32_t tokens[N];
    uint64_t rng = 500 + key_index;
    random_tokens(tokens, N, 1, &rng);
    for (size_t i = 300; i < 420; i++) tokens[i] = tokens[i - 100]; /* repeated contexts */
    size_t sizes[] = {N, 257, 3, 0};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s], prompt = n_prompt < n ? n_prompt : n;
        tm_detection d;
        cr_assert_eq(tm_detect_tokens(detector, 0, tokens, n, prompt, &d, &err), TM_OK, "%s", err.message);
        /* The loop as it was. */
        size_t h = tm_wm_scheme_context_needed(scheme), n_context = 0, n_repeated = 0, n_scored = 0;
        uint64_t *seen = calloc(2 * N + 2, sizeof *seen);
        size_t n_seen = 0;
        double total = 0, weighted = 0, weights[64];
        for (int32_t l = 0; l < config->layers && l < 64; l++)
            weights[l] = config->layers == 1 ? 1.0 : 10.0 - 9.0 * (double)l / (double)(config->layers - 1);
        for (size_t i = prompt; i < n; i++) {
            if (i < h) {
                n_context++;
                continue;
            }
            uint64_t f = tm_wm_token_fingerprint(scheme, tokens + i - h, h, tokens[i]);
            bool repeated = false;
            for (size_t k = 0; ignore_repeated && k < n_seen; k++) repeated = repeated || seen[k] == f;
            if (repeated) {
                n_repeated++;
                continue;
            }
            if (ignore_repeated) seen[n_seen++] = f;
            double values[64];
            size_t nv = tm_wm_token_values(scheme, tokens + i - h, h, tokens[i], values, 64);
            double score = 0;
            if (config->kind == TM_WM_GUMBEL) {
                score = -log1p(-values[0]);
            } else if (config->kind == TM_WM_SYNTHID) {
                double token_weighted = 0;
                for (size_t l = 0; l < nv; l++) {
                    score += values[l];
                    token_weighted += values[l] * weights[l];
                }
                weighted += token_weighted;
            } else {
                score = values[0];
            }
            total += score;
            n_scored++;
        }
        free(seen);
        cr_assert_eq(d.n_scored, n_scored, "n = %zu", n);
        cr_assert_eq(d.n_ignored_context, n_context, "n = %zu", n);
        cr_assert_eq(d.n_ignored_repeated, n_repeated, "n = %zu", n);
        if (n_scored == 0) continue;
        if (config->kind == TM_WM_SYNTHID) {
            double bits_total = (double)n_scored * config->layers, weight_sum = 0;
            for (int32_t l = 0; l < config->layers; l++)
                weight_sum += config->layers == 1 ? 1.0 : 10.0 - 9.0 * (double)l / (double)(config->layers - 1);
            double statistic = total / bits_total, weighted_score = weighted / ((double)n_scored * weight_sum);
            cr_assert(memcmp(&d.statistic, &statistic, sizeof statistic) == 0, "n = %zu: %a vs %a", n, d.statistic,
                      statistic);
            cr_assert(memcmp(&d.weighted_score, &weighted_score, sizeof statistic) == 0, "n = %zu: %a vs %a", n,
                      d.weighted_score, weighted_score);
        } else {
            cr_assert(memcmp(&d.statistic, &total, sizeof total) == 0, "n = %zu: %a vs %a", n, d.statistic, total);
        }
    }
    tm_detector_free(detector);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
    tm_tokenizer_free(tokenizer);
}

Test(detector_runs, kgw_sums_equal_the_token_loop) {
    tm_wm_config left = kgw(TM_WM_SEEDING_LEFTHASH, 1, 0.25), self = kgw(TM_WM_SEEDING_SELFHASH, 4, 0.25);
    check_detector_sums(&left, 0, true, 50);
    check_detector_sums(&left, 5, false, 51);
    check_detector_sums(&self, 2, true, 52);
    check_detector_sums(&self, 0, false, 53);
}

Test(detector_runs, gumbel_sums_equal_the_token_loop) {
    tm_wm_config c = gumbel(4);
    check_detector_sums(&c, 0, true, 54);
    check_detector_sums(&c, 7, false, 55);
}

Test(detector_runs, synthid_sums_equal_the_token_loop) {
    tm_wm_config c = synthid(4, 30), wide = synthid(2, 64);
    check_detector_sums(&c, 0, true, 56);
    check_detector_sums(&wide, 3, false, 57);
}
