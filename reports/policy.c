/* Compliance policies: a YAML file of clauses, each naming a metric path in
 * the report document, a comparison and a threshold (or a report section
 * that documents a requirement), parsed strictly (errors FILE:LINE: FIELD)
 * and evaluated against the measurements. A clause is "pass" only when every
 * value its path matches was measured and meets the threshold; a path that
 * matches nothing, or anything unmeasured, is "not_measured" - never a
 * silent pass. It must never guess a value or treat a missing run as zero. */
#include "reports_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef enum { CMP_LE, CMP_LT, CMP_GE, CMP_GT, CMP_EQ } comparison;
static const char *const cmp_names[] = {"<=", "<", ">=", ">", "=="};
typedef enum { BOUND_VALUE, BOUND_LOW, BOUND_HIGH } bound;
static const char *const bound_names[] = {"value", "low", "high"};

typedef struct {
    char *id, *reference, *requirement, *metric, *documented_in;
    comparison cmp;
    bound bnd;
    bool complement;
    double threshold;
} clause;

struct tm_report_policy {
    char *path, *name, *title, *source;
    char sha256[TM_SHA256_HEX_SIZE];
    clause *clauses;
    size_t n;
};

const char *policy_path(const tm_report_policy *p) { return p->path; }
const char *policy_sha256(const tm_report_policy *p) { return p->sha256; }
const char *policy_title(const tm_report_policy *p) { return p->title; }
const char *tm_report_policy_name(const tm_report_policy *p) { return p ? p->name : ""; }
size_t tm_report_policy_clause_count(const tm_report_policy *p) { return p ? p->n : 0; }

void tm_report_policy_free(tm_report_policy *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->clauses[i].id);
        free(p->clauses[i].reference);
        free(p->clauses[i].requirement);
        free(p->clauses[i].metric);
        free(p->clauses[i].documented_in);
    }
    free(p->clauses);
    free(p->path);
    free(p->name);
    free(p->title);
    free(p->source);
    free(p);
}

/* ---- metric paths ----
 * segment ('.' segment)*, segment = (NAME | '*') ('[' (KEY '=' VALUE | '*' | INDEX) ']')*
 * NAME and KEY: [A-Za-z0-9_-]+; VALUE: any text without ']' (may hold '.'). */

static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Checks the syntax; *why says what is wrong. */
static bool path_valid(const char *s, const char **why) {
    if (!*s) { *why = "empty path"; return false; }
    for (;;) {
        if (*s == '*') s++;
        else if (name_char(*s)) while (name_char(*s)) s++;
        else if (*s != '[') { *why = "expected a name, '*' or '[' in the path"; return false; }
        while (*s == '[') {
            const char *close = strchr(s, ']');
            if (!close || close == s + 1) { *why = "unclosed or empty [...] in the path"; return false; }
            s = close + 1;
        }
        if (!*s) return true;
        if (*s != '.') { *why = "expected '.' between path segments"; return false; }
        s++;
    }
}

typedef struct {
    double v[3]; /* value, low, high; NaN: not measured (a plain number: low = high = value) */
    bool interval; /* low and high came from the run, not from a plain number */
    char where[512];
} leaf;

typedef struct {
    leaf *leaves;
    size_t n, cap;
    bool overflow;
} leaves;

static void add_leaf(leaves *ls, const json_t *node, const char *where) {
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 16;
        leaf *p = cap <= 100000 ? realloc(ls->leaves, cap * sizeof *p) : NULL;
        if (!p) { ls->overflow = true; return; }
        ls->leaves = p;
        ls->cap = cap;
    }
    leaf *l = &ls->leaves[ls->n++];
    l->v[0] = l->v[1] = l->v[2] = NAN;
    l->interval = false;
    snprintf(l->where, sizeof l->where, "%s", where);
    if (json_is_boolean(node)) l->v[0] = l->v[1] = l->v[2] = json_is_true(node) ? 1 : 0;
    else if (json_is_number(node)) l->v[0] = l->v[1] = l->v[2] = json_number_value(node);
    else if (json_is_object(node)) {
        l->v[0] = jfield(node, "value");
        l->interval = json_is_number(json_object_get(node, "low")) && json_is_number(json_object_get(node, "high"));
        l->v[1] = l->interval ? jfield(node, "low") : l->v[0];
        l->v[2] = l->interval ? jfield(node, "high") : l->v[0];
    }
}

