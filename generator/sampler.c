/* The sampler chain: turns one row of logits into one token id. Small stages in
 * the manner of llama.cpp's llama-sampling.cpp (apply/accept/reset/free, run in
 * order) narrow a candidate array that the chain owns and reuses, so that the
 * per-token hot path over a 32000-entry vocabulary never allocates and never
 * sorts more than it must: top-k selects with a k-element heap, top-p pops a
 * heap only until the nucleus is complete, min-p and the distribution sampler
 * work on unsorted data. Randomness comes only from the seeded xoshiro256**
 * generator of core/random.c, so that a seed gives the same tokens on every
 * machine. Hand-written because the samplers are the product and the per-token
 * cost is measured. Nothing here prints, exits or aborts: bad parameters make a
 * constructor return NULL, and odd logits (NaN, infinities, a one-token
 * vocabulary) still yield a valid token id. */
#include "tracemark/generator.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================== */
/* Candidate ordering, sorting and softmax                                  */
/* ======================================================================== */

/* The order every stage agrees on: larger logit first, then smaller id. NaN
 * sorts after everything, so the order is total and sorting is deterministic
 * whatever a stage wrote into the logits. */
static inline bool token_before(const tm_token_data *a, const tm_token_data *b) {
    if (a->logit > b->logit) return true;
    if (a->logit < b->logit) return false;
    bool a_nan = isnan(a->logit), b_nan = isnan(b->logit);
    if (a_nan != b_nan) return b_nan;
    return a->id < b->id;
}

static inline void swap_tokens(tm_token_data *a, tm_token_data *b) {
    tm_token_data t = *a;
    *a = *b;
    *b = t;
}

/* Heap of n entries whose root is the entry that sorts LAST ("worst"). */
static void worst_heap_sift_down(tm_token_data *d, size_t n, size_t i) {
    for (;;) {
        size_t worst = i, left = 2 * i + 1, right = left + 1;
        if (left < n && token_before(&d[worst], &d[left])) worst = left;
        if (right < n && token_before(&d[worst], &d[right])) worst = right;
        if (worst == i) return;
        swap_tokens(&d[i], &d[worst]);
        i = worst;
    }
}

/* Heap of n entries whose root is the entry that sorts FIRST ("best"). */
static void best_heap_sift_down(tm_token_data *d, size_t n, size_t i) {
    for (;;) {
        size_t best = i, left = 2 * i + 1, right = left + 1;
        if (left < n && token_before(&d[left], &d[best])) best = left;
        if (right < n && token_before(&d[right], &d[best])) best = right;
        if (best == i) return;
        swap_tokens(&d[i], &d[best]);
        i = best;
    }
}

/* Move the k entries that sort first to d[0..k), in order, in O(n log k) and
 * without allocating: a k-entry heap keyed on its worst member screens the rest,
 * then heap-sorts itself. With k >= n this is an ordinary heap sort, whose
 * bounded loops stay safe whatever the logits hold. */
static void partial_sort(tm_token_data *d, size_t n, size_t k) {
    if (k > n) k = n;
    if (k == 0) return;
    for (size_t i = k / 2; i-- > 0;) worst_heap_sift_down(d, k, i);
    for (size_t i = k; i < n; i++) {
        if (token_before(&d[i], &d[0])) {
            swap_tokens(&d[i], &d[0]);
            worst_heap_sift_down(d, k, 0);
        }
    }
    for (size_t end = k - 1; end > 0; end--) {
        swap_tokens(&d[0], &d[end]);
        worst_heap_sift_down(d, end, 0);
    }
}

void tm_candidates_sort(tm_candidates *candidates) {
    if (!candidates || candidates->sorted) return;
    partial_sort(candidates->data, candidates->size, candidates->size);
    candidates->sorted = true;
}

/* Index of the entry that sorts first: the argmax, lowest id among ties. */
static size_t best_index(const tm_candidates *candidates) {
    const tm_token_data *d = candidates->data;
    size_t best = 0;
    for (size_t i = 1; i < candidates->size; i++) {
        /* Sorted data needs only its leading ties scanned (a foreign stage may
         * have sorted ties in another order). */
        if (candidates->sorted && !(d[i].logit == d[0].logit)) break;
        if (token_before(&d[i], &d[best])) best = i;
    }
    return best;
}

