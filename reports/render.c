/* Renders a report document into HTML (one self-contained page: inline CSS
 * and SVG, printable) or Markdown, through one walk over the document, so
 * both say the same: each section, each table, and each chart followed by the
 * table of its numbers (Markdown has the tables only). It must never emit a
 * <script>, an external URL, a font or an image reference, and never let text
 * from the inputs through unescaped. */
#include "reports_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tm_buffer b;
    bool html;
    int n_cols;
} out;

static void text(out *o, const char *s) {
    if (o->html) rb_html(&o->b, s);
    else rb_md(&o->b, s);
}

static void heading(out *o, int level, const char *id, const char *title) {
    if (o->html) {
        tm_buffer_printf(&o->b, "<h%d id=\"%s\">", level, id);
        rb_html(&o->b, title);
        tm_buffer_printf(&o->b, "</h%d>\n", level);
    } else {
        tm_buffer_printf(&o->b, "\n%.*s ", level, "######");
        rb_md(&o->b, title);
        tm_buffer_puts(&o->b, "\n\n");
    }
}

static void para(out *o, const char *s) {
    if (o->html) tm_buffer_puts(&o->b, "<p>");
    text(o, s);
    tm_buffer_puts(&o->b, o->html ? "</p>\n" : "\n\n");
}

static void table_begin(out *o, const char *caption, const char *const *headers, int n) {
    o->n_cols = n;
    if (o->html) {
        tm_buffer_puts(&o->b, "<table>");
        if (caption) {
            tm_buffer_puts(&o->b, "<caption>");
            rb_html(&o->b, caption);
            tm_buffer_puts(&o->b, "</caption>");
        }
        tm_buffer_puts(&o->b, "<thead><tr>");
        for (int i = 0; i < n; i++) {
            tm_buffer_puts(&o->b, "<th scope=\"col\">");
            rb_html(&o->b, headers[i]);
            tm_buffer_puts(&o->b, "</th>");
        }
        tm_buffer_puts(&o->b, "</tr></thead><tbody>\n");
    } else {
        if (caption) {
            tm_buffer_puts(&o->b, "*");
            rb_md(&o->b, caption);
            tm_buffer_puts(&o->b, "*\n\n");
        }
        tm_buffer_puts(&o->b, "|");
        for (int i = 0; i < n; i++) {
            tm_buffer_puts(&o->b, " ");
            rb_md(&o->b, headers[i]);
            tm_buffer_puts(&o->b, " |");
        }
        tm_buffer_puts(&o->b, "\n|");
        for (int i = 0; i < n; i++) tm_buffer_puts(&o->b, "---|");
        tm_buffer_puts(&o->b, "\n");
    }
}

/* A row of n_cols cells; cells may be NULL ("—"). cls: an optional class
 * for the last cell (status badges). */
static void row(out *o, const char *const *cells, const char *cls) {
    tm_buffer_puts(&o->b, o->html ? "<tr>" : "|");
    for (int i = 0; i < o->n_cols; i++) {
        const char *c = cells[i] && cells[i][0] ? cells[i] : "—";
        if (o->html) {
            if (cls && i == o->n_cols - 1) tm_buffer_printf(&o->b, "<td class=\"%s\">", cls);
            else tm_buffer_puts(&o->b, "<td>");
            rb_html(&o->b, c);
            tm_buffer_puts(&o->b, "</td>");
        } else {
            tm_buffer_puts(&o->b, " ");
            rb_md(&o->b, c);
            tm_buffer_puts(&o->b, " |");
        }
    }
    tm_buffer_puts(&o->b, o->html ? "</tr>\n" : "\n");
}

static void table_end(out *o) { tm_buffer_puts(&o->b, o->html ? "</tbody></table>\n" : "\n"); }

static void figure_begin(out *o) {
    if (o->html) tm_buffer_puts(&o->b, "<figure>");
}
static void figure_end(out *o, const char *caption) {
    if (o->html) {
        tm_buffer_puts(&o->b, "<figcaption>");
        rb_html(&o->b, caption);
        tm_buffer_puts(&o->b, "</figcaption></figure>\n");
    } else {
        tm_buffer_puts(&o->b, "*Chart (in the HTML report): ");
        rb_md(&o->b, caption);
        tm_buffer_puts(&o->b, " The numbers are in the table below.*\n\n");
    }
}

static void interval_cell(char *buf, size_t n, const json_t *v) {
    if (!v || json_is_null(v)) snprintf(buf, n, "not measured");
    else fmt_interval(buf, n, v);
}

/* ---- sections ---- */

static void model_section(out *o, const json_t *r) {
    heading(o, 2, "model", "1. Model details");
    const json_t *models = json_object_get(r, "model_details");
    if (!json_array_size(models)) {
        para(o, "No run of this report names a model (benchmark or verification inputs only).");
        return;
    }
    static const char *const h[] = {"field", "value"};
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m) {
        char caption[96], params[32] = "", ctx[32] = "";
        snprintf(caption, sizeof caption, "Model %zu", i + 1);
        if (json_is_integer(json_object_get(m, "parameters")))
            snprintf(params, sizeof params, "%lld", (long long)json_integer_value(json_object_get(m, "parameters")));
        if (json_is_integer(json_object_get(m, "context_length")))
            snprintf(ctx, sizeof ctx, "%lld", (long long)json_integer_value(json_object_get(m, "context_length")));
        table_begin(o, caption, h, 2);
        const char *rows[][2] = {{"file SHA-256", jstr(m, "sha256")}, {"path", jstr(m, "path")},
                                 {"format", jstr(m, "format")},       {"architecture", jstr(m, "architecture")},
                                 {"parameters", params},              {"quantisation", jstr(m, "quantisation")},
                                 {"context length (trained)", ctx},   {"licence", jstr(m, "licence")},
                                 {"note", jstr(m, "note")}};
        for (size_t k = 0; k < sizeof rows / sizeof *rows; k++)
            if (k != 8 || *rows[k][1]) row(o, rows[k], NULL);
        table_end(o);
    }
}

