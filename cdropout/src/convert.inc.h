/*
 * One ISA path of the 16-bit float conversions, a template: paths.h includes it once per
 * path with CDR_PATH (the name suffix) defined, and CDR_F16C where the path may use the
 * F16C instructions (the x86-64 AVX2 and AVX-512 paths, which the CPU probe chooses only
 * on CPUs that have them). The loops widen a run of float16 or bfloat16 words into
 * float32 and narrow float32 back, as half_floats.h defines it; gcc vectorises the
 * portable ones at the path's width, and F16C converts eight at a time. The two give
 * the same bits: widening is exact (F16C may quiet a signalling NaN, which the multiply
 * between them quiets anyway), and every value narrowed is +0.0 or a float32 product,
 * whose NaN is quiet and keeps its payload's top bits in F16C as here.
 */
#define P_(name) CDR_CAT(name, CDR_PATH)

static void P_(cdr_widen_bf16_)(const uint16_t *src, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = cdr_bf16_to_f32(src[i]);
}

static void P_(cdr_narrow_bf16_)(const float *src, uint16_t *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = cdr_f32_to_bf16(src[i]);
}

static void P_(cdr_widen_f16_)(const uint16_t *src, float *dst, int64_t n)
{
    int64_t i = 0;
#ifdef CDR_F16C
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++) dst[i] = cdr_f16_to_f32(src[i]);
}

static void P_(cdr_narrow_f16_)(const float *src, uint16_t *dst, int64_t n)
{
    int64_t i = 0;
#ifdef CDR_F16C
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++) dst[i] = cdr_f32_to_f16(src[i]);
}

#undef P_
