/* The hallucination and truthfulness task kinds of `tracemark eval`:
 * truthfulqa_mc (MC0, MC1, MC2 with acc_norm), halueval_qa and
 * halueval_general (the model's own Yes/No verdict). One sample is one data
 * item; each worker owns a context and a log-likelihood scorer that keeps
 * the shared prefix (the six-shot primer, HaluEval's instruction) primed
 * once and cut back to it before every item, so that an item's record is a
 * function of the task and the item alone, as resumed and sharded runs
 * need. A bad item, or one too long for the context, is recorded with its
 * reason and counted by the aggregate; it never fails the run. Nothing here
 * prints. */
#include "evals_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const tm_eval_task *task;
    tm_model *model;
    tm_tokenizer *tokenizer;
    char model_sha[TM_SHA256_HEX_SIZE];
    tm_truthfulqa_data truthfulqa;
    tm_truthfulqa_gen_data generation;
    tm_halueval_data halueval;
    char *instruction;
    int32_t *prefix; /* the ids every item starts with */
    size_t n_prefix;
} halluc_state;

typedef struct {
    halluc_state *state;
    tm_context *context;
    tm_loglik_scorer *scorer;
} halluc_worker;

static void release(void *opaque) {
    halluc_state *s = opaque;
    if (!s) return;
    tm_truthfulqa_data_free(&s->truthfulqa);
    tm_truthfulqa_gen_data_free(&s->generation);
    tm_halueval_data_free(&s->halueval);
    free(s->instruction);
    free(s->prefix);
    tm_tokenizer_free(s->tokenizer);
    tm_model_free(s->model);
    free(s);
}

static size_t data_items(const tm_eval_task *t, size_t n) {
    return t->halluc_limit > 0 && (size_t)t->halluc_limit < n ? (size_t)t->halluc_limit : n;
}

static tm_status load_data(const tm_eval_task *t, tm_truthfulqa_data *tqa, tm_truthfulqa_gen_data *gen,
                           tm_halueval_data *hal, tm_error *err) {
    memset(tqa, 0, sizeof *tqa);
    memset(gen, 0, sizeof *gen);
    memset(hal, 0, sizeof *hal);
    if (t->kind == TM_EVAL_KIND_TRUTHFULQA_MC) return tm_truthfulqa_load(t->halluc_data, tqa, err);
    if (t->kind == TM_EVAL_KIND_TRUTHFULQA_GEN) return tm_truthfulqa_gen_load(t->halluc_data, gen, err);
    /* selfcheck scores HaluEval general's labelled responses. */
    return tm_halueval_load(t->halluc_data, t->kind == TM_EVAL_KIND_HALUEVAL_QA ? TM_HALUEVAL_QA : TM_HALUEVAL_GENERAL,
                            hal, err);
}

static tm_status prepare(const tm_eval_task *t, void **out, tm_error *err) {
    *out = NULL;
    halluc_state *s = calloc(1, sizeof *s);
    if (!s) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    s->task = t;
    tm_status status = tm_model_load(&s->model, t->model_path, err);
    if (!status)
        status = tm_model_tokenizer(&s->tokenizer, s->model, t->tokenizer_path[0] ? t->tokenizer_path : NULL, err);
    if (status) tm_error_prefix(err, "%s:%lu: model", t->path, t->model_line);
    if (!status) status = tm_sha256_file_hex(t->model_path, s->model_sha, err);
    if (!status) {
        status = load_data(t, &s->truthfulqa, &s->generation, &s->halueval, err);
        if (status) tm_error_prefix(err, "%s: data", t->path);
    }
    if (!status && (t->kind == TM_EVAL_KIND_HALUEVAL_QA || t->kind == TM_EVAL_KIND_HALUEVAL_GENERAL)) {
        size_t size;
        status = tm_read_file(t->halluc_instruction, &s->instruction, &size, err);
        if (!status && !tm_utf8_valid(s->instruction, size))
            status = tm_error_set(err, TM_ERR_FORMAT, "%s: instruction: not UTF-8", t->halluc_instruction);
        if (status) tm_error_prefix(err, "%s: instruction", t->path);
    }
    if (!status) {
        bool truthfulqa = t->kind == TM_EVAL_KIND_TRUTHFULQA_MC || t->kind == TM_EVAL_KIND_TRUTHFULQA_GEN;
        /* SelfCheck's prompts share only "Context: " (the sample follows). */
        const char *shared = truthfulqa ? tm_truthfulqa_primer()
                             : t->kind == TM_EVAL_KIND_SELFCHECK ? "Context:" : s->instruction;
        status = tm_tokenizer_encode(s->tokenizer, shared, strlen(shared), tm_tokenizer_adds_bos(s->tokenizer),
                                     &s->prefix, &s->n_prefix, err);
        /* A prefix the context cannot hold is not primed; items then say why they do not fit. */
        if (!status && s->n_prefix >= (size_t)t->halluc_context) s->n_prefix = 0;
    }
    if (status) {
        release(s);
        return status;
    }
    *out = s;
    return TM_OK;
}

