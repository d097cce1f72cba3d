"""The Dataset container, standardization, and the dataset registry."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from initbench.inits.errors import UsageError
from initbench.inits.registry import Registry, resolve


class DataUnavailable(UsageError):
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


TFDS_IMAGE_DATASETS = {
    "mnist": "MNIST 28x28x1, 10 classes",
    "fashion_mnist": "Fashion-MNIST 28x28x1, 10 classes",
    "kmnist": "Kuzushiji-MNIST 28x28x1, 10 classes",
    "cifar10": "CIFAR-10 32x32x3, 10 classes",
    "cifar100": "CIFAR-100 32x32x3, 100 classes",
    "svhn_cropped": "SVHN cropped digits 32x32x3, 10 classes",
}


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: where its loader lives, a description, and whether it works offline.

    Attributes:
      name: Registry name.
      target: ``"module:function"`` of the loader (imported on use).
      description: One line.
      offline: True for datasets generated or shipped with a package (no download).
      bound: Arguments fixed for this entry (the TFDS name of a TFDS loader).
    """

    name: str
    target: str
    description: str
    offline: bool
    bound: tuple[tuple[str, Any], ...] = ()

    @property
    def loader(self) -> Callable[..., Dataset]:
        """The loader with the bound arguments applied."""
        fn = resolve(self.target)
        return functools.partial(fn, **dict(self.bound)) if self.bound else fn

    @property
    def options(self) -> tuple[str, ...]:
        """Options the loader accepts."""
        bound = dict(self.bound)
        return tuple(p for p in inspect.signature(resolve(self.target)).parameters if p not in bound)


_EMBEDDED = "initbench.benchmarks.data.embedded"
DATASETS: Registry[DatasetEntry] = Registry(
    "dataset",
    (
        DatasetEntry(
            "digits",
            f"{_EMBEDDED}:digits",
            "scikit-learn's 1,797 8x8 handwritten digits (UCI), 10 classes; every 5th example is test",
            True,
        ),
        DatasetEntry(
            "gaussian",
            f"{_EMBEDDED}:gaussian",
            "N(0, I) inputs in `dim` dimensions with labels from nearest of `num_classes` Gaussian centres",
            True,
        ),
        DatasetEntry(
            "teacher",
            f"{_EMBEDDED}:teacher",
            "N(0, I) inputs labelled by the argmax of a random tanh teacher MLP",
            True,
        ),
        DatasetEntry(
            "sparse",
            f"{_EMBEDDED}:sparse",
            "Glorot & Bengio 2010's sparse inputs: `dim` coordinates in [0, 1], a `density` fraction non-zero",
            True,
        ),
        DatasetEntry(
            "shapeset",
            "initbench.benchmarks.data.shapeset:shapeset",
            "Glorot & Bengio 2010's Shapeset-3x2: 32x32 grey images, 1-2 shapes, 9 classes (generated)",
            True,
        ),
        DatasetEntry(
            "mnist",
            "initbench.benchmarks.data.idx:load_idx",
            "MNIST 28x28x1, 10 classes: IDX files (--data-dir) or a prepared TFDS copy",
            False,
            (("name", "mnist"),),
        ),
        DatasetEntry(
            "fashion_mnist",
            "initbench.benchmarks.data.idx:load_idx",
            "Fashion-MNIST 28x28x1, 10 classes, 60k/10k: IDX files (apt install dataset-fashion-mnist, or"
            " --data-dir) or a prepared TFDS copy",
            False,
            (("name", "fashion_mnist"),),
        ),
        *(
            DatasetEntry(
                name,
                "initbench.benchmarks.data.tfds_adapter:load_tfds",
                f"TFDS {description} (needs a prepared copy)",
                False,
                (("name", name),),
            )
            for name, description in TFDS_IMAGE_DATASETS.items()
            if name not in ("mnist", "fashion_mnist")
        ),
    ),
)


def check_options(name: str, options: dict[str, Any]) -> DatasetEntry:
    """Validates a dataset name and its options before loading."""
    entry = DATASETS[name]
    bad = sorted(set(options) - set(entry.options))
    if bad:
        raise UsageError(f"dataset {name} has no option(s) {', '.join(bad)}; valid options: {', '.join(entry.options)}")
    return entry


def load(name: str, **options: Any) -> Dataset:
    """Loads a registered dataset (``initbench.benchmarks.data.DATASETS`` lists them)."""
    return check_options(name, options).loader(**options)


#: Float32 copies of the largest array a generator holds at once (the draw, its noise, their sum).
_COPIES = 4


def check_fits(name: str, rows: int, cols: int, what: str, field: str | None = None) -> None:
    """Refuses a generated dataset of ``rows x cols`` float32 values needing over half the host's memory.

    Called before drawing, so an absurd size is one line, not an abort or a swapping machine.
    """
    need = _COPIES * 4 * rows * cols
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        ram = 8 << 30
    if need > ram // 2:
        raise UsageError(
            f"{name}: {what} ({rows:,} x {cols:,}) need about {need / 2**30:.3g} GiB to generate, more than "
            f"half of this machine's {ram / 2**30:.3g} GiB: use fewer examples (n_train, n_test)"
            + (f" or a smaller {field}" if field else "")
        )
