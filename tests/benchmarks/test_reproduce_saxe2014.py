"""saxe2014: each claim checker on constructed measurements (and failing cases), and smoke end to end."""

import math

import numpy as np
import pandas as pd
import pytest

from initbench.benchmarks import cli
from initbench.benchmarks.analysis import theory
from initbench.benchmarks.reproduce import saxe2014

WIDTH, DEPTHS, SEEDS = 64, (1, 2, 4, 8), 8


def constructed_spectra(gaussian_factor=1.0, orthogonal_error=1e-6):
    rows = []
    rng = np.random.default_rng(0)  # test data only
    for depth in DEPTHS:
        spread = gaussian_factor * theory.gaussian_product_spread([WIDTH] * depth, WIDTH)
        for seed in range(SEEDS):
            s2 = 1.0 + 0.01 * rng.standard_normal()
            s4 = (spread + 1.0) * s2**2 * (1.0 + 0.01 * rng.standard_normal())
            for init, values in (
                ("gaussian", {"mean_s2": s2, "mean_s4": s4}),
                ("orthogonal", {"mean_s2": 1.0, "mean_s4": 1.0, "max_abs_s_minus_1": orthogonal_error}),
            ):
                for metric, v in values.items():
                    rows.append(
                        {
                            "part": "spectra",
                            "init": init,
                            "seed": seed,
                            "depth": depth,
                            "width": WIDTH,
                            "metric": metric,
                            "value": v,
                        }
                    )
            if seed == 0 and depth in (1, 8):
                for v in np.linspace(0.0, 2.0, 16):
                    rows.append(
                        {
                            "part": "spectra",
                            "init": "gaussian",
                            "seed": 0,
                            "depth": depth,
                            "width": WIDTH,
                            "metric": "singular_value",
                            "value": v,
                        }
                    )
    return pd.DataFrame(rows)


def constructed_training(times=None, budget=100):
    times = times or {"orthogonal": {2: 10, 32: 15}, "gaussian": {2: 12, 32: math.inf}}
    rows = []
    lrs = (0.01, 0.1)
    for init, per_depth in times.items():
        for depth, steps in per_depth.items():
            for seed in range(2):
                for lr in lrs:
                    hit = steps if lr == 0.1 else 3 * steps  # the better rate is 0.1
                    final = 0.01 if math.isfinite(hit) else 0.5
                    for metric, v in (("steps_to_criterion", hit), ("final_loss", final)):
                        rows.append(
                            {
                                "part": "training",
                                "init": init,
                                "seed": seed,
                                "depth": depth,
                                "width": 16,
                                "lr": lr,
                                "step": None,
                                "metric": metric,
                                "value": float(v),
                            }
                        )
                for step in range(budget):
                    v = 1.0 if step < steps else 0.01
                    rows.append(
                        {
                            "part": "training",
                            "init": init,
                            "seed": seed,
                            "depth": depth,
                            "width": 16,
                            "lr": 0.1,
                            "step": step,
                            "metric": "loss",
                            "value": v,
                        }
                    )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("spectra", "times", "failing"),
    [
        ({}, None, set()),
        ({"gaussian_factor": 0.5}, None, {"Gaussian product spread grows linearly"}),
        ({"orthogonal_error": 1e-2}, None, {"orthogonal product is an isometry"}),
        (
            {},
            {"orthogonal": {2: 10, 32: 25}, "gaussian": {2: 12, 32: math.inf}},
            {"orthogonal learning time is depth-independent"},
        ),
        # a finite delay relative to shallow nets, then flat: depth-independent (the measured shape)
        ({}, {"orthogonal": {2: 6, 16: 25, 32: 22}, "gaussian": {2: 6, 16: 60, 32: math.inf}}, set()),
        (
            {},
            {"orthogonal": {2: 6, 16: 25, 32: 40}, "gaussian": {2: 6, 16: 60, 32: math.inf}},
            {"orthogonal learning time is depth-independent"},
        ),  # still growing from 16 to 32
        ({}, {"orthogonal": {2: 10, 32: 15}, "gaussian": {2: 12, 32: 20}}, {"Gaussian learning time grows with depth"}),
        (
            {},
            {"orthogonal": {2: 10, 32: math.inf}, "gaussian": {2: 12, 32: math.inf}},
            {"orthogonal learning time is depth-independent", "Gaussian learning time grows with depth"},
        ),
    ],
)
def test_claims_on_constructed_measurements(spectra, times, failing):
    rows = pd.concat([constructed_spectra(**spectra), constructed_training(times)], ignore_index=True)
    claims = saxe2014.claims(rows, "cpu")
    assert len(claims) == 4
    assert {c.name for c in claims if not c.passed} == failing, [(c.name, c.measured) for c in claims]


