/* Tests of provenance/ through its library API: Ed25519 signing against
 * RFC 8032's test vectors, the canonical JSON against RFC 8785's examples
 * (its section 3.2.2 and 3.2.3 examples and the Appendix B number table,
 * cross-checked with Node's Number.prototype.toString), manifests signed and
 * verified plain and embedded, every byte of a content file and of its
 * manifest changed one at a time (each caught and named), wrong keys,
 * key files readable by others, strict manifest parsing, the C2PA text
 * wrapper (layout, UTF-8/UTF-16 round trips, malformed wrappers), and
 * detection p-values identical with and without an embedded manifest. */
#include <criterion/criterion.h>

#include "fixtures.h"
#include "tracemark/provenance.h"
#include "watermark_testing.h"

#include <iconv.h>
#include <openssl/evp.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *scratch;

static void setup(void) { scratch = tm_test_scratch_dir(); }

static void teardown(void) {
    char command[600];
    snprintf(command, sizeof command, "rm -rf '%s'", scratch);
    cr_expect_eq(system(command), 0);
    free(scratch);
}

TestSuite(ed25519);
TestSuite(canonical_json);
TestSuite(manifest, .init = setup, .fini = teardown);
TestSuite(embedding);
TestSuite(signing_keys, .init = setup, .fini = teardown);

