/* Compares two builds of detect/statistics.c's SynthID weighted tail (issue
 * 17): `before` and `after`, the same source at two revisions linked into one
 * program under two names (tests/fuzz/synthid_compare.sh builds it). Checks
 * that they give the same doubles (and the same exact/saddle-point choice)
 * on a grid of (layers m, tokens T, score) including both extreme tails,
 * reports the largest relative difference in p, then times both, alternating
 * in one process, on the slow cases the fuzzer found (T = 47, m = 30) and on
 * others. A measuring tool, not part of the library; it prints. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double before_sf(double score, uint64_t n_tokens, int32_t layers, bool *exact);
double after_sf(double score, uint64_t n_tokens, int32_t layers, bool *exact);

static long total, differ, flag_differ;
static double worst;

static void compare(double score, int tokens, int m) {
    bool e1 = false, e2 = false;
    double r1 = before_sf(score, (uint64_t)tokens, m, &e1), r2 = after_sf(score, (uint64_t)tokens, m, &e2);
    total++;
    if (e1 != e2) flag_differ++;
    if (memcmp(&r1, &r2, sizeof r1) == 0) return;
    differ++;
    double relative = isfinite(r1) && isfinite(r2) ? fabs(expm1(r2 - r1)) : INFINITY;
    if (relative > worst) worst = relative;
    printf("differ: m=%d T=%d score=%.17g before %.17g after %.17g (relative %.3g in p)\n", m, tokens, score, r1, r2,
           relative);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    int repeats = argc > 1 ? atoi(argv[1]) : 5;
    static const int layers[] = {2, 3, 5, 10, 20, 30, 40}, tokens[] = {1, 2, 3, 5, 10, 20, 47, 60, 100, 200};
    for (size_t a = 0; a < sizeof layers / sizeof *layers; a++)
        for (size_t c = 0; c < sizeof tokens / sizeof *tokens; c++) {
            int m = layers[a], t = tokens[c], x = 9, y = m - 1;
            while (y) {
                int r = x % y;
                x = y;
                y = r;
            }
            double w_max = t * (11.0 * m * (m - 1) / (2.0 * x)); /* T V, V the integer weights' sum */
            for (int i = 0; i <= 40; i++) compare(0.5 + 0.5 * i / 40.0, t, m);
            for (int i = 0; i <= 10; i++) compare(0.3 * i / 10.0, t, m);
            for (int j = 1; j <= 40; j++) compare((w_max - j) / w_max, t, m);     /* the far upper tail */
            for (int j = 1; j <= 10; j++) compare((w_max / 2 + j) / w_max, t, m); /* just above the mean */
        }
    printf("%ld cases: %ld not bit-identical, %ld exact/saddle-point choices differ, largest relative difference in "
           "p %.3g\n",
           total, differ, flag_differ, worst);

    static const struct {
        int tokens, m;
        double score;
    } timed[] = {{47, 30, 0.51}, {47, 30, 0.55}, {47, 30, 0.65}, {47, 30, 0.8}, {50, 30, 0.6},
                 {60, 20, 0.6}, {500, 10, 0.6}, {200, 30, 0.98}};
    printf("| T | m | score | before (ms per call) | after (ms per call) | ratio |\n|---|---|---|---|---|---|\n");
    double sum_before = 0, sum_after = 0;
    for (size_t i = 0; i < sizeof timed / sizeof *timed; i++) {
        double tb = 0, ta = 0;
        for (int r = 0; r < repeats; r++) { /* alternating, so that load changes hit both */
            double t0 = now();
            (void)before_sf(timed[i].score, (uint64_t)timed[i].tokens, timed[i].m, NULL);
            double t1 = now();
            (void)after_sf(timed[i].score, (uint64_t)timed[i].tokens, timed[i].m, NULL);
            double t2 = now();
            tb += t1 - t0;
            ta += t2 - t1;
        }
        sum_before += tb;
        sum_after += ta;
        printf("| %d | %d | %g | %.1f | %.1f | %.2fx |\n", timed[i].tokens, timed[i].m, timed[i].score,
               1e3 * tb / repeats, 1e3 * ta / repeats, tb / ta);
    }
    printf("all timed cases: before %.3f s, after %.3f s (%.2fx)\n", sum_before, sum_after, sum_before / sum_after);
    return differ == 0 && flag_differ == 0 ? 0 : 1;
}
