# Declarations of the C sources in cdropout/src (paths.h and the headers it includes),
# kept identical to them.
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "half_floats.h" nogil:
    ctypedef struct cdr_f16_word:
        uint16_t bits


cdef extern from "stream.h" nogil:
    enum:
        CDR_BLOCK
        CDR_LANES

    ctypedef struct cdr_stream_key:
        uint64_t key
        uint64_t gamma

    uint64_t cdr_key(uint64_t seed) noexcept
    uint64_t cdr_call_seed(uint64_t seed, uint64_t counter) noexcept
    cdr_stream_key cdr_stream_key_of(uint64_t seed) noexcept


cdef extern from "paths.h" nogil:
    enum:
        CDR_ISA_BASELINE
        CDR_ISA_AVX2
        CDR_ISA_AVX512
        CDR_STREAM_XOSHIRO
        CDR_STREAM_COUNTER
        CDR_ACT_NONE
        CDR_ACT_RELU
        CDR_ACT_LEAKY

    ctypedef void (*cdr_widen_fn)(const uint16_t *src, float *dst, int64_t n) noexcept nogil
    ctypedef void (*cdr_narrow_fn)(const float *src, uint16_t *dst, int64_t n) noexcept nogil

    ctypedef struct cdr_stream_loops:
        void (*drop_f32)(const float *src, float *dst, cdr_stream_key key, uint64_t first,
                         int64_t n, uint32_t threshold, float scale) noexcept nogil
        void (*drop_f64)(const double *src, double *dst, cdr_stream_key key,
                         uint64_t first, int64_t n, uint32_t threshold,
                         double scale) noexcept nogil
        void (*mask)(uint8_t *dst, cdr_stream_key key, uint64_t first, int64_t n,
                     uint32_t threshold) noexcept nogil
        void (*raw)(uint32_t *dst, cdr_stream_key key, uint64_t first,
                    int64_t n) noexcept nogil
        void (*drop2_f32)(const float *src, float *dst, cdr_stream_key key,
                          uint64_t block, uint32_t threshold, float scale) noexcept nogil
        void (*drop2_f64)(const double *src, double *dst, cdr_stream_key key,
                          uint64_t block, uint32_t threshold, double scale) noexcept nogil

    ctypedef struct cdr_path:
        const char *name
        cdr_stream_loops streams[2]
        void (*gauss_fill)(const uint32_t *words, uint64_t first, int64_t n,
                           double *z) noexcept nogil
        void (*select_f32)(const float *src, float *dst, const uint8_t *keep, int64_t n,
                           float scale) noexcept nogil
        void (*select_f64)(const double *src, double *dst, const uint8_t *keep,
                           int64_t n, double scale) noexcept nogil
        void (*affine_f32)(const float *src, float *dst, const uint8_t *keep, int64_t n,
                           float a, float b, float c) noexcept nogil
        void (*affine_f64)(const double *src, double *dst, const uint8_t *keep,
                           int64_t n, double a, double b, double c) noexcept nogil
        cdr_widen_fn widen_bf16
        cdr_narrow_fn narrow_bf16
        cdr_widen_fn widen_f16
        cdr_narrow_fn narrow_f16
        void (*relu_f32)(const float *src, float *dst, int64_t n) noexcept nogil
        void (*relu_f64)(const double *src, double *dst, int64_t n) noexcept nogil
        void (*leaky_f32)(const float *src, float *dst, int64_t n,
                          float slope) noexcept nogil
        void (*leaky_f64)(const double *src, double *dst, int64_t n,
                          double slope) noexcept nogil

    ctypedef struct cdr_cpu_info:
        int best_path
        int prefetch_far

    cdr_cpu_info cdr_probe_cpu() noexcept
    const cdr_path *cdr_select_path(int requested, int best) noexcept
    int cdr_prefetch_far  # how the out-of-cache loop prefetches (set at import)
    int64_t cdr_prefetch_near
    void cdr_drop_through_f32(const cdr_stream_loops *loops, cdr_widen_fn widen,
                              cdr_narrow_fn narrow, const uint16_t *src, uint16_t *dst,
                              cdr_stream_key key, uint64_t first, int64_t n,
                              uint32_t threshold, float scale) noexcept
    void cdr_drop_activated_f32(const cdr_path *path, const cdr_stream_loops *loops,
                                int act, float slope, const float *src, float *dst,
                                cdr_stream_key key, uint64_t first, int64_t n,
                                uint32_t threshold, float scale) noexcept
    void cdr_drop_activated_f64(const cdr_path *path, const cdr_stream_loops *loops,
                                int act, double slope, const double *src, double *dst,
                                cdr_stream_key key, uint64_t first, int64_t n,
                                uint32_t threshold, double scale) noexcept
    void cdr_drop_activated_through_f32(const cdr_path *path,
                                        const cdr_stream_loops *loops,
                                        cdr_widen_fn widen, cdr_narrow_fn narrow, int act,
                                        float slope, const uint16_t *src, uint16_t *dst,
                                        cdr_stream_key key, uint64_t first, int64_t n,
                                        uint32_t threshold, float scale) noexcept


cdef extern from "xla_ffi.h" nogil:
    ctypedef struct XLA_FFI_Error
    ctypedef enum XLA_FFI_DataType:
        XLA_FFI_DataType_PRED
        XLA_FFI_DataType_S32
        XLA_FFI_DataType_U32
        XLA_FFI_DataType_U64
        XLA_FFI_DataType_F16
        XLA_FFI_DataType_F32
        XLA_FFI_DataType_F64
        XLA_FFI_DataType_BF16
    ctypedef enum XLA_FFI_ExecutionStage:
        XLA_FFI_ExecutionStage_EXECUTE

    ctypedef struct XLA_FFI_Buffer:
        XLA_FFI_DataType dtype
        void *data
        int64_t rank
        int64_t *dims

    ctypedef struct XLA_FFI_Args:
        int64_t size
        void **args

    ctypedef struct XLA_FFI_Rets:
        int64_t size
        void **rets

    ctypedef struct XLA_FFI_CallFrame:
        XLA_FFI_ExecutionStage stage
        XLA_FFI_Args args
        XLA_FFI_Rets rets

    int cdr_xla_metadata(XLA_FFI_CallFrame *frame) noexcept
    XLA_FFI_Error *cdr_xla_error(XLA_FFI_CallFrame *frame, const char *message) noexcept
    const void *cdr_xla_scalar(const XLA_FFI_CallFrame *frame, const char *name,
                               XLA_FFI_DataType dtype) noexcept
