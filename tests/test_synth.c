/* Synthetic models (`tracemark model synth`): every known shape is the
 * published one, a small override of each writes a file that loads with
 * tm_model_load and gives finite logits, the file is the same for any thread
 * count and changes with the seed, the tokenizer comes from the source GGUF,
 * a quantized synth equals quantizing the F32 synth, a Qwen2 synth carries
 * qwen2 metadata and Q/K/V biases, and bad shapes are refused before
 * anything is written. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tracemark/generator.h"
#include "fixtures.h"

static char *scratch_dir;
static void setup(void) { scratch_dir = tm_test_scratch_dir(); }
static void teardown(void) {
    char command[4400];
    snprintf(command, sizeof command, "rm -rf '%s'", scratch_dir);
    cr_assert_eq(system(command), 0);
    free(scratch_dir);
}

static char *file_in_scratch(const char *name) { return tm_test_path(scratch_dir, name); }

static void expect_finite_logits(const char *path, int32_t vocab) {
    tm_error err = {0};
    tm_model *model = NULL;
    cr_assert_eq(tm_model_load(&model, path, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_model_get_config(model)->n_vocab, vocab);
    tm_tokenizer *tokenizer = NULL;
    cr_assert_eq(tm_model_tokenizer(&tokenizer, model, NULL, &err), TM_OK, "%s", err.message);
    int32_t *ids = NULL;
    size_t n = 0;
    cr_assert_eq(tm_tokenizer_encode(tokenizer, "Hello world", 11, true, &ids, &n, &err), TM_OK, "%s", err.message);
    tm_context *context = NULL;
    cr_assert_eq(tm_context_create(&context, model, 32, 1, &err), TM_OK, "%s", err.message);
    const float *logits = NULL;
    cr_assert_eq(tm_context_eval(context, ids, n, &logits, &err), TM_OK, "%s", err.message);
    double spread = 0;
    for (int32_t i = 0; i < vocab; i++) {
        cr_assert(isfinite(logits[i]), "logit %d", i);
        spread = fmax(spread, fabs(logits[i] - logits[0]));
    }
    cr_assert_gt(spread, 0, "random weights give different logits");
    free(ids);
    tm_context_free(context);
    tm_tokenizer_free(tokenizer);
    tm_model_free(model);
}

Test(synth, known_shapes_are_the_published_ones) {
    tm_synth_shape s;
    cr_assert(tm_synth_lookup("llama2-110m", &s));
    cr_assert(s.dim == 768 && s.n_layers == 12 && s.n_heads == 12 && s.n_kv_heads == 12 && s.hidden_dim == 2048 &&
              s.context_length == 1024 && !s.tied_embeddings);
    cr_assert(tm_synth_lookup("tinyllama-1.1b", &s));
    cr_assert(s.dim == 2048 && s.n_layers == 22 && s.n_heads == 32 && s.n_kv_heads == 4 && s.hidden_dim == 5632);
    cr_assert(tm_synth_lookup("llama2-7b", &s));
    cr_assert(s.dim == 4096 && s.n_layers == 32 && s.n_heads == 32 && s.n_kv_heads == 32 && s.hidden_dim == 11008);
    cr_assert(tm_synth_lookup("smollm-135m", &s));
    cr_assert(s.dim == 576 && s.n_layers == 30 && s.n_heads == 9 && s.n_kv_heads == 3 && s.hidden_dim == 1536 &&
              s.tied_embeddings);
    cr_assert(tm_synth_lookup("llama3-1b", &s));
    cr_assert(s.dim == 2048 && s.n_layers == 16 && s.n_heads == 32 && s.n_kv_heads == 8 && s.hidden_dim == 8192 &&
              s.rope_freq_base == 500000.0f && s.tied_embeddings && s.llama3_rope_factors);
    cr_assert(tm_synth_lookup("qwen2-0.5b", &s));
    cr_assert(s.dim == 896 && s.n_layers == 24 && s.n_heads == 14 && s.n_kv_heads == 2 && s.hidden_dim == 4864 &&
              s.rope_freq_base == 1000000.0f && s.norm_eps == 1e-6f && s.tied_embeddings && !s.llama3_rope_factors &&
              s.architecture == TM_ARCH_QWEN2);
    cr_assert_not(tm_synth_lookup("gpt-5", &s));
}

Test(synth, small_models_of_each_family_load_and_give_finite_logits, .init = setup, .fini = teardown) {
    static const struct {
        const char *like, *type, *extra;
        int32_t vocab;
    } cases[] = {
        {"llama2-110m", "F32", "--dim 64 --layers 2 --heads 4 --kv-heads 4 --hidden 128", 32000},
        {"tinyllama-1.1b", "Q8_0", "--dim 64 --layers 2 --heads 4 --kv-heads 1 --hidden 96", 32000},
        {"smollm-135m", "Q4_K_M", "--dim 96 --layers 3 --heads 3 --kv-heads 1 --hidden 160", 32000},
        {"llama3-1b", "Q4_0", "--dim 64 --layers 2 --heads 4 --kv-heads 2 --hidden 128", 128256},
        {"llama2-7b", "F16", "--dim 32 --layers 1 --heads 2 --kv-heads 2 --hidden 64", 32000},
        {"qwen2-0.5b", "Q8_0", "--dim 64 --layers 2 --heads 4 --kv-heads 2 --hidden 96", 128256},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.gguf", cases[i].like);
        char *path = file_in_scratch(name);
        tm_test_cli_result r = tm_test_cli("model synth --like %s --type %s %s --ctx 32 --out '%s'", cases[i].like, cases[i].type,
                           cases[i].extra, path);
        cr_assert_eq(r.code, 0, "%s: %s", cases[i].like, r.err);
        cr_assert(strstr(r.err, "wrote"), "%s", r.err);
        tm_test_cli_free(&r);
        expect_finite_logits(path, cases[i].vocab);
        free(path);
    }
}

Test(synth, llama3_shape_carries_its_tokenizer_rope_base_and_factors, .init = setup, .fini = teardown) {
    char *path = file_in_scratch("l3.gguf");
    tm_test_cli_result r = tm_test_cli("model synth --like llama3-1b --dim 64 --layers 1 --heads 2 --kv-heads 1 --hidden 64 --ctx 16 "
                       "--quiet --out '%s'", path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    tm_error err = {0};
    tm_gguf *g = NULL;
    cr_assert_eq(tm_gguf_open(&g, path, &err), TM_OK, "%s", err.message);
    double base = 0;
    cr_assert(tm_gguf_get_f64(g, "llama.rope.freq_base", &base) && base == 500000.0);
    tm_string_view model;
    cr_assert(tm_gguf_get_string(g, "tokenizer.ggml.model", &model) && tm_string_view_equals(model, "gpt2"));
    const tm_gguf_tensor *factors = tm_gguf_find_tensor(g, "rope_freqs.weight");
    cr_assert(factors && factors->ne[0] == 16 && factors->type == TM_GGML_F32);
    const float *f = factors->data;
    /* Llama 3's factors run from 1 (high frequencies) to 32 (low ones). */
    cr_assert(f[0] == 1.0f && f[15] == 32.0f, "%g %g", (double)f[0], (double)f[15]);
    cr_assert_null(tm_gguf_find_tensor(g, "output.weight"), "Llama 3.2 1B ties its embeddings");
    tm_gguf_close(g);
    free(path);
}

