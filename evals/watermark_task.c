/* The watermark task's samples. Sample ids run in a fixed order:
 *   [0, S*n)            watermarked: scheme id / n, generation id % n, key (id % n) % K;
 *   [S*n, S*n + G)      null: unwatermarked generations (the same model, prompts and sampling);
 *   [S*n + G, ... + H)  null: human texts (tm_eval_human_texts_load order).
 * Each sample draws every random number from tm_eval_mix(task seed, id), so
 * its record is the same whichever thread or shard computes it and however
 * often the run was resumed. A watermarked sample is scored by its scheme's
 * detector (its key) unattacked and under every attack, plus on prefixes of
 * its tokens, unattacked and attacked (TPR against length; tokens needed to
 * detect, unattacked); a null sample is scored by every scheme's detector
 * under every attack. Each text is normalised and tokenised once for all
 * detectors, and a token sequence one detector already scored in this
 * sample is not scored again (the same value, without the time); the
 * perplexity comes from the generation's own logits. Attacked texts are
 * recorded by their SHA-256 and edit counts (they are regenerated from the
 * recorded seed). Keys without key files are derived from the task seed:
 * evaluation keys, never for production. Nothing here prints. */
#include "evals_internal.h"

#include <math.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FILLER_WORDS = 6000 };

typedef struct {
    const tm_eval_task *task;
    tm_model *model;
    tm_tokenizer *tokenizer;
    char model_sha[TM_SHA256_HEX_SIZE];
    tm_wm_key *keys[TM_EVAL_MAX_KEYS];
    tm_normalize_options normalize; /* every detector's: variants are normalised and tokenised once for all */
    tm_detector *detectors[TM_EVAL_MAX_SCHEMES][TM_EVAL_MAX_KEYS];
    tm_detector *window_detectors[TM_EVAL_MAX_SCHEMES][TM_EVAL_MAX_KEYS];
    tm_wordnet *wordnet;
    char **human;
    size_t n_human;
    char *filler;
    int32_t marker; /* emoji attack: the token forced after every sampled token */
    tm_model *oracle, *paraphraser;         /* optional second models (NULL: none) */
    tm_tokenizer *oracle_tokenizer, *paraphraser_tokenizer;
} wm_state;

typedef struct {
    wm_state *state;
    tm_context *context;
    tm_context *oracle, *paraphraser; /* NULL without those models */
} wm_worker;

static int64_t sample_count(const tm_eval_task *t) {
    return (int64_t)t->n_schemes * t->samples + t->null_generated + t->null_human;
}

static bool any_attack(const tm_eval_task *t, tm_attack_kind kind) {
    for (size_t i = 0; i < t->n_attacks; i++)
        if (t->attacks[i].kind == kind) return true;
    return false;
}

static bool any_window(const tm_eval_task *t) {
    for (size_t i = 0; i < t->n_attacks; i++)
        if (t->attacks[i].window) return true;
    return false;
}

static void release(void *opaque) {
    wm_state *s = opaque;
    if (!s) return;
    for (size_t i = 0; i < TM_EVAL_MAX_SCHEMES; i++)
        for (size_t k = 0; k < TM_EVAL_MAX_KEYS; k++) {
            tm_detector_free(s->detectors[i][k]);
            tm_detector_free(s->window_detectors[i][k]);
        }
    for (size_t k = 0; k < TM_EVAL_MAX_KEYS; k++) tm_wm_key_free(s->keys[k]);
    tm_wordnet_free(s->wordnet);
    tm_eval_strings_free(s->human, s->n_human);
    free(s->filler);
    tm_tokenizer_free(s->tokenizer);
    tm_model_free(s->model);
    tm_tokenizer_free(s->oracle_tokenizer);
    tm_model_free(s->oracle);
    tm_tokenizer_free(s->paraphraser_tokenizer);
    tm_model_free(s->paraphraser);
    free(s);
}

static tm_status task_error(const tm_eval_task *t, const char *field, tm_error *err) {
    return tm_error_prefix(err, "%s:%lu: %s", t->path, t->model_line, field);
}

/* Words of the human pool, joined until FILLER_WORDS: what copy-paste pastes into. */
static tm_status build_filler(wm_state *s, tm_error *err) {
    size_t cap = 1 << 16, len = 0, words = 0;
    s->filler = malloc(cap);
    if (!s->filler) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    s->filler[0] = '\0';
    for (size_t i = 0; i < s->n_human && words < FILLER_WORDS; i++) {
        size_t n = strlen(s->human[i]);
        if (len + n + 2 > cap) {
            while (len + n + 2 > cap) cap *= 2;
            char *bigger = realloc(s->filler, cap);
            if (!bigger) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            s->filler = bigger;
        }
        if (len) s->filler[len++] = ' ';
        memcpy(s->filler + len, s->human[i], n + 1);
        len += n;
        for (size_t k = 0; k < n; k++) words += s->human[i][k] == ' ';
    }
    return TM_OK;
}

