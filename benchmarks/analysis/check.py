r"""The variance-preservation check: forward, backward and Jacobian verdicts from per-layer rates.

A network at initialization is judged on three signals, each in the direction it propagates:

* **forward**: the pre-activation second moment :math:`q^l` of each layer, input to output;
* **backward**: the variance of the back-propagated gradient :math:`\partial L/\partial h^l`,
  output to input (the ``dL/dW`` variances are reported beside it);
* **Jacobian**: the mean squared singular value of :math:`J = \partial h^L/\partial x`, as a
  per-layer rate after the first layer's map.

**Rate, not ratio.** A layer-by-layer ratio to layer 1 mixes the first layers' transient (tanh
moving toward its fixed point :math:`q^*`) with the trend, and its band must widen with
finite-width noise until almost anything passes. Instead, for each seed, the slope :math:`b` of
:math:`\log v_l` over the layers after a declared transient (``transient``, default
:math:`\min(5, \lfloor L/5 \rfloor)` layers) is fitted by least squares; its uncertainty is the
larger of the spread over seeds and the finite-width theory: :math:`\log q^l` performs a random
walk with per-layer variance :math:`\tau_l^2 = 2/(N_l r_{l-1})` (:math:`N`: width, :math:`r`:
participation ratio of the layer's input), and the least-squares slope of a random walk over
:math:`n` points has variance :math:`\tfrac{6}{5}\bar\tau^2/n`, divided by the seeds. The
rate is projected over the whole depth, :math:`F = e^{b(L-1)}`, with a 95% interval, and
judged against the tolerance :math:`t`:

* ``exploding`` / ``vanishing``: the whole interval of :math:`F` is above :math:`t` / below :math:`1/t`;
* ``critical: slow decay``: decaying, and :math:`\log v_l` is better fitted by a power of the
  layer index (:math:`v_l \propto l^{c}`, polynomial, e.g. tanh at :math:`\chi_1 = 1`, where
  :math:`q^l \approx 1/(2l)`) than by an exponential (same number of parameters);
* ``preserved``: the whole interval lies within :math:`[1/t, t]`;
* ``inconclusive at width N``: the interval straddles a boundary; the verdict says how many
  times more seeds (or width) would decide it (the standard error scales as
  :math:`1/\sqrt{\text{seeds}\cdot N}`).

**Non-finite values** are located where they first appear in the propagation direction and
decide the verdict: ``overflow at layer k`` (inf, or NaN after growth, or beyond
:math:`10^{37}` in float32) is ``exploding``; ``underflow at layer k`` (exactly 0, or below
:math:`10^{-37}`) is ``vanishing``; a backward pass through a forward overflow is
``exploding`` (unmeasurable). Only the finite layers before are fitted. ``--dtype float64``
separates real explosion from float32's range.

**Theory** (fully connected nets whose initializer has per-entry moments): the mean-field phase
(ordered :math:`\chi_1 < 1`, critical, chaotic :math:`\chi_1 > 1`; Poole et al. 2016,
Schoenholz et al. 2017) with :math:`q^*`, :math:`\chi_1`, :math:`\xi_q`, :math:`\xi_c` and the
trainable depth :math:`\approx 6\xi_c`, and the predicted :math:`q^l` and gradient variance of
each layer beside the measurement.

**Residual networks**: a layer that contains other sown layers (a ResNet block, which sows its
output) stands for them: the judged chain is the outermost layers (the residual stream); the
layers inside a branch are reported, not judged. The head is reported, not judged.
"""

from __future__ import annotations

import dataclasses
import functools
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
from initbench.benchmarks.paths import host_memory
from initbench.inits.errors import UsageError, first_line, positive_int

SIGNALS = ("forward", "backward", "jacobian")
PASSING = ("preserved", "critical: slow decay")
Z95 = 1.959964
_HUGE = {np.dtype("float32"): 1e38, np.dtype("float64"): 1e307}
_TINY = {np.dtype("float32"): 1e-37, np.dtype("float64"): 1e-300}


@dataclasses.dataclass(frozen=True)
class Verdict:
    r"""The verdict on one signal.

    Attributes:
      signal: ``forward``, ``backward`` or ``jacobian``.
      verdict: ``preserved``, ``exploding``, ``vanishing``, ``critical: slow decay`` or
        ``inconclusive at width N``.
      rate: Fitted change of :math:`\log v` per layer (nan when not fitted).
      rate_se: Its standard error.
      factor: Projected end-to-end factor :math:`e^{rate (L-1)}`.
      factor_low: Lower end of its 95% interval.
      factor_high: Upper end.
      fitted_layers: Layer numbers (1-based, propagation order) used by the fit.
      note: Non-finite location, the power-law exponent, or what would decide an inconclusive case.
    """

    signal: str
    verdict: str
    rate: float = math.nan
    rate_se: float = math.nan
    factor: float = math.nan
    factor_low: float = math.nan
    factor_high: float = math.nan
    fitted_layers: tuple[int, ...] = ()
    note: str = ""

    @property
    def passed(self) -> bool:
        """Preserved, or critical with slow (polynomial) decay."""
        return self.verdict in PASSING

    @property
    def inconclusive(self) -> bool:
        """Finite-width noise too large to decide."""
        return self.verdict.startswith("inconclusive")


@dataclasses.dataclass
class CheckResult:
    """Outcome of a check.

    Attributes:
      table: One row per layer: measured and predicted forward and backward variances, which
        layers are judged.
      verdicts: ``forward``, ``backward``, ``jacobian`` -> :class:`Verdict`.
      network: Network-level metrics (Jacobian), measured and predicted.
      phase: Mean-field phase and depth scales (fully connected nets with theory), else empty.
      rows: The tidy probe rows (for the ResultStore).
      tolerance: The factor ``t``.
    """

    table: pd.DataFrame
    verdicts: dict[str, Verdict]
    network: dict[str, float]
    phase: dict[str, Any]
    rows: pd.DataFrame
    tolerance: float

    @property
    def passed(self) -> bool:
        """Every signal is preserved (or critical with slow decay)."""
        return all(v.passed for v in self.verdicts.values())

    @property
    def inconclusive(self) -> bool:
        """No signal failed, but at least one could not be decided."""
        return not any(v.verdict in ("exploding", "vanishing") for v in self.verdicts.values()) and any(
            v.inconclusive for v in self.verdicts.values()
        )


