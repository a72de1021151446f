/* Running the models for the zero-shot detectors: checks that the scoring,
 * reference and performer models share one vocabulary, runs a window of a
 * text's ids through each model's context in one prompt-style pass that
 * returns every position's logits (tm_context_eval_rows; or, kept to measure
 * against, one position at a time), and hands every next-token distribution
 * to tm_zeroshot_position_stats. Texts longer than the window are scored in
 * overlapping windows (or refused, on request). Many short texts share one
 * packed pass per model (tm_context_eval_rows_packed), each text's rows the
 * ones its own pass would give. It must never print, and
 * never score a position twice or skip one: every token after the first is
 * scored exactly once. */
#include "tracemark/zeroshot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct tm_zeroshot {
    tm_zeroshot_method method;
    const tm_tokenizer *tokenizer;
    tm_context *scoring, *reference, *performer;
    int32_t n_vocab, n_ctx;
    bool slide, one_position_at_a_time;
    /* Logit rows of one chunk of positions, per model: chunk_rows x n_vocab. */
    float *rows_scoring, *rows_reference, *rows_performer;
    size_t chunk_rows;
};

/* At most this many floats of logit rows per model at once (32 MiB): a
 * window of a 32000-token vocabulary is chunked into 256-row passes instead
 * of holding 4096 x 32000 floats. */
enum { ROWS_BUDGET_FLOATS = 8 << 20 };

/* Two tokenizers are the same vocabulary when every id has the same bytes. */
static tm_status same_vocabulary(const tm_tokenizer *a, const tm_tokenizer *b, const char *role, tm_error *err) {
    if (!a || !b) return TM_OK;
    int32_t n = tm_tokenizer_vocab_size(a);
    if (n != tm_tokenizer_vocab_size(b))
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: the vocabularies differ in size (%d and %d tokens)", role, n,
                            tm_tokenizer_vocab_size(b));
    for (int32_t id = 0; id < n; id++) {
        size_t sa = 0, sb = 0;
        const char *pa = tm_tokenizer_piece(a, id, &sa), *pb = tm_tokenizer_piece(b, id, &sb);
        if (sa != sb || (sa && memcmp(pa, pb, sa)))
            return tm_error_set(err, TM_ERR_ARGUMENT, "%s: the vocabularies differ at token id %d", role, id);
    }
    return TM_OK;
}

void tm_zeroshot_free(tm_zeroshot *z) {
    if (!z) return;
    tm_context_free(z->scoring);
    tm_context_free(z->reference);
    tm_context_free(z->performer);
    free(z->rows_scoring);
    free(z->rows_reference);
    free(z->rows_performer);
    free(z);
}

int32_t tm_zeroshot_window(const tm_zeroshot *z) { return z->n_ctx; }

