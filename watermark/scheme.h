/* Internal to watermark/: what a scheme file provides (a table of
 * operations), the state every watermark sampler shares (the token history,
 * a seeded RNG, the step count, the set of contexts already used), and the
 * PRF domain bytes, one per use, as docs/watermark-spec.md lists them. */
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
} tm_wm_sampler_state;

/* True when this context (fingerprint) was already used in this sequence;
 * records it otherwise. Fails open (false) when out of memory. */
bool tm_wm_state_seen_before(tm_wm_sampler_state *state, uint64_t fingerprint);
/* Scratch memory of at least size bytes, or NULL when out of memory. */
void *tm_wm_state_scratch(tm_wm_sampler_state *state, size_t size);
/* The last n tokens of the history (fewer at the start): pointer and count. */
const int32_t *tm_wm_state_context(const tm_wm_sampler_state *state, size_t n, size_t *available);

typedef struct {
    tm_wm_stage stage;
    /* Generation: act on the candidates (bias logits, or set candidates->selected). */
    void (*apply)(const tm_wm_scheme *scheme, tm_wm_sampler_state *state, tm_candidates *candidates);
    /* Detection: see tm_wm_token_values. */
    size_t (*token_values)(const tm_wm_scheme *scheme, const int32_t *context, size_t n_context, int32_t token,
                           double *values, size_t capacity);
} tm_wm_scheme_ops;

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
