/* Tests of watermark key files (watermark/keys.c) and `tracemark keygen`:
 * files are written 0600 and never overwritten, read back to the same key,
 * group/world-readable files are refused, every malformed file (each
 * truncation, wrong magic, other versions, bad hex, altered key, trailing
 * data) is a clear error, key ids agree with the independent Python
 * reference (docs/reference/tm_prf.py), and the CLI never shows the secret. */
#include <criterion/criterion.h>

#include "fixtures.h"
#include "tracemark/watermark.h"

#include <dirent.h>
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

TestSuite(keys, .init = setup, .fini = teardown);
TestSuite(key_files, .init = setup, .fini = teardown);
TestSuite(keygen_cli, .init = setup, .fini = teardown);

/* The spec key (bytes 00 01 .. 1f) as a v1 key file; the id is the Python
 * reference's key_id(bytes(range(32))). */
static const char spec_key_file[] = "tracemark-watermark-key v1\n"
                                    "id: fda1a304fcd9862d\n"
                                    "key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

/* Write text as a key file with the given mode; returns the heap path. */
static char *write_key_text(const char *name, const char *text, size_t size, mode_t mode) {
    char *path = tm_test_path(scratch, name);
    cr_assert_eq(tm_test_write_file(path, text, size), 0);
    cr_assert_eq(chmod(path, mode), 0);
    return path;
}

static tm_status read_key_text(const char *text, size_t size, tm_error *err) {
    char *path = write_key_text("k.key", text, size, 0600);
    tm_wm_key *key = NULL;
    tm_status status = tm_wm_key_read(&key, path, err);
    if (status == TM_OK) cr_expect_not_null(key);
    else cr_expect_null(key);
    tm_wm_key_free(key);
    unlink(path);
    free(path);
    return status;
}

static size_t entries_in(const char *folder) {
    DIR *dir = opendir(folder);
    cr_assert_not_null(dir);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(dir);
    return n;
}

/* ---- writing and reading ------------------------------------------------------ */

Test(keys, write_makes_a_0600_file_and_nothing_else) {
    tm_wm_key *key = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_wm_key_generate(&key, &err), TM_OK);
    char *path = tm_test_path(scratch, "new.key");
    cr_assert_eq(tm_wm_key_write(key, path, &err), TM_OK, "%s", err.message);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0600, "mode %04o", (unsigned)(st.st_mode & 07777));
    cr_expect_eq(entries_in(scratch), 1, "no temporary file is left behind");
    tm_wm_key_free(key);
    free(path);
}

Test(keys, write_refuses_to_overwrite) {
    tm_wm_key *first = NULL, *second = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_wm_key_generate(&first, &err), TM_OK);
    cr_assert_eq(tm_wm_key_generate(&second, &err), TM_OK);
    char *path = tm_test_path(scratch, "k.key");
    cr_assert_eq(tm_wm_key_write(first, path, &err), TM_OK);
    size_t size_before;
    char *before = tm_test_read_file(path, &size_before);
    cr_expect_neq(tm_wm_key_write(second, path, &err), TM_OK);
    cr_expect(strstr(err.message, "already exists") != NULL, "%s", err.message);
    size_t size_after;
    char *after = tm_test_read_file(path, &size_after);
    cr_expect(size_before == size_after && !memcmp(before, after, size_after), "the existing key is untouched");
    free(before);
    free(after);
    free(path);
    tm_wm_key_free(first);
    tm_wm_key_free(second);
}

Test(keys, read_back_equals_and_keeps_its_id) {
    tm_wm_key *key = NULL, *back = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_wm_key_generate(&key, &err), TM_OK);
    char *path = tm_test_path(scratch, "k.key");
    cr_assert_eq(tm_wm_key_write(key, path, &err), TM_OK);
    cr_assert_eq(tm_wm_key_read(&back, path, &err), TM_OK, "%s", err.message);
    cr_expect(tm_wm_key_equal(key, back));
    cr_expect_str_eq(tm_wm_key_id(key), tm_wm_key_id(back));
    cr_expect_eq(strlen(tm_wm_key_id(key)), TM_WM_KEY_ID_SIZE - 1);
    cr_expect_eq(strspn(tm_wm_key_id(key), "0123456789abcdef"), TM_WM_KEY_ID_SIZE - 1);
    tm_wm_key_free(key);
    tm_wm_key_free(back);
    free(path);
}

Test(keys, two_generated_keys_differ) {
    tm_wm_key *a = NULL, *b = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_wm_key_generate(&a, &err), TM_OK);
    cr_assert_eq(tm_wm_key_generate(&b, &err), TM_OK);
    cr_expect_not(tm_wm_key_equal(a, b));
    cr_expect_str_neq(tm_wm_key_id(a), tm_wm_key_id(b));
    tm_wm_key_free(a);
    tm_wm_key_free(b);
}

