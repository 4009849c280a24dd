"""rescale_weights: both conventions, both weight layouts, per-unit p, and errors."""

import numpy as np
import pytest

import cdropout


def test_classic_to_inverted_multiplies_the_input_axis_by_keep_probability():
    W = np.arange(1.0, 7.0).reshape(3, 2)  # (in, out) for x @ W
    out = cdropout.rescale_weights(
        W, 0.25, axis=0, from_mode="classic", to_mode="inverted"
    )
    np.testing.assert_array_equal(out, W * 0.75)
    back = cdropout.rescale_weights(
        out, 0.25, axis=0, from_mode="inverted", to_mode="classic"
    )
    np.testing.assert_allclose(back, W, rtol=1e-15)


def test_per_unit_p_on_both_layouts_gives_the_same_layer_output():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    p = np.array([0.0, 0.2, 0.5, 0.9])
    W_in_out = rng.standard_normal((4, 3))
    W_out_in = W_in_out.T.copy()  # torch Linear layout
    a = cdropout.rescale_weights(
        W_in_out, p, axis=0, from_mode="classic", to_mode="inverted"
    )
    b = cdropout.rescale_weights(
        W_out_in, p, axis=-1, from_mode="classic", to_mode="inverted"
    )
    # classic evaluation: inputs scaled by keep probability, weights as trained
    classic_eval = (x * (1 - p)) @ W_in_out
    np.testing.assert_allclose(x @ a, classic_eval, rtol=1e-14)
    np.testing.assert_allclose(x @ b.T, classic_eval, rtol=1e-14)


def test_same_mode_returns_a_copy_and_input_is_left_alone():
    W = np.ones((2, 2), np.float32)
    same = cdropout.rescale_weights(
        W, 0.5, axis=0, from_mode="classic", to_mode="classic"
    )
    assert same is not W and np.array_equal(same, W)
    cdropout.rescale_weights(W, 0.5, axis=0, from_mode="classic", to_mode="inverted")
    assert np.array_equal(W, np.ones((2, 2)))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_is_kept_and_rounded_once(dtype):
    W = np.full((3, 3), 1 / 3, dtype)
    out = cdropout.rescale_weights(
        W, 0.1, axis=1, from_mode="inverted", to_mode="classic"
    )
    assert out.dtype == dtype
    assert np.array_equal(out, (W.astype(np.float64) / 0.9).astype(dtype))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        ({"p": [0.5, 0.5]}, ValueError, r"got shape \(2,\): the weights have 3 input"),
        ({"p": 1.2}, ValueError, "p must satisfy"),
        ({"p": [0.1, np.nan, 0.2]}, ValueError, "every unit"),
        ({"axis": 2}, np.exceptions.AxisError, "axis"),
        ({"from_mode": "dropout"}, ValueError, "mode must be one of"),
        ({"to_mode": None}, ValueError, "mode must be one of"),
        ({"p": 1.0, "from_mode": "inverted", "to_mode": "classic"},
         ValueError, "p = 1"),
        ({"p": [0.1, 1.0, 0.2], "from_mode": "inverted", "to_mode": "classic"},
         ValueError, r"unit\(s\) \[1\]"),
    ],
)  # fmt: skip
def test_errors(call, error, match):
    arguments = {
        "p": 0.5,
        "axis": 0,
        "from_mode": "classic",
        "to_mode": "inverted",
        **call,
    }
    W = np.ones((3, 2))
    with pytest.raises(error, match=match):
        cdropout.rescale_weights(W, arguments.pop("p"), **arguments)
    assert np.array_equal(W, np.ones((3, 2)))


def test_classic_to_inverted_with_p_one_gives_zeros():
    W = np.ones((2, 2))
    out = cdropout.rescale_weights(
        W, 1.0, axis=0, from_mode="classic", to_mode="inverted"
    )
    assert np.array_equal(out, np.zeros((2, 2)))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself
def test_rescale_weights_of_a_matrix_is_an_elementwise_rescale():
    W = np.matrix([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    result = cdropout.rescale_weights(
        W, [0.5, 0.0, 0.75], axis=0, from_mode="classic", to_mode="inverted"
    )
    assert type(result) is np.ndarray
    assert np.array_equal(result, [[0.5, 1.0], [3.0, 4.0], [1.25, 1.5]])


@pytest.mark.parametrize("axis", [True, False, np.bool_(True), 1.0, "0"])
def test_rescale_weights_refuses_an_axis_that_is_not_an_int(axis):
    with pytest.raises(TypeError, match="axis"):
        cdropout.rescale_weights(
            np.ones((2, 2)), 0.5, axis=axis, from_mode="classic", to_mode="inverted"
        )


@pytest.mark.parametrize("to_mode", ["classic", "inverted"])
def test_rescale_weights_always_returns_native_byte_order(to_mode):
    W = np.ones((3, 2), ">f8")
    result = cdropout.rescale_weights(
        W, 0.5, axis=0, from_mode="classic", to_mode=to_mode
    )
    assert result.dtype == np.float64 and result.dtype.isnative
    assert np.array_equal(result, np.full((3, 2), 1.0 if to_mode == "classic" else 0.5))
