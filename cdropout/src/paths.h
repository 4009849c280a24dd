/*
 * The ISA paths and how one is chosen: every loop of the kernel compiled once per
 * instruction set from one portable -O3 build (never -march=native), gathered in one
 * table per path, and one probe of the CPU that picks the path and the prefetch policy.
 * Knows nothing of Python or NumPy; cdropout/_kernel.pyx calls the table's entries.
 *
 * A new ISA: a CDR_PATH block below (its name, vector width and target pragma), its row in
 * cdr_paths and its test in cdr_probe_cpu. A new loop: an entry of cdr_path, defined in a
 * per-path template (*.inc.h) and named in CDR_PATH_ENTRY. Every path gives the same
 * bytes: the dropout loops' only floating-point operation is one multiply, the Gaussian
 * deviates use only correctly rounded operations, and the conversions are exact or
 * rounded once.
 */
#ifndef CDROPOUT_PATHS_H
#define CDROPOUT_PATHS_H

#include <stdint.h>
#include <string.h>

#include "gauss.h"
#include "half_floats.h"
#include "stream.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CDR_HAVE_DISPATCH 1 /* gcc's target pragmas compile the x86-64 paths */
#include <immintrin.h>      /* AVX-512's masked multiply, F16C's conversions */
#else
#define CDR_HAVE_DISPATCH 0 /* the portable baseline path alone (clang, arm64: NEON) */
#endif

#define CDR_CAT_(a, b) a##b
#define CDR_CAT(a, b) CDR_CAT_(a, b)

/*
 * The prefetch policy of the out-of-cache dropout loops, set once at import from the CPU
 * probe's vendor (CDROPOUT_PREFETCH overrides it): "far", half a block ahead without
 * polluting the caches (prefetchnta), on AMD; "near", 4 KB ahead into L2 (prefetcht1),
 * elsewhere, where prefetchnta fills L1 only and left the loop waiting on memory. The
 * measurements behind it are in bench/NOTES.md ("Prefetch"); neither choice changes a byte.
 */
static int cdr_prefetch_far = 0;
static int64_t cdr_prefetch_near = 4096; /* bytes ahead, prefetcht1 (settable for A/B) */

#define CDR_PATH baseline
#define CDR_VW 4 /* SSE2 on x86-64, NEON on arm64 */
#include "convert.inc.h"
#include "gauss.inc.h"
#include "select.inc.h"
#include "xoshiro_loops.inc.h"
#undef CDR_PATH
#undef CDR_VW

#if CDR_HAVE_DISPATCH
#pragma GCC push_options
#pragma GCC target("avx2,f16c")
#define CDR_PATH avx2
#define CDR_VW 8
#define CDR_F16C 1
#include "convert.inc.h"
#include "gauss.inc.h"
#include "select.inc.h"
#include "xoshiro_loops.inc.h"
#undef CDR_PATH
#undef CDR_VW
#undef CDR_F16C
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,f16c")
#define CDR_PATH avx512
#define CDR_VW 16
#define CDR_F16C 1
#include "convert.inc.h"
#include "gauss.inc.h"
#include "select.inc.h"
#include "xoshiro_loops.inc.h"
#undef CDR_PATH
#undef CDR_VW
#undef CDR_F16C
#pragma GCC pop_options
#endif

enum { CDR_ISA_BASELINE = 0, CDR_ISA_AVX2 = 1, CDR_ISA_AVX512 = 2 };

