/* Prompt and decode speed of tracemark's engine, measured exactly as
 * ../shared/tools/llamaref measures llama.cpp (same pseudo-random prompt ids,
 * same decode walk, median of 3 runs), so that benchmarks/run.sh can print
 * the two side by side as ratios. Prints one JSON line; load_ms (model load
 * and context creation) has no llama.cpp counterpart and is informational.
 * An optional fifth argument, f32 (default) or f16, is the KV cache type. */
#include "tracemark/generator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    tm_kv_type kv = TM_KV_F32;
    if (argc < 5 || argc > 6 || !strcmp(argv[1], "--help") || (argc == 6 && !tm_kv_type_parse(argv[5], &kv))) {
        fprintf(stderr, "usage: bench_generate MODEL N_PROMPT N_GEN THREADS [f32|f16]\n"
                        "Prints {\"engine\":\"tracemark\",...,\"prompt_tok_s\",\"decode_tok_s\",\"load_ms\"} (median of 3).\n");
        return 2;
    }
    int n_prompt = atoi(argv[2]), n_gen = atoi(argv[3]), threads = atoi(argv[4]);
    if (n_prompt < 1 || n_gen < 1 || threads < 1) {
        fprintf(stderr, "bench_generate: N_PROMPT, N_GEN and THREADS must be positive\n");
        return 2;
    }
    tm_error err = {0};
    tm_model *model = NULL;
    tm_context *context = NULL;
    double load_start = tm_seconds_now();
    if (tm_model_load(&model, argv[1], &err) ||
        tm_context_create_kv(&context, model, n_prompt + n_gen + 1, threads, kv, &err)) {
        fprintf(stderr, "bench_generate: %s\n", err.message);
        tm_model_free(model);
        return 1;
    }
    double load_ms = (tm_seconds_now() - load_start) * 1e3;
    int32_t n_vocab = tm_model_get_config(model)->n_vocab;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)n_prompt);
    srand(1); /* the same ids as llamaref's bench */
    for (int i = 0; i < n_prompt; i++) tokens[i] = 1 + rand() % (n_vocab - 1);
    double prompt_rates[3], decode_rates[3];
    const float *logits;
    for (int r = 0; r < 3; r++) {
        tm_context_reset(context);
        double t0 = tm_seconds_now();
        if (tm_context_eval(context, tokens, (size_t)n_prompt, &logits, &err)) goto failed;
        double t1 = tm_seconds_now();
        int32_t current = tokens[n_prompt - 1];
        for (int s = 0; s < n_gen; s++) {
            current = 1 + (int32_t)(((int64_t)current * 7919) % (n_vocab - 1));
            if (tm_context_eval(context, &current, 1, &logits, &err)) goto failed;
        }
        double t2 = tm_seconds_now();
        prompt_rates[r] = n_prompt / (t1 - t0);
        decode_rates[r] = n_gen / (t2 - t1);
    }
    qsort(prompt_rates, 3, sizeof(double), compare_doubles);
    qsort(decode_rates, 3, sizeof(double), compare_doubles);
    printf("{\"engine\":\"tracemark\",\"n_prompt\":%d,\"n_gen\":%d,\"threads\":%d,\"prompt_tok_s\":%.2f,"
           "\"decode_tok_s\":%.2f,\"load_ms\":%.1f}\n",
           n_prompt, n_gen, threads, prompt_rates[1], decode_rates[1], load_ms);
    free(tokens);
    tm_context_free(context);
    tm_model_free(model);
    return 0;
failed:
    fprintf(stderr, "bench_generate: %s\n", err.message);
    free(tokens);
    tm_context_free(context);
    tm_model_free(model);
    return 1;
}
