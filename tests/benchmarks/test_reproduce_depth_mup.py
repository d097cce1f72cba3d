"""depth-mup: each claim on constructed rows (able to fail), the runs' setup, and smoke end to end."""

import math

import numpy as np
import pandas as pd
import pytest

from initbench.benchmarks.reproduce import depth_mup as d

DEPTHS = (1, 2, 4, 8)
GRID = range(-12, -4)


def grid_rows(std_center, dmup_center, *, seeds=3, noise=0.05, gain=0.01, diverge_above=None):
    """Quadratic loss curves in log2 lr: standard's vertex at ``std_center(depth)``, Depth-muP's at ``dmup_center``."""
    rng = np.random.default_rng(0)
    rows = []
    for arm, center in (("standard", std_center), ("depth-mup", dmup_center)):
        for depth in DEPTHS:
            for seed in range(seeds):
                c = center(depth) + noise * rng.standard_normal()
                for k in GRID:
                    loss = 0.4 - gain * math.log2(depth) + 0.01 * (k - c) ** 2
                    if diverge_above is not None and arm == "depth-mup" and depth == DEPTHS[-1] and k >= diverge_above:
                        loss = math.nan
                    for step in (0, 100):
                        rows.append(
                            {"arm": arm, "depth": depth, "log2_lr": k, "seed": seed, "step": step}
                            | {"train_loss": 2.3 if step == 0 else loss}
                        )
    return pd.DataFrame(rows)


def verdicts(rows):
    return {c.name: c.passed for c in d.claims(rows, "cpu")}


def drifts(depth):
    return -8.0 - math.log2(depth)  # the optimum / L: one grid step per doubling


def test_the_claims_hold_when_standard_drifts_and_depth_mup_stays():
    got = verdicts(grid_rows(drifts, lambda depth: -8.0))
    assert len(got) == 4 and all(got.values()), got


@pytest.mark.parametrize(
    ("rows", "failing"),
    [
        (lambda: grid_rows(lambda L: -8.0, lambda L: -8.0), "standard: the optimal learning rate moves with depth"),
        (lambda: grid_rows(drifts, drifts), "Depth-muP: the optimal learning rate stays within one grid step"),
        (lambda: grid_rows(drifts, drifts), "Depth-muP transfers the learning rate where the standard net does not"),
        (  # noise: the equivalence test cannot confirm "within one step"
            lambda: grid_rows(drifts, lambda L: -8.0, noise=1.5),
            "Depth-muP: the optimal learning rate stays within one grid step",
        ),
        (  # Depth-muP's optimum runs off the grid
            lambda: grid_rows(drifts, lambda L: -4.0),
            "Depth-muP: the optimal learning rate stays within one grid step",
        ),
        (
            lambda: grid_rows(drifts, lambda L: -8.0, gain=-0.02),
            "deeper is never worse at the shared optimum (Depth-muP)",
        ),
        (  # a deep run that diverges at the shared rate
            lambda: grid_rows(drifts, lambda L: -8.0, diverge_above=-8),
            "deeper is never worse at the shared optimum (Depth-muP)",
        ),
    ],
)
def test_each_claim_can_fail(rows, failing):
    assert verdicts(rows())[failing] is False


def test_the_runs_are_the_setup_and_the_depth_rule_is_the_plain_net_at_the_base_depth():
    std = d.specs("cpu", "standard", (d.BASE_DEPTH, 8), (-9,), range(1))
    dmup = d.specs("cpu", "depth-mup", (d.BASE_DEPTH, 8), (-9,), range(1))
    for s in std + dmup:
        s.validate()
        assert s.train.optimizer == "adam" and s.model.family == "resnet" and dict(s.model.extra)["scan"]
    assert std[0].architecture == dmup[0].architecture and std[0].cohort_key == dmup[0].cohort_key
    assert dmup[0].scale_rules("lr_scale") == std[0].scale_rules("lr_scale") == ()
    r = 8 / d.BASE_DEPTH
    assert dict(dmup[1].architecture)["branch_multiplier"] == pytest.approx(r**-0.5)
    assert dict(dmup[1].scale_rules("lr_scale"))["block*/conv_a/*"] == pytest.approx(r**-0.5)
    assert "branch_multiplier" not in dict(std[1].architecture) and std[1].scale_rules("lr_scale") == ()


@pytest.mark.slow  # smoke scale on digits
def test_end_to_end_at_smoke_scale():
    from initbench.benchmarks.reproduce import reproduce

    result = reproduce("depth-mup", "smoke")
    m = result.measurements
    assert len(result.claims) == 4 and set(m["arm"]) == set(d.ARMS) and m["train_loss"].notna().any()
    base = m[(m["depth"] == d.BASE_DEPTH) & (m["step"] == m["step"].max())]
    # at the base depth the two arms are one network and one program: bitwise
    a = base[base["arm"] == "standard"].sort_values(["log2_lr", "seed"])["train_loss"].to_numpy()
    b = base[base["arm"] == "depth-mup"].sort_values(["log2_lr", "seed"])["train_loss"].to_numpy()
    np.testing.assert_array_equal(a, b)
    assert d.claims(m, "smoke") == result.claims
