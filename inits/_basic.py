"""Basic initializers: zeros, ones, constant, normal, uniform, truncated_normal.

The "random initialization" presets of the classic comparisons are explicit calls:
``normal(0.01)`` (small weights: the signal vanishes with depth) and ``normal(1.0)``
(large weights: tanh and sigmoid units saturate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from initbench.inits._core import Init, check_bounds, standardized_truncated_normal
from initbench.inits.errors import UsageError, UsageTypeError, check_nonnegative


def _constant_or_array(init: Init, key: jax.Array | None, shape: Sequence[int] | None, dtype: Any) -> Any:
    # Called with no arguments: the initializer. Called like jax.nn.initializers.zeros (itself an
    # initializer): the array, so the jax habit `bias_init=inits.zeros` (uncalled) works as well.
    if key is None and shape is None:
        return init
    if shape is None:
        raise UsageTypeError(f"{init.name}(key, shape, dtype): shape is missing")
    return init(key, shape, dtype)


def zeros(key: jax.Array | None = None, shape: Sequence[int] | None = None, dtype: Any = jnp.float32) -> Any:
    """All zeros. With every weight equal, hidden units stay identical (the symmetry problem).

    ``zeros()`` returns the initializer, like every factory here; ``zeros`` is also an
    initializer itself, as ``jax.nn.initializers.zeros`` is: ``zeros(key, shape, dtype)`` returns
    the array, so ``bias_init=inits.zeros`` works called or not.

    Example:
      >>> import flax.linen as nn
      >>> from initbench import inits
      >>> layer = nn.Dense(4, bias_init=inits.zeros())  # or bias_init=inits.zeros
    """
    init = Init("zeros", (), lambda key, shape, dtype: jnp.zeros(shape, dtype), lambda s: (0.0, 0.0))
    return _constant_or_array(init, key, shape, dtype)


def ones(key: jax.Array | None = None, shape: Sequence[int] | None = None, dtype: Any = jnp.float32) -> Any:
    """All ones; like :func:`zeros`, usable called (``ones()``) or as an initializer itself."""
    init = Init("ones", (), lambda key, shape, dtype: jnp.ones(shape, dtype), lambda s: (1.0, 0.0))
    return _constant_or_array(init, key, shape, dtype)


def constant(value: float) -> Init:
    """Every entry equal to ``value``.

    Args:
      value: The constant.
    """
    value = float(value)
    return Init(
        "constant",
        (("value", value),),
        lambda key, shape, dtype: jnp.full(shape, value, dtype),
        lambda s: (value, 0.0),
    )


def normal(stddev: float = 1e-2, mean: float = 0.0) -> Init:
    r"""Gaussian entries :math:`w \sim \mathcal{N}(\text{mean}, \text{stddev}^2)`.

    Bitwise equal to ``jax.nn.initializers.normal(stddev)`` for ``mean = 0``.

    Args:
      stddev: Standard deviation (>= 0).
      mean: Mean.
    """
    stddev = check_nonnegative("stddev", stddev, "normal")
    mean = float(mean)

    def sample(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
        out = jax.random.normal(key, shape, dtype) * jnp.array(stddev, dtype)
        return out + jnp.array(mean, dtype) if mean else out

    return Init("normal", (("stddev", stddev), ("mean", mean)), sample, lambda s: (mean, stddev**2))


def uniform(low: float = -0.05, high: float = 0.05) -> Init:
    r"""Uniform entries :math:`w \sim U[\text{low}, \text{high})`.

    Mean :math:`(l + h)/2`, variance :math:`(h - l)^2 / 12`. The default matches Keras'
    ``RandomUniform``.

    Args:
      low: Lower bound.
      high: Upper bound (> low).
    """
    low, high = float(low), float(high)
    if not low < high:
        raise UsageError(f"uniform: need low < high, got low={low}, high={high}")
    return Init(
        "uniform",
        (("low", low), ("high", high)),
        lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, low, high),
        lambda s: ((low + high) / 2, (high - low) ** 2 / 12),
    )


def truncated_normal(stddev: float = 1e-2, lower: float = -2.0, upper: float = 2.0, mean: float = 0.0) -> Init:
    """Truncated Gaussian whose samples have standard deviation exactly ``stddev``.

    A standard normal truncated to ``[lower, upper]`` (bounds in standard deviations of the
    untruncated normal) is centred and rescaled by its closed-form mean and standard
    deviation, then shifted by ``mean``. NOTE: this differs from
    ``jax.nn.initializers.truncated_normal(stddev)``, whose ``stddev`` is that of the
    untruncated normal, so its samples have standard deviation ``0.88 * stddev``.

    Args:
      stddev: Standard deviation of the samples (>= 0).
      lower: Lower truncation bound, in standard deviations.
      upper: Upper truncation bound, in standard deviations (> lower).
      mean: Mean of the samples.
    """
    stddev = check_nonnegative("stddev", stddev, "truncated_normal")
    lower, upper = check_bounds(lower, upper, "truncated_normal")
    mean = float(mean)

    def sample(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
        out = standardized_truncated_normal(key, shape, dtype, jnp.array(stddev, dtype), lower, upper)
        return out + jnp.array(mean, dtype) if mean else out

    return Init(
        "truncated_normal",
        (("stddev", stddev), ("lower", lower), ("upper", upper), ("mean", mean)),
        sample,
        lambda s: (mean, stddev**2),
    )
