"""One source for the public surface: each package's ``_EXPORTS`` table.

``__all__`` is derived from it; these tests check the rest against it: the ``TYPE_CHECKING``
imports that editors and type checkers read, the names' home modules, and the README's tables
(every registered initializer, scheme and model family documented, no documented name missing).
"""

import ast
import importlib
import re
from pathlib import Path

import pytest

from initbench import inits, models

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PACKAGES = {"inits": inits, "models": models}


def type_checking_imports(folder: str) -> dict[str, str]:
    """name -> defining module, as the ``if TYPE_CHECKING:`` block of ``folder/__init__.py`` imports it."""
    tree = ast.parse((ROOT / folder / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING")
    found = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom), ast.dump(node)
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name}: re-export as `import X as X` so checkers export it"
            found[alias.name] = node.module.rsplit(".", 1)[-1]
    return found


@pytest.mark.parametrize("folder", sorted(PACKAGES))
def test_all_and_type_checking_imports_follow_the_exports_table(folder):
    package = PACKAGES[folder]
    exports = package._EXPORTS
    assert package.__all__ == sorted(exports)
    assert type_checking_imports(folder) == exports
    for name, module in exports.items():
        obj = getattr(package, name)
        home = importlib.import_module(f"initbench.{folder}.{module}")
        assert getattr(home, name) is obj, f"{name} is not {module}.{name}"


def readme_table(header: str) -> list[list[str]]:
    """The rows (cells) of the README table whose header line starts with ``header``."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_readme_initializer_table_lists_every_registered_initializer_and_only_public_names():
    names, called = set(), set()
    for _, cell in readme_table("| family | names |"):
        names |= set(re.findall(r"`([a-z_]+)[`(]", cell))  # names and arguments
        called |= set(re.findall(r"`([a-z_]+)\(", cell))  # `normal(stddev, dtype, *, mean)`: a function
    registered = {e.name for e in inits.available()}
    assert registered - names == set(), "registered initializers missing from the README table"
    assert len(called) > 10 and called - set(inits.__all__) == set(), "README table functions that inits lacks"


def test_readme_scheme_table_is_the_scheme_registry():
    documented = [row[0].strip("`") for row in readme_table("| scheme | what it does")]
    assert documented == list(inits.SCHEMES.names())
    assert set(documented) <= set(inits.__all__)


def test_readme_family_table_is_the_model_registry():
    documented = [row[0].strip("`") for row in readme_table("| family | what |")]
    assert documented == list(models.FAMILIES.names())
