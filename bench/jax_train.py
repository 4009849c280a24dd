"""A jitted flax training step with flax's dropout, with cdropout's, and with none.

    python bench/jax_train.py [--quick] [--steps 30]

The model: a flax.nnx MLP of 1024 inputs, 3 hidden layers of 1024 with ReLU and
Dropout(0.5) after each, 10 classes, batch 512; a step is forward, cross-entropy,
backward and an optax SGD update, under nnx.jit. Variants of the dropout slot: nothing,
flax.nnx.Dropout, cdropout.flax.Dropout on the counter stream (fused by XLA) and on the
xoshiro stream (the C kernel through XLA's FFI). Prints the median step time of each,
timed in interleaved rounds, and its ratio to the step without dropout. --quick: 3
rounds of 2 steps (a smoke test, about 20 seconds).
"""

import argparse
import statistics
import time

import jax
import optax
from flax import nnx

import cdropout.flax as cf
from cdropout import _runtime

WIDTH, BATCH, CLASSES = 1024, 512, 10

VARIANTS = {
    "no dropout": None,
    "flax nnx.Dropout": lambda rngs: nnx.Dropout(0.5, rngs=rngs),
    "cdropout counter": lambda rngs: cf.Dropout(0.5, rngs=rngs),
    "cdropout xoshiro": lambda rngs: cf.Dropout(0.5, stream="xoshiro", rngs=rngs),
}


class MLP(nnx.Module):
    def __init__(self, dropout, rngs):
        self.hidden = nnx.List([nnx.Linear(WIDTH, WIDTH, rngs=rngs) for _ in range(3)])
        self.dropouts = nnx.List([dropout(rngs) for _ in range(3)] if dropout else [])
        self.out = nnx.Linear(WIDTH, CLASSES, rngs=rngs)

    def __call__(self, x):
        for k, layer in enumerate(self.hidden):
            x = nnx.relu(layer(x))
            if self.dropouts:
                x = self.dropouts[k](x)
        return self.out(x)


def stepper(dropout):
    """One jitted training step of a new model with this dropout, as a callable."""
    model = MLP(dropout, nnx.Rngs(0, dropout=1))
    optimizer = nnx.Optimizer(model, optax.sgd(1e-3), wrt=nnx.Param)
    keys = jax.random.split(jax.random.key(2))
    x = jax.random.normal(keys[0], (BATCH, WIDTH))
    y = jax.random.randint(keys[1], (BATCH,), 0, CLASSES)

    @nnx.jit
    def step(model, optimizer, x, y):
        def loss(model):
            logits = model(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return value

    def run():
        step(model, optimizer, x, y).block_until_ready()

    for _ in range(3):  # compile and warm up
        run()
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python bench/jax_train.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds of 2 steps")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    rounds, per_round = (3, 2) if args.quick else (5, max(1, args.steps // 5))
    print(f"cpu: {_runtime.cpu_model()} ({_runtime.USABLE_CPUS} usable CPUs); "
          f"jax {jax.__version__}")  # fmt: skip
    print("median ms per training step (ratio to the step without dropout)")
    runs = {name: stepper(dropout) for name, dropout in VARIANTS.items()}
    times = {name: [] for name in runs}
    for _ in range(rounds):  # interleaved: the machine's drift weighs on all alike
        for name, run in runs.items():
            for _ in range(per_round):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["no dropout"])
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"  {name:<20} {median * 1e3:8.2f} ({median / base:.2f}x)")


if __name__ == "__main__":
    main()