/* The loops of one path. */
typedef struct {
    const char *name;
    /* the xoshiro stream: elements [first, first + n) of ONE block */
    void (*drop_f32)(const float *, float *, uint64_t, uint64_t, int64_t, uint32_t, float);
    void (*drop_f64)(const double *, double *, uint64_t, uint64_t, int64_t, uint32_t, double);
    void (*mask)(uint8_t *, uint64_t, uint64_t, int64_t, uint32_t);
    void (*raw)(uint32_t *, uint64_t, uint64_t, int64_t);
    /* two whole blocks at once: `block` and `block + 1`, src[0] being block's first */
    void (*drop2_f32)(const float *, float *, uint64_t, uint64_t, uint32_t, float);
    void (*drop2_f64)(const double *, double *, uint64_t, uint64_t, uint32_t, double);
    /* Gaussian deviates from stream words */
    void (*gauss_fill)(const uint32_t *, uint64_t, int64_t, double *);
    /* a one-byte-per-element mask applied: broadcast dropout and alpha dropout */
    void (*select_f32)(const float *, float *, const uint8_t *, int64_t, float);
    void (*select_f64)(const double *, double *, const uint8_t *, int64_t, double);
    void (*affine_f32)(const float *, float *, const uint8_t *, int64_t, float, float,
                       float);
    void (*affine_f64)(const double *, double *, const uint8_t *, int64_t, double, double,
                       double);
    /* the 16-bit float types to and from float32 */
    void (*widen_bf16)(const uint16_t *, float *, int64_t);
    void (*narrow_bf16)(const float *, uint16_t *, int64_t);
    void (*widen_f16)(const uint16_t *, float *, int64_t);
    void (*narrow_f16)(const float *, uint16_t *, int64_t);
} cdr_path;

#define CDR_PATH_ENTRY(P)                                                                  \
    {#P,                  cdr_drop_f32_##P,   cdr_drop_f64_##P,   cdr_mask_##P,           \
     cdr_raw_##P,         cdr_drop2_f32_##P,  cdr_drop2_f64_##P,  cdr_gauss_fill_##P,     \
     cdr_select_f32_##P,  cdr_select_f64_##P, cdr_affine_f32_##P, cdr_affine_f64_##P,     \
     cdr_widen_bf16_##P,  cdr_narrow_bf16_##P, cdr_widen_f16_##P, cdr_narrow_f16_##P}
static const cdr_path cdr_paths[] = {
    CDR_PATH_ENTRY(baseline),
#if CDR_HAVE_DISPATCH
    CDR_PATH_ENTRY(avx2),
    CDR_PATH_ENTRY(avx512),
#endif
};

/* What the CPU offers, probed once (cdr_probe_cpu): the best path it runs, and whether
 * its vendor wants the far prefetch. */
typedef struct {
    int best_path;
    int prefetch_far;
} cdr_cpu_info;

static cdr_cpu_info cdr_probe_cpu(void)
{
    cdr_cpu_info cpu = {CDR_ISA_BASELINE, 0};
#if CDR_HAVE_DISPATCH
    __builtin_cpu_init();
    const int f16c = __builtin_cpu_supports("f16c");
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && f16c)
        cpu.best_path = CDR_ISA_AVX512;
    else if (__builtin_cpu_supports("avx2") && f16c)
        cpu.best_path = CDR_ISA_AVX2;
    cpu.prefetch_far = __builtin_cpu_is("amd");
#endif
    return cpu;
}

/* The path of the highest level that is at most `requested` and at most `best`. */
static const cdr_path *cdr_select_path(int requested, int best)
{
    return &cdr_paths[requested < best ? requested : best];
}

/* Dropout of a 16-bit float type, elements [first, first + n) of ONE block (n <=
 * CDR_BLOCK): widened into a float32 buffer on the stack, run by the path's float32 loop
 * (the same decisions and float32 products) and narrowed once. */
typedef void (*cdr_widen_fn)(const uint16_t *src, float *dst, int64_t n);
typedef void (*cdr_narrow_fn)(const float *src, uint16_t *dst, int64_t n);

static void cdr_drop_through_f32(const cdr_path *path, cdr_widen_fn widen,
                                 cdr_narrow_fn narrow, const uint16_t *src, uint16_t *dst,
                                 uint64_t key, uint64_t first, int64_t n, uint32_t threshold,
                                 float scale)
{
    float buffer[CDR_BLOCK];
    widen(src, buffer, n);
    path->drop_f32(buffer, buffer, key, first, n, threshold, scale);
    narrow(buffer, dst, n);
}

#endif /* CDROPOUT_PATHS_H */
