"""Command-line flags that describe or override an experiment's grid (``initbench run`` and ``show``).

Each flag sets one field of the experiment (:mod:`initbench.benchmarks.experiments`); a comma
list is an axis. ``--set FIELD=VALUE`` sets any field with a TOML value, ``--only FIELD=a,b``
filters the grid without changing it. No JAX is imported here.
"""

from __future__ import annotations

import argparse
from typing import Any

from initbench.inits.errors import UsageError

# flag -> (dotted field, element parser name)
FIELD_FLAGS: dict[str, tuple[str, str, str]] = {
    "--model": ("model.family", "str", "model family (mlp, lenet5, plain_cnn, resnet)"),
    "--depth": ("model.depth", "int", "hidden layers (mlp) or identical convs"),
    "--width": ("model.width", "int", "units (mlp) or channels"),
    "--activation": ("model.activation", "str", "activations, e.g. relu,tanh"),
    "--parametrization": (
        "parametrization",
        "str",
        "width parametrization: sp, ntk, mup, mfp, Everett's *_align, or table:CLASS.KEY=EXP/... (--base-width)",
    ),
    "--base-width": ("base_width", "int", "the width at which a parametrization equals the plain run (m = width/base)"),
    "--depth-alpha": (
        "depth_alpha",
        "float",
        "depth rule of a resnet: branches x (L/base_depth)^-alpha, their lr to match (0.5 Depth-muP, 1 CompleteP)",
    ),
    "--base-depth": ("base_depth", "int", "the depth in blocks at which the depth rule equals the plain run"),
    "--dataset": ("data.name", "str", "dataset (initbench list datasets); drops the other dataset's options"),
    "--batch-size": ("data.batch_size", "int", "examples per step"),
    "--eval-examples": ("data.eval_examples", "int", "cap on examples evaluated at each eval point"),
    "--optimizer": (
        "train.optimizer",
        "str",
        "an optimizer of `initbench list optimizers` (sgd, momentum, adam, adamw, lion, ...)",
    ),
    "--lr": ("train.lr", "float", "peak learning rate(s)"),
    "--steps": ("train.steps", "int", "training steps"),
    "--eval-every": ("train.eval_every", "int", "evaluate every N steps (and at step 0)"),
    "--schedule": ("train.schedule", "str", "constant, cosine or warmup_cosine"),
    "--momentum": ("train.momentum", "float", "momentum of the momentum optimizer (default 0.9)"),
    "--weight-decay": (
        "train.weight_decay",
        "float",
        "weight decay (coupled or decoupled as the optimizer's entry says)",
    ),
    "--clip-norm": ("train.clip_norm", "float", "clip gradients to this global norm (0: off)"),
    "--warmup-steps": ("train.warmup_steps", "count", "linear learning-rate warm-up steps"),
    "--label-smoothing": ("train.label_smoothing", "float", "label smoothing of the cross-entropy"),
    "--divergence-factor": (
        "train.divergence_factor",
        "float",
        "a run diverges when its loss exceeds this x its step-0 loss (default 100; inf: non-finite only)",
    ),
}


def split_top_level(value: str) -> list[str]:
    """Splits at commas outside brackets: ``"normal(stddev=0.1, mean=0.0),zeros"`` has two items."""
    items, depth, current = [], 0, []
    for ch in value:
        depth += {"(": 1, ")": -1, "[": 1, "]": -1, "{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    items.append("".join(current).strip())
    return items


def csv(value: str) -> list[str]:
    """A comma list of non-empty items (argparse type)."""
    items = split_top_level(value)
    if not value.strip() or any(not v for v in items):
        raise argparse.ArgumentTypeError(f"malformed list {value!r}: expected comma-separated values like a,b")
    return items


def _number_list(kind: type, least: int = 1):
    def parse(value: str) -> list:
        out = []
        for item in csv(value):
            try:
                n = kind(item)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected {kind.__name__} values like 1,2; got {item!r}") from None
            if kind is int and n < least:
                what = "positive integers" if least == 1 else f"integers >= {least}"
                raise argparse.ArgumentTypeError(f"expected {what}, got {item!r}")
            out.append(n)
        return out

    return parse


positive_ints = _number_list(int)  # "3,3,3" -> [3, 3, 3] (argparse type)


def kwargs(value: str) -> dict[str, Any]:
    """``a=1,b=[1,2],c=relu`` -> a dict of TOML-read values (argparse type)."""
    from initbench.benchmarks.experiments import parse_value

    out = {}
    for item in csv(value):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"malformed argument {item!r}: expected name=value")
        if key.strip() in out:
            raise argparse.ArgumentTypeError(f"argument {key.strip()!r} given twice in {value!r}")
        out[key.strip()] = parse_value(raw.strip())
    return out