static size_t n_items(const tm_eval_task *t, const tm_truthfulqa_data *tqa, const tm_truthfulqa_gen_data *gen,
                      const tm_halueval_data *hal) {
    return t->kind == TM_EVAL_KIND_TRUTHFULQA_MC ? tqa->n_items
           : t->kind == TM_EVAL_KIND_TRUTHFULQA_GEN ? gen->n_items
                                                    : hal->n_items;
}

static int64_t sample_count(const tm_eval_task *t) {
    tm_truthfulqa_data tqa;
    tm_truthfulqa_gen_data gen;
    tm_halueval_data hal;
    tm_error err;
    if (load_data(t, &tqa, &gen, &hal, &err)) return 0;
    size_t n = n_items(t, &tqa, &gen, &hal);
    tm_truthfulqa_data_free(&tqa);
    tm_truthfulqa_gen_data_free(&gen);
    tm_halueval_data_free(&hal);
    return (int64_t)data_items(t, n);
}

static const char *model_sha256(void *opaque) { return ((halluc_state *)opaque)->model_sha; }

static void worker_free(void *opaque) {
    halluc_worker *w = opaque;
    if (!w) return;
    tm_loglik_scorer_free(w->scorer);
    tm_context_free(w->context);
    free(w);
}

static tm_status worker_create(void *opaque, void **out, tm_error *err) {
    halluc_state *s = opaque;
    *out = NULL;
    halluc_worker *w = calloc(1, sizeof *w);
    if (!w) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    w->state = s;
    tm_status status = tm_context_create(&w->context, s->model, s->task->halluc_context, 1, err);
    if (!status) status = tm_loglik_scorer_create(&w->scorer, w->context, s->task->halluc_reuse, err);
    /* Generation runs on the same context: the primer's rows stay in place
     * below whatever an item generates, exactly as the scorer keeps them. */
    if (!status && s->task->halluc_reuse) status = tm_loglik_scorer_prime(w->scorer, s->prefix, s->n_prefix, err);
    if (status) {
        worker_free(w);
        return status;
    }
    *out = w;
    return TM_OK;
}

/* The record of an item that cannot be scored: its reason, and nothing else. */
static tm_status bad_record(tm_eval_record *r, const char *group, json_t *input, const char *reason, tm_error *err) {
    snprintf(r->group, sizeof r->group, "%s", group);
    r->input = tm_eval_json_text(input);
    r->output = tm_eval_json_text(json_object());
    r->scores = tm_eval_json_text(json_pack("{s:s}", "problem", reason));
    if (!r->input || !r->output || !r->scores) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    return TM_OK;
}

/* Errors that mean "this item cannot be scored" (too long, no tokens of its
 * own) rather than "the run is broken". */
static bool item_error(tm_status status) { return status == TM_ERR_LIMIT || status == TM_ERR_ARGUMENT || status == TM_ERR_FORMAT; }

static json_t *doubles(const double *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, tm_eval_json_number(v[i]));
    return a;
}