static tm_status prepare(const tm_eval_task *t, void **out, tm_error *err) {
    *out = NULL;
    wm_state *s = calloc(1, sizeof *s);
    if (!s) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    s->task = t;
    tm_status status = tm_model_load(&s->model, t->model_path, err);
    if (!status) status = tm_model_tokenizer(&s->tokenizer, s->model, t->tokenizer_path[0] ? t->tokenizer_path : NULL, err);
    if (status) task_error(t, "model", err);
    if (!status) status = tm_sha256_file_hex(t->model_path, s->model_sha, err);
    if (!status && t->oracle_model[0]) {
        status = tm_model_load(&s->oracle, t->oracle_model, err);
        if (!status)
            status = tm_model_tokenizer(&s->oracle_tokenizer, s->oracle,
                                        t->oracle_tokenizer[0] ? t->oracle_tokenizer : NULL, err);
        if (status) tm_error_prefix(err, "%s: oracle", t->path);
    }
    if (!status && t->paraphraser_model[0]) {
        status = tm_model_load(&s->paraphraser, t->paraphraser_model, err);
        if (!status)
            status = tm_model_tokenizer(&s->paraphraser_tokenizer, s->paraphraser,
                                        t->paraphraser_tokenizer[0] ? t->paraphraser_tokenizer : NULL, err);
        if (status) tm_error_prefix(err, "%s: paraphraser", t->path);
    }
    for (size_t k = 0; !status && k < t->n_keys; k++) {
        if (t->n_key_files) {
            status = tm_wm_key_read(&s->keys[k], t->key_files[k], err);
            if (status) tm_error_prefix(err, "%s: keys", t->path);
        } else {
            /* An evaluation key: SHA-256 of a label, the task seed and the key index. */
            char label[96];
            int n = snprintf(label, sizeof label, "tracemark-eval-key-v1:%llu:%zu", (unsigned long long)t->seed, k);
            uint8_t secret[32];
            SHA256((const unsigned char *)label, (size_t)n, secret);
            status = tm_wm_key_from_secret(&s->keys[k], secret, err);
            OPENSSL_cleanse(secret, sizeof secret);
        }
    }
    tm_detect_options options;
    tm_detect_options_default(&options);
    options.permutations = t->permutations;
    options.permutation_seed = tm_eval_mix(t->seed, 0x7065726dULL);
    options.min_window = t->min_window;
    s->normalize = options.normalize;
    for (size_t i = 0; !status && i < t->n_schemes; i++)
        for (size_t k = 0; !status && k < t->n_keys; k++) {
            const tm_wm_key *key = s->keys[k];
            status = tm_detector_create(&s->detectors[i][k], s->tokenizer, &t->schemes[i], &key, 1, &options, err);
            /* EXP-edit/ITS-edit have no windows (their statistic is an
             * alignment of the whole text): their windowed variants are not
             * scored, and their cells say n = 0. */
            if (!status && any_window(t) && t->schemes[i].kind != TM_WM_EXP_EDIT) {
                tm_detect_options windowed = options;
                windowed.windows = true;
                status = tm_detector_create(&s->window_detectors[i][k], s->tokenizer, &t->schemes[i], &key, 1,
                                            &windowed, err);
            }
            if (status) tm_error_prefix(err, "%s: schemes: %s", t->path, t->scheme_names[i]);
        }
    if (!status && (any_attack(t, TM_ATTACK_SYNONYM) || any_attack(t, TM_ATTACK_INSERT))) {
        status = tm_wordnet_open(&s->wordnet, "/usr/share/wordnet", err);
        if (status) tm_error_prefix(err, "%s: attacks (install Debian's wordnet-base)", t->path);
    }
    bool need_human = t->null_human > 0 || any_attack(t, TM_ATTACK_COPY_PASTE);
    if (!status && need_human) {
        status = tm_eval_human_texts_load(t, &s->human, &s->n_human, err);
        if (status) tm_error_prefix(err, "%s: null.data_dir", t->path);
        else if ((size_t)t->null_human > s->n_human)
            status = tm_error_set(err, TM_ERR_ARGUMENT, "%s: null.human: %d texts asked, the sources hold %zu",
                                  t->path, (int)t->null_human, s->n_human);
        else if (s->n_human == 0)
            status = tm_error_set(err, TM_ERR_ARGUMENT, "%s: null.sources: no human text to paste into", t->path);
        if (!status) status = build_filler(s, err);
    }
    if (!status) {
        /* The emoji attack's marker: the token of "@" (one piece in SentencePiece vocabularies). */
        int32_t *ids = NULL;
        size_t n = 0;
        status = tm_tokenizer_encode(s->tokenizer, "@", 1, false, &ids, &n, err);
        s->marker = n ? ids[n - 1] : tm_tokenizer_eos(s->tokenizer);
        free(ids);
    }
    if (status) {
        release(s);
        return status;
    }
    *out = s;
    return TM_OK;
}

static const char *model_sha256(void *opaque) { return ((wm_state *)opaque)->model_sha; }

