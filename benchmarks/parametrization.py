r"""Width parametrizations: how the init scale and the learning rate of each layer class move with width.

A parametrization says, per layer class (:mod:`initbench.benchmarks.groups`: ``input``,
``hidden``, ``readout``, ``vector``, ``scalar``), how a layer's initial standard deviation and its
learning rate scale with the width multiplier :math:`m = \text{width} / \text{base\_width}`:
``std x m^e_init`` and ``lr x m^e_lr`` (one exponent per optimizer family, SGD-like or Adam-like),
on top of the run's own init and learning rate. Every preset equals the run without it at the
base width (:math:`m = 1`), as microsoft/mup's models equal their PyTorch-default base model.

The presets are written in the multiplier-free form: by the abc symmetry (Yang & Hu 2021, "TP4",
Sec. 3; Everett et al. 2024, Sec. 2) a layer multiplier :math:`n^{-a}` on :math:`W = n^{-a} w` is
the same training dynamics as no multiplier with the init std times :math:`n^{-a}` and the
learning rate times :math:`n^{-2a}` (SGD) or :math:`n^{-a}` (Adam). So a layer's forward
multiplier is folded into its init and learning rate, and the model is unchanged:

===========  =========================  ==================  =================
class        init std x                 SGD lr x            Adam lr x
===========  =========================  ==================  =================
``sp``       1 everywhere               1                   1
``ntk``      input, vector: 1           1                   1
             hidden, readout: 1         1/m                 1/m
``mup``      input, vector: 1           m                   1
             hidden: 1                  1                   1/m
             readout: m^(-1/2)          1/m                 1/m
===========  =========================  ==================  =================

``vector`` is the width-sized vector-like parameters (biases, normalization scales and offsets,
PReLU slopes; not the classifier's bias, whose size is the number of classes); the classifier's
bias and 0-d scalars (ResNet's ``branch_scale``, Fixup's scalar biases) have no dimension that
grows with width and keep multiplier 1 in every preset (microsoft/mup's ``MuSGD`` leaves such
"fixed" parameters alone; TP5 Table 3's "fan_out" of the classifier's bias is the number of
classes). ``mup`` is Yang et al. 2022 ("Tensor Programs V", Table 3, width-sized biases and other
vector-like parameters as input weights); in this form it is also Table 8 (microsoft/mup's ``MuReadout`` with
its 1/m output multiplier, ``MuSGD``, ``MuAdam``) and TP4's mean-field parametrization: these
differ only through Adam's epsilon, which the plain presets do not rescale (Everett et al.'s
"epsilon underflow"; the ``+eps`` presets below do). ``ntk`` is Jacot et al. 2018's :math:`n^{-1/2}` multipliers on the
hidden and readout layers (TP4 Table; Everett et al.'s NTK with full alignment). With decoupled
weight decay (AdamW, Lion) a layer's decay multiplier is divided by its learning-rate
multiplier, so the decay per step, ``lr x weight_decay``, does not change with width (decay is
not rescaled with the learning rate unless asked: ``wd_scale``).

``mfp`` is TP4's mean-field parametrization, muP's dynamics in this form. Everett et al. 2024's
per-layer Adam exponents are the presets ``{sp,mup,ntk,mfp}_{full,no}_align``
(:data:`EVERETT`: their (a, b) per layer and Adam's c under full alignment or no alignment,
brought to this form by the symmetry): ``sp_full_align`` is SP's init with Adam rates / m for
hidden and readout (the same as ``ntk``), ``sp_no_align`` / sqrt(m); ``mup_full_align`` is
``mup``, ``mup_no_align`` keeps muP's readout init with Adam rates / sqrt(m) for hidden and
readout; NTK's rows equal SP's and MFP's equal muP's (the symmetry; in the paper they differ
through Adam's epsilon). These take Adam-like optimizers only (the paper's SGD exponents assume
an alignment this table does not pick).

``NAME+eps`` (every preset above: ``mup+eps``, ``sp+eps``, ...) adds Adam's epsilon per layer
class, scaled like that class's gradient at initialization (:data:`EPS_SUFFIX`): input, hidden and
vector parameters :math:`m^{r - 1/2}` with :math:`r` the preset's readout init exponent
(:math:`1/m` for ``mup``, :math:`m^{-1/2}` for ``sp``), readout and fixed parameters 1, so no
layer's gradient falls under its epsilon as the width grows (Everett et al. 2024's "epsilon
underflow"; lucaslingle/mu_transformer and CompleteP scale it too). For the optimizers that add an
epsilon to :math:`\sqrt{v}`: ``adam``, ``adamw``, ``nadam``, ``adamax``.

**Your own table**: ``parametrization = {readout = {init = -0.5, adam = -1}, hidden = {adam = -1}}``
in an experiment (or its :func:`table_name`, ``table:hidden.adam=-1.0/readout.adam=-1.0/readout.init=-0.5``,
anywhere a preset is named) gives per class the exponents of :math:`m` (``init`` std, ``sgd`` and
``adam`` learning rates, Adam's ``eps``); what it leaves out is SP's 0. It is validated like the
presets and is one value of the grid and of the run identity.

**Depth** (:func:`depth_rules`; the keys ``depth_alpha`` and ``base_depth`` beside the name):
a residual network of :math:`L` blocks multiplies every branch's output by the fixed constant
:math:`(L/L_0)^{-\alpha}` (``models.ResNet``'s ``branch_multiplier``) and the learning rate of
the parameters inside the branches (``conv_a``, ``conv_b``, and Fixup's branch scalars where the
model has them) by :math:`(L/L_0)^{2\alpha - 1}` (SGD-like) or :math:`(L/L_0)^{\alpha - 1}`
(Adam-like), so each block's contribution to the output moves by :math:`O(1/L)` per step
whatever the depth. :math:`\alpha = 1/2` is Depth-muP (Yang, Yu, Zhu & Hayou 2023, "Tensor
Programs VI": branch :math:`a/\sqrt{L}`, SGD lr constant, Adam lr :math:`\propto L^{-1/2}`;
Bordelon et al. 2023), :math:`\alpha = 1` CompleteP (Dey et al. 2025: branch :math:`1/L`, Adam
hidden lr constant in depth). It composes with any width preset (depth-muP is ``mup`` with
``depth_alpha = 0.5``) and equals the plain run at :math:`L = L_0`. With a ``+eps`` preset the
branch parameters' Adam epsilon is multiplied by :math:`(L/L_0)^{-\alpha}` as well, like their
gradient (CompleteP's :math:`\epsilon \propto L^{-\alpha}`).

Example:
  >>> rules("mup", width=256, base_width=64, optimizer="sgd")["lr_scale"]["input"]
  4.0
  >>> rules("mup", width=256, base_width=64, optimizer="adam")["init_scale"]["readout"]
  0.5
"""

