/* The HTTP face of the server (libmicrohttpd, a thread per connection):
 * routing, authentication by API key (SHA-256 digests compared with
 * CRYPTO_memcmp, every tenant tried), request parsing with OpenAI's error
 * objects for anything malformed, the OpenAI response and server-sent-event
 * shapes, /v1/detect with the tenants' keys, with --sign each choice's
 * signed manifest and /v1/verify (provenance/), /health and Prometheus
 * /metrics. Generation itself is the engine's (engine.c); a handler only
 * builds jobs, waits for them and watches whether its client is still there,
 * so that a client that goes away frees its slot at the next step. Nothing
 * here prints, exits, or logs a key, nor puts one in a manifest. */
#include "server_internal.h"

#include "tracemark/detect.h"
#include "tracemark/provenance.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

enum { MAX_JOBS = 64, MAX_N = 16, MAX_MESSAGES = 1024, MAX_STOP_BYTES = 256, MAX_PROMPT_IDS = 1 << 20 };

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

static void count_status(tm_server *s, http_state *h, int status) {
    h->status = status;
    pthread_mutex_lock(&s->lock);
    for (int c = 0; c < N_CODES; c++)
        if (status_codes[c] == status) s->requests[h->endpoint][c]++;
    pthread_mutex_unlock(&s->lock);
}

static enum MHD_Result send_text(struct MHD_Connection *c, http_state *h, int status, char *text, size_t size,
                                 const char *content_type) {
    struct MHD_Response *r = MHD_create_response_from_buffer(size, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    count_status(h->server, h, status);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, http_state *h, int status, json_t *value) {
    char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
    json_decref(value);
    if (!text) {
        static const char fallback[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                                       "\"param\":null,\"code\":null}}";
        text = strdup(fallback);
        status = 500;
        if (!text) return MHD_NO;
    }
    return send_text(c, h, status, text, strlen(text), "application/json");
}

/* OpenAI's error object. */
static json_t *error_object(const char *message, const char *type, const char *param, const char *code) {
    return json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", message, "type", type, "param", param, "code",
                     code);
}

static enum MHD_Result send_error(struct MHD_Connection *c, http_state *h, int status, const char *param,
                                  const char *code, const char *format, ...) __attribute__((format(printf, 6, 7)));
static enum MHD_Result send_error(struct MHD_Connection *c, http_state *h, int status, const char *param,
                                  const char *code, const char *format, ...) {
    char message[600];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    /* A message may quote a client's bytes: keep it valid UTF-8 for the JSON. */
    message[tm_utf8_valid_prefix(message, strlen(message))] = '\0';
    const char *type = status == 401 ? "authentication_error"
                       : status >= 500 ? "server_error"
                       : status == 404 ? "invalid_request_error"
                                       : "invalid_request_error";
    return send_json(c, h, status, error_object(message, type, param, code));
}

/* Text as a JSON string; bytes that are not UTF-8 become U+FFFD. */
static json_t *json_text(const char *text, size_t size) {
    if (tm_utf8_valid(text, size)) return json_stringn(text, size);
    char *clean = malloc(3 * size + 1);
    if (!clean) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < size;) {
        size_t ok = tm_utf8_valid_prefix(text + i, size - i);
        memcpy(clean + n, text + i, ok);
        n += ok;
        i += ok;
        if (i < size) {
            memcpy(clean + n, "\xEF\xBF\xBD", 3);
            n += 3;
            i++;
        }
    }
    json_t *value = json_stringn(clean, n);
    free(clean);
    return value;
}

/* Whether the client closed its end: a peek that sees end-of-file. */
static bool client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info) return false;
    char byte;
    ssize_t n = recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---- authentication ---------------------------------------------------- */

/* The tenant of the request's bearer key: every stored digest is compared
 * (CRYPTO_memcmp, no early exit) so the time does not tell which key was near. */
static const tenant *authenticate(tm_server *s, struct MHD_Connection *c, bool *ok) {
    *ok = !s->authenticate;
    if (!s->authenticate) return &s->tenants[0];
    const char *header = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!header || strncasecmp(header, "Bearer ", 7) != 0) return NULL;
    const char *key = header + 7;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), digest);
    const tenant *found = NULL;
    for (size_t i = 0; i < s->n_tenants; i++) {
        int differs = CRYPTO_memcmp(digest, s->tenants[i].api_key_digest, sizeof digest);
        if (!differs && s->tenants[i].has_api_key) found = &s->tenants[i];
    }
    for (size_t i = 0; i < s->n_api_keys; i++)
        if (!CRYPTO_memcmp(digest, s->api_digests[i], sizeof digest)) found = &s->tenants[0];
    OPENSSL_cleanse(digest, sizeof digest);
    *ok = found != NULL;
    return found;
}

/* ---- parsing ------------------------------------------------------------- */

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
} parsed_request;

static void parsed_free(parsed_request *p) {
    for (size_t i = 0; i < p->n_stops; i++) free(p->stops[i]);
    for (size_t i = 0; i < p->n_prompts; i++) free(p->prompts[i]);
    free(p->prompts);
    free(p->prompt_sizes);
    memset(p, 0, sizeof *p);
}

typedef struct {
    int status;
    const char *param, *code;
    char message[400];
} request_error;

static bool fail(request_error *e, int status, const char *param, const char *code, const char *format, ...)
    __attribute__((format(printf, 5, 6)));
static bool fail(request_error *e, int status, const char *param, const char *code, const char *format, ...) {
    e->status = status;
    e->param = param;
    e->code = code;
    va_list args;
    va_start(args, format);
    vsnprintf(e->message, sizeof e->message, format, args);
    va_end(args);
    return false;
}

/* A number field in [min, max], absent or null leaving *out alone. */
static bool get_number(json_t *body, const char *name, double min, double max, double *out, request_error *e) {
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) return true;
    if (!json_is_number(v)) return fail(e, 400, name, "invalid_type", "'%s' must be a number", name);
    double x = json_number_value(v);
    if (!(x >= min && x <= max)) return fail(e, 400, name, "invalid_value", "'%s' must be between %g and %g", name, min, max);
    *out = x;
    return true;
}

static bool get_integer(json_t *body, const char *name, long long min, long long max, long long *out, bool *given,
                        request_error *e) {
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v)) return fail(e, 400, name, "invalid_type", "'%s' must be an integer", name);
    long long x = json_integer_value(v);
    if (x < min || x > max) return fail(e, 400, name, "invalid_value", "'%s' must be between %lld and %lld", name, min, max);
    *out = x;
    if (given) *given = true;
    return true;
}

static bool get_bool(json_t *body, const char *name, bool *out, request_error *e) {
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) return fail(e, 400, name, "invalid_type", "'%s' must be a boolean", name);
    *out = json_is_true(v);
    return true;
}

static bool add_prompt(parsed_request *p, int32_t *ids, size_t n, request_error *e) {
    int32_t **prompts = realloc(p->prompts, (p->n_prompts + 1) * sizeof *prompts);
    if (prompts) p->prompts = prompts;
    size_t *sizes = prompts ? realloc(p->prompt_sizes, (p->n_prompts + 1) * sizeof *sizes) : NULL;
    if (sizes) p->prompt_sizes = sizes;
    if (!prompts || !sizes) {
        free(ids);
        return fail(e, 500, NULL, NULL, "out of memory");
    }
    p->prompts[p->n_prompts] = ids;
    p->prompt_sizes[p->n_prompts++] = n;
    return true;
}

static bool encode_prompt(tm_server *s, parsed_request *p, const char *text, size_t size, request_error *e) {
    int32_t *ids = NULL;
    size_t n = 0;
    tm_error err = {0};
    if (tm_tokenizer_encode(s->tokenizer, text, size, tm_tokenizer_adds_bos(s->tokenizer), &ids, &n, &err) != TM_OK)
        return fail(e, 400, "prompt", "invalid_value", "prompt: %s", err.message);
    if (n == 0) {
        free(ids);
        return fail(e, 400, "prompt", "invalid_value", "the prompt is empty and this vocabulary adds no BOS to start from");
    }
    return add_prompt(p, ids, n, e);
}

static bool parse_prompt(tm_server *s, json_t *prompt, parsed_request *p, request_error *e) {
    if (!prompt || json_is_null(prompt)) return fail(e, 400, "prompt", "missing_required_parameter", "'prompt' is required");
    if (json_is_string(prompt)) return encode_prompt(s, p, json_string_value(prompt), json_string_length(prompt), e);
    if (!json_is_array(prompt) || json_array_size(prompt) == 0)
        return fail(e, 400, "prompt", "invalid_type", "'prompt' must be a string, an array of strings or an array of token ids");
    json_t *first = json_array_get(prompt, 0);
    if (json_is_integer(first)) {
        size_t n = json_array_size(prompt);
        if (n > MAX_PROMPT_IDS) return fail(e, 400, "prompt", "invalid_value", "too many prompt tokens");
        int32_t *ids = malloc(n * sizeof *ids);
        if (!ids) return fail(e, 500, NULL, NULL, "out of memory");
        int32_t n_vocab = tm_tokenizer_vocab_size(s->tokenizer);
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(prompt, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= n_vocab) {
                free(ids);
                return fail(e, 400, "prompt", "invalid_value", "prompt token %zu must be an integer id in 0..%d", i,
                            n_vocab - 1);
            }
            ids[i] = (int32_t)json_integer_value(v);
        }
        return add_prompt(p, ids, n, e);
    }
    size_t i;
    json_t *v;
    json_array_foreach(prompt, i, v) {
        if (!json_is_string(v))
            return fail(e, 400, "prompt", "invalid_type", "'prompt' must be a string, an array of strings or an array of token ids");
        if (p->n_prompts == MAX_JOBS) return fail(e, 400, "prompt", "invalid_value", "at most %d prompts", MAX_JOBS);
        if (!encode_prompt(s, p, json_string_value(v), json_string_length(v), e)) return false;
    }
    return true;
}

