r"""``dauphin2019``: Dauphin & Schoenholz 2019, "MetaInit: Initializing learning by learning to initialize", NeurIPS.

MetaInit learns the norm of every kernel, keeping its direction, by signed gradient descent with
momentum on the *gradient quotient*

.. math::
    \mathrm{GQ}(\theta) = \frac{1}{N}\sum_i \left|\frac{g_i - (Hg)_i}{g_i + \epsilon\,
    \mathrm{sign}(g_i)} - 1\right|,

small where the loss is locally quadratic and well conditioned; it uses Gaussian noise inputs and
random labels, no data (``inits.metainit``, the paper's defaults: lr 0.1, momentum 0.9,
eps 1e-5). The paper's claim reproduced here: MetaInit rescues a badly initialized network (its
Sec. 4-5: badly scaled / poorly initialized ResNets and WideResNets without normalization on
CIFAR-10 and ImageNet) to the accuracy of a good initialization; and it does so by lowering the
gradient quotient (its Fig. 2/3: GQ against MetaInit iterations) and moving each layer's scale
toward a well-conditioned value.

**Setup (CPU-sized; the paper's nets are ResNets on CIFAR/ImageNet).** A 12-layer tanh MLP of
width 64 on embedded 8x8 digits (1437 train / 360 test), plain SGD lr 0.05, batch 64, 1500
steps, 5 seeds, through the runner (experiment ``dauphin2019-rescue``; shared code
``_rescue.py``). Arms: the bad init :math:`W \sim \mathcal{N}(0, 0.25/n_{in})` (ordered phase:
the signal and the gradient shrink by about 0.25 per layer, 12 layers), LeCun normal
(:math:`\sigma_w^2 = 1`, critical for tanh without biases) and MetaInit (100 iterations, noise
batch of 64, the runner's ``{name = "metainit", steps = 100, base = "variance_scaling(scale=0.25,
...)"}``) started from the bad init. Which bad scale: an exploratory run (2 seeds, 600 steps)
found the chaotic :math:`\sigma_w^2 = 4` NOT bad enough for plain training at this depth (test
accuracy 0.92 vs LeCun's 0.97), while :math:`\sigma_w^2 = 0.25` stays at chance (0.08); the
ordered phase is used. The MetaInit record (its GQ per iteration) and the weights before/after
come from re-running the scheme exactly as the trainer does (same keys and options).

Claims and criteria (margins as in ``_rescue.py``: two standard errors from the seeds and the test
set's binomial error; the rescue's tolerance is the good arm's own, not widened by the scheme's
spread over seeds):

* bad init trains poorly: LeCun - bad mean final test accuracy > margin;
* MetaInit rescues: LeCun - MetaInit <= the good arm's margin and MetaInit - bad > the bad arm's margin;
* MetaInit lowers the gradient quotient from the bad init: for every seed, the mean GQ of the last
  10% of iterations is below that of the first 10%;
* the learned norms move the weight scale toward critical: the geometric mean over the 12 tanh
  layers of the implied :math:`\sigma_w^2 = n_{in}\mathrm{Var}[W]` after MetaInit (geometric mean
  over seeds) is within a factor 2 of the critical 1 (from 0.25, a factor 4 away). The layer
  product is what sets the signal's propagation, hence the geometric mean; the classifier is left
  out (its scale sets the logits' temperature, not propagation). This criterion was fixed after
  one exploratory seed (geometric mean 0.76).

Deviations: an MLP on digits instead of ResNets on CIFAR/ImageNet; 100 MetaInit iterations at
``cpu`` scale (the paper's 500 at ``paper`` scale). An exploratory run at 1500 SGD steps found
MetaInit's nets train more slowly than LeCun's (0.905 vs 0.974 test accuracy, 3 other seeds):
the learned per-layer scales are uneven (the first and last layers end well under 1), so the
rescue claim may well fail at this budget; that is reported as measured. The first ``cpu`` run
(3 seeds, the first margin that added the scheme's seed SE: see ``_rescue.py``) measured MetaInit
0.907 +- 0.037 vs LeCun 0.974 +- 0.005 and passed on a margin of 0.077 that MetaInit's own spread
made; 5 seeds and the good arm's margin are used since.

On the chaotic side (not used for the claims): an exploratory direct call at this depth and width
with :math:`\sigma_w^2 = 4` lowered GQ too (590 -> 0.28 over 100 noise iterations, one seed),
whereas an earlier implementer's note found GQ not reliably lowered there in 40-60 iterations on
a different net: GQ at a chaotic init is huge and noisy, and the first iterations can raise it.

Scales: ``smoke`` (depth 4, width 16, 40 SGD steps, 5 MetaInit iterations, 2 seeds: seconds,
plumbing only), ``cpu`` (as above, ~2 min), ``paper`` (depth 20, width 256, 5000 steps, 500
MetaInit iterations, 5 seeds: configured, not run here).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from initbench.benchmarks.reproduce import Claim, Reproduction, _rescue

EXPERIMENT = "dauphin2019-rescue"
SCHEME = "metainit"
# mirrors the experiment's scales (tested): depth, width, SGD steps, seeds, MetaInit iterations
SIZES = {
    "smoke": {"depth": 4, "width": 16, "steps": 40, "seeds": 2, "metainit_steps": 5},
    "cpu": {"depth": 12, "width": 64, "steps": 1500, "seeds": 5, "metainit_steps": 100},
    "paper": {"depth": 20, "width": 256, "steps": 5000, "seeds": 5, "metainit_steps": 500},
}
CRITICAL = 1.0  # sigma_w^2 of the tanh order-to-chaos transition without biases
FACTOR = 2.0  # "toward critical": within this factor of it
WINDOW = 0.1  # fraction of the MetaInit iterations averaged at its start and end


def measure_training(scale: str) -> pd.DataFrame:
    """The experiment through the runner: ``arm, seed, step, split, metric, value, n_test``."""
    return _rescue.training(EXPERIMENT, scale)


def measure_metainit(scale: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MetaInit as the trainer runs it.

    Returns:
      GQ per iteration (``seed, step, gradient_quotient``) and the implied sigma_w^2 per layer
      before/after (``seed, layer, path, stage, sigma_w2``).
    """
    objective, norms = [], []
    for run in _rescue.scheme_runs(EXPERIMENT, scale, SCHEME):
        gq = np.asarray(run["record"]["objective"], np.float64)
        objective += [{"seed": run["seed"], "step": i, "gradient_quotient": float(v)} for i, v in enumerate(gq)]
        for stage in ("before", "after"):
            for layer, (path, s2) in enumerate(_rescue.implied_sigma_w2(run[stage])):
                norms.append({"seed": run["seed"], "layer": layer, "path": path, "stage": stage, "sigma_w2": s2})
    return pd.DataFrame(objective), pd.DataFrame(norms)


