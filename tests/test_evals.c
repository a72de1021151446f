/* Tests of task files, the run store and `tracemark eval`: about forty bad
 * task files each give an error naming the file, line and field (and the
 * CLI leaves no run folder behind); an unloadable model and missing data
 * are refused before anything is written; a run killed with SIGKILL
 * mid-way and resumed ends with the same store rows (timings excepted) and
 * byte-identical exports as an uninterrupted run; two shards merged equal
 * the whole run; a store of another task is refused by --resume and by
 * merge; the shipped task files parse. A small task on stories260K keeps
 * this quick (under the sanitizers too). */
#include "evals_testing.h"
#include "fixtures.h"
#include "tracemark/evals.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SCHEMES TRACEMARK_SOURCE_DIR "/configs/schemes/"

typedef struct {
    char *dir;
    char model[4096], tok[4096], data[4096];
} workspace;

static workspace open_workspace(void) {
    workspace w;
    w.dir = tm_test_scratch_dir();
    cr_assert_not_null(w.dir);
    char *m = tm_fixture("models/stories260K.bin"), *t = tm_fixture("models/tok512.bin"), *d = tm_fixture("data");
    snprintf(w.model, sizeof w.model, "%s", m);
    snprintf(w.tok, sizeof w.tok, "%s", t);
    snprintf(w.data, sizeof w.data, "%s", d);
    free(m), free(t), free(d);
    return w;
}

/* Replace @MODEL@, @TOK@, @DATA@, @SCHEMES@ in a template. */
static char *expand(const workspace *w, const char *template) {
    size_t cap = strlen(template) + 4 * 4096 * 4 + 1, len = 0;
    char *out = malloc(cap);
    for (const char *p = template; *p;) {
        const char *value = NULL;
        size_t skip = 0;
        if (!strncmp(p, "@MODEL@", 7)) value = w->model, skip = 7;
        else if (!strncmp(p, "@TOK@", 5)) value = w->tok, skip = 5;
        else if (!strncmp(p, "@DATA@", 6)) value = w->data, skip = 6;
        else if (!strncmp(p, "@SCHEMES@", 9)) value = SCHEMES, skip = 9;
        if (value) {
            size_t n = strlen(value);
            memcpy(out + len, value, n);
            len += n;
            p += skip;
        } else out[len++] = *p++;
    }
    out[len] = '\0';
    return out;
}

static char *write_task(const workspace *w, const char *name, const char *template) {
    char *text = expand(w, template);
    char *path = tm_test_path(w->dir, name);
    cr_assert_eq(tm_test_write_file(path, text, strlen(text)), 0);
    free(text);
    return path;
}

/* ======================================================================== */
/* Bad task files                                                           */
/* ======================================================================== */

#define BASE                                                                                                 \
    "kind: watermark\n"                          /* 1 */                                                     \
    "name: t\n"                                  /* 2 */                                                     \
    "seed: 1\n"                                  /* 3 */                                                     \
    "schemes: [@SCHEMES@kgw-lefthash.yaml]\n"    /* 4 */                                                     \
    "samples: 2\n"                               /* 5 */                                                     \
    "model: @MODEL@\n"                           /* 6 */                                                     \
    "tokenizer: @TOK@\n"                         /* 7 */                                                     \
    "null: {generated: 2, human: 2, data_dir: @DATA@}\n" /* 8 */

typedef struct {
    const char *text, *expect;
} bad_case;

