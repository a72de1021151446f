/* The reports room's escaping and number formatting over core's tm_buffer:
 * every renderer appends through these so escaping is done in one place. It must never
 * write past its allocation nor emit unescaped input text into HTML. */
#include "reports_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rb_html(tm_buffer *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': tm_buffer_puts(b, "&amp;"); break;
        case '<': tm_buffer_puts(b, "&lt;"); break;
        case '>': tm_buffer_puts(b, "&gt;"); break;
        case '"': tm_buffer_puts(b, "&quot;"); break;
        case '\'': tm_buffer_puts(b, "&#39;"); break;
        default: tm_buffer_put(b, s, 1);
        }
    }
}

void rb_md(tm_buffer *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '|': tm_buffer_puts(b, "\\|"); break;
        case '\n': case '\r': tm_buffer_puts(b, " "); break;
        case '<': tm_buffer_puts(b, "&lt;"); break;
        case '>': tm_buffer_puts(b, "&gt;"); break;
        case '&': tm_buffer_puts(b, "&amp;"); break;
        case '*': case '_': case '`': case '[': case ']': tm_buffer_put(b, "\\", 1); tm_buffer_put(b, s, 1); break;
        default: tm_buffer_put(b, s, 1);
        }
    }
}

tm_status rb_finish(tm_buffer *b, char **out, size_t *size, tm_error *err) {
    if (!b->failed && !b->data) tm_buffer_put(b, "", 0);
    if (b->failed) {
        tm_buffer_free(b);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory rendering the report");
    }
    *out = b->data;
    if (size) *size = b->size;
    b->data = NULL;
    b->size = b->capacity = 0;
    return TM_OK;
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
