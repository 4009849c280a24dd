"""python -m cdropout: a tour of cdropout.

Sub-commands: tour (the default: config, check, why, demo and speed in turn), config,
check, why, demo, speed, and bench (the benchmark suite of a source checkout, not part
of the tour). Each has --help.
"""

import argparse
import runpy
import sys
from pathlib import Path

import numpy as np

import cdropout
from cdropout import _kernel, _runtime, _timing, demo, reference


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


def speed_table(sizes=(10**3, 10**5, 10**6, 10**7), p=0.5):
    """ns per element, float32, one thread, timed in this process (min of repeats)."""
    torch = _timing.torch_dropout()
    print(f"\nspeed: float32, p={p}, one thread, ns per element (ratio to the floor)")
    print(f"  cpu: {_runtime.cpu_model()}, isa path {_kernel.isa_path()}, prefetch "
          f"{_kernel.prefetch_kind()}")  # fmt: skip
    print(
        "  floor: np.multiply(x, s, out=x) in place, np.multiply(x, s) for a new array"
    )
    if torch is None:
        print("  (PyTorch is not installed: its column is left out)")
    rng = np.random.default_rng(0)
    for layout in ("in place", "new output"):
        print(f"{layout}:")
        header = None
        for n in sizes:
            x = rng.standard_normal(n).astype(np.float32)
            peers = None if torch is None else {"PyTorch": torch}
            found = _timing.contenders(x, p, layout, peers=peers)
            times = _timing.best_times(found, n)
            if header is None:
                header = [c.name for c in found]
                print(f"{'size':>10}" + "".join(f"{name:>18}" for name in header))
            floor = times["floor"]
            cells = [f"{times[name] / n * 1e9:9.3f} ({times[name] / floor:4.1f}x)"
                     for name in header]  # fmt: skip
            print(f"{n:>10}" + "".join(f"{cell:>18}" for cell in cells))


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


def _find_bench():
    """bench/run.py of the source checkout this package was built in (an editable
    install), or None: an installed package does not carry the benchmark suite, which
    the repository and the sdist do."""
    root = Path(__file__).resolve().parent.parent
    if (root / "setup.py").exists() and (root / "bench" / "run.py").exists():
        return root / "bench" / "run.py"
    return None


BENCH = _find_bench()


def bench(argv):
    """bench/run.py with `argv` (--quick, --out, --help), from a source checkout."""
    if BENCH is None or not BENCH.exists():
        print("the benchmark suite, bench/run.py, ships with cdropout's source (the "
              "repository or the sdist), not with the installed package: in a source "
              "checkout, pip install -e '.[bench]', then python bench/run.py or this "
              "command")  # fmt: skip
        return 1
    runpy.run_path(str(BENCH))["main"](argv)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cdropout", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="command")
    commands.add_parser("tour", help="the five below, in turn (the default)")
    for name, (summary, _) in COMMANDS.items():
        commands.add_parser(name, help=summary, description=summary)
    commands.add_parser(
        "bench",
        add_help=False,
        help="the benchmark suite, bench/run.py (--help: its own)",
    )
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        return bench(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    command = args.command or "tour"
    ok = True
    for name in COMMANDS if command == "tour" else [command]:
        ok = COMMANDS[name][1]() is not False and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
