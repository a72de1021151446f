/* The watermark generation faces' fast paths against their reference
 * loops (tm_wm_use_reference_paths): every shipped scheme configuration,
 * and variants, runs the same steps twice over the same candidates, once
 * as it runs in generation and once with the reference loops forced, and
 * every step must leave the candidates bit for bit the same (ids, logits,
 * p: KGW's and Unigram's biased logits, DiPmark's P') and select the same
 * token. The candidates are the cases a fast path could get wrong: a flat
 * 32000-token distribution (the benchmark's, where every candidate counts),
 * a peaked one whose tail reaches p ~ 1e-12 (where float sums round), a
 * sparse unsorted set as truncation leaves it, and logits with ties,
 * -inf and NaN. Run it under TM_NO_AVX512=1 and TM_NO_AVX2=1 too, so
 * every SIMD path meets the reference. Under ASan (TRACEMARK_SANITIZE_BUILD)
 * the vocabulary and the step count are smaller, to stay quick. */
#include "chain_testing.h"
#include "watermark_testing.h"

#include "tracemark/generator.h"
#include "../watermark/scheme.h"

#include <math.h>

#ifdef TRACEMARK_SANITIZE_BUILD
enum { VOCAB = 4096, STEPS = 10 };
#else
enum { VOCAB = 32000, STEPS = 40 };
#endif
enum { KINDS = 4, MAX_STEPS = KINDS * STEPS };

/* The candidates of step s: kind = s / STEPS. */
static size_t fill_candidates(tm_token_data *data, uint64_t *rng, size_t step) {
    size_t kind = step / STEPS, n = VOCAB;
    switch (kind) {
    case 0: /* flat, like a random-weight model's logits: every candidate counts */
        for (size_t i = 0; i < n; i++)
            data[i] = (tm_token_data){(int32_t)i, (float)(wm_test_lcg(rng) % 48000) / 10000.0f, 0.0f};
        break;
    case 1: { /* peaked: logit 12 - 2.5 ln(1 + rank), ranks shuffled; p down to ~1e-12 */
        for (size_t i = 0; i < n; i++) data[i] = (tm_token_data){(int32_t)i, 0.0f, 0.0f};
        for (size_t i = 0; i < n; i++) {
            size_t j = i + wm_test_lcg(rng) % (n - i);
            float rank = (float)j;
            data[i].logit = 12.0f - 2.5f * logf(1.0f + rank);
        }
        break;
    }
    case 2: { /* sparse and unsorted, as top-k / top-p leave the candidates */
        n = 1 + wm_test_lcg(rng) % 300;
        size_t start = wm_test_lcg(rng) % VOCAB, stride = 1 + 2 * (wm_test_lcg(rng) % 50);
        for (size_t i = 0; i < n; i++)
            data[i] = (tm_token_data){(int32_t)((start + i * stride) % VOCAB), (float)(wm_test_lcg(rng) % 3000) / 500.0f,
                                      0.0f};
        break;
    }
    default: /* ties (quarter steps), some -inf, now and then a NaN */
        for (size_t i = 0; i < n; i++) {
            float logit = (float)(wm_test_lcg(rng) % 20) / 4.0f;
            if (wm_test_lcg(rng) % 16 == 0) logit = -INFINITY;
            data[i] = (tm_token_data){(int32_t)i, logit, 0.0f};
        }
        if (step % 2) data[wm_test_lcg(rng) % n].logit = NAN;
        break;
    }
    return n;
}

/* FNV-1a over the candidates' bytes after the stage. */
static uint64_t digest(const tm_candidates *c) {
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < c->size; i++) {
        uint32_t words[3];
        memcpy(&words[0], &c->data[i].id, 4);
        memcpy(&words[1], &c->data[i].logit, 4);
        memcpy(&words[2], &c->data[i].p, 4);
        const uint8_t *b = (const uint8_t *)words;
        for (size_t k = 0; k < sizeof words; k++) h = (h ^ b[k]) * UINT64_C(0x100000001b3);
    }
    return h;
}

typedef struct {
    int32_t selected[MAX_STEPS];
    uint64_t digest[MAX_STEPS];
} run_record;

/* All steps through a fresh sampler of the scheme; the next token is the
 * selected one (selectors) or one picked by the LCG (bias stages), so the
 * history goes on as generation's would. */
