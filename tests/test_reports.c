/* Tests of reports/ and `tracemark report`: strict policy parsing (errors
 * naming file, line and field), clause evaluation against hand-written
 * results (pass at the threshold, fail, not measured, complement), the shipped
 * smoke run turned into a report whose EU policy table holds a pass, a fail and
 * a not-measured clause, the JSON validated against docs/report-schema.json by
 * a validator of the schema subset it uses (checked itself against documents
 * that break the schema), self-contained HTML, and signed outputs that
 * `tracemark verify` accepts and rejects after one changed byte. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fixtures.h"
#include "tracemark/reports.h"

/* ---- a validator of the JSON Schema subset docs/report-schema.json uses ---- */

static const json_t *schema_root;

static bool type_ok(const json_t *v, const char *t) {
    if (!strcmp(t, "object")) return json_is_object(v);
    if (!strcmp(t, "array")) return json_is_array(v);
    if (!strcmp(t, "string")) return json_is_string(v);
    if (!strcmp(t, "integer")) return json_is_integer(v);
    if (!strcmp(t, "number")) return json_is_number(v);
    if (!strcmp(t, "boolean")) return json_is_boolean(v);
    if (!strcmp(t, "null")) return json_is_null(v);
    cr_assert_fail("schema uses unknown type %s", t);
    return false;
}

/* Returns NULL when v is valid, else a static message naming where. */
static bool validate(const json_t *v, const json_t *s, const char *where, char *why, size_t n);

static bool fail_at(char *why, size_t n, const char *where, const char *what) {
    snprintf(why, n, "%.200s: %.200s", where[0] ? where : "(root)", what);
    return false;
}

static bool validate(const json_t *v, const json_t *s, const char *where, char *why, size_t n) {
    const char *kw;
    json_t *arg;
    json_object_foreach((json_t *)s, kw, arg) {
        char sub[400];
        if (!strcmp(kw, "$schema") || !strcmp(kw, "$id") || !strcmp(kw, "title") || !strcmp(kw, "description") ||
            !strcmp(kw, "$defs"))
            continue;
        if (!strcmp(kw, "$ref")) {
            const char *ref = json_string_value(arg);
            cr_assert(ref && !strncmp(ref, "#/$defs/", 8), "unsupported $ref %s", ref);
            const json_t *target = json_object_get(json_object_get(schema_root, "$defs"), ref + 8);
            cr_assert_not_null(target, "dangling $ref %s", ref);
            if (!validate(v, target, where, why, n)) return false;
        } else if (!strcmp(kw, "type")) {
            bool ok = false;
            if (json_is_string(arg)) ok = type_ok(v, json_string_value(arg));
            else {
                size_t i;
                json_t *t;
                json_array_foreach(arg, i, t) ok = ok || type_ok(v, json_string_value(t));
            }
            if (!ok) return fail_at(why, n, where, "wrong type");
        } else if (!strcmp(kw, "const")) {
            if (!json_equal((json_t *)v, arg)) return fail_at(why, n, where, "not the constant");
        } else if (!strcmp(kw, "enum")) {
            bool ok = false;
            size_t i;
            json_t *e;
            json_array_foreach(arg, i, e) ok = ok || json_equal((json_t *)v, e);
            if (!ok) return fail_at(why, n, where, "not in the enum");
        } else if (!strcmp(kw, "required")) {
            size_t i;
            json_t *k;
            if (json_is_object(v)) json_array_foreach(arg, i, k) if (!json_object_get(v, json_string_value(k))) {
                    snprintf(sub, sizeof sub, "missing required %s", json_string_value(k));
                    return fail_at(why, n, where, sub);
                }
        } else if (!strcmp(kw, "properties")) {
            const char *k;
            json_t *child;
            if (json_is_object(v)) json_object_foreach((json_t *)v, k, child) {
                    const json_t *ps = json_object_get(arg, k);
                    snprintf(sub, sizeof sub, "%s.%s", where, k);
                    if (ps && !validate(child, ps, sub, why, n)) return false;
                }
        } else if (!strcmp(kw, "additionalProperties")) {
            cr_assert(json_is_false(arg), "only additionalProperties: false is supported");
            const char *k;
            json_t *child;
            if (json_is_object(v)) json_object_foreach((json_t *)v, k, child) if (!json_object_get(json_object_get(s, "properties"), k)) {
                    snprintf(sub, sizeof sub, "unexpected property %s", k);
                    return fail_at(why, n, where, sub);
                }
        } else if (!strcmp(kw, "items")) {
            size_t i;
            json_t *e;
            if (json_is_array(v)) json_array_foreach(v, i, e) {
                    snprintf(sub, sizeof sub, "%s[%zu]", where, i);
                    if (!validate(e, arg, sub, why, n)) return false;
                }
        } else if (!strcmp(kw, "minItems")) {
            if (json_is_array(v) && json_array_size(v) < (size_t)json_integer_value(arg)) return fail_at(why, n, where, "too few items");
        } else if (!strcmp(kw, "maxItems")) {
            if (json_is_array(v) && json_array_size(v) > (size_t)json_integer_value(arg)) return fail_at(why, n, where, "too many items");
        } else if (!strcmp(kw, "minimum")) {
            if (json_is_number(v) && json_number_value(v) < json_number_value(arg)) return fail_at(why, n, where, "below minimum");
        } else if (!strcmp(kw, "maximum")) {
            if (json_is_number(v) && json_number_value(v) > json_number_value(arg)) return fail_at(why, n, where, "above maximum");
        } else if (!strcmp(kw, "pattern")) {
            if (json_is_string(v)) {
                regex_t re;
                cr_assert_eq(regcomp(&re, json_string_value(arg), REG_EXTENDED | REG_NOSUB), 0);
                int m = regexec(&re, json_string_value(v), 0, NULL, 0);
                regfree(&re);
                if (m != 0) return fail_at(why, n, where, "does not match the pattern");
            }
        } else if (!strcmp(kw, "oneOf")) {
            size_t i, matches = 0;
            json_t *alt;
            char ignored[512];
            json_array_foreach(arg, i, alt) matches += validate(v, alt, where, ignored, sizeof ignored);
            if (matches != 1) return fail_at(why, n, where, "matches not exactly one of oneOf");
        } else cr_assert_fail("the schema uses keyword %s, which this validator does not implement", kw);
    }
    return true;
}

