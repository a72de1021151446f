/* Read-only accessors of a loaded tm_model, for every reader outside the
 * engine (the CLI, tests, benchmarks, the tokenizer room). Kept apart from
 * model.c because the tokenizer room calls them and the detector's shared
 * library (libtracemark-detect) takes the tokenizer room without the model
 * loader: this file must never call into the loader, the quantizer or
 * anything beyond the struct it reads. */
#include "tracemark/model.h"

#include "model_internal.h"

const tm_model_config *tm_model_get_config(const tm_model *model) { return &model->config; }
tm_model_format tm_model_get_format(const tm_model *model) { return model->format; }
const char *tm_model_get_path(const tm_model *model) { return model->path; }
const tm_gguf *tm_model_get_gguf(const tm_model *model) { return model->gguf; }

const tm_mapped_file *tm_model_get_file(const tm_model *model) {
    return model->gguf ? tm_gguf_file(model->gguf) : &model->checkpoint;
}

const tm_tensor *tm_model_get_token_embedding(const tm_model *model) { return &model->token_embedding; }
const tm_tensor *tm_model_get_output_norm(const tm_model *model) { return &model->output_norm; }
const tm_tensor *tm_model_get_classifier(const tm_model *model) { return &model->classifier; }
const tm_tensor *tm_model_get_rope_factors(const tm_model *model) { return &model->rope_factors; }

const tm_layer_weights *tm_model_get_layer(const tm_model *model, int32_t layer) {
    return layer >= 0 && layer < model->config.n_layers ? &model->layers[layer] : NULL;
}
