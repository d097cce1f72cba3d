"""Registries: one pattern for every name -> entry table in initbench, and the initializer registry.

A :class:`Registry` is a static, ordered table of frozen entries built at import time. Entries
name what they register by a ``"module:attribute"`` target that is imported only when used,
so listing a registry (``initbench list ...``) imports neither JAX nor Flax. The four
registries: initializers (:data:`INITS`, here), model families (``initbench.models.catalog``),
datasets (``initbench.benchmarks.data``) and reproductions (``initbench.benchmarks.reproduce``).
Experiments are TOML files, not a registry (``initbench.benchmarks.experiments``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.metadata
import inspect
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from initbench.inits.errors import UsageError, UsageTypeError, unknown_choice


def resolve(target: str) -> Any:
    """Imports ``"package.module:attribute"`` and returns the attribute."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def lazy_exports(package: str, exports: dict[str, str], namespace: dict[str, Any]) -> tuple[Any, Any]:
    """A package's PEP 562 ``(__getattr__, __dir__)`` that import each public name on first use.

    Args:
      package: The package's ``__name__``.
      exports: Public name -> the submodule (relative to ``package``) that defines it.
      namespace: The package's ``globals()``; a resolved name is stored there, so later lookups
        skip ``__getattr__``.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__


class _Named(Protocol):
    @property
    def name(self) -> str: ...


E = TypeVar("E", bound=_Named)


class Registry(Generic[E]):
    """An ordered, read-only table of entries keyed by ``entry.name``.

    Args:
      what: What an entry is, for error messages (``"initializer"``).
      entries: The entries, in display order; names must be unique.
    """

    def __init__(self, what: str, entries: tuple[E, ...]) -> None:
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate {what} names in {names}")
        self.what = what
        self._entries = tuple(entries)
        self._by_name = {e.name: e for e in entries}

    def __getitem__(self, name: str) -> E:
        """The entry of ``name``; an unknown name lists the choices and the closest match."""
        if name not in self._by_name:
            raise unknown_choice(self.what, name, self._by_name)
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        """The registered names, in order."""
        return tuple(self._by_name)

    def values(self) -> tuple[E, ...]:
        """The entries, in order."""
        return self._entries

    def items(self) -> tuple[tuple[str, E], ...]:
        """``(name, entry)`` pairs, in order."""
        return tuple(self._by_name.items())


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered initializer.

    Attributes:
      name: Registry name (``inits.get(name)``).
      target: ``"module:function"`` of the factory; ``factory(**kwargs)`` returns an :class:`inits.Init`.
      family: ``basic``, ``lecun``, ``glorot``, ``he``, ``framework_default`` or ``structured``.
      formula: The distribution, in plain text.
      reference: Paper or source.
      random: False for deterministic initializers.
    """

    name: str
    target: str
    family: str
    formula: str
    reference: str
    random: bool = True

    @property
    def factory(self) -> Any:
        """The factory function (imported on first use)."""
        return resolve(self.target)


_GB = "Glorot & Bengio 2010, AISTATS"
_HE = "He, Zhang, Ren & Sun 2015, Delving Deep into Rectifiers, ICCV"
_LECUN = "LeCun, Bottou, Orr & Mueller 1998, Efficient BackProp"