static json_t *load_schema(void) {
    json_error_t e;
    json_t *s = json_load_file(TRACEMARK_SOURCE_DIR "/docs/report-schema.json", JSON_REJECT_DUPLICATES, &e);
    cr_assert_not_null(s, "docs/report-schema.json: %s", e.text);
    schema_root = s;
    return s;
}

static bool valid(const json_t *doc, char *why, size_t n) { return validate(doc, schema_root, "", why, n); }

/* ---- policies ---- */

static char *policy_error(const char *text) {
    tm_report_policy *p = NULL;
    tm_error err = {0};
    tm_status st = tm_report_policy_parse(&p, "bad.yaml", text, strlen(text), &err);
    cr_assert_neq(st, TM_OK, "accepted:\n%s", text);
    cr_assert_null(p);
    return strdup(err.message);
}

#define HEAD "policy: p\ntitle: t\nversion: 1\nclauses:\n"
#define GOOD_CLAUSE "  - id: a\n    reference: r\n    requirement: q\n"

Test(reports_policy, errors_name_file_line_field) {
    struct {
        const char *text, *expected;
    } cases[] = {
        {HEAD GOOD_CLAUSE "    metric: runs.x\n    comparison: '<='\n    thresold: 1\n",
         "bad.yaml:10: clauses[0].thresold: unknown key"},
        {HEAD GOOD_CLAUSE "    metric: runs.x\n    comparison: '=<'\n    threshold: 1\n",
         "bad.yaml:9: clauses[0].comparison: expected one of"},
        {HEAD GOOD_CLAUSE "    metric: runs.x\n    comparison: '<='\n    threshold: one\n",
         "bad.yaml:10: clauses[0].threshold: expected a finite number"},
        {HEAD GOOD_CLAUSE "    metric: runs[kind=w.x\n    comparison: '<='\n    threshold: 1\n",
         "bad.yaml:8: clauses[0].metric: unclosed"},
        {HEAD GOOD_CLAUSE "    metric: runs.x\n    threshold: 1\n", "bad.yaml:5: clauses[0]: missing key 'comparison'"},
        {HEAD GOOD_CLAUSE "    documented_in: caveats\n    threshold: 1\n", "bad.yaml:5: clauses[0]: a 'documented_in' clause"},
        {HEAD GOOD_CLAUSE, "bad.yaml:5: clauses[0]: exactly one of 'metric'"},
        {HEAD GOOD_CLAUSE "    documented_in: caveats\n" GOOD_CLAUSE "    documented_in: metrics\n",
         "bad.yaml:9: clauses[1].id: duplicate clause id"},
        {HEAD GOOD_CLAUSE "    documented_in: caveats\n    bound: middle\n", "a 'documented_in' clause takes no"},
        {"policy: p\ntitle: t\nversion: 2\nclauses:\n" GOOD_CLAUSE "    documented_in: x\n",
         "bad.yaml:1: version: unsupported version"},
        {"policy: p\ntitle: t\nversion: 1\nextra: 1\n", "bad.yaml:4: extra: unknown key"},
        {"policy: p\npolicy: q\n", "bad.yaml:2: policy: duplicate key"},
        {"policy: [p\n", "bad.yaml:"},
        {HEAD "  - just a string\n", "bad.yaml:5: clauses[0]: expected a mapping"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *message = policy_error(cases[i].text);
        cr_expect(strstr(message, cases[i].expected), "case %zu: got '%s', expected '%s'", i, message, cases[i].expected);
        free(message);
    }
}

Test(reports_policy, shipped_policies_parse) {
    const char *files[] = {TRACEMARK_SOURCE_DIR "/configs/policies/eu-ai-act-art50.yaml",
                           TRACEMARK_SOURCE_DIR "/configs/policies/nist-ai-600-1.yaml"};
    size_t expected[] = {15, 10};
    for (size_t i = 0; i < 2; i++) {
        tm_report_policy *p = NULL;
        tm_error err = {0};
        cr_assert_eq(tm_report_policy_load(&p, files[i], &err), TM_OK, "%s", err.message);
        cr_expect_eq(tm_report_policy_clause_count(p), expected[i], "%s", files[i]);
        tm_report_policy_free(p);
    }
}

/* A run folder with only a hand-written results.json (no samples, no store):
 * clause statuses computed by hand. */
static const char hand_results[] =
    "{\"task\":\"hand\",\"kind\":\"watermark\",\"task_sha256\":\"" 
    "0000000000000000000000000000000000000000000000000000000000000000\",\"model_sha256\":\"m\",\"seed\":\"1\","
    "\"n_samples\":10,\"n_present\":10,\"complete\":true,\"tracemark_version\":\"0\",\"tracemark_commit\":\"c\","
    "\"results\":{\"schemes\":{"
    "\"a\":{\"parameters\":\"pa\",\"attacks\":[{\"attack\":\"none\",\"auc\":{\"value\":0.9,\"low\":0.8,\"high\":1},"
    "\"at_fpr\":[{\"fpr\":0.01,\"tpr\":{\"value\":0.95,\"low\":0.9,\"high\":1},\"empirical_fpr\":{\"value\":0.01,\"low\":0,\"high\":0.02}}]},"
    "{\"attack\":\"delete@0.1\",\"auc\":{\"value\":0.7,\"low\":0.6,\"high\":0.8},"
    "\"at_fpr\":[{\"fpr\":0.01,\"tpr\":{\"value\":0.4,\"low\":0.3,\"high\":0.5},\"empirical_fpr\":{\"value\":0,\"low\":0,\"high\":0}}]}],"
    "\"tokens_to_detect\":{\"median\":null,\"n\":5,\"detected\":1}},"
    "\"b\":{\"parameters\":\"pb\",\"attacks\":[{\"attack\":\"none\",\"auc\":{\"value\":0.99,\"low\":0.98,\"high\":1},"
    "\"at_fpr\":[{\"fpr\":0.01,\"tpr\":{\"value\":0.92,\"low\":0.85,\"high\":0.97},\"empirical_fpr\":{\"value\":0.005,\"low\":0,\"high\":0.01}}]}],"
    "\"tokens_to_detect\":{\"median\":40,\"n\":5,\"detected\":4}}}}}";

static const char hand_policy[] =
    "policy: hand\ntitle: hand-computed\nversion: 1\nclauses:\n"
    "  - {id: fpr-at-threshold, reference: r, requirement: q, comparison: '<=', threshold: 0.01,\n"
    "     metric: 'runs[kind=watermark].results.schemes.*.attacks[attack=none].at_fpr[fpr=0.01].empirical_fpr'}\n"
    "  - {id: fpr-upper-bound, reference: r, requirement: q, comparison: '<=', threshold: 0.01, bound: high,\n"
    "     metric: 'runs[kind=watermark].results.schemes.*.attacks[attack=none].at_fpr[fpr=0.01].empirical_fpr'}\n"
    "  - {id: fnr, reference: r, requirement: q, comparison: '<=', threshold: 0.08, transform: complement,\n"
    "     metric: 'runs[kind=watermark].results.schemes.*.attacks[attack=none].at_fpr[fpr=0.01].tpr'}\n"
    "  - {id: robust, reference: r, requirement: q, comparison: '>=', threshold: 0.5,\n"
    "     metric: 'runs[kind=watermark].results.schemes.*.attacks[*].at_fpr[fpr=0.01].tpr'}\n"
    "  - {id: length, reference: r, requirement: q, comparison: '<=', threshold: 100,\n"
    "     metric: 'runs[kind=watermark].results.schemes.*.tokens_to_detect.median'}\n"
    "  - {id: length-b, reference: r, requirement: q, comparison: '<=', threshold: 100,\n"
    "     metric: 'runs[kind=watermark].results.schemes.b.tokens_to_detect.median'}\n"
    "  - {id: other-kind, reference: r, requirement: q, comparison: '>', threshold: 0.5,\n"
    "     metric: 'runs[kind=truthfulqa].results.mc1.accuracy'}\n"
    "  - {id: doc, reference: r, requirement: q, documented_in: caveats}\n"
    "  - {id: doc-empty, reference: r, requirement: q, documented_in: verifications}\n";

static json_t *clause(json_t *report, const char *id) {
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(json_object_get(report, "compliance"), "clauses"), i, c) if (!strcmp(
        json_string_value(json_object_get(c, "id")), id)) return c;
    cr_assert_fail("no clause %s", id);
    return NULL;
}

