/* The seeded pseudo-random generator every room shares (sampling,
 * watermark schemes, detector null keys, synthetic weights): xoshiro256**
 * seeded through SplitMix64 (prng.di.unimi.it), specified so that a seed gives
 * the same numbers on every machine. Not for secrets: keys come from OpenSSL. */
#include "tracemark/core.h"

static uint64_t splitmix64_next(uint64_t *x) {
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline uint64_t rotate_left(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void tm_rng_seed(tm_rng *rng, uint64_t seed) {
    /* Four successive SplitMix64 outputs, as the xoshiro authors recommend; at
     * most one of them can be zero, so the state is never all zero. */
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64_next(&x);
}

uint64_t tm_rng_next(tm_rng *rng) {
    uint64_t *s = rng->s;
    const uint64_t result = rotate_left(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotate_left(s[3], 45);
    return result;
}

float tm_rng_uniform(tm_rng *rng) {
    /* 24 bits fill a float mantissa exactly, so the result is exact and < 1. */
    return (float)(tm_rng_next(rng) >> 40) * 0x1.0p-24f;
}

