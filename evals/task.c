/* Task files: YAML (libyaml's document loader, which keeps every node's line)
 * read against a strict schema, as the scheme configs are. A task file is
 * untrusted input: every unknown key, wrong type, out-of-range value, missing
 * scheme, model or data file becomes an error "FILE:LINE: FIELD: what is
 * wrong". This file resolves paths (relative to the task file's folder) and
 * checks that files exist; it never loads a model, never writes anything,
 * and never prints. */
#include "evals_internal.h" /* tm_eval_zeroshot_parse */
#include "tracemark/evals.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

enum { TASK_FILE_MAX = 1 << 22, PROMPTS_MAX = 100000, PROMPT_BYTES_MAX = 1 << 16 };

/* Built-in prompts: story openings that suit the TinyStories models. */
static const char *const builtin_prompts[] = {
    "Once upon a time", "One day, a little girl named Lily", "Tom and his dog went to the park",
    "There was a big red ball", "The sun was shining and", "A little bird lived in a tree",
    "Ben wanted to build a tower", "Mia found a shiny stone", "The cat was very hungry",
    "In a small town, there was a boy",
};

typedef tm_eval_yaml parser; /* the reader state of evals/task_yaml.c */

/* Walk a mapping's pairs: each key must be a plain scalar in `known`, none twice. */
typedef tm_status (*field_handler)(parser *p, tm_eval_task *task, const char *key, yaml_node_t *value,
                                   unsigned long key_line);

static tm_status mapping(parser *p, tm_eval_task *task, const yaml_node_t *node, const char *where,
                         const char *const *known, field_handler handle) {
    if (node->type != YAML_MAPPING_NODE)
        return tm_eval_yaml_fail(p, node, where, "expected a mapping, got %s", tm_eval_yaml_kind(node));
    const char *seen[32] = {0};
    for (yaml_node_pair_t *pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
        yaml_node_t *key_node = yaml_document_get_node(p->doc, pair->key);
        yaml_node_t *value = yaml_document_get_node(p->doc, pair->value);
        char key[64];
        if (key_node->type != YAML_SCALAR_NODE)
            return tm_eval_yaml_fail(p, key_node, where, "field names must be plain words");
        if (tm_eval_yaml_scalar(p, key_node, where, key, sizeof key)) return TM_ERR_FORMAT;
        size_t k = 0;
        while (known[k] && strcmp(known[k], key)) k++;
        if (!known[k]) {
            char list[512] = "";
            for (size_t j = 0; known[j]; j++) {
                strncat(list, j ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, known[j], sizeof list - strlen(list) - 1);
            }
            char full[160];
            snprintf(full, sizeof full, "%s%s%s", where[0] ? where : "", where[0] ? "." : "", key);
            return tm_eval_yaml_fail(p, key_node, full, "unknown field (known: %s)", list);
        }
        if (k < 32 && seen[k]) return tm_eval_yaml_fail(p, key_node, key, "duplicate field");
        if (k < 32) seen[k] = key;
        if (handle(p, task, key, value, tm_eval_yaml_line(key_node))) return TM_ERR_FORMAT;
    }
    return TM_OK;
}

/* ---- sections ------------------------------------------------------------------- */

static tm_status sampling_field(parser *p, tm_eval_task *t, const char *key, yaml_node_t *v, unsigned long line) {
    (void)line;
    double x;
    long long i;
    char field[64];
    snprintf(field, sizeof field, "sampling.%s", key);
    if (!strcmp(key, "temperature")) {
        if (tm_eval_yaml_number(p, v, field, 0, 100, false, &x)) return TM_ERR_FORMAT;
        t->sampling.temperature = (float)x;
    } else if (!strcmp(key, "top_k")) {
        if (tm_eval_yaml_integer(p, v, field, 0, 1 << 20, &i)) return TM_ERR_FORMAT;
        t->sampling.top_k = (int32_t)i;
    } else if (!strcmp(key, "top_p")) {
        if (tm_eval_yaml_number(p, v, field, 0, 1, true, &x)) return TM_ERR_FORMAT;
        t->sampling.top_p = (float)x;
    } else if (!strcmp(key, "min_p")) {
        if (tm_eval_yaml_number(p, v, field, 0, 1, false, &x)) return TM_ERR_FORMAT;
        t->sampling.min_p = (float)x;
    } else if (!strcmp(key, "repeat_penalty")) {
        if (tm_eval_yaml_number(p, v, field, 0, 100, true, &x)) return TM_ERR_FORMAT;
        t->sampling.repeat_penalty = (float)x;
    }
    return TM_OK;
}

