"""Build any model from a plain description, with errors raised before any tracing."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from initbench import inits
from initbench.inits.errors import UsageError, UsageTypeError, positive_int, unknown_choice
from initbench.models.activations import parse
from initbench.models.catalog import FAMILIES, PLAIN_CNN_PRESETS, unstacked
from initbench.models.layers import NORMALIZATIONS

_KERNEL_INIT_FIELDS = ("kernel_init", "first_kernel_init", "head_kernel_init")


def _fields(cls: type[nn.Module]) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.name not in ("parent", "name")}


def build(family: str, *, input_shape: Sequence[int], num_classes: int, **config: Any) -> nn.Module:
    """Builds a model from its family name and configuration.

    Example:
      >>> from initbench import models
      >>> net = models.build("mlp", input_shape=(64,), num_classes=10, depth=3, width=128,
      ...                    activation="tanh", kernel_init="glorot_uniform")

    Args:
      family: ``mlp``, ``lenet5``, ``plain_cnn`` or ``resnet``.
      input_shape: One example's shape, without the batch axis (``(H, W, C)`` for CNNs).
      num_classes: Output units.
      **config: The family's fields (``plain_cnn`` also takes ``preset``, a name in
        ``models.PLAIN_CNN_PRESETS``, whose fields the others override).

    Raises:
      ValueError: unknown family, field, activation, initializer or normalization; a
        non-positive size; a CNN that downsamples more than the input allows.
      TypeError: a field the family does not have.
    """
    cls = FAMILIES[family].cls
    config = dict(config)
    if family == "plain_cnn" and "preset" in config:
        preset = config.pop("preset")
        if not isinstance(preset, str) or preset not in PLAIN_CNN_PRESETS:
            raise unknown_choice("plain_cnn preset", preset, PLAIN_CNN_PRESETS)
        config = {**PLAIN_CNN_PRESETS[preset], **config}
    fields = _fields(cls)
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise UsageTypeError(
            f"{family} has no field(s) {', '.join(unknown)}; valid fields: {', '.join(sorted(fields))}"
        )
    missing = sorted(
        n
        for n, f in fields.items()
        if n not in config
        and n != "num_classes"
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise UsageError(f"{family} needs field(s) {', '.join(missing)}")
    positive_int("num_classes", num_classes)
    shape = _int_tuple("input_shape", input_shape)
    if not shape or any(d < 1 for d in shape):  # 8.7 is not a size (int() truncated it to 8)
        raise UsageError(f"input_shape must be non-empty with positive dims, got {input_shape!r}")
    input_shape = shape
    if isinstance(config.get("activation"), str):
        parse(config["activation"])
    elif "activation" in config and not callable(config["activation"]):
        raise UsageTypeError(
            f"{family} activation must be a name (initbench list activations) or a callable, "
            f"got {config['activation']!r}"
        )
    for name in _KERNEL_INIT_FIELDS:
        if isinstance(config.get(name), str):
            inits.entry(config[name])
    if isinstance(config.get("bias_init"), str):
        inits.get_bias(config["bias_init"], fan_in=1)
    for name in ("scan", "use_bias", "branch_biases"):  # 'no' and 'yes' are both truthy
        if name in config:
            if not isinstance(config[name], bool | np.bool_):
                raise UsageTypeError(f"{family} {name} must be true or false, got {config[name]!r}")
            config[name] = bool(config[name])
    scale = config.get("residual_scale")
    if scale is not None:
        if not (
            isinstance(scale, numbers.Real)
            and not isinstance(scale, bool | np.bool_)
            and abs(float(scale)) <= float(np.finfo(np.float32).max)  # nan fails; 1e39 is inf in float32
        ):
            raise UsageError(f"{family} residual_scale must be None or a finite number (in float32), got {scale!r}")
        config["residual_scale"] = float(scale)
    if "branch_multiplier" in config:
        multiplier = config["branch_multiplier"]
        tiny, largest = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)
        if not (
            isinstance(multiplier, numbers.Real)
            and not isinstance(multiplier, bool | np.bool_)
            and tiny <= float(multiplier) <= largest
        ):  # nan fails the comparison; below tiny it is 0 in float32
            raise UsageError(
                f"{family} branch_multiplier must be a finite number > 0 (in float32: {tiny:.3g} to "
                f"{largest:.3g}), got {multiplier!r}"
            )
        config["branch_multiplier"] = float(multiplier)
    if config.get("normalization", "none") not in NORMALIZATIONS:
        raise unknown_choice("normalization", config["normalization"], NORMALIZATIONS)
    for name in ("depth", "width"):
        if name in config:
            positive_int(name, config[name])
    if family != "mlp" and len(input_shape) != 3:
        raise UsageError(f"{family} needs (height, width, channels) inputs, got input_shape {input_shape}")
    if family == "lenet5" and min(input_shape[:2]) < 8:
        raise UsageError(f"lenet5 needs inputs of at least 8x8, got {input_shape[:2]}")
    for name, choices in (("pooling", ("avg", "max")), ("downsample", ("pool", "stride"))):
        if name in config and config[name] not in choices:  # anything else silently meant the other choice
            raise unknown_choice(f"{family} {name}", config[name], choices)
    if family == "plain_cnn":
        given = config["stages"]
        if isinstance(given, str) or not isinstance(given, Sequence | np.ndarray):
            raise UsageError(f"plain_cnn stages must be ((channels, n_convs), ...), got {given!r}")
        stages = tuple(_int_tuple("plain_cnn stages' (channels, n_convs)", s) for s in given)
        if not stages or any(len(s) != 2 or s[0] < 1 or s[1] < 1 for s in stages):
            raise UsageError(f"plain_cnn stages must be ((channels >= 1, n_convs >= 1), ...), got {config['stages']!r}")
        config["stages"] = stages
        _check_downsampling(family, input_shape, len(stages) - 1)
    if family == "resnet":
        blocks = _int_tuple("resnet blocks", config["blocks"])
        if not blocks or any(b < 1 for b in blocks):
            raise UsageError(f"resnet blocks must be positive integers per stage, got {config['blocks']!r}")
        config["blocks"] = blocks
        _check_downsampling(family, input_shape, len(blocks) - 1)
    if "head_widths" in config:
        widths = _int_tuple(f"{family} head_widths", config["head_widths"])
        if any(h < 1 for h in widths):
            raise UsageError(f"{family} head_widths must be positive integers, got {config['head_widths']!r}")
        config["head_widths"] = widths
    if "kernel_size" in config:
        config["kernel_size"] = positive_int(f"{family} kernel_size", config["kernel_size"])
    _check_size(family, config, input_shape, num_classes)
    model = cls(num_classes=num_classes, **config)
    if family == "lenet5":  # fixed convolutions, but its first dense layer grows with the input's area
        x = jax.ShapeDtypeStruct((1, *input_shape), np.float32)
        shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
        weights = sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(shapes))
        if weights > MAX_PARAMETERS:
            raise UsageError(
                f"lenet5 on {input_shape} inputs has about {weights:.3g} weights, more than the {MAX_PARAMETERS:.3g} "
                "(2**34) initbench builds"
            )
    return model


MAX_LAYERS = 100_000
"""Most weight layers a model may have (Xiao et al. 2018 trained 10,000-layer CNNs)."""
MAX_PARAMETERS = 2**34
"""Most parameters a model may have (about 1.7e10: 64 GiB in float32, before optimizer state)."""


def _check_size(family: str, config: dict[str, Any], input_shape: tuple[int, ...], num_classes: int) -> None:
    """Refuses a model too large to trace or hold, from its fields alone (no tracing)."""
    channels = input_shape[-1]
    if family == "mlp":
        d, w = config["depth"], config["width"]
        layers, weights = d, math.prod(input_shape) * w + (d - 1) * w * w + w * num_classes
    elif family == "resnet":
        widths = [config["width"] * 2**i for i in range(len(config["blocks"]))]
        layers = 2 * sum(config["blocks"])
        weights = 9 * channels * widths[0] + sum(18 * b * c * c for b, c in zip(config["blocks"], widths, strict=True))
    elif family == "plain_cnn":
        k = config.get("kernel_size", 3)
        layers, weights, before = 0, 0, channels
        for c, n in config["stages"]:
            layers += n
            weights += k * k * c * (before + (n - 1) * c)
            before = c
        for h in config.get("head_widths", ()):
            layers, weights, before = layers + 1, weights + before * h, h
    else:
        return  # lenet5: fixed sizes
    if layers > MAX_LAYERS:
        raise UsageError(f"{family} has {layers:,} weight layers, more than the {MAX_LAYERS:,} initbench builds")
    if weights > MAX_PARAMETERS:
        raise UsageError(
            f"{family} has about {weights:.3g} weights, more than the {MAX_PARAMETERS:.3g} (2**34) initbench builds"
        )


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    """``value`` as a tuple of ints when it is a sequence of integers (numpy's too); else one line naming ``name``."""
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        raise UsageError(f"{name} must be a sequence of integers, got {value!r}")
    if any(isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer) for v in value):
        raise UsageError(f"{name} must be a sequence of integers, got {value!r}")
    return tuple(int(v) for v in value)


