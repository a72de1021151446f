/* The HTTP plumbing of the server (libmicrohttpd, a thread per connection):
 * a request's state from its first call to its completion, its body read
 * up to the cap (413 beyond), the JSON, plain-text and error responses in
 * OpenAI's error-object shape, the check whether a client is still there,
 * and authentication by API key (SHA-256 digests compared with
 * CRYPTO_memcmp, every tenant tried). It hands each complete request to the
 * router (server.c) and knows nothing of what an endpoint does. It must
 * never print, exit, or log or echo a key. */
#include "server_internal.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

enum MHD_Result tm_server_send_text(struct MHD_Connection *c, http_state *h, int status, char *text, size_t size,
                                 const char *content_type) {
    struct MHD_Response *r = MHD_create_response_from_buffer(size, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    tm_server_count_status(h->server, h, status);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

enum MHD_Result tm_server_send_json(struct MHD_Connection *c, http_state *h, int status, json_t *value) {
    char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
    json_decref(value);
    if (!text) {
        static const char fallback[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                                       "\"param\":null,\"code\":null}}";
        text = strdup(fallback);
        status = 500;
        if (!text) return MHD_NO;
    }
    return tm_server_send_text(c, h, status, text, strlen(text), "application/json");
}

/* OpenAI's error object. */
json_t *tm_server_error_object(const char *message, const char *type, const char *param, const char *code) {
    return json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", message, "type", type, "param", param, "code",
                     code);
}

enum MHD_Result tm_server_send_error(struct MHD_Connection *c, http_state *h, int status, const char *param,
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
    return tm_server_send_json(c, h, status, tm_server_error_object(message, type, param, code));
}
/* Whether the client closed its end: a peek that sees end-of-file. */
bool tm_server_client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info) return false;
    char byte;
    ssize_t n = recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---- authentication ---------------------------------------------------- */

/* The tenant of the request's bearer key: every stored digest is compared
 * (CRYPTO_memcmp, no early exit) so the time does not tell which key was near. */
const tenant *tm_server_authenticate(tm_server *s, struct MHD_Connection *c, bool *ok) {
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

enum MHD_Result tm_server_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)version;
    tm_server *s = cls;
    http_state *h = *state;
    if (!h) {
        h = calloc(1, sizeof *h);
        if (!h) return MHD_NO;
        h->server = s;
        h->start = tm_seconds_now();
        h->endpoint = tm_server_endpoint_of(url);
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
            return tm_server_send_error(c, h, 413, NULL, "request_too_large", "The request body is larger than %zu bytes",
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
        return tm_server_send_error(c, h, 413, NULL, "request_too_large", "The request body is larger than %zu bytes", s->max_body);
    return tm_server_dispatch(c, h, url, method);
}

void tm_server_on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why) {
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

void tm_server_quiet_logger(void *cls, const char *format, va_list args) {
    (void)cls;
    (void)format;
    (void)args;
}
