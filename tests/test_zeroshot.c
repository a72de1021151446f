/* Tests of the zero-shot detectors (zeroshot/): every formula on tiny
 * distributions computed by hand; every method's score on 20 texts against a
 * direct computation from llama.cpp's distributions on the same ids
 * (tests/data/zeroshot/stories260K-dist.jsonl, written by the peer tool
 * `llamaref ... dist`, see docs/zero-shot.md for the command); the sliding
 * window against a direct evaluation of the window's tokens; the threshold
 * at a false-positive rate; bad inputs (empty text, a text longer than the
 * window, models of different vocabularies); and the CLI's contract (--json
 * fields, --jsonl error records, --threshold and --calibration decisions,
 * exit codes). The models are stories260K.gguf (llama.cpp's conversion, F32)
 * and, as Binoculars' performer, a random F32 model of the same vocabulary
 * that tm_synth_write makes here byte for byte as llama.cpp read it. */
#include "fixtures.h"
#include "tracemark/zeroshot.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ======================================================================== */
/* Formulas on hand-computed distributions                                  */
/* ======================================================================== */

static void assert_close(double got, double want, double tolerance, const char *what) {
    cr_assert(fabs(got - want) <= tolerance, "%s: got %.12g, want %.12g", what, got, want);
}

/* p = (1/2, 1/4, 1/4), q = (1/4, 1/4, 1/2), p2 uniform over 3; target 1.
 * With L = ln 2: log p = (-L, -2L, -2L). Entropy 1.5L; E_p[(log p)^2] =
 * (1/2 + 2) L^2 = 2.5 L^2, so Var_p = 0.25 L^2. Under q: mean = -(1/4 + 1/2 +
 * 1) L = -1.75 L, E_q[(log p)^2] = (1/4 + 1 + 2) L^2 = 3.25 L^2, variance
 * 3.25 - 3.0625 = 0.1875 L^2. Token 1 ties token 2 and is beaten by token 0
 * only: rank 2. log p2(1) = -ln 3; cross-entropy -sum p log p2 = ln 3. */
Test(zeroshot_formulas, one_distribution_by_hand) {
    const double L = log(2.0);
    float p[3] = {(float)log(0.5), (float)log(0.25), (float)log(0.25)};
    /* Logits are defined up to a constant: shift q's and p2's to prove it. */
    float q[3] = {(float)log(0.25) + 3.0f, (float)log(0.25) + 3.0f, (float)log(0.5) + 3.0f};
    float p2[3] = {-7.0f, -7.0f, -7.0f};
    tm_zeroshot_position pos;
    tm_error err = {0};
    cr_assert_eq(tm_zeroshot_position_stats(p, NULL, NULL, 3, 1, &pos, &err), TM_OK, "%s", err.message);
    assert_close(pos.log_prob, -2 * L, 1e-6, "log p");
    assert_close(pos.rank, 2, 0, "rank");
    assert_close(pos.entropy, 1.5 * L, 1e-6, "entropy");
    assert_close(pos.expected_log_prob, -1.5 * L, 1e-6, "mean under p");
    assert_close(pos.variance_log_prob, 0.25 * L * L, 1e-6, "variance under p");
    cr_assert(isnan(pos.performer_log_prob) && isnan(pos.cross_entropy));
    cr_assert_eq(tm_zeroshot_position_stats(p, q, p2, 3, 1, &pos, &err), TM_OK, "%s", err.message);
    assert_close(pos.expected_log_prob, -1.75 * L, 1e-6, "mean under q");
    assert_close(pos.variance_log_prob, 0.1875 * L * L, 1e-6, "variance under q");
    assert_close(pos.performer_log_prob, -log(3.0), 1e-6, "log p2");
    assert_close(pos.cross_entropy, log(3.0), 1e-6, "cross-entropy");
    cr_assert_eq(tm_zeroshot_position_stats(p, NULL, NULL, 3, 0, &pos, &err), TM_OK);
    assert_close(pos.rank, 1, 0, "rank of the top token");
    cr_assert_eq(tm_zeroshot_position_stats(p, NULL, NULL, 3, 3, &pos, &err), TM_ERR_ARGUMENT);
    float bad[3] = {0, NAN, 0};
    cr_assert_eq(tm_zeroshot_position_stats(bad, NULL, NULL, 3, 0, &pos, &err), TM_ERR_FORMAT);
}