from __future__ import annotations

import math
from typing import Any

from initbench.benchmarks.optimizers import OPTIMIZERS
from initbench.inits.errors import UsageError, unknown_choice

# optimizer family of each optimizer a run can name: how its update scales with the gradient
FAMILIES = {
    "sgd": "sgd",
    "momentum": "sgd",
    "adam": "adam",
    "adamw": "adam",
    "adam_atan2": "adam",
    "nadam": "adam",
    "adamax": "adam",
    "rmsprop": "adam",
    "adagrad": "adam",
    "lion": "adam",  # sign updates: scale-free like Adam's
}
_ONE = {"init": 0.0, "sgd": 0.0, "adam": 0.0}
_VECTOR = {"init": 0.0, "sgd": 1.0, "adam": 0.0}
# name -> class -> exponents of m: init std, SGD-like lr, Adam-like lr
# (``fixed`` parameters, which no dimension of grows with width, are in no table: multiplier 1)
PRESETS: dict[str, dict[str, dict[str, float]]] = {
    "sp": dict.fromkeys(("input", "hidden", "readout", "vector", "scalar"), _ONE),
    "ntk": {
        "input": _ONE,
        "hidden": {"init": 0.0, "sgd": -1.0, "adam": -1.0},
        "readout": {"init": 0.0, "sgd": -1.0, "adam": -1.0},
        "vector": _ONE,
        "scalar": _ONE,
    },
    "mup": {
        "input": _VECTOR,
        "hidden": {"init": 0.0, "sgd": 0.0, "adam": -1.0},
        "readout": {"init": -0.5, "sgd": -1.0, "adam": -1.0},
        "vector": _VECTOR,
        "scalar": _ONE,  # 0-d: nothing grows with width (microsoft/mup's "fixed" parameters)
    },
}


