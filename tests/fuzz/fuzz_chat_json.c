/* libFuzzer harness: chat messages as a chat API sends them (a JSON array of
 * {"role", "content"}), formatted by every built-in template and encoded
 * with the template's special tokens only and with messages trusted, with
 * two vocabularies that hold control tokens (Llama 3's byte-level BPE, and
 * the SentencePiece seed vocabulary with <|im_start|>/<|im_end|>); the raw
 * bytes also go through chat-template recognition. Checks the property the
 * plain encoding promises: it never holds more control tokens than the
 * trusted one. Seeds: tests/fuzz/corpus/chat_json. */
#include "fuzz_common.h"
#include "tracemark/tokenizer.h"

#include <jansson.h>

static tm_tokenizer *vocabularies[2];

static void setup(void) {
    tm_error err = {0};
    char spm[4096];
    snprintf(spm, sizeof spm, "%s/tests/fuzz/corpus/gguf/vocab-only.gguf", TRACEMARK_SOURCE_DIR);
    if (tm_tokenizer_load(&vocabularies[0], fuzz_fixture("tokenizer-tests/ggml-vocab-llama-bpe.gguf"), &err) != TM_OK ||
        tm_tokenizer_load(&vocabularies[1], spm, &err) != TM_OK) {
        fprintf(stderr, "fuzz_chat_json: %s (set TRACEMARK_FIXTURES)\n", err.message);
        abort();
    }
}

static size_t control_tokens(const tm_tokenizer *t, const int32_t *ids, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += tm_tokenizer_token_type(t, ids[i]) == TM_TOKEN_CONTROL;
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!vocabularies[0]) setup();
    tm_error err = {0};
    tm_chat_template detected;
    (void)tm_chat_template_detect((const char *)data, size, &detected, &err);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return 0;
    enum { MAX_MESSAGES = 16 };
    tm_chat_message messages[MAX_MESSAGES];
    size_t n = 0;
    for (size_t i = 0; json_is_array(root) && i < json_array_size(root) && n < MAX_MESSAGES; i++) {
        json_t *role = json_object_get(json_array_get(root, i), "role");
        json_t *content = json_object_get(json_array_get(root, i), "content");
        if (!json_is_string(role) || !json_is_string(content)) continue;
        /* The CLI refuses strings with NUL inside; so does this harness. */
        if (strlen(json_string_value(role)) != json_string_length(role) ||
            strlen(json_string_value(content)) != json_string_length(content))
            continue;
        messages[n++] = (tm_chat_message){json_string_value(role), json_string_value(content)};
    }
    const tm_tokenizer *t = vocabularies[size % 2];
    for (int tmpl = 0; tmpl < TM_CHAT_TEMPLATE_COUNT; tmpl++) {
        size_t counts[2] = {0, 0};
        bool ok[2] = {false, false};
        for (int trusted = 0; trusted < 2; trusted++) {
            tm_chat_encode_options o = {.add_generation_prompt = tmpl % 2 == 0, .eos_text = tmpl % 3 ? "</s>" : NULL,
                                        .add_bos = true, .trust_message_special_tokens = trusted};
            int32_t *ids = NULL;
            size_t n_ids = 0;
            if (tm_chat_encode(t, (tm_chat_template)tmpl, messages, n, &o, NULL, NULL, &ids, &n_ids, &err) != TM_OK)
                continue;
            ok[trusted] = true;
            counts[trusted] = control_tokens(t, ids, n_ids);
            free(ids);
        }
        if (ok[0] && ok[1] && counts[0] > counts[1]) abort(); /* plain text gained a control token */
    }
    json_decref(root);
    return 0;
}
