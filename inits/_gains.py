r"""Activation table and gains.

``gain(activation, convention)`` returns the factor :math:`g` such that weights with
variance :math:`g^2 / n` keep the signal's scale through the activation.

Conventions:

* ``torch``: PyTorch's ``torch.nn.init.calculate_gain`` values, for parity (linear,
  sigmoid and conv 1; tanh 5/3; relu :math:`\sqrt 2`; leaky_relu :math:`\sqrt{2/(1+a^2)}`;
  selu 3/4). Other activations raise, naming the exact conventions.
* ``forward``: :math:`g^2 = 1 / \mathbb{E}[\phi(z)^2]`, :math:`z \sim \mathcal{N}(0, 1)`:
  a layer whose pre-activations have unit variance passes on unit second moment
  (the length map of Poole et al. 2016 at :math:`q = 1`, zero bias).
* ``backward``: :math:`g^2 = 1 / \mathbb{E}[\phi'(z)^2]`: the back-propagated gradient keeps
  its variance (He et al. 2015, eq. 13 generalised).

Both exact conventions are Gaussian expectations computed by quadrature and work for any
user-supplied callable. The integral of :math:`f(z)\varphi(z)` is split at 0, where ReLU,
ELU, SELU and their kin have their kink, and each half-line, cut at 12 standard deviations
(the rest weighs below 1e-32), gets ``QUADRATURE_POINTS`` Gauss-Legendre nodes: smooth
pieces then converge spectrally, where one Gauss-Hermite rule across the kink would not.
Nonlinear activations are not homogeneous, so these gains hold at unit
input variance; ``benchmarks.analysis.theory`` solves the general fixed point.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from initbench.inits.errors import UsageError, unknown_choice

QUADRATURE_POINTS = 96
_HALF_WIDTH = 12.0
Convention = Literal["torch", "forward", "backward"]
CONVENTIONS = ("torch", "forward", "backward")


def scaled_tanh(x: jax.Array) -> jax.Array:
    r"""LeCun et al. 1998's scaled tanh :math:`1.7159 \tanh(2x/3)` (Efficient BackProp, 4.4)."""
    return 1.7159 * jnp.tanh(x * (2.0 / 3.0))


def linear(x: jax.Array) -> jax.Array:
    """The identity."""
    return x


def mish(x: jax.Array) -> jax.Array:
    r"""Mish, :math:`x \tanh(\mathrm{softplus}(x))` (Misra 2019)."""
    return x * jnp.tanh(jax.nn.softplus(x))


@dataclasses.dataclass(frozen=True)
class Activation:
    """A named activation and its metadata.

    Attributes:
      name: Registry name.
      fn: ``x -> phi(x)``; for parametrised activations, ``fn(x, param)``.
      odd: phi(-x) = -phi(x).
      bounds: ``(lower, upper)`` of the range of a saturating activation (bounded on both
        sides, derivative -> 0 at +-inf), else None. A unit is saturated when its output lies
        within 1% of ``max(|lower|, |upper|)`` of a bound.
      dies: True when the output is exactly 0 for every negative input (ReLU): a unit that is 0
        for every example is dead.
      torch_gain: ``calculate_gain`` value, or None where PyTorch has none.
      param_name: Name of the scalar parameter (``negative_slope``), if any.
      param_default: Its default value.
    """

    name: str
    fn: Callable
    odd: bool
    bounds: tuple[float, float] | None
    torch_gain: Callable[[float], float] | None = None
    param_name: str | None = None
    param_default: float | None = None
    dies: bool = False

    @property
    def saturating(self) -> bool:
        """Bounded on both sides."""
        return self.bounds is not None

    def saturated(self, a: jax.Array) -> jax.Array:
        """Boolean mask of outputs within 1% of the range's magnitude of a bound (saturating only)."""
        if self.bounds is None:
            raise UsageError(f"activation {self.name!r} does not saturate")
        lower, upper = self.bounds
        margin = 0.01 * max(abs(lower), abs(upper))
        return (a < lower + margin) | (a > upper - margin)

    def bind(self, param: float | None = None) -> Callable[[jax.Array], jax.Array]:
        """Returns ``x -> phi(x)`` with the parameter (if any) fixed."""
        if self.param_name is None:
            if param is not None:
                raise UsageError(f"activation {self.name!r} takes no parameter, got {param!r}")
            return self.fn
        p = self.param_default if param is None else float(param)
        return functools.partial(self.fn, negative_slope=p)


def _leaky(x: jax.Array, negative_slope: float) -> jax.Array:
    return jnp.where(x >= 0, x, negative_slope * x)


