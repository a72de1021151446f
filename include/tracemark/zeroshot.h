/* tracemark zeroshot: did any model write this text? Zero-shot detectors that
 * need only a language model's next-token distributions and no watermark:
 * mean log-likelihood, log-rank, entropy, Fast-DetectGPT's analytic sampling
 * discrepancy (Bao et al., ICLR 2024) and Binoculars (Hans et al., ICML 2024).
 * The formulas, with their papers' equations, are in docs/zero-shot.md. The
 * room runs the forward pass (unlike detect/, which stays model-free); it
 * never prints, never exits, and never invents a p-value: a score becomes a
 * decision only against a threshold the caller calibrated on human text. */
#ifndef TRACEMARK_ZEROSHOT_H
#define TRACEMARK_ZEROSHOT_H

#include "tracemark/core.h"
#include "tracemark/generator.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TM_ZEROSHOT_LIKELIHOOD,     /* mean log p(x_t | x_<t) */
    TM_ZEROSHOT_LOG_RANK,       /* -mean log rank(x_t) */
    TM_ZEROSHOT_ENTROPY,        /* mean entropy of the next-token distribution */
    TM_ZEROSHOT_FAST_DETECTGPT, /* analytic sampling discrepancy */
    TM_ZEROSHOT_BINOCULARS,     /* log-perplexity over log-cross-perplexity */
    TM_ZEROSHOT_METHOD_COUNT
} tm_zeroshot_method;

/* "likelihood", "log-rank", "entropy", "fast-detectgpt", "binoculars";
 * NULL outside the enum. */
const char *tm_zeroshot_method_name(tm_zeroshot_method method);
/* The names, comma-separated, for messages. */
const char *tm_zeroshot_method_names(void);
bool tm_zeroshot_method_parse(const char *name, tm_zeroshot_method *out);
/* Which way machine text moves the score: true for likelihood, log-rank and
 * Fast-DetectGPT (machine text is more likely), false for entropy and
 * Binoculars (machine text is less surprising). */
bool tm_zeroshot_higher_is_machine(tm_zeroshot_method method);

/* The facts of one next-token distribution that every method is built from.
 * p is the scoring model's distribution (Binoculars: the observer), q the
 * reference (sampling) model's for Fast-DetectGPT (q = p without one), p2
 * the performer's for Binoculars. Natural logarithms throughout. */
typedef struct {
    double log_prob;           /* log p(x_t) */
    double rank;               /* 1 + number of tokens whose logit is strictly larger than x_t's */
    double entropy;            /* -sum_v p(v) log p(v) */
    double expected_log_prob;  /* mu_t = sum_v q(v) log p(v) (= -entropy when q = p) */
    double variance_log_prob;  /* sum_v q(v) (log p(v))^2 - mu_t^2, clamped at 0 */
    double performer_log_prob; /* log p2(x_t); NaN without a performer */
    double cross_entropy;      /* -sum_v p(v) log p2(v); NaN without a performer */
} tm_zeroshot_position;

/* The facts of one distribution from raw logits (n_vocab floats each;
 * reference_logits and performer_logits may be NULL). Non-finite logits, a
 * target outside [0, n_vocab) or n_vocab < 1 are errors. */
tm_status tm_zeroshot_position_stats(const float *logits, const float *reference_logits,
                                     const float *performer_logits, int32_t n_vocab, int32_t target,
                                     tm_zeroshot_position *out, tm_error *err);

typedef struct {
    tm_zeroshot_method method;
    double score;              /* the method's statistic (see docs/zero-shot.md) */
    bool higher_is_machine;
    size_t n_scored;           /* positions scored (tokens after the first) */
    double mean_log_prob;      /* mean log p(x_t) */
    double mean_log_rank;      /* mean log rank */
    double mean_entropy;
    /* Fast-DetectGPT: sum log p(x_t) - sum mu_t, and sum of the variances. */
    double discrepancy_numerator, discrepancy_variance;
    /* Binoculars: log PPL (performer) and log X-PPL (observer against performer). */
    double log_perplexity, log_cross_perplexity;
} tm_zeroshot_score;

/* Aggregate per-position facts into the method's score. n must be >= 1;
 * Binoculars needs performer facts; Fast-DetectGPT with zero total variance
 * (a deterministic model) is an error, not a made-up number. */
tm_status tm_zeroshot_score_positions(tm_zeroshot_method method, const tm_zeroshot_position *positions, size_t n,
                                      tm_zeroshot_score *out, tm_error *err);

/* ---- running the models ------------------------------------------------- */

