/*
 * One ISA path's vectors, a template: paths.h includes it once per path, with CDR_PATH
 * (the name suffix) and CDR_VW (32-bit lanes per hardware vector) defined, before the
 * streams' loops (xoshiro_loops.inc.h, counter_loops.inc.h), and vectors_end.inc.h after
 * them. It holds what every stream's loops share: the vector types, the select of one
 * vector and of one element (src * scale where kept, +0.0 elsewhere), the prefetch of a
 * step, and CDR_DEFINE_STREAM_LOOPS, which makes a stream's raw, mask and dropout loops
 * from its walk. A step is CDR_LANES (16) consecutive elements, NV vectors of words.
 */
#define P_(name) CDR_CAT(name, CDR_PATH)
#define NV (CDR_LANES / CDR_VW) /* vectors per step */

typedef uint32_t P_(cdr_u32v_) __attribute__((vector_size(CDR_VW * 4), aligned(4)));
typedef int32_t P_(cdr_i32half_) __attribute__((vector_size(CDR_VW * 2), aligned(4)));
typedef int64_t P_(cdr_i64v_) __attribute__((vector_size(CDR_VW * 4), aligned(8)));
typedef uint64_t P_(cdr_u64v_) __attribute__((vector_size(CDR_VW * 4), aligned(8)));
/* Unaligned, may-alias views of the arrays, read and written through plain assignments:
 * gcc routes a memcpy into a vector through the stack on some paths. */
typedef float P_(cdr_f32v_)
    __attribute__((vector_size(CDR_VW * 4), aligned(4), may_alias));
typedef double P_(cdr_f64v_)
    __attribute__((vector_size(CDR_VW * 4), aligned(8), may_alias));
typedef uint32_t P_(cdr_u32mem_)
    __attribute__((vector_size(CDR_VW * 4), aligned(4), may_alias));
typedef uint64_t P_(cdr_u64mem_)
    __attribute__((vector_size(CDR_VW * 4), aligned(8), may_alias));
#define u32v P_(cdr_u32v_)

/*
 * The hot loops. Kept elements become src * scale, dropped ones +0.0, through a bitwise AND
 * with an all-ones or all-zeros lane mask: a multiply by zero would turn a dropped inf into
 * NaN. src and dst are the same array or disjoint ones.
 */
#define CDR_DROP_ONE(k, word)                                                              \
    do {                                                                                   \
        const __typeof__(scale) y = src[k] * scale;                                        \
        cdr_bits bits;                                                                     \
        memcpy(&bits, &y, sizeof bits);                                                    \
        bits &= (cdr_bits)0 - (cdr_bits)((word) >= threshold);                             \
        memcpy(&dst[k], &bits, sizeof bits);                                               \
    } while (0)

/* One vector of the select: src * scale where u >= t, +0.0 elsewhere, through a bitwise
 * AND with the all-ones or all-zeros lane mask (out of place, the AVX-512 masked multiply
 * below ran slower: bench/NOTES.md, "The AVX-512 select"). */
#define CDR_SELECT_F32(d, s, scale, u, t)                                                  \
    (*(P_(cdr_u32mem_) *)(d) =                                                             \
         (u32v)(*(const P_(cdr_f32v_) *)(s) * (scale)) & (u32v)((u) >= (t)))
/* float64: each vector of 32-bit lane masks widens to two vectors of 64-bit ones */
#define CDR_SELECT_F64(d, s, scale, u, t)                                                  \
    do {                                                                                   \
        const u32v keep = (u32v)((u) >= (t));                                              \
        P_(cdr_i32half_) half[2];                                                          \
        memcpy(half, &keep, sizeof half);                                                  \
        for (int h = 0; h < 2; h++)                                                        \
            *(P_(cdr_u64mem_) *)((d) + h * (CDR_VW / 2)) =                                 \
                (P_(cdr_u64v_))(*(const P_(cdr_f64v_) *)((s) + h * (CDR_VW / 2)) * (scale)) & \
                (P_(cdr_u64v_))__builtin_convertvector(half[h], P_(cdr_i64v_));            \
    } while (0)

#if CDR_VW == 16
/*
 * AVX-512, in place: the compare writes a mask register and a zero-masked multiply applies
 * it, one instruction where the AND takes two, and float64 needs no widened masks; into a
 * separate output it ran slower, so only in-place calls take it (bench/NOTES.md, "The
 * AVX-512 select"). The empty asm keeps gcc from folding the source's load into the
 * masked multiply, which would make it a masked load. A kept lane gets the same
 * multiply: the same bytes.
 */
#define CDR_IN_REGISTER(x) __asm__("" : "+v"(x))
#define CDR_SELECT_F32_MASKED(d, s, scale, u, t)                                           \
    do {                                                                                   \
        __m512 x = _mm512_loadu_ps(s);                                                     \
        CDR_IN_REGISTER(x);                                                                \
        _mm512_storeu_ps((d), _mm512_maskz_mul_ps(                                         \
                                  _mm512_cmpge_epu32_mask((__m512i)(u), (__m512i)(t)), x,  \
                                  _mm512_set1_ps(scale)));                                 \
    } while (0)
#define CDR_SELECT_F64_MASKED(d, s, scale, u, t)                                           \
    do {                                                                                   \
        const __mmask16 keep = _mm512_cmpge_epu32_mask((__m512i)(u), (__m512i)(t));        \
        for (int h = 0; h < 2; h++) {                                                      \
            __m512d x = _mm512_loadu_pd((s) + 8 * h);                                      \
            CDR_IN_REGISTER(x);                                                            \
            _mm512_storeu_pd((d) + 8 * h, _mm512_maskz_mul_pd((__mmask8)(keep >> 8 * h), x, \
                                                              _mm512_set1_pd(scale)));     \
        }                                                                                  \
    } while (0)
