/* The forward pass of the Llama family (Llama 1/2/3, TinyLlama, SmolLM) and
 * Qwen2, and its KV cache. The families differ only in what the loader
 * found: Q/K/V biases, the rope style, Llama 3's rope frequency factors and
 * linear rope scaling; grouped-query attention maps query head h to kv head
 * h / (n_heads / n_kv_heads) as llama.cpp broadcasts it. A tm_context owns
 * the cache and every scratch buffer, sized once at creation, so evaluating
 * tokens never allocates. Prompts run in batches whose matrix products go
 * through sgemm; single tokens go through the threaded matrix-vector
 * kernels. Positions past the context size are refused, never written.
 * The cache holds F32 (the default) or F16 (tm_context_create_kv). */
#include "tracemark/generator.h"

#include "batch.h"
#include "kernels.h"
#include "../model/model_internal.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { BATCH_CAPACITY = 256 };

struct tm_context {
    const tm_model *model;
    /* the weights as the kernels read them (tm_model_engine_weights) */
    const tm_layer_weights *layers;
    const tm_tensor *classifier;
    int32_t n_ctx, n_threads, position;
    int32_t q_dim, kv_dim;
    /* [layer][n_ctx][kv_dim], F32 or F16 (tm_context_create_kv) */
    void *key_cache, *value_cache;
    bool kv_f16;
    /* activations for up to BATCH_CAPACITY tokens */
    float *x, *normed, *rounded, *q, *k, *v, *attention, *projected, *gate, *up;
    float *rope_cos, *rope_sin; /* [BATCH_CAPACITY][head_dim / 2] */
    float *scores;              /* [n_threads][n_ctx] */
    float *matmul_scratch;
    float *logits;
    /* tm_context_eval_batch: the classifier's rows for the whole batch, grown
     * on the first batch that needs more (the only allocation after creation). */
    float *batch_logits;
    size_t batch_logits_rows;
};

static void free_buffers(tm_context *c) {
    tm_free_aligned(c->key_cache);
    tm_free_aligned(c->value_cache);
    c->key_cache = c->value_cache = NULL;
    float **all[] = {&c->x, &c->normed, &c->rounded, &c->q, &c->k,
                     &c->v, &c->attention, &c->projected, &c->gate, &c->up, &c->rope_cos, &c->rope_sin,
                     &c->scores, &c->matmul_scratch, &c->logits};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tm_free_aligned(*all[i]);
        *all[i] = NULL;
    }
}

