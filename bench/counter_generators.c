/*
 * The counter-based generators considered for the counter stream, timed as the kernel
 * would run them: in-place float32 dropout, each generator's words computed from (key,
 * element index) alone, written with GNU C vectors of the target's width as the
 * kernel's loops are (src/*.inc.h), with the in-place multiply (the floor) and the
 * xoshiro128++ stream's lanes as baselines. Prints ns per element in cache (1e5
 * elements, calls back to back) and out of cache (1e7), on the AVX-512 and AVX2 targets.
 * docs/stream.md says what was chosen and why.
 *
 *   gcc -O3 -ffp-contract=off bench/counter_generators.c -o /tmp/gens && /tmp/gens
 *
 * The candidates, each published with a statistical record:
 *   splitmix64    mix64(start + (k + 1) * gamma), both 32-bit halves of each output:
 *                 java.util.SplittableRandom's stream (Steele, Lea, Flood 2014;
 *                 BigCrush); per-key start and gamma
 *   philox4x32    Philox-4x32 (Salmon, Moraes, Dror, Shaw 2011, Random123; BigCrush)
 *                 with 10 rounds (its default, cuRAND's, PyTorch's CUDA generator's)
 *                 and 7 (the fewest that passed Crush), four words per evaluation
 *   threefry2x32  Threefry-2x32 with 20 rounds (Random123; JAX's default generator)
 *                 and 13 (the fewest that passed Crush), two words per evaluation
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")
#define SUFFIX avx512
#define VW 16
#include "counter_generators.inc.h"
#undef SUFFIX
#undef VW
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2")
#define SUFFIX avx2
#define VW 8
#include "counter_generators.inc.h"
#undef SUFFIX
#undef VW
#pragma GCC pop_options

typedef void (*gen_fn)(float *, int64_t, uint32_t, float);

static void time_one(const char *label, gen_fn f, float *x, int64_t n)
{
    const int calls = n < 1000000 ? 300 : 3, repeats = 9;
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        const double start = now();
        for (int c = 0; c < calls; c++) f(x, n, 1u << 31, 1.0f);
        const double took = (now() - start) / calls / (double)n * 1e9;
        if (took < best) best = took;
    }
    printf("  %-16s %7.3f ns/element\n", label, best);
}

#define RUN(S, x, n)                                                                       \
    do {                                                                                   \
        time_one("floor", floor_##S, x, n);                                                \
        time_one("xoshiro128++", xoshiro_##S, x, n);                                       \
        time_one("splitmix64", splitmix_##S, x, n);                                        \
        time_one("philox4x32-10", philox10_##S, x, n);                                     \
        time_one("philox4x32-7", philox7_##S, x, n);                                       \
        time_one("threefry2x32-20", threefry20_##S, x, n);                                 \
        time_one("threefry2x32-13", threefry13_##S, x, n);                                 \
    } while (0)

int main(void)
{
    const int64_t sizes[2] = {100000, 10000000};
    __builtin_cpu_init();
    for (int s = 0; s < 2; s++) {
        const int64_t n = sizes[s];
        float *x = aligned_alloc(64, (size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) x[i] = 1.0f;
        if (__builtin_cpu_supports("avx512dq")) {
            printf("%lld elements, AVX-512, in place, float32, one thread\n", (long long)n);
            RUN(avx512, x, n);
        }
        printf("%lld elements, AVX2, in place, float32, one thread\n", (long long)n);
        RUN(avx2, x, n);
        free(x);
    }
    return 0;
}
