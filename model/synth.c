/* Synthetic Llama and Qwen2 models of real shapes: the table of known
 * shapes, the metadata a llama.cpp-compatible loader needs (under the
 * architecture's own key prefix), a real tokenizer's tokenizer.* metadata
 * copied from another GGUF, and random weights streamed through the
 * quantizer into the GGUF writer a slab of rows at a time (in llama.cpp's
 * tensor order, with llama.cpp's per-tensor types for the chosen file type).
 * The same options always give the same bytes, which is what lets a test
 * rebuild a model and prove, by its SHA-256, that a reference computed by
 * llama.cpp belongs to it. This file must never hold a whole large tensor in
 * memory and never leave a partial file behind; the weights it writes are
 * for speed measurements and engine comparisons only and must not be
 * mistaken for a model. */
#include "quantize.h"

#include "gguf_writer.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================== */
/* Known shapes                                                              */
/* ======================================================================== */

static const char llama2_vocab[] = "models/llama-2-tiny-random.gguf";
static const char llama3_vocab[] = "tokenizer-tests/ggml-vocab-llama-bpe.gguf";

/* Context lengths are kept small enough for a benchmark's KV cache (Llama 3.2
 * was trained to 131072); --ctx overrides them. SmolLM's own vocabulary (49152
 * tokens) is not in ../shared, so its default is Llama 2's 32000; nor is
 * Qwen2's (151936), so its default is the nearest there, Llama 3's
 * byte-level BPE of 128256. */
#define SHAPE(name_, dim_, layers_, heads_, kv_heads_, hidden_, context_, base_, eps_, tied_, factors_, vocab_, arch_) \
    {.name = name_, .dim = dim_, .n_layers = layers_, .n_heads = heads_, .n_kv_heads = kv_heads_,                   \
     .hidden_dim = hidden_, .context_length = context_, .rope_freq_base = base_, .norm_eps = eps_,                   \
     .tied_embeddings = tied_, .llama3_rope_factors = factors_, .default_tokenizer = vocab_, .architecture = arch_}
static const tm_synth_shape shapes[] = {
    SHAPE("llama2-110m", 768, 12, 12, 12, 2048, 1024, 10000.0f, 1e-5f, false, false, llama2_vocab, TM_ARCH_LLAMA),
    SHAPE("tinyllama-1.1b", 2048, 22, 32, 4, 5632, 2048, 10000.0f, 1e-5f, false, false, llama2_vocab, TM_ARCH_LLAMA),
    SHAPE("llama2-7b", 4096, 32, 32, 32, 11008, 4096, 10000.0f, 1e-5f, false, false, llama2_vocab, TM_ARCH_LLAMA),
    SHAPE("smollm-135m", 576, 30, 9, 3, 1536, 2048, 10000.0f, 1e-5f, true, false, llama2_vocab, TM_ARCH_LLAMA),
    SHAPE("llama3-1b", 2048, 16, 32, 8, 8192, 4096, 500000.0f, 1e-5f, true, true, llama3_vocab, TM_ARCH_LLAMA),
    SHAPE("qwen2-0.5b", 896, 24, 14, 2, 4864, 4096, 1000000.0f, 1e-6f, true, false, llama3_vocab, TM_ARCH_QWEN2),
};
#undef SHAPE
enum { N_SHAPES = sizeof shapes / sizeof shapes[0] };

bool tm_synth_lookup(const char *like, tm_synth_shape *shape) {
    for (size_t i = 0; i < N_SHAPES; i++)
        if (like && !strcmp(like, shapes[i].name)) {
            *shape = shapes[i];
            return true;
        }
    return false;
}

const char *tm_synth_names(void) {
    return "llama2-110m, tinyllama-1.1b, llama2-7b, smollm-135m, llama3-1b, qwen2-0.5b";
}

/* ======================================================================== */
/* Tensors                                                                   */
/* ======================================================================== */

typedef enum { FILL_RANDOM, FILL_ONES, FILL_ROPE_FACTORS, FILL_BIAS, FILL_QUERY_KEY } fill_kind;

