"""cdropout's benchmark suite: one command, every contender timed in one process.

    python bench/run.py            # the full grid (about 7 minutes on 2 cores)
    python bench/run.py --quick    # float32, p = 0.5, 1e3 to 1e6 (about a minute)

Phases, each with its progress bar: the grid of cdropout against the floor, the NumPy
recipe, the reference and the installed peers, then the in-cache cells back to back
(bench/grid.py); broadcast, alpha and Gaussian dropout (bench/variants.py); thread
scaling (bench/scaling.py). Writes
results.json (with the CPU, the commit and the date), broadcast.json, variants.json,
threads.json and bench.png (bench/plot.py), and prints the tables. Also in bench/:
floor.py (the prefetch choice against a parallel floor), torch_ops.py and
torch_train.py (cdropout.torch). Needs the bench extra: pip install -e ".[bench]".
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the phases beside this file, also under runpy

import grid  # noqa: E402
import plot  # noqa: E402
import scaling  # noqa: E402
import targets  # noqa: E402
import variants  # noqa: E402

import cdropout  # noqa: E402
from cdropout import _runtime, _timing  # noqa: E402


def _git(*args):
    run = subprocess.run(["git", *args], cwd=HERE, text=True, capture_output=True,
                         check=True)  # fmt: skip
    return run.stdout.strip()


def commit():
    """The checkout's commit (with '+' when it has uncommitted changes), or None."""
    try:
        head, dirty = _git("rev-parse", "HEAD"), _git("status", "--porcelain")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+" if dirty else "")


def meta():
    return {
        "cpu": _runtime.cpu_model(),
        "cores": os.cpu_count() or 1,
        "commit": commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "peers": _timing.peer_versions(),
        "config": _runtime.config(),
        "cdropout": cdropout.__version__,
    }


def main(argv=None, prog="python bench/run.py"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a small grid, about a minute"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results"),
        help="folder for the JSON files and bench.png",
    )
    args = parser.parse_args(argv)
    plot.check()
    try:
        from tqdm import tqdm as progress
    except ImportError:  # no bars without the bench extra

        def progress(items, desc=""):
            print(f"{desc}: {len(items)} steps", flush=True)
            return items

    info = meta()
    records = grid.run_grid(grid.QUICK if args.quick else grid.FULL, progress)
    records += grid.run_sixteen_bit(
        grid.SIXTEEN_BIT_QUICK if args.quick else grid.SIXTEEN_BIT, progress
    )
    records += grid.run_in_cache(
        grid.IN_CACHE_QUICK if args.quick else grid.IN_CACHE, progress
    )
    broadcast = variants.run_broadcast(progress)
    variant_row = variants.run_variants()
    sizes = [10**6, 10**7] if args.quick else [10**6, 10**7, 10**8]
    threads = scaling.run_threads(sizes, progress)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"meta": info, "records": records})
    )
    (args.out / "broadcast.json").write_text(json.dumps(broadcast))
    (args.out / "variants.json").write_text(json.dumps(variant_row))
    (args.out / "threads.json").write_text(json.dumps(threads))
    grid.print_table(info, records)
    targets.print_targets(records)
    variants.print_broadcast(broadcast)
    variants.print_variants(variant_row)
    scaling.print_threads(threads)
    plot.plot(records, args.out / "bench.png")
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'bench.png'}")


if __name__ == "__main__":
    main()
