"""cdropout for JAX: dropout of jax.Array values in both conventions, on cdropout's
streams, under jit, grad, vmap and checkpoint. The counter stream is jax.numpy
operations, which XLA fuses into the kernels around them; the xoshiro stream runs the
C kernel inside the compiled program through XLA's foreign function interface.

Needs the jax extra: ``pip install "cdropout[jax]"``.
"""

from cdropout import _extras

_extras.require("jax", "JAX", "jax")

from cdropout.jax import _ffi  # noqa: E402
from cdropout.jax.functional import alpha_dropout, dropout, stream_seed  # noqa: E402

# the kernel's FFI targets, by name: a jax.export program loaded in a fresh process
# finds them once cdropout.jax is imported
_ffi.register()

#: The names of the kernel's XLA FFI targets (the xoshiro stream, alpha dropout). A
#: program that calls them is exported with
#: ``disabled_checks=[jax.export.DisabledSafetyCheck.custom_call(name) for name in
#: cdropout.jax.FFI_TARGETS]`` (JAX refuses custom calls it cannot promise to keep),
#: and runs wherever cdropout.jax is imported.
FFI_TARGETS = _ffi.TARGETS

__all__ = ["FFI_TARGETS", "alpha_dropout", "dropout", "stream_seed"]
