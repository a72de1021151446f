/* GGUF reader and GGML type table: maps a GGUF v2/v3 file read-only, parses
 * and validates its header, every metadata key/value (nested arrays included)
 * and every tensor info, and hands out views into the mapping. The file is
 * untrusted: every count, length and offset is checked against the bytes that
 * are really there (with overflow checks) before anything is read or
 * allocated, so a malformed file yields a tm_error naming the file, the key or
 * tensor and the byte offset. This file must never print, abort, or read or
 * allocate on the say-so of an unchecked number from the file. */
#include "model_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================== */
/* GGML tensor types                                                        */
/* ======================================================================== */

/* Block geometry as in ggml's type_traits (ggml-common.h block structs, with
 * QK_K = 256). Ids absent here were removed from ggml and are unknown. */
typedef struct {
    const char *name;
    uint64_t block_elements;
    uint64_t block_bytes;
} ggml_type_info;

static const ggml_type_info ggml_types[TM_GGML_TYPE_LIMIT] = {
    [TM_GGML_F32] = {"F32", 1, 4},
    [TM_GGML_F16] = {"F16", 1, 2},
    [TM_GGML_Q4_0] = {"Q4_0", 32, 2 + 16},
    [TM_GGML_Q4_1] = {"Q4_1", 32, 2 + 2 + 16},
    [TM_GGML_Q5_0] = {"Q5_0", 32, 2 + 4 + 16},
    [TM_GGML_Q5_1] = {"Q5_1", 32, 2 + 2 + 4 + 16},
    [TM_GGML_Q8_0] = {"Q8_0", 32, 2 + 32},
    [TM_GGML_Q8_1] = {"Q8_1", 32, 2 + 2 + 32},
    [TM_GGML_Q2_K] = {"Q2_K", 256, 16 + 64 + 2 + 2},
    [TM_GGML_Q3_K] = {"Q3_K", 256, 32 + 64 + 12 + 2},
    [TM_GGML_Q4_K] = {"Q4_K", 256, 2 + 2 + 12 + 128},
    [TM_GGML_Q5_K] = {"Q5_K", 256, 2 + 2 + 12 + 32 + 128},
    [TM_GGML_Q6_K] = {"Q6_K", 256, 128 + 64 + 16 + 2},
    [TM_GGML_Q8_K] = {"Q8_K", 256, 4 + 256 + 32},
    [TM_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 2 + 64},
    [TM_GGML_IQ2_XS] = {"IQ2_XS", 256, 2 + 64 + 8},
    [TM_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 2 + 96},
    [TM_GGML_IQ1_S] = {"IQ1_S", 256, 2 + 32 + 16},
    [TM_GGML_IQ4_NL] = {"IQ4_NL", 32, 2 + 16},
    [TM_GGML_IQ3_S] = {"IQ3_S", 256, 2 + 64 + 8 + 32 + 4},
    [TM_GGML_IQ2_S] = {"IQ2_S", 256, 2 + 64 + 8 + 8},
    [TM_GGML_IQ4_XS] = {"IQ4_XS", 256, 2 + 2 + 4 + 128},
    [TM_GGML_I8] = {"I8", 1, 1},
    [TM_GGML_I16] = {"I16", 1, 2},
    [TM_GGML_I32] = {"I32", 1, 4},
    [TM_GGML_I64] = {"I64", 1, 8},
    [TM_GGML_F64] = {"F64", 1, 8},
    [TM_GGML_IQ1_M] = {"IQ1_M", 256, 32 + 16 + 8},
    [TM_GGML_BF16] = {"BF16", 1, 2},
    [TM_GGML_TQ1_0] = {"TQ1_0", 256, 48 + 4 + 2},
    [TM_GGML_TQ2_0] = {"TQ2_0", 256, 64 + 2},
    [TM_GGML_MXFP4] = {"MXFP4", 32, 1 + 16},
};

static const ggml_type_info *ggml_type_lookup(uint32_t type) {
    if (type >= TM_GGML_TYPE_LIMIT || !ggml_types[type].name) return NULL;
    return &ggml_types[type];
}

const char *tm_ggml_type_name(uint32_t type) {
    const ggml_type_info *info = ggml_type_lookup(type);
    return info ? info->name : NULL;
}

