/* Small text helpers every room needs: UTF-8 validation (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), the one validator
 * that tokenizers, normaliser and CLI share; character counting; and the
 * clock. Nothing here allocates, prints or reads past the size it is given. */
#include "tracemark/core.h"

#include <time.h>

size_t tm_utf8_valid_prefix(const char *s, size_t size) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < size) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        /* The allowed range of the second byte rules out overlongs (E0, F0),
         * surrogates (ED) and code points above U+10FFFF (F4). */
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) n = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return i;
        if (size - i < n || p[i + 1] < lo || p[i + 1] > hi) return i;
        for (size_t k = 2; k < n; k++)
            if ((p[i + k] & 0xC0) != 0x80) return i;
        i += n;
    }
    return size;
}

bool tm_utf8_valid(const char *s, size_t size) { return tm_utf8_valid_prefix(s, size) == size; }

size_t tm_utf8_count_chars(const char *text, size_t bytes) {
    if (!text) return 0;
    size_t count = 0;
    for (size_t i = 0; i < bytes; i++) count += ((uint8_t)text[i] & 0xC0) != 0x80;
    return count;
}

double tm_seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
