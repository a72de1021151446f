/* Example: generate watermarked text with the whole library:
 * cc generate.c $(pkg-config --cflags --libs tracemark).
 * Usage: generate MODEL KEY SCHEME.yaml PROMPT [TOKENIZER]. Prints the
 * generated text (after the prompt) to stdout; the key is never printed. */
#include <tracemark/generator.h>
#include <tracemark/watermark.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) { fprintf(stderr, "usage: generate MODEL KEY SCHEME.yaml PROMPT [TOKENIZER]\n"); return 2; }
    tm_error err = {0};
    tm_model *model = NULL;
    tm_tokenizer *tokenizer = NULL;
    tm_context *context = NULL;
    tm_wm_key *key = NULL;
    tm_wm_scheme *scheme = NULL;
    tm_sampler_chain *chain = NULL;
    tm_wm_config config;
    tm_sampling_params sampling;
    tm_sampling_params_default(&sampling);
    sampling.seed = 42;
    tm_generate_options options = {.max_tokens = 200};
    tm_generation g = {0};
    int status = 1;
    if (tm_model_load(&model, argv[1], &err) || tm_model_tokenizer(&tokenizer, model, argc == 6 ? argv[5] : NULL, &err) ||
        tm_context_create(&context, model, 0, 0, &err) || tm_wm_key_read(&key, argv[2], &err) ||
        tm_wm_config_load(&config, argv[3], &err) || tm_wm_scheme_create(&scheme, &config, key, &err))
        goto done;
    /* A logit-biasing scheme (KGW, Unigram) goes early in the chain; the
     * distortion-free ones replace the final draw. */
    tm_sampler *stage = tm_wm_sampler(scheme, sampling.seed);
    bool bias = tm_wm_scheme_stage(scheme) == TM_WM_STAGE_LOGITS;
    if (!stage || !(chain = tm_sampler_chain_build(&sampling, bias ? stage : NULL, bias ? NULL : stage))) { tm_error_set(&err, TM_ERR_NOMEM, "cannot build the sampler chain"); goto done; }
    if (tm_generate(context, tokenizer, chain, argv[4], &options, &g, &err)) goto done;
    printf("%.*s\n", (int)g.text_size, g.text);
    fprintf(stderr, "%zu tokens, watermark key %s\n", g.n_ids, tm_wm_scheme_key_id(scheme));
    status = 0;
done:
    if (status) fprintf(stderr, "generate: %s\n", err.message);
    tm_generation_free(&g);
    tm_sampler_chain_free(chain);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
    tm_context_free(context);
    tm_tokenizer_free(tokenizer);
    tm_model_free(model);
    return status;
}
