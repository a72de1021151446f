/* The keyed PRF behind every scheme (docs/watermark-spec.md): SipHash-2-4
 * over a fixed byte encoding of (domain, context tokens, extra), one message
 * at a time (tm_wm_prf), in batches that share all but one or two tokens
 * (tm_wm_prf_batch, what the schemes' generation faces call once per
 * candidate), and along a text, the window of h + 1 tokens ending at each
 * position (tm_wm_prf_window, what their detection faces call). SipHash is hand-written because a scheme calls the PRF once per
 * candidate token and OpenSSL's EVP_MAC SipHash costs 52-79 ns per 14-byte
 * message against 13 ns here (docs/watermark-spec.md has the measurement);
 * the batch runs two interleaved 8-lane AVX-512 or 4-lane AVX2 SipHashes
 * where the CPU has them (a few ns per message) and the scalar SipHash
 * elsewhere. Every path
 * must give tm_wm_prf's value bit for bit: tests/test_prf.c checks SipHash
 * against the published vectors and OpenSSL's own SipHash, and both batch
 * paths against tm_wm_prf. (Subkeys, from HKDF-SHA256 through OpenSSL, live
 * in keys.c.) */
#include "scheme.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PRF_HAVE_AVX2 1
#else
#define PRF_HAVE_AVX2 0
#endif

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

/* ======================================================================== */
/* Batched PRF                                                               */
/* ======================================================================== */

static void template_put_byte(tm_wm_prf_template *t, size_t offset, uint8_t byte) {
    t->words[offset / 8] |= (uint64_t)byte << (8 * (offset % 8));
}

void tm_wm_prf_template_init(tm_wm_prf_template *t, uint8_t domain, const int32_t *fixed, size_t n_fixed,
                             size_t n_varying, uint32_t extra) {
    memset(t, 0, sizeof *t);
    if (n_varying < 1) n_varying = 1;
    if (n_varying > 2) n_varying = 2;
    if (n_fixed + n_varying > TM_WM_PRF_MAX_TOKENS) n_fixed = TM_WM_PRF_MAX_TOKENS - n_varying;
    size_t n = n_fixed + n_varying;
    size_t size = 2 + 4 * n + 4;
    template_put_byte(t, 0, domain);
    template_put_byte(t, 1, (uint8_t)n);
    for (size_t i = 0; i < n_fixed; i++)
        for (size_t b = 0; b < 4; b++) template_put_byte(t, 2 + 4 * i + b, (uint8_t)((uint32_t)fixed[i] >> (8 * b)));
    for (size_t b = 0; b < 4; b++) template_put_byte(t, 2 + 4 * n + b, (uint8_t)(extra >> (8 * b)));
    /* SipHash's last block: the tail bytes and the length byte (size < 256). */
    t->n_words = size / 8 + 1;
    t->words[t->n_words - 1] |= (uint64_t)(size & 0xff) << 56;
    t->n_varying = n_varying;
    for (size_t k = 0; k < n_varying; k++) t->slot_offset[k] = 2 + 4 * (n_fixed + k);
}

void tm_wm_prf_batch_scalar(const tm_wm_subkey *key, const tm_wm_prf_template *t, const int32_t *const slots[2],
                            size_t count, uint64_t *out) {
    for (size_t i = 0; i < count; i++) {
        uint64_t words[TM_WM_PRF_MAX_WORDS];
        memcpy(words, t->words, sizeof words);
        for (size_t k = 0; k < t->n_varying; k++) {
            uint64_t token = (uint32_t)slots[k][i];
            size_t offset = t->slot_offset[k];
            unsigned shift = (unsigned)(8 * (offset % 8));
            words[offset / 8] |= token << shift;
            if (shift > 32) words[offset / 8 + 1] |= token >> (64 - shift);
        }
        uint64_t v0 = 0x736f6d6570736575ULL ^ key->k0, v1 = 0x646f72616e646f6dULL ^ key->k1;
        uint64_t v2 = 0x6c7967656e657261ULL ^ key->k0, v3 = 0x7465646279746573ULL ^ key->k1;
        for (size_t j = 0; j < t->n_words; j++) {
            v3 ^= words[j];
            SIPROUND;
            SIPROUND;
            v0 ^= words[j];
        }
        v2 ^= 0xff;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        out[i] = v0 ^ v1 ^ v2 ^ v3;
    }
}

