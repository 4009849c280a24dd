"""The main grid: every contender on every (dtype, size, p, layout), interleaved in one
process (cdropout._timing), and its tables.

Layouts: in place (out=x), into a preallocated out= reused call after call, and into a
new array. Contenders: the floor np.multiply(x, s) written where the layout writes,
cdropout on 1, 2 and all threads and on each lower ISA path (1 thread), its counter
stream (stream="counter") on 1 thread and each lower ISA path, the NumPy
recipe x * (rng.random(x.shape) >= p) / (1 - p), cdropout.reference (up to 1e6
elements), and the peers that are installed: PyTorch's CPU dropout eager and under
torch.compile, and JAX's jit (jax.random.bernoulli with jnp.where); the last three have
no out=. Also the bytes a cdropout call allocates (tracemalloc), a smaller grid of
float16 and bfloat16 against their floor, a float32 round trip, and the in-cache cells
timed back to back.
"""


import numpy as np

from cdropout import _kernel, _runtime, _timing

FULL = {
    "dtypes": ["float32", "float64"],
    "sizes": [10**3, 10**4, 10**5, 10**6, 10**7, 10**8],
    "ps": [0.1, 0.5, 0.9],
}
QUICK = {"dtypes": ["float32"], "sizes": [10**3, 10**4, 10**5, 10**6], "ps": [0.5]}
# float16 and bfloat16 (when ml_dtypes is installed): the floor and cdropout on one
# thread, in place and into a new array
SIXTEEN_BIT = {"sizes": [10**4, 10**5, 10**6, 10**7], "ps": [0.5]}
SIXTEEN_BIT_QUICK = {"sizes": [10**5], "ps": [0.5]}
REFERENCE_MAX = 10**6  # the reference's temporaries grow with the size


def lower_isa_paths():
    best = _kernel.ISA_LEVELS[_kernel.best_isa()]
    return [name for name, level in _kernel.ISA_LEVELS.items() if level < best]


def sixteen_bit_dtypes():
    """float16, and bfloat16 where ml_dtypes is installed."""
    found = [np.dtype(np.float16)]
    try:
        import ml_dtypes
    except ImportError:
        return found
    return [*found, np.dtype(ml_dtypes.bfloat16)]


def run_grid(grid, progress):
    """The grid's records: one per contender and cell, and one of allocated bytes."""
    peers = _timing.peers()
    cores = _runtime.USABLE_CPUS  # as the package counts them (affinity, quota)
    threads = sorted({1, min(2, cores), cores})
    cells = [
        (dtype, size, p, layout)
        for dtype in grid["dtypes"]
        for size in grid["sizes"]
        for p in grid["ps"]
        for layout in _timing.LAYOUTS
    ]
    records = []
    rng = np.random.default_rng(0)
    for dtype, size, p, layout in progress(cells, desc="grid"):
        x = rng.standard_normal(size).astype(dtype)
        found = _timing.contenders(
            x,
            p,
            layout,
            threads=threads,
            isa_paths=lower_isa_paths(),
            reference=size <= REFERENCE_MAX,
            peers=peers,
            counter=True,
        )
        records += _records(found, dtype, size, p, layout)
        records.append(
            {
                "dtype": dtype,
                "size": size,
                "p": p,
                "layout": layout,
                "contender": "cdropout 1t",
                "allocated_bytes": _timing.peak_bytes(found[1].run),
                "array_bytes": x.nbytes,
            }
        )
    return records


def run_sixteen_bit(grid, progress):
    """Records of float16 and bfloat16: the floor (a float32 round trip) and cdropout
    on one thread."""
    cells = [
        (dtype, size, p, layout)
        for dtype in sixteen_bit_dtypes()
        for size in grid["sizes"]
        for p in grid["ps"]
        for layout in ("in place", "new output")
    ]
    records = []
    rng = np.random.default_rng(0)
    for dtype, size, p, layout in progress(cells, desc="float16 and bfloat16"):
        x = rng.standard_normal(size).astype(dtype)
        found = _timing.contenders(x, p, layout, recipe=False)
        # for scale: the floor of a float32 array of the same length, twice the bytes
        wide = x.astype(np.float32)
        wide_out = wide if layout == "in place" else None
        found.append(
            _timing.Contender(
                "float32 floor", lambda w=wide, o=wide_out: np.multiply(w, 2.0, out=o)
            )
        )
        records += _records(found, dtype.name, size, p, layout)
    return records