static bool value_matches(const json_t *v, const char *text, size_t len) {
    char buf[128];
    if (len >= sizeof buf) return false;
    memcpy(buf, text, len);
    buf[len] = 0;
    if (json_is_string(v)) return !strcmp(json_string_value(v), buf);
    if (json_is_number(v)) {
        char *end;
        double x = strtod(buf, &end);
        return end != buf && !*end && fabs(x - json_number_value(v)) <= 1e-12 * fmax(1, fabs(x));
    }
    if (json_is_boolean(v)) return !strcmp(buf, json_is_true(v) ? "true" : "false");
    return false;
}

static void walk(const json_t *node, const char *s, const char *where, leaves *ls);

/* An element a [*] or [N] matched, named so that a reader finds it: by an
 * identifying field ([attack=delete@0.1]) where it has one, else its index. */
static void name_element(char *w, size_t n, const char *where, const json_t *e, size_t i) {
    static const char *const ids[] = {"attack", "scheme", "id", "task", "path", "length", "fpr"};
    for (size_t k = 0; k < sizeof ids / sizeof *ids; k++) {
        const json_t *v = json_object_get(e, ids[k]);
        if (json_is_string(v)) {
            snprintf(w, n, "%s[%s=%s]", where, ids[k], json_string_value(v));
            return;
        }
        if (json_is_number(v)) {
            snprintf(w, n, "%s[%s=%g]", where, ids[k], json_number_value(v));
            return;
        }
    }
    snprintf(w, n, "%s[%zu]", where, i);
}

/* Apply the [...] filters starting at s to node, then continue the path. */
static void filters(const json_t *node, const char *s, const char *where, leaves *ls) {
    if (*s != '[') {
        if (!*s) add_leaf(ls, node, where);
        else walk(node, s + 1, where, ls); /* skip '.' */
        return;
    }
    const char *close = strchr(s, ']');
    const char *inner = s + 1;
    size_t len = (size_t)(close - inner);
    const char *eq = memchr(inner, '=', len);
    if (!json_is_array(node)) return;
    size_t i;
    json_t *e;
    json_array_foreach(node, i, e) {
        bool take;
        if (len == 1 && *inner == '*') take = true;
        else if (eq) {
            char key[64];
            size_t kl = (size_t)(eq - inner);
            if (kl >= sizeof key) return;
            memcpy(key, inner, kl);
            key[kl] = 0;
            take = value_matches(json_object_get(e, key), eq + 1, len - kl - 1);
        } else {
            char *end;
            long index = strtol(inner, &end, 10);
            take = end == close && index >= 0 && (size_t)index == i;
        }
        if (!take) continue;
        char w[512];
        if (eq) snprintf(w, sizeof w, "%s[%.*s]", where, (int)len, inner);
        else name_element(w, sizeof w, where, e, i);
        filters(e, close + 1, w, ls);
    }
}

static void walk(const json_t *node, const char *s, const char *where, leaves *ls) {
    if (ls->overflow) return;
    const char *end = s;
    while (*end && *end != '.' && *end != '[') end++;
    size_t len = (size_t)(end - s);
    char w[512];
    if (len == 1 && *s == '*') {
        if (json_is_object(node)) {
            const char *k;
            json_t *v;
            json_object_foreach((json_t *)node, k, v) {
                snprintf(w, sizeof w, "%s%s%s", where, *where ? "." : "", k);
                filters(v, end, w, ls);
            }
        } else if (json_is_array(node)) {
            size_t i;
            json_t *v;
            json_array_foreach(node, i, v) {
                snprintf(w, sizeof w, "%s[%zu]", where, i);
                filters(v, end, w, ls);
            }
        }
        return;
    }
    if (len == 0) { filters(node, end, where, ls); return; }
    char key[128];
    if (len >= sizeof key || !json_is_object(node)) return;
    memcpy(key, s, len);
    key[len] = 0;
    json_t *child = json_object_get(node, key);
    if (!child) return;
    snprintf(w, sizeof w, "%s%s%s", where, *where ? "." : "", key);
    filters(child, end, w, ls);
}