static void from_hex(const char *hex, uint8_t *out, size_t n) {
    cr_assert_eq(strlen(hex), 2 * n);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

/* ======================================================================== */
/* RFC 8032 section 7.1: Ed25519 test vectors                               */
/* ======================================================================== */

typedef struct {
    const char *secret, *public_key, *message, *signature;
} rfc8032_vector;

static const rfc8032_vector rfc8032[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
    {"833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
};

Test(ed25519, rfc8032_vectors_sign_and_verify) {
    for (size_t v = 0; v < sizeof rfc8032 / sizeof rfc8032[0]; v++) {
        uint8_t seed[32], public_key[32], expected[64], signature[64], message[64];
        size_t message_size = strlen(rfc8032[v].message) / 2;
        from_hex(rfc8032[v].secret, seed, 32);
        from_hex(rfc8032[v].public_key, public_key, 32);
        from_hex(rfc8032[v].signature, expected, 64);
        from_hex(rfc8032[v].message, message, message_size);
        tm_error err = {0};
        tm_signing_key *key = NULL;
        cr_assert_eq(tm_signing_key_from_seed(&key, seed, &err), TM_OK, "%s", err.message);
        uint8_t derived[32];
        tm_signing_key_raw_public(key, derived);
        cr_expect_arr_eq(derived, public_key, 32, "vector %zu: public key", v);
        cr_assert_eq(tm_signing_key_sign(key, message, message_size, signature, &err), TM_OK, "%s", err.message);
        cr_expect_arr_eq(signature, expected, 64, "vector %zu: signature", v);
        /* The fingerprint is SHA-256 of the raw public key. */
        char fingerprint[TM_SHA256_HEX_SIZE];
        tm_sha256_hex(public_key, 32, fingerprint);
        cr_expect_str_eq(tm_signing_key_fingerprint(key), fingerprint);

        tm_public_key *pub = NULL;
        cr_assert_eq(tm_public_key_from_raw(&pub, public_key, &err), TM_OK, "%s", err.message);
        cr_expect_str_eq(tm_public_key_fingerprint(pub), fingerprint);
        cr_expect(tm_public_key_verify(pub, message, message_size, expected), "vector %zu verifies", v);
        for (size_t bit = 0; bit < 512; bit += 37) { /* any changed bit of the signature fails */
            uint8_t bad[64];
            memcpy(bad, expected, 64);
            bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            cr_expect_not(tm_public_key_verify(pub, message, message_size, bad), "vector %zu bit %zu", v, bit);
        }
        if (message_size) {
            message[0] ^= 1;
            cr_expect_not(tm_public_key_verify(pub, message, message_size, expected));
        }
        tm_public_key_free(pub);
        tm_signing_key_free(key);
    }
}

Test(ed25519, wrong_public_key_fails) {
    uint8_t seed_a[32], seed_b[32], signature[64];
    from_hex(rfc8032[0].secret, seed_a, 32);
    from_hex(rfc8032[1].secret, seed_b, 32);
    tm_error err = {0};
    tm_signing_key *a = NULL, *b = NULL;
    cr_assert_eq(tm_signing_key_from_seed(&a, seed_a, &err), TM_OK);
    cr_assert_eq(tm_signing_key_from_seed(&b, seed_b, &err), TM_OK);
    cr_assert_eq(tm_signing_key_sign(a, "hello", 5, signature, &err), TM_OK);
    tm_public_key *pa = NULL, *pb = NULL;
    cr_assert_eq(tm_public_key_from_signing_key(&pa, a, &err), TM_OK);
    cr_assert_eq(tm_public_key_from_signing_key(&pb, b, &err), TM_OK);
    cr_expect(tm_public_key_verify(pa, "hello", 5, signature));
    cr_expect_not(tm_public_key_verify(pb, "hello", 5, signature));
    tm_public_key_free(pa);
    tm_public_key_free(pb);
    tm_signing_key_free(a);
    tm_signing_key_free(b);
}

/* ======================================================================== */
/* RFC 8785                                                                 */
/* ======================================================================== */

static void expect_canonical(const char *input, const char *expected) {
    char *out = NULL;
    size_t size = 0;
    tm_error err = {0};
    cr_assert_eq(tm_canonical_json(input, strlen(input), &out, &size, &err), TM_OK, "%s: %s", input, err.message);
    cr_expect_eq(size, strlen(expected));
    cr_expect_str_eq(out, expected);
    free(out);
}

/* RFC 8785 section 3.2.2 (its input, with the JSON escapes as written there). */
Test(canonical_json, rfc8785_section_3_2_2_example) {
    expect_canonical("{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n"
                     "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
                     "  \"literals\": [null, true, false]\n}",
                     "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
                     "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

/* RFC 8785 section 3.2.3: names sorted by UTF-16 code units (the emoji's
 * surrogates sort before U+FB33 although its code point is larger). */
Test(canonical_json, rfc8785_section_3_2_3_sorting) {
    expect_canonical("{\"\\u20ac\": \"Euro Sign\", \"\\r\": \"Carriage Return\", \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\","
                     " \"1\": \"One\", \"\\ud83d\\ude00\": \"Emoji: Grinning Face\", \"\\u0080\": \"Control\","
                     " \"\\u00f6\": \"Latin Small Letter O With Diaeresis\"}",
                     "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
                     "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\","
                     "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\",\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

/* RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript form. */
Test(canonical_json, rfc8785_appendix_b_numbers) {
    static const struct { uint64_t bits; const char *text; } table[] = {
        {0x0000000000000000, "0"}, {0x8000000000000000, "0"}, {0x0000000000000001, "5e-324"},
        {0x8000000000000001, "-5e-324"}, {0x7fefffffffffffff, "1.7976931348623157e+308"},
        {0xffefffffffffffff, "-1.7976931348623157e+308"}, {0x4340000000000000, "9007199254740992"},
        {0xc340000000000000, "-9007199254740992"}, {0x4430000000000000, "295147905179352830000"},
        {0x44b52d02c7e14af5, "9.999999999999997e+22"}, {0x44b52d02c7e14af6, "1e+23"},
        {0x44b52d02c7e14af7, "1.0000000000000001e+23"}, {0x444b1ae4d6e2ef4e, "999999999999999700000"},
        {0x444b1ae4d6e2ef4f, "999999999999999900000"}, {0x444b1ae4d6e2ef50, "1e+21"},
        {0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"}, {0x3eb0c6f7a0b5ed8d, "0.000001"},
        {0x41b3de4355555553, "333333333.3333332"}, {0x41b3de4355555554, "333333333.33333325"},
        {0x41b3de4355555555, "333333333.3333333"}, {0x41b3de4355555556, "333333333.3333334"},
        {0x41b3de4355555557, "333333333.33333343"}, {0xbecbf647612f3696, "-0.0000033333333333333333"},
        {0x43143ff3c1cb0959, "1424953923781206.2"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        double x;
        memcpy(&x, &table[i].bits, sizeof x);
        char out[40];
        tm_error err = {0};
        cr_assert_eq(tm_canonical_number(x, out, sizeof out, &err), TM_OK);
        cr_expect_str_eq(out, table[i].text, "bits %016llx", (unsigned long long)table[i].bits);
    }
    char out[40];
    tm_error err = {0};
    cr_expect_eq(tm_canonical_number(NAN, out, sizeof out, &err), TM_ERR_ARGUMENT);
    cr_expect_eq(tm_canonical_number(INFINITY, out, sizeof out, &err), TM_ERR_ARGUMENT);
}

Test(canonical_json, integers_nesting_and_errors) {
    expect_canonical("[0, -0, 9007199254740992, -12, 1.0, 100, {\"b\": {\"z\": [], \"a\": {}}, \"a\": \"\\u001f\\t\"}]",
                     "[0,0,9007199254740992,-12,1,100,{\"a\":\"\\u001f\\t\",\"b\":{\"a\":{},\"z\":[]}}]");
    /* Beyond 2^53 an integer is the double ECMAScript would read. */
    expect_canonical("[9007199254740993]", "[9007199254740992]");
    char *out = NULL;
    size_t size = 0;
    tm_error err = {0};
    cr_expect_eq(tm_canonical_json("{\"a\":1,\"a\":2}", 13, &out, &size, &err), TM_ERR_FORMAT, "duplicate names");
    cr_expect_eq(tm_canonical_json("[1,", 3, &out, &size, &err), TM_ERR_FORMAT);
    cr_expect_null(out);
}

/* ======================================================================== */
/* Manifests                                                                */
/* ======================================================================== */

static tm_signing_key *seeded_key(int which) {
    uint8_t seed[32];
    from_hex(rfc8032[which].secret, seed, 32);
    tm_signing_key *key = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_signing_key_from_seed(&key, seed, &err), TM_OK);
    return key;
}

static tm_trust_store *trust_of(const tm_signing_key *key) {
    tm_trust_store *store = NULL;
    tm_public_key *pub = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_trust_store_create(&store, &err), TM_OK);
    cr_assert_eq(tm_public_key_from_signing_key(&pub, key, &err), TM_OK);
    cr_assert_eq(tm_trust_store_add_key(store, pub, &err), TM_OK);
    return store;
}

static const char generation_record[] =
    "{\"model\": \"/nonexistent/stories260K.bin\", \"model_sha256\": "
    "\"1111111111111111111111111111111111111111111111111111111111111111\", \"seed\": 42, "
    "\"sampling\": {\"temperature\": 0.8, \"top_k\": 40}, \"watermark\": {\"scheme\": \"kgw\", "
    "\"parameters\": \"gamma=0.25,delta=2\", \"key_id\": \"fda1a304fcd9862d\"}, \"text\": \"ignored\"}";

static char *signed_manifest(const tm_signing_key *key, const char *content, size_t size, size_t *manifest_size) {
    tm_manifest *m = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_manifest_create(&m, content, size, generation_record, strlen(generation_record), &err), TM_OK, "%s",
                 err.message);
    cr_assert_eq(tm_manifest_sign(m, key, 1767225600, &err), TM_OK, "%s", err.message); /* 2026-01-01 */
    char *text = NULL;
    cr_assert_eq(tm_manifest_serialize(m, &text, manifest_size, &err), TM_OK);
    tm_manifest_free(m);
    return text;
}

static const char content[] = "Once upon a time, there was a little robot.\nIt liked tea.\n";

Test(manifest, sign_verify_round_trip_and_fields) {
    tm_signing_key *key = seeded_key(0);
    tm_trust_store *trust = trust_of(key);
    size_t n = 0;
    char *text = signed_manifest(key, content, strlen(content), &n);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    cr_assert_not_null(root);
    char hex[TM_SHA256_HEX_SIZE];
    tm_sha256_hex(content, strlen(content), hex);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(root, "content"), "sha256")), hex);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(root, "content"), "length")), (json_int_t)strlen(content));
    cr_expect_str_eq(json_string_value(json_object_get(root, "digital_source_type")), TM_DIGITAL_SOURCE_TYPE);
    cr_expect_str_eq(json_string_value(json_object_get(root, "created")), "2026-01-01T00:00:00Z");
    json_t *gen = json_object_get(root, "generator");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(gen, "model"), "name")), "stories260K.bin");
    cr_expect_str_eq(json_string_value(json_object_get(gen, "seed")), "42");
    /* Reals are kept as their RFC 8785 text, so that no two spellings of the
     * manifest carry one signature. */
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(gen, "sampling"), "temperature")), "0.8");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(gen, "sampling"), "top_k")), 40);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(root, "watermark"), "key_id")), "fda1a304fcd9862d");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(root, "signer"), "fingerprint")),
                     tm_signing_key_fingerprint(key));
    /* The signature is Ed25519 over the RFC 8785 form of all but "signature". */
    json_t *unsigned_part = json_copy(root);
    json_object_del(unsigned_part, "signature");
    char *compact = json_dumps(unsigned_part, JSON_COMPACT);
    char *canonical = NULL;
    size_t canonical_size = 0;
    tm_error err = {0};
    cr_assert_eq(tm_canonical_json(compact, strlen(compact), &canonical, &canonical_size, &err), TM_OK);
    uint8_t signature[64];
    cr_assert_eq(tm_signing_key_sign(key, canonical, canonical_size, signature, &err), TM_OK);
    unsigned char base64[100];
    EVP_EncodeBlock(base64, signature, 64);
    cr_expect_str_eq(json_string_value(json_object_get(root, "signature")), (char *)base64);
    free(compact);
    free(canonical);
    json_decref(unsigned_part);
    json_decref(root);

    tm_verification v;
    cr_assert_eq(tm_provenance_verify(content, strlen(content), text, n, trust, NULL, &v, &err), TM_OK);
    cr_expect(v.verified, "%s", v.reason);
    cr_expect(v.signature_valid && v.signer_trusted && v.content_unchanged);
    cr_expect_not(v.embedded);
    cr_expect_str_eq(v.manifest_watermark_key_id, "fda1a304fcd9862d");
    free(text);
    tm_trust_store_free(trust);
    tm_signing_key_free(key);
}

