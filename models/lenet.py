"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document recognition")."""

from __future__ import annotations

from typing import Any, Literal

import flax.linen as nn
import jax

from initbench.models.activations import ActivationSpec
from initbench.models.catalog import HEAD, layer_name
from initbench.models.layers import ConvLayer, DenseLayer, InitLike, avg_pool


class LeNet5(nn.Module):
    """conv(6, 5x5) - pool - conv(16, 5x5) - pool - fc120 - fc84 - fc(num_classes).

    Adaptation to the input size (documented departures from the paper):

    * 32x32 (the paper's size, CIFAR, SVHN): both convs 'VALID': 32 -> 28 -> 14 -> 10 -> 5,
      so fc120 sees 16 x 5 x 5 = 400 inputs, as in the paper.
    * 28x28 (MNIST family): the paper padded digits to 32x32; here conv1 is 'SAME' (pad 2),
      which is the same thing: 28 -> 28 -> 14 -> 10 -> 5, 400 inputs again.
    * 8x8 (scikit-learn digits) and anything smaller than 10 after the first pool: both convs
      'SAME': 8 -> 8 -> 4 -> 4 -> 2, 16 x 2 x 2 = 64 inputs to fc120.

    Other departures: conv2 connects to all 6 maps (the paper's C3 used a sparse connection
    table, 1,516 weights instead of 2,416); subsampling is 2x2 average pooling without the
    paper's trainable coefficient and bias; the output layer is a linear layer (logits for a
    softmax cross-entropy) instead of RBF units. With 32x32x1 inputs and 10 classes the net has
    the usual 61,706 parameters. The paper's activation is ``scaled_tanh`` (1.7159 tanh(2x/3)).

    Attributes:
      num_classes: Output units.
      activation: Activation spec.
      kernel_init: Initializer of every kernel (registry name or ``inits`` factory result).
      bias_init: Initializer of every bias.
      pooling: ``avg`` (paper) or ``max``.
    """

    num_classes: int
    activation: ActivationSpec
    kernel_init: InitLike
    bias_init: InitLike = "zeros"
    pooling: Literal["avg", "max"] = "avg"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        pool = avg_pool if self.pooling == "avg" else nn.max_pool
        common: dict[str, Any] = {"kernel_init": self.kernel_init, "bias_init": self.bias_init}
        pad1 = "VALID" if x.shape[1] >= 32 else "SAME"
        x = ConvLayer(6, (5, 5), self.activation, padding=pad1, name=layer_name(0), **common)(x)
        x = pool(x, (2, 2), (2, 2))
        pad2 = "VALID" if x.shape[1] >= 10 else "SAME"
        x = ConvLayer(16, (5, 5), self.activation, padding=pad2, name=layer_name(1), **common)(x)
        x = pool(x, (2, 2), (2, 2))
        x = x.reshape((x.shape[0], -1))
        x = DenseLayer(120, self.activation, name=layer_name(2), **common)(x)
        x = DenseLayer(84, self.activation, name=layer_name(3), **common)(x)
        return DenseLayer(self.num_classes, None, name=HEAD, **common)(x)
