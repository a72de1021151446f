/* The zero_shot eval task kind (evals/zeroshot_task.c) through `tracemark
 * eval` on stories260K with a small task: the samples are the sets asked for;
 * a stored score is the zero-shot room's own score of the stored text (and
 * a length's score that of the text's first L tokens); the AUROC and TPR at
 * 1% FPR of results.json equal the Mann-Whitney statistic and the threshold
 * rule recomputed here from samples.jsonl; the run calibrates `detect
 * --zero-shot` (its human texts set the threshold); two shards merged, and a run
 * resumed after losing a third of its samples, give the same bytes as one
 * run; task-file errors name file, line and field; the shipped
 * task files parse. Small sizes keep it quick under the sanitizers too. */
#include "fixtures.h"
#include "tracemark/evals.h"
#include "tracemark/zeroshot.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A task on the fixture model (the .gguf, its own tokenizer) with the
 * llama2.c checkpoint of the same weights as Binoculars' performer. */
static char *write_task(const char *dir, const char *name, const char *extra) {
    char *model = tm_fixture("models/stories260K.gguf"), *performer = tm_fixture("models/stories260K.bin"),
         *tokenizer = tm_fixture("models/tok512.bin");
    char text[8192];
    snprintf(text, sizeof text,
             "kind: zero_shot\nname: %s\nseed: 5\nmodel: %s\nperformer: %s\nperformer_tokenizer: %s\n%s", name, model,
             performer, tokenizer, extra);
    char file[96];
    snprintf(file, sizeof file, "%s.yaml", name);
    char *path = tm_test_path(dir, file);
    cr_assert_eq(tm_test_write_file(path, text, strlen(text)), 0);
    free(model), free(performer), free(tokenizer);
    return path;
}

static const char small[] = "human: 6\nchatgpt: 4\ngenerated: 4\nschemes: [%s]\nparaphrase: 0.3\nmax_tokens: 40\n"
                            "lengths: [8, 16]\nbootstrap: 50\n";

static char *small_task(const char *dir) {
    char extra[4096];
    snprintf(extra, sizeof extra, small, TRACEMARK_SOURCE_DIR "/configs/schemes/kgw-lefthash.yaml");
    return write_task(dir, "zs", extra);
}

static json_t *load_lines(const char *run_dir, size_t *n) {
    char *path = tm_test_path(run_dir, "samples.jsonl");
    size_t size = 0;
    char *text = tm_test_read_file(path, &size);
    cr_assert_not_null(text, "%s", path);
    json_t *all = json_array();
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *v = json_loads(line, 0, &jerr);
        cr_assert_not_null(v, "%s", jerr.text);
        json_array_append_new(all, v);
    }
    free(text);
    free(path);
    *n = json_array_size(all);
    return all;
}

static double num(json_t *v) { return json_is_number(v) ? json_number_value(v) : NAN; }

