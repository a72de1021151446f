/* The server's secrets on disk: the tenants file (YAML mapping API keys to
 * watermark schemes and keys) and the plain API-keys file. Both hold API
 * keys, so both must be mode 0600 (as key files are); both are read
 * strictly: every field known, typed and present, no duplicates, errors
 * naming the file, line and field. This file never logs or returns an API
 * key in a message, and wipes them when freed. */
#include "tracemark/server.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

enum { SECRETS_FILE_MAX = 1 << 20, MAX_TENANTS = 1024, API_KEY_MIN = 16, API_KEY_MAX = 256 };

/* Read a secrets file that only its owner may read. */
static tm_status read_private(const char *path, char **text, size_t *size, tm_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return tm_error_set(err, TM_ERR_IO, "%s: %s", path, strerror(errno));
    if (st.st_mode & 077)
        return tm_error_set(err, TM_ERR_PERMISSION,
                            "%s: holds API keys but group or others may read it (mode %03o): chmod 600 it", path,
                            (unsigned)(st.st_mode & 0777));
    if (st.st_size > SECRETS_FILE_MAX) return tm_error_set(err, TM_ERR_LIMIT, "%s: larger than 1 MiB", path);
    tm_status status = tm_read_file(path, text, size, err);
    if (status == TM_OK && strlen(*text) != *size) {
        OPENSSL_cleanse(*text, *size);
        free(*text);
        *text = NULL;
        return tm_error_set(err, TM_ERR_FORMAT, "%s: contains a NUL byte", path);
    }
    return status;
}

static bool valid_api_key(const char *key, size_t n) {
    if (n < API_KEY_MIN || n > API_KEY_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] <= 0x20 || key[i] >= 0x7f) return false;
    return true;
}

void tm_api_keys_free(char **keys, size_t n) {
    if (!keys) return;
    for (size_t i = 0; i < n; i++) {
        if (keys[i]) OPENSSL_cleanse(keys[i], strlen(keys[i]));
        free(keys[i]);
    }
    free(keys);
}

tm_status tm_api_keys_load(const char *path, char ***keys, size_t *n_keys, tm_error *err) {
    *keys = NULL;
    *n_keys = 0;
    char *text = NULL;
    size_t size = 0;
    tm_status status = read_private(path, &text, &size, err);
    if (status != TM_OK) return status;
    size_t line = 0;
    for (char *p = text; status == TM_OK && p < text + size;) {
        char *end = memchr(p, '\n', (size_t)(text + size - p));
        if (!end) end = text + size;
        line++;
        char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        p = end + 1;
        if (a == b || *a == '#') continue;
        if (!valid_api_key(a, (size_t)(b - a))) {
            status = tm_error_set(err, TM_ERR_FORMAT,
                                  "%s:%zu: an API key must be %d to %d printable ASCII characters without spaces",
                                  path, line, API_KEY_MIN, API_KEY_MAX);
            break;
        }
        if (*n_keys == MAX_TENANTS) {
            status = tm_error_set(err, TM_ERR_LIMIT, "%s:%zu: more than %d API keys", path, line, MAX_TENANTS);
            break;
        }
        char **grown = realloc(*keys, (*n_keys + 1) * sizeof *grown);
        char *copy = grown ? strndup(a, (size_t)(b - a)) : NULL;
        if (grown) *keys = grown;
        if (!copy) {
            status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            break;
        }
        (*keys)[(*n_keys)++] = copy;
    }
    if (status == TM_OK && *n_keys == 0) status = tm_error_set(err, TM_ERR_FORMAT, "%s: no API keys in the file", path);
    OPENSSL_cleanse(text, size);
    free(text);
    if (status != TM_OK) {
        tm_api_keys_free(*keys, *n_keys);
        *keys = NULL;
        *n_keys = 0;
    }
    return status;
}

void tm_tenant_entries_free(tm_tenant_entry *entries, size_t n) {
    if (!entries) return;
    for (size_t i = 0; i < n; i++) {
        if (entries[i].api_key) OPENSSL_cleanse(entries[i].api_key, strlen(entries[i].api_key));
        free(entries[i].api_key);
        free(entries[i].watermark_path);
        free(entries[i].key_path);
    }
    free(entries);
}

