"""What a new output array costs: dropout into fresh memory against out= and in place.

    python bench/fresh.py [--sizes 1e6 1e7 1e8] [--threads 1 2]

A new array is memory the process has not touched: its first writes page-fault, one
fault per 4 KiB page. For each size and thread count, one process times, interleaved:
np.multiply into a new array and into a preallocated one, and cdropout.dropout into a
new array (out=None), into a preallocated one (out=), and in place (out=x). The
difference between new and preallocated is the price of the fresh pages.
"""

import argparse

import numpy as np

import cdropout
from cdropout import _runtime, _timing


def contenders(x, out, work, threads):
    two = np.float32(2)
    return [
        _timing.Contender("multiply new", lambda: x * two),
        _timing.Contender("multiply out=", lambda: np.multiply(x, two, out=out)),
        _timing.Contender(
            "dropout new", lambda: cdropout.dropout(x, 0.5, seed=1, n_threads=threads)
        ),
        _timing.Contender(
            "dropout out=",
            lambda: cdropout.dropout(x, 0.5, seed=1, out=out, n_threads=threads),
        ),
        _timing.Contender(
            "dropout in place",
            lambda: cdropout.dropout(work, 0.5, seed=1, out=work, n_threads=threads),
        ),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7, 1e8])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    print(f"cpu: {_runtime.cpu_model()}; float32, p = 0.5; ns per element")
    names = [
        "multiply new",
        "multiply out=",
        "dropout new",
        "dropout out=",
        "dropout in place",
    ]
    print(
        f"{'size':>10} {'threads':>7}"
        + "".join(f"{n:>18}" for n in names)
        + f"{'fresh pages':>14}"
    )
    for size in args.sizes:
        x = np.random.default_rng(0).standard_normal(int(size)).astype(np.float32)
        out = np.empty_like(x)
        work = x.copy()
        for threads in args.threads:
            found = contenders(x, out, work, threads)
            best = _timing.best_times(found, x.size)
            ns = {k: v / x.size * 1e9 for k, v in best.items()}
            fresh = ns["dropout new"] - ns["dropout out="]
            print(
                f"{int(size):>10} {threads:>7}"
                + "".join(f"{ns[n]:>18.3f}" for n in names)
                + f"{fresh:>14.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
