/*
 * bfloat16 dropout: the upper 16 bits of a float32. The kernel reads and writes the
 * 16-bit words, computes in float32 (the float32 loop of the ISA path in use) and rounds
 * once to nearest, ties to even, as PyTorch's CPU conversion does; a NaN stays a quiet
 * NaN with its sign. cdropout/_bfloat16.py is the NumPy twin of these conversions.
 */
#ifndef CDROPOUT_BFLOAT16_H
#define CDROPOUT_BFLOAT16_H

#include <stdint.h>
#include <string.h>

#include "_xorshift.h"

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

/* Dropout of elements [first, first + n) of ONE block (n <= CDR_BLOCK), through a float32
 * buffer on the stack: the same decisions and float32 products as the float32 loop. */
static void cdr_drop_bf16(const cdr_kernels *path, const uint16_t *src, uint16_t *dst,
                          uint64_t key, uint64_t first, int64_t n, uint32_t threshold,
                          float scale)
{
    float buffer[CDR_BLOCK];
    for (int64_t i = 0; i < n; i++) buffer[i] = cdr_bf16_to_f32(src[i]);
    path->drop_f32(buffer, buffer, key, first, n, threshold, scale);
    for (int64_t i = 0; i < n; i++) dst[i] = cdr_f32_to_bf16(buffer[i]);
}

#endif /* CDROPOUT_BFLOAT16_H */
