/*
 * One ISA path of the xoshiro stream's block loops (raw words, keep mask, float32 and
 * float64 dropout, two blocks at once), a template: paths.h includes it once per path
 * with CDR_PATH (the name suffix) and CDR_VW (32-bit lanes per hardware vector) defined.
 * The sixteen xoshiro128++ lanes of a block (stream.h) are CDR_LANES / CDR_VW GNU C
 * vectors.
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

typedef struct {
    u32v s0[NV], s1[NV], s2[NV], s3[NV];
} P_(cdr_state_);

static inline __attribute__((always_inline)) void P_(cdr_seed_)(P_(cdr_state_) * st,
                                                                uint64_t key, uint64_t block)
{
    uint32_t w[4][CDR_LANES];
    cdr_seed_words(w, key, block);
    memcpy(st->s0, w[0], sizeof st->s0);
    memcpy(st->s1, w[1], sizeof st->s1);
    memcpy(st->s2, w[2], sizeof st->s2);
    memcpy(st->s3, w[3], sizeof st->s3);
}

/* One step of every lane; lane l's output lands in lane l of out. */
static inline __attribute__((always_inline)) void P_(cdr_next_)(P_(cdr_state_) * st,
                                                                u32v out[NV])
{
    for (int v = 0; v < NV; v++) {
        const u32v a = st->s0[v], b = st->s1[v], c = st->s2[v], d = st->s3[v];
        const u32v sum = a + d;
        out[v] = ((sum << 7) | (sum >> 25)) + a;
        /* xoshiro128's update (c ^= a; d ^= b; b ^= c; a ^= d; c ^= b << 9;
         * d = rotl(d, 11)) as three-input XORs, one AVX-512 instruction each
         * (vpternlogd). Each old word is last read where the word that replaces it is
         * made (b << 9 is taken first), so that gcc lets vpternlogd overwrite its first
         * operand rather than copy it into a new register. */
        const u32v b9 = b << 9, db = d ^ b;
        st->s1[v] = b ^ c ^ a;
        st->s2[v] = c ^ a ^ b9;
        st->s0[v] = a ^ db;
        st->s3[v] = (db << 11) | (db >> 21);
    }
}

/* The generator positioned at the step that holds element `j` of `block`. */
static inline __attribute__((always_inline)) void P_(cdr_seek_)(P_(cdr_state_) * st,
                                                                uint64_t key, uint64_t block,
                                                                int64_t j)
{
    u32v discard[NV];
    P_(cdr_seed_)(st, key, block);
    for (int64_t k = 0; k < j / CDR_LANES; k++) P_(cdr_next_)(st, discard);
}

/*
 * The walk over elements [first, first + n) of ONE block (the caller splits the work at
 * block boundaries): i is the index, relative to `first`, of lane 0 of the current step, so
 * it starts below zero when `first` is not a multiple of the lane count. Whole steps run
 * WHOLE_STEP on the vectors u; a step cut at either end runs ONE(k, w) on the elements k
 * inside the range, w being the step's outputs as an array.
 */
