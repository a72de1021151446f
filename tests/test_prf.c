/* Tests of the watermark PRF against outside references: SipHash-2-4 against
 * the 64 published vectors of the SipHash reference implementation and
 * against OpenSSL's SIPHASH MAC, HKDF's
 * OpenSSL parameters against RFC 5869, and the whole chain (master key ->
 * HKDF subkey -> PRF message -> uniform) against the test vectors of
 * docs/watermark-spec.md, which docs/reference/tm_prf.py (an independent
 * Python implementation) produced. A failure here means generation and
 * detection would disagree with the specification; never "fix" a vector.
 * The batched PRF the schemes' generation faces use (AVX-512, AVX2, scalar)
 * is checked against tm_wm_prf message by message, and the radix ordering
 * DiPmark and ITS-edit share against a comparison sort. */
#include <criterion/criterion.h>

#include "fixtures.h"
#include "tracemark/watermark.h"
/* Internal to watermark/: the batched PRF and the ordering helper. */
#include "../watermark/scheme.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t le64(const char *hex) { /* 16 hex digits, bytes in memory order */
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) {
        unsigned byte;
        sscanf(hex + 2 * i, "%2x", &byte);
        x = x << 8 | byte;
    }
    return x;
}

/* SipHash-2-4 outputs (as bytes) for key 00 01 .. 0f and messages
 * 00 01 .. (i-1), i = 0..63: vectors_sip64 of the reference implementation
 * (github.com/veorq/SipHash, vectors.h; also Appendix A of the paper). */
static const char *const sip64[64] = {
    "310e0edd47db6f72", "fd67dc93c539f874", "5a4fa9d909806c0d", "2d7efbd796666785", "b7877127e09427cf",
    "8da699cd64557618", "cee3fe586e46c9cb", "37d1018bf50002ab", "6224939a79f5f593", "b0e4a90bdf82009e",
    "f3b9dd94c5bb5d7a", "a7ad6b22462fb3f4", "fbe50e86bc8f1e75", "903d84c02756ea14", "eef27a8e90ca23f7",
    "e545be4961ca29a1", "db9bc2577fcc2a3f", "9447be2cf5e99a69", "9cd38d96f0b3c14b", "bd6179a71dc96dbb",
    "98eea21af25cd6be", "c7673b2eb0cbf2d0", "883ea3e395675393", "c8ce5ccd8c030ca8", "94af49f6c650adb8",
    "eab8858ade92e1bc", "f315bb5bb835d817", "adcf6b0763612e2f", "a5c91da7acaa4dde", "716595876650a2a6",
    "28ef495c53a387ad", "42c341d8fa92d832", "ce7cf2722f512771", "e37859f94623f3a7", "381205bb1ab0e012",
    "ae97a10fd434e015", "b4a31508beff4d31", "81396229f0907902", "4d0cf49ee5d4dcca", "5c73336a76d8bf9a",
    "d0a704536ba93e0e", "925958fcd6420cad", "a915c29bc8067318", "952b79f3bc0aa6d4", "f21df2e41d4535f9",
    "87577519048f53a9", "10a56cf5dfcd9adb", "eb75095ccd986cd0", "51a9cb9ecba312e6", "96afadfc2ce666c7",
    "72fe52975a4364ee", "5a1645b276d592a1", "b274cb8ebf87870a", "6f9bb4203de7b381", "eaecb2a30b22a87f",
    "9924a43cc1315724", "bd838d3aafbf8db7", "0b1a2a3265d51aea", "135079a3231ce660", "932b2846e4d70666",
    "e1915f5cb1eca46c", "f325965ca16d629f", "575ff28e60381be5", "724506eb4c328a95",
};

Test(siphash, published_vectors_all_64_lengths) {
    tm_wm_subkey key = {.k0 = 0x0706050403020100ULL, .k1 = 0x0f0e0d0c0b0a0908ULL};
    uint8_t message[64];
    for (int i = 0; i < 64; i++) message[i] = (uint8_t)i;
    for (size_t n = 0; n < 64; n++)
        cr_expect_eq(tm_siphash24(&key, message, n), le64(sip64[n]), "length %zu: got %016llx, expected %s", n,
                     (unsigned long long)tm_siphash24(&key, message, n), sip64[n]);
}

