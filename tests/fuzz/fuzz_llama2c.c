/* libFuzzer harness: llama2.c checkpoints (model/model.c's reader through
 * tm_model_load, then one token of the forward pass). Seeds:
 * tests/fuzz/corpus/llama2c. */
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_model_bytes(data, size);
    return 0;
}
