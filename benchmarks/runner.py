"""Run an experiment: validate everything, skip completed runs, train cohort by cohort, write results."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from initbench.benchmarks import checkpoint as ckpt
from initbench.benchmarks import data as data_lib
from initbench.benchmarks import distributed, experiments
from initbench.benchmarks.experiments import Experiment, Plan
from initbench.benchmarks.groups import SELECTORS, check_structure, classes_present, lr_scale_tree
from initbench.benchmarks.results import ResultStore, provenance
from initbench.benchmarks.spec import NUMERICS_VERSION, Options, RunSpec
from initbench.benchmarks.train import (
    build_model,
    init_data,
    member_bytes,
    members_per_device,
    scheme_init,
    train_cohort,
)
from initbench.inits.errors import UsageError, first_line
from initbench.inits.registry import is_plugin


class Progress:
    """Progress of a job in run-steps: a tqdm bar on a terminal, periodic log lines otherwise.

    Off a terminal (nohup, SLURM, ``| tee``) a line ``initbench: done/total run-steps (x%),
    R run-steps/s, ETA h:mm:ss WHAT`` goes to stderr every ``every_s`` seconds, also while
    nothing advances (a long compile: WHAT then says ``compiling``), and at the end.

    Args:
      total: Run-steps of the job.
      mode: ``bar``, ``log`` or ``off``.
      every_s: Seconds between log lines.
    """

    def __init__(self, total: int, mode: str, every_s: float = 30.0) -> None:
        self.total, self.done, self.mode, self.every_s = max(1, total), 0, mode, every_s
        self.start = self._last = time.perf_counter()
        self._bar = None
        self._message = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit="run-step", unit_scale=True, dynamic_ncols=True, file=sys.stderr)
        elif mode == "log":  # a line every every_s even when no step completes (compiling, a long segment)
            self._heartbeat = threading.Thread(target=self._beat, name="initbench-progress", daemon=True)
            self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s / 4):
            with self._lock:
                if time.perf_counter() - self._last >= self.every_s:
                    self._log(self._message)

    def update(self, n: int, message: str = "") -> None:
        """Adds ``n`` run-steps; ``message`` says what runs now (``n`` 0: a phase such as compiling)."""
        with self._lock:
            self.done += n
            self._message = message
            if self._bar is not None:
                self._bar.set_postfix_str(message[:50], refresh=n == 0)
                if n:
                    self._bar.update(n)
            elif self.mode == "log" and time.perf_counter() - self._last >= self.every_s:
                self._log(message)

    def _log(self, message: str = "") -> None:
        self._last = now = time.perf_counter()
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else math.nan
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "--:--:--"
        print(
            f"initbench: {self.done}/{self.total} run-steps ({100 * self.done / self.total:.0f}%), "
            f"{rate:.0f} run-steps/s, ETA {eta_text} {message}".rstrip(),
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        """Ends the bar, or logs the final line."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "log":
            self._log()


def progress_mode(quiet: bool = False) -> str:
    """``off`` when quiet, ``bar`` on a terminal, ``log`` otherwise."""
    if quiet:
        return "off"
    return "bar" if sys.stderr.isatty() else "log"


def cohorts(specs: Sequence[RunSpec]) -> list[list[RunSpec]]:
    """Groups runs by ``cohort_key``, in first-seen order."""
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.cohort_key, []).append(spec)
    return list(groups.values())


def select_devices(count: int | None) -> list[jax.Device]:
    """The first ``count`` devices (all when None; all processes' devices in a multi-process job)."""
    devices = jax.devices()
    if count is None:
        return devices
    if jax.process_count() > 1:
        raise UsageError(f"--devices selects devices of one process; a {jax.process_count()}-process job uses all")
    if not isinstance(count, int) or not 1 <= count <= len(devices):
        raise UsageError(f"--devices must be between 1 and the {len(devices)} available, got {count!r}")
    return devices[:count]


def plan(
    experiment: str | Path | Experiment,
    scale: str | None,
    out: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    only: Mapping[str, Sequence[str]] | None = None,
    writer: bool = True,
) -> tuple[Plan, ResultStore]:
    """Resolves and validates every run, and checks the output directory, before any work.

    Args:
      experiment: A packaged experiment name, a TOML path, or an :class:`Experiment`.
      scale: One of its scales (default: its default scale).
      out: The results directory.
      overrides: Dotted fields merged onto the experiment (``{"train.lr": [0.01, 0.1]}``).
      only: Filters on the grid (``{"init": ["he_normal"]}``); chunk widths still come from the
        whole grid, so the filtered runs are bitwise those of the full run.
      writer: False on the processes of a multi-process job other than process 0: they skip
        the directory checks (only process 0 reads and writes it).

    Returns:
      The plan (runs to do, the whole grid, the fields that vary) and the store.
    """
    exp = experiment if isinstance(experiment, Experiment) else experiments.load(experiment)
    resolved = experiments.resolve(exp, scale, overrides, only)
    store = ResultStore(out, kind="runs")
    if writer:
        store.check_writable()
        store.check_compatible(NUMERICS_VERSION)
    return resolved, store


