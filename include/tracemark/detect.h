/* tracemark detect: the model-free detector. It answers "was this text
 * generated with this key?" from the key, the scheme settings and a tokenizer
 * alone (never the model's weights, never the forward pass): text
 * normalisation, per-token secret values from watermark/, statistics with
 * exact p-values, windows for text pasted into other text, multi-key
 * attribution, and batch JSONL. */
#ifndef TRACEMARK_DETECT_H
#define TRACEMARK_DETECT_H

#include "tracemark/core.h"
#include "tracemark/tokenizer.h"
#include "tracemark/watermark.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Statistics (detect/statistics.c)                                          */
/* All p-values are upper tails P(X >= observed | no watermark), computed   */
/* in log space so that the far tail (p ~ 1e-300) stays accurate.           */
/* ======================================================================== */

/* ln P(X >= k) for X ~ Binomial(n, p); 0 when k <= 0, -inf when k > n. */
double tm_stat_binomial_log_sf(uint64_t k, uint64_t n, double p);
/* ln of the regularized upper incomplete gamma Q(a, x) = P(X >= x), X ~ Gamma(a, 1). */
double tm_stat_gamma_log_q(double a, double x);
/* ln P(Z >= z) for a standard normal Z. */
double tm_stat_normal_log_sf(double z);
/* exp() that saturates to 0 rather than underflowing to a subnormal surprise. */
double tm_stat_p_from_log(double log_p);

/* The SynthID weighted mean score of g-values, as synthid-text's
 * weighted_mean_score: layer weights w = linspace(10, 1, m),
 * score = sum_t sum_l w_l g_{t,l} / (T * sum_l w_l). Under no watermark
 * (g ~ Bernoulli(0.5) i.i.d.) ln P(score >= s) is computed exactly where
 * affordable (about 35 ms at most) and by the Lugannani-Rice saddle point
 * otherwise; *exact (may be NULL) says which. NaN for layers < 1 or a NaN
 * score; 0 when T = 0. Compute the score in double precision. */
double tm_stat_synthid_weighted_log_sf(double score, uint64_t n_tokens, int32_t layers, bool *exact);
/* SynthID's weight of layer l (0-based) of m: linspace(10, 1, m)[l], that is
 * 10 - 9 l / (m - 1), and 1 for m = 1. The one definition the detector's
 * weighted sums and the weighted tail above both use. */
double tm_stat_synthid_weight(int32_t layer, int32_t layers);

/* ======================================================================== */
/* Text normalisation before tokenizing (detect/normalize.c)                */
/* ======================================================================== */

typedef struct {
    bool nfc;                  /* Unicode NFC (utf8proc); default on */
    bool fold_homoglyphs;      /* a non-ASCII character confusable (TR39 skeleton, ICU uspoof) with an ASCII
                                  character becomes it when its word also contains an ASCII letter: a word is a
                                  maximal run of letters, marks and numbers (a mark counts with its base), taken
                                  after NFC and before folding. Look-alikes of Latin, Common or Inherited script
                                  (fullwidth, mathematical letters, typographic quotes and dashes) fold anywhere,
                                  and one folding to a letter counts as an ASCII letter; Han, kana, Thai and other
                                  scripts written without spaces, and other scripts' punctuation, never fold. So
                                  "раураl" -> "paypal", while Russian, Greek and Arabic text and digits stay. A
                                  word made wholly of look-alikes ("рара", "ОК") folds too where the nearest words
                                  around it are Latin ("my рара account" -> "my papa account"), never in text of
                                  its own script. Full rule in detect/normalize.c and docs/detect-spec.md;
                                  default on */
    bool normalize_whitespace; /* runs of Unicode spaces -> one ' ', CRLF/CR -> LF,
                                  zero-width characters, U+FEFF and variation selectors removed
                                  (so a provenance manifest never changes a verdict); default on */
} tm_normalize_options;

