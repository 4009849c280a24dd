"""python -m cdropout: a tour of cdropout.

Sub-commands: tour (the default: config, check, why, demo and speed in turn), config,
check, why, demo, speed, and bench (the benchmark suite of a source checkout, not part
of the tour). Each has --help.
"""

import argparse
import importlib.util
import json
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


def speed_table(sizes=(10**3, 10**5, 10**6, 10**7), threads=(1,), dtype="float32",
                as_json=False, p=0.5):  # fmt: skip
    """ns per element, timed in this process (min of repeats): the floor, cdropout on
    each thread count, the NumPy recipe (float32 and float64) and PyTorch's dropout
    where PyTorch is installed; a table, or JSON records with as_json."""
    torch = _timing.torch_dropout()
    x_dtype = np.dtype(_bfloat16_type() if dtype == "bfloat16" else dtype)
    records = []
    if not as_json:
        print(f"\nspeed: {dtype}, p={p}, ns per element (ratio to the floor)")
        print(f"  cpu: {_runtime.cpu_model()} ({_runtime.USABLE_CPUS} usable CPUs), "
              f"isa path {_kernel.isa_path()}, "
              f"prefetch {_kernel.prefetch_kind()}")  # fmt: skip
        print("  floor: np.multiply(x, s, out=x) in place, np.multiply(x, s) for a new "
              "array")  # fmt: skip
        if torch is None:
            print("  (PyTorch is not installed: its column is left out)")
    rng = np.random.default_rng(0)
    for layout in ("in place", "new output"):
        if not as_json:
            print(f"{layout}:")
        header = None
        for n in sizes:
            x = rng.standard_normal(n).astype(x_dtype)
            peers = None if torch is None or x_dtype.kind != "f" else {"PyTorch": torch}
            recipe = x_dtype.name in ("float32", "float64")
            found = _timing.contenders(x, p, layout, threads=threads, peers=peers,
                                       recipe=recipe)  # fmt: skip
            times = _timing.best_times(found, n)
            floor = times["floor"]
            records += [
                {"layout": layout, "size": n, "dtype": dtype, "contender": name,
                 "ns_per_element": seconds / n * 1e9, "ratio_to_floor": seconds / floor}
                for name, seconds in times.items()
            ]  # fmt: skip
            if as_json:
                continue
            if header is None:
                header = [c.name for c in found]
                print(f"{'size':>10}" + "".join(f"{name:>18}" for name in header))
            cells = [f"{times[name] / n * 1e9:9.3f} ({times[name] / floor:4.1f}x)"
                     for name in header]  # fmt: skip
            print(f"{n:>10}" + "".join(f"{cell:>18}" for cell in cells))
    if as_json:
        meta = {"cpu": _runtime.cpu_model(), "usable_cpus": _runtime.USABLE_CPUS,
                "isa_path": _kernel.isa_path(), "cdropout": cdropout.__version__,
                "p": p}  # fmt: skip
        print(json.dumps({"meta": meta, "records": records}, indent=1))


def _bfloat16_type():
    import ml_dtypes  # the test extra's; refused with a message by the parser below

    return ml_dtypes.bfloat16


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
    runpy.run_path(str(BENCH))["main"](argv, prog="python -m cdropout bench")
    return 0


def _sizes(text):
    """A size as the command line gives it: 1e6, 1000000 or 1_000_000."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value >= 1 and value == int(value) and value <= 2**40):
        raise argparse.ArgumentTypeError(
            f"a size must be a whole number of elements from 1 to 2**40, got {text}"
        )
    return int(value)


def _threads(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an int: {text!r}") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"a thread count from 1 to 256, got {value}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cdropout", description=__doc__)
    parser.add_argument("--version", action="version",
                        version=f"cdropout {cdropout.__version__}")  # fmt: skip
    commands = parser.add_subparsers(dest="command", metavar="command")
    commands.add_parser("tour", help="the five below, in turn (the default)")
    for name, (summary, _) in COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=summary)
        if name == "speed":
            command.add_argument("--sizes", type=_sizes, nargs="+",
                                 default=[10**3, 10**5, 10**6, 10**7],
                                 help="elements per array (default 1e3 1e5 1e6 1e7)")
            command.add_argument("--threads", type=_threads, nargs="+", default=[1],
                                 help="cdropout's thread counts (default 1)")
            command.add_argument("--dtype", default="float32",
                                 choices=["float32", "float64", "float16", "bfloat16"])
            command.add_argument("--json", action="store_true",
                                 help="JSON records instead of the table")  # fmt: skip
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
    if command == "speed":
        if args.dtype == "bfloat16" and importlib.util.find_spec("ml_dtypes") is None:
            parser.error("--dtype bfloat16 needs ml_dtypes (pip install ml_dtypes)")
        speed_table(args.sizes, args.threads, args.dtype, args.json)
        return 0
    ok = True
    for name in COMMANDS if command == "tour" else [command]:
        ok = COMMANDS[name][1]() is not False and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