Test(zeroshot_task, runs_and_its_numbers_follow_from_the_samples, .timeout = 300) {
    char *dir = tm_test_scratch_dir(), *task = small_task(dir), *run = tm_test_path(dir, "run");
    tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s' --threads 2", task, run);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    size_t n = 0;
    json_t *samples = load_lines(run, &n);
    cr_assert_eq(n, 6 + 4 + 4 + 4, "human, chatgpt, generated, kgw-lefthash");
    const char *groups[18];
    for (size_t i = 0; i < n; i++) groups[i] = json_string_value(json_object_get(json_array_get(samples, i), "group"));
    cr_assert_str_eq(groups[0], "human");
    cr_assert_str_eq(groups[6], "chatgpt");
    cr_assert_str_eq(groups[10], "generated");
    cr_assert_str_eq(groups[14], "kgw-lefthash");

    /* A stored score is the room's own score of the stored text: the first
     * human text and the first generation (whole, and its first 8 tokens)
     * scored here directly with the same models and window. */
    tm_error err = {0};
    char *gguf = tm_fixture("models/stories260K.gguf"), *bin = tm_fixture("models/stories260K.bin"),
         *tok = tm_fixture("models/tok512.bin");
    tm_model *model = NULL, *performer = NULL;
    tm_tokenizer *tokenizer = NULL, *performer_tokenizer = NULL;
    cr_assert_eq(tm_model_load(&model, gguf, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_tokenizer(&tokenizer, model, NULL, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_load(&performer, bin, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_tokenizer(&performer_tokenizer, performer, tok, &err), TM_OK, "%s", err.message);
    tm_zeroshot_options o = {.method = TM_ZEROSHOT_BINOCULARS, .model = model, .tokenizer = tokenizer,
                             .performer = performer, .performer_tokenizer = performer_tokenizer, .n_threads = 1,
                             .slide = true};
    tm_zeroshot *z = NULL;
    cr_assert_eq(tm_zeroshot_create(&z, &o, &err), TM_OK, "%s", err.message);
    const size_t checked[2] = {0, 10};
    for (int c = 0; c < 2; c++) {
        json_t *s = json_array_get(samples, checked[c]);
        const char *text = json_string_value(json_object_get(json_object_get(s, "output"), "text"));
        json_t *zs = json_object_get(json_object_get(s, "scores"), "zero_shot");
        /* A generation is scored together with its paraphrase (one batch,
         * as the task does: the same packed pass, the same bits). */
        const char *paraphrased = json_string_value(json_object_get(json_object_get(s, "output"), "paraphrased"));
        const char *texts[2] = {text, paraphrased};
        size_t sizes[2] = {strlen(text), paraphrased ? strlen(paraphrased) : 0};
        tm_zeroshot_result results[2], res;
        tm_status statuses[2];
        cr_assert_eq(tm_zeroshot_score_texts(z, texts, sizes, paraphrased ? 2 : 1, results, statuses, NULL, &err),
                     TM_OK, "%s", err.message);
        cr_assert_eq(statuses[0], TM_OK);
        res = results[0];
        if (paraphrased) tm_zeroshot_result_free(&results[1]);
        cr_assert_eq((size_t)json_integer_value(json_object_get(zs, "n_tokens")), res.n_tokens - 1);
        for (int m = 0; m < TM_ZEROSHOT_METHOD_COUNT; m++) {
            tm_zeroshot_score whole, prefix;
            cr_assert_eq(tm_zeroshot_score_positions((tm_zeroshot_method)m, res.positions, res.n_tokens - 1, &whole,
                                                     &err), TM_OK);
            cr_assert_eq(tm_zeroshot_score_positions((tm_zeroshot_method)m, res.positions, 8, &prefix, &err), TM_OK);
            json_t *stored = json_object_get(zs, tm_zeroshot_method_name((tm_zeroshot_method)m));
            cr_assert_float_eq(num(json_object_get(stored, "score")), whole.score, 1e-9 * fmax(1, fabs(whole.score)),
                               "%s", tm_zeroshot_method_name((tm_zeroshot_method)m));
            cr_assert_float_eq(num(json_object_get(json_object_get(stored, "lengths"), "8")), prefix.score,
                               1e-9 * fmax(1, fabs(prefix.score)), "%s at 8 tokens",
                               tm_zeroshot_method_name((tm_zeroshot_method)m));
        }
        tm_zeroshot_result_free(&res);
    }
    tm_zeroshot_free(z);
    tm_tokenizer_free(tokenizer), tm_tokenizer_free(performer_tokenizer);
    tm_model_free(model), tm_model_free(performer);
    free(gguf), free(bin), free(tok);

    /* results.json against the samples: for every method, the AUROC of the
     * plain generations against the human texts is the share of (machine,
     * human) pairs in the machine direction (ties one half), and TPR at 1%
     * FPR with 6 human texts is the share of machine texts beyond the most
     * machine-like human one. */
    char *results_path = tm_test_path(run, "results.json");
    json_error_t jerr;
    json_t *root = json_load_file(results_path, 0, &jerr);
    cr_assert_not_null(root, "%s", jerr.text);
    json_t *res = json_object_get(root, "results"), *rows = json_object_get(res, "detection");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(res, "samples"), "human")), 6);
    /* 5 methods x (1 + 2 lengths) x (chatgpt, generated, +paraphrase, kgw, +paraphrase) */
    cr_assert_eq(json_array_size(rows), 5 * 3 * 5);
    size_t verified = 0;
    for (size_t k = 0; k < json_array_size(rows); k++) {
        json_t *row = json_array_get(rows, k);
        json_t *auroc = json_object_get(row, "auroc");
        double value = num(json_object_get(auroc, "value"));
        cr_assert(value >= 0 && value <= 1);
        cr_assert(num(json_object_get(auroc, "low")) <= value + 1e-12 && value <= num(json_object_get(auroc, "high")) + 1e-12);
        const char *method = json_string_value(json_object_get(row, "method"));
        if (strcmp(json_string_value(json_object_get(row, "machine")), "generated") ||
            strcmp(json_string_value(json_object_get(row, "length")), "all"))
            continue;
        tm_zeroshot_method m;
        cr_assert(tm_zeroshot_method_parse(method, &m));
        double sign = tm_zeroshot_higher_is_machine(m) ? 1 : -1, human[6], machine[4];
        size_t nh = 0, nm = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *s = json_array_get(samples, i);
            double x = num(json_object_get(
                json_object_get(json_object_get(json_object_get(s, "scores"), "zero_shot"), method), "score"));
            if (!strcmp(groups[i], "human")) human[nh++] = sign * x;
            if (!strcmp(groups[i], "generated")) machine[nm++] = sign * x;
        }
        cr_assert_eq(nh, 6);
        cr_assert_eq(nm, 4);
        double pairs = 0, top = -INFINITY;
        for (size_t i = 0; i < nm; i++)
            for (size_t j = 0; j < nh; j++) pairs += machine[i] > human[j] ? 1 : machine[i] == human[j] ? 0.5 : 0;
        for (size_t j = 0; j < nh; j++) top = fmax(top, human[j]);
        double beyond = 0;
        for (size_t i = 0; i < nm; i++) beyond += machine[i] > top;
        cr_assert_float_eq(value, pairs / 24.0, 1e-12, "%s AUROC", method);
        cr_assert_float_eq(num(json_object_get(json_object_get(json_object_get(row, "tpr_at_fpr"), "0.01"), "value")),
                           beyond / 4.0, 1e-12, "%s TPR at 1%% FPR", method);
        verified++;
    }
    cr_assert_eq(verified, 5);

    /* The run calibrates `detect --zero-shot`: its 6 human texts, and at FPR
     * 1% the threshold is the most machine-like of their scores. */
    double top_human = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(groups[i], "human"))
            top_human = fmax(top_human, num(json_object_get(json_object_get(json_object_get(json_object_get(
                json_array_get(samples, i), "scores"), "zero_shot"), "likelihood"), "score")));
    char *text = tm_test_path(dir, "story.txt");
    cr_assert_eq(tm_test_write_file(text, "Once upon a time, there was a cat.", 34), 0);
    char *scoring = tm_fixture("models/stories260K.gguf");
    r = tm_test_cli("detect --zero-shot likelihood --model '%s' --threads 1 --calibration '%s' --json '%s'", scoring, run,
                    text);
    cr_assert(r.code == 0 || r.code == 3, "%s", r.err);
    json_t *verdict = json_loads(r.out, 0, &jerr);
    cr_assert_not_null(verdict, "%s", r.out);
    cr_assert_eq(json_integer_value(json_object_get(verdict, "calibration_texts")), 6);
    cr_assert_float_eq(num(json_object_get(verdict, "threshold")), top_human, 1e-12);
    json_decref(verdict);
    tm_test_cli_free(&r);
    free(scoring), free(text);
    json_t *wm = json_object_get(json_object_get(res, "watermark"), "kgw-lefthash");
    cr_assert_eq(json_integer_value(json_object_get(wm, "n")), 4);
    cr_assert_not_null(json_object_get(json_object_get(wm, "zero_shot"), "fast-detectgpt"));
    json_decref(root);
    json_decref(samples);

    /* Two shards merged: the same samples.jsonl and results.json bytes. */
    char *s0 = tm_test_path(dir, "s0"), *s1 = tm_test_path(dir, "s1"), *merged = tm_test_path(dir, "merged");
    r = tm_test_cli("eval '%s' --out '%s' --shard 0/2", task, s0);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("eval '%s' --out '%s' --shard 1/2", task, s1);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("eval merge '%s' '%s' --out '%s'", s0, s1, merged);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    const char *files[2] = {"samples.jsonl", "results.json"};
    for (int f = 0; f < 2; f++) {
        char *a = tm_test_path(run, files[f]), *b = tm_test_path(merged, files[f]);
        size_t sa = 0, sb = 0;
        char *x = tm_test_read_file(a, &sa), *y = tm_test_read_file(b, &sb);
        cr_assert(x && y && sa == sb && !memcmp(x, y, sa), "%s differs between one run and merged shards", files[f]);
        free(x), free(y), free(a), free(b);
    }
    /* Resume: a third of the stored samples removed (as a run killed
     * midway leaves them missing), --resume computes just those and the
     * exports come back byte for byte. */
    char *store = tm_test_path(run, "run.sqlite");
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(store, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "DELETE FROM samples WHERE id % 3 = 1", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_changes(db), 6);
    sqlite3_close(db);
    r = tm_test_cli("eval '%s' --out '%s' --resume", task, run);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    for (int f = 0; f < 2; f++) {
        char *a = tm_test_path(run, files[f]), *b = tm_test_path(merged, files[f]);
        size_t sa = 0, sb = 0;
        char *x = tm_test_read_file(a, &sa), *y = tm_test_read_file(b, &sb);
        cr_assert(x && y && sa == sb && !memcmp(x, y, sa), "%s differs after the resume", files[f]);
        free(x), free(y), free(a), free(b);
    }
    free(store);
    free(s0), free(s1), free(merged), free(results_path), free(run), free(task), free(dir);
}

