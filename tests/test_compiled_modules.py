"""Every compiled module has a matching .pyi stub (mypy.stubtest) and runnable docstring examples.

pytest collects the examples of the pure-Python modules itself (--doctest-modules).
"""
import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import fastcalc

PACKAGE = Path(fastcalc.__file__).parent
# dotted names below fastcalc ("_roots", "fitting._kernel"), subpackages included
COMPILED = sorted(".".join(p.relative_to(PACKAGE).with_suffix("").parts)
                  for p in PACKAGE.rglob("*.pyx"))


def test_every_compiled_module_has_a_stub():
    assert COMPILED, "no Cython sources found next to the package"
    missing = [name for name in COMPILED
               if not (PACKAGE / name.replace(".", "/")).with_suffix(".pyi").exists()]
    assert not missing
    assert (PACKAGE / "py.typed").exists()


def test_stubs_match_the_compiled_modules():
    pytest.importorskip("mypy", reason="mypy (in the test extra) runs stubtest")
    allowlist = Path(__file__).with_name("stubtest_allowlist.txt")
    modules = [f"fastcalc.{name}" for name in COMPILED]
    run = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file",
         str(PACKAGE.parent / "pyproject.toml"), "--allowlist", str(allowlist), *modules],
        capture_output=True, text=True, cwd=PACKAGE.parent,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("name", COMPILED)
def test_compiled_module_docstring_examples(name):
    module = importlib.import_module(f"fastcalc.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0