void tm_context_free(tm_context *context) {
    if (!context) return;
    tm_free_aligned(context->batch_logits);
    free_buffers(context);
    free(context);
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* The bytes the context-sized buffers take (the KV cache, 2 x layers x n_ctx
 * x kv_dim elements of kv_bytes, and the attention scores, threads x n_ctx floats), checked
 * against the memory available before anything is allocated: a context that
 * does not fit is an error naming the sizes, not a visit from the OOM killer. */
static tm_status check_memory(const tm_model_config *cfg, int32_t n_ctx, int32_t n_threads, size_t kv_bytes,
                              tm_error *err) {
    uint64_t kv, scores, total;
    uint64_t kv_dim = (uint64_t)(cfg->n_kv_heads > 0 ? cfg->n_kv_heads : 0) * (uint64_t)(cfg->head_dim > 0 ? cfg->head_dim : 0);
    bool ok = tm_mul_u64((uint64_t)(cfg->n_layers > 0 ? cfg->n_layers : 0), (uint64_t)n_ctx, &kv) &&
              tm_mul_u64(kv, kv_dim, &kv) && tm_mul_u64(kv, 2 * kv_bytes, &kv) &&
              tm_mul_u64((uint64_t)n_threads, (uint64_t)n_ctx * sizeof(float), &scores) &&
              tm_add_u64(kv, scores, &total) && total <= SIZE_MAX / 2;
    if (!ok) return tm_error_set(err, TM_ERR_LIMIT, "a context of %d tokens overflows the KV cache size", n_ctx);
    /* At most 3/4 of what is available: the cache is zeroed (every page
     * touched) at creation, and the weights, the OS and other processes need
     * the rest; a 20 GB cache on a 22 GB machine ran, swapless, for minutes. */
    uint64_t available = tm_memory_available(), allowed = available / 4 * 3;
    if (total > allowed)
        return tm_error_set(err, TM_ERR_LIMIT,
                            "a context of %d tokens needs %llu MiB for the KV cache, more than 3/4 of the %llu MiB of "
                            "memory available; choose a smaller context (--ctx)",
                            n_ctx, (unsigned long long)(total >> 20), (unsigned long long)(available >> 20));
    return TM_OK;
}

bool tm_kv_type_parse(const char *name, tm_kv_type *out) {
    if (!name) return false;
    if (!strcmp(name, "f32")) *out = TM_KV_F32;
    else if (!strcmp(name, "f16")) *out = TM_KV_F16;
    else return false;
    return true;
}

tm_kv_type tm_context_kv_type(const tm_context *context) { return context->kv_f16 ? TM_KV_F16 : TM_KV_F32; }

tm_status tm_context_create(tm_context **out, const tm_model *model, int32_t n_ctx, int32_t n_threads, tm_error *err) {
    return tm_context_create_kv(out, model, n_ctx, n_threads, TM_KV_F32, err);
}

tm_status tm_context_create_kv(tm_context **out, const tm_model *model, int32_t n_ctx, int32_t n_threads,
                               tm_kv_type kv_type, tm_error *err) {
    *out = NULL;
    if (kv_type != TM_KV_F32 && kv_type != TM_KV_F16)
        return tm_error_set(err, TM_ERR_ARGUMENT, "unknown KV cache type %d", (int)kv_type);
    const tm_model_config *cfg = &model->config;
    if (n_ctx < 0 || n_ctx > (1 << 24))
        return tm_error_set(err, TM_ERR_ARGUMENT, "context size %d is out of range (1..%d)", n_ctx, 1 << 24);
    if (n_threads < 0 || n_threads > 1024)
        return tm_error_set(err, TM_ERR_ARGUMENT, "thread count %d is out of range (1..1024)", n_threads);
    /* A model file's context_length is untrusted (any value up to
     * INT32_MAX): by default it only ever lowers the context size. */
    if (n_ctx == 0) n_ctx = cfg->context_length > 0 && cfg->context_length < TM_CONTEXT_DEFAULT ? cfg->context_length
                                                                                               : TM_CONTEXT_DEFAULT;
    if (n_threads == 0) n_threads = default_threads();
    bool kv_f16 = kv_type == TM_KV_F16;
    size_t kv_bytes = kv_f16 ? sizeof(uint16_t) : sizeof(float);
    tm_status fits = check_memory(cfg, n_ctx, n_threads, kv_bytes, err);
    if (fits != TM_OK) return fits;
    const tm_layer_weights *layers;
    const tm_tensor *classifier;
    tm_status weights = tm_model_engine_weights(model, &layers, &classifier, err);
    if (weights != TM_OK) return weights;
    tm_context *c = tm_alloc_array(1, sizeof *c, err);
    if (!c) return TM_ERR_NOMEM;
    c->model = model;
    c->layers = layers;
    c->classifier = classifier;
    c->n_ctx = n_ctx;
    c->n_threads = n_threads;
    c->kv_f16 = kv_f16;
    c->q_dim = cfg->n_heads * cfg->head_dim;
    c->kv_dim = cfg->n_kv_heads * cfg->head_dim;
    size_t B = BATCH_CAPACITY, cache = (size_t)cfg->n_layers * (size_t)c->n_ctx;
    size_t widest = (size_t)cfg->dim;
    if ((size_t)c->q_dim > widest) widest = (size_t)c->q_dim;
    if ((size_t)cfg->hidden_dim > widest) widest = (size_t)cfg->hidden_dim;
    bool ok = (c->key_cache = tm_alloc_aligned(cache, (size_t)c->kv_dim * kv_bytes, err)) &&
              (c->value_cache = tm_alloc_aligned(cache, (size_t)c->kv_dim * kv_bytes, err)) &&
              (c->x = tm_alloc_aligned(B * (size_t)cfg->dim, sizeof(float), err)) &&
              (c->normed = tm_alloc_aligned(B * (size_t)cfg->dim, sizeof(float), err)) &&
              (c->rounded = tm_alloc_aligned(B * widest, sizeof(float), err)) &&
              (c->q = tm_alloc_aligned(B * (size_t)c->q_dim, sizeof(float), err)) &&
              (c->k = tm_alloc_aligned(B * (size_t)c->kv_dim, sizeof(float), err)) &&
              (c->v = tm_alloc_aligned(B * (size_t)c->kv_dim, sizeof(float), err)) &&
              (c->attention = tm_alloc_aligned(B * (size_t)c->q_dim, sizeof(float), err)) &&
              (c->projected = tm_alloc_aligned(B * (size_t)cfg->dim, sizeof(float), err)) &&
              (c->gate = tm_alloc_aligned(B * (size_t)cfg->hidden_dim, sizeof(float), err)) &&
              (c->up = tm_alloc_aligned(B * (size_t)cfg->hidden_dim, sizeof(float), err)) &&
              (c->rope_cos = tm_alloc_aligned(B * (size_t)cfg->head_dim / 2, sizeof(float), err)) &&
              (c->rope_sin = tm_alloc_aligned(B * (size_t)cfg->head_dim / 2, sizeof(float), err)) &&
              (c->scores = tm_alloc_aligned((size_t)c->n_threads * (size_t)c->n_ctx, sizeof(float), err)) &&
              (c->matmul_scratch = tm_alloc_aligned(tm_kernel_matmul_scratch((int64_t)widest), sizeof(float), err)) &&
              (c->logits = tm_alloc_aligned((size_t)cfg->n_vocab, sizeof(float), err));
    if (!ok) {
        tm_context_free(c);
        return TM_ERR_NOMEM;
    }
    openblas_set_num_threads(c->n_threads);
    *out = c;
    return TM_OK;
}

int32_t tm_context_position(const tm_context *context) { return context->position; }
int32_t tm_context_size(const tm_context *context) { return context->n_ctx; }
const tm_model *tm_context_model(const tm_context *context) { return context->model; }
void tm_context_reset(tm_context *context) { context->position = 0; }

/* out[m][n][w[m].rows] = in[n][cols] W[m]^T for each matrix m of one type.
 * A single token goes through the matrix-vector kernels with the input
 * prepared as llama.cpp's dot product sees it (rounded to F16 for F16
 * weights, quantized to 8 bits for quantized ones); a batch goes through
 * the batched product, which rounds or quantizes the input as llama.cpp's
 * does for that type (sgemm for float weights, 8-bit tiles for quantized). */
static void project_many(tm_context *c, const tm_tensor *const *w, int n_weights, const float *in, int64_t n,
                         float *const *out) {
    bool same_type = true;
    for (int m = 1; m < n_weights; m++) same_type = same_type && w[m]->type == w[0]->type;
    if (!same_type) {
        for (int m = 0; m < n_weights; m++) project_many(c, &w[m], 1, in, n, &out[m]);
        return;
    }
    uint32_t type = w[0]->type;
    int64_t cols = w[0]->cols;
    if (n == 1) {
        const void *x = in;
        if (type != TM_GGML_F32) {
            tm_kernel_prepare_activations(type, in, cols, c->rounded);
            x = c->rounded;
        }
        tm_kernel_matvec_multi(w, x, out, n_weights, c->n_threads);
        return;
    }
    const float *x = in;
    if (type == TM_GGML_F16 || type == TM_GGML_BF16) {
        memcpy(c->rounded, in, (size_t)(n * cols) * sizeof(float));
        tm_kernel_round_activations(type, c->rounded, (size_t)(n * cols));
        x = c->rounded;
    }
    for (int m = 0; m < n_weights; m++) tm_kernel_matmul(w[m], x, n, out[m], c->matmul_scratch, c->n_threads);
}

static void project(tm_context *c, const tm_tensor *w, const float *in, int64_t n, float *out) {
    project_many(c, &w, 1, in, n, &out);
}

/* cos/sin of every rotated pair for positions [first, first + n). llama.cpp
 * walks theta by repeated multiplication; llama2.c computes each frequency
 * with powf. Each format is matched to the peer that wrote it. GGUF angles
 * are divided by the pair's rope factor, then multiplied by the linear
 * scale, in ggml's float order (rope_yarn with no YaRN ramp), so a model
 * without either computes the plain angle bit for bit. */
/* The cos/sin of one token at one position into cosines/sines[head_dim / 2]. */
static void rope_row(const tm_context *c, float position, float *cosines, float *sines) {
    const tm_model_config *cfg = &c->model->config;
    int32_t pairs = cfg->head_dim / 2;
    float theta_scale = powf(cfg->rope_freq_base, -2.0f / (float)cfg->head_dim);
    const float *factors = c->model->rope_factors.data;
    float freq_scale = cfg->rope_freq_scale;
    if (c->model->format == TM_MODEL_FORMAT_LLAMA2C) {
        for (int32_t j = 0; j < pairs; j++) {
            float frequency = 1.0f / powf(cfg->rope_freq_base, (float)(2 * j) / (float)cfg->head_dim);
            float angle = position * frequency;
            cosines[j] = cosf(angle);
            sines[j] = sinf(angle);
        }
    } else {
        float theta = position;
        for (int32_t j = 0; j < pairs; j++) {
            float angle = freq_scale * (factors ? theta / factors[j] : theta);
            cosines[j] = cosf(angle);
            sines[j] = sinf(angle);
            theta *= theta_scale;
        }
    }
}

static void rope_tables(tm_context *c, int32_t first, int64_t n) {
    int32_t pairs = c->model->config.head_dim / 2;
    for (int64_t i = 0; i < n; i++)
        rope_row(c, (float)(first + i), c->rope_cos + i * pairs, c->rope_sin + i * pairs);
}

static void rope_apply(const tm_context *c, float *vectors, int32_t n_heads, int64_t token) {
    const tm_model_config *cfg = &c->model->config;
    int32_t pairs = cfg->head_dim / 2;
    const float *cosines = c->rope_cos + token * pairs, *sines = c->rope_sin + token * pairs;
    for (int32_t h = 0; h < n_heads; h++) {
        float *v = vectors + (int64_t)h * cfg->head_dim;
        if (cfg->rope_style == TM_ROPE_NORMAL) {
            for (int32_t j = 0; j < pairs; j++) {
                float a = v[2 * j], b = v[2 * j + 1];
                v[2 * j] = a * cosines[j] - b * sines[j];
                v[2 * j + 1] = a * sines[j] + b * cosines[j];
            }
        } else {
            for (int32_t j = 0; j < pairs; j++) {
                float a = v[j], b = v[j + pairs];
                v[j] = a * cosines[j] - b * sines[j];
                v[j + pairs] = a * sines[j] + b * cosines[j];
            }
        }
    }
}

/* Cache row `slot` (an element offset) of s's keys and values from k and v. */
static void cache_store(tm_context *s, size_t slot, const float *k, const float *v) {
    size_t n = (size_t)s->kv_dim;
    if (s->kv_f16) {
        tm_kernel_to_f16(k, (uint16_t *)s->key_cache + slot, n);
        tm_kernel_to_f16(v, (uint16_t *)s->value_cache + slot, n);
    } else {
        memcpy((float *)s->key_cache + slot, k, n * sizeof(float));
        memcpy((float *)s->value_cache + slot, v, n * sizeof(float));
    }
}

/* One head of one token: the scores of q against `length` cached positions
 * from element `first` of s's caches, their softmax, and the weighted values
 * into out. Against an F16 cache the query is rounded to F16 first, as
 * llama.cpp's F16 dot products round it. */
static void attend_head(const tm_context *s, size_t first, const float *q, int32_t length, float scale, float *scores,
                        float *out) {
    int32_t hd = s->model->config.head_dim;
    if (s->kv_f16) {
        float rounded[TM_KERNEL_MAX_HEAD_DIM];
        memcpy(rounded, q, (size_t)hd * sizeof(float));
        tm_kernel_round_activations(TM_GGML_F16, rounded, (size_t)hd);
        tm_kernel_attention_scores_f16(rounded, (const uint16_t *)s->key_cache + first, s->kv_dim, length, hd, scale,
                                       scores);
        tm_kernel_softmax(scores, length);
        tm_kernel_attention_values_f16(scores, (const uint16_t *)s->value_cache + first, s->kv_dim, length, hd, out);
        return;
    }
    tm_kernel_attention_scores(q, (const float *)s->key_cache + first, s->kv_dim, length, hd, scale, scores);
    tm_kernel_softmax(scores, length);
    tm_kernel_attention_values(scores, (const float *)s->value_cache + first, s->kv_dim, length, hd, out);
}

/* Causal attention of n new tokens (at positions first..first+n-1) over the
 * cache of this layer; one (token, head) pair per work item. */
static void attend(tm_context *c, int32_t layer, int32_t first, int64_t n) {
    const tm_model_config *cfg = &c->model->config;
    int32_t hd = cfg->head_dim, group = cfg->n_heads / cfg->n_kv_heads;
    size_t layer_base = (size_t)layer * (size_t)c->n_ctx * (size_t)c->kv_dim;
    float scale = 1.0f / sqrtf((float)hd);
    int64_t items = n * cfg->n_heads;
    int64_t work = items * (first + n) * hd;
    /* A parallel region costs a few microseconds; from about 16K multiply-adds
     * on (a decode step past a dozen positions) splitting the heads pays:
     * measured on the 110M model, Q4_0 2-thread decode after a 128-token
     * prompt went from 368 to 433 tokens/s when the threshold came down from 2^18. */
    int threads = work > (1 << 14) ? c->n_threads : 1;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t item = 0; item < items; item++) {
        int64_t i = item / cfg->n_heads;
        int32_t h = (int32_t)(item % cfg->n_heads), kvh = h / group;
        int32_t length = first + (int32_t)i + 1;
        float *scores = c->scores + (size_t)omp_get_thread_num() * (size_t)c->n_ctx;
        const float *q = c->q + i * c->q_dim + (int64_t)h * hd;
        float *out = c->attention + i * c->q_dim + (int64_t)h * hd;
        attend_head(c, layer_base + (size_t)kvh * (size_t)hd, q, length, scale, scores, out);
    }
}

