/* libFuzzer harness: `tracemark detect --jsonl` on the input as its JSONL
 * file (cli/detect.c's bounded line reader, JSON records, error records,
 * batched detection), run through the command itself with a fixed key file,
 * the KGW scheme and tok512.bin, one thread, stdout sent to /dev/null
 * (a failure of the command itself prints one error line on stderr).
 * Seeds: tests/fuzz/corpus/detect_jsonl. */
#include "fuzz_common.h"
#include "tracemark/watermark.h"

#include <fcntl.h>
#include <getopt.h>

int tm_cmd_detect(int argc, char **argv);

static char key_path[64] = "", config_path[4096], tokenizer_path[4096];

static void setup(void) {
    tm_error err = {0};
    uint8_t secret[TM_WM_KEY_BYTES] = {9, 9, 9};
    tm_wm_key *key = NULL;
    char dir[] = "/tmp/tracemark-fuzz-XXXXXX";
    if (!mkdtemp(dir) || tm_wm_key_from_secret(&key, secret, &err) != TM_OK) abort();
    snprintf(key_path, sizeof key_path, "%s/k.key", dir);
    if (tm_wm_key_write(key, key_path, &err) != TM_OK) abort();
    tm_wm_key_free(key);
    snprintf(config_path, sizeof config_path, "%s/configs/schemes/kgw-lefthash.yaml", TRACEMARK_SOURCE_DIR);
    snprintf(tokenizer_path, sizeof tokenizer_path, "%s", fuzz_fixture("models/tok512.bin"));
    int null = open("/dev/null", O_WRONLY);
    if (null < 0 || dup2(null, STDOUT_FILENO) < 0) abort(); /* stderr stays: libFuzzer reports there */
    close(null);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!key_path[0]) setup();
    char input[64];
    snprintf(input, sizeof input, "%s", fuzz_file(data, size, 0600));
    char *argv[] = {"detect", "--jsonl", "--key", key_path, "--watermark", config_path, "--tokenizer",
                    tokenizer_path, "--threads", "1", "--max-line-bytes", "4096", input, NULL};
    optind = 0; /* GNU getopt: start afresh */
    (void)tm_cmd_detect((int)(sizeof argv / sizeof argv[0]) - 1, argv);
    return 0;
}
