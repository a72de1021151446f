/* Implementation of the shared CLI plumbing declared in cli.h. */
#include "cli.h"

#include "tracemark/model.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tm_cli_fail(const tm_error *err) {
    fprintf(stderr, "tracemark: error: %s\n", err->message[0] ? err->message : tm_status_name(err->code));
    return TM_EXIT_FAILURE;
}

int tm_cli_usage(const char *command, const char *format, ...) {
    fprintf(stderr, "tracemark %s: ", command);
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fprintf(stderr, "\nRun 'tracemark %s --help' for usage.\n", command);
    return TM_EXIT_USAGE;
}

bool tm_cli_parse_int(const char *command, const char *flag, const char *text, long min, long max, long *out) {
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < min || value > max) {
        tm_cli_usage(command, "%s expects an integer in [%ld, %ld], got '%s'", flag, min, max, text);
        return false;
    }
    *out = value;
    return true;
}

bool tm_cli_parse_u64(const char *command, const char *flag, const char *text, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-') {
        tm_cli_usage(command, "%s expects a non-negative integer, got '%s'", flag, text);
        return false;
    }
    *out = value;
    return true;
}

bool tm_cli_parse_float(const char *command, const char *flag, const char *text, double min, double max, double *out) {
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(value) || value < min || value > max) {
        tm_cli_usage(command, "%s expects a number in [%g, %g], got '%s'", flag, min, max, text);
        return false;
    }
    *out = value;
    return true;
}

int tm_cli_print_json(json_t *value) {
    if (!value) {
        fprintf(stderr, "tracemark: error: out of memory building JSON\n");
        return TM_EXIT_FAILURE;
    }
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(value);
    if (!text) {
        fprintf(stderr, "tracemark: error: cannot encode JSON\n");
        return TM_EXIT_FAILURE;
    }
    puts(text);
    free(text);
    return TM_EXIT_OK;
}

tm_status tm_cli_read_input(const char *path, size_t max_bytes, char **data, size_t *size, tm_error *err) {
    if (!path || !strcmp(path, "-")) return tm_read_fd(STDIN_FILENO, "stdin", max_bytes, data, size, err);
    return tm_read_file_limited(path, max_bytes, data, size, err);
}

/* detect and verify: a vocabulary only, so never a download (cli.h). */
tm_status tm_cli_local_tokenizer(char *path, size_t size, tm_error *err) {
    const char *model = getenv("TRACEMARK_MODEL");
    if (model && *model) {
        char model_path[4096], tokenizer_path[4096];
        tm_status status = tm_model_resolve(model, model_path, sizeof model_path, tokenizer_path, sizeof tokenizer_path, err);
        if (status != TM_OK) return status;
        int n = snprintf(path, size, "%s", tokenizer_path[0] ? tokenizer_path : model_path);
        return n >= 0 && (size_t)n < size ? TM_OK : tm_error_set(err, TM_ERR_ARGUMENT, "tokenizer path too long");
    }
    const char *candidates[] = {"models/tok512.bin", "../shared/models/tok512.bin"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
        if (tm_file_exists(candidates[i])) {
            snprintf(path, size, "%s", candidates[i]);
            return TM_OK;
        }
    return tm_error_set(err, TM_ERR_NOT_FOUND,
                        "no tokenizer: pass --tokenizer PATH (looked at $TRACEMARK_MODEL, ./models/tok512.bin and "
                        "../shared/models/tok512.bin; a detector never downloads)");
}

void tm_cli_note_default_tokenizer(const char *command, const char *path, int32_t vocab) {
    fprintf(stderr,
            "tracemark %s: no --tokenizer given: using %s (%d tokens); text from a model with another vocabulary "
            "needs that model's --tokenizer\n",
            command, path, (int)vocab);
}