/* A message's content: a string, null, or an array of {"type": "text", "text": ...} parts. */
static bool message_content(json_t *content, size_t index, char **out, request_error *e) {
    if (!content || json_is_null(content)) return (*out = strdup("")) != NULL || fail(e, 500, NULL, NULL, "out of memory");
    if (json_is_string(content)) {
        if (strlen(json_string_value(content)) != json_string_length(content))
            return fail(e, 400, "messages", "invalid_value", "message %zu: content holds a NUL character", index);
        return (*out = strdup(json_string_value(content))) != NULL || fail(e, 500, NULL, NULL, "out of memory");
    }
    if (!json_is_array(content))
        return fail(e, 400, "messages", "invalid_type", "message %zu: 'content' must be a string or an array of text parts", index);
    size_t total = 0, i;
    json_t *part;
    json_array_foreach(content, i, part) {
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 || !json_is_string(text) ||
            strlen(json_string_value(text)) != json_string_length(text))
            return fail(e, 400, "messages", "invalid_value",
                        "message %zu: content part %zu must be {\"type\": \"text\", \"text\": string} (only text is supported)",
                        index, i);
        total += json_string_length(text);
    }
    char *all = malloc(total + 1);
    if (!all) return fail(e, 500, NULL, NULL, "out of memory");
    size_t n = 0;
    json_array_foreach(content, i, part) {
        json_t *text = json_object_get(part, "text");
        memcpy(all + n, json_string_value(text), json_string_length(text));
        n += json_string_length(text);
    }
    all[n] = '\0';
    *out = all;
    return true;
}

static bool parse_messages(tm_server *s, json_t *messages, parsed_request *p, request_error *e) {
    if (!s->has_chat)
        return fail(e, 400, "messages", "chat_template_missing",
                    "this model has no chat template: start the server with --chat-template NAME");
    if (!messages) return fail(e, 400, "messages", "missing_required_parameter", "'messages' is required");
    if (!json_is_array(messages) || json_array_size(messages) == 0 || json_array_size(messages) > MAX_MESSAGES)
        return fail(e, 400, "messages", "invalid_type", "'messages' must be an array of 1 to %d messages", MAX_MESSAGES);
    size_t n = json_array_size(messages), i;
    tm_chat_message *list = calloc(n, sizeof *list);
    char **contents = calloc(n, sizeof *contents);
    bool ok = list && contents;
    if (!ok) fail(e, 500, NULL, NULL, "out of memory");
    json_t *m;
    json_array_foreach(messages, i, m) {
        if (!ok) break;
        json_t *role = json_object_get(m, "role");
        if (!json_is_object(m) || !json_is_string(role)) {
            ok = fail(e, 400, "messages", "invalid_type", "message %zu must be an object with a string 'role'", i);
            break;
        }
        const char *r = json_string_value(role);
        if (!strcmp(r, "developer")) r = "system";
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant")) {
            ok = fail(e, 400, "messages", "invalid_value",
                      "message %zu: role must be system, developer, user or assistant", i);
            break;
        }
        ok = message_content(json_object_get(m, "content"), i, &contents[i], e);
        list[i] = (tm_chat_message){r, contents[i]};
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    tm_error err = {0};
    if (ok && tm_server_chat_tokens(s->tokenizer, s->chat_template, list, n, &ids, &n_ids, &err) != TM_OK)
        ok = fail(e, 400, "messages", "invalid_value", "messages: %s", err.message);
    if (ok) ok = add_prompt(p, ids, n_ids, e);
    for (size_t k = 0; contents && k < n; k++) free(contents[k]);
    free(contents);
    free(list);
    return ok;
}

static bool parse_request(tm_server *s, json_t *body, bool chat, parsed_request *p, request_error *e) {
    memset(p, 0, sizeof *p);
    p->chat = chat;
    p->n = 1;
    p->max_tokens = -1;
    p->logprobs = -1;
    tm_sampling_params_default(&p->sampling);
    p->sampling.temperature = 1.0f;
    p->sampling.top_p = 1.0f;
    json_t *model = json_object_get(body, "model");
    if (!model) return fail(e, 400, "model", "missing_required_parameter", "'model' is required");
    if (!json_is_string(model)) return fail(e, 400, "model", "invalid_type", "'model' must be a string");
    if (strcmp(json_string_value(model), s->model_name) != 0)
        return fail(e, 404, "model", "model_not_found", "The model '%.200s' does not exist (this server has '%s')",
                    json_string_value(model), s->model_name);
    static const char *const unsupported[] = {"echo", "suffix", "best_of", "logit_bias", "tools", "functions",
                                              "response_format"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        json_t *v = json_object_get(body, unsupported[i]);
        bool harmless = !v || json_is_null(v) || json_is_false(v) ||
                        (json_is_integer(v) && json_integer_value(v) == 1 && !strcmp(unsupported[i], "best_of")) ||
                        (json_is_object(v) && json_object_size(v) == 0) ||
                        (json_is_object(v) && !strcmp(unsupported[i], "response_format") &&
                         json_is_string(json_object_get(v, "type")) &&
                         !strcmp(json_string_value(json_object_get(v, "type")), "text"));
        if (!harmless)
            return fail(e, 400, unsupported[i], "unsupported_parameter", "'%s' is not supported by this server",
                        unsupported[i]);
    }
    double x;
    long long integer;
    x = p->sampling.temperature;
    if (!get_number(body, "temperature", 0, 2, &x, e)) return false;
    p->sampling.temperature = (float)x;
    x = p->sampling.top_p;
    if (!get_number(body, "top_p", 0, 1, &x, e)) return false;
    if (x <= 0) return fail(e, 400, "top_p", "invalid_value", "'top_p' must be above 0");
    p->sampling.top_p = (float)x;
    x = 0;
    if (!get_number(body, "frequency_penalty", -2, 2, &x, e)) return false;
    p->sampling.frequency_penalty = (float)x;
    x = 0;
    if (!get_number(body, "presence_penalty", -2, 2, &x, e)) return false;
    p->sampling.presence_penalty = (float)x;
    integer = 0;
    if (!get_integer(body, "seed", INT64_MIN, INT64_MAX, &integer, &p->seed_given, e)) return false;
    p->sampling.seed = (uint64_t)integer;
    integer = 1;
    if (!get_integer(body, "n", 1, MAX_N, &integer, NULL, e)) return false;
    p->n = (size_t)integer;
    integer = -1;
    bool given = false;
    if (!get_integer(body, chat && json_object_get(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
                     0, INT32_MAX, &integer, &given, e))
        return false;
    if (given) p->max_tokens = (int32_t)integer;
    if (!get_bool(body, "stream", &p->stream, e)) return false;
    json_t *options = json_object_get(body, "stream_options");
    if (options && !json_is_null(options)) {
        if (!json_is_object(options)) return fail(e, 400, "stream_options", "invalid_type", "'stream_options' must be an object");
        if (!get_bool(options, "include_usage", &p->include_usage, e)) return false;
    }
    if (chat) {
        bool want = false;
        if (!get_bool(body, "logprobs", &want, e)) return false;
        integer = 0;
        given = false;
        if (!get_integer(body, "top_logprobs", 0, TM_SERVER_MAX_TOP_LOGPROBS, &integer, &given, e)) return false;
        if (given && !want) return fail(e, 400, "top_logprobs", "invalid_value", "'top_logprobs' needs 'logprobs': true");
        if (want) p->logprobs = (int)integer;
    } else {
        integer = -1;
        if (!get_integer(body, "logprobs", 0, 5, &integer, NULL, e)) return false;
        p->logprobs = (int)integer;
    }
    json_t *stop = json_object_get(body, "stop");
    if (stop && !json_is_null(stop)) {
        json_t *single[1] = {stop};
        size_t count = json_is_string(stop) ? 1 : json_is_array(stop) ? json_array_size(stop) : 0;
        if (!json_is_string(stop) && (!json_is_array(stop) || count > TM_SERVER_MAX_STOPS))
            return fail(e, 400, "stop", "invalid_type", "'stop' must be a string or an array of at most %d strings",
                        TM_SERVER_MAX_STOPS);
        for (size_t i = 0; i < count; i++) {
            json_t *v = json_is_string(stop) ? single[0] : json_array_get(stop, i);
            if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > MAX_STOP_BYTES ||
                strlen(json_string_value(v)) != json_string_length(v))
                return fail(e, 400, "stop", "invalid_value", "each stop sequence must be a string of 1 to %d bytes",
                            MAX_STOP_BYTES);
            if (!(p->stops[p->n_stops] = strdup(json_string_value(v)))) return fail(e, 500, NULL, NULL, "out of memory");
            p->n_stops++;
        }
    }
    if (chat ? !parse_messages(s, json_object_get(body, "messages"), p, e)
             : !parse_prompt(s, json_object_get(body, "prompt"), p, e))
        return false;
    if (p->n_prompts * p->n > MAX_JOBS)
        return fail(e, 400, "n", "invalid_value", "prompts times n is at most %d", MAX_JOBS);
    int32_t n_ctx = tm_server_engine_context_size(s->engine);
    for (size_t i = 0; i < p->n_prompts; i++)
        if (p->prompt_sizes[i] >= (size_t)n_ctx)
            return fail(e, 400, chat ? "messages" : "prompt", "context_length_exceeded",
                        "This model's maximum context length is %d tokens; the prompt has %zu", n_ctx,
                        p->prompt_sizes[i]);
    return true;
}