void tm_normalize_options_default(tm_normalize_options *options);
/* One line naming the options in force, e.g. "nfc,homoglyphs,whitespace" (recorded in verdicts). */
const char *tm_normalize_options_describe(const tm_normalize_options *options);

/* Normalise UTF-8 text. *out is NUL-terminated (free()). When offsets is not
 * NULL, (*offsets)[i] is the byte offset in the input of the character that
 * produced output byte i, with (*offsets)[*out_size] = size, so that results
 * on the normalised text map back to the text the user gave. Invalid UTF-8 is
 * an error naming the byte offset. */
tm_status tm_text_normalize(const char *text, size_t size, const tm_normalize_options *options, char **out,
                            size_t *out_size, size_t **offsets, tm_error *err);

/* ======================================================================== */
/* Detection (detect/detect.c)                                               */
/* ======================================================================== */

typedef struct {
    tm_normalize_options normalize;
    double fpr;                /* decision threshold on the p-value; default 1e-3 */
    bool windows;              /* also search the best contiguous window; default off (refused for
                                  EXP-edit/ITS-edit, whose statistic is an alignment, not a sum) */
    int32_t min_window;        /* smallest window, in scored tokens; default 25 */
    bool ignore_repeated;      /* count each (context, token) pair once; default on */
    int32_t permutations;      /* EXP-edit: random keys in the permutation test; 0 (default): the fewest
                                  that can detect at fpr with the detector's K keys, and at least 999
                                  (tm_detect_permutations_needed); an explicit N below that is refused */
    bool sequential;           /* EXP-edit: stop the permutation test as soon as its decision at fpr is
                                  settled (Besag & Clifford 1991); default on. A detected text always runs
                                  every permutation, so its p is the full test's, bit for bit */
    uint64_t permutation_seed; /* EXP-edit: seed of those keys; default 0 */
} tm_detect_options;

void tm_detect_options_default(tm_detect_options *options);
/* The smallest permutation count N whose floor K / (N + 1) reaches fpr for K
 * keys (with the 1e-9 relative allowance for fpr's rounding the decision
 * uses), at least 1; 0 when it would exceed 1000000. */
int32_t tm_detect_permutations_needed(double fpr, size_t n_keys);

typedef struct {
    size_t start_token, end_token; /* [start, end) among the text's tokens */
    size_t start_byte, end_byte;   /* in the text as given */
    size_t start_char, end_char;   /* in Unicode characters of the text as given */
    size_t n_scored;
    double statistic;
    double z;
    double log_p;            /* of this window alone */
    double log_p_corrected;  /* Bonferroni over every window examined */
    uint64_t n_windows;
} tm_detect_window;

typedef struct {
    tm_wm_kind kind;
    char key_id[TM_WM_KEY_ID_SIZE];
    char parameters[256];     /* tm_wm_config_describe */
    char normalization[64];   /* tm_normalize_options_describe */
    size_t n_tokens;          /* tokens of the text (the prompt's excluded) */
    size_t n_scored;
    size_t n_ignored_context; /* no full context yet */
    size_t n_ignored_repeated;/* (context, token) seen before */
    size_t n_prompt;          /* prompt tokens, never scored */
    const char *statistic_name; /* "green_count", "gumbel_score", "mean_g", "edit_alignment" */
    double statistic;
    double expected;          /* the statistic's mean without a watermark */
    double z;                 /* NAN where undefined */
    double log_p, p;          /* exact */
    double p_normal;          /* normal approximation beside it, NAN where undefined */
    double p_resolution;      /* permutation tests: 1/(n+1); 0 for exact tests */
    bool p_at_floor;          /* the permutation test's smallest possible p */
    uint64_t permutations_done; /* permutation tests: null keys aligned (fewer than N when stopped early) */
    bool p_sequential;        /* stopped early (Besag-Clifford): p = max(h / l, (h + 1) / (N + 1)) */
    double weighted_score, weighted_log_p; /* SynthID weighted mean; NAN otherwise */
    bool has_window;
    tm_detect_window window;
    double log_p_decision;    /* what the decision used (whole text and window combined) */
    bool detected;            /* p <= fpr (a permutation p at its floor 1/(n+1) <= fpr counts) */
    /* multi-key */
    size_t n_keys, best_key;
    double log_p_family;      /* the best key's decision p corrected for the number of keys: min(0, p K);
                                  detected is decided on it (tm_detect_tokens too, with the detector's K) */
    double weighted_log_p_family; /* SynthID: weighted_log_p corrected the same way; NAN otherwise */
} tm_detection;

