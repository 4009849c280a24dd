/*
 * The 16-bit float types as the kernel reads and writes them: IEEE binary16 (float16)
 * and bfloat16 (the upper half of a float32), each widened exactly to float32 and
 * narrowed once, to nearest, ties to even; a NaN stays a quiet NaN with its sign and
 * the top bits of its payload. These are NumPy's float32 -> float16 cast and PyTorch's
 * CPU bfloat16 conversion; cdropout/_bfloat16.py is the NumPy twin of the bfloat16 pair.
 * The per-path loops over them are in convert.inc.h.
 */
#ifndef CDROPOUT_HALF_FLOATS_H
#define CDROPOUT_HALF_FLOATS_H

#include <stdint.h>
#include <string.h>

/* A float16's bits, as a type of its own: the kernel's fused element type tells it from
 * bfloat16's uint16_t words. */
typedef struct {
    uint16_t bits;
} cdr_f16_word;

static inline float cdr_bf16_to_f32(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t cdr_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float cdr_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    uint32_t u;
    float f;
    if (exponent == 0) { /* zero or subnormal: mantissa * 2**-24, exactly */
        f = (float)mantissa * 0x1p-24f;
        return sign ? -f : f;
    }
    if (exponent == 0x1f) /* inf or NaN, payload kept */
        u = sign | 0x7f800000u | (mantissa << 13);
    else /* normal: rebias the exponent from 15 to 127 */
        u = sign | ((exponent + 112) << 23) | (mantissa << 13);
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t cdr_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) /* NaN: the payload's top bits, quiet */
        return (uint16_t)(sign | 0x7e00u | ((u >> 13) & 0x3ffu));
    if (u >= 0x477ff000u) /* 65520 and up round to inf (ties to even), as inf itself */
        return (uint16_t)(sign | 0x7c00u);
    if (u >= 0x38800000u) { /* a normal float16: rebias, round at bit 13 */
        const uint32_t v = u - 0x38000000u;
        return (uint16_t)(sign | ((v + 0xfffu + ((v >> 13) & 1u)) >> 13));
    }
    const int exponent = (int)(u >> 23);
    if (exponent < 102) /* below 2**-25: rounds to zero */
        return sign;
    /* a subnormal float16 (or the smallest normal, where rounding carries into it):
     * the mantissa with its implicit bit, in units of 2**-24, rounded to even */
    const int shift = 126 - exponent; /* 14 to 24 */
    const uint32_t mantissa = (u & 0x7fffffu) | 0x800000u;
    const uint32_t half = 1u << (shift - 1), rest = mantissa & ((1u << shift) - 1);
    uint32_t r = mantissa >> shift;
    if (rest > half || (rest == half && (r & 1u))) r++;
    return (uint16_t)(sign | r);
}

#endif /* CDROPOUT_HALF_FLOATS_H */
