"""The compiled layer of cdropout: nogil block loops over the ISA path table of
src/paths.h, and thin ``def`` entry points that trust their caller, cdropout.functional,
to have validated every argument (dtypes, sizes, layout, ranges) before the first byte is
written.
"""
import functools

cimport numpy as cnp
from cpython.exc cimport PyErr_CheckSignals
from cpython.pycapsule cimport PyCapsule_New
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport nearbyint
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

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
# Calls of at most this many bytes run whole blocks two at a time (cdr_drop2 in
# xoshiro_loops.inc.h): faster in cache, slower once the array streams from memory
# (bench/NOTES.md, "Two blocks at once").
cdef Py_ssize_t PAIR_MAX_BYTES = 16 << 20
# The same, into a separate output with the near prefetch, which the pairs lack.
cdef Py_ssize_t PAIR_MAX_BYTES_SEPARATE = 1 << 20

# The CPU, probed once; the ISA path in use, the best it runs until cdropout._runtime
# applies CDROPOUT_ISA at import (and benchmarks switch it with _runtime.isa()).
cdef cdr_cpu_info _cpu = cdr_probe_cpu()
cdef const cdr_path *_path = cdr_select_path(CDR_ISA_AVX512, _cpu.best_path)

# Set in a child process forked after import (by cdropout._runtime): GNU OpenMP hangs in
# a forked child's first parallel region, so such a child runs serially.
cdef bint _in_forked_child = False

# The type number of ml_dtypes.bfloat16 once cdropout.functional has seen such an array
# (ml_dtypes is optional, and importing it costs time), so that the fast path takes
# bfloat16 from then on; -1 (no type) before.
cdef int _bfloat16_type = -1

# Set once at import by cdropout._runtime: the CPUs this process may use (the default
# thread count's cap) and the most threads any call starts.
cdef int _usable_cpus = 1
cdef int _max_threads = 1

# The streams by name, as the Python API takes them (cdr_path's streams).
STREAMS = {"xoshiro": CDR_STREAM_XOSHIRO, "counter": CDR_STREAM_COUNTER}
# The activations a dropout can be fused with, by name (paths.h).
ACTIVATIONS = {"relu": CDR_ACT_RELU, "leaky_relu": CDR_ACT_LEAKY}

# What a block loop writes: float32 or float64 dropout, bfloat16 or float16 dropout (their
# 16-bit words, computed in float32), the keep mask (uint8, src unused) or the raw
# generator words (uint32, src unused).
ctypedef fused element:
    float
    double
    uint16_t
    cdr_f16_word
    uint8_t
    uint32_t


# One call's work, the same for every block: the stream's loops and key, the threshold,
# the scale (a double, rounded to the element's arithmetic at the leaf; the callers pass
# it already rounded), the activation fused before the dropout, and whether whole blocks
# go two at a time.
cdef struct _Job:
    const cdr_stream_loops *loops
    cdr_stream_key key
    uint32_t threshold
    double scale
    int act
    double slope
    bint interleave


cdef inline void _run_block(const element *src, element *dst,  # OUT: dst
                            Py_ssize_t n, uint64_t offset, uint64_t block,
                            const _Job *job) noexcept nogil:
    # The part of `block` that falls in elements [offset, offset + n) of the stream.
    cdef uint64_t lo = block * CDR_BLOCK
    cdef uint64_t hi = lo + CDR_BLOCK
    if lo < offset:
        lo = offset
    if hi > offset + <uint64_t>n:
        hi = offset + <uint64_t>n
    cdef Py_ssize_t at = <Py_ssize_t>(lo - offset)
    cdef int64_t count = <int64_t>(hi - lo)
    cdef const cdr_stream_loops *loops = job.loops
    if element is float:
        if job.act:
            cdr_drop_activated_f32(_path, loops, job.act, <float>job.slope, src + at,
                                   dst + at, job.key, lo, count, job.threshold,
                                   <float>job.scale)
        else:
            loops.drop_f32(src + at, dst + at, job.key, lo, count, job.threshold,
                           <float>job.scale)
    elif element is double:
        if job.act:
            cdr_drop_activated_f64(_path, loops, job.act, job.slope, src + at, dst + at,
                                   job.key, lo, count, job.threshold, job.scale)
        else:
            loops.drop_f64(src + at, dst + at, job.key, lo, count, job.threshold,
                           job.scale)
    elif element is uint16_t:
        _run_block_16(loops, _path.widen_bf16, _path.narrow_bf16, src + at, dst + at,
                      lo, count, job)
    elif element is cdr_f16_word:
        _run_block_16(loops, _path.widen_f16, _path.narrow_f16,
                      <const uint16_t *>(src + at), <uint16_t *>(dst + at), lo, count, job)
    elif element is uint8_t:
        loops.mask(dst + at, job.key, lo, count, job.threshold)
    else:
        loops.raw(dst + at, job.key, lo, count)


cdef inline void _run_block_16(const cdr_stream_loops *loops, cdr_widen_fn widen,
                               cdr_narrow_fn narrow, const uint16_t *src,
                               uint16_t *dst, uint64_t first, int64_t n,  # OUT: dst
                               const _Job *job) noexcept nogil:
    # a 16-bit float type's block, through float32
    if job.act:
        cdr_drop_activated_through_f32(_path, loops, widen, narrow, job.act,
                                       <float>job.slope, src, dst, job.key, first, n,
                                       job.threshold, <float>job.scale)
    else:
        cdr_drop_through_f32(loops, widen, narrow, src, dst, job.key, first, n,
                             job.threshold, <float>job.scale)