Test(siphash, reads_unaligned_input) {
    tm_wm_subkey key = {.k0 = 0x0706050403020100ULL, .k1 = 0x0f0e0d0c0b0a0908ULL};
    uint8_t buffer[80];
    for (int offset = 1; offset < 8; offset++) {
        for (int i = 0; i < 64; i++) buffer[offset + i] = (uint8_t)i;
        cr_expect_eq(tm_siphash24(&key, buffer + offset, 63), le64(sip64[63]), "offset %d", offset);
        cr_expect_eq(tm_siphash24(&key, buffer + offset, 15), le64(sip64[15]), "offset %d", offset);
    }
}

/* A second outside reference: OpenSSL's SIPHASH MAC (8-byte output) over
 * pseudo-random keys and lengths 0..100, so every tail length and block
 * count is covered under keys other than 00..0f. */
Test(siphash, agrees_with_openssl_siphash) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    cr_assert_not_null(mac, "this OpenSSL has no SIPHASH");
    size_t size = 8;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
    uint64_t state = 0x9E3779B97F4A7C15ULL;
    for (int trial = 0; trial < 500; trial++) {
        uint8_t key_bytes[16], message[100], out[8];
        for (int i = 0; i < 16; i++) key_bytes[i] = (uint8_t)((state = state * 6364136223846793005ULL + 1) >> 56);
        size_t n = (size_t)trial % 101;
        for (size_t i = 0; i < n; i++) message[i] = (uint8_t)((state = state * 6364136223846793005ULL + 1) >> 56);
        EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
        size_t out_size = 0;
        cr_assert_eq(EVP_MAC_init(ctx, key_bytes, sizeof key_bytes, params), 1);
        cr_assert_eq(EVP_MAC_update(ctx, message, n), 1);
        cr_assert_eq(EVP_MAC_final(ctx, out, &out_size, sizeof out), 1);
        EVP_MAC_CTX_free(ctx);
        cr_assert_eq(out_size, 8);
        tm_wm_subkey key = {0, 0};
        uint64_t expected = 0;
        for (int i = 7; i >= 0; i--) {
            key.k0 = key.k0 << 8 | key_bytes[i];
            key.k1 = key.k1 << 8 | key_bytes[8 + i];
            expected = expected << 8 | out[i];
        }
        cr_expect_eq(tm_siphash24(&key, message, n), expected, "trial %d, length %zu", trial, n);
    }
    EVP_MAC_free(mac);
}

/* Not our code, but our way of calling it: the same OSSL_PARAM mapping as
 * keys.c (KEY = input keying material, SALT, INFO) must give RFC 5869's
 * test case 1, or the subkeys would not be HKDF as the spec says. */
Test(hkdf, openssl_parameter_mapping_matches_rfc5869_case_1) {
    uint8_t ikm[22], salt[13], info[10], okm[42];
    memset(ikm, 0x0b, sizeof ikm);
    for (int i = 0; i < 13; i++) salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++) info[i] = (uint8_t)(0xf0 + i);
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    cr_assert_not_null(kdf);
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm, sizeof ikm),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, sizeof salt),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof info),
        OSSL_PARAM_construct_end(),
    };
    cr_assert_eq(EVP_KDF_derive(ctx, okm, sizeof okm, params), 1);
    EVP_KDF_CTX_free(ctx);
    static const char expected[] =
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
    char hex[2 * sizeof okm + 1];
    for (size_t i = 0; i < sizeof okm; i++) snprintf(hex + 2 * i, 3, "%02x", okm[i]);
    cr_expect_str_eq(hex, expected);
}

/* ---- the spec's vectors (docs/watermark-spec.md, "Test vectors") ----------- */

/* The spec's master key 00 01 .. 1f, read through a real key file. */
static tm_wm_key *spec_key(void) {
    char *dir = tm_test_scratch_dir();
    char *path = tm_test_path(dir, "spec.key");
    static const char text[] = "tracemark-watermark-key v1\n"
                               "id: fda1a304fcd9862d\n"
                               "key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    cr_assert_eq(tm_test_write_file(path, text, sizeof text - 1), 0);
    cr_assert_eq(chmod(path, 0600), 0);
    tm_error err = {0};
    tm_wm_key *key = NULL;
    cr_assert_eq(tm_wm_key_read(&key, path, &err), TM_OK, "%s", err.message);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
    return key;
}

typedef struct {
    const char *info;
    uint64_t k0, k1;
} subkey_vector;

