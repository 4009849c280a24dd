"""Argument checking for the public functions, and the numbers derived from p.

Every check runs before any byte is written; shared by cdropout.functional and
cdropout.reference so that both accept and refuse exactly the same calls.
"""

import math
import numbers
import os
import reprlib

import numpy as np

from cdropout._bfloat16 import is_bfloat16

MODES = ("inverted", "classic")
# the random streams (docs/stream.md): xoshiro128++ lanes in blocks (the NumPy API's
# default), and the counter-based SplitMix64 stream that compilers can generate
STREAMS = ("xoshiro", "counter")
FLOAT_DTYPES = ("float16", "float32", "float64", "bfloat16")
OFFSET_LIMIT = 2**63  # offset + size stays below this: 64-bit indices, no wraparound
THRESHOLD_ALL = 2**32  # the threshold of p = 1: every 32-bit word is below it


def probability(p, name="p"):
    """p as a float in [0, 1] (a real number, or a 0-d array of one); `name` is the
    caller's name for it (flax's is rate)."""
    if type(p) is float and 0.0 <= p <= 1.0:  # the common call, without the ABC checks
        return p
    if isinstance(p, np.ndarray) and p.ndim == 0 and p.dtype.kind in "fiu":
        p = p[()]
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(
            f"{name} must be a real number in [0, 1], got {shown(p)}"
        )
    # compared in p's own type: a long double or a Fraction just above 1 rounds to 1.0
    if not (0 <= p <= 1):  # also refuses NaN
        hint = (f": a probability, not a percent ({name}={float(p) / 100:g} drops "
                f"{float(p):g}%)" if 1 < p <= 100 else "")  # fmt: skip
        raise ValueError(f"{name} must satisfy 0 <= {name} <= 1, got {p!r}{hint}")
    return float(p)


def shown(value):
    """A refused value for a message: its type and (shortened) repr."""
    return f"{type(value).__name__} {reprlib.repr(value)}"


def mode(value):
    if not isinstance(value, str) or value not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {value!r}")
    return value


def stream(value):
    if not isinstance(value, str) or value not in STREAMS:
        raise ValueError(f"stream must be one of {STREAMS}, got {value!r}")
    return value


def flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def float_array(x, name="x"):
    """x as an ndarray of a supported float dtype (array-likes are converted).

    Subclasses (np.matrix, masked arrays) become plain arrays: their operators mean
    other things, and a masked array's mask would be silently ignored.
    """
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} must be a plain array, got a numpy.ma.MaskedArray (its mask would "
            f"be ignored): pass {name}.filled(...) or {name}.data"
        )
    if type(x) is not np.ndarray and hasattr(x, "__dask_graph__"):
        # np.asarray would compute the whole array into memory, silently
        raise TypeError(
            f"{name} must be a NumPy array, got a lazy {type(x).__module__}."
            f"{type(x).__name__}: use cdropout.dask.dropout, which gives the bytes of "
            "one NumPy call chunk by chunk (or compute it first)"
        )
    given = type(x)
    if given is not np.ndarray:
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as error:  # ragged lists, odd objects
            raise TypeError(
                f"{name} must be an array of float16, float32, float64 or bfloat16, "
                f"got {given.__name__} that NumPy cannot convert ({error})"
            ) from None
    if not is_float(x.dtype):
        # a list of ints is an int64 array to NumPy: say what was given
        got = str(x.dtype) if given is np.ndarray else (
            f"a {given.__name__} that NumPy reads as {x.dtype}"
        )
        raise TypeError(
            f"{name} must have dtype float16, float32, float64 or bfloat16, got {got}"
        )
    return x


def is_float(dtype):
    """float16, float32, float64 (either byte order) or ml_dtypes' bfloat16."""
    return (dtype.kind == "f" and dtype.itemsize in (2, 4, 8)) or is_bfloat16(dtype)


