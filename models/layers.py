r"""Probed layers: every layer sows its pre-activation and activation.

Layers sow into the ``intermediates`` collection as ``{layer_name: {"pre_activation": (x,),
"activation": (y,)}}`` in execution order, so a probe reads them with
``model.apply(variables, x, mutable=["intermediates"])`` (see :func:`models.per_layer`).
Each pre-activation also passes through ``perturb("pre_activation", ...)`` when a probe asks
for the ``perturbations`` collection (``mutable=["perturbations"]`` creates zeros of the
batch's shape; passing them in adds them): the gradient with respect to that zero is
:math:`\partial L / \partial h`, the back-propagated signal of Glorot & Bengio 2010. Without
it (``init``, training) nothing is added.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from initbench import inits
from initbench.inits.errors import UsageTypeError
from initbench.models.activations import Activate, ActivationSpec

InitLike = str | Callable
Normalization = Literal["none", "batchnorm", "layernorm"]
NORMALIZATIONS = ("none", "batchnorm", "layernorm")


def resolve_init(init: InitLike) -> Callable:
    """An initializer from an ``inits`` factory result, a callable, or a registry name."""
    if isinstance(init, str):
        return inits.get(init)
    if not callable(init):
        raise UsageTypeError(f"an initializer must be a registry name or a callable, got {init!r}")
    return init


def resolve_bias_init(init: InitLike, fan_in: int) -> Callable:
    """Like :func:`resolve_init`; ``"torch_default"`` becomes PyTorch's fan-in bias init."""
    if isinstance(init, str):
        return inits.get_bias(init, int(fan_in))
    return resolve_init(init)


def normalize(kind: Normalization, x: jax.Array, train: bool, name: str) -> jax.Array:
    """Applies the normalization ``kind`` over the feature axis."""
    if kind == "none":
        return x
    if kind == "layernorm":
        return nn.LayerNorm(name=name)(x)
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)(x)


class DenseLayer(nn.Module):
    """Dense -> optional normalization -> activation, sowing both sides of the activation."""

    features: int
    activation: ActivationSpec | None
    kernel_init: InitLike
    bias_init: InitLike
    use_bias: bool = True
    normalization: Normalization = "none"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        fan_in = x.shape[-1]
        y = nn.Dense(
            self.features,
            use_bias=self.use_bias,
            kernel_init=resolve_init(self.kernel_init),
            bias_init=resolve_bias_init(self.bias_init, fan_in),
            name="dense",
        )(x)
        return sow_and_activate(self, normalize(self.normalization, y, train, "norm"), self.activation)


def sow_and_activate(module: nn.Module, pre: jax.Array, activation: ActivationSpec | None) -> jax.Array:
    """Exposes ``pre`` to probes (perturbation point, sown value), applies and sows the activation."""
    # Opt-in: only a probe that asks for (or passes) the "perturbations" collection gets the
    # perturbation point, so model.init never returns batch-shaped variables.
    wanted = module.is_mutable_collection("perturbations") and not module.is_initializing()
    if wanted or module.has_variable("perturbations", "pre_activation"):
        pre = module.perturb("pre_activation", pre)
    module.sow("intermediates", "pre_activation", pre)
    if activation is None:
        return pre
    out = Activate(activation, name="act")(pre)
    module.sow("intermediates", "activation", out)
    return out


class ConvLayer(nn.Module):
    """Conv -> optional normalization -> activation (None: no activation), sowing both sides."""

    features: int
    kernel_size: tuple[int, ...]
    activation: ActivationSpec | None
    kernel_init: InitLike
    bias_init: InitLike
    strides: int = 1
    padding: str = "SAME"
    use_bias: bool = True
    normalization: Normalization = "none"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        fan_in = x.shape[-1] * math.prod(self.kernel_size)
        y = nn.Conv(
            self.features,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bias=self.use_bias,
            kernel_init=resolve_init(self.kernel_init),
            bias_init=resolve_bias_init(self.bias_init, fan_in),
            name="conv",
        )(x)
        return sow_and_activate(self, normalize(self.normalization, y, train, "norm"), self.activation)


def global_average_pool(x: jax.Array) -> jax.Array:
    """Mean over every spatial axis of an NHWC (or N...C) array."""
    return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))


def avg_pool(x: jax.Array, window: tuple[int, int], strides: tuple[int, int]) -> jax.Array:
    """Average pooling ('VALID'), typed so it runs under strict dtype promotion."""
    summed = nn.pooling.pool(x, 0.0, jax.lax.add, window, strides, "VALID")
    return summed / jnp.asarray(math.prod(window), x.dtype)
