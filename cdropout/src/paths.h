/*
 * The ISA paths and how one is chosen: every loop of the kernel compiled once per
 * instruction set from one portable -O3 build (never -march=native), gathered in one
 * table per path, and one probe of the CPU that picks the path and the prefetch policy.
 * Knows nothing of Python or NumPy; cdropout/_kernel.pyx calls the table's entries.
 *
 * A new ISA: a CDR_PATH block below (its name, vector width and target pragma), its row in
 * cdr_paths and its test in cdr_probe_cpu. A new loop: an entry of cdr_path, defined in a
 * per-path template (*.inc.h) and named in CDR_PATH_ENTRY; a new stream: a walk in a
 * template of its own (as counter_loops.inc.h) and a row of cdr_path's streams. Every
 * path gives the same bytes: the dropout loops' only floating-point operation is one
 * multiply, the Gaussian deviates use only correctly rounded operations, and the
 * conversions are exact or rounded once.
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
#include "activation.inc.h"
#include "convert.inc.h"
#include "gauss.inc.h"
#include "select.inc.h"
#include "vectors.inc.h"
#include "counter_loops.inc.h"
#include "xoshiro_loops.inc.h"
#include "vectors_end.inc.h"
#undef CDR_PATH
#undef CDR_VW

#if CDR_HAVE_DISPATCH
#pragma GCC push_options
#pragma GCC target("avx2,f16c")
#define CDR_PATH avx2
#define CDR_VW 8
#define CDR_F16C 1
#include "activation.inc.h"
#include "convert.inc.h"
#include "gauss.inc.h"
#include "select.inc.h"
#include "vectors.inc.h"
#include "counter_loops.inc.h"
#include "xoshiro_loops.inc.h"
#include "vectors_end.inc.h"
#undef CDR_PATH
#undef CDR_VW
#undef CDR_F16C
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,f16c")
#define CDR_PATH avx512
#define CDR_VW 16
#define CDR_F16C 1
#include "activation.inc.h"
#include "convert.inc.h"
#include "gauss.inc.h"
#include "select.inc.h"
#include "vectors.inc.h"
#include "counter_loops.inc.h"
#include "xoshiro_loops.inc.h"
#include "vectors_end.inc.h"
#undef CDR_PATH
#undef CDR_VW
#undef CDR_F16C
#pragma GCC pop_options
#endif

enum { CDR_ISA_BASELINE = 0, CDR_ISA_AVX2 = 1, CDR_ISA_AVX512 = 2 };
enum { CDR_STREAM_XOSHIRO = 0, CDR_STREAM_COUNTER = 1 };

/* A stream's loops on one path: elements [first, first + n) of ONE block. */
typedef struct {
    void (*drop_f32)(const float *, float *, cdr_stream_key, uint64_t, int64_t, uint32_t,
                     float);
    void (*drop_f64)(const double *, double *, cdr_stream_key, uint64_t, int64_t, uint32_t,
                     double);
    void (*mask)(uint8_t *, cdr_stream_key, uint64_t, int64_t, uint32_t);
    void (*raw)(uint32_t *, cdr_stream_key, uint64_t, int64_t);
    /* two whole blocks at once, `block` and `block + 1`, src[0] being block's first: the
     * xoshiro stream's latency hidden in cache (NULL for a stream without one) */
    void (*drop2_f32)(const float *, float *, cdr_stream_key, uint64_t, uint32_t, float);
    void (*drop2_f64)(const double *, double *, cdr_stream_key, uint64_t, uint32_t, double);
} cdr_stream_loops;

/* The loops of one path. */
typedef struct {
    const char *name;
    cdr_stream_loops streams[2]; /* by CDR_STREAM_* */
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
    /* activations fused with dropout */
    void (*relu_f32)(const float *, float *, int64_t);
    void (*relu_f64)(const double *, double *, int64_t);
    void (*leaky_f32)(const float *, float *, int64_t, float);
    void (*leaky_f64)(const double *, double *, int64_t, double);
} cdr_path;