/* Key ids computed by docs/reference/tm_prf.py's key_id(). */
Test(keys, key_id_matches_the_python_reference) {
    static const struct {
        const char *hex, *id;
    } cases[] = {
        {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "fda1a304fcd9862d"},
        {"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "c7b321360caa6659"},
        {"0000000000000000000000000000000000000000000000000000000000000000", "bbe2c5ee197e5b99"},
    };
    for (size_t i = 0; i < 3; i++) {
        char text[256];
        int n = snprintf(text, sizeof text, "tracemark-watermark-key v1\nid: %s\nkey: %s\n", cases[i].id, cases[i].hex);
        char *path = write_key_text("fixed.key", text, (size_t)n, 0600);
        tm_wm_key *key = NULL;
        tm_error err = {0};
        cr_assert_eq(tm_wm_key_read(&key, path, &err), TM_OK, "%s", err.message);
        cr_expect_str_eq(tm_wm_key_id(key), cases[i].id);
        /* Writing it again reproduces the file byte for byte. */
        char *copy = tm_test_path(scratch, "copy.key");
        cr_assert_eq(tm_wm_key_write(key, copy, &err), TM_OK);
        size_t size;
        char *written = tm_test_read_file(copy, &size);
        cr_expect(size == (size_t)n && !memcmp(written, text, size), "round trip of case %zu", i);
        free(written);
        unlink(copy);
        unlink(path);
        free(copy);
        free(path);
        tm_wm_key_free(key);
    }
}

/* tm_wm_key_from_secret: the same key as reading its file (id and secret),
 * the bytes are copied (changing the caller's buffer changes nothing), and
 * writing it gives the spec's key file byte for byte. */
Test(keys, from_secret_equals_the_key_file) {
    uint8_t secret[TM_WM_KEY_BYTES];
    for (int i = 0; i < TM_WM_KEY_BYTES; i++) secret[i] = (uint8_t)i;
    tm_wm_key *key = NULL, *read_back = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_wm_key_from_secret(&key, secret, &err), TM_OK, "%s", err.message);
    memset(secret, 0xAB, sizeof secret);
    cr_expect_str_eq(tm_wm_key_id(key), "fda1a304fcd9862d");
    char *path = write_key_text("spec.key", spec_key_file, sizeof spec_key_file - 1, 0600);
    cr_assert_eq(tm_wm_key_read(&read_back, path, &err), TM_OK, "%s", err.message);
    cr_expect(tm_wm_key_equal(key, read_back));
    char *copy = tm_test_path(scratch, "copy.key");
    cr_assert_eq(tm_wm_key_write(key, copy, &err), TM_OK, "%s", err.message);
    size_t size;
    char *written = tm_test_read_file(copy, &size);
    cr_expect(size == sizeof spec_key_file - 1 && !memcmp(written, spec_key_file, size));
    tm_wm_key *none = NULL;
    cr_expect_eq(tm_wm_key_from_secret(&none, NULL, &err), TM_ERR_ARGUMENT, "no secret, no key");
    cr_expect_null(none);
    free(written);
    unlink(copy);
    unlink(path);
    free(copy);
    free(path);
    tm_wm_key_free(read_back);
    tm_wm_key_free(key);
}

/* ---- refusing bad files ------------------------------------------------------------ */

Test(key_files, refuses_group_or_world_readable_files) {
    static const mode_t modes[] = {0640, 0644, 0604, 0660, 0620, 0602};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        char *path = write_key_text("open.key", spec_key_file, sizeof spec_key_file - 1, modes[i]);
        tm_wm_key *key = NULL;
        tm_error err = {0};
        cr_expect_eq(tm_wm_key_read(&key, path, &err), TM_ERR_PERMISSION, "mode %04o", (unsigned)modes[i]);
        cr_expect_null(key);
        cr_expect(strstr(err.message, "chmod 600") != NULL, "%s", err.message);
        unlink(path);
        free(path);
    }
}

Test(key_files, accepts_0400) {
    char *path = write_key_text("ro.key", spec_key_file, sizeof spec_key_file - 1, 0400);
    tm_wm_key *key = NULL;
    tm_error err = {0};
    cr_expect_eq(tm_wm_key_read(&key, path, &err), TM_OK, "%s", err.message);
    tm_wm_key_free(key);
    free(path);
}