# The in-cache cells again, each contender's calls back to back (run_in_cache).
IN_CACHE = {
    "dtypes": ["float32", "float64"],
    "sizes": [10**4, 10**5],
    "ps": [0.1, 0.5, 0.9],
}
IN_CACHE_QUICK = {"dtypes": ["float32"], "sizes": [10**4, 10**5], "ps": [0.5]}


def run_in_cache(cells, progress):
    """Records of the floor and cdropout on one thread (every ISA path), in place, each
    contender's calls back to back, with layout _timing.BACK_TO_BACK.

    The grid interleaves its contenders, and the recipe, the reference and the peers
    allocate arrays larger than L2 between two floor calls: there the 1e5-element floor
    reads x from L3 (0.2 rather than 0.07 ns per element on the Intel Xeon VM), and a
    ratio to it says nothing about cdropout in cache. Calls in a row, as a training
    loop's dropout on cache-resident activations makes them, find x in cache.
    """
    todo = [
        (dtype, size, p)
        for dtype in cells["dtypes"]
        for size in cells["sizes"]
        for p in cells["ps"]
    ]
    records = []
    rng = np.random.default_rng(0)
    for dtype, size, p in progress(todo, desc="in cache, back to back"):
        x = rng.standard_normal(size).astype(dtype)
        found = _timing.contenders(
            x, p, "in place", isa_paths=lower_isa_paths(), recipe=False, counter=True
        )
        records += _records(found, dtype, size, p, _timing.BACK_TO_BACK)
    return records


def _records(found, dtype, size, p, layout):
    times = _timing.best_times(found, size, back_to_back=layout == _timing.BACK_TO_BACK)
    return [
        {
            "dtype": str(dtype),
            "size": size,
            "p": p,
            "layout": layout,
            "contender": name,
            "seconds": seconds,
            "ns_per_element": seconds / size * 1e9,
            "ratio_to_floor": seconds / times["floor"],
        }
        for name, seconds in times.items()
    ]


def _cell(record):
    return f"{record['ns_per_element']:8.3f} ({record['ratio_to_floor']:5.1f}x)"


def print_table(meta, records):
    print(
        f"cdropout {meta['cdropout']} on {meta['cpu']}, {meta['cores']} cores; "
        f"ISA path {meta['config']['isa path']}"
    )
    print(
        "ns per element (ratio to the floor: np.multiply(x, s) into x, into the "
        "preallocated out=, or into a new array;\nfloat16 and bfloat16 compute in "
        "float32)"
    )
    print(
        f"commit {meta['commit']}, {meta['date']}; peers: "
        + (", ".join(f"{k} {v}" for k, v in meta["peers"].items()) or "none")
    )
    for name, hint in _timing.MISSING_PEERS.items():
        if name not in meta["peers"]:
            print(f"{name} is not installed: its columns are left out ({hint})")
    timed = [r for r in records if "seconds" in r]
    groups = dict.fromkeys((r["dtype"], r["p"], r["layout"]) for r in timed)
    for group in groups:
        dtype, p, layout = group
        rows = [r for r in timed if (r["dtype"], r["p"], r["layout"]) == group]
        names = list(dict.fromkeys(r["contender"] for r in rows))
        print(f"\n{dtype}, p={p}, {layout}")
        print(f"{'size':>10}" + "".join(f"{n:>19}" for n in names))
        for size in sorted({r["size"] for r in rows}):
            by_name = {r["contender"]: r for r in rows if r["size"] == size}
            cells = [_cell(by_name[n]) if n in by_name else "-" for n in names]
            print(f"{size:>10}" + "".join(f"{c:>19}" for c in cells))
    print("\nbytes allocated by one cdropout call (tracemalloc), and the array's")
    for r in (r for r in records if "allocated_bytes" in r and r["p"] == 0.5):
        print(
            f"  {r['dtype']} {r['size']:>10} {r['layout']:<10} "
            f"{r['allocated_bytes']:>12} (array: {r['array_bytes']})"
        )