def same_float(a, b):
    """Whether two float dtypes are one type, byte order aside."""
    return a.itemsize == b.itemsize and is_bfloat16(a) == is_bfloat16(b)


def output(out, x, given=None):
    """out, checked against x: None, or a writeable array of x's shape and dtype.

    `given` is the x the caller passed (before conversion): out is it for a call in
    place (out=x, a layer's inplace=True), whose refusals name x.
    """
    if out is None:
        return None
    if out is given:  # in place
        if not isinstance(out, np.ndarray) or isinstance(out, np.ma.MaskedArray):
            raise TypeError(
                "x must be a numpy.ndarray to be written in place (out=x, or a layer's "
                f"inplace=True), got {type(out).__name__}"
            )
        if not out.flags.writeable:
            raise ValueError(
                "x must be writeable to be written in place (out=x, or a layer's "
                "inplace=True), got a read-only array"
            )
    if not isinstance(out, np.ndarray) or isinstance(out, np.ma.MaskedArray):
        raise TypeError(
            f"out must be None or a numpy.ndarray, got {type(out).__name__}"
        )
    if not is_float(out.dtype) or not same_float(out.dtype, x.dtype):
        raise TypeError(f"out must have dtype {x.dtype.name} like x, got {out.dtype}")
    if out.shape != x.shape:
        raise ValueError(f"out must have shape {x.shape} like x, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable, got a read-only array")
    if may_self_overlap(out):
        raise ValueError(
            "out must not have overlapping elements (writes to them would race), got "
            f"shape {out.shape} with strides {out.strides}, as from numpy.broadcast_to "
            "or as_strided"
        )
    return out


# Arrays up to this size that fail the quick test get the exact one (a sort of their
# element addresses, 8 bytes each); larger ones are refused as possibly overlapping.
EXACT_OVERLAP_MAX = 1 << 22


def may_self_overlap(a):
    """Whether two elements of the array `a` may share bytes (see
    may_self_overlap_layout)."""
    return may_self_overlap_layout(a.shape, a.strides, a.itemsize)


def may_self_overlap_layout(shape, strides, itemsize):
    """Whether two elements of an array of this shape, byte strides and item size may
    share bytes.

    Quick sufficient test for no overlap: with the axes of more than one element sorted
    by stride size, each stride spans all the bytes that the smaller axes reach. Every
    array made by slicing, transposing or reshaping passes. An array that fails it (a
    zero stride, as from broadcast_to, or an as_strided view) and holds at most
    EXACT_OVERLAP_MAX elements gets the exact test: its element addresses, sorted, must
    lie at least an item apart.
    """
    size = math.prod(shape)
    if size <= 1:  # NumPy gives empty arrays arbitrary strides
        return False
    span = itemsize
    axes = zip(strides, shape, strict=True)
    for stride, length in sorted((abs(s), n) for s, n in axes if n > 1):
        if stride < span:
            if size > EXACT_OVERLAP_MAX:
                return True
            return _overlaps_exactly(shape, strides, itemsize)
        span += stride * (length - 1)
    return False


def _overlaps_exactly(shape, strides, itemsize):
    addresses = np.zeros(1, np.int64)
    for stride, length in zip(strides, shape, strict=True):
        steps = np.arange(length, dtype=np.int64) * stride
        addresses = (addresses[:, None] + steps[None, :]).reshape(-1)
    addresses.sort()
    return bool(np.any(np.diff(addresses) < itemsize))


def new_output(x):
    """A new C-ordered array for the result: x's dtype in native byte order."""
    return np.empty(x.shape, x.dtype.newbyteorder("="))


def offset(value, size):
    if type(value) is int and 0 <= value and value + size <= OFFSET_LIMIT:  # common
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"offset must be an int, got {type(value).__name__}")
    value = int(value)
    if value < 0 or value + size > OFFSET_LIMIT:
        raise ValueError(
            f"offset must satisfy 0 <= offset and offset + size <= 2**63, "
            f"got offset={value} with size {size}"
        )
    return value