cdef void _run_blocks(const element *src, element *dst,  # OUT: dst
                      Py_ssize_t n, uint64_t offset, int n_threads,
                      const _Job *job) noexcept nogil:
    # Elements [offset, offset + n) of the stream, src[0] and dst[0] being element `offset`.
    # Each block is a pure function of (key, block), so the split among threads changes
    # nothing in the result.
    # Blocks go by pairs, so that cache-resident dropout can interleave two whole blocks.
    # A static schedule gives each thread the same share of the array call after call, so
    # a cache-resident array stays in the caches of the cores that use it
    # (bench/NOTES.md, "Schedule").
    cdef uint64_t first_block = offset // CDR_BLOCK
    cdef Py_ssize_t n_blocks = <Py_ssize_t>((offset + <uint64_t>n - 1) // CDR_BLOCK
                                            - first_block) + 1
    cdef Py_ssize_t k, n_pairs = (n_blocks + 1) // 2
    # a thread without a pair of blocks to work on would only cost its start
    if n_threads > n_pairs:
        n_threads = <int>n_pairs
    if n_threads > 1 and n >= PARALLEL_MIN and n_blocks > 1:
        for k in prange(n_pairs, schedule="static", num_threads=n_threads):
            _run_pair(src, dst, n, offset, first_block + 2 * <uint64_t>k, job)
        # end: prange
    else:
        for k in range(n_pairs):
            _run_pair(src, dst, n, offset, first_block + 2 * <uint64_t>k, job)


cdef inline void _run_pair(const element *src, element *dst,  # OUT: dst
                           Py_ssize_t n, uint64_t offset, uint64_t block,
                           const _Job *job) noexcept nogil:
    # Blocks `block` and `block + 1` of [offset, offset + n): interleaved where both are
    # whole, the job says so and the stream has a pair loop.
    cdef uint64_t lo = block * CDR_BLOCK
    cdef uint64_t end = offset + <uint64_t>n
    cdef Py_ssize_t at = <Py_ssize_t>(lo - offset)
    if ((element is float or element is double) and job.interleave and lo >= offset
            and lo + 2 * CDR_BLOCK <= end):
        if element is float:
            job.loops.drop2_f32(src + at, dst + at, job.key, block, job.threshold,
                                <float>job.scale)
        else:
            job.loops.drop2_f64(src + at, dst + at, job.key, block, job.threshold,
                                job.scale)
        return
    _run_block(src, dst, n, offset, block, job)
    if lo + CDR_BLOCK < end:
        _run_block(src, dst, n, offset, block + 1, job)


cdef void _setup_job(_Job *job, uint64_t seed, uint32_t threshold, double scale,
                     int stream, int act, double slope, bint same_memory,
                     Py_ssize_t nbytes) noexcept nogil:  # OUT: job
    # The job of a call of nbytes bytes, in place or not.
    job.loops = &_path.streams[stream]
    job.key = cdr_stream_key_of(seed)
    job.threshold = threshold
    job.scale = scale
    job.act = act
    job.slope = slope
    job.interleave = nbytes <= PAIR_MAX_BYTES
    if not same_memory and not cdr_prefetch_far:
        job.interleave = nbytes < PAIR_MAX_BYTES_SEPARATE
    if job.loops.drop2_f32 == NULL or act:
        job.interleave = False


