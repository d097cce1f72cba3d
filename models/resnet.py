"""Small CIFAR-style residual networks with hooks for Fixup and SkipInit."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from initbench.models.activations import Activate, ActivationSpec
from initbench.models.catalog import HEAD
from initbench.models.layers import (
    ConvLayer,
    DenseLayer,
    InitLike,
    Normalization,
    global_average_pool,
    normalize,
    resolve_init,
    sow_and_activate,
)


class BasicBlock(nn.Module):
    """``act(shortcut(x) + b2b + scale * conv_b(act(conv_a(x + b1a) + b1b) + b2a))``.

    ``scale`` exists when ``residual_scale`` is a number (a learned scalar initialised to it:
    1 for Fixup, 0 for SkipInit); the scalar biases ``b*`` exist when ``branch_biases`` (Fixup,
    Zhang, Dauphin & Ma 2019, Fig. 1). The shortcut is the identity, or a 1x1 projection
    (with normalization) when the shape changes.
    """

    features: int
    strides: int
    activation: ActivationSpec
    kernel_init: InitLike
    bias_init: InitLike
    normalization: Normalization
    residual_scale: float | None
    branch_biases: bool

    def _bias(self, name: str, x: jax.Array) -> jax.Array:
        if not self.branch_biases:
            return x
        return x + self.param(name, nn.initializers.zeros, ()).astype(x.dtype)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        use_bias = self.normalization == "none" and not self.branch_biases
        common: dict[str, Any] = {"kernel_init": self.kernel_init, "bias_init": self.bias_init, "use_bias": use_bias}
        y = ConvLayer(
            self.features,
            (3, 3),
            None,
            strides=self.strides,
            normalization=self.normalization,
            name="conv_a",
            **common,
        )(self._bias("bias_1a", x), train)
        y = Activate(self.activation, name="act_a")(self._bias("bias_1b", y))
        y = ConvLayer(self.features, (3, 3), None, normalization=self.normalization, name="conv_b", **common)(
            self._bias("bias_2a", y), train
        )
        if self.residual_scale is not None:
            y = y * self.param("branch_scale", nn.initializers.constant(self.residual_scale), ()).astype(y.dtype)
        y = self._bias("bias_2b", y)
        shortcut = x
        if self.strides != 1 or x.shape[-1] != self.features:
            shortcut = nn.Conv(
                self.features,
                (1, 1),
                strides=self.strides,
                use_bias=False,
                kernel_init=resolve_init(self.kernel_init),
                name="shortcut",
            )(x)
            shortcut = normalize(self.normalization, shortcut, train, "shortcut_norm")
        return sow_and_activate(self, y + shortcut, self.activation)


class ResNet(nn.Module):
    """CIFAR ResNet (He et al. 2016, section 4.2): stem, 3 stages of basic blocks, pool, head.

    Stage ``s`` has ``blocks[s]`` blocks of ``width * 2**s`` channels; stages after the first
    start with stride 2. ``blocks=(3, 3, 3), width=16`` is ResNet-20; ``(1, 1, 1), width=8``
    a CPU smoke size. Blocks are named ``block_00, block_01, ...``; inside each, ``conv_a``
    and ``conv_b`` sow their pre-activations and the block its output.

    Attributes:
      blocks: Blocks per stage.
      width: Channels of the first stage.
      num_classes: Output units.
      activation: Activation spec.
      kernel_init: Initializer of every kernel.
      bias_init: Initializer of every bias.
      normalization: ``none``, ``batchnorm`` or ``layernorm``.
      residual_scale: None for no branch multiplier, else its initial value (1 Fixup, 0 SkipInit).
      branch_biases: Fixup's four scalar biases per block.
    """

    blocks: tuple[int, ...]
    width: int
    num_classes: int
    activation: ActivationSpec
    kernel_init: InitLike
    bias_init: InitLike = "zeros"
    normalization: Normalization = "batchnorm"
    residual_scale: float | None = None
    branch_biases: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = ConvLayer(
            self.width,
            (3, 3),
            self.activation,
            self.kernel_init,
            self.bias_init,
            use_bias=self.normalization == "none",
            normalization=self.normalization,
            name="stem",
        )(x, train)
        index = 0
        for stage, n_blocks in enumerate(self.blocks):
            for b in range(n_blocks):
                x = BasicBlock(
                    self.width * 2**stage,
                    2 if (stage > 0 and b == 0) else 1,
                    self.activation,
                    self.kernel_init,
                    self.bias_init,
                    self.normalization,
                    self.residual_scale,
                    self.branch_biases,
                    name=f"block_{index:02d}",
                )(x, train)
                index += 1
        x = global_average_pool(x)
        if self.branch_biases:
            x = x + self.param("head_bias_in", nn.initializers.zeros, ()).astype(x.dtype)
        return DenseLayer(self.num_classes, None, self.kernel_init, self.bias_init, name=HEAD)(x, train)
