"""Shapeset-3x2 (Glorot & Bengio 2010, section 2.1), generated on the fly from a seed.

32x32 grey images holding one or two shapes among triangle, parallelogram and ellipse, each at
a random scale, rotation, position, aspect and grey level over a random dark background. The
9 classes are the 3 single shapes and the 6 unordered pairs of categories (with repetition):
``triangle, parallelogram, ellipse, 2 triangles, triangle+parallelogram, triangle+ellipse,
2 parallelograms, parallelogram+ellipse, 2 ellipses``. Shapes may overlap (the original
limited overlap; here the later shape is drawn on top). Generated in JAX from ``data_seed``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from initbench.benchmarks.data.base import Dataset, check_fits, standardize
from initbench.inits.errors import positive_int

SIZE = 32
# (first shape, second shape or -1) for each class
CLASSES = ((0, -1), (1, -1), (2, -1), (0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
_CLASS_TABLE = np.asarray(CLASSES, np.int32)


def _inside(kind: jax.Array, x: jax.Array, y: jax.Array, skew: jax.Array) -> jax.Array:
    """Membership of local coordinates (unit scale) in each shape, selected by ``kind``."""
    ellipse = x * x + y * y <= 1.0
    parallelogram = (jnp.abs(y) <= 0.7) & (jnp.abs(x - skew * y) <= 0.8)
    # equilateral triangle inscribed in the unit circle, vertices at 90, 210 and 330 degrees
    corners = [(math.cos(a), math.sin(a)) for a in (math.pi / 2, 7 * math.pi / 6, 11 * math.pi / 6)]
    triangle = jnp.ones_like(ellipse)
    for i in range(3):
        (x0, y0), (x1, y1) = corners[i], corners[(i + 1) % 3]
        triangle &= (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0) >= 0
    return jnp.where(kind == 0, triangle, jnp.where(kind == 1, parallelogram, ellipse))


def _draw(key: jax.Array, kind: jax.Array, image: jax.Array, active: jax.Array) -> jax.Array:
    k_pos, k_scale, k_rot, k_aspect, k_skew, k_grey = jax.random.split(key, 6)
    centre = jax.random.uniform(k_pos, (2,), minval=0.3, maxval=0.7)
    scale = jax.random.uniform(k_scale, (), minval=0.12, maxval=0.28)
    angle = jax.random.uniform(k_rot, (), maxval=2 * math.pi)
    aspect = jax.random.uniform(k_aspect, (), minval=0.6, maxval=1.0)
    skew = jax.random.uniform(k_skew, (), minval=-0.5, maxval=0.5)
    grey = jax.random.uniform(k_grey, (), minval=0.4, maxval=1.0)
    coords = (jnp.arange(SIZE, dtype=jnp.float32) + 0.5) / SIZE
    u, v = jnp.meshgrid(coords, coords, indexing="xy")
    du, dv = u - centre[0], v - centre[1]
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    x = (cos * du + sin * dv) / scale
    y = (-sin * du + cos * dv) / (scale * aspect)
    mask = _inside(kind, x, y, skew) & active
    return jnp.where(mask, grey, image)


def _example(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k_class, k_order, k_bg, k_a, k_b = jax.random.split(key, 5)
    label = jax.random.randint(k_class, (), 0, len(CLASSES))
    pair = jnp.asarray(_CLASS_TABLE)[label]
    two = pair[1] >= 0
    swap = jax.random.bernoulli(k_order) & two
    first = jnp.where(swap, pair[1], pair[0])
    second = jnp.where(swap, pair[0], pair[1])
    image = jnp.full((SIZE, SIZE), jax.random.uniform(k_bg, (), maxval=0.25))
    image = _draw(k_a, first, image, jnp.bool_(True))
    image = _draw(k_b, second, image, two)
    return image[..., None], label


_generate = jax.jit(jax.vmap(_example))


def generate(n: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` raw images in [0, 1] ``(n, 32, 32, 1)`` and labels, from ``data_seed``."""
    keys = jax.random.split(jax.random.key(data_seed), n)
    x, y = _generate(keys)
    return np.asarray(x, np.float32), np.asarray(y, np.int32)


def shapeset(n_train: int = 10000, n_test: int = 2000, data_seed: int = 0) -> Dataset:
    """Shapeset-3x2 with ``n_train``/``n_test`` images drawn from ``data_seed`` (test from a disjoint stream)."""
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        positive_int(name, value)
    check_fits("shapeset", n_train + n_test, 32 * 32, "the images (examples x 32x32)")
    x_train, y_train = generate(n_train, data_seed)
    x_test, y_test = generate(n_test, data_seed + 1_000_003)
    x_train, x_test = standardize(x_train, x_test, per_feature=False)
    desc = f"Shapeset-3x2 32x32x1, {n_train} train / {n_test} test, seed {data_seed}"
    return Dataset("shapeset", x_train, y_train, x_test, y_test, len(CLASSES), desc)
