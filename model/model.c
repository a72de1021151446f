/* Loading a Llama-family model (llama: Llama 1/2/3, TinyLlama, SmolLM; qwen2)
 * from a GGUF file or a llama2.c checkpoint into a tm_model: hyper-parameters
 * from the metadata (or the 7-int header) and a view of every weight tensor
 * inside the mapped file. Every tensor a forward pass touches is checked here
 * for presence, shape, type (and rope factors for their values), so the
 * forward pass never has to; a tensor or setting the forward pass would not
 * apply (a fused QKV, an output bias, YaRN rope scaling) is refused rather
 * than silently ignored, as llama.cpp refuses it. Nothing is copied, nothing
 * is trusted. */
#include "tracemark/model.h"

#include "model_internal.h"
#include "quantize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tm_model_format_name(tm_model_format format) {
    return format == TM_MODEL_FORMAT_GGUF ? "gguf" : "llama2.c";
}

static const char *const architecture_names[TM_ARCH_COUNT] = {"llama", "qwen2"};

const char *tm_architecture_name(tm_architecture arch) {
    return (unsigned)arch < TM_ARCH_COUNT ? architecture_names[arch] : NULL;
}

const char *tm_architecture_names(void) { return "llama, qwen2"; }

void tm_model_free(tm_model *model) {
    if (!model) return;
    tm_model_free_engine_weights(model);
    free(model->layers);
    tm_gguf_close(model->gguf);
    tm_mapped_file_close(&model->checkpoint);
    free(model->path);
    free(model);
}

static uint64_t tensor_elements(const tm_tensor *t) { return t->data ? (uint64_t)(t->rows * t->cols) : 0; }

uint64_t tm_model_parameter_count(const tm_model *model) {
    uint64_t total = tensor_elements(&model->token_embedding) + tensor_elements(&model->output_norm) +
                     tensor_elements(&model->rope_factors);
    if (!model->config.tied_classifier) total += tensor_elements(&model->classifier);
    for (int32_t l = 0; l < model->config.n_layers; l++) {
        const tm_layer_weights *w = &model->layers[l];
        const tm_tensor *all[] = {&w->attn_norm, &w->wq, &w->wk, &w->wv, &w->wo, &w->ffn_norm,
                                  &w->w_gate,    &w->w_up, &w->w_down, &w->bq, &w->bk, &w->bv};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) total += tensor_elements(all[i]);
    }
    return total;
}

/* Hyper-parameters every format must satisfy before tensors are sized from them. */
static tm_status check_config(const tm_model_config *c, const char *path, tm_error *err) {
    if (c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->n_vocab <= 0 || c->context_length <= 0)
        return tm_error_set(err, TM_ERR_FORMAT,
                            "%s: non-positive hyper-parameter (dim %d, hidden %d, layers %d, heads %d, kv heads %d, "
                            "vocab %d, context %d)",
                            path, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->n_vocab,
                            c->context_length);
    if (c->n_heads % c->n_kv_heads != 0)
        return tm_error_set(err, TM_ERR_FORMAT, "%s: %d heads is not a multiple of %d kv heads", path, c->n_heads,
                            c->n_kv_heads);
    if (c->head_dim <= 0 || c->head_dim % 2 != 0)
        return tm_error_set(err, TM_ERR_FORMAT, "%s: head size %d must be positive and even", path, c->head_dim);
    if (c->n_layers > 4096 || c->dim > (1 << 20) || c->hidden_dim > (1 << 22) || c->n_heads > 4096 ||
        c->head_dim > 4096 || c->n_vocab > (1 << 24))
        return tm_error_set(err, TM_ERR_FORMAT, "%s: hyper-parameters beyond any supported model", path);
    if (!(c->norm_eps > 0 && c->norm_eps < 1) || !(c->rope_freq_base > 0) || !isfinite(c->rope_freq_base))
        return tm_error_set(err, TM_ERR_FORMAT, "%s: bad norm epsilon %g or rope base %g", path, c->norm_eps,
                            c->rope_freq_base);
    if (!(c->rope_freq_scale > 0) || !isfinite(c->rope_freq_scale))
        return tm_error_set(err, TM_ERR_FORMAT, "%s: bad rope frequency scale %g", path, c->rope_freq_scale);
    return TM_OK;
}

