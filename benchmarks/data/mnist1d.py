r"""MNIST-1D (Greydanus 2020, "Scaling Down Deep Learning"), generated offline.

Ten classes of one-dimensional signals of length 40: each class is a hand-drawn template of 12
points, padded, scaled, translated, sheared, smoothed and noised, so that a linear model reaches
about 32% test accuracy, an MLP about 68% and a small CNN about 94% (the paper's Table 1): a
dataset made to separate architectures and initializations on a CPU. Built by the ``mnist1d``
package's own generator (``make_dataset``, never its download path) with its canonical arguments
(``get_dataset_args``: 5,000 examples, the first 4,000 of the shuffle for training, seed 42),
which define the dataset of the paper. Apache-2.0; ``pip install 'initbench[mnist1d]'``.

The package seeds Python's and NumPy's global generators; their states are restored after the
draw, so loading leaves no trace in the caller's randomness.
"""

from __future__ import annotations

import importlib.util
import random

import numpy as np

from initbench.benchmarks.data.base import Dataset, DataUnavailable, check_fits
from initbench.inits.errors import UsageError

LENGTH = 40  # the canonical final_seq_length


def mnist1d(num_samples: int = 5000, seed: int = 42, shuffle_seq: bool = False) -> Dataset:
    """MNIST-1D: ``(n, 40)`` float32 signals, 10 classes, the canonical 80/20 split.

    Args:
      num_samples: Examples in all, a positive multiple of 10 (``num_samples / 10`` per class);
        5,000 is the paper's dataset.
      seed: The generator's seed (42: the paper's dataset).
      shuffle_seq: Permute the 40 positions with one fixed permutation (the paper's control that
        destroys spatial structure: CNNs lose their advantage, MLPs do not).

    Returns:
      The dataset as the package builds it: standardized over all examples by the package (mean 0,
      standard deviation 1 over the whole array), train ``80%`` and test ``20%``.

    Example:
      >>> d = mnist1d(num_samples=500)  # the paper's dataset: mnist1d(), 4,000 / 1,000
      >>> d.x_train.shape, d.x_test.shape, d.num_classes
      ((400, 40), (100, 40), 10)
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 10 or num_samples % 10:
        raise UsageError(f"mnist1d: num_samples must be a positive multiple of 10, got {num_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise UsageError(f"mnist1d: seed must be an integer in [0, 2**32), got {seed!r}")
    if not isinstance(shuffle_seq, bool):
        raise UsageError(f"mnist1d: shuffle_seq must be true or false, got {shuffle_seq!r}")
    if importlib.util.find_spec("mnist1d") is None:
        raise DataUnavailable(
            "mnist1d: needs the mnist1d package (it generates the data offline): pip install 'initbench[mnist1d]'"
        )
    check_fits("mnist1d", num_samples, LENGTH, "num_samples signals", "num_samples")
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.shuffle_seq = num_samples, seed, shuffle_seq
    states = random.getstate(), np.random.get_state()  # noqa: NPY002 (the package draws from the legacy global)
    try:
        made = make_dataset(args)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])  # noqa: NPY002
    x_train, x_test = (np.asarray(made[k], dtype=np.float32) for k in ("x", "x_test"))
    y_train, y_test = (np.asarray(made[k], dtype=np.int32) for k in ("y", "y_test"))
    shuffled = ", positions shuffled" if shuffle_seq else ""
    split = f"{len(y_train)} train / {len(y_test)} test"
    about = f"MNIST-1D (Greydanus 2020) length {LENGTH}, seed {seed}{shuffled}, {split}"
    return Dataset("mnist1d", x_train, y_train, x_test, y_test, 10, about)