static void use_section(out *o, const json_t *r) {
    heading(o, 2, "use", "2. Intended use");
    const json_t *u = json_object_get(r, "intended_use");
    static const char *const h[] = {"aspect", "statement"};
    table_begin(o, NULL, h, 2);
    const char *a[] = {"primary use", jstr(u, "primary")}, *b[] = {"users", jstr(u, "users")},
               *c[] = {"out of scope", jstr(u, "out_of_scope")};
    row(o, a, NULL);
    row(o, b, NULL);
    row(o, c, NULL);
    table_end(o);
}

static void watermark_section(out *o, const json_t *r) {
    heading(o, 2, "watermark", "3. Watermark and provenance configuration");
    const json_t *w = json_object_get(r, "watermark");
    para(o, jstr(w, "keys_note"));
    static const char *const hs[] = {"run", "scheme", "parameters"};
    table_begin(o, "Watermark schemes", hs, 3);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(w, "schemes"), i, v) {
        const char *cells[] = {jstr(v, "run"), jstr(v, "scheme"), jstr(v, "parameters")};
        row(o, cells, NULL);
    }
    table_end(o);
    static const char *const hk[] = {"run", "key id", "source"};
    table_begin(o, "Watermark key ids (never keys)", hk, 3);
    json_array_foreach(json_object_get(w, "key_ids"), i, v) {
        const char *cells[] = {jstr(v, "run"), jstr(v, "key_id"), jstr(v, "source")};
        row(o, cells, NULL);
    }
    table_end(o);
    static const char *const hf[] = {"signer fingerprint (SHA-256 of the Ed25519 public key)", "role"};
    table_begin(o, "Provenance signers", hf, 2);
    if (!json_array_size(json_object_get(w, "signers"))) {
        const char *cells[] = {"none", "this report is not signed and no verification verdict was given"};
        row(o, cells, NULL);
    }
    json_array_foreach(json_object_get(w, "signers"), i, v) {
        const char *cells[] = {jstr(v, "fingerprint"), jstr(v, "role")};
        row(o, cells, NULL);
    }
    table_end(o);
}

static void metrics_section(out *o, const json_t *r) {
    heading(o, 2, "metrics", "4. Metrics and decision thresholds");
    const json_t *m = json_object_get(r, "metrics");
    static const char *const h[] = {"metric", "definition"};
    table_begin(o, NULL, h, 2);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(m, "definitions"), i, v) {
        const char *cells[] = {jstr(v, "name"), jstr(v, "definition")};
        row(o, cells, NULL);
    }
    table_end(o);
    static const char *const ht[] = {"run", "target FPRs (alpha)", "decision FPR"};
    table_begin(o, "Decision thresholds: a text is called watermarked when p <= alpha", ht, 3);
    json_array_foreach(json_object_get(m, "thresholds"), i, v) {
        char fprs[256] = "", d[32];
        size_t k;
        json_t *f;
        json_array_foreach(json_object_get(v, "fprs"), k, f) {
            char t[32];
            fmt_num(t, sizeof t, jnum(f));
            snprintf(fprs + strlen(fprs), sizeof fprs - strlen(fprs), "%s%s", k ? ", " : "", t);
        }
        fmt_num(d, sizeof d, jfield(v, "decision_fpr"));
        const char *cells[] = {jstr(v, "run"), fprs, d};
        row(o, cells, NULL);
    }
    table_end(o);
}

static void data_section(out *o, const json_t *r) {
    heading(o, 2, "data", "5. Evaluation data");
    static const char *const h[] = {"run", "data", "file", "n", "SHA-256", "licence", "note"};
    table_begin(o, NULL, h, 7);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r, "evaluation_data"), i, v) {
        char n[32] = "";
        if (json_is_integer(json_object_get(v, "n")))
            snprintf(n, sizeof n, "%lld", (long long)json_integer_value(json_object_get(v, "n")));
        const char *cells[] = {jstr(v, "run"), jstr(v, "name"), jstr(v, "file"), n, jstr(v, "sha256"),
                               jstr(v, "licence"), jstr(v, "note")};
        row(o, cells, NULL);
    }
    table_end(o);
}

/* ---- quantitative analyses of a watermark run ---- */

static const json_t *first_fpr_entry(const json_t *attack) { return json_array_get(json_object_get(attack, "at_fpr"), 0); }

static void heatmap(out *o, const json_t *run, const char *anchor) {
    const json_t *schemes = json_object_get(json_object_get(run, "results"), "schemes");
    size_t rows = json_object_size(schemes), cols = 0;
    if (!rows) return;
    const char *name;
    json_t *s;
    json_object_foreach((json_t *)schemes, name, s) if (json_array_size(json_object_get(s, "attacks")) > cols) cols =
        json_array_size(json_object_get(s, "attacks"));
    const char **rl = calloc(rows, sizeof *rl), **cl = calloc(cols ? cols : 1, sizeof *cl);
    double *vals = calloc(rows * (cols ? cols : 1), sizeof *vals);
    if (!rl || !cl || !vals) { free(rl); free(cl); free(vals); o->b.failed = true; return; }
    double fpr = NAN;
    size_t i = 0;
    json_object_foreach((json_t *)schemes, name, s) {
        rl[i] = name;
        for (size_t j = 0; j < cols; j++) {
            const json_t *a = json_array_get(json_object_get(s, "attacks"), j);
            if (!cl[j] && a) cl[j] = jstr(a, "attack");
            const json_t *e = first_fpr_entry(a);
            vals[i * cols + j] = e ? jfield(e, "tpr") : NAN;
            if (e) fpr = jfield(e, "fpr");
        }
        i++;
    }
    for (size_t j = 0; j < cols; j++) if (!cl[j]) cl[j] = "?";
    char title[128], alt[512], f[32];
    fmt_num(f, sizeof f, fpr);
    snprintf(title, sizeof title, "Robustness: TPR at FPR %s, scheme × attack", f);
    snprintf(alt, sizeof alt, "Heat map of the true-positive rate at a target false-positive rate of %s for each of %zu "
                              "schemes (rows) under each of %zu attacks (columns); darker is more detected. The "
                              "table below gives every value with its 95%% interval.", f, rows, cols);
    figure_begin(o);
    if (o->html) svg_heatmap(&o->b, title, alt, rl, rows, cl, cols, vals);
    figure_end(o, alt);
    static const char *const h[] = {"scheme", "attack", "n watermarked / null", "AUC", "target FPR", "TPR",
                                    "empirical FPR"};
    table_begin(o, "Detection under attack (values with 95% bootstrap intervals)", h, 7);
    json_object_foreach((json_t *)schemes, name, s) {
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(s, "attacks"), k, a) {
            size_t m;
            json_t *e;
            json_array_foreach(json_object_get(a, "at_fpr"), m, e) {
                char n[64], auc[96], tf[32], tpr[96], efpr[96];
                snprintf(n, sizeof n, "%lld / %lld", (long long)json_integer_value(json_object_get(a, "n_positive")),
                         (long long)json_integer_value(json_object_get(a, "n_negative")));
                interval_cell(auc, sizeof auc, json_object_get(a, "auc"));
                fmt_num(tf, sizeof tf, jfield(e, "fpr"));
                interval_cell(tpr, sizeof tpr, json_object_get(e, "tpr"));
                interval_cell(efpr, sizeof efpr, json_object_get(e, "empirical_fpr"));
                const char *cells[] = {name, jstr(a, "attack"), n, m ? "" : auc, tf, tpr, efpr};
                row(o, cells, NULL);
            }
        }
    }
    table_end(o);
    (void)anchor;
    free(rl);
    free(cl);
    free(vals);
}