/* The logits after rows [from, n) of the batch just run, into out
 * ((n - from) rows of n_vocab): one token goes through the matrix-vector
 * product as the last-token logits do, several through the batched one. */
static void batch_logits(tm_context *c, int64_t from, int64_t n, float *out) {
    const tm_model *m = c->model;
    int64_t D = m->config.dim;
    for (int64_t i = from; i < n; i++)
        tm_kernel_rmsnorm(c->normed + (i - from) * D, c->x + i * D, m->output_norm.data, D, m->config.norm_eps);
    project(c, c->classifier, c->normed, n - from, out);
}

static void project_batch(tm_context *c, const tm_tensor *const *w, int n_weights, const float *in, int64_t n,
                          float *const *out);

/* One layer's products: several sequences' rows in one pass over the
 * weights (forward_many: project_batch), or one sequence's (project_many). */
static void layer_products(tm_context *c, const tm_tensor *const *w, int n_weights, const float *in, int64_t n,
                           float *const *out, bool many_sequences) {
    if (many_sequences) project_batch(c, w, n_weights, in, n, out);
    else project_many(c, w, n_weights, in, n, out);
}

/* Before attention: the attention norm of n rows of c->x, then Q, K and V
 * (with their biases, where the model has them) into c->q, c->k and c->v. */
