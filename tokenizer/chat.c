/* Chat templates: the built-in prompt formats of chat-tuned models and the
 * recognition of a GGUF's Jinja tokenizer.chat_template by its markers, both
 * following llama.cpp's llama-chat.cpp (llm_chat_apply_template and
 * llm_chat_detect_template), whose own tests give the expected texts our
 * tests check. The Jinja is never executed, only searched for fixed
 * substrings: a template is untrusted text of any size and content, and a
 * format that is not built in is an error naming what it looks like, never
 * a guess. Nothing here prints or aborts. */
#include "tracemark/tokenizer.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[TM_CHAT_TEMPLATE_COUNT] = {
    [TM_CHAT_CHATML] = "chatml",
    [TM_CHAT_LLAMA2] = "llama2",
    [TM_CHAT_LLAMA2_SYS] = "llama2-sys",
    [TM_CHAT_LLAMA2_SYS_BOS] = "llama2-sys-bos",
    [TM_CHAT_LLAMA2_SYS_STRIP] = "llama2-sys-strip",
    [TM_CHAT_MISTRAL_V1] = "mistral-v1",
    [TM_CHAT_MISTRAL_V3] = "mistral-v3",
    [TM_CHAT_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
    [TM_CHAT_MISTRAL_V7] = "mistral-v7",
    [TM_CHAT_MISTRAL_V7_TEKKEN] = "mistral-v7-tekken",
    [TM_CHAT_LLAMA3] = "llama3",
    [TM_CHAT_LLAMA4] = "llama4",
    [TM_CHAT_ZEPHYR] = "zephyr",
    [TM_CHAT_PHI3] = "phi3",
    [TM_CHAT_PHI4] = "phi4",
    [TM_CHAT_FALCON3] = "falcon3",
    [TM_CHAT_GEMMA] = "gemma",
    [TM_CHAT_MONARCH] = "monarch",
    [TM_CHAT_ORION] = "orion",
    [TM_CHAT_OPENCHAT] = "openchat",
    [TM_CHAT_VICUNA] = "vicuna",
    [TM_CHAT_VICUNA_ORCA] = "vicuna-orca",
    [TM_CHAT_DEEPSEEK] = "deepseek",
    [TM_CHAT_DEEPSEEK2] = "deepseek2",
    [TM_CHAT_DEEPSEEK3] = "deepseek3",
    [TM_CHAT_COMMAND_R] = "command-r",
    [TM_CHAT_MEGREZ] = "megrez",
    [TM_CHAT_EXAONE3] = "exaone3",
    [TM_CHAT_GRANITE] = "granite",
};

#define NAME_LIST                                                                                             \
    "chatml, llama2, llama2-sys, llama2-sys-bos, llama2-sys-strip, mistral-v1, mistral-v3, mistral-v3-tekken, " \
    "mistral-v7, mistral-v7-tekken, llama3, llama4, zephyr, phi3, phi4, falcon3, gemma, monarch, orion, "       \
    "openchat, vicuna, vicuna-orca, deepseek, deepseek2, deepseek3, command-r, megrez, exaone3, granite"

const char *tm_chat_template_name(tm_chat_template tmpl) {
    return (unsigned)tmpl < TM_CHAT_TEMPLATE_COUNT ? NAMES[tmpl] : NULL;
}

const char *tm_chat_template_names(void) { return NAME_LIST; }

static bool lookup_bytes(const char *name, size_t size, tm_chat_template *out) {
    for (int i = 0; i < TM_CHAT_TEMPLATE_COUNT; i++)
        if (strlen(NAMES[i]) == size && memcmp(NAMES[i], name, size) == 0) {
            *out = (tm_chat_template)i;
            return true;
        }
    return false;
}

bool tm_chat_template_lookup(const char *name, tm_chat_template *out) {
    tm_chat_template found;
    if (!name || !lookup_bytes(name, strlen(name), &found)) return false;
    if (out) *out = found;
    return true;
}

/* ---- detection ------------------------------------------------------------ */

typedef struct {
    const char *data;
    size_t size;
} jinja_text;

static bool has(jinja_text t, const char *marker) {
    size_t n = strlen(marker);
    return n <= t.size && memmem(t.data, t.size, marker, n) != NULL;
}

/* llm_chat_detect_template's cascade, in its order; returns llama.cpp's name
 * of the format (built in here or not), or NULL when nothing matches. */
