/* End-to-end tests of `tracemark keygen --signing`, `tracemark sign` and
 * `tracemark verify` through the built binary: key files and their modes,
 * sign -> verify round trips with the manifest beside the text and embedded
 * in it, the exit codes (0 verified, 3 not verified, 1 failure, 2 usage)
 * with the failed check named, a private key readable by others refused,
 * no output or written file holding the private key in any encoding,
 * generation facts from `generate --json`, the watermark's p-value
 * identical with and without the embedded manifest (and equal to
 * `tracemark detect`'s), and --jsonl batches. */
#include <criterion/criterion.h>

#include "fixtures.h"
#include "tracemark/provenance.h"
#include "watermark_testing.h"

#include <dirent.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir;

static void setup(void) {
    dir = tm_test_scratch_dir();
    cr_assert_null(strchr(dir, '\''));
}

static void teardown(void) {
    char command[600];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    cr_expect_eq(system(command), 0);
    free(dir);
}

TestSuite(provenance_cli, .init = setup, .fini = teardown);

static json_t *parse_json(const char *text) {
    json_error_t jerr;
    json_t *value = json_loads(text, 0, &jerr);
    cr_assert_not_null(value, "not JSON (%s): %s", jerr.text, text);
    return value;
}

static const char story[] = "Once upon a time, a small dog found a red ball in the park.\nShe was happy.\n";

static void make_signing_key(const char *name) {
    tm_test_cli_result r = tm_test_cli("keygen --signing --out '%s/%s'", dir, name);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
}

Test(provenance_cli, keygen_signing_writes_pair_and_prints_fingerprint) {
    tm_test_cli_result r = tm_test_cli("keygen --signing --out '%s/signer'", dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_expect_eq(strlen(r.out), 65, "64 hex digits and a newline: %s", r.out);
    char *priv = tm_test_path(dir, "signer.key"), *pub = tm_test_path(dir, "signer.pub");
    struct stat st;
    cr_assert_eq(stat(priv, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);
    tm_public_key *key = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_public_key_read(&key, pub, &err), TM_OK, "%s", err.message);
    cr_expect_eq(strncmp(r.out, tm_public_key_fingerprint(key), 64), 0);
    tm_public_key_free(key);
    tm_test_cli_free(&r);
    r = tm_test_cli("keygen --signing --out '%s/signer'", dir);
    cr_expect_eq(r.code, 1, "never overwrites");
    cr_expect_not_null(strstr(r.err, "already exists"));
    tm_test_cli_free(&r);
    r = tm_test_cli("keygen --signing --out '%s/other' --json", dir);
    cr_assert_eq(r.code, 0);
    json_t *root = parse_json(r.out);
    cr_expect_str_eq(json_string_value(json_object_get(root, "algorithm")), "Ed25519");
    cr_expect_eq(strlen(json_string_value(json_object_get(root, "signer_fingerprint"))), 64);
    json_decref(root);
    tm_test_cli_free(&r);
    free(priv);
    free(pub);
}

Test(provenance_cli, sign_verify_beside_and_embedded) {
    make_signing_key("s");
    char *text = tm_test_path(dir, "story.txt");
    cr_assert_eq(tm_test_write_file(text, story, strlen(story)), 0);
    tm_test_cli_result r = tm_test_cli("sign '%s' --signing-key '%s/s.key'", text, dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    /* FILE.manifest.json is found beside the text. */
    r = tm_test_cli("verify '%s' --trust '%s/s.pub'", text, dir);
    cr_expect_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_expect_not_null(strstr(r.out, "VERIFIED"));
    tm_test_cli_free(&r);
    r = tm_test_cli("verify '%s' --manifest '%s.manifest.json' --trust '%s' --json", text, text, dir);
    cr_expect_eq(r.code, 0, "%s", r.err);
    json_t *root = parse_json(r.out);
    cr_expect(json_is_true(json_object_get(root, "verified")));
    cr_expect(json_is_null(json_object_get(root, "failed_check")));
    json_decref(root);
    tm_test_cli_free(&r);

    /* Embedded: a copy of the text that carries its own manifest. */
    r = tm_test_cli("sign '%s' --signing-key '%s/s.key' --embed --json", text, dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    root = parse_json(r.out);
    char embedded[4200];
    snprintf(embedded, sizeof embedded, "%s", json_string_value(json_object_get(root, "output")));
    cr_expect_not_null(strstr(embedded, "story.signed.txt"));
    json_decref(root);
    tm_test_cli_free(&r);
    size_t size = 0;
    char *carried = tm_test_read_file(embedded, &size);
    cr_expect_gt(size, strlen(story) + 500);
    cr_expect_eq(memcmp(carried, story, strlen(story)), 0, "the text itself is unchanged, the wrapper follows it");
    r = tm_test_cli("verify '%s' --trust '%s/s.pub' --json", embedded, dir);
    cr_expect_eq(r.code, 0, "%s%s", r.out, r.err);
    root = parse_json(r.out);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(root, "manifest"), "source")), "embedded");
    json_decref(root);
    tm_test_cli_free(&r);
    /* Signing the embedded text again replaces its wrapper. */
    char *again = tm_test_path(dir, "again.txt");
    r = tm_test_cli("sign '%s' --signing-key '%s/s.key' --embed --out '%s'", embedded, dir, again);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("verify '%s' --trust '%s/s.pub'", again, dir);
    cr_expect_eq(r.code, 0, "%s", r.out);
    tm_test_cli_free(&r);

    /* Changed content: exit 3 and the check named. */
    carried[0] = 'o';
    cr_assert_eq(tm_test_write_file(embedded, carried, size), 0);
    r = tm_test_cli("verify '%s' --trust '%s/s.pub' --json", embedded, dir);
    cr_expect_eq(r.code, 3);
    root = parse_json(r.out);
    cr_expect_str_eq(json_string_value(json_object_get(root, "failed_check")), "content");
    json_decref(root);
    tm_test_cli_free(&r);
    free(carried);
    free(again);
    free(text);
}

