"""initbench: benchmarks of neural-network weight initialization.

initbench list [inits|models|datasets|optimizers|experiments|reproductions]
initbench run [EXPERIMENT | FILE.toml] [--scale smoke|cpu|paper] [--name NAME] [field flags: --model --depth
              --width --activation --model-args --parametrization --base-width --depth-alpha --base-depth --init
              --init-args --bias-init --init-scale --dataset --dataset-args --batch-size --eval-examples
              --optimizer --optimizer-args --lr --momentum --weight-decay --lr-scale --wd-scale --eps-scale
              --clip-norm --schedule --warmup-steps --label-smoothing --divergence-factor --steps --eval-every
              --seeds --layer-records; --set FIELD=VALUE]
              [--only FIELD=a,b] [--out DIR] [--data-dir DIR] [--devices N] [--max-members N] [--json FILE] [--quiet]
              [--checkpoint-every S|off]
              [--coordinator HOST:PORT --num-processes N --process-id I] [--heartbeat-timeout S]
              [--join-timeout S] [--single-process]
initbench show [EXPERIMENT | FILE.toml] [--scale S] [field flags]
initbench check [--model M|pkg.mod:Attr --depth L --width N --activation A --init I --model-args K=V ...] [--no-write]
initbench coord-check [EXPERIMENT | FILE.toml] [field flags] [--widths 64,...] [--coord-steps K] [--out DIR]
initbench reproduce NAME|all [--scale smoke|cpu|full|paper] [--out DIR] [--rejudge]
initbench launch -n N -- run EXPERIMENT [options]
initbench report DIR [--out DIR/_NAME] [--best FIELD] [--x FIELD --hue FIELD] [--metric M] [--tensorboard DIR]
initbench prepare DATASET [--data-dir DIR] [--manual-dir DIR]
initbench variance-table
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from pathlib import Path

from initbench.benchmarks.grid_flags import add_grid_flags, grid_from_args, kwargs, positive_ints, split_top_level

# Only light modules at import time: `initbench --help` and `initbench list` import no JAX.
from initbench.benchmarks.paths import can_write_in
from initbench.inits.errors import UsageError, first_line

__all__ = ["build_parser", "main", "split_top_level"]


_SEEN = "_initbench_options_seen"  # namespace attribute: the single-value options given so far


class _StoreOnce(argparse._StoreAction):
    """argparse's ``store``, refusing a second occurrence (``--steps 2 --steps 3`` silently kept 3)."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        if option_string is not None:
            seen = getattr(namespace, _SEEN, None)
            if seen is None:
                seen = set()
                setattr(namespace, _SEEN, seen)
            if self.dest in seen:
                raise argparse.ArgumentError(self, "given more than once; give it once")
            seen.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        parsed, rest = super().parse_known_args(args, namespace)
        if hasattr(parsed, _SEEN):
            delattr(parsed, _SEEN)
        return parsed, rest

    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        self.exit(2, f"initbench: error: {message}\n")


def _output_file(value: str) -> str:
    """A file path whose directory exists and is writable (checked before any work)."""
    path = Path(value)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is a directory; give a file path")
    if not parent.is_dir() or not can_write_in(parent):
        raise argparse.ArgumentTypeError(f"cannot write {value!r}: directory {str(parent)!r} missing or not writable")
    return value


def _int_at_least(minimum: int, what: str):
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            n = minimum - 1
        if n < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {value!r}")
        return n

    return parse


_positive = _int_at_least(1, "positive")


def _seconds(value: str) -> int:
    """A positive whole number of seconds that JAX's distributed runtime takes (an int32)."""
    n = _positive(value)
    if n > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"expected at most 2147483647 seconds, got {value!r}")
    return n


_nonnegative = _int_at_least(0, "non-negative")


def _seconds_or_off(value: str) -> float | None:
    """A finite number of seconds >= 0, or ``off`` (None)."""
    if value.strip().lower() == "off":
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0 or off, got {value!r}")
    return seconds