static const char *detect_name(jinja_text t) {
    if (has(t, "<|im_start|>"))
        return has(t, "<|im_sep|>") ? "phi4" : has(t, "<end_of_utterance>") ? "smolvlm" : "chatml";
    if ((t.size >= 7 && memcmp(t.data, "mistral", 7) == 0) || has(t, "[INST]")) {
        if (has(t, "[SYSTEM_PROMPT]")) return "mistral-v7";
        if (has(t, "' [INST] ' + system_message") || has(t, "[AVAILABLE_TOOLS]")) {
            if (has(t, " [INST]")) return "mistral-v1";
            if (has(t, "\"[INST]\"")) return "mistral-v3-tekken";
            return "mistral-v3";
        }
        if (has(t, "content.strip()")) return "llama2-sys-strip";
        if (has(t, "bos_token + '[INST]")) return "llama2-sys-bos";
        if (has(t, "<<SYS>>")) return "llama2-sys";
        return "llama2";
    }
    if (has(t, "<|assistant|>") && has(t, "<|end|>")) return "phi3";
    if (has(t, "[gMASK]<sop>")) return "chatglm4";
    if (has(t, "<|assistant|>") && has(t, "<|user|>")) {
        if (has(t, "<|tool_declare|>")) return "exaone-moe";
        if (has(t, "</s>")) return "falcon3";
        /* Our one deviation (see chat.h): TinyLlama chat and zephyr-7b-beta
         * close every message with eos_token; GLM-Edge's template does not. */
        if (has(t, "message['content'] + eos_token")) return "zephyr";
        return "glmedge";
    }
    if (has(t, "<|{{ item['role'] }}|>") && has(t, "<|begin_of_image|>")) return "glmedge";
    if (has(t, "<|user|>") && has(t, "<|endoftext|>")) return "zephyr";
    if (has(t, "bos_token + message['role']")) return "monarch";
    if (has(t, "<start_of_turn>")) return "gemma";
    if (has(t, "'\\n\\nAssistant: ' + eos_token")) return "orion";
    if (has(t, "GPT4 Correct ")) return "openchat";
    if (has(t, "USER: ") && has(t, "ASSISTANT: ")) return has(t, "SYSTEM: ") ? "vicuna-orca" : "vicuna";
    if (has(t, "### Instruction:") && has(t, "<|EOT|>")) return "deepseek";
    if (has(t, "<|START_OF_TURN_TOKEN|>") && has(t, "<|USER_TOKEN|>")) return "command-r";
    if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>")) return "llama3";
    if (has(t, "[gMASK]sop")) return "chatglm3";
    if (has(t, "<\xE7\x94\xA8\xE6\x88\xB7>")) return "minicpm"; /* <用户> */
    if (has(t, "'Assistant: ' + message['content'] + eos_token")) return "deepseek2";
    if (has(t, "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>") && has(t, "<\xEF\xBD\x9C" "User\xEF\xBD\x9C>") &&
        has(t, "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"))
        return "deepseek3";
    if (has(t, "[|system|]") && has(t, "[|assistant|]") && has(t, "[|endofturn|]"))
        return has(t, "[|tool|]") ? "exaone4" : "exaone3";
    if (has(t, "rwkv-world") || has(t, "{{- 'User: ' + message['content']|trim + '\\n\\n' -}}")) return "rwkv-world";
    if (has(t, "<|start_of_role|>")) {
        if (has(t, "<tool_call>") || has(t, "<tools>")) return has(t, "g4_default_system_message") ? "granite-4.0" : "granite-4.1";
        return "granite";
    }
    if (has(t, "message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]"))
        return "gigachat";
    if (has(t, "<|role_start|>")) return "megrez";
    if (has(t, " \xD0\x90\xD1\x81\xD1\x81\xD0\xB8\xD1\x81\xD1\x82\xD0\xB5\xD0\xBD\xD1\x82:")) return "yandex"; /* " Ассистент:" */
    if (has(t, "<role>ASSISTANT</role>") &&
        (has(t, "'HUMAN'") || (has(t, "\"HUMAN\"") && has(t, "<think>")) ||
         (has(t, "<role>HUMAN</role>") && has(t, "<|role_end|>"))))
        return "bailing";
    if (has(t, "<|header_start|>") && has(t, "<|header_end|>")) return "llama4";
    if (has(t, "<|endofuserprompt|>")) return "dots1";
    if (has(t, "<|extra_0|>") && has(t, "<|extra_4|>")) return "hunyuan-moe";
    if (has(t, "<|start|>") && has(t, "<|channel|>")) return "gpt-oss";
    if (has(t, "<\xEF\xBD\x9C" "hy_Assistant\xEF\xBD\x9C>") &&
        (has(t, "<\xEF\xBD\x9C" "hy_begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>") ||
         has(t, "<\xEF\xBD\x9C" "hy_place\xE2\x96\x81holder\xE2\x96\x81no\xE2\x96\x81" "3\xEF\xBD\x9C>")))
        return "hunyuan";
    if (has(t, "<|im_assistant|>assistant<|im_middle|>")) return "kimi-k2";
    if (has(t, "<seed:bos>")) return "seed_oss";
    if (has(t, "'Assistant: '  + message['content'] + '<|separator|>")) return "grok-2";
    if (has(t, "<|begin|>") && has(t, "<|end|>") && has(t, "<|content|>")) return "solar-open";
    return NULL;
}