def _check_downsampling(family: str, input_shape: tuple[int, ...], halvings: int) -> None:
    smallest = min(input_shape[:2])
    if smallest < 2**halvings:
        raise UsageError(
            f"{family} halves the resolution {halvings} times, too deep in downsampling for "
            f"{input_shape[0]}x{input_shape[1]} inputs (needs at least {2**halvings}x{2**halvings})"
        )


def count_params(params: Any) -> int:
    """Total number of scalars in a parameter pytree."""
    return sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params))


def _member(stacked: Any, j: int) -> Any:
    if isinstance(stacked, jax.ShapeDtypeStruct):  # abstract evaluation (eval_shape)
        return jax.ShapeDtypeStruct(stacked.shape[1:], stacked.dtype)
    return stacked[j]


def per_layer(intermediates: Any) -> list[dict[str, Any]]:
    """The sown layers in execution order: ``[{"layer", "pre_activation", "activation"}]``.

    Walks the ``intermediates`` collection (nested by module path, joined with ``/``); a
    module that sowed ``pre_activation`` is a layer (the same walk reads a ``perturbations``
    tree or its gradient, whose leaves are arrays). Scanned stacks (``stack_name``,
    ``block_stack_name``) are unstacked into their layers under their unscanned names
    (:func:`models.catalog.unstacked_path`: ``layer_001``, ``block_01/conv_a``). ``activation`` is None for layers
    without one (the head).

    Execution order is the insertion order of the ``intermediates`` dicts, so pass the output
    of an un-jitted ``apply``: ``jax.jit`` returns dicts with sorted keys (``head`` would come
    first). The propagation probe traces the order itself and works under ``jit``.
    """
    layers: list[dict[str, Any]] = []

    def walk(node: Any, path: tuple[str, ...], stacked: bool = False) -> None:
        # A module's sown values follow its children's in execution order (it sows its output).
        # Unscanned trees keep that insertion order; a stack's element does not (scan collects
        # its collections anew), so there a module's children come first.
        own = [k for k in node if k in ("pre_activation", "activation")]
        order: list[Any] = []
        for key in node:
            if key not in own:
                order.append(key)
            elif not stacked and None not in order:
                order.append(None)  # the module itself, where its first sown value was inserted
        if stacked and own:
            order.append(None)
        for key in order:
            if key is None:
                emit(node, path)
                continue
            value = node[key]
            if not (isinstance(value, dict) or hasattr(value, "items")):
                continue
            if unstacked(str(key), 0) is None:
                walk(value, (*path, key), stacked)
                continue
            # a scanned stack: its scan body's tree, one element at a time, under the unscanned names
            (body,) = value.values()
            for j in range(jax.tree_util.tree_leaves(body)[0].shape[0]):
                member = jax.tree_util.tree_map(lambda a, j=j: _member(a, j), body)
                walk(member, (*path, unstacked(str(key), j) or ""), True)

    def last(value: Any) -> Any:
        return value[-1] if isinstance(value, tuple) else value  # sown tuples, or perturbation arrays

    def emit(node: Any, path: tuple[str, ...]) -> None:
        pre = last(node["pre_activation"])
        act = last(node["activation"]) if "activation" in node else None
        layers.append({"layer": "/".join(path), "pre_activation": pre, "activation": act})

    walk(intermediates, ())
    return layers
