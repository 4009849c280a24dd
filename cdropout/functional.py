"""The functional API: dropout(), its variants, dropout_mask() and draw_seed().

Each call checks every argument first (cdropout._params), then makes one pass of the
compiled kernel over memory it can work on directly, copying only where the layout
asks for it: strided, non-native or misaligned input, an `out` that partly overlaps
`x`, and float16 or bfloat16 input of the alpha and Gaussian variants (through float32).
"""

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from cdropout import _bfloat16, _call, _kernel, _params, _runtime
from cdropout._threads import resolve_threads
from cdropout._typing import (
    FloatArray,
    Mode,
    NoiseShape,
    Probability,
    Seed,
    Shape,
    Stream,
)


# The common call (contiguous native float16/32/64 or bfloat16, float p, int seed: see
# _kernel.dropout_fast) is checked and run in C without entering this function.
@_kernel.with_fast_path
def dropout(
    x: Any,
    p: Probability = 0.5,
    *,
    seed: Seed = None,
    training: bool = True,
    mode: Mode = "inverted",
    out: FloatArray | None = None,
    offset: int = 0,
    n_threads: int | None = None,
    noise_shape: NoiseShape | None = None,
    stream: Stream = "xoshiro",
) -> FloatArray:
    """Randomly zero elements of `x` with probability `p`, and rescale the rest.

    Parameters
    ----------
    x : array_like of float16, float32, float64 or bfloat16
        Any shape (0-d and empty included), any strides and byte order. bfloat16 is
        ml_dtypes.bfloat16 (JAX's NumPy type); it and float16 compute in float32 and
        round once.
    p : float
        Probability of dropping each element, 0 <= p <= 1.
    seed : None, int, sequence of ints, SeedSequence, BitGenerator, Generator, ...
        The stream's key: an int in [0, 2**64) is the key itself; a sequence of
        non-negative ints goes through numpy.random.SeedSequence, as default_rng does;
        a SeedSequence gives its first 64-bit state word; a Generator, BitGenerator,
        RandomState or the ``numpy.random`` module (as seeded by ``np.random.seed``)
        gives one 64-bit draw, so successive calls differ; None draws fresh OS entropy.
        ``draw_seed(seed)`` returns the key a call would use.
    training : bool
        False: evaluation, with no randomness and no draw from `seed`.
    mode : {"inverted", "classic"}
        inverted: training scales kept elements by 1/(1-p), evaluation returns x.
        classic: training keeps elements as they are, evaluation returns x * (1-p).
    out : ndarray, optional
        Where to write the result: ``out=x`` works in place. Any writeable array of x's
        shape and dtype (either byte order); by default a new array.
    offset : int
        The flat index of x's first element inside a larger logical array, so that a
        large array processed in chunks gets the bytes it would get in one call.
    n_threads : int, optional
        None: OpenMP's default (OMP_NUM_THREADS, or a threadpoolctl limit set in the
        calling thread), at most the CPUs this process may use (affinity mask, cgroup
        quota); a positive count (at most 256 threads are started, and never more
        than the call has pairs of 4096-element blocks); -1 all usable CPUs, -2 all
        but one, ... The result never depends on it.
    noise_shape : tuple, optional
        The shape of the mask (Keras's noise_shape): per axis, 1 to broadcast one
        decision along it, or x's size (None means x's size). For x of shape
        (N, C, H, W), ``noise_shape=(N, C, 1, 1)`` drops whole channels like PyTorch's
        Dropout2d, and ``(None, None, 1, 1)`` says the same for any size. The mask's
        own C-order indices (plus `offset`) are its element indices in the stream.
    stream : {"xoshiro", "counter"}
        The random stream (docs/stream.md): "xoshiro", xoshiro128++ lanes in blocks of
        4096 elements (the default); "counter", the counter-based SplitMix64 stream
        (java.util.SplittableRandom's), whose every word is a function of the key and
        the element index alone, so that compilers generate it fused with the
        operations around it (cdropout.torch's default).

    Returns
    -------
    ndarray
        `out`, or a new array of x's dtype in native byte order.

    Raises
    ------
    TypeError
        For a non-float dtype of x or out, or an argument of the wrong kind.
    ValueError
        For p outside [0, 1] or NaN, an unknown mode, n_threads == 0 or above
        2**31 - 1, a bad offset or seed, or an `out` that is read-only, of another
        shape or self-overlapping.

    Notes
    -----
    The mask is a pure function of (seed, p, element index), the index being the flat
    C-order index plus `offset`: the same seed gives the same bytes on any thread count,
    memory layout, chunking and machine, and equals ``cdropout.reference.dropout``.
    A dropped element is exactly +0.0, whatever it held. p = 0 returns an exact copy,
    p = 1 all zeros. Checks run before any byte is written: a failed call leaves x and
    out as they were.

    A long call can be interrupted (Ctrl-C, KeyboardInterrupt) within a few
    milliseconds: the work runs in chunks of a few million elements. In place, the
    chunks done by then hold their dropout and the rest is as it was; a new output is
    not returned. The GIL is released while the kernel runs on 32,768 elements or more.

    Dropout is linear in x, so its gradient is the same call on the gradient:
    ``dropout(grad, p, seed=key, mode=mode, offset=offset)`` with the key of the
    forward call (an int seed, or ``draw_seed(seed)`` drawn once and passed to both).

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> cdropout.dropout(np.ones(8, np.float32), 0.5, seed=7)
    array([2., 2., 0., 0., 2., 0., 0., 2.], dtype=float32)
    >>> x = np.ones(4)
    >>> y = cdropout.dropout(x, 0.25, seed=1, out=x)  # in place
    >>> y is x
    True
    """
    call = _call.checked(_call.DROPOUT, x, p, seed, training, mode, out, offset,
                         n_threads, noise_shape, stream)  # fmt: skip
    if not isinstance(call, _call.Call):
        return call  # evaluation
    x, p, dst, key, offset = call.x, call.p, call.dst, call.key, call.offset
    work = (key, offset, call.n_threads, _kernel.STREAMS[call.stream])
    threshold = _params.threshold(p)
    if x.size == 0:
        return dst
    if p == 0.0:
        np.copyto(dst, x)
    elif threshold == _params.THRESHOLD_ALL:
        dst[...] = 0.0
    else:
        scale = _params.training_scale(p, call.mode, x.dtype)
        if call.noise != x.shape:
            _drop_broadcast(x, dst, call.noise, threshold, scale, work)
        elif _bfloat16.is_bfloat16(x.dtype):  # the kernel works on its 16-bit words
            _runtime.take_bfloat16(x.dtype)  # the fast path takes the next ones
            words = _bfloat16.words(x), _bfloat16.words(dst)
            _drop_plain(*words, threshold, scale, work)
        else:  # float16 too: the kernel reads and writes its words
            _drop_plain(x, dst, threshold, scale, work)
    return dst


