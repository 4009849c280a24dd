"""Linear complexity (Berlekamp-Massey) of the decision bits and of single bits of the
generator's words: a random sequence of n bits has linear complexity close to n / 2, an
LFSR's is its degree, so a linear structure in the stream shows up as a low value."""

import numpy as np
import pytest

import cdropout
from cdropout import _kernel

N = 2000


def linear_complexity(bits):
    """The length of the shortest LFSR generating `bits` (Berlekamp-Massey, GF(2))."""
    s = np.asarray(bits, np.uint8) & 1
    n = s.size
    c = np.zeros(n + 1, np.uint8)
    b = np.zeros(n + 1, np.uint8)
    c[0] = b[0] = 1
    length, m = 0, -1
    for i in range(n):
        # discrepancy: s[i] + sum over j = 1..L of c[j] s[i - j]
        window = s[i - length : i][::-1] if length else s[:0]
        d = (int(s[i]) + int(np.dot(c[1 : length + 1], window))) & 1
        if d:
            previous = c.copy()
            shift = i - m
            c[shift:] ^= b[: n + 1 - shift]
            if 2 * length <= i:
                length, m, b = i + 1 - length, i, previous
    return length


def lfsr_bits(n, taps, degree, state=1):
    bits = []
    for _ in range(n):
        bits.append(state & 1)
        feedback = 0
        for t in taps:
            feedback ^= (state >> t) & 1
        state = (state >> 1) | (feedback << (degree - 1))
    return bits


def test_berlekamp_massey_finds_an_lfsrs_degree():
    assert linear_complexity(lfsr_bits(200, taps=(0, 2), degree=5)) == 5
    assert linear_complexity(lfsr_bits(400, taps=(0, 1, 3, 4), degree=16)) == 16
    assert linear_complexity([0] * 50 + [1]) == 51


def _expected_range(n):
    # mean n/2 + (4 + n mod 2)/18, variance about 86/81: 10 is far out in the tails
    return n / 2 - 10, n / 2 + 10


@pytest.mark.parametrize("seed", [0, 1, 2**63])
def test_decision_bits_have_the_linear_complexity_of_random_bits(seed):
    bits = cdropout.dropout_mask(N, 0.5, seed=seed, offset=4000)
    low, high = _expected_range(N)
    assert low <= linear_complexity(bits) <= high


@pytest.mark.parametrize("bit", [0, 1, 31])
@pytest.mark.parametrize("offset", [0, _kernel.BLOCK - 1000])  # within, across blocks
def test_each_bit_of_the_words_has_the_linear_complexity_of_random_bits(bit, offset):
    words = _kernel.raw_stream(5, offset, N)
    low, high = _expected_range(N)
    assert low <= linear_complexity((words >> np.uint32(bit)) & 1) <= high
