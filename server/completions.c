/* /v1/completions and /v1/chat/completions: the request parsed and checked
 * field by field into OpenAI's error objects, prompts and chat messages
 * turned into token ids, one engine job per returned choice, and the
 * replies built in OpenAI's shapes (whole responses, server-sent-event
 * chunks, logprobs, usage) with the tracemark watermark record and, with
 * --sign, each choice's signed manifest. Generation itself is the engine's
 * (engine.c); a handler only builds jobs, waits for them and watches
 * whether its client is still there, so that a client that goes away frees
 * its slot at the next step. It must never print, exit, or put a key in a
 * response or a manifest. */
#include "server_internal.h"

#include "tracemark/provenance.h"

#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_JOBS = 64, MAX_N = 16, MAX_MESSAGES = 1024, MAX_STOP_BYTES = 256, MAX_PROMPT_IDS = 1 << 20 };

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


/* ---- parsing ------------------------------------------------------------- */

/* The request as parsed (server_internal.h); the short names are this file's. */
typedef tm_server_generation_request parsed_request;
typedef tm_server_request_error request_error;

static void parsed_free(parsed_request *p) {
    for (size_t i = 0; i < p->n_stops; i++) free(p->stops[i]);
    for (size_t i = 0; i < p->n_prompts; i++) free(p->prompts[i]);
    free(p->prompts);
    free(p->prompt_sizes);
    memset(p, 0, sizeof *p);
}

void tm_server_generation_request_free(tm_server_generation_request *request) { parsed_free(request); }

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