def _drop_plain(x, dst, threshold, scale, work):
    # A function of its own: a closure inside dropout() would give dropout() cells that
    # cost ~90 ns on every call it runs. work: (key, offset, n_threads, stream number).
    key, offset, n_threads, stream = work

    def kernel(src, to):
        _kernel.dropout_into(src, to, key, offset, threshold, scale, n_threads, stream)

    _on_kernel_memory(x, dst, kernel)


def _kernel_ready(a):
    """Whether the kernel can read and write `a` directly."""
    flags = a.flags
    return flags.c_contiguous and flags.aligned and flags.writeable and a.dtype.isnative


def _on_kernel_memory(x, dst, kernel):
    """Run kernel(src, dst) on memory it can take directly, copying where needed."""
    x_ready = x.flags.c_contiguous and x.flags.aligned and x.dtype.isnative
    if _kernel_ready(dst) and x_ready:
        if _kernel.same_data(x, dst) or not np.may_share_memory(x, dst):
            kernel(x, dst)
            return
    # Copy first: this handles strides, byte order, alignment and partial overlap.
    work = dst if _kernel_ready(dst) else _params.new_output(x)
    np.copyto(work, x)
    kernel(work, work)
    if work is not dst:
        np.copyto(dst, work)


def _on_kernel_memory_any_float(x, dst, kernel):
    """_on_kernel_memory, float16 and bfloat16 too: through float32, rounded once."""
    if _bfloat16.is_bfloat16(x.dtype):
        work = _bfloat16.to_float32(_bfloat16.words(x))
        kernel(work, work)
        _bfloat16.words(dst)[...] = _bfloat16.from_float32(work)
    elif x.dtype.itemsize == 2:
        work = np.array(x, np.float32, order="C")
        kernel(work, work)
        np.copyto(dst, work, casting="same_kind")
    else:
        _on_kernel_memory(x, dst, kernel)


