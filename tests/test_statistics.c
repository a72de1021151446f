/* Tests for the detector's tail probabilities (detect/statistics.c), each value
 * against a computation that does not share code with the library: binomial
 * tails summed directly from the pmf in long double, closed forms (p^n, e^-x,
 * Poisson sums for integer-shape gamma, erfc for shape 1/2), published normal
 * tail values, values from mpmath 1.3.0 at 30 digits where no closed form
 * exists (named as such), and for SynthID a brute-force enumeration of every
 * g pattern scored the way google-deepmind/synthid-text's weighted_mean_score
 * scores it, plus a long-double layer convolution for the far tail. The
 * saddle-point fallback is measured against that convolution. No timing is
 * asserted. */
#include "tracemark/detect.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* |a - b| <= tolerance, with the values in the message on failure. */
#define assert_near(a, b, tolerance, what)                                                                         \
    do {                                                                                                           \
        double a_ = (a), b_ = (b);                                                                                 \
        cr_assert(fabs(a_ - b_) <= (tolerance), "%s: got %.17g, want %.17g (diff %.3g)", (what), a_, b_, a_ - b_); \
    } while (0)

/* ---- references ----------------------------------------------------------- */

/* ln P(X >= k), X ~ Bin(n, p), summing C(n,j) p^j q^(n-j) in long double with
 * the binomial coefficient built multiplicatively (small n only). */
static long double reference_binomial_sf(unsigned k, unsigned n, long double p) {
    long double q = 1.0L - p, coefficient = 1.0L, total = 0.0L;
    for (unsigned j = 0; j <= n; j++) {
        if (j > 0) coefficient = coefficient * (long double)(n - j + 1) / (long double)j;
        if (j >= k) total += coefficient * powl(p, (long double)j) * powl(q, (long double)(n - j));
    }
    return logl(total);
}

/* ln P(X >= k) for large n: log-sum-exp of lgammal-based log pmf terms from k
 * up (k above the mean), stopping when terms drop below 1e-25 of the sum. */
static long double reference_binomial_sf_large(uint64_t k, uint64_t n, long double p) {
    long double log_p = logl(p), log_q = log1pl(-p), lgamma_n = lgammal((long double)n + 1.0L);
    long double first = 0, sum = 0;
    for (uint64_t j = k; j <= n; j++) {
        long double t = lgamma_n - lgammal((long double)j + 1.0L) - lgammal((long double)(n - j) + 1.0L) +
                        (long double)j * log_p + (long double)(n - j) * log_q;
        if (j == k) first = t;
        long double e = expl(t - first);
        sum += e;
        if (e < 1e-25L * sum) break;
    }
    return first + logl(sum);
}

/* ln Q(n, x) for integer n: ln(e^-x sum_{k<n} x^k / k!) by log-sum-exp. */
static long double reference_gamma_q_integer(unsigned n, long double x) {
    long double biggest = -INFINITY;
    long double *terms = malloc(n * sizeof *terms);
    cr_assert_not_null(terms);
    for (unsigned k = 0; k < n; k++) {
        terms[k] = (long double)k * logl(x) - lgammal((long double)k + 1.0L) - x;
        if (terms[k] > biggest) biggest = terms[k];
    }
    long double sum = 0;
    for (unsigned k = 0; k < n; k++) sum += expl(terms[k] - biggest);
    free(terms);
    return biggest + logl(sum);
}

/* ---- binomial ------------------------------------------------------------- */