SEED_KINDS = (
    "None, an int in [0, 2**64), a sequence of non-negative ints, a "
    "numpy.random.SeedSequence, BitGenerator, Generator or RandomState, or the "
    "numpy.random module"
)
# Sources of randomness that give one 64-bit draw per call (they advance).
_DRAWN = (np.random.Generator, np.random.BitGenerator, np.random.RandomState)


class SeedSource:
    """A seed that gives its key when a call draws one, and not before: a layer's call
    counter (cdropout.layers), passed as `seed` to the functional API. check() raises
    if no key can be drawn; draw() returns the key (and advances)."""

    def check(self):
        pass

    def draw(self):
        raise NotImplementedError


def check_seed(seed):
    """Check the kind and range of seed without drawing from it."""
    if seed is None or seed is np.random:
        return
    if isinstance(seed, SeedSource):
        seed.check()
        return
    if isinstance(seed, (np.random.SeedSequence, *_DRAWN)):
        return
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"seed must be {SEED_KINDS}, got {shown(seed)}")
    if isinstance(seed, numbers.Integral):
        if not (0 <= seed < 2**64):
            raise ValueError(f"seed must satisfy 0 <= seed < 2**64, got {seed}")
        return
    if isinstance(seed, (list, tuple, np.ndarray)):
        _entropy(seed)  # checks it
        return
    raise TypeError(f"seed must be {SEED_KINDS}, got {shown(seed)}")


def _entropy(seed):
    """A sequence of ints as numpy.random.SeedSequence takes it (default_rng's rule)."""
    values = np.asarray(seed, dtype=object).reshape(-1)
    if values.size == 0 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
        for v in values
    ):
        raise TypeError(
            f"seed must be {SEED_KINDS}; a sequence must hold at least one int, "
            f"got {seed!r}"
        )
    if any(v < 0 for v in values):
        raise ValueError(f"seed must hold non-negative ints, got {seed!r}")
    return [int(v) for v in values]


def seed_value(seed):
    """The 64-bit key of the stream: what cdropout.draw_seed returns.

    An int maps to itself. A sequence of ints goes through numpy.random.SeedSequence,
    as numpy.random.default_rng does; a SeedSequence gives its first 64-bit state word.
    A Generator, BitGenerator, RandomState or the numpy.random module (its global
    RandomState, as seeded by numpy.random.seed) gives one 64-bit draw, and so advances:
    call this last, once everything else is checked. None: fresh OS entropy.
    """
    if type(seed) is int and 0 <= seed < 2**64:  # the common call, without ABC checks
        return seed
    check_seed(seed)
    if isinstance(seed, SeedSource):
        return seed.draw()
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    if isinstance(seed, numbers.Integral):
        return int(seed)
    if isinstance(seed, (list, tuple, np.ndarray)):
        seed = np.random.SeedSequence(_entropy(seed))
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.generate_state(1, np.uint64)[0])
    if isinstance(seed, np.random.BitGenerator):
        seed = np.random.Generator(seed)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**64, dtype=np.uint64))
    return int(seed.randint(0, 2**64, dtype=np.uint64))  # RandomState, numpy.random


SIZE_LIMIT = 2**63  # elements in one array: NumPy's sizes are signed 64-bit


