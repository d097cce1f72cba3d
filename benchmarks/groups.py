"""Parameter groups: which parameters a per-parameter rule (``lr_scale``, ``wd_scale``) applies to.

A rule is ``selector -> multiplier``. A selector is a **layer class** or a **path pattern**:

* classes partition a model's parameters by initbench's layer-naming contract
  (``models.catalog``): ``input`` (the kernel of the first layer: ``layer_000``, a ResNet's
  ``stem``), ``readout``
  (the classifier's kernel, ``head``), ``hidden`` (every other kernel), ``scalar`` (0-d
  parameters: ResNet's ``branch_scale`` multipliers and Fixup's scalar biases) and ``bias``
  (every other parameter: biases, normalization scales and offsets, PReLU slopes);
* ``vector`` selects the ``bias`` class outside the classifier: the vector-like parameters whose
  size is the width (microsoft/mup's vector-like parameters; the classifier's bias has the
  number of classes as its size, a "fixed" parameter that a width parametrization leaves alone);
* any other selector is a glob (``fnmatch``) over the parameter's path, its keys joined by
  ``/`` (``head/dense/bias``, ``block_00/conv_a/conv/kernel``): ``head/*``, ``*/branch_scale``.

A parameter's learning rate is the run's ``lr`` times the product of the multipliers of every
``lr_scale`` rule that selects it (its class's, and each path pattern it matches), so rules
compose: ``{readout = 0.5, bias = 0.1}`` gives the classifier's bias ``0.05 x lr``. Its weight
decay is likewise ``weight_decay`` times its ``wd_scale`` multipliers, which may be 0:
``{bias = 0, scalar = 0}`` decays the kernels only. A path pattern that selects nothing in a
model is an error (a misspelled path or class name), raised before any work. A layer class a
model lacks selects nothing there (an MLP has no scalars), so one rule set serves a grid of
architectures (Fixup's ResNet and He's); the runner refuses a class that selects nothing in
*every* model of the grid (:func:`classes_present`).

Example:
  >>> import numpy as np
  >>> params = {"layer_000": {"dense": {"kernel": np.zeros((4, 8)), "bias": np.zeros(8)}},
  ...           "head": {"dense": {"kernel": np.zeros((8, 3)), "bias": np.zeros(3)}}}
  >>> scales = lr_scale_tree(params, (("bias", 0.1), ("readout", 0.5)), "mlp")
  >>> float(scales["head"]["dense"]["kernel"]), float(scales["head"]["dense"]["bias"])
  (0.5, 0.1)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from initbench.inits.errors import UsageError

CLASSES = ("input", "hidden", "readout", "bias", "scalar")
VECTOR = "vector"  # a selector: the bias class outside the classifier (the width-sized vectors)
SELECTORS = (*CLASSES, VECTOR)
_KERNELS = ("kernel", "embedding")
_HEAD = "head"  # models.catalog.HEAD (benchmarks may not need models to read a path)


def param_path(path: Sequence[Any]) -> str:
    """A parameter's path as text: its keys joined by ``/`` (``head/dense/kernel``)."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def param_class(path: str, ndim: int) -> str:
    """The layer class of the parameter at ``path`` with ``ndim`` dimensions (see the module docstring)."""
    if ndim == 0:
        return "scalar"
    parts = path.split("/")
    if parts[-1] in _KERNELS:
        return {"layer_000": "input", "stem": "input", "head": "readout"}.get(parts[0], "hidden")
    return "bias"