# Everett et al. 2024 ("Scaling Exponents Across Parameterizations and Optimizers", Table 1 and
# Sec. 3), Adam: per layer (embedding = input, hidden, readout) the multiplier W = n^-a w, the init
# w ~ N(0, n^-2b) and Adam's learning rate n^-c, under full alignment and under no alignment of the
# updates with the activations. The multiplier-free form (the abc symmetry, Adam: a -> a + t,
# b -> b - t, c -> c - t) relative to SP at the base width: init std x m^-(a+b) / m^-(a+b)_SP and
# Adam lr x m^-(a+c). Vector-like parameters and scalars keep their rates (exponent 0).
EVERETT: dict[str, dict[str, tuple[float, float, float]]] = {
    # param: layer -> (a, b), then c under "full" and "no" alignment, in the order input, hidden, readout
    "sp": {"ab": ((0.0, 0.0), (0.0, 0.5), (0.0, 0.5)), "full": (0.0, 1.0, 1.0), "no": (0.0, 0.5, 0.5)},
    "mup": {"ab": ((-0.5, 0.5), (0.0, 0.5), (0.5, 0.5)), "full": (0.5, 1.0, 0.5), "no": (0.5, 0.5, 0.0)},
    "ntk": {"ab": ((0.0, 0.0), (0.5, 0.0), (0.5, 0.0)), "full": (0.0, 0.5, 0.5), "no": (0.0, 0.0, 0.0)},
    "mfp": {"ab": ((0.0, 0.0), (0.5, 0.0), (1.0, 0.0)), "full": (0.0, 0.5, 0.0), "no": (0.0, 0.0, -0.5)},
}
_LAYERS = ("input", "hidden", "readout")


def _everett(param: str, alignment: str) -> dict[str, dict[str, float]]:
    """One row of :data:`EVERETT` in the multiplier-free form (Adam-like optimizers only: no ``sgd`` key)."""
    row, sp = EVERETT[param], EVERETT["sp"]["ab"]
    out = {cls: {"init": 0.0, "adam": 0.0} for cls in ("vector", "scalar")}
    for k, cls in enumerate(_LAYERS):
        (a, b), (a0, b0), c = row["ab"][k], sp[k], row[alignment][k]
        out[cls] = {"init": -(a + b) + (a0 + b0), "adam": -(a + c)}
    return out


PRESETS["mfp"] = PRESETS["mup"]  # TP4's mean-field parametrization: muP's dynamics by the abc symmetry
for _param in EVERETT:
    for _alignment in ("full", "no"):
        PRESETS[f"{_param}_{_alignment}_align"] = _everett(_param, _alignment)

# "+eps": the same rules with Adam's epsilon scaled per layer class like the gradient at init. In this
# multiplier-free form input and hidden layers keep SP's init, so the back-propagated signal at the last
# hidden layer is the readout's weights times O(1): entries ~ n^-1/2 x m^r, r the readout's init
# exponent; the gradients of input, hidden and vector parameters scale with it (m^(r - 1/2) relative to
# the base width: m^-1 under muP, m^-1/2 under SP), the readout's and the fixed parameters' not.
EPS_SUFFIX = "+eps"
EPS_OPTIMIZERS = ("adam", "adamw", "nadam", "adamax")  # spec.EPS_OPTIMIZERS: an epsilon added to sqrt(v)


