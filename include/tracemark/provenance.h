/* tracemark provenance: signed manifests for generated text. Ed25519 signing
 * keys (OpenSSL), the RFC 8785 canonical JSON that signatures cover, the
 * manifest (docs/manifest.md: content hash, generation facts, watermark
 * facts, signer, signature), embedding a manifest invisibly in the text as
 * C2PA's unstructured-text wrapper does, and verification: signature,
 * trusted signer, unchanged content, and the watermark detector's p-value as
 * a soft binding. A private key never leaves its tm_signing_key: no function
 * here returns, prints or serialises it except into its 0600 key file. */
#ifndef TRACEMARK_PROVENANCE_H
#define TRACEMARK_PROVENANCE_H

#include "tracemark/core.h"
#include "tracemark/detect.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Signing keys (provenance/signing.c)                                       */
/* ======================================================================== */

enum {
    TM_ED25519_SEED_BYTES = 32,
    TM_ED25519_PUBLIC_BYTES = 32,
    TM_ED25519_SIGNATURE_BYTES = 64,
    /* A signer's fingerprint: SHA-256 of its raw 32-byte Ed25519 public key
     * (RFC 8032 encoding), 64 lowercase hex digits + NUL. */
    TM_SIGNER_FINGERPRINT_SIZE = 65,
};

typedef struct tm_signing_key tm_signing_key; /* private + public; opaque */
typedef struct tm_public_key tm_public_key;   /* public only */

tm_status tm_signing_key_generate(tm_signing_key **out, tm_error *err);
/* From an RFC 8032 32-byte private seed (test vectors; deterministic keys). */
tm_status tm_signing_key_from_seed(tm_signing_key **out, const uint8_t seed[TM_ED25519_SEED_BYTES], tm_error *err);
/* NAME.key (PKCS#8 PEM, mode 0600, never overwritten, written through a
 * private temporary file) and NAME.pub (SubjectPublicKeyInfo PEM, 0644).
 * Either path existing is an error and nothing is written. */
tm_status tm_signing_key_write(const tm_signing_key *key, const char *private_path, const char *public_path,
                               tm_error *err);
/* Read a private key PEM; refuses files readable or writable by group or others. */
tm_status tm_signing_key_read(tm_signing_key **out, const char *path, tm_error *err);
const char *tm_signing_key_fingerprint(const tm_signing_key *key);
void tm_signing_key_raw_public(const tm_signing_key *key, uint8_t out[TM_ED25519_PUBLIC_BYTES]);
/* Ed25519 (pure, RFC 8032) signature of message. */
tm_status tm_signing_key_sign(const tm_signing_key *key, const void *message, size_t size,
                              uint8_t signature[TM_ED25519_SIGNATURE_BYTES], tm_error *err);
void tm_signing_key_free(tm_signing_key *key);

tm_status tm_public_key_read(tm_public_key **out, const char *path, tm_error *err);
tm_status tm_public_key_from_raw(tm_public_key **out, const uint8_t raw[TM_ED25519_PUBLIC_BYTES], tm_error *err);
tm_status tm_public_key_from_signing_key(tm_public_key **out, const tm_signing_key *key, tm_error *err);
const char *tm_public_key_fingerprint(const tm_public_key *key);
/* True only when signature is a valid Ed25519 signature of message by key. */
bool tm_public_key_verify(const tm_public_key *key, const void *message, size_t size,
                          const uint8_t signature[TM_ED25519_SIGNATURE_BYTES]);
void tm_public_key_free(tm_public_key *key);

/* A set of trusted signers: public key files, or folders of *.pub files. */
typedef struct tm_trust_store tm_trust_store;
tm_status tm_trust_store_create(tm_trust_store **out, tm_error *err);
tm_status tm_trust_store_add_path(tm_trust_store *store, const char *path, tm_error *err);
tm_status tm_trust_store_add_key(tm_trust_store *store, tm_public_key *key, tm_error *err); /* takes key */
size_t tm_trust_store_count(const tm_trust_store *store);
/* The trusted key with this fingerprint, or NULL. */
const tm_public_key *tm_trust_store_find(const tm_trust_store *store, const char *fingerprint);
void tm_trust_store_free(tm_trust_store *store);

/* ======================================================================== */
/* RFC 8785 canonical JSON (provenance/canonical.c)                          */
/* ======================================================================== */

/* The JSON Canonicalization Scheme form of the JSON text at json: object
 * members sorted by their names' UTF-16 code units, no whitespace, strings
 * escaped minimally, numbers formatted as ECMAScript's Number.toString
 * (integers beyond 2^53 in magnitude go through double as ECMAScript would).
 * Duplicate names, NaN and infinities are errors. *out is NUL-terminated. */
tm_status tm_canonical_json(const char *json, size_t size, char **out, size_t *out_size, tm_error *err);
/* ECMAScript Number.prototype.toString of a finite double, into out (>= 32 bytes). */
tm_status tm_canonical_number(double value, char *out, size_t capacity, tm_error *err);

/* ======================================================================== */
/* Manifests (provenance/manifest.c); schema in docs/manifest.md             */
/* ======================================================================== */

#define TM_MANIFEST_TYPE "tracemark.manifest"
#define TM_MANIFEST_VERSION 1
#define TM_DIGITAL_SOURCE_TYPE "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

enum { TM_MANIFEST_MAX_BYTES = 1 << 20 };

typedef struct tm_manifest tm_manifest;

