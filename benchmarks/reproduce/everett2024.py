r"""``everett2024``: per-layer optimal learning-rate exponents under SP with Adam, against Everett et al.'s table.

Everett et al. 2024 ("Scaling Exponents Across Parameterizations and Optimizers", ICML; Table 1
and Sec. 3) predict, per layer, how Adam's optimal learning rate must scale with the width
:math:`n`, :math:`\eta_l \propto n^{-c_l}`, from the layer's multiplier and init exponents and an
assumption on how far the updates align with the activations. Under the standard parametrization
(SP: no multipliers, init variance :math:`1/\text{fan\_in}`) the embedding (here the input layer,
whose fan-in does not grow) has :math:`c = 0` under every assumption, and the hidden and readout
layers have :math:`c = 1` under *full alignment* (the assumption of TP4/TP5) and :math:`c = 1/2`
under *no alignment* (:data:`initbench.benchmarks.parametrization.EVERETT`, the library's own
table, is the prediction read here). Their finding: "the best learning rate scaling prescription
would often have been excluded by the assumptions in prior work" (abstract): alignment during
training is far from full, and SP with per-layer rates transfers.

Setup (cpu scale; the paper trains decoder-only Transformers on C4 up to 26.8B parameters, which
a 2-core CPU cannot; the substitute is the MLP of ``yang2022-transfer``, so the two reproductions
share one setting): MLP 784 -> n -> n -> 10 (input, hidden and readout kernels), ReLU, He-normal
init (SP), Adam with the rate decayed to 0 by a cosine, batch 128, 200 steps on Fashion-MNIST's
official training split (Debian's ``dataset-fashion-mnist``); the training loss is the mean
cross-entropy on the first 2,000 training examples after the last step.

1. *Tune* a global rate :math:`\eta_0` at the base width 64: log2 rates -14..-4, 3 seeds, the grid
   rate of lowest mean final loss (``yang2022_transfer.best_rate``).
2. *Sweep one layer at a time* at widths 64..1024 (16x), 4 other seeds: the swept layer's rate is
   :math:`\eta_0 \cdot 2^j` (:math:`j = -6..3`, one grid step a factor 2), every other kernel's is
   :math:`\eta_0 (n/64)^{-c}` with the full-alignment :math:`c` (a context that is stable at every
   width: a rate smaller than the optimum trains, a larger one may diverge), biases
   :math:`\eta_0`. This is a coordinate-wise analogue of the paper's per-layer fits: each layer's
   optimum is found with the other layers at one fixed prescription, not jointly.
3. Per (layer, width, seed) the optimal :math:`j` is the vertex of the least-squares parabola
   through the grid's lowest loss and two points on each side (``_transfer.optimum``; a diverged
   run counts as an infinite loss); per (layer, seed) the *fitted exponent* is minus the
   least-squares slope of that optimum against :math:`\log_2(n/64)`.

Claims (95% Student-t intervals over the sweep's seeds; criteria fixed in this docstring before
the cpu scale first ran; the margin 1/4 is half the gap between the two alignments' predictions,
the resolution at which the fit can tell them apart):

* per layer (input, hidden, readout): the fitted exponent lies between the no-alignment and the
  full-alignment prediction: its interval inside [min - 1/4, max + 1/4] of the two (for the input
  layer, both 0: [-1/4, 1/4]), and no optimum of that layer at the grid's edge (an edge optimum
  is a bound, not a measurement);
* alignment is not full: for the hidden and for the readout layer, the full-alignment exponent
  minus the fitted one has its interval above 0 (per seed).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from initbench.benchmarks.reproduce import Claim, Reproduction
from initbench.benchmarks.reproduce._stats import ci
from initbench.benchmarks.reproduce._transfer import colors, fmt, optimum

BASE = {"smoke": 16, "cpu": 64, "paper": 128}
SETUP: dict[str, dict[str, Any]] = {
    "smoke": {
        "data": "digits",
        "steps": 20,
        "tune_grid": range(-10, -3),
        "tune_seeds": 2,
        "widths": (16, 32, 64),
        "grid": range(-3, 3),
        "seeds": 2,
    },
    "cpu": {
        "data": "fashion_mnist",
        "steps": 200,
        "tune_grid": range(-14, -3),
        "tune_seeds": 3,
        "widths": (64, 128, 256, 512, 1024),
        "grid": range(-6, 4),
        "seeds": 4,
    },
    "paper": {  # the paper's widths are a Transformer's; this is the MLP at a GPU's budget
        "data": "fashion_mnist",
        "steps": 4700,  # 10 epochs of 60k at batch 128
        "tune_grid": range(-16, -3),
        "tune_seeds": 5,
        "widths": (128, 256, 512, 1024, 2048, 4096, 8192),
        "grid": range(-9, 4),
        "seeds": 5,
    },
}
LAYERS = ("input", "hidden", "readout")
PARAM = "sp"
MARGIN = 0.25  # half the gap between the alignments' predictions for hidden and readout (1 vs 1/2)
BATCH, EVAL_EXAMPLES, DEPTH = 128, 2000, 2
SWEEP_SEED0 = 100  # the sweep's seeds are not the tuning runs' (no winner's curse at the base width)


def predictions(param: str = PARAM) -> dict[str, dict[str, float]]:
    """Everett et al.'s Adam exponent :math:`c_l` per layer and alignment (``full``, ``no``) for ``param``.

    Example:
      >>> predictions("sp")["hidden"]
      {'full': 1.0, 'no': 0.5}
    """
    from initbench.benchmarks.parametrization import EVERETT

    row = EVERETT[param]
    return {layer: {"full": row["full"][k], "no": row["no"][k]} for k, layer in enumerate(LAYERS)}


def lr_scale(layer: str | None, log2_mult: int, width: int, base: int) -> dict[str, float]:
    """The per-class rate multipliers of one sweep run: ``layer`` at ``2**log2_mult``, the others at full alignment.

    ``layer=None`` (the tuning runs): every class at 1. Multipliers equal to 1 are left out, so
    one run has one form.

    Example:
      >>> lr_scale("hidden", -2, 256, 64)
      {'hidden': 0.25, 'readout': 0.25}
      >>> lr_scale("input", 0, 64, 64)
      {}
    """
    out = {}
    full = predictions()
    for cls in LAYERS:
        value = 2.0**log2_mult if cls == layer else (width / base) ** -full[cls]["full"] if layer else 1.0
        if value != 1.0:
            out[cls] = value
    return out


def specs(scale: str, width: int, log2_lr: int, seed: int, layer: str | None = None, log2_mult: int = 0) -> Any:
    """One run: the MLP at ``width``, SP He-normal init, Adam at ``2**log2_lr`` with ``lr_scale``'s multipliers."""
    from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec

    s = SETUP[scale]
    return RunSpec(
        "everett2024",
        "mlp",
        ModelSpec("mlp", "relu", DEPTH, width),
        InitSpec("he_normal"),
        DataSpec(s["data"], BATCH, eval_examples=EVAL_EXAMPLES),
        TrainSpec(
            "adam",
            lr=2.0**log2_lr,
            steps=s["steps"],
            eval_every=s["steps"],
            schedule="cosine",
            lr_scale=tuple(sorted(lr_scale(layer, log2_mult, width, BASE[scale]).items())),
        ),
        seed,
    )


