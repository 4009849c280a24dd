"""Dropout and alpha dropout of JAX arrays on cdropout's streams.

The mask is a pure function of (64-bit seed, stream, element index), as in the NumPy
API, so that jit, grad, vmap and checkpoint need no state. Both modes of automatic
differentiation work (custom_jvp: the tangent is the same mask on the tangent, linear,
so JAX transposes it for reverse mode); the tangent's mask is regenerated from the key
inside jax.checkpoint, so reverse mode saves the key and nothing of the input's size,
and a recomputation draws the same mask. A JAX PRNG key becomes the seed by
stream_seed()'s rule; an int seed gives the NumPy API's bytes for the same stream.
"""

import math
import numbers
import operator
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from cdropout import _params
from cdropout.jax import _counter, _ffi

# the dtypes of the kernel; float64 exists in JAX with jax_enable_x64
_DTYPES = ("float16", "bfloat16", "float32", "float64")


def stream_seed(key):
    """The 64-bit seed that a JAX PRNG key gives cdropout's streams: the two 32-bit
    words of ``jax.random.bits(key, (2,), jnp.uint32)``, the first the high half, as
    a (high, low) pair of uint32 arrays (traceable: works under jit and vmap).

    ``int(high) << 32 | int(low)`` is the int seed of the NumPy API's equivalent call.

    Examples
    --------
    >>> import jax, numpy as np, cdropout, cdropout.jax
    >>> key = jax.random.key(0)
    >>> high, low = cdropout.jax.stream_seed(key)
    >>> seed = int(high) << 32 | int(low)
    >>> x = np.ones(8, np.float32)
    >>> y = cdropout.jax.dropout(x, 0.5, key=key)
    >>> same = cdropout.dropout(x, 0.5, seed=seed, stream="counter")
    >>> bool((np.asarray(y) == same).all())
    True
    """
    words = jax.random.bits(key, (2,), jnp.uint32)
    return words[0], words[1]


