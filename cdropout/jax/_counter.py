"""The counter stream (docs/stream.md) as JAX operations, which XLA fuses into the
kernels around them: the bytes of the C kernel.

The arithmetic is uint64, traced inside ``jax.enable_x64(True)`` whatever the caller's
setting (the words leave as uint32): XLA runs 64-bit multiplies natively (vpmullq on
AVX-512), where 64-bit words held as pairs of uint32 took six 32-bit multiplies each,
0.86 against 0.38 ns per element for a jitted float32 dropout of 1e6 elements (AMD EPYC
Zen 4, 2 cores, jax 0.10.2). Each element computes its pair's mix64 and takes its half:
computing each pair once and interleaving the halves made XLA emit a scalar loop, 50 ns
per element.
"""

import jax
import jax.numpy as jnp
from jax import lax

from cdropout import testing

_U64 = jnp.uint64


def _mix64(z):
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def _fmix64(z):
    z = (z ^ (z >> _U64(33))) * _U64(0xFF51AFD7ED558CCD)
    z = (z ^ (z >> _U64(33))) * _U64(0xC4CEB9FE1A85EC53)
    return z ^ (z >> _U64(33))


def _mix_gamma(z):
    z = _fmix64(z) | _U64(1)
    few = lax.population_count(z ^ (z >> _U64(1))) < _U64(24)
    return jnp.where(few, z ^ _U64(0xAAAAAAAAAAAAAAAA), z)


def words(seed, first, count):
    """The 32-bit words of elements first .. first + count - 1 (Python ints), for a
    seed given as an int, or as (high, low) uint32 arrays (a seed drawn from a JAX key,
    traced)."""
    with jax.enable_x64(True):
        if isinstance(seed, int):
            key = _U64(testing.mix64((seed + testing.GAMMA) % 2**64))
            gamma = _U64(testing.mix_gamma((seed + 2 * testing.GAMMA) % 2**64))
        else:
            high, low = (lax.convert_element_type(half, _U64) for half in seed)
            value = (high << _U64(32)) | low
            key = _mix64(value + _U64(testing.GAMMA))
            gamma = _mix_gamma(value + _U64(2 * testing.GAMMA % 2**64))
        index = lax.iota(_U64, count) + _U64(first)
        z = _mix64(key + ((index >> _U64(1)) + _U64(1)) * gamma)
        return lax.convert_element_type(z >> ((index & _U64(1)) << _U64(5)), jnp.uint32)
