"""The optimizers a run can name, with their arguments: a table of optax transformations (no JAX import).

Every optimizer is the same chain, built by :func:`initbench.benchmarks.train.make_optimizer`::

    clip_by_global_norm(clip_norm)          if clip_norm > 0
    add_decayed_weights(weight_decay * wd)  coupled decay (L2 on the gradient), if the optimizer's
                                            decay is "coupled" and weight_decay > 0
    <direction>(**optimizer_args)           the optimizer's own transformation (below)
    add_decayed_weights(weight_decay * wd)  decoupled decay (AdamW, Lion), if its decay is "decoupled"
    scale_by_learning_rate(lr x schedule)
    x lr_scale                              per-parameter multipliers

``wd`` is the per-parameter weight-decay multiplier tree (``TrainSpec.wd_scale``). Coupled decay
is PyTorch's ``weight_decay`` of SGD, Adam and RMSprop (the decay goes through momentum and the
adaptive scaling); decoupled decay is Loshchilov & Hutter 2019's (AdamW; optax's ``adamw`` and
``lion``): ``p <- p - lr (direction + weight_decay p)``. With ``weight_decay = 0`` both are absent.

``sgd``, ``momentum`` and ``adam`` give bitwise the numbers of ``optax.sgd``/``optax.adam``
(the same transformations in the same order; tested).

The learning rate, momentum (``momentum``'s trace decay), weight decay and clipping norm are
per-member data (arrays inside one compiled program: ``spec.HYPER_PARAMETERS``); an optimizer's
``optimizer_args`` (Adam's betas and epsilon, Nesterov, ...) shape the program and are part of its
key.

Example:
  >>> OPTIMIZERS["adamw"].decay, sorted(OPTIMIZERS["adamw"].args)
  ('decoupled', ['b1', 'b2', 'eps', 'eps_root'])
  >>> check_args("adam", {"b2": 0.95})
  (('b2', 0.95),)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from initbench.inits.errors import UsageError, unknown_choice


@dataclass(frozen=True)
class Optimizer:
    """One entry of :data:`OPTIMIZERS`.

    Attributes:
      name: The name runs use (``train.optimizer``).
      direction: The optax factory of the optimizer's own transformation (``"scale_by_adam"``),
        or one of initbench's (:data:`initbench.benchmarks.train.DIRECTIONS`:
        ``scale_by_adam_atan2``), or None for plain SGD (the gradient itself).
      args: Its structural arguments and their defaults (``optimizer_args`` takes these names).
      fixed: Arguments always passed (``nesterov=True`` for ``nadam``).
      decay: ``coupled`` (weight decay added to the gradient) or ``decoupled`` (to the update).
      momentum: Whether the per-member ``momentum`` applies (it is the ``trace``'s decay).
      slots: Optimizer-state arrays per parameter (for the memory estimate).
      summary: One line for ``initbench list``.
      descends: The factory already negates its update (optax's ``adafactor`` ends in
        ``scale(-1)`` even without a learning rate); the chain negates it back before its own
        ``scale_by_learning_rate``.
    """

    name: str
    direction: str | None
    args: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    decay: Literal["coupled", "decoupled"] = "coupled"
    momentum: bool = False
    slots: int = 0
    summary: str = ""
    descends: bool = False


_ADAM = {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0}
OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o
    for o in (
        Optimizer("sgd", None, summary="plain SGD: p <- p - lr g"),
        Optimizer(
            "momentum",
            "trace",
            {"nesterov": False},
            momentum=True,
            slots=1,
            summary="heavy-ball SGD (optax.sgd with momentum; nesterov=true for Nesterov's); momentum 0.9 unless set",
        ),
        Optimizer("adam", "scale_by_adam", _ADAM, slots=2, summary="Adam (Kingma & Ba 2015), L2 weight decay"),
        Optimizer(
            "adamw",
            "scale_by_adam",
            _ADAM,
            decay="decoupled",
            slots=2,
            summary="Adam with decoupled weight decay (Loshchilov & Hutter 2019)",
        ),
        Optimizer(
            "nadam",
            "scale_by_adam",
            _ADAM,
            {"nesterov": True},
            slots=2,
            summary="Adam with Nesterov momentum (Dozat 2016)",
        ),
        Optimizer(
            "adam_atan2",
            "scale_by_adam_atan2",
            {"b1": 0.9, "b2": 0.999, "a": 1.27, "b": 1.0},
            decay="decoupled",
            slots=2,
            summary="Adam-atan2 (Everett et al. 2024): a atan2(m, b sqrt(v)), no epsilon, scale-invariant; "
            "decoupled weight decay",
        ),
        Optimizer(
            "adamax",
            "scale_by_adamax",
            {"b1": 0.9, "b2": 0.999, "eps": 1e-8},
            slots=2,
            summary="Adam's infinity-norm variant",
        ),
        Optimizer(
            "lion",
            "scale_by_lion",
            {"b1": 0.9, "b2": 0.99},
            decay="decoupled",
            slots=1,
            summary="sign of an interpolated momentum (Chen et al. 2023), decoupled weight decay",
        ),
        Optimizer(
            "rmsprop", "scale_by_rms", {"decay": 0.9, "eps": 1e-8}, slots=1, summary="RMSprop (Tieleman & Hinton 2012)"
        ),
        Optimizer(
            "adagrad",
            "scale_by_rss",
            {"initial_accumulator_value": 0.1, "eps": 1e-7},
            slots=1,
            summary="Adagrad (Duchi et al. 2011)",
        ),
        Optimizer(
            "adafactor",
            "adafactor",
            {
                "decay_rate": 0.8,
                "clipping_threshold": 1.0,
                "multiply_by_parameter_scale": True,
                "factored": True,
                "min_dim_size_to_factor": 128,
                "eps": 1e-30,
            },
            {"learning_rate": None},
            decay="decoupled",
            slots=1,
            summary="Adafactor (Shazeer & Stern 2018), optax's defaults; decoupled weight decay scaled by lr",
            descends=True,
        ),
    )
}


def get(name: str) -> Optimizer:
    """The entry of ``name``, or one line naming the valid ones."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise unknown_choice("optimizer", name, tuple(OPTIMIZERS))
    return OPTIMIZERS[name]


_POSITIVE = frozenset({"eps", "clipping_threshold", "a", "b"})  # in a denominator or a clip: 0 is not a value
_BELOW_ONE = frozenset({"b1", "b2", "decay", "decay_rate"})


def _fits(key: str, default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
    if not (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)):
        return False
    if key in _BELOW_ONE and value >= 1:
        return False
    return value > 0 if key in _POSITIVE else value >= 0


def check_args(name: str, args: Any) -> tuple[tuple[str, Any], ...]:
    """``args`` of optimizer ``name`` as sorted pairs, each checked, those equal to the default dropped.

    A float argument is a finite number >= 0, an integer one an integer > 0, a flag true or false;
    a beta or decay rate (``b1``, ``b2``, ``decay``, ``decay_rate``) is below 1.

    Raises:
      UsageError: an unknown optimizer, an argument it does not take, or a bad value.
    """
    opt = get(name)
    pairs = sorted(args.items()) if isinstance(args, dict) else args
    if not isinstance(pairs, tuple | list) or not all(isinstance(p, tuple | list) and len(p) == 2 for p in pairs):
        raise UsageError(f"optimizer_args takes a table of argument = value, e.g. {{b2 = 0.95}}; got {args!r}")
    out = []
    seen: set[Any] = set()
    for key, value in pairs:
        if not isinstance(key, str) or key not in opt.args:
            takes = ", ".join(opt.args) or "no arguments"
            raise UsageError(f"optimizer {name} takes no argument {key!r}; it takes: {takes}")
        if key in seen:
            raise UsageError(f"optimizer_args.{key} of {name} is given twice")
        seen.add(key)
        default = opt.args[key]
        if isinstance(default, bool):
            kind = "true or false"
        elif isinstance(default, int):
            kind = "an integer > 0"
        else:
            kind = f"a finite number {'>' if key in _POSITIVE else '>='} 0" + (" and < 1" if key in _BELOW_ONE else "")
        if not _fits(key, default, value):
            raise UsageError(f"optimizer_args.{key} of {name} must be {kind}, got {value!r}")
        value = float(value) if isinstance(default, float) else value
        if value != default:  # an argument at its default is the same run as the argument left out
            out.append((str(key), value))
    return tuple(out)


def kwargs(name: str, args: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """The keyword arguments of the optimizer's direction factory: defaults, ``args``, its fixed ones."""
    opt = get(name)
    return {**opt.args, **dict(args), **opt.fixed}
