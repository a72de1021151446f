/* Builds the report document: one JSON object (docs/report-schema.json)
 * holding everything every format shows, read from run folders (results.json
 * and samples.jsonl as the evals exports write them, the store's meta through
 * tracemark/evals.h), benchmark results, provenance verdicts and a policy.
 * ROC curves and p-value histograms are computed here from the per-sample
 * scores, so the renderers only draw. It must never copy a key, a text of a
 * sample or a path's contents into the report beyond hashes and aggregates,
 * and never invent a number: what is missing stays null ("not measured"). */
#include "reports_internal.h"

#include "tracemark/evals.h"
#include "tracemark/model.h"
#include "tracemark/provenance.h"
#include "tracemark/watermark.h"

#include <math.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { ROC_MAX_POINTS = 200, MAX_SCORES = 1 << 22 };

/* p-value bins for the histograms, by log10 p (upper edges, descending). */
static const double bin_upper[] = {0, -1, -2, -3, -4, -6, -10};
static const char *const bin_labels[] = {"0.1–1", "0.01–0.1", "1e-3–0.01", "1e-4–1e-3", "1e-6–1e-4",
                                         "1e-10–1e-6", "< 1e-10"};
enum { N_BINS = sizeof bin_upper / sizeof *bin_upper };

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static json_t *load_json(const char *path, tm_error *err, tm_status *status) {
    char *text = NULL;
    size_t size = 0;
    *status = tm_read_file(path, &text, &size, err);
    if (*status) return NULL;
    json_error_t je;
    json_t *v = json_loadb(text, size, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!v) *status = tm_error_set(err, TM_ERR_FORMAT, "%s:%d: not JSON: %s", path, je.line, je.text);
    return v;
}

static json_t *file_hash(const char *path) {
    char hex[TM_SHA256_HEX_SIZE];
    tm_error e = {0};
    if (tm_sha256_file_hex(path, hex, &e)) return json_null();
    return json_string(hex);
}

/* ---- per-sample scores -> ROC curves and p-value histograms ---- */

typedef struct {
    char scheme[TM_EVAL_NAME_MAX], attack[TM_EVAL_NAME_MAX];
    double *pos, *neg; /* scores -ln p */
    size_t n_pos, n_neg, cap_pos, cap_neg;
} score_set;

typedef struct {
    score_set *sets;
    size_t n, cap;
    size_t total;
} score_table;

static score_set *find_set(score_table *t, const char *scheme, const char *attack) {
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->sets[i].scheme, scheme) && !strcmp(t->sets[i].attack, attack)) return &t->sets[i];
    if (strlen(scheme) >= TM_EVAL_NAME_MAX || strlen(attack) >= TM_EVAL_NAME_MAX) return NULL;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        score_set *p = realloc(t->sets, cap * sizeof *p);
        if (!p) return NULL;
        t->sets = p;
        t->cap = cap;
    }
    score_set *s = &t->sets[t->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->scheme, sizeof s->scheme, "%s", scheme);
    snprintf(s->attack, sizeof s->attack, "%s", attack);
    return s;
}

static bool push(double **a, size_t *n, size_t *cap, double v) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        double *p = realloc(*a, c * sizeof *p);
        if (!p) return false;
        *a = p;
        *cap = c;
    }
    (*a)[(*n)++] = v;
    return true;
}

static bool add_score(score_table *t, const char *scheme, const char *attack, bool positive, const json_t *log_p) {
    if (!json_is_number(log_p)) return true; /* a score the run did not produce: left out, not invented */
    if (++t->total > MAX_SCORES) return false;
    score_set *s = find_set(t, scheme, attack);
    if (!s) return false;
    double v = -json_number_value(log_p);
    return positive ? push(&s->pos, &s->n_pos, &s->cap_pos, v) : push(&s->neg, &s->n_neg, &s->cap_neg, v);
}

static void free_table(score_table *t) {
    for (size_t i = 0; i < t->n; i++) {
        free(t->sets[i].pos);
        free(t->sets[i].neg);
    }
    free(t->sets);
}

