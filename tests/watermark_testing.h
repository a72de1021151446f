/* Helpers shared by the watermark scheme tests (test_kgw.c, test_unigram.c,
 * test_dipmark.c and, through distortion_free_testing.h, the tests of the
 * distortion-free schemes): the fixed master key of the spec's test vectors
 * written as a real key file, fixed pseudo-random keys for the tests over
 * many keys, shipped scheme configurations, a scheme and its subkey, a token's green
 * bit, a tiny LCG for test data and simulated generation over flat logits.
 * Static functions only, so each test file stays one translation unit;
 * nothing here asserts on behalf of the code under test except where a
 * helper says so. */
#ifndef TRACEMARK_TEST_WATERMARK_TESTING_H
#define TRACEMARK_TEST_WATERMARK_TESTING_H

#include "fixtures.h"
#include "tracemark/watermark.h"

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- keys and schemes ----------------------------------------------------------- */

/* Key id computed by docs/reference/tm_prf.py (key_id) for bytes 00..1f. */
#define WM_TEST_MASTER_KEY_ID "fda1a304fcd9862d"

/* Write the master key as a key file (mode 0600) and read it back with the
 * library's reader, as a user's key would be. */
static inline tm_wm_key *wm_test_master_key(void) {
    char text[256];
    int n = snprintf(text, sizeof text, "tracemark-watermark-key v1\nid: %s\nkey: ", WM_TEST_MASTER_KEY_ID);
    for (int i = 0; i < 32; i++) n += snprintf(text + n, sizeof text - (size_t)n, "%02x", i);
    n += snprintf(text + n, sizeof text - (size_t)n, "\n");
    char *dir = tm_test_scratch_dir();
    cr_assert_not_null(dir);
    char *path = tm_test_path(dir, "master.key");
    cr_assert_eq(tm_test_write_file(path, text, (size_t)n), 0);
    cr_assert_eq(chmod(path, 0600), 0);
    tm_wm_key *key = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_wm_key_read(&key, path, &err), TM_OK, "%s", err.message);
    cr_assert_str_eq(tm_wm_key_id(key), WM_TEST_MASTER_KEY_ID);
    remove(path);
    remove(dir);
    free(path);
    free(dir);
    return key;
}

/* The i-th key of a labelled family: secret = SHA-256(label || u32le(i)).
 * Pseudo-random but fixed, so a statistical test over keys 0..N-1 is one
 * fixed draw that passes or fails the same way on every run, instead of
 * failing by chance once in a thousand runs. The keys are taken in order
 * 0..N-1, never picked to pass; each test file has its own label. */
static inline tm_wm_key *wm_test_labelled_key(const char *label, uint32_t i) {
    size_t n = strlen(label);
    uint8_t message[128], secret[32];
    cr_assert(n + 4 <= sizeof message);
    memcpy(message, label, n);
    for (int b = 0; b < 4; b++) message[n + (size_t)b] = (uint8_t)(i >> (8 * b));
    unsigned int size = 0;
    cr_assert_eq(EVP_Digest(message, n + 4, secret, &size, EVP_sha256(), NULL), 1);
    tm_wm_key *key = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_wm_key_from_secret(&key, secret, &err), TM_OK, "%s", err.message);
    return key;
}

/* The scheme tests' keys: label "tracemark-test-key". */
static inline tm_wm_key *wm_test_seeded_key(uint32_t i) { return wm_test_labelled_key("tracemark-test-key", i); }

/* A scheme configuration shipped in configs/schemes/ (name without .yaml). */
static inline tm_wm_config wm_test_scheme_config(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/schemes/%s.yaml", TRACEMARK_SOURCE_DIR, name);
    tm_wm_config config;
    tm_error err = {0};
    cr_assert_eq(tm_wm_config_load(&config, path, &err), TM_OK, "%s: %s", path, err.message);
    return config;
}

static inline tm_wm_scheme *wm_test_scheme(const tm_wm_config *config, const tm_wm_key *key) {
    tm_wm_scheme *scheme = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_wm_scheme_create(&scheme, config, key, &err), TM_OK, "%s", err.message);
    return scheme;
}

/* The scheme's subkey, derived as the library derives it (HKDF with the
 * configuration's canonical description as info). */
static inline tm_wm_subkey wm_test_subkey(const tm_wm_config *config, const tm_wm_key *key) {
    char info[256];
    tm_wm_config_describe(config, info, sizeof info);
    tm_wm_subkey subkey;
    tm_error err;
    cr_assert_eq(tm_wm_derive_subkey(key, info, &subkey, &err), TM_OK, "%s", err.message);
    return subkey;
}

/* The green bit of token after context by the detection face (KGW, Unigram,
 * DiPmark): asserts the scheme gives exactly one value, 0 or 1. */
static inline int wm_test_green(const tm_wm_scheme *scheme, const int32_t *context, size_t n, int32_t token) {
    double value = -1;
    cr_assert_eq(tm_wm_token_values(scheme, context, n, token, &value, 1), 1);
    cr_assert(value == 0.0 || value == 1.0);
    return (int)value;
}

/* ---- pseudo-random test data ------------------------------------------------------ */

/* A tiny LCG (not tm_rng, so the data does not depend on code under test). */
static inline uint64_t wm_test_lcg(uint64_t *x) {
    *x = *x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return *x >> 33;
}

/* ---- simulated generation --------------------------------------------------------- */

/* n tokens through the usual sampler chain (params) with the scheme's sampler
 * plugged in as the bias stage (KGW, Unigram) or as the selector (DiPmark),
 * over flat-ish logits from the LCG (2000 tokens, all within one nat), after
 * the prefix. Returns the fraction of the n tokens that the detection face
 * calls green given everything before them; out (optional) gets the tokens. */
static inline double wm_test_generate_green_fraction(tm_wm_scheme *scheme, bool as_selector,
                                                     const tm_sampling_params *params, const int32_t *prefix,
                                                     size_t n_prefix, int32_t *out, size_t n) {
    tm_sampler *sampler = tm_wm_sampler(scheme, params->seed);
    tm_sampler_chain *chain = as_selector ? tm_sampler_chain_build(params, NULL, sampler)
                                          : tm_sampler_chain_build(params, sampler, NULL);
    cr_assert_not_null(chain);
    enum { V = 2000 };
    float *logits = malloc(V * sizeof *logits);
    int32_t *history = malloc((n_prefix + n) * sizeof *history);
    cr_assert(logits && history);
    size_t n_history = 0, green = 0;
    for (; n_history < n_prefix; n_history++) {
        history[n_history] = prefix[n_history];
        tm_sampler_chain_accept(chain, prefix[n_history]);
    }
    uint64_t rng = 5;
    for (size_t t = 0; t < n; t++) {
        for (int i = 0; i < V; i++) logits[i] = (float)(wm_test_lcg(&rng) % 1000) / 1000.0f;
        int32_t token = tm_sampler_chain_sample(chain, logits, V);
        cr_assert(token >= 0 && token < V);
        tm_sampler_chain_accept(chain, token);
        if (out) out[t] = token;
        green += (size_t)wm_test_green(scheme, history, n_history, token);
        history[n_history++] = token;
    }
    tm_sampler_chain_free(chain);
    free(history);
    free(logits);
    return (double)green / (double)n;
}

#endif
