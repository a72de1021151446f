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
/* The element type of the KV cache. F32 (the default) keeps the keys and
 * values exactly as computed, so that a prompt evaluated at once, token by
 * token, or in several sequences' batches gives the same scores to within
 * the products' rounding (what the evaluations and zero-shot detectors rely
 * on). F16 is llama.cpp's default: half the memory and half the bytes read
 * per position (long contexts, many server slots), the query rounded to F16
 * before its dot products as llama.cpp rounds it, and a K or V element that
 * lands near a rounding boundary can round either way between two such
 * paths, moving a score by ~1e-5 relative. */
typedef enum { TM_KV_F32 = 0, TM_KV_F16 = 1 } tm_kv_type;
tm_status tm_context_create_kv(tm_context **out, const tm_model *model, int32_t n_ctx, int32_t n_threads,
                               tm_kv_type kv_type, tm_error *err);
/* "f32" or "f16"; false for anything else. */
bool tm_kv_type_parse(const char *name, tm_kv_type *out);
tm_kv_type tm_context_kv_type(const tm_context *context);
void tm_context_free(tm_context *context);
/* Run tokens at the next positions (a batch goes through sgemm) and return
 * the logits after the last one (n_vocab floats, valid until the next call).
 * Refuses with TM_ERR_LIMIT to run past n_ctx. */
tm_status tm_context_eval(tm_context *context, const int32_t *tokens, size_t n_tokens, const float **logits, tm_error *err);
int32_t tm_context_position(const tm_context *context);
int32_t tm_context_size(const tm_context *context);
const tm_model *tm_context_model(const tm_context *context);
void tm_context_reset(tm_context *context);
/* tm_context_eval that also returns the logits after each of
 * tokens[first_output .. n_tokens - 1]: (n_tokens - first_output) rows of
 * n_vocab floats written to logits, in order. The rows come from the same
 * final norm and classifier as tm_context_eval's (one row through the
 * matrix-vector product, several through the batched one). */
tm_status tm_context_eval_rows(tm_context *context, const int32_t *tokens, size_t n_tokens, size_t first_output,
                               float *logits, tm_error *err);
/* Cut the context back to position (0..tm_context_position): the cache of
 * the tokens before it is kept, the next tokens run from there. This is
 * prefix reuse: evaluate a shared prefix once, then each continuation. */
tm_status tm_context_truncate(tm_context *context, int32_t position, tm_error *err);
/* Many short texts through one all-positions pass: n_sequences token runs
 * laid end to end in tokens (lengths[s] tokens each, every one from position
 * 0, as if each had a fresh context of its own) go through the weights as
 * one set of rows, in passes of up to 256 rows, so that each weight is read
 * once for all the texts; attention stays inside each text (its own cache
 * slots, a block-diagonal causal mask). logits receives the logits after
 * every token of every sequence, in order (sum of lengths rows of n_vocab).
 * Each row is tm_context_eval_rows's on a fresh context for that sequence
 * alone, the same kernels on the same values (bit for bit where the batched
 * products give a row the same result whatever rows share the batch, as the
 * quantized ones do; see tests/test_eval_packed.c). The sum of lengths must
 * fit the context (TM_ERR_LIMIT); the context is left empty (position 0). */
tm_status tm_context_eval_rows_packed(tm_context *context, const int32_t *tokens, const size_t *lengths,
                                      size_t n_sequences, float *logits, tm_error *err);

/* Continuous batching: one next token for each of n sequences, each in its
 * own context of the same model, through one pass whose matrix products take
 * all n rows together, so the weights are read once per step for all of them
 * (rope, cache and attention follow each sequence's own position).
 * contexts[0]'s scratch buffers carry the activations: every other context
 * must have a context size no larger than it, and none may appear twice.
 * logits[i] (may be NULL) is contexts[i]'s logits, as tm_context_eval would
 * leave them: bit for bit for block-quantized weights and up to 16
 * sequences (the matrix-vector kernels' own dot products, generator/batch.c),
 * else up to the rounding of the batched product (sgemm for float weights).
 * n <= TM_CONTEXT_BATCH_MAX; a full context is TM_ERR_LIMIT and nothing runs. */
enum { TM_CONTEXT_BATCH_MAX = 256 };
tm_status tm_context_eval_batch(tm_context *const *contexts, const int32_t *tokens, size_t n, const float **logits,
                                tm_error *err);

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

