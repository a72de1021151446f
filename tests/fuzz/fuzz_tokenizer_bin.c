/* libFuzzer harness: llama2.c tokenizer.bin files (tm_tokenizer_from_llama2c),
 * then encoding (plain and with special tokens), decoding and piece lookups
 * with the vocabulary they built. Seeds: tests/fuzz/corpus/tokenizer_bin. */
#include "fuzz_common.h"
#include "tracemark/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, 0600);
    tm_error err = {0};
    tm_tokenizer *t = NULL;
    if (tm_tokenizer_from_llama2c(&t, path, &err) != TM_OK) return 0;
    static const char text[] = "Once upon a time, <s>a cat</s> sat\n\n on the mat. \xE2\x96\x81 caf\xC3\xA9 \xF0\x9F\x98\x80";
    for (int special = 0; special < 2; special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        tm_status s = special ? tm_tokenizer_encode_special(t, text, sizeof text - 1, true, &ids, &n, &err)
                              : tm_tokenizer_encode(t, text, sizeof text - 1, true, &ids, &n, &err);
        if (s != TM_OK) continue;
        char *back = NULL;
        size_t back_size = 0;
        if (tm_tokenizer_decode(t, ids, n, &back, &back_size, &err) == TM_OK) free(back);
        free(ids);
    }
    int32_t vocab = tm_tokenizer_vocab_size(t);
    for (int32_t id = -1; id <= vocab && id < 600; id++) {
        size_t piece_size;
        (void)tm_tokenizer_piece(t, id, &piece_size);
        (void)tm_tokenizer_token_type(t, id);
    }
    tm_tokenizer_free(t);
    return 0;
}
