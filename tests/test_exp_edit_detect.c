/* Tests for the EXP-edit / ITS-edit detector (detect/exp_edit_detect.c)
 * against outside references: the alignment statistic on tiny texts (n = 3
 * key rows, 2-3 tokens) equals a brute force written here from the
 * definition in docs/schemes/exp-edit.md (every key substring, every
 * monotone matching, gap cost gamma per unmatched token or row), never from
 * the detector's recurrence; the null keys are rebuilt here from their
 * published derivation (SHA-256 through OpenSSL, xoshiro256** as Blackman
 * and Vigna give it, tm_wm_key_from_secret) so the p-value's count and the
 * null mean are checked exactly; the statistic is never above the paper's
 * (Kuditipudi et al. 2023: windows of exactly k rows). Behaviour: text from
 * the scheme's own sampler is detected at the permutation floor, also after
 * 10% deletions and 10% insertions and when pasted inside unrelated tokens;
 * unwatermarked text gives p-values whose rejection rates stay inside
 * binomial bounds; errors are values. Every input comes from fixed seeds, so
 * the outcomes are deterministic. */
#include "distortion_free_testing.h"
#include "tracemark/detect.h"

#include "../detect/detect_internal.h"

#include <openssl/evp.h>

static const double GAP_EXP = 2.0, GAP_ITS = 0.4; /* docs/schemes/exp-edit.md, "Detection statistic" */

/* ---- references ------------------------------------------------------------------ */

/* xoshiro256** (Blackman & Vigna, prng.di.unimi.it/xoshiro256starstar.c). */
static uint64_t ref_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t ref_xoshiro(uint64_t s[4]) {
    uint64_t result = ref_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);
    return result;
}

/* Null key i's secret: SHA-256("tracemark-exp-edit-null" || seed || i), u64 LE. */
static void ref_null_secret(uint64_t seed, uint64_t i, uint8_t secret[32]) {
    uint8_t message[23 + 16];
    memcpy(message, "tracemark-exp-edit-null", 23);
    for (int b = 0; b < 8; b++) message[23 + b] = (uint8_t)(seed >> (8 * b)), message[31 + b] = (uint8_t)(i >> (8 * b));
    unsigned int size = 0;
    cr_assert(EVP_Digest(message, sizeof message, secret, &size, EVP_sha256(), NULL) == 1 && size == 32);
}

enum { TINY_MAX_K = 3, TINY_N = 3, TINY_ROWS = TINY_N + 2 * TINY_MAX_K };

/* Pair costs d(y_i, row r) for r = 0 .. n + 2k - 1 of the extended key. */
typedef struct {
    double d[TINY_MAX_K][TINY_ROWS];
    size_t k, rows;
    double gap;
} tiny_costs;

/* Least cost over monotone matchings of text tokens i.. with key rows in
 * [row, end): each matched pair costs d, each unmatched token gap, and each
 * row of [start, end) left unmatched gap (added by the caller as
 * gap * (end - start) minus gap per match). Plain enumeration. */
static double tiny_matchings(const tiny_costs *c, size_t i, size_t row, size_t end) {
    if (i >= c->k || i >= TINY_MAX_K) return 0.0;
    double best = c->gap + tiny_matchings(c, i + 1, row, end); /* token i unmatched */
    for (size_t r = row; r < end && r < TINY_ROWS; r++) {
        double v = c->d[i][r] - c->gap + tiny_matchings(c, i + 1, r + 1, end); /* i matched with r */
        if (v < best) best = v;
    }
    return best;
}

/* The definition: min over key substrings [a, b) of the edit cost. */
static double tiny_phi(const tiny_costs *c) {
    double best = INFINITY;
    for (size_t a = 0; a <= c->rows; a++)
        for (size_t b = a; b <= c->rows; b++) {
            double v = c->gap * (double)(b - a) + tiny_matchings(c, 0, a, b);
            if (v < best) best = v;
        }
    return best;
}

/* The paper's statistic: min over j in [0, n) of the edit cost against rows j .. j+k-1. */
static double tiny_phi_paper(const tiny_costs *c) {
    double best = INFINITY;
    for (size_t j = 0; j < TINY_N; j++) {
        double v = c->gap * (double)c->k + tiny_matchings(c, 0, j, j + c->k);
        if (v < best) best = v;
    }
    return best;
}

