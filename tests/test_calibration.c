/* The detector's statistical guarantees on real text (issue 4, "Done when"
 * 1 and 2), for every scheme configuration in configs/schemes. Calibration:
 * on text that was not written with the key - unwatermarked stories260K
 * samples, HaluEval `knowledge` passages and TruthfulQA answers from
 * ../shared/data - the share of texts with p <= 0.01 and p <= 0.001 must lie
 * inside the 99.9% binomial interval of the nominal rate, computed here
 * exactly from binomial quantiles. Each text is tested against its own key
 * (fixed secrets), so the texts are independent trials of "p under the null"
 * and the binomial interval applies; with one key for all texts their shared
 * tokens would make the trials dependent. Power: 200-token stories260K
 * generations at temperature 1.0 through each scheme's sampler are detected
 * at FPR 1e-3 with TPR >= 0.95 for KGW (gamma 0.25, delta 2), Gumbel,
 * SynthID and EXP-edit, and each other configuration at its own stated
 * bound (POWER_BOUNDS), on the text and on the sampled ids alike; every TPR
 * is logged (cr_log_info) to be quoted. Seeds
 * and keys are fixed, so the outcome is the same on every run. Slow (it
 * decodes and scores thousands of texts): registered for optimised builds
 * only. */
#include "fixtures.h"
#include "tracemark/detect.h"
#include "tracemark/generator.h"
#include "tracemark/watermark.h"
#include "watermark_testing.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* This file's keys: wm_test_labelled_key(CALIBRATION_KEYS, i), fixed, never picked to pass. */
#define CALIBRATION_KEYS "tracemark-test-calibration"

static const char *const SCHEMES[] = {"kgw-lefthash", "kgw-selfhash", "unigram", "gumbel",
                                      "synthid",      "dipmark",      "exp-edit", "its-edit"};
enum { N_SCHEMES = sizeof SCHEMES / sizeof SCHEMES[0] };

/* ======================================================================== */
/* Helpers                                                                  */
/* ======================================================================== */

static bool is_exp_edit(const tm_wm_config *config) { return config->kind == TM_WM_EXP_EDIT; }

/* ---- exact binomial interval -------------------------------------------- */

/* The two-sided 99.9% interval [lo, hi] of X ~ Binomial(n, p): lo is the
 * smallest k with P(X <= k) > 0.0005 and hi the smallest k with
 * P(X <= k) >= 0.9995, so P(X < lo) <= 0.0005 and P(X > hi) <= 0.0005. */
static void binomial_interval(long n, long double p, long *lo, long *hi) {
    long double cdf = 0;
    *lo = -1;
    *hi = n;
    for (long k = 0; k <= n; k++) {
        cdf += expl(lgammal((long double)n + 1) - lgammal((long double)k + 1) - lgammal((long double)(n - k) + 1) +
                    (long double)k * logl(p) + (long double)(n - k) * log1pl(-p));
        if (*lo < 0 && cdf > 0.0005L) *lo = k;
        if (cdf >= 0.9995L) {
            *hi = k;
            return;
        }
    }
}

/* ---- texts -------------------------------------------------------------- */

typedef struct {
    char **text;
    const char **source;
    size_t n, capacity;
} corpus;

static void corpus_add(corpus *c, const char *text, size_t size, const char *source) {
    if (c->n == c->capacity) {
        c->capacity = c->capacity ? 2 * c->capacity : 1024;
        c->text = realloc(c->text, c->capacity * sizeof *c->text);
        c->source = realloc(c->source, c->capacity * sizeof *c->source);
    }
    c->text[c->n] = malloc(size + 1);
    memcpy(c->text[c->n], text, size);
    c->text[c->n][size] = '\0';
    c->source[c->n++] = source;
}

static void corpus_free(corpus *c) {
    for (size_t i = 0; i < c->n; i++) free(c->text[i]);
    free(c->text);
    free(c->source);
}

/* HaluEval `knowledge` passages of both QA files, each distinct passage once
 * (the two files share most of them). */