_ENTRIES = (
    Entry("zeros", "initbench.inits._basic:zeros", "basic", "w = 0", "symmetry problem baseline", random=False),
    Entry("ones", "initbench.inits._basic:ones", "basic", "w = 1", "-", random=False),
    Entry("constant", "initbench.inits._basic:constant", "basic", "w = value", "-", random=False),
    Entry(
        "normal", "initbench.inits._basic:normal", "basic", "w ~ N(mean, stddev^2)", "presets normal(0.01), normal(1.0)"
    ),
    Entry(
        "uniform",
        "initbench.inits._basic:uniform",
        "basic",
        "w ~ U[low, high), default U[0, scale) as jax",
        "jax.nn.initializers.uniform; Keras RandomUniform is low=-0.05, high=0.05",
    ),
    Entry(
        "truncated_normal",
        "initbench.inits._basic:truncated_normal",
        "basic",
        "N(0,1) on [lower, upper], rescaled to std = stddev",
        "-",
    ),
    Entry(
        "variance_scaling",
        "initbench.inits._variance:variance_scaling",
        "variance_scaling",
        "Var[w] = scale / n(mode)",
        "jax.nn.initializers.variance_scaling",
    ),
    Entry("lecun_normal", "initbench.inits._variance:lecun_normal", "lecun", "N(0, 1/fan_in)", _LECUN),
    Entry(
        "lecun_uniform",
        "initbench.inits._variance:lecun_uniform",
        "lecun",
        "U[-sqrt(3/fan_in), sqrt(3/fan_in)]",
        _LECUN,
    ),
    Entry(
        "lecun_truncated_normal",
        "initbench.inits._variance:lecun_truncated_normal",
        "lecun",
        "truncated N, Var = 1/fan_in exactly",
        _LECUN,
    ),
    Entry("glorot_normal", "initbench.inits._variance:glorot_normal", "glorot", "N(0, 2 g^2/(fan_in + fan_out))", _GB),
    Entry(
        "glorot_truncated_normal",
        "initbench.inits._variance:glorot_truncated_normal",
        "glorot",
        "truncated N, Var = 2 g^2/(fan_in + fan_out) exactly (jax's glorot_normal)",
        _GB,
    ),
    Entry(
        "glorot_uniform",
        "initbench.inits._variance:glorot_uniform",
        "glorot",
        "U[-g sqrt(6/(fan_in + fan_out)), +]",
        _GB + ", eq. 16",
    ),
    Entry("xavier_normal", "initbench.inits._variance:xavier_normal", "glorot", "alias of glorot_normal", _GB),
    Entry("xavier_uniform", "initbench.inits._variance:xavier_uniform", "glorot", "alias of glorot_uniform", _GB),
    Entry(
        "glorot_standard",
        "initbench.inits._variance:glorot_standard",
        "glorot",
        "U[-1/sqrt(fan_in), 1/sqrt(fan_in)]",
        _GB + ", eq. 1",
    ),
    Entry("he_normal", "initbench.inits._variance:he_normal", "he", "N(0, 2/((1 + a^2) n))", _HE),
    Entry("he_uniform", "initbench.inits._variance:he_uniform", "he", "U[-sqrt(6/((1 + a^2) n)), +]", _HE),
    Entry(
        "he_truncated_normal",
        "initbench.inits._variance:he_truncated_normal",
        "he",
        "truncated N, Var = 2/((1 + a^2) n) exactly",
        _HE,
    ),
    Entry("kaiming_normal", "initbench.inits._variance:kaiming_normal", "he", "alias of he_normal", _HE),
    Entry("kaiming_uniform", "initbench.inits._variance:kaiming_uniform", "he", "alias of he_uniform", _HE),
    Entry(
        "torch_default",
        "initbench.inits._variance:torch_default",
        "framework_default",
        "U[-1/sqrt(fan_in), 1/sqrt(fan_in)]",
        "torch.nn.Linear.reset_parameters",
    ),
    Entry(
        "torch_default_bias",
        "initbench.inits._variance:torch_default_bias",
        "framework_default",
        "U[-1/sqrt(fan_in), 1/sqrt(fan_in)] (weight fan_in)",
        "torch.nn.Linear.reset_parameters",
    ),
    Entry(
        "keras_default",
        "initbench.inits._variance:keras_default",
        "framework_default",
        "glorot_uniform",
        "keras.layers.Dense",
    ),
    Entry(
        "flax_default",
        "initbench.inits._variance:flax_default",
        "framework_default",
        "truncated N(+-2 std), Var = 1/fan_in",
        "flax.linen.linear.default_kernel_init",
    ),
    Entry(
        "orthogonal",
        "initbench.inits._structured:orthogonal",
        "structured",
        "g * Haar (semi-)orthogonal",
        "Saxe, McClelland & Ganguli 2014, ICLR",
    ),
    Entry(
        "delta_orthogonal",
        "initbench.inits._structured:delta_orthogonal",
        "structured",
        "centre tap g * orthogonal, other taps 0",
        "Xiao et al. 2018, ICML",
    ),
    Entry(
        "identity",
        "initbench.inits._structured:identity",
        "structured",
        "g * I",
        "Le, Jaitly & Hinton 2015",
        random=False,
    ),
    Entry(
        "dirac",
        "initbench.inits._structured:dirac",
        "structured",
        "centre tap identity per group",
        "torch.nn.init.dirac_",
        random=False,
    ),
    Entry(
        "sparse",
        "initbench.inits._structured:sparse",
        "structured",
        "ceil(s n) zeros per unit, rest N(0, stddev^2)",
        "Martens 2010, ICML",
    ),
    Entry(
        "zero_hadamard",
        "initbench.inits._structured:zero_hadamard",
        "structured",
        "I, partial I, or c I* H_m I*",
        "Zhao, Schaefer & Anandkumar 2021 (ZerO)",
        random=False,
    ),
)

