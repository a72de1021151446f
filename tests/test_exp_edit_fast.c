/* Tests for the EXP-edit / ITS-edit detector's fast path (detect/exp_edit_fast.c
 * and its use in detect/exp_edit_detect.c) against the exact double path
 * (TM_EXP_EDIT_PATH_EXACT, the test as first written, itself checked against
 * a brute force in test_exp_edit_detect.c): the float log of the EXP null
 * keys' costs is within half its stated bound of libm's log over every float
 * mantissa (the bound the p-value's correctness rests on), and on texts that
 * are watermarked, edited, pasted, unwatermarked or sampled with another key,
 * EXP and ITS, with 1 and 3 keys, full and sequential, the statistic, ln p
 * (bit for bit), the floor flag, the stop and the decision are the exact
 * path's, while most null keys are settled in float. Each test runs once per
 * kernel (AVX-512, AVX2 + FMA), each skipping visibly where its kernel cannot
 * run (no such CPU feature, or TM_NO_AVX512 / TM_NO_AVX2 set). */
#include "distortion_free_testing.h"
#include "tracemark/detect.h"

#include "../detect/detect_internal.h"
#include "../detect/exp_edit_fast.h"

static tm_exp_edit_kernel path_kernel(tm_exp_edit_path path) {
    return path == TM_EXP_EDIT_PATH_AVX2 ? TM_EXP_EDIT_KERNEL_AVX2 : TM_EXP_EDIT_KERNEL_AVX512;
}

static const char *path_name(tm_exp_edit_path path) {
    return path == TM_EXP_EDIT_PATH_AVX512           ? "AVX-512"
           : path == TM_EXP_EDIT_PATH_AVX512_PRECISE ? "AVX-512 (precise tier only)"
                                                      : "AVX2";
}

/* Skips (visibly) where the path's kernel cannot run here. */
static void need_kernel(tm_exp_edit_path path) {
    if (!tm_exp_edit_fast_runs(path_kernel(path)))
        cr_skip_test("the %s kernel cannot run here (CPU features, or TM_NO_AVX512 / TM_NO_AVX2 set)",
                     path_name(path));
}

/* ---- the log kernel --------------------------------------------------------------- */

/* Largest |kernel - (libm - 2 gamma)| over the odd w in [lo, hi) stepping by step (w
 * odd), as the stream word x = (w >> 1) << 12 (so that ((x >> 12) + 0.5)
 * 2^-52 = w 2^-53 exactly). */
static double max_log_error(tm_exp_edit_kernel kernel, bool coarse, uint64_t lo, uint64_t hi, uint64_t step) {
    enum { CHUNK = 4096 };
    static uint64_t x[CHUNK];
    static float out[CHUNK];
    static double want[CHUNK];
    double worst = 0.0;
    uint64_t w = lo | 1;
    while (w < hi) {
        size_t n = 0;
        for (; n < CHUNK && w < hi; n++, w += step) {
            x[n] = (w >> 1) << 12;
            want[n] = log(tm_wm_uniform(x[n])) - 4.0;
        }
        tm_exp_edit_fast_stream_costs(kernel, x, n, 4.0f, coarse, out); /* 2 gamma for EXP */
        for (size_t i = 0; i < n; i++) {
            double e = fabs((double)out[i] - want[i]);
            if (!(e <= worst)) worst = e; /* NaN becomes the worst */
        }
    }
    return worst;
}

