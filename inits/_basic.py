"""Basic initializers: zeros, ones, constant, normal, uniform, truncated_normal.

The "random initialization" presets of the classic comparisons are explicit calls:
``normal(0.01)`` (small weights: the signal vanishes with depth) and ``normal(1.0)``
(large weights: tanh and sigmoid units saturate).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from initbench.inits._core import (
    TRACED,
    Init,
    check_bounds,
    check_resolvable,
    check_scale,
    check_spread,
    check_symmetric_bounds,
    complex_truncated_normal,
    concrete,
    hyper,
    is_complex,
    normal_reach,
    provenance,
    real_dtype,
    recipe,
    standardized_truncated_normal,
    truncated_standard_normal_moments,
    unit_disk,
    wide,
)
from initbench.inits.errors import UsageError, UsageTypeError


def _constant_or_array(init: Init, key: jax.Array | None, shape: Sequence[int] | None, dtype: Any, out_sharding) -> Any:
    # Called with no arguments: the initializer. Called like jax.nn.initializers.zeros (itself an
    # initializer): the array, so the jax habit `bias_init=inits.zeros` (uncalled) works as well.
    if key is None and shape is None:
        return init if dtype is None else dataclasses.replace(init, dtype=dtype)
    if shape is None:
        raise UsageTypeError(f"{init.name}(key, shape, dtype): shape is missing")
    return init(key, shape, dtype, out_sharding)  # type: ignore[arg-type]  # zeros/ones ignore the key (as jax's)


@recipe
def zeros(
    key: jax.Array | None = None, shape: Sequence[int] | None = None, dtype: Any = None, out_sharding: Any = None
) -> Any:
    """All zeros. With every weight equal, hidden units stay identical (the symmetry problem).

    ``zeros()`` returns the initializer, like every factory here; ``zeros`` is also an
    initializer itself, as ``jax.nn.initializers.zeros`` is: ``zeros(key, shape, dtype)`` returns
    the array, so ``bias_init=inits.zeros`` works called or not. Real or complex dtypes.

    Example:
      >>> import flax.linen as nn
      >>> from initbench import inits
      >>> layer = nn.Dense(4, bias_init=inits.zeros())  # or bias_init=inits.zeros
    """
    init = Init(
        "zeros",
        (),
        lambda key, shape, dtype: jnp.zeros(shape, dtype),
        lambda s: (0.0, 0.0),
        complex_ok=True,
        any_dtype=True,
    )
    return _constant_or_array(init, key, shape, dtype, out_sharding)


@recipe
def ones(
    key: jax.Array | None = None, shape: Sequence[int] | None = None, dtype: Any = None, out_sharding: Any = None
) -> Any:
    """All ones; like :func:`zeros`, usable called (``ones()``) or as an initializer itself."""
    init = Init(
        "ones",
        (),
        lambda key, shape, dtype: jnp.ones(shape, dtype),
        lambda s: (1.0, 0.0),
        complex_ok=True,
        any_dtype=True,
    )
    return _constant_or_array(init, key, shape, dtype, out_sharding)


@recipe
def zeros_init() -> Init:
    """Flax's name for :func:`zeros`: ``flax.linen.initializers.zeros_init()``, all zeros."""
    return zeros()


@recipe
def ones_init() -> Init:
    """Flax's name for :func:`ones`: ``flax.linen.initializers.ones_init()``, all ones."""
    return ones()


@recipe
def constant(value: Any, dtype: Any = None) -> Init:
    """Every entry equal to ``value`` (``jax.nn.initializers.constant``).

    Args:
      value: The constant: a number (real, complex, infinite), a traced value, or an array
        broadcastable to the kernel shape. ``target`` needs a finite real scalar.
      dtype: Default dtype (any: floats, complex, integers, bools); None: JAX's default float.
    """
    fixed = None
    if not isinstance(value, jax.core.Tracer):
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            raise UsageError(f"constant: value must be a number or an array, got {value!r}") from None
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise UsageError(f"constant: value must be a number or an array of numbers, got {value!r}")
        if np.issubdtype(arr.dtype, np.inexact) and np.isnan(arr).any():  # inf is a value; nan is none
            raise UsageError(f"constant: value must not be nan, got {value!r}")
        if arr.ndim == 0 and not np.iscomplexobj(arr) and math.isfinite(float(arr)):
            fixed = float(arr)

    def moments(shape: tuple[int, ...]) -> tuple[float, float]:
        if fixed is None:
            raise UsageError(f"constant: target(shape) needs a finite real scalar value, got {value!r}")
        return fixed, 0.0

    def limits(shape: tuple[int, ...], dtype: np.dtype) -> None:
        if not isinstance(value, jax.core.Tracer) and np.iscomplexobj(value) and not is_complex(dtype):
            raise UsageError(
                f"constant: value {value!r} is complex and the dtype {np.dtype(dtype).name} is not "
                "(its imaginary part would be dropped); use a complex dtype"
            )

    shown = fixed if fixed is not None else (TRACED if isinstance(value, jax.core.Tracer) else repr(value))
    return Init(
        "constant",
        (("value", shown),),
        lambda key, shape, dtype: jnp.full(shape, value, dtype),
        moments,
        dtype=dtype,
        complex_ok=True,
        any_dtype=True,
        limits=limits,
    )