INITS: Registry[Entry] = Registry("initializer", _ENTRIES)


@dataclasses.dataclass(frozen=True)
class Scheme:
    """One registered model-level scheme: a function over a model's variables, not a per-tensor init.

    Every scheme is ``scheme(model, variables, batch, *, key=None, **options) -> (variables, record)``
    (``labels=`` too where it trains on data). ``initbench run``/``check`` and experiments take its
    name wherever an initializer name goes: the model is built with the kernel initializer
    ``base`` (and the ``architecture`` fields for its family), initialized, then passed through the
    scheme.

    Attributes:
      name: Registry name (``--init lsuv``).
      target: ``"module:function"`` of the scheme.
      base: The per-tensor initializer the model is built with before the scheme runs.
      formula: What it does, in plain text.
      reference: The paper.
      data: Whether it reads training inputs (``batch``); otherwise ``batch`` only gives their shape.
      labels: Whether it reads training labels too.
      architecture: Model fields the scheme needs, per family (``{"resnet": {"residual_scale": 1.0}}``).
      families: Model families it applies to (empty: any model).
      random: Whether it draws randomness of its own (a key), beyond the model's initial weights.
      stacks: Whether it handles scanned residual stacks (``ResNet(scan=True)``: a block's kernels
        stored with a leading block axis). ``initbench run``/``check`` build the model unscanned
        for a scheme that does not.
      run_options: Options ``initbench run`` gives it unless the init sets them.
      normalization: Whether it allows normalization in the model (ReZero); the other residual
        schemes replace it (their papers' nets have none).
    """

    name: str
    target: str
    base: str
    formula: str
    reference: str
    data: bool = False
    labels: bool = False
    architecture: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    families: tuple[str, ...] = ()
    random: bool = False
    run_options: tuple[tuple[str, Any], ...] = ()
    stacks: bool = False
    normalization: bool = False

    @property
    def function(self) -> Any:
        """The scheme function (imported on first use)."""
        return resolve(self.target)

    def fields(self, family: str) -> dict[str, Any]:
        """The model fields this scheme sets on a model of ``family``."""
        return dict(dict(self.architecture).get(family, ()))

    def apply(self, model: Any, variables: Any, batch: Any, *, key: Any, labels: Any, options: dict[str, Any]) -> Any:
        """The scheme on ``batch``: ``labels`` passed if it reads labels, ``key`` if it draws its own randomness.

        A plug-in's result is checked: ``(variables, record)`` with the variables' structure and
        shapes (one line naming the plug-in otherwise, at the runner's abstract trace: before any work).
        """
        options = dict(options)
        if self.labels:
            options["labels"] = labels
        if self.random:
            options["key"] = key
        if not is_plugin(self.name):
            return self.function(model, variables, batch, **options)
        try:
            out = self.function(model, variables, batch, **options)
        except UsageError:
            raise
        except Exception as err:  # the user's scheme failed on initbench's call: their code, one line naming it
            text = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise UsageError(f"scheme plug-in {self.name} failed: {type(err).__name__}: {text}"[:400]) from err
        _check_plugin_result(self.name, variables, out)
        return out

    def options(self) -> dict[str, inspect.Parameter]:
        """The scheme's keyword options (its arguments after ``model, variables, batch``), by name."""
        skip = {"model", "variables", "batch", "key", "labels"}
        return {
            n: p
            for n, p in inspect.signature(self.function).parameters.items()
            if n not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    @property
    def open_ended(self) -> bool:
        """Whether it takes ``**kwargs`` (any option name)."""
        return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(self.function).parameters.values())

    def check_options(self, given: dict[str, Any]) -> None:
        """One line for an option it does not take, a required one missing, or (a plug-in's) a value of the wrong type.

        A plug-in's option is typed by its annotation (``int``, ``float``, ``bool``, ``str``), else by
        its default's type (:func:`value_is`: an int passes for a float; floats must be finite).
        """
        valid = self.options()
        bad = [] if self.open_ended else sorted(set(given) - set(valid))
        if bad:
            raise UsageTypeError(
                f"{self.name} got unexpected argument(s) {', '.join(bad)}; valid arguments: "
                f"{', '.join(['base', *valid])}"
            )
        missing = missing_arguments(valid, given)
        if missing:
            raise UsageTypeError(
                f"{self.name} needs argument(s) {', '.join(missing)}, e.g. {self.name}({missing[0]}=0.1)"
            )
        if not is_plugin(self.name):
            return  # the built-ins check their own values, in one line
        for n, value in given.items():
            kind = _declared_kind(valid[n]) if n in valid else None
            if kind is not None and not value_is(kind, value):
                raise UsageTypeError(f"{self.name}: {n} must be {KIND_NAMES[kind]}, got {value!r}")