def _geo_mean_tanh_layers(norms: pd.DataFrame, stage: str) -> tuple[float, float, float]:
    """Geometric mean over tanh layers (not the head) and seeds; also the per-layer range (seed means)."""
    part = norms[(norms["stage"] == stage) & ~norms["path"].str.startswith("head")]
    per_seed = part.groupby("seed")["sigma_w2"].apply(lambda v: float(np.exp(np.mean(np.log(v)))))
    per_layer = part.groupby("layer")["sigma_w2"].mean()
    return float(np.exp(np.mean(np.log(per_seed)))), float(per_layer.min()), float(per_layer.max())


def parts(measurements: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The measured frames back from the tidy rows: ``train``, ``objective`` and ``norms`` as measured."""
    gq = measurements[measurements["part"] == "metainit"]
    objective = gq.pivot(index=["seed", "step"], columns="metric", values="value").reset_index()
    objective = objective.astype({"step": int}).rename_axis(columns=None)
    scales = measurements[measurements["part"] == "scales"]
    norms = scales[["seed", "layer", "path", "stage", "value"]].rename(columns={"value": "sigma_w2"})
    return _rescue.training_rows(measurements), objective, norms.astype({"layer": int}).reset_index(drop=True)


def claims(measurements: pd.DataFrame, scale: str) -> list[Claim]:
    """The four claims of the module docstring on the measurements alone; the same criteria at every scale."""
    train, objective, norms = parts(measurements)
    out = _rescue.rescue_claims(_rescue.final_accuracy(train), SCHEME, "MetaInit")
    firsts, lasts = [], []
    for _, g in objective.sort_values("step").groupby("seed"):
        k = max(1, round(WINDOW * len(g)))
        firsts.append(float(g["gradient_quotient"].iloc[:k].mean()))
        lasts.append(float(g["gradient_quotient"].iloc[-k:].mean()))
    finite = all(math.isfinite(v) for v in firsts + lasts)
    lowered = finite and len(firsts) > 0 and all(b < a for a, b in zip(firsts, lasts, strict=True))
    pairs = ", ".join(f"{a:.3g} -> {b:.3g}" for a, b in zip(firsts, lasts, strict=True))
    out.append(
        Claim(
            "MetaInit lowers the gradient quotient",
            "MetaInit minimizes the gradient quotient; from a bad init GQ falls over the MetaInit iterations",
            f"for every seed: mean GQ of the last {WINDOW:.0%} of iterations < that of the first {WINDOW:.0%}"
            " (a non-finite GQ fails)",
            f"GQ first -> last, per seed: {pairs}" + ("" if finite else " (non-finite values)"),
            bool(lowered),
            kind="check",
            note="MetaInit minimizes this quantity: it fails only if the optimization diverges",
        )
    )
    before, _, _ = _geo_mean_tanh_layers(norms, "before")
    after, low, high = _geo_mean_tanh_layers(norms, "after")
    ok = (
        math.isfinite(after)
        and 1 / FACTOR <= after / CRITICAL <= FACTOR
        and abs(math.log(after)) < abs(math.log(before))
    )
    out.append(
        Claim(
            "learned norms move toward critical",
            "the learned per-layer norms repair the bad scale (move the weight scale toward a well-conditioned,"
            " critical value)",
            f"geometric mean over tanh layers and seeds of n_in Var[W] after MetaInit within a factor {FACTOR:g} of"
            f" the critical {CRITICAL:g}, and closer to it (in log) than before",
            f"implied sigma_w^2: before {before:.3f}, after {after:.3f} (per-layer seed means from {low:.2f} to"
            f" {high:.2f})",
            bool(ok),
        )
    )
    return out


def figures(train: pd.DataFrame, objective: pd.DataFrame, norms: pd.DataFrame, scale: str) -> dict:
    """GQ against MetaInit iterations, implied sigma_w^2 per layer before/after, and the training curves."""
    import matplotlib.pyplot as plt

    size = SIZES[scale]
    out = {}
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for seed, g in objective.groupby("seed"):
        ax.plot(g["step"], g["gradient_quotient"], lw=1, label=f"seed {seed}")
    ax.set_yscale("log")
    ax.set_xlabel("MetaInit iteration")
    ax.set_ylabel("gradient quotient")
    ax.set_title(f"MetaInit from sigma_w^2 = {_rescue.BAD_SCALE}: GQ per iteration (noise inputs)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["gradient_quotient"] = fig
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for n, (stage, g) in enumerate(norms.groupby("stage", sort=False)):
        for seed, s in g.groupby("seed"):
            ax.plot(
                s["layer"],
                s["sigma_w2"],
                "o-",
                color=f"C{n}",
                lw=1,
                ms=3,
                alpha=0.7,
                label=f"{stage} MetaInit" if seed == g["seed"].min() else None,
            )
    ax.axhline(CRITICAL, color="k", ls="--", lw=1, label="critical (LeCun)")
    ax.set_yscale("log")
    ax.set_xlabel("layer (last: classifier)")
    ax.set_ylabel("implied sigma_w^2 = fan_in Var[W]")
    ax.set_title("Learned per-layer scales")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["learned_scales"] = fig
    out["training"] = _rescue.training_figure(
        train, SCHEME, f"{size['depth']}-layer tanh MLP (width {size['width']}) on digits, plain SGD"
    )
    return out


def tidy_rows(train: pd.DataFrame, objective: pd.DataFrame, norms: pd.DataFrame) -> pd.DataFrame:
    """The measured frames as one tidy frame (a ``part`` per frame, ``metric, value`` rows); :func:`parts` undoes it."""
    return pd.concat(
        [
            train.assign(part="training"),
            objective.melt(id_vars=["seed", "step"], var_name="metric", value_name="value").assign(part="metainit"),
            norms.rename(columns={"sigma_w2": "value"}).assign(metric="implied_sigma_w2", part="scales"),
        ],
        ignore_index=True,
    )


def run(scale: str) -> Reproduction:
    """Trains the three arms, records MetaInit, checks the claims on the rows, draws the figures."""
    import matplotlib

    matplotlib.use("Agg")

    rows = tidy_rows(measure_training(scale), *measure_metainit(scale))
    return Reproduction("dauphin2019", scale, claims(rows, scale), rows, figures(*parts(rows), scale))
