"""The defects an adversarial sweep found from outside, one test each: every
test here failed on cdropout 0.1.0."""

import subprocess
import sys
import tempfile
import textwrap
import threading
from fractions import Fraction

import numpy as np
import pytest

import cdropout
from cdropout import reference
from cdropout.testing import assert_same_bytes


def _run_python(code, timeout=120):
    # from a neutral folder: a repository root would import its unbuilt source folder
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tempfile.gettempdir(),
    )


@pytest.mark.parametrize("n_threads", [40_000, 65_536, 2**31 - 1])
def test_a_huge_thread_count_is_capped_not_fatal(n_threads):
    # libgomp aborted the process ("Thread creation failed") or segfaulted
    result = _run_python(f"""
        import numpy as np, cdropout
        x = np.ones(1 << 16, np.float32)
        y = cdropout.dropout(x, 0.5, seed=1, n_threads={n_threads})
        z = cdropout.dropout(np.ones((1 << 16) + 1), 0.5, seed=1, offset=3,
                             n_threads={n_threads})
        assert np.array_equal(y, cdropout.reference.dropout(x, 0.5, seed=1))
        assert np.array_equal(z, cdropout.reference.dropout(np.ones(z.size), 0.5,
                                                           seed=1, offset=3))
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def _bad_thread_calls():
    strided = np.arange(1, 201, dtype=np.float32)[::2]
    return [
        (cdropout.dropout, strided, {}),
        (cdropout.dropout, strided.astype(np.float16), {}),
        (cdropout.dropout, strided, {"noise_shape": (1,)}),
        (cdropout.alpha_dropout, strided, {}),
        (cdropout.gaussian_dropout, strided, {}),
    ]


@pytest.mark.parametrize("n_threads", [2**31, 2**63, 10**30])
@pytest.mark.parametrize("case", range(5))
def test_a_thread_count_beyond_a_c_int_is_refused_before_anything_happens(
    case, n_threads
):
    function, x, kwargs = _bad_thread_calls()[case]
    before = x.copy()
    out = np.zeros(x.shape, x.dtype)
    generator = np.random.default_rng(5)
    state = generator.bit_generator.state
    with pytest.raises(ValueError, match="n_threads") as info:
        function(x, 0.5, seed=generator, out=out, n_threads=n_threads, **kwargs)
    assert str(n_threads) in str(info.value)
    assert_same_bytes(x, before)
    assert not out.any()  # out was zeros and stays zeros
    assert generator.bit_generator.state == state  # nothing drawn


def test_dropout_mask_refuses_a_bad_thread_count_without_drawing():
    generator = np.random.default_rng(5)
    state = generator.bit_generator.state
    with pytest.raises(ValueError, match="n_threads"):
        cdropout.dropout_mask(10, 0.5, seed=generator, n_threads=2**31)
    assert generator.bit_generator.state == state


def test_one_layer_called_from_several_threads_gives_each_call_its_own_mask():
    layer = cdropout.Dropout(0.5, seed=0)
    x = np.ones(1 << 20, np.float32)  # above the size where the GIL is released
    barrier = threading.Barrier(4)
    outputs = [None] * 4

    def work(k):
        barrier.wait()
        outputs[k] = layer(x)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert layer.calls == 4
    serial = cdropout.Dropout(0.5, seed=0)
    expected = {serial(x).tobytes() for _ in range(4)}  # streams 0, 1, 2 and 3
    assert {y.tobytes() for y in outputs} == expected


def test_backward_follows_the_last_forward_call_of_the_calling_thread():
    layer = cdropout.Dropout(0.5, seed=3)
    x = np.ones(1000)
    mine = layer(x)
    other = threading.Thread(target=layer, args=(np.ones(1000),))
    other.start()
    other.join()
    assert layer.calls == 2
    assert_same_bytes(layer.backward(np.ones(1000)), mine)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself
def test_rescale_weights_of_a_matrix_is_an_elementwise_rescale():
    W = np.matrix([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    result = cdropout.rescale_weights(
        W, [0.5, 0.0, 0.75], axis=0, from_mode="classic", to_mode="inverted"
    )
    assert type(result) is np.ndarray
    assert np.array_equal(result, [[0.5, 1.0], [3.0, 4.0], [1.25, 1.5]])


@pytest.mark.parametrize("shape", [2**70, (2**40, 2**40), (2**62, 4), [2**63]])
@pytest.mark.parametrize("function", [cdropout.dropout_mask, reference.dropout_mask])
def test_dropout_mask_of_an_impossible_size_is_refused_without_drawing(function, shape):
    generator = np.random.default_rng(5)
    state = generator.bit_generator.state
    with pytest.raises(ValueError, match="shape") as info:
        function(shape, 0.5, seed=generator)
    assert "2**63" in str(info.value)
    assert generator.bit_generator.state == state


def test_gaussian_layer_refuses_p_1_before_drawing_its_seed():
    generator = np.random.default_rng(5)
    state = generator.bit_generator.state
    with pytest.raises(ValueError, match="p must satisfy 0 <= p < 1"):
        cdropout.GaussianDropout(1.0, seed=generator)
    assert generator.bit_generator.state == state


def test_errors_name_the_argument_that_was_given():
    layer = cdropout.Dropout(0.5, seed=0)
    layer(np.ones(3))
    with pytest.raises(TypeError, match="^grad must have dtype"):
        layer.backward(np.ones(3, np.int64))
    with pytest.raises(TypeError, match="^weights must have dtype"):
        cdropout.rescale_weights(
            np.ones((2, 2), np.int64), 0.5, axis=0, from_mode="classic",
            to_mode="inverted",
        )  # fmt: skip
    inplace = cdropout.Dropout(0.5, seed=0, inplace=True)
    read_only = np.ones(3)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="^x must be writeable.*inplace=True"):
        inplace(read_only)
    with pytest.raises(TypeError, match="^x must be a numpy.ndarray.*inplace=True"):
        inplace([1.0, 2.0])
    assert inplace.calls == 0  # refused inputs take no call number


@pytest.mark.parametrize(
    ("noise_shape", "error"),
    [(3, TypeError), ("ab", TypeError), ((1.5, None), TypeError), ((True,), TypeError),
     ((None, -1), ValueError), (b"\x01", TypeError), ({1: 2}, TypeError)],
)  # fmt: skip
@pytest.mark.parametrize(
    "layer", [cdropout.Dropout, cdropout.AlphaDropout, cdropout.GaussianDropout]
)
def test_a_layer_checks_its_noise_shape_when_it_is_made(layer, noise_shape, error):
    with pytest.raises(error, match="noise_shape"):
        layer(0.5, seed=0, noise_shape=noise_shape)


@pytest.mark.parametrize(
    "p",
    [np.longdouble(1) + np.longdouble(2) ** -60, Fraction(2**60 + 1, 2**60)],
    ids=["long-double", "fraction"],
)
@pytest.mark.parametrize("function", [cdropout.dropout, reference.dropout])
def test_p_is_compared_with_its_bounds_in_its_own_precision(function, p):
    if float(p) == p:
        pytest.skip("long double is no wider than double here")
    with pytest.raises(ValueError, match="p must satisfy"):
        function(np.ones(4), p, seed=1)


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


@pytest.mark.parametrize(
    ("shape", "strides"),
    # elements interleaved so that the quick no-overlap test fails: the exact one passes
    [((3, 2), (16, 24)), ((2, 3), (24, 16)), ((4, 2), (16, 40))],
)
def test_an_as_strided_out_whose_elements_do_not_overlap_is_accepted(shape, strides):
    base = np.zeros(32)
    out = np.lib.stride_tricks.as_strided(base, shape, strides)
    x = np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape)
    result = cdropout.dropout(x, 0.5, seed=2, out=out)
    assert result is out
    assert_same_bytes(np.array(out), reference.dropout(x, 0.5, seed=2))


def test_an_as_strided_out_whose_elements_overlap_is_refused():
    out = np.lib.stride_tricks.as_strided(np.zeros(32), (3, 3), (16, 8))
    with pytest.raises(ValueError, match="overlapping"):
        cdropout.dropout(np.ones((3, 3)), 0.5, seed=2, out=out)


def test_dask_refuses_unknown_chunk_sizes_and_numpy_arrays():
    da = pytest.importorskip("dask.array")
    import cdropout.dask

    d = da.from_array(np.arange(-5.0, 5.0), chunks=3)
    with pytest.raises(ValueError, match="darr must have known chunk sizes"):
        cdropout.dask.dropout(d[d > 0], 0.5, seed=1)
    known = d[d > 0].compute_chunk_sizes()
    assert np.array_equal(
        cdropout.dask.dropout(known, 0.5, seed=1).compute(),
        cdropout.dropout(np.arange(1.0, 5.0), 0.5, seed=1),
    )
    with pytest.raises(TypeError, match="darr must be a dask.array.Array, got ndarray"):
        cdropout.dask.dropout(np.ones(3), 0.5, seed=1)
