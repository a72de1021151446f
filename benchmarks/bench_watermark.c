/* The watermark's cost per token against plain sampling. Decodes a fixed
 * number of tokens greedily to record real next-token logits and the forward
 * pass's time per token (timed on a second, warm pass), then replays those
 * logits through the plain chain and through each scheme's chain (same
 * sampling parameters), and prints one
 * JSON line per scheme: sampling microseconds per token, the extra cost over
 * plain sampling (this thread's CPU time, see thread_seconds), and that
 * extra as a share of the whole token time.
 * BENCH_WM_LOGITS=FILE keeps the recorded logits (and the forward time) in
 * FILE: written when it does not exist, replayed without a model when it
 * does, so that two runs (two forced paths, or callgrind) sample the very
 * same logits. BENCH_WM_TOP_K, BENCH_WM_TOP_P, BENCH_WM_MIN_P and
 * BENCH_WM_TEMPERATURE set the sampling parameters of every chain (default:
 * temperature 1, no truncation, every candidate in play; llama.cpp's defaults
 * are 40, 0.95, 0.05 and 0.8). BENCH_WM_LOGIT_SCALE=S multiplies the
 * recorded logits by S: a random-weight model's are flat (std about 0.6
 * over the vocabulary), a trained model's far more peaked, which is what
 * decides how much truncation leaves. */
#include "tracemark/generator.h"
#include "tracemark/watermark.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { STEPS = 64, ROUNDS = 20 };

/* Passes over the recorded logits: ROUNDS, or fewer with BENCH_WM_ROUNDS (1
 * pass makes callgrind's instruction counts quick to get). */
static int rounds = ROUNDS;

/* This thread's CPU time: sampling runs on one thread, and on an idle
 * machine this is its wall time; on a shared one it leaves out the time the
 * thread waited for a core, which wall time would count against whichever
 * scheme happened to run then. */
