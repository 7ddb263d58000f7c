"""Build fastcalc's Cython kernels.

Every ``fastcalc/**/*.pyx`` is compiled, as the module of its dotted path (``fastcalc/fitting/
_kernel.pyx``: ``fastcalc.fitting._kernel``), with one set of directives. OpenMP is probed, not
assumed: without it the ``prange`` loops run on one thread. ``FASTCALC_DEBUG=1`` turns on bounds
checking and writes ``cython -a`` annotation HTML next to each source.
"""
import os
import sys
import tempfile
from glob import glob
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("FASTCALC_DEBUG", "0") == "1"
NO_OPENMP = os.environ.get("FASTCALC_NO_OPENMP", "0") == "1"


def openmp_flags(compiler):
    """Return (compile, link) flags that enable OpenMP, or empty lists if it does not build."""
    if NO_OPENMP or sys.platform == "win32":
        return [], []
    source = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "probe.c")
        src.write_text(source)
        try:
            objects = compiler.compile([str(src)], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=["-fopenmp"])
        except Exception:
            print("fastcalc: OpenMP not available; building single-threaded kernels")
            return [], []
    return ["-fopenmp"], ["-fopenmp"]


class BuildExtWithOpenMP(build_ext):
    def build_extensions(self):
        compile_flags, link_flags = openmp_flags(self.compiler)
        for ext in self.extensions:
            ext.extra_compile_args += compile_flags
            ext.extra_link_args += link_flags
        super().build_extensions()


extensions = [
    Extension(
        ".".join(Path(path).with_suffix("").parts),
        [path],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_25_API_VERSION")],
        extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
    )
    for path in sorted(glob("fastcalc/**/*.pyx", recursive=True))
]

setup(
    ext_modules=cythonize(
        extensions,
        annotate=DEBUG,
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": DEBUG,
            "embedsignature": True,
        },
    ),
    cmdclass={"build_ext": BuildExtWithOpenMP},
)
