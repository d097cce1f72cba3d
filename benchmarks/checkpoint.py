"""Mid-cohort checkpoints: a chunk's training state at an evaluation boundary, so an interrupt loses one segment.

A checkpoint is one ``.npz`` file (no pickle): the host values of a nested structure of dicts,
lists, numbers, strings and numpy arrays, its layout as JSON in the entry ``__structure__`` and
every array as its own entry. Written atomically (a hidden temporary file, fsync, rename), so a
kill leaves either the previous checkpoint or the new one. A checkpoint that cannot be read
(damaged, or written by an incompatible version) counts as absent: it only saves time.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

#: The subdirectory of a results directory that holds checkpoints (readers skip ``_`` names).
DIRECTORY = "_checkpoints"
_FORMAT = 1


def _encode(obj: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(obj, np.ndarray | np.generic):
        arrays.append(np.asarray(obj))
        return {"a": len(arrays) - 1}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"checkpoint: dict keys must be strings, got {sorted(map(repr, obj))[:3]}")
        return {"d": {k: _encode(v, arrays) for k, v in obj.items()}}
    if isinstance(obj, list | tuple):
        return {"l": [_encode(v, arrays) for v in obj]}
    if obj is None or isinstance(obj, bool | int | float | str):
        return {"v": obj}
    raise TypeError(f"checkpoint: cannot store a {type(obj).__name__}")


def _decode(node: Any, arrays: Any) -> Any:
    if "a" in node:
        return arrays[f"a{node['a']}"]
    if "d" in node:
        return {k: _decode(v, arrays) for k, v in node["d"].items()}
    if "l" in node:
        return [_decode(v, arrays) for v in node["l"]]
    return node["v"]


def write(path: Path, obj: Any) -> None:
    """Stores ``obj`` (dicts with str keys, lists, tuples as lists, scalars, numpy arrays) at ``path`` atomically."""
    arrays: list[np.ndarray] = []
    structure = {"format": _FORMAT, "tree": _encode(obj, arrays)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, __structure__=np.asarray(json.dumps(structure)), **{f"a{i}": a for i, a in enumerate(arrays)})
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read(path: Path, only: str | None = None) -> Any | None:
    """The object stored at ``path``, or None when it is missing or unreadable.

    ``only``: the entry of a stored dict to read, loading no other array (e.g. ``run_ids``).
    """
    try:
        # our own handle: np.load leaves its file open when the file is damaged
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:  # arrays load lazily, as decoded
            structure = json.loads(str(data["__structure__"]))
            if structure.get("format") != _FORMAT:
                return None
            tree = structure["tree"]
            return _decode(tree if only is None else tree["d"][only], data)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None