Test(provenance_cli, failures_are_named_and_exit_codes) {
    make_signing_key("s");
    make_signing_key("other");
    char *text = tm_test_path(dir, "t.txt");
    cr_assert_eq(tm_test_write_file(text, story, strlen(story)), 0);
    tm_test_cli_result r = tm_test_cli("sign '%s' --signing-key '%s/s.key' --out '%s/m.json'", text, dir, dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    /* Wrong public key: the signer is not trusted. */
    r = tm_test_cli("verify '%s' --manifest '%s/m.json' --trust '%s/other.pub' --json", text, dir, dir);
    cr_expect_eq(r.code, 3);
    json_t *root = parse_json(r.out);
    cr_expect_str_eq(json_string_value(json_object_get(root, "failed_check")), "signer");
    json_decref(root);
    tm_test_cli_free(&r);
    /* A changed byte in the signature. */
    size_t size = 0;
    char *manifest_path = tm_test_path(dir, "m.json");
    char *manifest = tm_test_read_file(manifest_path, &size);
    free(manifest_path);
    char *sig = strstr(manifest, "\"signature\": \"");
    cr_assert_not_null(sig);
    sig[14 + 10] = sig[14 + 10] == 'A' ? 'B' : 'A';
    char *bad = tm_test_path(dir, "bad.json");
    cr_assert_eq(tm_test_write_file(bad, manifest, size), 0);
    r = tm_test_cli("verify '%s' --manifest '%s' --trust '%s/s.pub'", text, bad, dir);
    cr_expect_eq(r.code, 3);
    cr_expect_not_null(strstr(r.out, "signature check failed"), "%s", r.out);
    tm_test_cli_free(&r);
    /* An unknown version. */
    char *version = strstr(manifest, "\"version\": 1");
    version[11] = '9';
    cr_assert_eq(tm_test_write_file(bad, manifest, size), 0);
    r = tm_test_cli("verify '%s' --manifest '%s' --trust '%s/s.pub' --json", text, bad, dir);
    cr_expect_eq(r.code, 3);
    root = parse_json(r.out);
    cr_expect_str_eq(json_string_value(json_object_get(root, "failed_check")), "manifest");
    cr_expect_not_null(strstr(json_string_value(json_object_get(root, "reason")), "version 9 is not supported"));
    json_decref(root);
    tm_test_cli_free(&r);
    /* No manifest at all. */
    char *lonely = tm_test_path(dir, "lonely.txt");
    cr_assert_eq(tm_test_write_file(lonely, story, strlen(story)), 0);
    r = tm_test_cli("verify '%s' --trust '%s/s.pub'", lonely, dir);
    cr_expect_eq(r.code, 3);
    cr_expect_not_null(strstr(r.out, "no_manifest"), "%s", r.out);
    tm_test_cli_free(&r);
    /* Failures to run (1) and usage (2). */
    r = tm_test_cli("verify '%s' --trust '%s/missing.pub'", text, dir);
    cr_expect_eq(r.code, 1);
    cr_expect_not_null(strstr(r.err, "tracemark: error: "));
    tm_test_cli_free(&r);
    r = tm_test_cli("verify '%s'", text);
    cr_expect_eq(r.code, 2);
    tm_test_cli_free(&r);
    r = tm_test_cli("sign '%s'", text);
    cr_expect_eq(r.code, 2);
    tm_test_cli_free(&r);
    r = tm_test_cli("verify '%s' --trust '%s' --window", text, dir);
    cr_expect_eq(r.code, 2, "--window needs --key");
    tm_test_cli_free(&r);
    r = tm_test_cli("verify --help");
    cr_expect_eq(r.code, 0);
    cr_expect_not_null(strstr(r.out, "usage: tracemark verify"));
    tm_test_cli_free(&r);
    /* A private key readable by others is refused. */
    char key_path[4200];
    snprintf(key_path, sizeof key_path, "%s/s.key", dir);
    cr_assert_eq(chmod(key_path, 0644), 0);
    r = tm_test_cli("sign '%s' --signing-key '%s'", text, key_path);
    cr_expect_eq(r.code, 1);
    cr_expect_not_null(strstr(r.err, "chmod 600"), "%s", r.err);
    tm_test_cli_free(&r);
    free(manifest);
    free(bad);
    free(lonely);
    free(text);
}

static bool contains(const char *haystack, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; m && i + m <= n; i++)
        if (memcmp(haystack + i, needle, m) == 0) return true;
    return false;
}

