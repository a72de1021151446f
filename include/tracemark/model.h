/* tracemark model: model files. The GGUF v2/v3 reader and the streaming
 * writer's users (the quantizer, synthetic models), llama2.c checkpoints,
 * GGML tensor types and the block-quantized layouts with bit-exact
 * dequantization, loading a Llama-family or Qwen2 model into views of its
 * weights, and resolving which model file to use. Every file it reads is
 * untrusted: lengths, counts and offsets are checked before use, and
 * failures come back as tm_error values, never as crashes or prints. */
#ifndef TRACEMARK_MODEL_H
#define TRACEMARK_MODEL_H

#include "tracemark/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* GGML tensor types (ids as in ggml.h; removed ids are unknown)            */
/* ======================================================================== */

typedef enum {
    TM_GGML_F32 = 0, TM_GGML_F16 = 1, TM_GGML_Q4_0 = 2, TM_GGML_Q4_1 = 3,
    TM_GGML_Q5_0 = 6, TM_GGML_Q5_1 = 7, TM_GGML_Q8_0 = 8, TM_GGML_Q8_1 = 9,
    TM_GGML_Q2_K = 10, TM_GGML_Q3_K = 11, TM_GGML_Q4_K = 12, TM_GGML_Q5_K = 13,
    TM_GGML_Q6_K = 14, TM_GGML_Q8_K = 15, TM_GGML_IQ2_XXS = 16, TM_GGML_IQ2_XS = 17,
    TM_GGML_IQ3_XXS = 18, TM_GGML_IQ1_S = 19, TM_GGML_IQ4_NL = 20, TM_GGML_IQ3_S = 21,
    TM_GGML_IQ2_S = 22, TM_GGML_IQ4_XS = 23, TM_GGML_I8 = 24, TM_GGML_I16 = 25,
    TM_GGML_I32 = 26, TM_GGML_I64 = 27, TM_GGML_F64 = 28, TM_GGML_IQ1_M = 29,
    TM_GGML_BF16 = 30, TM_GGML_TQ1_0 = 34, TM_GGML_TQ2_0 = 35, TM_GGML_MXFP4 = 39,
    TM_GGML_TYPE_LIMIT = 40
} tm_ggml_type;

/* Name ("Q4_K") of a known type id, or NULL for an unknown one. */
const char *tm_ggml_type_name(uint32_t type);
/* Elements per block and bytes per block of a known type (0 for unknown). */
uint64_t tm_ggml_block_elements(uint32_t type);
uint64_t tm_ggml_block_bytes(uint32_t type);

/* ======================================================================== */
/* GGML block layouts (ggml-common.h) and dequantization                     */
/* ======================================================================== */

/* Bytes of one block of each block-quantized type, and the block sizes. */
enum {
    TM_QK = 32,               /* elements of a 32-element block */
    TM_QK_K = 256,            /* elements of a K-type super-block */
    TM_Q4_0_BYTES = 18,       /* d, qs[16] */
    TM_Q4_1_BYTES = 20,       /* d, m, qs[16] */
    TM_Q5_0_BYTES = 22,       /* d, qh[4], qs[16] */
    TM_Q5_1_BYTES = 24,       /* d, m, qh[4], qs[16] */
    TM_Q8_0_BYTES = 34,       /* d, qs[32] */
    TM_Q4_K_BYTES = 144,      /* d, dmin, scales[12], qs[128] */
    TM_Q5_K_BYTES = 176,      /* d, dmin, scales[12], qh[32], qs[128] */
    TM_Q6_K_BYTES = 210       /* ql[128], qh[64], scales[16] (int8), d */
};

/* Little-endian fields of a block, read byte by byte (blocks in a file are
 * not aligned). */
