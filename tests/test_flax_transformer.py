"""A flax client: an nnx Transformer block (MultiHeadAttention with dropout_rate,
Dropouts on the residual branches) after cdropout.flax.swap_dropout: every dropout
element is cdropout's, none is flax's (jax.random.bernoulli is never called), and it
trains under nnx.jit. Skipped without the flax extra."""

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

import cdropout.flax as cf  # noqa: E402
from cdropout.jax import functional  # noqa: E402

BATCH, LENGTH, WIDTH, HEADS, VOCABULARY = 4, 16, 32, 4, 16


class Block(nnx.Module):
    """A pre-norm Transformer block with a token embedding and a head, as flax's
    examples write one."""

    def __init__(self, rate, rngs):
        self.embed = nnx.Embed(VOCABULARY, WIDTH, rngs=rngs)
        self.norm1 = nnx.LayerNorm(WIDTH, rngs=rngs)
        self.norm2 = nnx.LayerNorm(WIDTH, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            HEADS, WIDTH, dropout_rate=rate, decode=False, deterministic=False,
            rngs=rngs,
        )  # fmt: skip
        self.attention_dropout = nnx.Dropout(rate, rngs=rngs)
        self.up = nnx.Linear(WIDTH, 4 * WIDTH, rngs=rngs)
        self.down = nnx.Linear(4 * WIDTH, WIDTH, rngs=rngs)
        self.mlp_dropout = nnx.Dropout(rate, rngs=rngs)
        self.head = nnx.Linear(WIDTH, VOCABULARY, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens)
        y = self.norm1(x)
        causal = nnx.make_causal_mask(tokens)
        x = x + self.attention_dropout(self.attention(y, y, y, mask=causal))
        x = x + self.mlp_dropout(self.down(nnx.gelu(self.up(self.norm2(x)))))
        return self.head(x)


def _block(rate=0.2):
    return cf.swap_dropout(Block(rate, nnx.Rngs(0, dropout=1)))


def _tokens(seed):
    start = np.random.default_rng(seed).integers(0, VOCABULARY, (BATCH, 1))
    tokens = (start + np.arange(LENGTH + 1)) % VOCABULARY  # counting: learnable
    return jnp.asarray(tokens[:, :-1]), jnp.asarray(tokens[:, 1:])


def _loss(model, tokens, targets):
    logits = model(tokens)
    one_hot = jax.nn.one_hot(targets, VOCABULARY)
    return -(jax.nn.log_softmax(logits) * one_hot).sum(-1).mean()


@pytest.fixture
def no_flax_dropout(monkeypatch):
    """flax's dropouts (nnx.Dropout, the attention weights' dropout) draw their masks
    by jax.random.bernoulli: any call of it fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("flax's dropout ran: jax.random.bernoulli was called")

    monkeypatch.setattr(jax.random, "bernoulli", refuse)


@pytest.mark.usefixtures("no_flax_dropout")
def test_every_dropout_element_of_the_block_is_cdropouts(monkeypatch):
    counted = []
    real = functional.dropout

    def counting(x, *args, **kwargs):
        counted.append(x.size)
        return real(x, *args, **kwargs)

    monkeypatch.setattr(functional, "dropout", counting)
    model = _block()
    model(_tokens(0)[0])
    hidden = BATCH * LENGTH * WIDTH
    probabilities = BATCH * HEADS * LENGTH * LENGTH
    assert sorted(counted) == sorted([probabilities, hidden, hidden])


def test_without_the_swap_flaxs_dropouts_run():
    calls = []
    real = jax.random.bernoulli

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jax.random, "bernoulli", counting)
        Block(0.2, nnx.Rngs(0, dropout=1))(_tokens(0)[0])
    assert len(calls) == 3


@pytest.mark.usefixtures("no_flax_dropout")
def test_the_swapped_block_trains_under_nnx_jit():
    model = _block()

    @nnx.jit
    def step(model, tokens, targets):
        value, grads = nnx.value_and_grad(_loss)(model, tokens, targets)
        params = nnx.state(model, nnx.Param)
        nnx.update(model, jax.tree.map(lambda p, g: p - 0.5 * g, params, grads))
        return value

    losses = [float(step(model, *_tokens(seed))) for seed in range(60)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    model.eval()  # evaluation: no dropout, the same function each call
    tokens = _tokens(99)[0]
    assert np.array_equal(np.asarray(model(tokens)), np.asarray(model(tokens)))