/* ---- a generation: jobs, waiting, and the response shapes ----------------- */

typedef struct {
    tm_server *server;
    const tenant *tenant;
    parsed_request parsed;
    char id[40];
    time_t created;
    uint64_t seed;
    struct MHD_Connection *connection;
    /* streaming */
    char *out;
    size_t out_size, out_capacity, out_sent;
    size_t *sent_text, *sent_tokens;
    bool *sent_finish, *sent_role, done_sent;
} generation;

static void generation_free(void *p) {
    generation *g = p;
    if (!g) return;
    parsed_free(&g->parsed);
    free(g->out);
    free(g->sent_text);
    free(g->sent_tokens);
    free(g->sent_finish);
    free(g->sent_role);
    free(g);
}

static json_t *tracemark_json(const generation *g) {
    const tm_wm_config *config = tm_wm_scheme_config(g->tenant->scheme);
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "scheme", tm_wm_kind_name(config->kind), "parameters",
                     g->tenant->description, "key_id", tm_wm_scheme_key_id(g->tenant->scheme), "tenant",
                     g->tenant->name, "seed", (json_int_t)g->seed);
}

/* The text of one token as it reads after the previous one. */
static json_t *token_json(const tm_tokenizer *t, int32_t previous, int32_t id) {
    char piece[512];
    tm_detokenizer d;
    tm_detokenizer_init(&d, t);
    d.previous = previous;
    size_t n = 0;
    if (tm_tokenizer_max_piece_size(t) + 2 * TM_DETOKENIZE_MAX <= sizeof piece) {
        n = tm_detokenizer_push(&d, id, piece, sizeof piece);
        n += tm_detokenizer_flush(&d, piece + n, sizeof piece - n);
    }
    return json_text(piece, n);
}

static json_t *bytes_json(json_t *text) {
    json_t *bytes = json_array();
    const char *s = json_string_value(text);
    for (size_t i = 0; s && i < json_string_length(text); i++) json_array_append_new(bytes, json_integer((uint8_t)s[i]));
    return bytes;
}

/* Logprobs of tokens [from, to) of a job, in the completions or chat shape. */
static json_t *logprobs_json(const generation *g, const tm_server_job *j, size_t from, size_t to) {
    const tm_tokenizer *t = g->server->tokenizer;
    if (!g->parsed.chat) {
        json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offsets = json_array();
        for (size_t i = from; i < to; i++) {
            const tm_server_token *k = &j->tokens[i];
            json_array_append_new(tokens, token_json(t, k->previous, k->id));
            json_array_append_new(lps, json_real(k->logprob));
            json_t *top = json_object();
            for (int a = 0; a < g->parsed.logprobs; a++) {
                json_t *text = token_json(t, k->previous, k->top_ids[a]);
                if (text && !json_object_get(top, json_string_value(text)))
                    json_object_set_new(top, json_string_value(text), json_real(k->top_logprobs[a]));
                json_decref(text);
            }
            json_array_append_new(tops, top);
            json_array_append_new(offsets, json_integer((json_int_t)k->text_offset));
        }
        return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops,
                         "text_offset", offsets);
    }
    json_t *content = json_array();
    for (size_t i = from; i < to; i++) {
        const tm_server_token *k = &j->tokens[i];
        json_t *text = token_json(t, k->previous, k->id), *top = json_array();
        for (int a = 0; a < g->parsed.logprobs; a++) {
            json_t *alt = token_json(t, k->previous, k->top_ids[a]);
            json_array_append_new(top, json_pack("{s:O, s:f, s:o}", "token", alt, "logprob", (double)k->top_logprobs[a],
                                                 "bytes", bytes_json(alt)));
            json_decref(alt);
        }
        json_array_append_new(content, json_pack("{s:O, s:f, s:o, s:o}", "token", text, "logprob", (double)k->logprob,
                                                 "bytes", bytes_json(text), "top_logprobs", top));
        json_decref(text);
    }
    return json_pack("{s:o}", "content", content);
}

static json_t *usage_json(const generation *g, const tm_server_request *r) {
    json_int_t prompt = 0, completion = 0;
    for (size_t i = 0; i < r->n_jobs; i++) completion += r->jobs[i].n_generated;
    /* n choices of one prompt count its tokens once, as OpenAI counts them. */
    for (size_t i = 0; i < g->parsed.n_prompts; i++) prompt += (json_int_t)g->parsed.prompt_sizes[i];
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", prompt, "completion_tokens", completion, "total_tokens",
                     prompt + completion);
}

static const char *finish_reason(const tm_server_job *j) {
    return j->finish_reason && (!strcmp(j->finish_reason, "stop") || !strcmp(j->finish_reason, "length"))
               ? j->finish_reason
               : "stop";
}

/* ---- signed manifests (--sign) ------------------------------------------ */

/* What `tracemark generate --json` records and tm_provenance_sign_generation
 * reads, for choice k: the model (its file name; the SHA-256 hashed once at
 * start), the choice's seed, the sampling settings and the tenant's
 * watermark facts. Never a key: the watermark is named by its key id. */
static json_t *generation_record(const generation *g, size_t k) {
    const tm_server *s = g->server;
    const tm_sampling_params *p = &g->parsed.sampling;
    const tm_wm_config *config = tm_wm_scheme_config(g->tenant->scheme);
    return json_pack("{s:s, s:s, s:I, s:{s:f, s:i, s:f, s:f, s:f, s:f, s:f, s:i}, s:{s:s, s:s, s:s}}", "model",
                     s->model_path, "model_sha256", s->model_sha256, "seed", (json_int_t)(g->seed + k), "sampling",
                     "temperature", (double)p->temperature, "top_k", (int)p->top_k, "top_p", (double)p->top_p,
                     "min_p", (double)p->min_p, "repeat_penalty", (double)p->repeat_penalty, "frequency_penalty",
                     (double)p->frequency_penalty, "presence_penalty", (double)p->presence_penalty, "penalty_window",
                     (int)p->penalty_window, "watermark", "scheme", tm_wm_kind_name(config->kind), "parameters",
                     g->tenant->description, "key_id", tm_wm_scheme_key_id(g->tenant->scheme));
}

/* Each choice's signed manifest, in choice order. What is signed is the text
 * as the client receives it (bytes that are not UTF-8 became U+FFFD in the
 * JSON), so that the text a client saves verifies. NULL and err on failure. */
