"""cdropout.jax: the NumPy API's bytes for both streams, eagerly and under jit; JAX keys
as seeds; grad, vmap, checkpoint and what a compiled step saves and calls. Skipped
without the jax extra (.ci/run installs it)."""

import io
from contextlib import redirect_stdout

import numpy as np
import pytest

jax = pytest.importorskip("jax")
ml_dtypes = pytest.importorskip("ml_dtypes")

import jax.numpy as jnp  # noqa: E402
from jax.ad_checkpoint import print_saved_residuals  # noqa: E402

import cdropout  # noqa: E402
import cdropout.jax as cj  # noqa: E402
from cdropout.testing import assert_same_bytes  # noqa: E402

DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32]
STREAMS = ["counter", "xoshiro"]
# (no subnormals: XLA runs with them flushed to zero on the CPU, a kept subnormal is
# +-0 there; test_xla_flushes_subnormals)
SPECIALS = [np.nan, np.inf, -np.inf, -0.0, 0.0, 70000.0]


def _input(dtype, shape=(9, 37)):
    x = np.random.default_rng(0).standard_normal(shape)
    x.reshape(-1)[: len(SPECIALS)] = SPECIALS
    with np.errstate(over="ignore"):  # 70000 is inf in float16, on purpose
        return x.astype(dtype)


def _seed_of(key):
    high, low = cj.stream_seed(key)
    return int(high) << 32 | int(low)