def run_experiment(
    experiment: str | Path | Experiment,
    scale: str | None = None,
    out: str | Path = "results",
    *,
    overrides: Mapping[str, Any] | None = None,
    only: Mapping[str, Sequence[str]] | None = None,
    devices: int | None = None,
    max_members: int | None = None,
    data_dir: str | None = None,
    progress: str = "off",
    checkpoint_every_s: float | None = 60.0,
) -> dict[str, Any]:
    """Runs an experiment into ``out``; returns a summary (runs, skipped, wall time, steps/s).

    Everything is validated (every run's names and numbers, every model against its dataset's
    input shape) and every dataset loaded before the directory's writer lock is taken, so bad
    input writes nothing. Completed run_ids in ``out`` are skipped, so an interrupted run
    resumes where it stopped; each cohort's chunk width comes from the whole grid, so resumed
    or filtered runs are bitwise those of an uninterrupted full run.

    Args:
      experiment: A packaged experiment name, a TOML path, or an :class:`Experiment`.
      scale: One of its scales (default: its default scale).
      out: The results directory.
      overrides: Dotted fields merged onto the experiment.
      only: Filters on the grid.
      devices: Use the first N devices (default: all).
      max_members: Cap on the members trained together.
      data_dir: TFDS data directory.
      progress: ``bar``, ``log`` or ``off`` (see :class:`Progress`).
      checkpoint_every_s: A chunk's state is saved in ``out/_checkpoints`` at evaluation boundaries,
        at most this often (0: every evaluation; None: never), so an interrupted chunk resumes
        mid-training, bitwise (single-process jobs; :func:`train_cohort`). Checkpoints of chunks
        whose runs are all in the directory are removed at the end.
    """
    if checkpoint_every_s is not None and not (
        isinstance(checkpoint_every_s, int | float)
        and not isinstance(checkpoint_every_s, bool)
        and math.isfinite(checkpoint_every_s)
        and checkpoint_every_s >= 0
    ):
        raise UsageError(f"checkpoint_every_s must be a finite number >= 0 or None, got {checkpoint_every_s!r}")
    _check_arguments(out, overrides, only, devices, max_members, progress)
    if overrides is not None:  # numpy scalars as the Python numbers they are (np.int64(2) is a step count)
        overrides = {k: v.item() if isinstance(v, np.generic) else v for k, v in overrides.items()}
    proc = distributed.current()
    resolved, store = plan(experiment, scale, out, overrides=overrides, only=only, writer=proc.is_writer)
    specs, full, name = resolved.specs, resolved.full, resolved.experiment.name
    device_list = select_devices(devices)
    distributed.check_same("the plan", "\n".join(s.run_id for s in full) + "|" + ",".join(s.run_id for s in specs))
    # every process loads the data of every cohort it may train (only process 0 reads the directory)
    done = store.completed_run_ids() if proc.is_writer and proc.count == 1 else set()
    datasets = _load_datasets([s for s in specs if s.run_id not in done], data_dir)
    _check_models([s for s in specs if s.run_id not in done], datasets, resolved.experiment.source)
    _check_one_member_fits([s for s in specs if s.run_id not in done], datasets, device_list)
    full_sizes = {key: len(group) for key, group in ((g[0].cohort_key, g) for g in cohorts(full))}
    meta = {**provenance(), "processes": proc.count}
    t0 = time.perf_counter()
    member_steps, files, groups, resumed = 0, [], [], 0
    with contextlib.ExitStack() as stack:
        locked: UsageError | None = None
        todo = None
        if proc.is_writer:
            try:
                stack.enter_context(store.writing(NUMERICS_VERSION))
            except UsageError as err:
                locked = err
            else:
                done = store.completed_run_ids()  # another writer may have finished runs before we got the lock
                todo = np.asarray([s.run_id not in done for s in specs], np.int32)
        # process 0 decides which runs are left: the others may not see the directory
        todo = distributed.from_writer(todo, len(specs), error=str(locked) if locked else None)
        if locked is not None:
            raise locked
        groups = cohorts([s for s, keep in zip(specs, todo, strict=True) if keep])
        trained = sum(len(g) for g in groups)
        bar = Progress(sum(s.train.steps for g in groups for s in g), progress if proc.is_writer else "off")
        try:
            for group in groups:
                dspec = group[0].data
                dataset_ = datasets[(dspec.name, dspec.extra)]
                width = members_per_device(
                    full_sizes[group[0].cohort_key], member_bytes(group[0], dataset_), device_list, max_members
                )
                width = distributed.min_over_processes(width)  # hosts may differ in memory
                digest = hashlib.sha256(repr(group[0].cohort_key).encode()).hexdigest()[:10]

                def report_progress(n: int, message: str, size: int = len(group)) -> None:
                    bar.update(n * size, message)

                saving = checkpoint_every_s is not None and proc.count == 1
                chunks = train_cohort(
                    group,
                    dataset_,
                    devices=device_list,
                    width=width,
                    progress=report_progress,
                    checkpoint_dir=store.root / ckpt.DIRECTORY if saving else None,
                    checkpoint_every_s=checkpoint_every_s or 0.0,
                )
                for rows, info in distributed.guard(chunks):
                    info["processes"] = proc.count
                    if proc.is_writer:
                        files.append(store.write(rows, f"{name}-{digest}", {**meta, "chunk": info}))
                    member_steps += info["members"] * (info["steps"] - info["resumed_at_step"])
                    resumed += info["resumed_at_step"] > 0
            if proc.is_writer:
                _drop_spent_checkpoints(store)
        finally:
            bar.close()
    wall = time.perf_counter() - t0
    return {
        "experiment": name,
        "scale": resolved.scale,
        "runs": len(specs),
        "skipped": len(specs) - trained,
        "trained": trained,
        "resumed_chunks": resumed,
        "cohorts": len(groups),
        "files": [str(f) for f in files],
        "wall_s": wall,
        "member_steps_per_s": member_steps / wall if wall > 0 else math.nan,
        "devices": [str(d) for d in device_list],
        "processes": proc.count,
        "process_index": proc.index,
    }