/* An unsigned manifest for content. generation (may be NULL) is the JSON
 * record `tracemark generate --json` prints: its model (name, and the
 * SHA-256 of the file when the path can be read), seed, sampling settings
 * and watermark facts (scheme, parameters, key id) go into the manifest. */
tm_status tm_manifest_create(tm_manifest **out, const void *content, size_t size, const char *generation,
                             size_t generation_size, tm_error *err);
/* Set created (seconds since the epoch, UTC), the signer's fingerprint and
 * the signature over the RFC 8785 form of everything but "signature". */
tm_status tm_manifest_sign(tm_manifest *manifest, const tm_signing_key *key, int64_t created, tm_error *err);
/* Pretty JSON text (ends in a newline); *out is NUL-terminated, free(). */
tm_status tm_manifest_serialize(const tm_manifest *manifest, char **out, size_t *size, tm_error *err);
/* Compact JSON text on one line (for embedding and JSONL). */
tm_status tm_manifest_serialize_compact(const tm_manifest *manifest, char **out, size_t *size, tm_error *err);
/* Strict parse of an untrusted manifest: every field present with its type
 * and form (no unknown fields, no duplicates); errors name the field. */
tm_status tm_manifest_parse(tm_manifest **out, const char *json, size_t size, tm_error *err);
const char *tm_manifest_signer(const tm_manifest *manifest);         /* fingerprint; "" unsigned */
const char *tm_manifest_content_sha256(const tm_manifest *manifest);
uint64_t tm_manifest_content_length(const tm_manifest *manifest);
const char *tm_manifest_watermark_key_id(const tm_manifest *manifest); /* NULL when none */
void tm_manifest_free(tm_manifest *manifest);

/* One call for `generate --sign` and `sign`: build, sign (now) and
 * serialise the manifest of content (pretty JSON, *out free()). */
tm_status tm_provenance_sign_generation(const void *content, size_t size, const char *generation,
                                        size_t generation_size, const tm_signing_key *key, char **out,
                                        size_t *out_size, tm_error *err);

/* ======================================================================== */
/* Embedding in text (provenance/embed.c)                                    */
/* C2PA 2.x unstructured-text wrapper: U+FEFF, then the bytes of            */
/* "C2PATXT\0" | version 1 | u32 big-endian length | manifest, each byte as */
/* a variation selector (0-15: U+FE00+b, 16-255: U+E0100+b-16).             */
/* ======================================================================== */

/* text (with any wrapper already in it removed) followed by the wrapper of manifest. */
tm_status tm_provenance_embed(const char *text, size_t size, const char *manifest, size_t manifest_size, char **out,
                              size_t *out_size, tm_error *err);

typedef struct {
    bool found;
    size_t start, end;   /* byte range of the wrapper in the text */
    char *manifest;      /* its payload, NUL-terminated (free()); NULL when not found */
    size_t manifest_size;
} tm_embedded_manifest;

/* Find the first wrapper. A U+FEFF followed by variation selectors that do
 * not decode as a wrapper is an error (TM_ERR_FORMAT) naming what is wrong;
 * no wrapper at all is TM_OK with found false. */
tm_status tm_provenance_extract(const char *text, size_t size, tm_embedded_manifest *out, tm_error *err);
/* The text with [start, end) of a found wrapper removed (a heap copy). */
tm_status tm_provenance_strip(const char *text, size_t size, const tm_embedded_manifest *found, char **out,
                              size_t *out_size, tm_error *err);
void tm_embedded_manifest_free(tm_embedded_manifest *found);

/* ======================================================================== */
/* Verification (provenance/verify.c)                                        */
/* ======================================================================== */

typedef enum {
    TM_VERIFY_OK = 0,
    TM_VERIFY_NO_MANIFEST,        /* none given and none embedded */
    TM_VERIFY_MANIFEST_MALFORMED, /* not JSON, or a field missing or wrong (field named in reason) */
    TM_VERIFY_UNTRUSTED_SIGNER,   /* signer fingerprint not among the trusted keys */
    TM_VERIFY_BAD_SIGNATURE,      /* the signature does not match the manifest */
    TM_VERIFY_CONTENT_CHANGED,    /* the text's SHA-256 or length differ from the manifest's */
} tm_verify_failure;

const char *tm_verify_failure_name(tm_verify_failure failure); /* "manifest", "signer", "signature", "content" */

typedef struct {
    bool verified;                /* manifest well formed, signed by a trusted signer, content unchanged */
    tm_verify_failure failure;    /* the first check that failed */
    char reason[TM_ERROR_MESSAGE_MAX];
    bool embedded;                /* the manifest came from inside the text */
    bool signature_checked, signature_valid, signer_trusted;
    bool content_checked, content_unchanged;
    char signer[TM_SIGNER_FINGERPRINT_SIZE];  /* as the manifest claims; "" when unknown */
    char content_sha256[TM_SHA256_HEX_SIZE];  /* of the text as received, wrapper removed */
    uint64_t content_length;
    char manifest_watermark_key_id[TM_WM_KEY_ID_SIZE]; /* "" when none */
    bool has_detection;           /* a detector was given */
    tm_detection detection;       /* on the text with the wrapper removed */
} tm_verification;

/* Verify text against manifest_json (NULL: the manifest embedded in text).
 * detector may be NULL. Returns TM_OK whenever a verdict was reached, even
 * "not verified"; an error only for failures to run (detection errors). */
tm_status tm_provenance_verify(const char *text, size_t size, const char *manifest_json, size_t manifest_size,
                               const tm_trust_store *trust, const tm_detector *detector, tm_verification *out,
                               tm_error *err);

#ifdef __cplusplus
}
#endif
#endif
