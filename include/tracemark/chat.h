/* tracemark chat: turning a conversation (system, user and assistant
 * messages) into the prompt text a chat-tuned model was trained on, the way
 * llama.cpp's llama_chat_apply_template does it: a fixed list of built-in
 * formats (chatml, llama2, llama3, zephyr, mistral, gemma, phi3, ...), one of
 * them picked by name or recognised from markers in the GGUF's
 * tokenizer.chat_template. The Jinja text itself is never run: a template
 * that matches no built-in format is refused with the list of names, never
 * guessed at. The special-token parsing and end-of-generation stops that
 * chat prompts need live with the tokenizer and the generate loop in
 * generator.h. Nothing here prints or aborts; every template string is
 * untrusted. */
#ifndef TRACEMARK_CHAT_H
#define TRACEMARK_CHAT_H

#include "tracemark/generator.h"

#ifdef __cplusplus
extern "C" {
#endif

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
 * their text: encode the result with tm_tokenizer_encode_special. */
tm_status tm_chat_format(tm_chat_template tmpl, const tm_chat_message *messages, size_t n_messages,
                         bool add_generation_prompt, const char *eos_text, char **text, size_t *size,
                         tm_error *err);

#ifdef __cplusplus
}
#endif
#endif
