"""The model registry, the plain-CNN presets and the layer-naming contract (no JAX or Flax import).

Layer names are a contract between the models (which write them) and every probe (which reads
them): hidden layers are ``layer_000, layer_001, ...`` in execution order, the classifier is
``head``, and a scanned stack of identical layers starting at layer ``k`` is one module named
``stack_k`` (``stack_001``) whose parameters carry a leading layer axis. Residual blocks are
``block_00, block_01, ...``; a scanned run of identical blocks starting at block ``k`` is one
module ``blocks_k`` (``blocks_01``). Inside a stack, the scan body is one child module (``layer``,
``block``); element ``j`` of the stack stands for the unscanned module :func:`unstacked` names
(``stack_001/layer`` -> ``layer_001 + j``, ``blocks_01/block`` -> ``block_01 + j``).
:func:`layer_name`, :func:`stack_name`, :func:`stack_start`, :func:`block_name`,
:func:`block_stack_name` and :func:`unstacked` are the only places these strings are built or parsed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from initbench.inits.registry import Registry, resolve

HEAD = "head"
_LAYER, _STACK = "layer_", "stack_"
_BLOCK, _BLOCKS = "block_", "blocks_"


def layer_name(index: int) -> str:
    """The name of hidden layer ``index`` (0-based, execution order): ``layer_007``."""
    return f"{_LAYER}{index:03d}"


def stack_name(start: int) -> str:
    """The name of a scanned stack whose first layer is ``layer_name(start)``: ``stack_001``."""
    return f"{_STACK}{start:03d}"


def stack_start(name: str) -> int | None:
    """The first layer index of a stack module name (``stack_001`` -> 1), None for other names."""
    if not name.startswith(_STACK) or not name[len(_STACK) :].isdigit():
        return None
    return int(name[len(_STACK) :])


def block_name(index: int) -> str:
    """The name of residual block ``index`` (0-based, execution order): ``block_07``."""
    return f"{_BLOCK}{index:02d}"


def block_stack_name(start: int) -> str:
    """The name of a scanned run of identical blocks whose first is ``block_name(start)``: ``blocks_01``."""
    return f"{_BLOCKS}{start:02d}"


def unstacked(name: str, j: int) -> str | None:
    """The unscanned name of element ``j`` of the stack module ``name``; None if ``name`` is no stack.

    ``unstacked("stack_001", 2) == "layer_003"``, ``unstacked("blocks_01", 0) == "block_01"``.
    """
    start = stack_start(name)
    if start is not None:
        return layer_name(start + j)
    if name.startswith(_BLOCKS) and name[len(_BLOCKS) :].isdigit():
        return block_name(int(name[len(_BLOCKS) :]) + j)
    return None


def unstacked_path(parts: Sequence[str], j: int) -> list[str] | None:
    """A path through a stack (``blocks_01/block/conv_a``) as element ``j``'s unscanned path, or None.

    The stack module and its scan body become the unscanned module (``block_01/conv_a``).
    """
    for i, part in enumerate(parts):
        name = unstacked(part, j)
        if name is not None:
            return [*parts[:i], name, *parts[i + 2 :]]
    return None


@dataclasses.dataclass(frozen=True)
class Family:
    """A registered model family.

    Attributes:
      name: Registry name (``models.build(name, ...)``).
      target: ``"module:Class"`` of its Flax module (imported on use).
      description: One line.
    """

    name: str
    target: str
    description: str

    @property
    def cls(self) -> Any:
        """The Flax module class."""
        return resolve(self.target)


FAMILIES: Registry[Family] = Registry(
    "model family",
    (
        Family("mlp", "initbench.models.mlp:MLP", "fully connected: depth hidden layers of width, optional norm, scan"),
        Family("lenet5", "initbench.models.lenet:LeNet5", "LeCun et al. 1998's LeNet-5, adapted to 32x32, 28x28, 8x8"),
        Family("plain_cnn", "initbench.models.plain_cnn:PlainCNN", "deep plain CNN (no norm, no skips); presets"),
        Family("resnet", "initbench.models.resnet:ResNet", "CIFAR ResNet; normalization none/batch/layer; Fixup hooks"),
    ),
)


def vanilla(depth: int, channels: int) -> dict[str, Any]:
    """Xiao et al. 2018's vanilla CNN: two stride-2 convs, then ``depth`` identical 3x3 convs."""
    return {"stages": ((channels, 1), (channels, 1), (channels, depth)), "downsample": "stride"}


# Paper settings and scaled-down CPU versions. He et al. 2015 (Fig. 3) compare Xavier and their
# init on 22- and 30-layer plain nets (VGG-like 3x3 stages, then FC layers); the presets keep the
# counts of weight layers (convs + FC + head) at 22 and 30 with narrower stages for CPU.
PLAIN_CNN_PRESETS: dict[str, dict[str, Any]] = {
    "he22": {"stages": ((64, 6), (128, 7), (256, 7)), "head_widths": (1024,), "downsample": "pool"},
    "he30": {"stages": ((64, 10), (128, 9), (256, 9)), "head_widths": (1024,), "downsample": "pool"},
    "he22_cpu": {"stages": ((8, 6), (16, 7), (32, 7)), "head_widths": (64,), "downsample": "pool"},
    "he30_cpu": {"stages": ((8, 10), (16, 9), (32, 9)), "head_widths": (64,), "downsample": "pool"},
    "xiao_cpu": vanilla(depth=32, channels=16),
    "xiao": vanilla(depth=256, channels=128),
}
