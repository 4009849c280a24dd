/* One target of bench/counter_generators.c, included with SUFFIX and VW (32-bit lanes
 * per hardware vector) defined. Each function: in-place dropout of x[0, n), n a multiple
 * of 64, sixteen elements (one 64-byte line) a step. */
#define F(name) CAT(name, CAT(_, SUFFIX))
#define NV (16 / VW)
typedef uint32_t F(u32v) __attribute__((vector_size(VW * 4)));
typedef uint64_t F(u64v) __attribute__((vector_size(VW * 4)));
typedef uint64_t F(u64w) __attribute__((vector_size(VW * 8))); /* VW 64-bit lanes */
typedef uint32_t F(u32mem) __attribute__((vector_size(VW * 4), aligned(4), may_alias));
typedef float F(f32mem) __attribute__((vector_size(VW * 4), aligned(4), may_alias));
#define u32v F(u32v)
#define u64v F(u64v)

/* x[0, VW) * scale where w >= t, +0.0 elsewhere (the kernel's select) */
static inline __attribute__((always_inline)) void F(select)(float *x, u32v w, u32v t,
                                                             float scale)
{
    *(F(u32mem) *)x = (u32v)(*(F(f32mem) *)x * scale) & (u32v)(w >= t);
}

static void F(floor)(float *x, int64_t n, uint32_t t, float scale)
{
    (void)t;
    for (int64_t i = 0; i < n; i++) x[i] *= scale;
}

static void F(xoshiro)(float *x, int64_t n, uint32_t t_, float scale)
{
    const u32v t = (u32v){0} + t_;
    u32v a[NV], b[NV], c[NV], d[NV];
    for (int v = 0; v < NV; v++)
        for (int l = 0; l < VW; l++)
            a[v][l] = 0x9E3779B9u * (v * VW + l + 1), b[v][l] = 0x85EBCA6Bu * (l + 3),
            c[v][l] = 0xC2B2AE35u * (l + 5), d[v][l] = 0x27D4EB2Fu * (l + 7);
    for (int64_t i = 0; i < n; i += 16)
        for (int v = 0; v < NV; v++) {
            const u32v sum = a[v] + d[v];
            const u32v w = ((sum << 7) | (sum >> 25)) + a[v];
            const u32v b9 = b[v] << 9, db = d[v] ^ b[v];
            b[v] = b[v] ^ c[v] ^ a[v];
            c[v] = c[v] ^ a[v] ^ b9;
            a[v] = a[v] ^ db;
            d[v] = (db << 11) | (db >> 21);
            F(select)(x + i + v * VW, w, t, scale);
        }
}

