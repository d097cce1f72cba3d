r"""Experiments as data: a TOML file (or command-line flags) that expands into a grid of RunSpecs.

An experiment names the fixed fields of its runs and the axes that vary; the runs are the
product of the axes. Every field of the model, the initialization, the bias initialization,
the data, the optimization and the seeds may be a list, and each list is an axis::

    name = "he2015-depth30"
    description = "He et al. 2015: a 30-layer ReLU MLP, He vs LeCun init"
    seeds = 3                                        # seeds 0, 1, 2 (or a list: [0, 5, 7])
    init = ["he_normal", "lecun_normal", {name = "normal", stddev = [0.01, 1.0]}]
    bias = {name = "normal", stddev = 0.2236}        # sigma_b^2 = 0.05

    [model]
    family = "mlp"
    depth = 30
    width = 256
    activation = "relu"

    [data]
    name = "digits"
    batch_size = 128

    [train]
    optimizer = "sgd"
    lr = [0.01, 0.1]                                 # an axis
    steps = 2000
    eval_every = 100

    [[zip]]                                          # paired values: one axis, not a product
    model.depth = [10, 30]
    model.width = [512, 256]

    [scale.smoke]                                    # per-scale overrides, merged onto the above
    train.steps = 20
    seeds = 1

Rules:

- Sections ``model``, ``data``, ``train`` are tables; a section may instead be an array of tables
  (``[[model]]``), an axis of whole entries (e.g. an MLP and LeNet-5, whose fields differ),
  each of which may hold axes of its own.
- ``init`` and ``bias`` are a registry name, a table ``{name = ..., arg = ...}`` (any argument may
  be a list: an axis), or a list of those. An ``init`` table may carry its own ``bias``
  (PyTorch's default pairs ``torch_default`` kernels with ``torch_default`` biases).
- ``init_scale`` is a table ``selector = multiplier`` (layer classes ``input``, ``hidden``,
  ``readout``, ``bias``, ``scalar`` or parameter-path patterns, as ``train.lr_scale``) that
  multiplies the initial parameters, or a list of tables (an axis): ``init_scale = {readout = 0}``.
- ``parametrization`` (``sp``, ``ntk``, ``mup``, ...) and ``base_width`` scale each layer class's
  init and learning rate with the model's width (:mod:`initbench.benchmarks.parametrization`);
  ``depth_alpha`` and ``base_depth`` add the depth rule (a ResNet's branch multiplier
  ``(L/base_depth)^-depth_alpha`` and its branches' learning rates); each may be a list (an axis).
- ``model`` fields: ``family``, ``activation``, ``depth``, ``width`` and the family's own
  options (``use_bias``, ``normalization``, ``scan``, ``preset``, ``stages``, ``blocks``,
  ``pooling``, ...; ``initbench list models``). ``data`` fields: ``name``, ``batch_size``,
  ``eval_examples`` and the dataset's options (``dim``, ``n_train``, ``density``, ...).
  ``train`` fields: the :class:`~initbench.benchmarks.spec.TrainSpec` fields.
- Fields whose value is itself a list (``stages``, ``blocks``, ``head_widths``, ``shape``) are an
  axis only as a list of lists.
- ``[[zip]]`` tables hold equal-length lists that vary together (one axis).
- ``[scale.NAME]`` tables are merged onto the experiment (a table onto a table field by field;
  a table onto an array of tables into each entry; anything else replaces);
  ``default_scale`` names the scale used when none is asked for (else ``smoke`` when defined).
- Command-line overrides (``--depth 30``, ``--lr 0.01,0.1``, ``--set train.lr=[0.01,0.1]``) are
  merged last, by the same rule. Changing ``data.name`` drops the other dataset's options.

Order of the product: model entries, init, bias, init_scale, parametrization x base_width x
depth_alpha x base_depth, data
entries, train entries, zips, seeds
(innermost). Every name, type and argument is checked before any work, and an error names the
source (file, packaged experiment or command line), the key and the valid choices.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import inspect
import itertools
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from initbench.inits.errors import UsageError, first_line
from initbench.inits.registry import KIND_NAMES, value_is

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

SECTIONS = ("model", "data", "train")
TOP_FIELDS = ("init", "bias", "init_scale", "parametrization", "base_width", "depth_alpha", "base_depth", "seeds")
META = ("name", "description", "benchmark", "default_scale", "scale", "zip")
SCALES_HINT = ("smoke", "cpu", "paper")

_MODEL_CORE = {"family": str, "activation": str, "depth": int, "width": int}
_DATA_CORE = {"name": str, "batch_size": int, "eval_examples": int}
_TRAIN = {
    "optimizer": str,
    "lr": float,
    "steps": int,
    "eval_every": int,
    "schedule": str,
    "momentum": float,
    "weight_decay": float,
    "lr_scale": dict,  # a table selector = multiplier (a list of tables is an axis)
    "optimizer_args": dict,  # a table argument = value (a list of tables is an axis)
    "wd_scale": dict,
    "eps_scale": dict,  # a table selector = multiplier of the optimizer's epsilon
    "clip_norm": float,
    "warmup_steps": int,
    "label_smoothing": float,
    "divergence_factor": float,  # inf allowed: only non-finite losses diverge
    "layer_records": bool,
}
# replaced whole by merge()
_TABLE_VALUES = frozenset({*(k for k, kind in _TRAIN.items() if kind is dict), "init_scale"})
# model fields that the initialization sets, not the experiment's model section
_SET_BY_INIT = {"num_classes", "kernel_init", "bias_init", "first_kernel_init", "head_kernel_init"}
_INIT_RESERVED = ("name", "bias")

ADHOC_NAME = "adhoc"
MAX_RUNS = 1_000_000  # a grid larger than this is a typo (or needs splitting)
ADHOC_DEFAULTS: dict[str, Any] = {
    "description": "an ad-hoc grid from the command line",
    "benchmark": "train",
    "seeds": 1,
    "init": "he_normal",
    "model": {"family": "mlp"},  # activation: relu unless given (a plug-in that takes none refuses one given)
    "data": {"name": "digits", "batch_size": 128},
    "train": {},
}
MLP_DEFAULTS = {"depth": 3, "width": 128}  # an ad-hoc MLP without --depth/--width


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A parsed experiment document and where it came from.

    Attributes:
      name: The experiment's name (the ``suite`` column of its results).
      description: One line.
      source: Where it came from, for error messages (a path, ``experiment quick``, ``command line``).
      doc: The document (TOML tables as dicts).
    """

    name: str
    description: str
    source: str
    doc: dict[str, Any]

    @property
    def scales(self) -> tuple[str, ...]:
        """The scales the experiment defines."""
        return tuple(self.doc.get("scale", {}))

    def default_scale(self) -> str | None:
        """``default_scale``, else ``smoke`` when defined, else None (the base grid)."""
        if "default_scale" in self.doc:
            return str(self.doc["default_scale"])
        return "smoke" if "smoke" in self.scales else None


