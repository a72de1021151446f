/* tracemark generator: the local inference engine. Model files (GGUF v2/v3 and
 * llama2.c checkpoints), the SentencePiece-BPE tokenizer, the Llama forward
 * pass with its KV cache, the sampler chain, and the generate loop. Every file
 * it reads is untrusted: lengths, counts and offsets are checked before use,
 * and failures come back as tm_error values, never as crashes or prints. */
#ifndef TRACEMARK_GENERATOR_H
#define TRACEMARK_GENERATOR_H

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

typedef struct tm_gguf {
    tm_mapped_file file;
    uint32_t version;
    uint64_t n_kv;
    tm_gguf_kv *kv;
    uint64_t n_tensors;
    tm_gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset;
} tm_gguf;

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

/* ======================================================================== */
/* Tokenizer (SentencePiece-style BPE, Llama 1/2)                           */
/* ======================================================================== */

typedef enum { /* values as in GGUF tokenizer.ggml.token_type */
    TM_TOKEN_NORMAL = 1, TM_TOKEN_UNKNOWN = 2, TM_TOKEN_CONTROL = 3,
    TM_TOKEN_USER_DEFINED = 4, TM_TOKEN_UNUSED = 5, TM_TOKEN_BYTE = 6
} tm_token_type;

typedef struct tm_tokenizer tm_tokenizer;

/* From a GGUF's tokenizer.ggml.* metadata (model "llama"). */
tm_status tm_tokenizer_from_gguf(tm_tokenizer **out, const tm_gguf *gguf, tm_error *err);
/* From llama2.c's tokenizer.bin. */
tm_status tm_tokenizer_from_llama2c(tm_tokenizer **out, const char *path, tm_error *err);
/* Either of the above, chosen by the file's magic. */
tm_status tm_tokenizer_load(tm_tokenizer **out, const char *path, tm_error *err);
void tm_tokenizer_free(tm_tokenizer *tokenizer);

int32_t tm_tokenizer_vocab_size(const tm_tokenizer *tokenizer);
int32_t tm_tokenizer_bos(const tm_tokenizer *tokenizer);
int32_t tm_tokenizer_eos(const tm_tokenizer *tokenizer);
const char *tm_tokenizer_kind(const tm_tokenizer *tokenizer); /* "llama-spm" */
/* The vocabulary entry as stored (with U+2581 for spaces), and its type. */
const char *tm_tokenizer_piece(const tm_tokenizer *tokenizer, int32_t id, size_t *size);
tm_token_type tm_tokenizer_token_type(const tm_tokenizer *tokenizer, int32_t id);

/* Encode UTF-8 text (no special-token parsing). Invalid UTF-8 is an error.
 * The caller frees *ids with free(). */
tm_status tm_tokenizer_encode(const tm_tokenizer *tokenizer, const char *text, size_t size, bool add_bos,
                              int32_t **ids, size_t *n_ids, tm_error *err);
/* Decode ids to text (control tokens vanish, byte tokens become bytes, a leading
 * space after BOS or at the very start is removed as SentencePiece does). */
tm_status tm_tokenizer_decode(const tm_tokenizer *tokenizer, const int32_t *ids, size_t n_ids,
                              char **text, size_t *size, tm_error *err);

/* tm_tokenizer_encode with special-token parsing, as llama.cpp's
 * llama_tokenize with parse_special: the texts of CONTROL, USER_DEFINED and
 * UNKNOWN tokens (and of the end-of-generation tokens below) become their
 * ids wherever they occur, longest text first; the text between them is
 * tokenized as tm_tokenizer_encode would (SentencePiece puts its space
 * prefix in front of a stretch that starts the text or follows a special
 * token). add_bos puts BOS first, as in tm_tokenizer_encode. Invalid UTF-8 is
 * TM_ERR_FORMAT naming the byte offset. The caller frees *ids. */
tm_status tm_tokenizer_encode_special(const tm_tokenizer *tokenizer, const char *text, size_t size, bool add_bos,
                                      int32_t **ids, size_t *n_ids, tm_error *err);

/* Whether the vocabulary asks for BOS in front of a prompt
 * (tokenizer.ggml.add_bos_token, defaulting as llama.cpp does). */
bool tm_tokenizer_adds_bos(const tm_tokenizer *tokenizer);

/* Whether generating id ends the turn: llama.cpp's end-of-generation set,
 * which holds EOS, the GGUF's tokenizer.ggml.eot_token_id and eom_token_id,
 * its fill-in-the-middle pad/repo/separator tokens, and every token whose
 * text is one of llama.cpp's list (<|eot_id|>, <|im_end|>, <|end|>,
 * <|endoftext|>, <end_of_turn>, </s>, <|end_of_text|>, ...). False for ids
 * outside the vocabulary. */
bool tm_tokenizer_is_end_of_generation(const tm_tokenizer *tokenizer, int32_t id);

