"""Gaussian dropout: the reference's bytes, normal deviates, the moments it keeps."""

import math

import numpy as np
import pytest

import cdropout
from cdropout import reference
from cdropout.testing import assert_same_bytes


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("size", [0, 1, 2, 3, 17, 4097, 70_001])
@pytest.mark.parametrize("offset", [0, 1, 4095, 2**32 - 1])
def test_gaussian_dropout_equals_reference(dtype, size, offset):
    x = np.random.default_rng(size).standard_normal(size).astype(dtype)
    for p in (0.0, 1e-6, 0.3, 0.9):
        desired = reference.gaussian_dropout(x, p, seed=6, offset=offset)
        assert_same_bytes(
            cdropout.gaussian_dropout(x, p, seed=6, offset=offset), desired
        )
        in_place = np.array(x, order="F")
        cdropout.gaussian_dropout(in_place, p, seed=6, offset=offset, out=in_place)
        assert_same_bytes(in_place, desired)


def test_chunks_with_odd_offsets_give_the_bytes_of_one_call():
    x = np.random.default_rng(0).standard_normal(200_003)
    whole = cdropout.gaussian_dropout(x, 0.4, seed=2)
    edges = [0, 1, 2, 99_999, 131_072, 131_073, 200_003]
    parts = [
        cdropout.gaussian_dropout(x[a:b], 0.4, seed=2, offset=a)
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    assert_same_bytes(np.concatenate(parts), whole)


def _normal_cdf(z):
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


@pytest.mark.parametrize("seed", [0, 1])
def test_deviates_are_standard_normal(seed):
    n = 200_000
    z = reference.standard_normal(seed, 12_345, n)
    standard_error = 1 / math.sqrt(n)
    assert abs(z.mean()) < 5 * standard_error
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs((z**3).mean()) < 5 * math.sqrt(15 / n)
    assert abs((z**4).mean() - 3) < 5 * math.sqrt(96 / n)
    # Kolmogorov-Smirnov against the normal CDF: 1.95 / sqrt(n) is the 0.001 level
    ordered = np.sort(z[:20_000])
    cdf = _normal_cdf(ordered)
    steps = np.arange(1, ordered.size + 1) / ordered.size
    assert np.max(np.abs(cdf - steps)) < 1.95 / math.sqrt(ordered.size)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_factor_has_mean_one_and_variance_p_over_one_minus_p(p):
    n = 1_000_000
    y = cdropout.gaussian_dropout(np.ones(n), p, seed=3)
    variance = p / (1 - p)
    assert abs(y.mean() - 1) < 5 * math.sqrt(variance / n)
    assert abs(y.var() - variance) < 5 * variance * math.sqrt(2 / n)


def test_evaluation_is_the_identity_and_p_one_is_refused():
    x = np.linspace(-1, 1, 7)
    assert_same_bytes(cdropout.gaussian_dropout(x, 0.5, training=False), x)
    for function in (cdropout.gaussian_dropout, reference.gaussian_dropout):
        with pytest.raises(ValueError, match="p must satisfy 0 <= p < 1"):
            function(x, 1.0, seed=1)
    with pytest.raises(ValueError, match="0 <= p < 1"):
        cdropout.GaussianDropout(1.0)


def test_layer_backward_multiplies_by_the_same_factors():
    from cdropout.testing import call_seed

    layer = cdropout.GaussianDropout(0.3, seed=4)
    assert repr(layer) == "GaussianDropout(p=0.3, inplace=False)"
    x = np.random.default_rng(5).standard_normal(1000)
    y = layer(x)
    assert_same_bytes(y, cdropout.gaussian_dropout(x, 0.3, seed=call_seed(4, 0)))
    factors = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(y, x * factors, rtol=1e-15)
    assert_same_bytes(layer.eval()(x), x)


def test_gaussian_layer_refuses_p_1_before_drawing_its_seed():
    generator = np.random.default_rng(5)
    state = generator.bit_generator.state
    with pytest.raises(ValueError, match="p must satisfy 0 <= p < 1"):
        cdropout.GaussianDropout(1.0, seed=generator)
    assert generator.bit_generator.state == state
