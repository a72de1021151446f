/* Watermark keys: 256-bit secrets from OpenSSL's RNG (or imported from the
 * caller's bytes with tm_wm_key_from_secret), stored in a small,
 * versioned text file with mode 0600, named everywhere else by a key id (a
 * truncated SHA-256 fingerprint). Subkeys come from HKDF-SHA256. The secret
 * is never printed or copied out of this file; every buffer that held it is
 * wiped with OPENSSL_cleanse, and key comparisons are constant-time. */
#include "tracemark/watermark.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAGIC "tracemark-watermark-key"
#define KEY_FILE_VERSION 1
#define KEY_ID_DOMAIN "tracemark-key-id-v1"
#define HKDF_SALT "tracemark-wm-v1"

struct tm_wm_key {
    uint8_t secret[TM_WM_KEY_BYTES];
    char id[TM_WM_KEY_ID_SIZE];
};

static void compute_id(tm_wm_key *key) {
    uint8_t message[sizeof KEY_ID_DOMAIN - 1 + TM_WM_KEY_BYTES];
    memcpy(message, KEY_ID_DOMAIN, sizeof KEY_ID_DOMAIN - 1);
    memcpy(message + sizeof KEY_ID_DOMAIN - 1, key->secret, TM_WM_KEY_BYTES);
    char hex[TM_SHA256_HEX_SIZE];
    tm_sha256_hex(message, sizeof message, hex);
    OPENSSL_cleanse(message, sizeof message);
    memcpy(key->id, hex, TM_WM_KEY_ID_SIZE - 1);
    key->id[TM_WM_KEY_ID_SIZE - 1] = '\0';
}

/* OpenSSL's secure heap (mmap'ed, mlock'ed where RLIMIT_MEMLOCK allows,
 * guard pages, never swapped, wiped on free) exists only once
 * CRYPTO_secure_malloc_init has run; before that OPENSSL_secure_zalloc is a
 * plain malloc. It is set up once, with room for about a thousand keys;
 * when it cannot be made or is full, keys go to the ordinary heap (and are
 * still wiped on free). tm_wm_key_secure reports which. */
enum { SECURE_HEAP_BYTES = 512 * 1024, SECURE_HEAP_MIN = 64 };
static pthread_once_t secure_heap_once = PTHREAD_ONCE_INIT;
static void secure_heap_init(void) {
    if (!CRYPTO_secure_malloc_initialized()) (void)CRYPTO_secure_malloc_init(SECURE_HEAP_BYTES, SECURE_HEAP_MIN);
}

bool tm_wm_key_secure(const tm_wm_key *key) { return key && CRYPTO_secure_allocated(key); }

static tm_wm_key *new_key(tm_error *err) {
    pthread_once(&secure_heap_once, secure_heap_init);
    tm_wm_key *key = OPENSSL_secure_zalloc(sizeof *key);
    if (!key) key = OPENSSL_zalloc(sizeof *key);
    if (!key) tm_error_set(err, TM_ERR_NOMEM, "out of memory allocating a key");
    return key;
}

void tm_wm_key_free(tm_wm_key *key) {
    if (!key) return;
    OPENSSL_cleanse(key, sizeof *key);
    if (CRYPTO_secure_allocated(key)) OPENSSL_secure_free(key);
    else OPENSSL_free(key);
}

tm_status tm_wm_key_generate(tm_wm_key **out, tm_error *err) {
    *out = NULL;
    tm_wm_key *key = new_key(err);
    if (!key) return TM_ERR_NOMEM;
    if (RAND_priv_bytes(key->secret, TM_WM_KEY_BYTES) != 1) {
        tm_wm_key_free(key);
        return tm_error_set(err, TM_ERR_IO, "OpenSSL's random generator failed");
    }
    compute_id(key);
    *out = key;
    return TM_OK;
}

