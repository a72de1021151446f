/* Streaming GGUF v3 writer. Metadata is kept encoded (each kv as the bytes
 * it will have in the file), tensor infos are laid out as soon as the data
 * section begins, and tensor data is appended through a buffered file
 * descriptor so that nothing larger than one slab of one tensor needs to be
 * in memory. All output goes to a mkstemp file beside the destination that is
 * fsync'd and renamed by finish; anything else (an error, free before finish)
 * unlinks it. This file must never leave a partial file at the destination,
 * and must never write a header that disagrees with the data that follows. */
#include "gguf_writer.h"
#include "model_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    WRITER_BUFFER_BYTES = 4 << 20,
    DEFAULT_ALIGNMENT = 32,
    MAX_NESTING = 8, /* as the reader accepts */
};

typedef struct {
    char *key;
    uint8_t *bytes; /* value type (u32) + value, as in the file */
    size_t size;
} encoded_kv;

typedef struct {
    char *name;
    uint32_t n_dims, type;
    uint64_t ne[4];
    uint64_t bytes, offset;
} tensor_info;

struct tm_gguf_writer {
    char *path, *temp_path;
    int fd;
    uint32_t alignment;
    encoded_kv *kv;
    size_t n_kv, kv_capacity;
    tensor_info *tensors;
    size_t n_tensors, tensor_capacity;
    bool data_started, finished;
    /* data streaming state */
    size_t current;          /* tensor being written */
    uint64_t current_done;   /* its bytes written so far */
    uint64_t file_offset;    /* bytes handed to the buffer so far */
    uint8_t *buffer;
    size_t buffered;
};

/* ---- growable byte string used to encode values ------------------------------ */

typedef struct {
    uint8_t *data;
    size_t size, capacity;
    bool failed;
} bytes;

static void bytes_append(bytes *b, const void *data, size_t size) {
    if (b->failed || size == 0) return;
    size_t need;
    if (!tm_add_size(b->size, size, &need)) { b->failed = true; return; }
    if (need > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 64;
        while (capacity < need) {
            if (!tm_mul_size(capacity, 2, &capacity)) { b->failed = true; return; }
        }
        uint8_t *p = realloc(b->data, capacity);
        if (!p) { b->failed = true; return; }
        b->data = p;
        b->capacity = capacity;
    }
    memcpy(b->data + b->size, data, size);
    b->size = need;
}

