"""How long cdropout's idle OpenMP threads spin before they sleep, set as GNU OpenMP
(libgomp) loads with the kernel.

After a parallel region libgomp's idle threads spin for GOMP_SPINCOUNT pause
instructions (300,000 by default) before they sleep: 3.4-4.1 ms of CPU after every call
on this project's 2-core Intel Xeon VM (family 6 model 167), on a core that the next
operation may need. OpenBLAS (NumPy's matrix product) splits its work evenly over its
own threads and waits for the slowest, which waits for the spinning thread's core: in
a NumPy loop of a 256 x 512 by 512 x 512 float32 product and an in-place dropout of its
output, a step took 7.9-10.5 ms with the dropout on 2 threads against 0.5-0.6 ms on
one. With 1,000 pauses, the count libgomp itself uses when it has more threads than
CPUs, the step took 0.52-0.63 ms, and calls back to back kept their 2-thread speed at
1e6 elements (58-64 us against 134-142 on one thread). No spin at all (the passive
policy) lost that: waking a sleeping thread cost more than the second thread saved
(145 us). 10,000 pauses cost 0.3-0.6 ms per loop step. In the VM, 2-thread calls of
4e4-1e5 elements back to back sometimes pay a wake-up each with 1,000 (44-50 us
instead of 4-8); in a loop with other work between the calls they pay it anyway.

libgomp reads the variable once, when it is loaded, so it is set only while the
kernel's import loads it, and the environment is restored at once: other libraries'
OpenMP runtimes (PyTorch's own copy, say) and child processes see the user's
environment. A GOMP_SPINCOUNT or OMP_WAIT_POLICY that the user set is left alone. If
the libgomp the kernel links was already loaded by another module (a source build
linking the system libgomp, after another such module), its setting applies:
show_config() says which.
"""

import os

SPIN_COUNT = "1000"
_USER_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def _mapped_libgomp() -> set[str] | None:
    """The libgomp files mapped into this process, or None where that cannot be read
    (not Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            return {line.split()[-1] for line in maps if "libgomp" in line}
    except OSError:
        return None


def import_kernel() -> str:
    """Import cdropout._kernel with GOMP_SPINCOUNT set while libgomp loads; return how
    the spin was decided, for show_config()."""
    user = {name: os.environ[name] for name in _USER_SETTINGS if name in os.environ}
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
        return "none (serial build)"
    if user:
        return ", ".join(f"{k}={v}" for k, v in user.items()) + " (the user's)"
    if before is None or after is None:  # not Linux: which runtime loaded is unknown
        return f"GOMP_SPINCOUNT={SPIN_COUNT} while the kernel loaded (GNU OpenMP only)"
    if after - before:
        return f"GOMP_SPINCOUNT={SPIN_COUNT} (set by cdropout as libgomp loaded)"
    if after:
        return (
            "libgomp's own (it was loaded before cdropout: by default its idle "
            f"threads spin for milliseconds; set GOMP_SPINCOUNT={SPIN_COUNT} before "
            "that import)"
        )
    return "not GNU OpenMP (GOMP_SPINCOUNT does not apply)"


SPIN = import_kernel()
