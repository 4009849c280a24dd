/*
 * The kernel's bytes, machine to machine: every block loop of the kernel's path table
 * (src/paths.h), for both streams (raw words, keep mask, float32/float64/float16/bfloat16
 * dropout, dropout fused with relu and leaky_relu), the mask-driven select and affine
 * loops and Gaussian deviates, on
 * fixed keys, offsets and values, written to stdout. .ci/cross_machine runs it on each
 * ISA path of this x86-64 machine and, cross-compiled, on arm64 under qemu: the
 * determinism contract says all outputs are the same bytes.
 *
 * Usage: stream_bytes PATH_LEVEL   (0 baseline, 1 AVX2, 2 AVX-512; capped by the CPU)
 */
#include <stdio.h>
#include <stdlib.h>

#include "paths.h"

#define N (3 * CDR_BLOCK + 77) /* three blocks and a cut one */

static const uint64_t SEEDS[] = {0, 42, 0xFFFFFFFFFFFFFFFFull};
static const uint64_t OFFSETS[] = {0, 5, CDR_BLOCK - 3, 0xFFFFFFF0ull}; /* last: past 2**32 */
static const double PS[] = {0.1, 0.5, 0.9};

static void emit(const void *data, size_t bytes)
{
    if (fwrite(data, 1, bytes, stdout) != bytes) exit(2);
}

/* value k of the test array: signed, of every magnitude, with specials among them */
static double value(int64_t k)
{
    static const double specials[] = {0.0, -0.0, 1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0, 65504.0,
                                      1e-40, -3e-8};
    if (k % 97 < 8) return specials[k % 97];
    return (double)((k * 2654435761u) % 20001 - 10000) / (double)(1 + k % 1000);
}

int main(int argc, char **argv)
{
    const cdr_path *path =
        cdr_select_path(argc > 1 ? atoi(argv[1]) : 0, cdr_probe_cpu().best_path);
    static uint32_t words[N + 2];
    static uint8_t mask[N];
    static float f32[N], out32[N], sel32[N], aff32[N], act32[N];
    static double f64[N], out64[N], sel64[N], aff64[N], act64[N], z[N];
    static uint16_t f16[N], out16[N], bf16[N], outbf[N], act16[N];
    for (int64_t k = 0; k < N; k++) {
        f64[k] = value(k);
        f32[k] = (float)f64[k];
        f16[k] = cdr_f32_to_f16(f32[k]);
        bf16[k] = cdr_f32_to_bf16(f32[k]);
    }
    for (int stream = CDR_STREAM_XOSHIRO; stream <= CDR_STREAM_COUNTER; stream++) {
        const cdr_stream_loops *loops = &path->streams[stream];
        for (size_t s = 0; s < sizeof SEEDS / sizeof *SEEDS; s++) {
            const cdr_stream_key key = cdr_stream_key_of(SEEDS[s]);
            for (size_t o = 0; o < sizeof OFFSETS / sizeof *OFFSETS; o++) {
                const uint64_t offset = OFFSETS[o];
                for (size_t q = 0; q < sizeof PS / sizeof *PS; q++) {
                    const uint32_t threshold = (uint32_t)(PS[q] * 4294967296.0);
                    const double scale = 1.0 / (1.0 - PS[q]);
                    /* elements [offset, offset + N), split at block boundaries as the
                     * kernel's callers split them; the fused activation, relu then
                     * leaky_relu, alternating by piece */
                    int act = CDR_ACT_RELU;
                    for (int64_t at = 0; at < N; act = CDR_ACT_RELU + CDR_ACT_LEAKY - act) {
                        const uint64_t first = offset + (uint64_t)at;
                        int64_t n = (int64_t)(CDR_BLOCK - first % CDR_BLOCK);
                        if (n > N - at) n = N - at;
                        loops->raw(words + at, key, first, n);
                        loops->mask(mask + at, key, first, n, threshold);
                        loops->drop_f32(f32 + at, out32 + at, key, first, n, threshold,
                                        (float)scale);
                        loops->drop_f64(f64 + at, out64 + at, key, first, n, threshold,
                                        scale);
                        cdr_drop_through_f32(loops, path->widen_f16, path->narrow_f16,
                                             f16 + at, out16 + at, key, first, n,
                                             threshold, (float)scale);
                        cdr_drop_through_f32(loops, path->widen_bf16, path->narrow_bf16,
                                             bf16 + at, outbf + at, key, first, n,
                                             threshold, (float)scale);
                        cdr_drop_activated_f32(path, loops, act, 0.125f, f32 + at,
                                               act32 + at, key, first, n, threshold,
                                               (float)scale);
                        cdr_drop_activated_f64(path, loops, act, 0.125, f64 + at,
                                               act64 + at, key, first, n, threshold, scale);
                        cdr_drop_activated_through_f32(
                            path, loops, path->widen_f16, path->narrow_f16, act, 0.125f,
                            f16 + at, act16 + at, key, first, n, threshold, (float)scale);
                        at += n;
                    }
                    /* the mask-driven loops, on this mask: a select and an affine map */
                    path->select_f32(f32, sel32, mask, N, (float)scale);
                    path->select_f64(f64, sel64, mask, N, scale);
                    path->affine_f32(f32, aff32, mask, N, 1.5f, -0.25f, -1.75f);
                    path->affine_f64(f64, aff64, mask, N, 1.5, -0.25, -1.75);
                    emit(words, N * sizeof *words);
                    emit(mask, sizeof mask);
                    emit(sel32, sizeof sel32);
                    emit(sel64, sizeof sel64);
                    emit(aff32, sizeof aff32);
                    emit(aff64, sizeof aff64);
                    emit(out32, sizeof out32);
                    emit(out64, sizeof out64);
                    emit(out16, sizeof out16);
                    emit(outbf, sizeof outbf);
                    emit(act32, sizeof act32);
                    emit(act64, sizeof act64);
                    emit(act16, sizeof act16);
                }
                /* deviates: the words of elements (offset & ~1) onwards */
                const uint64_t even = offset & ~(uint64_t)1;
                for (int64_t at = 0; at < N + 2;) {
                    const uint64_t first = even + (uint64_t)at;
                    int64_t n = (int64_t)(CDR_BLOCK - first % CDR_BLOCK);
                    if (n > N + 2 - at) n = N + 2 - at;
                    loops->raw(words + at, key, first, n);
                    at += n;
                }
                path->gauss_fill(words, offset, N, z);
                emit(z, sizeof z);
            }
        }
    }
    return 0;
}