typedef struct {
    char name[TM_GGUF_MAX_TENSOR_NAME];
    uint32_t n_dims;
    uint64_t ne[4];
    fill_kind fill;
    uint32_t type;
} synth_tensor;

static void add(synth_tensor *list, size_t *n, const char *name, uint64_t ne0, uint64_t ne1, fill_kind fill) {
    synth_tensor *t = &list[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = ne1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1 ? ne1 : 1;
    t->ne[2] = t->ne[3] = 1;
    t->fill = fill;
}

static int tensor_compare(const void *a, const void *b) {
    return tm_quantize_compare_names(((const synth_tensor *)a)->name, ((const synth_tensor *)b)->name);
}

/* Llama 3.1/3.2's rope_freqs.weight as convert_hf_to_gguf.py computes it
 * (factor 32, low/high frequency factors 1 and 4, original context 8192
 * unless the shape says otherwise). */
static float rope_factor(int i, int head_dim, float base, double old_context) {
    const double factor = 32.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
    double freq = 1.0 / pow((double)base, (2.0 * i) / head_dim);
    double wavelen = 2.0 * M_PI / freq;
    double low_freq_wavelen = old_context / low_freq_factor, high_freq_wavelen = old_context / high_freq_factor;
    if (wavelen < high_freq_wavelen) return 1.0f;
    if (wavelen > low_freq_wavelen) return (float)factor;
    double smooth = (old_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
    return (float)(1.0 / ((1.0 - smooth) / factor + smooth));
}

/* N(0, std) by Box-Muller from the row's own stream. */
static void fill_random_row(float *x, int64_t n, float std, uint64_t seed, uint64_t tensor, uint64_t row) {
    tm_rng rng;
    tm_rng_seed(&rng, seed ^ ((tensor + 1) * 0xD1B54A32D192ED03ull) ^ ((row + 1) * 0x9E3779B97F4A7C15ull));
    const float two_pi = 6.28318530717958647692f;
    for (int64_t i = 0; i < n; i += 2) {
        float u1 = 1.0f - tm_rng_uniform(&rng); /* (0, 1]: log stays finite */
        float u2 = tm_rng_uniform(&rng);
        float radius = std * sqrtf(-2.0f * logf(u1));
        x[i] = radius * cosf(two_pi * u2);
        if (i + 1 < n) x[i + 1] = radius * sinf(two_pi * u2);
    }
}

static bool keep_tokenizer_key(const char *key, void *user) {
    (void)user;
    return strncmp(key, "tokenizer.", 10) == 0;
}

static tm_status check_shape(const tm_synth_shape *s, tm_error *err) {
    const int32_t limit = 1 << 20;
    if (s->dim < 1 || s->dim > limit || s->n_layers < 1 || s->n_layers > 10000 || s->n_heads < 1 ||
        s->n_kv_heads < 1 || s->hidden_dim < 1 || s->hidden_dim > limit || s->context_length < 1 ||
        s->context_length > (1 << 24))
        return tm_error_set(err, TM_ERR_ARGUMENT,
                            "synthetic model shape out of range: dim %d, layers %d, heads %d, kv heads %d, hidden %d, "
                            "context %d",
                            s->dim, s->n_layers, s->n_heads, s->n_kv_heads, s->hidden_dim, s->context_length);
    if (s->dim % s->n_heads || (s->dim / s->n_heads) % 2)
        return tm_error_set(err, TM_ERR_ARGUMENT, "dim %d must split into %d heads of an even size", s->dim,
                            s->n_heads);
    if (s->n_heads % s->n_kv_heads)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%d heads cannot be shared by %d kv heads", s->n_heads,
                            s->n_kv_heads);
    if (!(s->rope_freq_base > 0) || !isfinite(s->rope_freq_base) || !(s->norm_eps > 0 && s->norm_eps < 1))
        return tm_error_set(err, TM_ERR_ARGUMENT, "bad rope base %g or norm epsilon %g", (double)s->rope_freq_base,
                            (double)s->norm_eps);
    if (!tm_architecture_name(s->architecture))
        return tm_error_set(err, TM_ERR_ARGUMENT, "unknown architecture %d (known: %s)", (int)s->architecture,
                            tm_architecture_names());
    if (s->llama3_rope_factors && s->architecture != TM_ARCH_LLAMA)
        return tm_error_set(err, TM_ERR_ARGUMENT, "rope factors are a llama tensor; %s's graph has none",
                            tm_architecture_name(s->architecture));
    if (s->rope_original_context < 0 || s->rope_original_context > (1 << 24) || !(s->rope_linear_factor >= 0) ||
        !isfinite(s->rope_linear_factor) || !(s->bias_std >= 0) || !(s->bias_std <= 1000) || !(s->query_key_std >= 0) ||
        !(s->query_key_std <= 1000))
        return tm_error_set(err, TM_ERR_ARGUMENT,
                            "bad rope original context %d, linear rope factor %g, bias or query/key deviation %g, %g",
                            s->rope_original_context, (double)s->rope_linear_factor, (double)s->bias_std,
                            (double)s->query_key_std);
    return TM_OK;
}

static tm_status set_u32(tm_gguf_writer *w, const char *arch, const char *suffix, uint32_t value, tm_error *err) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return tm_gguf_writer_set_u32(w, key, value, err);
}

