/* Ed25519 signing keys through OpenSSL's EVP interface: generation, PEM key
 * files (private PKCS#8 with mode 0600, public SubjectPublicKeyInfo),
 * signing, verification, signer fingerprints (SHA-256 of the raw 32-byte
 * public key) and the trust store of public keys. The private key must never
 * leave this file except into its own key file: every buffer that held the
 * PEM text is wiped, and group- or world-readable key files are refused. */
#include "tracemark/provenance.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct tm_signing_key {
    EVP_PKEY *pkey;
    uint8_t raw_public[TM_ED25519_PUBLIC_BYTES];
    char fingerprint[TM_SIGNER_FINGERPRINT_SIZE];
};

struct tm_public_key {
    EVP_PKEY *pkey;
    uint8_t raw[TM_ED25519_PUBLIC_BYTES];
    char fingerprint[TM_SIGNER_FINGERPRINT_SIZE];
};

enum { KEY_FILE_MAX = 8192 };

/* Raw public key and its fingerprint; false when pkey is not Ed25519. */
static bool public_facts(EVP_PKEY *pkey, uint8_t raw[TM_ED25519_PUBLIC_BYTES], char fingerprint[TM_SIGNER_FINGERPRINT_SIZE]) {
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) return false;
    size_t size = TM_ED25519_PUBLIC_BYTES;
    if (EVP_PKEY_get_raw_public_key(pkey, raw, &size) != 1 || size != TM_ED25519_PUBLIC_BYTES) return false;
    tm_sha256_hex(raw, TM_ED25519_PUBLIC_BYTES, fingerprint);
    return true;
}

static tm_status wrap_signing_key(EVP_PKEY *pkey, tm_signing_key **out, tm_error *err) {
    tm_signing_key *key = calloc(1, sizeof *key);
    if (!key) {
        EVP_PKEY_free(pkey);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory allocating a signing key");
    }
    key->pkey = pkey;
    if (!public_facts(pkey, key->raw_public, key->fingerprint)) {
        tm_signing_key_free(key);
        return tm_error_set(err, TM_ERR_FORMAT, "not an Ed25519 key");
    }
    *out = key;
    return TM_OK;
}

tm_status tm_signing_key_generate(tm_signing_key **out, tm_error *err) {
    *out = NULL;
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!pkey) return tm_error_set(err, TM_ERR_UNSUPPORTED, "OpenSSL could not generate an Ed25519 key");
    return wrap_signing_key(pkey, out, err);
}

tm_status tm_signing_key_from_seed(tm_signing_key **out, const uint8_t seed[TM_ED25519_SEED_BYTES], tm_error *err) {
    *out = NULL;
    EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, TM_ED25519_SEED_BYTES);
    if (!pkey) return tm_error_set(err, TM_ERR_UNSUPPORTED, "OpenSSL could not load an Ed25519 seed");
    return wrap_signing_key(pkey, out, err);
}

const char *tm_signing_key_fingerprint(const tm_signing_key *key) { return key->fingerprint; }

void tm_signing_key_raw_public(const tm_signing_key *key, uint8_t out[TM_ED25519_PUBLIC_BYTES]) {
    memcpy(out, key->raw_public, TM_ED25519_PUBLIC_BYTES);
}

void tm_signing_key_free(tm_signing_key *key) {
    if (!key) return;
    EVP_PKEY_free(key->pkey); /* OpenSSL clears the private key material */
    free(key);
}

/* PEM text of the key in a heap buffer the caller wipes and frees. */
static tm_status pem_text(EVP_PKEY *pkey, bool private_part, char **out, size_t *size, tm_error *err) {
    BIO *bio = BIO_new(BIO_s_secmem());
    if (!bio) bio = BIO_new(BIO_s_mem());
    if (!bio) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    int ok = private_part ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
                          : PEM_write_bio_PUBKEY(bio, pkey);
    char *data = NULL;
    long n = ok == 1 ? BIO_get_mem_data(bio, &data) : 0;
    tm_status status = TM_OK;
    if (n <= 0) status = tm_error_set(err, TM_ERR_UNSUPPORTED, "OpenSSL could not encode the key as PEM");
    else if (!(*out = malloc((size_t)n))) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    else {
        memcpy(*out, data, (size_t)n);
        *size = (size_t)n;
    }
    BIO_free(bio); /* a secure-memory BIO is cleared as it is freed */
    return status;
}

