/* libFuzzer harness: the JSON bodies of the server's POST endpoints, parsed
 * by the functions the handlers call (server/completions.c,
 * detect_verify.c; no socket, no engine): /v1/completions with tok512.bin
 * from the fixtures, /v1/chat/completions with Llama 3's byte-level BPE
 * vocabulary and its chat template (messages always plain text), /v1/detect,
 * and /v1/verify followed by the verification the handler runs first (the
 * manifest given or embedded, a trust store holding the manifest seeds'
 * signer, no detector). The first byte picks the endpoint; the rest is the
 * body. A parsed request must respect the server's limits (prompts within
 * the context, n, stops); a refused one must carry an HTTP status and an
 * error message. Seeds: tests/fuzz/corpus/server_body. */
#include "fuzz_common.h"
#include "server_internal.h"
#include "tracemark/provenance.h"

static tm_tokenizer *completion_vocabulary, *chat_vocabulary;
static tm_trust_store *trust;
static const uint8_t SIGNER_SEED[TM_ED25519_SEED_BYTES] = {17, 17, 17, 17, 1, 2, 3, 4}; /* fuzz_manifest_json.c's */
enum { FUZZ_CONTEXT = 256 };

static void setup(void) {
    tm_error err = {0};
    tm_signing_key *signer = NULL;
    tm_public_key *public_key = NULL;
    if (tm_tokenizer_load(&completion_vocabulary, fuzz_fixture("models/tok512.bin"), &err) != TM_OK ||
        tm_tokenizer_load(&chat_vocabulary, fuzz_fixture("tokenizer-tests/ggml-vocab-llama-bpe.gguf"), &err) != TM_OK) {
        fprintf(stderr, "fuzz_server_body: %s (set TRACEMARK_FIXTURES)\n", err.message);
        abort();
    }
    if (tm_signing_key_from_seed(&signer, SIGNER_SEED, &err) != TM_OK ||
        tm_public_key_from_signing_key(&public_key, signer, &err) != TM_OK || tm_trust_store_create(&trust, &err) != TM_OK ||
        tm_trust_store_add_key(trust, public_key, &err) != TM_OK)
        abort();
    tm_signing_key_free(signer);
}

static void check_refusal(const tm_server_request_error *e) {
    if (e->status < 400 || e->status > 599 || e->message[0] == '\0') abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!trust) setup();
    if (size == 0) return 0;
    const char *body = (const char *)data + 1;
    size_t body_size = size - 1;
    tm_server_request_error e = {0};
    switch (data[0] % 4) {
    case 0:
    case 1: {
        bool chat = data[0] % 4 == 1;
        tm_server_parse_context context = {chat ? chat_vocabulary : completion_vocabulary, chat, TM_CHAT_LLAMA3,
                                           "fuzz-model", FUZZ_CONTEXT};
        tm_server_generation_request request;
        if (!tm_server_parse_generation(&context, body, body_size, chat, &request, &e)) {
            check_refusal(&e);
            return 0;
        }
        if (request.n_prompts == 0 || request.n < 1 || request.n_stops > TM_SERVER_MAX_STOPS) abort();
        int32_t n_vocab = tm_tokenizer_vocab_size(context.tokenizer);
        for (size_t i = 0; i < request.n_prompts; i++) {
            if (request.prompt_sizes[i] == 0 || request.prompt_sizes[i] >= FUZZ_CONTEXT) abort();
            for (size_t k = 0; k < request.prompt_sizes[i]; k++)
                if (request.prompts[i][k] < 0 || request.prompts[i][k] >= n_vocab) abort();
        }
        tm_server_generation_request_free(&request);
        break;
    }
    case 2: {
        tm_server_detect_request request;
        if (!tm_server_parse_detect(body, body_size, &request, &e)) {
            check_refusal(&e);
            return 0;
        }
        if (!request.text) abort();
        tm_server_detect_request_free(&request);
        break;
    }
    default: {
        tm_server_verify_request request;
        if (!tm_server_parse_verify(body, body_size, &request, &e)) {
            check_refusal(&e);
            return 0;
        }
        tm_error err = {0};
        tm_verification v;
        if (tm_provenance_verify(request.text, request.text_size, request.manifest, request.manifest_size, trust, NULL,
                                 &v, &err) == TM_OK &&
            v.verified && !(v.signature_valid && v.signer_trusted && v.content_unchanged))
            abort();
        tm_server_verify_request_free(&request);
        break;
    }
    }
    return 0;
}
