r"""``depth-mup``: the optimal learning rate across depth with and without Depth-muP's branch scaling.

Yang, Yu, Zhu & Hayou 2023 ("Tensor Programs VI: Feature Learning in Infinite-Depth Neural
Networks", Fig. 1 and Sec. 9) and Bordelon et al. 2023 ("Depthwise Hyperparameter Transfer in
Residual Networks") train residual networks of growing depth over a grid of learning rates: with
each residual branch multiplied by :math:`1/\sqrt{L}` (and, with Adam, the branches' learning
rate by :math:`1/\sqrt{L}`) the optimal learning rate stays put as the depth :math:`L` grows;
without it the optimum drifts (every block's update adds to the output, so the output moves
:math:`L` times as far per step) and deeper is not better.

Setup (cpu scale; TP6 and Bordelon et al. train ResNets on CIFAR-10, which cannot be had offline
here, so the substitute is scikit-learn's 8x8 digits, which a convolutional ResNet of up to 16
blocks trains on in minutes on 2 cores): ``models.ResNet`` with one stage of :math:`L` basic
blocks (stem conv, blocks of two 3x3 convs, global average pool, linear head), 16 channels, no
normalization, ReLU, He-normal init, zero biases, scanned blocks; Adam with the rate decayed to 0
by a cosine, batch 64, 100 steps; the training loss is the mean cross-entropy on the training split
after the last step. Depths 1, 2, 4, 8 (8x), learning rates :math:`2^{-12} .. 2^{-5}` (one grid
step = a factor 2), 4 seeds. Two arms:

* ``depth-mup``: the depth rule with :math:`\alpha = 1/2` and base depth 1
  (:func:`initbench.benchmarks.parametrization.depth_rules`: branch multiplier
  :math:`L^{-1/2}`, the branches' Adam rates :math:`\times L^{-1/2}`); at depth 1 it is the
  plain network;
* ``standard``: the same networks with branch multiplier 1 and one learning rate.

The optimum of one (arm, depth, seed) is the vertex of the least-squares parabola through the
grid's lowest loss and two points on each side (``yang2022_transfer.optimum``, the same rule as
``yang2022-transfer``); its *shift* is the optimum minus the same seed's optimum at depth 1.
Claims (95% Student-t intervals over seeds; fixed before the cpu scale first ran, with the same
criteria as ``yang2022-transfer``'s width claims). The width, depths, budget and grid were chosen
from a pilot before any claim ran (2 and 16 blocks, one seed, 150 steps, rates
:math:`2^{-12}, 2^{-10}, .., 2^{-4}`, base depth 2): with the depth rule the 2- and 16-block nets
reached losses 0.28 and 0.54 at :math:`2^{-8}`, without it the 16-block net trained at no rate (best
2.07, chance 2.30), so the depths stop at 8 and the grid reaches lower; the budget fits 10 minutes.

* standard moves: the deepest depth's shift has its interval below 0 and a mean of at least one
  grid step;
* Depth-muP stays: every depth's shift has its interval inside +-1 grid step, no optimum at the
  grid's edge;
* Depth-muP transfers better: per seed, Depth-muP's shift minus standard's at the deepest depth,
  interval above 0;
* deeper is never worse at the shared optimum (Depth-muP): at the grid rate nearest the mean
  Depth-muP optimum, no depth's training loss is significantly above the next shallower one's
  (paired by seed: the interval of the difference is not entirely above 0).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from initbench.benchmarks.reproduce import Claim, Reproduction
from initbench.benchmarks.reproduce.yang2022_transfer import _ci, _colors, _fmt, optimum

SETUP: dict[str, dict[str, Any]] = {
    "smoke": {"data": "digits", "width": 4, "steps": 20, "grid": range(-10, -4), "depths": (1, 2), "seeds": 2},
    "cpu": {"data": "digits", "width": 16, "steps": 100, "grid": range(-12, -4), "depths": (1, 2, 4, 8), "seeds": 4},
    "paper": {
        "data": "fashion_mnist",
        "width": 64,
        "steps": 2000,
        "grid": range(-14, -2),
        "depths": (1, 2, 4, 8, 16, 32),
        "seeds": 5,
    },
}
ARMS = ("standard", "depth-mup")
BASE_DEPTH, ALPHA, BATCH = 1, 0.5, 64


def specs(scale: str, arm: str, depths: Any, log2_lrs: Any, seeds: Any) -> list:
    """The runs of one arm: depth x learning rate x seed (one-stage ResNet, He init, Adam, cosine)."""
    from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options

    s = SETUP[scale]
    par = {"name": "sp", "depth_alpha": ALPHA, "base_depth": BASE_DEPTH} if arm == "depth-mup" else ()
    return [
        RunSpec(
            "depth-mup",
            "resnet",
            ModelSpec("resnet", "relu", None, s["width"], options(blocks=(depth,), normalization="none", scan=True)),
            InitSpec("he_normal"),
            DataSpec(s["data"], BATCH),
            TrainSpec("adam", lr=2.0**k, steps=s["steps"], eval_every=s["steps"], schedule="cosine"),
            seed,
            parametrization=par,
        )
        for depth in depths
        for k in log2_lrs
        for seed in seeds
    ]


def train(runs: list, dataset: Any) -> pd.DataFrame:
    """Trains ``runs``; one row per (run, evaluation): arm, depth, log2_lr, seed, step, the losses."""
    from initbench.benchmarks.reproduce._training import train_runs

    curves, _ = train_runs(runs, dataset)
    curves = curves[curves["layer"].isna() & curves["split"].isin(["train", "test"])]
    wide = curves.pivot_table(
        index=["run_id", "step"], columns=["split", "metric"], values="value", aggfunc="first", dropna=False
    )
    wide.columns = [f"{split}_{metric}" for split, metric in wide.columns]
    info = pd.DataFrame(
        [
            {
                "run_id": r.run_id,
                "arm": "depth-mup" if r.parametrization else "standard",
                "depth": int(sum(dict(r.model.extra)["blocks"])),
                "log2_lr": round(math.log2(r.train.lr)),
                "seed": r.seed,
            }
            for r in runs
        ]
    )
    out = info.merge(wide.reset_index(), on="run_id", how="left", validate="one_to_many")
    return out.drop(columns="run_id").sort_values(["arm", "depth", "log2_lr", "seed", "step"], ignore_index=True)


def optima(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, depth, seed) at the last step: the optimal log2 lr, whether at the edge, its shift from depth 2."""
    last = rows[rows["step"] == rows["step"].max()]
    out = []
    for (arm, depth, seed), g in last.groupby(["arm", "depth", "seed"], sort=True):
        g = g.sort_values("log2_lr")
        opt, edge = optimum(g["log2_lr"], g["train_loss"])
        out.append({"arm": arm, "depth": int(depth), "seed": int(seed), "optimum": opt, "at_edge": edge})
    table = pd.DataFrame(out)
    base = table[table["depth"] == table["depth"].min()].set_index(["arm", "seed"])["optimum"]
    table["shift"] = table["optimum"] - [base[(a, s)] for a, s in zip(table["arm"], table["seed"], strict=True)]
    return table