def _quiet(fn):
    """Runs ``fn`` with numpy's floating-point warnings off: non-finite values are data here."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapped


def _first_bad(series: np.ndarray, dtype: np.dtype) -> tuple[int, str] | None:
    """``(index, "overflow"|"underflow")`` where any seed's series first leaves the representable range."""
    huge, tiny = _HUGE.get(dtype, 1e37), _TINY.get(dtype, 1e-37)
    start = np.nanmax(np.abs(series[:, 0])) if np.isfinite(series[:, 0]).any() else math.nan
    for k in range(series.shape[1]):
        col = series[:, k]
        if np.any(np.isposinf(col)) or np.any(np.abs(col[np.isfinite(col)]) > huge):
            return k, "overflow"
        if np.any(np.isnan(col)):
            before = series[:, :k][np.isfinite(series[:, :k])]
            grew = k > 0 and before.size and np.nanmax(before) >= (start if math.isfinite(start) else 1.0)
            return k, "overflow" if grew else "underflow"
        if (start > 0 or k == 0) and np.any(np.abs(col) < tiny):
            return k, "underflow"
    return None


def _slopes(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slopes of each row of ``y`` on ``x`` and the rows' residual sums of squares."""
    xc = x - x.mean()
    slope = (y - y.mean(axis=1, keepdims=True)) @ xc / np.sum(xc**2)
    resid = y - y.mean(axis=1, keepdims=True) - slope[:, None] * xc[None, :]
    return slope, np.sum(resid**2, axis=1)


@_quiet
def judge(
    signal: str,
    series: np.ndarray,
    noise: np.ndarray,
    *,
    tolerance: float,
    transient: int,
    width: int,
    dtype: np.dtype = np.dtype("float32"),
    layer_numbers: np.ndarray | None = None,
    ordered: bool = False,
) -> Verdict:
    r"""Judges one signal from its per-layer values in propagation order.

    Args:
      signal: Its name.
      series: ``(seeds, layers)`` positive values (second moments, variances), propagation order.
      noise: ``(layers,)`` per-layer variance :math:`\tau_l^2` of :math:`\log v_l` from finite width.
      tolerance: The factor ``t`` (> 1).
      transient: Layers skipped by the fit: those with layer number <= ``transient``.
      width: The narrowest judged width (named in an inconclusive verdict).
      dtype: The computation's float type (its representable range).
      layer_numbers: Each entry's layer number counted from the input (1..L; default: the
        propagation order). A power law is fitted in the layer number: the backward signal of
        a critical tanh net falls like a power of the distance from the input.
      ordered: Mean-field theory puts the net in the ordered phase (chi_1 < 1): its decay is
        exponential, never ``critical``.
    """
    series = np.asarray(series, np.float64)
    seeds, depth = series.shape
    bad = _first_bad(series, np.dtype(dtype))
    end = depth if bad is None else bad[0]
    note = "" if bad is None else f"{bad[1]} at layer {bad[0] + 1} ({np.dtype(dtype).name})"
    # the transient is a property of the layer number (distance from the input): the first
    # layers for the forward signal, the last ones the backward signal reaches
    numbers_all = np.arange(depth) + 1 if layer_numbers is None else np.asarray(layer_numbers)
    fitted = np.asarray([k for k in range(end) if numbers_all[k] > transient], dtype=int)
    if len(fitted) < 3:
        fitted = np.arange(end)
    rate = se = log_f = math.nan
    lo = hi = math.nan
    if len(fitted) >= 2:
        x = (fitted + 1).astype(np.float64)
        logs = np.log(np.abs(series[:, fitted]))
        slopes, sse_exp = _slopes(x, logs)
        rate = float(np.mean(slopes))
        se_theory = math.sqrt(1.2 * float(np.mean(noise[fitted])) / len(fitted) / seeds)
        se_seeds = float(np.std(slopes, ddof=1) / math.sqrt(seeds)) if seeds >= 3 else 0.0
        se = max(se_theory, se_seeds)
        log_f = rate * (depth - 1)
        lo, hi = log_f - Z95 * se * (depth - 1), log_f + Z95 * se * (depth - 1)
    kw = dict(rate=rate, rate_se=se, fitted_layers=tuple(sorted(int(numbers_all[i]) for i in fitted)))
    if math.isfinite(log_f):
        kw.update(
            factor=math.exp(min(log_f, 700)), factor_low=math.exp(min(lo, 700)), factor_high=math.exp(min(hi, 700))
        )
    if bad is not None:
        return Verdict(signal, "exploding" if bad[1] == "overflow" else "vanishing", note=note, **kw)
    if not math.isfinite(log_f):
        return Verdict(signal, f"inconclusive at width {width}", note="too few layers to fit a rate", **kw)
    log_t = math.log(tolerance)
    if hi < -log_t:
        if len(fitted) >= 6 and not ordered:
            numbers = numbers_all[fitted]
            power, sse_pow = _slopes(np.log(numbers.astype(np.float64)), logs)
            # a power law keeps its exponent; an exponential seen through log l steepens along the fit
            order = np.argsort(numbers)
            half = len(order) // 2
            early, _ = _slopes(np.log(numbers[order[:half]].astype(np.float64)), logs[:, order[:half]])
            late, _ = _slopes(np.log(numbers[order[half:]].astype(np.float64)), logs[:, order[half:]])
            steady = abs(np.mean(late)) <= 1.5 * abs(np.mean(early)) + 0.25
            if np.sum(sse_pow) < np.sum(sse_exp) and steady:
                c = float(np.mean(power))
                note = f"polynomial: ~ l^{c:.2f} in the layer number l"
                return Verdict(signal, "critical: slow decay", note=note, **kw)
        return Verdict(signal, "vanishing", **kw)
    if lo > log_t:
        return Verdict(signal, "exploding", **kw)
    if lo >= -log_t and hi <= log_t:
        return Verdict(signal, "preserved", **kw)
    advice = _advice(log_f, Z95 * se * (depth - 1), log_t, seeds, width)
    return Verdict(signal, f"inconclusive at width {width}", note=advice, **kw)


def _advice(log_f: float, half: float, log_t: float, seeds: int, width: int) -> str:
    """What would decide an interval ``log_f +- half`` that straddles ``+-log_t`` (SE ~ 1/sqrt(seeds * width))."""
    gap = abs(abs(log_f) - log_t)
    if gap < 1e-3 * half:
        return "the projected factor sits on the tolerance: no number of seeds decides it"
    more = math.ceil((half / gap) ** 2)
    return f"about {more}x the seeds ({more * seeds}) or {more}x the width ({more * width}) would decide it"


def _judged_chain(names: list[str]) -> list[bool]:
    """True for the outermost sown layers (a layer inside another sown layer is part of its branch)."""
    return [not any(other != n and n.startswith(other + "/") for other in names) for n in names]


@_quiet
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
    transient: int | None = None,
    dtype: Any = None,
    init: Any = None,
) -> CheckResult:
    r"""Checks how a network propagates variance at initialization; works on any Flax model.

    ``model`` may be a linen module (ours, which sow every layer, or a user's, whose layers'
    outputs are captured: every module owning a ``kernel``) or an nnx module (likewise;
    :mod:`initbench.benchmarks.analysis.propagation`).

    Args:
      model: A Flax linen or nnx module.
      variables: Its variables (linen); None with ``seeds`` (linen) or for an nnx module.
      batch: Inputs ``(B, ...)``.
      activation: The activation (theory, and activation statistics of models that do not sow).
      weight_variance: :math:`\sigma_w^2` for the theory (None: no theory columns).
      bias_variance: :math:`\sigma_b^2` for the theory.
      orthogonal: Whether the weights are orthogonal (Jacobian spread theory).
      tolerance: Factor ``t`` of the verdicts (> 1).
      seeds: Initialize and probe these seeds (vmapped), judging over them (linen).
      labels: Labels for a cross-entropy backward pass (else a random readout).
      transient: Layers skipped before fitting the rate (default :math:`\min(5, \lfloor L/5 \rfloor)`,
        or :math:`\lceil 3\xi_q \rceil` when theory gives a longer exponential approach to
        :math:`q^*`, up to a third of the depth).
      dtype: ``float32`` or ``float64`` (the network's parameters and inputs are cast; float64
        needs ``jax_enable_x64``).
      init: With ``seeds``: ``key -> variables`` instead of ``model.init`` (a model-level scheme).

    Raises:
      ValueError: tolerance <= 1, or neither variables nor seeds.
    """
    if not tolerance > 1:
        raise UsageError(f"tolerance must be > 1, got {tolerance}")
    if transient is not None and (not isinstance(transient, int) or transient < 0):
        raise UsageError(f"transient must be a non-negative integer, got {transient!r}")
    if not seeds and variables is None and not propagation.is_nnx(model):
        raise UsageError("check_variance needs variables or seeds")
    all_names = propagation.layer_names(model, None if seeds else variables, batch, init=init if seeds else None)
    hidden = all_names[:-1] if len(all_names) > 1 else all_names
    judged = [n for n, c in zip(hidden, _judged_chain(hidden), strict=True) if c]
    depth = len(judged)
    x = np.asarray(batch, np.float64).reshape(batch.shape[0], -1)
    phase: dict[str, Any] = {}
    if weight_variance is not None and activation is not None and weight_variance > 0:
        try:
            phase = mean_field_phase(activation, weight_variance, bias_variance, float(np.mean(x**2)), depth)
        except (ValueError, ZeroDivisionError, OverflowError):  # degenerate theory (e.g. no signal at all)
            phase = {}
    if transient is not None and transient > max(0, depth - 3):  # never a silently smaller transient
        raise UsageError(
            f"transient {transient} leaves fewer than 3 of the {depth} judged layers to fit: "
            f"at most {max(0, depth - 3)}"
        )
    if transient is None:
        # five layers (a fifth of a shallow net), or three length-map depth scales where theory knows it
        transient = min(5, depth // 5)
        if _settles(phase):  # an exponential approach to a fixed point q* > 0: skip 3 xi_q layers
            transient = max(transient, min(math.ceil(3 * phase["xi_q"]), depth - 4))
    transient = min(transient, max(0, depth - 3))
    jacobian_from = judged[transient]
    probe = dict(labels=labels, activation=activation, dtype=dtype, jacobian_layers=(jacobian_from,))
    if seeds:
        rows = propagation.propagation_over_seeds(model, batch, seeds, init=init, **probe)
    else:
        rows = propagation.propagation(model, variables, batch, **probe)
        rows["seed"] = 0
    float_type = np.dtype(dtype or "float32")
    wide = propagation.layer_table(rows)
    names = list(wide.sort_values("layer_index")["layer"].drop_duplicates())

    def per_seed(metric: str, layers: list[str]) -> np.ndarray:
        if metric not in wide:  # nothing finite was measured
            return np.full((wide["seed"].nunique(), len(layers)), np.nan)
        table = wide.pivot_table(index="seed", columns="layer", values=metric, dropna=False)
        return table.reindex(columns=layers).to_numpy()

    mean = wide.groupby(["layer_index", "layer"], sort=True).mean(numeric_only=True).reset_index()
    by_layer = mean.set_index("layer")
    # a layer whose output is exactly 0 while a later layer carries signal is bypassed (a zeroed
    # residual branch): not part of the chain
    q_all = per_seed("pre_activation_second_moment", names)  # the head too: it shows the signal went on
    position = {n: i for i, n in enumerate(names)}
    zero = np.array([np.all(q_all[:, position[n]] == 0) for n in judged])
    live_after = np.array([np.any(q_all[:, position[n] + 1 :] > 0) for n in judged])
    bypassed = [n for n, z, a in zip(judged, zero, live_after, strict=True) if z and a]
    if bypassed:
        judged = [n for n in judged if n not in bypassed]
        depth = len(judged)
        transient = min(transient, max(0, depth - 3))
    units = by_layer.loc[judged, "units"].to_numpy()
    pr = by_layer.get("activation_participation_ratio")
    prev = [float(propagation.participation_ratio(jnp.asarray(x, jnp.float32)))]
    prev += [float(pr.get(n, np.nan)) if pr is not None else math.nan for n in judged[:-1]]
    prev = np.maximum(np.nan_to_num(np.asarray(prev), nan=1.0, posinf=1.0), 1.0)
    noise = 2.0 / (units * prev)
    width = int(np.min(units)) if len(units) else 0
    forward = per_seed("pre_activation_second_moment", judged)
    backward = per_seed("gradient_variance", judged)[:, ::-1]
    common = dict(
        tolerance=tolerance,
        transient=transient,
        width=width,
        dtype=float_type,
        ordered=bool(phase) and phase["phase"] == "ordered",
    )
    numbers = np.arange(depth) + 1
    verdicts = {
        "forward": judge("forward", forward, noise, **common),
        "backward": judge("backward", backward, noise[::-1], layer_numbers=numbers[::-1], **common),
    }
    measured_from = depth >= 2 and jacobian_from in judged  # (not a bypassed layer)
    jac = per_seed("jacobian_mean_squared_singular_value", [jacobian_from])[:, 0] if measured_from else None
    network = propagation.network_metrics(rows)
    last = rows[rows["layer"].isna() & (rows["metric"] == "jacobian_mean_squared_singular_value")]
    last = last.sort_values("seed")["value"].to_numpy() if len(last) else None
    verdicts["jacobian"] = _judge_jacobian(jac, last, units, transient, depth, verdicts["backward"], common)
    verdicts = _consistent(verdicts)
    if _settles(phase) and 3 * phase["xi_q"] > depth - 4:
        # the whole net is the approach to q*: a decay or growth over it is that transient, not a trend
        note = (
            f"the net ({depth} layers) is shorter than its transient toward q* (3 xi_q = "
            f"{3 * phase['xi_q']:.1f} layers) plus 4: no trend to judge"
        )
        verdicts = {
            k: v
            if v.note.startswith(("overflow", "underflow", "unmeasurable")) or v.passed
            else dataclasses.replace(v, verdict=f"inconclusive at width {width}", note=note)
            for k, v in verdicts.items()
        }

    table = pd.DataFrame({"layer": names, "units": by_layer.loc[names, "units"].to_numpy()})
    table["judged"] = [n in judged for n in names]
    table["measured_variance"] = by_layer.loc[names, "pre_activation_second_moment"].to_numpy()
    table["gradient_variance"] = by_layer.loc[names, "gradient_variance"].to_numpy()
    if "weight_gradient_variance" in by_layer:
        table["weight_gradient_variance"] = by_layer.loc[names, "weight_gradient_variance"].to_numpy()
    if weight_variance is not None and activation is not None:
        input_moment = float(np.mean(x**2))
        pred = theory.predicted_variances(activation, len(names), weight_variance, bias_variance, input_moment)
        table["predicted_variance"] = pred["pre_activation_variance"]
        g_top = table["gradient_variance"].iloc[len(names) - 2] if len(names) > 1 else math.nan
        ratio = pred["gradient_variance_ratio"]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # predicted gradient variance, anchored at the top hidden layer's measurement
            table["predicted_gradient_variance"] = g_top * ratio / ratio[len(names) - 2]
            table["measured_over_predicted"] = table["measured_variance"] / table["predicted_variance"]
        # finite-width agreement: |measured / predicted - 1| within 5 standard deviations of the
        # accumulated noise sqrt(sum_k 2 / (N_k r_k) / seeds); beyond float range, both sides agree on the trend
        sigma = np.sqrt(np.cumsum(noise) / max(1, forward.shape[0]))
        position = {n: i for i, n in enumerate(judged)}
        table["theory_tolerance"] = [5 * sigma[min(position.get(n, len(judged) - 1), len(sigma) - 1)] for n in names]
        both_zero = (table["measured_variance"] < 1e-30) & (table["predicted_variance"] < 1e-30)
        both_huge = (table["measured_variance"] > 1e30) & (table["predicted_variance"] > 1e30)
        close = np.abs(table["measured_over_predicted"] - 1) <= table["theory_tolerance"]
        table["matches_theory"] = close | both_zero | both_huge
        try:
            spectrum = theory.jacobian_spectrum(
                activation, depth, weight_variance, bias_variance, input_moment, orthogonal=orthogonal
            )
            network.update({f"predicted_{k}": v for k, v in spectrum.items()})
        except (ValueError, ZeroDivisionError, OverflowError):  # zero weights: log of a zero moment
            pass
    return CheckResult(table, verdicts, network, phase, rows, tolerance)


@_quiet
def _judge_jacobian(
    start: np.ndarray | None,
    end: np.ndarray | None,
    units: np.ndarray,
    transient: int,
    depth: int,
    backward: Verdict,
    common: dict,
) -> Verdict:
    r"""The Jacobian's per-layer rate between the end of the transient and the last hidden layer.

    The mean squared singular value :math:`m_l` of :math:`\partial h^l/\partial x` is measured
    at layer :math:`T+1` (after the transient) and at the last hidden layer :math:`L`; the rate
    is :math:`\log(m_L/m_{T+1})/(L-T-1)` per seed. Its finite-width noise is that of one
    direction through each layer, :math:`2/N_l` per layer (a random walk). Since
    :math:`\mathbb{E}[s^2] = \prod_l \chi_l`, the backward signal's factors, a decaying Jacobian
    whose backward signal decays polynomially is labelled critical like it.
    """
    width = common["width"]
    if start is None or end is None or depth < 2 or depth - 1 - transient < 1:
        return Verdict("jacobian", f"inconclusive at width {width}", note="too few layers for a rate")
    span = depth - 1 - transient
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = np.log(np.abs(np.asarray(end, np.float64))) - np.log(np.abs(np.asarray(start, np.float64)))
    layers = (transient + 1, depth)
    if not np.all(np.isfinite(log_ratio)):
        grew = np.any(np.isposinf(log_ratio)) or np.any(~np.isfinite(np.asarray(end, np.float64)))
        kind = "overflow" if grew else "underflow"
        return Verdict("jacobian", "exploding" if grew else "vanishing", fitted_layers=layers, note=f"{kind} in J")
    rates = log_ratio / span
    seeds = len(rates)
    walk = float(np.sum(2.0 / units[transient + 1 :]))  # one direction's random walk through the span
    se = math.sqrt(walk / seeds) / span
    if seeds >= 3:
        se = max(se, float(np.std(rates, ddof=1)) / math.sqrt(seeds))
    rate = float(np.mean(rates))
    log_f, half = rate * (depth - 1), Z95 * se * (depth - 1)
    log_t = math.log(common["tolerance"])
    note = ""
    if log_f - half > log_t:
        label = "exploding"
    elif log_f + half < -log_t:
        label = "vanishing"
        if backward.verdict == "critical: slow decay":
            label, note = (
                "critical: slow decay",
                "polynomial like the backward signal (E[s^2] is the product of its factors)",
            )
    elif abs(log_f) + half <= log_t:
        label = "preserved"
    else:
        label = f"inconclusive at width {width}"
        note = _advice(log_f, half, log_t, seeds, width)
    return Verdict(
        "jacobian",
        label,
        rate,
        se,
        math.exp(min(log_f, 700)),
        math.exp(min(log_f - half, 700)),
        math.exp(min(log_f + half, 700)),
        layers,
        note,
    )


def _consistent(verdicts: dict[str, Verdict]) -> dict[str, Verdict]:
    """A signal that cannot be measured through a forward overflow/underflow takes its direction."""
    forward = verdicts["forward"]
    if not forward.note.startswith(("overflow", "underflow")):
        return verdicts
    direction = "exploding" if forward.note.startswith("overflow") else "vanishing"
    out = dict(verdicts)
    for name in ("backward", "jacobian"):
        v = verdicts[name]
        if v.verdict != direction and (not math.isfinite(v.rate) or v.note.startswith(("overflow", "underflow"))):
            note = f"unmeasurable through the forward {forward.note}"
            out[name] = dataclasses.replace(v, verdict=direction, note=note)
    return out


def _settles(phase: dict[str, Any]) -> bool:
    """Theory says the forward signal settles at a fixed point q* > 0 (its approach is a transient).

    With q* = 0 (tanh without biases at or below chi_1 = 1) the approach to q* *is* the loss of
    the signal, not a transient.
    """
    if not phase or not (math.isfinite(phase["xi_q"]) and math.isfinite(phase["q_star"])):
        return False
    return phase["q_star"] > 1e-3 * phase["input_second_moment"]


def mean_field_phase(
    activation: Any, weight_variance: float, bias_variance: float, input_second_moment: float, depth: int
) -> dict[str, Any]:
    r"""The mean-field phase of a deep fully connected net and its depth scales.

    ``ordered`` when :math:`\chi_1 < 0.99`, ``chaotic`` above 1.01, else ``critical``;
    :math:`q^*`, :math:`\chi_1`, :math:`\xi_q`, :math:`\xi_c`, and the trainable depth
    :math:`6\xi_c` (Schoenholz et al. 2017: nets train when depth is below about six
    correlation lengths), compared with this net's depth.
    """
    fp = theory.fixed_point(activation, weight_variance, bias_variance, q0=max(input_second_moment, 1e-12))
    chi = fp.chi1
    name = "critical" if abs(chi - 1) <= 0.01 else ("ordered" if chi < 1 else "chaotic")
    trainable = 6 * fp.xi_c
    return {
        "phase": name,
        "q_star": fp.q_star,
        "chi_1": chi,
        "xi_q": fp.xi_q,
        "xi_c": fp.xi_c,
        "trainable_depth": trainable,
        "depth": depth,
        "depth_within_trainable": bool(depth <= trainable),
        "input_second_moment": input_second_moment,
    }


def figure(result: CheckResult, path: str | Path, title: str) -> Path:
    """Forward and backward variance per layer on a log scale, measured and predicted, with verdicts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result.table
    x = np.arange(1, len(t) + 1)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    with np.errstate(divide="ignore", invalid="ignore"):
        ax.semilogy(x, t["measured_variance"], "o-", label="forward: pre-activation q^l", markersize=3)
        ax.semilogy(x, t["gradient_variance"], "s-", label="backward: Var dL/dh^l", markersize=3)
        if "predicted_variance" in t:
            ax.semilogy(x, t["predicted_variance"], "--", color="C0", label="forward, mean-field")
            ax.semilogy(x, t["predicted_gradient_variance"], "--", color="C1", label="backward, mean-field")
    ax.set_xlabel("layer")
    ax.set_ylabel("variance")
    verdicts = "; ".join(f"{k}: {v.verdict}" for k, v in result.verdicts.items())
    ax.set_title(f"{title}\n{verdicts}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def check_identity(
    model: Any,
    init: Any,
    input_shape: tuple[int, ...],
    batch_size: int,
    seed: int,
    *,
    parametrization: str | None = None,
    base_width: int | None = None,
) -> dict[str, Any]:
    """The identity columns of one checked network (``results.CHECK``), with a stable ``run_id``.

    Args:
      model: Its ``ModelSpec``.
      init: Its ``InitSpec`` (its ``scale``: the parametrization's init multipliers).
      input_shape: One input's shape.
      batch_size: Inputs probed.
      seed: The network's seed.
      parametrization: The parametrization's name (None: none; the run_id is then a check's
        from before parametrizations existed).
      base_width: Its base width.
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
    scaled = {
        "init_scale": json.dumps(dict(init.scale), sort_keys=True) if init.scale else "",
        "parametrization": parametrization or "",
        "base_width": base_width if parametrization else None,
    }
    hashed = {**ident, **scaled} if parametrization or init.scale else ident  # older checks keep their run_id
    run_id = hashlib.sha256(json.dumps(hashed, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"run_id": run_id, **ident, **scaled}


# initializers whose weights are structured (the Jacobian spread's orthogonal theory), not i.i.d.
STRUCTURED = ("orthogonal", "delta_orthogonal", "identity", "dirac")


def _check_fits_memory(net: Any, x0: jax.Array, batch_size: int, seeds: int, dtype: str, **call: Any) -> None:
    """Refuses, before any work, a check whose activations (every layer, every seed) exceed half the host's memory.

    ``call``: further arguments of the model's ``__call__`` (a user's ``train``).
    """
    try:
        shapes = jax.eval_shape(lambda: net.init_with_output(jax.random.key(0), x0, mutable=True, **call))
    except UsageError:
        return  # an initializer that cannot initialize this model: the validation that follows says so

    _, variables = shapes
    sown = variables.get("intermediates", {})  # per example: every layer's pre-activation and activation
    per_example = sum(math.prod(a.shape[1:]) for a in jax.tree_util.tree_leaves(sown))
    weights = sum(
        math.prod(a.shape) for k, v in variables.items() if k != "intermediates" for a in jax.tree_util.tree_leaves(v)
    )
    _refuse_beyond_memory(per_example, weights, batch_size, seeds, dtype)


def _refuse_beyond_memory(per_example: int, weights: int, batch_size: int, seeds: int, dtype: str) -> None:
    """One line when a check's activations and weights would exceed half the host's memory."""
    # forward, backward and the probes' copies of the activations, and each seed's weights and their gradients
    need = (3 * per_example * batch_size + 2 * weights) * seeds * (8 if dtype == "float64" else 4)
    ram = host_memory()
    if need > ram // 2:
        raise UsageError(
            f"the check needs about {need / 2**30:.3g} GiB ({seeds:,} seeds x batch {batch_size:,} through every "
            f"layer), more than half of this machine's {ram / 2**30:.3g} GiB: use fewer --seeds or a smaller "
            "--batch-size"
        )


def run_check(
    *,
    model: str = "mlp",
    depth: int | None = 50,
    width: int | None = 512,
    activation: str | None = "relu",
    init: str = "he_normal",
    init_args: dict[str, Any] | None = None,
    bias_init: str = "zeros",
    bias_args: dict[str, Any] | None = None,
    weight_variance: float | None = None,
    bias_variance: float | None = None,
    input_variance: float = 1.0,
    batch_size: int = 256,
    input_shape: tuple[int, ...] | None = None,
    seeds: int = 1,
    tolerance: float = 2.0,
    transient: int | None = None,
    dtype: str = "float32",
    out: str | Path | None = "results/check",
    extra: dict[str, Any] | None = None,
    parametrization: str | None = None,
    base_width: int | None = None,
) -> tuple[CheckResult, dict[str, Any]]:
    r"""The ``initbench check`` job: build the model, probe Gaussian inputs, judge, write results.

    Inputs are :math:`\mathcal{N}(0, v I)` (``input_variance`` v) of ``input_shape`` (default:
    ``(width,)`` for the MLP, so every layer is square; ``(32, 32, 3)`` for the CNNs).
    ``weight_variance`` and ``bias_variance`` set :math:`(\sigma_w^2, \sigma_b^2)` directly:
    weights :math:`\mathcal{N}(0, \sigma_w^2/n_{in})` (``variance_scaling(sigma_w^2, "fan_in",
    "normal")``), biases :math:`\mathcal{N}(0, \sigma_b^2)`, replacing ``init`` / ``bias_init``.
    Writes tidy rows to a ResultStore, ``check_<...>.png`` and ``check_<...>.csv`` under
    ``out/_report`` (None: write nothing).

    ``parametrization`` (with ``base_width``; :mod:`initbench.benchmarks.parametrization`)
    multiplies each layer class's drawn weights by the preset's or table's init multiplier at this
    width (muP: the readout by :math:`m^{-1/2}`), as a training run would start; the theory's
    predictions are kept only where the input and hidden layers keep one common multiplier
    (folded into :math:`\sigma_w^2`).

    ``model`` may be a plug-in (``package.module:Attr``, a user's linen or nnx model;
    :mod:`initbench.benchmarks.plugin_model`): it needs ``input_shape``, gets ``depth``,
    ``width`` and ``activation`` only where given (None) and declared, and ``extra`` as its own
    options; the run's initializers draw its kernels and biases, its layers (the modules owning a
    ``kernel``, linen or nnx) are the probed ones, and there is no theory column
    (its structure is not initbench's). ``activation`` (None: not given) is then only used for
    the activation statistics.

    Returns:
      The result and a dict of written paths.

    Raises:
      UsageError: bad names or numbers, an initializer that cannot initialize this model's
        kernels, float64 where the backend cannot.
    """
    from initbench import inits, models
    from initbench.benchmarks.parametrization import canonical
    from initbench.benchmarks.results import ResultStore
    from initbench.benchmarks.spec import NUMERICS_VERSION, InitSpec, ModelSpec, options
    from initbench.inits.registry import SCHEMES, is_plugin, plugin_scheme

    if is_plugin(model) and (parametrization is not None or base_width is not None):
        raise UsageError(f"a parametrization goes by initbench's layer classes; the plug-in model {model} has none")
    init_args = dict(init_args or {})
    bias_args = dict(bias_args or {})
    scheme = SCHEMES[init] if init in SCHEMES else plugin_scheme(init)
    for flag, value, least in (
        ("--weight-variance", weight_variance, "> 0"),
        ("--bias-variance", bias_variance, ">= 0"),
        ("--input-variance", input_variance, "> 0"),
    ):  # nan passes no comparison: a finite number in range, or one line (never a silent default)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not (
            number and math.isfinite(value) and (value > 0 if least == "> 0" else value >= 0)
        ):
            raise UsageError(f"{flag} must be a finite number {least}, got {value!r}")
        if value is not None and value > float(np.finfo(np.float32).max):
            raise UsageError(f"{flag} must fit in float32 (at most 3.4e+38), got {value!r}")
    if transient is not None and model == "mlp" and isinstance(transient, int) and transient >= depth:
        raise UsageError(f"--transient {transient} leaves no layer to fit: it must be below --depth {depth}")
    if weight_variance is not None:
        if scheme is not None:  # the scheme starts from N(0, sigma_w^2 / fan_in) kernels
            init_args["base"] = f"variance_scaling(scale={float(weight_variance)}, mode=fan_in, distribution=normal)"
        else:
            init, init_args = (
                "variance_scaling",
                {"scale": float(weight_variance), "mode": "fan_in", "distribution": "normal"},
            )
    if bias_variance is not None:
        bias_init, bias_args = ("normal", {"stddev": math.sqrt(bias_variance)}) if bias_variance > 0 else ("zeros", {})
    if dtype not in ("float32", "float64"):
        raise UsageError(f"--dtype must be float32 or float64, got {dtype!r}")
    scales: dict[str, float] = {}
    if parametrization is not None or base_width is not None:
        from initbench.benchmarks.parametrization import init_rules

        if parametrization is None:
            raise UsageError("--base-width needs --parametrization (the width at which it equals the plain init)")
        scales = init_rules(
            canonical(parametrization),
            base_width,
            width=width if model in ("mlp", "resnet") else None,
            scheme=init if scheme is not None else None,
        )
    init_spec = InitSpec(init, options(**init_args), bias_init, options(**bias_args), options(**scales))
    init_spec.validate()  # the name and arguments (a scheme's options and its base)
    init_fn = init_spec.kernel()  # a scheme's base
    bias_fn = inits.get_bias(bias_init, fan_in=1, **bias_args) if bias_init != "torch_default" or bias_args else None
    for name, value in (("batch_size", batch_size), ("seeds", seeds)):
        positive_int(name, value)
    if is_plugin(model):
        return _run_plugin_check(
            model,
            init_spec,
            bias_init=inits.get(bias_init, **bias_args) if bias_args else bias_init,
            core={k: v for k, v in (("depth", depth), ("width", width), ("activation", activation)) if v is not None},
            extra=dict(extra or {}),
            input_variance=input_variance,
            batch_size=batch_size,
            input_shape=input_shape,
            seeds=seeds,
            tolerance=tolerance,
            transient=transient,
            dtype=dtype,
            out=out,
            scheme=scheme,
            parametrization=parametrization,
        )
    if input_shape is None:
        input_shape = (width,) if model == "mlp" else (32, 32, 3)
    config = dict(extra or {})
    if model == "mlp":
        config.update(depth=depth, width=width, scan=True)
    elif model == "resnet":
        config.setdefault("width", width)
    config = init_spec.architecture(model, config)  # a scheme's fields (Fixup's multipliers; MLP unscanned)
    bias_model = inits.get(bias_init, **bias_args) if bias_args else bias_init
    net = models.build(
        model,
        input_shape=input_shape,
        num_classes=10,
        activation=activation,
        kernel_init=init_fn,
        bias_init=bias_model,
        **config,
    )
    x0 = jnp.zeros((1, *input_shape), jnp.float32)
    _check_fits_memory(net, x0, batch_size, seeds, dtype)
    x = math.sqrt(input_variance) * jax.random.normal(jax.random.key(10_000), (batch_size, *input_shape))
    init_variables = None if scheme is None else _scheme_init(net, init_spec, x, x0)
    if scales:  # the parametrization's init multipliers on the drawn weights, per layer class
        from initbench.benchmarks.groups import lr_scale_tree

        def init_variables(key: jax.Array) -> Any:
            variables = dict(net.init(key, x0))
            factors = lr_scale_tree(variables["params"], init_spec.scale, model, field="init_scale")
            variables["params"] = jax.tree_util.tree_map(
                lambda p, f: p if f == 1.0 else p * jnp.asarray(f, p.dtype), variables["params"], factors
            )
            return variables

    try:  # every kernel of this model through the initializer (and the scheme), abstractly: no work yet
        jax.eval_shape(init_variables or (lambda k: net.init(k, x0)), jax.random.key(0))
    except UsageError as err:  # a validator's verdict; any other error here is a bug and keeps its traceback
        raise UsageError(f"{init_spec.name} cannot initialize this {model}: {first_line(err)}") from err
    store = ResultStore(out, kind="check") if out is not None else None
    if store is not None:
        store.check_writable()
        store.check_compatible(NUMERICS_VERSION)
    sw = sb = None
    if model == "mlp" and init_fn.moments is not None and scheme is None:  # a scheme's weights have no i.i.d. law
        sw, _ = theory.init_variances(init_fn, width)
        sb = bias_fn.target((width,))[1] if bias_fn is not None and bias_fn.moments is not None else 0.0
        if scales:  # one common multiplier of the chain's layers folds into sigma_w^2; two do not: no theory
            chain = {scales.get("input", 1.0), scales.get("hidden", 1.0)}
            sw = sw * chain.pop() ** 2 if len(chain) == 1 else None
            if scales.get("vector", 1.0) != 1.0:
                sw = sb = None
    structured = init in (*STRUCTURED, "lsuv")
    with _precision(dtype):
        result = check_variance(
            net,
            None,
            x,
            activation=activation,
            weight_variance=sw,
            bias_variance=sb or 0.0,
            orthogonal=structured,
            tolerance=tolerance,
            seeds=list(range(seeds)),
            transient=transient,
            dtype=dtype,
            init=init_variables,
        )
    readout = scales.get("readout", 1.0)
    if readout != 1.0 and "predicted_variance" in result.table:  # the head's prediction: its weights x readout
        t = result.table  # (sigma_w^2 E[phi^2] + sigma_b^2 -> readout^2 sigma_w^2 E[phi^2] + sigma_b^2: the
        head = t["layer"] == "head"  # classifier's bias keeps multiplier 1)
        b = sb or 0.0
        t.loc[head, "predicted_variance"] = (t.loc[head, "predicted_variance"] - b) * readout**2 + b
        t.loc[head, "measured_over_predicted"] = t.loc[head, "measured_variance"] / t.loc[head, "predicted_variance"]
        t.loc[head, "matches_theory"] = (t.loc[head, "measured_over_predicted"] - 1).abs() <= t.loc[
            head, "theory_tolerance"
        ]
    model_options = {k: v for k, v in config.items() if k not in ("depth", "width", "scan")}
    model_spec = ModelSpec(
        model,
        activation,
        depth if model == "mlp" else None,
        width if model in ("mlp", "resnet") else None,
        options(**model_options),
    )
    paths = _write_check(
        result,
        store,
        model_spec,
        init_spec,
        input_shape=tuple(input_shape),
        batch_size=batch_size,
        activation=activation,
        tolerance=tolerance,
        dtype=dtype,
        input_variance=input_variance,
        out=out,
        parametrization=canonical(parametrization) if parametrization else None,
        base_width=base_width,
    )
    return result, paths


def _write_check(
    result: CheckResult,
    store: Any,
    model_spec: Any,
    init_spec: Any,
    *,
    input_shape: tuple[int, ...],
    batch_size: int,
    activation: str | None,
    tolerance: float,
    dtype: str,
    input_variance: float,
    out: str | Path | None,
    parametrization: str | None = None,
    base_width: int | None = None,
) -> dict[str, Any]:
    """Writes a check's tidy rows (one run_id per seed), its table and its figure; None ``store``: nothing."""
    from initbench.benchmarks.results import provenance
    from initbench.benchmarks.spec import NUMERICS_VERSION

    paths: dict[str, Any] = {}
    result.network["model_label"] = model_spec.label  # type: ignore[assignment]
    if store is None:
        return paths
    rows = result.rows.copy()
    ident = pd.DataFrame(
        [
            check_identity(
                model_spec,
                init_spec,
                input_shape,
                batch_size,
                int(s),
                parametrization=parametrization,
                base_width=base_width,
            )
            for s in rows["seed"]
        ]
    )
    tidy = pd.concat(
        [ident.reset_index(drop=True), rows[["layer", "layer_index", "metric", "value"]].reset_index(drop=True)],
        axis=1,
    )
    name = f"check_{model_spec.label}_{activation or 'own'}_{init_spec.label}"
    stem = "".join(c if c.isalnum() else "_" for c in name)
    figures = Path(str(out)) / "_report"
    verdicts = {k: dataclasses.asdict(v) for k, v in result.verdicts.items()}
    with store.writing(NUMERICS_VERSION):
        paths["results"] = store.write(
            tidy,
            stem,
            {
                **provenance(),
                "check": {
                    "tolerance": tolerance,
                    "passed": result.passed,
                    "dtype": dtype,
                    "input_variance": input_variance,
                    "verdicts": verdicts,
                    "phase": result.phase,
                },
            },
        )
        figures.mkdir(exist_ok=True)
        paths["table"] = figures / f"{stem}.csv"
        result.table.to_csv(paths["table"], index=False)
        title = " ".join(t for t in (model_spec.label, activation, init_spec.label) if t)
        paths["figure"] = figure(result, figures / f"{stem}.png", title)
    return paths


def _run_plugin_check(
    model: str,
    init_spec: Any,
    *,
    bias_init: Any,
    core: dict[str, Any],
    extra: dict[str, Any],
    input_variance: float,
    batch_size: int,
    input_shape: tuple[int, ...] | None,
    seeds: int,
    tolerance: float,
    transient: int | None,
    dtype: str,
    out: str | Path | None,
    scheme: Any,
    parametrization: str | None,
) -> tuple[CheckResult, dict[str, Any]]:
    """:func:`run_check` for a plug-in model (see there): build, validate, probe, judge, write."""
    from initbench.benchmarks import plugin_model
    from initbench.benchmarks.results import ResultStore
    from initbench.benchmarks.spec import NUMERICS_VERSION, ModelSpec, options

    if scheme is not None:
        raise UsageError(
            f"init {init_spec.name} is a model-level scheme; check of the plug-in model {model} takes per-tensor "
            "initializers (train it with the scheme through initbench run)"
        )
    if parametrization is not None:
        raise UsageError(f"a parametrization goes by initbench's layer classes; the plug-in model {model} has none")
    if input_shape is None:
        raise UsageError(f"the plug-in model {model} needs input_shape (one example's shape)")
    declared = plugin_model.parameters(model)
    open_ended = any(p.kind == p.VAR_KEYWORD for p in declared.values())
    if "activation" in core and "activation" not in declared and not open_ended:  # given: not a default here
        raise UsageError(
            f"model plug-in {model} takes no activation (it would be ignored, and the probe's activation "
            "statistics would use it); drop --activation"
        )
    net = plugin_model.build(
        model,
        input_shape=tuple(input_shape),
        num_classes=10,
        kernel_init=init_spec.kernel(),
        bias_init=bias_init,
        **core,
        **extra,
    )
    x0 = jnp.zeros((1, *input_shape), jnp.float32)
    abstract = jax.eval_shape(net.init, jax.random.key(0), x0)  # every kernel through the initializer: no work yet
    net.check(abstract, jnp.zeros((2, *input_shape), jnp.float32), 10)
    if isinstance(net, plugin_model.NnxPluginModel):
        if net.stats is not None:
            raise UsageError(
                f"model plug-in {model} holds nnx BatchNorm statistics: check measures a model as training sees it "
                "at step 0 (batch statistics), which nnx cannot give under the probe's jax transforms yet; its "
                "running averages would make BatchNorm an identity (not yet)"
            )
        module: Any = net.abstract

        def init_variables(key: jax.Array) -> Any:
            return net.nnx_state(net.init(key, x0))

        _plugin_fits_memory(module, init_variables, x0, batch_size, seeds, dtype)
    else:
        module = net.module
        _check_fits_memory(module, x0, batch_size, seeds, dtype, **({"train": False} if net.takes_train else {}))

        def init_variables(key: jax.Array) -> Any:
            return net.init(key, x0)

    store = ResultStore(out, kind="check") if out is not None else None
    if store is not None:
        store.check_writable()
        store.check_compatible(NUMERICS_VERSION)
    x = math.sqrt(input_variance) * jax.random.normal(jax.random.key(10_000), (batch_size, *input_shape))
    structured = init_spec.name in STRUCTURED  # schemes (lsuv) are refused for a plug-in model
    with _precision(dtype):
        result = check_variance(
            module,
            None,
            x,
            activation=core.get("activation"),
            orthogonal=structured,
            tolerance=tolerance,
            seeds=list(range(seeds)),
            transient=transient,
            dtype=dtype,
            init=init_variables,
        )
    given = {**{k: v for k, v in core.items() if k != "activation"}, **extra}
    spec = ModelSpec(
        model,
        core.get("activation", "relu"),
        given.pop("depth", None),
        given.pop("width", None),
        options(**given),
    )
    paths = _write_check(
        result,
        store,
        spec,
        init_spec,
        input_shape=tuple(input_shape),
        batch_size=batch_size,
        activation=core.get("activation"),
        tolerance=tolerance,
        dtype=dtype,
        input_variance=input_variance,
        out=out,
    )
    return result, paths


def _plugin_fits_memory(module: Any, init: Any, x0: jax.Array, batch_size: int, seeds: int, dtype: str) -> None:
    """:func:`_check_fits_memory` for an nnx module: its weights and its probed layers' outputs, abstractly."""
    variables = jax.eval_shape(init, jax.random.key(0))
    weights = sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(variables))
    wrapper = propagation._Nnx(module)
    outputs = jax.eval_shape(lambda v: wrapper.run(v, x0, None)[1], variables)
    per_example = sum(math.prod(a.shape[1:]) for a in jax.tree_util.tree_leaves(outputs))
    _refuse_beyond_memory(per_example, weights, batch_size, seeds, dtype)


