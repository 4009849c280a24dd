"""A swapped model on a GPU: what only a machine with one can check (the device
machine, when a session is lent it). Run there with PyTorch installed:

    python .ci/gpu_check.py

Checks that a model whose dropouts cdropout.torch swapped moves to the GPU and trains
there with PyTorch's own dropout, in each convention: inverted dropout gives
F.dropout's bytes for the same generator state, classic dropout keeps kept units
unscaled, channel dropout drops whole channels, evaluation is the identity (or the
keep probability, classic), and the model comes back to the CPU onto cdropout's
kernel. Exits 1 on a failed check, 0 (with a note) where no GPU is present.
"""

import sys

import torch

import cdropout.torch as ct


def main():
    if not torch.cuda.is_available():
        print("no CUDA device: nothing checked")
        return 0
    device = torch.device("cuda")
    x = torch.randn(4096, device=device)
    torch.manual_seed(1)
    theirs = torch.nn.functional.dropout(x, 0.3)
    torch.manual_seed(1)
    ours = ct.dropout(x, 0.3)
    assert torch.equal(ours, theirs), "inverted dropout is not F.dropout's there"
    classic = ct.dropout(x, 0.3, mode="classic")
    kept = classic != 0
    assert torch.equal(classic[kept], x[kept]), "classic dropout scaled kept units"
    images = torch.ones(16, 8, 4, 4, device=device)
    channels = ct.Dropout2d(0.5)(images).sum(dim=(2, 3))
    assert set(channels.unique().tolist()) <= {0.0, 32.0}, "not whole channels"
    assert torch.equal(ct.dropout(x, 0.3, training=False, mode="classic"), x * 0.7)

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Linear(64, 64), torch.nn.Dropout(0.2), torch.nn.Linear(64, 4),
    )  # fmt: skip
    ct.swap_dropout(model)
    model[4].mode = "classic"
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    batch = torch.randn(256, 32, device=device)
    target = torch.randint(0, 4, (256,), device=device)
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(batch), target)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0], f"no learning there: {losses[0]} -> {losses[-1]}"
    model.cpu()
    y = model(batch.cpu())
    assert y.device.type == "cpu" and torch.isfinite(y).all()
    name = torch.cuda.get_device_name()
    print(f"GPU checks passed on {name}, torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