def _drop_broadcast(x, dst, noise, threshold, scale, work):
    # The mask over the noise shape, then one pass over x applying it broadcast.
    key, offset, n_threads, stream = work
    keep = np.empty(noise, np.uint8)
    _kernel.mask_into(keep, key, offset, threshold, n_threads, stream)
    apply_keep(x, dst, keep, scale, n_threads)


def apply_keep(x, dst, keep, scale, n_threads=1):
    """dst = x * scale where `keep` (uint8, 1 = kept, broadcast to x), +0.0 elsewhere.

    Trusts its caller: x a checked float array, dst its output, keep C-contiguous of a
    shape that broadcasts to x's, scale rounded to x's arithmetic.
    """
    sizes, mask_strides, inner_broadcast = _broadcast_groups(x.shape, keep.shape)

    def kernel(src, to):
        _kernel.broadcast_into(
            src, to, keep, sizes, mask_strides, inner_broadcast, scale, n_threads
        )

    _on_kernel_memory_any_float(x, dst, kernel)


def _broadcast_groups(shape, noise):
    """x's axes merged into runs that are all broadcast or all masked, outermost first.

    Returns their sizes, each run's step in the C-ordered mask (0 where broadcast) and
    whether the innermost run is broadcast. Axes of size 1 join either kind.
    """
    groups = []
    for size, dim in zip(shape, noise, strict=True):
        if size == 1:
            continue
        broadcast = dim == 1
        if groups and groups[-1][1] == broadcast:
            groups[-1][0] *= size
        else:
            groups.append([size, broadcast])
    groups = groups or [[1, False]]
    mask_strides, step = [], 1
    for size, broadcast in reversed(groups):
        mask_strides.append(0 if broadcast else step)
        step *= 1 if broadcast else size
    return [size for size, _ in groups], mask_strides[::-1], groups[-1][1]


def alpha_dropout(
    x: Any,
    p: Probability = 0.5,
    *,
    seed: Seed = None,
    training: bool = True,
    out: FloatArray | None = None,
    offset: int = 0,
    n_threads: int | None = None,
    noise_shape: NoiseShape | None = None,
    stream: Stream = "xoshiro",
) -> FloatArray:
    """Alpha dropout, for self-normalising (SELU) networks: PyTorch's AlphaDropout.

    A dropped element takes SELU's negative saturation value, and every element then
    goes through the affine map that keeps a mean of 0 and a variance of 1:
    kept elements become ``a * x + b``, dropped ones the constant ``a * (-alpha) + b``,
    with ``alpha = 1.7580993408473766``, ``a = ((1-p) (1 + p alpha**2)) ** -0.5`` and
    ``b = a alpha p``. The decisions are those of ``dropout`` for the same seed, p and
    offset. Evaluation (``training=False``) is the identity.

    Parameters
    ----------
    x, p, seed, training, out, offset, n_threads, noise_shape, stream
        As for dropout(). p = 0 is an exact copy, p = 1 all zeros. With a noise_shape,
        the decisions of the mask's elements are broadcast (FeatureAlphaDropout of
        PyTorch drops whole channels this way).

    Returns
    -------
    ndarray
        `out`, or a new array of x's dtype in native byte order.

    Notes
    -----
    The mask is drawn first (one byte per element), then applied in one pass. Unlike
    PyTorch, a dropped element does not depend on x: a dropped inf or NaN also becomes
    the constant.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.random.default_rng(0).standard_normal(1_000_000)
    >>> y = cdropout.alpha_dropout(x, 0.2, seed=1)
    >>> round(float(y.mean()), 2), round(float(y.var()), 2)
    (0.0, 1.0)
    """

    def alpha_kernel(x, p, seed, offset, noise, n_threads, stream):
        threshold = _params.threshold(p)
        if threshold == _params.THRESHOLD_ALL:
            return None  # all zeros
        a, b, c = _params.alpha_constants(p, x.dtype)
        keep = np.empty(noise, np.uint8)
        _kernel.mask_into(keep, seed, offset, threshold, n_threads, stream)
        if noise != x.shape:
            keep = np.ascontiguousarray(np.broadcast_to(keep, x.shape))
        return lambda src, to: _kernel.affine_into(src, to, keep, a, b, c)

    return _variant(_call.ALPHA, x, p, seed, training, out, offset, n_threads,
                    noise_shape, stream, alpha_kernel)  # fmt: skip