tm_status tm_wm_key_from_secret(tm_wm_key **out, const uint8_t secret[TM_WM_KEY_BYTES], tm_error *err) {
    *out = NULL;
    if (!secret) return tm_error_set(err, TM_ERR_ARGUMENT, "no secret given for the key");
    tm_wm_key *key = new_key(err);
    if (!key) return TM_ERR_NOMEM;
    memcpy(key->secret, secret, TM_WM_KEY_BYTES);
    compute_id(key);
    *out = key;
    return TM_OK;
}

const char *tm_wm_key_id(const tm_wm_key *key) { return key->id; }

bool tm_wm_key_equal(const tm_wm_key *a, const tm_wm_key *b) {
    return CRYPTO_memcmp(a->secret, b->secret, TM_WM_KEY_BYTES) == 0;
}

tm_status tm_wm_key_write(const tm_wm_key *key, const char *path, tm_error *err) {
    struct stat st;
    if (stat(path, &st) == 0)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: already exists; refusing to overwrite a key file", path);
    static const char digits[] = "0123456789abcdef";
    char text[256];
    int n = snprintf(text, sizeof text, "%s v%d\nid: %s\nkey: ", KEY_FILE_MAGIC, KEY_FILE_VERSION, key->id);
    for (int i = 0; i < TM_WM_KEY_BYTES; i++) {
        text[n++] = digits[key->secret[i] >> 4];
        text[n++] = digits[key->secret[i] & 15];
    }
    text[n++] = '\n';
    tm_status status = tm_write_file_exclusive(path, text, (size_t)n, 0600, err);
    OPENSSL_cleanse(text, sizeof text);
    return status;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Parse the three lines of a key file; the secret goes straight into key. */
static tm_status parse_key_file(const char *path, const char *text, size_t size, tm_wm_key *key, tm_error *err) {
    const char *end = text + size, *p = text;
    size_t magic_size = sizeof KEY_FILE_MAGIC - 1;
    if (size < magic_size + 3 || memcmp(p, KEY_FILE_MAGIC " v", magic_size + 2) != 0)
        return tm_error_set(err, TM_ERR_FORMAT, "%s: not a tracemark watermark key file", path);
    p += magic_size + 2;
    /* The version is decimal digits without sign, space or leading zero, up
     * to the newline, read within [p, end): the buffer is not NUL-terminated
     * (strtol here once read past it, and took "v\n +0001" as 1). */
    long version = 0;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9' && p - digits < 6) version = version * 10 + (*p++ - '0');
    if (p == digits || p >= end || *p != '\n' || (*digits == '0' && p - digits > 1))
        return tm_error_set(err, TM_ERR_FORMAT, "%s: line 1: malformed version (expected 'v%d' and a newline)", path,
                            KEY_FILE_VERSION);
    if (version != KEY_FILE_VERSION)
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "%s: key file version %ld is not supported (this build reads v%d)",
                            path, version, KEY_FILE_VERSION);
    p++;
    if (end - p < 4 + TM_WM_KEY_ID_SIZE || memcmp(p, "id: ", 4) != 0 || p[4 + TM_WM_KEY_ID_SIZE - 1] != '\n')
        return tm_error_set(err, TM_ERR_FORMAT, "%s: line 2: expected 'id: ' and 16 hex digits", path);
    const char *id = p + 4;
    p += 4 + TM_WM_KEY_ID_SIZE;
    if (end - p < 5 + 2 * TM_WM_KEY_BYTES || memcmp(p, "key: ", 5) != 0)
        return tm_error_set(err, TM_ERR_FORMAT, "%s: line 3: expected 'key: ' and 64 hex digits (truncated?)", path);
    p += 5;
    for (int i = 0; i < TM_WM_KEY_BYTES; i++) {
        int hi = hex_value(p[2 * i]), lo = hex_value(p[2 * i + 1]);
        if (hi < 0 || lo < 0) return tm_error_set(err, TM_ERR_FORMAT, "%s: line 3: the key is not 64 lowercase hex digits", path);
        key->secret[i] = (uint8_t)(hi << 4 | lo);
    }
    p += 2 * TM_WM_KEY_BYTES;
    if (!(p == end || (p + 1 == end && *p == '\n')))
        return tm_error_set(err, TM_ERR_FORMAT, "%s: unexpected data after the key", path);
    compute_id(key);
    if (CRYPTO_memcmp(id, key->id, TM_WM_KEY_ID_SIZE - 1) != 0)
        return tm_error_set(err, TM_ERR_FORMAT, "%s: the key id does not match the key (file altered or corrupted)", path);
    return TM_OK;
}

