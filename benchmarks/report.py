"""Reports: per-config statistics over seeds, a markdown summary and PNG figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from initbench.benchmarks.results import ResultStore
from initbench.inits.errors import UsageError

CONFIG = ["suite", "benchmark", "model", "activation", "init", "init_args", "dataset", "optimizer", "lr", "batch_size"]


class NoResults(UsageError):
    """The directory holds no result files."""


def mean_ci(values: Any, level: float = 0.95) -> tuple[float, float, int]:
    """Mean and half-width of the Student-t confidence interval over seeds (NaNs dropped)."""
    from scipy import stats

    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


def _label(row: pd.Series) -> str:
    return f"{row['init']}({row['init_args']})" if row["init_args"] else row["init"]


def per_run(df: pd.DataFrame, target_accuracy: float) -> pd.DataFrame:
    """One row per run: final and best metrics, steps to the target accuracy, status."""
    curves = df[df["layer"].isna() & df["metric"].isin(["loss", "accuracy"])]
    runs = []
    for run_id, g in curves.groupby("run_id", sort=False):
        first = g.iloc[0]
        last_step = g["step"].max()
        test_acc = g[(g["split"] == "test") & (g["metric"] == "accuracy")].sort_values("step")
        reached = test_acc[test_acc["value"] >= target_accuracy]

        def final(split: str, metric: str, g: pd.DataFrame = g, last_step: int = last_step) -> float:
            sel = g[(g["split"] == split) & (g["metric"] == metric) & (g["step"] == last_step)]["value"]
            return float(sel.iloc[0]) if len(sel) else math.nan

        row = {c: first[c] for c in CONFIG}
        row.update(
            run_id=run_id,
            seed=first["seed"],
            status=first["status"],
            steps=int(last_step),
            final_test_accuracy=final("test", "accuracy"),
            final_test_loss=final("test", "loss"),
            final_train_loss=final("train", "loss"),
            initial_train_loss=float(
                g[(g["split"] == "train") & (g["metric"] == "loss") & (g["step"] == 0)]["value"].iloc[0]
            ),
            best_test_accuracy=float(test_acc["value"].max()),
            steps_to_target=float(reached["step"].iloc[0]) if len(reached) else math.nan,
        )
        runs.append(row)
    return pd.DataFrame(runs)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per config: seeds, diverged count, mean and 95% CI of each metric, fraction reaching target."""
    out = []
    for key, g in runs.groupby(CONFIG, sort=False, dropna=False):
        row = dict(zip(CONFIG, key, strict=True))
        row["label"] = _label(pd.Series(row))
        row["seeds"] = len(g)
        row["diverged"] = int((g["status"] == "diverged").sum())
        for metric in ("final_test_accuracy", "best_test_accuracy", "final_train_loss", "initial_train_loss"):
            mean, half, _ = mean_ci(g[metric])
            row[metric] = mean
            row[metric + "_ci95"] = half
        reached = g["steps_to_target"].dropna()
        row["reached_target"] = len(reached) / len(g)
        row["median_steps_to_target"] = float(reached.median()) if len(reached) else math.nan
        out.append(row)
    return pd.DataFrame(out)