def _with_eps(table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    grad = table["readout"]["init"] - 0.5
    eps = {"input": grad, "hidden": grad, "vector": grad, "readout": 0.0, "scalar": 0.0}
    return {cls: {**e, "eps": eps[cls]} for cls, e in table.items()}


for _name in list(PRESETS):
    PRESETS[_name + EPS_SUFFIX] = _with_eps(PRESETS[_name])


# A user's own table: per class the exponents of m (``init`` std, ``sgd`` and ``adam`` learning
# rates, Adam's ``eps``), written as one name so it is one value of the grid and of the run identity.
CLASSES = ("input", "hidden", "readout", "vector", "scalar")
EXPONENTS = ("init", "sgd", "adam", "eps")
TABLE_PREFIX = "table:"
_EXPONENT_LIMIT = 8.0  # |exponent|: m^8 at m = 2^10 is 2^80, already past any sensible multiplier


def table_name(table: Any) -> str:
    r"""The canonical name of a user's parametrization table (TOML ``parametrization = {...}``).

    ``table`` maps a layer class (:data:`CLASSES`) to its exponents of the width multiplier
    :math:`m` (:data:`EXPONENTS`: ``init`` std, ``sgd`` and ``adam`` learning rates, Adam's
    ``eps``); what it leaves out is 0 (SP's). The name is ``table:`` and the non-zero entries as
    ``CLASS.KEY=VALUE`` joined by ``/``, sorted, so equal tables are one run identity, and it can
    be given as is (``--parametrization 'table:hidden.adam=-1/readout.init=-0.5/readout.adam=-1'``).

    Example:
      >>> table_name({"readout": {"init": -0.5, "adam": -1}, "hidden": {"adam": -1.0, "init": 0}})
      'table:hidden.adam=-1.0/readout.adam=-1.0/readout.init=-0.5'

    Raises:
      UsageError: An unknown class or exponent, or a value that is not a number in [-8, 8].
    """
    if not isinstance(table, dict):
        raise UsageError(f"a parametrization table maps layer classes to exponents, got {table!r}")
    entries = []
    for cls, row in table.items():
        if cls not in CLASSES:
            raise unknown_choice("parametrization table class", cls, CLASSES)
        if not isinstance(row, dict):
            raise UsageError(
                f"parametrization table: {cls} must map exponents ({', '.join(EXPONENTS)}) to numbers, got {row!r}"
            )
        for key, value in row.items():
            if key not in EXPONENTS:
                raise unknown_choice(f"parametrization table {cls} exponent", key, EXPONENTS)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not -_EXPONENT_LIMIT <= value <= _EXPONENT_LIMIT
            ):
                raise UsageError(
                    f"parametrization table: {cls}.{key} must be a number in [-8, 8] (an exponent of m), got {value!r}"
                )
            if value != 0:
                entries.append(f"{cls}.{key}={float(value)!r}")
    return TABLE_PREFIX + "/".join(sorted(entries))


def _parse_table(name: str) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for entry in filter(None, name[len(TABLE_PREFIX) :].split("/")):
        path, eq, text = entry.partition("=")
        cls, dot, key = path.partition(".")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (eq and dot) or math.isnan(value):
            raise UsageError(f"parametrization {name!r}: {entry!r} is not CLASS.KEY=VALUE (e.g. readout.init=-0.5)")
        if key in table.get(cls, {}):
            raise UsageError(f"parametrization {name!r}: {cls}.{key} is given twice")
        table.setdefault(cls, {})[key] = value
    table_name(table)  # classes, exponents and values checked
    return table


def canonical(name: Any) -> Any:
    """A ``table:...`` name in its one spelling (:func:`table_name`); anything else as it is.

    Example:
      >>> canonical("table:readout.init=-.5/hidden.adam=-1"), canonical("mup")
      ('table:hidden.adam=-1.0/readout.init=-0.5', 'mup')
    """
    if isinstance(name, str) and name.startswith(TABLE_PREFIX):
        return table_name(_parse_table(name))
    return name


def exponents(name: Any) -> dict[str, dict[str, float]]:
    """The per-class exponents of a preset or of a ``table:...`` name (:func:`table_name`).

    Raises:
      UsageError: Neither a preset nor a well-formed table name (naming the choices).
    """
    if isinstance(name, str) and name in PRESETS:
        return PRESETS[name]
    if not isinstance(name, str) or not name.startswith(TABLE_PREFIX):
        raise unknown_choice("parametrization", name, (*PRESETS, "table:CLASS.KEY=VALUE/..."))
    table = _parse_table(name)
    eps = any("eps" in row for row in table.values())
    return {
        cls: {"init": 0.0, "sgd": 0.0, "adam": 0.0, **({"eps": 0.0} if eps else {}), **table.get(cls, {})}
        for cls in CLASSES
    }


def scales_eps(name: str) -> bool:
    """Whether the parametrization scales Adam's epsilon (a ``+eps`` preset, or a table with ``eps``)."""
    return any("eps" in row for row in exponents(name).values())


