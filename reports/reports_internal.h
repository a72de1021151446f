/* Private plumbing of the reports room: a growing text buffer with the
 * escaping HTML and Markdown need, the SVG chart primitives, the policy
 * evaluation over a report document, and small JSON accessors. Nothing
 * outside reports/ includes this header, and nothing here prints. */
#ifndef TRACEMARK_REPORTS_INTERNAL_H
#define TRACEMARK_REPORTS_INTERNAL_H

#include "tracemark/reports.h"

#include <jansson.h>
#include <stdarg.h>

/* ---- escaping into core's tm_buffer (reports/buffer.c) ---- */
/* Text escaped for HTML element content and attribute values. */
void rb_html(tm_buffer *b, const char *s);
/* Text escaped for a Markdown table cell (pipes, newlines, HTML specials). */
void rb_md(tm_buffer *b, const char *s);
/* Hand the text to the caller (NUL-terminated) or fail with TM_ERR_NOMEM. */
tm_status rb_finish(tm_buffer *b, char **out, size_t *size, tm_error *err);

/* A number for people: 3 significant digits, "—" for NaN/missing. */
void fmt_num(char *out, size_t n, double x);
/* {value, low, high} (or a plain number) as "v [low, high]". */
void fmt_interval(char *out, size_t n, const json_t *v);
/* The value of {value,...} or of a plain number; NaN otherwise. */
double jnum(const json_t *v);
double jfield(const json_t *object, const char *key); /* jnum(object[key]) */
const char *jstr(const json_t *object, const char *key); /* "" when absent */

/* ---- SVG charts (reports/charts.c) ---- */
typedef struct {
    const char *name;
    const double *x, *y;           /* n points */
    const double *low, *high;      /* optional error bars on y */
    size_t n;
} tm_series;

/* Line chart (ROC curves, TPR against length): axes from xmin..xmax and
 * ymin..ymax, log10 x when log_x, a diagonal when diagonal. */
void svg_lines(tm_buffer *b, const char *title, const char *alt, const char *xlabel, const char *ylabel,
               const tm_series *series, size_t n_series, double xmin, double xmax, double ymin, double ymax,
               bool diagonal);
/* Grouped histogram: n_bins bins labelled by bin_labels, one bar per series. */
void svg_histogram(tm_buffer *b, const char *title, const char *alt, const char *xlabel, const char *const *bin_labels,
                   size_t n_bins, const tm_series *series, size_t n_series);
/* Horizontal bars with optional intervals and a reference line at ref (NaN: none). */
void svg_bars(tm_buffer *b, const char *title, const char *alt, const char *xlabel, const char *const *labels,
              const double *values, const double *low, const double *high, size_t n, double xmin, double xmax,
              double ref);
/* Heat map rows x cols of values in [0, 1] (NaN: grey). */
void svg_heatmap(tm_buffer *b, const char *title, const char *alt, const char *const *row_labels, size_t rows,
                 const char *const *col_labels, size_t cols, const double *values);

/* ---- policies (reports/policy.c) ---- */
/* The compliance section of a report: every clause evaluated against the
 * report document (its "runs", "benchmarks", "verifications" and sections). */
json_t *policy_evaluate(const tm_report_policy *policy, const json_t *report);
const char *policy_path(const tm_report_policy *policy);
const char *policy_sha256(const tm_report_policy *policy);
const char *policy_title(const tm_report_policy *policy);

#endif
