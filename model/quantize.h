/* Internal to model/: the project's own quantizer. Row quantizers from
 * F32 to F16, BF16 and llama.cpp's block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q4_K, Q5_K, Q6_K) that reproduce ggml's quantize_row_*_ref byte for byte;
 * llama.cpp's per-tensor type rules for file types such as Q4_K_M
 * (llama_tensor_get_type); the whole-file quantizer declared in
 * tracemark/model.h streams a GGUF through them. Not part of the public
 * API. */
#ifndef TRACEMARK_MODEL_QUANTIZE_H
#define TRACEMARK_MODEL_QUANTIZE_H

#include "tracemark/model.h"

/* Types tm_quantize_row writes: F32, F16, BF16 and the eight block types. */
bool tm_quantize_can_write(uint32_t type);
/* Types tm_quantize_row_to_f32 reads: F32, F16, BF16 and the eight block types. */
bool tm_quantize_can_read(uint32_t type);
/* n floats (a multiple of the type's block) to tm_quant_row_bytes(type, n)
 * bytes, as ggml_quantize_chunk does without an importance matrix. */
void tm_quantize_row(uint32_t type, const float *x, void *out, int64_t n);
/* n elements of type back to floats (bit-exact with ggml). */
void tm_quantize_row_to_f32(uint32_t type, const void *src, float *out, int64_t n);
/* Bytes of n elements of a known type (n a multiple of its block). */
uint64_t tm_quantize_row_bytes(uint32_t type, int64_t n);

/* llama.cpp's per-tensor choice for a file type. Present the tensors in
 * llama.cpp's order (tm_quantize_compare_names): its counters of attn_v and
 * ffn_down tensors seen so far decide which layers get more bits. */
typedef struct {
    tm_ftype ftype;
    bool pure;   /* llama-quantize --pure: no mixture, only the fallbacks */
    bool falcon; /* general.architecture "falcon" */
    bool is_70b; /* llama with 80 layers and grouped-query attention */
    int n_layers;
    int n_attention_wv, i_attention_wv;
    int i_ffn_down;
    bool has_output; /* an output.weight exists (else the embedding is tied) */
    int n_fallback;  /* tensors that fell back to a 32-block type (or F16) */
} tm_quantize_rules;

void tm_quantize_rules_init(tm_quantize_rules *rules, tm_ftype ftype, bool pure, const char *architecture,
                            int n_layers, int n_heads, int n_kv_heads);
/* Call once per tensor name before choosing (counts attn_v and output). */
void tm_quantize_rules_count(tm_quantize_rules *rules, const char *name);
/* The type the tensor gets; current_type when it is not to be quantized
 * (norms, 1-D tensors, non-weights). ne[0] is the row length. */
uint32_t tm_quantize_rules_choose(tm_quantize_rules *rules, const char *name, const uint64_t ne[4],
                                  uint32_t current_type);
/* llama.cpp's tensor order: by layer number of "blk.N." (others first), then by name. */
int tm_quantize_compare_names(const char *a, const char *b);

#endif
