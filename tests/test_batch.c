/* tm_context_eval_batch, the decode step of continuous batching: several
 * sequences at different positions go through one pass and must get the
 * logits that each would get alone from tm_context_eval (up to the rounding
 * of the batched product), for float weights (sgemm) and for Q4_K weights
 * (the 8-bit-activation batched product); a batch of one is the single
 * path bit for bit, and bad batches are refused before anything runs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "../generator/batch.h"
#include "../generator/quant_dot.h"
#include "../model/quantize.h"
#include "row_groups.h"

enum { SEQUENCES = 8, STEPS = 7 };

/* Prompts of different lengths, so that every sequence sits at its own position. */
static const int32_t prompts[SEQUENCES][9] = {{1, 403, 407, 261, 378, 432, 383, 286, 261},
                                              {1, 376, 298},
                                              {1, 315, 261, 376, 298, 315},
                                              {1},
                                              {1, 286, 261, 403},
                                              {1, 432, 383, 286, 261, 378, 407},
                                              {1, 298, 315, 261, 376},
                                              {1, 407, 261}};
static const size_t prompt_sizes[SEQUENCES] = {9, 3, 6, 1, 4, 7, 5, 3};
/* Each step batches the first few sequences: every size, odd and even, up to 8. */
static const int step_sizes[STEPS] = {4, 8, 3, 5, 2, 7, 6};

/* Run the same token streams batched and alone, with KV caches of the given
 * type; return the largest logit difference. */
static double batched_against_single(const tm_model *model, int32_t n_vocab, tm_kv_type kv) {
    tm_context *batched[SEQUENCES], *alone[SEQUENCES];
    tm_error err = {0};
    const float *logits;
    for (int s = 0; s < SEQUENCES; s++) {
        cr_assert_eq(tm_context_create_kv(&batched[s], model, 64, 2, kv, &err), TM_OK, "%s", err.message);
        cr_assert_eq(tm_context_create_kv(&alone[s], model, 64, 2, kv, &err), TM_OK, "%s", err.message);
        cr_assert_eq(tm_context_kv_type(batched[s]), kv);
        cr_assert_eq(tm_context_eval(batched[s], prompts[s], prompt_sizes[s], &logits, &err), TM_OK);
        cr_assert_eq(tm_context_eval(alone[s], prompts[s], prompt_sizes[s], &logits, &err), TM_OK);
    }
    double worst = 0;
    for (int step = 0; step < STEPS; step++) {
        int32_t tokens[SEQUENCES];
        int n = step_sizes[step];
        for (int s = 0; s < n; s++) tokens[s] = (int32_t)((37 * step + 101 * s + 5) % n_vocab);
        const float *many[SEQUENCES];
        cr_assert_eq(tm_context_eval_batch(batched, tokens, (size_t)n, many, &err), TM_OK, "%s", err.message);
        for (int s = 0; s < n; s++) {
            cr_assert_eq(tm_context_eval(alone[s], &tokens[s], 1, &logits, &err), TM_OK);
            cr_assert_eq(tm_context_position(batched[s]), tm_context_position(alone[s]));
            for (int32_t v = 0; v < n_vocab; v++) {
                double d = fabs((double)many[s][v] - (double)logits[v]);
                if (d > worst) worst = d;
            }
        }
    }
    for (int s = 0; s < SEQUENCES; s++) {
        tm_context_free(batched[s]);
        tm_context_free(alone[s]);
    }
    return worst;
}

Test(batch, float_weights_match_single_sequences) {
    char *bin = tm_fixture("models/stories260K.bin");
    tm_model *model = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_model_load(&model, bin, &err), TM_OK, "%s", err.message);
    double worst = batched_against_single(model, 512, TM_KV_F32); /* stories260K's vocabulary */
    cr_assert_lt(worst, 1e-4, "largest logit difference %g", worst);
    tm_model_free(model);
    free(bin);
}

/* Q4_K weights: a small batch goes through the same matrix-vector dot
 * products as a single token (batch.c), so the logits are the same bits,
 * and a seed repeats whatever else the server is decoding at the time;
 * with an F16 cache too (serve --kv-type f16), whose rounding sees the
 * same values either way. */