/* ======================================================================== */
/* Log-likelihood scoring (generator/loglik.c)                              */
/* ======================================================================== */

/* How likely the model finds a continuation after a context, the quantity
 * multiple-choice evaluations rank answers by (lm-evaluation-harness's
 * loglikelihood requests; see docs/evals-hallucination.md). */
typedef struct {
    double logprob;   /* summed natural-log probability of the continuation's tokens */
    bool greedy;      /* every continuation token was the most likely one (first on ties) */
    int32_t n_tokens; /* continuation tokens */
} tm_loglik;

/* Split and tokenize (context, continuation) as lm-evaluation-harness's
 * _encode_pair: trailing ASCII whitespace of the context moves to the front
 * of the continuation; the context is encoded alone, the whole text is
 * encoded, and the continuation's ids are the whole text's ids past the
 * context's count. BOS goes first when the vocabulary asks for it
 * (tm_tokenizer_adds_bos); an empty context without BOS gets BOS (or EOS
 * when the vocabulary has no BOS) as the one token to predict from, as the
 * harness does. *ids (caller frees) is the context's ids followed by the
 * continuation's; the last *n_continuation of them are the continuation.
 * TM_ERR_ARGUMENT when the continuation has no tokens of its own. */
tm_status tm_loglik_encode(const tm_tokenizer *tokenizer, const char *context, const char *continuation,
                           int32_t **ids, size_t *n_ids, size_t *n_continuation, tm_error *err);

/* A scorer owns no model: it runs requests through a context, and with
 * prefix reuse keeps the cache of the ids it last ran, so the next request
 * evaluates only what follows the longest prefix the two share (the few-shot
 * primer and the question, across the choices of a question and across
 * questions). Scores with and without reuse are the same computation on the
 * same positions; only the split of the work into batches differs. */
typedef struct tm_loglik_scorer tm_loglik_scorer;

typedef struct {
    uint64_t requests;         /* scored requests */
    uint64_t tokens_evaluated; /* tokens run through the forward pass */
    uint64_t tokens_reused;    /* tokens whose cache was kept from an earlier request */
    double seconds;            /* wall time inside the scorer */
} tm_loglik_stats;

tm_status tm_loglik_scorer_create(tm_loglik_scorer **out, tm_context *context, bool reuse_prefix, tm_error *err);
void tm_loglik_scorer_free(tm_loglik_scorer *scorer);
/* Score the last n_continuation of ids given the ids before them (the input
 * of llama.cpp's peer tool: {"ids":[...],"n_cont":K}). The log-softmax is
 * taken in double precision over every logit. TM_ERR_LIMIT when ids do not
 * fit in the context (n_ids - 1 positions are needed); TM_ERR_ARGUMENT for
 * n_continuation 0 or not below n_ids, or an id outside the vocabulary. */
tm_status tm_loglik_score_ids(tm_loglik_scorer *scorer, const int32_t *ids, size_t n_ids, size_t n_continuation,
                              tm_loglik *out, tm_error *err);
/* tm_loglik_encode, then tm_loglik_score_ids. */
tm_status tm_loglik_score(tm_loglik_scorer *scorer, const tm_tokenizer *tokenizer, const char *context,
                          const char *continuation, tm_loglik *out, tm_error *err);
void tm_loglik_scorer_stats(const tm_loglik_scorer *scorer, tm_loglik_stats *out);
/* Forget the kept prefix (the next request starts from position 0). */
void tm_loglik_scorer_forget(tm_loglik_scorer *scorer);
/* Run ids from position 0 on their own and keep their cache as a prefix
 * that later requests share (a few-shot primer, a judge's instruction). */
tm_status tm_loglik_scorer_prime(tm_loglik_scorer *scorer, const int32_t *ids, size_t n_ids, tm_error *err);
/* Go back to the primed prefix: keep its cache when the context still
 * holds it untouched, else run it again from position 0 exactly as prime
 * did. Called before each item, it makes an item's scores depend on the
 * item alone (the cache before it is always the primed prefix, computed
 * the same way), which resumable and sharded runs need; reuse across the
 * item's own requests stays. */
tm_status tm_loglik_scorer_restore(tm_loglik_scorer *scorer, tm_error *err);
/* Keep at most the first n ids of the kept cache: for callers that ran
 * something else on the scorer's context from position n on. */
void tm_loglik_scorer_keep(tm_loglik_scorer *scorer, size_t n);

#ifdef __cplusplus
}
#endif
#endif