Test(statistics, binomial_kgw_hand_example) {
    /* T = 10 tokens, gamma = 0.25, 7 green: p = sum_{k=7}^{10} C(10,k) 0.25^k 0.75^(10-k)
     * = (120*27 + 45*9 + 10*3 + 1) / 4^10 = 3676 / 1048576 = 0.003505706787109375. */
    double log_p = tm_stat_binomial_log_sf(7, 10, 0.25);
    assert_near(log_p, log(3676.0 / 1048576.0), 1e-13, "KGW T=10 G=7");
    cr_assert_float_eq(tm_stat_p_from_log(log_p), 0.003505706787109375, 1e-16);
    /* 10 of 10 green: 0.25^10 = 1/1048576. */
    assert_near(tm_stat_binomial_log_sf(10, 10, 0.25), -10.0 * log(4.0), 1e-13, "all green");
    /* Either side of the mean 2.5 (the two summation branches):
     * P(X >= 3) = 1 - (3^10 + 10*3^9 + 45*3^8)/4^10 = 497452/1048576,
     * P(X >= 2) = 1 - (3^10 + 10*3^9)/4^10 = 792697/1048576. */
    assert_near(tm_stat_binomial_log_sf(3, 10, 0.25), log(497452.0 / 1048576.0), 1e-13, "3 of 10");
    assert_near(tm_stat_binomial_log_sf(2, 10, 0.25), log(792697.0 / 1048576.0), 1e-13, "2 of 10");
}

Test(statistics, binomial_small_n_against_direct_sum) {
    const unsigned sizes[] = {1, 2, 5, 10, 20, 50, 100, 300};
    const double probabilities[] = {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999};
    double worst = 0;
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
        for (size_t b = 0; b < sizeof probabilities / sizeof *probabilities; b++)
            for (unsigned k = 0; k <= sizes[a]; k++) {
                unsigned n = sizes[a];
                double p = probabilities[b];
                double got = tm_stat_binomial_log_sf(k, n, p);
                double want = (double)reference_binomial_sf(k, n, (long double)p);
                /* |d ln P| is the relative error of P */
                double error = fabs(got - want);
                if (error > worst) worst = error;
                cr_assert(error <= 1e-10, "n=%u p=%g k=%u: got %.17g want %.17g", n, p, k, got, want);
            }
    cr_log_info("binomial small n: worst relative error %.3g", worst);
}

Test(statistics, binomial_closed_forms_and_edges) {
    assert_near(tm_stat_binomial_log_sf(1000, 1000, 0.5), -1000.0 * log(2.0), 1e-12, "p^n");
    assert_near(tm_stat_binomial_log_sf(999, 1000, 0.5), log(1001.0) - 1000.0 * log(2.0), 1e-12, "(n+1) 2^-n");
    /* Far beyond exp() underflow: 2^-3000 ~ 1e-903. */
    assert_near(tm_stat_binomial_log_sf(3000, 3000, 0.5), -3000.0 * log(2.0), 1e-11, "2^-3000");
    /* Rare events, n = 1e7, p = 1e-9: P(X >= 1) = 1 - (1-p)^n, P(X >= 2) = that - n p (1-p)^(n-1). */
    double n = 1e7, p = 1e-9;
    double none = exp(n * log1p(-p)), one = n * p * exp((n - 1) * log1p(-p));
    assert_near(tm_stat_binomial_log_sf(1, 10000000, p), log(-expm1(n * log1p(-p))), 1e-12, "P(X>=1)");
    assert_near(tm_stat_binomial_log_sf(2, 10000000, p), log(1.0 - none - one), 1e-9, "P(X>=2)");
    cr_assert_eq(tm_stat_binomial_log_sf(0, 10, 0.3), 0.0);
    cr_assert_eq(tm_stat_binomial_log_sf(0, 0, 0.3), 0.0);
    cr_assert(isinf(tm_stat_binomial_log_sf(11, 10, 0.3)) && tm_stat_binomial_log_sf(11, 10, 0.3) < 0);
    cr_assert(isinf(tm_stat_binomial_log_sf(1, 10, 0.0)) && tm_stat_binomial_log_sf(1, 10, 0.0) < 0);
    cr_assert_eq(tm_stat_binomial_log_sf(10, 10, 1.0), 0.0);
    cr_assert(isnan(tm_stat_binomial_log_sf(3, 10, NAN)));
    cr_assert(isnan(tm_stat_binomial_log_sf(3, 10, -0.1)));
    cr_assert(isnan(tm_stat_binomial_log_sf(3, 10, 1.5)));
}