static inline float tm_block_f16(const uint8_t *p) { return tm_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static inline uint32_t tm_block_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
/* The 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4). */
static inline void tm_block_scale_min_k4(int j, const uint8_t *q, uint8_t *scale, uint8_t *min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *min = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* True for the block-quantized types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K). */
bool tm_quant_is_quantized(uint32_t type);
/* True for the 256-element K types (Q4_K, Q5_K, Q6_K). */
static inline bool tm_quant_is_k_type(uint32_t type) {
    return type == TM_GGML_Q4_K || type == TM_GGML_Q5_K || type == TM_GGML_Q6_K;
}
/* Bytes of one row of cols weights (cols a multiple of the block size). */
size_t tm_quant_row_bytes(uint32_t type, int64_t cols);
/* The rows per group the engine keeps matrices of this type in (the rows its
 * kernels take at once: 8 for Q8_0 and Q4_0, 4 for Q4_K, Q5_K and Q6_K), or 1
 * where it keeps the file's layout. */
int32_t tm_quant_row_group(uint32_t type);
/* ggml's dequantize_row_<type>, bit for bit: cols elements of row src. */
void tm_quant_dequantize_row(uint32_t type, const void *src, float *out, int64_t cols);

/* ======================================================================== */
/* GGUF reader (memory-mapped)                                              */
/* ======================================================================== */

typedef enum {
    TM_GGUF_UINT8 = 0, TM_GGUF_INT8 = 1, TM_GGUF_UINT16 = 2, TM_GGUF_INT16 = 3,
    TM_GGUF_UINT32 = 4, TM_GGUF_INT32 = 5, TM_GGUF_FLOAT32 = 6, TM_GGUF_BOOL = 7,
    TM_GGUF_STRING = 8, TM_GGUF_ARRAY = 9, TM_GGUF_UINT64 = 10, TM_GGUF_INT64 = 11,
    TM_GGUF_FLOAT64 = 12
} tm_gguf_type;

/* Bytes inside the mapped file; not NUL-terminated. Print with "%.*s". */
typedef struct {
    const char *data;
    uint64_t size;
} tm_string_view;

bool tm_string_view_equals(tm_string_view view, const char *text);

typedef struct tm_gguf_value {
    tm_gguf_type type;
    union {
        uint64_t u64;          /* UINT8, UINT16, UINT32, UINT64 */
        int64_t i64;           /* INT8, INT16, INT32, INT64 */
        double f64;            /* FLOAT32, FLOAT64 */
        bool boolean;          /* BOOL */
        tm_string_view string; /* STRING */
        struct {
            tm_gguf_type element_type;
            uint64_t count;
            const uint8_t *raw;          /* numeric/bool elements: little-endian, maybe unaligned */
            struct tm_gguf_value *items; /* STRING and ARRAY elements, parsed; NULL otherwise */
        } array;
    } as;
} tm_gguf_value;

typedef struct {
    tm_string_view key;
    tm_gguf_value value;
} tm_gguf_kv;

typedef struct {
    tm_string_view name;
    uint32_t n_dims;
    uint64_t ne[4];       /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    uint32_t type;        /* a tm_ggml_type id known to tm_ggml_type_name */
    uint64_t offset;      /* relative to the start of the data section */
    uint64_t n_elements;
    uint64_t n_bytes;
    const void *data;     /* inside the mapping */
} tm_gguf_tensor;

/* An opened GGUF file: its mapping, metadata and tensor infos. Opaque: read
 * it through the functions below. */
typedef struct tm_gguf tm_gguf;

/* Open and validate a GGUF v2/v3 file: header, every metadata value, tensor
 * infos (known type, row size a multiple of the block, no overflow, offsets
 * aligned, inside the file and not overlapping). Errors name the file. */
tm_status tm_gguf_open(tm_gguf **out, const char *path, tm_error *err);
void tm_gguf_close(tm_gguf *gguf);
const tm_gguf_value *tm_gguf_find(const tm_gguf *gguf, const char *key);
const tm_gguf_tensor *tm_gguf_find_tensor(const tm_gguf *gguf, const char *name);
/* Typed getters: false when the key is absent or of an incompatible type
 * (integers must be non-negative and fit; floats accept any numeric type). */
bool tm_gguf_get_u64(const tm_gguf *gguf, const char *key, uint64_t *out);
bool tm_gguf_get_f64(const tm_gguf *gguf, const char *key, double *out);
bool tm_gguf_get_bool(const tm_gguf *gguf, const char *key, bool *out);
bool tm_gguf_get_string(const tm_gguf *gguf, const char *key, tm_string_view *out);
/* Element i of a numeric array as integer / double. The caller checks i < count. */
int64_t tm_gguf_array_i64(const tm_gguf_value *array, uint64_t i);
double tm_gguf_array_f64(const tm_gguf_value *array, uint64_t i);
const char *tm_gguf_type_name(tm_gguf_type type);
/* The file's structure (not its metadata: for general.alignment and other
 * keys use the getters above). */
uint32_t tm_gguf_version(const tm_gguf *gguf);
uint64_t tm_gguf_kv_count(const tm_gguf *gguf);
uint64_t tm_gguf_tensor_count(const tm_gguf *gguf);
/* Tensor info i in the file's order (0 <= i < tm_gguf_tensor_count), NULL
 * past the end. */
const tm_gguf_tensor *tm_gguf_tensor_at(const tm_gguf *gguf, uint64_t i);
/* The alignment the data section uses (general.alignment or 32), and where
 * that section starts in the file. */
uint64_t tm_gguf_alignment(const tm_gguf *gguf);
uint64_t tm_gguf_data_offset(const tm_gguf *gguf);
/* The read-only mapping of the whole file (its path, bytes and size); every
 * tensor's data points inside it. */
const tm_mapped_file *tm_gguf_file(const tm_gguf *gguf);

/* ======================================================================== */
/* Models                                                                    */
/* ======================================================================== */

typedef enum {
    TM_ROPE_NORMAL, /* rotate adjacent pairs (x0,x1),(x2,x3): llama.cpp LLAMA, llama2.c */
    TM_ROPE_NEOX    /* rotate (x_i, x_{i+d/2}): GPT-NeoX, Qwen2 */
} tm_rope_style;

typedef enum { TM_MODEL_FORMAT_GGUF, TM_MODEL_FORMAT_LLAMA2C } tm_model_format;

/* The model families the forward pass runs (GGUF general.architecture).
 * llama covers Llama 1/2/3, TinyLlama and SmolLM; qwen2 adds F32 biases to
 * the Q, K and V projections and rotates NeoX-style. */
typedef enum { TM_ARCH_LLAMA, TM_ARCH_QWEN2, TM_ARCH_COUNT } tm_architecture;

/* "llama", "qwen2"; NULL for a value outside the enum. */
const char *tm_architecture_name(tm_architecture arch);
/* The supported names, comma-separated, for messages. */
const char *tm_architecture_names(void);

typedef struct {
    char architecture[32];
    tm_architecture arch;
    char name[128];
    int32_t n_vocab, dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim;
    int32_t context_length; /* as trained (metadata / header) */
    float norm_eps;
    float rope_freq_base;
    /* Linear rope scaling (GGUF <arch>.rope.scaling.type "linear" with
     * rope.scaling.factor F): every rotation angle is multiplied by 1/F.
     * 1 without scaling. */
    float rope_freq_scale;
    tm_rope_style rope_style;
    bool tied_classifier;
} tm_model_config;

/* A weight matrix or vector: rows of cols elements (cols = GGUF ne[0], the
 * contiguous dimension). As the file holds it (row_group 0), row r's bytes
 * start at data + r * row bytes. In row groups (row_group G > 1, a power of
 * two: the engine's copies of block-quantized matrices,
 * tm_model_engine_weights), rows come in groups of G (rows a multiple of G),
 * and each group stores block 0 of its G rows, then block 1 of each, and so
 * on: block i of row r sits at data + (r - r % G) * row bytes +
 * (i * G + r % G) * block bytes. Kernels that take G rows at a time then read
 * memory in address order. */
typedef struct {
    uint32_t type;
    const void *data;
    int64_t rows, cols;
    int32_t row_group;
} tm_tensor;

typedef struct {
    tm_tensor attn_norm, wq, wk, wv, wo;
    tm_tensor ffn_norm, w_gate, w_up, w_down;
    /* F32 biases added right after the Q, K and V projections (Qwen2; a
     * Llama GGUF may carry them too). data is NULL where the file has none. */
    tm_tensor bq, bk, bv;
} tm_layer_weights;

/* A loaded model: its configuration and a view of every weight inside the
 * mapped file. Opaque: read it through the tm_model_get_* accessors below
 * (the engine, model/ and generator/forward.c, reads the layout in
 * model/model_internal.h). */
typedef struct tm_model tm_model;

/* Load a GGUF (by magic) or llama2.c checkpoint; checks every required tensor's
 * presence, shape and type ("unsupported tensor type Q4_K for blk.0.attn_q.weight"). */
tm_status tm_model_load(tm_model **out, const char *path, tm_error *err);
void tm_model_free(tm_model *model);
uint64_t tm_model_parameter_count(const tm_model *model);
const char *tm_model_format_name(tm_model_format format);

/* The weights the engine multiplies by, valid until tm_model_free: the
 * layers and the classifier, each block-quantized matrix whose rows divide
 * into groups of tm_quant_row_group(type) copied into row groups (tm_tensor),
 * the rest as the file holds them. The first call makes the copies and hands
 * the file's pages under them back; every call, from any thread, returns the
 * same views. */
tm_status tm_model_engine_weights(const tm_model *model, const tm_layer_weights **layers, const tm_tensor **classifier,
                                  tm_error *err);

/* Read-only views of a loaded model, valid until tm_model_free. */
const tm_model_config *tm_model_get_config(const tm_model *model);
tm_model_format tm_model_get_format(const tm_model *model);
/* The path the model was loaded from. */
const char *tm_model_get_path(const tm_model *model);
/* The opened GGUF (its metadata and tensor infos); NULL for a llama2.c checkpoint. */
const tm_gguf *tm_model_get_gguf(const tm_model *model);
/* The read-only mapping of the model file that every weight's data points into. */
const tm_mapped_file *tm_model_get_file(const tm_model *model);
/* The weights outside the layers. The classifier is the token embedding
 * itself when the file ties them; rope factors' data is NULL where the file
 * has none. */
const tm_tensor *tm_model_get_token_embedding(const tm_model *model);
const tm_tensor *tm_model_get_output_norm(const tm_model *model);
const tm_tensor *tm_model_get_classifier(const tm_model *model);
const tm_tensor *tm_model_get_rope_factors(const tm_model *model);
/* Layer `layer`'s weights (0 <= layer < n_layers), NULL outside that range. */
const tm_layer_weights *tm_model_get_layer(const tm_model *model, int32_t layer);

/* Resolve the model to use: explicit path, $TRACEMARK_MODEL, ./models/,
 * ../shared/models/, then the pinned default download into ./models/.
 * Fills model_path and tokenizer_path (empty when the model carries its own). */
tm_status tm_model_resolve(const char *explicit_path, char *model_path, size_t model_path_size,
                           char *tokenizer_path, size_t tokenizer_path_size, tm_error *err);

/* ======================================================================== */
/* Writing model files: the quantizer and synthetic models                  */
/* ======================================================================== */

/* llama.cpp's file types (llama_ftype values, written as general.file_type). */
typedef enum {
    TM_FTYPE_ALL_F32 = 0,
    TM_FTYPE_F16 = 1,
    TM_FTYPE_Q4_0 = 2,
    TM_FTYPE_Q4_1 = 3,
    TM_FTYPE_Q8_0 = 7,
    TM_FTYPE_Q5_0 = 8,
    TM_FTYPE_Q5_1 = 9,
    TM_FTYPE_Q4_K_S = 14,
    TM_FTYPE_Q4_K_M = 15,
    TM_FTYPE_Q5_K_S = 16,
    TM_FTYPE_Q5_K_M = 17,
    TM_FTYPE_Q6_K = 18,
    TM_FTYPE_BF16 = 32,
} tm_ftype;

/* "Q4_K_M", "q8_0", "F16" ...; "Q4_K" and "Q5_K" mean Q4_K_M and Q5_K_M as
 * in llama-quantize. False for anything else. */
bool tm_ftype_parse(const char *name, tm_ftype *out);
const char *tm_ftype_name(tm_ftype ftype);
/* The names tm_ftype_parse accepts, comma-separated, for messages. */
const char *tm_ftype_names(void);
/* The tensor type most weights get (llama_ftype_get_default_type). */
uint32_t tm_ftype_default_type(tm_ftype ftype);

/* Progress of a file quantization: called before each tensor and after each
 * slab of rows (bytes_done counts source bytes over the whole file). */
typedef void (*tm_quantize_progress)(void *user, uint64_t index, uint64_t n_tensors, const char *name,
                                     uint32_t from_type, uint32_t to_type, uint64_t bytes_done,
                                     uint64_t bytes_total);

typedef struct {
    tm_ftype ftype;
    int n_threads;          /* 0: all cores */
    bool pure;              /* every quantizable tensor gets the default type */
    bool allow_requantize;  /* accept quantized sources (dequantized to F32 first) */
    tm_quantize_progress progress;
    void *user;
} tm_quantize_options;

/* Quantize a GGUF file into a new one (written atomically). The metadata is
 * copied with general.file_type and general.quantization_version set as
 * llama.cpp sets them; tensors come out in llama.cpp's order. */
tm_status tm_quantize_file(const char *in_path, const char *out_path, const tm_quantize_options *options,
                           tm_error *err);

/* Synthetic models for speed measurements and for tests against llama.cpp:
 * random weights in the shapes of real models with a real tokenizer copied
 * from another GGUF, written one slab of rows at a time (a 7B model never
 * needs its size in memory). The weights mean nothing; only shapes, types,
 * speed and agreement with other engines do. */
typedef struct {
    char name[64];               /* --like name, also general.name */
    int32_t dim, n_layers, n_heads, n_kv_heads, hidden_dim, context_length;
    float rope_freq_base, norm_eps;
    bool tied_embeddings;        /* no output.weight: the classifier is token_embd */
    bool llama3_rope_factors;    /* write rope_freqs.weight as Llama 3.x does */
    const char *default_tokenizer; /* file name under ../shared ("models/llama-2-tiny-random.gguf") */
    tm_architecture architecture;  /* llama (the zero value) or qwen2 (adds Q/K/V biases) */
    /* Llama 3 rope factors: the context the model was first trained at
     * (Llama 3.1's original_max_position_embeddings); 0 means 8192. A tiny
     * test model lowers it so that the factors matter within a short prompt. */
    int32_t rope_original_context;
    /* > 0: write <arch>.rope.scaling.type "linear" and rope.scaling.factor. */
    float rope_linear_factor;
    /* Standard deviation of the Q/K/V biases (qwen2); 0 means the weights' 0.02. */
    float bias_std;
    /* Standard deviation of attn_q and attn_k; 0 means 0.02. N(0, 0.02)
     * weights make attention nearly uniform, under which a wrong rotation
     * barely shows; a test model raises this to make attention sharp. */
    float query_key_std;
} tm_synth_shape;

/* Fill shape for a known --like name; false for an unknown one. */
bool tm_synth_lookup(const char *like, tm_synth_shape *shape);
/* The known names, comma-separated, for messages. */
const char *tm_synth_names(void);

typedef struct {
    tm_synth_shape shape;
    const char *tokenizer_path; /* a GGUF whose tokenizer.* metadata is copied */
    tm_ftype ftype;
    uint64_t seed;
    int n_threads;              /* 0: all cores */
    tm_quantize_progress progress;
    void *user;
} tm_synth_options;

/* Check the shape (positive sizes, heads dividing dim, kv heads dividing
 * heads, an even head size, a known architecture) and write the model
 * atomically to out_path. Weights are N(0, 0.02) as in
 * ../shared/tools/synth_gguf.py (attn_q and attn_k N(0, query_key_std) where
 * set), norms are 1, qwen2's biases N(0, bias_std); each row is drawn from
 * its own xoshiro256** stream (tm_rng) seeded from (seed, tensor, row), so
 * the file is the same for any thread count. */
tm_status tm_synth_write(const char *out_path, const tm_synth_options *options, tm_error *err);

#ifdef __cplusplus
}
#endif
#endif