static json_t *manifests_json(const generation *g, const tm_server_request *r, tm_error *err) {
    json_t *list = json_array();
    if (!list) return tm_error_set(err, TM_ERR_NOMEM, "out of memory"), NULL;
    for (size_t k = 0; k < r->n_jobs; k++) {
        const tm_server_job *j = &r->jobs[k];
        json_t *text = json_text(j->text ? j->text : "", j->text_size), *record = generation_record(g, k), *object = NULL;
        char *record_text = record ? json_dumps(record, JSON_COMPACT) : NULL, *manifest = NULL;
        size_t manifest_size = 0;
        tm_status status = text && record_text
                               ? tm_provenance_sign_generation(json_string_value(text), json_string_length(text),
                                                               record_text, strlen(record_text), g->server->signer,
                                                               &manifest, &manifest_size, err)
                               : tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        json_error_t jerr;
        if (status == TM_OK && !(object = json_loadb(manifest, manifest_size, JSON_REJECT_DUPLICATES, &jerr)))
            tm_error_set(err, TM_ERR_FORMAT, "the signed manifest does not read back: %s", jerr.text);
        free(manifest);
        free(record_text);
        json_decref(record);
        json_decref(text);
        if (!object || json_array_append_new(list, object) != 0) {
            if (object) tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

/* Build the jobs of a request and hand them to the engine. */
static tm_server_request *start_generation(generation *g, request_error *e) {
    tm_server *s = g->server;
    parsed_request *p = &g->parsed;
    size_t n_jobs = p->n_prompts * p->n;
    tm_server_request *r = tm_server_request_create(n_jobs);
    if (!r) return fail(e, 500, NULL, NULL, "out of memory"), NULL;
    r->stops = (const char *const *)p->stops;
    r->n_stops = p->n_stops;
    int32_t n_ctx = tm_server_engine_context_size(s->engine);
    bool selector = tm_wm_scheme_stage(g->tenant->scheme) == TM_WM_STAGE_SELECTOR;
    if (selector && p->sampling.temperature <= 0) {
        tm_server_request_release(r);
        return fail(e, 400, "temperature", "invalid_value",
                    "this tenant's watermark (%s) selects among sampled tokens and cannot mark greedy output: use a "
                    "temperature above 0",
                    tm_wm_kind_name(tm_wm_scheme_config(g->tenant->scheme)->kind)),
               NULL;
    }
    for (size_t k = 0; k < n_jobs; k++) {
        tm_server_job *j = &r->jobs[k];
        size_t prompt = k / p->n;
        j->n_prompt = p->prompt_sizes[prompt];
        /* Choices of one prompt share its ids (the request owns them through g). */
        j->prompt = malloc(j->n_prompt * sizeof *j->prompt);
        tm_sampling_params params = p->sampling;
        params.seed = g->seed + k;
        tm_sampler *stage = tm_wm_sampler(g->tenant->scheme, params.seed);
        j->chain = stage ? tm_sampler_chain_build(&params, selector ? NULL : stage, selector ? stage : NULL) : NULL;
        if (!j->prompt || !j->chain) {
            tm_server_request_release(r);
            return fail(e, 500, NULL, NULL, "out of memory"), NULL;
        }
        memcpy(j->prompt, p->prompts[prompt], j->n_prompt * sizeof *j->prompt);
        int32_t room = n_ctx - (int32_t)j->n_prompt;
        int32_t wanted = p->max_tokens >= 0 ? p->max_tokens : p->chat ? room : 16;
        j->max_tokens = wanted < room ? wanted : room;
        j->top_logprobs = p->logprobs;
    }
    tm_error err = {0};
    if (tm_server_engine_submit(s->engine, r, &err) != TM_OK) {
        tm_server_request_release(r);
        return fail(e, 503, NULL, "server_busy", "%s", err.message), NULL;
    }
    return r;
}

static bool all_done(const tm_server_request *r) {
    for (size_t i = 0; i < r->n_jobs; i++)
        if (!r->jobs[i].done) return false;
    return true;
}

static const tm_server_job *failed_job(const tm_server_request *r) {
    for (size_t i = 0; i < r->n_jobs; i++)
        if (r->jobs[i].finish_reason && !strcmp(r->jobs[i].finish_reason, "error")) return &r->jobs[i];
    return NULL;
}

static void wait_a_moment(tm_server_request *r) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 50 * 1000 * 1000;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&r->changed, &r->mutex, &until);
}

static json_t *response_json(generation *g, tm_server_request *r) {
    json_t *choices = json_array();
    for (size_t i = 0; i < r->n_jobs; i++) {
        const tm_server_job *j = &r->jobs[i];
        json_t *text = json_text(j->text ? j->text : "", j->text_size);
        json_t *logprobs = g->parsed.logprobs >= 0 ? logprobs_json(g, j, 0, j->n_tokens) : json_null();
        json_t *choice = g->parsed.chat
                             ? json_pack("{s:I, s:{s:s, s:o}, s:o, s:s}", "index", (json_int_t)i, "message", "role",
                                         "assistant", "content", text, "logprobs", logprobs, "finish_reason",
                                         finish_reason(j))
                             : json_pack("{s:o, s:I, s:o, s:s}", "text", text, "index", (json_int_t)i, "logprobs",
                                         logprobs, "finish_reason", finish_reason(j));
        json_array_append_new(choices, choice);
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:o, s:o}", "id", g->id, "object",
                     g->parsed.chat ? "chat.completion" : "text_completion", "created", (json_int_t)g->created, "model",
                     g->server->model_name, "system_fingerprint", "tracemark-0.1.0", "choices", choices, "usage",
                     usage_json(g, r), "tracemark", tracemark_json(g));
}

/* ---- streaming ------------------------------------------------------------- */

static bool out_append(generation *g, const char *data, size_t n) {
    if (g->out_size + n > g->out_capacity) {
        size_t c = g->out_capacity ? g->out_capacity : 4096;
        while (c < g->out_size + n) c *= 2;
        char *grown = realloc(g->out, c);
        if (!grown) return false;
        g->out = grown;
        g->out_capacity = c;
    }
    memcpy(g->out + g->out_size, data, n);
    g->out_size += n;
    return true;
}

static bool out_event(generation *g, json_t *value) {
    char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
    json_decref(value);
    if (!text) return false;
    bool ok = out_append(g, "data: ", 6) && out_append(g, text, strlen(text)) && out_append(g, "\n\n", 2);
    free(text);
    return ok;
}

static json_t *chunk_json(generation *g, json_t *choice) {
    json_t *choices = json_array();
    json_array_append_new(choices, choice);
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:o}", "id", g->id, "object",
                     g->parsed.chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)g->created,
                     "model", g->server->model_name, "system_fingerprint", "tracemark-0.1.0", "choices", choices,
                     "tracemark", tracemark_json(g));
}

/* New events for what the engine has produced since the last call (mutex held). */
static bool stream_collect(generation *g, tm_server_request *r) {
    bool ok = true;
    for (size_t i = 0; i < r->n_jobs && ok; i++) {
        tm_server_job *j = &r->jobs[i];
        if (g->parsed.chat && !g->sent_role[i]) {
            ok = out_event(g, chunk_json(g, json_pack("{s:I, s:{s:s, s:s}, s:n, s:n}", "index", (json_int_t)i, "delta",
                                                      "role", "assistant", "content", "", "logprobs",
                                                      "finish_reason")));
            g->sent_role[i] = true;
        }
        if (j->visible > g->sent_text[i]) {
            size_t to = g->sent_tokens[i];
            while (to < j->n_tokens && j->tokens[to].text_offset < j->visible) to++;
            json_t *text = json_text(j->text + g->sent_text[i], j->visible - g->sent_text[i]);
            json_t *logprobs = g->parsed.logprobs >= 0 ? logprobs_json(g, j, g->sent_tokens[i], to) : json_null();
            json_t *choice = g->parsed.chat ? json_pack("{s:I, s:{s:o}, s:o, s:n}", "index", (json_int_t)i, "delta",
                                                        "content", text, "logprobs", logprobs, "finish_reason")
                                            : json_pack("{s:o, s:I, s:o, s:n}", "text", text, "index", (json_int_t)i,
                                                        "logprobs", logprobs, "finish_reason");
            ok = out_event(g, chunk_json(g, choice));
            g->sent_text[i] = j->visible;
            g->sent_tokens[i] = to;
        }
        if (ok && j->done && !g->sent_finish[i]) {
            if (j->finish_reason && !strcmp(j->finish_reason, "error"))
                ok = out_event(g, error_object(j->error.message, "server_error", NULL, NULL));
            else if (j->finish_reason && !strcmp(j->finish_reason, "cancelled"))
                ok = out_event(g, error_object("the server stopped before the reply was done", "server_error", NULL,
                                               "server_shutting_down"));
            json_t *choice = g->parsed.chat ? json_pack("{s:I, s:{}, s:n, s:s}", "index", (json_int_t)i, "delta",
                                                        "logprobs", "finish_reason", finish_reason(j))
                                            : json_pack("{s:s, s:I, s:n, s:s}", "text", "", "index", (json_int_t)i,
                                                        "logprobs", "finish_reason", finish_reason(j));
            ok = ok && out_event(g, chunk_json(g, choice));
            g->sent_finish[i] = true;
        }
    }
    if (ok && !g->done_sent && all_done(r)) {
        /* With --sign the last chunk before [DONE] (the usage chunk, when
         * asked for) carries every choice's manifest; a reply cut short by an
         * error or a shutdown is not signed. */
        json_t *manifests = NULL;
        bool cut = false;
        for (size_t i = 0; i < r->n_jobs; i++)
            cut = cut || (r->jobs[i].finish_reason && (!strcmp(r->jobs[i].finish_reason, "error") ||
                                                       !strcmp(r->jobs[i].finish_reason, "cancelled")));
        if (g->server->signer && !cut) {
            tm_error err = {0};
            if (!(manifests = manifests_json(g, r, &err)))
                ok = out_event(g, error_object(err.message, "server_error", NULL, "signing_failed"));
        }
        if (ok && (g->parsed.include_usage || manifests)) {
            json_t *tracemark = tracemark_json(g);
            if (tracemark && manifests) json_object_set(tracemark, "manifests", manifests);
            json_t *chunk = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[], s:o}", "id", g->id, "object",
                                      g->parsed.chat ? "chat.completion.chunk" : "text_completion", "created",
                                      (json_int_t)g->created, "model", g->server->model_name, "system_fingerprint",
                                      "tracemark-0.1.0", "choices", "tracemark", tracemark);
            if (chunk && g->parsed.include_usage) json_object_set_new(chunk, "usage", usage_json(g, r));
            ok = out_event(g, chunk);
        }
        json_decref(manifests);
        ok = ok && out_append(g, "data: [DONE]\n\n", 14);
        g->done_sent = true;
    }
    return ok;
}

