/* The aggregates of the hallucination tasks: means with percentile
 * bootstrap intervals, ROC-AUC by the Mann-Whitney statistic, and the
 * confusion counts of "hallucinated" verdicts. Inputs are already-checked
 * per-item values; nothing here allocates on a path that can fail silently:
 * when the bootstrap cannot get memory it reports the point estimate with
 * an interval of NaN rather than a made-up one. */
#include "tracemark/evals.h"

#include <math.h>
#include <stdlib.h>

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* An unbiased draw in [0, n) (rejection of the short last stretch). */
static size_t draw_index(tm_rng *rng, size_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % (uint64_t)n;
    uint64_t r;
    do r = tm_rng_next(rng);
    while (r >= limit);
    return (size_t)(r % (uint64_t)n);
}

/* numpy's default (linear) percentile of sorted values. */
static double percentile(const double *sorted, size_t n, double q) {
    double position = q * (double)(n - 1);
    size_t below = (size_t)floor(position);
    size_t above = below + 1 < n ? below + 1 : below;
    double fraction = position - (double)below;
    return sorted[below] + (sorted[above] - sorted[below]) * fraction;
}

void tm_halluc_mean_interval(const double *values, size_t n, uint32_t resamples, uint64_t seed,
                             tm_halluc_interval *out) {
    out->n = n;
    if (n == 0) {
        out->value = out->low = out->high = NAN;
        return;
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += values[i];
    out->value = sum / (double)n;
    out->low = out->high = out->value;
    if (resamples == 0) return;
    double *means = malloc((size_t)resamples * sizeof *means);
    if (!means) {
        out->low = out->high = NAN;
        return;
    }
    tm_rng rng;
    tm_rng_seed(&rng, seed);
    for (uint32_t r = 0; r < resamples; r++) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += values[draw_index(&rng, n)];
        means[r] = s / (double)n;
    }
    qsort(means, resamples, sizeof *means, compare_doubles);
    out->low = percentile(means, resamples, 0.025);
    out->high = percentile(means, resamples, 0.975);
    free(means);
}

double tm_halluc_auc(const double *scores, const int *labels, size_t n) {
    size_t positives = 0, negatives = 0;
    for (size_t i = 0; i < n; i++) {
        if (labels[i] == 1) positives++;
        else negatives++;
    }
    if (positives == 0 || negatives == 0) return NAN;
    /* Quadratic, but exact with ties and plenty fast for a few thousand items. */
    double wins = 0;
    for (size_t i = 0; i < n; i++) {
        if (labels[i] != 1) continue;
        for (size_t j = 0; j < n; j++) {
            if (labels[j] == 1) continue;
            if (scores[i] > scores[j]) wins += 1;
            else if (scores[i] == scores[j]) wins += 0.5;
        }
    }
    return wins / ((double)positives * (double)negatives);
}

void tm_halluc_confusion_compute(const int *verdicts, const int *truths, size_t n, tm_halluc_confusion *out) {
    *out = (tm_halluc_confusion){0};
    out->total = n;
    for (size_t i = 0; i < n; i++) {
        if (verdicts[i] < 0) out->undecided++;
        else if (verdicts[i] == 1 && truths[i] == 1) out->true_positive++;
        else if (verdicts[i] == 1) out->false_positive++;
        else if (truths[i] == 1) out->false_negative++;
        else out->true_negative++;
    }
    double correct = (double)(out->true_positive + out->true_negative);
    out->accuracy = n ? correct / (double)n : NAN;
    out->undecided_rate = n ? (double)out->undecided / (double)n : NAN;
    /* An undecided item that was hallucinated is a miss for recall. */
    size_t called = out->true_positive + out->false_positive, actual = 0;
    for (size_t i = 0; i < n; i++) actual += truths[i] == 1;
    out->precision = called ? (double)out->true_positive / (double)called : NAN;
    out->recall = actual ? (double)out->true_positive / (double)actual : NAN;
    if (isnan(out->precision) || isnan(out->recall) || out->precision + out->recall == 0)
        out->f1 = NAN;
    else
        out->f1 = 2 * out->precision * out->recall / (out->precision + out->recall);
}