tm_status tm_signing_key_write(const tm_signing_key *key, const char *private_path, const char *public_path,
                               tm_error *err) {
    struct stat st;
    if (stat(private_path, &st) == 0)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: already exists; refusing to overwrite a key file", private_path);
    if (stat(public_path, &st) == 0)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: already exists; refusing to overwrite", public_path);
    char *private_pem = NULL, *public_pem = NULL;
    size_t private_size = 0, public_size = 0;
    tm_status status = pem_text(key->pkey, true, &private_pem, &private_size, err);
    if (status == TM_OK) status = pem_text(key->pkey, false, &public_pem, &public_size, err);
    /* The temporary file comes from mkstemp (mode 0600 from its creation), so
     * the private key is never readable by others, even for a moment. */
    if (status == TM_OK) status = tm_write_file_exclusive(private_path, private_pem, private_size, 0600, err);
    if (status == TM_OK) {
        status = tm_write_file_exclusive(public_path, public_pem, public_size, 0644, err);
        if (status != TM_OK) unlink(private_path); /* all or nothing */
    }
    if (private_pem) OPENSSL_cleanse(private_pem, private_size);
    free(private_pem);
    free(public_pem);
    return status;
}

/* Read a small file with read(2) into buf (wiped by the caller); when
 * private_key, refuse modes that let group or others read or write it. */
static tm_status read_key_file(const char *path, bool private_key, char *buf, size_t *size, tm_error *err) {
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return tm_error_set(err, TM_ERR_NOT_FOUND, "%s: cannot read key file: %s", path, strerror(errno));
    struct stat st;
    tm_status status = TM_OK;
    if (fstat(fd, &st) != 0) status = tm_error_set(err, TM_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode)) status = tm_error_set(err, TM_ERR_FORMAT, "%s: not a regular file", path);
    else if (private_key && (st.st_mode & 077))
        status = tm_error_set(err, TM_ERR_PERMISSION,
                              "%s: signing key file is readable or writable by group or others (mode %04o); run chmod 600 %s",
                              path, (unsigned)(st.st_mode & 07777), path);
    else if (st.st_size > KEY_FILE_MAX) status = tm_error_set(err, TM_ERR_FORMAT, "%s: too large to be a key file", path);
    while (status == TM_OK && *size <= KEY_FILE_MAX) {
        ssize_t got = read(fd, buf + *size, KEY_FILE_MAX + 1 - *size);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) status = tm_error_set(err, TM_ERR_IO, "%s: read error: %s", path, strerror(errno));
        if (got <= 0) break;
        *size += (size_t)got;
    }
    close(fd);
    if (status == TM_OK && *size > KEY_FILE_MAX) status = tm_error_set(err, TM_ERR_FORMAT, "%s: too large to be a key file", path);
    return status;
}

tm_status tm_signing_key_read(tm_signing_key **out, const char *path, tm_error *err) {
    *out = NULL;
    char buf[KEY_FILE_MAX + 1];
    size_t size = 0;
    tm_status status = read_key_file(path, true, buf, &size, err);
    EVP_PKEY *pkey = NULL;
    if (status == TM_OK) {
        BIO *bio = BIO_new_mem_buf(buf, (int)size);
        pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!pkey) status = tm_error_set(err, TM_ERR_FORMAT, "%s: not a PEM private key (make one with tracemark keygen --signing)", path);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    if (status != TM_OK) return status;
    status = wrap_signing_key(pkey, out, err);
    if (status != TM_OK) tm_error_prefix(err, "%s", path);
    return status;
}

tm_status tm_signing_key_sign(const tm_signing_key *key, const void *message, size_t size,
                              uint8_t signature[TM_ED25519_SIGNATURE_BYTES], tm_error *err) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t length = TM_ED25519_SIGNATURE_BYTES;
    /* Ed25519 hashes internally: no digest is named (pure EdDSA, RFC 8032). */
    int ok = ctx && EVP_DigestSignInit_ex(ctx, NULL, NULL, NULL, NULL, key->pkey, NULL) == 1 &&
             EVP_DigestSign(ctx, signature, &length, message, size) == 1 && length == TM_ED25519_SIGNATURE_BYTES;
    EVP_MD_CTX_free(ctx);
    return ok ? TM_OK : tm_error_set(err, TM_ERR_UNSUPPORTED, "Ed25519 signing failed");
}

static tm_status wrap_public_key(EVP_PKEY *pkey, tm_public_key **out, tm_error *err) {
    tm_public_key *key = calloc(1, sizeof *key);
    if (!key) {
        EVP_PKEY_free(pkey);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory allocating a public key");
    }
    key->pkey = pkey;
    if (!public_facts(pkey, key->raw, key->fingerprint)) {
        tm_public_key_free(key);
        return tm_error_set(err, TM_ERR_FORMAT, "not an Ed25519 public key");
    }
    *out = key;
    return TM_OK;
}

tm_status tm_public_key_read(tm_public_key **out, const char *path, tm_error *err) {
    *out = NULL;
    char buf[KEY_FILE_MAX + 1];
    size_t size = 0;
    tm_status status = read_key_file(path, false, buf, &size, err);
    if (status != TM_OK) return status;
    BIO *bio = BIO_new_mem_buf(buf, (int)size);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pkey) return tm_error_set(err, TM_ERR_FORMAT, "%s: not a PEM public key", path);
    status = wrap_public_key(pkey, out, err);
    if (status != TM_OK) tm_error_prefix(err, "%s", path);
    return status;
}

