/* Null-hypothesis tail probabilities for the detectors, all as natural logs so
 * that a p-value of 1e-300 or 1e-3000 keeps its digits after exp() would have
 * underflowed: the binomial upper tail (KGW/Unigram green counts), the
 * regularized upper incomplete gamma Q(a, x) (Gumbel/Aaronson score
 * S ~ Gamma(T, 1)), the standard normal upper tail, and the exact tail of the
 * SynthID weighted mean score. Hand-written because these tails are the
 * product; only libm is used (lgamma_r, log1p, expm1, erfc). Every function
 * returns a value for every input: NaN for meaningless arguments (negative
 * probabilities, a <= 0, no layers), never a print, an abort or an allocation
 * the caller has to free. It must never round a tiny tail to 0 in log space.
 *
 * Methods. Binomial: the log pmf at the boundary term by Loader's saddle-point
 * form (C. Loader, "Fast and accurate computation of binomial probabilities",
 * 2000: Stirling-series error + deviance bd0, so that n = 1e7 keeps ~1e-14
 * relative accuracy where differences of lgamma lose ~1e-8), then the tail
 * summed from the boundary away from the mode with term ratios until a
 * geometric bound says the rest is below 1e-17 of the sum; the side holding the
 * mode is 1 - (other side) via log1p. Gamma: Numerical Recipes' series (x <
 * a+1, Q = 1 - P by log1p, P <= 0.87 there when a >= 1) and modified-Lentz
 * continued fraction (x >= a+1), with the prefactor x^a e^-x / Gamma(a+1) again
 * in Loader's form; for a < 1 in the series region Q is formed directly as
 * (1 - x^a/Gamma(a+1)) + x^a/Gamma(a+1) * a * sum (-1)^(n+1) x^n/((a+n) n!)
 * (DiDonato & Morris 1986), which keeps Q ~ a*E1(x) accurate as a -> 0.
 * Normal: erfc below z = 30, above it ln phi(z) + ln R(z) with the Mills ratio
 * R from its continued fraction (erfc(z/sqrt 2) underflows near z = 38.5).
 *
 * SynthID weights. google-deepmind/synthid-text `weighted_mean_score`
 * (src/synthid_text/detector_mean.py; the same code in MarkLLM's SynthID port)
 * uses weights = linspace(10, 1, num=m), rescaled to sum to m, and
 * score = sum_t sum_l w_l g_{t,l} / (m T) = sum w g / (T sum w). They are
 * linear from 10 down to 1 for every depth m, not m..1 (the two agree only at
 * m = 10). Multiplied by (m-1) they are the integers 10(m-1) - 9(l-1); divided
 * by their gcd, gcd(9, m-1), they give the integer weights v_l used here
 * (m = 1: v = 1), so the score is W / (T V) with W = sum v_l g an integer and
 * V = sum v_l = 11 m (m-1) / (2 gcd). Under the null W = sum_l v_l N_l with
 * N_l ~ Binomial(T, 1/2) independent, symmetric about T V / 2.
 *
 * SynthID exact tail. W's pmf is built layer by layer (T+1 atoms spaced v_l
 * apart per layer, smallest weights first) under an exponential tilt
 * exp(theta W - K(theta)) with K'(theta) at the observed value, so the doubles
 * that matter sit near 1/sd instead of 1e-300; the tilt is an identity, undone
 * exactly in log space. Sums of positive terms only: relative error ~1e-12
 * (measured against an independent long-double convolution in the tests).
 * Entries below 1e-30 of the peak (binomial atoms and partial sums) are
 * dropped, which keeps only a window of the support, about 23.5 sd wide, in
 * memory and in the work. The tail read lies within a few sd of the tilted
 * peak, where entries are within a few orders of the peak, so what is dropped
 * is far below a double's rounding of them. (It was 1e-100, a 43 sd window:
 * 1e-20, 1e-30 and 1e-40 give the same doubles as 1e-100 on 7,140 (m, T,
 * score) cases, extreme tails included, tests/fuzz/synthid_compare.sh; 1e-30
 * does 1.7x fewer multiply-adds at T = 47, m = 30.) Each layer is summed output-stationary (synthid_convolve). The
 * decision exact or saddle point is unchanged: the cost at the query's tilt is
 * estimated first for the 1e-100 window (0.25-0.4 ns per unit measured) and
 * capped at 1e8 multiply-adds, ~35 ms at -O2 before, about half that now
 * (issue 17: the fuzzer found 47-token texts near that cap taking 0.6 s on a
 * loaded machine; 1.6-2.2x faster at T = 47, m = 30, measured side by side);
 * a run that overshoots twice that stops. So: every score exact for m = 10 up to T ~ 3000
 * and m = 30 up to T ~ 50; beyond, exact only in the extreme tail where the
 * tilted spread is narrow (m = 30: score >= 0.975 at T = 200, >= 0.998 at
 * T = 2000) and m = 1 (a plain binomial) at any T. Elsewhere: the
 * Lugannani-Rice saddle-point approximation with Daniels' second continuity
 * correction for a lattice variable (solve K'(theta) = k - 1/2,
 * u = 2 sinh(theta/2) sqrt K''), K(theta) = T sum_l ln((1 + e^(theta v_l))/2),
 * centred on the mean to avoid cancellation. Its relative error in p,
 * measured against the exact method over every score where the library uses
 * it: m = 30, T = 60: <= 1.3e-6 for p > 1e-12, <= 2.1e-5 down to p ~ 1e-145;
 * m = 20, T = 120: <= 7.5e-7 and <= 1.5e-5 (to 1e-178); m = 30, T = 200:
 * <= 1.2e-7 for p > 1e-12, <= 7.7e-5 down to ln p = -3019; m = 30, T = 2000:
 * 1.9e-9 at p ~ 1e-18, 1.5e-5 at ln p = -35860. (Small T, where it is worse,
 * up to 5% at m = 30, T = 10, is always exact.) *exact says which was used.
 * Time at m = 30: the saddle point ~10-30 us; T = 200 worst 35 ms (exact at
 * score 0.98), T = 2000 worst 35 ms (exact at score 0.9965). */
