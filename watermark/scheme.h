/* Internal to watermark/: what a scheme file provides (a table of
 * operations), the state every watermark sampler shares (the token history,
 * a seeded RNG, the step count, the set of contexts already used, working
 * memory and a per-key cache), the PRF domain bytes, one per use, as
 * docs/watermark-spec.md lists them, the context message and fingerprint
 * word of the schemes that hash a short context, and the pieces several
 * generation faces share: the batched PRF (prf.c), and in scheme.c an unsorted softmax, the
 * inverse-CDF draw, argmax log(r)/p, and ordering candidates by PRF values.
 * Everything here works on the candidates only, never on the vocabulary. */
#ifndef TRACEMARK_WATERMARK_SCHEME_H
#define TRACEMARK_WATERMARK_SCHEME_H

#include "tracemark/watermark.h"

/* PRF domain separation bytes (docs/watermark-spec.md, "Domains"). */
enum {
    TM_WM_DOMAIN_KGW_LEFTHASH = 0x01,
    TM_WM_DOMAIN_KGW_SELFHASH = 0x02,
    TM_WM_DOMAIN_UNIGRAM = 0x03,
    TM_WM_DOMAIN_GUMBEL = 0x04,
    TM_WM_DOMAIN_SYNTHID = 0x05,
    TM_WM_DOMAIN_DIPMARK = 0x06,
    TM_WM_DOMAIN_EXP_EDIT = 0x07,
    TM_WM_DOMAIN_ITS_PERMUTATION = 0x08,
};

/* DiPmark's detection threshold: tokens in the upper half of the
 * permutation are green, half of all tokens under the null hypothesis. */
#define TM_WM_DIPMARK_DETECTION_GAMMA 0.5

/* State of one watermark sampler, reset with each new sequence. */
typedef struct {
    int32_t *history; /* every accepted token, prompt included, oldest first */
    size_t n_history, history_capacity;
    tm_rng rng;       /* seeded from the sampler's seed; reset re-seeds it */
    uint64_t seed;
    int64_t step;     /* selections made since reset */
    uint64_t *seen;   /* open-addressing set of context fingerprints (0 = empty) */
    size_t seen_capacity, n_seen;
    void *scratch;    /* per-scheme working memory, grown on demand */
    size_t scratch_size;
    void *cache;      /* per-scheme values that depend only on the key (kept across reset) */
    size_t cache_size;
} tm_wm_sampler_state;

/* True when this context (fingerprint) was already used in this sequence;
 * records it otherwise. Fails open (false) when out of memory. */
bool tm_wm_state_seen_before(tm_wm_sampler_state *state, uint64_t fingerprint);
/* Scratch memory of at least size bytes, or NULL when out of memory. */
void *tm_wm_state_scratch(tm_wm_sampler_state *state, size_t size);
/* The cache grown to at least size bytes (its old contents kept), or NULL
 * when out of memory (the old cache is then kept too). */
void *tm_wm_state_cache(tm_wm_sampler_state *state, size_t size);
/* The last n tokens of the history (fewer at the start): pointer and count. */
const int32_t *tm_wm_state_context(const tm_wm_sampler_state *state, size_t n, size_t *available);

/* The generation faces have fast paths (SIMD filters, cached orders, a
 * partition instead of a sort) that must select exactly the tokens their
 * reference loops select. Passing true makes every scheme take the reference
 * loops from then on (process-wide; tests compare the two over many steps). */
void tm_wm_use_reference_paths(bool on);
bool tm_wm_reference_paths(void);

/* ---- the batched PRF (prf.c) ------------------------------------------------ */

/* A PRF message (domain || n || tokens u32le || extra u32le) prepared as
 * SipHash words, with the bytes of one or two "varying" tokens left zero for
 * tm_wm_prf_batch to fill per message. */