/* Qwen2: metadata under "qwen2.", F32 Q/K/V biases of the projections' widths
 * (kept F32 in a quantized file), no rope factors; `model info` names the
 * architecture and its NeoX rotation. */
Test(synth, qwen2_shape_writes_qwen2_metadata_and_biases, .init = setup, .fini = teardown) {
    char *path = file_in_scratch("q2.gguf");
    tm_test_cli_result r = tm_test_cli("model synth --like qwen2-0.5b --type Q8_0 --dim 64 --layers 2 --heads 4 --kv-heads 2 "
                       "--hidden 96 --ctx 16 --quiet --out '%s'", path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    tm_error err = {0};
    tm_gguf *g = NULL;
    cr_assert_eq(tm_gguf_open(&g, path, &err), TM_OK, "%s", err.message);
    tm_string_view arch;
    cr_assert(tm_gguf_get_string(g, "general.architecture", &arch) && tm_string_view_equals(arch, "qwen2"));
    uint64_t layers = 0;
    double base = 0, eps = 0;
    cr_assert(tm_gguf_get_u64(g, "qwen2.block_count", &layers) && layers == 2);
    cr_assert(tm_gguf_get_f64(g, "qwen2.rope.freq_base", &base) && base == 1000000.0);
    cr_assert(tm_gguf_get_f64(g, "qwen2.attention.layer_norm_rms_epsilon", &eps) && (float)eps == 1e-6f);
    cr_assert_null(tm_gguf_find(g, "llama.block_count"));
    const struct { const char *name; uint64_t cols; } biases[] = {
        {"blk.1.attn_q.bias", 64}, {"blk.1.attn_k.bias", 32}, {"blk.1.attn_v.bias", 32}};
    for (size_t i = 0; i < 3; i++) {
        const tm_gguf_tensor *t = tm_gguf_find_tensor(g, biases[i].name);
        cr_assert(t && t->n_dims == 1 && t->ne[0] == biases[i].cols && t->type == TM_GGML_F32, "%s", biases[i].name);
    }
    cr_assert_eq(tm_gguf_find_tensor(g, "blk.0.attn_q.weight")->type, TM_GGML_Q8_0);
    cr_assert_null(tm_gguf_find_tensor(g, "rope_freqs.weight"));
    cr_assert_null(tm_gguf_find_tensor(g, "output.weight"), "Qwen2-0.5B ties its embeddings");
    tm_gguf_close(g);
    r = tm_test_cli("model info '%s'", path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "architecture:   qwen2") && strstr(r.out, "NeoX") && strstr(r.out, "q/k/v biases:   yes"),
              "%s", r.out);
    tm_test_cli_free(&r);
    r = tm_test_cli("model info --json '%s'", path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "\"architecture\":\"qwen2\"") && strstr(r.out, "\"style\":\"neox\"") &&
                  strstr(r.out, "\"qkv_bias\":true"),
              "%s", r.out);
    tm_test_cli_free(&r);
    free(path);
}