static void add_halueval(corpus *c) {
    const char *files[] = {"data/halueval/qa_one-turn_data.json", "data/halueval/qa_multi-turn_data.json"};
    size_t first = c->n;
    for (int f = 0; f < 2; f++) {
        char *path = tm_fixture(files[f]);
        size_t size;
        char *data = tm_test_read_file(path, &size);
        cr_assert_not_null(data, "cannot read %s", path);
        char *save = NULL;
        size_t line_number = 0;
        for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            line_number++;
            json_error_t jerr;
            json_t *record = json_loads(line, 0, &jerr);
            cr_assert_not_null(record, "%s:%zu: %s", path, line_number, jerr.text);
            const json_t *knowledge = json_object_get(record, "knowledge");
            cr_assert(json_is_string(knowledge), "%s:%zu: no knowledge", path, line_number);
            bool seen = false;
            for (size_t i = first; i < c->n && !seen; i++) seen = strcmp(c->text[i], json_string_value(knowledge)) == 0;
            if (!seen) corpus_add(c, json_string_value(knowledge), json_string_length(knowledge), "halueval");
            json_decref(record);
        }
        free(data);
        free(path);
    }
}

/* One RFC 4180 CSV record from *p: fields separated by commas, a quoted field
 * may hold commas, newlines and "" for a quote. Returns the field count. */
static size_t csv_record(const char **p, char **fields, size_t max_fields) {
    size_t n = 0;
    const char *s = *p;
    for (;;) {
        size_t capacity = 64, used = 0;
        char *field = malloc(capacity);
        if (*s == '"') {
            s++;
            for (;;) {
                cr_assert(*s, "unterminated quoted CSV field");
                if (*s == '"' && s[1] == '"') {
                    field[used++] = '"';
                    s += 2;
                } else if (*s == '"') {
                    s++;
                    break;
                } else {
                    field[used++] = *s++;
                }
                if (used + 1 >= capacity) field = realloc(field, capacity *= 2);
            }
        } else {
            while (*s && *s != ',' && *s != '\n' && *s != '\r') {
                field[used++] = *s++;
                if (used + 1 >= capacity) field = realloc(field, capacity *= 2);
            }
        }
        field[used] = '\0';
        cr_assert_lt(n, max_fields, "too many CSV fields");
        fields[n++] = field;
        if (*s == ',') {
            s++;
            continue;
        }
        if (*s == '\r') s++;
        if (*s == '\n') s++;
        break;
    }
    *p = s;
    return n;
}

/* TruthfulQA: per question, its answers (best, best incorrect, correct,
 * incorrect) joined by spaces. */
static void add_truthfulqa(corpus *c) {
    char *path = tm_fixture("data/truthfulqa/TruthfulQA.csv");
    size_t size;
    char *data = tm_test_read_file(path, &size);
    cr_assert_not_null(data, "cannot read %s", path);
    const char *p = data;
    char *fields[16];
    size_t n = csv_record(&p, fields, 16);
    cr_assert_eq(n, 8, "TruthfulQA header has %zu fields", n);
    const char *expected[] = {"Type", "Category", "Question", "Best Answer", "Best Incorrect Answer",
                              "Correct Answers", "Incorrect Answers", "Source"};
    for (size_t i = 0; i < 8; i++) {
        cr_assert_str_eq(fields[i], expected[i]);
        free(fields[i]);
    }
    size_t rows = 0;
    while (*p) {
        n = csv_record(&p, fields, 16);
        cr_assert_eq(n, 8, "TruthfulQA row %zu has %zu fields", rows + 1, n);
        size_t length = strlen(fields[3]) + strlen(fields[4]) + strlen(fields[5]) + strlen(fields[6]) + 8;
        char *text = malloc(length);
        snprintf(text, length, "%s. %s. %s. %s.", fields[3], fields[4], fields[5], fields[6]);
        corpus_add(c, text, strlen(text), "truthfulqa");
        free(text);
        for (size_t i = 0; i < n; i++) free(fields[i]);
        rows++;
    }
    cr_assert_eq(rows, 790, "TruthfulQA has %zu rows, the data README says 790", rows);
    free(data);
    free(path);
}

/* ---- stories260K ---------------------------------------------------------- */

/* Exactly n tokens after prompt at temperature 1.0 through the scheme's
 * sampler (plain sampling when scheme is NULL); BOS and EOS are masked so
 * every sample has its full length. Fills ids (prompt ids first, *n_prompt of
 * them) and returns the generated text as it continues the prompt. */
