/* The server's engine: N slots (one tm_context each) and one thread that
 * runs continuous batching. New sequences take free slots between steps and
 * have their prompts evaluated; then every active sequence samples its next
 * token from its own chain (watermark included) and the tokens of all of
 * them go through tm_context_eval_batch together, so each step reads the
 * weights once however many streams are running. A cancelled request (the
 * client went away) leaves its slot at the next step. The engine never
 * touches the network and never frees a request another thread still holds. */
#include "server_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct tm_server_engine {
    const tm_model *model;
    const tm_tokenizer *tokenizer;
    int32_t n_slots, n_ctx, max_queue, n_vocab, n_threads;
    tm_context **contexts;
    tm_server_job **slots;
    size_t piece_capacity;
    char *piece;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    tm_server_job **queue; /* FIFO ring of max_queue */
    size_t queue_head, queue_size;
    bool stopping, started;
    pthread_t thread;
    tm_server_engine_stats stats; /* under lock */
};

tm_server_request *tm_server_request_create(size_t n_jobs) {
    tm_server_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->jobs = calloc(n_jobs ? n_jobs : 1, sizeof *r->jobs);
    if (!r->jobs) {
        free(r);
        return NULL;
    }
    r->n_jobs = n_jobs;
    r->references = 1;
    atomic_init(&r->cancelled, false);
    pthread_mutex_init(&r->mutex, NULL);
    pthread_cond_init(&r->changed, NULL);
    for (size_t i = 0; i < n_jobs; i++) {
        r->jobs[i].request = r;
        r->jobs[i].slot = -1;
        r->jobs[i].top_logprobs = -1;
    }
    return r;
}

void tm_server_request_release(tm_server_request *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mutex);
    int left = --r->references;
    pthread_mutex_unlock(&r->mutex);
    if (left > 0) return;
    for (size_t i = 0; i < r->n_jobs; i++) {
        tm_server_job *j = &r->jobs[i];
        free(j->prompt);
        tm_sampler_chain_free(j->chain);
        free(j->text);
        free(j->tokens);
    }
    free(r->jobs);
    if (r->http_free) r->http_free(r->http);
    pthread_cond_destroy(&r->changed);
    pthread_mutex_destroy(&r->mutex);
    free(r);
}

/* ---- a job's text (engine side, called with the request's mutex held) ----- */

static bool append_text(tm_server_job *j, const char *data, size_t size) {
    size_t need = j->text_size + size + 1;
    if (need > j->text_capacity) {
        size_t capacity = j->text_capacity ? j->text_capacity : 256;
        while (capacity < need) capacity *= 2;
        char *grown = realloc(j->text, capacity);
        if (!grown) return false;
        j->text = grown;
        j->text_capacity = capacity;
    }
    memcpy(j->text + j->text_size, data, size);
    j->text_size += size;
    j->text[j->text_size] = '\0';
    return true;
}

static size_t longest_stop(const tm_server_request *r) {
    size_t longest = 0;
    for (size_t s = 0; s < r->n_stops; s++)
        if (strlen(r->stops[s]) > longest) longest = strlen(r->stops[s]);
    return longest;
}

/* Earliest stop string at or after from, or SIZE_MAX. */
static size_t find_stop(const tm_server_request *r, const char *text, size_t size, size_t from) {
    size_t best = SIZE_MAX;
    for (size_t s = 0; s < r->n_stops; s++) {
        size_t n = strlen(r->stops[s]);
        for (size_t i = from; n && i + n <= size && i < best; i++)
            if (!memcmp(text + i, r->stops[s], n)) {
                best = i;
                break;
            }
    }
    return best;
}

/* Finish a job (mutex held): flush what the detokenizer still holds unless a
 * stop string cut the text, make everything visible, wake the reader. */
/* A slot's own buffer for token text (slot -1: the engine thread's spare),
 * so that slots can be sampled on several threads at once. */
static char *piece_of(tm_server_engine *e, int slot) {
    return e->piece + (size_t)(slot >= 0 ? slot : e->n_slots) * e->piece_capacity;
}

static void finish_locked(tm_server_engine *e, tm_server_job *j, const char *reason, bool flush) {
    if (flush) {
        char *piece = piece_of(e, j->slot);
        size_t n = tm_detokenizer_flush(&j->detokenizer, piece, e->piece_capacity);
        if (n && !append_text(j, piece, n)) reason = "error";
    }
    j->visible = j->text_size;
    j->finish_reason = reason;
    j->done = true;
    pthread_cond_broadcast(&j->request->changed);
}