static void put_le(bytes *b, uint64_t v, unsigned n) {
    uint8_t tmp[8];
    if (n > sizeof tmp) n = sizeof tmp; /* never true; tells GCC 12 under UBSan that tmp is not overrun */
    for (unsigned i = 0; i < n; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    bytes_append(b, tmp, n);
}

static void put_string(bytes *b, const char *s, uint64_t n) {
    put_le(b, n, 8);
    bytes_append(b, s, (size_t)n);
}

static unsigned scalar_size(tm_gguf_type t) {
    switch (t) {
    case TM_GGUF_UINT8: case TM_GGUF_INT8: case TM_GGUF_BOOL: return 1;
    case TM_GGUF_UINT16: case TM_GGUF_INT16: return 2;
    case TM_GGUF_UINT32: case TM_GGUF_INT32: case TM_GGUF_FLOAT32: return 4;
    case TM_GGUF_UINT64: case TM_GGUF_INT64: case TM_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static uint64_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static uint64_t f64_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

/* Encode a parsed value (without its type tag). The reader keeps FLOAT32 as
 * a double that came from a float, so narrowing it back is exact. */
static bool encode_value(bytes *b, const tm_gguf_value *v, int level) {
    unsigned n = scalar_size(v->type);
    switch (v->type) {
    case TM_GGUF_UINT8: case TM_GGUF_UINT16: case TM_GGUF_UINT32: case TM_GGUF_UINT64:
        put_le(b, v->as.u64, n);
        return true;
    case TM_GGUF_INT8: case TM_GGUF_INT16: case TM_GGUF_INT32: case TM_GGUF_INT64:
        put_le(b, (uint64_t)v->as.i64, n);
        return true;
    case TM_GGUF_FLOAT32: put_le(b, f32_bits((float)v->as.f64), 4); return true;
    case TM_GGUF_FLOAT64: put_le(b, f64_bits(v->as.f64), 8); return true;
    case TM_GGUF_BOOL: put_le(b, v->as.boolean ? 1 : 0, 1); return true;
    case TM_GGUF_STRING: put_string(b, v->as.string.data, v->as.string.size); return true;
    case TM_GGUF_ARRAY: {
        if (level >= MAX_NESTING) return false;
        tm_gguf_type et = v->as.array.element_type;
        uint64_t count = v->as.array.count;
        put_le(b, (uint64_t)et, 4);
        put_le(b, count, 8);
        unsigned es = scalar_size(et);
        if (es) {
            uint64_t total;
            if (!tm_mul_u64(count, es, &total) || total > SIZE_MAX || (count && !v->as.array.raw)) return false;
            bytes_append(b, v->as.array.raw, (size_t)total); /* already little-endian */
            return true;
        }
        if (et != TM_GGUF_STRING && et != TM_GGUF_ARRAY) return false;
        if (count && !v->as.array.items) return false;
        for (uint64_t i = 0; i < count && !b->failed; i++) {
            if (!encode_value(b, &v->as.array.items[i], level + 1)) return false;
        }
        return true;
    }
    }
    return false;
}

/* ---- metadata ------------------------------------------------------------------ */

static encoded_kv *find_kv(tm_gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) return &w->kv[i];
    return NULL;
}

/* Take ownership of the encoded value b (type tag included). */
static tm_status store_kv(tm_gguf_writer *w, const char *key, bytes *b, tm_error *err) {
    if (w->data_started) {
        free(b->data);
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: metadata '%s' set after the tensor data began", w->path, key);
    }
    if (b->failed) {
        free(b->data);
        return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory encoding metadata '%s'", w->path, key);
    }
    encoded_kv *kv = find_kv(w, key);
    if (kv) {
        free(kv->bytes);
        kv->bytes = b->data;
        kv->size = b->size;
        return TM_OK;
    }
    if (w->n_kv == w->kv_capacity) {
        size_t capacity = w->kv_capacity ? w->kv_capacity * 2 : 32;
        encoded_kv *p = realloc(w->kv, capacity * sizeof *p);
        if (!p) {
            free(b->data);
            return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", w->path);
        }
        w->kv = p;
        w->kv_capacity = capacity;
    }
    char *copy = strdup(key);
    if (!copy) {
        free(b->data);
        return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", w->path);
    }
    w->kv[w->n_kv++] = (encoded_kv){copy, b->data, b->size};
    return TM_OK;
}

static tm_status set_scalar(tm_gguf_writer *w, const char *key, tm_gguf_type type, uint64_t bits, tm_error *err) {
    bytes b = {0};
    put_le(&b, (uint64_t)type, 4);
    put_le(&b, bits, scalar_size(type));
    return store_kv(w, key, &b, err);
}

tm_status tm_gguf_writer_set_u32(tm_gguf_writer *w, const char *key, uint32_t value, tm_error *err) {
    return set_scalar(w, key, TM_GGUF_UINT32, value, err);
}
tm_status tm_gguf_writer_set_i32(tm_gguf_writer *w, const char *key, int32_t value, tm_error *err) {
    return set_scalar(w, key, TM_GGUF_INT32, (uint64_t)(uint32_t)value, err);
}
tm_status tm_gguf_writer_set_u64(tm_gguf_writer *w, const char *key, uint64_t value, tm_error *err) {
    return set_scalar(w, key, TM_GGUF_UINT64, value, err);
}
tm_status tm_gguf_writer_set_f32(tm_gguf_writer *w, const char *key, float value, tm_error *err) {
    return set_scalar(w, key, TM_GGUF_FLOAT32, f32_bits(value), err);
}
tm_status tm_gguf_writer_set_bool(tm_gguf_writer *w, const char *key, bool value, tm_error *err) {
    return set_scalar(w, key, TM_GGUF_BOOL, value ? 1 : 0, err);
}

tm_status tm_gguf_writer_set_string(tm_gguf_writer *w, const char *key, const char *value, tm_error *err) {
    bytes b = {0};
    put_le(&b, TM_GGUF_STRING, 4);
    put_string(&b, value, strlen(value));
    return store_kv(w, key, &b, err);
}

tm_status tm_gguf_writer_set_value(tm_gguf_writer *w, const char *key, const tm_gguf_value *value, tm_error *err) {
    bytes b = {0};
    put_le(&b, (uint64_t)value->type, 4);
    if (!encode_value(&b, value, 0)) {
        free(b.data);
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: metadata '%s' holds a value of type %s that cannot be encoded",
                            w->path, key, tm_gguf_type_name(value->type));
    }
    return store_kv(w, key, &b, err);
}

tm_status tm_gguf_writer_copy_metadata(tm_gguf_writer *w, const tm_gguf *src, bool (*keep)(const char *key, void *user),
                                       void *user, tm_error *err) {
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const tm_gguf_kv *kv = &src->kv[i];
        /* Keys are bytes in the mapping: make a C string, refusing embedded NULs. */
        if (memchr(kv->key.data, 0, (size_t)kv->key.size))
            return tm_error_set(err, TM_ERR_FORMAT, "metadata key #%llu holds a NUL byte", (unsigned long long)i);
        char *key = malloc((size_t)kv->key.size + 1);
        if (!key) return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", w->path);
        memcpy(key, kv->key.data, (size_t)kv->key.size);
        key[kv->key.size] = 0;
        tm_status s = TM_OK;
        if (!keep || keep(key, user)) s = tm_gguf_writer_set_value(w, key, &kv->value, err);
        free(key);
        if (s) return s;
    }
    return TM_OK;
}