static const subkey_vector subkeys[] = {
    {"kgw;seeding=lefthash;h=1;gamma=0.25;delta=2", 0x9043427d5abbfd4cULL, 0x049550c034ed5ba7ULL},
    {"kgw;seeding=selfhash;h=4;gamma=0.25;delta=2", 0x9078094b3911db3aULL, 0x06512d6da54b2031ULL},
    {"unigram;gamma=0.5;delta=2", 0x47ff439abe6cdc21ULL, 0xbc8c0bea58021866ULL},
    {"gumbel;h=4", 0xc7c36f7fcf1ad954ULL, 0x80c6e0bb2650f948ULL},
    {"synthid;h=4;layers=30", 0x8818b6189e4025b4ULL, 0xb641d051cf774d81ULL},
    {"dipmark;h=5;alpha=0.45000000000000001", 0x6f796b4323de93cdULL, 0x9faf9890ba67fa7cULL},
    {"exp-edit;decoder=exp;n=256", 0x817484981e66ab64ULL, 0x3870e1d53211eb8cULL},
    {"exp-edit;decoder=its;n=256", 0x53005757844c8cdbULL, 0x2225105803100c7bULL},
};

Test(spec_vectors, key_id_of_the_spec_key) {
    tm_wm_key *key = spec_key();
    cr_expect_str_eq(tm_wm_key_id(key), "fda1a304fcd9862d");
    tm_wm_key_free(key);
}

Test(spec_vectors, hkdf_subkeys) {
    tm_wm_key *key = spec_key();
    for (size_t i = 0; i < sizeof subkeys / sizeof subkeys[0]; i++) {
        tm_wm_subkey subkey;
        tm_error err = {0};
        cr_assert_eq(tm_wm_derive_subkey(key, subkeys[i].info, &subkey, &err), TM_OK, "%s", err.message);
        cr_expect_eq(subkey.k0, subkeys[i].k0, "%s: k0 %016llx", subkeys[i].info, (unsigned long long)subkey.k0);
        cr_expect_eq(subkey.k1, subkeys[i].k1, "%s: k1 %016llx", subkeys[i].info, (unsigned long long)subkey.k1);
    }
    tm_wm_key_free(key);
}

/* The description of each shipped configuration is the info its subkey
 * comes from: scheme creation and the spec must agree on it. */
Test(spec_vectors, shipped_configs_describe_as_the_spec_infos) {
    static const char *const files[] = {"kgw-lefthash", "kgw-selfhash", "unigram", "gumbel",
                                        "synthid",      "dipmark",      "exp-edit", "its-edit"};
    for (size_t i = 0; i < 8; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/configs/schemes/%s.yaml", TRACEMARK_SOURCE_DIR, files[i]);
        tm_wm_config config;
        tm_error err = {0};
        cr_assert_eq(tm_wm_config_load(&config, path, &err), TM_OK, "%s", err.message);
        char info[256];
        tm_wm_config_describe(&config, info, sizeof info);
        cr_expect_str_eq(info, subkeys[i].info, "%s", files[i]);
    }
}

typedef struct {
    uint8_t domain;
    int32_t tokens[16];
    size_t n;
    uint32_t extra;
    uint64_t prf;
    double uniform;
} prf_vector;

/* Under the subkey of "kgw;seeding=lefthash;h=1;gamma=0.25;delta=2". */
static const prf_vector prfs[] = {
    {0x01, {0}, 0, 0, 0xf75cd3a5ac0aa1d9ULL, 0.96626017374732476},
    {0x01, {42}, 1, 0, 0xd6b0b7569d51a6e7ULL, 0.83863397469151002},
    {0x01, {42}, 1, 7, 0xb60ea4484913361fULL, 0.7111609150388859},
    {0x02, {1, 2, 3, 4, 5}, 5, 1000, 0x67fa6fdc84dbb2e8ULL, 0.40616511472477057},
    {0x03, {0}, 0, 31999, 0x7df67b98f7cf3b1dULL, 0.49204227909632159},
    {0x04, {450, 12, 9, 301}, 4, 77, 0x9c2c52ff2ca080a5ULL, 0.6100513337120238},
    {0x05, {31999, 0, 17, 2}, 4, 29, 0xc671338de19629ecULL, 0.77516481603523657},
    {0x06, {-1}, 1, 4294967295u, 0x548cfcd6c521c55bULL, 0.33027630084428161},
    {0x07, {0}, 0, 255, 0xab34c93477847cf7ULL, 0.66877419978074382},
    {0x08, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 16, 65535, 0x2e4e98bc862426d5ULL,
     0.18088678934704261},
};

