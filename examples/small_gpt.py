"""Train a GPT written the way small GPTs are written (nanoGPT's layout) with every
dropout cdropout's, the model's code unchanged: swap_dropout(model, functional=True).

    python examples/small_gpt.py [--quick] [--compile]

The model's attention calls F.scaled_dot_product_attention(..., dropout_p=...) and
its residual branches and embeddings have nn.Dropout modules, as nanoGPT's model.py
does. swap_dropout replaces the modules; functional=True runs the model's forward
inside cdropout.torch.intercept, so the attention dropout is cdropout's too (its mask
regenerated in the backward pass, never stored). The data is a generated sequence
task (no download); training follows torch.manual_seed. --quick: 20 steps;
--compile: torch.compile the model.
"""

import argparse

import torch
import torch.nn.functional as F

import cdropout.torch


class CausalSelfAttention(torch.nn.Module):
    def __init__(self, width, heads, dropout):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.out = torch.nn.Linear(width, width)
        self.residual_dropout = torch.nn.Dropout(dropout)

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2)
                   for t in (q, k, v))  # fmt: skip
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        y = y.transpose(1, 2).reshape(batch, length, width)
        return self.residual_dropout(self.out(y))


class Block(torch.nn.Module):
    def __init__(self, width, heads, dropout):
        super().__init__()
        self.norm1, self.norm2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, dropout)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(width, 4 * width), torch.nn.GELU(),
            torch.nn.Linear(4 * width, width), torch.nn.Dropout(dropout),
        )  # fmt: skip

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SmallGPT(torch.nn.Module):
    """Token and position embeddings with dropout, pre-norm blocks, a tied head; the
    forward returns the cross-entropy of the next tokens."""

    def __init__(self, vocabulary=64, block=32, width=32, heads=4, layers=2,
                 dropout=0.2):  # fmt: skip
        super().__init__()
        self.tokens = torch.nn.Embedding(vocabulary, width)
        self.positions = torch.nn.Embedding(block, width)
        self.dropout = torch.nn.Dropout(dropout)
        self.blocks = torch.nn.ModuleList(
            Block(width, heads, dropout) for _ in range(layers)
        )
        self.norm = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, vocabulary, bias=False)
        self.head.weight = self.tokens.weight

    def forward(self, indices, targets):
        positions = torch.arange(indices.shape[1], device=indices.device)
        x = self.dropout(self.tokens(indices) + self.positions(positions))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def sequences(batch, length, vocabulary, generator):
    """Inputs and next-token targets of a learnable task: each sequence counts up
    from a random start, modulo the vocabulary."""
    start = torch.randint(0, vocabulary, (batch, 1), generator=generator)
    tokens = (start + torch.arange(length + 1)) % vocabulary
    return tokens[:, :-1], tokens[:, 1:]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python examples/small_gpt.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="20 steps")
    parser.add_argument("--compile", action="store_true", help="torch.compile it")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = cdropout.torch.swap_dropout(SmallGPT(), functional=True)
    run = torch.compile(model) if args.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    steps = 20 if args.quick else 300
    for step in range(steps):
        indices, targets = sequences(32, 32, 64, generator)
        loss = run(indices, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % (steps // 5) == 0 or step == steps - 1:
            print(f"step {step:4d}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