static void expect_error(const char *dir, const char *name, const char *extra, const char *want) {
    char *task = write_task(dir, name, extra), *run = tm_test_path(dir, "never");
    tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s'", task, run);
    cr_assert_eq(r.code, 1, "%s: %s", name, r.err);
    cr_assert(strstr(r.err, want), "%s: expected '%s' in: %s", name, want, r.err);
    cr_assert(access(run, F_OK) != 0, "%s: a failed task must not create its run folder", name);
    tm_test_cli_free(&r);
    free(task), free(run);
}

Test(zeroshot_task, bad_task_files_name_line_and_field) {
    char *dir = tm_test_scratch_dir();
    /* The first line of `extra` is line 7 of the file (6 header lines). */
    expect_error(dir, "unknown", "humans: 5\n", "unknown.yaml:7: humans: unknown key");
    expect_error(dir, "method", "methods: [likelihood, detectgpt]\n", ":7: methods: unknown method 'detectgpt'");
    expect_error(dir, "twice", "methods: [entropy, entropy]\n", ":7: methods: 'entropy' listed twice");
    expect_error(dir, "human", "human: 0\n", ":7: human: must be an integer in [1, 1000000], got 0");
    expect_error(dir, "paraphrase", "paraphrase: 1.5\n", ":7: paraphrase: must be a number in [0, 1], got 1.5");
    expect_error(dir, "lengths", "lengths: [32, 16]\n", ":7: lengths: must increase");
    expect_error(dir, "scheme", "schemes: [no-such-scheme.yaml]\n", ":7: schemes:");
    expect_error(dir, "toomany", "human: 1000000\n", "human: 1000000 texts asked");
    free(dir);
}

