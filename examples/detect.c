/* Example: is this text watermarked? Links only libtracemark-detect (no
 * forward pass): cc detect.c $(pkg-config --cflags --libs tracemark-detect).
 * Usage: detect KEY SCHEME.yaml TOKENIZER < text. Exit 0 watermarked, 3 not,
 * 1 error. It never prints the key. */
#include <tracemark/detect.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: detect KEY SCHEME.yaml TOKENIZER < text\n"); return 2; }
    tm_error err = {0};
    tm_wm_key *key = NULL;
    tm_wm_config config;
    tm_tokenizer *tokenizer = NULL;
    tm_detector *detector = NULL;
    tm_detect_options options;
    tm_detect_options_default(&options);
    char text[1 << 16];
    size_t size = fread(text, 1, sizeof text, stdin);
    tm_detection d;
    int status = 1;
    if (tm_wm_key_read(&key, argv[1], &err) || tm_wm_config_load(&config, argv[2], &err) ||
        tm_tokenizer_load(&tokenizer, argv[3], &err) ||
        tm_detector_create(&detector, tokenizer, &config, (const tm_wm_key *const *)&key, 1, &options, &err) ||
        tm_detect_text(detector, text, size, NULL, &d, &err))
        fprintf(stderr, "detect: %s\n", err.message);
    else {
        printf("%s: p = %.3g over %zu scored tokens (key %s)\n", d.detected ? "watermarked" : "not watermarked",
               d.p, d.n_scored, d.key_id);
        status = d.detected ? 0 : 3;
    }
    tm_detector_free(detector);
    tm_tokenizer_free(tokenizer);
    tm_wm_key_free(key);
    return status;
}