/* Two positions with chosen facts; each method's score written out. */
Test(zeroshot_formulas, scores_by_hand) {
    tm_zeroshot_position pos[2] = {
        {.log_prob = -1.0, .rank = 1, .entropy = 0.5, .expected_log_prob = -0.5, .variance_log_prob = 0.25,
         .performer_log_prob = -2.0, .cross_entropy = 1.5},
        {.log_prob = -3.0, .rank = 4, .entropy = 2.5, .expected_log_prob = -2.0, .variance_log_prob = 0.75,
         .performer_log_prob = -4.0, .cross_entropy = 2.5},
    };
    tm_zeroshot_score s;
    tm_error err = {0};
    cr_assert_eq(tm_zeroshot_score_positions(TM_ZEROSHOT_LIKELIHOOD, pos, 2, &s, &err), TM_OK);
    assert_close(s.score, -2.0, 1e-12, "likelihood: (-1 - 3) / 2");
    cr_assert_eq(tm_zeroshot_score_positions(TM_ZEROSHOT_LOG_RANK, pos, 2, &s, &err), TM_OK);
    assert_close(s.score, -(log(1.0) + log(4.0)) / 2, 1e-12, "log-rank: -(ln 1 + ln 4) / 2");
    cr_assert_eq(tm_zeroshot_score_positions(TM_ZEROSHOT_ENTROPY, pos, 2, &s, &err), TM_OK);
    assert_close(s.score, 1.5, 1e-12, "entropy: (0.5 + 2.5) / 2");
    cr_assert_eq(tm_zeroshot_score_positions(TM_ZEROSHOT_FAST_DETECTGPT, pos, 2, &s, &err), TM_OK);
    assert_close(s.score, (-4.0 - -2.5) / sqrt(1.0), 1e-12, "fast-detectgpt: (-4 + 2.5) / sqrt(0.25 + 0.75)");
    cr_assert_eq(tm_zeroshot_score_positions(TM_ZEROSHOT_BINOCULARS, pos, 2, &s, &err), TM_OK);
    assert_close(s.score, 3.0 / 2.0, 1e-12, "binoculars: ((2 + 4) / 2) / ((1.5 + 2.5) / 2)");
    cr_assert(!s.higher_is_machine);
    /* Undefined cases are errors, never numbers. */
    cr_assert_eq(tm_zeroshot_score_positions(TM_ZEROSHOT_LIKELIHOOD, pos, 0, &s, &err), TM_ERR_ARGUMENT);
    tm_zeroshot_position certain = {.log_prob = 0, .rank = 1, .performer_log_prob = NAN, .cross_entropy = NAN};
    cr_assert_eq(tm_zeroshot_score_positions(TM_ZEROSHOT_FAST_DETECTGPT, &certain, 1, &s, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "zero variance"), "%s", err.message);
    cr_assert_eq(tm_zeroshot_score_positions(TM_ZEROSHOT_BINOCULARS, &certain, 1, &s, &err), TM_ERR_ARGUMENT);
}

Test(zeroshot_formulas, names_and_directions) {
    tm_zeroshot_method m;
    for (int i = 0; i < TM_ZEROSHOT_METHOD_COUNT; i++) {
        cr_assert(tm_zeroshot_method_parse(tm_zeroshot_method_name((tm_zeroshot_method)i), &m));
        cr_assert_eq((int)m, i);
    }
    cr_assert(!tm_zeroshot_method_parse("detectgpt", &m));
    cr_assert(tm_zeroshot_higher_is_machine(TM_ZEROSHOT_FAST_DETECTGPT));
    cr_assert(!tm_zeroshot_higher_is_machine(TM_ZEROSHOT_ENTROPY));
    cr_assert(tm_zeroshot_is_machine(TM_ZEROSHOT_LIKELIHOOD, -1.0, -2.0));
    cr_assert(!tm_zeroshot_is_machine(TM_ZEROSHOT_LIKELIHOOD, -2.0, -2.0));
    cr_assert(tm_zeroshot_is_machine(TM_ZEROSHOT_BINOCULARS, 0.8, 0.9));
}

/* Ten human scores 1..10: at FPR 0.1 one may lie beyond the threshold, so it
 * is the second largest (9) and exactly one (10) is beyond it; at FPR 0 the
 * largest. For a lower-is-machine method the same from the other end. */
Test(zeroshot_formulas, threshold_at_fpr) {
    double human[10] = {3, 1, 4, 10, 5, 9, 2, 6, 8, 7}, t, achieved;
    tm_error err = {0};
    cr_assert_eq(tm_zeroshot_threshold_at_fpr(TM_ZEROSHOT_LIKELIHOOD, human, 10, 0.1, &t, &achieved, &err), TM_OK);
    assert_close(t, 9, 0, "threshold at 10%");
    assert_close(achieved, 0.1, 1e-12, "achieved");
    cr_assert_eq(tm_zeroshot_threshold_at_fpr(TM_ZEROSHOT_LIKELIHOOD, human, 10, 0.0, &t, &achieved, &err), TM_OK);
    assert_close(t, 10, 0, "threshold at 0%");
    assert_close(achieved, 0, 0, "achieved");
    cr_assert_eq(tm_zeroshot_threshold_at_fpr(TM_ZEROSHOT_BINOCULARS, human, 10, 0.25, &t, &achieved, &err), TM_OK);
    assert_close(t, 3, 0, "lower-is-machine threshold at 25%: two (1, 2) below it");
    assert_close(achieved, 0.2, 1e-12, "achieved");
    cr_assert_eq(tm_zeroshot_threshold_at_fpr(TM_ZEROSHOT_LIKELIHOOD, human, 0, 0.1, &t, &achieved, &err),
                 TM_ERR_ARGUMENT);
    double with_nan[2] = {1, NAN};
    cr_assert_eq(tm_zeroshot_threshold_at_fpr(TM_ZEROSHOT_LIKELIHOOD, with_nan, 2, 0.1, &t, &achieved, &err),
                 TM_ERR_ARGUMENT);
}

/* ======================================================================== */
/* Against llama.cpp's distributions                                        */
/* ======================================================================== */

/* The formulas alone, on llama.cpp's own logits: ../shared/reference holds
 * llama.cpp's full logits after "Once upon a time" and a few greedy steps
 * (stories260K, 512 tokens; llama-2-tiny-random, 32000 tokens with nearly
 * flat distributions, whose variance of log p, 0.003 against log p of -10,
 * is where cancellation would show). llamaref's `dist` on the same ids gave
 * log p, rank, entropy and variance at those positions; our
 * tm_zeroshot_position_stats on the printed logits must agree to their
 * printing precision (6 significant digits: 5e-5 on a logit of -10). */
