"""TFDS image datasets through ``tfds.data_source`` (random access, no TensorFlow needed to read).

Reading a prepared dataset needs only ``tensorflow-datasets``; preparing one (download and
convert to array_record) needs TensorFlow: ``pip install 'initbench[tfds]'`` then
``initbench prepare NAME --data-dir DIR`` on a machine with internet, or with ``--manual-dir``
holding the pre-downloaded archives. Tests use ``tfds.testing.mock_data``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np

from initbench.benchmarks.data.base import TFDS_IMAGE_DATASETS, Dataset, DataUnavailable, check_per_feature, standardize


def _how_to_prepare(name: str, data_dir: str | None) -> str:
    where = f" --data-dir {data_dir}" if data_dir else ""
    return (
        f"dataset {name!r} is not prepared{' in ' + data_dir if data_dir else ''} and cannot be downloaded here; "
        f"on a machine with internet run: pip install 'initbench[tfds]' && initbench prepare {name}{where} "
        "(or pass --manual-dir with the downloaded archives)"
    )


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    # tfds warns through absl's logger about half-prepared folders before it raises; our error
    # says what to do in one line, so the warning only adds noise to the user's terminal.
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _read_split(name: str, split: str, data_dir: str | None, limit: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    import tensorflow_datasets as tfds

    try:
        with _quiet_absl():
            source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
            num_classes = int(tfds.builder(name, data_dir=data_dir).info.features["label"].num_classes)
    except Exception as err:  # tfds raises several types for "not prepared"
        raise DataUnavailable(_how_to_prepare(name, data_dir)) from err
    n = len(source) if limit is None else min(limit, len(source))
    records = [source[i] for i in range(n)]
    x = np.stack([np.asarray(r["image"]) for r in records]).astype(np.float32) / 255.0
    y = np.asarray([int(r["label"]) for r in records], np.int32)
    return x, y, num_classes


def load_tfds(
    name: str,
    data_dir: str | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    per_feature: bool = False,
) -> Dataset:
    """Reads a prepared TFDS image dataset's train and test splits into memory.

    Args:
      name: One of :data:`TFDS_IMAGE_DATASETS`.
      data_dir: TFDS data directory (default: TFDS's own, ``~/tensorflow_datasets``).
      n_train: Keep the first ``n_train`` training examples (all by default).
      n_test: Keep the first ``n_test`` test examples (all by default).
      per_feature: Standardize each pixel (and channel) with its own training-set mean and
        standard deviation (:func:`~initbench.benchmarks.data.base.standardize`) instead of one
        mean and deviation over all pixels.

    Raises:
      DataUnavailable: the dataset is not prepared (the message says how to prepare it).
    """
    check_per_feature(name, per_feature)
    x_train, y_train, num_classes = _read_split(name, "train", data_dir, n_train)
    x_test, y_test, _ = _read_split(name, "test", data_dir, n_test)
    x_train, x_test = standardize(x_train, x_test, per_feature=per_feature)
    how = ", per-pixel standardized" if per_feature else ""
    desc = f"TFDS {TFDS_IMAGE_DATASETS[name]}{how}, {len(y_train)} train / {len(y_test)} test"
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes, desc)


def prepare(name: str, data_dir: str | None = None, manual_dir: str | None = None) -> str:
    """Downloads (or reads from ``manual_dir``) and prepares a TFDS dataset as array_record.

    Returns:
      The directory the dataset was prepared in.

    Raises:
      DataUnavailable: TensorFlow is missing, or the download failed (offline).
    """
    if name not in TFDS_IMAGE_DATASETS:
        from initbench.inits.errors import unknown_choice

        raise unknown_choice("TFDS dataset", name, TFDS_IMAGE_DATASETS)
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        raise DataUnavailable(
            f"preparing {name!r} needs TensorFlow: pip install 'initbench[tfds]' (reading a prepared dataset does not)"
        ) from None
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    try:
        builder.download_and_prepare(download_config=config)
    except Exception as err:
        raise DataUnavailable(
            f"could not prepare {name!r} ({type(err).__name__}); {_how_to_prepare(name, data_dir)}"
        ) from err
    return builder.data_dir
