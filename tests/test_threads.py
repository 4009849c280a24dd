"""Threads and processes: concurrent Python threads, the GIL released, fork safety."""

import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np
import pytest

import cdropout
from cdropout.testing import assert_same_bytes


def test_eight_python_threads_at_once_give_the_serial_results():
    arrays = [np.random.default_rng(i).standard_normal(300_000 + i) for i in range(8)]
    serial = [cdropout.dropout(a, 0.3, seed=i) for i, a in enumerate(arrays)]
    results = [[None] * 5 for _ in arrays]
    start = threading.Barrier(len(arrays))

    def work(i):
        start.wait()
        for k in range(5):
            out = np.empty_like(arrays[i])
            results[i][k] = cdropout.dropout(
                arrays[i], 0.3, seed=i, out=out, n_threads=2
            )

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(arrays))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, expected in enumerate(serial):
        for result in results[i]:
            assert_same_bytes(result, expected)


def test_the_gil_is_released_during_a_call():
    # A counter in this thread advances while another thread is inside one long call.
    x = np.ones(150_000_000, np.float32)
    inside = threading.Event()
    done = threading.Event()

    def work():
        inside.set()
        cdropout.dropout(x, 0.5, seed=1, out=x, n_threads=1)
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    inside.wait()
    count = 0
    while not done.is_set():
        count += 1
    worker.join()
    assert count > 10_000


def _child_digest(_):
    x = np.linspace(-1, 1, 2_000_003, dtype=np.float32)
    return cdropout.dropout(x, 0.4, seed=3).tobytes()


def test_a_forked_child_runs_without_hanging_and_gives_the_same_bytes():
    x = np.linspace(-1, 1, 2_000_003, dtype=np.float32)
    parent = cdropout.dropout(x, 0.4, seed=3, n_threads=2)  # a parallel region first
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        pending = pool.map_async(_child_digest, range(2))
        children = pending.get(timeout=60)  # a hang fails here instead of blocking CI
    assert all(child == parent.tobytes() for child in children)


@pytest.mark.slow
def test_ctrl_c_ends_a_long_call_within_half_a_second():
    import os
    import signal
    import subprocess
    import sys

    # The child repeats a call of about 0.6 s, each into an output whose tail holds a
    # sentinel, so that the signal lands inside a call however late the parent sends
    # it; both read CLOCK_MONOTONIC (time.monotonic, one clock for the whole system),
    # so the delay measured is the child's, not the parent's reading of a pipe.
    # Python installs its Ctrl-C handler only where SIGINT is not ignored at start, and
    # a background job (`cmd &` in a script) starts with it ignored: installed here.
    script = """
import signal, time, numpy as np, cdropout
signal.signal(signal.SIGINT, signal.default_int_handler)
x = np.ones(1_500_000_000, np.float32)
out = np.empty_like(x)
print("start", flush=True)
try:
    for calls in range(10):
        out[-1000:] = -1.0
        cdropout.dropout(x, 0.5, seed=1, out=out, n_threads=1)
    print("finished", time.monotonic(), calls)
except KeyboardInterrupt:
    untouched = bool((out[-1000:] == -1.0).all())
    print("interrupted", time.monotonic(), untouched)
"""
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CDROPOUT_ISA": "baseline"},  # about 0.6 s for a call
        cwd=os.path.dirname(__file__),
    )
    assert child.stdout.readline().strip() == "start"
    time.sleep(0.15)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    line = child.stdout.readline().split()
    child.wait(timeout=120)
    child.stdout.close()
    assert line[0] == "interrupted", line
    assert float(line[1]) - sent < 0.5
    assert line[2] == "True"  # the tail not reached: a prefix done, the rest as it was


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset")
def test_thread_counts_follow_the_cpus_this_process_may_use(tmp_path):
    # scikit-learn's rule: -1 and None count the affinity mask, not os.cpu_count()
    code = (
        "from cdropout import _runtime, _threads; "
        "print(_runtime.USABLE_CPUS, _threads.resolve_threads(-1), "
        "_threads.resolve_threads(None))"
    )
    run = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code],
                         capture_output=True, text=True, check=True,
                         cwd=tmp_path)  # fmt: skip
    assert run.stdout.split() == ["1", "1", "1"]


