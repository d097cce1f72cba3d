"""Learning-rate transfer across a scale axis (width, depth): optima, their shifts, four claims, one figure.

Shared by ``yang2022-transfer`` (width; SP against muP) and ``depth-mup`` (depth; no branch
scaling against Depth-muP). Rows have the columns ``arm``, the axis (``width`` or ``depth``),
``log2_lr``, ``seed``, ``step`` and ``train_loss``; the smallest value of the axis is the base.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from initbench.benchmarks.reproduce import Claim
from initbench.benchmarks.reproduce._stats import ci

FIT_HALF = 2  # the optimum's parabola: the grid minimum and up to 2 points on each side


def optimum(log2_lrs: Any, losses: Any) -> tuple[float, bool]:
    """The optimal log2 learning rate of one curve over the grid and whether it sits at the grid's edge.

    The vertex of the least-squares parabola through the grid's lowest loss and up to two points on
    each side (:data:`FIT_HALF`; finite losses only), kept inside those points; a non-finite loss (a
    diverged run) counts as infinite; an edge minimum stays at the edge; with fewer than 3 finite
    points, or no upward curvature, the grid point itself.

    Example:
      >>> x, edge = optimum([-4, -3, -2, -1, 0], [2.8225, 1.7225, 1.1225, 1.0225, 1.4225])  # 1 + (x + 1.3)^2 / 4
      >>> round(x, 6), edge
      (-1.3, False)
      >>> optimum([-3, -2, -1], [0.5, 1.0, float("nan")])
      (-3.0, True)
    """
    x = np.asarray(log2_lrs, np.float64)
    f = np.asarray(losses, np.float64)
    f = np.where(np.isfinite(f), f, np.inf)
    if not np.isfinite(f).any():
        return math.nan, True
    i = int(np.argmin(f))
    if i == 0 or i == len(f) - 1:
        return float(x[i]), True
    window = slice(max(0, i - FIT_HALF), min(len(f), i + FIT_HALF + 1))
    xs, fs = x[window], f[window]
    ok = np.isfinite(fs)
    if ok.sum() < 3:
        return float(x[i]), False
    c2, c1, _ = np.polyfit(xs[ok], fs[ok], 2)
    if not c2 > 0:
        return float(x[i]), False
    return float(np.clip(-c1 / (2 * c2), xs[ok].min(), xs[ok].max())), False


def optima(rows: pd.DataFrame, axis: str = "width") -> pd.DataFrame:
    """Per (arm, size, seed) at the last step: the optimal log2 lr, whether at the edge, its shift from the base."""
    last = rows[rows["step"] == rows["step"].max()]
    out = []
    for (arm, size, seed), g in last.groupby(["arm", axis, "seed"], sort=True):
        g = g.sort_values("log2_lr")
        opt, edge = optimum(g["log2_lr"], g["train_loss"])
        out.append({"arm": arm, axis: int(size), "seed": int(seed), "optimum": opt, "at_edge": edge})
    table = pd.DataFrame(out)
    base = table[table[axis] == table[axis].min()].set_index(["arm", "seed"])["optimum"]
    table["shift"] = table["optimum"] - [base[(a, s)] for a, s in zip(table["arm"], table["seed"], strict=True)]
    return table


def fmt(mean: float, half: float) -> str:
    return f"{mean:+.2f} +- {half:.2f}"


@dataclasses.dataclass(frozen=True)
class Arms:
    """The two arms of a transfer experiment and the words of their claims.

    Attributes:
      axis: The scale column (``width`` or ``depth``).
      moving: The arm whose optimum is expected to move (its ``arm`` value) and its display name.
      stable: The arm whose optimum is expected to stay, and its display name.
      moves_says, stays_says, transfers_says, never_worse_says: What the paper says, per claim.
      transfers_name, never_worse_name: The third and fourth claims' names.
    """

    axis: str
    moving: tuple[str, str]
    stable: tuple[str, str]
    moves_says: str
    stays_says: str
    transfers_name: str
    transfers_says: str
    never_worse_name: str
    never_worse_says: str


def transfer_claims(rows: pd.DataFrame, arms: Arms) -> list[Claim]:
    """Four claims, criteria fixed in the reproductions' docstrings.

    The moving arm's optimum shifts by at least a grid step at the largest size, the stable arm's
    stays within one at every size, the stable arm transfers better per seed, and at the stable
    arm's shared optimum a larger size is never worse.
    """
    axis, (moving, moving_name), (stable, stable_name) = arms.axis, arms.moving, arms.stable
    opt = optima(rows, axis)
    sizes = sorted(opt[axis].unique())
    base, largest = sizes[0], sizes[-1]
    span = f"{axis}s {base}..{largest}, {opt['seed'].nunique()} seeds"
    out = []

    mv = opt[(opt["arm"] == moving) & (opt[axis] == largest)].sort_values("seed")
    m, h = ci(mv["shift"])
    out.append(
        Claim(
            f"{moving_name}: the optimal learning rate moves with {axis}",
            arms.moves_says,
            f"shift of the optimal log2 lr from {axis} {base} to {largest}: 95% interval below 0 and mean <= -1 "
            f"grid step ({span})",
            f"shift {fmt(m, h)} grid steps"
            + (f"; {int(mv['at_edge'].sum())} seed(s) at the grid's edge (a bound)" if mv["at_edge"].any() else ""),
            bool(m + h < 0 and m <= -1),
        )
    )

    st = opt[opt["arm"] == stable]
    cells, inside = [], True
    for size in sizes[1:]:
        ms, hs = ci(st[st[axis] == size]["shift"])
        cells.append(f"{size}: {fmt(ms, hs)}")
        inside &= -1 <= ms - hs and ms + hs <= 1
    edges = int(st["at_edge"].sum())
    out.append(
        Claim(
            f"{stable_name}: the optimal learning rate stays within one grid step",
            arms.stays_says,
            f"every {axis}'s shift vs {axis} {base}: 95% interval inside +-1 grid step, no optimum at the grid's "
            f"edge ({span})",
            "shifts " + ", ".join(cells) + (f"; {edges} optima at the grid's edge" if edges else ""),
            bool(inside and edges == 0),
        )
    )

    both = opt[opt[axis] == largest].pivot(index="seed", columns="arm", values="shift").dropna()
    m, h = ci(both[stable] - both[moving]) if len(both) else (math.nan, math.inf)
    out.append(
        Claim(
            arms.transfers_name,
            arms.transfers_says,
            f"per seed, {stable_name}'s shift minus {moving_name}'s at {axis} {largest}: 95% interval above 0",
            f"{fmt(m, h)} grid steps over {len(both)} seeds",
            bool(len(both) > 1 and m - h > 0),
        )
    )

    shared = round(st["optimum"].mean()) if st["optimum"].notna().any() else None
    last = rows[(rows["step"] == rows["step"].max()) & (rows["arm"] == stable) & (rows["log2_lr"] == shared)]
    loss = last.pivot(index="seed", columns=axis, values="train_loss").fillna(np.inf)  # NaN: diverged
    worse, cells, rises = [], [], []
    for small, large in itertools.pairwise(sizes):
        d = (loss[large] - loss[small]) if large in loss and small in loss else pd.Series(dtype=float)
        md, hd = ci(d) if len(d) else (math.nan, math.inf)
        cells.append(f"{large} vs {small}: {fmt(md, hd)}")
        if not (md - hd <= 0):  # also NaN (a diverged larger run)
            worse.append(f"{large}")
        elif md > 0:  # worse on average, within the interval
            rises.append(f"{large} vs {small}")
    means = loss.mean().to_dict() if len(loss) else {}
    out.append(
        Claim(
            arms.never_worse_name,
            arms.never_worse_says,
            f"at the grid lr nearest the mean {stable_name} optimum, each doubling's paired training-loss "
            "difference is not entirely above 0 (95% interval)",
            (
                f"lr 2^{shared}: loss "
                + ", ".join(f"{s} {v:.3f}" for s, v in sorted(means.items()))
                + "; differences "
                + "; ".join(cells)
                + (f"; worse: {', '.join(worse)}" if worse else "")
                if shared is not None
                else f"no finite {stable_name} optimum"
            ),
            bool(shared is not None and len(loss) > 1 and not worse),
            note=(
                f"holds only as 'not significantly worse': the mean loss rises at {', '.join(rises)}" if rises else ""
            ),
        )
    )
    return out


def train(runs: list, dataset: Any, describe: Any) -> pd.DataFrame:
    """Trains ``runs``; one row per (run, evaluation): ``describe(run)``'s columns, step, and the losses."""
    from initbench.benchmarks.reproduce._training import train_runs

    curves, _ = train_runs(runs, dataset)
    curves = curves[curves["layer"].isna() & curves["split"].isin(["train", "test"])]
    wide = curves.pivot_table(
        index=["run_id", "step"], columns=["split", "metric"], values="value", aggfunc="first", dropna=False
    )
    wide.columns = [f"{split}_{metric}" for split, metric in wide.columns]
    info = pd.DataFrame([{"run_id": r.run_id, **describe(r)} for r in runs])
    out = info.merge(wide.reset_index(), on="run_id", how="left", validate="one_to_many")
    keys = [c for c in info.columns if c != "run_id"]
    return out.drop(columns="run_id").sort_values([*keys, "step"], ignore_index=True)