static tm_status read_samples(const char *path, score_table *t, tm_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return tm_error_set(err, TM_ERR_IO, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long number = 0;
    tm_status status = TM_OK;
    while ((len = getline(&line, &cap, f)) > 0) {
        number++;
        json_error_t je;
        json_t *row = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(row)) {
            json_decref(row);
            status = tm_error_set(err, TM_ERR_FORMAT, "%s:%lu: not a JSON object", path, number);
            break;
        }
        const char *group = jstr(row, "group");
        json_t *log_p = json_object_get(json_object_get(row, "scores"), "log_p");
        bool ok = true;
        if (!strncmp(group, "watermarked/", 12) && json_is_object(log_p)) {
            const char *attack;
            json_t *v;
            json_object_foreach(log_p, attack, v) ok = ok && add_score(t, group + 12, attack, true, v);
        } else if (!strncmp(group, "null/", 5) && json_is_object(log_p)) {
            const char *scheme, *attack;
            json_t *per, *v;
            json_object_foreach(log_p, scheme, per) {
                if (json_is_object(per)) json_object_foreach(per, attack, v) ok = ok && add_score(t, scheme, attack, false, v);
            }
        }
        json_decref(row);
        if (!ok) {
            status = tm_error_set(err, TM_ERR_LIMIT, "%s:%lu: too many scores (or out of memory)", path, number);
            break;
        }
    }
    if (!status && ferror(f)) status = tm_error_set(err, TM_ERR_IO, "%s: read error", path);
    free(line);
    fclose(f);
    return status;
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* ROC points (FPR, TPR) at every distinct threshold, thinned to at most
 * ROC_MAX_POINTS (the corners kept). */
static json_t *roc_points(score_set *s) {
    qsort(s->pos, s->n_pos, sizeof *s->pos, cmp_desc);
    qsort(s->neg, s->n_neg, sizeof *s->neg, cmp_desc);
    size_t i = 0, j = 0, total = s->n_pos + s->n_neg;
    json_t *points = json_array();
    json_array_append_new(points, json_pack("[f,f]", 0.0, 0.0));
    size_t stride = total / ROC_MAX_POINTS + 1, step = 0;
    while (i < s->n_pos || j < s->n_neg) {
        double t = -INFINITY;
        if (i < s->n_pos) t = s->pos[i];
        if (j < s->n_neg && s->neg[j] > t) t = s->neg[j];
        while (i < s->n_pos && s->pos[i] >= t) i++;
        while (j < s->n_neg && s->neg[j] >= t) j++;
        if (++step % stride && (i < s->n_pos || j < s->n_neg)) continue;
        json_array_append_new(points, json_pack("[f,f]", (double)j / (double)s->n_neg, (double)i / (double)s->n_pos));
    }
    return points;
}

static json_t *histogram(const double *scores, size_t n) {
    json_t *a = json_array();
    size_t counts[N_BINS] = {0};
    for (size_t k = 0; k < n; k++) {
        double l10 = -scores[k] / log(10.0);
        size_t bin = N_BINS - 1;
        for (size_t b = 0; b + 1 < N_BINS; b++)
            if (l10 > bin_upper[b + 1]) { bin = b; break; }
        counts[bin]++;
    }
    for (size_t b = 0; b < N_BINS; b++) json_array_append_new(a, json_integer((json_int_t)counts[b]));
    return a;
}

static json_t *curves(score_table *t) {
    json_t *roc = json_array(), *hist = json_array(), *labels = json_array();
    for (size_t b = 0; b < N_BINS; b++) json_array_append_new(labels, json_string(bin_labels[b]));
    for (size_t k = 0; k < t->n; k++) {
        score_set *s = &t->sets[k];
        if (!s->n_pos || !s->n_neg) continue;
        if (!strcmp(s->attack, "none"))
            json_array_append_new(hist, json_pack("{s:s, s:o, s:o}", "scheme", s->scheme, "watermarked",
                                                  histogram(s->pos, s->n_pos), "null", histogram(s->neg, s->n_neg)));
        json_array_append_new(roc, json_pack("{s:s, s:s, s:I, s:I, s:o}", "scheme", s->scheme, "attack", s->attack,
                                             "n_positive", (json_int_t)s->n_pos, "n_negative", (json_int_t)s->n_neg,
                                             "points", roc_points(s)));
    }
    return json_pack("{s:o, s:{s:o, s:o}}", "roc", roc, "pvalue_histograms", "bins", labels, "schemes", hist);
}

/* ---- licences from a README table beside the data or model ---- */

static const char *const licences[] = {"Apache-2.0", "MIT", "CC-BY-SA-4.0", "CC-BY-4.0", "BSD-3-Clause",
                                       "GPL-3.0", "Llama 2 Community License"};

/* The licence named on the README.md row that mentions needle, or NULL. */
static json_t *licence_from_readme(const char *folder, const char *needle) {
    char path[TM_EVAL_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/README.md", folder);
    char *text = NULL;
    size_t size = 0;
    tm_error e = {0};
    if (tm_read_file(path, &text, &size, &e)) return json_null();
    json_t *found = json_null();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] != '|' || !strstr(line, needle)) continue;
        for (size_t i = 0; i < sizeof licences / sizeof *licences; i++)
            if (strstr(line, licences[i])) {
                json_decref(found);
                found = json_pack("{s:s, s:s}", "licence", licences[i], "source", path);
                break;
            }
        if (!json_is_null(found)) break;
    }
    free(text);
    return found;
}

/* ---- one run folder ---- */

static void add_unique(json_t *array, json_t *value) {
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v) if (json_equal(v, value)) {
        json_decref(value);
        return;
    }
    json_array_append_new(array, value);
}