static tm_status null_field(parser *p, tm_eval_task *t, const char *key, yaml_node_t *v, unsigned long line) {
    (void)line;
    long long i;
    char field[64];
    snprintf(field, sizeof field, "null.%s", key);
    if (!strcmp(key, "generated")) {
        if (tm_eval_yaml_integer(p, v, field, 0, 1000000, &i)) return TM_ERR_FORMAT;
        t->null_generated = (int32_t)i;
    } else if (!strcmp(key, "human")) {
        if (tm_eval_yaml_integer(p, v, field, 0, 1000000, &i)) return TM_ERR_FORMAT;
        t->null_human = (int32_t)i;
    } else if (!strcmp(key, "data_dir")) {
        if (tm_eval_yaml_resolve(p, v, field, t->data_dir)) return TM_ERR_FORMAT;
    } else if (!strcmp(key, "sources")) {
        if (tm_eval_yaml_sequence(p, v, field, 1, 3)) return TM_ERR_FORMAT;
        t->human_truthfulqa = t->human_halueval_knowledge = t->human_halueval_chatgpt = false;
        for (size_t k = 0; k < tm_eval_yaml_size(v); k++) {
            char name[64];
            yaml_node_t *n = tm_eval_yaml_item(p, v, k);
            if (tm_eval_yaml_scalar(p, n, field, name, sizeof name)) return TM_ERR_FORMAT;
            bool *flag = !strcmp(name, "truthfulqa")           ? &t->human_truthfulqa
                         : !strcmp(name, "halueval-knowledge") ? &t->human_halueval_knowledge
                         : !strcmp(name, "halueval-chatgpt")   ? &t->human_halueval_chatgpt
                                                               : NULL;
            if (!flag)
                return tm_eval_yaml_fail(
                    p, n, field, "unknown source '%s' (known: truthfulqa, halueval-knowledge, halueval-chatgpt)", name);
            if (*flag) return tm_eval_yaml_fail(p, n, field, "source '%s' listed twice", name);
            *flag = true;
        }
    }
    return TM_OK;
}

static tm_status metrics_field(parser *p, tm_eval_task *t, const char *key, yaml_node_t *v, unsigned long line) {
    (void)line;
    long long i;
    char field[64];
    snprintf(field, sizeof field, "metrics.%s", key);
    if (!strcmp(key, "fprs")) {
        if (tm_eval_yaml_sequence(p, v, field, 1, TM_EVAL_MAX_FPRS)) return TM_ERR_FORMAT;
        t->n_fprs = tm_eval_yaml_size(v);
        for (size_t k = 0; k < t->n_fprs; k++)
            if (tm_eval_yaml_number(p, tm_eval_yaml_item(p, v, k), field, 0, 0.5, true, &t->fprs[k]))
                return TM_ERR_FORMAT;
    } else if (!strcmp(key, "decision_fpr")) {
        if (tm_eval_yaml_number(p, v, field, 0, 0.5, true, &t->decision_fpr)) return TM_ERR_FORMAT;
    } else if (!strcmp(key, "bootstrap")) {
        if (tm_eval_yaml_integer(p, v, field, 0, 100000, &i)) return TM_ERR_FORMAT;
        t->bootstrap = (uint32_t)i;
    } else if (!strcmp(key, "prefix_step")) {
        if (tm_eval_yaml_integer(p, v, field, 1, 4096, &i)) return TM_ERR_FORMAT;
        t->prefix_step = (int32_t)i;
    }
    return TM_OK;
}

static tm_status detect_field(parser *p, tm_eval_task *t, const char *key, yaml_node_t *v, unsigned long line) {
    (void)line;
    long long i;
    char field[64];
    snprintf(field, sizeof field, "detect.%s", key);
    if (!strcmp(key, "permutations")) {
        if (tm_eval_yaml_integer(p, v, field, 1, 1000000, &i)) return TM_ERR_FORMAT;
        t->permutations = (int32_t)i;
    } else if (!strcmp(key, "min_window")) {
        if (tm_eval_yaml_integer(p, v, field, 1, 100000, &i)) return TM_ERR_FORMAT;
        t->min_window = (int32_t)i;
    }
    return TM_OK;
}

/* `oracle:` and `paraphraser:`: {model: PATH, tokenizer: PATH}. */
static _Thread_local struct {
    char *model, *tokenizer;
    const char *section;
    bool check_files;
} second_model; /* parse state of the section being read */

static tm_status second_model_field(parser *p, tm_eval_task *t, const char *key, yaml_node_t *v, unsigned long line) {
    (void)t;
    (void)line;
    char field[64];
    snprintf(field, sizeof field, "%s.%s", second_model.section, key);
    char *out = !strcmp(key, "model") ? second_model.model : second_model.tokenizer;
    if (tm_eval_yaml_resolve(p, v, field, out)) return TM_ERR_FORMAT;
    if (second_model.check_files && tm_eval_yaml_must_exist(p, v, field, out)) return TM_ERR_FORMAT;
    return TM_OK;
}

static tm_status second_model_section(parser *p, tm_eval_task *t, yaml_node_t *v, const char *section, char *model,
                                      char *tokenizer, bool check_files) {
    static const char *const known[] = {"model", "tokenizer", NULL};
    second_model.model = model;
    second_model.tokenizer = tokenizer;
    second_model.section = section;
    second_model.check_files = check_files;
    if (mapping(p, t, v, section, known, second_model_field)) return TM_ERR_FORMAT;
    if (!model[0]) {
        char field[64];
        snprintf(field, sizeof field, "%s.model", section);
        return tm_eval_yaml_fail(p, v, field, "missing (required)");
    }
    return TM_OK;
}

/* One entry of `attacks:`: {attack: NAME, strengths: [..], window: bool}. */
typedef struct {
    tm_attack_kind kind;
    bool has_kind, window, has_window;
    yaml_node_t *strengths, *kind_node;
    unsigned long line;
} attack_entry;
static _Thread_local attack_entry current_attack; /* parse state of one attacks: entry */