Test(synth, rope_factors_belong_to_llama_only_and_architectures_are_checked, .init = setup, .fini = teardown) {
    tm_synth_options o = {.ftype = TM_FTYPE_ALL_F32, .seed = 1};
    cr_assert(tm_synth_lookup("qwen2-0.5b", &o.shape));
    o.shape.llama3_rope_factors = true;
    char *tokenizer = tm_fixture("models/stories260K.gguf"), *out = file_in_scratch("x.gguf");
    o.tokenizer_path = tokenizer;
    tm_error err = {0};
    cr_assert_eq(tm_synth_write(out, &o, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "rope factors"), "%s", err.message);
    o.shape.llama3_rope_factors = false;
    o.shape.architecture = TM_ARCH_COUNT;
    cr_assert_eq(tm_synth_write(out, &o, &err), TM_ERR_ARGUMENT);
    cr_assert(strstr(err.message, "llama, qwen2"), "%s", err.message);
    cr_assert_not(tm_file_exists(out));
    free(out);
    free(tokenizer);
}

Test(synth, same_seed_same_file_for_any_thread_count_and_quantized_synth_equals_quantizing,
     .init = setup, .fini = teardown) {
    char *a = file_in_scratch("a.gguf"), *b = file_in_scratch("b.gguf"), *c = file_in_scratch("c.gguf");
    char *q = file_in_scratch("q.gguf"), *aq = file_in_scratch("aq.gguf");
    const char *shape = "--like llama2-110m --dim 256 --layers 2 --heads 4 --kv-heads 2 --hidden 512 --ctx 16 --quiet";
    tm_test_cli_result r = tm_test_cli("model synth %s --seed 7 --threads 1 --out '%s'", shape, a);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("model synth %s --seed 7 --threads 3 --out '%s'", shape, b);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("model synth %s --seed 8 --out '%s'", shape, c);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    size_t na, nb, nc;
    char *da = tm_test_read_file(a, &na), *db = tm_test_read_file(b, &nb), *dc = tm_test_read_file(c, &nc);
    cr_assert(da && db && dc);
    cr_assert(na == nb && memcmp(da, db, na) == 0, "threads must not change the file");
    cr_assert(na == nc && memcmp(da, dc, na) != 0, "the seed must change the weights");
    free(da);
    free(db);
    free(dc);
    /* Synthesising as Q4_K_M equals synthesising F32 and quantizing it. */
    r = tm_test_cli("model synth %s --seed 7 --type Q4_K_M --out '%s'", shape, q);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("model quantize --quiet '%s' '%s' Q4_K_M", a, aq);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tm_test_cli_free(&r);
    tm_error err = {0};
    tm_gguf *g1 = NULL, *g2 = NULL;
    cr_assert_eq(tm_gguf_open(&g1, q, &err), TM_OK);
    cr_assert_eq(tm_gguf_open(&g2, aq, &err), TM_OK);
    cr_assert_eq(tm_gguf_tensor_count(g1), tm_gguf_tensor_count(g2));
    for (uint64_t i = 0; i < tm_gguf_tensor_count(g1); i++) {
        const tm_gguf_tensor *t1 = tm_gguf_tensor_at(g1, i), *t2 = tm_gguf_tensor_at(g2, i);
        cr_assert(t1->name.size == t2->name.size && !memcmp(t1->name.data, t2->name.data, t1->name.size));
        cr_assert_eq(t1->type, t2->type);
        cr_assert(t1->n_bytes == t2->n_bytes && !memcmp(t1->data, t2->data, t1->n_bytes), "%.*s",
                  (int)t1->name.size, t1->name.data);
    }
    tm_gguf_close(g1);
    tm_gguf_close(g2);
    free(a);
    free(b);
    free(c);
    free(q);
    free(aq);
}

