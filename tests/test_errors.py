"""Bad input (README "Use"): a clear error naming the argument and the value,
raised before any byte is written, identically by the kernel path and the reference."""

import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import cdropout
from cdropout import reference
from cdropout.testing import assert_same_bytes

BAD_CALLS = [
    # (keyword arguments, exception, words the message must hold)
    ({"p": float("nan")}, ValueError, ["p", "nan"]),
    ({"p": float("inf")}, ValueError, ["p", "inf"]),
    ({"p": -0.1}, ValueError, ["p", "-0.1"]),
    ({"p": 1.5}, ValueError, ["p", "1.5"]),
    ({"p": "0.5"}, TypeError, ["p", "str"]),
    ({"p": None}, TypeError, ["p", "NoneType"]),
    ({"p": 0.5j}, TypeError, ["p", "complex"]),
    ({"p": True}, TypeError, ["p", "bool"]),
    ({"seed": -1}, ValueError, ["seed", "-1"]),
    ({"seed": 2**64}, ValueError, ["seed", str(2**64)]),
    ({"seed": 1.0}, TypeError, ["seed", "float"]),
    ({"seed": True}, TypeError, ["seed", "bool"]),
    ({"seed": "42"}, TypeError, ["seed", "str"]),
    ({"mode": "drop"}, ValueError, ["mode", "drop", "inverted", "classic"]),
    ({"n_threads": 0}, ValueError, ["n_threads", "0", "positive", "negative"]),
    ({"n_threads": -10_000}, ValueError, ["n_threads", "-10000"]),
    ({"n_threads": 1.5}, TypeError, ["n_threads", "float"]),
    ({"training": "yes"}, TypeError, ["training", "str"]),
    ({"offset": -1}, ValueError, ["offset", "-1"]),
    ({"offset": 2**63}, ValueError, ["offset", str(2**63)]),
    ({"offset": 1.0}, TypeError, ["offset", "float"]),
    ({"out": [0.0] * 6}, TypeError, ["out", "list"]),
    ({"out": np.zeros(6, np.float32)}, TypeError, ["out", "float64", "float32"]),
    ({"out": np.zeros(6, np.int64)}, TypeError, ["out", "int64"]),
    ({"out": np.zeros(7)}, ValueError, ["out", "(6,)", "(7,)"]),
    ({"out": np.zeros((2, 3))}, ValueError, ["out", "(6,)", "(2, 3)"]),
    ({"out": np.broadcast_to(np.zeros(1), (6,))}, ValueError, ["out", "writeable"]),
    ({"out": np.lib.stride_tricks.as_strided(np.zeros(1), (6,), (0,))}, ValueError,
     ["out", "overlapping", "(0,)"]),
    ({"out": np.lib.stride_tricks.as_strided(np.zeros(8), (6,), (4,))}, ValueError,
     ["out", "overlapping", "(4,)"]),
]  # fmt: skip


def _read_only_out():
    out = np.zeros(6)
    out.flags.writeable = False
    return out


@pytest.mark.parametrize("function", [cdropout.dropout, reference.dropout])
@pytest.mark.parametrize(("kwargs", "error", "words"), BAD_CALLS)
def test_bad_argument_is_refused_with_a_clear_message_and_nothing_is_written(
    function, kwargs, error, words
):
    x = np.linspace(-1, 1, 6)
    x_before = x.copy()
    out = kwargs.get("out")
    out_before = out.copy() if isinstance(out, np.ndarray) else None
    call = {"p": 0.5, "seed": 1, **kwargs}
    with pytest.raises(error) as info:
        function(x, **call)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert np.array_equal(x, x_before)
    if out_before is not None:
        assert np.array_equal(out, out_before)


@pytest.mark.parametrize("function", [cdropout.dropout, reference.dropout])
def test_read_only_out_is_refused(function):
    x = np.ones(6)
    with pytest.raises(ValueError, match="out must be writeable"):
        function(x, 0.5, seed=1, out=_read_only_out())
    read_only = np.ones(6)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match=r"x must be writeable .*\(out=x"):
        function(read_only, 0.5, seed=1, out=read_only)