/* SipHash absorbs the words in order, so the words before the first one
 * that holds a varying token are the same for every message of a batch: the
 * state after them is computed once per batch (Gumbel's and SynthID's h = 4
 * and DiPmark's h = 5 messages skip 2 of their 4 words, a third of the
 * rounds), and the lanes start from it. The same state, the same output. */
typedef struct {
    uint64_t v[4];
    size_t first_word; /* the first word that differs between messages */
} prf_start;

static void prf_start_init(const tm_wm_subkey *key, const tm_wm_prf_template *t, prf_start *start) {
    size_t first = t->slot_offset[0] / 8;
    if (t->n_varying > 1 && t->slot_offset[1] / 8 < first) first = t->slot_offset[1] / 8;
    uint64_t v0 = 0x736f6d6570736575ULL ^ key->k0, v1 = 0x646f72616e646f6dULL ^ key->k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ key->k0, v3 = 0x7465646279746573ULL ^ key->k1;
    for (size_t j = 0; j < first; j++) {
        v3 ^= t->words[j];
        SIPROUND;
        SIPROUND;
        v0 ^= t->words[j];
    }
    start->v[0] = v0, start->v[1] = v1, start->v[2] = v2, start->v[3] = v3;
    start->first_word = first;
}

/* tm_wm_prf_batch_scalar from a batch's common start. */
static void prf_batch_scalar_from(const prf_start *start, const tm_wm_prf_template *t, const int32_t *const slots[2],
                                  size_t count, uint64_t *out) {
    for (size_t i = 0; i < count; i++) {
        uint64_t words[TM_WM_PRF_MAX_WORDS];
        memcpy(words, t->words, sizeof words);
        for (size_t k = 0; k < t->n_varying; k++) {
            uint64_t token = (uint32_t)slots[k][i];
            size_t offset = t->slot_offset[k];
            unsigned shift = (unsigned)(8 * (offset % 8));
            words[offset / 8] |= token << shift;
            if (shift > 32) words[offset / 8 + 1] |= token >> (64 - shift);
        }
        uint64_t v0 = start->v[0], v1 = start->v[1], v2 = start->v[2], v3 = start->v[3];
        for (size_t j = start->first_word; j < t->n_words; j++) {
            v3 ^= words[j];
            SIPROUND;
            SIPROUND;
            v0 ^= words[j];
        }
        v2 ^= 0xff;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        out[i] = v0 ^ v1 ^ v2 ^ v3;
    }
}

#if PRF_HAVE_AVX2
/* Hand-vectorised because this is the measured bottleneck of generation:
 * SipHash's four 64-bit state words map onto AVX2 lanes, one message per
 * lane; two groups of four are interleaved to hide the rounds' latency. */
#define ROTL_V(x, b) _mm256_or_si256(_mm256_slli_epi64((x), (b)), _mm256_srli_epi64((x), 64 - (b)))
#define ROTL32_V(x) _mm256_shuffle_epi32((x), 0xB1)
#define SIPROUND_V(v0, v1, v2, v3, rot16)                                                                   \
    do {                                                                                                    \
        v0 = _mm256_add_epi64(v0, v1); v1 = ROTL_V(v1, 13); v1 = _mm256_xor_si256(v1, v0);                  \
        v0 = ROTL32_V(v0);                                                                                  \
        v2 = _mm256_add_epi64(v2, v3); v3 = _mm256_shuffle_epi8(v3, rot16); v3 = _mm256_xor_si256(v3, v2);  \
        v0 = _mm256_add_epi64(v0, v3); v3 = ROTL_V(v3, 21); v3 = _mm256_xor_si256(v3, v0);                  \
        v2 = _mm256_add_epi64(v2, v1); v1 = ROTL_V(v1, 17); v1 = _mm256_xor_si256(v1, v2);                  \
        v2 = ROTL32_V(v2);                                                                                  \
    } while (0)