def assignment(value: str) -> tuple[str, Any]:
    """``train.lr=[0.01,0.1]`` -> ``("train.lr", [0.01, 0.1])`` (argparse type)."""
    from initbench.benchmarks.experiments import parse_value

    key, sep, raw = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"malformed --set {value!r}: expected FIELD=VALUE, e.g. train.lr=0.01")
    return key.strip(), parse_value(raw.strip())


def filter_spec(value: str) -> tuple[str, list[str]]:
    """``init=he_normal,zeros`` -> ``("init", ["he_normal", "zeros"])`` (argparse type)."""
    key, sep, raw = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"malformed --only {value!r}: expected FIELD=a,b, e.g. init=he_normal")
    return key.strip(), csv(raw)


def init_item(text: str) -> str | dict[str, Any]:
    """``he_normal`` or ``normal(stddev=0.01, mean=0)`` -> an experiment init entry."""
    name, paren, rest = text.partition("(")
    if not paren:
        return text.strip()
    if not rest.endswith(")"):
        raise UsageError(f"malformed initializer {text!r}: expected name(arg=value, ...)")
    try:
        args = kwargs(rest[:-1]) if rest[:-1].strip() else {}
    except argparse.ArgumentTypeError as err:
        raise UsageError(f"initializer {text!r}: {err}") from None
    if "name" in args:  # the name is the text before the parenthesis; another would replace it silently
        raise UsageError(f"initializer {text!r}: 'name' is not an argument (the initializer is {name.strip()!r})")
    return {"name": name.strip(), **args}


def add_grid_flags(p: argparse.ArgumentParser) -> None:
    """Adds the experiment, ``--scale`` and every field flag to a subcommand."""
    p.add_argument(
        "experiment",
        nargs="?",
        help="packaged experiment (initbench list experiments) or a .toml file; none: an ad-hoc grid from the flags",
    )
    p.add_argument("--scale", help="one of the experiment's scales (smoke, cpu, paper; default: its default)")
    p.add_argument("--name", help="experiment name for the results (default: the file's name, or adhoc)")
    g = p.add_argument_group("fields (each sets or overrides one field; a comma list is an axis)")
    parsers = {"str": csv, "int": _number_list(int), "count": _number_list(int, 0), "float": _number_list(float)}
    for flag, (field, kind, help_) in FIELD_FLAGS.items():
        g.add_argument(flag, type=parsers[kind], help=f"{field}: {help_}")
    g.add_argument(
        "--model-args", type=kwargs, action="append", help="model options, e.g. normalization=layernorm,use_bias=false"
    )
    g.add_argument("--init", type=csv, help="initializers, e.g. he_normal,normal(stddev=0.01)")
    g.add_argument(
        "--init-args", type=kwargs, action="append", help="arguments added to every --init, e.g. stddev=0.01"
    )
    g.add_argument("--bias-init", type=csv, help="bias initializers, e.g. zeros or normal(stddev=0.2236)")
    g.add_argument(
        "--init-scale",
        type=kwargs,
        action="append",
        metavar="SELECTOR=X,...",
        help="init_scale: multipliers (>= 0) of the initial parameters by layer class or path pattern, "
        "e.g. input=1.41 or readout=0 (per-tensor initializers; a sweep: --set 'init_scale=[{...},{...}]')",
    )
    g.add_argument("--dataset-args", type=kwargs, action="append", help="dataset options, e.g. dim=784,n_train=4096")
    g.add_argument("--seeds", type=_number_list(int), help="number of seeds (0..N-1)")
    g.add_argument(
        "--lr-scale",
        type=kwargs,
        action="append",
        metavar="SELECTOR=X,...",
        help="train.lr_scale: per-parameter learning-rate multipliers by layer class (input, hidden, readout, "
        "bias, scalar) or path pattern, e.g. scalar=0.1,head/*=0.5 (a sweep: --set 'train.lr_scale=[{...},{...}]')",
    )
    g.add_argument(
        "--wd-scale",
        type=kwargs,
        action="append",
        metavar="SELECTOR=X,...",
        help="train.wd_scale: per-parameter weight-decay multipliers (>= 0), e.g. bias=0,scalar=0",
    )
    (
        g.add_argument(
            "--eps-scale",
            type=kwargs,
            action="append",
            metavar="SELECTOR=X,...",
            help="train.eps_scale: per-parameter multipliers (> 0) of Adam's epsilon (adam, adamw, nadam, adamax), "
            "e.g. hidden=0.25,input=0.25",
        ),
    )
    g.add_argument(
        "--optimizer-args",
        type=kwargs,
        action="append",
        metavar="NAME=VALUE,...",
        help="train.optimizer_args: the optimizer's own arguments, e.g. b2=0.95 or nesterov=true",
    )
    g.add_argument(
        "--layer-records",
        action="store_true",
        default=None,
        help="train.layer_records: also record each layer's kernel norm and gradient norm at every evaluation",
    )
    g.add_argument(
        "--set",
        dest="assign",
        type=assignment,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any field, the value in TOML, e.g. --set train.lr=[0.01,0.1]",
    )
    g.add_argument(
        "--only",
        type=filter_spec,
        action="append",
        default=[],
        metavar="FIELD=a,b",
        help="run only these values of a field (init, activation, model, depth, width, dataset, seed, lr, "
        "...); chunk widths still come from the whole grid",
    )


