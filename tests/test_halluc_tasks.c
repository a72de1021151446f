/* The hallucination task kinds through `tracemark eval`: TruthfulQA MC with
 * and without prefix reuse give the same scores; a HaluEval run killed with
 * SIGKILL and resumed ends with the same store rows and exports as an
 * uninterrupted one; bad items and items too long for the context are
 * recorded with their reasons and counted, never failing the run; task
 * file errors name the file, line and field; the shipped task files parse.
 * Small limits on stories260K keep this quick (under the sanitizers too). */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *read_all(const char *dir, const char *name);

static char *write_text(const char *dir, const char *name, const char *text) {
    char *path = tm_test_path(dir, name);
    cr_assert_eq(tm_test_write_file(path, text, strlen(text)), 0);
    return path;
}

/* A task file: kind, name, the fixture model, and extra lines. */
static char *write_task(const char *dir, const char *name, const char *kind, const char *extra) {
    char *model = tm_fixture("models/stories260K.gguf"), text[8192];
    snprintf(text, sizeof text, "kind: %s\nname: %s\nseed: 77\nmodel: %s\nmetrics: {bootstrap: 50}\n%s", kind, name,
             model, extra);
    free(model);
    char file[96];
    snprintf(file, sizeof file, "%s.yaml", name);
    return write_text(dir, file, text);
}

static json_t *results(const char *run_dir) {
    char *path = tm_test_path(run_dir, "results.json");
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", path, jerr.text);
    free(path);
    json_t *r = json_incref(json_object_get(root, "results"));
    json_decref(root);
    return r;
}

static double value_at(json_t *r, const char *set, const char *metric) {
    return json_real_value(json_object_get(json_object_get(json_object_get(r, set), metric), "value"));
}

static void run_ok(const char *task, const char *out) {
    tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s'", task, out);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
}

Test(halluc_tasks, truthfulqa_mc_scores_equal_with_and_without_reuse, .timeout = 600) {
    char *dir = tm_test_scratch_dir();
    char *with = write_task(dir, "with", "truthfulqa_mc", "limit: 5\nreuse: true\n");
    char *without = write_task(dir, "without", "truthfulqa_mc", "limit: 5\nreuse: false\n");
    char *a = tm_test_path(dir, "a"), *b = tm_test_path(dir, "b");
    run_ok(with, a);
    run_ok(without, b);
    json_t *ra = results(a), *rb = results(b);
    const char *sets[] = {"mc0", "mc1", "mc2"};
    for (int s = 0; s < 3; s++) {
        cr_assert_eq(value_at(ra, sets[s], "acc"), value_at(rb, sets[s], "acc"), "%s acc", sets[s]);
        cr_assert_eq(value_at(ra, sets[s], "acc_norm"), value_at(rb, sets[s], "acc_norm"), "%s acc_norm", sets[s]);
    }
    double mc2a = value_at(ra, "mc2", "mc2"), mc2b = value_at(rb, "mc2", "mc2");
    cr_assert(fabs(mc2a - mc2b) < 1e-5, "MC2 %.9g with reuse, %.9g without", mc2a, mc2b);
    cr_assert_eq(json_integer_value(json_object_get(ra, "items")), 5);
    json_decref(ra), json_decref(rb);
    free(with), free(without), free(a), free(b), free(dir);
}

/* Greedy answers after the primer: with its cache kept between questions
 * or recomputed, the same completions and scores. */
Test(halluc_tasks, truthfulqa_gen_same_with_and_without_reuse, .timeout = 600) {
    char *dir = tm_test_scratch_dir();
    char *with = write_task(dir, "gwith", "truthfulqa_gen", "limit: 3\nmax_tokens: 24\nreuse: true\n");
    char *without = write_task(dir, "gwithout", "truthfulqa_gen", "limit: 3\nmax_tokens: 24\nreuse: false\n");
    char *a = tm_test_path(dir, "a"), *b = tm_test_path(dir, "b");
    run_ok(with, a);
    run_ok(without, b);
    json_t *ra = results(a), *rb = results(b);
    const char *metrics[] = {"bleu_max", "bleu_acc", "rouge1_max", "rouge2_diff", "rougeL_acc"};
    for (int m = 0; m < 5; m++) {
        double x = json_real_value(json_object_get(json_object_get(ra, metrics[m]), "value"));
        double y = json_real_value(json_object_get(json_object_get(rb, metrics[m]), "value"));
        cr_assert_eq(x, y, "%s: %g with reuse, %g without", metrics[m], x, y);
    }
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(ra, "bleu_max"), "n")), 3);
    json_decref(ra), json_decref(rb);
    free(with), free(without), free(a), free(b), free(dir);
}

