/* A watermark key's secret is never printed and never written anywhere but
 * its key file: every command that takes a key (generate as text and JSON,
 * with --output; detect as text, --json and --jsonl; keygen refusing to
 * overwrite; failures on a damaged key) is run, and its stdout, its stderr
 * and every file it wrote are searched for the secret in the encodings a
 * leak would take: lowercase and uppercase hex, the raw 32 bytes, and
 * base64. (Manifests, run stores and server responses join this list as
 * those commands land.) */
#include "fixtures.h"
#include "tracemark/watermark.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char lower[65], upper[65], base64[64];
    uint8_t raw[32];
} secret_forms;

static secret_forms forms_of(const char *key_file_text) {
    secret_forms f;
    const char *hex = strstr(key_file_text, "key: ");
    cr_assert_not_null(hex, "no key line in the key file");
    hex += 5;
    for (int i = 0; i < 64; i++) {
        cr_assert(isxdigit((unsigned char)hex[i]));
        f.lower[i] = hex[i];
        f.upper[i] = (char)toupper((unsigned char)hex[i]);
    }
    f.lower[64] = f.upper[64] = '\0';
    for (int i = 0; i < 32; i++) {
        unsigned byte;
        cr_assert_eq(sscanf(hex + 2 * i, "%2x", &byte), 1);
        f.raw[i] = (uint8_t)byte;
    }
    /* The first 40 base64 characters (30 bytes) appear in any base64 of the
     * secret that starts on a 3-byte boundary. */
    unsigned char b64[64];
    EVP_EncodeBlock(b64, f.raw, 30);
    memcpy(f.base64, b64, 40);
    f.base64[40] = '\0';
    return f;
}

static void expect_no_secret(const secret_forms *f, const char *data, size_t size, const char *where) {
    if (!data) return;
    cr_expect_null(memmem(data, size, f->lower, 64), "%s: the secret (hex) appears", where);
    cr_expect_null(memmem(data, size, f->upper, 64), "%s: the secret (HEX) appears", where);
    cr_expect_null(memmem(data, size, f->raw, 32), "%s: the secret (raw bytes) appears", where);
    cr_expect_null(memmem(data, size, f->base64, 40), "%s: the secret (base64) appears", where);
}