tm_status tm_zeroshot_create(tm_zeroshot **out, const tm_zeroshot_options *o, tm_error *err) {
    *out = NULL;
    if (!o || (unsigned)o->method >= TM_ZEROSHOT_METHOD_COUNT)
        return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: unknown method");
    if (!o->model) return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: a scoring model is required");
    bool binoculars = o->method == TM_ZEROSHOT_BINOCULARS;
    const tm_model *reference = o->method == TM_ZEROSHOT_FAST_DETECTGPT ? o->reference : NULL;
    const tm_model *performer = binoculars ? o->performer : NULL;
    if (binoculars && !performer)
        return tm_error_set(err, TM_ERR_ARGUMENT, "binoculars: needs a performer model besides the observer");
    int32_t n_vocab = tm_model_get_config(o->model)->n_vocab;
    const tm_model *others[2] = {reference, performer};
    const char *roles[2] = {"fast-detectgpt reference model", "binoculars performer"};
    for (int k = 0; k < 2; k++)
        if (others[k] && tm_model_get_config(others[k])->n_vocab != n_vocab)
            return tm_error_set(err, TM_ERR_ARGUMENT,
                                "%s: the vocabularies differ in size (%d tokens against the scoring model's %d); "
                                "both models must share one tokenizer",
                                roles[k], tm_model_get_config(others[k])->n_vocab, n_vocab);
    tm_status status = TM_OK;
    if (reference && (status = same_vocabulary(o->tokenizer, o->reference_tokenizer, roles[0], err)) != TM_OK)
        return status;
    if (performer && (status = same_vocabulary(o->tokenizer, o->performer_tokenizer, roles[1], err)) != TM_OK)
        return status;
    if (o->tokenizer && tm_tokenizer_vocab_size(o->tokenizer) != n_vocab)
        return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: the tokenizer has %d tokens, the model %d",
                            tm_tokenizer_vocab_size(o->tokenizer), n_vocab);
    int32_t n_ctx = o->n_ctx;
    if (n_ctx <= 0) {
        n_ctx = tm_model_get_config(o->model)->context_length;
        for (int k = 0; k < 2; k++)
            if (others[k] && tm_model_get_config(others[k])->context_length < n_ctx) n_ctx = tm_model_get_config(others[k])->context_length;
    }
    if (n_ctx < 2) return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: a window needs at least 2 tokens");
    tm_zeroshot *z = tm_alloc_array(1, sizeof *z, err);
    if (!z) return TM_ERR_NOMEM;
    z->method = o->method;
    z->tokenizer = o->tokenizer;
    z->n_vocab = n_vocab;
    z->n_ctx = n_ctx;
    z->slide = o->slide;
    z->one_position_at_a_time = o->one_position_at_a_time;
    /* Chunks of up to TM_CONTEXT_BATCH_MAX rows, the engine's own batch. */
    size_t chunk = ROWS_BUDGET_FLOATS / (size_t)n_vocab;
    if (chunk > TM_CONTEXT_BATCH_MAX) chunk = TM_CONTEXT_BATCH_MAX;
    if (chunk > (size_t)n_ctx) chunk = (size_t)n_ctx;
    if (chunk < 1) chunk = 1;
    z->chunk_rows = chunk;
    size_t row_floats;
    if (!tm_mul_size(chunk, (size_t)n_vocab, &row_floats)) {
        tm_zeroshot_free(z);
        return tm_error_set(err, TM_ERR_NOMEM, "zero-shot: %zu rows of %d logits overflow", chunk, n_vocab);
    }
    if (!z->one_position_at_a_time &&
        (!(z->rows_scoring = tm_alloc_array(row_floats, sizeof(float), err)) ||
         (reference && !(z->rows_reference = tm_alloc_array(row_floats, sizeof(float), err))) ||
         (performer && !(z->rows_performer = tm_alloc_array(row_floats, sizeof(float), err))))) {
        tm_zeroshot_free(z);
        return TM_ERR_NOMEM;
    }
    if ((status = tm_context_create(&z->scoring, o->model, n_ctx, o->n_threads, err)) != TM_OK ||
        (reference && (status = tm_context_create(&z->reference, reference, n_ctx, o->n_threads, err)) != TM_OK) ||
        (performer && (status = tm_context_create(&z->performer, performer, n_ctx, o->n_threads, err)) != TM_OK)) {
        tm_zeroshot_free(z);
        return status;
    }
    *out = z;
    return TM_OK;
}

void tm_zeroshot_result_free(tm_zeroshot_result *result) {
    if (!result) return;
    free(result->positions);
    result->positions = NULL;
}

/* Run tokens through every context; the logits after the last token come back. */
static tm_status eval_all(tm_zeroshot *z, const int32_t *tokens, size_t n, const float **scoring,
                          const float **reference, const float **performer, tm_error *err) {
    tm_status status = tm_context_eval(z->scoring, tokens, n, scoring, err);
    if (status == TM_OK && z->reference) status = tm_context_eval(z->reference, tokens, n, reference, err);
    if (status == TM_OK && z->performer) status = tm_context_eval(z->performer, tokens, n, performer, err);
    return status;
}

