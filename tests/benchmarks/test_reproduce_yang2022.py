"""yang2022-coord: the claims on constructed verdict tables (each able to fail), on constructed measurements, and
the whole run at smoke scale."""

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
    return {c.name: c.passed for c in y22.verdict_claims(both, "cpu")}


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


def measurements(sp_exponent):
    """Rows of :func:`y22.measure`'s form: muP flat in width, SP's head growing as width^sp_exponent from step 2."""
    rows = []
    for model in ("mlp", "resnet"):
        widths, seeds = y22.SIZES["cpu"][model]
        for arm in ("mup", "sp"):
            for width in widths:
                for seed in range(seeds):
                    for step in range(4):
                        for layer in ("head", "layer_000"):
                            grows = arm == "sp" and layer == "head" and step >= 2
                            value = (width / widths[0]) ** sp_exponent if grows else 1.0 + 0.01 * seed
                            rows.append(
                                {"model_kind": model, "arm": arm, "width": width, "seed": seed, "step": step}
                                | {"layer": layer, "value": value * (1.0 + 0.001 * seed)}
                            )
    return pd.DataFrame(rows, columns=y22.COLUMNS)


@pytest.mark.parametrize(("sp_exponent", "sp_passes"), [(1.0, True), (0.0, False)])
def test_claims_from_measurements(sp_exponent, sp_passes):
    rows = measurements(sp_exponent)
    got = y22.claims(rows, "cpu")
    assert got == y22.verdict_claims(y22.verdict_table(rows), "cpu")
    assert {c.name: c.passed for c in got} == {
        "muP is width-stable (MLP)": True,
        "SP with Adam is not (MLP)": sp_passes,
        "muP is width-stable (CNN (ResNet))": True,
        "SP with Adam is not (CNN (ResNet))": sp_passes,
    }


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
    assert y22.claims(m, "smoke") == result.claims  # the verdicts are a function of the stored rows
