/* /v1/detect and /v1/verify: a text scored against the tenants' watermark
 * keys (one tenant or all, the best attributed with a Bonferroni
 * correction), and a manifest (given or embedded) verified against the
 * server's trusted signers with the same fields as `tracemark verify
 * --json`. Both only read the server's tenants and trust store; they must
 * never generate, print, exit, or reveal a key beyond its public key id. */
#include "server_internal.h"

#include "tracemark/detect.h"
#include "tracemark/provenance.h"

#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The same failures, in the same order, as before the parsing was split out. */
static bool request_fail(tm_server_request_error *e, int status, const char *param, const char *code,
                         const char *message) {
    e->status = status;
    e->param = param;
    e->code = code;
    snprintf(e->message, sizeof e->message, "%s", message);
    return false;
}

static json_t *load_body(const char *body, size_t size, tm_server_request_error *e) {
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", size, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        e->status = 400;
        e->param = NULL;
        e->code = "invalid_json";
        snprintf(e->message, sizeof e->message, "We could not parse the JSON body of your request: %s", jerr.text);
    }
    return root;
}

bool tm_server_parse_detect(const char *body, size_t size, tm_server_detect_request *out, tm_server_request_error *e) {
    memset(out, 0, sizeof *out);
    json_t *root = load_body(body, size, e);
    if (!root) return false;
    json_t *text = json_object_get(root, "text"), *prompt = json_object_get(root, "prompt");
    json_t *only = json_object_get(root, "tenant");
    bool ok = true;
    if (!json_is_object(root) || !text) {
        ok = request_fail(e, 400, "text", "missing_required_parameter", "'text' is required");
    } else if (!json_is_string(text) || (prompt && !json_is_null(prompt) && !json_is_string(prompt)) ||
               (only && !json_is_null(only) && !json_is_string(only))) {
        ok = request_fail(e, 400, !json_is_string(text) ? "text" : json_is_string(prompt) ? "tenant" : "prompt",
                          "invalid_type", "'text', 'prompt' and 'tenant' must be strings");
    }
    if (!ok) {
        json_decref(root);
        return false;
    }
    out->root = root;
    out->text = json_string_value(text);
    out->text_size = json_string_length(text);
    out->prompt = json_is_string(prompt) ? json_string_value(prompt) : NULL;
    out->tenant = json_is_string(only) ? json_string_value(only) : NULL;
    return true;
}

void tm_server_detect_request_free(tm_server_detect_request *request) {
    json_decref(request->root);
    memset(request, 0, sizeof *request);
}