/* Run tokens through every context; the logits after each of
 * tokens[first_output..n-1] land in the models' row buffers. */
static tm_status eval_rows_all(tm_zeroshot *z, const int32_t *tokens, size_t n, size_t first_output, tm_error *err) {
    tm_status status = tm_context_eval_rows(z->scoring, tokens, n, first_output, z->rows_scoring, err);
    if (status == TM_OK && z->reference)
        status = tm_context_eval_rows(z->reference, tokens, n, first_output, z->rows_reference, err);
    if (status == TM_OK && z->performer)
        status = tm_context_eval_rows(z->performer, tokens, n, first_output, z->rows_performer, err);
    return status;
}

static void reset_all(tm_zeroshot *z) {
    tm_context_reset(z->scoring);
    if (z->reference) tm_context_reset(z->reference);
    if (z->performer) tm_context_reset(z->performer);
}

/* Where window number w > 0 starts: keep = window/2 tokens before the first
 * unscored prediction, so that every scored token still sees half a window
 * of context. Prediction i scores ids[i+1] given ids[start..i]; a window
 * holds at most `window` tokens, so it scores predictions start ..
 * start + window - 1. */
static size_t window_start(size_t next, size_t keep) { return next == 0 ? 0 : next - (next < keep ? next : keep); }

/* The prompt path: each window's tokens go through each model in passes of
 * up to chunk_rows predictions, every pass returning all its rows. */
static tm_status score_all_rows(tm_zeroshot *z, const int32_t *ids, size_t n_positions, tm_zeroshot_position *positions,
                                size_t *n_windows, tm_error *err) {
    size_t window = (size_t)z->n_ctx, keep = window / 2, next = 0;
    size_t n_vocab = (size_t)z->n_vocab;
    tm_status status = TM_OK;
    while (status == TM_OK && next < n_positions) {
        size_t start = window_start(next, keep);
        size_t last = start + window - 1 < n_positions - 1 ? start + window - 1 : n_positions - 1;
        reset_all(z);
        (*n_windows)++;
        /* from: the first id of this window not yet in the caches. */
        size_t from = start;
        while (status == TM_OK && next <= last) {
            size_t rows = last - next + 1 < z->chunk_rows ? last - next + 1 : z->chunk_rows;
            status = eval_rows_all(z, ids + from, next + rows - from, next - from, err);
            for (size_t r = 0; status == TM_OK && r < rows; r++)
                status = tm_zeroshot_position_stats(
                    z->rows_scoring + r * n_vocab, z->rows_reference ? z->rows_reference + r * n_vocab : NULL,
                    z->rows_performer ? z->rows_performer + r * n_vocab : NULL, z->n_vocab, ids[next + r + 1],
                    &positions[next + r], err);
            next += rows;
            from = next;
        }
    }
    return status;
}

/* The decode path, one position at a time through tm_context_eval (the
 * first of a window's predictions after one batched eval of its context):
 * what the room did before tm_context_eval_rows, kept so that benchmarks
 * can put the two side by side. */
static tm_status score_one_position_at_a_time(tm_zeroshot *z, const int32_t *ids, size_t n_positions,
                                              tm_zeroshot_position *positions, size_t *n_windows, tm_error *err) {
    size_t window = (size_t)z->n_ctx, next = 0, keep = window / 2;
    tm_status status = TM_OK;
    while (status == TM_OK && next < n_positions) {
        size_t start = window_start(next, keep);
        reset_all(z);
        (*n_windows)++;
        const float *ls = NULL, *lr = NULL, *lp = NULL;
        status = eval_all(z, ids + start, next - start + 1, &ls, &lr, &lp, err);
        while (status == TM_OK) {
            status = tm_zeroshot_position_stats(ls, lr, lp, z->n_vocab, ids[next + 1], &positions[next], err);
            if (status != TM_OK) break;
            next++;
            /* After ids[start..next] the context would hold next-start+1 tokens. */
            if (next >= n_positions || next - start + 1 > window) break;
            status = eval_all(z, ids + next, 1, &ls, &lr, &lp, err);
        }
    }
    return status;
}