/* Binoculars without a performer is refused at parse time; without one the
 * default methods leave Binoculars out. */
Test(zeroshot_task, binoculars_needs_a_performer) {
    char *dir = tm_test_scratch_dir(), *model = tm_fixture("models/stories260K.gguf"), *data = tm_fixture("data");
    char text[4096];
    snprintf(text, sizeof text, "kind: zero_shot\nname: nb\nseed: 1\nmodel: %s\nmethods: [binoculars]\n", model);
    char *path = tm_test_path(dir, "nb.yaml");
    cr_assert_eq(tm_test_write_file(path, text, strlen(text)), 0);
    tm_eval_task task;
    tm_error err = {0};
    cr_assert_eq(tm_eval_task_load(&task, path, true, &err), TM_ERR_FORMAT);
    cr_assert(strstr(err.message, "nb.yaml:5: methods: binoculars needs a performer"), "%s", err.message);
    snprintf(text, sizeof text, "kind: zero_shot\nname: nb\nseed: 1\nmodel: %s\ndata_dir: %s\n", model, data);
    cr_assert_eq(tm_test_write_file(path, text, strlen(text)), 0);
    cr_assert_eq(tm_eval_task_load(&task, path, true, &err), TM_OK, "%s", err.message);
    cr_assert_eq(task.kind, TM_EVAL_KIND_ZERO_SHOT);
    cr_assert_str_eq(tm_eval_kind_name(task.kind), "zero_shot");
    cr_assert_eq(task.zs_methods, (1u << TM_ZEROSHOT_METHOD_COUNT) - 1 - (1u << TM_ZEROSHOT_BINOCULARS));
    tm_eval_task_free(&task);
    remove(path);
    free(path), free(model), free(data), free(dir);
}

Test(zeroshot_task, shipped_task_files_parse) {
    const char *files[2] = {TRACEMARK_SOURCE_DIR "/configs/tasks/zero-shot.yaml",
                            TRACEMARK_SOURCE_DIR "/configs/tasks/zero-shot-smoke.yaml"};
    for (int f = 0; f < 2; f++) {
        const char *path = files[f];
        tm_eval_task task;
        tm_error err = {0};
        cr_assert_eq(tm_eval_task_load(&task, path, false, &err), TM_OK, "%s: %s", files[f], err.message);
        cr_assert_eq(task.kind, TM_EVAL_KIND_ZERO_SHOT);
        cr_assert(task.zs_methods & (1u << TM_ZEROSHOT_BINOCULARS), "%s names a performer", files[f]);
        cr_assert_geq(task.n_schemes, 1);
        tm_eval_task_free(&task);
    }
}