def shape(value):
    """A shape as a tuple of non-negative ints whose product NumPy can hold."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f"shape must be an int or a tuple of ints, got {value!r}")
    items = (value,) if isinstance(value, numbers.Integral) else value
    try:
        dims = tuple(items)
    except TypeError:
        raise TypeError(
            f"shape must be an int or a tuple of ints, got {type(value).__name__}"
        ) from None
    if not all(
        isinstance(d, numbers.Integral) and not isinstance(d, (bool, np.bool_))
        for d in dims
    ):
        raise TypeError(f"shape must be an int or a tuple of ints, got {value!r}")
    if any(d < 0 for d in dims):
        raise ValueError(f"shape must hold non-negative sizes, got {value!r}")
    if len(dims) > 64:
        raise ValueError(
            f"shape must have at most 64 axes (NumPy's limit), got {len(dims)}"
        )
    if math.prod(int(d) for d in dims) >= SIZE_LIMIT:
        raise ValueError(f"shape must hold fewer than 2**63 elements, got {value!r}")
    return tuple(int(d) for d in dims)


def threshold(p):
    """T = round(p * 2**32): an element is dropped iff its 32-bit word is below T.

    p * 2**32 is exact in binary floating point, and Python rounds half to even, so
    T is within 1/2 of p * 2**32 and the keep probability (2**32 - T) / 2**32 is
    within 2**-33 of 1 - p.
    """
    return int(round(p * 2.0**32))


def training_scale(p, mode, dtype):
    """The factor of kept elements in training, rounded to the dtype's arithmetic.

    inverted: 1 / (1 - p); classic: 1. float16 computes in float32. p < 1 here.
    """
    if mode == "classic":
        return 1.0
    value = 1.0 / (1.0 - p)
    return value if np.dtype(dtype).itemsize == 8 else float(np.float32(value))


def noise_spec(value):
    """noise_shape on its own (a layer's, before it sees an input): None or a tuple of
    non-negative ints and Nones."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu":
        value = value.tolist()  # TF and Keras take a 1-D integer tensor
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(
            f"noise_shape must be None, or a tuple or list of ints and Nones, or a 1-D "
            f"integer array, got {type(value).__name__}"
        )
    for dim in value:
        if dim is None:
            continue
        if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"noise_shape must hold ints or None, got {value!r}")
        if dim < 0:
            raise ValueError(f"noise_shape must hold non-negative sizes, got {value!r}")
    return tuple(None if d is None else int(d) for d in value)


def noise_shape(value, x_shape, name="x"):
    """The mask's shape: per axis 1 (one decision broadcast along it) or x's size.

    None entries (Keras) take x's size. None for the whole argument: x's shape.
    """
    dims = noise_spec(value)
    if dims is None:
        return tuple(x_shape)
    if len(dims) != len(x_shape):
        raise ValueError(
            f"noise_shape must have one entry per axis of {name} ({len(x_shape)}), "
            f"got {value!r}"
        )
    resolved = []
    for dim, size in zip(dims, x_shape, strict=True):
        if dim is None:
            dim = size
        if dim not in (1, size):
            raise ValueError(
                f"noise_shape must hold, per axis, 1 or the size of {name} on it "
                f"({name} has shape {tuple(x_shape)}), got {value!r}"
            )
        resolved.append(int(dim))
    return tuple(resolved)


def gaussian_sigma(p):
    """The standard deviation of Gaussian dropout's factor: sqrt(p / (1 - p))."""
    return float(np.sqrt(p / (1.0 - p)))


SELU_ALPHA = 1.7580993408473766  # scale * alpha of SELU: -SELU_ALPHA is its saturation


def alpha_constants(p, dtype):
    """(a, b, c) of alpha dropout, rounded to the dtype's arithmetic (float32 for f16).

    PyTorch's definition: a dropped unit takes SELU's saturation value -alpha, then
    the affine map a * x + b restores mean 0 and variance 1 for inputs of mean 0 and
    variance 1: a = ((1 - p) (1 + p alpha**2)) ** -1/2, b = a alpha p, and a dropped
    unit ends at c = a (-alpha) + b. 0 < p < 1 here.
    """
    a = 1.0 / np.sqrt((SELU_ALPHA**2 * p + 1.0) * (1.0 - p))
    b = SELU_ALPHA * a * p
    c = b - SELU_ALPHA * a
    if np.dtype(dtype).itemsize == 8:
        return a, b, c
    return tuple(float(np.float32(v)) for v in (a, b, c))
