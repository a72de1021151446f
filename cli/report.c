/* tracemark report: turns evaluation runs, benchmark results and provenance
 * verdicts into one report (HTML, Markdown, JSON, PDF) with an optional
 * compliance policy, each output optionally signed with a manifest beside
 * it. Thin: flags, reports/ and provenance/ calls, atomic writes. It must
 * never print or record the signing key. */
#include "cli.h"

#include "tracemark/provenance.h"
#include "tracemark/reports.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char help[] =
    "usage: tracemark report INPUT... --out DIR [--policy POLICY.yaml] [--format html,md,json,pdf]\n"
    "                        [--sign KEY] [--title TEXT] [--json]\n"
    "\n"
    "Write a regulator-readable report of evaluation evidence: model details, intended use,\n"
    "watermark and provenance configuration (key ids and signer fingerprints, never keys),\n"
    "metrics and thresholds, evaluation data with hashes and licences, quantitative analyses\n"
    "(charts with their numbers), compliance with a policy, caveats, and what it was made from.\n"
    "\n"
    "INPUT is a run folder of `tracemark eval` (results.json, samples.jsonl, run.sqlite; any\n"
    "task kind), a benchmark result (benchmarks/results/NAME.json), or the JSON that\n"
    "`tracemark generate --json`, `detect --json` or `verify --json` printed.\n"
    "\n"
    "options:\n"
    "  --out DIR          folder for report.html, report.md, report.json, report.pdf (created)\n"
    "  --policy FILE      compliance policy (configs/policies/*.yaml): each clause pass, fail,\n"
    "                     not measured or documented, with the measured value and interval\n"
    "  --format LIST      comma-separated subset of html,md,json,pdf (default: all four; without\n"
    "                     Chromium the default skips the PDF and says so, an explicit pdf fails)\n"
    "  --sign KEY         sign each output with an Ed25519 key (tracemark keygen --signing):\n"
    "                     FILE.manifest.json beside it, checked by `tracemark verify FILE --trust PUB`\n"
    "  --title TEXT       the report's title (default from the runs)\n"
    "  --json             print {\"outputs\", \"compliance\"} as JSON\n"
    "  -h, --help         this help\n"
    "\n"
    "The creation time is now, or $SOURCE_DATE_EPOCH when set (reproducible reports).\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

enum { MAX_INPUTS = TM_REPORT_MAX_INPUTS };

typedef struct {
    const char *inputs[MAX_INPUTS];
    size_t n_inputs;
    const char *out, *policy, *sign, *title;
    bool html, md, json_out, pdf, pdf_explicit, json;
} options;

static int parse(int argc, char **argv, options *o) {
    enum { OUT = 256, POLICY, FORMAT, SIGN, TITLE, JSON };
    static const struct option flags[] = {{"out", required_argument, 0, OUT},       {"policy", required_argument, 0, POLICY},
                                          {"format", required_argument, 0, FORMAT}, {"sign", required_argument, 0, SIGN},
                                          {"title", required_argument, 0, TITLE},   {"json", no_argument, 0, JSON},
                                          {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    const char *cmd = "report", *format = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", flags, NULL)) != -1) {
        switch (c) {
        case OUT: o->out = optarg; break;
        case POLICY: o->policy = optarg; break;
        case FORMAT: format = optarg; break;
        case SIGN: o->sign = optarg; break;
        case TITLE: o->title = optarg; break;
        case JSON: o->json = true; break;
        case 'h': fputs(help, stdout); return 1;
        default: tm_cli_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]); return -1;
        }
    }
    while (optind < argc) {
        if (o->n_inputs == MAX_INPUTS) { tm_cli_usage(cmd, "at most %d inputs", MAX_INPUTS); return -1; }
        o->inputs[o->n_inputs++] = argv[optind++];
    }
    if (!o->n_inputs) { tm_cli_usage(cmd, "at least one INPUT (run folder, benchmark JSON, verify JSON) is required"); return -1; }
    if (!o->out) { tm_cli_usage(cmd, "--out DIR is required"); return -1; }
    if (!format) {
        o->html = o->md = o->json_out = o->pdf = true;
        return 0;
    }
    char *copy = strdup(format);
    if (!copy) return -1;
    int result = 0;
    for (char *save = NULL, *f = strtok_r(copy, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        if (!strcmp(f, "html")) o->html = true;
        else if (!strcmp(f, "md")) o->md = true;
        else if (!strcmp(f, "json")) o->json_out = true;
        else if (!strcmp(f, "pdf")) o->pdf = o->pdf_explicit = true;
        else { tm_cli_usage(cmd, "--format: unknown format '%s' (html, md, json, pdf)", f); result = -1; break; }
    }
    free(copy);
    if (!result && !(o->html || o->md || o->json_out || o->pdf)) { tm_cli_usage(cmd, "--format: no format"); result = -1; }
    return result;
}

static tm_status sign_file(const char *path, const tm_signing_key *key, tm_error *err) {
    char *content = NULL, *manifest = NULL;
    size_t size = 0, msize = 0;
    tm_status st = tm_read_file(path, &content, &size, err);
    if (!st) st = tm_provenance_sign_generation(content, size, NULL, 0, key, &manifest, &msize, err);
    if (!st) {
        size_t n = strlen(path) + sizeof ".manifest.json";
        char *mpath = malloc(n);
        if (!mpath) st = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        else {
            snprintf(mpath, n, "%s.manifest.json", path);
            st = tm_write_file_atomic(mpath, manifest, msize, 0644, err);
            free(mpath);
        }
    }
    free(content);
    free(manifest);
    return st;
}

