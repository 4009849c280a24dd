"""cdropout's benchmark suite: one command, every contender timed in one process.

    python bench/run.py            # the full grid (about 4 minutes on 2 cores)
    python bench/run.py --quick    # float32, p = 0.5, 1e3 to 1e6 (under a minute)

Contenders, interleaved, minimum of several repeats: the floor np.multiply(x, s, out=x)
(np.multiply(x, s) for a new output), cdropout on 1, 2 and all threads, cdropout on each
lower ISA path (1 thread), the NumPy recipe x * (rng.random(x.shape) >= p) / (1 - p),
cdropout.reference (up to 1e6 elements), and PyTorch's CPU dropout when torch is
installed. In-place calls reuse their array: dropout of dropout stays a float array.
Also measured: the bytes a call allocates (tracemalloc, which sees NumPy's buffers).

Also broadcast (channel) dropout, alpha and Gaussian dropout against the floor, and
thread scaling with each thread count's calls back to back. Writes results.json,
broadcast.json, variants.json and threads.json (raw figures) and bench.png (ns per
element against size), and prints the tables. Needs the bench extra:
pip install -e ".[bench]".
"""

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

import cdropout
from cdropout import _config, _kernel, _timing

FULL = {
    "dtypes": ["float32", "float64"],
    "sizes": [10**3, 10**4, 10**5, 10**6, 10**7, 10**8],
    "ps": [0.1, 0.5, 0.9],
}
QUICK = {"dtypes": ["float32"], "sizes": [10**3, 10**4, 10**5, 10**6], "ps": [0.5]}
REFERENCE_MAX = 10**6  # the reference's temporaries grow with the size


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def lower_isa_paths():
    best = _kernel.ISA_LEVELS[_kernel.best_isa()]
    return [name for name, level in _kernel.ISA_LEVELS.items() if level < best]


