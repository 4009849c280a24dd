"""cdropout.flax: drop-ins for flax.nnx.Dropout and flax.linen.Dropout (the same
arguments and keys, cdropout's masks, both conventions), swap_dropout for nnx models
and the weight rule of convert_mode. Skipped without the flax extra."""

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import linen, nnx  # noqa: E402

import cdropout.flax as cf  # noqa: E402
import cdropout.jax as cj  # noqa: E402


def _x(shape=(4, 16)):
    return jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)


@pytest.mark.parametrize("stream", ["counter", "xoshiro"])
@pytest.mark.parametrize("mode", ["inverted", "classic"])
def test_the_nnx_dropout_draws_flaxs_key_and_gives_cdropouts_mask(stream, mode):
    layer = cf.Dropout(0.4, mode=mode, stream=stream, rngs=nnx.Rngs(dropout=3))
    assert isinstance(layer, nnx.Dropout)
    key = nnx.Rngs(dropout=3)["dropout"].fork()()  # the key the layer draws first
    x = _x()
    expected = cj.dropout(x, 0.4, key=key, mode=mode, stream=stream)
    assert np.array_equal(layer(x), expected)
    assert not np.array_equal(layer(x), expected)  # the next call, the next key
    evaluation = layer(x, deterministic=True)
    assert np.array_equal(evaluation, x * 0.6 if mode == "classic" else x)


def test_broadcast_dims_share_the_mask_along_those_axes():
    layer = cf.Dropout(0.5, broadcast_dims=(0,), rngs=nnx.Rngs(dropout=1))
    y = np.asarray(layer(jnp.ones((6, 40))))
    assert (y == y[0]).all() and 0 < (y[0] == 0).sum() < 40


def test_the_linen_dropout_takes_linens_fields_and_keys():
    layer = cf.LinenDropout(0.3, mode="classic", stream="xoshiro")
    assert isinstance(layer, linen.Dropout)
    x, key = _x(), jax.random.key(8)
    y = layer.apply({}, x, deterministic=False, rng=key)
    assert np.array_equal(y, cj.dropout(x, 0.3, key=key, mode="classic",
                                        stream="xoshiro"))  # fmt: skip
    assert np.array_equal(layer.apply({}, x, deterministic=True), x * np.float32(0.7))
    drawn = layer.apply({}, x, deterministic=False, rngs={"dropout": key})
    assert drawn.shape == x.shape and (np.asarray(drawn) == 0).any()


class _Model(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(16, 32, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)
        self.layers = nnx.Sequential(
            nnx.Linear(32, 32, rngs=rngs), nnx.relu, nnx.Dropout(0.2, rngs=rngs),
            nnx.Linear(32, 4, rngs=rngs),
        )  # fmt: skip

    def __call__(self, x):
        return self.layers(self.dropout(nnx.relu(self.hidden(x))))


def test_swap_dropout_replaces_every_nnx_dropout_with_the_same_keys():
    model = cf.swap_dropout(_Model(nnx.Rngs(0, dropout=5)), stream="xoshiro")
    assert type(model.dropout) is cf.Dropout and model.dropout.rate == 0.5
    assert type(model.layers.layers[2]) is cf.Dropout
    assert model.layers.layers[2].stream == "xoshiro"
    twin = _Model(nnx.Rngs(0, dropout=5))  # flax's: the same keys, drawn in order
    keys = [twin.dropout.rngs(), twin.layers.layers[2].rngs()]
    x = _x()
    h = cj.dropout(nnx.relu(twin.hidden(x)), 0.5, key=keys[0], stream="xoshiro")
    h = nnx.relu(twin.layers.layers[0](h))
    h = cj.dropout(h, 0.2, key=keys[1], stream="xoshiro")
    assert np.array_equal(model(x), twin.layers.layers[3](h))
    with pytest.raises(TypeError, match="must be an nnx.Module"):
        cf.swap_dropout("model")


def test_a_swapped_model_trains_under_nnx_jit_and_grad():
    model = cf.swap_dropout(_Model(nnx.Rngs(0, dropout=5)))

    @nnx.jit
    def step(model, x):
        def loss(model):
            return (model(x) ** 2).mean()

        value, grads = nnx.value_and_grad(loss)(model)
        params = nnx.state(model, nnx.Param)
        nnx.update(model, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads))
        return value

    first, second = step(model, _x()), step(model, _x())
    assert np.isfinite(first) and np.isfinite(second) and first != second