static void layer_qkv(tm_context *c, const tm_layer_weights *w, int64_t n, bool many_sequences) {
    const tm_model_config *cfg = &c->model->config;
    int64_t D = cfg->dim;
    for (int64_t i = 0; i < n; i++)
        tm_kernel_rmsnorm(c->normed + i * D, c->x + i * D, w->attn_norm.data, D, cfg->norm_eps);
    const tm_tensor *qkv[3] = {&w->wq, &w->wk, &w->wv};
    float *qkv_out[3] = {c->q, c->k, c->v};
    layer_products(c, qkv, 3, c->normed, n, qkv_out, many_sequences);
    const tm_tensor *bias[3] = {&w->bq, &w->bk, &w->bv};
    for (int b = 0; b < 3; b++)
        if (bias[b]->data)
            for (int64_t i = 0; i < n; i++)
                tm_kernel_add(qkv_out[b] + i * bias[b]->cols, bias[b]->data, bias[b]->cols);
}

/* After attention (c->attention): the output projection and its residual,
 * then the feed-forward block (norm, gate and up, SwiGLU, down) with its residual. */
static void layer_feed_forward(tm_context *c, const tm_layer_weights *w, int64_t n, bool many_sequences) {
    const tm_model_config *cfg = &c->model->config;
    int64_t D = cfg->dim, H = cfg->hidden_dim;
    layer_products(c, (const tm_tensor *const[]){&w->wo}, 1, c->attention, n, (float *const[]){c->projected},
                   many_sequences);
    tm_kernel_add(c->x, c->projected, n * D);
    for (int64_t i = 0; i < n; i++)
        tm_kernel_rmsnorm(c->normed + i * D, c->x + i * D, w->ffn_norm.data, D, cfg->norm_eps);
    const tm_tensor *gate_up[2] = {&w->w_gate, &w->w_up};
    float *gate_up_out[2] = {c->gate, c->up};
    layer_products(c, gate_up, 2, c->normed, n, gate_up_out, many_sequences);
    tm_kernel_swiglu(c->gate, c->gate, c->up, n * H);
    layer_products(c, (const tm_tensor *const[]){&w->w_down}, 1, c->gate, n, (float *const[]){c->projected},
                   many_sequences);
    tm_kernel_add(c->x, c->projected, n * D);
}

