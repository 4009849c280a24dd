"""cdropout.flax's modules as drop-ins: the behaviours that flax's own tests of its
dropout modules check (tests/nnx/nn/stochastic_test.py and tests/linen/linen_test.py's
StochasticTest), each run against flax's module and cdropout's, so that a test which
fails only for cdropout names a difference a flax user would meet. Masks differ between
the two (cdropout draws its own from the same keys): what is compared is behaviour, keys
and errors."""

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import linen, nnx  # noqa: E402

import cdropout.flax as cf  # noqa: E402

NNX = pytest.mark.parametrize(
    "Dropout", [nnx.Dropout, cf.Dropout], ids=["flax", "cdropout"]
)
LINEN = pytest.mark.parametrize(
    "Dropout", [linen.Dropout, cf.LinenDropout], ids=["flax", "cdropout"]
)


@NNX
def test_nnx_own_rngs_and_a_forked_stream_at_the_call_give_the_same_masks(Dropout):
    owning = Dropout(0.5, deterministic=False, rngs=nnx.Rngs(dropout=0))
    borrowing = Dropout(0.5, deterministic=False)
    stream = nnx.Rngs(dropout=0).fork()
    traces = []

    @nnx.jit
    def call(layer, x, rngs=None):
        traces.append(1)
        return layer(x, rngs=rngs)

    x = jnp.ones((1, 10))
    for count in (1, 2):
        a, b = call(owning, x), call(borrowing, x, rngs=stream)
        assert owning.rngs.count[...] == count and stream.dropout.count[...] == count
        assert np.array_equal(a, b)
    assert len(traces) == 2  # one trace per signature, none per call


@NNX
def test_nnx_rngs_at_the_call_take_precedence_over_the_layers(Dropout):
    first = Dropout(0.5, deterministic=False, rngs=nnx.Rngs(dropout=0))
    second = Dropout(0.5, deterministic=False, rngs=nnx.Rngs(dropout=1))
    x = jnp.ones((1, 64))
    a, b = first(x), second(x)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, second(x, rngs=nnx.Rngs(dropout=0).fork()))


@NNX
def test_nnx_deterministic_at_the_call_overrides_the_layers(Dropout):
    layer = Dropout(0.5, deterministic=False)
    x = jnp.ones((1, 64))
    assert np.array_equal(layer(x, deterministic=True), x)
    layer.set_attributes(deterministic=True)
    assert np.array_equal(layer(x), x)
    trained = layer(x, deterministic=False, rngs=nnx.Rngs(dropout=0))
    assert not np.array_equal(trained, x)


@NNX
def test_nnx_training_without_rngs_is_flaxs_value_error(Dropout):
    layer = Dropout(0.5, deterministic=False)
    words = "`deterministic` is False, but no `rngs` argument was provided to Dropout"
    with pytest.raises(ValueError, match=words):
        layer(jnp.ones((1, 10)))


@NNX
def test_nnx_no_deterministic_anywhere_is_flaxs_value_error(Dropout):
    layer = Dropout(0.5, deterministic=None, rngs=nnx.Rngs(dropout=0))
    with pytest.raises(ValueError, match="No `deterministic` argument was provided"):
        layer(jnp.ones(3))


@NNX
def test_nnx_view_train_and_eval_set_the_mode(Dropout):
    layer = Dropout(0.5, rngs=nnx.Rngs(dropout=0))
    x = jnp.ones((1, 64))
    assert np.array_equal(nnx.view(layer, deterministic=True)(x), x)
    training = nnx.view(layer, deterministic=False)
    assert not np.array_equal(training(x), x)
    with pytest.raises(ValueError, match="no `rngs` argument"):
        nnx.view(Dropout(0.5), deterministic=False)(x)
    model = nnx.Sequential(Dropout(0.5, rngs=nnx.Rngs(dropout=0)))
    model.eval()
    assert np.array_equal(model(x), x)
    model.train()
    assert not np.array_equal(model(x), x)


@NNX
def test_nnx_a_key_of_another_type_is_a_type_error(Dropout):
    layer = Dropout(0.5, rngs=nnx.Rngs(dropout=0))
    with pytest.raises(TypeError, match="rngs must be"):
        layer(jnp.ones(3), rngs=7)
    with pytest.raises(TypeError, match="rngs must be"):
        Dropout(0.5, rngs=7)


