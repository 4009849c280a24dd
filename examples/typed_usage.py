"""cdropout as a typed client uses it: checked by mypy --strict in CI (.ci/run)."""

import argparse

import numpy as np
import numpy.typing as npt

import cdropout


def regularised(x: npt.NDArray[np.float32], step: int) -> npt.NDArray[np.float32]:
    y: npt.NDArray[np.float32] = cdropout.dropout(x, 0.5, seed=step, mode="inverted")
    return y


def with_a_layer(x: npt.NDArray[np.float64]) -> float:
    layer = cdropout.Dropout(0.25, seed=np.random.default_rng(0), noise_shape=(None, 1))
    layer.calls = 3
    y = layer(x)
    grad = layer.backward(np.ones_like(y))
    key: int = cdropout.draw_seed([1, 2, 3])
    mask = cdropout.dropout_mask((4, 4), 0.5, seed=key)
    weights = cdropout.rescale_weights(
        np.ones((4, 2)), 0.5, axis=0, from_mode="classic", to_mode="inverted"
    )
    return float(grad.sum() + mask.sum() + weights.sum())


if __name__ == "__main__":
    argparse.ArgumentParser(
        prog="python examples/typed_usage.py", description=__doc__
    ).parse_args()
    print(regularised(np.ones(8, np.float32), 1), with_a_layer(np.ones((3, 4))))
