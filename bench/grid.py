"""The main grid: every contender on every (dtype, size, p, in place or new output),
interleaved in one process (cdropout._timing), and its tables.

Contenders: the floor np.multiply(x, s, out=x) (np.multiply(x, s) for a new output),
cdropout on 1, 2 and all threads and on each lower ISA path (1 thread), the NumPy
recipe x * (rng.random(x.shape) >= p) / (1 - p), cdropout.reference (up to 1e6
elements), and the peers that are installed: PyTorch's CPU dropout eager and under
torch.compile, and JAX's jit (jax.random.bernoulli with jnp.where). Also the bytes a
cdropout call allocates (tracemalloc).
"""

import os

import numpy as np

from cdropout import _kernel, _timing

FULL = {
    "dtypes": ["float32", "float64"],
    "sizes": [10**3, 10**4, 10**5, 10**6, 10**7, 10**8],
    "ps": [0.1, 0.5, 0.9],
}
QUICK = {"dtypes": ["float32"], "sizes": [10**3, 10**4, 10**5, 10**6], "ps": [0.5]}
REFERENCE_MAX = 10**6  # the reference's temporaries grow with the size


def lower_isa_paths():
    best = _kernel.ISA_LEVELS[_kernel.best_isa()]
    return [name for name, level in _kernel.ISA_LEVELS.items() if level < best]


def run_grid(grid, progress):
    """The grid's records: one per contender and cell, and one of allocated bytes."""
    peers = _timing.peers()
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
    for dtype, size, p, in_place in progress(cells, desc="grid"):
        x = rng.standard_normal(size).astype(dtype)
        found = _timing.contenders(
            x,
            p,
            in_place,
            threads=threads,
            isa_paths=lower_isa_paths(),
            reference=size <= REFERENCE_MAX,
            peers=peers,
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
    return records


def _cell(record):
    return f"{record['ns_per_element']:8.3f} ({record['ratio_to_floor']:5.1f}x)"


def print_table(meta, records):
    print(
        f"cdropout {meta['cdropout']} on {meta['cpu']}, {meta['cores']} cores; "
        f"ISA path {meta['config']['isa path']}"
    )
    print(
        "ns per element (ratio to the floor: np.multiply(x, s, out=x) in place, "
        "np.multiply(x, s) for a new output)"
    )
    print(
        f"commit {meta['commit']}, {meta['date']}; peers: "
        + (", ".join(f"{k} {v}" for k, v in meta["peers"].items()) or "none")
    )
    for name, hint in _timing.MISSING_PEERS.items():
        if name not in meta["peers"]:
            print(f"{name} is not installed: its columns are left out ({hint})")
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
        print(
            f"  {r['dtype']} {r['size']:>10} {kind:<10} {r['allocated_bytes']:>12} "
            f"(array: {r['array_bytes']})"
        )