static ssize_t stream_read(void *cls, uint64_t position, char *buffer, size_t max) {
    (void)position;
    tm_server_request *r = cls;
    generation *g = r->http;
    for (;;) {
        if (g->out_sent < g->out_size) {
            size_t n = g->out_size - g->out_sent < max ? g->out_size - g->out_sent : max;
            memcpy(buffer, g->out + g->out_sent, n);
            g->out_sent += n;
            if (g->out_sent == g->out_size) g->out_sent = g->out_size = 0;
            return (ssize_t)n;
        }
        if (g->done_sent) return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&r->mutex);
        bool ok = stream_collect(g, r);
        if (ok && g->out_size == 0 && !g->done_sent) wait_a_moment(r);
        pthread_mutex_unlock(&r->mutex);
        if (!ok) {
            atomic_store(&r->cancelled, true);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (g->out_size == 0 && client_gone(g->connection)) {
            atomic_store(&r->cancelled, true);
            tm_server_engine_poke(g->server->engine);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

/* The response is gone (sent, or the client went away): cancel what still runs. */
static void stream_done(void *cls) {
    tm_server_request *r = cls;
    generation *g = r->http;
    atomic_store(&r->cancelled, true);
    tm_server_engine_poke(g->server->engine);
    tm_server_request_release(r);
}

static enum MHD_Result handle_generation(struct MHD_Connection *c, http_state *h, const tenant *who, bool chat) {
    tm_server *s = h->server;
    json_error_t jerr;
    json_t *body = json_loadb(h->body ? h->body : "", h->size, JSON_REJECT_DUPLICATES, &jerr);
    if (!body)
        return send_error(c, h, 400, NULL, "invalid_json",
                          "We could not parse the JSON body of your request: %s (line %d, column %d)", jerr.text,
                          jerr.line, jerr.column);
    if (!json_is_object(body)) {
        json_decref(body);
        return send_error(c, h, 400, NULL, "invalid_json", "The body of your request must be a JSON object");
    }
    generation *g = calloc(1, sizeof *g);
    if (!g) {
        json_decref(body);
        return send_error(c, h, 500, NULL, NULL, "out of memory");
    }
    g->server = s;
    g->tenant = who;
    g->connection = c;
    g->created = time(NULL);
    request_error e = {0};
    bool parsed = parse_request(s, body, chat, &g->parsed, &e);
    json_decref(body);
    if (!parsed) {
        generation_free(g);
        return send_error(c, h, e.status, e.param, e.code, "%s", e.message);
    }
    unsigned char random[12];
    uint64_t seed = 0;
    if (RAND_bytes(random, sizeof random) != 1 || (!g->parsed.seed_given && RAND_bytes((unsigned char *)&seed, sizeof seed) != 1)) {
        generation_free(g);
        return send_error(c, h, 500, NULL, NULL, "OpenSSL's random generator failed");
    }
    g->seed = g->parsed.seed_given ? g->parsed.sampling.seed : seed & ((UINT64_C(1) << 53) - 1);
    int n = snprintf(g->id, sizeof g->id, "%s-", chat ? "chatcmpl" : "cmpl");
    for (size_t i = 0; i < sizeof random; i++) n += snprintf(g->id + n, sizeof g->id - (size_t)n, "%02x", random[i]);
    tm_server_request *r = start_generation(g, &e);
    if (!r) {
        generation_free(g);
        return send_error(c, h, e.status, e.param, e.code, "%s", e.message);
    }
    r->http = g;
    r->http_free = generation_free;
    if (g->parsed.stream) {
        size_t jobs = r->n_jobs;
        g->sent_text = calloc(jobs, sizeof *g->sent_text);
        g->sent_tokens = calloc(jobs, sizeof *g->sent_tokens);
        g->sent_finish = calloc(jobs, sizeof *g->sent_finish);
        g->sent_role = calloc(jobs, sizeof *g->sent_role);
        struct MHD_Response *response =
            g->sent_text && g->sent_tokens && g->sent_finish && g->sent_role
                ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, r, stream_done)
                : NULL;
        if (!response) {
            atomic_store(&r->cancelled, true);
            tm_server_request_release(r);
            return send_error(c, h, 500, NULL, NULL, "out of memory");
        }
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        count_status(s, h, 200);
        enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, response);
        MHD_destroy_response(response);
        return ok;
    }
    /* Not streaming: wait here (this connection's own thread), watching the client. */
    bool gone = false;
    pthread_mutex_lock(&r->mutex);
    while (!all_done(r)) {
        wait_a_moment(r);
        if (!all_done(r) && client_gone(c)) {
            gone = true;
            break;
        }
    }
    pthread_mutex_unlock(&r->mutex);
    if (gone) {
        atomic_store(&r->cancelled, true);
        tm_server_engine_poke(s->engine);
        tm_server_request_release(r);
        h->status = 499;
        return MHD_NO; /* closes the connection */
    }
    enum MHD_Result result;
    const tm_server_job *failed = failed_job(r);
    bool cancelled = false;
    for (size_t i = 0; i < r->n_jobs; i++) cancelled = cancelled || !strcmp(r->jobs[i].finish_reason, "cancelled");
    if (failed) result = send_error(c, h, 500, NULL, NULL, "generation failed: %s", failed->error.message);
    else if (cancelled) result = send_error(c, h, 503, NULL, "server_shutting_down", "the server stopped before the reply was done");
    else {
        tm_error err = {0};
        json_t *manifests = s->signer ? manifests_json(g, r, &err) : NULL;
        if (s->signer && !manifests)
            result = send_error(c, h, 500, NULL, "signing_failed", "signing the reply failed: %s", err.message);
        else {
            json_t *response = response_json(g, r);
            if (response && manifests) json_object_set(json_object_get(response, "tracemark"), "manifests", manifests);
            result = send_json(c, h, 200, response);
        }
        json_decref(manifests);
    }
    tm_server_request_release(r);
    return result;
}

/* ---- /v1/detect ------------------------------------------------------------ */

static json_t *number_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *verdict_json(const tenant *t, const tm_detection *d) {
    return json_pack("{s:s, s:b, s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I}, s:s, s:o, s:o, s:o, s:f, s:o}", "tenant",
                     t->name, "detected", d->detected, "scheme", tm_wm_kind_name(d->kind), "parameters", d->parameters,
                     "key_id", d->key_id, "tokens", "total", (json_int_t)d->n_tokens, "scored",
                     (json_int_t)d->n_scored, "ignored_context", (json_int_t)d->n_ignored_context, "ignored_repeated",
                     (json_int_t)d->n_ignored_repeated, "statistic_name",
                     d->statistic_name ? d->statistic_name : "", "statistic", number_or_null(d->statistic), "expected",
                     number_or_null(d->expected), "z", number_or_null(d->z), "p_value",
                     tm_stat_p_from_log(d->log_p_decision), "log_p_value", number_or_null(d->log_p_decision));
}

static enum MHD_Result handle_detect(struct MHD_Connection *c, http_state *h) {
    tm_server *s = h->server;
    json_error_t jerr;
    json_t *body = json_loadb(h->body ? h->body : "", h->size, JSON_REJECT_DUPLICATES, &jerr);
    if (!body)
        return send_error(c, h, 400, NULL, "invalid_json", "We could not parse the JSON body of your request: %s",
                          jerr.text);
    json_t *text = json_object_get(body, "text"), *prompt = json_object_get(body, "prompt");
    json_t *only = json_object_get(body, "tenant");
    enum MHD_Result result;
    if (!json_is_object(body) || !text) {
        result = send_error(c, h, 400, "text", "missing_required_parameter", "'text' is required");
    } else if (!json_is_string(text) || (prompt && !json_is_null(prompt) && !json_is_string(prompt)) ||
               (only && !json_is_null(only) && !json_is_string(only))) {
        result = send_error(c, h, 400, !json_is_string(text) ? "text" : json_is_string(prompt) ? "tenant" : "prompt",
                            "invalid_type", "'text', 'prompt' and 'tenant' must be strings");
    } else {
        const char *prompt_text = json_is_string(prompt) ? json_string_value(prompt) : NULL;
        const char *tenant_name = json_is_string(only) ? json_string_value(only) : NULL;
        json_t *results = json_array();
        double fpr = 1e-3, best_log_p = INFINITY;
        size_t tested = 0;
        const tenant *best = NULL;
        tm_error err = {0};
        bool failed = false;
        for (size_t i = 0; i < s->n_tenants && !failed; i++) {
            const tenant *t = &s->tenants[i];
            if (tenant_name && strcmp(tenant_name, t->name) != 0) continue;
            tm_detection d;
            if (tm_detect_text(t->detector, json_string_value(text), json_string_length(text), prompt_text, &d, &err) !=
                TM_OK) {
                failed = true;
                break;
            }
            tested++;
            json_array_append_new(results, verdict_json(t, &d));
            if (d.log_p_decision < best_log_p) best_log_p = d.log_p_decision, best = t;
        }
        if (failed) {
            json_decref(results);
            result = send_error(c, h, 400, "text", "invalid_value", "%s", err.message);
        } else if (tested == 0) {
            json_decref(results);
            result = send_error(c, h, 404, "tenant", "tenant_not_found", "no tenant of that name");
        } else {
            /* Attribution: the best tenant's p corrected for the number tested (Bonferroni). */
            double family = best_log_p + log((double)tested);
            bool detected = best && family <= log(fpr);
            result = send_json(c, h, 200,
                               json_pack("{s:s, s:b, s:s?, s:f, s:f, s:I, s:o}", "object", "tracemark.detection",
                                         "detected", detected, "tenant", detected ? best->name : NULL, "p_value",
                                         tm_stat_p_from_log(family > 0 ? 0 : family), "fpr", fpr, "tenants_tested",
                                         (json_int_t)tested, "results", results));
        }
    }
    json_decref(body);
    return result;
}

/* ---- /v1/verify ------------------------------------------------------------ */

/* A verdict with the fields of `tracemark verify --json` (cli/verify.c;
 * tests/server/run.sh compares the two), plus "object" and, in "watermark",
 * the tenant whose key gave the soft binding and how many tenants were tried.
 * tested > 1: the best tenant's decision p is corrected for the number tried
 * (Bonferroni), as verify corrects for several --key. */
static json_t *verification_json(const tm_verification *v, const char *source, const tenant *t, size_t tested) {
    json_t *root = json_pack(
        "{s:s, s:b, s:o, s:s, s:{s:s?}, s:{s:b, s:b}, s:{s:o, s:b}, s:{s:b, s:b, s:s, s:I}}", "object",
        "tracemark.verification", "verified", v->verified, "failed_check",
        v->verified ? json_null() : json_string(tm_verify_failure_name(v->failure)), "reason", v->reason, "manifest",
        "source", source, "signature", "checked", v->signature_checked, "valid", v->signature_valid, "signer",
        "fingerprint", v->signer[0] ? json_string(v->signer) : json_null(), "trusted", v->signer_trusted, "content",
        "checked", v->content_checked, "unchanged", v->content_unchanged, "sha256", v->content_sha256, "length",
        (json_int_t)v->content_length);
    if (!root || !v->has_detection || !t) return root;
    const tm_detection *d = &v->detection;
    double fpr = 1e-3, log_p = d->log_p_decision + log((double)tested);
    if (log_p > 0) log_p = 0;
    json_t *wm = json_pack("{s:b, s:s, s:s, s:s, s:o, s:f, s:f, s:o, s:I, s:f, s:s, s:I}", "detected",
                           tested > 1 ? log_p <= log(fpr) : d->detected, "scheme", tm_wm_kind_name(d->kind),
                           "parameters", d->parameters, "key_id", d->key_id, "key_id_matches_manifest",
                           v->manifest_watermark_key_id[0] ? json_boolean(!strcmp(v->manifest_watermark_key_id, d->key_id))
                                                           : json_null(),
                           "p_value", d->p, "p_decision", tm_stat_p_from_log(log_p), "z", number_or_null(d->z),
                           "scored_tokens", (json_int_t)d->n_scored, "fpr", fpr, "tenant", t->name, "tenants_tested",
                           (json_int_t)tested);
    json_object_set_new(root, "watermark", wm ? wm : json_null());
    return root;
}

/* {"text", "manifest"?}: the manifest as an object or as its JSON text;
 * absent or null: the one embedded in the text. The verdict uses the
 * server's trusted signers (its own --sign key and --trust) and, for the
 * soft binding, the tenant whose key id the manifest names, else every
 * tenant (the best one reported). "Not verified" is a verdict (200). */
static enum MHD_Result handle_verify(struct MHD_Connection *c, http_state *h) {
    tm_server *s = h->server;
    if (!s->trust)
        return send_error(c, h, 404, NULL, "verify_not_enabled",
                          "this server trusts no signer: start it with --sign KEY or --trust PUB to verify");
    json_error_t jerr;
    json_t *body = json_loadb(h->body ? h->body : "", h->size, JSON_REJECT_DUPLICATES, &jerr);
    if (!body)
        return send_error(c, h, 400, NULL, "invalid_json", "We could not parse the JSON body of your request: %s",
                          jerr.text);
    json_t *text = json_object_get(body, "text"), *manifest = json_object_get(body, "manifest");
    char *manifest_text = NULL;
    size_t manifest_size = 0;
    enum MHD_Result result;
    if (!json_is_object(body) || !text) {
        result = send_error(c, h, 400, "text", "missing_required_parameter", "'text' is required");
        goto done;
    }
    if (!json_is_string(text)) {
        result = send_error(c, h, 400, "text", "invalid_type", "'text' must be a string");
        goto done;
    }
    if (manifest && !json_is_null(manifest)) {
        if (json_is_object(manifest)) manifest_text = json_dumps(manifest, JSON_COMPACT | JSON_PRESERVE_ORDER);
        else if (json_is_string(manifest) && (manifest_text = malloc(json_string_length(manifest) + 1))) {
            /* All of its bytes, a NUL inside included: the parser then names it. */
            memcpy(manifest_text, json_string_value(manifest), json_string_length(manifest));
            manifest_text[json_string_length(manifest)] = '\0';
        } else if (!json_is_string(manifest)) {
            result = send_error(c, h, 400, "manifest", "invalid_type",
                                "'manifest' must be the manifest object, its JSON text, or null (embedded)");
            goto done;
        }
        if (!manifest_text) {
            result = send_error(c, h, 500, NULL, NULL, "out of memory");
            goto done;
        }
        manifest_size = json_is_string(manifest) ? json_string_length(manifest) : strlen(manifest_text);
    }
    const char *content = json_string_value(text);
    size_t size = json_string_length(text);
    tm_error err = {0};
    tm_verification first, v;
    /* Which tenants to score: the one whose key id the manifest names (the
     * manifest is read without a detector first), else all of them. */
    if (tm_provenance_verify(content, size, manifest_text, manifest_size, s->trust, NULL, &first, &err) != TM_OK) {
        result = send_error(c, h, 400, "text", "invalid_value", "%s", err.message);
        goto done;
    }
    const tenant *named = NULL, *best = NULL;
    for (size_t i = 0; i < s->n_tenants && first.manifest_watermark_key_id[0]; i++)
        if (!strcmp(tm_wm_scheme_key_id(s->tenants[i].scheme), first.manifest_watermark_key_id)) named = &s->tenants[i];
    size_t tested = 0;
    v = first;
    for (size_t i = 0; i < s->n_tenants; i++) {
        const tenant *t = &s->tenants[i];
        if (named && t != named) continue;
        tm_verification one;
        if (tm_provenance_verify(content, size, manifest_text, manifest_size, s->trust, t->detector, &one, &err) !=
            TM_OK) {
            result = send_error(c, h, 400, "text", "invalid_value", "%s", err.message);
            goto done;
        }
        tested++;
        if (!best || one.detection.log_p_decision < v.detection.log_p_decision) {
            v = one;
            best = t;
        }
    }
    result = send_json(c, h, 200,
                       verification_json(&v, manifest_text ? "request" : v.embedded ? "embedded" : NULL, best, tested));
done:
    free(manifest_text);
    json_decref(body);
    return result;
}

/* ---- /metrics, /health, /v1/models ------------------------------------------ */

static enum MHD_Result handle_metrics(struct MHD_Connection *c, http_state *h) {
    tm_server *s = h->server;
    tm_server_engine_stats st;
    tm_server_engine_stats_get(s->engine, &st);
    size_t capacity = 16384, n = 0;
    char *out = malloc(capacity);
    if (!out) return MHD_NO;
#define EMIT(...) (n += (size_t)snprintf(out + n, n < capacity ? capacity - n : 0, __VA_ARGS__))
    EMIT("# HELP tracemark_requests_total HTTP requests by endpoint and status.\n# TYPE tracemark_requests_total counter\n");
    pthread_mutex_lock(&s->lock);
    for (int e = 0; e < EP_COUNT; e++)
        for (int k = 0; k < N_CODES; k++)
            if (s->requests[e][k])
                EMIT("tracemark_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n", endpoint_names[e], status_codes[k],
                     (unsigned long long)s->requests[e][k]);
    EMIT("# HELP tracemark_request_duration_seconds Time from request to last byte.\n"
         "# TYPE tracemark_request_duration_seconds histogram\n");
    for (int e = 0; e < 3; e++) {
        uint64_t cumulative = 0;
        for (int b = 0; b <= N_BUCKETS; b++) {
            cumulative += s->latency_counts[e][b];
            if (b < N_BUCKETS)
                EMIT("tracemark_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n", endpoint_names[e],
                     latency_buckets[b], (unsigned long long)cumulative);
            else
                EMIT("tracemark_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n"
                     "tracemark_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n"
                     "tracemark_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
                     endpoint_names[e], (unsigned long long)cumulative, endpoint_names[e], s->latency_sum[e],
                     endpoint_names[e], (unsigned long long)cumulative);
        }
    }
    int in_flight = s->in_flight;
    pthread_mutex_unlock(&s->lock);
    EMIT("# HELP tracemark_prompt_tokens_total Prompt tokens evaluated.\n# TYPE tracemark_prompt_tokens_total counter\n"
         "tracemark_prompt_tokens_total %llu\n"
         "# HELP tracemark_generated_tokens_total Tokens generated (all watermarked).\n"
         "# TYPE tracemark_generated_tokens_total counter\ntracemark_generated_tokens_total %llu\n"
         "# HELP tracemark_decode_steps_total Batched decode steps.\n# TYPE tracemark_decode_steps_total counter\n"
         "tracemark_decode_steps_total %llu\n"
         "# HELP tracemark_decode_rows_total Sequences summed over decode steps (rows / steps = mean batch).\n"
         "# TYPE tracemark_decode_rows_total counter\ntracemark_decode_rows_total %llu\n"
         "# HELP tracemark_sequences_total Sequences admitted to a slot.\n# TYPE tracemark_sequences_total counter\n"
         "tracemark_sequences_total %llu\n"
         "# HELP tracemark_sequences_cancelled_total Sequences ended early: client gone or shutdown.\n"
         "# TYPE tracemark_sequences_cancelled_total counter\ntracemark_sequences_cancelled_total %llu\n"
         "# HELP tracemark_slots Slots (--parallel).\n# TYPE tracemark_slots gauge\ntracemark_slots %d\n"
         "# HELP tracemark_slots_busy Slots holding a sequence.\n# TYPE tracemark_slots_busy gauge\ntracemark_slots_busy %d\n"
         "# HELP tracemark_queue_length Sequences waiting for a slot.\n# TYPE tracemark_queue_length gauge\n"
         "tracemark_queue_length %d\n"
         "# HELP tracemark_requests_in_flight HTTP requests being served.\n# TYPE tracemark_requests_in_flight gauge\n"
         "tracemark_requests_in_flight %d\n",
         (unsigned long long)st.prompt_tokens, (unsigned long long)st.generated_tokens,
         (unsigned long long)st.decode_steps, (unsigned long long)st.batched_rows, (unsigned long long)st.sequences,
         (unsigned long long)st.cancelled, st.slots, st.busy_slots, st.queued, in_flight);
    EMIT("# HELP tracemark_time_to_first_token_seconds From submission to a sequence's first token (queue and prompt).\n"
         "# TYPE tracemark_time_to_first_token_seconds histogram\n");
    static const double ttft[TM_SERVER_TTFT_COUNT] = TM_SERVER_TTFT_BUCKETS;
    uint64_t cumulative = 0;
    for (int b = 0; b < TM_SERVER_TTFT_COUNT; b++) {
        cumulative += st.first_token[b];
        EMIT("tracemark_time_to_first_token_seconds_bucket{le=\"%g\"} %llu\n", ttft[b], (unsigned long long)cumulative);
    }
    cumulative += st.first_token[TM_SERVER_TTFT_COUNT];
    EMIT("tracemark_time_to_first_token_seconds_bucket{le=\"+Inf\"} %llu\ntracemark_time_to_first_token_seconds_sum %.6f\n"
         "tracemark_time_to_first_token_seconds_count %llu\n",
         (unsigned long long)cumulative, st.first_token_sum, (unsigned long long)cumulative);
#undef EMIT
    if (n >= capacity) n = capacity - 1;
    return send_text(c, h, 200, out, n, "text/plain; version=0.0.4; charset=utf-8");
}

static json_t *model_json(const tm_server *s) {
    return json_pack("{s:s, s:s, s:I, s:s}", "id", s->model_name, "object", "model", "created", (json_int_t)s->created,
                     "owned_by", "tracemark");
}

/* ---- dispatch ------------------------------------------------------------------ */

static int endpoint_of(const char *url) {
    if (!strcmp(url, "/v1/completions")) return EP_COMPLETIONS;
    if (!strcmp(url, "/v1/chat/completions")) return EP_CHAT;
    if (!strcmp(url, "/v1/detect")) return EP_DETECT;
    if (!strcmp(url, "/v1/verify")) return EP_VERIFY;
    if (!strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11)) return EP_MODELS;
    if (!strcmp(url, "/health")) return EP_HEALTH;
    if (!strcmp(url, "/metrics")) return EP_METRICS;
    return EP_OTHER;
}

