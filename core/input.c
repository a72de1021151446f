/* Input files: the one way tracemark opens a file it did not write. Every
 * reader (models, tokenizers, keys, scheme YAML, texts) comes through here, so
 * that a FIFO, device or directory is refused at once instead of blocking in
 * open(2) or read(2), and so that no input is read past a size limit the
 * caller names. The type is checked on the descriptor actually opened (with
 * O_NONBLOCK, so opening a FIFO never waits for a writer), never on the path
 * before opening it. This file must never follow the path twice, and never
 * read more than max_bytes (+1 to notice the excess) into memory. */
#include "tracemark/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

tm_status tm_input_open(const char *path, uint64_t max_bytes, int *fd_out, struct stat *st_out, tm_error *err) {
    *fd_out = -1;
    if (!path) return tm_error_set(err, TM_ERR_ARGUMENT, "no input file named");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return tm_error_set(err, errno == ENOENT ? TM_ERR_NOT_FOUND : TM_ERR_IO, "%s: cannot open: %s", path,
                            strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return tm_error_set(err, TM_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return tm_error_set(err, TM_ERR_IO, "%s: not a regular file (%s)", path,
                            S_ISFIFO(st.st_mode)  ? "a FIFO"
                            : S_ISDIR(st.st_mode) ? "a directory"
                            : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                            : S_ISSOCK(st.st_mode) ? "a socket"
                                                   : "not a file");
    }
    if (max_bytes > 0 && (uint64_t)st.st_size > max_bytes) {
        close(fd);
        return tm_error_set(err, TM_ERR_LIMIT, "%s: %llu bytes, over the limit of %llu bytes", path,
                            (unsigned long long)st.st_size, (unsigned long long)max_bytes);
    }
    /* A regular file never blocks, but later readers expect blocking mode. */
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *fd_out = fd;
    if (st_out) *st_out = st;
    return TM_OK;
}

tm_status tm_read_fd(int fd, const char *name, size_t max_bytes, char **data, size_t *size, tm_error *err) {
    *data = NULL;
    *size = 0;
    size_t capacity = 4096, used = 0;
    char *buffer = malloc(capacity);
    if (!buffer) return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", name);
    for (;;) {
        if (capacity - used < 2) {
            size_t bigger;
            char *grown = NULL;
            if (tm_mul_size(capacity, 2, &bigger)) {
                /* Never hold much more than the limit allows (+2: the byte that
                 * shows the excess and the NUL). */
                if (max_bytes > 0 && max_bytes < SIZE_MAX - 2 && bigger > max_bytes + 2) bigger = max_bytes + 2;
                if (bigger > capacity) grown = realloc(buffer, bigger);
            }
            if (!grown) {
                free(buffer);
                return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory after %zu bytes", name, used);
            }
            buffer = grown;
            capacity = bigger;
        }
        ssize_t n = read(fd, buffer + used, capacity - used - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            free(buffer);
            return tm_error_set(err, TM_ERR_IO, "%s: read error: %s", name, strerror(e));
        }
        if (n == 0) break;
        used += (size_t)n;
        if (max_bytes > 0 && used > max_bytes) {
            free(buffer);
            return tm_error_set(err, TM_ERR_LIMIT, "%s: more than the limit of %zu bytes", name, max_bytes);
        }
    }
    buffer[used] = '\0';
    *data = buffer;
    *size = used;
    return TM_OK;
}

tm_status tm_read_file_limited(const char *path, size_t max_bytes, char **data, size_t *size, tm_error *err) {
    *data = NULL;
    *size = 0;
    int fd;
    tm_status status = tm_input_open(path, max_bytes, &fd, NULL, err);
    if (status != TM_OK) return status;
    /* The limit holds even if the file grows after fstat. */
    status = tm_read_fd(fd, path, max_bytes, data, size, err);
    close(fd);
    return status;
}

tm_status tm_read_file(const char *path, char **data, size_t *size, tm_error *err) {
    tm_status status = tm_read_file_limited(path, TM_READ_FILE_MAX, data, size, err);
    if (status == TM_ERR_NOT_FOUND) { /* as tm_read_file has always reported a missing file */
        if (err) err->code = TM_ERR_IO;
        return TM_ERR_IO;
    }
    return status;
}
