# Declarations of _xorshift.h (and the _lanes.h and _gauss.h paths it builds), kept
# identical to it.
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "_xorshift.h" nogil:
    enum:
        CDR_BLOCK
        CDR_LANES
        CDR_ISA_BASELINE
        CDR_ISA_AVX2
        CDR_ISA_AVX512

    ctypedef struct cdr_kernels:
        const char *name
        void (*drop_f32)(const float *src, float *dst, uint64_t key, uint64_t first,
                         int64_t n, uint32_t threshold, float scale) noexcept nogil
        void (*drop_f64)(const double *src, double *dst, uint64_t key, uint64_t first,
                         int64_t n, uint32_t threshold, double scale) noexcept nogil
        void (*mask)(uint8_t *dst, uint64_t key, uint64_t first, int64_t n,
                     uint32_t threshold) noexcept nogil
        void (*raw)(uint32_t *dst, uint64_t key, uint64_t first, int64_t n) noexcept nogil
        void (*drop2_f32)(const float *src, float *dst, uint64_t key, uint64_t block,
                          uint32_t threshold, float scale) noexcept nogil
        void (*drop2_f64)(const double *src, double *dst, uint64_t key, uint64_t block,
                          uint32_t threshold, double scale) noexcept nogil
        void (*gauss_fill)(const uint32_t *words, uint64_t first, int64_t n,
                           double *z) noexcept nogil

    uint64_t cdr_key(uint64_t seed) noexcept
    uint64_t cdr_call_seed(uint64_t seed, uint64_t counter) noexcept
    int cdr_best_isa() noexcept
    int cdr_prefetch_far  # how the out-of-cache loop prefetches (set at import)
    int64_t cdr_prefetch_near
    int cdr_vendor_prefetch_far() noexcept
    const cdr_kernels *cdr_select_isa(int requested) noexcept


cdef extern from "_bfloat16.h" nogil:
    void cdr_drop_bf16(const cdr_kernels *path, const uint16_t *src, uint16_t *dst,
                       uint64_t key, uint64_t first, int64_t n, uint32_t threshold,
                       float scale) noexcept


cdef extern from "_float16.h" nogil:
    ctypedef struct cdr_f16_word:
        uint16_t bits
    void cdr_float16_init() noexcept
    void cdr_drop_f16(const cdr_kernels *path, const cdr_f16_word *src, cdr_f16_word *dst,
                      uint64_t key, uint64_t first, int64_t n, uint32_t threshold,
                      float scale) noexcept


cdef extern from "_select.h" nogil:
    void cdr_select_f32(const float *src, float *dst, const uint8_t *keep, int64_t n,
                        float scale) noexcept
    void cdr_select_f64(const double *src, double *dst, const uint8_t *keep, int64_t n,
                        double scale) noexcept
    void cdr_affine_f32(const float *src, float *dst, const uint8_t *keep, int64_t n,
                        float a, float b, float c) noexcept
    void cdr_affine_f64(const double *src, double *dst, const uint8_t *keep, int64_t n,
                        double a, double b, double c) noexcept
