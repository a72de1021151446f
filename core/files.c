/* Files: read-only memory maps of model files (opened through
 * tm_input_open, core/input.c, like every input), and atomic
 * writes (temporary file in the same folder, fsync, rename) so that an
 * interrupted run never leaves a half-written output behind. */
#include "tracemark/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

tm_status tm_mapped_file_open(tm_mapped_file *file, const char *path, tm_error *err) {
    memset(file, 0, sizeof *file);
    /* Models are large by nature: no size limit, but a FIFO or device is
     * refused at once (tm_input_open). */
    int fd;
    struct stat st;
    tm_status opened = tm_input_open(path, 0, &fd, &st, err);
    if (opened == TM_ERR_NOT_FOUND) { /* mapped files have always reported a missing file as TM_ERR_IO */
        if (err) err->code = TM_ERR_IO;
        return TM_ERR_IO;
    }
    if (opened != TM_OK) return opened;
    file->size = (size_t)st.st_size;
    if (file->size > 0) {
        void *p = mmap(NULL, file->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return tm_error_set(err, TM_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        }
        file->data = p;
    }
    close(fd);
    file->path = tm_strdup(path, err);
    if (!file->path) {
        tm_mapped_file_close(file);
        return TM_ERR_NOMEM;
    }
    return TM_OK;
}

void tm_mapped_file_close(tm_mapped_file *file) {
    if (!file) return;
    if (file->data && file->size) munmap((void *)file->data, file->size);
    free(file->path);
    memset(file, 0, sizeof *file);
}

/* Write through a temporary file in the same folder, then either rename it
 * over path or link it into place (which fails if path exists). */
static tm_status write_through_temporary(const char *path, const void *data, size_t size, mode_t mode, bool replace,
                                         tm_error *err) {
    size_t n = strlen(path);
    char *temp = malloc(n + 16);
    if (!temp) return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", path);
    snprintf(temp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(temp);
    if (fd < 0) {
        tm_error_set(err, TM_ERR_IO, "%s: cannot create temporary file: %s", path, strerror(errno));
        free(temp);
        return TM_ERR_IO;
    }
    tm_status status = TM_OK;
    if (fchmod(fd, mode) != 0) status = tm_error_set(err, TM_ERR_IO, "%s: chmod: %s", temp, strerror(errno));
    const uint8_t *p = data;
    size_t left = size;
    while (status == TM_OK && left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            status = tm_error_set(err, TM_ERR_IO, "%s: write: %s", path, strerror(errno));
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (status == TM_OK && fsync(fd) != 0) status = tm_error_set(err, TM_ERR_IO, "%s: fsync: %s", path, strerror(errno));
    if (close(fd) != 0 && status == TM_OK) status = tm_error_set(err, TM_ERR_IO, "%s: close: %s", path, strerror(errno));
    if (status == TM_OK && replace && rename(temp, path) != 0)
        status = tm_error_set(err, TM_ERR_IO, "%s: rename: %s", path, strerror(errno));
    if (status == TM_OK && !replace && link(temp, path) != 0)
        status = errno == EEXIST ? tm_error_set(err, TM_ERR_ARGUMENT, "%s: already exists; refusing to overwrite", path)
                                 : tm_error_set(err, TM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    if (status != TM_OK || !replace) unlink(temp);
    free(temp);
    return status;
}

tm_status tm_write_file_atomic(const char *path, const void *data, size_t size, mode_t mode, tm_error *err) {
    return write_through_temporary(path, data, size, mode, true, err);
}

tm_status tm_write_file_exclusive(const char *path, const void *data, size_t size, mode_t mode, tm_error *err) {
    return write_through_temporary(path, data, size, mode, false, err);
}

bool tm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
