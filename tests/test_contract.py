"""The semantics of the API (README "Use"): modes, evaluation, the special values of p,
what a dropped element becomes, seeds, out= and the mask."""

import numpy as np
import pytest

import cdropout
from cdropout.testing import assert_same_bytes

DTYPES = [np.float16, np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_inverted_training_scales_kept_elements_by_one_over_keep_probability(dtype):
    x = np.full(10_000, 3.0, dtype)
    y = cdropout.dropout(x, 0.2, seed=1)
    kept = cdropout.dropout_mask(x.shape, 0.2, seed=1)
    scale = np.float32(1 / 0.8) if dtype is np.float16 else dtype(1 / 0.8)
    expected = (
        (np.float32(3.0) * scale).astype(dtype) if dtype is np.float16 else x[0] * scale
    )
    assert np.all(y[kept] == expected)
    assert np.all(y[~kept] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_classic_training_keeps_elements_as_they_are(dtype):
    x = np.linspace(-5, 5, 10_000).astype(dtype)
    y = cdropout.dropout(x, 0.3, seed=2, mode="classic")
    kept = cdropout.dropout_mask(x.shape, 0.3, seed=2)
    assert_same_bytes(y[kept], x[kept])
    assert np.all(y[~kept] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_evaluation(dtype):
    x = np.linspace(-5, 5, 1001).astype(dtype)
    inverted = cdropout.dropout(x, 0.3, seed=2, training=False)
    assert_same_bytes(inverted, x)
    assert inverted is not x
    classic = cdropout.dropout(x, 0.3, training=False, mode="classic")
    compute = np.float32 if dtype is np.float16 else dtype
    assert_same_bytes(classic, (x.astype(compute) * compute(0.7)).astype(dtype))


def test_evaluation_consumes_nothing_from_a_generator():
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    cdropout.dropout(np.ones(10), 0.5, seed=rng, training=False)
    assert rng.bit_generator.state == state


def test_mc_dropout_at_inference_is_training_true():
    x = np.ones(1000)
    assert not np.array_equal(cdropout.dropout(x, 0.5, seed=1), x)


@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_p_zero_is_an_exact_copy_nan_payloads_included(dtype, mode):
    bits = {np.float16: np.uint16, np.float32: np.uint32, np.float64: np.uint64}[dtype]
    x = np.random.default_rng(0).standard_normal(5000).astype(dtype)
    x.view(bits)[::7] = np.iinfo(bits).max  # NaNs with every payload bit set
    x[1::11] = -0.0
    assert_same_bytes(cdropout.dropout(x, 0.0, seed=1, mode=mode), x)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_p_one_gives_positive_zeros_without_inf_or_nan(dtype, mode, training):
    x = np.array([1.0, -2.0, np.inf, -np.inf, np.nan, -0.0], dtype)
    y = cdropout.dropout(x, 1.0, seed=1, mode=mode, training=training)
    if mode == "inverted" and not training:
        assert_same_bytes(y, x)  # evaluation of inverted dropout does nothing
    else:
        assert_same_bytes(y, np.zeros_like(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropped_elements_are_positive_zero_and_kept_nan_stays_nan(dtype):
    x = np.tile(np.array([np.nan, np.inf, -np.inf, -1.0, -0.0], dtype), 2000)
    y = cdropout.dropout(x, 0.5, seed=3)
    kept = cdropout.dropout_mask(x.shape, 0.5, seed=3)
    assert 0 < kept.sum() < kept.size
    bits = y.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[y.dtype.itemsize])
    assert np.all(bits[~kept] == 0)  # +0.0, also where x held NaN, inf or -0.0
    assert np.all(np.isnan(y[kept & np.isnan(x)]))
    assert np.all(y[kept & (x == np.inf)] == np.inf)


def test_seed_kinds():
    x = np.ones(1000, np.float32)
    by_int = cdropout.dropout(x, 0.5, seed=42)
    assert_same_bytes(cdropout.dropout(x, 0.5, seed=np.uint64(42)), by_int)
    sequence = np.random.SeedSequence(42)
    word = int(sequence.generate_state(1, np.uint64)[0])
    assert_same_bytes(
        cdropout.dropout(x, 0.5, seed=sequence), cdropout.dropout(x, 0.5, seed=word)
    )
    rng = np.random.default_rng(7)
    drawn = int(np.random.default_rng(7).integers(0, 2**64, dtype=np.uint64))
    assert_same_bytes(
        cdropout.dropout(x, 0.5, seed=rng), cdropout.dropout(x, 0.5, seed=drawn)
    )
    # a Generator advances: the next call draws another seed
    assert not np.array_equal(
        cdropout.dropout(x, 0.5, seed=rng), cdropout.dropout(x, 0.5, seed=drawn)
    )
    assert not np.array_equal(cdropout.dropout(x, 0.5), cdropout.dropout(x, 0.5))


def test_out_receives_the_result_and_is_returned():
    x = np.random.default_rng(0).standard_normal((30, 40))
    out = np.empty_like(x)
    assert cdropout.dropout(x, 0.3, seed=1, out=out) is out
    assert_same_bytes(out, cdropout.dropout(x, 0.3, seed=1))
    swapped = np.empty(x.shape, x.dtype.newbyteorder("S"))
    assert cdropout.dropout(x, 0.3, seed=1, out=swapped) is swapped
    assert_same_bytes(swapped.astype(x.dtype), out)
    strided = np.empty((60, 80))[::2, ::2]
    cdropout.dropout(x, 0.3, seed=1, out=strided)
    assert_same_bytes(np.ascontiguousarray(strided), out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift", [1, 17, -5])
def test_out_partly_overlapping_x_works_as_if_x_were_copied_first(dtype, shift):
    buffer = np.random.default_rng(1).standard_normal(10_000).astype(dtype)
    x = buffer[100:9000]
    out = buffer[100 + shift : 9000 + shift]
    desired = cdropout.dropout(x.copy(), 0.3, seed=6)
    cdropout.dropout(x, 0.3, seed=6, out=out)
    assert_same_bytes(out, desired)


def test_array_likes_and_empty_and_0d():
    assert_same_bytes(
        cdropout.dropout([1.0, 2.0, 3.0], 0.5, seed=1),
        cdropout.dropout(np.array([1.0, 2.0, 3.0]), 0.5, seed=1),
    )
    assert cdropout.dropout(np.empty((0, 5), np.float32), 0.5, seed=1).shape == (0, 5)
    y = cdropout.dropout(np.float64(2.0), 0.5, seed=1)
    assert y.shape == () and y.dtype == np.float64


def test_mask_matches_dropout():
    x = np.ones((50, 70), np.float32)
    y = cdropout.dropout(x, 0.35, seed=12, offset=99)
    mask = cdropout.dropout_mask((50, 70), 0.35, seed=12, offset=99)
    assert mask.dtype == np.bool_ and mask.shape == (50, 70)
    assert np.array_equal(y != 0, mask)
    assert cdropout.dropout_mask(5, 0.0, seed=1).all()
    assert not cdropout.dropout_mask(5, 1.0, seed=1).any()


def test_show_config_names_version_openmp_threads_and_isa(capsys):
    cdropout.show_config()
    printed = capsys.readouterr().out
    for word in ("cdropout", "openmp", "threads", "isa path", cdropout.__version__):
        assert word in printed