/* Fill p with the softmax of the logits in whatever order they are. Stable:
 * exponents are taken relative to the largest logit. When the largest logit is
 * infinite (all -inf, or some +inf) the probability is shared equally by the
 * entries that hold it, which is the limit of the finite case. */
static void softmax_in_place(tm_candidates *candidates, float max_logit) {
    tm_token_data *d = candidates->data;
    size_t n = candidates->size;
    double sum = 0.0;
    if (isfinite(max_logit)) {
        sum = tm_candidates_exp(d, n, max_logit, false);
    } else {
        for (size_t i = 0; i < n; i++) {
            d[i].p = d[i].logit == max_logit ? 1.0f : 0.0f;
            sum += d[i].p;
        }
    }
    if (!(sum > 0.0)) return; /* only NaN logits: leave p as computed */
    tm_candidates_divide_p(d, n, sum);
}

static float max_logit_of(const tm_candidates *candidates) {
    return tm_candidates_max_logit(candidates->data, candidates->size);
}

void tm_candidates_softmax(tm_candidates *candidates) {
    if (!candidates || candidates->size == 0) return;
    tm_candidates_sort(candidates);
    softmax_in_place(candidates, candidates->data[0].logit);
}

/* ======================================================================== */
/* Sampler objects                                                          */
/* ======================================================================== */

/* Wrap state in a sampler; on failure the state is released and NULL returned. */
static tm_sampler *sampler_new(const tm_sampler_interface *interface, void *state) {
    tm_sampler *sampler = malloc(sizeof *sampler);
    if (!sampler) {
        if (interface->free) {
            tm_sampler temporary = {interface, state};
            interface->free(&temporary);
        }
        return NULL;
    }
    sampler->interface = interface;
    sampler->state = state;
    return sampler;
}

void tm_sampler_free(tm_sampler *sampler) {
    if (!sampler) return;
    if (sampler->interface && sampler->interface->free) sampler->interface->free(sampler);
    free(sampler);
}

static void free_state(tm_sampler *sampler) { free(sampler->state); }

/* ---- temperature --------------------------------------------------------- */

typedef struct { float temperature; } temperature_state;

static const char *temperature_name(const tm_sampler *sampler) { (void)sampler; return "temperature"; }

static void temperature_apply(tm_sampler *sampler, tm_candidates *candidates) {
    const temperature_state *state = sampler->state;
    if (candidates->size == 0) return;
    if (state->temperature <= 0.0f) {
        /* Zero temperature is the greedy limit: keep only the argmax (values
         * untouched), so that any selector after this stage picks it. */
        size_t best = best_index(candidates);
        swap_tokens(&candidates->data[0], &candidates->data[best]);
        candidates->size = 1;
        candidates->sorted = true;
        return;
    }
    if (state->temperature == 1.0f) return;
    for (size_t i = 0; i < candidates->size; i++) candidates->data[i].logit /= state->temperature;
}

static const tm_sampler_interface temperature_interface = {
    .name = temperature_name, .apply = temperature_apply, .free = free_state};

tm_sampler *tm_sampler_temperature(float temperature) {
    if (!isfinite(temperature)) return NULL;
    temperature_state *state = malloc(sizeof *state);
    if (!state) return NULL;
    state->temperature = temperature;
    return sampler_new(&temperature_interface, state);
}

/* ---- the candidates near the top, as a bitmap ----------------------------- */

/* One bit per candidate (tm_candidates_at_least), reused from token to
 * token: grown with the vocabulary, never shrunk. */
typedef struct {
    uint64_t *bits;
    size_t words;
} candidate_marks;

/* The bits for n candidates; NULL when out of memory (the caller then takes
 * its plain path, which selects the same tokens). */
static uint64_t *marks_for(candidate_marks *m, size_t n) {
    size_t words = (n + 63) / 64;
    if (words > m->words) {
        uint64_t *bits = tm_alloc_array(words, sizeof *bits, NULL);
        if (!bits) return NULL;
        free(m->bits);
        m->bits = bits;
        m->words = words;
    }
    return m->bits;
}

/* Marks the candidates within `width` of the largest logit max (logit +
 * width >= max), the width growing (2 width + 1) until at least k are
 * marked, and returns how many; 0 when more than limit would be, or when no
 * width marks k (fewer finite logits). The marked set holds everything above
 * its members, so once it holds k candidates it holds the k largest, ties
 * included. max itself is always marked. */