def _one(values: list) -> Any:
    return values[0] if len(values) == 1 else values


def grid_from_args(args: argparse.Namespace) -> tuple[Any, str | None, dict[str, Any], dict[str, list[str]]]:
    """``(experiment, scale, overrides, only)`` from parsed flags (imports the experiment module)."""
    from initbench.benchmarks import experiments

    exp = experiments.load(args.experiment) if args.experiment else experiments.adhoc(args.name)
    if args.name and args.experiment:
        exp = experiments.Experiment(args.name, exp.description, exp.source, exp.doc)
    ov: dict[str, Any] = {}
    for flag, (field, _, _) in FIELD_FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            ov[field] = _one(value)

    def single(name: str) -> Any:  # a repeated table flag would silently replace the first
        tables = getattr(args, name)
        if tables is not None and len(tables) > 1:
            flag = f"--{name.replace('_', '-')}"
            raise UsageError(f"{flag} given {len(tables)} times; put every entry in one: {flag} a=1,b=2")
        return tables[0] if tables is not None else None

    model_args, dataset_args, init_args = single("model_args"), single("dataset_args"), single("init_args")
    for name in ("lr_scale", "wd_scale", "eps_scale", "optimizer_args", "init_scale"):
        table = single(name)
        if table is not None:
            ov[name if name == "init_scale" else f"train.{name}"] = table
    if args.layer_records:
        ov["train.layer_records"] = True
    if args.seeds is not None:
        if len(args.seeds) != 1:
            raise UsageError(f"--seeds is a count (3: seeds 0, 1, 2), got {args.seeds}; for a list: --set seeds=[0,5]")
        ov["seeds"] = args.seeds[0]
    flags = {field: flag for flag, (field, _, _) in FIELD_FLAGS.items()}
    names = ("lr_scale", "wd_scale", "eps_scale", "optimizer_args")
    flags.update({f"train.{n}": f"--{n.replace('_', '-')}" for n in names})
    flags.update(seeds="--seeds", init="--init", bias="--bias-init", init_scale="--init-scale")
    flags["train.layer_records"] = "--layer-records"

    def put(key: str, value: Any, source: str) -> None:
        # one value per field: two flags setting one field would leave one of them silently unused
        if key in ov:
            raise UsageError(f"{source} and {flags.get(key, key)} both set {key}; set it once")
        ov[key] = value
        flags[key] = source

    for key, value in (model_args or {}).items():
        put(f"model.{key}", value, f"--model-args {key}")
    for key, value in (dataset_args or {}).items():
        put(f"data.{key}", value, f"--dataset-args {key}")
    if init_args and not args.init:
        raise UsageError("--init-args needs --init (the initializers they apply to)")
    if args.init:
        items = [init_item(x) for x in args.init]
        if init_args:
            for item in items:
                clash = sorted(set(init_args) & set(item if isinstance(item, dict) else {}))
                if clash:
                    raise UsageError(f"--init {item['name']}(...) and --init-args both set {', '.join(clash)}")
            items = [{**({"name": i} if isinstance(i, str) else i), **init_args} for i in items]
        ov["init"] = _one(items)
    if args.bias_init:
        ov["bias"] = _one([init_item(x) for x in args.bias_init])
    for key, value in args.assign:
        put(key, value, f"--set {key}")
    if not args.experiment and "model" not in ov and ov.get("model.family", "mlp") == "mlp":
        for key, value in experiments.MLP_DEFAULTS.items():
            ov.setdefault(f"model.{key}", value)
    only: dict[str, list[str]] = {}
    for key, values in args.only:
        only.setdefault(key, []).extend(values)
    return exp, args.scale, ov, only
