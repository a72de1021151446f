/* Chat prompts that no client can forge: the server's messages go through
 * the tokenizer room's tm_chat_encode with message text always plain, so
 * the template's scaffolding is the only source of control tokens. */
#include "tracemark/server.h"

#include <stdlib.h>
#include <string.h>

tm_status tm_server_chat_tokens(const tm_tokenizer *t, tm_chat_template tmpl, const tm_chat_message *messages,
                                size_t n_messages, int32_t **ids, size_t *n_ids, tm_error *err) {
    *ids = NULL;
    *n_ids = 0;
    size_t eos_size = 0;
    const char *eos_text = tm_tokenizer_piece(t, tm_tokenizer_eos(t), &eos_size);
    char *eos = eos_size ? strndup(eos_text, eos_size) : NULL;
    if (eos_size && !eos) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
    tm_chat_encode_options options = {.add_generation_prompt = true, .eos_text = eos,
                                      .add_bos = tm_tokenizer_adds_bos(t), .trust_message_special_tokens = false};
    tm_status status = tm_chat_encode(t, tmpl, messages, n_messages, &options, NULL, NULL, ids, n_ids, err);
    free(eos);
    return status;
}