/* A path from the file, relative to the file's folder unless absolute. */
static char *resolve_path(const char *file, const char *value) {
    if (value[0] == '/') return strdup(value);
    char *copy = strdup(file);
    if (!copy) return NULL;
    const char *dir = dirname(copy);
    size_t n = strlen(dir) + strlen(value) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s/%s", dir, value);
    free(copy);
    return out;
}

typedef enum { FIELD_NAME, FIELD_API_KEY, FIELD_WATERMARK, FIELD_KEY, FIELD_COUNT } field;
static const char *const field_names[FIELD_COUNT] = {"name", "api_key", "watermark", "key"};

/* Where the parser is: the states of the one document shape we accept. */
typedef enum {
    S_STREAM, S_DOCUMENT, S_ROOT, S_ROOT_KEY, S_TENANTS_SEQUENCE, S_ITEM, S_FIELD, S_VALUE, S_ROOT_END, S_DOC_END,
    S_STREAM_END, S_DONE
} state;

static const char *event_name(yaml_event_type_t t) {
    switch (t) {
    case YAML_SEQUENCE_START_EVENT: return "a sequence";
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_ALIAS_EVENT: return "an alias";
    case YAML_SCALAR_EVENT: return "a scalar";
    default: return "nothing";
    }
}

tm_status tm_tenants_load(const char *path, tm_tenant_entry **out, size_t *n_out, tm_error *err) {
    *out = NULL;
    *n_out = 0;
    char *text = NULL;
    size_t size = 0;
    tm_status status = read_private(path, &text, &size, err);
    if (status != TM_OK) return status;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        free(text);
        return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", path);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, size);
    tm_tenant_entry *entries = NULL;
    size_t n = 0;
    state st = S_STREAM;
    field current = FIELD_NAME;
    unsigned long seen_line[FIELD_COUNT] = {0}, item_line = 0;
    bool have_tenants = false;
    while (status == TM_OK && st != S_DONE) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: YAML syntax error: %s", path,
                                  (unsigned long)parser.problem_mark.line + 1,
                                  parser.problem ? parser.problem : "malformed");
            break;
        }
        unsigned long line = (unsigned long)ev.start_mark.line + 1;
        const char *scalar = ev.type == YAML_SCALAR_EVENT ? (const char *)ev.data.scalar.value : NULL;
        size_t scalar_size = scalar ? ev.data.scalar.length : 0;
        bool scalar_clean = scalar && strlen(scalar) == scalar_size && !ev.data.scalar.tag;
        switch (st) {
        case S_STREAM: st = S_DOCUMENT; break;
        case S_DOCUMENT:
            if (ev.type == YAML_STREAM_END_EVENT) status = tm_error_set(err, TM_ERR_FORMAT, "%s: empty file; expected 'tenants:'", path);
            else st = S_ROOT;
            break;
        case S_ROOT:
            if (ev.type != YAML_MAPPING_START_EVENT)
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: expected a mapping with 'tenants:', got %s", path,
                                      line, event_name(ev.type));
            else st = S_ROOT_KEY;
            break;
        case S_ROOT_KEY:
            if (ev.type == YAML_MAPPING_END_EVENT) st = S_DOC_END;
            else if (!scalar_clean || strcmp(scalar, "tenants") != 0)
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: unknown top-level field (only 'tenants:')", path, line);
            else if (have_tenants)
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: tenants: duplicate field", path, line);
            else have_tenants = true, st = S_TENANTS_SEQUENCE;
            break;
        case S_TENANTS_SEQUENCE:
            if (ev.type != YAML_SEQUENCE_START_EVENT)
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: tenants: expected a sequence of tenants, got %s",
                                      path, line, event_name(ev.type));
            else st = S_ITEM;
            break;
        case S_ITEM:
            if (ev.type == YAML_SEQUENCE_END_EVENT) {
                st = S_ROOT_KEY;
            } else if (ev.type != YAML_MAPPING_START_EVENT) {
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: tenant %zu: expected a mapping, got %s", path, line,
                                      n + 1, event_name(ev.type));
            } else if (n == MAX_TENANTS) {
                status = tm_error_set(err, TM_ERR_LIMIT, "%s:%lu: more than %d tenants", path, line, MAX_TENANTS);
            } else {
                tm_tenant_entry *grown = realloc(entries, (n + 1) * sizeof *grown);
                if (!grown) {
                    status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
                    break;
                }
                entries = grown;
                memset(&entries[n++], 0, sizeof *entries);
                memset(seen_line, 0, sizeof seen_line);
                item_line = line;
                st = S_FIELD;
            }
            break;
        case S_FIELD:
            if (ev.type == YAML_MAPPING_END_EVENT) {
                for (int f = 0; f < FIELD_COUNT && status == TM_OK; f++)
                    if (!seen_line[f])
                        status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: tenant %zu: missing field '%s'", path,
                                              item_line, n, field_names[f]);
                st = S_ITEM;
                break;
            }
            current = FIELD_COUNT;
            for (int f = 0; f < FIELD_COUNT && scalar_clean; f++)
                if (!strcmp(scalar, field_names[f])) current = (field)f;
            if (current == FIELD_COUNT)
                status = tm_error_set(err, TM_ERR_FORMAT,
                                      "%s:%lu: tenant %zu: unknown field (expected name, api_key, watermark, key)", path,
                                      line, n);
            else if (seen_line[current])
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: tenant %zu: %s: duplicate field (first on line %lu)",
                                      path, line, n, field_names[current], seen_line[current]);
            else seen_line[current] = line, st = S_VALUE;
            break;
        case S_VALUE: {
            tm_tenant_entry *e = &entries[n - 1];
            const char *name = field_names[current];
            if (!scalar_clean || scalar_size == 0) {
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: tenant %zu: %s: expected a non-empty string", path,
                                      line, n, name);
                break;
            }
            if (current == FIELD_NAME) {
                bool ok = scalar_size < sizeof e->name;
                for (size_t i = 0; ok && i < scalar_size; i++)
                    ok = isalnum((unsigned char)scalar[i]) || strchr("_.-", scalar[i]);
                if (!ok)
                    status = tm_error_set(err, TM_ERR_FORMAT,
                                          "%s:%lu: tenant %zu: name: 1 to 64 of A-Z a-z 0-9 _ . - please", path, line, n);
                else memcpy(e->name, scalar, scalar_size + 1);
                for (size_t i = 0; status == TM_OK && i + 1 < n; i++)
                    if (!strcmp(entries[i].name, e->name))
                        status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: tenant %zu: name '%s' is used twice", path,
                                              line, n, e->name);
            } else if (current == FIELD_API_KEY) {
                if (!valid_api_key(scalar, scalar_size)) {
                    status = tm_error_set(err, TM_ERR_FORMAT,
                                          "%s:%lu: tenant %zu: api_key: %d to %d printable ASCII characters without "
                                          "spaces",
                                          path, line, n, API_KEY_MIN, API_KEY_MAX);
                    break;
                }
                for (size_t i = 0; status == TM_OK && i + 1 < n; i++)
                    if (entries[i].api_key && !strcmp(entries[i].api_key, scalar))
                        status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: tenant %zu: api_key: the same as tenant %zu's",
                                              path, line, n, i + 1);
                if (status == TM_OK && !(e->api_key = strdup(scalar)))
                    status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            } else {
                char **target = current == FIELD_WATERMARK ? &e->watermark_path : &e->key_path;
                if (!(*target = resolve_path(path, scalar))) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            }
            st = S_FIELD;
            break;
        }
        case S_ROOT_END: break;
        case S_DOC_END: st = S_STREAM_END; break;
        case S_STREAM_END:
            if (ev.type == YAML_STREAM_END_EVENT) st = S_DONE;
            else status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: more than one YAML document", path, line);
            break;
        case S_DONE: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    OPENSSL_cleanse(text, size);
    free(text);
    if (status == TM_OK && n == 0) status = tm_error_set(err, TM_ERR_FORMAT, "%s: no tenants", path);
    if (status != TM_OK) {
        tm_tenant_entries_free(entries, n);
        return status;
    }
    *out = entries;
    *n_out = n;
    return TM_OK;
}
