/* The model loaders' harness body, shared by fuzz_gguf and fuzz_llama2c
 * (tm_model_load picks the format by magic): load, and when the file is
 * accepted, run one token through a 4-token context, so that every tensor
 * the loader accepted is read once (an out-of-bounds tensor shows up under
 * ASan); then the tokenizer loader and chat-template detection on the same
 * bytes. */
#include "fuzz_common.h"
#include "tracemark/generator.h"

static void fuzz_model_bytes(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, 0600);
    tm_error err = {0};
    tm_model *model = NULL;
    if (tm_model_load(&model, path, &err) == TM_OK) {
        tm_context *context = NULL;
        /* A bounded model: the file holds every weight, so its size bounds the work. */
        if (tm_context_create(&context, model, 4, 1, &err) == TM_OK) {
            int32_t token = tm_model_get_config(model)->n_vocab > 1 ? 1 : 0;
            const float *logits = NULL;
            (void)tm_context_eval(context, &token, 1, &logits, &err);
            tm_context_free(context);
        }
        tm_chat_template tmpl;
        (void)tm_chat_template_for_model(model, NULL, &tmpl, &err);
        tm_model_free(model);
    }
    tm_tokenizer *tokenizer = NULL;
    if (tm_tokenizer_load(&tokenizer, path, &err) == TM_OK) {
        static const char text[] = "Once upon a time <s> there was a cat.\n<|im_start|> caf\xC3\xA9";
        int32_t *ids = NULL;
        size_t n = 0;
        if (tm_tokenizer_encode_special(tokenizer, text, sizeof text - 1, true, &ids, &n, &err) == TM_OK) {
            char *back = NULL;
            size_t back_size = 0;
            if (tm_tokenizer_decode(tokenizer, ids, n, &back, &back_size, &err) == TM_OK) free(back);
            free(ids);
        }
        tm_tokenizer_free(tokenizer);
    }
}
