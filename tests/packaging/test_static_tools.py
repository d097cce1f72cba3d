"""Static tools see the code through the README's own install (``pip install -e .``).

The repository's ``initbench/`` folder links to ``inits/``, ``models/`` and ``benchmarks/``, so
setuptools' editable install is a plain path in a ``.pth`` file (no import hook, which static
tools cannot run): pyright, mypy and import-graph readers map ``initbench.inits`` to
``initbench/inits`` -> ``inits/``, and a module added later is seen without a reinstall.
"""

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USER_FILE = (
    "from initbench import inits, models\n"
    "from initbench.benchmarks import cli\n"
    "from initbench.benchmarks.analysis import theory\n"
    "init: inits.Init = inits.he_normal()\n"
    "net = models.build('mlp', input_shape=(4,), num_classes=3, depth=2, width=8)\n"
    "code: int = cli.main(['list'])\n"
    "chi: float = theory.fixed_point('tanh', 1.0).chi1\n"
)


def editable_root() -> Path | None:
    """The folder the editable install puts on ``sys.path`` (None when initbench is not installed editable)."""
    dist = importlib.metadata.distribution("initbench")
    direct = dist.read_text("direct_url.json")
    if not direct or not json.loads(direct).get("dir_info", {}).get("editable"):
        return None
    pth = [f for f in dist.files or () if f.name.endswith(".pth")]
    assert len(pth) == 1, f"expected one .pth file, got {pth}"
    lines = [line for line in Path(pth[0].locate()).read_text().splitlines() if line.strip()]
    assert not any(line.startswith("import") for line in lines), f"an import hook static tools cannot follow: {lines}"
    return Path(lines[0])


def test_the_link_folder_points_at_the_three_packages():
    for name in ("inits", "models", "benchmarks"):
        link = ROOT / "initbench" / name
        assert link.is_symlink() and link.resolve() == (ROOT / name).resolve()


def test_editable_install_is_a_static_path_to_the_checkout():
    root = editable_root()
    if root is None:
        pytest.skip("initbench is installed from a wheel here, not with the README's `pip install -e .`")
    assert root.resolve() == ROOT.resolve()
    import initbench.inits

    assert Path(initbench.inits.__file__).resolve() == (ROOT / "inits" / "__init__.py").resolve()


def run_tool(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_mypy_resolves_a_user_file_outside_the_checkout(tmp_path):
    (tmp_path / "user.py").write_text(USER_FILE)
    proc = run_tool([sys.executable, "-m", "mypy", "--no-incremental", "user.py"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout
    # the lazy package surface is invisible to checkers: a misspelled public name is an error
    (tmp_path / "typo.py").write_text("from initbench import inits, models\ninits.he_normall\nmodels.buildd\n")
    proc = run_tool([sys.executable, "-m", "mypy", "--no-incremental", "typo.py"], tmp_path)
    assert proc.returncode == 1 and "Found 2 errors" in proc.stdout, proc.stdout
    assert 'has no attribute "he_normall"' in proc.stdout and 'has no attribute "buildd"' in proc.stdout


@pytest.mark.slow
def test_pyright_resolves_a_user_file_outside_the_checkout(tmp_path):
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent))
    assert pyright, "pyright is part of the test extras"
    (tmp_path / "user.py").write_text(USER_FILE)
    (tmp_path / "pyrightconfig.json").write_text(json.dumps({"pythonPath": sys.executable}))
    proc = run_tool([pyright, "user.py"], tmp_path)
    assert "reportMissingImports" not in proc.stdout and "could not be resolved" not in proc.stdout, proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 errors" in proc.stdout
