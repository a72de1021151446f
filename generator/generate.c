/* The generate loop: encode the prompt (or take it as ids), run it through
 * the context in one batch, then sample, stream and evaluate one token at a
 * time until an end-of-generation token (EOS, or one like <|eot_id|> that
 * the tokenizer counts as ending a turn, as llama.cpp's llama_vocab_is_eog
 * does), BOS (as llama2.c stops), the token budget, a stop string, or a full
 * context. Streamed text never splits a UTF-8 character and never shows the
 * part of the output that a stop string later removes. */
#include "tracemark/generator.h"

#include <stdlib.h>
#include <string.h>

void tm_generation_free(tm_generation *result) {
    if (!result) return;
    free(result->prompt_ids);
    free(result->ids);
    free(result->text);
    memset(result, 0, sizeof *result);
}

typedef struct {
    char *data;
    size_t size, capacity;
} text_buffer;

static bool text_reserve(text_buffer *b, size_t extra, tm_error *err) {
    size_t need;
    if (!tm_add_size(b->size, extra + 1, &need)) {
        tm_error_set(err, TM_ERR_NOMEM, "generated text too long");
        return false;
    }
    if (need <= b->capacity) return true;
    size_t capacity = b->capacity ? b->capacity : 256;
    while (capacity < need) capacity *= 2;
    char *grown = realloc(b->data, capacity);
    if (!grown) {
        tm_error_set(err, TM_ERR_NOMEM, "out of memory growing the generated text to %zu bytes", capacity);
        return false;
    }
    b->data = grown;
    b->capacity = capacity;
    return true;
}

/* Earliest occurrence of any stop string at or after `from`; returns its offset or SIZE_MAX. */
static size_t find_stop(const char *text, size_t size, size_t from, const tm_generate_options *o) {
    size_t best = SIZE_MAX;
    for (size_t s = 0; s < o->n_stop_strings; s++) {
        const char *stop = o->stop_strings[s];
        size_t n = strlen(stop);
        if (n == 0 || n > size) continue;
        for (size_t i = from; i + n <= size && i < best; i++)
            if (memcmp(text + i, stop, n) == 0) {
                best = i;
                break;
            }
    }
    return best;
}

static size_t longest_stop(const tm_generate_options *o) {
    size_t longest = 0;
    for (size_t s = 0; s < o->n_stop_strings; s++) {
        size_t n = strlen(o->stop_strings[s]);
        if (n > longest) longest = n;
    }
    return longest;
}

/* The loop itself; result->prompt_ids and n_prompt are filled in already
 * and are freed with the rest on failure. */