static bool contains_bytes(const char *haystack, size_t n, const uint8_t *needle, size_t m) {
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(haystack + i, needle, m) == 0) return true;
    return false;
}

Test(provenance_cli, no_output_contains_the_private_key) {
    char *outputs = NULL;
    size_t outputs_size = 0;
    FILE *all = open_memstream(&outputs, &outputs_size);
    const char *commands[] = {
        "keygen --signing --out 'DIR/s'",
        "keygen --signing --out 'DIR/s' --json",
        "sign 'DIR/t.txt' --signing-key 'DIR/s.key'",
        "sign 'DIR/t.txt' --signing-key 'DIR/s.key' --json --embed",
        "verify 'DIR/t.txt' --trust 'DIR/s.pub' --json",
        "verify 'DIR/t.signed.txt' --trust 'DIR/s.pub'",
        "verify 'DIR/t.txt' --trust 'DIR/s.key'",
        "sign 'DIR/t.txt' --signing-key 'DIR/s.pub'",
        "sign 'DIR/s.key' --signing-key 'DIR/s.key' --out 'DIR/signed-key.json'",
        "verify 'DIR/t.txt' --manifest 'DIR/s.key' --trust 'DIR/s.pub' --json",
        "keygen --signing --out 'DIR/s' --json",
    };
    char *text = tm_test_path(dir, "t.txt");
    cr_assert_eq(tm_test_write_file(text, story, strlen(story)), 0);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char args[8192] = "";
        for (const char *c = commands[i]; *c;) { /* DIR -> the scratch folder */
            if (!strncmp(c, "DIR", 3)) {
                strcat(args, dir);
                c += 3;
            } else strncat(args, c++, 1);
        }
        char *out = NULL, *err = NULL;
        tm_run_cli(args, &out, &err);
        fprintf(all, "%s\n%s\n", out ? out : "", err ? err : "");
        free(out);
        free(err);
    }
    /* The key in every form it could leak in: its PEM body lines, the raw
     * 32-byte seed, and the seed in hex and base64. */
    char *key_path = tm_test_path(dir, "s.key");
    size_t pem_size = 0;
    char *pem = tm_test_read_file(key_path, &pem_size);
    cr_assert_not_null(pem);
    FILE *f = fopen(key_path, "r");
    EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(pkey);
    uint8_t seed[32];
    size_t seed_size = sizeof seed;
    cr_assert_eq(EVP_PKEY_get_raw_private_key(pkey, seed, &seed_size), 1);
    EVP_PKEY_free(pkey);
    char seed_hex[65], seed_base64[64];
    for (int i = 0; i < 32; i++) snprintf(seed_hex + 2 * i, 3, "%02x", seed[i]);
    EVP_EncodeBlock((unsigned char *)seed_base64, seed, 32);
    seed_base64[40] = '\0'; /* a prefix: the seed's base64 in any alignment would share ~most of it */
    char *body = strchr(pem, '\n') + 1;
    *strchr(body, '\n') = '\0';
    cr_assert_gt(strlen(body), 40);

    fclose(all);
    /* Every file written, except the key file itself. */
    struct dirent **entries = NULL;
    int count = scandir(dir, &entries, NULL, alphasort);
    cr_assert_gt(count, 4);
    size_t checked = 0;
    for (int i = 0; i <= count; i++) {
        const char *name = i < count ? entries[i]->d_name : "(command output)";
        char *data = NULL;
        size_t size = 0;
        if (i == count) {
            data = outputs;
            size = outputs_size;
        } else {
            if (strcmp(name, "s.key") != 0 && name[0] != '.') {
                char *path = tm_test_path(dir, name);
                data = tm_test_read_file(path, &size);
                free(path);
            }
            free(entries[i]);
        }
        if (!data) continue;
        checked++;
        cr_expect_not(contains(data, size, body), "%s holds the PEM body", name);
        cr_expect_not(contains(data, size, seed_hex), "%s holds the seed in hex", name);
        cr_expect_not(contains(data, size, seed_base64), "%s holds the seed in base64", name);
        cr_expect_not(contains_bytes(data, size, seed, 32), "%s holds the raw seed", name);
        cr_expect_not(contains(data, size, "PRIVATE KEY"), "%s holds a private key", name);
        if (data != outputs) free(data);
    }
    free(entries);
    cr_expect_geq(checked, 5);
    free(outputs);
    free(pem);
    free(key_path);
    free(text);
}