static void run_steps(tm_wm_scheme *scheme, bool reference, run_record *record) {
    tm_wm_use_reference_paths(reference);
    tm_sampler *sampler = tm_wm_sampler(scheme, 1234);
    cr_assert_not_null(sampler);
    tm_token_data *data = malloc(VOCAB * sizeof *data);
    cr_assert_not_null(data);
    uint64_t rng = 99;
    for (int i = 0; i < 6; i++) sampler->interface->accept(sampler, (int32_t)(wm_test_lcg(&rng) % VOCAB));
    for (size_t s = 0; s < MAX_STEPS; s++) {
        size_t n = fill_candidates(data, &rng, s);
        tm_candidates c = {data, n, false, -1};
        sampler->interface->apply(sampler, &c);
        record->selected[s] = c.selected;
        record->digest[s] = digest(&c);
        int32_t next = c.selected >= 0 ? c.selected : c.data[wm_test_lcg(&rng) % c.size].id;
        /* Now and then the token of a few steps back again, so contexts and cached slots repeat. */
        if (s % 7 == 3) next = record->selected[s - 3] >= 0 ? record->selected[s - 3] : next;
        sampler->interface->accept(sampler, next);
    }
    free(data);
    tm_sampler_free(sampler);
    tm_wm_use_reference_paths(false);
}