int tm_cmd_report(int argc, char **argv) {
    options o = {0};
    int parsed = parse(argc, argv, &o);
    if (parsed != 0) return parsed > 0 ? TM_EXIT_OK : TM_EXIT_USAGE;
    tm_error err = {0};
    tm_signing_key *key = NULL;
    char *doc = NULL, *html = NULL, *md = NULL;
    size_t doc_size = 0, html_size = 0, md_size = 0;
    int exit_code = TM_EXIT_FAILURE;
    json_t *outputs = json_array();
    char paths[4][4200];
    const char *pdf_note = NULL;
    if (o.sign && tm_signing_key_read(&key, o.sign, &err)) goto failed;
    if (mkdir(o.out, 0755) != 0 && errno != EEXIST) {
        tm_error_set(&err, TM_ERR_IO, "%s: cannot create: %s", o.out, strerror(errno));
        goto failed;
    }
    int64_t created = (int64_t)time(NULL);
    const char *epoch = getenv("SOURCE_DATE_EPOCH");
    if (epoch && *epoch) {
        char *end;
        long long v = strtoll(epoch, &end, 10);
        if (*end || v < 0) { tm_error_set(&err, TM_ERR_ARGUMENT, "SOURCE_DATE_EPOCH: not a number of seconds"); goto failed; }
        created = v;
    }
    tm_report_options ro = {o.inputs, o.n_inputs, o.policy, o.title, key ? tm_signing_key_fingerprint(key) : NULL, created};
    if (tm_report_build(&ro, &doc, &doc_size, &err)) goto failed;
    if ((o.html || o.pdf) && tm_report_render_html(doc, doc_size, &html, &html_size, &err)) goto failed;
    if (o.md && tm_report_render_markdown(doc, doc_size, &md, &md_size, &err)) goto failed;
    snprintf(paths[0], sizeof paths[0], "%s/report.html", o.out);
    snprintf(paths[1], sizeof paths[1], "%s/report.md", o.out);
    snprintf(paths[2], sizeof paths[2], "%s/report.json", o.out);
    snprintf(paths[3], sizeof paths[3], "%s/report.pdf", o.out);
    /* Without html in --format, the page Chromium prints is a hidden file removed after. */
    if (!o.html) snprintf(paths[0], sizeof paths[0], "%s/.report-print.html", o.out);
    if (o.json_out) {
        if (tm_write_file_atomic(paths[2], doc, doc_size, 0644, &err)) goto failed;
        json_array_append_new(outputs, json_string(paths[2]));
    }
    if (o.md) {
        if (tm_write_file_atomic(paths[1], md, md_size, 0644, &err)) goto failed;
        json_array_append_new(outputs, json_string(paths[1]));
    }
    if (o.html || o.pdf) {
        if (tm_write_file_atomic(paths[0], html, html_size, 0644, &err)) goto failed;
        if (o.html) json_array_append_new(outputs, json_string(paths[0]));
    }
    if (o.pdf) {
        tm_error pe = {0};
        tm_status st = tm_report_print_pdf(paths[0], paths[3], &pe);
        if (!o.html) remove(paths[0]);
        if (st == TM_OK) json_array_append_new(outputs, json_string(paths[3]));
        else if (st == TM_ERR_NOT_FOUND && !o.pdf_explicit) pdf_note = "no PDF written: Chromium is not installed (apt-get install chromium)";
        else { err = pe; goto failed; }
    }
    if (key) {
        size_t i;
        json_t *p;
        json_array_foreach(outputs, i, p) if (sign_file(json_string_value(p), key, &err)) goto failed;
    }
    json_t *report = json_loads(doc, 0, NULL);
    json_t *compliance = json_object_get(report, "compliance");
    if (o.json) {
        exit_code = tm_cli_print_json(json_pack("{s:O, s:O?, s:s?, s:s?, s:s?}", "outputs", outputs, "compliance",
                                                json_object_get(compliance, "summary"), "signer_fingerprint",
                                                key ? tm_signing_key_fingerprint(key) : NULL, "note", pdf_note,
                                                "policy", o.policy));
    } else {
        size_t i;
        json_t *p;
        json_array_foreach(outputs, i, p) printf("%s%s\n", json_string_value(p), key ? " (signed: .manifest.json beside it)" : "");
        if (json_is_object(compliance)) {
            json_t *s = json_object_get(compliance, "summary");
            printf("compliance with %s: %lld pass, %lld fail, %lld not measured, %lld documented, %lld not documented\n",
                   json_string_value(json_object_get(compliance, "policy")),
                   (long long)json_integer_value(json_object_get(s, "pass")),
                   (long long)json_integer_value(json_object_get(s, "fail")),
                   (long long)json_integer_value(json_object_get(s, "not_measured")),
                   (long long)json_integer_value(json_object_get(s, "documented")),
                   (long long)json_integer_value(json_object_get(s, "not_documented")));
        }
        if (pdf_note) printf("note: %s\n", pdf_note);
        if (key) printf("signed by %s\n", tm_signing_key_fingerprint(key));
        exit_code = fflush(stdout) == 0 ? TM_EXIT_OK : TM_EXIT_FAILURE;
    }
    json_decref(report);
    goto done;
failed:
    tm_cli_fail(&err);
done:
    json_decref(outputs);
    tm_signing_key_free(key);
    free(doc);
    free(html);
    free(md);
    return exit_code;
}