static bool meets(comparison c, double x, double t) {
    switch (c) {
    case CMP_LE: return x <= t;
    case CMP_LT: return x < t;
    case CMP_GE: return x >= t;
    case CMP_GT: return x > t;
    case CMP_EQ: return fabs(x - t) <= 1e-12;
    }
    return false;
}

/* How bad x is for the comparison (larger is worse). */
static double badness(comparison c, double x) { return c == CMP_LE || c == CMP_LT ? x : -x; }

static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *evaluate_clause(const clause *c, const json_t *report) {
    json_t *row = json_pack("{s:s, s:s, s:s}", "id", c->id, "reference", c->reference, "requirement", c->requirement);
    if (c->documented_in) {
        const json_t *section = json_object_get(report, c->documented_in);
        bool present = section && !json_is_null(section) &&
                       !(json_is_array(section) && json_array_size(section) == 0) &&
                       !(json_is_object(section) && json_object_size(section) == 0);
        json_object_set_new(row, "documented_in", json_string(c->documented_in));
        json_object_set_new(row, "status", json_string(present ? "documented" : "not_documented"));
        json_object_set_new(row, "note", json_string(present ? "the report section holds it"
                                                             : "the report section is empty: nothing documents this"));
        return row;
    }
    json_object_set_new(row, "metric", json_string(c->metric));
    json_object_set_new(row, "comparison", json_string(cmp_names[c->cmp]));
    json_object_set_new(row, "threshold", json_real(c->threshold));
    json_object_set_new(row, "bound", json_string(bound_names[c->bnd]));
    if (c->complement) json_object_set_new(row, "transform", json_string("complement"));
    leaves ls = {0};
    walk(report, c->metric, "", &ls);
    size_t unmeasured = 0, failed = 0;
    const leaf *worst = NULL, *worst_failed = NULL;
    double worst_x = -INFINITY, worst_failed_x = -INFINITY;
    for (size_t i = 0; i < ls.n; i++) {
        leaf *l = &ls.leaves[i];
        if (c->complement) {
            double v = 1 - l->v[0], lo = 1 - l->v[2], hi = 1 - l->v[1];
            l->v[0] = v, l->v[1] = lo, l->v[2] = hi;
        }
        double x = l->v[c->bnd];
        if (!isfinite(x)) { unmeasured++; continue; }
        double b = badness(c->cmp, x);
        if (!worst || b > worst_x) worst = l, worst_x = b;
        if (!meets(c->cmp, x, c->threshold)) {
            failed++;
            if (!worst_failed || b > worst_failed_x) worst_failed = l, worst_failed_x = b;
        }
    }
    const char *status;
    char note[256];
    const leaf *shown = worst_failed ? worst_failed : worst;
    if (ls.overflow) {
        status = "not_measured";
        snprintf(note, sizeof note, "the path matches too many values to evaluate");
        shown = NULL;
    } else if (ls.n == 0) {
        status = "not_measured";
        snprintf(note, sizeof note, "no input of this report measures this path");
    } else if (failed) {
        status = "fail";
        snprintf(note, sizeof note, "%zu of %zu matched values fail; the worst is shown", failed, ls.n);
    } else if (unmeasured) {
        status = "not_measured";
        snprintf(note, sizeof note, "%zu of %zu matched values were not measured (null)", unmeasured, ls.n);
    } else {
        status = "pass";
        snprintf(note, sizeof note, "all %zu matched values meet the threshold; the worst is shown", ls.n);
    }
    json_object_set_new(row, "status", json_string(status));
    json_object_set_new(row, "note", json_string(note));
    json_object_set_new(row, "n_matched", json_integer((json_int_t)ls.n));
    if (shown) {
        json_object_set_new(row, "measured", json_pack("{s:o, s:o, s:o}", "value", num(shown->v[0]), "low",
                                                       shown->interval ? num(shown->v[1]) : json_null(), "high",
                                                       shown->interval ? num(shown->v[2]) : json_null()));
        json_object_set_new(row, "where", json_string(shown->where));
    } else {
        json_object_set_new(row, "measured", json_null());
        json_object_set_new(row, "where", json_null());
    }
    free(ls.leaves);
    return row;
}