Test(zeroshot_llama_cpp, formulas_on_llama_cpp_logits) {
    char *path = tm_test_data_path("zeroshot/reference-logits-dist.jsonl");
    size_t size = 0;
    char *raw = tm_test_read_file(path, &size);
    cr_assert_not_null(raw, "%s", path);
    char *save = NULL;
    int files = 0, checked = 0;
    for (char *line = strtok_r(raw, "\n", &save); line; line = strtok_r(NULL, "\n", &save), files++) {
        json_error_t jerr;
        json_t *record = json_loads(line, 0, &jerr);
        cr_assert_not_null(record, "%s", jerr.text);
        json_t *ids = json_object_get(record, "ids"), *positions = json_object_get(record, "positions");
        char *logits_path = tm_fixture(json_string_value(json_object_get(record, "logits")));
        json_t *steps = json_load_file(logits_path, JSON_DISABLE_EOF_CHECK, &jerr); /* first line: header */
        cr_assert_not_null(steps, "%s: %s", logits_path, jerr.text);
        size_t n_prompt = json_array_size(json_object_get(steps, "prompt_ids"));
        int32_t n_vocab = (int32_t)json_integer_value(json_object_get(steps, "n_vocab"));
        json_decref(steps);
        size_t text_size = 0;
        char *text = tm_test_read_file(logits_path, &text_size);
        cr_assert_not_null(text);
        char *line_save = NULL;
        float *logits = calloc((size_t)n_vocab, sizeof *logits);
        size_t step = 0;
        for (char *l = strtok_r(text, "\n", &line_save); l; l = strtok_r(NULL, "\n", &line_save)) {
            json_t *s = json_loads(l, 0, &jerr);
            cr_assert_not_null(s);
            json_t *all = json_object_get(s, "logits");
            if (all) {
                cr_assert_eq(json_array_size(all), (size_t)n_vocab);
                for (int32_t v = 0; v < n_vocab; v++) logits[v] = (float)json_number_value(json_array_get(all, (size_t)v));
                size_t position = n_prompt - 1 + step;
                int32_t target = (int32_t)json_integer_value(json_array_get(ids, position + 1));
                cr_assert_eq(target, json_integer_value(json_object_get(s, "id")));
                json_t *want = json_array_get(positions, position);
                tm_zeroshot_position got;
                tm_error err = {0};
                cr_assert_eq(tm_zeroshot_position_stats(logits, NULL, NULL, n_vocab, target, &got, &err), TM_OK);
                assert_close(got.log_prob, json_number_value(json_object_get(want, "lp")), 1e-4, "log p");
                assert_close(got.entropy, json_number_value(json_object_get(want, "entropy")), 1e-4, "entropy");
                double var = json_number_value(json_object_get(want, "var"));
                assert_close(got.variance_log_prob, var, 1e-4 + 1e-2 * var, "variance of log p");
                cr_assert_eq(got.rank, json_number_value(json_object_get(want, "rank")));
                step++;
                checked++;
            }
            json_decref(s);
        }
        cr_assert_gt(step, 2);
        free(logits);
        free(text);
        free(logits_path);
        json_decref(record);
    }
    cr_assert_eq(files, 2);
    cr_assert_eq(checked, 7);
    free(raw);
    free(path);
}

/* The performer: a random F32 model with stories260K's tokenizer, as
 * `tracemark model synth --like llama2-110m --dim 64 --layers 2 --heads 4
 * --kv-heads 4 --hidden 172 --ctx 128 --tokenizer stories260K.gguf --seed 7`
 * writes it; llama.cpp's reference was computed on the file with this hash. */
static const char performer_sha256[] = "7ee866c01049c3adfd52068e30e2cda3c2146c13d0227ab6a9d185908b93a15d";

typedef struct {
    char *scratch, *performer_path;
    tm_model *model, *performer;
    tm_tokenizer *tokenizer, *performer_tokenizer;
} models;

