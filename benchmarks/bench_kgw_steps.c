/* The watermark's per-token cost in the sampling step, as the server's
 * engine pays it: STREAMS sampler chains (one per slot, each its own
 * watermark state), each step sampling every stream from a vocabulary-sized
 * logit vector and accepting the next token of a real text (teacher forced,
 * so that the contexts repeat as they do in text, not as random tokens do).
 * MODE plain or kgw: run it under `valgrind --tool=callgrind` with each and
 * the difference in instructions is the watermark's, free of the noise of a
 * loaded machine; it also prints wall-clock ns per token. Never asserts. */
#include "tracemark/generator.h"
#include "tracemark/watermark.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_STREAMS = 64 };

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: bench_kgw_steps TOKENIZER KEY SCHEME.yaml TEXT_FILE plain|kgw STREAMS [STEPS]\n");
        return 2;
    }
    int streams = atoi(argv[6]), steps = argc > 7 ? atoi(argv[7]) : 128;
    bool marked = !strcmp(argv[5], "kgw");
    if (streams < 1 || streams > MAX_STREAMS || steps < 1) return 2;
    tm_error err = {0};
    tm_tokenizer *tokenizer = NULL;
    tm_wm_key *key = NULL;
    tm_wm_scheme *scheme = NULL;
    tm_wm_config config;
    char *text = NULL;
    size_t text_size = 0, n_ids = 0;
    int32_t *ids = NULL;
    if (tm_tokenizer_load(&tokenizer, argv[1], &err) || tm_wm_key_read(&key, argv[2], &err) ||
        tm_wm_config_load(&config, argv[3], &err) || tm_wm_scheme_create(&scheme, &config, key, &err) ||
        tm_read_file(argv[4], &text, &text_size, &err) ||
        tm_tokenizer_encode(tokenizer, text, text_size, false, &ids, &n_ids, &err)) {
        fprintf(stderr, "bench_kgw_steps: %s\n", err.message);
        return 1;
    }
    if (n_ids < (size_t)steps + (size_t)streams * 7 + 2) {
        fprintf(stderr, "bench_kgw_steps: the text is too short (%zu tokens)\n", n_ids);
        return 1;
    }
    int32_t n_vocab = tm_tokenizer_vocab_size(tokenizer);
    float *logits = malloc((size_t)n_vocab * sizeof *logits), *zipf = malloc((size_t)n_vocab * sizeof *zipf);
    if (!logits || !zipf) return 1;
    for (int32_t i = 0; i < n_vocab; i++) zipf[i] = -1.1f * logf((float)(i + 1));
    tm_sampler_chain *chains[MAX_STREAMS];
    tm_sampling_params params;
    tm_sampling_params_default(&params);
    for (int s = 0; s < streams; s++) {
        params.seed = 1000 + (uint64_t)s;
        tm_sampler *stage = marked ? tm_wm_sampler(scheme, params.seed) : NULL;
        chains[s] = tm_sampler_chain_build(&params, stage, NULL);
        tm_sampler_chain_accept(chains[s], ids[(size_t)s * 7]); /* each stream its own place in the text */
    }
    uint64_t state = 88172645463325252ull, sink = 0;
    double t0 = tm_seconds_now();
    for (int step = 0; step < steps; step++) {
        for (int s = 0; s < streams; s++) {
            /* A Zipf-shaped logit vector with fresh noise every step. */
            for (int32_t i = 0; i < n_vocab; i++) {
                state ^= state << 13, state ^= state >> 7, state ^= state << 17;
                logits[i] = zipf[i] + (float)(state >> 40) * (1.0f / 16777216.0f);
            }
            sink += (uint64_t)tm_sampler_chain_sample(chains[s], logits, n_vocab);
            tm_sampler_chain_accept(chains[s], ids[(size_t)s * 7 + (size_t)step + 1]);
        }
    }
    double seconds = tm_seconds_now() - t0;
    printf("{\"mode\": \"%s\", \"streams\": %d, \"steps\": %d, \"n_vocab\": %d, \"ns_per_token\": %.0f, \"sink\": %llu}\n",
           argv[5], streams, steps, n_vocab, 1e9 * seconds / ((double)streams * steps), (unsigned long long)sink);
    for (int s = 0; s < streams; s++) tm_sampler_chain_free(chains[s]);
    free(logits);
    free(zipf);
    free(ids);
    free(text);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
    tm_tokenizer_free(tokenizer);
    return 0;
}
