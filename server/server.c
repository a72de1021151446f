/* The server itself: options, start (model, tenants, --sign and --trust,
 * the engine, the libmicrohttpd daemon), the drain-then-stop shutdown, and
 * the routing of each request to its endpoint (http.c reads the request,
 * completions.c, detect_verify.c and metrics.c answer it; /health and
 * /v1/models are answered here). Routing checks the method, the API key
 * and whether the server is draining before any handler runs. Nothing here
 * prints, exits, or logs a key, nor puts one in a manifest. */
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

/* ---- /health, /v1/models ------------------------------------------------------ */

static json_t *model_json(const tm_server *s) {
    return json_pack("{s:s, s:s, s:I, s:s}", "id", s->model_name, "object", "model", "created", (json_int_t)s->created,
                     "owned_by", "tracemark");
}

/* ---- dispatch ------------------------------------------------------------------ */

int tm_server_endpoint_of(const char *url) {
    if (!strcmp(url, "/v1/completions")) return EP_COMPLETIONS;
    if (!strcmp(url, "/v1/chat/completions")) return EP_CHAT;
    if (!strcmp(url, "/v1/detect")) return EP_DETECT;
    if (!strcmp(url, "/v1/verify")) return EP_VERIFY;
    if (!strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11)) return EP_MODELS;
    if (!strcmp(url, "/health")) return EP_HEALTH;
    if (!strcmp(url, "/metrics")) return EP_METRICS;
    return EP_OTHER;
}

enum MHD_Result tm_server_dispatch(struct MHD_Connection *c, http_state *h, const char *url, const char *method) {
    tm_server *s = h->server;
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    switch (h->endpoint) {
    case EP_HEALTH: {
        if (!get) return tm_server_send_error(c, h, 405, NULL, "method_not_allowed", "use GET");
        tm_server_engine_stats st;
        tm_server_engine_stats_get(s->engine, &st);
        pthread_mutex_lock(&s->lock);
        bool draining = s->draining;
        pthread_mutex_unlock(&s->lock);
        return tm_server_send_json(c, h, draining ? 503 : 200,
                         json_pack("{s:s, s:I, s:I, s:I}", "status", draining ? "draining" : "ok", "slots_idle",
                                   (json_int_t)(st.slots - st.busy_slots), "slots_busy", (json_int_t)st.busy_slots,
                                   "queued", (json_int_t)st.queued));
    }
    case EP_METRICS:
        if (!get) return tm_server_send_error(c, h, 405, NULL, "method_not_allowed", "use GET");
        return tm_server_handle_metrics(c, h);
    case EP_OTHER:
        return tm_server_send_error(c, h, 404, NULL, "not_found", "Unknown request URL: %s %.200s", method, url);
    default: break;
    }
    bool authorised;
    const tenant *who = tm_server_authenticate(s, c, &authorised);
    if (!authorised)
        return tm_server_send_error(c, h, 401, NULL, "invalid_api_key",
                          "Incorrect or missing API key: send 'Authorization: Bearer <key>'");
    if (h->endpoint == EP_MODELS) {
        if (!get) return tm_server_send_error(c, h, 405, NULL, "method_not_allowed", "use GET");
        if (url[10] == '/') {
            if (strcmp(url + 11, s->model_name) != 0)
                return tm_server_send_error(c, h, 404, "model", "model_not_found", "The model '%.200s' does not exist", url + 11);
            return tm_server_send_json(c, h, 200, model_json(s));
        }
        json_t *list = json_array();
        json_array_append_new(list, model_json(s));
        return tm_server_send_json(c, h, 200, json_pack("{s:s, s:o}", "object", "list", "data", list));
    }
    if (!post) return tm_server_send_error(c, h, 405, NULL, "method_not_allowed", "use POST");
    pthread_mutex_lock(&s->lock);
    bool draining = s->draining;
    pthread_mutex_unlock(&s->lock);
    if (draining) return tm_server_send_error(c, h, 503, NULL, "server_shutting_down", "the server is shutting down");
    if (h->endpoint == EP_DETECT) return tm_server_handle_detect(c, h);
    if (h->endpoint == EP_VERIFY) return tm_server_handle_verify(c, h);
    return tm_server_handle_generation(c, h, who, h->endpoint == EP_CHAT);
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
    s->kv_type = o->kv_type;
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
                                     o->n_threads, o->kv_type, o->max_queue, err);
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
    s->daemon = MHD_start_daemon(flags, o->port, NULL, NULL, tm_server_on_request, s, MHD_OPTION_SOCK_ADDR, address->ai_addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)512, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)120, MHD_OPTION_NOTIFY_COMPLETED, tm_server_on_completed, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, tm_server_quiet_logger, NULL, MHD_OPTION_END);
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