static void check_log(tm_exp_edit_path path, bool coarse) {
    need_kernel(path);
    tm_exp_edit_kernel kernel = path_kernel(path);
    double worst = 0.0, eps = coarse ? TM_EXP_EDIT_FAST_EPS_COARSE : TM_EXP_EDIT_FAST_EPS_EXP;
    /* Every odd w below 2^24: every float the conversion can give there. */
    worst = fmax(worst, max_log_error(kernel, coarse, 1, UINT64_C(1) << 24, 2));
    /* Above, w = 2^E + j 2^(E-23) + 1 rounds to the float 2^E + j 2^(E-23):
     * every mantissa j at the smallest, a middle and the largest exponents,
     * every 61st mantissa at the others. */
    for (int e = 24; e <= 52; e++) {
        uint64_t base = UINT64_C(1) << e, ulp = UINT64_C(1) << (e - 23);
        bool full = e == 24 || e == 25 || e == 38 || e == 52;
        worst = fmax(worst, max_log_error(kernel, coarse, base, 2 * base, full ? ulp : 61 * ulp));
    }
    /* Words as the stream gives them. */
    uint64_t s[4] = {1, 2, 3, 4}, x[4096];
    float out[4096];
    for (int round = 0; round < 64; round++) {
        for (size_t i = 0; i < 4096; i++) {
            uint64_t r = ((s[1] * 5) << 7 | (s[1] * 5) >> 57) * 9, t = s[1] << 17;
            s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = s[3] << 45 | s[3] >> 19;
            x[i] = r;
        }
        tm_exp_edit_fast_stream_costs(kernel, x, 4096, 4.0f, coarse, out);
        for (size_t i = 0; i < 4096; i++) worst = fmax(worst, fabs((double)out[i] - (log(tm_wm_uniform(x[i])) - 4.0)));
    }
    cr_log_info("EXP fast %s log (%s): largest error %.3g (bound %.3g)", coarse ? "coarse" : "precise",
                path_name(path), worst, eps);
    cr_assert(worst <= eps / 2, "fast log error %.3g above half the bound %.3g", worst, eps);
    /* A float log cannot equal double log everywhere (the check ran); the
     * coarse one is off by more than the precise one's bound somewhere (it
     * is the coarse log that ran). */
    cr_assert(worst > (coarse ? TM_EXP_EDIT_FAST_EPS_EXP : 0), "largest error %.3g: not the %s log", worst,
              coarse ? "coarse" : "precise");
}

Test(exp_edit_fast, log_within_half_its_bound_over_every_mantissa_avx512, .timeout = 120) {
    check_log(TM_EXP_EDIT_PATH_AVX512, false);
}
Test(exp_edit_fast, log_within_half_its_bound_over_every_mantissa_avx2, .timeout = 120) {
    check_log(TM_EXP_EDIT_PATH_AVX2, false);
}
Test(exp_edit_fast, coarse_log_within_half_its_bound_over_every_mantissa_avx512, .timeout = 120) {
    check_log(TM_EXP_EDIT_PATH_AVX512, true);
}

/* AVX2 has no coarse tier: it says so, and its stream costs for it are NaN. */
Test(exp_edit_fast, avx2_has_no_coarse_tier) {
    need_kernel(TM_EXP_EDIT_PATH_AVX2);
    cr_assert(!tm_exp_edit_fast_coarse_runs(TM_EXP_EDIT_KERNEL_AVX2));
    uint64_t x[3] = {1, UINT64_C(1) << 40, ~UINT64_C(0)};
    float out[3];
    tm_exp_edit_fast_stream_costs(TM_EXP_EDIT_KERNEL_AVX2, x, 3, 4.0f, true, out);
    for (int i = 0; i < 3; i++) cr_assert(isnan(out[i]));
}

/* ---- texts ---------------------------------------------------------------------------- */

typedef struct {
    size_t compared, detected, not_detected, fast, recomputed, sequential_stops, coarse, refined;
} tally;

