"""Property-based: for random shapes, strides, dtypes, byte orders, p, seeds, offsets
and `out` arrays, cdropout.dropout equals cdropout.reference byte for byte, or both
refuse the call with the same exception and leave x and out as they were."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cdropout
from cdropout import reference
from cdropout.testing import assert_same_bytes

DTYPES = ["<f2", ">f2", "<f4", ">f4", "<f8", ">f8"]


@st.composite
def arrays(draw):
    """A view with random shape, steps (negative too), axis order and byte order."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    ndim = draw(st.integers(0, 3))
    steps = [draw(st.sampled_from([1, 2, 3, -1, -2])) for _ in range(ndim)]
    shape = [draw(st.integers(0, 9 if ndim > 1 else 5000)) for _ in range(ndim)]
    base_shape = [max(1, n * abs(s)) for n, s in zip(shape, steps, strict=True)]
    seed = draw(st.integers(0, 2**32 - 1))
    base = np.random.default_rng(seed).standard_normal(base_shape).astype(dtype)
    view = base[tuple(slice(None, None, s) for s in steps)]
    view = view[tuple(slice(0, n) for n in shape)]
    if ndim > 1 and draw(st.booleans()):
        view = view.transpose(draw(st.permutations(range(ndim))))
    if draw(st.booleans()):  # misaligned copy
        raw = np.zeros(view.nbytes + 1, np.uint8)
        moved = np.frombuffer(raw.data, view.dtype, view.size, offset=1)
        moved = moved.reshape(view.shape)
        moved[...] = view
        view = moved
    return view


P = st.one_of(st.sampled_from([0.0, 1.0, 0.5, 1e-12, 1 - 2**-40]), st.floats(0, 1))
SEED = st.integers(0, 2**64 - 1)
OFFSET = st.one_of(
    st.integers(0, 2**40), st.sampled_from([2**31 - 7, 2**32 - 7, 2**32 + 3])
)


def _outcome(function, x, out, **kwargs):
    x_before = x.copy()
    out_before = None if out is None or out is x else out.copy()
    try:
        return function(x, out=out, **kwargs), None
    except (TypeError, ValueError) as error:
        assert_same_bytes(x, x_before)
        if out_before is not None:
            assert_same_bytes(out, out_before)
        return None, type(error)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    x=arrays(),
    p=P,
    seed=SEED,
    offset=OFFSET,
    mode=st.sampled_from(["inverted", "classic"]),
    training=st.booleans(),
    out_kind=st.sampled_from(["none", "same", "fresh", "swapped"]),
)
def test_dropout_equals_reference_for_any_layout(
    x, p, seed, offset, mode, training, out_kind
):
    kwargs = {
        "p": p,
        "seed": seed,
        "offset": offset,
        "mode": mode,
        "training": training,
    }

    def out_for(array):
        if out_kind == "none":
            return None
        if out_kind == "same":
            return array
        dtype = array.dtype if out_kind == "fresh" else array.dtype.newbyteorder("S")
        return np.full(array.shape, 7.0, dtype)

    x_ref = x.copy()
    desired, desired_error = _outcome(
        reference.dropout, x_ref, out_for(x_ref), **kwargs
    )
    actual, actual_error = _outcome(cdropout.dropout, x, out_for(x), **kwargs)
    assert actual_error == desired_error
    if desired is not None:
        assert_same_bytes(
            np.array(actual, actual.dtype.newbyteorder("="), order="C"),
            np.array(desired, desired.dtype.newbyteorder("="), order="C"),
        )


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 20_000),
    shift=st.integers(-50, 50).filter(bool),
    p=st.floats(0, 1),
    seed=SEED,
    dtype=st.sampled_from(["f2", "f4", "f8"]),
)
def test_out_partly_overlapping_x_acts_on_a_copy_of_x(size, shift, p, seed, dtype):
    buffer = np.random.default_rng(size).standard_normal(size + 100).astype(dtype)
    x = buffer[50 : 50 + size]
    out = buffer[50 + shift : 50 + shift + size]
    desired = reference.dropout(x.copy(), p, seed=seed)
    cdropout.dropout(x, p, seed=seed, out=out)
    assert_same_bytes(out, desired)


@settings(max_examples=100, deadline=None)
@given(shape=st.lists(st.integers(2, 6), min_size=1, max_size=3),
       strides=st.lists(st.integers(0, 3), min_size=3, max_size=3))  # fmt: skip
def test_self_overlapping_out_is_refused_before_any_write(shape, strides):
    memory = np.zeros(200)
    out = np.lib.stride_tricks.as_strided(
        memory, shape, [8 * s for s in strides[: len(shape)]], writeable=True
    )
    x = np.ones(shape)
    addresses = {
        sum(i * s for i, s in zip(index, out.strides, strict=True))
        for index in np.ndindex(*shape)
    }
    if len(addresses) < out.size:  # two elements share memory: refused, nothing written
        try:
            cdropout.dropout(x, 0.5, seed=1, out=out)
        except ValueError as error:
            assert "overlapping" in str(error)
        else:
            raise AssertionError("a self-overlapping out was accepted")
        assert not memory.any()