static models models_open(void) {
    models m = {0};
    tm_error err = {0};
    char *gguf = tm_fixture("models/stories260K.gguf");
    cr_assert_eq(tm_model_load(&m.model, gguf, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_tokenizer(&m.tokenizer, m.model, NULL, &err), TM_OK, "%s", err.message);
    m.scratch = tm_test_scratch_dir();
    m.performer_path = tm_test_path(m.scratch, "performer.gguf");
    tm_synth_options options = {.tokenizer_path = gguf, .ftype = TM_FTYPE_ALL_F32, .seed = 7, .n_threads = 1};
    cr_assert(tm_synth_lookup("llama2-110m", &options.shape));
    options.shape.dim = 64, options.shape.n_layers = 2, options.shape.n_heads = 4, options.shape.n_kv_heads = 4;
    options.shape.hidden_dim = 172, options.shape.context_length = 128;
    cr_assert_eq(tm_synth_write(m.performer_path, &options, &err), TM_OK, "%s", err.message);
    char hex[TM_SHA256_HEX_SIZE];
    cr_assert_eq(tm_sha256_file_hex(m.performer_path, hex, &err), TM_OK);
    cr_assert_str_eq(hex, performer_sha256, "the performer is not the file llama.cpp's reference was computed on");
    cr_assert_eq(tm_model_load(&m.performer, m.performer_path, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_tokenizer(&m.performer_tokenizer, m.performer, NULL, &err), TM_OK, "%s", err.message);
    free(gguf);
    return m;
}

static void models_close(models *m) {
    tm_tokenizer_free(m->tokenizer);
    tm_tokenizer_free(m->performer_tokenizer);
    tm_model_free(m->model);
    tm_model_free(m->performer);
    remove(m->performer_path);
    rmdir(m->scratch);
    free(m->performer_path);
    free(m->scratch);
}

static tm_zeroshot *open_method(const models *m, tm_zeroshot_method method, int32_t n_ctx, bool slide) {
    tm_zeroshot_options o = {.method = method, .model = m->model, .tokenizer = m->tokenizer,
                             .performer = m->performer, .performer_tokenizer = m->performer_tokenizer,
                             .n_ctx = n_ctx, .n_threads = 1, .slide = slide};
    tm_zeroshot *z = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_zeroshot_create(&z, &o, &err), TM_OK, "%s", err.message);
    return z;
}

/* The method's score written out from llama.cpp's per-position facts, the
 * way docs/zero-shot.md states each formula. */
static double reference_score(tm_zeroshot_method method, json_t *positions) {
    size_t n = json_array_size(positions);
    double lp = 0, log_rank = 0, entropy = 0, var = 0, lp2 = 0, xent = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(positions, i);
        lp += json_number_value(json_object_get(p, "lp"));
        log_rank += log(json_number_value(json_object_get(p, "rank")));
        entropy += json_number_value(json_object_get(p, "entropy"));
        var += json_number_value(json_object_get(p, "var"));
        lp2 += json_number_value(json_object_get(p, "lp2"));
        xent += json_number_value(json_object_get(p, "xent"));
    }
    switch (method) {
    case TM_ZEROSHOT_LIKELIHOOD: return lp / (double)n;
    case TM_ZEROSHOT_LOG_RANK: return -log_rank / (double)n;
    case TM_ZEROSHOT_ENTROPY: return entropy / (double)n;
    case TM_ZEROSHOT_FAST_DETECTGPT: return (lp - -entropy) / sqrt(var); /* mu_t = -H_t when q = p */
    case TM_ZEROSHOT_BINOCULARS: return (-lp2 / (double)n) / (xent / (double)n);
    default: cr_assert_fail("method"); return NAN;
    }
}

/* The whole path (our forward pass, then the formulas) against llama.cpp's
 * forward pass and llamaref's formulas, on 20 texts of 50-120 tokens (8
 * stories260K samples, 6 TruthfulQA question+answer, 6 HaluEval passages),
 * with llama.cpp's KV cache in F32 and flash attention off
 * (tests/data/make_zeroshot_dist.sh says why: its default F16 cache moved
 * log p by up to 0.035 and 22 of 1549 ranks). Measured: per position log p
 * within 1.5e-5 and every rank equal; worst relative score difference
 * likelihood 5.2e-7, log-rank 0, entropy 2.2e-7, Fast-DetectGPT 1.3e-5,
 * Binoculars 6.9e-9. Every method is asserted at the 1e-3, each
 * position to 1e-3, and ranks (tied logits share the better rank, here and
 * in llamaref: 1 + the count of strictly larger logits) to be equal but for
 * at most 1% of positions, for two logits within float rounding of the
 * target's on another machine's summation order. */
