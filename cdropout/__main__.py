"""python -m cdropout: the configuration, a self-check against the reference, and speed.

Sub-commands: tour (the default: all of it), config, check, speed.
"""

import argparse
import sys
import time

import numpy as np

import cdropout
from cdropout import reference


def self_check():
    """Compare the kernel with cdropout.reference on a few cases; True if all agree."""
    rng = np.random.default_rng(0)
    cases = []
    for dtype in (np.float16, np.float32, np.float64):
        for shape, offset, p in [
            ((1,), 0, 0.5),
            ((4097,), 4095, 0.1),
            ((64, 300), 2**32 + 5, 0.9),
        ]:
            x = rng.standard_normal(shape).astype(dtype)
            for layout, view in [("contiguous", x), ("strided", x[..., ::-3])]:
                a = cdropout.dropout(view, p, seed=1234, offset=offset)
                b = reference.dropout(view, p, seed=1234, offset=offset)
                name = f"{np.dtype(dtype).name} {shape} {layout} p={p}"
                cases.append((name, a.tobytes() == b.tobytes()))
    mask = cdropout.dropout_mask(100_000, 0.3, seed=5)
    same_mask = np.array_equal(mask, reference.dropout_mask(100_000, 0.3, seed=5))
    cases.append(("dropout_mask 100000 p=0.3", same_mask))
    failed = [name for name, ok in cases if not ok]
    agreed = len(cases) - len(failed)
    print(
        f"self-check against cdropout.reference: {agreed}/{len(cases)} byte-identical"
    )
    for name in failed:
        print(f"  MISMATCH {name}")
    return not failed


def _best_time(run, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _contenders(x, p, rng):
    """The timed calls on one array, the floor first."""
    scale = np.float32(1 / (1 - p))
    return {
        "multiply": lambda: np.multiply(x, scale, out=x),
        # in place on data that stays valid: dropout of dropout is still a float array
        "cdropout": lambda: cdropout.dropout(x, p, seed=1, out=x, n_threads=1),
        "multiply new": lambda: np.multiply(x, scale),
        "cdropout new": lambda: cdropout.dropout(x, p, seed=1, n_threads=1),
        "NumPy recipe": lambda: x * (rng.random(x.shape, np.float32) >= p) / (1 - p),
    }


def speed_table(sizes=(10**3, 10**5, 10**6, 10**7), p=0.5):
    """ns per element, float32, one thread, timed in this process, min of repeats."""
    print(
        f"\nspeed: float32, p={p}, 1 thread, ns per element (ratio to the first column)"
    )
    print("  multiply: np.multiply(x, s, out=x), the floor of any in-place dropout;")
    print("  cdropout: in place (out=x); 'new': a new output array each call. In-place")
    print("  runs reuse x: values grow to inf, which float arithmetic runs as fast.")
    rng = np.random.default_rng(0)
    names = list(_contenders(None, p, rng))
    print(f"{'size':>10} {names[0]:>10} " + " ".join(f"{n:>16}" for n in names[1:]))
    for n in sizes:
        x = rng.standard_normal(n).astype(np.float32)
        repeats = max(3, min(200, 10**7 // n))
        with np.errstate(over="ignore", invalid="ignore"):
            times = {
                name: _best_time(run, repeats)
                for name, run in _contenders(x, p, rng).items()
            }
        floor = times[names[0]]
        cells = [f"{floor / n * 1e9:10.3f}"]
        cells += [
            f"{times[name] / n * 1e9:8.3f} ({times[name] / floor:4.1f}x)"
            for name in names[1:]
        ]
        print(f"{n:>10} " + " ".join(cells))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cdropout", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("tour", help="config, self-check and speed (the default)")
    commands.add_parser("config", help="print the build and run-time configuration")
    commands.add_parser("check", help="compare the kernel with cdropout.reference")
    commands.add_parser("speed", help="a small timing table against the NumPy recipe")
    command = parser.parse_args(argv).command or "tour"
    ok = True
    if command in ("tour", "config"):
        cdropout.show_config()
    if command in ("tour", "check"):
        ok = self_check()
    if command in ("tour", "speed"):
        speed_table()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
