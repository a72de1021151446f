/* Scheme configurations: the papers' defaults for each scheme, range checks,
 * the canonical one-line description (which is the HKDF info string, so it is
 * specified byte for byte in docs/watermark-spec.md and must never change for
 * an existing configuration, or old watermarks stop verifying), and loading
 * configs/schemes/NAME.yaml with libyaml's event parser. A config file is
 * untrusted input: every problem becomes an error naming the file, the
 * 1-based line and the field; nothing here prints, and no value outside the
 * validated ranges ever reaches a scheme. */
#include "tracemark/watermark.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/* ---- names and defaults ----------------------------------------------------- */

static const char *const kind_names[TM_WM_KIND_COUNT] = {
    [TM_WM_KGW] = "kgw",         [TM_WM_UNIGRAM] = "unigram", [TM_WM_GUMBEL] = "gumbel",
    [TM_WM_SYNTHID] = "synthid", [TM_WM_DIPMARK] = "dipmark", [TM_WM_EXP_EDIT] = "exp-edit",
};

const char *tm_wm_kind_name(tm_wm_kind kind) {
    if ((unsigned)kind >= TM_WM_KIND_COUNT) return "unknown";
    return kind_names[kind];
}

/* Fields a scheme does not use stay zero, so that two configs of one scheme
 * that describe the same way also compare equal field by field. */
void tm_wm_config_default(tm_wm_config *config, tm_wm_kind kind) {
    memset(config, 0, sizeof *config);
    config->kind = kind;
    switch (kind) {
    case TM_WM_KGW: /* Kirchenbauer et al. 2023, main experiments: gamma 0.25, delta 2, LeftHash h=1 */
        config->gamma = 0.25;
        config->delta = 2.0;
        config->seeding = TM_WM_SEEDING_LEFTHASH;
        config->context_width = 1;
        config->skip_repeated_context = false; /* the paper biases every step */
        break;
    case TM_WM_UNIGRAM: /* Zhao et al. 2023: gamma 0.5, delta 2; no context */
        config->gamma = 0.5;
        config->delta = 2.0;
        break;
    case TM_WM_GUMBEL: /* Aaronson 2022 as in Fernandez et al. 2023 and MarkLLM: h = 4 */
        config->context_width = 4;
        config->skip_repeated_context = true;
        break;
    case TM_WM_SYNTHID: /* Dathathri et al. 2024: ngram_len 5 (h = 4), 30 tournament layers */
        config->context_width = 4;
        config->layers = 30;
        config->skip_repeated_context = true;
        break;
    case TM_WM_DIPMARK: /* Wu et al. 2023, the authors' code: alpha 0.45, the previous 5 tokens */
        config->context_width = 5;
        config->alpha = 0.45;
        config->skip_repeated_context = true;
        break;
    case TM_WM_EXP_EDIT: /* Kuditipudi et al. 2023: key sequence n = 256, EXP decoder */
        config->sequence_length = 256;
        config->decoder = TM_WM_DECODER_EXP;
        break;
    case TM_WM_KIND_COUNT: break;
    }
}

/* ---- which scheme uses which field ------------------------------------------ */

typedef enum { FIELD_NUMBER, FIELD_INTEGER, FIELD_BOOLEAN, FIELD_SEEDING, FIELD_DECODER } field_type;

typedef struct {
    const char *name;
    field_type type;
    unsigned schemes; /* bit set of tm_wm_kind */
} field;

#define BIT(kind) (1u << (kind))
enum { CONTEXT_SCHEMES = BIT(TM_WM_KGW) | BIT(TM_WM_GUMBEL) | BIT(TM_WM_SYNTHID) | BIT(TM_WM_DIPMARK) };

enum { F_GAMMA, F_DELTA, F_SEEDING, F_CONTEXT_WIDTH, F_SKIP, F_LAYERS, F_ALPHA, F_SEQUENCE_LENGTH, F_DECODER, F_COUNT };

