"""The n_threads argument, and serial work in forked processes.

GNU OpenMP is not fork-safe: a child forked after the parent ran a parallel region (as
multiprocessing's fork start method and data-loader workers do) hangs in its first
parallel region. Such a child runs every call on one thread, with identical results.
"""

import numbers
import os

from cdropout import _kernel

os.register_at_fork(after_in_child=_kernel.mark_forked_child)


def resolve_threads(n_threads):
    """The thread count for one call.

    None: OpenMP's default (OMP_NUM_THREADS, threadpoolctl, else all cores); a positive
    int: that many (more than the cores oversubscribe them: allowed, seldom faster); a
    negative int counts back from the core count, -1 being all cores.
    """
    if n_threads is None:
        count = _kernel.default_threads()
    elif isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(
            f"n_threads must be None or an int, got {type(n_threads).__name__}"
        )
    elif n_threads > 0:
        count = int(n_threads)
    elif n_threads < 0:
        cores = os.cpu_count() or 1
        count = cores + 1 + int(n_threads)
        if count < 1:
            raise ValueError(
                f"n_threads must be None, a positive int or a negative int in "
                f"[-{cores}, -1] on this machine of {cores} cores, got {n_threads}"
            )
    else:
        raise ValueError(
            "n_threads must be None, a positive int or a negative int "
            "(-1 = all cores), got 0"
        )
    return 1 if _kernel.in_forked_child() or not _kernel.openmp_enabled() else count