Test(statistics, binomial_large_n_against_long_double_sum) {
    /* n = 1e7, p = 0.25: mean 2.5e6, sd 1369.3. k from the mean to 400 sd. */
    const uint64_t n = 10000000;
    const double offsets[] = {0, 1, 3, 10, 40, 150, 400};
    double worst = 0;
    for (size_t i = 0; i < sizeof offsets / sizeof *offsets; i++) {
        uint64_t k = 2500000 + (uint64_t)(offsets[i] * 1369.306);
        double got = tm_stat_binomial_log_sf(k, n, 0.25);
        double want = (double)reference_binomial_sf_large(k, n, 0.25L);
        double error = fabs(got - want);
        if (error > worst) worst = error;
        cr_assert(error <= 1e-8, "k=%llu: got %.17g want %.17g", (unsigned long long)k, got, want);
    }
    cr_log_info("binomial n=1e7: worst relative error %.3g", worst);
}

Test(statistics, binomial_complement_symmetry) {
    /* P(X >= k; n, p) = 1 - P(X >= n-k+1; n, 1-p): the two sides are computed
     * by different branches (upward sum vs 1 - downward sum). */
    const uint64_t n = 1000000;
    const double p = 0.3, sd = sqrt(1e6 * 0.3 * 0.7);
    for (int z = -3; z <= 3; z++) {
        uint64_t k = (uint64_t)(300000 + z * sd);
        double left = tm_stat_binomial_log_sf(k, n, p);
        double right = tm_stat_binomial_log_sf(n - k + 1, n, 1.0 - p);
        assert_near(exp(left), -expm1(right), 1e-12, "complement");
    }
}

Test(statistics, binomial_monotone_in_k) {
    double previous = 0.0;
    for (uint64_t k = 1; k <= 500; k++) {
        double value = tm_stat_binomial_log_sf(k, 500, 0.3);
        cr_assert(value < previous, "k=%llu: %.17g not below %.17g", (unsigned long long)k, value, previous);
        previous = value;
    }
}

/* ---- gamma ------------------------------------------------------------------ */

Test(statistics, gamma_shape_one_is_exponential) {
    const double xs[] = {1e-6, 1e-3, 0.5, 1.0, 1.9, 2.0, 10.0, 100.0, 700.0, 1e4, 1e6};
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++)
        assert_near(tm_stat_gamma_log_q(1.0, xs[i]), -xs[i], 1e-13 * fmax(1.0, xs[i]), "Q(1,x) = e^-x");
}

Test(statistics, gamma_integer_shape_against_poisson_sum) {
    const unsigned shapes[] = {2, 5, 10, 50, 200, 1000};
    const double ratios[] = {0.01, 0.3, 0.8, 1.0, 1.2, 2.0, 5.0, 12.0}; /* x = ratio * n */
    double worst = 0;
    for (size_t a = 0; a < sizeof shapes / sizeof *shapes; a++)
        for (size_t b = 0; b < sizeof ratios / sizeof *ratios; b++) {
            double x = ratios[b] * shapes[a];
            double got = tm_stat_gamma_log_q(shapes[a], x);
            double want = (double)reference_gamma_q_integer(shapes[a], (long double)x);
            double error = fabs(got - want); /* relative error of Q */
            if (error > worst) worst = error;
            cr_assert(error <= 1e-11 * fmax(1.0, fabs(want) / 100.0), "Q(%u, %g): got %.17g want %.17g", shapes[a],
                      x, got, want);
        }
    cr_log_info("gamma integer shape: worst |d ln Q| %.3g", worst);
}

Test(statistics, gamma_half_integer_shapes_against_erfc) {
    /* Q(1/2, x) = erfc(sqrt x); Q(3/2, x) = erfc(sqrt x) + 2 sqrt(x/pi) e^-x. */
    const double xs[] = {1e-8, 1e-3, 0.1, 0.5, 1.0, 1.4, 1.6, 2.0, 3.0, 10.0, 50.0, 300.0};
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
        double x = xs[i], e = erfc(sqrt(x));
        assert_near(tm_stat_gamma_log_q(0.5, x), log(e), 1e-13 * fmax(1.0, x), "Q(1/2,x)");
        assert_near(tm_stat_gamma_log_q(1.5, x), log(e + 2.0 * sqrt(x / M_PI) * exp(-x)), 1e-13 * fmax(1.0, x),
                    "Q(3/2,x)");
    }
}