def claims(rows: pd.DataFrame) -> list[Claim]:
    """The four claims of ``depth-mup`` on its rows (see the module docstring)."""
    opt = optima(rows)
    depths = sorted(opt["depth"].unique())
    base, deepest = depths[0], depths[-1]
    span = f"depths {base}..{deepest}, {opt['seed'].nunique()} seeds"
    out = []

    std = opt[(opt["arm"] == "standard") & (opt["depth"] == deepest)].sort_values("seed")
    m, h = _ci(std["shift"])
    out.append(
        Claim(
            "standard: the optimal learning rate moves with depth",
            "without the 1/sqrt(L) branch scaling the optimal learning rate drifts as the depth grows (TP6 Fig. 1)",
            f"shift of the optimal log2 lr from depth {base} to {deepest}: 95% interval below 0 and mean <= -1 "
            f"grid step ({span})",
            f"shift {_fmt(m, h)} grid steps"
            + (f"; {int(std['at_edge'].sum())} seed(s) at the grid's edge (a bound)" if std["at_edge"].any() else ""),
            bool(m + h < 0 and m <= -1),
        )
    )

    dmup = opt[opt["arm"] == "depth-mup"]
    cells, inside = [], True
    for d in depths[1:]:
        md, hd = _ci(dmup[dmup["depth"] == d]["shift"])
        cells.append(f"{d}: {_fmt(md, hd)}")
        inside &= -1 <= md - hd and md + hd <= 1
    edges = int(dmup["at_edge"].sum())
    out.append(
        Claim(
            "Depth-muP: the optimal learning rate stays within one grid step",
            "with branches x 1/sqrt(L) (and Adam's branch rates x 1/sqrt(L)) the optimal learning rate is stable "
            "across depth (TP6 Fig. 1; Bordelon et al. 2023 Fig. 1)",
            f"every depth's shift vs depth {base}: 95% interval inside +-1 grid step, no optimum at the grid's "
            f"edge ({span})",
            "shifts " + ", ".join(cells) + (f"; {edges} optima at the grid's edge" if edges else ""),
            bool(inside and edges == 0),
        )
    )

    both = opt[opt["depth"] == deepest].pivot(index="seed", columns="arm", values="shift").dropna()
    m, h = _ci(both["depth-mup"] - both["standard"]) if len(both) else (math.nan, math.inf)
    out.append(
        Claim(
            "Depth-muP transfers the learning rate where the standard net does not",
            "the learning rate tuned shallow transfers deep with the depth scaling and not without it",
            f"per seed, Depth-muP's shift minus standard's at depth {deepest}: 95% interval above 0",
            f"{_fmt(m, h)} grid steps over {len(both)} seeds",
            bool(len(both) > 1 and m - h > 0),
        )
    )

    shared = round(dmup["optimum"].mean()) if dmup["optimum"].notna().any() else None
    last = rows[(rows["step"] == rows["step"].max()) & (rows["arm"] == "depth-mup") & (rows["log2_lr"] == shared)]
    loss = last.pivot(index="seed", columns="depth", values="train_loss").fillna(np.inf)  # NaN: diverged
    worse, cells = [], []
    for shallow, deep in itertools.pairwise(depths):
        diff = (loss[deep] - loss[shallow]) if deep in loss and shallow in loss else pd.Series(dtype=float)
        md, hd = _ci(diff) if len(diff) else (math.nan, math.inf)
        cells.append(f"{deep} vs {shallow}: {_fmt(md, hd)}")
        if not (md - hd <= 0):  # also NaN (a diverged deeper run)
            worse.append(f"{deep}")
    means = loss.mean().to_dict() if len(loss) else {}
    out.append(
        Claim(
            "deeper is never worse at the shared optimum (Depth-muP)",
            "with the depth scaling, at the transferred learning rate a deeper network is not worse (TP6 Fig. 1)",
            "at the grid lr nearest the mean Depth-muP optimum, each doubling's paired training-loss difference is "
            "not entirely above 0 (95% interval)",
            (
                f"lr 2^{shared}: loss "
                + ", ".join(f"{d} {v:.3f}" for d, v in sorted(means.items()))
                + "; differences "
                + "; ".join(cells)
                + (f"; worse: {', '.join(worse)}" if worse else "")
                if shared is not None
                else "no finite Depth-muP optimum"
            ),
            bool(shared is not None and len(loss) > 1 and not worse),
        )
    )
    return out


