/*
 * One ISA path of the activations that dropout can be fused with, a template: paths.h
 * includes it once per path with CDR_PATH defined. Each loop writes act(src) into dst,
 * by bits as PyTorch computes them: relu(x) = x < 0 ? +0.0 : x (so -0.0 and NaN pass
 * through), leaky_relu(x) = x > 0 ? x : x * slope (one multiply, rounded). The fused
 * dropout runs one of them on a block held in cache, then the stream's dropout loop.
 */
#define P_(name) CDR_CAT(name, CDR_PATH)

#define CDR_DEFINE_RELU(SUFFIX, FLOAT, UINT)                                               \
    static void P_(cdr_relu_##SUFFIX##_)(const FLOAT *src, FLOAT *dst, int64_t n)          \
    {                                                                                      \
        for (int64_t j = 0; j < n; j++) {                                                  \
            const FLOAT x = src[j];                                                        \
            UINT bits;                                                                     \
            memcpy(&bits, &x, sizeof bits);                                                \
            bits &= (UINT)0 - (UINT)!(x < 0);                                              \
            memcpy(&dst[j], &bits, sizeof bits);                                           \
        }                                                                                  \
    }
#define CDR_DEFINE_LEAKY(SUFFIX, FLOAT, UINT)                                              \
    static void P_(cdr_leaky_##SUFFIX##_)(const FLOAT *src, FLOAT *dst, int64_t n,         \
                                          FLOAT slope)                                     \
    {                                                                                      \
        for (int64_t j = 0; j < n; j++) {                                                  \
            const FLOAT x = src[j], y = x * slope;                                         \
            UINT positive, bits, scaled;                                                   \
            memcpy(&bits, &x, sizeof bits);                                                \
            memcpy(&scaled, &y, sizeof scaled);                                            \
            positive = (UINT)0 - (UINT)(x > 0);                                            \
            bits = (bits & positive) | (scaled & ~positive);                               \
            memcpy(&dst[j], &bits, sizeof bits);                                           \
        }                                                                                  \
    }

CDR_DEFINE_RELU(f32, float, uint32_t)
CDR_DEFINE_RELU(f64, double, uint64_t)
CDR_DEFINE_LEAKY(f32, float, uint32_t)
CDR_DEFINE_LEAKY(f64, double, uint64_t)

#undef CDR_DEFINE_RELU
#undef CDR_DEFINE_LEAKY
#undef P_
