/* libFuzzer harness: detection of a text (detect/: normalisation, the
 * tokenizer, every scheme's scoring, windows). The first byte picks the
 * scheme (one of configs/schemes/) and whether windows are searched; the rest
 * is the text, any bytes. The tokenizer is tok512.bin from the fixtures; the
 * key is fixed. Seeds: tests/fuzz/corpus/detect_text. */
#include "fuzz_common.h"
#include "tracemark/detect.h"

static const char *const SCHEMES[] = {"kgw-lefthash", "kgw-selfhash", "unigram", "gumbel",
                                      "synthid",      "dipmark",      "exp-edit", "its-edit"};
enum { N_SCHEMES = sizeof SCHEMES / sizeof SCHEMES[0] };
static tm_detector *detectors[N_SCHEMES][2];
static tm_tokenizer *tokenizer; /* kept for the process's life, as the detectors are */
static tm_wm_key *key;

static void setup(void) {
    tm_error err = {0};
    uint8_t secret[TM_WM_KEY_BYTES] = {1, 2, 3, 4};
    if (tm_tokenizer_load(&tokenizer, fuzz_fixture("models/tok512.bin"), &err) != TM_OK ||
        tm_wm_key_from_secret(&key, secret, &err) != TM_OK) {
        fprintf(stderr, "fuzz_detect_text: %s (set TRACEMARK_FIXTURES)\n", err.message);
        abort();
    }
    for (int s = 0; s < N_SCHEMES; s++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/configs/schemes/%s.yaml", TRACEMARK_SOURCE_DIR, SCHEMES[s]);
        tm_wm_config config;
        if (tm_wm_config_load(&config, path, &err) != TM_OK) abort();
        for (int w = 0; w < 2; w++) {
            tm_detect_options o;
            tm_detect_options_default(&o);
            /* EXP/ITS-edit: windows are refused (an alignment is no sum), and 19
             * permutations, enough to run every step fast, can decide at 5%. */
            bool alignment = config.kind == TM_WM_EXP_EDIT;
            o.windows = w && !alignment;
            if (alignment) {
                o.permutations = 19;
                o.fpr = 0.05;
            }
            const tm_wm_key *keys[1] = {key};
            if (tm_detector_create(&detectors[s][w], tokenizer, &config, keys, 1, &o, &err) != TM_OK) {
                fprintf(stderr, "fuzz_detect_text: %s: %s\n", SCHEMES[s], err.message);
                abort();
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!detectors[0][0]) setup();
    if (size == 0) return 0;
    const tm_detector *d = detectors[data[0] % N_SCHEMES][data[0] >> 7];
    tm_detection result;
    tm_error err = {0};
    (void)tm_detect_text(d, (const char *)data + 1, size - 1, NULL, &result, &err);
    return 0;
}