enum { TM_WM_PRF_MAX_WORDS = (2 + 4 * TM_WM_PRF_MAX_TOKENS + 4) / 8 + 1, TM_WM_PRF_BATCH = 8 };
typedef struct {
    uint64_t words[TM_WM_PRF_MAX_WORDS]; /* the last word carries the tail bytes and the length byte */
    size_t n_words;
    size_t slot_offset[2]; /* byte offsets of the varying tokens */
    size_t n_varying;
} tm_wm_prf_template;

/* The message of n_fixed fixed tokens followed by n_varying (1 or 2) varying
 * ones, n_fixed + n_varying <= TM_WM_PRF_MAX_TOKENS. */
void tm_wm_prf_template_init(tm_wm_prf_template *t, uint8_t domain, const int32_t *fixed, size_t n_fixed,
                             size_t n_varying, uint32_t extra);
/* out[i] = tm_wm_prf of the template with varying token k = slots[k][i], for
 * i < count: AVX-512 sixteen at a time and AVX2 eight at a time where the CPU
 * has them, scalar for the rest; the words before the first varying token
 * are absorbed once per call, not once per message. */
void tm_wm_prf_batch(const tm_wm_subkey *key, const tm_wm_prf_template *t, const int32_t *const slots[2],
                     size_t count, uint64_t *out);
/* The portable path alone (tests compare the two). */
void tm_wm_prf_batch_scalar(const tm_wm_subkey *key, const tm_wm_prf_template *t, const int32_t *const slots[2],
                            size_t count, uint64_t *out);

/* out[i] = tm_wm_prf(key, domain, tokens + i, n, extra) for i < count: the
 * messages of a window sliding along a text (1 <= n <= TM_WM_PRF_MAX_TOKENS;
 * tokens[0 .. count + n - 1) are read), what a detector hashes at each
 * position. SIMD lanes as tm_wm_prf_batch. */
void tm_wm_prf_window(const tm_wm_subkey *key, uint8_t domain, const int32_t *tokens, size_t n, uint32_t extra,
                      size_t count, uint64_t *out);
/* The same with SIMD limited to simd: 2 AVX-512 (what the CPU has), 1 AVX2
 * at most, 0 none (tests reach every path with it). */
void tm_wm_prf_window_simd(const tm_wm_subkey *key, uint8_t domain, const int32_t *tokens, size_t n, uint32_t extra,
                           size_t count, uint64_t *out, int simd);

/* ---- context messages (scheme.c) --------------------------------------------- */

/* The PRF's extra word for the context fingerprint of skip_repeated_context
 * (Gumbel, SynthID, DiPmark): per-token values use extra = 0, so the two
 * never share a message. */
#define TM_WM_FINGERPRINT_EXTRA UINT32_C(0xFFFFFFFF)

/* The context width in effect for Gumbel and SynthID: config.context_width,
 * 0 when negative, kept within what the PRF message holds next to the token. */
size_t tm_wm_context_width(const tm_wm_scheme *scheme);
/* Copy the last min(h, n_context) tokens of context into message (h =
 * tm_wm_context_width); returns how many. With fewer than h tokens of history
 * the scheme uses what there is (the PRF's length byte keeps a short context
 * apart from a padded one). Both faces of a scheme build their message with
 * it, so they cannot drift apart. */
size_t tm_wm_context_message(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context,
                             int32_t *message);

/* ---- shared pieces of the selectors (scheme.c) ---------------------------------- */

/* p = softmax of the logits, in the candidates' order (no sorting): exponents
 * relative to the largest logit; when that is infinite, the entries equal to
 * it share the mass; NaN logits get p = 0 (all NaN: every p is 0). */
void tm_wm_softmax(tm_candidates *candidates);
/* Inverse-CDF draw with u in [0, 1) over weights (NULL: the candidates' p) in
 * the candidates' order: the first candidate with weight > 0 whose running
 * sum exceeds u times the total; the last with weight > 0 when rounding
 * leaves u times the total at or above every sum; the first candidate when no
 * weight is > 0. Sets candidates->selected (size must be > 0). */