static inline __attribute__((always_inline)) u64v F(mix64)(u64v z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void F(splitmix)(float *x, int64_t n, uint32_t t_, float scale)
{
    const uint64_t start = 0x1234567887654321ULL, gamma = 0x9E3779B97F4A7C15ULL;
    const u32v t = (u32v){0} + t_;
    u64v z[NV];
    for (int v = 0; v < NV; v++)
        for (int l = 0; l < VW / 2; l++)
            z[v][l] = start + (uint64_t)(v * VW / 2 + l + 1) * gamma;
    for (int64_t i = 0; i < n; i += 16)
        for (int v = 0; v < NV; v++) {
            F(select)(x + i + v * VW, (u32v)F(mix64)(z[v]), t, scale);
            z[v] += 8 * gamma;
        }
}

/* hi and lo of the 32 x 32 -> 64 products m * a, lane by lane */
static inline __attribute__((always_inline)) void F(mulhilo)(uint32_t m, u32v a, u32v *hi,
                                                              u32v *lo)
{
    const F(u64w) p = __builtin_convertvector(a, F(u64w)) * (uint64_t)m;
    *lo = __builtin_convertvector(p, u32v);
    *hi = __builtin_convertvector(p >> 32, u32v);
}

/* 64 elements a step: 16 counters, NV vectors of each of their four words */
#define PHILOX(ROUNDS)                                                                     \
    static void F(CAT(philox, ROUNDS))(float *x, int64_t n, uint32_t t_, float scale)      \
    {                                                                                      \
        const u32v t = (u32v){0} + t_;                                                     \
        for (int64_t i = 0; i < n; i += 4 * 16) {                                          \
            u32v c[4][NV], out[4 * NV];                                           \
            for (int g = 0; g < NV; g++)                                               \
                for (int l = 0; l < VW; l++) {                                             \
                    const uint64_t m = (uint64_t)(i / 4 + g * VW + l);                     \
                    c[0][g][l] = (uint32_t)m, c[1][g][l] = (uint32_t)(m >> 32);            \
                    c[2][g][l] = 0, c[3][g][l] = 0;                                        \
                }                                                                          \
            uint32_t k0 = 11, k1 = 22;                                                     \
            for (int r = 0; r < ROUNDS; r++) {                                             \
                for (int g = 0; g < NV; g++) {                                         \
                    u32v h0, l0, h1, l1;                                                   \
                    F(mulhilo)(0xD2511F53u, c[0][g], &h0, &l0);                            \
                    F(mulhilo)(0xCD9E8D57u, c[2][g], &h1, &l1);                            \
                    c[0][g] = h1 ^ c[1][g] ^ k0, c[2][g] = h0 ^ c[3][g] ^ k1;              \
                    c[1][g] = l1, c[3][g] = l0;                                            \
                }                                                                          \
                k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;                                      \
            }                                                                              \
            /* counter l's four words go to elements 4l .. 4l+3 (the transpose is left \
             * out: it would only add to the cost) */                                      \
            for (int w = 0; w < 4; w++)                                                    \
                for (int g = 0; g < NV; g++) out[w * NV + g] = c[w][g];          \
            for (int v = 0; v < 4 * NV; v++) F(select)(x + i + v * VW, out[v], t, scale);  \
        }                                                                                  \
    }
PHILOX(10)
PHILOX(7)

#define ROTL(v, k) (((v) << (k)) | ((v) >> (32 - (k))))
#define TF_ROUND(k)                                                                        \
    for (int g = 0; g < NV; g++) {                                          \
        x0[g] += x1[g];                                                                    \
        x1[g] = ROTL(x1[g], k) ^ x0[g];                                                    \
    }
#define TF_INJECT(s)                                                                       \
    for (int g = 0; g < NV; g++) {                                          \
        x0[g] += ks[(s) % 3];                                                              \
        x1[g] += ks[((s) + 1) % 3] + (uint32_t)(s);                                        \
    }
#define TF_FOUR_A TF_ROUND(13) TF_ROUND(15) TF_ROUND(26) TF_ROUND(6)
#define TF_FOUR_B TF_ROUND(17) TF_ROUND(29) TF_ROUND(16) TF_ROUND(24)
/* 32 elements a step: 16 counters, NV vectors of each of their two words */
#define THREEFRY(ROUNDS, BODY)                                                             \
    static void F(CAT(threefry, ROUNDS))(float *x, int64_t n, uint32_t t_, float scale)    \
    {                                                                                      \
        const u32v t = (u32v){0} + t_;                                                     \
        const uint32_t ks[3] = {11, 22, 11 ^ 22 ^ 0x1BD11BDAu};                            \
        for (int64_t i = 0; i < n; i += 2 * 16) {                                          \
            u32v x0[NV], x1[NV];                             \
            for (int g = 0; g < NV; g++)                                    \
                for (int l = 0; l < VW; l++) {                                             \
                    const uint64_t m = (uint64_t)(i / 2 + g * VW + l);                     \
                    x0[g][l] = (uint32_t)m + ks[0], x1[g][l] = (uint32_t)(m >> 32) + ks[1]; \
                }                                                                          \
            BODY                                                                           \
            int v = 0;                                                                     \
            for (int g = 0; g < NV; g++) {                                  \
                F(select)(x + i + v++ * VW, x0[g], t, scale);                              \
                F(select)(x + i + v++ * VW, x1[g], t, scale);                              \
            }                                                                              \
        }                                                                                  \
    }
THREEFRY(20, TF_FOUR_A TF_INJECT(1) TF_FOUR_B TF_INJECT(2) TF_FOUR_A TF_INJECT(3)
                 TF_FOUR_B TF_INJECT(4) TF_FOUR_A TF_INJECT(5))
THREEFRY(13, TF_FOUR_A TF_INJECT(1) TF_FOUR_B TF_INJECT(2) TF_FOUR_A TF_INJECT(3)
                 TF_ROUND(17))

#undef F
#undef NV
#undef u32v
#undef u64v