def train(labelled: list[tuple[dict[str, Any], Any]], dataset: Any) -> pd.DataFrame:
    """Trains each distinct run once; one row per (label, evaluation): the label's columns, step, the losses.

    Runs that are the same run (the base width's ``j = 0`` of every layer) share one training.
    """
    from initbench.benchmarks.reproduce._training import train_runs

    unique = list({spec.run_id: spec for _, spec in labelled}.values())
    curves, _ = train_runs(unique, dataset)
    curves = curves[curves["layer"].isna() & curves["split"].isin(["train", "test"])]
    wide = curves.pivot_table(
        index=["run_id", "step"], columns=["split", "metric"], values="value", aggfunc="first", dropna=False
    )
    wide.columns = [f"{split}_{metric}" for split, metric in wide.columns]
    info = pd.DataFrame([{"run_id": spec.run_id, **label} for label, spec in labelled])
    out = info.merge(wide.reset_index(), on="run_id", how="left", validate="many_to_many")
    keys = [c for c in info.columns if c != "run_id"]
    return out.drop(columns="run_id").sort_values([*keys, "step"], ignore_index=True)


def optima(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (layer, width, seed) of the sweep at its last step: the optimal log2 multiplier and whether at the edge."""
    sweep = rows[rows["phase"] == "sweep"]
    last = sweep[sweep["step"] == sweep["step"].max()]
    out = []
    for (layer, width, seed), g in last.groupby(["layer", "width", "seed"], sort=True):
        g = g.sort_values("log2_mult")
        opt, edge = optimum(g["log2_mult"], g["train_loss"])
        out.append({"layer": layer, "width": int(width), "seed": int(seed), "optimum": opt, "at_edge": edge})
    return pd.DataFrame(out, columns=["layer", "width", "seed", "optimum", "at_edge"])


def exponents(opt: pd.DataFrame) -> pd.DataFrame:
    """Per (layer, seed): the fitted exponent, minus the slope of the optimum against log2(width / base)."""
    base = opt["width"].min()
    out = []
    for (layer, seed), g in opt.groupby(["layer", "seed"], sort=True):
        x = np.log2(g["width"].to_numpy(np.float64) / base)
        y = g["optimum"].to_numpy(np.float64)
        c = -float(np.polyfit(x, y, 1)[0]) if len(x) >= 2 and np.isfinite(y).all() else math.nan
        out.append({"layer": layer, "seed": int(seed), "exponent": c})
    return pd.DataFrame(out, columns=["layer", "seed", "exponent"])


def claims(rows: pd.DataFrame, scale: str) -> list[Claim]:
    """Four claims on the sweep's rows (criteria fixed in the module docstring)."""
    opt = optima(rows)
    fits = exponents(opt)
    pred = predictions()
    widths = sorted(opt["width"].unique())
    span = f"widths {widths[0]}..{widths[-1]}, {opt['seed'].nunique()} seeds" if widths else "no sweep rows"
    tuned = rows.loc[rows["phase"] == "sweep", "log2_lr"]
    base_rate = f"log2 eta_0 = {int(tuned.iloc[0])}" if len(tuned) else "no tuned rate"
    out = []
    for layer in LAYERS:
        lo, hi = sorted((pred[layer]["no"], pred[layer]["full"]))
        c = fits[fits["layer"] == layer]["exponent"]
        m, h = ci(c.fillna(math.inf)) if len(c) else (math.nan, math.inf)
        edges = int(opt[opt["layer"] == layer]["at_edge"].sum())
        where = f"between no alignment ({pred[layer]['no']:g}) and full alignment ({pred[layer]['full']:g})"
        if lo == hi:
            where = f"{lo:g} under both alignments"
        out.append(
            Claim(
                f"SP, Adam, {layer} layer: the optimal rate scales as the table predicts",
                f"under SP with Adam the {layer} layer's optimal learning rate scales as width^-c, c {where} "
                "(Everett et al. 2024, Table 1)",
                f"fitted exponent c (minus the slope of the optimal log2 rate against log2 width): 95% interval "
                f"inside [{lo - MARGIN:g}, {hi + MARGIN:g}], no optimum at the grid's edge ({span})",
                f"c = {fmt(m, h)}"
                + (f"; {edges} optima at the grid's edge" if edges else "")
                + f"; per seed {', '.join(f'{v:.2f}' for v in c)}; {base_rate}",
                bool(lo - MARGIN <= m - h and m + h <= hi + MARGIN and edges == 0),
            )
        )
    cells, ok = [], bool(len(fits))
    for layer in ("hidden", "readout"):
        c = fits[fits["layer"] == layer]["exponent"]
        m, h = ci((pred[layer]["full"] - c).fillna(-math.inf)) if len(c) else (math.nan, math.inf)
        cells.append(f"{layer}: {fmt(m, h)}")
        ok &= bool(m - h > 0)
    out.append(
        Claim(
            "alignment is not full: the best exponents are below full alignment's",
            "the best learning-rate scaling would often have been excluded by the assumptions in prior work "
            "(full alignment); alignment in training is far from full (Everett et al. 2024, abstract and Sec. 4)",
            f"for the hidden and for the readout layer, full alignment's c minus the fitted c, per seed: 95% "
            f"interval above 0 ({span})",
            "; ".join(cells),
            ok,
        )
    )
    return out


def exponent_figure(rows: pd.DataFrame) -> Any:
    """Per layer: the optimal log2 multiplier against log2 width (seeds and mean), the two alignments' lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    opt = optima(rows)
    pred = predictions()
    base = opt["width"].min() if len(opt) else 1
    fig, axes = plt.subplots(1, len(LAYERS), figsize=(9, 3.2), sharey=True)
    for ax, layer in zip(axes, LAYERS, strict=True):
        g = opt[opt["layer"] == layer]
        x = np.log2(g["width"] / base)
        ax.scatter(x, g["optimum"], s=8, color="0.6", label="seeds")
        mean = g.groupby("width")["optimum"].mean()
        xm = np.log2(mean.index.to_numpy(np.float64) / base)
        ax.plot(xm, mean.to_numpy(), marker="o", ms=4, color="C0", label="mean")
        if len(mean):
            x0, y0 = xm[0], float(mean.iloc[0])
            for key, style, name in (("full", "--", "full alignment"), ("no", ":", "no alignment")):
                ax.plot(xm, y0 - pred[layer][key] * (xm - x0), style, color="k", lw=0.8, label=name)
        ax.set_title(f"{layer} layer", fontsize=9)
        ax.set_xlabel(f"log2(width / {base})")
    axes[0].set_ylabel("optimal log2 rate multiplier")
    axes[-1].legend(fontsize=6)
    fig.suptitle("SP with Adam: optimal per-layer rate against width (lines: the table's slopes)", fontsize=9)
    fig.tight_layout()
    return fig


def curves_figure(rows: pd.DataFrame) -> Any:
    """Per layer: training loss against the swept layer's log2 rate multiplier, one line per width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = rows[rows["phase"] == "sweep"]
    last = sweep[sweep["step"] == sweep["step"].max()]
    widths = sorted(last["width"].unique())
    fig, axes = plt.subplots(1, len(LAYERS), figsize=(9, 3.2), sharey=True)
    finite = last["train_loss"].where(np.isfinite(last["train_loss"]))
    top = float(np.nanmax(finite)) if finite.notna().any() else 2.5
    for ax, layer in zip(axes, LAYERS, strict=True):
        a = last[last["layer"] == layer]
        for color, width in zip(colors(len(widths)), widths, strict=True):
            g = a[a["width"] == width].groupby("log2_mult")["train_loss"].mean()
            ax.plot(g.index, g.to_numpy(), marker="o", ms=3, color=color, label=f"width {width}")
        ax.set_title(f"{layer} layer swept", fontsize=9)
        ax.set_xlabel("log2 rate multiplier of the layer")
        ax.set_ylim(top=min(top, 2.5))
    axes[0].set_ylabel("training loss (mean over seeds)")
    axes[-1].legend(fontsize=6)
    fig.tight_layout()
    return fig


def run(scale: str) -> Reproduction:
    """``everett2024``: tunes the base rate, sweeps each layer's rate across widths, judges and draws."""
    from initbench.benchmarks import data
    from initbench.benchmarks.reproduce.yang2022_transfer import best_rate

    s = SETUP[scale]
    ds = data.load(s["data"])
    base = BASE[scale]
    tune_runs = [
        ({"phase": "tune", "layer": "all", "width": base, "log2_lr": k, "log2_mult": 0, "seed": seed}, None)
        for k in s["tune_grid"]
        for seed in range(s["tune_seeds"])
    ]
    tune = train([(label, specs(scale, base, label["log2_lr"], label["seed"])) for label, _ in tune_runs], ds)
    rate = best_rate(tune)
    labelled = [
        (
            {"phase": "sweep", "layer": layer, "width": width, "log2_lr": rate, "log2_mult": j, "seed": seed},
            specs(scale, width, rate, seed, layer, j),
        )
        for layer in LAYERS
        for width in s["widths"]
        for j in s["grid"]
        for seed in range(SWEEP_SEED0, SWEEP_SEED0 + s["seeds"])
    ]
    rows = pd.concat([tune, train(labelled, ds)], ignore_index=True)
    return Reproduction(
        "everett2024",
        scale,
        claims(rows, scale),
        rows,
        {"exponents": exponent_figure(rows), "curves": curves_figure(rows)},
    )
