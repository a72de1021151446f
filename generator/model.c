/* Loading a Llama-family model from a GGUF file or a llama2.c checkpoint into
 * a tm_model: hyper-parameters from the metadata (or the 7-int header) and a
 * view of every weight tensor inside the mapped file. Every tensor a forward
 * pass touches is checked here for presence, shape and type, so the forward
 * pass never has to; nothing is copied, nothing is trusted. */
#include "tracemark/generator.h"

#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tm_model_format_name(tm_model_format format) {
    return format == TM_MODEL_FORMAT_GGUF ? "gguf" : "llama2.c";
}

void tm_model_free(tm_model *model) {
    if (!model) return;
    free(model->layers);
    tm_gguf_close(model->gguf);
    tm_mapped_file_close(&model->checkpoint);
    free(model->path);
    free(model);
}

static uint64_t tensor_elements(const tm_tensor *t) { return t->data ? (uint64_t)(t->rows * t->cols) : 0; }

uint64_t tm_model_parameter_count(const tm_model *model) {
    uint64_t total = tensor_elements(&model->token_embedding) + tensor_elements(&model->output_norm);
    if (!model->config.tied_classifier) total += tensor_elements(&model->classifier);
    for (int32_t l = 0; l < model->config.n_layers; l++) {
        const tm_layer_weights *w = &model->layers[l];
        const tm_tensor *all[] = {&w->attn_norm, &w->wq, &w->wk, &w->wv, &w->wo,
                                  &w->ffn_norm, &w->w_gate, &w->w_up, &w->w_down};
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
    if (vector ? t->type != TM_GGML_F32 : !tm_kernel_supports(t->type))
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "%s: unsupported tensor type %s for %s%s", g->file.path,
                            type_name ? type_name : "?", name, vector ? " (norm weights must be F32)" : "");
    out->type = t->type;
    out->data = t->data;
    out->rows = vector ? 1 : rows;
    out->cols = cols;
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
    if (!tm_string_view_equals(text, "llama"))
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "%s: unsupported architecture '%.*s' (supported: llama)", path,
                            (int)(text.size > 64 ? 64 : text.size), text.data);
    snprintf(c->architecture, sizeof c->architecture, "llama");
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
        (status = gguf_float(g, arch, "rope.freq_base", 10000.0, &c->rope_freq_base, err)))
        return status;
    if (c->n_heads <= 0) return tm_error_set(err, TM_ERR_FORMAT, "%s: %s.attention.head_count is 0", path, arch);
    if ((status = gguf_int(g, arch, "attention.key_length", false, c->dim / c->n_heads, &c->head_dim, err)))
        return status;
    int32_t rope_dims = c->head_dim;
    if ((status = gguf_int(g, arch, "rope.dimension_count", false, c->head_dim, &rope_dims, err))) return status;
    if (rope_dims != c->head_dim)
        return tm_error_set(err, TM_ERR_UNSUPPORTED, "%s: partial rotary embeddings (%d of %d dimensions)", path,
                            rope_dims, c->head_dim);
    c->rope_style = TM_ROPE_NORMAL;
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

    model->layers = tm_alloc_array((size_t)c->n_layers, sizeof *model->layers, err);
    if (!model->layers) return TM_ERR_NOMEM;
    for (int32_t l = 0; l < c->n_layers; l++) {
        tm_layer_weights *w = &model->layers[l];
        struct { const char *suffix; int64_t cols, rows; bool vector; tm_tensor *out; } wanted[] = {
            {"attn_norm", D, 1, true, &w->attn_norm}, {"attn_q", D, Q, false, &w->wq},
            {"attn_k", D, KV, false, &w->wk},         {"attn_v", D, KV, false, &w->wv},
            {"attn_output", Q, D, false, &w->wo},     {"ffn_norm", D, 1, true, &w->ffn_norm},
            {"ffn_gate", D, H, false, &w->w_gate},    {"ffn_up", D, H, false, &w->w_up},
            {"ffn_down", H, D, false, &w->w_down},
        };
        for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, wanted[i].suffix);
            status = gguf_tensor(g, name, wanted[i].cols, wanted[i].rows, wanted[i].vector, false, wanted[i].out, err);
            if (status != TM_OK) return status;
        }
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

tm_status tm_model_tokenizer(tm_tokenizer **out, const tm_model *model, const char *tokenizer_path, tm_error *err) {
    *out = NULL;
    tm_status status;
    if (tokenizer_path && *tokenizer_path) {
        status = tm_tokenizer_load(out, tokenizer_path, err);
    } else if (model->format == TM_MODEL_FORMAT_GGUF) {
        status = tm_tokenizer_from_gguf(out, model->gguf, err);
    } else {
        return tm_error_set(err, TM_ERR_ARGUMENT,
                            "%s: a llama2.c checkpoint carries no tokenizer; pass one with --tokenizer (tokenizer.bin)",
                            model->path);
    }
    if (status != TM_OK) return status;
    int32_t size = tm_tokenizer_vocab_size(*out);
    if (size != model->config.n_vocab) {
        tm_tokenizer_free(*out);
        *out = NULL;
        return tm_error_set(err, TM_ERR_FORMAT, "tokenizer %s has %d tokens but the model %s has a vocabulary of %d",
                            tokenizer_path && *tokenizer_path ? tokenizer_path : "(from the model)", size, model->path,
                            model->config.n_vocab);
    }
    return TM_OK;
}