Test(statistics, gamma_against_mpmath) {
    /* mpmath 1.3.0, log(gammainc(a, x, inf, regularized=True)) at 30 digits;
     * the last as log1p(-gammainc(a, 0, x, regularized=True)) at 80 digits,
     * since Q = 1 - 1.7e-58 needs more than 30. */
    const struct {
        double a, x, log_q;
    } cases[] = {
        {1e-3, 0.7, -7.891112080956515054154002},
        {1e-8, 0.5, -19.00090361075610920273913},
        {0.3, 1.2, -2.758374708558675714719104},
        {0.3, 50, -53.84785467236663468715343},
        {2.5, 0.1, -0.0008865316418876732528555385},
        {7.3, 40, -23.74175283362803707011768},
        {1e5, 1.1e5, -473.3559336737647671525334},
        {1e5, 0.95e5, -1.710974325086041520894231e-58},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double got = tm_stat_gamma_log_q(cases[i].a, cases[i].x);
        cr_assert(fabs(got - cases[i].log_q) <= 1e-12 * fabs(cases[i].log_q),
                  "Q(%g, %g): got %.17g want %.17g", cases[i].a, cases[i].x, got, cases[i].log_q);
    }
}

Test(statistics, gamma_edges) {
    cr_assert_eq(tm_stat_gamma_log_q(3.0, 0.0), 0.0);
    cr_assert_eq(tm_stat_gamma_log_q(3.0, -1.0), 0.0);
    cr_assert(isinf(tm_stat_gamma_log_q(3.0, INFINITY)) && tm_stat_gamma_log_q(3.0, INFINITY) < 0);
    cr_assert(isnan(tm_stat_gamma_log_q(0.0, 1.0)));
    cr_assert(isnan(tm_stat_gamma_log_q(-2.0, 1.0)));
    cr_assert(isnan(tm_stat_gamma_log_q(2.0, NAN)));
    /* Gumbel score of T = 200 tokens far in the tail stays finite below -700. */
    double far = tm_stat_gamma_log_q(200.0, 2000.0);
    cr_assert(isfinite(far) && far < -1000.0);
}

/* ---- normal ----------------------------------------------------------------- */

Test(statistics, normal_published_values) {
    /* 1 - Phi(3), 1 - Phi(5) (Abramowitz & Stegun 26.2 / any table), and
     * ln(1 - Phi(z)) from mpmath at 30 digits for z past erfc's underflow. */
    cr_assert_float_eq(exp(tm_stat_normal_log_sf(3.0)), 1.3498980316300946e-3, 1e-17);
    cr_assert_float_eq(exp(tm_stat_normal_log_sf(5.0)), 2.866515718791939e-7, 1e-20);
    assert_near(tm_stat_normal_log_sf(40.0), -804.6084420137538, 1e-12, "ln Q(40)");
    assert_near(tm_stat_normal_log_sf(30.0), -454.3212439563431971, 1e-12, "ln Q(30)");
    assert_near(tm_stat_normal_log_sf(37.5), -707.6689893175071911, 1e-12, "ln Q(37.5)");
    assert_near(tm_stat_normal_log_sf(38.5), -745.6952702904110813, 1e-12, "ln Q(38.5)");
    assert_near(tm_stat_normal_log_sf(100.0), -5005.524208694205089, 1e-11, "ln Q(100)");
    assert_near(tm_stat_normal_log_sf(1000.0), -500007.8266948121843, 1e-9, "ln Q(1000)");
    assert_near(tm_stat_normal_log_sf(0.0), -log(2.0), 1e-15, "ln Q(0)");
}