def check(name: Any, base_width: Any, *, width: Any, optimizer: Any, scheme: str | None = None) -> None:
    """Raises a one-line UsageError unless ``name`` applies to a model of ``width`` trained by ``optimizer``."""
    exponents(name)
    if name == "sp" and base_width is None:
        return
    if not isinstance(base_width, int) or isinstance(base_width, bool) or not 1 <= base_width < 2**31:
        raise UsageError(
            f"parametrization {name} needs base_width, a positive integer below 2**31 (the tuned width), "
            f"got {base_width!r}"
        )
    if name == "sp":  # a valid base width: SP ignores it
        return
    if width is None:
        raise UsageError(f"parametrization {name} scales with the model's width; this model has none")
    _check_optimizer(name, optimizer)
    if scheme is not None:
        raise UsageError(
            f"parametrization {name} rescales a per-tensor initializer's draws; {scheme} is a model-level "
            "scheme that sets its own scales"
        )


def init_rules(name: Any, base_width: Any, *, width: Any, scheme: str | None = None) -> dict[str, float]:
    """The init-std multipliers of ``name`` per layer class at ``width`` (those of 1 left out).

    What ``initbench check`` applies: the init part of a parametrization, which (unlike the
    learning rates) does not depend on the optimizer.

    Example:
      >>> init_rules("mup", 64, width=256)
      {'readout': 0.5}
    """
    table = exponents(name)
    if name == "sp" and base_width is None:
        return {}
    if not isinstance(base_width, int) or isinstance(base_width, bool) or not 1 <= base_width < 2**31:
        raise UsageError(
            f"parametrization {name} needs base_width, a positive integer below 2**31 (the tuned width), "
            f"got {base_width!r}"
        )
    if width is None:
        raise UsageError(f"parametrization {name} scales with the model's width; this model has none")
    if scheme is not None:
        raise UsageError(
            f"parametrization {name} rescales a per-tensor initializer's draws; {scheme} is a model-level "
            "scheme that sets its own scales"
        )
    if name == "sp":
        return {}
    m = width / base_width
    out = {cls: m ** e["init"] for cls, e in table.items() if m ** e["init"] != 1.0}
    for cls, value in out.items():
        if not math.isfinite(value) or not 2.0**-126 <= value <= 3.4028234663852886e38:
            raise UsageError(f"parametrization {name}: the {cls} init multiplier at width {width} is {value!r}")
    return out


def _check_optimizer(name: str, optimizer: Any) -> None:
    if scales_eps(name) and optimizer not in EPS_OPTIMIZERS:
        raise UsageError(
            f"parametrization {name} scales Adam's epsilon; optimizer {optimizer!r} adds none to sqrt(v) "
            f"(it takes: {', '.join(EPS_OPTIMIZERS)})"
        )
    if optimizer not in FAMILIES:
        raise UsageError(
            f"parametrization {name} has no learning-rate rule for optimizer {optimizer!r}; "
            f"it has one for: {', '.join(FAMILIES)}"
        )
    if FAMILIES[optimizer] not in exponents(name)["hidden"]:
        takes = [o for o, family in FAMILIES.items() if family in exponents(name)["hidden"]]
        raise UsageError(
            f"parametrization {name} has exponents for Adam-like optimizers only (Everett et al. 2024's "
            f"table), not for {optimizer}; it takes: {', '.join(takes)}"
        )


def _factors(name: str, m: float, optimizer: str) -> dict[str, tuple[float, float, float]]:
    """Per layer class of ``name``: ``(init std, learning-rate, epsilon multiplier)`` at width multiplier ``m``."""
    family = FAMILIES[optimizer]
    return {cls: (m ** e["init"], m ** e[family], m ** e.get("eps", 0.0)) for cls, e in exponents(name).items()}