/* Release the slot and the engine's reference; the job must not be touched after. */
static void finish(tm_server_engine *e, tm_server_job *j, const char *reason, bool flush, const tm_error *error) {
    tm_server_request *r = j->request;
    pthread_mutex_lock(&r->mutex);
    if (error) j->error = *error;
    finish_locked(e, j, reason, flush);
    pthread_mutex_unlock(&r->mutex);
    pthread_mutex_lock(&e->lock);
    if (!strcmp(reason, "cancelled")) e->stats.cancelled++;
    if (j->slot >= 0) {
        e->slots[j->slot] = NULL;
        e->stats.busy_slots--;
        j->slot = -1;
    }
    pthread_mutex_unlock(&e->lock);
    tm_server_request_release(r);
}

/* The model's log-probabilities of the chosen token and the top k (k <= 20). */
static void record_logprobs(tm_server_job *j, const float *logits, int32_t n_vocab, int32_t token,
                            tm_server_token *t) {
    float max = logits[0];
    for (int32_t v = 1; v < n_vocab; v++)
        if (logits[v] > max) max = logits[v];
    double sum = 0;
    for (int32_t v = 0; v < n_vocab; v++) sum += exp((double)(logits[v] - max));
    float log_z = max + (float)log(sum);
    t->id = token;
    t->logprob = logits[token] - log_z;
    int k = j->top_logprobs < n_vocab ? j->top_logprobs : n_vocab;
    for (int i = 0; i < k; i++) {
        int32_t best = -1;
        for (int32_t v = 0; v < n_vocab; v++) {
            bool taken = false;
            for (int p = 0; p < i && !taken; p++) taken = t->top_ids[p] == v;
            if (!taken && (best < 0 || logits[v] > logits[best])) best = v;
        }
        t->top_ids[i] = best;
        t->top_logprobs[i] = logits[best] - log_z;
    }
}

/* Sample one token for an active job and take it in. Returns true when the
 * job goes on (and *next is the token to evaluate), false when it finished. */