static size_t mark_near_top(const tm_token_data *d, size_t n, float max, float width, size_t k, size_t limit,
                            uint64_t *bits) {
    for (;; width = 2.0f * width + 1.0f) {
        size_t near = tm_candidates_at_least(d, n, width, max, bits);
        if (near > limit) return 0;
        if (near >= k) return near;
        if (isinf(width)) return 0;
    }
}

/* Moves the marked candidates of d[0..n) to the front, in their order (each
 * moves down, if at all). */
static void keep_marked(tm_token_data *d, const uint64_t *bits, size_t n) {
    size_t to = 0;
    for (size_t w = 0; w < (n + 63) / 64; w++)
        for (uint64_t word = bits[w]; word; word &= word - 1) d[to++] = d[w * 64 + (size_t)__builtin_ctzll(word)];
}

/* ---- top-k --------------------------------------------------------------- */

typedef struct {
    int32_t k;
    candidate_marks marks;
} top_k_state;

static const char *top_k_name(const tm_sampler *sampler) { (void)sampler; return "top-k"; }

static void top_k_apply(tm_sampler *sampler, tm_candidates *candidates) {
    top_k_state *state = sampler->state;
    if (state->k <= 0 || candidates->size == 0) return;
    size_t k = (size_t)state->k, n = candidates->size;
    if (k > n) k = n;
    if (!candidates->sorted) {
        /* A k-element heap screens every candidate one comparison at a time;
         * a vocabulary of them is mostly far below the k best, so vector
         * passes first set aside the few near the top (same selection). */
        tm_token_data *d = candidates->data;
        size_t near = 0;
        uint64_t *bits = k <= n / 8 ? marks_for(&state->marks, n) : NULL;
        float max = bits ? tm_candidates_max_logit(d, n) : -INFINITY;
        if (max > -INFINITY && (near = mark_near_top(d, n, max, 1.0f, k, n / 4, bits))) keep_marked(d, bits, n);
        partial_sort(d, near ? near : n, k);
    }
    candidates->size = k;
    candidates->sorted = true;
}

static void top_k_free(tm_sampler *sampler) {
    top_k_state *state = sampler->state;
    free(state->marks.bits);
    free(state);
}

static const tm_sampler_interface top_k_interface = {.name = top_k_name, .apply = top_k_apply, .free = top_k_free};

tm_sampler *tm_sampler_top_k(int32_t k) {
    top_k_state *state = calloc(1, sizeof *state);
    if (!state) return NULL;
    state->k = k;
    return sampler_new(&top_k_interface, state);
}

/* ---- top-p (nucleus) ----------------------------------------------------- */

typedef struct {
    float p;
    size_t min_keep;
} top_p_state;

static const char *top_p_name(const tm_sampler *sampler) { (void)sampler; return "top-p"; }

static void top_p_apply(tm_sampler *sampler, tm_candidates *candidates) {
    const top_p_state *state = sampler->state;
    size_t n = candidates->size;
    if (state->p >= 1.0f || n == 0) return;
    tm_token_data *d = candidates->data;
    size_t min_keep = state->min_keep > 0 ? state->min_keep : 1;
    softmax_in_place(candidates, max_logit_of(candidates));

    double cumulative = 0.0;
    size_t keep = 0;
    if (candidates->sorted) {
        while (keep < n) {
            cumulative += d[keep].p;
            keep++;
            if (cumulative >= state->p && keep >= min_keep) break;
        }
        candidates->size = keep;
        return;
    }
    /* Unsorted: pop a best-first heap only until the nucleus is complete, which
     * for a peaked distribution is a handful of pops instead of a full sort.
     * Popped entries collect at the tail, best last. */
    for (size_t i = n / 2; i-- > 0;) best_heap_sift_down(d, n, i);
    while (keep < n) {
        size_t end = n - 1 - keep;
        cumulative += d[0].p;
        swap_tokens(&d[0], &d[end]);
        best_heap_sift_down(d, end, 0);
        keep++;
        if (cumulative >= state->p && keep >= min_keep) break;
    }
    tm_token_data *tail = d + (n - keep);
    for (size_t i = 0, j = keep - 1; i < j; i++, j--) swap_tokens(&tail[i], &tail[j]);
    memmove(d, tail, keep * sizeof *d);
    candidates->size = keep;
    candidates->sorted = true;
}

static const tm_sampler_interface top_p_interface = {.name = top_p_name, .apply = top_p_apply, .free = free_state};

