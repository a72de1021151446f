/* The zero-shot formulas: the facts of one next-token distribution (log
 * probability, rank, entropy, the mean and variance of log p under a
 * reference distribution, the performer's log probability and the
 * cross-entropy), their aggregation into each method's score, and the
 * threshold at a false-positive rate from human scores. Pure arithmetic on
 * arrays the caller owns: this file must never touch a model, print, or turn
 * a score into a p-value (the scores have no known null distribution). */
#include "tracemark/zeroshot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_names[TM_ZEROSHOT_METHOD_COUNT] = {"likelihood", "log-rank", "entropy",
                                                                   "fast-detectgpt", "binoculars"};

const char *tm_zeroshot_method_name(tm_zeroshot_method method) {
    return (unsigned)method < TM_ZEROSHOT_METHOD_COUNT ? method_names[method] : NULL;
}

const char *tm_zeroshot_method_names(void) { return "likelihood, log-rank, entropy, fast-detectgpt, binoculars"; }

bool tm_zeroshot_method_parse(const char *name, tm_zeroshot_method *out) {
    for (int m = 0; name && m < TM_ZEROSHOT_METHOD_COUNT; m++)
        if (!strcmp(name, method_names[m])) {
            *out = (tm_zeroshot_method)m;
            return true;
        }
    return false;
}

bool tm_zeroshot_higher_is_machine(tm_zeroshot_method method) {
    return method == TM_ZEROSHOT_LIKELIHOOD || method == TM_ZEROSHOT_LOG_RANK || method == TM_ZEROSHOT_FAST_DETECTGPT;
}

/* log sum exp of the logits, in double; false when a logit is not finite. */
static bool log_normalizer(const float *logits, int32_t n, double *out) {
    double max = -INFINITY;
    for (int32_t j = 0; j < n; j++) {
        if (!isfinite(logits[j])) return false;
        if (logits[j] > max) max = logits[j];
    }
    double sum = 0;
    for (int32_t j = 0; j < n; j++) sum += exp((double)logits[j] - max);
    *out = max + log(sum);
    return true;
}

tm_status tm_zeroshot_position_stats(const float *logits, const float *reference_logits,
                                     const float *performer_logits, int32_t n_vocab, int32_t target,
                                     tm_zeroshot_position *out, tm_error *err) {
    if (!logits || !out || n_vocab < 1)
        return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: no logits or an empty vocabulary");
    if (target < 0 || target >= n_vocab)
        return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: token id %d outside the vocabulary of %d", target,
                            n_vocab);
    double lz, lz_ref = 0, lz_perf = 0;
    if (!log_normalizer(logits, n_vocab, &lz) ||
        (reference_logits && !log_normalizer(reference_logits, n_vocab, &lz_ref)) ||
        (performer_logits && !log_normalizer(performer_logits, n_vocab, &lz_perf)))
        return tm_error_set(err, TM_ERR_FORMAT, "zero-shot: a logit is not finite (NaN or infinity)");
    /* One pass over the vocabulary accumulates every sum; double precision
     * keeps sum p (log p)^2 - mu^2 from cancelling badly at 32k+ entries. */
    double entropy = 0, second = 0, ref_mean = 0, ref_second = 0, cross = 0;
    float target_logit = logits[target];
    int64_t above = 0;
    for (int32_t j = 0; j < n_vocab; j++) {
        double lp = (double)logits[j] - lz, p = exp(lp);
        entropy -= p * lp;
        second += p * lp * lp;
        if (reference_logits) {
            double q = exp((double)reference_logits[j] - lz_ref);
            ref_mean += q * lp;
            ref_second += q * lp * lp;
        }
        if (performer_logits) cross -= p * ((double)performer_logits[j] - lz_perf);
        if (logits[j] > target_logit) above++;
    }
    out->log_prob = (double)target_logit - lz;
    out->rank = (double)(above + 1);
    out->entropy = entropy;
    if (reference_logits) {
        out->expected_log_prob = ref_mean;
        out->variance_log_prob = fmax(0.0, ref_second - ref_mean * ref_mean);
    } else {
        out->expected_log_prob = -entropy;
        out->variance_log_prob = fmax(0.0, second - entropy * entropy);
    }
    out->performer_log_prob = performer_logits ? (double)performer_logits[target] - lz_perf : NAN;
    out->cross_entropy = performer_logits ? cross : NAN;
    return TM_OK;
}

