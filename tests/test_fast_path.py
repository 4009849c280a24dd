"""The C fast path of the common call gives exactly the bytes of the general path, and
declines (NotImplemented) every call it does not fully check."""

import doctest
import inspect
import pickle

import numpy as np
import pytest

import cdropout
from cdropout import _kernel, _params, reference
from cdropout.testing import assert_same_bytes

B = _kernel.BLOCK


def _fast(x, p=0.5, seed=1, training=True, mode="inverted", out=None, offset=0, n=None,
          stream="xoshiro"):  # fmt: skip
    return _kernel.dropout_fast(x, p, seed, training, mode, out, offset, n, stream)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 17, B + 1, 3 * B + 7])
@pytest.mark.parametrize("p", [1e-12, 0.1, 0.5, 0.9, 1 - 2**-32])
@pytest.mark.parametrize("mode", ["inverted", "classic"])
def test_fast_path_equals_reference(dtype, size, p, mode):
    x = np.random.default_rng(size).standard_normal((size,)).astype(dtype)
    for seed in (0, 2**64 - 1):
        desired = reference.dropout(x, p, seed=seed, mode=mode)
        new = _fast(x, p, seed, mode=mode)
        assert new is not NotImplemented
        assert_same_bytes(new, desired)
        in_place = x.copy()
        assert _fast(in_place, p, seed, mode=mode, out=in_place) is in_place
        assert_same_bytes(in_place, desired)


def test_fast_path_takes_bfloat16_once_the_checked_path_has_seen_it():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.linspace(-3, 3, 3 * B + 7).astype(ml_dtypes.bfloat16)
    desired = reference.dropout(x, 0.3, seed=4)
    assert_same_bytes(cdropout.dropout(x, 0.3, seed=4), desired)  # registers the type
    new = _fast(x, 0.3, 4)
    assert new is not NotImplemented
    assert_same_bytes(new, desired)
    in_place = x.copy()
    assert _fast(in_place, 0.3, 4, out=in_place) is in_place
    assert_same_bytes(in_place, desired)


@pytest.mark.parametrize("n_threads", [None, 1, 2, 3])
def test_fast_path_takes_explicit_thread_counts(n_threads):
    x = np.linspace(-1, 1, 5 * B + 3, dtype=np.float32)
    y = _fast(x, 0.3, 9, n=n_threads)
    assert y is not NotImplemented
    assert_same_bytes(y, reference.dropout(x, 0.3, seed=9))


def test_fast_path_keeps_the_shape():
    x = np.ones((3, 4, 5), np.float32)
    assert _fast(x).shape == (3, 4, 5)


@pytest.mark.parametrize(
    "change",
    [
        {"p": 0.0},
        {"p": 1.0},
        {"p": 1 - 2**-40},  # rounds to the threshold of p = 1
        {"p": np.float64(0.5)},
        {"p": 1},
        {"seed": None},
        {"seed": -1},
        {"seed": 2**64},
        {"seed": np.uint64(3)},
        {"training": False},
        {"training": 1},
        {"mode": "other"},
        {"offset": 5},
        {"offset": 0.0},
        {"n": 0},
        {"n": -1},
        {"n": 2.0},
        {"n": True},
        {"out": np.empty(9, np.float32)},
        {"out": np.empty((2, 4), np.float32)},
        {"out": np.empty(8, np.float64)},
        {"out": np.empty(16, np.float32)[::2]},
        {"out": np.empty(8, ">f4")},
        {"out": np.empty(8, np.float32).view(np.matrix)},
        {"n": 257},  # above cdropout._threads.MAX_THREADS: the checked path caps it
        {"x": np.ones(16, np.float32)[::2]},
        {"x": np.ones(8, ">f4")},
        {"x": np.ones(8, ">f2")},
        {"out": np.empty(8, np.float16)},
        {"x": np.ones(0, np.float32)},
        {"x": [1.0, 2.0]},
        {"x": np.ones(8, np.float32).view(np.matrix)},
    ],
    ids=repr,
)
def test_fast_path_declines_what_it_does_not_check(change):
    args = {"x": np.ones(8, np.float32), **change}
    assert _fast(**args) is NotImplemented


def test_fast_path_declines_in_place_on_a_read_only_array():
    x = np.ones(8, np.float32)
    x.flags.writeable = False
    assert _fast(x, out=x) is NotImplemented
    assert _fast(x) is not NotImplemented  # reading it is fine


def test_fast_path_threshold_rounds_half_to_even_like_python():
    halfway = [(k + 0.5) / 2**32 for k in (0, 1, 2, 3, 2**31, 2**32 - 2)]
    for p in halfway + list(np.random.default_rng(0).random(1000)):
        assert _kernel.threshold(p) == _params.threshold(p), p
    assert [_kernel.threshold(p) for p in halfway[:4]] == [0, 2, 2, 4]


def test_public_function_uses_the_fast_path_result():
    x = np.arange(1.0, 9.0, dtype=np.float32)
    assert_same_bytes(cdropout.dropout(x, 0.5, seed=3), _fast(x, 0.5, 3))


def test_compiled_entry_has_the_checked_functions_signature():
    # The C entry repeats the Python signature; update_wrapper would hide a mismatch
    # from inspect.signature's default view, so compare the two unwrapped.
    entry = inspect.signature(cdropout.dropout, follow_wrapped=False)
    assert entry == inspect.signature(cdropout.dropout.__wrapped__)
    assert cdropout.dropout.__doc__ == cdropout.dropout.__wrapped__.__doc__
    assert cdropout.dropout.__module__ == "cdropout.functional"
    found = doctest.DocTestFinder().find(cdropout.functional)
    assert "cdropout.functional.dropout" in [t.name for t in found if t.examples]
    # multiprocessing sends functions by reference
    assert pickle.loads(pickle.dumps(cdropout.dropout)) is cdropout.dropout