/* ---- llama2.c checkpoints ------------------------------------------------ */

/* Cut the next rows x cols float matrix out of the checkpoint. */
static tm_tensor take_f32(const float **cursor, int64_t rows, int64_t cols) {
    tm_tensor t = {.type = TM_GGML_F32, .data = *cursor, .rows = rows, .cols = cols};
    *cursor += rows * cols;
    return t;
}

static tm_status load_llama2c(tm_model *model, const char *path, tm_error *err) {
    tm_status status = tm_mapped_file_open(&model->checkpoint, path, err);
    if (status != TM_OK) return status;
    const tm_mapped_file *file = &model->checkpoint;
    if (file->size < 28)
        return tm_error_set(err, TM_ERR_FORMAT, "%s: %zu bytes is too short for a llama2.c header (28 bytes)", path,
                            file->size);
    int32_t header[7];
    memcpy(header, file->data, sizeof header);
    if (header[0] == 0x616b3432) /* "ak42": llama2.c's newer export formats */
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "%s: llama2.c export format version %d is not supported (only the legacy header)",
                            path, file->size >= 8 ? header[1] : -1);
    tm_model_config *c = &model->config;
    snprintf(c->architecture, sizeof c->architecture, "llama");
    c->arch = TM_ARCH_LLAMA;
    snprintf(c->name, sizeof c->name, "llama2.c checkpoint");
    c->dim = header[0];
    c->hidden_dim = header[1];
    c->n_layers = header[2];
    c->n_heads = header[3];
    c->n_kv_heads = header[4];
    c->tied_classifier = header[5] > 0;
    c->n_vocab = header[5] == INT32_MIN ? 0 : abs(header[5]);
    c->context_length = header[6];
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    c->norm_eps = 1e-5f;
    c->rope_freq_base = 10000.0f;
    c->rope_freq_scale = 1.0f;
    c->rope_style = TM_ROPE_NORMAL;
    if ((status = check_config(c, path, err)) != TM_OK) return status;
    if (c->dim % c->n_heads != 0)
        return tm_error_set(err, TM_ERR_FORMAT, "%s: dim %d is not a multiple of %d heads", path, c->dim, c->n_heads);

    /* Count the floats the header promises, with overflow checks, before touching any. */
    uint64_t d = (uint64_t)c->dim, h = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers, V = (uint64_t)c->n_vocab;
    uint64_t kv = (uint64_t)c->n_kv_heads * (uint64_t)c->head_dim, hd = (uint64_t)c->head_dim;
    uint64_t per_layer = d + d * d + 2 * d * kv + d * d + d + 3 * d * h;
    uint64_t floats = V * d + L * per_layer + d + (uint64_t)c->context_length * hd + (c->tied_classifier ? 0 : V * d);
    uint64_t expected = 28 + floats * 4;
    if (expected != file->size)
        return tm_error_set(err, TM_ERR_FORMAT,
                            "%s: file has %zu bytes but its header (dim %d, hidden %d, layers %d, vocab %d, seq %d) "
                            "implies %llu",
                            path, file->size, c->dim, c->hidden_dim, c->n_layers, c->n_vocab, c->context_length,
                            (unsigned long long)expected);

    model->layers = tm_alloc_array((size_t)c->n_layers, sizeof *model->layers, err);
    if (!model->layers) return TM_ERR_NOMEM;
    const float *cursor = (const float *)(file->data + 28);
    int64_t D = c->dim, H = c->hidden_dim, KV = (int64_t)kv, Q = (int64_t)c->n_heads * c->head_dim;
    model->token_embedding = take_f32(&cursor, c->n_vocab, D);
    /* llama2.c stores each weight kind for all layers together. */
    for (int32_t l = 0; l < c->n_layers; l++) model->layers[l].attn_norm = take_f32(&cursor, 1, D);
    for (int32_t l = 0; l < c->n_layers; l++) model->layers[l].wq = take_f32(&cursor, Q, D);
    for (int32_t l = 0; l < c->n_layers; l++) model->layers[l].wk = take_f32(&cursor, KV, D);
    for (int32_t l = 0; l < c->n_layers; l++) model->layers[l].wv = take_f32(&cursor, KV, D);
    for (int32_t l = 0; l < c->n_layers; l++) model->layers[l].wo = take_f32(&cursor, D, Q);
    for (int32_t l = 0; l < c->n_layers; l++) model->layers[l].ffn_norm = take_f32(&cursor, 1, D);
    for (int32_t l = 0; l < c->n_layers; l++) model->layers[l].w_gate = take_f32(&cursor, H, D);
    for (int32_t l = 0; l < c->n_layers; l++) model->layers[l].w_down = take_f32(&cursor, D, H);
    for (int32_t l = 0; l < c->n_layers; l++) model->layers[l].w_up = take_f32(&cursor, H, D);
    model->output_norm = take_f32(&cursor, 1, D);
    cursor += (int64_t)c->context_length * c->head_dim; /* legacy RoPE tables, recomputed instead */
    model->classifier = c->tied_classifier ? model->token_embedding : take_f32(&cursor, c->n_vocab, D);
    return TM_OK;
}

