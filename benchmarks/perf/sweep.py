"""A learning-rate sweep against seeds alone: hyper-parameters as per-member data cost nothing extra.

One command, one process: through the public runner (:func:`initbench.benchmarks.runner.run_experiment`,
fresh results directories, the same model, data, optimizer and steps), three grids of the same
size, alternating over ``--repeats`` rounds:

* ``sweep``: ``--lrs`` learning rates (default 12, log-spaced 1e-3..1) x ``--seeds`` seeds (2);
* ``seeds``: one learning rate x (lrs x seeds) seeds (24): the same work without a sweep;
* afterwards, each learning rate of the sweep alone (seed 0) through ``train_cohort``, in a chunk
  of the width the runner gave the sweep, for the equality check.

The first call of each grid compiles (reported apart); the medians of the later rounds compare
warm wall times. Prints the programs each grid compiles (``initbench show``'s count), the wall
times and their ratio, and how many learning rates alone are bitwise equal to their sweep
member (every evaluation; the same chunk width gives the same program, so all of them should
be). ``--json`` writes the numbers.

Run: ``python -m initbench.benchmarks.perf.sweep`` (``--steps``, ``--width``, ``--lrs``,
``--seeds``, ``--repeats``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from typing import Any


def _grid(lrs: list[float], seeds: int, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "name": "perf-sweep",
        "description": "learning-rate sweep against seeds",
        "seeds": seeds,
        "init": "he_normal",
        "model": {"family": "mlp", "activation": "tanh", "depth": args.depth, "width": args.width},
        "data": {"name": "digits", "batch_size": 64},
        "train": {"optimizer": "momentum", "lr": lrs, "steps": args.steps, "eval_every": args.steps},
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    import jax
    import numpy as np
    import pandas as pd

    from initbench.benchmarks import data as data_lib
    from initbench.benchmarks import experiments, runner, show, train
    from initbench.benchmarks.results import ResultStore
    from initbench.inits.errors import UsageError

    parser = argparse.ArgumentParser(prog="python -m initbench.benchmarks.perf.sweep", description=__doc__)
    parser.add_argument("--lrs", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the numbers as JSON")
    args = parser.parse_args(argv)
    for name in ("lrs", "seeds", "steps", "depth", "width", "repeats"):
        if getattr(args, name) < 1:
            print(f"sweep: error: --{name} must be a positive integer, got {getattr(args, name)}", file=sys.stderr)
            return 2
    lrs = [float(f"{10 ** (-3 + 3 * i / max(1, args.lrs - 1)):.4g}") for i in range(args.lrs)]
    grids = {
        "sweep": experiments.from_doc(_grid(lrs, args.seeds, args), "sweep"),
        "seeds": experiments.from_doc(_grid([0.05], args.lrs * args.seeds, args), "seeds"),
    }
    try:
        programs = {k: show.programs(experiments.resolve(g).specs) for k, g in grids.items()}
    except UsageError as err:
        print(f"sweep: error: {err}", file=sys.stderr)
        return 2
    times: dict[str, list[float]] = {k: [] for k in grids}
    first: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.repeats + 1):
            for key, grid in grids.items():
                out = f"{scratch}/{key}-{round_}"
                t0 = time.perf_counter()
                runner.run_experiment(grid, out=out)
                wall = time.perf_counter() - t0
                if round_ == 0:
                    first[key] = wall
                else:
                    times[key].append(wall)
                print(f"round {round_} {key:6s} {wall:7.2f} s", flush=True)
        sweep_rows = ResultStore(f"{scratch}/sweep-1").read()
    # each learning rate alone (seed 0), trained in a chunk of the width the runner gave the sweep
    # (train.members_per_device of the full grid): bitwise the sweep's member, whatever shares its chunk
    specs = experiments.resolve(grids["sweep"]).specs
    dataset = data_lib.load("digits")
    devices = jax.devices()
    width = train.members_per_device(len(specs), train.member_bytes(specs[0], dataset), devices)
    worst, equal = 0.0, 0
    for s in (s for s in specs if s.seed == 0):
        alone = pd.concat([rows for rows, _ in train.train_cohort([s], dataset, devices=devices, width=width)])
        mine = alone.set_index(["step", "split", "metric"])["value"].sort_index()
        theirs = sweep_rows[sweep_rows["run_id"] == s.run_id].set_index(["step", "split", "metric"])["value"]
        theirs = theirs.sort_index()
        a, b = mine.to_numpy(), theirs.loc[mine.index].to_numpy()
        equal += int(np.array_equal(a, b, equal_nan=True))
        finite = np.isfinite(a) & np.isfinite(b)
        if finite.any():
            worst = max(worst, float(np.max(np.abs(a[finite] - b[finite]) / np.maximum(np.abs(a[finite]), 1e-30))))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["sweep"] / med["seeds"]
    print(
        f"\n{args.lrs} learning rates x {args.seeds} seeds vs 1 learning rate x {args.lrs * args.seeds} seeds, "
        f"MLP 64 -> {args.depth}x{args.width} tanh, momentum SGD, {args.steps} steps, digits"
    )
    print(f"programs compiled: sweep {programs['sweep']}, seeds {programs['seeds']}")
    print(f"first call (compiles): sweep {first['sweep']:.2f} s, seeds {first['seeds']:.2f} s")
    print(f"warm median of {args.repeats}: sweep {med['sweep']:.2f} s, seeds {med['seeds']:.2f} s: ratio {ratio:.2f}")
    print(
        f"each learning rate alone (seed 0, the sweep's chunk width {width}): {equal}/{args.lrs} bitwise equal "
        f"to the sweep's member; largest relative difference {worst:.2e}"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "programs": programs,
                    "first_s": first,
                    "median_s": med,
                    "ratio": ratio,
                    "bitwise_equal_alone": equal,
                    "max_rel_diff": worst,
                    "lrs": lrs,
                },
                fh,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