_RESIDUAL = "no-normalization ResNet: residual branches marked by a scalar 'branch_scale' parameter"
SCHEMES: Registry[Scheme] = Registry(
    "model-level scheme",
    (
        Scheme(
            "lsuv",
            "initbench.inits._model:lsuv",
            "orthogonal",
            "orthonormal W, then W /= sqrt(Var[layer output]) layer by layer until |Var - 1| < tol",
            "Mishkin & Matas 2016, All you need is a good init, ICLR",
            data=True,
            run_options=(("batch_size", 256),),
        ),
        Scheme(
            "fixup",
            "initbench.inits._residual:fixup",
            "he_normal",
            "branch last layer and classifier = 0; other branch layers He x L^(-1/(2m-2)); scalar x1, biases 0",
            "Zhang, Dauphin & Ma 2019, Fixup Initialization, ICLR",
            architecture=(("resnet", (("branch_biases", True), ("residual_scale", 1.0))),),
            families=("resnet",),
            stacks=True,
        ),
        Scheme(
            "skipinit",
            "initbench.inits._residual:skipinit",
            "he_normal",
            "He everywhere; each residual branch multiplied by a learned scalar alpha = 0",
            "De & Smith 2020, Batch Normalization Biases Residual Blocks Towards the Identity, NeurIPS",
            architecture=(("resnet", (("residual_scale", 0.0),)),),
            families=("resnet",),
            stacks=True,
        ),
        Scheme(
            "rezero",
            "initbench.inits._residual:rezero",
            "he_normal",
            "x + alpha F(x) with a learned alpha = 0 per residual branch; the layers keep their init; "
            "normalization allowed",
            "Bachlechner et al. 2021, ReZero is All You Need: Fast Convergence at Large Depth, UAI",
            architecture=(("resnet", (("residual_scale", 0.0),)),),
            families=("resnet",),
            stacks=True,
            normalization=True,
        ),
        Scheme(
            "zero_init",
            "initbench.inits._residual:zero_init",
            "zero_hadamard",
            "every layer I, partial I or c I* H_m I* (centre tap for convs); branch last layers, classifier 0",
            "Zhao, Schaefer & Anandkumar 2021, ZerO Initialization, TMLR 2022",
            architecture=(("resnet", (("residual_scale", 1.0),)),),
            stacks=True,
        ),
        Scheme(
            "metainit",
            "initbench.inits._learned:metainit",
            "he_normal",
            "per-kernel norms by signSGD + momentum on the gradient quotient |(g - Hg)/g - 1|",
            "Dauphin & Schoenholz 2019, MetaInit, NeurIPS",
            random=True,
        ),
        Scheme(
            "gradinit",
            "initbench.inits._learned:gradinit",
            "he_normal",
            "per-tensor scales alpha by Adam: min loss after one SGD step s.t. ||grad|| <= gamma",
            "Zhu, Ni, Xu, Kong, Huang & Goldstein 2021, GradInit, NeurIPS",
            data=True,
            labels=True,
            random=True,
        ),
    ),
)
_SCHEME_NOTE = "a model-level scheme (a function over a model's variables), not a per-tensor initializer"


