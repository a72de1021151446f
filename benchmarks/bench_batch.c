/* Continuous batching as the server runs it: aggregate decode tokens/s with
 * 1, 2, 4 and 8 concurrent streams, each stream its own context and sampler
 * chain, one tm_context_eval_batch per step for all of them (the weights read
 * once per step). Each configuration is timed with plain sampling and with
 * the watermark scheme plugged in (same parameters), so the per-token cost of
 * the watermark shows at every batch size. Prints one JSON line per stream
 * count: tokens/s with and without the watermark (median of ROUNDS), speedup
 * over one stream, and the watermark's overhead (medians of the ratios within
 * a round, each round timing every count back to back). Both by the wall clock and
 * by the thread's CPU clock: with THREADS 1 every kernel runs on this thread,
 * so CPU time is the work itself, undisturbed by other processes on a shared
 * machine (memory stalls count, being spent on the CPU); with more threads
 * only the wall clock measures a step (the CPU clock is this thread's share).
 * As in the server's engine, the streams sample (and watermark) their next
 * tokens on up to THREADS threads at once. Never asserts a speed. */
#include "tracemark/generator.h"
#include "tracemark/watermark.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>

enum { MAX_STREAMS = 8, PROMPT = 16, ROUNDS = 7 };

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of ROUNDS values (sorts a copy). */
static double median(const double *values) {
    double sorted[ROUNDS];
    memcpy(sorted, values, sizeof sorted);
    qsort(sorted, ROUNDS, sizeof *sorted, compare);
    return sorted[ROUNDS / 2];
}

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Wall seconds (CPU seconds in *cpu) for `steps` decode steps of n streams after a PROMPT-token prompt each. */
static double run(double *cpu, tm_context **contexts, int n, int steps, tm_wm_scheme *scheme, uint64_t seed, int32_t n_vocab,
                  int threads) {
    tm_sampler_chain *chains[MAX_STREAMS];
    const float *logits[MAX_STREAMS];
    int32_t tokens[MAX_STREAMS], prompt[PROMPT];
    tm_error err = {0};
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    params.temperature = 1.0f;
    for (int s = 0; s < n; s++) {
        params.seed = seed + (uint64_t)s;
        tm_sampler *stage = scheme ? tm_wm_sampler(scheme, params.seed) : NULL;
        bool selector = scheme && tm_wm_scheme_stage(scheme) == TM_WM_STAGE_SELECTOR;
        chains[s] = scheme ? tm_sampler_chain_build(&params, selector ? NULL : stage, selector ? stage : NULL)
                           : tm_sampler_chain_from_params(&params);
        for (int i = 0; i < PROMPT; i++) prompt[i] = 1 + (int32_t)((97 * i + 31 * s) % (n_vocab - 1));
        tm_context_reset(contexts[s]);
        if (tm_context_eval(contexts[s], prompt, PROMPT, &logits[s], &err) != TM_OK) {
            fprintf(stderr, "bench_batch: %s\n", err.message);
            exit(1);
        }
        for (int i = 0; i < PROMPT; i++) tm_sampler_chain_accept(chains[s], prompt[i]);
    }
    double t0 = tm_seconds_now(), c0 = cpu_seconds();
    for (int step = 0; step < steps; step++) {
        /* as the server's engine does: the streams sample on the engine's threads */
#pragma omp parallel for num_threads(n < threads ? n : threads) schedule(dynamic, 1)
        for (int s = 0; s < n; s++) {
            tokens[s] = tm_sampler_chain_sample(chains[s], logits[s], n_vocab);
            tm_sampler_chain_accept(chains[s], tokens[s]);
        }
        if (tm_context_eval_batch(contexts, tokens, (size_t)n, logits, &err) != TM_OK) {
            fprintf(stderr, "bench_batch: %s\n", err.message);
            exit(1);
        }
    }
    double seconds = tm_seconds_now() - t0;
    *cpu = cpu_seconds() - c0;
    for (int s = 0; s < n; s++) tm_sampler_chain_free(chains[s]);
    return seconds;
}