static bool step_job(tm_server_engine *e, tm_server_job *j, int32_t *next) {
    const tm_tokenizer *t = e->tokenizer;
    tm_server_request *r = j->request;
    if (atomic_load(&r->cancelled)) {
        finish(e, j, "cancelled", false, NULL);
        return false;
    }
    if (j->n_generated >= j->max_tokens) {
        finish(e, j, "length", true, NULL);
        return false;
    }
    int32_t token = tm_sampler_chain_sample(j->chain, j->logits, e->n_vocab);
    if (token < 0) {
        tm_error err;
        tm_error_set(&err, TM_ERR_NOMEM, "the sampler chain could not select a token");
        finish(e, j, "error", false, &err);
        return false;
    }
    if (token == tm_tokenizer_eos(t) || tm_tokenizer_is_end_of_generation(t, token) || token == tm_tokenizer_bos(t)) {
        finish(e, j, "stop", true, NULL);
        return false;
    }
    tm_sampler_chain_accept(j->chain, token);
    if (j->n_generated == 0) {
        static const double buckets[TM_SERVER_TTFT_COUNT] = TM_SERVER_TTFT_BUCKETS;
        double seconds = tm_seconds_now() - j->submitted;
        int b = 0;
        while (b < TM_SERVER_TTFT_COUNT && seconds > buckets[b]) b++;
        pthread_mutex_lock(&e->lock);
        e->stats.first_token[b]++;
        e->stats.first_token_sum += seconds;
        pthread_mutex_unlock(&e->lock);
    }
    tm_server_token record = {0};
    if (j->top_logprobs >= 0) record_logprobs(j, j->logits, e->n_vocab, token, &record);
    char *piece = piece_of(e, j->slot);
    size_t n = tm_detokenizer_push(&j->detokenizer, token, piece, e->piece_capacity);
    size_t hold_back = longest_stop(r);
    bool ok = true, stopped = false;
    pthread_mutex_lock(&r->mutex);
    if (j->top_logprobs >= 0) {
        if (j->n_tokens == j->tokens_capacity) {
            size_t capacity = j->tokens_capacity ? 2 * j->tokens_capacity : 64;
            tm_server_token *grown = realloc(j->tokens, capacity * sizeof *grown);
            if (grown) j->tokens = grown, j->tokens_capacity = capacity;
        }
        if (j->n_tokens < j->tokens_capacity) {
            record.previous = j->previous;
            record.text_offset = j->text_size;
            j->tokens[j->n_tokens++] = record;
        } else {
            ok = false;
        }
    }
    size_t search_from = j->text_size >= hold_back ? j->text_size - hold_back + 1 : 0;
    ok = ok && append_text(j, piece, n);
    j->n_generated++;
    j->previous = token;
    if (ok) {
        size_t at = find_stop(r, j->text, j->text_size, search_from);
        if (at != SIZE_MAX) {
            j->text_size = at;
            j->text[at] = '\0';
            while (j->n_tokens > 0 && j->tokens[j->n_tokens - 1].text_offset >= at) j->n_tokens--;
            stopped = true;
        } else {
            size_t safe = j->text_size > hold_back ? j->text_size - hold_back : 0;
            while (safe > j->visible && safe < j->text_size && ((uint8_t)j->text[safe] & 0xC0) == 0x80) safe--;
            if (safe > j->visible) {
                j->visible = safe;
                pthread_cond_broadcast(&r->changed);
            }
        }
    }
    pthread_mutex_unlock(&r->mutex);
    pthread_mutex_lock(&e->lock);
    e->stats.generated_tokens++;
    pthread_mutex_unlock(&e->lock);
    if (!ok) {
        tm_error err;
        tm_error_set(&err, TM_ERR_NOMEM, "out of memory growing the generated text");
        finish(e, j, "error", false, &err);
        return false;
    }
    if (stopped) {
        finish(e, j, "stop", false, NULL);
        return false;
    }
    if (j->n_generated >= j->max_tokens) {
        finish(e, j, "length", true, NULL);
        return false;
    }
    if (tm_context_position(e->contexts[j->slot]) >= tm_context_size(e->contexts[j->slot])) {
        finish(e, j, "length", true, NULL);
        return false;
    }
    *next = token;
    return true;
}

/* Prompts are evaluated at most PREFILL_CHUNK tokens per engine step, so
 * that a long prompt delays the streams already running by one chunk's
 * time per step rather than by its whole length. */
enum { PREFILL_CHUNK = 128 };

/* A newly admitted job: fresh context, the prompt through the detokenizer
 * and the sampler chain (penalties and the watermark's context). */
static void admit(tm_server_engine *e, tm_server_job *j) {
    tm_context_reset(e->contexts[j->slot]);
    tm_detokenizer_init(&j->detokenizer, e->tokenizer);
    for (size_t i = 0; i < j->n_prompt; i++) {
        tm_detokenizer_push(&j->detokenizer, j->prompt[i], piece_of(e, j->slot), e->piece_capacity);
        tm_sampler_chain_accept(j->chain, j->prompt[i]);
    }
    j->previous = j->prompt[j->n_prompt - 1];
    j->prefilled = 0;
}

/* The next chunk of a job's prompt; false when the job ended (cancelled or failed). */
static bool prefill_chunk(tm_server_engine *e, tm_server_job *j) {
    if (atomic_load(&j->request->cancelled)) {
        finish(e, j, "cancelled", false, NULL);
        return false;
    }
    size_t n = j->n_prompt - j->prefilled < PREFILL_CHUNK ? j->n_prompt - j->prefilled : PREFILL_CHUNK;
    tm_error err = {0};
    if (tm_context_eval(e->contexts[j->slot], j->prompt + j->prefilled, n, &j->logits, &err) != TM_OK) {
        finish(e, j, "error", false, &err);
        return false;
    }
    j->prefilled += n;
    pthread_mutex_lock(&e->lock);
    e->stats.prompt_tokens += n;
    pthread_mutex_unlock(&e->lock);
    return true;
}