static void quantized_weights_match_single_sequences_with(tm_kv_type kv) {
    char *dir = tm_test_scratch_dir(), *path = tm_test_path(dir, "tiny-q4k.gguf");
    char *tokenizer = tm_fixture("models/llama-2-tiny-random.gguf");
    tm_synth_options o = {.tokenizer_path = tokenizer, .ftype = TM_FTYPE_Q4_K_M, .seed = 7, .n_threads = 1};
    o.shape = (tm_synth_shape){.name = "batch-test", .dim = 256, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                               .hidden_dim = 512, .context_length = 128, .rope_freq_base = 10000.0f,
                               .norm_eps = 1e-5f, .tied_embeddings = true,
                               .default_tokenizer = "models/llama-2-tiny-random.gguf"};
    tm_error err = {0};
    cr_assert_eq(tm_synth_write(path, &o, &err), TM_OK, "%s", err.message);
    tm_model *model = NULL;
    cr_assert_eq(tm_model_load(&model, path, &err), TM_OK, "%s", err.message);
    double worst = batched_against_single(model, 32000, kv); /* Llama 2's vocabulary */
    cr_assert_eq(worst, 0.0, "largest logit difference %g", worst);
    tm_model_free(model);
    free(tokenizer);
    free(path);
    free(dir);
}

Test(batch, quantized_weights_match_single_sequences) { quantized_weights_match_single_sequences_with(TM_KV_F32); }

Test(batch, quantized_weights_match_single_sequences_with_an_f16_cache) {
    quantized_weights_match_single_sequences_with(TM_KV_F16);
}

Test(batch, one_sequence_is_the_single_path_bit_for_bit) {
    tm_test_story a = tm_test_story_open(), b = tm_test_story_open();
    tm_error err = {0};
    const float *single, *batched[1];
    int32_t token = 403;
    cr_assert_eq(tm_context_eval(a.context, prompts[0], prompt_sizes[0], &single, &err), TM_OK);
    cr_assert_eq(tm_context_eval(b.context, prompts[0], prompt_sizes[0], &single, &err), TM_OK);
    cr_assert_eq(tm_context_eval(a.context, &token, 1, &single, &err), TM_OK);
    cr_assert_eq(tm_context_eval_batch(&b.context, &token, 1, batched, &err), TM_OK, "%s", err.message);
    cr_assert_eq(memcmp(single, batched[0], 512 * sizeof(float)), 0);
    tm_test_story_close(&a);
    tm_test_story_close(&b);
}