int main(int argc, char **argv) {
    if (argc < 5 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: bench_batch MODEL KEY SCHEME.yaml THREADS [STEPS [STREAMS]]\n"
                        "Aggregate decode tokens/s with 1, 2, 4, 8 streams batched, plain and watermarked\n"
                        "(only STREAMS streams when given, to profile one batch size: the ratios are then to itself).\n");
        return 2;
    }
    int threads = atoi(argv[4]), steps = argc > 5 ? atoi(argv[5]) : 64, only = argc > 6 ? atoi(argv[6]) : 0;
    if (threads < 1 || steps < 1 || only < 0 || only > MAX_STREAMS) {
        fprintf(stderr, "bench_batch: THREADS and STEPS must be positive, STREAMS 1..%d\n", MAX_STREAMS);
        return 2;
    }
    tm_error err = {0};
    tm_model *model = NULL;
    tm_wm_key *key = NULL;
    tm_wm_scheme *scheme = NULL;
    tm_wm_config config;
    if (tm_model_load(&model, argv[1], &err) || tm_wm_key_read(&key, argv[2], &err) ||
        tm_wm_config_load(&config, argv[3], &err) || tm_wm_scheme_create(&scheme, &config, key, &err)) {
        fprintf(stderr, "bench_batch: %s\n", err.message);
        return 1;
    }
    /* The vocabulary size through the tokenizer (the model's fields are not public API). */
    tm_tokenizer *tokenizer = NULL;
    if (tm_model_tokenizer(&tokenizer, model, NULL, &err)) {
        fprintf(stderr, "bench_batch: %s (a GGUF with its tokenizer is needed)\n", err.message);
        return 1;
    }
    int32_t n_vocab = tm_tokenizer_vocab_size(tokenizer);
    tm_tokenizer_free(tokenizer);
    tm_context *contexts[MAX_STREAMS];
    for (int s = 0; s < MAX_STREAMS; s++)
        if (tm_context_create(&contexts[s], model, PROMPT + steps + 8, threads, &err)) {
            fprintf(stderr, "bench_batch: %s\n", err.message);
            return 1;
        }
    char description[256];
    tm_wm_config_describe(&config, description, sizeof description);
    /* OpenBLAS (OpenMP build) sizes its team from this thread's OpenMP setting. */
    omp_set_num_threads(threads);
    double ignored;
    run(&ignored, contexts, 1, steps / 4 + 1, NULL, 1, n_vocab, threads); /* warm the pages */
    /* Every round times each stream count back to back, plain then
     * watermarked, so that the load of a shared machine, which drifts over
     * seconds, falls alike on the counts that are compared; the speedups and
     * the watermark's overhead are medians of ratios within a round. */
    int counts[4], n_counts = 0;
    for (int n = 1; n <= MAX_STREAMS; n *= 2)
        if (!only || n == only) counts[n_counts++] = n;
    double plain[4][ROUNDS], marked[4][ROUNDS], plain_cpu[4][ROUNDS], marked_cpu[4][ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        for (int c = 0; c < n_counts; c++) {
            plain[c][r] = run(&plain_cpu[c][r], contexts, counts[c], steps, NULL, 100 + (uint64_t)r, n_vocab, threads);
            marked[c][r] = run(&marked_cpu[c][r], contexts, counts[c], steps, scheme, 100 + (uint64_t)r, n_vocab, threads);
        }
    for (int c = 0; c < n_counts; c++) {
        int n = counts[c];
        double tokens = (double)n * steps, ratio[2][ROUNDS], overhead[2][ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            /* the first count measured is the reference: one stream unless STREAMS was given */
            ratio[0][r] = (tokens / marked[c][r]) / ((double)counts[0] * steps / marked[0][r]);
            ratio[1][r] = (tokens / marked_cpu[c][r]) / ((double)counts[0] * steps / marked_cpu[0][r]);
            overhead[0][r] = 100.0 * (marked[c][r] - plain[c][r]) / plain[c][r];
            overhead[1][r] = 100.0 * (marked_cpu[c][r] - plain_cpu[c][r]) / plain_cpu[c][r];
        }
        printf("{\"streams\": %d, \"threads\": %d, \"steps\": %d, \"rounds\": %d, \"scheme\": \"%s\", "
               "\"wall\": {\"plain_tokens_per_second\": %.1f, \"watermarked_tokens_per_second\": %.1f, "
               "\"speedup_over_one_stream\": %.2f, \"watermark_overhead_percent\": %.2f}, "
               "\"cpu\": {\"plain_tokens_per_second\": %.1f, \"watermarked_tokens_per_second\": %.1f, "
               "\"speedup_over_one_stream\": %.2f, \"watermark_overhead_percent\": %.2f}}\n",
               n, threads, steps, ROUNDS, description, tokens / median(plain[c]), tokens / median(marked[c]),
               median(ratio[0]), median(overhead[0]), tokens / median(plain_cpu[c]), tokens / median(marked_cpu[c]),
               median(ratio[1]), median(overhead[1]));
        fflush(stdout);
    }
    for (int s = 0; s < MAX_STREAMS; s++) tm_context_free(contexts[s]);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
    tm_model_free(model);
    return 0;
}