static const field fields[F_COUNT] = {
    [F_GAMMA] = {"gamma", FIELD_NUMBER, BIT(TM_WM_KGW) | BIT(TM_WM_UNIGRAM)},
    [F_DELTA] = {"delta", FIELD_NUMBER, BIT(TM_WM_KGW) | BIT(TM_WM_UNIGRAM)},
    [F_SEEDING] = {"seeding", FIELD_SEEDING, BIT(TM_WM_KGW)},
    [F_CONTEXT_WIDTH] = {"context_width", FIELD_INTEGER, CONTEXT_SCHEMES},
    [F_SKIP] = {"skip_repeated_context", FIELD_BOOLEAN, CONTEXT_SCHEMES},
    [F_LAYERS] = {"layers", FIELD_INTEGER, BIT(TM_WM_SYNTHID)},
    [F_ALPHA] = {"alpha", FIELD_NUMBER, BIT(TM_WM_DIPMARK)},
    [F_SEQUENCE_LENGTH] = {"sequence_length", FIELD_INTEGER, BIT(TM_WM_EXP_EDIT)},
    [F_DECODER] = {"decoder", FIELD_DECODER, BIT(TM_WM_EXP_EDIT)},
};

enum {
    CONTEXT_WIDTH_MAX = TM_WM_PRF_MAX_TOKENS - 1, /* one PRF slot is left for the candidate (SelfHash) */
    LAYERS_MAX = TM_WM_LAYERS_MAX,
    SEQUENCE_LENGTH_MAX = 65536,
};

/* The range of each field in words, shared by validate and load so the two
 * can never disagree about what they tell the user. */
static const char *field_expectation(int f) {
    switch (f) {
    case F_GAMMA: return "must be a number in (0, 1)";
    case F_DELTA: return "must be a finite number >= 0";
    case F_SEEDING: return "must be lefthash or selfhash";
    case F_CONTEXT_WIDTH: return "must be an integer in [1, 15]";
    case F_SKIP: return "must be true or false";
    case F_LAYERS: return "must be an integer in [1, 64]";
    case F_ALPHA: return "must be a number in [0, 0.5]";
    case F_SEQUENCE_LENGTH: return "must be an integer in [1, 65536]";
    case F_DECODER: return "must be exp or its";
    }
    return "is invalid";
}

/* The first field of config (in table order) that is out of range, or -1. */
static int first_invalid_field(const tm_wm_config *c) {
    unsigned bit = BIT(c->kind);
    if ((fields[F_GAMMA].schemes & bit) && !(c->gamma > 0 && c->gamma < 1)) return F_GAMMA;
    if ((fields[F_DELTA].schemes & bit) && !(c->delta >= 0 && isfinite(c->delta))) return F_DELTA;
    if ((fields[F_SEEDING].schemes & bit) && c->seeding != TM_WM_SEEDING_LEFTHASH && c->seeding != TM_WM_SEEDING_SELFHASH)
        return F_SEEDING;
    if ((fields[F_CONTEXT_WIDTH].schemes & bit) && !(c->context_width >= 1 && c->context_width <= CONTEXT_WIDTH_MAX))
        return F_CONTEXT_WIDTH;
    if ((fields[F_LAYERS].schemes & bit) && !(c->layers >= 1 && c->layers <= LAYERS_MAX)) return F_LAYERS;
    if ((fields[F_ALPHA].schemes & bit) && !(c->alpha >= 0 && c->alpha <= 0.5)) return F_ALPHA;
    if ((fields[F_SEQUENCE_LENGTH].schemes & bit) &&
        !(c->sequence_length >= 1 && c->sequence_length <= SEQUENCE_LENGTH_MAX))
        return F_SEQUENCE_LENGTH;
    if ((fields[F_DECODER].schemes & bit) && c->decoder != TM_WM_DECODER_EXP && c->decoder != TM_WM_DECODER_ITS)
        return F_DECODER;
    return -1;
}

tm_status tm_wm_config_validate(const tm_wm_config *config, tm_error *err) {
    if (!config) return tm_error_set(err, TM_ERR_ARGUMENT, "no watermark configuration");
    if ((unsigned)config->kind >= TM_WM_KIND_COUNT)
        return tm_error_set(err, TM_ERR_ARGUMENT, "scheme: unknown watermark scheme %d", (int)config->kind);
    int f = first_invalid_field(config);
    if (f < 0) return TM_OK;
    const char *scheme = tm_wm_kind_name(config->kind);
    switch (fields[f].type) {
    case FIELD_NUMBER: {
        double value = f == F_GAMMA ? config->gamma : f == F_DELTA ? config->delta : config->alpha;
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: %s: %s, got %.17g", scheme, fields[f].name,
                            field_expectation(f), value);
    }
    case FIELD_INTEGER: {
        int32_t value = f == F_CONTEXT_WIDTH ? config->context_width : f == F_LAYERS ? config->layers
                                                                                     : config->sequence_length;
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: %s: %s, got %d", scheme, fields[f].name,
                            field_expectation(f), (int)value);
    }
    default:
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: %s: %s, got %d", scheme, fields[f].name,
                            field_expectation(f), f == F_SEEDING ? (int)config->seeding : (int)config->decoder);
    }
}