tm_sampler *tm_sampler_top_p(float p, size_t min_keep) {
    if (isnan(p)) return NULL;
    top_p_state *state = malloc(sizeof *state);
    if (!state) return NULL;
    state->p = p;
    state->min_keep = min_keep;
    return sampler_new(&top_p_interface, state);
}

/* ---- min-p --------------------------------------------------------------- */

typedef struct {
    float p;
    size_t min_keep;
} min_p_state;

static const char *min_p_name(const tm_sampler *sampler) { (void)sampler; return "min-p"; }

static void min_p_apply(tm_sampler *sampler, tm_candidates *candidates) {
    const min_p_state *state = sampler->state;
    size_t n = candidates->size;
    if (!(state->p > 0.0f) || n == 0) return;
    tm_token_data *d = candidates->data;
    size_t min_keep = state->min_keep > 0 ? state->min_keep : 1;
    /* p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p): no softmax needed. */
    float max_logit = max_logit_of(candidates);
    float min_logit = max_logit + logf(state->p);

    if (!candidates->sorted) {
        size_t passing = 0;
        for (size_t i = 0; i < n; i++) passing += d[i].logit >= min_logit;
        if (passing >= min_keep) {
            size_t kept = 0; /* stable compaction keeps the order as it was */
            for (size_t i = 0; i < n; i++)
                if (d[i].logit >= min_logit) d[kept++] = d[i];
            candidates->size = kept;
            return;
        }
        partial_sort(d, n, min_keep); /* too few pass: the min_keep best survive */
        candidates->size = min_keep < n ? min_keep : n;
        candidates->sorted = true;
        return;
    }
    size_t i = 1;
    for (; i < n; i++)
        if (d[i].logit < min_logit && i >= min_keep) break;
    candidates->size = i;
}

static const tm_sampler_interface min_p_interface = {.name = min_p_name, .apply = min_p_apply, .free = free_state};

tm_sampler *tm_sampler_min_p(float p, size_t min_keep) {
    if (isnan(p)) return NULL;
    min_p_state *state = malloc(sizeof *state);
    if (!state) return NULL;
    state->p = p;
    state->min_keep = min_keep;
    return sampler_new(&min_p_interface, state);
}

/* ---- pre-truncation ------------------------------------------------------ */

/* Placed before a stage that raises logits by at most `raise` (a watermark's
 * logit bias, KGW or Unigram, which must otherwise hash every candidate):
 * drops the candidates that the top-k (k of them, greedy being k = 1) or the
 * min-p stage after it would drop whatever that stage adds, keeping the rest
 * in their order, so that the stage and the truncation work on fewer and the
 * chain draws the very same token. With x' = x + b, 0 <= b <= raise (in
 * float, as the stage adds), and monotone float rounding:
 * - top-k: the k largest logits x_(k) >= ... stay >= x_(k) after the stage, so
 *   a candidate with x + raise < x_(k) has k candidates before it and goes;
 * - min-p: the stage keeps x' >= max' + log(p) with max' >= max x, so one
 *   with x + raise < max + log(p) goes; only without a top-p stage, whose
 *   softmax over what reaches it would see the dropped ones.
 * A NaN logit never passes, as in both stages; a -inf bound drops nothing. */
enum {
    PRE_TRUNCATION_MAX_K = 1024,  /* a k-element heap of floats on the stack */
    PRE_TRUNCATION_MIN_SHARE = 4, /* drop only when at most 1/4 of the candidates pass */
};

typedef struct {
    int32_t k;     /* 0: no top-k bound */
    float min_p;   /* 0: no min-p bound */
    const tm_sampler *raising;
    candidate_marks marks;
} pre_truncation_state;

static const char *pre_truncation_name(const tm_sampler *sampler) { (void)sampler; return "pre-truncation"; }

static void pre_truncation_free(tm_sampler *sampler) {
    pre_truncation_state *state = sampler->state;
    free(state->marks.bits);
    free(state);
}

