"""yang2022-transfer, wider-is-better: the optimum estimator, each claim on constructed rows (able to fail), smoke."""

import math

import numpy as np
import pandas as pd
import pytest

from initbench.benchmarks.reproduce import _transfer
from initbench.benchmarks.reproduce import yang2022_transfer as t

WIDTHS = (64, 128, 256, 512, 1024)
GRID = range(-14, -3)


@pytest.mark.parametrize("center", [-9.0, -8.7, -8.3, -11.5, -5.01])
def test_optimum_is_the_vertex_of_an_exact_parabola(center):
    x = np.arange(-14, -3)
    got, edge = _transfer.optimum(x, 0.3 + 0.01 * (x - center) ** 2)
    assert not edge and got == pytest.approx(center, abs=1e-9)


def test_optimum_at_the_edge_and_with_diverged_runs():
    x = [-4, -3, -2, -1]
    assert _transfer.optimum(x, [1.0, 2.0, 3.0, 4.0]) == (-4.0, True)
    assert _transfer.optimum(x, [4.0, 3.0, 2.0, 1.0]) == (-1.0, True)
    assert _transfer.optimum(x, [3.0, 1.0, math.nan, math.nan]) == (-3.0, False)  # diverged neighbour: the grid point
    assert math.isnan(_transfer.optimum(x, [math.nan] * 4)[0])


def grid_rows(sp_center, mup_center, *, seeds=4, noise=0.05, widths=WIDTHS, mup_gain=0.01, diverge_above=None):
    """Quadratic loss curves in log2 lr: SP's vertex at ``sp_center(width)``, muP's at ``mup_center(width)``."""
    rng = np.random.default_rng(0)
    rows = []
    for arm, center in (("sp", sp_center), ("mup", mup_center)):
        for w in widths:
            for seed in range(seeds):
                c = center(w) + noise * rng.standard_normal()
                for k in GRID:
                    loss = 0.4 - mup_gain * math.log2(w / 64) + 0.01 * (k - c) ** 2
                    if diverge_above is not None and arm == "mup" and w == widths[-1] and k >= diverge_above:
                        loss = math.nan
                    for step in (0, 200):
                        rows.append(
                            {"arm": arm, "width": w, "log2_lr": k, "seed": seed, "step": step}
                            | {"train_loss": 2.3 if step == 0 else loss}
                        )
    return pd.DataFrame(rows)


def verdicts(rows):
    return {c.name: c.passed for c in t.transfer_claims(rows, "cpu")}


def sp_moves(w):
    return -8.0 - math.log2(w / 64)


def test_transfer_claims_hold_when_sp_moves_and_mup_stays():
    got = verdicts(grid_rows(sp_moves, lambda w: -8.0))
    assert all(got.values()), got


@pytest.mark.parametrize(
    ("rows", "failing"),
    [
        (lambda: grid_rows(lambda w: -8.0, lambda w: -8.0), "SP: the optimal learning rate moves with width"),
        (lambda: grid_rows(sp_moves, sp_moves), "muP: the optimal learning rate stays within one grid step"),
        (lambda: grid_rows(sp_moves, sp_moves), "muP transfers the learning rate where SP does not"),
        (  # noise: the equivalence test cannot confirm "within one step"
            lambda: grid_rows(sp_moves, lambda w: -8.0, noise=1.5),
            "muP: the optimal learning rate stays within one grid step",
        ),
        (  # muP's optimum runs off the grid
            lambda: grid_rows(sp_moves, lambda w: -3.0),
            "muP: the optimal learning rate stays within one grid step",
        ),
        (
            lambda: grid_rows(sp_moves, lambda w: -8.0, mup_gain=-0.02),
            "wider is never worse at the shared optimum (muP)",
        ),
    ],
)
def test_each_transfer_claim_can_fail(rows, failing):
    assert verdicts(rows())[failing] is False


def test_a_diverged_wide_run_at_the_shared_optimum_is_worse():
    got = verdicts(grid_rows(sp_moves, lambda w: -8.0, diverge_above=-8))
    assert got["wider is never worse at the shared optimum (muP)"] is False


