"""zhu2021: the claim checkers on constructed measurements (each can fail), and the pipeline end to end."""

import math

import pandas as pd
import pytest

from initbench.benchmarks import cli, experiments
from initbench.benchmarks.reproduce import zhu2021

RESCUE = "gradinit rescues the bad init"
BAD = "bad init trains poorly"
BOUND = "gradient norm bounded by gamma"
STEP = "first SGD step lowers the loss"


def constructed_train(good=0.97, bad=0.08, ours=0.97, noise=0.005, n_test=360):
    rows = []
    for arm, acc in (("good", good), ("bad", bad), ("gradinit", ours)):
        for seed, d in enumerate((-noise, 0.0, noise)):
            for step, frac in ((0, 0.0), (1500, 1.0)):
                rows.append(
                    {
                        "arm": arm,
                        "seed": seed,
                        "step": step,
                        "split": "test",
                        "metric": "accuracy",
                        "value": 0.1 + frac * (acc + d - 0.1),
                        "n_test": n_test,
                    }
                )
    return pd.DataFrame(rows)


def constructed_trace(gnorm=0.9, steps=50):
    return pd.DataFrame(
        [
            {"seed": s, "step": i, "objective": 22.0, "constraint": False, "gnorm": gnorm, "loss": 2.3}
            for s in range(3)
            for i in range(steps)
        ]
    )


def constructed_scales(alpha=2.0, layers=4):
    paths = [f"layer_{i:03d}/dense/kernel" for i in range(layers)] + ["head/dense/kernel"]
    return pd.DataFrame([{"seed": s, "path": p, "alpha": alpha} for s in range(3) for p in paths])


def constructed_first(gnorm_after=0.8, decrease_before=1e-4, decrease_after=0.05):
    rows = []
    for seed in range(3):
        rows.append(
            {
                "seed": seed,
                "stage": "before",
                "loss": 2.303,
                "gnorm": 0.1,
                "loss_after_step": 2.303 - decrease_before,
                "decrease": decrease_before,
            }
        )
        rows.append(
            {
                "seed": seed,
                "stage": "after",
                "loss": 2.3,
                "gnorm": gnorm_after,
                "loss_after_step": 2.3 - decrease_after,
                "decrease": decrease_after,
            }
        )
    return pd.DataFrame(rows)


def failing(**changes):
    frames = {
        "train": constructed_train(),
        "trace": constructed_trace(),
        "scales": constructed_scales(),
        "first": constructed_first(),
    }
    frames.update(changes)
    return {c.name for c in zhu2021.claims(zhu2021.tidy_rows(**frames), "cpu") if not c.passed}


def test_every_claim_holds_on_a_successful_rescue():
    assert failing() == set()


@pytest.mark.parametrize(
    ("changes", "fails"),
    [
        ({"train": constructed_train(ours=0.90)}, {RESCUE}),
        ({"train": constructed_train(ours=0.08)}, {RESCUE}),
        ({"train": constructed_train(bad=0.96)}, {BAD, RESCUE}),
        ({"train": constructed_train(good=math.nan)}, {BAD, RESCUE}),
        ({"first": constructed_first(gnorm_after=1.5)}, {BOUND}),
        ({"first": constructed_first(gnorm_after=math.inf)}, {BOUND}),
        # the step no longer lowers the loss, or lowers it less than from the bad init
        ({"first": constructed_first(decrease_after=-0.01)}, {STEP}),
        ({"first": constructed_first(decrease_before=0.1, decrease_after=0.05)}, {STEP}),
    ],
)
def test_each_claim_can_fail(changes, fails):
    assert failing(**changes) == fails


def test_the_rescue_interval_is_welchs_t_over_the_seeds():
    from initbench.benchmarks.reproduce._stats import difference, t_quantile

    a = pd.Series([0.96, 0.97, 0.98])
    b = pd.Series([0.95, 0.95, 0.95])  # b's seeds agree exactly: a's seeds alone, 2 dof
    d = difference(a, b)
    assert d.dof == pytest.approx(2.0) and d.half == pytest.approx(t_quantile(2) * 0.01 / math.sqrt(3))
    spread = pd.Series([0.5, 0.95, 0.95])  # a noisier arm widens the interval: harder to call "within"
    assert difference(a, spread).half > d.half


def test_one_seed_at_chance_is_not_a_rescue():
    # four seeds rescued, one stuck at chance: the scheme's own spread must not widen its tolerance
    train = constructed_train()
    stuck = (train["arm"] == "gradinit") & (train["seed"] == 2) & (train["step"] == 1500)
    train.loc[stuck, "value"] = 0.08
    assert failing(train=train) == {RESCUE}


def test_the_tidy_rows_give_back_the_four_frames():
    frames = (constructed_train(), constructed_trace(), constructed_scales(), constructed_first())
    back = zhu2021.parts(zhu2021.tidy_rows(*frames))
    pd.testing.assert_frame_equal(back[0], frames[0], check_dtype=False)
    pd.testing.assert_frame_equal(back[1], frames[1], check_dtype=False)
    pd.testing.assert_frame_equal(back[2], frames[2], check_dtype=False)
    first = frames[3].sort_values(["seed", "stage"]).reset_index(drop=True)  # the pivot orders (seed, stage)
    pd.testing.assert_frame_equal(back[3], first, check_dtype=False)


@pytest.mark.parametrize("scale", ["smoke", "cpu", "paper"])
def test_sizes_mirror_the_experiment(scale):
    plan = experiments.resolve(experiments.load(zhu2021.EXPERIMENT), scale)
    size = zhu2021.SIZES[scale]
    ours = [s for s in plan.full if s.init.name == "gradinit"]
    assert {s.init.name for s in plan.full} == {"variance_scaling", "lecun_normal", "gradinit"}
    args = dict(ours[0].init.args)
    assert len(ours) == size["seeds"] and args["steps"] == size["gradinit_steps"] and args["lr"] == 0.01
    assert "scale=0.25" in args["base"] and "eta" not in args and "gamma" not in args  # GAMMA/ETA are the defaults
    spec = plan.full[0]
    assert (spec.model.depth, spec.model.width, spec.train.steps) == (size["depth"], size["width"], size["steps"])


@pytest.mark.slow
def test_zhu2021_end_to_end_at_smoke_scale(tmp_path):
    code = cli.main(["reproduce", "zhu2021", "--scale", "smoke", "--out", str(tmp_path)])
    assert code in (0, 1)  # 40 SGD steps and 5 GradInit iterations decide nothing
    folder = tmp_path / "zhu2021"
    verdicts = pd.read_csv(folder / "verdicts.csv")
    assert list(verdicts["name"]) == [BAD, RESCUE, BOUND, STEP]
    rows = pd.read_parquet(folder / "measurements.parquet")
    assert set(rows["part"]) == {"training", "gradinit", "scales", "first_step"}
    for name in ("gradinit_trace", "learned_scales", "training"):
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
