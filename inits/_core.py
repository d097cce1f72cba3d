"""The initializer object every public factory returns, and shared sampling code."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from initbench.inits._fans import check_shape
from initbench.inits.errors import UsageError, check_float_dtype

Sampler = Callable[[jax.Array, tuple[int, ...], np.dtype], jax.Array]
Moments = Callable[[tuple[int, ...]], tuple[float, float]]


@dataclasses.dataclass(frozen=True, eq=False)
class Init:
    """An initializer: ``init(key, shape, dtype=jnp.float32) -> jax.Array``.

    Instances satisfy the :class:`jax.nn.initializers.Initializer` protocol, so they plug
    into ``flax.linen`` as ``kernel_init``/``bias_init``. The call is pure (all randomness
    comes from ``key``), works under ``jit`` and ``vmap`` over keys, and validates the shape
    and dtype before sampling.

    Attributes:
      name: Registry name of the initializer.
      params: The factory's arguments, as ``(name, value)`` pairs (for provenance).
      sample: ``(key, shape, dtype) -> array`` on an already-validated shape and dtype.
      moments: ``shape -> (mean, variance)`` of one entry, exact in expectation, or None
        when the entries are not identically distributed (structured initializers).
      min_ndim: Smallest rank the initializer accepts.
      max_ndim: Largest rank it accepts (None: any), e.g. 2 for ``identity`` (Dense only).
    """

    name: str
    params: tuple[tuple[str, Any], ...]
    sample: Sampler
    moments: Moments | None = None
    min_ndim: int = 0
    max_ndim: int | None = None

    def __call__(self, key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        shape = check_shape(shape, self.min_ndim, self.name)
        if self.max_ndim is not None and len(shape) > self.max_ndim:
            raise UsageError(
                f"{self.name} takes kernels of at most {self.max_ndim} dims, got shape {shape}"
                + (": for a convolution kernel use dirac (the identity convolution)" if self.name == "identity" else "")
            )
        dt = check_float_dtype(dtype, self.name)
        return self.sample(key, shape, dt)

    def target(self, shape: Sequence[int]) -> tuple[float, float]:
        """Returns the exact ``(mean, variance)`` of one entry for a kernel of ``shape``."""
        if self.moments is None:
            raise UsageError(f"{self.name} has no per-entry target moments (structured init)")
        return self.moments(check_shape(shape, self.min_ndim, self.name))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"{self.name}({args})"


def truncated_standard_normal_moments(lower: float, upper: float) -> tuple[float, float]:
    r"""Mean and standard deviation of N(0, 1) truncated to ``[lower, upper]``.

    With :math:`Z = \Phi(b) - \Phi(a)`:
    :math:`\mu = (\phi(a) - \phi(b)) / Z` and
    :math:`\sigma^2 = 1 + (a\phi(a) - b\phi(b)) / Z - \mu^2`
    (Johnson, Kotz & Balakrishnan, Continuous Univariate Distributions, vol. 1, ch. 13).
    """

    def pdf(x: float) -> float:
        return 0.0 if math.isinf(x) else math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

    def cdf(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2.0))

    def x_pdf(x: float) -> float:
        return 0.0 if math.isinf(x) else x * pdf(x)

    mass = cdf(upper) - cdf(lower)
    mean = (pdf(lower) - pdf(upper)) / mass
    var = 1.0 + (x_pdf(lower) - x_pdf(upper)) / mass - mean * mean
    return mean, math.sqrt(var)


def check_bounds(lower: float, upper: float, what: str) -> tuple[float, float]:
    """Validates truncation bounds (in standard deviations of the untruncated normal)."""
    lower, upper = float(lower), float(upper)
    if math.isnan(lower) or math.isnan(upper) or not lower < upper:
        raise UsageError(f"{what}: truncation bounds need lower < upper, got lower={lower}, upper={upper}")
    if lower >= 8.0 or upper <= -8.0:
        raise UsageError(
            f"{what}: bounds [{lower}, {upper}] hold almost no mass of N(0, 1); keep the interval overlapping [-8, 8]"
        )
    return lower, upper


def standardized_truncated_normal(
    key: jax.Array,
    shape: tuple[int, ...],
    dtype: np.dtype,
    stddev: jax.Array,
    lower: float,
    upper: float,
) -> jax.Array:
    """Samples with mean 0 and standard deviation exactly ``stddev`` from a truncated normal.

    Draws ``Z ~ N(0, 1)`` truncated to ``[lower, upper]`` and returns
    ``(Z - mu) * stddev / sigma``, where ``mu`` and ``sigma`` are the truncated
    distribution's mean and standard deviation in closed form. For symmetric bounds
    ``mu = 0`` and the arithmetic is the same as ``jax.nn.initializers`` (bitwise equal for
    bounds (-2, 2)). Unlike :func:`jax.nn.initializers.truncated_normal`, whose ``stddev``
    is that of the untruncated normal, the samples' standard deviation IS ``stddev``.
    """
    mean, sigma = truncated_standard_normal_moments(lower, upper)
    # The inverse-CDF sampler loses its tails and centring in 16-bit floats (a bias of about
    # 1% of a standard deviation for asymmetric bounds in bfloat16): sample in float32 there.
    wide = np.dtype(np.float32) if jnp.finfo(dtype).bits < 32 else dtype
    z = jax.random.truncated_normal(key, lower, upper, shape, wide)
    if mean != 0.0:
        z = z - jnp.asarray(mean, wide)
    return (z * (stddev.astype(wide) / jnp.asarray(sigma, wide))).astype(dtype)