@recipe
def normal(stddev: Any = 1e-2, dtype: Any = None, *, mean: Any = 0.0) -> Init:
    r"""Gaussian entries :math:`w \sim \mathcal{N}(\text{mean}, \text{stddev}^2)`.

    Bitwise equal to ``jax.nn.initializers.normal(stddev, dtype)`` for ``mean = 0``, complex
    dtypes included: a complex entry is circular, :math:`\mathbb{E}|w - \text{mean}|^2 =
    \text{stddev}^2` with half in each of the real and imaginary parts.

    Args:
      stddev: Standard deviation (>= 0); a number, a 0-d array or a traced scalar.
      dtype: Default dtype (real or complex); None: JAX's default float.
      mean: Mean (keyword-only; initbench's extension).
    """
    stddev, sd = hyper("stddev", stddev, "normal")
    mean, mu = hyper("mean", mean, "normal", nonnegative=False)

    def sample(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
        w = wide(dtype)
        out = jax.random.normal(key, shape, w) * jnp.array(stddev, w)
        return (out if mu == 0.0 else out + jnp.array(mean, w)).astype(dtype)

    def moments(shape: tuple[int, ...]) -> tuple[float, float]:
        concrete("normal", stddev=sd, mean=mu)
        assert sd is not None and mu is not None  # concrete() raised otherwise
        return mu, sd**2

    def reach(dtype: np.dtype) -> float | None:  # the Gaussian's tails as drawn (in the wide dtype)
        return None if sd is None or mu is None else normal_reach(wide(dtype)) * sd + abs(mu)

    def limits(shape: tuple[int, ...], dtype: np.dtype) -> None:
        check_scale("normal", "stddev", sd, dtype)
        check_spread("normal", sd, mu, dtype)

    params = (("stddev", provenance(sd)), ("mean", provenance(mu)))
    return Init("normal", params, sample, moments, dtype=dtype, complex_ok=True, reach=reach, limits=limits)


@recipe
def uniform(scale: Any = 1e-2, dtype: Any = None, *, low: Any = None, high: Any = None) -> Init:
    r"""Uniform entries :math:`w \sim U[\text{low}, \text{high})`, by default :math:`U[0, \text{scale})`.

    ``uniform(scale, dtype)`` is ``jax.nn.initializers.uniform``: :math:`U[0, \text{scale})`,
    bitwise equal. ``low``/``high`` (keyword-only) give any interval: ``uniform(low=-0.05,
    high=0.05)`` is Keras' ``RandomUniform`` default; ``low`` defaults to 0 and ``high`` to
    ``scale``. Mean :math:`(l + h)/2`, variance :math:`(h - l)^2 / 12`. A complex dtype draws
    uniformly on the disk centred at the mean with the same :math:`\mathbb{E}|w - \text{mean}|^2`,
    half in each of the real and imaginary parts.

    Args:
      scale: Upper bound when ``high`` is not given (jax's ``scale``).
      dtype: Default dtype (real or complex); None: JAX's default float.
      low: Lower bound (keyword-only, default 0).
      high: Upper bound (keyword-only, default ``scale``; give one of ``scale`` and ``high``).

    Raises:
      ValueError: both ``scale`` and ``high`` given, or low >= high.
    """
    if high is not None and not (isinstance(scale, float | int) and scale == 1e-2):
        raise UsageError(f"uniform: give scale (the upper bound) or high, not both: scale={scale!r}, high={high!r}")
    low, lo = hyper("low", 0.0 if low is None else low, "uniform", nonnegative=False)
    high, hi = hyper(
        "high" if high is not None else "scale", scale if high is None else high, "uniform", nonnegative=False
    )
    if lo is not None and hi is not None and not lo <= hi:
        raise UsageError(f"uniform: need low <= high, got low={lo}, high={hi}")

    def sample(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
        if is_complex(dtype):
            lo_, hi_ = jnp.asarray(low, real_dtype(dtype)), jnp.asarray(high, real_dtype(dtype))
            centre, spread = ((lo_ + hi_) / 2).astype(dtype), ((hi_ - lo_) / math.sqrt(12)).astype(dtype)
            return unit_disk(key, shape, dtype) * spread + centre
        w = wide(dtype)
        if lo == 0.0:  # jax's arithmetic, bitwise in 32 and 64 bits: U[0, 1) * scale
            return (jax.random.uniform(key, shape, w) * jnp.array(high, w)).astype(dtype)
        return jax.random.uniform(key, shape, w, low, high).astype(dtype)

    def moments(shape: tuple[int, ...]) -> tuple[float, float]:
        concrete("uniform", low=lo, high=hi)
        assert lo is not None and hi is not None  # concrete() raised otherwise
        return (lo + hi) / 2, (hi - lo) ** 2 / 12

    def limits(shape: tuple[int, ...], dtype: np.dtype) -> None:
        w = real_dtype(dtype) if is_complex(dtype) else wide(dtype)
        if lo is not None and hi is not None and hi - lo > float(jnp.finfo(w).max):
            raise UsageError(
                f"uniform: the interval's width high - low = {hi - lo:g} overflows {np.dtype(w).name}, in which it is "
                "drawn: its weights would be infinite; use a narrower interval or a wider dtype"
            )
        check_scale("uniform", "high - low", None if lo is None or hi is None else hi - lo, dtype)

    params = (("low", provenance(lo)), ("high", provenance(hi)))
    return Init("uniform", params, sample, moments, dtype=dtype, complex_ok=True, limits=limits)


@recipe
def truncated_normal(
    stddev: Any = 1e-2, dtype: Any = None, lower: float = -2.0, upper: float = 2.0, *, mean: Any = 0.0
) -> Init:
    """Truncated Gaussian whose samples have standard deviation exactly ``stddev``.

    A standard normal truncated to ``[lower, upper]`` (bounds in standard deviations of the
    untruncated normal) is centred and rescaled by its closed-form mean and standard
    deviation, then shifted by ``mean``. The signature is ``jax.nn.initializers.truncated_normal``'s,
    but DELIBERATELY NOT its numbers: jax's ``stddev`` is that of the untruncated normal, so its
    samples have standard deviation ``0.88 * stddev`` at the default bounds; the exact jax
    equivalent is ``truncated_normal(0.8796 * stddev)`` (0.87962566 is the (-2, 2) truncated
    standard deviation). A complex dtype is a circular normal with modulus truncated at
    ``upper`` standard deviations (``lower`` must be ``-upper``), rescaled so that
    :math:`E|w - mean|^2 = stddev^2` exactly.

    Args:
      stddev: Standard deviation of the samples (>= 0); a number or a traced scalar.
      dtype: Default dtype (real or complex); None: JAX's default float.
      lower: Lower truncation bound, in standard deviations.
      upper: Upper truncation bound, in standard deviations (> lower).
      mean: Mean of the samples (keyword-only).
    """
    stddev, sd = hyper("stddev", stddev, "truncated_normal")
    mean, mu = hyper("mean", mean, "truncated_normal", nonnegative=False)
    lower, upper = check_bounds(lower, upper, "truncated_normal")

    def sample(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
        if is_complex(dtype):
            check_symmetric_bounds(lower, upper, "truncated_normal")
            out = complex_truncated_normal(key, shape, dtype, stddev, upper)
        else:
            out = standardized_truncated_normal(key, shape, dtype, jnp.array(stddev, dtype), lower, upper)
        return out if mu == 0.0 else out + jnp.array(mean, dtype)

    def moments(shape: tuple[int, ...]) -> tuple[float, float]:
        concrete("truncated_normal", stddev=sd, mean=mu)
        assert sd is not None and mu is not None  # concrete() raised otherwise
        return mu, sd**2

    def reach(dtype: np.dtype) -> float | None:  # the bounds, rescaled to the samples' stddev
        if sd is None or mu is None or is_complex(dtype):
            return None
        m, sigma = truncated_standard_normal_moments(lower, upper)
        return max(abs(lower - m), abs(upper - m)) * sd / sigma + abs(mu)

    def limits(shape: tuple[int, ...], dtype: np.dtype) -> None:
        check_scale("truncated_normal", "stddev", sd, dtype)
        check_spread("truncated_normal", sd, mu, dtype)
        if not is_complex(dtype):
            check_resolvable(lower, upper, "truncated_normal", wide(dtype))

    params = (("stddev", provenance(sd)), ("lower", lower), ("upper", upper), ("mean", provenance(mu)))
    return Init("truncated_normal", params, sample, moments, dtype=dtype, complex_ok=True, reach=reach, limits=limits)