static const double score_tolerance[TM_ZEROSHOT_METHOD_COUNT] = {1e-3, 1e-3, 1e-3, 1e-3, 1e-3};
Test(zeroshot_llama_cpp, every_method_on_twenty_texts, .timeout = 300) {
    models m = models_open();
    char *path = tm_test_data_path("zeroshot/stories260K-dist.jsonl");
    json_error_t jerr;
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    tm_zeroshot *z[TM_ZEROSHOT_METHOD_COUNT];
    for (int k = 0; k < TM_ZEROSHOT_METHOD_COUNT; k++) z[k] = open_method(&m, (tm_zeroshot_method)k, 0, false);
    char *line = NULL;
    size_t capacity = 0, texts = 0;
    double worst_relative[TM_ZEROSHOT_METHOD_COUNT] = {0}, worst_lp = 0, worst_var = 0;
    size_t rank_mismatches = 0, positions_total = 0;
    while (getline(&line, &capacity, f) > 0) {
        json_t *record = json_loads(line, 0, &jerr);
        cr_assert_not_null(record, "%s: %s", path, jerr.text);
        json_t *ids_json = json_object_get(record, "ids"), *positions = json_object_get(record, "positions");
        size_t n = json_array_size(ids_json);
        cr_assert_eq(json_array_size(positions), n - 1);
        int32_t *ids = calloc(n, sizeof *ids);
        for (size_t i = 0; i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(ids_json, i));
        for (int k = 0; k < TM_ZEROSHOT_METHOD_COUNT; k++) {
            tm_zeroshot_result r;
            tm_error err = {0};
            cr_assert_eq(tm_zeroshot_score_ids(z[k], ids, n, &r, &err), TM_OK, "%s", err.message);
            cr_assert_eq(r.n_windows, 1);
            double want = reference_score((tm_zeroshot_method)k, positions);
            double relative = fabs(r.score.score - want) / fmax(fabs(want), 1e-12);
            cr_assert(relative <= score_tolerance[k], "%s, text %zu: score %.9g, llama.cpp's distributions give %.9g",
                      tm_zeroshot_method_name((tm_zeroshot_method)k), texts, r.score.score, want);
            if (relative > worst_relative[k]) worst_relative[k] = relative;
            if (k == TM_ZEROSHOT_BINOCULARS) {
                for (size_t i = 0; i + 1 < n; i++) {
                    json_t *p = json_array_get(positions, i);
                    const tm_zeroshot_position *mine = &r.positions[i];
                    double d_lp = fabs(mine->log_prob - json_number_value(json_object_get(p, "lp")));
                    double d_var = fabs(mine->variance_log_prob - json_number_value(json_object_get(p, "var")));
                    assert_close(mine->entropy, json_number_value(json_object_get(p, "entropy")), 1e-3, "entropy");
                    assert_close(mine->performer_log_prob, json_number_value(json_object_get(p, "lp2")), 1e-3,
                                 "performer log p");
                    assert_close(mine->cross_entropy, json_number_value(json_object_get(p, "xent")), 1e-3,
                                 "cross-entropy");
                    cr_assert(d_lp <= 1e-3 && d_var <= 1e-3, "text %zu position %zu: lp off by %.3g, var by %.3g",
                              texts, i, d_lp, d_var);
                    rank_mismatches += mine->rank != json_number_value(json_object_get(p, "rank"));
                    if (d_lp > worst_lp) worst_lp = d_lp;
                    if (d_var > worst_var) worst_var = d_var;
                    positions_total++;
                }
            }
            tm_zeroshot_result_free(&r);
        }
        free(ids);
        json_decref(record);
        texts++;
    }
    cr_assert_eq(texts, 20, "%s: %zu texts", path, texts);
    /* Fast-DetectGPT with a separate reference model: stories260K samples (q),
     * the random model scores (p). llama.cpp's file has, with stories260K as
     * its first model and the random one as its second, lp2 = log p(x_t) and
     * xent = -sum q log p = -mu_t, so the numerator sum (log p - mu) is
     * sum (lp2 + xent); the variance under q has no counterpart there and is
     * checked by hand above. */
    tm_zeroshot_options reference_options = {.method = TM_ZEROSHOT_FAST_DETECTGPT, .model = m.performer,
                                             .tokenizer = m.performer_tokenizer, .reference = m.model,
                                             .reference_tokenizer = m.tokenizer, .n_threads = 1};
    tm_zeroshot *with_reference = NULL;
    tm_error create_err = {0};
    cr_assert_eq(tm_zeroshot_create(&with_reference, &reference_options, &create_err), TM_OK, "%s",
                 create_err.message);
    rewind(f);
    double worst_numerator = 0;
    for (size_t t = 0; getline(&line, &capacity, f) > 0; t++) {
        json_t *record = json_loads(line, 0, &jerr);
        json_t *ids_json = json_object_get(record, "ids"), *positions = json_object_get(record, "positions");
        size_t n = json_array_size(ids_json);
        int32_t *ids = calloc(n, sizeof *ids);
        for (size_t i = 0; i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(ids_json, i));
        double want = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            json_t *p = json_array_get(positions, i);
            want += json_number_value(json_object_get(p, "lp2")) + json_number_value(json_object_get(p, "xent"));
        }
        tm_zeroshot_result r;
        tm_error err = {0};
        cr_assert_eq(tm_zeroshot_score_ids(with_reference, ids, n, &r, &err), TM_OK, "%s", err.message);
        /* The sum cancels (terms of +-6 summing to about -0.4), so it is held
         * to an absolute bound; each mu_t to the per-position bound above. */
        for (size_t i = 0; i + 1 < n; i++) {
            double xent = json_number_value(json_object_get(json_array_get(positions, i), "xent"));
            assert_close(r.positions[i].expected_log_prob, -xent, 1e-3, "mu_t under the reference model");
        }
        double difference = fabs(r.score.discrepancy_numerator - want);
        cr_assert(difference <= 1e-3, "text %zu: sum(log p - mu) %.9g, llama.cpp's %.9g", t,
                  r.score.discrepancy_numerator, want);
        if (difference > worst_numerator) worst_numerator = difference;
        tm_zeroshot_result_free(&r);
        free(ids);
        json_decref(record);
    }
    cr_log_info("fast-detectgpt with a reference model: worst absolute difference of sum(log p - mu) %.3g",
                worst_numerator);
    tm_zeroshot_free(with_reference);
    /* A rank may differ only where two logits are within rounding. */
    cr_assert(rank_mismatches * 100 <= positions_total, "%zu of %zu ranks differ", rank_mismatches, positions_total);
    for (int k = 0; k < TM_ZEROSHOT_METHOD_COUNT; k++)
        cr_log_info("%s: worst relative difference from llama.cpp %.3g", tm_zeroshot_method_name((tm_zeroshot_method)k),
                    worst_relative[k]);
    cr_log_info("per position: worst |d log p| %.3g, |d var| %.3g; %zu of %zu ranks differ", worst_lp, worst_var,
                rank_mismatches, positions_total);
    for (int k = 0; k < TM_ZEROSHOT_METHOD_COUNT; k++) tm_zeroshot_free(z[k]);
    free(line);
    fclose(f);
    free(path);
    models_close(&m);
}

/* ======================================================================== */
/* Windows and bad inputs                                                   */
/* ======================================================================== */