#include "tracemark/detect.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN_SQRT_2PI 0.91893853320467274178032973640562 /* ln sqrt(2 pi) */
#define LN_2PI 1.8378770664093454835606594728112
#define LN_2 0.69314718055994530941723212145818

/* ---- shared pieces --------------------------------------------------------- */

/* ln n! - [(n + 1/2) ln n - n + ln sqrt(2 pi)], Stirling's error, n > 0. */
static double stirling_error(double n) {
    int sign;
    if (n <= 15.0) return lgamma_r(n + 1.0, &sign) - (n + 0.5) * log(n) + n - LN_SQRT_2PI;
    const double s0 = 1.0 / 12, s1 = 1.0 / 360, s2 = 1.0 / 1260, s3 = 1.0 / 1680, s4 = 1.0 / 1188;
    double nn = n * n;
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n;
}

/* Deviance x ln(x / mean) + mean - x, without the cancellation when x ~ mean. */
static double deviance(double x, double mean) {
    if (fabs(x - mean) < 0.1 * (x + mean)) {
        double v = (x - mean) / (x + mean), s = (x - mean) * v, term = 2.0 * x * v;
        for (int j = 1; j < 1000; j++) {
            term *= v * v;
            double next = s + term / (2 * j + 1);
            if (next == s) return next;
            s = next;
        }
        return s;
    }
    return x * log(x / mean) + mean - x;
}

/* ln C(n,k) p^k q^(n-k), q = 1 - p supplied by the caller (more accurate when
 * p is near 1); 0 < p < 1. */
static double binomial_log_pmf(double k, double n, double p, double q) {
    if (k == 0) return n * log(q);
    if (k == n) return n * log(p);
    double core = stirling_error(n) - stirling_error(k) - stirling_error(n - k) - deviance(k, n * p) -
                  deviance(n - k, n * q);
    return core + 0.5 * (log(n) - LN_2PI - log(k) - log(n - k));
}

/* ln (x^a e^-x / Gamma(a + 1)), a > 0, x > 0 (a Poisson pmf at real a). */
static double poisson_log_pmf(double a, double x) {
    return -stirling_error(a) - deviance(a, x) - 0.5 * (LN_2PI + log(a));
}

/* ---- binomial ------------------------------------------------------------- */

