"""The Dataset container, standardization, and the dataset registry."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from inits._errors import unknown_choice


class DataUnavailable(Exception):
    """A dataset that is not prepared and cannot be downloaded here (one-line message)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test arrays in memory.

    Attributes:
      name: Registry name.
      x_train: float32 ``(n_train, *input_shape)``, standardized with train statistics.
      y_train: int32 ``(n_train,)``.
      x_test: float32 ``(n_test, *input_shape)``, standardized with the same statistics.
      y_test: int32 ``(n_test,)``.
      num_classes: Number of classes.
      description: One line: source and split.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    description: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example."""
        return tuple(self.x_train.shape[1:])


def check_positive(name: str, value: object) -> int:
    """Raises ValueError unless ``value`` is a positive integer (a loader option)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def standardize(x_train: np.ndarray, x_test: np.ndarray, per_feature: bool) -> tuple[np.ndarray, np.ndarray]:
    """Zero mean, unit variance with the training split's statistics.

    Images use one mean/std over all pixels (per channel when there are channels) so that
    constant border pixels stay finite; feature vectors use per-feature statistics.
    """
    x_train = x_train.astype(np.float64)
    x_test = x_test.astype(np.float64)
    axes = 0 if per_feature else tuple(range(x_train.ndim - 1))
    mean = x_train.mean(axis=axes, keepdims=True)
    std = x_train.std(axis=axes, keepdims=True)
    std = np.where(std > 0, std, 1.0)
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: loader, description, and whether it works offline."""

    name: str
    loader: Callable[..., Dataset]
    description: str
    offline: bool

    @property
    def options(self) -> tuple[str, ...]:
        """Options the loader accepts."""
        return tuple(inspect.signature(self.loader).parameters)


DATASETS: dict[str, DatasetEntry] = {}


def register(name: str, description: str, offline: bool) -> Callable:
    """Decorator adding a loader to :data:`DATASETS`."""

    def wrap(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        DATASETS[name] = DatasetEntry(name, fn, description, offline)
        return fn

    return wrap


def check_options(name: str, options: dict[str, Any]) -> DatasetEntry:
    """Validates a dataset name and its options before loading."""
    _ensure_registered()
    if name not in DATASETS:
        raise unknown_choice("dataset", name, DATASETS)
    entry = DATASETS[name]
    bad = sorted(set(options) - set(entry.options))
    if bad:
        raise ValueError(f"dataset {name} has no option(s) {', '.join(bad)}; valid options: {', '.join(entry.options)}")
    return entry


def load(name: str, **options: Any) -> Dataset:
    """Loads a registered dataset (``benchmarks.data.DATASETS`` lists them)."""
    return check_options(name, options).loader(**options)


def _ensure_registered() -> None:
    # Loaders register themselves on import; import them lazily to keep `inits` imports light.
    from benchmarks.data import embedded, shapeset, tfds_adapter  # noqa: F401
