"""Compile time against depth: a ResNet's training program, its blocks unrolled or scanned.

One command; each configuration in a fresh process (no persistent compilation cache, so every
compile is cold), one after another: ``models.ResNet`` with one stage of ``B`` blocks (``B`` in
``--blocks``, default 4 and 32), width 8, no normalization, Fixup init (its scheme included),
trained by :func:`initbench.benchmarks.train.train_cohort` for one step on digits (one member,
batch 32). Reported per configuration: the first segment's wall time (compiling the training
program and running its one step), the whole call's wall time (initialization, both
compilations, two evaluations), and their ratio to the shallowest net's. With ``scan`` the
blocks after the first are one ``nn.scan`` (``blocks_01``), so the program does not grow with
depth.

Run: ``python -m initbench.benchmarks.perf.compile_depth`` (``--blocks 4 16 32``, ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

_MODULE = "initbench.benchmarks.perf.compile_depth"  # __name__ is "__main__" under python -m


def measure(blocks: int, scan: bool) -> dict[str, Any]:
    """One configuration, in this process: the first segment's and the whole call's wall time."""
    from initbench.benchmarks import data
    from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options
    from initbench.benchmarks.train import train_cohort

    model = ModelSpec("resnet", "relu", None, 8, options(blocks=[blocks], normalization="none", scan=scan))
    spec = RunSpec(
        "perf", "compile", model, InitSpec("fixup"), DataSpec("digits", 32), TrainSpec(steps=1, eval_every=1), 0
    )
    spec.validate()
    dataset = data.load("digits")
    t0 = time.perf_counter()
    ((_, info),) = list(train_cohort([spec], dataset))
    return {
        "blocks": blocks,
        "scan": scan,
        "first_segment_s": info["first_segment_s"],
        "total_s": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}", description=__doc__)
    parser.add_argument("--blocks", type=int, nargs="+", default=[4, 32])
    parser.add_argument("--json", help="write the rows as JSON")
    parser.add_argument("--one", nargs=2, metavar=("BLOCKS", "SCAN"), help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(int(args.one[0]), args.one[1] == "1")))
        return 0
    if any(b < 2 for b in args.blocks):
        print(f"compile_depth: error: --blocks must be integers >= 2, got {args.blocks}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "INITBENCH_CACHE_DIR": empty, "JAX_COMPILATION_CACHE_DIR": ""}
        for scan in (False, True):
            for blocks in args.blocks:
                out = subprocess.run(
                    [sys.executable, "-m", _MODULE, "--one", str(blocks), "1" if scan else "0"],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                )
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                r = rows[-1]
                print(
                    f"{'scanned' if scan else 'unrolled':8s} {blocks:3d} blocks: first segment "
                    f"{r['first_segment_s']:6.2f} s, whole call {r['total_s']:6.2f} s",
                    flush=True,
                )
    for scan in (False, True):
        mine = [r for r in rows if r["scan"] == scan]
        base = mine[0]
        for r in mine:
            r["segment_ratio"] = r["first_segment_s"] / base["first_segment_s"]
            r["total_ratio"] = r["total_s"] / base["total_s"]
        deepest = mine[-1]
        print(
            f"{'scanned' if scan else 'unrolled'}: {deepest['blocks']} blocks / {base['blocks']} blocks = "
            f"x{deepest['segment_ratio']:.2f} (first segment), x{deepest['total_ratio']:.2f} (whole call)"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