Test(spec_vectors, prf_outputs_and_uniforms) {
    tm_wm_key *key = spec_key();
    tm_wm_subkey subkey;
    tm_error err = {0};
    cr_assert_eq(tm_wm_derive_subkey(key, subkeys[0].info, &subkey, &err), TM_OK);
    for (size_t i = 0; i < sizeof prfs / sizeof prfs[0]; i++) {
        uint64_t x = tm_wm_prf(&subkey, prfs[i].domain, prfs[i].tokens, prfs[i].n, prfs[i].extra);
        cr_expect_eq(x, prfs[i].prf, "vector %zu: got %016llx", i, (unsigned long long)x);
        /* %.17g round-trips, so the printed uniform is the exact double. */
        cr_expect_eq(tm_wm_uniform(x), prfs[i].uniform, "vector %zu: uniform %.17g", i, tm_wm_uniform(x));
    }
    tm_wm_key_free(key);
}

/* The message layout, checked by hashing the spec's bytes directly. */
Test(spec_vectors, prf_message_encoding) {
    tm_wm_key *key = spec_key();
    tm_wm_subkey subkey;
    tm_error err = {0};
    cr_assert_eq(tm_wm_derive_subkey(key, subkeys[0].info, &subkey, &err), TM_OK);
    static const uint8_t message[] = {0x02, 0x05, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0,
                                      0,    4,    0, 0, 0, 5, 0, 0, 0, 0xe8, 0x03, 0, 0};
    int32_t tokens[] = {1, 2, 3, 4, 5};
    cr_expect_eq(tm_siphash24(&subkey, message, sizeof message), tm_wm_prf(&subkey, 0x02, tokens, 5, 1000));
    tm_wm_key_free(key);
}

/* More than TM_WM_PRF_MAX_TOKENS tokens: only the first 16 count (as in the
 * reference); schemes never pass more. */
Test(prf, caps_the_token_count) {
    tm_wm_subkey key = {1, 2};
    int32_t tokens[20];
    for (int i = 0; i < 20; i++) tokens[i] = i * 7;
    cr_expect_eq(tm_wm_prf(&key, 1, tokens, 20, 3), tm_wm_prf(&key, 1, tokens, 16, 3));
}

Test(prf, domains_tokens_and_extra_all_matter) {
    tm_wm_subkey key = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};
    int32_t a[] = {5, 6}, b[] = {6, 5};
    uint64_t base = tm_wm_prf(&key, 1, a, 2, 0);
    cr_expect_neq(base, tm_wm_prf(&key, 2, a, 2, 0));
    cr_expect_neq(base, tm_wm_prf(&key, 1, b, 2, 0));
    cr_expect_neq(base, tm_wm_prf(&key, 1, a, 2, 1));
    cr_expect_neq(base, tm_wm_prf(&key, 1, a, 1, 0));
    tm_wm_subkey other = {key.k0 ^ 1, key.k1};
    cr_expect_neq(base, tm_wm_prf(&other, 1, a, 2, 0));
}

/* The header promises a value strictly inside (0, 1), so that log(r),
 * log(1 - r) and r^(1/p) are always finite: ((x >> 12) + 0.5) * 2^-52 is exact
 * in binary64, from 2^-53 to 1 - 2^-53 (docs/watermark-spec.md, "Uniform
 * mapping"). */
Test(uniform, stays_strictly_inside_zero_one) {
    cr_expect(tm_wm_uniform(0) > 0.0, "tm_wm_uniform(0) = %.17g", tm_wm_uniform(0));
    cr_expect(tm_wm_uniform(UINT64_MAX) < 1.0, "tm_wm_uniform(UINT64_MAX) = %.17g", tm_wm_uniform(UINT64_MAX));
    cr_expect(tm_wm_uniform(UINT64_MAX >> 1) <= 0.5);
    cr_expect(tm_wm_uniform((UINT64_MAX >> 1) + 1) >= 0.5);
    cr_expect_eq(tm_wm_uniform(0), 0x1.0p-53);
    cr_expect_eq(tm_wm_uniform(UINT64_MAX), 1.0 - 0x1.0p-53);
    /* Exact, so symmetric: uniform(x) + uniform(~x) = 1 for every x. */
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 1000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        cr_expect_eq(tm_wm_uniform(x) + tm_wm_uniform(~x), 1.0, "x = %016llx", (unsigned long long)x);
    }
}

