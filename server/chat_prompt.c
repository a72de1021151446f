/* Chat prompts that no client can forge: the template's scaffolding may
 * hold special tokens, a message's content never does. The common case (no
 * content holds the text of a special token) is tokenized exactly as
 * llama.cpp does, whole, with special tokens parsed; otherwise each content
 * is cut out of the formatted text at a random marker and tokenized as plain
 * text. This file must never hand tm_tokenizer_encode_special a byte of
 * content that holds a special token's text. */
#include "tracemark/server.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

/* Whether plain and special-parsing tokenization of the content disagree,
 * i.e. whether some special token's text occurs in it. */
static tm_status holds_special_text(const tm_tokenizer *t, const char *text, bool *out, tm_error *err) {
    int32_t *plain = NULL, *special = NULL;
    size_t n_plain = 0, n_special = 0, size = strlen(text);
    *out = false;
    tm_status status = tm_tokenizer_encode(t, text, size, false, &plain, &n_plain, err);
    if (status == TM_OK) status = tm_tokenizer_encode_special(t, text, size, false, &special, &n_special, err);
    if (status == TM_OK)
        *out = n_plain != n_special || (n_plain && memcmp(plain, special, n_plain * sizeof *plain) != 0);
    free(plain);
    free(special);
    return status;
}

static tm_status append_ids(int32_t **ids, size_t *n, size_t *capacity, const int32_t *more, size_t n_more,
                            tm_error *err) {
    if (*n + n_more > *capacity) {
        size_t c = *capacity ? *capacity : 256;
        while (c < *n + n_more) c *= 2;
        int32_t *grown = realloc(*ids, c * sizeof *grown);
        if (!grown) return tm_error_set(err, TM_ERR_NOMEM, "out of memory");
        *ids = grown;
        *capacity = c;
    }
    if (n_more) memcpy(*ids + *n, more, n_more * sizeof *more);
    *n += n_more;
    return TM_OK;
}

tm_status tm_server_chat_tokens(const tm_tokenizer *t, tm_chat_template tmpl, const tm_chat_message *messages,
                                size_t n_messages, int32_t **ids, size_t *n_ids, tm_error *err) {
    *ids = NULL;
    *n_ids = 0;
    size_t eos_size = 0;
    const char *eos_text = tm_tokenizer_piece(t, tm_tokenizer_eos(t), &eos_size);
    char *eos = eos_size ? strndup(eos_text, eos_size) : NULL;
    bool forged = false;
    tm_status status = TM_OK;
    for (size_t i = 0; i < n_messages && status == TM_OK && !forged; i++)
        status = holds_special_text(t, messages[i].content, &forged, err);
    char *formatted = NULL;
    size_t size = 0;
    tm_chat_message *marked = NULL;
    char (*markers)[48] = NULL;
    if (status == TM_OK && !forged) {
        status = tm_chat_format(tmpl, messages, n_messages, true, eos, &formatted, &size, err);
        if (status == TM_OK)
            status = tm_tokenizer_encode_special(t, formatted, size, tm_tokenizer_adds_bos(t), ids, n_ids, err);
        goto done;
    }
    if (status != TM_OK) goto done;
    /* Format with a random marker in place of each content, then cut. */
    marked = calloc(n_messages, sizeof *marked);
    markers = calloc(n_messages, sizeof *markers);
    unsigned char nonce[8];
    if (!marked || !markers || RAND_bytes(nonce, sizeof nonce) != 1) {
        status = tm_error_set(err, TM_ERR_NOMEM, "out of memory or no randomness for the chat markers");
        goto done;
    }
    for (size_t i = 0; i < n_messages; i++) {
        snprintf(markers[i], sizeof markers[i], "\x01tm%02x%02x%02x%02x%02x%02x%02x%02x.%zu\x01", nonce[0], nonce[1],
                 nonce[2], nonce[3], nonce[4], nonce[5], nonce[6], nonce[7], i);
        marked[i] = (tm_chat_message){messages[i].role, markers[i]};
    }
    status = tm_chat_format(tmpl, marked, n_messages, true, eos, &formatted, &size, err);
    size_t capacity = 0;
    const char *p = formatted;
    bool first = true;
    while (status == TM_OK) {
        /* The next marker, whichever message it is. */
        const char *next = NULL;
        size_t which = 0;
        for (size_t i = 0; i < n_messages; i++) {
            const char *at = strstr(p, markers[i]);
            if (at && (!next || at < next)) next = at, which = i;
        }
        size_t scaffold = next ? (size_t)(next - p) : strlen(p);
        int32_t *part = NULL;
        size_t n_part = 0;
        if (scaffold || (first && tm_tokenizer_adds_bos(t))) {
            status = tm_tokenizer_encode_special(t, p, scaffold, first && tm_tokenizer_adds_bos(t), &part, &n_part, err);
            if (status == TM_OK) status = append_ids(ids, n_ids, &capacity, part, n_part, err);
            free(part);
        }
        first = false;
        if (!next || status != TM_OK) break;
        const char *content = messages[which].content;
        if (*content) {
            part = NULL;
            status = tm_tokenizer_encode(t, content, strlen(content), false, &part, &n_part, err);
            if (status == TM_OK) status = append_ids(ids, n_ids, &capacity, part, n_part, err);
            free(part);
        }
        p = next + strlen(markers[which]);
    }
done:
    if (status != TM_OK) {
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
    }
    free(formatted);
    free(marked);
    free(markers);
    free(eos);
    return status;
}