GAUSS_CHUNK = 1 << 16  # elements per batch of stream words


def gaussian_dropout(
    x: Any,
    p: Probability = 0.5,
    *,
    seed: Seed = None,
    training: bool = True,
    out: FloatArray | None = None,
    offset: int = 0,
    n_threads: int | None = None,
    noise_shape: NoiseShape | None = None,
    stream: Stream = "xoshiro",
) -> FloatArray:
    """Gaussian dropout (Keras's GaussianDropout): multiply by N(1, p / (1 - p)).

    Each element is multiplied by ``1 + sigma z``, ``sigma = sqrt(p / (1 - p))``, with z
    a standard normal deviate made from the stream: Box-Muller on the words of the
    element pair (2k, 2k+1) holding it, with polynomial log, sin and cos that the
    reference repeats exactly (see cdropout/src/gauss.h). The mean and the variance of
    dropout with the same p are kept. Evaluation is the identity.

    Parameters
    ----------
    x, seed, training, out, offset, n_threads, stream
        As for dropout(). The threads generate the stream's words; the deviates are
        computed on the calling thread.
    p : float
        0 <= p < 1; p = 0 is an exact copy.
    noise_shape : tuple, optional
        As for dropout(): one factor per element of the noise shape, broadcast, the
        factor of mask element k being that of stream element offset + k.

    Returns
    -------
    ndarray
        `out`, or a new array of x's dtype in native byte order.

    Notes
    -----
    The factor is computed in float64 and rounded once to the dtype (float32 for
    float16 inputs, whose product is rounded once more, to float16).
    ``|z| <= 6.66``: the tails beyond are cut, with probability 3e-11.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> y = cdropout.gaussian_dropout(np.ones(1_000_000), 0.5, seed=1)
    >>> round(float(y.mean()), 2), round(float(y.var()), 2)
    (1.0, 1.0)
    """

    def gaussian_kernel(x, p, seed, offset, noise, n_threads, stream):
        sigma = _params.gaussian_sigma(p)

        def kernel(src, to):
            flat_src, flat_dst = src.reshape(-1), to.reshape(-1)
            deviates = np.empty(min(flat_src.size, GAUSS_CHUNK))
            for start in range(0, flat_src.size, GAUSS_CHUNK):
                stop = min(start + GAUSS_CHUNK, flat_src.size)
                first = offset + start
                count = _pairs_end(first, stop - start)
                words = _kernel.raw_stream(seed, first & ~1, count, n_threads, stream)
                _kernel.gauss_into(flat_src[start:stop], flat_dst[start:stop], words,
                                   deviates, first, sigma)  # fmt: skip

        if noise == x.shape:
            return kernel
        # one factor per mask element: the kernel applied to ones gives the factors
        # exactly (1 * f is f), in the arithmetic of x's dtype (float32 for float16)
        factors = np.ones(noise, np.float64 if x.dtype.itemsize == 8 else np.float32)
        kernel(factors, factors)
        return lambda src, to: np.multiply(src, factors, out=to)

    return _variant(_call.GAUSSIAN, x, p, seed, training, out, offset, n_threads,
                    noise_shape, stream, gaussian_kernel)  # fmt: skip