static tm_status attack_field(parser *p, tm_eval_task *t, const char *key, yaml_node_t *v, unsigned long line) {
    (void)t;
    (void)line;
    if (!strcmp(key, "attack")) {
        char name[64];
        if (tm_eval_yaml_scalar(p, v, "attacks.attack", name, sizeof name)) return TM_ERR_FORMAT;
        if (!tm_attack_parse(name, &current_attack.kind) || current_attack.kind == TM_ATTACK_NONE)
            return tm_eval_yaml_fail(p, v, "attacks.attack",
                        "unknown attack '%s' (known: delete, insert, swap, typo, case, punctuation, synonym, "
                        "homoglyph, zero-width, copy-paste, emoji, paraphrase)",
                        name);
        current_attack.has_kind = true;
        current_attack.kind_node = v;
    } else if (!strcmp(key, "strengths")) {
        if (tm_eval_yaml_sequence(p, v, "attacks.strengths", 1, 8)) return TM_ERR_FORMAT;
        current_attack.strengths = v;
    } else if (!strcmp(key, "window")) {
        if (tm_eval_yaml_boolean(p, v, "attacks.window", &current_attack.window)) return TM_ERR_FORMAT;
        current_attack.has_window = true;
    }
    return TM_OK;
}

static tm_status attacks_section(parser *p, tm_eval_task *t, yaml_node_t *v) {
    static const char *const known[] = {"attack", "strengths", "window", NULL};
    if (tm_eval_yaml_sequence(p, v, "attacks", 0, TM_EVAL_MAX_ATTACKS)) return TM_ERR_FORMAT;
    for (size_t k = 0; k < tm_eval_yaml_size(v); k++) {
        yaml_node_t *entry = tm_eval_yaml_item(p, v, k);
        memset(&current_attack, 0, sizeof current_attack);
        if (mapping(p, t, entry, "attacks", known, attack_field)) return TM_ERR_FORMAT;
        if (!current_attack.has_kind)
            return tm_eval_yaml_fail(p, entry, "attacks.attack", "missing (each attack names one)");
        if (!current_attack.strengths) return tm_eval_yaml_fail(p, entry, "attacks.strengths", "missing");
        if (current_attack.has_window && current_attack.kind != TM_ATTACK_COPY_PASTE)
            return tm_eval_yaml_fail(p, entry, "attacks.window", "only copy-paste is scored with a window");
        yaml_node_t *s = current_attack.strengths;
        for (size_t j = 0; j < tm_eval_yaml_size(s); j++) {
            double x;
            bool share = current_attack.kind == TM_ATTACK_COPY_PASTE;
            if (tm_eval_yaml_number(p, tm_eval_yaml_item(p, s, j), "attacks.strengths", 0, 1, share, &x))
                return TM_ERR_FORMAT;
            for (int w = 0; w <= (current_attack.window ? 1 : 0); w++) {
                if (t->n_attacks == TM_EVAL_MAX_ATTACKS)
                    return tm_eval_yaml_fail(p, entry, "attacks", "too many attack variants (at most %d)",
                                             TM_EVAL_MAX_ATTACKS);
                tm_eval_attack *a = &t->attacks[t->n_attacks];
                a->kind = current_attack.kind;
                a->strength = x;
                a->window = w == 1;
                snprintf(a->name, sizeof a->name, "%s%s@%g", tm_attack_name(a->kind), a->window ? "+window" : "", x);
                for (size_t q = 0; q < t->n_attacks; q++)
                    if (!strcmp(t->attacks[q].name, a->name))
                        return tm_eval_yaml_fail(p, tm_eval_yaml_item(p, s, j), "attacks.strengths", "%s listed twice",
                                                 a->name);
                t->n_attacks++;
            }
        }
    }
    return TM_OK;
}

static tm_status prompts_from_file(parser *p, tm_eval_task *t, yaml_node_t *v) {
    char path[TM_EVAL_PATH_MAX];
    if (tm_eval_yaml_resolve(p, v, "prompts_file", path) || tm_eval_yaml_must_exist(p, v, "prompts_file", path))
        return TM_ERR_FORMAT;
    char *text = NULL;
    size_t size = 0;
    tm_error e;
    if (tm_read_file(path, &text, &size, &e)) return tm_eval_yaml_fail(p, v, "prompts_file", "%s", e.message);
    if (!tm_utf8_valid(text, size) || memchr(text, 0, size)) {
        free(text);
        return tm_eval_yaml_fail(p, v, "prompts_file", "%s: not UTF-8 text", path);
    }
    size_t lines = 0;
    for (char *s = text; *s;) {
        char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        if (n > 0) lines++;
        s += n + (nl ? 1 : 0);
    }
    if (lines == 0 || lines > PROMPTS_MAX) {
        free(text);
        return tm_eval_yaml_fail(p, v, "prompts_file", "%s: expected 1 to %d non-empty lines", path, PROMPTS_MAX);
    }
    t->prompts = calloc(lines, sizeof *t->prompts);
    if (!t->prompts) return free(text), tm_error_set(p->err, TM_ERR_NOMEM, "out of memory");
    for (char *s = text; *s;) {
        char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        if (n > 0) {
            t->prompts[t->n_prompts] = strndup(s, n);
            if (!t->prompts[t->n_prompts++]) return free(text), tm_error_set(p->err, TM_ERR_NOMEM, "out of memory");
        }
        s += n + (nl ? 1 : 0);
    }
    free(text);
    return TM_OK;
}

static bool valid_name(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_' || *s == '.'))
            return false;
    return true;
}

typedef struct {
    yaml_node_t *kind, *name, *seed, *schemes, *samples, *model, *tokenizer, *keys, *key_count, *prompts,
        *prompts_file, *lengths, *null_section, *oracle, *paraphraser;
} top_nodes;
static _Thread_local top_nodes top; /* the top-level nodes, checked once all are read */

