/* The human (and other-model) texts of the watermark task's null set, read
 * from ../shared/data: TruthfulQA's correct answers (one paragraph per
 * question, from the CSV's "Correct Answers" column), HaluEval's knowledge
 * passages (qa_one-turn_data.json) and ChatGPT responses (general_data.json),
 * both JSON lines. Also the small helpers every evals file shares (seed
 * mixing, JSON numbers). The files are untrusted: malformed lines are
 * errors naming file and line; texts that are not UTF-8 are errors too.
 * Nothing here prints. */
#include "evals_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t tm_eval_mix(uint64_t a, uint64_t b) {
    uint64_t z = a ^ (b * 0x9E3779B97F4A7C15ULL) ^ 0xD1B54A32D192ED03ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t tm_eval_name_hash(const char *name) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *name; name++) h = (h ^ (uint8_t)*name) * 0x100000001b3ULL;
    return h;
}

json_t *tm_eval_json_number(double x) {
    if (isnan(x)) return json_null();
    if (isinf(x)) x = x > 0 ? 1e300 : -1e300;
    return json_real(x);
}

double tm_eval_json_get_number(const json_t *value) { return json_is_number(value) ? json_number_value(value) : NAN; }

char *tm_eval_json_text(json_t *value) {
    char *text = value ? json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    json_decref(value);
    return text;
}

void tm_eval_strings_free(char **texts, size_t n) {
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
}

typedef struct {
    char **items;
    size_t n, capacity;
} list;

static size_t count_words(const char *s) {
    size_t n = 0;
    bool in = false;
    for (; *s; s++) {
        bool space = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
        if (!space && !in) n++;
        in = !space;
    }
    return n;
}

/* Takes ownership of text. */
static tm_status add(list *l, char *text, tm_error *err) {
    if (!text) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    if (count_words(text) < 5) {
        free(text);
        return TM_OK;
    }
    if (l->n == l->capacity) {
        size_t grown = l->capacity ? l->capacity * 2 : 1024;
        char **bigger = realloc(l->items, grown * sizeof *bigger);
        if (!bigger) return free(text), tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        l->items = bigger;
        l->capacity = grown;
    }
    l->items[l->n++] = text;
    return TM_OK;
}

/* One CSV record (RFC 4180: quoted fields, "" inside quotes) from *p; fields
 * are heap strings. Returns the number of fields, 0 at the end, -1 when malformed. */
static int csv_record(const char **p, const char *end, char **fields, int max_fields) {
    if (*p >= end) return 0;
    int n = 0;
    for (;;) {
        if (n == max_fields) return -1;
        size_t cap = 64, len = 0;
        char *field = malloc(cap);
        if (!field) return -1;
        bool quoted = *p < end && **p == '"';
        if (quoted) (*p)++;
        while (*p < end) {
            char c = **p;
            if (quoted && c == '"') {
                if (*p + 1 < end && (*p)[1] == '"') (*p)++;
                else {
                    (*p)++;
                    quoted = false;
                    continue;
                }
            } else if (!quoted && (c == ',' || c == '\n' || c == '\r')) break;
            if (len + 2 > cap) {
                char *bigger = realloc(field, cap *= 2);
                if (!bigger) return free(field), -1;
                field = bigger;
            }
            field[len++] = c;
            (*p)++;
        }
        field[len] = '\0';
        fields[n++] = field;
        if (quoted) return -1 - n; /* an unterminated quote */
        if (*p < end && **p == ',') {
            (*p)++;
            continue;
        }
        if (*p < end && **p == '\r') (*p)++;
        if (*p < end && **p == '\n') (*p)++;
        return n;
    }
}

