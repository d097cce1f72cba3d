r"""Variance scaling and the LeCun / Glorot / He families, plus framework-default presets.

Every member draws i.i.d. entries with mean 0 and variance exactly

.. math:: \mathrm{Var}[w] = \frac{\text{scale}}{n}, \qquad
   n \in \{n_{in},\ n_{out},\ (n_{in} + n_{out})/2,\ \sqrt{n_{in} n_{out}}\}

for the modes ``fan_in``, ``fan_out``, ``fan_avg``, ``fan_geo_avg``; fans come from the
kernel layout (:mod:`inits._fans`). The distribution is rescaled so the variance is exact:
normal :math:`\sigma = \sqrt{v}`, uniform on :math:`[-\sqrt{3v}, \sqrt{3v}]`, truncated
normal divided by the truncated distribution's closed-form standard deviation.

Signatures are ``jax.nn.initializers``' (``in_axis, out_axis, batch_axis, dtype``; initbench's
extras keyword-only). Complex dtypes are exact: a circular normal, the uniform disk, and a normal
whose modulus is truncated at ``upper`` standard deviations, each with
:math:`\mathbb{E}|w|^2 = \text{scale}/n`, half in the real and half in the imaginary part. The
``scale`` (and the Glorot ``gain``) may be a traced scalar.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from initbench.inits._core import (
    Init,
    check_bounds,
    check_resolvable,
    check_scale,
    check_symmetric_bounds,
    complex_truncated_normal,
    concrete,
    hyper,
    is_complex,
    normal_reach,
    provenance,
    recipe,
    standardized_truncated_normal,
    truncated_standard_normal_moments,
    unit_disk,
    wide,
)
from initbench.inits._fans import AxisSpec, Layout, compute_fans, resolve_layout
from initbench.inits.errors import UsageError, positive_int, unknown_choice

Mode = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
Distribution = Literal["normal", "truncated_normal", "uniform"]
MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")


def _denominator(mode: str, fan_in: float, fan_out: float) -> float:
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2
    return math.sqrt(fan_in * fan_out)


@recipe
def variance_scaling(
    scale: float,
    mode: Mode,
    distribution: Distribution,
    in_axis: AxisSpec = -2,
    out_axis: AxisSpec = -1,
    batch_axis: AxisSpec = (),
    dtype: Any = None,
    *,
    lower: float = -2.0,
    upper: float = 2.0,
    layout: Layout | str | None = None,
    name: str = "variance_scaling",
) -> Init:
    r"""Entries with mean 0 and variance exactly ``scale / n`` (n set by ``mode``).

    Same arithmetic as :func:`jax.nn.initializers.variance_scaling` (bitwise equal outputs for
    the same key, real dtypes and the complex normal and uniform), plus truncation at any bounds
    with an exact correction, grouped-convolution fans, and an exact complex truncated normal
    (jax's has :math:`\mathbb{E}|w|^2` 1.87% above ``scale / n``).

    Example:
      >>> import jax
      >>> from initbench import inits
      >>> w = inits.variance_scaling(2.0, "fan_in", "normal")(jax.random.key(0), (512, 256))

    Args:
      scale: Variance multiplier (>= 0), e.g. 2 for ReLU (He et al. 2015).
      mode: ``fan_in``, ``fan_out``, ``fan_avg`` or ``fan_geo_avg``.
      distribution: ``normal``, ``truncated_normal`` or ``uniform``.
      in_axis: Input axis or axes (ignored when ``layout`` is given).
      out_axis: Output axis or axes (ignored when ``layout`` is given).
      batch_axis: Batch axes excluded from the fans (ignored when ``layout`` is given).
      dtype: Default dtype (real or complex); None: JAX's default float.
      lower: Truncation lower bound in standard deviations (truncated_normal only).
      upper: Truncation upper bound in standard deviations (truncated_normal only).
      layout: A :class:`inits.Layout` or preset name (``dense``, ``conv``, ...).
      name: Name shown in reprs and results.

    Raises:
      ValueError: unknown mode or distribution, negative scale, lower >= upper.
    """
    scale, fixed = hyper("scale", scale, name)
    if mode not in MODES:
        raise unknown_choice("mode", mode, MODES)
    if distribution not in DISTRIBUTIONS:
        raise unknown_choice("distribution", distribution, DISTRIBUTIONS)
    if distribution == "truncated_normal":
        lower, upper = check_bounds(lower, upper, name)
    lay = resolve_layout(layout, in_axis, out_axis, batch_axis)

    def variance_of(shape: tuple[int, ...]) -> Any:
        fan_in, fan_out = compute_fans(shape, lay)
        return scale / _denominator(mode, fan_in, fan_out)

    def sample(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
        w = wide(dtype)  # 16-bit floats: drawn and scaled in float32, rounded once; complex: itself
        variance = jnp.array(variance_of(shape), dtype=w)
        if distribution == "normal":  # complex: circular, E|z|^2 = 1
            return (jax.random.normal(key, shape, w) * jnp.sqrt(variance)).astype(dtype)
        if distribution == "uniform":
            if is_complex(dtype):
                return unit_disk(key, shape, dtype) * jnp.sqrt(variance)
            # U[-a, a] has variance a^2 / 3, so a = sqrt(3 v).
            return (jax.random.uniform(key, shape, w, -1) * jnp.sqrt(3 * variance)).astype(dtype)
        if is_complex(dtype):
            check_symmetric_bounds(lower, upper, name)
            return complex_truncated_normal(key, shape, dtype, jnp.sqrt(jnp.real(variance)), upper)
        return standardized_truncated_normal(key, shape, dtype, jnp.sqrt(variance), lower, upper)

    def moments(shape: tuple[int, ...]) -> tuple[float, float]:
        concrete(name, scale=fixed)
        return 0.0, variance_of(shape)

    params: list[tuple[str, object]] = [("scale", provenance(fixed)), ("mode", mode), ("distribution", distribution)]
    if distribution == "truncated_normal" and (lower, upper) != (-2.0, 2.0):
        params += [("lower", lower), ("upper", upper)]
    if lay.name != "dense" and (
        layout is not None or (lay.in_axis, lay.out_axis, lay.batch_axis) != ((-2,), (-1,), ())
    ):
        params.append(
            ("layout", lay.name if lay.name not in ("custom", "axes") else (lay.in_axis, lay.out_axis, lay.batch_axis))
        )

    def limits(shape: tuple[int, ...], dtype: np.dtype) -> None:
        if fixed is None or is_complex(dtype) or 0 in shape:
            return
        w, variance = wide(dtype), float(variance_of(shape))
        largest = float(jnp.finfo(w).max)
        if distribution == "normal":
            bound = normal_reach(w) * math.sqrt(variance)
        elif distribution == "uniform":
            bound = math.sqrt(3 * variance) if 3 * variance <= largest else math.inf  # sqrt(3 v) drawn in w
        else:
            m, sigma = truncated_standard_normal_moments(lower, upper)
            bound = max(abs(lower - m), abs(upper - m)) * math.sqrt(variance) / sigma
            check_resolvable(lower, upper, name, w)
        if bound > float(jnp.finfo(dtype).max) or 3 * variance > largest:
            raise UsageError(
                f"{name}: scale {fixed:g} gives variance {variance:.3g} for shape {shape}, whose draws reach about "
                f"{bound:.3g}, beyond {np.dtype(dtype).name}'s largest finite {float(jnp.finfo(dtype).max):g}"
            )
        check_scale(name, f"variance scale / fan for shape {shape},", variance, w)

    return Init(
        name, tuple(params), sample, moments, min_ndim=lay.min_ndim, dtype=dtype, complex_ok=True, limits=limits
    )


@recipe
def lecun_normal(
    in_axis: AxisSpec = -2, out_axis: AxisSpec = -1, batch_axis: AxisSpec = (), dtype: Any = None, *, layout=None
) -> Init:
    r"""LeCun normal: :math:`w \sim \mathcal{N}(0, 1/n_{in})` (LeCun et al. 1998, Efficient BackProp).

    Plain (untruncated) normal. DELIBERATE DIFFERENCE: ``jax.nn.initializers.lecun_normal`` (and
    Flax's default) is a truncated normal; its exact equivalent here is
    :func:`lecun_truncated_normal` (= ``flax_default``).
    """
    return variance_scaling(
        1.0, "fan_in", "normal", in_axis, out_axis, batch_axis, dtype, layout=layout, name="lecun_normal"
    )


@recipe
def lecun_uniform(
    in_axis: AxisSpec = -2, out_axis: AxisSpec = -1, batch_axis: AxisSpec = (), dtype: Any = None, *, layout=None
) -> Init:
    r"""LeCun uniform: :math:`w \sim U[-\sqrt{3/n_{in}}, \sqrt{3/n_{in}}]` (LeCun et al. 1998)."""
    return variance_scaling(
        1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype, layout=layout, name="lecun_uniform"
    )


@recipe
def lecun_truncated_normal(
    in_axis: AxisSpec = -2,
    out_axis: AxisSpec = -1,
    batch_axis: AxisSpec = (),
    dtype: Any = None,
    *,
    lower: float = -2.0,
    upper: float = 2.0,
    layout=None,
) -> Init:
    """LeCun truncated normal: variance exactly :math:`1/n_{in}` after truncation (LeCun et al. 1998)."""
    return variance_scaling(
        1.0,
        "fan_in",
        "truncated_normal",
        in_axis,
        out_axis,
        batch_axis,
        dtype,
        lower=lower,
        upper=upper,
        layout=layout,
        name="lecun_truncated_normal",
    )


@recipe
def glorot_normal(
    in_axis: AxisSpec = -2,
    out_axis: AxisSpec = -1,
    batch_axis: AxisSpec = (),
    dtype: Any = None,
    *,
    gain: Any = 1.0,
    layout=None,
) -> Init:
    r"""Glorot/Xavier normal: :math:`w \sim \mathcal{N}(0, g^2 \cdot 2/(n_{in} + n_{out}))`.

    Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward neural
    networks", AISTATS, eq. 12 (the normal form of their normalized initialization).
    DELIBERATE DIFFERENCE: ``jax.nn.initializers.glorot_normal`` is a truncated normal; its exact
    equivalent here is :func:`glorot_truncated_normal`.

    Args:
      in_axis: Input axis or axes.
      out_axis: Output axis or axes.
      batch_axis: Axes excluded from the fans.
      dtype: Default dtype (real or complex); None: JAX's default float.
      layout: A :class:`inits.Layout` or preset name; overrides the axis arguments.
      gain: Multiplier of the standard deviation (PyTorch's ``gain``), >= 0.
    """
    gain, _ = hyper("gain", gain, "glorot_normal")
    return variance_scaling(
        gain**2, "fan_avg", "normal", in_axis, out_axis, batch_axis, dtype, layout=layout, name="glorot_normal"
    )


@recipe
def glorot_truncated_normal(
    in_axis: AxisSpec = -2,
    out_axis: AxisSpec = -1,
    batch_axis: AxisSpec = (),
    dtype: Any = None,
    *,
    gain: Any = 1.0,
    lower: float = -2.0,
    upper: float = 2.0,
    layout=None,
) -> Init:
    r"""Glorot/Xavier truncated normal: variance exactly :math:`g^2 \cdot 2/(n_{in} + n_{out})` after truncation.

    This is what ``jax.nn.initializers.glorot_normal`` draws (bitwise equal at the default
    bounds); initbench's :func:`glorot_normal` is the plain normal of the paper's eq. 12.
    Glorot & Bengio 2010, AISTATS.
    """
    gain, _ = hyper("gain", gain, "glorot_truncated_normal")
    return variance_scaling(
        gain**2,
        "fan_avg",
        "truncated_normal",
        in_axis,
        out_axis,
        batch_axis,
        dtype,
        lower=lower,
        upper=upper,
        layout=layout,
        name="glorot_truncated_normal",
    )


@recipe
def glorot_uniform(
    in_axis: AxisSpec = -2,
    out_axis: AxisSpec = -1,
    batch_axis: AxisSpec = (),
    dtype: Any = None,
    *,
    gain: Any = 1.0,
    layout=None,
) -> Init:
    r"""Glorot/Xavier uniform, the "normalized initialization" of Glorot & Bengio 2010 (eq. 16).

    .. math:: w \sim U\left[-g\sqrt{6/(n_{in} + n_{out})},\ g\sqrt{6/(n_{in} + n_{out})}\right]

    Args:
      in_axis: Input axis or axes.
      out_axis: Output axis or axes.
      batch_axis: Axes excluded from the fans.
      dtype: Default dtype (real or complex); None: JAX's default float.
      layout: A :class:`inits.Layout` or preset name; overrides the axis arguments.
      gain: Multiplier of the bound (PyTorch's ``gain``), >= 0.
    """
    gain, _ = hyper("gain", gain, "glorot_uniform")
    return variance_scaling(
        gain**2, "fan_avg", "uniform", in_axis, out_axis, batch_axis, dtype, layout=layout, name="glorot_uniform"
    )


@recipe
def glorot_standard(
    in_axis: AxisSpec = -2, out_axis: AxisSpec = -1, batch_axis: AxisSpec = (), dtype: Any = None, *, layout=None
) -> Init:
    r"""Glorot & Bengio 2010's "standard" heuristic (their eq. 1).

    .. math:: w \sim U[-1/\sqrt{n},\ 1/\sqrt{n}],\ n = n_{in}, \qquad \mathrm{Var}[w] = 1/(3 n_{in})

    The baseline the normalized initialization was compared against; the variance shrinks
    by 1/3 per layer in a linear network.
    """
    return variance_scaling(
        1.0 / 3.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype, layout=layout, name="glorot_standard"
    )


def _he_scale(negative_slope: float, what: str) -> float:
    if isinstance(negative_slope, jax.core.Tracer):
        raise UsageError(f"{what}: negative_slope must be a concrete number, got a traced value")
    a = float(negative_slope)
    if not math.isfinite(a):
        raise UsageError(f"{what}: negative_slope must be finite, got {negative_slope!r}")
    return 2.0 / (1.0 + a * a)


@recipe
def he_normal(
    in_axis: AxisSpec = -2,
    out_axis: AxisSpec = -1,
    batch_axis: AxisSpec = (),
    dtype: Any = None,
    *,
    mode: Mode = "fan_in",
    negative_slope: float = 0.0,
    layout=None,
) -> Init:
    r"""He/Kaiming normal: :math:`w \sim \mathcal{N}(0, 2/((1 + a^2) n))`.

    He et al. 2015, "Delving Deep into Rectifiers", ICCV, eq. 10 (fan_in, forward) and
    eq. 14 (fan_out, backward); ``a`` is the leaky-ReLU/PReLU negative slope, gain
    :math:`\sqrt{2/(1 + a^2)}`. DELIBERATE DIFFERENCE: ``jax.nn.initializers.he_normal`` is a
    truncated normal; its exact equivalent here is :func:`he_truncated_normal`.

    Args:
      in_axis: Input axis or axes.
      out_axis: Output axis or axes.
      batch_axis: Axes excluded from the fans.
      dtype: Default dtype (real or complex); None: JAX's default float.
      layout: A :class:`inits.Layout` or preset name; overrides the axis arguments.
      mode: ``fan_in`` (preserve forward variance) or ``fan_out`` (backward), or the others.
      negative_slope: ``a`` of a leaky ReLU / PReLU (0 for ReLU).
    """
    scale = _he_scale(negative_slope, "he_normal")
    return variance_scaling(
        scale, mode, "normal", in_axis, out_axis, batch_axis, dtype, layout=layout, name="he_normal"
    )


@recipe
def he_uniform(
    in_axis: AxisSpec = -2,
    out_axis: AxisSpec = -1,
    batch_axis: AxisSpec = (),
    dtype: Any = None,
    *,
    mode: Mode = "fan_in",
    negative_slope: float = 0.0,
    layout=None,
) -> Init:
    r"""He/Kaiming uniform: :math:`w \sim U[-\sqrt{6/((1 + a^2) n)}, \sqrt{6/((1 + a^2) n)}]` (He et al. 2015)."""
    scale = _he_scale(negative_slope, "he_uniform")
    return variance_scaling(
        scale, mode, "uniform", in_axis, out_axis, batch_axis, dtype, layout=layout, name="he_uniform"
    )


@recipe
def he_truncated_normal(
    in_axis: AxisSpec = -2,
    out_axis: AxisSpec = -1,
    batch_axis: AxisSpec = (),
    dtype: Any = None,
    *,
    mode: Mode = "fan_in",
    negative_slope: float = 0.0,
    lower: float = -2.0,
    upper: float = 2.0,
    layout=None,
) -> Init:
    """He/Kaiming truncated normal, variance exactly :math:`2/((1 + a^2) n)` (He et al. 2015)."""
    scale = _he_scale(negative_slope, "he_truncated_normal")
    return variance_scaling(
        scale,
        mode,
        "truncated_normal",
        in_axis,
        out_axis,
        batch_axis,
        dtype,
        lower=lower,
        upper=upper,
        layout=layout,
        name="he_truncated_normal",
    )


@recipe
def torch_default(
    in_axis: AxisSpec = -2, out_axis: AxisSpec = -1, batch_axis: AxisSpec = (), dtype: Any = None, *, layout=None
) -> Init:
    r"""PyTorch's default ``nn.Linear``/``nn.ConvNd`` weight init.

    ``kaiming_uniform_(w, a=sqrt(5))``: gain :math:`\sqrt{2/(1+5)} = 1/\sqrt{3}`, bound
    :math:`g\sqrt{3/n_{in}} = 1/\sqrt{n_{in}}`, so :math:`w \sim U[-1/\sqrt{n_{in}}, 1/\sqrt{n_{in}}]`
    with variance :math:`1/(3 n_{in})` (torch/nn/modules/linear.py, ``reset_parameters``).
    Pair it with :func:`torch_default_bias`.
    """
    return variance_scaling(
        1.0 / 3.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype, layout=layout, name="torch_default"
    )


@recipe
def torch_default_bias(fan_in: int) -> Init:
    r"""PyTorch's default bias init: :math:`b \sim U[-1/\sqrt{n_{in}}, 1/\sqrt{n_{in}}]`.

    The bound depends on the layer's weight fan-in, which a bias shape does not carry, so it
    is an argument (the models pass each layer's fan-in when given ``"torch_default"``).

    Args:
      fan_in: Fan-in of the layer's weight (positive integer).
    """
    fan_in = positive_int("torch_default_bias: fan_in", fan_in)
    bound = 1.0 / math.sqrt(fan_in)
    return Init(
        "torch_default_bias",
        (("fan_in", fan_in),),
        lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -bound, bound),
        lambda s: (0.0, bound**2 / 3),
    )


@recipe
def keras_default(
    in_axis: AxisSpec = -2, out_axis: AxisSpec = -1, batch_axis: AxisSpec = (), dtype: Any = None, *, layout=None
) -> Init:
    """Keras' default ``Dense``/``Conv`` kernel init: ``glorot_uniform`` (Glorot & Bengio 2010)."""
    return variance_scaling(
        1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis, dtype, layout=layout, name="keras_default"
    )


@recipe
def flax_default(
    in_axis: AxisSpec = -2, out_axis: AxisSpec = -1, batch_axis: AxisSpec = (), dtype: Any = None, *, layout=None
) -> Init:
    """Flax's default kernel init: ``jax.nn.initializers.lecun_normal()``.

    That is a normal truncated at +-2 standard deviations, rescaled so the variance is
    exactly :math:`1/n_{in}`; bitwise equal to Flax's ``default_kernel_init``.
    """
    return variance_scaling(
        1.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis, dtype, layout=layout, name="flax_default"
    )


xavier_normal = glorot_normal
xavier_uniform = glorot_uniform
kaiming_normal = he_normal
kaiming_uniform = he_uniform