static double p_value_of(const char *json_text, bool verify) {
    json_t *root = parse_json(json_text);
    json_t *holder = verify ? json_object_get(root, "watermark") : root;
    cr_assert(json_is_object(holder), "%s", json_text);
    double p = json_real_value(json_object_get(holder, "p_value"));
    json_decref(root);
    return p;
}

Test(provenance_cli, generation_facts_watermark_p_values_and_jsonl) {
    char *tok = tm_fixture("models/tok512.bin"), *model = tm_fixture("models/stories260K.bin");
    char config[4096];
    snprintf(config, sizeof config, "%s/configs/schemes/kgw-lefthash.yaml", TRACEMARK_SOURCE_DIR);
    make_signing_key("s");
    /* A fixed watermark key, so the outcome repeats. */
    char *wm_path = tm_test_path(dir, "wm.key");
    tm_wm_key *wm = wm_test_labelled_key("tracemark-test-provenance-cli", 0);
    tm_error wm_err = {0};
    cr_assert_eq(tm_wm_key_write(wm, wm_path, &wm_err), TM_OK, "%s", wm_err.message);
    tm_wm_key_free(wm);
    free(wm_path);
    tm_test_cli_result r;
    r = tm_test_cli("generate --model '%s' --tokenizer '%s' --prompt 'Once upon a time' --seed 11 --max-tokens 100 "
                    "--temperature 1.0 --watermark '%s' --key '%s/wm.key' --json --output '%s/story.txt'",
                    model, tok, config, dir, dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    char *gen = tm_test_path(dir, "gen.json");
    cr_assert_eq(tm_test_write_file(gen, r.out, strlen(r.out)), 0);
    json_t *record = parse_json(r.out);
    tm_test_cli_free(&r);

    r = tm_test_cli("sign '%s/story.txt' --signing-key '%s/s.key' --generation '%s'", dir, dir, gen);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("sign '%s/story.txt' --signing-key '%s/s.key' --generation '%s' --embed", dir, dir, gen);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    size_t size = 0;
    char *manifest_path = tm_test_path(dir, "story.txt.manifest.json");
    char *manifest_text = tm_test_read_file(manifest_path, &size);
    json_t *manifest = parse_json(manifest_text);
    char model_hash[TM_SHA256_HEX_SIZE];
    tm_error err = {0};
    cr_assert_eq(tm_sha256_file_hex(model, model_hash, &err), TM_OK);
    json_t *generator = json_object_get(manifest, "generator");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(generator, "model"), "sha256")), model_hash);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(generator, "model"), "name")), "stories260K.bin");
    cr_expect_str_eq(json_string_value(json_object_get(generator, "seed")), "11");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(manifest, "watermark"), "key_id")),
                     json_string_value(json_object_get(json_object_get(record, "watermark"), "key_id")));
    cr_expect_null(strstr(manifest_text, "\"key\""), "no key in the manifest");

    /* The watermark's p-value: the same beside, embedded, and from detect. */
    r = tm_test_cli("verify '%s/story.txt' --trust '%s/s.pub' --key '%s/wm.key' --watermark '%s' --tokenizer '%s' --json",
                    dir, dir, dir, config, tok);
    cr_expect_eq(r.code, 0, "%s%s", r.out, r.err);
    double p_beside = p_value_of(r.out, true);
    json_t *v = parse_json(r.out);
    cr_expect(json_is_true(json_object_get(json_object_get(v, "watermark"), "key_id_matches_manifest")));
    json_decref(v);
    tm_test_cli_free(&r);
    r = tm_test_cli("verify '%s/story.signed.txt' --trust '%s/s.pub' --key '%s/wm.key' --watermark '%s' --tokenizer '%s' --json",
                    dir, dir, dir, config, tok);
    cr_expect_eq(r.code, 0, "%s%s", r.out, r.err);
    double p_embedded = p_value_of(r.out, true);
    tm_test_cli_free(&r);
    r = tm_test_cli("detect --key '%s/wm.key' --watermark '%s' --tokenizer '%s' --json '%s/story.txt'", dir, config, tok, dir);
    cr_expect_eq(r.code, 0, "%s", r.err);
    double p_detect = p_value_of(r.out, false);
    tm_test_cli_free(&r);
    cr_expect_eq(p_beside, p_detect);
    cr_expect_eq(p_embedded, p_detect);
    cr_expect_lt(p_detect, 1e-3);
    cr_log_info("watermark p-value %g (beside, embedded and detect alike)", p_detect);

    /* Changed content: not verified, but --window still finds the watermark. */
    {
        size_t n = 0;
        char *story_file = tm_test_path(dir, "story.txt"), *mixed_file = tm_test_path(dir, "mixed.txt");
        char *original = tm_test_read_file(story_file, &n);
        char *mixed = NULL;
        size_t mixed_size = 0;
        FILE *m = open_memstream(&mixed, &mixed_size);
        fprintf(m, "The committee met on Tuesday to discuss the budget for the next year, and the minutes were approved "
                   "without changes after a short debate about the library roof.\n%s", original);
        fclose(m);
        cr_assert_eq(tm_test_write_file(mixed_file, mixed, mixed_size), 0);
        r = tm_test_cli("verify '%s' --manifest '%s' --trust '%s/s.pub' --key '%s/wm.key' --watermark '%s' --tokenizer '%s' "
                        "--window --json",
                        mixed_file, manifest_path, dir, dir, config, tok);
        cr_expect_eq(r.code, 3, "%s%s", r.out, r.err);
        json_t *o = parse_json(r.out);
        cr_expect_str_eq(json_string_value(json_object_get(o, "failed_check")), "content");
        json_t *window = json_object_get(json_object_get(o, "watermark"), "window");
        cr_assert(json_is_object(window), "%s", r.out);
        cr_expect_gt(json_integer_value(json_object_get(window, "end_char")), 100);
        json_decref(o);
        tm_test_cli_free(&r);
        free(mixed);
        free(original);
        free(story_file);
        free(mixed_file);
    }

    /* Batch: embedded text, text with its manifest object, a changed text, a malformed line. */
    size_t story_size = 0, embedded_size = 0;
    char *story_path = tm_test_path(dir, "story.txt"), *embedded_path = tm_test_path(dir, "story.signed.txt");
    char *story_text = tm_test_read_file(story_path, &story_size);
    char *embedded_text = tm_test_read_file(embedded_path, &embedded_size);
    json_t *l1 = json_pack("{s:s, s:s%}", "id", "a", "text", embedded_text, embedded_size);
    json_t *l2 = json_pack("{s:s, s:s%, s:O}", "id", "b", "text", story_text, story_size, "manifest", manifest);
    story_text[0] = 'X';
    json_t *l3 = json_pack("{s:s, s:s%, s:O}", "id", "c", "text", story_text, story_size, "manifest", manifest);
    char *s1 = json_dumps(l1, JSON_COMPACT), *s2 = json_dumps(l2, JSON_COMPACT), *s3 = json_dumps(l3, JSON_COMPACT);
    char *lines = NULL;
    size_t lines_size = 0;
    FILE *f = open_memstream(&lines, &lines_size);
    fprintf(f, "%s\n%s\nnot json\n%s\n", s1, s2, s3);
    fclose(f);
    char *batch = tm_test_path(dir, "batch.jsonl");
    cr_assert_eq(tm_test_write_file(batch, lines, lines_size), 0);
    r = tm_test_cli("verify --jsonl --trust '%s/s.pub' '%s'", dir, batch);
    cr_expect_eq(r.code, 1, "a line failed");
    char *line = strtok(r.out, "\n");
    const char *expect_id[] = {"a", "b", NULL, "c"};
    for (int i = 0; i < 4; i++) {
        cr_assert_not_null(line, "line %d", i);
        json_t *o = parse_json(line);
        if (expect_id[i]) {
            cr_expect_str_eq(json_string_value(json_object_get(o, "id")), expect_id[i]);
            cr_expect_eq(json_is_true(json_object_get(o, "verified")), i < 2, "line %d: %s", i, line);
        } else {
            cr_expect_eq(json_integer_value(json_object_get(o, "line")), 3);
            cr_expect_not_null(json_object_get(o, "error"));
        }
        if (i == 3) cr_expect_str_eq(json_string_value(json_object_get(o, "failed_check")), "content");
        json_decref(o);
        line = strtok(NULL, "\n");
    }
    tm_test_cli_free(&r);
    free(s1);
    free(s2);
    free(s3);
    json_decref(l1);
    json_decref(l2);
    json_decref(l3);
    free(lines);
    free(batch);
    free(story_text);
    free(embedded_text);
    free(story_path);
    free(embedded_path);
    json_decref(manifest);
    free(manifest_text);
    free(manifest_path);
    json_decref(record);
    free(gen);
    free(tok);
    free(model);
}

