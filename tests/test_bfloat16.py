"""bfloat16: the kernel reads and writes 16-bit words, computes in float32 and rounds
once to nearest even; cdropout._bfloat16 is its NumPy twin. ml_dtypes' bfloat16 arrays
go through the public API (skipped where ml_dtypes is not installed)."""

import numpy as np
import pytest

import cdropout
from cdropout import _bfloat16, _kernel, _params, reference
from cdropout.testing import assert_same_bytes


def _edge_words():
    """Every bfloat16 word, and float32 values at and around rounding ties."""
    every = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    low = np.arange(0, 2**16, 97, dtype=np.uint32)  # low halves, ties (0x8000) included
    high = (every.astype(np.uint32)[::7, None] << 16) | np.r_[low, 0x8000, 0x7FFF,
                                                               0x8001][None, :]
    return every, high.reshape(-1).view(np.float32)


def test_rounding_is_to_nearest_ties_to_even_by_an_independent_computation():
    _, values = _edge_words()
    finite = values[np.isfinite(values)]
    words = _bfloat16.from_float32(finite)
    # independently: the two bfloat16 neighbours of each value, the nearer one, ties to
    # the one with an even last bit (in float64, where every step is exact)
    bits = finite.view(np.uint32)
    down = (bits >> 16).astype(np.uint16)
    up = down + np.uint16(1)
    lo = _bfloat16.to_float32(down).astype(np.float64)
    hi = _bfloat16.to_float32(up).astype(np.float64)
    hi[~np.isfinite(hi) & np.isfinite(lo)] = np.nan  # handled below
    v = finite.astype(np.float64)  # `up` is the next magnitude, for either sign
    tie = np.abs(v - lo) == np.abs(hi - v)
    nearer_up = np.abs(hi - v) < np.abs(v - lo)
    expected = np.where(tie, np.where(down % 2 == 0, down, up),
                        np.where(nearer_up, up, down))  # fmt: skip
    overflow = np.isnan(hi)  # next to the largest finite: RNE gives inf or max
    expected[overflow] = words[overflow]
    assert np.array_equal(words, expected.astype(np.uint16))
    assert np.array_equal(_bfloat16.to_float32(np.arange(2**16, dtype=np.uint16))
                          .view(np.uint32) >> 16, np.arange(2**16))  # fmt: skip


def test_nan_stays_a_quiet_nan_with_its_sign():
    nans = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF],
                    np.uint32).view(np.float32)  # fmt: skip
    words = _bfloat16.from_float32(nans)
    assert np.all(np.isnan(_bfloat16.to_float32(words)))
    assert np.array_equal(words >> 15, [0, 1, 0, 1, 0])


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_the_kernels_words_equal_the_numpy_twin(p, n_threads):
    every, values = _edge_words()
    words = np.concatenate([every, _bfloat16.from_float32(values)])
    words = np.concatenate([words] * 3)  # past 2**17 elements: parallel blocks
    out = np.empty_like(words)
    scale = _params.training_scale(p, "inverted", np.dtype(np.float16))
    _kernel.dropout_into(words, out, 11, 5, _params.threshold(p), scale, n_threads)
    keep = reference.dropout_mask(words.size, p, seed=11, offset=5)
    with np.errstate(over="ignore", invalid="ignore"):
        kept = _bfloat16.from_float32(_bfloat16.to_float32(words) * np.float32(scale))
    assert_same_bytes(out, np.where(keep, kept, np.uint16(0)))


ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)


def _x(shape=(33, 1000)):
    x = np.random.default_rng(2).standard_normal(shape).astype(BF16)
    x.reshape(-1)[:4] = [np.nan, np.inf, -np.inf, -0.0]
    return x


@pytest.mark.parametrize("layout", ["c", "strided", "transposed"])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"offset": 4097}, {"mode": "classic"}, {"noise_shape": (None, 1)},
     {"training": False, "mode": "classic"}, {"n_threads": 2}],
)  # fmt: skip
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_ml_dtypes_bfloat16_arrays_equal_the_reference(p, kwargs, layout):
    x = _x()
    x = {"c": x, "strided": x[:, ::3], "transposed": x.T}[layout]
    y = cdropout.dropout(x, p, seed=4, **kwargs)
    assert y.dtype == BF16
    assert_same_bytes(y, reference.dropout(x, p, seed=4, **kwargs))


def test_bfloat16_in_place_and_the_variants():
    x = _x()
    expected = reference.dropout(x, 0.3, seed=1)
    assert cdropout.dropout(x, 0.3, seed=1, out=x) is x
    assert_same_bytes(x, expected)
    for name in ("alpha_dropout", "gaussian_dropout"):
        assert_same_bytes(getattr(cdropout, name)(_x(), 0.3, seed=1),
                          getattr(reference, name)(_x(), 0.3, seed=1))  # fmt: skip


def test_bfloat16_keeps_the_float32_decisions_and_products_rounded_once():
    x = _x()
    y = cdropout.dropout(x, 0.3, seed=9)
    y32 = cdropout.dropout(x.astype(np.float32), 0.3, seed=9)
    assert_same_bytes(_bfloat16.words(y), _bfloat16.from_float32(y32))


def test_out_must_be_bfloat16_too():
    with pytest.raises(TypeError, match="out must have dtype bfloat16"):
        cdropout.dropout(_x(), 0.5, seed=1, out=np.zeros((33, 1000), np.float16))
