/* Prefix reuse in log-likelihood scoring, measured on TruthfulQA's
 * multiple-choice set: every choice of every set (MC0, MC1, MC2) of every
 * question after the six-shot primer, scored once with the scorer keeping
 * the cache of the shared prefix and once recomputing every request from
 * position 0. Reports tokens run through the forward pass, wall time, and
 * the MC scores of both runs (which must agree); never asserts a speed.
 * With --dump-requests it also writes the requests as llama.cpp's peer tool
 * reads them ({"ids":[...],"n_cont":K}), and with --dump-lls our summed
 * log-likelihoods, which is how tests/data's llama.cpp fixtures were made. */
#include "tracemark/evals.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    fprintf(stderr,
            "usage: bench_loglik --model M [--tokenizer T] --data mc_task.json [--limit N] [--threads N] [--ctx N]\n"
            "                    [--mode both|reuse|full] [--dump-requests FILE] [--dump-lls FILE]\n");
}

typedef struct {
    uint64_t tokens_evaluated, tokens_reused, requests;
    double seconds;
    double mean[TM_TRUTHFULQA_SETS], mean_norm[TM_TRUTHFULQA_SETS], mc2;
    size_t scored, bad, set_scored[TM_TRUTHFULQA_SETS];
    double *all_lls;
    size_t n_lls, lls_capacity;
} run_result;

static int run(tm_context *context, const tm_tokenizer *tokenizer, const tm_truthfulqa_data *data, size_t limit,
               bool reuse, FILE *requests, FILE *lls, run_result *out) {
    tm_error err = {0};
    tm_loglik_scorer *scorer = NULL;
    tm_context_reset(context);
    if (tm_loglik_scorer_create(&scorer, context, reuse, &err) != TM_OK) {
        fprintf(stderr, "bench_loglik: error: %s\n", err.message);
        return 1;
    }
    memset(out, 0, sizeof *out);
    double started = tm_seconds_now();
    for (size_t i = 0; i < data->n_items && i < limit; i++) {
        const tm_truthfulqa_item *item = &data->items[i];
        if (item->problem[0]) {
            out->bad++;
            continue;
        }
        if (requests) {
            /* The same requests the scorer makes, in its order. */
            char *context_text = tm_truthfulqa_mc_context(item->question, &err);
            for (int s = 0; s < TM_TRUTHFULQA_SETS; s++)
                for (size_t c = 0; !item->targets[s].problem[0] && c < item->targets[s].n; c++) {
                    char continuation[4096];
                    snprintf(continuation, sizeof continuation, " %s", item->targets[s].choices[c]);
                    int32_t *ids = NULL;
                    size_t n = 0, k = 0;
                    if (tm_loglik_encode(tokenizer, context_text, continuation, &ids, &n, &k, &err) != TM_OK) continue;
                    fprintf(requests, "{\"item\":%zu,\"set\":\"%s\",\"choice\":%zu,\"ids\":[", i,
                            tm_truthfulqa_set_name((tm_truthfulqa_set)s), c);
                    for (size_t t = 0; t < n; t++) fprintf(requests, "%s%d", t ? "," : "", ids[t]);
                    fprintf(requests, "],\"n_cont\":%zu}\n", k);
                    free(ids);
                }
            free(context_text);
        }
        tm_truthfulqa_item_result result;
        if (tm_truthfulqa_score_item(scorer, tokenizer, item, &result, &err) != TM_OK) {
            fprintf(stderr, "bench_loglik: item %zu: %s\n", i, err.message);
            out->bad++;
            continue;
        }
        for (int s = 0; s < TM_TRUTHFULQA_SETS; s++) {
            if (!result.scored[s]) continue;
            out->set_scored[s]++;
            out->mean[s] += result.scores[s].acc;
            out->mean_norm[s] += result.scores[s].acc_norm;
            for (size_t c = 0; c < item->targets[s].n; c++) {
                if (lls)
                    fprintf(lls, "{\"item\":%zu,\"set\":\"%s\",\"choice\":%zu,\"ll\":%.9g,\"greedy\":%s}\n", i,
                            tm_truthfulqa_set_name((tm_truthfulqa_set)s), c, result.lls[s][c],
                            result.greedy[s][c] ? "true" : "false");
                if (out->n_lls == out->lls_capacity) {
                    out->lls_capacity = out->lls_capacity ? 2 * out->lls_capacity : 4096;
                    out->all_lls = realloc(out->all_lls, out->lls_capacity * sizeof *out->all_lls);
                    if (!out->all_lls) return 1;
                }
                out->all_lls[out->n_lls++] = result.lls[s][c];
            }
        }
        if (result.scored[TM_TRUTHFULQA_MC2]) out->mc2 += result.scores[TM_TRUTHFULQA_MC2].mc2;
        out->scored++;
        tm_truthfulqa_item_result_free(&result);
    }
    out->seconds = tm_seconds_now() - started;
    tm_loglik_stats stats;
    tm_loglik_scorer_stats(scorer, &stats);
    out->tokens_evaluated = stats.tokens_evaluated;
    out->tokens_reused = stats.tokens_reused;
    out->requests = stats.requests;
    for (int s = 0; s < TM_TRUTHFULQA_SETS; s++)
        if (out->set_scored[s]) {
            out->mean[s] /= (double)out->set_scored[s];
            out->mean_norm[s] /= (double)out->set_scored[s];
        }
    if (out->set_scored[TM_TRUTHFULQA_MC2]) out->mc2 /= (double)out->set_scored[TM_TRUTHFULQA_MC2];
    tm_loglik_scorer_free(scorer);
    return 0;
}