static void roc_charts(out *o, const json_t *run) {
    const json_t *roc = json_object_get(json_object_get(run, "curves"), "roc");
    if (!json_array_size(roc)) {
        para(o, "No per-sample scores (samples.jsonl) were found: ROC curves and p-value histograms are not drawn.");
        return;
    }
    /* one chart per scheme and group of attacks (at most ROC_PER_CHART curves,
     * the unattacked curve in each as the reference), one curve per attack */
    enum { ROC_PER_CHART = 8, MAX_SCHEMES = 64 };
    const char *done[MAX_SCHEMES];
    size_t n_done = 0;
    size_t i;
    json_t *c;
    json_array_foreach(roc, i, c) {
        const char *scheme = jstr(c, "scheme");
        bool seen = false;
        for (size_t k = 0; k < n_done; k++) seen = seen || !strcmp(done[k], scheme);
        if (seen || n_done == MAX_SCHEMES) continue;
        done[n_done++] = scheme;
        const json_t *mine[256], *none = NULL;
        size_t n_mine = 0, j;
        json_t *d;
        /* curves in the order of the run's attacks, then any the results do not list */
        const json_t *attacks = json_object_get(json_object_get(json_object_get(json_object_get(run, "results"), "schemes"), scheme), "attacks");
        size_t a;
        json_t *at;
        json_array_foreach(attacks, a, at) json_array_foreach(roc, j, d) {
            if (strcmp(jstr(d, "scheme"), scheme) || strcmp(jstr(d, "attack"), jstr(at, "attack"))) continue;
            if (!strcmp(jstr(d, "attack"), "none")) none = d;
            else if (n_mine < 256) mine[n_mine++] = d;
        }
        json_array_foreach(roc, j, d) {
            if (strcmp(jstr(d, "scheme"), scheme)) continue;
            bool listed = d == none;
            for (size_t k = 0; k < n_mine && !listed; k++) listed = mine[k] == d;
            if (listed) continue;
            if (!strcmp(jstr(d, "attack"), "none")) none = d;
            else if (n_mine < 256) mine[n_mine++] = d;
        }
        size_t groups = n_mine ? (n_mine + ROC_PER_CHART - 2) / (ROC_PER_CHART - 1) : 1;
        for (size_t g = 0; g < groups; g++) {
            tm_series series[ROC_PER_CHART];
            double *bufs[ROC_PER_CHART];
            size_t ns = 0;
            const json_t *curves[ROC_PER_CHART];
            size_t nc = 0;
            if (none) curves[nc++] = none;
            for (size_t k = g * (ROC_PER_CHART - 1); k < n_mine && k < (g + 1) * (ROC_PER_CHART - 1); k++) curves[nc++] = mine[k];
            for (size_t k = 0; k < nc; k++) {
                const json_t *pts = json_object_get(curves[k], "points");
                size_t np = json_array_size(pts);
                double *xy = calloc(2 * (np ? np : 1), sizeof *xy);
                if (!xy) { o->b.failed = true; break; }
                for (size_t p = 0; p < np; p++) {
                    xy[p] = jnum(json_array_get(json_array_get(pts, p), 0));
                    xy[np + p] = jnum(json_array_get(json_array_get(pts, p), 1));
                }
                bufs[ns] = xy;
                series[ns] = (tm_series){jstr(curves[k], "attack"), xy, xy + np, NULL, NULL, np};
                ns++;
            }
            char title[160], alt[600];
            if (groups > 1) snprintf(title, sizeof title, "ROC curves: %s (%zu of %zu)", scheme, g + 1, groups);
            else snprintf(title, sizeof title, "ROC curves: %s, one curve per attack", scheme);
            snprintf(alt, sizeof alt, "ROC curves of the %s detector: true-positive rate against false-positive rate over "
                                      "every threshold, for %s%zu attacks; the dashed diagonal is chance. AUC per attack "
                                      "in the detection table above; the points in the table below.",
                     scheme, none ? "the unattacked text and " : "", ns - (none ? 1 : 0));
            figure_begin(o);
            if (o->html) svg_lines(&o->b, title, alt, "false-positive rate", "true-positive rate", series, ns, 0, 1, 0, 1, true);
            figure_end(o, alt);
            for (size_t k = 0; k < ns; k++) free(bufs[k]);
        }
        static const char *const h[] = {"attack", "n watermarked", "n null", "ROC points (FPR, TPR)"};
        if (o->html) tm_buffer_puts(&o->b, "<details><summary>ROC points of each curve</summary>");
        table_begin(o, NULL, h, 4);
        json_array_foreach(roc, j, d) {
            if (strcmp(jstr(d, "scheme"), scheme)) continue;
            char np[32], nn[32];
            snprintf(np, sizeof np, "%lld", (long long)json_integer_value(json_object_get(d, "n_positive")));
            snprintf(nn, sizeof nn, "%lld", (long long)json_integer_value(json_object_get(d, "n_negative")));
            tm_buffer pts = {0};
            size_t p;
            json_t *pt;
            json_array_foreach(json_object_get(d, "points"), p, pt) {
                if (p >= 40) { tm_buffer_puts(&pts, " … (all in the JSON report)"); break; }
                tm_buffer_printf(&pts, "%s(%.3g, %.3g)", p ? " " : "", jnum(json_array_get(pt, 0)), jnum(json_array_get(pt, 1)));
            }
            const char *cells[] = {jstr(d, "attack"), np, nn, pts.data ? pts.data : ""};
            row(o, cells, NULL);
            tm_buffer_free(&pts);
        }
        table_end(o);
        if (o->html) tm_buffer_puts(&o->b, "</details>\n");
    }
}

