/* Aggregates of the watermark task, computed from the stored records alone:
 * per scheme and attack, ROC-AUC and TPR at each FPR (threshold: the
 * analytic p-value alpha) with the empirical FPR on the null set beside it,
 * each with a seeded 95% bootstrap interval; TPR against length (per
 * attack, and unattacked) and tokens needed to detect (unattacked); quality
 * (perplexity, distinct-n, repetition) per scheme against the unwatermarked
 * generations. Scores are
 * -ln p, so "higher is more watermarked". Records of samples that are
 * missing (a shard) are simply not there: the counts say so. Never prints. */
#include "evals_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double *v;
    size_t n;
} column;

static void push(column *c, double x, size_t capacity) {
    if (c->n < capacity && !isnan(x)) c->v[c->n++] = x;
}

static json_t *interval_json(const tm_metric_interval *m) {
    return json_pack("{s:o, s:o, s:o}", "value", tm_eval_json_number(m->value), "low", tm_eval_json_number(m->low),
                     "high", tm_eval_json_number(m->high));
}

static uint64_t cell_seed(const tm_eval_task *t, const char *scheme, const char *attack, uint64_t metric) {
    return tm_eval_mix(tm_eval_mix(t->seed, tm_eval_name_hash(scheme)), tm_eval_name_hash(attack) ^ metric);
}

/* Mean and a percentile bootstrap interval of the mean. */
static tm_metric_interval mean_interval(const double *v, size_t n, uint32_t resamples, uint64_t seed) {
    tm_metric_interval m = {NAN, NAN, NAN};
    if (n == 0) return m;
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += v[i];
    m.value = sum / (double)n;
    if (resamples == 0) return m;
    double *means = malloc(resamples * sizeof *means);
    if (!means) return m;
    tm_rng rng;
    tm_rng_seed(&rng, seed);
    for (uint32_t b = 0; b < resamples; b++) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += v[tm_rng_next(&rng) % n];
        means[b] = s / (double)n;
    }
    /* The median helper sorts; the percentiles are then read off. */
    tm_metric_median(means, resamples);
    double lo = 0.025 * (resamples - 1), hi = 0.975 * (resamples - 1);
    size_t a = (size_t)lo, b = (size_t)hi;
    m.low = means[a] + (lo - (double)a) * (a + 1 < resamples ? means[a + 1] - means[a] : 0);
    m.high = means[b] + (hi - (double)b) * (b + 1 < resamples ? means[b + 1] - means[b] : 0);
    free(means);
    return m;
}

static const char *const quality_names[] = {"perplexity", "distinct_1", "distinct_2", "distinct_3", "repetition",
                                            "perplexity_oracle"};
enum { N_QUALITY = 6 };

static json_t *quality_block(const tm_eval_task *t, json_t **scores, const tm_eval_record *records, size_t n,
                             const char *group, const char *label, double baseline[N_QUALITY], bool set_baseline) {
    json_t *out = json_object();
    double *v = malloc((n + 1) * sizeof *v);
    if (!v) return out;
    /* perplexity_oracle only when the task names an oracle. */
    int n_quality = t->oracle_model[0] ? N_QUALITY : N_QUALITY - 1;
    for (int q = 0; q < n_quality; q++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(records[i].group, group) || !scores[i]) continue;
            double x = tm_eval_json_get_number(json_object_get(json_object_get(scores[i], "quality"), quality_names[q]));
            if (!isnan(x)) v[k++] = x;
        }
        tm_metric_interval m = mean_interval(v, k, t->bootstrap, cell_seed(t, label, quality_names[q], 99));
        json_t *entry = interval_json(&m);
        json_object_set_new(entry, "n", json_integer((json_int_t)k));
        if (set_baseline) baseline[q] = m.value;
        else {
            json_object_set_new(entry, "minus_baseline", tm_eval_json_number(m.value - baseline[q]));
            if (q == 0 || q == 5) json_object_set_new(entry, "ratio_to_baseline", tm_eval_json_number(m.value / baseline[q]));
        }
        json_object_set_new(out, quality_names[q], entry);
    }
    free(v);
    return out;
}