def scheme(name: str) -> Scheme:
    """The model-level scheme ``name``; unknown names list the choices and the closest match."""
    return SCHEMES[name]


SCHEME_ARGUMENTS = ("model", "variables", "batch")  # a plug-in scheme's first parameters, by name
KIND_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a finite number",
    bool: "true or false",
    object: "a finite number, a string or true/false",  # an option of no declared type: any scalar
}


def value_is(kind: type, value: Any) -> bool:
    """Whether ``value`` is an option value of ``kind`` (a :data:`KIND_NAMES` key), as TOML and the CLI give them.

    An int passes for a float, a bool for neither; floats must be finite; ``object`` is any
    string, bool, int or finite float.

    Example:
      >>> value_is(float, 2), value_is(int, True), value_is(float, float("inf")), value_is(object, "x")
      (True, False, False, True)
      >>> value_is(float, 10**400)  # TOML takes integers of any size
      True
    """
    if kind is object:
        return isinstance(value, str | bool) or value_is(float, value)
    if kind is float:  # an int is finite at any size (math.isfinite overflows on a 400-digit one)
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value)
        )
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


_SCALAR_KINDS = (bool, int, float, str)  # the option types a plug-in may declare (KIND_NAMES less ``object``)


def _declared_kind(p: inspect.Parameter) -> type | None:
    """The scalar type a plug-in parameter declares: its annotation, else its default's type (None: any)."""
    text = "" if p.annotation is inspect.Parameter.empty else str(getattr(p.annotation, "__name__", p.annotation))
    for kind in _SCALAR_KINDS:
        if text == kind.__name__:
            return kind
    if not text and p.default is not inspect.Parameter.empty and type(p.default) in _SCALAR_KINDS:
        return type(p.default)
    return None


def plugin_scheme(name: str) -> Scheme | None:
    """The plug-in ``package.module:function`` as a model-level scheme, or None when it is not one.

    A plug-in is a scheme when it is a function whose first parameters are named ``model,
    variables, batch`` (the built-ins' signature): ``fn(model, variables, batch, *, key=None,
    labels=None, **options) -> (variables, record)``. It reads the training inputs (``batch``: the
    training set, as the data schemes get it), ``labels`` if it takes them, and draws
    randomness of its own if it takes ``key``. The model is built with ``he_normal`` kernels
    unless the init's ``base`` names another, is any family (its residual fields are the user's
    to set), and is unscanned. ``model`` is the module the trainer holds: a linen module, or for
    an nnx plug-in model its linen-like face (``model.apply(variables, x)``).
    """
    if not is_plugin(name):
        return None
    try:
        fn = _attribute(name)
        params = inspect.signature(fn).parameters
    except (UsageError, TypeError, ValueError):
        return None  # an import failure is the init validator's one line; no signature: not a scheme
    if isinstance(fn, type) or tuple(params)[:3] != SCHEME_ARGUMENTS:
        return None
    doc = (inspect.getdoc(fn) or "").strip().splitlines()
    return Scheme(
        name,
        name,
        "he_normal",
        doc[0] if doc else f"plug-in scheme {name}",
        "plug-in",
        data=True,
        labels="labels" in params,
        random="key" in params,
    )


def _check_plugin_result(name: str, variables: Any, out: Any) -> None:
    """One line unless a plug-in scheme returned ``(variables, record)`` shaped as the variables it was given."""
    import jax

    if not (isinstance(out, tuple) and len(out) == 2):
        raise UsageError(f"scheme plug-in {name} must return (variables, record), got {type(out).__name__}")

    def shapes(tree: Any) -> Any:
        return jax.tree_util.tree_map(lambda a: (tuple(getattr(a, "shape", ())), str(getattr(a, "dtype", ""))), tree)

    same_tree = str(jax.tree_util.tree_structure(out[0])) == str(jax.tree_util.tree_structure(variables))
    if not same_tree or shapes(out[0]) != shapes(variables):
        raise UsageError(
            f"scheme plug-in {name} must return variables of the structure, shapes and dtypes it was given "
            "(the first element of its result)"
        )