static const bad_case bad_cases[] = {
    {"", "bad.yaml:1: kind: empty task file"},
    {"kind: [watermark\n", "bad.yaml:2: YAML syntax error"},
    {"- kind\n- name\n", "bad.yaml:1: : expected a mapping"},
    {BASE "colour: red\n", "bad.yaml:9: colour: unknown field"},
    {BASE "seed: 2\n", "bad.yaml:9: seed: duplicate field"},
    {"name: t\nseed: 1\n", "bad.yaml:1: kind: missing"},
    {"kind: hallucination\nname: t\n", "bad.yaml:1: kind: unknown task kind 'hallucination'"},
    {"kind: watermark\nseed: 1\n", "bad.yaml:1: name: missing"},
    {"kind: watermark\nname: a b\n", "bad.yaml:2: name: use letters"},
    {"kind: watermark\nname: t\nseed: -1\n", "bad.yaml:3: seed: expected an unsigned integer"},
    {"kind: watermark\nname: t\nseed: '1'\n", "bad.yaml:3: seed: expected an unsigned integer"},
    {"kind: watermark\nname: t\nseed: 99999999999999999999\n", "bad.yaml:3: seed: must fit in 64 bits"},
    {"kind: watermark\nname: t\nseed: 1\nsamples: 0\n", "bad.yaml:4: samples: must be an integer in [1"},
    {"kind: watermark\nname: t\nseed: 1\nsamples: 1.5\n", "bad.yaml:4: samples: expected an integer"},
    {"kind: watermark\nname: t\nseed: 1\nsamples: 2\nschemes: kgw\n", "bad.yaml:5: schemes: expected a sequence"},
    {"kind: watermark\nname: t\nseed: 1\nsamples: 2\nschemes: [nothere.yaml]\n", "bad.yaml:5: schemes: no such file"},
    {"kind: watermark\nname: t\nseed: 1\nsamples: 2\nschemes: [badscheme.yaml]\n", "bad.yaml:5: schemes: "},
    {"kind: watermark\nname: t\nseed: 1\nsamples: 2\nschemes:\n  - @SCHEMES@unigram.yaml\n  - @SCHEMES@unigram.yaml\n",
     "bad.yaml:7: schemes: scheme 'unigram' listed twice"},
    {BASE "max_tokens: 0\n", "bad.yaml:9: max_tokens: must be an integer in [1, 4096]"},
    {BASE "lengths: [50, 25]\n", "bad.yaml:9: lengths: must increase"},
    {BASE "max_tokens: 100\nlengths: [50, 300]\n", "bad.yaml:10: lengths: 300 is longer than max_tokens 100"},
    {BASE "sampling: {temperature: hot}\n", "bad.yaml:9: sampling.temperature: expected a number"},
    {BASE "sampling:\n  top_p: 0\n", "bad.yaml:10: sampling.top_p: must be a number in (0"},
    {BASE "sampling: {tempo: 1}\n", "bad.yaml:9: sampling.tempo: unknown field"},
    {BASE "sampling: 1\n", "bad.yaml:9: sampling: expected a mapping"},
    {"kind: watermark\nname: t\nseed: 1\nsamples: 2\nschemes: [@SCHEMES@unigram.yaml]\nnull:\n  sources: [wikipedia]\n",
     "bad.yaml:7: null.sources: unknown source 'wikipedia'"},
    {"kind: watermark\nname: t\nseed: 1\nsamples: 2\nschemes: [@SCHEMES@unigram.yaml]\nnull: {generated: 0, human: 0}\n",
     "bad.yaml:6: null: the null set is empty"},
    {"kind: watermark\nname: t\nseed: 1\nsamples: 2\nschemes: [@SCHEMES@unigram.yaml]\nmodel: @MODEL@\n"
     "null: {data_dir: nodata}\n",
     "bad.yaml:7: null.data_dir: missing data file"},
    {BASE "attacks:\n  - {attack: blur, strengths: [0.1]}\n", "bad.yaml:10: attacks.attack: unknown attack 'blur'"},
    {BASE "attacks:\n  - {attack: delete, strengths: [1.5]}\n", "bad.yaml:10: attacks.strengths: must be a number in [0, 1]"},
    {BASE "attacks:\n  - {attack: delete}\n", "bad.yaml:10: attacks.strengths: missing"},
    {BASE "attacks:\n  - {strengths: [0.1]}\n", "bad.yaml:10: attacks.attack: missing"},
    {BASE "attacks:\n  - {attack: delete, strengths: [0.1], window: true}\n", "bad.yaml:10: attacks.window: only copy-paste"},
    {BASE "attacks:\n  - {attack: copy-paste, strengths: [0]}\n", "bad.yaml:10: attacks.strengths: must be a number in (0, 1]"},
    {BASE "attacks:\n  - {attack: delete, strengths: [0.1, 0.1]}\n", "bad.yaml:10: attacks.strengths: delete@0.1 listed twice"},
    {BASE "metrics: {fprs: [0.7]}\n", "bad.yaml:9: metrics.fprs: must be a number in (0, 0.5]"},
    {BASE "metrics: {bootstrap: true}\n", "bad.yaml:9: metrics.bootstrap: expected an integer"},
    {BASE "detect: {permutations: 0}\n", "bad.yaml:9: detect.permutations: must be an integer in [1"},
    {"kind: watermark\nname: t\nseed: 1\nsamples: 2\nschemes: [@SCHEMES@unigram.yaml]\nmodel: nomodel.bin\n"
     "null: {data_dir: @DATA@}\n",
     "bad.yaml:6: model: no such file"},
    {BASE "keys: [k1]\nkey_count: 2\n", "bad.yaml:10: key_count: give either keys or key_count"},
    {BASE "keys: [nokey.key]\n", "bad.yaml:9: keys: no such file"},
    {BASE "prompts: []\n", "bad.yaml:9: prompts: expected 1 to"},
    {BASE "prompts: {a: b}\n", "bad.yaml:9: prompts: expected a sequence"},
    {BASE "prompts: [[nested]]\n", "bad.yaml:9: prompts: expected a single value"},
    {BASE "---\nkind: watermark\n", "more than one YAML document"},
    {BASE "oracle: {tokenizer: @TOK@}\n", "bad.yaml:9: oracle.model: missing"},
    {BASE "paraphraser: {model: nothere.gguf}\n", "bad.yaml:9: paraphraser.model: no such file"},
    {BASE "oracle: {model: @MODEL@, size: 3}\n", "bad.yaml:9: oracle.size: unknown field"},
};

