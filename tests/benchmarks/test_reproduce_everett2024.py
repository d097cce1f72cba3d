"""everett2024: each claim on constructed rows (able to fail), the sweep's rate context, and smoke end to end."""

import math

import numpy as np
import pandas as pd
import pytest

from initbench.benchmarks.reproduce import everett2024 as e

WIDTHS = (64, 128, 256, 512, 1024)
GRID = range(-6, 4)


def sweep_rows(exponent, *, seeds=4, noise=0.05, diverge_above=None):
    """Quadratic loss curves in the log2 multiplier, vertex at ``-exponent(layer) * log2(width / 64)`` plus noise."""
    rng = np.random.default_rng(0)
    rows = []
    for layer in e.LAYERS:
        for width in WIDTHS:
            for seed in range(seeds):
                c = -exponent(layer) * math.log2(width / WIDTHS[0]) + noise * rng.standard_normal()
                for j in GRID:
                    loss = 0.4 + 0.02 * (j - c) ** 2
                    if diverge_above is not None and j >= diverge_above:
                        loss = math.nan
                    rows.append(
                        {"phase": "sweep", "layer": layer, "width": width, "log2_lr": -9, "log2_mult": j}
                        | {"seed": 100 + seed, "step": 200, "train_loss": loss}
                    )
    return pd.DataFrame(rows)


def verdicts(rows):
    return [c.passed for c in e.claims(rows, "cpu")]


UNALIGNED = {"input": 0.0, "hidden": 0.6, "readout": 0.55}


def test_the_claims_hold_when_the_exponents_are_between_the_alignments_and_below_full():
    rows = sweep_rows(UNALIGNED.get)
    assert verdicts(rows) == [True, True, True, True]
    fits = e.exponents(e.optima(rows)).groupby("layer")["exponent"].mean()
    for layer, c in UNALIGNED.items():
        assert fits[layer] == pytest.approx(c, abs=0.05)


@pytest.mark.parametrize(
    ("exponent", "noise", "failing"),
    [
        ({"input": 0.5, "hidden": 0.6, "readout": 0.55}, 0.05, {0}),  # the input layer's rate scales
        ({"input": 0.0, "hidden": 0.0, "readout": 0.55}, 0.05, {1}),  # a global rate would transfer
        ({"input": 0.0, "hidden": 0.6, "readout": 1.6}, 0.05, {2, 3}),  # steeper than full alignment
        ({"input": 0.0, "hidden": 1.0, "readout": 1.0}, 0.05, {3}),  # full alignment exactly
        (UNALIGNED, 1.5, {0, 1, 2, 3}),  # noise: no interval is narrow enough
    ],
)
def test_each_claim_can_fail(exponent, noise, failing):
    got = verdicts(sweep_rows(exponent.get, noise=noise))
    assert {k for k, ok in enumerate(got) if not ok} == failing, got


def test_an_optimum_at_the_grids_edge_fails_its_layer():
    # hidden at c = 1.6 runs off the grid's low end at width 1024 (-6.4 < -6)
    got = verdicts(sweep_rows({"input": 0.0, "hidden": 1.6, "readout": 0.55}.get))
    assert got[1] is False and got[0] is True


def test_a_diverged_run_counts_as_an_infinite_loss():
    rows = sweep_rows(UNALIGNED.get, diverge_above=3)  # the top grid point diverges everywhere
    assert verdicts(rows) == [True, True, True, True]
    assert not e.optima(rows)["optimum"].isna().any()


def test_the_sweeps_rates_are_the_swept_layer_times_2_to_the_j_and_the_others_at_full_alignment():
    base = e.BASE["cpu"]
    assert e.predictions() == {
        "input": {"full": 0.0, "no": 0.0},
        "hidden": {"full": 1.0, "no": 0.5},
        "readout": {"full": 1.0, "no": 0.5},
    }
    spec = e.specs("cpu", 512, -9, 100, "hidden", 2)
    spec.validate()
    assert spec.train.optimizer == "adam" and spec.train.lr == 2.0**-9 and spec.model.width == 512
    assert dict(spec.train.lr_scale) == {"hidden": 4.0, "readout": 1 / 8}
    assert dict(e.specs("cpu", 512, -9, 100, "input", -1).train.lr_scale) == {
        "input": 0.5,
        "hidden": 1 / 8,
        "readout": 1 / 8,
    }
    # at the base width every layer's j = 0 is the same run (trained once), and it is the tuning run at that rate
    same = {e.specs("cpu", base, -9, 100, layer, 0).run_id for layer in e.LAYERS}
    assert same == {e.specs("cpu", base, -9, 100).run_id}
    # the widths share one program per width: the multipliers are per-member data
    keys = {e.specs("cpu", 256, -9, 100, layer, j).cohort_key for layer in e.LAYERS for j in (-1, 0, 1)}
    assert len(keys) == 1


@pytest.mark.slow  # smoke scale on digits
def test_end_to_end_at_smoke_scale():
    from initbench.benchmarks.reproduce import reproduce

    result = reproduce("everett2024", "smoke")
    m = result.measurements
    s = e.SETUP["smoke"]
    assert len(result.claims) == 4 and m["train_loss"].notna().any()
    sweep = m[(m["phase"] == "sweep") & (m["step"] == m["step"].max())]
    assert len(sweep) == len(e.LAYERS) * len(s["widths"]) * len(s["grid"]) * s["seeds"]
    # the base width's j = 0 is one run whichever layer is swept: identical losses
    base = sweep[(sweep["width"] == e.BASE["smoke"]) & (sweep["log2_mult"] == 0)]
    per_layer = base.pivot(index="seed", columns="layer", values="train_loss")
    for layer in e.LAYERS[1:]:
        np.testing.assert_array_equal(per_layer[layer], per_layer[e.LAYERS[0]])
    assert e.claims(m, "smoke") == result.claims
    assert set(result.figures) == {"exponents", "curves"}