/* ---- the canonical description ------------------------------------------------ */

/* -0 prints as "-0" with %g; a key must not depend on the sign of a zero. */
static double canonical_zero(double x) { return x == 0 ? 0.0 : x; }

size_t tm_wm_config_describe(const tm_wm_config *c, char *out, size_t capacity) {
    /* snprintf with capacity 0 writes nothing, and %.17g in the C locale
     * (the library never calls setlocale) round-trips every double. */
    int n;
    switch (c->kind) {
    case TM_WM_KGW:
        n = snprintf(out, capacity, "kgw;seeding=%s;h=%d;gamma=%.17g;delta=%.17g",
                     c->seeding == TM_WM_SEEDING_SELFHASH ? "selfhash" : "lefthash", (int)c->context_width,
                     canonical_zero(c->gamma), canonical_zero(c->delta));
        break;
    case TM_WM_UNIGRAM:
        n = snprintf(out, capacity, "unigram;gamma=%.17g;delta=%.17g", canonical_zero(c->gamma),
                     canonical_zero(c->delta));
        break;
    case TM_WM_GUMBEL: n = snprintf(out, capacity, "gumbel;h=%d", (int)c->context_width); break;
    case TM_WM_SYNTHID:
        n = snprintf(out, capacity, "synthid;h=%d;layers=%d", (int)c->context_width, (int)c->layers);
        break;
    case TM_WM_DIPMARK:
        n = snprintf(out, capacity, "dipmark;h=%d;alpha=%.17g", (int)c->context_width, canonical_zero(c->alpha));
        break;
    case TM_WM_EXP_EDIT:
        n = snprintf(out, capacity, "exp-edit;decoder=%s;n=%d", c->decoder == TM_WM_DECODER_ITS ? "its" : "exp",
                     (int)c->sequence_length);
        break;
    default: n = snprintf(out, capacity, "unknown"); break;
    }
    return n < 0 ? 0 : (size_t)n;
}

/* ---- loading YAML -------------------------------------------------------------- */

enum {
    CONFIG_FILE_MAX = 1 << 20, /* a scheme file is a handful of lines */
    ENTRIES_MAX = 32,
    KEY_MAX = 64,
    VALUE_MAX = 128,
};

/* One `key: value` pair of the mapping, as read. */
typedef struct {
    char key[KEY_MAX];
    char value[VALUE_MAX];
    bool key_truncated, value_truncated;
    bool value_plain;  /* unquoted and untagged: may be a number or a boolean */
    bool value_tagged; /* an explicit tag (!!float 0.5): not accepted, types come from the field */
    unsigned long line, value_line; /* 1-based */
} entry;

/* Copy a scalar for messages and parsing; false when it did not fit or holds
 * a NUL (a quoted "gamma\0x" must not pass for "gamma"). */
static bool copy_scalar(char *out, size_t capacity, const yaml_event_t *event) {
    size_t n = event->data.scalar.length;
    bool fits = n < capacity && !memchr(event->data.scalar.value, 0, n);
    if (n >= capacity) n = capacity - 1;
    memcpy(out, event->data.scalar.value, n);
    out[n] = '\0';
    return fits;
}

