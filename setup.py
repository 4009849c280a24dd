"""Build of cdropout's one extension, cdropout._kernel.

Environment switches:
  CDROPOUT_NO_OPENMP=1  build without OpenMP (serial; identical results)
  CDROPOUT_DEBUG=1      Cython boundscheck/wraparound on, -O0 -g
Never -march=native (the wheel must run on any x86-64: _xorshift.h dispatches at run
time) and never -ffast-math (it would break bit-for-bit equality with the reference).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools._distutils.ccompiler import new_compiler
from setuptools._distutils.sysconfig import customize_compiler

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d\\n", n >= 1 && omp_get_max_threads() >= 1);
        return 0;
    }
    """
)


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


def openmp_flags():
    """Compile and run a tiny OpenMP program; its flags if it works, else None."""
    compiler = new_compiler()
    customize_compiler(compiler)
    flag = "/openmp" if compiler.compiler_type == "msvc" else "-fopenmp"
    tmp = tempfile.mkdtemp(prefix="cdropout-omp-")
    try:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write(OPENMP_PROBE)
        objects = compiler.compile([source], output_dir=tmp, extra_postargs=[flag])
        exe = os.path.join(tmp, "probe")
        link_flags = [] if compiler.compiler_type == "msvc" else [flag]
        compiler.link_executable(objects, exe, extra_postargs=link_flags)
        ran = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        if ran.returncode == 0 and ran.stdout.strip() == "1":
            return [flag], link_flags
    except Exception as exc:  # any failure means: no usable OpenMP
        print(f"OpenMP probe failed: {exc}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return None


debug = _flag("CDROPOUT_DEBUG")
# -ffp-contract=off: gcc would otherwise fuse a * x + b into one FMA on the paths that
# have it, and round differently from NumPy's separate multiply and add.
# -fno-math-errno: sqrt compiles to one instruction (no errno is ever read).
compile_args = (["-O0", "-g"] if debug else ["-O3"]) + [
    "-ffp-contract=off",
    "-fno-math-errno",
]
link_args = []
if _flag("CDROPOUT_NO_OPENMP"):
    print("cdropout: CDROPOUT_NO_OPENMP=1, building without OpenMP (serial).")
else:
    flags = openmp_flags()
    if flags is None:
        print(
            "WARNING: cdropout: this compiler cannot build and run an OpenMP program; "
            "building without OpenMP. Results are identical, only single-threaded.",
            file=sys.stderr,
        )
    else:
        compile_args += flags[0]
        link_args += flags[1]

extension = Extension(
    "cdropout._kernel",
    ["cdropout/_kernel.pyx"],
    include_dirs=[np.get_include(), "cdropout"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    depends=[
        "cdropout/_xorshift.h",
        "cdropout/_lanes.h",
        "cdropout/_select.h",
        "cdropout/_gauss.h",
        "cdropout/_bfloat16.h",
        "cdropout/_kernel.pxd",
    ],
)

setup(
    ext_modules=cythonize(
        [extension],
        compiler_directives={
            "language_level": 3,
            "binding": True,
            "boundscheck": debug,
            "wraparound": debug,
            "initializedcheck": debug,
            "cdivision": True,
        },
    )
)
