"""The n_threads argument: how many OpenMP threads a call uses, and serial work in
forked processes.

The count follows scikit-learn's rule: the CPUs this process may run on (its affinity
mask and a cgroup CPU quota, as in a container), not the machine's core count. The
result never depends on it.

GNU OpenMP is not fork-safe: a child forked after the parent ran a parallel region (as
multiprocessing's fork start method and data-loader workers do) hangs in its first
parallel region. Such a child runs every call on one thread, with identical results.
"""

import math
import numbers
import os

from cdropout import _kernel

# More threads than this are never started, whatever n_threads asks (the kernel also
# never starts more threads than the call has pairs of blocks): thousands of threads
# made GNU OpenMP abort the process ("Thread creation failed").
MAX_THREADS = 256
# n_threads above this is refused: OpenMP takes a C int.
N_THREADS_LIMIT = 2**31 - 1


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
    """The CPUs this process may run on: its affinity mask, capped by a cgroup quota."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13
        count = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count()
    count = count or 1
    quota = _cgroup_cpu_quota()
    return min(count, quota) if quota else count


# Read once, at import (a process's CPUs seldom change while it runs); the compiled fast
# path reads the same number.
USABLE_CPUS = usable_cpus()
_kernel.set_thread_limits(USABLE_CPUS, MAX_THREADS)
os.register_at_fork(after_in_child=_kernel.mark_forked_child)


def resolve_threads(n_threads):
    """The thread count for one call.

    None: OpenMP's default (OMP_NUM_THREADS, or a threadpoolctl limit set in the calling
    thread), at most the usable CPUs; a positive int: that many, at most MAX_THREADS
    (more than the CPUs oversubscribe them: allowed, seldom faster); a negative int
    counts back from the usable CPUs, -1 being all of them.
    """
    if n_threads is None:
        count = min(_kernel.default_threads(), USABLE_CPUS)
    elif type(n_threads) is int and 0 < n_threads <= MAX_THREADS:  # without ABC checks
        count = n_threads
    elif isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(
            f"n_threads must be None or an int, got {type(n_threads).__name__}"
        )
    elif n_threads > N_THREADS_LIMIT:
        raise ValueError(
            f"n_threads must be at most 2**31 - 1, got {n_threads} (more than "
            f"{MAX_THREADS} are never started)"
        )
    elif n_threads > 0:
        count = min(int(n_threads), MAX_THREADS)
    elif n_threads < 0:
        count = USABLE_CPUS + 1 + int(n_threads)
        if count < 1:
            raise ValueError(
                f"n_threads must be None, a positive int or a negative int in "
                f"[-{USABLE_CPUS}, -1] for the {USABLE_CPUS} CPUs this process may "
                f"use, got {n_threads}"
            )
    else:
        raise ValueError(
            "n_threads must be None, a positive int or a negative int "
            "(-1 = all usable CPUs), got 0"
        )
    return 1 if _kernel.in_forked_child() or not _kernel.openmp_enabled() else count