static void worker_free(void *opaque) {
    wm_worker *w = opaque;
    if (!w) return;
    tm_context_free(w->context);
    tm_context_free(w->oracle);
    tm_context_free(w->paraphraser);
    free(w);
}

static tm_status worker_create(void *opaque, void **out, tm_error *err) {
    wm_state *s = opaque;
    wm_worker *w = calloc(1, sizeof *w);
    if (!w) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    w->state = s;
    tm_status status = tm_context_create(&w->context, s->model, 0, 1, err);
    if (!status && s->oracle) status = tm_context_create(&w->oracle, s->oracle, 0, 1, err);
    if (!status && s->paraphraser) status = tm_context_create(&w->paraphraser, s->paraphraser, 0, 1, err);
    if (status) {
        worker_free(w);
        return status;
    }
    *out = w;
    return TM_OK;
}


/* ---- generation ------------------------------------------------------------------- */

/* Whether a prompt is encoded with BOS: as tm_generate encodes it (where
 * the vocabulary adds BOS), so that attacks and scores condition on what the
 * generation did; an empty prompt always gets it (nothing else to start
 * from, as tm_loglik_encode does). */
static bool prompt_bos(const tm_tokenizer *tok, const char *prompt) { return tm_tokenizer_adds_bos(tok) || !*prompt; }

/* Generate, forcing the marker after every sampled token when marker >= 0
 * (the emoji attack): the scheme sees the markers in its context, the text
 * returned is the sampled tokens alone (the markers stripped). */
static tm_status generate(wm_worker *w, tm_sampler_chain *chain, const char *prompt, int32_t marker,
                          tm_generation *out, tm_error *err) {
    const tm_eval_task *t = w->state->task;
    tm_generate_options options = {.max_tokens = t->max_tokens};
    if (marker < 0) {
        tm_context_reset(w->context);
        return tm_generate(w->context, w->state->tokenizer, chain, prompt, &options, out, err);
    }
    memset(out, 0, sizeof *out);
    const tm_tokenizer *tok = w->state->tokenizer;
    int32_t *prompt_ids = NULL;
    size_t n_prompt = 0;
    tm_status status =
        tm_tokenizer_encode(tok, prompt, strlen(prompt), prompt_bos(tok, prompt), &prompt_ids, &n_prompt, err);
    if (status) return status;
    int32_t *ids = tm_alloc_array((size_t)t->max_tokens + 1, sizeof *ids, err);
    if (!ids) return free(prompt_ids), TM_ERR_NOMEM;
    tm_context_reset(w->context);
    const float *logits = NULL;
    status = tm_context_eval(w->context, prompt_ids, n_prompt, &logits, err);
    int32_t n_vocab = tm_tokenizer_vocab_size(tok);
    size_t n = 0;
    tm_error limit;
    while (!status && n < (size_t)t->max_tokens) {
        int32_t token = tm_sampler_chain_sample(chain, logits, n_vocab);
        if (token < 0) {
            status = tm_error_set(err, TM_ERR_NOMEM, "sampling failed");
            break;
        }
        tm_sampler_chain_accept(chain, token);
        if (tm_tokenizer_is_end_of_generation(tok, token) || token == tm_tokenizer_bos(tok)) break;
        ids[n++] = token;
        /* A full context ends the text like max_tokens does. */
        if (tm_context_eval(w->context, &token, 1, &logits, &limit) ||
            tm_context_eval(w->context, &marker, 1, &logits, &limit))
            break;
        tm_sampler_chain_accept(chain, marker);
    }
    free(prompt_ids);
    if (!status) status = tm_tokenizer_decode(tok, ids, n, &out->text, &out->text_size, err);
    if (status) return free(ids), status;
    out->ids = ids;
    out->n_ids = n;
    out->stop_reason = "emoji";
    return TM_OK;
}

/* The paraphrase attack: the text's tokens after the context, each block of
 * TM_EVAL_SPAN_TOKENS regenerated (with probability strength) by the plain chain
 * given everything before it, the other blocks kept. One forward pass. */
static tm_status paraphrase(wm_worker *w, const char *context, const char *text, double strength, uint64_t seed,
                            char **out, size_t *out_size, size_t *edits, size_t *units, tm_error *err) {
    /* The paraphraser when the task names one, else the model itself. */
    const tm_tokenizer *tok = w->paraphraser ? w->state->paraphraser_tokenizer : w->state->tokenizer;
    tm_context *context_of_model = w->paraphraser ? w->paraphraser : w->context;
    int32_t *ctx_ids = NULL, *ids = NULL;
    size_t n_ctx = 0, n = 0;
    tm_status status = tm_tokenizer_encode(tok, context, strlen(context), prompt_bos(tok, context), &ctx_ids, &n_ctx, err);
    if (!status) status = tm_tokenizer_encode(tok, text, strlen(text), false, &ids, &n, err);
    if (!status)
        status = tm_eval_regenerate_spans(w->state->task, context_of_model, tok, ctx_ids, n_ctx, ids, &n, strength,
                                          seed, edits, err);
    *units = n;
    if (!status) status = tm_tokenizer_decode(tok, ids, n, out, out_size, err);
    free(ctx_ids);
    free(ids);
    return status;
}

