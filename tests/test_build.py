"""The build fails loudly without OpenMP, and says how to build serially."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not (ROOT / "setup.py").exists(), reason="needs the source tree")
def test_a_compiler_without_openmp_fails_the_build_naming_the_serial_switch(tmp_path):
    pytest.importorskip("Cython", reason="the build tools are not installed here")
    # a compiler that refuses -fopenmp; the build stops before compiling anything
    fake = tmp_path / "cc"
    refuse = 'for a in "$@"; do [ "$a" = "-fopenmp" ] && exit 1; done'
    fake.write_text(f'#!/bin/sh\n{refuse}\nexec cc "$@"\n')
    fake.chmod(0o755)
    env = {**os.environ, "CC": str(fake), "LDSHARED": f"{fake} -shared"}
    env.pop("CDROPOUT_NO_OPENMP", None)
    run = subprocess.run([sys.executable, "setup.py", "build_ext", "--dry-run"],
                         cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode != 0
    assert "cannot compile and link an OpenMP program" in run.stderr
    assert "CDROPOUT_NO_OPENMP=1" in run.stderr
