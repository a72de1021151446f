/* The keyed PRF behind every scheme (docs/watermark-spec.md): subkeys from
 * HKDF-SHA256 through OpenSSL, and SipHash-2-4 over a fixed byte encoding of
 * (domain, context tokens, extra). SipHash is hand-written because OpenSSL's
 * EVP_MAC interface costs about a microsecond of setup per call, and a
 * scheme calls the PRF once per candidate token (benchmarks/ measures it); it
 * is checked against the published test vectors in tests/test_prf.c. */
#include "tracemark/watermark.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <string.h>

static inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static inline uint64_t load_le64(const uint8_t *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

#define SIPROUND                                                                                            \
    do {                                                                                                    \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);                                           \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                                                              \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                                                              \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);                                           \
    } while (0)

uint64_t tm_siphash24(const tm_wm_subkey *key, const void *data, size_t size) {
    const uint8_t *in = data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ key->k0, v1 = 0x646f72616e646f6dULL ^ key->k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ key->k0, v3 = 0x7465646279746573ULL ^ key->k1;
    size_t blocks = size / 8;
    for (size_t i = 0; i < blocks; i++) {
        uint64_t m = load_le64(in + 8 * i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)size << 56;
    const uint8_t *tail = in + 8 * blocks;
    for (size_t i = 0; i < (size & 7); i++) last |= (uint64_t)tail[i] << (8 * i);
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t tm_wm_prf(const tm_wm_subkey *key, uint8_t domain, const int32_t *tokens, size_t n, uint32_t extra) {
    uint8_t message[2 + 4 * TM_WM_PRF_MAX_TOKENS + 4];
    if (n > TM_WM_PRF_MAX_TOKENS) n = TM_WM_PRF_MAX_TOKENS;
    message[0] = domain;
    message[1] = (uint8_t)n;
    uint8_t *p = message + 2;
    for (size_t i = 0; i < n; i++, p += 4) {
        uint32_t t = (uint32_t)tokens[i];
        p[0] = (uint8_t)t, p[1] = (uint8_t)(t >> 8), p[2] = (uint8_t)(t >> 16), p[3] = (uint8_t)(t >> 24);
    }
    p[0] = (uint8_t)extra, p[1] = (uint8_t)(extra >> 8), p[2] = (uint8_t)(extra >> 16), p[3] = (uint8_t)(extra >> 24);
    return tm_siphash24(key, message, (size_t)(p + 4 - message));
}
