"""Tidy results: the row schema, provenance, and the append-only parquet ResultStore.

One row per observation: the identifying columns of the run (:meth:`RunSpec.identity`), then
``step, split, layer, metric, value, status``. Each file holds one cohort chunk, is written
once through a temporary file and an atomic rename, and carries the provenance of the process
that wrote it in its parquet metadata (key ``initbench``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from initbench.inits.errors import UsageError

SCHEMA_VERSION = 1
ID_COLUMNS = (
    "run_id", "suite", "benchmark", "model", "depth", "width", "activation", "init", "init_args",
    "dataset", "optimizer", "lr", "batch_size", "seed",
)  # fmt: skip
COLUMNS = (*ID_COLUMNS, "step", "split", "layer", "metric", "value", "status")
_META_KEY = b"initbench"
_TMP_SUFFIX = ".parquet.tmp"


class IncompatibleResults(UsageError):
    """A results directory written by an incompatible schema version."""


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


def provenance() -> dict[str, Any]:
    """Versions, backend, devices, git commit and UTC time of this process."""
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
        "utc_time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


class ResultStore:
    """An append-only directory of parquet files of tidy rows.

    Args:
      root: The results directory (created on the first write).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def files(self) -> list[Path]:
        """Complete result files (temporary files of interrupted writes are ignored)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("*.parquet") if p.is_file())

    def check_writable(self) -> None:
        """Raises OSError unless the directory exists writable or can be created."""
        probe = self.root
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
            raise UsageError(f"results directory {str(self.root)!r} is not writable")

    def check_compatible(self) -> None:
        """Raises IncompatibleResults if any file has another schema version."""
        for path in self.files():
            meta = self.provenance_of(path)
            if meta.get("schema_version") != SCHEMA_VERSION:
                raise IncompatibleResults(
                    f"{path} was written with results schema {meta.get('schema_version')!r}, this initbench "
                    f"writes schema {SCHEMA_VERSION}; use a new --out directory"
                )

    @staticmethod
    def provenance_of(path: Path) -> dict[str, Any]:
        """The provenance stored in one file."""
        meta = pq.read_schema(path).metadata or {}
        try:
            return json.loads(meta[_META_KEY])
        except (KeyError, json.JSONDecodeError):
            return {}

    def completed_run_ids(self) -> set[str]:
        """run_ids with rows in the store."""
        ids: set[str] = set()
        for path in self.files():
            ids.update(pq.read_table(path, columns=["run_id"]).column("run_id").unique().to_pylist())
        return ids

    def write(self, rows: pd.DataFrame, name: str, meta: dict[str, Any]) -> Path:
        """Writes ``rows`` as a new file, atomically (temp file, fsync, rename).

        Args:
          rows: Tidy rows with :data:`COLUMNS`.
          name: File stem (a unique suffix is added).
          meta: Provenance stored in the file's metadata.
        """
        missing = [c for c in COLUMNS if c not in rows.columns]
        if missing:
            raise UsageError(f"result rows lack columns {missing}")
        self.root.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(rows.loc[:, list(COLUMNS)], preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()})
        final = self.root / f"{name}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = final.with_name(final.stem + _TMP_SUFFIX)
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        return final

    def read(self) -> pd.DataFrame:
        """Every row in the store, with a ``file`` column naming its file."""
        frames = []
        for path in self.files():
            df = pq.read_table(path).to_pandas()
            df["file"] = path.name
            frames.append(df)
        if not frames:
            return pd.DataFrame(columns=[*COLUMNS, "file"])
        return pd.concat(frames, ignore_index=True)
