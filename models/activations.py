"""Named activations for the models, sharing their metadata with :mod:`inits`.

The table (name, function, odd, saturating, PyTorch gain) lives in ``inits`` so that
``inits.gain`` and the models agree on what "tanh" or "leaky_relu" means. This module resolves
a spec into something a layer can apply: a name (``"tanh"``), a name with a slope
(``"leaky_relu:0.2"``), ``"prelu"`` (a learned slope, one scalar per layer, He et al. 2015,
initialised to 0.25), or any callable ``x -> phi(x)``.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from initbench.inits import ACTIVATIONS, get_activation
from initbench.inits.errors import UsageError, unknown_choice

__all__ = ["ACTIVATIONS", "Activate", "ActivationSpec", "describe", "parse", "resolve"]

ActivationSpec = str | Callable[[jax.Array], jax.Array]


def parse(spec: str) -> tuple[str, float | None]:
    """Splits ``"leaky_relu:0.2"`` into ``("leaky_relu", 0.2)``; checks the name.

    Raises:
      ValueError: unknown name (with the valid ones), a malformed parameter, or a parameter
        on an activation that takes none.
    """
    name, _, param = spec.partition(":")
    if name not in ACTIVATIONS:
        raise unknown_choice("activation", name, ACTIVATIONS)
    if not param:
        return name, None
    if ACTIVATIONS[name].param_name is None:
        raise UsageError(f"activation {name!r} takes no parameter, got {spec!r}")
    try:
        value = float(param)
    except ValueError:
        raise UsageError(f"activation parameter must be a number, got {spec!r}") from None
    if not abs(value) <= float(np.finfo(np.float32).max):  # nan fails the comparison
        raise UsageError(f"activation parameter must be a finite number (in float32), got {spec!r}")
    return name, value


def resolve(spec: ActivationSpec) -> Callable[[jax.Array], jax.Array]:
    """A plain function for a spec (``prelu`` resolves to its initial slope 0.25)."""
    if callable(spec):
        return spec
    name, param = parse(spec)
    return get_activation(name).bind(param)


def describe(spec: ActivationSpec) -> str:
    """A stable string for a spec (callables by their ``__name__``)."""
    if callable(spec):
        return getattr(spec, "__name__", "callable")
    parse(spec)
    return spec


class Activate(nn.Module):
    """Applies an activation spec; ``prelu`` owns a learned scalar slope ``negative_slope``."""

    spec: ActivationSpec

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if isinstance(self.spec, str) and self.spec.partition(":")[0] == "prelu":
            _, param = parse(self.spec)
            slope = self.param("negative_slope", nn.initializers.constant(0.25 if param is None else param), ())
            return jnp.where(x >= 0, x, slope.astype(x.dtype) * x)
        return resolve(self.spec)(x)
