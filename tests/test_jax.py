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
from cdropout import _params  # noqa: E402
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


def _run_child(code, *args, devices=1):
    """Run `code` in a fresh Python process (a JAX setting that must come before JAX
    starts, or a fresh process's registry of FFI targets); its stdout's last line."""
    import os
    import subprocess
    import sys
    import textwrap

    flags = f"--xla_force_host_platform_device_count={devices}"
    env = dict(os.environ, XLA_FLAGS=flags)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("alpha", [False, True], ids=["dropout", "alpha"])
@pytest.mark.parametrize("stream", STREAMS)
def test_forward_and_reverse_mode_give_the_same_derivative(stream, alpha):
    # forward mode (jvp, jacfwd, linearize, hessian) was refused under custom_vjp;
    # the tangent is the call's mask on the tangent, times the scale (a for alpha)
    key = jax.random.key(3)
    call = cj.alpha_dropout if alpha else cj.dropout
    x = jnp.asarray(_input(np.float32, (40,)))
    t = jnp.asarray(_input(np.float32, (40,))[::-1].copy())

    def f(v):
        return call(v, 0.4, key=key, stream=stream)

    scale = (_params.alpha_constants(0.4, np.float32)[0] if alpha
             else np.float32(1 / 0.6))  # fmt: skip
    keep = np.asarray(cj.dropout(jnp.ones(40), 0.4, key=key, stream=stream)) != 0
    expected = np.where(keep, np.asarray(t) * np.float32(scale), np.float32(0))
    y, tangent = jax.jvp(f, (x,), (t,))
    _same(y, f(x))
    np.testing.assert_allclose(np.asarray(tangent), expected, rtol=1e-6)
    _, linear = jax.linearize(f, x)
    _same(linear(t), tangent)
    jacobian = np.asarray(jax.jacfwd(f)(x))
    assert np.array_equal(jacobian, np.asarray(jax.jacrev(f)(x)))
    assert np.array_equal(np.diag(jacobian) != 0, keep)
    hessian = jax.hessian(lambda v: (f(v) ** 2).sum())(x)
    np.testing.assert_allclose(np.diag(np.asarray(hessian)),
                               2 * np.diag(jacobian) ** 2, rtol=1e-5)  # fmt: skip


_MESH = """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import PartitionSpec as P
    import cdropout.jax as cj

    mesh = jax.make_mesh((2,), ("d",))  # Explicit axes, JAX's default
    whole = np.arange(1, 65, dtype=np.float32).reshape(16, 4)
    with jax.set_mesh(mesh):
        x = jax.device_put(jnp.asarray(whole), P("d"))
        for stream in ("counter", "xoshiro"):
            for call in (cj.dropout, cj.alpha_dropout):
                def f(v):
                    return call(v, 0.5, seed=3, stream=stream)
                y = f(x)
                assert jax.typeof(y).sharding.spec == P("d", None), (stream, call)
                assert np.array_equal(np.asarray(y), np.asarray(f(whole)))
                g = jax.grad(lambda v: (f(v) * 2).sum())(x)
                assert jax.typeof(g).sharding.spec == P("d", None)
                expected = jax.grad(lambda v: (f(v) * 2).sum())(jnp.asarray(whole))
                assert np.array_equal(np.asarray(g), np.asarray(expected))
    print("ok")
"""


def test_explicit_sharding_over_two_devices_keeps_the_sharding_and_the_bytes():
    # the xoshiro stream's result was typed replicated, and grad of it (and of alpha
    # dropout on both streams) failed on the custom_vjp's types
    assert _run_child(_MESH, devices=2) == "ok"


def test_numpy_integer_seeds_are_taken_as_ints():
    x = jnp.asarray(_input(np.float32))
    for stream in STREAMS:
        for seed in (np.int64(5), np.uint64(5), np.int32(5)):
            _same(cj.dropout(x, 0.5, seed=seed, stream=stream),
                  cj.dropout(x, 0.5, seed=5, stream=stream))  # fmt: skip
            _same(cj.alpha_dropout(x, 0.5, seed=seed, stream=stream),
                  cj.alpha_dropout(x, 0.5, seed=5, stream=stream))  # fmt: skip


_RBG = """
    import jax
    jax.config.update("jax_default_prng_impl", "rbg")
    import jax.numpy as jnp, numpy as np
    import cdropout, cdropout.jax as cj

    x = jnp.ones(64)
    for key in (jax.random.PRNGKey(0), jax.random.key(0)):
        for stream in ("counter", "xoshiro"):
            high, low = cj.stream_seed(key)
            seed = int(high) << 32 | int(low)
            got = np.asarray(cj.dropout(x, 0.5, key=key, stream=stream))
            want = cdropout.dropout(np.ones(64, np.float32), 0.5, seed=seed,
                                    stream=stream)
            assert np.array_equal(got, want)
    print("ok")
"""


def test_raw_keys_of_the_rbg_implementation_are_taken():
    assert _run_child(_RBG) == "ok"


_EXPORTED = """
    import sys
    import jax, numpy as np
    import cdropout.jax  # registers the kernel's FFI targets, nothing called

    with open(sys.argv[1], "rb") as f:
        program = jax.export.deserialize(bytearray(f.read()))
    got = program.call(np.ones((8, 8), np.float32))
    print(np.asarray(got).tobytes().hex())
"""


def test_an_exported_program_with_the_kernel_runs_in_a_fresh_process(tmp_path):
    pytest.importorskip("flatbuffers")  # jax.export's serialisation (CI's JAX leg)
    def f(x):
        return cj.alpha_dropout(cj.dropout(x, 0.5, seed=9, stream="xoshiro"), 0.2,
                                seed=1, stream="xoshiro")  # fmt: skip

    x = np.ones((8, 8), np.float32)
    checks = [jax.export.DisabledSafetyCheck.custom_call(name)
              for name in cj.FFI_TARGETS]  # fmt: skip
    exported = jax.export.export(jax.jit(f), disabled_checks=checks)(
        jax.ShapeDtypeStruct(x.shape, x.dtype)
    )
    (tmp_path / "program.bin").write_bytes(exported.serialize())
    got = _run_child(_EXPORTED, str(tmp_path / "program.bin"))
    assert got == np.asarray(f(x)).tobytes().hex()


def test_an_eager_call_runs_one_compiled_program():
    # op by op, the counter stream's integer operations took 4x flax's eager time
    from cdropout.jax import functional

    x = jnp.ones((64, 64))
    cj.dropout(x, 0.5, seed=1)
    before = functional._masked_program._cache_size()
    for seed in range(2, 6):
        cj.dropout(x, 0.5, seed=seed)  # (seeds are static: one program each)
    for key in jax.random.split(jax.random.key(0), 4):
        cj.dropout(x, 0.5, key=key)
    assert functional._masked_program._cache_size() == before + 5


@pytest.mark.parametrize("dtype", DTYPES)
def test_classic_evaluation_at_p_one_gives_positive_zeros_as_the_numpy_api(dtype):
    x = _input(dtype)
    got = cj.dropout(jnp.asarray(x), 1.0, training=False, mode="classic")
    expected = cdropout.dropout(x, 1.0, training=False, mode="classic")
    assert_same_bytes(np.asarray(got), expected)
    assert not np.signbit(np.asarray(got, np.float32)).any()