/* performer_quantize: Binoculars' performer made at run time, the model's
 * GGUF through tm_quantize_file. The stored Binoculars score is the room's
 * score with a performer quantized here the same way (the same bits), and
 * it is not the score with the observer's own weights as performer (the
 * copy is close to the observer but not the same model). An unknown type,
 * or a source that is not a GGUF, is an error naming the field. */
Test(zeroshot_task, performer_quantize_makes_the_performer_at_run_time, .timeout = 120) {
    char *dir = tm_test_scratch_dir(), *gguf = tm_fixture("models/stories260K.gguf"), *data = tm_fixture("data");
    char *path = tm_test_path(dir, "pq.yaml"), *run = tm_test_path(dir, "pq-run"), text[4096];
    snprintf(text, sizeof text,
             "kind: zero_shot\nname: pq\nseed: 3\nmodel: %s\ndata_dir: %s\nperformer_quantize: Q4_0\n"
             "methods: [binoculars]\nhuman: 3\nchatgpt: 0\ngenerated: 0\nbootstrap: 10\n",
             gguf, data);
    cr_assert_eq(tm_test_write_file(path, text, strlen(text)), 0);
    tm_test_cli_result r = tm_test_cli("eval '%s' --out '%s' --threads 1", path, run);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    size_t n = 0;
    json_t *samples = load_lines(run, &n);
    cr_assert_eq(n, 3);

    char *quantized = tm_test_path(dir, "pq-performer.gguf");
    tm_quantize_options qo = {.ftype = TM_FTYPE_Q4_0, .n_threads = 2};
    tm_error err = {0};
    cr_assert_eq(tm_quantize_file(gguf, quantized, &qo, &err), TM_OK, "%s", err.message);
    tm_model *model = NULL, *performer = NULL;
    tm_tokenizer *tokenizer = NULL;
    cr_assert_eq(tm_model_load(&model, gguf, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_tokenizer(&tokenizer, model, NULL, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_load(&performer, quantized, &err), TM_OK, "%s", err.message);
    const tm_model *performers[2] = {performer, model};
    tm_zeroshot *z[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        tm_zeroshot_options o = {.method = TM_ZEROSHOT_BINOCULARS, .model = model, .tokenizer = tokenizer,
                                 .performer = performers[k], .n_threads = 1, .slide = true};
        cr_assert_eq(tm_zeroshot_create(&z[k], &o, &err), TM_OK, "%s", err.message);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(samples, i);
        const char *t = json_string_value(json_object_get(json_object_get(s, "output"), "text"));
        double stored = num(json_object_get(
            json_object_get(json_object_get(json_object_get(s, "scores"), "zero_shot"), "binoculars"), "score"));
        tm_zeroshot_result q, self;
        cr_assert_eq(tm_zeroshot_score_text(z[0], t, strlen(t), &q, &err), TM_OK, "%s", err.message);
        cr_assert_eq(tm_zeroshot_score_text(z[1], t, strlen(t), &self, &err), TM_OK, "%s", err.message);
        cr_assert_float_eq(stored, q.score.score, 1e-9 * fabs(q.score.score), "sample %zu", i);
        cr_assert_gt(fabs(q.score.score - self.score.score), 1e-4, "sample %zu: the Q4_0 copy scores as the observer",
                     i);
        tm_zeroshot_result_free(&q);
        tm_zeroshot_result_free(&self);
    }
    for (int k = 0; k < 2; k++) tm_zeroshot_free(z[k]);
    tm_tokenizer_free(tokenizer);
    tm_model_free(model), tm_model_free(performer);
    json_decref(samples);

    /* Refusals: an unknown type at parse time, a llama2.c source at run time. */
    expect_error(dir, "pqtype", "performer_quantize: Q3_X\n", ":7: performer_quantize: unknown type 'Q3_X'");
    expect_error(dir, "pqbin", "performer_quantize: Q8_0\nhuman: 2\nchatgpt: 0\ngenerated: 0\n",
                 "not a GGUF file");
    free(quantized), free(path), free(run), free(gguf), free(data), free(dir);
}
