/* Log-likelihood scoring of a continuation after a context, with prefix
 * reuse: the engine side of multiple-choice and judge-by-logprob evaluations
 * (TruthfulQA MC, HaluEval's Yes/No verdict). Requests are tokenized as
 * lm-evaluation-harness's _encode_pair does, so that scores mean what the
 * harness's mean; the scorer keeps the cache of the last request's ids and
 * runs only what follows the prefix the next request shares with it. It
 * must never change what a score is: reuse only skips recomputing cache
 * rows for the same ids at the same positions, and a request that does not
 * fit is refused, never truncated. */
#include "tracemark/generator.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct tm_loglik_scorer {
    tm_context *context;
    bool reuse;
    int32_t *cached; /* ids whose cache rows positions 0..n_cached-1 hold */
    size_t n_cached, cached_capacity;
    int32_t *primed; /* the prefix tm_loglik_scorer_prime ran */
    size_t n_primed;
    float *logits; /* rows for one request's continuation */
    size_t logits_capacity;
    tm_loglik_stats stats;
};

static bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

tm_status tm_loglik_encode(const tm_tokenizer *tokenizer, const char *context, const char *continuation,
                           int32_t **ids, size_t *n_ids, size_t *n_continuation, tm_error *err) {
    *ids = NULL;
    *n_ids = *n_continuation = 0;
    if (!context || !continuation) return tm_error_set(err, TM_ERR_ARGUMENT, "context or continuation is missing");
    size_t context_size = strlen(context), continuation_size = strlen(continuation);
    size_t kept = context_size;
    while (kept > 0 && is_ascii_space(context[kept - 1])) kept--;
    size_t whole_size;
    if (!tm_add_size(context_size, continuation_size, &whole_size) || !tm_add_size(whole_size, 1, &whole_size))
        return tm_error_set(err, TM_ERR_NOMEM, "context and continuation are too long");
    /* context + continuation is the same text whichever side the spaces are on. */
    char *whole = tm_alloc_array(whole_size, 1, err);
    if (!whole) return TM_ERR_NOMEM;
    memcpy(whole, context, context_size);
    memcpy(whole + context_size, continuation, continuation_size);
    bool add_bos = tm_tokenizer_adds_bos(tokenizer);
    int32_t *context_ids = NULL, *whole_ids = NULL;
    size_t n_context = 0, n_whole = 0;
    tm_status status = tm_tokenizer_encode(tokenizer, context, kept, add_bos, &context_ids, &n_context, err);
    if (status == TM_OK)
        status = tm_tokenizer_encode(tokenizer, whole, context_size + continuation_size, add_bos, &whole_ids, &n_whole,
                                     err);
    free(whole);
    if (status != TM_OK) {
        free(context_ids);
        return status;
    }
    size_t n_cont = n_whole > n_context ? n_whole - n_context : 0;
    if (n_cont == 0) {
        free(context_ids);
        free(whole_ids);
        return tm_error_set(err, TM_ERR_ARGUMENT, "the continuation has no tokens of its own after the context");
    }
    int32_t prefix = -1;
    if (n_context == 0) prefix = tm_tokenizer_bos(tokenizer) >= 0 ? tm_tokenizer_bos(tokenizer) : tm_tokenizer_eos(tokenizer);
    if (n_context == 0 && prefix < 0) {
        free(context_ids);
        free(whole_ids);
        return tm_error_set(err, TM_ERR_ARGUMENT, "empty context and the vocabulary has neither BOS nor EOS");
    }
    size_t n_first = n_context ? n_context : 1;
    int32_t *out = tm_alloc_array(n_first + n_cont, sizeof *out, err);
    if (!out) {
        free(context_ids);
        free(whole_ids);
        return TM_ERR_NOMEM;
    }
    if (n_context)
        memcpy(out, context_ids, n_context * sizeof *out);
    else
        out[0] = prefix;
    memcpy(out + n_first, whole_ids + n_context, n_cont * sizeof *out);
    free(context_ids);
    free(whole_ids);
    *ids = out;
    *n_ids = n_first + n_cont;
    *n_continuation = n_cont;
    return TM_OK;
}