Test(evals_task, bad_task_files_name_file_line_and_field) {
    workspace w = open_workspace();
    char *bad_scheme = tm_test_path(w.dir, "badscheme.yaml");
    cr_assert_eq(tm_test_write_file(bad_scheme, "scheme: kgw\ngamma: 2\n", 21), 0);
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char *path = write_task(&w, "bad.yaml", bad_cases[i].text);
        tm_eval_task task;
        tm_error err = {0};
        tm_status status = tm_eval_task_load(&task, path, true, &err);
        cr_assert_neq(status, TM_OK, "case %zu was accepted", i);
        cr_assert(strstr(err.message, bad_cases[i].expect), "case %zu: expected \"%s\" in \"%s\"", i,
                  bad_cases[i].expect, err.message);
        free(path);
    }
    /* The good base parses, with the defaults filled in. */
    char *path = write_task(&w, "good.yaml", BASE);
    tm_eval_task task;
    tm_error err = {0};
    cr_assert_eq(tm_eval_task_load(&task, path, true, &err), TM_OK, "%s", err.message);
    cr_assert_eq(task.n_schemes, 1);
    cr_assert_str_eq(task.scheme_names[0], "kgw-lefthash");
    cr_assert_eq(task.n_fprs, 3);
    cr_assert_eq(task.samples, 2);
    cr_assert_eq(task.null_human, 2);
    tm_eval_task_free(&task);
    free(path);
    free(bad_scheme);
    free(w.dir);
}

Test(evals_task, shipped_tasks_parse) {
    const char *tasks[] = {TRACEMARK_SOURCE_DIR "/configs/tasks/watermark-smoke.yaml",
                           TRACEMARK_SOURCE_DIR "/configs/tasks/watermark-stories.yaml"};
    for (size_t i = 0; i < 2; i++) {
        tm_eval_task task;
        tm_error err = {0};
        cr_assert_eq(tm_eval_task_load(&task, tasks[i], false, &err), TM_OK, "%s", err.message);
        cr_assert_gt(task.n_schemes, 0);
        tm_eval_task_free(&task);
    }
}

/* ======================================================================== */
/* Runs                                                                     */
/* ======================================================================== */