static tm_status set_f32(tm_gguf_writer *w, const char *arch, const char *suffix, float value, tm_error *err) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return tm_gguf_writer_set_f32(w, key, value, err);
}

enum { SLAB_BYTES = 64 << 20 };

/* The tokenizer GGUF whose vocabulary (and tokenizer.* metadata) the model
 * takes; *vocab is its token count. */
static tm_status open_vocabulary(const char *path, tm_gguf **out, uint64_t *vocab, tm_error *err) {
    tm_status status = tm_gguf_open(out, path, err);
    if (status) return status;
    const tm_gguf_value *tokens = tm_gguf_find(*out, "tokenizer.ggml.tokens");
    if (!tokens || tokens->type != TM_GGUF_ARRAY || tokens->as.array.element_type != TM_GGUF_STRING ||
        tokens->as.array.count == 0 || tokens->as.array.count > (1u << 24)) {
        tm_gguf_close(*out);
        *out = NULL;
        return tm_error_set(err, TM_ERR_FORMAT, "%s: no tokenizer.ggml.tokens string array to copy a vocabulary from",
                            path);
    }
    *vocab = tokens->as.array.count;
    return TM_OK;
}

/* The tensors of the model in llama.cpp's order, each with the type the
 * file type gives it, and the sizes the streaming step allocates for. */
typedef struct {
    synth_tensor *list;
    size_t n;
    uint64_t max_cols;    /* the longest row, in floats */
    uint64_t bytes_total; /* every tensor as F32, for progress */
} synth_plan;

/* Append the global tensors and each layer's (Qwen2 adds Q/K/V biases). */
static void list_tensors(const tm_synth_shape *s, uint64_t vocab, synth_plan *plan) {
    uint64_t D = (uint64_t)s->dim, H = (uint64_t)s->hidden_dim, head_dim = D / (uint64_t)s->n_heads;
    uint64_t kv_dim = head_dim * (uint64_t)s->n_kv_heads;
    bool biases = s->architecture == TM_ARCH_QWEN2;
    synth_tensor *list = plan->list;
    size_t *n = &plan->n;
    add(list, n, "token_embd.weight", D, vocab, FILL_RANDOM);
    add(list, n, "output_norm.weight", D, 0, FILL_ONES);
    if (!s->tied_embeddings) add(list, n, "output.weight", D, vocab, FILL_RANDOM);
    if (s->llama3_rope_factors) add(list, n, "rope_freqs.weight", head_dim / 2, 0, FILL_ROPE_FACTORS);
    for (int l = 0; l < s->n_layers; l++) {
        char name[TM_GGUF_MAX_TENSOR_NAME];
#define LAYER_TENSOR(suffix, ne0, ne1, fill)                          \
    snprintf(name, sizeof name, "blk.%d." suffix, l);                 \
    add(list, n, name, ne0, ne1, fill)
        LAYER_TENSOR("attn_norm.weight", D, 0, FILL_ONES);
        if (biases) {
            LAYER_TENSOR("attn_q.bias", D, 0, FILL_BIAS);
            LAYER_TENSOR("attn_k.bias", kv_dim, 0, FILL_BIAS);
            LAYER_TENSOR("attn_v.bias", kv_dim, 0, FILL_BIAS);
        }
        LAYER_TENSOR("attn_q.weight", D, D, FILL_QUERY_KEY);
        LAYER_TENSOR("attn_k.weight", D, kv_dim, FILL_QUERY_KEY);
        LAYER_TENSOR("attn_v.weight", D, kv_dim, FILL_RANDOM);
        LAYER_TENSOR("attn_output.weight", D, D, FILL_RANDOM);
        LAYER_TENSOR("ffn_norm.weight", D, 0, FILL_ONES);
        LAYER_TENSOR("ffn_gate.weight", D, H, FILL_RANDOM);
        LAYER_TENSOR("ffn_up.weight", D, H, FILL_RANDOM);
        LAYER_TENSOR("ffn_down.weight", H, D, FILL_RANDOM);
#undef LAYER_TENSOR
    }
}