/* The k-th largest logit among the marked candidates of d[0..n) (at least k). */
static float kth_largest_logit(const tm_token_data *d, const uint64_t *bits, size_t n, size_t k) {
    float heap[PRE_TRUNCATION_MAX_K]; /* a min-heap of the k largest so far */
    size_t size = 0;
    for (size_t w = 0; w < (n + 63) / 64; w++)
        for (uint64_t word = bits[w]; word; word &= word - 1) {
            float v = d[w * 64 + (size_t)__builtin_ctzll(word)].logit;
            if (size < k) { /* sift up */
                size_t j = size++;
                for (; j > 0 && heap[(j - 1) / 2] > v; j = (j - 1) / 2) heap[j] = heap[(j - 1) / 2];
                heap[j] = v;
                continue;
            }
            if (!(v > heap[0])) continue;
            size_t j = 0; /* sift the new value down from the root */
            for (;;) {
                size_t child = 2 * j + 1;
                if (child >= k) break;
                if (child + 1 < k && heap[child + 1] < heap[child]) child++;
                if (!(heap[child] < v)) break;
                heap[j] = heap[child];
                j = child;
            }
            heap[j] = v;
        }
    return heap[0];
}

static void pre_truncation_apply(tm_sampler *sampler, tm_candidates *candidates) {
    pre_truncation_state *state = sampler->state;
    size_t n = candidates->size;
    float raise = state->raising->interface->max_raise(state->raising);
    if (n == 0 || !(raise >= 0.0f) || !isfinite(raise)) return;
    tm_token_data *d = candidates->data;
    uint64_t *bits = marks_for(&state->marks, n);
    float max = max_logit_of(candidates);
    if (!bits || !(max > -INFINITY)) return; /* nothing dropped: the same token, more work */
    /* Only when most go: a scheme handed the whole vocabulary in order takes
     * its cached dense paths, cheaper per candidate than hashing what is left
     * of a flat distribution (a random-weight model's: 70% of 32000 pass
     * top-k 40). Every bound is at most the largest logit, so when more than a
     * quarter lie within raise of it nothing is dropped; otherwise the marks
     * hold the k largest, for the top-k bound. */
    size_t limit = n / PRE_TRUNCATION_MIN_SHARE;
    if (!mark_near_top(d, n, max, raise, (size_t)state->k, limit, bits)) return;
    float bound = state->k > 0 ? kth_largest_logit(d, bits, n, (size_t)state->k) : -INFINITY;
    if (state->min_p > 0.0f) {
        float min_logit = max + logf(state->min_p);
        bound = min_logit > bound ? min_logit : bound;
    }
    if (!(bound > -INFINITY)) return;
    size_t kept = tm_candidates_at_least(d, n, raise, bound, bits);
    if (kept > limit) return;
    keep_marked(d, bits, n);
    candidates->size = kept;
}

static const tm_sampler_interface pre_truncation_interface = {
    .name = pre_truncation_name, .apply = pre_truncation_apply, .free = pre_truncation_free};

/* The stage for the chain below, or NULL (no error) when nothing can be dropped. */
static tm_sampler *pre_truncation_for(const tm_sampling_params *params, const tm_sampler *raising, bool *failed) {
    *failed = false;
    if (!raising || !raising->interface || !raising->interface->max_raise) return NULL;
    bool greedy = params->temperature <= 0.0f;
    int32_t k = greedy ? 1 : params->top_k > 0 && params->top_k <= PRE_TRUNCATION_MAX_K ? params->top_k : 0;
    /* not with a top-p stage: its softmax sees every candidate that reaches it */
    float min_p = !greedy && params->min_p > 0.0f && params->top_p >= 1.0f ? params->min_p : 0.0f;
    if (k == 0 && min_p == 0.0f) return NULL;
    pre_truncation_state *state = malloc(sizeof *state);
    if (!state) {
        *failed = true;
        return NULL;
    }
    *state = (pre_truncation_state){k, min_p, raising, {NULL, 0}};
    tm_sampler *stage = sampler_new(&pre_truncation_interface, state);
    *failed = !stage;
    return stage;
}

/* ---- penalties ----------------------------------------------------------- */

/* The last `window` accepted tokens in a ring, and their counts in a small
 * open-addressing table rebuilt on each accept (O(window), a few hundred
 * operations per token) so that apply costs one probe per candidate. */
typedef struct {
    int32_t id;
    int32_t count; /* 0 marks an empty slot */
} penalty_slot;

typedef struct {
    size_t window;
    float repeat, frequency, presence;
    int32_t *ring;
    size_t ring_count, ring_next;
    penalty_slot *slots;
    size_t slot_mask; /* slot count - 1, a power of two minus one */
} penalties_state;

