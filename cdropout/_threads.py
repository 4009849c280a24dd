"""The n_threads argument: how many OpenMP threads a call uses.

None is OpenMP's default, at most the CPUs this process may use (cdropout._runtime
counts them); a negative count counts back from them. A child forked after import runs
on one thread (cdropout._runtime). The result never depends on the count.
"""

import numbers

from cdropout._runtime import MAX_THREADS, USABLE_CPUS, kernel

# n_threads above this is refused: OpenMP takes a C int.
N_THREADS_LIMIT = 2**31 - 1


def resolve_threads(n_threads):
    """The thread count for one call.

    None: OpenMP's default (OMP_NUM_THREADS, or a threadpoolctl limit set in the calling
    thread), at most the usable CPUs; a positive int: that many, at most MAX_THREADS
    (more than the CPUs oversubscribe them: allowed, seldom faster); a negative int
    counts back from the usable CPUs, -1 being all of them.
    """
    if n_threads is None:
        count = min(kernel.default_threads(), USABLE_CPUS)
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
    return 1 if kernel.in_forked_child() or not kernel.openmp_enabled() else count