static void forward_batch(tm_context *c, const int32_t *tokens, int64_t n, bool want_logits) {
    const tm_model *m = c->model;
    const tm_model_config *cfg = &m->config;
    int64_t D = cfg->dim;
    int32_t first = c->position;
    for (int64_t i = 0; i < n; i++) tm_kernel_dequantize_row(&m->token_embedding, tokens[i], c->x + i * D);
    rope_tables(c, first, n);
    for (int32_t l = 0; l < cfg->n_layers; l++) {
        const tm_layer_weights *w = &c->layers[l];
        layer_qkv(c, w, n, false);
        size_t layer_base = (size_t)l * (size_t)c->n_ctx * (size_t)c->kv_dim;
        for (int64_t i = 0; i < n; i++) {
            rope_apply(c, c->q + i * c->q_dim, cfg->n_heads, i);
            rope_apply(c, c->k + i * c->kv_dim, cfg->n_kv_heads, i);
            size_t slot = layer_base + (size_t)(first + i) * (size_t)c->kv_dim;
            cache_store(c, slot, c->k + i * c->kv_dim, c->v + i * c->kv_dim);
        }
        attend(c, l, first, n);
        layer_feed_forward(c, w, n, false);
    }
    c->position += (int32_t)n;
    if (!want_logits) return;
    float *last = c->x + (n - 1) * D;
    tm_kernel_rmsnorm(c->normed, last, m->output_norm.data, D, cfg->norm_eps);
    project(c, c->classifier, c->normed, 1, c->logits);
}

tm_status tm_context_eval(tm_context *context, const int32_t *tokens, size_t n_tokens, const float **logits,
                          tm_error *err) {
    if (logits) *logits = NULL;
    if (n_tokens == 0) return tm_error_set(err, TM_ERR_ARGUMENT, "no tokens to evaluate");
    int32_t n_vocab = context->model->config.n_vocab;
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return tm_error_set(err, TM_ERR_ARGUMENT, "token id %d at index %zu is outside the vocabulary (0..%d)",
                                tokens[i], i, n_vocab - 1);
    if (n_tokens > (size_t)(context->n_ctx - context->position))
        return tm_error_set(err, TM_ERR_LIMIT,
                            "context is full: %zu more tokens do not fit after position %d of %d (raise --ctx)",
                            n_tokens, context->position, context->n_ctx);
    for (size_t done = 0; done < n_tokens;) {
        size_t chunk = n_tokens - done < BATCH_CAPACITY ? n_tokens - done : BATCH_CAPACITY;
        forward_batch(context, tokens + done, (int64_t)chunk, done + chunk == n_tokens);
        done += chunk;
    }
    if (logits) *logits = context->logits;
    return TM_OK;
}

