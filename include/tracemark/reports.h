/* tracemark reports: regulator-readable evidence from evaluation runs. A
 * report is first one JSON document (schema docs/report-schema.json,
 * "tracemark.report" version 1) built from run folders (results.json,
 * samples.jsonl and the run store's meta, read through the evals API),
 * benchmark results (benchmarks/results/NAME.json), provenance verdicts
 * (`tracemark verify --json`) and, optionally, a compliance policy (YAML,
 * configs/policies/) whose clauses are evaluated against the measurements.
 * HTML (self-contained: inline CSS and SVG charts, no script, font or network
 * reference) and Markdown are rendered from that document alone, so every
 * format says the same thing. Nothing here prints or exits; nothing here ever
 * reads, records or prints a key: only key ids and signer fingerprints. */
#ifndef TRACEMARK_REPORTS_H
#define TRACEMARK_REPORTS_H

#include "tracemark/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TM_REPORT_SCHEMA "tracemark.report"
#define TM_REPORT_SCHEMA_VERSION 1

enum { TM_REPORT_MAX_INPUTS = 64, TM_REPORT_MAX_CLAUSES = 256 };

/* ---- compliance policies (reports/policy.c) ------------------------------ */

typedef struct tm_report_policy tm_report_policy;

/* Parse a policy file strictly: unknown or duplicate keys, wrong types, an
 * unknown comparison or metric path syntax are errors "FILE:LINE: FIELD: what". */
tm_status tm_report_policy_load(tm_report_policy **out, const char *path, tm_error *err);
tm_status tm_report_policy_parse(tm_report_policy **out, const char *path, const char *text, size_t size,
                                 tm_error *err);
size_t tm_report_policy_clause_count(const tm_report_policy *policy);
const char *tm_report_policy_name(const tm_report_policy *policy);
void tm_report_policy_free(tm_report_policy *policy);

/* ---- building and rendering ---------------------------------------------- */

typedef struct {
    const char *const *inputs;  /* run folders, benchmark JSON files, verify --json outputs */
    size_t n_inputs;
    const char *policy_path;    /* NULL: no compliance section */
    const char *title;          /* NULL: a title from the runs */
    const char *signer_fingerprint; /* recorded when the outputs will be signed; NULL otherwise */
    int64_t created;            /* seconds since the epoch (UTC) written as "created" */
} tm_report_options;

/* The report document: pretty JSON text with sorted keys (ends in a
 * newline); *out NUL-terminated, free(). Fails on unreadable or malformed
 * inputs, naming the file; a run of an unknown kind is not an error (its
 * aggregates are listed as tables). */
tm_status tm_report_build(const tm_report_options *options, char **out, size_t *out_size, tm_error *err);

/* Render a report document (as tm_report_build wrote it) to one
 * self-contained HTML page or to Markdown. */
tm_status tm_report_render_html(const char *report_json, size_t size, char **out, size_t *out_size, tm_error *err);
tm_status tm_report_render_markdown(const char *report_json, size_t size, char **out, size_t *out_size,
                                    tm_error *err);

/* The headless browser used for PDF: $TRACEMARK_CHROMIUM, else chromium,
 * chromium-browser or google-chrome on PATH; NULL when none is installed. */
const char *tm_report_find_browser(void);
/* Print html_path to pdf_path with the browser (headless, no network, a
 * private temporary profile); TM_ERR_NOT_FOUND when no browser is installed. */
tm_status tm_report_print_pdf(const char *html_path, const char *pdf_path, tm_error *err);

#ifdef __cplusplus
}
#endif

#endif
