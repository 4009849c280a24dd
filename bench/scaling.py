"""Thread scaling of in-place float32 dropout, each count's calls back to back."""

import os

import numpy as np

import cdropout
from cdropout import _timing


def run_threads(sizes, progress, p=0.5):
    """Thread scaling of in-place float32 dropout, each thread count timed back to back.

    The grid interleaves contenders, so between two cdropout calls the other contenders
    evict the array from the cores' caches and OpenMP's idle threads go to sleep: there
    a second thread often costs more than it saves at 1e6. Here each count runs its
    calls in a row, as a training loop's dropout calls on cache-resident activations
    do, so every thread finds its share of the array in its own cache.
    """
    cores = os.cpu_count() or 1
    counts = sorted({1, min(2, cores), cores} | {t for t in (4, 8, 16) if t < cores})
    rows = []
    for size in progress(sizes, desc="threads"):
        x = np.random.default_rng(0).standard_normal(size).astype(np.float32)
        scale = np.float32(1 / (1 - p))
        calls = {"floor": lambda x=x, s=scale: np.multiply(x, s, out=x)}
        for t in counts:
            calls[t] = lambda x=x, t=t: cdropout.dropout(
                x, p, seed=1, out=x, n_threads=t
            )
        found = [_timing.Contender(name, call) for name, call in calls.items()]
        times = _timing.best_times(found, size, back_to_back=True)
        rows.append({"size": size, "p": p, **{str(k): v for k, v in times.items()}})
    return rows


def print_threads(rows):
    print(
        "\nthreads, float32, p=0.5, in place, each count's calls back to back: ns "
        "per element (speed against 1 thread)"
    )
    for r in rows:
        n = r["size"]
        cells = [f"floor {r['floor'] / n * 1e9:.3f}"] + [
            f"{k}t {r[k] / n * 1e9:.3f} ({r['1'] / r[k]:.2f}x)"
            for k in r
            if k not in ("size", "p", "floor")
        ]
        print(f"  {n:>10}  " + "   ".join(cells))
