r"""``yang2022-coord``: the coordinate check of Yang et al. 2022, "Tensor Programs V" (muP), with Adam.

The paper's diagnostic (TP5 Sec. 7 and Fig. 5; microsoft/mup's ``get_coord_data``): train a model
for a few steps at one learning rate at several widths and plot the typical size of every layer's
output coordinates against width. Under the standard parametrization (SP) with Adam some layers'
coordinates grow with width after a step or two (the updates are too large for wide layers);
under muP every layer's coordinates keep their size. The paper shows a Transformer; here (a
substitute that fits 2 CPU cores) an MLP (3 hidden ReLU layers, widths 128..2048) and a CNN (the
library's ResNet with BatchNorm, two stages of one block, widths 16..128 channels) on digits.

Setup, both models: He init, Adam at learning rate 1e-2, batch 128, 3 steps, 5 seeds; muP and SP
through ``parametrization`` (base width = the smallest width); the readout starts at zero in both
arms (``init_scale = {readout = 0}``, microsoft/mup's ``readout_zero_init``: a random readout's
width^-1/2 start under muP is a transient the check is not about). :mod:`initbench.benchmarks.coord`
measures (mean |x| per layer on one fixed batch after each step) and judges (slope of log size
against log width per seed, Student-t 95% interval: ``width-stable`` within +-1/4).

Claims (criteria = ``coord``'s verdicts, fixed in that module before this reproduction ran):

* muP keeps every layer width-stable (MLP; CNN): every (layer, step 1..3) verdict ``width-stable``;
* SP with Adam does not (MLP; CNN): at step 2 or 3 some layer's verdict is ``grows`` or
  ``diverged``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from initbench.benchmarks.reproduce import Claim, Reproduction

SIZES = {
    "smoke": {"mlp": ((32, 64, 128), 2), "resnet": ((8, 16), 2)},
    "cpu": {"mlp": ((128, 256, 512, 1024, 2048), 5), "resnet": ((16, 32, 64, 128), 5)},
    "paper": {"mlp": ((256, 512, 1024, 2048, 4096, 8192), 5), "resnet": ((32, 64, 128, 256, 512), 5)},
}
PARAMETRIZATIONS = ("mup", "sp")
LR, STEPS, BATCH = 1e-2, 3, 128


def specs(scale: str, model: str, name: str) -> list:
    """The runs of one arm: every width x seed."""
    from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options

    widths, seeds = SIZES[scale][model]
    if model == "mlp":
        make = lambda w: ModelSpec("mlp", "relu", 3, w)  # noqa: E731
    else:
        make = lambda w: ModelSpec("resnet", "relu", None, w, options(blocks=(1, 1)))  # noqa: E731
    par: Any = {"name": name, "base_width": widths[0]} if name != "sp" else {"name": "sp"}  # RunSpec canonicalizes
    return [
        RunSpec(
            "yang2022-coord",
            model,
            make(w),
            InitSpec("he_normal", scale=options(readout=0.0)),
            DataSpec("digits", BATCH),
            TrainSpec("adam", lr=LR, steps=STEPS, eval_every=1),
            seed,
            parametrization=par,
        )
        for w in widths
        for seed in range(seeds)
    ]


COLUMNS = ["model_kind", "arm", "width", "seed", "step", "layer", "value"]  # the stored measurements


def measure(scale: str) -> pd.DataFrame:
    """The coordinate rows of every (model, parametrization): ``coord.measure``'s rows with model_kind, arm."""
    from initbench.benchmarks import coord, data

    ds = data.load("digits")
    rows = []
    for model in SIZES[scale]:
        for name in PARAMETRIZATIONS:
            arm = specs(scale, model, name)
            for s in arm:
                s.validate()
            rows.append(coord.measure(arm, ds).assign(model_kind=model, arm=name))
    return pd.concat(rows, ignore_index=True)


def verdict_table(measurements: pd.DataFrame) -> pd.DataFrame:
    """``coord.verdicts`` of every (model, parametrization) in the measurements, with model_kind and arm."""
    from initbench.benchmarks import coord

    tables = [
        coord.verdicts(g).assign(model_kind=model, arm=arm)
        for (model, arm), g in measurements.groupby(["model_kind", "arm"], sort=False)
    ]
    return pd.concat(tables, ignore_index=True)


def claims(measurements: pd.DataFrame, scale: str) -> list[Claim]:
    """The claims of the module docstring, from the measurements alone (judged by ``coord.verdicts``)."""
    return verdict_claims(verdict_table(measurements), scale)


def verdict_claims(table: pd.DataFrame, scale: str) -> list[Claim]:
    """The claims of the module docstring, on the verdict table of :func:`verdict_table`."""
    out = []
    labels = {"mlp": "MLP", "resnet": "CNN (ResNet)"}
    for model, label in labels.items():
        widths = SIZES[scale][model][0]
        span = f"widths {widths[0]}..{widths[-1]}"
        mup = table[(table["model_kind"] == model) & (table["arm"] == "mup")]
        unstable = mup[mup["verdict"] != "width-stable"]
        measured = f"{len(mup) - len(unstable)}/{len(mup)} width-stable"
        if mup["slope"].notna().any():
            worst = mup.loc[mup["slope"].abs().idxmax()]
            measured += f"; largest |slope| {worst['slope']:+.2f} ({worst['layer']}, step {worst['step']})"
        if len(unstable):
            measured += "; not: " + ", ".join(f"{r.layer} step {r.step} {r.verdict}" for r in unstable.itertuples())
        out.append(
            Claim(
                f"muP is width-stable ({label})",
                "under muP every layer's coordinates keep their size as the width grows (Adam, a few steps)",
                f"every (layer, step 1..{STEPS}) width-stable: slope of log mean|x| vs log width within +-1/4 "
                f"(95% Student-t over seeds), {span}",
                measured,
                len(mup) > 0 and unstable.empty,
            )
        )
        sp = table[(table["model_kind"] == model) & (table["arm"] == "sp")]
        late = sp[(sp["step"] >= 2) & sp["verdict"].str.startswith(("grows", "diverged"))]
        out.append(
            Claim(
                f"SP with Adam is not ({label})",
                "under SP with Adam some layers' coordinates blow up with width after a few steps",
                f"at step 2 or 3 some layer grows with width (slope > 1/4 beyond its 95% interval) or diverges, {span}",
                (
                    f"{len(late)} (layer, step) cells grow or diverge at steps 2-3: "
                    + ", ".join(f"{r.layer} step {r.step} {r.verdict}" for r in late.head(6).itertuples())
                    if len(late)
                    else "no layer grows at steps 2-3: " + ", ".join(sorted(set(sp["verdict"])))
                ),
                not late.empty,
            )
        )
    return out


def figures(rows: pd.DataFrame) -> dict:
    """One coordinate-check figure per (model, parametrization), in the familiar form."""
    from initbench.benchmarks import coord

    out = {}
    for (model, arm), g in rows.groupby(["model_kind", "arm"]):
        fig = coord.figure(g)
        fig.suptitle(f"{arm} {model}: mean |x| per layer vs width (Adam lr {LR:g})", fontsize=9)
        fig.tight_layout()
        out[f"coord_{model}_{arm}"] = fig
    return out


def run(scale: str) -> Reproduction:
    """Measures, judges and draws; see the module docstring."""
    rows = measure(scale)
    measurements = rows[COLUMNS].copy()
    return Reproduction("yang2022-coord", scale, claims(measurements, scale), measurements, figures(measurements))