static void tiny_costs_from_scheme(tiny_costs *c, const tm_wm_scheme *scheme, const int32_t *y, size_t k, bool its) {
    c->k = k, c->rows = TINY_N + 2 * k, c->gap = its ? GAP_ITS : GAP_EXP;
    for (size_t i = 0; i < k; i++)
        for (size_t r = 0; r < c->rows; r++)
            c->d[i][r] = its ? fabs(tm_wm_its_uniform(scheme, (int32_t)r) - tm_wm_xi(scheme, 0, y[i]))
                             : log(1.0 - tm_wm_xi(scheme, (int32_t)r, y[i]));
}

/* EXP null key: its stream fills (distinct token in order of first
 * appearance) x (row 0..n-1) with log of ((x >> 12) + 0.5) 2^-52. */
static void tiny_costs_exp_null(tiny_costs *c, uint64_t seed, uint64_t index, const int32_t *y, size_t k) {
    uint8_t secret[32];
    ref_null_secret(seed, index, secret);
    uint64_t s[4] = {0};
    for (int w = 0; w < 4; w++)
        for (int b = 0; b < 8; b++) s[w] |= (uint64_t)secret[8 * w + b] << (8 * b);
    int32_t distinct[TINY_MAX_K];
    double table[TINY_MAX_K][TINY_N];
    size_t n_distinct = 0;
    for (size_t i = 0; i < k; i++) {
        bool seen = false;
        for (size_t t = 0; t < n_distinct; t++) seen = seen || distinct[t] == y[i];
        if (!seen) distinct[n_distinct++] = y[i];
    }
    for (size_t t = 0; t < n_distinct; t++)
        for (size_t r = 0; r < TINY_N; r++)
            table[t][r] = log(((double)(ref_xoshiro(s) >> 12) + 0.5) * 0x1.0p-52);
    c->k = k, c->rows = TINY_N + 2 * k, c->gap = GAP_EXP;
    for (size_t i = 0; i < k; i++) {
        size_t t = 0;
        while (distinct[t] != y[i]) t++;
        for (size_t r = 0; r < c->rows; r++) c->d[i][r] = table[t][r % TINY_N];
    }
}

static tm_wm_config edit_config(tm_wm_decoder decoder, int32_t n) {
    tm_wm_config config;
    tm_wm_config_default(&config, TM_WM_EXP_EDIT);
    config.decoder = decoder;
    config.sequence_length = n;
    return config;
}

static tm_detect_options options_with(int32_t permutations, uint64_t seed) {
    tm_detect_options options;
    tm_detect_options_default(&options);
    options.permutations = permutations;
    options.permutation_seed = seed;
    return options;
}

static tm_detection detect_ok(const tm_wm_scheme *scheme, const int32_t *tokens, size_t n,
                              const tm_detect_options *options) {
    tm_detection out;
    memset(&out, 0, sizeof out);
    tm_error err = {0};
    cr_assert_eq(tm_detect_exp_edit(scheme, tokens, n, options, 1, &out, &err), TM_OK, "%s", err.message);
    return out;
}

/* ---- the statistic on tiny texts ------------------------------------------------------ */