void tm_gguf_writer_remove(tm_gguf_writer *w, const char *key) {
    if (w->data_started) return;
    encoded_kv *kv = find_kv(w, key);
    if (!kv) return;
    size_t i = (size_t)(kv - w->kv);
    free(kv->key);
    free(kv->bytes);
    memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - i - 1) * sizeof *w->kv);
    w->n_kv--;
}

/* ---- tensors ------------------------------------------------------------------- */

tm_status tm_gguf_writer_add_tensor(tm_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                    const uint64_t ne[4], tm_error *err) {
    if (w->data_started)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: tensor '%s' added after the tensor data began", w->path, name);
    size_t name_length = strlen(name);
    if (name_length == 0 || name_length >= TM_GGUF_MAX_TENSOR_NAME)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: tensor name '%s' must be 1..%d bytes long", w->path, name,
                            TM_GGUF_MAX_TENSOR_NAME - 1);
    const char *type_name = tm_ggml_type_name(type);
    if (!type_name) return tm_error_set(err, TM_ERR_ARGUMENT, "%s: tensor '%s' has unknown type %u", w->path, name, type);
    if (n_dims < 1 || n_dims > 4)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: tensor '%s' has %u dimensions (1..4)", w->path, name, n_dims);
    uint64_t elements = 1;
    for (uint32_t d = 0; d < 4; d++) {
        uint64_t n = d < n_dims ? ne[d] : 1;
        if (n < 1 || n >= ((uint64_t)1 << 62) || !tm_mul_u64(elements, n, &elements) || elements > (uint64_t)INT64_MAX)
            return tm_error_set(err, TM_ERR_ARGUMENT, "%s: tensor '%s' has a bad shape (ne[%u] = %llu)", w->path, name,
                                d, (unsigned long long)n);
    }
    uint64_t block = tm_ggml_block_elements(type), row_bytes;
    if (ne[0] % block)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: tensor '%s': row length %llu is not a multiple of the %s block %llu",
                            w->path, name, (unsigned long long)ne[0], type_name, (unsigned long long)block);
    if (!tm_mul_u64(elements / block, tm_ggml_block_bytes(type), &row_bytes))
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: tensor '%s' is too large", w->path, name);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return tm_error_set(err, TM_ERR_ARGUMENT, "%s: duplicate tensor name '%s'", w->path, name);
    if (w->n_tensors == w->tensor_capacity) {
        size_t capacity = w->tensor_capacity ? w->tensor_capacity * 2 : 64;
        tensor_info *p = realloc(w->tensors, capacity * sizeof *p);
        if (!p) return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", w->path);
        w->tensors = p;
        w->tensor_capacity = capacity;
    }
    char *copy = strdup(name);
    if (!copy) return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", w->path);
    tensor_info *t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof *t);
    t->name = copy;
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < 4; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->bytes = row_bytes;
    return TM_OK;
}

uint64_t tm_gguf_writer_tensor_bytes(const tm_gguf_writer *w, uint64_t index) {
    return index < w->n_tensors ? w->tensors[index].bytes : 0;
}

uint64_t tm_gguf_writer_tensor_count(const tm_gguf_writer *w) { return w->n_tensors; }

/* ---- the file ------------------------------------------------------------------- */

static tm_status write_all(tm_gguf_writer *w, const void *data, size_t size, tm_error *err) {
    const uint8_t *p = data;
    while (size > 0) {
        ssize_t n = write(w->fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return tm_error_set(err, TM_ERR_IO, "%s: write: %s", w->temp_path, strerror(errno));
        }
        p += n;
        size -= (size_t)n;
    }
    return TM_OK;
}

