/* tracemark tokenizer: text <-> token ids. SentencePiece-style BPE (Llama
 * 1/2) and byte-level BPE (GPT-2, Llama 3, Qwen2), special-token parsing,
 * streaming detokenization that never splits a UTF-8 character, and chat
 * templates that turn a conversation into a prompt. Vocabularies come from a
 * GGUF's tokenizer.* metadata or llama2.c's tokenizer.bin; both are
 * untrusted. The detector links this room without the forward pass. */
#ifndef TRACEMARK_TOKENIZER_H
#define TRACEMARK_TOKENIZER_H

#include "tracemark/model.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* A byte range of a text. */
typedef struct {
    size_t start, size;
} tm_text_span;
/* tm_tokenizer_encode_special, except that no special token is recognised
 * where its text overlaps one of the n_plain spans (sorted, disjoint): text
 * there is plain text, as tm_tokenizer_encode would take it. With no spans
 * it is tm_tokenizer_encode_special. (tm_chat_encode passes the messages.) */
tm_status tm_tokenizer_encode_special_outside(const tm_tokenizer *tokenizer, const char *text, size_t size,
                                              bool add_bos, const tm_text_span *plain, size_t n_plain,
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

/* The tokenizer that belongs to a model: the GGUF's own, or tokenizer_path
 * (required for llama2.c checkpoints). Checks its size against the vocabulary. */
tm_status tm_model_tokenizer(tm_tokenizer **out, const tm_model *model, const char *tokenizer_path, tm_error *err);

/* ======================================================================== */
/* Chat templates                                                           */
/* ======================================================================== */

/* One message. role is "system", "user" or "assistant" (other roles pass
 * through as llama.cpp passes them); both are NUL-terminated UTF-8. */
typedef struct {
    const char *role;
    const char *content;
} tm_chat_message;

/* The built-in formats, named as llama.cpp names them. */
typedef enum {
    TM_CHAT_CHATML,            /* Qwen2, SmolLM, OpenHermes: <|im_start|>role\n...<|im_end|>\n */
    TM_CHAT_LLAMA2,            /* [INST] ... [/INST]; a system message becomes a first line */
    TM_CHAT_LLAMA2_SYS,        /* Llama 2 chat: the system message inside <<SYS>> ... <</SYS>> */
    TM_CHAT_LLAMA2_SYS_BOS,    /* the same with <s> before every later [INST] */
    TM_CHAT_LLAMA2_SYS_STRIP,  /* the same with message text trimmed */
    TM_CHAT_MISTRAL_V1,
    TM_CHAT_MISTRAL_V3,
    TM_CHAT_MISTRAL_V3_TEKKEN,
    TM_CHAT_MISTRAL_V7,
    TM_CHAT_MISTRAL_V7_TEKKEN,
    TM_CHAT_LLAMA3,            /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    TM_CHAT_LLAMA4,
    TM_CHAT_ZEPHYR,            /* TinyLlama chat, Zephyr: <|role|>\n...EOS\n */
    TM_CHAT_PHI3,
    TM_CHAT_PHI4,
    TM_CHAT_FALCON3,
    TM_CHAT_GEMMA,
    TM_CHAT_MONARCH,
    TM_CHAT_ORION,
    TM_CHAT_OPENCHAT,
    TM_CHAT_VICUNA,
    TM_CHAT_VICUNA_ORCA,
    TM_CHAT_DEEPSEEK,
    TM_CHAT_DEEPSEEK2,
    TM_CHAT_DEEPSEEK3,
    TM_CHAT_COMMAND_R,
    TM_CHAT_MEGREZ,
    TM_CHAT_EXAONE3,
    TM_CHAT_GRANITE,
    TM_CHAT_TEMPLATE_COUNT
} tm_chat_template;

/* "chatml", "llama2-sys", ... for a built-in format, NULL otherwise. */
const char *tm_chat_template_name(tm_chat_template tmpl);
/* Every built-in name, comma-separated, for messages and --help. */
const char *tm_chat_template_names(void);
/* The format of a name (exact, as tm_chat_template_name spells it). */
bool tm_chat_template_lookup(const char *name, tm_chat_template *out);

/* Recognise a Jinja chat template by its markers, in the order of llama.cpp's
 * llm_chat_detect_template (a template that is exactly a built-in name is
 * that format). One deviation: the template of TinyLlama chat and
 * zephyr-7b-beta ("<|user|>", "<|assistant|>" and message + eos_token), which
 * llama.cpp takes for GLM-Edge, is zephyr here. TM_ERR_UNSUPPORTED when the
 * template looks like a format that is not built in (the message names it)
 * or like none; the message lists the built-in names. */
tm_status tm_chat_template_detect(const char *jinja, size_t size, tm_chat_template *out, tm_error *err);

/* The format for a model: name when given (TM_ERR_ARGUMENT for an unknown
 * one), else detected from the GGUF's tokenizer.chat_template; a model
 * without one (every llama2.c checkpoint) is TM_ERR_NOT_FOUND. Errors name
 * the model file and list the built-in names. */
tm_status tm_chat_template_for_model(const tm_model *model, const char *name, tm_chat_template *out,
                                     tm_error *err);

/* Format messages; with add_generation_prompt the text ends where the
 * assistant's reply begins. eos_text is what the zephyr format closes each
 * message with (its Jinja writes eos_token: "</s>" for TinyLlama; NULL gives
 * llama.cpp's fixed "<|endoftext|>"); other formats write their own tokens.
 * The result is NUL-terminated (*size excludes the NUL); the caller frees
 * *text. A NULL role or content is TM_ERR_ARGUMENT. Special tokens appear as
 * their text, the template's and any a message holds alike: to encode a
 * prompt, use tm_chat_encode, which keeps the messages' text plain. */
tm_status tm_chat_format(tm_chat_template tmpl, const tm_chat_message *messages, size_t n_messages,
                         bool add_generation_prompt, const char *eos_text, char **text, size_t *size,
                         tm_error *err);

typedef struct {
    bool add_generation_prompt; /* end where the assistant's reply begins */
    const char *eos_text;       /* as tm_chat_format's */
    bool add_bos;               /* usually tm_tokenizer_adds_bos */
    /* false (the default): roles and contents are plain text, so "<|im_end|>"
     * written in a message stays text and cannot close its turn or forge a
     * system turn; control tokens come only from the template. true: parse
     * them everywhere, as llama.cpp does (for trusted input only). */
    bool trust_message_special_tokens;
} tm_chat_encode_options;
/* Format messages (tm_chat_format) and encode the prompt: the template's own
 * text with special tokens parsed, the messages' text as plain text unless
 * options say otherwise. text/size (either may be NULL) receive the formatted
 * text; the caller frees *text and *ids. */
tm_status tm_chat_encode(const tm_tokenizer *tokenizer, tm_chat_template tmpl, const tm_chat_message *messages,
                         size_t n_messages, const tm_chat_encode_options *options, char **text, size_t *size,
                         int32_t **ids, size_t *n_ids, tm_error *err);

#ifdef __cplusplus
}
#endif
#endif