json_t *policy_evaluate(const tm_report_policy *p, const json_t *report) {
    json_t *rows = json_array();
    size_t counts[5] = {0};
    static const char *const statuses[] = {"pass", "fail", "not_measured", "documented", "not_documented"};
    for (size_t i = 0; i < p->n; i++) {
        json_t *row = evaluate_clause(&p->clauses[i], report);
        const char *s = jstr(row, "status");
        for (size_t k = 0; k < 5; k++)
            if (!strcmp(s, statuses[k])) counts[k]++;
        json_array_append_new(rows, row);
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:{s:I, s:I, s:I, s:I, s:I}}", "policy", p->name, "title",
                     p->title, "source", p->source ? p->source : "", "path", p->path, "sha256", p->sha256, "clauses",
                     rows, "summary", "pass", (json_int_t)counts[0], "fail", (json_int_t)counts[1], "not_measured",
                     (json_int_t)counts[2], "documented", (json_int_t)counts[3], "not_documented",
                     (json_int_t)counts[4]);
}

/* ---- strict YAML ---- */

typedef struct {
    const char *path;
    yaml_document_t *doc;
    tm_error *err;
} parser;

static tm_status bad(parser *ps, const yaml_node_t *node, const char *field, const char *what) {
    return tm_error_set(ps->err, TM_ERR_FORMAT, "%s:%lu: %s: %s", ps->path,
                        node ? (unsigned long)node->start_mark.line + 1 : 0UL, field, what);
}

static tm_status scalar(parser *ps, const yaml_node_t *node, const char *field, char **out) {
    if (node->type != YAML_SCALAR_NODE) return bad(ps, node, field, "expected a string");
    if (*out) return bad(ps, node, field, "duplicate key");
    size_t n = node->data.scalar.length;
    if (n == 0 || n > 4096) return bad(ps, node, field, "expected a non-empty string of at most 4096 bytes");
    if (memchr(node->data.scalar.value, 0, n) || !tm_utf8_valid((const char *)node->data.scalar.value, n))
        return bad(ps, node, field, "not valid UTF-8 text");
    *out = strndup((const char *)node->data.scalar.value, n);
    return *out ? TM_OK : tm_error_set(ps->err, TM_ERR_NOMEM, "out of memory");
}