Test(manifest, every_changed_byte_is_caught_and_named) {
    tm_signing_key *key = seeded_key(0);
    tm_trust_store *trust = trust_of(key);
    size_t n = 0, size = strlen(content);
    char *text = signed_manifest(key, content, size, &n);
    tm_error err = {0};
    tm_verification v;
    /* Content: every byte, two kinds of change each. */
    char *changed = strdup(content);
    for (size_t i = 0; i < size; i++) {
        for (int mask = 0x01; mask <= 0x80; mask <<= 7) {
            changed[i] ^= (char)mask;
            cr_assert_eq(tm_provenance_verify(changed, size, text, n, trust, NULL, &v, &err), TM_OK);
            cr_expect_not(v.verified, "content byte %zu", i);
            cr_expect_eq(v.failure, TM_VERIFY_CONTENT_CHANGED, "content byte %zu: %s", i, v.reason);
            cr_expect(v.signature_valid);
            changed[i] ^= (char)mask;
        }
    }
    cr_assert_eq(tm_provenance_verify(content, size - 1, text, n, trust, NULL, &v, &err), TM_OK);
    cr_expect_eq(v.failure, TM_VERIFY_CONTENT_CHANGED, "a truncated text");
    free(changed);

    /* Manifest: every byte. Inside the signer's fingerprint a change makes an
     * untrusted signer (or bad hex), inside the signature a bad signature (or
     * bad base64); anywhere else malformed JSON, a named bad field, or a
     * signature that no longer matches. */
    const char *fp = strstr(text, tm_signing_key_fingerprint(key));
    const char *sig = strstr(text, "\"signature\": \"");
    cr_assert(fp && sig);
    size_t fp_start = (size_t)(fp - text), fp_end = fp_start + 64, sig_start = (size_t)(sig - text) + 14,
           sig_end = sig_start + 88;
    size_t counts[6] = {0};
    for (size_t i = 0; i < n; i++) {
        text[i] ^= 0x01;
        cr_assert_eq(tm_provenance_verify(content, size, text, n, trust, NULL, &v, &err), TM_OK);
        text[i] ^= 0x01;
        cr_expect_not(v.verified, "manifest byte %zu ('%c') changed, still verified", i, text[i]);
        counts[v.failure]++;
        if (i >= fp_start && i < fp_end)
            cr_expect(v.failure == TM_VERIFY_UNTRUSTED_SIGNER ||
                      (v.failure == TM_VERIFY_MANIFEST_MALFORMED && strstr(v.reason, "signer.fingerprint")),
                      "fingerprint byte %zu: %s: %s", i, tm_verify_failure_name(v.failure), v.reason);
        else if (i >= sig_start && i < sig_end)
            cr_expect(v.failure == TM_VERIFY_BAD_SIGNATURE ||
                      (v.failure == TM_VERIFY_MANIFEST_MALFORMED && strstr(v.reason, "field signature")),
                      "signature byte %zu: %s: %s", i, tm_verify_failure_name(v.failure), v.reason);
        else
            cr_expect(v.failure == TM_VERIFY_BAD_SIGNATURE ||
                      (v.failure == TM_VERIFY_MANIFEST_MALFORMED &&
                       (strstr(v.reason, "field ") || strstr(v.reason, "not JSON") || strstr(v.reason, "UTF-8"))),
                      "manifest byte %zu: %s: %s", i, tm_verify_failure_name(v.failure), v.reason);
    }
    cr_expect_eq(counts[TM_VERIFY_CONTENT_CHANGED] + counts[TM_VERIFY_OK] + counts[TM_VERIFY_NO_MANIFEST], 0);
    cr_expect_gt(counts[TM_VERIFY_UNTRUSTED_SIGNER], 0);
    cr_expect_gt(counts[TM_VERIFY_BAD_SIGNATURE], 0);
    cr_expect_gt(counts[TM_VERIFY_MANIFEST_MALFORMED], 0);
    free(text);
    tm_trust_store_free(trust);
    tm_signing_key_free(key);
}