static void length_chart(out *o, const json_t *run) {
    const json_t *schemes = json_object_get(json_object_get(run, "results"), "schemes");
    tm_series series[32];
    double *bufs[32];
    size_t ns = 0;
    double xmax = 1;
    const char *name;
    json_t *s;
    json_object_foreach((json_t *)schemes, name, s) {
        const json_t *t = json_object_get(s, "tpr_by_length");
        size_t n = json_array_size(t);
        if (!n || ns == 32) continue;
        double *v = calloc(4 * n, sizeof *v);
        if (!v) { o->b.failed = true; break; }
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(t, i);
            v[i] = jfield(e, "length");
            v[n + i] = jfield(e, "tpr");
            const json_t *tpr = json_object_get(e, "tpr");
            v[2 * n + i] = jfield(tpr, "low");
            v[3 * n + i] = jfield(tpr, "high");
            if (v[i] > xmax) xmax = v[i];
        }
        bufs[ns] = v;
        series[ns] = (tm_series){name, v, v + n, v + 2 * n, v + 3 * n, n};
        ns++;
    }
    if (!ns) return;
    char f[32], alt[512];
    fmt_num(f, sizeof f, jfield(run, "decision_fpr"));
    snprintf(alt, sizeof alt, "True-positive rate at the decision FPR (%s) on the first N tokens of the unattacked "
                              "text, one line per scheme, with 95%% intervals as vertical bars; numbers below.", f);
    figure_begin(o);
    if (o->html) svg_lines(&o->b, "TPR against text length", alt, "tokens", "TPR", series, ns, 0, xmax, 0, 1, false);
    figure_end(o, alt);
    static const char *const h[] = {"scheme", "length (tokens)", "n", "TPR [95% CI]"};
    table_begin(o, NULL, h, 4);
    json_object_foreach((json_t *)schemes, name, s) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(s, "tpr_by_length"), i, e) {
            char l[32], n[32], t[96];
            snprintf(l, sizeof l, "%lld", (long long)json_integer_value(json_object_get(e, "length")));
            snprintf(n, sizeof n, "%lld", (long long)json_integer_value(json_object_get(e, "n")));
            interval_cell(t, sizeof t, json_object_get(e, "tpr"));
            const char *cells[] = {name, l, n, t};
            row(o, cells, NULL);
        }
    }
    table_end(o);
    static const char *const h2[] = {"scheme", "detected / n", "median tokens to detect"};
    table_begin(o, "Tokens needed to detect (at the decision FPR)", h2, 3);
    json_object_foreach((json_t *)schemes, name, s) {
        const json_t *t = json_object_get(s, "tokens_to_detect");
        char d[64], m[64];
        snprintf(d, sizeof d, "%lld / %lld", (long long)json_integer_value(json_object_get(t, "detected")),
                 (long long)json_integer_value(json_object_get(t, "n")));
        if (json_is_number(json_object_get(t, "median"))) fmt_num(m, sizeof m, jfield(t, "median"));
        else snprintf(m, sizeof m, "not reached (fewer than half detected)");
        const char *cells[] = {name, d, m};
        row(o, cells, NULL);
    }
    table_end(o);
    for (size_t k = 0; k < ns; k++) free(bufs[k]);
}

static void pvalue_charts(out *o, const json_t *run) {
    const json_t *h = json_object_get(json_object_get(run, "curves"), "pvalue_histograms");
    const json_t *bins = json_object_get(h, "bins");
    size_t nb = json_array_size(bins);
    if (!nb || nb > 32) return;
    const char *labels[32];
    for (size_t b = 0; b < nb; b++) labels[b] = json_string_value(json_array_get(bins, b)) ? json_string_value(json_array_get(bins, b)) : "";
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(h, "schemes"), i, s) {
        double shares[2][32];
        const char *groups[2] = {"watermarked", "null"};
        double totals[2] = {0, 0};
        for (int g = 0; g < 2; g++) {
            const json_t *counts = json_object_get(s, groups[g]);
            for (size_t b = 0; b < nb; b++) totals[g] += jnum(json_array_get(counts, b));
            for (size_t b = 0; b < nb; b++)
                shares[g][b] = totals[g] > 0 ? jnum(json_array_get(counts, b)) / totals[g] : NAN;
        }
        tm_series series[2] = {{"watermarked", NULL, shares[0], NULL, NULL, nb}, {"null", NULL, shares[1], NULL, NULL, nb}};
        char title[160], alt[512];
        snprintf(title, sizeof title, "p-values of unattacked text: %s (log axis)", jstr(s, "scheme"));
        snprintf(alt, sizeof alt, "Histogram of detector p-values for %s on a logarithmic axis (bins by powers of ten), "
                                  "watermarked texts against null texts, as shares of each group; counts below.",
                 jstr(s, "scheme"));
        figure_begin(o);
        if (o->html) svg_histogram(&o->b, title, alt, "p-value (log10 bins)", labels, nb, series, 2);
        figure_end(o, alt);
        static const char *const hh[] = {"p-value bin", "watermarked (count)", "null (count)"};
        table_begin(o, NULL, hh, 3);
        for (size_t b = 0; b < nb; b++) {
            char a[32], c[32];
            snprintf(a, sizeof a, "%g", jnum(json_array_get(json_object_get(s, "watermarked"), b)));
            snprintf(c, sizeof c, "%g", jnum(json_array_get(json_object_get(s, "null"), b)));
            const char *cells[] = {labels[b], a, c};
            row(o, cells, NULL);
        }
        table_end(o);
    }
}