def _sequential(mode):
    rngs = nnx.Rngs(0, dropout=2)
    return nnx.Sequential(
        nnx.Linear(16, 32, rngs=rngs), nnx.relu,
        cf.Dropout(0.25, mode=mode, rngs=rngs), nnx.Linear(32, 4, rngs=rngs),
    )  # fmt: skip


def test_convert_mode_keeps_the_outputs_by_the_weight_rule():
    x = _x()
    classic, converted = _sequential("classic"), _sequential("classic")
    cf.convert_mode(converted, "inverted")
    assert converted.layers[2].mode == "inverted"
    for deterministic in (True, False):
        for model in (classic, converted):
            model.layers[2].deterministic = deterministic
        np.testing.assert_allclose(converted(x), classic(x), rtol=1e-5, atol=1e-6)
    cf.convert_mode(converted, "classic")  # and back
    np.testing.assert_allclose(converted.layers[3].kernel[...],
                               classic.layers[3].kernel[...], rtol=1e-6)  # fmt: skip


def test_convert_mode_refuses_what_it_cannot_establish():
    rngs = nnx.Rngs(0, dropout=1)
    last = nnx.Sequential(nnx.Linear(4, 4, rngs=rngs), cf.Dropout(0.5, rngs=rngs))
    with pytest.raises(ValueError, match="not followed by an nnx.Linear or nnx.Conv"):
        cf.convert_mode(last, "classic")
    with pytest.raises(TypeError, match="must be an nnx.Sequential"):
        cf.convert_mode(nnx.Linear(4, 4, rngs=rngs), "classic")
    with pytest.raises(ValueError, match="mode must be one of"):
        cf.convert_mode(last, "other")
    with pytest.raises(ValueError, match="mode must be one of"):
        cf.Dropout(0.5, mode="other")