Test(statistics, normal_symmetry_and_continuity) {
    for (double z = 0.25; z < 9.0; z += 0.25) {
        double upper = tm_stat_normal_log_sf(z), lower = tm_stat_normal_log_sf(-z);
        assert_near(exp(lower), -expm1(upper), 1e-15, "Q(-z) = 1 - Q(z)");
    }
    /* The erfc branch and the continued fraction agree at their seam. */
    double below = tm_stat_normal_log_sf(nextafter(30.0, 0.0)), at = tm_stat_normal_log_sf(30.0);
    assert_near(below, at, 1e-12, "seam at 30");
    cr_assert(isinf(tm_stat_normal_log_sf(INFINITY)) && tm_stat_normal_log_sf(INFINITY) < 0);
    cr_assert_eq(tm_stat_normal_log_sf(-INFINITY), 0.0);
    cr_assert(isnan(tm_stat_normal_log_sf(NAN)));
}

Test(statistics, p_from_log_saturates) {
    cr_assert_eq(tm_stat_p_from_log(0.0), 1.0);
    cr_assert_eq(tm_stat_p_from_log(3.0), 1.0);
    cr_assert_float_eq(tm_stat_p_from_log(-1.0), exp(-1.0), 1e-16);
    cr_assert_float_eq(tm_stat_p_from_log(-700.0), exp(-700.0), 1e-310);
    cr_assert_eq(tm_stat_p_from_log(-709.0), 0.0); /* exp would be subnormal */
    cr_assert_eq(tm_stat_p_from_log(-746.0), 0.0);
    cr_assert_eq(tm_stat_p_from_log(-INFINITY), 0.0);
    cr_assert(isnan(tm_stat_p_from_log(NAN)));
}

/* ---- SynthID ---------------------------------------------------------------- */