def colors(n: int) -> Any:
    import matplotlib

    return matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, n))


def loss_against_lr_figure(rows: pd.DataFrame, axis: str, panels: Any, label: str) -> Any:
    """Training loss against log2 learning rate, one line per size, one panel per ``(arm, title)`` of ``panels``.

    ``label`` formats a size for the legend (``"width {}"``); each line's fitted optimum is a dotted line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last = rows[rows["step"] == rows["step"].max()]
    sizes = sorted(last[axis].unique())
    fig, axes = plt.subplots(1, len(panels), figsize=(8, 3.4), sharey=True)
    finite = last["train_loss"].where(np.isfinite(last["train_loss"]))
    top = float(np.nanmax(finite)) if finite.notna().any() else 2.5
    for ax, (arm, title) in zip(axes, panels, strict=True):
        a = last[last["arm"] == arm]
        for color, size in zip(colors(len(sizes)), sizes, strict=True):
            g = a[a[axis] == size].groupby("log2_lr")["train_loss"].mean()
            ax.plot(g.index, g.to_numpy(), marker="o", ms=3, color=color, label=label.format(size))
            x, _ = optimum(g.index, g.to_numpy())
            if math.isfinite(x):
                ax.axvline(x, color=color, lw=0.6, ls=":")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("log2 learning rate (Adam)")
        ax.set_ylim(top=min(top, 2.5))
    axes[0].set_ylabel("training loss (mean over seeds)")
    axes[-1].legend(fontsize=6)
    fig.tight_layout()
    return fig