@pytest.mark.parametrize(
    ("make", "inputs", "error", "words"),
    [
        (lambda: cf.Dropout("a"), None, TypeError, "rate must be a real number"),
        (lambda: cf.Dropout(1.5), None, ValueError, "rate must satisfy"),
        (lambda: cf.Dropout(0.5, broadcast_dims="a"), None, TypeError,
         "broadcast_dims must be a sequence of ints"),
        (lambda: cf.Dropout(0.5, deterministic="no"), None, TypeError,
         "deterministic must be a bool"),
        (lambda: cf.Dropout(0.5, broadcast_dims=(2,), rngs=nnx.Rngs(dropout=0)),
         jnp.ones((2, 3)), ValueError, r"broadcast_dims must hold axes .* got \(2,\)"),
        (lambda: cf.Dropout(0.5, rngs=nnx.Rngs(dropout=0)), jnp.ones(3, jnp.int32),
         TypeError, "inputs must have dtype"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_by_name_before_a_key_is_drawn(
    make, inputs, error, words
):
    with pytest.raises(error, match=words):
        layer = make()
        layer(inputs)
    if inputs is not None:
        assert layer.rngs.count[...] == 0  # no key drawn
    linen_layer = cf.LinenDropout(0.5, broadcast_dims=(5,))
    with pytest.raises(ValueError, match="broadcast_dims must hold axes"):
        linen_layer.apply({}, jnp.ones(3), deterministic=False,
                          rngs={"dropout": jax.random.key(0)})  # fmt: skip


def test_docstring_examples_run():
    import doctest

    failed, attempted = doctest.testmod(cf)
    assert attempted > 0 and failed == 0


class _Holders(nnx.Module):
    """Dropouts held every way an nnx model holds modules."""

    def __init__(self, rngs):
        self.in_dict = nnx.data({"a": nnx.Dropout(0.1, rngs=rngs)})
        self.in_tuple = nnx.data((nnx.Dropout(0.2, rngs=rngs), 3))
        self.nested = nnx.data([[nnx.Dropout(0.3, rngs=rngs)]])
        self.dict_of_lists = nnx.data({"x": [nnx.Dropout(0.4, rngs=rngs)]})
        self.in_list = nnx.List([nnx.Dropout(0.5, rngs=rngs)])
        shared = nnx.Dropout(0.6, rngs=rngs)
        self.first, self.second = shared, shared


def test_swap_dropout_reaches_every_container_and_keeps_one_shared_dropout():
    model = cf.swap_dropout(_Holders(nnx.Rngs(dropout=0)))
    found = [(path, node) for path, node in nnx.iter_graph(model)
             if isinstance(node, nnx.Dropout)]  # fmt: skip
    assert len(found) == 6 and all(type(node) is cf.Dropout for _, node in found)
    assert model.first is model.second
    assert model.in_tuple[1] == 3 and type(model.in_tuple) is tuple
    assert [model.in_dict["a"].rate, model.nested[0][0].rate] == [0.1, 0.3]


def test_swap_dropout_refuses_a_bad_rate_before_changing_anything():
    model = _Holders(nnx.Rngs(dropout=0))
    model.in_list[0].rate = float("nan")  # flax takes it
    with pytest.raises(ValueError, match="'in_list.0' cannot be swapped: rate must"):
        cf.swap_dropout(model)
    assert all(type(node) is nnx.Dropout for _, node in nnx.iter_graph(model)
               if isinstance(node, nnx.Dropout))  # fmt: skip


def test_a_concrete_scalar_array_is_taken_as_the_rate():
    layer = cf.Dropout(jnp.float32(0.25), rngs=nnx.Rngs(dropout=0))
    assert layer.rate == float(np.float32(0.25))
    assert cf.LinenDropout(jnp.float32(0.25), deterministic=True).apply(
        {}, jnp.ones(3)
    ).shape == (3,)


def _heads_last(array):
    """[batch, heads, length, features] as flax's [batch, length, heads, features]."""
    return np.swapaxes(array, 1, 2)


def _attention_inputs(seed=0):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal(shape).astype(np.float32)
               for shape in [(2, 3, 5, 4), (2, 3, 7, 4), (2, 3, 7, 4)])  # fmt: skip
    return q, k, v  # [batch, heads, length, features], the reference's layout


def test_dot_product_attention_drops_the_weights_by_the_reference_rule():
    from cdropout import reference

    q, k, v = _attention_inputs()
    got = cf.dot_product_attention(*map(_heads_last, (q, k, v)), dropout_rate=0.5,
                                   broadcast_dropout=False, seed=9)  # fmt: skip
    expected = reference.attention(q, k, v, 0.5, seed=9)
    np.testing.assert_allclose(np.asarray(got), _heads_last(expected), rtol=1e-5,
                               atol=1e-6)  # fmt: skip
    # broadcast_dropout (flax's default): batch element b has batch 0's mask
    shared = cf.dot_product_attention(*map(_heads_last, (q, k, v)), dropout_rate=0.5,
                                      seed=9)  # fmt: skip
    for b in range(2):
        alone = reference.attention(q[b:b + 1], k[b:b + 1], v[b:b + 1], 0.5, seed=9)
        np.testing.assert_allclose(np.asarray(shared[b]), _heads_last(alone)[0],
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
    # deterministic, or rate 0: flax's own
    flax_own = nnx.dot_product_attention(*map(_heads_last, (q, k, v)))
    for options in ({"deterministic": True, "dropout_rate": 0.5, "seed": 1}, {}):
        np.testing.assert_allclose(
            np.asarray(cf.dot_product_attention(*map(_heads_last, (q, k, v)),
                                                **options)),
            np.asarray(flax_own), rtol=1e-6, atol=1e-7,
        )  # fmt: skip


def test_swap_dropout_reaches_multi_head_attention():
    def block():
        return nnx.MultiHeadAttention(3, 12, decode=False, dropout_rate=0.5,
                                      deterministic=False,
                                      rngs=nnx.Rngs(0, dropout=1))  # fmt: skip

    swapped, plain = cf.swap_dropout(block()), block()
    assert swapped.attention_fn is cf.dot_product_attention
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 5, 12)), jnp.float32)
    swapped.eval(), plain.eval()
    assert np.array_equal(np.asarray(swapped(x, x, x)), np.asarray(plain(x, x, x)))
    swapped.train()

    @nnx.jit
    def step(model):
        return nnx.grad(lambda m: (m(x, x, x) ** 2).sum())(model)

    assert np.isfinite(np.asarray(step(swapped).out.kernel[...])).all()
    own = block()
    own.attention_fn = lambda *a, **k: nnx.dot_product_attention(*a, **k)
    assert cf.swap_dropout(own).attention_fn is not cf.dot_product_attention