/* ---- perplexity while generating ------------------------------------------------- */

/* The model's log-probability of each sampled token, read from the logits
 * the generation computes anyway: a one-stage chain whose stage records
 * log softmax(logits)[token] and hands the logits on to the real chain.
 * tm_quality_perplexity would run the same forward passes again (a reset,
 * the prompt as one batch, then one token at a time, as tm_generate does),
 * and it computes each term with the same double arithmetic, so the
 * perplexity is the same number, bit for bit (tests/test_evals.c checks
 * it); the generation's tokens are untouched (the real chain sees the same
 * logits and is accepted the same tokens). Logits that are not all finite
 * (the chain turns NaN into -inf) fall back to tm_quality_perplexity. */
typedef struct {
    tm_sampler_chain *inner;
    float *logits;
    double *terms; /* per step: the sampled token's log-probability */
    size_t n_terms, capacity;
    int32_t n_vocab;
    bool usable;
} nll_recorder;

static const char *recorder_name(const tm_sampler *sampler) {
    (void)sampler;
    return "eval-nll-recorder";
}

static void recorder_apply(tm_sampler *sampler, tm_candidates *c) {
    nll_recorder *r = sampler->state;
    /* The first stage sees the fresh candidates: every token, in id order. */
    if (c->size != (size_t)r->n_vocab) r->usable = false;
    for (size_t i = 0; i < c->size && i < (size_t)r->n_vocab; i++) {
        r->logits[i] = c->data[i].logit;
        if (c->data[i].id != (int32_t)i || !isfinite(c->data[i].logit)) r->usable = false;
    }
    int32_t token = r->usable ? tm_sampler_chain_sample(r->inner, r->logits, r->n_vocab) : -1;
    if (token < 0) {
        r->usable = false;
        c->size = 0; /* the outer chain then fails the step as the inner one did */
        c->selected = -1;
        return;
    }
    c->selected = token;
    if (r->n_terms == r->capacity) {
        r->usable = false;
        return;
    }
    /* As tm_quality_perplexity: max, then the sum of exp(l - max), in doubles. */
    const float *logits = r->logits;
    double max = logits[0];
    for (int32_t v = 1; v < r->n_vocab; v++) max = logits[v] > max ? logits[v] : max;
    double sum = 0;
    for (int32_t v = 0; v < r->n_vocab; v++) sum += exp((double)logits[v] - max);
    r->terms[r->n_terms++] = (double)logits[token] - max - log(sum);
}

static void recorder_accept(tm_sampler *sampler, int32_t token) {
    tm_sampler_chain_accept(((nll_recorder *)sampler->state)->inner, token);
}

static void recorder_reset(tm_sampler *sampler) { tm_sampler_chain_reset(((nll_recorder *)sampler->state)->inner); }

static const tm_sampler_interface recorder_interface = {
    .name = recorder_name, .apply = recorder_apply, .accept = recorder_accept, .reset = recorder_reset};

/* The outer chain around inner (which stays the caller's); NULL when out of memory. */
static tm_sampler_chain *recorder_chain(nll_recorder *r, tm_sampler_chain *inner, int32_t n_vocab, int32_t max_tokens) {
    memset(r, 0, sizeof *r);
    r->inner = inner;
    r->n_vocab = n_vocab;
    r->capacity = (size_t)max_tokens + 1;
    r->usable = n_vocab > 0;
    r->logits = malloc((size_t)(n_vocab > 0 ? n_vocab : 1) * sizeof *r->logits);
    r->terms = malloc(r->capacity * sizeof *r->terms);
    tm_sampler_chain *outer = tm_sampler_chain_create();
    tm_sampler *stage = malloc(sizeof *stage);
    if (stage) *stage = (tm_sampler){&recorder_interface, r};
    if (!r->logits || !r->terms || !outer || !stage || !tm_sampler_chain_add(outer, stage)) {
        if (!outer) free(stage);
        tm_sampler_chain_free(outer);
        return NULL;
    }
    return outer;
}

static void recorder_free(nll_recorder *r) {
    free(r->logits);
    free(r->terms);
}

/* The perplexity of the generation's n_ids tokens from the recorded terms
 * (NAN where tm_quality_perplexity gives NAN); false when they cannot stand in. */
static bool recorded_perplexity(const nll_recorder *r, size_t n_prompt, size_t n_ids, double *perplexity) {
    *perplexity = NAN;
    if (!r->usable || r->n_terms < n_ids) return false;
    if (n_prompt == 0 || n_ids == 0) return true;
    double nll = 0;
    for (size_t i = 0; i < n_ids; i++) nll -= r->terms[i];
    *perplexity = exp(nll / (double)n_ids);
    return true;
}

/* ---- scoring ---------------------------------------------------------------------- */

