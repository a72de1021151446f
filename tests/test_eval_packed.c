/* tm_context_eval_rows_packed, many short texts through one all-positions
 * pass: every text's logits must be what tm_context_eval_rows gives that
 * text alone on a fresh context. Checked on F32 (sgemm), Q8_0 and Q4_K
 * weights of a small synthetic model, with the quantized batched product on
 * the portable and the AVX2 paths (the widest one too when the CPU has it);
 * CI also runs this file under TM_NO_AVX2=1 and TM_NO_AVX512=1, which move
 * the float kernels (attention, norms) as well. A text of one token is the
 * single-row path alone (matrix-vector products) and a batched row here, so
 * it is compared within the logit tolerance the llama.cpp tests use (2e-3);
 * the others are the same kernels on the same values, and the test records
 * whether they came out bit for bit: for the quantized products they must
 * (a row's result does not depend on the rows beside it). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "../generator/quant_dot.h"

enum { N_VOCAB = 32000 };

/* Lengths chosen to mix the tiny (1, 2, 3 tokens) and the tweet-sized, and
 * a total of 259 rows so that one text straddles two passes of 256. */
static const size_t lengths[] = {7, 1, 30, 3, 12, 2, 45, 150, 9};
enum { N_TEXTS = sizeof lengths / sizeof lengths[0] };

static tm_model *synth(tm_ftype ftype, const char *name) {
    tm_synth_shape shape = {.name = "packed-test", .dim = 256, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                            .hidden_dim = 512, .context_length = 512, .rope_freq_base = 10000.0f, .norm_eps = 1e-5f,
                            .tied_embeddings = true, .query_key_std = 0.2f,
                            .default_tokenizer = "models/llama-2-tiny-random.gguf"};
    return tm_test_synth_model(shape, ftype, 11, name);
}

typedef struct {
    double worst_single_token; /* largest logit difference of the 1-token texts */
    double worst_others;       /* of the others */
    size_t differing_rows;     /* rows of the others that are not bit for bit */
} comparison;

