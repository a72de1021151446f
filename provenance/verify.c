/* Verification of a text against its manifest, in a fixed order that names
 * the first check to fail: a manifest is there (given or embedded), it is
 * well formed, its signer is trusted, its signature holds, the content is
 * unchanged; and, when a detector is given, the watermark's p-value on the
 * text with any embedded wrapper removed (so that embedding never changes a
 * detection result). It must never report "verified" unless every check ran
 * and passed, and never trusts a key the manifest itself supplies. */
#include "provenance_internal.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tm_verify_failure_name(tm_verify_failure failure) {
    switch (failure) {
    case TM_VERIFY_OK: return "none";
    case TM_VERIFY_NO_MANIFEST: return "no_manifest";
    case TM_VERIFY_MANIFEST_MALFORMED: return "manifest";
    case TM_VERIFY_UNTRUSTED_SIGNER: return "signer";
    case TM_VERIFY_BAD_SIGNATURE: return "signature";
    case TM_VERIFY_CONTENT_CHANGED: return "content";
    }
    return "unknown";
}

static void fail(tm_verification *v, tm_verify_failure failure, const char *reason) {
    v->verified = false;
    v->failure = failure;
    snprintf(v->reason, sizeof v->reason, "%s", reason);
}

tm_status tm_provenance_verify(const char *text, size_t size, const char *manifest_json, size_t manifest_size,
                               const tm_trust_store *trust, const tm_detector *detector, tm_verification *out,
                               tm_error *err) {
    memset(out, 0, sizeof *out);
    tm_embedded_manifest embedded;
    tm_error local = {0};
    bool wrapper_broken = tm_provenance_extract(text, size, &embedded, &local) != TM_OK;
    char *content = NULL;
    size_t content_size = 0;
    tm_status status = tm_provenance_strip(text, size, &embedded, &content, &content_size, err);
    if (status != TM_OK) {
        tm_embedded_manifest_free(&embedded);
        return status;
    }
    tm_sha256_hex(content, content_size, out->content_sha256);
    out->content_length = content_size;

    /* The watermark does not depend on the manifest: score it first, so a
     * stripped or broken manifest still leaves the soft binding. */
    if (detector) {
        status = tm_detect_text(detector, content, content_size, NULL, &out->detection, err);
        if (status != TM_OK) goto done;
        out->has_detection = true;
    }

    if (!manifest_json) {
        if (wrapper_broken) {
            fail(out, TM_VERIFY_MANIFEST_MALFORMED, local.message);
            goto done;
        }
        if (!embedded.found) {
            fail(out, TM_VERIFY_NO_MANIFEST, "no manifest given and none embedded in the text");
            goto done;
        }
        out->embedded = true;
        manifest_json = embedded.manifest;
        manifest_size = embedded.manifest_size;
    }
    tm_manifest *manifest = NULL;
    if (tm_manifest_parse(&manifest, manifest_json, manifest_size, &local) != TM_OK) {
        fail(out, TM_VERIFY_MANIFEST_MALFORMED, local.message);
        goto done;
    }
    snprintf(out->signer, sizeof out->signer, "%s", tm_manifest_signer(manifest));
    const char *key_id = tm_manifest_watermark_key_id(manifest);
    if (key_id) snprintf(out->manifest_watermark_key_id, sizeof out->manifest_watermark_key_id, "%s", key_id);

    const tm_public_key *key = trust ? tm_trust_store_find(trust, out->signer) : NULL;
    if (!key) {
        fail(out, TM_VERIFY_UNTRUSTED_SIGNER, "the signer's fingerprint is not among the trusted public keys");
        tm_manifest_free(manifest);
        goto done;
    }
    out->signer_trusted = true;
    char *signed_bytes = NULL;
    size_t signed_size = 0;
    uint8_t signature[TM_ED25519_SIGNATURE_BYTES];
    status = tm_manifest_signed_bytes(manifest, &signed_bytes, &signed_size, err);
    if (status != TM_OK) {
        tm_manifest_free(manifest);
        goto done;
    }
    out->signature_checked = true;
    out->signature_valid = tm_manifest_signature(manifest, signature) &&
                           tm_public_key_verify(key, signed_bytes, signed_size, signature);
    free(signed_bytes);
    if (!out->signature_valid) {
        fail(out, TM_VERIFY_BAD_SIGNATURE, "the signature does not match the manifest (manifest altered, or signed by another key)");
        tm_manifest_free(manifest);
        goto done;
    }
    out->content_checked = true;
    out->content_unchanged = tm_manifest_content_length(manifest) == content_size &&
                             CRYPTO_memcmp(tm_manifest_content_sha256(manifest), out->content_sha256, 64) == 0;
    if (!out->content_unchanged) {
        char reason[200];
        snprintf(reason, sizeof reason, "the text differs from the signed content (%llu bytes signed, %zu bytes now)",
                 (unsigned long long)tm_manifest_content_length(manifest), content_size);
        fail(out, TM_VERIFY_CONTENT_CHANGED, reason);
        tm_manifest_free(manifest);
        goto done;
    }
    tm_manifest_free(manifest);
    out->verified = true;
    out->failure = TM_VERIFY_OK;
    snprintf(out->reason, sizeof out->reason, "signed by a trusted signer; content unchanged");
done:
    free(content);
    tm_embedded_manifest_free(&embedded);
    return status;
}