static char *story_generate(tm_test_story *m, tm_wm_scheme *scheme, uint64_t seed, const char *prompt, size_t n,
                            int32_t **all_ids, size_t *n_prompt) {
    tm_error err = {0};
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    params.temperature = 1.0f;
    params.seed = seed;
    tm_sampler_chain *chain;
    if (scheme) {
        tm_sampler *stage = tm_wm_sampler(scheme, seed);
        bool bias = tm_wm_scheme_stage(scheme) == TM_WM_STAGE_LOGITS;
        chain = tm_sampler_chain_build(&params, bias ? stage : NULL, bias ? NULL : stage);
    } else {
        chain = tm_sampler_chain_from_params(&params);
    }
    cr_assert_not_null(chain);
    tm_context_reset(m->context);
    int32_t *prompt_ids = NULL;
    cr_assert_eq(tm_tokenizer_encode(m->tokenizer, prompt, strlen(prompt), true, &prompt_ids, n_prompt, &err), TM_OK,
                 "%s", err.message);
    int32_t vocab = tm_tokenizer_vocab_size(m->tokenizer);
    float *logits = malloc(sizeof(float) * (size_t)vocab);
    int32_t *ids = malloc(sizeof(int32_t) * (*n_prompt + n));
    memcpy(ids, prompt_ids, sizeof(int32_t) * *n_prompt);
    const float *out = NULL;
    cr_assert_eq(tm_context_eval(m->context, prompt_ids, *n_prompt, &out, &err), TM_OK, "%s", err.message);
    for (size_t i = 0; i < *n_prompt; i++) tm_sampler_chain_accept(chain, prompt_ids[i]);
    for (size_t t = 0; t < n; t++) {
        memcpy(logits, out, sizeof(float) * (size_t)vocab);
        logits[tm_tokenizer_bos(m->tokenizer)] = -INFINITY;
        logits[tm_tokenizer_eos(m->tokenizer)] = -INFINITY;
        int32_t token = tm_sampler_chain_sample(chain, logits, vocab);
        cr_assert(token >= 0 && token < vocab, "sampled %d", token);
        tm_sampler_chain_accept(chain, token);
        ids[*n_prompt + t] = token;
        if (t + 1 < n) cr_assert_eq(tm_context_eval(m->context, &token, 1, &out, &err), TM_OK, "%s", err.message);
    }
    size_t capacity = tm_tokenizer_max_piece_size(m->tokenizer) + TM_DETOKENIZE_MAX, size = 0;
    char *piece = malloc(capacity), *text = malloc((n + 1) * capacity + 1);
    tm_detokenizer detokenizer;
    tm_detokenizer_init(&detokenizer, m->tokenizer);
    for (size_t i = 0; i < *n_prompt; i++) tm_detokenizer_push(&detokenizer, ids[i], piece, capacity);
    for (size_t i = 0; i < n; i++) {
        size_t got = tm_detokenizer_push(&detokenizer, ids[*n_prompt + i], piece, capacity);
        memcpy(text + size, piece, got);
        size += got;
    }
    size += tm_detokenizer_flush(&detokenizer, text + size, capacity);
    text[size] = '\0';
    free(piece);
    free(logits);
    free(prompt_ids);
    tm_sampler_chain_free(chain);
    *all_ids = ids;
    return text;
}

/* ======================================================================== */
/* Calibration                                                              */
/* ======================================================================== */

enum { N_STORIES = 1000, STORY_TOKENS = 200 };

/* EXP-edit and ITS-edit cost ~0.1-0.2 s per 200-token text at 999
 * permutations (their p needs >= 999 for p <= 0.001 to be reachable): they
 * are calibrated on the first EXP_EDIT_TEXTS texts of an interleaved order
 * (stories, HaluEval, TruthfulQA in turn), cut to EXP_EDIT_BYTES bytes. */
enum { EXP_EDIT_TEXTS = 1000, EXP_EDIT_BYTES = 300 };

typedef struct {
    long n, at_01, at_001, weighted_01, weighted_001, window_01, window_001;
} tally;

