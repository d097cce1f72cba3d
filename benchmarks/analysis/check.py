r"""The variance-preservation check: per-layer measured variance vs theory and vs layer 1.

A finite-width network's variance fluctuates around the mean-field value. Through layer
:math:`l` the relative standard deviation of the measured pre-activation second moment
:math:`q^l` is :math:`\sigma_l = \sqrt{\sum_{k \le l} 2 / (N_k r_{k-1})}`, where :math:`N_k`
is the layer's width and :math:`r` the participation ratio (effective rank) of the previous
layer's activations (of the inputs for layer 1): with Gaussian weights
:math:`\mathrm{tr}(W S W^T)` has relative variance :math:`2\,\mathrm{tr}(S^2)/(N\,\mathrm{tr}(S)^2) = 2/(N r)`.
It is divided by :math:`\sqrt{\text{seeds}}` when seeds are averaged (a layer without
activation statistics uses :math:`r = 1`, the widest band).

Verdict per layer, from :math:`\rho_l = q^l / q^1`: ``preserved`` when
:math:`1/t_l \le \rho_l \le t_l`, ``vanishing`` below, ``exploding`` above, with
:math:`t_l = t\, e^{3\sigma_l}`: the stated factor ``t = tolerance`` (default 2) beyond what
3 standard deviations of finite-width noise explain. The head is reported, not judged.

Where the mean-field theory applies (a fully connected net whose initializer has per-entry
moments, so :math:`\sigma_w^2 = n_{in}\mathrm{Var}[W]`), each layer also gets the predicted
:math:`q^l` (:func:`benchmarks.analysis.theory.predicted_variances`) and ``matches_theory``:
:math:`|q^l_{meas}/q^l_{pred} - 1| \le 5\sigma_l`, or both below 1e-30, or both above 1e30
(beyond float32's range both sides agree on the trend).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from initbench.benchmarks.analysis import propagation, theory
from initbench.inits.errors import UsageError, positive_int


@dataclasses.dataclass
class CheckResult:
    """Outcome of a check.

    Attributes:
      table: One row per layer: measured/predicted variance, ratios, tolerance, verdicts.
      network: Network-level metrics (Jacobian), measured and predicted.
      rows: The tidy probe rows (for the ResultStore).
      tolerance: The factor ``t`` of the verdicts.
      passed: Every judged layer is preserved.
    """

    table: pd.DataFrame
    network: dict[str, float]
    rows: pd.DataFrame
    tolerance: float
    passed: bool


def _verdict(ratio: float, tolerance: float) -> str:
    if math.isnan(ratio):  # 0 / 0: no signal left at all
        return "vanishing"
    if ratio > tolerance:
        return "exploding"
    return "vanishing" if ratio < 1 / tolerance else "preserved"


def check_variance(
    model: Any,
    variables: Any | None,
    batch: jax.Array,
    *,
    activation: Any = None,
    weight_variance: float | None = None,
    bias_variance: float = 0.0,
    orthogonal: bool = False,
    tolerance: float = 2.0,
    seeds: list[int] | None = None,
    labels: jax.Array | None = None,
) -> CheckResult:
    r"""Checks how a network propagates variance at initialization; works on any Flax module.

    Args:
      model: A Flax linen module (ours or a user's).
      variables: Its variables; None with ``seeds`` to initialize one network per seed.
      batch: Inputs ``(B, ...)``.
      activation: The activation (theory, and activation statistics of models that do not sow).
      weight_variance: :math:`\sigma_w^2` for the theory (None: no theory columns).
      bias_variance: :math:`\sigma_b^2` for the theory.
      orthogonal: Whether the weights are orthogonal (Jacobian spread theory).
      tolerance: Factor ``t`` of the verdicts (> 1).
      seeds: Initialize and probe these seeds (vmapped), averaging the measurements.
      labels: Labels for a cross-entropy backward pass (else a random readout).

    Raises:
      ValueError: tolerance <= 1, or neither variables nor seeds.
    """
    if not tolerance > 1:
        raise UsageError(f"tolerance must be > 1, got {tolerance}")
    if seeds:
        rows = propagation.propagation_over_seeds(model, batch, seeds, labels=labels, activation=activation)
    elif variables is not None:
        rows = propagation.propagation(model, variables, batch, labels=labels, activation=activation)
    else:
        raise UsageError("check_variance needs variables or seeds")
    n_seeds = len(seeds) if seeds else 1
    wide = propagation.layer_table(rows)
    per_layer = wide.groupby(["layer_index", "layer"], sort=True).mean(numeric_only=True).reset_index()
    names = list(per_layer["layer"])
    n_judged = max(1, len(names) - 1)
    q = per_layer["pre_activation_second_moment"].to_numpy()
    x = np.asarray(batch, np.float64).reshape(batch.shape[0], -1)
    participation = per_layer.get("activation_participation_ratio", pd.Series(np.nan, index=per_layer.index))
    previous = np.concatenate([[float(propagation.participation_ratio(jnp.asarray(x)))], participation.to_numpy()[:-1]])
    previous = np.maximum(np.nan_to_num(previous, nan=1.0), 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sigma = np.sqrt(np.cumsum(2.0 / (per_layer["units"].to_numpy() * previous)) / n_seeds)
        ratio = q / q[0]
    band = tolerance * np.exp(3 * sigma)
    table = pd.DataFrame(
        {
            "layer": names,
            "measured_variance": q,
            "ratio_to_layer1": ratio,
            "allowed_factor": band,
            "gradient_variance_ratio": per_layer["gradient_variance_ratio"].to_numpy(),
        }
    )
    table["verdict"] = [_verdict(r, t) for r, t in zip(ratio, band, strict=True)]
    table.loc[n_judged:, "verdict"] = "not judged"
    network = propagation.network_metrics(rows)
    if weight_variance is not None and activation is not None:
        input_moment = float(np.mean(x**2))
        pred = theory.predicted_variances(activation, len(names), weight_variance, bias_variance, input_moment)
        table["predicted_variance"] = pred["pre_activation_variance"]
        with np.errstate(divide="ignore", invalid="ignore"):
            table["measured_over_predicted"] = table["measured_variance"] / table["predicted_variance"]
        table["theory_tolerance"] = 5 * sigma
        # beyond float32's range (underflow to 0, overflow to inf) both sides agree on the trend
        both_zero = (table["measured_variance"] < 1e-30) & (table["predicted_variance"] < 1e-30)
        both_huge = (table["measured_variance"] > 1e30) & (table["predicted_variance"] > 1e30)
        close = np.abs(table["measured_over_predicted"] - 1) <= table["theory_tolerance"]
        table["matches_theory"] = close | both_zero | both_huge
        spectrum = theory.jacobian_spectrum(
            activation, len(names) - 1, weight_variance, bias_variance, input_moment, orthogonal=orthogonal
        )
        network.update({f"predicted_{k}": v for k, v in spectrum.items()})
    passed = bool((table["verdict"].iloc[:n_judged] == "preserved").all())
    return CheckResult(table, network, rows, tolerance, passed)


def figure(result: CheckResult, path: str | Path, title: str) -> Path:
    """Variance per layer on a log scale, measured (and predicted), with the verdict band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result.table
    x = np.arange(1, len(t) + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogy(x, t["measured_variance"], "o-", label="measured", markersize=3)
    if "predicted_variance" in t:
        ax.semilogy(x, t["predicted_variance"], "--", label="mean-field prediction")
    q1 = float(t["measured_variance"].iloc[0])
    band = t["allowed_factor"].to_numpy()
    ax.fill_between(
        x,
        q1 / band,
        q1 * band,
        color="green",
        alpha=0.1,
        label=f"preserved: x/{result.tolerance:g} + 3 sd finite width",
    )
    ax.set_xlabel("layer")
    ax.set_ylabel("pre-activation variance")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def check_identity(model: Any, init: Any, input_shape: tuple[int, ...], batch_size: int, seed: int) -> dict[str, Any]:
    """The identity columns of one checked network (``results.CHECK``), with a stable ``run_id``.

    Args:
      model: Its ``ModelSpec``.
      init: Its ``InitSpec``.
      input_shape: One input's shape.
      batch_size: Inputs probed.
      seed: The network's seed.
    """
    from initbench.benchmarks.spec import NUMERICS_VERSION

    ident = {
        "numerics_version": NUMERICS_VERSION,
        "model": model.label,
        "family": model.family,
        "depth": model.depth,
        "width": model.width,
        "activation": model.activation,
        "model_options": json.dumps(dict(model.extra), sort_keys=True, default=str),
        "init": init.name,
        "init_args": init.args_label,
        "bias_init": init.bias,
        "bias_args": init.bias_args_label,
        "input_shape": "x".join(str(d) for d in input_shape),
        "batch_size": batch_size,
        "seed": seed,
    }
    run_id = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"run_id": run_id, **ident}


def run_check(
    *,
    model: str = "mlp",
    depth: int | None = 50,
    width: int | None = 512,
    activation: str = "relu",
    init: str = "he_normal",
    init_args: dict[str, Any] | None = None,
    bias_init: str = "zeros",
    batch_size: int = 256,
    input_shape: tuple[int, ...] | None = None,
    seeds: int = 1,
    tolerance: float = 2.0,
    out: str | Path | None = "results/check",
    extra: dict[str, Any] | None = None,
) -> tuple[CheckResult, dict[str, Any]]:
    r"""The ``initbench check`` job: build the model, probe Gaussian inputs, judge, write results.

    Inputs are :math:`\mathcal{N}(0, I)` of ``input_shape`` (default: ``(width,)`` for the MLP,
    so every layer is square; ``(32, 32, 3)`` for the CNNs). Writes tidy rows to a ResultStore,
    ``check_<...>.png`` and ``check_<...>.csv`` under ``out/_report`` (None: write nothing).

    Returns:
      The result and a dict of written paths.
    """
    from initbench import inits, models
    from initbench.benchmarks.results import ResultStore, provenance
    from initbench.benchmarks.spec import NUMERICS_VERSION, InitSpec, ModelSpec, options

    init_args = dict(init_args or {})
    init_fn = inits.get(init, **init_args)  # validates the name and arguments
    inits.get_bias(bias_init, fan_in=1)  # validates the name
    if input_shape is None:
        input_shape = (width,) if model == "mlp" else (32, 32, 3)
    for name, value in (("batch_size", batch_size), ("seeds", seeds)):
        positive_int(name, value)
    config = dict(extra or {})
    if model == "mlp":
        config.update(depth=depth, width=width, scan=True)
    net = models.build(
        model, input_shape=input_shape, num_classes=10, activation=activation, kernel_init=init_fn,
        bias_init=bias_init, **config,
    )  # fmt: skip
    store = ResultStore(out, kind="check") if out is not None else None
    if store is not None:
        from initbench.benchmarks.spec import NUMERICS_VERSION as numerics

        store.check_writable()
        store.check_compatible(numerics)
    x = jax.random.normal(jax.random.key(10_000), (batch_size, *input_shape))
    sw = sb = None
    if model == "mlp" and init_fn.moments is not None:
        sw, _ = theory.init_variances(init_fn, width)
        sb = inits.get_bias(bias_init, fan_in=width).target((width,))[1]
    structured = init in ("orthogonal", "delta_orthogonal", "identity", "dirac")
    result = check_variance(
        net, None, x, activation=activation, weight_variance=sw, bias_variance=sb or 0.0,
        orthogonal=structured, tolerance=tolerance, seeds=list(range(seeds)),
    )  # fmt: skip
    paths: dict[str, Any] = {}
    if store is not None:
        model_spec = ModelSpec(
            model,
            activation,
            depth if model == "mlp" else None,
            width if model == "mlp" else None,
            options(**(extra or {})),
        )
        init_spec = InitSpec(init, options(**init_args), bias_init)
        rows = result.rows.copy()
        ident = pd.DataFrame(
            [check_identity(model_spec, init_spec, tuple(input_shape), batch_size, int(s)) for s in rows["seed"]]
        )
        tidy = pd.concat(
            [ident.reset_index(drop=True), rows[["layer", "layer_index", "metric", "value"]].reset_index(drop=True)],
            axis=1,
        )
        stem = "".join(c if c.isalnum() else "_" for c in f"check_{model_spec.label}_{activation}_{init_spec.label}")
        figures = Path(out) / "_report"
        with store.writing(NUMERICS_VERSION):
            paths["results"] = store.write(
                tidy, stem, {**provenance(), "check": {"tolerance": tolerance, "passed": result.passed}}
            )
            figures.mkdir(exist_ok=True)
            paths["table"] = figures / f"{stem}.csv"
            result.table.to_csv(paths["table"], index=False)
            paths["figure"] = figure(
                result, figures / f"{stem}.png", f"{model_spec.label} {activation} {init_spec.label}"
            )
    return result, paths