static double thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Median of the passes over the recorded logits, microseconds per token. */
static double time_chain(tm_sampler_chain *chain, const float *logits, int32_t n_vocab) {
    double best[ROUNDS];
    for (int r = 0; r < rounds; r++) {
        tm_sampler_chain_reset(chain);
        double t0 = thread_seconds();
        for (int s = 0; s < STEPS; s++) {
            int32_t token = tm_sampler_chain_sample(chain, logits + (size_t)s * (size_t)n_vocab, n_vocab);
            tm_sampler_chain_accept(chain, token);
        }
        best[r] = (thread_seconds() - t0) * 1e6 / STEPS;
    }
    for (int i = 1; i < rounds; i++) /* insertion sort: 20 values */
        for (int j = i; j > 0 && best[j] < best[j - 1]; j--) {
            double t = best[j];
            best[j] = best[j - 1];
            best[j - 1] = t;
        }
    return best[rounds / 2];
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--path")) { /* the SIMD path the kernels take here */
        printf("%s\n", tm_cpu_kernel_path());
        return 0;
    }
    if (argc < 4 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: bench_watermark MODEL KEY THREADS [SCHEME.yaml...] | --path\n"
                        "Prints one JSON line per scheme: sampling us/token, overhead vs plain sampling.\n");
        return 2;
    }
    int threads = atoi(argv[3]);
    const char *rounds_env = getenv("BENCH_WM_ROUNDS");
    if (rounds_env && atoi(rounds_env) >= 1 && atoi(rounds_env) <= ROUNDS) rounds = atoi(rounds_env);
    tm_error err = {0};
    tm_model *model = NULL;
    tm_context *context = NULL;
    tm_wm_key *key = NULL;
    if (tm_model_load(&model, argv[1], &err) || tm_context_create(&context, model, STEPS + 8, threads, &err) ||
        tm_wm_key_read(&key, argv[2], &err)) {
        fprintf(stderr, "bench_watermark: %s\n", err.message);
        return 1;
    }
    int32_t n_vocab = tm_model_get_config(model)->n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)n_vocab * STEPS);
    if (!logits) {
        fprintf(stderr, "bench_watermark: out of memory\n");
        return 1;
    }
    /* Two greedy passes over the same tokens: the first records the logits and warms the
     * caches and pages, the second times the forward pass. */
    const float *out;
    double forward_us = 0;
    const char *saved = getenv("BENCH_WM_LOGITS");
    FILE *replay = saved && *saved ? fopen(saved, "rb") : NULL;
    if (replay) {
        int32_t file_vocab = 0;
        bool ok = fread(&file_vocab, sizeof file_vocab, 1, replay) == 1 && file_vocab == n_vocab &&
                  fread(&forward_us, sizeof forward_us, 1, replay) == 1 &&
                  fread(logits, sizeof(float) * (size_t)n_vocab, STEPS, replay) == STEPS;
        fclose(replay);
        if (!ok) {
            fprintf(stderr, "bench_watermark: %s: not logits of this model (vocabulary %d)\n", saved, n_vocab);
            return 1;
        }
    }
    for (int pass = 0; pass < 2 && !replay; pass++) {
        tm_context_reset(context);
        int32_t token = 1;
        double t0 = tm_seconds_now();
        for (int s = 0; s < STEPS; s++) {
            if (tm_context_eval(context, &token, 1, &out, &err)) {
                fprintf(stderr, "bench_watermark: %s\n", err.message);
                return 1;
            }
            if (pass == 0) memcpy(logits + (size_t)s * (size_t)n_vocab, out, sizeof(float) * (size_t)n_vocab);
            token = 0;
            for (int32_t v = 1; v < n_vocab; v++)
                if (out[v] > out[token]) token = v;
        }
        forward_us = (tm_seconds_now() - t0) * 1e6 / STEPS;
    }
    if (saved && *saved && !replay) {
        size_t row = sizeof(float) * (size_t)n_vocab, size = sizeof(int32_t) + sizeof(double) + row * STEPS;
        char *buffer = malloc(size);
        if (!buffer) {
            fprintf(stderr, "bench_watermark: out of memory\n");
            return 1;
        }
        memcpy(buffer, &n_vocab, sizeof n_vocab);
        memcpy(buffer + sizeof n_vocab, &forward_us, sizeof forward_us);
        memcpy(buffer + sizeof n_vocab + sizeof forward_us, logits, row * STEPS);
        if (tm_write_file_atomic(saved, buffer, size, 0644, &err)) {
            fprintf(stderr, "bench_watermark: %s\n", err.message);
            return 1;
        }
        free(buffer);
    }

    tm_sampling_params params;
    tm_sampling_params_default(&params);
    const char *v;
    if ((v = getenv("BENCH_WM_LOGIT_SCALE"))) {
        float scale = strtof(v, NULL);
        for (size_t i = 0; i < (size_t)STEPS * (size_t)n_vocab; i++) logits[i] *= scale;
    }
    if ((v = getenv("BENCH_WM_TOP_K"))) params.top_k = atoi(v);
    if ((v = getenv("BENCH_WM_TOP_P"))) params.top_p = strtof(v, NULL);
    if ((v = getenv("BENCH_WM_MIN_P"))) params.min_p = strtof(v, NULL);
    if ((v = getenv("BENCH_WM_TEMPERATURE"))) params.temperature = strtof(v, NULL);
    fprintf(stderr, "bench_watermark: temperature %g, top-k %d, top-p %g, min-p %g\n", (double)params.temperature,
            params.top_k, (double)params.top_p, (double)params.min_p);
    tm_sampler_chain *plain = tm_sampler_chain_from_params(&params);
    if (!plain) {
        fprintf(stderr, "bench_watermark: invalid sampling parameters\n");
        return 2;
    }
    double plain_us = time_chain(plain, logits, n_vocab);
    tm_sampler_chain_free(plain);
    printf("{\"scheme\":\"none\",\"path\":\"%s\",\"n_vocab\":%d,\"forward_us\":%.2f,\"sampling_us\":%.3f}\n",
           tm_cpu_kernel_path(), n_vocab, forward_us, plain_us);
    for (int i = 4; i < argc; i++) {
        tm_wm_config config;
        tm_wm_scheme *scheme = NULL;
        if (tm_wm_config_load(&config, argv[i], &err) || tm_wm_scheme_create(&scheme, &config, key, &err)) {
            fprintf(stderr, "bench_watermark: %s\n", err.message);
            return 1;
        }
        tm_sampler *stage = tm_wm_sampler(scheme, params.seed);
        bool biases = tm_wm_scheme_stage(scheme) == TM_WM_STAGE_LOGITS;
        tm_sampler_chain *chain = tm_sampler_chain_build(&params, biases ? stage : NULL, biases ? NULL : stage);
        double us = time_chain(chain, logits, n_vocab);
        char description[256];
        tm_wm_config_describe(&config, description, sizeof description);
        const char *file = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
        printf("{\"config\":\"%s\",\"scheme\":\"%s\",\"parameters\":\"%s\",\"path\":\"%s\",\"n_vocab\":%d,"
               "\"forward_us\":%.2f,\"sampling_us\":%.3f,\"overhead_us\":%.3f,\"overhead_share_of_token\":%.4f}\n",
               file, tm_wm_kind_name(config.kind), description, tm_cpu_kernel_path(), n_vocab, forward_us, us, us - plain_us,
               (us - plain_us) / (forward_us + plain_us));
        tm_sampler_chain_free(chain);
        tm_wm_scheme_free(scheme);
    }
    free(logits);
    tm_wm_key_free(key);
    tm_context_free(context);
    tm_model_free(model);
    return 0;
}