static tm_status run_truthfulqa(halluc_worker *w, int64_t id, tm_eval_record *r, tm_error *err) {
    halluc_state *s = w->state;
    const tm_truthfulqa_item *item = &s->truthfulqa.items[id];
    json_t *input = json_pack("{s:I, s:s}", "item", (json_int_t)id, "question", item->question ? item->question : "");
    /* The choices as scored (continuation " " + choice), labels beside them. */
    json_t *choices = json_object();
    for (int set = 0; set < TM_TRUTHFULQA_SETS; set++) {
        const tm_truthfulqa_targets *t = &item->targets[set];
        json_t *list = json_array(), *labels = json_array();
        for (size_t c = 0; c < t->n; c++) {
            json_array_append_new(list, json_string(t->choices[c]));
            json_array_append_new(labels, json_integer(t->labels[c]));
        }
        json_object_set_new(choices, tm_truthfulqa_set_name((tm_truthfulqa_set)set),
                            json_pack("{s:o, s:o}", "choices", list, "labels", labels));
    }
    json_object_set_new(input, "targets", choices);
    if (item->question) {
        char *context = tm_truthfulqa_mc_context(item->question, err);
        if (!context) {
            json_decref(input);
            return TM_ERR_NOMEM;
        }
        tm_sha256_hex(context, strlen(context), r->prompt_sha256);
        free(context);
    }
    if (item->problem[0]) return bad_record(r, "truthfulqa_mc/bad", input, item->problem, err);
    tm_truthfulqa_item_result result;
    tm_error item_err = {0};
    tm_status status = tm_truthfulqa_score_item(w->scorer, s->tokenizer, item, &result, &item_err);
    if (status && item_error(status)) return bad_record(r, "truthfulqa_mc/bad", input, item_err.message, err);
    if (status) {
        json_decref(input);
        *err = item_err;
        return status;
    }
    json_t *output = json_object(), *scores = json_object();
    bool any_bad = false;
    for (int set = 0; set < TM_TRUTHFULQA_SETS; set++) {
        const char *name = tm_truthfulqa_set_name((tm_truthfulqa_set)set);
        const char *problem = tm_truthfulqa_set_problem(item, (tm_truthfulqa_set)set);
        if (problem || !result.scored[set]) {
            any_bad = true;
            json_object_set_new(scores, name, json_pack("{s:s}", "problem", problem ? problem : "not scored"));
            continue;
        }
        const tm_truthfulqa_targets *t = &item->targets[set];
        json_t *greedy = json_array();
        for (size_t c = 0; c < t->n; c++) json_array_append_new(greedy, json_boolean(result.greedy[set][c]));
        json_object_set_new(output, name, json_pack("{s:o, s:o}", "lls", doubles(result.lls[set], t->n), "greedy", greedy));
        const tm_truthfulqa_scores *sc = &result.scores[set];
        json_t *entry = json_pack("{s:I, s:I, s:f, s:f}", "picked", (json_int_t)sc->picked, "picked_norm",
                                  (json_int_t)sc->picked_norm, "acc", sc->acc, "acc_norm", sc->acc_norm);
        if (set == TM_TRUTHFULQA_MC2) json_object_set_new(entry, "mc2", tm_eval_json_number(sc->mc2));
        json_object_set_new(scores, name, entry);
    }
    tm_truthfulqa_item_result_free(&result);
    snprintf(r->group, sizeof r->group, "%s", any_bad ? "truthfulqa_mc/partial" : "truthfulqa_mc");
    r->input = tm_eval_json_text(input);
    r->output = tm_eval_json_text(output);
    r->scores = tm_eval_json_text(scores);
    if (!r->input || !r->output || !r->scores) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    return TM_OK;
}

static tm_status run_halueval(halluc_worker *w, int64_t id, tm_eval_record *r, tm_error *err) {
    halluc_state *s = w->state;
    const tm_eval_task *t = s->task;
    const tm_halueval_item *item = &s->halueval.items[id];
    bool qa = t->kind == TM_EVAL_KIND_HALUEVAL_QA;
    const char *group = qa ? "halueval_qa" : "halueval_general";
    if (item->problem[0]) return bad_record(r, qa ? "halueval_qa/bad" : "halueval_general/bad",
                                            json_pack("{s:I}", "item", (json_int_t)id), item->problem, err);
    int truth;
    const char *question, *answer, *shown;
    if (qa) {
        truth = tm_halueval_coin(t->seed, (uint64_t)id) ? 1 : 0;
        question = item->question;
        answer = truth ? item->hallucinated_answer : item->right_answer;
        shown = truth ? "hallucinated" : "right";
    } else {
        truth = item->label;
        question = item->query;
        answer = item->response;
        shown = "response";
    }
    json_t *input = json_pack("{s:I, s:s}", "item", (json_int_t)id, "shown", shown);
    char *prompt = tm_halueval_prompt(qa ? TM_HALUEVAL_QA : TM_HALUEVAL_GENERAL, s->instruction, question, answer, err);
    if (!prompt) {
        json_decref(input);
        return TM_ERR_NOMEM;
    }
    tm_sha256_hex(prompt, strlen(prompt), r->prompt_sha256);
    tm_sha256_hex(answer, strlen(answer), r->target_sha256);
    tm_loglik yes, no;
    tm_error item_err = {0};
    tm_status status = tm_loglik_score(w->scorer, s->tokenizer, prompt, " Yes", &yes, &item_err);
    if (!status) status = tm_loglik_score(w->scorer, s->tokenizer, prompt, " No", &no, &item_err);
    free(prompt);
    if (status && item_error(status))
        return bad_record(r, qa ? "halueval_qa/bad" : "halueval_general/bad", input, item_err.message, err);
    if (status) {
        json_decref(input);
        *err = item_err;
        return status;
    }
    int verdict = tm_halueval_verdict(yes.logprob, no.logprob, t->halluc_margin);
    snprintf(r->group, sizeof r->group, "%s", group);
    r->input = tm_eval_json_text(input);
    r->output = tm_eval_json_text(json_pack("{s:o, s:o}", "ll_yes", tm_eval_json_number(yes.logprob), "ll_no",
                                            tm_eval_json_number(no.logprob)));
    r->scores = tm_eval_json_text(json_pack("{s:i, s:i, s:b}", "truth", truth, "verdict", verdict, "correct",
                                            verdict >= 0 && verdict == truth));
    if (!r->input || !r->output || !r->scores) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    return TM_OK;
}