def rules(name: str, *, width: int | None, base_width: int | None, optimizer: str) -> dict[str, dict[str, float]]:
    """The per-class multipliers of ``name`` at ``width``: ``{"init_scale": ..., "lr_scale": ..., "wd_scale": ...}``.

    Multipliers of 1 are left out (an empty table for ``sp`` and at the base width); ``wd_scale``
    is set for decoupled-decay optimizers only (the inverse of the learning-rate multiplier).
    """
    check(name, base_width, width=width, optimizer=optimizer)
    out: dict[str, dict[str, float]] = {"init_scale": {}, "lr_scale": {}, "wd_scale": {}, "eps_scale": {}}
    if name == "sp":
        return out
    assert width is not None and base_width is not None  # check() raised otherwise
    for cls, (init, lr, eps) in _factors(name, width / base_width, optimizer).items():
        if eps != 1.0:
            out["eps_scale"][cls] = eps
        if init != 1.0:
            out["init_scale"][cls] = init
        if lr != 1.0:
            out["lr_scale"][cls] = lr
            if OPTIMIZERS[optimizer].decay == "decoupled":
                out["wd_scale"][cls] = 1.0 / lr
    tiny, huge = 2.0**-126, 3.4028234663852886e38  # float32's normal range: the weights and rates are float32
    for field, table in out.items():
        for cls, value in table.items():
            if not math.isfinite(value) or not tiny <= value <= huge:
                raise UsageError(
                    f"parametrization {name}: the {cls} {field} multiplier at width {width} is {value!r}, outside "
                    "float32's range (the weights or rates would be inf or 0)"
                )
    return out


