/* Detection throughput. Cuts a UTF-8 text file into documents of about
 * DOC_BYTES bytes (on character boundaries), then for each scheme given and
 * each thread count measures (1) tokens/s of tm_detect_tokens on the
 * pre-tokenized documents, the detector's own cost, and (2) MB/s of
 * tm_detect_text end to end (normalise + tokenize + score), with documents
 * spread over threads by OpenMP (the way `tracemark detect --jsonl` spreads
 * lines), plus the normalisation and tokenizer stages alone so that the
 * end-to-end figure can be split into its parts. Each measurement repeats
 * passes over the documents until MIN_SECONDS (1 s, or BENCH_DETECT_SECONDS
 * from the environment) have elapsed. One JSON line per
 * measurement on stdout; nothing is asserted (DESIGN.md: speed is measured
 * here, never asserted in a test). BENCH_DETECT_ONLY=tokens|text|stages in
 * the environment runs one kind of measurement alone, for a profiler.
 * BENCH_DETECT_ONLY=sequential measures, for each EXP-edit/ITS-edit scheme
 * on one thread, tm_detect_tokens with every permutation run (the test as
 * it was before the sequential stop, `--full-permutations`) against the
 * default Besag-Clifford stop, on the same documents, and counts the
 * documents whose decision differs (must be 0) and, among those where the
 * sequential test ran the full set, whose ln p differs in any bit (must be
 * 0). BENCH_DETECT_ONLY=paths measures, for each EXP-edit/ITS-edit scheme on
 * one thread, the exact double path of the permutation test (every key in
 * double, as before the float fast path) against the default path, on
 * 200-token texts chosen by the scheme's own sampler with the benchmark's
 * key (watermarked: every null key runs, the slow case) and on the corpus
 * documents cut to 200 tokens (not watermarked, sequential stop), and counts
 * the texts whose ln p or statistic differs in any bit (must be 0), for each
 * fast kernel: AVX-512 with its coarse tier (the default), AVX-512 on the
 * precise tier alone, AVX2 + FMA. */
#include "../detect/detect_internal.h"
#include "../detect/exp_edit_fast.h"
#include "tracemark/detect.h"
#include "tracemark/generator.h"
#include "tracemark/watermark.h"

#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { DOC_BYTES = 1000 };
static double MIN_SECONDS = 1.0; /* BENCH_DETECT_SECONDS overrides it (benchmarks/run.sh --quick) */

typedef struct {
    const char **text;
    size_t *size;
    int32_t **ids;
    size_t *n_ids;
    size_t n, bytes, tokens;
} documents;

static int fail(const tm_error *err) {
    fprintf(stderr, "bench_detect: %s\n", err->message);
    return 1;
}

/* Cut text into documents of ~DOC_BYTES bytes, ending after a space or newline where one is near. */
static void cut(const char *text, size_t size, documents *docs) {
    size_t capacity = size / DOC_BYTES + 2;
    docs->text = malloc(capacity * sizeof *docs->text);
    docs->size = malloc(capacity * sizeof *docs->size);
    size_t at = 0;
    while (at < size && docs->n < capacity) {
        size_t end = at + DOC_BYTES < size ? at + DOC_BYTES : size;
        size_t back = end;
        while (back > at + DOC_BYTES / 2 && back < size && text[back - 1] != ' ' && text[back - 1] != '\n') back--;
        if (back > at + DOC_BYTES / 2) end = back;
        while (end < size && ((unsigned char)text[end] & 0xC0) == 0x80) end++; /* whole characters */
        docs->text[docs->n] = text + at;
        docs->size[docs->n++] = end - at;
        docs->bytes += end - at;
        at = end;
    }
}

static double now(void) { return omp_get_wtime(); }

/* Pass over documents [0, n) with `threads` threads until MIN_SECONDS: calls
 * work(i) for each; returns seconds and the number of documents done. */
typedef enum { WORK_TOKENS, WORK_TEXT, WORK_NORMALIZE, WORK_TOKENIZE } work_kind;

typedef struct {
    const tm_detector *detector;
    const tm_tokenizer *tokenizer;
    const documents *docs;
    tm_normalize_options normalize;
} work_context;

