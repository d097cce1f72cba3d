"""The main job (``initbench run quick --scale cpu``), this checkout against an older commit, side by side.

One command: a ``git worktree`` of the old commit and this checkout each run the same job in
a fresh process, with a fresh results directory and an empty compilation cache (cold), one after
the other (``--repeats`` rounds alternate old and new). Prints wall times, peak memory and the
speed-up; ``--json`` writes them.

Run: ``python -m initbench.benchmarks.perf.main_job --old 961e461`` (``--scale smoke`` to try it).
Either layout is handled: the old top-level ``benchmarks`` package, or the ``initbench.*``
namespace (run from a tree of links, so nothing is installed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import resource, runpy, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
try:
    runpy.run_module(sys.argv[0], run_name="__main__")
except SystemExit as exit_:
    code = exit_.code or 0
else:
    code = 0
print("PEAK_RSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
sys.exit(code)
"""


def _checkout_env(tree: Path, scratch: Path) -> tuple[dict[str, str], str]:
    """PYTHONPATH and CLI module that run the code of ``tree`` without installing it."""
    if (tree / "benchmarks" / "cli.py").is_file() and not (tree / "inits" / "errors.py").is_file():
        return {"PYTHONPATH": str(tree)}, "benchmarks.cli"  # the first layout: top-level packages
    links = scratch / "links"
    (links / "initbench").mkdir(parents=True, exist_ok=True)
    for name in ("inits", "models", "benchmarks"):
        (links / "initbench" / name).symlink_to(tree / name)
    return {"PYTHONPATH": str(links)}, "initbench.benchmarks.cli"


def _run(label: str, tree: Path, scale: str, scratch: Path) -> dict[str, float | str]:
    (scratch / label).mkdir(parents=True, exist_ok=True)
    env_extra, module = _checkout_env(tree, scratch / label)
    out, cache = scratch / label / "out", scratch / label / "cache"
    env = {**os.environ, **env_extra, "INITBENCH_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, module, "run", "quick", "--scale", scale, "--out", str(out), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        cwd=scratch,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rss = next(float(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_MB"))
    print(f"{label:4s} {wall:7.1f} s wall, peak {rss:6.0f} MB: {proc.stdout.strip().splitlines()[-1]}", flush=True)
    return {"checkout": label, "wall_s": wall, "peak_rss_mb": rss}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="git revision to compare against")
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parents[2]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        old_tree = scratch / "old_tree"
        subprocess.run(
            ["git", "-C", str(here), "worktree", "add", "--detach", "-q", str(old_tree), args.old], check=True
        )
        try:
            for i in range(args.repeats):
                rows.append({**_run("old", old_tree, args.scale, scratch / f"r{i}"), "revision": args.old})
                rows.append({**_run("new", here, args.scale, scratch / f"r{i}"), "revision": "HEAD"})
        finally:
            subprocess.run(["git", "-C", str(here), "worktree", "remove", "--force", str(old_tree)], check=False)
    old = statistics.median(r["wall_s"] for r in rows if r["checkout"] == "old")
    new = statistics.median(r["wall_s"] for r in rows if r["checkout"] == "new")
    print(f"main job ({args.scale}): old {old:.1f} s, new {new:.1f} s: x{old / new:.2f} faster")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "speedup": old / new}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