/* tm_wm_prf_batch (AVX-512 sixteen and AVX2 eight at a time where the CPU
 * has them, the scalar path for the rest) and tm_wm_prf_batch_scalar give
 * tm_wm_prf's values for every message shape a scheme builds: 0..14 fixed
 * tokens, one or two varying tokens (every byte offset of a SipHash word),
 * negative and large ids, extras, and counts that reach every path. */
Test(prf_batch, every_path_equals_the_one_message_prf) {
    cr_log_info("kernel paths: %s (and the scalar one)", tm_cpu_kernel_path());
    tm_wm_subkey key = {0x0706050403020100ULL ^ 0x5555, 0x0f0e0d0c0b0a0908ULL};
    uint64_t x = 99;
    int32_t fixed[TM_WM_PRF_MAX_TOKENS], a[53], b[53];
    uint64_t batch[53], scalar[53];
    for (size_t n_fixed = 0; n_fixed + 1 <= TM_WM_PRF_MAX_TOKENS; n_fixed++) {
        for (size_t n_varying = 1; n_varying <= 2 && n_fixed + n_varying <= TM_WM_PRF_MAX_TOKENS; n_varying++) {
            for (int round = 0; round < 4; round++) {
                uint32_t extra = round == 0 ? 0 : round == 1 ? 0xFFFFFFFFu : (uint32_t)(x >> 7);
                for (size_t i = 0; i < n_fixed; i++) fixed[i] = (int32_t)((x = x * 6364136223846793005ULL + 1) >> 40);
                for (size_t i = 0; i < 53; i++) {
                    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                    a[i] = i % 7 == 3 ? -1 - (int32_t)(x >> 60) : (int32_t)(x >> 33);
                    b[i] = (int32_t)(x >> 45) - 100;
                }
                tm_wm_prf_template t;
                uint8_t domain = (uint8_t)(1 + (n_fixed + round) % 8);
                tm_wm_prf_template_init(&t, domain, fixed, n_fixed, n_varying, extra);
                const int32_t *const slots[2] = {a, n_varying > 1 ? b : NULL};
                /* 16 at a time (AVX-512), then 8 (AVX2), then one by one: these
                 * counts reach every path a CPU has. */
                static const size_t counts[4] = {1, 13, 29, 53};
                size_t count = counts[round];
                tm_wm_prf_batch(&key, &t, slots, count, batch);
                tm_wm_prf_batch_scalar(&key, &t, slots, count, scalar);
                for (size_t i = 0; i < count; i++) {
                    int32_t tokens[TM_WM_PRF_MAX_TOKENS];
                    memcpy(tokens, fixed, n_fixed * sizeof *tokens);
                    tokens[n_fixed] = a[i];
                    if (n_varying > 1) tokens[n_fixed + 1] = b[i];
                    uint64_t expected = tm_wm_prf(&key, domain, tokens, n_fixed + n_varying, extra);
                    cr_assert_eq(batch[i], expected, "fixed %zu varying %zu message %zu", n_fixed, n_varying, i);
                    cr_assert_eq(scalar[i], expected, "scalar: fixed %zu varying %zu message %zu", n_fixed,
                                 n_varying, i);
                }
            }
        }
    }
}

/* tm_wm_prf_window (the detector's sliding messages) on every SIMD path
 * (AVX-512, AVX2, scalar, as far as the CPU has them) gives tm_wm_prf's
 * value of each window: every length, negative and large ids, extras, and
 * counts that cross its chunks and end mid-lane. */
