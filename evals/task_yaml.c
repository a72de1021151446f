/* The field readers that every task-file parser of evals/ shares (task.c for
 * the watermark and hallucination kinds, zeroshot_task.c for zero_shot): a
 * scalar, an integer, a number, a boolean, a sequence of bounded length, a
 * path resolved against the task file's folder, each refusing what the
 * strict schema refuses with "FILE:LINE: FIELD: what is wrong". Plain
 * scalars may be numbers; quoted ones are strings, as YAML's core schema
 * says; and the `schemes:` list that every generating kind reads the same
 * way. Nothing else here knows a field's meaning; nothing here prints. */
#include "evals_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

unsigned long tm_eval_yaml_line(const yaml_node_t *node) { return (unsigned long)node->start_mark.line + 1; }

tm_status tm_eval_yaml_fail(tm_eval_yaml *p, const yaml_node_t *node, const char *field, const char *format, ...) {
    char message[384];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    return tm_error_set(p->err, TM_ERR_FORMAT, "%s:%lu: %s: %s", p->path, node ? tm_eval_yaml_line(node) : 0UL, field,
                        message);
}

const char *tm_eval_yaml_kind(const yaml_node_t *node) {
    switch (node->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a sequence";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

/* A scalar's text, NUL-terminated in a caller buffer; refuses NUL inside and overlong values. */
tm_status tm_eval_yaml_scalar(tm_eval_yaml *p, const yaml_node_t *node, const char *field, char *out, size_t capacity) {
    if (node->type != YAML_SCALAR_NODE)
        return tm_eval_yaml_fail(p, node, field, "expected a single value, got %s", tm_eval_yaml_kind(node));
    size_t n = node->data.scalar.length;
    if (n >= capacity) return tm_eval_yaml_fail(p, node, field, "value too long (at most %zu bytes)", capacity - 1);
    if (memchr(node->data.scalar.value, 0, n)) return tm_eval_yaml_fail(p, node, field, "value holds a NUL character");
    memcpy(out, node->data.scalar.value, n);
    out[n] = '\0';
    return TM_OK;
}

/* Plain scalars may be numbers; quoted ones are strings, as YAML's core schema says. */
bool tm_eval_yaml_plain(const yaml_node_t *node) { return node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE; }

tm_status tm_eval_yaml_integer(tm_eval_yaml *p, const yaml_node_t *node, const char *field, long long min,
                               long long max, long long *out) {
    char text[64];
    if (tm_eval_yaml_scalar(p, node, field, text, sizeof text)) return TM_ERR_FORMAT;
    const char *s = text;
    if (*s == '+' || *s == '-') s++;
    bool digits = *s != '\0';
    for (const char *q = s; *q; q++) digits = digits && *q >= '0' && *q <= '9';
    if (!tm_eval_yaml_plain(node) || !digits)
        return tm_eval_yaml_fail(p, node, field, "expected an integer, got '%s'", text);
    errno = 0;
    long long value = strtoll(text, NULL, 10);
    if (errno == ERANGE || value < min || value > max)
        return tm_eval_yaml_fail(p, node, field, "must be an integer in [%lld, %lld], got %s", min, max, text);
    *out = value;
    return TM_OK;
}

tm_status tm_eval_yaml_unsigned64(tm_eval_yaml *p, const yaml_node_t *node, const char *field, uint64_t *out) {
    char text[64];
    if (tm_eval_yaml_scalar(p, node, field, text, sizeof text)) return TM_ERR_FORMAT;
    bool digits = text[0] != '\0';
    for (const char *q = text; *q; q++) digits = digits && *q >= '0' && *q <= '9';
    if (!tm_eval_yaml_plain(node) || !digits)
        return tm_eval_yaml_fail(p, node, field, "expected an unsigned integer, got '%s'", text);
    errno = 0;
    unsigned long long value = strtoull(text, NULL, 10);
    if (errno == ERANGE) return tm_eval_yaml_fail(p, node, field, "must fit in 64 bits, got %s", text);
    *out = value;
    return TM_OK;
}

tm_status tm_eval_yaml_number(tm_eval_yaml *p, const yaml_node_t *node, const char *field, double min, double max,
                        bool min_open, double *out) {
    char text[64];
    if (tm_eval_yaml_scalar(p, node, field, text, sizeof text)) return TM_ERR_FORMAT;
    char *end = NULL;
    errno = 0;
    double value = text[0] ? strtod(text, &end) : NAN;
    if (!tm_eval_yaml_plain(node) || !end || *end || text[0] == '\0' || strpbrk(text, "xXnNiI"))
        return tm_eval_yaml_fail(p, node, field, "expected a number, got '%s'", text);
    if (!isfinite(value) || value < min || value > max || (min_open && value == min))
        return tm_eval_yaml_fail(p, node, field, "must be a number in %c%g, %g], got %s", min_open ? '(' : '[', min,
                                 max, text);
    *out = value;
    return TM_OK;
}

tm_status tm_eval_yaml_boolean(tm_eval_yaml *p, const yaml_node_t *node, const char *field, bool *out) {
    char text[16];
    if (tm_eval_yaml_scalar(p, node, field, text, sizeof text)) return TM_ERR_FORMAT;
    if (tm_eval_yaml_plain(node) && !strcmp(text, "true")) return *out = true, TM_OK;
    if (tm_eval_yaml_plain(node) && !strcmp(text, "false")) return *out = false, TM_OK;
    return tm_eval_yaml_fail(p, node, field, "expected true or false, got '%s'", text);
}

tm_status tm_eval_yaml_sequence(tm_eval_yaml *p, const yaml_node_t *node, const char *field, size_t min, size_t max) {
    if (node->type != YAML_SEQUENCE_NODE)
        return tm_eval_yaml_fail(p, node, field, "expected a sequence, got %s", tm_eval_yaml_kind(node));
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (n < min || n > max) return tm_eval_yaml_fail(p, node, field, "expected %zu to %zu items, got %zu", min, max, n);
    return TM_OK;
}

size_t tm_eval_yaml_size(const yaml_node_t *node) {
    return (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
}

yaml_node_t *tm_eval_yaml_item(tm_eval_yaml *p, const yaml_node_t *node, size_t i) {
    return yaml_document_get_node(p->doc, node->data.sequence.items.start[i]);
}

/* Resolve a path from the file relative to the task's folder. */
tm_status tm_eval_yaml_resolve(tm_eval_yaml *p, const yaml_node_t *node, const char *field, char *out) {
    char text[TM_EVAL_PATH_MAX];
    if (tm_eval_yaml_scalar(p, node, field, text, sizeof text)) return TM_ERR_FORMAT;
    if (!text[0]) return tm_eval_yaml_fail(p, node, field, "empty path");
    int n = text[0] == '/' ? snprintf(out, TM_EVAL_PATH_MAX, "%s", text)
                           : snprintf(out, TM_EVAL_PATH_MAX, "%s/%s", p->dir, text);
    if (n < 0 || n >= TM_EVAL_PATH_MAX) return tm_eval_yaml_fail(p, node, field, "path too long");
    return TM_OK;
}

tm_status tm_eval_yaml_must_exist(tm_eval_yaml *p, const yaml_node_t *node, const char *field, const char *path) {
    if (!tm_file_exists(path)) return tm_eval_yaml_fail(p, node, field, "no such file: %s", path);
    return TM_OK;
}

tm_status tm_eval_yaml_schemes(tm_eval_yaml *p, tm_eval_task *t, const yaml_node_t *node) {
    t->n_schemes = tm_eval_yaml_size(node);
    for (size_t k = 0; k < t->n_schemes; k++) {
        yaml_node_t *n = tm_eval_yaml_item(p, node, k);
        char path[TM_EVAL_PATH_MAX];
        if (tm_eval_yaml_resolve(p, n, "schemes", path) || tm_eval_yaml_must_exist(p, n, "schemes", path))
            return TM_ERR_FORMAT;
        tm_error e;
        if (tm_wm_config_load(&t->schemes[k], path, &e)) return tm_eval_yaml_fail(p, n, "schemes", "%s", e.message);
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        size_t len = strlen(base);
        if (len > 5 && !strcmp(base + len - 5, ".yaml")) len -= 5;
        if (len >= sizeof t->scheme_names[k]) return tm_eval_yaml_fail(p, n, "schemes", "file name too long");
        memcpy(t->scheme_names[k], base, len);
        t->scheme_names[k][len] = '\0';
        for (size_t q = 0; q < k; q++)
            if (!strcmp(t->scheme_names[q], t->scheme_names[k]))
                return tm_eval_yaml_fail(p, n, "schemes", "scheme '%s' listed twice", t->scheme_names[k]);
    }
    return TM_OK;
}