/* Streaming decode that only ever emits whole UTF-8 characters. */
typedef struct {
    const tm_tokenizer *tokenizer;
    int32_t previous;      /* last token pushed, -1 at the start */
    uint8_t pending[8];    /* bytes of an incomplete character */
    size_t n_pending;
} tm_detokenizer;

void tm_detokenizer_init(tm_detokenizer *detokenizer, const tm_tokenizer *tokenizer);
/* Append the text of one token to out (capacity at least
 * tm_tokenizer_max_piece_size() + TM_DETOKENIZE_MAX); returns the bytes
 * written. To continue after a prompt, push the prompt's tokens first. Ids
 * outside the vocabulary decode to nothing. */
enum { TM_DETOKENIZE_MAX = 32 };
size_t tm_detokenizer_push(tm_detokenizer *detokenizer, int32_t id, char *out, size_t capacity);
/* Emit what is pending at the end of a stream (incomplete bytes become U+FFFD). */
size_t tm_detokenizer_flush(tm_detokenizer *detokenizer, char *out, size_t capacity);
size_t tm_tokenizer_max_piece_size(const tm_tokenizer *tokenizer);

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

/* A weight matrix or vector viewed inside the mapped file: rows of cols
 * elements (cols = GGUF ne[0], the contiguous dimension). */
typedef struct {
    uint32_t type;
    const void *data;
    int64_t rows, cols;
} tm_tensor;

typedef struct {
    tm_tensor attn_norm, wq, wk, wv, wo;
    tm_tensor ffn_norm, w_gate, w_up, w_down;
    /* F32 biases added right after the Q, K and V projections (Qwen2; a
     * Llama GGUF may carry them too). data is NULL where the file has none. */
    tm_tensor bq, bk, bv;
} tm_layer_weights;

typedef struct tm_model {
    tm_model_format format;
    tm_model_config config;
    tm_tensor token_embedding, output_norm, classifier;
    /* Llama 3.x rope_freqs.weight: head_dim/2 F32 divisors (finite, > 0) of
     * each rotated pair's frequency, as llama.cpp applies them. data is NULL
     * where the file has none. */
    tm_tensor rope_factors;
    tm_layer_weights *layers;
    tm_gguf *gguf;            /* GGUF models */
    tm_mapped_file checkpoint; /* llama2.c models */
    char *path;
} tm_model;

/* Load a GGUF (by magic) or llama2.c checkpoint; checks every required tensor's
 * presence, shape and type ("unsupported tensor type Q4_K for blk.0.attn_q.weight"). */
tm_status tm_model_load(tm_model **out, const char *path, tm_error *err);
void tm_model_free(tm_model *model);
uint64_t tm_model_parameter_count(const tm_model *model);
const char *tm_model_format_name(tm_model_format format);

/* The tokenizer that belongs to a model: the GGUF's own, or tokenizer_path
 * (required for llama2.c checkpoints). Checks its size against the vocabulary. */
tm_status tm_model_tokenizer(tm_tokenizer **out, const tm_model *model, const char *tokenizer_path, tm_error *err);

/* Resolve the model to use: explicit path, $TRACEMARK_MODEL, ./models/,
 * ../shared/models/, then the pinned default download into ./models/.
 * Fills model_path and tokenizer_path (empty when the model carries its own). */
tm_status tm_model_resolve(const char *explicit_path, char *model_path, size_t model_path_size,
                           char *tokenizer_path, size_t tokenizer_path_size, tm_error *err);

/* ======================================================================== */
/* Inference context: KV cache, scratch buffers, forward pass                */
/* ======================================================================== */

typedef struct tm_context tm_context;

/* n_ctx 0 means the model's trained context length. n_threads 0 means all cores. */
tm_status tm_context_create(tm_context **out, const tm_model *model, int32_t n_ctx, int32_t n_threads, tm_error *err);
void tm_context_free(tm_context *context);
/* Run tokens at the next positions (a batch goes through sgemm) and return
 * the logits after the last one (n_vocab floats, valid until the next call).
 * Refuses with TM_ERR_LIMIT to run past n_ctx. */
tm_status tm_context_eval(tm_context *context, const int32_t *tokens, size_t n_tokens, const float **logits, tm_error *err);
int32_t tm_context_position(const tm_context *context);
int32_t tm_context_size(const tm_context *context);
void tm_context_reset(tm_context *context);

/* ======================================================================== */
/* Sampling                                                                  */
/* ======================================================================== */


typedef struct {
    int32_t id;
    float logit;
    float p; /* filled by stages that normalise (softmax) */
} tm_token_data;

/* The working set the chain narrows down. sorted: data is by logit, descending. */
typedef struct {
    tm_token_data *data;
    size_t size;
    bool sorted;
    int32_t selected; /* the token id (not an index into data) set by the selecting stage; -1 before */
} tm_candidates;

typedef struct tm_sampler tm_sampler;
typedef struct {
    const char *(*name)(const tm_sampler *sampler);
    void (*apply)(tm_sampler *sampler, tm_candidates *candidates);
    void (*accept)(tm_sampler *sampler, int32_t token); /* optional: token was emitted */
    void (*reset)(tm_sampler *sampler);                 /* optional: new sequence */
    void (*free)(tm_sampler *sampler);                  /* optional: releases state */
} tm_sampler_interface;
struct tm_sampler {
    const tm_sampler_interface *interface;
    void *state;
};

