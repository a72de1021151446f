/* Tests of the evals/ arithmetic and attacks against hand-computed values:
 * ROC-AUC equals the Mann-Whitney statistic with ties (small tables counted
 * by hand and a brute-force pair count), TPR/FPR at a threshold, bootstrap
 * intervals on tables whose resampling distribution is known, the fast AUC
 * bootstrap against a brute-force resampling with the same draws, distinct-n
 * and seq-rep-4, and every text attack: it edits at the rate asked (within
 * five binomial standard deviations on a long text), the same seed repeats
 * the same bytes, another seed gives other bytes, the output stays UTF-8,
 * and the detector's normaliser undoes zero-width characters. WordNet tests
 * skip visibly when wordnet-base is not installed. */
#include "fixtures.h"
#include "tracemark/detect.h"
#include "tracemark/evals.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- metrics ------------------------------------------------------------------------- */

Test(evals_metrics, auc_counts_ties_as_half) {
    /* Pairs: (3,1)=1 (3,2)=1 (2,1)=1 (2,2)=1/2 (2,1)=1 (2,2)=1/2 -> 5/6. */
    double pos[] = {3, 2, 2}, neg[] = {1, 2};
    cr_assert_float_eq(tm_metric_auc(pos, 3, neg, 2), 5.0 / 6.0, 1e-15);
    double all_tied_p[] = {1, 1}, all_tied_n[] = {1, 1, 1};
    cr_assert_float_eq(tm_metric_auc(all_tied_p, 2, all_tied_n, 3), 0.5, 1e-15);
    double sep_p[] = {5, 6}, sep_n[] = {1, 2, 3};
    cr_assert_float_eq(tm_metric_auc(sep_p, 2, sep_n, 3), 1.0, 1e-15);
    cr_assert_float_eq(tm_metric_auc(sep_n, 3, sep_p, 2), 0.0, 1e-15);
    cr_assert(isnan(tm_metric_auc(pos, 3, neg, 0)));
}

Test(evals_metrics, auc_equals_brute_force_mann_whitney) {
    tm_rng rng;
    tm_rng_seed(&rng, 7);
    double pos[57], neg[41];
    /* Integers 0..9 so that ties are frequent. */
    for (int i = 0; i < 57; i++) pos[i] = (double)(tm_rng_next(&rng) % 10) + 1;
    for (int i = 0; i < 41; i++) neg[i] = (double)(tm_rng_next(&rng) % 10);
    double u = 0;
    for (int i = 0; i < 57; i++)
        for (int j = 0; j < 41; j++) u += pos[i] > neg[j] ? 1.0 : pos[i] == neg[j] ? 0.5 : 0.0;
    cr_assert_float_eq(tm_metric_auc(pos, 57, neg, 41), u / (57.0 * 41.0), 1e-14);
}

Test(evals_metrics, rate_at_least_is_tpr_at_alpha) {
    /* -ln p of five texts: p = 1e-1, 1e-2, 1e-3, 1e-4, 1. */
    double scores[] = {-log(1e-1), -log(1e-2), -log(1e-3), -log(1e-4), 0};
    cr_assert_float_eq(tm_metric_rate_at_least(scores, 5, -log(1e-2)), 3.0 / 5.0, 1e-15);
    cr_assert_float_eq(tm_metric_rate_at_least(scores, 5, -log(1e-3)), 2.0 / 5.0, 1e-15);
    cr_assert_float_eq(tm_metric_rate_at_least(scores, 5, -log(1e-5)), 0.0, 1e-15);
    cr_assert(isnan(tm_metric_rate_at_least(scores, 0, 1)));
}

