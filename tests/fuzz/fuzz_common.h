/* Shared by the libFuzzer harnesses: every reader of tracemark takes a path
 * (and checks it is a regular file, core/input.c), so each input is written
 * to a memfd and its /proc/self/fd path handed over: a regular file in
 * memory, no disk in the loop. Fixture paths (a tokenizer for the detection
 * and chat harnesses) come from $TRACEMARK_FIXTURES, else ../shared beside
 * the source tree, as for the tests. Harnesses must never print: a finding
 * is a sanitizer report or a crash, nothing else. */
#ifndef TRACEMARK_FUZZ_COMMON_H
#define TRACEMARK_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The input as a regular file with the given mode; the same memfd each call. */
static inline const char *fuzz_file(const uint8_t *data, size_t size, mode_t mode) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("tracemark-fuzz", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
    if (fchmod(fd, mode) != 0) abort();
    return path;
}

/* $TRACEMARK_FIXTURES/relative, else <source>/../shared/relative; static buffer. */
static inline const char *fuzz_fixture(const char *relative) {
    static char path[4096];
    const char *root = getenv("TRACEMARK_FIXTURES");
    if (root && *root) snprintf(path, sizeof path, "%s/%s", root, relative);
    else snprintf(path, sizeof path, "%s/../shared/%s", TRACEMARK_SOURCE_DIR, relative);
    return path;
}

#endif