/* ---- GGUF ------------------------------------------------------------------ */

static tm_status gguf_int(const tm_gguf *g, const char *arch, const char *suffix, bool required, int64_t fallback,
                          int32_t *out, tm_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint64_t value;
    if (tm_gguf_get_u64(g, key, &value)) {
        if (value > INT32_MAX)
            return tm_error_set(err, TM_ERR_FORMAT, "%s: %s = %llu is out of range", g->file.path, key,
                                (unsigned long long)value);
        *out = (int32_t)value;
        return TM_OK;
    }
    if (tm_gguf_find(g, key))
        return tm_error_set(err, TM_ERR_FORMAT, "%s: %s must be a non-negative integer", g->file.path, key);
    if (required) return tm_error_set(err, TM_ERR_FORMAT, "%s: missing metadata %s", g->file.path, key);
    *out = (int32_t)fallback;
    return TM_OK;
}

static tm_status gguf_float(const tm_gguf *g, const char *arch, const char *suffix, double fallback, float *out,
                            tm_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double value = fallback;
    if (!tm_gguf_get_f64(g, key, &value) && tm_gguf_find(g, key))
        return tm_error_set(err, TM_ERR_FORMAT, "%s: %s must be a number", g->file.path, key);
    *out = (float)value;
    return TM_OK;
}

/* Find a tensor, check its shape [cols, rows] (GGUF order) and its type. */
static tm_status gguf_tensor(const tm_gguf *g, const char *name, int64_t cols, int64_t rows, bool vector,
                             bool optional, tm_tensor *out, tm_error *err) {
    const tm_gguf_tensor *t = tm_gguf_find_tensor(g, name);
    memset(out, 0, sizeof *out);
    if (!t) {
        if (optional) return TM_OK;
        return tm_error_set(err, TM_ERR_FORMAT, "%s: missing tensor %s", g->file.path, name);
    }
    bool shape_ok = vector ? (t->n_elements == (uint64_t)cols && t->ne[0] == (uint64_t)cols)
                           : (t->ne[0] == (uint64_t)cols && t->ne[1] == (uint64_t)rows && t->ne[2] == 1 && t->ne[3] == 1);
    if (!shape_ok)
        return tm_error_set(err, TM_ERR_FORMAT,
                            "%s: tensor %s has shape [%llu, %llu, %llu, %llu], expected [%lld, %lld]", g->file.path,
                            name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                            (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], (long long)cols,
                            (long long)(vector ? 1 : rows));
    const char *type_name = tm_ggml_type_name(t->type);
    if (vector ? t->type != TM_GGML_F32 : !tm_quantize_can_read(t->type))
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "%s: unsupported tensor type %s for %s%s", g->file.path,
                            type_name ? type_name : "?", name,
                            vector ? " (norms, biases and rope factors must be F32)" : "");
    out->type = t->type;
    out->data = t->data;
    out->rows = vector ? 1 : rows;
    out->cols = cols;
    return TM_OK;
}