def _const(v: float) -> Callable[[float], float]:
    return lambda _: v


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("linear", linear, True, None, _const(1.0)),
        Activation("sigmoid", jax.nn.sigmoid, False, (0.0, 1.0), _const(1.0)),
        Activation("tanh", jnp.tanh, True, (-1.0, 1.0), _const(5.0 / 3.0)),
        Activation("scaled_tanh", scaled_tanh, True, (-1.7159, 1.7159)),
        Activation("softsign", jax.nn.soft_sign, True, (-1.0, 1.0)),
        Activation("relu", jax.nn.relu, False, None, _const(math.sqrt(2.0)), dies=True),
        Activation(
            "leaky_relu",
            _leaky,
            False,
            None,
            lambda a: math.sqrt(2.0 / (1.0 + a * a)),
            "negative_slope",
            0.01,
        ),
        # PReLU learns its slope; at initialization it is a leaky ReLU with slope 0.25 (He 2015).
        Activation(
            "prelu",
            _leaky,
            False,
            None,
            lambda a: math.sqrt(2.0 / (1.0 + a * a)),
            "negative_slope",
            0.25,
        ),
        Activation("elu", jax.nn.elu, False, None),
        Activation("selu", jax.nn.selu, False, None, _const(0.75)),
        Activation("gelu", functools.partial(jax.nn.gelu, approximate=False), False, None),
        Activation("silu", jax.nn.silu, False, None),
        Activation("swish", jax.nn.silu, False, None),
        Activation("softplus", jax.nn.softplus, False, None),
        Activation("mish", mish, False, None),
    )
}


def get_activation(activation: str | Activation) -> Activation:
    """Looks up an activation by name (the message lists the valid names)."""
    if isinstance(activation, Activation):
        return activation
    if activation not in ACTIVATIONS:
        raise unknown_choice("activation", activation, ACTIVATIONS)
    return ACTIVATIONS[activation]


@functools.lru_cache(maxsize=1)
def gaussian_quadrature() -> tuple[np.ndarray, np.ndarray]:
    r"""Nodes and weights of the Gaussian expectation rule: :math:`\mathbb{E}[f(z)] \approx \sum_i w_i f(x_i)`.

    Gauss-Legendre on each half-line ``[0, 12]`` and ``[-12, 0]`` (``QUADRATURE_POINTS`` nodes
    each) with the standard normal density folded into the weights, so a kink at 0 (ReLU, ELU,
    SELU) costs no accuracy. Returned as read-only numpy arrays; shared by the gains and the
    mean-field theory.
    """
    x, w = np.polynomial.legendre.leggauss(QUADRATURE_POINTS)
    # map [-1, 1] onto [0, L] and mirror it onto [-L, 0]
    half = 0.5 * _HALF_WIDTH * (x + 1.0)
    weights = 0.5 * _HALF_WIDTH * w * np.exp(-0.5 * half * half) / math.sqrt(2.0 * math.pi)
    nodes, weights = np.concatenate([-half[::-1], half]), np.concatenate([weights[::-1], weights])
    nodes.flags.writeable = weights.flags.writeable = False  # cached and shared: nobody may edit them
    return nodes, weights


def gaussian_expectation(f: Callable[[jax.Array], jax.Array], variance: float = 1.0) -> float:
    r""":math:`\mathbb{E}[f(z)]`, :math:`z \sim \mathcal{N}(0, \text{variance})`, by quadrature split at 0."""
    x, w = gaussian_quadrature()
    values = np.asarray(f(jnp.asarray(x * math.sqrt(variance), jnp.float32)), dtype=np.float64)
    return float(np.dot(w, values))


def _resolve(activation: str | Callable, negative_slope: float | None) -> tuple[str, Callable, Activation | None]:
    if callable(activation) and not isinstance(activation, str):
        if negative_slope is not None:
            raise UsageError("negative_slope applies only to named leaky_relu/prelu activations")
        return getattr(activation, "__name__", "callable"), activation, None
    act = get_activation(activation)
    return act.name, act.bind(negative_slope), act


def gain(
    activation: str | Callable[[jax.Array], jax.Array],
    convention: Convention = "torch",
    *,
    negative_slope: float | None = None,
) -> float:
    r"""The variance-preserving gain of an activation.

    Example:
      >>> from initbench import inits
      >>> round(inits.gain("relu"), 6), round(inits.gain("relu", "forward"), 6)
      (1.414214, 1.414214)

    Args:
      activation: A name from ``inits.ACTIVATIONS`` or any callable ``phi``.
      convention: ``torch`` (``calculate_gain`` parity), ``forward`` (:math:`1/\sqrt{E[\phi(z)^2]}`)
        or ``backward`` (:math:`1/\sqrt{E[\phi'(z)^2]}`).
      negative_slope: Slope of leaky_relu / prelu (defaults 0.01 / 0.25).

    Raises:
      ValueError: unknown activation or convention; ``torch`` for an activation PyTorch has
        no gain for; an activation whose expectation is 0.
    """
    if convention not in CONVENTIONS:
        raise unknown_choice("gain convention", convention, CONVENTIONS)
    name, fn, act = _resolve(activation, negative_slope)
    if convention == "torch":
        if act is None or act.torch_gain is None:
            have = sorted(n for n, a in ACTIVATIONS.items() if a.torch_gain is not None)
            raise UsageError(
                f"PyTorch's calculate_gain has no value for {name!r} (it has: {', '.join(have)}); "
                "use convention='forward' or 'backward' for an exact gain"
            )
        slope = act.param_default if negative_slope is None else negative_slope
        return float(act.torch_gain(slope if slope is not None else 0.0))
    if convention == "forward":
        second_moment = gaussian_expectation(lambda x: fn(x) ** 2)
    else:
        derivative = jax.vmap(jax.grad(lambda x: fn(x)))
        second_moment = gaussian_expectation(lambda x: derivative(x) ** 2)
    if not second_moment > 0:
        raise UsageError(f"activation {name!r} has E[phi^2] = {second_moment} under N(0, 1); no finite gain")
    return 1.0 / math.sqrt(second_moment)
