"""dauphin2019: the claim checkers on constructed measurements (each can fail), and the pipeline end to end."""

import math

import pandas as pd
import pytest

from initbench.benchmarks import cli, experiments
from initbench.benchmarks.reproduce import dauphin2019
from initbench.inits.errors import UsageError

RESCUE = "metainit rescues the bad init"
BAD = "bad init trains poorly"
GQ = "MetaInit lowers the gradient quotient"
NORMS = "learned norms move toward critical"


def constructed_train(good=0.97, bad=0.08, ours=0.965, noise=0.005, n_test=360):
    rows = []
    for arm, acc in (("good", good), ("bad", bad), ("metainit", ours)):
        for seed, d in enumerate((-noise, 0.0, noise)):
            for step, frac in ((0, 0.0), (750, 0.5), (1500, 1.0)):
                value = 0.1 + frac * (acc + d - 0.1)
                rows.append(
                    {
                        "arm": arm,
                        "seed": seed,
                        "step": step,
                        "split": "test",
                        "metric": "accuracy",
                        "value": value,
                        "n_test": n_test,
                    }
                )
                rows.append(
                    {
                        "arm": arm,
                        "seed": seed,
                        "step": step,
                        "split": "train",
                        "metric": "loss",
                        "value": 2.3 * (1 - frac * acc),
                        "n_test": n_test,
                    }
                )
    return pd.DataFrame(rows)


def constructed_objective(first=0.8, last=0.3, steps=100, seeds=3):
    return pd.DataFrame(
        [
            {"seed": s, "step": i, "gradient_quotient": first + (last - first) * i / (steps - 1)}
            for s in range(seeds)
            for i in range(steps)
        ]
    )


def constructed_norms(after=(0.9, 1.1, 0.8), layers=12):
    rows = []
    for seed in range(3):
        for layer in range(layers + 1):
            path = "head/dense/kernel" if layer == layers else f"layer_{layer:03d}/dense/kernel"
            rows.append({"seed": seed, "layer": layer, "path": path, "stage": "before", "sigma_w2": 0.25})
            value = 0.01 if layer == layers else after[layer % len(after)]  # the head is left out
            rows.append({"seed": seed, "layer": layer, "path": path, "stage": "after", "sigma_w2": value})
    return pd.DataFrame(rows)


def failing(**changes):
    frames = {"train": constructed_train(), "objective": constructed_objective(), "norms": constructed_norms()}
    frames.update(changes)
    return {c.name for c in dauphin2019.claims(dauphin2019.tidy_rows(**frames), "cpu") if not c.passed}


def test_every_claim_holds_on_a_successful_rescue():
    assert failing() == set()


@pytest.mark.parametrize(
    ("changes", "fails"),
    [
        # MetaInit trains, but to 0.90 where LeCun reaches 0.97: the gap's interval is above DELTA = 0.02
        ({"train": constructed_train(ours=0.90)}, {RESCUE}),
        # no better than the bad init
        ({"train": constructed_train(ours=0.08)}, {RESCUE}),
        # the "bad" init trains fine: neither claim is a rescue any more
        ({"train": constructed_train(bad=0.96)}, {BAD, RESCUE}),
        ({"train": constructed_train(ours=math.nan)}, {RESCUE}),
        ({"objective": constructed_objective(first=0.3, last=0.5)}, {GQ}),
        ({"objective": constructed_objective(last=math.nan)}, {GQ}),
        # the scale overshoots into the chaotic phase, or stays ordered
        ({"norms": constructed_norms(after=(3.0, 4.0, 2.5))}, {NORMS}),
        ({"norms": constructed_norms(after=(0.3, 0.4, 0.35))}, {NORMS}),
    ],
)
def test_each_claim_can_fail(changes, fails):
    assert failing(**changes) == fails


def test_the_gradient_quotient_claim_needs_every_seed():
    objective = constructed_objective()
    rising = constructed_objective(first=0.3, last=0.6, seeds=1).assign(seed=3)
    assert failing(objective=pd.concat([objective, rising], ignore_index=True)) == {GQ}


def test_the_tidy_rows_give_back_the_three_frames():
    frames = (constructed_train(), constructed_objective(), constructed_norms())
    for back, frame in zip(dauphin2019.parts(dauphin2019.tidy_rows(*frames)), frames, strict=True):
        pd.testing.assert_frame_equal(back.reset_index(drop=True), frame, check_dtype=False)


def test_rows_without_n_test_name_the_fix():
    rows = dauphin2019.tidy_rows(constructed_train(), constructed_objective(), constructed_norms())
    with pytest.raises(UsageError, match="regenerate"):
        dauphin2019.claims(rows.drop(columns="n_test"), "cpu")


@pytest.mark.parametrize("scale", ["smoke", "cpu", "paper"])
def test_sizes_mirror_the_experiment(scale):
    plan = experiments.resolve(experiments.load(dauphin2019.EXPERIMENT), scale)
    size = dauphin2019.SIZES[scale]
    ours = [s for s in plan.full if s.init.name == "metainit"]
    assert {s.init.name for s in plan.full} == {"variance_scaling", "lecun_normal", "metainit"}
    assert len(ours) == size["seeds"] and dict(ours[0].init.args)["steps"] == size["metainit_steps"]
    assert "scale=0.25" in dict(ours[0].init.args)["base"]
    spec = plan.full[0]
    assert (spec.model.depth, spec.model.width, spec.train.steps) == (size["depth"], size["width"], size["steps"])


@pytest.mark.slow
def test_dauphin2019_end_to_end_at_smoke_scale(tmp_path, capsys):
    code = cli.main(["reproduce", "dauphin2019", "--scale", "smoke", "--out", str(tmp_path)])
    assert code in (0, 1)  # 40 SGD steps and 5 MetaInit iterations decide nothing: smoke judges no claim
    printed = capsys.readouterr().out
    # checks are judged (5 MetaInit steps may fail one); no claim is
    assert "its claims are not judged" in printed and "  FAIL  " not in printed
    folder = tmp_path / "dauphin2019"
    verdicts = pd.read_csv(folder / "verdicts.csv")
    assert list(verdicts["name"]) == [BAD, RESCUE, GQ, NORMS]
    rows = pd.read_parquet(folder / "measurements.parquet")
    assert set(rows["part"]) == {"training", "metainit", "scales"}
    assert len(rows[rows["part"] == "metainit"]) == 2 * 5  # 2 seeds x 5 iterations
    for name in ("gradient_quotient", "learned_scales", "training"):
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
