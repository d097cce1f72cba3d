"""IDX datasets: the format read exactly, a user's directory, Debian's Fashion-MNIST, one-line errors."""

import gzip

import numpy as np
import pytest

from initbench.benchmarks import data
from initbench.benchmarks.data.idx import FILES, read_idx
from initbench.inits.errors import UsageError


def write_idx(path, array, gz=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(raw)


def fake_dataset(directory, n_train=20, n_test=10, gz=False):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
        for stem, array in zip(FILES[split], (images, labels), strict=True):
            write_idx(directory / (stem + (".gz" if gz else "")), array, gz)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_are_read_exactly(tmp_path, gz):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    path = tmp_path / ("a.gz" if gz else "a")
    write_idx(path, array, gz)
    np.testing.assert_array_equal(read_idx(path), array)


def test_a_users_directory_is_read_and_standardized(tmp_path):
    (tmp_path / "fashion-mnist").mkdir()
    arrays = fake_dataset(tmp_path / "fashion-mnist", gz=True)
    ds = data.load("fashion_mnist", data_dir=str(tmp_path), n_test=4)
    assert ds.x_train.shape == (20, 28, 28, 1) and ds.x_test.shape == (4, 28, 28, 1) and ds.num_classes == 10
    np.testing.assert_array_equal(ds.y_train, arrays["train"][1])
    np.testing.assert_allclose(ds.x_train.mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(ds.x_train.std(), 1.0, atol=1e-5)
    x = arrays["train"][0] / 255.0  # the standardization is the training split's, over all pixels
    np.testing.assert_allclose(ds.x_train[..., 0], (x - x.mean()) / x.std(), atol=1e-5)


def test_per_feature_standardizes_each_pixel_with_the_training_splits_statistics(tmp_path):
    (tmp_path / "fashion-mnist").mkdir()
    arrays = fake_dataset(tmp_path / "fashion-mnist")
    ds = data.load("fashion_mnist", data_dir=str(tmp_path), per_feature=True)
    x, x_test = arrays["train"][0] / 255.0, arrays["test"][0] / 255.0
    mean, std = x.mean(0), x.std(0)
    np.testing.assert_allclose(ds.x_train[..., 0], (x - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.x_test[..., 0], (x_test - mean) / std, rtol=1e-5, atol=1e-5)
    assert "per-pixel standardized" in ds.description
    with pytest.raises(UsageError, match=r"^fashion_mnist: per_feature must be true or false, got 1$"):
        data.load("fashion_mnist", data_dir=str(tmp_path / "nowhere"), per_feature=1)  # before any file is sought


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x02\x03\x04", "is not an IDX file"),
        (bytes([0, 0, 0x08, 1, 0, 0, 0, 9, 1, 2]), "the header says (9,)"),
    ],
)
def test_a_damaged_file_is_one_line(tmp_path, content, message):
    path = tmp_path / "x"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_idx(path)


def test_a_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(data.DataUnavailable, match=r"mnist: no IDX files in .* --data-dir DIR holding train-images"):
        data.load("mnist", data_dir=str(tmp_path))


@pytest.mark.slow  # reads 60,000 + 10,000 images (a few seconds); fails, never skips, without the Debian package
def test_debians_fashion_mnist_is_the_official_split():
    ds = data.load("fashion_mnist")
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10 and np.bincount(ds.y_test).tolist() == [1000] * 10
    assert ds.y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # the official files' first labels
    assert "/usr/share/datasets/fashion-mnist" in ds.description