cdef int _run_chunks(const element *src, element *dst,  # OUT: dst
                     Py_ssize_t n, uint64_t seed, uint64_t offset, uint32_t threshold,
                     double scale, int n_threads, int stream, int act=0,
                     double slope=0.0) except -1:
    # Runs _run_blocks without the GIL chunk by chunk, cut at multiples of the chunk length
    # in stream indices, and checks for signals between chunks, so that Ctrl-C ends a long
    # call within about a millisecond (what is done stays done; see the docs).
    cdef _Job job
    # decided on the whole call: its chunks are cut small for Ctrl-C, not for the cache
    _setup_job(&job, seed, threshold, scale, stream, act, slope,
               <const void *>src == <const void *>dst, n * <Py_ssize_t>sizeof(element))
    cdef Py_ssize_t chunk = CHUNK_PER_THREAD * (n_threads if n_threads > 1 else 1)
    cdef Py_ssize_t start = 0, stop
    if n < PARALLEL_MIN:  # microseconds: releasing the GIL would cost more than it frees
        _run_blocks(src, dst, n, offset, 1, &job)
        return 0
    while start < n:
        stop = <Py_ssize_t>(((offset + <uint64_t>start) // <uint64_t>chunk + 1)
                            * <uint64_t>chunk - offset)
        if stop > n:
            stop = n
        with nogil:
            _run_blocks(src + start if src != NULL else NULL, dst + start, stop - start,
                        offset + <uint64_t>start, n_threads, &job)
        PyErr_CheckSignals()
        start = stop
    return 0


cdef inline uint64_t _threshold(double p) noexcept nogil:
    # cdropout._params.threshold in C: round half to even of the exact product p * 2**32
    return <uint64_t>nearbyint(p * 4294967296.0)


cdef inline bint _is_ready(object a, bint writeable):
    # a native, aligned, C-contiguous, non-empty float16, float32, float64 or (once
    # registered) bfloat16 ndarray
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int kind = cnp.PyArray_TYPE(arr)
    return ((kind == cnp.NPY_FLOAT32 or kind == cnp.NPY_FLOAT64
             or kind == cnp.NPY_FLOAT16 or kind == _bfloat16_type)
            and (cnp.PyArray_ISCARRAY(arr) if writeable else cnp.PyArray_ISCARRAY_RO(arr))
            and cnp.PyArray_ISNOTSWAPPED(arr) and cnp.PyArray_SIZE(arr) > 0)


cdef inline bint _is_same_memory(object x, object out):
    # out another ndarray object over exactly x's memory, laid out as x is
    if type(x) is not cnp.ndarray or type(out) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef cnp.ndarray b = <cnp.ndarray>out
    return (cnp.PyArray_DATA(a) == cnp.PyArray_DATA(b)
            and cnp.PyArray_TYPE(a) == cnp.PyArray_TYPE(b)
            and cnp.PyArray_SAMESHAPE(a, b) and _is_ready(out, True))


cdef inline bint _is_separate_output(object x, object out):
    # out another ready array of x's type and shape, sharing no byte with it
    if not (_is_ready(x, False) and _is_ready(out, True)):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef cnp.ndarray b = <cnp.ndarray>out
    if (cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(b)
            or not cnp.PyArray_SAMESHAPE(a, b)):
        return False
    cdef char *a0 = <char *>cnp.PyArray_DATA(a)
    cdef char *b0 = <char *>cnp.PyArray_DATA(b)
    return a0 + cnp.PyArray_NBYTES(a) <= b0 or b0 + cnp.PyArray_NBYTES(b) <= a0


def with_fast_path(checked):
    """cdropout.functional.dropout (`checked`) with the common call taken in C first.

    Entering a Python function costs ~60 ns, a third of a 1,000-element call, so the
    common call (see dropout_fast) never runs Python code; every other call runs
    `checked`, which checks it fully. The signature must match checked's: a test pins it.
    """
    def dropout(x, p=0.5, *, seed=None, training=True, mode="inverted", out=None,
                offset=0, n_threads=None, noise_shape=None, stream="xoshiro"):
        if noise_shape is None:
            result = _dropout_fast(x, p, seed, training, mode, out, offset, n_threads,
                                   stream)
            if result is not NotImplemented:
                return result
        return checked(x, p, seed=seed, training=training, mode=mode, out=out,
                       offset=offset, n_threads=n_threads, noise_shape=noise_shape,
                       stream=stream)
    functools.update_wrapper(dropout, checked)
    return dropout


def dropout_fast(x, p, seed, training, mode, out, offset, n_threads, stream):
    """The whole of cdropout.dropout for the common call, else NotImplemented.

    At 1,000 elements the call overhead is most of the cost, so the common call is
    checked and run here, in C: a native, aligned, C-contiguous, non-empty float16,
    float32, float64 or (see register_bfloat16) bfloat16 ndarray; out None, x itself
    (or another view of exactly x's memory), or another such array of x's dtype and
    shape that shares no byte with x; a Python float 0 < p < 1; a Python int seed
    in [0, 2**64); training True; a known mode and stream; offset 0; n_threads None or
    a Python int in [1, cdropout._runtime.MAX_THREADS]. Every other call, valid or not,
    gets NotImplemented and goes through cdropout.functional, which checks it fully and
    gives the same bytes.
    """
    return _dropout_fast(x, p, seed, training, mode, out, offset, n_threads, stream)


cdef bint _common_call(p, seed, training, mode, offset, n_threads, stream_name,
                       uint32_t *threshold, double *scale, int *threads,
                       int *stream):  # OUT: the last four
    # The stream arguments of the common call (see dropout_fast) turned into the kernel's,
    # or False for any other call. The scale is rounded to the dtype by _dropout_raw (a C
    # cast rounds to nearest, as NumPy does).
    if (training is not True or type(offset) is not int
            or offset != 0 or type(p) is not float or type(seed) is not int
            or not (0 <= seed < 18446744073709551616)):
        return False
    cdef double prob = p
    if not (0.0 < prob < 1.0):
        return False
    if mode == "inverted":
        scale[0] = 1.0 / (1.0 - prob)
    elif mode == "classic":
        scale[0] = 1.0
    else:
        return False
    if stream_name == "xoshiro":
        stream[0] = CDR_STREAM_XOSHIRO
    elif stream_name == "counter":
        stream[0] = CDR_STREAM_COUNTER
    else:
        return False
    cdef uint64_t rounded = _threshold(prob)
    if rounded > 0xFFFFFFFF:  # p within 2**-33 of 1 drops everything: the general path
        return False
    threshold[0] = <uint32_t>rounded
    # cdropout._threads.resolve_threads for None and positive counts
    threads[0] = 1
    if n_threads is not None:
        if type(n_threads) is not int or not (0 < n_threads <= _max_threads):
            return False
        threads[0] = n_threads
    elif CDR_OPENMP:
        threads[0] = min(omp_get_max_threads(), _usable_cpus)
    if _in_forked_child or not CDR_OPENMP:
        threads[0] = 1
    return True


cdef object _dropout_fast(x, p, seed, training, mode, out, offset, n_threads,
                          stream_name):
    # dropout_fast without a Python call, for with_fast_path
    cdef uint32_t threshold
    cdef double scale
    cdef int threads, stream
    if not _common_call(p, seed, training, mode, offset, n_threads, stream_name,
                        &threshold, &scale, &threads, &stream):
        return NotImplemented
    if out is None:
        if not _is_ready(x, False):
            return NotImplemented
        out = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x),
                                cnp.PyArray_TYPE(x), 0)
    elif out is x or _is_same_memory(x, out):
        if not _is_ready(x, True):
            return NotImplemented
        out = x
    elif not _is_separate_output(x, out):
        return NotImplemented
    _dropout_into(x, out, seed, 0, threshold, scale, threads, stream)
    return out