#define CDR_WALK(WHOLE_STEP, ONE)                                                          \
    do {                                                                                   \
        P_(cdr_state_) st;                                                                 \
        u32v u[NV];                                                                        \
        uint32_t w[CDR_LANES];                                                             \
        const int64_t j0 = (int64_t)(first % CDR_BLOCK);                                   \
        P_(cdr_seek_)(&st, key, first / CDR_BLOCK, j0);                                    \
        for (int64_t i = -(j0 % CDR_LANES); i < n; i += CDR_LANES) {                       \
            P_(cdr_next_)(&st, u);                                                         \
            if (i >= 0 && i + CDR_LANES <= n) {                                            \
                WHOLE_STEP                                                                 \
            } else {                                                                       \
                memcpy(w, u, sizeof w);                                                    \
                for (int64_t k = i < 0 ? 0 : i; k < i + CDR_LANES && k < n; k++)           \
                    ONE(k, w[k - i]);                                                      \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* The raw 32-bit outputs (tests and RNG batteries). */
static void P_(cdr_raw_)(uint32_t *dst, uint64_t key, uint64_t first, int64_t n)
{
#define CDR_RAW_ONE(k, word) (dst[k] = (word))
    CDR_WALK(memcpy(w, u, sizeof w); memcpy(dst + i, w, sizeof w);, CDR_RAW_ONE);
#undef CDR_RAW_ONE
}

/* The keep mask: 1 = kept, 0 = dropped. */
static void P_(cdr_mask_)(uint8_t *dst, uint64_t key, uint64_t first, int64_t n,
                          uint32_t threshold)
{
#define CDR_MASK_ONE(k, word) (dst[k] = (uint8_t)((word) >= threshold))
    CDR_WALK(memcpy(w, u, sizeof w); for (int l = 0; l < CDR_LANES; l++)
                 CDR_MASK_ONE(i + l, w[l]);, CDR_MASK_ONE);
#undef CDR_MASK_ONE
}

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
 * The dropout of one block's elements [first, first + n), for one float type.
 * Each step asks for the source ahead of the loop, as the prefetch policy in paths.h
 * chooses: half a block ahead without polluting the caches (prefetchnta, "far"), or 4 KB
 * ahead into L2 (prefetcht1, "near") for every cache line of the step (float64's span
 * two) and, into a separate output, for its lines too, for writing. A prefetch never
 * faults, so running past the array's end is harmless; the branches go the same way for
 * a whole call.
 */
#define CDR_DEFINE_DROP(NAME, FLOAT, UINT, SELECT)                                         \
    static void P_(NAME)(const FLOAT *src, FLOAT *dst, uint64_t key, uint64_t first,       \
                         int64_t n, uint32_t threshold, FLOAT scale)                       \
    {                                                                                      \
        typedef UINT cdr_bits; /* the float's bits, for CDR_DROP_ONE */                    \
        const u32v t = (u32v){0} + threshold;                                              \
        CDR_WALK(                                                                          \
            if (cdr_prefetch_far)                                                          \
                __builtin_prefetch(src + i + CDR_BLOCK / 2, 0, 0);                         \
            else                                                                           \
                for (int line = 0; line < (int)sizeof(FLOAT) * CDR_LANES; line += 64) {    \
                    __builtin_prefetch((const char *)(src + i) + cdr_prefetch_near + line, \
                                       0, 2);                                              \
                    if (dst != src)                                                        \
                        __builtin_prefetch((char *)(dst + i) + cdr_prefetch_near + line,   \
                                           1, 2);                                          \
                }                                                                          \
            for (int v = 0; v < NV; v++)                                                   \
                SELECT(dst + i + v * CDR_VW, src + i + v * CDR_VW, scale, u[v], t);,       \
            CDR_DROP_ONE);                                                                 \
    }

CDR_DEFINE_DROP(cdr_drop_f32_, float, uint32_t, CDR_SELECT_F32)
CDR_DEFINE_DROP(cdr_drop_f64_, double, uint64_t, CDR_SELECT_F64)

/*
 * Two whole blocks, `block` and `block + 1`, step by step together: one block's lanes form a
 * chain of dependent instructions whose latency, rather than the instruction count, sets
 * the pace in cache, and two chains hide it; out of cache the two memory streams run
 * slower than one block after the other, so callers use it on cache-resident calls only
 * (bench/NOTES.md, "Two blocks at once"). The bytes are those of two separate blocks:
 * each block's stream is a function of (key, block) alone. src[0] is block's first element.
 */
#define CDR_PAIR_LOOP(SELECT)                                                              \
    for (int64_t i = 0; i < CDR_BLOCK; i += CDR_LANES) {                                   \
        P_(cdr_next_)(&first, u);                                                          \
        P_(cdr_next_)(&second, w);                                                         \
        for (int v = 0; v < NV; v++) {                                                     \
            const int64_t at = i + v * CDR_VW;                                             \
            SELECT(dst + at, src + at, scale, u[v], t);                                    \
            SELECT(dst + CDR_BLOCK + at, src + CDR_BLOCK + at, scale, w[v], t);            \
        }                                                                                  \
    }
#define CDR_DEFINE_PAIR(NAME, FLOAT, SELECT, SELECT_MASKED)                                \
    static void P_(NAME)(const FLOAT *src, FLOAT *dst, uint64_t key, uint64_t block,       \
                         uint32_t threshold, FLOAT scale)                                  \
    {                                                                                      \
        P_(cdr_state_) first, second;                                                      \
        u32v u[NV], w[NV];                                                                 \
        const u32v t = (u32v){0} + threshold;                                              \
        P_(cdr_seed_)(&first, key, block);                                                 \
        P_(cdr_seed_)(&second, key, block + 1);                                            \
        if (CDR_MASKED_IN_PLACE && src == dst)                                             \
            CDR_PAIR_LOOP(SELECT_MASKED)                                                   \
        else                                                                               \
            CDR_PAIR_LOOP(SELECT)                                                          \
    }

CDR_DEFINE_PAIR(cdr_drop2_f32_, float, CDR_SELECT_F32, CDR_SELECT_F32_MASKED)
CDR_DEFINE_PAIR(cdr_drop2_f64_, double, CDR_SELECT_F64, CDR_SELECT_F64_MASKED)

#undef CDR_DEFINE_DROP
#undef CDR_DEFINE_PAIR
#undef CDR_PAIR_LOOP
#undef CDR_SELECT_F32_MASKED
#undef CDR_SELECT_F64_MASKED
#undef CDR_MASKED_IN_PLACE
#undef CDR_IN_REGISTER
#undef CDR_SELECT_F32
#undef CDR_SELECT_F64
#undef CDR_DROP_ONE
#undef CDR_WALK
#undef u32v
#undef NV
#undef P_