tm_status tm_chat_template_detect(const char *jinja, size_t size, tm_chat_template *out, tm_error *err) {
    if (!out || (!jinja && size)) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_chat_template_detect: NULL argument");
    if (lookup_bytes(jinja, size, out)) return TM_OK;
    const char *name = detect_name((jinja_text){jinja, size});
    if (name && lookup_bytes(name, strlen(name), out)) return TM_OK;
    if (name)
        return tm_error_set(err, TM_ERR_UNSUPPORTED,
                            "the chat template looks like llama.cpp's \"%s\", which tracemark does not build in "
                            "(Jinja templates are not run); pick one with --chat-template: %s",
                            name, NAME_LIST);
    return tm_error_set(err, TM_ERR_UNSUPPORTED,
                        "the chat template matches no built-in format (Jinja templates are not run); pick one with "
                        "--chat-template: %s",
                        NAME_LIST);
}

tm_status tm_chat_template_for_model(const tm_model *model, const char *name, tm_chat_template *out,
                                     tm_error *err) {
    if (!model || !out) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_chat_template_for_model: NULL argument");
    const char *path = tm_model_get_path(model) ? tm_model_get_path(model) : "model";
    if (name) {
        if (tm_chat_template_lookup(name, out)) return TM_OK;
        return tm_error_set(err, TM_ERR_ARGUMENT, "unknown chat template \"%.64s\" (built in: %s)", name, NAME_LIST);
    }
    tm_string_view jinja = {0};
    const tm_gguf *gguf = tm_model_get_gguf(model);
    if (!gguf || !tm_gguf_find(gguf, "tokenizer.chat_template"))
        return tm_error_set(err, TM_ERR_NOT_FOUND,
                            "%s: the model has no chat template (tokenizer.chat_template); pick one with "
                            "--chat-template: %s",
                            path, NAME_LIST);
    if (!tm_gguf_get_string(gguf, "tokenizer.chat_template", &jinja))
        return tm_error_set(err, TM_ERR_FORMAT, "%s: tokenizer.chat_template is not a string", path);
    tm_status status = tm_chat_template_detect(jinja.data, (size_t)jinja.size, out, err);
    if (status != TM_OK) tm_error_prefix(err, "%s", path);
    return status;
}

/* ---- formatting ------------------------------------------------------------- */

/* The text being built, and the spans of it that came from the messages
 * (roles and contents): those are plain text when the prompt is encoded, so
 * that a message cannot forge a turn by writing "<|im_end|>" (tm_chat_encode). */
typedef struct {
    char *data;
    size_t size, capacity;
    tm_text_span *spans;
    size_t n_spans, spans_capacity;
    bool failed;
} builder;

static void put_bytes(builder *b, const char *data, size_t size) {
    if (b->failed) return;
    if (!b->data || size > b->capacity - b->size - 1) {
        size_t capacity = b->capacity ? b->capacity : 256;
        while (capacity - b->size - 1 < size) {
            if (capacity > SIZE_MAX / 2) {
                b->failed = true;
                return;
            }
            capacity *= 2;
        }
        char *grown = realloc(b->data, capacity);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->capacity = capacity;
    }
    if (size) memcpy(b->data + b->size, data, size);
    b->size += size;
    b->data[b->size] = '\0';
}

/* Template text: may hold special tokens. */
static void put(builder *b, const char *text) { put_bytes(b, text, strlen(text)); }