def run_grid(grid, out_dir, progress):
    torch = _timing.torch_dropout()
    cores = os.cpu_count() or 1
    threads = sorted({1, min(2, cores), cores})
    cells = [
        (dtype, size, p, in_place)
        for dtype in grid["dtypes"]
        for size in grid["sizes"]
        for p in grid["ps"]
        for in_place in (True, False)
    ]
    records = []
    rng = np.random.default_rng(0)
    for dtype, size, p, in_place in progress(cells):
        x = rng.standard_normal(size).astype(dtype)
        found = _timing.contenders(
            x,
            p,
            in_place,
            threads=threads,
            isa_paths=lower_isa_paths(),
            reference=size <= REFERENCE_MAX,
            torch=torch,
        )
        times = _timing.best_times(found, size)
        call = found[1].run  # cdropout on one thread
        allocated = _timing.peak_bytes(call)
        for name, seconds in times.items():
            records.append(
                {
                    "dtype": dtype,
                    "size": size,
                    "p": p,
                    "in_place": in_place,
                    "contender": name,
                    "seconds": seconds,
                    "ns_per_element": seconds / size * 1e9,
                    "ratio_to_floor": seconds / times["floor"],
                }
            )
        records.append(
            {
                "dtype": dtype,
                "size": size,
                "p": p,
                "in_place": in_place,
                "contender": "cdropout 1t",
                "allocated_bytes": allocated,
                "array_bytes": x.nbytes,
            }
        )
    meta = {
        "cpu": cpu_name(),
        "cores": cores,
        "torch": None if torch is None else __import__("torch").__version__,
        "config": _config.config(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(
        json.dumps({"meta": meta, "records": records})
    )
    return meta, records


def _cell(record):
    return f"{record['ns_per_element']:8.3f} ({record['ratio_to_floor']:5.1f}x)"


BROADCAST_CASES = [  # (shape, noise_shape, what it is)
    ((64, 64, 32, 32), (None, None, 1, 1), "channels (Dropout2d)"),
    ((4096, 1024), (1, None), "features shared by the batch"),
    ((4096, 1024), (None, 1), "whole rows"),
]


def run_broadcast(p=0.5):
    """Broadcast dropout in place against the floor and plain dropout, float32."""
    rows = []
    scale = np.float32(1 / (1 - p))
    for shape, noise, what in BROADCAST_CASES:
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


def run_threads(sizes, p=0.5):
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
    for size in sizes:
        x = np.random.default_rng(0).standard_normal(size).astype(np.float32)
        scale = np.float32(1 / (1 - p))
        calls = {"floor": lambda x=x, s=scale: np.multiply(x, s, out=x)}
        for t in counts:
            calls[t] = lambda x=x, t=t: cdropout.dropout(
                x, p, seed=1, out=x, n_threads=t
            )
        times = {
            name: _timing.best_times([_timing.Contender(name, call)], size)[name]
            for name, call in calls.items()
        }
        rows.append({"size": size, "p": p, **{str(k): v for k, v in times.items()}})
    return rows


def print_threads(rows):
    print("\nthreads, float32, p=0.5, in place, each count's calls back to back: ns "
          "per element (speed against 1 thread)")  # fmt: skip
    for r in rows:
        n = r["size"]
        cells = [f"floor {r['floor'] / n * 1e9:.3f}"] + [
            f"{k}t {r[k] / n * 1e9:.3f} ({r['1'] / r[k]:.2f}x)"
            for k in r if k not in ("size", "p", "floor")
        ]  # fmt: skip
        print(f"  {n:>10}  " + "   ".join(cells))


def print_variants(row):
    n = row["size"]
    print(f"\nvariants, float32, {n} elements, p={row['p']}, in place: ns per element "
          "(ratio to the floor)")  # fmt: skip
    for name in ("floor", "dropout", "alpha_dropout", "gaussian_dropout"):
        ratio = row[name] / row["floor"]
        print(f"  {name:<18} {row[name] / n * 1e9:8.3f} ({ratio:5.1f}x)")


def print_broadcast(rows):
    print("\nbroadcast dropout, float32, p=0.5, in place, 1 thread: ns per element "
          "(ratio to the floor)")  # fmt: skip
    for r in rows:
        n = int(np.prod(r["shape"]))
        cells = [f"{r[k] / n * 1e9:.3f} ({r[k] / r['floor']:.1f}x)" for k in
                 ("floor", "broadcast", "plain")]  # fmt: skip
        print(f"  {str(r['shape']):<18} noise {str(r['noise_shape']):<20} "
              f"{r['what']:<30} floor {cells[0]}  broadcast {cells[1]}  "
              f"plain dropout {cells[2]}")  # fmt: skip


def print_table(meta, records):
    print(f"cdropout {cdropout.__version__} on {meta['cpu']}, {meta['cores']} cores; "
          f"ISA path {meta['config']['isa path']}")  # fmt: skip
    print("ns per element (ratio to the floor: np.multiply(x, s, out=x) in place, "
          "np.multiply(x, s) for a new output)")  # fmt: skip
    if meta["torch"] is None:
        print("PyTorch is not installed: its column is left out "
              "(pip install torch for it)")  # fmt: skip
    timed = [r for r in records if "seconds" in r]
    groups = sorted({(r["dtype"], r["p"], r["in_place"]) for r in timed})
    for dtype, p, in_place in groups:
        rows = [
            r
            for r in timed
            if (r["dtype"], r["p"], r["in_place"]) == (dtype, p, in_place)
        ]
        names = list(dict.fromkeys(r["contender"] for r in rows))
        print(f"\n{dtype}, p={p}, {'in place' if in_place else 'new output'}")
        print(f"{'size':>10}" + "".join(f"{n:>19}" for n in names))
        for size in sorted({r["size"] for r in rows}):
            by_name = {r["contender"]: r for r in rows if r["size"] == size}
            cells = [_cell(by_name[n]) if n in by_name else "-" for n in names]
            print(f"{size:>10}" + "".join(f"{c:>19}" for c in cells))
    print("\nbytes allocated by one cdropout call (tracemalloc), and the array's")
    for r in (r for r in records if "allocated_bytes" in r and r["p"] == 0.5):
        kind = "in place" if r["in_place"] else "new output"
        print(f"  {r['dtype']} {r['size']:>10} {kind:<10} {r['allocated_bytes']:>12} "
              f"(array: {r['array_bytes']})")  # fmt: skip


def plot(records, path, dtype="float32", p=0.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [
        r for r in records if "seconds" in r and r["dtype"] == dtype and r["p"] == p
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, in_place in zip(axes, (True, False), strict=True):
        rows = [r for r in timed if r["in_place"] == in_place]
        for name in dict.fromkeys(r["contender"] for r in rows):
            points = sorted((r["size"], r["ns_per_element"]) for r in rows
                            if r["contender"] == name)  # fmt: skip
            style = "k--" if name == "floor" else "o-"
            ax.loglog(*zip(*points, strict=True), style, label=name, markersize=3)
        ax.set_title(f"{dtype}, p={p}, {'in place' if in_place else 'new output'}")
        ax.set_xlabel("elements")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ns per element")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python bench/run.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small grid, under a minute"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"),
                        help="folder for results.json and bench.png")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        from tqdm import tqdm as progress
    except ImportError:
        progress = lambda cells: cells  # noqa: E731 - no bar without the bench extra
    meta, records = run_grid(QUICK if args.quick else FULL, args.out, progress)
    broadcast = run_broadcast()
    variants = run_variants()
    threads = run_threads([10**6, 10**7] if args.quick else [10**6, 10**7, 10**8])
    (args.out / "broadcast.json").write_text(json.dumps(broadcast))
    (args.out / "variants.json").write_text(json.dumps(variants))
    (args.out / "threads.json").write_text(json.dumps(threads))
    print_table(meta, records)
    print_broadcast(broadcast)
    print_variants(variants)
    print_threads(threads)
    plot(records, args.out / "bench.png")
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'bench.png'}")


if __name__ == "__main__":
    main()