static tm_status top_field(parser *p, tm_eval_task *t, const char *key, yaml_node_t *v, unsigned long line) {
    (void)line;
    long long i;
    if (!strcmp(key, "kind")) top.kind = v;
    else if (!strcmp(key, "name")) top.name = v;
    else if (!strcmp(key, "seed")) top.seed = v;
    else if (!strcmp(key, "model")) top.model = v;
    else if (!strcmp(key, "tokenizer")) top.tokenizer = v;
    else if (!strcmp(key, "schemes")) top.schemes = v;
    else if (!strcmp(key, "keys")) top.keys = v;
    else if (!strcmp(key, "key_count")) top.key_count = v;
    else if (!strcmp(key, "prompts")) top.prompts = v;
    else if (!strcmp(key, "prompts_file")) top.prompts_file = v;
    else if (!strcmp(key, "samples")) top.samples = v;
    else if (!strcmp(key, "oracle")) top.oracle = v;
    else if (!strcmp(key, "paraphraser")) top.paraphraser = v;
    else if (!strcmp(key, "max_tokens")) {
        if (tm_eval_yaml_integer(p, v, "max_tokens", 1, 4096, &i)) return TM_ERR_FORMAT;
        t->max_tokens = (int32_t)i;
    } else if (!strcmp(key, "lengths")) {
        top.lengths = v;
        if (tm_eval_yaml_sequence(p, v, "lengths", 1, TM_EVAL_MAX_LENGTHS)) return TM_ERR_FORMAT;
        t->n_lengths = tm_eval_yaml_size(v);
        for (size_t k = 0; k < t->n_lengths; k++) {
            if (tm_eval_yaml_integer(p, tm_eval_yaml_item(p, v, k), "lengths", 1, 4096, &i)) return TM_ERR_FORMAT;
            t->lengths[k] = (int32_t)i;
            if (k > 0 && t->lengths[k] <= t->lengths[k - 1])
                return tm_eval_yaml_fail(p, tm_eval_yaml_item(p, v, k), "lengths", "must increase");
        }
    } else if (!strcmp(key, "sampling")) {
        static const char *const known[] = {"temperature", "top_k", "top_p", "min_p", "repeat_penalty", NULL};
        return mapping(p, t, v, "sampling", known, sampling_field);
    } else if (!strcmp(key, "null")) {
        static const char *const known[] = {"generated", "human", "data_dir", "sources", NULL};
        top.null_section = v;
        return mapping(p, t, v, "null", known, null_field);
    } else if (!strcmp(key, "attacks")) {
        return attacks_section(p, t, v);
    } else if (!strcmp(key, "metrics")) {
        static const char *const known[] = {"fprs", "decision_fpr", "bootstrap", "prefix_step", NULL};
        return mapping(p, t, v, "metrics", known, metrics_field);
    } else if (!strcmp(key, "detect")) {
        static const char *const known[] = {"permutations", "min_window", NULL};
        return mapping(p, t, v, "detect", known, detect_field);
    }
    return TM_OK;
}

static void defaults(tm_eval_task *t) {
    t->max_tokens = 200;
    t->n_lengths = 4;
    t->lengths[0] = 25, t->lengths[1] = 50, t->lengths[2] = 100, t->lengths[3] = 200;
    t->prefix_step = 5;
    tm_sampling_params_default(&t->sampling);
    t->sampling.temperature = 1.0f;
    t->null_generated = -1;
    t->null_human = -1;
    t->human_truthfulqa = t->human_halueval_knowledge = t->human_halueval_chatgpt = true;
    t->n_fprs = 3;
    t->fprs[0] = 1e-2, t->fprs[1] = 1e-3, t->fprs[2] = 1e-4;
    t->decision_fpr = 1e-3;
    t->bootstrap = 1000;
    t->permutations = 999;
    t->min_window = 25;
    t->n_keys = 1;
}

static tm_status required(parser *p, yaml_node_t *root, yaml_node_t *node, const char *field) {
    if (node) return TM_OK;
    return tm_eval_yaml_fail(p, root, field, "missing (required)");
}