static json_t *gen_metric(const tm_truthfulqa_gen_metric *m) {
    return json_pack("{s:o, s:o, s:o, s:o}", "max", tm_eval_json_number(m->max), "max_false",
                     tm_eval_json_number(m->max_false), "acc", tm_eval_json_number(m->acc), "diff",
                     tm_eval_json_number(m->diff));
}

/* Greedy answer after truthfulqa_gen's prompt, stopped at the first blank
 * line, scored against the true and false references. With reuse the
 * context is cut back to the part of the primer this prompt shares (its
 * rows were computed on their own at worker start) and only the rest runs. */
static tm_status run_truthfulqa_gen(halluc_worker *w, int64_t id, tm_eval_record *r, tm_error *err) {
    halluc_state *s = w->state;
    const tm_truthfulqa_gen_item *item = &s->generation.items[id];
    json_t *input = json_pack("{s:I, s:s}", "item", (json_int_t)id, "question", item->question ? item->question : "");
    if (item->problem[0]) return bad_record(r, "truthfulqa_gen/bad", input, item->problem, err);
    char *prompt = tm_truthfulqa_gen_prompt(item->question, err);
    if (!prompt) {
        json_decref(input);
        return TM_ERR_NOMEM;
    }
    tm_sha256_hex(prompt, strlen(prompt), r->prompt_sha256);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    tm_status status = tm_tokenizer_encode(s->tokenizer, prompt, strlen(prompt), tm_tokenizer_adds_bos(s->tokenizer),
                                           &ids, &n_ids, err);
    free(prompt);
    if (status) {
        json_decref(input);
        return status;
    }
    size_t start = 0;
    if (s->task->halluc_reuse) {
        status = tm_loglik_scorer_restore(w->scorer, err);
        if (status) {
            free(ids);
            json_decref(input);
            return status;
        }
        while (start < s->n_prefix && start + 1 < n_ids && ids[start] == s->prefix[start]) start++;
    }
    tm_context_truncate(w->context, (int32_t)start, NULL);
    /* The generation overwrites the rows past start: say so to the scorer
     * (restore runs the primer again if they were part of it). */
    tm_loglik_scorer_keep(w->scorer, start);
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    params.temperature = 0;
    tm_sampler_chain *chain = tm_sampler_chain_from_params(&params);
    if (!chain) {
        free(ids);
        json_decref(input);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    }
    const char *stops[] = {"\n\n"};
    tm_generate_options options = {.max_tokens = s->task->halluc_max_tokens, .stop_strings = stops, .n_stop_strings = 1};
    tm_generation gen;
    memset(&gen, 0, sizeof gen);
    tm_error item_err = {0};
    status = tm_generate_from_ids(w->context, s->tokenizer, chain, ids + start, n_ids - start, &options, &gen, &item_err);
    tm_sampler_chain_free(chain);
    free(ids);
    if (status && item_error(status)) return bad_record(r, "truthfulqa_gen/bad", input, item_err.message, err);
    if (status) {
        json_decref(input);
        *err = item_err;
        return status;
    }
    tm_truthfulqa_gen_scores scores;
    status = tm_truthfulqa_gen_score(item, gen.text, &scores, &item_err);
    json_t *output = json_pack("{s:s, s:s, s:I}", "completion", gen.text ? gen.text : "", "stop_reason",
                               gen.stop_reason ? gen.stop_reason : "", "tokens", (json_int_t)gen.n_ids);
    if (gen.text) tm_sha256_hex(gen.text, strlen(gen.text), r->target_sha256);
    tm_generation_free(&gen);
    if (status) {
        json_decref(output);
        if (item_error(status)) return bad_record(r, "truthfulqa_gen/bad", input, item_err.message, err);
        json_decref(input);
        *err = item_err;
        return status;
    }
    snprintf(r->group, sizeof r->group, "truthfulqa_gen");
    r->input = tm_eval_json_text(input);
    r->output = tm_eval_json_text(output);
    r->scores = tm_eval_json_text(json_pack("{s:o, s:o, s:o, s:o}", "bleu", gen_metric(&scores.bleu), "rouge1",
                                            gen_metric(&scores.rouge1), "rouge2", gen_metric(&scores.rouge2), "rougeL",
                                            gen_metric(&scores.rougeL)));
    if (!r->input || !r->output || !r->scores) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    return TM_OK;
}

