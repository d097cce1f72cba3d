"""``initbench show``: an experiment's resolved grid, before running it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from initbench.benchmarks import experiments

# identity columns shown by show, in this order (the rest are implied by them or constant)
SHOWN = (
    "family",
    "model",
    "depth",
    "width",
    "activation",
    "model_options",
    "init",
    "init_args",
    "bias_init",
    "bias_args",
    "init_scale",
    "parametrization",
    "base_width",
    "depth_alpha",
    "base_depth",
    "dataset",
    "dataset_options",
    "batch_size",
    "eval_examples",
    "optimizer",
    "optimizer_args",
    "lr",
    "momentum",
    "weight_decay",
    "lr_scale",
    "wd_scale",
    "eps_scale",
    "clip_norm",
    "label_smoothing",
    "divergence_factor",
    "layer_records",
    "schedule",
    "warmup_steps",
    "steps",
    "eval_every",
    "seed",
)


def _params(spec: Any, cache: dict) -> int | None:
    """Parameters of a run's model on its dataset (None for datasets that need preparing)."""
    from initbench.benchmarks import data as data_lib

    key = (spec.model, spec.architecture, spec.data.name, spec.data.extra)
    if key not in cache:
        rough = (spec.model.depth or 1) * (spec.model.width or 1) ** 2
        if not data_lib.entry(spec.data.name).offline or rough > 1e10:  # unprepared, or absurdly large
            cache[key] = None
        else:
            import jax
            import jax.numpy as jnp

            from initbench.benchmarks.train import build_model
            from initbench.models._build import count_params

            dataset = data_lib.load(spec.data.name, **dict(spec.data.extra))
            model = build_model(spec, dataset)
            x = jnp.zeros((1, *dataset.input_shape), jnp.float32)
            shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
            cache[key] = count_params(shapes["params"])
    return cache[key]


def programs(specs: Sequence[Any]) -> int:
    """How many training programs the runs compile: the trainer's program key without devices.

    A program depends on the model as built, the data's shapes and the optimizer's structure
    (``TrainSpec.program``), never on the init, the seed or the values of ``HYPER_PARAMETERS``.
    Cohorts of different experiments or benchmarks can share one.
    """
    return len({(s.model, s.architecture, s.data, s.train.program, s.scales_eps) for s in specs})


def _check(specs: Sequence[Any], source: str) -> None:
    """What ``run`` checks before any work: models against their data, lr_scale/wd_scale selectors.

    Only the runs whose dataset is offline (a dataset not prepared here cannot be read).
    """
    from initbench.benchmarks import data as data_lib
    from initbench.benchmarks.runner import _check_models, _load_datasets

    offline = [s for s in specs if data_lib.entry(s.data.name).offline]
    if offline:
        _check_models(offline, _load_datasets(offline, None), source)


def show(
    experiment: experiments.Experiment,
    scale: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    only: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The resolved grid as text: runs, cohorts, the fields that vary, the fixed ones, the work."""
    from initbench.benchmarks.runner import cohorts

    plan = experiments.resolve(experiment, scale, overrides, only)
    _check(plan.specs, plan.experiment.source)
    exp = plan.experiment
    lines = [f"experiment {exp.name} ({exp.source}), scale {plan.scale or '(base grid)'}"]
    if exp.description:
        lines.append(f"  {exp.description}")
    groups = cohorts(plan.specs)
    lines.append(
        f"runs: {len(plan.specs)}"
        + (f" of the grid's {len(plan.full)} (--only)" if len(plan.specs) != len(plan.full) else "")
        + f"; cohorts: {len(groups)}; compiled training programs: {programs(plan.specs)}"
        + " (runs that differ only in init, seed, lr, momentum, weight decay, clip norm, lr_scale, wd_scale, "
        "eps_scale or divergence factor share one)"
    )
    implied = ("family", "depth", "width", "model_options")  # parts of the model label
    shown = [k for k in SHOWN if k not in implied]
    varying = {k: v for k, v in plan.varying.items() if k in shown and len(v) > 1}
    fixed = {k: v[0] for k, v in plan.varying.items() if k in shown and len(v) == 1 and v[0] not in (None, "", "{}")}
    lines.append("varies: " + ("; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in varying.items()) or "nothing"))
    lines.append("fixed: " + "; ".join(f"{k} = {v}" for k, v in fixed.items()))
    run_steps = sum(s.train.steps for s in plan.specs)
    examples = sum(s.train.steps * s.data.batch_size for s in plan.specs)
    lines.append(f"work: {run_steps:,} run-steps, {examples:,} training examples")
    cache: dict = {}
    lines.append("cohorts:")
    for i, group in enumerate(groups, 1):
        first = group[0]
        params = _params(first, cache)
        size = f"{params:,} parameters" if params is not None else "parameters: dataset not prepared here"
        flops = ""
        if params is not None and first.model.family == "mlp":
            total = 6 * params * sum(s.train.steps * s.data.batch_size for s in group)
            flops = f", ~{total:.2g} training FLOPs (6 x parameters x examples)"
        lines.append(
            f"  {i}. {first.model.label} {first.model.activation} on {first.data.name} "
            f"(batch {first.data.batch_size}), "
            f"{first.train.optimizer} lr {_values(group, 'lr')}, {first.train.steps} steps: {len(group)} runs; "
            f"{size}{flops}"
        )
    return "\n".join(lines)


def _values(group: Sequence[Any], field: str) -> str:
    """A train field's values over a cohort's runs: ``0.1`` or ``0.01..0.1 (3 values)``."""
    values = sorted({getattr(s.train, field) for s in group})
    return f"{values[0]:g}" if len(values) == 1 else f"{values[0]:g}..{values[-1]:g} ({len(values)} values)"