tm_status tm_public_key_from_raw(tm_public_key **out, const uint8_t raw[TM_ED25519_PUBLIC_BYTES], tm_error *err) {
    *out = NULL;
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, TM_ED25519_PUBLIC_BYTES);
    if (!pkey) return tm_error_set(err, TM_ERR_FORMAT, "not a valid Ed25519 public key");
    return wrap_public_key(pkey, out, err);
}

tm_status tm_public_key_from_signing_key(tm_public_key **out, const tm_signing_key *key, tm_error *err) {
    return tm_public_key_from_raw(out, key->raw_public, err);
}

const char *tm_public_key_fingerprint(const tm_public_key *key) { return key->fingerprint; }

bool tm_public_key_verify(const tm_public_key *key, const void *message, size_t size,
                          const uint8_t signature[TM_ED25519_SIGNATURE_BYTES]) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit_ex(ctx, NULL, NULL, NULL, NULL, key->pkey, NULL) == 1 &&
              EVP_DigestVerify(ctx, signature, TM_ED25519_SIGNATURE_BYTES, message, size) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

void tm_public_key_free(tm_public_key *key) {
    if (!key) return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

/* ---- trust store ----------------------------------------------------------- */

enum { TRUST_MAX = 4096 };

struct tm_trust_store {
    tm_public_key **keys;
    size_t n, capacity;
};

tm_status tm_trust_store_create(tm_trust_store **out, tm_error *err) {
    *out = calloc(1, sizeof **out);
    return *out ? TM_OK : tm_error_set(err, TM_ERR_NOMEM, "out of memory");
}

tm_status tm_trust_store_add_key(tm_trust_store *store, tm_public_key *key, tm_error *err) {
    if (tm_trust_store_find(store, key->fingerprint)) { /* the same signer twice adds nothing */
        tm_public_key_free(key);
        return TM_OK;
    }
    if (store->n == TRUST_MAX) {
        tm_public_key_free(key);
        return tm_error_set(err, TM_ERR_LIMIT, "more than %d trusted keys", TRUST_MAX);
    }
    if (store->n == store->capacity) {
        size_t capacity = store->capacity ? 2 * store->capacity : 8;
        tm_public_key **keys = realloc(store->keys, capacity * sizeof *keys);
        if (!keys) {
            tm_public_key_free(key);
            return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        }
        store->keys = keys;
        store->capacity = capacity;
    }
    store->keys[store->n++] = key;
    return TM_OK;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

tm_status tm_trust_store_add_path(tm_trust_store *store, const char *path, tm_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return tm_error_set(err, TM_ERR_NOT_FOUND, "%s: cannot open: %s", path, strerror(errno));
    tm_public_key *key = NULL;
    if (!S_ISDIR(st.st_mode)) {
        tm_status status = tm_public_key_read(&key, path, err);
        return status == TM_OK ? tm_trust_store_add_key(store, key, err) : status;
    }
    /* A folder: every *.pub file in it (private keys beside them are left alone). */
    struct dirent **entries = NULL;
    int count = scandir(path, &entries, NULL, alphasort);
    if (count < 0) return tm_error_set(err, TM_ERR_IO, "%s: cannot list: %s", path, strerror(errno));
    tm_status status = TM_OK;
    size_t added = 0;
    for (int i = 0; i < count; i++) {
        char file[4096];
        if (status == TM_OK && entries[i]->d_name[0] != '.' && ends_with(entries[i]->d_name, ".pub") &&
            snprintf(file, sizeof file, "%s/%s", path, entries[i]->d_name) < (int)sizeof file && tm_file_exists(file)) {
            status = tm_public_key_read(&key, file, err);
            if (status == TM_OK) status = tm_trust_store_add_key(store, key, err);
            added++;
        }
        free(entries[i]);
    }
    free(entries);
    if (status == TM_OK && added == 0) return tm_error_set(err, TM_ERR_NOT_FOUND, "%s: no *.pub key files in this folder", path);
    return status;
}

size_t tm_trust_store_count(const tm_trust_store *store) { return store->n; }

const tm_public_key *tm_trust_store_find(const tm_trust_store *store, const char *fingerprint) {
    for (size_t i = 0; i < store->n; i++)
        if (strcmp(store->keys[i]->fingerprint, fingerprint) == 0) return store->keys[i];
    return NULL;
}

void tm_trust_store_free(tm_trust_store *store) {
    if (!store) return;
    for (size_t i = 0; i < store->n; i++) tm_public_key_free(store->keys[i]);
    free(store->keys);
    free(store);
}
