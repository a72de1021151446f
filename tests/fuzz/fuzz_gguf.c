/* libFuzzer harness: GGUF files (model/gguf.c through tm_model_load, the
 * forward pass over what it accepted, the tokenizer and chat-template
 * readers of tokenizer/). Seeds: tests/fuzz/corpus/gguf (make_seeds.py). */
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_model_bytes(data, size);
    return 0;
}
