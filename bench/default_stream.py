"""Which stream the NumPy API can default to: both streams on every ISA path, against
the memory floor, one thread.

    python bench/default_stream.py [--sizes 1e6 1e7 1e8] [--repeats 7]

cdropout.torch and cdropout.jax default to the counter stream (compilers generate it
inside their kernels); the NumPy API defaulted to xoshiro. One default everywhere
(one seed, one mask) is taken if the counter stream costs at most 1.15x the floor out
of cache on the AVX2 path too, the slowest vector path (no 64-bit multiply before
AVX-512DQ). For each dtype, size, ISA path and layout (in place, out=), one process
times, interleaved, the floor (NumPy's multiply, in place or into out) and each stream;
the best of the repeats, in ns per element, and the ratio to the floor. Prints the CPU.
"""

import argparse
import time

import numpy as np

import cdropout
from cdropout import _kernel, _runtime


def _once(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(dtype, n, out_of_place, repeats):
    x = np.ones(n, dtype)
    out = np.empty_like(x) if out_of_place else x
    contenders = {
        "floor": lambda: np.multiply(x, 2.0, out=out),
        **{
            stream: lambda stream=stream: cdropout.dropout(
                x, 0.5, seed=1, stream=stream, out=out, n_threads=1
            )
            for stream in ("counter", "xoshiro")
        },
    }
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(repeats):
        for name, call in contenders.items():
            best[name] = min(best[name], _once(call))
    return {name: seconds / n * 1e9 for name, seconds in best.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7, 1e8])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"cpu: {_runtime.cpu_model()}; cdropout {cdropout.__version__}; one thread")
    print("ns per element (ratio to the floor); p = 0.5")
    for level in sorted(_kernel.ISA_LEVELS.values(), reverse=True):
        with _runtime.isa(level) as path:
            for dtype in (np.float32, np.float64):
                for size in args.sizes:
                    for out_of_place in (False, True):
                        r = measure(dtype, int(size), out_of_place, args.repeats)
                        cells = "  ".join(
                            f"{name} {r[name]:.3f} ({r[name] / r['floor']:.2f}x)"
                            for name in ("counter", "xoshiro")
                        )
                        layout = "out=" if out_of_place else "in place"
                        print(
                            f"{path:9} {np.dtype(dtype).name:8} {size:7.0e} "
                            f"{layout:8}  floor {r['floor']:.3f}  {cells}",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
