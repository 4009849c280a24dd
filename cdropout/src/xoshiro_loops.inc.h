/*
 * One ISA path of the xoshiro stream's loops (raw words, keep mask, float32 and float64
 * dropout, two blocks at once), a template: paths.h includes it once per path, after
 * vectors.inc.h. The sixteen xoshiro128++ lanes of a block (stream.h) are NV vectors.
 */
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

/* The walk over elements [first, first + n) of ONE block (vectors.inc.h says what a walk
 * gives its steps): the block's lanes, seeded and run up to the step of `first`. */
#define CDR_XOSHIRO_WALK(WHOLE_STEP, ONE)                                                  \
    do {                                                                                   \
        P_(cdr_state_) st;                                                                 \
        u32v u[NV];                                                                        \
        uint32_t w[CDR_LANES];                                                             \
        const int64_t j0 = (int64_t)(first % CDR_BLOCK);                                   \
        P_(cdr_seek_)(&st, key.key, first / CDR_BLOCK, j0);                                \
        for (int64_t i = -(j0 % CDR_LANES); i < n; i += CDR_LANES) {                       \
            P_(cdr_next_)(&st, u);                                                         \
            CDR_STEP(WHOLE_STEP, ONE);                                                     \
        }                                                                                  \
    } while (0)

CDR_DEFINE_STREAM_LOOPS(xoshiro, CDR_XOSHIRO_WALK)

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
    static void P_(NAME)(const FLOAT *src, FLOAT *dst, cdr_stream_key key, uint64_t block, \
                         uint32_t threshold, FLOAT scale)                                  \
    {                                                                                      \
        P_(cdr_state_) first, second;                                                      \
        u32v u[NV], w[NV];                                                                 \
        const u32v t = (u32v){0} + threshold;                                              \
        P_(cdr_seed_)(&first, key.key, block);                                             \
        P_(cdr_seed_)(&second, key.key, block + 1);                                        \
        if (CDR_MASKED_IN_PLACE && src == dst)                                             \
            CDR_PAIR_LOOP(SELECT_MASKED)                                                   \
        else                                                                               \
            CDR_PAIR_LOOP(SELECT)                                                          \
    }

CDR_DEFINE_PAIR(cdr_xoshiro_drop2_f32_, float, CDR_SELECT_F32, CDR_SELECT_F32_MASKED)
CDR_DEFINE_PAIR(cdr_xoshiro_drop2_f64_, double, CDR_SELECT_F64, CDR_SELECT_F64_MASKED)

#undef CDR_DEFINE_PAIR
#undef CDR_PAIR_LOOP
#undef CDR_XOSHIRO_WALK
