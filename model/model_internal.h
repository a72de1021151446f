/* Internal to model/ and the engine: the layouts of an opened GGUF file and
 * of a loaded model, which tracemark/model.h declares opaque. The reader
 * (gguf.c) and the loader (model.c) fill them; the writer's metadata copy
 * and the quantizer walk the GGUF's arrays; the forward pass
 * (generator/forward.c, which DESIGN.md lets use the model room) reads the
 * weights on every token without a call per access. Everything else goes
 * through the accessors in tracemark/model.h, so the layouts can change
 * without touching another room. Not part of the public API; no file
 * outside model/ and generator/forward.c includes it. */
#ifndef TRACEMARK_MODEL_INTERNAL_H
#define TRACEMARK_MODEL_INTERNAL_H

#include "tracemark/model.h"

struct tm_gguf {
    tm_mapped_file file;
    uint32_t version;
    uint64_t n_kv;
    tm_gguf_kv *kv;
    uint64_t n_tensors;
    tm_gguf_tensor *tensors; /* in the file's order */
    uint64_t alignment;
    uint64_t data_offset;    /* of the data section, from the start of the file */
};

/* A loaded model (tm_model_load). */
struct tm_model {
    tm_model_format format;
    tm_model_config config;
    tm_tensor token_embedding, output_norm, classifier;
    /* Llama 3.x rope_freqs.weight: head_dim/2 F32 divisors (finite, > 0) of
     * each rotated pair's frequency, as llama.cpp applies them. data is NULL
     * where the file has none. */
    tm_tensor rope_factors;
    tm_layer_weights *layers;
    /* The engine's view of the weights (tm_model_engine_weights, made once):
     * layers and classifier with block-quantized matrices copied into row
     * groups in engine_arena; NULL until first asked for. */
    tm_layer_weights *engine_layers;
    tm_tensor engine_classifier;
    void *engine_arena;
    size_t engine_arena_bytes;
    tm_gguf *gguf;            /* GGUF models */
    tm_mapped_file checkpoint; /* llama2.c models */
    char *path;
};

/* Frees what tm_model_engine_weights made (engine_weights.c). */
void tm_model_free_engine_weights(tm_model *model);

#endif
