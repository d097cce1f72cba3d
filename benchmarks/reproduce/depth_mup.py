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
grid's lowest loss and two points on each side (``_transfer.optimum``, the same rule as
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

import math
from typing import Any

import pandas as pd

from initbench.benchmarks.reproduce import Claim, Reproduction
from initbench.benchmarks.reproduce._transfer import Arms, loss_against_lr_figure, transfer_claims
from initbench.benchmarks.reproduce._transfer import train as _train

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
    return _train(
        runs,
        dataset,
        lambda r: {
            "arm": "depth-mup" if r.parametrization else "standard",
            "depth": int(sum(dict(r.model.extra)["blocks"])),
            "log2_lr": round(math.log2(r.train.lr)),
            "seed": r.seed,
        },
    )


DEPTH = Arms(
    "depth",
    ("standard", "standard"),
    ("depth-mup", "Depth-muP"),
    "without the 1/sqrt(L) branch scaling the optimal learning rate drifts as the depth grows (TP6 Fig. 1)",
    "with branches x 1/sqrt(L) (and Adam's branch rates x 1/sqrt(L)) the optimal learning rate is stable "
    "across depth (TP6 Fig. 1; Bordelon et al. 2023 Fig. 1)",
    "Depth-muP transfers the learning rate where the standard net does not",
    "the learning rate tuned shallow transfers deep with the depth scaling and not without it",
    "deeper is never worse at the shared optimum (Depth-muP)",
    "with the depth scaling, at the transferred learning rate a deeper network is not worse (TP6 Fig. 1)",
)


def claims(rows: pd.DataFrame, scale: str) -> list[Claim]:
    """The four claims of ``depth-mup`` on its rows (see the module docstring); the same at every scale."""
    return transfer_claims(rows, DEPTH)


def figure(rows: pd.DataFrame) -> Any:
    """TP6 Fig. 1's form: training loss against log2 learning rate, one line per depth, both arms side by side."""
    panels = (("standard", "standard (branch x 1)"), ("depth-mup", "Depth-muP (branch x L^-1/2)"))
    return loss_against_lr_figure(rows, "depth", panels, "{} blocks")


def run(scale: str) -> Reproduction:
    """``depth-mup``: measures the depth x learning-rate grid with and without the depth rule, judges and draws."""
    from initbench.benchmarks import data

    s = SETUP[scale]
    ds = data.load(s["data"])
    runs = [r for arm in ARMS for r in specs(scale, arm, s["depths"], s["grid"], range(s["seeds"]))]
    rows = train(runs, ds)
    return Reproduction("depth-mup", scale, claims(rows, scale), rows, {"depth_transfer": figure(rows)})