/* generate --sign signs what --output holds as it generates: beside it, or
 * with --embed inside it. Both verify; the manifest records the sampling
 * settings of the run; one changed byte of the text is caught. */
Test(provenance_cli, generate_signs_its_output_beside_and_embedded) {
    char *tok = tm_fixture("models/tok512.bin"), *model = tm_fixture("models/stories260K.bin");
    make_signing_key("g");
    tm_test_cli_result r;
    r = tm_test_cli("generate --model '%s' --tokenizer '%s' --prompt 'Once upon a time' --seed 5 --max-tokens 40 "
                    "--top-k 40 --output '%s/plain.txt' --sign '%s/g.key'",
                    model, tok, dir, dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("verify '%s/plain.txt' --trust '%s/g.pub' --json", dir, dir);
    cr_expect_eq(r.code, 0, "%s%s", r.out, r.err);
    tm_test_cli_free(&r);
    size_t size = 0;
    char *manifest_path = tm_test_path(dir, "plain.txt.manifest.json");
    char *manifest_text = tm_test_read_file(manifest_path, &size);
    json_t *manifest = parse_json(manifest_text);
    free(manifest_text);
    json_t *sampling = json_object_get(json_object_get(manifest, "generator"), "sampling");
    cr_expect_eq(json_integer_value(json_object_get(sampling, "top_k")), 40);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(manifest, "generator"), "seed")), "5");
    json_decref(manifest);

    r = tm_test_cli("generate --model '%s' --tokenizer '%s' --prompt 'Once upon a time' --seed 5 --max-tokens 40 "
                    "--top-k 40 --output '%s/embedded.txt' --sign '%s/g.key' --embed",
                    model, tok, dir, dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    char *embedded_path = tm_test_path(dir, "embedded.txt");
    char *embedded = tm_test_read_file(embedded_path, &size);
    char *plain_path = tm_test_path(dir, "plain.txt");
    size_t plain_size = 0;
    char *plain = tm_test_read_file(plain_path, &plain_size);
    cr_assert_gt(size, plain_size, "the embedded file carries the manifest");
    cr_expect_eq(memcmp(embedded, plain, plain_size), 0, "the visible text is the same text");
    r = tm_test_cli("verify '%s/embedded.txt' --trust '%s/g.pub'", dir, dir);
    cr_expect_eq(r.code, 0, "%s%s", r.out, r.err);
    tm_test_cli_free(&r);
    embedded[0] = embedded[0] == 'O' ? 'o' : 'O';
    cr_assert_eq(tm_test_write_file(embedded_path, embedded, size), 0);
    r = tm_test_cli("verify '%s/embedded.txt' --trust '%s/g.pub' --json", dir, dir);
    cr_expect_eq(r.code, 3, "%s%s", r.out, r.err);
    cr_expect_not_null(strstr(r.out, "\"failed_check\":\"content\""), "%s", r.out);
    tm_test_cli_free(&r);

    r = tm_test_cli("generate --model '%s' --tokenizer '%s' --prompt x --sign '%s/g.key'", model, tok, dir);
    cr_expect_eq(r.code, 2, "--sign without --output is a usage error");
    tm_test_cli_free(&r);
    free(embedded);
    free(plain);
    free(embedded_path);
    free(plain_path);
    free(manifest_path);
    free(tok);
    free(model);
}