def _variant(variant, x, p, seed, training, out, offset, n_threads, noise_shape,
             stream, make_kernel):  # fmt: skip
    """What alpha and Gaussian dropout share after the checked call: the identity for
    p = 0 and empty inputs, and float16 through float32.

    make_kernel(x, p, seed, offset, noise, n_threads, stream number) gives the
    kernel(src, dst) of the training arithmetic, or None for all zeros.
    """
    call = _call.checked(variant, x, p, seed, training, "inverted", out, offset,
                         n_threads, noise_shape, stream)  # fmt: skip
    if not isinstance(call, _call.Call):
        return call  # evaluation: the identity
    x, dst = call.x, call.dst
    if x.size == 0 or call.p == 0.0:
        np.copyto(dst, x)
        return dst
    kernel = make_kernel(x, call.p, call.key, call.offset, call.noise, call.n_threads,
                         _kernel.STREAMS[call.stream])  # fmt: skip
    if kernel is None:
        dst[...] = 0.0
    else:
        _on_kernel_memory_any_float(x, dst, kernel)
    return dst


def _pairs_end(first, n):
    """How many words, from element first & ~1, cover the pairs of n elements."""
    return ((first & 1) + n + 1) & ~1


def dropout_mask(
    shape: Shape,
    p: Probability = 0.5,
    *,
    seed: Seed = None,
    offset: int = 0,
    n_threads: int | None = None,
    stream: Stream = "xoshiro",
) -> npt.NDArray[np.bool_]:
    """The keep mask that dropout() applies for the same seed, p, offset and stream.

    Parameters
    ----------
    shape : int or tuple of ints
    p : float
        Probability of dropping each element, 0 <= p <= 1.
    seed, offset, n_threads, stream
        As for dropout().

    Returns
    -------
    ndarray of bool
        True where the element is kept.

    Notes
    -----
    The same stream as dropout(): ``dropout(x, p, seed=s)`` is zero exactly where
    ``dropout_mask(x.shape, p, seed=s)`` is False (and x * 1/(1-p) elsewhere).

    Examples
    --------
    >>> import cdropout
    >>> cdropout.dropout_mask(8, 0.5, seed=7)
    array([ True,  True, False, False,  True, False, False,  True])
    """
    dims = _params.shape(shape)
    p = _params.probability(p)
    offset = _params.offset(offset, math.prod(dims))
    n_threads = resolve_threads(n_threads)
    stream_number = _kernel.STREAMS[_params.stream(stream)]
    mask = np.empty(dims, np.bool_)
    # last: a Generator is drawn from only once all is valid and allocated
    key = _params.seed_value(seed)
    threshold = _params.threshold(p)
    if mask.size == 0:
        return mask
    if threshold == 0:
        mask[...] = True
    elif threshold == _params.THRESHOLD_ALL:
        mask[...] = False
    else:
        _kernel.mask_into(mask, key, offset, threshold, n_threads, stream_number)
    return mask


def draw_seed(seed: Seed = None) -> int:
    """The 64-bit stream key that a call with this `seed` uses, as an int.

    Draw it once to use one stream in several calls, for example a forward call and its
    backward (``dropout(grad, p, seed=key)``), or to record the key of a ``seed=None``
    call. Takes every seed that dropout() takes; a Generator, BitGenerator,
    RandomState or the ``numpy.random`` module advances by one 64-bit draw, and None
    draws fresh OS entropy, exactly as a dropout call would.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> cdropout.draw_seed(42)
    42
    >>> key = cdropout.draw_seed(np.random.default_rng(0))
    >>> x = np.ones(6)
    >>> y = cdropout.dropout(x, 0.5, seed=key)
    >>> bool(np.array_equal(cdropout.dropout(np.ones(6), 0.5, seed=key), y))
    True
    """
    return _params.seed_value(seed)