static void check_prf_window(int simd) {
    tm_wm_subkey key = {0x1716151413121110ULL, 0x0f0e0d0c0b0a0908ULL ^ 0xAAAA};
    enum { TEXT = 600 };
    static int32_t tokens[TEXT + TM_WM_PRF_MAX_TOKENS + 8]; /* windows start up to 7 tokens in */
    static uint64_t out[TEXT];
    uint64_t x = 7;
    for (size_t i = 0; i < TEXT + TM_WM_PRF_MAX_TOKENS + 8; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        tokens[i] = i % 9 == 4 ? -1 - (int32_t)(x >> 59) : i % 5 == 1 ? (int32_t)(x >> 33) : (int32_t)(x >> 55);
    }
    static const size_t counts[] = {1, 15, 16, 17, 255, 256, 257, 600};
    for (size_t n = 1; n <= TM_WM_PRF_MAX_TOKENS; n++) {
        for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
            size_t count = counts[c];
            uint32_t extra = c % 3 == 0 ? 0 : c % 3 == 1 ? 0xFFFFFFFFu : (uint32_t)(x >> 13);
            uint8_t domain = (uint8_t)(1 + (n + c) % 8);
            memset(out, 0, sizeof out);
            tm_wm_prf_window_simd(&key, domain, tokens + c, n, extra, count, out, simd);
            for (size_t i = 0; i < count; i++)
                cr_assert_eq(out[i], tm_wm_prf(&key, domain, tokens + c + i, n, extra),
                             "n %zu simd %d count %zu message %zu", n, simd, count, i);
        }
    }
}

/* One test per SIMD level, skipped visibly where the CPU (or TM_NO_AVX2 /
 * TM_NO_AVX512) lacks it: the dispatcher would run a narrower path silently. */
Test(prf_window, the_scalar_path_equals_the_one_message_prf) {
    cr_log_info("kernel path: scalar");
    check_prf_window(0);
}

Test(prf_window, the_avx2_path_equals_the_one_message_prf) {
    if (!tm_cpu_has(TM_CPU_AVX2)) cr_skip_test("no AVX2 on this CPU (or TM_NO_AVX2 set): AVX2 path not tested");
    cr_log_info("kernel path: AVX2");
    check_prf_window(1);
}

Test(prf_window, the_avx512_path_equals_the_one_message_prf) {
    if (!tm_cpu_has(TM_CPU_AVX512F))
        cr_skip_test("no AVX-512F on this CPU (or TM_NO_AVX512 set): AVX-512 path not tested");
    cr_log_info("kernel path: AVX-512");
    check_prf_window(2);
}

/* tm_wm_order_by_key (the ordering of DiPmark and ITS-edit) against a plain
 * comparison sort by (key >> shift, id), on sets of every size class (the
 * insertion path under 64, 8-bit and 11-bit radix digits) whose keys tie in
 * their top 32 bits, tie after the shift, or are equal, so that every
 * tie-breaking rule is exercised. */
static unsigned order_shift;
static const uint64_t *order_keys;
static const int32_t *order_ids;
static int compare_by_key_then_id(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    uint64_t kx = order_keys[x] >> order_shift, ky = order_keys[y] >> order_shift;
    if (kx != ky) return kx < ky ? -1 : 1;
    return (order_ids[x] > order_ids[y]) - (order_ids[x] < order_ids[y]);
}

Test(order_by_key, equals_a_comparison_sort_with_ties) {
    static const size_t sizes[] = {0, 1, 5, 63, 64, 300, 4095, 4096, 9000};
    uint64_t x = 5;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        uint64_t *keys = malloc((n + 1) * sizeof *keys), *work = malloc((2 * n + 1) * sizeof *work);
        int32_t *ids = malloc((n + 1) * sizeof *ids);
        uint32_t *order = malloc((n + 1) * sizeof *order), *expected = malloc((n + 1) * sizeof *expected);
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t key = x;
            if (i % 5 == 1) key = (keys[i - 1] & ~0xFFFFFFFFULL) | (x >> 40); /* same top 32 bits */
            if (i % 7 == 2) key = keys[i - 1] ^ 0x7FF;                        /* same key >> 12 */
            if (i % 11 == 3) key = keys[i - 2];                               /* the same key */
            keys[i] = key;
            ids[i] = (int32_t)((n - i) * 2654435761u % 100003) - 50000;
        }
        for (unsigned shift = 0; shift <= 12; shift += 12) {
            tm_wm_order_by_key(keys, ids, n, shift, order, work);
            for (size_t i = 0; i < n; i++) expected[i] = (uint32_t)i;
            order_shift = shift, order_keys = keys, order_ids = ids;
            qsort(expected, n, sizeof *expected, compare_by_key_then_id);
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(order[i], expected[i], "n %zu shift %u position %zu", n, shift, i);
        }
        free(keys), free(work), free(ids), free(order), free(expected);
    }
}