static tm_status flush_buffer(tm_gguf_writer *w, tm_error *err) {
    tm_status s = write_all(w, w->buffer, w->buffered, err);
    w->buffered = 0;
    return s;
}

/* Append to the file through the buffer; large pieces go straight through. */
static tm_status emit(tm_gguf_writer *w, const void *data, size_t size, tm_error *err) {
    w->file_offset += size;
    if (w->buffered + size <= WRITER_BUFFER_BYTES) {
        memcpy(w->buffer + w->buffered, data, size);
        w->buffered += size;
        return TM_OK;
    }
    tm_status s = flush_buffer(w, err);
    if (s) return s;
    if (size >= WRITER_BUFFER_BYTES / 2) return write_all(w, data, size, err);
    memcpy(w->buffer, data, size);
    w->buffered = size;
    return TM_OK;
}

static tm_status emit_zeros(tm_gguf_writer *w, size_t n, tm_error *err) {
    static const uint8_t zeros[256];
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        tm_status s = emit(w, zeros, k, err);
        if (s) return s;
        n -= k;
    }
    return TM_OK;
}

static uint64_t padding(uint64_t offset, uint64_t alignment) { return (alignment - offset % alignment) % alignment; }

tm_status tm_gguf_writer_create(tm_gguf_writer **out, const char *path, uint32_t alignment, tm_error *err) {
    *out = NULL;
    if (alignment == 0) alignment = DEFAULT_ALIGNMENT;
    if (alignment & (alignment - 1))
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: alignment %u is not a power of two", path, alignment);
    tm_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", path);
    w->fd = -1;
    w->alignment = alignment;
    size_t n = strlen(path);
    w->path = strdup(path);
    w->temp_path = malloc(n + 16);
    w->buffer = malloc(WRITER_BUFFER_BYTES);
    if (!w->path || !w->temp_path || !w->buffer) {
        tm_gguf_writer_free(w);
        return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(w->temp_path, n + 16, "%s.tmp.XXXXXX", path);
    w->fd = mkstemp(w->temp_path);
    if (w->fd < 0) {
        tm_status s = tm_error_set(err, TM_ERR_IO, "%s: cannot create a temporary file beside it: %s", path,
                                   strerror(errno));
        free(w->temp_path);
        w->temp_path = NULL;
        tm_gguf_writer_free(w);
        return s;
    }
    /* mkstemp makes 0600; a model is an ordinary file, so honour the umask. */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(w->fd, 0666 & ~mask) != 0) {
        tm_status s = tm_error_set(err, TM_ERR_IO, "%s: chmod: %s", w->temp_path, strerror(errno));
        tm_gguf_writer_free(w);
        return s;
    }
    if (alignment != DEFAULT_ALIGNMENT) {
        tm_status s = tm_gguf_writer_set_u32(w, "general.alignment", alignment, err);
        if (s) {
            tm_gguf_writer_free(w);
            return s;
        }
    }
    *out = w;
    return TM_OK;
}

tm_status tm_gguf_writer_begin_data(tm_gguf_writer *w, tm_error *err) {
    if (w->data_started) return tm_error_set(err, TM_ERR_ARGUMENT, "%s: data already begun", w->path);
    /* general.alignment, when present, must agree with what the layout uses. */
    encoded_kv *a = find_kv(w, "general.alignment");
    if (a) {
        uint32_t type = 0, value = 0;
        if (a->size == 8) {
            type = (uint32_t)a->bytes[0] | (uint32_t)a->bytes[1] << 8 | (uint32_t)a->bytes[2] << 16 |
                   (uint32_t)a->bytes[3] << 24;
            value = (uint32_t)a->bytes[4] | (uint32_t)a->bytes[5] << 8 | (uint32_t)a->bytes[6] << 16 |
                    (uint32_t)a->bytes[7] << 24;
        }
        if (type != TM_GGUF_UINT32 || value == 0 || (value & (value - 1)))
            return tm_error_set(err, TM_ERR_FORMAT, "%s: general.alignment must be a uint32 power of two", w->path);
        w->alignment = value;
    }
    w->data_started = true;
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        w->tensors[i].offset = offset;
        uint64_t end;
        if (!tm_add_u64(offset, w->tensors[i].bytes, &end) || !tm_add_u64(end, padding(end, w->alignment), &offset))
            return tm_error_set(err, TM_ERR_ARGUMENT, "%s: tensor data too large", w->path);
    }
    bytes header = {0};
    bytes_append(&header, "GGUF", 4);
    put_le(&header, 3, 4);
    put_le(&header, w->n_tensors, 8);
    put_le(&header, w->n_kv, 8);
    tm_status s = TM_OK;
    if (header.failed) s = tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", w->path);
    if (!s) s = emit(w, header.data, header.size, err);
    free(header.data);
    for (size_t i = 0; i < w->n_kv && !s; i++) {
        bytes key = {0};
        put_string(&key, w->kv[i].key, strlen(w->kv[i].key));
        if (key.failed) s = tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", w->path);
        if (!s) s = emit(w, key.data, key.size, err);
        if (!s) s = emit(w, w->kv[i].bytes, w->kv[i].size, err);
        free(key.data);
    }
    for (size_t i = 0; i < w->n_tensors && !s; i++) {
        const tensor_info *t = &w->tensors[i];
        bytes info = {0};
        put_string(&info, t->name, strlen(t->name));
        put_le(&info, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) put_le(&info, t->ne[d], 8);
        put_le(&info, t->type, 4);
        put_le(&info, t->offset, 8);
        if (info.failed) s = tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", w->path);
        if (!s) s = emit(w, info.data, info.size, err);
        free(info.data);
    }
    if (!s) s = emit_zeros(w, (size_t)padding(w->file_offset, w->alignment), err);
    w->current = 0;
    w->current_done = 0;
    return s;
}

