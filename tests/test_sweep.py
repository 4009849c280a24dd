"""An adversarial sweep over every public function, with hypothesis's NumPy
strategies so that a failure shrinks to its smallest case: any input gives the
reference's bytes or the reference's exception, a TypeError or ValueError raised before
anything is written or drawn."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cdropout
from cdropout import reference
from cdropout.testing import assert_same_bytes

DTYPES = st.one_of(
    hnp.floating_dtypes(endianness="?"),
    hnp.integer_dtypes(),
    hnp.boolean_dtypes(),
    hnp.complex_number_dtypes(),
)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=7)
P_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1),
    st.sampled_from([0.0, 1.0, 2**-33, 1 - 2**-33, 0.5]),
    st.integers(-2, 3),
    st.just(np.longdouble(1) + np.longdouble(2) ** -60),
    st.just(np.float32(0.25)),
    st.just(np.array(0.5)),
    st.just("0.5"),
    st.none(),
)
SEEDS = st.one_of(
    st.integers(-(2**65), 2**65),
    st.lists(st.integers(-3, 2**70), max_size=3),
    st.sampled_from(["generator", "bitgen", "randomstate", "seedseq"]),
    st.just(1.5),
)
THREADS = st.one_of(st.none(), st.integers(-4, 8), st.sampled_from([2**31, 10**4]))
OFFSETS = st.one_of(st.integers(-2, 10**6), st.sampled_from([2**31 - 3, 2**32 - 5,
                                                             2**63 - 10, 2**63]))


def _seed(spec):
    """A fresh seed object for a spec, and a way to read whether it was drawn from."""
    made = {
        "generator": lambda: np.random.default_rng(1),
        "bitgen": lambda: np.random.PCG64(1),
        "randomstate": lambda: np.random.RandomState(1),
        "seedseq": lambda: np.random.SeedSequence(1),
    }
    if isinstance(spec, str) and spec in made:
        return made[spec]()
    return spec


def _state(seed):
    if isinstance(seed, np.random.Generator):
        return seed.bit_generator.state
    if isinstance(seed, np.random.BitGenerator):
        return seed.state
    if isinstance(seed, np.random.RandomState):
        return repr(seed.get_state(legacy=False))  # holds an array: compare as text
    return None


@st.composite
def inputs(draw):
    """An array of any dtype and layout: C, Fortran, reversed or sliced views."""
    dtype = draw(DTYPES)
    base = draw(hnp.arrays(dtype, SHAPES, elements={"allow_nan": True}
                           if dtype.kind in "fc" else None))  # fmt: skip
    if base.ndim and base.size:
        layout = draw(st.sampled_from(["c", "f", "reversed", "step"]))
        if layout == "f":
            base = np.asfortranarray(base)
        elif layout == "reversed":
            base = base[::-1]
        elif layout == "step":
            base = base[..., ::2]
    return base


def _outcome(call):
    try:
        return "ok", call()
    except (TypeError, ValueError) as error:
        return type(error), error


def _check(function, twin, x, kwargs, out_spec, seed_spec):
    before = x.copy()
    outcomes = []
    for f in (function, twin):
        if out_spec == "none":
            out = None
        elif out_spec == "same":
            out = x.copy()
        else:
            out = np.zeros(x.shape, x.dtype.newbyteorder(out_spec))
        out_before = None if out is None else out.copy()
        seed = _seed(seed_spec)
        state = _state(seed)
        kind, value = _outcome(lambda f=f, out=out, seed=seed: f(x, out=out, seed=seed,
                                                                 **kwargs))
        outcomes.append((kind, value))
        assert_same_bytes(x, before)
        if kind != "ok":
            if out is not None:
                assert_same_bytes(out, out_before)  # a failed call writes nothing
            assert _state(seed) == state  # ... and draws nothing
            assert str(value).split()[0] in {
                "x", "p", "seed", "mode", "out", "offset", "n_threads", "training",
                "noise_shape",
            }, value  # the message names the argument first
    (kind, value), (twin_kind, twin_value) = outcomes
    assert kind == twin_kind, (value, twin_value)
    if kind == "ok":
        assert_same_bytes(value, twin_value)


SWEEP = settings(max_examples=300, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


@pytest.mark.parametrize("name", ["dropout", "alpha_dropout", "gaussian_dropout"])
@SWEEP
@given(x=inputs(), p=P_VALUES, seed=SEEDS, offset=OFFSETS, n_threads=THREADS,
       training=st.one_of(st.booleans(), st.just("yes")),
       out=st.sampled_from(["none", "same", "=", "S"]),
       broadcast=st.booleans(), data=st.data())  # fmt: skip
def test_every_input_gives_the_references_bytes_or_its_error(
    name, x, p, seed, offset, n_threads, training, out, broadcast, data
):
    kwargs = {"p": p, "offset": offset, "n_threads": n_threads, "training": training}
    if broadcast:
        kwargs["noise_shape"] = data.draw(
            st.one_of(
                st.tuples(*[st.sampled_from([1, None, n]) for n in x.shape]),
                st.just((1,) * (x.ndim + 1)),
                st.just("ab"),
            )
        )
    if name == "dropout":
        kwargs["mode"] = data.draw(st.sampled_from(["inverted", "classic", "other"]))
    _check(getattr(cdropout, name), getattr(reference, name), x, kwargs, out, seed)


@SWEEP
@given(shape=st.one_of(SHAPES, st.integers(-2, 50), st.just(2**70), st.just("3"),
                       st.tuples(st.sampled_from([0, 3, 2**40, 2**62]),
                 st.sampled_from([0, 1, 8]))),
       p=P_VALUES, seed=SEEDS, offset=OFFSETS, n_threads=THREADS)  # fmt: skip
def test_dropout_mask_gives_the_references_bytes_or_its_error(
    shape, p, seed, offset, n_threads
):
    outcomes = []
    for f in (cdropout.dropout_mask, reference.dropout_mask):
        s = _seed(seed)
        state = _state(s)
        try:
            outcomes.append(("ok", f(shape, p, seed=s, offset=offset,
                                     n_threads=n_threads)))  # fmt: skip
        except (TypeError, ValueError) as error:
            assert _state(s) == state
            outcomes.append((type(error), error))
        except MemoryError:  # a valid shape too large for this machine: the kernel's
            if f is cdropout.dropout_mask:  # mask is allocated before the draw
                assert _state(s) == state
            return
    assert outcomes[0][0] == outcomes[1][0], outcomes
    if outcomes[0][0] == "ok":
        assert_same_bytes(outcomes[0][1], outcomes[1][1])


# weights near their float's largest value overflow to inf when divided by a keep
# probability (inverted to classic), and NumPy's multiply says so: a warning, not a
# refusal (hypothesis found one, 1.3e308 at p = 0.25)
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@SWEEP
@given(weights=inputs(), p=st.one_of(P_VALUES, st.lists(st.floats(), max_size=8)),
       axis=st.one_of(st.integers(-5, 5), st.booleans(), st.just(1.0)),
       from_mode=st.sampled_from(["inverted", "classic", "x"]),
       to_mode=st.sampled_from(["inverted", "classic"]))  # fmt: skip
def test_rescale_weights_rescales_or_refuses_by_name(weights, p, axis, from_mode,
                                                    to_mode):  # fmt: skip
    before = weights.copy()
    try:
        result = cdropout.rescale_weights(
            weights, p, axis=axis, from_mode=from_mode, to_mode=to_mode
        )
    except (TypeError, ValueError) as error:  # AxisError is both
        assert str(error).split()[0] in {"weights", "p", "axis", "from_mode",
                                         "to_mode", "mode"} or "axis" in str(error)
    else:
        assert type(result) is np.ndarray and result.dtype.isnative
        assert result.shape == weights.shape and result.dtype.kind == "f"
        assert result is not weights
    assert_same_bytes(weights, before)