__attribute__((target("avx2"))) static void prf_batch8_avx2(const prf_start *start, const tm_wm_prf_template *t,
                                                             const int32_t *const slots[2],
                                                             uint64_t out[TM_WM_PRF_BATCH]) {
    /* Rotating a 64-bit lane left by 16 bits is a byte shuffle. */
    const __m256i rot16 = _mm256_setr_epi8(6, 7, 0, 1, 2, 3, 4, 5, 14, 15, 8, 9, 10, 11, 12, 13, 6, 7, 0, 1, 2, 3,
                                           4, 5, 14, 15, 8, 9, 10, 11, 12, 13);
    __m256i ma[TM_WM_PRF_MAX_WORDS], mb[TM_WM_PRF_MAX_WORDS];
    for (size_t j = 0; j < t->n_words; j++) ma[j] = mb[j] = _mm256_set1_epi64x((long long)t->words[j]);
    for (size_t k = 0; k < t->n_varying; k++) {
        __m256i ta = _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i *)(const void *)slots[k]));
        __m256i tb = _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(slots[k] + 4)));
        size_t offset = t->slot_offset[k], j = offset / 8;
        int shift = (int)(8 * (offset % 8));
        __m128i left = _mm_cvtsi32_si128(shift), right = _mm_cvtsi32_si128(64 - shift);
        ma[j] = _mm256_or_si256(ma[j], _mm256_sll_epi64(ta, left));
        mb[j] = _mm256_or_si256(mb[j], _mm256_sll_epi64(tb, left));
        if (shift > 32) {
            ma[j + 1] = _mm256_or_si256(ma[j + 1], _mm256_srl_epi64(ta, right));
            mb[j + 1] = _mm256_or_si256(mb[j + 1], _mm256_srl_epi64(tb, right));
        }
    }
    __m256i a0 = _mm256_set1_epi64x((long long)start->v[0]), a1 = _mm256_set1_epi64x((long long)start->v[1]);
    __m256i a2 = _mm256_set1_epi64x((long long)start->v[2]), a3 = _mm256_set1_epi64x((long long)start->v[3]);
    __m256i b0 = a0, b1 = a1, b2 = a2, b3 = a3;
    for (size_t j = start->first_word; j < t->n_words; j++) {
        a3 = _mm256_xor_si256(a3, ma[j]);
        b3 = _mm256_xor_si256(b3, mb[j]);
        SIPROUND_V(a0, a1, a2, a3, rot16);
        SIPROUND_V(b0, b1, b2, b3, rot16);
        SIPROUND_V(a0, a1, a2, a3, rot16);
        SIPROUND_V(b0, b1, b2, b3, rot16);
        a0 = _mm256_xor_si256(a0, ma[j]);
        b0 = _mm256_xor_si256(b0, mb[j]);
    }
    const __m256i ff = _mm256_set1_epi64x(0xff);
    a2 = _mm256_xor_si256(a2, ff);
    b2 = _mm256_xor_si256(b2, ff);
    for (int r = 0; r < 4; r++) {
        SIPROUND_V(a0, a1, a2, a3, rot16);
        SIPROUND_V(b0, b1, b2, b3, rot16);
    }
    __m256i ha = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    __m256i hb = _mm256_xor_si256(_mm256_xor_si256(b0, b1), _mm256_xor_si256(b2, b3));
    _mm256_storeu_si256((__m256i *)(void *)out, ha);
    _mm256_storeu_si256((__m256i *)(void *)(out + 4), hb);
}

/* The same with AVX-512's eight 64-bit lanes and its native rotate: sixteen
 * messages per call, two interleaved groups of eight. */
