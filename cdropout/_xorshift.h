/*
 * cdropout's random stream: constants, seeding, the ISA dispatch table. Knows nothing of
 * Python or NumPy. The vectorised per-block loops are in _lanes.h, compiled once per ISA.
 *
 * The stream (docs/stream.md specifies it; cdropout/reference.py is its NumPy twin):
 *
 *   key        = mix64(seed + GAMMA)                 the first splitmix64 output for `seed`
 *   block      = element_index / CDR_BLOCK           element_index = offset + flat C index
 *   block_key  = mix64(key ^ fmix64(block))          keyed and non-additive: no seed can
 *                                                    replay another seed's stream shifted
 *   w[k]       = mix64(block_key + (k + 1) * GAMMA), k = 0 .. 2*CDR_LANES-1  (splitmix64)
 *   lane l     = xoshiro128++ with state (lo32 w[2l], hi32 w[2l], lo32 w[2l+1], hi32 w[2l+1])
 *   element j of the block (j = element_index % CDR_BLOCK) takes output number j / CDR_LANES
 *   of lane j % CDR_LANES: sixteen consecutive elements use one step of all sixteen lanes.
 *   drop iff that 32-bit output u < T, with T = round(p * 2**32).
 *
 * fmix64 (MurmurHash3's finaliser) differs from mix64 on purpose: with mix64(block + GAMMA)
 * the block hash of block b equals the key of seed b, so block s of every seed s would
 * share one stream (block_key = mix64(0)). A test pins that this family stays apart.
 *
 * A lane's state is never all zero: mix64 is a bijection with mix64(0) == 0, so w[2l] and
 * w[2l+1] are both zero only if block_key + (2l+1)*GAMMA and block_key + (2l+2)*GAMMA both are.
 *
 * xoshiro128++ rather than a `+` variant: its scrambler leaves every output bit of full
 * quality, so the whole 32-bit word can be compared with T. Sixteen 32-bit lanes fill one
 * AVX-512 register, two AVX2 or four SSE2 registers. The price, measured on this project's
 * AMD machine (in place, float32, 1 thread): the `+` scrambler would run the AVX2 path at
 * 0.131 rather than 0.156 ns per element in cache and 0.143 rather than 0.18 at 1e7 (1.4-1.6x
 * the floor rather than 1.6x), and change nothing on AVX-512 out of cache. Not enough to
 * bring the AVX2 path reliably under 1.5x at 1e7, so the stream stayed as it is.
 *
 * Block length: seeding a block costs 32 splitmix64 outputs, and starting in the middle of a
 * block (an `offset`, or a chunk boundary) first runs the lanes up to that point. 4096
 * elements keeps seeding near 1% of a block's time and a mid-block start under ~1 us.
 */
#ifndef CDROPOUT_XORSHIFT_H
#define CDROPOUT_XORSHIFT_H

#include <stdint.h>
#include <string.h>
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#include <immintrin.h> /* the AVX-512 path's masked multiply (_lanes.h) */
#endif

#define CDR_BLOCK 4096
#define CDR_LANES 16
#define CDR_GAMMA 0x9e3779b97f4a7c15ULL

/* Stafford's Mix13, the splitmix64 finaliser: a bijection on 64-bit words. */
static inline uint64_t cdr_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* MurmurHash3's fmix64, another bijection, for the block index. */
static inline uint64_t cdr_fmix64(uint64_t z)
{
    z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdULL;
    z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ULL;
    return z ^ (z >> 33);
}

static inline uint64_t cdr_key(uint64_t seed) { return cdr_mix64(seed + CDR_GAMMA); }

/* The seed of forward call number `counter` of a Dropout layer seeded with `seed`: keyed and
 * non-additive like the block hash, so that the calls of one layer, and the layers of
 * nearby seeds, get unrelated streams. */
static inline uint64_t cdr_call_seed(uint64_t seed, uint64_t counter)
{
    return cdr_mix64(seed ^ cdr_fmix64(counter + CDR_GAMMA));
}

/* The initial state of a block's lanes, word by word: w[0][l] is lane l's first word. */
static inline __attribute__((always_inline)) void cdr_seed_words(uint32_t w[4][CDR_LANES],
                                                                 uint64_t key, uint64_t block)
{
    const uint64_t block_key = cdr_mix64(key ^ cdr_fmix64(block));
    for (int l = 0; l < CDR_LANES; l++) {
        const uint64_t a = cdr_mix64(block_key + (uint64_t)(2 * l + 1) * CDR_GAMMA);
        const uint64_t b = cdr_mix64(block_key + (uint64_t)(2 * l + 2) * CDR_GAMMA);
        w[0][l] = (uint32_t)a;
        w[1][l] = (uint32_t)(a >> 32);
        w[2][l] = (uint32_t)b;
        w[3][l] = (uint32_t)(b >> 32);
    }
}

