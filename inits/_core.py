"""The initializer object every public factory returns, and shared sampling code."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from initbench.inits._fans import check_shape
from initbench.inits.errors import UsageError, check_dtype

Sampler = Callable[[jax.Array, tuple[int, ...], np.dtype], jax.Array]
Moments = Callable[[tuple[int, ...]], tuple[float, float]]


class _FactoryDtype:
    """The default of ``Init.__call__``'s dtype: the factory's dtype (jax's ``dtype=dtype`` default)."""

    def __repr__(self) -> str:
        return "<the factory's dtype>"


_FACTORY_DTYPE: Any = _FactoryDtype()


@dataclasses.dataclass(frozen=True, eq=False)
class Init:
    r"""An initializer: ``init(key, shape, dtype=None) -> jax.Array``.

    Instances satisfy the :class:`jax.nn.initializers.Initializer` protocol, so they plug
    into ``flax.linen`` as ``kernel_init``/``bias_init``. The call is pure (all randomness
    comes from ``key``), works under ``jit`` and ``vmap`` over keys, and validates the shape
    and dtype before sampling. As in ``jax.nn.initializers``, the call's ``dtype`` defaults to
    the factory's ``dtype``, and that to JAX's default float (float32; float64 with x64).

    Attributes:
      name: Registry name of the initializer.
      params: The factory's arguments, as ``(name, value)`` pairs (for provenance).
      sample: ``(key, shape, dtype) -> array`` on an already-validated shape and dtype.
      moments: ``shape -> (mean, variance)`` of one entry, exact in expectation (for complex
        dtypes the variance is :math:`\mathbb{E}|w - \text{mean}|^2`), or None when the
        entries are not identically distributed (structured initializers). It may raise a
        UsageError saying why no target exists (a traced hyper-parameter).
      min_ndim: Smallest rank the initializer accepts.
      max_ndim: Largest rank it accepts (None: any), e.g. 2 for ``identity`` (Dense only).
      dtype: The factory's default dtype (None: JAX's default float).
      complex_ok: Whether complex dtypes are supported.
      reach: ``dtype -> bound`` on the magnitude a draw in ``dtype`` can take, for samplers
        whose range is wider than their parameters (a Gaussian's tails), or None. A draw
        that could overflow the dtype is refused (infinite weights are not the distribution).
      limits: ``(shape, dtype) -> None``, raising a one-line UsageError when this shape and
        dtype cannot carry the distribution (an internal overflow, a scale that underflows to
        zero, truncation bounds the dtype cannot resolve), or None.
    """

    name: str
    params: tuple[tuple[str, Any], ...]
    sample: Sampler
    moments: Moments | None = None
    min_ndim: int = 0
    max_ndim: int | None = None
    dtype: Any = None
    complex_ok: bool = False
    any_dtype: bool = False
    reach: Callable[[np.dtype], float | None] | None = None
    limits: Callable[[tuple[int, ...], np.dtype], None] | None = None
    # (factory, args, kwargs): see :func:`recipe`; not an __init__ argument, so dataclasses.replace drops it
    # (a replaced Init is not its factory's call any more: it refuses pickling instead of pickling stale)
    _call: Any = dataclasses.field(default=None, repr=False, init=False)

    def __post_init__(self) -> None:
        if self.dtype is not None:  # a bad default dtype fails when the factory is called, not later
            self._dtype(self.dtype)

    def _dtype(self, dtype: Any) -> np.dtype:
        if self.any_dtype and dtype is not None:  # zeros/ones/constant: integers and bools too, as jax's
            try:
                return np.dtype(jax.dtypes.canonicalize_dtype(jnp.dtype(dtype)))
            except TypeError:
                raise UsageError(f"{self.name}: {dtype!r} is not a dtype") from None
        return check_dtype(dtype, self.name, complex_ok=self.complex_ok)

    def __call__(
        self, key: jax.Array, shape: Sequence[int], dtype: Any = _FACTORY_DTYPE, out_sharding: Any = None
    ) -> jax.Array:
        shape = check_shape(shape, self.min_ndim, self.name)
        if self.max_ndim is not None and len(shape) > self.max_ndim:
            raise UsageError(
                f"{self.name} takes kernels of at most {self.max_ndim} dims, got shape {shape}"
                + (": for a convolution kernel use dirac (the identity convolution)" if self.name == "identity" else "")
            )
        # as jax: the call's dtype defaults to the factory's; an explicit None is JAX's default float
        dt = self._dtype(self.dtype if dtype is _FACTORY_DTYPE else dtype)
        _check_representable(self.name, self.params, dt)
        if self.limits is not None:
            self.limits(shape, dt)
        if self.reach is not None and jnp.issubdtype(dt, jnp.inexact):
            bound, largest = self.reach(dt), float(jnp.finfo(dt).max)
            if bound is not None and bound > largest:
                shown = ", ".join(f"{k} = {v:g}" for k, v in self.params if isinstance(v, int | float))
                raise UsageError(
                    f"{self.name}: with {shown} draws reach about {bound:.3g}, beyond {np.dtype(dt).name}'s "
                    f"largest finite {largest:g}: some weights would be infinite; use a smaller scale or a wider dtype"
                )
        out = jnp.zeros(shape, dt) if 0 in shape else self.sample(key, shape, dt)  # an empty kernel, as jax
        if out_sharding is not None:  # the jax.nn.initializers keyword: lay the result out as asked
            out = jax.sharding.reshard(out, out_sharding)
        return out

    def target(self, shape: Sequence[int]) -> tuple[float, float]:
        """Returns the exact ``(mean, variance)`` of one entry for a kernel of ``shape``.

        Raises:
          ValueError: a structured initializer (entries not identically distributed), or a
            hyper-parameter that is traced (under ``jit``/``grad``) and so has no value yet.
        """
        if self.moments is None:
            raise UsageError(f"{self.name} has no per-entry target moments (structured init)")
        shape = check_shape(shape, self.min_ndim, self.name)
        if 0 in shape:
            raise UsageError(f"{self.name}: an empty kernel {shape} has no entries, so no target moments")
        return self.moments(shape)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"{self.name}({args})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as the factory call that made it (the sampler is a closure): pickle, copy, multiprocessing."""
        if self._call is None:
            raise TypeError(
                f"{self!r} cannot be pickled: it was built with Init(...) or changed by dataclasses.replace, "
                "not made by an initbench factory"
            )
        factory, args, kwargs = self._call
        return (_remake, (factory, args, kwargs))


def _remake(factory: Callable[..., Init], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Init:
    return factory(*args, **kwargs)


def recipe(factory: Callable[..., Any]) -> Callable[..., Any]:
    """Decorates a public factory so that each :class:`Init` it returns remembers the call (picklable).

    The outermost decorated call wins (``he_normal()`` pickles as ``he_normal()``, not as the
    ``variance_scaling`` call inside it). Example:

      >>> import pickle
      >>> from initbench import inits
      >>> pickle.loads(pickle.dumps(inits.normal(0.1)))
      normal(stddev=0.1, mean=0.0)
    """

    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> Any:
        out = factory(*args, **kwargs)
        if isinstance(out, Init):
            object.__setattr__(out, "_call", (make, args, kwargs))
        return out

    return make


TRACED = "<traced>"


def _check_representable(name: str, params: Sequence[tuple[str, Any]], dtype: Any) -> None:
    """Raises a one-line UsageError when a concrete number among ``params`` overflows ``dtype``.

    Such a parameter (``normal(1e6)`` in float16, ``normal(1e300)`` in float32) would give infinite
    weights without a word; jax's own initializers return them.
    """
    if not jnp.issubdtype(dtype, jnp.inexact):  # jnp: bfloat16 is no numpy inexact type
        return
    largest = float(jnp.finfo(dtype).max)
    for key, value in params:
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            continue
        v = complex(value) if isinstance(value, complex | np.complexfloating) else float(value)
        if math.isfinite(abs(v)) and abs(v) > largest:
            raise UsageError(
                f"{name}: {key} = {value:g} overflows {np.dtype(dtype).name} (largest finite {largest:g}): "
                f"its weights would be infinite; use a smaller {key} or a wider dtype"
            )


def hyper(name: str, value: Any, what: str, *, nonnegative: bool = True) -> tuple[Any, float | None]:
    """A scale-type hyper-parameter (stddev, scale, gain, mean): ``(value to sample with, concrete float)``.

    A number or a concrete 0-d array is validated (finite; >= 0 when ``nonnegative``) and
    returned as a float twice. A traced value (the factory called under ``jit``, ``grad`` or
    ``vmap``) cannot be validated or turned into a float: it is returned as is, with None, and
    the sampler multiplies by it as an array, so gradients flow to it.

    Raises:
      ValueError: not a number, not a scalar, non-finite, or negative when it must not be.
    """
    if isinstance(value, jax.core.Tracer):
        if jnp.ndim(value) != 0:
            raise UsageError(f"{what}: {name} must be a scalar, got an array of shape {jnp.shape(value)}")
        return value, None
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what}: {name} must be a number, got {value!r}") from None
    if arr.ndim != 0:
        raise UsageError(f"{what}: {name} must be a scalar, got an array of shape {arr.shape}")
    if arr.dtype == np.bool_:  # True is not a standard deviation of 1
        raise UsageError(f"{what}: {name} must be a number, got the bool {value!r}")
    if not np.issubdtype(arr.dtype, np.number):
        raise UsageError(f"{what}: {name} must be a number, got {value!r}")
    if np.iscomplexobj(arr):
        raise UsageError(f"{what}: {name} must be a real number, got {value!r}")
    v = float(arr)
    if not math.isfinite(v) or (nonnegative and v < 0):
        raise UsageError(f"{what}: {name} must be a finite number{' >= 0' if nonnegative else ''}, got {value!r}")
    return v, v


def concrete(what: str, **values: float | None) -> None:
    """Raises the clear error of ``target`` when a hyper-parameter is traced (its value is unknown)."""
    traced = [k for k, v in values.items() if v is None]
    if traced:
        raise UsageError(
            f"{what}: target(shape) needs concrete hyper-parameters, but {', '.join(traced)} is traced "
            "(the factory was called under jit/grad/vmap); call target on a factory built from numbers"
        )


def provenance(concrete_value: float | None) -> Any:
    """What ``Init.params`` records for a hyper-parameter: its value, or ``"<traced>"``."""
    return TRACED if concrete_value is None else concrete_value


def real_dtype(dtype: np.dtype) -> np.dtype:
    """The real dtype of a complex one (complex64 -> float32); a real dtype itself."""
    return np.dtype(np.finfo(dtype).dtype) if np.issubdtype(dtype, np.complexfloating) else np.dtype(dtype)


def wide(dtype: np.dtype) -> np.dtype:
    """The dtype to draw in: float32 for 16-bit floats (drawn there and rounded once), else ``dtype``.

    JAX's bfloat16 normal draw loses about 0.5% of the variance (its inverse-CDF in bfloat16) and a
    bfloat16 ``sqrt(variance)`` is off by up to 0.4%: drawing and scaling in float32 and rounding
    once keeps the variance exact to rounding (about 1e-5 relative).
    """
    return np.dtype(np.float32) if not is_complex(dtype) and jnp.finfo(dtype).bits < 32 else np.dtype(dtype)


@functools.cache
def normal_reach(dtype: np.dtype) -> float:
    r"""The largest :math:`|z|` ``jax.random.normal`` draws in ``dtype`` (its real part's for complex).

    JAX draws :math:`z = \sqrt 2\,\mathrm{erf}^{-1}(u)` with :math:`u` uniform on
    :math:`[\mathrm{nextafter}(-1, \infty), 1)`, so :math:`|z| \le z^*` with
    :math:`\mathrm{erfc}(z^*/\sqrt 2) = \epsilon_-` (the dtype's ``epsneg``): 5.42 in float32,
    3.49 in float16, 8.29 in float64. Solved by bisection; 0.1% added for the inverse's rounding.

    Example:
      >>> import numpy as np
      >>> round(normal_reach(np.dtype(np.float32)), 2)
      5.43
    """
    real = np.finfo(np.dtype(dtype)).dtype  # a complex dtype's component
    eps = float(np.finfo(real).epsneg)
    lo, hi = 0.0, 40.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erfc(mid / math.sqrt(2)) > eps else (lo, mid)
    return hi * 1.001


def is_complex(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is complex."""
    return bool(np.issubdtype(dtype, np.complexfloating))


def unit_disk(key: jax.Array, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
    r"""Complex samples uniform on the disk of radius :math:`\sqrt 2`: mean 0, :math:`\mathbb{E}|w|^2 = 1`.

    :math:`r = \sqrt{2U}`, :math:`\theta = 2\pi V` (:math:`U, V \sim U[0, 1)`): the area
    element makes :math:`r^2/2` uniform, so :math:`\mathbb{E}[r^2] = 1`, split equally between
    the real and imaginary parts. The same draw as ``jax.nn.initializers``' complex uniform.
    """
    k_r, k_theta = jax.random.split(key)
    real = real_dtype(dtype)
    r = jnp.sqrt(2 * jax.random.uniform(k_r, shape, real)).astype(dtype)
    theta = 2 * np.pi * jax.random.uniform(k_theta, shape, real).astype(dtype)
    return r * jnp.exp(jnp.asarray(1j, dtype) * theta)


def complex_truncated_second_moment(upper: float) -> float:
    r""":math:`\mathbb{E}|z|^2` of a standard complex normal (:math:`\mathbb{E}|z|^2 = 1`) with :math:`|z| \le u`.

    :math:`|z|^2 \sim \text{Exp}(1)`, so truncated to :math:`[0, u^2]`:
    :math:`\mathbb{E}|z|^2 = 1 - u^2 e^{-u^2} / (1 - e^{-u^2})` (0.92537 for :math:`u = 2`).
    ``jax.nn.initializers.variance_scaling`` divides by 0.90842 instead, so its complex
    truncated normal has :math:`\mathbb{E}|w|^2` 1.87% above the target.
    """
    u2 = float(upper) ** 2
    return 1.0 - u2 * math.exp(-u2) / -math.expm1(-u2)


def complex_truncated_normal(
    key: jax.Array, shape: tuple[int, ...], dtype: np.dtype, stddev: jax.Array, upper: float
) -> jax.Array:
    r"""Complex circular normal, modulus truncated at ``upper`` standard deviations, exact :math:`\mathbb{E}|w|^2`.

    Draws :math:`|z|^2` from Exp(1) truncated to :math:`[0, u^2]` by inversion
    (:math:`|z|^2 = -\log(1 - (1 - e^{-u^2})U)`), a uniform phase, and divides by the closed-form
    :math:`\sqrt{\mathbb{E}|z|^2}` (:func:`complex_truncated_second_moment`), so
    :math:`\mathbb{E}|w|^2 = \text{stddev}^2` exactly, half in each of the real and imaginary parts.
    """
    k_r, k_theta = jax.random.split(key)
    w = wide(real_dtype(dtype))
    u = jax.random.uniform(k_r, shape, w)
    mass = -math.expm1(-(float(upper) ** 2))  # P(|z|^2 <= u^2) = 1 - exp(-u^2)
    r2 = -jnp.log1p(-mass * u)
    theta = 2 * np.pi * jax.random.uniform(k_theta, shape, w)
    modulus = jnp.sqrt(r2) * (jnp.asarray(stddev, w) / math.sqrt(complex_truncated_second_moment(upper)))
    return jax.lax.complex(modulus * jnp.cos(theta), modulus * jnp.sin(theta)).astype(dtype)


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


def check_scale(what: str, name: str, value: float | None, dtype: np.dtype) -> None:
    """Refuses a positive scale below ``dtype``'s smallest normal number: its draws would round to zero."""
    tiny = float(jnp.finfo(dtype).tiny)
    if value is not None and 0 < value < tiny:
        raise UsageError(
            f"{what}: {name} {value:g} is below {np.dtype(dtype).name}'s smallest normal number ({tiny:.3g}): "
            "the weights would be zero or denormal; use a larger scale, a wider dtype, or zeros"
        )


def check_spread(what: str, stddev: float | None, mean: float | None, dtype: Any) -> None:
    """Refuses a spread the dtype cannot resolve at the mean (``normal(0.1, mean=6.5e4)`` in float16: one value).

    The draws are rounded to ``dtype`` around the mean; a spacing there above ``stddev / 8``
    leaves a few distinct values and a variance off by more than about 0.1%.
    """
    if stddev is None or mean is None or stddev == 0 or is_complex(dtype) or not jnp.issubdtype(dtype, jnp.floating):
        return
    spacing = float(jnp.finfo(dtype).eps) * abs(mean)  # the gap between neighbouring numbers near the mean
    if spacing > stddev / 8:
        raise UsageError(
            f"{what}: {np.dtype(dtype).name} resolves only {spacing:.3g} near the mean {mean:g}, more than "
            f"stddev {stddev:g} / 8: the draws would lose their spread; use a wider dtype or a smaller mean"
        )


def check_resolvable(lower: float, upper: float, what: str, dtype: np.dtype, steps: int = 256) -> None:
    r"""Refuses truncation bounds whose interval the draw dtype cannot resolve.

    JAX draws a truncated normal as :math:`\sqrt 2\,\mathrm{erf}^{-1}(u)`, :math:`u` uniform
    between :math:`\mathrm{erf}(l/\sqrt 2)` and :math:`\mathrm{erf}(h/\sqrt 2)` in ``dtype``: far
    in a tail both round to (nearly) the same number, and every draw is (nearly) one value.
    Fewer than ``steps`` representable values between them is refused.
    """
    real = np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)
    a, b = (float(np.asarray(math.erf(v / math.sqrt(2)), real)) for v in (lower, upper))  # rounded to real
    if b - a < steps * float(np.spacing(np.asarray(max(abs(a), abs(b)), real))):
        raise UsageError(
            f"{what}: {real.name} cannot resolve the truncated normal on [{lower:g}, {upper:g}] standard deviations "
            f"(erf at the bounds is {a:.9g} and {b:.9g}): its draws would be a few values; move the bounds "
            "toward the centre"
        )


def check_symmetric_bounds(lower: float, upper: float, what: str) -> None:
    """A complex truncated normal truncates the modulus: it needs ``lower == -upper``."""
    if lower != -upper:
        raise UsageError(
            f"{what}: a complex truncated normal truncates the modulus at upper, so it needs lower = -upper; "
            f"got lower={lower}, upper={upper}"
        )


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
    w = wide(dtype)
    z = jax.random.truncated_normal(key, lower, upper, shape, w)
    if mean != 0.0:
        z = z - jnp.asarray(mean, w)
    return (z * (jnp.asarray(stddev, w) / jnp.asarray(sigma, w))).astype(dtype)