def _check_arguments(out: Any, overrides: Any, only: Any, devices: Any, max_members: Any, progress: Any) -> None:
    """The Python API's arguments, checked as the command line's are (one line, before any work)."""
    from initbench.inits.errors import positive_int

    if not isinstance(out, str | Path) or not str(out).strip():
        raise UsageError(f"out must be a directory path (str or Path), got {out!r}")
    if overrides is not None and not (isinstance(overrides, Mapping) and all(isinstance(k, str) for k in overrides)):
        raise UsageError(f"overrides must be a mapping {{'dotted.field': value}}, got {overrides!r}")
    if only is not None:
        bad = not isinstance(only, Mapping) or any(
            not isinstance(k, str) or isinstance(v, str) or not isinstance(v, Sequence) for k, v in only.items()
        )
        if bad:
            raise UsageError(f"only must be a mapping {{field: [values, ...]}} (lists, not strings), got {only!r}")
    for name, value in (("devices", devices), ("max_members", max_members)):
        if value is not None:
            positive_int(name, value)
    if progress not in ("bar", "log", "off"):
        raise UsageError(f"progress must be 'bar', 'log' or 'off', got {progress!r}")


def _drop_spent_checkpoints(store: ResultStore) -> None:
    """Removes the checkpoints whose runs are all in the directory (a kill between write and removal)."""
    where = store.root / ckpt.DIRECTORY
    if not where.is_dir():
        return
    done = store.completed_run_ids()
    for path in where.glob("chunk-*.npz"):
        run_ids = ckpt.read(path, only="run_ids")
        if run_ids is None or set(run_ids) <= done:
            path.unlink(missing_ok=True)
    if not any(where.iterdir()):
        where.rmdir()


def _check_one_member_fits(
    specs: Sequence[RunSpec], datasets: Mapping[tuple, data_lib.Dataset], devices: Sequence[jax.Device]
) -> None:
    """Refuses, before any work, a run whose one member alone needs more than a device's whole memory.

    The estimate (:func:`member_bytes`: weights, gradients, optimizer state, activations) is judged
    against the device's full memory, not the chunk budget: only a run that cannot fit at all is refused.
    """
    from initbench.benchmarks.train import _device_limit

    local = [d for d in devices if d.process_index == jax.process_index()] or list(devices)
    limit = _device_limit(local[0])
    for group in cohorts(specs):
        first = group[0]
        need = member_bytes(first, datasets[(first.data.name, first.data.extra)])
        if need > limit:
            raise UsageError(
                f"{first.model.label}: one run needs about {need / 2**30:.3g} GiB (weights, gradients, optimizer "
                f"state, activations at batch {first.data.batch_size}), more than the {limit / 2**30:.3g} GiB of "
                f"{local[0].platform} device {local[0].id}: use a smaller model or batch"
            )


