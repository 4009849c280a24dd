"""The figure: ns per element against size, float32, p = 0.5, one panel per layout."""

from cdropout._timing import LAYOUTS


def check():
    """Stop at once, not after the grid's minutes, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit(
            'the figure needs matplotlib: pip install -e ".[bench]"'
        ) from None


def plot(records, path, dtype="float32", p=0.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [
        r for r in records if "seconds" in r and r["dtype"] == dtype and r["p"] == p
    ]
    fig, axes = plt.subplots(1, len(LAYOUTS), figsize=(18, 5), sharey=True)
    # one colour per contender, the same in every panel (the default cycle has 10,
    # fewer than the contenders)
    names = [n for n in dict.fromkeys(r["contender"] for r in timed) if n != "floor"]
    colours = dict(zip(names, plt.cm.tab20.colors, strict=False))
    for ax, layout in zip(axes, LAYOUTS, strict=True):
        rows = [r for r in timed if r["layout"] == layout]
        for name in dict.fromkeys(r["contender"] for r in rows):
            points = sorted(
                (r["size"], r["ns_per_element"]) for r in rows if r["contender"] == name
            )
            style = {"color": "k", "linestyle": "--"} if name == "floor" else {
                "color": colours[name], "marker": "o"}  # fmt: skip
            ax.loglog(*zip(*points, strict=True), label=name, markersize=3, **style)
        ax.set_title(f"{dtype}, p={p}, {layout}")
        ax.set_xlabel("elements")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ns per element")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
