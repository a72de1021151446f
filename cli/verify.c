/* tracemark verify: one verdict on a text's provenance. Checks its manifest
 * (given, embedded, or FILE.manifest.json beside it) against trusted public
 * keys, checks that the content is unchanged, and, given the watermark key,
 * reports the detector's p-value on the text so that a text whose manifest
 * was stripped is still attributed. Thin: flags, files, provenance/, print. */
#include "cli.h"

#include "tracemark/provenance.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: tracemark verify FILE [--manifest M] --trust DIR|PUB... [--key WMKEY --watermark CFG\n"
    "                        [--tokenizer T] [--window]] [--json | --jsonl]\n"
    "\n"
    "Verify a text's signed manifest: well formed, signed by a trusted signer, signature valid,\n"
    "content unchanged. The manifest is M, else the one embedded in the text, else\n"
    "FILE.manifest.json when it exists. With the watermark key, also report the detector's\n"
    "p-value on the text (embedded manifest removed): the watermark still attributes a text\n"
    "whose manifest was stripped or whose content changed.\n"
    "\n"
    "options:\n"
    "  --trust PATH        a trusted public key NAME.pub, or a folder of *.pub; repeatable (required)\n"
    "  --manifest M        the manifest file (default: embedded, else FILE.manifest.json)\n"
    "  --key WMKEY         watermark key file; repeatable (needs --watermark)\n"
    "  --watermark CONFIG  scheme settings (YAML, configs/schemes/)\n"
    "  --tokenizer PATH    tokenizer for detection (default: the default model's where it is already on\n"
    "                      disk: $TRACEMARK_MODEL, ./models/ or ../shared/models/; never downloaded)\n"
    "  --window            also find the best watermarked window (where it still holds in changed text)\n"
    "  --fpr X             false-positive rate of the watermark decision (default 0.001)\n"
    "  --json              one JSON object instead of text\n"
    "  --jsonl             input is JSON lines {\"id\", \"text\", \"manifest\"?}, where manifest is the\n"
    "                      manifest object (else the one embedded in text); one verdict per line\n"
    "  -h, --help          this help\n"
    "\n"
    "Exit status: 0 verified (for --jsonl: every line processed), 3 not verified, 1 failure\n"
    "(for --jsonl: some line failed), 2 usage error.\n";

enum { TM_EXIT_NOT_VERIFIED = 3, MAX_PATHS = 64 };

typedef struct {
    const char *input, *manifest, *watermark, *tokenizer;
    const char *trust[MAX_PATHS], *keys[MAX_PATHS];
    size_t n_trust, n_keys;
    bool json, jsonl;
    tm_detect_options detect;
} options;

static int parse(int argc, char **argv, options *o) {
    enum { TRUST = 256, MANIFEST, KEY, WATERMARK, TOKENIZER, WINDOW, FPR, JSON, JSONL };
    static const struct option flags[] = {
        {"trust", required_argument, 0, TRUST},         {"manifest", required_argument, 0, MANIFEST},
        {"key", required_argument, 0, KEY},             {"watermark", required_argument, 0, WATERMARK},
        {"tokenizer", required_argument, 0, TOKENIZER}, {"window", no_argument, 0, WINDOW},
        {"fpr", required_argument, 0, FPR},             {"json", no_argument, 0, JSON},
        {"jsonl", no_argument, 0, JSONL},               {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *cmd = "verify";
    double value;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", flags, NULL)) != -1) {
        switch (c) {
        case TRUST:
            if (o->n_trust == MAX_PATHS) { tm_cli_usage(cmd, "at most %d --trust options", MAX_PATHS); return -1; }
            o->trust[o->n_trust++] = optarg;
            break;
        case KEY:
            if (o->n_keys == MAX_PATHS) { tm_cli_usage(cmd, "at most %d --key options", MAX_PATHS); return -1; }
            o->keys[o->n_keys++] = optarg;
            break;
        case MANIFEST: o->manifest = optarg; break;
        case WATERMARK: o->watermark = optarg; break;
        case TOKENIZER: o->tokenizer = optarg; break;
        case WINDOW: o->detect.windows = true; break;
        case FPR: if (!tm_cli_parse_float(cmd, "--fpr", optarg, 1e-300, 0.5, &value)) return -1; o->detect.fpr = value; break;
        case JSON: o->json = true; break;
        case JSONL: o->jsonl = true; break;
        case 'h': fputs(help, stdout); return 1;
        default: tm_cli_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]); return -1;
        }
    }
    if (optind < argc) o->input = argv[optind++];
    if (optind < argc) { tm_cli_usage(cmd, "unexpected argument '%s'", argv[optind]); return -1; }
    if (!o->n_trust) { tm_cli_usage(cmd, "--trust is required (a public key NAME.pub or a folder of them)"); return -1; }
    if (o->n_keys && !o->watermark) { tm_cli_usage(cmd, "--key needs --watermark CONFIG"); return -1; }
    if (!o->n_keys && (o->watermark || o->tokenizer || o->detect.windows)) {
        tm_cli_usage(cmd, "--watermark, --tokenizer and --window need --key");
        return -1;
    }
    if (o->jsonl && o->manifest) { tm_cli_usage(cmd, "with --jsonl, manifests come from each line"); return -1; }
    if (o->jsonl && o->json) { tm_cli_usage(cmd, "--json and --jsonl exclude each other"); return -1; }
    if (!o->input && !o->jsonl) { tm_cli_usage(cmd, "FILE is required"); return -1; }
    return 0;
}

