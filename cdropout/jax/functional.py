"""Dropout and alpha dropout of JAX arrays on cdropout's streams.

The mask is a pure function of (64-bit seed, stream, element index), as in the NumPy
API, so that jit, grad, vmap and checkpoint need no state: the backward pass
(custom_vjp) regenerates the mask from the seed and saves nothing of the input's size,
and a recomputation draws the same mask. A JAX PRNG key becomes the seed by
stream_seed()'s rule; an int seed gives the NumPy API's bytes for the same stream.
"""

import math
import numbers
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

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
    p = _probability(p)
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
    if seed is not None and not 0 <= seed < 2**64:
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
    return jnp.asarray(x), p, training, mode, stream, offset, noise


def _check_key(key):
    """A key is one typed JAX key (jax.random.key) or one raw key, uint32[2]
    (jax.random.PRNGKey); inside vmap, one slice of a batch of them."""
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
    elif dtype == np.uint32 and shape == (2,):
        return
    got = f"{type(key).__name__}" if dtype is None else f"{dtype} of shape {shape}"
    raise TypeError(
        "key must be one JAX PRNG key: jax.random.key(0) (a typed key of shape ()) "
        f"or jax.random.PRNGKey(0) (uint32 of shape (2,)), got {got}"
    )


def _probability(p):
    if isinstance(p, jax.core.Tracer):
        raise TypeError(
            "p must be a Python float, not a traced value: the threshold and the scale "
            "are constants of the compiled program (mark p static: "
            "jax.jit(f, static_argnums=...))"
        )
    if isinstance(p, jax.Array) and p.shape == ():
        p = p.item()  # a concrete scalar array, as jnp.float32(0.3) makes
    return _params.probability(p)


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


# The custom_vjp functions take the key (a JAX key array, or None with an int seed) as
# their one argument besides x; the rest, the int seed included, are static.
_STATIC = (2, 3, 4, 5, 6, 7)


@partial(jax.custom_vjp, nondiff_argnums=_STATIC)
def _masked(x, key, seed, p, scale, stream, offset, noise):
    """Training-mode dropout (kept: x * scale; dropped: +0.0); its backward is the same
    mask on the cotangent, regenerated from the key. The xoshiro stream without a noise
    shape is one call of the kernel."""
    if stream == "xoshiro" and noise == x.shape:
        source = seed if seed is not None else stream_seed(key)
        return _ffi.dropout(x, source, offset, _params.threshold(p), scale)
    keep = _keep(x, p, key, seed, stream, offset, noise)
    return jnp.where(keep, _scaled(x, scale), jnp.zeros((), x.dtype))


def _masked_forward(x, key, seed, p, scale, stream, offset, noise):
    return _masked(x, key, seed, p, scale, stream, offset, noise), key


def _masked_backward(seed, p, scale, stream, offset, noise, key, cotangent):
    return _masked(cotangent, key, seed, p, scale, stream, offset, noise), None


_masked.defvjp(_masked_forward, _masked_backward)


@partial(jax.custom_vjp, nondiff_argnums=_STATIC)
def _alpha(x, key, seed, p, constants, stream, offset, noise):
    """Training-mode alpha dropout (kept: x * a + b; dropped: c) by the kernel's
    arithmetic (_ffi.affine); backward a times the cotangent where kept."""
    keep = jnp.broadcast_to(_keep(x, p, key, seed, stream, offset, noise), x.shape)
    return _ffi.affine(x, keep, *constants)


def _alpha_forward(x, key, seed, p, constants, stream, offset, noise):
    return _alpha(x, key, seed, p, constants, stream, offset, noise), key


def _alpha_backward(seed, p, constants, stream, offset, noise, key, cotangent):
    a = constants[0]
    return _masked(cotangent, key, seed, p, a, stream, offset, noise), None


_alpha.defvjp(_alpha_forward, _alpha_backward)


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
    x, p, training, mode, stream, offset, noise = _check(
        x, p, key, seed, training, mode, stream, offset, noise_shape
    )
    if not training:
        return _scaled(x, 1.0 - p) if mode == "classic" and p > 0.0 else x
    if p == 0.0 or x.size == 0:
        return x
    if _params.threshold(p) == _params.THRESHOLD_ALL:  # every element dropped
        return jnp.zeros_like(x)
    scale = _params.training_scale(p, mode, x.dtype)
    return _masked(x, key, seed, p, scale, stream, offset, noise)


def alpha_dropout(x, p=0.5, *, key=None, seed=None, training=True, stream="counter",
                  offset=0, noise_shape=None):  # fmt: skip
    """Alpha dropout (SELU networks) of a JAX array: kept elements become a * x + b,
    dropped ones the constant c = b - alpha a, keeping mean 0 and variance 1
    (cdropout.alpha_dropout's constants and bytes). Arguments as for dropout();
    evaluation is the identity."""
    x, p, training, _, stream, offset, noise = _check(
        x, p, key, seed, training, "inverted", stream, offset, noise_shape
    )
    if not training or p == 0.0 or x.size == 0:
        return x
    if _params.threshold(p) == _params.THRESHOLD_ALL:  # as PyTorch's: zeros
        return jnp.zeros_like(x)
    constants = _params.alpha_constants(p, x.dtype)
    return _alpha(x, key, seed, p, constants, stream, offset, noise)
