"""In-place dropout against the memory floor, per prefetch choice and thread count.

    python bench/floor.py [--threads 1 16] [--sizes 1e7 1e8] [--repeats 15]

For each dtype, size and thread count, one process times, interleaved, the floor and
cdropout with each prefetch choice of the out-of-cache loop ("far": prefetchnta half a
block ahead; "near": prefetcht1 4 KB ahead; see cdropout/src/paths.h). The floor is
NumPy's in-place multiply on one thread and, for several threads, an OpenMP in-place
scale loop with the same thread count and schedule (cdropout._kernel.scale_floor), so
that "runs at the machine's memory bandwidth" is a measured ratio. Prints the CPU.
"""

import argparse
import time

import numpy as np

import cdropout
from cdropout import _kernel, _params, _runtime


def _best(call, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(dtype, n, threads, repeats):
    """ns per element of the floor and each prefetch choice (min over interleaved runs)
    """
    x = np.ones(n, dtype)
    threshold = _params.threshold(0.5)
    floor = (
        (lambda: np.multiply(x, 1.0, out=x))
        if threads == 1
        else (lambda: _kernel.scale_floor(x, x, 1.0, threads))
    )
    contenders = {"floor": floor}
    for kind in ("far", "near"):
        contenders[kind] = (
            lambda kind=kind: (
                _kernel.use_prefetch(kind),
                _kernel.dropout_into(x, x, 1, 0, threshold, 1.0, threads),
            )
        )
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(repeats):
        for name, call in contenders.items():
            best[name] = min(best[name], _best(call, 1))
    return {name: seconds / n * 1e9 for name, seconds in best.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e7, 1e8])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    chosen = _kernel.prefetch_kind()
    print(f"cpu: {_runtime.cpu_model()}; isa path {_kernel.isa_path()}; "
          f"cdropout {cdropout.__version__}; prefetch at import: {chosen}")  # fmt: skip
    print("in place, p = 0.5; ns per element, and the ratio to the floor")
    try:
        for dtype in (np.float32, np.float64):
            for size in args.sizes:
                for threads in args.threads:
                    r = measure(dtype, int(size), threads, args.repeats)
                    print(
                        f"{np.dtype(dtype).name:8} {size:7.0e} {threads:3d} threads  "
                        f"floor {r['floor']:.3f}  far {r['far']:.3f} "
                        f"({r['far'] / r['floor']:.2f}x)  near {r['near']:.3f} "
                        f"({r['near'] / r['floor']:.2f}x)",
                        flush=True,
                    )
    finally:
        _kernel.use_prefetch(chosen)


if __name__ == "__main__":
    main()