def _fmt(mean: float, half: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "nan"
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if math.isfinite(half) else f"{mean:.{digits}f}"


def markdown(summary: pd.DataFrame, provenance: list[dict], target_accuracy: float) -> str:
    """The markdown report."""
    lines = ["# initbench report", ""]
    if provenance:
        keys = ("initbench", "jax", "jaxlib", "flax", "backend", "device_kind", "device_count", "git_commit")
        for k in keys:
            values = sorted({str(p.get(k)) for p in provenance})
            lines.append(f"- {k}: {', '.join(values)}")
        times = sorted(str(p.get("utc_time")) for p in provenance)
        lines += [f"- written: {times[0]} .. {times[-1]} UTC ({len(provenance)} files)", ""]
    lines += [
        f"Means over seeds with 95% Student-t confidence intervals. Steps to target: first evaluation "
        f"with test accuracy >= {target_accuracy}, median over the seeds that reached it.",
        "",
    ]
    for (benchmark, model, dataset), g in summary.groupby(["benchmark", "model", "dataset"], sort=False):
        lines += [f"## {benchmark}: {model} on {dataset}", ""]
        lines.append(
            "| activation | init | seeds | diverged | final test acc | best test acc | final train loss "
            "| initial train loss | reached target | steps to target |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for _, r in g.sort_values(["activation", "final_test_accuracy"], ascending=[True, False]).iterrows():
            lines.append(
                f"| {r['activation']} | {r['label']} | {r['seeds']} | {r['diverged']} "
                f"| {_fmt(r['final_test_accuracy'], r['final_test_accuracy_ci95'])} "
                f"| {_fmt(r['best_test_accuracy'], r['best_test_accuracy_ci95'])} "
                f"| {_fmt(r['final_train_loss'], r['final_train_loss_ci95'])} "
                f"| {_fmt(r['initial_train_loss'], r['initial_train_loss_ci95'])} "
                f"| {100 * r['reached_target']:.0f}% | {r['median_steps_to_target']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def _curves_figure(df: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    panels = (("test", "accuracy", "test accuracy"), ("train", "loss", "train loss"))
    for ax, (split, metric, ylabel) in zip(axes, panels, strict=True):
        sel = df[(df["split"] == split) & (df["metric"] == metric) & df["layer"].isna()].copy()
        sel["label"] = sel.apply(_label, axis=1)
        for label, g in sel.groupby("label", sort=False):
            stats = g.groupby("step")["value"].apply(lambda v: mean_ci(v)[:2])
            steps = np.asarray(stats.index)
            mean = np.asarray([m for m, _ in stats])
            half = np.nan_to_num(np.asarray([h for _, h in stats]))
            (line,) = ax.plot(steps, mean, label=label)
            ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        if metric == "loss":
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    fig.suptitle(title + " (mean, 95% CI over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _heatmap(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(summary.groupby(["model", "dataset"], sort=False))
    activations = sorted(summary["activation"].unique())
    labels = list(dict.fromkeys(summary["label"]))
    fig, axes = plt.subplots(
        1, len(groups), figsize=(2.5 + 1.2 * len(activations) * len(groups) + 2.5 * len(groups), 0.4 * len(labels) + 2),
        constrained_layout=True,
    )  # fmt: skip
    axes = np.atleast_1d(axes)
    for ax, ((model, dataset), g) in zip(axes, groups, strict=True):
        table = g.pivot_table(index="label", columns="activation", values="final_test_accuracy", sort=False)
        table = table.reindex(index=[lab for lab in labels if lab in table.index], columns=activations)
        im = ax.imshow(table.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(table.shape[1]), table.columns)
        ax.set_yticks(range(table.shape[0]), table.index, fontsize=8)
        for (i, j), v in np.ndenumerate(table.to_numpy()):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k", fontsize=8)
        ax.set_title(f"{model} on {dataset}: final test accuracy", fontsize=9)
    fig.colorbar(im, ax=axes.tolist())
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(results_dir: str | Path, out_dir: str | Path | None = None, target_accuracy: float = 0.9) -> dict[str, Any]:
    """Writes ``report.md``, ``summary.csv``, ``runs.csv`` and PNG figures; returns their paths.

    Args:
      results_dir: A directory of result files.
      out_dir: Where to write (default ``results_dir/report``).
      target_accuracy: Test accuracy for "steps to target".

    Raises:
      NoResults: the directory has no result files.
      ValueError: target_accuracy outside (0, 1].
    """
    if not 0 < target_accuracy <= 1:
        raise UsageError(f"--target-accuracy must be in (0, 1], got {target_accuracy}")
    store = ResultStore(results_dir)
    if not store.files():
        raise NoResults(f"no result files in {str(results_dir)!r}; run `initbench run SUITE --out {results_dir}` first")
    store.check_compatible()
    df = store.read()
    prov = [store.provenance_of(p) for p in store.files()]
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    runs = per_run(df, target_accuracy)
    summary = summarize(runs)
    paths: dict[str, Any] = {"markdown": out / "report.md", "summary": out / "summary.csv", "runs": out / "runs.csv"}
    paths["markdown"].write_text(markdown(summary, prov, target_accuracy))
    summary.to_csv(paths["summary"], index=False)
    runs.to_csv(paths["runs"], index=False)
    figures = []
    for (model, activation, dataset), g in df.groupby(["model", "activation", "dataset"], sort=False):
        safe = "".join(c if c.isalnum() else "_" for c in f"{model}_{activation}_{dataset}").strip("_")
        path = out / f"curves_{safe}.png"
        _curves_figure(g, path, f"{model}, {activation}, {dataset}")
        figures.append(path)
    heat = out / "final_accuracy.png"
    _heatmap(summary, heat)
    paths["figures"] = [*figures, heat]
    return paths
