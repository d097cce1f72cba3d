"""Small CIFAR-style residual networks with hooks for Fixup, SkipInit and depth-muP."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from initbench.models.activations import Activate, ActivationSpec
from initbench.models.catalog import HEAD, block_name, block_stack_name
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
    r"""``act(shortcut(x) + b2b + scale * c * conv_b(act(conv_a(x + b1a) + b1b) + b2a))``.

    ``scale`` exists when ``residual_scale`` is a number (a learned scalar initialised to it:
    1 for Fixup, 0 for SkipInit); the scalar biases ``b*`` exist when ``branch_biases`` (Fixup,
    Zhang, Dauphin & Ma 2019, Fig. 1). ``c = branch_multiplier`` is a fixed constant, not a
    parameter: depth-muP's :math:`L^{-\alpha}` (Yang et al. 2023, "Tensor Programs VI"; Bordelon
    et al. 2023), 1 (no multiplication) by default. The shortcut is the identity, or a 1x1
    projection (with normalization) when the shape changes.
    """

    features: int
    strides: int
    activation: ActivationSpec
    kernel_init: InitLike
    bias_init: InitLike
    normalization: Normalization
    residual_scale: float | None
    branch_biases: bool
    branch_multiplier: float = 1.0

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
        if self.branch_multiplier != 1.0:  # at 1 the plain block, bitwise
            y = y * jnp.asarray(self.branch_multiplier, y.dtype)
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


class _BlockScanBody(nn.Module):
    """One residual block as a scan body (carry in, carry out): the module named ``block`` in a stack."""

    features: int
    activation: ActivationSpec
    kernel_init: InitLike
    bias_init: InitLike
    normalization: Normalization
    residual_scale: float | None
    branch_biases: bool
    branch_multiplier: float
    train: bool

    @nn.compact
    def __call__(self, x: jax.Array, _: None) -> tuple[jax.Array, None]:
        block = BasicBlock(
            self.features,
            1,
            self.activation,
            self.kernel_init,
            self.bias_init,
            self.normalization,
            self.residual_scale,
            self.branch_biases,
            self.branch_multiplier,
            name="block",
        )
        return block(x, self.train), None


class ResNet(nn.Module):
    r"""CIFAR ResNet (He et al. 2016, section 4.2): stem, 3 stages of basic blocks, pool, head.

    Stage ``s`` has ``blocks[s]`` blocks of ``width * 2**s`` channels; stages after the first
    start with stride 2. ``blocks=(3, 3, 3), width=16`` is ResNet-20; ``(1, 1, 1), width=8``
    a CPU smoke size. Blocks are named ``block_00, block_01, ...``; inside each, ``conv_a``
    and ``conv_b`` sow their pre-activations and the block its output. With ``scan``, the
    identical blocks of a stage (all but its first, which may change shape) are one
    ``nn.scan`` named ``blocks_k`` (``k`` its first block's index) whose parameters carry a
    leading block axis: the same function, and a compile time that does not grow with depth.

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
      branch_multiplier: A fixed constant on every residual branch's output (not trained):
        depth-muP's :math:`L^{-\alpha}` with :math:`L` the number of blocks (the
        parametrization's ``depth_alpha`` sets it). 1 by default.
      scan: Run each stage's identical blocks as one ``nn.scan`` (``blocks_k``).
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
    branch_multiplier: float = 1.0
    scan: bool = False

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
        common = (self.activation, self.kernel_init, self.bias_init, self.normalization)
        fixup = (self.residual_scale, self.branch_biases, self.branch_multiplier)
        for stage, n_blocks in enumerate(self.blocks):
            features = self.width * 2**stage
            scanned = self.scan and n_blocks > 2  # a run of one block is just that block
            for b in range(1 if scanned else n_blocks):
                strides = 2 if (stage > 0 and b == 0) else 1
                x = BasicBlock(features, strides, *common, *fixup, name=block_name(index))(x, train)
                index += 1
            if scanned:
                stack = nn.scan(
                    _BlockScanBody,
                    variable_axes={"params": 0, "intermediates": 0, "batch_stats": 0, "perturbations": 0},
                    split_rngs={"params": True},
                    length=n_blocks - 1,
                )
                x, _ = stack(features, *common, *fixup, train=train, name=block_stack_name(index))(x, None)
                index += n_blocks - 1
        x = global_average_pool(x)
        if self.branch_biases:
            x = x + self.param("head_bias_in", nn.initializers.zeros, ()).astype(x.dtype)
        return DenseLayer(self.num_classes, None, self.kernel_init, self.bias_init, name=HEAD)(x, train)