def _directory(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("expected a directory path, got an empty string")
    return value


def _enable_compilation_cache() -> None:
    import jax

    cache = os.environ.get("INITBENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "initbench", "jax"
    )
    try:
        os.makedirs(cache, exist_ok=True)
    except OSError:
        return  # an unwritable cache only costs compile time
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _list_installed_plugins(builtin: tuple[str, ...] = ()) -> None:
    from initbench.inits.registry import PLUGIN_GROUP, installed_plugins

    for name, target in installed_plugins().items():  # declared by installed distributions
        shadowed = " (unused: a built-in has this name)" if name in builtin else ""
        print(f"{name:24s} {'plug-in':18s} {target} (entry point in {PLUGIN_GROUP}){shadowed}")


def _cmd_list(args: argparse.Namespace) -> int:
    what = args.what
    if what == "inits":
        from initbench.inits.registry import INITS

        for e in INITS.values():
            print(f"{e.name:24s} {e.family:18s} {e.formula:52s} {e.reference}")
        from initbench.inits.registry import SCHEMES

        for s in SCHEMES.values():
            print(f"{s.name:24s} {'model-level':18s} {s.formula} (base {s.base}) {s.reference}")
        _list_installed_plugins((*INITS.names(), *SCHEMES.names()))
    elif what == "models":
        from initbench.models.catalog import FAMILIES, PLAIN_CNN_PRESETS

        for e in FAMILIES.values():
            print(f"{e.name:10s} {e.description}")
        for name, preset in PLAIN_CNN_PRESETS.items():
            print(f"  plain_cnn preset {name:10s} {preset}")
    elif what == "datasets":
        from initbench.benchmarks.data import DATASETS

        for e in DATASETS.values():
            print(f"{e.name:14s} {'offline' if e.offline else 'tfds   '} {e.description}")
        _list_installed_plugins(DATASETS.names())
    elif what == "optimizers":
        from initbench.benchmarks.optimizers import OPTIMIZERS

        for o in OPTIMIZERS.values():
            args = ", ".join(f"{k}={v}" for k, v in o.args.items()) or "-"
            print(f"{o.name:10s} {o.decay:9s} {o.summary} [optimizer_args: {args}]")
    elif what == "reproductions":
        from initbench.benchmarks.reproduce import REPRODUCTIONS

        for e in REPRODUCTIONS.values():
            print(f"{e.name:18s} {e.description}")
    else:
        from initbench.benchmarks.experiments import load, packaged

        for name in packaged():
            exp = load(name)
            scales = ", ".join(f"{s}{' (default)' if s == exp.default_scale() else ''}" for s in exp.scales)
            print(f"{name:16s} {exp.description} [scales: {scales or 'none'}]")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from initbench.benchmarks import distributed

    # joins a multi-process job (flags, or a detected cluster) before JAX is used
    proc = distributed.initialize(
        args.coordinator,
        args.num_processes,
        args.process_id,
        auto=not args.single_process,
        heartbeat_timeout_s=args.heartbeat_timeout or distributed.DEFAULT_HEARTBEAT_TIMEOUT_S,
        init_timeout_s=args.join_timeout or 300,
    )
    moot = [f for f, v in (("--heartbeat-timeout", args.heartbeat_timeout), ("--join-timeout", args.join_timeout)) if v]
    if proc.count == 1 and moot:  # never a silently ignored option
        raise UsageError(f"{moot[0]} applies to a multi-process job; this run is a single process")
    try:
        return _run(args, proc)
    except BaseException as err:
        if proc.count > 1:
            _exit_process(err, proc, debug=debugging(args))
        raise


def _cmd_coord(args: argparse.Namespace) -> int:
    from initbench.benchmarks import coord, experiments
    from initbench.benchmarks.results import ResultStore, provenance
    from initbench.benchmarks.runner import _check_models, _load_datasets
    from initbench.benchmarks.spec import NUMERICS_VERSION

    for flag, value in (("--width", args.width), ("--steps", args.steps), ("--eval-every", args.eval_every)):
        if value is not None:
            raise UsageError(f"coord-check sets the widths (--widths) and the steps (--coord-steps); drop {flag}")
    experiment, scale, overrides, only = grid_from_args(args)
    widths = args.widths or list(coord.WIDTHS)
    if len(set(widths)) < 2:
        raise UsageError(f"coord-check compares widths: --widths needs at least two different ones, got {widths}")
    overrides.setdefault("train.lr", coord.LR)
    if "parametrization" in overrides and "base_width" not in overrides:
        overrides["base_width"] = min(widths)  # the parametrization equals the plain run at the smallest width
    overrides.setdefault("seeds", coord.SEEDS)
    if overrides["seeds"] < 2:
        raise UsageError(f"coord-check needs at least 2 seeds for the slopes' uncertainty, got {overrides['seeds']}")
    overrides.update({"model.width": widths, "train.steps": args.coord_steps, "train.eval_every": 1})
    plan = experiments.resolve(experiment, scale, overrides, only)
    from initbench.inits.registry import is_plugin

    plugins = sorted({s.model.family for s in plan.specs if is_plugin(s.model.family)})
    if plugins:
        raise UsageError(
            f"coord-check probes each layer through initbench's layer-naming contract; the plug-in model "
            f"{plugins[0]} has none (not yet)"
        )
    specs = list(plan.full)
    kinds = {(s.model.family, s.model.depth, s.model.activation, s.init, s.train, s.parametrization) for s in specs}
    if len(kinds) != 1 or len({s.data for s in specs}) != 1:
        raise UsageError("coord-check judges one configuration over widths: give one value of every other field")
    store = None
    if args.out:
        store = ResultStore(args.out, kind="coord")
        store.check_writable()
        store.check_compatible(NUMERICS_VERSION)
    datasets = _load_datasets(specs, None)
    _check_models(specs, datasets, plan.experiment.source)
    _enable_compilation_cache()
    rows = coord.measure(specs, next(iter(datasets.values())))
    table = coord.verdicts(rows)
    first = specs[0]
    par = dict(first.parametrization).get("name", "none")
    print(
        f"coord-check: {first.model.family} {first.model.activation}, {first.init.label}, {first.train.optimizer} "
        f"lr {first.train.lr:g}, parametrization {par}; widths {', '.join(map(str, sorted(set(widths))))}; "
        f"{overrides['seeds']} seeds; mean |x| on a fixed batch after steps 1..{args.coord_steps}"
    )
    for r in table.itertuples():
        print(f"  step {r.step}  {r.layer:<24} slope {r.slope:+.3f} +- {r.half_width:.3f}  {r.verdict}")
    code = coord.exit_code(table)
    bad = table[table["verdict"].str.startswith(("grows", "shrinks", "diverged"))]
    summary = {0: "every layer width-stable", 3: "inconclusive (more seeds or widths narrow the intervals)"}
    if code == 1:
        named = ", ".join(f"{r.layer} (step {r.step}: {r.verdict})" for r in bad.itertuples())
        print(f"not width-stable: {named}")
    else:
        print(summary[code])
    if store is not None:
        with store.writing(NUMERICS_VERSION):
            store.write(rows, f"coord-{first.run_id}", {**provenance(), "verdicts": table.to_dict("records")})
        fig = coord.figure(rows)
        fig.savefig(Path(args.out) / "_coord.png", dpi=110)
        lines = ["| layer | step | slope | +- (95%) | seeds | verdict |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {r.layer} | {r.step} | {r.slope:+.3f} | {r.half_width:.3f} | {r.seeds} | {r.verdict} |"
            for r in table.itertuples()
        ]
        (Path(args.out) / "_verdicts.md").write_text("\n".join(lines) + "\n")
    return code


def _run(args: argparse.Namespace, proc) -> int:
    from initbench.benchmarks.runner import progress_mode, run_experiment

    if args.json and Path(args.json).resolve() == Path(args.out).resolve():
        raise UsageError(f"--json {args.json!r} is the results directory (--out); give another file")

    experiment, scale, overrides, only = grid_from_args(args)
    _enable_compilation_cache()
    summary = run_experiment(
        experiment,
        scale,
        args.out,
        overrides=overrides,
        only=only,
        devices=args.devices,
        max_members=args.max_members,
        data_dir=args.data_dir,
        progress=progress_mode(args.quiet),
        checkpoint_every_s=args.checkpoint_every,
    )
    if not proc.is_writer:
        return 0
    where = f"{len(summary['devices'])} device(s)" + (f" in {proc.count} processes" if proc.count > 1 else "")
    print(
        f"{summary['experiment']} ({summary['scale'] or 'base grid'}): {summary['trained']} runs trained in "
        f"{summary['cohorts']} cohorts, "
        f"{summary['skipped']} already complete"
        + (f", {summary['resumed_chunks']} chunk(s) resumed from a checkpoint" if summary["resumed_chunks"] else "")
        + f"; {summary['wall_s']:.1f}s, "
        f"{summary['member_steps_per_s']:.0f} run-steps/s on {where} -> {args.out}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    return 0


def _exit_process(err: BaseException, proc, *, debug: bool = False) -> None:
    """Ends a failed process of a multi-process job at once, with one line.

    A normal exit would wait in JAX's shutdown barrier for peers that may be gone (up to its
    timeout): a failed process prints its line and leaves with ``os._exit``.
    """
    from initbench.benchmarks.distributed import PEER_FAILURE_EXIT, as_peer_failure

    who = f"initbench: error (process {proc.index} of {proc.count})"
    failure = as_peer_failure(err) if isinstance(err, Exception) else None
    if isinstance(err, UsageError):
        if debug:
            traceback.print_exception(err)
        code, text = 2, f"{who}: {first_line(err)}"
    elif failure is not None:
        resume = "completed chunks are saved, rerun the same command to resume"
        code, text = PEER_FAILURE_EXIT, f"{who}: {failure}; {resume}"
    elif isinstance(err, KeyboardInterrupt):
        code, text = 130, f"{who}: interrupted; completed chunks are saved, rerun the same command to resume"
    else:
        traceback.print_exception(err)
        code, text = 1, f"{who}: {type(err).__name__} (traceback above)"
    print(text, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(code)


def _cmd_launch(args: argparse.Namespace) -> int:
    import math

    from initbench.benchmarks.launch import launch
    from initbench.benchmarks.runner import plan

    if not (math.isfinite(args.grace) and args.grace >= 0):
        raise UsageError(f"--grace must be a finite number of seconds >= 0, got {args.grace}")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if command[:1] == ["run"]:  # check the job here, once, before any process starts
        try:
            run_args = build_parser().parse_args(command)
        except SystemExit as exit_:  # argparse printed its one line
            return int(exit_.code or 0)
        experiment, scale, overrides, only = grid_from_args(run_args)
        plan(experiment, scale, run_args.out, overrides=overrides, only=only)

    return launch(
        args.num_processes,
        args.command,
        port=args.port,
        devices_per_process=args.devices_per_process,
        grace_s=args.grace,
    )


def _cmd_show(args: argparse.Namespace) -> int:
    from initbench.benchmarks.show import show

    experiment, scale, overrides, only = grid_from_args(args)
    print(show(experiment, scale, overrides, only))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from initbench.benchmarks.report import report

    paths = report(
        args.results_dir,
        args.out,
        target_accuracy=args.target_accuracy,
        best=args.best,
        x=args.x,
        hue=args.hue,
        metric=args.metric,
        tensorboard=args.tensorboard,
    )
    print(f"report: {paths['markdown']} ({len(paths['figures'])} figures)")
    if args.tensorboard is not None:
        runs = len(paths["tensorboard"]) - 1
        print(f"tensorboard: {runs} runs in {args.tensorboard} (tensorboard --logdir {args.tensorboard})")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    import pandas as pd

    from initbench.benchmarks.analysis.check import run_check
    from initbench.benchmarks.grid_flags import init_item
    from initbench.inits.registry import SCHEMES, expand, is_plugin
    from initbench.models.catalog import FAMILIES

    args.model = expand(args.model, FAMILIES)  # an installed entry point's name: its target
    plugin = is_plugin(args.model)
    if plugin:  # a user's model: its own options; what goes by initbench's layer contract is refused
        contract = [
            flag
            for flag, value in (
                ("--blocks", args.blocks),
                ("--norm", args.norm),
                ("--preset", args.preset),
                ("--parametrization", args.parametrization),
                ("--base-width", args.base_width),
            )
            if value
        ]
        if contract:
            raise UsageError(
                f"check: {contract[0]} is an option of initbench's model families, not of the plug-in model "
                f"{args.model} (give its own options with --model-args)"
            )
        if not args.input_shape:
            raise UsageError(
                f"check: the plug-in model {args.model} needs --input-shape (one example's shape, e.g. 784 or 28 28 1)"
            )
    else:
        FAMILIES[args.model]  # an unknown family: one line naming the choices, before the other checks
        if args.model_args:
            raise UsageError(f"check: --model-args are a plug-in model's options; {args.model} takes none")
    # every option that is given is used: one that this model or another option makes moot is refused
    moot = []
    if args.model != "mlp" and args.depth is not None and not plugin:
        moot.append(f"--depth (an MLP's; a {args.model} sets its own depth)")
    if args.model not in ("mlp", "resnet") and args.width is not None and not plugin:
        moot.append(f"--width (an MLP's or a ResNet's; a {args.model} sets its own widths)")
    if args.weight_variance is not None and args.init is not None and args.init not in SCHEMES:
        moot.append("--init (--weight-variance sets the initializer N(0, sigma_w^2 / fan_in))")
    if args.weight_variance is not None and args.init_args and (args.init not in SCHEMES or "base" in args.init_args):
        moot.append("--init-args (--weight-variance sets the initializer)")
    if args.bias_variance is not None and args.bias_init is not None:
        moot.append("--bias-init (--bias-variance sets the biases N(0, sigma_b^2))")
    if args.no_write and args.out is not None:
        moot.append("--out (--no-write writes nothing)")
    if moot:
        raise UsageError(f"check: drop {moot[0]}")
    args.init = args.init or "he_normal"
    item = init_item(args.init)  # `normal(stddev=0.1)` as `run` takes it
    if isinstance(item, dict):
        args.init = item.pop("name")
        both = sorted(set(item) & set(args.init_args or {}))
        if both:
            raise UsageError(f"check: --init and --init-args both set {', '.join(both)}; set each once")
        args.init_args = {**item, **(args.init_args or {})}
    if plugin and args.init in SCHEMES:
        raise UsageError(
            f"init {args.init} is a model-level scheme for initbench's models; the plug-in model {args.model} "
            "takes per-tensor initializers"
        )
    if not plugin:  # a plug-in model gets only what is given (it may declare no depth, width or activation)
        args.depth = args.depth or 50
        args.width = args.width or 512
        args.activation = args.activation or "relu"
    args.out = args.out or "results/check"
    extra: dict = {"preset": args.preset} if args.preset else dict(args.model_args or {})
    if args.model == "resnet":
        extra.update(blocks=tuple(args.blocks or (1, 1, 1)), normalization=args.norm or "batchnorm")
    elif args.blocks or args.norm:
        raise UsageError(f"--blocks and --norm are ResNet options; --model is {args.model}")
    bias = init_item(args.bias_init) if args.bias_init else "zeros"
    bias_name, bias_args = (bias, {}) if isinstance(bias, str) else (bias.pop("name"), bias)
    result, paths = run_check(
        model=args.model,
        depth=args.depth,
        width=args.width,
        activation=args.activation,
        init=args.init,
        init_args=args.init_args,
        bias_init=bias_name,
        bias_args=bias_args,
        weight_variance=args.weight_variance,
        bias_variance=args.bias_variance,
        input_variance=args.input_variance,
        batch_size=args.batch_size,
        input_shape=tuple(args.input_shape) if args.input_shape else None,
        seeds=args.seeds,
        tolerance=args.tolerance,
        transient=args.transient,
        dtype=args.dtype,
        out=None if args.no_write else args.out,
        extra=extra,
        parametrization=args.parametrization,
        base_width=args.base_width,
    )
    columns = [
        c
        for c in (
            "layer",
            "units",
            "judged",
            "measured_variance",
            "predicted_variance",
            "measured_over_predicted",
            "gradient_variance",
            "predicted_gradient_variance",
            "weight_gradient_variance",
        )
        if c in result.table
    ]
    print(
        f"model: {result.network.pop('model_label', args.model)}, {args.activation or 'its own activations'}, "
        f"{args.seeds} seed(s), {args.dtype}"
    )
    with pd.option_context("display.width", 220, "display.max_rows", 2000):
        print(result.table[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for k, v in sorted(result.network.items()):
        print(f"{k}: {v:.4g}")
    if result.phase:
        p = result.phase
        print(
            f"mean-field phase: {p['phase']} (chi_1 = {p['chi_1']:.4g}, q* = {p['q_star']:.4g}, "
            f"xi_q = {p['xi_q']:.4g}, xi_c = {p['xi_c']:.4g}); trainable depth ~6 xi_c = {p['trainable_depth']:.4g} "
            f"vs depth {p['depth']}"
        )
    for v in result.verdicts.values():
        interval = f"end-to-end factor {v.factor:.3g} [{v.factor_low:.3g}, {v.factor_high:.3g}]"
        rate = f"rate {v.rate:+.4f}/layer" if v.rate == v.rate else "rate n/a"
        print(f"{v.signal:9s} {v.verdict}: {rate}, {interval}" + (f"; {v.note}" if v.note else ""))
    summary = "PRESERVED" if result.passed else ("INCONCLUSIVE" if result.inconclusive else "NOT PRESERVED")
    print(
        f"verdict: {summary}; each signal's per-layer rate, projected over the depth, against a factor "
        f"{args.tolerance:g} with 95% confidence (finite-width noise and seeds)"
    )
    if paths:
        print(f"wrote {paths['results']}, {paths['table']}, {paths['figure']}")
    return 0 if result.passed else (3 if result.inconclusive else 1)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from initbench.benchmarks.reproduce import (
        NOT_JUDGED,
        REPRODUCTIONS,
        check_data,
        rederive,
        reproduce,
        summary,
        write,
        write_gallery,
    )
    from initbench.benchmarks.reproduce import folders as folders_of

    names = REPRODUCTIONS.names() if args.name == "all" else [REPRODUCTIONS[args.name].name]
    args.scale_given, args.scale = args.scale is not None, args.scale or "cpu"
    if args.name == "all" and not args.rejudge:  # all: those that have the scale (full: a few)
        names = [n for n in names if args.scale in REPRODUCTIONS[n].scales]
    for name in names:
        REPRODUCTIONS[name].check_scale(args.scale)  # one line before any work
    out = Path(args.out)
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():  # checked before any measuring: minutes of work must not end in this error
        raise UsageError(f"--out {str(out)!r}: {str(existing)!r} is a file, not a directory")
    failed = []
    if args.rejudge:  # the stored measurements, this code's criteria: nothing is measured
        from initbench.benchmarks.reproduce import rejudge

        if args.scale_given:
            raise UsageError("reproduce --rejudge takes each folder's own scale (provenance.json); drop --scale")
        folders = [f for n in names for f in folders_of(out, n).values()]  # every written scale of each
        if args.name != "all" and not folders:
            folders = [out / names[0]]  # rederive names what it lacks
        if not folders:
            raise UsageError(f"--out {str(out)!r} holds no written reproduction to re-judge")
        for folder in folders:  # every folder checked before any is rewritten
            rederive(folder)
        for folder in folders:
            claims = rejudge(folder)
            scale = json.loads((folder / "provenance.json").read_text()).get("scale")
            judged = summary([c for c in claims if c.kind == "claim"], [c for c in claims if c.kind == "check"], scale)
            print(f"{folder.name}: {judged} (re-judged from {folder / 'measurements.parquet'})")
            judged_ok = all(c.passed for c in claims if c.kind == "check" or scale != "smoke")  # smoke: checks only
            failed += [] if judged_ok else [folder.name]
        if args.name == "all":
            print(f"gallery: {write_gallery(args.out)}")
        return 1 if failed else 0
    check_data(names, args.scale)  # every dataset of every reproduction, before any measuring
    smoke = args.scale == "smoke"
    if smoke:
        print(
            "smoke scale: each reproduction's pipeline on toy sizes in seconds, a wiring check: its claims are not "
            "judged (use --scale cpu for verdicts); its checks are, and the exit code says whether they pass"
        )
    for name in names:
        result = reproduce(name, args.scale)
        folder = write(result, args.out)
        claims = [c for c in result.claims if c.kind == "claim"]
        checks = [c for c in result.claims if c.kind == "check"]
        print(f"{name} ({args.scale}): {summary(claims, checks, args.scale)}, {result.seconds:.1f}s -> {folder}")
        for c in result.claims:
            mark = NOT_JUDGED if smoke and c.kind == "claim" else c.verdict
            print(f"  {mark}  {c.name}: {c.measured}" + (f" [{c.note}]" if c.note and mark != NOT_JUDGED else ""))
        if not result.passed:
            failed.append(name)
    if args.name == "all":
        print(f"gallery: {write_gallery(args.out)}")
    return 1 if failed else 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from initbench.benchmarks.data.tfds_adapter import prepare

    print(f"prepared {args.dataset} in {prepare(args.dataset, args.data_dir, args.manual_dir)}")
    return 0


def _cmd_variance_table(args: argparse.Namespace) -> int:
    import pandas as pd

    from initbench.benchmarks.analysis.variance_table import variance_table

    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(variance_table(args.seed).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("initbench")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``initbench``."""
    parser = _Parser(prog="initbench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"initbench {_version()}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="list initializers, models, datasets, optimizers, experiments or reproductions")
    p.add_argument(
        "what",
        nargs="?",
        default="inits",
        choices=["inits", "models", "datasets", "optimizers", "experiments", "reproductions"],
    )
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("run", help="run an experiment (packaged, a TOML file, or ad-hoc flags); resumes")
    add_grid_flags(p)
    p.add_argument("--out", type=_directory, default="results", help="results directory (default: results)")
    p.add_argument("--devices", type=_positive, help="use the first N devices (default: all)")
    p.add_argument("--max-members", type=_positive, help="cap on runs trained together in one chunk")
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument("--json", type=_output_file, help="also write the run summary as JSON to this file")
    p.add_argument("--quiet", action="store_true", help="no progress (a bar on a terminal, else log lines)")
    p.add_argument(
        "--checkpoint-every",
        type=_seconds_or_off,
        default=60.0,
        help="save each chunk's training state in OUT/_checkpoints at most every S seconds, at evaluations "
        "(0: every evaluation; off: never); an interrupted chunk resumes there, bitwise (default 60)",
    )
    g = p.add_argument_group(
        "multi-process (jax.distributed)",
        "run the same command in every process; with none of these flags, a multi-process SLURM step, Open MPI "
        "job or TPU slice is detected",
    )
    g.add_argument("--coordinator", help="HOST:PORT where process 0 serves the job")
    g.add_argument("--num-processes", type=_positive, help="processes in the job")
    g.add_argument("--process-id", type=_nonnegative, help="this process's index, 0..N-1 (0 writes the results)")
    g.add_argument("--single-process", action="store_true", help="ignore a detected cluster environment")
    g.add_argument(
        "--heartbeat-timeout",
        type=_seconds,
        help="seconds of silence after which a process counts as dead (default 60)",
    )
    g.add_argument(
        "--join-timeout",
        type=_seconds,
        help="seconds to wait for every process to join the job (default 300)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "launch",
        help="run one `initbench run` as N local processes (testing multi-process; one multi-GPU node)",
        description="initbench launch -n N [--devices-per-process K] -- run EXPERIMENT [run options]",
    )
    p.add_argument("-n", "--num-processes", type=_positive, required=True)
    p.add_argument("--port", type=_positive, help="coordinator port on 127.0.0.1 (default: a free one)")
    p.add_argument("--devices-per-process", type=_positive, help="CPU devices per process (forced host devices)")
    p.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds the others get to stop after one process fails, before they are killed",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- run EXPERIMENT [options]")
    p.set_defaults(func=_cmd_launch)

    p = sub.add_parser(
        "coord-check",
        help="microsoft/mup's coordinate check: each layer's activation size over widths after k steps "
        "(exit 0 width-stable, 1 some layer grows or shrinks, 3 inconclusive)",
    )
    add_grid_flags(p)
    p.add_argument(
        "--widths", type=positive_ints, help="widths to compare (default 128,256,512,1024,2048; replaces --width)"
    )
    p.add_argument("--coord-steps", type=_positive, default=3, help="training steps, each judged (default 3)")
    p.add_argument("--out", type=_directory, help="also write the rows (a `coord` results directory) and a figure")
    p.set_defaults(func=_cmd_coord)

    p = sub.add_parser("show", help="print an experiment's resolved grid: runs, cohorts, what varies, work")
    add_grid_flags(p)
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("report", help="tables and figures from a results directory")
    p.add_argument("results_dir")
    p.add_argument("--out", help="output directory (default: RESULTS_DIR/_report)")
    p.add_argument("--target-accuracy", type=float, default=0.9)
    p.add_argument(
        "--tensorboard", help="also write every run's curves as TensorBoard event files here (extra: tensorboard)"
    )
    p.add_argument("--best", help="a field (e.g. lr): its best value per configuration of the others (best_FIELD.csv)")
    p.add_argument("--x", help="a field: a figure of --metric against it per section")
    p.add_argument("--hue", help="a field whose values are the --x figure's lines")
    p.add_argument(
        "--metric",
        default="final_train_loss",
        help="what --best and --x judge: final_train_loss (default), final_test_accuracy, best_test_accuracy, "
        "initial_train_loss",
    )
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "check",
        help="variance-preservation check: forward, backward, Jacobian (exit 0 preserved, 1 not, 3 inconclusive)",
    )
    p.add_argument("--model", default="mlp", help="mlp, lenet5, plain_cnn, resnet or a plug-in package.module:Attr")
    p.add_argument("--model-args", type=kwargs, help="a plug-in model's own options, e.g. hidden=64")
    p.add_argument("--depth", type=_positive, help="MLP hidden layers (default 50)")
    p.add_argument("--width", type=_positive, help="MLP units, ResNet base channels (default 512)")
    p.add_argument("--blocks", type=positive_ints, help="ResNet blocks per stage, e.g. 3,3,3 (default 1,1,1)")
    p.add_argument("--norm", choices=["none", "batchnorm", "layernorm"], help="ResNet normalization")
    p.add_argument("--activation", help="default relu (a plug-in model: its own unless given)")
    p.add_argument("--init", help="initializer or scheme (default he_normal)")
    p.add_argument("--init-args", type=kwargs, help="initializer arguments, e.g. stddev=0.01")
    p.add_argument("--bias-init", help="bias initializer, e.g. zeros or normal(stddev=0.2236)")
    p.add_argument(
        "--weight-variance", type=float, help="sigma_w^2: weights N(0, sigma_w^2 / fan_in) (replaces --init)"
    )
    p.add_argument("--bias-variance", type=float, help="sigma_b^2: biases N(0, sigma_b^2) (replaces --bias-init)")
    p.add_argument("--input-variance", type=float, default=1.0, help="inputs N(0, v I) (default 1)")
    p.add_argument("--preset", help="plain_cnn preset")
    p.add_argument("--batch-size", type=_positive, default=256)
    p.add_argument("--input-shape", type=_positive, nargs="+", help="one example's shape (default: width, or 32 32 3)")
    p.add_argument("--seeds", type=_positive, default=4, help="networks judged together (vmapped; default 4)")
    p.add_argument("--tolerance", type=float, default=2.0, help="allowed end-to-end factor (default 2)")
    p.add_argument("--transient", type=_nonnegative, help="layers before the rate fit (default min(5, depth/5))")
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default="float32",
        help="float64 separates real explosion from float32 overflow",
    )
    p.add_argument(
        "--parametrization",
        help="scale each layer class's initial weights as this width parametrization does (mup, ntk, a table:...)",
    )
    p.add_argument("--base-width", type=_positive, help="the width at which the parametrization equals the plain init")
    p.add_argument("--out", help="results directory (default results/check)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("reproduce", help="reproduce a paper's figures and check its claims (exit 0 all hold, 1 not)")
    p.add_argument("name", help="a reproduction (initbench list reproductions) or all")
    p.add_argument(
        "--scale",
        choices=["smoke", "cpu", "full", "paper"],
        default=None,
        help="default cpu; full: the paper's setup as far as it fits a 2-core CPU (the reproductions that have one;"
        " written to OUT/NAME-full)",
    )
    p.add_argument("--out", type=_directory, default="results/reproductions")
    p.add_argument(
        "--rejudge",
        action="store_true",
        help="measure nothing: re-judge the written folder(s) under --out from their stored measurements with this "
        "code's criteria (verdicts rewritten; provenance records the judging commit)",
    )
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("prepare", help="download and prepare a TFDS dataset (needs initbench[tfds] and internet)")
    p.add_argument("dataset")
    p.add_argument("--data-dir")
    p.add_argument("--manual-dir")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("variance-table", help="measured vs target variance of every initializer")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_variance_table)
    for command in sub.choices.values():  # `initbench run ... --debug` as well as `initbench --debug run ...`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return parser


_DEBUG_HELP = "on bad input, print the traceback above the one-line error (also: INITBENCH_DEBUG=1)"


def debugging(args: argparse.Namespace | None = None) -> bool:
    """Whether a usage error shows its traceback: ``--debug`` or a non-empty ``INITBENCH_DEBUG`` other than 0."""
    return bool(getattr(args, "debug", False)) or os.environ.get("INITBENCH_DEBUG", "0") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the exit code.

    Bad input (a :class:`~initbench.inits.errors.UsageError`: unknown names, bad numbers,
    unusable directories, unprepared datasets, incompatible results) prints one line on stderr
    and returns 2; with ``--debug`` (or ``INITBENCH_DEBUG=1``) its traceback comes first. Any other
    exception is a bug: it propagates with its traceback (exit 1), also when it was raised while
    a model was traced for validation.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: --help/--version (0) or a usage error (2, one line printed)
        return int(exit_.code or 0)
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UsageError as err:
        if debugging(args):  # where the validation fired, and the error it translated (its __cause__)
            traceback.print_exception(err)
        print(f"initbench: error: {first_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "initbench: interrupted; completed chunks are saved and chunks in training checkpointed: rerun the same "
            "command to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