Test(key_files, missing_file_and_folder) {
    tm_wm_key *key = NULL;
    tm_error err = {0};
    char *path = tm_test_path(scratch, "absent.key");
    cr_expect_eq(tm_wm_key_read(&key, path, &err), TM_ERR_NOT_FOUND);
    cr_expect(strstr(err.message, path) != NULL, "%s", err.message);
    cr_expect_neq(tm_wm_key_read(&key, scratch, &err), TM_OK);
    cr_expect_null(key);
    free(path);
}

/* Every truncation of a valid file is an error; only the final newline is optional. */
Test(key_files, every_truncation_is_an_error) {
    size_t size = sizeof spec_key_file - 1;
    for (size_t n = 0; n + 1 < size; n++) {
        tm_error err = {0};
        cr_expect_eq(read_key_text(spec_key_file, n, &err), TM_ERR_FORMAT, "prefix of %zu bytes: %s", n,
                     err.message);
        cr_expect(err.message[0] != '\0');
    }
    tm_error err = {0};
    cr_expect_eq(read_key_text(spec_key_file, size - 1, &err), TM_OK, "without the final newline: %s", err.message);
}

Test(key_files, wrong_magic) {
    static const char text[] = "tracemark-watermark-kez v1\n"
                               "id: fda1a304fcd9862d\n"
                               "key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    tm_error err = {0};
    cr_expect_eq(read_key_text(text, sizeof text - 1, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "not a tracemark watermark key file") != NULL, "%s", err.message);
}

Test(key_files, other_versions) {
    static const char v2[] = "tracemark-watermark-key v2\n"
                             "id: fda1a304fcd9862d\n"
                             "key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    tm_error err = {0};
    cr_expect_eq(read_key_text(v2, sizeof v2 - 1, &err), TM_ERR_UNSUPPORTED);
    cr_expect(strstr(err.message, "version 2") != NULL, "%s", err.message);
    static const char vx[] = "tracemark-watermark-key vx\n"
                             "id: fda1a304fcd9862d\n"
                             "key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    cr_expect_eq(read_key_text(vx, sizeof vx - 1, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "version") != NULL, "%s", err.message);
}

Test(key_files, non_hex_key) {
    static const char *const bad[] = {
        "tracemark-watermark-key v1\nid: fda1a304fcd9862d\n"
        "key: g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        "tracemark-watermark-key v1\nid: fda1a304fcd9862d\n" /* uppercase is not the format */
        "key: 000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n",
        "tracemark-watermark-key v1\nid: fda1a304fcd9862d\n"
        "key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e 1\n",
    };
    for (size_t i = 0; i < 3; i++) {
        tm_error err = {0};
        cr_expect_eq(read_key_text(bad[i], strlen(bad[i]), &err), TM_ERR_FORMAT, "case %zu", i);
        cr_expect(strstr(err.message, "hex") != NULL, "case %zu: %s", i, err.message);
    }
}

Test(key_files, altered_key_or_id) {
    static const char altered_key[] = "tracemark-watermark-key v1\n"
                                      "id: fda1a304fcd9862d\n"
                                      "key: 100102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    tm_error err = {0};
    cr_expect_eq(read_key_text(altered_key, sizeof altered_key - 1, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "does not match") != NULL, "%s", err.message);
    static const char altered_id[] = "tracemark-watermark-key v1\n"
                                     "id: fda1a304fcd9862e\n"
                                     "key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    cr_expect_eq(read_key_text(altered_id, sizeof altered_id - 1, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "does not match") != NULL, "%s", err.message);
}

Test(key_files, trailing_data) {
    static const char *const bad[] = {
        "tracemark-watermark-key v1\nid: fda1a304fcd9862d\n"
        "key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n\n",
        "tracemark-watermark-key v1\nid: fda1a304fcd9862d\n"
        "key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00\n",
        "tracemark-watermark-key v1\nid: fda1a304fcd9862d\n"
        "key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\nextra: 1\n",
    };
    for (size_t i = 0; i < 3; i++) {
        tm_error err = {0};
        cr_expect_eq(read_key_text(bad[i], strlen(bad[i]), &err), TM_ERR_FORMAT, "case %zu", i);
        cr_expect(strstr(err.message, "after the key") != NULL, "case %zu: %s", i, err.message);
    }
}

Test(key_files, embedded_nul_and_oversized) {
    char text[sizeof spec_key_file];
    memcpy(text, spec_key_file, sizeof text);
    text[30] = '\0'; /* inside the id line */
    tm_error err = {0};
    cr_expect_eq(read_key_text(text, sizeof text - 1, &err), TM_ERR_FORMAT, "%s", err.message);
    char *big = calloc(1, 8192);
    memcpy(big, spec_key_file, sizeof spec_key_file - 1);
    memset(big + sizeof spec_key_file - 1, 'x', 8192 - sizeof spec_key_file);
    cr_expect_eq(read_key_text(big, 8191, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "too large") != NULL, "%s", err.message);
    free(big);
}