/* List, sort into llama.cpp's order, and choose each tensor's type with
 * llama.cpp's rules for the file type. The caller frees plan->list. */
static tm_status plan_tensors(const tm_synth_options *o, uint64_t vocab, synth_plan *plan, tm_error *err) {
    const tm_synth_shape *s = &o->shape;
    *plan = (synth_plan){.max_cols = 1};
    plan->list = calloc(4 + 12 * (size_t)s->n_layers, sizeof *plan->list);
    if (!plan->list) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    list_tensors(s, vocab, plan);
    qsort(plan->list, plan->n, sizeof *plan->list, tensor_compare);

    tm_quantize_rules rules;
    tm_quantize_rules_init(&rules, o->ftype, false, tm_architecture_name(s->architecture), s->n_layers, s->n_heads,
                           s->n_kv_heads);
    for (size_t i = 0; i < plan->n; i++) tm_quantize_rules_count(&rules, plan->list[i].name);
    for (size_t i = 0; i < plan->n; i++) {
        synth_tensor *t = &plan->list[i];
        t->type = tm_quantize_rules_choose(&rules, t->name, t->ne, TM_GGML_F32);
        if (t->ne[0] > plan->max_cols) plan->max_cols = t->ne[0];
        plan->bytes_total += t->ne[0] * t->ne[1] * 4;
    }
    return TM_OK;
}

/* general.*, the hyper-parameters under the architecture's prefix
 * ("qwen2.block_count"), the file type, and the tokenizer's tokenizer.* keys,
 * in that order (the order is part of the file's bytes). */
static tm_status write_metadata(tm_gguf_writer *w, const tm_synth_options *o, uint64_t vocab, const tm_gguf *tok,
                                tm_error *err) {
    const tm_synth_shape *s = &o->shape;
    const char *arch = tm_architecture_name(s->architecture);
    uint32_t head_dim = (uint32_t)(s->dim / s->n_heads);
    char description[160];
    snprintf(description, sizeof description,
             "tracemark synthetic model: random N(0, 0.02) weights (seed %llu), for speed measurements only",
             (unsigned long long)o->seed);
    tm_status status;
    if ((status = tm_gguf_writer_set_string(w, "general.architecture", arch, err)) ||
        (status = tm_gguf_writer_set_string(w, "general.name", s->name, err)) ||
        (status = tm_gguf_writer_set_string(w, "general.description", description, err)) ||
        (status = set_u32(w, arch, "context_length", (uint32_t)s->context_length, err)) ||
        (status = set_u32(w, arch, "embedding_length", (uint32_t)s->dim, err)) ||
        (status = set_u32(w, arch, "block_count", (uint32_t)s->n_layers, err)) ||
        (status = set_u32(w, arch, "feed_forward_length", (uint32_t)s->hidden_dim, err)) ||
        (status = set_u32(w, arch, "rope.dimension_count", head_dim, err)) ||
        (status = set_u32(w, arch, "attention.head_count", (uint32_t)s->n_heads, err)) ||
        (status = set_u32(w, arch, "attention.head_count_kv", (uint32_t)s->n_kv_heads, err)) ||
        (status = set_f32(w, arch, "attention.layer_norm_rms_epsilon", s->norm_eps, err)) ||
        (status = set_f32(w, arch, "rope.freq_base", s->rope_freq_base, err)))
        return status;
    if (s->rope_linear_factor > 0) {
        char key[96];
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        if ((status = tm_gguf_writer_set_string(w, key, "linear", err)) ||
            (status = set_f32(w, arch, "rope.scaling.factor", s->rope_linear_factor, err)))
            return status;
    }
    if ((status = set_u32(w, arch, "vocab_size", (uint32_t)vocab, err)) ||
        (status = tm_gguf_writer_set_u32(w, "general.file_type", (uint32_t)o->ftype, err)) ||
        (status = tm_gguf_writer_set_u32(w, "general.quantization_version", 2, err)))
        return status;
    return tm_gguf_writer_copy_metadata(w, tok, keep_tokenizer_key, NULL, err);
}