static comparison packed_against_alone(const tm_model *model) {
    size_t total = 0;
    for (size_t s = 0; s < N_TEXTS; s++) total += lengths[s];
    int32_t *tokens = malloc(total * sizeof *tokens);
    float *packed = malloc(total * N_VOCAB * sizeof *packed), *alone = malloc(256 * N_VOCAB * sizeof *alone);
    cr_assert(tokens && packed && alone);
    for (size_t i = 0; i < total; i++) tokens[i] = (int32_t)((i * 7919 + 13) % N_VOCAB);
    for (size_t s = 0, at = 0; s < N_TEXTS; at += lengths[s++]) tokens[at] = 1; /* BOS first, as texts are scored */
    tm_context *many = NULL, *one = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_context_create(&many, model, 512, 2, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_context_create(&one, model, 256, 2, &err), TM_OK, "%s", err.message);
    /* Something in the cache first: the packed pass must not see it. */
    cr_assert_eq(tm_context_eval(many, tokens, 40, NULL, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_context_eval_rows_packed(many, tokens, lengths, N_TEXTS, packed, &err), TM_OK, "%s",
                 err.message);
    cr_assert_eq(tm_context_position(many), 0);
    comparison c = {0};
    for (size_t s = 0, at = 0; s < N_TEXTS; at += lengths[s++]) {
        tm_context_reset(one);
        cr_assert_eq(tm_context_eval_rows(one, tokens + at, lengths[s], 0, alone, &err), TM_OK, "%s", err.message);
        for (size_t r = 0; r < lengths[s]; r++) {
            const float *a = alone + r * N_VOCAB, *p = packed + (at + r) * N_VOCAB;
            double worst = 0;
            for (size_t v = 0; v < N_VOCAB; v++) {
                double d = fabs((double)a[v] - (double)p[v]);
                if (!(d <= worst)) worst = d; /* NaN sticks */
            }
            if (lengths[s] == 1) {
                if (!(worst <= c.worst_single_token)) c.worst_single_token = worst;
            } else {
                if (!(worst <= c.worst_others)) c.worst_others = worst;
                c.differing_rows += memcmp(a, p, N_VOCAB * sizeof *a) != 0;
            }
        }
    }
    tm_context_free(many);
    tm_context_free(one);
    free(tokens);
    free(packed);
    free(alone);
    return c;
}

static void check(tm_ftype ftype, const char *name, bool bit_for_bit) {
    tm_model *model = synth(ftype, name);
    tm_quant_path paths[] = {TM_QUANT_PATH_PORTABLE, TM_QUANT_PATH_AVX2, TM_QUANT_PATH_COUNT /* the widest */};
    /* Float weights take sgemm whatever quantized path is forced: one run.
     * Under the sanitizers only the widest path runs (ten times slower
     * there); the Release build checks every path, .ci/run also forced. */
#ifdef TRACEMARK_SANITIZE_BUILD
    size_t first = 2;
#else
    size_t first = ftype == TM_FTYPE_ALL_F32 ? 2 : 0;
#endif
    for (size_t k = first; k < sizeof paths / sizeof paths[0]; k++) {
        if (paths[k] != TM_QUANT_PATH_COUNT && !tm_quant_path_supported(paths[k])) {
            /* cr_log_info: Criterion 2.4 exits 1 after any cr_log_warn. */
            cr_log_info("%s: quantized path %d not supported here, not checked", name, (int)paths[k]);
            continue;
        }
        tm_quant_force_path(paths[k]);
        comparison c = packed_against_alone(model);
        cr_log_info("%s path %d: 1-token texts differ by up to %g, the others by %g (%zu rows not bit for bit)",
                    name, (int)paths[k], c.worst_single_token, c.worst_others, c.differing_rows);
        cr_expect_lt(c.worst_single_token, 2e-3, "%s path %d", name, (int)paths[k]);
        cr_expect_lt(c.worst_others, 2e-3, "%s path %d", name, (int)paths[k]);
        if (bit_for_bit)
            cr_expect_eq(c.differing_rows, 0, "%s path %d: %zu rows differ (up to %g)", name, (int)paths[k],
                         c.differing_rows, c.worst_others);
    }
    tm_quant_force_path(TM_QUANT_PATH_COUNT);
    tm_model_free(model);
}

Test(eval_packed, f32_matches_each_text_alone) { check(TM_FTYPE_ALL_F32, "packed-f32.gguf", false); }
Test(eval_packed, q8_0_matches_each_text_alone_bit_for_bit) { check(TM_FTYPE_Q8_0, "packed-q8.gguf", true); }
Test(eval_packed, q4_k_matches_each_text_alone_bit_for_bit) { check(TM_FTYPE_Q4_K_M, "packed-q4k.gguf", true); }

Test(eval_packed, bad_input_is_refused_before_running) {
    tm_model *model = synth(TM_FTYPE_Q8_0, "packed-bad.gguf");
    tm_context *c = NULL;
    tm_error err = {0};
    cr_assert_eq(tm_context_create(&c, model, 16, 1, &err), TM_OK, "%s", err.message);
    int32_t tokens[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
    float *out = malloc(20 * N_VOCAB * sizeof *out);
    size_t fits[2] = {8, 8}, too_many[2] = {9, 8}, empty[2] = {3, 0};
    cr_assert_eq(tm_context_eval_rows_packed(c, tokens, too_many, 2, out, &err), TM_ERR_LIMIT);
    cr_assert(strstr(err.message, "context is full"), "%s", err.message);
    cr_assert_eq(tm_context_eval_rows_packed(c, tokens, empty, 2, out, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "sequence 1 has no tokens"), "%s", err.message);
    cr_assert_eq(tm_context_eval_rows_packed(c, tokens, fits, 0, out, &err), TM_ERR_ARGUMENT);
    tokens[9] = N_VOCAB;
    cr_assert_eq(tm_context_eval_rows_packed(c, tokens, fits, 2, out, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "outside the vocabulary"), "%s", err.message);
    tokens[9] = 10;
    cr_assert_eq(tm_context_eval_rows_packed(c, tokens, fits, 2, out, &err), TM_OK, "%s", err.message);
    free(out);
    tm_context_free(c);
    tm_model_free(model);
}
