r"""``he2015``: He, Zhang, Ren & Sun 2015, "Delving Deep into Rectifiers", Sec. 2.2 and Fig. 3.

The derivation: for ReLU layers :math:`\mathrm{Var}[y_l] = \tfrac{1}{2} n_l \mathrm{Var}[w_l]
\mathrm{Var}[y_{l-1}]`, so Xavier-style :math:`\mathrm{Var}[w] = 1/n` halves the variance per
layer (:math:`2^{-L}` after :math:`L` layers, the std :math:`2^{-L/2}`) while :math:`2/n`
keeps it; the same holds backward for the gradients. Measured here with the propagation probe
on ReLU MLPs without biases (4 seeds): the per-layer factor of the forward second moment and of
the back-propagated gradient variance, fitted over the layers. The PReLU/leaky variant (eq. 15):
with a negative slope :math:`a` (0.5 here, to make the difference plain), :math:`\mathrm{Var}[w]
= 2/((1 + a^2) n)` keeps the forward variance while the ReLU init :math:`2/n` multiplies it by
:math:`1 + a^2` per layer.

The convergence experiment (Fig. 3): plain deep nets, 22 and 30 layers; at 30 layers the
Xavier-initialized net stalls where He's trains, at 22 both converge (He earlier). The paper's
nets are conv nets on ImageNet; at ``cpu`` scale this runs the ``he2015-depth30`` experiment
(ReLU MLP of width 256 on digits, SGD lr 0.01, batch 128, 2,000 steps, 3 seeds) at depths 22
and 30 with ``lecun_normal`` (Var w = 1/n, Xavier on square layers) against ``he_normal``.
"Leaves the initial loss" = the first evaluation whose mean training loss over the seeds is
below 90% of :math:`\ln 10`.

At ``full`` scale (about 15 minutes on 2 cores) the setup is the paper's as far as it fits
here: its training recipe (Sec. 4.1: SGD with momentum 0.9, weight decay :math:`5\cdot10^{-4}`,
learning rate :math:`10^{-2}`, minibatches of 128), real images (Fashion-MNIST, 60,000
training images of 784 pixels, in place of ImageNet, which cannot be had offline), 5 seeds and
2,400 steps (5.1 epochs); the probes at the paper scale's sizes (30 layers of 1024 units,
batch 512). The nets stay ReLU MLPs of width 256 (the paper's are conv nets). The claims and
their criteria are the ``cpu`` scale's, fixed before the ``full`` scale was first run.
"""

from __future__ import annotations

import math
import tempfile

import jax
import numpy as np
import pandas as pd

from initbench import inits, models
from initbench.benchmarks.reproduce import Claim, Reproduction

# depth, width, batch of the probe
SIZES = {"smoke": (8, 64, 64), "cpu": (30, 256, 256), "full": (30, 1024, 512), "paper": (30, 1024, 512)}
INITS = {"Xavier (1/n)": "lecun_normal", "He (2/n)": "he_normal"}
SLOPE = 0.5  # the leaky-ReLU / PReLU variant: Var w = 2 / ((1 + a^2) n)
LEAKY = {f"leaky {SLOPE}: He (2/n)": {}, f"leaky {SLOPE}: He 2/((1+a^2)n)": {"negative_slope": SLOPE}}


def _rate(values: np.ndarray) -> float:
    """Per-layer factor: exp of the least-squares slope of log values over the layer index."""
    layers = np.arange(1, len(values) + 1, dtype=np.float64)
    return float(np.exp(np.polyfit(layers, np.log(values), 1)[0]))


