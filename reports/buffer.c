/* The reports room's text buffer and number formatting: every renderer
 * appends through these so escaping is done in one place. It must never
 * write past its allocation nor emit unescaped input text into HTML. */
#include "reports_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(tm_rbuf *b, size_t extra) {
    if (b->failed) return false;
    size_t need;
    if (!tm_add_size(b->size, extra + 1, &need)) { b->failed = true; return false; }
    if (need <= b->capacity) return true;
    size_t cap = b->capacity ? b->capacity : 4096;
    while (cap < need) {
        if (!tm_mul_size(cap, 2, &cap)) { b->failed = true; return false; }
    }
    char *p = realloc(b->data, cap);
    if (!p) { b->failed = true; return false; }
    b->data = p;
    b->capacity = cap;
    return true;
}

void rb_put(tm_rbuf *b, const char *s, size_t n) {
    if (!reserve(b, n)) return;
    memcpy(b->data + b->size, s, n);
    b->size += n;
    b->data[b->size] = 0;
}

void rb_puts(tm_rbuf *b, const char *s) { rb_put(b, s, strlen(s)); }

void rb_printf(tm_rbuf *b, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    char small[512];
    int n = vsnprintf(small, sizeof small, format, ap);
    va_end(ap);
    if (n < 0) { b->failed = true; return; }
    if ((size_t)n < sizeof small) { rb_put(b, small, (size_t)n); return; }
    if (!reserve(b, (size_t)n)) return;
    va_start(ap, format);
    vsnprintf(b->data + b->size, (size_t)n + 1, format, ap);
    va_end(ap);
    b->size += (size_t)n;
}

void rb_html(tm_rbuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': rb_puts(b, "&amp;"); break;
        case '<': rb_puts(b, "&lt;"); break;
        case '>': rb_puts(b, "&gt;"); break;
        case '"': rb_puts(b, "&quot;"); break;
        case '\'': rb_puts(b, "&#39;"); break;
        default: rb_put(b, s, 1);
        }
    }
}

void rb_md(tm_rbuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '|': rb_puts(b, "\\|"); break;
        case '\n': case '\r': rb_puts(b, " "); break;
        case '<': rb_puts(b, "&lt;"); break;
        case '>': rb_puts(b, "&gt;"); break;
        case '&': rb_puts(b, "&amp;"); break;
        case '*': case '_': case '`': case '[': case ']': rb_put(b, "\\", 1); rb_put(b, s, 1); break;
        default: rb_put(b, s, 1);
        }
    }
}

tm_status rb_finish(tm_rbuf *b, char **out, size_t *size, tm_error *err) {
    if (!b->failed) reserve(b, 0);
    if (b->failed) {
        rb_free(b);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory rendering the report");
    }
    *out = b->data;
    if (size) *size = b->size;
    b->data = NULL;
    b->size = b->capacity = 0;
    return TM_OK;
}

void rb_free(tm_rbuf *b) {
    free(b->data);
    b->data = NULL;
    b->size = b->capacity = 0;
}

void fmt_num(char *out, size_t n, double x) {
    if (isnan(x)) snprintf(out, n, "—");
    else if (isinf(x)) snprintf(out, n, x > 0 ? "∞" : "−∞");
    else if (x == 0) snprintf(out, n, "0");
    else if (x == floor(x) && fabs(x) < 1e9) snprintf(out, n, "%.0f", x);
    else if (fabs(x) >= 1e6 || fabs(x) < 1e-3) snprintf(out, n, "%.3g", x);
    else if (fabs(x) >= 100) snprintf(out, n, "%.1f", x);
    else snprintf(out, n, "%.3g", x);
}

double jnum(const json_t *v) {
    if (json_is_object(v)) v = json_object_get(v, "value");
    if (json_is_number(v)) return json_number_value(v);
    return NAN;
}

double jfield(const json_t *object, const char *key) { return jnum(json_object_get(object, key)); }

const char *jstr(const json_t *object, const char *key) {
    const char *s = json_string_value(json_object_get(object, key));
    return s ? s : "";
}

void fmt_interval(char *out, size_t n, const json_t *v) {
    char a[32], lo[32], hi[32];
    fmt_num(a, sizeof a, jnum(v));
    if (json_is_object(v) && json_is_number(json_object_get(v, "low")) && json_is_number(json_object_get(v, "high"))) {
        fmt_num(lo, sizeof lo, json_number_value(json_object_get(v, "low")));
        fmt_num(hi, sizeof hi, json_number_value(json_object_get(v, "high")));
        snprintf(out, n, "%s [%s, %s]", a, lo, hi);
    } else snprintf(out, n, "%s", a);
}