enum MHD_Result tm_server_handle_detect(struct MHD_Connection *c, http_state *h) {
    tm_server *s = h->server;
    tm_server_detect_request body;
    tm_server_request_error e = {0};
    if (!tm_server_parse_detect(h->body, h->size, &body, &e))
        return tm_server_send_error(c, h, e.status, e.param, e.code, "%s", e.message);
    enum MHD_Result result;
    {
        const char *prompt_text = body.prompt;
        const char *tenant_name = body.tenant;
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
            if (tm_detect_text(t->detector, body.text, body.text_size, prompt_text, &d, &err) != TM_OK) {
                failed = true;
                break;
            }
            tested++;
            json_array_append_new(results, verdict_json(t, &d));
            if (d.log_p_decision < best_log_p) best_log_p = d.log_p_decision, best = t;
        }
        if (failed) {
            json_decref(results);
            result = tm_server_send_error(c, h, 400, "text", "invalid_value", "%s", err.message);
        } else if (tested == 0) {
            json_decref(results);
            result = tm_server_send_error(c, h, 404, "tenant", "tenant_not_found", "no tenant of that name");
        } else {
            /* Attribution: the best tenant's p corrected for the number tested (Bonferroni). */
            double family = best_log_p + log((double)tested);
            bool detected = best && family <= log(fpr);
            result = tm_server_send_json(c, h, 200,
                               json_pack("{s:s, s:b, s:s?, s:f, s:f, s:I, s:o}", "object", "tracemark.detection",
                                         "detected", detected, "tenant", detected ? best->name : NULL, "p_value",
                                         tm_stat_p_from_log(family > 0 ? 0 : family), "fpr", fpr, "tenants_tested",
                                         (json_int_t)tested, "results", results));
        }
    }
    tm_server_detect_request_free(&body);
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
bool tm_server_parse_verify(const char *body, size_t size, tm_server_verify_request *out, tm_server_request_error *e) {
    memset(out, 0, sizeof *out);
    json_t *root = load_body(body, size, e);
    if (!root) return false;
    json_t *text = json_object_get(root, "text"), *manifest = json_object_get(root, "manifest");
    char *manifest_text = NULL;
    bool ok = true;
    if (!json_is_object(root) || !text) {
        ok = request_fail(e, 400, "text", "missing_required_parameter", "'text' is required");
    } else if (!json_is_string(text)) {
        ok = request_fail(e, 400, "text", "invalid_type", "'text' must be a string");
    } else if (manifest && !json_is_null(manifest)) {
        if (json_is_object(manifest)) manifest_text = json_dumps(manifest, JSON_COMPACT | JSON_PRESERVE_ORDER);
        else if (json_is_string(manifest) && (manifest_text = malloc(json_string_length(manifest) + 1))) {
            /* All of its bytes, a NUL inside included: the parser then names it. */
            memcpy(manifest_text, json_string_value(manifest), json_string_length(manifest));
            manifest_text[json_string_length(manifest)] = '\0';
        } else if (!json_is_string(manifest)) {
            ok = request_fail(e, 400, "manifest", "invalid_type",
                              "'manifest' must be the manifest object, its JSON text, or null (embedded)");
        }
        if (ok && !manifest_text) ok = request_fail(e, 500, NULL, NULL, "out of memory");
        if (ok) out->manifest_size = json_is_string(manifest) ? json_string_length(manifest) : strlen(manifest_text);
    }
    if (!ok) {
        free(manifest_text);
        json_decref(root);
        out->manifest_size = 0;
        return false;
    }
    out->root = root;
    out->text = json_string_value(text);
    out->text_size = json_string_length(text);
    out->manifest = manifest_text;
    return true;
}

void tm_server_verify_request_free(tm_server_verify_request *request) {
    free(request->manifest);
    json_decref(request->root);
    memset(request, 0, sizeof *request);
}

enum MHD_Result tm_server_handle_verify(struct MHD_Connection *c, http_state *h) {
    tm_server *s = h->server;
    if (!s->trust)
        return tm_server_send_error(c, h, 404, NULL, "verify_not_enabled",
                          "this server trusts no signer: start it with --sign KEY or --trust PUB to verify");
    tm_server_verify_request body;
    tm_server_request_error e = {0};
    if (!tm_server_parse_verify(h->body, h->size, &body, &e))
        return tm_server_send_error(c, h, e.status, e.param, e.code, "%s", e.message);
    const char *manifest_text = body.manifest;
    size_t manifest_size = body.manifest_size;
    enum MHD_Result result;
    const char *content = body.text;
    size_t size = body.text_size;
    tm_error err = {0};
    tm_verification first, v;
    /* Which tenants to score: the one whose key id the manifest names (the
     * manifest is read without a detector first), else all of them. */
    if (tm_provenance_verify(content, size, manifest_text, manifest_size, s->trust, NULL, &first, &err) != TM_OK) {
        result = tm_server_send_error(c, h, 400, "text", "invalid_value", "%s", err.message);
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
            result = tm_server_send_error(c, h, 400, "text", "invalid_value", "%s", err.message);
            goto done;
        }
        tested++;
        if (!best || one.detection.log_p_decision < v.detection.log_p_decision) {
            v = one;
            best = t;
        }
    }
    result = tm_server_send_json(c, h, 200,
                       verification_json(&v, manifest_text ? "request" : v.embedded ? "embedded" : NULL, best, tested));
done:
    tm_server_verify_request_free(&body);
    return result;
}