def dropout_memory(size_t src, size_t dst, Py_ssize_t n, int kind, p, seed, mode,
                   offset, n_threads, stream="xoshiro", int act=0, double slope=0.0):
    """The common call of dropout_fast on raw memory; True if done, else False (nothing
    written): n elements of NumPy type number `kind` (float16, float32, float64, or
    uint16 for bfloat16's words) at address `src`, written at `dst`; `act` (a value of
    ACTIVATIONS, 0 for none) fused before the dropout, with leaky_relu's `slope`.

    For PyTorch's tensors, whose NumPy views cost microseconds of PyTorch's dispatch.
    Trusts its caller for the memory: src and dst each hold n C-contiguous elements of
    that type, and are the same address or share no byte. Refuses misaligned addresses
    and address 0 (a ZeroTensor's).
    """
    cdef uint32_t threshold
    cdef double scale
    cdef int threads, stream_number
    cdef size_t size
    if kind == cnp.NPY_FLOAT32:
        size = 4
    elif kind == cnp.NPY_FLOAT64:
        size = 8
    elif kind == cnp.NPY_FLOAT16 or kind == cnp.NPY_UINT16:
        size = 2
    else:
        return False
    if (n < 1 or src == 0 or dst == 0 or src % size or dst % size
            or not _common_call(p, seed, True, mode, offset, n_threads, stream,
                                &threshold, &scale, &threads, &stream_number)):
        return False
    _dropout_raw(<const void *>src, <void *>dst, n, kind, seed, 0, threshold, scale,
                 threads, stream_number, act, slope)
    return True


def dropout_into(cnp.ndarray src, cnp.ndarray dst, uint64_t seed, uint64_t offset,
                 uint32_t threshold, double scale, int n_threads, int stream=0,
                 int act=0, double slope=0.0):
    """Write dropout of `src` into `dst` for stream elements [offset, offset + src.size).

    Trusts its caller: src and dst are native, aligned, C-contiguous, non-empty float16,
    float32, float64 or uint16 arrays (uint16: the bits of bfloat16; float16 and bfloat16
    compute in float32) of one dtype and size, either the same array or not overlapping;
    scale is already rounded to the dtype's arithmetic; n_threads >= 1; stream a value
    of STREAMS; act a value of ACTIVATIONS (0: none), fused before the dropout.
    """
    _dropout_into(src, dst, seed, offset, threshold, scale, n_threads, stream, act,
                  slope)


cdef int _dropout_into(cnp.ndarray src, cnp.ndarray dst,  # OUT: dst
                       uint64_t seed, uint64_t offset, uint32_t threshold, double scale,
                       int n_threads, int stream, int act=0,
                       double slope=0.0) except -1:
    # dropout_into without a Python call, for the fast path
    cdef int kind = cnp.PyArray_TYPE(src)
    _dropout_raw(cnp.PyArray_DATA(src), cnp.PyArray_DATA(dst), cnp.PyArray_SIZE(src),
                 cnp.NPY_UINT16 if kind == _bfloat16_type else kind, seed, offset,
                 threshold, scale, n_threads, stream, act, slope)


cdef int _dropout_raw(const void *src, void *dst, Py_ssize_t n, int kind,  # OUT: dst
                      uint64_t seed, uint64_t offset, uint32_t threshold, double scale,
                      int n_threads, int stream, int act, double slope) except -1:
    # the kernel on n elements of NumPy type `kind` (NPY_UINT16: bfloat16's words)
    if kind == cnp.NPY_FLOAT32:
        _run_chunks[float](<const float *>src, <float *>dst, n, seed, offset, threshold,
                           <float>scale, n_threads, stream, act, slope)
    elif kind == cnp.NPY_UINT16:
        _run_chunks[uint16_t](<const uint16_t *>src, <uint16_t *>dst, n, seed, offset,
                              threshold, <float>scale, n_threads, stream, act, slope)
    elif kind == cnp.NPY_FLOAT16:
        _run_chunks[cdr_f16_word](<const cdr_f16_word *>src, <cdr_f16_word *>dst, n,
                                  seed, offset, threshold, <float>scale, n_threads,
                                  stream, act, slope)
    else:
        _run_chunks[double](<const double *>src, <double *>dst, n, seed, offset,
                            threshold, scale, n_threads, stream, act, slope)


def dropout_rows(cnp.ndarray tile, uint64_t seed, uint64_t first, uint64_t row_step,
                 Py_ssize_t rows_per_group, uint64_t group_step, uint32_t threshold,
                 double scale, int n_threads):
    """Counter-stream dropout, in place, of the rows of a tile of an attention's
    probabilities: `tile` is (groups * rows_per_group, cols); row r holds stream elements
    from first + (r // rows_per_group) * group_step + (r % rows_per_group) * row_step,
    cols of them. For the tile of queries i0.. and keys j0.. of every (batch, head) g of
    probabilities (B, H, L, S): first = i0 * S + j0, row_step = S, group_step = L * S,
    the stream index of (g, i, j) being (g * L + i) * S + j (docs/stream.md).

    Trusts its caller: tile is a native, aligned, C-contiguous, non-empty float32 or
    float64 array; scale is rounded to its dtype; n_threads >= 1. Rows are split among
    threads; each row's bytes are a function of its indices alone.
    """
    if cnp.PyArray_TYPE(tile) == cnp.NPY_FLOAT32:
        _dropout_rows[float](<float *>cnp.PyArray_DATA(tile), tile.shape[0],
                             tile.shape[1], seed, first, row_step, rows_per_group,
                             group_step, threshold, scale, n_threads)
    else:
        _dropout_rows[double](<double *>cnp.PyArray_DATA(tile), tile.shape[0],
                              tile.shape[1], seed, first, row_step, rows_per_group,
                              group_step, threshold, scale, n_threads)