def multipliers(
    params: Any,
    wider: Any,
    name: str,
    *,
    width_mult: float,
    optimizer: str,
    depth_alpha: float | None = None,
    depth: int | None = None,
    base_depth: int | None = None,
    branches: tuple[str, ...] = (),
) -> dict[str, Any]:
    r"""Per-parameter init and learning-rate multipliers of ``name`` for any model, from its structure.

    The layer classes come from the parameter shapes at two widths
    (:func:`initbench.benchmarks.groups.structural_classes`, as microsoft/mup's base shapes), not
    from names, so this works on one's own linen or nnx model: pass its parameters at the width
    used and at another width (``jax.eval_shape`` of the init is enough). A kernel that does not
    change with width (``fixed``) keeps multiplier 1.

    Args:
      params: The parameters (arrays or shapes) at the width used.
      wider: The same model's parameters (or shapes) at another width.
      name: A preset of :data:`PRESETS` or a user's table (:func:`table_name`).
      width_mult: :math:`m` = the width used / the base width (the width the hyper-parameters were
        tuned at).
      optimizer: An optimizer of :data:`FAMILIES` (its family picks the learning-rate exponent).
      depth_alpha: The depth rule (:func:`depth_rules`) for one's own residual model: the branch
        exponent (0.5 Depth-muP, 1 CompleteP); needs ``depth``, ``base_depth`` and ``branches``.
      depth: :math:`L`, the model's residual blocks.
      base_depth: :math:`L_0`, the depth the hyper-parameters were tuned at.
      branches: Glob patterns over the ``/``-joined parameter paths that select every parameter
        inside a residual branch (``"blocks/*/mlp/*"``); each must select something.

    Returns:
      ``{"init": tree, "lr": tree}``, trees like ``params`` of floats: multiply the initial
      parameters by ``init`` and each parameter's update by ``lr`` (e.g.
      ``optax.chain(optax.adam(lr), scale_by_tree(lr_tree))``); a ``+eps`` preset adds ``"eps"``,
      each parameter's epsilon multiplier (Adam with ``eps x s`` is Adam fed the gradient divided
      by ``s``: ``optax.chain(scale_by_tree(1 / eps_tree), optax.adam(lr), ...)``). With the depth
      rule, the branch parameters' ``lr`` (and ``eps``) carry its factors too, and
      ``"branch_multiplier"`` is :math:`(L/L_0)^{-\alpha}`, by which the model multiplies each
      branch's output (a constant, not a parameter).

    Raises:
      UsageError: a bad preset, optimizer or width multiplier; a depth rule missing one of its
        arguments, out of range, or with a branch pattern that selects no parameter.

    Example:
      >>> import numpy as np
      >>> def mlp(n):
      ...     return {"in": {"kernel": np.zeros((8, n)), "bias": np.zeros(n)},
      ...             "out": {"kernel": np.zeros((n, 10))}}
      >>> m = multipliers(mlp(256), mlp(512), "mup", width_mult=4.0, optimizer="adam")
      >>> m["init"]["out"]["kernel"], m["lr"]["out"]["kernel"], m["lr"]["in"]["kernel"]
      (0.5, 0.25, 1.0)
      >>> d = multipliers(mlp(256), mlp(512), "mup", width_mult=4.0, optimizer="adam",
      ...                 depth_alpha=0.5, depth=16, base_depth=4, branches=("in/*",))
      >>> d["branch_multiplier"], d["lr"]["in"]["kernel"], d["lr"]["out"]["kernel"]  # Adam: x (16/4)^(1/2 - 1)
      (0.5, 0.5, 0.25)
    """
    import fnmatch

    import jax

    from initbench.benchmarks.groups import param_path, structural_classes

    exponents(name)
    _check_optimizer(name, optimizer)
    if isinstance(width_mult, bool) or not isinstance(width_mult, int | float) or not width_mult > 0:
        raise UsageError(f"width_mult must be a number > 0, got {width_mult!r}")
    rule: dict[str, Any] = {}
    given = {"depth": depth, "base_depth": base_depth, "branches": branches or None}
    if depth_alpha is not None:
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise UsageError(f"depth_alpha needs {', '.join(missing)} (the depth rule for one's own model)")
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth < 2**31:
            raise UsageError(f"depth must be a positive integer below 2**31 (the model's blocks), got {depth!r}")
        if isinstance(branches, str) or not all(isinstance(b, str) for b in branches):
            raise UsageError(f"branches must be a tuple of glob patterns over parameter paths, got {branches!r}")
        rule = depth_rules(depth_alpha, depth=depth, base_depth=base_depth, optimizer=optimizer, eps=scales_eps(name))
    elif any(v is not None for v in given.values()):
        raise UsageError(f"{', '.join(k for k, v in given.items() if v is not None)} without depth_alpha is moot")
    classes = structural_classes(params, wider)
    table = _factors(name, float(width_mult), optimizer)
    paths = [param_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    for pattern in branches if rule else ():
        if not any(fnmatch.fnmatchcase(path, pattern) for path in paths):
            shown = ", ".join(paths[:5]) + (", ..." if len(paths) > 5 else "")
            raise UsageError(f"branch pattern {pattern!r} selects no parameter (paths: {shown})")
    depth_lr = next(iter(rule.get("lr_scale", {}).values()), 1.0)  # one factor for every branch parameter
    depth_eps = next(iter(rule.get("eps_scale", {}).values()), 1.0)

    def factor(path: Any, kind: int) -> float:  # a "fixed" kernel (no class of the preset) keeps 1
        text = param_path(path)
        value = float(table.get(classes[text], (1.0, 1.0, 1.0))[kind])
        if kind and rule and any(fnmatch.fnmatchcase(text, b) for b in branches):
            value *= depth_lr if kind == 1 else depth_eps
        return value

    kinds = {"init": 0, "lr": 1} | ({"eps": 2} if scales_eps(name) else {})
    out = {k: jax.tree_util.tree_map_with_path(lambda p, _, i=i: factor(p, i), params) for k, i in kinds.items()}
    return out | ({"branch_multiplier": rule["branch_multiplier"]} if rule else {})


# depth: the parameters of a residual branch (``models.ResNet``'s block naming; a scanned stack's
# ``blocks_k/block/...`` matches too, since ``*`` crosses ``/``)
BRANCH_PATTERNS = ("block*/conv_a/*", "block*/conv_b/*")
_FIXUP_BRANCH_PATTERNS = ("block*/bias_1a", "block*/bias_1b", "block*/bias_2a")  # before the multiplier
_DEPTH_FAMILIES = ("resnet",)


def check_depth(alpha: Any, base_depth: Any, *, family: str, depth: int | None, optimizer: Any) -> None:
    """Raises a one-line UsageError unless the depth rule applies (a residual model, alpha in [0, 1])."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
        raise UsageError(f"depth_alpha must be a number in [0, 1] (0.5 Depth-muP, 1 CompleteP), got {alpha!r}")
    if isinstance(base_depth, bool) or not isinstance(base_depth, int) or not 1 <= base_depth < 2**31:
        raise UsageError(
            f"depth_alpha needs base_depth, a positive integer below 2**31 (the tuned depth in blocks), "
            f"got {base_depth!r}"
        )
    if family in _DEPTH_FAMILIES and depth is None:
        raise UsageError(f"depth_alpha needs the {family}'s blocks (its depth L); the model sets none")
    if family not in _DEPTH_FAMILIES:
        raise UsageError(
            f"depth_alpha scales residual branches; model {family} has none (it takes: {', '.join(_DEPTH_FAMILIES)})"
        )
    if optimizer not in FAMILIES:
        raise UsageError(
            f"depth_alpha has no learning-rate rule for optimizer {optimizer!r}; it has one for: {', '.join(FAMILIES)}"
        )


def depth_rules(
    alpha: float,
    *,
    depth: int,
    base_depth: int,
    optimizer: str,
    residual_scale: bool = False,
    branch_biases: bool = False,
    eps: bool = False,
) -> dict[str, Any]:
    r"""The depth rule at ``depth`` blocks: the branch multiplier and the branch parameters' rates.

    With :math:`r = L / L_0`: branch multiplier :math:`r^{-\alpha}`, learning rate of every
    parameter inside a branch :math:`\times r^{2\alpha - 1}` (SGD-like) or :math:`r^{\alpha - 1}`
    (Adam-like): a branch's update moves its block's output by :math:`\eta g` (Adam: :math:`\eta`)
    times the multiplier, and the gradient reaching it carries the multiplier once more (SGD only),
    so :math:`L` blocks move the output by :math:`L r^{-2\alpha} \eta` (SGD) or :math:`L r^{-\alpha}
    \eta` (Adam) per step; the rates keep that at its base-depth value (TP6's :math:`\gamma = 0`
    for SGD and :math:`1/2` for Adam at :math:`\alpha = 1/2`).

    Args:
      alpha: The branch exponent (0.5 Depth-muP, 1 CompleteP).
      depth: :math:`L`, the model's residual blocks (all stages).
      base_depth: :math:`L_0`, the depth the hyper-parameters were tuned at.
      optimizer: Its family picks the learning-rate exponent.
      residual_scale: The model has a learned ``branch_scale`` per block (inside the multiplier).
      branch_biases: The model has Fixup's scalar biases (three of four inside the multiplier).
      eps: Also scale Adam's epsilon (a ``+eps`` preset): a branch parameter's gradient carries the
        multiplier :math:`r^{-\alpha}` (the residual stream's gradient stays :math:`O(1)` in depth),
        so its epsilon is multiplied by :math:`r^{-\alpha}` too (CompleteP's :math:`\epsilon
        \propto L^{-\alpha}`; Dey et al. 2025), for optimizers with an epsilon (:data:`EPS_OPTIMIZERS`).

    Returns:
      ``{"branch_multiplier": float, "lr_scale": {pattern: x}, "wd_scale": {pattern: x},
      "eps_scale": {pattern: x}}`` (multipliers of 1 left out; ``wd_scale`` for decoupled decay
      only, the inverse of the rate's).

    Example:
      >>> r = depth_rules(0.5, depth=16, base_depth=4, optimizer="adam")
      >>> r["branch_multiplier"], r["lr_scale"]["block*/conv_a/*"]
      (0.5, 0.5)
      >>> depth_rules(0.5, depth=16, base_depth=4, optimizer="sgd")["lr_scale"]  # TP6: SGD's rate stays
      {}
    """
    check_depth(alpha, base_depth, family="resnet", depth=depth, optimizer=optimizer)
    r = depth / base_depth
    exponent = (2 * alpha - 1) if FAMILIES[optimizer] == "sgd" else (alpha - 1)
    lr = r**exponent
    patterns = (
        BRANCH_PATTERNS
        + (_FIXUP_BRANCH_PATTERNS if branch_biases else ())
        + (("block*/branch_scale",) if residual_scale else ())
    )
    out: dict[str, Any] = {"branch_multiplier": r ** (-alpha), "lr_scale": {}, "wd_scale": {}, "eps_scale": {}}
    if eps and optimizer in EPS_OPTIMIZERS and r ** (-alpha) != 1.0:
        out["eps_scale"] = dict.fromkeys(patterns, r ** (-alpha))
    if lr != 1.0:
        out["lr_scale"] = dict.fromkeys(patterns, lr)
        if OPTIMIZERS[optimizer].decay == "decoupled":
            out["wd_scale"] = dict.fromkeys(patterns, 1.0 / lr)
    for value in (out["branch_multiplier"], lr):
        if not math.isfinite(value) or value <= 0:
            raise UsageError(f"depth_alpha {alpha}: a multiplier at depth {depth} is {value!r}")
    return out