typedef struct {
    tm_zeroshot_method method;
    const tm_model *model;       /* scoring model; the observer for Binoculars */
    const tm_model *reference;   /* Fast-DetectGPT's sampling model, NULL: the scoring model itself */
    const tm_model *performer;   /* Binoculars' performer; required for it, ignored by the others */
    /* Tokenizers of the models, to prove they share a vocabulary (compared
     * piece by piece); performer_tokenizer/reference_tokenizer may be NULL
     * when only the sizes can be compared. tokenizer encodes texts. */
    const tm_tokenizer *tokenizer, *reference_tokenizer, *performer_tokenizer;
    int32_t n_ctx;     /* window in tokens; 0: the smallest trained context of the models */
    int32_t n_threads; /* 0: all cores */
    /* false: a text longer than the window is an error. true: score it in
     * windows of n_ctx tokens, each new window carrying the last n_ctx/2
     * tokens of the previous one as context. */
    bool slide;
    /* false (the default): each window goes through each model in one
     * prompt-style pass that returns every position's logits
     * (tm_context_eval_rows, in passes of up to TM_CONTEXT_BATCH_MAX rows).
     * true: one position at a time through tm_context_eval, the decode path;
     * the same scores up to the rounding of the batched products, kept so
     * that benchmarks can measure the two side by side. */
    bool one_position_at_a_time;
} tm_zeroshot_options;

typedef struct tm_zeroshot tm_zeroshot;

/* Check the models (vocabulary sizes, tokenizers piece by piece, presence of
 * what the method needs) and create their inference contexts. */
tm_status tm_zeroshot_create(tm_zeroshot **out, const tm_zeroshot_options *options, tm_error *err);
void tm_zeroshot_free(tm_zeroshot *zeroshot);
int32_t tm_zeroshot_window(const tm_zeroshot *zeroshot);

typedef struct {
    tm_zeroshot_score score;
    size_t n_tokens;                 /* ids scored over, BOS included */
    size_t n_windows;                /* forward windows used (1 when the text fits) */
    tm_zeroshot_position *positions; /* n_tokens - 1 entries; free with tm_zeroshot_result_free */
} tm_zeroshot_result;

/* Score token ids (ids[0] is context only, normally BOS). Fewer than 2 ids,
 * ids outside the vocabulary, or (without slide) more ids than the window
 * are errors that say so. */
tm_status tm_zeroshot_score_ids(tm_zeroshot *zeroshot, const int32_t *ids, size_t n_ids, tm_zeroshot_result *out,
                                tm_error *err);
/* Encode UTF-8 text with BOS in front (as llama.cpp does) and score it. An
 * empty text is an error. */
tm_status tm_zeroshot_score_text(tm_zeroshot *zeroshot, const char *text, size_t size, tm_zeroshot_result *out,
                                 tm_error *err);
void tm_zeroshot_result_free(tm_zeroshot_result *result);

/* Many texts at once, the batch path: texts that fit one pass (n_ids - 1
 * positions, together up to the room's row budget of min(256, window,
 * 8M / n_vocab) rows) are packed into one tm_context_eval_rows_packed pass
 * per model, so the weights are read once for all of them; longer texts go
 * through tm_zeroshot_score_ids one by one. results[i], statuses[i] and
 * errors[i] (errors may be NULL) belong to text i: a text refused (empty,
 * too long without slide, an id outside the vocabulary, a non-finite
 * logit) fails alone. Each score is the one tm_zeroshot_score_ids gives the
 * text alone: the same bits for quantized weights, up to the rounding of
 * sgemm (about 1e-5 in a logit) for float ones. Returns an error only when
 * nothing can be trusted (out of memory, a pass refused); then every result
 * is empty. Free each result with tm_zeroshot_result_free. */
tm_status tm_zeroshot_score_ids_many(tm_zeroshot *zeroshot, const int32_t *const *ids, const size_t *n_ids, size_t n,
                                     tm_zeroshot_result *results, tm_status *statuses, tm_error *errors,
                                     tm_error *err);
/* Encode each text as tm_zeroshot_score_text does, then
 * tm_zeroshot_score_ids_many. */
tm_status tm_zeroshot_score_texts(tm_zeroshot *zeroshot, const char *const *texts, const size_t *sizes, size_t n,
                                  tm_zeroshot_result *results, tm_status *statuses, tm_error *errors, tm_error *err);

/* ---- thresholds ---------------------------------------------------------- */

/* The threshold that flags at most a fraction fpr of the n human scores as
 * machine text (decision: machine when the score is strictly beyond the
 * threshold in the method's direction). It is the (floor(fpr*n)+1)-th most
 * machine-like human score; *achieved_fpr is the fraction of human scores
 * beyond it (<= fpr). Needs n >= 1, 0 <= fpr < 1 and finite scores. */
tm_status tm_zeroshot_threshold_at_fpr(tm_zeroshot_method method, const double *human_scores, size_t n, double fpr,
                                       double *threshold, double *achieved_fpr, tm_error *err);
/* True when score is machine-like beyond threshold. */
bool tm_zeroshot_is_machine(tm_zeroshot_method method, double score, double threshold);

#ifdef __cplusplus
}
#endif
#endif
