"""Frozen, hashable descriptions of runs: ModelSpec, InitSpec, DataSpec, TrainSpec, RunSpec.

A :class:`RunSpec` describes one training run completely; ``run_id`` is a stable hash of its
resolved fields and :data:`NUMERICS_VERSION`, the version of the numerics (bump it when a
change alters the numbers a spec produces, so old results are not mistaken for new ones).
Variants come from ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import numbers
from typing import Any, Literal

import numpy as np

from initbench import inits
from initbench.inits.errors import UsageError, positive_int, unknown_choice

NUMERICS_VERSION = "6"  # 2: NaN after divergence, fixed chunk width; 3: im2col convs and member map on CPU;
# 4: inits.uniform() is jax's U[0, scale) (was U[-0.05, 0.05)), 16-bit draws in float32;
# 5: lr, momentum and weight decay are per-member data: runs differing only in them share a cohort
# (so its chunk width), and the rates enter the program as arrays, not constants;
# 6: a loss above divergence_factor x its step-0 value is a divergence (was: non-finite only)
Options = tuple[tuple[str, Any], ...]
# The optimizer's hyper-parameters that the trainer takes as per-member data (arrays over the
# members of one compiled program): runs that differ only in them share a cohort, so a
# learning-rate, momentum, weight-decay or clipping sweep compiles one program.
HYPER_PARAMETERS = ("lr", "momentum", "weight_decay", "clip_norm")
SCHEDULES = ("constant", "cosine", "warmup_cosine")
STEP_LIMIT = 2**31 - 1  # the trainer counts steps in int32


def options(**kwargs: Any) -> Options:
    """A sorted, hashable tuple of ``(name, value)`` pairs (lists become tuples)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))


