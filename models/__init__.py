"""Flax (linen) model families that take any initializer and expose every layer to probes; ``build_nnx`` for nnx.

Names are imported on first use (PEP 562): importing the package and listing the registries
import no JAX; type checkers and editors read the ``TYPE_CHECKING`` imports below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from initbench.inits.registry import lazy_exports

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Activate": "activations",
    "build": "_build",
    "build_nnx": "_nnx",
    "count_params": "_build",
    "per_layer": "_build",
    "FAMILIES": "catalog",
    "HEAD": "catalog",
    "PLAIN_CNN_PRESETS": "catalog",
    "block_name": "catalog",
    "block_stack_name": "catalog",
    "layer_name": "catalog",
    "stack_name": "catalog",
    "stack_start": "catalog",
    "unstacked": "catalog",
    "unstacked_path": "catalog",
    "LeNet5": "lenet",
    "MLP": "mlp",
    "PlainCNN": "plain_cnn",
    "ResNet": "resnet",
}
__all__ = sorted(_EXPORTS)

if not TYPE_CHECKING:  # type checkers see the imports below, so a misspelled name is an error
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from initbench.models._build import build as build
    from initbench.models._build import count_params as count_params
    from initbench.models._build import per_layer as per_layer
    from initbench.models._nnx import build_nnx as build_nnx
    from initbench.models.activations import Activate as Activate
    from initbench.models.catalog import FAMILIES as FAMILIES
    from initbench.models.catalog import HEAD as HEAD
    from initbench.models.catalog import PLAIN_CNN_PRESETS as PLAIN_CNN_PRESETS
    from initbench.models.catalog import block_name as block_name
    from initbench.models.catalog import block_stack_name as block_stack_name
    from initbench.models.catalog import layer_name as layer_name
    from initbench.models.catalog import stack_name as stack_name
    from initbench.models.catalog import stack_start as stack_start
    from initbench.models.catalog import unstacked as unstacked
    from initbench.models.catalog import unstacked_path as unstacked_path
    from initbench.models.lenet import LeNet5 as LeNet5
    from initbench.models.mlp import MLP as MLP
    from initbench.models.plain_cnn import PlainCNN as PlainCNN
    from initbench.models.resnet import ResNet as ResNet
