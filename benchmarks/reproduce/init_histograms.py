r"""``init-histograms``: the lecture experiment every introduction to initialization retells.

Ten fully connected layers of 500 units, no biases, inputs ``randn(1000, 500)``; weights drawn
as :math:`\mathcal{N}(0, 0.01^2)`, :math:`\mathcal{N}(0, 1)`, Xavier
(:math:`\mathcal{N}(0, 1/n_{in})`, LeCun's normal) and He (:math:`\mathcal{N}(0, 2/n_{in})`),
with tanh and ReLU (CS231n's "Neural Networks Part 2"; Glorot & Bengio 2010; He et al. 2015).
The signal is propagated exactly as the lecture does, one plain matrix product per layer, with
kernels from ``initbench.inits``. Then the symmetry problem: a net whose hidden weights all start
equal (zeros, or a constant) is trained with SGD by initbench's trainer (a 2x32 tanh MLP on digits,
learning rate 0.1, batch 64, the trained variables returned), and every hidden unit of a layer is
still the same function afterwards.

Claims and their criteria (std = standard deviation of a layer's activations over all units and
examples; the per-layer factor is fitted by least squares on log std over layers 2-10):

* std 0.01 + tanh collapses geometrically: per-layer factor within 10% of
  :math:`0.01\sqrt{n}` (tanh is linear near 0) and layer 10 below :math:`10^{-4}` x layer 1;
* std 1 + tanh saturates: at least 70% of units have :math:`|a| > 0.99` in every layer;
* Xavier + tanh stays alive: layer-10 std in [0.1, 0.9], under 5% saturated in every layer;
* Xavier + ReLU shrinks by :math:`1/\sqrt{2}` per layer: factor within 0.05 of 0.707;
* He + ReLU keeps the signal: factor within 0.05 of 1, layer 10 / layer 1 in [0.7, 1.4];
* zero (and constant) init: after the training steps, the columns of every hidden kernel are
  identical (max difference 0) and the biases too, while the constant net's weights did move.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from initbench import inits, models
from initbench.benchmarks.reproduce import Claim, Reproduction

if TYPE_CHECKING:
    from initbench.benchmarks.spec import RunSpec

SIZES = {"smoke": (200, 100, 20), "cpu": (1000, 500, 200), "paper": (1000, 500, 200)}  # batch, width, train steps
DEPTH = 10
INITS = {
    "normal(0.01)": lambda: inits.normal(0.01),
    "normal(1.0)": lambda: inits.normal(1.0),
    "xavier": inits.lecun_normal,  # N(0, 1/fan_in): the lecture's "Xavier"
    "he": inits.he_normal,
}
ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}
EDGES = {"tanh": np.linspace(-1, 1, 41), "relu": np.linspace(0, 3, 41)}


def propagate(init, activation, x: jax.Array, key: jax.Array) -> list[np.ndarray]:
    """The activations of each of :data:`DEPTH` layers (plain matrix products, no biases)."""
    h, out = x, []
    for k in jax.random.split(key, DEPTH):
        h = ACTIVATIONS[activation](h @ init(k, (h.shape[1], x.shape[1])))
        out.append(np.asarray(h, np.float64))
    return out


def _factor(stds: np.ndarray) -> float:
    """Per-layer factor: exp of the least-squares slope of log std over layers 2..10."""
    layers = np.arange(2, len(stds) + 1, dtype=np.float64)
    logs = np.log(np.maximum(stds[1:], 1e-300))
    return float(np.exp(np.polyfit(layers, logs, 1)[0]))


def symmetry_spec(init_name: str, steps: int) -> RunSpec:
    """The symmetry run: a 2x32 tanh MLP on digits whose kernels all start at ``init_name``, plain SGD."""
    from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options

    init = InitSpec("zeros") if init_name == "zeros" else InitSpec("constant", options(value=0.05))
    return RunSpec(
        "init-histograms",
        "symmetry",
        ModelSpec("mlp", "tanh", 2, 32),
        init,
        DataSpec("digits", 64, eval_examples=1 << 20),
        TrainSpec("sgd", lr=0.1, steps=steps, eval_every=steps),
        0,
    )


def symmetry(init_name: str, steps: int) -> dict[str, float]:
    """Trains :func:`symmetry_spec` with initbench's trainer; how different its hidden units end up.

    ``unit_spread``: the largest difference between a hidden layer's units (kernel columns, biases)
    after training; ``weights_moved``: the largest change of a hidden parameter; the losses are the
    trainer's evaluations on the whole training set at step 0 and at the end.
    """
    from initbench.benchmarks import data
    from initbench.benchmarks.reproduce._training import final_values, train_runs
    from initbench.benchmarks.train import initial_variables

    digits = data.load("digits")
    spec = symmetry_spec(init_name, steps)
    curves, variables = train_runs([spec], digits, keep_variables=True)
    start, params = initial_variables(spec, digits)["params"], variables[spec.run_id]["params"]
    spread = moved = 0.0
    for name in (models.layer_name(0), models.layer_name(1)):
        for leaf, leaf0 in zip(
            jax.tree_util.tree_leaves(params[name]), jax.tree_util.tree_leaves(start[name]), strict=True
        ):
            leaf, leaf0 = np.asarray(leaf), np.asarray(leaf0)
            spread = max(spread, float(np.max(np.abs(leaf - leaf[..., :1]))))  # every unit (column) equal?
            moved = max(moved, float(np.max(np.abs(leaf - leaf0))))
    first, last = final_values(curves, spec.run_id, 0), final_values(curves, spec.run_id, steps)
    return {
        "unit_spread": spread,
        "weights_moved": moved,
        "first_loss": first["train_loss"],
        "last_loss": last["train_loss"],
    }


SYMMETRY_INITS = ("zeros", "constant(0.05)")
SYMMETRY_METRICS = {  # the measurements' metric for each number :func:`symmetry` returns
    "unit_spread": "unit_spread_after_training",
    "weights_moved": "weights_moved_in_training",
    "first_loss": "train_loss_at_start",
    "last_loss": "train_loss_after_training",
}


def measure(scale: str) -> tuple[pd.DataFrame, dict[tuple[str, str], list[np.ndarray]]]:
    """The tidy rows (per-layer mean, std and saturated fraction; the symmetry runs' numbers) and the activations.

    Returns:
      The rows (activation, init, layer, metric, value) and, for the histograms, the activations of every
      layer by (activation, init).
    """
    batch, width, steps = SIZES[scale]
    x = jax.random.normal(jax.random.key(0), (batch, width))
    rows, acts = [], {}
    for activation in ACTIVATIONS:
        for name, factory in INITS.items():
            layers = propagate(factory(), activation, x, jax.random.key(1))
            acts[activation, name] = layers
            for i, a in enumerate(layers, 1):
                for metric, value in (
                    ("mean", a.mean()),
                    ("std", a.std()),
                    ("saturated_fraction", np.mean(np.abs(a) > 0.99)),
                ):
                    rows.append(
                        {"activation": activation, "init": name, "layer": i, "metric": metric, "value": float(value)}
                    )
    for init_name in SYMMETRY_INITS:
        s = symmetry(init_name, steps)
        for key, metric in SYMMETRY_METRICS.items():
            rows.append({"activation": "tanh", "init": init_name, "layer": None, "metric": metric, "value": s[key]})
    return pd.DataFrame(rows), acts


def _series(frame: pd.DataFrame, activation: str, init: str, metric: str) -> np.ndarray:
    """The values of one metric of one (activation, init), in layer order."""
    sel = frame[(frame["activation"] == activation) & (frame["init"] == init) & (frame["metric"] == metric)]
    return sel.sort_values("layer")["value"].to_numpy()


def _symmetry_values(frame: pd.DataFrame, init_name: str) -> dict[str, float]:
    """The numbers of :func:`symmetry` for one init, from the rows (nan where a row is missing)."""
    out = {}
    for key, metric in SYMMETRY_METRICS.items():
        values = _series(frame, "tanh", init_name, metric)
        out[key] = float(values[0]) if len(values) else math.nan
    return out


def claims(measurements: pd.DataFrame, scale: str) -> list[Claim]:
    """The claims (module docstring), checked on the measurements and the scale's width and training steps.

    Args:
      measurements: The tidy rows :func:`measure` returns.
      scale: The scale they were measured at: its :data:`SIZES` entry gives the width and the training steps.

    Returns:
      The seven claims, in the order of the module docstring (zero init, then constant init, last).
    """
    _, width, steps = SIZES[scale]
    out = []
    std = _series(measurements, "tanh", "normal(0.01)", "std")
    expected = 0.01 * math.sqrt(width)
    factor = _factor(std)
    out.append(
        Claim(
            "std 0.01 collapses (tanh)",
            "activations shrink toward 0 layer after layer (geometrically)",
            f"per-layer factor within 10% of 0.01 sqrt(n) = {expected:.3f}; layer 10 < 1e-4 x layer 1",
            f"factor {factor:.4f}; std layer 1 {std[0]:.3g} -> layer 10 {std[-1]:.3g}",
            bool(abs(factor / expected - 1) < 0.1 and std[-1] < 1e-4 * std[0]),
        )
    )
    sat = _series(measurements, "tanh", "normal(1.0)", "saturated_fraction")
    out.append(
        Claim(
            "std 1 saturates (tanh)",
            "almost all tanh units saturate at -1 or +1",
            "|a| > 0.99 for at least 70% of units in every layer",
            f"saturated fraction {sat.min():.3f} (least) to {sat.max():.3f}",
            bool(sat.min() >= 0.7),
        )
    )
    std = _series(measurements, "tanh", "xavier", "std")
    sat = _series(measurements, "tanh", "xavier", "saturated_fraction")
    out.append(
        Claim(
            "Xavier keeps tanh alive",
            "activations keep a healthy spread through all 10 layers",
            "layer-10 std in [0.1, 0.9]; under 5% saturated in every layer",
            f"std layer 1 {std[0]:.3f} -> layer 10 {std[-1]:.3f}; saturated at most {sat.max():.3f}",
            bool(0.1 <= std[-1] <= 0.9 and sat.max() < 0.05),
        )
    )
    factor = _factor(_series(measurements, "relu", "xavier", "std"))
    out.append(
        Claim(
            "Xavier shrinks ReLU",
            "with ReLU, Xavier halves the variance per layer (std x 1/sqrt(2))",
            "per-layer factor within 0.05 of 0.707",
            f"factor {factor:.4f}",
            abs(factor - 1 / math.sqrt(2)) < 0.05,
        )
    )
    std = _series(measurements, "relu", "he", "std")
    factor = _factor(std)
    out.append(
        Claim(
            "He keeps ReLU",
            "He init (2/n) keeps the ReLU activations' scale through depth",
            "per-layer factor within 0.05 of 1; layer 10 / layer 1 in [0.7, 1.4]",
            f"factor {factor:.4f}; layer 10 / layer 1 = {std[-1] / std[0]:.3f}",
            bool(abs(factor - 1) < 0.05 and 0.7 <= std[-1] / std[0] <= 1.4),
        )
    )
    for init_name in SYMMETRY_INITS:
        s = _symmetry_values(measurements, init_name)
        moved = init_name == "zeros" or s["weights_moved"] > 0  # a constant net does learn, symmetrically
        out.append(
            Claim(
                f"{init_name} init stays symmetric",
                "units that start equal get equal gradients and stay equal",
                f"after {steps} SGD steps every hidden unit of a layer is identical (max difference 0)",
                f"max difference between units {s['unit_spread']:.3g}; weights moved {s['weights_moved']:.3g}; "
                f"loss {s['first_loss']:.3f} -> {s['last_loss']:.3f}",
                s["unit_spread"] == 0.0 and moved,
                kind="check",
                note=(
                    "units that start equal get equal gradients for any correct implementation: a test of the code, "
                    "not of the lecture's claim"
                ),
            )
        )
    return out


def figures(measurements: pd.DataFrame, acts: dict[tuple[str, str], list[np.ndarray]]) -> dict:
    """Activation histograms per layer (one figure per activation) and the std per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}
    for activation in ACTIVATIONS:
        fig, axes = plt.subplots(len(INITS), DEPTH, figsize=(2.0 * DEPTH, 1.6 * len(INITS)), sharey="row")
        for r, name in enumerate(INITS):
            for c, a in enumerate(acts[activation, name]):
                ax = axes[r, c]
                ax.hist(np.clip(a.ravel(), EDGES[activation][0], EDGES[activation][-1]), bins=EDGES[activation])
                ax.set_yticks([])
                ax.set_title(f"layer {c + 1}: std {a.std():.2g}", fontsize=7)
                if c == 0:
                    ax.set_ylabel(name, fontsize=8)
        batch, width = acts[activation, next(iter(INITS))][0].shape
        fig.suptitle(f"{activation}: activation histograms, {DEPTH} layers of {width} units, {batch} inputs")
        fig.tight_layout()
        figs[f"histograms_{activation}"] = fig
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, activation in zip(axes, ACTIVATIONS, strict=True):
        for name in INITS:
            ax.semilogy(
                range(1, DEPTH + 1), _series(measurements, activation, name, "std"), "o-", label=name, markersize=3
            )
        ax.set_title(f"{activation}: activation std per layer")
        ax.set_xlabel("layer")
        ax.legend(fontsize=7)
    fig.tight_layout()
    figs["std_per_layer"] = fig
    return figs


def run(scale: str) -> Reproduction:
    """Measures, checks the claims on the rows it returns and draws the histograms (see the module docstring)."""
    rows, acts = measure(scale)
    return Reproduction("init-histograms", scale, claims(rows, scale), rows, figures(rows, acts))