static tm_status load_truthfulqa(const char *dir, list *l, tm_error *err) {
    char path[TM_EVAL_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/truthfulqa/TruthfulQA.csv", dir);
    char *text = NULL;
    size_t size = 0;
    if (tm_read_file(path, &text, &size, err)) return err ? err->code : TM_ERR_IO;
    if (!tm_utf8_valid(text, size)) return free(text), tm_error_set(err, TM_ERR_FORMAT, "%s: not UTF-8", path);
    const char *p = text, *end = text + size;
    char *fields[16];
    int column = -1;
    tm_status status = TM_OK;
    for (size_t record = 1; !status; record++) {
        int n = csv_record(&p, end, fields, 16);
        if (n == 0) break;
        if (n < 0) {
            for (int k = 0; k < -n - 1 && k < 16; k++) free(fields[k]);
            status = tm_error_set(err, TM_ERR_FORMAT, "%s: record %zu: malformed CSV", path, record);
            break;
        }
        if (record == 1) {
            for (int k = 0; k < n; k++)
                if (!strcmp(fields[k], "Correct Answers")) column = k;
            if (column < 0) status = tm_error_set(err, TM_ERR_FORMAT, "%s:1: no \"Correct Answers\" column", path);
        } else if (column < n) {
            /* "a; b; c" -> "a. b. c." : one paragraph of the question's correct answers. */
            const char *answers = fields[column];
            char *paragraph = malloc(strlen(answers) * 2 + 2);
            if (!paragraph) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            else {
                size_t j = 0;
                for (const char *a = answers; *a; a++) {
                    if (a[0] == ';' && a[1] == ' ') {
                        if (j && paragraph[j - 1] != '.') paragraph[j++] = '.';
                        continue;
                    }
                    paragraph[j++] = *a;
                }
                if (j && paragraph[j - 1] != '.') paragraph[j++] = '.';
                paragraph[j] = '\0';
                status = add(l, paragraph, err);
            }
        } else {
            status = tm_error_set(err, TM_ERR_FORMAT, "%s: record %zu: %d fields, expected the header's", path,
                                  record, n);
        }
        for (int k = 0; k < n; k++) free(fields[k]);
    }
    free(text);
    return status;
}

static tm_status load_json_lines(const char *dir, const char *file, const char *field, list *l, tm_error *err) {
    char path[TM_EVAL_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    char *text = NULL;
    size_t size = 0;
    if (tm_read_file(path, &text, &size, err)) return err ? err->code : TM_ERR_IO;
    tm_status status = TM_OK;
    size_t line_no = 0;
    for (char *line = text; !status && line < text + size;) {
        char *end = memchr(line, '\n', (size_t)(text + size - line));
        if (!end) end = text + size;
        *end = '\0';
        line_no++;
        if (end > line) {
            json_error_t jerr;
            json_t *value = json_loads(line, 0, &jerr);
            json_t *s = value ? json_object_get(value, field) : NULL;
            if (!s || !json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s))
                status = tm_error_set(err, TM_ERR_FORMAT, "%s:%zu: expected a JSON object with a string \"%s\"", path,
                                      line_no, field);
            else status = add(l, strdup(json_string_value(s)), err);
            json_decref(value);
        }
        line = end + 1;
    }
    free(text);
    return status;
}

tm_status tm_eval_human_texts_load(const tm_eval_task *task, char ***texts, size_t *n, tm_error *err) {
    list l = {0};
    tm_status status = TM_OK;
    if (task->human_truthfulqa) status = load_truthfulqa(task->data_dir, &l, err);
    if (!status && task->human_halueval_knowledge)
        status = load_json_lines(task->data_dir, "halueval/qa_one-turn_data.json", "knowledge", &l, err);
    if (!status && task->human_halueval_chatgpt)
        status = load_json_lines(task->data_dir, "halueval/general_data.json", "chatgpt_response", &l, err);
    if (status) {
        tm_eval_strings_free(l.items, l.n);
        return status;
    }
    /* Fisher-Yates with the task's seed: the null set mixes the sources. */
    tm_rng rng;
    tm_rng_seed(&rng, tm_eval_mix(task->seed, 0x68756d616eULL));
    for (size_t i = l.n; i > 1; i--) {
        size_t j = (size_t)(tm_rng_next(&rng) % i);
        char *t = l.items[i - 1];
        l.items[i - 1] = l.items[j];
        l.items[j] = t;
    }
    *texts = l.items;
    *n = l.n;
    return TM_OK;
}
