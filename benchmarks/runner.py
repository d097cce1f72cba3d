"""Run a suite: validate everything, skip completed runs, train cohort by cohort, write results."""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax

from initbench.benchmarks import data as data_lib
from initbench.benchmarks.results import ResultStore, provenance
from initbench.benchmarks.spec import RunSpec
from initbench.benchmarks.suites import get_suite
from initbench.benchmarks.train import train_cohort
from initbench.inits.errors import UsageError


class ProgressBar:
    """A one-line progress bar with ETA on stderr; silent when stderr is not a terminal."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = max(1, total), 0, enabled
        self.start = time.perf_counter()

    def update(self, n: int, message: str = "") -> None:
        """Adds ``n`` units of work and redraws."""
        self.done += n
        if not self.enabled:
            return
        frac = min(1.0, self.done / self.total)
        elapsed = time.perf_counter() - self.start
        eta = elapsed / frac * (1 - frac) if frac > 0 else math.nan
        bar = "#" * int(30 * frac)
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "--:--:--"
        sys.stderr.write(f"\r[{bar:<30}] {100 * frac:5.1f}% ETA {eta_text} {message[:60]:<60}")
        sys.stderr.flush()

    def close(self) -> None:
        """Ends the line."""
        if self.enabled:
            sys.stderr.write("\n")


def cohorts(specs: Sequence[RunSpec]) -> list[list[RunSpec]]:
    """Groups runs by ``cohort_key``, in first-seen order."""
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.cohort_key, []).append(spec)
    return list(groups.values())


def select_devices(count: int | None) -> list[jax.Device]:
    """The first ``count`` devices (all when None)."""
    devices = jax.devices()
    if count is None:
        return devices
    if not isinstance(count, int) or not 1 <= count <= len(devices):
        raise UsageError(f"--devices must be between 1 and the {len(devices)} available, got {count!r}")
    return devices[:count]


def plan(
    suite_name: str,
    scale: str,
    out: str | Path,
    *,
    seeds: int | None = None,
    steps: int | None = None,
    inits: Sequence[str] | None = None,
    activations: Sequence[str] | None = None,
    dataset: str | None = None,
) -> tuple[list[RunSpec], ResultStore]:
    """Builds and validates every run, and checks the output directory, before any work."""
    suite = get_suite(suite_name)
    specs = suite.specs(scale, seeds=seeds, steps=steps, inits=inits, activations=activations, dataset=dataset)
    for spec in specs:
        spec.validate()
    for name in {s.data.name for s in specs}:
        data_lib.check_options(name, dict(next(s.data.extra for s in specs if s.data.name == name)))
    store = ResultStore(out)
    store.check_writable()
    store.check_compatible()
    return specs, store


def run_suite(
    suite_name: str,
    scale: str = "smoke",
    out: str | Path = "results",
    *,
    seeds: int | None = None,
    steps: int | None = None,
    inits: Sequence[str] | None = None,
    activations: Sequence[str] | None = None,
    dataset: str | None = None,
    devices: int | None = None,
    max_members: int | None = None,
    data_dir: str | None = None,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Runs a suite into ``out``; returns a summary (runs, skipped, wall time, steps/s).

    Completed run_ids in ``out`` are skipped, so an interrupted run resumes where it stopped.
    """
    specs, store = plan(
        suite_name, scale, out, seeds=seeds, steps=steps, inits=inits, activations=activations, dataset=dataset
    )
    device_list = select_devices(devices)
    done = store.completed_run_ids()
    todo = [s for s in specs if s.run_id not in done]
    groups = cohorts(todo)
    datasets: dict[tuple, data_lib.Dataset] = {}
    bar = ProgressBar(sum(s.train.steps for s in todo), sys.stderr.isatty() if show_progress is None else show_progress)
    meta = provenance()
    t0 = time.perf_counter()
    member_steps, files = 0, []
    try:
        for group in groups:
            dspec = group[0].data
            key = (dspec.name, dspec.extra)
            if key not in datasets:
                opts = dict(dspec.extra)
                if not data_lib.DATASETS[dspec.name].offline and data_dir:
                    opts["data_dir"] = data_dir
                datasets[key] = data_lib.load(dspec.name, **opts)
            digest = hashlib.sha256(repr(group[0].cohort_key).encode()).hexdigest()[:10]

            def progress(n: int, message: str, size: int = len(group)) -> None:
                bar.update(n * size, message)

            for rows, info in train_cohort(
                group, datasets[key], devices=device_list, max_members=max_members, progress=progress
            ):
                files.append(store.write(rows, f"{suite_name}-{digest}", {**meta, "chunk": info}))
                member_steps += info["members"] * info["steps"]
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    return {
        "suite": suite_name,
        "scale": scale,
        "runs": len(specs),
        "skipped": len(specs) - len(todo),
        "trained": len(todo),
        "cohorts": len(groups),
        "files": [str(f) for f in files],
        "wall_s": wall,
        "member_steps_per_s": member_steps / wall if wall > 0 else math.nan,
        "devices": [str(d) for d in device_list],
    }
