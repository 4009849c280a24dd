"""Timing in one process, interleaved, minimum of repeats, and the bytes a call
allocates: shared by the tour's speed table (python -m cdropout speed), the benchmark
suite (bench/run.py) and the memory tests."""

import contextlib
import time
import tracemalloc

import numpy as np

import cdropout
from cdropout import _kernel, _runtime


class Contender:
    """One timed call; `context`, if given, makes a context manager that each timing of
    it runs in, untimed (an ISA path, a thread count)."""

    def __init__(self, name, run, context=None):
        self.name, self.run, self.context = name, run, context


@contextlib.contextmanager
def torch_threads(count):
    """PyTorch's intra-op threads set to `count` inside the block, and restored after:
    timing PyTorch on one thread leaves the process as it was."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torch_dropout():
    """PyTorch's CPU dropout as run(x, p, in_place), or None when torch is not
    installed. Time it inside torch_threads(1) for one thread."""
    try:
        import torch
    except ImportError:
        return None
    return lambda x, p, in_place: torch.nn.functional.dropout(
        torch.from_numpy(x), p, True, inplace=in_place
    )


# The peers the benchmark times when they are installed, and how to install them.
MISSING_PEERS = {"torch": "pip install torch==2.13.0", "jax": "pip install jax"}


def peer_versions():
    """The installed peers and their versions."""
    found = {}
    for name in MISSING_PEERS:
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            pass
    return found


def peers():
    """Each installed peer's dropout as run(x, p, in_place), by name: PyTorch eager and
    compiled (inductor, dynamic shapes, compiled at its first call of each p and
    layout), and JAX's jit (bernoulli then where, on the array converted once; JAX
    arrays are immutable, so "in place" is the same new array). Time PyTorch inside
    torch_threads(1) for one thread."""
    found = {}
    eager = torch_dropout()
    if eager is not None:
        import torch

        found["PyTorch"] = eager
        # a compilation per (dtype, p, layout) of the grid: 12 of them, past dynamo's
        # default limit of 8, after which it would run the eager function, unsaid
        torch._dynamo.config.recompile_limit = max(
            torch._dynamo.config.recompile_limit, 64
        )
        compiled = torch.compile(
            lambda t, p, in_place: torch.nn.functional.dropout(t, p, True, in_place),
            dynamic=True,
        )
        found["PyTorch compiled"] = lambda x, p, in_place: compiled(
            torch.from_numpy(x), p, in_place
        )
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return found

    @jax.jit
    def jax_dropout(key, x, p):
        keep = jax.random.bernoulli(key, 1.0 - p, x.shape)
        return jnp.where(keep, x / (1.0 - p), 0.0)

    key = jax.random.key(0)
    on_device = {}  # the array as JAX holds it, converted once, not on every call

    def jax_run(x, p, in_place):
        if on_device.get("source") is not x:
            on_device.update(source=x, array=jnp.asarray(x))
        return jax_dropout(key, on_device["array"], p).block_until_ready()

    found["JAX jit"] = jax_run
    return found


# Where the result goes: into x, into a preallocated array reused call after call, or
# into a new array each call.
LAYOUTS = ("in place", "out=", "new output")
# In place with each contender's calls in a row (best_times(back_to_back=True)), the
# layout of the benchmark's in-cache cells.
BACK_TO_BACK = "in place, back to back"


def contenders(
    x, p, layout, *, threads=(1,), isa_paths=(), recipe=True, reference=False,
    peers=None, counter=False,
):
    """The contenders on one array in one of LAYOUTS, the floor first. cdropout runs
    its NumPy default, the xoshiro stream; with `counter`, also the counter stream on
    one thread ("cdropout counter 1t") and on each of `isa_paths`.

    The floor is np.multiply(x, s) written where the layout writes (out=x, out=a
    preallocated array, a new array): the memory traffic of any dropout, and for float16
    and bfloat16 a float32 round trip per element (NumPy's and ml_dtypes' multiply
    compute in float32). In-place calls reuse x, whose values stay valid floats (dropout
    of dropout); products grow to inf, which runs as fast. The recipe (left out with
    recipe=False: it draws float32 or float64 only), the reference and the peers have
    no out=: they are left out of that layout. PyTorch's peers run on one thread.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    scale = x.dtype.type(1 / (1 - p))
    out = {"in place": x, "out=": np.empty_like(x), "new output": None}[layout]
    rng = np.random.default_rng(0)

    def floor():
        return np.multiply(x, scale, out=out)  # out=None: a new array

    found = [Contender("floor", floor)]
    for t in threads:
        found.append(
            Contender(
                f"cdropout {t}t",
                lambda t=t: cdropout.dropout(x, p, seed=1, out=out, n_threads=t),
            )
        )
    for path in isa_paths:
        found.append(
            Contender(
                f"cdropout {path}",
                lambda: cdropout.dropout(x, p, seed=1, out=out, n_threads=1),
                context=lambda level=_kernel.ISA_LEVELS[path]: _runtime.isa(level),
            )
        )
    if counter:

        def counter_stream():
            return cdropout.dropout(x, p, seed=1, out=out, n_threads=1,
                                    stream="counter")  # fmt: skip

        found.append(Contender("cdropout counter 1t", counter_stream))
        for path in isa_paths:
            found.append(
                Contender(
                    f"cdropout counter {path}",
                    counter_stream,
                    context=lambda level=_kernel.ISA_LEVELS[path]: _runtime.isa(level),
                )
            )
    if layout == "out=":
        return found
    if recipe:
        found.append(
            Contender(
                "NumPy recipe",
                lambda: x * (rng.random(x.shape, x.dtype) >= p) / x.dtype.type(1 - p),
            )
        )
    if reference:
        found.append(
            Contender("reference", lambda: cdropout.reference.dropout(x, p, seed=1))
        )
    in_place = layout == "in place"
    for name, run in (peers or {}).items():
        one_thread = (lambda: torch_threads(1)) if name.startswith("PyTorch") else None
        found.append(Contender(name, lambda run=run: run(x, p, in_place), one_thread))
    return found


def best_times(found, size, back_to_back=False):
    """Seconds per call of each contender on `size` elements, the fastest of several
    timings, interleaved: each timing runs one contender's call several times in a row
    below 10,000 elements (as timeit does), after one untimed call, so that neither
    the timer's own ~50 ns nor one cold start weighs on calls of a few hundred
    nanoseconds.

    back_to_back=True times each contender's timings in a row instead, as a training
    loop calls a dropout on cache-resident activations: interleaved, the other
    contenders evict the array from the caches and OpenMP's idle threads go to sleep."""
    if back_to_back:
        return {c.name: best_times([c], size)[c.name] for c in found}
    number = max(1, 10**4 // size)
    repeats = int(
        max(3, min(300, 3e7 // size)) // number
    )  # about the same time per size
    best = {c.name: float("inf") for c in found}
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(repeats):
            for c in found:
                with c.context() if c.context else contextlib.nullcontext():
                    run = c.run
                    if number > 1:  # warm: the other contenders evicted its code
                        run()
                    start = time.perf_counter()
                    for _ in range(number):
                        run()
                    seconds = (time.perf_counter() - start) / number
                best[c.name] = min(best[c.name], seconds)
    return best


def peak_bytes(call):
    """Peak bytes allocated during one call of `call` (tracemalloc, which sees NumPy's
    data buffers)."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