static void check_tiny(tm_wm_decoder decoder, const int32_t *y, size_t k) {
    bool its = decoder == TM_WM_DECODER_ITS;
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = edit_config(decoder, TINY_N);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    enum { T = 5 };
    uint64_t seed = 77;
    tm_detect_options options = options_with(T, seed);
    tm_detection out = detect_ok(scheme, y, k, &options);

    tiny_costs c;
    tiny_costs_from_scheme(&c, scheme, y, k, its);
    double phi = tiny_phi(&c);
    cr_assert(fabs(out.statistic - phi) < 1e-9, "statistic %.12f, brute force %.12f", out.statistic, phi);
    cr_assert(phi <= tiny_phi_paper(&c) + 1e-12, "a relaxation of the paper's windows can only be lower");

    double sum = 0.0;
    size_t exceed = 0;
    for (uint64_t i = 0; i < T; i++) {
        tiny_costs null;
        if (its) {
            uint8_t secret[32];
            ref_null_secret(seed, i, secret);
            tm_wm_key *null_key = NULL;
            tm_error err = {0};
            cr_assert_eq(tm_wm_key_from_secret(&null_key, secret, &err), TM_OK, "%s", err.message);
            tm_wm_scheme *null_scheme = wm_test_scheme(&config, null_key);
            tiny_costs_from_scheme(&null, null_scheme, y, k, true);
            tm_wm_scheme_free(null_scheme);
            tm_wm_key_free(null_key);
        } else {
            tiny_costs_exp_null(&null, seed, i, y, k);
        }
        double v = tiny_phi(&null);
        sum += v;
        exceed += v <= phi;
    }
    /* The null mean: exact on the exact path; on the default path null keys
     * may be float values (test_exp_edit_fast.c), within their error bound. */
    tm_detection exact;
    tm_error err = {0};
    cr_assert_eq(tm_detect_exp_edit_path(scheme, y, k, &options, 1, TM_EXP_EDIT_PATH_EXACT, NULL, &exact, &err), TM_OK,
                 "%s", err.message);
    cr_assert(fabs(exact.expected - sum / T) < 1e-9, "null mean %.12f, brute force %.12f", exact.expected, sum / T);
    cr_assert(fabs(out.expected - sum / T) < 1e-5, "null mean %.12f, brute force %.12f", out.expected, sum / T);
    cr_assert(exact.log_p == out.log_p && exact.statistic == out.statistic);
    cr_assert(fabs(out.log_p - log((1.0 + (double)exceed) / (T + 1))) < 1e-12);
    cr_assert_eq(out.p_at_floor, exceed == 0);
    cr_assert(fabs(out.p_resolution - 1.0 / (T + 1)) < 1e-15);
    cr_assert_str_eq(out.statistic_name, "edit_alignment");
    cr_assert_eq(out.n_scored, k);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(exp_edit_detect, tiny_exp_equals_brute_force) {
    static const int32_t two[] = {17, 3}, three[] = {5, 9, 5}, same[] = {42, 42, 42};
    check_tiny(TM_WM_DECODER_EXP, two, 2);
    check_tiny(TM_WM_DECODER_EXP, three, 3);
    check_tiny(TM_WM_DECODER_EXP, same, 3);
}

Test(exp_edit_detect, tiny_its_equals_brute_force) {
    static const int32_t two[] = {17, 3}, three[] = {5, 9, 5}, same[] = {42, 42, 42};
    check_tiny(TM_WM_DECODER_ITS, two, 2);
    check_tiny(TM_WM_DECODER_ITS, three, 3);
    check_tiny(TM_WM_DECODER_ITS, same, 3);
}

/* ---- watermarked and unwatermarked text ---------------------------------------------------- */

static void check_watermarked(tm_wm_decoder decoder, double edit_rate) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = edit_config(decoder, 256);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    enum { M = 200 };
    int32_t tokens[M], edited[2 * M];
    wm_test_watermarked_tokens(scheme, 42, 9001, tokens, M);
    size_t n = wm_test_edit_tokens(tokens, M, edited, edit_rate, 31337);
    tm_detect_options options = options_with(999, 0);
    tm_detection out = detect_ok(scheme, edited, n, &options);
    cr_assert(out.p_at_floor, "%s, %.0f%% edits: log p %.3f, statistic %.3f vs null mean %.3f",
              decoder == TM_WM_DECODER_ITS ? "ITS" : "EXP", 100 * edit_rate, out.log_p, out.statistic, out.expected);
    cr_assert(fabs(out.log_p - log(1.0 / 1000)) < 1e-12);
    cr_assert(fabs(out.p_resolution - 1.0 / 1000) < 1e-15);
    cr_assert(out.statistic < out.expected);
    cr_assert_eq(out.n_scored, n);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(exp_edit_detect, watermarked_exp_at_floor) { check_watermarked(TM_WM_DECODER_EXP, 0.0); }
Test(exp_edit_detect, watermarked_its_at_floor) { check_watermarked(TM_WM_DECODER_ITS, 0.0); }
Test(exp_edit_detect, edited_exp_still_detected) { check_watermarked(TM_WM_DECODER_EXP, 0.1); }
Test(exp_edit_detect, edited_its_still_detected) { check_watermarked(TM_WM_DECODER_ITS, 0.1); }

/* 150 watermarked tokens between 300 and 150 random ones: 600 tokens, in
 * blocks of 256, one of which holds most of the watermarked passage. */
Test(exp_edit_detect, pasted_passage_found_in_long_text) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = edit_config(TM_WM_DECODER_EXP, 256);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    enum { M = 600 };
    int32_t tokens[M];
    uint64_t x = 555;
    for (size_t i = 0; i < M; i++) tokens[i] = (int32_t)(wm_test_lcg(&x) % WM_TEST_TEXT_VOCAB);
    wm_test_watermarked_tokens(scheme, 7, 8, tokens + 300, 150);
    tm_detect_options options = options_with(199, 3);
    tm_detection out = detect_ok(scheme, tokens, M, &options);
    cr_assert(out.p_at_floor, "log p %.3f", out.log_p);
    cr_assert_eq(out.n_scored, M);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

/* 200 texts of 30 random tokens, each against its own key: with T = 99, p is
 * uniform on {1/100, ..., 1} under the null, so #{p <= 0.05} ~ Bin(200, 0.05)
 * and #{p <= 0.5} ~ Bin(200, 0.5). Bounds [3, 20] and [75, 125] fail by chance
 * with probability 0.0023 + 0.0012 and 0.0003 (exact binomial tails). */
static void check_null(tm_wm_decoder decoder) {
    tm_wm_config config = edit_config(decoder, 256);
    tm_detect_options options = options_with(99, 0);
    enum { TEXTS = 200, M = 30 };
    size_t below_5 = 0, below_50 = 0;
    uint64_t x = decoder == TM_WM_DECODER_ITS ? 2024 : 1984;
    for (size_t t = 0; t < TEXTS; t++) {
        uint8_t secret[32];
        for (size_t b = 0; b < 32; b++) secret[b] = (uint8_t)wm_test_lcg(&x);
        tm_wm_key *key = NULL;
        tm_error err = {0};
        cr_assert_eq(tm_wm_key_from_secret(&key, secret, &err), TM_OK, "%s", err.message);
        tm_wm_scheme *scheme = wm_test_scheme(&config, key);
        int32_t tokens[M];
        for (size_t i = 0; i < M; i++) tokens[i] = (int32_t)(wm_test_lcg(&x) % WM_TEST_TEXT_VOCAB);
        tm_detection out = detect_ok(scheme, tokens, M, &options);
        double p = exp(out.log_p);
        below_5 += p <= 0.05 + 1e-12;
        below_50 += p <= 0.5 + 1e-12;
        tm_wm_scheme_free(scheme);
        tm_wm_key_free(key);
    }
    cr_assert(below_5 >= 3 && below_5 <= 20, "%zu of 200 unwatermarked texts with p <= 0.05", below_5);
    cr_assert(below_50 >= 75 && below_50 <= 125, "%zu of 200 unwatermarked texts with p <= 0.5", below_50);
}

Test(exp_edit_detect, unwatermarked_exp_p_uniform) { check_null(TM_WM_DECODER_EXP); }
Test(exp_edit_detect, unwatermarked_its_p_uniform) { check_null(TM_WM_DECODER_ITS); }

/* Plain sampling from the same distributions, checked against the key that
 * would have watermarked them: no detection. */
Test(exp_edit_detect, plainly_sampled_text_not_detected) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = edit_config(TM_WM_DECODER_EXP, 256);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    enum { M = 200 };
    int32_t tokens[M];
    tm_sampler *plain = tm_sampler_distribution(42);
    uint64_t x = 9001;
    tm_token_data storage[WM_TEST_TEXT_CANDIDATES];
    for (size_t t = 0; t < M; t++) {
        tm_candidates candidates = wm_test_spread_candidates(storage, &x);
        plain->interface->apply(plain, &candidates);
        tokens[t] = candidates.selected;
    }
    tm_sampler_free(plain);
    tm_detect_options options = options_with(199, 0);
    tm_detection out = detect_ok(scheme, tokens, M, &options);
    cr_assert(out.log_p > log(0.01), "log p %.3f", out.log_p);
    cr_assert(!out.p_at_floor);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

/* ---- through the detector, seeds, limits and errors ------------------------------------------- */

Test(exp_edit_detect, through_tm_detect_tokens) {
    char *path = tm_fixture("models/tok512.bin");
    tm_tokenizer *tokenizer = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_load(&tokenizer, path, &err), TM_OK, "%s", err.message);
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = edit_config(TM_WM_DECODER_EXP, 256);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    enum { PROMPT = 5, M = 120 };
    int32_t tokens[PROMPT + M] = {1, 2, 3, 4, 5};
    wm_test_watermarked_tokens(scheme, 11, 12, tokens + PROMPT, M);
    tm_detect_options options = options_with(199, 0);
    options.fpr = 0.01;
    const tm_wm_key *keys[] = {key};
    tm_detector *detector = NULL;
    cr_assert_eq(tm_detector_create(&detector, tokenizer, &config, keys, 1, &options, &err), TM_OK, "%s", err.message);
    tm_detection out;
    cr_assert_eq(tm_detect_tokens(detector, 0, tokens, PROMPT + M, PROMPT, &out, &err), TM_OK, "%s", err.message);
    cr_assert_str_eq(out.statistic_name, "edit_alignment");
    cr_assert_eq(out.n_scored, M);
    cr_assert(out.p_at_floor && out.detected, "log p %.3f", out.log_p);
    cr_assert(fabs(out.p - 1.0 / 200) < 1e-12);
    tm_detector_free(detector);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
    tm_tokenizer_free(tokenizer);
    free(path);
}