/* One row per model file (by SHA-256): a described model replaces a row that
 * only knew the hash. Takes m. */
static void add_model(json_t *models, json_t *m) {
    size_t i;
    json_t *v;
    json_array_foreach(models, i, v) {
        if (strcmp(jstr(v, "sha256"), jstr(m, "sha256"))) continue;
        if (!json_object_get(v, "parameters") && json_object_get(m, "parameters")) json_array_set(models, i, m);
        json_decref(m);
        return;
    }
    json_array_append_new(models, m);
}

static json_t *model_details(const char *model_path, const char *run_sha256) {
    char hex[TM_SHA256_HEX_SIZE], resolved[TM_EVAL_PATH_MAX], tokenizer[TM_EVAL_PATH_MAX];
    tm_error e = {0};
    /* Where the run's path is not the model here (another folder, another
     * machine), the default resolution ($TRACEMARK_MODEL, ./models/,
     * ../shared/models/) may hold the same file: its SHA-256 decides. */
    if ((!model_path[0] || tm_sha256_file_hex(model_path, hex, &e) || strcmp(hex, run_sha256)) &&
        tm_model_resolve(NULL, resolved, sizeof resolved, tokenizer, sizeof tokenizer, &e) == TM_OK &&
        tm_sha256_file_hex(resolved, hex, &e) == TM_OK && !strcmp(hex, run_sha256))
        model_path = resolved;
    json_t *m = json_pack("{s:s, s:s}", "sha256", run_sha256, "path", model_path);
    if (!model_path[0] || tm_sha256_file_hex(model_path, hex, &e)) {
        json_object_set_new(m, "note", json_string("the model file is not readable here: only the run's SHA-256 is known"));
        return m;
    }
    if (strcmp(hex, run_sha256)) {
        json_object_set_new(m, "note", json_string("the file at this path now differs from the model the run used"));
        return m;
    }
    tm_model *model = NULL;
    if (tm_model_load(&model, model_path, &e) == TM_OK) {
        const tm_model_config *c = tm_model_get_config(model);
        const tm_layer_weights *first_layer = tm_model_get_layer(model, 0);
        json_object_set_new(m, "format", json_string(tm_model_format_name(tm_model_get_format(model))));
        json_object_set_new(m, "architecture", json_string(c->architecture));
        json_object_set_new(m, "parameters", json_integer((json_int_t)tm_model_parameter_count(model)));
        json_object_set_new(m, "context_length", json_integer(c->context_length));
        json_object_set_new(m, "n_layers", json_integer(c->n_layers));
        json_object_set_new(m, "n_vocab", json_integer(c->n_vocab));
        json_object_set_new(m, "quantisation",
                            json_string(first_layer ? tm_ggml_type_name(first_layer->wq.type) : "unknown"));
        tm_model_free(model);
    } else json_object_set_new(m, "note", json_string(e.message));
    char folder[TM_EVAL_PATH_MAX];
    snprintf(folder, sizeof folder, "%s", model_path);
    char *slash = strrchr(folder, '/');
    if (slash) *slash = 0;
    else snprintf(folder, sizeof folder, ".");
    json_t *lic = licence_from_readme(folder, run_sha256);
    json_object_set_new(m, "licence", json_is_null(lic) ? json_string("unknown") : json_incref(json_object_get(lic, "licence")));
    json_decref(lic);
    return m;
}

/* Key ids of the run's watermark keys (files, or the evaluation keys the
 * harness derives from the seed as docs/evals.md specifies); the secrets are
 * wiped at once and never leave this function. */
static json_t *key_ids(const tm_eval_task *task) {
    json_t *ids = json_array();
    for (size_t k = 0; k < task->n_key_files; k++) {
        tm_wm_key *key = NULL;
        tm_error e = {0};
        if (tm_wm_key_read(&key, task->key_files[k], &e) == TM_OK)
            json_array_append_new(ids, json_pack("{s:s, s:s}", "key_id", tm_wm_key_id(key), "source", "key file"));
        else
            json_array_append_new(ids, json_pack("{s:n, s:s}", "key_id", "source", "key file not readable here"));
        tm_wm_key_free(key);
    }
    if (task->n_key_files == 0)
        for (size_t k = 0; k < task->n_keys && k < TM_EVAL_MAX_KEYS; k++) {
            char label[96];
            int n = snprintf(label, sizeof label, "tracemark-eval-key-v1:%llu:%zu", (unsigned long long)task->seed, k);
            uint8_t secret[32];
            SHA256((const unsigned char *)label, (size_t)n, secret);
            tm_wm_key *key = NULL;
            tm_error e = {0};
            if (tm_wm_key_from_secret(&key, secret, &e) == TM_OK)
                json_array_append_new(ids, json_pack("{s:s, s:s}", "key_id", tm_wm_key_id(key), "source",
                                                     "evaluation key derived from the task seed (never for production)"));
            OPENSSL_cleanse(secret, sizeof secret);
            tm_wm_key_free(key);
        }
    return ids;
}