/* <arch>.rope.scaling.*, read as llama.cpp reads it: the type defaults to
 * linear, whose factor (rope.scaling.factor, else the older
 * rope.scale_linear; 0 or absent means 1) divides every rotation angle;
 * "none" ignores the factor. YaRN and LongRoPE reshape the angles per
 * frequency and rescale attention, which this forward pass does not do, so
 * they are refused by name. */
static tm_status gguf_rope_scaling(const tm_gguf *g, const char *arch, tm_model_config *c, tm_error *err) {
    const char *path = g->file.path;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    tm_string_view type = {"linear", 6};
    if (!tm_gguf_get_string(g, key, &type) && tm_gguf_find(g, key))
        return tm_error_set(err, TM_ERR_FORMAT, "%s: %s must be a string", path, key);
    bool none = tm_string_view_equals(type, "none");
    if (!none && !tm_string_view_equals(type, "linear"))
        return tm_error_set(err, TM_ERR_UNSUPPORTED,
                            "%s: rope scaling type '%.*s' (%s) is not supported (supported: none, linear)", path,
                            (int)(type.size > 64 ? 64 : type.size), type.data, key);
    float factor = 0;
    tm_status status;
    snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
    const char *suffix = tm_gguf_find(g, key) ? "rope.scaling.factor" : "rope.scale_linear";
    if ((status = gguf_float(g, arch, suffix, 0.0, &factor, err))) return status;
    if (!(factor >= 0) || !isfinite(factor))
        return tm_error_set(err, TM_ERR_FORMAT, "%s: %s.%s = %g must be positive (or 0 for none)", path, arch,
                            suffix, (double)factor);
    c->rope_freq_scale = none || factor == 0 ? 1.0f : 1.0f / factor;
    float attention_factor = 1;
    if ((status = gguf_float(g, arch, "rope.scaling.attn_factor", 1.0, &attention_factor, err))) return status;
    if (attention_factor != 1)
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "%s: %s.rope.scaling.attn_factor %g is not supported (only 1)",
                            path, arch, (double)attention_factor);
    return TM_OK;
}

/* llama.cpp refuses a file holding tensors its graph would not use ("wrong
 * number of tensors"); so do we, naming the first, because a bias or a fused
 * matrix left out would give wrong logits without a word. */
static bool known_tensor(tm_string_view name, const tm_model_config *c) {
    static const char *const globals[] = {"token_embd.weight", "output_norm.weight", "output.weight",
                                          "rope_freqs.weight"};
    size_t n_globals = c->arch == TM_ARCH_LLAMA ? 4 : 3; /* llama.cpp's qwen2 graph takes no rope factors */
    for (size_t i = 0; i < n_globals; i++)
        if (tm_string_view_equals(name, globals[i])) return true;
    if (name.size < 6 || memcmp(name.data, "blk.", 4) != 0) return false;
    uint64_t layer = 0;
    size_t i = 4;
    while (i < name.size && name.data[i] >= '0' && name.data[i] <= '9' && layer <= (uint64_t)c->n_layers)
        layer = layer * 10 + (uint64_t)(name.data[i++] - '0');
    if (i == 4 || layer >= (uint64_t)c->n_layers) return false;
    static const char *const per_layer[] = {
        "attn_norm.weight", "attn_q.weight",   "attn_k.weight", "attn_v.weight", "attn_output.weight",
        "ffn_norm.weight",  "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", "attn_q.bias",
        "attn_k.bias",      "attn_v.bias",
    };
    for (size_t k = 0; k < sizeof per_layer / sizeof per_layer[0]; k++) {
        char expected[96];
        snprintf(expected, sizeof expected, "blk.%llu.%s", (unsigned long long)layer, per_layer[k]);
        if (tm_string_view_equals(name, expected)) return true;
    }
    return false;
}