/* verify --key without --tokenizer takes the default tokenizer as detect
 * does: where it lies on disk, never by downloading the default model (it
 * used to resolve the model: from a folder without one it created ./models/
 * and tried the network, then failed the whole verification), and it says
 * on stderr which one it took. */
Test(provenance_cli, verify_default_tokenizer_is_local_and_named) {
    make_signing_key("s");
    char *wm_path = tm_test_path(dir, "wm.key");
    tm_wm_key *wm = wm_test_labelled_key("tracemark-test-provenance-cli", 1);
    tm_error wm_err = {0};
    cr_assert_eq(tm_wm_key_write(wm, wm_path, &wm_err), TM_OK, "%s", wm_err.message);
    tm_wm_key_free(wm);
    char *text = tm_test_path(dir, "story.txt");
    cr_assert_eq(tm_test_write_file(text, story, strlen(story)), 0);
    tm_test_cli_result r = tm_test_cli("sign '%s' --signing-key '%s/s.key'", text, dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    char *here = getcwd(NULL, 0);
    cr_assert_eq(chdir(dir), 0); /* no ./models, no ../shared/models here */
    char *saved = getenv("TRACEMARK_MODEL") ? strdup(getenv("TRACEMARK_MODEL")) : NULL;
    unsetenv("TRACEMARK_MODEL");
    r = tm_test_cli("verify '%s' --trust '%s/s.pub' --key '%s' --watermark '%s/configs/schemes/kgw-lefthash.yaml'", text,
                    dir, wm_path, TRACEMARK_SOURCE_DIR);
    cr_expect_eq(r.code, 1, "%s%s", r.out, r.err);
    cr_expect_not_null(strstr(r.err, "--tokenizer"), "%s", r.err);
    cr_expect_null(strstr(r.err, "huggingface"), "tried to download: %s", r.err);
    struct stat st;
    cr_expect_neq(stat("models", &st), 0, "verify created ./models");
    tm_test_cli_free(&r);
    char *llama = tm_fixture("models/llama-2-tiny-random.gguf");
    cr_assert_eq(setenv("TRACEMARK_MODEL", llama, 1), 0);
    r = tm_test_cli("verify '%s' --trust '%s/s.pub' --key '%s' --watermark '%s/configs/schemes/kgw-lefthash.yaml'", text,
                    dir, wm_path, TRACEMARK_SOURCE_DIR);
    cr_expect_eq(r.code, 0, "%s%s", r.out, r.err);
    char note[4400];
    snprintf(note, sizeof note, "tracemark verify: no --tokenizer given: using %s (32000 tokens)", llama);
    cr_expect_not_null(strstr(r.err, note), "%s", r.err);
    tm_test_cli_free(&r);
    if (saved) setenv("TRACEMARK_MODEL", saved, 1);
    else unsetenv("TRACEMARK_MODEL");
    cr_assert_eq(chdir(here), 0);
    free(saved), free(here), free(llama), free(text), free(wm_path);
}

/* sign --generation signs the record's facts for whatever FILE holds: a
 * record of another text was signed silently. A content that is neither the
 * record's text nor its prompt and text (what generate --output writes) now
 * gets a warning; both of those sign without one. */
Test(provenance_cli, sign_warns_when_the_record_is_of_another_text) {
    make_signing_key("s");
    static const char record[] = "{\"model\": \"m.gguf\", \"seed\": 3, \"prompt\": \"Once\", \"text\": \" upon a time\"}";
    char *gen = tm_test_path(dir, "gen.json");
    cr_assert_eq(tm_test_write_file(gen, record, strlen(record)), 0);
    static const char *const contents[] = {" upon a time", "Once upon a time", "Something else entirely"};
    for (size_t i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%zu.txt", i);
        char *text = tm_test_path(dir, name);
        cr_assert_eq(tm_test_write_file(text, contents[i], strlen(contents[i])), 0);
        tm_test_cli_result r = tm_test_cli("sign '%s' --signing-key '%s/s.key' --generation '%s'", text, dir, gen);
        cr_expect_eq(r.code, 0, "%s", r.err);
        if (i < 2) cr_expect_null(strstr(r.err, "warning"), "%s", r.err);
        else cr_expect(strstr(r.err, "warning: ") != NULL && strstr(r.err, "is neither the text of") != NULL, "%s", r.err);
        tm_test_cli_free(&r);
        free(text);
    }
    free(gen);
}