/* A text as every detector reads it: normalised, then tokenised without BOS,
 * which is what tm_detect_text does; done once per text for all schemes.
 * n == 0: nothing to score (an empty text, or one the normaliser or the
 * tokenizer refuses as an argument error: for the evaluation that text
 * simply carries no mark, p = 1). */
typedef struct {
    int32_t *ids;
    size_t n;
} scored_text;

static tm_status tokenize_for_detection(const wm_state *s, const char *text, scored_text *out, tm_error *err) {
    out->ids = NULL;
    out->n = 0;
    if (!text[0]) return TM_OK;
    char *normalized = NULL;
    size_t size = 0;
    tm_error local;
    tm_status status = tm_text_normalize(text, strlen(text), &s->normalize, &normalized, &size, NULL, &local);
    if (!status) status = tm_tokenizer_encode(s->tokenizer, normalized, size, false, &out->ids, &out->n, &local);
    free(normalized);
    if (status) {
        free(out->ids);
        out->ids = NULL;
        out->n = 0;
        if (status == TM_ERR_ARGUMENT) return TM_OK;
        if (err) *err = local;
    }
    return status;
}

/* The detections made so far for one sample, by detector and token
 * sequence: an attack that leaves the tokens as they were (homoglyphs and
 * zero-width characters after normalisation), a prefix that is the whole
 * text or a length that is also a scan point is scored once. A detector is
 * a pure function of its tokens (its permutation keys come from a fixed
 * seed), so a reused value is the value a second call would return. The
 * entries point into the sample's scored_texts, which outlive them. */
typedef struct {
    const tm_detector *detector;
    const int32_t *ids;
    size_t n;
    uint64_t hash;
    double log_p, log_p_decision;
    bool scored;
} memo_entry;

typedef struct {
    memo_entry *entries;
    size_t n, capacity;
} detection_memo;

static uint64_t hash_ids(const int32_t *ids, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a: only a filter, sequences are compared in full */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint32_t)ids[i]) * 0x100000001b3ULL;
    return h;
}

/* The detection of ids[0..n) by d (n >= 1), from the memo or made now. */
static tm_status memo_detect(detection_memo *m, const tm_detector *d, const int32_t *ids, size_t n,
                             const memo_entry **out, tm_error *err) {
    uint64_t hash = hash_ids(ids, n);
    for (size_t i = 0; i < m->n; i++) {
        const memo_entry *e = &m->entries[i];
        if (e->detector == d && e->hash == hash && e->n == n && !memcmp(e->ids, ids, n * sizeof *ids)) {
            *out = e;
            return TM_OK;
        }
    }
    if (m->n == m->capacity) {
        size_t capacity = m->capacity ? 2 * m->capacity : 64;
        memo_entry *bigger = realloc(m->entries, capacity * sizeof *bigger);
        if (!bigger) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        m->entries = bigger;
        m->capacity = capacity;
    }
    tm_detection detection;
    tm_status status = tm_detect_tokens(d, 0, ids, n, 0, &detection, err);
    if (status) return status;
    memo_entry *e = &m->entries[m->n++];
    *e = (memo_entry){d, ids, n, hash, detection.log_p, detection.log_p_decision, detection.n_scored > 0};
    *out = e;
    return TM_OK;
}

/* -ln p of a whole variant as the evaluation records it: 0 when nothing was
 * scored; the windowed decision p for a windowed detector. */
static tm_status variant_log_p(detection_memo *m, const tm_detector *d, const scored_text *x, bool windowed,
                               double *log_p, tm_error *err) {
    *log_p = 0;
    if (x->n == 0) return TM_OK;
    const memo_entry *e = NULL;
    tm_error local;
    tm_status status = memo_detect(m, d, x->ids, x->n, &e, &local);
    /* tm_detect_text's argument errors meant "nothing to score" here before; they still do. */
    if (status == TM_ERR_ARGUMENT) return TM_OK;
    if (status) {
        if (err) *err = local;
        return status;
    }
    if (e->scored) *log_p = windowed ? e->log_p_decision : e->log_p;
    return TM_OK;
}

/* p-values of the text's first L tokens at each task length (null where the
 * text is shorter): TPR against length, for the unattacked and each
 * attacked text. */
static json_t *length_log_ps(detection_memo *m, const tm_eval_task *t, const tm_detector *d, const scored_text *x,
                             tm_status *status, tm_error *err) {
    json_t *lengths = json_array();
    for (size_t k = 0; !*status && k < t->n_lengths; k++) {
        size_t L = (size_t)t->lengths[k];
        const memo_entry *e = NULL;
        if (L > x->n) json_array_append_new(lengths, json_null());
        else if (!(*status = memo_detect(m, d, x->ids, L, &e, err)))
            json_array_append_new(lengths, tm_eval_json_number(e->scored ? e->log_p : 0));
    }
    return lengths;
}

/* The unattacked text's prefixes: p at each task length, and the first
 * multiple of prefix_step where p <= decision_fpr. */