/* ---- continuous batching: one decode step of several sequences ----------- */

_Static_assert((int)TM_CONTEXT_BATCH_MAX <= (int)BATCH_CAPACITY, "a batch must fit the scratch buffers");

/* Attention of one new token per sequence: row i belongs to contexts[i],
 * whose cache (already holding the token's key and value) it reads up to
 * that sequence's own position. Activations live in c's buffers. */
static void attend_batch(tm_context *c, tm_context *const *contexts, int64_t n, int32_t layer) {
    const tm_model_config *cfg = &c->model->config;
    int32_t hd = cfg->head_dim, group = cfg->n_heads / cfg->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    int64_t items = n * cfg->n_heads;
#pragma omp parallel for num_threads(c->n_threads) schedule(dynamic, 1)
    for (int64_t item = 0; item < items; item++) {
        int64_t i = item / cfg->n_heads;
        const tm_context *s = contexts[i];
        int32_t h = (int32_t)(item % cfg->n_heads), kvh = h / group;
        int32_t length = s->position + 1;
        size_t layer_base = (size_t)layer * (size_t)s->n_ctx * (size_t)s->kv_dim;
        float *scores = c->scores + (size_t)omp_get_thread_num() * (size_t)c->n_ctx;
        const float *q = c->q + i * c->q_dim + (int64_t)h * hd;
        float *out = c->attention + i * c->q_dim + (int64_t)h * hd;
        attend_head(s, layer_base + (size_t)kvh * (size_t)hd, q, length, scale, scores, out);
    }
}

/* The products of a decode batch: quantized weights meet up to
 * TM_BATCH_MATVEC_MAX rows through tm_batch_matvec (one pass over the
 * weights, each row's result the single-sequence one bit for bit); other
 * weights and larger batches take the prompt's batched product. */
static void project_batch(tm_context *c, const tm_tensor *const *w, int n_weights, const float *in, int64_t n,
                          float *const *out) {
    for (int m = 0; m < n_weights; m++) {
        uint32_t type = w[m]->type;
        int64_t cols = w[m]->cols;
        if (n == 1 || n > TM_BATCH_MATVEC_MAX || !tm_batch_matvec_supports(type)) {
            project_many(c, &w[m], 1, in, n, &out[m]);
            continue;
        }
        size_t stride = (size_t)cols * sizeof(float); /* prepared rows never take more */
        for (int64_t i = 0; i < n; i++)
            tm_kernel_prepare_activations(type, in + i * cols, cols, (char *)c->rounded + (size_t)i * stride);
        tm_batch_matvec(w[m], c->rounded, stride, out[m], (size_t)w[m]->rows, (int)n, c->n_threads);
    }
}

/* forward_batch for n tokens of n different sequences: every matrix product
 * takes all n rows at once (the weights are read once per step), while rope,
 * the cache writes and attention follow each sequence's own position. */
static void forward_many(tm_context *c, tm_context *const *contexts, const int32_t *tokens, int64_t n) {
    const tm_model *m = c->model;
    const tm_model_config *cfg = &m->config;
    int64_t D = cfg->dim;
    int32_t pairs = cfg->head_dim / 2;
    for (int64_t i = 0; i < n; i++) {
        tm_kernel_dequantize_row(&m->token_embedding, tokens[i], c->x + i * D);
        rope_row(c, (float)contexts[i]->position, c->rope_cos + i * pairs, c->rope_sin + i * pairs);
    }
    for (int32_t l = 0; l < cfg->n_layers; l++) {
        const tm_layer_weights *w = &c->layers[l];
        layer_qkv(c, w, n, true);
        for (int64_t i = 0; i < n; i++) {
            tm_context *s = contexts[i];
            rope_apply(c, c->q + i * c->q_dim, cfg->n_heads, i);
            rope_apply(c, c->k + i * c->kv_dim, cfg->n_kv_heads, i);
            size_t slot = ((size_t)l * (size_t)s->n_ctx + (size_t)s->position) * (size_t)s->kv_dim;
            cache_store(s, slot, c->k + i * c->kv_dim, c->v + i * c->kv_dim);
        }
        attend_batch(c, contexts, n, l);
        layer_feed_forward(c, w, n, true);
    }
    for (int64_t i = 0; i < n; i++) {
        tm_kernel_rmsnorm(c->normed + i * D, c->x + i * D, m->output_norm.data, D, cfg->norm_eps);
        contexts[i]->position++;
    }
    float *rows = n == 1 ? contexts[0]->logits : c->batch_logits;
    project_batch(c, (const tm_tensor *const[]){c->classifier}, 1, c->normed, n, (float *const[]){rows});
    if (n > 1)
        for (int64_t i = 0; i < n; i++)
            memcpy(contexts[i]->logits, rows + i * cfg->n_vocab, (size_t)cfg->n_vocab * sizeof(float));
}

