"""Docs that run: every docstring example is a doctest, and no source imports a bare package name.

The modules are found from the files (no import at collection); each module with an example is
imported under its installed name (``initbench.inits._basic``) and its examples run with the
suite's strict numerics (``tests/conftest.py``).
"""

import ast
import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("inits", "models", "benchmarks")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("initbench", *parts))


SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
WITH_EXAMPLES = [module_name(p) for p in SOURCES if ">>>" in p.read_text()]


def test_the_scan_finds_the_sources():
    assert len(SOURCES) > 50
    assert "initbench.inits._basic" in WITH_EXAMPLES and "initbench.inits" in WITH_EXAMPLES


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name} has '>>>' in its source but no doctest was found"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name} (output above)"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sources_import_the_installed_names_only(path):
    # `import models` would work in an editable checkout (its root is on sys.path) and break in the wheel
    bare = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            bare += [a.name for a in node.names if a.name.split(".")[0] in PACKAGES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            bare += [node.module] if node.module.split(".")[0] in PACKAGES else []
    for line in path.read_text().splitlines():  # docstring examples too
        match = re.match(r"\s*>>> (?:from|import) ([\w.]+)", line)
        if match and match.group(1).split(".")[0] in PACKAGES:
            bare.append(match.group(1))
    assert not bare, f"{path.name} imports {bare}: use initbench.{bare[0]}"