/* A value as it may appear in a message: printable ASCII only, bounded. */
static void printable(const char *text, bool truncated, char *out, size_t capacity) {
    size_t j = 0;
    for (size_t i = 0; text[i] && j + 4 < capacity && i < 48; i++)
        out[j++] = (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
    if (truncated || strlen(text) > 48) {
        out[j++] = '.', out[j++] = '.', out[j++] = '.';
    }
    out[j] = '\0';
}

static const char *event_kind(yaml_event_type_t type) {
    switch (type) {
    case YAML_SEQUENCE_START_EVENT: return "a sequence";
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_ALIAS_EVENT: return "an alias";
    case YAML_SCALAR_EVENT: return "a scalar";
    case YAML_STREAM_END_EVENT:
    case YAML_DOCUMENT_END_EVENT: return "nothing";
    default: return "something else";
    }
}

/* Read the single top-level mapping of the file into entries. */
static tm_status read_entries(const char *path, const char *text, size_t size, entry *entries, size_t *n_entries,
                              tm_error *err) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", path);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, size);
    tm_status status = TM_OK;
    /* Where in the document we are: 0 stream start, 1 document start, 2 mapping
     * start, 3 key or mapping end, 4 value, 5 document end, 6 stream end, 7 done. */
    int state = 0;
    *n_entries = 0;
    while (status == TM_OK && state != 7) {
        yaml_event_t event;
        if (!yaml_parser_parse(&parser, &event)) {
            unsigned long line = (unsigned long)parser.problem_mark.line + 1;
            if (parser.error == YAML_MEMORY_ERROR) status = tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", path);
            else if (parser.context)
                status = tm_error_set(err, TM_ERR_FORMAT,
                                      "%s:%lu: YAML syntax error: %s (column %lu), %s that starts on line %lu, column %lu",
                                      path, line, parser.problem ? parser.problem : "malformed",
                                      (unsigned long)parser.problem_mark.column + 1, parser.context,
                                      (unsigned long)parser.context_mark.line + 1,
                                      (unsigned long)parser.context_mark.column + 1);
            else
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: YAML syntax error: %s (column %lu)", path, line,
                                      parser.problem ? parser.problem : "malformed",
                                      (unsigned long)parser.problem_mark.column + 1);
            break;
        }
        unsigned long line = (unsigned long)event.start_mark.line + 1;
        switch (state) {
        case 0: state = 1; break; /* the stream start always comes first */
        case 1:
            if (event.type == YAML_STREAM_END_EVENT)
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: empty file; expected a mapping with 'scheme:'",
                                      path, line);
            else state = 2;
            break;
        case 2:
            if (event.type == YAML_MAPPING_START_EVENT) state = 3;
            else if (event.type == YAML_SCALAR_EVENT && event.data.scalar.length == 0 &&
                     event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: empty document; expected a mapping with 'scheme:'",
                                      path, line);
            else
                status = tm_error_set(err, TM_ERR_FORMAT,
                                      "%s:%lu: expected a mapping of fields (scheme: ..., ...), got %s", path, line,
                                      event_kind(event.type));
            break;
        case 3:
            if (event.type == YAML_MAPPING_END_EVENT) {
                state = 5;
            } else if (event.type != YAML_SCALAR_EVENT) {
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: field names must be plain words, got %s", path,
                                      line, event_kind(event.type));
            } else if (*n_entries == ENTRIES_MAX) {
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: too many fields (at most %d)", path, line,
                                      ENTRIES_MAX);
            } else {
                entry *e = &entries[*n_entries];
                memset(e, 0, sizeof *e);
                e->key_truncated = !copy_scalar(e->key, sizeof e->key, &event);
                e->line = line;
                state = 4;
            }
            break;
        case 4: {
            entry *e = &entries[*n_entries];
            char key[KEY_MAX + 4];
            printable(e->key, e->key_truncated, key, sizeof key);
            if (event.type != YAML_SCALAR_EVENT) {
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: %s: expected a single value, got %s", path, line,
                                      key, event_kind(event.type));
            } else {
                e->value_truncated = !copy_scalar(e->value, sizeof e->value, &event);
                e->value_tagged = event.data.scalar.tag != NULL;
                e->value_plain = event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !e->value_tagged;
                e->value_line = line;
                for (size_t i = 0; i < *n_entries; i++)
                    if (!e->key_truncated && !entries[i].key_truncated && !strcmp(entries[i].key, e->key)) {
                        status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: %s: duplicate field (first on line %lu)",
                                              path, e->line, key, entries[i].line);
                        break;
                    }
                (*n_entries)++;
                state = 3;
            }
            break;
        }
        case 5: state = 6; break; /* the document end follows its mapping */
        case 6:
            if (event.type == YAML_STREAM_END_EVENT) state = 7;
            else status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: more than one YAML document in the file", path, line);
            break;
        }
        yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
    return status;
}

/* Number syntax: YAML's core schema for decimals ([-+]? digits [. digits] [e[-+]digits],
 * or .5) plus .inf/.nan, which parse so that the range check names them. */