uint64_t tm_ggml_block_elements(uint32_t type) {
    const ggml_type_info *info = ggml_type_lookup(type);
    return info ? info->block_elements : 0;
}

uint64_t tm_ggml_block_bytes(uint32_t type) {
    const ggml_type_info *info = ggml_type_lookup(type);
    return info ? info->block_bytes : 0;
}

/* ======================================================================== */
/* Small helpers                                                            */
/* ======================================================================== */

bool tm_string_view_equals(tm_string_view view, const char *text) {
    if (!text) return false;
    size_t n = strlen(text);
    if (view.size != n) return false;
    return n == 0 || (view.data && memcmp(view.data, text, n) == 0);
}

const char *tm_gguf_type_name(tm_gguf_type type) {
    switch (type) {
    case TM_GGUF_UINT8: return "uint8";
    case TM_GGUF_INT8: return "int8";
    case TM_GGUF_UINT16: return "uint16";
    case TM_GGUF_INT16: return "int16";
    case TM_GGUF_UINT32: return "uint32";
    case TM_GGUF_INT32: return "int32";
    case TM_GGUF_FLOAT32: return "float32";
    case TM_GGUF_BOOL: return "bool";
    case TM_GGUF_STRING: return "string";
    case TM_GGUF_ARRAY: return "array";
    case TM_GGUF_UINT64: return "uint64";
    case TM_GGUF_INT64: return "int64";
    case TM_GGUF_FLOAT64: return "float64";
    }
    return "unknown";
}

