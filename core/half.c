/* IEEE half and bfloat16 <-> float conversions, rounding to nearest even.
 * They live in core because the model files (dequantization, the quantizer)
 * and the engine's kernels both need them, and neither may call the other
 * for them. Pure bit manipulation: no allocation, no errors, same bits on
 * every machine. */
#include "tracemark/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float tm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int shift = 0;
            while (!(mantissa & 0x400)) { mantissa <<= 1; shift++; }
            mantissa &= 0x3FF;
            bits = sign | ((uint32_t)(127 - 15 - shift + 1) << 23) | (mantissa << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t tm_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t abs = x & 0x7FFFFFFF;
    if (abs > 0x7F800000) return (uint16_t)(sign | 0x7E00); /* NaN */
    if (abs >= 0x477FF000) return (uint16_t)(sign | 0x7C00); /* overflow (after rounding) to inf */
    if (abs < 0x38800000) { /* result is subnormal or zero */
        if (abs < 0x33000000) return (uint16_t)sign;
        uint32_t exponent = abs >> 23, mantissa = (abs & 0x7FFFFF) | 0x800000;
        uint32_t shift = 126 - exponent; /* 14..24 */
        uint32_t half = mantissa >> shift, rest = mantissa & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rest > mid || (rest == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((abs >> 13) - (112u << 10)), rest = abs & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;
    return (uint16_t)(sign | half);
}

float tm_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Nine significant digits always read back as the same float (FLT_DECIMAL_DIG);
 * the first shorter precision that does is the shortest decimal. */
double tm_float_shortest(float f) {
    if (!isfinite(f)) return (double)f;
    char text[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, (double)f);
        if (strtof(text, NULL) == f) return strtod(text, NULL);
    }
    return (double)f;
}
