"""yang2022-coord: the claims on constructed verdict tables (each able to fail), and the whole run at smoke scale."""

import pandas as pd
import pytest

from initbench.benchmarks.reproduce import yang2022_coord as y22


def table(mup_verdicts, sp_verdicts, model="mlp"):
    rows = []
    for arm, verdicts in (("mup", mup_verdicts), ("sp", sp_verdicts)):
        for step, verdict in enumerate(verdicts, 1):
            slope = 1.0 if verdict.startswith("grows") else 0.05
            rows.append(
                {"layer": "head", "step": step, "slope": slope, "half_width": 0.1, "seeds": 5, "verdict": verdict}
                | {"model_kind": model, "arm": arm}
            )
    return pd.DataFrame(rows)


def claims_for(mup, sp):
    both = pd.concat([table(mup, sp, "mlp"), table(mup, sp, "resnet")])
    return {c.name: c.passed for c in y22.claims(both, "cpu")}


def test_claims_hold_when_mup_is_stable_and_sp_grows_late():
    got = claims_for(["width-stable"] * 3, ["width-stable", "grows as width^0.80", "diverged at width 2048"])
    assert all(got.values()), got


@pytest.mark.parametrize(
    ("mup", "sp", "failing"),
    [
        (["width-stable", "inconclusive", "width-stable"], ["grows as width^1.00"] * 3, "muP is width-stable (MLP)"),
        (["width-stable"] * 3, ["grows as width^1.00", "width-stable", "width-stable"], "SP with Adam is not (MLP)"),
        (["shrinks as width^-0.50"] * 3, ["grows as width^1.00"] * 3, "muP is width-stable (CNN (ResNet))"),
    ],
)
def test_each_claim_can_fail(mup, sp, failing):
    got = claims_for(mup, sp)
    assert got[failing] is False


@pytest.mark.slow  # trains 2 models x 2 parametrizations at 2-3 widths (about a minute)
def test_yang2022_coord_end_to_end_at_smoke_scale():
    from initbench.benchmarks.reproduce import reproduce

    result = reproduce("yang2022-coord", "smoke")
    assert len(result.claims) == 4 and set(result.figures) == {
        "coord_mlp_mup",
        "coord_mlp_sp",
        "coord_resnet_mup",
        "coord_resnet_sp",
    }
    m = result.measurements
    assert set(m["arm"]) == {"mup", "sp"} and set(m["step"]) == {0, 1, 2, 3}
    assert m["value"].notna().any()