tm_status tm_loglik_scorer_create(tm_loglik_scorer **out, tm_context *context, bool reuse_prefix, tm_error *err) {
    *out = NULL;
    if (!context) return tm_error_set(err, TM_ERR_ARGUMENT, "no context to score with");
    tm_loglik_scorer *s = tm_alloc_array(1, sizeof *s, err);
    if (!s) return TM_ERR_NOMEM;
    s->context = context;
    s->reuse = reuse_prefix;
    *out = s;
    return TM_OK;
}

void tm_loglik_scorer_free(tm_loglik_scorer *scorer) {
    if (!scorer) return;
    free(scorer->cached);
    free(scorer->primed);
    free(scorer->logits);
    free(scorer);
}

void tm_loglik_scorer_stats(const tm_loglik_scorer *scorer, tm_loglik_stats *out) { *out = scorer->stats; }

void tm_loglik_scorer_forget(tm_loglik_scorer *scorer) { scorer->n_cached = 0; }



static bool grow(void **buffer, size_t *capacity, size_t count, size_t size, tm_error *err) {
    if (count <= *capacity) return true;
    size_t bytes;
    if (!tm_mul_size(count, size, &bytes)) {
        tm_error_set(err, TM_ERR_NOMEM, "a buffer of %zu items of %zu bytes overflows", count, size);
        return false;
    }
    void *p = realloc(*buffer, bytes);
    if (!p) {
        tm_error_set(err, TM_ERR_NOMEM, "out of memory for %zu bytes", bytes);
        return false;
    }
    *buffer = p;
    *capacity = count;
    return true;
}

tm_status tm_loglik_score_ids(tm_loglik_scorer *scorer, const int32_t *ids, size_t n_ids, size_t n_continuation,
                              tm_loglik *out, tm_error *err) {
    double started = tm_seconds_now();
    memset(out, 0, sizeof *out);
    if (!ids || n_continuation == 0 || n_continuation >= n_ids)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%zu continuation tokens of %zu ids: need at least one of each",
                            n_continuation, n_ids);
    tm_context *context = scorer->context;
    /* The input is every id but the last; the continuation's first id is
     * predicted by the logits after the last context id. */
    size_t n_input = n_ids - 1, first_row = n_ids - n_continuation - 1;
    if (n_input > (size_t)tm_context_size(context))
        return tm_error_set(err, TM_ERR_LIMIT, "%zu tokens do not fit in a context of %d", n_input,
                            tm_context_size(context));
    size_t n_vocab = (size_t)tm_model_get_config(tm_context_model(context))->n_vocab;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= n_vocab)
            return tm_error_set(err, TM_ERR_ARGUMENT, "token id %d at index %zu is outside the vocabulary (0..%zu)",
                                ids[i], i, n_vocab - 1);
    size_t rows_size;
    if (!tm_mul_size(n_continuation, n_vocab, &rows_size))
        return tm_error_set(err, TM_ERR_NOMEM, "%zu continuation tokens overflow the logits buffer", n_continuation);
    if (!grow((void **)&scorer->logits, &scorer->logits_capacity, rows_size, sizeof(float), err)) return TM_ERR_NOMEM;
    if (!grow((void **)&scorer->cached, &scorer->cached_capacity, n_input, sizeof(int32_t), err)) return TM_ERR_NOMEM;

    /* Keep the cache of the longest prefix this request shares with the
     * last one, but never past the last context id: its logits are needed. */
    size_t start = 0;
    /* The kept ids are valid while the context still holds at least them
     * (nothing else may run on a scorer's context in between). */
    if (scorer->reuse && scorer->n_cached <= (size_t)tm_context_position(context)) {
        size_t limit = scorer->n_cached < first_row ? scorer->n_cached : first_row;
        while (start < limit && scorer->cached[start] == ids[start]) start++;
    }
    tm_status status = tm_context_truncate(context, (int32_t)start, err);
    if (status != TM_OK) return status;
    scorer->n_cached = start;
    status = tm_context_eval_rows(context, ids + start, n_input - start, first_row - start, scorer->logits, err);
    if (status != TM_OK) {
        /* The cache past start is in an unknown state: forget it. */
        tm_context_truncate(context, (int32_t)start, NULL);
        return status;
    }
    memcpy(scorer->cached + start, ids + start, (n_input - start) * sizeof *ids);
    scorer->n_cached = n_input;

    /* The log-softmax in double precision, as the llama.cpp peer computes it. */
    double logprob = 0;
    bool greedy = true;
    for (size_t r = 0; r < n_continuation; r++) {
        const float *row = scorer->logits + r * n_vocab;
        int32_t target = ids[first_row + 1 + r];
        float max = row[0];
        size_t best = 0;
        for (size_t j = 1; j < n_vocab; j++)
            if (row[j] > max) {
                max = row[j];
                best = j;
            }
        double sum = 0;
        for (size_t j = 0; j < n_vocab; j++) sum += exp((double)row[j] - (double)max);
        logprob += (double)row[target] - (double)max - log(sum);
        if ((int32_t)best != target) greedy = false;
    }
    out->logprob = logprob;
    out->greedy = greedy;
    out->n_tokens = (int32_t)n_continuation;
    scorer->stats.requests++;
    scorer->stats.tokens_evaluated += n_input - start;
    scorer->stats.tokens_reused += start;
    scorer->stats.seconds += tm_seconds_now() - started;
    return TM_OK;
}