static json_t *number_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *verdict_json(const tm_verification *v, const char *manifest_source, const tm_detect_options *o) {
    json_t *root = json_pack(
        "{s:b, s:o, s:s, s:{s:s?}, s:{s:b, s:b}, s:{s:o, s:b}, s:{s:b, s:b, s:s, s:I}}", "verified", v->verified,
        "failed_check", v->verified ? json_null() : json_string(tm_verify_failure_name(v->failure)), "reason", v->reason,
        "manifest", "source", manifest_source, "signature", "checked", v->signature_checked, "valid",
        v->signature_valid, "signer", "fingerprint", v->signer[0] ? json_string(v->signer) : json_null(), "trusted",
        v->signer_trusted, "content", "checked", v->content_checked, "unchanged", v->content_unchanged, "sha256",
        v->content_sha256, "length", (json_int_t)v->content_length);
    if (!root || !v->has_detection) return root;
    const tm_detection *d = &v->detection;
    double p = tm_stat_p_from_log(d->n_keys > 1 ? d->log_p_family : d->log_p_decision);
    json_t *wm = json_pack("{s:b, s:s, s:s, s:s, s:o, s:f, s:f, s:o, s:I}", "detected", d->detected, "scheme",
                           tm_wm_kind_name(d->kind), "parameters", d->parameters, "key_id", d->key_id,
                           "key_id_matches_manifest",
                           v->manifest_watermark_key_id[0] ? json_boolean(!strcmp(v->manifest_watermark_key_id, d->key_id))
                                                           : json_null(),
                           "p_value", d->p, "p_decision", p, "z", number_or_null(d->z), "scored_tokens",
                           (json_int_t)d->n_scored);
    if (wm && d->has_window)
        json_object_set_new(wm, "window",
                            json_pack("{s:I, s:I, s:I, s:I, s:f, s:f}", "start_char", (json_int_t)d->window.start_char,
                                      "end_char", (json_int_t)d->window.end_char, "start_byte",
                                      (json_int_t)d->window.start_byte, "end_byte", (json_int_t)d->window.end_byte,
                                      "p_value", tm_stat_p_from_log(d->window.log_p), "p_value_corrected",
                                      tm_stat_p_from_log(d->window.log_p_corrected)));
    if (wm) json_object_set_new(wm, "fpr", json_real(o->fpr));
    json_object_set_new(root, "watermark", wm ? wm : json_null());
    return root;
}

