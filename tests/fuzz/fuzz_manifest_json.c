/* libFuzzer harness: provenance manifests as `tracemark verify --manifest`
 * and POST /v1/verify receive them (provenance/manifest.c, canonical.c,
 * verify.c): the strict manifest parser, RFC 8785 canonicalisation of the
 * same bytes, and verification of a fixed text against them with a trust
 * store holding the seeds' signer. A manifest that parses must serialise
 * (pretty and compact) to text that parses again, and a verdict must be
 * consistent (verified only when signature, signer and content all held).
 * Seeds: tests/fuzz/corpus/manifest_json (tests/fuzz/tools/
 * make_provenance_seeds.c: signed with the fixed seed below). */
#include "fuzz_common.h"
#include "tracemark/provenance.h"

/* The text the seed manifests describe, and their signer's RFC 8032 seed. */
#define FUZZ_TEXT "Once upon a time, a fuzzer met a manifest.\n"
static const uint8_t SIGNER_SEED[TM_ED25519_SEED_BYTES] = {17, 17, 17, 17, 1, 2, 3, 4};

static tm_trust_store *trust;

static void setup(void) {
    tm_error err = {0};
    tm_signing_key *signer = NULL;
    tm_public_key *public_key = NULL;
    if (tm_signing_key_from_seed(&signer, SIGNER_SEED, &err) != TM_OK ||
        tm_public_key_from_signing_key(&public_key, signer, &err) != TM_OK || tm_trust_store_create(&trust, &err) != TM_OK ||
        tm_trust_store_add_key(trust, public_key, &err) != TM_OK)
        abort();
    tm_signing_key_free(signer);
}

static void reparse(const char *text, size_t size) {
    tm_error err = {0};
    tm_manifest *again = NULL;
    if (tm_manifest_parse(&again, text, size, &err) != TM_OK) abort(); /* our own output must parse */
    tm_manifest_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!trust) setup();
    const char *json = (const char *)data;
    tm_error err = {0};
    char *canonical = NULL;
    size_t canonical_size = 0;
    if (tm_canonical_json(json, size, &canonical, &canonical_size, &err) == TM_OK) {
        if (strlen(canonical) != canonical_size) abort();
        free(canonical);
    }
    tm_manifest *manifest = NULL;
    if (tm_manifest_parse(&manifest, json, size, &err) == TM_OK) {
        (void)tm_manifest_signer(manifest);
        (void)tm_manifest_content_sha256(manifest);
        (void)tm_manifest_content_length(manifest);
        (void)tm_manifest_watermark_key_id(manifest);
        char *text = NULL;
        size_t text_size = 0;
        if (tm_manifest_serialize(manifest, &text, &text_size, &err) == TM_OK) {
            reparse(text, text_size);
            free(text);
        }
        if (tm_manifest_serialize_compact(manifest, &text, &text_size, &err) == TM_OK) {
            reparse(text, text_size);
            free(text);
        }
        tm_manifest_free(manifest);
    }
    tm_verification v;
    if (tm_provenance_verify(FUZZ_TEXT, sizeof FUZZ_TEXT - 1, json, size, trust, NULL, &v, &err) == TM_OK) {
        if (v.verified && !(v.signature_valid && v.signer_trusted && v.content_unchanged)) abort();
        if (v.embedded) abort(); /* the manifest was given */
    }
    return 0;
}