/* Small enough for the sanitizer build, big enough to be killed mid-way. */
#define RUN_TASK                                                                                             \
    "kind: watermark\n"                                                                                      \
    "name: test-run\n"                                                                                       \
    "seed: 4242\n"                                                                                           \
    "schemes: [@SCHEMES@kgw-lefthash.yaml, @SCHEMES@unigram.yaml]\n"                                         \
    "samples: 8\n"                                                                                           \
    "max_tokens: 40\n"                                                                                       \
    "lengths: [10, 20, 40]\n"                                                                                \
    "model: @MODEL@\n"                                                                                       \
    "tokenizer: @TOK@\n"                                                                                     \
    "null: {generated: 8, human: 8, data_dir: @DATA@, sources: [truthfulqa, halueval-knowledge]}\n"          \
    "attacks:\n"                                                                                             \
    "  - {attack: delete, strengths: [0.2]}\n"                                                               \
    "  - {attack: copy-paste, strengths: [0.5], window: true}\n"                                             \
    "  - {attack: paraphrase, strengths: [0.3]}\n"                                                           \
    "  - {attack: emoji, strengths: [1]}\n"                                                                  \
    "metrics: {bootstrap: 100, prefix_step: 10}\n"

static char *read_all(const char *dir, const char *name) {
    char *path = tm_test_path(dir, name);
    size_t size;
    char *text = tm_test_read_file(path, &size);
    cr_assert_not_null(text, "cannot read %s", path);
    free(path);
    return text;
}

/* The store's rows without their timings, as one string. */
static char *store_rows(const char *dir) {
    char *path = tm_test_path(dir, "run.sqlite");
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT id, grp, input, output, scores, prompt_sha256, document_sha256,"
                                    " target_sha256 FROM samples ORDER BY id",
                                    -1, &st, NULL),
                 SQLITE_OK);
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int c = 0; c < 8; c++) {
            const char *v = (const char *)sqlite3_column_text(st, c);
            size_t n = strlen(v);
            while (len + n + 2 > cap) out = realloc(out, cap *= 2);
            memcpy(out + len, v, n);
            len += n;
            out[len++] = '\t';
            out[len] = '\0';
        }
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(path);
    return out;
}

static void assert_same_run(const char *a, const char *b) {
    const char *files[] = {"samples.jsonl", "results.json"};
    for (int i = 0; i < 2; i++) {
        char *x = read_all(a, files[i]), *y = read_all(b, files[i]);
        cr_assert_str_eq(x, y, "%s differs between %s and %s", files[i], a, b);
        free(x), free(y);
    }
    char *x = store_rows(a), *y = store_rows(b);
    cr_assert_str_eq(x, y, "the stores of %s and %s differ", a, b);
    free(x), free(y);
}

Test(evals_run, sigkill_resume_and_shards_equal_the_whole_run, .timeout = 600) {
    workspace w = open_workspace();
    char *task = write_task(&w, "task.yaml", RUN_TASK);
    char *whole = tm_test_path(w.dir, "whole"), *killed = tm_test_path(w.dir, "killed");
    tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s' --threads 2", task, whole);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    cr_assert_eq(evals_test_stored_samples(whole), 32);

    /* Kill -9 once a few samples are stored, then resume. */
    long before = evals_test_kill_after(task, killed, 3, 60000);
    cr_assert(before >= 3 && before < 32, "%ld samples stored when killed", before);
    r = tm_test_cli("eval '%s' --out '%s'", task, killed);
    cr_assert_eq(r.code, 1, "a second run without --resume must refuse the store");
    cr_assert(strstr(r.err, "use --resume"), "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("eval '%s' --out '%s' --resume --json", task, killed);
    cr_assert_eq(r.code, 0, "%s", r.err);
    char expect[64];
    snprintf(expect, sizeof expect, "\"samples_run\":%ld", 32 - before);
    cr_assert(strstr(r.out, expect), "expected %s in %s", expect, r.out);
    tm_test_cli_free(&r);
    assert_same_run(whole, killed);

    /* Two shards merged equal the whole run. */
    char *s0 = tm_test_path(w.dir, "s0"), *s1 = tm_test_path(w.dir, "s1"), *merged = tm_test_path(w.dir, "merged");
    r = tm_test_cli("eval '%s' --out '%s' --shard 0/2", task, s0);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("eval '%s' --out '%s' --shard 1/2", task, s1);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    cr_assert_eq(evals_test_stored_samples(s0), 16);
    char *partial = read_all(s0, "results.json");
    cr_assert(strstr(partial, "\"complete\": false"), "a shard's results must say they are partial");
    free(partial);
    r = tm_test_cli("eval merge '%s' '%s' --out '%s'", s0, s1, merged);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    assert_same_run(whole, merged);

    /* A store of another task: refused by --resume and by merge, nothing written. */
    char *other_text = expand(&w, RUN_TASK);
    char *changed = strstr(other_text, "seed: 4242");
    memcpy(changed, "seed: 4243", 10);
    char *other_path = tm_test_path(w.dir, "other.yaml");
    cr_assert_eq(tm_test_write_file(other_path, other_text, strlen(other_text)), 0);
    r = tm_test_cli("eval '%s' --out '%s' --resume", other_path, whole);
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "belongs to another task"), "%s", r.err);
    tm_test_cli_free(&r);
    char *other_run = tm_test_path(w.dir, "other-run"), *refused = tm_test_path(w.dir, "refused");
    r = tm_test_cli("eval '%s' --out '%s' --shard 0/8", other_path, other_run);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("eval merge '%s' '%s' --out '%s'", whole, other_run, refused);
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "belongs to another task"), "%s", r.err);
    cr_assert(!tm_file_exists(refused), "a refused merge left %s behind", refused);
    tm_test_cli_free(&r);

    free(other_text), free(other_path), free(other_run), free(refused);
    free(s0), free(s1), free(merged), free(whole), free(killed), free(task), free(w.dir);
}

