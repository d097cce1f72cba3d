r"""``initbench coord-check``: microsoft/mup's coordinate check, with a verdict per layer and step.

A model is trained for ``k`` steps (default 3) at several widths (default 128 to 2048) and seeds, all
else equal (one grid: the model, init, optimizer, learning rate and parametrization of the command
line). After every step a probe (``train_cohort(probe=...)``) reads the mean absolute value of
every layer's output on one fixed batch (the first ``batch_size`` training examples): the hidden
layers' activations and the logits. Under a parametrization whose updates are width-stable
(muP) these coordinates keep their size as the width grows; under SP with a fixed learning rate
some grow as a power of the width (Yang et al. 2022, "Tensor Programs V", Fig. 5; microsoft/mup's
``get_coord_data``).

Verdict per (layer, step >= 1): the slope :math:`s` of log(mean |x|) against log(width), fitted
per seed; its Student-t confidence interval over the seeds (95%) decides:

* ``width-stable``: the interval lies within :math:`\pm` :data:`STABLE` = 1/4;
* ``grows as width^s`` / ``shrinks as width^s``: the interval lies above 1/4 / below -1/4;
* ``diverged at width w``: some width's run diverged (its coordinates are NaN): not stable;
* ``inconclusive``: otherwise (more seeds or widths narrow it).

1/4 is half of 1/2, the smallest exponent by which the abc parametrizations' scales differ (their
exponents are multiples of 1/2; TP4 Table), fixed before any measurement. Step 0 (the init) is
recorded but not judged: muP's readout starts at width^-1/2 by design. Exit codes: 0 every layer
width-stable at every step, 1 some layer grows, shrinks or diverges (named with its slope), 3
otherwise. The default widths start at 128: a first run over 64..1024 (MLP 3 x n, ReLU, Adam at
1e-2, muP) put the hidden layers' slopes at 0.19-0.27, "inconclusive", because the width-64 nets
sit visibly below the trend (finite-width fluctuations); over 128..2048 the same check is
width-stable (slopes 0.07-0.17).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

WIDTHS = (128, 256, 512, 1024, 2048)
STEPS = 3
SEEDS = 5
LR = 1e-2
STABLE = 0.25
LEVEL = 0.95


def measure(specs: Sequence[Any], dataset: Any, *, devices: Any = None) -> pd.DataFrame:
    """Trains ``specs`` (one cohort per width) with the coordinate probe; its tidy rows (split ``probe``)."""
    import jax
    import jax.numpy as jnp

    from initbench import models
    from initbench.benchmarks.runner import cohorts
    from initbench.benchmarks.train import build_model, train_cohort

    frames = []
    for group in cohorts(list(specs)):
        first = group[0]
        net = build_model(first, dataset)
        batch = jnp.asarray(dataset.x_train[: first.data.batch_size])

        def probe(variables: dict, net: Any = net, batch: jax.Array = batch) -> dict:
            _, state = net.apply(variables, batch, mutable=["intermediates"])
            out = {}
            for layer in models.per_layer(state["intermediates"]):
                x = layer["activation"] if layer["activation"] is not None else layer["pre_activation"]
                out[layer["layer"]] = jnp.mean(jnp.abs(x))
            return {"mean_abs": out}

        for rows, _ in train_cohort(group, dataset, devices=devices, probe=probe):
            frames.append(rows[rows["split"] == "probe"])
    return pd.concat(frames, ignore_index=True)


def verdicts(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (layer, step >= 1): the fitted slope over width, its confidence half-width, the verdict.

    Example:
      >>> rows = pd.DataFrame([
      ...     {"layer": "head", "step": 1, "seed": s, "width": w, "value": w ** (1.0 + 0.01 * s)}
      ...     for s in range(3) for w in (64, 256, 1024)])
      >>> verdicts(rows)[["layer", "step", "verdict"]].values.tolist()
      [['head', 1, 'grows as width^1.01']]
    """
    from scipy import stats

    out = []
    judged = rows[rows["step"] >= 1]
    for (layer, step), g in judged.groupby(["layer", "step"], sort=True):
        lost = g[g["value"].isna()]
        if len(lost):
            out.append(
                {
                    "layer": layer,
                    "step": int(step),
                    "slope": math.nan,
                    "half_width": math.nan,
                    "seeds": int(g["seed"].nunique()),
                    "verdict": f"diverged at width {int(lost['width'].min())}",
                }
            )
            continue
        slopes = []
        for _, s in g.groupby("seed"):
            s = s.sort_values("width")
            x, y = np.log(s["width"].to_numpy(np.float64)), np.log(np.maximum(s["value"].to_numpy(np.float64), 1e-300))
            slopes.append(np.polyfit(x, y, 1)[0] if np.isfinite(y).all() and len(x) >= 2 else math.nan)
        slopes_a = np.asarray(slopes)
        n = len(slopes_a)
        mean = float(np.mean(slopes_a))
        half = (
            float(stats.t.ppf(0.5 + LEVEL / 2, n - 1) * np.std(slopes_a, ddof=1) / math.sqrt(n)) if n > 1 else math.inf
        )
        lo, hi = mean - half, mean + half
        if not math.isfinite(mean) or not math.isfinite(half):
            verdict = "inconclusive"
        elif lo > STABLE:
            verdict = f"grows as width^{mean:.2f}"
        elif hi < -STABLE:
            verdict = f"shrinks as width^{mean:.2f}"
        elif -STABLE <= lo and hi <= STABLE:
            verdict = "width-stable"
        else:
            verdict = "inconclusive"
        out.append(
            {"layer": layer, "step": int(step), "slope": mean, "half_width": half, "seeds": n, "verdict": verdict}
        )
    return pd.DataFrame(out, columns=["layer", "step", "slope", "half_width", "seeds", "verdict"])


def exit_code(table: pd.DataFrame) -> int:
    """0 every (layer, step) width-stable, 1 some layer grows or shrinks, 3 otherwise."""
    if table["verdict"].str.startswith(("grows", "shrinks", "diverged")).any():
        return 1
    return 0 if (table["verdict"] == "width-stable").all() else 3


def figure(rows: pd.DataFrame) -> Any:
    """The familiar form: one panel per step, log2 width on x, mean |x| (log) per layer, mean over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(rows["step"].unique())
    fig, axes = plt.subplots(1, len(steps), figsize=(3.2 * len(steps), 3.2), sharey=True, squeeze=False)
    means = rows.groupby(["step", "layer", "width"])["value"].mean()
    for ax, step in zip(axes[0], steps, strict=True):
        for layer, g in means.loc[step].groupby(level="layer"):
            widths = g.index.get_level_values("width")
            ax.plot(np.log2(widths), g.to_numpy(), marker="o", ms=3, label=layer)
        ax.set_yscale("log")
        ax.set_title(f"step {step}", fontsize=9)
        ax.set_xlabel("log2 width")
    axes[0][0].set_ylabel("mean |x| on a fixed batch")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    return fig