static void free_strings(char **strings, size_t n) {
    for (size_t i = 0; strings && i < n; i++) free(strings[i]);
    free(strings);
}

/* SelfCheckGPT on one HaluEval general item: the labelled ChatGPT response
 * is the main passage; `samples` passages are sampled from the model after
 * the user's query (each from its own seed, tm_eval_mix(task seed, item,
 * sample), the context reset first); the response's sentences are scored by
 * the unigram variant (k = 0, as published) and, when asked, by the prompt
 * variant over every (sample, sentence) pair, sample by sample so that the
 * sample's text is the prefix each of its sentences reuses. */
static tm_status run_selfcheck(halluc_worker *w, int64_t id, tm_eval_record *r, tm_error *err) {
    halluc_state *s = w->state;
    const tm_eval_task *t = s->task;
    const tm_halueval_item *item = &s->halueval.items[id];
    json_t *input = json_pack("{s:I}", "item", (json_int_t)id);
    if (item->problem[0]) return bad_record(r, "selfcheck/bad", input, item->problem, err);
    tm_sha256_hex(item->query, strlen(item->query), r->prompt_sha256);
    tm_sha256_hex(item->response, strlen(item->response), r->target_sha256);
    char **sentences = NULL;
    size_t n_sentences = 0;
    tm_error item_err = {0};
    tm_status status = tm_selfcheck_sentences(item->response, &sentences, &n_sentences, &item_err);
    if (status == TM_OK && n_sentences == 0) {
        status = TM_ERR_FORMAT;
        tm_error_set(&item_err, TM_ERR_FORMAT, "the response has no sentence");
    }
    size_t n_samples = (size_t)t->halluc_samples;
    char **samples = status ? NULL : calloc(n_samples, sizeof *samples);
    if (!status && !samples) status = tm_error_set(&item_err, TM_ERR_NOMEM, "out of memory");
    json_t *sample_texts = json_array();
    for (size_t k = 0; status == TM_OK && k < n_samples; k++) {
        tm_sampling_params params;
        tm_sampling_params_default(&params);
        params.temperature = t->halluc_temperature;
        params.seed = tm_eval_mix(tm_eval_mix(t->seed, (uint64_t)id), 0x73616d70 + k);
        tm_sampler_chain *chain = tm_sampler_chain_from_params(&params);
        if (!chain) {
            status = tm_error_set(&item_err, TM_ERR_NOMEM, "out of memory");
            break;
        }
        tm_context_reset(w->context);
        tm_loglik_scorer_keep(w->scorer, 0);
        tm_generate_options options = {.max_tokens = t->halluc_max_tokens};
        tm_generation gen;
        memset(&gen, 0, sizeof gen);
        status = tm_generate(w->context, s->tokenizer, chain, item->query, &options, &gen, &item_err);
        tm_sampler_chain_free(chain);
        if (status == TM_OK) {
            samples[k] = gen.text;
            gen.text = NULL;
            json_array_append_new(sample_texts, json_string(samples[k] ? samples[k] : ""));
            if (!samples[k] && !(samples[k] = strdup(""))) status = tm_error_set(&item_err, TM_ERR_NOMEM, "out of memory");
        }
        tm_generation_free(&gen);
    }
    tm_selfcheck_ngram_result ngram;
    memset(&ngram, 0, sizeof ngram);
    if (status == TM_OK)
        status = tm_selfcheck_ngram((const char *const *)sentences, n_sentences, item->response,
                                    (const char *const *)samples, n_samples, 0, &ngram, &item_err);
    double prompt_score = NAN;
    double *per_sentence = status ? NULL : calloc(n_sentences, sizeof *per_sentence);
    if (!status && !per_sentence) status = tm_error_set(&item_err, TM_ERR_NOMEM, "out of memory");
    if (status == TM_OK && t->halluc_prompt_variant) {
        if (t->halluc_reuse) status = tm_loglik_scorer_restore(w->scorer, &item_err);
        else tm_loglik_scorer_forget(w->scorer);
        for (size_t k = 0; status == TM_OK && k < n_samples; k++)
            for (size_t i = 0; status == TM_OK && i < n_sentences; i++) {
                char *prompt = tm_selfcheck_prompt(samples[k], sentences[i], &item_err);
                if (!prompt) {
                    status = TM_ERR_NOMEM;
                    break;
                }
                tm_loglik yes, no;
                status = tm_loglik_score(w->scorer, s->tokenizer, prompt, "Yes", &yes, &item_err);
                if (!status) status = tm_loglik_score(w->scorer, s->tokenizer, prompt, "No", &no, &item_err);
                free(prompt);
                if (!status) per_sentence[i] += tm_selfcheck_prompt_score(yes.logprob, no.logprob) / (double)n_samples;
            }
        if (status == TM_OK) {
            prompt_score = 0;
            for (size_t i = 0; i < n_sentences; i++) prompt_score += per_sentence[i] / (double)n_sentences;
        }
    }
    json_t *sentence_scores = json_array();
    for (size_t i = 0; status == TM_OK && i < n_sentences; i++)
        json_array_append_new(sentence_scores,
                              json_pack("{s:o, s:o, s:o}", "ngram_avg", tm_eval_json_number(ngram.sentence_avg[i]),
                                        "ngram_max", tm_eval_json_number(ngram.sentence_max[i]), "prompt",
                                        t->halluc_prompt_variant ? tm_eval_json_number(per_sentence[i]) : json_null()));
    free(per_sentence);
    free_strings(sentences, n_sentences);
    free_strings(samples, samples ? n_samples : 0);
    if (status) {
        tm_selfcheck_ngram_result_free(&ngram);
        json_decref(sample_texts);
        json_decref(sentence_scores);
        if (item_error(status)) return bad_record(r, "selfcheck/bad", input, item_err.message, err);
        json_decref(input);
        *err = item_err;
        return status;
    }
    snprintf(r->group, sizeof r->group, "selfcheck");
    r->input = tm_eval_json_text(input);
    r->output = tm_eval_json_text(json_pack("{s:o, s:o}", "samples", sample_texts, "sentences", sentence_scores));
    r->scores = tm_eval_json_text(json_pack("{s:i, s:o, s:o, s:o, s:I}", "label", item->label, "ngram_avg",
                                            tm_eval_json_number(ngram.passage_avg), "ngram_max",
                                            tm_eval_json_number(ngram.passage_max), "prompt",
                                            tm_eval_json_number(prompt_score), "sentences", (json_int_t)n_sentences));
    tm_selfcheck_ngram_result_free(&ngram);
    if (!r->input || !r->output || !r->scores) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    return TM_OK;
}