static void evaluation_data(json_t *data, const tm_eval_task *task, const char *run_name, const json_t *results) {
    const json_t *null_set = json_object_get(json_object_get(results, "results"), "null_set");
    json_array_append_new(data, json_pack("{s:s, s:s, s:o, s:s, s:s, s:s}", "run", run_name, "name", "prompts", "n",
                                          json_integer((json_int_t)task->n_prompts), "sha256", task->sha256,
                                          "licence", "project's own (in the task file)", "note",
                                          "hash is of the task file, which holds or names the prompts"));
    if (json_is_object(null_set))
        json_array_append_new(data, json_pack("{s:s, s:s, s:O, s:n, s:s, s:s}", "run", run_name, "name",
                                              "null texts: unwatermarked generations", "n",
                                              json_object_get(null_set, "generated"), "sha256", "licence",
                                              "generated by the model under test", "note",
                                              "per-text hashes in samples.jsonl (doc_hash)"));
    struct {
        bool on;
        const char *name, *file;
    } human[] = {{task->human_truthfulqa, "TruthfulQA correct answers", "truthfulqa/TruthfulQA.csv"},
                 {task->human_halueval_knowledge, "HaluEval QA knowledge", "halueval/qa_one-turn_data.json"},
                 {task->human_halueval_chatgpt, "HaluEval general ChatGPT responses", "halueval/general_data.json"}};
    if (task->null_human <= 0) return;
    for (size_t i = 0; i < sizeof human / sizeof *human; i++) {
        if (!human[i].on) continue;
        char path[TM_EVAL_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", task->data_dir, human[i].file);
        json_t *lic = licence_from_readme(task->data_dir, human[i].file);
        json_array_append_new(data, json_pack("{s:s, s:s, s:s, s:o, s:o, s:s}", "run", run_name, "name", human[i].name,
                                              "file", human[i].file, "sha256", file_hash(path), "licence",
                                              json_is_null(lic) ? json_string("unknown") : json_incref(json_object_get(lic, "licence")),
                                              "note", "null texts: human-written"));
        json_decref(lic);
    }
}

typedef struct {
    json_t *runs, *inputs, *models, *schemes, *keys, *data, *benchmarks, *verifications, *generations, *detections;
} parts;

static tm_status add_run(parts *p, const char *dir, tm_error *err) {
    char path[TM_EVAL_PATH_MAX + 32];
    tm_status status;
    snprintf(path, sizeof path, "%s/results.json", dir);
    json_t *results = load_json(path, err, &status);
    if (!results) return status;
    if (!json_is_object(results) || !json_is_object(json_object_get(results, "results"))) {
        json_decref(results);
        return tm_error_set(err, TM_ERR_FORMAT, "%s: no \"results\" object (not a tracemark run export)", path);
    }
    json_t *input = json_pack("{s:s, s:s, s:o}", "path", dir, "type", "run", "results_sha256", file_hash(path));
    json_t *run = json_pack("{s:s, s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "task", jstr(results, "task"),
                            "kind", jstr(results, "kind"), "task_sha256", json_object_get(results, "task_sha256"),
                            "model_sha256", json_object_get(results, "model_sha256"), "seed",
                            json_object_get(results, "seed"), "n_samples", json_object_get(results, "n_samples"),
                            "n_present", json_object_get(results, "n_present"), "complete",
                            json_object_get(results, "complete"), "tracemark_version",
                            json_object_get(results, "tracemark_version"), "tracemark_commit",
                            json_object_get(results, "tracemark_commit"), "results", json_object_get(results, "results"));
    if (!run || !input) {
        json_decref(results);
        json_decref(run);
        json_decref(input);
        return tm_error_set(err, TM_ERR_FORMAT, "%s: a required field is missing or of the wrong type", path);
    }
    const char *name = jstr(results, "task");
    snprintf(path, sizeof path, "%s/samples.jsonl", dir);
    json_object_set_new(input, "samples_sha256", file_hash(path));
    if (!strcmp(jstr(results, "kind"), "watermark") && tm_file_exists(path)) {
        score_table t = {0};
        status = read_samples(path, &t, err);
        if (status == TM_OK) json_object_set_new(run, "curves", curves(&t));
        free_table(&t);
        if (status) goto failed;
    }
    /* The store's meta, through the evals API: machine, task snapshot (for
     * model path, keys and data), version. */
    snprintf(path, sizeof path, "%s/run.sqlite", dir);
    if (tm_file_exists(path)) {
        json_object_set_new(input, "store_sha256", file_hash(path));
        tm_eval_store *store = NULL;
        tm_eval_store_meta meta = {0};
        tm_error e = {0};
        if (tm_eval_store_open(&store, dir, &meta, &e) == TM_OK) {
            json_object_set_new(run, "machine", json_string(meta.machine));
            tm_eval_store_close(store);
            tm_eval_task task;
            memset(&task, 0, sizeof task);
            /* With files checked the model path is resolved as the run
             * resolved it; where data or model are not here, without. */
            tm_status parsed = TM_ERR_ARGUMENT;
            if (meta.task_snapshot) {
                parsed = tm_eval_task_parse(&task, meta.task_path, meta.task_snapshot, strlen(meta.task_snapshot), true, &e);
                if (parsed != TM_OK) {
                    tm_eval_task_free(&task);
                    memset(&task, 0, sizeof task);
                    parsed = tm_eval_task_parse(&task, meta.task_path, meta.task_snapshot, strlen(meta.task_snapshot),
                                                false, &e);
                }
            }
            if (parsed == TM_OK) {
                add_model(p->models, model_details(task.model_path, meta.model_sha256));
                json_t *ids = key_ids(&task);
                size_t i;
                json_t *id;
                json_array_foreach(ids, i, id) {
                    json_object_set_new(id, "run", json_string(name));
                    add_unique(p->keys, json_incref(id));
                }
                json_decref(ids);
                evaluation_data(p->data, &task, name, results);
                json_object_set_new(run, "decision_fpr", json_real(task.decision_fpr));
                json_t *fprs = json_array();
                for (size_t k = 0; k < task.n_fprs; k++) json_array_append_new(fprs, json_real(task.fprs[k]));
                json_object_set_new(run, "fprs", fprs);
                tm_eval_task_free(&task);
            } else {
                /* A task this build cannot read (a newer kind): the model is known by its hash alone. */
                json_object_set_new(run, "store_note", json_string(e.message));
                if (meta.model_sha256[0])
                    add_model(p->models, json_pack("{s:s, s:s, s:s}", "sha256", meta.model_sha256, "path", "", "note",
                                                   "known by its SHA-256 only: this tracemark cannot read the run's task file"));
            }
            tm_eval_store_meta_free(&meta);
        } else json_object_set_new(run, "store_note", json_string(e.message));
    } else json_object_set_new(run, "store_note", json_string("no run.sqlite: exports only"));
    json_t *schemes = json_object_get(json_object_get(results, "results"), "schemes");
    if (json_is_object(schemes)) {
        const char *s;
        json_t *v;
        json_object_foreach(schemes, s, v)
            add_unique(p->schemes, json_pack("{s:s, s:s, s:s}", "run", name, "scheme", s, "parameters",
                                             jstr(v, "parameters")));
    }
    json_array_append_new(p->runs, run);
    json_array_append_new(p->inputs, input);
    json_decref(results);
    return TM_OK;
failed:
    json_decref(results);
    json_decref(run);
    json_decref(input);
    return status;
}

static json_t *engine(const json_t *g, const char *name, const char *field) {
    double v = jfield(json_object_get(json_object_get(g, "engines"), name), field);
    return isfinite(v) ? json_real(v) : json_null();
}

static tm_status add_file(parts *p, const char *path, tm_error *err) {
    tm_status status;
    json_t *doc = load_json(path, err, &status);
    if (!doc) return status;
    if (json_is_object(doc) && json_is_array(json_object_get(doc, "generate"))) {
        json_t *speed = json_array();
        size_t i;
        json_t *g;
        json_array_foreach(json_object_get(doc, "generate"), i, g) {
            char config[160];
            snprintf(config, sizeof config, "%s %s, %lld thread%s", jstr(g, "model"), jstr(g, "type"),
                     (long long)json_integer_value(json_object_get(g, "threads")),
                     json_integer_value(json_object_get(g, "threads")) == 1 ? "" : "s");
            json_t *ratio = json_object_get(g, "ratio");
            json_array_append_new(speed, json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "config", config,
                                                   "tracemark_decode_tok_s", engine(g, "tracemark", "decode_tok_s"),
                                                   "llama_cpp_decode_tok_s", engine(g, "llama.cpp", "decode_tok_s"),
                                                   "tracemark_prompt_tok_s", engine(g, "tracemark", "prompt_tok_s"),
                                                   "llama_cpp_prompt_tok_s", engine(g, "llama.cpp", "prompt_tok_s"),
                                                   "decode_ratio", isfinite(jfield(ratio, "decode")) ? json_real(jfield(ratio, "decode")) : json_null(),
                                                   "prompt_ratio", isfinite(jfield(ratio, "prompt")) ? json_real(jfield(ratio, "prompt")) : json_null()));
        }
        json_t *goals = json_array();
        json_array_foreach(json_object_get(doc, "goals"), i, g)
            json_array_append_new(goals, json_pack("{s:s, s:o, s:O?, s:O?}", "goal", jstr(g, "goal"), "measured",
                                                   isfinite(jfield(g, "measured")) ? json_real(jfield(g, "measured")) : json_null(),
                                                   "met", json_object_get(g, "met"), "noisy", json_object_get(g, "noisy")));
        json_t *machine = json_object_get(doc, "machine");
        json_array_append_new(p->benchmarks,
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O?, s:o, s:o}", "path", path, "name",
                                        jstr(doc, "name"), "date", jstr(doc, "date"), "commit", jstr(doc, "commit"),
                                        "peer", jstr(doc, "peer"), "cpu", jstr(machine, "cpu"), "cores",
                                        json_object_get(machine, "cores"), "speed", speed, "goals", goals));
        json_array_append_new(p->inputs, json_pack("{s:s, s:s, s:o}", "path", path, "type", "benchmark", "sha256", file_hash(path)));
    } else if (json_is_object(doc) && json_is_boolean(json_object_get(doc, "verified"))) {
        json_t *wm = json_object_get(doc, "watermark");
        json_array_append_new(p->verifications,
                              json_pack("{s:s, s:O, s:O?, s:O?, s:O?, s:O?}", "path", path, "verified",
                                        json_object_get(doc, "verified"), "failed_check",
                                        json_object_get(doc, "failed_check"), "signer",
                                        json_object_get(json_object_get(doc, "signer"), "fingerprint"),
                                        "content_sha256", json_object_get(json_object_get(doc, "content"), "sha256"),
                                        "watermark_p_value", json_object_get(wm, "p_value")));
        json_array_append_new(p->inputs, json_pack("{s:s, s:s, s:o}", "path", path, "type", "verification", "sha256", file_hash(path)));
    } else if (json_is_object(doc) && json_is_array(json_object_get(doc, "ids")) && json_is_string(json_object_get(doc, "model"))) {
        /* tracemark generate --json: what was generated, never the text itself (its hash). */
        const char *model = jstr(doc, "model");
        char hex[TM_SHA256_HEX_SIZE] = "";
        tm_error e = {0};
        bool readable = tm_sha256_file_hex(model, hex, &e) == TM_OK;
        if (readable) add_model(p->models, model_details(model, hex));
        const char *text = jstr(doc, "text");
        char text_hash[TM_SHA256_HEX_SIZE];
        tm_sha256_hex(text, strlen(text), text_hash);
        json_t *wm = json_object_get(doc, "watermark"), *sampling = json_object_get(doc, "sampling");
        char settings[256] = "";
        const char *k;
        json_t *v;
        json_object_foreach(sampling, k, v) if (json_is_number(v)) {
            size_t used = strlen(settings);
            snprintf(settings + used, sizeof settings - used, "%s%s %g", used ? ", " : "", k, json_number_value(v));
        }
        json_array_append_new(p->generations,
                              json_pack("{s:s, s:s, s:o, s:O?, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "path", path, "model", model,
                                        "model_sha256", readable ? json_string(hex) : json_null(), "seed",
                                        json_object_get(doc, "seed"), "tokens", (json_int_t)json_array_size(json_object_get(doc, "ids")),
                                        "stop_reason", jstr(doc, "stop_reason"), "text_sha256", text_hash, "scheme",
                                        jstr(wm, "scheme"), "parameters", jstr(wm, "parameters"), "key_id", jstr(wm, "key_id"),
                                        "sampling", settings));
        if (*jstr(wm, "key_id"))
            add_unique(p->keys, json_pack("{s:s, s:s, s:s}", "key_id", jstr(wm, "key_id"), "source", "generation record",
                                          "run", path));
        if (*jstr(wm, "scheme"))
            add_unique(p->schemes, json_pack("{s:s, s:s, s:s}", "run", path, "scheme", jstr(wm, "scheme"), "parameters",
                                             jstr(wm, "parameters")));
        json_array_append_new(p->inputs, json_pack("{s:s, s:s, s:o}", "path", path, "type", "generation", "sha256", file_hash(path)));
    } else if (json_is_object(doc) && json_is_boolean(json_object_get(doc, "detected")) && json_object_get(doc, "p_value")) {
        /* tracemark detect --json */
        json_t *tokens = json_object_get(doc, "tokens");
        json_array_append_new(p->detections,
                              json_pack("{s:s, s:O, s:s, s:s, s:s, s:O?, s:O?, s:O?, s:O?}", "path", path, "detected",
                                        json_object_get(doc, "detected"), "scheme", jstr(doc, "scheme"), "parameters",
                                        jstr(doc, "parameters"), "key_id", jstr(doc, "key_id"), "p_value",
                                        json_object_get(doc, "p_value"), "z", json_object_get(doc, "z"), "scored_tokens",
                                        json_object_get(tokens, "scored"), "fpr", json_object_get(doc, "fpr")));
        if (*jstr(doc, "key_id"))
            add_unique(p->keys, json_pack("{s:s, s:s, s:s}", "key_id", jstr(doc, "key_id"), "source", "detection verdict",
                                          "run", path));
        json_array_append_new(p->inputs, json_pack("{s:s, s:s, s:o}", "path", path, "type", "detection", "sha256", file_hash(path)));
    } else {
        json_decref(doc);
        return tm_error_set(err, TM_ERR_FORMAT,
                            "%s: neither a run folder, a benchmark result (\"generate\"), a generate --json record "
                            "(\"ids\"), a detect --json verdict (\"detected\") nor a verify --json verdict (\"verified\")",
                            path);
    }
    json_decref(doc);
    return TM_OK;
}

