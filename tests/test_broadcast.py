"""Broadcast (structured) dropout: a mask over noise_shape, broadcast along the other
axes, the mask's own C-order indices being its stream indices."""

import numpy as np
import pytest

import cdropout
from cdropout import reference
from cdropout.testing import assert_same_bytes

CASES = [
    ((4, 5, 6, 7), (4, 5, 1, 1)),  # channels, as PyTorch's Dropout2d
    ((4, 5, 6, 7), (None, None, 1, 1)),
    ((4, 5, 6, 7), (1, 5, 1, 7)),
    ((4, 5, 6, 7), (4, 1, 6, 1)),
    ((8, 300), (1, 300)),  # the same features dropped across the batch
    ((8, 300), (8, 1)),  # whole rows
    ((3, 4), (1, 1)),  # one decision for everything
    ((3, 1, 8), (1, 1, 8)),
    ((2, 3, 4, 5, 6), (2, 1, 4, 1, 6)),
    ((0, 5), (0, 1)),
    ((), ()),
]


@pytest.mark.parametrize(("shape", "noise"), CASES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("offset", [0, 4095, 2**32 - 3])
def test_broadcast_dropout_equals_reference(shape, noise, dtype, offset):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    if x.size:
        x.flat[::5] = np.inf  # dropped infinities must become +0.0
    for mode in ("inverted", "classic"):
        same = {"seed": 9, "offset": offset, "mode": mode, "noise_shape": noise}
        desired = reference.dropout(
            x, 0.4, seed=9, offset=offset, mode=mode, noise_shape=noise
        )
        actual = cdropout.dropout(
            x, 0.4, seed=9, offset=offset, mode=mode, noise_shape=noise
        )
        assert_same_bytes(actual, desired)
        strided = np.array(x, order="F")  # (asfortranarray makes a 0-d array 1-d)
        assert_same_bytes(
            cdropout.dropout(
                strided, 0.4, seed=9, offset=offset, mode=mode, noise_shape=noise
            ),
            desired,
        )
        in_place = x.copy()
        cdropout.dropout(in_place, 0.4, out=in_place, **same)
        assert_same_bytes(in_place, desired)


def test_whole_channels_drop_and_keep_together():
    x = np.random.default_rng(2).standard_normal((16, 32, 5, 5)).astype(np.float32) + 10
    y = cdropout.dropout(x, 0.5, seed=4, noise_shape=(None, None, 1, 1))
    dropped = np.all(y == 0, axis=(2, 3))
    kept = np.all(y == x * np.float32(2), axis=(2, 3))
    assert np.all(dropped | kept)
    assert 0.3 < dropped.mean() < 0.7


def test_the_mask_is_dropout_mask_over_the_noise_shape():
    x = np.ones((6, 4, 3))
    y = cdropout.dropout(x, 0.3, seed=5, offset=11, noise_shape=(6, 1, 3))
    mask = cdropout.dropout_mask((6, 1, 3), 0.3, seed=5, offset=11)
    assert np.array_equal(y != 0, np.broadcast_to(mask, x.shape))


def test_full_noise_shape_is_plain_dropout():
    x = np.random.default_rng(3).standard_normal((5, 7)).astype(np.float32)
    assert_same_bytes(
        cdropout.dropout(x, 0.3, seed=2, noise_shape=(5, 7)),
        cdropout.dropout(x, 0.3, seed=2),
    )


@pytest.mark.parametrize("function", [cdropout.dropout, reference.dropout])
@pytest.mark.parametrize(
    ("noise", "error", "words"),
    [
        ((4, 1), ValueError, ["noise_shape", "one entry per axis", "(4, 1)"]),
        ((4, 2, 1), ValueError, ["noise_shape", "1 or the size", "(4, 5, 6)"]),
        ((4, 5.0, 1), TypeError, ["noise_shape", "ints or None"]),
        (3, TypeError, ["noise_shape", "tuple or list", "1-D integer array"]),
        (np.array([4.0, 5.0, 1.0]), TypeError, ["noise_shape", "1-D integer array"]),
        (np.array([[4, 5, 1]]), TypeError, ["noise_shape", "ndarray"]),
    ],
)
def test_bad_noise_shape_is_refused(function, noise, error, words):
    x = np.ones((4, 5, 6))
    with pytest.raises(error) as info:
        function(x, 0.5, seed=1, noise_shape=noise, out=x)
    for word in words:
        assert word in str(info.value)
    assert np.all(x == 1)


@pytest.mark.parametrize("function", [cdropout.dropout, reference.dropout])
def test_a_1d_integer_array_is_a_noise_shape(function):
    # as TF and Keras take a 1-D integer tensor
    x = np.ones((4, 5, 6), np.float32)
    expected = function(x, 0.5, seed=2, noise_shape=(4, 1, 6))
    for noise in (np.array([4, 1, 6]), np.array([4, 1, 6], np.uint8), [4, 1, 6]):
        assert_same_bytes(function(x, 0.5, seed=2, noise_shape=noise), expected)


def test_the_layer_takes_a_noise_shape_and_its_backward_follows_it():
    layer = cdropout.Dropout(0.5, seed=3, noise_shape=(None, None, 1, 1))
    x = np.ones((2, 8, 3, 3))
    y = layer(x)
    assert np.all(y == y[:, :, :1, :1])
    assert np.array_equal(layer.backward(np.ones_like(x)), y)
    assert (
        repr(layer)
        == "Dropout(p=0.5, inplace=False, mode='inverted', "
        "noise_shape=(None, None, 1, 1))"
    )


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(
    "noise_shape", [(None, 1, None), (1, 1, 1), (None, None, 1), (4, 1, 1)]
)
@pytest.mark.parametrize("variant", ["alpha_dropout", "gaussian_dropout"])
def test_alpha_and_gaussian_dropout_take_a_noise_shape(variant, noise_shape, dtype):
    x = np.random.default_rng(3).standard_normal((4, 5, 6)).astype(dtype)
    function, twin = getattr(cdropout, variant), getattr(reference, variant)
    y = function(x, 0.4, seed=5, noise_shape=noise_shape, offset=3)
    assert_same_bytes(y, twin(x, 0.4, seed=5, noise_shape=noise_shape, offset=3))
    full = function(np.ones((4, 5, 6), dtype), 0.4, seed=5, noise_shape=noise_shape)
    for axis, dim in enumerate(noise_shape):
        if dim == 1:  # one decision or factor broadcast along the axis
            assert np.all(full == full.take([0], axis=axis))


def test_the_noise_shaped_variants_layers_follow_their_noise_shape():
    x = np.ones((2, 3, 8))
    for layer in (cdropout.AlphaDropout(0.5, seed=1, noise_shape=(None, None, 1)),
                  cdropout.GaussianDropout(0.5, seed=1, noise_shape=(None, None, 1))):
        y = layer(x)
        assert np.all(y == y[:, :, :1])
        g = layer.backward(np.ones_like(x))
        assert np.all(g == g[:, :, :1])


@pytest.mark.parametrize("n_threads", [1, 2, 3, 8])
@pytest.mark.parametrize(
    "noise_shape", [(None, None, 1, 1), (1, None, None, None), (None, 1, None, 1)]
)
def test_threads_split_the_broadcast_rows_with_the_same_bytes(noise_shape, n_threads):
    x = np.random.default_rng(5).standard_normal((16, 8, 32, 33)).astype(np.float32)
    y = cdropout.dropout(x, 0.3, seed=2, noise_shape=noise_shape, n_threads=n_threads)
    assert_same_bytes(y, reference.dropout(x, 0.3, seed=2, noise_shape=noise_shape))
