/* Internal to server/: the engine that owns the slots and runs continuous
 * batching, and the jobs (one per returned choice) that the HTTP side hands
 * it and reads back. A job's visible state is guarded by its request's
 * mutex; the engine is the only writer, the HTTP thread the only reader. */
#ifndef TRACEMARK_SERVER_INTERNAL_H
#define TRACEMARK_SERVER_INTERNAL_H

#include "tracemark/server.h"
#include "tracemark/watermark.h"

#include <pthread.h>
#include <stdatomic.h>

enum { TM_SERVER_MAX_STOPS = 4, TM_SERVER_MAX_TOP_LOGPROBS = 20 };

/* One generated token as the logprobs fields report it: the model's own
 * log-probability (log-softmax of the raw logits, before temperature and
 * watermark), and the most likely alternatives. */
typedef struct {
    int32_t id, previous;
    float logprob;
    int32_t top_ids[TM_SERVER_MAX_TOP_LOGPROBS];
    float top_logprobs[TM_SERVER_MAX_TOP_LOGPROBS];
    size_t text_offset; /* byte offset of the token's text in the choice's text */
} tm_server_token;

typedef struct tm_server_request tm_server_request;

typedef struct {
    /* set before submission, read-only afterwards */
    tm_server_request *request;
    int32_t *prompt;
    size_t n_prompt;
    tm_sampler_chain *chain;
    int32_t max_tokens;
    int top_logprobs; /* -1: no logprobs */
    /* written by the engine under request->mutex */
    char *text;
    size_t text_size, text_capacity, visible; /* text[0..visible) can no longer be claimed by a stop string */
    tm_server_token *tokens;                  /* only with logprobs */
    size_t n_tokens, tokens_capacity;
    int32_t n_generated;
    const char *finish_reason; /* "stop", "length", "cancelled", "error" */
    bool done;
    tm_error error;
    /* engine only */
    tm_detokenizer detokenizer;
    const float *logits;
    int32_t previous;
    int slot;
    size_t prefilled; /* prompt tokens evaluated so far (chunked prefill) */
    double submitted; /* tm_seconds_now() at submission, for the time to the first token */
} tm_server_job;

/* What the HTTP side and the engine share for one HTTP request. Freed when
 * the last reference goes: one for the HTTP side and one per unfinished job. */
struct tm_server_request {
    pthread_mutex_t mutex;
    pthread_cond_t changed;
    int references;
    atomic_bool cancelled; /* the client went away, or the server stops */
    tm_server_job *jobs;
    size_t n_jobs;
    const char *const *stops; /* owned by the HTTP side's parsed request, which outlives the jobs' use */
    size_t n_stops;
    void *http; /* the HTTP side's own state, freed with the request */
    void (*http_free)(void *http);
};

typedef struct tm_server_engine tm_server_engine;

/* Time from submission to a sequence's first token (queue + prompt), in
 * the buckets of TM_SERVER_TTFT_BUCKETS, the last one +Inf. */
#define TM_SERVER_TTFT_BUCKETS {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
enum { TM_SERVER_TTFT_COUNT = 11 };

typedef struct {
    uint64_t first_token[TM_SERVER_TTFT_COUNT + 1];
    double first_token_sum;
    uint64_t prompt_tokens, generated_tokens, decode_steps, batched_rows, sequences, cancelled;
    int busy_slots, slots, queued;
} tm_server_engine_stats;

tm_status tm_server_engine_create(tm_server_engine **out, const tm_model *model, const tm_tokenizer *tokenizer,
                                  int32_t slots, int32_t n_ctx, int32_t n_threads, int32_t max_queue, tm_error *err);
/* Cancel everything and join the engine thread; submit refuses afterwards. */
void tm_server_engine_stop(tm_server_engine *engine);
/* Stop (if not yet) and free. */
void tm_server_engine_free(tm_server_engine *engine);
int32_t tm_server_engine_context_size(const tm_server_engine *engine);
/* Queue every job of the request (one reference each is taken). TM_ERR_LIMIT when the queue is full. */
tm_status tm_server_engine_submit(tm_server_engine *engine, tm_server_request *request, tm_error *err);
/* Wake the engine so that it sees a request's cancelled flag at once. */
void tm_server_engine_poke(tm_server_engine *engine);
void tm_server_engine_stats_get(tm_server_engine *engine, tm_server_engine_stats *out);

tm_server_request *tm_server_request_create(size_t n_jobs);
/* Drop one reference; frees the request and its jobs at zero. */
void tm_server_request_release(tm_server_request *request);

#endif