static bool parse_number(const char *s, double *out) {
    static const char *const infinities[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"};
    for (size_t i = 0; i < sizeof infinities / sizeof infinities[0]; i++)
        if (!strcmp(s, infinities[i])) return *out = INFINITY, true;
    if (!strcmp(s, "-.inf") || !strcmp(s, "-.Inf") || !strcmp(s, "-.INF")) return *out = -INFINITY, true;
    if (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN")) return *out = NAN, true;
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9') p++, digits++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') p++, digits++;
    }
    if (digits == 0) return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return false;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p) return false;
    errno = 0;
    char *end = NULL;
    double value = strtod(s, &end);
    if (*end) return false;
    *out = value; /* overflow gives +-HUGE_VAL, which the range checks reject */
    return true;
}

static bool parse_integer(const char *s, long long *out) {
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!*p) return false;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return false;
    errno = 0;
    char *end = NULL;
    long long value = strtoll(s, &end, 10);
    if (*end) return false;
    if (errno == ERANGE) value = value < 0 ? LLONG_MIN : LLONG_MAX;
    *out = value;
    return true;
}

static int find_field(const char *name) {
    for (int f = 0; f < F_COUNT; f++)
        if (!strcmp(fields[f].name, name)) return f;
    return -1;
}

static void list_fields(unsigned bit, char *out, size_t capacity) {
    size_t used = 0;
    out[0] = '\0';
    for (int f = 0; f < F_COUNT; f++) {
        if (!(fields[f].schemes & bit)) continue;
        int n = snprintf(out + used, capacity - used, "%s%s", used ? ", " : "", fields[f].name);
        if (n < 0 || (size_t)n >= capacity - used) break;
        used += (size_t)n;
    }
}

/* Set one field from its text; on failure the error names file, line, field and value. */
static tm_status apply_entry(const char *path, tm_wm_config *c, int f, const entry *e, tm_error *err) {
    char shown[VALUE_MAX];
    printable(e->value, e->value_truncated, shown, sizeof shown);
    const char *quote = e->value_plain ? "" : "\"";
    double number = 0;
    long long integer = 0;
    bool ok = !e->value_truncated;
    switch (fields[f].type) {
    case FIELD_NUMBER:
        ok = ok && e->value_plain && parse_number(e->value, &number);
        if (ok) {
            if (f == F_GAMMA) c->gamma = number;
            else if (f == F_DELTA) c->delta = number;
            else c->alpha = number;
        }
        break;
    case FIELD_INTEGER:
        ok = ok && e->value_plain && parse_integer(e->value, &integer) && integer >= INT32_MIN && integer <= INT32_MAX;
        if (ok) {
            if (f == F_CONTEXT_WIDTH) c->context_width = (int32_t)integer;
            else if (f == F_LAYERS) c->layers = (int32_t)integer;
            else c->sequence_length = (int32_t)integer;
        }
        break;
    case FIELD_BOOLEAN: /* YAML 1.2 core booleans only: yes/no/on/off are too easy to misread */
        ok = ok && e->value_plain;
        if (ok && (!strcmp(e->value, "true") || !strcmp(e->value, "True") || !strcmp(e->value, "TRUE")))
            c->skip_repeated_context = true;
        else if (ok && (!strcmp(e->value, "false") || !strcmp(e->value, "False") || !strcmp(e->value, "FALSE")))
            c->skip_repeated_context = false;
        else ok = false;
        break;
    case FIELD_SEEDING:
        if (ok && !strcmp(e->value, "lefthash")) c->seeding = TM_WM_SEEDING_LEFTHASH;
        else if (ok && !strcmp(e->value, "selfhash")) c->seeding = TM_WM_SEEDING_SELFHASH;
        else ok = false;
        break;
    case FIELD_DECODER:
        if (ok && !strcmp(e->value, "exp")) c->decoder = TM_WM_DECODER_EXP;
        else if (ok && !strcmp(e->value, "its")) c->decoder = TM_WM_DECODER_ITS;
        else ok = false;
        break;
    }
    /* Every field applied before this one was checked, so f is the only one that can be out of range. */
    if (ok && first_invalid_field(c) != f) return TM_OK;
    if (e->value_tagged)
        return tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: %s: %s, got a value with a YAML tag (write it plainly)",
                            path, e->value_line, fields[f].name, field_expectation(f));
    if (!e->value_plain && (fields[f].type == FIELD_NUMBER || fields[f].type == FIELD_INTEGER ||
                            fields[f].type == FIELD_BOOLEAN))
        return tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: %s: %s, got the quoted string %s%s%s", path, e->value_line,
                            fields[f].name, field_expectation(f), quote, shown, quote);
    if (e->value[0] == '\0' && e->value_plain)
        return tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: %s: %s, got an empty value", path, e->value_line,
                            fields[f].name, field_expectation(f));
    return tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: %s: %s, got %s%s%s", path, e->value_line, fields[f].name,
                        field_expectation(f), quote, shown, quote);
}