static void print_verdict(const tm_verification *v, const char *manifest_source) {
    printf("verdict:    %s", v->verified ? "VERIFIED" : "NOT VERIFIED");
    if (!v->verified) printf(" (%s check failed: %s)", tm_verify_failure_name(v->failure), v->reason);
    printf("\nmanifest:   %s\n", manifest_source ? manifest_source : "none");
    if (v->signer[0]) printf("signer:     %s (%s)\n", v->signer, v->signer_trusted ? "trusted" : "NOT TRUSTED");
    printf("signature:  %s\n", !v->signature_checked ? "not checked" : v->signature_valid ? "valid" : "INVALID");
    printf("content:    %s (sha256 %s, %llu bytes)\n",
           !v->content_checked ? "not checked" : v->content_unchanged ? "unchanged" : "CHANGED", v->content_sha256,
           (unsigned long long)v->content_length);
    if (v->has_detection) {
        const tm_detection *d = &v->detection;
        double p = tm_stat_p_from_log(d->n_keys > 1 ? d->log_p_family : d->log_p_decision);
        printf("watermark:  %s (p = %.3g; %s, key id %s%s)\n", d->detected ? "WATERMARKED" : "not watermarked", p,
               tm_wm_kind_name(d->kind), d->key_id,
               !v->manifest_watermark_key_id[0] ? ""
               : strcmp(v->manifest_watermark_key_id, d->key_id) == 0 ? ", as the manifest names"
                                                                       : ", NOT the manifest's key id");
        if (d->has_window)
            printf("window:     characters %zu-%zu, p = %.3g (%.3g corrected)\n", d->window.start_char,
                   d->window.end_char, tm_stat_p_from_log(d->window.log_p), tm_stat_p_from_log(d->window.log_p_corrected));
    }
}