/* SelfCheckGPT on HaluEval general: samples are seeded per item, so a run on
 * one thread and a run on two write the same bytes; the AUC of each passage
 * score against the label is reported. */
Test(halluc_tasks, selfcheck_is_reproducible_and_reports_auc, .timeout = 600) {
    char *dir = tm_test_scratch_dir();
    char *task = write_task(dir, "sc", "selfcheck", "limit: 4\nsamples: 2\nmax_tokens: 16\n");
    char *a = tm_test_path(dir, "a"), *b = tm_test_path(dir, "b");
    run_ok(task, a);
    tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s' --threads 2", task, b);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    char *x = read_all(a, "samples.jsonl"), *y = read_all(b, "samples.jsonl");
    cr_assert_str_eq(x, y);
    free(x), free(y);
    json_t *res = results(a);
    const char *names[] = {"ngram_avg", "ngram_max", "prompt"};
    for (int m = 0; m < 3; m++) {
        json_t *entry = json_object_get(res, names[m]);
        cr_assert_eq(json_integer_value(json_object_get(entry, "n")), 4, "%s", names[m]);
        cr_assert(json_is_number(json_object_get(entry, "auc")) || json_is_null(json_object_get(entry, "auc")));
    }
    json_decref(res);
    free(task), free(a), free(b), free(dir);
}

static char *read_all(const char *dir, const char *name) {
    char *path = tm_test_path(dir, name);
    size_t size;
    char *text = tm_test_read_file(path, &size);
    cr_assert_not_null(text, "cannot read %s", path);
    free(path);
    return text;
}

Test(halluc_tasks, halueval_resumes_after_sigkill_to_the_same_run, .timeout = 600) {
    char *dir = tm_test_scratch_dir();
    char *task = write_task(dir, "qa", "halueval_qa", "limit: 10\ncontext: 4096\n");
    char *whole = tm_test_path(dir, "whole"), *killed = tm_test_path(dir, "killed");
    run_ok(task, whole);
    cr_assert_eq(evals_test_stored_samples(whole), 10);
    long before = evals_test_kill_after(task, killed, 2, 600000);
    cr_assert(before >= 2 && before < 10, "%ld samples stored when killed", before);
    tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s' --resume --json", task, killed);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    /* Each item starts from the primed instruction alone, so the resumed
     * items' records are the bytes an uninterrupted run writes. */
    const char *files[] = {"samples.jsonl", "results.json"};
    for (int i = 0; i < 2; i++) {
        char *x = read_all(whole, files[i]), *y = read_all(killed, files[i]);
        cr_assert_str_eq(x, y, "%s differs after the resume", files[i]);
        free(x), free(y);
    }
    free(task), free(whole), free(killed), free(dir);
}

