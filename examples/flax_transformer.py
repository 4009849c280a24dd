"""Train a flax nnx Transformer block with every dropout cdropout's:
cdropout.flax.swap_dropout(model), then an ordinary nnx.jit training loop.

    python examples/flax_transformer.py [--quick]

The block is written as flax's examples write one: nnx.MultiHeadAttention with a
dropout_rate (the attention weights' dropout, inside its attention function) and
nnx.Dropout on the residual branches. swap_dropout replaces the Dropouts and gives the
attention cdropout.flax.dot_product_attention, so no mask is flax's
(jax.random.bernoulli's). The data is a generated sequence task (no download).
--quick: 20 steps.
"""

import argparse

import jax
import numpy as np
from flax import nnx

import cdropout.flax


class Block(nnx.Module):
    """A token embedding, one pre-norm Transformer block (causal self-attention and
    an MLP, each with dropout on its residual branch) and a head."""

    def __init__(self, vocabulary, width, heads, rate, rngs):
        self.embed = nnx.Embed(vocabulary, width, rngs=rngs)
        self.norm1 = nnx.LayerNorm(width, rngs=rngs)
        self.norm2 = nnx.LayerNorm(width, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            heads, width, dropout_rate=rate, decode=False, deterministic=False,
            rngs=rngs,
        )  # fmt: skip
        self.attention_dropout = nnx.Dropout(rate, rngs=rngs)
        self.up = nnx.Linear(width, 4 * width, rngs=rngs)
        self.down = nnx.Linear(4 * width, width, rngs=rngs)
        self.mlp_dropout = nnx.Dropout(rate, rngs=rngs)
        self.head = nnx.Linear(width, vocabulary, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens)
        y = self.norm1(x)
        causal = nnx.make_causal_mask(tokens)
        x = x + self.attention_dropout(self.attention(y, y, y, mask=causal))
        x = x + self.mlp_dropout(self.down(nnx.gelu(self.up(self.norm2(x)))))
        return self.head(x)


def sequences(batch, length, vocabulary, seed):
    """Inputs and next-token targets: each sequence counts up from a random start,
    modulo the vocabulary."""
    start = np.random.default_rng(seed).integers(0, vocabulary, (batch, 1))
    tokens = (start + np.arange(length + 1)) % vocabulary
    return tokens[:, :-1], tokens[:, 1:]


def loss(model, tokens, targets):
    """Mean cross-entropy of the next tokens."""
    logits = model(tokens)
    one_hot = jax.nn.one_hot(targets, logits.shape[-1])
    return -(jax.nn.log_softmax(logits) * one_hot).sum(-1).mean()


@nnx.jit
def step(model, tokens, targets, rate=0.5):
    """One SGD step; returns the loss before it."""
    value, grads = nnx.value_and_grad(loss)(model, tokens, targets)
    params = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda p, g: p - rate * g, params, grads))
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python examples/flax_transformer.py",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--quick", action="store_true", help="20 steps")
    args = parser.parse_args(argv)
    model = cdropout.flax.swap_dropout(Block(16, 32, 4, 0.2, nnx.Rngs(0, dropout=1)))
    steps = 20 if args.quick else 200
    for number in range(steps):
        value = step(model, *sequences(8, 16, 16, number))
        if number % (steps // 5) == 0 or number == steps - 1:
            print(f"step {number:4d}: loss {float(value):.4f}")


if __name__ == "__main__":
    main()