@NNX
def test_nnx_rate_one_gives_zeros_with_a_finite_gradient(Dropout):
    layer = Dropout(1.0, rngs=nnx.Rngs(dropout=0))
    x = jnp.ones((20, 20))
    assert np.array_equal(layer(x), np.zeros_like(x))
    gradient = jax.grad(lambda v: layer(v).sum())(x)
    assert np.array_equal(gradient, np.zeros_like(x))


@LINEN
def test_linen_keys_decide_the_mask_in_training_and_nothing_in_evaluation(Dropout):
    layer = Dropout(rate=0.5)
    key1, key2 = jax.random.split(jax.random.key(0))
    x = jnp.ones((20, 20))

    def apply(deterministic, key):
        return layer.apply({}, x, deterministic=deterministic, rngs={"dropout": key})

    assert not np.array_equal(apply(False, key1), apply(False, key2))
    assert np.array_equal(apply(False, key1), apply(False, key1))
    assert np.array_equal(apply(True, key1), apply(True, key2))


@LINEN
def test_linen_the_kept_fraction_is_within_four_sigma_of_the_keep_rate(Dropout):
    root = jax.random.key(0)
    for rate in np.arange(0.1, 1.0, 0.1):
        root, sub = jax.random.split(root)
        layer, kept, trials = Dropout(rate=rate), 0, 10
        for key in jax.random.split(sub, trials):
            y = layer.apply({}, jnp.ones((100, 100)), deterministic=False,
                            rngs={"dropout": key})  # fmt: skip
            kept += int(np.sum(np.asarray(y) > 0.0))
        total, keep = 100 * 100 * trials, 1.0 - rate
        sigma = np.sqrt(rate * keep / total)
        assert abs(kept / total - keep) < 4 * sigma, rate


@LINEN
def test_linen_rates_zero_and_one_with_a_finite_gradient(Dropout):
    key1, key2, key3 = jax.random.split(jax.random.key(0), 3)
    x = jnp.ones((20, 20))
    kept = Dropout(rate=0.0).apply({}, x, deterministic=False, rngs={"dropout": key1})
    assert np.array_equal(kept, x)
    dropped = Dropout(rate=1.0)
    y = dropped.apply({}, x, deterministic=False, rngs={"dropout": key2})
    assert np.array_equal(y, np.zeros_like(x))

    def loss(v):
        return dropped.apply({}, v, deterministic=False, rngs={"dropout": key3}).sum()

    assert not np.isnan(jax.grad(loss)(x)).any()


@LINEN
@pytest.mark.parametrize(
    "ndim, broadcast_dims",
    [
        (2, (1,)),
        (2, (0,)),
        (3, (1, 2)),
        (3, (1,)),
        (4, (0, 2, 3)),
        (4, (0, 1)),
        (4, (3,)),
    ],
)
def test_linen_broadcast_dims_share_one_decision_along_those_axes(
    Dropout, ndim, broadcast_dims
):
    layer = Dropout(rate=0.5, broadcast_dims=broadcast_dims, deterministic=False)
    y = np.asarray(
        layer.apply({}, jnp.ones((10,) * ndim), rngs={"dropout": jax.random.key(0)})
    )
    # every slice along the broadcast axes is all kept (2.0) or all dropped
    own = [axis for axis in range(ndim) if axis not in broadcast_dims]
    slices = np.moveaxis(y, own, list(range(len(own)))).reshape(10 ** len(own), -1)
    assert all(row.min() == row.max() for row in slices)
    assert {row[0] for row in slices} == {0.0, 2.0}


@LINEN
def test_linen_a_key_given_to_the_call_is_used_instead_of_make_rng(Dropout):
    class Twice(linen.Module):
        @linen.compact
        def __call__(self, x):
            key = self.make_rng("dropout")
            first = Dropout(rate=0.5, deterministic=False)(x, rng=key)
            second = Dropout(rate=0.5, deterministic=False)(
                x, rng=jax.random.clone(key)
            )
            return first, second

    first, second = Twice().apply(
        {}, jnp.ones((20, 20)), rngs={"dropout": jax.random.key(0)}
    )
    assert np.array_equal(first, second)


@LINEN
def test_linen_errors_are_flaxs(Dropout):
    x = jnp.ones(4)
    with pytest.raises(ValueError, match='"deterministic" must be passed'):
        Dropout(rate=0.5).apply({}, x, rngs={"dropout": jax.random.key(0)})
    with pytest.raises(Exception, match='needs PRNG for "dropout"'):
        Dropout(rate=0.5).apply({}, x, deterministic=False)