static tm_status parse_clause(parser *ps, const yaml_node_t *node, size_t index, clause *c) {
    char field[96];
    snprintf(field, sizeof field, "clauses[%zu]", index);
    if (node->type != YAML_MAPPING_NODE) return bad(ps, node, field, "expected a mapping");
    char *cmp = NULL, *threshold = NULL, *bnd = NULL, *transform = NULL;
    tm_status st = TM_OK;
    const yaml_node_t *threshold_node = NULL, *cmp_node = NULL, *bound_node = NULL, *transform_node = NULL,
                      *metric_node = NULL;
    for (yaml_node_pair_t *pr = node->data.mapping.pairs.start; pr < node->data.mapping.pairs.top && !st; pr++) {
        yaml_node_t *k = yaml_document_get_node(ps->doc, pr->key), *v = yaml_document_get_node(ps->doc, pr->value);
        if (k->type != YAML_SCALAR_NODE) { st = bad(ps, k, field, "keys must be strings"); break; }
        const char *key = (const char *)k->data.scalar.value;
        char f[160];
        snprintf(f, sizeof f, "%s.%s", field, key);
        if (!strcmp(key, "id")) st = scalar(ps, v, f, &c->id);
        else if (!strcmp(key, "reference")) st = scalar(ps, v, f, &c->reference);
        else if (!strcmp(key, "requirement")) st = scalar(ps, v, f, &c->requirement);
        else if (!strcmp(key, "metric")) metric_node = v, st = scalar(ps, v, f, &c->metric);
        else if (!strcmp(key, "documented_in")) st = scalar(ps, v, f, &c->documented_in);
        else if (!strcmp(key, "comparison")) cmp_node = v, st = scalar(ps, v, f, &cmp);
        else if (!strcmp(key, "threshold")) threshold_node = v, st = scalar(ps, v, f, &threshold);
        else if (!strcmp(key, "bound")) bound_node = v, st = scalar(ps, v, f, &bnd);
        else if (!strcmp(key, "transform")) transform_node = v, st = scalar(ps, v, f, &transform);
        else st = bad(ps, k, f, "unknown key (expected id, reference, requirement, metric, comparison, threshold, bound, transform or documented_in)");
    }
    char f[160];
    if (!st && !c->id) st = bad(ps, node, field, "missing key 'id'");
    if (!st) {
        for (const char *s = c->id; *s; s++)
            if (!name_char(*s) && *s != '.') {
                snprintf(f, sizeof f, "%s.id", field);
                st = bad(ps, node, f, "expected [A-Za-z0-9._-]+");
                break;
            }
    }
    if (!st && !c->reference) st = bad(ps, node, field, "missing key 'reference'");
    if (!st && !c->requirement) st = bad(ps, node, field, "missing key 'requirement'");
    if (!st && !!c->metric == !!c->documented_in)
        st = bad(ps, node, field, "exactly one of 'metric' (a measurement) or 'documented_in' (a report section) is required");
    if (!st && c->documented_in && (cmp || threshold || bnd || transform))
        st = bad(ps, node, field, "a 'documented_in' clause takes no comparison, threshold, bound or transform");
    if (!st && c->metric) {
        const char *why;
        snprintf(f, sizeof f, "%s.metric", field);
        if (!path_valid(c->metric, &why)) st = bad(ps, metric_node, f, why);
        else if (!cmp) st = bad(ps, node, field, "missing key 'comparison'");
        else if (!threshold) st = bad(ps, node, field, "missing key 'threshold'");
    }
    if (!st && cmp) {
        snprintf(f, sizeof f, "%s.comparison", field);
        size_t k = 0;
        while (k < 5 && strcmp(cmp, cmp_names[k])) k++;
        if (k == 5) st = bad(ps, cmp_node, f, "expected one of <=, <, >=, >, ==");
        else c->cmp = (comparison)k;
    }
    if (!st && threshold) {
        snprintf(f, sizeof f, "%s.threshold", field);
        char *end;
        c->threshold = strtod(threshold, &end);
        if (end == threshold || *end || !isfinite(c->threshold)) st = bad(ps, threshold_node, f, "expected a finite number");
    }
    if (!st && bnd) {
        snprintf(f, sizeof f, "%s.bound", field);
        size_t k = 0;
        while (k < 3 && strcmp(bnd, bound_names[k])) k++;
        if (k == 3) st = bad(ps, bound_node, f, "expected value, low or high");
        else c->bnd = (bound)k;
    }
    if (!st && transform) {
        snprintf(f, sizeof f, "%s.transform", field);
        if (strcmp(transform, "complement")) st = bad(ps, transform_node, f, "expected complement (1 - x)");
        else c->complement = true;
    }
    free(cmp);
    free(threshold);
    free(bnd);
    free(transform);
    return st;
}

