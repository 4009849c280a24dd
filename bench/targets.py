"""The project's speed targets, stated against the floor, checked on the grid's records.

Each target: which cells (contender, layouts, dtypes, sizes), the most its ratio to the
floor may be, and the range measured. The floor is np.multiply(x, s) written where the
layout writes: into x, into the preallocated out=, into a new array; for float16 and
bfloat16 it is a float32 round trip. Every ratio is a minimum of interleaved repeats,
but in cache, where each contender's calls run back to back (grid.run_in_cache). A
target without a limit is reported only: in cache the AVX2 path is bound by the
generator's instruction count (README, "Speed"), and the counter stream's 64-bit
multiplies (two per pair of elements in mix64, emulated by three 32-bit multiplies each
on AVX2) bound it in cache on every path (docs/stream.md, "Why SplitMix64").
The target the grid does not measure (all threads against the parallel floor:
bench/floor.py) is named with where to look.
"""

from cdropout._timing import BACK_TO_BACK  # grid.run_in_cache's layout

BIG = (10**6, 10**7, 10**8)
FLOATS = ("float32", "float64")
SIXTEEN_BIT = ("float16", "bfloat16")
TARGETS = [  # (what, contender, layouts, dtypes, sizes, at most)
    ("1 thread, in place and out=, 1e6-1e8, best path", "cdropout 1t",
     ("in place", "out="), FLOATS, BIG, 1.1),
    ("1 thread, in place and out=, 1e6-1e8, AVX2 path", "cdropout avx2",
     ("in place", "out="), FLOATS, BIG, 1.1),
    ("1 thread, in place, in cache (1e4-1e5), best path", "cdropout 1t",
     (BACK_TO_BACK,), FLOATS, (10**4, 10**5), 1.3),
    ("the same on the AVX2 path (reported)", "cdropout avx2",
     (BACK_TO_BACK,), FLOATS, (10**4, 10**5), None),
    ("1 thread, new output, 1e6-1e8, best path", "cdropout 1t",
     ("new output",), FLOATS, BIG, 1.1),
    ("float16 and bfloat16, 1 thread, 1e4-1e7", "cdropout 1t",
     ("in place", "new output"), SIXTEEN_BIT, (10**4, 10**5, 10**6, 10**7), 1.5),
    ("counter stream, 1 thread, in place and out=, 1e6-1e8", "cdropout counter 1t",
     ("in place", "out="), FLOATS, BIG, 1.15),
    ("counter stream, AVX2 path, 1e6-1e8 (reported)", "cdropout counter avx2",
     ("in place", "out="), FLOATS, BIG, None),
    ("counter stream, in cache (1e4-1e5) (reported)", "cdropout counter 1t",
     (BACK_TO_BACK,), FLOATS, (10**4, 10**5), None),
    ("counter stream, in cache, AVX2 path (reported)", "cdropout counter avx2",
     (BACK_TO_BACK,), FLOATS, (10**4, 10**5), None),
]  # fmt: skip
ELSEWHERE = [
    "all threads at 1e8: at least 0.9x the speed of an OpenMP parallel floor "
    "(python bench/floor.py --threads 1 N)",
]


def check(records):
    """(what, at most, lowest ratio, highest ratio, cells) per target with cells."""
    rows = []
    for what, contender, layouts, dtypes, sizes, limit in TARGETS:
        ratios = [
            r["ratio_to_floor"]
            for r in records
            if r.get("contender") == contender
            and r["layout"] in layouts
            and r["dtype"] in dtypes
            and r["size"] in sizes
            and "ratio_to_floor" in r
        ]
        if ratios:
            rows.append((what, limit, min(ratios), max(ratios), len(ratios)))
    return rows


def print_targets(records):
    print("\ntargets against the floor: ratio measured, lowest-highest")
    for what, limit, low, high, cells in check(records):
        if limit is None:
            print(f"  {what:<52}         {low:.2f}-{high:.2f}x over {cells} cells")
            continue
        verdict = "met" if high <= limit else "NOT met"
        print(f"  {what:<52} <= {limit:g}x: {low:.2f}-{high:.2f}x over {cells} "
              f"cells: {verdict}")  # fmt: skip
    for line in ELSEWHERE:
        print(f"  {line}")
