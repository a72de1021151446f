/* tracemark generator: the local inference engine. The forward pass of the
 * Llama family and Qwen2 with its KV cache, the sampler chain (whose last
 * stage is where a watermark scheme plugs in), and the generate loop. Models
 * come from the model room and text from the tokenizer room, so this header
 * includes both. Failures come back as tm_error values, never as crashes or
 * prints. */
#ifndef TRACEMARK_GENERATOR_H
#define TRACEMARK_GENERATOR_H

#include "tracemark/model.h"
#include "tracemark/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Inference context: KV cache, scratch buffers, forward pass                */
/* ======================================================================== */

typedef struct tm_context tm_context;

/* The context size used when the caller names none: the smaller of the
 * model's trained length and this (as llama.cpp defaults to 4096), so that a
 * model file's context_length (any value up to INT32_MAX) never sizes the KV
 * cache on its own. */
enum { TM_CONTEXT_DEFAULT = 4096 };
/* n_ctx 0 means min(model's trained length, TM_CONTEXT_DEFAULT); larger
 * values (up to 1 << 24) must be asked for. The KV cache and scratch sizes
 * are computed first and refused with TM_ERR_LIMIT when they exceed 3/4 of
 * the memory available (tm_memory_available), before anything is allocated.
 * n_threads 0 means all cores. */
tm_status tm_context_create(tm_context **out, const tm_model *model, int32_t n_ctx, int32_t n_threads, tm_error *err);
void tm_context_free(tm_context *context);
/* Run tokens at the next positions (a batch goes through sgemm) and return
 * the logits after the last one (n_vocab floats, valid until the next call).
 * Refuses with TM_ERR_LIMIT to run past n_ctx. */
tm_status tm_context_eval(tm_context *context, const int32_t *tokens, size_t n_tokens, const float **logits, tm_error *err);
int32_t tm_context_position(const tm_context *context);
int32_t tm_context_size(const tm_context *context);
void tm_context_reset(tm_context *context);

/* ======================================================================== */
/* Sampling                                                                  */
/* ======================================================================== */



/* Logit processors. */
tm_sampler *tm_sampler_temperature(float temperature);
tm_sampler *tm_sampler_top_k(int32_t k);
tm_sampler *tm_sampler_top_p(float p, size_t min_keep);
tm_sampler *tm_sampler_min_p(float p, size_t min_keep);
/* Repetition (divide positive / multiply negative logits, as CTRL and llama.cpp),
 * frequency and presence penalties over the last `window` accepted tokens. */
tm_sampler *tm_sampler_penalties(int32_t window, float repeat, float frequency, float presence);
/* Selectors: the last stage of a chain picks candidates->selected. A watermark
 * scheme plugs in here (or as a logit processor) without touching the rest. */
tm_sampler *tm_sampler_greedy(void);
tm_sampler *tm_sampler_distribution(uint64_t seed);
void tm_sampler_free(tm_sampler *sampler);

typedef struct tm_sampler_chain tm_sampler_chain;
tm_sampler_chain *tm_sampler_chain_create(void);
/* Takes ownership of sampler. Returns false (and frees it) on allocation failure. */
bool tm_sampler_chain_add(tm_sampler_chain *chain, tm_sampler *sampler);
void tm_sampler_chain_free(tm_sampler_chain *chain);
/* Build candidates from logits, run every stage, return the selected token;
 * -1 for bad arguments or when the candidate buffer cannot grow. */
int32_t tm_sampler_chain_sample(tm_sampler_chain *chain, const float *logits, int32_t n_vocab);
void tm_sampler_chain_accept(tm_sampler_chain *chain, int32_t token);
void tm_sampler_chain_reset(tm_sampler_chain *chain);
/* Softmax over candidates (sorting them first when needed). */
void tm_candidates_softmax(tm_candidates *candidates);
void tm_candidates_sort(tm_candidates *candidates);

typedef struct {
    float temperature; /* 0: greedy */
    int32_t top_k;     /* 0: off */
    float top_p;       /* 1: off */
    float min_p;       /* 0: off */
    float repeat_penalty, frequency_penalty, presence_penalty;
    int32_t penalty_window;
    uint64_t seed;
} tm_sampling_params;

void tm_sampling_params_default(tm_sampling_params *params);
/* The usual chain: penalties, top-k, top-p, min-p, temperature, distribution
 * (or greedy when temperature is 0). NULL for invalid parameters (NaN, a
 * repeat penalty <= 0) or when out of memory. */
tm_sampler_chain *tm_sampler_chain_from_params(const tm_sampling_params *params);
/* The same chain with a watermark plugged in (either may be NULL; ownership
 * passes, also on failure): `bias` runs right after the penalties, on the raw
 * logits (KGW); `selector` replaces the final distribution stage
 * (distortion-free schemes). At temperature 0 the chain stays greedy. */
tm_sampler_chain *tm_sampler_chain_build(const tm_sampling_params *params, tm_sampler *bias, tm_sampler *selector);

/* ======================================================================== */
/* Generation                                                                */
/* ======================================================================== */

typedef void (*tm_text_callback)(const char *text, size_t size, void *user);

typedef struct {
    int32_t max_tokens;
    const char *const *stop_strings;
    size_t n_stop_strings;
    tm_text_callback on_text; /* streamed generated text, may be NULL */
    void *user;
} tm_generate_options;

typedef struct {
    int32_t *prompt_ids;
    size_t n_prompt;
    int32_t *ids; /* generated */
    size_t n_ids;
    char *text;   /* generated text */
    size_t text_size;
    double prompt_seconds, decode_seconds;
    const char *stop_reason; /* "eos", "end_of_generation", "bos", "max_tokens", "stop_string", "context_full" */
} tm_generation;

/* Encode the prompt (BOS first when the vocabulary asks for it, no
 * special-token parsing), run it, then sample until a stop (see
 * tm_generate_from_ids). */
tm_status tm_generate(tm_context *context, const tm_tokenizer *tokenizer, tm_sampler_chain *chain,
                      const char *prompt, const tm_generate_options *options, tm_generation *result,
                      tm_error *err);
/* tm_generate with the prompt already tokenized (for example a chat prompt
 * from tm_tokenizer_encode_special): result->prompt_ids is a copy. Stops at
 * any end-of-generation token (stop_reason "eos" for EOS itself,
 * "end_of_generation" for the others, such as <|eot_id|>), at BOS, at the
 * token budget, a stop string or a full context; tm_generate does the same. */
tm_status tm_generate_from_ids(tm_context *context, const tm_tokenizer *tokenizer, tm_sampler_chain *chain,
                               const int32_t *prompt_ids, size_t n_prompt, const tm_generate_options *options,
                               tm_generation *result, tm_error *err);
void tm_generation_free(tm_generation *result);

#ifdef __cplusplus
}
#endif
#endif
