"""Helpers for testing code that uses cdropout, and cdropout's own tests.

- assert_same_bytes: equal dtype, shape and bit patterns (-0.0 and NaN payloads
  cannot hide), the check behind every byte-for-byte promise.
- word, mix64, fmix64, mix_gamma, call_seed: a third, deliberately naive implementation
  of both streams (docs/stream.md) in pure Python integers, one element at a time, no
  arrays, no vectors: slow, and easy to check by eye against the specification.
"""

import numpy as np

__all__ = [
    "GAMMA",
    "assert_same_bytes",
    "call_seed",
    "fmix64",
    "mix64",
    "mix_gamma",
    "word",
]


def assert_same_bytes(actual: np.ndarray, desired: np.ndarray) -> None:
    """Raise AssertionError unless both arrays have one dtype, one shape and the same
    bit pattern element by element (in C order): -0.0 against +0.0 and NaN payloads
    cannot hide, as they can from np.array_equal."""
    if actual.dtype != desired.dtype:
        raise AssertionError(f"dtypes differ: {actual.dtype} and {desired.dtype}")
    if actual.shape != desired.shape:
        raise AssertionError(f"shapes differ: {actual.shape} and {desired.shape}")
    size = actual.dtype.itemsize  # element by element, as rows of bytes
    a = np.frombuffer(actual.tobytes(), np.uint8).reshape(-1, size)
    d = np.frombuffer(desired.tobytes(), np.uint8).reshape(-1, size)
    if not np.array_equal(a, d):
        bad = np.flatnonzero(np.any(a != d, axis=1))
        raise AssertionError(
            f"{bad.size} of {a.shape[0]} elements differ, first at flat index {bad[0]}"
        )


M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
GAMMA = 0x9E3779B97F4A7C15
BLOCK, LANES = 4096, 16


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def fmix64(z):
    z = ((z ^ (z >> 33)) * 0xFF51AFD7ED558CCD) & M64
    z = ((z ^ (z >> 33)) * 0xC4CEB9FE1A85EC53) & M64
    return z ^ (z >> 33)


def call_seed(seed, counter):
    """The seed of a Dropout layer's forward call number `counter`."""
    return mix64(seed ^ fmix64((counter + GAMMA) & M64))


def rotl32(x, k):
    return ((x << k) | (x >> (32 - k))) & M32


def mix_gamma(z):
    """java.util.SplittableRandom's mixGamma: fmix64, odd, with at least 24 changes
    between neighbouring bits."""
    z = fmix64(z) | 1
    return z ^ 0xAAAAAAAAAAAAAAAA if bin(z ^ (z >> 1)).count("1") < 24 else z


def word(seed, index, stream="xoshiro"):
    """The 32-bit word that decides element `index` of the stream."""
    key = mix64((seed + GAMMA) & M64)
    if stream == "counter":  # new SplittableRandom(seed).split()'s outputs, halved
        gamma = mix_gamma((seed + 2 * GAMMA) & M64)
        z = mix64((key + (index // 2 + 1) * gamma) & M64)
        return (z >> (32 * (index % 2))) & M32
    block, j = divmod(index, BLOCK)
    block_key = mix64(key ^ fmix64(block))
    lane, step = j % LANES, j // LANES
    a = mix64((block_key + (2 * lane + 1) * GAMMA) & M64)
    b = mix64((block_key + (2 * lane + 2) * GAMMA) & M64)
    s = [a & M32, a >> 32, b & M32, b >> 32]
    for _ in range(step + 1):
        out = (rotl32((s[0] + s[3]) & M32, 7) + s[0]) & M32
        t = (s[1] << 9) & M32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl32(s[3], 11)
    return out