/* Both paths on one text: everything but the null mean bit for bit. */
static void compare(tm_exp_edit_path path, const tm_wm_scheme *scheme, const int32_t *tokens, size_t n,
                    int32_t permutations, double fpr, size_t n_keys, bool sequential, uint64_t seed, tally *t) {
    tm_detect_options options;
    tm_detect_options_default(&options);
    options.permutations = permutations;
    options.fpr = fpr;
    options.sequential = sequential;
    options.permutation_seed = seed;
    tm_detection exact, fast;
    memset(&exact, 0, sizeof exact);
    memset(&fast, 0, sizeof fast);
    tm_exp_edit_path_stats s_exact, s_fast;
    tm_error err = {0};
    cr_assert_eq(tm_detect_exp_edit_path(scheme, tokens, n, &options, n_keys, TM_EXP_EDIT_PATH_EXACT, &s_exact, &exact,
                                         &err),
                 TM_OK, "%s", err.message);
    cr_assert_eq(tm_detect_exp_edit_path(scheme, tokens, n, &options, n_keys, path, &s_fast, &fast, &err),
                 TM_OK, "%s", err.message);
    cr_assert_eq(s_exact.fast, 0);
    cr_assert(memcmp(&exact.statistic, &fast.statistic, sizeof(double)) == 0, "statistic %.17g vs %.17g",
              exact.statistic, fast.statistic);
    cr_assert(memcmp(&exact.log_p, &fast.log_p, sizeof(double)) == 0, "ln p %.17g (exact) vs %.17g (fast), n %zu",
              exact.log_p, fast.log_p, n);
    cr_assert_eq(exact.p_at_floor, fast.p_at_floor);
    cr_assert_eq(exact.p_sequential, fast.p_sequential);
    cr_assert_eq(exact.permutations_done, fast.permutations_done);
    cr_assert(s_fast.fast + s_fast.exact >= fast.permutations_done, "every counted null key was computed");
    cr_assert(fabs(exact.expected - fast.expected) < 0.5, "null mean %.9g vs %.9g", exact.expected, fast.expected);
    double log_fpr = log(fpr) + 1e-9, log_k = log((double)n_keys);
    bool detected = fmin(0, exact.log_p + log_k) <= log_fpr; /* detect.c's decision */
    cr_assert_eq(detected, fmin(0, fast.log_p + log_k) <= log_fpr);
    t->compared++;
    t->detected += detected;
    t->not_detected += !detected;
    t->fast += s_fast.fast;
    t->recomputed += s_fast.recomputed;
    t->coarse += s_fast.coarse;
    t->refined += s_fast.refined;
    cr_assert_eq(s_exact.coarse + s_exact.refined, 0);
    cr_assert(s_fast.coarse <= s_fast.fast, "coarse keys %llu are among the fast ones %llu",
              (unsigned long long)s_fast.coarse, (unsigned long long)s_fast.fast);
    t->sequential_stops += fast.p_sequential;
}

static tm_wm_config edit_config(tm_wm_decoder decoder) {
    tm_wm_config config;
    tm_wm_config_default(&config, TM_WM_EXP_EDIT);
    config.decoder = decoder;
    config.sequence_length = 256;
    return config;
}