def test_learning_times_pick_the_best_rate_and_break_ties_by_loss():
    times = saxe2014.learning_times(constructed_training()).set_index(["init", "depth"])
    assert times.loc[("orthogonal", 2), "steps"] == 10 and times.loc[("orthogonal", 2), "lr"] == 0.1
    assert math.isinf(times.loc[("gaussian", 32), "steps"])


def test_steps_to_criterion():
    assert saxe2014.steps_to(np.array([1.0, 0.5, 0.04, 0.01])) == 2
    assert saxe2014.steps_to(np.array([1.0, 0.5, 0.2])) == math.inf
    assert saxe2014.steps_to(np.array([np.nan, 0.01])) == math.inf  # diverged first


def test_spread_standard_error_matches_a_direct_computation():
    table = saxe2014.spread_table(constructed_spectra()).set_index("depth")
    assert (table["seeds"] == SEEDS).all()
    assert np.allclose(table["spread"], table["theory"], rtol=0.05)
    assert (table["se"] > 0).all()


@pytest.mark.slow  # compiles the draws (a few seconds)
def test_orthogonal_products_are_isometric_and_gaussian_ones_are_not():
    import jax

    for init, isometric in (("orthogonal", True), ("gaussian", False)):
        ws = saxe2014._draw(init, jax.random.key(0), 4, 16, 2)
        s = np.linalg.svd(np.asarray(saxe2014._products(ws, (4,)), np.float64)[0, 0], compute_uv=False)
        assert (np.abs(s - 1).max() < 1e-5) == isometric


@pytest.mark.slow  # compiles the draws (a few seconds)
def test_drawing_seed_by_seed_gives_the_matrices_of_one_batched_draw():
    """The spectra draw one seed at a time (memory at full scale); the matrices are those of one vmapped draw."""
    import jax

    for init in ("gaussian", "orthogonal"):
        init_fn = saxe2014.INITS[init](16)
        keys = saxe2014._keys(jax.random.key(3), 5, 3)
        batched = jax.jit(jax.vmap(jax.vmap(lambda k, f=init_fn: f(k, (16, 16)))))(keys)
        np.testing.assert_array_equal(np.asarray(saxe2014._draw(init, jax.random.key(3), 5, 16, 3)), batched)
        np.testing.assert_array_equal(np.asarray(saxe2014._draw_seed(init, keys[1], 16)), batched[1])


def test_the_full_scale_stays_in_the_wide_net_regime_and_refines_the_grid():
    width, depths, _, hist = saxe2014.SIZES["full"]["spectra"]
    assert max(depths) <= width // 8 and set(hist) <= set(depths)
    cpu_lrs, full_lrs = saxe2014.SIZES["cpu"]["training"][-1], saxe2014.SIZES["full"]["training"][-1]
    assert (min(full_lrs), max(full_lrs)) == pytest.approx((min(cpu_lrs), max(cpu_lrs)))
    assert set(np.round(cpu_lrs, 12)) <= set(np.round(full_lrs, 12))  # the cpu grid's rates, and one between each


@pytest.mark.slow
def test_saxe2014_end_to_end_at_smoke_scale(tmp_path):
    code = cli.main(["reproduce", "saxe2014", "--scale", "smoke", "--out", str(tmp_path)])
    assert code in (0, 1)
    folder = tmp_path / "saxe2014"
    verdicts = pd.read_csv(folder / "verdicts.csv").set_index("name")
    assert len(verdicts) == 4 and verdicts.loc["orthogonal product is an isometry", "passed"]
    rows = pd.read_parquet(folder / "measurements.parquet")
    assert set(rows["part"]) == {"spectra", "training"}
    for name in ("spectra", "learning_time"):
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