#define CDR_PATH_ENTRY(P)                                                                  \
    {#P,                                                                                   \
     {{cdr_xoshiro_drop_f32_##P, cdr_xoshiro_drop_f64_##P, cdr_xoshiro_mask_##P,           \
       cdr_xoshiro_raw_##P, cdr_xoshiro_drop2_f32_##P, cdr_xoshiro_drop2_f64_##P},         \
      {cdr_counter_drop_f32_##P, cdr_counter_drop_f64_##P, cdr_counter_mask_##P,           \
       cdr_counter_raw_##P, NULL, NULL}},                                                  \
     cdr_gauss_fill_##P,                                                                   \
     cdr_select_f32_##P,                                                                   \
     cdr_select_f64_##P,                                                                   \
     cdr_affine_f32_##P,                                                                   \
     cdr_affine_f64_##P,                                                                   \
     cdr_widen_bf16_##P,                                                                   \
     cdr_narrow_bf16_##P,                                                                  \
     cdr_widen_f16_##P,                                                                    \
     cdr_narrow_f16_##P,                                                                   \
     cdr_relu_f32_##P,                                                                     \
     cdr_relu_f64_##P,                                                                     \
     cdr_leaky_f32_##P,                                                                    \
     cdr_leaky_f64_##P}
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
 * CDR_BLOCK): widened into a float32 buffer on the stack, run by the stream's float32
 * loop (the same decisions and float32 products) and narrowed once. */
typedef void (*cdr_widen_fn)(const uint16_t *src, float *dst, int64_t n);
typedef void (*cdr_narrow_fn)(const float *src, uint16_t *dst, int64_t n);

static void cdr_drop_through_f32(const cdr_stream_loops *loops, cdr_widen_fn widen,
                                 cdr_narrow_fn narrow, const uint16_t *src, uint16_t *dst,
                                 cdr_stream_key key, uint64_t first, int64_t n,
                                 uint32_t threshold, float scale)
{
    float buffer[CDR_BLOCK];
    widen(src, buffer, n);
    loops->drop_f32(buffer, buffer, key, first, n, threshold, scale);
    narrow(buffer, dst, n);
}

/* The activation fused with dropout: none, relu or leaky_relu (activation.inc.h). */
enum { CDR_ACT_NONE = 0, CDR_ACT_RELU = 1, CDR_ACT_LEAKY = 2 };

/* Dropout of act(src), elements [first, first + n) of ONE block: the activation into a
 * buffer on the stack, which stays in cache, then the stream's loop from it into dst, so
 * that the array is read and written once. */
static void cdr_drop_activated_f32(const cdr_path *path, const cdr_stream_loops *loops,
                                   int act, float slope, const float *src, float *dst,
                                   cdr_stream_key key, uint64_t first, int64_t n,
                                   uint32_t threshold, float scale)
{
    float buffer[CDR_BLOCK];
    if (act == CDR_ACT_RELU)
        path->relu_f32(src, buffer, n);
    else
        path->leaky_f32(src, buffer, n, slope);
    loops->drop_f32(buffer, dst, key, first, n, threshold, scale);
}

static void cdr_drop_activated_f64(const cdr_path *path, const cdr_stream_loops *loops,
                                   int act, double slope, const double *src, double *dst,
                                   cdr_stream_key key, uint64_t first, int64_t n,
                                   uint32_t threshold, double scale)
{
    double buffer[CDR_BLOCK];
    if (act == CDR_ACT_RELU)
        path->relu_f64(src, buffer, n);
    else
        path->leaky_f64(src, buffer, n, slope);
    loops->drop_f64(buffer, dst, key, first, n, threshold, scale);
}

/* The same for a 16-bit float type, through float32 as cdr_drop_through_f32: the
 * activation in float32, leaky_relu's product rounded to the 16-bit type (PyTorch
 * rounds its result, then the dropout reads it), relu exact. */
static void cdr_drop_activated_through_f32(const cdr_path *path, const cdr_stream_loops *loops,
                                           cdr_widen_fn widen, cdr_narrow_fn narrow, int act,
                                           float slope, const uint16_t *src, uint16_t *dst,
                                           cdr_stream_key key, uint64_t first, int64_t n,
                                           uint32_t threshold, float scale)
{
    float buffer[CDR_BLOCK];
    uint16_t rounded[CDR_BLOCK];
    widen(src, buffer, n);
    if (act == CDR_ACT_RELU) {
        path->relu_f32(buffer, buffer, n);
    } else {
        path->leaky_f32(buffer, buffer, n, slope);
        narrow(buffer, rounded, n);
        widen(rounded, buffer, n);
    }
    loops->drop_f32(buffer, buffer, key, first, n, threshold, scale);
    narrow(buffer, dst, n);
}

#endif /* CDROPOUT_PATHS_H */
