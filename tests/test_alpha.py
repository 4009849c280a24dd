"""Alpha dropout: the reference's bytes, PyTorch's constants, the moments it keeps."""

import math

import numpy as np
import pytest

import cdropout
from cdropout import _params, reference
from cdropout.testing import assert_same_bytes


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("size", [0, 1, 17, 4097, 50_001])
@pytest.mark.parametrize("p", [0.0, 1e-9, 0.1, 0.5, 0.9, 1 - 2**-40, 1.0])
def test_alpha_dropout_equals_reference(dtype, size, p):
    x = np.random.default_rng(size).standard_normal(size).astype(dtype)
    if size > 5:
        x[::5] = np.inf  # a dropped inf becomes the constant too
    for offset in (0, 4095):
        desired = reference.alpha_dropout(x, p, seed=4, offset=offset)
        assert_same_bytes(cdropout.alpha_dropout(x, p, seed=4, offset=offset), desired)
        in_place = x[::-1].copy()[::-1]  # a negative-stride view: the copying path
        cdropout.alpha_dropout(in_place, p, seed=4, offset=offset, out=in_place)
        assert_same_bytes(in_place, desired)


def test_constants_are_pytorchs():
    # torch/csrc: alpha = 1.7580993408473766; a = 1 / sqrt((alpha^2 p + 1)(1 - p))
    a, b, c = _params.alpha_constants(0.2, np.float64)
    alpha = 1.7580993408473766
    assert a == pytest.approx(1 / math.sqrt((alpha**2 * 0.2 + 1) * 0.8), rel=1e-15)
    assert b == pytest.approx(alpha * a * 0.2, rel=1e-15)
    assert c == pytest.approx(-alpha * a * 0.8, rel=1e-15)


def test_kept_and_dropped_follow_the_dropout_mask():
    x = np.random.default_rng(1).standard_normal(10_000)
    y = cdropout.alpha_dropout(x, 0.3, seed=7, offset=5)
    keep = cdropout.dropout_mask(x.shape, 0.3, seed=7, offset=5)
    a, b, c = _params.alpha_constants(0.3, np.float64)
    assert np.array_equal(y[keep], x[keep] * a + b)
    assert np.all(y[~keep] == c)


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5])
def test_mean_zero_and_variance_one_are_kept(p):
    # for inputs of mean 0 and variance 1 (SELU's fixed point); 5 standard errors
    n = 1_000_000
    x = np.random.default_rng(2).standard_normal(n)
    y = cdropout.alpha_dropout(x, p, seed=3)
    assert abs(y.mean()) < 5 * math.sqrt(y.var() / n)
    assert abs(y.var() - 1.0) < 5 * math.sqrt(2.0 / n) * 2


def test_evaluation_is_the_identity_and_draws_nothing():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    x = np.linspace(-1, 1, 9)
    assert_same_bytes(cdropout.alpha_dropout(x, 0.5, seed=rng, training=False), x)
    assert rng.bit_generator.state == state


def test_layer_forward_backward_and_modes():
    from cdropout.testing import call_seed

    layer = cdropout.AlphaDropout(0.25, seed=8)
    assert repr(layer) == "AlphaDropout(p=0.25, inplace=False)"
    x = np.random.default_rng(4).standard_normal(3000)
    y = layer(x)
    assert_same_bytes(y, cdropout.alpha_dropout(x, 0.25, seed=call_seed(8, 0)))
    grad = layer.backward(np.ones_like(x))
    a, _, _ = _params.alpha_constants(0.25, np.float64)
    keep = cdropout.dropout_mask(x.shape, 0.25, seed=call_seed(8, 0))
    assert np.array_equal(grad, np.where(keep, a, 0.0))
    assert_same_bytes(layer.eval()(x), x)
    assert_same_bytes(layer.backward(x), x)


@pytest.mark.parametrize("function", [cdropout.alpha_dropout, reference.alpha_dropout])
def test_bad_arguments_are_refused(function):
    x = np.ones(4)
    with pytest.raises(ValueError, match="p must satisfy"):
        function(x, 1.5, seed=1, out=x)
    with pytest.raises(TypeError, match="float16, float32, float64 or bfloat16"):
        function(np.arange(4), 0.5, seed=1)
    assert np.all(x == 1)