static tm_status run_prefix(tm_loglik_scorer *scorer, const int32_t *ids, size_t n_ids, tm_error *err) {
    double started = tm_seconds_now();
    scorer->n_cached = 0;
    if (n_ids == 0) return TM_OK;
    if (!grow((void **)&scorer->cached, &scorer->cached_capacity, n_ids, sizeof(int32_t), err)) return TM_ERR_NOMEM;
    tm_status status = tm_context_truncate(scorer->context, 0, err);
    if (status == TM_OK) status = tm_context_eval(scorer->context, ids, n_ids, NULL, err);
    if (status != TM_OK) {
        tm_context_truncate(scorer->context, 0, NULL);
        return status;
    }
    memcpy(scorer->cached, ids, n_ids * sizeof *ids);
    scorer->n_cached = n_ids;
    scorer->stats.tokens_evaluated += n_ids;
    scorer->stats.seconds += tm_seconds_now() - started;
    return TM_OK;
}

tm_status tm_loglik_scorer_prime(tm_loglik_scorer *scorer, const int32_t *ids, size_t n_ids, tm_error *err) {
    int32_t *copy = NULL;
    if (n_ids && !(copy = tm_alloc_array(n_ids, sizeof *copy, err))) return TM_ERR_NOMEM;
    if (n_ids) memcpy(copy, ids, n_ids * sizeof *ids);
    free(scorer->primed);
    scorer->primed = copy;
    scorer->n_primed = n_ids;
    return run_prefix(scorer, ids, n_ids, err);
}

void tm_loglik_scorer_keep(tm_loglik_scorer *scorer, size_t n) {
    if (n < scorer->n_cached) scorer->n_cached = n;
}

tm_status tm_loglik_scorer_restore(tm_loglik_scorer *scorer, tm_error *err) {
    bool intact = scorer->n_cached >= scorer->n_primed &&
                  scorer->n_primed <= (size_t)tm_context_position(scorer->context) &&
                  (scorer->n_primed == 0 || !memcmp(scorer->cached, scorer->primed, scorer->n_primed * sizeof(int32_t)));
    if (intact) {
        scorer->n_cached = scorer->n_primed;
        return TM_OK;
    }
    return run_prefix(scorer, scorer->primed, scorer->n_primed, err);
}

tm_status tm_loglik_score(tm_loglik_scorer *scorer, const tm_tokenizer *tokenizer, const char *context,
                          const char *continuation, tm_loglik *out, tm_error *err) {
    int32_t *ids = NULL;
    size_t n_ids = 0, n_continuation = 0;
    tm_status status = tm_loglik_encode(tokenizer, context, continuation, &ids, &n_ids, &n_continuation, err);
    if (status == TM_OK) status = tm_loglik_score_ids(scorer, ids, n_ids, n_continuation, out, err);
    free(ids);
    return status;
}
