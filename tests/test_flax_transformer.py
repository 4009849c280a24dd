"""A flax client: the nnx Transformer block of examples/flax_transformer.py
(MultiHeadAttention with dropout_rate, Dropouts on the residual branches) after
cdropout.flax.swap_dropout: every dropout element is cdropout's, none is flax's
(jax.random.bernoulli is never called), and it trains under nnx.jit. Skipped without
the flax extra."""

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("flax")

import jax  # noqa: E402
from flax import nnx  # noqa: E402

import cdropout.flax as cf  # noqa: E402
from cdropout.jax import functional  # noqa: E402

from example_support import example  # noqa: E402

BATCH, LENGTH, WIDTH, HEADS, VOCABULARY = 4, 16, 32, 4, 16


def _block(swapped=True):
    block = example("flax_transformer").Block(
        VOCABULARY, WIDTH, HEADS, 0.2, nnx.Rngs(0, dropout=1)
    )
    return cf.swap_dropout(block) if swapped else block


def _sequences(seed):
    return example("flax_transformer").sequences(BATCH, LENGTH, VOCABULARY, seed)


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
    _block()(_sequences(0)[0])
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
        _block(swapped=False)(_sequences(0)[0])
    assert len(calls) == 3


@pytest.mark.usefixtures("no_flax_dropout")
def test_the_swapped_block_trains_under_nnx_jit():
    model, step = _block(), example("flax_transformer").step
    losses = [float(step(model, *_sequences(seed))) for seed in range(60)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    model.eval()  # evaluation: no dropout, the same function each call
    tokens = _sequences(99)[0]
    assert np.array_equal(np.asarray(model(tokens)), np.asarray(model(tokens)))