static tm_status generate(tm_context *context, const tm_tokenizer *tokenizer, tm_sampler_chain *chain,
                          const tm_generate_options *options, tm_generation *result, tm_error *err) {
    int32_t n_vocab = tm_tokenizer_vocab_size(tokenizer);
    tm_status status = TM_OK;
    if (result->n_prompt >= (size_t)(tm_context_size(context) - tm_context_position(context))) {
        status = tm_error_set(err, TM_ERR_LIMIT, "the prompt's %zu tokens do not fit in a context of %d (raise --ctx)",
                              result->n_prompt, tm_context_size(context));
        tm_generation_free(result);
        return status;
    }
    result->ids = tm_alloc_array((size_t)options->max_tokens + 1, sizeof(int32_t), err);
    if (!result->ids) {
        tm_generation_free(result);
        return TM_ERR_NOMEM;
    }
    size_t piece_capacity = tm_tokenizer_max_piece_size(tokenizer) + TM_DETOKENIZE_MAX;
    char *piece = malloc(piece_capacity);
    text_buffer text = {0};
    if (!piece || !text_reserve(&text, 0, err)) {
        free(piece);
        tm_generation_free(result);
        return piece ? TM_ERR_NOMEM : tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    }

    double start = tm_seconds_now();
    const float *logits = NULL;
    status = tm_context_eval(context, result->prompt_ids, result->n_prompt, &logits, err);
    double prompt_done = tm_seconds_now();
    result->prompt_seconds = prompt_done - start;

    tm_detokenizer detokenizer;
    tm_detokenizer_init(&detokenizer, tokenizer);
    for (size_t i = 0; i < result->n_prompt; i++) tm_detokenizer_push(&detokenizer, result->prompt_ids[i], piece, piece_capacity);
    for (size_t i = 0; i < result->n_prompt; i++) tm_sampler_chain_accept(chain, result->prompt_ids[i]);

    size_t emitted = 0, hold_back = longest_stop(options);
    bool stopped = false;
    result->stop_reason = "max_tokens";
    for (int32_t step = 0; status == TM_OK && step < options->max_tokens; step++) {
        int32_t next = tm_sampler_chain_sample(chain, logits, n_vocab);
        if (next < 0) {
            status = tm_error_set(err, TM_ERR_NOMEM, "the sampler chain could not select a token");
            break;
        }
        if (next == tm_tokenizer_eos(tokenizer)) { result->stop_reason = "eos"; break; }
        if (tm_tokenizer_is_end_of_generation(tokenizer, next)) { result->stop_reason = "end_of_generation"; break; }
        if (next == tm_tokenizer_bos(tokenizer)) { result->stop_reason = "bos"; break; }
        tm_sampler_chain_accept(chain, next);
        result->ids[result->n_ids++] = next;
        size_t n = tm_detokenizer_push(&detokenizer, next, piece, piece_capacity);
        bool last = step + 1 == options->max_tokens;
        if (!text_reserve(&text, n, err)) { status = TM_ERR_NOMEM; break; }
        memcpy(text.data + text.size, piece, n);
        size_t search_from = text.size >= hold_back ? text.size - hold_back + 1 : 0;
        text.size += n;
        text.data[text.size] = '\0';
        size_t stop_at = find_stop(text.data, text.size, search_from, options);
        if (stop_at != SIZE_MAX) {
            text.size = stop_at;
            text.data[text.size] = '\0';
            result->stop_reason = "stop_string";
            stopped = true;
        }
        /* Stream what no stop string can still claim, ending on a character boundary. */
        size_t safe = stopped || last ? text.size
                      : text.size > hold_back               ? text.size - hold_back
                                                             : 0;
        while (safe > emitted && safe < text.size && ((uint8_t)text.data[safe] & 0xC0) == 0x80) safe--;
        if (safe > emitted && options->on_text) options->on_text(text.data + emitted, safe - emitted, options->user);
        if (safe > emitted) emitted = safe;
        if (stopped || last) break;
        if (tm_context_position(context) >= tm_context_size(context)) { result->stop_reason = "context_full"; break; }
        status = tm_context_eval(context, &next, 1, &logits, err);
    }
    if (status == TM_OK && !stopped) {
        size_t n = tm_detokenizer_flush(&detokenizer, piece, piece_capacity);
        if (text_reserve(&text, n, err)) {
            memcpy(text.data + text.size, piece, n);
            text.size += n;
            text.data[text.size] = '\0';
        } else {
            status = TM_ERR_NOMEM;
        }
    }
    if (status == TM_OK && emitted < text.size && options->on_text)
        options->on_text(text.data + emitted, text.size - emitted, options->user);
    result->decode_seconds = tm_seconds_now() - prompt_done;
    free(piece);
    result->text = text.data;
    result->text_size = text.size;
    if (status != TM_OK) tm_generation_free(result);
    return status;
}

tm_status tm_generate(tm_context *context, const tm_tokenizer *tokenizer, tm_sampler_chain *chain, const char *prompt,
                      const tm_generate_options *options, tm_generation *result, tm_error *err) {
    memset(result, 0, sizeof *result);
    if (options->max_tokens < 0) return tm_error_set(err, TM_ERR_ARGUMENT, "max tokens %d is negative", options->max_tokens);
    tm_status status = tm_tokenizer_encode(tokenizer, prompt, strlen(prompt), tm_tokenizer_adds_bos(tokenizer),
                                           &result->prompt_ids, &result->n_prompt, err);
    if (status != TM_OK) {
        if (err) tm_error_prefix(err, "prompt");
        return status;
    }
    if (result->n_prompt == 0) {
        tm_generation_free(result);
        return tm_error_set(err, TM_ERR_ARGUMENT, "the prompt is empty and this vocabulary adds no BOS to start from");
    }
    return generate(context, tokenizer, chain, options, result, err);
}

tm_status tm_generate_from_ids(tm_context *context, const tm_tokenizer *tokenizer, tm_sampler_chain *chain,
                               const int32_t *prompt_ids, size_t n_prompt, const tm_generate_options *options,
                               tm_generation *result, tm_error *err) {
    memset(result, 0, sizeof *result);
    if (!context || !tokenizer || !chain || !options || (!prompt_ids && n_prompt))
        return tm_error_set(err, TM_ERR_ARGUMENT, "tm_generate_from_ids: NULL argument");
    if (options->max_tokens < 0) return tm_error_set(err, TM_ERR_ARGUMENT, "max tokens %d is negative", options->max_tokens);
    if (n_prompt == 0) return tm_error_set(err, TM_ERR_ARGUMENT, "the prompt has no tokens to start from");
    int32_t n_vocab = tm_tokenizer_vocab_size(tokenizer);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt_ids[i] < 0 || prompt_ids[i] >= n_vocab)
            return tm_error_set(err, TM_ERR_ARGUMENT, "prompt token %zu has id %d, outside the vocabulary of %d", i,
                                (int)prompt_ids[i], (int)n_vocab);
    result->prompt_ids = tm_alloc_array(n_prompt, sizeof *prompt_ids, err);
    if (!result->prompt_ids) return TM_ERR_NOMEM;
    memcpy(result->prompt_ids, prompt_ids, n_prompt * sizeof *prompt_ids);
    result->n_prompt = n_prompt;
    return generate(context, tokenizer, chain, options, result, err);
}