static tm_status run_sample(void *opaque_state, void *opaque_worker, int64_t id, tm_eval_record *r, tm_error *err) {
    halluc_state *s = opaque_state;
    halluc_worker *w = opaque_worker;
    size_t n = n_items(s->task, &s->truthfulqa, &s->generation, &s->halueval);
    if (id < 0 || (size_t)id >= n) return tm_error_set(err, TM_ERR_ARGUMENT, "no item %lld", (long long)id);
    if (s->task->kind == TM_EVAL_KIND_TRUTHFULQA_GEN) return run_truthfulqa_gen(w, id, r, err);
    if (s->task->kind == TM_EVAL_KIND_SELFCHECK) return run_selfcheck(w, id, r, err);
    /* Every item starts from the primed prefix alone (see the file comment). */
    if (s->task->halluc_reuse) {
        tm_status status = tm_loglik_scorer_restore(w->scorer, err);
        if (status) return status;
    }
    return s->task->kind == TM_EVAL_KIND_TRUTHFULQA_MC ? run_truthfulqa(w, id, r, err) : run_halueval(w, id, r, err);
}

/* ---- aggregation ---------------------------------------------------------------- */

static json_t *interval(const double *values, size_t n, const tm_eval_task *t, uint64_t stream) {
    tm_halluc_interval ci;
    tm_halluc_mean_interval(values, n, t->bootstrap, tm_eval_mix(t->seed, stream), &ci);
    return json_pack("{s:o, s:o, s:o, s:I}", "value", tm_eval_json_number(ci.value), "low",
                     tm_eval_json_number(ci.low), "high", tm_eval_json_number(ci.high), "n", (json_int_t)ci.n);
}

