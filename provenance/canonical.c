/* RFC 8785, the JSON Canonicalization Scheme: the one byte string that a
 * manifest's signature covers, so that a verifier rebuilds exactly what the
 * signer signed from any re-serialisation of the same JSON. Object members
 * sorted by the UTF-16 code units of their names, no whitespace, minimal
 * string escapes, numbers as ECMAScript's Number.prototype.toString (the
 * shortest digits that read back to the same double, found with glibc's
 * exactly rounded printf/strtod). This file must never accept what RFC 8785
 * forbids (NaN, infinities, duplicate names) or emit two forms for one value. */
#include "provenance_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *data;
    size_t size, capacity;
    bool failed;
} buffer;

static void put(buffer *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->capacity - b->size < n + 1) {
        size_t capacity = b->capacity ? b->capacity : 256;
        while (capacity - b->size < n + 1) {
            if (!tm_mul_size(capacity, 2, &capacity)) { b->failed = true; return; }
        }
        char *grown = realloc(b->data, capacity);
        if (!grown) { b->failed = true; return; }
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->size, s, n);
    b->size += n;
    b->data[b->size] = '\0';
}

static void puts_(buffer *b, const char *s) { put(b, s, strlen(s)); }

tm_status tm_canonical_number(double value, char *out, size_t capacity, tm_error *err) {
    if (!isfinite(value)) return tm_error_set(err, TM_ERR_ARGUMENT, "RFC 8785 has no form for NaN or infinity");
    if (capacity < 32) return tm_error_set(err, TM_ERR_ARGUMENT, "number buffer too small");
    if (value == 0) { /* -0 too */
        strcpy(out, "0");
        return TM_OK;
    }
    char *p = out;
    if (value < 0) {
        *p++ = '-';
        value = -value;
    }
    /* The shortest digit string that reads back to value: %.*e is exactly
     * rounded, so the first precision that round-trips gives ECMAScript's
     * digits (the closest among the shortest). */
    char scientific[40];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(scientific, sizeof scientific, "%.*e", precision - 1, value);
        if (strtod(scientific, NULL) == value) break;
    }
    char digits[20];
    int k = 0;
    const char *s = scientific;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') digits[k++] = *s;
    while (k > 1 && digits[k - 1] == '0') k--; /* only the 1-digit case can end in zeros */
    int n = atoi(s + 1) + 1;                     /* value = 0.d1d2...dk x 10^n */
    if (k <= n && n <= 21) {
        memcpy(p, digits, (size_t)k);
        p += k;
        for (int i = 0; i < n - k; i++) *p++ = '0';
    } else if (0 < n && n <= 21) {
        memcpy(p, digits, (size_t)n);
        p += n;
        *p++ = '.';
        memcpy(p, digits + n, (size_t)(k - n));
        p += k - n;
    } else if (-6 < n && n <= 0) {
        *p++ = '0';
        *p++ = '.';
        for (int i = 0; i < -n; i++) *p++ = '0';
        memcpy(p, digits, (size_t)k);
        p += k;
    } else {
        *p++ = digits[0];
        if (k > 1) {
            *p++ = '.';
            memcpy(p, digits + 1, (size_t)(k - 1));
            p += k - 1;
        }
        p += sprintf(p, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    *p = '\0';
    return TM_OK;
}

static void put_string(buffer *b, const char *s, size_t n) {
    put(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed in one call */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *escape = NULL;
        char hex[8];
        switch (c) {
        case '"': escape = "\\\""; break;
        case '\\': escape = "\\\\"; break;
        case '\b': escape = "\\b"; break;
        case '\f': escape = "\\f"; break;
        case '\n': escape = "\\n"; break;
        case '\r': escape = "\\r"; break;
        case '\t': escape = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(hex, sizeof hex, "\\u%04x", c);
                escape = hex;
            }
        }
        if (!escape) continue;
        put(b, s + run, i - run);
        puts_(b, escape);
        run = i + 1;
    }
    put(b, s + run, n - run);
    put(b, "\"", 1);
}

/* Next code point of valid UTF-8 (jansson has validated it). */
static uint32_t next_code_point(const unsigned char **p) {
    const unsigned char *s = *p;
    uint32_t cp;
    int n = tm_utf8_sequence_length(s[0]);
    if (n == 1) cp = s[0];
    else if (n == 2) cp = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    else if (n == 3) cp = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    else cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    *p = s + n;
    return cp;
}