tm_status tm_context_eval_batch(tm_context *const *contexts, const int32_t *tokens, size_t n, const float **logits,
                                tm_error *err) {
    if (!contexts || !tokens || n == 0) return tm_error_set(err, TM_ERR_ARGUMENT, "no sequences to evaluate");
    if (n > TM_CONTEXT_BATCH_MAX)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%zu sequences in one batch (at most %d)", n, TM_CONTEXT_BATCH_MAX);
    tm_context *c = contexts[0];
    int32_t n_vocab = c->model->config.n_vocab;
    for (size_t i = 0; i < n; i++) {
        tm_context *s = contexts[i];
        if (!s || s->model != c->model || s->n_ctx > c->n_ctx)
            return tm_error_set(err, TM_ERR_ARGUMENT,
                                "sequence %zu of the batch has another model or a larger context than the first", i);
        for (size_t j = 0; j < i; j++)
            if (contexts[j] == s) return tm_error_set(err, TM_ERR_ARGUMENT, "sequence %zu appears twice in the batch", i);
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return tm_error_set(err, TM_ERR_ARGUMENT, "token id %d of sequence %zu is outside the vocabulary (0..%d)",
                                tokens[i], i, n_vocab - 1);
        if (s->position >= s->n_ctx)
            return tm_error_set(err, TM_ERR_LIMIT, "context of sequence %zu is full (%d tokens; raise --ctx)", i,
                                s->n_ctx);
    }
    if (n > 1 && c->batch_logits_rows < n) {
        float *grown = tm_alloc_aligned(n, (size_t)n_vocab * sizeof(float), err);
        if (!grown) return TM_ERR_NOMEM;
        tm_free_aligned(c->batch_logits);
        c->batch_logits = grown;
        c->batch_logits_rows = n;
    }
    forward_many(c, contexts, tokens, (int64_t)n);
    if (logits)
        for (size_t i = 0; i < n; i++) logits[i] = contexts[i]->logits;
    return TM_OK;
}

/* Prefix reuse and log-likelihood scoring (generator/loglik.c) need the
 * logits of several positions of one batch and a cache cut back to a shared
 * prefix; both leave the batch arithmetic above untouched. */
tm_status tm_context_eval_rows(tm_context *context, const int32_t *tokens, size_t n_tokens, size_t first_output,
                               float *logits, tm_error *err) {
    if (n_tokens == 0) return tm_error_set(err, TM_ERR_ARGUMENT, "no tokens to evaluate");
    if (first_output >= n_tokens || !logits)
        return tm_error_set(err, TM_ERR_ARGUMENT, "first output row %zu is not one of the %zu tokens", first_output,
                            n_tokens);
    int32_t n_vocab = context->model->config.n_vocab;
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return tm_error_set(err, TM_ERR_ARGUMENT, "token id %d at index %zu is outside the vocabulary (0..%d)",
                                tokens[i], i, n_vocab - 1);
    if (n_tokens > (size_t)(context->n_ctx - context->position))
        return tm_error_set(err, TM_ERR_LIMIT,
                            "context is full: %zu more tokens do not fit after position %d of %d (raise --ctx)",
                            n_tokens, context->position, context->n_ctx);
    for (size_t done = 0; done < n_tokens;) {
        size_t chunk = n_tokens - done < BATCH_CAPACITY ? n_tokens - done : BATCH_CAPACITY;
        forward_batch(context, tokens + done, (int64_t)chunk, false);
        if (done + chunk > first_output) {
            size_t from = first_output > done ? first_output - done : 0;
            batch_logits(context, (int64_t)from, (int64_t)chunk,
                         logits + (done + from - first_output) * (size_t)n_vocab);
        }
        done += chunk;
    }
    return TM_OK;
}

tm_status tm_context_truncate(tm_context *context, int32_t position, tm_error *err) {
    if (position < 0 || position > context->position)
        return tm_error_set(err, TM_ERR_ARGUMENT, "cannot cut the context back to position %d: it holds %d", position,
                            context->position);
    /* The cache rows past position are simply overwritten by the next tokens. */
    context->position = position;
    return TM_OK;
}

/* ---- many short sequences through one all-positions pass ------------------ */

/* tm_context_eval_rows_packed: sequences laid end to end in one cache, as
 * llama.cpp's unified KV cache holds several seq_ids. Row r of a pass is
 * token `position[r]` of its sequence, whose position 0 sits in cache slot
 * base[r]: its rope angle and attention length follow its own position, its
 * attention reads only its own sequence's slots (a block-diagonal causal
 * mask, never another text), and every matrix product takes all the rows of
 * the pass at once, so the weights are read once for all the texts. The
 * arithmetic of each row is forward_batch's, kernel for kernel. */
