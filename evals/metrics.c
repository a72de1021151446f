/* Detection metrics over score tables (higher score = more watermarked):
 * ROC-AUC as the Mann-Whitney statistic with ties counted one half, the rate
 * of scores at or above a threshold (TPR or FPR at an analytic p-value
 * threshold), stratified percentile bootstrap intervals, and the median.
 * Pure arithmetic: no I/O, no globals; every random draw comes from the
 * caller's seed so that intervals repeat bit for bit. */
#include "tracemark/evals.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* For each positive, the number of negatives strictly below it (lo) and at or
 * below it (hi), from the sorted negatives by binary search. */
static void positions(const double *sorted, size_t n, double x, size_t *lo, size_t *hi) {
    size_t a = 0, b = n;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (sorted[m] < x) a = m + 1;
        else b = m;
    }
    *lo = a;
    b = n;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (sorted[m] <= x) a = m + 1;
        else b = m;
    }
    *hi = a;
}

double tm_metric_auc(const double *positives, size_t n_positives, const double *negatives, size_t n_negatives) {
    if (n_positives == 0 || n_negatives == 0) return NAN;
    double *sorted = malloc(n_negatives * sizeof *sorted);
    if (!sorted) return NAN;
    memcpy(sorted, negatives, n_negatives * sizeof *sorted);
    qsort(sorted, n_negatives, sizeof *sorted, compare_double);
    /* Twice the U statistic stays an exact integer in a double up to 2^53 pairs. */
    double twice_u = 0;
    for (size_t i = 0; i < n_positives; i++) {
        size_t lo, hi;
        positions(sorted, n_negatives, positives[i], &lo, &hi);
        twice_u += 2.0 * (double)lo + (double)(hi - lo);
    }
    free(sorted);
    return twice_u / (2.0 * (double)n_positives * (double)n_negatives);
}

double tm_metric_rate_at_least(const double *values, size_t n, double threshold) {
    if (n == 0) return NAN;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += values[i] >= threshold;
    return (double)count / (double)n;
}

double tm_metric_median(double *values, size_t n) {
    if (n == 0) return NAN;
    qsort(values, n, sizeof *values, compare_double);
    if (n % 2) return values[n / 2];
    double a = values[n / 2 - 1], b = values[n / 2];
    if (isinf(a) || isinf(b)) return isinf(a) ? a : b; /* inf - inf would make a NaN */
    return (a + b) / 2;
}

/* Linear interpolation between order statistics (numpy's default percentile). */
static double percentile(const double *sorted, size_t n, double q) {
    double position = q * (double)(n - 1);
    size_t below = (size_t)floor(position);
    if (below + 1 >= n) return sorted[n - 1];
    double fraction = position - (double)below;
    return sorted[below] + fraction * (sorted[below + 1] - sorted[below]);
}

static size_t draw(tm_rng *rng, size_t n) { return (size_t)(tm_rng_next(rng) % n); }

tm_status tm_metric_bootstrap(tm_metric_kind kind, const double *positives, size_t n_positives,
                              const double *negatives, size_t n_negatives, double threshold, uint32_t resamples,
                              uint64_t seed, tm_metric_interval *out, tm_error *err) {
    out->value = out->low = out->high = NAN;
    bool need_p = kind != TM_METRIC_FPR, need_n = kind != TM_METRIC_TPR;
    if ((need_p && n_positives == 0) || (need_n && n_negatives == 0)) return TM_OK;
    switch (kind) {
    case TM_METRIC_AUC: out->value = tm_metric_auc(positives, n_positives, negatives, n_negatives); break;
    case TM_METRIC_TPR: out->value = tm_metric_rate_at_least(positives, n_positives, threshold); break;
    case TM_METRIC_FPR: out->value = tm_metric_rate_at_least(negatives, n_negatives, threshold); break;
    }
    if (resamples == 0) return TM_OK;
    double *stats = tm_alloc_array(resamples, sizeof *stats, err);
    double *sorted = need_n && kind == TM_METRIC_AUC ? tm_alloc_array(n_negatives, sizeof *sorted, err) : NULL;
    size_t *lo = kind == TM_METRIC_AUC ? tm_alloc_array(n_positives, sizeof *lo, err) : NULL;
    size_t *hi = kind == TM_METRIC_AUC ? tm_alloc_array(n_positives, sizeof *hi, err) : NULL;
    double *weights = kind == TM_METRIC_AUC ? tm_alloc_array(n_negatives + 1, sizeof *weights, err) : NULL;
    if (!stats || (kind == TM_METRIC_AUC && (!sorted || !lo || !hi || !weights))) {
        free(stats), free(sorted), free(lo), free(hi), free(weights);
        return TM_ERR_NOMEM;
    }
    if (kind == TM_METRIC_AUC) {
        memcpy(sorted, negatives, n_negatives * sizeof *sorted);
        qsort(sorted, n_negatives, sizeof *sorted, compare_double);
        for (size_t i = 0; i < n_positives; i++) positions(sorted, n_negatives, positives[i], &lo[i], &hi[i]);
    }
    tm_rng rng;
    tm_rng_seed(&rng, seed);
    for (uint32_t b = 0; b < resamples; b++) {
        if (kind == TM_METRIC_TPR || kind == TM_METRIC_FPR) {
            const double *v = kind == TM_METRIC_TPR ? positives : negatives;
            size_t n = kind == TM_METRIC_TPR ? n_positives : n_negatives, count = 0;
            for (size_t i = 0; i < n; i++) count += v[draw(&rng, n)] >= threshold;
            stats[b] = (double)count / (double)n;
            continue;
        }
        /* AUC of the resample: multiplicities of the sorted negatives, their
         * prefix sums, then each drawn positive's lo/hi counts in O(1). The
         * negatives are drawn first, then the positives. */
        memset(weights, 0, (n_negatives + 1) * sizeof *weights);
        for (size_t j = 0; j < n_negatives; j++) {
            /* Drawing an index into the unsorted table and mapping it through
             * the sort would cost a search; drawing into the sorted table is
             * the same distribution. */
            weights[draw(&rng, n_negatives) + 1] += 1;
        }
        for (size_t j = 1; j <= n_negatives; j++) weights[j] += weights[j - 1];
        double twice_u = 0;
        for (size_t i = 0; i < n_positives; i++) {
            size_t k = draw(&rng, n_positives);
            twice_u += 2.0 * weights[lo[k]] + (weights[hi[k]] - weights[lo[k]]);
        }
        stats[b] = twice_u / (2.0 * (double)n_positives * (double)n_negatives);
    }
    qsort(stats, resamples, sizeof *stats, compare_double);
    out->low = percentile(stats, resamples, 0.025);
    out->high = percentile(stats, resamples, 0.975);
    free(stats), free(sorted), free(lo), free(hi), free(weights);
    return TM_OK;
}
