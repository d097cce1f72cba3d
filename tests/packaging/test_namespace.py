"""The installed distribution lives under one namespace and survives a user's look-alike modules."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DECOY = "raise ImportError('decoy {name} imported: initbench must never import a top-level {name}')\n"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # build from a clean copy: setuptools' build/ directory keeps stale modules between builds
    src = tmp_path_factory.mktemp("src")
    for name in ("inits", "models", "benchmarks", "initbench"):  # initbench/: links to the three folders
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (path,) = out.glob("initbench-*.whl")
    return path


@pytest.mark.slow  # builds a wheel (about 8 s with the install); CI runs it
def test_wheel_has_no_generic_top_level_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"initbench", next(t for t in top if t.endswith(".dist-info"))}, top
    assert not any(Path(n).name == "signal.py" for n in names)  # no module shadows the standard library
    for package in ("inits", "models", "benchmarks"):
        assert f"initbench/{package}/__init__.py" in names
    assert {"initbench/__init__.py", "initbench/py.typed"} <= set(names)  # a typed package (PEP 561)
    # every package folder of the source tree is in the wheel (found, not listed by hand)
    for package in ("inits", "models", "benchmarks"):
        for init in (ROOT / package).rglob("__init__.py"):
            assert f"initbench/{init.relative_to(ROOT).as_posix()}" in names, init
    for experiment in ("quick", "he2015-depth30"):  # experiments are package data
        assert f"initbench/benchmarks/experiments/{experiment}.toml" in names


@pytest.mark.slow
def test_installed_wheel_works_beside_decoy_packages(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    assert sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin") == [
        "initbench"
    ]
    project = tmp_path / "user_project"  # a user's project in the Flax examples layout, with look-alikes
    for name in ("models", "benchmarks", "inits"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(DECOY.format(name=name))
    (project / "benchmarks" / "signal.py").write_text(DECOY.format(name="signal"))
    script = (
        "import subprocess, sys\n"
        "import jax, jax.numpy as jnp\n"
        "from initbench import inits, models\n"
        "from initbench.benchmarks import cli\n"
        "from initbench.benchmarks.analysis import propagation\n"
        f"assert inits.__file__.startswith({str(site)!r}), inits.__file__\n"
        "net = models.build('mlp', input_shape=(4,), num_classes=3, depth=2, width=8, activation='tanh',\n"
        "                   kernel_init=inits.he_normal())\n"
        "v = net.init(jax.random.key(0), jnp.ones((2, 4)))\n"
        "assert cli.main(['list', 'models']) == 0\n"
        "assert cli.main(['show', 'quick']) == 0\n"
        "print('ok', sorted(v['params']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=project, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "ok ['head', 'layer_000', 'layer_001']"
    console = subprocess.run(
        [sys.executable, str(site / "bin" / "initbench"), "list", "inits"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert console.returncode == 0, console.stderr
    assert "he_normal" in console.stdout
