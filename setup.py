"""Build of cdropout's one extension, cdropout._kernel.

Environment switches:
  CDROPOUT_NO_OPENMP=1  build without OpenMP (serial; identical results)
  CDROPOUT_DEBUG=1      Cython boundscheck/wraparound on, -O0 -g
Never -march=native (the wheel must run on any x86-64: src/paths.h dispatches at run
time) and never -ffast-math (it would break bit-for-bit equality with the reference).

Compilers: gcc builds every ISA path (SSE2/AVX2/AVX-512, chosen at run time); clang
builds the portable baseline path alone (the dispatch uses gcc's target pragmas), with
the same bytes; MSVC cannot build the kernel (it is written with GNU C vector
extensions). A compiler that cannot compile and link an OpenMP program fails the build,
saying how to build serially; the probe is never run, so cross-compiling works.
"""

import glob
import os
import shutil
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
    int probe(void) {
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


def the_compiler():
    compiler = new_compiler()
    customize_compiler(compiler)
    return compiler


def openmp_flags(compiler):
    """Compile and link (never run: cross-compiling must work) a tiny OpenMP program,
    as a shared object linked as the extension will be (LDSHARED, LDFLAGS: a sanitizer
    build's flags included); its (compile, link) flags, or the compiler's error."""
    flag = "-fopenmp"
    tmp = tempfile.mkdtemp(prefix="cdropout-omp-")
    try:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write(OPENMP_PROBE)
        objects = compiler.compile([source], output_dir=tmp, extra_postargs=[flag])
        compiler.link_shared_object(objects, os.path.join(tmp, "probe.so"),
                                    extra_postargs=[flag])  # fmt: skip
        return [flag], [flag]
    except Exception as exc:  # any failure means: no usable OpenMP
        return exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


debug = _flag("CDROPOUT_DEBUG")
# -ffp-contract=off: gcc would otherwise fuse a * x + b into one FMA on the paths that
# have it, and round differently from NumPy's separate multiply and add.
# -fno-math-errno: sqrt compiles to one instruction (no errno is ever read).
compile_args = (["-O0", "-g"] if debug else ["-O3"]) + [
    "-ffp-contract=off",
    "-fno-math-errno",
]
# (not stripped here: .ci/check_vectorised reads the ISA paths' symbols; the release
# wheel is stripped by auditwheel repair --strip)
link_args = []
compiler = the_compiler()
if compiler.compiler_type == "msvc":
    sys.exit(
        "cdropout: MSVC cannot build cdropout's kernel, which is written with GNU C "
        "vector extensions: build with gcc (or clang, baseline path only)."
    )
if _flag("CDROPOUT_NO_OPENMP"):
    print("cdropout: CDROPOUT_NO_OPENMP=1, building without OpenMP (serial).")
else:
    flags = openmp_flags(compiler)
    if isinstance(flags, Exception):
        sys.exit(
            "cdropout: this compiler cannot compile and link an OpenMP program "
            f"({flags}). cdropout's threads need OpenMP: install it (gcc: libgomp; "
            "clang: libomp), or build a serial cdropout, with identical results on "
            "one thread, with CDROPOUT_NO_OPENMP=1 pip install ."
        )
    compile_args += flags[0]
    link_args += flags[1]

extension = Extension(
    "cdropout._kernel",
    ["cdropout/_kernel.pyx"],
    include_dirs=[np.get_include(), "cdropout/src"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    depends=[*sorted(glob.glob("cdropout/src/*.h")), "cdropout/_kernel.pxd"],
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