def _check(x, p, key, seed, training, mode, stream, offset, noise_shape, name="x"):
    """Every argument checked before anything is computed; returns (x as an array, p,
    mode, stream, offset, the noise shape). `name` is the caller's name for x."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        x = jnp.asarray(x)
    dtype = np.dtype(x.dtype)
    if dtype.name not in _DTYPES:
        raise TypeError(
            f"{name} must have dtype float16, bfloat16, float32 or float64, got {dtype}"
        )
    p = probability(p)
    training = _params.flag(training, "training")
    mode = _params.mode(mode)
    stream = _params.stream(stream)
    if key is not None and seed is not None:
        raise TypeError("give key= (a JAX PRNG key) or seed= (an int), not both")
    if key is not None:
        _check_key(key)
    if seed is not None and not (
        isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_))
    ):
        raise TypeError(
            f"seed must be an int in [0, 2**64), got {type(seed).__name__} (for a "
            "JAX PRNG key, pass key=)"
        )
    if seed is not None:
        seed = operator.index(seed)  # a NumPy integer as the int it holds
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed must satisfy 0 <= seed < 2**64, got {seed}")
    size = math.prod(x.shape)
    noise = _params.noise_shape(noise_shape, x.shape)
    offset = _params.offset(offset, math.prod(noise))
    if math.prod(noise) >= 2**32 - 2:
        raise ValueError(
            f"x must have fewer than 2**32 - 2 elements (the mask's), got {size}"
        )
    if training and key is None and seed is None and 0.0 < p < 1.0 and size:
        raise TypeError(
            "dropout in training needs key= (a JAX PRNG key, as jax.random.key(0)) "
            "or seed= (an int): JAX has no global generator to draw one from"
        )
    return jnp.asarray(x), p, training, mode, stream, offset, noise, seed


def _raw_key_shape():
    """The shape of a raw key of the default PRNG implementation (uint32[2] for
    threefry, uint32[4] for rbg and unsafe_rbg), as jax.random.PRNGKey makes it."""
    return jax.eval_shape(jax.random.PRNGKey, 0).shape


def _check_key(key):
    """A key is one typed JAX key (jax.random.key) or one raw key of the default
    implementation (jax.random.PRNGKey); inside vmap, one slice of a batch of them."""
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
    elif dtype == np.uint32 and shape == _raw_key_shape():  # (asked of raw keys only)
        return
    raw = _raw_key_shape()
    got = f"{type(key).__name__}" if dtype is None else f"{dtype} of shape {shape}"
    raise TypeError(
        "key must be one JAX PRNG key: jax.random.key(0) (a typed key of shape ()) "
        f"or jax.random.PRNGKey(0) (uint32 of shape {raw}, the default "
        f"implementation's), got {got}"
    )


def probability(p, name="p"):
    """p (flax's `rate`) as a float in [0, 1]: a real number, or a concrete scalar
    array (jnp.float32(0.3)); a traced value is refused by name."""
    if isinstance(p, jax.core.Tracer):
        raise TypeError(
            f"{name} must be a Python float, not a traced value: the threshold and the "
            f"scale are constants of the compiled program (mark {name} static: "
            "jax.jit(f, static_argnums=...))"
        )
    if isinstance(p, jax.Array) and p.shape == ():
        p = p.item()  # a concrete scalar array, as jnp.float32(0.3) makes
    return _params.probability(p, name)


def _keep(x, p, key, seed, stream, offset, noise):
    """The keep mask of shape `noise`, broadcast against x."""
    source = seed if seed is not None else stream_seed(key)
    count, threshold = math.prod(noise), _params.threshold(p)
    if stream == "counter":
        keep = _counter.words(source, offset, count) >= np.uint32(threshold)
    else:
        keep = _ffi.keep(source, offset, count, threshold)
    return jnp.reshape(keep, noise)


def _arithmetic(dtype):
    """The type cdropout computes a dtype in: float32 below float64."""
    return jnp.float64 if np.dtype(dtype).itemsize == 8 else jnp.float32


def _scaled(x, factor):
    """x * factor in the dtype's arithmetic, rounded once to the dtype."""
    compute = _arithmetic(x.dtype)
    return (x.astype(compute) * compute(factor)).astype(x.dtype)


def _whole(call, *arrays):
    """call(*arrays) on whole arrays, its result sharded as the first one. The kernel
    (an FFI call, opaque to XLA's partitioner) numbers the elements of what it is given:
    under explicit sharding each device would number its own shard from 0, and XLA
    would type the result replicated. So the kernel gets the whole arrays, and the
    result goes back to the input's sharding."""
    spec = getattr(getattr(jax.typeof(arrays[0]), "sharding", None), "spec", None)
    if not spec or all(axis is None for axis in spec):
        return call(*arrays)
    whole = [jax.sharding.reshard(array, PartitionSpec()) for array in arrays]
    return jax.sharding.reshard(call(*whole), spec)


# The custom_jvp functions take the key (a JAX key array, or None with an int seed) as
# their one argument besides x; the rest, the int seed included, are static.
_STATIC = (2, 3, 4, 5, 6, 7)


@partial(jax.checkpoint, static_argnums=_STATIC)
def _regenerated(t, key, seed, p, scale, stream, offset, noise):
    """The tangent (and, transposed, the cotangent) of a training-mode call: the
    call's mask on t, times scale. Linear in t; the mask is regenerated from the key,
    and jax.checkpoint makes reverse mode save the key, not the mask."""
    keep = _keep(t, p, key, seed, stream, offset, noise)
    return jnp.where(keep, _scaled(t, scale), jnp.zeros((), t.dtype))


@partial(jax.custom_jvp, nondiff_argnums=_STATIC)
def _masked(x, key, seed, p, scale, stream, offset, noise):
    """Training-mode dropout (kept: x * scale; dropped: +0.0). The xoshiro stream
    without a noise shape is one call of the kernel."""
    if stream == "xoshiro" and noise == x.shape:
        source = seed if seed is not None else stream_seed(key)
        threshold = _params.threshold(p)
        return _whole(lambda v: _ffi.dropout(v, source, offset, threshold, scale), x)
    keep = _keep(x, p, key, seed, stream, offset, noise)
    return jnp.where(keep, _scaled(x, scale), jnp.zeros((), x.dtype))


@_masked.defjvp
def _masked_tangent(seed, p, scale, stream, offset, noise, primals, tangents):
    x, key = primals
    out = _masked(x, key, seed, p, scale, stream, offset, noise)
    return out, _regenerated(tangents[0], key, seed, p, scale, stream, offset, noise)


@partial(jax.custom_jvp, nondiff_argnums=_STATIC)
def _alpha(x, key, seed, p, constants, stream, offset, noise):
    """Training-mode alpha dropout (kept: x * a + b; dropped: c) by the kernel's
    arithmetic (_ffi.affine); its tangent a times the tangent where kept."""
    keep = jnp.broadcast_to(_keep(x, p, key, seed, stream, offset, noise), x.shape)
    return _whole(lambda v, k: _ffi.affine(v, k, *constants), x, keep)


@_alpha.defjvp
def _alpha_tangent(seed, p, constants, stream, offset, noise, primals, tangents):
    x, key = primals
    out = _alpha(x, key, seed, p, constants, stream, offset, noise)
    a = constants[0]
    return out, _regenerated(tangents[0], key, seed, p, a, stream, offset, noise)


# One compiled program per call's static arguments, so that an eager call runs as one
# program (op by op, the counter stream's 30 integer operations took 4x flax's time at
# 4M elements); inside a jitted function it is inlined.
_masked_program = jax.jit(_masked, static_argnums=_STATIC)
_alpha_program = jax.jit(_alpha, static_argnums=_STATIC)


def dropout(x, p=0.5, *, key=None, seed=None, training=True, mode="inverted",
            stream="counter", offset=0, noise_shape=None):  # fmt: skip
    """Dropout of a JAX array (or anything jnp.asarray takes), in either convention.

    Parameters
    ----------
    x : array of float16, bfloat16, float32 or float64
        Any shape (fewer than 2**32 - 2 elements).
    p : float
        Probability of dropping an element, a Python float in [0, 1] (a constant of
        the compiled program).
    key : JAX PRNG key, optional
        A typed key (jax.random.key) or a raw uint32[2] one: the seed is
        stream_seed(key). Split it for each call, as for jax.random's functions.
    seed : int, optional
        An int in [0, 2**64): the bytes of ``cdropout.dropout(np.asarray(x), p,
        seed=seed, stream=stream, ...)``. One of key and seed is needed in training
        (for 0 < p < 1 and a non-empty x).
    training : bool
        False: the identity (inverted), or x * (1 - p) (classic).
    mode : {"inverted", "classic"}
        As for cdropout.dropout.
    stream : {"counter", "xoshiro"}
        "counter" (the default here) is jax.numpy operations that XLA fuses with the
        operations around it; "xoshiro" (the NumPy API's default) runs the C kernel
        inside the program (XLA's FFI), a pass over memory of its own.
    offset, noise_shape
        As for cdropout.dropout (noise_shape: per axis 1 or None, the mask broadcast).

    Returns
    -------
    jax.Array
        The dtype and shape of x. Its gradient is the same mask times the scale,
        regenerated from the seed: nothing of x's size is saved for the backward pass.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, cdropout.jax
    >>> x = jnp.ones((2, 4))
    >>> cdropout.jax.dropout(x, 0.5, seed=7)
    Array([[2., 2., 2., 0.],
           [0., 2., 0., 0.]], dtype=float32)
    >>> cdropout.jax.dropout(x, 0.5, seed=7, mode="classic")
    Array([[1., 1., 1., 0.],
           [0., 1., 0., 0.]], dtype=float32)
    >>> cdropout.jax.dropout(x, 0.5, training=False, mode="classic")
    Array([[0.5, 0.5, 0.5, 0.5],
           [0.5, 0.5, 0.5, 0.5]], dtype=float32)
    """
    x, p, training, mode, stream, offset, noise, seed = _check(
        x, p, key, seed, training, mode, stream, offset, noise_shape
    )
    if not training:
        if mode == "inverted" or p == 0.0:
            return x
        # at p = 1, +0.0 for every element (inf and NaN too), as the NumPy API
        return _scaled(x, 1.0 - p) if p < 1.0 else jnp.zeros_like(x)
    if p == 0.0 or x.size == 0:
        return x
    if _params.threshold(p) == _params.THRESHOLD_ALL:  # every element dropped
        return jnp.zeros_like(x)
    scale = _params.training_scale(p, mode, x.dtype)
    return _masked_program(x, key, seed, p, scale, stream, offset, noise)


def alpha_dropout(x, p=0.5, *, key=None, seed=None, training=True, stream="counter",
                  offset=0, noise_shape=None):  # fmt: skip
    """Alpha dropout (SELU networks) of a JAX array: kept elements become a * x + b,
    dropped ones the constant c = b - alpha a, keeping mean 0 and variance 1
    (cdropout.alpha_dropout's constants and bytes). Arguments as for dropout();
    evaluation is the identity."""
    x, p, training, _, stream, offset, noise, seed = _check(
        x, p, key, seed, training, "inverted", stream, offset, noise_shape
    )
    if not training or p == 0.0 or x.size == 0:
        return x
    if _params.threshold(p) == _params.THRESHOLD_ALL:  # as PyTorch's: zeros
        return jnp.zeros_like(x)
    constants = _params.alpha_constants(p, x.dtype)
    return _alpha_program(x, key, seed, p, constants, stream, offset, noise)