static tm_status aggregate_truthfulqa(const tm_eval_task *t, const tm_eval_record *records, size_t n, json_t *root,
                                      tm_error *err) {
    double *values = calloc(3 * n + 1, sizeof *values);
    if (!values) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    json_t *bad = json_array();
    for (int set = 0; set < TM_TRUTHFULQA_SETS; set++) {
        const char *name = tm_truthfulqa_set_name((tm_truthfulqa_set)set);
        size_t k = 0, n_bad = 0;
        double *acc = values, *acc_norm = values + n, *mc2 = values + 2 * n;
        for (size_t i = 0; i < n; i++) {
            json_t *scores = json_loads(records[i].scores, 0, NULL);
            json_t *entry = json_object_get(scores, name);
            const char *problem = json_string_value(json_object_get(entry ? entry : scores, "problem"));
            if (!entry || problem) {
                n_bad++;
                json_array_append_new(bad, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)records[i].id, "set", name,
                                                     "reason", problem ? problem : "no scores"));
            } else {
                acc[k] = tm_eval_json_get_number(json_object_get(entry, "acc"));
                acc_norm[k] = tm_eval_json_get_number(json_object_get(entry, "acc_norm"));
                mc2[k] = tm_eval_json_get_number(json_object_get(entry, "mc2"));
                k++;
            }
            json_decref(scores);
        }
        json_t *summary = json_pack("{s:o, s:o, s:I}", "acc", interval(acc, k, t, 0x6d6330 + (uint64_t)set), "acc_norm",
                                    interval(acc_norm, k, t, 0x6e6f726d + (uint64_t)set), "bad_items", (json_int_t)n_bad);
        if (set == TM_TRUTHFULQA_MC2) json_object_set_new(summary, "mc2", interval(mc2, k, t, 0x6d6332));
        json_object_set_new(root, name, summary);
    }
    json_object_set_new(root, "bad", bad);
    free(values);
    return TM_OK;
}

static tm_status aggregate_halueval(const tm_eval_task *t, const tm_eval_record *records, size_t n, json_t *root,
                                    tm_error *err) {
    int *verdicts = calloc(n + 1, sizeof *verdicts), *truths = calloc(n + 1, sizeof *truths);
    double *correct = calloc(n + 1, sizeof *correct);
    if (!verdicts || !truths || !correct) {
        free(verdicts), free(truths), free(correct);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    }
    json_t *bad = json_array();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *scores = json_loads(records[i].scores, 0, NULL);
        const char *problem = json_string_value(json_object_get(scores, "problem"));
        if (!scores || problem) {
            json_array_append_new(bad, json_pack("{s:I, s:s}", "id", (json_int_t)records[i].id, "reason",
                                                 problem ? problem : "no scores"));
        } else {
            verdicts[k] = (int)json_integer_value(json_object_get(scores, "verdict"));
            truths[k] = (int)json_integer_value(json_object_get(scores, "truth"));
            correct[k] = verdicts[k] >= 0 && verdicts[k] == truths[k];
            k++;
        }
        json_decref(scores);
    }
    tm_halluc_confusion c;
    tm_halluc_confusion_compute(verdicts, truths, k, &c);
    json_object_set_new(root, "accuracy", interval(correct, k, t, 0x616363));
    json_object_set_new(root, "precision", tm_eval_json_number(c.precision));
    json_object_set_new(root, "recall", tm_eval_json_number(c.recall));
    json_object_set_new(root, "f1", tm_eval_json_number(c.f1));
    json_object_set_new(root, "undecided_rate", tm_eval_json_number(c.undecided_rate));
    json_object_set_new(root, "confusion",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "true_positive", (json_int_t)c.true_positive,
                                  "false_positive", (json_int_t)c.false_positive, "true_negative",
                                  (json_int_t)c.true_negative, "false_negative", (json_int_t)c.false_negative,
                                  "undecided", (json_int_t)c.undecided));
    json_object_set_new(root, "bad_items", json_integer((json_int_t)json_array_size(bad)));
    json_object_set_new(root, "bad", bad);
    free(verdicts), free(truths), free(correct);
    return TM_OK;
}