/*
 * How the out-of-cache dropout loop prefetches its source, chosen once at import by the
 * CPU's vendor (cdr_choose_prefetch; CDROPOUT_PREFETCH overrides it for A/B runs).
 * Measured in place, 1 thread, ratio to np.multiply(x, s, out=x), both builds in one
 * process:
 * - AMD EPYC (Zen 4, 2-core VM): half a block ahead with prefetchnta took 1e7/1e8
 *   float32 and float64 from 1.05-1.2x the floor (no prefetch) to 0.86-1.0x.
 * - Intel Xeon, 2-core VM (family 6 model 167, AVX-512; 2026-11-28): that same
 *   prefetchnta ran 1e8 at 2.4-2.9x (it fills L1 only and leaves the loop waiting on
 *   DRAM); prefetcht1 (into L2) 4 KB ahead: 0.99-1.01x float32, 1.00-1.15x float64 at
 *   1e7/1e8 (bench/floor.py); no prefetch 1.3-2.0x; a scan of 256 B to 8 KB ahead gave
 *   1.4-1.9x at 256 B and 0.95-1.16x from 512 B up, varying between runs.
 * - Intel Xeon, 16 cores (family 6 model 207, the device machine): one thread wants it
 *   farther: 1 KB ahead 1.18-1.38x, 4 KB 0.89-1.05x (far: 1.03-1.89x); 16 threads at
 *   1e8 0.83x float32 and 0.97x float64 of an OpenMP parallel floor (far: 1.44x, 1.91x).
 * So: 4 KB ahead into L2 on Intel (and elsewhere); non-temporal stores were 1.5-4x worse
 * (bench/floor.py). AMD keeps the far prefetch, as measured there; not measured on AMD since.
 */
static int cdr_prefetch_far = 0;
static int64_t cdr_prefetch_near = 4096; /* bytes ahead, prefetcht1 (settable for A/B) */

/* The vendor's choice: far (prefetchnta, half a block) on AMD, near elsewhere. */
static int cdr_vendor_prefetch_far(void)
{
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_is("amd");
#else
    return 0;
#endif
}

#define CDR_CAT_(a, b) a##b
#define CDR_CAT(a, b) CDR_CAT_(a, b)

/*
 * The ISA paths: the same C of _lanes.h compiled for another instruction set from one
 * portable -O3 build (never -march=native), each with the hardware's vector width, since
 * gcc lowers vectors wider than the hardware's through memory. All give the same bytes: the
 * dropout loops' only floating-point operation is one multiply, and _gauss.h uses only
 * correctly rounded operations.
 */
enum { CDR_ISA_BASELINE = 0, CDR_ISA_AVX2 = 1, CDR_ISA_AVX512 = 2 };

#define CDR_PATH baseline
#define CDR_VW 4 /* SSE2 on x86-64, NEON on arm64 */
#include "_gauss.h"
#include "_lanes.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CDR_HAVE_DISPATCH 1
#pragma GCC push_options
#pragma GCC target("avx2")
#define CDR_PATH avx2
#define CDR_VW 8
#include "_gauss.h"
#include "_lanes.h"
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")
#define CDR_PATH avx512
#define CDR_VW 16
#include "_gauss.h"
#include "_lanes.h"
#pragma GCC pop_options
#else
#define CDR_HAVE_DISPATCH 0
#endif

typedef struct {
    const char *name;
    void (*drop_f32)(const float *, float *, uint64_t, uint64_t, int64_t, uint32_t, float);
    void (*drop_f64)(const double *, double *, uint64_t, uint64_t, int64_t, uint32_t, double);
    void (*mask)(uint8_t *, uint64_t, uint64_t, int64_t, uint32_t);
    void (*raw)(uint32_t *, uint64_t, uint64_t, int64_t);
    /* two whole blocks at once: `block` and `block + 1`, src[0] being block's first */
    void (*drop2_f32)(const float *, float *, uint64_t, uint64_t, uint32_t, float);
    void (*drop2_f64)(const double *, double *, uint64_t, uint64_t, uint32_t, double);
    /* Gaussian deviates from stream words (_gauss.h) */
    void (*gauss_fill)(const uint32_t *, uint64_t, int64_t, double *);
} cdr_kernels;

#define CDR_PATH_ENTRY(P)                                                                  \
    {#P, cdr_drop_f32_##P, cdr_drop_f64_##P, cdr_mask_##P, cdr_raw_##P, cdr_drop2_f32_##P,  \
     cdr_drop2_f64_##P, cdr_gauss_fill_##P}
static const cdr_kernels cdr_paths[] = {
    CDR_PATH_ENTRY(baseline),
#if CDR_HAVE_DISPATCH
    CDR_PATH_ENTRY(avx2),
    CDR_PATH_ENTRY(avx512),
#endif
};

/* The best level this CPU runs. */
static int cdr_best_isa(void)
{
#if CDR_HAVE_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return CDR_ISA_AVX512;
    if (__builtin_cpu_supports("avx2")) return CDR_ISA_AVX2;
#endif
    return CDR_ISA_BASELINE;
}

/* The kernels of the highest level that is at most `requested` and that this CPU runs. */
static const cdr_kernels *cdr_select_isa(int requested)
{
    const int best = cdr_best_isa();
    return &cdr_paths[requested < best ? requested : best];
}

/* The 16-bit float types (_bfloat16.h, _float16.h): dropout of elements [first, first + n)
 * of ONE block (n <= CDR_BLOCK), widened into a float32 buffer on the stack, run by the
 * path's float32 loop (the same decisions and float32 products) and narrowed once by
 * the type's conversions. */
typedef void (*cdr_widen_fn)(const uint16_t *src, float *dst, int64_t n);
typedef void (*cdr_narrow_fn)(const float *src, uint16_t *dst, int64_t n);

static void cdr_drop_through_f32(const cdr_kernels *path, cdr_widen_fn widen,
                                 cdr_narrow_fn narrow, const uint16_t *src, uint16_t *dst,
                                 uint64_t key, uint64_t first, int64_t n, uint32_t threshold,
                                 float scale)
{
    float buffer[CDR_BLOCK];
    widen(src, buffer, n);
    path->drop_f32(buffer, buffer, key, first, n, threshold, scale);
    narrow(buffer, dst, n);
}

#endif /* CDROPOUT_XORSHIFT_H */
