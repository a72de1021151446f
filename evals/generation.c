/* What the task kinds that generate share: the sampler chain of a task's
 * sampling settings, plain or with a watermark scheme plugged in, and the
 * paraphrase attack by span regeneration, which re-draws whole blocks of a
 * text's tokens from a model without the watermark. Both are deterministic
 * from their seed, so a sample's records repeat on every machine. Nothing
 * here scores, stores or prints. */
#include "evals_internal.h"

#include <string.h>

tm_sampler_chain *tm_eval_sampler_chain(const tm_eval_task *t, const tm_wm_config *config, const tm_wm_key *key,
                                        uint64_t seed, tm_wm_scheme **scheme_out, tm_error *err) {
    tm_sampling_params params = t->sampling;
    params.seed = seed;
    *scheme_out = NULL;
    if (!config) {
        tm_sampler_chain *chain = tm_sampler_chain_from_params(&params);
        if (!chain) tm_error_set(err, TM_ERR_NOMEM, "cannot build the sampler chain");
        return chain;
    }
    if (tm_wm_scheme_create(scheme_out, config, key, err)) return NULL;
    bool biases = tm_wm_scheme_stage(*scheme_out) == TM_WM_STAGE_LOGITS;
    tm_sampler *stage = tm_wm_sampler(*scheme_out, tm_eval_mix(seed, 1));
    tm_sampler_chain *chain = stage ? tm_sampler_chain_build(&params, biases ? stage : NULL, biases ? NULL : stage) : NULL;
    if (!chain) tm_error_set(err, TM_ERR_NOMEM, "cannot build the watermarked sampler chain");
    return chain;
}

tm_status tm_eval_regenerate_spans(const tm_eval_task *t, tm_context *context, const tm_tokenizer *tok,
                                   const int32_t *prompt_ids, size_t n_prompt, int32_t *ids, size_t *n,
                                   double strength, uint64_t seed, size_t *edits, tm_error *err) {
    *edits = 0;
    int32_t room = tm_context_size(context) - (int32_t)n_prompt - 1;
    if ((int64_t)*n > room) *n = room > 0 ? (size_t)room : 0; /* what does not fit is dropped */
    tm_wm_scheme *none = NULL;
    tm_sampler_chain *chain = tm_eval_sampler_chain(t, NULL, NULL, seed, &none, err);
    if (!chain) return TM_ERR_NOMEM;
    int32_t n_vocab = tm_tokenizer_vocab_size(tok);
    tm_rng rng;
    tm_rng_seed(&rng, seed);
    tm_context_reset(context);
    const float *logits = NULL;
    tm_status status = tm_context_eval(context, prompt_ids, n_prompt, &logits, err);
    bool regenerate = false;
    for (size_t i = 0; !status && i < *n; i++) {
        if (i % TM_EVAL_SPAN_TOKENS == 0) regenerate = (double)tm_rng_uniform(&rng) < strength;
        if (regenerate) {
            int32_t token = tm_sampler_chain_sample(chain, logits, n_vocab);
            /* An end-of-text token would cut the text short: keep the original there. */
            if (token >= 0 && !tm_tokenizer_is_end_of_generation(tok, token) && token != tm_tokenizer_bos(tok)) {
                *edits += token != ids[i];
                ids[i] = token;
            }
        }
        tm_sampler_chain_accept(chain, ids[i]);
        if (i + 1 < *n) status = tm_context_eval(context, &ids[i], 1, &logits, err);
    }
    tm_sampler_chain_free(chain);
    return status;
}