/* The checks every text passes before any model runs: at least 2 ids, ids
 * inside the vocabulary, and (without slide) no more ids than the window. */
static tm_status check_ids(const tm_zeroshot *z, const int32_t *ids, size_t n_ids, tm_error *err) {
    if (!ids || n_ids < 2)
        return tm_error_set(err, TM_ERR_ARGUMENT,
                            "empty text: nothing to score (need at least one token after BOS, got %zu id%s)", n_ids,
                            n_ids == 1 ? "" : "s");
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= z->n_vocab)
            return tm_error_set(err, TM_ERR_ARGUMENT, "token %zu: id %d outside the vocabulary of %d", i, ids[i],
                                z->n_vocab);
    size_t window = (size_t)z->n_ctx;
    if (n_ids > window && !z->slide)
        return tm_error_set(err, TM_ERR_LIMIT,
                            "text too long: %zu tokens, longer than the window of %zu tokens (the model's context); "
                            "score it in sliding windows or shorten it",
                            n_ids, window);
    return TM_OK;
}

tm_status tm_zeroshot_score_ids(tm_zeroshot *z, const int32_t *ids, size_t n_ids, tm_zeroshot_result *out,
                                tm_error *err) {
    memset(out, 0, sizeof *out);
    tm_status status = check_ids(z, ids, n_ids, err);
    if (status != TM_OK) return status;
    size_t n_positions = n_ids - 1;
    tm_zeroshot_position *positions = tm_alloc_array(n_positions, sizeof *positions, err);
    if (!positions) return TM_ERR_NOMEM;
    size_t n_windows = 0;
    status = z->one_position_at_a_time ? score_one_position_at_a_time(z, ids, n_positions, positions, &n_windows, err)
                                       : score_all_rows(z, ids, n_positions, positions, &n_windows, err);
    if (status == TM_OK) status = tm_zeroshot_score_positions(z->method, positions, n_positions, &out->score, err);
    if (status != TM_OK) {
        free(positions);
        return status;
    }
    out->positions = positions;
    out->n_tokens = n_ids;
    out->n_windows = n_windows;
    return TM_OK;
}

/* ---- many texts per pass --------------------------------------------------- */

/* One pack of short texts (texts[0..n), each predicting n_ids - 1 positions,
 * together at most chunk_rows) through each model in one packed pass
 * (tm_context_eval_rows_packed): the text's rows are those of
 * score_all_rows's single window, computed on the same values. */
static tm_status score_pack(tm_zeroshot *z, const size_t *texts, size_t n, const int32_t *const *ids,
                            const size_t *n_ids, tm_zeroshot_result *results, tm_status *statuses, tm_error *errors,
                            int32_t *tokens, size_t *lengths, tm_error *err) {
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = texts[k];
        lengths[k] = n_ids[i] - 1; /* the last id is only predicted */
        memcpy(tokens + total, ids[i], lengths[k] * sizeof *tokens);
        total += lengths[k];
    }
    tm_status status = tm_context_eval_rows_packed(z->scoring, tokens, lengths, n, z->rows_scoring, err);
    if (status == TM_OK && z->reference)
        status = tm_context_eval_rows_packed(z->reference, tokens, lengths, n, z->rows_reference, err);
    if (status == TM_OK && z->performer)
        status = tm_context_eval_rows_packed(z->performer, tokens, lengths, n, z->rows_performer, err);
    if (status != TM_OK) return status;
    size_t n_vocab = (size_t)z->n_vocab;
    for (size_t k = 0, row = 0; k < n; row += lengths[k++]) {
        size_t i = texts[k];
        tm_error *e = errors ? &errors[i] : NULL;
        tm_zeroshot_position *positions = tm_alloc_array(lengths[k], sizeof *positions, err);
        if (!positions) return TM_ERR_NOMEM;
        tm_status s = TM_OK;
        for (size_t r = 0; s == TM_OK && r < lengths[k]; r++) {
            size_t at = (row + r) * n_vocab;
            s = tm_zeroshot_position_stats(z->rows_scoring + at, z->rows_reference ? z->rows_reference + at : NULL,
                                           z->rows_performer ? z->rows_performer + at : NULL, z->n_vocab,
                                           ids[i][r + 1], &positions[r], e);
        }
        if (s == TM_OK) s = tm_zeroshot_score_positions(z->method, positions, lengths[k], &results[i].score, e);
        statuses[i] = s;
        if (s != TM_OK) {
            free(positions);
            memset(&results[i], 0, sizeof results[i]);
            continue;
        }
        results[i].positions = positions;
        results[i].n_tokens = n_ids[i];
        results[i].n_windows = 1;
    }
    return TM_OK;
}

