"""mishkin2016: the claim checkers on constructed measurements (each can fail), and the pipeline end to end."""

import math

import pandas as pd
import pytest

from initbench.benchmarks import cli
from initbench.benchmarks.reproduce import mishkin2016

NETS = (("mlp", "tanh"), ("mlp", "relu"), ("cnn", "tanh"), ("cnn", "relu"))
LAYERS = 8


def constructed_lsuv(after=1.0, held_out=1.02, relu_iterations=1, tanh_iterations=1, relu_factor=0.5, converged=True):
    """LSUV as the paper says: unit variance everywhere, 1 iteration; orthonormal ReLU halving per layer."""
    rows = []
    for arch, activation in NETS:
        for seed in range(3):
            for layer in range(1, LAYERS + 1):
                before = 0.5 * relu_factor ** (layer - 1) if activation == "relu" else 0.39
                rows.append(
                    {
                        "architecture": arch,
                        "activation": activation,
                        "seed": seed,
                        "layer": layer,
                        "name": f"layer_{layer - 1:03d}/dense",
                        "iterations": relu_iterations if activation == "relu" else tanh_iterations,
                        "record_variance": after,
                        "converged": converged,
                        "variance_before": before,
                        "variance_after": after,
                        "variance_held_out": held_out,
                    }
                )
    return pd.DataFrame(rows)


def constructed_training(accuracy=None, loss=None):
    accuracy = accuracy or {"orthogonal": 0.10, "lsuv": 0.95, "he_normal": 0.95}
    loss = loss or {"orthogonal": 2.30, "lsuv": 0.001, "he_normal": 0.001}
    rows = []
    for init in accuracy:
        for seed, noise in enumerate((-0.004, 0.0, 0.004)):
            for step in (0, 300, 600):
                final = step == 600
                rows.append(
                    {
                        "init": init,
                        "seed": seed,
                        "depth": 20,
                        "step": step,
                        "metric": "test_accuracy",
                        "value": accuracy[init] + noise if final else 0.1,
                    }
                )
                rows.append(
                    {
                        "init": init,
                        "seed": seed,
                        "depth": 20,
                        "step": step,
                        "metric": "train_loss",
                        "value": loss[init] if final else math.log(10),
                    }
                )
    return pd.DataFrame(rows)


def failing(**changes):
    frames = {"lsuv_df": constructed_lsuv(), "training": constructed_training()}
    frames.update(changes)
    return {c.name for c in mishkin2016.claims(mishkin2016.tidy(**frames), "cpu") if not c.passed}


def test_every_claim_holds_on_the_papers_numbers():
    assert failing() == set()


def test_the_tidy_rows_give_back_both_frames():
    # reversed: the rows come back in the measured order, not sorted (the worst layer named is the first of equals)
    lsuv_df, training = constructed_lsuv().iloc[::-1].reset_index(drop=True), constructed_training()
    back_lsuv, back_training = mishkin2016.split(mishkin2016.tidy(lsuv_df, training))
    pd.testing.assert_frame_equal(back_lsuv, lsuv_df)
    pd.testing.assert_frame_equal(back_training, training)


def test_claims_report_their_numbers():
    rows = mishkin2016.tidy(constructed_lsuv(), constructed_training())
    by_name = {c.name: c for c in mishkin2016.claims(rows, "cpu")}
    assert "factor 0.500" in by_name["orthonormal alone loses the scale (ReLU)"].measured
    assert "LSUV 0.950 +- 0.002" in by_name["LSUV trains what orthonormal alone does not"].measured


@pytest.mark.parametrize(
    ("changes", "fails"),
    [
        ({"lsuv_df": constructed_lsuv(after=1.15)}, {"unit variance in every layer"}),
        ({"lsuv_df": constructed_lsuv(converged=False)}, {"unit variance in every layer"}),
        ({"lsuv_df": constructed_lsuv(held_out=0.85)}, {"the scale holds on another batch"}),
        ({"lsuv_df": constructed_lsuv(tanh_iterations=2)}, {"iterations: tanh ~1, ReLU a few"}),
        ({"lsuv_df": constructed_lsuv(relu_iterations=6)}, {"iterations: tanh ~1, ReLU a few"}),
        ({"lsuv_df": constructed_lsuv(relu_factor=0.6)}, {"orthonormal alone loses the scale (ReLU)"}),
        ({"lsuv_df": constructed_lsuv(relu_factor=1.0)}, {"orthonormal alone loses the scale (ReLU)"}),
    ],
)
def test_each_lsuv_claim_can_fail(changes, fails):
    assert failing(**changes) == fails


def test_training_claims_can_fail():
    # orthonormal trains too (its loss leaves ln 10): "does not train" fails although LSUV is ahead
    trains = constructed_training(loss={"orthogonal": 1.0, "lsuv": 0.001, "he_normal": 0.001})
    assert failing(training=trains) == {"LSUV trains what orthonormal alone does not"}
    # LSUV ahead of orthonormal by less than the interval's half-width (t(4) x 0.0033 = 0.009)
    close = constructed_training(accuracy={"orthogonal": 0.10, "lsuv": 0.105, "he_normal": 0.105})
    assert failing(training=close) == {"LSUV trains what orthonormal alone does not"}
    # LSUV clearly behind He
    behind = constructed_training(accuracy={"orthogonal": 0.10, "lsuv": 0.80, "he_normal": 0.95})
    assert failing(training=behind) == {"LSUV as good as He"}
    # a missing init is a failure that says so, not an error
    missing = constructed_training(accuracy={"orthogonal": 0.10, "lsuv": 0.95})
    claims = {c.name: c for c in mishkin2016.claims(mishkin2016.tidy(constructed_lsuv(), missing), "cpu")}
    assert not claims["LSUV as good as He"].passed and claims["LSUV as good as He"].measured == "not measured"


def test_a_nonfinite_variance_fails_the_unit_variance_claim():
    df = constructed_lsuv()
    df.loc[3, "variance_after"] = math.nan
    assert "unit variance in every layer" in failing(lsuv_df=df)


@pytest.mark.slow
def test_mishkin2016_end_to_end_at_smoke_scale(tmp_path):
    code = cli.main(["reproduce", "mishkin2016", "--scale", "smoke", "--out", str(tmp_path)])
    assert code in (0, 1)  # 10 training steps of a tiny net decide nothing about training
    verdicts = pd.read_csv(tmp_path / "mishkin2016" / "verdicts.csv").set_index("name")
    assert verdicts.loc["unit variance in every layer", "passed"]  # LSUV's rescaling holds at any size
    for name in ("lsuv_convergence", "training"):
        assert (tmp_path / "mishkin2016" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    rows = pd.read_parquet(tmp_path / "mishkin2016" / "measurements.parquet")
    assert set(rows["part"]) == {"lsuv", "training"}
    assert {"iterations", "variance_after", "variance_held_out"} <= set(rows["metric"])
