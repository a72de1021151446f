/* Text quality measures of a generation: perplexity under a model (one
 * forward step per token, the log-softmax of the logits that predicted each
 * scored token), distinct-n over token ids, and seq-rep-4 (Welleck et al.
 * 2020, "Neural text generation with unlikelihood training"). These compare a
 * watermarked generation with the unwatermarked baseline; they never sample
 * and never print. */
#include "tracemark/evals.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int compare_grams(const void *a, const void *b, void *n) {
    return memcmp(a, b, *(const size_t *)n * sizeof(int32_t));
}

/* Unique n-grams among the n_ids - n + 1 of ids (0 when there are none). */
static size_t unique_grams(const int32_t *ids, size_t n_ids, size_t n, size_t *total) {
    *total = n_ids >= n ? n_ids - n + 1 : 0;
    if (*total == 0) return 0;
    int32_t *grams = malloc(*total * n * sizeof *grams);
    if (!grams) return 0;
    for (size_t i = 0; i < *total; i++) memcpy(grams + i * n, ids + i, n * sizeof *grams);
    qsort_r(grams, *total, n * sizeof *grams, compare_grams, &n);
    size_t unique = 1;
    for (size_t i = 1; i < *total; i++) unique += memcmp(grams + (i - 1) * n, grams + i * n, n * sizeof *grams) != 0;
    free(grams);
    return unique;
}

double tm_quality_distinct(const int32_t *ids, size_t n_ids, int n) {
    if (n < 1) return NAN;
    size_t total;
    size_t unique = unique_grams(ids, n_ids, (size_t)n, &total);
    return total ? (double)unique / (double)total : NAN;
}

double tm_quality_repetition(const int32_t *ids, size_t n_ids) {
    size_t total;
    size_t unique = unique_grams(ids, n_ids, 4, &total);
    return total ? 1.0 - (double)unique / (double)total : NAN;
}

tm_status tm_quality_perplexity(tm_context *context, int32_t n_vocab, const int32_t *ids, size_t n_ids,
                                size_t n_prompt, double *perplexity, tm_error *err) {
    *perplexity = NAN;
    if (n_prompt == 0 || n_prompt >= n_ids) return TM_OK; /* the first token has nothing predicting it */
    tm_context_reset(context);
    const float *logits = NULL;
    if (tm_context_eval(context, ids, n_prompt, &logits, err)) return err ? err->code : TM_ERR_ARGUMENT;
    double nll = 0;
    size_t scored = 0;
    for (size_t i = n_prompt; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= n_vocab) return tm_error_set(err, TM_ERR_ARGUMENT, "token %d outside the vocabulary", (int)ids[i]);
        double max = logits[0];
        for (int32_t v = 1; v < n_vocab; v++) max = logits[v] > max ? logits[v] : max;
        double sum = 0;
        for (int32_t v = 0; v < n_vocab; v++) sum += exp((double)logits[v] - max);
        nll -= (double)logits[ids[i]] - max - log(sum);
        scored++;
        if (i + 1 < n_ids && tm_context_eval(context, ids + i, 1, &logits, err)) return err ? err->code : TM_ERR_ARGUMENT;
    }
    *perplexity = exp(nll / (double)scored);
    return TM_OK;
}
