/* Internal to server/: the engine that owns the slots and runs continuous
 * batching, and the jobs (one per returned choice) that the HTTP side hands
 * it and reads back. A job's visible state is guarded by its request's
 * mutex; the engine is the only writer, the HTTP thread the only reader.
 * Below the engine: the HTTP side's shared state (the server, its tenants,
 * one connection's request) and the functions its files (http.c,
 * completions.c, detect_verify.c, metrics.c, server.c) call in each other. */
#ifndef TRACEMARK_SERVER_INTERNAL_H
#define TRACEMARK_SERVER_INTERNAL_H

#include "tracemark/detect.h"
#include "tracemark/provenance.h"
#include "tracemark/server.h"
#include "tracemark/watermark.h"

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

enum { TM_SERVER_MAX_STOPS = 4, TM_SERVER_MAX_TOP_LOGPROBS = 20 };

/* One generated token as the logprobs fields report it: the model's own
 * log-probability (log-softmax of the raw logits, before temperature and
 * watermark), and the most likely alternatives. */
typedef struct {
    int32_t id, previous;
    float logprob;
    int32_t top_ids[TM_SERVER_MAX_TOP_LOGPROBS];
    float top_logprobs[TM_SERVER_MAX_TOP_LOGPROBS];
    size_t text_offset; /* byte offset of the token's text in the choice's text */
} tm_server_token;

typedef struct tm_server_request tm_server_request;

typedef struct {
    /* set before submission, read-only afterwards */
    tm_server_request *request;
    int32_t *prompt;
    size_t n_prompt;
    tm_sampler_chain *chain;
    int32_t max_tokens;
    int top_logprobs; /* -1: no logprobs */
    /* written by the engine under request->mutex */
    char *text;
    size_t text_size, text_capacity, visible; /* text[0..visible) can no longer be claimed by a stop string */
    tm_server_token *tokens;                  /* only with logprobs */
    size_t n_tokens, tokens_capacity;
    int32_t n_generated;
    const char *finish_reason; /* "stop", "length", "cancelled", "error" */
    bool done;
    tm_error error;
    /* engine only */
    tm_detokenizer detokenizer;
    const float *logits;
    int32_t previous;
    int slot;
    size_t prefilled; /* prompt tokens evaluated so far (chunked prefill) */
    double submitted; /* tm_seconds_now() at submission, for the time to the first token */
} tm_server_job;

/* What the HTTP side and the engine share for one HTTP request. Freed when
 * the last reference goes: one for the HTTP side and one per unfinished job. */
struct tm_server_request {
    pthread_mutex_t mutex;
    pthread_cond_t changed;
    int references;
    atomic_bool cancelled; /* the client went away, or the server stops */
    tm_server_job *jobs;
    size_t n_jobs;
    const char *const *stops; /* owned by the HTTP side's parsed request, which outlives the jobs' use */
    size_t n_stops;
    void *http; /* the HTTP side's own state, freed with the request */
    void (*http_free)(void *http);
};

typedef struct tm_server_engine tm_server_engine;

/* Time from submission to a sequence's first token (queue + prompt), in
 * the buckets of TM_SERVER_TTFT_BUCKETS, the last one +Inf. */
#define TM_SERVER_TTFT_BUCKETS {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
enum { TM_SERVER_TTFT_COUNT = 11 };

typedef struct {
    uint64_t first_token[TM_SERVER_TTFT_COUNT + 1];
    double first_token_sum;
    uint64_t prompt_tokens, generated_tokens, decode_steps, batched_rows, sequences, cancelled;
    int busy_slots, slots, queued;
} tm_server_engine_stats;

tm_status tm_server_engine_create(tm_server_engine **out, const tm_model *model, const tm_tokenizer *tokenizer,
                                  int32_t slots, int32_t n_ctx, int32_t n_threads, tm_kv_type kv_type,
                                  int32_t max_queue, tm_error *err);
