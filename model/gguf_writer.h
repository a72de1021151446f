/* Internal to model/: a streaming GGUF v3 writer. Metadata of every GGUF
 * type (set one by one or copied from an open tm_gguf), tensor infos, the
 * alignment padding, then tensor data appended in the order the tensors were
 * added, so that a model larger than memory can be written a slab at a time.
 * Everything goes to a temporary file beside the destination, which is
 * fsync'd and renamed over it only by tm_gguf_writer_finish: an error or an
 * interrupted run never leaves a half-written model at the destination.
 * Not part of the public API. */
#ifndef TRACEMARK_MODEL_GGUF_WRITER_H
#define TRACEMARK_MODEL_GGUF_WRITER_H

#include "tracemark/model.h"

typedef struct tm_gguf_writer tm_gguf_writer;

/* ggml's GGML_MAX_NAME: a tensor name must be shorter than this (NUL included). */
enum { TM_GGUF_MAX_TENSOR_NAME = 64 };

/* Start a file that will become `path`. alignment 0 means GGUF's default 32
 * (a power of two otherwise; it is also written as general.alignment when it
 * is not 32). Refuses nothing about path itself: overwrite policy is the caller's. */
tm_status tm_gguf_writer_create(tm_gguf_writer **out, const char *path, uint32_t alignment, tm_error *err);
/* Remove the temporary file unless finish succeeded, and free everything. */
void tm_gguf_writer_free(tm_gguf_writer *writer);

/* ---- metadata (before tm_gguf_writer_begin_data) --------------------------- */
/* Setting a key that exists replaces its value in place (its position stays). */
tm_status tm_gguf_writer_set_u32(tm_gguf_writer *writer, const char *key, uint32_t value, tm_error *err);
tm_status tm_gguf_writer_set_i32(tm_gguf_writer *writer, const char *key, int32_t value, tm_error *err);
tm_status tm_gguf_writer_set_u64(tm_gguf_writer *writer, const char *key, uint64_t value, tm_error *err);
tm_status tm_gguf_writer_set_f32(tm_gguf_writer *writer, const char *key, float value, tm_error *err);
tm_status tm_gguf_writer_set_bool(tm_gguf_writer *writer, const char *key, bool value, tm_error *err);
tm_status tm_gguf_writer_set_string(tm_gguf_writer *writer, const char *key, const char *value, tm_error *err);
/* Any value as tm_gguf_open parsed it (nested arrays included), copied deeply. */
tm_status tm_gguf_writer_set_value(tm_gguf_writer *writer, const char *key, const tm_gguf_value *value,
                                   tm_error *err);
/* Copy every kv of src whose key passes keep (NULL: all), in src's order. */
tm_status tm_gguf_writer_copy_metadata(tm_gguf_writer *writer, const tm_gguf *src,
                                       bool (*keep)(const char *key, void *user), void *user, tm_error *err);
/* Drop a key if present. */
void tm_gguf_writer_remove(tm_gguf_writer *writer, const char *key);

/* ---- tensors ------------------------------------------------------------------ */
/* Declare a tensor: n_dims 1..4, ne[0] a multiple of the type's block. Data
 * must later be written in the order of these calls. */
tm_status tm_gguf_writer_add_tensor(tm_gguf_writer *writer, const char *name, uint32_t type, uint32_t n_dims,
                                    const uint64_t ne[4], tm_error *err);
/* Bytes the tensor's data takes (0 when index is out of range). */
uint64_t tm_gguf_writer_tensor_bytes(const tm_gguf_writer *writer, uint64_t index);
uint64_t tm_gguf_writer_tensor_count(const tm_gguf_writer *writer);

/* Write the header, metadata, tensor infos and padding; after this no
 * metadata or tensor may be added. */
tm_status tm_gguf_writer_begin_data(tm_gguf_writer *writer, tm_error *err);
/* Append size bytes of tensor data. A call may span tensor boundaries; the
 * padding between tensors is inserted automatically. Writing more bytes than
 * the declared tensors take is an error. */
tm_status tm_gguf_writer_write(tm_gguf_writer *writer, const void *data, size_t size, tm_error *err);
/* Check that every tensor got all its bytes, fsync, rename over the
 * destination and fsync its folder. */
tm_status tm_gguf_writer_finish(tm_gguf_writer *writer, tm_error *err);

#endif