tm_status tm_zeroshot_score_positions(tm_zeroshot_method method, const tm_zeroshot_position *positions, size_t n,
                                      tm_zeroshot_score *out, tm_error *err) {
    if ((unsigned)method >= TM_ZEROSHOT_METHOD_COUNT || !out)
        return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: unknown method");
    if (!positions || n == 0)
        return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: nothing to score (the text has no token after BOS)");
    double sum_lp = 0, sum_log_rank = 0, sum_entropy = 0, sum_mu = 0, sum_var = 0, sum_lp2 = 0, sum_cross = 0;
    for (size_t i = 0; i < n; i++) {
        const tm_zeroshot_position *p = &positions[i];
        sum_lp += p->log_prob;
        sum_log_rank += log(p->rank);
        sum_entropy += p->entropy;
        sum_mu += p->expected_log_prob;
        sum_var += p->variance_log_prob;
        sum_lp2 += p->performer_log_prob;
        sum_cross += p->cross_entropy;
    }
    memset(out, 0, sizeof *out);
    out->method = method;
    out->higher_is_machine = tm_zeroshot_higher_is_machine(method);
    out->n_scored = n;
    out->mean_log_prob = sum_lp / (double)n;
    out->mean_log_rank = sum_log_rank / (double)n;
    out->mean_entropy = sum_entropy / (double)n;
    out->discrepancy_numerator = sum_lp - sum_mu;
    out->discrepancy_variance = sum_var;
    out->log_perplexity = -sum_lp2 / (double)n;
    out->log_cross_perplexity = sum_cross / (double)n;
    switch (method) {
    case TM_ZEROSHOT_LIKELIHOOD: out->score = out->mean_log_prob; break;
    case TM_ZEROSHOT_LOG_RANK: out->score = -out->mean_log_rank; break;
    case TM_ZEROSHOT_ENTROPY: out->score = out->mean_entropy; break;
    case TM_ZEROSHOT_FAST_DETECTGPT:
        if (!(sum_var > 0))
            return tm_error_set(err, TM_ERR_ARGUMENT,
                                "fast-detectgpt: the reference distributions have zero variance of log p at every "
                                "position, so the discrepancy is undefined");
        out->score = out->discrepancy_numerator / sqrt(sum_var);
        break;
    case TM_ZEROSHOT_BINOCULARS:
        if (!isfinite(sum_lp2) || !isfinite(sum_cross))
            return tm_error_set(err, TM_ERR_ARGUMENT, "binoculars: needs the performer model's distributions");
        if (!(out->log_cross_perplexity > 0))
            return tm_error_set(err, TM_ERR_ARGUMENT,
                                "binoculars: the cross-perplexity is 1 (observer and performer certain and equal), "
                                "so the ratio is undefined");
        out->score = out->log_perplexity / out->log_cross_perplexity;
        break;
    default: break;
    }
    if (!isfinite(out->score))
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: the score is not finite", tm_zeroshot_method_name(method));
    return TM_OK;
}

static int compare_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

bool tm_zeroshot_is_machine(tm_zeroshot_method method, double score, double threshold) {
    return tm_zeroshot_higher_is_machine(method) ? score > threshold : score < threshold;
}

tm_status tm_zeroshot_threshold_at_fpr(tm_zeroshot_method method, const double *human_scores, size_t n, double fpr,
                                       double *threshold, double *achieved_fpr, tm_error *err) {
    if ((unsigned)method >= TM_ZEROSHOT_METHOD_COUNT)
        return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: unknown method");
    if (!human_scores || n == 0)
        return tm_error_set(err, TM_ERR_ARGUMENT, "calibration: no human scores");
    if (!(fpr >= 0 && fpr < 1)) return tm_error_set(err, TM_ERR_ARGUMENT, "calibration: fpr must be in [0, 1)");
    double *sorted = tm_alloc_array(n, sizeof *sorted, err);
    if (!sorted) return TM_ERR_NOMEM;
    /* Sort so that the most machine-like human score comes first; scores of
     * a lower-is-machine method are negated and negated back. */
    double sign = tm_zeroshot_higher_is_machine(method) ? 1.0 : -1.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(human_scores[i])) {
            free(sorted);
            return tm_error_set(err, TM_ERR_ARGUMENT, "calibration: human score %zu is not finite", i + 1);
        }
        sorted[i] = sign * human_scores[i];
    }
    qsort(sorted, n, sizeof *sorted, compare_desc);
    size_t allowed = (size_t)floor(fpr * (double)n);
    if (allowed >= n) allowed = n - 1;
    double t = sorted[allowed];
    size_t beyond = 0;
    for (size_t i = 0; i < n; i++) beyond += sorted[i] > t;
    free(sorted);
    *threshold = sign * t;
    if (achieved_fpr) *achieved_fpr = (double)beyond / (double)n;
    return TM_OK;
}
