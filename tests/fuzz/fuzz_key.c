/* libFuzzer harness: watermark key files (watermark/keys.c): the bytes
 * through tm_wm_key_parse, then as a 0600 file through tm_wm_key_read.
 * Seeds: tests/fuzz/corpus/key. */
#include "fuzz_common.h"
#include "tracemark/watermark.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* From memory first: libFuzzer's buffer is exactly size bytes, so any
     * read past the end is an ASan report. */
    tm_error err0 = {0};
    tm_wm_key *parsed = NULL;
    if (tm_wm_key_parse(&parsed, "input", (const char *)data, size, &err0) == TM_OK) tm_wm_key_free(parsed);
    const char *path = fuzz_file(data, size, 0600);
    tm_error err = {0};
    tm_wm_key *key = NULL;
    if (tm_wm_key_read(&key, path, &err) == TM_OK) {
        if (strlen(tm_wm_key_id(key)) != TM_WM_KEY_ID_SIZE - 1) abort();
        tm_wm_key_free(key);
    }
    return 0;
}