#define SIPROUND_Z(v0, v1, v2, v3)                                                                          \
    do {                                                                                                    \
        v0 = _mm512_add_epi64(v0, v1); v1 = _mm512_rol_epi64(v1, 13); v1 = _mm512_xor_si512(v1, v0);        \
        v0 = _mm512_rol_epi64(v0, 32);                                                                      \
        v2 = _mm512_add_epi64(v2, v3); v3 = _mm512_rol_epi64(v3, 16); v3 = _mm512_xor_si512(v3, v2);        \
        v0 = _mm512_add_epi64(v0, v3); v3 = _mm512_rol_epi64(v3, 21); v3 = _mm512_xor_si512(v3, v0);        \
        v2 = _mm512_add_epi64(v2, v1); v1 = _mm512_rol_epi64(v1, 17); v1 = _mm512_xor_si512(v1, v2);        \
        v2 = _mm512_rol_epi64(v2, 32);                                                                      \
    } while (0)

__attribute__((target("avx512f"))) static void prf_batch16_avx512(const prf_start *start,
                                                                   const tm_wm_prf_template *t,
                                                                   const int32_t *const slots[2],
                                                                   uint64_t out[2 * TM_WM_PRF_BATCH]) {
    __m512i ma[TM_WM_PRF_MAX_WORDS], mb[TM_WM_PRF_MAX_WORDS];
    for (size_t j = 0; j < t->n_words; j++) ma[j] = mb[j] = _mm512_set1_epi64((long long)t->words[j]);
    for (size_t k = 0; k < t->n_varying; k++) {
        __m512i ta = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i *)(const void *)slots[k]));
        __m512i tb = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i *)(const void *)(slots[k] + 8)));
        size_t offset = t->slot_offset[k], j = offset / 8;
        int shift = (int)(8 * (offset % 8));
        __m128i left = _mm_cvtsi32_si128(shift), right = _mm_cvtsi32_si128(64 - shift);
        ma[j] = _mm512_or_si512(ma[j], _mm512_sll_epi64(ta, left));
        mb[j] = _mm512_or_si512(mb[j], _mm512_sll_epi64(tb, left));
        if (shift > 32) {
            ma[j + 1] = _mm512_or_si512(ma[j + 1], _mm512_srl_epi64(ta, right));
            mb[j + 1] = _mm512_or_si512(mb[j + 1], _mm512_srl_epi64(tb, right));
        }
    }
    __m512i a0 = _mm512_set1_epi64((long long)start->v[0]), a1 = _mm512_set1_epi64((long long)start->v[1]);
    __m512i a2 = _mm512_set1_epi64((long long)start->v[2]), a3 = _mm512_set1_epi64((long long)start->v[3]);
    __m512i b0 = a0, b1 = a1, b2 = a2, b3 = a3;
    for (size_t j = start->first_word; j < t->n_words; j++) {
        a3 = _mm512_xor_si512(a3, ma[j]);
        b3 = _mm512_xor_si512(b3, mb[j]);
        SIPROUND_Z(a0, a1, a2, a3);
        SIPROUND_Z(b0, b1, b2, b3);
        SIPROUND_Z(a0, a1, a2, a3);
        SIPROUND_Z(b0, b1, b2, b3);
        a0 = _mm512_xor_si512(a0, ma[j]);
        b0 = _mm512_xor_si512(b0, mb[j]);
    }
    const __m512i ff = _mm512_set1_epi64(0xff);
    a2 = _mm512_xor_si512(a2, ff);
    b2 = _mm512_xor_si512(b2, ff);
    for (int r = 0; r < 4; r++) {
        SIPROUND_Z(a0, a1, a2, a3);
        SIPROUND_Z(b0, b1, b2, b3);
    }
    __m512i ha = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    __m512i hb = _mm512_xor_si512(_mm512_xor_si512(b0, b1), _mm512_xor_si512(b2, b3));
    _mm512_storeu_si512((void *)out, ha);
    _mm512_storeu_si512((void *)(out + 8), hb);
}
#endif

/* ======================================================================== */
/* Sliding windows                                                           */
/* ======================================================================== */