static void run_and_check(const secret_forms *f, int want_code, const char *what, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

static void run_and_check(const secret_forms *f, int want_code, const char *what, const char *format, ...) {
    char args[8192];
    va_list ap;
    va_start(ap, format);
    vsnprintf(args, sizeof args, format, ap);
    va_end(ap);
    tm_test_cli_result r = tm_test_cli("%s", args);
    if (want_code >= 0) cr_expect_eq(r.code, want_code, "%s: exit %d: %s", what, r.code, r.err);
    char where[256];
    snprintf(where, sizeof where, "%s (stdout)", what);
    expect_no_secret(f, r.out, strlen(r.out), where);
    snprintf(where, sizeof where, "%s (stderr)", what);
    expect_no_secret(f, r.err, strlen(r.err), where);
    tm_test_cli_free(&r);
}

Test(secrets, the_key_appears_in_no_output_stream_and_no_written_file) {
    char *dir = tm_test_scratch_dir(), *key = tm_test_path(dir, "k.key");
    char *bin = tm_fixture("models/stories260K.bin"), *tok = tm_fixture("models/tok512.bin");
    tm_test_cli_result r = tm_test_cli("keygen --out '%s'", key);
    cr_assert_eq(r.code, 0, "%s", r.err);
    char *key_text = tm_test_read_file(key, NULL);
    cr_assert_not_null(key_text);
    secret_forms f = forms_of(key_text);
    expect_no_secret(&f, r.out, strlen(r.out), "keygen (stdout)");
    expect_no_secret(&f, r.err, strlen(r.err), "keygen (stderr)");
    tm_test_cli_free(&r);

    const char *schemes[] = {"kgw-lefthash", "unigram", "gumbel", "synthid"};
    for (size_t s = 0; s < sizeof schemes / sizeof *schemes; s++) {
        char cfg[600];
        snprintf(cfg, sizeof cfg, "%s/configs/schemes/%s.yaml", TRACEMARK_SOURCE_DIR, schemes[s]);
        run_and_check(&f, 0, schemes[s],
                      "generate --model '%s' --tokenizer '%s' --prompt 'Once upon a time' --max-tokens 24 --seed 5 "
                      "--watermark '%s' --key '%s' --json --output '%s/%s.json.txt'",
                      bin, tok, cfg, key, dir, schemes[s]);
        run_and_check(&f, 0, schemes[s],
                      "generate --model '%s' --tokenizer '%s' --prompt 'Once upon a time' --max-tokens 24 --seed 5 "
                      "--watermark '%s' --key '%s' --output '%s/%s.txt'",
                      bin, tok, cfg, key, dir, schemes[s]);
        run_and_check(&f, -1, schemes[s], "detect --key '%s' --watermark '%s' --tokenizer '%s' --json '%s/%s.txt'",
                      key, cfg, tok, dir, schemes[s]);
        run_and_check(&f, -1, schemes[s], "detect --key '%s' --watermark '%s' --tokenizer '%s' --window '%s/%s.txt'",
                      key, cfg, tok, dir, schemes[s]);
    }
    char *jsonl = tm_test_path(dir, "in.jsonl");
    FILE *out = fopen(jsonl, "w");
    fprintf(out, "{\"id\":1,\"text\":\"Once upon a time there was a cat.\"}\nnot json\n{\"id\":3,\"text\":\"\"}\n");
    fclose(out);
    run_and_check(&f, 1, "detect --jsonl",
                  "detect --jsonl --key '%s' --watermark %s/configs/schemes/kgw-lefthash.yaml --tokenizer '%s' '%s'", key,
                  TRACEMARK_SOURCE_DIR, tok, jsonl);
    /* Failures: keygen refusing to overwrite, a key that is group-readable,
     * a key whose id no longer matches (the key line intact). */
    run_and_check(&f, 1, "keygen over a key", "keygen --out '%s'", key);
    char *altered = tm_test_path(dir, "altered.key");
    char *copy = strdup(key_text);
    char *id = strstr(copy, "id: ") + 4;
    id[0] = id[0] == '0' ? '1' : '0';
    cr_assert_eq(tm_test_write_file(altered, copy, strlen(copy)), 0);
    cr_assert_eq(chmod(altered, 0600), 0);
    run_and_check(&f, 1, "altered key",
                  "generate --model '%s' --tokenizer '%s' --prompt x --max-tokens 2 --watermark "
                  "%s/configs/schemes/kgw-lefthash.yaml --key '%s'",
                  bin, tok, TRACEMARK_SOURCE_DIR, altered);
    cr_assert_eq(chmod(altered, 0644), 0);
    run_and_check(&f, 1, "group-readable key",
                  "detect --key '%s' --watermark %s/configs/schemes/kgw-lefthash.yaml --tokenizer '%s' '%s'", altered,
                  TRACEMARK_SOURCE_DIR, tok, jsonl);

    /* Every file written, except the key files themselves. */
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "k.key") == 0 || strcmp(e->d_name, "altered.key") == 0) continue;
        char *path = tm_test_path(dir, e->d_name);
        size_t size = 0;
        char *data = tm_test_read_file(path, &size);
        expect_no_secret(&f, data, size, e->d_name);
        files++;
        free(data);
        unlink(path);
        free(path);
    }
    closedir(d);
    cr_expect_geq(files, 9, "expected the outputs of every generate run and the JSONL input");
    unlink(key);
    unlink(altered);
    rmdir(dir);
    free(copy);
    free(altered);
    free(jsonl);
    free(key_text);
    free(key);
    free(dir);
    free(bin);
    free(tok);
}