/* rope_freqs.weight divides each pair's angle: a zero, negative or
 * non-finite factor would turn every rotation into NaN. */
static tm_status check_rope_factors(const tm_gguf *g, const tm_tensor *factors, tm_error *err) {
    for (int64_t i = 0; i < factors->cols; i++) {
        float f;
        memcpy(&f, (const uint8_t *)factors->data + (size_t)i * sizeof f, sizeof f);
        if (!(f > 0) || !isfinite(f))
            return tm_error_set(err, TM_ERR_FORMAT, "%s: rope_freqs.weight[%lld] = %g must be positive and finite",
                                g->file.path, (long long)i, (double)f);
    }
    return TM_OK;
}

static tm_status load_gguf(tm_model *model, const char *path, tm_error *err) {
    tm_status status = tm_gguf_open(&model->gguf, path, err);
    if (status != TM_OK) return status;
    const tm_gguf *g = model->gguf;
    tm_model_config *c = &model->config;
    tm_string_view text;
    if (!tm_gguf_get_string(g, "general.architecture", &text))
        return tm_error_set(err, TM_ERR_FORMAT, "%s: missing metadata general.architecture", path);
    c->arch = TM_ARCH_COUNT;
    for (int a = 0; a < TM_ARCH_COUNT; a++)
        if (tm_string_view_equals(text, architecture_names[a])) c->arch = (tm_architecture)a;
    if (c->arch == TM_ARCH_COUNT)
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "%s: unsupported architecture '%.*s' (supported: %s)", path,
                            (int)(text.size > 64 ? 64 : text.size), text.data, tm_architecture_names());
    snprintf(c->architecture, sizeof c->architecture, "%s", architecture_names[c->arch]);
    if (tm_gguf_get_string(g, "general.name", &text))
        snprintf(c->name, sizeof c->name, "%.*s", (int)(text.size > 127 ? 127 : text.size), text.data);
    const char *arch = c->architecture;
    if ((status = gguf_int(g, arch, "embedding_length", true, 0, &c->dim, err)) ||
        (status = gguf_int(g, arch, "feed_forward_length", true, 0, &c->hidden_dim, err)) ||
        (status = gguf_int(g, arch, "block_count", true, 0, &c->n_layers, err)) ||
        (status = gguf_int(g, arch, "attention.head_count", true, 0, &c->n_heads, err)) ||
        (status = gguf_int(g, arch, "attention.head_count_kv", false, c->n_heads, &c->n_kv_heads, err)) ||
        (status = gguf_int(g, arch, "context_length", true, 0, &c->context_length, err)) ||
        (status = gguf_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-5, &c->norm_eps, err)) ||
        (status = gguf_float(g, arch, "rope.freq_base", 10000.0, &c->rope_freq_base, err)) ||
        (status = gguf_rope_scaling(g, arch, c, err)))
        return status;
    if (c->n_heads <= 0) return tm_error_set(err, TM_ERR_FORMAT, "%s: %s.attention.head_count is 0", path, arch);
    if ((status = gguf_int(g, arch, "attention.key_length", false, c->dim / c->n_heads, &c->head_dim, err)))
        return status;
    int32_t rope_dims = c->head_dim;
    if ((status = gguf_int(g, arch, "rope.dimension_count", false, c->head_dim, &rope_dims, err))) return status;
    if (rope_dims != c->head_dim)
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "%s: partial rotary embeddings (%d of %d dimensions)", path,
                            rope_dims, c->head_dim);
    /* As llama.cpp's llama_model_rope_type: Llama rotates adjacent pairs, Qwen2 halves. */
    c->rope_style = c->arch == TM_ARCH_QWEN2 ? TM_ROPE_NEOX : TM_ROPE_NORMAL;
    const tm_gguf_tensor *embedding = tm_gguf_find_tensor(g, "token_embd.weight");
    if (!embedding) return tm_error_set(err, TM_ERR_FORMAT, "%s: missing tensor token_embd.weight", path);
    c->n_vocab = embedding->ne[1] > INT32_MAX ? 0 : (int32_t)embedding->ne[1];
    if ((status = check_config(c, path, err))) return status;

    int64_t D = c->dim, H = c->hidden_dim, Q = (int64_t)c->n_heads * c->head_dim;
    int64_t KV = (int64_t)c->n_kv_heads * c->head_dim, V = c->n_vocab;
    if ((status = gguf_tensor(g, "token_embd.weight", D, V, false, false, &model->token_embedding, err)) ||
        (status = gguf_tensor(g, "output_norm.weight", D, 1, true, false, &model->output_norm, err)) ||
        (status = gguf_tensor(g, "output.weight", D, V, false, true, &model->classifier, err)))
        return status;
    c->tied_classifier = model->classifier.data == NULL;
    if (c->tied_classifier) model->classifier = model->token_embedding;
    if (c->arch == TM_ARCH_LLAMA) {
        if ((status = gguf_tensor(g, "rope_freqs.weight", c->head_dim / 2, 1, true, true, &model->rope_factors, err)))
            return status;
        if (model->rope_factors.data && (status = check_rope_factors(g, &model->rope_factors, err))) return status;
    }

    model->layers = tm_alloc_array((size_t)c->n_layers, sizeof *model->layers, err);
    if (!model->layers) return TM_ERR_NOMEM;
    for (int32_t l = 0; l < c->n_layers; l++) {
        tm_layer_weights *w = &model->layers[l];
        struct { const char *name; int64_t cols, rows; bool vector, optional; tm_tensor *out; } wanted[] = {
            {"attn_norm.weight", D, 1, true, false, &w->attn_norm},
            {"attn_q.weight", D, Q, false, false, &w->wq},
            {"attn_k.weight", D, KV, false, false, &w->wk},
            {"attn_v.weight", D, KV, false, false, &w->wv},
            {"attn_output.weight", Q, D, false, false, &w->wo},
            {"ffn_norm.weight", D, 1, true, false, &w->ffn_norm},
            {"ffn_gate.weight", D, H, false, false, &w->w_gate},
            {"ffn_up.weight", D, H, false, false, &w->w_up},
            {"ffn_down.weight", H, D, false, false, &w->w_down},
            /* Optional for both families, as in llama.cpp's create_tensor_qkv. */
            {"attn_q.bias", Q, 1, true, true, &w->bq},
            {"attn_k.bias", KV, 1, true, true, &w->bk},
            {"attn_v.bias", KV, 1, true, true, &w->bv},
        };
        for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s", l, wanted[i].name);
            status = gguf_tensor(g, name, wanted[i].cols, wanted[i].rows, wanted[i].vector, wanted[i].optional,
                                 wanted[i].out, err);
            if (status != TM_OK) return status;
        }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        tm_string_view name = g->tensors[i].name;
        if (!known_tensor(name, c))
            return tm_error_set(err, TM_ERR_UNSUPPORTED,
                                "%s: tensor %.*s is not used by the %s forward pass (unsupported)", path,
                                (int)(name.size > 96 ? 96 : name.size), name.data, arch);
    }
    return TM_OK;
}

tm_status tm_model_load(tm_model **out, const char *path, tm_error *err) {
    *out = NULL;
    tm_model *model = tm_alloc_array(1, sizeof *model, err);
    if (!model) return TM_ERR_NOMEM;
    model->path = tm_strdup(path, err);
    if (!model->path) {
        free(model);
        return TM_ERR_NOMEM;
    }
    tm_mapped_file probe;
    tm_status status = tm_mapped_file_open(&probe, path, err);
    if (status != TM_OK) {
        tm_model_free(model);
        return status;
    }
    bool is_gguf = probe.size >= 4 && memcmp(probe.data, "GGUF", 4) == 0;
    tm_mapped_file_close(&probe);
    model->format = is_gguf ? TM_MODEL_FORMAT_GGUF : TM_MODEL_FORMAT_LLAMA2C;
    status = is_gguf ? load_gguf(model, path, err) : load_llama2c(model, path, err);
    if (status != TM_OK) {
        tm_model_free(model);
        return status;
    }
    *out = model;
    return TM_OK;
}