def _check_models(specs: Sequence[RunSpec], datasets: Mapping[tuple, data_lib.Dataset], source: str) -> None:
    """Builds and abstractly initializes each distinct model on its data: fails before any work.

    Catches a field or size the family refuses, a model that does not fit its inputs, an
    initializer whose arguments do not fit a kernel, a batch larger than the training set, an
    ``lr_scale``/``wd_scale``/``init_scale`` path pattern that selects no parameter of a model, or
    a layer class that selects none in any model of the grid.
    """

    def rules_of(spec: RunSpec, field: str) -> Options:
        return spec.init.scale if field == "init_scale" else getattr(spec.train, field)

    seen: set = set()
    classes: dict[tuple[str, str], set[str]] = {}  # (field, class selector) -> the classes the grid's models have
    for spec in specs:
        t = spec.train
        key = (spec.model, spec.init, spec.data.name, spec.data.extra, spec.data.batch_size, t.lr_scale, t.wd_scale)
        key += (t.eps_scale,)
        key += (spec.parametrization, t.optimizer, t.weight_decay > 0)  # its multipliers and their classes
        if key in seen:
            continue
        seen.add(key)
        dataset = datasets[(spec.data.name, spec.data.extra)]
        n_train = len(dataset.y_train)
        if spec.data.batch_size > n_train:
            raise UsageError(
                f"{source}: batch_size {spec.data.batch_size} exceeds the {n_train} training examples of {dataset.name}"
            )
        try:  # the model, its initializers and any model-level scheme, traced abstractly: no work yet
            init = scheme_init(spec, dataset)
            data = (dataset.x_train, dataset.y_train) if spec.init.scheme else init_data(spec, dataset)
            x, y = (jax.ShapeDtypeStruct(a.shape, a.dtype) for a in data)
            shapes = jax.eval_shape(init, jax.random.key(0), x, y)
            if is_plugin(spec.model.family):  # a user's model: its logits, in training and evaluation
                batch = jax.ShapeDtypeStruct((spec.data.batch_size, *dataset.input_shape), jnp.float32)
                build_model(spec, dataset).check(shapes, batch, dataset.num_classes)
            present = classes_present(shapes.get("params", {}))
            name = dict(spec.parametrization).get("name", "sp")
            if name != "sp":  # its rules go by layer class: the names must agree with the shapes
                wide = dataclasses.replace(spec, model=dataclasses.replace(spec.model, width=2 * spec.model.width))
                wider = jax.eval_shape(scheme_init(wide, dataset), jax.random.key(0), x, y)
                check_structure(shapes["params"], wider["params"], f"{spec.model.label} ({name})")
            for field in ("lr_scale", "wd_scale", "eps_scale", "init_scale"):
                rules = rules_of(spec, field)
                lr_scale_tree(shapes["params"], rules, spec.model.label, field=field)  # every path pattern selects
                for selector, _ in rules:
                    if selector in SELECTORS:
                        classes.setdefault((field, selector), set()).update(present)
        except UsageError as err:  # raised by a validator (an init's, the family's, a scheme's): bad input
            # anything else raised while tracing is a bug in a model or scheme: it keeps its traceback
            raise UsageError(f"{source}: {spec.model.label} with {spec.init.label}: {first_line(err)}") from err
    for (field, selector), present in classes.items():
        if selector not in present:
            models = sorted({s.model.label for s in specs if selector in dict(rules_of(s, field))})
            named = ", ".join(models[:3]) + (", ..." if len(models) > 3 else "")
            raise UsageError(
                f"{source}: {field} selector {selector!r} selects no parameter of any model of the grid "
                f"({named}; they have: {', '.join(sorted(present))})"
            )


def _load_datasets(specs: Sequence[RunSpec], data_dir: str | None) -> dict[tuple, data_lib.Dataset]:
    """Loads each distinct dataset of ``specs`` once (before the directory lock: slow loads block no one)."""
    datasets: dict[tuple, data_lib.Dataset] = {}
    for spec in specs:
        key = (spec.data.name, spec.data.extra)
        if key not in datasets:
            opts = dict(spec.data.extra)
            if not data_lib.entry(spec.data.name).offline and data_dir:
                opts["data_dir"] = data_dir
            datasets[key] = data_lib.load(spec.data.name, **opts)
    return datasets