tm_status tm_zeroshot_score_ids_many(tm_zeroshot *z, const int32_t *const *ids, const size_t *n_ids, size_t n,
                                     tm_zeroshot_result *results, tm_status *statuses, tm_error *errors,
                                     tm_error *err) {
    if (!z || (n && (!ids || !n_ids || !results || !statuses)))
        return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: no texts to score");
    for (size_t i = 0; i < n; i++) {
        memset(&results[i], 0, sizeof results[i]);
        statuses[i] = check_ids(z, ids[i], n_ids[i], errors ? &errors[i] : NULL);
    }
    size_t budget = z->chunk_rows;
    size_t *pack = NULL, *lengths = NULL;
    int32_t *tokens = NULL;
    if (!z->one_position_at_a_time && n > 1 &&
        (!(pack = tm_alloc_array(budget, sizeof *pack, err)) || !(lengths = tm_alloc_array(budget, sizeof *lengths, err)) ||
         !(tokens = tm_alloc_array(budget, sizeof *tokens, err)))) {
        free(pack);
        free(lengths);
        return TM_ERR_NOMEM;
    }
    tm_status status = TM_OK;
    size_t in_pack = 0, rows = 0;
    for (size_t i = 0; status == TM_OK && i <= n; i++) {
        bool packable = i < n && pack && statuses[i] == TM_OK && n_ids[i] - 1 <= budget;
        /* A text that fills a pass on its own, or scoring one at a time,
         * takes the single-text path. */
        if (i < n && !packable) {
            if (statuses[i] != TM_OK) continue; /* refused by check_ids */
            statuses[i] = tm_zeroshot_score_ids(z, ids[i], n_ids[i], &results[i], errors ? &errors[i] : NULL);
            if (statuses[i] == TM_ERR_NOMEM) status = tm_error_set(err, TM_ERR_NOMEM, "zero-shot: out of memory");
            continue;
        }
        bool flush = in_pack && (i == n || rows + (n_ids[i] - 1) > budget);
        if (flush) {
            status = score_pack(z, pack, in_pack, ids, n_ids, results, statuses, errors, tokens, lengths, err);
            in_pack = rows = 0;
        }
        if (packable) {
            pack[in_pack++] = i;
            rows += n_ids[i] - 1;
        }
    }
    if (status != TM_OK)
        for (size_t i = 0; i < n; i++) tm_zeroshot_result_free(&results[i]);
    free(pack);
    free(lengths);
    free(tokens);
    return status;
}

