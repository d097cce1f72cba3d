"""MNIST-1D from the mnist1d package's offline generator: the paper's dataset, deterministic, traceless."""

import random

import numpy as np
import pytest

from initbench.benchmarks import data
from initbench.inits.errors import UsageError


def test_the_canonical_dataset_has_the_papers_split_classes_and_standardization():
    d = data.load("mnist1d", num_samples=1000)  # the canonical arguments at a fifth of the size
    assert d.x_train.shape == (800, 40) and d.x_test.shape == (200, 40) and d.num_classes == 10
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
    y = np.concatenate([d.y_train, d.y_test])
    assert np.bincount(y, minlength=10).tolist() == [100] * 10  # num_samples / 10 per class, shuffled into the split
    x = np.concatenate([d.x_train, d.x_test]).astype(np.float64)
    # the package standardizes over the whole array (in float64, then cast): mean 0 and std 1 to float32 rounding
    assert abs(x.mean()) < 1e-6 and abs(x.std() - 1) < 1e-6


def test_it_is_deterministic_in_its_seed_and_leaves_the_global_generators_as_they_were():
    # the package seeds both global generators with its seed; loading must put back whatever state they had
    before = random.getstate(), np.random.get_state()  # noqa: NPY002 (the legacy global is what is checked)
    a = data.load("mnist1d", num_samples=200)
    after = random.getstate(), np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0]
    pairs = zip(before[1], after[1], strict=True)
    assert all(np.array_equal(u, v) if isinstance(u, np.ndarray) else u == v for u, v in pairs)
    b = data.load("mnist1d", num_samples=200)
    c = data.load("mnist1d", num_samples=200, seed=1)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


def test_shuffle_seq_permutes_the_positions_of_the_same_examples_by_one_permutation():
    plain = data.load("mnist1d", num_samples=200)
    shuffled = data.load("mnist1d", num_samples=200, shuffle_seq=True)
    assert np.array_equal(plain.y_train, shuffled.y_train)
    x, s = np.concatenate([plain.x_train, plain.x_test]), np.concatenate([shuffled.x_train, shuffled.x_test])
    # column j of the shuffled signals is exactly one column of the plain ones, and every column is used once
    perm = [int(np.flatnonzero((x == s[:, [j]]).all(axis=0))[0]) for j in range(40)]
    assert sorted(perm) == list(range(40)) and perm != list(range(40))
    assert np.array_equal(s, x[:, perm])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_samples": 15}, "num_samples must be a positive multiple of 10, got 15"),
        ({"num_samples": 0}, "num_samples must be a positive multiple of 10, got 0"),
        ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*32\), got -1"),
        ({"shuffle_seq": "yes"}, "shuffle_seq must be true or false, got 'yes'"),
        ({"length": 40}, "dataset mnist1d has no option"),
        ({"num_samples": 10**12}, "use fewer examples"),
    ],
)
def test_bad_options_are_one_line_before_generating(options, message):
    with pytest.raises(UsageError, match=message) as err:
        data.load("mnist1d", **options)
    assert "\n" not in str(err.value)


def test_without_the_package_it_says_how_to_get_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mnist1d" else real(name, *a))
    with pytest.raises(data.DataUnavailable, match=r"pip install 'initbench\[mnist1d\]'"):
        data.load("mnist1d")


@pytest.mark.slow  # trains for a few seconds
def test_an_mlp_learns_it_far_above_chance_and_beyond_a_linear_model(tmp_path):
    # Greydanus 2020 Table 1: logistic regression 32%, MLP 68% on the canonical 4,000/1,000 split.
    # 1,000 test examples: the binomial standard error at 0.4 is 0.015, so 0.4 is 5 SE above the
    # linear model's 32% and 20 SE above chance.
    from initbench.benchmarks.cli import main
    from initbench.benchmarks.results import ResultStore

    args = ["run", "--dataset", "mnist1d", "--model", "mlp", "--depth", "2", "--width", "256", "--activation", "relu"]
    args += ["--init", "he_normal", "--optimizer", "adam", "--lr", "0.002", "--steps", "3000", "--eval-every", "3000"]
    assert main([*args, "--batch-size", "128", "--seeds", "2", "--quiet", "--out", str(tmp_path)]) == 0
    df = ResultStore(tmp_path).read()
    acc = df[(df["split"] == "test") & (df["metric"] == "accuracy") & (df["step"] == 3000)]["value"]
    assert len(acc) == 2 and acc.min() > 0.4, acc.tolist()