Test(exp_edit_detect, deterministic_and_seeded) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = edit_config(TM_WM_DECODER_EXP, 64);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    int32_t tokens[40];
    uint64_t x = 3;
    for (size_t i = 0; i < 40; i++) tokens[i] = (int32_t)(wm_test_lcg(&x) % WM_TEST_TEXT_VOCAB);
    tm_detect_options a = options_with(50, 1), b = options_with(50, 2);
    tm_detection first = detect_ok(scheme, tokens, 40, &a), again = detect_ok(scheme, tokens, 40, &a);
    tm_detection other = detect_ok(scheme, tokens, 40, &b);
    cr_assert(first.statistic == again.statistic && first.expected == again.expected && first.log_p == again.log_p);
    cr_assert(first.statistic == other.statistic, "the key under test does not depend on the seed");
    cr_assert(first.expected != other.expected, "other null keys, another null mean");
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(exp_edit_detect, long_text_capped) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = edit_config(TM_WM_DECODER_ITS, 16);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    enum { M = 5000 };
    int32_t *tokens = malloc(M * sizeof *tokens);
    cr_assert_not_null(tokens);
    uint64_t x = 4;
    for (size_t i = 0; i < M; i++) tokens[i] = (int32_t)(wm_test_lcg(&x) % WM_TEST_TEXT_VOCAB);
    tm_detect_options options = options_with(1, 0);
    tm_detection out = detect_ok(scheme, tokens, M, &options);
    cr_assert_eq(out.n_scored, 4096);
    cr_assert(isfinite(out.statistic) && isfinite(out.expected));
    free(tokens);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(exp_edit_detect, empty_text_and_errors) {
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = edit_config(TM_WM_DECODER_EXP, 256);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_detect_options options = options_with(9, 0);
    tm_detection out = detect_ok(scheme, NULL, 0, &options);
    cr_assert(out.log_p == 0.0 && out.n_scored == 0 && !out.p_at_floor);
    cr_assert(fabs(out.p_resolution - 0.1) < 1e-15);

    tm_error err = {0};
    int32_t bad[] = {3, -7, 5};
    cr_assert_eq(tm_detect_exp_edit(scheme, bad, 3, &options, 1, &out, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "-7") != NULL, "%s", err.message);
    tm_detect_options none = options_with(-1, 0);
    cr_assert_eq(tm_detect_exp_edit(scheme, bad, 1, &none, 1, &out, &err), TM_ERR_ARGUMENT);

    tm_wm_config gumbel;
    tm_wm_config_default(&gumbel, TM_WM_GUMBEL);
    tm_wm_scheme *other = wm_test_scheme(&gumbel, key);
    cr_assert_eq(tm_detect_exp_edit(other, bad, 1, &options, 1, &out, &err), TM_ERR_ARGUMENT);
    cr_assert_eq(tm_detect_exp_edit(NULL, bad, 1, &options, 1, &out, &err), TM_ERR_ARGUMENT);
    tm_wm_scheme_free(other);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}