static bool encode_prompt(const tm_server_parse_context *s, parsed_request *p, const char *text, size_t size,
                          request_error *e) {
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

static bool parse_prompt(const tm_server_parse_context *s, json_t *prompt, parsed_request *p, request_error *e) {
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

static bool parse_messages(const tm_server_parse_context *s, json_t *messages, parsed_request *p, request_error *e) {
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

static bool parse_request(const tm_server_parse_context *s, json_t *body, bool chat, parsed_request *p,
                          request_error *e) {
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
    /* Seeds are what `tracemark generate --seed` takes (0 .. 2^63 - 1), so that
     * a reply's reported seed reproduces it there: a negative seed was taken
     * as 2^64 + seed and reported negative, which generate refuses. */
    if (!get_integer(body, "seed", 0, INT64_MAX, &integer, &p->seed_given, e)) return false;
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
    /* Choice k takes seed + k: the last must stay a seed too (no wrap). */
    if (p->seed_given && p->sampling.seed > (uint64_t)INT64_MAX - (p->n_prompts * p->n - 1))
        return fail(e, 400, "seed", "invalid_value", "'seed' plus the number of choices must stay below 2^63");
    int32_t n_ctx = s->n_ctx;
    for (size_t i = 0; i < p->n_prompts; i++)
        if (p->prompt_sizes[i] >= (size_t)n_ctx)
            return fail(e, 400, chat ? "messages" : "prompt", "context_length_exceeded",
                        "This model's maximum context length is %d tokens; the prompt has %zu", n_ctx,
                        p->prompt_sizes[i]);
    return true;
}

bool tm_server_parse_generation(const tm_server_parse_context *context, const char *body, size_t size, bool chat,
                                tm_server_generation_request *out, tm_server_request_error *e) {
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", size, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(e, 400, NULL, "invalid_json",
                    "We could not parse the JSON body of your request: %s (line %d, column %d)", jerr.text, jerr.line,
                    jerr.column);
    bool ok = json_is_object(root)
                  ? parse_request(context, root, chat, out, e)
                  : fail(e, 400, NULL, "invalid_json", "The body of your request must be a JSON object");
    json_decref(root);
    if (!ok) parsed_free(out);
    return ok;
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
 * start), the choice's seed, the sampling settings (with "kv_cache": "f16"
 * when the caches are F16, which moves the tokens) and the tenant's
 * watermark facts. Never a key: the watermark is named by its key id. */
static json_t *generation_record(const generation *g, size_t k) {
    const tm_server *s = g->server;
    const tm_sampling_params *p = &g->parsed.sampling;
    const tm_wm_config *config = tm_wm_scheme_config(g->tenant->scheme);
    json_t *record = json_pack("{s:s, s:s, s:I, s:{s:f, s:i, s:f, s:f, s:f, s:f, s:f, s:i}, s:{s:s, s:s, s:s}}", "model",
                     s->model_path, "model_sha256", s->model_sha256, "seed", (json_int_t)(g->seed + k), "sampling",
                     "temperature", tm_float_shortest(p->temperature), "top_k", (int)p->top_k, "top_p", tm_float_shortest(p->top_p),
                     "min_p", tm_float_shortest(p->min_p), "repeat_penalty", tm_float_shortest(p->repeat_penalty), "frequency_penalty",
                     tm_float_shortest(p->frequency_penalty), "presence_penalty", tm_float_shortest(p->presence_penalty), "penalty_window",
                     (int)p->penalty_window, "watermark", "scheme", tm_wm_kind_name(config->kind), "parameters",
                     g->tenant->description, "key_id", tm_wm_scheme_key_id(g->tenant->scheme));
    if (record && s->kv_type == TM_KV_F16) json_object_set_new(json_object_get(record, "sampling"), "kv_cache", json_string("f16"));
    return record;
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
                ok = out_event(g, tm_server_error_object(j->error.message, "server_error", NULL, NULL));
            else if (j->finish_reason && !strcmp(j->finish_reason, "cancelled"))
                ok = out_event(g, tm_server_error_object("the server stopped before the reply was done", "server_error", NULL,
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
                ok = out_event(g, tm_server_error_object(err.message, "server_error", NULL, "signing_failed"));
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
        if (g->out_size == 0 && tm_server_client_gone(g->connection)) {
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

enum MHD_Result tm_server_handle_generation(struct MHD_Connection *c, http_state *h, const tenant *who, bool chat) {
    tm_server *s = h->server;
    generation *g = calloc(1, sizeof *g);
    if (!g) return tm_server_send_error(c, h, 500, NULL, NULL, "out of memory");
    g->server = s;
    g->tenant = who;
    g->connection = c;
    g->created = time(NULL);
    request_error e = {0};
    tm_server_parse_context context = {s->tokenizer, s->has_chat, s->chat_template, s->model_name,
                                       tm_server_engine_context_size(s->engine)};
    if (!tm_server_parse_generation(&context, h->body, h->size, chat, &g->parsed, &e)) {
        generation_free(g);
        return tm_server_send_error(c, h, e.status, e.param, e.code, "%s", e.message);
    }
    unsigned char random[12];
    uint64_t seed = 0;
    if (RAND_bytes(random, sizeof random) != 1 || (!g->parsed.seed_given && RAND_bytes((unsigned char *)&seed, sizeof seed) != 1)) {
        generation_free(g);
        return tm_server_send_error(c, h, 500, NULL, NULL, "OpenSSL's random generator failed");
    }
    g->seed = g->parsed.seed_given ? g->parsed.sampling.seed : seed & ((UINT64_C(1) << 53) - 1);
    int n = snprintf(g->id, sizeof g->id, "%s-", chat ? "chatcmpl" : "cmpl");
    for (size_t i = 0; i < sizeof random; i++) n += snprintf(g->id + n, sizeof g->id - (size_t)n, "%02x", random[i]);
    tm_server_request *r = start_generation(g, &e);
    if (!r) {
        generation_free(g);
        return tm_server_send_error(c, h, e.status, e.param, e.code, "%s", e.message);
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
            return tm_server_send_error(c, h, 500, NULL, NULL, "out of memory");
        }
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        tm_server_count_status(s, h, 200);
        enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, response);
        MHD_destroy_response(response);
        return ok;
    }
    /* Not streaming: wait here (this connection's own thread), watching the client. */
    bool gone = false;
    pthread_mutex_lock(&r->mutex);
    while (!all_done(r)) {
        wait_a_moment(r);
        if (!all_done(r) && tm_server_client_gone(c)) {
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
    if (failed) result = tm_server_send_error(c, h, 500, NULL, NULL, "generation failed: %s", failed->error.message);
    else if (cancelled) result = tm_server_send_error(c, h, 503, NULL, "server_shutting_down", "the server stopped before the reply was done");
    else {
        tm_error err = {0};
        json_t *manifests = s->signer ? manifests_json(g, r, &err) : NULL;
        if (s->signer && !manifests)
            result = tm_server_send_error(c, h, 500, NULL, "signing_failed", "signing the reply failed: %s", err.message);
        else {
            json_t *response = response_json(g, r);
            if (response && manifests) json_object_set(json_object_get(response, "tracemark"), "manifests", manifests);
            result = tm_server_send_json(c, h, 200, response);
        }
        json_decref(manifests);
    }
    tm_server_request_release(r);
    return result;
}