/* SipHash-2-4 of `lanes` messages already cut into their words (the last one
 * holding the tail bytes and the length byte), words[j * lanes + lane]. */
static void siphash_words_scalar(const tm_wm_subkey *key, const uint64_t *words, size_t n_words, size_t lanes,
                                 size_t count, uint64_t *out) {
    for (size_t i = 0; i < count; i++) {
        uint64_t v0 = 0x736f6d6570736575ULL ^ key->k0, v1 = 0x646f72616e646f6dULL ^ key->k1;
        uint64_t v2 = 0x6c7967656e657261ULL ^ key->k0, v3 = 0x7465646279746573ULL ^ key->k1;
        for (size_t j = 0; j < n_words; j++) {
            uint64_t m = words[j * lanes + i];
            v3 ^= m;
            SIPROUND;
            SIPROUND;
            v0 ^= m;
        }
        v2 ^= 0xff;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        out[i] = v0 ^ v1 ^ v2 ^ v3;
    }
}

#if PRF_HAVE_AVX2
__attribute__((target("avx2"))) static void siphash_words8_avx2(const tm_wm_subkey *key, const uint64_t *words,
                                                                 size_t n_words, uint64_t out[8]) {
    const __m256i rot16 = _mm256_setr_epi8(6, 7, 0, 1, 2, 3, 4, 5, 14, 15, 8, 9, 10, 11, 12, 13, 6, 7, 0, 1, 2, 3,
                                           4, 5, 14, 15, 8, 9, 10, 11, 12, 13);
    const __m256i k0 = _mm256_set1_epi64x((long long)key->k0), k1 = _mm256_set1_epi64x((long long)key->k1);
    __m256i a0 = _mm256_xor_si256(_mm256_set1_epi64x(0x736f6d6570736575LL), k0);
    __m256i a1 = _mm256_xor_si256(_mm256_set1_epi64x(0x646f72616e646f6dLL), k1);
    __m256i a2 = _mm256_xor_si256(_mm256_set1_epi64x(0x6c7967656e657261LL), k0);
    __m256i a3 = _mm256_xor_si256(_mm256_set1_epi64x(0x7465646279746573LL), k1);
    __m256i b0 = a0, b1 = a1, b2 = a2, b3 = a3;
    for (size_t j = 0; j < n_words; j++) {
        __m256i ma = _mm256_loadu_si256((const __m256i *)(const void *)(words + 8 * j));
        __m256i mb = _mm256_loadu_si256((const __m256i *)(const void *)(words + 8 * j + 4));
        a3 = _mm256_xor_si256(a3, ma);
        b3 = _mm256_xor_si256(b3, mb);
        SIPROUND_V(a0, a1, a2, a3, rot16);
        SIPROUND_V(b0, b1, b2, b3, rot16);
        SIPROUND_V(a0, a1, a2, a3, rot16);
        SIPROUND_V(b0, b1, b2, b3, rot16);
        a0 = _mm256_xor_si256(a0, ma);
        b0 = _mm256_xor_si256(b0, mb);
    }
    const __m256i ff = _mm256_set1_epi64x(0xff);
    a2 = _mm256_xor_si256(a2, ff);
    b2 = _mm256_xor_si256(b2, ff);
    for (int r = 0; r < 4; r++) {
        SIPROUND_V(a0, a1, a2, a3, rot16);
        SIPROUND_V(b0, b1, b2, b3, rot16);
    }
    __m256i ha = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    __m256i hb = _mm256_xor_si256(_mm256_xor_si256(b0, b1), _mm256_xor_si256(b2, b3));
    _mm256_storeu_si256((__m256i *)(void *)out, ha);
    _mm256_storeu_si256((__m256i *)(void *)(out + 4), hb);
}

