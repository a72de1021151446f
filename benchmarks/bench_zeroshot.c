/* Zero-shot detection throughput: texts/s and tokens/s of each method
 * (tm_zeroshot_score_ids) on texts of N tokens, and beside it the forward
 * pass's prompt path on the same ids (one batched tm_context_eval per text,
 * which returns only the last position's logits): the speed an all-positions
 * batch API in generator/ would approach, since the zero-shot room must run
 * one position at a time through the public API to see every distribution.
 * One JSON line per measurement on stdout; nothing is asserted.
 *
 * usage: bench_zeroshot MODEL [PERFORMER] [--tokens N] [--texts K] [--threads T] */
#include "tracemark/generator.h"
#include "tracemark/zeroshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const tm_error *err) {
    fprintf(stderr, "bench_zeroshot: %s\n", err->message);
    return 1;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *performer_path = NULL;
    int tokens = 200, texts = 3, threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--texts") && i + 1 < argc) texts = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!model_path) model_path = argv[i];
        else if (!performer_path) performer_path = argv[i];
        else {
            fprintf(stderr, "usage: bench_zeroshot MODEL [PERFORMER] [--tokens N] [--texts K] [--threads T]\n");
            return 2;
        }
    }
    if (!model_path || tokens < 2 || texts < 1 || threads < 1) {
        fprintf(stderr, "usage: bench_zeroshot MODEL [PERFORMER] [--tokens N] [--texts K] [--threads T]\n");
        return 2;
    }
    tm_error err = {0};
    tm_model *model = NULL, *performer = NULL;
    if (tm_model_load(&model, model_path, &err) != TM_OK) return fail(&err);
    if (performer_path && tm_model_load(&performer, performer_path, &err) != TM_OK) return fail(&err);
    if (tokens > tm_model_get_config(model)->context_length) tokens = tm_model_get_config(model)->context_length;
    /* Pseudo-random ids (BOS first), the same for every method. */
    int32_t *ids = malloc(sizeof *ids * (size_t)tokens * (size_t)texts);
    uint64_t state = 1;
    for (int t = 0; t < texts; t++)
        for (int i = 0; i < tokens; i++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            ids[t * tokens + i] = i == 0 ? 1 : (int32_t)(3 + (state >> 33) % (uint64_t)(tm_model_get_config(model)->n_vocab - 3));
        }
    tm_context *context = NULL;
    if (tm_context_create(&context, model, tokens, threads, &err) != TM_OK) return fail(&err);
    double t0 = tm_seconds_now();
    for (int t = 0; t < texts; t++) {
        const float *logits;
        tm_context_reset(context);
        if (tm_context_eval(context, ids + t * tokens, (size_t)tokens, &logits, &err) != TM_OK) return fail(&err);
    }
    double prompt_seconds = tm_seconds_now() - t0;
    printf("{\"bench\":\"zeroshot\",\"path\":\"prompt batch (last logits only)\",\"model\":\"%s\",\"tokens\":%d,"
           "\"texts\":%d,\"threads\":%d,\"texts_per_s\":%.3f,\"tokens_per_s\":%.1f}\n",
           tm_model_get_config(model)->name, tokens, texts, threads, texts / prompt_seconds, texts * tokens / prompt_seconds);
    fflush(stdout);
    tm_context_free(context);
    for (int m = 0; m < TM_ZEROSHOT_METHOD_COUNT; m++) {
        if (m == TM_ZEROSHOT_BINOCULARS && !performer) continue;
        tm_zeroshot_options o = {.method = (tm_zeroshot_method)m, .model = model, .performer = performer,
                                 .n_ctx = tokens, .n_threads = threads};
        tm_zeroshot *z = NULL;
        if (tm_zeroshot_create(&z, &o, &err) != TM_OK) return fail(&err);
        double start = tm_seconds_now();
        for (int t = 0; t < texts; t++) {
            tm_zeroshot_result r;
            if (tm_zeroshot_score_ids(z, ids + t * tokens, (size_t)tokens, &r, &err) != TM_OK) return fail(&err);
            tm_zeroshot_result_free(&r);
        }
        double seconds = tm_seconds_now() - start;
        printf("{\"bench\":\"zeroshot\",\"path\":\"%s (one position at a time)\",\"model\":\"%s\",\"tokens\":%d,"
               "\"texts\":%d,\"threads\":%d,\"texts_per_s\":%.3f,\"tokens_per_s\":%.1f}\n",
               tm_zeroshot_method_name((tm_zeroshot_method)m), tm_model_get_config(model)->name, tokens, texts, threads,
               texts / seconds, texts * tokens / seconds);
        fflush(stdout);
        tm_zeroshot_free(z);
    }
    free(ids);
    tm_model_free(model);
    tm_model_free(performer);
    return 0;
}
