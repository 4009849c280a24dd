"""Issue 12's targets, restated against the floor, checked on the grid's records.

Each target: which cells (contender, layout, sizes), the most its ratio to the floor
may be, and the range measured. The floor is np.multiply(x, s, out=x) in place and
np.multiply(x, s) for a new output; every ratio is a minimum of interleaved repeats.
Targets the grid does not measure (all threads against the parallel floor:
bench/floor.py; float16 and bfloat16) are named with where to look.
"""

TARGETS = [  # (what, contender, in place?, sizes, at most)
    ("1 thread, in place, 1e6-1e8, best path", "cdropout 1t", True,
     (10**6, 10**7, 10**8), 1.1),
    ("1 thread, in place, 1e6-1e8, AVX2 path", "cdropout avx2", True,
     (10**6, 10**7, 10**8), 1.1),
    ("1 thread, in place, in cache (1e4-1e5), best path", "cdropout 1t", True,
     (10**4, 10**5), 1.3),
    ("1 thread, new output, 1e6-1e8, best path", "cdropout 1t", False,
     (10**6, 10**7, 10**8), 1.1),
]  # fmt: skip
ELSEWHERE = [
    "all threads at 1e8: at least 0.9x the speed of an OpenMP parallel floor "
    "(python bench/floor.py --threads 1 N)",
    "into a preallocated out=, and float16/bfloat16 against a float32 round trip: "
    "not in the grid yet",
]


def check(records):
    """(what, at most, lowest ratio, highest ratio, cells) per target with cells."""
    rows = []
    for what, contender, in_place, sizes, limit in TARGETS:
        ratios = [
            r["ratio_to_floor"]
            for r in records
            if r.get("contender") == contender
            and r["in_place"] == in_place
            and r["size"] in sizes
            and "ratio_to_floor" in r
        ]
        if ratios:
            rows.append((what, limit, min(ratios), max(ratios), len(ratios)))
    return rows


def print_targets(records):
    print("\ntargets against the floor (issue 12): ratio measured, lowest-highest")
    for what, limit, low, high, cells in check(records):
        verdict = "met" if high <= limit else "NOT met"
        print(f"  {what:<52} <= {limit:.1f}x: {low:.2f}-{high:.2f}x over {cells} "
              f"cells: {verdict}")  # fmt: skip
    for line in ELSEWHERE:
        print(f"  {line}")
