/* The server's Prometheus /metrics: the counters of requests by endpoint
 * and status (counted as each response is queued), the latency histograms
 * that the connection's completion fills, and the engine's own counters
 * and gauges, rendered in the text exposition format. It only reads and
 * counts; it must never block on the engine beyond a stats snapshot, nor
 * expose anything of a tenant or a key. */
#include "server_internal.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>

void tm_server_count_status(tm_server *s, http_state *h, int status) {
    h->status = status;
    pthread_mutex_lock(&s->lock);
    for (int c = 0; c < N_CODES; c++)
        if (status_codes[c] == status) s->requests[h->endpoint][c]++;
    pthread_mutex_unlock(&s->lock);
}

enum MHD_Result tm_server_handle_metrics(struct MHD_Connection *c, http_state *h) {
    tm_server *s = h->server;
    tm_server_engine_stats st;
    tm_server_engine_stats_get(s->engine, &st);
    size_t capacity = 16384, n = 0;
    char *out = malloc(capacity);
    if (!out) return MHD_NO;
#define EMIT(...) (n += (size_t)snprintf(out + n, n < capacity ? capacity - n : 0, __VA_ARGS__))
    EMIT("# HELP tracemark_requests_total HTTP requests by endpoint and status.\n# TYPE tracemark_requests_total counter\n");
    pthread_mutex_lock(&s->lock);
    for (int e = 0; e < EP_COUNT; e++)
        for (int k = 0; k < N_CODES; k++)
            if (s->requests[e][k])
                EMIT("tracemark_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n", endpoint_names[e], status_codes[k],
                     (unsigned long long)s->requests[e][k]);
    EMIT("# HELP tracemark_request_duration_seconds Time from request to last byte.\n"
         "# TYPE tracemark_request_duration_seconds histogram\n");
    for (int e = 0; e < 3; e++) {
        uint64_t cumulative = 0;
        for (int b = 0; b <= N_BUCKETS; b++) {
            cumulative += s->latency_counts[e][b];
            if (b < N_BUCKETS)
                EMIT("tracemark_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n", endpoint_names[e],
                     latency_buckets[b], (unsigned long long)cumulative);
            else
                EMIT("tracemark_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n"
                     "tracemark_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n"
                     "tracemark_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
                     endpoint_names[e], (unsigned long long)cumulative, endpoint_names[e], s->latency_sum[e],
                     endpoint_names[e], (unsigned long long)cumulative);
        }
    }
    int in_flight = s->in_flight;
    pthread_mutex_unlock(&s->lock);
    EMIT("# HELP tracemark_prompt_tokens_total Prompt tokens evaluated.\n# TYPE tracemark_prompt_tokens_total counter\n"
         "tracemark_prompt_tokens_total %llu\n"
         "# HELP tracemark_generated_tokens_total Tokens generated (all watermarked).\n"
         "# TYPE tracemark_generated_tokens_total counter\ntracemark_generated_tokens_total %llu\n"
         "# HELP tracemark_decode_steps_total Batched decode steps.\n# TYPE tracemark_decode_steps_total counter\n"
         "tracemark_decode_steps_total %llu\n"
         "# HELP tracemark_decode_rows_total Sequences summed over decode steps (rows / steps = mean batch).\n"
         "# TYPE tracemark_decode_rows_total counter\ntracemark_decode_rows_total %llu\n"
         "# HELP tracemark_sequences_total Sequences admitted to a slot.\n# TYPE tracemark_sequences_total counter\n"
         "tracemark_sequences_total %llu\n"
         "# HELP tracemark_sequences_cancelled_total Sequences ended early: client gone or shutdown.\n"
         "# TYPE tracemark_sequences_cancelled_total counter\ntracemark_sequences_cancelled_total %llu\n"
         "# HELP tracemark_slots Slots (--parallel).\n# TYPE tracemark_slots gauge\ntracemark_slots %d\n"
         "# HELP tracemark_slots_busy Slots holding a sequence.\n# TYPE tracemark_slots_busy gauge\ntracemark_slots_busy %d\n"
         "# HELP tracemark_queue_length Sequences waiting for a slot.\n# TYPE tracemark_queue_length gauge\n"
         "tracemark_queue_length %d\n"
         "# HELP tracemark_requests_in_flight HTTP requests being served.\n# TYPE tracemark_requests_in_flight gauge\n"
         "tracemark_requests_in_flight %d\n",
         (unsigned long long)st.prompt_tokens, (unsigned long long)st.generated_tokens,
         (unsigned long long)st.decode_steps, (unsigned long long)st.batched_rows, (unsigned long long)st.sequences,
         (unsigned long long)st.cancelled, st.slots, st.busy_slots, st.queued, in_flight);
    EMIT("# HELP tracemark_time_to_first_token_seconds From submission to a sequence's first token (queue and prompt).\n"
         "# TYPE tracemark_time_to_first_token_seconds histogram\n");
    static const double ttft[TM_SERVER_TTFT_COUNT] = TM_SERVER_TTFT_BUCKETS;
    uint64_t cumulative = 0;
    for (int b = 0; b < TM_SERVER_TTFT_COUNT; b++) {
        cumulative += st.first_token[b];
        EMIT("tracemark_time_to_first_token_seconds_bucket{le=\"%g\"} %llu\n", ttft[b], (unsigned long long)cumulative);
    }
    cumulative += st.first_token[TM_SERVER_TTFT_COUNT];
    EMIT("tracemark_time_to_first_token_seconds_bucket{le=\"+Inf\"} %llu\ntracemark_time_to_first_token_seconds_sum %.6f\n"
         "tracemark_time_to_first_token_seconds_count %llu\n",
         (unsigned long long)cumulative, st.first_token_sum, (unsigned long long)cumulative);
#undef EMIT
    if (n >= capacity) n = capacity - 1;
    return tm_server_send_text(c, h, 200, out, n, "text/plain; version=0.0.4; charset=utf-8");
}