Test(manifest, untrusted_signer_and_wrong_key) {
    tm_signing_key *signer = seeded_key(0), *other = seeded_key(1);
    tm_trust_store *trust = trust_of(other);
    size_t n = 0;
    char *text = signed_manifest(signer, content, strlen(content), &n);
    tm_verification v;
    tm_error err = {0};
    cr_assert_eq(tm_provenance_verify(content, strlen(content), text, n, trust, NULL, &v, &err), TM_OK);
    cr_expect_not(v.verified);
    cr_expect_eq(v.failure, TM_VERIFY_UNTRUSTED_SIGNER);
    cr_assert_eq(tm_provenance_verify(content, strlen(content), text, n, NULL, NULL, &v, &err), TM_OK);
    cr_expect_eq(v.failure, TM_VERIFY_UNTRUSTED_SIGNER, "no trust store trusts no one");
    /* A manifest re-labelled with the trusted key's fingerprint: the
     * signature (by the other key) no longer holds. */
    char *relabelled = strdup(text);
    memcpy(strstr(relabelled, tm_signing_key_fingerprint(signer)), tm_signing_key_fingerprint(other), 64);
    cr_assert_eq(tm_provenance_verify(content, strlen(content), relabelled, n, trust, NULL, &v, &err), TM_OK);
    cr_expect_eq(v.failure, TM_VERIFY_BAD_SIGNATURE);
    free(relabelled);
    free(text);
    tm_trust_store_free(trust);
    tm_signing_key_free(signer);
    tm_signing_key_free(other);
}