static void quality_chart(out *o, const json_t *run) {
    const json_t *res = json_object_get(run, "results");
    const json_t *schemes = json_object_get(res, "schemes"), *base = json_object_get(res, "baseline_quality");
    size_t n = json_object_size(schemes);
    if (!n || n > 64) return;
    const char *labels[64];
    double v[64], lo[64], hi[64], xmax = 1.5;
    double bp = jfield(json_object_get(base, "perplexity"), "value");
    size_t i = 0;
    const char *name;
    json_t *s;
    json_object_foreach((json_t *)schemes, name, s) {
        const json_t *p = json_object_get(json_object_get(s, "quality"), "perplexity");
        labels[i] = name;
        v[i] = jfield(p, "ratio_to_baseline");
        lo[i] = bp > 0 ? jfield(p, "low") / bp : NAN;
        hi[i] = bp > 0 ? jfield(p, "high") / bp : NAN;
        if (isfinite(hi[i]) && hi[i] > xmax) xmax = hi[i];
        if (isfinite(v[i]) && v[i] > xmax) xmax = v[i];
        i++;
    }
    const char *alt = "Quality cost of each scheme: perplexity of watermarked text under the model divided by that of "
                      "unwatermarked text (1 = no cost, dashed line), with the interval of the watermarked perplexity "
                      "over the baseline's mean; every quality measure is in the table below.";
    figure_begin(o);
    if (o->html) svg_bars(&o->b, "Quality cost: perplexity ratio to unwatermarked", alt, "perplexity ratio", labels, v, lo, hi, n, 0, xmax, 1);
    figure_end(o, alt);
    static const char *const h[] = {"scheme", "measure", "value [95% CI]", "minus baseline", "ratio to baseline"};
    table_begin(o, NULL, h, 5);
    json_object_foreach((json_t *)schemes, name, s) {
        const char *m;
        json_t *q;
        json_object_foreach(json_object_get(s, "quality"), m, q) {
            char a[96], d[32], r[32];
            interval_cell(a, sizeof a, q);
            fmt_num(d, sizeof d, jfield(q, "minus_baseline"));
            fmt_num(r, sizeof r, jfield(q, "ratio_to_baseline"));
            const char *cells[] = {name, m, a, d, r};
            row(o, cells, NULL);
        }
    }
    const char *m;
    json_t *q;
    json_object_foreach((json_t *)base, m, q) {
        char a[96];
        interval_cell(a, sizeof a, q);
        const char *cells[] = {"(unwatermarked baseline)", m, a, "", ""};
        row(o, cells, NULL);
    }
    table_end(o);
}

/* ---- any other run kind: its aggregates as tables ---- */

typedef struct {
    char path[256];
    double v, lo, hi;
    bool has_ci;
} agg;

static void flatten(const json_t *node, const char *path, agg *a, size_t *n, size_t cap) {
    if (*n >= cap) return;
    if (json_is_number(node)) {
        snprintf(a[*n].path, sizeof a[*n].path, "%s", path);
        a[*n].v = json_number_value(node);
        a[*n].has_ci = false;
        (*n)++;
    } else if (json_is_object(node) && json_is_number(json_object_get(node, "value"))) {
        snprintf(a[*n].path, sizeof a[*n].path, "%s", path);
        a[*n].v = jfield(node, "value");
        a[*n].lo = jfield(node, "low");
        a[*n].hi = jfield(node, "high");
        a[*n].has_ci = isfinite(a[*n].lo) && isfinite(a[*n].hi);
        (*n)++;
    } else if (json_is_object(node)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)node, k, v) {
            char p[256];
            snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", k);
            flatten(v, p, a, n, cap);
        }
    } else if (json_is_array(node)) {
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v) {
            char p[256];
            snprintf(p, sizeof p, "%s[%zu]", path, i);
            flatten(v, p, a, n, cap);
        }
    }
}

static void generic_run(out *o, const json_t *run) {
    enum { CAP = 400 };
    agg *a = calloc(CAP, sizeof *a);
    if (!a) { o->b.failed = true; return; }
    size_t n = 0;
    flatten(json_object_get(run, "results"), "", a, &n, CAP);
    char note[256];
    snprintf(note, sizeof note, "This report does not know the run kind \"%s\": its aggregates are listed as "
                                "they are, with every interval as given.", jstr(run, "kind"));
    para(o, note);
    /* scores in [0, 1] with intervals: the hallucination/truthfulness figures */
    const char *labels[40];
    double v[40], lo[40], hi[40];
    size_t nc = 0;
    for (size_t i = 0; i < n && nc < 40; i++)
        if (a[i].has_ci && a[i].v >= 0 && a[i].v <= 1 && a[i].hi <= 1 && a[i].lo >= 0) {
            labels[nc] = a[i].path;
            v[nc] = a[i].v, lo[nc] = a[i].lo, hi[nc] = a[i].hi;
            nc++;
        }
    if (nc) {
        char title[160], alt[512];
        snprintf(title, sizeof title, "Scores with 95%% intervals: %s", jstr(run, "task"));
        snprintf(alt, sizeof alt, "The %zu scores of run %s that lie in [0, 1] and carry an interval, as bars with "
                                  "their intervals; every aggregate is in the table below.", nc, jstr(run, "task"));
        figure_begin(o);
        if (o->html) svg_bars(&o->b, title, alt, "score", labels, v, lo, hi, nc, 0, 1, NAN);
        figure_end(o, alt);
    }
    static const char *const h[] = {"aggregate", "value", "95% interval"};
    table_begin(o, NULL, h, 3);
    for (size_t i = 0; i < n; i++) {
        char val[32], ci[96] = "";
        fmt_num(val, sizeof val, a[i].v);
        if (a[i].has_ci) {
            char l[32], u[32];
            fmt_num(l, sizeof l, a[i].lo);
            fmt_num(u, sizeof u, a[i].hi);
            snprintf(ci, sizeof ci, "[%s, %s]", l, u);
        }
        const char *cells[] = {a[i].path, val, ci};
        row(o, cells, NULL);
    }
    if (n == CAP) {
        const char *cells[] = {"… more in the JSON report", "", ""};
        row(o, cells, NULL);
    }
    table_end(o);
    free(a);
}

