"""cdropout.jax against JAX's and flax's dropout, jitted, on the CPU.

    python bench/jax_ops.py [--quick] [--sizes 1e4 1e5 ...]

For float32 arrays of each size, one process times, interleaved (minimum of repeats),
each jitted call: the floor (a multiply into a new array, what any dropout that is not
in place writes), flax.nnx.Dropout, the recipe jax.random.bernoulli then jnp.where,
cdropout.jax.dropout on the counter stream (jax.numpy operations that XLA fuses) and on
the xoshiro stream (the C kernel through XLA's FFI). Each call gets a fresh key, as a
training step does. XLA runs elementwise loops on its own threads, as many as the
machine has. Prints ns per element and each contender's ratio to cdropout's counter
stream. Needs the flax extra. --quick: 1e4 and 1e5 (about 10 seconds); the default
sizes 1e4 to 1e8 take about 2 minutes.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import cdropout.jax as cj
from cdropout import _runtime, _timing

P = 0.5


def contenders(x):
    """The jitted calls on x, each a Contender whose run waits for its result."""
    layer = nnx.Dropout(P, rngs=nnx.Rngs(dropout=0))
    functions = {
        "floor": jax.jit(lambda x, key: x * (1 / (1 - P))),
        "flax nnx.Dropout": jax.jit(lambda x, key: layer(x, rngs=key)),
        "bernoulli + where": jax.jit(
            lambda x, key: jnp.where(jax.random.bernoulli(key, 1 - P, x.shape),
                                     x / (1 - P), 0)  # fmt: skip
        ),
        "cdropout counter": jax.jit(lambda x, key: cj.dropout(x, P, key=key)),
        "cdropout xoshiro": jax.jit(
            lambda x, key: cj.dropout(x, P, key=key, stream="xoshiro")
        ),
    }
    keys = iter(jax.random.split(jax.random.key(0), 10**5))

    def run(function):
        return lambda: function(x, next(keys)).block_until_ready()

    return [_timing.Contender(name, run(f)) for name, f in functions.items()]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python bench/jax_ops.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="1e4 and 1e5 only")
    parser.add_argument("--sizes", type=float, nargs="+")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([1e4, 1e5] if args.quick else [1e4, 1e5, 1e6, 1e7, 1e8])
    print(f"cpu: {_runtime.cpu_model()} ({_runtime.USABLE_CPUS} usable CPUs); "
          f"jax {jax.__version__}; float32, p = {P}")  # fmt: skip
    print("ns per element (ratio to cdropout counter)")
    found = contenders(jnp.ones(1))
    names = [c.name for c in found]
    print(f"{'size':>10}" + "".join(f"{n:>26}" for n in names))
    for size in (int(s) for s in sizes):
        x = jnp.asarray(np.random.default_rng(0).standard_normal(size, np.float32))
        found = contenders(x)
        for contender in found:  # compile outside the timings
            contender.run()
        times = _timing.best_times(found, size)
        base = times["cdropout counter"]
        cells = "".join(
            f"{times[n] / size * 1e9:>15.3f} ({times[n] / base:5.1f}x)" for n in names
        )
        print(f"{size:>10.0e}{cells}", flush=True)


if __name__ == "__main__":
    main()