void tm_wm_draw(tm_candidates *candidates, const double *weights, double u);
/* The start a context-keyed selector shares (Gumbel, SynthID): p by softmax,
 * and the context's PRF message in message (its length in *n_context). When
 * the scheme skips repeated contexts and this one (fingerprinted in domain)
 * was already used in the sequence, the token is drawn from p unchanged, as
 * Aaronson and synthid-text do (the same context would repeat the same
 * choice), and false is returned; true means: select with the key. The
 * candidates must not be empty. */
bool tm_wm_selector_begin(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, tm_candidates *candidates,
                          uint8_t domain, int32_t message[TM_WM_PRF_MAX_TOKENS], size_t *n_context);
/* candidates->selected = the candidate with p > 0 that maximises
 * log(uniform(x)) / p, x = the template's PRF with the candidate's id as its
 * varying token (Gumbel, EXP); an exact tie goes to the first in the
 * candidates' order; the first candidate when none has p > 0. One batched PRF
 * per candidate; log only where log(r) <= r - 1 leaves the candidate a chance,
 * which gives the same answer as taking every log. */
void tm_wm_select_argmax_log_over_p(const tm_wm_subkey *key, const tm_wm_prf_template *t,
                                    tm_candidates *candidates);
/* order[0..n) = 0..n-1 sorted by (keys[i] >> shift, ids[i]) ascending: an
 * LSD radix sort on the keys' top 32 bits, then ties of those bits settled
 * by the full comparison. work holds 2n uint64_t. */
void tm_wm_order_by_key(const uint64_t *keys, const int32_t *ids, size_t n, unsigned shift, uint32_t *order,
                        uint64_t *work);

typedef struct {
    tm_wm_stage stage;
    /* Generation: act on the candidates (bias logits, or set candidates->selected). */
    void (*apply)(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, tm_candidates *candidates);
    /* Detection: see tm_wm_token_values. */
    size_t (*token_values)(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context, int32_t token,
                           double *values, size_t capacity);
    /* Detection: see tm_wm_token_fingerprint; NULL means the last context_width
     * tokens and the token (tm_wm_context_fingerprint). */
    uint64_t (*fingerprint)(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context, int32_t token);
    /* Detection over a run of positions: see tm_wm_token_values_run; NULL
     * when the scheme has none (the detector then goes token by token). */
    size_t (*values_run)(const tm_wm_scheme *scheme, const int32_t *tokens, size_t first, size_t count,
                         uint64_t *fingerprints, uint64_t *bits, double *values);
} tm_wm_scheme_ops;

/* The fingerprints tm_wm_token_fingerprint gives a scheme without its own
 * fingerprint op, for positions first .. first + count - 1 of tokens with
 * the context_needed tokens before each (scheme.c). */
void tm_wm_default_fingerprints(const tm_wm_scheme *scheme, const int32_t *tokens, size_t first, size_t count,
                                uint64_t *fingerprints);

/* Unkeyed 64-bit fingerprint of the last `width` of n_context tokens and the token. */
uint64_t tm_wm_context_fingerprint(const int32_t *context, size_t n_context, size_t width, int32_t token);

struct tm_wm_scheme {
    tm_wm_config config;
    tm_wm_subkey subkey;
    char key_id[TM_WM_KEY_ID_SIZE];
    const tm_wm_scheme_ops *ops;
};

/* One per scheme file. */
extern const tm_wm_scheme_ops tm_wm_kgw_ops;      /* kgw.c */
extern const tm_wm_scheme_ops tm_wm_unigram_ops;  /* unigram.c */
extern const tm_wm_scheme_ops tm_wm_gumbel_ops;   /* gumbel.c */
extern const tm_wm_scheme_ops tm_wm_synthid_ops;  /* synthid.c */
extern const tm_wm_scheme_ops tm_wm_dipmark_ops;  /* dipmark.c */
extern const tm_wm_scheme_ops tm_wm_exp_edit_ops; /* exp_edit.c */

#endif