__attribute__((target("avx512f"))) static void siphash_words16_avx512(const tm_wm_subkey *key,
                                                                      const uint64_t *words, size_t n_words,
                                                                      uint64_t out[16]) {
    const __m512i k0 = _mm512_set1_epi64((long long)key->k0), k1 = _mm512_set1_epi64((long long)key->k1);
    __m512i a0 = _mm512_xor_si512(_mm512_set1_epi64(0x736f6d6570736575LL), k0);
    __m512i a1 = _mm512_xor_si512(_mm512_set1_epi64(0x646f72616e646f6dLL), k1);
    __m512i a2 = _mm512_xor_si512(_mm512_set1_epi64(0x6c7967656e657261LL), k0);
    __m512i a3 = _mm512_xor_si512(_mm512_set1_epi64(0x7465646279746573LL), k1);
    __m512i b0 = a0, b1 = a1, b2 = a2, b3 = a3;
    for (size_t j = 0; j < n_words; j++) {
        __m512i ma = _mm512_loadu_si512((const void *)(words + 16 * j));
        __m512i mb = _mm512_loadu_si512((const void *)(words + 16 * j + 8));
        a3 = _mm512_xor_si512(a3, ma);
        b3 = _mm512_xor_si512(b3, mb);
        SIPROUND_Z(a0, a1, a2, a3);
        SIPROUND_Z(b0, b1, b2, b3);
        SIPROUND_Z(a0, a1, a2, a3);
        SIPROUND_Z(b0, b1, b2, b3);
        a0 = _mm512_xor_si512(a0, ma);
        b0 = _mm512_xor_si512(b0, mb);
    }
    const __m512i ff = _mm512_set1_epi64(0xff);
    a2 = _mm512_xor_si512(a2, ff);
    b2 = _mm512_xor_si512(b2, ff);
    for (int r = 0; r < 4; r++) {
        SIPROUND_Z(a0, a1, a2, a3);
        SIPROUND_Z(b0, b1, b2, b3);
    }
    __m512i ha = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    __m512i hb = _mm512_xor_si512(_mm512_xor_si512(b0, b1), _mm512_xor_si512(b2, b3));
    _mm512_storeu_si512((void *)out, ha);
    _mm512_storeu_si512((void *)(out + 8), hb);
}
#endif

enum { WINDOW_LANES = 16, WINDOW_CHUNK = 256 };

/* Message i of a sliding window is (domain, n, tokens[i .. i + n), extra):
 * its token bytes are 4i .. 4i + 4n of the text's little-endian bytes, so
 * each of its words is 8 bytes of those (read at a fixed offset from 4i)
 * with the bytes outside the tokens masked off and the fixed bytes (domain,
 * n, extra, length) put in. The words of WINDOW_LANES messages are built
 * with plain loads, then hashed in SIMD lanes. */
