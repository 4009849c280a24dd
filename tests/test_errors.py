"""Bad input (README "Use"): a clear error naming the argument and the value,
raised before any byte is written, identically by the kernel path and the reference."""

import os
import subprocess
import sys

import numpy as np
import pytest

import cdropout
from cdropout import reference

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
