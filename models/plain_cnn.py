"""Deep plain convolutional nets: no normalization, no skip connections."""

from __future__ import annotations

from typing import Literal

import flax.linen as nn
import jax

from models.activations import ActivationSpec
from models.layers import ConvLayer, DenseLayer, InitSpec, Normalization, global_average_pool


class PlainCNN(nn.Module):
    """Stages of 3x3 convolutions, global average pooling, optional hidden FC layers, a head.

    Stage ``s`` has ``stages[s] = (channels, n_convs)``; between stages the resolution halves,
    by 2x2 max pooling (``downsample="pool"``, VGG style as in He et al. 2015's plain nets) or
    by making the stage's first conv stride 2 (``downsample="stride"``, the vanilla CNN of
    Xiao et al. 2018: a few strided convs, then identical convs). Conv layers are named
    ``layer_000, layer_001, ...`` in order, FC layers continue the count, then ``head``.
    See :data:`PRESETS` for the paper settings and their scaled-down CPU versions.

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
    kernel_init: InitSpec
    bias_init: InitSpec = "zeros"
    downsample: Literal["pool", "stride"] = "pool"
    head_widths: tuple[int, ...] = ()
    normalization: Normalization = "none"
    kernel_size: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        common = {"kernel_init": self.kernel_init, "bias_init": self.bias_init}
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
                    name=f"layer_{index:03d}",
                    **common,
                )(x, train)
                index += 1
        x = global_average_pool(x)
        for width in self.head_widths:
            x = DenseLayer(width, self.activation, name=f"layer_{index:03d}", **common)(x, train)
            index += 1
        return DenseLayer(self.num_classes, None, name="head", **common)(x, train)


def vanilla(depth: int, channels: int) -> dict:
    """Xiao et al. 2018's vanilla CNN: two stride-2 convs, then ``depth`` identical 3x3 convs."""
    return {"stages": ((channels, 1), (channels, 1), (channels, depth)), "downsample": "stride"}


# Paper settings and scaled-down CPU versions. He et al. 2015 (Fig. 3) compare Xavier and their
# init on 22- and 30-layer plain nets (VGG-like 3x3 stages, then FC layers); the presets keep the
# counts of weight layers (convs + FC + head) at 22 and 30 with narrower stages for CPU.
PRESETS: dict[str, dict] = {
    "he22": {"stages": ((64, 6), (128, 7), (256, 7)), "head_widths": (1024,), "downsample": "pool"},
    "he30": {"stages": ((64, 10), (128, 9), (256, 9)), "head_widths": (1024,), "downsample": "pool"},
    "he22_cpu": {"stages": ((8, 6), (16, 7), (32, 7)), "head_widths": (64,), "downsample": "pool"},
    "he30_cpu": {"stages": ((8, 10), (16, 9), (32, 9)), "head_widths": (64,), "downsample": "pool"},
    "xiao_cpu": vanilla(depth=32, channels=16),
    "xiao": vanilla(depth=256, channels=128),
}


PLAIN_CNN_PRESETS = PRESETS