static json_t *caveats(const json_t *report) {
    json_t *c = json_array();
    size_t i;
    json_t *m, *r;
    json_array_foreach(json_object_get(report, "model_details"), i, m) {
        json_int_t n = json_integer_value(json_object_get(m, "parameters"));
        if (n > 0 && n < 10000000) {
            char t[400];
            snprintf(t, sizeof t,
                     "The model %.12s… has only %lld parameters, far fewer than a production model: any "
                     "hallucination or truthfulness score measured on it is near chance; the watermark figures "
                     "describe this model's text, not a production model's.",
                     jstr(m, "sha256"), (long long)n);
            json_array_append_new(c, json_string(t));
        }
    }
    json_array_foreach(json_object_get(report, "runs"), i, r) {
        json_int_t n = json_integer_value(json_object_get(r, "n_samples"));
        char t[400];
        if (n > 0 && n < 200) {
            if (!strcmp(jstr(r, "kind"), "watermark"))
                snprintf(t, sizeof t,
                         "Run %s has only %lld samples: its intervals are wide, an FPR of 0 on so few null texts "
                         "cannot show an FPR of 1%% or below, and bootstrap intervals of 0-width mean every resample "
                         "agreed, not that the rate is exact.",
                         jstr(r, "task"), (long long)n);
            else
                snprintf(t, sizeof t,
                         "Run %s (%s) has only %lld samples: its intervals are wide and a difference from chance "
                         "inside them is not evidence.",
                         jstr(r, "task"), jstr(r, "kind"), (long long)n);
            json_array_append_new(c, json_string(t));
        }
        if (json_is_false(json_object_get(r, "complete"))) {
            snprintf(t, sizeof t, "Run %s is incomplete (%lld of %lld samples).", jstr(r, "task"),
                     (long long)json_integer_value(json_object_get(r, "n_present")), (long long)n);
            json_array_append_new(c, json_string(t));
        }
    }
    json_array_append_new(c, json_string(
        "Empirical FPRs are measured on the null texts of each run (unwatermarked generations and human text); "
        "the detector's p-values are analytic, and the FPR of a deployment depends on its own text."));
    json_array_append_new(c, json_string(
        "Attacks are the harness's automatic edits at fixed strengths; a determined adversary (a stronger "
        "paraphraser, translation) may remove a watermark that survives them."));
    json_array_append_new(c, json_string(
        "Speed figures come from the benchmark run named, on its machine and load; they are ratios against "
        "llama.cpp in the same run, not absolute guarantees."));
    return c;
}