tm_status tm_zeroshot_score_texts(tm_zeroshot *z, const char *const *texts, const size_t *sizes, size_t n,
                                  tm_zeroshot_result *results, tm_status *statuses, tm_error *errors, tm_error *err) {
    if (!z || (n && (!texts || !sizes || !results || !statuses)))
        return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: no texts to score");
    if (!z->tokenizer) return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: no tokenizer to encode the text");
    int32_t **ids = tm_alloc_array(n ? n : 1, sizeof *ids, err);
    size_t *n_ids = ids ? tm_alloc_array(n ? n : 1, sizeof *n_ids, err) : NULL;
    if (!n_ids) {
        free(ids);
        return TM_ERR_NOMEM;
    }
    tm_status status = TM_OK;
    for (size_t i = 0; status == TM_OK && i < n; i++) {
        tm_error *e = errors ? &errors[i] : NULL;
        if (!texts[i] || sizes[i] == 0) {
            statuses[i] = tm_error_set(e, TM_ERR_ARGUMENT, "empty text: nothing to score");
            continue;
        }
        statuses[i] = tm_tokenizer_encode(z->tokenizer, texts[i], sizes[i], tm_tokenizer_adds_bos(z->tokenizer),
                                          &ids[i], &n_ids[i], e);
        if (statuses[i] == TM_ERR_NOMEM) status = tm_error_set(err, TM_ERR_NOMEM, "zero-shot: out of memory");
    }
    /* Texts the tokenizer refused keep their status; the rest are scored. */
    size_t *order = status == TM_OK ? tm_alloc_array(n ? n : 1, sizeof *order, err) : NULL;
    if (status == TM_OK && !order) status = TM_ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; status == TM_OK && i < n; i++)
        if (statuses[i] == TM_OK) order[m++] = i;
    const int32_t **sub_ids = NULL;
    size_t *sub_n = NULL;
    tm_zeroshot_result *sub_results = NULL;
    tm_status *sub_statuses = NULL;
    tm_error *sub_errors = NULL;
    if (status == TM_OK && m &&
        (!(sub_ids = tm_alloc_array(m, sizeof *sub_ids, err)) || !(sub_n = tm_alloc_array(m, sizeof *sub_n, err)) ||
         !(sub_results = tm_alloc_array(m, sizeof *sub_results, err)) ||
         !(sub_statuses = tm_alloc_array(m, sizeof *sub_statuses, err)) ||
         !(sub_errors = tm_alloc_array(m, sizeof *sub_errors, err))))
        status = TM_ERR_NOMEM;
    if (status == TM_OK && m) {
        for (size_t k = 0; k < m; k++) sub_ids[k] = ids[order[k]], sub_n[k] = n_ids[order[k]];
        status = tm_zeroshot_score_ids_many(z, sub_ids, sub_n, m, sub_results, sub_statuses, sub_errors, err);
        for (size_t k = 0; status == TM_OK && k < m; k++) {
            results[order[k]] = sub_results[k];
            statuses[order[k]] = sub_statuses[k];
            if (errors) errors[order[k]] = sub_errors[k];
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (status != TM_OK || statuses[i] != TM_OK) memset(&results[i], 0, sizeof results[i]);
        free(ids[i]);
    }
    free(sub_ids);
    free(sub_n);
    free(sub_results);
    free(sub_statuses);
    free(sub_errors);
    free(order);
    free(ids);
    free(n_ids);
    return status;
}

tm_status tm_zeroshot_score_text(tm_zeroshot *z, const char *text, size_t size, tm_zeroshot_result *out,
                                 tm_error *err) {
    memset(out, 0, sizeof *out);
    if (!z->tokenizer) return tm_error_set(err, TM_ERR_ARGUMENT, "zero-shot: no tokenizer to encode the text");
    if (!text || size == 0) return tm_error_set(err, TM_ERR_ARGUMENT, "empty text: nothing to score");
    int32_t *ids = NULL;
    size_t n_ids = 0;
    tm_status status = tm_tokenizer_encode(z->tokenizer, text, size, tm_tokenizer_adds_bos(z->tokenizer), &ids, &n_ids, err);
    if (status == TM_OK) status = tm_zeroshot_score_ids(z, ids, n_ids, out, err);
    free(ids);
    return status;
}