static void check_rate(const char *scheme, const char *what, long count, long n, double alpha) {
    long lo, hi;
    binomial_interval(n, alpha, &lo, &hi);
    cr_log_info("calibration %-12s %-22s p <= %-5g: %4ld of %ld = %.4f (99.9%% interval %ld..%ld)", scheme, what, alpha,
                count, n, (double)count / (double)n, lo, hi);
    cr_expect(count >= lo && count <= hi,
              "%s, %s: %ld of %ld texts have p <= %g, outside the 99.9%% binomial interval %ld..%ld of the nominal rate",
              scheme, what, count, n, alpha, lo, hi);
}

Test(calibration, false_positive_rate_matches_nominal_on_unwatermarked_text, .timeout = 1200) {
    /* The texts: interleaved so that any prefix mixes the three sources. */
    corpus stories = {0}, halueval = {0}, truthfulqa = {0}, all = {0};
    tm_test_story m = tm_test_story_open();
    double t0 = tm_seconds_now();
    for (uint32_t i = 0; i < N_STORIES; i++) {
        int32_t *ids;
        size_t n_prompt;
        char *text = story_generate(&m, NULL, 1000000 + i, "", STORY_TOKENS, &ids, &n_prompt);
        corpus_add(&stories, text, strlen(text), "stories260K");
        free(text);
        free(ids);
    }
    double t_generate = tm_seconds_now() - t0;
    add_halueval(&halueval);
    add_truthfulqa(&truthfulqa);
    cr_assert_eq(halueval.n, 500, "HaluEval QA has %zu distinct knowledge passages", halueval.n);
    for (size_t i = 0; i < N_STORIES || i < halueval.n || i < truthfulqa.n; i++) {
        if (i < stories.n) corpus_add(&all, stories.text[i], strlen(stories.text[i]), stories.source[i]);
        if (i < halueval.n) corpus_add(&all, halueval.text[i], strlen(halueval.text[i]), halueval.source[i]);
        if (i < truthfulqa.n) corpus_add(&all, truthfulqa.text[i], strlen(truthfulqa.text[i]), truthfulqa.source[i]);
    }
    cr_assert_geq(all.n, 1000);
    cr_log_info("calibration: %zu texts (%zu stories260K samples in %.1f s, %zu HaluEval passages, %zu TruthfulQA answer "
                "sets)",
                all.n, stories.n, t_generate, halueval.n, truthfulqa.n);
    tm_wm_key **keys = malloc(sizeof *keys * all.n);
    for (size_t i = 0; i < all.n; i++) keys[i] = wm_test_labelled_key(CALIBRATION_KEYS, (uint32_t)i);

    for (size_t s = 0; s < N_SCHEMES; s++) {
        tm_wm_config config = wm_test_scheme_config(SCHEMES[s]);
        bool slow = is_exp_edit(&config);
        long n = slow ? EXP_EDIT_TEXTS : (long)all.n;
        tally total = {0};
        long scored = 0;
        char failure[TM_ERROR_MESSAGE_MAX + 128] = ""; /* Criterion's asserts must not jump out of a parallel loop */
        double t1 = tm_seconds_now();
#pragma omp parallel for schedule(dynamic, 4) reduction(+ : scored)
        for (long i = 0; i < n; i++) {
            tm_detect_options options;
            tm_detect_options_default(&options);
            tm_detector *plain = NULL, *windowed = NULL;
            tm_error err = {0};
            const tm_wm_key *key = keys[i];
            tm_status status = tm_detector_create(&plain, m.tokenizer, &config, &key, 1, &options, &err);
            options.windows = true;
            if (status == TM_OK && !slow) status = tm_detector_create(&windowed, m.tokenizer, &config, &key, 1, &options, &err);
            size_t size = strlen(all.text[i]);
            if (slow && size > EXP_EDIT_BYTES) { /* cut on a character boundary */
                size = EXP_EDIT_BYTES;
                while (size > 0 && ((unsigned char)all.text[i][size] & 0xC0) == 0x80) size--;
            }
            tm_detection d, w;
            if (status == TM_OK) status = tm_detect_text(plain, all.text[i], size, NULL, &d, &err);
            if (status == TM_OK && windowed) status = tm_detect_text(windowed, all.text[i], size, NULL, &w, &err);
            if (status != TM_OK) {
#pragma omp critical
                if (!failure[0]) snprintf(failure, sizeof failure, "%s, text %ld (%s): %s", SCHEMES[s], i, all.source[i], err.message);
                tm_detector_free(plain);
                tm_detector_free(windowed);
                continue;
            }
            scored += (long)d.n_scored;
#pragma omp critical
            {
                total.n++;
                total.at_01 += d.p <= 0.01;
                total.at_001 += d.p <= 0.001;
                if (config.kind == TM_WM_SYNTHID) {
                    total.weighted_01 += d.weighted_log_p <= log(0.01);
                    total.weighted_001 += d.weighted_log_p <= log(0.001);
                }
                if (windowed) {
                    total.window_01 += w.log_p_decision <= log(0.01);
                    total.window_001 += w.log_p_decision <= log(0.001);
                }
            }
            tm_detector_free(plain);
            tm_detector_free(windowed);
        }
        cr_assert_str_empty(failure, "%s", failure);
        cr_log_info("calibration %-12s %ld texts, %.0f scored tokens per text on average, %.1f s", SCHEMES[s], total.n,
                    (double)scored / (double)total.n, tm_seconds_now() - t1);
        check_rate(SCHEMES[s], "whole text", total.at_01, total.n, 0.01);
        check_rate(SCHEMES[s], "whole text", total.at_001, total.n, 0.001);
        if (config.kind == TM_WM_SYNTHID) {
            check_rate(SCHEMES[s], "weighted mean", total.weighted_01, total.n, 0.01);
            check_rate(SCHEMES[s], "weighted mean", total.weighted_001, total.n, 0.001);
        }
        if (!slow) {
            /* With --window the decision combines the whole text and the best
             * window (Bonferroni-corrected): it may be conservative, never liberal. */
            long lo, hi;
            binomial_interval(total.n, 0.01, &lo, &hi);
            cr_log_info("calibration %-12s %-22s p <= 0.01 : %4ld of %ld (upper bound %ld); p <= 0.001: %ld", SCHEMES[s],
                        "with windows", total.window_01, total.n, hi, total.window_001);
            cr_expect_leq(total.window_01, hi, "%s with windows: %ld of %ld texts at p <= 0.01", SCHEMES[s],
                          total.window_01, total.n);
            binomial_interval(total.n, 0.001, &lo, &hi);
            cr_expect_leq(total.window_001, hi, "%s with windows: %ld of %ld texts at p <= 0.001", SCHEMES[s],
                          total.window_001, total.n);
        }
    }
    for (size_t i = 0; i < all.n; i++) tm_wm_key_free(keys[i]);
    free(keys);
    corpus_free(&stories);
    corpus_free(&halueval);
    corpus_free(&truthfulqa);
    corpus_free(&all);
    tm_test_story_close(&m);
}