tm_status tm_report_policy_parse(tm_report_policy **out, const char *path, const char *text, size_t size,
                                 tm_error *err) {
    *out = NULL;
    tm_report_policy *p = calloc(1, sizeof *p);
    if (!p || !(p->path = strdup(path))) {
        free(p);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    }
    tm_sha256_hex(text, size, p->sha256);
    yaml_parser_t yp;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&yp)) {
        tm_report_policy_free(p);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)text, size);
    tm_status st = TM_OK;
    if (!yaml_parser_load(&yp, &doc)) {
        st = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: YAML: %s", path, (unsigned long)yp.problem_mark.line + 1,
                          yp.problem ? yp.problem : "syntax error");
        yaml_parser_delete(&yp);
        tm_report_policy_free(p);
        return st;
    }
    parser ps = {path, &doc, err};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    const yaml_node_t *clauses = NULL;
    char *version = NULL;
    if (!root || root->type != YAML_MAPPING_NODE) st = bad(&ps, root, "policy", "expected a mapping at the top");
    else {
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top && !st; pr++) {
            yaml_node_t *k = yaml_document_get_node(&doc, pr->key), *v = yaml_document_get_node(&doc, pr->value);
            if (k->type != YAML_SCALAR_NODE) { st = bad(&ps, k, "policy", "keys must be strings"); break; }
            const char *key = (const char *)k->data.scalar.value;
            if (!strcmp(key, "policy")) st = scalar(&ps, v, "policy", &p->name);
            else if (!strcmp(key, "title")) st = scalar(&ps, v, "title", &p->title);
            else if (!strcmp(key, "source")) st = scalar(&ps, v, "source", &p->source);
            else if (!strcmp(key, "version")) st = scalar(&ps, v, "version", &version);
            else if (!strcmp(key, "clauses")) {
                if (clauses) st = bad(&ps, k, "clauses", "duplicate key");
                else if (v->type != YAML_SEQUENCE_NODE) st = bad(&ps, v, "clauses", "expected a list of clauses");
                clauses = v;
            } else st = bad(&ps, k, key, "unknown key (expected policy, title, source, version, clauses)");
        }
    }
    if (!st && !p->name) st = bad(&ps, root, "policy", "missing key 'policy' (the policy's name)");
    if (!st && !p->title) st = bad(&ps, root, "title", "missing key 'title'");
    if (!st && (!version || strcmp(version, "1")))
        st = bad(&ps, root, "version", version ? "unsupported version (this tracemark reads version 1)" : "missing key 'version' (1)");
    if (!st && !clauses) st = bad(&ps, root, "clauses", "missing key 'clauses'");
    if (!st) {
        size_t n = (size_t)(clauses->data.sequence.items.top - clauses->data.sequence.items.start);
        if (n == 0 || n > TM_REPORT_MAX_CLAUSES) st = bad(&ps, clauses, "clauses", "expected 1 to 256 clauses");
        else if (!(p->clauses = calloc(n, sizeof *p->clauses))) st = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n && !st; i++) {
            p->n = i + 1;
            st = parse_clause(&ps, yaml_document_get_node(&doc, clauses->data.sequence.items.start[i]), i, &p->clauses[i]);
            for (size_t j = 0; j < i && !st; j++)
                if (!strcmp(p->clauses[j].id, p->clauses[i].id)) {
                    char f[64];
                    snprintf(f, sizeof f, "clauses[%zu].id", i);
                    st = bad(&ps, yaml_document_get_node(&doc, clauses->data.sequence.items.start[i]), f,
                             "duplicate clause id");
                }
        }
    }
    free(version);
    yaml_document_delete(&doc);
    /* One document only: a second one would be silently ignored otherwise. */
    if (!st) {
        yaml_document_t extra;
        if (yaml_parser_load(&yp, &extra)) {
            if (yaml_document_get_root_node(&extra))
                st = tm_error_set(err, TM_ERR_FORMAT, "%s: more than one YAML document", path);
            yaml_document_delete(&extra);
        }
    }
    yaml_parser_delete(&yp);
    if (st) {
        tm_report_policy_free(p);
        return st;
    }
    *out = p;
    return TM_OK;
}

tm_status tm_report_policy_load(tm_report_policy **out, const char *path, tm_error *err) {
    char *text = NULL;
    size_t size = 0;
    tm_status st = tm_read_file(path, &text, &size, err);
    if (st) return st;
    st = tm_report_policy_parse(out, path, text, size, err);
    free(text);
    return st;
}