static size_t do_work(const work_context *c, work_kind kind, size_t i) {
    tm_error err = {0};
    tm_detection d;
    switch (kind) {
    case WORK_TOKENS:
        if (tm_detect_tokens(c->detector, 0, c->docs->ids[i], c->docs->n_ids[i], 0, &d, &err) != TM_OK) return 0;
        return c->docs->n_ids[i];
    case WORK_TEXT:
        if (tm_detect_text(c->detector, c->docs->text[i], c->docs->size[i], NULL, &d, &err) != TM_OK) return 0;
        return c->docs->size[i];
    case WORK_NORMALIZE: {
        char *out = NULL;
        size_t out_size = 0, *offsets = NULL;
        if (tm_text_normalize(c->docs->text[i], c->docs->size[i], &c->normalize, &out, &out_size, &offsets, &err) != TM_OK)
            return 0;
        free(out);
        free(offsets);
        return c->docs->size[i];
    }
    case WORK_TOKENIZE: {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tm_tokenizer_encode(c->tokenizer, c->docs->text[i], c->docs->size[i], false, &ids, &n, &err) != TM_OK)
            return 0;
        free(ids);
        return c->docs->size[i];
    }
    }
    return 0;
}

/* Units (tokens or bytes) per second; *units_done and *docs_done report the totals. */
static double measure(const work_context *c, work_kind kind, int threads, size_t *units_done, size_t *docs_done) {
    size_t units = 0, done = 0, next = 0, n = c->docs->n;
    /* Batches start at one document per thread and double up to 32 per thread, so that a
     * slow scheme (EXP-edit's alignment test takes ~1 s a document) stops near MIN_SECONDS
     * instead of after 32 documents per thread. */
    enum { MAX_BATCH = 32 };
    size_t batch = 1;
    double start = now(), elapsed = 0;
    while (elapsed < MIN_SECONDS) {
        size_t batch_units = 0, size = batch * (size_t)threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(+ : batch_units)
        for (size_t b = 0; b < size; b++) batch_units += do_work(c, kind, (next + b) % n);
        units += batch_units;
        done += size;
        next = (next + size) % n;
        if (batch < MAX_BATCH) batch *= 2;
        elapsed = now() - start;
    }
    *units_done = units;
    *docs_done = done;
    return (double)units / elapsed;
}

/* Full permutation set against the sequential stop, one thread, the first
 * `limit` documents: one JSON line with both rates and the differences. */
static int compare_sequential(const tm_tokenizer *tokenizer, const tm_wm_config *config, const tm_wm_key *key,
                              const documents *docs, const char *file) {
    tm_error err = {0};
    tm_detector *full = NULL, *sequential = NULL;
    tm_detect_options options;
    tm_detect_options_default(&options);
    const tm_wm_key *keys[1] = {key};
    if (tm_detector_create(&sequential, tokenizer, config, keys, 1, &options, &err)) return fail(&err);
    options.sequential = false;
    if (tm_detector_create(&full, tokenizer, config, keys, 1, &options, &err)) return fail(&err);
    size_t limit = docs->n < 40 ? docs->n : 40, tokens = 0, decisions_differ = 0, full_sets = 0, p_differ = 0,
           permutations_full = 0, permutations_sequential = 0;
    tm_detection *a = malloc(limit * sizeof *a), *b = malloc(limit * sizeof *b);
    double t0 = now();
    for (size_t i = 0; i < limit; i++) {
        if (tm_detect_tokens(full, 0, docs->ids[i], docs->n_ids[i], 0, &a[i], &err)) return fail(&err);
        tokens += docs->n_ids[i];
        permutations_full += a[i].permutations_done;
    }
    double t_full = now() - t0;
    t0 = now();
    for (size_t i = 0; i < limit; i++) {
        if (tm_detect_tokens(sequential, 0, docs->ids[i], docs->n_ids[i], 0, &b[i], &err)) return fail(&err);
        permutations_sequential += b[i].permutations_done;
    }
    double t_sequential = now() - t0;
    for (size_t i = 0; i < limit; i++) {
        decisions_differ += a[i].detected != b[i].detected;
        if (!b[i].p_sequential) {
            full_sets++;
            p_differ += memcmp(&a[i].log_p, &b[i].log_p, sizeof(double)) != 0 || a[i].statistic != b[i].statistic;
        }
    }
    printf("{\"bench\":\"exp_edit_sequential\",\"config\":\"%s\",\"threads\":1,\"documents\":%zu,\"tokens\":%zu,"
           "\"full_docs_per_s\":%.3f,\"sequential_docs_per_s\":%.3f,\"speedup\":%.1f,\"permutations_full\":%zu,"
           "\"permutations_sequential\":%zu,\"decisions_differ\":%zu,\"full_sets\":%zu,\"p_differ_on_full_sets\":%zu}\n",
           file, limit, tokens, (double)limit / t_full, (double)limit / t_sequential, t_full / t_sequential,
           permutations_full, permutations_sequential, decisions_differ, full_sets, p_differ);
    fflush(stdout);
    free(a);
    free(b);
    tm_detector_free(full);
    tm_detector_free(sequential);
    return decisions_differ || p_differ ? 1 : 0;
}