double tm_stat_binomial_log_sf(uint64_t k, uint64_t n, double p) {
    if (isnan(p) || p < 0.0 || p > 1.0) return NAN;
    if (k == 0) return 0.0;
    if (k > n) return -INFINITY;
    if (p == 0.0) return -INFINITY;
    if (p == 1.0) return 0.0;
    double q = 1.0 - p, nd = (double)n, ratio_pq = p / q;
    const double tiny = 1e-17;
    if ((double)k >= nd * p) {
        /* Upper tail from k upward: term ratios (n-j)/(j+1) p/q fall below 1. */
        double sum = 1.0, term = 1.0;
        for (uint64_t j = k; j < n; j++) {
            double r = (double)(n - j) / (double)(j + 1) * ratio_pq;
            term *= r;
            sum += term;
            if (r < 1.0 && term * r < tiny * sum * (1.0 - r)) break;
        }
        return binomial_log_pmf((double)k, nd, p, q) + log(sum);
    }
    /* k below the mean: P(X >= k) = 1 - P(X <= k-1), the lower tail summed
     * from k-1 downward with ratios j/(n-j+1) q/p < 1. */
    uint64_t top = k - 1;
    double sum = 1.0, term = 1.0, ratio_qp = q / p;
    for (uint64_t j = top; j > 0; j--) {
        double r = (double)j / (double)(n - j + 1) * ratio_qp;
        term *= r;
        sum += term;
        if (r < 1.0 && term * r < tiny * sum * (1.0 - r)) break;
    }
    double lower = exp(binomial_log_pmf((double)top, nd, p, q)) * sum;
    return log1p(-lower);
}

/* ---- gamma ------------------------------------------------------------------ */

/* ln Gamma(1 + a) without forming 1 + a, which would cost the digits of a
 * small a: -gamma a + sum_{k>=2} zeta(k) (-a)^k / k (Abramowitz & Stegun
 * 6.1.33), 25 terms reaching 1e-17 for |a| < 0.2. */
static double log_gamma_one_plus(double a) {
    static const double zeta[] = {
        1.6449340668482264365, 1.2020569031595942854, 1.0823232337111381915, 1.0369277551433699263,
        1.0173430619844491397, 1.0083492773819228268, 1.0040773561979443394, 1.0020083928260822144,
        1.0009945751278180853, 1.0004941886041194646, 1.0002460865533080483, 1.0001227133475784891,
        1.0000612481350587048, 1.0000305882363070205, 1.0000152822594086519, 1.0000076371976378998,
        1.0000038172932649998, 1.0000019082127165539, 1.0000009539620338728, 1.0000004769329867878,
        1.0000002384505027277, 1.0000001192199259653, 1.0000000596081890513, 1.0000000298035035147,
    }; /* zeta(2) .. zeta(25) */
    const double euler_gamma = 0.5772156649015328606065;
    int sign;
    if (fabs(a) >= 0.2) return lgamma_r(1.0 + a, &sign); /* lgamma() writes the global signgam */
    double sum = 0, power = -a;
    for (int k = 2; k <= 25; k++) {
        power *= -a;
        sum += zeta[k - 2] * power / k;
    }
    return -euler_gamma * a + sum;
}

/* Q(a, x) for 0 < a < 1, 0 < x < a + 1 (so x < 2), formed directly. */
static double gamma_q_small_a(double a, double x) {
    double log_lead = a * log(x) - log_gamma_one_plus(a); /* ln x^a / Gamma(a+1) */
    double first = -expm1(log_lead);
    double sum = 0.0, power = 1.0;
    for (int n = 1; n < 200; n++) {
        power *= x / n; /* x^n / n! */
        double term = power / (a + n);
        sum += (n & 1) ? term : -term;
        if (term < 1e-18 * fabs(sum)) break;
    }
    return first + exp(log_lead) * a * sum;
}

double tm_stat_gamma_log_q(double a, double x) {
    if (isnan(a) || isnan(x) || !(a > 0.0) || isinf(a)) return NAN;
    if (x <= 0.0) return 0.0;
    if (isinf(x)) return -INFINITY;
    if (x < a + 1.0) {
        if (a < 1.0) return log(gamma_q_small_a(a, x));
        /* P = x^a e^-x / Gamma(a+1) * sum_n x^n / ((a+1)...(a+n)). */
        double sum = 1.0, term = 1.0, ap = a;
        for (int n = 0; n < 100000000; n++) {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if (term < sum * 1e-17) break;
        }
        double lower = exp(poisson_log_pmf(a, x) + log(sum));
        return log1p(-lower);
    }
    /* Q = x^a e^-x / Gamma(a) * 1/(x+1-a- 1(1-a)/(x+3-a- 2(2-a)/(x+5-a- ...))),
     * modified Lentz. */
    const double floor_value = 1e-300;
    double b = x + 1.0 - a, c = 1.0 / floor_value, d = 1.0 / b, h = d;
    for (int i = 1; i < 100000000; i++) {
        double an = -i * (i - a);
        b += 2.0;
        d = an * d + b;
        if (fabs(d) < floor_value) d = floor_value;
        c = b + an / c;
        if (fabs(c) < floor_value) c = floor_value;
        d = 1.0 / d;
        double delta = d * c;
        h *= delta;
        if (fabs(delta - 1.0) < 1e-16) break;
    }
    return log(a) + poisson_log_pmf(a, x) + log(h);
}