void tm_wm_prf_window_simd(const tm_wm_subkey *key, uint8_t domain, const int32_t *tokens, size_t n, uint32_t extra,
                           size_t count, uint64_t *out, int simd) {
    if (n < 1) n = 1;
    if (n > TM_WM_PRF_MAX_TOKENS) n = TM_WM_PRF_MAX_TOKENS;
    size_t size = 2 + 4 * n + 4, n_words = size / 8 + 1;
    /* Per word: which bytes come from the tokens, and the fixed bytes. */
    uint64_t keep[TM_WM_PRF_MAX_WORDS], fixed[TM_WM_PRF_MAX_WORDS];
    for (size_t j = 0; j < n_words; j++) {
        keep[j] = fixed[j] = 0;
        for (size_t b = 0; b < 8; b++) {
            size_t m = 8 * j + b;
            uint64_t byte = 0;
            if (m >= 2 && m < 2 + 4 * n) keep[j] |= (uint64_t)0xff << (8 * b);
            else if (m == 0) byte = domain;
            else if (m == 1) byte = (uint8_t)n;
            else if (m < size) byte = (uint8_t)(extra >> (8 * (m - 2 - 4 * n)));
            else if (j == n_words - 1 && b == 7) byte = size & 0xff;
            fixed[j] |= byte << (8 * b);
        }
    }
    /* Token bytes of a chunk, 8 zero bytes before them and room after for
     * the last message's last word. */
    uint8_t bytes[8 + 4 * (WINDOW_CHUNK + TM_WM_PRF_MAX_TOKENS) + 8 * TM_WM_PRF_MAX_WORDS];
    uint64_t words[TM_WM_PRF_MAX_WORDS * WINDOW_LANES];
    memset(bytes, 0, sizeof bytes);
#if PRF_HAVE_AVX2
    bool avx512 = simd >= 2 && tm_cpu_has(TM_CPU_AVX512F), avx2 = simd >= 1 && tm_cpu_has(TM_CPU_AVX2);
#else
    (void)simd;
#endif
    for (size_t start = 0; start < count; start += WINDOW_CHUNK) {
        size_t chunk = count - start < WINDOW_CHUNK ? count - start : WINDOW_CHUNK;
        const int32_t *t = tokens + start;
        for (size_t k = 0; k < chunk + n - 1; k++) {
            uint32_t v = (uint32_t)t[k];
            uint8_t *p = bytes + 8 + 4 * k;
            p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
        }
        /* Stale bytes past the chunk's tokens are masked off: a word reads
         * them only where keep is zero. */
        for (size_t i = 0; i < chunk; i += WINDOW_LANES) {
            size_t lanes = chunk - i < WINDOW_LANES ? chunk - i : WINDOW_LANES;
            for (size_t j = 0; j < n_words; j++) {
                const uint8_t *base = bytes + 8 + 4 * i + 8 * j - 2;
                for (size_t lane = 0; lane < lanes; lane++)
                    words[j * WINDOW_LANES + lane] = (load_le64(base + 4 * lane) & keep[j]) | fixed[j];
            }
            uint64_t *o = out + start + i;
#if PRF_HAVE_AVX2
            if (lanes == WINDOW_LANES && avx512) {
                siphash_words16_avx512(key, words, n_words, o);
                continue;
            }
            if (lanes == WINDOW_LANES && avx2) {
                uint64_t half[TM_WM_PRF_MAX_WORDS * 8];
                for (size_t h = 0; h < 2; h++) {
                    for (size_t j = 0; j < n_words; j++) memcpy(half + 8 * j, words + j * WINDOW_LANES + 8 * h, 64);
                    siphash_words8_avx2(key, half, n_words, o + 8 * h);
                }
                continue;
            }
#endif
            siphash_words_scalar(key, words, n_words, WINDOW_LANES, lanes, o);
        }
    }
}

void tm_wm_prf_window(const tm_wm_subkey *key, uint8_t domain, const int32_t *tokens, size_t n, uint32_t extra,
                      size_t count, uint64_t *out) {
    tm_wm_prf_window_simd(key, domain, tokens, n, extra, count, out, 2);
}

void tm_wm_prf_batch(const tm_wm_subkey *key, const tm_wm_prf_template *t, const int32_t *const slots[2],
                     size_t count, uint64_t *out) {
    size_t i = 0;
    if (count == 0) return;
    prf_start start;
    prf_start_init(key, t, &start);
#if PRF_HAVE_AVX2
    if (tm_cpu_has(TM_CPU_AVX512F)) {
        for (; i + 2 * TM_WM_PRF_BATCH <= count; i += 2 * TM_WM_PRF_BATCH) {
            const int32_t *const lane_slots[2] = {slots[0] + i, t->n_varying > 1 ? slots[1] + i : NULL};
            prf_batch16_avx512(&start, t, lane_slots, out + i);
        }
    }
    if (tm_cpu_has(TM_CPU_AVX2)) {
        for (; i + TM_WM_PRF_BATCH <= count; i += TM_WM_PRF_BATCH) {
            const int32_t *const lane_slots[2] = {slots[0] + i, t->n_varying > 1 ? slots[1] + i : NULL};
            prf_batch8_avx2(&start, t, lane_slots, out + i);
        }
    }
#endif
    if (i < count) {
        const int32_t *const rest[2] = {slots[0] + i, t->n_varying > 1 ? slots[1] + i : NULL};
        prf_batch_scalar_from(&start, t, rest, count - i, out + i);
    }
}
