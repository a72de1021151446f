/* The decode batch's products alone: tm_batch_matvec over 64 MB of Q4_K or
 * Q6_K matrices (2048 x 768, the 110M model's feed-forward shape, random
 * quants with unit block scales), for 1..8 sequences, so that the weights
 * come from memory as in a decode step (the model's 72 MB do not fit the
 * L3). Prints, per sequence count, the best of 15 passes by this thread's
 * CPU clock and the weight bytes per second that makes: where one sequence
 * and n sequences take the same time, the products are bound by memory;
 * where the time grows with n, by the instructions per sequence. One
 * thread; the data are synthetic and the results are only timed, never
 * checked (tests/test_batch.c checks them). Never asserts a speed.
 * Usage: bench_batch_kernels [q4_k|q6_k] [COUNTS...] */
#include "../generator/batch.h"
#include "../generator/quant_dot.h"
#include "tracemark/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ROWS = 2048, COLS = 768, PASSES = 15, MAX_SEQUENCES = 8 };

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || (strcmp(argv[1], "q4_k") && strcmp(argv[1], "q6_k")))) {
        fprintf(stderr, "usage: bench_batch_kernels [q4_k|q6_k] [COUNTS...]  (counts 1..%d; default 1 2 4 8)\n",
                MAX_SEQUENCES);
        return 2;
    }
    bool q6 = argc > 1 && !strcmp(argv[1], "q6_k");
    uint32_t type = q6 ? TM_GGML_Q6_K : TM_GGML_Q4_K;
    int counts[16] = {1, 2, 4, 8}, n_counts = 4;
    if (argc > 2) {
        n_counts = 0;
        for (int i = 2; i < argc && n_counts < 16; i++) {
            int n = atoi(argv[i]);
            if (n < 1 || n > MAX_SEQUENCES) {
                fprintf(stderr, "bench_batch_kernels: sequence count '%s' is not 1..%d\n", argv[i], MAX_SEQUENCES);
                return 2;
            }
            counts[n_counts++] = n;
        }
    }
    size_t row_bytes = tm_quant_row_bytes(type, COLS), matrix = row_bytes * ROWS;
    size_t block = q6 ? TM_Q6_K_BYTES : TM_Q4_K_BYTES, n_matrices = ((size_t)64 << 20) / matrix;
    uint8_t *weights = malloc(matrix * n_matrices);
    float *x = malloc(sizeof(float) * COLS * MAX_SEQUENCES), *y = malloc(sizeof(float) * ROWS * MAX_SEQUENCES);
    size_t stride = COLS * sizeof(float); /* prepared activations never take more */
    char *prepared = malloc(stride * MAX_SEQUENCES);
    if (!weights || !x || !y || !prepared) {
        fprintf(stderr, "bench_batch_kernels: out of memory\n");
        return 1;
    }
    uint64_t state = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < matrix * n_matrices; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        weights[i] = (uint8_t)state;
    }
    /* unit block scales (F16 1.0), so that no block holds an infinity or a NaN */
    for (size_t b = 0; b < matrix * n_matrices / block; b++) {
        uint8_t *p = weights + b * block + (q6 ? 208 : 0);
        p[0] = 0x00, p[1] = 0x3c;
        if (!q6) p[2] = 0x00, p[3] = 0x3c;
    }
    for (int i = 0; i < COLS * MAX_SEQUENCES; i++) x[i] = (float)((i * 37) % 1000 - 500) / 100.0f;
    for (int v = 0; v < MAX_SEQUENCES; v++) tm_quant_quantize_activations(type, x + v * COLS, prepared + v * stride, COLS);
    printf("%s, %zu matrices of %d x %d (%.1f MB), one thread, best of %d:\n", q6 ? "Q6_K" : "Q4_K", n_matrices,
           ROWS, COLS, (double)(matrix * n_matrices) / 1e6, PASSES);
    volatile float sink = 0;
    for (int c = 0; c < n_counts; c++) {
        double best = 1e30;
        for (int pass = 0; pass < PASSES; pass++) {
            double t0 = cpu_seconds();
            for (size_t m = 0; m < n_matrices; m++) {
                tm_tensor w = {.type = type, .data = weights + m * matrix, .rows = ROWS, .cols = COLS};
                tm_batch_matvec(&w, prepared, stride, y, ROWS, counts[c], 1);
                sink += y[m % ROWS];
            }
            double t = cpu_seconds() - t0;
            if (t < best) best = t;
        }
        printf("{\"type\": \"%s\", \"sequences\": %d, \"ms\": %.3f, \"weight_gb_per_s\": %.2f}\n", q6 ? "q6_k" : "q4_k",
               counts[c], best * 1e3, (double)(matrix * n_matrices) / best / 1e9);
    }
    (void)sink;
    free(prepared), free(y), free(x), free(weights);
    return 0;
}