static tm_status prefixes(detection_memo *m, const tm_eval_task *t, const tm_detector *detector, const scored_text *x,
                          json_t *scores, tm_error *err) {
    tm_status status = TM_OK;
    const int32_t *ids = x->ids;
    size_t n = x->n;
    json_t *lengths = length_log_ps(m, t, detector, x, &status, err);
    /* Coarse to fine: prefixes every 5 steps until one is detected, then every
     * step inside that last stretch. A crossing that comes and goes between
     * two coarse points is missed; the scan costs a third of a fine one,
     * which matters for the permutation-tested schemes. */
    double threshold = log(t->decision_fpr);
    json_t *needed = json_null();
    size_t step = (size_t)t->prefix_step, coarse = 5 * step, found = 0;
    const memo_entry *e = NULL;
    for (size_t L = coarse; !status && !found && L < n + coarse; L += coarse) {
        size_t at = L < n ? L : n - n % step; /* the last coarse point is the longest multiple of step */
        if (at == 0) break;
        status = memo_detect(m, detector, ids, at, &e, err);
        if (!status && e->scored && e->log_p <= threshold) found = at;
    }
    for (size_t L = found > coarse ? found - coarse + step : step; !status && found && L < found; L += step) {
        status = memo_detect(m, detector, ids, L, &e, err);
        if (!status && e->scored && e->log_p <= threshold) found = L;
    }
    if (found) needed = json_integer((json_int_t)found);
    json_object_set_new(scores, "prefix_log_p", lengths);
    json_object_set_new(scores, "tokens_to_detect", needed);
    json_object_set_new(scores, "n_detect_tokens", json_integer((json_int_t)n));
    return status;
}

static void sha_of(const char *text, char hex[TM_SHA256_HEX_SIZE]) { tm_sha256_hex(text, strlen(text), hex); }

/* The attacked text of attack a on text (context: what preceded it, for the
 * model-time attacks). For emoji, *text_out comes from emoji_text. */
static tm_status attack(wm_worker *w, const tm_eval_attack *a, const char *context, const char *text,
                        const char *emoji_text, uint64_t sample_seed, char **out, json_t *info, tm_error *err) {
    wm_state *s = w->state;
    uint64_t seed = tm_eval_mix(sample_seed, tm_eval_name_hash(a->name));
    size_t size = 0, edits = 0, units = 0;
    tm_status status = TM_OK;
    if (a->kind == TM_ATTACK_EMOJI) {
        *out = strdup(emoji_text ? emoji_text : text);
        if (!*out) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    } else if (a->kind == TM_ATTACK_PARAPHRASE) {
        status = paraphrase(w, context, text, a->strength, seed, out, &size, &edits, &units, err);
    } else {
        tm_attack_params params = {.kind = a->kind, .strength = a->strength, .seed = seed, .wordnet = s->wordnet,
                                   .filler = s->filler};
        status = tm_attack_text(text, strlen(text), &params, out, &size, &edits, &units, err);
    }
    if (status) return tm_error_prefix(err, "attack %s", a->name);
    char hex[TM_SHA256_HEX_SIZE];
    sha_of(*out, hex);
    json_object_set_new(info, a->name, json_pack("{s:s, s:I, s:I}", "sha256", hex, "edits", (json_int_t)edits,
                                                 "units", (json_int_t)units));
    return TM_OK;
}

static json_t *quality_json(wm_worker *w, const char *prompt, const tm_generation *g, const nll_recorder *recorded,
                            tm_error *err, tm_status *status) {
    double ppl = NAN;
    bool have_ppl = recorded_perplexity(recorded, g->n_prompt, g->n_ids, &ppl);
    int32_t *all = have_ppl ? NULL : tm_alloc_array(g->n_prompt + g->n_ids + 1, sizeof *all, err);
    if (have_ppl) {
        /* the perplexity came with the generation */
    } else if (!all) *status = TM_ERR_NOMEM;
    else {
        memcpy(all, g->prompt_ids, g->n_prompt * sizeof *all);
        memcpy(all + g->n_prompt, g->ids, g->n_ids * sizeof *all);
        *status = tm_quality_perplexity(w->context, tm_tokenizer_vocab_size(w->state->tokenizer), all,
                                        g->n_prompt + g->n_ids, g->n_prompt, &ppl, err);
        free(all);
    }
    json_t *oracle = NULL;
    if (!*status && w->oracle) {
        /* The oracle reads the prompt and the text with its own tokenizer. */
        const tm_tokenizer *tok = w->state->oracle_tokenizer;
        int32_t *p_ids = NULL, *t_ids = NULL;
        size_t n_p = 0, n_t = 0;
        double oracle_ppl = NAN;
        /* Prompt and text encoded as one string (as the text was read), the
         * prompt's own tokens marking where scoring starts. */
        size_t n_prompt_bytes = strlen(prompt);
        char *whole = malloc(n_prompt_bytes + g->text_size + 1);
        if (!whole) *status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        else {
            memcpy(whole, prompt, n_prompt_bytes);
            memcpy(whole + n_prompt_bytes, g->text, g->text_size);
            whole[n_prompt_bytes + g->text_size] = '\0';
        }
        bool bos = prompt_bos(tok, prompt);
        if (!*status) *status = tm_tokenizer_encode(tok, prompt, n_prompt_bytes, bos, &p_ids, &n_p, err);
        if (!*status) *status = tm_tokenizer_encode(tok, whole, strlen(whole), bos, &t_ids, &n_t, err);
        if (!*status)
            *status = tm_quality_perplexity(w->oracle, tm_tokenizer_vocab_size(tok), t_ids, n_t, n_p < n_t ? n_p : n_t,
                                            &oracle_ppl, err);
        free(p_ids), free(t_ids), free(whole);
        oracle = tm_eval_json_number(oracle_ppl);
    }
    json_t *q = json_pack("{s:o, s:o, s:o, s:o, s:o}", "perplexity", tm_eval_json_number(ppl), "distinct_1",
                     tm_eval_json_number(tm_quality_distinct(g->ids, g->n_ids, 1)), "distinct_2",
                     tm_eval_json_number(tm_quality_distinct(g->ids, g->n_ids, 2)), "distinct_3",
                     tm_eval_json_number(tm_quality_distinct(g->ids, g->n_ids, 3)), "repetition",
                     tm_eval_json_number(tm_quality_repetition(g->ids, g->n_ids)));
    if (oracle) json_object_set_new(q, "perplexity_oracle", oracle);
    return q;
}

