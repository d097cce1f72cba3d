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
from collections.abc import Callable, Sequence
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


def conv2d(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: str | Sequence) -> jax.Array:
    """2-D convolution of NHWC inputs with an HWIO kernel (Flax's layout).

    On accelerators, and in eager calls, this is ``lax.conv_general_dilated``. Traced on CPU
    (under ``jit``, ``vmap``, ``grad``) it is im2col: the ``kh * kw``
    shifted (strided) slices of the padded input concatenated along channels, times the kernel
    reshaped to ``(kh * kw * in, out)``: one matmul. Same mathematics, other rounding (about
    1e-7 relative). Why: XLA:CPU runs convolutions inside a ``while`` loop (``lax.scan``, the
    cohort trainer's step loop) about 5x slower than outside, and its member-batched (grouped)
    convolutions are slow too; measured on LeNet-5, 28x28 inputs, batch 128, 8 vmapped members
    on 2 cores: 140 ms per member-step with ``lax.conv`` in a scan, 10 ms with im2col.

    Args:
      x: ``(N, H, W, C)`` inputs.
      kernel: ``(kh, kw, C, O)``.
      strides: ``(sh, sw)``.
      padding: ``"SAME"``, ``"VALID"`` or ``((top, bottom), (left, right))``.
    """
    traced = isinstance(x, jax.core.Tracer) or isinstance(kernel, jax.core.Tracer)
    if jax.default_backend() != "cpu" or not traced:
        # eager (op-by-op) calls dispatch one op for lax.conv but 2 + kh * kw for im2col
        return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    kh, kw, c, o = kernel.shape
    sh, sw = strides
    pads = jax.lax.padtype_to_pads(x.shape[1:3], (kh, kw), strides, padding) if isinstance(padding, str) else padding
    x = jnp.pad(x, ((0, 0), *(tuple(p) for p in pads), (0, 0)))
    height, width = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    cols = [
        jax.lax.slice(
            x, (0, i, j, 0), (x.shape[0], i + sh * (height - 1) + 1, j + sw * (width - 1) + 1, c), (1, sh, sw, 1)
        )
        for i in range(kh)
        for j in range(kw)
    ]
    patches = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)  # channels ordered (i, j, c), as HWIO
    return patches @ kernel.reshape(kh * kw * c, o)


class Conv(nn.Module):
    """A 2-D convolution with Flax's parameter layout (``kernel`` HWIO, ``bias``), computed by :func:`conv2d`."""

    features: int
    kernel_size: tuple[int, int]
    strides: int = 1
    padding: str = "SAME"
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
        y = conv2d(x, kernel.astype(x.dtype), (self.strides, self.strides), self.padding)
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(y.dtype)
            y = y + bias.reshape((1,) * (y.ndim - 1) + (-1,))
        return y


class ConvLayer(nn.Module):
    """Conv -> optional normalization -> activation (None: no activation), sowing both sides."""

    features: int
    kernel_size: tuple[int, int]
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
        y = Conv(
            self.features,
            (*self.kernel_size,),  # a tuple even where a list was given
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