/* Past the tensors that are complete (zero-sized ones cannot exist: ne >= 1). */
static tm_status close_current_if_full(tm_gguf_writer *w, tm_error *err) {
    while (w->current < w->n_tensors && w->current_done == w->tensors[w->current].bytes) {
        tm_status s = emit_zeros(w, (size_t)padding(w->tensors[w->current].bytes, w->alignment), err);
        if (s) return s;
        w->current++;
        w->current_done = 0;
    }
    return TM_OK;
}

tm_status tm_gguf_writer_write(tm_gguf_writer *w, const void *data, size_t size, tm_error *err) {
    if (!w->data_started || w->finished)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: tensor data written outside the data section", w->path);
    const uint8_t *p = data;
    while (size > 0) {
        if (w->current >= w->n_tensors)
            return tm_error_set(err, TM_ERR_ARGUMENT, "%s: %zu bytes of tensor data more than the tensors declared",
                                w->path, size);
        tensor_info *t = &w->tensors[w->current];
        uint64_t left = t->bytes - w->current_done;
        size_t k = size < left ? size : (size_t)left;
        tm_status s = emit(w, p, k, err);
        if (s) return s;
        w->current_done += k;
        p += k;
        size -= k;
        if ((s = close_current_if_full(w, err))) return s;
    }
    return TM_OK;
}

static tm_status fsync_folder(const char *path, tm_error *err) {
    char *copy = strdup(path);
    if (!copy) return tm_error_set(err, TM_ERR_NOMEM, "%s: out of memory", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0) return TM_OK; /* the rename happened; a folder we cannot open is not worth failing */
    fsync(fd);
    close(fd);
    return TM_OK;
}

tm_status tm_gguf_writer_finish(tm_gguf_writer *w, tm_error *err) {
    if (!w->data_started) {
        tm_status s = tm_gguf_writer_begin_data(w, err);
        if (s) return s;
    }
    if (w->current < w->n_tensors)
        return tm_error_set(err, TM_ERR_ARGUMENT, "%s: tensor '%s' got %llu of its %llu bytes", w->path,
                            w->tensors[w->current].name, (unsigned long long)w->current_done,
                            (unsigned long long)w->tensors[w->current].bytes);
    tm_status s = flush_buffer(w, err);
    if (s) return s;
    if (fsync(w->fd) != 0) return tm_error_set(err, TM_ERR_IO, "%s: fsync: %s", w->temp_path, strerror(errno));
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0) return tm_error_set(err, TM_ERR_IO, "%s: close: %s", w->temp_path, strerror(errno));
    if (rename(w->temp_path, w->path) != 0)
        return tm_error_set(err, TM_ERR_IO, "%s: cannot rename %s over it: %s", w->path, w->temp_path,
                            strerror(errno));
    w->finished = true;
    return fsync_folder(w->path, err);
}

void tm_gguf_writer_free(tm_gguf_writer *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (!w->finished && w->temp_path) unlink(w->temp_path);
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].bytes);
    }
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kv);
    free(w->tensors);
    free(w->buffer);
    free(w->path);
    free(w->temp_path);
    free(w);
}