static json_t *metric_definitions(void) {
    return json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}]",
                     "name", "tpr", "definition",
                     "share of watermarked texts with detector p <= alpha (the target FPR)", "name", "empirical_fpr",
                     "definition", "share of null texts (unwatermarked generations and human text) with p <= alpha",
                     "name", "auc", "definition",
                     "ROC-AUC, Mann-Whitney statistic of scores -ln p (positives watermarked, negatives null)",
                     "name", "tpr_by_length", "definition",
                     "TPR at the run's decision FPR on the first N tokens of the unattacked text", "name",
                     "tokens_to_detect", "definition",
                     "median prefix length at which p first falls to the decision FPR (null when fewer than half are detected)",
                     "name", "quality", "definition",
                     "perplexity under the model, distinct-1..3, seq-rep-4; minus_baseline and ratio_to_baseline "
                     "compare with unwatermarked generations",
                     "name", "intervals", "definition",
                     "[low, high] are 95% percentile bootstrap intervals (positives and negatives resampled separately)");
}

tm_status tm_report_build(const tm_report_options *o, char **out, size_t *out_size, tm_error *err) {
    if (!o || !out || (o->n_inputs && !o->inputs))
        return tm_error_set(err, TM_ERR_ARGUMENT, "tm_report_build: missing options or output");
    if (o->n_inputs == 0 || o->n_inputs > TM_REPORT_MAX_INPUTS)
        return tm_error_set(err, TM_ERR_ARGUMENT, "a report needs 1 to %d inputs (run folders, benchmark JSON, verify JSON)",
                            TM_REPORT_MAX_INPUTS);
    tm_status status = TM_OK;
    parts p = {json_array(), json_array(), json_array(), json_array(), json_array(),
               json_array(), json_array(), json_array(), json_array(), json_array()};
    tm_report_policy *policy = NULL;
    json_t *report = NULL;
    for (size_t i = 0; i < o->n_inputs && !status; i++)
        status = is_dir(o->inputs[i]) ? add_run(&p, o->inputs[i], err) : add_file(&p, o->inputs[i], err);
    if (status) goto done;
    if (o->policy_path && (status = tm_report_policy_load(&policy, o->policy_path, err))) goto done;

    char created[32];
    time_t t = (time_t)o->created;
    struct tm utc;
    gmtime_r(&t, &utc);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &utc);
    char title[256];
    if (o->title) snprintf(title, sizeof title, "%s", o->title);
    else {
        const char *task = json_array_size(p.runs) ? jstr(json_array_get(p.runs, 0), "task") : "benchmarks";
        snprintf(title, sizeof title, "tracemark evaluation report: %s%s", task,
                 json_array_size(p.runs) > 1 ? " and other runs" : "");
    }
    json_t *signers = json_array();
    if (o->signer_fingerprint)
        json_array_append_new(signers, json_pack("{s:s, s:s}", "fingerprint", o->signer_fingerprint, "role",
                                                 "signs this report (manifest beside each output file)"));
    size_t i;
    json_t *v;
    json_array_foreach(p.verifications, i, v) if (json_is_string(json_object_get(v, "signer")))
        add_unique(signers, json_pack("{s:O, s:s}", "fingerprint", json_object_get(v, "signer"), "role",
                                      "signed a verified output (input verdict)"));
    report = json_pack(
        "{s:s, s:i, s:s, s:s, s:{s:s, s:s, s:s}, s:o, s:o, s:{s:s, s:s, s:s}, s:{s:o, s:o, s:o, s:s}, s:{s:o}, "
        "s:o, s:o, s:o, s:o}",
        "schema", TM_REPORT_SCHEMA, "schema_version", TM_REPORT_SCHEMA_VERSION, "title", title, "created", created,
        "generator", "tool", "tracemark", "version", tm_eval_version(), "commit", tm_eval_commit(), "inputs", p.inputs,
        "model_details", p.models, "intended_use", "primary",
        "Marking text generated by the model so that it can later be detected as machine-generated "
        "(EU AI Act Art. 50(2) marking duty) and attributed through signed provenance manifests.",
        "users", "AI system providers and deployers; auditors and regulators reading the evidence.", "out_of_scope",
        "Proving that a text was written by a human (absence of a watermark is not evidence of human "
        "authorship); detecting text from other models; judging factual accuracy.",
        "watermark", "schemes", p.schemes, "key_ids", p.keys, "signers", signers, "keys_note",
        "Keys are never part of a report: only their ids (first 8 bytes of SHA-256 of the key, hex) and "
        "signer fingerprints (SHA-256 of the Ed25519 public key).",
        "metrics", "definitions", metric_definitions(), "evaluation_data", p.data, "runs", p.runs, "benchmarks",
        p.benchmarks, "verifications", p.verifications);
    if (report) {
        json_object_set_new(report, "generations", p.generations);
        json_object_set_new(report, "detections", p.detections);
    } else {
        json_decref(p.generations);
        json_decref(p.detections);
    }
    p = (parts){0};
    if (!report) {
        status = tm_error_set(err, TM_ERR_NOMEM, "out of memory building the report");
        goto done;
    }
    json_t *thresholds = json_array();
    json_array_foreach(json_object_get(report, "runs"), i, v)
        if (json_object_get(v, "decision_fpr"))
            json_array_append_new(thresholds, json_pack("{s:s, s:O, s:O}", "run", jstr(v, "task"), "fprs",
                                                        json_object_get(v, "fprs"), "decision_fpr",
                                                        json_object_get(v, "decision_fpr")));
    json_object_set_new(json_object_get(report, "metrics"), "thresholds", thresholds);
    json_object_set_new(report, "caveats", caveats(report));
    json_object_set_new(report, "compliance", policy ? policy_evaluate(policy, report) : json_null());
    char *text = json_dumps(report, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (!text) {
        status = tm_error_set(err, TM_ERR_NOMEM, "out of memory writing the report");
        goto done;
    }
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (!withnl) {
        free(text);
        status = tm_error_set(err, TM_ERR_NOMEM, "out of memory writing the report");
        goto done;
    }
    withnl[n] = '\n';
    withnl[n + 1] = 0;
    *out = withnl;
    if (out_size) *out_size = n + 1;
done:
    json_decref(p.runs);
    json_decref(p.inputs);
    json_decref(p.models);
    json_decref(p.schemes);
    json_decref(p.keys);
    json_decref(p.data);
    json_decref(p.benchmarks);
    json_decref(p.verifications);
    json_decref(p.generations);
    json_decref(p.detections);
    json_decref(report);
    tm_report_policy_free(policy);
    return status;
}
