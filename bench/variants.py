"""Broadcast (channel) dropout, alpha and Gaussian dropout in place against the floor
and plain dropout, float32, one thread."""

import numpy as np

import cdropout
from cdropout import _timing

BROADCAST_CASES = [  # (shape, noise_shape, what it is)
    ((64, 64, 32, 32), (None, None, 1, 1), "channels (Dropout2d)"),
    ((4096, 1024), (1, None), "features shared by the batch"),
    ((4096, 1024), (None, 1), "whole rows"),
]


def run_broadcast(progress, p=0.5):
    """Broadcast dropout in place against the floor and plain dropout, float32."""
    rows = []
    scale = np.float32(1 / (1 - p))
    for shape, noise, what in progress(BROADCAST_CASES, desc="broadcast"):
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        found = [
            _timing.Contender("floor", lambda x=x: np.multiply(x, scale, out=x)),
            _timing.Contender(
                "broadcast",
                lambda x=x, noise=noise: cdropout.dropout(
                    x, p, seed=1, out=x, n_threads=1, noise_shape=noise
                ),
            ),
            _timing.Contender(
                "plain", lambda x=x: cdropout.dropout(x, p, seed=1, out=x, n_threads=1)
            ),
        ]
        times = _timing.best_times(found, x.size)
        rows.append({"shape": shape, "noise_shape": noise, "what": what, **times})
    return rows


def run_variants(size=10**6, p=0.5):
    """Alpha and Gaussian dropout in place against the floor and plain dropout."""
    x = np.random.default_rng(0).standard_normal(size).astype(np.float32)
    scale = np.float32(1 / (1 - p))
    found = [
        _timing.Contender("floor", lambda: np.multiply(x, scale, out=x)),
        _timing.Contender(
            "dropout", lambda: cdropout.dropout(x, p, seed=1, out=x, n_threads=1)
        ),
        _timing.Contender(
            "alpha_dropout",
            lambda: cdropout.alpha_dropout(x, p, seed=1, out=x, n_threads=1),
        ),
        _timing.Contender(
            "gaussian_dropout", lambda: cdropout.gaussian_dropout(x, p, seed=1, out=x)
        ),
    ]
    times = _timing.best_times(found, size)
    return {"size": size, "p": p, **times}


def print_variants(row):
    n = row["size"]
    print(
        f"\nvariants, float32, {n} elements, p={row['p']}, in place: ns per element "
        "(ratio to the floor)"
    )
    for name in ("floor", "dropout", "alpha_dropout", "gaussian_dropout"):
        ratio = row[name] / row["floor"]
        print(f"  {name:<18} {row[name] / n * 1e9:8.3f} ({ratio:5.1f}x)")


def print_broadcast(rows):
    print(
        "\nbroadcast dropout, float32, p=0.5, in place, 1 thread: ns per element "
        "(ratio to the floor)"
    )
    for r in rows:
        n = int(np.prod(r["shape"]))
        cells = [
            f"{r[k] / n * 1e9:.3f} ({r[k] / r['floor']:.1f}x)"
            for k in ("floor", "broadcast", "plain")
        ]
        print(
            f"  {str(r['shape']):<18} noise {str(r['noise_shape']):<20} "
            f"{r['what']:<30} floor {cells[0]}  broadcast {cells[1]}  "
            f"plain dropout {cells[2]}"
        )
