/*
 * One ISA path of the counter stream's loops (raw words, keep mask, float32 and float64
 * dropout), a template: paths.h includes it once per path, after vectors.inc.h. The word
 * of element i is a function of (key, i) alone (stream.h, cdr_counter_word): a step's
 * sixteen words are the two 32-bit halves of eight SplitMix64 outputs, one 64-bit lane
 * each, computed from a counter that advances by 8 gamma a step. No lane depends on the
 * step before it, so out-of-order execution overlaps the steps, and nothing is seeded.
 */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the counter stream's loops read a 64-bit output's halves as two 32-bit lanes"
#endif

static inline __attribute__((always_inline)) P_(cdr_u64v_) P_(cdr_mix64v_)(P_(cdr_u64v_) z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The walk over elements [first, first + n) (vectors.inc.h says what a walk gives its
 * steps): z[v] holds, in 64-bit lane l, key + (pair + 1) * gamma for the pair of elements
 * in 32-bit lanes 2l and 2l + 1 of vector v, whose mix64 gives their words, low half
 * first (a little-endian reading). */
#define CDR_COUNTER_WALK(WHOLE_STEP, ONE)                                                  \
    do {                                                                                   \
        P_(cdr_u64v_) z[NV];                                                               \
        u32v u[NV];                                                                        \
        uint32_t w[CDR_LANES];                                                             \
        const int64_t j0 = (int64_t)(first % CDR_LANES);                                   \
        const uint64_t pair0 = (first - (uint64_t)j0) / 2;                                 \
        for (int v = 0; v < NV; v++)                                                       \
            for (int l = 0; l < CDR_VW / 2; l++)                                           \
                z[v][l] = key.key + (pair0 + (uint64_t)(v * CDR_VW / 2 + l) + 1) * key.gamma; \
        const uint64_t advance = (uint64_t)(CDR_LANES / 2) * key.gamma;                    \
        for (int64_t i = -j0; i < n; i += CDR_LANES) {                                     \
            for (int v = 0; v < NV; v++) {                                                 \
                u[v] = (u32v)P_(cdr_mix64v_)(z[v]);                                        \
                z[v] += advance;                                                           \
            }                                                                              \
            CDR_STEP(WHOLE_STEP, ONE);                                                     \
        }                                                                                  \
    } while (0)

CDR_DEFINE_STREAM_LOOPS(counter, CDR_COUNTER_WALK)

#undef CDR_COUNTER_WALK
