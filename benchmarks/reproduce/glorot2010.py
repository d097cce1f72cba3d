r"""``glorot2010``: Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward neural networks".

**At initialization (Figs. 6-8, Sec. 4.2).** Five hidden tanh layers of 1000 units, biases zero,
a softmax output over 10 classes, on sparse 300-d inputs (``data.load("sparse")``: each
coordinate non-zero with probability 0.1, then uniform on (0, 1]). Two inits:

* "standard" :math:`W \sim U[-1/\sqrt{n}, 1/\sqrt{n}]`, :math:`n\,\mathrm{Var}[W] = 1/3`
  (``inits.glorot_standard``);
* "normalized" :math:`W \sim U[\pm\sqrt{6/(n_{in}+n_{out})}]`, :math:`\mathrm{Var}[W] =
  2/(n_{in}+n_{out})` (``inits.glorot_uniform``).

In the linear regime of tanh the paper's eqs. 5-14 give, with :math:`s^i` the pre-activations,
:math:`z^i` the activations and :math:`\mu^{(i)} = \mathbb{E}[\tanh'(s^i)^2]` (computed here
from the measured :math:`\mathbb{E}[(s^i)^2]` by Gaussian quadrature):

.. math::
    \mathrm{Var}[\partial C/\partial s^i] = \mu^{(i)}\, n_{i+1}\mathrm{Var}[W^{i+1}]\,
    \mathrm{Var}[\partial C/\partial s^{i+1}], \qquad
    \mathbb{E}[(\partial C/\partial W^i)^2] = \mathbb{E}[(z^{i-1})^2]\,\mathbb{E}[(\partial C/\partial s^i)^2].

So the standard init shrinks the back-propagated gradient by about 1/3 per layer toward the
input (top-to-bottom ratio :math:`3^4/\prod\mu \approx 81` over 5 layers), while the
normalized init keeps it (ratio :math:`1/\prod\mu \approx 1`); and with standard init the
forward signal shrinks by the same 1/3 per layer, so the weight gradients have about the same
variance in every layer even though the back-propagated gradients do not (eq. 14). Measured
on ``B`` examples and 4 weight seeds: per-example gradients (sum loss), second moments over
units, means over examples and seeds.

Claims at initialization (criteria fixed from the theory above):

* Fig. 6, activations: the per-layer factor of :math:`\mathbb{E}[z^2]` (geometric mean over
  layers 2-5) is within 0.05 of its prediction :math:`n_{in}\mathrm{Var}[W]\,
  \mathbb{E}[\tanh(s)^2]/\mathbb{E}[s^2]` (about 1/3 for standard, about 1 for normalized),
  under 0.4 for standard and at least 0.9 for normalized (the prediction uses the measured
  second moments, so these two bounds are what tests the paper's claim);
* Fig. 7, back-propagated gradients: the top/bottom variance ratio is within 20% of the
  prediction :math:`\prod_{i<5} n_{i+1}\mathrm{Var}[W^{i+1}]^{-1}/\mu^{(i)}` for both inits (the
  finite-width fluctuation of a 4-layer product at width 1000 over 4 seeds is a few percent), and
  under 2 for normalized;
* Fig. 8, weight gradients: with standard init the largest/smallest layer's second moment is
  under 1.5 (the theory says 1).

**During training (Fig. 2).** The same 5-hidden-layer net with the logistic sigmoid and the
standard init, trained with SGD (minibatches of 10, learning rate 0.1) on Shapeset-3x2 by
initbench's trainer (a probe reads the activations on 500 held-out images every 1/30 of the
budget): the top hidden layer's
mean activation drops toward 0 (saturation) early in training while the lower layers stay near
0.5. Claim: the top layer's mean (over 500 held-out inputs and all units) falls below 0.1 within
the budget while the first layer's stays within [0.3, 0.7] throughout.

**Table 1.** Test error of the 5-hidden-layer nets on Shapeset-3x2 for sigmoid, tanh and
softsign with both inits, trained through the cohort trainer (experiment
``glorot2010-table1``; at ``cpu`` scale 256 units, 50,000 training images, 5,000 SGD steps of
32, 3 seeds; the paper: 1000 units, online Shapeset, minibatches of 10, tuned learning rates,
errors Sigmoid 82.61, Tanh 27.15, Tanh N 15.60, Softsign 16.27, Softsign N 16.06). Claims: the
sigmoid net (standard init) has the highest test error of the paper's five configurations;
tanh with normalized init has a lower test error than tanh with standard init (the 95% Welch-t
interval of the difference over seeds above 0; until issue 25 it was twice the seeds' combined
standard error, a rule changed after the numbers were seen); the normalized init reaches a lower training loss than the
standard one for both tanh and softsign (the paper's "normalized init speeds up training").
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from initbench import inits, models
from initbench.benchmarks.reproduce import Claim, Reproduction
from initbench.benchmarks.reproduce._stats import difference, mean_se

if TYPE_CHECKING:
    from initbench.benchmarks.spec import RunSpec

# width of the hidden layers, examples probed at init, width / steps of the sigmoid training run
SIZES = {"smoke": (64, 64, 32, 40), "cpu": (1000, 500, 1000, 1500), "paper": (1000, 1000, 1000, 30000)}
DEPTH = 5
INPUT_DIM = 300
INITS = {"standard": inits.glorot_standard, "normalized": inits.glorot_uniform}
ACTIVATIONS = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}
SEEDS = (0, 1, 2, 3)
PAPER_TABLE1 = {
    ("sigmoid", "standard"): 82.61,
    ("tanh", "standard"): 27.15,
    ("tanh", "normalized"): 15.60,
    ("softsign", "standard"): 16.27,
    ("softsign", "normalized"): 16.06,
}
# a Table 1 pass is weak (the direction right, the size far from the paper's) when the best error is
# more than this factor above the paper's best, or a gain less than the paper's over this factor
WEAK_FACTOR = 2.0
SATURATION_PROBE = 500  # held-out Shapeset images whose activations Fig. 2 tracks
INIT_NAMES = {"glorot_standard": "standard", "glorot_uniform": "normalized"}


def init_params(key: jax.Array, init: inits.Init, widths: tuple[int, ...]) -> list[tuple[jax.Array, jax.Array]]:
    """``(kernel, bias)`` per layer for the layer sizes ``widths`` (biases zero, as in the paper)."""
    keys = jax.random.split(key, len(widths) - 1)
    return [(init(k, (a, b)), jnp.zeros((b,))) for k, a, b in zip(keys, widths[:-1], widths[1:], strict=True)]


def forward(params, x: jax.Array, activation, shifts=None) -> tuple[jax.Array, list[jax.Array], list[jax.Array]]:
    r"""Logits, pre-activations ``s^i`` and activations ``z^i`` of the hidden layers.

    ``shifts`` (zeros) are added to the pre-activations so that their gradient is
    :math:`\partial C / \partial s^i`.
    """
    pre, post, z = [], [], x
    for i, (w, b) in enumerate(params[:-1]):
        s = z @ w + b[None, :] + (0.0 if shifts is None else shifts[i])
        z = activation(s)
        pre.append(s)
        post.append(z)
    w, b = params[-1]
    return z @ w + b[None, :], pre, post


def _loss_sum(params, shifts, x, y, activation):
    logits, _, _ = forward(params, x, activation, shifts)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum()  # per-example gradients


def at_init(scale: str) -> pd.DataFrame:
    r"""Per (init, seed, layer): second moments of activations, back-propagated and weight gradients.

    Also the mean-field derivative factor :math:`\mu = \mathbb{E}[\tanh'(s)^2]` at the
    measured pre-activation second moment, and ``fan_var`` :math:`n_{out}\mathrm{Var}[W]` of
    the layer above (the back-propagation factor).
    """
    from initbench.benchmarks.analysis import theory
    from initbench.benchmarks.data.embedded import sparse

    width, batch = SIZES[scale][:2]
    data = sparse(dim=INPUT_DIM, n_train=batch, n_test=1)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    widths = (INPUT_DIM, *([width] * DEPTH), 10)
    rows = []
    for label, factory in INITS.items():
        init = factory()
        for seed in SEEDS:
            params = init_params(jax.random.key(seed), init, widths)
            _, pre, post = forward(params, x, jnp.tanh)
            shifts = [jnp.zeros_like(s) for s in pre]
            deltas = jax.grad(_loss_sum, argnums=1)(params, shifts, x, y, jnp.tanh)
            inputs = [x, *post[:-1]]
            for i in range(DEPTH):
                s2 = float(jnp.mean(pre[i] ** 2))
                mu = float(theory.expect(lambda h: (1 - jnp.tanh(h) ** 2) ** 2, s2))
                per_example = jnp.mean(inputs[i] ** 2, axis=1) * jnp.mean(deltas[i] ** 2, axis=1)
                _, var_above = init.target(tuple(params[i + 1][0].shape))
                _, var_here = init.target(tuple(params[i][0].shape))
                shrink = float(theory.expect(lambda h: jnp.tanh(h) ** 2, s2)) / s2
                rows.append(
                    {
                        "init": label,
                        "seed": seed,
                        "layer": i + 1,
                        "activation_second_moment": float(jnp.mean(post[i] ** 2)),
                        "pre_activation_second_moment": s2,
                        "mu": mu,
                        "backprop_gradient_variance": float(jnp.mean(deltas[i] ** 2)),
                        "weight_gradient_second_moment": float(jnp.mean(per_example)),
                        "fan_var": float(params[i + 1][0].shape[1] * var_above),
                        "forward_factor": float(params[i][0].shape[0] * var_here * shrink),
                    }
                )
    return pd.DataFrame(rows)


def histograms(scale: str) -> dict[tuple[str, str], list[np.ndarray]]:
    """Samples per (init, quantity) per layer for Figs. 6-8 (seed 0): activations, dC/ds, dC/dW."""
    from initbench.benchmarks.data.embedded import sparse

    width, batch = SIZES[scale][:2]
    data = sparse(dim=INPUT_DIM, n_train=batch, n_test=1)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    out = {}
    for label, factory in INITS.items():
        params = init_params(jax.random.key(0), factory(), (INPUT_DIM, *([width] * DEPTH), 10))
        _, pre, post = forward(params, x, jnp.tanh)
        deltas = jax.grad(_loss_sum, argnums=1)(params, [jnp.zeros_like(s) for s in pre], x, y, jnp.tanh)
        minibatch = jax.grad(lambda p: _loss_sum(p, None, x[:10], y[:10], jnp.tanh) / 10)  # the paper's 10 examples
        weight_grads = minibatch(params)
        out[label, "activations"] = [np.asarray(z).ravel() for z in post]
        out[label, "backprop_gradients"] = [np.asarray(d).ravel() for d in deltas]
        out[label, "weight_gradients"] = [np.asarray(g[0]).ravel() for g in weight_grads[:-1]]
    return out


def saturation_spec(scale: str) -> RunSpec:
    """Fig. 2's run: the 5-layer sigmoid MLP, standard init, plain SGD (lr 0.1, minibatches of 10) on Shapeset."""
    from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options

    _, _, width, steps = SIZES[scale]
    n_train = 20000 if scale != "smoke" else 500
    return RunSpec(
        "glorot2010",
        "saturation",
        ModelSpec("mlp", "sigmoid", DEPTH, width),
        InitSpec("glorot_standard"),
        DataSpec("shapeset", 10, options(n_test=SATURATION_PROBE, n_train=n_train)),
        TrainSpec("sgd", lr=0.1, steps=steps, eval_every=max(steps // 30, 1)),
        0,
    )


def saturation(scale: str) -> pd.DataFrame:
    """Fig. 2: per-layer mean and std of the sigmoid activations on 500 held-out inputs during training.

    :func:`saturation_spec` trained by initbench's trainer; a probe (``train_cohort(probe=...)``) reads
    the hidden activations on the 500 test images at every evaluation: per layer, the mean over
    examples and units, and the standard deviation over units of the per-unit mean.
    """
    from initbench.benchmarks import data
    from initbench.benchmarks.reproduce._training import train_runs
    from initbench.benchmarks.train import build_model

    spec = saturation_spec(scale)
    ds = data.load(spec.data.name, **dict(spec.data.extra))
    net = build_model(spec, ds)
    held_out = jnp.asarray(ds.x_test)

    def probe(variables: dict) -> dict:
        _, state = net.apply(variables, held_out, mutable=["intermediates"])
        acts = [layer["activation"] for layer in models.per_layer(state["intermediates"])][:DEPTH]
        return {
            "mean": {str(i + 1): jnp.mean(z) for i, z in enumerate(acts)},
            "unit_mean_std": {str(i + 1): jnp.std(jnp.mean(z, axis=0)) for i, z in enumerate(acts)},
        }

    curves, _ = train_runs([spec], ds, probe=probe)
    probed = curves[curves["split"] == "probe"]
    wide = probed.pivot_table(index=["step", "layer"], columns="metric", values="value").reset_index()
    wide["layer"] = wide["layer"].astype(int)
    return wide[["step", "layer", "mean", "unit_mean_std"]].sort_values(["step", "layer"], ignore_index=True)


def table1(scale: str) -> pd.DataFrame:
    """Per (activation, init, seed): final test error and training loss of ``glorot2010-table1``."""
    from initbench.benchmarks.results import ResultStore
    from initbench.benchmarks.runner import run_experiment

    with tempfile.TemporaryDirectory() as out:
        run_experiment("glorot2010-table1", scale, out)
        df = ResultStore(out).read()
    last = df[df["step"] == df.groupby("run_id")["step"].transform("max")]
    acc = last[(last["split"] == "test") & (last["metric"] == "accuracy")].set_index(["activation", "init", "seed"])
    loss = last[(last["split"] == "train") & (last["metric"] == "loss")].set_index(["activation", "init", "seed"])
    table = pd.DataFrame({"test_error": 100 * (1 - acc["value"]), "train_loss": loss["value"]}).reset_index()
    table["init"] = table["init"].map(INIT_NAMES)
    return table


def tidy(init_df: pd.DataFrame, sat: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The three parts' frames as the reproduction's tidy rows (``part``, identity columns, ``metric``, ``value``)."""
    return pd.concat(
        [
            init_df.melt(id_vars=["init", "seed", "layer"], var_name="metric", value_name="value").assign(
                part="at_init"
            ),
            sat.melt(id_vars=["step", "layer"], var_name="metric", value_name="value").assign(
                part="sigmoid_saturation", init="standard"
            ),
            table.melt(id_vars=["activation", "init", "seed"], var_name="metric", value_name="value").assign(
                part="table1"
            ),
        ],
        ignore_index=True,
    )


def _part(measurements: pd.DataFrame, part: str, index: list[str]) -> pd.DataFrame:
    """One part of the tidy rows back in its wide form: a column per metric, rows sorted by ``index``."""
    rows = measurements[measurements["part"] == part]
    wide = rows.pivot(index=index, columns="metric", values="value").reset_index()
    wide.columns.name = None
    return wide


def claims(measurements: pd.DataFrame, scale: str) -> list[Claim]:
    """The claims of the module docstring, on the tidy rows of :func:`tidy` (no criterion depends on ``scale``)."""
    init_df = _part(measurements, "at_init", ["init", "seed", "layer"])
    sat = _part(measurements, "sigmoid_saturation", ["step", "layer"])
    table = _part(measurements, "table1", ["activation", "init", "seed"])
    out = []
    mean = init_df.groupby(["init", "layer"]).mean(numeric_only=True)
    factors, expected = {}, {}
    for label in INITS:
        m = mean.loc[label]
        z2 = m["activation_second_moment"].to_numpy()
        factors[label] = float((z2[-1] / z2[0]) ** (1 / (DEPTH - 1)))  # geometric mean over layers 2..5
        expected[label] = float(np.prod(m["forward_factor"].to_numpy()[1:]) ** (1 / (DEPTH - 1)))
    out.append(
        Claim(
            "Fig 6: standard init shrinks activations",
            "with standard init the activations shrink toward 0 layer after"
            " layer (the 0-peak grows with depth); normalized keeps them",
            "per-layer factor of E[z^2] within 0.05 of n Var[W] E[tanh(s)^2]/E[s^2] (1/3 x shrink for standard);"
            " standard under 0.4, normalized at least 0.9",
            f"standard {factors['standard']:.3f} (predicted {expected['standard']:.3f}), normalized"
            f" {factors['normalized']:.3f} (predicted {expected['normalized']:.3f})",
            all(abs(factors[k] - expected[k]) < 0.05 for k in INITS)
            and factors["standard"] < 0.4
            and factors["normalized"] >= 0.9,
        )
    )
    ratios, predicted = {}, {}
    for label in INITS:
        m = mean.loc[label]
        g = m["backprop_gradient_variance"]
        ratios[label] = float(g.iloc[-1] / g.iloc[0])
        predicted[label] = float(np.prod(1.0 / (m["fan_var"].to_numpy()[:-1] * m["mu"].to_numpy()[:-1])))
    ok = all(abs(ratios[k] / predicted[k] - 1) < 0.2 for k in INITS) and ratios["normalized"] < 2
    out.append(
        Claim(
            "Fig 7: standard init shrinks back-propagated gradients",
            "with standard init the back-propagated gradient"
            " variance shrinks toward the input (about 1/3 per layer); normalized keeps it near 1",
            "top/bottom ratio of Var dC/ds within 20% of the linear-regime prediction for both; normalized under 2",
            f"standard {ratios['standard']:.1f} (predicted {predicted['standard']:.1f}), normalized"
            f" {ratios['normalized']:.2f} (predicted {predicted['normalized']:.2f})",
            ok,
        )
    )
    w = mean.loc["standard", "weight_gradient_second_moment"]
    spread = float(w.max() / w.min())
    out.append(
        Claim(
            "Fig 8: weight gradients even across layers (standard)",
            "with standard init the weight gradients have about"
            " the same variance in every layer although the back-propagated gradients shrink (eq. 14)",
            "largest / smallest layer's E[(dC/dW)^2] under 1.5",
            f"ratio {spread:.2f} (back-propagated gradients: {ratios['standard']:.1f})",
            spread < 1.5,
        )
    )
    top, first = sat[sat["layer"] == DEPTH], sat[sat["layer"] == 1]
    low = float(top["mean"].min())
    at = float(top.loc[top["mean"].idxmin(), "step"])
    ok = low < 0.1 and first["mean"].between(0.3, 0.7).all()
    out.append(
        Claim(
            "Fig 2: sigmoid top layer saturates",
            "sigmoid with standard init: the top hidden layer's activations quickly"
            " go to 0 (saturation) while the lower layers stay around 0.5",
            "top layer mean < 0.1 at some point; layer 1 mean within [0.3, 0.7] throughout",
            f"top layer mean {float(top['mean'].iloc[0]):.3f} at init -> {low:.3f} (step {at:g}); layer 1 in"
            f" [{float(first['mean'].min()):.3f}, {float(first['mean'].max()):.3f}]",
            bool(ok),
        )
    )
    errs = {key: mean_se(g["test_error"]) for key, g in table.groupby(["activation", "init"])}
    paper = {k: errs[k][0] for k in PAPER_TABLE1 if k in errs}
    worst = max(paper, key=lambda k: paper[k])
    listing = ", ".join(f"{a} {i[:4]}. {paper[a, i]:.1f}" for a, i in paper)
    best, paper_best = min(paper.values()), min(PAPER_TABLE1.values())
    far = (
        f"every net is far from the paper's errors (best {best:.1f}% vs the paper's {paper_best:.1f}%): the order"
        " holds where none has trained well"
        if best > WEAK_FACTOR * paper_best
        else ""
    )
    out.append(
        Claim(
            "Table 1: sigmoid is worst",
            "the 5-layer sigmoid net has by far the highest test error (82.61% on Shapeset)",
            "sigmoid/standard has the highest mean test error of the paper's five configurations",
            f"test error %: {listing}",
            worst == ("sigmoid", "standard"),
            note=far,
        )
    )
    (n_mean, n_se), (s_mean, s_se) = errs["tanh", "normalized"], errs["tanh", "standard"]
    paper_gain = PAPER_TABLE1["tanh", "standard"] - PAPER_TABLE1["tanh", "normalized"]
    tanh = table[table["activation"] == "tanh"]
    gain = difference(
        tanh.loc[tanh["init"] == "standard", "test_error"], tanh.loc[tanh["init"] == "normalized", "test_error"]
    )
    out.append(
        Claim(
            "Table 1: normalized init helps tanh",
            "tanh: 15.60% test error with normalized init vs 27.15% with standard",
            "the 95% Welch-t interval over seeds of standard - normalized mean test error is above 0"
            " [criterion revised after the cpu numbers were seen: was 2 x the combined SE (issue 25)]",
            f"tanh normalized {n_mean:.2f} +- {n_se:.2f}, standard {s_mean:.2f} +- {s_se:.2f} (mean +- SE; seeds:"
            f" {int(table.groupby(['activation', 'init']).size().min())}); difference {gain.value:.2f}, interval"
            f" [{gain.low:.2f}, {gain.high:.2f}]",
            gain.better(),
            note=far
            or (
                f"the gain is {gain.value:.2f} points where the paper's is {paper_gain:.2f}"
                if gain.value < paper_gain / WEAK_FACTOR
                else ""
            ),
        )
    )
    loss = table.groupby(["activation", "init"])["train_loss"].mean()
    ok = all(loss[a, "normalized"] < loss[a, "standard"] for a in ("tanh", "softsign"))
    out.append(
        Claim(
            "normalized init trains faster",
            "the normalized init speeds up training (tanh and softsign, Figs. 11-12)",
            "lower mean final training loss with normalized than standard init, for tanh and for softsign",
            ", ".join(
                f"{a}: normalized {loss[a, 'normalized']:.3f} vs standard {loss[a, 'standard']:.3f}"
                for a in ("tanh", "softsign")
            ),
            bool(ok),
        )
    )
    return out


def _figures(hists, sat: pd.DataFrame, table: pd.DataFrame, width: int) -> dict:
    import matplotlib.pyplot as plt

    figures = {}
    titles = {
        "activations": "Fig 6: activation values (tanh)",
        "backprop_gradients": "Fig 7: back-propagated gradients dC/ds",
        "weight_gradients": "Fig 8: weight gradients dC/dW (minibatch of 10)",
    }
    for quantity, title in titles.items():
        fig, axes = plt.subplots(2, 1, figsize=(7, 5))
        for ax, label in zip(axes, INITS, strict=True):
            layers = hists[label, quantity]
            hi = float(np.quantile(np.abs(np.concatenate(layers)), 0.995)) or 1.0
            bins = np.linspace(-hi, hi, 81)
            for i, v in enumerate(layers):
                counts, _ = np.histogram(np.clip(v, -hi, hi), bins=bins)
                ax.plot(0.5 * (bins[1:] + bins[:-1]), counts / counts.sum(), label=f"layer {i + 1}")
            ax.set_title(f"{label} init", fontsize=9)
            ax.legend(fontsize=7)
        fig.suptitle(f"{title}, {DEPTH} layers of {width}")
        fig.tight_layout()
        figures[quantity] = fig
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for layer, g in sat.groupby("layer"):
        ax.errorbar(g["step"], g["mean"], yerr=g["unit_mean_std"], label=f"layer {layer}", capsize=2, lw=1)
    ax.set_xlabel("SGD step (minibatch of 10)")
    ax.set_ylabel("mean sigmoid activation")
    ax.set_title("Fig 2: sigmoid with standard init on Shapeset-3x2 (bars: std over units)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    figures["sigmoid_saturation"] = fig
    fig, ax = plt.subplots(figsize=(7, 3.5))
    summary = table.groupby(["activation", "init"])["test_error"].agg(["mean", "std"]).reset_index()
    labels = [f"{a}\n{i}" for a, i in zip(summary["activation"], summary["init"], strict=True)]
    ax.bar(labels, summary["mean"], yerr=summary["std"], capsize=3, label="measured (cpu scale)")
    paper = [PAPER_TABLE1.get((a, i), np.nan) for a, i in zip(summary["activation"], summary["init"], strict=True)]
    ax.plot(labels, paper, "k*", markersize=10, label="paper (Shapeset, 1000 units)")
    ax.set_ylabel("test error %")
    ax.set_title("Table 1: Shapeset-3x2 test error")
    ax.legend(fontsize=7)
    fig.tight_layout()
    figures["table1"] = fig
    return figures


def run(scale: str) -> Reproduction:
    """Measures the three parts, checks the claims, draws the figures."""
    import matplotlib

    matplotlib.use("Agg")

    init_df, sat, table = at_init(scale), saturation(scale), table1(scale)
    rows = tidy(init_df, sat, table)
    figures = _figures(histograms(scale), sat, table, SIZES[scale][0])
    return Reproduction("glorot2010", scale, claims(rows, scale), rows, figures)