Test(evals_metrics, bootstrap_of_a_two_value_table) {
    /* TPR over positives {hit, miss}: a resample of 2 has 0, 1/2 or 1 with
     * probabilities 1/4, 1/2, 1/4, so the 2.5% and 97.5% percentiles of many
     * resamples are exactly 0 and 1. */
    double pos[] = {10, 0};
    tm_metric_interval m;
    cr_assert_eq(tm_metric_bootstrap(TM_METRIC_TPR, pos, 2, NULL, 0, 5, 4000, 1, &m, NULL), TM_OK);
    cr_assert_float_eq(m.value, 0.5, 1e-15);
    cr_assert_float_eq(m.low, 0.0, 1e-15);
    cr_assert_float_eq(m.high, 1.0, 1e-15);
    /* A table of one kind has a degenerate interval. */
    double all[] = {10, 10, 10};
    cr_assert_eq(tm_metric_bootstrap(TM_METRIC_FPR, NULL, 0, all, 3, 5, 500, 1, &m, NULL), TM_OK);
    cr_assert(m.value == 1 && m.low == 1 && m.high == 1);
    double sep_p[] = {5, 6}, sep_n[] = {1, 2, 3};
    cr_assert_eq(tm_metric_bootstrap(TM_METRIC_AUC, sep_p, 2, sep_n, 3, 0, 500, 1, &m, NULL), TM_OK);
    cr_assert(m.value == 1 && m.low == 1 && m.high == 1);
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

Test(evals_metrics, fast_auc_bootstrap_equals_brute_force) {
    /* The same draws as tm_metric_bootstrap (negatives first, as indices into
     * the sorted negatives, then positives), each resample's AUC counted pair
     * by pair, the percentiles interpolated as numpy does. */
    double pos[] = {3, 1, 4, 1, 5, 9, 2, 6}, neg[] = {2, 7, 1, 8, 2, 8, 1};
    size_t np = 8, nn = 7;
    uint32_t B = 301;
    uint64_t seed = 12345;
    tm_metric_interval m;
    cr_assert_eq(tm_metric_bootstrap(TM_METRIC_AUC, pos, np, neg, nn, 0, B, seed, &m, NULL), TM_OK);
    double sorted[7];
    memcpy(sorted, neg, sizeof sorted);
    qsort(sorted, nn, sizeof *sorted, compare);
    tm_rng rng;
    tm_rng_seed(&rng, seed);
    double stats[301];
    for (uint32_t b = 0; b < B; b++) {
        double rn[7], rp[8];
        for (size_t j = 0; j < nn; j++) rn[j] = sorted[tm_rng_next(&rng) % nn];
        for (size_t i = 0; i < np; i++) rp[i] = pos[tm_rng_next(&rng) % np];
        double u = 0;
        for (size_t i = 0; i < np; i++)
            for (size_t j = 0; j < nn; j++) u += rp[i] > rn[j] ? 1.0 : rp[i] == rn[j] ? 0.5 : 0.0;
        stats[b] = u / (double)(np * nn);
    }
    qsort(stats, B, sizeof *stats, compare);
    double lo = 0.025 * (B - 1), hi = 0.975 * (B - 1);
    double expect_lo = stats[(size_t)lo] + (lo - floor(lo)) * (stats[(size_t)lo + 1] - stats[(size_t)lo]);
    double expect_hi = stats[(size_t)hi] + (hi - floor(hi)) * (stats[(size_t)hi + 1] - stats[(size_t)hi]);
    cr_assert_float_eq(m.low, expect_lo, 1e-12);
    cr_assert_float_eq(m.high, expect_hi, 1e-12);
    cr_assert_float_eq(m.value, tm_metric_auc(pos, np, neg, nn), 1e-15);
    /* Seeded: the same seed repeats the interval. */
    tm_metric_interval again;
    tm_metric_bootstrap(TM_METRIC_AUC, pos, np, neg, nn, 0, B, seed, &again, NULL);
    cr_assert(again.low == m.low && again.high == m.high);
}

Test(evals_metrics, median_with_never) {
    double v[] = {5, 1, INFINITY, 3};
    cr_assert_float_eq(tm_metric_median(v, 4), 4.0, 1e-15);
    double w[] = {INFINITY, 1, INFINITY};
    cr_assert(isinf(tm_metric_median(w, 3)));
    double odd[] = {7, 2, 9};
    cr_assert_float_eq(tm_metric_median(odd, 3), 7.0, 1e-15);
}

/* ---- quality -------------------------------------------------------------------------- */

Test(evals_quality, distinct_and_repetition) {
    int32_t ids[] = {1, 2, 1, 2, 3};
    cr_assert_float_eq(tm_quality_distinct(ids, 5, 1), 3.0 / 5.0, 1e-15);
    cr_assert_float_eq(tm_quality_distinct(ids, 5, 2), 3.0 / 4.0, 1e-15); /* 12 21 12 23 */
    cr_assert_float_eq(tm_quality_distinct(ids, 5, 3), 1.0, 1e-15);       /* 121 212 123 */
    cr_assert_float_eq(tm_quality_repetition(ids, 5), 0.0, 1e-15);
    int32_t same[] = {4, 4, 4, 4, 4, 4};
    cr_assert_float_eq(tm_quality_repetition(same, 6), 2.0 / 3.0, 1e-15); /* 3 four-grams, 1 unique */
    cr_assert(isnan(tm_quality_distinct(ids, 2, 3)));
}

Test(evals_quality, perplexity_matches_a_direct_computation) {
    tm_test_story story = tm_test_story_open();
    int32_t *ids = NULL;
    size_t n = 0;
    const char *text = "Once upon a time there was a little dog.";
    cr_assert_eq(tm_tokenizer_encode(story.tokenizer, text, strlen(text), true, &ids, &n, NULL), TM_OK);
    int32_t n_vocab = tm_tokenizer_vocab_size(story.tokenizer);
    double ppl;
    cr_assert_eq(tm_quality_perplexity(story.context, n_vocab, ids, n, 1, &ppl, NULL), TM_OK);
    /* Direct: one token at a time, log-softmax in long double. */
    tm_context_reset(story.context);
    long double nll = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        const float *logits;
        cr_assert_eq(tm_context_eval(story.context, &ids[i], 1, &logits, NULL), TM_OK);
        long double z = 0;
        for (int32_t v = 0; v < n_vocab; v++) z += expl((long double)logits[v]);
        nll -= (long double)logits[ids[i + 1]] - logl(z);
    }
    cr_assert_float_eq(ppl, (double)expl(nll / (long double)(n - 1)), 1e-6 * ppl);
    cr_assert(ppl > 1 && ppl < n_vocab);
    free(ids);
    tm_test_story_close(&story);
}