static char *ids_hash(const int32_t *ids, size_t n, char hex[TM_SHA256_HEX_SIZE]) {
    tm_sha256_hex(ids, n * sizeof *ids, hex);
    return hex;
}

static json_t *ids_json(const int32_t *ids, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static tm_status run_sample(void *opaque, void *worker, int64_t id, tm_eval_record *r, tm_error *err) {
    wm_state *s = opaque;
    wm_worker *w = worker;
    const tm_eval_task *t = s->task;
    uint64_t seed = tm_eval_mix(t->seed, (uint64_t)id);
    int64_t n_wm = (int64_t)t->n_schemes * t->samples;
    bool watermarked = id < n_wm, human = id >= n_wm + t->null_generated;
    size_t scheme = watermarked ? (size_t)(id / t->samples) : 0;
    int64_t index = watermarked ? id % t->samples : human ? id - n_wm - t->null_generated : id - n_wm;
    size_t key = (size_t)(index % (int64_t)t->n_keys);
    const char *prompt = human ? "" : t->prompts[index % (int64_t)t->n_prompts];
    char seed_text[32];
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
    if (watermarked) snprintf(r->group, sizeof r->group, "watermarked/%s", t->scheme_names[scheme]);
    else snprintf(r->group, sizeof r->group, "null/%s", human ? "human" : "generated");

    json_t *input = json_pack("{s:s, s:s, s:I, s:I}", "seed", seed_text, "source",
                              watermarked ? "watermarked" : human ? "human" : "generated", "index",
                              (json_int_t)index, "key_index", (json_int_t)key);
    json_t *output = json_object(), *scores = json_object(), *attacked = json_object();
    tm_status status = TM_OK;
    tm_generation g;
    memset(&g, 0, sizeof g);
    tm_generation emoji;
    memset(&emoji, 0, sizeof emoji);
    nll_recorder recorder;
    memset(&recorder, 0, sizeof recorder);
    const char *text;
    const tm_wm_config *config = watermarked ? &t->schemes[scheme] : NULL;
    if (human) {
        text = s->human[index];
        json_object_set_new(input, "document", json_string(text));
    } else {
        json_object_set_new(input, "prompt", json_string(prompt));
        if (watermarked) json_object_set_new(input, "scheme", json_string(t->scheme_names[scheme]));
        tm_wm_scheme *wm = NULL;
        tm_sampler_chain *chain = tm_eval_sampler_chain(t, config, s->keys[key], seed, &wm, err);
        tm_sampler_chain *outer = chain ? recorder_chain(&recorder, chain, tm_tokenizer_vocab_size(s->tokenizer),
                                                         t->max_tokens)
                                        : NULL;
        if (chain && !outer) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        else status = chain ? generate(w, outer, prompt, -1, &g, err) : TM_ERR_NOMEM;
        tm_sampler_chain_free(outer);
        tm_sampler_chain_free(chain);
        tm_wm_scheme_free(wm);
        text = g.text ? g.text : "";
        if (!status) {
            json_object_set_new(output, "text", json_string(text));
            json_object_set_new(output, "ids", ids_json(g.ids, g.n_ids));
            json_object_set_new(output, "stop_reason", json_string(g.stop_reason ? g.stop_reason : ""));
            json_object_set_new(scores, "n_tokens", json_integer((json_int_t)g.n_ids));
            json_object_set_new(scores, "quality", quality_json(w, prompt, &g, &recorder, err, &status));
        }
        if (!status && any_attack(t, TM_ATTACK_EMOJI)) {
            chain = tm_eval_sampler_chain(t, config, s->keys[key], tm_eval_mix(seed, 2), &wm, err);
            status = chain ? generate(w, chain, prompt, s->marker, &emoji, err) : TM_ERR_NOMEM;
            tm_sampler_chain_free(chain);
            tm_wm_scheme_free(wm);
            if (!status) json_object_set_new(output, "emoji_text", json_string(emoji.text));
        }
    }
    /* Attacked texts: the same for every scheme's detector. */
    size_t n_variants = t->n_attacks + 1;
    char **texts = calloc(n_variants, sizeof *texts);
    if (!texts && !status) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    if (!status && !(texts[0] = strdup(text))) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    for (size_t a = 0; !status && a < t->n_attacks; a++) {
        /* A window variant scores the same text as its whole-text twin. */
        if (t->attacks[a].window && a > 0 && t->attacks[a - 1].kind == t->attacks[a].kind &&
            t->attacks[a - 1].strength == t->attacks[a].strength) {
            texts[a + 1] = strdup(texts[a]);
            if (!texts[a + 1]) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
            continue;
        }
        status = attack(w, &t->attacks[a], prompt, text, human ? NULL : emoji.text, seed, &texts[a + 1], attacked, err);
    }
    if (!status) json_object_set_new(output, "attacked", attacked), attacked = NULL;
    /* Detection: each variant normalised and tokenised once, for every
     * detector that reads it; detections shared through the memo. */
    scored_text *tokens = status ? NULL : calloc(n_variants, sizeof *tokens);
    if (!status && !tokens) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    for (size_t a = 0; !status && a < n_variants; a++) status = tokenize_for_detection(s, texts[a], &tokens[a], err);
    detection_memo memo = {0};
    size_t first = watermarked ? scheme : 0, last = watermarked ? scheme + 1 : t->n_schemes;
    json_t *by_scheme = json_object();
    for (size_t i = first; !status && i < last; i++) {
        json_t *log_ps = json_object();
        for (size_t a = 0; !status && a < n_variants; a++) {
            bool windowed = a > 0 && t->attacks[a - 1].window;
            const tm_detector *d = windowed ? s->window_detectors[i][key] : s->detectors[i][key];
            if (!d) continue;
            double log_p;
            status = variant_log_p(&memo, d, &tokens[a], windowed, &log_p, err);
            if (!status) json_object_set_new(log_ps, a ? t->attacks[a - 1].name : "none", tm_eval_json_number(log_p));
        }
        if (watermarked) {
            json_object_set_new(scores, "log_p", log_ps);
            if (!status) status = prefixes(&memo, t, s->detectors[i][key], &tokens[0], scores, err);
            /* TPR against length under each attack: the attacked text's
             * prefixes (a windowed variant's text is its whole-text twin's). */
            json_t *attacked_lengths = json_object();
            for (size_t a = 1; !status && a < n_variants; a++)
                if (!t->attacks[a - 1].window)
                    json_object_set_new(attacked_lengths, t->attacks[a - 1].name,
                                        length_log_ps(&memo, t, s->detectors[i][key], &tokens[a], &status, err));
            json_object_set_new(scores, "prefix_log_p_attacked", attacked_lengths);
        } else json_object_set_new(by_scheme, t->scheme_names[i], log_ps);
    }
    if (!watermarked) json_object_set_new(scores, "log_p", by_scheme);
    else json_decref(by_scheme);
    for (size_t a = 0; tokens && a < n_variants; a++) free(tokens[a].ids);
    free(tokens);
    free(memo.entries);
    for (size_t a = 0; texts && a < n_variants; a++) free(texts[a]);
    free(texts);
    json_decref(attacked);

    if (!status) {
        char hex[TM_SHA256_HEX_SIZE];
        sha_of(prompt, r->prompt_sha256);
        sha_of(text, r->document_sha256);
        /* The target: the generated token ids (a human text has none: its own hash). */
        if (human) sha_of(text, r->target_sha256);
        else snprintf(r->target_sha256, sizeof r->target_sha256, "%s", ids_hash(g.ids, g.n_ids, hex));
        r->input = tm_eval_json_text(input), input = NULL;
        r->output = tm_eval_json_text(output), output = NULL;
        r->scores = tm_eval_json_text(scores), scores = NULL;
        if (!r->input || !r->output || !r->scores) status = tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    }
    json_decref(input);
    json_decref(output);
    json_decref(scores);
    tm_generation_free(&g);
    tm_generation_free(&emoji);
    recorder_free(&recorder);
    return status;
}

const tm_eval_runner tm_eval_watermark_runner = {
    .name = "watermark",
    .prepare = prepare,
    .sample_count = sample_count,
    .worker_create = worker_create,
    .worker_free = worker_free,
    .run_sample = run_sample,
    .aggregate = tm_eval_watermark_aggregate,
    .model_sha256 = model_sha256,
    .release = release,
};