/* numpy.linspace(10, 1, m) normalised to sum to m, as weighted_mean_score. */
static void reference_synthid_weights(int m, double *weights) {
    double total = 0;
    for (int l = 0; l < m; l++) {
        weights[l] = m == 1 ? 10.0 : (l == m - 1 ? 1.0 : 10.0 + l * (1.0 - 10.0) / (m - 1));
        total += weights[l];
    }
    for (int l = 0; l < m; l++) weights[l] *= m / total;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Every g pattern of T tokens x m layers, scored as weighted_mean_score does;
 * the p-value of each distinct score is the share of patterns scoring at least
 * as high. */
static void check_by_enumeration(int tokens, int m) {
    double weights[32];
    reference_synthid_weights(m, weights);
    int bits = tokens * m;
    size_t patterns = (size_t)1 << bits;
    double *scores = malloc(patterns * sizeof *scores);
    cr_assert_not_null(scores);
    for (size_t pattern = 0; pattern < patterns; pattern++) {
        double sum = 0;
        for (int t = 0; t < tokens; t++)
            for (int l = 0; l < m; l++)
                if (pattern >> (t * m + l) & 1) sum += weights[l];
        scores[pattern] = sum / (m * tokens);
    }
    qsort(scores, patterns, sizeof *scores, compare_doubles);
    size_t checked = 0;
    for (size_t i = 0; i < patterns; i++) {
        if (i > 0 && scores[i] - scores[i - 1] < 1e-9) continue; /* same score, rounded differently */
        bool exact = false;
        double got = tm_stat_synthid_weighted_log_sf(scores[i], (uint64_t)tokens, m, &exact);
        double want = log((double)(patterns - i) / (double)patterns);
        cr_assert(exact);
        cr_assert(fabs(got - want) <= 1e-12, "T=%d m=%d score=%.17g: got %.17g want %.17g", tokens, m, scores[i], got,
                  want);
        checked++;
    }
    cr_assert(checked > 1);
    free(scores);
}

Test(statistics, synthid_matches_enumeration_of_g_patterns) {
    check_by_enumeration(1, 1);
    check_by_enumeration(5, 1);
    check_by_enumeration(3, 2);
    check_by_enumeration(2, 3);
    check_by_enumeration(3, 4); /* weights 10, 7, 4, 1 */
    check_by_enumeration(1, 10);
    check_by_enumeration(1, 12);
    check_by_enumeration(2, 7);
    check_by_enumeration(1, 16);
}

/* ln P(W >= k) for every k, W = sum_l v_l N_l, N_l ~ Bin(T, 1/2), by a
 * long-double layer convolution of binomial pmfs (2^-4000 is still a normal
 * long double). v_l = linspace(10, 1, m) scaled to integers. Returns an array
 * of W_max + 2 logs (index W_max + 1 is -inf); *w_max receives W_max. */
static double *reference_synthid_log_sf(int tokens, int m, uint64_t *w_max) {
    long double weights[64];
    long double scale = m == 1 ? 1.0L : (long double)(m - 1);
    uint64_t total = 0;
    long double smallest = 1e300L;
    for (int l = 0; l < m; l++) {
        weights[l] = m == 1 ? 1.0L : (10.0L - 9.0L * l / (m - 1)) * scale; /* 10(m-1) - 9l */
        if (weights[l] < smallest) smallest = weights[l];
    }
    /* divide by the common factor of the integers (their gcd divides 9) */
    uint64_t divisor = 1;
    for (uint64_t d = 9; d > 1; d--) {
        bool all = true;
        for (int l = 0; l < m; l++)
            if ((uint64_t)llroundl(weights[l]) % d) all = false;
        if (all) {
            divisor = d;
            break;
        }
    }
    uint64_t v[64];
    for (int l = 0; l < m; l++) {
        v[l] = (uint64_t)llroundl(weights[l]) / divisor;
        total += v[l];
    }
    *w_max = total * (uint64_t)tokens;
    size_t size = (size_t)*w_max + 1;
    long double *a = calloc(size, sizeof *a), *b = calloc(size, sizeof *b), *pmf = calloc(tokens + 1, sizeof *pmf);
    cr_assert(a && b && pmf);
    long double coefficient = 1.0L;
    for (int n = 0; n <= tokens; n++) {
        if (n > 0) coefficient = coefficient * (tokens - n + 1) / n;
        pmf[n] = coefficient * powl(0.5L, tokens);
    }
    a[0] = 1.0L;
    uint64_t reach = 0;
    for (int l = 0; l < m; l++) {
        memset(b, 0, size * sizeof *b);
        for (int n = 0; n <= tokens; n++)
            for (uint64_t i = 0; i <= reach; i++) b[i + v[l] * (uint64_t)n] += pmf[n] * a[i];
        reach += v[l] * (uint64_t)tokens;
        long double *swap = a;
        a = b;
        b = swap;
    }
    double *log_sf = malloc((size + 1) * sizeof *log_sf);
    cr_assert_not_null(log_sf);
    long double tail = 0;
    log_sf[size] = -INFINITY;
    for (size_t i = size; i-- > 0;) {
        tail += a[i];
        log_sf[i] = (double)logl(tail);
    }
    free(a);
    free(b);
    free(pmf);
    return log_sf;
}

/* About 120 values of k spread over [0, W_max + 1], plus the ends and the
 * middle, where lattice effects and the symmetric branch live. */
static bool next_k(uint64_t *k, uint64_t w_max) {
    uint64_t stride = 1 + w_max / 120, middle = w_max / 2;
    if (*k < 3 || (*k + 3 >= middle && *k < middle + 3) || *k + 4 > w_max) *k += 1;
    else *k += stride;
    return *k <= w_max + 1;
}

Test(statistics, synthid_exact_far_tail_against_long_double_convolution) {
    const struct {
        int tokens, m;
    } cases[] = {{120, 10}, {40, 4}, {60, 5}, {3, 30}, {20, 30}, {300, 2}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        uint64_t w_max;
        double *want = reference_synthid_log_sf(cases[c].tokens, cases[c].m, &w_max);
        double worst = 0;
        for (uint64_t k = 0; k <= w_max + 1; next_k(&k, w_max)) {
            bool exact = false;
            double score = (double)k / (double)w_max;
            double got = tm_stat_synthid_weighted_log_sf(score, (uint64_t)cases[c].tokens, cases[c].m, &exact);
            cr_assert(exact, "T=%d m=%d should be exact", cases[c].tokens, cases[c].m);
            if (isinf(want[k])) {
                cr_assert(isinf(got) && got < 0);
                continue;
            }
            double error = fabs(got - want[k]);
            if (error > worst) worst = error;
            cr_assert(error <= 1e-11 * fmax(1.0, fabs(want[k]) / 100.0), "T=%d m=%d k=%llu: got %.17g want %.17g",
                      cases[c].tokens, cases[c].m, (unsigned long long)k, got, want[k]);
        }
        cr_log_info("synthid exact T=%d m=%d: worst |d ln p| %.3g, smallest ln p %.1f", cases[c].tokens, cases[c].m,
                    worst, want[w_max]);
        free(want);
    }
}

Test(statistics, synthid_saddle_point_against_long_double_convolution) {
    /* Past the exact method's cost limit near the mean, so the library answers
     * there with Lugannani-Rice (and exactly again in the extreme tail). The
     * bounds are the measured errors (file head) with a margin of ~3. */
    const struct {
        int tokens, m;
    } cases[] = {{60, 30}, {120, 20}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        uint64_t w_max;
        double *want = reference_synthid_log_sf(cases[c].tokens, cases[c].m, &w_max);
        double worst_near = 0, worst_far = 0, deepest = 0;
        size_t saddle = 0;
        /* From below the mean (the 1 - upper-tail branch) up to where the
         * library turns exact again. */
        for (uint64_t k = w_max / 2 - w_max / 40; k <= w_max; k += 1 + w_max / 400) {
            bool exact = true;
            double score = (double)k / (double)w_max;
            double got = tm_stat_synthid_weighted_log_sf(score, (uint64_t)cases[c].tokens, cases[c].m, &exact);
            double error = fabs(got - want[k]);
            if (exact) {
                cr_assert(error <= 1e-11 * fmax(1.0, fabs(want[k]) / 100.0), "exact k=%llu", (unsigned long long)k);
                if (k > w_max / 2) break;
                continue;
            }
            saddle++;
            if (want[k] < deepest) deepest = want[k];
            /* p > 1e-12: relative error 1e-5; deeper: 1e-4 */
            bool near = want[k] > -12.0 * 2.302585;
            if (near && error > worst_near) worst_near = error;
            if (!near && error > worst_far) worst_far = error;
            cr_assert(error <= (near ? 1e-5 : 1e-4), "T=%d m=%d k=%llu: got %.17g want %.17g", cases[c].tokens,
                      cases[c].m, (unsigned long long)k, got, want[k]);
        }
        cr_assert(saddle > 100, "the saddle point answered %zu times", saddle);
        cr_assert(deepest < -300.0, "the comparison reached the far tail");
        cr_log_info("synthid saddle point T=%d m=%d: %zu points, worst |d ln p| %.3g (p > 1e-12), %.3g (down to "
                    "ln p = %.1f)",
                    cases[c].tokens, cases[c].m, saddle, worst_near, worst_far, deepest);
        free(want);
    }
}

Test(statistics, synthid_edges_and_shape) {
    bool exact = false;
    cr_assert_eq(tm_stat_synthid_weighted_log_sf(0.0, 50, 10, &exact), 0.0);
    cr_assert(exact);
    cr_assert_eq(tm_stat_synthid_weighted_log_sf(-0.2, 50, 10, NULL), 0.0);
    cr_assert(isinf(tm_stat_synthid_weighted_log_sf(1.01, 50, 10, NULL)));
    /* every g = 1: 2^-(T m), at any T */
    assert_near(tm_stat_synthid_weighted_log_sf(1.0, 5000, 30, &exact), -5000.0 * 30 * log(2.0), 1e-6, "all ones");
    cr_assert(exact);
    cr_assert_eq(tm_stat_synthid_weighted_log_sf(0.7, 0, 10, &exact), 0.0); /* no tokens, no evidence */
    cr_assert(isnan(tm_stat_synthid_weighted_log_sf(0.7, 10, 0, &exact)));
    cr_assert(!exact);
    cr_assert(isnan(tm_stat_synthid_weighted_log_sf(NAN, 10, 10, &exact)));
    /* m = 1 is a fair-coin binomial at any T */
    assert_near(tm_stat_synthid_weighted_log_sf(0.6, 100000, 1, &exact), tm_stat_binomial_log_sf(60000, 100000, 0.5),
                1e-12, "m = 1");
    cr_assert(exact);

    /* The configurations the detector meets: T = 200 and 2000 at depth 30 use
     * the saddle point; p is 1/2-ish at the mean and falls monotonically. */
    const uint64_t sizes[] = {200, 2000};
    for (size_t s = 0; s < 2; s++) {
        double at_mean = tm_stat_synthid_weighted_log_sf(0.5, sizes[s], 30, &exact);
        cr_assert(!exact);
        cr_assert(fabs(exp(at_mean) - 0.5) < 0.01, "T=%llu: p at the mean %.6g", (unsigned long long)sizes[s],
                  exp(at_mean));
        double previous = 1.0;
        for (double score = 0.3; score <= 0.999; score += 0.002) {
            double value = tm_stat_synthid_weighted_log_sf(score, sizes[s], 30, NULL);
            cr_assert(value <= previous, "T=%llu score %.3f: %.17g above %.17g", (unsigned long long)sizes[s], score,
                      value, previous);
            cr_assert(isfinite(value));
            previous = value;
        }
    }
}

/* Issue 17: the exact tail was made faster (output-stationary convolution,
 * entries below 1e-30 of the peak dropped instead of 1e-100) without changing
 * its values. These are the doubles the earlier code (commit 22d5b90) gave,
 * written as hex floats, on the slow cases the fuzzer found (T = 47, m = 30:
 * about 1e8 multiply-adds each) and others, both tails; the new code must give
 * them bit for bit, and take the exact path where the old one did.
 * tests/fuzz/synthid_compare.sh checks 7,140 more against the old source. */
Test(statistics, synthid_exact_unchanged_by_the_faster_convolution) {
    static const struct {
        uint64_t tokens;
        int32_t m;
        double score, log_p;
        bool exact;
    } cases[] = {
        {47, 30, 0.51, -0x1.62f2c73c680e4p+0, true},   /* -1.386517002341912 */
        {47, 30, 0.55, -0x1.fa56a50b1b91p+2, true},    /* -7.9115383728478861 */
        {47, 30, 0.65, -0x1.bc2b5670c3015p+5, true},   /* -55.521160965872845 */
        {47, 30, 0.8, -0x1.c95d685046e8bp+7, true},    /* -228.68243647447193 */
        {47, 30, 0.935, -0x1.17817ec64ead6p+9, true},  /* -559.01168135492003 */
        {50, 30, 0.6, -0x1.b4f59f40afb52p+4, true},    /* -27.309966328316769 */
        {60, 20, 0.6, -0x1.62f2abedee7a7p+4, true},    /* -22.184245995922222 */
        {500, 10, 0.6, -0x1.4ad0a278e97e1p+6, true},   /* -82.703744782687423 */
        {200, 30, 0.98, -0x1.98dc79902da38p+11, true}, /* -3270.8898392573719 */
        {5, 30, 0.9, -0x1.8f8f538b15933p+5, true},     /* -49.94498356494514 */
        {3, 40, 0.7, -0x1.4bef2cb6b89ep+3, true},      /* -10.372946125867145 */
        {47, 30, 0.45, -0x1.805d09195beb1p-12, true},  /* -0.00036655752190648943: the lower half */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool exact = false;
        double got = tm_stat_synthid_weighted_log_sf(cases[i].score, cases[i].tokens, cases[i].m, &exact);
        cr_assert(exact == cases[i].exact, "T=%llu m=%d score %g: exact %d", (unsigned long long)cases[i].tokens,
                  cases[i].m, cases[i].score, exact);
        cr_assert(memcmp(&got, &cases[i].log_p, sizeof got) == 0, "T=%llu m=%d score %g: %a (%.17g), was %a",
                  (unsigned long long)cases[i].tokens, cases[i].m, cases[i].score, got, got, cases[i].log_p);
    }
}