static void runs_section(out *o, const json_t *r) {
    heading(o, 2, "analyses", "6. Quantitative analyses");
    size_t i;
    json_t *run;
    json_array_foreach(json_object_get(r, "runs"), i, run) {
        char t[300], facts[600];
        snprintf(t, sizeof t, "Run %s (%s)", jstr(run, "task"), jstr(run, "kind"));
        char anchor[32];
        snprintf(anchor, sizeof anchor, "run-%zu", i);
        heading(o, 3, anchor, t);
        snprintf(facts, sizeof facts, "%lld of %lld samples%s; seed %s; task SHA-256 %s; model SHA-256 %s; tracemark %s (%s).",
                 (long long)json_integer_value(json_object_get(run, "n_present")),
                 (long long)json_integer_value(json_object_get(run, "n_samples")),
                 json_is_true(json_object_get(run, "complete")) ? " (complete)" : " (INCOMPLETE)",
                 jstr(run, "seed"), jstr(run, "task_sha256"), jstr(run, "model_sha256"), jstr(run, "tracemark_version"),
                 jstr(run, "tracemark_commit"));
        para(o, facts);
        if (!strcmp(jstr(run, "kind"), "watermark")) {
            heatmap(o, run, anchor);
            roc_charts(o, run);
            length_chart(o, run);
            pvalue_charts(o, run);
            quality_chart(o, run);
        } else generic_run(o, run);
    }
    json_array_foreach(json_object_get(r, "benchmarks"), i, run) {
        char t[300];
        snprintf(t, sizeof t, "Speed against llama.cpp: benchmark %s (%s, %s)", jstr(run, "name"), jstr(run, "date"),
                 jstr(run, "cpu"));
        heading(o, 3, "speed", t);
        char facts[600];
        snprintf(facts, sizeof facts, "Commit %s; peer %s. Ratios above 1 mean tracemark is faster.", jstr(run, "commit"),
                 jstr(run, "peer"));
        para(o, facts);
        const json_t *speed = json_object_get(run, "speed");
        size_t n = json_array_size(speed);
        if (n > 0 && n <= 32) {
            const char *labels[64];
            double v[64];
            char names[64][200];
            double xmax = 1.5;
            for (size_t k = 0; k < n; k++) {
                const json_t *s = json_array_get(speed, k);
                snprintf(names[2 * k], sizeof names[0], "%s decode", jstr(s, "config"));
                snprintf(names[2 * k + 1], sizeof names[0], "%s prompt", jstr(s, "config"));
                labels[2 * k] = names[2 * k];
                labels[2 * k + 1] = names[2 * k + 1];
                v[2 * k] = jfield(s, "decode_ratio");
                v[2 * k + 1] = jfield(s, "prompt_ratio");
                for (int q = 0; q < 2; q++) if (isfinite(v[2 * k + q]) && v[2 * k + q] > xmax) xmax = v[2 * k + q];
            }
            const char *alt = "Speed of tracemark relative to llama.cpp for each configuration, decode and prompt "
                              "tokens per second as ratios (1 = as fast, dashed line); tokens per second below.";
            figure_begin(o);
            if (o->html) svg_bars(&o->b, "Speed: tracemark ÷ llama.cpp", alt, "ratio of tokens/s", labels, v, NULL, NULL, 2 * n, 0, xmax * 1.05, 1);
            figure_end(o, alt);
        }
        static const char *const h[] = {"configuration", "tracemark decode tok/s", "llama.cpp decode tok/s",
                                        "decode ratio", "tracemark prompt tok/s", "llama.cpp prompt tok/s", "prompt ratio"};
        table_begin(o, NULL, h, 7);
        size_t k;
        json_t *s;
        json_array_foreach(speed, k, s) {
            char c[6][32];
            static const char *const f[] = {"tracemark_decode_tok_s", "llama_cpp_decode_tok_s", "decode_ratio",
                                            "tracemark_prompt_tok_s", "llama_cpp_prompt_tok_s", "prompt_ratio"};
            for (int q = 0; q < 6; q++) fmt_num(c[q], sizeof c[q], jfield(s, f[q]));
            const char *cells[] = {jstr(s, "config"), c[0], c[1], c[2], c[3], c[4], c[5]};
            row(o, cells, NULL);
        }
        table_end(o);
        static const char *const hg[] = {"goal", "measured", "met"};
        table_begin(o, "Speed goals of the benchmark run", hg, 3);
        json_array_foreach(json_object_get(run, "goals"), k, s) {
            char m[32];
            fmt_num(m, sizeof m, jfield(s, "measured"));
            const char *met = json_is_true(json_object_get(s, "met")) ? "yes" : json_is_false(json_object_get(s, "met")) ? "no" : "";
            char metn[64];
            snprintf(metn, sizeof metn, "%s%s", met, json_is_true(json_object_get(s, "noisy")) ? " (noisy: rerun)" : "");
            const char *cells[] = {jstr(s, "goal"), m, metn};
            row(o, cells, NULL);
        }
        table_end(o);
    }
    if (json_array_size(json_object_get(r, "generations"))) {
        heading(o, 3, "generations", "Generations");
        static const char *const h[] = {"record", "model", "seed", "tokens", "stop", "sampling", "scheme", "key id",
                                        "text SHA-256"};
        table_begin(o, "Texts generated (tracemark generate --json records; the texts by hash)", h, 9);
        json_array_foreach(json_object_get(r, "generations"), i, run) {
            char seed[32] = "", tokens[32];
            if (json_is_integer(json_object_get(run, "seed")))
                snprintf(seed, sizeof seed, "%lld", (long long)json_integer_value(json_object_get(run, "seed")));
            snprintf(tokens, sizeof tokens, "%lld", (long long)json_integer_value(json_object_get(run, "tokens")));
            const char *cells[] = {jstr(run, "path"), jstr(run, "model"), seed, tokens, jstr(run, "stop_reason"),
                                   jstr(run, "sampling"), jstr(run, "parameters"), jstr(run, "key_id"), jstr(run, "text_sha256")};
            row(o, cells, NULL);
        }
        table_end(o);
    }
    if (json_array_size(json_object_get(r, "detections"))) {
        heading(o, 3, "detections", "Detections");
        static const char *const h[] = {"verdict file", "scheme", "key id", "scored tokens", "z", "p-value", "FPR",
                                        "watermarked"};
        table_begin(o, "Detector verdicts (tracemark detect --json)", h, 8);
        json_array_foreach(json_object_get(r, "detections"), i, run) {
            char n[32] = "", z[32], pv[32], f[32];
            if (json_is_integer(json_object_get(run, "scored_tokens")))
                snprintf(n, sizeof n, "%lld", (long long)json_integer_value(json_object_get(run, "scored_tokens")));
            fmt_num(z, sizeof z, jfield(run, "z"));
            fmt_num(pv, sizeof pv, jfield(run, "p_value"));
            fmt_num(f, sizeof f, jfield(run, "fpr"));
            bool yes = json_is_true(json_object_get(run, "detected"));
            const char *cells[] = {jstr(run, "path"), jstr(run, "parameters"), jstr(run, "key_id"), n, z, pv, f,
                                   yes ? "yes" : "no"};
            row(o, cells, yes ? "pass" : "fail");
        }
        table_end(o);
    }
    if (json_array_size(json_object_get(r, "verifications"))) {
        heading(o, 3, "verifications", "Provenance verification verdicts");
        static const char *const h[] = {"verdict file", "signer fingerprint", "content SHA-256", "watermark p-value",
                                        "verified"};
        table_begin(o, NULL, h, 5);
        json_array_foreach(json_object_get(r, "verifications"), i, run) {
            char p[32];
            fmt_num(p, sizeof p, jfield(run, "watermark_p_value"));
            bool ok = json_is_true(json_object_get(run, "verified"));
            char v[96];
            snprintf(v, sizeof v, "%s%s%s", ok ? "yes" : "no", ok ? "" : ": failed check ", ok ? "" : jstr(run, "failed_check"));
            const char *cells[] = {jstr(run, "path"), jstr(run, "signer"), jstr(run, "content_sha256"), p, v};
            row(o, cells, ok ? "pass" : "fail");
        }
        table_end(o);
    }
}