cdef void _dropout_rows(floating *data, Py_ssize_t rows, Py_ssize_t cols,  # OUT: data
                        uint64_t seed, uint64_t first, uint64_t row_step,
                        Py_ssize_t rows_per_group, uint64_t group_step,
                        uint32_t threshold, double scale, int n_threads) noexcept:
    cdef Py_ssize_t r
    cdef _Job job
    _setup_job(&job, seed, threshold, scale, CDR_STREAM_COUNTER, 0, 0.0, True,
               cols * <Py_ssize_t>sizeof(floating))
    if n_threads > rows:
        n_threads = <int>rows
    with nogil:
        if n_threads > 1 and rows * cols >= PARALLEL_MIN:
            for r in prange(rows, schedule="static", num_threads=n_threads):
                _run_blocks(data + r * cols, data + r * cols, cols,
                            first + <uint64_t>(r // rows_per_group) * group_step
                            + <uint64_t>(r % rows_per_group) * row_step, 1, &job)
        else:
            for r in range(rows):
                _run_blocks(data + r * cols, data + r * cols, cols,
                            first + <uint64_t>(r // rows_per_group) * group_step
                            + <uint64_t>(r % rows_per_group) * row_step, 1, &job)


cdef inline void _broadcast_row(const floating *src, floating *dst,  # OUT: dst
                                const uint8_t *keep, Py_ssize_t r, Py_ssize_t inner,
                                bint inner_broadcast, const Py_ssize_t *sizes,
                                const Py_ssize_t *mask_strides, Py_ssize_t n_outer,
                                floating scale) noexcept nogil:
    # row r of x as (rows, inner): its outer axis groups give its place in the mask
    cdef Py_ssize_t k, j, rest = r, at = 0
    for k in range(n_outer - 1, -1, -1):
        at += (rest % sizes[k]) * mask_strides[k]
        rest = rest // sizes[k]
    cdef const floating *s = src + r * inner
    cdef floating *d = dst + r * inner
    if inner_broadcast:  # one decision for the whole run
        if keep[at]:
            for j in range(inner):
                d[j] = s[j] * scale
        else:
            for j in range(inner):
                d[j] = 0.0  # +0.0, whatever s held
    elif floating is float:
        _path.select_f32(s, d, keep + at, inner, scale)
    else:
        _path.select_f64(s, d, keep + at, inner, scale)


cdef void _broadcast_rows(const floating *src, floating *dst,  # OUT: dst
                          const uint8_t *keep, Py_ssize_t rows, Py_ssize_t inner,
                          bint inner_broadcast, const Py_ssize_t *sizes,
                          const Py_ssize_t *mask_strides, Py_ssize_t n_outer,
                          floating scale, int n_threads) noexcept nogil:
    # Rows are independent, so threads split them (a static schedule, as the dropout
    # loops): on one thread, Dropout2d held back many-threaded convolutional steps.
    cdef Py_ssize_t r
    if n_threads > rows:
        n_threads = <int>rows
    if n_threads > 1 and rows * inner >= PARALLEL_MIN:
        for r in prange(rows, schedule="static", num_threads=n_threads):
            _broadcast_row(src, dst, keep, r, inner, inner_broadcast, sizes,
                           mask_strides, n_outer, scale)
    else:
        for r in range(rows):
            _broadcast_row(src, dst, keep, r, inner, inner_broadcast, sizes,
                           mask_strides, n_outer, scale)


def broadcast_into(cnp.ndarray src, cnp.ndarray dst, cnp.ndarray keep, sizes,
                   mask_strides, bint inner_broadcast, double scale, int n_threads=1):
    """Dropout with a mask broadcast along some axes, in one pass over memory.

    Trusts its caller: src and dst are native, aligned, C-contiguous float32 or float64
    arrays of one dtype and size, the same array or disjoint; x's axes are merged into
    groups (sizes, outermost first) that are either all broadcast or all masked, the
    last group being the inner run; mask_strides give each outer group's step in keep
    (0 where broadcast); keep holds one byte per mask element, 1 = kept; n_threads >= 1
    (the rows are split among them; the bytes never depend on it).
    """
    cdef Py_ssize_t n_outer = len(sizes) - 1
    cdef Py_ssize_t inner = sizes[n_outer]
    cdef Py_ssize_t rows = cnp.PyArray_SIZE(src) // inner if inner else 0
    cdef Py_ssize_t[64] size_of, stride_of
    cdef Py_ssize_t k
    for k in range(n_outer):
        size_of[k] = sizes[k]
        stride_of[k] = mask_strides[k]
    cdef const uint8_t *mask = <const uint8_t *>cnp.PyArray_DATA(keep)
    if cnp.PyArray_TYPE(src) == cnp.NPY_FLOAT32:
        with nogil:
            _broadcast_rows[float](<const float *>cnp.PyArray_DATA(src),
                                   <float *>cnp.PyArray_DATA(dst), mask, rows, inner,
                                   inner_broadcast, size_of, stride_of, n_outer,
                                   <float>scale, n_threads)
    else:
        with nogil:
            _broadcast_rows[double](<const double *>cnp.PyArray_DATA(src),
                                    <double *>cnp.PyArray_DATA(dst), mask, rows, inner,
                                    inner_broadcast, size_of, stride_of, n_outer, scale,
                                    n_threads)


def affine_into(cnp.ndarray src, cnp.ndarray dst, cnp.ndarray keep, double a, double b,
                double c):
    """dst = src * a + b where keep, c elsewhere (alpha dropout), in one pass.

    Trusts its caller: src and dst are native, aligned, C-contiguous float32 or float64
    arrays of one dtype and size, the same array or disjoint; keep holds one byte per
    element, 1 = kept; a, b and c are already rounded to the dtype.
    """
    cdef int64_t n = cnp.PyArray_SIZE(src)
    cdef const uint8_t *mask = <const uint8_t *>cnp.PyArray_DATA(keep)
    if cnp.PyArray_TYPE(src) == cnp.NPY_FLOAT32:
        with nogil:
            _path.affine_f32(<const float *>cnp.PyArray_DATA(src),
                             <float *>cnp.PyArray_DATA(dst), mask, n, <float>a, <float>b,
                             <float>c)
    else:
        with nogil:
            _path.affine_f64(<const double *>cnp.PyArray_DATA(src),
                             <double *>cnp.PyArray_DATA(dst), mask, n, a, b, c)


def gauss_into(cnp.ndarray src, cnp.ndarray dst, cnp.ndarray words, cnp.ndarray z,
               uint64_t first, double sigma):
    """dst = src * (1 + sigma z), z the stream's standard normal deviates (src/gauss.h).

    Trusts its caller: src and dst are native, aligned, C-contiguous float32 or float64
    arrays of one dtype and size n, the same array or disjoint; words holds the stream's
    words of elements (first & ~1) up to the pair of element first + n - 1; z is a
    float64 scratch array of at least n elements. The factor is computed in float64 and
    rounded to the dtype once.
    """
    cdef int64_t j, n = cnp.PyArray_SIZE(src)
    cdef double *deviates = <double *>cnp.PyArray_DATA(z)
    with nogil:
        _path.gauss_fill(<const uint32_t *>cnp.PyArray_DATA(words), first, n, deviates)
    cdef const float *s32
    cdef float *d32
    cdef const double *s64
    cdef double *d64
    if cnp.PyArray_TYPE(src) == cnp.NPY_FLOAT32:
        s32, d32 = <const float *>cnp.PyArray_DATA(src), <float *>cnp.PyArray_DATA(dst)
        with nogil:
            for j in range(n):
                d32[j] = s32[j] * <float>(1.0 + sigma * deviates[j])
    else:
        s64, d64 = <const double *>cnp.PyArray_DATA(src), <double *>cnp.PyArray_DATA(dst)
        with nogil:
            for j in range(n):
                d64[j] = s64[j] * (1.0 + sigma * deviates[j])


# XLA's foreign function interface (src/xla_ffi.h): cdropout.jax runs the kernel inside
# compiled JAX programs through these handlers, registered for the CPU as PyCapsules.
# XLA calls them on its own threads, without the GIL: they run the block loops directly
# (no Ctrl-C check between chunks), on the threads the call's `threads` attribute names.

cdef struct _XlaCall:
    uint64_t seed
    uint64_t offset
    uint32_t threshold
    double scale
    int stream
    int threads
    Py_ssize_t n


cdef const char *_xla_read(XLA_FFI_CallFrame *frame, _XlaCall *call,  # OUT: call
                           int n_args) noexcept nogil:
    # The common part of both handlers' calls, or the error's message: the seed (the
    # last argument, uint32[2], high word first), the attributes, and the number of
    # elements of the result.
    if frame.args.size != n_args or frame.rets.size != 1:
        return "cdropout: a handler called with the wrong number of buffers"
    cdef XLA_FFI_Buffer *seed = <XLA_FFI_Buffer *>frame.args.args[n_args - 1]
    cdef XLA_FFI_Buffer *result = <XLA_FFI_Buffer *>frame.rets.rets[0]
    if seed.dtype != XLA_FFI_DataType_U32 or seed.rank != 1 or seed.dims[0] != 2:
        return "cdropout: the seed must be a uint32[2] buffer"
    cdef const uint32_t *words = <const uint32_t *>seed.data
    call.seed = (<uint64_t>words[0] << 32) | words[1]
    cdef const uint64_t *offset = <const uint64_t *>cdr_xla_scalar(
        frame, "offset", XLA_FFI_DataType_U64)
    cdef const uint64_t *threshold = <const uint64_t *>cdr_xla_scalar(
        frame, "threshold", XLA_FFI_DataType_U64)
    cdef const double *scale = <const double *>cdr_xla_scalar(
        frame, "scale", XLA_FFI_DataType_F64)
    cdef const int *stream = <const int *>cdr_xla_scalar(
        frame, "stream", XLA_FFI_DataType_S32)
    cdef const int *threads = <const int *>cdr_xla_scalar(
        frame, "threads", XLA_FFI_DataType_S32)
    if (offset == NULL or threshold == NULL or scale == NULL or stream == NULL
            or threads == NULL):
        return "cdropout: a handler called without its attributes"
    if threshold[0] > <uint64_t>0xFFFFFFFF or stream[0] < 0 or stream[0] > 1:
        return "cdropout: a threshold or a stream out of range"
    call.offset = offset[0]
    call.threshold = <uint32_t>threshold[0]
    call.scale = scale[0]
    call.stream = stream[0]
    call.threads = threads[0] if 0 < threads[0] <= _max_threads else 1
    if _in_forked_child or not CDR_OPENMP:
        call.threads = 1
    call.n = 1
    cdef int64_t k
    for k in range(result.rank):
        call.n *= result.dims[k]
    return NULL


cdef XLA_FFI_Error *_xla_dropout(XLA_FFI_CallFrame *frame) noexcept nogil:
    # dropout of argument 0 (float16, bfloat16, float32 or float64) into the result, of
    # the same dtype and size (the same memory when XLA aliases them)
    if cdr_xla_metadata(frame) or frame.stage != XLA_FFI_ExecutionStage_EXECUTE:
        return NULL
    cdef _XlaCall call
    cdef const char *problem = _xla_read(frame, &call, 2)
    if problem != NULL:
        return cdr_xla_error(frame, problem)
    cdef XLA_FFI_Buffer *x = <XLA_FFI_Buffer *>frame.args.args[0]
    cdef XLA_FFI_Buffer *y = <XLA_FFI_Buffer *>frame.rets.rets[0]
    if x.dtype != y.dtype:
        return cdr_xla_error(frame, "cdropout: the result's dtype is not the input's")
    if call.n == 0:
        return NULL
    cdef _Job job
    cdef Py_ssize_t size = 2
    if x.dtype == XLA_FFI_DataType_F32:
        size = 4
    elif x.dtype == XLA_FFI_DataType_F64:
        size = 8
    elif x.dtype != XLA_FFI_DataType_F16 and x.dtype != XLA_FFI_DataType_BF16:
        return cdr_xla_error(frame, "cdropout: dropout of an unsupported dtype")
    _setup_job(&job, call.seed, call.threshold, call.scale, call.stream, 0, 0.0,
               x.data == y.data, call.n * size)
    if x.dtype == XLA_FFI_DataType_F32:
        _run_blocks[float](<const float *>x.data, <float *>y.data, call.n, call.offset,
                           call.threads, &job)
    elif x.dtype == XLA_FFI_DataType_F64:
        _run_blocks[double](<const double *>x.data, <double *>y.data, call.n,
                            call.offset, call.threads, &job)
    elif x.dtype == XLA_FFI_DataType_BF16:
        _run_blocks[uint16_t](<const uint16_t *>x.data, <uint16_t *>y.data, call.n,
                              call.offset, call.threads, &job)
    else:
        _run_blocks[cdr_f16_word](<const cdr_f16_word *>x.data, <cdr_f16_word *>y.data,
                                  call.n, call.offset, call.threads, &job)
    return NULL


cdef XLA_FFI_Error *_xla_keep(XLA_FFI_CallFrame *frame) noexcept nogil:
    # the keep mask (a bool result, 1 = kept) of the result's number of elements
    if cdr_xla_metadata(frame) or frame.stage != XLA_FFI_ExecutionStage_EXECUTE:
        return NULL
    cdef _XlaCall call
    cdef const char *problem = _xla_read(frame, &call, 1)
    if problem != NULL:
        return cdr_xla_error(frame, problem)
    cdef XLA_FFI_Buffer *keep = <XLA_FFI_Buffer *>frame.rets.rets[0]
    if keep.dtype != XLA_FFI_DataType_PRED:
        return cdr_xla_error(frame, "cdropout: the keep mask must be a bool buffer")
    if call.n == 0:
        return NULL
    cdef _Job job
    _setup_job(&job, call.seed, call.threshold, 0.0, call.stream, 0, 0.0, False, call.n)
    _run_blocks[uint8_t](NULL, <uint8_t *>keep.data, call.n, call.offset, call.threads,
                         &job)
    return NULL


cdef XLA_FFI_Error *_xla_affine(XLA_FFI_CallFrame *frame) noexcept nogil:
    # alpha dropout's arithmetic: argument 0 x (float16, bfloat16, float32 or float64)
    # times a plus b where argument 1 (a bool mask of x's size) keeps it, c elsewhere,
    # into the result, a multiply then an add, each rounded, as the NumPy API computes
    # it (XLA's CPU code contracts x * a + b into one fused multiply-add)
    if cdr_xla_metadata(frame) or frame.stage != XLA_FFI_ExecutionStage_EXECUTE:
        return NULL
    if frame.args.size != 2 or frame.rets.size != 1:
        return cdr_xla_error(frame, "cdropout: the affine handler takes x and a mask")
    cdef XLA_FFI_Buffer *x = <XLA_FFI_Buffer *>frame.args.args[0]
    cdef XLA_FFI_Buffer *keep = <XLA_FFI_Buffer *>frame.args.args[1]
    cdef XLA_FFI_Buffer *y = <XLA_FFI_Buffer *>frame.rets.rets[0]
    cdef const double *a = <const double *>cdr_xla_scalar(frame, "a",
                                                          XLA_FFI_DataType_F64)
    cdef const double *b = <const double *>cdr_xla_scalar(frame, "b",
                                                          XLA_FFI_DataType_F64)
    cdef const double *c = <const double *>cdr_xla_scalar(frame, "c",
                                                          XLA_FFI_DataType_F64)
    if a == NULL or b == NULL or c == NULL:
        return cdr_xla_error(frame, "cdropout: the affine handler needs a, b and c")
    if x.dtype != y.dtype or keep.dtype != XLA_FFI_DataType_PRED:
        return cdr_xla_error(frame, "cdropout: the affine handler's dtypes differ")
    cdef int64_t k, n = 1
    for k in range(y.rank):
        n *= y.dims[k]
    cdef const uint8_t *mask = <const uint8_t *>keep.data
    cdef float buffer[CDR_BLOCK]
    cdef cdr_widen_fn widen = _path.widen_f16
    cdef cdr_narrow_fn narrow = _path.narrow_f16
    cdef int64_t start, count
    if x.dtype == XLA_FFI_DataType_F32:
        _path.affine_f32(<const float *>x.data, <float *>y.data, mask, n, <float>a[0],
                         <float>b[0], <float>c[0])
    elif x.dtype == XLA_FFI_DataType_F64:
        _path.affine_f64(<const double *>x.data, <double *>y.data, mask, n, a[0], b[0],
                         c[0])
    elif x.dtype == XLA_FFI_DataType_F16 or x.dtype == XLA_FFI_DataType_BF16:
        if x.dtype == XLA_FFI_DataType_BF16:
            widen, narrow = _path.widen_bf16, _path.narrow_bf16
        start = 0
        while start < n:  # through float32, a block at a time, rounded once
            count = min(<int64_t>CDR_BLOCK, n - start)
            widen(<const uint16_t *>x.data + start, buffer, count)
            _path.affine_f32(buffer, buffer, mask + start, count, <float>a[0],
                             <float>b[0], <float>c[0])
            narrow(buffer, <uint16_t *>y.data + start, count)
            start += count
    else:
        return cdr_xla_error(frame, "cdropout: alpha dropout of an unsupported dtype")
    return NULL


def xla_ffi_handlers():
    """The XLA FFI handlers of the kernel for jax.ffi.register_ffi_target (platform
    "cpu"), by target name, each a PyCapsule of its function."""
    return {
        "cdropout_dropout": PyCapsule_New(<void *>_xla_dropout, NULL, NULL),
        "cdropout_keep": PyCapsule_New(<void *>_xla_keep, NULL, NULL),
        "cdropout_affine": PyCapsule_New(<void *>_xla_affine, NULL, NULL),
    }


def mask_into(cnp.ndarray dst, uint64_t seed, uint64_t offset, uint32_t threshold,
              int n_threads, int stream=0):
    """Write the keep mask (1 = kept) of stream elements [offset, offset + dst.size).

    Trusts its caller: dst is a non-empty C-contiguous array of one-byte items; stream
    a value of STREAMS.
    """
    _run_chunks[uint8_t](NULL, <uint8_t *>cnp.PyArray_DATA(dst), cnp.PyArray_SIZE(dst),
                         seed, offset, threshold, 0, n_threads, stream)


def raw_stream(uint64_t seed, uint64_t offset, Py_ssize_t n, int n_threads=1,
               int stream=0):
    """The generator's 32-bit words for stream elements [offset, offset + n), of the
    stream with this value of STREAMS.

    Gaussian dropout's source, and the hook for known-answer tests and RNG test
    batteries; not a public API.
    """
    out = cnp.PyArray_EMPTY(1, [n], cnp.NPY_UINT32, 0)
    if n > 0:
        _run_chunks[uint32_t](NULL, <uint32_t *>cnp.PyArray_DATA(out), n, seed, offset, 0,
                              0, n_threads, stream)
    return out


def set_thread_limits(int usable_cpus, int max_threads):
    """The CPUs this process may use and the most threads a call starts (at import)."""
    global _usable_cpus, _max_threads
    _usable_cpus = max(usable_cpus, 1)
    _max_threads = max(max_threads, 1)


def scale_floor(cnp.ndarray src, cnp.ndarray dst, double scale, int n_threads):
    """dst = src * scale over OpenMP threads: the benchmark's parallel floor.

    The memory traffic of dropout with none of its work, split among threads as the
    dropout loops split it (a static schedule), since NumPy's multiply runs on one
    thread. Trusts its caller: native, C-contiguous float32 or float64 arrays of one
    dtype and size. Not a public API.
    """
    cdef Py_ssize_t i, n = cnp.PyArray_SIZE(src)
    cdef float s32 = <float>scale
    cdef const float *a32
    cdef float *b32
    cdef const double *a64
    cdef double *b64
    if cnp.PyArray_TYPE(src) == cnp.NPY_FLOAT32:
        a32, b32 = <const float *>cnp.PyArray_DATA(src), <float *>cnp.PyArray_DATA(dst)
        with nogil:
            for i in prange(n, schedule="static", num_threads=n_threads):
                b32[i] = a32[i] * s32
    else:
        a64, b64 = <const double *>cnp.PyArray_DATA(src), <double *>cnp.PyArray_DATA(dst)
        with nogil:
            for i in prange(n, schedule="static", num_threads=n_threads):
                b64[i] = a64[i] * scale


def register_bfloat16(int type_number):
    """Let the fast path take arrays of this type number as bfloat16 (cdropout.functional
    passes ml_dtypes.bfloat16's when it first sees one)."""
    global _bfloat16_type
    _bfloat16_type = type_number


def mark_forked_child():
    """Run serially from now on: called in a child process right after fork()."""
    global _in_forked_child
    _in_forked_child = True


def in_forked_child():
    """Whether this process was forked after cdropout was imported."""
    return _in_forked_child


def threshold(double p):
    """T = round(p * 2**32) as the fast path computes it (tests compare it with Python's)."""
    return _threshold(p)


def call_seed(uint64_t seed, uint64_t counter):
    """The seed of forward call number `counter` of a Dropout layer seeded with `seed`."""
    return cdr_call_seed(seed, counter)


def use_isa(int level):
    """Use the best ISA path the CPU runs, at most `level`; return its name.

    For cdropout._runtime: at import (CDROPOUT_ISA), and in its isa() context manager.
    Every path gives the same bytes.
    """
    global _path
    _path = cdr_select_path(level, _cpu.best_path)
    return _path.name.decode()


def isa_level():
    """The level of the ISA path in use (a value of ISA_LEVELS)."""
    return next(level for name, level in ISA_LEVELS.items()
                if name == _path.name.decode())


def use_prefetch(str kind):
    """Prefetch the source "far" (prefetchnta, half a block), "near" (prefetcht1, 4 KB)
    or as the CPU's vendor wants ("auto"); return the kind in use. At import, by
    cdropout._runtime (CDROPOUT_PREFETCH); the bytes never depend on it."""
    global cdr_prefetch_far
    if kind == "auto":
        cdr_prefetch_far = _cpu.prefetch_far
    else:
        cdr_prefetch_far = kind == "far"
    return prefetch_kind()


def set_prefetch_distance(int64_t distance):
    """Bytes ahead for the "near" prefetch (4096 by default): a benchmark hook."""
    global cdr_prefetch_near
    cdr_prefetch_near = distance


def prefetch_kind():
    """How the out-of-cache loop prefetches: "far" or "near"."""
    return "far" if cdr_prefetch_far else "near"


def isa_path():
    """The name of the ISA path in use."""
    return _path.name.decode()


def best_isa():
    """The name of the best ISA path this CPU runs."""
    return cdr_select_path(_cpu.best_path, _cpu.best_path).name.decode()


def openmp_enabled():
    """Whether the extension was built with OpenMP."""
    return bool(CDR_OPENMP)


def default_threads():
    """OpenMP's default thread count: OMP_NUM_THREADS, threadpoolctl, or the cores."""
    return omp_get_max_threads()


def same_data(cnp.ndarray a, cnp.ndarray b):
    """Whether two arrays start at the same address."""
    return cnp.PyArray_DATA(a) == cnp.PyArray_DATA(b)