/* ======================================================================== */
/* Power                                                                    */
/* ======================================================================== */

enum { N_POWER = 200, POWER_TOKENS = 200 };

/* The power each shipped configuration must reach on these 200 texts of 200
 * tokens at temperature 1.0 (in SCHEMES' order), asserted on the text and on
 * the sampled ids. 0.95 where the scheme reaches it; elsewhere its own bound,
 * a margin below what it measured (Release, fixed seeds and keys), with the
 * reason it is lower. Measured: kgw-lefthash 0.990, kgw-selfhash 0.990,
 * unigram 0.225, gumbel 1.000, synthid 1.000, dipmark 0.940, exp-edit 1.000,
 * its-edit 0.115 (on text). */
static const struct {
    double tpr;
    const char *reason;
} POWER_BOUNDS[] = {
    {0.95, "the issue's bound"},
    {0.95, "the issue's bound"},
    {0.15, "one green list for the whole text: stories260K's few frequent tokens carry most of a story and "
           "their colour is fixed by the key, so delta 2 moves few of them; measured 0.225"},
    {0.95, "the issue's bound"},
    {0.95, "the issue's bound"},
    {0.90, "distortion-free reweighting (alpha 0.45) moves less probability than KGW's delta 2 on a "
           "low-entropy model; measured 0.940"},
    {0.95, "the issue's bound"},
    {0.08, "ITS's per-token evidence |u - eta| is weak where the model is nearly deterministic (the paper "
           "reports ITS needing several times EXP's tokens); measured 0.115"},
};
_Static_assert(sizeof POWER_BOUNDS / sizeof POWER_BOUNDS[0] == N_SCHEMES, "one power bound per configuration");