static const char *status_of(json_t *report, const char *id) {
    return json_string_value(json_object_get(clause(report, id), "status"));
}

static double measured(json_t *report, const char *id, const char *field) {
    return json_number_value(json_object_get(json_object_get(clause(report, id), "measured"), field));
}

Test(reports_policy, clauses_against_hand_computed_values) {
    char *dir = tm_test_scratch_dir();
    char *run = tm_test_path(dir, "run");
    cr_assert_eq(mkdir(run, 0755), 0);
    char *results = tm_test_path(run, "results.json"), *policy = tm_test_path(dir, "hand.yaml");
    cr_assert_eq(tm_test_write_file(results, hand_results, strlen(hand_results)), 0);
    cr_assert_eq(tm_test_write_file(policy, hand_policy, strlen(hand_policy)), 0);
    const char *inputs[] = {run};
    tm_report_options o = {inputs, 1, policy, NULL, NULL, 0};
    char *text = NULL;
    size_t size = 0;
    tm_error err = {0};
    cr_assert_eq(tm_report_build(&o, &text, &size, &err), TM_OK, "%s", err.message);
    json_t *r = json_loadb(text, size, 0, NULL);
    cr_assert_not_null(r);
    /* a: 0.01 <= 0.01 passes exactly at the threshold; b: 0.005 */
    cr_expect_str_eq(status_of(r, "fpr-at-threshold"), "pass");
    cr_expect_float_eq(measured(r, "fpr-at-threshold", "value"), 0.01, 1e-12, "the worst (largest) FPR is shown");
    /* upper bounds 0.02 (a) and 0.01 (b): a fails */
    cr_expect_str_eq(status_of(r, "fpr-upper-bound"), "fail");
    cr_expect_float_eq(measured(r, "fpr-upper-bound", "high"), 0.02, 1e-12);
    /* FNR = 1 - TPR: a 0.05, b 0.08 -> pass, worst 0.08 with interval [0.03, 0.15] */
    cr_expect_str_eq(status_of(r, "fnr"), "pass");
    cr_expect_float_eq(measured(r, "fnr", "value"), 0.08, 1e-12);
    cr_expect_float_eq(measured(r, "fnr", "low"), 0.03, 1e-12);
    cr_expect_float_eq(measured(r, "fnr", "high"), 0.15, 1e-12);
    /* a under delete: 0.4 < 0.5 */
    cr_expect_str_eq(status_of(r, "robust"), "fail");
    cr_expect_float_eq(measured(r, "robust", "value"), 0.4, 1e-12);
    cr_expect_eq(json_integer_value(json_object_get(clause(r, "robust"), "n_matched")), 3);
    /* a's median is null: not measured, although b's 40 passes (never a silent pass) */
    cr_expect_str_eq(status_of(r, "length"), "not_measured");
    cr_expect_str_eq(status_of(r, "length-b"), "pass");
    cr_expect_float_eq(measured(r, "length-b", "value"), 40, 1e-12);
    cr_expect(json_is_null(json_object_get(json_object_get(clause(r, "length-b"), "measured"), "low")),
              "a plain number has no interval to show");
    cr_expect_str_eq(json_string_value(json_object_get(clause(r, "robust"), "where")),
                     "runs[kind=watermark].results.schemes.a.attacks[attack=delete@0.1].at_fpr[fpr=0.01].tpr");
    cr_expect_str_eq(status_of(r, "other-kind"), "not_measured");
    cr_expect(json_is_null(json_object_get(clause(r, "other-kind"), "measured")));
    cr_expect_str_eq(status_of(r, "doc"), "documented");
    cr_expect_str_eq(status_of(r, "doc-empty"), "not_documented");
    json_t *summary = json_object_get(json_object_get(r, "compliance"), "summary");
    cr_expect_eq(json_integer_value(json_object_get(summary, "pass")), 3);
    cr_expect_eq(json_integer_value(json_object_get(summary, "fail")), 2);
    cr_expect_eq(json_integer_value(json_object_get(summary, "not_measured")), 2);
    /* the document is valid, and the validator rejects broken copies */
    json_t *schema = load_schema();
    char why[512] = "";
    cr_expect(valid(r, why, sizeof why), "%s", why);
    json_t *broken = json_deep_copy(r);
    json_object_set_new(json_object_get(clause(broken, "fnr"), "measured"), "value", json_string("0.08"));
    cr_expect_not(valid(broken, why, sizeof why), "a string value passed the schema");
    json_decref(broken);
    broken = json_deep_copy(r);
    json_object_del(broken, "caveats");
    cr_expect_not(valid(broken, why, sizeof why), "a missing section passed the schema");
    cr_expect(strstr(why, "missing required caveats"), "%s", why);
    json_decref(broken);
    broken = json_deep_copy(r);
    json_object_set_new(clause(broken, "doc"), "status", json_string("ok"));
    cr_expect_not(valid(broken, why, sizeof why), "an unknown status passed the schema");
    json_decref(broken);
    broken = json_deep_copy(r);
    json_object_set_new(broken, "private_key", json_string("x"));
    cr_expect_not(valid(broken, why, sizeof why), "an extra property passed the schema");
    json_decref(broken);
    json_decref(schema);
    json_decref(r);
    free(text), free(results), free(policy), free(run), free(dir);
}

