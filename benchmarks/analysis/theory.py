r"""Mean-field theory of signal propagation in wide fully connected networks.

For weights :math:`W_{ij} \sim \mathcal{N}(0, \sigma_w^2 / n_{in})` and biases
:math:`b_i \sim \mathcal{N}(0, \sigma_b^2)`, pre-activations :math:`h^l = W^l \phi(h^{l-1}) + b^l`
of an infinitely wide net are Gaussian with second moment :math:`q^l` (Poole et al. 2016,
"Exponential expressivity in deep neural networks through transient chaos"; Schoenholz et al.
2017, "Deep Information Propagation"):

* length map :math:`q^l = \sigma_w^2 \mathbb{E}_z[\phi(\sqrt{q^{l-1}} z)^2] + \sigma_b^2`,
  with first layer :math:`q^1 = \sigma_w^2 \overline{x^2} + \sigma_b^2`;
* its fixed point :math:`q^*`, and :math:`\chi_1 = \sigma_w^2 \mathbb{E}[\phi'(\sqrt{q^*} z)^2]`
  (the mean squared singular value of one layer's Jacobian; :math:`\chi_1 = 1` is the edge of
  chaos);
* the correlation map :math:`c^l = (\sigma_w^2 \mathbb{E}[\phi(u_1)\phi(u_2)] + \sigma_b^2) / q^*`,
  :math:`u_1 = \sqrt{q^*} z_1`, :math:`u_2 = \sqrt{q^*}(c z_1 + \sqrt{1 - c^2} z_2)`, its fixed
  point :math:`c^*` and slope :math:`\chi_c`;
* depth scales :math:`\xi_q^{-1} = -\log(\chi_1 + \sigma_w^2 \mathbb{E}[\phi''(\sqrt{q^*}z)\phi(\sqrt{q^*}z)])`
  and :math:`\xi_c^{-1} = -\log \chi_c` (Schoenholz et al. 2017, eqs. 5 and 9);
* the input-output Jacobian spectrum (Pennington, Schoenholz & Ganguli 2017, "Resurrecting the
  sigmoid"): mean squared singular value :math:`\prod_l \sigma_w^2 \mu_1^{(l)}` and normalised
  spread :math:`\mathrm{Var}[s^2] / \mathbb{E}[s^2]^2 = \sum_l (s_W + \mu_2^{(l)}/\mu_1^{(l)2} - 1)`,
  :math:`\mu_k = \mathbb{E}[\phi'(h)^{2k}]`, with :math:`s_W = 1` for Gaussian and 0 for
  orthogonal weights (free multiplicative convolution adds normalised variances).

Gaussian expectations use the quadrature of :mod:`inits._gains` (split at 0 for kinks), as
fixed arrays, so every function here is jit-able; 2-D expectations use the product grid.
The tests check these numerics against the closed forms of linear and ReLU networks.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from initbench import inits
from initbench.inits import gaussian_quadrature
from initbench.inits.errors import UsageError
from initbench.models.activations import ActivationSpec, resolve

ActivationFn = Callable[[jax.Array], jax.Array]
ITERATIONS = 300
BISECTIONS = 80
_DIVERGED = 1e30


def _quadrature() -> tuple[jax.Array, jax.Array]:
    x, w = gaussian_quadrature()
    return jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32)


def expect(f: ActivationFn, q: jax.Array | float) -> jax.Array:
    r""":math:`\mathbb{E}[f(\sqrt{q} z)]`, :math:`z \sim \mathcal{N}(0, 1)` (jit-able)."""
    x, w = _quadrature()
    return jnp.sum(w * f(jnp.sqrt(jnp.maximum(q, 0.0)) * x))


def _derivative(f: ActivationFn, order: int = 1) -> ActivationFn:
    g = f
    for _ in range(order):
        g = jax.grad(g)  # of the scalar function
    batched = jax.vmap(g)
    return lambda x: batched(jnp.ravel(x)).reshape(jnp.shape(x))


@dataclasses.dataclass(frozen=True)
class _Kernels:
    """Jitted Gaussian expectations of one activation."""

    stats: Callable[[jax.Array], dict[str, jax.Array]]
    correlation: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


@functools.lru_cache(maxsize=64)
def _kernels(activation: ActivationSpec) -> _Kernels:
    f = resolve(activation)
    df, d2f = _derivative(f), _derivative(f, 2)
    x, w = _quadrature()

    @jax.jit
    def stats(q):
        u = jnp.sqrt(jnp.maximum(q, 0.0)) * x
        phi, dphi = f(u), df(u)
        return {
            "second": jnp.sum(w * phi**2),
            "mean": jnp.sum(w * phi),
            "mu1": jnp.sum(w * dphi**2),
            "mu2": jnp.sum(w * dphi**4),
            "curvature": jnp.sum(w * d2f(u) * phi),
        }

    @jax.jit
    def correlation(q, c):
        z1, z2 = x[:, None], x[None, :]
        u1 = jnp.sqrt(q) * z1
        u2 = jnp.sqrt(q) * (c * z1 + jnp.sqrt(jnp.maximum(1 - c * c, 0.0)) * z2)
        ww = w[:, None] * w[None, :]
        return jnp.sum(ww * f(u1) * f(u2)), jnp.sum(ww * df(u1) * df(u2))

    return _Kernels(stats, correlation)


def _stats(activation: ActivationSpec, q: float) -> dict[str, float]:
    return {k: float(v) for k, v in _kernels(activation).stats(jnp.float32(q)).items()}


def length_map(activation: ActivationSpec, q: float, weight_variance: float, bias_variance: float = 0.0) -> float:
    r"""One step of the length map: :math:`\sigma_w^2 \mathbb{E}[\phi(\sqrt{q}z)^2] + \sigma_b^2`."""
    return weight_variance * _stats(activation, q)["second"] + bias_variance


def predicted_variances(
    activation: ActivationSpec,
    depth: int,
    weight_variance: float,
    bias_variance: float = 0.0,
    input_second_moment: float = 1.0,
) -> dict[str, np.ndarray]:
    r"""Per-layer predictions for a finite-depth net (layer 1 .. depth).

    Returns:
      ``pre_activation_variance`` (:math:`q^l`), ``activation_second_moment``
      (:math:`\mathbb{E}[\phi(h^l)^2]`), ``activation_mean``, ``activation_variance``,
      ``chi`` (:math:`\sigma_w^2 \mathbb{E}[\phi'(h^l)^2]`, the per-layer gradient factor) and
      ``gradient_variance_ratio`` (back-propagated :math:`\mathrm{Var}[\partial L/\partial h^l]`
      relative to layer 1 for equal widths: :math:`\prod_{k<l} \chi_k^{-1}`).
    """
    q = weight_variance * input_second_moment + bias_variance
    rows = []
    for _ in range(depth):
        st = _stats(activation, q) if math.isfinite(q) else dict.fromkeys(("second", "mean", "mu1"), math.inf)
        rows.append((q, st["second"], st["mean"], weight_variance * st["mu1"]))
        q = weight_variance * st["second"] + bias_variance
        q = q if q < _DIVERGED else math.inf
    q_l, second, mean, chi = (np.asarray(c, np.float64) for c in zip(*rows, strict=True))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # dL/dh^l = phi'(h^l) * W^{l+1}^T dL/dh^{l+1}: Var ratio of layer l to layer 1 = prod_{k<l} 1/chi_k
        ratio = np.concatenate([[1.0], 1.0 / np.cumprod(chi[:-1])])
        variance = second - mean**2
    return {
        "pre_activation_variance": q_l,
        "activation_second_moment": second,
        "activation_mean": mean,
        "activation_variance": variance,
        "chi": chi,
        "gradient_variance_ratio": ratio,
    }


@dataclasses.dataclass(frozen=True)
class FixedPoint:
    r"""The fixed point of the length and correlation maps and the depth scales.

    Attributes:
      q_star: Fixed point of the length map reached from ``q0`` (inf when it explodes).
      chi1: :math:`\sigma_w^2 \mathbb{E}[\phi'(\sqrt{q^*}z)^2]`.
      c_star: Stable fixed point of the correlation map (1 in the ordered phase, chi1 <= 1).
      chi_c: Slope of the correlation map at :math:`c^*` (chi1 when :math:`c^* = 1`).
      xi_q: Depth scale of the length map's convergence to :math:`q^*`.
      xi_c: Depth scale of correlations (diverges at :math:`\chi_1 = 1`).
    """

    q_star: float
    chi1: float
    c_star: float
    chi_c: float
    xi_q: float
    xi_c: float


def _solve_q_star(activation: ActivationSpec, sw: float, sb: float, q0: float) -> float:
    """Iterates the length map, then bisects m(q) - q where convergence is slow (criticality)."""

    def m(q: float) -> float:
        return sw * _stats(activation, q)["second"] + sb

    q = q0
    for _ in range(ITERATIONS):
        q_next = m(q)
        if not math.isfinite(q_next) or q_next > _DIVERGED:
            return math.inf
        if abs(q_next - q) <= 1e-7 * (1.0 + q):
            return q_next
        q = q_next
    # still moving: the stable fixed point lies between 0 and q (falling) or above q (rising)
    if m(q) < q:
        lo, hi = 0.0, q
    else:
        lo, hi = q, q
        while m(hi) > hi:
            hi *= 2.0
            if hi > _DIVERGED:
                return math.inf
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        if m(mid) > mid:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _chi1(activation: ActivationSpec, sw: float, q_star: float) -> float:
    return sw * _stats(activation, q_star)["mu1"]


def fixed_point(
    activation: ActivationSpec, weight_variance: float, bias_variance: float = 0.0, q0: float = 1.0
) -> FixedPoint:
    r"""q*, chi_1, c*, chi_c and the depth scales for an activation and (sigma_w^2, sigma_b^2).

    Example:
      >>> from initbench.benchmarks.analysis import theory
      >>> round(theory.fixed_point("tanh", 1.0, 0.0).chi1, 3)   # edge of chaos
      1.0

    Args:
      activation: Activation name or callable.
      weight_variance: :math:`\sigma_w^2` (weights have variance :math:`\sigma_w^2 / n_{in}`).
      bias_variance: :math:`\sigma_b^2`.
      q0: Starting point of the length-map iteration (it matters only where the map has
        several fixed points, e.g. linear and ReLU nets at criticality, where every q is one).
    """
    sw, sb = float(weight_variance), float(bias_variance)
    if sw < 0 or sb < 0:
        raise UsageError(f"variances must be >= 0, got weight_variance={sw}, bias_variance={sb}")
    q_star = _solve_q_star(activation, sw, sb, float(q0))
    if not math.isfinite(q_star):
        return FixedPoint(math.inf, math.inf, math.nan, math.nan, math.nan, math.nan)
    st = _stats(activation, q_star)
    chi1 = sw * st["mu1"]
    slope_q = chi1 + sw * st["curvature"]
    xi_q = -1.0 / math.log(slope_q) if 0 < slope_q < 1 else math.inf
    if chi1 <= 1.0 or q_star <= 0:
        # c = 1 is always a fixed point; it is the attractor iff its slope chi1 <= 1 (Poole et al. 2016)
        c_star, chi_c = 1.0, chi1
    else:
        corr = _kernels(activation).correlation
        c = 0.5
        for _ in range(ITERATIONS * 4):
            c_next = min(1.0, max(-1.0, (sw * float(corr(jnp.float32(q_star), jnp.float32(c))[0]) + sb) / q_star))
            if abs(c_next - c) < 1e-8:
                break
            c = c_next
        c_star = c_next
        chi_c = sw * float(corr(jnp.float32(q_star), jnp.float32(c_star))[1])
    xi_c = -1.0 / math.log(chi_c) if 0 < chi_c < 1 else math.inf
    return FixedPoint(q_star, chi1, c_star, chi_c, xi_q, xi_c)


def critical_weight_variance(
    activation: ActivationSpec, bias_variance: float = 0.0, bracket: tuple[float, float] = (1e-2, 20.0)
) -> float:
    r""":math:`\sigma_w^2` on the critical line :math:`\chi_1 = 1` for a given :math:`\sigma_b^2`.

    Solved by bisection on :math:`\chi_1(\sigma_w^2) - 1` (:math:`q^*` recomputed at each
    point). Tanh at :math:`\sigma_b^2 = 0`: 1; ReLU: 2 (where every q is a fixed point).

    Raises:
      ValueError: chi_1 - 1 does not change sign on the bracket.
    """

    def excess(sw: float) -> float:
        return _chi1(activation, sw, _solve_q_star(activation, sw, bias_variance, 1.0)) - 1.0

    lo, hi = bracket
    if not excess(lo) < 0 < excess(hi):
        raise UsageError(f"chi_1 - 1 does not change sign on sigma_w^2 in {bracket} for {activation!r}")
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        if excess(mid) < 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-7 * hi:
            break
    return 0.5 * (lo + hi)


def jacobian_spectrum(
    activation: ActivationSpec,
    depth: int,
    weight_variance: float,
    bias_variance: float = 0.0,
    input_second_moment: float = 1.0,
    *,
    orthogonal: bool = False,
) -> dict[str, float]:
    r"""Moments of :math:`JJ^T` for :math:`J = \partial h^L / \partial x` (``depth`` weight layers).

    :math:`J = W^L D^{L-1} W^{L-1} \cdots D^1 W^1`, :math:`D^l = \mathrm{diag}(\phi'(h^l))`.

    Returns:
      ``mean_squared_singular_value`` :math:`\sigma_w^{2L}\prod_{l<L}\mu_1^{(l)}` and
      ``spread`` :math:`\mathrm{Var}[s^2]/\mathbb{E}[s^2]^2 = L s_W + \sum_{l<L}(\mu_2^{(l)}/\mu_1^{(l)2} - 1)`.
    """
    layers = predicted_variances(activation, depth, weight_variance, bias_variance, input_second_moment)
    stats = [_stats(activation, q) for q in layers["pre_activation_variance"][:-1]]
    mu1 = np.asarray([s["mu1"] for s in stats])
    mu2 = np.asarray([s["mu2"] for s in stats])
    s_w = 0.0 if orthogonal else 1.0
    log_mean = depth * math.log(weight_variance) + float(np.sum(np.log(mu1)))
    return {
        "mean_squared_singular_value": math.exp(log_mean),
        "spread": depth * s_w + float(np.sum(mu2 / mu1**2 - 1.0)),
    }


def init_variances(init: inits.Init, width: int, bias: inits.Init | None = None) -> tuple[float, float]:
    r"""The :math:`(\sigma_w^2, \sigma_b^2)` an initializer gives a ``width x width`` Dense layer.

    :math:`\sigma_w^2 = n_{in} \mathrm{Var}[W_{ij}]` (He normal: 2, LeCun: 1, Glorot on a
    square layer: 1, orthogonal: gain^2) and :math:`\sigma_b^2 = \mathrm{Var}[b_i]`.

    Raises:
      ValueError: the initializer has no per-entry moments (delta-orthogonal, identity...).
    """
    _, var = init.target((width, width))
    sb = bias.target((width,))[1] if bias is not None else 0.0
    return var * width, sb


def critical_point_for_q_star(activation: ActivationSpec, q_star: float) -> tuple[float, float]:
    r"""The :math:`(\sigma_w^2, \sigma_b^2)` on the critical line whose fixed point is ``q_star``.

    Pennington, Schoenholz & Ganguli 2017 ("Resurrecting the sigmoid", Sec. 3) parametrize the
    critical line by :math:`q^*`: :math:`\chi_1 = \sigma_w^2\,\mathbb{E}[\phi'(\sqrt{q^*}z)^2] = 1`
    gives :math:`\sigma_w^2 = 1/\mathbb{E}[\phi'(\sqrt{q^*}z)^2]`, and the fixed-point condition
    :math:`q^* = \sigma_w^2\,\mathbb{E}[\phi(\sqrt{q^*}z)^2] + \sigma_b^2` gives
    :math:`\sigma_b^2 = q^* - \sigma_w^2\,\mathbb{E}[\phi(\sqrt{q^*}z)^2]`.

    Raises:
      ValueError: ``q_star`` <= 0, or the line needs a negative bias variance at this q*.
    """
    if not q_star > 0:
        raise UsageError(f"q_star must be > 0, got {q_star}")
    st = _stats(activation, float(q_star))
    sw = 1.0 / st["mu1"]
    sb = float(q_star) - sw * st["second"]
    if sb < -1e-9:
        raise UsageError(f"no critical point with q* = {q_star} for {activation!r}: it needs sigma_b^2 = {sb:.4g} < 0")
    return sw, max(sb, 0.0)


def gaussian_product_spread(widths: list[int] | tuple[int, ...], input_dim: int) -> float:
    r"""Exact finite-width spread of :math:`JJ^T` for a product of Gaussian matrices (a deep linear net).

    :math:`J = W_L \cdots W_1` with independent :math:`W_l \in \mathbb{R}^{N_l \times N_{l-1}}`,
    entries :math:`\mathcal{N}(0, \sigma^2)` (the spread does not depend on :math:`\sigma`).
    With :math:`A_l = J_l J_l^T`, :math:`u_l = \mathbb{E}[(\mathrm{tr} A_l)^2]` and
    :math:`v_l = \mathbb{E}[\mathrm{tr} A_l^2]`, Wick's theorem gives the exact recursion
    (:math:`N = N_l`, :math:`\sigma = 1`)

    .. math::
        u_l = N^2 u_{l-1} + 2N v_{l-1}, \qquad v_l = N u_{l-1} + (N^2 + N) v_{l-1},

    from :math:`u_0 = N_0^2`, :math:`v_0 = N_0` (:math:`A_0 = I`), and
    :math:`\mathbb{E}[\mathrm{tr} A_l] = \prod N_k \cdot N_0`. The spread returned is
    :math:`n\,\mathbb{E}[\mathrm{tr}A^2]/\mathbb{E}[\mathrm{tr}A]^2 - 1` with
    :math:`n = \min(N_L, N_0)` singular values, the finite-width version of
    :math:`\mathrm{Var}[s^2]/\mathbb{E}[s^2]^2`, which tends to :math:`L` for square layers as
    :math:`N \to \infty` (the Fuss-Catalan law; Pennington et al. 2017, 2018): at width
    :math:`N` it is :math:`L + O(L^2/N)`.
    """
    u, v = float(input_dim) ** 2, float(input_dim)
    mean = float(input_dim)
    for n in widths:
        n = float(n)
        u, v = n * n * u + 2 * n * v, n * u + (n * n + n) * v
        mean *= n
        scale = u  # keep the recursion in range: only ratios matter
        u, v, mean = u / scale, v / scale, mean / math.sqrt(scale)
    n_sv = min(int(widths[-1]), int(input_dim)) if len(widths) else int(input_dim)
    return n_sv * v / mean**2 - 1.0


def circular_conv_singular_values(kernel: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    r"""Singular values of a 2-D convolution with circular padding, as a linear operator.

    For a kernel :math:`K` of shape ``(kh, kw, c_in, c_out)`` acting on ``size x size x c_in``
    inputs with periodic boundaries, the operator is block-diagonalized by the 2-D Fourier
    transform: its singular values are those of the :math:`c_{out} \times c_{in}` matrices
    :math:`\hat K(u, v) = \sum_{p,q} K_{pq}\, e^{-2\pi i (pu/n_1 + qv/n_2)}` over all
    frequencies (Sedghi, Gupta & Long 2019; the tool behind Xiao et al. 2018's
    delta-orthogonal analysis: a delta-orthogonal kernel has every singular value 1).

    Returns:
      All ``n1 * n2 * min(c_in, c_out)`` singular values, sorted descending.
    """
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim != 4:
        raise UsageError(f"expected a (kh, kw, c_in, c_out) kernel, got shape {kernel.shape}")
    n1, n2 = (size, size) if isinstance(size, int) else size
    kh, kw = kernel.shape[:2]
    if kh > n1 or kw > n2:
        raise UsageError(f"kernel {kh}x{kw} is larger than the {n1}x{n2} input")
    transfer = np.fft.fft2(kernel, s=(n1, n2), axes=(0, 1))  # (n1, n2, c_in, c_out)
    s = np.linalg.svd(np.swapaxes(transfer, -1, -2), compute_uv=False)
    return np.sort(s.ravel())[::-1]