def available(family: str | None = None) -> tuple[Entry, ...]:
    """Every registered initializer (optionally one family), in registry order."""
    if family is None:
        return _ENTRIES
    families = {e.family for e in _ENTRIES}
    if family not in families:
        raise unknown_choice("family", family, families)
    return tuple(e for e in _ENTRIES if e.family == family)


PLUGIN = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


def is_plugin(name: object) -> bool:
    """Whether ``name`` is a plug-in target ``package.module:attribute`` (a user's own initializer)."""
    return isinstance(name, str) and PLUGIN.fullmatch(name) is not None


PLUGIN_GROUP = "initbench.plugins"
_ENTRY_NAME = re.compile(r"[\w.\-]+")  # what an entry point's name may be (no call, no target)


def installed_plugins() -> dict[str, str]:
    """The names that installed distributions declare in the ``initbench.plugins`` entry-point group.

    A distribution declares ``NAME = "package.module:attribute"`` (in its ``pyproject.toml``:
    ``[project.entry-points."initbench.plugins"]``); initbench then takes ``NAME`` wherever it
    takes that target: an initializer, a bias initializer or a dataset loader (which one the name
    is follows from where it is used). The metadata is read on each call (nothing is cached).

    Returns:
      ``{NAME: target}``, sorted by name.

    Raises:
      UsageError: A declared value that is not a ``package.module:attribute`` target, or one name
        that two distributions declare with different targets (naming both).
    """
    out: dict[str, tuple[str, str]] = {}
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        value = ep.value.split("[", 1)[0].strip()  # extras ("mod:attr [extra]") name no part of the target
        if not is_plugin(value):
            raise UsageError(
                f"entry point {ep.name!r} of {dist} in {PLUGIN_GROUP} is {ep.value!r}, not package.module:attribute"
            )
        if ep.name in out and out[ep.name][0] != value:
            raise UsageError(
                f"entry point {ep.name!r} in {PLUGIN_GROUP} is declared twice: {out[ep.name][0]} ({out[ep.name][1]}) "
                f"and {value} ({dist}); uninstall one or name the target itself"
            )
        out[ep.name] = (value, dist)
    return {name: out[name][0] for name in sorted(out)}


def expand(name: Any, builtin: Any = ()) -> Any:
    """``name``, or the target an installed ``initbench.plugins`` entry point declares for it.

    Built-in names (``name in builtin``) and targets themselves stay as they are, without reading
    any metadata: a built-in always wins over an entry point of the same name. An unknown name
    also stays (the caller's lookup names the choices).

    Example:
      >>> expand("he_normal", INITS), expand("mymod:init")
      ('he_normal', 'mymod:init')
    """
    if not isinstance(name, str) or name in builtin or is_plugin(name) or not _ENTRY_NAME.fullmatch(name):
        return name
    return installed_plugins().get(name, name)


def _attribute(target: str) -> Any:
    module, _, path = target.partition(":")
    try:
        value: Any = importlib.import_module(module)
    except Exception as err:  # ModuleNotFoundError, an import inside the user's module, its own error
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UsageError(f"plug-in {target!r}: cannot import {module!r} ({type(err).__name__}: {text})") from err
    for part in path.split("."):
        if not hasattr(value, part):
            raise UsageError(f"plug-in {target!r}: {module!r} has no attribute {path!r}")
        value = getattr(value, part)
    return value


