"""Fully connected networks of any depth."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from initbench.models.activations import ActivationSpec
from initbench.models.catalog import HEAD, layer_name, stack_name
from initbench.models.layers import DenseLayer, InitLike, Normalization


class _ScanBody(nn.Module):
    """One hidden layer as a scan body (carry in, carry out)."""

    width: int
    activation: ActivationSpec
    kernel_init: InitLike
    bias_init: InitLike
    use_bias: bool
    normalization: Normalization
    train: bool

    @nn.compact
    def __call__(self, x: jax.Array, _: None) -> tuple[jax.Array, None]:
        layer = DenseLayer(
            self.width,
            self.activation,
            self.kernel_init,
            self.bias_init,
            self.use_bias,
            self.normalization,
            name="layer",
        )
        return layer(x, self.train), None


class MLP(nn.Module):
    """A multilayer perceptron: ``depth`` hidden layers of ``width`` units, then a linear head.

    Layer ``layer_000`` maps the flattened input to ``width`` (``first_kernel_init`` if given),
    ``layer_001 ... layer_{depth-1}`` are identical ``width x width`` layers (``kernel_init``),
    ``head`` maps to ``num_classes`` (``head_kernel_init`` if given, no activation).

    With ``scan=True`` the identical hidden layers are one ``nn.scan`` (parameters stacked on
    a leading axis, one traced layer), so a 1000-layer net traces and compiles in the time of a
    few layers; the intermediates are then stacked too (``models.per_layer`` unstacks them,
    keeping the names ``layer_001 ...``). Each member of the stack gets its own init key.

    Attributes:
      depth: Number of hidden layers (>= 1).
      width: Units per hidden layer.
      num_classes: Output units.
      activation: Activation spec (name, ``"leaky_relu:0.2"``, ``"prelu"`` or callable).
      kernel_init: Initializer of the hidden kernels (registry name or ``inits`` factory result).
      bias_init: Initializer of the biases (``"torch_default"`` gives PyTorch's fan-in bias).
      use_bias: Whether layers have biases.
      normalization: ``none``, ``batchnorm`` or ``layernorm`` (before the activation).
      first_kernel_init: Override for the first layer's kernel.
      head_kernel_init: Override for the head's kernel.
      scan: Fuse the identical hidden layers into one ``nn.scan``.
    """

    depth: int
    width: int
    num_classes: int
    activation: ActivationSpec
    kernel_init: InitLike
    bias_init: InitLike = "zeros"
    use_bias: bool = True
    normalization: Normalization = "none"
    first_kernel_init: InitLike | None = None
    head_kernel_init: InitLike | None = None
    scan: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = x.reshape((x.shape[0], -1))
        common: dict[str, Any] = {
            "bias_init": self.bias_init,
            "use_bias": self.use_bias,
            "normalization": self.normalization,
        }
        first = self.first_kernel_init if self.first_kernel_init is not None else self.kernel_init
        x = DenseLayer(self.width, self.activation, first, name=layer_name(0), **common)(x, train)
        if self.depth > 1 and self.scan:
            stack = nn.scan(
                _ScanBody,
                variable_axes={"params": 0, "intermediates": 0, "batch_stats": 0, "perturbations": 0},
                split_rngs={"params": True},
                length=self.depth - 1,
            )
            x, _ = stack(self.width, self.activation, self.kernel_init, train=train, name=stack_name(1), **common)(
                x, None
            )
        else:
            for i in range(1, self.depth):
                x = DenseLayer(self.width, self.activation, self.kernel_init, name=layer_name(i), **common)(x, train)
        head = self.head_kernel_init if self.head_kernel_init is not None else self.kernel_init
        return DenseLayer(self.num_classes, None, head, self.bias_init, self.use_bias, "none", name=HEAD)(x, train)