def _scheme_init(net: Any, init: Any, x: jax.Array, x0: jax.Array) -> Any:
    """``key -> variables``: ``net.init`` then the init's model-level scheme on the probe's inputs.

    Data schemes read the probe batch ``x`` (GradInit: with labels drawn uniformly from
    ``fold_in(key, 3)``, there being no task); a scheme that draws randomness of its own gets
    ``fold_in(key, 2)``.
    """
    scheme = init.scheme
    options = init.scheme_options()

    def variables(key: jax.Array) -> Any:
        labels = jax.random.randint(jax.random.fold_in(key, 3), (x.shape[0],), 0, 10)
        return scheme.apply(net, net.init(key, x0), x, key=jax.random.fold_in(key, 2), labels=labels, options=options)[
            0
        ]

    return variables


class _precision:
    """Enables float64 for the duration of a check (restores the setting after)."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def __enter__(self) -> None:
        self.before = jax.config.jax_enable_x64
        if self.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
            if jnp.zeros((), jnp.float64).dtype != jnp.float64:  # pragma: no cover - backend without f64
                jax.config.update("jax_enable_x64", self.before)
                raise UsageError("--dtype float64 is not available on this backend")

    def __exit__(self, *exc: object) -> None:
        jax.config.update("jax_enable_x64", self.before)