@pytest.mark.parametrize(
    "call",
    [
        lambda x: cdropout.dropout(x, 0.25, seed=5),  # fast path
        lambda x: cdropout.dropout(x, 0.25, seed=5, offset=0, n_threads=1),
        lambda x: cdropout.dropout(x, np.float64(0.25), seed=np.uint64(5)),  # declined
        lambda x: cdropout.dropout(x, p=0.25, seed=5, noise_shape=(None, None)),
        lambda x: cdropout.dropout(x, 0.25, seed=5, mode="inverted", training=True),
    ],
)
def test_every_way_of_calling_gives_the_checked_functions_bytes(call):
    x = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    desired = cdropout.dropout.__wrapped__(x, 0.25, seed=5)
    assert_same_bytes(call(x), desired)
    assert_same_bytes(desired, reference.dropout(x, 0.25, seed=5))


def test_the_fallback_gets_every_argument_by_name():
    # a declined call passes all nine arguments through to the checked function
    x = np.ones((2, 8), np.float32)
    y = cdropout.dropout(x, 0.5, seed=1, mode="classic", offset=3, noise_shape=(1, 8))
    keep = reference.dropout_mask((1, 8), 0.5, seed=1, offset=3)
    assert_same_bytes(y, np.broadcast_to(np.where(keep, 1.0, 0.0), (2, 8)).astype("f4"))
    with pytest.raises(ValueError, match="n_threads"):
        cdropout.dropout(x, 0.5, seed=1, n_threads=0)
    assert cdropout.dropout(x, 0.5, seed=1, training=False) is not x


def test_fast_path_takes_a_separate_output_and_declines_an_overlapping_one():
    x = np.random.default_rng(0).standard_normal(3 * B + 5).astype(np.float32)
    out = np.zeros_like(x)
    assert _fast(x, out=out) is out
    assert_same_bytes(out, reference.dropout(x, 0.5, seed=1))
    read_only = np.zeros_like(x)
    read_only.flags.writeable = False
    assert _fast(x, out=read_only) is NotImplemented
    buffer = np.zeros(2 * x.size, np.float32)
    buffer[: x.size] = x
    shifted = buffer[1 : x.size + 1]  # shares all but one element with the input
    assert _fast(buffer[: x.size], out=shifted) is NotImplemented
    assert_same_bytes(
        cdropout.dropout(buffer[: x.size], 0.5, seed=1, out=shifted),
        reference.dropout(x, 0.5, seed=1),
    )  # the checked path: as if x were copied first


def test_fast_path_takes_another_view_of_the_same_memory_as_in_place():
    x = np.random.default_rng(1).standard_normal(2 * B + 3)
    expected = reference.dropout(x, 0.5, seed=1)
    view = x.view()
    assert _fast(x, out=view) is x
    assert_same_bytes(x, expected)
    y = np.ones(10)
    assert _fast(y[:5], out=y[5:]) is not NotImplemented  # disjoint halves
    assert _fast(y[:6], out=y[4:]) is NotImplemented  # overlapping, not the same


def _memory(x, out, p=0.5, seed=1, mode="inverted", offset=0, n=None, kind=None,
            size=None, src=None, dst=None):  # fmt: skip
    """_kernel.dropout_memory on arrays' addresses (bfloat16 as its uint16 words)."""
    if kind is None:
        kind = np.dtype(np.uint16 if x.dtype.name == "bfloat16" else x.dtype).num
    return _kernel.dropout_memory(
        x.ctypes.data if src is None else src, out.ctypes.data if dst is None else dst,
        x.size if size is None else size, kind, p, seed, mode, offset, n,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "bfloat16"])
@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("n_threads", [None, 1, 2])
def test_memory_entry_gives_the_references_bytes(dtype, mode, n_threads):
    # the entry cdropout.torch runs on tensors' addresses
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    x = np.linspace(-3, 3, 5 * B + 3).astype(dtype)
    desired = reference.dropout(x, 0.3, seed=2**64 - 5, mode=mode)
    out = np.full_like(x, 7)
    assert _memory(x, out, 0.3, 2**64 - 5, mode, n=n_threads) is True
    assert_same_bytes(out, desired)
    assert _memory(x, x, 0.3, 2**64 - 5, mode, n=n_threads) is True  # in place
    assert_same_bytes(x, desired)


@pytest.mark.parametrize(
    "change",
    [
        {"kind": np.dtype(np.int32).num},
        {"kind": np.dtype(np.complex64).num},
        {"size": 0},
        {"size": -1},
        {"src": "misaligned"},
        {"dst": "misaligned"},
        {"src": 0},
        {"dst": 0},
        {"p": 0.0},
        {"p": 1.0},
        {"p": 1 - 2**-40},
        {"p": 1},
        {"p": np.float64(0.5)},
        {"seed": -1},
        {"seed": 2**64},
        {"seed": 1.0},
        {"mode": "Inverted"},
        {"offset": 1},
        {"n": 0},
        {"n": 2**40},
        {"n": 2.0},
    ],
    ids=repr,
)
def test_memory_entry_declines_what_it_does_not_check_and_writes_nothing(change):
    memory = np.arange(1.0, 18.0, dtype=np.float32)  # room for a misaligned view
    x, out = memory[:8], memory[8:16]
    change = dict(change)
    for end in ("src", "dst"):
        if change.get(end) == "misaligned":
            change[end] = (x if end == "src" else out).ctypes.data + 1
    before = memory.copy()
    assert _memory(x, out, **change) is False
    assert_same_bytes(memory, before)
