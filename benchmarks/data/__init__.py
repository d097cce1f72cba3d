"""Datasets: embedded (offline) ones and the TFDS adapter, all as in-memory arrays.

Every loader returns a :class:`Dataset` with float32 images/features standardized with
statistics of the training split, int32 labels, and its own description. Randomness (the
generated datasets) comes from an explicit ``data_seed`` option, never from global state.
"""

from __future__ import annotations

from initbench.benchmarks.data.base import DATASETS as DATASETS
from initbench.benchmarks.data.base import Dataset as Dataset
from initbench.benchmarks.data.base import DataUnavailable as DataUnavailable
from initbench.benchmarks.data.base import as_dataset as as_dataset
from initbench.benchmarks.data.base import check_options as check_options
from initbench.benchmarks.data.base import entry as entry
from initbench.benchmarks.data.base import load as load
