"""Sphinx configuration of the fastcalc documentation.

Build (from the checkout)::

    pip install -e ".[docs]" && sphinx-build -W -b html docs docs/_build/html

``FASTCALC_DOCS_SMALL=1`` runs the gallery at CI sizes (seconds instead of a minute).

Pages written here at every build, so that they cannot go stale: the API reference's module
pages, from the ``__all__`` of each documented module (a name another change adds gets its page
without an edit here), and the benchmark table and plot, from ``_static/bench.json``.
"""
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import fastcalc  # noqa: E402
from api_lists import write_api_pages  # noqa: E402
from bench_page import write_bench_page  # noqa: E402

project = "fastcalc"
author = "the fastcalc developers"
copyright = "2026, the fastcalc developers"
release = version = fastcalc.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "api_lists",
]

templates_path = ["_templates"]
# *.inc are generated fragments included by the benchmark page.
exclude_patterns = ["_build", "**/*.inc", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]

write_api_pages(DOCS / "api" / "modules")
write_bench_page(DOCS / "_static" / "bench.json", DOCS / "_generated")

# -- API reference ------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"            # the numpydoc Parameters sections say the types
numpydoc_show_class_members = False   # the class template lists members with autodoc
numpydoc_class_members_toctree = False

# -- Gallery ------------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "reset_modules": ("matplotlib",),
}
os.environ.setdefault("MPLBACKEND", "Agg")

# -- HTML ---------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"fastcalc {release}"
html_static_path = ["_static"]
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"index": [], "bench": []}