def figure(rows: pd.DataFrame) -> Any:
    """TP6 Fig. 1's form: training loss against log2 learning rate, one line per depth, both arms side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last = rows[rows["step"] == rows["step"].max()]
    depths = sorted(last["depth"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True)
    finite = last["train_loss"].where(np.isfinite(last["train_loss"]))
    top = float(np.nanmax(finite)) if finite.notna().any() else 2.5
    for ax, arm in zip(axes, ARMS, strict=True):
        a = last[last["arm"] == arm]
        for color, d in zip(_colors(len(depths)), depths, strict=True):
            g = a[a["depth"] == d].groupby("log2_lr")["train_loss"].mean()
            ax.plot(g.index, g.to_numpy(), marker="o", ms=3, color=color, label=f"{d} blocks")
            x, _ = optimum(g.index, g.to_numpy())
            if math.isfinite(x):
                ax.axvline(x, color=color, lw=0.6, ls=":")
        ax.set_title("standard (branch x 1)" if arm == "standard" else "Depth-muP (branch x L^-1/2)", fontsize=9)
        ax.set_xlabel("log2 learning rate (Adam)")
        ax.set_ylim(top=min(top, 2.5))
    axes[0].set_ylabel("training loss (mean over seeds)")
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    return fig


def run(scale: str) -> Reproduction:
    """``depth-mup``: measures the depth x learning-rate grid with and without the depth rule, judges and draws."""
    from initbench.benchmarks import data

    s = SETUP[scale]
    ds = data.load(s["data"])
    runs = [r for arm in ARMS for r in specs(scale, arm, s["depths"], s["grid"], range(s["seeds"]))]
    rows = train(runs, ds)
    return Reproduction("depth-mup", scale, claims(rows), rows, {"depth_transfer": figure(rows)})