static void print_run(const char *name, const run_result *r) {
    printf("\"%s\":{\"requests\":%llu,\"tokens_evaluated\":%llu,\"tokens_reused\":%llu,\"seconds\":%.3f,"
           "\"items\":%zu,\"bad_items\":%zu,\"scored_mc0_mc1_mc2\":[%zu,%zu,%zu],"
           "\"mc0\":%.6f,\"mc1\":%.6f,\"mc1_norm\":%.6f,\"mc2\":%.9f}",
           name, (unsigned long long)r->requests, (unsigned long long)r->tokens_evaluated,
           (unsigned long long)r->tokens_reused, r->seconds, r->scored, r->bad, r->set_scored[0], r->set_scored[1],
           r->set_scored[2], r->mean[TM_TRUTHFULQA_MC0],
           r->mean[TM_TRUTHFULQA_MC1], r->mean_norm[TM_TRUTHFULQA_MC1], r->mc2);
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *tokenizer_path = NULL, *data_path = NULL, *mode = "both";
    const char *requests_path = NULL, *lls_path = NULL;
    size_t limit = (size_t)-1;
    int threads = 1, n_ctx = 2048;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage();
            return 0;
        }
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--tokenizer")) tokenizer_path = v;
        else if (!strcmp(a, "--data")) data_path = v;
        else if (!strcmp(a, "--limit")) limit = (size_t)strtoull(v, NULL, 10);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--ctx")) n_ctx = atoi(v);
        else if (!strcmp(a, "--mode")) mode = v;
        else if (!strcmp(a, "--dump-requests")) requests_path = v;
        else if (!strcmp(a, "--dump-lls")) lls_path = v;
        else {
            usage();
            return 2;
        }
    }
    if (!model_path || !data_path || (strcmp(mode, "both") && strcmp(mode, "reuse") && strcmp(mode, "full"))) {
        usage();
        return 2;
    }
    tm_error err = {0};
    tm_model *model = NULL;
    tm_tokenizer *tokenizer = NULL;
    tm_context *context = NULL;
    tm_truthfulqa_data data;
    if (tm_model_load(&model, model_path, &err) != TM_OK || tm_model_tokenizer(&tokenizer, model, tokenizer_path, &err) != TM_OK ||
        tm_context_create(&context, model, n_ctx, threads, &err) != TM_OK ||
        tm_truthfulqa_load(data_path, &data, &err) != TM_OK) {
        fprintf(stderr, "bench_loglik: error: %s\n", err.message);
        return 1;
    }
    FILE *requests = requests_path ? fopen(requests_path, "w") : NULL;
    FILE *lls = lls_path ? fopen(lls_path, "w") : NULL;
    if ((requests_path && !requests) || (lls_path && !lls)) {
        fprintf(stderr, "bench_loglik: error: cannot write the dump files\n");
        return 1;
    }
    run_result reuse = {0}, full = {0};
    int rc = 0;
    printf("{\"model\":\"%s\",\"threads\":%d,\"ctx\":%d,", model_path, threads, n_ctx);
    bool dumped = false;
    if (strcmp(mode, "full")) {
        rc |= run(context, tokenizer, &data, limit, true, requests, lls, &reuse);
        print_run("reuse", &reuse);
        dumped = true;
    }
    if (strcmp(mode, "reuse")) {
        rc |= run(context, tokenizer, &data, limit, false, dumped ? NULL : requests, dumped ? NULL : lls, &full);
        printf("%s", strcmp(mode, "both") ? "" : ",");
        print_run("full", &full);
    }
    if (!strcmp(mode, "both")) {
        double worst = 0;
        for (size_t i = 0; i < reuse.n_lls && i < full.n_lls; i++)
            if (fabs(reuse.all_lls[i] - full.all_lls[i]) > worst) worst = fabs(reuse.all_lls[i] - full.all_lls[i]);
        printf(",\"token_ratio\":%.2f,\"time_ratio\":%.2f,\"max_ll_difference\":%.3g,\"same_scores\":%s",
               (double)full.tokens_evaluated / (double)(reuse.tokens_evaluated ? reuse.tokens_evaluated : 1),
               full.seconds / (reuse.seconds > 0 ? reuse.seconds : 1e-9), worst,
               reuse.mean[0] == full.mean[0] && reuse.mean[1] == full.mean[1] && reuse.mean[2] == full.mean[2] &&
                       reuse.mc2 == full.mc2 ? "true" : "false");
    }
    printf("}\n");
    if (requests) fclose(requests);
    if (lls) fclose(lls);
    free(reuse.all_lls);
    free(full.all_lls);
    tm_truthfulqa_data_free(&data);
    tm_context_free(context);
    tm_tokenizer_free(tokenizer);
    tm_model_free(model);
    return rc;
}