Test(reports_build, refuses_what_is_not_an_input) {
    char *dir = tm_test_scratch_dir();
    char *file = tm_test_path(dir, "x.json");
    cr_assert_eq(tm_test_write_file(file, "{\"a\":1}", 7), 0);
    const char *inputs[] = {file};
    tm_report_options o = {inputs, 1, NULL, NULL, NULL, 0};
    char *text = NULL;
    tm_error err = {0};
    cr_expect_eq(tm_report_build(&o, &text, NULL, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "x.json: neither a run folder"), "%s", err.message);
    inputs[0] = dir; /* a folder without results.json */
    cr_expect_neq(tm_report_build(&o, &text, NULL, &err), TM_OK);
    cr_expect(strstr(err.message, "results.json"), "%s", err.message);
    free(file), free(dir);
}

/* ---- the shipped smoke run, end to end through the CLI ---- */

static char *read_out(const char *dir, const char *name, size_t *size) {
    char *path = tm_test_path(dir, name);
    char *text = tm_test_read_file(path, size);
    cr_assert_not_null(text, "%s not written", path);
    free(path);
    return text;
}

static size_t count(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

Test(reports_cli, smoke_run_eu_policy_signed, .timeout = 900) {
    char *dir = tm_test_scratch_dir();
    char *run = tm_test_path(dir, "smoke"), *out = tm_test_path(dir, "report");
    /* The smoke task names no model: the CLI resolves the fixtures' stories260K. */
    char *model_file = tm_fixture("models/stories260K.bin");
    setenv("TRACEMARK_MODEL", model_file, 1);
    free(model_file);
    tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s' --threads 2",
                                       TRACEMARK_SOURCE_DIR "/configs/tasks/watermark-smoke.yaml", run);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("keygen --signing --out '%s/signer'", dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("report '%s' '%s' --policy '%s' --format html,md,json --out '%s' --sign '%s/signer.key' --json", run,
                    TRACEMARK_SOURCE_DIR "/benchmarks/results/quick.json",
                    TRACEMARK_SOURCE_DIR "/configs/policies/eu-ai-act-art50.yaml", out, dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    json_t *printed = json_loads(r.out, 0, NULL);
    cr_assert_not_null(printed, "%s", r.out);
    cr_expect_eq(json_array_size(json_object_get(printed, "outputs")), 3);
    json_decref(printed);
    tm_test_cli_free(&r);

    size_t size;
    char *text = read_out(out, "report.json", &size);
    json_t *doc = json_loadb(text, size, 0, NULL);
    cr_assert_not_null(doc);
    json_t *schema = load_schema();
    char why[512] = "";
    cr_expect(valid(doc, why, sizeof why), "report.json breaks docs/report-schema.json: %s", why);
    /* The EU table filled from the smoke run: the null texts give no false
     * positive at 1% (pass), unigram's unattacked TPR at 1% FPR on 64-token
     * texts is far below 0.9 (fail), no provenance verdict was given (not
     * measured). */
    cr_expect_str_eq(status_of(doc, "art50.2-reliable-fpr"), "pass");
    cr_expect_float_eq(measured(doc, "art50.2-reliable-fpr", "value"), 0.0, 1e-12);
    cr_expect_str_eq(status_of(doc, "art50.2-detectable"), "fail");
    cr_expect_lt(measured(doc, "art50.2-detectable", "value"), 0.9);
    cr_expect_str_eq(status_of(doc, "art50.2-provenance"), "not_measured");
    cr_expect_str_eq(status_of(doc, "annex-xi-1a-model"), "documented");
    /* what it was made from, and no key */
    json_t *input = json_array_get(json_object_get(doc, "inputs"), 0);
    cr_expect_eq(strlen(json_string_value(json_object_get(input, "store_sha256"))), 64);
    cr_expect_eq(strlen(json_string_value(json_object_get(json_object_get(doc, "compliance"), "sha256"))), 64);
    json_t *signer = json_array_get(json_object_get(json_object_get(doc, "watermark"), "signers"), 0);
    cr_expect_eq(strlen(json_string_value(json_object_get(signer, "fingerprint"))), 64);
    cr_expect_eq(json_array_size(json_object_get(json_object_get(doc, "watermark"), "key_ids")), 1);
    json_t *model = json_array_get(json_object_get(doc, "model_details"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(model, "sha256")),
                     "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696");

    size_t html_size;
    char *html = read_out(out, "report.html", &html_size);
    cr_expect_eq(count(html, "<script"), 0);
    cr_expect_eq(count(html, "<link"), 0);
    cr_expect_eq(count(html, "<img"), 0);
    cr_expect_eq(count(html, "@font-face"), 0);
    cr_expect_eq(count(html, "url("), 0);
    /* the only URL is SVG's namespace name, which is never fetched */
    cr_expect_eq(count(html, "://"), count(html, "xmlns=\"http://www.w3.org/2000/svg\""));
    size_t charts = count(html, "<svg class=\"chart\"");
    /* heat map, 2 ROC, TPR-length, 2 p-value histograms, quality, speed */
    cr_expect_eq(charts, 8, "%zu charts", charts);
    cr_expect_eq(count(html, "role=\"img\" aria-label=\""), charts, "every chart has alt text");
    cr_expect_eq(count(html, "<figure><svg"), charts);
    cr_expect_eq(count(html, "</svg><figcaption>"), charts);
    cr_expect(strstr(html, "<td class=\"pass\">PASS</td>"));
    cr_expect(strstr(html, "<td class=\"fail\">FAIL</td>"));
    cr_expect(strstr(html, "<td class=\"nm\">NOT MEASURED</td>"));
    size_t md_size;
    char *md = read_out(out, "report.md", &md_size);
    cr_expect(strstr(md, "| art50.2-reliable-fpr |"));
    cr_expect(strstr(md, "| NOT MEASURED |"));
    cr_expect(strstr(md, "| FAIL |"));
    cr_expect_eq(count(md, "<svg"), 0);
    /* no output holds the private key's PEM body */
    char *key_path = tm_test_path(dir, "signer.key");
    char *key = tm_test_read_file(key_path, NULL);
    free(key_path);
    cr_assert_not_null(key);
    char *body = strchr(key, '\n');
    cr_assert_not_null(body);
    body[1 + 40] = 0;
    cr_expect_null(strstr(html, body + 1));
    cr_expect_null(strstr(md, body + 1));
    cr_expect_null(strstr(text, body + 1));

    /* signed: each output verifies; one changed byte fails */
    const char *names[] = {"report.html", "report.md", "report.json"};
    for (size_t i = 0; i < 3; i++) {
        r = tm_test_cli("verify '%s/%s' --trust '%s/signer.pub'", out, names[i], dir);
        cr_expect_eq(r.code, 0, "%s: %s %s", names[i], r.out, r.err);
        tm_test_cli_free(&r);
    }
    char *path = tm_test_path(out, "report.html");
    html[html_size / 2] ^= 1;
    cr_assert_eq(tm_test_write_file(path, html, html_size), 0);
    r = tm_test_cli("verify '%s' --trust '%s/signer.pub'", path, dir);
    cr_expect_eq(r.code, 3, "a changed byte verified: %s", r.out);
    tm_test_cli_free(&r);

    /* the NIST policy on the same run: hallucination clauses not measured */
    r = tm_test_cli("report '%s' --policy '%s' --format json --out '%s/nist'", run,
                    TRACEMARK_SOURCE_DIR "/configs/policies/nist-ai-600-1.yaml", dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    char *nist_dir = tm_test_path(dir, "nist");
    char *nist = read_out(nist_dir, "report.json", NULL);
    json_t *ndoc = json_loads(nist, 0, NULL);
    cr_assert_not_null(ndoc);
    cr_expect(valid(ndoc, why, sizeof why), "%s", why);
    cr_expect_str_eq(status_of(ndoc, "ms-2.7-005-fpr"), "pass");
    cr_expect_str_eq(status_of(ndoc, "confabulation-truthfulqa-mc1"), "not_measured");

    /* usage errors */
    r = tm_test_cli("report '%s' --out '%s/x' --format html,docx", run, dir);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "docx"), "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("report '%s'", run);
    cr_expect_eq(r.code, 2);
    tm_test_cli_free(&r);
    r = tm_test_cli("report '%s' --out '%s/y' --policy '%s/missing.yaml'", run, dir, dir);
    cr_expect_eq(r.code, 1);
    cr_expect(strstr(r.err, "tracemark: error:"), "%s", r.err);
    tm_test_cli_free(&r);

    /* without Chromium: the default formats say so and go on; an explicit pdf fails */
    setenv("TRACEMARK_CHROMIUM", "/nonexistent/chromium", 1);
    r = tm_test_cli("report '%s' --out '%s/nopdf'", run, dir);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.out, "note: no PDF written: Chromium is not installed"), "%s", r.out);
    tm_test_cli_free(&r);
    r = tm_test_cli("report '%s' --out '%s/nopdf2' --format pdf", run, dir);
    cr_expect_eq(r.code, 1);
    cr_expect(strstr(r.err, "Chromium is not installed"), "%s", r.err);
    tm_test_cli_free(&r);
    unsetenv("TRACEMARK_CHROMIUM");

    json_decref(ndoc);
    free(nist), free(nist_dir);
    free(path), free(key), free(md), free(html);
    json_decref(schema);
    json_decref(doc);
    free(text), free(run), free(out), free(dir);
}

