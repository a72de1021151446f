/* Memory read bandwidth, the ceiling of a memory-bound decode step: each
 * thread streams its share of a buffer much larger than the last-level cache
 * (2 GiB by default: an EPYC's L3 may hold hundreds of MiB) and sums it, the
 * way a matrix-vector product streams its weights. Also names the OpenBLAS
 * core and build the engine runs on, so that benchmarks/run.sh can describe
 * the machine. Prints one JSON line per thread count; never asserts a speed
 * (DESIGN.md: speed is measured here, never asserted in a test). */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* From OpenBLAS's own header; declared here so the benchmark needs no cblas include path. */
char *openblas_get_corename(void);
char *openblas_get_config(void);

enum { PASSES = 7 };

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Four independent accumulators so that the loads, not an add chain, set the pace. */
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a = _mm256_add_epi64(a, _mm256_load_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_load_si256((const __m256i *)(p + i + 4)));
        c = _mm256_add_epi64(c, _mm256_load_si256((const __m256i *)(p + i + 8)));
        d = _mm256_add_epi64(d, _mm256_load_si256((const __m256i *)(p + i + 12)));
    }
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, a);
    uint64_t s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; i < n; i++) s += p[i];
    return s;
}

static uint64_t sum_portable(const uint64_t *p, size_t n) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a += p[i];
        b += p[i + 1];
        c += p[i + 2];
        d += p[i + 3];
    }
    for (; i < n; i++) a += p[i];
    return a + b + c + d;
}

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc > 3 || (argc > 1 && !strcmp(argv[1], "--help"))) {
        fprintf(stderr, "usage: bench_bandwidth [MIB] [THREADS[,THREADS...]]   (default 2048 MiB, threads 1,2)\n"
                        "Prints {\"bench\":\"openblas\",...} and one {\"bench\":\"bandwidth\",\"threads\",\"gb_s_best\","
                        "\"gb_s_median\",\"gb_s_cpu_median\"} line per thread count (GB = 1e9 bytes; best and median of %d passes).\n",
                PASSES);
        return 2;
    }
    long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 2048;
    if (mib < 1 || mib > (1L << 20)) {
        fprintf(stderr, "bench_bandwidth: MIB must be between 1 and 1048576\n");
        return 2;
    }
    int thread_counts[16], n_threads = 0;
    const char *list = argc > 2 ? argv[2] : "1,2";
    for (char *p = (char *)list; *p && n_threads < 16;) {
        long t = strtol(p, &p, 10);
        if (t < 1 || t > 1024 || (*p && *p != ',')) {
            fprintf(stderr, "bench_bandwidth: bad thread list '%s'\n", list);
            return 2;
        }
        thread_counts[n_threads++] = (int)t;
        if (*p == ',') p++;
    }
    printf("{\"bench\":\"openblas\",\"corename\":\"%s\",\"config\":\"%s\"}\n", openblas_get_corename(),
           openblas_get_config());
    fflush(stdout);

    size_t bytes = (size_t)mib << 20, n = bytes / sizeof(uint64_t);
    uint64_t *buffer = aligned_alloc(64, bytes);
    if (!buffer) {
        fprintf(stderr, "bench_bandwidth: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    madvise(buffer, bytes, MADV_HUGEPAGE); /* fewer page faults and TLB misses; a hint, failure is harmless */
    int max_threads = 1;
    for (int t = 0; t < n_threads; t++)
        if (thread_counts[t] > max_threads) max_threads = thread_counts[t];
    /* Touch every page with the threads that will read it (first touch places pages on their node). */
#pragma omp parallel for num_threads(max_threads) schedule(static)
    for (size_t i = 0; i < n; i++) buffer[i] = i;

    int avx2 = __builtin_cpu_supports("avx2");
    volatile uint64_t sink = 0; /* keeps the sums alive */
    for (int t = 0; t < n_threads; t++) {
        int threads = thread_counts[t];
        double rates[PASSES], cpu_rates[PASSES];
        for (int pass = -1; pass < PASSES; pass++) { /* pass -1 warms up the thread pool */
            uint64_t total = 0;
            double t0 = omp_get_wtime(), c0 = cpu_seconds();
#pragma omp parallel num_threads(threads) reduction(+ : total)
            {
                int id = omp_get_thread_num(), count = omp_get_num_threads();
                size_t chunk = (n / (size_t)count) & ~(size_t)15, start = chunk * (size_t)id;
                size_t length = id == count - 1 ? n - start : chunk;
                total += avx2 ? sum_avx2(buffer + start, length) : sum_portable(buffer + start, length);
            }
            double seconds = omp_get_wtime() - t0, cpu = cpu_seconds() - c0;
            sink += total;
            if (pass >= 0) {
                rates[pass] = (double)bytes / seconds / 1e9;
                /* what the threads read per second they actually ran: on a loaded machine
                 * the wall-clock rate counts the time they waited for a core */
                cpu_rates[pass] = cpu > 0 ? (double)bytes * threads / cpu / 1e9 : 0;
            }
        }
        qsort(rates, PASSES, sizeof(double), compare_doubles);
        qsort(cpu_rates, PASSES, sizeof(double), compare_doubles);
        printf("{\"bench\":\"bandwidth\",\"bytes\":%zu,\"threads\":%d,\"kernel\":\"%s\",\"gb_s_best\":%.2f,"
               "\"gb_s_median\":%.2f,\"gb_s_cpu_median\":%.2f}\n",
               bytes, threads, avx2 ? "avx2" : "portable", rates[PASSES - 1], rates[PASSES / 2], cpu_rates[PASSES / 2]);
        fflush(stdout);
    }
    (void)sink;
    free(buffer);
    return 0;
}
