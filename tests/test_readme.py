"""Every Python snippet of the README runs as written; every experiment file in it resolves."""

import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = [textwrap.dedent(s) for s in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)]


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, tmp_path, monkeypatch):
    snippet = SNIPPETS[index]
    monkeypatch.chdir(tmp_path)
    if "results/quick" in snippet:  # a snippet that reads the main job's output: make a small one
        from initbench.benchmarks import cli

        argv = ["run", "quick", "--init", "zeros", "--activation", "relu", "--seeds", "1", "--steps", "10", "--quiet"]
        assert cli.main([*argv, "--out", "results/quick"]) == 0
    namespace = {"__name__": "readme"}
    exec(compile(snippet, f"README.md snippet {index + 1}", "exec"), namespace)
    if "df" in namespace:
        assert len(namespace["df"]) > 0


TOML_SNIPPETS = [textwrap.dedent(s) for s in re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S)]


@pytest.mark.parametrize("index", range(len(TOML_SNIPPETS)))
def test_readme_experiment_files_resolve(index):
    import sys

    from initbench.benchmarks import experiments

    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    exp = experiments.from_doc(tomllib.loads(TOML_SNIPPETS[index]), f"README.md toml snippet {index + 1}")
    for scale in exp.scales or [None]:
        assert experiments.resolve(exp, scale).full