/* Replace the first occurrence of from by to in a heap string. */
static char *replaced(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    cr_assert_not_null(at, "'%s' not in the manifest", from);
    size_t n = strlen(text) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    size_t head = (size_t)(at - text);
    memcpy(out, text, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

Test(manifest, strict_parsing_names_the_field) {
    tm_signing_key *key = seeded_key(0);
    size_t n = 0;
    char *text = signed_manifest(key, content, strlen(content), &n);
    static const struct { const char *from, *to, *field; tm_status code; } cases[] = {
        {"\"version\": 1", "\"version\": 2", "field version", TM_ERR_UNSUPPORTED},
        {"\"version\": 1", "\"version\": \"1\"", "field version", TM_ERR_FORMAT},
        {"\"length\": ", "\"length\": -", "field content.length", TM_ERR_FORMAT},
        {"\"created\": \"2026-01-01T00:00:00Z\"", "\"created\": \"2026-02-30T00:00:00Z\"", "field created", TM_ERR_FORMAT},
        {"\"created\": \"2026-01-01T00:00:00Z\"", "\"created\": 1767225600", "field created", TM_ERR_FORMAT},
        {"\"seed\": \"42\"", "\"seed\": 42", "field generator.seed", TM_ERR_FORMAT},
        {"\"tool\"", "\"tool\": \"x\", \"extra\"", "field generator.extra: unknown", TM_ERR_FORMAT},
        {"\"watermark\": {", "\"watermark\": {\"key\": \"00\", ", "field watermark.key: unknown", TM_ERR_FORMAT},
        {"\"algorithm\": \"Ed25519\"", "\"algorithm\": \"RSA\"", "field signer.algorithm", TM_ERR_FORMAT},
        {"\"type\": \"tracemark.manifest\"", "\"type\": \"c2pa\"", "field type", TM_ERR_FORMAT},
        {"\"digital_source_type\"", "\"digital_source_type\": \"x\", \"ignored\"", "field ", TM_ERR_FORMAT},
        {"\"signature\": \"", "\"signature\": \"=", "field signature", TM_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *bad = replaced(text, cases[i].from, cases[i].to);
        tm_manifest *m = NULL;
        tm_error err = {0};
        cr_expect_eq(tm_manifest_parse(&m, bad, strlen(bad), &err), cases[i].code, "case %zu: %s", i, err.message);
        cr_expect_not_null(strstr(err.message, cases[i].field), "case %zu: '%s' lacks '%s'", i, err.message,
                           cases[i].field);
        cr_expect_null(m);
        free(bad);
    }
    tm_manifest *m = NULL;
    tm_error err = {0};
    cr_expect_eq(tm_manifest_parse(&m, "[]", 2, &err), TM_ERR_FORMAT);
    const char *duplicated = "{\"type\":\"tracemark.manifest\",\"version\":1,\"a\":1,\"a\":1}";
    cr_expect_eq(tm_manifest_parse(&m, duplicated, strlen(duplicated), &err),
                 TM_ERR_FORMAT, "duplicate names");
    cr_assert_eq(tm_manifest_parse(&m, text, n, &err), TM_OK, "%s", err.message);
    tm_manifest_free(m);
    free(text);
    tm_signing_key_free(key);
}

/* ======================================================================== */
/* Key files                                                                */
/* ======================================================================== */

Test(signing_keys, write_read_modes_and_refusals) {
    tm_signing_key *key = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_signing_key_generate(&key, &err), TM_OK);
    char *priv = tm_test_path(scratch, "s.key"), *pub = tm_test_path(scratch, "s.pub");
    cr_assert_eq(tm_signing_key_write(key, priv, pub, &err), TM_OK, "%s", err.message);
    struct stat st;
    cr_assert_eq(stat(priv, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);
    cr_expect_eq(tm_signing_key_write(key, priv, pub, &err), TM_ERR_ARGUMENT, "never overwrites");
    tm_signing_key *back = NULL;
    cr_assert_eq(tm_signing_key_read(&back, priv, &err), TM_OK, "%s", err.message);
    cr_expect_str_eq(tm_signing_key_fingerprint(back), tm_signing_key_fingerprint(key));
    tm_public_key *p = NULL;
    cr_assert_eq(tm_public_key_read(&p, pub, &err), TM_OK, "%s", err.message);
    cr_expect_str_eq(tm_public_key_fingerprint(p), tm_signing_key_fingerprint(key));
    tm_public_key_free(p);
    tm_signing_key_free(back);
    static const mode_t bad_modes[] = {0640, 0604, 0644, 0660, 0602};
    for (size_t i = 0; i < sizeof bad_modes / sizeof bad_modes[0]; i++) {
        cr_assert_eq(chmod(priv, bad_modes[i]), 0);
        back = NULL;
        cr_expect_eq(tm_signing_key_read(&back, priv, &err), TM_ERR_PERMISSION, "mode %o", bad_modes[i]);
        cr_expect_null(back);
        cr_expect_not_null(strstr(err.message, "chmod 600"));
    }
    cr_assert_eq(chmod(priv, 0600), 0);
    /* A public key is not a private key, and garbage is neither. */
    cr_assert_eq(chmod(pub, 0600), 0);
    cr_expect_eq(tm_signing_key_read(&back, pub, &err), TM_ERR_FORMAT);
    cr_expect_eq(tm_public_key_read(&p, priv, &err), TM_ERR_FORMAT);
    /* A folder of keys trusts its *.pub files only. */
    tm_trust_store *store = NULL;
    cr_assert_eq(tm_trust_store_create(&store, &err), TM_OK);
    cr_assert_eq(tm_trust_store_add_path(store, scratch, &err), TM_OK, "%s", err.message);
    cr_expect_eq(tm_trust_store_count(store), 1);
    cr_expect_not_null(tm_trust_store_find(store, tm_signing_key_fingerprint(key)));
    tm_trust_store_free(store);
    free(priv);
    free(pub);
    tm_signing_key_free(key);
}

/* ======================================================================== */
/* Embedding                                                                */
/* ======================================================================== */

Test(embedding, wrapper_layout_follows_c2pa) {
    char *out = NULL;
    size_t n = 0;
    tm_error err = {0};
    const uint8_t payload[] = {0x00, 0x0f, 0x10, 0xff, '{'};
    cr_assert_eq(tm_provenance_embed("Hi", 2, (const char *)payload, sizeof payload, &out, &n, &err), TM_OK);
    /* "Hi", U+FEFF, then 13 header bytes and 5 payload bytes as selectors. */
    static const uint8_t expected_start[] = {'H', 'i', 0xEF, 0xBB, 0xBF,
                                             0xF3, 0xA0, 0x84, 0xB3, /* 'C' 0x43 -> U+E0133 */
                                             0xF3, 0xA0, 0x84, 0xA2, /* '2' 0x32 -> U+E0122 */
                                             0xF3, 0xA0, 0x85, 0x80, /* 'P' 0x50 -> U+E0140 */
                                             0xF3, 0xA0, 0x84, 0xB1, /* 'A' 0x41 -> U+E0131 */
                                             0xF3, 0xA0, 0x85, 0x84, /* 'T' 0x54 -> U+E0144 */
                                             0xF3, 0xA0, 0x85, 0x88, /* 'X' 0x58 -> U+E0148 */
                                             0xF3, 0xA0, 0x85, 0x84, /* 'T' */
                                             0xEF, 0xB8, 0x80,       /* 0x00 -> U+FE00 */
                                             0xEF, 0xB8, 0x81,       /* version 1 -> U+FE01 */
                                             0xEF, 0xB8, 0x80, 0xEF, 0xB8, 0x80, 0xEF, 0xB8, 0x80, /* length 00 00 00 */
                                             0xEF, 0xB8, 0x85,       /* 05 */
                                             0xEF, 0xB8, 0x80,       /* payload 0x00 */
                                             0xEF, 0xB8, 0x8F,       /* 0x0f -> U+FE0F */
                                             0xF3, 0xA0, 0x84, 0x80, /* 0x10 -> U+E0100 */
                                             0xF3, 0xA0, 0x87, 0xAF, /* 0xff -> U+E01EF */
                                             0xF3, 0xA0, 0x85, 0xAB}; /* '{' 0x7b -> U+E016B */
    cr_assert_eq(n, sizeof expected_start);
    cr_expect_arr_eq(out, expected_start, n);
    cr_expect(tm_utf8_valid(out, n));
    tm_embedded_manifest found;
    cr_assert_eq(tm_provenance_extract(out, n, &found, &err), TM_OK);
    cr_assert(found.found);
    cr_expect_eq(found.start, 2);
    cr_expect_eq(found.end, n);
    cr_expect_eq(found.manifest_size, sizeof payload);
    cr_expect_arr_eq(found.manifest, payload, sizeof payload);
    tm_embedded_manifest_free(&found);
    /* Embedding again replaces the wrapper rather than stacking a second one. */
    char *again = NULL;
    size_t again_n = 0;
    cr_assert_eq(tm_provenance_embed(out, n, (const char *)payload, sizeof payload, &again, &again_n, &err), TM_OK);
    cr_expect_eq(again_n, n);
    cr_expect_arr_eq(again, out, n);
    free(again);
    free(out);
}

Test(embedding, broken_wrappers_are_errors_and_plain_feff_is_text) {
    tm_embedded_manifest found;
    tm_error err = {0};
    const char plain[] = "a\xEF\xBB\xBF" "b"; /* a lone U+FEFF is just text */
    cr_assert_eq(tm_provenance_extract(plain, strlen(plain), &found, &err), TM_OK);
    cr_expect_not(found.found);
    char *out = NULL;
    size_t n = 0;
    cr_assert_eq(tm_provenance_embed("text", 4, "{\"a\":1}", 7, &out, &n, &err), TM_OK);
    /* Cut anywhere inside the wrapper: an error naming what is wrong, never a crash. */
    for (size_t cut = 4 + 3 + 4; cut < n; cut++) {
        tm_status s = tm_provenance_extract(out, cut, &found, &err);
        cr_expect_eq(s, TM_ERR_FORMAT, "cut at %zu", cut);
        cr_expect_not(found.found);
    }
    /* A length larger than the text. */
    char *bad = malloc(n);
    memcpy(bad, out, n);
    bad[4 + 3 + 7 * 4 + 3 + 3 + 2] = (char)0x8F; /* first length byte 0x00 -> 0x0f */
    cr_expect_eq(tm_provenance_extract(bad, n, &found, &err), TM_ERR_FORMAT);
    cr_expect_not_null(strstr(err.message, "exceeds"), "%s", err.message);
    free(bad);
    free(out);
}

/* Convert between encodings with glibc's iconv (a copy through UTF-16 and UTF-32). */
static char *convert(const char *from, const char *to, const char *in, size_t n, size_t *out_n) {
    iconv_t cd = iconv_open(to, from);
    cr_assert_neq(cd, (iconv_t)-1);
    size_t capacity = 4 * n + 16, left = capacity;
    char *out = malloc(capacity), *o = out, *i = (char *)in;
    size_t in_left = n;
    cr_assert_neq(iconv(cd, &i, &in_left, &o, &left), (size_t)-1);
    iconv_close(cd);
    *out_n = capacity - left;
    return out;
}

Test(embedding, survives_utf16_utf32_and_json_escape_round_trips) {
    tm_signing_key *key = seeded_key(2);
    tm_trust_store *trust = trust_of(key);
    size_t manifest_n = 0;
    const char *text = "Grüße, 世界! Emoji 😀 and a variation selector ❤️ in the text.\n";
    tm_error err = {0};
    char *manifest = NULL;
    cr_assert_eq(tm_provenance_sign_generation(text, strlen(text), NULL, 0, key, &manifest, &manifest_n, &err), TM_OK);
    char *embedded = NULL;
    size_t n = 0;
    cr_assert_eq(tm_provenance_embed(text, strlen(text), manifest, manifest_n, &embedded, &n, &err), TM_OK);
    const char *encodings[] = {"UTF-16LE", "UTF-16BE", "UTF-32LE"};
    for (size_t e = 0; e < 3; e++) {
        size_t wide_n = 0, back_n = 0;
        char *wide = convert("UTF-8", encodings[e], embedded, n, &wide_n);
        char *back = convert(encodings[e], "UTF-8", wide, wide_n, &back_n);
        cr_expect_eq(back_n, n);
        cr_expect_arr_eq(back, embedded, n, "%s", encodings[e]);
        tm_verification v;
        cr_assert_eq(tm_provenance_verify(back, back_n, NULL, 0, trust, NULL, &v, &err), TM_OK);
        cr_expect(v.verified && v.embedded, "%s: %s", encodings[e], v.reason);
        free(wide);
        free(back);
    }
    /* Through a JSON string with every non-ASCII character \u-escaped (surrogate pairs). */
    json_t *s = json_stringn(embedded, n);
    char *dumped = json_dumps(s, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
    cr_expect_null(strchr(dumped, 0xF3), "escaped");
    json_t *loaded = json_loads(dumped, JSON_DECODE_ANY, NULL);
    cr_assert_eq(json_string_length(loaded), n);
    cr_expect_arr_eq(json_string_value(loaded), embedded, n);
    json_decref(loaded);
    json_decref(s);
    free(dumped);
    /* Content check: the text without its wrapper is what was signed. */
    tm_verification v;
    cr_assert_eq(tm_provenance_verify(embedded, n, NULL, 0, trust, NULL, &v, &err), TM_OK);
    cr_expect(v.verified, "%s", v.reason);
    cr_expect_eq(v.content_length, strlen(text));
    embedded[0] = 'g';
    cr_assert_eq(tm_provenance_verify(embedded, n, NULL, 0, trust, NULL, &v, &err), TM_OK);
    cr_expect_eq(v.failure, TM_VERIFY_CONTENT_CHANGED);
    cr_assert_eq(tm_provenance_verify(text, strlen(text), NULL, 0, trust, NULL, &v, &err), TM_OK);
    cr_expect_eq(v.failure, TM_VERIFY_NO_MANIFEST);
    free(embedded);
    free(manifest);
    tm_trust_store_free(trust);
    tm_signing_key_free(key);
}

/* ======================================================================== */
/* Detection through verify: identical with and without an embedded manifest */
/* ======================================================================== */

Test(embedding, detection_p_identical_embedded_and_plain) {
    char *dir = tm_test_scratch_dir();
    char *key_path = tm_test_path(dir, "wm.key"), *tok = tm_fixture("models/tok512.bin"),
         *model = tm_fixture("models/stories260K.bin");
    tm_wm_key *wm = wm_test_labelled_key("tracemark-test-provenance", 0);
    tm_error err = {0};
    cr_assert_eq(tm_wm_key_write(wm, key_path, &err), TM_OK);
    char config_path[4096];
    snprintf(config_path, sizeof config_path, "%s/configs/schemes/kgw-lefthash.yaml", TRACEMARK_SOURCE_DIR);
    tm_test_cli_result r = tm_test_cli("generate --model '%s' --tokenizer '%s' --prompt 'Once upon a time' --seed 7 "
                                       "--max-tokens 120 --temperature 1.0 --watermark '%s' --key '%s' --json",
                                       model, tok, config_path, key_path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    json_t *record = json_loads(r.out, 0, NULL);
    cr_assert_not_null(record);
    const char *text = json_string_value(json_object_get(record, "text"));
    size_t size = json_string_length(json_object_get(record, "text"));

    tm_wm_config config;
    cr_assert_eq(tm_wm_config_load(&config, config_path, &err), TM_OK, "%s", err.message);
    tm_tokenizer *tokenizer = NULL;
    cr_assert_eq(tm_tokenizer_load(&tokenizer, tok, &err), TM_OK);
    tm_detect_options options;
    tm_detect_options_default(&options);
    tm_detector *detector = NULL;
    cr_assert_eq(tm_detector_create(&detector, tokenizer, &config, (const tm_wm_key *const *)&wm, 1, &options, &err), TM_OK);
    tm_detection plain;
    cr_assert_eq(tm_detect_text(detector, text, size, NULL, &plain, &err), TM_OK);
    cr_expect(plain.detected, "the generated text is watermarked (p = %g)", plain.p);

    tm_signing_key *key = seeded_key(3);
    tm_trust_store *trust = trust_of(key);
    char *manifest = NULL, *embedded = NULL;
    size_t manifest_n = 0, n = 0;
    cr_assert_eq(tm_provenance_sign_generation(text, size, r.out, strlen(r.out), key, &manifest, &manifest_n, &err), TM_OK);
    cr_assert_eq(tm_provenance_embed(text, size, manifest, manifest_n, &embedded, &n, &err), TM_OK);
    tm_verification with_wrapper, beside;
    cr_assert_eq(tm_provenance_verify(embedded, n, NULL, 0, trust, detector, &with_wrapper, &err), TM_OK);
    cr_assert_eq(tm_provenance_verify(text, size, manifest, manifest_n, trust, detector, &beside, &err), TM_OK);
    cr_expect(with_wrapper.verified && beside.verified, "%s / %s", with_wrapper.reason, beside.reason);
    cr_assert(with_wrapper.has_detection && beside.has_detection);
    /* Bit for bit the same statistic and p-value as the plain text's. */
    cr_expect_eq(memcmp(&with_wrapper.detection.log_p, &plain.log_p, sizeof plain.log_p), 0);
    cr_expect_eq(memcmp(&beside.detection.log_p, &plain.log_p, sizeof plain.log_p), 0);
    cr_expect_eq(with_wrapper.detection.statistic, plain.statistic);
    cr_expect_eq(with_wrapper.detection.n_scored, plain.n_scored);
    cr_expect_str_eq(with_wrapper.manifest_watermark_key_id, tm_wm_key_id(wm));
    /* Soft binding: the manifest stripped, the watermark still attributes. */
    tm_verification stripped;
    cr_assert_eq(tm_provenance_verify(text, size, NULL, 0, trust, detector, &stripped, &err), TM_OK);
    cr_expect_eq(stripped.failure, TM_VERIFY_NO_MANIFEST);
    cr_expect(stripped.has_detection && stripped.detection.detected);

    free(manifest);
    free(embedded);
    tm_trust_store_free(trust);
    tm_signing_key_free(key);
    tm_detector_free(detector);
    tm_tokenizer_free(tokenizer);
    json_decref(record);
    tm_test_cli_free(&r);
    tm_wm_key_free(wm);
    char command[4200];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    cr_expect_eq(system(command), 0);
    free(dir);
    free(key_path);
    free(tok);
    free(model);
}