def wider_rows(mup_slope, sp_widest_penalty, *, widths=(64, 128, 256, 512, 1024, 2048), seeds=5):
    rng = np.random.default_rng(1)
    rows = []
    for arm in ("sp", "mup"):
        for w in widths:
            for seed in range(100, 100 + seeds):
                for step in (0, 50, 100, 150, 200):
                    slope = mup_slope if arm == "mup" else -0.01
                    loss = 1.0 - step / 400 + slope * math.log2(w / 64) + 0.001 * rng.standard_normal()
                    if arm == "sp" and w == widths[-1]:
                        loss += sp_widest_penalty
                    rows.append(
                        {"arm": arm, "width": w, "log2_lr": -9, "seed": seed, "step": step, "phase": "transfer"}
                        | {"train_loss": 2.3 if step == 0 else loss}
                    )
    return pd.DataFrame(rows)


def wider_verdicts(rows):
    return {c.name: c.passed for c in t.wider_claims(rows, "cpu")}


def test_wider_claims_hold_and_each_can_fail():
    assert all(wider_verdicts(wider_rows(-0.01, 0.1)).values())
    assert wider_verdicts(wider_rows(0.0, 0.1))["muP: wider is better throughout training"] is False
    assert wider_verdicts(wider_rows(+0.01, 0.1))["muP: wider is better throughout training"] is False
    assert wider_verdicts(wider_rows(-0.01, 0.0))["SP: wider is not better at the transferred rate"] is False


def test_one_late_evaluation_where_wider_is_not_better_fails_the_claim():
    rows = wider_rows(-0.01, 0.1)
    late = (rows["arm"] == "mup") & (rows["step"] == 200)
    rows.loc[late, "train_loss"] = 0.5 + 0.001 * np.random.default_rng(2).standard_normal(late.sum())
    assert wider_verdicts(rows)["muP: wider is better throughout training"] is False


def test_best_rate_is_the_lowest_mean_loss_and_a_diverged_seed_rules_a_rate_out():
    rows = pd.DataFrame(
        [
            {"log2_lr": k, "seed": s, "step": 200, "train_loss": loss}
            for k, losses in ((-10, (0.5, 0.6)), (-9, (0.4, 0.45)), (-8, (0.3, math.nan)))
            for s, loss in enumerate(losses)
        ]
    )
    assert t.best_rate(rows) == -9


def test_the_runs_are_the_papers_grid_and_sp_equals_mup_at_the_base_width():
    sp = t.specs("cpu", "sp", (64, 1024), (-9,), range(1), 200)
    mup = t.specs("cpu", "mup", (64, 1024), (-9,), range(1), 200)
    for s in sp + mup:
        s.validate()
        assert s.train.optimizer == "adam" and s.model.depth == 2 and s.data.name == "fashion_mnist"
    base_sp, base_mup = sp[0], mup[0]
    for field in ("init_scale", "lr_scale"):
        assert base_sp.scale_rules(field) == base_mup.scale_rules(field) == ()
    assert dict(mup[1].scale_rules("lr_scale"))["hidden"] == pytest.approx(1 / 16)


@pytest.mark.slow  # both reproductions at smoke scale on digits (about 40 s)
@pytest.mark.parametrize("name", ["yang2022-transfer", "wider-is-better"])
def test_end_to_end_at_smoke_scale(name):
    from initbench.benchmarks.reproduce import reproduce

    result = reproduce(name, "smoke")
    m = result.measurements
    assert len(result.claims) == (4 if name == "yang2022-transfer" else 2)
    assert set(m["arm"]) == {"sp", "mup"} and m["train_loss"].notna().any()
    base = m[(m["width"] == 16) & (m["step"] == m["step"].max())]
    if name == "yang2022-transfer":  # the two parametrizations are one model at the base width: bitwise
        sp = base[base["arm"] == "sp"].sort_values(["log2_lr", "seed"])["train_loss"].to_numpy()
        mup = base[base["arm"] == "mup"].sort_values(["log2_lr", "seed"])["train_loss"].to_numpy()
        np.testing.assert_array_equal(sp, mup)
    # claims re-derived from the measurements alone agree with the run's
    again = t.transfer_claims(m, "smoke") if name == "yang2022-transfer" else t.wider_claims(m, "smoke")
    assert [c.passed for c in again] == [c.passed for c in result.claims]