static void check_paths(tm_exp_edit_path path, tm_wm_decoder decoder) {
    need_kernel(path);
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = edit_config(decoder);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    tm_wm_key *other_key = NULL;
    tm_error err = {0};
    uint8_t other_secret[32];
    for (int i = 0; i < 32; i++) other_secret[i] = (uint8_t)(200 + i);
    cr_assert_eq(tm_wm_key_from_secret(&other_key, other_secret, &err), TM_OK, "%s", err.message);
    tm_wm_scheme *other = wm_test_scheme(&config, other_key);
    enum { M = 200, LONG = 420 };
    int32_t marked[LONG], edited[2 * LONG], plain[LONG];
    tally t = {0};
    for (int text = 0; text < 4; text++) {
        wm_test_watermarked_tokens(scheme, 42 + (uint64_t)text, 9001 + (uint64_t)text, marked, M);
        wm_test_watermarked_tokens(other, 7 + (uint64_t)text, 500 + (uint64_t)text, plain, LONG);
        uint64_t x = 77 + (uint64_t)text;
        int32_t random_ids[M];
        for (size_t i = 0; i < M; i++) random_ids[i] = (int32_t)(wm_test_lcg(&x) % WM_TEST_TEXT_VOCAB);
        double rate = 0.1 * text; /* 0, 10, 20, 30% edits */
        size_t n_edited = wm_test_edit_tokens(marked, M, edited, rate, 31337 + (uint64_t)text);
        /* Watermarked (edited) text: every null key runs, on the floor or near it. */
        compare(path, scheme, edited, n_edited, 199, 0.005, 1, true, (uint64_t)text, &t);
        /* Unwatermarked: another key's text and uniform ids, sequential and full. */
        compare(path, scheme, plain, M, 199, 0.005, 1, true, 3, &t);
        compare(path, scheme, plain, M, 199, 0.005, 1, false, 4, &t);
        compare(path, scheme, random_ids, M, 199, 0.05, 1, false, 5, &t);
        /* Three keys (the family-wise correction moves the stopping count). */
        compare(path, scheme, edited, n_edited, 599, 0.005, 3, true, 6, &t);
        /* A watermarked passage pasted between unwatermarked tokens: two blocks. */
        memcpy(plain + 150, marked, 150 * sizeof *marked);
        compare(path, scheme, plain, LONG, 99, 0.01, 1, false, 8, &t);
    }
    /* The defaults at 200 tokens: 999 null keys, fpr 1e-3. */
    wm_test_watermarked_tokens(scheme, 1, 2, marked, M);
    compare(path, scheme, marked, M, 0, 1e-3, 1, true, 0, &t);
    cr_log_info("%s %s: %zu texts (%zu detected), %zu null keys settled in float (%zu by the coarse tier, %zu batches "
                "refined), %zu computed exactly, %zu stopped early",
                decoder == TM_WM_DECODER_ITS ? "ITS" : "EXP", path_name(path), t.compared, t.detected, t.fast, t.coarse,
                t.refined, t.recomputed, t.sequential_stops);
    /* The coarse tier runs only where it exists, and there it settles the
     * null keys of detected texts (every one of them runs). */
    if (decoder == TM_WM_DECODER_EXP && path == TM_EXP_EDIT_PATH_AVX512)
        cr_assert(t.coarse > 1000, "the coarse tier settled %zu null keys", t.coarse);
    else
        cr_assert_eq(t.coarse + t.refined, 0, "no coarse tier on this path");
    cr_assert(t.detected >= 5 && t.not_detected >= 10, "both outcomes compared: %zu detected, %zu not", t.detected,
              t.not_detected);
    cr_assert(t.sequential_stops >= 2, "the sequential stop was compared");
    cr_assert(t.fast > 10 * t.recomputed, "most null keys settled in float: %zu fast, %zu exact", t.fast, t.recomputed);
    tm_wm_scheme_free(other);
    tm_wm_key_free(other_key);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(exp_edit_fast, exp_paths_agree_bit_for_bit_avx512, .timeout = 600) {
    check_paths(TM_EXP_EDIT_PATH_AVX512, TM_WM_DECODER_EXP);
}
Test(exp_edit_fast, its_paths_agree_bit_for_bit_avx512, .timeout = 600) {
    check_paths(TM_EXP_EDIT_PATH_AVX512, TM_WM_DECODER_ITS);
}
Test(exp_edit_fast, exp_paths_agree_bit_for_bit_avx512_precise_tier, .timeout = 600) {
    check_paths(TM_EXP_EDIT_PATH_AVX512_PRECISE, TM_WM_DECODER_EXP);
}
Test(exp_edit_fast, exp_paths_agree_bit_for_bit_avx2, .timeout = 600) {
    check_paths(TM_EXP_EDIT_PATH_AVX2, TM_WM_DECODER_EXP);
}
Test(exp_edit_fast, its_paths_agree_bit_for_bit_avx2, .timeout = 600) {
    check_paths(TM_EXP_EDIT_PATH_AVX2, TM_WM_DECODER_ITS);
}

/* AUTO takes the fastest kernel that runs (and the exact path where none does). */
Test(exp_edit_fast, auto_takes_the_fastest_kernel) {
    bool avx512 = tm_exp_edit_fast_runs(TM_EXP_EDIT_KERNEL_AVX512), avx2 = tm_exp_edit_fast_runs(TM_EXP_EDIT_KERNEL_AVX2);
    tm_exp_edit_kernel want = avx512 ? TM_EXP_EDIT_KERNEL_AVX512 : avx2 ? TM_EXP_EDIT_KERNEL_AVX2 : TM_EXP_EDIT_KERNEL_NONE;
    cr_assert_eq(tm_exp_edit_fast_best(), want);
    cr_assert_eq(tm_exp_edit_fast_available(), avx512 || avx2);
    if (getenv("TM_NO_AVX512")) cr_assert(!avx512, "TM_NO_AVX512 turns the AVX-512 kernel off");
    if (getenv("TM_NO_AVX2")) cr_assert(!avx512 && !avx2, "TM_NO_AVX2 turns both kernels off");
}

/* A statistic equal to a null key's, up to rounding, must go to the exact
 * path: the observed text aligned under null key j's own costs is impossible
 * to arrange from outside, so instead a text is scored with permutations = N
 * and every null key near phi is counted; the recomputed keys must exist on
 * some unwatermarked text, or the exact fallback is never exercised. */
static void check_near_ties(tm_exp_edit_path path) {
    need_kernel(path);
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = edit_config(TM_WM_DECODER_EXP);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    enum { M = 60 };
    int32_t ids[M];
    tally t = {0};
    for (uint64_t seed = 0; seed < 6 && t.recomputed == 0; seed++) {
        uint64_t x = 1234 + seed;
        for (size_t i = 0; i < M; i++) ids[i] = (int32_t)(wm_test_lcg(&x) % 8); /* few distinct tokens: close nulls */
        compare(path, scheme, ids, M, 999, 0.5, 1, false, seed, &t);
    }
    cr_log_info("near ties: %zu null keys recomputed exactly of %zu", t.recomputed, t.fast + t.recomputed);
    cr_assert(t.recomputed > 0, "some null key fell within the bound and was recomputed");
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(exp_edit_fast, near_ties_are_recomputed_avx512, .timeout = 300) { check_near_ties(TM_EXP_EDIT_PATH_AVX512); }
Test(exp_edit_fast, near_ties_are_recomputed_avx2, .timeout = 300) { check_near_ties(TM_EXP_EDIT_PATH_AVX2); }

/* Each null key's fast value lies within the bound it carries of its exact
 * value, on watermarked, edited, unwatermarked and two-block texts, and the
 * bound is small enough to settle nearly every key (< 1, where null
 * statistics spread over tens). */
static void check_bounds(tm_exp_edit_path path, tm_wm_decoder decoder, size_t coarse_wrap) {
    bool coarse = coarse_wrap > 0;
    need_kernel(path);
    tm_wm_key *key = wm_test_master_key();
    tm_wm_config config = edit_config(decoder);
    tm_wm_scheme *scheme = wm_test_scheme(&config, key);
    enum { M = 200, LONG = 420, KEYS = 48 };
    int32_t marked[LONG], edited[2 * LONG], random_ids[LONG];
    wm_test_watermarked_tokens(scheme, 3, 4, marked, LONG);
    size_t n_edited = wm_test_edit_tokens(marked, M, edited, 0.2, 5);
    uint64_t x = 6;
    for (size_t i = 0; i < LONG; i++) random_ids[i] = (int32_t)(wm_test_lcg(&x) % WM_TEST_TEXT_VOCAB);
    const int32_t *texts[] = {marked, edited, random_ids, random_ids, marked};
    size_t lengths[] = {M, n_edited, M, 17, LONG};
    double worst_ratio = 0.0, largest_bound = 0.0;
    size_t checked = 0, unsettled = 0, two_sided = 0;
    for (size_t t = 0; t < sizeof lengths / sizeof *lengths; t++)
        for (uint64_t first = 0; first < KEYS; first += 16) {
            double exact[16], fast[16], bound[16];
            tm_error err = {0};
            cr_assert_eq(tm_detect_exp_edit_nulls(scheme, texts[t], lengths[t], 11, first, 16, path, coarse_wrap, exact,
                                                  fast, bound, &err),
                         TM_OK, "%s", err.message);
            for (int l = 0; l < 16; l++) {
                double gap = fabs(exact[l] - fast[l]);
                if (coarse && isnan(fast[l])) { /* a pass the cyclic alignment could not settle */
                    unsettled++;
                    continue;
                }
                /* The coarse tier's guarantee is one-sided (a lower bound:
                 * its cyclic key admits more alignments); both tiers are
                 * within the bound of exact on every text here. */
                cr_assert(fast[l] - bound[l] <= exact[l], "text %zu null %llu: exact %.9g, fast %.9g, bound %.3g", t,
                          (unsigned long long)(first + (uint64_t)l), exact[l], fast[l], bound[l]);
                two_sided += gap <= bound[l];
                if (!coarse)
                    cr_assert(gap <= bound[l], "text %zu null %llu: exact %.9g, fast %.9g, bound %.3g", t,
                              (unsigned long long)(first + (uint64_t)l), exact[l], fast[l], bound[l]);
                /* The coarse tier's bound is wider (~k 4 eps), still well
                 * inside the null statistics' spread of tens. */
                cr_assert(bound[l] > 0 && bound[l] < (coarse ? 10.0 : 1.0), "bound %.3g", bound[l]);
                worst_ratio = fmax(worst_ratio, gap / bound[l]);
                largest_bound = fmax(largest_bound, bound[l]);
                checked++;
            }
        }
    cr_log_info("%s %s%s (second lap %zu): %zu null keys checked (%zu more unsettled), %zu within the bound both ways, |fast - exact| "
                "at most %.3g of the bound, largest bound %.3g",
                decoder == TM_WM_DECODER_ITS ? "ITS" : "EXP", path_name(path), coarse ? " coarse tier" : "", coarse_wrap,
                checked, unsettled, two_sided, worst_ratio, largest_bound);
    /* The detector's second lap settles every pass on these texts, and the
     * cyclic key changes no value beyond the bound (a relaxation that found
     * better alignments would send batches to the precise tier, not change
     * a p-value; this guards the speed, and a short lap shows the fallback). */
    if (!coarse || coarse_wrap == TM_EXP_EDIT_FAST_COARSE_WRAP)
        cr_assert(unsettled == 0 && two_sided == checked, "%zu unsettled, %zu of %zu within the bound", unsettled,
                  two_sided, checked);
    else
        cr_assert(unsettled > 0 && unsettled < checked, "a second lap of %zu columns: %zu unsettled, %zu checked", coarse_wrap,
                  unsettled, checked);
    tm_wm_scheme_free(scheme);
    tm_wm_key_free(key);
}

Test(exp_edit_fast, exp_fast_values_within_their_bounds_avx512, .timeout = 120) {
    check_bounds(TM_EXP_EDIT_PATH_AVX512, TM_WM_DECODER_EXP, 0);
}
Test(exp_edit_fast, exp_coarse_values_within_their_bounds_avx512, .timeout = 120) {
    check_bounds(TM_EXP_EDIT_PATH_AVX512, TM_WM_DECODER_EXP, TM_EXP_EDIT_FAST_COARSE_WRAP);
}
/* A second lap of 32 columns cannot settle every pass (lap-2 paths have
 * not paid enough gaps yet): the coarse tier then says NaN (the batch goes
 * to the precise tier) and its other values still hold their one-sided bound. */
Test(exp_edit_fast, exp_coarse_short_lap_leaves_passes_unsettled_avx512, .timeout = 120) {
    check_bounds(TM_EXP_EDIT_PATH_AVX512, TM_WM_DECODER_EXP, 32);
}
Test(exp_edit_fast, its_fast_values_within_their_bounds_avx512, .timeout = 120) {
    check_bounds(TM_EXP_EDIT_PATH_AVX512, TM_WM_DECODER_ITS, 0);
}
Test(exp_edit_fast, exp_fast_values_within_their_bounds_avx2, .timeout = 120) {
    check_bounds(TM_EXP_EDIT_PATH_AVX2, TM_WM_DECODER_EXP, 0);
}
Test(exp_edit_fast, its_fast_values_within_their_bounds_avx2, .timeout = 120) {
    check_bounds(TM_EXP_EDIT_PATH_AVX2, TM_WM_DECODER_ITS, 0);
}

/* The two kernels compute the same null keys: their fast values agree within
 * the sum of their bounds (both are within their bound of the same exact value). */
Test(exp_edit_fast, kernels_agree_within_their_bounds, .timeout = 120) {
    need_kernel(TM_EXP_EDIT_PATH_AVX512);
    need_kernel(TM_EXP_EDIT_PATH_AVX2);
    tm_wm_key *key = wm_test_master_key();
    for (int d = 0; d < 2; d++) {
        tm_wm_config config = edit_config(d ? TM_WM_DECODER_ITS : TM_WM_DECODER_EXP);
        tm_wm_scheme *scheme = wm_test_scheme(&config, key);
        int32_t marked[200];
        wm_test_watermarked_tokens(scheme, 3, 4, marked, 200);
        double exact[2][16], fast[2][16], bound[2][16];
        tm_error err = {0};
        for (int k = 0; k < 2; k++)
            cr_assert_eq(tm_detect_exp_edit_nulls(scheme, marked, 200, 5, 32, 16,
                                                  k ? TM_EXP_EDIT_PATH_AVX2 : TM_EXP_EDIT_PATH_AVX512, 0, exact[k],
                                                  fast[k], bound[k], &err),
                         TM_OK, "%s", err.message);
        for (int l = 0; l < 16; l++) {
            cr_assert(memcmp(&exact[0][l], &exact[1][l], sizeof(double)) == 0, "the exact values are one computation");
            cr_assert(fabs(fast[0][l] - fast[1][l]) <= bound[0][l] + bound[1][l], "lane %d: %.9g vs %.9g", l,
                      fast[0][l], fast[1][l]);
        }
        tm_wm_scheme_free(scheme);
    }
    tm_wm_key_free(key);
}