Test(synth, bad_requests_are_refused_before_anything_is_written, .init = setup, .fini = teardown) {
    char *out = file_in_scratch("x.gguf");
    tm_test_cli_result r = tm_test_cli("model synth --like llama2-110m --heads 5 --out '%s'", out);
    cr_assert(r.code == 1 && strstr(r.err, "heads"), "%d %s", r.code, r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("model synth --like llama2-110m --heads 4 --kv-heads 3 --out '%s'", out);
    cr_assert(r.code == 1 && strstr(r.err, "kv heads"), "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("model synth --like gpt-5 --out '%s'", out);
    cr_assert(r.code == 2 && strstr(r.err, "llama2-110m"), "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("model synth --like llama2-110m --type Q2_K --out '%s'", out);
    cr_assert_eq(r.code, 2, "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("model synth --like llama2-110m");
    cr_assert(r.code == 2 && strstr(r.err, "--out"), "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("model synth --like llama2-110m --tokenizer /nonexistent.gguf --out '%s'", out);
    cr_assert(r.code == 1 && strstr(r.err, "nonexistent"), "%s", r.err);
    tm_test_cli_free(&r);
    cr_assert_not(tm_file_exists(out));
    cr_assert_eq(tm_test_write_file(out, "keep", 4), 0);
    r = tm_test_cli("model synth --like llama2-110m --dim 32 --layers 1 --heads 2 --hidden 32 --out '%s'", out);
    cr_assert(r.code == 1 && strstr(r.err, "--force"), "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("model synth --help");
    cr_assert(r.code == 0 && strstr(r.out, "--like NAME"));
    tm_test_cli_free(&r);
    free(out);
}