/* Cancel everything and join the engine thread; submit refuses afterwards. */
void tm_server_engine_stop(tm_server_engine *engine);
/* Stop (if not yet) and free. */
void tm_server_engine_free(tm_server_engine *engine);
int32_t tm_server_engine_context_size(const tm_server_engine *engine);
/* Queue every job of the request (one reference each is taken). TM_ERR_LIMIT when the queue is full. */
tm_status tm_server_engine_submit(tm_server_engine *engine, tm_server_request *request, tm_error *err);
/* Wake the engine so that it sees a request's cancelled flag at once. */
void tm_server_engine_poke(tm_server_engine *engine);
void tm_server_engine_stats_get(tm_server_engine *engine, tm_server_engine_stats *out);

tm_server_request *tm_server_request_create(size_t n_jobs);
/* Drop one reference; frees the request and its jobs at zero. */
void tm_server_request_release(tm_server_request *request);

/* ---- the HTTP side ---------------------------------------------------------- */

typedef struct {
    char name[65];
    unsigned char api_key_digest[SHA256_DIGEST_LENGTH];
    bool has_api_key;
    tm_wm_key *key;
    tm_wm_scheme *scheme;
    tm_detector *detector;
    char description[256];
} tenant;

/* Metrics: requests by endpoint and status, latency of the generating endpoints. */
enum { EP_COMPLETIONS, EP_CHAT, EP_DETECT, EP_MODELS, EP_HEALTH, EP_METRICS, EP_VERIFY, EP_OTHER, EP_COUNT };
static const char *const endpoint_names[EP_COUNT] = {"completions", "chat_completions", "detect", "models",
                                                     "health", "metrics", "verify", "other"};
static const int status_codes[] = {200, 400, 401, 404, 405, 413, 500, 503};
enum { N_CODES = sizeof status_codes / sizeof status_codes[0] };
static const double latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
enum { N_BUCKETS = sizeof latency_buckets / sizeof latency_buckets[0] };

struct tm_server {
    tm_model *model;
    tm_tokenizer *tokenizer;
    char *model_path;                   /* for the manifests' model name */
    char model_sha256[TM_SHA256_HEX_SIZE]; /* hashed once at start, not per signed response */
    tm_kv_type kv_type;                 /* the slots' caches, recorded with the sampling settings */
    tm_signing_key *signer;             /* --sign; NULL: responses are not signed */
    tm_trust_store *trust;              /* /v1/verify: the signer's public key and --trust; NULL: no /v1/verify */
    bool has_chat;
    tm_chat_template chat_template;
    char model_name[256];
    tenant *tenants;
    size_t n_tenants;
    unsigned char (*api_digests)[SHA256_DIGEST_LENGTH]; /* single tenant: --api-keys */
    size_t n_api_keys;
    bool authenticate;
    tm_server_engine *engine;
    struct MHD_Daemon *daemon;
    uint16_t port;
    size_t max_body;
    time_t created;
    pthread_mutex_t lock; /* in_flight, draining, metrics */
    pthread_cond_t idle;
    int in_flight;
    bool draining;
    uint64_t requests[EP_COUNT][N_CODES];
    uint64_t latency_counts[3][N_BUCKETS + 1];
    double latency_sum[3];
};

/* ---- per-connection state ------------------------------------------------ */

typedef struct {
    tm_server *server;
    char *body;
    size_t size, capacity;
    bool too_large, counted;
    int endpoint, status;
    double start;
} http_state;

/* http.c: responses (each counts its status), the client check, authentication, libmicrohttpd's callbacks. */
enum MHD_Result tm_server_send_text(struct MHD_Connection *c, http_state *h, int status, char *text, size_t size,
                                    const char *content_type);
enum MHD_Result tm_server_send_json(struct MHD_Connection *c, http_state *h, int status, json_t *value);
/* OpenAI's error object. */
json_t *tm_server_error_object(const char *message, const char *type, const char *param, const char *code);
enum MHD_Result tm_server_send_error(struct MHD_Connection *c, http_state *h, int status, const char *param,
                                     const char *code, const char *format, ...) __attribute__((format(printf, 6, 7)));
