"""Reports: per-config statistics over seeds, a markdown summary and PNG figures."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from initbench.benchmarks.paths import can_write_in
from initbench.benchmarks.results import MANIFEST, RUNS, IncompatibleResults, ResultStore
from initbench.inits.errors import UsageError


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


ROW_FIELDS = ("activation", "init", "init_args", "bias_init", "bias_args", "init_scale")
CONFIG = RUNS.config_columns
SECTION = tuple(c for c in CONFIG if c not in ROW_FIELDS)
METRICS = ("final_test_accuracy", "best_test_accuracy", "final_train_loss", "initial_train_loss")
TRAIN_LOSS = (
    "train loss: the mean cross-entropy over the training set (its first `eval_examples` examples when set), "
    "evaluated at the step in evaluation mode, not the running minibatch loss"
)


def _label(row: Any) -> str:
    label = f"{row['init']}({row['init_args']})" if row["init_args"] else row["init"]
    if row.get("bias_init") not in (None, "zeros") or row.get("bias_args"):
        bias = f"{row['bias_init']}({row['bias_args']})" if row.get("bias_args") else row["bias_init"]
        label += f", bias {bias}"
    if row.get("init_scale") not in (None, "", "{}"):
        label += f", x {row['init_scale']}"
    return label


def per_run(df: pd.DataFrame, target_accuracy: float) -> pd.DataFrame:
    """One row per run: final and best metrics, steps to the target accuracy, status.

    A diverged run's metrics are all NaN: nothing it measured is averaged with the runs that
    trained (the summary counts it as diverged instead).
    """
    curves = df[df["layer"].isna() & df["metric"].isin(["loss", "accuracy"])]
    runs = []
    for run_id, g in curves.groupby("run_id", sort=False):
        first = g.iloc[0]
        last_step = g["step"].max()
        test_acc = g[(g["split"] == "test") & (g["metric"] == "accuracy")].sort_values("step")
        reached = test_acc[test_acc["value"] >= target_accuracy]
        diverged = (g["status"] == "diverged").any()

        def value(split: str, metric: str, step: int, g: pd.DataFrame = g) -> float:
            sel = g[(g["split"] == split) & (g["metric"] == metric) & (g["step"] == step)]["value"]
            return float(sel.iloc[0]) if len(sel) else math.nan

        row = {c: first[c] for c in CONFIG}
        row.update(run_id=run_id, seed=first["seed"], status="diverged" if diverged else "ok", steps=int(last_step))
        metrics = {
            "final_test_accuracy": value("test", "accuracy", last_step),
            "final_test_loss": value("test", "loss", last_step),
            "final_train_loss": value("train", "loss", last_step),
            "initial_train_loss": value("train", "loss", 0),
            "best_test_accuracy": float(test_acc["value"].max()),
            "steps_to_target": float(reached["step"].iloc[0]) if len(reached) else math.nan,
        }
        row.update({k: (math.nan if diverged else v) for k, v in metrics.items()})
        runs.append(row)
    return pd.DataFrame(runs)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per configuration (every identity field but the seed): seeds, diverged, statistics of the others.

    Means and 95% Student-t intervals are over the seeds that did not diverge, the same seeds for
    every metric; ``reached_target`` is the fraction of all seeds (a diverged seed did not reach it).
    """
    out = []
    for key, g in runs.groupby(list(CONFIG), sort=False, dropna=False):
        row = dict(zip(CONFIG, key, strict=True))
        row["label"] = _label(row)
        ok = g[g["status"] == "ok"]
        row["seeds"] = len(g)
        row["diverged"] = len(g) - len(ok)
        for metric in METRICS:
            mean, half, _ = mean_ci(ok[metric])
            row[metric] = mean
            row[metric + "_ci95"] = half
        reached = ok["steps_to_target"].dropna()
        row["reached_target"] = len(reached) / len(g)
        row["median_steps_to_target"] = float(reached.median()) if len(reached) else math.nan
        out.append(row)
    return pd.DataFrame(out)


