/* The compute ceiling of the quantized decode kernels, per instruction-set
 * path: bytes of weights per second that one core's matrix-vector product
 * gets through when the weights sit in its L2 cache, so memory plays no part.
 * Decode reaches the bandwidth bound only when this rate, times the threads,
 * is above the machine's read bandwidth; on a loaded or shared machine it is
 * also the one speed figure that stays readable, because it is the best of
 * the median of many repetitions timed in the thread's own CPU time (time spent waiting
 * for a core is not in it). Also times the single-row AVX2 dot product the
 * AVX2 path used before its multi-row kernels, for the before/after ratio.
 * Prints one JSON line per type and path; never asserts a speed (DESIGN.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../generator/kernels.h"
#include "../generator/quant_dot.h"
#include "tracemark/model.h"

static double thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: bench_quant_kernels [ROWS [REPEATS]]\n"
                        "768-column rows (default 512 rows, 300 repeats) of Q8_0, Q4_0, Q4_K, Q5_K and Q6_K;\n"
                        "prints {\"type\",\"path\",\"gb_s_median\",\"gb_s_best\"} per type and path (thread CPU time).\n");
        return 2;
    }
    int64_t rows = argc > 1 ? atoll(argv[1]) : 512, cols = 768;
    int repeats = argc > 2 ? atoi(argv[2]) : 300;
    if (rows < 1 || rows > 100000 || repeats < 1 || repeats > 100000) {
        fprintf(stderr, "bench_quant_kernels: ROWS 1..100000, REPEATS 1..100000\n");
        return 2;
    }
    static const uint32_t types[] = {TM_GGML_Q8_0, TM_GGML_Q4_0, TM_GGML_Q4_K, TM_GGML_Q5_K, TM_GGML_Q6_K};
    static const char *const names[] = {"Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"};
    static const char *const path_names[] = {"portable", "AVX2", "AVX-VNNI", "AVX512-VNNI"};
    float *x = malloc(sizeof(float) * (size_t)cols), *y = malloc(sizeof(float) * (size_t)rows);
    if (!x || !y) return 1;
    for (int64_t i = 0; i < cols; i++) x[i] = (float)((i * 37 % 101) - 50) * 0.01f;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        size_t row_bytes = tm_quant_row_bytes(types[t], cols), bytes = row_bytes * (size_t)rows;
        uint8_t *w = malloc(bytes);
        void *xq = malloc(tm_kernel_activation_bytes(types[t], cols));
        if (!w || !xq) return 1;
        /* Random bytes with every F16 scale set to 1/64: the speed does not depend on the
         * values, but NaN or infinite scales would make the results meaningless to print. */
        srand(1);
        for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)rand();
        size_t block = tm_quant_row_bytes(types[t], (int64_t)tm_ggml_block_elements(types[t]));
        size_t scale_at = types[t] == TM_GGML_Q6_K ? 208 : 0, scales = types[t] == TM_GGML_Q4_K || types[t] == TM_GGML_Q5_K ? 2 : 1;
        for (size_t b = 0; b < bytes; b += block)
            for (size_t k = 0; k < scales; k++) {
                w[b + scale_at + 2 * k] = 0x00; /* F16 0x2400 = 1/64, little-endian */
                w[b + scale_at + 2 * k + 1] = 0x24;
            }
        tm_kernel_prepare_activations(types[t], x, cols, xq);
        /* Path index TM_QUANT_PATH_COUNT stands for the single-row AVX2 dot product. The
         * paths take turns within each repetition, so that a busy moment of the machine
         * does not fall on one path's repetitions only. */
        double *times[TM_QUANT_PATH_COUNT + 1];
        bool run[TM_QUANT_PATH_COUNT + 1];
        for (int p = 0; p <= TM_QUANT_PATH_COUNT; p++) {
            times[p] = malloc(sizeof(double) * (size_t)repeats);
            if (!times[p]) return 1;
            run[p] = tm_quant_path_supported(p == TM_QUANT_PATH_COUNT ? TM_QUANT_PATH_AVX2 : (tm_quant_path)p);
        }
        for (int r = 0; r < repeats; r++)
            for (int p = 0; p <= TM_QUANT_PATH_COUNT; p++) {
                if (!run[p]) continue;
                bool single = p == TM_QUANT_PATH_COUNT;
                if (!single) tm_quant_force_path((tm_quant_path)p);
                double t0 = thread_seconds();
                if (single)
                    for (int64_t row = 0; row < rows; row++)
                        tm_quant_dot_avx2_row(types[t], w + (size_t)row * row_bytes, xq, cols, &y[row]);
                else
                    tm_quant_matvec_rows(&(tm_tensor){.type = types[t], .data = w, .rows = rows, .cols = cols}, xq, y, 0, rows);
                double elapsed = thread_seconds() - t0;
                tm_quant_force_path(TM_QUANT_PATH_COUNT);
                times[p][r] = elapsed;
            }
        for (int p = 0; p <= TM_QUANT_PATH_COUNT; p++) {
            if (run[p]) {
                qsort(times[p], (size_t)repeats, sizeof(double), compare_doubles);
                double median = times[p][repeats / 2], best = times[p][0];
                printf("{\"bench\":\"quant_kernels\",\"type\":\"%s\",\"path\":\"%s\",\"rows\":%lld,\"cols\":%lld,"
                       "\"weight_bytes\":%zu,\"gb_s_median\":%.2f,\"gb_s_best\":%.2f}\n",
                       names[t], p == TM_QUANT_PATH_COUNT ? "AVX2 single-row (before)" : path_names[p], (long long)rows,
                       (long long)cols, bytes, median > 0 ? (double)bytes / median * 1e-9 : 0.0,
                       best > 0 ? (double)bytes / best * 1e-9 : 0.0);
            }
            free(times[p]);
        }
        free(xq);
        free(w);
    }
    free(y);
    free(x);
    return 0;
}