/* What a row's values depend on besides its tensor and row number. */
typedef struct {
    uint64_t seed;
    float bias_std, query_key_std; /* the shape's, 0 replaced by 0.02 */
    int head_dim;
    float rope_freq_base;
    double old_context; /* the shape's rope_original_context, 0 replaced by 8192 */
} row_filler;

static row_filler row_filler_of(const tm_synth_options *o) {
    const tm_synth_shape *s = &o->shape;
    return (row_filler){
        .seed = o->seed,
        .bias_std = s->bias_std > 0 ? s->bias_std : 0.02f,
        .query_key_std = s->query_key_std > 0 ? s->query_key_std : 0.02f,
        .head_dim = s->dim / s->n_heads,
        .rope_freq_base = s->rope_freq_base,
        .old_context = s->rope_original_context > 0 ? (double)s->rope_original_context : 8192.0,
    };
}

/* Row `row` of tensor number `index` (its place in llama.cpp's order) as floats. */
static void fill_row(const row_filler *f, const synth_tensor *t, size_t index, uint64_t row, float *x) {
    int64_t cols = (int64_t)t->ne[0];
    switch (t->fill) {
    case FILL_RANDOM: fill_random_row(x, cols, 0.02f, f->seed, index, row); break;
    case FILL_BIAS: fill_random_row(x, cols, f->bias_std, f->seed, index, row); break;
    case FILL_QUERY_KEY: fill_random_row(x, cols, f->query_key_std, f->seed, index, row); break;
    case FILL_ONES:
        for (int64_t c = 0; c < cols; c++) x[c] = 1.0f;
        break;
    case FILL_ROPE_FACTORS:
        for (int64_t c = 0; c < cols; c++) x[c] = rope_factor((int)c, f->head_dim, f->rope_freq_base, f->old_context);
        break;
    }
}

/* Buffers of the streaming step: one row of floats per thread, one slab of
 * converted rows. */
typedef struct {
    int n_threads;
    uint64_t max_cols;
    float *scratch;
    uint8_t *slab;
} synth_buffers;

/* Fill, quantize and write tensor number `index` a slab of rows at a time,
 * the rows of a slab in parallel; *bytes_done counts F32 bytes for progress. */
