"""Training curves as TensorBoard event files: ``initbench report RESULTS --tensorboard DIR`` (extra ``tensorboard``).

One TensorBoard *run* (a folder of ``DIR``) per initbench run, named by the identity fields that
vary in the results directory, then the seed and the run_id's first 8 characters
(``family=mlp,init=he_normal,lr=0.1,seed=0,3fa2c9d1``); ``DIR/runs.csv`` maps each folder to
every identity field of its run. Each evaluated value is one scalar at its step, tagged
``split/metric`` (``train/loss``, ``test/accuracy``) or ``split/metric/layer`` for per-layer
records; non-finite values (a diverged run's evaluations) are left out, since TensorBoard cannot
draw them. Each run's folder is written beside its final place and renamed into it, so an
interrupted export leaves no partial run; exporting again replaces the folders it writes.

The event files are written with the ``tensorboard`` package's own writer and protobufs (no
TensorFlow): ``pip install 'initbench[tensorboard]'``.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from initbench.inits.errors import UsageError

SKIP = ("run_id", "seed", "numerics_version", "suite")  # not part of a folder's name (seed and run_id come last)


def check_available() -> None:
    """Raises one line when the optional ``tensorboard`` package is not installed."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UsageError("--tensorboard needs the tensorboard package: pip install 'initbench[tensorboard]'") from None


def run_names(runs: pd.DataFrame, config: tuple[str, ...]) -> dict[str, str]:
    """run_id -> folder name: the identity fields that vary across ``runs``, the seed, the run_id's first 8 characters.

    Example:
      >>> runs = pd.DataFrame({"run_id": ["abcdef0123", "9876543210"], "init": ["he", "zeros"], "lr": [0.1, 0.1],
      ...                      "seed": [0, 0]})
      >>> run_names(runs, ("init", "lr"))
      {'abcdef0123': 'init=he,seed=0,abcdef01', '9876543210': 'init=zeros,seed=0,98765432'}
    """
    varying = [c for c in config if c in runs and c not in SKIP and runs[c].astype(str).nunique() > 1]
    names = {}
    for row in runs.itertuples(index=False):
        values = row._asdict()
        parts = [f"{c}={values[c]}" for c in varying] + [f"seed={values['seed']}", str(values["run_id"])[:8]]
        names[str(values["run_id"])] = _safe(",".join(parts))
    return names


def _safe(name: str) -> str:
    """A folder name: path separators and control characters replaced, at most 200 characters."""
    out = "".join(c if c.isprintable() and c not in '/\\:*?"<>|' else "_" for c in name)
    return out[:200]


def export(df: pd.DataFrame, out: str | Path, config: tuple[str, ...]) -> dict[str, Path]:
    """Writes one TensorBoard run per initbench run of ``df`` (a results directory's rows) under ``out``.

    Args:
      df: Tidy training rows (``ResultStore.read()``): identity columns, ``step``, ``split``,
        ``layer``, ``metric``, ``value``.
      out: The TensorBoard log directory.
      config: The identity columns (``report.CONFIG``).

    Returns:
      ``{"index": out/runs.csv, run_id: its folder, ...}``.
    """
    check_available()
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    identity = [c for c in ("run_id", *config, "seed") if c in df]
    runs = df[identity].drop_duplicates("run_id").reset_index(drop=True)
    names = run_names(runs, config)
    paths: dict[str, Path] = {}
    for run_id, g in df.groupby("run_id", sort=True):
        final = out / names[str(run_id)]
        tmp = out / f".{final.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        writer = EventFileWriter(str(tmp))
        try:
            for step, rows in g.sort_values("step").groupby("step", sort=True):
                values = []
                for split, metric, layer, value in zip(
                    rows["split"], rows["metric"], rows["layer"], rows["value"], strict=True
                ):
                    if value is None or not math.isfinite(float(value)):
                        continue
                    tag = f"{split}/{metric}" + (f"/{layer}" if isinstance(layer, str) and layer else "")
                    values.append(summary_pb2.Summary.Value(tag=tag, simple_value=float(value)))
                if values:
                    writer.add_event(event_pb2.Event(step=int(step), summary=summary_pb2.Summary(value=values)))
        finally:
            writer.close()
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        paths[str(run_id)] = final
    index = runs.assign(folder=[names[str(r)] for r in runs["run_id"]])
    tmp_index = out / ".runs.csv.tmp"
    index.to_csv(tmp_index, index=False)
    os.replace(tmp_index, out / "runs.csv")
    return {"index": out / "runs.csv", **paths}


def check_out(results: Path, out: Path) -> None:
    """``--tensorboard DIR`` before any work: a directory of its own (not the results directory, not a file)."""
    from initbench.benchmarks.paths import can_write_in

    try:
        inside = out.resolve().relative_to(results.resolve())
    except ValueError:
        inside = None
    if inside is not None and not (inside.parts and inside.parts[0].startswith(("_", "."))):
        raise UsageError(
            f"--tensorboard {str(out)!r} is inside the results directory {str(results)!r}; give a folder outside it "
            f"or one starting with '_' (e.g. {str(results / '_tensorboard')!r})"
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"--tensorboard {str(out)!r} is a file, not a directory")
    if not can_write_in(out):
        raise UsageError(f"--tensorboard {str(out)!r} is not writable")


def read_scalars(folder: str | Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars of one exported run (tag -> [(step, value)]), read back with TensorBoard's own reader."""
    check_available()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc: Any = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(int(s.step), float(s.value)) for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
