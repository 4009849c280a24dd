"""Train a torch.nn model on the CPU with cdropout's dropout: swap_dropout, then an
ordinary PyTorch training loop, eager or compiled.

    python examples/torch_train.py [--quick] [--compile]

The model is written with torch.nn (Linear, ReLU, Dropout); swap_dropout puts
cdropout's modules in place of torch.nn's dropouts and fuses each ReLU with the dropout
after it. The data is a generated 10-class problem (no download). Training follows
torch.manual_seed: a second run gives the same losses. --quick: 30 steps (a few
seconds); --compile: torch.compile the model (the counter stream is generated inside
inductor's kernels).
"""

import argparse

import torch

import cdropout.torch


def model():
    return torch.nn.Sequential(
        torch.nn.Linear(32, 256), torch.nn.ReLU(), torch.nn.Dropout(0.3),
        torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Dropout(0.3),
        torch.nn.Linear(256, 10),
    )  # fmt: skip


def data(n, generator):
    """A linearly separable 10-class problem in 32 dimensions, with label noise."""
    centres = torch.randn(10, 32, generator=generator) * 2
    labels = torch.randint(0, 10, (n,), generator=generator)
    return centres[labels] + torch.randn(n, 32, generator=generator), labels


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python examples/torch_train.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="30 steps")
    parser.add_argument("--compile", action="store_true", help="torch.compile it")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    net = cdropout.torch.swap_dropout(model())
    print(net)
    run = torch.compile(net) if args.compile else net
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x, y = data(4096, torch.Generator().manual_seed(1))
    steps = 30 if args.quick else 600
    for step in range(steps):
        batch = torch.randint(0, x.shape[0], (128,))
        loss = torch.nn.functional.cross_entropy(run(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % (steps // 5) == 0 or step == steps - 1:
            print(f"step {step:4d}: loss {loss.item():.4f}")
    net.eval()  # evaluation: dropout off (inverted: the identity)
    with torch.no_grad():
        accuracy = (run(x).argmax(1) == y).float().mean().item()
    print(f"training accuracy with dropout off: {accuracy:.3f}")


if __name__ == "__main__":
    main()