static tm_status check_data(parser *p, yaml_node_t *root, tm_eval_task *t) {
    if (t->null_human == 0) return TM_OK;
    const char *files[3] = {t->human_truthfulqa ? "truthfulqa/TruthfulQA.csv" : NULL,
                            t->human_halueval_knowledge ? "halueval/qa_one-turn_data.json" : NULL,
                            t->human_halueval_chatgpt ? "halueval/general_data.json" : NULL};
    for (int k = 0; k < 3; k++) {
        if (!files[k]) continue;
        char path[TM_EVAL_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", t->data_dir, files[k]);
        if (!tm_file_exists(path))
            return tm_eval_yaml_fail(p, top.null_section ? top.null_section : root, "null.data_dir",
                                     "missing data file %s", path);
    }
    return TM_OK;
}

/* ---- hallucination and truthfulness kinds ------------------------------------------ */

/* The kind named by the root mapping's `kind:`, when it is one of these. */
static bool halluc_kind_of(parser *p, yaml_node_t *root, tm_eval_kind *out) {
    if (root->type != YAML_MAPPING_NODE) return false;
    for (yaml_node_pair_t *pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = yaml_document_get_node(p->doc, pair->key), *v = yaml_document_get_node(p->doc, pair->value);
        if (k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) continue;
        if (k->data.scalar.length != 4 || memcmp(k->data.scalar.value, "kind", 4)) continue;
        static const struct { const char *name; tm_eval_kind kind; } kinds[] = {
            {"truthfulqa_mc", TM_EVAL_KIND_TRUTHFULQA_MC},
            {"halueval_qa", TM_EVAL_KIND_HALUEVAL_QA},
            {"halueval_general", TM_EVAL_KIND_HALUEVAL_GENERAL},
            {"truthfulqa_gen", TM_EVAL_KIND_TRUTHFULQA_GEN},
            {"selfcheck", TM_EVAL_KIND_SELFCHECK}};
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            if (v->data.scalar.length == strlen(kinds[i].name) &&
                !memcmp(v->data.scalar.value, kinds[i].name, v->data.scalar.length)) {
                *out = kinds[i].kind;
                return true;
            }
    }
    return false;
}

typedef struct {
    yaml_node_t *name, *seed, *model, *tokenizer, *data, *instruction;
} halluc_nodes;
static _Thread_local halluc_nodes halluc_top;

static tm_status halluc_metrics_field(parser *p, tm_eval_task *t, const char *key, yaml_node_t *v,
                                      unsigned long line) {
    (void)line;
    long long i;
    if (!strcmp(key, "bootstrap")) {
        if (tm_eval_yaml_integer(p, v, "metrics.bootstrap", 0, 100000, &i)) return TM_ERR_FORMAT;
        t->bootstrap = (uint32_t)i;
    }
    return TM_OK;
}

static tm_status halluc_field(parser *p, tm_eval_task *t, const char *key, yaml_node_t *v, unsigned long line) {
    (void)line;
    long long i;
    if (!strcmp(key, "name")) halluc_top.name = v;
    else if (!strcmp(key, "seed")) halluc_top.seed = v;
    else if (!strcmp(key, "model")) halluc_top.model = v;
    else if (!strcmp(key, "tokenizer")) halluc_top.tokenizer = v;
    else if (!strcmp(key, "data")) halluc_top.data = v;
    else if (!strcmp(key, "instruction")) halluc_top.instruction = v;
    else if (!strcmp(key, "limit")) {
        if (tm_eval_yaml_integer(p, v, "limit", 0, 100000000, &i)) return TM_ERR_FORMAT;
        t->halluc_limit = i;
    } else if (!strcmp(key, "reuse")) {
        if (tm_eval_yaml_boolean(p, v, "reuse", &t->halluc_reuse)) return TM_ERR_FORMAT;
    } else if (!strcmp(key, "context")) {
        if (tm_eval_yaml_integer(p, v, "context", 16, 1 << 20, &i)) return TM_ERR_FORMAT;
        t->halluc_context = (int32_t)i;
    } else if (!strcmp(key, "margin")) {
        if (tm_eval_yaml_number(p, v, "margin", 0, 1e6, false, &t->halluc_margin)) return TM_ERR_FORMAT;
    } else if (!strcmp(key, "max_tokens")) {
        if (tm_eval_yaml_integer(p, v, "max_tokens", 1, 4096, &i)) return TM_ERR_FORMAT;
        t->halluc_max_tokens = (int32_t)i;
    } else if (!strcmp(key, "samples")) {
        if (tm_eval_yaml_integer(p, v, "samples", 1, 100, &i)) return TM_ERR_FORMAT;
        t->halluc_samples = (int32_t)i;
    } else if (!strcmp(key, "temperature")) {
        double x;
        if (tm_eval_yaml_number(p, v, "temperature", 0, 100, false, &x)) return TM_ERR_FORMAT;
        t->halluc_temperature = (float)x;
    } else if (!strcmp(key, "prompt_variant")) {
        if (tm_eval_yaml_boolean(p, v, "prompt_variant", &t->halluc_prompt_variant)) return TM_ERR_FORMAT;
    } else if (!strcmp(key, "metrics")) {
        static const char *const known[] = {"bootstrap", NULL};
        return mapping(p, t, v, "metrics", known, halluc_metrics_field);
    }
    return TM_OK;
}

/* A data file: the task's path (relative to the task file), else the
 * shared fixtures' copy ($TRACEMARK_FIXTURES/data or ../shared/data). */
static tm_status halluc_data_path(parser *p, yaml_node_t *node, const char *field, const char *relative, char *out,
                                  bool check_files) {
    if (node) {
        if (tm_eval_yaml_resolve(p, node, field, out)) return TM_ERR_FORMAT;
    } else {
        const char *fixtures = getenv("TRACEMARK_FIXTURES");
        int n = snprintf(out, TM_EVAL_PATH_MAX, "%s/data/%s", fixtures && *fixtures ? fixtures : "../shared", relative);
        if (n < 0 || n >= TM_EVAL_PATH_MAX)
            return tm_error_set(p->err, TM_ERR_FORMAT, "%s: %s: path too long", p->path, field);
    }
    if (check_files && !tm_file_exists(out)) {
        if (node) return tm_eval_yaml_fail(p, node, field, "no such file: %s", out);
        return tm_error_set(p->err, TM_ERR_FORMAT, "%s:1: %s: missing, and the default %s does not exist", p->path,
                            field, out);
    }
    return TM_OK;
}

/* Without file checks (a store's snapshot read back, e.g. by reports/), an
 * explicit `model:` is still resolved to the path the run used, so that a
 * reader can find and describe the model (its SHA-256 decides whether the
 * file there is the run's) even where the task's data files are gone. An
 * absent `model:` leaves model_path empty: the default resolution belongs to
 * the run's machine and working folder. */
static tm_status snapshot_model_path(parser *p, tm_eval_task *t, yaml_node_t *model) {
    if (model && tm_eval_yaml_resolve(p, model, "model", t->model_path)) return TM_ERR_FORMAT;
    return TM_OK;
}

static tm_status halluc_parse_root(parser *p, tm_eval_task *t, yaml_node_t *root, tm_eval_kind kind, bool check_files) {
    static const char *const known_mc[] = {"kind", "name", "seed", "model", "tokenizer", "data", "limit", "reuse",
                                           "context", "metrics", NULL};
    static const char *const known_halueval[] = {"kind", "name", "seed", "model", "tokenizer", "data", "instruction",
                                                 "limit", "reuse", "context", "margin", "metrics", NULL};
    static const char *const known_gen[] = {"kind", "name", "seed", "model", "tokenizer", "data", "limit", "reuse",
                                            "context", "max_tokens", "metrics", NULL};
    static const char *const known_selfcheck[] = {"kind", "name", "seed", "model", "tokenizer", "data", "limit",
                                                  "reuse", "context", "max_tokens", "samples", "temperature",
                                                  "prompt_variant", "metrics", NULL};
    memset(&halluc_top, 0, sizeof halluc_top);
    t->kind = kind;
    t->halluc_reuse = true;
    t->halluc_context = 2048;
    t->halluc_max_tokens = kind == TM_EVAL_KIND_SELFCHECK ? 64 : 128;
    t->halluc_samples = 3;
    t->halluc_temperature = 1.0f;
    t->halluc_prompt_variant = true;
    const char *const *known = kind == TM_EVAL_KIND_TRUTHFULQA_MC    ? known_mc
                               : kind == TM_EVAL_KIND_TRUTHFULQA_GEN ? known_gen
                               : kind == TM_EVAL_KIND_SELFCHECK      ? known_selfcheck
                                                                     : known_halueval;
    if (mapping(p, t, root, "", known, halluc_field)) return TM_ERR_FORMAT;
    if (required(p, root, halluc_top.name, "name") ||
        tm_eval_yaml_scalar(p, halluc_top.name, "name", t->name, sizeof t->name))
        return TM_ERR_FORMAT;
    if (!valid_name(t->name))
        return tm_eval_yaml_fail(p, halluc_top.name, "name", "use letters, digits, '-', '_' and '.' only");
    if (required(p, root, halluc_top.seed, "seed") || tm_eval_yaml_unsigned64(p, halluc_top.seed, "seed", &t->seed))
        return TM_ERR_FORMAT;
    const char *default_data = kind == TM_EVAL_KIND_TRUTHFULQA_MC    ? "truthfulqa/mc_task.json"
                               : kind == TM_EVAL_KIND_TRUTHFULQA_GEN ? "truthfulqa/TruthfulQA.csv"
                               : kind == TM_EVAL_KIND_HALUEVAL_QA    ? "halueval/qa_one-turn_data.json"
                                                                     : "halueval/general_data.json";
    if (halluc_data_path(p, halluc_top.data, "data", default_data, t->halluc_data, check_files)) return TM_ERR_FORMAT;
    if ((kind == TM_EVAL_KIND_HALUEVAL_QA || kind == TM_EVAL_KIND_HALUEVAL_GENERAL) &&
        halluc_data_path(p, halluc_top.instruction, "instruction", "halueval/qa_evaluation_instruction.txt",
                         t->halluc_instruction, check_files))
        return TM_ERR_FORMAT;
    if (!check_files) return snapshot_model_path(p, t, halluc_top.model);
    char explicit_model[TM_EVAL_PATH_MAX] = "";
    if (halluc_top.model) {
        if (tm_eval_yaml_resolve(p, halluc_top.model, "model", explicit_model) ||
            tm_eval_yaml_must_exist(p, halluc_top.model, "model", explicit_model))
            return TM_ERR_FORMAT;
        t->model_line = tm_eval_yaml_line(halluc_top.model);
    }
    tm_error e;
    if (tm_model_resolve(explicit_model[0] ? explicit_model : NULL, t->model_path, sizeof t->model_path,
                         t->tokenizer_path, sizeof t->tokenizer_path, &e))
        return tm_eval_yaml_fail(p, halluc_top.model ? halluc_top.model : root, "model", "%s", e.message);
    if (halluc_top.tokenizer &&
        (tm_eval_yaml_resolve(p, halluc_top.tokenizer, "tokenizer", t->tokenizer_path) ||
         tm_eval_yaml_must_exist(p, halluc_top.tokenizer, "tokenizer", t->tokenizer_path)))
        return TM_ERR_FORMAT;
    return TM_OK;
}

static tm_status parse_root(parser *p, tm_eval_task *t, yaml_node_t *root, bool check_files) {
    static const char *const known[] = {"kind", "name", "seed", "model", "tokenizer", "schemes", "keys",
                                        "key_count", "prompts", "prompts_file", "samples", "max_tokens",
                                        "lengths", "sampling", "null", "attacks", "metrics", "detect", "oracle",
                                        "paraphraser", NULL};
    memset(&top, 0, sizeof top);
    if (!root || (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
        return tm_error_set(p->err, TM_ERR_FORMAT, "%s:1: kind: empty task file; expected a mapping with 'kind:'",
                            p->path);
    if (tm_eval_zeroshot_kind_of(p->doc, root)) return tm_eval_zeroshot_parse(p, t, root, check_files);
    tm_eval_kind halluc_kind;
    if (halluc_kind_of(p, root, &halluc_kind)) return halluc_parse_root(p, t, root, halluc_kind, check_files);
    if (mapping(p, t, root, "", known, top_field)) return TM_ERR_FORMAT;
    char text[TM_EVAL_PATH_MAX];
    long long i;
    if (required(p, root, top.kind, "kind") || tm_eval_yaml_scalar(p, top.kind, "kind", text, 64)) return TM_ERR_FORMAT;
    if (strcmp(text, "watermark"))
        return tm_eval_yaml_fail(p, top.kind, "kind",
                                 "unknown task kind '%s' (known: watermark, truthfulqa_mc, truthfulqa_gen, "
                                 "halueval_qa, halueval_general, selfcheck, zero_shot)",
                                 text);
    t->kind = TM_EVAL_KIND_WATERMARK;
    if (required(p, root, top.name, "name") || tm_eval_yaml_scalar(p, top.name, "name", t->name, sizeof t->name))
        return TM_ERR_FORMAT;
    if (!valid_name(t->name))
        return tm_eval_yaml_fail(p, top.name, "name", "use letters, digits, '-', '_' and '.' only");
    if (required(p, root, top.seed, "seed") || tm_eval_yaml_unsigned64(p, top.seed, "seed", &t->seed))
        return TM_ERR_FORMAT;
    if (required(p, root, top.samples, "samples") || tm_eval_yaml_integer(p, top.samples, "samples", 1, 1000000, &i))
        return TM_ERR_FORMAT;
    t->samples = (int32_t)i;
    if (t->null_generated < 0) t->null_generated = t->samples;
    if (t->null_human < 0) t->null_human = t->samples;
    /* schemes */
    if (required(p, root, top.schemes, "schemes") ||
        tm_eval_yaml_sequence(p, top.schemes, "schemes", 1, TM_EVAL_MAX_SCHEMES))
        return TM_ERR_FORMAT;
    if (tm_eval_yaml_schemes(p, t, top.schemes)) return TM_ERR_FORMAT;
    /* keys */
    if (top.keys && top.key_count)
        return tm_eval_yaml_fail(p, top.key_count, "key_count", "give either keys or key_count");
    if (top.keys) {
        if (tm_eval_yaml_sequence(p, top.keys, "keys", 1, TM_EVAL_MAX_KEYS)) return TM_ERR_FORMAT;
        t->n_key_files = t->n_keys = tm_eval_yaml_size(top.keys);
        for (size_t k = 0; k < t->n_keys; k++) {
            yaml_node_t *n = tm_eval_yaml_item(p, top.keys, k);
            if (tm_eval_yaml_resolve(p, n, "keys", t->key_files[k])) return TM_ERR_FORMAT;
            if (check_files && tm_eval_yaml_must_exist(p, n, "keys", t->key_files[k])) return TM_ERR_FORMAT;
        }
    } else if (top.key_count) {
        if (tm_eval_yaml_integer(p, top.key_count, "key_count", 1, TM_EVAL_MAX_KEYS, &i)) return TM_ERR_FORMAT;
        t->n_keys = (size_t)i;
    }
    /* prompts */
    if (top.prompts && top.prompts_file)
        return tm_eval_yaml_fail(p, top.prompts_file, "prompts_file", "give either prompts or prompts_file");
    if (top.prompts) {
        if (tm_eval_yaml_sequence(p, top.prompts, "prompts", 1, PROMPTS_MAX)) return TM_ERR_FORMAT;
        size_t n = tm_eval_yaml_size(top.prompts);
        t->prompts = calloc(n, sizeof *t->prompts);
        if (!t->prompts) return tm_error_set(p->err, TM_ERR_NOMEM, "out of memory");
        for (size_t k = 0; k < n; k++) {
            yaml_node_t *node = tm_eval_yaml_item(p, top.prompts, k);
            if (node->type != YAML_SCALAR_NODE)
                return tm_eval_yaml_fail(p, node, "prompts", "expected a single value, got %s",
                                         tm_eval_yaml_kind(node));
            size_t n = node->data.scalar.length;
            if (n >= PROMPT_BYTES_MAX)
                return tm_eval_yaml_fail(p, node, "prompts", "prompt longer than %d bytes", PROMPT_BYTES_MAX - 1);
            if (memchr(node->data.scalar.value, 0, n))
                return tm_eval_yaml_fail(p, node, "prompts", "prompt holds a NUL character");
            if (!(t->prompts[t->n_prompts++] = strndup((const char *)node->data.scalar.value, n)))
                return tm_error_set(p->err, TM_ERR_NOMEM, "out of memory");
        }
    } else if (top.prompts_file) {
        if (prompts_from_file(p, t, top.prompts_file)) return TM_ERR_FORMAT;
    } else {
        size_t n = sizeof builtin_prompts / sizeof builtin_prompts[0];
        t->prompts = calloc(n, sizeof *t->prompts);
        if (!t->prompts) return tm_error_set(p->err, TM_ERR_NOMEM, "out of memory");
        for (size_t k = 0; k < n; k++)
            if (!(t->prompts[t->n_prompts++] = strdup(builtin_prompts[k])))
                return tm_error_set(p->err, TM_ERR_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < t->n_lengths; k++)
        if (t->lengths[k] > t->max_tokens)
            return tm_eval_yaml_fail(p, top.lengths ? top.lengths : root, "lengths", "%d is longer than max_tokens %d",
                        (int)t->lengths[k], (int)t->max_tokens);
    if (t->null_generated + t->null_human == 0)
        return tm_eval_yaml_fail(p, top.null_section ? top.null_section : root, "null",
                    "the null set is empty (generated and human are both 0)");
    if (!t->data_dir[0]) {
        const char *fixtures = getenv("TRACEMARK_FIXTURES");
        snprintf(t->data_dir, sizeof t->data_dir, "%s/data", fixtures && *fixtures ? fixtures : "../shared");
    }
    if (top.oracle && second_model_section(p, t, top.oracle, "oracle", t->oracle_model, t->oracle_tokenizer,
                                           check_files))
        return TM_ERR_FORMAT;
    if (top.paraphraser && second_model_section(p, t, top.paraphraser, "paraphraser", t->paraphraser_model,
                                                t->paraphraser_tokenizer, check_files))
        return TM_ERR_FORMAT;
    if (!check_files) return snapshot_model_path(p, t, top.model);
    if (check_data(p, root, t)) return TM_ERR_FORMAT;
    /* model and tokenizer */
    char explicit_model[TM_EVAL_PATH_MAX] = "";
    if (top.model) {
        if (tm_eval_yaml_resolve(p, top.model, "model", explicit_model) ||
            tm_eval_yaml_must_exist(p, top.model, "model", explicit_model))
            return TM_ERR_FORMAT;
        t->model_line = tm_eval_yaml_line(top.model);
    }
    tm_error e;
    if (tm_model_resolve(explicit_model[0] ? explicit_model : NULL, t->model_path, sizeof t->model_path,
                         t->tokenizer_path, sizeof t->tokenizer_path, &e))
        return tm_eval_yaml_fail(p, top.model ? top.model : root, "model", "%s", e.message);
    if (top.tokenizer) {
        if (tm_eval_yaml_resolve(p, top.tokenizer, "tokenizer", t->tokenizer_path) ||
            tm_eval_yaml_must_exist(p, top.tokenizer, "tokenizer", t->tokenizer_path))
            return TM_ERR_FORMAT;
    }
    (void)text;
    return TM_OK;
}

tm_status tm_eval_task_parse(tm_eval_task *task, const char *path, const char *text, size_t size, bool check_files,
                             tm_error *err) {
    memset(task, 0, sizeof *task);
    defaults(task);
    parser p = {.path = path, .err = err};
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(p.dir, sizeof p.dir, "%.*s", (int)(slash - path), path);
    else snprintf(p.dir, sizeof p.dir, ".");
    if (size > TASK_FILE_MAX)
        return tm_error_set(err, TM_ERR_FORMAT, "%s: task file larger than %d bytes", path, TASK_FILE_MAX);
    if (!tm_utf8_valid(text, size)) return tm_error_set(err, TM_ERR_FORMAT, "%s: not UTF-8 text", path);
    snprintf(task->path, sizeof task->path, "%s", path);
    task->snapshot = malloc(size + 1);
    if (!task->snapshot) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    memcpy(task->snapshot, text, size);
    task->snapshot[size] = '\0';
    task->snapshot_size = size;
    tm_sha256_hex(text, size, task->sha256);

    yaml_parser_t yparser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&yparser)) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    yaml_parser_set_input_string(&yparser, (const unsigned char *)text, size);
    if (!yaml_parser_load(&yparser, &doc)) {
        tm_status s = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: YAML syntax error: %s (column %lu)", path,
                                   (unsigned long)yparser.problem_mark.line + 1,
                                   yparser.problem ? yparser.problem : "malformed",
                                   (unsigned long)yparser.problem_mark.column + 1);
        yaml_parser_delete(&yparser);
        tm_eval_task_free(task);
        return s;
    }
    /* One document only: a second one would silently be ignored otherwise. */
    yaml_document_t extra;
    bool more = false;
    if (yaml_document_get_root_node(&doc)) {
        if (!yaml_parser_load(&yparser, &extra)) more = true;
        else {
            more = yaml_document_get_root_node(&extra) != NULL;
            yaml_document_delete(&extra);
        }
    }
    p.doc = &doc;
    tm_status status = more ? tm_error_set(err, TM_ERR_FORMAT, "%s: more than one YAML document in the file", path)
                            : parse_root(&p, task, yaml_document_get_root_node(&doc), check_files);
    yaml_document_delete(&doc);
    yaml_parser_delete(&yparser);
    if (status) tm_eval_task_free(task);
    return status;
}

tm_status tm_eval_task_load(tm_eval_task *task, const char *path, bool check_files, tm_error *err) {
    memset(task, 0, sizeof *task);
    char *text = NULL;
    size_t size = 0;
    if (tm_read_file(path, &text, &size, err)) return err ? err->code : TM_ERR_IO;
    tm_status s = tm_eval_task_parse(task, path, text, size, check_files, err);
    free(text);
    return s;
}

void tm_eval_task_free(tm_eval_task *task) {
    if (!task) return;
    for (size_t i = 0; i < task->n_prompts; i++) free(task->prompts[i]);
    free(task->prompts);
    free(task->snapshot);
    task->prompts = NULL;
    task->snapshot = NULL;
    task->n_prompts = 0;
}

const char *tm_eval_kind_name(tm_eval_kind kind) {
    static const char *const names[TM_EVAL_KIND_COUNT] = {"watermark", "truthfulqa_mc", "halueval_qa",
                                                          "halueval_general", "truthfulqa_gen",
                                                          "selfcheck", "zero_shot"};
    return (unsigned)kind < TM_EVAL_KIND_COUNT ? names[kind] : "unknown";
}