@dataclasses.dataclass(frozen=True)
class PluginEntry(Entry):
    """A user's initializer factory named by its import target ``package.module:attribute``.

    ``factory(**args)`` must return an initializer: an :class:`inits.Init`, or any
    ``init(key, shape, dtype)`` (wrapped into an Init: shapes and dtypes checked as for the
    built-ins; no target moments, so the variance check judges it as a structured init).
    """

    @property
    def factory(self) -> Any:
        """The user's factory, its result made an :class:`inits.Init` (imported on each use)."""
        from initbench.inits._core import Init

        original = _attribute(self.target)
        if not callable(original):
            raise UsageError(f"plug-in {self.target!r} is a {type(original).__name__}, not a factory of initializers")
        target = self.target

        @functools.wraps(original)
        def make(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            if isinstance(out, Init):
                return out
            if not callable(out):
                raise UsageError(
                    f"plug-in {target}(...) must return an initializer (an inits.Init or init(key, shape, dtype)), "
                    f"got a {type(out).__name__}"
                )
            params = tuple(sorted(kwargs.items()))
            return Init(target, params, lambda key, shape, dtype: out(key, shape, dtype))

        return make


@functools.cache
def _standard_library() -> frozenset[Path]:
    """The standard library's directories (resolved once per process: sysconfig is not free)."""
    import sysconfig

    return frozenset(Path(p).resolve() for k, p in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib"))


def _users_file(origin: str | None) -> Path | None:
    """``origin`` when it is a user's Python source: not the standard library, an installed package or initbench."""
    if not origin or not origin.endswith(".py"):
        return None
    path = Path(origin).resolve()
    if any(part in ("site-packages", "dist-packages") for part in path.parts) or any(
        path.is_relative_to(root) for root in _standard_library()
    ):
        return None
    own = Path(__file__).resolve().parents[1]  # initbench's checkout (inits/, models/, benchmarks/)
    if any(path.is_relative_to(own / d) for d in ("inits", "models", "benchmarks", "initbench")):
        return None
    return path


def local_imports(module: Any) -> list[tuple[str, Path]]:
    """The user's own modules that ``module`` imports, transitively, read from their source (``ast``): sorted.

    Deterministic (the import statements, not what happens to be loaded): every ``import x`` and
    ``from x import y`` (relative ones resolved in their package; ``y`` too when it is a
    module) whose source is a user's file (:func:`_users_file`), followed into those files.
    """
    import ast
    import importlib.util

    start = _users_file(getattr(module, "__file__", None))
    if start is None:
        return []
    found: dict[str, Path] = {}
    todo = [(start, getattr(module, "__package__", None) or "")]  # (a source file, its package)
    while todo:
        path, package = todo.pop()
        try:
            tree = ast.parse(path.read_text(), str(path))
        except (SyntaxError, OSError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                try:
                    base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                except (ImportError, ValueError):
                    continue
                names = [base, *(f"{base}.{a.name}" for a in node.names if a.name != "*")]
            for imported in names:
                if imported in found or imported == module.__name__ or imported.split(".")[0] == "initbench":
                    continue
                try:
                    spec = importlib.util.find_spec(imported)
                except Exception:  # a name that is no module (from pkg import function), a failing parent import
                    continue
                file = _users_file(spec.origin) if spec is not None else None
                if spec is not None and file is not None and file != start:
                    found[imported] = file
                    inner = imported if spec.submodule_search_locations else imported.rpartition(".")[0]
                    todo.append((file, inner))
    return sorted(found.items())


def plugin_fingerprint(target: str) -> str:
    """``version/sha`` of a plug-in: its distribution's version (``-`` if none) and its module file's digest.

    Part of the run identity, so results stay honest when the plug-in's code changes: the module's
    file, the module that defines a re-exported attribute, and the user's own modules it imports
    (:func:`local_imports`: helpers beside it; not installed packages, the standard library or
    initbench), so an edit to a helper gives new run_ids too.
    """
    module = importlib.import_module(target.partition(":")[0])
    path = getattr(module, "__file__", None)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path else "-"
    try:  # the module that defines the attribute, when the target re-exports it (a package's __init__)
        defining = inspect.getmodule(_attribute(target))
    except UsageError:
        defining = None
    other = getattr(defining, "__file__", None)
    if other and other != path:
        digest += "+" + hashlib.sha256(Path(other).read_bytes()).hexdigest()[:16]
    local = local_imports(module)
    if local:  # the user's own modules it imports (helpers beside it): their edits change results too
        joined = "".join(f"{name}={hashlib.sha256(file.read_bytes()).hexdigest()}" for name, file in local)
        digest += "+L" + hashlib.sha256(joined.encode()).hexdigest()[:16]
    top = module.__name__.split(".")[0]
    try:
        version = importlib.metadata.version(top)
    except importlib.metadata.PackageNotFoundError:  # a distribution named unlike its package
        dists = importlib.metadata.packages_distributions().get(top, [])
        version = importlib.metadata.version(dists[0]) if dists else "-"
    return f"{version}/{digest}"


def entry(name: str) -> Entry:
    """The registry entry for ``name``; unknown names list the choices and the closest match.

    ``package.module:attribute`` names a user's factory (:class:`PluginEntry`), imported here; so
    does a name that an installed distribution declares in the ``initbench.plugins`` entry-point
    group (:func:`installed_plugins`).

    Raises:
      UsageError: unknown name, or the name of a model-level scheme (:data:`SCHEMES`), which no
        per-tensor initializer can be; a plug-in that cannot be imported.
    """
    name = expand(name, (*INITS.names(), *SCHEMES.names(), *FAN_IN_BIASES))
    if is_plugin(name):
        _attribute(name)  # importable now, or one line
        return PluginEntry(name, name, "plugin", "the plug-in's", name.partition(":")[0])
    if name in SCHEMES and name not in INITS:
        raise UsageError(
            f"{name} is {_SCHEME_NOTE}: call inits.{name}(model, variables, batch, ...), or give it as the init "
            "of initbench run/check or an experiment"
        )
    if name not in INITS:  # the choices, and the closest match, include the model-level schemes and plug-ins
        raise unknown_choice("initializer", name, (*INITS.names(), *SCHEMES.names(), *installed_plugins()))
    return INITS[name]


# PyTorch's bias init depends on the layer's weight fan-in, which a bias shape does not carry.
FAN_IN_BIASES = ("torch_default", "torch_default_bias")


def get_bias(name: str, fan_in: int, **kwargs: Any) -> Any:
    r"""Builds a bias initializer by name for a layer whose weight has fan-in ``fan_in``.

    ``torch_default`` (and ``torch_default_bias``) is PyTorch's default bias,
    :math:`U[-1/\sqrt{n_{in}}, 1/\sqrt{n_{in}}]`; every other registered name is built as
    :func:`get` builds it, with ``kwargs``. This is the one place that knows the difference.

    Raises:
      UsageError: unknown name; UsageTypeError: arguments the initializer does not take.
    """
    if name in FAN_IN_BIASES:
        if kwargs:
            raise UsageTypeError(f"bias init {name} takes no arguments (its bound comes from the fan-in), got {kwargs}")
        return resolve("initbench.inits._variance:torch_default_bias")(fan_in)
    return get(name, **kwargs)


def missing_arguments(params: Any, given: Any) -> list[str]:
    """The parameters of a signature (``inspect.Parameter`` by name) without a default that ``given`` lacks."""
    return [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and n not in given
    ]


def get(name: str, **kwargs: Any) -> Any:
    """Builds a registered initializer: ``inits.get("he_normal", mode="fan_out")``.

    Raises:
      UsageError: unknown name (with the closest match).
      UsageTypeError: an argument the factory does not take (the valid ones are listed), or a
        required one missing (``constant`` needs its ``value``).
    """
    factory = entry(name).factory
    params = inspect.signature(factory).parameters
    bad = sorted(set(kwargs) - set(params))
    if bad:
        raise UsageTypeError(
            f"{name}() got unexpected argument(s) {', '.join(bad)}; valid arguments: {', '.join(params) or 'none'}"
        )
    required = missing_arguments(params, kwargs)
    if required:
        hint = ""
        if is_plugin(name) and len(required) >= 3:  # three required positionals: a scheme, misnamed
            hint = (
                f" (a model-level scheme plug-in is a function whose first parameters are named "
                f"{', '.join(SCHEME_ARGUMENTS)})"
            )
        raise UsageTypeError(f"{name}() needs argument(s) {', '.join(required)}, e.g. {name}({required[0]}=0.1){hint}")
    return factory(**kwargs)