static void *engine_main(void *arg) {
    tm_server_engine *e = arg;
    /* OpenBLAS (OpenMP build) sizes its sgemm team from the calling thread's
     * OpenMP setting, not from tm_context's thread count: this thread runs
     * every forward pass, so it carries the count (on a busy machine an
     * oversized team's barriers cost hundreds of milliseconds per prompt). */
    omp_set_num_threads(e->n_threads);
    tm_context **batch_contexts = calloc((size_t)e->n_slots, sizeof *batch_contexts);
    tm_server_job **batch_jobs = calloc((size_t)e->n_slots, sizeof *batch_jobs);
    tm_server_job **admitted = calloc((size_t)e->n_slots, sizeof *admitted);
    int32_t *tokens = calloc((size_t)e->n_slots, sizeof *tokens);
    const float **logits = calloc((size_t)e->n_slots, sizeof *logits);
    bool *go = calloc((size_t)e->n_slots, sizeof *go);
    bool have_memory = batch_contexts && batch_jobs && admitted && tokens && logits && go;
    for (;;) {
        pthread_mutex_lock(&e->lock);
        for (;;) {
            bool active = e->stats.busy_slots > 0;
            if (e->stopping || active || e->queue_size > 0) break;
            pthread_cond_wait(&e->wake, &e->lock);
        }
        if (e->stopping) {
            pthread_mutex_unlock(&e->lock);
            break;
        }
        /* Admit waiting jobs into free slots, oldest first. */
        int n_admitted = 0;
        for (int s = 0; s < e->n_slots && e->queue_size > 0 && have_memory; s++) {
            if (e->slots[s]) continue;
            tm_server_job *j = e->queue[e->queue_head];
            e->queue_head = (e->queue_head + 1) % (size_t)e->max_queue;
            e->queue_size--;
            e->slots[s] = j;
            j->slot = s;
            e->stats.busy_slots++;
            e->stats.sequences++;
            admitted[n_admitted++] = j;
        }
        e->stats.queued = (int)e->queue_size;
        pthread_mutex_unlock(&e->lock);
        if (!have_memory) break;
        for (int i = 0; i < n_admitted; i++) admit(e, admitted[i]);
        /* Sequences still reading their prompt take one chunk of it; then
         * every ready sequence samples its next token (on several threads
         * when the engine has them: 32000-way sampling per sequence would
         * otherwise run one after another while cores wait), and those that
         * go on take one batched step together. */
        int n_ready = 0;
        for (int s = 0; s < e->n_slots; s++) {
            pthread_mutex_lock(&e->lock);
            tm_server_job *j = e->slots[s];
            pthread_mutex_unlock(&e->lock);
            if (!j) continue;
            if (j->prefilled < j->n_prompt && (!prefill_chunk(e, j) || j->prefilled < j->n_prompt)) continue;
            admitted[n_ready++] = j; /* reused: the sequences ready to sample */
        }
        int sampling_threads = n_ready < e->n_threads ? n_ready : e->n_threads;
#pragma omp parallel for num_threads(sampling_threads > 0 ? sampling_threads : 1) schedule(dynamic, 1)
        for (int k = 0; k < n_ready; k++) go[k] = step_job(e, admitted[k], &tokens[k]);
        size_t n = 0;
        for (int k = 0; k < n_ready; k++)
            if (go[k]) {
                batch_jobs[n] = admitted[k];
                batch_contexts[n] = e->contexts[admitted[k]->slot];
                tokens[n++] = tokens[k];
            }
        if (n == 0) continue;
        tm_error err = {0};
        if (tm_context_eval_batch(batch_contexts, tokens, n, logits, &err) != TM_OK) {
            for (size_t i = 0; i < n; i++) finish(e, batch_jobs[i], "error", false, &err);
            continue;
        }
        for (size_t i = 0; i < n; i++) batch_jobs[i]->logits = logits[i];
        pthread_mutex_lock(&e->lock);
        e->stats.decode_steps++;
        e->stats.batched_rows += n;
        pthread_mutex_unlock(&e->lock);
    }
    /* Stopping (or out of memory): every job still held ends as cancelled. */
    for (int s = 0; s < e->n_slots; s++)
        if (e->slots[s]) finish(e, e->slots[s], "cancelled", false, NULL);
    pthread_mutex_lock(&e->lock);
    while (e->queue_size > 0) {
        tm_server_job *j = e->queue[e->queue_head];
        e->queue_head = (e->queue_head + 1) % (size_t)e->max_queue;
        e->queue_size--;
        pthread_mutex_unlock(&e->lock);
        finish(e, j, "cancelled", false, NULL);
        pthread_mutex_lock(&e->lock);
    }
    e->stopping = true;
    pthread_mutex_unlock(&e->lock);
    free(batch_contexts);
    free(batch_jobs);
    free(admitted);
    free(tokens);
    free(logits);
    free(go);
    return NULL;
}