Test(evals_run, unloadable_model_and_bad_task_leave_nothing) {
    workspace w = open_workspace();
    char *garbage = tm_test_path(w.dir, "garbage.bin");
    cr_assert_eq(tm_test_write_file(garbage, "not a model at all", 18), 0);
    char *task = write_task(&w, "task.yaml",
                            "kind: watermark\nname: t\nseed: 1\nschemes: [@SCHEMES@unigram.yaml]\nsamples: 2\n"
                            "model: garbage.bin\ntokenizer: @TOK@\nnull: {generated: 2, human: 0}\n");
    char *out = tm_test_path(w.dir, "run");
    tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s'", task, out);
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "task.yaml:6: model:"), "%s", r.err);
    cr_assert(!tm_file_exists(out), "a failed run left %s behind", out);
    tm_test_cli_free(&r);
    char *bad = write_task(&w, "bad.yaml", "kind: watermark\nname: t\nseed: x\n");
    r = tm_test_cli("eval '%s' --out '%s'", bad, out);
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "tracemark: error: ") && strstr(r.err, "bad.yaml:3: seed:"), "%s", r.err);
    cr_assert(!tm_file_exists(out));
    tm_test_cli_free(&r);
    r = tm_test_cli("eval '%s'", bad);
    cr_assert_eq(r.code, 2, "a missing --out is a usage error");
    tm_test_cli_free(&r);
    r = tm_test_cli("eval '%s' --out x --shard 2/2", bad);
    cr_assert_eq(r.code, 2);
    tm_test_cli_free(&r);
    r = tm_test_cli("eval --help");
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "--resume") && strstr(r.out, "merge"));
    tm_test_cli_free(&r);
    free(garbage), free(task), free(out), free(bad), free(w.dir);
}

/* The shipped smoke task runs end to end (this is the CI smoke run) and its
 * results hold every scheme and attack variant it names. */