/* ---- normal ----------------------------------------------------------------- */

/* 1 / (w + 2/(w + 3/(w + ...))) for w >= 2 by backward recurrence (200 terms
 * reach double precision at w = 2, faster above). */
static double mills_tail_fraction(double w) {
    double f = w;
    for (int n = 200; n >= 2; n--) f = w + n / f;
    return f;
}

/* Mills ratio R(w) = P(Z >= w) / phi(w), w >= 2. */
static double mills_ratio(double w) { return 1.0 / (w + 1.0 / mills_tail_fraction(w)); }

/* R(w) - 1/w for w > 0, without the cancellation for large w. */
static double mills_ratio_minus_inverse(double w) {
    if (w < 2.0) return 0.5 * erfc(w / sqrt(2.0)) * exp(0.5 * w * w + LN_SQRT_2PI) - 1.0 / w;
    double e = mills_tail_fraction(w), denominator = w + 1.0 / e;
    return -(1.0 / e) / (w * denominator);
}

double tm_stat_normal_log_sf(double z) {
    if (isnan(z)) return NAN;
    if (isinf(z)) return z > 0 ? -INFINITY : 0.0;
    if (z < -1.0) return log1p(-0.5 * erfc(-z / sqrt(2.0)));
    if (z < 30.0) return log(0.5 * erfc(z / sqrt(2.0)));
    return -0.5 * z * z - LN_SQRT_2PI + log(mills_ratio(z));
}

double tm_stat_p_from_log(double log_p) {
    if (isnan(log_p)) return NAN;
    if (log_p >= 0.0) return 1.0;
    double p = exp(log_p);
    return p < DBL_MIN ? 0.0 : p; /* below ln DBL_MIN ~ -708.4 exp() is subnormal */
}

/* ---- SynthID weighted mean -------------------------------------------------- */

enum { SYNTHID_MAX_LAYERS = 1 << 20 };
#ifndef SYNTHID_EXACT_COST_LIMIT /* overridable only to measure the saddle point */
#define SYNTHID_EXACT_COST_LIMIT 1e8  /* multiply-adds, ~30 ms at 0.3 ns each */
#endif
#define SYNTHID_MAX_SUPPORT 4503599627370496.0 /* 2^52: W stays an exact double */
#define SYNTHID_DROP 1e-30 /* entries below this share of the peak are dropped (see the top) */

typedef struct {
    const double *v; /* integer layer weights, as doubles */
    int32_t m;
    double tokens;
} synthid_model;

