"""Train a small NumPy MLP with cdropout's layers in both conventions, and deploy each
without dropout code.

    python examples/numpy_mlp.py [--quick]

The network, data and SGD loop are those of `python -m cdropout demo`
(cdropout/demo.py): two ReLU layers with cdropout.Dropout(0.5) after each, on a
generated 5-class Gaussian mixture. Inverted dropout deploys as trained (evaluation is
the identity); classic dropout deploys once its weights that read dropped units are
scaled by the keep probability (cdropout.rescale_weights): both then run with no
dropout at all. --quick: 3 epochs instead of 40 (a few seconds).
"""

import argparse

import numpy as np

import cdropout
from cdropout import demo


def deployable(params, mode):
    """The weights to evaluate with no dropout layer: classic ones take 1 - p into the
    layers that read dropped units (the second and third, input axis 0)."""
    if mode == "inverted":
        return params
    return [params[0]] + [
        (cdropout.rescale_weights(W, demo.P, axis=0, from_mode="classic",
                                  to_mode="inverted"), b)
        for W, b in params[1:]
    ]  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python examples/numpy_mlp.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="3 epochs")
    args = parser.parse_args(argv)
    epochs = 3 if args.quick else 40
    rng = np.random.default_rng(0)
    train_data, test_data = demo.make_data(2000, rng), demo.make_data(4000, rng)
    no_dropout = [cdropout.Dropout(demo.P).eval() for _ in range(2)]  # the identity
    for mode in ("inverted", "classic"):
        params, layers = demo.train(mode, train_data, seed=1, epochs=epochs)
        for layer in layers:
            layer.eval()
        with_layers = demo.evaluate(params, layers, test_data)
        deployed = demo.evaluate(deployable(params, mode), no_dropout, test_data)
        print(f"{mode:>8}: test accuracy {with_layers['accuracy']:.3f} with its "
              f"dropout layers in evaluation, {deployed['accuracy']:.3f} deployed "
              f"without them (loss {with_layers['loss']:.3f} and "
              f"{deployed['loss']:.3f})")  # fmt: skip
        assert abs(with_layers["loss"] - deployed["loss"]) < 1e-9  # the same network


if __name__ == "__main__":
    main()