/* ---- attacks -------------------------------------------------------------------------- */

static char *long_text(size_t sentences) {
    static const char *const s[] = {
        "Once upon a time, there was a little girl named Lily. ",
        "She liked to play with her dog in the big green park! ",
        "One day, the sun was bright and the birds were singing; ",
        "Her mother said: \"Be careful near the old river.\" ",
        "The happy boy found a shiny red ball under the tree. ",
    };
    size_t cap = sentences * 64 + 1, len = 0;
    char *text = malloc(cap);
    for (size_t i = 0; i < sentences; i++) {
        size_t n = strlen(s[i % 5]);
        memcpy(text + len, s[i % 5], n);
        len += n;
    }
    text[len] = '\0';
    return text;
}

static void assert_rate(size_t edits, size_t units, double rate, const char *what) {
    cr_assert_gt(units, 200, "%s: too few units (%zu)", what, units);
    double expected = rate * (double)units, sd = sqrt((double)units * rate * (1 - rate));
    cr_assert(fabs((double)edits - expected) <= 5 * sd, "%s: %zu edits of %zu units, expected about %.0f", what, edits,
              units, expected);
}

static tm_wordnet *open_wordnet(void) {
    if (!tm_file_exists("/usr/share/wordnet/index.noun")) return NULL;
    tm_wordnet *wn = NULL;
    tm_error err;
    cr_assert_eq(tm_wordnet_open(&wn, "/usr/share/wordnet", &err), TM_OK, "%s", err.message);
    return wn;
}

static size_t count_words(const char *s) {
    size_t n = 0;
    bool in = false;
    for (; *s; s++) {
        bool space = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
        if (!space && !in) n++;
        in = !space;
    }
    return n;
}

Test(evals_attacks, each_attack_edits_at_its_rate_and_repeats) {
    tm_wordnet *wn = open_wordnet();
    char *text = long_text(200);
    size_t size = strlen(text);
    const char *filler = "the quick brown fox jumps over the lazy dog and runs far away";
    tm_attack_kind kinds[] = {TM_ATTACK_DELETE, TM_ATTACK_INSERT, TM_ATTACK_SWAP, TM_ATTACK_TYPO,
                              TM_ATTACK_CASE, TM_ATTACK_PUNCTUATION, TM_ATTACK_SYNONYM, TM_ATTACK_HOMOGLYPH,
                              TM_ATTACK_ZERO_WIDTH};
    double rates[] = {0.1, 0.3};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (kinds[k] == TM_ATTACK_SYNONYM && !wn) continue;
        for (size_t r = 0; r < 2; r++) {
            tm_attack_params p = {.kind = kinds[k], .strength = rates[r], .seed = 99, .wordnet = wn, .filler = filler};
            char *a = NULL, *b = NULL, *c = NULL;
            size_t na, nb, nc, edits, units, e2, u2;
            tm_error err;
            cr_assert_eq(tm_attack_text(text, size, &p, &a, &na, &edits, &units, &err), TM_OK, "%s", err.message);
            cr_assert_eq(tm_attack_text(text, size, &p, &b, &nb, &e2, &u2, &err), TM_OK);
            p.seed = 100;
            cr_assert_eq(tm_attack_text(text, size, &p, &c, &nc, NULL, NULL, &err), TM_OK);
            const char *name = tm_attack_name(kinds[k]);
            cr_assert(na == nb && !memcmp(a, b, na) && edits == e2 && units == u2, "%s is not reproducible", name);
            cr_assert(nc != na || memcmp(a, c, na), "%s: another seed gave the same text", name);
            cr_assert(tm_utf8_valid(a, na), "%s broke UTF-8", name);
            assert_rate(edits, units, rates[r], name);
            if (kinds[k] == TM_ATTACK_DELETE) cr_assert_eq(count_words(a), units - edits);
            if (kinds[k] == TM_ATTACK_INSERT) cr_assert_eq(count_words(a), units + edits);
            if (kinds[k] == TM_ATTACK_ZERO_WIDTH) {
                /* The detector's normaliser removes every zero-width character again. */
                tm_normalize_options o;
                tm_normalize_options_default(&o);
                char *x = NULL, *y = NULL;
                size_t nx, ny;
                cr_assert_eq(tm_text_normalize(a, na, &o, &x, &nx, NULL, NULL), TM_OK);
                cr_assert_eq(tm_text_normalize(text, size, &o, &y, &ny, NULL, NULL), TM_OK);
                cr_assert(nx == ny && !memcmp(x, y, nx), "zero-width characters survive normalisation");
                free(x), free(y);
            }
            free(a), free(b), free(c);
        }
    }
    /* Strength 0 changes nothing. */
    tm_attack_params none = {.kind = TM_ATTACK_TYPO, .strength = 0, .seed = 1};
    char *same = NULL;
    size_t n_same;
    cr_assert_eq(tm_attack_text(text, size, &none, &same, &n_same, NULL, NULL, NULL), TM_OK);
    cr_assert(n_same == size && !memcmp(same, text, size));
    free(same);
    free(text);
    tm_wordnet_free(wn);
}