/* Order of two names by their UTF-16 code units (RFC 8785 section 3.2.3):
 * differs from UTF-8 byte order only for characters above U+FFFF, whose
 * surrogates sort below U+E000..U+FFFF. */
static int compare_utf16(const void *a, const void *b) {
    const unsigned char *x = *(const unsigned char *const *)a, *y = *(const unsigned char *const *)b;
    while (*x && *y) {
        uint32_t cx = next_code_point(&x), cy = next_code_point(&y);
        if (cx == cy) continue;
        uint32_t ux = cx < 0x10000 ? cx : 0xD800 + ((cx - 0x10000) >> 10);
        uint32_t uy = cy < 0x10000 ? cy : 0xD800 + ((cy - 0x10000) >> 10);
        if (ux == uy) { /* same high surrogate: the low ones decide */
            ux = 0xDC00 + ((cx - 0x10000) & 0x3FF);
            uy = 0xDC00 + ((cy - 0x10000) & 0x3FF);
        }
        return ux < uy ? -1 : 1;
    }
    return *x ? 1 : *y ? -1 : 0;
}

enum { MAX_DEPTH = 64 };

static tm_status put_value(buffer *b, json_t *value, int depth, tm_error *err) {
    if (depth > MAX_DEPTH) return tm_error_set(err, TM_ERR_FORMAT, "JSON nested deeper than %d levels", MAX_DEPTH);
    char number[40];
    switch (json_typeof(value)) {
    case JSON_NULL: puts_(b, "null"); return TM_OK;
    case JSON_TRUE: puts_(b, "true"); return TM_OK;
    case JSON_FALSE: puts_(b, "false"); return TM_OK;
    case JSON_STRING: put_string(b, json_string_value(value), json_string_length(value)); return TM_OK;
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(value);
        /* Integers are IEEE doubles in ECMAScript: beyond 2^53 they round. */
        if (i >= -(1LL << 53) && i <= (1LL << 53)) snprintf(number, sizeof number, "%lld", (long long)i);
        else if (tm_canonical_number((double)i, number, sizeof number, err) != TM_OK) return err ? err->code : TM_ERR_ARGUMENT;
        puts_(b, number);
        return TM_OK;
    }
    case JSON_REAL:
        if (tm_canonical_number(json_real_value(value), number, sizeof number, err) != TM_OK) return err ? err->code : TM_ERR_ARGUMENT;
        puts_(b, number);
        return TM_OK;
    case JSON_ARRAY: {
        put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(value); i++) {
            if (i) put(b, ",", 1);
            tm_status status = put_value(b, json_array_get(value, i), depth + 1, err);
            if (status != TM_OK) return status;
        }
        put(b, "]", 1);
        return TM_OK;
    }
    case JSON_OBJECT: {
        size_t n = json_object_size(value);
        const char **names = n ? malloc(n * sizeof *names) : NULL;
        if (n && !names) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        size_t i = 0;
        const char *name;
        json_t *member;
        json_object_foreach(value, name, member) names[i++] = name;
        if (n) qsort(names, n, sizeof *names, compare_utf16);
        put(b, "{", 1);
        tm_status status = TM_OK;
        for (i = 0; i < n && status == TM_OK; i++) {
            if (i) put(b, ",", 1);
            put_string(b, names[i], strlen(names[i]));
            put(b, ":", 1);
            status = put_value(b, json_object_get(value, names[i]), depth + 1, err);
        }
        put(b, "}", 1);
        free(names);
        return status;
    }
    }
    return tm_error_set(err, TM_ERR_FORMAT, "unknown JSON value type");
}

tm_status tm_canonical_json_value(json_t *value, char **out, size_t *out_size, tm_error *err) {
    *out = NULL;
    *out_size = 0;
    buffer b = {0};
    tm_status status = put_value(&b, value, 0, err);
    if (status == TM_OK && b.failed) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory writing canonical JSON");
    if (status == TM_OK && !b.data) put(&b, "", 0);
    if (status != TM_OK || b.failed) {
        free(b.data);
        return status != TM_OK ? status : tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    }
    *out = b.data;
    *out_size = b.size;
    return TM_OK;
}

tm_status tm_canonical_json(const char *json, size_t size, char **out, size_t *out_size, tm_error *err) {
    *out = NULL;
    *out_size = 0;
    json_error_t jerr;
    json_t *value = json_loadb(json, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!value) return tm_error_set(err, TM_ERR_FORMAT, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
    tm_status status = tm_canonical_json_value(value, out, out_size, err);
    json_decref(value);
    return status;
}