def derivation(scale: str) -> pd.DataFrame:
    """Per layer and init: forward second moment and gradient variance (mean over 4 seeds)."""
    from initbench.benchmarks.analysis import propagation

    depth, width, batch = SIZES[scale]
    x = jax.random.normal(jax.random.key(0), (batch, width))
    rows = []
    cases = [(label, init, "relu") for label, init in INITS.items()]
    cases += [(label, inits.he_normal(**kw), f"leaky_relu:{SLOPE}") for label, kw in LEAKY.items()]
    for label, init, activation in cases:
        net = models.build(
            "mlp",
            input_shape=(width,),
            num_classes=10,
            depth=depth,
            width=width,
            activation=activation,
            kernel_init=init,
            use_bias=False,
            scan=True,
        )
        runs = propagation.propagation_over_seeds(net, x, [0, 1, 2, 3], activation=activation)
        table = propagation.layer_table(runs)
        mean = table.groupby("layer_index").mean(numeric_only=True).iloc[:-1]  # hidden layers
        for i, (q, g) in enumerate(zip(mean["pre_activation_second_moment"], mean["gradient_variance"], strict=True)):
            rows.append({"init": label, "layer": i + 1, "forward": q, "backward": g})
    return pd.DataFrame(rows)


def convergence(scale: str) -> pd.DataFrame:
    """Mean training loss per (depth, init, step) of the he2015-depth30 experiment at depths 22 and 30."""
    from initbench.benchmarks.results import ResultStore
    from initbench.benchmarks.runner import run_experiment

    with tempfile.TemporaryDirectory() as out:
        run_experiment("he2015-depth30", scale, out, overrides={"model.depth": [22, 30]})
        df = ResultStore(out).read()
    loss = df[(df["split"] == "train") & (df["metric"] == "loss")]
    return loss.groupby(["depth", "init", "step"], as_index=False)["value"].mean()


def _leaves(curve: pd.DataFrame) -> float:
    below = curve[curve["value"] < 0.9 * math.log(10)]
    return float(below["step"].min()) if len(below) else math.inf


def measure(scale: str) -> pd.DataFrame:
    """Both parts as tidy rows: init, layer (the step for ``convergence``), metric, value, part, depth."""
    deriv = derivation(scale)
    conv = convergence(scale)
    rows = deriv.melt(id_vars=["init", "layer"], var_name="metric", value_name="value").assign(part="derivation")
    rows = pd.concat([rows, conv.rename(columns={"step": "layer"}).assign(metric="train_loss", part="convergence")])
    return rows.reset_index(drop=True)


def _derivation_rows(measurements: pd.DataFrame) -> pd.DataFrame:
    """The ``derivation`` part back in the form of :func:`derivation`: init, layer, forward, backward."""
    sel = measurements[measurements["part"] == "derivation"]
    wide = sel.pivot(index=["init", "layer"], columns="metric", values="value").reset_index()
    return wide[["init", "layer", "forward", "backward"]].rename_axis(columns=None)


def _convergence_rows(measurements: pd.DataFrame) -> pd.DataFrame:
    """The ``convergence`` part back in the form of :func:`convergence`: depth, init, step, value."""
    sel = measurements[measurements["part"] == "convergence"]
    conv = sel.rename(columns={"layer": "step"})[["depth", "init", "step", "value"]]
    return conv.astype({"depth": int}).sort_values(["depth", "init", "step"]).reset_index(drop=True)