typedef struct tm_detector tm_detector;

/* A detector for one scheme and one or more keys (each key gets its own subkey).
 * The tokenizer and keys must outlive the detector. */
tm_status tm_detector_create(tm_detector **out, const tm_tokenizer *tokenizer, const tm_wm_config *config,
                             const tm_wm_key *const *keys, size_t n_keys, const tm_detect_options *options,
                             tm_error *err);
void tm_detector_free(tm_detector *detector);
size_t tm_detector_key_count(const tm_detector *detector);

/* Score pre-tokenized text for one key: tokens[0..n_prompt) is the prompt
 * (context only), the rest is scored. The result counts the detector's keys:
 * n_keys is their number K, log_p_family = min(0, log_p_decision + ln K)
 * (and SynthID's weighted_log_p_family likewise), and detected is decided
 * on log_p_family, as tm_detect_text decides. Thread-safe for concurrent
 * calls. */
tm_status tm_detect_tokens(const tm_detector *detector, size_t key_index, const int32_t *tokens, size_t n_tokens,
                           size_t n_prompt, tm_detection *out, tm_error *err);
/* Normalise, tokenize and score text (prompt may be NULL) against every key;
 * the result is the best key's, with log_p_family corrected for their number.
 * Thread-safe for concurrent calls. */
tm_status tm_detect_text(const tm_detector *detector, const char *text, size_t size, const char *prompt,
                         tm_detection *out, tm_error *err);

/* Many texts on several threads (detect/detect_many.c). The batch starts
 * detecting texts[i] (sizes[i] bytes; prompts NULL, or one prompt or NULL per
 * text) on `threads` threads (0: every core) and returns at once; texts,
 * sizes and prompts must stay valid until tm_detect_batch_free. Each
 * tm_detect_batch_next waits for the next `count` verdicts in input order and
 * hands them over as one JSON array text (free it with
 * tm_detection_json_free): element i is tm_detection_json of its text at fpr,
 * or {"error": message, "status": tm_status_name, "code": the tm_status} when
 * that text failed. The threads go on with later texts meanwhile. Free stops
 * the threads (after the texts they are on) and may come at any time. */
typedef struct tm_detect_batch tm_detect_batch;
tm_status tm_detect_batch_start(tm_detect_batch **out, const tm_detector *detector, size_t n,
                                const char *const *texts, const size_t *sizes, const char *const *prompts, double fpr,
                                size_t threads, tm_error *err);
tm_status tm_detect_batch_next(tm_detect_batch *batch, size_t count, char **out, tm_error *err);
/* How many verdicts tm_detect_batch_next has still to hand over. */
size_t tm_detect_batch_remaining(const tm_detect_batch *batch);
void tm_detect_batch_free(tm_detect_batch *batch);

/* ======================================================================== */
/* The verdict as JSON (detect/verdict_json.c)                              */
/* ======================================================================== */

/* The fields `tracemark detect --json` prints for a detection decided at fpr
 * (docs/detect-spec.md names them); NULL when out of memory. */
typedef struct json_t json_t;
json_t *tm_detection_json(const tm_detection *detection, double fpr);
/* The same as compact JSON text, for callers without jansson (bindings);
 * free it with tm_detection_json_free. NULL when out of memory. */
char *tm_detection_json_text(const tm_detection *detection, double fpr);
void tm_detection_json_free(char *text);

#ifdef __cplusplus
}
#endif
#endif
