"""cdropout for JAX: dropout of jax.Array values in both conventions, on cdropout's
streams, under jit, grad, vmap and checkpoint. The counter stream is jax.numpy
operations, which XLA fuses into the kernels around them; the xoshiro stream runs the
C kernel inside the compiled program through XLA's foreign function interface.

Needs the jax extra: ``pip install "cdropout[jax]"``.
"""

from cdropout import _extras

_extras.require("jax", "JAX", "jax")

from cdropout.jax.functional import alpha_dropout, dropout, stream_seed  # noqa: E402

__all__ = ["alpha_dropout", "dropout", "stream_seed"]