static const char story[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. One day, she saw a "
    "big red ball in the park. She ran to get it, but a dog took it first. Lily was sad, but the dog came back.";

/* Window 16: predictions 0..15 see the whole prefix; each later window starts
 * 8 tokens back and scores 8 more. A later window's position must equal a
 * direct run of exactly its tokens, and the first window's the full run. */
Test(zeroshot_windows, slide_scores_every_token_once) {
    models m = models_open();
    tm_zeroshot *full = open_method(&m, TM_ZEROSHOT_FAST_DETECTGPT, 0, false);
    tm_zeroshot *slid = open_method(&m, TM_ZEROSHOT_FAST_DETECTGPT, 16, true);
    tm_zeroshot *refuse = open_method(&m, TM_ZEROSHOT_FAST_DETECTGPT, 16, false);
    int32_t *ids = NULL;
    size_t n = 0;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_encode(m.tokenizer, story, strlen(story), true, &ids, &n, &err), TM_OK);
    cr_assert(n > 40 && n <= 128, "%zu tokens", n);
    tm_zeroshot_result a, b, c;
    cr_assert_eq(tm_zeroshot_score_ids(full, ids, n, &a, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_zeroshot_score_ids(slid, ids, n, &b, &err), TM_OK, "%s", err.message);
    size_t predictions = n - 1, expected_windows = 1 + (predictions - 16 + 7) / 8;
    cr_assert_eq(b.n_windows, expected_windows, "%zu windows for %zu predictions", b.n_windows, predictions);
    cr_assert_eq(b.score.n_scored, predictions);
    /* Equal up to the rounding of batched products of different row counts
     * (one pass of every row against a pass of 16). */
    for (size_t i = 0; i < 16; i++) assert_close(a.positions[i].log_prob, b.positions[i].log_prob, 1e-5, "first window");
    /* Prediction 16 (the second window's first) sees ids[8..16] only. */
    tm_zeroshot_result d;
    cr_assert_eq(tm_zeroshot_score_ids(full, ids + 8, 10, &d, &err), TM_OK, "%s", err.message);
    assert_close(b.positions[16].log_prob, d.positions[8].log_prob, 1e-5, "second window, first position");
    assert_close(b.positions[16].variance_log_prob, d.positions[8].variance_log_prob, 1e-5, "its variance");
    cr_assert_neq(a.positions[16].log_prob, b.positions[16].log_prob, "a truncated context changes the value");
    /* Without sliding, the same text is refused with a message that says why. */
    cr_assert_eq(tm_zeroshot_score_ids(refuse, ids, n, &c, &err), TM_ERR_LIMIT);
    cr_assert(strstr(err.message, "text too long") && strstr(err.message, "window of 16"), "%s", err.message);
    tm_zeroshot_result_free(&a);
    tm_zeroshot_result_free(&b);
    tm_zeroshot_result_free(&d);
    free(ids);
    tm_zeroshot_free(full);
    tm_zeroshot_free(slid);
    tm_zeroshot_free(refuse);
    models_close(&m);
}

/* The prompt path (every window's rows from one tm_context_eval_rows pass)
 * against the decode path (tm_context_eval one position at a time): the same
 * positions, windows and scores, for every method, in one window and in
 * sliding windows of 16. The two differ only in how the products are
 * batched, so per position they agree to float rounding (1e-5 relative). */
Test(zeroshot_windows, prompt_path_equals_decode_path) {
    models m = models_open();
    int32_t *ids = NULL;
    size_t n = 0;
    tm_error err = {0};
    cr_assert_eq(tm_tokenizer_encode(m.tokenizer, story, strlen(story), true, &ids, &n, &err), TM_OK);
    const int32_t windows[2] = {0, 16};
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < TM_ZEROSHOT_METHOD_COUNT; k++) {
            tm_zeroshot_options o = {.method = (tm_zeroshot_method)k, .model = m.model, .tokenizer = m.tokenizer,
                                     .reference = k == TM_ZEROSHOT_FAST_DETECTGPT ? m.performer : NULL,
                                     .reference_tokenizer = m.performer_tokenizer, .performer = m.performer,
                                     .performer_tokenizer = m.performer_tokenizer, .n_ctx = windows[w],
                                     .n_threads = 1, .slide = true};
            tm_zeroshot *rows = NULL, *one = NULL;
            cr_assert_eq(tm_zeroshot_create(&rows, &o, &err), TM_OK, "%s", err.message);
            o.one_position_at_a_time = true;
            cr_assert_eq(tm_zeroshot_create(&one, &o, &err), TM_OK, "%s", err.message);
            tm_zeroshot_result a, b;
            cr_assert_eq(tm_zeroshot_score_ids(rows, ids, n, &a, &err), TM_OK, "%s", err.message);
            cr_assert_eq(tm_zeroshot_score_ids(one, ids, n, &b, &err), TM_OK, "%s", err.message);
            cr_assert_eq(a.n_windows, b.n_windows);
            cr_assert_eq(a.score.n_scored, n - 1);
            for (size_t i = 0; i + 1 < n; i++) {
                const tm_zeroshot_position *x = &a.positions[i], *y = &b.positions[i];
                assert_close(x->log_prob, y->log_prob, 1e-5 * fmax(1.0, fabs(y->log_prob)), "log p");
                assert_close(x->expected_log_prob, y->expected_log_prob, 1e-5 * fmax(1.0, fabs(y->expected_log_prob)),
                             "mu");
                if (k == TM_ZEROSHOT_BINOCULARS)
                    assert_close(x->cross_entropy, y->cross_entropy, 1e-5 * fmax(1.0, fabs(y->cross_entropy)),
                                 "cross-entropy");
            }
            assert_close(a.score.score, b.score.score, 1e-5 * fmax(1.0, fabs(b.score.score)), "score");
            tm_zeroshot_result_free(&a);
            tm_zeroshot_result_free(&b);
            tm_zeroshot_free(rows);
            tm_zeroshot_free(one);
        }
    free(ids);
    models_close(&m);
}

/* A window longer than one pass of rows: a 32000-token vocabulary holds at
 * most 256 rows of logits per pass (32 MiB), so 300 predictions take two
 * passes, the second continuing the cache of the first. Against one
 * position at a time on llama-2-tiny-random, per position within 1e-5. */
