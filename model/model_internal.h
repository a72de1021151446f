/* Internal to model/: the layout of an opened GGUF file, which
 * tracemark/model.h declares opaque. The reader (gguf.c) fills it; the
 * writer's metadata copy, the quantizer and the model loader walk its
 * arrays directly. Everything outside model/ goes through the accessors in
 * tracemark/model.h (tm_gguf_tensor_count, tm_gguf_tensor_at, ...), so the
 * layout can change without touching another room. Not part of the public
 * API; no file outside model/ includes it. */
#ifndef TRACEMARK_MODEL_INTERNAL_H
#define TRACEMARK_MODEL_INTERNAL_H

#include "tracemark/model.h"

struct tm_gguf {
    tm_mapped_file file;
    uint32_t version;
    uint64_t n_kv;
    tm_gguf_kv *kv;
    uint64_t n_tensors;
    tm_gguf_tensor *tensors; /* in the file's order */
    uint64_t alignment;
    uint64_t data_offset;    /* of the data section, from the start of the file */
};

#endif