@pytest.mark.parametrize("function", [cdropout.dropout, reference.dropout])
@pytest.mark.parametrize(
    "x",
    [
        np.arange(5),
        np.arange(5, dtype=np.int8),
        np.ones(5, bool),
        np.ones(5, complex),
        np.array([1.0, "a"], object),
        np.ones(5, np.longdouble),
        ["a", "b"],
    ],
    ids=["int64", "int8", "bool", "complex", "object", "longdouble", "str"],
)
def test_unsupported_dtypes_are_refused_naming_the_dtype(function, x):
    dtype = np.asarray(x).dtype
    with pytest.raises(TypeError) as info:
        function(x, 0.5, seed=1)
    message = str(info.value)
    assert "float16, float32, float64 or bfloat16" in message and str(dtype) in message


def test_a_generator_seed_is_not_drawn_from_when_another_argument_is_bad():
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    with pytest.raises(ValueError):
        cdropout.dropout(np.ones(4), 0.5, seed=rng, mode="nope")
    assert rng.bit_generator.state == state


@pytest.mark.parametrize("function", [cdropout.dropout_mask, reference.dropout_mask])
@pytest.mark.parametrize(
    ("shape", "error"), [(-1, ValueError), ((2, -3), ValueError), (2.5, TypeError),
                         ("ab", TypeError), ((2, None), TypeError)]
)  # fmt: skip
def test_mask_refuses_bad_shapes(function, shape, error):
    with pytest.raises(error, match="shape"):
        function(shape, 0.5, seed=1)


def test_bad_isa_request_is_refused():
    done = subprocess.run(
        [sys.executable, "-c", "import cdropout"],
        env={**os.environ, "CDROPOUT_ISA": "sse9"},
        cwd=os.path.dirname(
            __file__
        ),  # the source folder would shadow the installed build
        capture_output=True,
        text=True,
    )
    assert (
        done.returncode != 0 and "CDROPOUT_ISA" in done.stderr and "sse9" in done.stderr
    )


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


@pytest.mark.parametrize("shape", [2**70, (2**40, 2**40), (2**62, 4), [2**63]])
@pytest.mark.parametrize("function", [cdropout.dropout_mask, reference.dropout_mask])
def test_dropout_mask_of_an_impossible_size_is_refused_without_drawing(function, shape):
    generator = np.random.default_rng(5)
    state = generator.bit_generator.state
    with pytest.raises(ValueError, match="shape") as info:
        function(shape, 0.5, seed=generator)
    assert "2**63" in str(info.value)
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


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [("cdropout.dask", "dask", "dask"), ("cdropout.jax", "jax", "jax"),
     ("cdropout.flax", "flax", "flax"), ("cdropout.torch", "torch", "torch")],
)  # fmt: skip
def test_a_module_whose_extra_is_missing_names_the_extra(module, missing, extra):
    code = f"import sys; sys.modules[{missing!r}] = None; import {module}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(__file__), timeout=120)  # fmt: skip
    assert done.returncode != 0
    assert f'pip install "cdropout[{extra}]"' in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        # the value, not only its type
        (lambda: cdropout.dropout(np.ones(3), "0.5"), TypeError, "got str '0.5'"),
        (lambda: cdropout.dropout(np.ones(3), 0.5, seed=1.0), TypeError,
         "got float 1.0"),
        # what was given, not what NumPy made of it
        (lambda: cdropout.dropout([1, 2, 3], 0.5), TypeError,
         "got a list that NumPy reads as int64"),
        # a percent
        (lambda: cdropout.dropout(np.ones(3), 50), ValueError,
         r"a probability, not a percent \(p=0.5 drops 50%\)"),
        # the axis, when p's length does not match the units on it
        (lambda: cdropout.rescale_weights(np.ones((3, 4)), [0.5] * 3, axis=1,
                                          from_mode="classic", to_mode="inverted"),
         ValueError, "the weights have 4 input units on axis 1"),
    ],
    ids=["p-string", "seed-float", "list-of-ints", "percent", "rescale-axis"],
)  # fmt: skip
def test_a_refusal_says_what_was_given_and_what_was_meant(call, error, words):
    with pytest.raises(error, match=words):
        call()