static enum MHD_Result dispatch(struct MHD_Connection *c, http_state *h, const char *url, const char *method) {
    tm_server *s = h->server;
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    switch (h->endpoint) {
    case EP_HEALTH: {
        if (!get) return send_error(c, h, 405, NULL, "method_not_allowed", "use GET");
        tm_server_engine_stats st;
        tm_server_engine_stats_get(s->engine, &st);
        pthread_mutex_lock(&s->lock);
        bool draining = s->draining;
        pthread_mutex_unlock(&s->lock);
        return send_json(c, h, draining ? 503 : 200,
                         json_pack("{s:s, s:I, s:I, s:I}", "status", draining ? "draining" : "ok", "slots_idle",
                                   (json_int_t)(st.slots - st.busy_slots), "slots_busy", (json_int_t)st.busy_slots,
                                   "queued", (json_int_t)st.queued));
    }
    case EP_METRICS:
        if (!get) return send_error(c, h, 405, NULL, "method_not_allowed", "use GET");
        return handle_metrics(c, h);
    case EP_OTHER:
        return send_error(c, h, 404, NULL, "not_found", "Unknown request URL: %s %.200s", method, url);
    default: break;
    }
    bool authorised;
    const tenant *who = authenticate(s, c, &authorised);
    if (!authorised)
        return send_error(c, h, 401, NULL, "invalid_api_key",
                          "Incorrect or missing API key: send 'Authorization: Bearer <key>'");
    if (h->endpoint == EP_MODELS) {
        if (!get) return send_error(c, h, 405, NULL, "method_not_allowed", "use GET");
        if (url[10] == '/') {
            if (strcmp(url + 11, s->model_name) != 0)
                return send_error(c, h, 404, "model", "model_not_found", "The model '%.200s' does not exist", url + 11);
            return send_json(c, h, 200, model_json(s));
        }
        json_t *list = json_array();
        json_array_append_new(list, model_json(s));
        return send_json(c, h, 200, json_pack("{s:s, s:o}", "object", "list", "data", list));
    }
    if (!post) return send_error(c, h, 405, NULL, "method_not_allowed", "use POST");
    pthread_mutex_lock(&s->lock);
    bool draining = s->draining;
    pthread_mutex_unlock(&s->lock);
    if (draining) return send_error(c, h, 503, NULL, "server_shutting_down", "the server is shutting down");
    if (h->endpoint == EP_DETECT) return handle_detect(c, h);
    if (h->endpoint == EP_VERIFY) return handle_verify(c, h);
    return handle_generation(c, h, who, h->endpoint == EP_CHAT);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)version;
    tm_server *s = cls;
    http_state *h = *state;
    if (!h) {
        h = calloc(1, sizeof *h);
        if (!h) return MHD_NO;
        h->server = s;
        h->start = tm_seconds_now();
        h->endpoint = endpoint_of(url);
        *state = h;
        pthread_mutex_lock(&s->lock);
        s->in_flight++;
        h->counted = true;
        pthread_mutex_unlock(&s->lock);
        /* A body a little over the cap is read and dropped, so that the
         * client, still writing, sees the 413 rather than a reset; a huge one
         * is refused at once and the connection closed. */
        const char *length = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long announced = length ? strtoull(length, NULL, 10) : 0;
        if (announced > s->max_body) h->too_large = true;
        if (announced / 16 > s->max_body) {
            return send_error(c, h, 413, NULL, "request_too_large", "The request body is larger than %zu bytes",
                              s->max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!h->too_large && h->size + *upload_size > s->max_body) {
            h->too_large = true;
            free(h->body);
            h->body = NULL;
        }
        if (!h->too_large) {
            if (h->size + *upload_size + 1 > h->capacity) {
                size_t capacity = h->capacity ? h->capacity : 4096;
                while (capacity < h->size + *upload_size + 1) capacity *= 2;
                char *grown = realloc(h->body, capacity);
                if (!grown) return MHD_NO;
                h->body = grown;
                h->capacity = capacity;
            }
            memcpy(h->body + h->size, upload, *upload_size);
            h->size += *upload_size;
            h->body[h->size] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (h->too_large)
        return send_error(c, h, 413, NULL, "request_too_large", "The request body is larger than %zu bytes", s->max_body);
    return dispatch(c, h, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why) {
    (void)c;
    (void)why;
    tm_server *s = cls;
    http_state *h = *state;
    if (!h) return;
    double seconds = tm_seconds_now() - h->start;
    pthread_mutex_lock(&s->lock);
    if (h->endpoint <= EP_DETECT && h->status == 200) {
        int b = 0;
        while (b < N_BUCKETS && seconds > latency_buckets[b]) b++;
        s->latency_counts[h->endpoint][b]++;
        s->latency_sum[h->endpoint] += seconds;
    }
    if (h->counted && --s->in_flight == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
    free(h->body);
    free(h);
    *state = NULL;
}

static void quiet_logger(void *cls, const char *format, va_list args) {
    (void)cls;
    (void)format;
    (void)args;
}

/* ---- start and stop ------------------------------------------------------------ */

void tm_server_options_default(tm_server_options *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->parallel = 1;
    o->max_body_bytes = 1 << 20;
    o->max_queue = 256;
}

static void free_server(tm_server *s) {
    if (!s) return;
    tm_server_engine_free(s->engine);
    for (size_t i = 0; i < s->n_tenants; i++) {
        tm_detector_free(s->tenants[i].detector);
        tm_wm_scheme_free(s->tenants[i].scheme);
        tm_wm_key_free(s->tenants[i].key);
        OPENSSL_cleanse(s->tenants[i].api_key_digest, sizeof s->tenants[i].api_key_digest);
    }
    free(s->tenants);
    if (s->api_digests) OPENSSL_cleanse(s->api_digests, s->n_api_keys * sizeof *s->api_digests);
    free(s->api_digests);
    tm_tokenizer_free(s->tokenizer);
    tm_model_free(s->model);
    tm_signing_key_free(s->signer);
    tm_trust_store_free(s->trust);
    free(s->model_path);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static tm_status load_tenant(tenant *t, const char *name, const char *api_key, const char *watermark, const char *key,
                             const tm_tokenizer *tokenizer, tm_error *err) {
    snprintf(t->name, sizeof t->name, "%s", name);
    if (api_key) {
        SHA256((const unsigned char *)api_key, strlen(api_key), t->api_key_digest);
        t->has_api_key = true;
    }
    tm_wm_config config;
    tm_detect_options detect;
    tm_detect_options_default(&detect);
    tm_status status = tm_wm_config_load(&config, watermark, err);
    if (status == TM_OK) status = tm_wm_key_read(&t->key, key, err);
    if (status == TM_OK) status = tm_wm_scheme_create(&t->scheme, &config, t->key, err);
    if (status == TM_OK) {
        const tm_wm_key *keys[1] = {t->key};
        status = tm_detector_create(&t->detector, tokenizer, &config, keys, 1, &detect, err);
    }
    if (status == TM_OK) tm_wm_config_describe(&config, t->description, sizeof t->description);
    if (status != TM_OK) tm_error_prefix(err, "tenant %s", name);
    return status;
}

/* --sign and --trust: the key replies are signed with (mode 0600, read
 * once), and the signers /v1/verify trusts: that key's public half and
 * every --trust path. Neither given: no signing and no /v1/verify. */
static tm_status start_provenance(tm_server *s, const tm_server_options *o, tm_error *err) {
    tm_status status;
    if (o->signing_key_path && (status = tm_signing_key_read(&s->signer, o->signing_key_path, err)) != TM_OK)
        return tm_error_prefix(err, "--sign");
    if (!s->signer && !o->n_trust_paths) return TM_OK;
    if ((status = tm_trust_store_create(&s->trust, err)) != TM_OK) return status;
    if (s->signer) {
        tm_public_key *own = NULL;
        if ((status = tm_public_key_from_signing_key(&own, s->signer, err)) != TM_OK ||
            (status = tm_trust_store_add_key(s->trust, own, err)) != TM_OK)
            return status;
    }
    for (size_t i = 0; i < o->n_trust_paths; i++)
        if ((status = tm_trust_store_add_path(s->trust, o->trust_paths[i], err)) != TM_OK)
            return tm_error_prefix(err, "--trust");
    return TM_OK;
}

tm_status tm_server_start(tm_server **out, const tm_server_options *o, tm_error *err) {
    *out = NULL;
    if (!o->model_path) return tm_error_set(err, TM_ERR_ARGUMENT, "no model given");
    bool single = o->watermark_path || o->key_path;
    if (single == (o->tenants_path != NULL) || (single && (!o->watermark_path || !o->key_path)))
        return tm_error_set(err, TM_ERR_ARGUMENT, "give --watermark and --key, or --tenants (every response is watermarked)");
    if (o->tenants_path && o->api_keys_path)
        return tm_error_set(err, TM_ERR_ARGUMENT, "with --tenants the API keys come from the tenants file, not --api-keys");
    tm_server *s = tm_alloc_array(1, sizeof *s, err);
    if (!s) return TM_ERR_NOMEM;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    s->max_body = o->max_body_bytes ? o->max_body_bytes : 1 << 20;
    s->created = time(NULL);
    /* The signing key and trusted signers first, so that a bad key (or one
     * others can read) fails before the model is loaded. */
    tm_status status = start_provenance(s, o, err);
    if (status != TM_OK) goto fail;
    status = tm_model_load(&s->model, o->model_path, err);
    if (status == TM_OK)
        status = tm_model_tokenizer(&s->tokenizer, s->model, o->tokenizer_path && *o->tokenizer_path ? o->tokenizer_path : NULL, err);
    if (status != TM_OK) goto fail;
    if (!(s->model_path = strdup(o->model_path))) {
        status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* Manifests name the model by its hash: once here, not per reply. */
    if (s->signer && (status = tm_sha256_file_hex(o->model_path, s->model_sha256, err)) != TM_OK) goto fail;
    if (o->model_name) snprintf(s->model_name, sizeof s->model_name, "%s", o->model_name);
    else {
        const char *base = strrchr(o->model_path, '/');
        snprintf(s->model_name, sizeof s->model_name, "%s", base ? base + 1 : o->model_path);
    }
    tm_error chat_err = {0};
    tm_status chat = tm_chat_template_for_model(s->model, o->chat_template, &s->chat_template, &chat_err);
    if (chat == TM_OK) s->has_chat = true;
    else if (o->chat_template || chat != TM_ERR_NOT_FOUND) {
        *err = chat_err;
        status = chat_err.code;
        goto fail;
    }
    if (o->tenants_path) {
        tm_tenant_entry *entries = NULL;
        size_t n = 0;
        if ((status = tm_tenants_load(o->tenants_path, &entries, &n, err)) != TM_OK) goto fail;
        s->tenants = calloc(n, sizeof *s->tenants);
        if (!s->tenants) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        for (size_t i = 0; status == TM_OK && i < n; i++, s->n_tenants++)
            status = load_tenant(&s->tenants[i], entries[i].name, entries[i].api_key, entries[i].watermark_path,
                                 entries[i].key_path, s->tokenizer, err);
        if (status != TM_OK && s->tenants) s->n_tenants++; /* free the half-loaded one too */
        tm_tenant_entries_free(entries, n);
        if (status != TM_OK) goto fail;
        s->authenticate = true;
    } else {
        s->tenants = calloc(1, sizeof *s->tenants);
        if (!s->tenants) {
            status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            goto fail;
        }
        s->n_tenants = 1;
        if ((status = load_tenant(&s->tenants[0], "default", NULL, o->watermark_path, o->key_path, s->tokenizer, err)))
            goto fail;
        if (o->api_keys_path) {
            char **keys = NULL;
            size_t n = 0;
            if ((status = tm_api_keys_load(o->api_keys_path, &keys, &n, err)) != TM_OK) goto fail;
            s->api_digests = calloc(n, sizeof *s->api_digests);
            if (!s->api_digests) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            for (size_t i = 0; status == TM_OK && i < n; i++)
                SHA256((const unsigned char *)keys[i], strlen(keys[i]), s->api_digests[i]);
            s->n_api_keys = status == TM_OK ? n : 0;
            tm_api_keys_free(keys, n);
            if (status != TM_OK) goto fail;
            s->authenticate = true;
        }
    }
    status = tm_server_engine_create(&s->engine, s->model, s->tokenizer, o->parallel ? o->parallel : 1, o->n_ctx,
                                     o->n_threads, o->max_queue, err);
    if (status != TM_OK) goto fail;
    /* Bind only where asked: a numeric address, loopback by default. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *address = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)o->port);
    const char *host = o->host ? o->host : "127.0.0.1";
    if (getaddrinfo(host, port, &hints, &address) != 0 || !address) {
        status = tm_error_set(err, TM_ERR_ARGUMENT, "--host %s: not a numeric IPv4 or IPv6 address", host);
        goto fail;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | (address->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->daemon = MHD_start_daemon(flags, o->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, address->ai_addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)512, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)120, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, quiet_logger, NULL, MHD_OPTION_END);
    freeaddrinfo(address);
    if (!s->daemon) {
        status = tm_error_set(err, TM_ERR_IO, "could not listen on %s port %u (in use, or not allowed)", host,
                              (unsigned)o->port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : o->port;
    *out = s;
    return TM_OK;
fail:
    free_server(s);
    return status;
}

uint16_t tm_server_port(const tm_server *s) { return s->port; }

const char *tm_server_signer(const tm_server *s) { return s->signer ? tm_signing_key_fingerprint(s->signer) : NULL; }

void tm_server_stop(tm_server *s, double drain_seconds) {
    if (!s) return;
    /* Stop accepting, let what is in flight finish, then end the rest. */
    MHD_quiesce_daemon(s->daemon);
    pthread_mutex_lock(&s->lock);
    s->draining = true;
    double deadline = tm_seconds_now() + drain_seconds;
    while (s->in_flight > 0 && tm_seconds_now() < deadline) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->idle, &s->lock, &until);
    }
    pthread_mutex_unlock(&s->lock);
    /* Whatever still runs ends as cancelled: the engine stops first so that
     * waiting handlers wake and answer before the connections close. */
    tm_server_engine_stop(s->engine);
    MHD_stop_daemon(s->daemon);
    free_server(s);
}