/* Size in bytes of a fixed-size value type, 0 for STRING, ARRAY and unknown. */
static uint64_t gguf_scalar_size(uint32_t type) {
    switch (type) {
    case TM_GGUF_UINT8: case TM_GGUF_INT8: case TM_GGUF_BOOL: return 1;
    case TM_GGUF_UINT16: case TM_GGUF_INT16: return 2;
    case TM_GGUF_UINT32: case TM_GGUF_INT32: case TM_GGUF_FLOAT32: return 4;
    case TM_GGUF_UINT64: case TM_GGUF_INT64: case TM_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* Fewest bytes one element of this type can occupy in the file: what bounds
 * an array's count by the bytes that remain before anything is allocated. */
static uint64_t gguf_min_encoded_size(uint32_t type) {
    if (type == TM_GGUF_STRING) return 8;      /* u64 length, possibly empty */
    if (type == TM_GGUF_ARRAY) return 4 + 8;   /* element type and count */
    return gguf_scalar_size(type);
}

static uint64_t read_le(const uint8_t *p, unsigned bytes) {
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static float f32_from_bits(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static double f64_from_bits(uint64_t bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* Sign-extend the low `bytes` bytes (1..8) of v without relying on
 * implementation-defined conversions of out-of-range values. */
static int64_t sign_extend(uint64_t v, unsigned bytes) {
    if (bytes < 8) {
        uint64_t sign = (uint64_t)1 << (8 * bytes - 1);
        v &= (sign << 1) - 1;
        if (v & sign) v |= ~((sign << 1) - 1);
    }
    int64_t s;
    memcpy(&s, &v, sizeof s);
    return s;
}

/* Names can be as long as the file; error messages show at most this much. */
enum { NAME_SHOWN_MAX = 120 };
static int shown(tm_string_view view) { return view.size > NAME_SHOWN_MAX ? NAME_SHOWN_MAX : (int)view.size; }

/* ======================================================================== */
/* Parsing                                                                  */
/* ======================================================================== */

enum {
    GGUF_MAX_NESTING = 8, /* array levels, counting the outermost */
    GGUF_DEFAULT_ALIGNMENT = 32,
};

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
    const char *path;
    tm_error *err;
    char where[192]; /* what is being read, for messages: "key 'x'", "tensor info #3" */
} reader;

static tm_status fail(reader *r, tm_status code, const char *format, ...) __attribute__((format(printf, 3, 4)));
static tm_status fail(reader *r, tm_status code, const char *format, ...) {
    char message[TM_ERROR_MESSAGE_MAX];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    return tm_error_set(r->err, code, "%s: %s", r->path, message);
}

static size_t remaining(const reader *r) { return r->size - r->pos; }

/* Make sure n bytes are there before they are read. */
static tm_status need(reader *r, uint64_t n, const char *what) {
    if (n > remaining(r))
        return fail(r, TM_ERR_FORMAT,
                    "truncated: %s of %s needs %llu bytes at byte offset %zu but the file ends at %zu",
                    what, r->where, (unsigned long long)n, r->pos, r->size);
    return TM_OK;
}

static tm_status read_uint(reader *r, unsigned bytes, uint64_t *out, const char *what) {
    tm_status s = need(r, bytes, what);
    if (s) return s;
    *out = read_le(r->data + r->pos, bytes);
    r->pos += bytes;
    return TM_OK;
}

static tm_status read_u32(reader *r, uint32_t *out, const char *what) {
    uint64_t v;
    tm_status s = read_uint(r, 4, &v, what);
    if (!s) *out = (uint32_t)v;
    return s;
}

static tm_status read_string(reader *r, tm_string_view *out, const char *what) {
    size_t at = r->pos;
    uint64_t length;
    tm_status s = read_uint(r, 8, &length, what);
    if (s) return s;
    if (length > remaining(r))
        return fail(r, TM_ERR_FORMAT,
                    "%s of %s at byte offset %zu claims %llu bytes but only %zu remain in the file",
                    what, r->where, at, (unsigned long long)length, remaining(r));
    out->data = (const char *)(r->data + r->pos);
    out->size = length;
    r->pos += (size_t)length;
    return TM_OK;
}

static void value_free(tm_gguf_value *value) {
    if (value->type != TM_GGUF_ARRAY || !value->as.array.items) return;
    if (value->as.array.element_type == TM_GGUF_ARRAY)
        for (uint64_t i = 0; i < value->as.array.count; i++) value_free(&value->as.array.items[i]);
    free(value->as.array.items);
    value->as.array.items = NULL;
}

static tm_status parse_value(reader *r, uint32_t type, tm_gguf_value *value, int level, size_t type_at);

static tm_status parse_array(reader *r, tm_gguf_value *value, int level) {
    size_t at = r->pos;
    uint32_t element_type;
    uint64_t count;
    tm_status s = read_u32(r, &element_type, "array element type");
    if (!s) s = read_uint(r, 8, &count, "array count");
    if (s) return s;
    uint64_t min_size = gguf_min_encoded_size(element_type);
    if (min_size == 0)
        return fail(r, TM_ERR_FORMAT, "%s: unknown array element type %u at byte offset %zu", r->where,
                    element_type, at);
    if (element_type == TM_GGUF_ARRAY && level + 1 > GGUF_MAX_NESTING)
        return fail(r, TM_ERR_FORMAT, "%s: arrays nested more than %d deep at byte offset %zu", r->where,
                    GGUF_MAX_NESTING, at);
    /* The count is checked against what is left before anything is allocated. */
    if (count > remaining(r) / min_size)
        return fail(r, TM_ERR_FORMAT,
                    "%s: array count %llu of %s at byte offset %zu cannot fit in the %zu bytes left in the file",
                    r->where, (unsigned long long)count, tm_gguf_type_name((tm_gguf_type)element_type), at,
                    remaining(r));
    value->as.array.element_type = (tm_gguf_type)element_type;
    value->as.array.count = count;
    value->as.array.raw = NULL;
    value->as.array.items = NULL;
    uint64_t scalar = gguf_scalar_size(element_type);
    if (scalar) {
        /* count * scalar <= remaining, shown above. */
        value->as.array.raw = r->data + r->pos;
        r->pos += (size_t)(count * scalar);
        return TM_OK;
    }
    tm_gguf_value *items = tm_alloc_array((size_t)count, sizeof *items, r->err);
    if (!items) return tm_error_prefix(r->err, "%s: %s", r->path, r->where);
    value->as.array.items = items;
    for (uint64_t i = 0; i < count; i++) {
        items[i].type = (tm_gguf_type)element_type;
        s = parse_value(r, element_type, &items[i], level, r->pos);
        if (s) {
            /* Free what was parsed; items past i are zeroed and own nothing. */
            value_free(value);
            return s;
        }
    }
    return TM_OK;
}

/* level: how many arrays enclose this value. */
static tm_status parse_value(reader *r, uint32_t type, tm_gguf_value *value, int level, size_t type_at) {
    value->type = (tm_gguf_type)type;
    uint64_t bits;
    tm_status s;
    switch (type) {
    case TM_GGUF_UINT8: case TM_GGUF_UINT16: case TM_GGUF_UINT32: case TM_GGUF_UINT64:
        s = read_uint(r, (unsigned)gguf_scalar_size(type), &bits, "value");
        if (!s) value->as.u64 = bits;
        return s;
    case TM_GGUF_INT8: case TM_GGUF_INT16: case TM_GGUF_INT32: case TM_GGUF_INT64:
        s = read_uint(r, (unsigned)gguf_scalar_size(type), &bits, "value");
        if (!s) value->as.i64 = sign_extend(bits, (unsigned)gguf_scalar_size(type));
        return s;
    case TM_GGUF_FLOAT32:
        s = read_uint(r, 4, &bits, "value");
        if (!s) value->as.f64 = f32_from_bits((uint32_t)bits);
        return s;
    case TM_GGUF_FLOAT64:
        s = read_uint(r, 8, &bits, "value");
        if (!s) value->as.f64 = f64_from_bits(bits);
        return s;
    case TM_GGUF_BOOL:
        s = read_uint(r, 1, &bits, "value");
        if (!s) value->as.boolean = bits != 0;
        return s;
    case TM_GGUF_STRING:
        return read_string(r, &value->as.string, "string value");
    case TM_GGUF_ARRAY:
        return parse_array(r, value, level + 1);
    default:
        return fail(r, TM_ERR_FORMAT, "%s: unknown value type %u at byte offset %zu", r->where, type, type_at);
    }
}

/* ---- duplicate detection -------------------------------------------------- */

static int view_compare(const void *a, const void *b) {
    const tm_string_view *x = a, *y = b;
    uint64_t n = x->size < y->size ? x->size : y->size;
    int c = n ? memcmp(x->data, y->data, (size_t)n) : 0;
    if (c) return c;
    return (x->size > y->size) - (x->size < y->size);
}

/* Sort a copy of the names and compare neighbours: O(n log n) for files with
 * thousands of tensors. Returns true and sets *duplicate on a repeat. */
static bool find_duplicate(tm_string_view *views, size_t n, tm_string_view *duplicate) {
    if (n < 2) return false;
    qsort(views, n, sizeof *views, view_compare);
    for (size_t i = 1; i < n; i++) {
        if (view_compare(&views[i - 1], &views[i]) == 0) {
            *duplicate = views[i];
            return true;
        }
    }
    return false;
}

static int tensor_offset_compare(const void *a, const void *b) {
    const tm_gguf_tensor *x = *(const tm_gguf_tensor *const *)a, *y = *(const tm_gguf_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* ---- the file --------------------------------------------------------------- */

static tm_status parse_header(reader *r, tm_gguf *gguf) {
    snprintf(r->where, sizeof r->where, "the header");
    tm_status s = need(r, 4, "magic");
    if (s) return s;
    if (memcmp(r->data, "GGUF", 4) != 0)
        return fail(r, TM_ERR_FORMAT, "not a GGUF file (bad magic %02x %02x %02x %02x at byte offset 0)", r->data[0],
                    r->data[1], r->data[2], r->data[3]);
    r->pos = 4;
    s = read_u32(r, &gguf->version, "version");
    if (s) return s;
    if (gguf->version != 2 && gguf->version != 3)
        return fail(r, TM_ERR_UNSUPPORTED, "unsupported GGUF version %u (only 2 and 3 are read)", gguf->version);
    s = read_uint(r, 8, &gguf->n_tensors, "tensor count");
    if (!s) s = read_uint(r, 8, &gguf->n_kv, "metadata key/value count");
    return s;
}

static tm_status parse_metadata(reader *r, tm_gguf *gguf) {
    /* Smallest possible kv: empty key (8) + type (4) + one-byte value. */
    if (gguf->n_kv > remaining(r) / 13)
        return fail(r, TM_ERR_FORMAT, "metadata key/value count %llu cannot fit in the %zu bytes left in the file",
                    (unsigned long long)gguf->n_kv, remaining(r));
    gguf->kv = tm_alloc_array((size_t)gguf->n_kv, sizeof *gguf->kv, r->err);
    if (!gguf->kv) return tm_error_prefix(r->err, "%s", r->path);
    for (uint64_t i = 0; i < gguf->n_kv; i++) {
        tm_gguf_kv *kv = &gguf->kv[i];
        size_t at = r->pos;
        snprintf(r->where, sizeof r->where, "metadata entry #%llu (byte offset %zu)", (unsigned long long)i, at);
        tm_status s = read_string(r, &kv->key, "key");
        if (s) return s;
        snprintf(r->where, sizeof r->where, "key '%.*s' (byte offset %zu)", shown(kv->key), kv->key.data, at);
        uint32_t type;
        size_t type_at = r->pos;
        s = read_u32(r, &type, "value type");
        if (!s) s = parse_value(r, type, &kv->value, 0, type_at);
        if (s) return s;
    }
    tm_string_view *keys = tm_alloc_array((size_t)gguf->n_kv, sizeof *keys, r->err);
    if (!keys) return tm_error_prefix(r->err, "%s", r->path);
    for (uint64_t i = 0; i < gguf->n_kv; i++) keys[i] = gguf->kv[i].key;
    tm_string_view duplicate = {0};
    bool found = find_duplicate(keys, (size_t)gguf->n_kv, &duplicate);
    free(keys);
    if (found) return fail(r, TM_ERR_FORMAT, "duplicate metadata key '%.*s'", shown(duplicate), duplicate.data);
    return TM_OK;
}

static tm_status read_alignment(reader *r, tm_gguf *gguf) {
    gguf->alignment = GGUF_DEFAULT_ALIGNMENT;
    const tm_gguf_value *v = tm_gguf_find(gguf, "general.alignment");
    if (!v) return TM_OK;
    if (v->type != TM_GGUF_UINT32)
        return fail(r, TM_ERR_FORMAT, "general.alignment must be a uint32, not %s", tm_gguf_type_name(v->type));
    uint64_t a = v->as.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return fail(r, TM_ERR_FORMAT, "general.alignment %llu is not a non-zero power of two", (unsigned long long)a);
    gguf->alignment = a;
    return TM_OK;
}

static tm_status parse_tensor_info(reader *r, tm_gguf *gguf, uint64_t index) {
    tm_gguf_tensor *t = &gguf->tensors[index];
    size_t at = r->pos;
    snprintf(r->where, sizeof r->where, "tensor info #%llu (byte offset %zu)", (unsigned long long)index, at);
    tm_status s = read_string(r, &t->name, "tensor name");
    if (s) return s;
    snprintf(r->where, sizeof r->where, "tensor '%.*s' (info at byte offset %zu)", shown(t->name), t->name.data, at);
    s = read_u32(r, &t->n_dims, "n_dims");
    if (s) return s;
    if (t->n_dims < 1 || t->n_dims > 4)
        return fail(r, TM_ERR_FORMAT, "%s: n_dims %u is outside 1..4", r->where, t->n_dims);
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        s = read_uint(r, 8, &t->ne[d], "dimension");
        if (s) return s;
        if (t->ne[d] < 1 || t->ne[d] >= ((uint64_t)1 << 62))
            return fail(r, TM_ERR_FORMAT, "%s: ne[%u] = %llu is outside 1..2^62-1", r->where, d,
                        (unsigned long long)t->ne[d]);
        if (!tm_mul_u64(n_elements, t->ne[d], &n_elements) || n_elements > (uint64_t)INT64_MAX)
            return fail(r, TM_ERR_FORMAT, "%s: element count (product of ne) overflows", r->where);
    }
    t->n_elements = n_elements;
    s = read_u32(r, &t->type, "tensor type");
    if (s) return s;
    const ggml_type_info *type = ggml_type_lookup(t->type);
    if (!type)
        return fail(r, TM_ERR_FORMAT, "unknown tensor type id %u for '%.*s' (info at byte offset %zu)", t->type,
                    shown(t->name), t->name.data, at);
    if (t->ne[0] % type->block_elements != 0)
        return fail(r, TM_ERR_FORMAT, "%s: row length ne[0] = %llu is not a multiple of the %s block size %llu",
                    r->where, (unsigned long long)t->ne[0], type->name, (unsigned long long)type->block_elements);
    /* ne[0] divides by the block, so n_elements does too. */
    if (!tm_mul_u64(n_elements / type->block_elements, type->block_bytes, &t->n_bytes))
        return fail(r, TM_ERR_FORMAT, "%s: byte size overflows", r->where);
    s = read_uint(r, 8, &t->offset, "tensor data offset");
    if (s) return s;
    if (t->offset % gguf->alignment != 0)
        return fail(r, TM_ERR_FORMAT, "%s: data offset %llu is not a multiple of the alignment %llu", r->where,
                    (unsigned long long)t->offset, (unsigned long long)gguf->alignment);
    return TM_OK;
}

static tm_status parse_tensors(reader *r, tm_gguf *gguf) {
    /* Smallest possible info: empty name (8) + n_dims (4) + one ne (8) + type (4) + offset (8). */
    if (gguf->n_tensors > remaining(r) / 32)
        return fail(r, TM_ERR_FORMAT, "tensor count %llu cannot fit in the %zu bytes left in the file",
                    (unsigned long long)gguf->n_tensors, remaining(r));
    gguf->tensors = tm_alloc_array((size_t)gguf->n_tensors, sizeof *gguf->tensors, r->err);
    if (!gguf->tensors) return tm_error_prefix(r->err, "%s", r->path);
    for (uint64_t i = 0; i < gguf->n_tensors; i++) {
        tm_status s = parse_tensor_info(r, gguf, i);
        if (s) return s;
    }
    size_t n = (size_t)gguf->n_tensors;

    tm_string_view *names = tm_alloc_array(n, sizeof *names, r->err);
    if (!names) return tm_error_prefix(r->err, "%s", r->path);
    for (size_t i = 0; i < n; i++) names[i] = gguf->tensors[i].name;
    tm_string_view duplicate = {0};
    bool found = find_duplicate(names, n, &duplicate);
    free(names);
    if (found) return fail(r, TM_ERR_FORMAT, "duplicate tensor name '%.*s'", shown(duplicate), duplicate.data);

    /* The data section starts at the end of the infos, rounded up to the alignment. */
    uint64_t end_of_infos = r->pos, data_offset;
    if (!tm_add_u64(end_of_infos, gguf->alignment - 1, &data_offset))
        return fail(r, TM_ERR_FORMAT, "data section offset overflows");
    gguf->data_offset = data_offset & ~(gguf->alignment - 1);

    for (size_t i = 0; i < n; i++) {
        tm_gguf_tensor *t = &gguf->tensors[i];
        uint64_t start, end;
        if (!tm_add_u64(gguf->data_offset, t->offset, &start) || !tm_add_u64(start, t->n_bytes, &end))
            return fail(r, TM_ERR_FORMAT, "tensor '%.*s': data offset %llu + %llu bytes overflows", shown(t->name),
                        t->name.data, (unsigned long long)t->offset, (unsigned long long)t->n_bytes);
        if (end > r->size)
            return fail(r, TM_ERR_FORMAT, "tensor '%.*s': data [%llu, %llu) lies beyond the end of the file (size %zu)",
                        shown(t->name), t->name.data, (unsigned long long)start, (unsigned long long)end, r->size);
        t->data = r->data + start;
    }

    /* Overlap: sort by offset and compare each tensor with the next. */
    const tm_gguf_tensor **order = tm_alloc_array(n ? n : 1, sizeof *order, r->err);
    if (!order) return tm_error_prefix(r->err, "%s", r->path);
    for (size_t i = 0; i < n; i++) order[i] = &gguf->tensors[i];
    qsort(order, n, sizeof *order, tensor_offset_compare);
    tm_status s = TM_OK;
    for (size_t i = 1; i < n && !s; i++) {
        const tm_gguf_tensor *a = order[i - 1], *b = order[i];
        if (a->offset + a->n_bytes > b->offset) /* no overflow: both lie inside the file */
            s = fail(r, TM_ERR_FORMAT,
                     "tensors '%.*s' (data offset %llu, %llu bytes) and '%.*s' (data offset %llu) overlap",
                     shown(a->name), a->name.data, (unsigned long long)a->offset, (unsigned long long)a->n_bytes,
                     shown(b->name), b->name.data, (unsigned long long)b->offset);
    }
    free(order);
    return s;
}

tm_status tm_gguf_open(tm_gguf **out, const char *path, tm_error *err) {
    if (!out || !path) return tm_error_set(err, TM_ERR_ARGUMENT, "tm_gguf_open: out and path are required");
    *out = NULL;
    tm_gguf *gguf = tm_alloc_array(1, sizeof *gguf, err);
    if (!gguf) return tm_error_prefix(err, "%s", path);
    tm_status s = tm_mapped_file_open(&gguf->file, path, err);
    if (s) {
        free(gguf);
        return s;
    }
    reader r = {.data = gguf->file.data, .size = gguf->file.size, .pos = 0, .path = path, .err = err};
    s = parse_header(&r, gguf);
    if (!s) s = parse_metadata(&r, gguf);
    if (!s) s = read_alignment(&r, gguf);
    if (!s) s = parse_tensors(&r, gguf);
    if (s) {
        tm_gguf_close(gguf);
        return s;
    }
    *out = gguf;
    return TM_OK;
}

void tm_gguf_close(tm_gguf *gguf) {
    if (!gguf) return;
    if (gguf->kv)
        for (uint64_t i = 0; i < gguf->n_kv; i++) value_free(&gguf->kv[i].value);
    free(gguf->kv);
    free(gguf->tensors);
    tm_mapped_file_close(&gguf->file);
    free(gguf);
}

/* ======================================================================== */
/* Lookups and getters                                                      */
/* ======================================================================== */

/* A linear scan: models carry a few dozen keys, looked up once at load. */
const tm_gguf_value *tm_gguf_find(const tm_gguf *gguf, const char *key) {
    if (!gguf || !key || !gguf->kv) return NULL;
    for (uint64_t i = 0; i < gguf->n_kv; i++)
        if (tm_string_view_equals(gguf->kv[i].key, key)) return &gguf->kv[i].value;
    return NULL;
}

const tm_gguf_tensor *tm_gguf_find_tensor(const tm_gguf *gguf, const char *name) {
    if (!gguf || !name || !gguf->tensors) return NULL;
    for (uint64_t i = 0; i < gguf->n_tensors; i++)
        if (tm_string_view_equals(gguf->tensors[i].name, name)) return &gguf->tensors[i];
    return NULL;
}

uint32_t tm_gguf_version(const tm_gguf *gguf) { return gguf->version; }
uint64_t tm_gguf_kv_count(const tm_gguf *gguf) { return gguf->n_kv; }
uint64_t tm_gguf_tensor_count(const tm_gguf *gguf) { return gguf->n_tensors; }
const tm_gguf_tensor *tm_gguf_tensor_at(const tm_gguf *gguf, uint64_t i) {
    return i < gguf->n_tensors ? &gguf->tensors[i] : NULL;
}
uint64_t tm_gguf_alignment(const tm_gguf *gguf) { return gguf->alignment; }
uint64_t tm_gguf_data_offset(const tm_gguf *gguf) { return gguf->data_offset; }
const tm_mapped_file *tm_gguf_file(const tm_gguf *gguf) { return &gguf->file; }

static bool is_unsigned(tm_gguf_type t) {
    return t == TM_GGUF_UINT8 || t == TM_GGUF_UINT16 || t == TM_GGUF_UINT32 || t == TM_GGUF_UINT64;
}
static bool is_signed(tm_gguf_type t) {
    return t == TM_GGUF_INT8 || t == TM_GGUF_INT16 || t == TM_GGUF_INT32 || t == TM_GGUF_INT64;
}

bool tm_gguf_get_u64(const tm_gguf *gguf, const char *key, uint64_t *out) {
    const tm_gguf_value *v = tm_gguf_find(gguf, key);
    if (!v || !out) return false;
    if (is_unsigned(v->type)) {
        *out = v->as.u64;
        return true;
    }
    if (is_signed(v->type) && v->as.i64 >= 0) {
        *out = (uint64_t)v->as.i64;
        return true;
    }
    return false;
}

bool tm_gguf_get_f64(const tm_gguf *gguf, const char *key, double *out) {
    const tm_gguf_value *v = tm_gguf_find(gguf, key);
    if (!v || !out) return false;
    if (v->type == TM_GGUF_FLOAT32 || v->type == TM_GGUF_FLOAT64) *out = v->as.f64;
    else if (is_unsigned(v->type)) *out = (double)v->as.u64;
    else if (is_signed(v->type)) *out = (double)v->as.i64;
    else return false;
    return true;
}

bool tm_gguf_get_bool(const tm_gguf *gguf, const char *key, bool *out) {
    const tm_gguf_value *v = tm_gguf_find(gguf, key);
    if (!v || !out || v->type != TM_GGUF_BOOL) return false;
    *out = v->as.boolean;
    return true;
}

bool tm_gguf_get_string(const tm_gguf *gguf, const char *key, tm_string_view *out) {
    const tm_gguf_value *v = tm_gguf_find(gguf, key);
    if (!v || !out || v->type != TM_GGUF_STRING) return false;
    *out = v->as.string;
    return true;
}

/* Element i of a numeric array, as whichever of the three forms is exact.
 * Returns false for non-numeric arrays and out-of-range indices, so that a
 * caller's mistake reads as 0 instead of outside the mapping. */
typedef enum { ELEMENT_UNSIGNED, ELEMENT_SIGNED, ELEMENT_FLOAT } element_kind;

static bool array_element(const tm_gguf_value *array, uint64_t i, element_kind *kind, uint64_t *u, int64_t *s,
                          double *f) {
    if (!array || array->type != TM_GGUF_ARRAY || !array->as.array.raw || i >= array->as.array.count) return false;
    tm_gguf_type t = array->as.array.element_type;
    unsigned size = (unsigned)gguf_scalar_size(t);
    if (size == 0) return false;
    uint64_t bits = read_le(array->as.array.raw + i * size, size);
    if (t == TM_GGUF_FLOAT32) {
        *kind = ELEMENT_FLOAT;
        *f = f32_from_bits((uint32_t)bits);
    } else if (t == TM_GGUF_FLOAT64) {
        *kind = ELEMENT_FLOAT;
        *f = f64_from_bits(bits);
    } else if (is_signed(t)) {
        *kind = ELEMENT_SIGNED;
        *s = sign_extend(bits, size);
    } else if (t == TM_GGUF_BOOL) {
        *kind = ELEMENT_UNSIGNED;
        *u = bits != 0;
    } else {
        *kind = ELEMENT_UNSIGNED;
        *u = bits;
    }
    return true;
}

/* Floats are truncated toward zero and clamped (NaN reads 0); uint64 values
 * above INT64_MAX clamp to INT64_MAX. */
int64_t tm_gguf_array_i64(const tm_gguf_value *array, uint64_t i) {
    element_kind kind;
    uint64_t u = 0;
    int64_t s = 0;
    double f = 0;
    if (!array_element(array, i, &kind, &u, &s, &f)) return 0;
    switch (kind) {
    case ELEMENT_UNSIGNED: return u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
    case ELEMENT_SIGNED: return s;
    case ELEMENT_FLOAT:
        if (f != f) return 0;
        if (f >= 9223372036854775808.0) return INT64_MAX;
        if (f <= -9223372036854775808.0) return INT64_MIN;
        return (int64_t)f;
    }
    return 0;
}

double tm_gguf_array_f64(const tm_gguf_value *array, uint64_t i) {
    element_kind kind;
    uint64_t u = 0;
    int64_t s = 0;
    double f = 0;
    if (!array_element(array, i, &kind, &u, &s, &f)) return 0;
    switch (kind) {
    case ELEMENT_UNSIGNED: return (double)u;
    case ELEMENT_SIGNED: return (double)s;
    case ELEMENT_FLOAT: return f;
    }
    return 0;
}
