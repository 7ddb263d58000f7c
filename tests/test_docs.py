"""The documentation's code runs, so that the docs cannot go stale.

- Every ``.. code-block:: python`` of the user guide and the front page runs: a page's blocks in
  order, in one namespace (literal ``::`` blocks and other languages are illustrations).
- Every gallery script runs at CI size (``FASTCALC_DOCS_SMALL=1``) and checks its own numbers.
- The API pages cover every public name, and the benchmark page renders the committed JSON.
- ``sphinx-build -W`` builds the whole site, gallery included, when Sphinx is installed.
"""
import importlib
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
# the front page and the user guide
PAGES = sorted([DOCS / "index.rst", *DOCS.glob("user_guide/*.rst")])
EXAMPLES = sorted(DOCS.glob("examples/plot_*.py"))
BLOCK = re.compile(r"^\.\. code-block:: python\n\n((?:(?: {3}.*)?\n)+)", re.M)
# Packages only some pages need; the test extra installs them, a bare install may not.
OPTIONAL = {"lmfit", "zarr", "numdifftools", "numba", "dask", "distributed"}

sys.path.insert(0, str(DOCS / "_ext"))
api_lists = importlib.import_module("api_lists")
bench_page = importlib.import_module("bench_page")


def python_blocks(page):
    return ["\n".join(line[3:] for line in block.splitlines())
            for block in BLOCK.findall(page.read_text(encoding="utf-8"))]


def test_the_pages_and_the_gallery_are_found():
    assert len(PAGES) >= 10 and sum(len(python_blocks(p)) for p in PAGES) >= 30
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_code_runs(page, capsys):
    namespace = {"__name__": f"docs_{page.stem}"}
    for index, code in enumerate(python_blocks(page)):
        try:
            exec(compile(code, f"{page.relative_to(DOCS)} block {index}", "exec"), namespace)
        except ModuleNotFoundError as exc:
            if exc.name not in OPTIONAL:
                raise
            pytest.skip(f"{exc.name} is not installed (pip install -e '.[docs]')")


@pytest.fixture
def small_gallery(monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    monkeypatch.setenv("FASTCALC_DOCS_SMALL", "1")
    yield
    plt.close("all")


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_gallery_example_runs_at_small_size(script, small_gallery, capsys):
    try:
        runpy.run_path(str(script), run_name="__main__")
    except ModuleNotFoundError as exc:
        if exc.name not in OPTIONAL:
            raise
        pytest.skip(f"{exc.name} is not installed (pip install -e '.[docs]')")


@pytest.mark.parametrize("page,module_name", [(page, spec[0]) for page, spec in
                                               api_lists.MODULES.items()])
def test_api_pages_list_every_public_name(page, module_name):
    module = importlib.import_module(module_name)
    listed = [name for _, names in api_lists.groups(module_name) for name in names]
    public = [name for name in module.__all__
              if not isinstance(getattr(module, name), types.ModuleType)]
    assert sorted(listed) == sorted(public)
    text = api_lists.render(module_name)
    assert all(f"\n   {name}\n" in text for name in public)


def test_every_public_submodule_has_an_api_page():
    import fastcalc
    submodules = {getattr(fastcalc, name).__name__ for name in fastcalc.__all__
                  if isinstance(getattr(fastcalc, name), types.ModuleType)}
    documented = {module_name for module_name, _ in api_lists.MODULES.values()}
    assert submodules <= documented


def test_bench_page_renders_the_committed_json():
    report = json.loads((DOCS / "_static" / "bench.json").read_text(encoding="utf-8"))
    table = bench_page.table_text(report)
    assert table.count("\n   * - ") == len(report["rows"]) + 1      # the header and each row
    assert report["machine"]["cpu"] in bench_page.machine_text(report)


def test_sphinx_build_is_warning_free(tmp_path):
    """The documented build command, on a copy of docs/ so the checkout stays clean."""
    for tool in ("sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme"):
        pytest.importorskip(tool, reason=f"{tool} is not installed: pip install -e '.[docs]'")
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns(
        "_build", "auto_examples", "modules", "_generated", "sg_execution_times.rst"))
    output = tmp_path / "html"
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                          "html", str(source), str(output)], capture_output=True, text=True,
                         env={**os.environ, "FASTCALC_DOCS_SMALL": "1", "MPLBACKEND": "Agg"},
                         timeout=1200)
    assert run.returncode == 0, run.stderr[-5000:]
    # every public name has its page; every gallery example ran and drew
    for page, (module_name, _) in api_lists.MODULES.items():
        for _, names in api_lists.groups(module_name):
            for name in names:
                assert (output / "api" / "modules" / "generated" /
                        f"{module_name}.{name}.html").exists(), name
    images = list((source / "auto_examples" / "images").glob("sphx_glr_plot_*_001.png"))
    assert len(images) == len(EXAMPLES) >= 10
