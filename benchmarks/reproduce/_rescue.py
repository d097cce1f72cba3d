r"""Shared by ``dauphin2019`` and ``zhu2021``: a badly scaled deep tanh MLP, rescued by a learned init.

The experiment (``benchmarks/experiments/<name>-rescue.toml``, run through the runner so the
trainer's scheme path is what is measured) trains three arms over seeds: the bad init
:math:`W \sim \mathcal{N}(0, 0.25/n_{in})` (``variance_scaling(scale=0.25)``: the ordered phase
of tanh, the signal and the gradient shrink by about 0.25 per layer), a good init (LeCun normal,
:math:`\sigma_w^2 = 1`, critical for tanh without biases) and the learned scheme started FROM the
bad init (the scheme's ``base``).

Criteria (used by both reproductions; :mod:`initbench.benchmarks.reproduce._stats`): 95% Welch-t
intervals over seeds. Every arm is evaluated on the same ``n_test`` held-out examples, so the
test set's sampling is common to the arms compared and is left out of their difference (the seeds,
the training's randomness, are what varies):

* "trains poorly": the interval of good - bad lies above 0;
* "within the accuracy of a good init": the interval of good - scheme lies below
  :data:`DELTA` (2 accuracy points), and the interval of scheme - bad above 0. More spread
  over the scheme's seeds makes this harder to pass, not easier.

History (both changed after the numbers were seen; the gallery rows say so): the first version
put the scheme's seed SE into a "2 SE" tolerance, so one GradInit seed at chance inflated it to
0.36 and the claim passed on a 0.18 gap; the second used :math:`2\sqrt{SE_{good}^2 +
p(1-p)/n_{test}}` as the tolerance (z = 2 on 5 seeds, and a tolerance that grows with the
reference's noise). The third, above, is issue 25's rule for every reproduction.
"""

from __future__ import annotations

import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import pandas as pd

from initbench.benchmarks.reproduce import Claim
from initbench.benchmarks.reproduce._stats import difference, mean_se
from initbench.inits.errors import UsageError

BAD_SCALE = 0.25  # sigma_w^2 of the bad init (ordered phase of tanh)
ARMS = ("bad", "good")  # plus the scheme's name
ARM_LABELS = {"bad": "N(0, 0.25/fan_in) (bad)", "good": "LeCun normal (good)"}
TRAINING_COLUMNS = ("arm", "seed", "step", "split", "metric", "value", "n_test")  # of training()'s rows


def arm_of(init: str) -> str:
    """The arm of a run from its init name: ``bad``, ``good`` or the scheme's name."""
    return {"variance_scaling": "bad", "lecun_normal": "good"}.get(init, init)


def training(experiment: str, scale: str) -> pd.DataFrame:
    """Runs the experiment; tidy rows ``arm, seed, step, split, metric, value, n_test`` (accuracy and loss)."""
    from initbench.benchmarks.results import ResultStore
    from initbench.benchmarks.runner import run_experiment

    with tempfile.TemporaryDirectory() as out:
        run_experiment(experiment, scale, out)
        df = ResultStore(out).read()
    df = df[df["metric"].isin(["accuracy", "loss"])].copy()
    df["arm"] = df["init"].map(arm_of)
    n_test = _n_test(experiment, scale)
    rows = df[["arm", "seed", "step", "split", "metric", "value"]].assign(n_test=n_test)
    return rows.sort_values(["arm", "seed", "split", "metric", "step"]).reset_index(drop=True)


def training_rows(measurements: pd.DataFrame) -> pd.DataFrame:
    """The ``part == "training"`` rows of a reproduction's measurements, as :func:`training` returned them.

    Raises:
      UsageError: The rows lack ``n_test`` (written before the measurements carried it): regenerate them.
    """
    if "n_test" not in measurements:
        raise UsageError(
            "the measurements lack the n_test column the accuracy margins need (written by an older"
            " initbench): regenerate the folder with `initbench reproduce NAME --scale SCALE`"
        )
    part = measurements[measurements["part"] == "training"]
    return part[list(TRAINING_COLUMNS)].reset_index(drop=True)


def _n_test(experiment: str, scale: str) -> int:
    """Held-out examples the trainer evaluates on (its ``eval_examples`` cap, else the whole test set)."""
    spec, dataset = _spec_and_data(experiment, scale, None)[0]
    cap = spec.data.eval_examples
    return int(len(dataset.x_test) if not cap else min(cap, len(dataset.x_test)))


def _spec_and_data(experiment: str, scale: str, init: str | None) -> list[tuple[Any, Any]]:
    from initbench.benchmarks import data as data_lib
    from initbench.benchmarks import experiments

    plan = experiments.resolve(experiments.load(experiment), scale)
    specs = [s for s in plan.full if init is None or s.init.name == init]
    out, cache = [], {}
    for spec in specs:
        key = (spec.data.name, spec.data.extra)
        if key not in cache:
            cache[key] = data_lib.load(spec.data.name, **dict(spec.data.extra))
        out.append((spec, cache[key]))
    return out


