/* Writes the seed corpora of the provenance harnesses (tests/fuzz/corpus/
 * manifest_json and manifest_embedded): manifests of the harnesses' fixed
 * text signed with their fixed signer seed (so that verification of a seed
 * goes all the way to "verified"), with and without generation facts, an
 * unsigned one, and texts carrying them embedded. Made with the library
 * itself, so that the seeds are exactly what tracemark writes; the signing
 * time is fixed so that rerunning gives the same bytes. A tool, not part of
 * the library: it prints and exits. Build and run from the repository root
 * after a Release build in build/:
 *   cc -std=c11 -D_DEFAULT_SOURCE -Iinclude tests/fuzz/tools/make_provenance_seeds.c \
 *      build/libtm_provenance.a build/libtm_detect.a build/libtm_watermark.a build/libtm_tokenizer.a \
 *      build/libtm_model.a build/libtm_core.a $(pkg-config --libs jansson libcrypto) -lyaml -lm \
 *      -o /tmp/make_provenance_seeds && /tmp/make_provenance_seeds */
#include "tracemark/provenance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_TEXT "Once upon a time, a fuzzer met a manifest.\n" /* as in the harnesses */
static const uint8_t SIGNER_SEED[TM_ED25519_SEED_BYTES] = {17, 17, 17, 17, 1, 2, 3, 4};
static const char GENERATION[] =
    "{\"model\": \"stories260K.gguf\", \"seed\": 11, \"sampling\": {\"temperature\": 0.8, \"top_k\": 40, \"top_p\": 0.95},"
    " \"watermark\": {\"scheme\": \"kgw\", \"parameters\": \"kgw;seeding=lefthash;h=1;gamma=0.25;delta=2\","
    " \"key_id\": \"07f648b9c4b6f383\"}}";

static void write_file(const char *dir, const char *name, const char *data, size_t size) {
    char path[512];
    snprintf(path, sizeof path, "tests/fuzz/corpus/%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        fprintf(stderr, "make_provenance_seeds: cannot write %s\n", path);
        exit(1);
    }
}

static void check(tm_status status, const tm_error *err) {
    if (status != TM_OK) {
        fprintf(stderr, "make_provenance_seeds: %s\n", err->message);
        exit(1);
    }
}

int main(void) {
    tm_error err = {0};
    tm_signing_key *key = NULL;
    check(tm_signing_key_from_seed(&key, SIGNER_SEED, &err), &err);
    const char *generations[] = {GENERATION, NULL};
    const char *names[] = {"signed-generation", "signed-plain"};
    for (int g = 0; g < 2; g++) {
        tm_manifest *m = NULL;
        check(tm_manifest_create(&m, FUZZ_TEXT, sizeof FUZZ_TEXT - 1, generations[g],
                                 generations[g] ? strlen(generations[g]) : 0, &err),
              &err);
        if (g == 1) { /* the unsigned form first */
            char *text = NULL;
            size_t size = 0;
            check(tm_manifest_serialize_compact(m, &text, &size, &err), &err);
            write_file("manifest_json", "unsigned.json", text, size);
            free(text);
        }
        check(tm_manifest_sign(m, key, 1796603220 /* 2026-12-07T00:27:00Z */, &err), &err);
        char *pretty = NULL, *compact = NULL, *embedded = NULL, name[64];
        size_t pretty_size = 0, compact_size = 0, embedded_size = 0;
        check(tm_manifest_serialize(m, &pretty, &pretty_size, &err), &err);
        check(tm_manifest_serialize_compact(m, &compact, &compact_size, &err), &err);
        snprintf(name, sizeof name, "%s.json", names[g]);
        write_file("manifest_json", name, pretty, pretty_size);
        check(tm_provenance_embed(FUZZ_TEXT, sizeof FUZZ_TEXT - 1, compact, compact_size, &embedded, &embedded_size,
                                  &err),
              &err);
        snprintf(name, sizeof name, "%s.txt", names[g]);
        write_file("manifest_embedded", name, embedded, embedded_size);
        free(pretty);
        free(compact);
        free(embedded);
        tm_manifest_free(m);
    }
    /* A short payload that is not JSON: the wrapper alone. */
    char *embedded = NULL;
    size_t embedded_size = 0;
    check(tm_provenance_embed("plain text", 10, "{}", 2, &embedded, &embedded_size, &err), &err);
    write_file("manifest_embedded", "tiny-payload.txt", embedded, embedded_size);
    free(embedded);
    tm_signing_key_free(key);
    return 0;
}