/* A run of a kind this room does not know (the hallucination tasks arrive
 * later): its aggregates become a table and the [0, 1] scores with intervals
 * a chart; a policy reaches them by path. */
Test(reports_build, unknown_kind_listed_and_measured) {
    static const char results[] =
        "{\"task\":\"tqa\",\"kind\":\"truthfulqa\",\"task_sha256\":\""
        "1111111111111111111111111111111111111111111111111111111111111111\",\"model_sha256\":\"m\",\"seed\":\"2\","
        "\"n_samples\":100,\"n_present\":100,\"complete\":true,\"tracemark_version\":\"0\",\"tracemark_commit\":\"c\","
        "\"results\":{\"mc1\":{\"accuracy\":{\"value\":0.26,\"low\":0.2,\"high\":0.33,\"n\":100}},"
        "\"mc2\":{\"score\":{\"value\":0.41,\"low\":0.37,\"high\":0.45,\"n\":100}},\"items_skipped\":3}}";
    static const char policy[] = "policy: p\ntitle: t\nversion: 1\nclauses:\n"
                                 "  - {id: mc1, reference: r, requirement: q, comparison: '>', threshold: 0.23,\n"
                                 "     metric: 'runs[kind=truthfulqa].results.mc1.accuracy', bound: low}\n"
                                 "  - {id: mc1-value, reference: r, requirement: q, comparison: '>', threshold: 0.23,\n"
                                 "     metric: 'runs[kind=truthfulqa].results.mc1.accuracy'}\n";
    char *dir = tm_test_scratch_dir();
    char *run = tm_test_path(dir, "run");
    cr_assert_eq(mkdir(run, 0755), 0);
    char *rpath = tm_test_path(run, "results.json"), *ppath = tm_test_path(dir, "p.yaml");
    cr_assert_eq(tm_test_write_file(rpath, results, strlen(results)), 0);
    cr_assert_eq(tm_test_write_file(ppath, policy, strlen(policy)), 0);
    const char *inputs[] = {run};
    tm_report_options o = {inputs, 1, ppath, "T", NULL, 0};
    char *text = NULL, *html = NULL, *md = NULL;
    size_t size = 0, html_size = 0, md_size = 0;
    tm_error err = {0};
    cr_assert_eq(tm_report_build(&o, &text, &size, &err), TM_OK, "%s", err.message);
    json_t *r = json_loadb(text, size, 0, NULL);
    /* the interval's low end 0.2 is not above chance 0.23; the value 0.26 is */
    cr_expect_str_eq(status_of(r, "mc1"), "fail");
    cr_expect_str_eq(status_of(r, "mc1-value"), "pass");
    cr_assert_eq(tm_report_render_html(text, size, &html, &html_size, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_report_render_markdown(text, size, &md, &md_size, &err), TM_OK, "%s", err.message);
    cr_expect_eq(count(html, "<svg class=\"chart\""), 1, "one chart of the scores with intervals");
    cr_expect(strstr(html, "does not know the run kind &quot;truthfulqa&quot;"));
    cr_expect(strstr(md, "| mc1.accuracy | 0.26 | \\[0.2, 0.33\\] |"), "%s", md);
    cr_expect(strstr(md, "| items\\_skipped | 3 |"), "%s", md);
    cr_expect_eq(strcmp(json_string_value(json_object_get(r, "created")), "1970-01-01T00:00:00Z"), 0);
    json_decref(r);
    free(text), free(html), free(md), free(rpath), free(ppath), free(run), free(dir);
}

/* Untrusted run exports: wrong types anywhere in results leave figures "not
 * measured" (and rendering does not crash); a broken samples.jsonl line is
 * an error naming the file and line. */
Test(reports_build, malformed_exports) {
    static const char results[] =
        "{\"task\":\"<b>x</b>\",\"kind\":\"watermark\",\"task_sha256\":\""
        "2222222222222222222222222222222222222222222222222222222222222222\",\"model_sha256\":\"m\",\"seed\":\"3\","
        "\"n_samples\":4,\"n_present\":2,\"complete\":false,\"tracemark_version\":\"0\",\"tracemark_commit\":\"c\","
        "\"results\":{\"schemes\":{\"a\":{\"attacks\":\"not a list\",\"tpr_by_length\":[{\"length\":\"x\"}],"
        "\"quality\":7,\"tokens_to_detect\":[]},\"b\":[1,2],\"c\":{\"attacks\":[{\"attack\":3,\"at_fpr\":[{}]}]}},"
        "\"baseline_quality\":\"none\"}}";
    static const char policy[] = "policy: p\ntitle: t\nversion: 1\nclauses:\n"
                                 "  - {id: x, reference: r, requirement: q, comparison: '>=', threshold: 0.5,\n"
                                 "     metric: 'runs[kind=watermark].results.schemes.*.attacks[*].at_fpr[fpr=0.01].tpr'}\n"
                                 "  - {id: y, reference: r, requirement: q, comparison: '>=', threshold: 0.5,\n"
                                 "     metric: 'runs[kind=watermark].results.schemes.c.attacks[0].at_fpr[0]'}\n";
    char *dir = tm_test_scratch_dir();
    char *run = tm_test_path(dir, "run");
    cr_assert_eq(mkdir(run, 0755), 0);
    char *rpath = tm_test_path(run, "results.json"), *ppath = tm_test_path(dir, "p.yaml"),
         *spath = tm_test_path(run, "samples.jsonl");
    cr_assert_eq(tm_test_write_file(rpath, results, strlen(results)), 0);
    cr_assert_eq(tm_test_write_file(ppath, policy, strlen(policy)), 0);
    const char *inputs[] = {run};
    tm_report_options o = {inputs, 1, ppath, NULL, NULL, 0};
    char *text = NULL, *html = NULL, *md = NULL;
    size_t size = 0, hs = 0, ms = 0;
    tm_error err = {0};
    cr_assert_eq(tm_report_build(&o, &text, &size, &err), TM_OK, "%s", err.message);
    json_t *r = json_loadb(text, size, 0, NULL);
    cr_expect_str_eq(status_of(r, "x"), "not_measured");
    cr_expect_str_eq(status_of(r, "y"), "not_measured");
    cr_assert_eq(tm_report_render_html(text, size, &html, &hs, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_report_render_markdown(text, size, &md, &ms, &err), TM_OK, "%s", err.message);
    cr_expect(strstr(html, "&lt;b&gt;x&lt;/b&gt;") && !strstr(html, "<b>x</b>"), "the task name must be escaped");
    cr_expect(strstr(html, "(INCOMPLETE)"));
    json_decref(r);
    free(text), free(html), free(md);
    /* samples.jsonl with a broken second line */
    static const char samples[] = "{\"group\":\"null/human\",\"scores\":{\"log_p\":{}}}\n{\"group\":\n";
    cr_assert_eq(tm_test_write_file(spath, samples, strlen(samples)), 0);
    text = NULL;
    cr_expect_eq(tm_report_build(&o, &text, &size, &err), TM_ERR_FORMAT);
    cr_expect(strstr(err.message, "samples.jsonl:2: not a JSON object"), "%s", err.message);
    free(text);
    /* a render of something that is not a report */
    cr_expect_eq(tm_report_render_html("{\"schema\":\"other\"}", 18, &html, &hs, &err), TM_ERR_FORMAT);
    free(rpath), free(ppath), free(spath), free(run), free(dir);
}

/* The small-model caveat is about size, not about what the model writes: a
 * random-weight Llama 2 of 513,048 parameters (32,000-token vocabulary) is no
 * story model, and the report said before that it "writes simple children's
 * stories" of every model under 10 M parameters. */
Test(reports_build, small_model_caveat_names_size_not_genre) {
    char *model = tm_fixture("models/llama-2-tiny-random.gguf");
    FILE *probe = fopen(model, "rb");
    if (!probe) {
        free(model);
        cr_skip_test("fixture models/llama-2-tiny-random.gguf not found");
    }
    fclose(probe);
    char *dir = tm_test_scratch_dir();
    char *record = tm_test_path(dir, "gen.json");
    char json[4096];
    int n = snprintf(json, sizeof json,
                     "{\"model\":\"%s\",\"prompt\":\"Hi\",\"seed\":1,\"prompt_ids\":[1,6324],\"ids\":[29871],"
                     "\"text\":\" \",\"stop_reason\":\"max_tokens\",\"watermark\":null,\"sampling\":{}}",
                     model);
    cr_assert(n > 0 && (size_t)n < sizeof json);
    cr_assert_eq(tm_test_write_file(record, json, (size_t)n), 0);
    const char *inputs[] = {record};
    tm_report_options o = {inputs, 1, NULL, "T", NULL, 0};
    char *text = NULL;
    size_t size = 0;
    tm_error err = {0};
    cr_assert_eq(tm_report_build(&o, &text, &size, &err), TM_OK, "%s", err.message);
    json_t *r = json_loadb(text, size, 0, NULL);
    cr_assert_not_null(r);
    size_t i;
    json_t *c;
    bool size_caveat = false;
    json_array_foreach(json_object_get(r, "caveats"), i, c) {
        const char *s = json_string_value(c);
        cr_assert_not_null(s);
        cr_expect_null(strstr(s, "children"), "a caveat tells what this model writes: %s", s);
        if (strstr(s, "has only 513048 parameters")) size_caveat = true;
    }
    cr_expect(size_caveat, "no caveat names the model's 513048 parameters: %s", text);
    json_decref(r);
    free(text), free(record), free(dir), free(model);
}
