"""The C kernel inside compiled JAX programs, through XLA's foreign function interface:
the xoshiro stream, which no compiler can generate (its generators run 256 steps
through each block), as two custom calls on the CPU.

The handlers are compiled into cdropout's own extension against the FFI's plain-C ABI
(cdropout/src/xla_ffi.h: the declarations of jaxlib's xla/ffi/api/c_api.h, API 0.3) and
handed to jax.ffi.register_ffi_target as PyCapsules: installing the jax extra needs no
compiler and no jaxlib at build time, and the handlers run the same block loops as the
NumPy API, so the bytes are its bytes.

- ``cdropout_dropout``: dropout of x into the result, which aliases x
  (input_output_aliases): in place where the caller donates x or XLA sees it dead,
  into a copy otherwise, as XLA decides.
- ``cdropout_keep``: the keep mask as a bool array, for noise shapes and alpha dropout.
- ``cdropout_affine``: alpha dropout's x * a + b where kept, c elsewhere, a multiply
  then an add as the NumPy API rounds them (XLA's CPU code contracts them into one
  fused multiply-add: other bytes).
"""

import jax
import jax.numpy as jnp
import numpy as np

from cdropout import _kernel

TARGETS = tuple(sorted(_kernel.xla_ffi_handlers()))


def register():
    """Register the handlers with XLA (at the import of cdropout.jax: a program
    serialised by jax.export and loaded in another process calls them by name)."""
    for name, capsule in _kernel.xla_ffi_handlers().items():
        jax.ffi.register_ffi_target(name, capsule, platform="cpu")


def _seed_words(seed):
    """The seed as the uint32[2] buffer the handlers read (high word first)."""
    if isinstance(seed, int):
        return jnp.asarray([seed >> 32, seed & 0xFFFFFFFF], dtype=jnp.uint32)
    high, low = seed
    return jnp.stack([high, low]).astype(jnp.uint32)


def _attributes(offset, threshold, scale, stream):
    return {
        "offset": np.uint64(offset),
        "threshold": np.uint64(threshold),
        "scale": np.float64(scale),
        "stream": np.int32(_kernel.STREAMS[stream]),
        # the package's default: the CPUs this process may use (cdropout._runtime)
        "threads": np.int32(_kernel.default_threads()),
    }


def dropout(x, seed, offset, threshold, scale, stream="xoshiro"):
    """Training-mode dropout of x by the kernel (threshold below 2**32, scale rounded
    to x's arithmetic); seed an int or (high, low) uint32 arrays. Under vmap each slice
    is its own call: the slices of a batch of seeds draw their own masks."""
    call = jax.ffi.ffi_call(
        "cdropout_dropout",
        jax.ShapeDtypeStruct(x.shape, x.dtype),
        vmap_method="sequential",
        input_output_aliases={0: 0},
    )
    return call(x, _seed_words(seed), **_attributes(offset, threshold, scale, stream))


def keep(seed, offset, count, threshold, stream="xoshiro"):
    """The keep mask (bool, count elements) of stream elements [offset, offset +
    count)."""
    call = jax.ffi.ffi_call(
        "cdropout_keep", jax.ShapeDtypeStruct((count,), jnp.bool_),
        vmap_method="sequential",
    )  # fmt: skip
    return call(_seed_words(seed), **_attributes(offset, threshold, 0.0, stream))


def affine(x, keep, a, b, c):
    """keep ? x * a + b : c, each operation rounded; keep a bool array of x's shape."""
    call = jax.ffi.ffi_call(
        "cdropout_affine", jax.ShapeDtypeStruct(x.shape, x.dtype),
        vmap_method="sequential",
    )  # fmt: skip
    return call(x, keep, a=np.float64(a), b=np.float64(b), c=np.float64(c))
