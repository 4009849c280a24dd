"""Statistics of the mask at fixed seeds. The seeds are fixed, so these tests are
deterministic: they never flake, and they fail only if the stream changes for the worse.
The thresholds are p-values of 1e-6."""

import math

import numpy as np
import pytest

import cdropout
from cdropout import _kernel

B = _kernel.BLOCK
ALPHA = 1e-6


def binomial_two_sided_p_value(k, n, q):
    """Exact two-sided binomial test: P(X with pmf <= pmf(k)), X ~ Binomial(n, q)."""

    def log_pmf(i):
        return (math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                + i * math.log(q) + (n - i) * math.log1p(-q))  # fmt: skip

    limit = log_pmf(k) + 1e-9
    mode = int((n + 1) * q)
    total = 0.0
    for direction in (-1, 1):  # walk out from the mode; each tail sums while it matters
        i = mode if direction == 1 else mode - 1
        while 0 <= i <= n:
            lp = log_pmf(i)
            if lp <= limit:
                total += math.exp(lp)
                if lp < limit - 50:
                    break
            i += direction
    return min(1.0, total)


def test_binomial_p_value_helper_is_right():
    # n = 10, q = 0.5: P(X <= 1 or X >= 9) = 22 / 1024
    assert math.isclose(binomial_two_sided_p_value(1, 10, 0.5), 22 / 1024, rel_tol=1e-9)
    assert binomial_two_sided_p_value(5, 10, 0.5) == pytest.approx(1.0)


def chi_square_upper_tail_bound(df, alpha):
    """Wilson-Hilferty: the chi-square quantile of upper tail alpha."""
    z = {1e-6: 4.753424}[alpha]
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


@pytest.mark.parametrize("seed", [0, 1, 2**64 - 1])
@pytest.mark.parametrize("p", [0.001, 0.1, 0.5, 0.9])
def test_kept_count_passes_an_exact_binomial_test(seed, p):
    n = 1_000_000
    kept = int(cdropout.dropout_mask(n, p, seed=seed).sum())
    assert binomial_two_sided_p_value(kept, n, 1 - p) > ALPHA


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_kept_counts_across_blocks_pass_a_chi_square_test(seed, p):
    blocks = 512
    kept = cdropout.dropout_mask((blocks, B), p, seed=seed).sum(axis=1)
    expected = B * (1 - p)
    variance = B * p * (1 - p)
    statistic = float(np.sum((kept - expected) ** 2) / variance)
    assert statistic < chi_square_upper_tail_bound(blocks - 1, ALPHA)
    assert statistic > (blocks - 1) / 3  # far too even would be as suspicious


@pytest.mark.parametrize("seed", [5, 6])
def test_kept_counts_by_lane_pass_a_chi_square_test(seed):
    lanes = _kernel.LANES
    kept = cdropout.dropout_mask((256 * B // lanes, lanes), 0.5, seed=seed).sum(axis=0)
    n = 256 * B // lanes
    statistic = float(np.sum((kept - n / 2) ** 2) / (n / 4))
    assert statistic < chi_square_upper_tail_bound(lanes - 1, ALPHA)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_inverted_dropout_preserves_the_mean(dtype, p):
    n = 1_000_000
    y = cdropout.dropout(np.ones(n, dtype), p, seed=17)
    # mean of y: Binomial(n, 1-p) / (n (1-p)); standard error sqrt(p / (n (1-p)))
    standard_error = math.sqrt(p / (n * (1 - p)))
    assert abs(float(y.mean(dtype=np.float64)) - 1.0) < 5 * standard_error


def test_neighbouring_decisions_are_uncorrelated():
    n = 4_000_000
    mask = cdropout.dropout_mask(n, 0.5, seed=8).astype(np.float64)
    centred = mask - mask.mean()
    for lag in (1, 2, 15, 16, 17, B - 1, B):
        r = float(np.dot(centred[:-lag], centred[lag:]) / np.dot(centred, centred))
        assert abs(r) < 5 / math.sqrt(n), lag


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_kept_count_over_a_hundred_million_elements(p):
    n = 100_000_000
    kept = int(cdropout.dropout_mask(n, p, seed=99).sum())
    assert binomial_two_sided_p_value(kept, n, 1 - p) > ALPHA
