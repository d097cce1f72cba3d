"""Tidy results: one typed Arrow schema per kind, provenance, and the append-only ResultStore.

A results directory holds one **kind** of result (:data:`KINDS`: training ``runs``, variance
``check``, ``coord``-inate checks), recorded in its manifest ``_initbench.json`` with the schema and numerics versions.
Every parquet file in it has exactly the kind's schema (typed, nullable), so
``pandas.read_parquet(dir)``, ``pyarrow.dataset.dataset(dir)``, ``polars.read_parquet(dir + "/*.parquet")``
and DuckDB's ``read_parquet('dir/*.parquet')`` read the whole directory directly. Nothing else
the readers would trip on lives there: the manifest and the report directory start with ``_``,
the lock and temporary files with ``.`` (Arrow's dataset discovery skips both prefixes).

One row per observation: the identity columns of the run (every field that makes two runs
differ), then the observation columns. Files are written once (temporary file, fsync, atomic
rename) by one writer at a time (:meth:`ResultStore.writing` holds an ``flock`` on ``.lock``
and names the holder to anyone else), with the provenance of the write in the parquet metadata
(key ``initbench``). :meth:`ResultStore.read` returns one row per observation: identical
duplicates collapse, disagreeing ones are an error that names both files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import platform
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from initbench.benchmarks.paths import can_write_in
from initbench.inits.errors import UsageError, first_line, unknown_choice

SCHEMA_VERSION = 7  # 3: runs gained lr_scale; 4: optimizer_args, wd_scale, clip_norm, label_smoothing,
# divergence_factor, layer_records, warmup_steps (momentum is null for optimizers without one); 5: init_scale,
# parametrization, base_width; 6: depth_alpha, base_depth, eps_scale; 7: checks gained init_scale,
# parametrization, base_width
MANIFEST = "_initbench.json"
LOCK = ".lock"
_META_KEY = b"initbench"
_TMP_SUFFIX = ".parquet.tmp"


class IncompatibleResults(UsageError):
    """A results directory of another kind, schema version or numerics version."""


@dataclasses.dataclass(frozen=True)
class Kind:
    """The schema of one kind of result.

    Attributes:
      name: ``runs`` or ``check``.
      identity: ``(column, type)`` of the columns that identify a run; every row carries them.
      observation: ``(column, type)`` of the columns of one observation.
      key: Columns that identify one observation within a run (with ``run_id``).
      description: What a directory of this kind holds.
    """

    name: str
    identity: tuple[tuple[str, pa.DataType], ...]
    observation: tuple[tuple[str, pa.DataType], ...]
    key: tuple[str, ...]
    description: str

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of every file of this kind (all fields nullable)."""
        return pa.schema([pa.field(name, kind, nullable=True) for name, kind in (*self.identity, *self.observation)])

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column, in order."""
        return tuple(name for name, _ in (*self.identity, *self.observation))

    @property
    def config_columns(self) -> tuple[str, ...]:
        """Identity columns that describe a configuration: all but ``run_id`` and ``seed``."""
        return tuple(name for name, _ in self.identity if name not in ("run_id", "seed"))


_S, _I, _F = pa.string(), pa.int64(), pa.float64()
RUNS = Kind(
    "runs",
    identity=(
        ("run_id", _S),
        ("numerics_version", _S),
        ("suite", _S),
        ("benchmark", _S),
        ("model", _S),
        ("family", _S),
        ("depth", _I),
        ("width", _I),
        ("activation", _S),
        ("model_options", _S),
        ("init", _S),
        ("init_args", _S),
        ("bias_init", _S),
        ("bias_args", _S),
        ("init_scale", _S),
        ("parametrization", _S),
        ("base_width", _I),
        ("depth_alpha", _F),
        ("base_depth", _I),
        ("dataset", _S),
        ("dataset_options", _S),
        ("batch_size", _I),
        ("eval_examples", _I),
        ("optimizer", _S),
        ("optimizer_args", _S),
        ("lr", _F),
        ("momentum", _F),
        ("weight_decay", _F),
        ("lr_scale", _S),
        ("wd_scale", _S),
        ("eps_scale", _S),
        ("clip_norm", _F),
        ("label_smoothing", _F),
        ("divergence_factor", _F),
        ("layer_records", pa.bool_()),
        ("schedule", _S),
        ("warmup_steps", _I),
        ("steps", _I),
        ("eval_every", _I),
        ("seed", _I),
    ),
    observation=(("step", _I), ("split", _S), ("layer", _S), ("metric", _S), ("value", _F), ("status", _S)),
    key=("step", "split", "layer", "metric"),
    description="training runs (initbench run)",
)
CHECK = Kind(
    "check",
    identity=(
        ("run_id", _S),
        ("numerics_version", _S),
        ("model", _S),
        ("family", _S),
        ("depth", _I),
        ("width", _I),
        ("activation", _S),
        ("model_options", _S),
        ("init", _S),
        ("init_args", _S),
        ("bias_init", _S),
        ("bias_args", _S),
        ("input_shape", _S),
        ("batch_size", _I),
        ("seed", _I),
        ("init_scale", _S),
        ("parametrization", _S),
        ("base_width", _I),
    ),
    observation=(("layer", _S), ("layer_index", _I), ("metric", _S), ("value", _F)),
    key=("layer", "metric"),
    description="variance-preservation checks at initialization (initbench check)",
)
COORD = Kind(
    "coord",
    identity=RUNS.identity,
    observation=RUNS.observation,
    key=RUNS.key,
    description="coordinate checks (initbench coord-check)",
)
KINDS: dict[str, Kind] = {k.name: k for k in (RUNS, CHECK, COORD)}
# columns of the runs kind, kept for callers that build rows by hand
COLUMNS = RUNS.columns
ID_COLUMNS = tuple(name for name, _ in RUNS.identity)


def _git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    # a copy without history can answer with something that is not a commit hash
    return commit if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit) else "unknown"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def provenance() -> dict[str, Any]:
    """Versions, backend, devices, git commit and the UTC start time of this process's job.

    :meth:`ResultStore.write` adds ``written_utc``, the time of each write.
    """
    import flax
    import jax
    import jaxlib
    import optax

    from initbench.benchmarks import __version__

    devices = jax.devices()
    return {
        "schema_version": SCHEMA_VERSION,
        "initbench": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "process_count": jax.process_count(),
        "git_commit": _git_commit(),
        "started_utc": _now(),
    }


class ResultStore:
    """An append-only directory of parquet files of one kind of tidy rows.

    Args:
      root: The results directory (created by the first write).
      kind: The kind this caller reads or writes (``runs`` or ``check``); None to take the
        directory's own kind (readers).
    """

    def __init__(self, root: str | os.PathLike, kind: str | None = None) -> None:
        if kind is not None and kind not in KINDS:
            raise unknown_choice("results kind", kind, KINDS)
        self.root = Path(root)
        self._kind = kind
        self._lock_fd: int | None = None

    # -- layout ----------------------------------------------------------------------------------
    def files(self) -> list[Path]:
        """Complete result files: exactly the ``*.parquet`` files pandas and pyarrow read.

        Hidden temporary files of interrupted writes (``.*`` + the temp suffix) are not listed.

        Raises:
          UsageError: a ``.parquet`` file whose name starts with ``.`` or ``_`` (pyarrow and pandas
            skip those, initbench never writes them: the two readers would see different tables).
        """
        if not self.root.is_dir():
            return []
        skipped = sorted(p.name for p in self.root.glob("*.parquet") if p.name.startswith(("_", ".")))
        if skipped:
            raise UsageError(
                f"{str(self.root)!r} holds {skipped[0]}, a parquet file pandas and pyarrow skip (its name starts with "
                f"'{skipped[0][0]}') and initbench did not write: move it out of the results directory"
            )
        return sorted(p for p in self.root.glob("*.parquet") if p.is_file())

    def manifest(self) -> dict[str, Any] | None:
        """The directory's manifest (kind, schema and numerics versions), None when it has none."""
        path = self.root / MANIFEST
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UsageError(f"results manifest {str(path)!r} is unreadable ({err}); move it away") from None

    @property
    def kind(self) -> Kind:
        """The kind of this store: the caller's, else the directory's."""
        name = self._kind or (self.manifest() or {}).get("kind")
        if name not in KINDS:
            raise IncompatibleResults(f"{str(self.root)!r} is not an initbench results directory (no {MANIFEST})")
        return KINDS[name]

    def check_writable(self) -> None:
        """Raises UsageError unless the directory exists writable or can be created."""
        if not can_write_in(self.root):
            raise UsageError(f"results directory {str(self.root)!r} is not writable")

    def check_compatible(self, numerics_version: str | None = None) -> None:
        """Raises IncompatibleResults unless the directory is empty or of this kind, schema and numerics.

        Args:
          numerics_version: The numerics version about to be written (None: any).
        """
        manifest = self.manifest()
        if manifest is None:
            if self.files():
                raise IncompatibleResults(
                    f"{str(self.root)!r} was written by an older initbench (results schema 1, no {MANIFEST}); "
                    f"this initbench writes schema {SCHEMA_VERSION}: use a new --out directory"
                )
            return
        found = manifest.get("kind")
        if self._kind is not None and found != self._kind:
            held = KINDS[found].description if found in KINDS else f"results of kind {found!r}"
            raise IncompatibleResults(
                f"{str(self.root)!r} holds {held}, not {KINDS[self._kind].description}: use another directory"
            )
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise IncompatibleResults(
                f"{str(self.root)!r} was written with results schema {manifest.get('schema_version')!r}, "
                f"this initbench writes schema {SCHEMA_VERSION}: use a new --out directory"
            )
        if numerics_version is not None and manifest.get("numerics_version") != numerics_version:
            raise IncompatibleResults(
                f"{str(self.root)!r} holds results of numerics version {manifest.get('numerics_version')!r}; this "
                f"initbench computes version {numerics_version!r} and never mixes them: use a new --out directory"
            )

    # -- writing ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, numerics_version: str) -> Iterator[ResultStore]:
        """Holds the directory's writer lock; creates the manifest and removes stale temporary files.

        Raises:
          UsageError: another process is writing here (the message names it).
        """
        if self._kind is None:
            raise ValueError("a ResultStore opened for writing needs a kind")
        self.check_compatible(numerics_version)
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UsageError(
                f"results directory {str(self.root)!r} is being written by {holder}; wait for it to finish or "
                "use another --out"
            ) from None
        try:
            os.ftruncate(fd, 0)
            holder = f"pid {os.getpid()} on {socket.gethostname()} since {_now()} ({' '.join(sys.argv[:3])})"
            os.write(fd, holder.encode())
            self._lock_fd = fd
            self.check_compatible(numerics_version)  # the directory may have changed before we got the lock
            # a kill -9 mid-write leaves a temporary file: a results file's or the manifest's
            leftovers = [*self.root.glob(f".*{_TMP_SUFFIX}"), *self.root.glob(f".{MANIFEST}.*.tmp")]
            for stale in [*leftovers, *self.root.glob("_checkpoints/.chunk-*.npz.tmp")]:
                stale.unlink()
            if self.manifest() is None:
                self._write_atomic(
                    self.root / MANIFEST,
                    json.dumps(
                        {"kind": self._kind, "schema_version": SCHEMA_VERSION, "numerics_version": numerics_version}
                    ).encode(),
                )
            yield self
        finally:
            self._lock_fd = None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @staticmethod
    def _write_atomic(path: Path, payload: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as err:
            raise UsageError(
                f"cannot write {str(path)!r}: {os.strerror(err.errno) if err.errno else first_line(err)}"
            ) from err
        finally:
            if tmp.exists():
                tmp.unlink()

    def write(self, rows: pd.DataFrame, name: str, meta: dict[str, Any]) -> Path:
        """Writes ``rows`` as a new file with the kind's schema, atomically; needs :meth:`writing`.

        Args:
          rows: Tidy rows with the kind's columns.
          name: File stem (a unique suffix is added).
          meta: Provenance stored in the file's metadata (``written_utc`` is added).
        """
        if self._lock_fd is None:
            raise RuntimeError("ResultStore.write needs the writer lock: use `with store.writing(...)`")
        kind = self.kind
        missing = [c for c in kind.columns if c not in rows.columns]
        if missing:
            raise ValueError(f"result rows lack columns {missing}")
        table = pa.Table.from_pandas(rows.loc[:, list(kind.columns)], schema=kind.schema, preserve_index=False)
        meta = {**meta, "kind": kind.name, "schema_version": SCHEMA_VERSION, "written_utc": _now()}
        table = table.replace_schema_metadata({_META_KEY: json.dumps(meta, default=str).encode()})
        final = self.root / f"{name}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = final.with_name(f".{final.stem}{_TMP_SUFFIX}")
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError as err:  # disk full, quota, a directory gone: the machine's, not a bug
            why = os.strerror(err.errno) if err.errno else first_line(err)
            raise UsageError(
                f"cannot write results to {str(self.root)!r}: {why}; completed chunks are saved: make room and "
                "rerun the same command to resume"
            ) from err
        finally:
            if tmp.exists():
                tmp.unlink()
        return final

    # -- reading ---------------------------------------------------------------------------------
    @staticmethod
    def provenance_of(path: Path) -> dict[str, Any]:
        """The provenance stored in one file."""
        try:
            meta = pq.read_schema(path).metadata or {}
        except (pa.ArrowException, OSError) as err:
            raise UsageError(
                f"results file {str(path)!r} is not a readable parquet file ({err}); move it away"
            ) from None
        try:
            return json.loads(meta[_META_KEY])
        except (KeyError, json.JSONDecodeError):
            return {}

    def _read_file(self, path: Path, columns: list[str] | None = None) -> pa.Table:
        try:
            stored = pq.read_schema(path)
        except (pa.ArrowException, OSError) as err:
            raise UsageError(
                f"results file {str(path)!r} is not a readable parquet file ({type(err).__name__}); move it away"
            ) from None
        expected = self.kind.schema
        if stored.remove_metadata() != expected.remove_metadata():  # never cast or fill a foreign file
            names, want = stored.names, expected.names
            if names != want:
                missing = [n for n in want if n not in names][:3]
                extra = [n for n in names if n not in want][:3]
                why = (
                    f"columns missing: {missing}, unknown: {extra}" if missing or extra else "columns in another order"
                )
            else:
                bad = next(f for f, g in zip(stored, expected, strict=True) if f.type != g.type)
                why = f"column {bad.name} is {bad.type}, not {expected.field(bad.name).type}"
            raise UsageError(
                f"results file {str(path)!r} is not of this directory's schema ({why}): "
                "a file initbench did not write; move it out of the results directory"
            )
        try:
            return pq.read_table(path, columns=columns, schema=self.kind.schema)
        except (pa.ArrowException, OSError) as err:
            raise UsageError(
                f"results file {str(path)!r} is corrupt or not of this directory's schema ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); move it away and rerun to recompute its runs"
            ) from None

    def completed_run_ids(self) -> set[str]:
        """run_ids with rows in the store."""
        ids: set[str] = set()
        for path in self.files():
            ids.update(self._read_file(path, ["run_id"]).column("run_id").unique().to_pylist())
        return ids

    def read(self) -> pd.DataFrame:
        """One row per observation, with a ``file`` column naming its file.

        Raises:
          UsageError: a file is corrupt, or two files disagree about one observation (both named).
        """
        kind = self.kind
        frames = []
        for path in self.files():
            df = self._read_file(path).to_pandas()
            df["file"] = path.name
            frames.append(df)
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in (*kind.columns, "file")})
        df = pd.concat(frames, ignore_index=True)
        key = ["run_id", *kind.key]
        dup = df.duplicated(key, keep=False)
        if dup.any():
            payload = [c for c in kind.columns if c not in key]
            counts = df[dup].groupby(key, dropna=False, sort=False)[payload].nunique(dropna=False)
            disagreeing = counts[(counts > 1).any(axis=1)]
            if len(disagreeing):
                values = dict(zip(key, disagreeing.index[0], strict=True))
                mask = pd.Series(True, index=df.index)
                for column, value in values.items():
                    mask &= df[column].isna() if pd.isna(value) else df[column] == value
                files = sorted(df.loc[mask, "file"].unique())
                where = ", ".join(f"{k}={v}" for k, v in values.items() if k != "run_id")
                raise UsageError(
                    f"files {files[0]} and {files[-1]} in {str(self.root)!r} disagree about run {values['run_id']} "
                    f"({where}); remove one of them"
                )
            df = df.drop_duplicates(key, keep="first").reset_index(drop=True)
        return df