def _same(actual, desired):
    """The same bytes; a NaN's bits may differ (XLA's conversions quieten NaNs their
    own way), its place may not."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    nan = np.isnan(desired.astype(np.float32))
    assert np.array_equal(np.isnan(actual.astype(np.float32)), nan)
    assert_same_bytes(np.where(nan, 0, actual).astype(desired.dtype),
                      np.where(nan, 0, desired).astype(desired.dtype))  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("stream", STREAMS)
def test_the_bytes_are_the_numpy_apis_eagerly_and_under_jit(dtype, stream):
    x = _input(dtype)
    cases = [
        {"seed": 0},
        {"seed": 2**64 - 1, "offset": 2**32 + 5, "mode": "classic"},
        {"seed": 7, "offset": 4095, "noise_shape": (None, 1)},
        {"seed": 8, "noise_shape": (1, None)},
    ]
    for options in cases:
        options = {"stream": stream, **options}
        expected = cdropout.dropout(x, 0.3, **options)
        _same(cj.dropout(x, 0.3, **options), expected)
        _same(jax.jit(lambda t, o=options: cj.dropout(t, 0.3, **o))(x), expected)
        options.pop("mode", None)
        _same(jax.jit(lambda t, o=options: cj.alpha_dropout(t, 0.3, **o))(x),
              cdropout.alpha_dropout(x, 0.3, **options))  # fmt: skip


@pytest.mark.parametrize("stream", STREAMS)
def test_float64_with_jax_enable_x64(stream):
    x = _input(np.float64)
    with jax.enable_x64(True):
        y = jax.jit(lambda t: cj.dropout(t, 0.4, seed=3, stream=stream))(x)
        assert y.dtype == jnp.float64
    _same(y, cdropout.dropout(x, 0.4, seed=3, stream=stream))


@pytest.mark.parametrize("stream", STREAMS)
def test_a_jax_key_is_the_seed_of_stream_seed(stream):
    x = _input(np.float32)
    for key in (jax.random.key(11), jax.random.PRNGKey(11)):  # typed and raw uint32[2]
        expected = cdropout.dropout(x, 0.5, seed=_seed_of(key), stream=stream)
        _same(cj.dropout(x, 0.5, key=key, stream=stream), expected)
        _same(jax.jit(lambda t, k: cj.dropout(t, 0.5, key=k, stream=stream))(x, key),
              expected)  # fmt: skip
    # the rule: the two words of jax.random.bits(key, (2,), uint32), high first
    words = np.asarray(jax.random.bits(jax.random.key(11), (2,), jnp.uint32))
    assert _seed_of(jax.random.key(11)) == int(words[0]) << 32 | int(words[1])


@pytest.mark.parametrize("stream", STREAMS)
def test_the_gradient_is_the_mask_times_the_scale(stream):
    x = jnp.asarray(_input(np.float32))
    key = jax.random.key(5)

    def loss(t):
        return (cj.dropout(t, 0.3, key=key, stream=stream) * 3.0).sum()

    expected = cdropout.dropout(np.full(x.shape, 3.0, np.float32), 0.3,
                                seed=_seed_of(key), stream=stream)  # fmt: skip
    assert_same_bytes(np.asarray(jax.grad(loss)(x)), expected)
    assert_same_bytes(np.asarray(jax.jit(jax.grad(loss))(x)), expected)
    # a recomputation (jax.checkpoint) draws the same mask
    assert_same_bytes(np.asarray(jax.grad(jax.checkpoint(loss))(x)), expected)


@pytest.mark.parametrize("stream", STREAMS)
def test_the_backward_pass_saves_nothing_of_the_inputs_size(stream):
    out = io.StringIO()
    with redirect_stdout(out):
        print_saved_residuals(
            lambda t: cj.dropout(t, 0.3, key=jax.random.key(1), stream=stream).sum(),
            jnp.ones((64, 48)),
        )
    saved = out.getvalue()
    assert "[64,48]" not in saved and "key<fry>[]" in saved, saved


@pytest.mark.parametrize("stream", STREAMS)
def test_vmap_over_keys_gives_each_slice_its_own_calls_mask(stream):
    keys = jax.random.split(jax.random.key(2), 4)
    x = jnp.asarray(_input(np.float32, (4, 300)))
    batched = jax.vmap(lambda k, t: cj.dropout(t, 0.5, key=k, stream=stream))(keys, x)
    for k, (key, row) in enumerate(zip(keys, x, strict=True)):
        _same(batched[k], cj.dropout(row, 0.5, key=key, stream=stream))


def test_a_compiled_training_step_calls_no_host_callback():
    def step(w, x, key):
        def loss(w):
            h = cj.dropout(jax.nn.relu(x @ w), 0.5, key=key)
            h = cj.dropout(h, 0.2, key=key, stream="xoshiro", offset=h.size)
            return (h**2).sum()

        return w - 0.1 * jax.grad(loss)(w)

    jaxpr = str(jax.make_jaxpr(jax.jit(step))(jnp.ones((8, 8)), jnp.ones((4, 8)),
                                              jax.random.key(0)))  # fmt: skip
    assert "callback" not in jaxpr
    assert "cdropout_dropout" in jaxpr  # the xoshiro stream: the kernel's FFI call


def test_xla_flushes_subnormals():
    # documented: the one difference from the NumPy API's bytes, XLA's CPU setting
    x = np.full(64, 1e-40, np.float32)
    y = np.asarray(jax.jit(lambda t: cj.dropout(t, 0.5, seed=1))(x))
    expected = cdropout.dropout(x, 0.5, seed=1)
    assert expected.any() and not y.any()
    assert np.array_equal(y == 0, np.ones(64, bool))


def test_evaluation_and_edge_probabilities():
    x = jnp.asarray(_input(np.float32))
    assert cj.dropout(x, 0.5, training=False) is x
    expected = cdropout.dropout(np.asarray(x), 0.5, training=False, mode="classic")
    _same(cj.dropout(x, 0.5, training=False, mode="classic"), expected)
    assert cj.dropout(x, 0.0, seed=1) is x
    assert not np.asarray(cj.dropout(x, 1.0, seed=1)).any()
    assert not np.asarray(cj.alpha_dropout(x, 1.0, seed=1)).any()
    assert cj.dropout(x, 0.5, training=False) is x  # no key needed in evaluation


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda x: cj.dropout(x, 0.5), TypeError, "needs key="),
        (lambda x: cj.dropout(x, 0.5, seed=1, key=jax.random.key(0)), TypeError,
         "not both"),
        (lambda x: cj.dropout(x, 1.5, seed=1), ValueError, "p must satisfy"),
        (lambda x: cj.dropout(x, 0.5, seed=-1), ValueError, "seed must satisfy"),
        (lambda x: cj.dropout(x, 0.5, seed=1.5), TypeError, "seed must be an int"),
        (lambda x: cj.dropout(x, 0.5, seed=1, mode="x"), ValueError, "mode must"),
        (lambda x: cj.dropout(x, 0.5, seed=1, stream="x"), ValueError, "stream must"),
        (lambda x: cj.dropout(x, 0.5, seed=1, offset=-1), ValueError, "offset must"),
        (lambda x: cj.dropout(x, 0.5, seed=1, noise_shape=(2, 1)), ValueError,
         "noise_shape"),
        (lambda x: cj.dropout(x.astype(jnp.int32), 0.5, seed=1), TypeError,
         "float16, bfloat16"),
        (lambda x: jax.jit(lambda p: cj.dropout(x, p, seed=1))(0.5), TypeError,
         "p must be a Python float"),
        (lambda x: cj.dropout(x, 0.5, seed=1, training="yes"), TypeError,
         "training must be a bool"),
        (lambda x: cj.dropout(x, 0.5, key=3), TypeError, "key must be one JAX"),
        (lambda x: cj.dropout(x, 0.5, key=jnp.zeros(2, jnp.float32)), TypeError,
         "got float32 of shape"),
        (lambda x: cj.dropout(x, 0.5, key=jax.random.split(jax.random.key(0))),
         TypeError, "key must be one"),  # a batch of keys belongs to vmap
        (lambda x: cj.dropout(x, jnp.ones(2), seed=1), TypeError, "p must be a real"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_by_name(call, error, words):
    with pytest.raises(error, match=words):
        call(jnp.ones((3, 4)))


def test_a_concrete_scalar_array_is_taken_as_p():
    x = jnp.ones((3, 4))
    same = cj.dropout(x, 0.25, seed=1)
    assert np.array_equal(cj.dropout(x, jnp.float32(0.25), seed=1), same)


def test_docstring_examples_run():
    import doctest

    from cdropout.jax import functional

    failed, attempted = doctest.testmod(functional)
    assert attempted > 0 and failed == 0
