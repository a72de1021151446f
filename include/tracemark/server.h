/* tracemark server: an OpenAI-compatible HTTP server (libmicrohttpd) in
 * front of the local engine that watermarks every response with the key of
 * the tenant whose API key made the request, and answers /v1/detect with the
 * same keys; with a signing key every reply carries each choice's signed
 * manifest and /v1/verify checks one. --parallel slots share the engine
 * through continuous batching: each decode step of every active sequence
 * goes through one batched pass.
 * The library never prints or exits; a caller (cli/serve.c) owns signals. */
#ifndef TRACEMARK_SERVER_H
#define TRACEMARK_SERVER_H

#include "tracemark/generator.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *model_path;      /* required */
    const char *tokenizer_path;  /* llama2.c checkpoints; NULL or "" for a GGUF */
    const char *model_name;      /* the id clients send as "model"; NULL: the file's base name */
    const char *chat_template;   /* a built-in name; NULL: detected from the GGUF (chat is off without one) */
    /* One tenant (named "default") from a scheme and a key, or many from a
     * tenants file: exactly one of the two. */
    const char *watermark_path, *key_path;
    const char *tenants_path;
    const char *api_keys_path;   /* single tenant: API keys, one a line (mode 0600); NULL: no authentication */
    const char *host;            /* numeric address to bind; default "127.0.0.1" */
    uint16_t port;               /* 0: any free port (tm_server_port tells which) */
    int32_t parallel;            /* slots (sequences decoded together); default 1 */
    int32_t n_ctx;               /* context per slot; 0: the model's */
    int32_t n_threads;           /* engine threads; 0: all cores */
    tm_kv_type kv_type;          /* the slots' KV caches: F32 (default) or F16, half the memory */
    size_t max_body_bytes;       /* default 1 MiB */
    int32_t max_queue;           /* sequences waiting for a slot before 503; default 256 */
    /* --sign: an Ed25519 signing key (mode 0600, read at start); every
     * response then carries each choice's signed manifest, and /v1/verify
     * trusts this key's public half. NULL: nothing is signed. */
    const char *signing_key_path;
    /* --trust: more signers /v1/verify trusts (NAME.pub files or folders of them). */
    const char *const *trust_paths;
    size_t n_trust_paths;
} tm_server_options;

void tm_server_options_default(tm_server_options *options);

typedef struct tm_server tm_server;

/* Load the model, keys and tenants, start the engine and listen. */
tm_status tm_server_start(tm_server **out, const tm_server_options *options, tm_error *err);
uint16_t tm_server_port(const tm_server *server);
/* The fingerprint of the key replies are signed with; NULL without --sign. */
const char *tm_server_signer(const tm_server *server);
/* Stop accepting connections, let in-flight requests finish for up to
 * drain_seconds (then cancel what is left), stop, and free everything. */
void tm_server_stop(tm_server *server, double drain_seconds);

/* A conversation as prompt ids for template tmpl, with every message's
 * content tokenized as plain text: control-token strings inside a message
 * (say "<|im_start|>system") stay text and can never become the template's
 * special tokens. When no content contains such a string this is exactly
 * tm_chat_format + tm_tokenizer_encode_special, as llama.cpp tokenizes; when
 * one does, the template's own text is tokenized with special tokens and each
 * content without (so tokens never span a content's edge). BOS first as the
 * vocabulary asks. The caller frees *ids. */
tm_status tm_server_chat_tokens(const tm_tokenizer *tokenizer, tm_chat_template tmpl, const tm_chat_message *messages,
                                size_t n_messages, int32_t **ids, size_t *n_ids, tm_error *err);

/* ---- tenants (server/tenants.c) ----------------------------------------- */

/* A tenants file (strict YAML, mode 0600 since it holds API keys):
 *   tenants:
 *     - name: acme                  # [A-Za-z0-9_.-], 1..64 characters, unique
 *       api_key: sk-acme-...        # 16..256 printable ASCII characters, unique
 *       watermark: schemes/kgw.yaml # relative paths are relative to this file's folder
 *       key: acme.key
 * Unknown fields, missing fields, duplicates and wrong types are errors that
 * name the file, line and field. */
typedef struct {
    char name[65];
    char *api_key;
    char *watermark_path, *key_path;
} tm_tenant_entry;

tm_status tm_tenants_load(const char *path, tm_tenant_entry **entries, size_t *n_entries, tm_error *err);
/* API keys, one a line; blank lines and lines starting with '#' skipped. */
tm_status tm_api_keys_load(const char *path, char ***keys, size_t *n_keys, tm_error *err);
/* Wipes the API keys (OPENSSL_cleanse) and frees. */
void tm_tenant_entries_free(tm_tenant_entry *entries, size_t n_entries);
void tm_api_keys_free(char **keys, size_t n_keys);

#ifdef __cplusplus
}
#endif
#endif