/* Message text (a role or a content): recorded as a plain span, joined to
 * the previous span when they touch. */
static void put_plain_bytes(builder *b, const char *data, size_t size) {
    size_t start = b->size;
    put_bytes(b, data, size);
    if (b->failed || size == 0) return;
    if (b->n_spans && b->spans[b->n_spans - 1].start + b->spans[b->n_spans - 1].size == start) {
        b->spans[b->n_spans - 1].size += size;
        return;
    }
    if (b->n_spans == b->spans_capacity) {
        size_t capacity = b->spans_capacity ? 2 * b->spans_capacity : 16;
        tm_text_span *grown = capacity > SIZE_MAX / sizeof *grown ? NULL : realloc(b->spans, capacity * sizeof *grown);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->spans = grown;
        b->spans_capacity = capacity;
    }
    b->spans[b->n_spans++] = (tm_text_span){start, size};
}

static void put_plain(builder *b, const char *text) { put_plain_bytes(b, text, strlen(text)); }

/* llama.cpp's trim: ASCII whitespace off both ends. */
static void put_plain_trimmed(builder *b, const char *text) {
    size_t start = 0, end = strlen(text);
    while (start < end && isspace((unsigned char)text[start])) start++;
    while (end > start && isspace((unsigned char)text[end - 1])) end--;
    put_plain_bytes(b, text + start, end - start);
}

static void builder_free(builder *b) {
    free(b->data);
    free(b->spans);
}

static bool is_role(const tm_chat_message *m, const char *role) { return strcmp(m->role, role) == 0; }

/* What every format reads. */
typedef struct {
    tm_chat_template tmpl;
    const tm_chat_message *m;
    size_t n;
    bool ask; /* add_generation_prompt */
    const char *eos_text;
} chat_input;

#define FULLWIDTH_BAR "\xEF\xBD\x9C"                                        /* U+FF5C */
#define END_OF_SENTENCE "<" FULLWIDTH_BAR "end\xE2\x96\x81of\xE2\x96\x81sentence" FULLWIDTH_BAR ">"

/* Formats where each message is prefix + role + middle + content + suffix,
 * and the generation prompt is a fixed text. */
typedef struct {
    const char *prefix, *middle, *suffix, *ask;
    bool trim;
} uniform_format;

static const uniform_format UNIFORM[TM_CHAT_TEMPLATE_COUNT] = {
    [TM_CHAT_CHATML] = {"<|im_start|>", "\n", "<|im_end|>\n", "<|im_start|>assistant\n", false},
    [TM_CHAT_LLAMA3] = {"<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>",
                        "<|start_header_id|>assistant<|end_header_id|>\n\n", true},
    [TM_CHAT_LLAMA4] = {"<|header_start|>", "<|header_end|>\n\n", "<|eot|>", "<|header_start|>assistant<|header_end|>\n\n",
                        true},
    [TM_CHAT_PHI3] = {"<|", "|>\n", "<|end|>\n", "<|assistant|>\n", false},
    [TM_CHAT_PHI4] = {"<|im_start|>", "<|im_sep|>", "<|im_end|>", "<|im_start|>assistant<|im_sep|>", false},
    [TM_CHAT_FALCON3] = {"<|", "|>\n", "\n", "<|assistant|>\n", false},
    [TM_CHAT_MEGREZ] = {"<|role_start|>", "<|role_end|>", "<|turn_end|>", "<|role_start|>assistant<|role_end|>", false},
};

static void format_uniform(builder *b, const chat_input *in) {
    const uniform_format *f = &UNIFORM[in->tmpl];
    for (size_t i = 0; i < in->n; i++) {
        put(b, f->prefix), put_plain(b, in->m[i].role), put(b, f->middle);
        (f->trim ? put_plain_trimmed : put_plain)(b, in->m[i].content);
        put(b, f->suffix);
    }
    if (in->ask) put(b, f->ask);
}

/* Formats with one fixed text before and after each role's content (an
 * empty pair skips messages of that role; other roles are skipped), and a
 * fixed generation prompt. */
typedef struct {
    const char *system[2], *user[2], *assistant[2], *ask;
    bool trim;
} role_format;

