/*
 * One ISA path of the loops that apply a mask given as one byte per element (1 = kept),
 * a template: paths.h includes it once per path with CDR_PATH defined. For the variants
 * whose mask is drawn first: broadcast dropout (the mask over noise_shape, laid along a
 * run of x) and alpha dropout. The selects are bitwise, as in the dropout loops: a
 * multiply by zero would turn a dropped inf into NaN, and a ternary keeps gcc from
 * vectorising.
 */
#define P_(name) CDR_CAT(name, CDR_PATH)

#define CDR_DEFINE_SELECT(NAME, FLOAT, UINT)                                               \
    static void P_(NAME)(const FLOAT *src, FLOAT *dst, const uint8_t *keep, int64_t n,         \
                     FLOAT scale)                                                          \
    {                                                                                      \
        /* src is dst (in place) or disjoint from it: element j is read before it is       \
         * written and no other element is touched, so no alias check is needed */         \
        _Pragma("GCC ivdep")                                                               \
        for (int64_t j = 0; j < n; j++) {                                                  \
            const FLOAT y = src[j] * scale;                                                \
            UINT bits;                                                                     \
            memcpy(&bits, &y, sizeof bits);                                                \
            bits &= (UINT)0 - (UINT)(keep[j] != 0);                                        \
            memcpy(&dst[j], &bits, sizeof bits);                                           \
        }                                                                                  \
    }

CDR_DEFINE_SELECT(cdr_select_f32_, float, uint32_t)
CDR_DEFINE_SELECT(cdr_select_f64_, double, uint64_t)

/* Alpha dropout: dst[j] = src[j] * a + b where kept (two roundings: the build passes
 * -ffp-contract=off, as NumPy multiplies and adds separately), the constant c elsewhere. */
#define CDR_DEFINE_AFFINE(NAME, FLOAT, UINT)                                               \
    static void P_(NAME)(const FLOAT *src, FLOAT *dst, const uint8_t *keep, int64_t n, FLOAT a, \
                     FLOAT b, FLOAT c)                                                     \
    {                                                                                      \
        UINT fill;                                                                         \
        memcpy(&fill, &c, sizeof fill);                                                    \
        _Pragma("GCC ivdep") /* as in the select: src is dst or disjoint from it */        \
        for (int64_t j = 0; j < n; j++) {                                                  \
            const FLOAT y = src[j] * a + b;                                                \
            UINT bits;                                                                     \
            memcpy(&bits, &y, sizeof bits);                                                \
            const UINT mask = (UINT)0 - (UINT)(keep[j] != 0);                              \
            bits = (bits & mask) | (fill & ~mask);                                         \
            memcpy(&dst[j], &bits, sizeof bits);                                           \
        }                                                                                  \
    }

CDR_DEFINE_AFFINE(cdr_affine_f32_, float, uint32_t)
CDR_DEFINE_AFFINE(cdr_affine_f64_, double, uint64_t)

#undef CDR_DEFINE_SELECT
#undef CDR_DEFINE_AFFINE
#undef P_