def _fmt(mean: float, half: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if math.isfinite(half) else f"{mean:.{digits}f}"


def _sections(table: pd.DataFrame, ignore: tuple = ()) -> list[tuple[str, str, pd.DataFrame]]:
    """Groups rows by the section fields (less ``ignore``); ``(title, file-safe name, rows)`` sorted by title."""
    section = [c for c in SECTION if c not in ignore and not (c == "model" and {"depth", "width"} & set(ignore))]
    varying = [c for c in section if table[c].astype(str).nunique() > 1]
    out = []
    for key, g in table.groupby(section, sort=False, dropna=False):
        fields = dict(zip(section, key, strict=True))
        model = fields.get("model", fields.get("family"))
        title = f"{fields['benchmark']}: {model} on {fields['dataset']}"
        implied = ("benchmark", "model", "family", "model_options", "dataset")
        implied += ("depth", "width") if "model" in fields else ()
        extra = [f"{c}={fields[c]}" for c in varying if c not in implied]
        if extra:
            title += f" ({', '.join(extra)})"
        safe = "".join(c if c.isalnum() else "_" for c in title).strip("_")[:120]
        out.append((title, safe, g))
    return sorted(out, key=lambda t: t[0])


def markdown(summary: pd.DataFrame, provenance: list[dict], target_accuracy: float, figures: dict) -> str:
    """The markdown report: provenance, definitions, one table and its figures per section."""
    lines = ["# initbench report", ""]
    if provenance:
        keys = ("initbench", "jax", "jaxlib", "flax", "backend", "device_kind", "device_count", "git_commit")
        for k in keys:
            values = sorted({str(p.get(k)) for p in provenance})
            lines.append(f"- {k}: {', '.join(values)}")
        times = sorted(str(p.get("written_utc")) for p in provenance)
        lines.append(f"- written: {times[0]} .. {times[-1]} UTC ({len(provenance)} files)")
        versions = sorted({str(v) for v in summary["numerics_version"]})
        lines += [f"- numerics version: {', '.join(versions)}", ""]
    lines += [
        "One row per configuration (every field of the run but its seed). Seeds whose training loss "
        "turned non-finite or exceeded divergence_factor x its step-0 value are counted as diverged and "
        "left out of every mean: each metric is the mean "
        "over the same non-diverged seeds, with its 95% Student-t confidence interval (— when no seed is "
        f"left). Steps to target: first evaluation with test accuracy >= {target_accuracy}, median over "
        "the seeds that reached it; reached target is the fraction of all seeds.",
        "",
        f"Definitions: {TRAIN_LOSS}; test accuracy and loss: over the test split at the step.",
        "",
    ]
    for title, safe, g in _sections(summary):
        lines += [f"## {title}", ""]
        lines.append(
            "| activation | init | diverged | final test acc | best test acc | final train loss "
            "| initial train loss | reached target | steps to target |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for _, r in g.sort_values(["activation", "final_test_accuracy"], ascending=[True, False]).iterrows():
            steps = f"{r['median_steps_to_target']:.0f}" if math.isfinite(r["median_steps_to_target"]) else "—"
            lines.append(
                f"| {r['activation']} | {r['label']} | {r['diverged']}/{r['seeds']} "
                f"| {_fmt(r['final_test_accuracy'], r['final_test_accuracy_ci95'])} "
                f"| {_fmt(r['best_test_accuracy'], r['best_test_accuracy_ci95'])} "
                f"| {_fmt(r['final_train_loss'], r['final_train_loss_ci95'])} "
                f"| {_fmt(r['initial_train_loss'], r['initial_train_loss_ci95'])} "
                f"| {100 * r['reached_target']:.0f}% | {steps} |"
            )
        lines.append("")
        for name, path in figures.get(safe, []):
            lines += [f"![{name}]({path.name})", ""]
    return "\n".join(lines)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curves_figure(df: pd.DataFrame, path: Path, title: str) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    panels = (("test", "accuracy", "test accuracy"), ("train", "loss", "train loss (full training set, eval mode)"))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (split, metric, ylabel) in zip(axes, panels, strict=True):
        sel = df[(df["split"] == split) & (df["metric"] == metric) & df["layer"].isna()]
        labels = pd.Series([_label(r) for r in sel.to_dict("records")], index=sel.index, dtype=object)
        for i, (init_label, g) in enumerate(sel.groupby(labels, sort=False)):
            color = colors[i % len(colors)]
            seeds = g["seed"].nunique()
            diverged = g.loc[g["status"] == "diverged", "seed"].nunique()
            name = f"{init_label} ({diverged}/{seeds} diverged)" if diverged else init_label
            if seeds < 5:  # too few seeds for an interval: every seed, as it ran
                for j, (_, run) in enumerate(g.sort_values("step").groupby("seed")):
                    finite = run[np.isfinite(run["value"])]
                    ax.plot(
                        finite["step"], finite["value"], color=color, lw=1, alpha=0.8, label=name if j == 0 else None
                    )
                    if (run["status"] == "diverged").any() and len(finite):
                        ax.plot(finite["step"].iloc[-1], finite["value"].iloc[-1], "x", color=color, ms=8)
            else:
                ok = g[g["status"] == "ok"]
                stats = ok.groupby("step")["value"].apply(lambda v: mean_ci(v)[:2])
                steps = np.asarray(stats.index)
                mean = np.asarray([m for m, _ in stats])
                half = np.nan_to_num(np.asarray([h for _, h in stats]))
                low, high = mean - half, mean + half
                if metric == "accuracy":
                    low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
                ax.plot(steps, mean, color=color, label=name)
                ax.fill_between(steps, low, high, color=color, alpha=0.2)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        if metric == "loss":
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"{title}\n(under 5 seeds: one line per seed, x = diverged there; else mean and 95% CI of non-diverged seeds)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def _heatmap(summary: pd.DataFrame, path: Path, title: str) -> None:
    plt = _plt()
    activations = sorted(summary["activation"].unique())
    labels = list(dict.fromkeys(summary["label"]))
    table = summary.pivot_table(index="label", columns="activation", values="final_test_accuracy", sort=False)
    table = table.reindex(index=labels, columns=activations)
    div = summary.set_index(["label", "activation"])[["diverged", "seeds"]]
    fig, ax = plt.subplots(figsize=(3 + 1.4 * len(activations), 0.45 * len(labels) + 2), constrained_layout=True)
    values = table.to_numpy(dtype=float)
    im = ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_facecolor("0.85")  # no surviving seed: grey
    ax.set_xticks(range(len(activations)), activations)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for (i, j), v in np.ndenumerate(values):
        key = (labels[i], activations[j])
        if key not in div.index:
            continue
        d, n = (int(x) for x in div.loc[key])
        text = "diverged" if not math.isfinite(v) and d else (f"{v:.2f}" if math.isfinite(v) else "—")
        if d and math.isfinite(v):
            text += f"\n{d}/{n} div"
        color = "k" if not math.isfinite(v) or v >= 0.6 else "w"
        ax.text(j, i, text, ha="center", va="center", color=color, fontsize=7)
        if d:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", edgecolor="r", lw=0))
    ax.set_xlabel("activation")
    ax.set_title(
        f"{title}\nfinal test accuracy, mean of non-diverged seeds\n(hatched: some seeds diverged)", fontsize=9
    )
    fig.colorbar(im, ax=ax, label="final test accuracy")
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def _atomic(path: Path, write: Any) -> None:
    """Writes through a hidden temporary file renamed into place: a failure leaves no partial file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _check_out(results: Path, out: Path) -> None:
    """A report folder inside the results directory must start with ``_`` or ``.`` (what readers skip)."""
    try:
        inside = out.resolve().relative_to(results.resolve())
    except ValueError:
        inside = None
    if inside is not None and inside.parts and not inside.parts[0].startswith(("_", ".")):
        raise UsageError(
            f"--out {str(out)!r} is inside the results directory {str(results)!r}: pandas and pyarrow would read the "
            f"report's files as results; name it starting with '_' (the default is {str(results / '_report')!r})"
        )
    if inside is not None and not inside.parts:
        raise UsageError(
            f"--out {str(out)!r} is the results directory itself; the default is {str(results / '_report')!r}"
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file, not a directory")
    if not can_write_in(out):
        raise UsageError(f"--out {str(out)!r} is not writable")
    if out.is_dir() and ((out / MANIFEST).exists() or any(out.glob("*.parquet"))):
        raise UsageError(
            f"--out {str(out)!r} is a results directory: the report's files would sit among its results; "
            "give a folder of its own"
        )


# what --best and --x/--hue judge: higher is better for accuracies, lower for losses
LOWER_IS_BETTER = {"final_train_loss": True, "initial_train_loss": True}
AXES = tuple(c for c in CONFIG if c not in ("numerics_version", "suite", "model", "init_args", "bias_args"))


def check_grid_options(best: str | None, x: str | None, hue: str | None, metric: str) -> None:
    """One line for a field or metric the grid analysis cannot use (before any reading or writing)."""
    from initbench.inits.errors import unknown_choice

    for flag, field in (("--best", best), ("--x", x), ("--hue", hue)):
        if field is not None and field not in AXES:
            raise unknown_choice(f"{flag} field", field, AXES)
    if metric not in METRICS:
        raise unknown_choice("--metric", metric, METRICS)
    if hue is not None and x is None:
        raise UsageError("--hue needs --x (the field on the figure's x axis)")
    if x is not None and x == hue:
        raise UsageError(f"--x and --hue are both {x}; give two fields")


def _sort_key(value: Any) -> tuple:
    """Numbers in numeric order, then the rest as text (a stable order for any field)."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def best_over(summary: pd.DataFrame, field: str, metric: str = "final_train_loss") -> pd.DataFrame:
    """Per configuration of every other field, the value of ``field`` with the best mean ``metric``.

    "Best" is the lowest loss or the highest accuracy over the values of ``field`` the grid has
    (seeds that diverged are left out of each mean, as in the summary; a value all of whose seeds
    diverged cannot be best). ``at_edge`` says the best is the smallest or largest value tried:
    the grid may not bracket the optimum. ``runner_up_gap`` is how much worse the next value is.

    Returns:
      One row per configuration: the other fields that vary, ``best_<field>``, the metric's mean
      and 95% half-width there, ``values_tried``, ``at_edge`` and ``runner_up_gap``.
    """
    derived = {"depth": "model", "width": "model", "family": "model", "model_options": "model"}
    derived |= {"init": "init_args", "bias_init": "bias_args"}
    others = [c for c in CONFIG if c != field and c != derived.get(field)]
    varying = [c for c in others if summary[c].astype(str).nunique() > 1 and c not in ("model", "init_args")]
    lower = LOWER_IS_BETTER.get(metric, False)
    rows = []
    for key, g in summary.groupby(others, sort=False, dropna=False):
        fields = dict(zip(others, key, strict=True))
        finite = g[np.isfinite(g[metric].astype(float))]
        tried = sorted(g[field].tolist(), key=_sort_key)
        row = {c: fields[c] for c in varying}
        if field != "init" and summary["label"].nunique() > 1:
            row["init_label"] = g["label"].iloc[0]
        if not len(finite):
            rows.append(
                {
                    **row,
                    f"best_{field}": None,
                    metric: math.nan,
                    f"{metric}_ci95": math.nan,
                    "values_tried": len(tried),
                    "at_edge": False,
                    "runner_up_gap": math.nan,
                }
            )
            continue
        ordered = finite.sort_values(metric, ascending=lower, kind="stable")
        top = ordered.iloc[0]
        gap = abs(float(ordered.iloc[1][metric]) - float(top[metric])) if len(ordered) > 1 else math.nan
        rows.append(
            {
                **row,
                f"best_{field}": top[field],
                metric: float(top[metric]),
                f"{metric}_ci95": float(top[f"{metric}_ci95"]),
                "values_tried": len(tried),
                "at_edge": len(tried) > 1 and top[field] in (tried[0], tried[-1]),
                "runner_up_gap": gap,
            }
        )
    out = pd.DataFrame(rows)
    sort = [c for c in varying if c in out]
    if sort:
        out = out.sort_values(sort, key=lambda col: col.map(_sort_key), kind="stable").reset_index(drop=True)
    return out


def _best_markdown(table: pd.DataFrame, field: str, metric: str) -> list[str]:
    shown = [c for c in table.columns if c not in (metric, f"{metric}_ci95", "values_tried", "runner_up_gap")]
    lines = [
        f"## Best {field} by {metric}",
        "",
        f"Per configuration of the other fields, the {field} with the "
        f"{'lowest' if LOWER_IS_BETTER.get(metric, False) else 'highest'} mean {metric} over the values the grid "
        "tried (95% Student-t interval over its non-diverged seeds); *at edge*: the best is the smallest or "
        "largest value tried, so the grid may not bracket the optimum.",
        "",
        "| " + " | ".join([*shown, metric, "gap to runner-up"]) + " |",
        "|" + "---|" * (len(shown) + 2),
    ]
    for _, r in table.iterrows():
        cells = [("**yes**" if r[c] else "no") if c == "at_edge" else str(r[c]) for c in shown]
        gap = f"{r['runner_up_gap']:.3g}" if math.isfinite(r["runner_up_gap"]) else "—"
        lines.append("| " + " | ".join([*cells, _fmt(r[metric], r[f"{metric}_ci95"]), gap]) + " |")
    return [*lines, ""]


def _grid_figure(summary: pd.DataFrame, x: str, hue: str | None, metric: str, path: Path, title: str) -> None:
    """``metric`` (mean, 95% interval over seeds) against ``x``: a line per ``hue`` value and other varying field."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    fixed = {x, hue, "model", "label", "init_args", "bias_args"}
    varying = [c for c in CONFIG if c not in fixed and summary[c].astype(str).nunique() > 1]
    groups = [c for c in ([hue] if hue else []) + varying if c is not None]
    numeric = pd.to_numeric(summary[x], errors="coerce")
    lines = list(summary.groupby(groups, sort=False, dropna=False)) if groups else [((), summary)]
    lines.sort(key=lambda kg: [_sort_key(k) for k in (kg[0] if isinstance(kg[0], tuple) else (kg[0],))])
    for key, g in lines:
        key = key if isinstance(key, tuple) else (key,)
        g = g.iloc[sorted(range(len(g)), key=lambda i: _sort_key(g[x].iloc[i]))]
        xs = pd.to_numeric(g[x], errors="coerce") if numeric.notna().all() else g[x].astype(str)
        label = ", ".join(f"{c}={v}" for c, v in zip(groups, key, strict=True)) or metric
        ax.errorbar(xs, g[metric], yerr=g[f"{metric}_ci95"].fillna(0.0), marker="o", ms=3, capsize=2, label=label)
    if numeric.notna().all() and (numeric > 0).all() and numeric.max() / numeric.min() >= 10:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(x)
    ax.set_ylabel(f"{metric} (mean, 95% interval over seeds)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def report(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    target_accuracy: float = 0.9,
    *,
    best: str | None = None,
    x: str | None = None,
    hue: str | None = None,
    metric: str = "final_train_loss",
    tensorboard: str | Path | None = None,
) -> dict[str, Any]:
    """Writes ``report.md``, ``summary.csv``, ``runs.csv`` and PNG figures; returns their paths.

    Sections come in a stable order (sorted by title). Grid analysis, on request:

    Args:
      results_dir: A directory of training-run results.
      out_dir: Where to write (default ``results_dir/_report``, which readers of the results skip).
      target_accuracy: Test accuracy for "steps to target".
      best: A field (e.g. ``lr``): a table of its best value per configuration of the others
        (:func:`best_over`), ``best_<field>.csv`` and a section of the report.
      x: A field for a figure of ``metric`` against it per section (``grid_<x>[_<hue>]_...png``).
      hue: A field whose values are the figure's lines (needs ``x``).
      metric: What ``best`` and the figure judge: one of ``METRICS`` (default the final
        training loss, the quantity learning-rate transfer is read from).
      tensorboard: Also write every run's curves as TensorBoard event files under this folder
        (:mod:`initbench.benchmarks.tensorboard`; the optional extra ``tensorboard``).

    Raises:
      NoResults: the directory has no result files.
      IncompatibleResults: the directory holds another kind of result.
      UsageError: target_accuracy outside (0, 1]; an unreadable or inconsistent results file.
    """
    if not (isinstance(target_accuracy, int | float) and 0 < target_accuracy <= 1):
        raise UsageError(f"--target-accuracy must be in (0, 1], got {target_accuracy}")
    check_grid_options(best, x, hue, metric)
    if out_dir is not None:
        _check_out(Path(results_dir), Path(out_dir))
    if tensorboard is not None:
        from initbench.benchmarks import tensorboard as tb

        tb.check_available()
        tb.check_out(Path(results_dir), Path(tensorboard))
    store = ResultStore(results_dir)
    if not store.files():
        hint = f"run `initbench run EXPERIMENT --out {results_dir}` first"
        raise NoResults(f"no result files in {str(results_dir)!r}; {hint}")
    store.check_compatible()
    if store.kind.name != "runs":
        raise IncompatibleResults(
            f"{str(results_dir)!r} holds {store.kind.description}; `initbench report` reads training runs"
        )
    df = store.read()
    prov = [store.provenance_of(p) for p in store.files()]
    runs = per_run(df, target_accuracy)
    summary = summarize(runs)
    for field in (f for f in (best, x, hue) if f is not None):  # before anything is written
        if summary[field].astype(str).nunique() < 2:
            values = sorted(summary[field].astype(str).unique())
            raise UsageError(f"{field} takes one value in these results ({', '.join(values)}): nothing to compare")
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "_report"
    if out_dir is None and not can_write_in(out):
        raise UsageError(f"cannot write the report to {str(out)!r}; give --out")
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, list[tuple[str, Path]]] = {}
    for title, safe, rows in _sections(df):
        for activation, g in rows.groupby("activation", sort=False):
            path = out / f"curves_{safe}_{activation}.png"
            _atomic(path, lambda p, g=g, t=f"{title}, {activation}": _curves_figure(g, p, t))
            figures.setdefault(safe, []).append((f"curves, {activation}", path))
    for title, safe, g in _sections(summary):
        path = out / f"final_accuracy_{safe}.png"
        _atomic(path, lambda p, g=g, t=title: _heatmap(g, p, t))
        figures.setdefault(safe, []).append(("final test accuracy", path))
    grid: list[tuple[str, Path]] = []
    if x is not None:
        for title, safe, g in _sections(summary, ignore=(x, hue)):
            path = out / f"grid_{x}{'_' + hue if hue else ''}_{safe}.png"
            _atomic(path, lambda p, g=g, t=title: _grid_figure(g, x, hue, metric, p, t))
            grid.append((title, path))
    paths: dict[str, Any] = {"markdown": out / "report.md", "summary": out / "summary.csv", "runs": out / "runs.csv"}
    _atomic(paths["summary"], lambda p: summary.to_csv(p, index=False))
    _atomic(paths["runs"], lambda p: runs.to_csv(p, index=False))
    text = markdown(summary, prov, target_accuracy, figures)
    if grid:
        text += f"\n## {metric} against {x}" + (f" by {hue}" if hue else "") + "\n\n"
        text += "".join(f"{title}:\n\n![{title}]({path.name})\n\n" for title, path in grid)
    if best is not None:
        table = best_over(summary, best, metric)
        paths["best"] = out / f"best_{best}.csv"
        _atomic(paths["best"], lambda p: table.to_csv(p, index=False))
        text += "\n" + "\n".join(_best_markdown(table, best, metric))
    _atomic(paths["markdown"], lambda p: p.write_text(text))
    paths["figures"] = [p for group in figures.values() for _, p in group] + [p for _, p in grid]
    if tensorboard is not None:
        from initbench.benchmarks import tensorboard as tb

        paths["tensorboard"] = tb.export(df, tensorboard, CONFIG)
    return paths
