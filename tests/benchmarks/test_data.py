import numpy as np
import pytest

from initbench.benchmarks import data
from initbench.benchmarks.data.shapeset import CLASSES, generate
from initbench.inits.errors import UsageError


def test_digits_split_and_standardization():
    ds = data.load("digits")
    assert ds.x_train.shape == (1437, 8, 8, 1) and ds.x_test.shape == (360, 8, 8, 1)
    assert ds.num_classes == 10 and set(np.unique(ds.y_test)) == set(range(10))
    # statistics come from the training split only
    np.testing.assert_allclose(ds.x_train.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(), 1.0, atol=1e-5)
    assert abs(float(ds.x_test.mean())) > 1e-4  # the test split is not re-centred on itself


@pytest.mark.parametrize("name", ["gaussian", "teacher"])
def test_generated_datasets_are_deterministic_in_their_seed(name):
    a, b = data.load(name, n_train=256, n_test=64), data.load(name, n_train=256, n_test=64)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    c = data.load(name, n_train=256, n_test=64, data_seed=1)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.x_train.shape == (256, 64) and a.y_test.shape == (64,)


def test_gaussian_inputs_have_unit_variance():
    ds = data.load("gaussian", dim=128, n_train=4096, n_test=16, separation=0.0)
    # separation 0: x ~ N(0, I) exactly; 5 standard errors of a variance over 4096*128 samples
    assert abs(ds.x_train.var() - 1.0) < 5 * np.sqrt(2 / ds.x_train.size)


def test_shapeset_images_labels_and_determinism():
    x, y = generate(900, data_seed=5)
    assert x.shape == (900, 32, 32, 1) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(len(CLASSES)))
    # roughly uniform classes: each of 9 within 5 binomial standard errors of 100
    counts = np.bincount(y, minlength=9)
    assert np.all(np.abs(counts - 100) < 5 * np.sqrt(900 * (1 / 9) * (8 / 9)))
    x2, y2 = generate(900, data_seed=5)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    # every image shows a shape: more than one grey level
    assert all(len(np.unique(img)) > 1 for img in x[:50])
    # two-shape classes cover more area than one-shape classes on average
    area = (x[..., 0] > x[:, :1, :1, 0] + 1e-6).mean(axis=(1, 2))
    assert area[y >= 3].mean() > area[y < 3].mean()


@pytest.mark.slow  # a few seconds: in the slow run, which CI makes
def test_shapeset_registry_split():
    ds = data.load("shapeset", n_train=64, n_test=32)
    assert ds.num_classes == 9 and ds.input_shape == (32, 32, 1)
    np.testing.assert_allclose(ds.x_train.mean(), 0.0, atol=1e-5)


def test_bad_dataset_options():
    with pytest.raises(ValueError, match=r"dataset digits has no option\(s\) n_train; valid options: per_feature$"):
        data.load("digits", n_train=5)
    with pytest.raises(ValueError, match="n_train must be a positive integer, got 0"):
        data.load("gaussian", n_train=0)
    with pytest.raises(ValueError, match=r"unknown dataset 'digts'.*Did you mean 'digits'"):
        data.load("digts")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [  # sizes no machine holds (petabytes): refused before drawing, not an abort or a swapping host
        ("gaussian", {"dim": 10**11}, r"gaussian: the inputs \(examples x dim\) \(5,120 x 100,000,000,000\) need"),
        ("sparse", {"n_train": 10**12}, r"sparse: the inputs \(examples x dim\) \(1,000,000,001,024 x 300\)"),
        ("teacher", {"dim": 10**7, "teacher_width": 10**7}, r"teacher: the inputs and activations"),
        (
            "teacher",
            {"dim": 10**6, "teacher_width": 10**6, "n_train": 1, "n_test": 1},
            r"teacher: the teacher's weights",
        ),
        ("shapeset", {"n_train": 10**12}, r"shapeset: the images \(examples x 32x32\) \(1,000,000,002,000 x 1,024\)"),
    ],
)
def test_a_dataset_too_large_to_generate_is_refused_before_drawing(name, options, message):
    with pytest.raises(ValueError, match=message + r".*more than half of this machine's .* GiB: use fewer examples"):
        data.load(name, **options)


def test_unprepared_tfds_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(data.DataUnavailable, match=r"initbench prepare fashion_mnist --data-dir"):
        data.load("fashion_mnist", data_dir=str(tmp_path))


def test_prepare_without_tensorflow_is_a_clear_error():
    pytest.importorskip("tensorflow_datasets")
    try:
        import tensorflow  # noqa: F401

        pytest.skip("TensorFlow is installed here")
    except ImportError:
        pass
    from initbench.benchmarks.data.tfds_adapter import prepare

    with pytest.raises(data.DataUnavailable, match=r"needs TensorFlow: pip install 'initbench\[tfds\]'"):
        prepare("mnist")


def test_digits_per_feature_standardizes_each_pixel():
    pixels = data.load("digits", per_feature=True).x_train.reshape(1437, -1)
    mean, std = pixels.mean(0), pixels.std(0)
    constant = std == 0  # pixels that are 0 in every training image stay 0
    assert constant.any() and np.all(pixels[:, constant] == 0)
    np.testing.assert_allclose(mean[~constant], 0, atol=1e-5)
    np.testing.assert_allclose(std[~constant], 1, atol=1e-4)
    with pytest.raises(UsageError, match="digits: per_feature must be true or false, got 'yes'"):
        data.load("digits", per_feature="yes")
