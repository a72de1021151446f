/* Checked allocation: every size is multiplied with overflow checks before it
 * reaches the allocator, and failures come back through tm_error. */
#include "tracemark/core.h"

#include <stdio.h>
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

/* One unsigned number from a small /proc or /sys file, after the given
 * label (NULL: the first token); false when absent or not a number ("max"). */
static bool read_number(const char *path, const char *label, uint64_t *value) {
    FILE *f = fopen(path, "re");
    if (!f) return false;
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        const char *p = line;
        if (label) {
            size_t n = strlen(label);
            if (strncmp(line, label, n) != 0) continue;
            p += n;
        }
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end != p) {
            *value = v;
            if (label && strstr(end, "kB")) *value = v * 1024;
            found = true;
        }
        if (!label) break;
    }
    fclose(f);
    return found;
}

uint64_t tm_memory_available(void) {
    uint64_t available = UINT64_MAX, value, used;
    if (read_number("/proc/meminfo", "MemAvailable:", &value)) available = value;
    /* A container's limit is often far below the host's free memory. */
    if (read_number("/sys/fs/cgroup/memory.max", NULL, &value) &&
        read_number("/sys/fs/cgroup/memory.current", NULL, &used)) {
        uint64_t left = value > used ? value - used : 0;
        if (left < available) available = left;
    }
    return available;
}