static const role_format BY_ROLE[TM_CHAT_TEMPLATE_COUNT] = {
    [TM_CHAT_VICUNA] = {{"", "\n\n"}, {"USER: ", "\n"}, {"ASSISTANT: ", "</s>\n"}, "ASSISTANT:", false},
    [TM_CHAT_VICUNA_ORCA] = {{"SYSTEM: ", "\n"}, {"USER: ", "\n"}, {"ASSISTANT: ", "</s>\n"}, "ASSISTANT:", false},
    [TM_CHAT_DEEPSEEK] = {{"", ""}, {"### Instruction:\n", "\n"}, {"### Response:\n", "\n<|EOT|>\n"}, "### Response:\n", false},
    [TM_CHAT_DEEPSEEK2] = {{"", "\n\n"}, {"User: ", "\n\n"}, {"Assistant: ", END_OF_SENTENCE}, "Assistant:", false},
    [TM_CHAT_DEEPSEEK3] = {{"", "\n\n"},
                           {"<" FULLWIDTH_BAR "User" FULLWIDTH_BAR ">", ""},
                           {"<" FULLWIDTH_BAR "Assistant" FULLWIDTH_BAR ">", END_OF_SENTENCE},
                           "<" FULLWIDTH_BAR "Assistant" FULLWIDTH_BAR ">",
                           false},
    [TM_CHAT_COMMAND_R] = {{"<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
                           {"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
                           {"<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
                           "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
                           true},
    [TM_CHAT_EXAONE3] = {{"[|system|]", "[|endofturn|]\n"}, {"[|user|]", "\n"}, {"[|assistant|]", "[|endofturn|]\n"},
                         "[|assistant|]", true},
};

static void format_by_role(builder *b, const chat_input *in) {
    const role_format *r = &BY_ROLE[in->tmpl];
    for (size_t i = 0; i < in->n; i++) {
        const tm_chat_message *m = &in->m[i];
        const char *const *around = is_role(m, "system")      ? r->system
                                    : is_role(m, "user")      ? r->user
                                    : is_role(m, "assistant") ? r->assistant
                                                              : NULL;
        if (!around || !around[0]) continue;
        put(b, around[0]);
        (r->trim ? put_plain_trimmed : put_plain)(b, m->content);
        put(b, around[1]);
    }
    if (in->ask) put(b, r->ask);
}

static void format_llama2(builder *b, const chat_input *in) {
    tm_chat_template tmpl = in->tmpl;
    bool system_supported = tmpl != TM_CHAT_LLAMA2, bos_inside = tmpl == TM_CHAT_LLAMA2_SYS_BOS,
         strip = tmpl == TM_CHAT_LLAMA2_SYS_STRIP, inside_turn = true;
    void (*content)(builder *, const char *) = strip ? put_plain_trimmed : put_plain;
    put(b, "[INST] ");
    for (size_t i = 0; i < in->n; i++) {
        const tm_chat_message *m = &in->m[i];
        if (!inside_turn) {
            inside_turn = true;
            put(b, bos_inside ? "<s>[INST] " : "[INST] ");
        }
        if (is_role(m, "system")) {
            if (system_supported) put(b, "<<SYS>>\n");
            content(b, m->content);
            put(b, system_supported ? "\n<</SYS>>\n\n" : "\n");
        } else if (is_role(m, "user")) {
            content(b, m->content);
            put(b, " [/INST]");
        } else {
            content(b, m->content);
            put(b, "</s>");
            inside_turn = false;
        }
    }
}

static void format_mistral_v7(builder *b, const chat_input *in) {
    const char *space = in->tmpl == TM_CHAT_MISTRAL_V7 ? " " : "";
    for (size_t i = 0; i < in->n; i++) {
        const tm_chat_message *m = &in->m[i];
        if (is_role(m, "system")) {
            put(b, "[SYSTEM_PROMPT]"), put(b, space), put_plain(b, m->content), put(b, "[/SYSTEM_PROMPT]");
        } else if (is_role(m, "user")) {
            put(b, "[INST]"), put(b, space), put_plain(b, m->content), put(b, "[/INST]");
        } else {
            put(b, space), put_plain(b, m->content), put(b, "</s>");
        }
    }
}

static void format_mistral(builder *b, const chat_input *in) {
    const char *leading = in->tmpl == TM_CHAT_MISTRAL_V1 ? " " : "";
    const char *trailing = in->tmpl == TM_CHAT_MISTRAL_V3_TEKKEN ? "" : " ";
    bool trim_assistant = in->tmpl == TM_CHAT_MISTRAL_V3, inside_turn = false;
    for (size_t i = 0; i < in->n; i++) {
        const tm_chat_message *m = &in->m[i];
        if (!inside_turn) {
            put(b, leading), put(b, "[INST]"), put(b, trailing);
            inside_turn = true;
        }
        if (is_role(m, "system")) {
            put_plain(b, m->content), put(b, "\n\n");
        } else if (is_role(m, "user")) {
            put_plain(b, m->content), put(b, leading), put(b, "[/INST]");
        } else {
            put(b, trailing);
            (trim_assistant ? put_plain_trimmed : put_plain)(b, m->content);
            put(b, "</s>");
            inside_turn = false;
        }
    }
}

static void format_zephyr(builder *b, const chat_input *in) {
    for (size_t i = 0; i < in->n; i++) {
        put(b, "<|"), put_plain(b, in->m[i].role), put(b, "|>\n"), put_plain(b, in->m[i].content);
        put(b, in->eos_text ? in->eos_text : "<|endoftext|>"), put(b, "\n");
    }
    if (in->ask) put(b, "<|assistant|>\n");
}

/* A system message held back for the next user turn (Gemma, Orion): plain
 * text, copied in as such. */
static void put_held_system(builder *b, builder *system) {
    put_plain_bytes(b, system->data, system->size);
    system->size = 0;
}

static void format_gemma(builder *b, const chat_input *in) {
    builder system = {0};
    for (size_t i = 0; i < in->n; i++) {
        const tm_chat_message *m = &in->m[i];
        if (is_role(m, "system")) { /* no system role: merged into the next user turn */
            put_plain_trimmed(&system, m->content);
            continue;
        }
        bool model = is_role(m, "assistant"); /* Gemma's name for it */
        put(b, "<start_of_turn>");
        if (model) put(b, "model");
        else put_plain(b, m->role);
        put(b, "\n");
        if (system.size && !(model || strcmp(m->role, "model") == 0)) put_held_system(b, &system), put(b, "\n\n");
        put_plain_trimmed(b, m->content);
        put(b, "<end_of_turn>\n");
    }
    if (in->ask) put(b, "<start_of_turn>model\n");
    if (system.failed) b->failed = true;
    builder_free(&system);
}

static void format_orion(builder *b, const chat_input *in) {
    builder system = {0};
    for (size_t i = 0; i < in->n; i++) {
        const tm_chat_message *m = &in->m[i];
        if (is_role(m, "system")) {
            put_plain(&system, m->content);
        } else if (is_role(m, "user")) {
            put(b, "Human: ");
            if (system.size) put_held_system(b, &system), put(b, "\n\n");
            put_plain(b, m->content), put(b, "\n\nAssistant: </s>");
        } else {
            put_plain(b, m->content), put(b, "</s>");
        }
    }
    if (system.failed) b->failed = true;
    builder_free(&system);
}

static void format_openchat(builder *b, const chat_input *in) {
    for (size_t i = 0; i < in->n; i++) {
        const tm_chat_message *m = &in->m[i];
        if (is_role(m, "system")) {
            put_plain(b, m->content), put(b, "<|end_of_turn|>");
            continue;
        }
        put(b, "GPT4 Correct ");
        if (m->role[0]) {
            char first = (char)toupper((unsigned char)m->role[0]);
            put_plain_bytes(b, &first, 1), put_plain(b, m->role + 1);
        }
        put(b, ": "), put_plain(b, m->content), put(b, "<|end_of_turn|>");
    }
    if (in->ask) put(b, "GPT4 Correct Assistant:");
}

static void format_monarch(builder *b, const chat_input *in) {
    for (size_t i = 0; i < in->n; i++) {
        if (i > 0) put(b, "<s>"); /* the first message goes without, as BOS comes from the tokenizer */
        put_plain(b, in->m[i].role), put(b, "\n"), put_plain(b, in->m[i].content), put(b, "</s>\n");
    }
    if (in->ask) put(b, "<s>assistant\n");
}

static void format_granite(builder *b, const chat_input *in) {
    for (size_t i = 0; i < in->n; i++) {
        const tm_chat_message *m = &in->m[i];
        put(b, "<|start_of_role|>"), put_plain(b, m->role), put(b, "<|end_of_role|>");
        if (is_role(m, "assistant_tool_call")) put(b, "<|tool_call|>");
        put_plain(b, m->content), put(b, "<|end_of_text|>\n");
    }
    if (in->ask) put(b, "<|start_of_role|>assistant<|end_of_role|>");
}

typedef void (*formatter)(builder *b, const chat_input *in);

static formatter formatter_for(tm_chat_template tmpl) {
    if (UNIFORM[tmpl].prefix) return format_uniform;
    if (BY_ROLE[tmpl].ask) return format_by_role;
    switch (tmpl) {
    case TM_CHAT_LLAMA2: case TM_CHAT_LLAMA2_SYS: case TM_CHAT_LLAMA2_SYS_BOS: case TM_CHAT_LLAMA2_SYS_STRIP:
        return format_llama2;
    case TM_CHAT_MISTRAL_V1: case TM_CHAT_MISTRAL_V3: case TM_CHAT_MISTRAL_V3_TEKKEN: return format_mistral;
    case TM_CHAT_MISTRAL_V7: case TM_CHAT_MISTRAL_V7_TEKKEN: return format_mistral_v7;
    case TM_CHAT_ZEPHYR: return format_zephyr;
    case TM_CHAT_GEMMA: return format_gemma;
    case TM_CHAT_MONARCH: return format_monarch;
    case TM_CHAT_ORION: return format_orion;
    case TM_CHAT_OPENCHAT: return format_openchat;
    case TM_CHAT_GRANITE: return format_granite;
    default: return NULL;
    }
}

/* Check the arguments, run the format, hand over the text and its plain spans. */
static tm_status format_with_spans(tm_chat_template tmpl, const tm_chat_message *messages, size_t n_messages,
                                   bool add_generation_prompt, const char *eos_text, builder *b, tm_error *err) {
    if ((unsigned)tmpl >= TM_CHAT_TEMPLATE_COUNT || !formatter_for(tmpl))
        return tm_error_set(err, TM_ERR_ARGUMENT, "chat template %d is not a built-in format", (int)tmpl);
    for (size_t i = 0; i < n_messages; i++)
        if (!messages[i].role || !messages[i].content)
            return tm_error_set(err, TM_ERR_ARGUMENT, "chat message %zu has no %s", i, messages[i].role ? "content" : "role");
    chat_input in = {tmpl, messages, n_messages, add_generation_prompt, eos_text};
    *b = (builder){0};
    put_bytes(b, "", 0);
    formatter_for(tmpl)(b, &in);
    if (b->failed || !b->data) {
        builder_free(b);
        return tm_error_set(err, TM_ERR_NOMEM, "out of memory formatting %zu chat messages", n_messages);
    }
    return TM_OK;
}

tm_status tm_chat_format(tm_chat_template tmpl, const tm_chat_message *messages, size_t n_messages,
                         bool add_generation_prompt, const char *eos_text, char **text, size_t *size,
                         tm_error *err) {
    if (!text || !size || (!messages && n_messages)) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_chat_format: NULL argument");
    *text = NULL;
    *size = 0;
    builder b;
    tm_status status = format_with_spans(tmpl, messages, n_messages, add_generation_prompt, eos_text, &b, err);
    if (status != TM_OK) return status;
    free(b.spans);
    *text = b.data;
    *size = b.size;
    return TM_OK;
}

tm_status tm_chat_encode(const tm_tokenizer *tokenizer, tm_chat_template tmpl, const tm_chat_message *messages,
                         size_t n_messages, const tm_chat_encode_options *options, char **text, size_t *size,
                         int32_t **ids, size_t *n_ids, tm_error *err) {
    if (!tokenizer || !options || !ids || !n_ids || (!messages && n_messages))
        return tm_error_set(err, TM_ERR_ARGUMENT, "tm_chat_encode: NULL argument");
    if (text) *text = NULL;
    if (size) *size = 0;
    *ids = NULL;
    *n_ids = 0;
    builder b;
    tm_status status =
        format_with_spans(tmpl, messages, n_messages, options->add_generation_prompt, options->eos_text, &b, err);
    if (status != TM_OK) return status;
    /* Trusted messages: llama.cpp's way, special tokens parsed everywhere. */
    size_t n_plain = options->trust_message_special_tokens ? 0 : b.n_spans;
    status = tm_tokenizer_encode_special_outside(tokenizer, b.data, b.size, options->add_bos, b.spans, n_plain, ids,
                                                 n_ids, err);
    free(b.spans);
    if (status == TM_OK && text) {
        *text = b.data;
        if (size) *size = b.size;
    } else {
        free(b.data);
    }
    return status;
}