@dataclasses.dataclass(frozen=True)
class Plan:
    """An experiment resolved at one scale with its overrides: the runs and their grid.

    Attributes:
      experiment: The experiment.
      scale: The scale (None: the base grid).
      specs: The runs to do (after ``only`` filters).
      full: Every run of the grid (fixes each cohort's chunk width: filtered runs are bitwise
        those of the full grid).
      varying: Field -> the values it takes over ``specs`` (fields with one value are fixed).
    """

    experiment: Experiment
    scale: str | None
    specs: list[Any]
    full: list[Any]
    varying: dict[str, list[Any]]


# ---------------------------------------------------------------------------- finding experiments


def packaged() -> dict[str, Path]:
    """The experiments shipped with initbench: name -> TOML file."""
    root = resources.files(__name__)
    return {
        Path(p.name).stem: Path(str(p))
        for p in sorted(root.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".toml")
    }


def load(name_or_path: str | Path) -> Experiment:
    """An experiment by packaged name (``quick``) or by TOML file path.

    Raises:
      UsageError: unknown name (listing the packaged ones), unreadable file, TOML syntax error.
    """
    text = str(name_or_path)
    shipped = packaged()
    if text in shipped:
        path, source = shipped[text], f"experiment {text}"
    else:
        path = Path(text)
        if not (text.endswith(".toml") or path.exists()):
            close = difflib.get_close_matches(text, list(shipped), n=1, cutoff=0.6)
            hint = f". Did you mean {close[0]!r}?" if close else ""
            raise UsageError(
                f"unknown experiment {text!r}; packaged experiments: {', '.join(shipped)} (or a path to a .toml file)"
                + hint
            )
        source = str(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as err:
        raise UsageError(f"cannot read experiment file {source!r}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{source}: not a UTF-8 text file (TOML files are UTF-8)") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{source}: not valid TOML: {err}") from None
    return from_doc(doc, source, default_name=path.stem)


def from_doc(doc: Mapping[str, Any], source: str, *, default_name: str = ADHOC_NAME) -> Experiment:
    """An experiment from a parsed document (checks its top-level keys)."""
    doc = copy.deepcopy(dict(doc))
    for key in doc:
        if key not in (*META, *TOP_FIELDS, *SECTIONS):
            raise _unknown(source, key, (*META, *TOP_FIELDS, *SECTIONS))
    for key in ("name", "description", "benchmark", "default_scale"):
        if key in doc and not isinstance(doc[key], str):
            raise UsageError(f"{source}: {key} must be a string, got {doc[key]!r}")
    scales = doc.get("scale", {})
    if not isinstance(scales, dict) or any(not isinstance(v, dict) for v in scales.values()):
        raise UsageError(f"{source}: scale must hold tables [scale.NAME], got {scales!r}")
    if "default_scale" in doc and doc["default_scale"] not in scales:
        raise UsageError(f"{source}: default_scale {doc['default_scale']!r} is not one of its scales {list(scales)}")
    for scale, table in scales.items():
        for key in table:
            if key not in (*TOP_FIELDS, *SECTIONS, "zip", "benchmark", "description"):
                raise _unknown(f"{source}: [scale.{scale}]", key, (*TOP_FIELDS, *SECTIONS, "zip"))
    name = check_name(doc.get("name", default_name), source)
    return Experiment(name, doc.get("description", ""), source, doc)


def check_name(name: str, source: str = "command line") -> str:
    """An experiment name is a file-name prefix: letters, digits, ``.``, ``_``, ``-`` (not leading ``.`` or ``_``).

    Its results are ``NAME-....parquet``; pandas and pyarrow skip files whose names start with
    ``.`` or ``_``, so such a name would be invisible to them.
    """
    if not re.fullmatch(r"[A-Za-z0-9-][A-Za-z0-9._-]{0,99}", str(name)):
        raise UsageError(
            f"{source}: experiment name {name!r} must be letters, digits, '.', '_' or '-' (no '/'), "
            "not starting with '.' or '_' (pandas skips such files)"
        )
    return str(name)


def adhoc(name: str | None = None) -> Experiment:
    """The base of a grid given only by command-line flags (defaults: ``ADHOC_DEFAULTS``)."""
    name = check_name(name or ADHOC_NAME)
    return Experiment(name, ADHOC_DEFAULTS["description"], "command line", copy.deepcopy(ADHOC_DEFAULTS))


# ---------------------------------------------------------------------------- overrides


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Merges ``over`` onto ``base`` into a new dict.

    Tables merge field by field, a table onto an array of tables merges into each entry,
    anything else replaces. A field whose value is a table (``lr_scale``, ``wd_scale``,
    ``optimizer_args``) is one value: it replaces (``train.lr_scale = {}`` removes the rules).
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and key not in _TABLE_VALUES:
            out[key] = merge(old, value)
        elif (
            isinstance(old, list)
            and old
            and all(isinstance(e, dict) for e in old)
            and isinstance(value, dict)
            and key in SECTIONS
        ):
            # into each entry that can take the fields (a depth for the MLP entry, not LeNet-5's)
            takes = [_takes(key, e) for e in old]
            fits = [{k: v for k, v in value.items() if t is None or k in t} for t in takes]
            if any(set(value) - set(f) for f in fits) and not any(set(value) <= set(f) for f in fits):
                fits = [dict(value)] * len(old)  # no entry takes them all: let validation name the field
            out[key] = [merge(e, f) for e, f in zip(old, fits, strict=True)]
        else:
            out[key] = copy.deepcopy(value)
    return out


def _takes(section: str, entry: Mapping[str, Any]) -> set[str] | None:
    """The fields a model entry's family takes (None: any, for other sections or unknown families)."""
    family = entry.get("family", "mlp")
    if section != "model" or not isinstance(family, str):
        return None
    from initbench.models._build import _fields
    from initbench.models.catalog import FAMILIES

    family = _model_target(family)
    if _is_plugin(family):
        try:
            return {"family", "depth", "width", "activation"} | set(_plugin_model_options("", family))
        except UsageError:
            return None  # the model check names the import failure
    if family not in FAMILIES:
        return None
    fields = set(_fields(FAMILIES[family].cls)) - _SET_BY_INIT
    return fields | {"family", "activation"} | set(_model_options().get(family, {}))


def nest(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """``{"train.lr": 0.1}`` -> ``{"train": {"lr": 0.1}}``."""
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        *head, last = key.split(".")
        node = out
        for part in head:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UsageError(f"command line: {key} sets a field inside {part}, which is not a table")
        node[last] = value
    return out


def parse_value(text: str) -> Any:
    """A command-line value read as TOML, or the text itself when TOML cannot read it.

    ``0.1``, ``[1, 2]``, ``{name = "normal", stddev = 0.1}`` and ``true`` are TOML values;
    ``he_normal`` is a string.
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def resolve(
    experiment: Experiment,
    scale: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    only: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    """Expands an experiment at a scale, with overrides and filters, into validated runs.

    Args:
      experiment: The experiment.
      scale: A scale it defines (default: :meth:`Experiment.default_scale`).
      overrides: Dotted fields (``{"train.lr": [0.01, 0.1], "model.depth": 30}``) merged last.
      only: Filters ``{field: [values]}`` on the expanded grid (values compared as text;
        ``init`` matches a name or label). The chunk width still comes from the whole grid.

    Raises:
      UsageError: any unknown field, type mismatch, empty axis, unknown name or argument.
    """
    src = experiment.source
    doc = {k: v for k, v in experiment.doc.items() if k not in ("scale",)}
    if scale is None:
        scale = experiment.default_scale()
    elif scale not in experiment.scales:
        if experiment.scales:
            raise _unknown(src, scale, experiment.scales, what="scale")
        raise UsageError(f"{src}: defines no scales (no [scale.NAME] tables), got --scale {scale}")
    if scale is not None:
        doc = merge(doc, experiment.doc["scale"][scale])
    if overrides:
        _check_override_keys(overrides)
        nested = nest(overrides)
        if isinstance(nested.get("data"), dict) and "name" in nested["data"]:
            for entry in _entries(doc.get("data", {})):  # another dataset: the old one's options go
                if entry.get("name", "digits") != nested["data"]["name"]:
                    for k in [k for k in entry if k not in _DATA_CORE]:
                        entry.pop(k)
        _check_zip_conflicts(doc, overrides)
        doc = merge(doc, nested)
    full = _expand(doc, experiment.name, src)
    specs = _filter(full, only or {}, src)
    return Plan(experiment, scale, specs, full, _varying(specs))


# ---------------------------------------------------------------------------- expansion


def _unknown(source: str, key: str, valid: Iterable[str], what: str = "field") -> UsageError:
    valid = sorted(set(valid))
    close = [v for v in valid if v.startswith(str(key)) and len(str(key)) > len(str(key).split(".")[0]) + 2]
    close = close[:1] or difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    hint = f". Did you mean {close[0]!r}?" if close else ""
    return UsageError(f"{source}: unknown {what} {key!r}; valid: {', '.join(valid)}{hint}")


def _entries(section: Any) -> list[dict[str, Any]]:
    if isinstance(section, dict):
        return [section]
    if isinstance(section, list) and all(isinstance(e, dict) for e in section):
        return section
    return []


def _check_override_keys(overrides: Mapping[str, Any]) -> None:
    valid_top = (*TOP_FIELDS, "zip")
    for key, value in overrides.items():
        if key == "zip":
            if not isinstance(value, list) or not all(isinstance(g, dict) for g in value):
                raise UsageError(
                    f"command line: zip takes a list of tables like [{{model.depth = [1, 2]}}], got {value!r}"
                )
            for group in value:
                _zip_axis("command line", group)
            continue
        if key in SECTIONS:  # a whole section: a table or an array of tables
            _section_axis("command line", key, value)
            continue
        if key in valid_top:
            continue
        section, _, field = key.partition(".")
        if section not in SECTIONS or not field:
            every = [
                *valid_top,
                *(
                    f"{s}.{k}"
                    for s, core in (("model", _MODEL_CORE), ("data", _DATA_CORE), ("train", _TRAIN))
                    for k in core
                ),
            ]
            raise _unknown("command line", key, every)
        if section == "model":
            owner = _model_target(overrides.get("model.family"))
            _field_axis("command line", section, field, value, {"family": owner} if _is_plugin(owner) else {})
            continue
        owner = _dataset_target(overrides.get("data.name")) if section == "data" else None
        _field_axis("command line", section, field, value, {"name": owner} if _is_plugin(owner) else {})


def _check_zip_conflicts(doc: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    for group in doc.get("zip", []) or []:
        zipped = set(_flatten(group))
        clash = sorted(zipped & set(overrides))
        if clash:
            raise UsageError(
                f"command line: {', '.join(clash)} is zipped with {', '.join(sorted(zipped - set(clash)))} "
                "in the experiment; override the zipped fields together with --set zip=[{...}]"
            )


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path in SECTIONS:
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


NO_DEFAULT = type("NoDefault", (), {"__repr__": lambda self: "<required>"})()


@dataclasses.dataclass(frozen=True)
class FieldType:
    """What a model or dataset option accepts, read from its annotation.

    Attributes:
      kind: ``bool``, ``int``, ``float`` or ``str`` of the value (of its leaves for tuples);
        ``object`` for a plug-in's unannotated option without a default: any TOML scalar.
      depth: 0 for a scalar, 1 for ``tuple[int, ...]``, 2 for ``tuple[tuple[int, int], ...]``.
      choices: The allowed strings of a ``Literal`` (empty: any).
      default: The default (``NO_DEFAULT`` when required); an option set to it is dropped, so
        writing a default or leaving it out is the same run.
    """

    kind: type = str
    depth: int = 0
    choices: tuple[str, ...] = ()
    default: Any = None


def _field_type(annotation: Any, default: Any, choices: tuple[str, ...] = ()) -> FieldType:
    """The FieldType an annotation (a string under ``from __future__ import annotations``) describes."""
    text = str(annotation)
    # a sequence of any spelling is a tuple (Flax's own ``features: Sequence[int]``; ``list[int]``)
    depth = len(re.findall(r"\b(?:tuple|Tuple|list|List|Sequence)\[", text))
    literal = tuple(re.findall(r"'([^']*)'", text)) if "Literal" in text else ()
    kind = bool if "bool" in text else int if re.search(r"\bint\b", text) else float if "float" in text else str
    return FieldType(kind, depth, literal or choices, default)


@functools.lru_cache(maxsize=1)
def _model_options() -> dict[str, dict[str, FieldType]]:
    """Family -> {option: FieldType} (the families' dataclass fields the experiment may set)."""
    from initbench.models._build import _fields
    from initbench.models.catalog import FAMILIES, PLAIN_CNN_PRESETS
    from initbench.models.layers import NORMALIZATIONS

    out = {}
    for fam in FAMILIES.values():
        fields = {}
        for n, f in _fields(fam.cls).items():
            if n in _SET_BY_INIT or n in _MODEL_CORE:
                continue
            default = f.default if f.default is not dataclasses.MISSING else NO_DEFAULT
            norms = tuple(NORMALIZATIONS) if n == "normalization" else ()
            fields[n] = _field_type(f.type, default, norms)
        if fam.name == "plain_cnn":
            fields["preset"] = FieldType(str, 0, tuple(PLAIN_CNN_PRESETS), NO_DEFAULT)
        out[fam.name] = fields
    return out


def _model_target(name: Any) -> Any:
    """A model family, or the target of an installed ``initbench.plugins`` entry point of that name."""
    from initbench.inits.registry import expand
    from initbench.models.catalog import FAMILIES

    return expand(name, FAMILIES)


def _dataset_target(name: Any) -> Any:
    """A dataset name, or the target of an installed ``initbench.plugins`` entry point of that name."""
    from initbench.benchmarks.data import DATASETS
    from initbench.inits.registry import expand

    return expand(name, DATASETS)


def _is_plugin(name: Any) -> bool:
    from initbench.inits.registry import is_plugin

    return is_plugin(name)


def _plugin_takes(target: str, name: str) -> bool:
    """Whether a model plug-in's factory declares ``name`` (or takes ``**kwargs``)."""
    from initbench.benchmarks import plugin_model

    declared = plugin_model.parameters(target)
    return name in declared or any(p.kind == inspect.Parameter.VAR_KEYWORD for p in declared.values())


def _plugin_data_options(source: str, target: str) -> dict[str, FieldType]:
    """A plug-in dataset loader's options, typed from its signature (imported here: one line if it cannot be)."""
    from initbench.benchmarks.data import entry

    try:
        entry(target)
    except UsageError as err:
        raise UsageError(f"{source}: {first_line(err)}") from None
    from initbench.inits.registry import _attribute

    return _options_of(inspect.signature(_attribute(target)).parameters)


class _Open(dict):
    """A plug-in's options when it takes ``**kwargs``: its declared ones typed, any other name a scalar."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> FieldType:
        return FieldType(object, 0, (), NO_DEFAULT)


def _options_of(params: Mapping[str, inspect.Parameter], skip: Any = ()) -> dict[str, FieldType]:
    """Typed options of a plug-in's parameters (an :class:`_Open` dict when it takes ``**kwargs``)."""
    fields = {
        n: _plugin_field(p)
        for n, p in params.items()
        if n not in skip and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }
    open_ended = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())
    return _Open(fields) if open_ended else fields


def _plugin_field(p: inspect.Parameter) -> FieldType:
    """A plug-in parameter's FieldType: from its annotation, else its default's type, else any scalar."""
    default = p.default if p.default is not inspect.Parameter.empty else NO_DEFAULT
    annotation = p.annotation
    if annotation is inspect.Parameter.empty and default is not NO_DEFAULT and default is not None:
        annotation = type(default).__name__
        if isinstance(default, tuple) and default:  # tuple[int, ...] from its first element
            annotation = f"tuple[{type(default[0]).__name__}, ...]"
    if annotation is inspect.Parameter.empty:  # nothing to type it by: a number, a string or a boolean
        return FieldType(object, 0, (), default)
    return _field_type(annotation, default)


def _plugin_model_options(source: str, target: str) -> dict[str, FieldType]:
    """A plug-in model's options, typed from its factory's annotations (or defaults); imported here."""
    from initbench.benchmarks import plugin_model

    try:
        params = plugin_model.parameters(target)  # with **kwargs, if it takes them: then any option
    except UsageError as err:
        raise UsageError(f"{source}: {first_line(err)}") from None
    return _options_of(params, (*plugin_model.CORE, *plugin_model.PROVIDED))


@functools.lru_cache(maxsize=1)
def _data_options() -> dict[str, dict[str, FieldType]]:
    """Dataset -> {option: FieldType}."""
    from initbench.benchmarks.data import DATASETS
    from initbench.inits.registry import resolve as resolve_target

    out = {}
    for entry in DATASETS.values():
        params = inspect.signature(resolve_target(entry.target)).parameters
        out[entry.name] = {
            n: _field_type(
                params[n].annotation,
                params[n].default if params[n].default is not inspect.Parameter.empty else NO_DEFAULT,
            )
            for n in entry.options
            if n != "data_dir"
        }
    return out


def _nesting(value: Any) -> int:
    return 1 + _nesting(value[0]) if isinstance(value, list) and value else (1 if isinstance(value, list) else 0)


def _table_axis(source: str, key: str, value: Any) -> list[Any]:
    """``train.lr_scale``/``wd_scale``/``optimizer_args`` or ``init_scale``: a table, or a list of tables (an axis).

    Multipliers of 1 are dropped (the same run as the rule left out: one run_id); an optimizer's
    arguments are checked (and defaults dropped) with the optimizer, by ``TrainSpec``.
    """
    from initbench.benchmarks.spec import check_lr_scale

    tables = value if isinstance(value, list) else [value]
    example = "{b2 = 0.95}" if key == "optimizer_args" else "{scalar = 0.1, readout = 0.5}"
    where = key if key == "init_scale" else f"train.{key}"
    if not tables or not all(isinstance(t, dict) for t in tables):
        raise UsageError(f"{source}: {where} takes a table like {example} or a list of tables, got {value!r}")
    out = []
    for table in tables:
        if key == "optimizer_args":
            for name, v in table.items():
                if isinstance(v, dict | list):
                    raise UsageError(f"{source}: train.optimizer_args.{name} takes one value, got {v!r}")
            out.append(tuple(sorted(table.items())))
            continue
        try:
            rules = check_lr_scale(table, key, zero=key in ("wd_scale", "init_scale"))
        except UsageError as err:
            raise UsageError(f"{source}: {'' if key == 'init_scale' else 'train.'}{first_line(err)}") from err
        out.append(tuple((k, v) for k, v in rules if v != 1.0))
    return out


def _axis(source: str, key: str, value: Any, *, kind: type | None = None, field: FieldType | None = None) -> list[Any]:
    """The values of a field: a list is an axis (for tuple-valued fields, a list of their values)."""
    if isinstance(value, dict):
        raise UsageError(f"{source}: {key} takes a value or a list of values, got a table {value!r}")
    depth = field.depth if field is not None else 0
    nesting = _nesting(value)
    if nesting == depth + 1:
        values = list(value)
    elif nesting == depth:
        values = [value]
    else:
        shape = {0: "a value", 1: "a list like [3, 3, 3]", 2: "a list of pairs like [[16, 2], [32, 2]]"}[min(depth, 2)]
        raise UsageError(f"{source}: {key} takes {shape} (or a list of those: an axis), got {value!r}")
    if not values:
        raise UsageError(f"{source}: {key} is an empty axis (a list with no values)")
    kind = kind if kind is not None else (field.kind if field is not None else None)
    out = []
    for v in values:
        leaves = list(_leaves(v)) if depth else [v]
        if any(isinstance(leaf, dict) for leaf in leaves):
            raise UsageError(f"{source}: {key} takes values, got a table in {v!r}")
        if kind is not None:
            for leaf in leaves:
                if not value_is(kind, leaf):
                    raise UsageError(f"{source}: {key} must be {KIND_NAMES[kind]}, got {leaf!r}")
        if field is not None and field.choices and v not in field.choices:
            raise _unknown(source, v, field.choices, what=f"value of {key}")
        if kind is float:
            v = _map_leaves(float, v)
        if _tuple(v) in out:  # two equal values would be one run: a typo, as for seeds
            raise UsageError(f"{source}: {key} lists {v!r} twice: {values!r}")
        out.append(_tuple(v))
    return out


def _leaves(value: Any):
    if isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _map_leaves(fn, value: Any) -> Any:
    return [_map_leaves(fn, v) for v in value] if isinstance(value, list) else fn(value)


def _tuple(value: Any) -> Any:
    return tuple(_tuple(v) for v in value) if isinstance(value, list) else value


def _section_axis(source: str, section: str, value: Any) -> list[dict[str, Any]]:
    """Every assignment of a section's fields (entries x their own axes)."""
    if isinstance(value, dict):
        entries = [value]
    elif isinstance(value, list) and value and all(isinstance(e, dict) for e in value):
        entries = value
    else:
        raise UsageError(f"{source}: [{section}] must be a table or an array of tables, got {value!r}")
    out: list[dict[str, Any]] = []
    for entry in entries:
        axes = []
        for key, v in entry.items():
            axes.append([(key, x) for x in _field_axis(source, section, key, v, entry)])
        out.extend(dict(combo) for combo in itertools.product(*axes))
    return out


def _field_axis(source: str, section: str, key: str, value: Any, entry: Mapping[str, Any]) -> list[Any]:
    path = f"{section}.{key}"
    if section == "train":
        if key not in _TRAIN:
            raise _unknown(source, path, [f"train.{k}" for k in _TRAIN])
        if _TRAIN[key] is dict:
            return _table_axis(source, key, value)
        if key == "divergence_factor":  # a number, inf included (TrainSpec checks it is > 1)
            values = _axis(source, path, value)
            bad = [v for v in values if not (isinstance(v, int | float) and not isinstance(v, bool))]
            if bad:
                raise UsageError(f"{source}: {path} must be a number > 1 (inf: only non-finite losses), got {bad[0]!r}")
            return [float(v) for v in values]
        return _axis(source, path, value, kind=_TRAIN[key])
    core = _MODEL_CORE if section == "model" else _DATA_CORE
    if key in core:
        return _axis(source, path, value, kind=core[key])
    options = _model_options() if section == "model" else _data_options()
    owner = _model_target(entry.get("family")) if section == "model" else _dataset_target(entry.get("name"))
    if section == "data" and _is_plugin(owner):  # a user's loader: its own keyword parameters
        options = {**options, owner: _plugin_data_options(source, owner)}
    if section == "model" and _is_plugin(owner):  # a user's model: its factory's keyword parameters
        options = {**options, owner: _plugin_model_options(source, owner)}
    if isinstance(owner, str) and owner in options:  # the entry's own family or dataset decides
        if key not in options[owner]:
            what = f"model {owner}" if section == "model" else f"dataset {owner}"
            takes = _takes("model", entry) if section == "model" else {*_DATA_CORE, *options[owner]}
            raise _unknown(f"{source}: {what}", key, sorted(takes or ()), what="field")
        return _axis(source, path, value, field=options[owner][key])
    every = {k: t for fields in options.values() for k, t in fields.items()}
    if key not in every:
        raise _unknown(source, path, [f"{section}.{k}" for k in (*core, *every)])
    return _axis(source, path, value, field=every[key])


def _init_items(source: str, key: str, value: Any) -> list[tuple[str, tuple, Any]]:
    """``(name, args, own_bias)`` for every init an ``init``/``bias`` value expands to."""
    from initbench.benchmarks.spec import options
    from initbench.inits.registry import FAN_IN_BIASES, INITS, SCHEMES, expand

    builtin = (*INITS.names(), *SCHEMES.names(), *FAN_IN_BIASES)
    items = value if isinstance(value, list) else [value]
    if not items:
        raise UsageError(f"{source}: {key} is an empty axis (a list with no values)")
    out = []
    for item in items:  # an installed entry point's name (initbench.plugins) is its target from here on
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            item = {**item, "name": expand(item["name"], builtin)}
        item = expand(item, builtin)
        if isinstance(item, str):
            if (item, (), None) in out:  # the same initializer twice would be one run: a typo, as for seeds
                raise UsageError(f"{source}: {key} lists {item} twice")
            out.append((item, (), None))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise UsageError(
                f"{source}: {key} entries must be a name or a table with a name, e.g. "
                f'{{name = "normal", stddev = 0.01}}; got {item!r}'
            )
        own_bias = item.get("bias") if key == "init" else None
        if "bias" in item and key != "init":
            raise UsageError(f"{source}: bias tables take the initializer's arguments, not 'bias'")
        args = {k: v for k, v in item.items() if k not in _INIT_RESERVED}
        axes = [[(k, x) for x in _axis(source, f"{key}.{k}", v)] for k, v in args.items()]
        defaults = _init_defaults(item["name"])
        for combo in itertools.product(*axes):
            normal = {}
            for k, v in combo:  # stddev = 1 and stddev = 1.0 are one run (explicit arguments stay in the label)
                if isinstance(defaults.get(k), float) and isinstance(v, int) and not isinstance(v, bool):
                    v = float(v)
                normal[k] = v
            entry = (item["name"], options(**normal), own_bias)
            if entry in out:  # the same initializer twice would be one run: a typo, as for seeds
                shown = item["name"] + (f"({', '.join(f'{k}={v!r}' for k, v in normal.items())})" if normal else "")
                raise UsageError(f"{source}: {key} lists {shown} twice")
            out.append(entry)
    return out


def _init_defaults(name: str) -> dict[str, Any]:
    """The default of each argument of a registered initializer's factory (empty if unknown)."""
    from initbench.inits.registry import INITS, SCHEMES

    if name in SCHEMES:
        params = SCHEMES[name].options()
    elif name in INITS.names():
        params = inspect.signature(INITS[name].factory).parameters
    else:
        return {}
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def _parametrizations(source: str, doc: Mapping[str, Any]) -> list[Any]:
    """The ``parametrization`` x ``base_width`` x ``depth_alpha`` x ``base_depth`` axis (empty when none is set)."""
    if "parametrization" not in doc:
        for key in ("base_width", "depth_alpha", "base_depth"):
            if key in doc:
                raise UsageError(f"{source}: {key} needs a parametrization (sp, ntk, mup, ...; sp for depth alone)")
        return [()]
    from initbench.benchmarks.parametrization import canonical, table_name

    value = doc["parametrization"]  # a preset, a user's table of exponents, or a list of either
    try:
        if isinstance(value, dict):
            value = table_name(value)
        elif isinstance(value, list):
            value = [table_name(v) if isinstance(v, dict) else canonical(v) for v in value]
        else:
            value = canonical(value)
    except UsageError as err:
        raise UsageError(f"{source}: {err}") from None
    names = _axis(source, "parametrization", value)
    axes = {k: _axis(source, k, doc[k]) if k in doc else [None] for k in ("base_width", "depth_alpha", "base_depth")}
    out = []
    for name in names:
        for values in itertools.product(*axes.values()):
            given = [(k, v) for k, v in zip(axes, values, strict=True) if v is not None]
            pairs = tuple(sorted([("name", name), *given]))
            if pairs not in out:
                out.append(pairs)
    return out


def _seeds(source: str, value: Any) -> list[int]:
    if isinstance(value, bool) or not isinstance(value, int | list):
        raise UsageError(f"{source}: seeds must be a count (3: seeds 0, 1, 2) or a list of seeds, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise UsageError(f"{source}: seeds must be a positive count, got {value!r}")
        if value > MAX_RUNS:  # before building the list (a huge count overflowed range's C size)
            raise UsageError(f"{source}: seeds is {value:,} runs per configuration, more than {MAX_RUNS:,}")
        return list(range(value))
    seeds = _axis(source, "seeds", value, kind=int)
    bad = [s for s in seeds if not 0 <= s < 2**32]
    if bad:  # the trainer draws every member's data key in one call on uint32 seeds
        raise UsageError(f"{source}: seeds must be integers in [0, 2**32), got {bad[0]!r}")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"{source}: seeds lists a seed twice: {seeds}")
    return seeds


def _zip_axis(source: str, group: Any) -> list[dict[str, Any]]:
    if not isinstance(group, dict) or not group:
        raise UsageError(f"{source}: each [[zip]] must be a table of equal-length lists, got {group!r}")
    flat = _flatten(group)
    lengths = {}
    for path, values in flat.items():
        section, _, key = path.partition(".")
        if section not in SECTIONS or not key:
            raise UsageError(f"{source}: [[zip]] fields are section fields like model.depth, got {path!r}")
        if not isinstance(values, list) or not values:
            raise UsageError(f"{source}: zip field {path} must be a non-empty list, got {values!r}")
        lengths[path] = len(values)
        for v in values:  # each value is one setting of the field (checked like a single value)
            checked = _field_axis(source, section, key, [v], {})
            if len(checked) != 1:
                raise UsageError(f"{source}: zip field {path} holds a list where one value is expected")
    if len(set(lengths.values())) != 1:
        raise UsageError(f"{source}: [[zip]] lists differ in length: {lengths}")
    n = next(iter(lengths.values()))
    return [{path: _tuple(values[i]) for path, values in flat.items()} for i in range(n)]


def _expand(doc: Mapping[str, Any], name: str, source: str) -> list[Any]:
    from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options

    sections = {s: _section_axis(source, s, doc.get(s, {})) for s in SECTIONS}
    inits_ = _init_items(source, "init", doc.get("init", "he_normal"))
    biases = _init_items(source, "bias", doc.get("bias", "zeros"))
    init_scales = _table_axis(source, "init_scale", doc["init_scale"]) if "init_scale" in doc else [()]
    parametrizations = _parametrizations(source, doc)
    groups = doc.get("zip") or []
    if not isinstance(groups, list):
        raise UsageError(f"{source}: zip takes [[zip]] tables (a list of tables), got {groups!r}")
    zips = [_zip_axis(source, g) for g in groups]
    zipped_fields = [set(_flatten(g)) for g in groups]
    for i, fields in enumerate(zipped_fields):
        for other in zipped_fields[i + 1 :]:
            if fields & other:
                raise UsageError(f"{source}: {', '.join(sorted(fields & other))} is in two [[zip]] tables")
        for path in sorted(fields):
            section, _, key = path.partition(".")
            if any(key in entry for entry in _entries(doc.get(section, {}))):
                raise UsageError(f"{source}: {path} is set both in [{section}] and in a [[zip]]; set it in one place")
    seeds = _seeds(source, doc.get("seeds", 1))
    benchmark = doc.get("benchmark", "train")
    model_opts, data_opts = _model_options(), _data_options()
    size = math.prod(
        [
            len(sections["model"]),
            len(inits_),
            len(biases),
            len(init_scales),
            len(parametrizations),
            len(sections["data"]),
            len(sections["train"]),
            len(seeds),
            *(len(z) for z in zips),
        ]
    )
    if size > MAX_RUNS:
        raise UsageError(f"{source}: the grid has {size:,} runs, more than {MAX_RUNS:,}; split the experiment")
    specs, seen = [], set()
    product = itertools.product(
        sections["model"],
        inits_,
        biases,
        init_scales,
        parametrizations,
        sections["data"],
        sections["train"],
        *zips,
        seeds,
    )
    for model, (i_name, i_args, own_bias), (b_name, b_args, _), init_scale, par, data, train, *rest in product:
        *zipped, seed = rest
        model, data, train = dict(model), dict(data), dict(train)
        for z in zipped:
            for path, value in z.items():
                section, _, key = path.partition(".")
                {"model": model, "data": data, "train": train}[section][key] = value
        if own_bias is not None:
            (b_name, b_args, _), *more = _init_items(source, "init.bias", own_bias)
            if more:
                raise UsageError(f"{source}: an init's own bias must be one initializer, got {own_bias!r}")
        family = _model_target(model.pop("family", "mlp"))
        if family not in model_opts and _is_plugin(family):  # a user's model: its factory's options
            model_opts = {**model_opts, family: _plugin_model_options(source, family)}
        if family not in model_opts:
            raise _unknown(source, family, model_opts, what="model family")
        if "activation" in model and _is_plugin(family) and not _plugin_takes(family, "activation"):
            raise UsageError(
                f"{source}: model plug-in {family} takes no activation (it would be ignored): leave it out, got "
                f"{model['activation']!r}"
            )
        activation = model.pop("activation", "relu")
        depth, width = model.pop("depth", None), model.pop("width", None)
        bad = sorted(k for k in model if k not in model_opts[family])  # a **kwargs plug-in takes any
        if bad:
            raise _unknown(f"{source}: model {family}", bad[0], model_opts[family], what="field")
        # an option at its default is the same run as the option left out (one run_id)
        model = {k: v for k, v in model.items() if v != model_opts[family][k].default}
        dname = _dataset_target(data.pop("name", "digits"))  # an installed entry point: its target
        if dname not in data_opts and _is_plugin(dname):
            data_opts = {**data_opts, dname: _plugin_data_options(source, dname)}
        if dname not in data_opts:
            raise _unknown(source, dname, data_opts, what="dataset")
        batch, evals = data.pop("batch_size", 128), data.pop("eval_examples", None)
        bad = sorted(k for k in data if k not in data_opts[dname])
        if bad:
            valid = data_opts[dname] or {"(none: it takes no options)": None}
            raise _unknown(f"{source}: dataset {dname}", bad[0], valid, what="option")
        data = {k: v for k, v in data.items() if v != data_opts[dname][k].default}
        spec = RunSpec(
            suite=name,
            benchmark=benchmark,
            model=ModelSpec(family, activation, depth, width, options(**model)),
            init=InitSpec(i_name, i_args, b_name, b_args, init_scale),
            data=DataSpec(dname, batch, options(**data), evals),
            train=TrainSpec(**train),
            seed=seed,
            parametrization=par,
        )
        if spec.run_id not in seen:
            seen.add(spec.run_id)
            specs.append(spec)
    _validate(specs, source)
    return specs


def _validate(specs: Sequence[Any], source: str) -> None:
    from initbench.benchmarks.data import check_options

    checked: set = set()
    for spec in specs:
        rest = (spec.model.activation, spec.data, spec.train)  # everything validate() checks but the init and seed
        # the parametrization against the model's width, the optimizer and the init (a scheme refuses it)
        par = (spec.parametrization, spec.model.width, spec.train.optimizer, spec.init.name)
        for what, key in (("init", spec.init), ("rest", rest), ("par", par)):
            if (what, key) in checked:
                continue
            checked.add((what, key))
            try:
                if what == "init":
                    spec.init.validate()
                elif what == "par":
                    spec.check_parametrization()
                else:
                    spec.validate()
            except UsageError as err:
                raise UsageError(f"{source}: {first_line(err)}") from err
        if ("data", spec.data.name, spec.data.extra) not in checked:
            checked.add(("data", spec.data.name, spec.data.extra))
            check_options(spec.data.name, dict(spec.data.extra))


# ---------------------------------------------------------------------------- filters and summaries

FIELD_OF = {
    "init": lambda s: (s.init.name, s.init.label),
    "bias": lambda s: (s.init.bias, f"{s.init.bias}({s.init.bias_args_label})" if s.init.bias_args else s.init.bias),
    "activation": lambda s: (s.model.activation,),
    "parametrization": lambda s: (dict(s.parametrization).get("name", ""),),
    "base_width": lambda s: (str(dict(s.parametrization).get("base_width")),),
    "depth_alpha": lambda s: (str(dict(s.parametrization).get("depth_alpha")),),
    "base_depth": lambda s: (str(dict(s.parametrization).get("base_depth")),),
    "family": lambda s: (s.model.family,),
    "model": lambda s: (s.model.family, s.model.label),
    "depth": lambda s: (str(s.model.depth),),
    "width": lambda s: (str(s.model.width),),
    "dataset": lambda s: (s.data.name,),
    "seed": lambda s: (str(s.seed),),
    "lr": lambda s: (s.train.lr,),
    "optimizer": lambda s: (s.train.optimizer,),
    "batch_size": lambda s: (s.data.batch_size,),
    "steps": lambda s: (s.train.steps,),
    "schedule": lambda s: (s.train.schedule,),
    "momentum": lambda s: (s.train.momentum,),
    "weight_decay": lambda s: (s.train.weight_decay,),
}
_NUMERIC_FILTERS = ("depth", "width", "seed", "lr", "batch_size", "steps", "momentum", "weight_decay")
_NUMERIC_FILTERS += ("base_width", "depth_alpha", "base_depth")


def _filter(specs: list[Any], only: Mapping[str, Sequence[str]], source: str) -> list[Any]:
    out = specs
    for field, wanted in only.items():
        if field not in FIELD_OF:
            raise _unknown("--only", field, FIELD_OF)
        if field in _NUMERIC_FILTERS:  # compared as numbers: lr=0.10 is lr=1e-1
            try:
                wanted = [float(w) for w in wanted]
            except ValueError:
                raise UsageError(f"--only {field} takes numbers, got {list(wanted)}") from None
        known = {v for s in specs for v in FIELD_OF[field](s)}
        known = {float(v) if field in _NUMERIC_FILTERS and v is not None and v != "None" else v for v in known}
        for w in wanted:
            if w not in known:
                raise _unknown(f"--only {field}", w, [str(k) for k in known], what="value")
        wanted = set(wanted)
        out = [
            s
            for s in out
            if {float(v) if field in _NUMERIC_FILTERS and v not in (None, "None") else v for v in FIELD_OF[field](s)}
            & wanted
        ]
    return out


def _varying(specs: Sequence[Any]) -> dict[str, list[Any]]:
    """Identity columns -> their distinct values over the grid (in first-seen order)."""
    values: dict[str, list[Any]] = {}
    for spec in specs:
        for key, value in spec.identity().items():
            if key in ("run_id", "numerics_version"):
                continue
            bucket = values.setdefault(key, [])
            if value not in bucket:
                bucket.append(value)
    return values