Test(halluc_tasks, bad_and_overlong_items_are_recorded_and_counted, .timeout = 600) {
    char *dir = tm_test_scratch_dir();
    const char *mc = "[{\"question\":\"Is the sky blue?\",\"mc0_targets\":{\"Yes\":1,\"No\":0},"
                     "\"mc1_targets\":{\"Yes\":1,\"No\":0},\"mc2_targets\":{\"Yes\":1,\"\":0}},"
                     "{\"mc0_targets\":{\"Yes\":1,\"No\":0}},"
                     "{\"question\":\"Is grass green?\",\"mc0_targets\":{\"Yes\":1,\"No\":0},"
                     "\"mc1_targets\":{\"Yes\":1,\"Maybe\":1,\"No\":0},\"mc2_targets\":{\"Yes\":1,\"No\":0}}]";
    char *data = write_text(dir, "mc.json", mc);
    char extra[4096];
    snprintf(extra, sizeof extra, "data: %s\n", data);
    char *task = write_task(dir, "bad", "truthfulqa_mc", extra);
    char *out = tm_test_path(dir, "out");
    run_ok(task, out);
    json_t *r = results(out);
    /* item 0: MC2 has an empty choice; item 1: no question; item 2: two true MC1 answers. */
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "mc0"), "bad_items")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "mc1"), "bad_items")), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "mc2"), "bad_items")), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_object_get(r, "mc0"), "acc"), "n")), 2);
    char *dump = json_dumps(json_object_get(r, "bad"), 0);
    cr_assert(strstr(dump, "question is missing"), "%s", dump);
    cr_assert(strstr(dump, "choice 1 is empty"), "%s", dump);
    cr_assert(strstr(dump, "2 true choices"), "%s", dump);
    free(dump);
    json_decref(r);

    /* A context of 64 positions holds no item after the primer: each is
     * recorded as too long, the run still completes. */
    char *small = write_task(dir, "small", "truthfulqa_mc", "limit: 2\ncontext: 64\n");
    char *out2 = tm_test_path(dir, "out2");
    run_ok(small, out2);
    r = results(out2);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "mc1"), "bad_items")), 2);
    dump = json_dumps(json_object_get(r, "bad"), 0);
    cr_assert(strstr(dump, "do not fit in a context of 64"), "%s", dump);
    free(dump);
    json_decref(r);

    /* HaluEval general with a broken line and a bad label. */
    const char *lines = "{\"user_query\":\"Name a colour.\",\"chatgpt_response\":\"Blue.\",\"hallucination\":\"no\"}\n"
                        "{broken\n"
                        "{\"user_query\":\"q\",\"chatgpt_response\":\"r\",\"hallucination\":\"perhaps\"}\n";
    char *general = write_text(dir, "general.json", lines);
    snprintf(extra, sizeof extra, "data: %s\ncontext: 4096\n", general);
    char *gtask = write_task(dir, "general", "halueval_general", extra);
    char *out3 = tm_test_path(dir, "out3");
    run_ok(gtask, out3);
    r = results(out3);
    cr_assert_eq(json_integer_value(json_object_get(r, "bad_items")), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "accuracy"), "n")), 1);
    json_decref(r);
    free(data), free(task), free(out), free(small), free(out2), free(general), free(gtask), free(out3), free(dir);
}

Test(halluc_tasks, task_file_errors_name_the_field) {
    char *dir = tm_test_scratch_dir();
    struct {
        const char *text, *expect;
    } cases[] = {
        {"kind: truthfulqa_mc\nname: x\nseed: 1\nschemes: []\n", ":4: schemes: unknown field"},
        {"kind: truthfulqa_mc\nseed: 1\n", "name: missing"},
        {"kind: halueval_qa\nname: x\nseed: 1\nmargin: -1\n", ":4: margin"},
        {"kind: truthfulqa_mc\nname: x\nseed: 1\ndata: nowhere.json\n", ":4: data: no such file"},
        {"kind: truthfulqa_mc\nname: x\nseed: 1\ncontext: 3\n", ":4: context"},
        {"kind: halueval_general\nname: x\nseed: 1\nreuse: maybe\n", ":4: reuse"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = write_text(dir, "t.yaml", cases[i].text);
        tm_eval_task task;
        tm_error err = {0};
        cr_assert_neq(tm_eval_task_load(&task, path, true, &err), TM_OK, "case %zu parsed", i);
        cr_assert(strstr(err.message, cases[i].expect), "case %zu: %s", i, err.message);
        free(path);
    }
    free(dir);
}

Test(halluc_tasks, shipped_task_files_parse) {
    const char *tasks[] = {TRACEMARK_SOURCE_DIR "/configs/tasks/truthfulqa-mc-stories.yaml",
                           TRACEMARK_SOURCE_DIR "/configs/tasks/halueval-qa-stories.yaml",
                           TRACEMARK_SOURCE_DIR "/configs/tasks/halueval-general-stories.yaml",
                           TRACEMARK_SOURCE_DIR "/configs/tasks/truthfulqa-gen-stories.yaml",
                           TRACEMARK_SOURCE_DIR "/configs/tasks/selfcheck-halueval-general.yaml"};
    tm_eval_kind kinds[] = {TM_EVAL_KIND_TRUTHFULQA_MC, TM_EVAL_KIND_HALUEVAL_QA, TM_EVAL_KIND_HALUEVAL_GENERAL,
                            TM_EVAL_KIND_TRUTHFULQA_GEN, TM_EVAL_KIND_SELFCHECK};
    for (size_t i = 0; i < 5; i++) {
        tm_eval_task task;
        tm_error err = {0};
        cr_assert_eq(tm_eval_task_load(&task, tasks[i], false, &err), TM_OK, "%s", err.message);
        cr_assert_eq(task.kind, kinds[i]);
        cr_assert(task.halluc_reuse);
        tm_eval_task_free(&task);
    }
}