/* ---- the CLI -------------------------------------------------------------------------- */

/* The 64 hex digits of the key in a key file (heap string). */
static char *secret_of(const char *path) {
    char *text = tm_test_read_file(path, NULL);
    cr_assert_not_null(text);
    char *key = strstr(text, "key: ");
    cr_assert_not_null(key);
    char *secret = strndup(key + 5, 64);
    free(text);
    cr_assert_eq(strlen(secret), 64);
    return secret;
}

static void expect_no_secret(const char *where, const char *output, const char *secret) {
    cr_expect(strstr(output, secret) == NULL, "%s shows the key", where);
    /* Nor any 16-digit slice of it (a truncated or partial leak). */
    for (size_t i = 0; i + 16 <= 64; i += 8) {
        char slice[17];
        memcpy(slice, secret + i, 16);
        slice[16] = '\0';
        cr_expect(strstr(output, slice) == NULL, "%s shows part of the key", where);
    }
}

Test(keygen_cli, writes_a_key_and_prints_only_its_id) {
    char *path = tm_test_path(scratch, "cli.key");
    char args[700], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "keygen --out '%s'", path);
    int code = tm_run_cli(args, &out, &err);
    cr_assert_eq(code, 0, "exit %d, stderr: %s", code, err ? err : "");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0600);
    tm_wm_key *key = NULL;
    tm_error e = {0};
    cr_assert_eq(tm_wm_key_read(&key, path, &e), TM_OK, "%s", e.message);
    char expected[TM_WM_KEY_ID_SIZE + 1];
    snprintf(expected, sizeof expected, "%s\n", tm_wm_key_id(key));
    cr_expect_str_eq(out, expected);
    char *secret = secret_of(path);
    expect_no_secret("stdout", out, secret);
    expect_no_secret("stderr", err, secret);
    free(secret);
    free(out);
    free(err);

    /* A second run must not overwrite the key. */
    code = tm_run_cli(args, &out, &err);
    cr_expect_eq(code, 1);
    cr_expect(strstr(err, "tracemark: error:") != NULL && strstr(err, "already exists") != NULL, "%s", err);
    tm_wm_key *still = NULL;
    cr_assert_eq(tm_wm_key_read(&still, path, &e), TM_OK);
    cr_expect(tm_wm_key_equal(key, still));
    tm_wm_key_free(still);
    tm_wm_key_free(key);
    free(out);
    free(err);
    free(path);
}

Test(keygen_cli, json_output) {
    char *path = tm_test_path(scratch, "json.key");
    char args[700], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "keygen --json --out '%s'", path);
    cr_assert_eq(tm_run_cli(args, &out, &err), 0, "%s", err ? err : "");
    tm_wm_key *key = NULL;
    tm_error e = {0};
    cr_assert_eq(tm_wm_key_read(&key, path, &e), TM_OK, "%s", e.message);
    char expected[800];
    snprintf(expected, sizeof expected, "{\"key_id\":\"%s\",\"path\":\"%s\"}\n", tm_wm_key_id(key), path);
    cr_expect_str_eq(out, expected);
    char *secret = secret_of(path);
    expect_no_secret("stdout", out, secret);
    expect_no_secret("stderr", err, secret);
    free(secret);
    tm_wm_key_free(key);
    free(out);
    free(err);
    free(path);
}

Test(keygen_cli, usage_and_help) {
    char *out = NULL, *err = NULL;
    cr_expect_eq(tm_run_cli("keygen", &out, &err), 2);
    cr_expect(strstr(err, "--out") != NULL, "%s", err);
    free(out);
    free(err);
    cr_expect_eq(tm_run_cli("keygen --out", &out, &err), 2);
    free(out);
    free(err);
    cr_expect_eq(tm_run_cli("keygen --out a.key extra", &out, &err), 2);
    free(out);
    free(err);
    cr_expect_eq(tm_run_cli("keygen --help", &out, &err), 0);
    cr_expect(strstr(out, "usage: tracemark keygen") != NULL, "%s", out);
    free(out);
    free(err);
    char args[700];
    snprintf(args, sizeof args, "keygen --out '%s/no/such/folder/k.key'", scratch);
    cr_expect_eq(tm_run_cli(args, &out, &err), 1);
    cr_expect(strstr(err, "tracemark: error:") != NULL, "%s", err);
    free(out);
    free(err);
}
