"""MNIST-format datasets from their standard IDX files, offline: Fashion-MNIST from Debian, MNIST from a user's copy.

LeCun's IDX format (the files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally gzipped): a big-endian
header (two zero bytes, a type code, the number of dimensions, then each dimension as uint32)
followed by the data. Where the files are looked for, in order:

1. ``data_dir`` (``--data-dir``), or its subdirectory named after the dataset
   (``fashion_mnist``/``fashion-mnist``, ``mnist``), when given;
2. the directory a Debian package installs (:data:`SYSTEM_DIRS`: ``apt install
   dataset-fashion-mnist`` puts the official 60,000/10,000 Fashion-MNIST split, MIT licence, in
   ``/usr/share/datasets/fashion-mnist``; Debian packages no MNIST);
3. a prepared TFDS copy (``initbench prepare NAME``), through the TFDS adapter.

A dataset found nowhere is one line saying how to get it. Images are scaled to [0, 1] and
standardized with the training split's mean and standard deviation over all pixels (as the TFDS
adapter does), so both sources give the same arrays.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from initbench.benchmarks.data.base import (
    TFDS_IMAGE_DATASETS,
    Dataset,
    DataUnavailable,
    check_per_feature,
    standardize,
)
from initbench.inits.errors import UsageError, positive_int

IDX_DATASETS = ("mnist", "fashion_mnist")
SYSTEM_DIRS = {"fashion_mnist": ("/usr/share/datasets/fashion-mnist",), "mnist": ("/usr/share/datasets/mnist",)}
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4")}


def read_idx(path: str | Path) -> np.ndarray:
    """The array in one IDX file (gzipped or not).

    Example:
      >>> import tempfile, os
      >>> raw = bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9])
      >>> with tempfile.NamedTemporaryFile(delete=False) as f:
      ...     _ = f.write(raw)
      >>> read_idx(f.name).tolist()
      [7, 8, 9]
      >>> os.unlink(f.name)
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise UsageError(f"{str(path)!r} is not an IDX file (bad header {data[:4]!r})")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_TYPES[data[2]])
    start, count = 4 + 4 * ndim, int(np.prod(dims)) if dims else 0
    if len(data) - start != count * dtype.itemsize:
        raise UsageError(f"{str(path)!r}: the header says {dims} of {dtype}, the file holds {len(data) - start} bytes")
    return np.frombuffer(data, dtype, count, start).reshape(dims)


def _find(name: str, directory: Path) -> dict[str, Path] | None:
    """The four files in ``directory`` (plain or ``.gz``), or None when any is missing."""
    found = {}
    for split, stems in FILES.items():
        for kind, stem in zip(("images", "labels"), stems, strict=True):
            hits = [directory / f"{stem}{ext}" for ext in ("", ".gz") if (directory / f"{stem}{ext}").is_file()]
            if not hits:
                return None
            found[f"{split}_{kind}"] = hits[0]
    return found


def locate(name: str, data_dir: str | None = None) -> dict[str, Path] | None:
    """The IDX files of ``name``: from ``data_dir`` (or its subdirectory), else the system directory."""
    candidates: list[Path] = []
    if data_dir is not None:
        root = Path(data_dir)
        candidates += [root, root / name, root / name.replace("_", "-")]
    else:
        candidates += [Path(d) for d in SYSTEM_DIRS[name]]
    for directory in candidates:
        files = _find(name, directory) if directory.is_dir() else None
        if files is not None:
            return files
    return None


def load_idx(
    name: str,
    data_dir: str | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    per_feature: bool = False,
) -> Dataset:
    """Fashion-MNIST or MNIST from IDX files (or a prepared TFDS copy): 28x28x1 images, 10 classes.

    Args:
      name: ``fashion_mnist`` or ``mnist``.
      data_dir: A directory with the four IDX files (or a TFDS data directory).
      n_train: Keep the first ``n_train`` training examples (all 60,000 by default).
      n_test: Keep the first ``n_test`` test examples (all 10,000 by default).
      per_feature: Standardize each pixel with its own training-set mean and standard deviation
        (the inputs self-normalizing networks assume; scikit-learn's ``StandardScaler``) instead
        of one mean and deviation over all pixels (whose per-pixel variances then average 0.70
        on Fashion-MNIST: the pixels' means differ).

    Raises:
      DataUnavailable: no copy found (the message says how to get one).
    """
    for label, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None:
            positive_int(label, value)
    check_per_feature(name, per_feature)
    files = locate(name, data_dir)
    if files is None:
        from initbench.benchmarks.data import tfds_adapter

        try:
            return tfds_adapter.load_tfds(
                name, data_dir=data_dir, n_train=n_train, n_test=n_test, per_feature=per_feature
            )
        except (DataUnavailable, ImportError) as err:
            where = f"in {data_dir!r}" if data_dir else f"in {', '.join(SYSTEM_DIRS[name])}"
            ways = ["apt install dataset-fashion-mnist"] if name == "fashion_mnist" and not data_dir else []
            ways += [
                f"--data-dir DIR holding {', '.join(FILES['train'])} and the t10k files (gzipped or not)",
                f"`initbench prepare {name} --data-dir DIR` where TFDS can download",
            ]
            raise DataUnavailable(
                f"{name}: no IDX files {where} and no prepared TFDS copy; get it with " + ", or ".join(ways)
            ) from err
    arrays = {key: read_idx(path) for key, path in files.items()}
    splits = []
    for split, limit in (("train", n_train), ("test", n_test)):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise UsageError(f"{name}: {split} images {x.shape} and labels {y.shape} do not match (28x28 images)")
        n = len(y) if limit is None else min(limit, len(y))
        splits.append(((x[:n].astype(np.float32) / 255.0)[..., None], y[:n].astype(np.int32)))
    (x_train, y_train), (x_test, y_test) = splits
    x_train, x_test = standardize(x_train, x_test, per_feature=per_feature)
    source = files["train_images"].parent
    how = ", per-pixel standardized" if per_feature else ""
    desc = f"{TFDS_IMAGE_DATASETS[name]} from IDX files in {source}{how}, {len(y_train)} train / {len(y_test)} test"
    return Dataset(name, x_train, y_train, x_test, y_test, 10, desc)