/* 200 tokens from the scheme's own sampler over random next-token
 * distributions (50 candidates of 512 ids, logits 2 N(0, 1)). */
static void watermarked_text(tm_wm_scheme *scheme, uint64_t seed, int32_t *out, size_t m) {
    tm_sampler *sampler = tm_wm_sampler(scheme, seed);
    uint64_t x = seed * 2654435761u + 1;
    tm_token_data storage[50];
    for (size_t t = 0; t < m; t++) {
        for (size_t i = 0; i < 50; i++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            int32_t id = (int32_t)((x >> 33) % 512);
            x = x * 6364136223846793005u + 1442695040888963407u;
            double u1 = ((double)(x >> 11) + 0.5) * 0x1.0p-53;
            x = x * 6364136223846793005u + 1442695040888963407u;
            double u2 = ((double)(x >> 11) + 0.5) * 0x1.0p-53;
            storage[i] = (tm_token_data){id, (float)(2.0 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)), 0.0f};
        }
        tm_candidates candidates = {storage, 50, false, -1}; /* repeated ids only merge probability */
        sampler->interface->apply(sampler, &candidates);
        out[t] = candidates.selected >= 0 ? candidates.selected : 0;
        sampler->interface->accept(sampler, out[t]);
    }
    tm_sampler_free(sampler);
}

/* This thread's CPU time: the paths comparison runs on a shared, loaded
 * machine, where wall time measures the other sessions as much as the code. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Exact path against each fast kernel that runs here (AVX-512, AVX2) on the
 * same texts, by CPU time: one JSON line per kernel and kind of text. */