enum { KEY_FILE_MAX = 4096 };

tm_status tm_wm_key_parse(tm_wm_key **out, const char *name, const char *text, size_t size, tm_error *err) {
    *out = NULL;
    if (!name || (!text && size)) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_wm_key_parse: NULL argument");
    if (size > KEY_FILE_MAX) return tm_error_set(err, TM_ERR_FORMAT, "%s: too large to be a key file", name);
    tm_wm_key *key = new_key(err);
    if (!key) return TM_ERR_NOMEM;
    tm_status status = parse_key_file(name, text, size, key, err);
    if (status != TM_OK) {
        tm_wm_key_free(key);
        return status;
    }
    *out = key;
    return TM_OK;
}

tm_status tm_wm_key_read(tm_wm_key **out, const char *path, tm_error *err) {
    *out = NULL;
    /* Open through tm_input_open (a FIFO is refused at once, not waited on),
     * check the permissions of the file actually opened (fstat, not stat), and
     * read it with read(2) into a buffer we wipe: stdio would keep a copy. */
    int fd;
    struct stat st;
    tm_status status = tm_input_open(path, KEY_FILE_MAX, &fd, &st, err);
    if (status == TM_ERR_LIMIT) return tm_error_set(err, TM_ERR_FORMAT, "%s: too large to be a key file", path);
    if (status != TM_OK) return tm_error_prefix(err, "cannot read key file");
    if (st.st_mode & 077)
        status = tm_error_set(err, TM_ERR_PERMISSION,
                              "%s: key file is readable or writable by group or others (mode %04o); run chmod 600 %s",
                              path, (unsigned)(st.st_mode & 07777), path);
    else if (st.st_size > KEY_FILE_MAX) status = tm_error_set(err, TM_ERR_FORMAT, "%s: too large to be a key file", path);
    char text[KEY_FILE_MAX + 1];
    size_t size = 0;
    while (status == TM_OK && size <= KEY_FILE_MAX) {
        ssize_t got = read(fd, text + size, sizeof text - size);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) status = tm_error_set(err, TM_ERR_IO, "%s: read error: %s", path, strerror(errno));
        if (got <= 0) break;
        size += (size_t)got;
    }
    close(fd);
    if (status == TM_OK && size > KEY_FILE_MAX) status = tm_error_set(err, TM_ERR_FORMAT, "%s: too large to be a key file", path);
    if (status == TM_OK) status = tm_wm_key_parse(out, path, text, size, err);
    OPENSSL_cleanse(text, sizeof text);
    return status;
}

tm_status tm_wm_derive_subkey(const tm_wm_key *key, const char *info, tm_wm_subkey *out, tm_error *err) {
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (!ctx) return tm_error_set(err, TM_ERR_UNSUPPORTED, "OpenSSL has no HKDF");
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key->secret, TM_WM_KEY_BYTES),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)HKDF_SALT, sizeof HKDF_SALT - 1),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
        OSSL_PARAM_construct_end(),
    };
    uint8_t bytes[16];
    int ok = EVP_KDF_derive(ctx, bytes, sizeof bytes, params);
    EVP_KDF_CTX_free(ctx);
    if (ok != 1) return tm_error_set(err, TM_ERR_UNSUPPORTED, "HKDF-SHA256 derivation failed");
    /* SipHash reads its 16-byte key as two little-endian words. */
    out->k0 = out->k1 = 0;
    for (int i = 0; i < 8; i++) {
        out->k0 |= (uint64_t)bytes[i] << (8 * i);
        out->k1 |= (uint64_t)bytes[8 + i] << (8 * i);
    }
    OPENSSL_cleanse(bytes, sizeof bytes);
    return TM_OK;
}
