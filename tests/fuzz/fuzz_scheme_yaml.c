/* libFuzzer harness: watermark scheme YAML (tm_wm_config_load), and for a
 * config it accepts, its description and a scheme made from it with a fixed
 * key. Seeds: tests/fuzz/corpus/scheme_yaml (configs/schemes). */
#include "fuzz_common.h"
#include "tracemark/watermark.h"

static tm_wm_key *key;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tm_error err = {0};
    if (!key) {
        uint8_t secret[TM_WM_KEY_BYTES] = {7};
        if (tm_wm_key_from_secret(&key, secret, &err) != TM_OK) abort();
    }
    const char *path = fuzz_file(data, size, 0600);
    tm_wm_config config;
    if (tm_wm_config_load(&config, path, &err) != TM_OK) return 0;
    char description[512];
    (void)tm_wm_config_describe(&config, description, sizeof description);
    tm_wm_scheme *scheme = NULL;
    if (tm_wm_scheme_create(&scheme, &config, key, &err) == TM_OK) tm_wm_scheme_free(scheme);
    return 0;
}
