"""One job as 1 process x 1 device, 1 process x N devices and N processes x 1 device, side by side.

Each layout runs the same ``initbench run`` command in fresh processes with a fresh results
directory (``--repeats`` rounds, layouts alternating), and reports the job's own wall time (from
``--json``: planning, data, compilation and training; not the interpreter start) and the
command's wall time (everything, JAX start-up and ``jax.distributed`` connection included).
The N-process layout goes through ``initbench launch`` with gloo collectives over the loopback;
the N-device layout is one process with N forced CPU devices (XLA's host platform), the
independent contender that shares no multi-process code path.

Run: ``python -m initbench.benchmarks.perf.processes -n 2 -- quick --scale cpu --init he_normal``
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


def _env(devices: int) -> dict[str, str]:
    env = os.environ.copy()
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["INITBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="initbench-cache-")  # cold: no compiled programs
    return env


def _time(layout: str, n: int, run_args: list[str], scratch: Path) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(dir=scratch))
    summary = out / "summary.json"
    args = ["run", *run_args, "--out", str(out / "results"), "--json", str(summary), "--quiet"]
    cli = [sys.executable, "-m", "initbench.benchmarks.cli"]
    if layout == "processes":
        cmd, env = [*cli, "launch", "-n", str(n), "--devices-per-process", "1", "--", *args], _env(1)
    else:
        cmd, env = [*cli, *args], _env(n if layout == "devices" else 1)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{layout} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    job = json.loads(summary.read_text())
    return {"command_s": wall, "job_s": job["wall_s"], "run_steps_per_s": job["member_steps_per_s"]}


def main(argv: list[str] | None = None) -> int:
    """Times the three layouts; prints a table (and writes ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2, help="processes (and devices) of the scaled layouts")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="write the measurements here")
    parser.add_argument("run_args", nargs=argparse.REMAINDER, help="-- EXPERIMENT [run options]")
    args = parser.parse_args(argv)
    run_args = [a for a in args.run_args if a != "--"] or ["quick", "--scale", "smoke"]
    layouts = {
        "1 process x 1 device": "single",
        f"1 process x {args.n} devices": "devices",
        f"{args.n} processes x 1 device": "processes",
    }
    times: dict[str, list[dict[str, float]]] = {k: [] for k in layouts}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.repeats):
            for label, layout in layouts.items():
                times[label].append(_time(layout, args.n, run_args, Path(scratch)))
    base = statistics.median(t["job_s"] for t in times["1 process x 1 device"])
    rows = []
    print(f"initbench run {' '.join(run_args)}; median of {args.repeats}; cpu count {os.cpu_count()}")
    for label, ts in times.items():
        job = statistics.median(t["job_s"] for t in ts)
        row = {
            "layout": label,
            "job_s": round(job, 2),
            "command_s": round(statistics.median(t["command_s"] for t in ts), 2),
            "run_steps_per_s": round(statistics.median(t["run_steps_per_s"] for t in ts), 1),
            "speedup_vs_1x1": round(base / job, 2),
        }
        rows.append(row)
        print(
            f"{label:24s} job {row['job_s']:7.2f}s  command {row['command_s']:7.2f}s  "
            f"{row['run_steps_per_s']:9.1f} run-steps/s  x{row['speedup_vs_1x1']:.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"command": run_args, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