/* One JSONL record: {"id", "text", "manifest"?}. Returns false when the line failed. */
static bool verify_line(const char *line, size_t number, const tm_trust_store *trust, const tm_detector *detector,
                        const tm_detect_options *o) {
    json_error_t jerr;
    json_t *input = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    json_t *id = json_is_object(input) ? json_object_get(input, "id") : NULL;
    json_t *text = json_is_object(input) ? json_object_get(input, "text") : NULL;
    json_t *manifest = json_is_object(input) ? json_object_get(input, "manifest") : NULL;
    char message[TM_ERROR_MESSAGE_MAX] = "";
    json_t *out = NULL;
    if (!input) snprintf(message, sizeof message, "invalid JSON: %s", jerr.text);
    else if (!json_is_object(input)) snprintf(message, sizeof message, "expected an object {\"id\", \"text\", \"manifest\"?}");
    else if (!json_is_string(text)) snprintf(message, sizeof message, "\"text\" must be a string");
    else if (manifest && !json_is_object(manifest)) snprintf(message, sizeof message, "\"manifest\" must be an object");
    char *manifest_text = manifest && !message[0] ? json_dumps(manifest, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (manifest && !message[0] && !manifest_text) snprintf(message, sizeof message, "out of memory");
    if (!message[0]) {
        tm_verification v;
        tm_error err = {0};
        if (tm_provenance_verify(json_string_value(text), json_string_length(text), manifest_text,
                                 manifest_text ? strlen(manifest_text) : 0, trust, detector, &v, &err) != TM_OK)
            snprintf(message, sizeof message, "%s", err.message);
        else {
            out = verdict_json(&v, manifest ? "line" : v.embedded ? "embedded" : NULL, o);
            if (out && id) json_object_set(out, "id", id);
        }
    }
    free(manifest_text);
    if (message[0]) out = json_pack("{s:O?, s:I, s:s}", "id", id, "line", (json_int_t)number, "error", message);
    char *printed = out ? json_dumps(out, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    if (printed) puts(printed);
    else printf("{\"line\":%zu,\"error\":\"out of memory\"}\n", number);
    free(printed);
    json_decref(out);
    json_decref(input);
    return !message[0] && printed;
}

static int run_batch(FILE *in, const tm_trust_store *trust, const tm_detector *detector, const tm_detect_options *o) {
    char *line = NULL;
    size_t capacity = 0, number = 0;
    bool all_ok = true;
    ssize_t got;
    while ((got = getline(&line, &capacity, in)) >= 0) {
        number++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) continue;
        all_ok &= verify_line(line, number, trust, detector, o);
    }
    free(line);
    return fflush(stdout) == 0 && all_ok ? TM_EXIT_OK : TM_EXIT_FAILURE;
}

int tm_cmd_verify(int argc, char **argv) {
    options o = {0};
    tm_detect_options_default(&o.detect);
    int parsed = parse(argc, argv, &o);
    if (parsed != 0) return parsed > 0 ? TM_EXIT_OK : TM_EXIT_USAGE;

    tm_error err = {0};
    int exit_code = TM_EXIT_FAILURE;
    tm_trust_store *trust = NULL;
    tm_wm_key *keys[MAX_PATHS] = {0};
    tm_tokenizer *tokenizer = NULL;
    tm_detector *detector = NULL;
    tm_wm_config config;
    char *text = NULL, *manifest = NULL, *beside = NULL;
    size_t text_size = 0, manifest_size = 0;
    const char *source = NULL;
    if (tm_trust_store_create(&trust, &err)) goto failed;
    for (size_t i = 0; i < o.n_trust; i++)
        if (tm_trust_store_add_path(trust, o.trust[i], &err)) goto failed;
    if (o.n_keys) {
        /* As detect: the default tokenizer only where it lies on disk (this
         * used to resolve the default model, downloading it into ./models/
         * when absent, for a vocabulary). */
        char tokenizer_path[4096];
        const char *tokenizer_file = o.tokenizer;
        if (!tokenizer_file) {
            if (tm_cli_local_tokenizer(tokenizer_path, sizeof tokenizer_path, &err)) goto failed;
            tokenizer_file = tokenizer_path;
        }
        if (tm_wm_config_load(&config, o.watermark, &err)) goto failed;
        for (size_t i = 0; i < o.n_keys; i++)
            if (tm_wm_key_read(&keys[i], o.keys[i], &err)) goto failed;
        if (tm_tokenizer_load(&tokenizer, tokenizer_file, &err) ||
            tm_detector_create(&detector, tokenizer, &config, (const tm_wm_key *const *)keys, o.n_keys, &o.detect, &err))
            goto failed;
        if (!o.tokenizer) tm_cli_note_default_tokenizer("verify", tokenizer_file, tm_tokenizer_vocab_size(tokenizer));
    }
    if (o.jsonl) {
        FILE *in = stdin;
        if (o.input && strcmp(o.input, "-") != 0 && !(in = fopen(o.input, "rb"))) {
            tm_error_set(&err, TM_ERR_IO, "%s: cannot open: %s", o.input, strerror(errno));
            goto failed;
        }
        exit_code = run_batch(in, trust, detector, &o.detect);
        if (in != stdin) fclose(in);
        goto done;
    }
    if (tm_cli_read_input(o.input, TM_CLI_MAX_TEXT_BYTES, &text, &text_size, &err)) goto failed;
    if (o.manifest) {
        if (tm_read_file(o.manifest, &manifest, &manifest_size, &err)) goto failed;
        source = o.manifest;
    } else {
        /* Embedded first; else the file `tracemark sign` writes beside FILE. */
        tm_embedded_manifest found;
        tm_error ignored = {0};
        bool embedded = tm_provenance_extract(text, text_size, &found, &ignored) != TM_OK || found.found;
        tm_embedded_manifest_free(&found);
        size_t n = strlen(o.input) + sizeof ".manifest.json";
        if (!embedded && strcmp(o.input, "-") != 0 && (beside = malloc(n))) {
            snprintf(beside, n, "%s.manifest.json", o.input);
            if (tm_file_exists(beside)) {
                if (tm_read_file(beside, &manifest, &manifest_size, &err)) goto failed;
                source = beside;
            }
        }
    }
    tm_verification v;
    if (tm_provenance_verify(text, text_size, manifest, manifest_size, trust, detector, &v, &err)) {
        tm_error_prefix(&err, "%s", o.input);
        goto failed;
    }
    if (!source && v.embedded) source = "embedded";
    if (o.json) {
        if (tm_cli_print_json(verdict_json(&v, source, &o.detect)) != TM_EXIT_OK) goto done;
    } else {
        print_verdict(&v, source);
        if (fflush(stdout) != 0) goto done;
    }
    exit_code = v.verified ? TM_EXIT_OK : TM_EXIT_NOT_VERIFIED;
    goto done;
failed:
    tm_cli_fail(&err);
done:
    tm_detector_free(detector);
    tm_tokenizer_free(tokenizer);
    for (size_t i = 0; i < o.n_keys; i++) tm_wm_key_free(keys[i]);
    tm_trust_store_free(trust);
    free(text);
    free(manifest);
    free(beside);
    return exit_code;
}