/* TPR at decision_fpr of the first `length` tokens, per task length, of the
 * watermarked samples of group: the unattacked text (attack NULL: the
 * record's prefix_log_p) or the text under attack (prefix_log_p_attacked). */
static json_t *tpr_by_length(const tm_eval_task *t, json_t **scores, const tm_eval_record *records, size_t n,
                             const char *group, const char *name, const char *attack, double *pos, tm_status *status,
                             tm_error *err) {
    json_t *by_length = json_array();
    double threshold = -log(t->decision_fpr);
    for (size_t k = 0; !*status && k < t->n_lengths; k++) {
        column p = {pos, 0};
        for (size_t i = 0; i < n; i++) {
            if (!scores[i] || strcmp(records[i].group, group)) continue;
            json_t *lengths = attack ? json_object_get(json_object_get(scores[i], "prefix_log_p_attacked"), attack)
                                     : json_object_get(scores[i], "prefix_log_p");
            push(&p, -tm_eval_json_get_number(json_array_get(lengths, k)), n);
        }
        tm_metric_interval tpr;
        /* The unattacked rows keep the seeds they always had. */
        uint64_t seed = attack ? cell_seed(t, name, attack, 1000 + k) : cell_seed(t, name, "length", k);
        *status = tm_metric_bootstrap(TM_METRIC_TPR, p.v, p.n, NULL, 0, threshold, t->bootstrap, seed, &tpr, err);
        json_array_append_new(by_length, json_pack("{s:i, s:I, s:o}", "length", (int)t->lengths[k], "n",
                                                   (json_int_t)p.n, "tpr", interval_json(&tpr)));
    }
    return by_length;
}