Test(evals_run, shipped_smoke_task, .timeout = 600) {
    char *dir = tm_test_scratch_dir();
    char *out = tm_test_path(dir, "smoke");
    /* The task names no model: the CLI resolves it as `tracemark generate`
     * does, here through $TRACEMARK_MODEL (the tests run in the build folder). */
    char *model = tm_fixture("models/stories260K.bin");
    setenv("TRACEMARK_MODEL", model, 1);
    free(model);
    tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s' --threads 2",
                                       TRACEMARK_SOURCE_DIR "/configs/tasks/watermark-smoke.yaml", out);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    char *text = read_all(out, "results.json");
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    cr_assert_not_null(root, "%s", jerr.text);
    cr_assert(json_is_true(json_object_get(root, "complete")));
    json_t *schemes = json_object_get(json_object_get(root, "results"), "schemes");
    cr_assert_eq(json_object_size(schemes), 2);
    const char *name;
    json_t *scheme;
    json_object_foreach(schemes, name, scheme) {
        json_t *attacks = json_object_get(scheme, "attacks");
        cr_assert_eq(json_array_size(attacks), 8, "%s: none + 7 attack variants", name);
        json_t *none = json_array_get(attacks, 0);
        cr_assert_eq(json_integer_value(json_object_get(none, "n_positive")), 6);
        cr_assert_eq(json_integer_value(json_object_get(none, "n_negative")), 12);
        double auc = json_real_value(json_object_get(json_object_get(none, "auc"), "value"));
        cr_assert(auc >= 0 && auc <= 1);
    }
    json_decref(root);
    free(text), free(out), free(dir);
}

/* An oracle model scores perplexity beside the model's own: the same
 * stories260K weights in GGUF form (their own tokenizer, a separate
 * forward pass) give the model's perplexity to within float rounding. A
 * paraphraser model regenerates the paraphrase attack's spans. */
