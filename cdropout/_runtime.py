"""cdropout's run-time state, set once at import, top to bottom, and what
show_config() prints of it:

1. the compiled kernel, imported with GNU OpenMP's idle spin shortened while libgomp
   loads (set_spin below says why and how);
2. the CPUs this process may use, the most threads a call starts, and serial work in
   children forked after import (GNU OpenMP hangs in them);
3. the ISA path (the best the CPU runs, capped by CDROPOUT_ISA) and the out-of-cache
   prefetch (by CPU vendor, or CDROPOUT_PREFETCH).

Later, only two things change it: the first bfloat16 array cdropout sees lets the fast
path take bfloat16 (take_bfloat16: importing ml_dtypes at import would cost time), and
a benchmark may switch the ISA path for a while with isa(), which restores the previous
one. Every ISA path, prefetch and thread count gives the same bytes.
"""

import contextlib
import math
import os
import platform
import sys

import numpy as np

from cdropout._version import __version__

# -- 1. the kernel, with a short idle spin ------------------------------------------

# After a parallel region GNU OpenMP's idle threads spin for GOMP_SPINCOUNT pauses
# (300,000 by default, milliseconds of a core) before they sleep, on a core that the
# next operation, often another library's thread pool, may need; 1,000 is libgomp's own
# count when it has more threads than CPUs (bench/NOTES.md, "Idle OpenMP threads").
SPIN_COUNT = "1000"
_USER_SPIN_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def _mapped_libgomp():
    """The libgomp files mapped into this process, or None where that cannot be read
    (not Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            return {line.split()[-1] for line in maps if "libgomp" in line}
    except OSError:
        return None


def _import_kernel():
    """Import cdropout._kernel with GOMP_SPINCOUNT set while libgomp loads (libgomp
    reads it once, then), and restore the environment at once, so that other OpenMP
    runtimes (PyTorch's own copy, say) and child processes see the user's. A
    GOMP_SPINCOUNT or OMP_WAIT_POLICY that the user set is left alone. Returns the
    kernel and how the spin was decided, for show_config()."""
    user = {k: os.environ[k] for k in _USER_SPIN_SETTINGS if k in os.environ}
    before = _mapped_libgomp()
    if not user:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        from cdropout import _kernel
    finally:
        if not user:
            del os.environ["GOMP_SPINCOUNT"]
    after = _mapped_libgomp()
    if not _kernel.openmp_enabled():
        return _kernel, "none (serial build)"
    if user:
        return _kernel, ", ".join(f"{k}={v}" for k, v in user.items()) + " (the user's)"
    if before is None or after is None:  # not Linux: which runtime loaded is unknown
        return _kernel, (
            f"GOMP_SPINCOUNT={SPIN_COUNT} while the kernel loaded (GNU OpenMP only)"
        )
    if after - before:
        spin = f"GOMP_SPINCOUNT={SPIN_COUNT} (set by cdropout as libgomp loaded)"
        return _kernel, spin
    if after:  # another module loaded the same libgomp first: its setting applies
        return _kernel, (
            "libgomp's own (it was loaded before cdropout: by default its idle "
            f"threads spin for milliseconds; set GOMP_SPINCOUNT={SPIN_COUNT} before "
            "that import)"
        )
    return _kernel, "not GNU OpenMP (GOMP_SPINCOUNT does not apply)"


kernel, SPIN = _import_kernel()

# -- 2. threads ----------------------------------------------------------------------

# More threads than this are never started, whatever n_threads asks (the kernel also
# never starts more threads than the call has pairs of blocks): thousands of threads
# made GNU OpenMP abort the process ("Thread creation failed").
MAX_THREADS = 256


def _cgroup_cpu_quota(root="/sys/fs/cgroup"):
    """The CPU quota of this process's cgroup, rounded up to whole CPUs, or None."""
    candidates = (
        (f"{root}/cpu.max", None),  # cgroup v2: "quota period" or "max period"
        (f"{root}/cpu/cpu.cfs_quota_us", f"{root}/cpu/cpu.cfs_period_us"),  # v1
    )
    for quota_path, period_path in candidates:
        try:
            with open(quota_path) as file:
                fields = file.read().split()
            if period_path is not None:
                with open(period_path) as file:
                    fields = fields[:1] + file.read().split()[:1]
        except OSError:
            continue
        if len(fields) < 2 or fields[0] in ("max", "-1"):
            return None
        try:
            quota, period = int(fields[0]), int(fields[1])
        except ValueError:
            return None
        return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None
    return None


def usable_cpus():
    """The CPUs this process may run on, as scikit-learn counts them: its affinity
    mask, capped by a cgroup CPU quota (a container's), not the machine's cores."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13
        count = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count()
    count = count or 1
    quota = _cgroup_cpu_quota()
    return min(count, quota) if quota else count


# Read once (a process's CPUs seldom change while it runs); the compiled fast path reads
# the same number.
USABLE_CPUS = usable_cpus()
kernel.set_thread_limits(USABLE_CPUS, MAX_THREADS)
os.register_at_fork(after_in_child=kernel.mark_forked_child)

# -- 3. the ISA path and the prefetch --------------------------------------------------

ISA_CHOICES = ("auto", *kernel.ISA_LEVELS)
PREFETCH_CHOICES = ("auto", "far", "near")


def _environment_choice(name, choices):
    value = os.environ.get(name, "auto").strip().lower() or "auto"
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


ISA_PATH = kernel.use_isa(
    kernel.ISA_LEVELS.get(
        _environment_choice("CDROPOUT_ISA", ISA_CHOICES),
        max(kernel.ISA_LEVELS.values()),
    )
)
PREFETCH = kernel.use_prefetch(
    _environment_choice("CDROPOUT_PREFETCH", PREFETCH_CHOICES)
)


@contextlib.contextmanager
def isa(level):
    """Run the kernel on the best ISA path at most `level` (a value of
    kernel.ISA_LEVELS) inside the block, then go back to the path in use before: for
    benchmarks, which time each path in one process. Process-wide: not for code that
    runs calls in other threads meanwhile (their bytes are the same on every path, their
    speed is not)."""
    before = kernel.isa_level()
    kernel.use_isa(level)
    try:
        yield kernel.isa_path()
    finally:
        kernel.use_isa(before)


def take_bfloat16(dtype):
    """Let the compiled fast path take arrays of this bfloat16 dtype from now on (the
    first one cdropout sees goes through the checked path, which calls this)."""
    kernel.register_bfloat16(dtype.num)


# -- show_config ---------------------------------------------------------------------


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
    return kernel.openmp_enabled()


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


def config() -> dict[str, str]:
    """The configuration as a dict of strings (what show_config prints)."""
    omp = kernel.openmp_enabled()
    return {
        "cdropout": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": f"{platform.machine()}, {USABLE_CPUS} usable CPUs "
        f"({os.cpu_count()} logical cores)",
        "openmp": "on" if omp else "off (serial build; identical results)",
        "default threads": str(min(kernel.default_threads(), USABLE_CPUS))
        if omp
        else "1",
        "openmp idle spin": SPIN,
        "isa path": f"{kernel.isa_path()} (best on this CPU: {kernel.best_isa()}; "
        "CDROPOUT_ISA caps it)",
        "cpu": cpu_model(),
        "prefetch": f"{kernel.prefetch_kind()} (CDROPOUT_PREFETCH: far, near, auto)",
        "generator": (
            f"xoshiro128++, {kernel.LANES} lanes, blocks of {kernel.BLOCK} elements"
        ),
    }


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