def test_the_cgroup_quota_caps_the_usable_cpus(tmp_path):
    from cdropout import _runtime

    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _runtime._cgroup_cpu_quota(str(tmp_path)) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _runtime._cgroup_cpu_quota(str(tmp_path)) is None
    assert _runtime._cgroup_cpu_quota(str(tmp_path / "missing")) is None


def test_gaussian_dropout_and_dropout_mask_take_n_threads():
    x = np.ones(300_000)
    for n in (1, 2, -1, None):
        assert_same_bytes(cdropout.gaussian_dropout(x, 0.3, seed=1, n_threads=n),
                          cdropout.gaussian_dropout(x, 0.3, seed=1))  # fmt: skip
        assert_same_bytes(cdropout.dropout_mask(x.shape, 0.3, seed=1, n_threads=n),
                          cdropout.dropout_mask(x.shape, 0.3, seed=1))  # fmt: skip


IDLE_SPIN = """
import os, statistics, time
import numpy as np
import cdropout
x = np.ones(2_000_000, np.float32)
burned = []
for _ in range(8):
    cdropout.dropout(x, 0.5, seed=1, out=x, n_threads=2)
    start = time.process_time()  # the CPU time of every thread of the process
    time.sleep(0.03)
    burned.append(time.process_time() - start)
spin = cdropout._runtime.config()["openmp idle spin"]
print(statistics.median(burned[1:]), os.environ.get("GOMP_SPINCOUNT"), spin)
"""


def _idle_spin(env, cwd):
    run = subprocess.run([sys.executable, "-c", IDLE_SPIN], env=env, text=True,
                         capture_output=True, check=True, cwd=cwd)  # fmt: skip
    burned, variable, spin = run.stdout.split(maxsplit=2)
    return float(burned), variable, spin.strip()


@pytest.mark.skipif(
    not cdropout.openmp_enabled() or len(os.sched_getaffinity(0)) < 2,
    reason="needs OpenMP and two CPUs",
)
def test_idle_openmp_threads_do_not_hold_a_core_after_a_call(tmp_path):
    # GNU OpenMP's idle threads spin 300,000 pauses by default: 3.4-4.1 ms of CPU after
    # each call on the Intel Xeon VM, while the process sleeps, and on a core that the
    # next operation (OpenBLAS's matrix product, say) waits for. cdropout sets a short
    # spin as its libgomp loads (0.03-0.4 ms there) and leaves the environment as it was
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}  # fmt: skip
    burned, variable, spin = _idle_spin(env, tmp_path)  # not a source tree's cdropout
    assert variable == "None"
    if "libgomp's own" in spin:  # a system libgomp that another module loaded first
        pytest.skip(spin)
    assert spin.startswith("GOMP_SPINCOUNT=1000")
    assert burned < 0.0015  # seconds of CPU while the process sleeps 30 ms
    # a spin count the user chose is the user's
    burned, variable, spin = _idle_spin({**env, "GOMP_SPINCOUNT": "2000"}, tmp_path)
    assert (variable, spin) == ("2000", "GOMP_SPINCOUNT=2000 (the user's)")


def _run_python(code, timeout=120):
    # from a neutral folder: a repository root would import its unbuilt source folder
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tempfile.gettempdir(),
    )


@pytest.mark.parametrize("n_threads", [40_000, 65_536, 2**31 - 1])
def test_a_huge_thread_count_is_capped_not_fatal(n_threads):
    # libgomp aborted the process ("Thread creation failed") or segfaulted
    result = _run_python(f"""
        import numpy as np, cdropout
        x = np.ones(1 << 16, np.float32)
        y = cdropout.dropout(x, 0.5, seed=1, n_threads={n_threads})
        z = cdropout.dropout(np.ones((1 << 16) + 1), 0.5, seed=1, offset=3,
                             n_threads={n_threads})
        assert np.array_equal(y, cdropout.reference.dropout(x, 0.5, seed=1))
        assert np.array_equal(z, cdropout.reference.dropout(np.ones(z.size), 0.5,
                                                           seed=1, offset=3))
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
