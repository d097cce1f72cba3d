"""lecun-selu: each claim checker on constructed measurements (and a failing case), and smoke end to end."""

import math

import numpy as np
import pandas as pd
import pytest

from initbench.benchmarks import cli
from initbench.benchmarks.reproduce import lecun_selu

WIDTH, BATCH, SEEDS = 500, 500, 2


def constructed_propagation(overrides=None):
    """Measurements equal to the mean-field curves, with the unit standard errors of 500 x 500 decorrelated inputs."""
    overrides = overrides or {}
    rows = []
    for activation in lecun_selu.ACTIVATIONS:
        mf = lecun_selu.mean_field(activation)
        per_metric = {
            "mean": np.concatenate([[0.0], mf["mean"]]),
            "variance": np.concatenate([[1.0], mf["variance"]]),
            "second_moment": np.concatenate([[1.0], mf["second_moment"]]),
        }
        for metric, fn in overrides.get(activation, {}).items():
            per_metric[metric] = fn(per_metric[metric].copy())
        scale = np.sqrt(np.concatenate([[1.0], mf["variance"]]))
        per_metric["se_mean"] = scale / math.sqrt(WIDTH * BATCH)
        se = math.sqrt(2.0 / (WIDTH * BATCH)) * per_metric["second_moment"]
        per_metric["se_variance"] = per_metric["se_second_moment"] = se
        for seed in range(SEEDS):
            for metric, values in per_metric.items():
                for layer, v in enumerate(values):
                    rows.append(
                        {
                            "part": "propagation",
                            "activation": activation,
                            "seed": seed,
                            "phase": None,
                            "layer": layer,
                            "step": None,
                            "metric": metric,
                            "value": float(v),
                        }
                    )
    return pd.DataFrame(rows).assign(width=WIDTH)


def constructed_training(top_variance=1.2, final_loss=0.1, depth=8):
    rows = []
    for phase in ("before", "after"):
        for layer in range(1, depth + 1):
            variance = top_variance if (phase == "after" and layer == depth) else 1.0
            for metric, v in (("mean", 0.01), ("variance", variance), ("omega", 0.0), ("tau", 1.0)):
                rows.append(
                    {
                        "part": "training",
                        "activation": "selu",
                        "seed": 0,
                        "phase": phase,
                        "layer": layer,
                        "step": None,
                        "metric": metric,
                        "value": v,
                    }
                )
    for step, v in enumerate(np.linspace(2.3, final_loss, 20)):
        rows.append(
            {
                "part": "training",
                "activation": "selu",
                "seed": 0,
                "phase": "train",
                "layer": None,
                "step": step,
                "metric": "loss",
                "value": float(v),
            }
        )
    return pd.DataFrame(rows)


def judged(prop, train):
    """The claims on one measurements frame, as run() returns it."""
    return lecun_selu.claims(pd.concat([prop, train], ignore_index=True), "cpu")


@pytest.fixture(scope="module")
def theory_ready():
    judged(constructed_propagation(), constructed_training())  # theory compiled once for the module


def _halve_from_layer_40(v):
    v[40:] = v[40:] * 0.5
    return v


@pytest.mark.parametrize(
    ("prop", "train", "failing"),
    [
        ({}, {}, set()),
        (
            {"selu": {"variance": lambda v: np.where(np.arange(len(v)) == 40, 1.3, v)}},
            {},
            {"SELU keeps mean 0, variance 1"},
        ),
        ({"selu": {"mean": lambda v: v + 0.1}}, {}, {"SELU keeps mean 0, variance 1"}),
        (
            {"scaled_tanh": {"variance": lambda v: np.where(np.arange(len(v)) > 0, 1.0, v)}},
            {},
            {"scaled tanh keeps a stable variance"},
        ),  # q* = 1 assumed instead of the theory's 0.38
        ({"relu": {"second_moment": lambda v: 0.6 ** np.arange(len(v))}}, {}, {"ReLU vanishes"}),
        ({"tanh": {"variance": _halve_from_layer_40}}, {}, {"tanh decays like 1/(2l)"}),
        ({}, {"top_variance": 1.9}, {"SELU self-normalizes under training"}),
        ({}, {"final_loss": 2.0}, {"SELU self-normalizes under training"}),  # did not train
    ],
)
def test_claims_on_constructed_measurements(theory_ready, prop, train, failing):
    claims = judged(constructed_propagation(prop), constructed_training(**train))
    assert len(claims) == 5
    assert {c.name for c in claims if not c.passed} == failing, [(c.name, c.measured) for c in claims]


def test_non_finite_measurement_fails_and_is_named(theory_ready):
    prop = constructed_propagation({"selu": {"variance": lambda v: np.where(np.arange(len(v)) == 10, np.nan, v)}})
    claims = {c.name: c for c in judged(prop, constructed_training())}
    assert not claims["SELU keeps mean 0, variance 1"].passed
    train = constructed_training(top_variance=math.inf)
    claim = judged(constructed_propagation(), train)[-1]
    assert not claim.passed and "8 outside" in claim.measured


def test_tolerance_grows_with_depth_and_shrinks_with_width(theory_ready):
    narrow = lecun_selu.tolerances(constructed_propagation(), "tanh")
    assert (np.diff(narrow["variance_se"].to_numpy() / narrow["variance_theory"].to_numpy()) > 0).all()
    wide = constructed_propagation()
    wide.loc[wide["metric"].str.startswith("se_"), "value"] /= 2.0  # 4x the units
    assert (
        lecun_selu.tolerances(wide, "selu")["variance_se"]
        < lecun_selu.tolerances(constructed_propagation(), "selu")["variance_se"]
    ).all()


@pytest.mark.slow  # compiles the propagation
def test_propagation_statistics_are_the_plain_computation():
    import jax

    x = jax.random.normal(jax.random.key(0), (32, 16))
    out = lecun_selu._propagate(x, jax.random.key(1), "selu", 3)
    a = np.asarray(x, np.float64)
    np.testing.assert_allclose(float(out["variance"][0]), a.var(), rtol=1e-5)
    from initbench import inits

    h = x
    for k in jax.random.split(jax.random.key(1), 3):
        h = jax.nn.selu(h @ inits.lecun_normal()(k, (16, 16)))
    h = np.asarray(h, np.float64)
    np.testing.assert_allclose(float(out["mean"][-1]), h.mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(out["se_mean"][-1]), h.mean(0).std() / 4.0, rtol=1e-4)


@pytest.mark.slow
def test_lecun_selu_end_to_end_at_smoke_scale(tmp_path):
    code = cli.main(["reproduce", "lecun-selu", "--scale", "smoke", "--out", str(tmp_path)])
    assert code in (0, 1)
    folder = tmp_path / "lecun-selu"
    verdicts = pd.read_csv(folder / "verdicts.csv").set_index("name")
    assert len(verdicts) == 5
    assert verdicts.loc["ReLU vanishes", "passed"]  # 2^-63 shows at any width
    rows = pd.read_parquet(folder / "measurements.parquet")
    assert set(rows["part"]) == {"propagation", "training"}
    for name in ("propagation", "training"):
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
