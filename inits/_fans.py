"""Kernel layouts and fan computation.

Fans are computed from an explicit description of which axes of a kernel are its input
features, output features and batch (ensemble) axes; every other axis is receptive field.
This is the convention of :func:`jax.nn.initializers.variance_scaling`, extended with
feature groups (grouped and depthwise convolutions), whose fan-out peer libraries get wrong.

Flax kernel layouts (``flax.linen``):

* ``nn.Dense``: ``(in_features, out_features)``.
* ``nn.Conv``: ``(*window, in_features // feature_group_count, out_features)``.
  The fan-in read off the shape is already per group; the true fan-out of one input unit
  is ``prod(window) * out_features // feature_group_count`` (``layout=conv_layout(groups)``).
* ``nn.ConvTranspose``: ``(*window, in_features, out_features)``; with
  ``transpose_kernel=True`` the last two axes are swapped: ``(*window, out_features,
  in_features)`` (``conv_transpose_layout(transpose_kernel=True)``).
* ``nn.DenseGeneral``: the module flattens the kernel to 2-D
  ``(prod(batch_dims) * prod(in_axes), prod(out_features))`` before calling ``kernel_init``,
  so Flax counts batch dims into fan-in. Called directly on the unflattened shape,
  ``dense_general_layout(n_in, n_out, n_batch)`` gives the correct fans.
* Stacked ensembles (``nn.vmap``/``jax.vmap`` over members): leading member axes are batch
  axes (``ensemble_layout()``); they never count into a fan.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence
from typing import TypeGuard

import numpy as np

from initbench.inits.errors import UsageError, UsageTypeError, positive_int, unknown_choice

AxisSpec = int | Sequence[int]


def _as_tuple(axis: AxisSpec) -> tuple[int, ...]:
    def is_int(a: object) -> TypeGuard[int | np.integer]:
        return isinstance(a, int | np.integer) and not isinstance(a, bool)

    if is_int(axis):
        return (int(axis),)
    if isinstance(axis, tuple | list) and all(is_int(a) for a in axis):
        return tuple(int(a) for a in axis)
    raise UsageTypeError(
        f"an axis must be an int or a tuple of ints, got {type(axis).__name__}; if Flax called an initializer "
        "factory with (key, shape, dtype), it was passed uncalled: write kernel_init=inits.he_normal(), "
        "not kernel_init=inits.he_normal"
    )


@dataclasses.dataclass(frozen=True, init=False)
class Layout:
    """Which kernel axes are inputs, outputs and batch axes.

    Attributes:
      in_axis: Axis or axes of input features.
      out_axis: Axis or axes of output features.
      batch_axis: Axes ignored by the fans (ensemble members, DenseGeneral batch dims).
      feature_group_count: Number of feature groups of a grouped convolution. The kernel's
        input axis already holds ``in_features // groups``; the fan-out is divided by it.
      name: A label used in error messages and docs.

    Each axis argument is an int or a sequence of ints; the attribute holds it as a tuple.
    """

    in_axis: tuple[int, ...]
    out_axis: tuple[int, ...]
    batch_axis: tuple[int, ...]
    feature_group_count: int
    name: str

    def __init__(
        self,
        in_axis: AxisSpec = -2,
        out_axis: AxisSpec = -1,
        batch_axis: AxisSpec = (),
        feature_group_count: int = 1,
        name: str = "custom",
    ) -> None:
        object.__setattr__(self, "in_axis", _as_tuple(in_axis))
        object.__setattr__(self, "out_axis", _as_tuple(out_axis))
        object.__setattr__(self, "batch_axis", _as_tuple(batch_axis))
        object.__setattr__(self, "feature_group_count", feature_group_count)
        object.__setattr__(self, "name", name)
        positive_int("feature_group_count", self.feature_group_count)

    @property
    def min_ndim(self) -> int:
        """Smallest kernel rank the layout can describe."""
        axes = self.in_axis + self.out_axis + self.batch_axis
        need = 0
        for a in axes:
            need = max(need, a + 1 if a >= 0 else -a)
        return max(need, len(set(axes)))


DENSE = Layout(-2, -1, (), name="dense")


def conv_layout(feature_group_count: int = 1) -> Layout:
    """Layout of ``nn.Conv`` kernels ``(*window, in // groups, out)``.

    Args:
      feature_group_count: The convolution's ``feature_group_count`` (depthwise: ``in``).
    """
    return Layout(-2, -1, (), feature_group_count, name=f"conv(groups={feature_group_count})")


def conv_transpose_layout(*, transpose_kernel: bool = False) -> Layout:
    """Layout of ``nn.ConvTranspose`` kernels.

    Args:
      transpose_kernel: Flax's flag of the same name: when True the kernel is stored as
        ``(*window, out, in)`` (the gradient-of-conv convention), else ``(*window, in, out)``.
    """
    if transpose_kernel:
        return Layout(-1, -2, (), name="conv_transpose(transpose_kernel=True)")
    return Layout(-2, -1, (), name="conv_transpose")


def dense_general_layout(n_in_axes: int = 1, n_out_axes: int = 1, n_batch_axes: int = 0) -> Layout:
    """Layout of an unflattened ``nn.DenseGeneral`` kernel ``(*batch, *in, *out)``."""
    for label, value, lowest in (
        ("n_in_axes", n_in_axes, 1),
        ("n_out_axes", n_out_axes, 1),
        ("n_batch_axes", n_batch_axes, 0),
    ):
        if not isinstance(value, int) or value < lowest:
            raise UsageError(f"{label} must be an integer >= {lowest}, got {value!r}")
    total = n_batch_axes + n_in_axes + n_out_axes
    return Layout(
        in_axis=tuple(range(n_batch_axes - total, n_batch_axes + n_in_axes - total)),
        out_axis=tuple(range(-n_out_axes, 0)),
        batch_axis=tuple(range(n_batch_axes)),
        name=f"dense_general(in={n_in_axes}, out={n_out_axes}, batch={n_batch_axes})",
    )


def ensemble_layout(n_members_axes: int = 1, base: Layout = DENSE) -> Layout:
    """Layout of a stacked ensemble kernel ``(*members, *base_kernel)``.

    Args:
      n_members_axes: Number of leading member axes.
      base: Layout of one member's kernel (axes given from the end, as negative indices).
    """
    if any(a >= 0 for a in base.in_axis + base.out_axis + base.batch_axis):
        raise UsageError("ensemble() needs a base layout written with negative axes")
    return Layout(
        base.in_axis,
        base.out_axis,
        tuple(range(n_members_axes)) + base.batch_axis,
        base.feature_group_count,
        name=f"ensemble({n_members_axes}, {base.name})",
    )


LAYOUTS: dict[str, Layout] = {
    "dense": DENSE,
    "conv": conv_layout(),
    "conv_transpose": conv_transpose_layout(),
    "conv_transpose_transposed_kernel": conv_transpose_layout(transpose_kernel=True),
    "ensemble_dense": ensemble_layout(),
}


AXES = "axes"  # the name of a layout built from jax-style in_axis/out_axis/batch_axis arguments


def resolve_layout(
    layout: Layout | str | None,
    in_axis: AxisSpec = -2,
    out_axis: AxisSpec = -1,
    batch_axis: AxisSpec = (),
) -> Layout:
    """Returns ``layout`` (a Layout or preset name), or one built from the axis arguments."""
    if layout is None:
        return Layout(in_axis, out_axis, batch_axis, name=AXES)
    if isinstance(layout, Layout):
        return layout
    if isinstance(layout, str):
        if layout not in LAYOUTS:
            raise unknown_choice("layout", layout, LAYOUTS)
        return LAYOUTS[layout]
    raise UsageTypeError(f"layout must be a Layout, a preset name or None, got {layout!r}")


def check_shape(shape: Sequence[int], min_ndim: int, what: str) -> tuple[int, ...]:
    """Validates a kernel shape: enough dims, no negative dim (zero-size dims give empty arrays, as in jax)."""
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        dims = tuple(shape)
    except TypeError:
        raise UsageTypeError(f"{what}: shape must be a sequence of ints, got {shape!r}") from None
    # operator.index accepts Python and numpy integers and refuses floats (4.5 must not become 4)
    try:
        shape = tuple(operator.index(d) for d in dims)
    except TypeError:
        raise UsageTypeError(f"{what}: shape must be a sequence of ints, got {shape!r}") from None
    if len(shape) < min_ndim:
        raise UsageError(
            f"{what} needs a shape with at least {min_ndim} dims, got {shape} "
            f"({len(shape)} dims). Must be at least {min_ndim}D or specify in_axis/out_axis "
            "(or a layout) that fit the shape."
        )
    if any(d < 0 for d in shape):
        raise UsageError(f"{what}: every dim of the shape must be >= 0, got {shape}")
    return shape


def compute_fans(shape: Sequence[int], layout: Layout = DENSE) -> tuple[float, float]:
    """Returns ``(fan_in, fan_out)`` of a kernel.

    ``fan_in = prod(shape[in_axis]) * receptive_field`` and
    ``fan_out = prod(shape[out_axis]) * receptive_field / feature_group_count``, where the
    receptive field is the product of every axis that is neither in, out nor batch.

    Args:
      shape: The kernel shape.
      layout: The kernel layout.

    Raises:
      ValueError: if the shape has too few dims for the layout, a zero-size dim, or the
        layout's axes overlap.
    """
    shape = check_shape(shape, layout.min_ndim, f"layout {layout.name}")
    ndim = len(shape)
    norm = [tuple(a % ndim for a in axes) for axes in (layout.in_axis, layout.out_axis, layout.batch_axis)]
    flat = [a for axes in norm for a in axes]
    if len(flat) != len(set(flat)) and layout.name == AXES:
        # jax.nn.initializers' arithmetic, which Flax's default Embed init relies on
        # (variance_scaling(1, "fan_in", "normal", out_axis=0) on (vocab, features): fan_in = features):
        # receptive field = prod(shape) / (in * out * batch), possibly fractional
        sizes = [math.prod(shape[a] for a in axes) for axes in norm]
        receptive = math.prod(shape) / sizes[0] / sizes[1] / sizes[2]
        return float(sizes[0] * receptive), float(sizes[1] * receptive)
    if len(flat) != len(set(flat)):
        raise UsageError(
            f"layout {layout.name}: in/out/batch axes overlap for shape {shape} "
            f"(in={layout.in_axis}, out={layout.out_axis}, batch={layout.batch_axis})"
        )
    in_size = math.prod(shape[a] for a in norm[0])
    out_size = math.prod(shape[a] for a in norm[1])
    receptive_field = math.prod(shape[a] for a in range(ndim) if a not in flat)
    groups = layout.feature_group_count
    if groups > 1 and out_size % groups:
        raise UsageError(f"layout {layout.name}: out features {out_size} not divisible by feature_group_count={groups}")
    return float(in_size * receptive_field), float(out_size * receptive_field / groups)
