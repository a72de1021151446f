/* libFuzzer harness: manifests embedded in text (provenance/embed.c, C2PA's
 * unstructured-text wrapper of variation selectors after U+FEFF): the
 * extractor on any bytes, stripping what it found, and verification of the
 * text with the embedded manifest against a trust store holding the seeds'
 * signer. A wrapper that extracts must survive a round trip: embedding its
 * payload after the stripped text (when no other wrapper is left in it) and
 * extracting again gives the same payload. Seeds: tests/fuzz/corpus/manifest_embedded (tests/fuzz/tools/
 * make_provenance_seeds.c). */
#include "fuzz_common.h"
#include "tracemark/provenance.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!trust) setup();
    const char *text = (const char *)data;
    tm_error err = {0};
    tm_embedded_manifest found = {0};
    if (tm_provenance_extract(text, size, &found, &err) == TM_OK && found.found) {
        if (found.start >= found.end || found.end > size || !found.manifest || strlen(found.manifest) > found.manifest_size)
            abort();
        char *stripped = NULL, *again = NULL;
        size_t stripped_size = 0, again_size = 0;
        if (tm_provenance_strip(text, size, &found, &stripped, &stripped_size, &err) == TM_OK) {
            if (stripped_size != size - (found.end - found.start)) abort();
            /* Only when no other wrapper is left (embed replaces the first it
             * finds, which would then not be the one extracted first). */
            tm_embedded_manifest rest = {0};
            bool alone = tm_provenance_extract(stripped, stripped_size, &rest, &err) == TM_OK && !rest.found;
            tm_embedded_manifest_free(&rest);
            if (alone && tm_provenance_embed(stripped, stripped_size, found.manifest, found.manifest_size, &again,
                                             &again_size, &err) == TM_OK) {
                tm_embedded_manifest round = {0};
                if (tm_provenance_extract(again, again_size, &round, &err) != TM_OK || !round.found ||
                    round.manifest_size != found.manifest_size ||
                    memcmp(round.manifest, found.manifest, found.manifest_size) != 0)
                    abort();
                tm_embedded_manifest_free(&round);
                free(again);
            }
            free(stripped);
        }
    }
    tm_embedded_manifest_free(&found);
    tm_verification v;
    if (tm_provenance_verify(text, size, NULL, 0, trust, NULL, &v, &err) == TM_OK) {
        if (v.verified && !(v.embedded && v.signature_valid && v.signer_trusted && v.content_unchanged)) abort();
    }
    return 0;
}
