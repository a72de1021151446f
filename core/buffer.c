/* A growing text buffer: appends that double the allocation as needed and
 * keep the text NUL-terminated. The reports renderers, the evaluation
 * exports and the text attacks all build their output through it. An
 * allocation failure (or a size that would overflow) sets `failed` and drops
 * every later append, so callers check once, at the end; it never writes
 * past its allocation. */
#include "tracemark/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(tm_buffer *b, size_t extra) {
    if (b->failed) return false;
    size_t need;
    if (!tm_add_size(b->size, extra, &need) || !tm_add_size(need, 1, &need)) return !(b->failed = true);
    if (need <= b->capacity) return true;
    size_t capacity = b->capacity ? b->capacity : 256;
    while (capacity < need)
        if (!tm_mul_size(capacity, 2, &capacity)) return !(b->failed = true);
    char *grown = realloc(b->data, capacity);
    if (!grown) return !(b->failed = true);
    b->data = grown;
    b->capacity = capacity;
    return true;
}

void tm_buffer_put(tm_buffer *b, const void *data, size_t size) {
    if (!reserve(b, size)) return;
    if (size) memcpy(b->data + b->size, data, size);
    b->size += size;
    b->data[b->size] = '\0';
}

void tm_buffer_puts(tm_buffer *b, const char *text) { tm_buffer_put(b, text, strlen(text)); }

void tm_buffer_printf(tm_buffer *b, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    char small[512];
    int n = vsnprintf(small, sizeof small, format, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        tm_buffer_put(b, small, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n)) return;
    va_start(ap, format);
    vsnprintf(b->data + b->size, (size_t)n + 1, format, ap);
    va_end(ap);
    b->size += (size_t)n;
}

void tm_buffer_free(tm_buffer *b) {
    free(b->data);
    *b = (tm_buffer){0};
}