tm_status tm_wm_config_load(tm_wm_config *config, const char *path, tm_error *err) {
    if (!config || !path) return tm_error_set(err, TM_ERR_ARGUMENT, "no scheme file or no configuration to fill");
    /* tm_read_file_limited checks the type on the opened descriptor (a FIFO
     * is refused at once) and the size both before and while reading. */
    char *text = NULL;
    size_t size = 0;
    tm_status status = tm_read_file_limited(path, CONFIG_FILE_MAX, &text, &size, err);
    if (status == TM_ERR_LIMIT)
        return tm_error_set(err, TM_ERR_FORMAT, "%s: too large for a scheme file (at most %d bytes)", path,
                            CONFIG_FILE_MAX);
    if (status == TM_ERR_IO) { /* e.g. not a regular file: the input is not a scheme file */
        if (err) err->code = TM_ERR_FORMAT;
        return TM_ERR_FORMAT;
    }
    if (status != TM_OK) return status;
    entry *entries = calloc(ENTRIES_MAX, sizeof *entries);
    if (!entries) {
        free(text);
        return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n_entries = 0;
    status = read_entries(path, text, size, entries, &n_entries, err);
    free(text);

    /* The scheme comes first whatever its place in the file: it sets the defaults. */
    const entry *scheme_entry = NULL;
    for (size_t i = 0; status == TM_OK && i < n_entries; i++)
        if (!entries[i].key_truncated && !strcmp(entries[i].key, "scheme")) scheme_entry = &entries[i];
    tm_wm_config c;
    if (status == TM_OK && !scheme_entry)
        status = tm_error_set(err, TM_ERR_FORMAT,
                              "%s:1: scheme: missing; expected one of kgw, unigram, gumbel, synthid, dipmark, exp-edit",
                              path);
    if (status == TM_OK) {
        int kind = -1;
        for (int k = 0; k < TM_WM_KIND_COUNT; k++)
            if (!scheme_entry->value_truncated && !strcmp(scheme_entry->value, kind_names[k])) kind = k;
        if (kind < 0) {
            char shown[VALUE_MAX];
            printable(scheme_entry->value, scheme_entry->value_truncated, shown, sizeof shown);
            status = tm_error_set(err, TM_ERR_FORMAT,
                                  "%s:%lu: scheme: must be one of kgw, unigram, gumbel, synthid, dipmark, exp-edit, got %s",
                                  path, scheme_entry->value_line, shown[0] ? shown : "an empty value");
        } else {
            tm_wm_config_default(&c, (tm_wm_kind)kind);
        }
    }
    for (size_t i = 0; status == TM_OK && i < n_entries; i++) {
        const entry *e = &entries[i];
        if (e == scheme_entry) continue;
        char key[KEY_MAX + 4];
        printable(e->key, e->key_truncated, key, sizeof key);
        int f = e->key_truncated ? -1 : find_field(e->key);
        char known[256];
        list_fields(BIT(c.kind), known, sizeof known);
        if (f < 0)
            status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: %s: unknown field (scheme %s takes: scheme%s%s)", path,
                                  e->line, key[0] ? key : "\"\"", tm_wm_kind_name(c.kind), known[0] ? ", " : "", known);
        else if (!(fields[f].schemes & BIT(c.kind)))
            status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: %s: not a field of scheme %s (it takes: scheme%s%s)",
                                  path, e->line, key, tm_wm_kind_name(c.kind), known[0] ? ", " : "", known);
        else status = apply_entry(path, &c, f, e, err);
    }
    free(entries);
    if (status != TM_OK) return status;
    status = tm_wm_config_validate(&c, err);
    if (status != TM_OK) return tm_error_prefix(err, "%s", path);
    *config = c;
    return TM_OK;
}