def scheme_runs(experiment: str, scale: str, scheme: str) -> list[dict[str, Any]]:
    """Per seed of the scheme's runs: ``seed, model, before, after, record, x, y`` as the trainer makes them.

    ``before`` are the variables the model is built with (the scheme's ``base``), ``after`` the
    scheme's output, ``record`` its record; ``x, y`` the training set (float32 inputs, int labels).
    One compiled program serves every seed.
    """
    from initbench.benchmarks.train import build_model, run_keys, scheme_init

    runs = _spec_and_data(experiment, scale, scheme)
    spec0, dataset = runs[0]
    model = build_model(spec0, dataset)
    x = jnp.asarray(dataset.x_train, jnp.float32)
    y = jnp.asarray(dataset.y_train)
    init = jax.jit(scheme_init(spec0, dataset, record=True))  # the trainer's own initialization, with the record
    out = []
    for spec, _ in runs:
        before, after, record = init(run_keys(spec.seed)[0], x, y)
        out.append(
            {"seed": spec.seed, "model": model, "before": before, "after": after, "record": record, "x": x, "y": y}
        )
    return out


def kernels(variables: dict) -> list[tuple[str, jax.Array]]:
    """``(path, kernel)`` of every Dense kernel in call order (hidden layers ``layer_000...``, then ``head``)."""
    flat = jax.tree_util.tree_flatten_with_path(variables["params"])[0]
    named = [("/".join(str(getattr(k, "key", k)) for k in path), leaf) for path, leaf in flat if leaf.ndim >= 2]
    return sorted(named, key=lambda item: (item[0].startswith("head"), item[0]))


def implied_sigma_w2(variables: dict) -> list[tuple[str, float]]:
    r"""Per kernel: :math:`n_{in}\,\mathrm{Var}[W]` (the :math:`\sigma_w^2` a Gaussian init of this scale has)."""
    return [(path, float(w.shape[0] * jnp.var(w))) for path, w in kernels(variables)]


def final_accuracy(train: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, seed): the test accuracy at the last step, with ``n_test``."""
    acc = train[(train["split"] == "test") & (train["metric"] == "accuracy")]
    last = acc[acc["step"] == acc.groupby(["arm", "seed"])["step"].transform("max")]
    return last[["arm", "seed", "value", "n_test"]].rename(columns={"value": "accuracy"}).reset_index(drop=True)


DELTA = 0.02  # "within the accuracy of a good init": at most 2 accuracy points worse (fixed after the numbers)
REVISED = " [criterion revised after the cpu numbers were seen: was a 2-SE margin (issue 25)]"


def rescue_claims(final: pd.DataFrame, scheme: str, scheme_title: str) -> list[Claim]:
    """Two claims: the bad init trains poorly; the scheme rescues it to within the good init's accuracy."""
    acc = {arm: final.loc[final["arm"] == arm, "accuracy"] for arm in (*ARMS, scheme)}
    n_test = int(final["n_test"].iloc[0])
    (good, good_se), (bad, bad_se), (ours, ours_se) = (mean_se(acc[a]) for a in ("good", "bad", scheme))
    poorly = difference(acc["good"], acc["bad"])
    gap, beats = difference(acc["good"], acc[scheme]), difference(acc[scheme], acc["bad"])
    seeds = int(final.groupby("arm").size().min())
    listing = (
        f"test accuracy: good {good:.3f} +- {good_se:.3f}, bad {bad:.3f} +- {bad_se:.3f},"
        f" {scheme} {ours:.3f} +- {ours_se:.3f} (mean +- SE; {seeds} seeds, {n_test} test examples)"
    )
    return [
        Claim(
            "bad init trains poorly",
            f"a badly scaled deep net (here sigma_w^2 = {BAD_SCALE}, the ordered phase of tanh) trains poorly",
            "the 95% Welch-t interval over seeds of good - bad mean final test accuracy is above 0" + REVISED,
            f"{listing}; good - bad = {poorly.value:.3f}, interval [{poorly.low:.3f}, {poorly.high:.3f}]",
            poorly.better(),
        ),
        Claim(
            f"{scheme} rescues the bad init",
            f"{scheme_title} started from the bad init reaches the accuracy of a good init",
            f"the 95% Welch-t interval over seeds of good - {scheme} mean final test accuracy is below {DELTA:g},"
            f" and that of {scheme} - bad above 0" + REVISED,
            f"{listing}; good - {scheme} = {gap.value:.3f}, interval [{gap.low:.3f}, {gap.high:.3f}]; {scheme} -"
            f" bad interval [{beats.low:.3f}, {beats.high:.3f}] (per seed:"
            f" {', '.join(f'{v:.3f}' for v in acc[scheme])})",
            gap.within(DELTA) and beats.better(),
        ),
    ]


def training_figure(train: pd.DataFrame, scheme: str, title: str) -> Any:
    """Test accuracy and training loss against SGD steps per arm (mean over seeds, each seed thin)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = {**ARM_LABELS, scheme: f"{scheme} from the bad init"}
    for ax, (split, metric) in zip(axes, (("test", "accuracy"), ("train", "loss")), strict=True):
        part = train[(train["split"] == split) & (train["metric"] == metric)]
        for n, arm in enumerate((*ARMS, scheme)):
            g = part[part["arm"] == arm]
            for _, s in g.groupby("seed"):
                ax.plot(s["step"], s["value"], color=f"C{n}", lw=0.6, alpha=0.4)
            mean = g.groupby("step")["value"].mean()
            ax.plot(mean.index, mean.to_numpy(), color=f"C{n}", lw=2, label=labels[arm])
        ax.set_xlabel("SGD step")
        ax.set_ylabel(f"{split} {metric}")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
