"""The counter stream (stream="counter", docs/stream.md): java.util.SplittableRandom's
outputs, the same words from the kernel on every path, the reference and the
pure-Python twin, 64-bit indices, any split of the work, and the statistics of
neighbouring keys, neighbouring indices and far offsets (deterministic: fixed seeds,
exact tests, so they never flake)."""

import math

import numpy as np
import pytest

import cdropout
from cdropout import _kernel, reference
from cdropout.testing import assert_same_bytes, word

COUNTER = _kernel.STREAMS["counter"]
M64 = 2**64 - 1


def _words(seed, offset, n, n_threads=1):
    return _kernel.raw_stream(seed, offset, n, n_threads, COUNTER)


# new SplittableRandom(seed).split().nextLong(), k = 0, 1, 2, from Java 17 (java.util)
SPLITTABLE_RANDOM = {
    0: [1750893463095773485, 15026617196815859347, 14217238538181877965],
    1: [14201552918486545593, 7808539724696272966, 10722403256344149191],
    12345: [15328130456064710858, 12639852913945590193, 4311248965161979057],
    M64: [3139876153789920076, 16837494776005415745, 8917495619343972245],
}


@pytest.mark.parametrize("seed", list(SPLITTABLE_RANDOM))
def test_the_words_are_java_splittable_randoms_outputs_halved(seed):
    # pair k of elements (2k, 2k + 1): the low then the high half of nextLong() number k
    longs = SPLITTABLE_RANDOM[seed]
    halves = [half for value in longs for half in (value & 0xFFFFFFFF, value >> 32)]
    assert _words(seed, 0, 6).tolist() == halves
    assert reference.raw_stream(seed, 0, 6, "counter").tolist() == halves
    assert [word(seed, i, "counter") for i in range(6)] == halves


@pytest.mark.parametrize("seed", [0, 7, 2**63 + 5, M64])
@pytest.mark.parametrize(
    "offset", [0, 1, 15, 4095, 4097, 2**31 - 3, 2**32 - 1, 2**40 + 3, 2**63 - 10**5]
)
def test_kernel_reference_and_twin_agree_at_any_offset(seed, offset):
    n = 3 * _kernel.BLOCK + 21
    expected = reference.raw_stream(seed, offset, n, "counter")
    for threads in (1, 2, 3):
        assert_same_bytes(_words(seed, offset, n, threads), expected)
    for k in (0, 1, n // 2, n - 1):
        assert int(expected[k]) == word(seed, offset + k, "counter")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("cuts", [[1], [7, 8, 3 * 4096 + 5], [4096, 4097]])
def test_chunks_with_offsets_give_the_bytes_of_one_call(dtype, cuts, rng):
    x = rng.standard_normal(5 * 4096 + 3).astype(dtype)
    whole = cdropout.dropout(x, 0.4, seed=9, stream="counter")
    parts, start = [], 0
    for stop in [*cuts, x.size]:
        parts.append(cdropout.dropout(x[start:stop], 0.4, seed=9, offset=start,
                                      stream="counter"))  # fmt: skip
        start = stop
    assert_same_bytes(np.concatenate(parts), whole)


def test_the_streams_differ_and_each_keeps_its_own_bytes():
    x = np.ones(10_000, np.float32)
    a = cdropout.dropout(x, 0.5, seed=3, stream="counter")
    b = cdropout.dropout(x, 0.5, seed=3, stream="xoshiro")
    assert_same_bytes(b, cdropout.dropout(x, 0.5, seed=3))  # the default
    assert 0.45 < np.mean((a == 0) == (b == 0)) < 0.55  # unrelated masks
    with pytest.raises(ValueError, match="stream must be one of"):
        cdropout.dropout(x, 0.5, seed=3, stream="philox")


def _decisions(seed, offset, n):
    return _words(seed, offset, n) >= np.uint32(2**31)


def _binomial_two_sided_p(k, n, q=0.5):
    """The two-sided p-value of k successes in n trials, by the normal approximation
    with continuity correction (n here is at least 1e5)."""
    mean, sd = n * q, math.sqrt(n * q * (1 - q))
    z = (abs(k - mean) - 0.5) / sd
    return math.erfc(max(z, 0.0) / math.sqrt(2))


def _correlation_p(a, b):
    """The p-value of the agreement of two equal-length decision arrays, as a binomial
    count of equal bits (independent fair bits agree half the time)."""
    return _binomial_two_sided_p(int(np.count_nonzero(a == b)), a.size)


N = 200_000


@pytest.mark.parametrize("seed", [0, 1, 2**63, 123456789])
def test_neighbouring_keys_give_unrelated_decisions(seed):
    # k, k + 1, k + GAMMA (the increment the key derivation adds), and k with one bit
    # flipped: none agrees with k's decisions more than chance allows
    base = _decisions(seed, 0, N)
    neighbours = [seed + 1, seed + 0x9E3779B97F4A7C15, *(seed ^ (1 << j) for j in
                  (0, 1, 31, 32, 62, 63))]  # fmt: skip
    p_values = [_correlation_p(base, _decisions(k & M64, 0, N)) for k in neighbours]
    assert min(p_values) > 1e-4, p_values


@pytest.mark.parametrize("seed", [5, 2**64 - 3])
def test_decisions_at_lags_1_to_4096_are_uncorrelated(seed):
    # every lag 1..16, then powers of two up to a block, and odd lags near them
    bits = _decisions(seed, 0, 2 * N)
    lags = sorted({*range(1, 17), *(2**j for j in range(5, 13)),
                   *(2**j + 1 for j in range(5, 12)), 4095})  # fmt: skip
    p_values = {lag: _correlation_p(bits[:-lag][:N], bits[lag:][:N]) for lag in lags}
    # 36 tests at once: a threshold that a fair test misses with probability ~4e-4
    assert min(p_values.values()) > 1e-5, p_values


@pytest.mark.parametrize("seed", [11, 12])
def test_offsets_far_apart_give_unrelated_decisions(seed):
    base = _decisions(seed, 0, N)
    far = [2**32, 2**40 + 1, 2**62, 2**63 - N]
    p_values = [_correlation_p(base, _decisions(seed, offset, N)) for offset in far]
    assert min(p_values) > 1e-4, p_values


@pytest.mark.parametrize("seed", [0, 99])
@pytest.mark.parametrize("p", [0.001, 0.1, 0.5, 0.9])
def test_kept_counts_pass_a_binomial_test(seed, p):
    n = 1_000_000
    mask = cdropout.dropout_mask(n, p, seed=seed, stream="counter")
    kept = int(np.count_nonzero(mask))
    assert _binomial_two_sided_p(kept, n, 1 - p) > 1e-4


@pytest.mark.parametrize("seed", [3, 4])
def test_both_halves_of_a_pair_and_each_bit_are_fair(seed):
    # the low and the high word of each 64-bit output, and each of the 32 bits
    words = _words(seed, 0, 2 * N)
    for half in (words[0::2], words[1::2]):
        high = int(np.count_nonzero(half >> 31))
        assert _binomial_two_sided_p(high, half.size) > 1e-4
    bits = [int(np.count_nonzero((words >> np.uint32(b)) & np.uint32(1))) for b in
            range(32)]  # fmt: skip
    assert min(_binomial_two_sided_p(k, words.size) for k in bits) > 1e-5
