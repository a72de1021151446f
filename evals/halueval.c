/* HaluEval: the model judges whether an answer (QA) or a response
 * (general) is hallucinated, with HaluEval's own judge prompt; the verdict
 * is the log-probability of " Yes" against " No" after it, and a seeded
 * coin picks the right or the hallucinated answer as evaluate.py's
 * random() > 0.5 does. The data files are JSON lines from outside: a line
 * that is not a record of the expected shape is kept as an item with a
 * reason, never scored and never a crash. */
#include "tracemark/evals.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_problem(char *problem, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void set_problem(char *problem, const char *format, ...) {
    if (problem[0]) return;
    va_list args;
    va_start(args, format);
    vsnprintf(problem, TM_HALLUC_PROBLEM_MAX, format, args);
    va_end(args);
}

static void item_free(tm_halueval_item *item) {
    free(item->knowledge);
    free(item->question);
    free(item->right_answer);
    free(item->hallucinated_answer);
    free(item->query);
    free(item->response);
}

void tm_halueval_data_free(tm_halueval_data *data) {
    for (size_t i = 0; i < data->n_items; i++) item_free(&data->items[i]);
    free(data->items);
    memset(data, 0, sizeof *data);
}

/* A required non-empty string field; a problem when absent. */
static tm_status string_field(json_t *object, const char *key, size_t line, char **out, char *problem, tm_error *err) {
    json_t *value = json_object_get(object, key);
    if (!json_is_string(value) || json_string_length(value) == 0) {
        set_problem(problem, "line %zu: \"%s\" is missing, empty or not a string", line, key);
        return TM_OK;
    }
    *out = tm_strdup(json_string_value(value), err);
    return *out ? TM_OK : TM_ERR_NOMEM;
}

tm_status tm_halueval_load(const char *path, tm_halueval_kind kind, tm_halueval_data *out, tm_error *err) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    char *text = NULL;
    size_t size = 0;
    tm_status status = tm_read_file(path, &text, &size, err);
    if (status != TM_OK) return status;
    size_t lines = 1;
    for (size_t i = 0; i < size; i++) lines += text[i] == '\n';
    out->items = tm_alloc_array(lines, sizeof *out->items, err);
    if (!out->items) {
        free(text);
        return TM_ERR_NOMEM;
    }
    size_t line = 0;
    for (char *start = text; status == TM_OK && start < text + size;) {
        char *end = memchr(start, '\n', (size_t)(text + size - start));
        if (!end) end = text + size;
        line++;
        size_t length = (size_t)(end - start);
        char *next = end < text + size ? end + 1 : end;
        if (strspn(start, " \t\r") >= length) {
            start = next;
            continue;
        }
        tm_halueval_item *item = &out->items[out->n_items++];
        item->label = -1;
        json_error_t jerr;
        json_t *record = json_loadb(start, length, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(record)) {
            set_problem(item->problem, "line %zu: not a JSON object (%s)", line, record ? "other JSON" : jerr.text);
        } else if (kind == TM_HALUEVAL_QA) {
            status = string_field(record, "knowledge", line, &item->knowledge, item->problem, err);
            if (status == TM_OK) status = string_field(record, "question", line, &item->question, item->problem, err);
            if (status == TM_OK)
                status = string_field(record, "right_answer", line, &item->right_answer, item->problem, err);
            if (status == TM_OK)
                status = string_field(record, "hallucinated_answer", line, &item->hallucinated_answer, item->problem,
                                      err);
        } else {
            status = string_field(record, "user_query", line, &item->query, item->problem, err);
            if (status == TM_OK)
                status = string_field(record, "chatgpt_response", line, &item->response, item->problem, err);
            json_t *label = json_object_get(record, "hallucination");
            const char *value = json_is_string(label) ? json_string_value(label) : "";
            if (!strcmp(value, "yes")) item->label = 1;
            else if (!strcmp(value, "no")) item->label = 0;
            else set_problem(item->problem, "line %zu: \"hallucination\" is not \"yes\" or \"no\"", line);
        }
        json_decref(record);
        if (item->problem[0]) out->n_bad++;
        start = next;
    }
    free(text);
    if (status != TM_OK) {
        tm_halueval_data_free(out);
        return tm_error_prefix(err, "%s", path);
    }
    return TM_OK;
}

bool tm_halueval_coin(uint64_t seed, uint64_t index) {
    /* One generator per item, seeded from (seed, index) through SplitMix's
     * odd constant, so that the coin never depends on which items ran before. */
    tm_rng rng;
    tm_rng_seed(&rng, seed ^ (index * 0x9E3779B97F4A7C15ull + 0xD1B54A32D192ED03ull));
    return tm_rng_uniform(&rng) > 0.5f;
}

char *tm_halueval_prompt(tm_halueval_kind kind, const char *instruction, const char *question, const char *answer,
                         tm_error *err) {
    const char *q_label = kind == TM_HALUEVAL_QA ? "\n\n#Question#: " : "\n\n#Query#: ";
    const char *a_label = kind == TM_HALUEVAL_QA ? "\n#Answer#: " : "\n#Response#: ";
    const char *tail = "\n#Your Judgement#:";
    size_t parts[6] = {strlen(instruction), strlen(q_label), strlen(question), strlen(a_label), strlen(answer),
                       strlen(tail)};
    size_t total = 1;
    for (int i = 0; i < 6; i++)
        if (!tm_add_size(total, parts[i], &total)) {
            tm_error_set(err, TM_ERR_NOMEM, "judge prompt too long");
            return NULL;
        }
    char *out = tm_alloc_array(total, 1, err);
    if (!out) return NULL;
    const char *texts[6] = {instruction, q_label, question, a_label, answer, tail};
    size_t at = 0;
    for (int i = 0; i < 6; i++) {
        memcpy(out + at, texts[i], parts[i]);
        at += parts[i];
    }
    return out;
}

int tm_halueval_verdict(double ll_yes, double ll_no, double margin) {
    if (isnan(ll_yes) || isnan(ll_no)) return -1;
    if (ll_yes - ll_no > margin) return 1;
    if (ll_no - ll_yes > margin) return 0;
    return -1;
}
