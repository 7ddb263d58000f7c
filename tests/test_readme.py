"""The README's Python snippets run as written (they carry their own assertions), its set-up
commands are the ones CI and the docs use, and the files it links to exist.

The longer examples moved to the documentation, whose code tests/test_docs.py runs.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SNIPPETS = re.findall(r"```python\n(.*?)```", README, re.S)
TEST_COMMAND = 'pip install -e ".[test]" && python -m pytest --benchmark-disable'
BENCH_COMMAND = 'pip install -e ".[bench]" && python -m fastcalc bench --quick'
DOCS_COMMAND = 'pip install -e ".[docs]" && sphinx-build -W -b html docs docs/_build/html'


def test_the_readme_has_a_tour():
    assert len(SNIPPETS) >= 1


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, capsys):
    exec(compile(SNIPPETS[index], f"README.md snippet {index}", "exec"), {})


def test_setup_commands_are_the_ones_ci_and_the_docs_use():
    for command in (TEST_COMMAND, BENCH_COMMAND, DOCS_COMMAND):
        assert f"```bash\n{command}\n```" in README
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert DOCS_COMMAND in (ROOT / "docs" / "conf.py").read_text(encoding="utf-8")


def test_linked_files_exist():
    links = re.findall(r"\]\(((?:docs|benchmarks|fastcalc)/[^)]+)\)", README)
    assert links
    for link in links:
        assert (ROOT / link).exists(), link
