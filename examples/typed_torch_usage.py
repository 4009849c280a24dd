"""cdropout.torch as a typed client uses it: checked by mypy --strict in CI (.ci/run),
with PyTorch installed."""

import argparse

import torch

import cdropout.torch as ct


def regularised(x: torch.Tensor, step: int) -> torch.Tensor:
    y: torch.Tensor = ct.dropout(x, 0.5, True, False, seed=step, mode="classic")
    return ct.dropout2d(y.reshape(1, -1, 1, 1), 0.2, seed=step).reshape(y.shape)


def swapped_model() -> torch.nn.Module:
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2)
    )
    model = ct.swap_dropout(model)
    layer: torch.nn.Dropout = ct.Dropout(0.3, seed=1, noise_shape=(None, 1))
    model.append(layer)
    return ct.convert_mode(model, "inverted")


def alpha(x: torch.Tensor) -> torch.Tensor:
    y = ct.alpha_dropout(x, 0.2, True, generator=torch.Generator().manual_seed(0))
    z: torch.Tensor = ct.FeatureAlphaDropout(0.1)(ct.feature_alpha_dropout(y, 0.1))
    return z


if __name__ == "__main__":
    argparse.ArgumentParser(
        prog="python examples/typed_torch_usage.py", description=__doc__
    ).parse_args()
    print(regularised(torch.ones(8), 1), swapped_model(), alpha(torch.ones(2, 3)))