bool tm_server_client_gone(struct MHD_Connection *c);
const tenant *tm_server_authenticate(tm_server *s, struct MHD_Connection *c, bool *ok);
enum MHD_Result tm_server_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                     const char *version, const char *upload, size_t *upload_size, void **state);
void tm_server_on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why);
void tm_server_quiet_logger(void *cls, const char *format, va_list args);

/* server.c: routing. */
int tm_server_endpoint_of(const char *url);
enum MHD_Result tm_server_dispatch(struct MHD_Connection *c, http_state *h, const char *url, const char *method);

/* The endpoints' handlers (completions.c, detect_verify.c, metrics.c). */
enum MHD_Result tm_server_handle_generation(struct MHD_Connection *c, http_state *h, const tenant *who, bool chat);
enum MHD_Result tm_server_handle_detect(struct MHD_Connection *c, http_state *h);
enum MHD_Result tm_server_handle_verify(struct MHD_Connection *c, http_state *h);
enum MHD_Result tm_server_handle_metrics(struct MHD_Connection *c, http_state *h);

/* metrics.c: count a response's status for its endpoint. */
void tm_server_count_status(tm_server *s, http_state *h, int status);

/* ---- request bodies, parsed without a connection ------------------------------
 * The JSON bodies of /v1/completions, /v1/chat/completions, /v1/detect and
 * /v1/verify are parsed by these functions alone (no socket, no engine), so
 * that the handlers and the fuzz harness (tests/fuzz/fuzz_server_body.c) run
 * the same code. A failure fills the OpenAI error the handler sends. */

typedef struct {
    int status;
    const char *param, *code;
    char message[400];
} tm_server_request_error;

/* What parsing a generation request needs from the server. */
typedef struct {
    const tm_tokenizer *tokenizer;
    bool has_chat;
    tm_chat_template chat_template;
    const char *model_name;
    int32_t n_ctx; /* the engine's context size: longer prompts are refused */
} tm_server_parse_context;

typedef struct {
    bool chat, stream, include_usage;
    int logprobs; /* -1 off, else the number of alternatives */
    size_t n;
    int32_t max_tokens; /* -1: default */
    tm_sampling_params sampling;
    bool seed_given;
    char *stops[TM_SERVER_MAX_STOPS];
    size_t n_stops;
    int32_t **prompts; /* one or more prompts, as ids */
    size_t *prompt_sizes, n_prompts;
} tm_server_generation_request;

/* completions.c: a /v1/completions (chat false) or /v1/chat/completions body. */
bool tm_server_parse_generation(const tm_server_parse_context *context, const char *body, size_t size, bool chat,
                                tm_server_generation_request *out, tm_server_request_error *e);
void tm_server_generation_request_free(tm_server_generation_request *request);

/* detect_verify.c: {"text", "prompt"?, "tenant"?}. The strings point into root. */
typedef struct {
    json_t *root;
    const char *text, *prompt, *tenant; /* prompt, tenant: NULL when absent or null */
    size_t text_size;
} tm_server_detect_request;
bool tm_server_parse_detect(const char *body, size_t size, tm_server_detect_request *out, tm_server_request_error *e);
void tm_server_detect_request_free(tm_server_detect_request *request);

/* detect_verify.c: {"text", "manifest"?}: the manifest's JSON text (an object
 * given as JSON is dumped compact; a string is taken as it is, a NUL inside
 * included), NULL when absent or null (the embedded one is used). */
typedef struct {
    json_t *root;
    const char *text; /* points into root */
    size_t text_size;
    char *manifest; /* owned */
    size_t manifest_size;
} tm_server_verify_request;
bool tm_server_parse_verify(const char *body, size_t size, tm_server_verify_request *out, tm_server_request_error *e);
void tm_server_verify_request_free(tm_server_verify_request *request);

#endif
