"""xiao2018: each claim checker on constructed measurements (and failing cases), and smoke end to end."""

import math

import numpy as np
import pandas as pd
import pytest

from initbench.benchmarks import cli
from initbench.benchmarks.reproduce import xiao2018

CHANNELS, DEPTH, SEEDS = 16, 8, 4


def constructed_operator(delta_error=1e-7, gaussian_spread=1.03):
    rows = []
    for seed in range(SEEDS):
        wobble = 1.0 + 0.002 * (seed - 1.5)
        for kind, values in (
            ("delta_orthogonal", {"mean_s2": 1.0, "mean_s4": 1.0, "max_abs_s_minus_1": delta_error}),
            ("gaussian", {"mean_s2": 1.0, "mean_s4": (gaussian_spread + 1.0) * wobble, "max_abs_s_minus_1": 1.0}),
        ):
            for metric, v in values.items():
                rows.append(
                    {
                        "part": "operator",
                        "init": kind,
                        "seed": seed,
                        "depth": 1,
                        "channels": CHANNELS,
                        "metric": metric,
                        "value": v,
                    }
                )
    for v in (0.5, 1.0, 1.5):
        rows.append(
            {
                "part": "operator",
                "init": "gaussian",
                "seed": 0,
                "depth": 1,
                "channels": CHANNELS,
                "metric": "singular_value",
                "value": v,
            }
        )
    return pd.DataFrame(rows)


def constructed_jacobian(delta_factor=1.0, gaussian_spread=None):
    theory = xiao2018.mean_field_spread(DEPTH)
    rows = []
    for kind in ("delta_orthogonal", "gaussian"):
        for depth in range(1, DEPTH + 1):
            target = theory[kind][depth - 1] * (delta_factor if kind == "delta_orthogonal" else 1.0)
            if kind == "gaussian" and gaussian_spread is not None:
                target = gaussian_spread
            for seed in range(SEEDS):
                s4 = (target + 1.0) * (1.0 + 1e-3 * (seed - 1.5) * (kind == "gaussian" or depth > 1))
                for metric, v in (("mean_s2", 1.0), ("mean_s4", s4)):
                    rows.append(
                        {
                            "part": "jacobian",
                            "init": kind,
                            "seed": seed,
                            "depth": depth,
                            "channels": CHANNELS,
                            "metric": metric,
                            "value": v,
                        }
                    )
    return pd.DataFrame(rows)


def constructed_training(reach=None, steps=500):
    reach = reach or {"delta_orthogonal": 200, "gaussian": math.inf}
    rows = []
    for kind, at in reach.items():
        for seed in range(2):
            for step in range(0, steps + 1, 50):
                acc = 0.95 if step >= at else 0.5
                for metric, v in (("train_accuracy", acc), ("train_loss", 2.3 * (1 - acc))):
                    rows.append(
                        {
                            "part": "training",
                            "init": kind,
                            "seed": seed,
                            "depth": 32,
                            "channels": 8,
                            "step": step,
                            "metric": metric,
                            "value": v,
                        }
                    )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def theory_ready():
    xiao2018.mean_field_spread(DEPTH)


@pytest.mark.parametrize(
    ("operator", "jacobian", "training", "failing"),
    [
        ({}, {}, None, set()),
        ({"delta_error": 1e-3}, {}, None, {"delta-orthogonal convolution is an isometry"}),
        ({"gaussian_spread": 0.5}, {}, None, {"Gaussian convolution has a broad spectrum"}),
        ({}, {"delta_factor": 2.0}, None, {"delta-orthogonal tanh CNN keeps dynamical isometry"}),
        ({}, {"gaussian_spread": 0.05}, None, {"Gaussian tanh CNN loses it"}),
        ({}, {}, {"delta_orthogonal": math.inf, "gaussian": math.inf}, {"delta-orthogonal trains faster"}),
        ({}, {}, {"delta_orthogonal": 300, "gaussian": 200}, {"delta-orthogonal trains faster"}),
    ],
)
def test_claims_on_constructed_measurements(theory_ready, operator, jacobian, training, failing):
    rows = pd.concat(
        [constructed_operator(**operator), constructed_jacobian(**jacobian), constructed_training(training)],
        ignore_index=True,
    )
    claims = xiao2018.claims(rows, "smoke")
    assert len(claims) == 5
    assert {c.name for c in claims if not c.passed} == failing, [(c.name, c.measured) for c in claims]


def test_steps_to_accuracy_counts_a_missing_seed_as_infinite():
    frame = constructed_training({"delta_orthogonal": 200, "gaussian": 100})
    frame.loc[(frame["init"] == "gaussian") & (frame["seed"] == 1) & (frame["metric"] == "train_accuracy"), "value"] = (
        0.1
    )
    steps = xiao2018.steps_to_accuracy(frame)
    assert steps["delta_orthogonal"] == 200 and math.isinf(steps["gaussian"])


@pytest.mark.slow  # compiles a few small programs
def test_conv_operator_is_the_circular_convolution_and_its_singular_values_match_theory():
    import jax
    import jax.numpy as jnp

    from initbench import inits
    from initbench.benchmarks.analysis import theory

    kernel = inits.normal(0.3)(jax.random.key(0), (3, 3, 2, 3))
    x = jax.random.normal(jax.random.key(1), (1, 4, 4, 2))
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
    direct = jax.lax.conv_general_dilated(padded, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    via_matrix = x.reshape(1, -1) @ xiao2018.conv_operator(kernel, 4)
    np.testing.assert_allclose(np.asarray(via_matrix).reshape(direct.shape), np.asarray(direct), rtol=1e-5, atol=1e-5)
    s = np.linalg.svd(np.asarray(xiao2018.conv_operator(kernel, 4), np.float64), compute_uv=False)
    expected = theory.circular_conv_singular_values(np.asarray(kernel, np.float64), 4)
    np.testing.assert_allclose(np.sort(s)[::-1][: len(expected)], expected, rtol=1e-4, atol=1e-5)


def test_the_full_scale_is_wider_at_the_cpu_scales_depth_ratio_and_trains_as_cpu():
    cpu, full = xiao2018.SIZES["cpu"], xiao2018.SIZES["full"]
    (c_cpu, d_cpu, *_), (c_full, d_full, *_) = cpu["jacobian"], full["jacobian"]
    assert c_full > c_cpu and d_full / c_full == d_cpu / c_cpu
    assert full["operator"][0] == xiao2018.SIZES["paper"]["operator"][0]
    assert full["training"] == cpu["training"]  # said in the docstring and the gallery's data line


@pytest.mark.slow
def test_xiao2018_end_to_end_at_smoke_scale(tmp_path):
    code = cli.main(["reproduce", "xiao2018", "--scale", "smoke", "--out", str(tmp_path)])
    assert code in (0, 1)  # 100 steps decide nothing about training; the pipeline is what is tested
    folder = tmp_path / "xiao2018"
    verdicts = pd.read_csv(folder / "verdicts.csv").set_index("name")
    assert len(verdicts) == 5 and verdicts.loc["delta-orthogonal convolution is an isometry", "passed"]
    rows = pd.read_parquet(folder / "measurements.parquet")
    assert set(rows["part"]) == {"operator", "jacobian", "training"}
    for name in ("isometry", "training"):
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