static const char *penalties_name(const tm_sampler *sampler) { (void)sampler; return "penalties"; }

static inline size_t penalty_hash(int32_t id, size_t mask) {
    return (size_t)(((uint64_t)(uint32_t)id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & mask;
}

static int32_t penalty_count(const penalties_state *state, int32_t id) {
    for (size_t i = penalty_hash(id, state->slot_mask);; i = (i + 1) & state->slot_mask) {
        const penalty_slot *slot = &state->slots[i];
        if (slot->count == 0) return 0;
        if (slot->id == id) return slot->count;
    }
}

static void penalties_rebuild(penalties_state *state) {
    memset(state->slots, 0, (state->slot_mask + 1) * sizeof *state->slots);
    for (size_t r = 0; r < state->ring_count; r++) {
        int32_t id = state->ring[r];
        size_t i = penalty_hash(id, state->slot_mask);
        while (state->slots[i].count != 0 && state->slots[i].id != id) i = (i + 1) & state->slot_mask;
        state->slots[i].id = id;
        state->slots[i].count++;
    }
}

static void penalties_apply(tm_sampler *sampler, tm_candidates *candidates) {
    const penalties_state *state = sampler->state;
    if (state->ring_count == 0) return;
    bool changed = false;
    for (size_t i = 0; i < candidates->size; i++) {
        tm_token_data *t = &candidates->data[i];
        int32_t count = penalty_count(state, t->id);
        if (count == 0) continue;
        /* CTRL's repetition penalty with llama.cpp's fix for negative logits:
         * dividing a negative logit would raise it, so multiply instead. */
        if (t->logit <= 0.0f) t->logit *= state->repeat;
        else t->logit /= state->repeat;
        t->logit -= (float)count * state->frequency + state->presence;
        changed = true;
    }
    if (changed) candidates->sorted = false;
}

static void penalties_accept(tm_sampler *sampler, int32_t token) {
    penalties_state *state = sampler->state;
    if (state->window == 0) return;
    state->ring[state->ring_next] = token;
    state->ring_next = (state->ring_next + 1) % state->window;
    if (state->ring_count < state->window) state->ring_count++;
    penalties_rebuild(state);
}

static void penalties_reset(tm_sampler *sampler) {
    penalties_state *state = sampler->state;
    state->ring_count = 0;
    state->ring_next = 0;
}

static void penalties_free(tm_sampler *sampler) {
    penalties_state *state = sampler->state;
    if (!state) return;
    free(state->ring);
    free(state->slots);
    free(state);
}

static const tm_sampler_interface penalties_interface = {
    .name = penalties_name, .apply = penalties_apply, .accept = penalties_accept,
    .reset = penalties_reset, .free = penalties_free};

tm_sampler *tm_sampler_penalties(int32_t window, float repeat, float frequency, float presence) {
    if (!isfinite(repeat) || repeat <= 0.0f || !isfinite(frequency) || !isfinite(presence)) return NULL;
    penalties_state *state = calloc(1, sizeof *state);
    if (!state) return NULL;
    state->repeat = repeat;
    state->frequency = frequency;
    state->presence = presence;
    /* A window of 0 or less, or penalties that change nothing, make a stage
     * that remembers nothing and leaves the logits alone. */
    bool active = repeat != 1.0f || frequency != 0.0f || presence != 0.0f;
    if (window > 0 && active) {
        size_t slots = 2;
        while (slots < 2 * (size_t)window) slots *= 2; /* load factor <= 1/2 */
        state->window = (size_t)window;
        state->ring = tm_alloc_array(state->window, sizeof *state->ring, NULL);
        state->slots = tm_alloc_array(slots, sizeof *state->slots, NULL);
        state->slot_mask = slots - 1;
        if (!state->ring || !state->slots) {
            tm_sampler temporary = {&penalties_interface, state};
            penalties_free(&temporary);
            return NULL;
        }
    }
    return sampler_new(&penalties_interface, state);
}

/* ---- greedy -------------------------------------------------------------- */

static const char *greedy_name(const tm_sampler *sampler) { (void)sampler; return "greedy"; }

static void greedy_apply(tm_sampler *sampler, tm_candidates *candidates) {
    (void)sampler;
    if (candidates->size == 0) return;
    candidates->selected = candidates->data[best_index(candidates)].id;
}

static const tm_sampler_interface greedy_interface = {.name = greedy_name, .apply = greedy_apply};

tm_sampler *tm_sampler_greedy(void) { return sampler_new(&greedy_interface, NULL); }

/* ---- distribution -------------------------------------------------------- */

/* Draws by inverse CDF over the candidates in the order they are, so an
 * unsorted 32000-entry array costs one softmax pass and one partial walk.
 * Exactly one uniform is drawn per apply whatever the candidates are, so the
 * n-th token always consumes the n-th number of the stream. reset re-seeds
 * with the original seed, as llama.cpp's dist sampler does: after a reset the
 * same logits give the same tokens again. */
typedef struct {
    uint64_t seed;
    tm_rng rng;
} distribution_state;

static const char *distribution_name(const tm_sampler *sampler) { (void)sampler; return "distribution"; }

static void distribution_apply(tm_sampler *sampler, tm_candidates *candidates) {
    distribution_state *state = sampler->state;
    float u = tm_rng_uniform(&state->rng);
    size_t n = candidates->size;
    if (n == 0) return;
    const tm_token_data *d = candidates->data;
    softmax_in_place(candidates, max_logit_of(candidates));
    double cumulative = 0.0;
    for (size_t i = 0; i < n; i++) {
        cumulative += d[i].p;
        if (u < cumulative) {
            candidates->selected = d[i].id;
            return;
        }
    }
    /* Rounding left the total just under u: the last possible token it is. */
    for (size_t i = n; i-- > 0;) {
        if (d[i].p > 0.0f) {
            candidates->selected = d[i].id;
            return;
        }
    }
}

static void distribution_reset(tm_sampler *sampler) {
    distribution_state *state = sampler->state;
    tm_rng_seed(&state->rng, state->seed);
}

static const tm_sampler_interface distribution_interface = {
    .name = distribution_name, .apply = distribution_apply, .reset = distribution_reset, .free = free_state};

tm_sampler *tm_sampler_distribution(uint64_t seed) {
    distribution_state *state = malloc(sizeof *state);
    if (!state) return NULL;
    state->seed = seed;
    tm_rng_seed(&state->rng, seed);
    return sampler_new(&distribution_interface, state);
}

/* ======================================================================== */
/* The chain                                                                 */
/* ======================================================================== */

struct tm_sampler_chain {
    tm_sampler **stages;
    size_t n_stages, stage_capacity;
    tm_token_data *buffer; /* reused for every token; grows only with n_vocab */
    size_t buffer_capacity;
};

tm_sampler_chain *tm_sampler_chain_create(void) { return calloc(1, sizeof(tm_sampler_chain)); }

bool tm_sampler_chain_add(tm_sampler_chain *chain, tm_sampler *sampler) {
    if (!sampler) return false;
    if (!chain || !sampler->interface || !sampler->interface->apply) {
        tm_sampler_free(sampler);
        return false;
    }
    if (chain->n_stages == chain->stage_capacity) {
        size_t capacity = chain->stage_capacity ? 2 * chain->stage_capacity : 8;
        size_t bytes;
        tm_sampler **stages = NULL;
        if (tm_mul_size(capacity, sizeof *stages, &bytes)) stages = realloc(chain->stages, bytes);
        if (!stages) {
            tm_sampler_free(sampler);
            return false;
        }
        chain->stages = stages;
        chain->stage_capacity = capacity;
    }
    chain->stages[chain->n_stages++] = sampler;
    return true;
}

void tm_sampler_chain_free(tm_sampler_chain *chain) {
    if (!chain) return;
    for (size_t i = 0; i < chain->n_stages; i++) tm_sampler_free(chain->stages[i]);
    free(chain->stages);
    free(chain->buffer);
    free(chain);
}

int32_t tm_sampler_chain_sample(tm_sampler_chain *chain, const float *logits, int32_t n_vocab) {
    if (!chain || !logits || n_vocab <= 0) return -1;
    size_t n = (size_t)n_vocab;
    if (n > chain->buffer_capacity) {
        tm_token_data *buffer = tm_alloc_array(n, sizeof *buffer, NULL);
        if (!buffer) return -1;
        free(chain->buffer);
        chain->buffer = buffer;
        chain->buffer_capacity = n;
    }
    /* A NaN logit (a broken forward pass) must never win: it becomes -inf. */
    tm_candidates_fill(chain->buffer, logits, n);
    tm_candidates candidates = {chain->buffer, n, false, -1};
    for (size_t s = 0; s < chain->n_stages; s++) {
        tm_sampler *stage = chain->stages[s];
        stage->interface->apply(stage, &candidates);
        if (candidates.size > n) candidates.size = n; /* a stage may only narrow */
    }
    if (candidates.selected >= 0 && candidates.selected < n_vocab) return candidates.selected;
    /* No stage selected (or one selected nonsense): greedy over what is left. */
    if (candidates.size == 0) return -1;
    return candidates.data[best_index(&candidates)].id;
}

void tm_sampler_chain_accept(tm_sampler_chain *chain, int32_t token) {
    if (!chain) return;
    for (size_t s = 0; s < chain->n_stages; s++) {
        tm_sampler *stage = chain->stages[s];
        if (stage->interface->accept) stage->interface->accept(stage, token);
    }
}

void tm_sampler_chain_reset(tm_sampler_chain *chain) {
    if (!chain) return;
    for (size_t s = 0; s < chain->n_stages; s++) {
        tm_sampler *stage = chain->stages[s];
        if (stage->interface->reset) stage->interface->reset(stage);
    }
}

/* ======================================================================== */
/* Parameters                                                                */
/* ======================================================================== */

void tm_sampling_params_default(tm_sampling_params *params) {
    if (!params) return;
    *params = (tm_sampling_params){
        .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
        .repeat_penalty = 1.0f, .frequency_penalty = 0.0f, .presence_penalty = 0.0f,
        .penalty_window = 64, .seed = 42};
}

tm_sampler_chain *tm_sampler_chain_from_params(const tm_sampling_params *params) {
    return tm_sampler_chain_build(params, NULL, NULL);
}

tm_sampler_chain *tm_sampler_chain_build(const tm_sampling_params *params, tm_sampler *bias, tm_sampler *selector) {
    if (!params || isnan(params->temperature) || isnan(params->top_p) || isnan(params->min_p)) {
        tm_sampler_free(bias);
        tm_sampler_free(selector);
        return NULL;
    }
    tm_sampler_chain *chain = tm_sampler_chain_create();
    if (!chain) {
        tm_sampler_free(bias);
        tm_sampler_free(selector);
        return NULL;
    }
    bool ok = true;
    bool penalties = params->penalty_window > 0 &&
                     (params->repeat_penalty != 1.0f || params->frequency_penalty != 0.0f ||
                      params->presence_penalty != 0.0f);
    if (penalties)
        ok = tm_sampler_chain_add(chain, tm_sampler_penalties(params->penalty_window, params->repeat_penalty,
                                                              params->frequency_penalty,
                                                              params->presence_penalty));
    /* A logit bias (KGW) acts on the raw logits, before truncation and temperature;
     * what the truncation after it drops in any case goes first. */
    if (bias && ok) {
        bool failed;
        tm_sampler *pre = pre_truncation_for(params, bias, &failed);
        ok = !failed && (!pre || tm_sampler_chain_add(chain, pre));
    }
    if (bias) {
        ok = ok ? tm_sampler_chain_add(chain, bias) : (tm_sampler_free(bias), false);
    }
    if (ok && params->temperature <= 0.0f) {
        /* Greedy: top-k, top-p and min-p all keep the argmax, so they are skipped;
         * a selecting watermark has nothing to choose from. */
        tm_sampler_free(selector);
        selector = NULL;
        ok = tm_sampler_chain_add(chain, tm_sampler_greedy());
    } else if (ok) {
        if (params->top_k > 0) ok = tm_sampler_chain_add(chain, tm_sampler_top_k(params->top_k));
        if (ok && params->top_p < 1.0f) ok = tm_sampler_chain_add(chain, tm_sampler_top_p(params->top_p, 1));
        if (ok && params->min_p > 0.0f) ok = tm_sampler_chain_add(chain, tm_sampler_min_p(params->min_p, 1));
        /* Dividing by 1 changes nothing, so that stage is left out. */
        if (ok && params->temperature != 1.0f)
            ok = tm_sampler_chain_add(chain, tm_sampler_temperature(params->temperature));
        if (ok) {
            ok = tm_sampler_chain_add(chain, selector ? selector : tm_sampler_distribution(params->seed));
            selector = NULL;
        }
    }
    tm_sampler_free(selector);
    if (!ok) {
        tm_sampler_chain_free(chain);
        return NULL;
    }
    return chain;
}