/* Logit processors. */
tm_sampler *tm_sampler_temperature(float temperature);
tm_sampler *tm_sampler_top_k(int32_t k);
tm_sampler *tm_sampler_top_p(float p, size_t min_keep);
tm_sampler *tm_sampler_min_p(float p, size_t min_keep);
/* Repetition (divide positive / multiply negative logits, as CTRL and llama.cpp),
 * frequency and presence penalties over the last `window` accepted tokens. */
tm_sampler *tm_sampler_penalties(int32_t window, float repeat, float frequency, float presence);
/* Selectors: the last stage of a chain picks candidates->selected. A watermark
 * scheme plugs in here (or as a logit processor) without touching the rest. */
tm_sampler *tm_sampler_greedy(void);
tm_sampler *tm_sampler_distribution(uint64_t seed);
void tm_sampler_free(tm_sampler *sampler);

typedef struct tm_sampler_chain tm_sampler_chain;
tm_sampler_chain *tm_sampler_chain_create(void);
/* Takes ownership of sampler. Returns false (and frees it) on allocation failure. */
bool tm_sampler_chain_add(tm_sampler_chain *chain, tm_sampler *sampler);
void tm_sampler_chain_free(tm_sampler_chain *chain);
/* Build candidates from logits, run every stage, return the selected token;
 * -1 for bad arguments or when the candidate buffer cannot grow. */
int32_t tm_sampler_chain_sample(tm_sampler_chain *chain, const float *logits, int32_t n_vocab);
void tm_sampler_chain_accept(tm_sampler_chain *chain, int32_t token);
void tm_sampler_chain_reset(tm_sampler_chain *chain);
/* Softmax over candidates (sorting them first when needed). */
void tm_candidates_softmax(tm_candidates *candidates);
void tm_candidates_sort(tm_candidates *candidates);

typedef struct {
    float temperature; /* 0: greedy */
    int32_t top_k;     /* 0: off */
    float top_p;       /* 1: off */
    float min_p;       /* 0: off */
    float repeat_penalty, frequency_penalty, presence_penalty;
    int32_t penalty_window;
    uint64_t seed;
} tm_sampling_params;

void tm_sampling_params_default(tm_sampling_params *params);
/* The usual chain: penalties, top-k, top-p, min-p, temperature, distribution
 * (or greedy when temperature is 0). NULL for invalid parameters (NaN, a
 * repeat penalty <= 0) or when out of memory. */
tm_sampler_chain *tm_sampler_chain_from_params(const tm_sampling_params *params);
/* The same chain with a watermark plugged in (either may be NULL; ownership
 * passes, also on failure): `bias` runs right after the penalties, on the raw
 * logits (KGW); `selector` replaces the final distribution stage
 * (distortion-free schemes). At temperature 0 the chain stays greedy. */
tm_sampler_chain *tm_sampler_chain_build(const tm_sampling_params *params, tm_sampler *bias, tm_sampler *selector);

/* ======================================================================== */
/* Generation                                                                */
/* ======================================================================== */

typedef void (*tm_text_callback)(const char *text, size_t size, void *user);

typedef struct {
    int32_t max_tokens;
    const char *const *stop_strings;
    size_t n_stop_strings;
    tm_text_callback on_text; /* streamed generated text, may be NULL */
    void *user;
} tm_generate_options;

typedef struct {
    int32_t *prompt_ids;
    size_t n_prompt;
    int32_t *ids; /* generated */
    size_t n_ids;
    char *text;   /* generated text */
    size_t text_size;
    double prompt_seconds, decode_seconds;
    const char *stop_reason; /* "eos", "end_of_generation", "bos", "max_tokens", "stop_string", "context_full" */
} tm_generation;

/* Encode the prompt (BOS first when the vocabulary asks for it, no
 * special-token parsing), run it, then sample until a stop (see
 * tm_generate_from_ids). */
tm_status tm_generate(tm_context *context, const tm_tokenizer *tokenizer, tm_sampler_chain *chain,
                      const char *prompt, const tm_generate_options *options, tm_generation *result,
                      tm_error *err);
/* tm_generate with the prompt already tokenized (for example a chat prompt
 * from tm_tokenizer_encode_special): result->prompt_ids is a copy. Stops at
 * any end-of-generation token (stop_reason "eos" for EOS itself,
 * "end_of_generation" for the others, such as <|eot_id|>), at BOS, at the
 * token budget, a stop string or a full context; tm_generate does the same. */
tm_status tm_generate_from_ids(tm_context *context, const tm_tokenizer *tokenizer, tm_sampler_chain *chain,
                               const int32_t *prompt_ids, size_t n_prompt, const tm_generate_options *options,
                               tm_generation *result, tm_error *err);
void tm_generation_free(tm_generation *result);

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