static const char *status_label(const char *s) {
    if (!strcmp(s, "pass")) return "PASS";
    if (!strcmp(s, "fail")) return "FAIL";
    if (!strcmp(s, "not_measured")) return "NOT MEASURED";
    if (!strcmp(s, "documented")) return "DOCUMENTED";
    if (!strcmp(s, "not_documented")) return "NOT DOCUMENTED";
    return s;
}

static void compliance_section(out *o, const json_t *r) {
    const json_t *c = json_object_get(r, "compliance");
    heading(o, 2, "compliance", "7. Compliance");
    if (!json_is_object(c)) {
        para(o, "No policy was given (tracemark report --policy POLICY.yaml): nothing is claimed about compliance.");
        return;
    }
    char t[1024];
    const json_t *s = json_object_get(c, "summary");
    snprintf(t, sizeof t, "Policy %s: %s (%s; file %s, SHA-256 %s). %lld pass, %lld fail, %lld not measured, %lld "
                          "documented, %lld not documented. A clause passes only when every value its metric path "
                          "matches was measured and meets the threshold.",
             jstr(c, "policy"), jstr(c, "title"), jstr(c, "source"), jstr(c, "path"), jstr(c, "sha256"),
             (long long)json_integer_value(json_object_get(s, "pass")), (long long)json_integer_value(json_object_get(s, "fail")),
             (long long)json_integer_value(json_object_get(s, "not_measured")),
             (long long)json_integer_value(json_object_get(s, "documented")),
             (long long)json_integer_value(json_object_get(s, "not_documented")));
    para(o, t);
    static const char *const h[] = {"clause", "reference", "requirement", "metric (path in the report JSON)",
                                    "threshold", "measured [95% CI]", "where / note", "result"};
    table_begin(o, NULL, h, 8);
    size_t i;
    json_t *cl;
    json_array_foreach(json_object_get(c, "clauses"), i, cl) {
        char thr[96] = "", meas[128] = "", where[700];
        const char *status = jstr(cl, "status");
        if (json_object_get(cl, "documented_in")) {
            snprintf(meas, sizeof meas, "documented where: report section \"%s\"", jstr(cl, "documented_in"));
            snprintf(where, sizeof where, "%s", jstr(cl, "note"));
        } else {
            char n[32];
            fmt_num(n, sizeof n, jfield(cl, "threshold"));
            snprintf(thr, sizeof thr, "%s %s %s%s%s", strcmp(jstr(cl, "bound"), "value") ? jstr(cl, "bound") : "value",
                     jstr(cl, "comparison"), n, json_object_get(cl, "transform") ? " of 1 − x" : "", "");
            interval_cell(meas, sizeof meas, json_object_get(cl, "measured"));
            snprintf(where, sizeof where, "%s%s%s", jstr(cl, "where"), *jstr(cl, "where") ? ": " : "", jstr(cl, "note"));
        }
        const char *cells[] = {jstr(cl, "id"), jstr(cl, "reference"), jstr(cl, "requirement"), jstr(cl, "metric"), thr,
                               meas, where, status_label(status)};
        const char *cls = !strcmp(status, "pass") || !strcmp(status, "documented") ? "pass"
                          : !strcmp(status, "not_measured")                        ? "nm"
                                                                                   : "fail";
        row(o, cells, cls);
    }
    table_end(o);
}

static void caveats_section(out *o, const json_t *r) {
    heading(o, 2, "caveats", "8. Caveats and limits");
    size_t i;
    json_t *c;
    if (o->html) tm_buffer_puts(&o->b, "<ul>");
    json_array_foreach(json_object_get(r, "caveats"), i, c) {
        tm_buffer_puts(&o->b, o->html ? "<li>" : "- ");
        text(o, json_string_value(c) ? json_string_value(c) : "");
        tm_buffer_puts(&o->b, o->html ? "</li>\n" : "\n");
    }
    if (o->html) tm_buffer_puts(&o->b, "</ul>");
}