tm_status tm_eval_watermark_aggregate(const tm_eval_task *t, const tm_eval_record *records, size_t n, char **results,
                                      tm_error *err) {
    *results = NULL;
    json_t **scores = tm_alloc_array(n + 1, sizeof *scores, err);
    double *pos = tm_alloc_array(n + 1, sizeof *pos, err), *neg = tm_alloc_array(n + 1, sizeof *neg, err);
    if (!scores || !pos || !neg) {
        free(scores), free(pos), free(neg);
        return TM_ERR_NOMEM;
    }
    tm_status status = TM_OK;
    for (size_t i = 0; !status && i < n; i++) {
        json_error_t jerr;
        scores[i] = json_loads(records[i].scores, 0, &jerr);
        if (!scores[i]) status = tm_error_set(err, TM_ERR_FORMAT, "sample %lld: scores are not JSON", (long long)records[i].id);
    }
    json_t *root = json_object(), *schemes = json_object();
    double baseline[N_QUALITY] = {NAN, NAN, NAN, NAN, NAN, NAN};
    json_object_set_new(root, "baseline_quality",
                        quality_block(t, scores, records, n, "null/generated", "baseline", baseline, true));
    size_t n_null_generated = 0, n_null_human = 0;
    for (size_t i = 0; i < n; i++) {
        n_null_generated += !strcmp(records[i].group, "null/generated");
        n_null_human += !strcmp(records[i].group, "null/human");
    }
    json_object_set_new(root, "null_set", json_pack("{s:I, s:I}", "generated", (json_int_t)n_null_generated, "human",
                                                    (json_int_t)n_null_human));
    for (size_t si = 0; !status && si < t->n_schemes; si++) {
        const char *name = t->scheme_names[si];
        char group[TM_EVAL_NAME_MAX + 16];
        snprintf(group, sizeof group, "watermarked/%s", name);
        json_t *scheme = json_object(), *attacks = json_array();
        char description[256];
        tm_wm_config_describe(&t->schemes[si], description, sizeof description);
        json_object_set_new(scheme, "parameters", json_string(description));
        for (size_t a = 0; !status && a <= t->n_attacks; a++) {
            const char *attack = a ? t->attacks[a - 1].name : "none";
            column p = {pos, 0}, q = {neg, 0};
            for (size_t i = 0; i < n; i++) {
                if (!scores[i]) continue;
                json_t *log_p = json_object_get(scores[i], "log_p");
                if (!strcmp(records[i].group, group)) push(&p, -tm_eval_json_get_number(json_object_get(log_p, attack)), n);
                else if (!strncmp(records[i].group, "null/", 5))
                    push(&q, -tm_eval_json_get_number(json_object_get(json_object_get(log_p, name), attack)), n);
            }
            json_t *cell = json_pack("{s:s, s:I, s:I}", "attack", attack, "n_positive", (json_int_t)p.n, "n_negative",
                                     (json_int_t)q.n);
            tm_metric_interval m;
            status = tm_metric_bootstrap(TM_METRIC_AUC, p.v, p.n, q.v, q.n, 0, t->bootstrap,
                                         cell_seed(t, name, attack, 0), &m, err);
            json_object_set_new(cell, "auc", interval_json(&m));
            json_t *at = json_array();
            for (size_t f = 0; !status && f < t->n_fprs; f++) {
                double threshold = -log(t->fprs[f]);
                tm_metric_interval tpr, fpr;
                status = tm_metric_bootstrap(TM_METRIC_TPR, p.v, p.n, q.v, q.n, threshold, t->bootstrap,
                                             cell_seed(t, name, attack, 1 + 2 * f), &tpr, err);
                if (!status)
                    status = tm_metric_bootstrap(TM_METRIC_FPR, p.v, p.n, q.v, q.n, threshold, t->bootstrap,
                                                 cell_seed(t, name, attack, 2 + 2 * f), &fpr, err);
                json_array_append_new(at, json_pack("{s:o, s:o, s:o}", "fpr", json_real(t->fprs[f]), "tpr",
                                                    interval_json(&tpr), "empirical_fpr", interval_json(&fpr)));
            }
            json_object_set_new(cell, "at_fpr", at);
            /* TPR against length under this attack (a windowed variant scores
             * its whole-text twin's text, whose cell has it). */
            if (!status && !(a && t->attacks[a - 1].window))
                json_object_set_new(cell, "tpr_by_length",
                                    tpr_by_length(t, scores, records, n, group, name, a ? attack : NULL, pos, &status, err));
            json_array_append_new(attacks, cell);
        }
        json_object_set_new(scheme, "attacks", attacks);
        /* TPR against length and tokens needed, unattacked, at decision_fpr. */
        json_t *by_length = status ? json_array() : tpr_by_length(t, scores, records, n, group, name, NULL, pos, &status, err);
        json_object_set_new(scheme, "tpr_by_length", by_length);
        size_t count = 0, detected = 0;
        for (size_t i = 0; i < n; i++) {
            if (!scores[i] || strcmp(records[i].group, group)) continue;
            json_t *needed = json_object_get(scores[i], "tokens_to_detect");
            pos[count++] = json_is_integer(needed) ? (double)json_integer_value(needed) : INFINITY;
            detected += json_is_integer(needed);
        }
        double median = tm_metric_median(pos, count);
        json_object_set_new(scheme, "tokens_to_detect",
                            json_pack("{s:o, s:I, s:I, s:o}", "median", isfinite(median) ? json_real(median) : json_null(),
                                      "n", (json_int_t)count, "detected", (json_int_t)detected, "fpr",
                                      json_real(t->decision_fpr)));
        json_object_set_new(scheme, "quality", quality_block(t, scores, records, n, group, name, baseline, false));
        json_object_set_new(schemes, name, scheme);
    }
    json_object_set_new(root, "schemes", schemes);
    json_object_set_new(root, "bootstrap_resamples", json_integer(t->bootstrap));
    for (size_t i = 0; i < n; i++) json_decref(scores[i]);
    free(scores), free(pos), free(neg);
    if (status) {
        json_decref(root);
        return status;
    }
    *results = tm_eval_json_text(root);
    if (!*results) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    return TM_OK;
}