Test(zeroshot_windows, rows_in_several_passes) {
    char *path = tm_fixture("models/llama-2-tiny-random.gguf");
    tm_model *model = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_model_load(&model, path, &err), TM_OK, "%s", err.message);
    enum { N = 301 };
    int32_t ids[N];
    uint64_t state = 3;
    for (int i = 0; i < N; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        ids[i] = i == 0 ? 1 : (int32_t)(3 + (state >> 33) % 31997);
    }
    tm_zeroshot_options o = {.method = TM_ZEROSHOT_FAST_DETECTGPT, .model = model, .n_ctx = 512, .n_threads = 1};
    tm_zeroshot *rows = NULL, *one = NULL;
    cr_assert_eq(tm_zeroshot_create(&rows, &o, &err), TM_OK, "%s", err.message);
    o.one_position_at_a_time = true;
    cr_assert_eq(tm_zeroshot_create(&one, &o, &err), TM_OK, "%s", err.message);
    tm_zeroshot_result a, b;
    cr_assert_eq(tm_zeroshot_score_ids(rows, ids, N, &a, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_zeroshot_score_ids(one, ids, N, &b, &err), TM_OK, "%s", err.message);
    cr_assert_eq(a.n_windows, 1);
    size_t rank_moves = 0;
    for (size_t i = 0; i + 1 < N; i++) {
        assert_close(a.positions[i].log_prob, b.positions[i].log_prob, 1e-5 * fmax(1.0, fabs(b.positions[i].log_prob)),
                     "log p");
        assert_close(a.positions[i].variance_log_prob, b.positions[i].variance_log_prob, 1e-5, "variance");
        rank_moves += a.positions[i].rank != b.positions[i].rank;
    }
    /* This model's 32000 logits lie close together: a rank may move where two
     * are within the products' rounding, at most 1% of positions. */
    cr_assert_leq(rank_moves * 100, N - 1, "%zu ranks differ", rank_moves);
    tm_zeroshot_result_free(&a);
    tm_zeroshot_result_free(&b);
    tm_zeroshot_free(rows);
    tm_zeroshot_free(one);
    tm_model_free(model);
    free(path);
}

Test(zeroshot_inputs, empty_text_and_bad_ids) {
    models m = models_open();
    tm_zeroshot *z = open_method(&m, TM_ZEROSHOT_LIKELIHOOD, 0, true);
    tm_zeroshot_result r;
    tm_error err = {0};
    cr_assert_eq(tm_zeroshot_score_text(z, "", 0, &r, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "empty text"), "%s", err.message);
    int32_t bos = 1, out_of_range[2] = {1, 512};
    cr_assert_eq(tm_zeroshot_score_ids(z, &bos, 1, &r, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "empty text"), "%s", err.message);
    cr_assert_eq(tm_zeroshot_score_ids(z, out_of_range, 2, &r, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "outside the vocabulary"), "%s", err.message);
    tm_zeroshot_free(z);
    models_close(&m);
}

Test(zeroshot_inputs, binoculars_needs_one_vocabulary) {
    models m = models_open();
    tm_model *other = NULL;
    tm_tokenizer *other_tokenizer = NULL;
    tm_error err = {0};
    char *llama = tm_fixture("models/llama-2-tiny-random.gguf");
    cr_assert_eq(tm_model_load(&other, llama, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_tokenizer(&other_tokenizer, other, NULL, &err), TM_OK, "%s", err.message);
    tm_zeroshot_options o = {.method = TM_ZEROSHOT_BINOCULARS, .model = m.model, .tokenizer = m.tokenizer,
                             .performer = other, .performer_tokenizer = other_tokenizer, .n_threads = 1};
    tm_zeroshot *z = NULL;
    cr_assert_eq(tm_zeroshot_create(&z, &o, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "vocabularies differ in size (32000"), "%s", err.message);
    cr_assert_null(z);
    o.performer = NULL;
    cr_assert_eq(tm_zeroshot_create(&z, &o, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "performer"), "%s", err.message);
    tm_tokenizer_free(other_tokenizer);
    tm_model_free(other);
    free(llama);
    models_close(&m);
}

/* ======================================================================== */
/* The CLI                                                                  */
/* ======================================================================== */

static json_t *parse_json(const char *text) {
    json_error_t jerr;
    json_t *value = json_loads(text, JSON_DISABLE_EOF_CHECK, &jerr);
    cr_assert_not_null(value, "not JSON (%s): %s", jerr.text, text);
    return value;
}

Test(zeroshot_cli, json_threshold_and_exit_codes) {
    char *dir = tm_test_scratch_dir(), *text = tm_test_path(dir, "story.txt");
    cr_assert_eq(tm_test_write_file(text, story, strlen(story)), 0);
    char *gguf = tm_fixture("models/stories260K.gguf");
    tm_test_cli_result r = tm_test_cli("detect --zero-shot fast-detectgpt --model '%s' --threads 1 --json '%s'",
                                       gguf, text);
    cr_assert_eq(r.code, 0, "%s", r.err);
    json_t *v = parse_json(r.out);
    cr_assert_str_eq(json_string_value(json_object_get(v, "method")), "fast-detectgpt");
    cr_assert(json_is_null(json_object_get(v, "decision")));
    cr_assert(json_is_false(json_object_get(v, "calibrated")));
    cr_assert(strstr(json_string_value(json_object_get(v, "note")), "uncalibrated"));
    cr_assert_null(json_object_get(v, "p_value"), "no p-value is ever invented");
    double score = json_number_value(json_object_get(v, "score"));
    json_decref(v);
    tm_test_cli_free(&r);
    /* A threshold below the score: machine (exit 0); above it: human (exit 3). */
    r = tm_test_cli("detect --zero-shot fast-detectgpt --model '%s' --threads 1 --json --threshold %.17g '%s'", gguf,
                    score - 0.5, text);
    cr_assert_eq(r.code, 0, "%s", r.err);
    v = parse_json(r.out);
    cr_assert_str_eq(json_string_value(json_object_get(v, "decision")), "machine");
    json_decref(v);
    tm_test_cli_free(&r);
    r = tm_test_cli("detect --zero-shot fast-detectgpt --model '%s' --threads 1 --threshold %.17g '%s'", gguf,
                    score + 0.5, text);
    cr_assert_eq(r.code, 3, "%s", r.err);
    cr_assert(strstr(r.out, "decision:  human"), "%s", r.out);
    tm_test_cli_free(&r);
    /* A text longer than the window, refused. */
    r = tm_test_cli("detect --zero-shot likelihood --model '%s' --threads 1 --context 16 --no-slide '%s'", gguf, text);
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "tracemark: error:") && strstr(r.err, "text too long"), "%s", r.err);
    tm_test_cli_free(&r);
    /* Binoculars with a performer of another vocabulary. */
    char *llama = tm_fixture("models/llama-2-tiny-random.gguf");
    r = tm_test_cli("detect --zero-shot binoculars --observer '%s' --performer '%s' '%s'", gguf, llama, text);
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "vocabularies differ"), "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("detect --zero-shot binoculars --model '%s' '%s'", gguf, text);
    cr_assert_eq(r.code, 2, "binoculars without a performer is a usage error");
    tm_test_cli_free(&r);
    r = tm_test_cli("detect --zero-shot detectgpt --model '%s' '%s'", gguf, text);
    cr_assert_eq(r.code, 2);
    tm_test_cli_free(&r);
    remove(text);
    rmdir(dir);
    free(text);
    free(dir);
    free(gguf);
    free(llama);
}