Test(evals_run, oracle_and_paraphraser_models) {
    workspace w = open_workspace();
    char *gguf = tm_fixture("models/stories260K.gguf");
    char template[8192];
    snprintf(template, sizeof template,
             "kind: watermark\nname: oracle\nseed: 3\nschemes: [@SCHEMES@kgw-lefthash.yaml]\nsamples: 3\n"
             "max_tokens: 32\nlengths: [16, 32]\nmodel: @MODEL@\ntokenizer: @TOK@\n"
             "oracle: {model: %s}\nparaphraser: {model: %s}\nnull: {generated: 2, human: 0}\n"
             "attacks:\n  - {attack: paraphrase, strengths: [0.5]}\nmetrics: {bootstrap: 50}\n",
             gguf, gguf);
    char *task = write_task(&w, "oracle.yaml", template);
    char *out = tm_test_path(w.dir, "run");
    tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s'", task, out);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    char *lines = read_all(out, "samples.jsonl");
    size_t checked = 0;
    for (char *line = strtok(lines, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        json_t *sample = json_loads(line, 0, &jerr);
        cr_assert_not_null(sample, "%s", jerr.text);
        json_t *q = json_object_get(json_object_get(sample, "scores"), "quality");
        double own = json_real_value(json_object_get(q, "perplexity"));
        double oracle = json_real_value(json_object_get(q, "perplexity_oracle"));
        cr_assert(own > 1 && fabs(oracle - own) <= 1e-5 * own, "perplexity %.9g, oracle %.9g", own, oracle);
        json_t *attack = json_object_get(json_object_get(json_object_get(sample, "output"), "attacked"), "paraphrase@0.5");
        cr_assert_gt(json_integer_value(json_object_get(attack, "units")), 0);
        json_decref(sample);
        checked++;
    }
    cr_assert_eq(checked, 5);
    free(lines), free(out), free(task), free(gguf), free(w.dir);
}

/* A store's snapshot read back without file checks (reports/ does this where
 * the run's data files are not present) still names the model the task
 * named: before, model_path stayed empty and the report said "the model
 * file is not readable here" of a model lying at the task's own path. Both
 * the watermark kind and a hallucination kind; relative paths resolve
 * against the task's folder as in a checked parse. */
Test(evals_task, unchecked_parse_keeps_the_task_model_path) {
    static const char *const texts[] = {
        "kind: watermark\nname: w\nseed: 1\nmodel: /nowhere/m.gguf\nschemes: [" SCHEMES "unigram.yaml]\n"
        "samples: 2\nmax_tokens: 8\nlengths: [8]\nnull: {data_dir: /nowhere/data}\n",
        "kind: truthfulqa_mc\nname: t\nseed: 1\nmodel: m.gguf\ndata: /nowhere/mc_task.json\n",
    };
    static const char *const expected[] = {"/nowhere/m.gguf", "/tasks/m.gguf"};
    for (size_t i = 0; i < 2; i++) {
        tm_eval_task task;
        memset(&task, 0, sizeof task);
        tm_error err = {0};
        cr_assert_eq(tm_eval_task_parse(&task, "/tasks/t.yaml", texts[i], strlen(texts[i]), false, &err), TM_OK,
                     "%s", err.message);
        cr_expect_str_eq(task.model_path, expected[i]);
        tm_eval_task_free(&task);
        /* the checked parse still refuses the missing files */
        memset(&task, 0, sizeof task);
        cr_expect_neq(tm_eval_task_parse(&task, "/tasks/t.yaml", texts[i], strlen(texts[i]), true, &err), TM_OK);
        tm_eval_task_free(&task);
    }
}

/* Gumbel's text is a function of key and prompt: 3 samples from 2 prompts and
 * 1 key are 2 distinct texts, counted as 3. The run warns before it starts
 * (the shipped watermark-stories.yaml had 200 Gumbel samples of 10 texts);
 * 2 samples from 2 prompts, or KGW, draw no warning. The texts themselves
 * are checked to repeat, so the warning is about what the run really does. */
Test(evals_run, gumbel_samples_repeating_a_text_are_warned_of) {
    workspace w = open_workspace();
    static const char *const tasks[] = {
        "kind: watermark\nname: g3\nseed: 1\nmodel: @MODEL@\ntokenizer: @TOK@\nschemes: [@SCHEMES@gumbel.yaml]\n"
        "prompts: [Once upon a time, The cat]\nsamples: 3\nmax_tokens: 8\nlengths: [8]\n"
        "null: {generated: 1, human: 1, data_dir: @DATA@}\nmetrics: {bootstrap: 10}\n",
        "kind: watermark\nname: g2\nseed: 1\nmodel: @MODEL@\ntokenizer: @TOK@\nschemes: [@SCHEMES@gumbel.yaml]\n"
        "prompts: [Once upon a time, The cat]\nsamples: 2\nmax_tokens: 8\nlengths: [8]\n"
        "null: {generated: 1, human: 1, data_dir: @DATA@}\nmetrics: {bootstrap: 10}\n",
        "kind: watermark\nname: k3\nseed: 1\nmodel: @MODEL@\ntokenizer: @TOK@\nschemes: [@SCHEMES@kgw-lefthash.yaml]\n"
        "prompts: [Once upon a time, The cat]\nsamples: 3\nmax_tokens: 8\nlengths: [8]\n"
        "null: {generated: 1, human: 1, data_dir: @DATA@}\nmetrics: {bootstrap: 10}\n",
    };
    for (size_t i = 0; i < 3; i++) {
        char name[32], run[32];
        snprintf(name, sizeof name, "t%zu.yaml", i);
        snprintf(run, sizeof run, "run%zu", i);
        char *task = write_task(&w, name, tasks[i]), *out = tm_test_path(w.dir, run);
        tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s'", task, out);
        cr_assert_eq(r.code, 0, "%s", r.err);
        if (i == 0) {
            cr_expect(strstr(r.err, "warning: gumbel:") != NULL &&
                          strstr(r.err, "3 samples hold only 2 distinct texts") != NULL, "%s", r.err);
            /* samples 0 and 2 (prompt 0, key 0) are the same text */
            char *jsonl = read_all(out, "samples.jsonl");
            json_t *texts[3] = {0};
            for (char *line = strtok(jsonl, "\n"); line; line = strtok(NULL, "\n")) {
                json_t *row = json_loads(line, 0, NULL);
                cr_assert_not_null(row);
                int64_t id = json_integer_value(json_object_get(row, "doc_id"));
                if (id < 3) texts[id] = json_incref(json_object_get(json_object_get(row, "output"), "text"));
                json_decref(row);
            }
            cr_assert(texts[0] && texts[1] && texts[2]);
            cr_expect(json_equal(texts[0], texts[2]), "samples 0 and 2 differ");
            cr_expect_not(json_equal(texts[0], texts[1]), "samples 0 and 1 are the same");
            for (int k = 0; k < 3; k++) json_decref(texts[k]);
            free(jsonl);
        } else {
            cr_expect_null(strstr(r.err, "warning"), "%s", r.err);
        }
        tm_test_cli_free(&r);
        free(task), free(out);
    }
    free(w.dir);
}
