/* libFuzzer harness: watermark key files (tm_wm_key_read, watermark/keys.c):
 * the bytes as a 0600 file. Seeds: tests/fuzz/corpus/key. */
#include "fuzz_common.h"
#include "tracemark/watermark.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, 0600);
    tm_error err = {0};
    tm_wm_key *key = NULL;
    if (tm_wm_key_read(&key, path, &err) == TM_OK) {
        if (strlen(tm_wm_key_id(key)) != TM_WM_KEY_ID_SIZE - 1) abort();
        tm_wm_key_free(key);
    }
    return 0;
}