static void attend_packed(tm_context *c, int32_t layer, const int32_t *position, const int32_t *base, int64_t n) {
    const tm_model_config *cfg = &c->model->config;
    int32_t hd = cfg->head_dim, group = cfg->n_heads / cfg->n_kv_heads;
    size_t layer_base = (size_t)layer * (size_t)c->n_ctx * (size_t)c->kv_dim;
    float scale = 1.0f / sqrtf((float)hd);
    int64_t items = n * cfg->n_heads, work = 0;
    for (int64_t i = 0; i < n; i++) work += (int64_t)(position[i] + 1) * cfg->n_heads * hd;
    int threads = work > (1 << 14) ? c->n_threads : 1; /* attend()'s threshold */
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t item = 0; item < items; item++) {
        int64_t i = item / cfg->n_heads;
        int32_t h = (int32_t)(item % cfg->n_heads), kvh = h / group;
        int32_t length = position[i] + 1;
        size_t first = layer_base + (size_t)base[i] * (size_t)c->kv_dim + (size_t)kvh * (size_t)hd;
        float *scores = c->scores + (size_t)omp_get_thread_num() * (size_t)c->n_ctx;
        const float *q = c->q + i * c->q_dim + (int64_t)h * hd;
        float *out = c->attention + i * c->q_dim + (int64_t)h * hd;
        attend_head(c, first, q, length, scale, scores, out);
    }
}

/* n rows (n <= BATCH_CAPACITY) whose cache slots are base[r] + position[r];
 * the logits after every row go to out (n rows of n_vocab). */
static void forward_packed(tm_context *c, const int32_t *tokens, const int32_t *position, const int32_t *base,
                           int64_t n, float *out) {
    const tm_model *m = c->model;
    const tm_model_config *cfg = &m->config;
    int64_t D = cfg->dim;
    int32_t pairs = cfg->head_dim / 2;
    for (int64_t i = 0; i < n; i++) {
        tm_kernel_dequantize_row(&m->token_embedding, tokens[i], c->x + i * D);
        rope_row(c, (float)position[i], c->rope_cos + i * pairs, c->rope_sin + i * pairs);
    }
    for (int32_t l = 0; l < cfg->n_layers; l++) {
        const tm_layer_weights *w = &c->layers[l];
        layer_qkv(c, w, n, false);
        size_t layer_base = (size_t)l * (size_t)c->n_ctx * (size_t)c->kv_dim;
        for (int64_t i = 0; i < n; i++) {
            rope_apply(c, c->q + i * c->q_dim, cfg->n_heads, i);
            rope_apply(c, c->k + i * c->kv_dim, cfg->n_kv_heads, i);
            size_t slot = layer_base + (size_t)(base[i] + position[i]) * (size_t)c->kv_dim;
            cache_store(c, slot, c->k + i * c->kv_dim, c->v + i * c->kv_dim);
        }
        attend_packed(c, l, position, base, n);
        layer_feed_forward(c, w, n, false);
    }
    batch_logits(c, 0, n, out);
}

tm_status tm_context_eval_rows_packed(tm_context *context, const int32_t *tokens, const size_t *lengths,
                                      size_t n_sequences, float *logits, tm_error *err) {
    if (!context || !tokens || !lengths || !logits || n_sequences == 0)
        return tm_error_set(err, TM_ERR_ARGUMENT, "no sequences to evaluate");
    size_t total = 0;
    for (size_t s = 0; s < n_sequences; s++) {
        if (lengths[s] == 0) return tm_error_set(err, TM_ERR_ARGUMENT, "sequence %zu has no tokens", s);
        if (!tm_add_size(total, lengths[s], &total) || total > (size_t)context->n_ctx)
            return tm_error_set(err, TM_ERR_LIMIT,
                                "context is full: the sequences up to %zu take more than its %d tokens (raise --ctx)",
                                s, context->n_ctx);
    }
    int32_t n_vocab = context->model->config.n_vocab;
    for (size_t i = 0; i < total; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return tm_error_set(err, TM_ERR_ARGUMENT, "token id %d at index %zu is outside the vocabulary (0..%d)",
                                tokens[i], i, n_vocab - 1);
    /* The cache holds several texts now, none of them a prefix to continue. */
    context->position = 0;
    int32_t position[BATCH_CAPACITY], base[BATCH_CAPACITY];
    size_t sequence = 0, within = 0, sequence_start = 0;
    for (size_t done = 0; done < total;) {
        size_t rows = total - done < BATCH_CAPACITY ? total - done : BATCH_CAPACITY;
        for (size_t r = 0; r < rows; r++) {
            while (within == lengths[sequence]) sequence_start += lengths[sequence++], within = 0;
            position[r] = (int32_t)within++;
            base[r] = (int32_t)sequence_start;
        }
        forward_packed(context, tokens + done, position, base, (int64_t)rows, logits + done * (size_t)n_vocab);
        done += rows;
    }
    return TM_OK;
}