def claims(measurements: pd.DataFrame, scale: str) -> list[Claim]:
    """The claims of the module docstring, from the rows of :func:`measure` alone."""
    deriv = _derivation_rows(measurements)
    out = []
    for signal, what in (("forward", "pre-activation second moment"), ("backward", "gradient variance")):
        factors = {label: _rate(g[signal].to_numpy()) for label, g in deriv.groupby("init") if label in INITS}
        if signal == "backward":  # propagates from the top: its factor per layer toward the input
            factors = {k: 1 / v for k, v in factors.items()}
        x, h = factors["Xavier (1/n)"], factors["He (2/n)"]
        out.append(
            Claim(
                f"{signal}: Xavier halves, He keeps",
                f"ReLU: Var w = 1/n multiplies the {what} by 1/2 per layer (2^-L after L layers), 2/n by 1",
                "per-layer factor within 0.05 of 0.5 (Xavier) and of 1 (He)",
                f"Xavier {x:.3f}, He {h:.3f} per layer ({SIZES[scale][0]} layers of {SIZES[scale][1]})",
                abs(x - 0.5) < 0.05 and abs(h - 1.0) < 0.05,
            )
        )
    factors = {label: _rate(g["forward"].to_numpy()) for label, g in deriv.groupby("init") if label in LEAKY}
    plain, leaky = factors[f"leaky {SLOPE}: He (2/n)"], factors[f"leaky {SLOPE}: He 2/((1+a^2)n)"]
    out.append(
        Claim(
            "PReLU/leaky: 2/((1+a^2) n) keeps",
            f"for a leaky ReLU/PReLU of slope a (here {SLOPE}), Var w = 2/((1+a^2) n)"
            " keeps the variance (eq. 15); 2/n multiplies it by 1 + a^2 per layer",
            f"per-layer factor of q within 0.05 of 1 (2/((1+a^2) n)) and of {1 + SLOPE**2:g} (2/n)",
            f"2/((1+a^2) n) {leaky:.3f}, 2/n {plain:.3f} per layer",
            abs(leaky - 1.0) < 0.05 and abs(plain - (1 + SLOPE**2)) < 0.05,
        )
    )
    conv = _convergence_rows(measurements)
    steps = {(d, i): _leaves(g) for (d, i), g in conv.groupby(["depth", "init"])}
    he30, x30 = steps[30, "he_normal"], steps[30, "lecun_normal"]
    he22, x22 = steps[22, "he_normal"], steps[22, "lecun_normal"]
    out.append(
        Claim(
            "30 layers: Xavier stalls",
            "at 30 layers Xavier init stalls (the loss does not decrease) where He's trains",
            "He leaves the initial loss; Xavier takes at least 3x as many steps (or never, in the budget)",
            f"steps to leave 0.9 ln 10: He {he30:g}, Xavier {x30:g}",
            math.isfinite(he30) and x30 >= 3 * he30,
        )
    )
    out.append(
        Claim(
            "22 layers: both converge, He first",
            "at 22 layers both converge; He's starts reducing the error earlier",
            "both leave the initial loss within the budget; He no later than Xavier",
            f"steps to leave 0.9 ln 10: He {he22:g}, Xavier {x22:g}",
            math.isfinite(he22) and math.isfinite(x22) and he22 <= x22,
        )
    )
    return out


def figures(measurements: pd.DataFrame, scale: str) -> dict:
    """The derivation (per-layer variance, both directions) and the convergence curves, from the rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    deriv, conv = _derivation_rows(measurements), _convergence_rows(measurements)
    out = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, signal in zip(axes, ("forward", "backward"), strict=True):
        for label, g in deriv.groupby("init"):
            ax.semilogy(
                g["layer"],
                g[signal] / g[signal].iloc[0 if signal == "forward" else -1],
                "o-",
                label=label,
                markersize=3,
            )
        layers = np.arange(1, SIZES[scale][0] + 1)
        ref = 0.5 ** (layers - 1) if signal == "forward" else 0.5 ** (layers[-1] - layers)
        ax.semilogy(layers, ref, "k:", label="2^-(layers apart)")
        what = "q^l / q^1" if signal == "forward" else "Var dL/dh^l / top layer"
        ax.set_title(f"{signal}: {what} (ReLU; leaky a={SLOPE})")
        ax.set_xlabel("layer")
        ax.legend(fontsize=7)
    fig.tight_layout()
    out["derivation"] = fig
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, depth in zip(axes, (22, 30), strict=True):
        for init, g in conv[conv["depth"] == depth].groupby("init"):
            ax.plot(g["step"], g["value"], label={"he_normal": "He", "lecun_normal": "Xavier (1/n)"}[init])
        ax.axhline(math.log(10), color="grey", ls=":", lw=0.8)
        ax.set_title(f"{depth}-layer ReLU MLP: training loss (mean of seeds)", fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    out["convergence"] = fig
    return out


def run(scale: str) -> Reproduction:
    """Measures both parts, checks the claims on the rows, draws the figures."""
    rows = measure(scale)
    return Reproduction("he2015", scale, claims(rows, scale), rows, figures(rows, scale))