static tm_status aggregate_truthfulqa_gen(const tm_eval_task *t, const tm_eval_record *records, size_t n,
                                          json_t *root, tm_error *err) {
    double *values = calloc(n + 1, sizeof *values);
    if (!values) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    static const char *const metrics[] = {"bleu", "rouge1", "rouge2", "rougeL"};
    static const char *const parts[] = {"max", "acc", "diff"};
    json_t *bad = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *scores = json_loads(records[i].scores, 0, NULL);
        const char *problem = json_string_value(json_object_get(scores, "problem"));
        if (!scores || problem)
            json_array_append_new(bad, json_pack("{s:I, s:s}", "id", (json_int_t)records[i].id, "reason",
                                                 problem ? problem : "no scores"));
        json_decref(scores);
    }
    /* lm-evaluation-harness's names: bleu_max, bleu_acc, bleu_diff, rouge1_max, ... */
    for (int m = 0; m < 4; m++)
        for (int q = 0; q < 3; q++) {
            size_t k = 0;
            for (size_t i = 0; i < n; i++) {
                json_t *scores = json_loads(records[i].scores, 0, NULL);
                json_t *entry = json_object_get(json_object_get(scores, metrics[m]), parts[q]);
                if (entry) values[k++] = tm_eval_json_get_number(entry);
                json_decref(scores);
            }
            char name[32];
            snprintf(name, sizeof name, "%s_%s", metrics[m], parts[q]);
            json_object_set_new(root, name, interval(values, k, t, 0x67656e00 + (uint64_t)(m * 3 + q)));
        }
    json_object_set_new(root, "bad_items", json_integer((json_int_t)json_array_size(bad)));
    json_object_set_new(root, "bad", bad);
    free(values);
    return TM_OK;
}

static tm_status aggregate_selfcheck(const tm_eval_task *t, const tm_eval_record *records, size_t n, json_t *root,
                                     tm_error *err) {
    double *scores = calloc(n + 1, sizeof *scores);
    int *labels = calloc(n + 1, sizeof *labels);
    if (!scores || !labels) {
        free(scores), free(labels);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    }
    json_t *bad = json_array();
    static const char *const names[] = {"ngram_avg", "ngram_max", "prompt"};
    for (int m = 0; m < 3; m++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *sc = json_loads(records[i].scores, 0, NULL);
            const char *problem = json_string_value(json_object_get(sc, "problem"));
            if ((!sc || problem) && m == 0)
                json_array_append_new(bad, json_pack("{s:I, s:s}", "id", (json_int_t)records[i].id, "reason",
                                                     problem ? problem : "no scores"));
            if (sc && !problem) {
                double x = tm_eval_json_get_number(json_object_get(sc, names[m]));
                if (!isnan(x)) {
                    scores[k] = x;
                    labels[k] = (int)json_integer_value(json_object_get(sc, "label"));
                    k++;
                }
            }
            json_decref(sc);
        }
        /* AUC of the passage score against HaluEval's label (1: hallucination). */
        json_object_set_new(root, names[m],
                            json_pack("{s:o, s:o, s:I}", "auc", tm_eval_json_number(tm_halluc_auc(scores, labels, k)),
                                      "mean", interval(scores, k, t, 0x73630000 + (uint64_t)m), "n", (json_int_t)k));
    }
    json_object_set_new(root, "bad_items", json_integer((json_int_t)json_array_size(bad)));
    json_object_set_new(root, "bad", bad);
    free(scores), free(labels);
    return TM_OK;
}

static tm_status aggregate(const tm_eval_task *t, const tm_eval_record *records, size_t n, char **results,
                           tm_error *err) {
    *results = NULL;
    json_t *root = json_pack("{s:I, s:b}", "items", (json_int_t)n, "prefix_reuse", t->halluc_reuse);
    if (!root) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    tm_status status = t->kind == TM_EVAL_KIND_TRUTHFULQA_MC    ? aggregate_truthfulqa(t, records, n, root, err)
                       : t->kind == TM_EVAL_KIND_TRUTHFULQA_GEN ? aggregate_truthfulqa_gen(t, records, n, root, err)
                       : t->kind == TM_EVAL_KIND_SELFCHECK      ? aggregate_selfcheck(t, records, n, root, err)
                                                                : aggregate_halueval(t, records, n, root, err);
    if (status) {
        json_decref(root);
        return status;
    }
    *results = tm_eval_json_text(root);
    return *results ? TM_OK : tm_error_set(err, TM_ERR_NOMEM, "out of memory");
}

#define HALLUC_RUNNER(var, kind_name)                                                                           \
    const tm_eval_runner var = {.name = kind_name, .prepare = prepare, .sample_count = sample_count,               \
                                .worker_create = worker_create, .worker_free = worker_free,                       \
                                .run_sample = run_sample, .aggregate = aggregate, .model_sha256 = model_sha256,   \
                                .release = release};
HALLUC_RUNNER(tm_eval_truthfulqa_mc_runner, "truthfulqa_mc")
HALLUC_RUNNER(tm_eval_halueval_qa_runner, "halueval_qa")
HALLUC_RUNNER(tm_eval_halueval_general_runner, "halueval_general")
HALLUC_RUNNER(tm_eval_truthfulqa_gen_runner, "truthfulqa_gen")
HALLUC_RUNNER(tm_eval_selfcheck_runner, "selfcheck")