static void check_scheme(const char *name, const tm_wm_config *config) {
    tm_wm_key *key = wm_test_seeded_key(7);
    tm_wm_scheme *scheme = wm_test_scheme(config, key);
    run_record *fast = malloc(sizeof *fast), *reference = malloc(sizeof *reference);
    cr_assert(fast && reference);
    run_steps(scheme, false, fast);
    run_steps(scheme, true, reference);
    for (size_t s = 0; s < MAX_STEPS; s++) {
        cr_assert_eq(fast->selected[s], reference->selected[s], "%s, step %zu (kind %zu): token %d, reference %d",
                     name, s, s / STEPS, fast->selected[s], reference->selected[s]);
        cr_assert_eq(fast->digest[s], reference->digest[s],
                     "%s, step %zu (kind %zu): the candidates differ from the reference's", name, s, s / STEPS);
    }
    free(fast);
    free(reference);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

static void check_shipped(const char *name) {
    tm_wm_config config = wm_test_scheme_config(name);
    check_scheme(name, &config);
}

Test(wm_fast_paths, kgw_lefthash) { check_shipped("kgw-lefthash"); }
Test(wm_fast_paths, kgw_selfhash) { check_shipped("kgw-selfhash"); }
Test(wm_fast_paths, unigram) { check_shipped("unigram"); }
Test(wm_fast_paths, gumbel) { check_shipped("gumbel"); }
Test(wm_fast_paths, synthid) { check_shipped("synthid"); }
Test(wm_fast_paths, dipmark) { check_shipped("dipmark"); }
Test(wm_fast_paths, exp_edit) { check_shipped("exp-edit"); }
Test(wm_fast_paths, its_edit) { check_shipped("its-edit"); }

/* Variants: every step keyed (no repeated-context skip), other widths and alphas. */
Test(wm_fast_paths, variants) {
    tm_wm_config c = wm_test_scheme_config("dipmark");
    c.skip_repeated_context = false;
    check_scheme("dipmark, every step", &c);
    c.alpha = 0.3;
    c.context_width = 1;
    check_scheme("dipmark, alpha 0.3, h 1", &c);
    c = wm_test_scheme_config("gumbel");
    c.skip_repeated_context = false;
    c.context_width = 7;
    check_scheme("gumbel, every step, h 7", &c);
    c = wm_test_scheme_config("synthid");
    c.skip_repeated_context = false;
    c.layers = 64;
    check_scheme("synthid, every step, 64 layers", &c);
    c = wm_test_scheme_config("kgw-selfhash");
    c.context_width = 2;
    check_scheme("kgw selfhash, h 2", &c);
}

/* tm_wm_order_by_key's two radix passes against the reference's passes and a
 * plain comparison sort, with keys drawn so that their top bits tie often
 * (only 10 random bits at the top, then zeros: the last loop must settle
 * runs of n / 1024) and with plain random keys. */
typedef struct {
    uint64_t key;
    int32_t id;
    uint32_t index;
} keyed;

static unsigned order_shift;

static int keyed_compare(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    uint64_t kx = x->key >> order_shift, ky = y->key >> order_shift;
    if (kx != ky) return kx < ky ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

Test(wm_fast_paths, order_by_key) {
    static const size_t sizes[] = {70, 3000, 5000, 32000, 140000};
    uint64_t rng = 5;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        for (int ties = 0; ties < 2; ties++) {
            size_t n = sizes[si];
            uint64_t *keys = malloc(n * sizeof *keys), *work = malloc(2 * n * sizeof *work);
            int32_t *ids = malloc(n * sizeof *ids);
            uint32_t *fast = malloc(n * sizeof *fast), *reference = malloc(n * sizeof *reference);
            keyed *expected = malloc(n * sizeof *expected);
            cr_assert(keys && work && ids && fast && reference && expected);
            order_shift = ties ? 0 : 12;
            for (size_t i = 0; i < n; i++) {
                uint64_t key = wm_test_lcg(&rng) << 33 ^ wm_test_lcg(&rng) << 2 ^ wm_test_lcg(&rng);
                if (ties) key = (key & 0x3FFFFFFF) | (uint64_t)(wm_test_lcg(&rng) % 1024) << 54; /* 1024 top values */
                keys[i] = key;
                ids[i] = (int32_t)(wm_test_lcg(&rng) % 100000);
                expected[i] = (keyed){key, ids[i], (uint32_t)i};
            }
            qsort(expected, n, sizeof *expected, keyed_compare);
            tm_wm_order_by_key(keys, ids, n, order_shift, fast, work);
            tm_wm_use_reference_paths(true);
            tm_wm_order_by_key(keys, ids, n, order_shift, reference, work);
            tm_wm_use_reference_paths(false);
            for (size_t i = 0; i < n; i++) {
                /* equal (key, id) pairs may come in either order: compare what they hold */
                cr_assert_eq(keys[fast[i]] >> order_shift, expected[i].key >> order_shift, "n %zu ties %d at %zu", n,
                             ties, i);
                cr_assert_eq(ids[fast[i]], expected[i].id, "n %zu ties %d at %zu", n, ties, i);
                cr_assert_eq(fast[i], reference[i], "n %zu ties %d at %zu: fast and reference orders differ", n, ties,
                             i);
            }
            free(keys), free(work), free(ids), free(fast), free(reference), free(expected);
        }
    }
}

/* The chain's pre-truncation before KGW and Unigram (generator/sampler.c):
 * with top-k, min-p or greedy decoding after the bias, the chain built by
 * tm_sampler_chain_build hands the scheme only the candidates that can
 * survive, and must draw the tokens a hand-built chain without that stage
 * draws, step after step (each drawn token accepted, so contexts move on). */
Test(wm_fast_paths, bias_schemes_after_pre_truncation_draw_the_same_tokens) {
    const char *names[] = {"kgw-lefthash", "kgw-selfhash", "unigram"};
    const struct { float t; int32_t k; float top_p, min_p; } settings[] = {
        {1.0f, 40, 1.0f, 0.0f}, {0.8f, 40, 0.95f, 0.05f}, {1.0f, 0, 1.0f, 0.05f}, {0.0f, 0, 1.0f, 0.0f}};
    tm_wm_key *key = wm_test_seeded_key(11);
    float *logits = malloc(VOCAB * sizeof *logits);
    cr_assert_not_null(logits);
    for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
        tm_wm_config config = wm_test_scheme_config(names[n]);
        tm_wm_scheme *scheme = wm_test_scheme(&config, key);
        for (size_t s = 0; s < sizeof settings / sizeof settings[0]; s++) {
            tm_sampling_params p;
            tm_sampling_params_default(&p);
            p.temperature = settings[s].t, p.top_k = settings[s].k, p.top_p = settings[s].top_p;
            p.min_p = settings[s].min_p, p.seed = 77 + s;
            tm_sampler_chain *built = tm_sampler_chain_build(&p, tm_wm_sampler(scheme, p.seed), NULL);
            tm_sampler_chain *by_hand = chain_without_pre_truncation(&p, tm_wm_sampler(scheme, p.seed), NULL);
            cr_assert_not_null(built);
            uint64_t rng = 5 + s;
            for (size_t step = 0; step < 2 * STEPS; step++) {
                /* Where the bounds are tight: a low floor, the k best (one
                 * without top-k) tied at 4, and two bands a few ulps around
                 * where delta = 2 lifts a green logit to the top-k bound (4)
                 * and to the min-p bound (4 + log 0.05). */
                for (size_t i = 0; i < VOCAB; i++) logits[i] = (float)(wm_test_lcg(&rng) % 2000) / 1000.0f - 8.0f;
                const float bands[2] = {2.0f, 4.0f + logf(0.05f) - 2.0f};
                for (size_t b = 0; b < 2; b++)
                    for (size_t i = 0; i < VOCAB / 16; i++) {
                        float x = bands[b];
                        for (int u = (int)(wm_test_lcg(&rng) % 7) - 3; u != 0; u += u < 0 ? 1 : -1)
                            x = nextafterf(x, u < 0 ? -INFINITY : INFINITY);
                        logits[wm_test_lcg(&rng) % VOCAB] = x;
                    }
                for (int32_t i = 0; i < (p.top_k > 0 ? p.top_k : 1); i++) logits[wm_test_lcg(&rng) % VOCAB] = 4.0f;
                int32_t a = tm_sampler_chain_sample(built, logits, VOCAB);
                int32_t b = tm_sampler_chain_sample(by_hand, logits, VOCAB);
                cr_assert_eq(a, b, "%s, setting %zu, step %zu: %d, by hand %d", names[n], s, step, a, b);
                tm_sampler_chain_accept(built, a);
                tm_sampler_chain_accept(by_hand, b);
            }
            tm_sampler_chain_free(built);
            tm_sampler_chain_free(by_hand);
        }
        tm_wm_scheme_free(scheme);
    }
    free(logits);
    tm_wm_key_free(key);
}