static tm_status stream_tensor(tm_gguf_writer *w, const tm_synth_options *o, const row_filler *f,
                               const synth_plan *plan, size_t index, const synth_buffers *b, uint64_t *bytes_done,
                               tm_error *err) {
    const synth_tensor *t = &plan->list[index];
    int64_t cols = (int64_t)t->ne[0], rows = (int64_t)t->ne[1];
    uint64_t dst_row = tm_quantize_row_bytes(t->type, cols);
    int64_t per_slab = (int64_t)(SLAB_BYTES / dst_row); /* rows are at most 2^20 floats: >= 16 per slab */
    for (int64_t first = 0; first < rows; first += per_slab) {
        int64_t count = rows - first < per_slab ? rows - first : per_slab;
#pragma omp parallel for num_threads(b->n_threads) schedule(dynamic, 4)
        for (int64_t r = 0; r < count; r++) {
            float *x = b->scratch + (size_t)omp_get_thread_num() * (size_t)b->max_cols;
            fill_row(f, t, index, (uint64_t)(first + r), x);
            tm_quantize_row(t->type, x, b->slab + (uint64_t)r * dst_row, cols);
        }
        tm_status status = tm_gguf_writer_write(w, b->slab, (size_t)((uint64_t)count * dst_row), err);
        if (status) return status;
        *bytes_done += (uint64_t)count * (uint64_t)cols * 4;
        if (o->progress)
            o->progress(o->user, index, plan->n, t->name, TM_GGML_F32, t->type, *bytes_done, plan->bytes_total);
    }
    return TM_OK;
}

/* The data section: every tensor in the plan's order, with progress before
 * each tensor and after each slab. */
static tm_status stream_tensors(tm_gguf_writer *w, const tm_synth_options *o, const synth_plan *plan,
                                tm_error *err) {
    int n_threads = o->n_threads > 0 ? o->n_threads : omp_get_num_procs();
    synth_buffers b = {.n_threads = n_threads < 1 ? 1 : n_threads, .max_cols = plan->max_cols};
    b.scratch = tm_alloc_array((size_t)b.n_threads, (size_t)b.max_cols * sizeof(float), err);
    b.slab = tm_alloc_array(1, SLAB_BYTES, err);
    tm_status status = b.scratch && b.slab ? TM_OK : TM_ERR_NOMEM;
    row_filler f = row_filler_of(o);
    uint64_t bytes_done = 0;
    for (size_t i = 0; i < plan->n && !status; i++) {
        const synth_tensor *t = &plan->list[i];
        if (o->progress) o->progress(o->user, i, plan->n, t->name, TM_GGML_F32, t->type, bytes_done, plan->bytes_total);
        status = stream_tensor(w, o, &f, plan, i, &b, &bytes_done, err);
    }
    if (!status && o->progress) o->progress(o->user, plan->n, plan->n, "", 0, 0, plan->bytes_total, plan->bytes_total);
    free(b.scratch);
    free(b.slab);
    return status;
}

/* Metadata, the tensor infos, then the data; the writer renames the file
 * into place only when all of it is written. */
static tm_status write_file(const char *out_path, const tm_synth_options *o, uint64_t vocab, const tm_gguf *tok,
                            const synth_plan *plan, tm_error *err) {
    tm_gguf_writer *w = NULL;
    tm_status status = tm_gguf_writer_create(&w, out_path, 32, err);
    if (!status) status = write_metadata(w, o, vocab, tok, err);
    for (size_t i = 0; i < plan->n && !status; i++) {
        const synth_tensor *t = &plan->list[i];
        status = tm_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, err);
    }
    if (!status) status = tm_gguf_writer_begin_data(w, err);
    if (!status) status = stream_tensors(w, o, plan, err);
    if (!status) status = tm_gguf_writer_finish(w, err);
    tm_gguf_writer_free(w);
    return status;
}

tm_status tm_synth_write(const char *out_path, const tm_synth_options *o, tm_error *err) {
    tm_status status = check_shape(&o->shape, err);
    if (status) return status;
    if (tm_ftype_default_type(o->ftype) == TM_GGML_TYPE_LIMIT)
        return tm_error_set(err, TM_ERR_ARGUMENT, "unknown file type %d (known: %s)", (int)o->ftype, tm_ftype_names());
    tm_gguf *tok = NULL;
    uint64_t vocab = 0;
    if ((status = open_vocabulary(o->tokenizer_path, &tok, &vocab, err))) return status;
    synth_plan plan;
    status = plan_tensors(o, vocab, &plan, err);
    if (!status) status = write_file(out_path, o, vocab, tok, &plan, err);
    free(plan.list);
    tm_gguf_close(tok);
    return status;
}