/* --jsonl: one result per line in order, an error record for a malformed
 * line and for an empty text, exit 1; then those results as calibration. */
Test(zeroshot_cli, jsonl_batch_and_calibration) {
    char *dir = tm_test_scratch_dir(), *input = tm_test_path(dir, "in.jsonl"), *human = tm_test_path(dir, "human.jsonl");
    const char lines[] = "{\"id\":\"a\",\"text\":\"Once upon a time, there was a cat.\"}\n"
                         "not json\n"
                         "{\"id\":\"b\",\"text\":\"\"}\n"
                         "\n"
                         "{\"id\":\"c\",\"text\":\"The sky was blue and the sun was warm.\"}\n"
                         "{\"id\":\"d\",\"text\":\"Quantum chromodynamics binds quarks.\"}\n";
    cr_assert_eq(tm_test_write_file(input, lines, strlen(lines)), 0);
    char *gguf = tm_fixture("models/stories260K.gguf");
    tm_test_cli_result r = tm_test_cli("detect --zero-shot log-rank --model '%s' --threads 1 --jsonl '%s'", gguf, input);
    cr_assert_eq(r.code, 1, "a failed line makes the batch exit 1: %s", r.err);
    cr_assert_eq(tm_test_write_file(human, r.out, strlen(r.out)), 0);
    char *out = r.out;
    r.out = NULL;
    tm_test_cli_free(&r);
    const char *expect_id[5] = {"a", NULL, "b", "c", "d"};
    const bool expect_error[5] = {false, true, true, false, false};
    char *save = NULL;
    int count = 0;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), count++) {
        cr_assert_lt(count, 5, "too many output lines");
        json_t *v = parse_json(line);
        cr_assert_eq(json_object_get(v, "error") != NULL, expect_error[count], "line %d: %s", count, line);
        if (expect_id[count]) cr_assert_str_eq(json_string_value(json_object_get(v, "id")), expect_id[count]);
        if (count == 1) cr_assert_eq(json_integer_value(json_object_get(v, "line")), 2);
        if (count == 2) cr_assert(strstr(json_string_value(json_object_get(v, "error")), "empty text"), "%s", line);
        json_decref(v);
    }
    cr_assert_eq(count, 5);
    free(out);
    /* Calibrate on those three texts at FPR 0: the threshold is the most
     * machine-like of them, so none of them is flagged. */
    r = tm_test_cli("detect --zero-shot log-rank --model '%s' --threads 1 --jsonl --calibration '%s' --fpr 0 '%s'",
                    gguf, human, input);
    cr_assert_eq(r.code, 1, "%s", r.err);
    int humans = 0;
    save = NULL;
    for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *v = parse_json(line);
        if (!json_object_get(v, "error")) {
            cr_assert_str_eq(json_string_value(json_object_get(v, "decision")), "human", "%s", line);
            cr_assert_eq(json_integer_value(json_object_get(v, "calibration_texts")), 3);
            humans++;
        }
        json_decref(v);
    }
    cr_assert_eq(humans, 3);
    tm_test_cli_free(&r);
    /* A calibration file of another method is refused. */
    r = tm_test_cli("detect --zero-shot entropy --model '%s' --calibration '%s' '%s'", gguf, human, input);
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "a log-rank score, not entropy"), "%s", r.err);
    tm_test_cli_free(&r);
    remove(input);
    remove(human);
    rmdir(dir);
    free(input);
    free(human);
    free(dir);
    free(gguf);
}
