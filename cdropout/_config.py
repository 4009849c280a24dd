"""Build and run-time configuration: the ISA path, OpenMP, and show_config().

The ISA path is chosen once, at import: the best the CPU runs, capped by the environment
variable CDROPOUT_ISA (auto, avx512, avx2 or baseline), so that tests and benchmarks can
force a lower path. Every path gives the same bytes.
"""

import os
import platform
import sys

import numpy as np

from cdropout import _kernel, _spin

ISA_CHOICES = ("auto", *_kernel.ISA_LEVELS)


def _choose_isa():
    requested = os.environ.get("CDROPOUT_ISA", "auto").strip().lower() or "auto"
    if requested not in ISA_CHOICES:
        raise ValueError(
            f"CDROPOUT_ISA must be one of {', '.join(ISA_CHOICES)}, got {requested!r}"
        )
    level = _kernel.ISA_LEVELS.get(requested, max(_kernel.ISA_LEVELS.values()))
    return _kernel.use_isa(level)


ISA_PATH = _choose_isa()

PREFETCH_CHOICES = ("auto", "far", "near")


def _choose_prefetch():
    """The out-of-cache prefetch: by vendor (auto), or forced by CDROPOUT_PREFETCH."""
    requested = os.environ.get("CDROPOUT_PREFETCH", "auto").strip().lower() or "auto"
    if requested not in PREFETCH_CHOICES:
        raise ValueError(
            f"CDROPOUT_PREFETCH must be one of {', '.join(PREFETCH_CHOICES)}, "
            f"got {requested!r}"
        )
    return _kernel.use_prefetch(requested)


PREFETCH = _choose_prefetch()


def openmp_enabled() -> bool:
    """Whether cdropout was built with OpenMP.

    Returns
    -------
    bool
        False for a serial build (no compiler support, or ``CDROPOUT_NO_OPENMP=1``):
        every call then runs on one thread, with the same results.

    Examples
    --------
    >>> import cdropout
    >>> cdropout.openmp_enabled() in (True, False)
    True
    """
    return _kernel.openmp_enabled()


def config() -> dict[str, str]:
    """The configuration as a dict of strings (what show_config prints)."""
    from cdropout import __version__

    omp = _kernel.openmp_enabled()
    return {
        "cdropout": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} logical cores",
        "openmp": "on" if omp else "off (serial build; identical results)",
        "default threads": str(_kernel.default_threads()) if omp else "1",
        "openmp idle spin": _spin.SPIN,
        "isa path": f"{_kernel.isa_path()} (best on this CPU: {_kernel.best_isa()})",
        "cpu": cpu_model(),
        "prefetch": f"{_kernel.prefetch_kind()} (CDROPOUT_PREFETCH: far, near, auto)",
        "generator": (
            f"xoshiro128++, {_kernel.LANES} lanes, blocks of {_kernel.BLOCK} elements"
        ),
    }


def cpu_model() -> str:
    """The CPU's model name (and family/model numbers), for every speed figure."""
    try:
        with open("/proc/cpuinfo") as file:
            fields = dict(
                line.split(":", 1) for line in file.read().split("\n\n")[0].splitlines()
                if ":" in line
            )
    except OSError:
        return platform.processor() or platform.machine()
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    name = fields.get("model name", platform.machine())
    family, model = fields.get("cpu family", "?"), fields.get("model", "?")
    return f"{name} (family {family}, model {model})"


def show_config() -> None:
    """Print the version, OpenMP (status, idle spin), default threads and ISA path.

    Examples
    --------
    >>> import cdropout
    >>> cdropout.show_config()  # doctest: +ELLIPSIS
    cdropout ...
    """
    for name, value in config().items():
        print(f"{name:<16} {value}")