static int compare_paths(const tm_wm_config *config, const tm_wm_key *key, const documents *docs, const char *file) {
    enum { M = 200, TEXTS = 12 };
    tm_error err = {0};
    tm_wm_scheme *scheme = NULL;
    if (tm_wm_scheme_create(&scheme, config, key, &err)) return fail(&err);
    tm_detect_options options;
    tm_detect_options_default(&options);
    int status = 0;
    /* AVX-512 with its coarse tier (what AUTO runs), AVX-512 on the precise
     * tier alone, AVX2 + FMA; watermarked texts, then corpus documents. */
    static const tm_exp_edit_path paths[3] = {TM_EXP_EDIT_PATH_AVX512, TM_EXP_EDIT_PATH_AVX512_PRECISE,
                                              TM_EXP_EDIT_PATH_AVX2};
    static const char *const names[3] = {"avx512", "avx512-precise", "avx2"};
    for (int run = 0; run < 6; run++) {
        int kind = run / 3, variant = run % 3;
        tm_exp_edit_path fast_path = paths[variant];
        if (!tm_exp_edit_fast_runs(variant == 2 ? TM_EXP_EDIT_KERNEL_AVX2 : TM_EXP_EDIT_KERNEL_AVX512)) continue;
        size_t n_texts = kind == 0 ? TEXTS : (docs->n < 40 ? docs->n : 40);
        int32_t(*texts)[M] = malloc(n_texts * sizeof *texts);
        size_t *lengths = malloc(n_texts * sizeof *lengths);
        for (size_t i = 0; i < n_texts; i++) {
            if (kind == 0) {
                watermarked_text(scheme, 1000 + i, texts[i], M);
                lengths[i] = M;
            } else {
                lengths[i] = docs->n_ids[i] < M ? docs->n_ids[i] : M;
                memcpy(texts[i], docs->ids[i], lengths[i] * sizeof(int32_t));
            }
        }
        tm_detection *a = malloc(n_texts * sizeof *a), *b = malloc(n_texts * sizeof *b);
        tm_exp_edit_path_stats sa, sb;
        size_t recomputed = 0, fast = 0, coarse = 0, refined = 0, detected = 0, differ = 0;
        /* Interleaved text by text, so that the load of a shared machine falls on both alike. */
        double t_exact = 0, t_fast = 0;
        for (size_t i = 0; i < n_texts; i++) {
            double t0 = cpu_now();
            if (tm_detect_exp_edit_path(scheme, texts[i], lengths[i], &options, 1, TM_EXP_EDIT_PATH_EXACT, &sa, &a[i],
                                        &err))
                return fail(&err);
            double t1 = cpu_now();
            if (tm_detect_exp_edit_path(scheme, texts[i], lengths[i], &options, 1, fast_path, &sb, &b[i], &err))
                return fail(&err);
            t_fast += cpu_now() - t1;
            t_exact += t1 - t0;
            recomputed += sb.recomputed;
            fast += sb.fast;
            coarse += sb.coarse;
            refined += sb.refined;
        }
        for (size_t i = 0; i < n_texts; i++) {
            differ += memcmp(&a[i].log_p, &b[i].log_p, sizeof(double)) != 0 ||
                      memcmp(&a[i].statistic, &b[i].statistic, sizeof(double)) != 0 ||
                      a[i].permutations_done != b[i].permutations_done;
            detected += a[i].log_p <= log(options.fpr) + 1e-9;
        }
        printf("{\"bench\":\"exp_edit_paths\",\"config\":\"%s\",\"kernel\":\"%s\",\"texts\":\"%s\",\"threads\":1,"
               "\"time\":\"thread CPU\",\"documents\":%zu,"
               "\"tokens_each\":%d,\"detected\":%zu,\"exact_docs_per_s\":%.3f,\"fast_docs_per_s\":%.3f,\"speedup\":%.1f,"
               "\"null_keys_fast\":%zu,\"null_keys_coarse\":%zu,\"batches_refined\":%zu,\"null_keys_recomputed\":%zu,"
               "\"p_or_statistic_differ\":%zu}\n",
               file, names[variant], kind == 0 ? "watermarked" : "corpus", n_texts, M, detected,
               (double)n_texts / t_exact, (double)n_texts / t_fast, t_exact / t_fast, fast, coarse, refined, recomputed,
               differ);
        fflush(stdout);
        status |= differ != 0;
        free(a);
        free(b);
        free(texts);
        free(lengths);
    }
    tm_wm_scheme_free(scheme);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 5 || !strcmp(argv[1], "--help")) {
        fprintf(stderr,
                "usage: bench_detect TOKENIZER TEXT_FILE THREADS[,THREADS...] SCHEME.yaml...\n"
                "Cuts TEXT_FILE into ~%d-byte documents and prints one JSON line per measurement:\n"
                "tm_detect_tokens tokens/s (pre-tokenized), tm_detect_text MB/s (end to end), and the\n"
                "normalisation and tokenizer stages alone, for each scheme and thread count.\n",
                DOC_BYTES);
        return 2;
    }
    tm_error err = {0};
    tm_tokenizer *tokenizer = NULL;
    char *text = NULL;
    size_t size = 0;
    tm_wm_key *key = NULL;
    if (tm_tokenizer_load(&tokenizer, argv[1], &err) || tm_read_file(argv[2], &text, &size, &err) ||
        tm_wm_key_generate(&key, &err))
        return fail(&err);
    if (!tm_utf8_valid(text, size)) {
        fprintf(stderr, "bench_detect: %s is not valid UTF-8\n", argv[2]);
        return 1;
    }
    int thread_counts[16], n_threads = 0;
    for (char *p = argv[3]; *p && n_threads < 16;) {
        thread_counts[n_threads++] = (int)strtol(p, &p, 10);
        if (*p == ',') p++;
    }
    documents docs = {0};
    cut(text, size, &docs);
    docs.ids = malloc(docs.n * sizeof *docs.ids);
    docs.n_ids = malloc(docs.n * sizeof *docs.n_ids);
    tm_normalize_options normalize;
    tm_normalize_options_default(&normalize);
    for (size_t i = 0; i < docs.n; i++) { /* tokenized as tm_detect_text would: normalised first */
        char *normalized = NULL;
        size_t normalized_size = 0;
        if (tm_text_normalize(docs.text[i], docs.size[i], &normalize, &normalized, &normalized_size, NULL, &err) ||
            tm_tokenizer_encode(tokenizer, normalized, normalized_size, false, &docs.ids[i], &docs.n_ids[i], &err))
            return fail(&err);
        docs.tokens += docs.n_ids[i];
        free(normalized);
    }
    printf("{\"bench\":\"corpus\",\"file\":\"%s\",\"documents\":%zu,\"bytes\":%zu,\"tokens\":%zu,\"tokenizer_vocab\":%d}\n",
           argv[2], docs.n, docs.bytes, docs.tokens, tm_tokenizer_vocab_size(tokenizer));

    const char *seconds = getenv("BENCH_DETECT_SECONDS");
    if (seconds && atof(seconds) > 0) MIN_SECONDS = atof(seconds);
    const char *only = getenv("BENCH_DETECT_ONLY");
    bool run_stages = !only || !strcmp(only, "stages"), run_tokens = !only || !strcmp(only, "tokens"),
         run_text = !only || !strcmp(only, "text");
    if (only && !strcmp(only, "paths")) {
        int status = 0;
        for (int s = 4; s < argc; s++) {
            tm_wm_config config;
            if (tm_wm_config_load(&config, argv[s], &err)) return fail(&err);
            if (config.kind != TM_WM_EXP_EDIT) continue;
            const char *file = strrchr(argv[s], '/') ? strrchr(argv[s], '/') + 1 : argv[s];
            status |= compare_paths(&config, key, &docs, file);
        }
        return status;
    }
    if (only && !strcmp(only, "sequential")) {
        int status = 0;
        for (int s = 4; s < argc; s++) {
            tm_wm_config config;
            if (tm_wm_config_load(&config, argv[s], &err)) return fail(&err);
            if (config.kind != TM_WM_EXP_EDIT) continue;
            const char *file = strrchr(argv[s], '/') ? strrchr(argv[s], '/') + 1 : argv[s];
            status |= compare_sequential(tokenizer, &config, key, &docs, file);
        }
        return status;
    }
    work_context base = {.tokenizer = tokenizer, .docs = &docs, .normalize = normalize};
    for (int t = 0; run_stages && t < n_threads; t++) {
        size_t units, done;
        double rate = measure(&base, WORK_NORMALIZE, thread_counts[t], &units, &done);
        printf("{\"bench\":\"normalize\",\"threads\":%d,\"documents\":%zu,\"mb_per_s\":%.2f}\n", thread_counts[t], done,
               rate / 1e6);
        rate = measure(&base, WORK_TOKENIZE, thread_counts[t], &units, &done);
        printf("{\"bench\":\"tokenize\",\"threads\":%d,\"documents\":%zu,\"mb_per_s\":%.2f}\n", thread_counts[t], done,
               rate / 1e6);
        fflush(stdout);
    }
    for (int s = 4; s < argc; s++) {
        tm_wm_config config;
        tm_detect_options options;
        tm_detect_options_default(&options);
        tm_detector *detector = NULL;
        const tm_wm_key *keys[1] = {key};
        if (tm_wm_config_load(&config, argv[s], &err) ||
            tm_detector_create(&detector, tokenizer, &config, keys, 1, &options, &err))
            return fail(&err);
        char parameters[256];
        tm_wm_config_describe(&config, parameters, sizeof parameters);
        work_context c = base;
        c.detector = detector;
        const char *file = strrchr(argv[s], '/') ? strrchr(argv[s], '/') + 1 : argv[s];
        for (int t = 0; t < n_threads; t++) {
            int threads = thread_counts[t];
            size_t units, done;
            if (run_tokens) {
                double rate = measure(&c, WORK_TOKENS, threads, &units, &done);
                printf("{\"bench\":\"detect_tokens\",\"config\":\"%s\",\"scheme\":\"%s\",\"parameters\":\"%s\",\"threads\":%d,"
                       "\"documents\":%zu,\"tokens\":%zu,\"tokens_per_s\":%.0f,\"tokens_per_s_per_thread\":%.0f}\n",
                       file, tm_wm_kind_name(config.kind), parameters, threads, done, units, rate, rate / threads);
                fflush(stdout);
            }
            if (run_text) {
                double rate = measure(&c, WORK_TEXT, threads, &units, &done);
                printf("{\"bench\":\"detect_text\",\"config\":\"%s\",\"scheme\":\"%s\",\"parameters\":\"%s\",\"threads\":%d,"
                       "\"documents\":%zu,\"bytes\":%zu,\"mb_per_s\":%.3f,\"mb_per_s_per_thread\":%.3f}\n",
                       file, tm_wm_kind_name(config.kind), parameters, threads, done, units, rate / 1e6,
                       rate / 1e6 / threads);
                fflush(stdout);
            }
        }
        tm_detector_free(detector);
    }
    for (size_t i = 0; i < docs.n; i++) free(docs.ids[i]);
    free(docs.ids);
    free(docs.n_ids);
    free(docs.text);
    free(docs.size);
    free(text);
    tm_wm_key_free(key);
    tm_tokenizer_free(tokenizer);
    return 0;
}
