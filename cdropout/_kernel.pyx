"""The compiled layer of cdropout: nogil block loops over the C paths of _xorshift.h, and
thin ``def`` entry points that trust their caller, cdropout.functional, to have validated
every argument (dtypes, sizes, layout, ranges) before the first byte is written.
"""
cimport numpy as cnp
from cpython.exc cimport PyErr_CheckSignals
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from cdropout._openmp cimport CDR_OPENMP, omp_get_max_threads

cnp.import_array()

BLOCK = CDR_BLOCK
LANES = CDR_LANES
ISA_LEVELS = {"baseline": CDR_ISA_BASELINE, "avx2": CDR_ISA_AVX2, "avx512": CDR_ISA_AVX512}

# Below this many elements one thread does the whole call: starting a parallel region
# costs more than it saves.
cdef Py_ssize_t PARALLEL_MIN = 1 << 15
# The work runs in chunks of at least this many elements (a multiple of CDR_BLOCK), the GIL
# taken back between them to check for Ctrl-C: about a millisecond per thread per chunk.
cdef Py_ssize_t CHUNK_PER_THREAD = 1 << 22

# The ISA path, chosen once at import by cdropout._config (the best the CPU runs, capped by
# CDROPOUT_ISA) and never changed afterwards.
cdef const cdr_kernels *_path = cdr_select_isa(CDR_ISA_AVX512)

# What a block loop writes: float32 or float64 dropout, the keep mask (uint8, src and scale
# unused) or the raw generator words (uint32, src, threshold and scale unused).
ctypedef fused element:
    float
    double
    uint8_t
    uint32_t


cdef inline void _run_block(const element *src, element *dst,  # OUT: dst
                            Py_ssize_t n, uint64_t key, uint64_t offset, uint64_t block,
                            uint32_t threshold, element scale) noexcept nogil:
    # The part of `block` that falls in elements [offset, offset + n) of the stream.
    cdef uint64_t lo = block * CDR_BLOCK
    cdef uint64_t hi = lo + CDR_BLOCK
    if lo < offset:
        lo = offset
    if hi > offset + <uint64_t>n:
        hi = offset + <uint64_t>n
    cdef Py_ssize_t at = <Py_ssize_t>(lo - offset)
    if element is float:
        _path.drop_f32(src + at, dst + at, key, lo, <int64_t>(hi - lo), threshold, scale)
    elif element is double:
        _path.drop_f64(src + at, dst + at, key, lo, <int64_t>(hi - lo), threshold, scale)
    elif element is uint8_t:
        _path.mask(dst + at, key, lo, <int64_t>(hi - lo), threshold)
    else:
        _path.raw(dst + at, key, lo, <int64_t>(hi - lo))


cdef void _run_blocks(const element *src, element *dst,  # OUT: dst
                      Py_ssize_t n, uint64_t key, uint64_t offset, uint32_t threshold,
                      element scale, int n_threads) noexcept nogil:
    # Elements [offset, offset + n) of the stream, src[0] and dst[0] being element `offset`.
    # Each block is a pure function of (key, block), so the split among threads changes
    # nothing in the result.
    cdef uint64_t first_block = offset // CDR_BLOCK
    cdef Py_ssize_t n_blocks = <Py_ssize_t>((offset + <uint64_t>n - 1) // CDR_BLOCK
                                            - first_block) + 1
    cdef Py_ssize_t b
    if n_threads > 1 and n >= PARALLEL_MIN and n_blocks > 1:
        for b in prange(n_blocks, schedule="static", num_threads=n_threads):
            _run_block(src, dst, n, key, offset, first_block + b, threshold, scale)
        # end: prange
    else:
        for b in range(n_blocks):
            _run_block(src, dst, n, key, offset, first_block + b, threshold, scale)