Test(batch, bad_batches_are_refused_before_running) {
    tm_test_story a = tm_test_story_open(), b = tm_test_story_open();
    tm_error err = {0};
    const float *logits[2];
    int32_t tokens[2] = {1, 1};
    tm_context *twice[2] = {a.context, a.context};
    cr_assert_eq(tm_context_eval_batch(twice, tokens, 2, logits, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "twice"), "%s", err.message);
    tm_context *pair[2] = {a.context, b.context};
    int32_t outside[2] = {1, 512};
    cr_assert_eq(tm_context_eval_batch(pair, outside, 2, logits, &err), TM_ERR_ARGUMENT);
    cr_assert_eq(tm_context_position(a.context), 0, "nothing ran");
    cr_assert_eq(tm_context_eval_batch(pair, tokens, 0, logits, &err), TM_ERR_ARGUMENT);
    /* A full context is TM_ERR_LIMIT for the whole batch. */
    tm_context *small = NULL;
    cr_assert_eq(tm_context_create(&small, a.model, 1, 1, &err), TM_OK);
    tm_context *with_small[2] = {a.context, small};
    cr_assert_eq(tm_context_eval_batch(with_small, tokens, 2, logits, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_context_eval_batch(with_small, tokens, 2, logits, &err), TM_ERR_LIMIT);
    cr_assert_eq(tm_context_position(a.context), 1, "the batch that did not fit ran nowhere");
    tm_context_free(small);
    tm_test_story_close(&a);
    tm_test_story_close(&b);
}

/* The decode kernels themselves (generator/batch.c) against the
 * single-sequence matrix-vector kernel, bit for bit, on each instruction-set
 * path this CPU has (forced, as the single path is): Q4_K and Q6_K rows of
 * 1, 3 and 8 blocks and one wider than the 512-bit kernels prepare (33
 * blocks: the per-sequence fallback), 37 rows and 70 (a partial tile) and
 * 40 (also in the engine's row groups, which must give the same bits), and
 * every batch size from 1 to TM_BATCH_MATVEC_MAX (odd ones pad a pair,
 * more than 8 take two passes), on one and two threads. */
static void kernels_match_single_on(tm_quant_path path) {
    if (!tm_quant_path_supported(path)) cr_skip_test("this CPU has no quantized path %d", (int)path);
    enum { MAX = TM_BATCH_MATVEC_MAX };
    const uint32_t types[] = {TM_GGML_Q4_K, TM_GGML_Q6_K};
    const int64_t widths[] = {256, 768, 2048, 33 * 256}, heights[] = {37, 70, 40};
    tm_quant_force_path(path);
    unsigned seed = 1;
    for (size_t ti = 0; ti < 2; ti++)
        for (size_t wi = 0; wi < 4; wi++)
            for (size_t hi = 0; hi < 3; hi++) {
                uint32_t type = types[ti];
                int64_t cols = widths[wi], rows = heights[hi];
                if (cols > 768 && hi == 1) continue; /* the partial tile once is enough for the wide rows */
                size_t row_bytes = (size_t)tm_quantize_row_bytes(type, cols), stride = (size_t)cols * sizeof(float);
                float *values = malloc(sizeof(float) * (size_t)cols);
                uint8_t *weights = malloc(row_bytes * (size_t)rows);
                char *xq = malloc(stride * MAX);
                float *y = malloc(sizeof(float) * (size_t)(rows * MAX)), *single = malloc(sizeof(float) * (size_t)(rows * MAX));
                cr_assert(values && weights && xq && y && single);
                srand(seed++);
                /* rows of different scales, and activations of different ranges, so the blocks' scales vary */
                for (int64_t r = 0; r < rows; r++) {
                    float scale = (float)(1 + r % 7) * 0.01f;
                    for (int64_t c = 0; c < cols; c++) values[c] = scale * ((float)rand() / (float)RAND_MAX - 0.5f);
                    tm_quantize_row(type, values, weights + (size_t)r * row_bytes, cols);
                }
                for (int v = 0; v < MAX; v++) {
                    for (int64_t c = 0; c < cols; c++)
                        values[c] = (float)(v + 1) * ((float)rand() / (float)RAND_MAX - 0.5f) * (c % 61 ? 1.0f : 9.0f);
                    tm_quant_quantize_activations(type, values, xq + (size_t)v * stride, cols);
                }
                tm_tensor plain = {.type = type, .rows = rows, .cols = cols, .data = weights};
                for (int v = 0; v < MAX; v++)
                    tm_quant_matvec_rows(&plain, xq + (size_t)v * stride, single + (size_t)v * (size_t)rows, 0, rows);
                /* and the engine's layout, where the rows divide into its groups */
                int32_t g = tm_quant_row_group(type);
                uint8_t *grouped = rows % g ? NULL : row_groups_copy(type, weights, rows, cols, g);
                tm_tensor in_groups = {.type = type, .rows = rows, .cols = cols, .data = grouped, .row_group = g};
                for (int layout = 0; layout < (grouped ? 2 : 1); layout++)
                    for (int threads = 1; threads <= 2; threads++)
                        for (int n = 1; n <= MAX; n++) {
                            tm_batch_matvec(layout ? &in_groups : &plain, xq, stride, y, (size_t)rows, n, threads);
                            for (int v = 0; v < n; v++) {
                                for (int64_t r = 0; r < rows; r++)
                                    if (memcmp(&y[(size_t)v * (size_t)rows + (size_t)r],
                                               &single[(size_t)v * (size_t)rows + (size_t)r], sizeof(float)))
                                        cr_assert_fail("path %d, type %u, %lldx%lld%s, %d sequences, %d threads: sequence %d "
                                                       "row %lld is %.9g, alone %.9g",
                                                       (int)path, type, (long long)rows, (long long)cols,
                                                       layout ? " in row groups" : "", n, threads, v,
                                                       (long long)r, y[(size_t)v * (size_t)rows + (size_t)r],
                                                       single[(size_t)v * (size_t)rows + (size_t)r]);
                            }
                        }
                free(grouped);
                free(single);
                free(y);
                free(xq);
                free(weights);
                free(values);
            }
    tm_quant_force_path(TM_QUANT_PATH_COUNT);
}

Test(batch, kernels_match_single_portable) { kernels_match_single_on(TM_QUANT_PATH_PORTABLE); }
Test(batch, kernels_match_single_avx2) { kernels_match_single_on(TM_QUANT_PATH_AVX2); }
Test(batch, kernels_match_single_avx_vnni) { kernels_match_single_on(TM_QUANT_PATH_AVX_VNNI); }
Test(batch, kernels_match_single_avx512_vnni) { kernels_match_single_on(TM_QUANT_PATH_AVX512_VNNI); }
