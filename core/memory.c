/* Checked allocation: every size is multiplied with overflow checks before it
 * reaches the allocator, and failures come back through tm_error. */
#include "tracemark/core.h"

#include <stdlib.h>
#include <string.h>

void *tm_alloc_array(size_t count, size_t size, tm_error *err) {
    size_t bytes;
    if (!tm_mul_size(count, size, &bytes)) {
        tm_error_set(err, TM_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) tm_error_set(err, TM_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *tm_alloc_aligned(size_t count, size_t size, tm_error *err) {
    size_t bytes;
    if (!tm_mul_size(count, size, &bytes) || !tm_add_size(bytes, 63, &bytes)) {
        tm_error_set(err, TM_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    bytes &= ~(size_t)63;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) {
        tm_error_set(err, TM_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    memset(p, 0, bytes ? bytes : 64);
    return p;
}

void tm_free_aligned(void *p) { free(p); }

char *tm_strdup(const char *s, tm_error *err) {
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (!copy) {
        tm_error_set(err, TM_ERR_NOMEM, "out of memory copying a string of %zu bytes", n);
        return NULL;
    }
    memcpy(copy, s, n);
    return copy;
}
