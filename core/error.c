/* Errors as values: a status code plus a message that names the file, field or
 * offset at fault. Formatting only; nothing here prints or exits. */
#include "tracemark/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

tm_status tm_error_set(tm_error *err, tm_status code, const char *format, ...) {
    if (err) {
        err->code = code;
        va_list args;
        va_start(args, format);
        vsnprintf(err->message, sizeof err->message, format, args);
        va_end(args);
    }
    return code;
}

tm_status tm_error_prefix(tm_error *err, const char *format, ...) {
    if (!err) return TM_ERR_ARGUMENT;
    char prefix[TM_ERROR_MESSAGE_MAX];
    va_list args;
    va_start(args, format);
    vsnprintf(prefix, sizeof prefix, format, args);
    va_end(args);
    size_t head = strlen(prefix), tail = strlen(err->message);
    if (head + 2 >= sizeof err->message) head = sizeof err->message - 3;
    if (head + 2 + tail >= sizeof err->message) tail = sizeof err->message - 3 - head;
    memmove(err->message + head + 2, err->message, tail);
    memcpy(err->message, prefix, head);
    memcpy(err->message + head, ": ", 2);
    err->message[head + 2 + tail] = '\0';
    return err->code;
}

const char *tm_status_name(tm_status code) {
    switch (code) {
    case TM_OK: return "ok";
    case TM_ERR_IO: return "i/o error";
    case TM_ERR_FORMAT: return "malformed input";
    case TM_ERR_UNSUPPORTED: return "unsupported";
    case TM_ERR_NOMEM: return "out of memory";
    case TM_ERR_ARGUMENT: return "bad argument";
    case TM_ERR_PERMISSION: return "permission";
    case TM_ERR_NOT_FOUND: return "not found";
    case TM_ERR_LIMIT: return "limit reached";
    }
    return "unknown error";
}
