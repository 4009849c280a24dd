"""cdropout's run-time state (cdropout._runtime): set once at import, switched only for
a while by a benchmark, and never changed behind the user's back."""

import os
import subprocess
import sys

import cdropout
from cdropout import _kernel, _runtime


def test_the_isa_context_restores_the_path_in_use_not_the_best():
    # CDROPOUT_ISA=baseline caps the path at import; a benchmark's switch to another
    # path and back returns to the capped one (it used to restore the best)
    code = (
        "from cdropout import _runtime, _kernel; "
        "print(_kernel.isa_path()); "
        "ctx = _runtime.isa(_kernel.ISA_LEVELS['avx512']); inside = ctx.__enter__(); "
        "print(inside); ctx.__exit__(None, None, None); print(_kernel.isa_path())"
    )
    env = {**os.environ, "CDROPOUT_ISA": "baseline"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, cwd="/")  # fmt: skip
    before, inside, after = run.stdout.split()
    assert before == after == "baseline"
    assert inside == _kernel.best_isa()


def test_the_tours_speed_table_leaves_the_process_as_it_was(capsys):
    # it times PyTorch on one thread and cdropout's other ISA paths: both are put back
    from cdropout.__main__ import speed_table

    threads = _runtime.kernel.default_threads()
    path = _kernel.isa_path()
    torch_threads = _torch_threads()
    speed_table(sizes=(1000,))
    assert _kernel.isa_path() == path
    assert _runtime.kernel.default_threads() == threads
    assert _torch_threads() == torch_threads
    assert "speed" in capsys.readouterr().out


def _torch_threads():
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def test_the_configuration_names_the_usable_cpus_and_the_version():
    config = _runtime.config()
    assert config["cdropout"] == cdropout.__version__
    assert f"{_runtime.USABLE_CPUS} usable CPUs" in config["machine"]
