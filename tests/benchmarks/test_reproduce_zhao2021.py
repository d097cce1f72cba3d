"""zhao2021: the claim checkers on constructed measurements (each can fail), the inits, and smoke end to end."""

import numpy as np
import pandas as pd
import pytest

from initbench.benchmarks import cli
from initbench.benchmarks.reproduce import zhao2021

D, WIDTH = 4, 16
LAYERS = ("layer_001", "layer_002", "hidden")


def constructed_degeneracy(partial_rank=D, zero_rank=2 * D):
    """Ranks that start at 0 (hidden: d) and settle: partial identity at ``partial_rank``, ZerO at ``zero_rank``."""
    rows = []
    for init, settled in (("partial_identity", partial_rank), ("zero", zero_rank)):
        for seed in (0, 1):
            for step in (0, 10, 20):
                base = {"init": init, "seed": seed, "step": step, "input_dim": D, "width": WIDTH}
                for layer in LAYERS:
                    rank = settled if step else (D if layer == "hidden" else 0)
                    rows.append({**base, "layer": layer, "metric": "rank", "value": float(rank)})
                    rows.append({**base, "layer": layer, "metric": "stable_rank", "value": 1.5})
                rows.append({**base, "layer": "network", "metric": "train_loss", "value": 1.0 / (1 + step)})
    return pd.DataFrame(rows)


def constructed_training(zero_acc=0.97, he_acc=0.97, noise=(-0.005, 0.0, 0.005)):
    rows = []
    for family in ("mlp", "resnet"):
        for init, acc in (("he_normal", he_acc), ("zero_init", zero_acc)):
            for seed, e in enumerate(noise):
                rows.append(
                    {"family": family, "init": init, "seed": seed, "test_accuracy": acc + e, "train_loss": 0.01}
                )
    return pd.DataFrame(rows)


def constructed_determinism(zero_identical=True, he_identical=False):
    rows = []
    for family in ("mlp", "resnet"):
        for init, same in (("he_normal", he_identical), ("zero_init", zero_identical)):
            rows.append({"family": family, "init": init, "identical": same, "max_abs_difference": 0.0 if same else 1.0})
    return pd.DataFrame(rows)


def failing(**changes):
    frames = {
        "degeneracy": constructed_degeneracy(),
        "training": constructed_training(),
        "determinism": constructed_determinism(),
    }
    frames.update(changes)
    return {c.name for c in zhao2021.claims(zhao2021.tidy(**frames), "cpu") if not c.passed}


def test_every_claim_holds_on_the_theory():
    assert failing() == set()


def test_the_tidy_rows_give_back_the_three_frames():
    degeneracy, training, determinism = constructed_degeneracy(), constructed_training(), constructed_determinism()
    back = zhao2021.split(zhao2021.tidy(degeneracy, training, determinism))
    pd.testing.assert_frame_equal(back[0], degeneracy[list(zhao2021.DEGENERACY_COLUMNS)])
    pd.testing.assert_frame_equal(back[1], training)
    pd.testing.assert_frame_equal(back[2], determinism)  # in the measured order, identical a bool again


@pytest.mark.parametrize(
    ("changes", "fails"),
    [
        (
            {"degeneracy": constructed_degeneracy(partial_rank=D + 1)},
            {"degeneracy: rank(W - I) <= input dim under partial identity"},
        ),
        ({"degeneracy": constructed_degeneracy(zero_rank=D)}, {"ZerO's Hadamard breaks the degeneracy"}),
        # ZerO 2 points worse: beyond 2 x combined SE (0.58) and the binomial floor (0.9 points)
        (
            {"training": constructed_training(zero_acc=0.95)},
            {"ZerO trains as well as He (mlp)", "ZerO trains as well as He (resnet)"},
        ),
        ({"determinism": constructed_determinism(zero_identical=False)}, {"ZerO is deterministic"}),
        # the control: a "random" init that gives identical weights means the check cannot tell
        ({"determinism": constructed_determinism(he_identical=True)}, {"ZerO is deterministic"}),
    ],
)
def test_each_claim_can_fail(changes, fails):
    assert failing(**changes) == fails


def test_the_parity_interval_is_one_sided_and_must_lie_below_delta():
    # ZerO better by a lot: "as well as" holds
    assert failing(training=constructed_training(zero_acc=0.99, he_acc=0.95)) == set()
    # identical seeds (no spread): 1.5 points worse is within DELTA = 2 points, 2.5 points is not
    exact = constructed_training(zero_acc=0.955, he_acc=0.97, noise=(0.0, 0.0, 0.0))
    assert failing(training=exact) == set()
    exact = constructed_training(zero_acc=0.945, he_acc=0.97, noise=(0.0, 0.0, 0.0))
    assert failing(training=exact) == {"ZerO trains as well as He (mlp)", "ZerO trains as well as He (resnet)"}
    # equal means but seeds that disagree by 2 points: the interval reaches past DELTA, not judged as good
    noisy = constructed_training(zero_acc=0.97, he_acc=0.97, noise=(-0.02, 0.0, 0.02))
    assert failing(training=noisy) == {"ZerO trains as well as He (mlp)", "ZerO trains as well as He (resnet)"}


def test_the_two_inits_of_the_degeneracy_experiment():
    import jax.numpy as jnp

    d, width, depth = 4, 16, 2
    pid = zhao2021.degeneracy_init("partial_identity", d, width, depth)["params"]
    zero = zhao2021.degeneracy_init("zero", d, width, depth)["params"]
    np.testing.assert_array_equal(pid["layer_000"]["dense"]["kernel"], jnp.eye(d, width))  # zero padding
    for name in ("layer_001",):  # the square layer: the identity in both
        np.testing.assert_array_equal(pid[name]["dense"]["kernel"], jnp.eye(width))
        np.testing.assert_array_equal(zero[name]["dense"]["kernel"], jnp.eye(width))
    widening = np.asarray(zero["layer_000"]["dense"]["kernel"])  # c H^T: every unit gets +-c of every input
    np.testing.assert_allclose(np.abs(widening), 2.0 ** (-(4 - 1) / 2))
    np.testing.assert_allclose(widening @ widening.T, width / 2 ** (4 - 1) * np.eye(d), atol=1e-6)


def test_numerical_rank_uses_the_relative_threshold():
    import jax.numpy as jnp

    s = jnp.array([1.0, 0.5, 2e-3, 5e-4, 0.0])
    assert int(zhao2021._numerical_rank(s)) == 3


@pytest.mark.slow
def test_zhao2021_end_to_end_at_smoke_scale(tmp_path):
    code = cli.main(["reproduce", "zhao2021", "--scale", "smoke", "--out", str(tmp_path)])
    assert code in (0, 1)  # a few training steps decide nothing about parity
    verdicts = pd.read_csv(tmp_path / "zhao2021" / "verdicts.csv").set_index("name")
    # exact at any size: the bound of Theorem 1 and ZerO's determinism
    assert verdicts.loc["degeneracy: rank(W - I) <= input dim under partial identity", "passed"]
    assert verdicts.loc["ZerO is deterministic", "passed"]
    for name in ("degeneracy", "training"):
        assert (tmp_path / "zhao2021" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    rows = pd.read_parquet(tmp_path / "zhao2021" / "measurements.parquet")
    assert set(rows["part"]) == {"degeneracy", "training", "determinism"}