cdef int _run_chunks(const element *src, element *dst,  # OUT: dst
                     Py_ssize_t n, uint64_t seed, uint64_t offset, uint32_t threshold,
                     element scale, int n_threads) except -1:
    # Runs _run_blocks without the GIL chunk by chunk, cut at multiples of the chunk length
    # in stream indices, and checks for signals between chunks, so that Ctrl-C ends a long
    # call within about a millisecond (what is done stays done; see the docs).
    cdef uint64_t key = cdr_key(seed)
    cdef Py_ssize_t chunk = CHUNK_PER_THREAD * (n_threads if n_threads > 1 else 1)
    cdef Py_ssize_t start = 0, stop
    while start < n:
        stop = <Py_ssize_t>(((offset + <uint64_t>start) // <uint64_t>chunk + 1)
                            * <uint64_t>chunk - offset)
        if stop > n:
            stop = n
        with nogil:
            _run_blocks(src + start if src != NULL else NULL, dst + start, stop - start, key,
                        offset + <uint64_t>start, threshold, scale, n_threads)
        PyErr_CheckSignals()
        start = stop
    return 0


def dropout_into(cnp.ndarray src, cnp.ndarray dst, uint64_t seed, uint64_t offset,
                 uint32_t threshold, double scale, int n_threads):
    """Write dropout of `src` into `dst` for stream elements [offset, offset + src.size).

    Trusts its caller: src and dst are native, aligned, C-contiguous, non-empty float32 or
    float64 arrays of one dtype and size, either the same array or not overlapping; scale
    is already rounded to the dtype; n_threads >= 1.
    """
    cdef Py_ssize_t n = cnp.PyArray_SIZE(src)
    if cnp.PyArray_TYPE(src) == cnp.NPY_FLOAT32:
        _run_chunks[float](<const float *>cnp.PyArray_DATA(src),
                           <float *>cnp.PyArray_DATA(dst), n, seed, offset, threshold,
                           <float>scale, n_threads)
    else:
        _run_chunks[double](<const double *>cnp.PyArray_DATA(src),
                            <double *>cnp.PyArray_DATA(dst), n, seed, offset, threshold,
                            scale, n_threads)


def mask_into(cnp.ndarray dst, uint64_t seed, uint64_t offset, uint32_t threshold,
              int n_threads):
    """Write the keep mask (1 = kept) of stream elements [offset, offset + dst.size).

    Trusts its caller: dst is a non-empty C-contiguous array of one-byte items.
    """
    _run_chunks[uint8_t](NULL, <uint8_t *>cnp.PyArray_DATA(dst), cnp.PyArray_SIZE(dst),
                         seed, offset, threshold, 0, n_threads)


def raw_stream(uint64_t seed, uint64_t offset, Py_ssize_t n):
    """The generator's 32-bit words for stream elements [offset, offset + n), serially.

    The hook for known-answer tests and RNG test batteries, not a public API.
    """
    out = cnp.PyArray_EMPTY(1, [n], cnp.NPY_UINT32, 0)
    if n > 0:
        _run_chunks[uint32_t](NULL, <uint32_t *>cnp.PyArray_DATA(out), n, seed, offset, 0,
                              0, 1)
    return out


def call_seed(uint64_t seed, uint64_t counter):
    """The seed of forward call number `counter` of a Dropout layer seeded with `seed`."""
    return cdr_call_seed(seed, counter)


def use_isa(int level):
    """Use the best ISA path the CPU runs, at most `level`; return its name.

    Called once, at import, by cdropout._config.
    """
    global _path
    _path = cdr_select_isa(level)
    return _path.name.decode()


def isa_path():
    """The name of the ISA path in use."""
    return _path.name.decode()


def best_isa():
    """The name of the best ISA path this CPU runs."""
    return cdr_select_isa(cdr_best_isa()).name.decode()


def openmp_enabled():
    """Whether the extension was built with OpenMP."""
    return bool(CDR_OPENMP)


def default_threads():
    """OpenMP's default thread count: OMP_NUM_THREADS, threadpoolctl, or the cores."""
    return omp_get_max_threads()


def same_data(cnp.ndarray a, cnp.ndarray b):
    """Whether two arrays start at the same address."""
    return cnp.PyArray_DATA(a) == cnp.PyArray_DATA(b)
