"""Offline datasets: scikit-learn's digits, Gaussian classes, and a random teacher network."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from initbench.benchmarks.data.base import Dataset, check_fits, check_per_feature, standardize
from initbench.inits.errors import UsageError, positive_int


def digits(per_feature: bool = False) -> Dataset:
    """scikit-learn's digits: 8x8 grey images in 0..16, 10 classes, 1,797 examples.

    The split is deterministic, with no random state: example ``i`` is a test example when
    ``i % 5 == 0`` (360 test, 1,437 train, every class in both).

    Args:
      per_feature: Standardize each pixel with its own training-set mean and standard
        deviation (the inputs self-normalizing networks assume; constant pixels stay 0)
        instead of one mean and deviation over all pixels.
    """
    from sklearn.datasets import load_digits

    check_per_feature("digits", per_feature)
    bunch = load_digits()
    x = bunch.images.astype(np.float32)[..., None]
    y = bunch.target.astype(np.int32)
    test = np.arange(len(y)) % 5 == 0
    x_train, x_test = standardize(x[~test], x[test], per_feature=per_feature)
    how = "per-pixel standardized" if per_feature else "standardized"
    about = f"sklearn digits 8x8x1 {how}, 1437 train / 360 test"
    return Dataset("digits", x_train, y[~test], x_test, y[test], 10, about)


def gaussian(
    dim: int = 64,
    num_classes: int = 10,
    n_train: int = 4096,
    n_test: int = 1024,
    separation: float = 1.0,
    data_seed: int = 0,
    shape: tuple[int, ...] | None = None,
) -> Dataset:
    r"""Gaussian inputs for propagation studies, with a learnable labelling.

    ``shape`` (e.g. ``(28, 28, 1)``) gives each example that shape instead of ``(dim,)``; then
    ``dim`` is its size. Class centres :math:`\mu_c \sim \mathcal{N}(0, \text{separation}^2 I / \text{dim})`;
    an example of class ``c`` is :math:`x = \mu_c + z`, :math:`z \sim \mathcal{N}(0, I)`, so
    inputs have per-coordinate variance close to 1 (the q^0 = 1 input of mean-field theory).
    Not re-standardized, so the input distribution is exactly the stated one.
    """
    if shape is not None:
        shape = tuple(positive_int("shape", d) for d in shape)
        dim = int(np.prod(shape))
    for name, value in (("dim", dim), ("num_classes", num_classes), ("n_train", n_train), ("n_test", n_test)):
        positive_int(name, value)
    check_fits("gaussian", n_train + n_test, dim, "the inputs (examples x dim)", "dim")
    key = jax.random.key(data_seed)
    k_mu, k_y, k_z = jax.random.split(key, 3)
    mu = jax.random.normal(k_mu, (num_classes, dim)) * (separation / np.sqrt(dim))
    n = n_train + n_test
    y = jax.random.randint(k_y, (n,), 0, num_classes)
    x = mu[y] + jax.random.normal(k_z, (n, dim))
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
    if shape is not None:
        x = x.reshape(n, *shape)
    desc = f"gaussian dim={dim} classes={num_classes} separation={separation} seed={data_seed}"
    return Dataset("gaussian", x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes, desc)


def teacher(
    dim: int = 64,
    num_classes: int = 10,
    n_train: int = 4096,
    n_test: int = 1024,
    teacher_width: int = 128,
    teacher_depth: int = 2,
    data_seed: int = 0,
) -> Dataset:
    r"""A student-teacher task: labels are ``argmax`` of a random teacher network.

    The teacher is a ``teacher_depth``-hidden-layer tanh MLP of width ``teacher_width`` with
    weights :math:`\mathcal{N}(0, 1/n_{in})` and no biases, drawn from ``data_seed``.
    """
    for name, value in (
        ("dim", dim),
        ("num_classes", num_classes),
        ("n_train", n_train),
        ("n_test", n_test),
        ("teacher_width", teacher_width),
        ("teacher_depth", teacher_depth),
    ):
        positive_int(name, value)
    check_fits(
        "teacher",
        n_train + n_test,
        dim + teacher_width,
        "the inputs and activations (examples x dim + teacher_width)",
        "dim or teacher_width",
    )
    check_fits("teacher", max(dim, teacher_width), teacher_width, "the teacher's weights", "dim or teacher_width")
    key = jax.random.key(data_seed)
    k_x, *k_w = jax.random.split(key, teacher_depth + 2)
    x = jax.random.normal(k_x, (n_train + n_test, dim))
    h, fan_in = x, dim
    for i, width in enumerate([teacher_width] * teacher_depth + [num_classes]):
        w = jax.random.normal(k_w[i], (fan_in, width)) / jnp.sqrt(jnp.float32(fan_in))
        h = h @ w
        if i < teacher_depth:
            h = jnp.tanh(h)
        fan_in = width
    y = np.asarray(jnp.argmax(h, axis=-1), np.int32)
    x = np.asarray(x, np.float32)
    desc = f"teacher dim={dim} classes={num_classes} width={teacher_width} depth={teacher_depth} seed={data_seed}"
    return Dataset("teacher", x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes, desc)


def sparse(
    dim: int = 300,
    density: float = 0.1,
    num_classes: int = 10,
    n_train: int = 4096,
    n_test: int = 1024,
    data_seed: int = 0,
) -> Dataset:
    r"""Sparse inputs in [0, 1], the setting of Glorot & Bengio 2010's activation and gradient studies.

    Each coordinate is non-zero with probability ``density``, and then uniform on (0, 1]:
    :math:`x_j = b_j u_j`, :math:`b_j \sim \text{Bernoulli}(\text{density})`,
    :math:`u_j \sim U(0, 1)`, so :math:`E[x_j] = \text{density}/2` and
    :math:`E[x_j^2] = \text{density}/3`. Labels are the argmax of a random linear teacher on the
    centred inputs, :math:`y = \arg\max_c \sum_j (x_j - E x_j) T_{jc}`, :math:`T \sim \mathcal{N}(0, 1)`,
    all drawn from ``data_seed``. The inputs are not standardized: the distribution is exactly
    the stated one (fraction of non-zeros, range [0, 1]).
    """
    for name, value in (("dim", dim), ("num_classes", num_classes), ("n_train", n_train), ("n_test", n_test)):
        positive_int(name, value)
    if not 0.0 < float(density) <= 1.0:
        raise UsageError(f"density must be in (0, 1], got {density!r}")
    check_fits("sparse", n_train + n_test, dim, "the inputs (examples x dim)", "dim")
    k_b, k_u, k_t = jax.random.split(jax.random.key(data_seed), 3)
    n = n_train + n_test
    mask = jax.random.bernoulli(k_b, float(density), (n, dim))
    x = jnp.where(mask, 1.0 - jax.random.uniform(k_u, (n, dim)), 0.0)  # (0, 1]: a drawn coordinate is non-zero
    teacher_w = jax.random.normal(k_t, (dim, num_classes))
    y = np.asarray(jnp.argmax((x - density / 2) @ teacher_w, axis=-1), np.int32)
    x = np.asarray(x, np.float32)
    desc = f"sparse dim={dim} density={density} classes={num_classes} seed={data_seed}"
    return Dataset("sparse", x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes, desc)
