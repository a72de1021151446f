/* The tests' own small GGUF writer: a growing byte buffer with little-endian
 * puts, GGUF strings and key/value pairs. Written apart from model/'s GGUF
 * writer on purpose, so that the reader is tested against bytes laid out by
 * an independent hand (the layout of ggml's gguf.md), including the
 * malformed layouts no real writer would produce. Static inline only, so
 * each test file stays one translation unit and may use any part of it. */
#ifndef TRACEMARK_TEST_GGUF_TESTING_H
#define TRACEMARK_TEST_GGUF_TESTING_H

#include "tracemark/model.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *data;
    size_t size, capacity;
} buffer;

static inline void put(buffer *b, const void *p, size_t n) {
    if (b->size + n > b->capacity) {
        size_t c = b->capacity ? b->capacity : 256;
        while (c < b->size + n) c *= 2;
        b->data = realloc(b->data, c);
        cr_assert_not_null(b->data);
        b->capacity = c;
    }
    if (n) memcpy(b->data + b->size, p, n);
    b->size += n;
}
static inline void put_u8(buffer *b, uint8_t v) { put(b, &v, 1); }
static inline void put_u16(buffer *b, uint16_t v) {
    uint8_t le[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(b, le, 2);
}
static inline void put_u32(buffer *b, uint32_t v) {
    uint8_t le[4];
    for (int i = 0; i < 4; i++) le[i] = (uint8_t)(v >> (8 * i));
    put(b, le, 4);
}
static inline void put_u64(buffer *b, uint64_t v) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(v >> (8 * i));
    put(b, le, 8);
}
static inline void put_f32(buffer *b, float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    put_u32(b, bits);
}
static inline void put_f64(buffer *b, double f) {
    uint64_t bits;
    memcpy(&bits, &f, 8);
    put_u64(b, bits);
}
/* A GGUF string: u64 length, then the bytes (any bytes, NUL included). */
static inline void put_bytes_string(buffer *b, const char *s, size_t n) {
    put_u64(b, n);
    put(b, s, n);
}
static inline void put_string(buffer *b, const char *s) { put_bytes_string(b, s, strlen(s)); }
static inline void put_zeros(buffer *b, size_t n) {
    for (size_t i = 0; i < n; i++) put_u8(b, 0);
}
/* One metadata key/value pair: key, value type, value. */
static inline void put_kv_u32(buffer *b, const char *key, uint32_t v) {
    put_string(b, key);
    put_u32(b, TM_GGUF_UINT32);
    put_u32(b, v);
}
static inline void put_kv_i32(buffer *b, const char *key, int32_t v) {
    put_string(b, key);
    put_u32(b, TM_GGUF_INT32);
    put_u32(b, (uint32_t)v);
}
static inline void put_kv_f32(buffer *b, const char *key, float v) {
    put_string(b, key);
    put_u32(b, TM_GGUF_FLOAT32);
    put_f32(b, v);
}
static inline void put_kv_string(buffer *b, const char *key, const char *v) {
    put_string(b, key);
    put_u32(b, TM_GGUF_STRING);
    put_string(b, v);
}

#endif