Test(evals_attacks, copy_paste_share) {
    char *text = long_text(20);
    size_t words = count_words(text);
    const char *filler = "alpha beta gamma delta epsilon zeta eta theta iota kappa";
    for (int k = 1; k <= 4; k++) {
        double share = 0.2 * k;
        tm_attack_params p = {.kind = TM_ATTACK_COPY_PASTE, .strength = share, .seed = 5, .filler = filler};
        char *out = NULL;
        size_t n, edits, units;
        cr_assert_eq(tm_attack_text(text, strlen(text), &p, &out, &n, &edits, &units, NULL), TM_OK);
        cr_assert(strstr(out, text), "the pasted span is not intact");
        cr_assert_eq(units, count_words(out));
        cr_assert_eq(units - edits, words);
        cr_assert(fabs((double)words / (double)units - share) < 0.01, "share %g, got %g", share,
                  (double)words / (double)units);
        free(out);
    }
    tm_attack_params bad = {.kind = TM_ATTACK_COPY_PASTE, .strength = 0.5, .seed = 5};
    char *out = NULL;
    size_t n;
    tm_error err;
    cr_assert_eq(tm_attack_text(text, strlen(text), &bad, &out, &n, NULL, NULL, &err), TM_ERR_ARGUMENT);
    bad.kind = TM_ATTACK_EMOJI;
    cr_assert_eq(tm_attack_text(text, strlen(text), &bad, &out, &n, NULL, NULL, &err), TM_ERR_ARGUMENT);
    free(text);
}

Test(evals_attacks, wordnet_synonyms_come_from_the_database) {
    tm_wordnet *wn = open_wordnet();
    if (!wn) cr_skip_test("wordnet-base is not installed (/usr/share/wordnet)");
    size_t n;
    const char *const *syn = tm_wordnet_synonyms(wn, "dog", &n);
    cr_assert_gt(n, 5);
    bool frump = false, hound = false, chase = false;
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_neq(syn[i], "dog");
        cr_assert_null(strchr(syn[i], '_'), "multiword synonym %s", syn[i]);
        if (i) cr_assert_lt(strcmp(syn[i - 1], syn[i]), 0, "not sorted and unique");
        frump |= !strcmp(syn[i], "frump");   /* noun: {frump, dog} */
        hound |= !strcmp(syn[i], "hound");   /* noun: {cad, bounder, blackguard, dog, hound, heel} */
        chase |= !strcmp(syn[i], "chase");   /* verb: {chase, chase_after, trail, tail, tag, give_chase, dog, ...} */
    }
    cr_assert(frump && hound && chase);
    /* Adjective markers like "(a)" are stripped: "outback(a)" is listed as "outback". */
    syn = tm_wordnet_synonyms(wn, "remote", &n);
    bool outback = false;
    for (size_t i = 0; i < n; i++) outback |= !strcmp(syn[i], "outback");
    cr_assert(outback);
    cr_assert_null(tm_wordnet_synonyms(wn, "qwzxv", &n));
    cr_assert_eq(n, 0);
    cr_assert_gt(tm_wordnet_lemma_count(wn), 80000);
    tm_wordnet_free(wn);
}
