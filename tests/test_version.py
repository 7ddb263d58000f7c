"""``fastcalc.__version__`` is the installed distribution's, which is pyproject.toml's: one place."""
import importlib
import importlib.metadata
import re
from pathlib import Path

import fastcalc
from fastcalc import _version

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_the_metadata_and_pyprojects():
    text = (ROOT / "pyproject.toml").read_text()
    project = text[text.index("[project]"):]
    written = re.search(r'^version\s*=\s*"([^"]+)"', project, re.M).group(1)
    assert fastcalc.__version__ == importlib.metadata.version("fastcalc") == written


def test_version_without_metadata_is_unknown_not_an_import_error(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    try:
        assert importlib.reload(_version).__version__ == "0+unknown"
    finally:
        monkeypatch.undo()
        importlib.reload(_version)
    assert _version.__version__ == fastcalc.__version__