#define CDR_MASKED_IN_PLACE 1
#else
#define CDR_SELECT_F32_MASKED CDR_SELECT_F32
#define CDR_SELECT_F64_MASKED CDR_SELECT_F64
#define CDR_MASKED_IN_PLACE 0
#endif

/*
 * The prefetch of one step of a dropout loop, as the prefetch policy in paths.h chooses,
 * for every cache line of the step (float64's span two): half a block ahead without
 * polluting the caches (prefetchnta, "far"), or 4 KB ahead into L2 (prefetcht1, "near")
 * and, into a separate output, the output's lines too, for writing. A prefetch never faults,
 * so running past the array's end is harmless; the branches go the same way for a whole
 * call.
 */
#define CDR_PREFETCH_STEP(FLOAT)                                                           \
    do {                                                                                   \
        if (cdr_prefetch_far)                                                              \
            for (int line = 0; line < (int)sizeof(FLOAT) * CDR_LANES; line += 64)          \
                __builtin_prefetch((const char *)(src + i + CDR_BLOCK / 2) + line, 0, 0);  \
        else                                                                               \
            for (int line = 0; line < (int)sizeof(FLOAT) * CDR_LANES; line += 64) {        \
                __builtin_prefetch((const char *)(src + i) + cdr_prefetch_near + line, 0,  \
                                   2);                                                     \
                if (dst != src)                                                            \
                    __builtin_prefetch((char *)(dst + i) + cdr_prefetch_near + line, 1,    \
                                       2);                                                 \
            }                                                                              \
    } while (0)

/*
 * One step of a walk, once its words are in u[NV]: WHOLE_STEP when the step's elements
 * all lie in [0, n), else ONE(k, w[k - i]) for each of its elements k that do (a step
 * cut at either end), through w, the words as an array. Both streams' walks end so.
 */
#define CDR_STEP(WHOLE_STEP, ONE)                                                          \
    do {                                                                                   \
        if (i >= 0 && i + CDR_LANES <= n) {                                                \
            WHOLE_STEP                                                                     \
        } else {                                                                           \
            memcpy(w, u, sizeof w);                                                        \
            for (int64_t k = i < 0 ? 0 : i; k < i + CDR_LANES && k < n; k++)               \
                ONE(k, w[k - i]);                                                          \
        }                                                                                  \
    } while (0)

/*
 * A stream's loops over elements [first, first + n) (within one block, as the callers
 * split the work), made from its walk: WALK(WHOLE_STEP, ONE) runs over the steps that
 * hold those elements, with i the index, relative to `first`, of the step's first element
 * (below zero when `first` is not a step's first), the step's words in the vectors u[NV]
 * for a whole step, and ONE(k, w[k - i]) for each element k of a step cut at either end,
 * w being the words as an array.
 */
#define CDR_DEFINE_STREAM_LOOPS(STREAM, WALK)                                              \
    /* the raw 32-bit words (tests and RNG batteries) */                                   \
    static void P_(cdr_##STREAM##_raw_)(uint32_t *dst, cdr_stream_key key, uint64_t first, \
                                        int64_t n)                                         \
    {                                                                                      \
        WALK(memcpy(w, u, sizeof w); memcpy(dst + i, w, sizeof w);, CDR_RAW_ONE);          \
    }                                                                                      \
    /* the keep mask: 1 = kept, 0 = dropped */                                             \
    static void P_(cdr_##STREAM##_mask_)(uint8_t *dst, cdr_stream_key key, uint64_t first, \
                                         int64_t n, uint32_t threshold)                    \
    {                                                                                      \
        WALK(memcpy(w, u, sizeof w);                                                       \
             for (int l = 0; l < CDR_LANES; l++) CDR_MASK_ONE(i + l, w[l]);, CDR_MASK_ONE); \
    }                                                                                      \
    CDR_DEFINE_DROP(STREAM, f32, float, uint32_t, CDR_SELECT_F32, CDR_SELECT_F32_MASKED,   \
                    WALK)                                                                  \
    CDR_DEFINE_DROP(STREAM, f64, double, uint64_t, CDR_SELECT_F64, CDR_SELECT_F64_MASKED,  \
                    WALK)
#define CDR_RAW_ONE(k, word) (dst[k] = (word))
#define CDR_MASK_ONE(k, word) (dst[k] = (uint8_t)((word) >= threshold))
/* the dropout of one float type, in place (the masked select where the path has one)
 * or into a disjoint dst */
#define CDR_DEFINE_DROP(STREAM, SUFFIX, FLOAT, UINT, SELECT, SELECT_MASKED, WALK)          \
    static void P_(cdr_##STREAM##_drop_##SUFFIX##_)(const FLOAT *src, FLOAT *dst,          \
                                                    cdr_stream_key key, uint64_t first,    \
                                                    int64_t n, uint32_t threshold,         \
                                                    FLOAT scale)                           \
    {                                                                                      \
        typedef UINT cdr_bits; /* the float's bits, for CDR_DROP_ONE */                    \
        const u32v t = (u32v){0} + threshold;                                              \
        if (CDR_MASKED_IN_PLACE && src == dst)                                             \
            WALK(CDR_PREFETCH_STEP(FLOAT); for (int v = 0; v < NV; v++) SELECT_MASKED(     \
                     dst + i + v * CDR_VW, src + i + v * CDR_VW, scale, u[v], t);,         \
                 CDR_DROP_ONE);                                                            \
        else                                                                               \
            WALK(CDR_PREFETCH_STEP(FLOAT); for (int v = 0; v < NV; v++)                    \
                     SELECT(dst + i + v * CDR_VW, src + i + v * CDR_VW, scale, u[v], t);,  \
                 CDR_DROP_ONE);                                                            \
    }