def _json(pairs: Options) -> str:
    """Options as a canonical JSON object (sorted keys; empty object when none)."""
    return json.dumps(dict(pairs), sort_keys=True, default=str)


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model: family, activation, depth/width where the family has them, other fields.

    Attributes:
      family: ``mlp``, ``lenet5``, ``plain_cnn`` or ``resnet``.
      activation: Activation name (``"leaky_relu:0.2"`` for a parameter).
      depth: Hidden layers (mlp) or identical convs (plain_cnn ``vanilla``); None if n/a.
      width: Units (mlp) or channels; None if n/a.
      extra: Other family fields as sorted pairs (``options(preset="he22_cpu")``).
      plugin: For a user's model (``package.module:attribute`` as ``family``:
        :mod:`initbench.benchmarks.plugin_model`), its distribution version and module digest
        (set on construction; in the run_id); empty for initbench's families.
    """

    family: str
    activation: str = "relu"
    depth: int | None = None
    width: int | None = None
    extra: Options = ()
    plugin: str = ""

    def __post_init__(self) -> None:
        # a user's model (``package.module:attribute``) is identified by its code too: version and file digest
        from initbench.inits.registry import expand, is_plugin, plugin_fingerprint
        from initbench.models.catalog import FAMILIES

        object.__setattr__(self, "family", expand(self.family, FAMILIES))  # an entry point's name: its target
        if not self.plugin and is_plugin(self.family):
            try:
                object.__setattr__(self, "plugin", plugin_fingerprint(self.family))
            except ImportError:
                pass  # the model check names the import failure in one line

    def config(self) -> dict[str, Any]:
        """Keyword arguments for :func:`models.build` (without the initializers)."""
        cfg: dict[str, Any] = {"activation": self.activation, **dict(self.extra)}
        if self.depth is not None:
            cfg["depth"] = self.depth
        if self.width is not None:
            cfg["width"] = self.width
        return cfg

    @property
    def label(self) -> str:
        """Short display name, e.g. ``mlp(depth=3, width=128)``."""
        parts = [f"{k}={v}" for k, v in (("depth", self.depth), ("width", self.width)) if v is not None]
        parts += [f"{k}={_fmt(v)}" for k, v in self.extra]
        return f"{self.family}({', '.join(parts)})" if parts else self.family


@dataclasses.dataclass(frozen=True)
class InitSpec:
    """An initialization: a registry name and its arguments, for kernels and biases.

    Attributes:
      name: Registry name of the kernel initializer.
      args: Its arguments as sorted pairs.
      bias: Registry name of the bias initializer (``torch_default`` for PyTorch's).
      bias_args: Its arguments as sorted pairs (``options(stddev=0.2236)`` for sigma_b^2 = 0.05).
      plugin: For a plug-in initializer (``package.module:attribute`` as ``name`` or ``bias``), its
        distribution version and module digest (set on construction): part of the run_id, so
        results stay honest when the plug-in's code changes; empty for the built-ins.
      scale: Per-parameter multipliers of the initial values as sorted ``(selector, multiplier)``
        pairs, selected like ``TrainSpec.lr_scale`` (layer class or path pattern; multipliers
        compose; >= 0): ``{input = 1.41}`` rescales the first kernel, ``{readout = 0}`` starts
        the classifier at zero. Applied to the drawn variables: the parameters no rule selects
        keep their exact draws, the selected ones are multiplier x draw (within one float
        rounding: XLA may fold the multiplier into the init's own scale); refused for
        model-level schemes (they set their own scales). The TOML key ``init_scale``,
        ``--init-scale`` on the command line.
    """

    name: str
    args: Options = ()
    bias: str = "zeros"
    bias_args: Options = ()
    scale: Options = ()
    plugin: str = ""

    def __post_init__(self) -> None:
        # a plug-in (``package.module:attribute``) is identified by its code too: version and file digest
        from initbench.inits.registry import FAN_IN_BIASES, INITS, SCHEMES, expand, is_plugin, plugin_fingerprint

        builtin = (*INITS.names(), *SCHEMES.names(), *FAN_IN_BIASES)
        for field in ("name", "bias"):  # an installed entry point's name is its target (one run_id for both)
            object.__setattr__(self, field, expand(getattr(self, field), builtin))
        if not self.plugin and (is_plugin(self.name) or is_plugin(self.bias)):
            try:
                prints = [f"{t}={plugin_fingerprint(t)}" for t in (self.name, self.bias) if is_plugin(t)]
            except ImportError:
                prints = []  # validate() names the import failure in one line
            object.__setattr__(self, "plugin", ";".join(prints))
        if isinstance(self.scale, dict):
            object.__setattr__(self, "scale", tuple(sorted(self.scale.items())))
        try:  # numpy or int multipliers: one form, one run_id (validate() names a bad one)
            object.__setattr__(self, "scale", check_lr_scale(self.scale, "init_scale", zero=True))
        except UsageError:
            pass

    @property
    def scheme(self) -> Any:
        """The model-level scheme (``inits.SCHEMES``) this init names, or None for a per-tensor initializer."""
        from initbench.inits.registry import SCHEMES, plugin_scheme

        return SCHEMES[self.name] if self.name in SCHEMES else plugin_scheme(self.name)

    def base(self) -> tuple[str, dict[str, Any]]:
        """A scheme's per-tensor initializer: ``args["base"]`` (``"normal(stddev=0.5)"``) or its default."""
        from initbench.benchmarks.grid_flags import init_item

        text = dict(self.args).get("base", self.scheme.base)
        if not isinstance(text, str):
            raise UsageError(
                f"{self.name}: base must be an initializer like 'he_normal' or 'normal(stddev=0.5)', got {text!r}"
            )
        item = init_item(text)
        if isinstance(item, str):
            return item, {}
        return item.pop("name"), item

    def scheme_options(self) -> dict[str, Any]:
        """The scheme's own arguments (every argument but ``base``)."""
        return {k: v for k, v in self.args if k != "base"}

    def architecture(self, family: str, config: dict[str, Any]) -> dict[str, Any]:
        """A model's fields with those this init's scheme needs (Fixup's multipliers and scalar biases).

        Raises:
          UsageError: the scheme does not apply to ``family``, the model keeps a normalization a
            residual scheme replaces, or it sets one of the scheme's fields to another value.
        """
        scheme = self.scheme
        config = dict(config)
        if scheme is None:
            return config
        from initbench.inits.registry import is_plugin

        if is_plugin(family) and not is_plugin(scheme.name):  # a plug-in scheme knows the user's model
            raise UsageError(
                f"init {scheme.name} is a model-level scheme for initbench's models; the plug-in model {family} "
                "has no layer-naming contract for it (not yet)"
            )
        if scheme.families and family not in scheme.families:
            raise UsageError(
                f"init {scheme.name} is for {', '.join(scheme.families)} models (residual branches), got {family}"
            )
        if config.get("scan") and (family == "mlp" or not scheme.stacks):
            # a scheme sets each layer's own kernel (unscanned is the default: same cohort); Fixup,
            # SkipInit and ZerO handle a ResNet's scanned residual stacks block by block
            config["scan"] = False
        if scheme.families and not scheme.normalization and config.get("normalization", "batchnorm") != "none":
            raise UsageError(
                f"init {scheme.name} replaces normalization: set the {family}'s normalization = 'none' "
                f"(got {config.get('normalization', 'batchnorm')!r})"
            )
        for name, value in scheme.fields(family).items():
            if name in config and config[name] != value:
                raise UsageError(
                    f"init {scheme.name} sets the {family}'s {name} = {value!r}; the model sets {config[name]!r}"
                )
            config[name] = value
        return config

    def kernel(self) -> inits.Init:
        """The kernel initializer (a scheme's: its ``base``, which the model is built with)."""
        if self.scheme is not None:
            name, args = self.base()
            return inits.get(name, **args)
        return inits.get(self.name, **dict(self.args))

    def bias_init(self) -> str | inits.Init:
        """What the models take as ``bias_init``: the name (fan-in dependent ones need the layer) or the Init."""
        return inits.get(self.bias, **dict(self.bias_args)) if self.bias_args else self.bias

    @property
    def bias_args_label(self) -> str:
        """``stddev=0.2`` style bias arguments (empty when none)."""
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.bias_args)

    @property
    def args_label(self) -> str:
        """``stddev=0.01`` style arguments (empty when none)."""
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.args)

    @property
    def label(self) -> str:
        """Display name, e.g. ``normal(stddev=0.01)``."""
        return f"{self.name}({self.args_label})" if self.args else self.name

    def validate(self) -> None:
        """Builds the initializers once, so bad names and arguments fail before any work.

        A scheme's options are checked against its signature here; their values when the
        runner traces the scheme on its model, before the lock.
        """
        if self.scheme is not None:
            self.scheme.check_options(self.scheme_options())
        self.kernel()
        inits.get_bias(self.bias, fan_in=1, **dict(self.bias_args))
        check_lr_scale(self.scale, "init_scale", zero=True)
        if self.scale and self.scheme is not None:
            raise UsageError(
                f"init_scale multiplies a per-tensor initializer's draws; {self.name} is a model-level "
                "scheme that sets its own scales (use its base, or a per-tensor init)"
            )

    @property
    def scale_label(self) -> str:
        """``input=1.41, readout=0`` (empty when no multipliers)."""
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.scale)


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A dataset and how batches are drawn.

    Attributes:
      name: Dataset registry name (``benchmarks.data.DATASETS``).
      batch_size: Examples per step.
      extra: Loader options as sorted pairs (``options(n_train=2000)``).
      eval_examples: Cap on test examples evaluated at each eval point (None: all).
      plugin: For a plug-in loader (``package.module:attribute``), its distribution version and
        module digest (set on construction, part of the run_id); empty for the registered datasets.
    """

    name: str
    batch_size: int = 128
    extra: Options = ()
    eval_examples: int | None = None
    plugin: str = ""

    def __post_init__(self) -> None:
        from initbench.benchmarks.data.base import DATASETS
        from initbench.inits.registry import expand, is_plugin, plugin_fingerprint

        object.__setattr__(self, "name", expand(self.name, DATASETS))  # an entry point's name is its target
        if not self.plugin and is_plugin(self.name):
            try:
                object.__setattr__(self, "plugin", plugin_fingerprint(self.name))
            except ImportError:
                pass  # the dataset check names the import failure in one line


def check_lr_scale(rules: Any, field: str = "lr_scale", *, zero: bool = False) -> Options:
    """``rules`` as sorted ``(selector, multiplier)`` pairs, each a finite number > 0 (>= 0 with ``zero``)."""
    pairs = sorted(rules.items()) if isinstance(rules, dict) else rules
    if not isinstance(pairs, tuple | list) or not all(isinstance(p, tuple | list) and len(p) == 2 for p in pairs):
        raise UsageError(f"{field} takes a table of selector = multiplier, e.g. {{scalar = 0.1}}; got {rules!r}")
    seen: set[str] = set()
    for selector, multiplier in pairs:
        if not isinstance(selector, str) or not selector.strip():
            raise UsageError(f"{field}: a selector is a layer class or a path pattern, got {selector!r}")
        if selector in seen:  # two multipliers for one selector: which one was meant?
            raise UsageError(f"{field}: selector {selector!r} is given twice")
        seen.add(selector)
        if not (_number(multiplier) and math.isfinite(multiplier) and (multiplier >= 0 if zero else multiplier > 0)):
            raise UsageError(
                f"{field}.{selector} must be a finite number {'>=' if zero else '>'} 0, got {multiplier!r}"
            )
        _float32(f"{field}.{selector}", float(multiplier))
        if multiplier != 0 and abs(multiplier) < _FLOAT32_TINY:  # it would flush to 0 in float32
            raise UsageError(
                f"{field}.{selector} must be 0 or at least float32's smallest normal number "
                f"{_FLOAT32_TINY:.3g}, got {multiplier!r}"
                if zero
                else f"{field}.{selector} must be at least float32's smallest normal number {_FLOAT32_TINY:.3g} "
                f"(a smaller one is 0 in float32), got {multiplier!r}"
            )
    return tuple(sorted((str(k), float(v)) for k, v in pairs))


def _number(value: Any) -> bool:
    """A real number (Python or numpy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


_FLOAT32_MAX = float(np.finfo(np.float32).max)  # the trainer computes in float32
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # below it CPUs flush to zero


def _float32(name: str, value: float) -> None:
    if abs(value) > _FLOAT32_MAX:
        raise UsageError(f"{name} must fit in float32 (|x| <= {_FLOAT32_MAX:.3g}), got {value!r}")


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """Optimizer, schedule, cadence and the training knobs.

    Construction resolves defaults, so one run has one form (one run_id): ``momentum`` is the
    momentum optimizer's 0.9 when unset and None for the optimizers without one; a warm-up equal
    to the schedule's default is None; ``cosine`` with a warm-up is ``warmup_cosine``.

    Attributes:
      optimizer: A name of :data:`initbench.benchmarks.optimizers.OPTIMIZERS` (``sgd``,
        ``momentum``, ``adam``, ``adamw``, ``adam_atan2``, ``nadam``, ``adamax``, ``lion``, ``rmsprop``,
        ``adagrad``, ``adafactor``).
      lr: Peak learning rate.
      steps: Training steps.
      eval_every: Evaluate every this many steps (and at step 0).
      schedule: ``constant``, ``cosine`` (decay to 0) or ``warmup_cosine`` (cosine after a
        linear warm-up, 5% of the steps unless ``warmup_steps`` says).
      momentum: The ``momentum`` optimizer's trace decay (0.9 when unset); None for the others
        (setting it for them is an error: Adam's is ``optimizer_args.b1``).
      weight_decay: Weight decay (0 for none): coupled (L2 on the gradient, PyTorch's SGD/Adam
        ``weight_decay``) or decoupled (AdamW, Lion, Adafactor), as the optimizer's entry says.
      lr_scale: Per-parameter learning-rate multipliers as sorted ``(selector, multiplier)``
        pairs: a layer class (``input``, ``hidden``, ``readout``, ``bias``, ``scalar``) or a path
        pattern (``head/*``); a parameter's rate is ``lr`` times the product of the multipliers
        that select it (:mod:`initbench.benchmarks.groups`). Per-member data like ``lr``.
      optimizer_args: The optimizer's own arguments as sorted pairs (``(("b2", 0.95),)``),
        defaults dropped (:func:`initbench.benchmarks.optimizers.check_args`).
      wd_scale: Per-parameter weight-decay multipliers (>= 0: ``{bias = 0, scalar = 0}``
        decays kernels only), selected like ``lr_scale``; dropped when ``weight_decay`` is 0.
      clip_norm: Clip each step's gradient to this global norm before the optimizer (0: off).
      warmup_steps: Linear warm-up from 0 to ``lr`` over this many steps (None: the schedule's
        default, 5% for ``warmup_cosine`` and 0 otherwise).
      label_smoothing: Cross-entropy against labels smoothed by this much (Szegedy et al. 2016).
      divergence_factor: A run diverges when its training loss turns non-finite or exceeds this
        times its training loss at step 0 (``inf``: only non-finite losses).
      layer_records: Also record, at every evaluation, each layer's kernel norm
        (``weight_norm``) and the mean norm of its kernel's gradient over the steps since the last
        evaluation (``grad_norm``), as rows with the layer's module path in ``layer``.
      eps_scale: Per-parameter multipliers (> 0) of the optimizer's epsilon, selected like
        ``lr_scale``, for the optimizers whose update divides by ``sqrt(v) + eps``
        (:data:`EPS_OPTIMIZERS`): a parameter's epsilon is ``eps x`` its multipliers (Everett et
        al. 2024's "epsilon underflow": scale it with the gradient). Per-member data like ``lr``.
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    steps: int = 1000
    eval_every: int = 100
    schedule: Literal["constant", "cosine", "warmup_cosine"] = "constant"
    momentum: float | None = None
    weight_decay: float = 0.0
    lr_scale: Options = ()
    optimizer_args: Options = ()
    wd_scale: Options = ()
    clip_norm: float = 0.0
    warmup_steps: int | None = None
    label_smoothing: float = 0.0
    divergence_factor: float = 100.0
    layer_records: bool = False
    eps_scale: Options = ()

    def __post_init__(self) -> None:
        # resolves defaults without judging values (validate() does, with one line per bad value)
        from initbench.benchmarks.optimizers import OPTIMIZERS, check_args

        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("lr", "momentum", "weight_decay", "clip_norm", "label_smoothing", "divergence_factor"):
            value = getattr(self, name)
            if _number(value) and not isinstance(value, float):  # numpy and int: one form, one run_id
                put(name, float(value))
        for name in ("steps", "eval_every", "warmup_steps"):
            value = getattr(self, name)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_ | int):
                put(name, int(value))
        entry = OPTIMIZERS.get(self.optimizer) if isinstance(self.optimizer, str) else None
        if entry is not None and entry.momentum and self.momentum is None:
            put("momentum", 0.9)
        if isinstance(self.optimizer_args, dict):
            put("optimizer_args", tuple(sorted(self.optimizer_args.items())))
        if entry is not None:
            try:
                put("optimizer_args", check_args(self.optimizer, self.optimizer_args))
            except UsageError:
                pass  # validate() says what is wrong
        for name in ("lr_scale", "wd_scale", "eps_scale"):
            if isinstance(getattr(self, name), dict):
                put(name, tuple(sorted(getattr(self, name).items())))
        if _number(self.weight_decay) and self.weight_decay == 0:
            try:  # no decay to scale: the same run (its values are checked first: validate() names a bad one)
                check_lr_scale(self.wd_scale, "wd_scale", zero=True)
                put("wd_scale", ())
            except UsageError:
                pass
        if self.schedule == "cosine" and isinstance(self.warmup_steps, int) and self.warmup_steps > 0:
            put("schedule", "warmup_cosine")
        if self.schedule == "warmup_cosine" and self.warmup_steps == 0:
            put("schedule", "cosine")
            put("warmup_steps", None)
        if self.warmup_steps is not None and self.warmup_steps == self._default_warmup():
            put("warmup_steps", None)

    def _default_warmup(self) -> int | None:
        if self.schedule != "warmup_cosine":
            return 0
        if not isinstance(self.steps, int) or isinstance(self.steps, bool):
            return None
        return max(1, self.steps // 20) if self.steps > 1 else 0  # a one-step run has no room to warm up

    @property
    def warmup(self) -> int:
        """The warm-up's length in steps (``warmup_steps`` or the schedule's default)."""
        return int(self.warmup_steps if self.warmup_steps is not None else (self._default_warmup() or 0))

    @property
    def program(self) -> tuple:
        """What the compiled training program depends on: every field but the per-member data.

        Per-member data: ``HYPER_PARAMETERS``' values, ``lr_scale``, ``wd_scale``, ``eps_scale``
        and ``divergence_factor``. Whether weight decay and clipping are on at all is part of the
        program (the update has one more term); their values are data.
        """
        return (
            self.optimizer,
            self.optimizer_args,
            self.steps,
            self.eval_every,
            self.schedule,
            self.warmup,
            self.weight_decay > 0,
            self.clip_norm > 0,
            self.label_smoothing,
            self.layer_records,
        )

    def hyper(self) -> dict[str, float]:
        """The values of ``HYPER_PARAMETERS`` (what varies between the members of one program)."""
        return {name: float(getattr(self, name) or 0.0) for name in HYPER_PARAMETERS}

    def validate(self) -> None:
        """Checks every field (one line naming the value and the valid choices)."""
        from initbench.benchmarks.optimizers import OPTIMIZERS, check_args, get

        entry = get(self.optimizer)
        check_args(self.optimizer, self.optimizer_args)
        if self.schedule not in SCHEDULES:
            raise unknown_choice("schedule", self.schedule, SCHEDULES)
        for name, value in (("steps", self.steps), ("eval_every", self.eval_every)):
            positive_int(name, value)
            if value > STEP_LIMIT:  # beyond it the step counter wraps: a run that would never end
                raise UsageError(f"{name} must be at most {STEP_LIMIT} (the int32 step counter), got {value}")
        if not (_number(self.lr) and math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"lr must be a finite positive number, got {self.lr!r}")
        _float32("lr", self.lr)
        if self.momentum is not None and not entry.momentum:
            with_momentum = ", ".join(n for n, o in OPTIMIZERS.items() if o.momentum)
            raise UsageError(
                f"momentum is an argument of optimizer {with_momentum}; {self.optimizer} has none "
                f"(got momentum = {self.momentum!r}; Adam-like optimizers take optimizer_args.b1)"
            )
        if self.momentum is not None and not (
            _number(self.momentum) and 0 <= self.momentum < 1 and np.float32(self.momentum) < 1
        ):  # 0.99999999999 is 1.0 in float32: no decay at all
            raise UsageError(f"momentum must be in [0, 1) (in float32), got {self.momentum!r}")
        wd = self.weight_decay
        if not (_number(wd) and math.isfinite(wd) and wd >= 0):
            raise UsageError(f"weight_decay must be a finite number >= 0, got {wd!r}")
        _float32("weight_decay", wd)
        check_lr_scale(self.lr_scale)
        check_lr_scale(self.wd_scale, "wd_scale", zero=True)
        check_lr_scale(self.eps_scale, "eps_scale")
        if self.eps_scale and self.optimizer not in EPS_OPTIMIZERS:
            raise UsageError(
                f"eps_scale multiplies an epsilon added to sqrt(v); optimizer {self.optimizer} has none "
                f"(it applies to: {', '.join(EPS_OPTIMIZERS)})"
            )
        if not (_number(self.clip_norm) and math.isfinite(self.clip_norm) and self.clip_norm >= 0):
            raise UsageError(f"clip_norm must be a finite number >= 0 (0: no clipping), got {self.clip_norm!r}")
        _float32("clip_norm", self.clip_norm)
        if self.warmup_steps is not None:
            w = self.warmup_steps
            if not (isinstance(w, numbers.Integral) and not isinstance(w, bool | np.bool_) and 0 <= w < self.steps):
                raise UsageError(f"warmup_steps must be an integer in [0, steps = {self.steps}), got {w!r}")
        ls = self.label_smoothing
        if not (_number(ls) and 0 <= ls < 1):
            raise UsageError(f"label_smoothing must be in [0, 1), got {ls!r}")
        if not isinstance(self.layer_records, bool):
            raise UsageError(f"layer_records must be true or false, got {self.layer_records!r}")
        df = self.divergence_factor
        if not (_number(df) and not math.isnan(df) and df > 1):
            raise UsageError(f"divergence_factor must be a number > 1 (inf: only non-finite losses), got {df!r}")


# the optimizers whose update divides by sqrt(v) + eps (scaling the gradient by 1/s is eps x s: eps_scale)
EPS_OPTIMIZERS = ("adam", "adamw", "nadam", "adamax")


def residual_depth(family: str, config: dict[str, Any]) -> int | None:
    """A residual model's number of blocks, all stages (the depth rule's L); None for other families."""
    if family != "resnet" or "blocks" not in config:
        return None
    return int(sum(config["blocks"]))


# fields that came after the first run_ids: left out of a run's identity when empty, so a run
# without them keeps its run_id (multipliers, Adam's epsilon rules, plug-in inits, datasets and models)
_LATER_FIELDS = {"init": ("scale", "plugin"), "train": ("eps_scale",), "data": ("plugin",), "model": ("plugin",)}


class _Exact:
    """A sub-spec as a cache key by its type and repr: equal specs can differ in the payload (1 vs 1.0)."""

    __slots__ = ("key", "part")

    def __init__(self, part: Any) -> None:
        self.part = part
        self.key = (type(part), repr(part))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Exact) and self.key == other.key


@functools.lru_cache(maxsize=4096)
def _cached_identity(part: _Exact, later: tuple[str, ...]) -> dict[str, Any]:
    out = dataclasses.asdict(part.part)
    for name in later:
        if not getattr(part.part, name):
            del out[name]
    return out


def _part_identity(part: Any, later: tuple[str, ...]) -> dict[str, Any]:
    """A sub-spec's part of :attr:`RunSpec.run_id`'s payload (read-only: shared between the runs that share the part).

    The runs of a cohort share their model, data and training sub-specs: each distinct one is
    converted once (``dataclasses.asdict`` dominated a 256-member cohort's host time). Distinct
    means a distinct ``repr``, not ``!=``: ``stddev=1`` and ``stddev=1.0`` are equal specs whose
    payloads, and so run_ids, differ.
    """
    return _cached_identity(_Exact(part), later)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run.

    Attributes:
      suite: Experiment name (the results' `suite` column).
      benchmark: Benchmark within the suite.
      model: The model.
      init: The initialization.
      data: The data.
      train: The optimization.
      seed: Seed of the run: its initial weights and its data order.
      parametrization: ``(("base_width", n), ("name", preset))`` or empty: how the init scale
        and the learning rate of each layer class move with the model's width
        (:mod:`initbench.benchmarks.parametrization`; the TOML keys ``parametrization`` and
        ``base_width``). Its multipliers compose with ``init.scale``, ``train.lr_scale`` and
        ``train.wd_scale`` (:meth:`scale_rules`).
    """

    suite: str
    benchmark: str
    model: ModelSpec
    init: InitSpec
    data: DataSpec
    train: TrainSpec
    seed: int
    parametrization: Options = ()

    def __post_init__(self) -> None:
        p = self.parametrization
        if isinstance(p, dict):
            p = tuple(p.items())
        if isinstance(p, tuple | list) and all(isinstance(e, tuple | list) and len(e) == 2 for e in p):
            pairs = [(k, int(v) if isinstance(v, np.integer) else v) for k, v in p]  # numpy ints: one run_id
            pairs = [  # depth_alpha 1 and 1.0 are one run
                (
                    k,
                    float(v) + 0.0  # -0.0 is 0.0: one run_id
                    if k == "depth_alpha" and isinstance(v, float | int | np.floating) and not isinstance(v, bool)
                    else v,
                )
                for k, v in pairs
            ]
            try:  # a user's table in its one spelling: one run_id (validate() names a bad one)
                from initbench.benchmarks.parametrization import canonical

                pairs = [(k, canonical(v) if k == "name" else v) for k, v in pairs]
            except UsageError:
                pass
            p = tuple(sorted(pairs, key=lambda kv: str(kv[0])))
            if ("name", "sp") in p:  # SP at any base width is one run (a bad one is kept: validate() names it)
                width = dict(p).get("base_width")
                if isinstance(width, int) and not isinstance(width, bool) and 1 <= width < 2**31:
                    p = tuple(kv for kv in p if kv[0] != "base_width")
        object.__setattr__(self, "parametrization", p)

    def scale_rules(self, field: str) -> Options:
        """``field``'s rules (``init_scale``, ``lr_scale``, ``wd_scale``, ``eps_scale``): own, then parametrization's.

        Rules compose by product (:func:`initbench.benchmarks.groups.lr_scale_tree`), so a class
        named by both gets both multipliers.
        """
        own = self.init.scale if field == "init_scale" else getattr(self.train, field)
        if not self.parametrization or (field == "wd_scale" and self.train.weight_decay == 0):
            return own
        from initbench.benchmarks import parametrization

        p = dict(self.parametrization)
        extra = parametrization.rules(
            p.get("name"), width=self.model.width, base_width=p.get("base_width"), optimizer=self.train.optimizer
        )[field]
        depth = self._depth_rules()
        deep = depth.get(field, {}) if depth is not None else {}
        return tuple(own) + tuple(sorted(extra.items())) + tuple(sorted(deep.items()))

    def _depth_rules(self) -> dict[str, Any] | None:
        """The parametrization's depth rule at this model's depth (None without ``depth_alpha``)."""
        p = dict(self.parametrization)
        if "depth_alpha" not in p:
            return None
        from initbench.benchmarks import parametrization

        config = self.init.architecture(self.model.family, self.model.config())
        return parametrization.depth_rules(
            p["depth_alpha"],
            depth=residual_depth(self.model.family, config),
            base_depth=p.get("base_depth"),
            optimizer=self.train.optimizer,
            residual_scale=config.get("residual_scale") is not None,
            branch_biases=bool(config.get("branch_biases")),
            eps=parametrization.scales_eps(str(p.get("name", ""))),
        )

    @property
    def run_id(self) -> str:
        """Stable hash of the resolved spec and the numerics version.

        The hash of ``dataclasses.asdict(self)`` without the fields that came later when they are
        empty (:data:`_LATER_FIELDS`, and ``parametrization``), so older runs keep their run_ids.
        """
        spec = {
            f.name: _part_identity(getattr(self, f.name), _LATER_FIELDS.get(f.name, ()))
            if dataclasses.is_dataclass(getattr(self, f.name))
            else getattr(self, f.name)
            for f in dataclasses.fields(self)
        }
        if not self.parametrization:  # the field came later, like _LATER_FIELDS
            del spec["parametrization"]
        payload = json.dumps({"spec": spec, "numerics": NUMERICS_VERSION}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def architecture(self) -> tuple[tuple[str, Any], ...]:
        """The model's fields as built: its own, those its init's scheme sets, the depth rule's branch multiplier."""
        config = self.init.architecture(self.model.family, self.model.config())
        depth = self._depth_rules()
        if depth is not None and depth["branch_multiplier"] != 1.0:
            config["branch_multiplier"] = depth["branch_multiplier"]
        return tuple(sorted(config.items()))

    @property
    def cohort_key(self) -> tuple:
        """Runs with equal keys are trained together by one compiled program.

        Everything but the init, the seed and the optimizer's hyper-parameter values
        (``TrainSpec.program``), plus the architecture an init's scheme changes (Fixup's
        multipliers and scalar biases), and whether the run scales Adam's epsilon (:attr:`scales_eps`).
        """
        return (
            self.suite,
            self.benchmark,
            self.model,
            self.architecture,
            self.data,
            self.train.program,
            self.scales_eps,
        )

    @property
    def scales_eps(self) -> bool:
        """Whether the run has ``eps_scale`` rules (its own or its parametrization's) for an optimizer with an epsilon.

        Part of the program: only such runs carry the per-parameter epsilon step, so every other
        run's program, and its numbers, are exactly what they were without the feature.
        """
        return self.train.optimizer in EPS_OPTIMIZERS and bool(self.scale_rules("eps_scale"))

    def identity(self) -> dict[str, Any]:
        """The identity columns of this run's result rows (``results.RUNS``): every field that makes runs differ."""
        m, i, d, t = self.model, self.init, self.data, self.train
        return {
            "run_id": self.run_id,
            "numerics_version": NUMERICS_VERSION,
            "suite": self.suite,
            "benchmark": self.benchmark,
            "model": m.label,
            "family": m.family,
            "depth": m.depth,
            "width": m.width,
            "activation": m.activation,
            "model_options": _json(m.extra),
            "init": i.name,
            "init_args": i.args_label,
            "bias_init": i.bias,
            "bias_args": i.bias_args_label,
            "init_scale": _json(i.scale),
            "parametrization": dict(self.parametrization).get("name", ""),
            "base_width": dict(self.parametrization).get("base_width"),
            "depth_alpha": dict(self.parametrization).get("depth_alpha"),
            "base_depth": dict(self.parametrization).get("base_depth"),
            "dataset": d.name,
            "dataset_options": _json(d.extra),
            "batch_size": d.batch_size,
            "eval_examples": d.eval_examples,
            "optimizer": t.optimizer,
            "optimizer_args": _json(t.optimizer_args),
            "lr": float(t.lr),
            "momentum": None if t.momentum is None else float(t.momentum),
            "weight_decay": float(t.weight_decay),
            "lr_scale": _json(t.lr_scale),
            "wd_scale": _json(t.wd_scale),
            "eps_scale": _json(t.eps_scale),
            "clip_norm": float(t.clip_norm),
            "label_smoothing": float(t.label_smoothing),
            "divergence_factor": float(t.divergence_factor),
            "layer_records": bool(t.layer_records),
            "schedule": t.schedule,
            "warmup_steps": t.warmup,
            "steps": t.steps,
            "eval_every": t.eval_every,
            "seed": self.seed,
        }

    def validate(self) -> None:
        """Checks every name and number before any work starts (ValueError/TypeError)."""
        from initbench.models.activations import parse as parse_activation  # deferred: Flax import

        parse_activation(self.model.activation)
        self.init.validate()
        self.train.validate()
        positive_int("batch_size", self.data.batch_size)
        if self.data.eval_examples is not None:
            positive_int("eval_examples", self.data.eval_examples)
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            # the trainer draws every member's data key in one call on uint32 seeds
            raise UsageError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        from initbench.inits.registry import is_plugin

        if is_plugin(self.model.family) and self.parametrization:  # before the width check: the true reason
            raise UsageError(
                f"a parametrization goes by layer class; the plug-in model {self.model.family} has no "
                "layer-naming contract (not yet)"
            )
        self.check_parametrization()
        if is_plugin(self.model.family):
            from initbench.benchmarks.groups import CLASSES

            for field, rules in (
                ("init_scale", self.init.scale),
                ("lr_scale", self.train.lr_scale),
                ("wd_scale", self.train.wd_scale),
                ("eps_scale", self.train.eps_scale),
            ):
                classes = sorted({k for k, _ in rules} & {*CLASSES, "vector"})
                if classes:
                    raise UsageError(
                        f"{field} selects layer class {classes[0]}; the plug-in model {self.model.family} has no "
                        "layer classes: select its parameters by path pattern (e.g. '*/Dense_0/*')"
                    )

    def check_parametrization(self) -> None:
        """Raises a one-line UsageError unless the parametrization applies to this model, init and optimizer."""
        p = self.parametrization
        if not p:
            return
        from initbench.benchmarks import parametrization

        if not (isinstance(p, tuple) and all(isinstance(e, tuple) and len(e) == 2 for e in p)):
            raise UsageError(
                f"parametrization takes a name and a base_width, e.g. {{'name': 'mup', 'base_width': 64}}; got {p!r}"
            )
        fields = dict(p)
        if set(fields) - {"name", "base_width", "depth_alpha", "base_depth"} or "name" not in fields:
            raise UsageError(
                f"parametrization takes a name and a base_width (and optionally depth_alpha, base_depth), "
                f"got {fields!r}"
            )
        parametrization.check(
            fields["name"],
            fields.get("base_width"),
            width=self.model.width,
            optimizer=self.train.optimizer,
            scheme=self.init.name if self.init.scheme is not None else None,
        )
        if "base_depth" in fields and "depth_alpha" not in fields:
            raise UsageError(
                f"base_depth needs depth_alpha (0.5 Depth-muP, 1 CompleteP), got base_depth {fields['base_depth']!r}"
            )
        if "depth_alpha" in fields:
            config = self.init.architecture(self.model.family, self.model.config())
            if "branch_multiplier" in config:
                raise UsageError(
                    f"depth_alpha sets the branch multiplier; drop the model's branch_multiplier "
                    f"({config['branch_multiplier']!r})"
                )
            parametrization.check_depth(
                fields["depth_alpha"],
                fields.get("base_depth"),
                family=self.model.family,
                depth=residual_depth(self.model.family, config),
                optimizer=self.train.optimizer,
            )
