"""python -m cdropout: a tour of cdropout.

Sub-commands: tour (the default: all of the others in turn), config, check, why, demo,
speed. Each has --help.
"""

import argparse
import sys
import time

import numpy as np

import cdropout
from cdropout import demo, reference


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


def why():
    """The seed question, in numbers: why dropout changes the values it keeps."""
    print("\nwhy does dropout change the values it does not zero?")
    dropped = cdropout.dropout(np.ones(10), 0.5, seed=1)
    print(f"  ones(10) through dropout p=0.5, inverted: {dropped}")
    print("  Kept units double, so that the expected activation stays 1 in training as")
    print("  at evaluation, where dropout is off. Means over 1e6 ones, p = 0.5:")
    x = np.ones(1_000_000)
    rows = [
        ("inverted (PyTorch, Keras)", "inverted", "inverted"),
        ("classic (Srivastava 2014)", "classic", "classic"),
        ("no rescaling (the mistake)", "classic", "inverted"),
    ]
    print(f"  {'convention':<28}{'training':>10}{'evaluation':>12}")
    for label, train_mode, eval_mode in rows:
        trained = cdropout.dropout(x, 0.5, seed=2, mode=train_mode).mean()
        evaluated = cdropout.dropout(x, 0.5, training=False, mode=eval_mode).mean()
        print(f"  {label:<28}{trained:>10.3f}{evaluated:>12.3f}")
    print("  Without rescaling, the next layer sees at evaluation twice the activation")
    print("  it learned on.")


def demo_table():
    """The MLP demonstration of cdropout.demo."""
    print("\na NumPy MLP trained with dropout both ways (cdropout/demo.py):")
    demo.print_table(demo.run())


def _best_time(run, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _torch_dropout():
    """PyTorch's CPU dropout on one thread, in place, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return lambda x, p: torch.nn.functional.dropout(
        torch.from_numpy(x), p, True, inplace=True
    )


def _contenders(x, p, rng, torch_dropout):
    """The timed calls on one array, the floor first."""
    scale = np.float32(1 / (1 - p))
    contenders = {
        "multiply": lambda: np.multiply(x, scale, out=x),
        # in place on data that stays valid: dropout of dropout is still a float array
        "cdropout": lambda: cdropout.dropout(x, p, seed=1, out=x, n_threads=1),
        "multiply new": lambda: np.multiply(x, scale),
        "cdropout new": lambda: cdropout.dropout(x, p, seed=1, n_threads=1),
        "NumPy recipe": lambda: x * (rng.random(x.shape, np.float32) >= p) / (1 - p),
    }
    if torch_dropout is not None:
        contenders["PyTorch"] = lambda: torch_dropout(x, p)
    return contenders


def speed_table(sizes=(10**3, 10**5, 10**6, 10**7), p=0.5):
    """ns per element, float32, one thread, timed in this process, min of repeats."""
    print(
        f"\nspeed: float32, p={p}, 1 thread, ns per element (ratio to the first column)"
    )
    print("  multiply: np.multiply(x, s, out=x), the floor of any in-place dropout;")
    print("  cdropout: in place (out=x); 'new': a new output array each call. In-place")
    print("  runs reuse x: values grow to inf, which float arithmetic runs as fast.")
    rng = np.random.default_rng(0)
    torch_dropout = _torch_dropout()
    if torch_dropout is None:
        print("  (PyTorch is not installed: its column is left out)")
    names = list(_contenders(None, p, rng, torch_dropout))
    print(f"{'size':>10} {names[0]:>10} " + " ".join(f"{n:>16}" for n in names[1:]))
    for n in sizes:
        x = rng.standard_normal(n).astype(np.float32)
        repeats = max(3, min(200, 10**7 // n))
        with np.errstate(over="ignore", invalid="ignore"):
            times = {
                name: _best_time(run, repeats)
                for name, run in _contenders(x, p, rng, torch_dropout).items()
            }
        floor = times[names[0]]
        cells = [f"{floor / n * 1e9:10.3f}"]
        cells += [
            f"{times[name] / n * 1e9:8.3f} ({times[name] / floor:4.1f}x)"
            for name in names[1:]
        ]
        print(f"{n:>10} " + " ".join(cells))


COMMANDS = {
    "config": ("the build and run-time configuration", cdropout.show_config),
    "check": ("compare the kernel with cdropout.reference, byte for byte", self_check),
    "why": ("why dropout rescales the values it keeps, in numbers", why),
    "demo": ("a NumPy MLP trained with inverted and classic dropout", demo_table),
    "speed": (
        "a small timing table against the NumPy recipe (and PyTorch)",
        speed_table,
    ),
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cdropout", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="command")
    commands.add_parser("tour", help="all of the below, in turn (the default)")
    for name, (summary, _) in COMMANDS.items():
        commands.add_parser(name, help=summary, description=summary)
    command = parser.parse_args(argv).command or "tour"
    ok = True
    for name in COMMANDS if command == "tour" else [command]:
        ok = COMMANDS[name][1]() is not False and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