static int32_t gcd_int(int32_t a, int32_t b) {
    while (b) {
        int32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* logistic(x) and 1 - logistic(x) without overflow */
static double logistic(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

/* ln cosh y, accurate for small and large |y| */
static double log_cosh(double y) {
    y = fabs(y);
    if (y < 1.0) {
        double s = sinh(0.5 * y);
        return log1p(2.0 * s * s); /* cosh y - 1 = 2 sinh^2(y/2) */
    }
    return y + log1p(exp(-2.0 * y)) - LN_2;
}

/* The null cumulant generating function of W centred at its mean mu:
 * c0 = K(theta) - theta mu = T sum ln cosh(theta v / 2),
 * c1 = K'(theta) - mu = T sum (v/2) tanh(theta v / 2), c2 = K''(theta).
 * Centring keeps theta t - K(theta) free of cancellation near the mean. */
static void synthid_cgf(const synthid_model *model, double theta, double *c0, double *c1, double *c2) {
    double s0 = 0, s1 = 0, s2 = 0;
    /* Only the sums asked for: the libm calls are most of the tilt search,
     * which wants c1 and c2 but never c0 (each sum alone is unchanged). */
    bool want0 = c0 != NULL, want12 = c1 != NULL || c2 != NULL;
    for (int32_t l = 0; l < model->m; l++) {
        double half = 0.5 * model->v[l], y = theta * half;
        if (want0) s0 += log_cosh(y);
        if (want12) {
            double t = tanh(y);
            s1 += half * t;
            s2 += half * half * (1.0 - t) * (1.0 + t); /* v^2 q (1-q) = (v/2)^2 sech^2 */
        }
    }
    if (c0) *c0 = model->tokens * s0;
    if (c1) *c1 = model->tokens * s1;
    if (c2) *c2 = model->tokens * s2;
}

/* theta >= 0 with K'(theta) - mu = excess, for 0 <= excess < W_max - mu. */
static double synthid_solve_tilt(const synthid_model *model, double excess) {
    double lo = 0.0, hi = 1.0 / model->v[0], c1, c2;
    if (excess <= 0) return 0.0;
    for (int i = 0; i < 2000; i++) {
        synthid_cgf(model, hi, NULL, &c1, NULL);
        if (c1 > excess) break;
        lo = hi;
        hi *= 2.0;
    }
    double theta = 0.5 * (lo + hi);
    for (int i = 0; i < 300; i++) {
        synthid_cgf(model, theta, NULL, &c1, &c2);
        double gap = c1 - excess;
        if (gap > 0) hi = theta;
        else lo = theta;
        double next = c2 > 0 ? theta - gap / c2 : 0.5 * (lo + hi);
        if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
        if (fabs(next - theta) <= 1e-15 * fabs(theta) || hi - lo <= 1e-15 * hi) return next;
        theta = next;
    }
    return theta;
}

/* ln P(W >= k) by Lugannani-Rice with the second continuity correction,
 * for mean < k - 1/2 and k <= W_max - 1. */
static double synthid_saddle_point_log_sf(const synthid_model *model, double k, double mean) {
    double excess = k - 0.5 - mean;
    double theta = synthid_solve_tilt(model, excess), c0, c2;
    synthid_cgf(model, theta, &c0, NULL, &c2);
    double w2 = 2.0 * (theta * excess - c0);
    double w = w2 > 0 ? sqrt(w2) : 0.0;
    if (w < 1e-6) {
        /* At the mean the formula is 0/0; W is symmetric, so the
         * continuity-corrected normal is right to O(w). */
        synthid_cgf(model, 0.0, NULL, NULL, &c2);
        return tm_stat_normal_log_sf(excess / sqrt(c2));
    }
    double u = 2.0 * sinh(0.5 * theta) * sqrt(c2);
    double bracket = mills_ratio_minus_inverse(w) + 1.0 / u;
    if (!(bracket > 0)) return tm_stat_normal_log_sf(w); /* first-order fallback, never seen */
    return -0.5 * w2 - LN_SQRT_2PI + log(bracket);
}

/* Multiply-adds the exact method is expected to spend at tilt theta, layers
 * smallest weight first: each layer costs (width of the partial sum kept) x
 * (binomial atoms kept), entries above 1e-100 of the peak lying within about
 * 21.5 sd of it (measured 0.25-0.4 ns per unit at -O2). Skewed layers (far
 * tails) can keep more than the normal shape says; the run itself stops at
 * twice the limit and hands over to the saddle point. */
static double synthid_exact_cost(const synthid_model *model, double theta) {
    double cost = 0, reach = 0, spread = 0, variance = 0, tokens = model->tokens;
    for (int32_t l = model->m - 1; l >= 0; l--) {
        double v = model->v[l], q = logistic(theta * v), layer_variance = tokens * q * logistic(-theta * v);
        double atoms = fmin(tokens + 1, 43.0 * sqrt(layer_variance) + 1);
        double width = fmin(fmin(tokens * reach, spread) + 1, 43.0 * sqrt(variance) + 1);
        cost += width * atoms;
        reach += v;
        spread += v * (atoms - 1);
        variance += v * v * layer_variance;
    }
    return cost;
}

/* out[i] = sum over t of weight[t] * a[i - step t] (the terms with
 * 0 <= i - step t < width), for i < out_width = width + step (atoms - 1):
 * one layer of the convolution. Output-stationary: a block of outputs is
 * summed in a local accumulator (registers and L1) over every atom, in
 * increasing t, then stored once. The naive order (for each atom, add
 * weight x a into the whole output) reads and writes the whole output,
 * megabytes at T ~ 50 and m = 30, once per atom; this one writes it once.
 * Every output gets the same products added in the same order starting
 * from 0, so the sums are bit for bit those of the naive loop. */
enum { SYNTHID_BLOCK = 32 };
static void synthid_convolve(const double *restrict a, size_t width, const double *restrict weight, size_t atoms,
                             size_t step, double *restrict out, size_t out_width) {
    for (size_t i0 = 0; i0 < out_width; i0 += SYNTHID_BLOCK) {
        size_t count = out_width - i0 < SYNTHID_BLOCK ? out_width - i0 : SYNTHID_BLOCK;
        double acc[SYNTHID_BLOCK] = {0};
        /* Atoms reaching some output of the block: step t <= i0 + count - 1
         * and i0 - step t < width. */
        size_t t_last = (i0 + count - 1) / step, t_first = i0 >= width ? (i0 - width) / step + 1 : 0;
        if (t_last > atoms - 1) t_last = atoms - 1;
        for (size_t t = t_first; t <= t_last; t++) {
            double w = weight[t];
            size_t shift = step * t; /* a index of output i: i - shift */
            if (count == SYNTHID_BLOCK && shift <= i0 && i0 - shift + SYNTHID_BLOCK <= width) {
                const double *row = a + (i0 - shift);
                for (size_t k = 0; k < SYNTHID_BLOCK; k++) acc[k] += w * row[k];
            } else {
                for (size_t k = 0; k < count; k++) {
                    size_t i = i0 + k;
                    if (i >= shift && i - shift < width) acc[k] += w * a[i - shift];
                }
            }
        }
        memcpy(out + i0, acc, count * sizeof *acc);
    }
}

/* Exact ln P(W >= k) for mean < k < W_max by tilted layer convolution over
 * a sliding window of the support. Returns false (nothing computed) when
 * memory is short or the work would pass `budget` multiply-adds. */
static bool synthid_exact_log_sf(const synthid_model *model, double mean, uint64_t k, double theta, double budget,
                                 double *out) {
    size_t tokens = (size_t)model->tokens, capacity_a = 1, capacity_b = 0;
    double *pmf = malloc((tokens + 1) * sizeof *pmf), *a = malloc(sizeof *a), *b = NULL;
    bool ok = pmf && a;
    /* a[j] is the tilted pmf at lo + j, times exp(-log_scale) */
    size_t lo = 0, width = 1;
    double log_scale = 0, work = 0;
    if (ok) a[0] = 1.0;
    /* Smallest weights first: the partial sums stay narrow longest. */
    for (int32_t l = model->m - 1; ok && l >= 0; l--) {
        double v = model->v[l], x = theta * v, q = logistic(x), one_minus_q = logistic(-x);
        size_t step = (size_t)v;
        /* Binomial(T, q) relative to its mode, by term ratios outward. */
        size_t mode = (size_t)floor((double)(tokens + 1) * q);
        if (mode > tokens) mode = tokens;
        log_scale += binomial_log_pmf((double)mode, (double)tokens, q, one_minus_q);
        pmf[mode] = 1.0;
        size_t n_lo = mode, n_hi = mode;
        while (n_hi < tokens && pmf[n_hi] >= SYNTHID_DROP) {
            pmf[n_hi + 1] = pmf[n_hi] * (double)(tokens - n_hi) / (double)(n_hi + 1) * (q / one_minus_q);
            n_hi++;
        }
        while (n_lo > 0 && pmf[n_lo] >= SYNTHID_DROP) {
            pmf[n_lo - 1] = pmf[n_lo] * (double)n_lo / (double)(tokens - n_lo + 1) * (one_minus_q / q);
            n_lo--;
        }
        size_t atoms = n_hi - n_lo + 1, new_width = width + step * (atoms - 1);
        work += (double)width * (double)atoms;
        if (work > budget) {
            ok = false;
            break;
        }
        if (new_width > capacity_b) {
            double *grown = realloc(b, new_width * sizeof *b);
            if (!grown) {
                ok = false;
                break;
            }
            b = grown;
            capacity_b = new_width;
        }
        synthid_convolve(a, width, pmf + n_lo, atoms, step, b, new_width);
        /* Trim to within SYNTHID_DROP of the peak and rescale the peak to 1. */
        double peak = 0;
        for (size_t j = 0; j < new_width; j++)
            if (b[j] > peak) peak = b[j];
        size_t first = 0, last = new_width - 1;
        while (b[first] < SYNTHID_DROP * peak) first++;
        while (b[last] < SYNTHID_DROP * peak) last--;
        lo += step * n_lo + first;
        width = last - first + 1;
        for (size_t j = 0; j < width; j++) b[j] = b[first + j] / peak;
        log_scale += log(peak);
        double *swap = a;
        size_t swap_capacity = capacity_a;
        a = b;
        capacity_a = capacity_b;
        b = swap;
        capacity_b = swap_capacity;
    }
    if (ok) {
        double tail = 0;
        for (size_t j = width; j-- > 0;) {
            size_t position = lo + j;
            if (position < k) break;
            tail += a[j] * exp(-theta * ((double)position - (double)k));
        }
        double c0;
        synthid_cgf(model, theta, &c0, NULL, NULL);
        *out = tail > 0 ? log_scale + c0 - theta * ((double)k - mean) + log(tail) : -INFINITY;
    }
    free(a);
    free(b);
    free(pmf);
    return ok;
}

double tm_stat_synthid_weight(int32_t layer, int32_t layers) {
    return layers == 1 ? 1.0 : 10.0 - 9.0 * (double)layer / (double)(layers - 1);
}

double tm_stat_synthid_weighted_log_sf(double score, uint64_t n_tokens, int32_t layers, bool *exact) {
    if (exact) *exact = false;
    if (isnan(score) || layers < 1 || layers > SYNTHID_MAX_LAYERS) return NAN;
    if (n_tokens == 0) {
        if (exact) *exact = true; /* no evidence: p = 1 */
        return 0.0;
    }
    /* Integer weights: linspace(10, 1, m) * (m-1) / gcd(9, m-1). */
    int32_t m = layers, divisor = m > 1 ? gcd_int(9, m - 1) : 1;
    double *v = malloc((size_t)m * sizeof *v);
    if (!v) return NAN;
    double total_weight = 0;
    for (int32_t l = 0; l < m; l++) {
        /* w_l (m - 1) is the integer 10 (m - 1) - 9 l to within rounding. */
        v[l] = m == 1 ? 1.0 : (double)(llround(tm_stat_synthid_weight(l, m) * (double)(m - 1)) / divisor);
        total_weight += v[l];
    }
    double w_max_d = (double)n_tokens * total_weight;
    if (!(w_max_d < SYNTHID_MAX_SUPPORT)) {
        free(v);
        return NAN;
    }
    uint64_t w_max = (uint64_t)w_max_d;
    /* W = score * T * V is an integer; forgive the caller's rounding. */
    double k_real = score * w_max_d, tolerance = fmin(0.25, 1e-9 * (fabs(k_real) + 1.0));
    double result;
    bool is_exact = true;
    if (k_real - tolerance <= 0) {
        result = 0.0;
    } else if (k_real - tolerance > w_max_d) {
        result = -INFINITY;
    } else {
        uint64_t k = (uint64_t)ceil(k_real - tolerance);
        double mean = 0.5 * w_max_d;
        synthid_model model = {v, m, (double)n_tokens};
        if (m == 1) {
            result = tm_stat_binomial_log_sf(k, n_tokens, 0.5);
        } else if (k == w_max) {
            result = -(double)n_tokens * m * LN_2; /* every g = 1 */
        } else if ((double)k - 0.5 == mean) {
            result = -LN_2; /* symmetric about the mean */
        } else {
            /* Work in the upper half: P(W >= k) = 1 - P(W >= W_max - k + 1). */
            bool upper = (double)k > mean;
            uint64_t k_upper = upper ? k : w_max - k + 1;
            double tail;
            if (k_upper == w_max) {
                tail = -(double)n_tokens * m * LN_2;
            } else {
                double theta = synthid_solve_tilt(&model, (double)k_upper - mean);
                is_exact = synthid_exact_cost(&model, theta) <= SYNTHID_EXACT_COST_LIMIT &&
                           synthid_exact_log_sf(&model, mean, k_upper, theta, 2 * SYNTHID_EXACT_COST_LIMIT, &tail);
                if (!is_exact) tail = synthid_saddle_point_log_sf(&model, (double)k_upper, mean);
            }
            result = upper ? tail : log1p(-exp(tail));
        }
    }
    free(v);
    if (exact) *exact = is_exact;
    return result;
}
