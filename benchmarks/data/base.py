"""The Dataset container, standardization, and the dataset registry."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from initbench.benchmarks.paths import host_memory
from initbench.inits.errors import UsageError, unknown_choice
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


def check_per_feature(name: str, per_feature: Any) -> None:
    """Raises one line unless ``per_feature`` is a bool (before any data is read)."""
    if not isinstance(per_feature, bool):
        raise UsageError(f"{name}: per_feature must be true or false, got {per_feature!r}")


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
            "mnist1d",
            "initbench.benchmarks.data.mnist1d:mnist1d",
            "Greydanus 2020's MNIST-1D: length-40 signals, 10 classes, 4,000/1,000 (generated offline by the"
            " mnist1d package: pip install 'initbench[mnist1d]')",
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


@dataclasses.dataclass(frozen=True)
class PluginDatasetEntry(DatasetEntry):
    """A user's dataset loader named by its import target ``package.module:attribute``.

    ``loader(**options)`` returns a :class:`Dataset`, or a mapping with ``x_train``, ``y_train``,
    ``x_test``, ``y_test``, ``num_classes`` (and optionally ``description``): checked and converted
    by :func:`as_dataset` (float32 inputs, int32 labels in ``[0, num_classes)``, finite values).
    """

    @property
    def loader(self) -> Callable[..., Dataset]:
        """The user's loader, its result checked and made a :class:`Dataset`."""
        from initbench.inits.registry import _attribute

        original = _attribute(self.target)
        if not callable(original):
            raise UsageError(f"plug-in {self.target!r} is a {type(original).__name__}, not a dataset loader")
        target = self.target

        @functools.wraps(original)
        def load(**options: Any) -> Dataset:
            return as_dataset(target, original(**options))

        return load

    @property
    def options(self) -> tuple[str, ...]:
        """Options the loader accepts (its keyword parameters)."""
        from initbench.inits.registry import _attribute

        return tuple(inspect.signature(_attribute(self.target)).parameters)


def as_dataset(name: str, out: Any) -> Dataset:
    """A plug-in loader's result as a checked :class:`Dataset` named ``name`` (one-line errors)."""
    if isinstance(out, Dataset):
        fields = {k: getattr(out, k) for k in ("x_train", "y_train", "x_test", "y_test", "num_classes")}
        fields["description"] = out.description
    elif isinstance(out, dict):
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test", "num_classes") if k not in out]
        if missing:
            raise UsageError(f"dataset plug-in {name}: its result lacks {', '.join(missing)}")
        fields = {**out, "description": str(out.get("description", f"plug-in {name}"))}
    else:
        raise UsageError(
            f"dataset plug-in {name} must return a Dataset or a dict of x_train, y_train, x_test, y_test, "
            f"num_classes; got a {type(out).__name__}"
        )
    classes = fields["num_classes"]
    if isinstance(classes, bool) or not isinstance(classes, int | np.integer) or classes < 2:
        raise UsageError(f"dataset plug-in {name}: num_classes must be an integer >= 2, got {classes!r}")
    arrays = {}
    for split in ("train", "test"):
        x, y = np.asarray(fields[f"x_{split}"]), np.asarray(fields[f"y_{split}"])
        if x.ndim < 2 or x.shape[0] < 1 or y.shape != (x.shape[0],):
            raise UsageError(
                f"dataset plug-in {name}: x_{split} must be (n, ...) with n >= 1 and y_{split} (n,), got "
                f"{x.shape} and {y.shape}"
            )
        if not (np.issubdtype(x.dtype, np.number) and np.isfinite(x).all()):
            raise UsageError(f"dataset plug-in {name}: x_{split} must hold finite numbers")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= classes:
            raise UsageError(f"dataset plug-in {name}: y_{split} must be integer classes in [0, {classes})")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x.astype(np.float32), y.astype(np.int32)
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise UsageError(
            f"dataset plug-in {name}: train and test examples differ in shape: {arrays['x_train'].shape[1:]} vs "
            f"{arrays['x_test'].shape[1:]}"
        )
    return Dataset(name=name, num_classes=int(classes), description=fields["description"], **arrays)


def entry(name: str) -> DatasetEntry:
    """The dataset registry's entry for ``name``, or a plug-in's (``package.module:attribute``, imported here).

    A name that an installed distribution declares in the ``initbench.plugins`` entry-point group
    (``inits.registry.installed_plugins``) is its target; the registered datasets win.
    """
    from initbench.inits.registry import _attribute, expand, installed_plugins, is_plugin

    name = expand(name, DATASETS)
    if name not in DATASETS and not is_plugin(name):  # the choices include the installed plug-ins
        raise unknown_choice("dataset", name, (*DATASETS.names(), *installed_plugins()))
    if is_plugin(name):
        _attribute(name)
        return PluginDatasetEntry(name, name, f"plug-in {name}", True)
    return DATASETS[name]


def check_options(name: str, options: dict[str, Any]) -> DatasetEntry:
    """Validates a dataset name and its options before loading."""
    found = entry(name)
    if isinstance(found, PluginDatasetEntry):
        from initbench.inits.registry import _attribute, missing_arguments

        params = inspect.signature(_attribute(found.target)).parameters
        missing = missing_arguments(params, options)
        if missing:
            raise UsageError(f"dataset plug-in {name} needs option(s) {', '.join(missing)} (--dataset-args or [data])")
        if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return found
    bad = sorted(set(options) - set(found.options))
    if bad:
        raise UsageError(f"dataset {name} has no option(s) {', '.join(bad)}; valid options: {', '.join(found.options)}")
    return found


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
    ram = host_memory()
    if need > ram // 2:
        raise UsageError(
            f"{name}: {what} ({rows:,} x {cols:,}) need about {need / 2**30:.3g} GiB to generate, more than "
            f"half of this machine's {ram / 2**30:.3g} GiB: use fewer examples (n_train, n_test)"
            + (f" or a smaller {field}" if field else "")
        )