static void origin_section(out *o, const json_t *r) {
    heading(o, 2, "origin", "9. What this report was made from");
    const json_t *g = json_object_get(r, "generator");
    char t[600];
    snprintf(t, sizeof t, "Made by %s %s (commit %s) on %s, report schema %s version %lld. %s", jstr(g, "tool"),
             jstr(g, "version"), jstr(g, "commit"), jstr(r, "created"), jstr(r, "schema"),
             (long long)json_integer_value(json_object_get(r, "schema_version")),
             json_is_object(json_object_get(r, "compliance")) ? "The policy file's SHA-256 is in section 7." : "");
    para(o, t);
    static const char *const h[] = {"input", "type", "SHA-256 (results.json / file)", "SHA-256 (samples.jsonl)",
                                    "SHA-256 (run.sqlite)"};
    table_begin(o, NULL, h, 5);
    size_t i;
    json_t *in;
    json_array_foreach(json_object_get(r, "inputs"), i, in) {
        const char *main_hash = *jstr(in, "results_sha256") ? jstr(in, "results_sha256") : jstr(in, "sha256");
        const char *cells[] = {jstr(in, "path"), jstr(in, "type"), main_hash, jstr(in, "samples_sha256"),
                               jstr(in, "store_sha256")};
        row(o, cells, NULL);
    }
    table_end(o);
}

static const char css[] =
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#111;"
    "max-width:1100px;margin:24px auto;padding:0 16px}"
    "h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #0072B2;padding-bottom:.15em;margin-top:1.6em}"
    "table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:13px;width:100%}"
    "caption{text-align:left;font-weight:bold;padding:.3em 0}"
    "th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere}"
    "th{background:#eef3f8}tbody tr:nth-child(even){background:#fafafa}"
    "td.pass{background:#d7f0e3;font-weight:bold}td.fail{background:#f9d7d0;font-weight:bold}"
    "td.nm{background:#eee;font-weight:bold;color:#444}"
    "figure{margin:1em 0;page-break-inside:avoid;break-inside:avoid}figcaption{font-size:12px;color:#333;max-width:640px}"
    "svg.chart{max-width:100%;height:auto;border:1px solid #ddd}"
    "nav ol{columns:2}.summary{border:2px solid #0072B2;padding:.5em 1em;margin:1em 0}"
    "@media print{body{max-width:none;margin:0;font-size:11pt}h2{page-break-after:avoid}"
    "table{font-size:9pt}tr,td{page-break-inside:avoid}nav{display:none}a{color:#000;text-decoration:none}}";

static tm_status render(const char *json, size_t size, bool html, char **out_text, size_t *out_size, tm_error *err) {
    json_error_t je;
    json_t *r = json_loadb(json, size, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(r) || strcmp(jstr(r, "schema"), TM_REPORT_SCHEMA) ||
        json_integer_value(json_object_get(r, "schema_version")) != TM_REPORT_SCHEMA_VERSION) {
        json_decref(r);
        return tm_error_set(err, TM_ERR_FORMAT, "not a %s version %d document", TM_REPORT_SCHEMA, TM_REPORT_SCHEMA_VERSION);
    }
    out o = {.html = html};
    if (html) {
        tm_buffer_puts(&o.b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
                      "<title>");
        rb_html(&o.b, jstr(r, "title"));
        tm_buffer_printf(&o.b, "</title><style>%s</style></head><body>\n<h1>", css);
        rb_html(&o.b, jstr(r, "title"));
        tm_buffer_puts(&o.b, "</h1>\n");
    } else {
        tm_buffer_puts(&o.b, "# ");
        rb_md(&o.b, jstr(r, "title"));
        tm_buffer_puts(&o.b, "\n\n");
    }
    char t[600];
    const json_t *g = json_object_get(r, "generator");
    snprintf(t, sizeof t, "Created %s by %s %s (commit %s). Sections follow model-card practice (Mitchell et al. 2019).",
             jstr(r, "created"), jstr(g, "tool"), jstr(g, "version"), jstr(g, "commit"));
    para(&o, t);
    const json_t *c = json_object_get(r, "compliance");
    if (json_is_object(c)) {
        const json_t *s = json_object_get(c, "summary");
        snprintf(t, sizeof t, "Compliance with %s: %lld pass, %lld fail, %lld not measured, %lld documented, %lld not documented (section 7).",
                 jstr(c, "policy"), (long long)json_integer_value(json_object_get(s, "pass")),
                 (long long)json_integer_value(json_object_get(s, "fail")),
                 (long long)json_integer_value(json_object_get(s, "not_measured")),
                 (long long)json_integer_value(json_object_get(s, "documented")),
                 (long long)json_integer_value(json_object_get(s, "not_documented")));
        if (html) tm_buffer_puts(&o.b, "<div class=\"summary\">");
        para(&o, t);
        if (html) tm_buffer_puts(&o.b, "</div>");
    }
    if (html)
        tm_buffer_puts(&o.b, "<nav><ol><li><a href=\"#model\">Model details</a></li><li><a href=\"#use\">Intended use</a></li>"
                      "<li><a href=\"#watermark\">Watermark and provenance</a></li><li><a href=\"#metrics\">Metrics and "
                      "thresholds</a></li><li><a href=\"#data\">Evaluation data</a></li><li><a href=\"#analyses\">"
                      "Quantitative analyses</a></li><li><a href=\"#compliance\">Compliance</a></li><li><a "
                      "href=\"#caveats\">Caveats</a></li><li><a href=\"#origin\">Origin</a></li></ol></nav>\n");
    model_section(&o, r);
    use_section(&o, r);
    watermark_section(&o, r);
    metrics_section(&o, r);
    data_section(&o, r);
    runs_section(&o, r);
    compliance_section(&o, r);
    caveats_section(&o, r);
    origin_section(&o, r);
    if (html) tm_buffer_puts(&o.b, "</body></html>\n");
    json_decref(r);
    return rb_finish(&o.b, out_text, out_size, err);
}

tm_status tm_report_render_html(const char *json, size_t size, char **out, size_t *out_size, tm_error *err) {
    return render(json, size, true, out, out_size, err);
}

tm_status tm_report_render_markdown(const char *json, size_t size, char **out, size_t *out_size, tm_error *err) {
    return render(json, size, false, out, out_size, err);
}