Test(calibration, watermarked_stories_are_detected_at_fpr_1e3, .timeout = 1200) {
    tm_test_story m = tm_test_story_open();
    const char *prompt = "Once upon a time";
    tm_detect_options defaults;
    tm_detect_options_default(&defaults);
    cr_assert_eq(defaults.fpr, 1e-3);
    for (size_t s = 0; s < N_SCHEMES; s++) {
        tm_wm_config config = wm_test_scheme_config(SCHEMES[s]);
        char **texts = malloc(sizeof *texts * N_POWER);
        int32_t **ids = malloc(sizeof *ids * N_POWER);
        size_t *n_prompt = malloc(sizeof *n_prompt * N_POWER);
        tm_wm_key **keys = malloc(sizeof *keys * N_POWER);
        double t0 = tm_seconds_now();
        for (size_t i = 0; i < N_POWER; i++) {
            keys[i] = wm_test_labelled_key(CALIBRATION_KEYS, (uint32_t)(500000 + i));
            tm_wm_scheme *scheme = NULL;
            tm_error err = {0};
            cr_assert_eq(tm_wm_scheme_create(&scheme, &config, keys[i], &err), TM_OK, "%s", err.message);
            texts[i] = story_generate(&m, scheme, 2000 + i, prompt, POWER_TOKENS, &ids[i], &n_prompt[i]);
            tm_wm_scheme_free(scheme);
        }
        double t_generate = tm_seconds_now() - t0;
        long detected_text = 0, detected_tokens = 0;
        char failure[TM_ERROR_MESSAGE_MAX + 128] = "";
        double t1 = tm_seconds_now();
#pragma omp parallel for schedule(dynamic, 2) reduction(+ : detected_text, detected_tokens)
        for (size_t i = 0; i < N_POWER; i++) {
            tm_detect_options options;
            tm_detect_options_default(&options); /* fpr 1e-3 */
            tm_detector *detector = NULL;
            tm_error err = {0};
            const tm_wm_key *key = keys[i];
            tm_detection d, t;
            tm_status status = tm_detector_create(&detector, m.tokenizer, &config, &key, 1, &options, &err);
            /* As a platform sees it: the text and its prompt, re-tokenized. */
            if (status == TM_OK) status = tm_detect_text(detector, texts[i], strlen(texts[i]), prompt, &d, &err);
            /* As the generator emitted it: the sampled ids. */
            t.detected = false;
            if (status == TM_OK)
                status = tm_detect_tokens(detector, 0, ids[i], n_prompt[i] + POWER_TOKENS, n_prompt[i], &t, &err);
            if (status != TM_OK) {
#pragma omp critical
                if (!failure[0]) snprintf(failure, sizeof failure, "%s, text %zu: %s", SCHEMES[s], i, err.message);
            } else {
                detected_text += d.detected;
                detected_tokens += t.detected;
            }
            tm_detector_free(detector);
        }
        cr_assert_str_empty(failure, "%s", failure);
        double tpr = (double)detected_text / N_POWER, tpr_tokens = (double)detected_tokens / N_POWER;
        char on_ids[64] = "";
        snprintf(on_ids, sizeof on_ids, ", %.3f on the sampled ids", tpr_tokens);
        cr_log_info("power %-12s TPR at FPR 1e-3: %.3f on text (%ld of %d)%s; %d tokens, temperature 1.0 "
                    "(generation %.1f s, detection %.1f s)",
                    SCHEMES[s], tpr, detected_text, N_POWER, on_ids, POWER_TOKENS, t_generate, tm_seconds_now() - t1);
        double bound = POWER_BOUNDS[s].tpr;
        cr_expect_geq(tpr, bound, "%s: TPR %.3f on text at FPR 1e-3 on 200-token texts, below its bound %.2f (%s)",
                      SCHEMES[s], tpr, bound, POWER_BOUNDS[s].reason);
        cr_expect_geq(tpr_tokens, bound, "%s: TPR %.3f on the sampled ids, below its bound %.2f (%s)", SCHEMES[s],
                      tpr_tokens, bound, POWER_BOUNDS[s].reason);
        for (size_t i = 0; i < N_POWER; i++) {
            free(texts[i]);
            free(ids[i]);
            tm_wm_key_free(keys[i]);
        }
        free(texts);
        free(ids);
        free(n_prompt);
        free(keys);
    }
    tm_test_story_close(&m);
}