def lr_scale_tree(
    params: Any, rules: Sequence[tuple[str, float]], what: str = "the model", *, field: str = "lr_scale"
) -> Any:
    """Each parameter's multiplier under ``rules`` (a tree like ``params`` of floats).

    Args:
      params: The model's parameters (arrays or ``jax.ShapeDtypeStruct``, e.g. from ``jax.eval_shape``).
      rules: ``(selector, multiplier)`` pairs (``TrainSpec.lr_scale`` or ``TrainSpec.wd_scale``).
      what: The model, for the error message.
      field: The rules' field, for the error message.

    Raises:
      UsageError: a path pattern selects no parameter (a layer class the model lacks does not raise).
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [param_path(p) for p, _ in leaves]
    classes = [param_class(p, len(np.shape(leaf))) for p, (_, leaf) in zip(paths, leaves, strict=True)]
    scales = [1.0] * len(paths)
    for selector, multiplier in rules:
        if selector in CLASSES:
            hits = [i for i, c in enumerate(classes) if c == selector]
        elif selector == VECTOR:
            hits = [i for i, (c, p) in enumerate(zip(classes, paths, strict=True)) if _vector(c, p)]
        else:
            hits = [i for i, p in enumerate(paths) if fnmatch.fnmatchcase(p, selector)]
        if not hits and selector not in SELECTORS:
            raise UsageError(
                f"{field} selector {selector!r} selects no parameter of {what}; classes: {', '.join(SELECTORS)} "
                f"(present: {', '.join(sorted(set(classes)))}), or a path pattern over: {', '.join(paths[:8])}"
                + (", ..." if len(paths) > 8 else "")
            )
        for i in hits:
            scales[i] *= float(multiplier)
    return jax.tree_util.tree_unflatten(treedef, scales)


def _vector(cls: str, path: str) -> bool:
    """A ``bias``-class parameter outside the classifier: one whose size is the width."""
    return cls == "bias" and path.split("/")[0] != _HEAD


def classes_present(params: Any) -> set[str]:
    """The layer classes of a model's parameters (arrays or shapes), ``vector`` included."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    out = set()
    for p, leaf in leaves:
        path = param_path(p)
        cls = param_class(path, len(np.shape(leaf)))
        out |= {cls, VECTOR} if _vector(cls, path) else {cls}
    return out


def structural_classes(params: Any, wider: Any) -> dict[str, str]:
    """Each parameter's layer class from how its shape changes with width, as microsoft/mup's base shapes.

    ``params`` and ``wider`` are the same model's parameters (or shapes) at two widths. A kernel
    (``kernel``/``embedding``, >= 2 dims; the last is the output, the others the fan-in) whose
    fan-in and output both grow is ``hidden``, whose output alone grows ``input``, whose fan-in
    alone grows ``readout``; a 0-d parameter is a ``scalar``; any other parameter is ``vector``
    when its shape grows (vector-like: biases, norm scales) and ``fixed`` when it does not (the
    classifier's bias), as is a kernel that does not change with width. Works on linen parameter
    dicts and on nnx states (``nnx.state(model, nnx.Param)``, whose leaves end in ``value``).

    Example:
      >>> import numpy as np
      >>> def mlp(n):
      ...     return {"layer_000": {"dense": {"kernel": np.zeros((4, n)), "bias": np.zeros(n)}},
      ...             "head": {"dense": {"kernel": np.zeros((n, 3)), "bias": np.zeros(3)}}}
      >>> structural_classes(mlp(8), mlp(16))["head/dense/kernel"]
      'readout'
    """
    small = jax.tree_util.tree_flatten_with_path(params)[0]
    big = jax.tree_util.tree_flatten_with_path(wider)[0]
    if [p for p, _ in small] != [p for p, _ in big]:
        raise UsageError("the model's parameters at the two widths are not the same tree")
    out = {}
    for (path, a), (_, b) in zip(small, big, strict=True):
        name, sa, sb = param_path(path), tuple(np.shape(a)), tuple(np.shape(b))
        if len(sa) == 0:
            out[name] = "scalar"
        elif _leaf_name(name) in _KERNELS and len(sa) >= 2:
            fan_in, fan_out = sa[:-1] != sb[:-1], sa[-1] != sb[-1]
            out[name] = {(True, True): "hidden", (False, True): "input", (True, False): "readout"}.get(
                (fan_in, fan_out), "fixed"
            )
        else:
            out[name] = VECTOR if sa != sb else "fixed"
    return out


def _leaf_name(path: str) -> str:
    """A parameter's own name: the last key, or the one before an nnx Variable's ``value``."""
    parts = path.split("/")
    return parts[-2] if parts[-1] == "value" and len(parts) > 1 else parts[-1]


def check_structure(params: Any, wider: Any, what: str) -> None:
    """Raises a one-line UsageError unless every parameter's class by name equals its class by shape.

    A width parametrization goes by layer class; a model whose names and shapes disagree (or a
    kernel that does not change with width) cannot be classified. By name, a ``bias``-class
    parameter is ``vector`` outside the classifier and ``fixed`` in it.
    """
    by_shape = structural_classes(params, wider)
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in leaves:
        name = param_path(path)
        named = param_class(name, len(np.shape(leaf)))
        if named == "bias":
            named = VECTOR if _vector(named, name) else "fixed"
        if by_shape[name] != named:
            raise UsageError(
                f"{what}: cannot classify {name}: {named!r} by its name but {by_shape[name]!r} by how its shape "
                "changes with width"
            )
