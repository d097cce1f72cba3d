"""Deep plain convolutional nets: no normalization, no skip connections."""

from __future__ import annotations

from typing import Any, Literal

import flax.linen as nn
import jax

from initbench.models.activations import ActivationSpec
from initbench.models.catalog import HEAD, layer_name
from initbench.models.layers import ConvLayer, DenseLayer, InitLike, Normalization, global_average_pool


class PlainCNN(nn.Module):
    """Stages of 3x3 convolutions, global average pooling, optional hidden FC layers, a head.

    Stage ``s`` has ``stages[s] = (channels, n_convs)``; between stages the resolution halves,
    by 2x2 max pooling (``downsample="pool"``, VGG style as in He et al. 2015's plain nets) or
    by making the stage's first conv stride 2 (``downsample="stride"``, the vanilla CNN of
    Xiao et al. 2018: a few strided convs, then identical convs). Conv layers are named
    ``layer_000, layer_001, ...`` in order, FC layers continue the count, then ``head``.
    See ``initbench.models.catalog.PLAIN_CNN_PRESETS`` for the paper settings and their scaled-down CPU versions.

    Attributes:
      stages: ``((channels, n_convs), ...)``.
      num_classes: Output units.
      activation: Activation spec.
      kernel_init: Initializer of every kernel.
      bias_init: Initializer of every bias.
      downsample: ``pool`` or ``stride``.
      head_widths: Hidden FC layers between the pooled features and the head.
      normalization: ``none`` (the papers' setting), ``batchnorm`` or ``layernorm``.
      kernel_size: Spatial size of every conv.
    """

    stages: tuple[tuple[int, int], ...]
    num_classes: int
    activation: ActivationSpec
    kernel_init: InitLike
    bias_init: InitLike = "zeros"
    downsample: Literal["pool", "stride"] = "pool"
    head_widths: tuple[int, ...] = ()
    normalization: Normalization = "none"
    kernel_size: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        common: dict[str, Any] = {"kernel_init": self.kernel_init, "bias_init": self.bias_init}
        index = 0
        for s, (channels, n_convs) in enumerate(self.stages):
            if s > 0 and self.downsample == "pool":
                x = nn.max_pool(x, (2, 2), (2, 2))
            for j in range(n_convs):
                stride = 2 if (s > 0 and j == 0 and self.downsample == "stride") else 1
                x = ConvLayer(
                    channels,
                    (self.kernel_size, self.kernel_size),
                    self.activation,
                    strides=stride,
                    normalization=self.normalization,
                    name=layer_name(index),
                    **common,
                )(x, train)
                index += 1
        x = global_average_pool(x)
        for width in self.head_widths:
            x = DenseLayer(width, self.activation, name=layer_name(index), **common)(x, train)
            index += 1
        return DenseLayer(self.num_classes, None, name=HEAD, **common)(x, train)