tm_status tm_server_engine_create(tm_server_engine **out, const tm_model *model, const tm_tokenizer *tokenizer,
                                  int32_t slots, int32_t n_ctx, int32_t n_threads, tm_kv_type kv_type,
                                  int32_t max_queue, tm_error *err) {
    *out = NULL;
    if (slots < 1 || slots > 64) return tm_error_set(err, TM_ERR_ARGUMENT, "--parallel %d is out of range (1..64)", slots);
    if (max_queue < 1) max_queue = 256;
    tm_server_engine *e = tm_alloc_array(1, sizeof *e, err);
    if (!e) return TM_ERR_NOMEM;
    e->model = model;
    e->tokenizer = tokenizer;
    e->n_slots = slots;
    e->max_queue = max_queue;
    e->n_vocab = tm_tokenizer_vocab_size(tokenizer);
    e->stats.slots = slots;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    e->piece_capacity = tm_tokenizer_max_piece_size(tokenizer) + TM_DETOKENIZE_MAX;
    if (!(e->piece = tm_alloc_array((size_t)slots + 1, e->piece_capacity, err)) ||
        !(e->contexts = tm_alloc_array((size_t)slots, sizeof *e->contexts, err)) ||
        !(e->slots = tm_alloc_array((size_t)slots, sizeof *e->slots, err)) ||
        !(e->queue = tm_alloc_array((size_t)max_queue, sizeof *e->queue, err))) {
        tm_server_engine_free(e);
        return TM_ERR_NOMEM;
    }
    for (int32_t s = 0; s < slots; s++) {
        tm_status status = tm_context_create_kv(&e->contexts[s], model, n_ctx, n_threads, kv_type, err);
        if (status != TM_OK) {
            tm_server_engine_free(e);
            return status;
        }
    }
    e->n_ctx = tm_context_size(e->contexts[0]);
    e->n_threads = n_threads > 0 ? n_threads : omp_get_num_procs();
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        tm_server_engine_free(e);
        return tm_error_set(err, TM_ERR_NOMEM, "could not start the engine thread");
    }
    e->started = true;
    *out = e;
    return TM_OK;
}

void tm_server_engine_stop(tm_server_engine *e) {
    if (!e || !e->started) return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    e->started = false;
}

void tm_server_engine_free(tm_server_engine *e) {
    if (!e) return;
    tm_server_engine_stop(e);
    if (e->contexts)
        for (int32_t s = 0; s < e->n_slots; s++) tm_context_free(e->contexts[s]);
    free(e->contexts);
    free(e->slots);
    free(e->queue);
    free(e->piece);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

int32_t tm_server_engine_context_size(const tm_server_engine *e) { return e->n_ctx; }

tm_status tm_server_engine_submit(tm_server_engine *e, tm_server_request *r, tm_error *err) {
    pthread_mutex_lock(&e->lock);
    if (e->stopping) {
        pthread_mutex_unlock(&e->lock);
        return tm_error_set(err, TM_ERR_LIMIT, "the server is shutting down");
    }
    if (e->queue_size + r->n_jobs > (size_t)e->max_queue) {
        pthread_mutex_unlock(&e->lock);
        return tm_error_set(err, TM_ERR_LIMIT, "the server is busy: %zu sequences are waiting for a slot",
                            e->queue_size);
    }
    pthread_mutex_lock(&r->mutex);
    r->references += (int)r->n_jobs;
    pthread_mutex_unlock(&r->mutex);
    double now = tm_seconds_now();
    for (size_t i = 0; i < r->n_jobs; i++) {
        r->jobs[i].submitted = now;
        e->queue[(e->queue_head + e->queue_size) % (size_t)e->max_queue] = &r->jobs[i];
        e->queue_size++;
    }
    e->stats.queued = (int)e->queue_size;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
    return TM_OK;
}

void tm_server_engine_poke(tm_server_engine *e) {
    pthread_mutex_lock(&e->lock);
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

void tm_server_engine_stats_get(tm_server_engine *e, tm_server_engine_stats *out) {
    pthread_mutex_lock(&e->lock);
    *out = e->stats;
    pthread_mutex_unlock(&e->lock);
}
