"""The probe's measurements and the check's verdicts, on our models and on a user's own model."""

import math
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from initbench import inits, models
from initbench.benchmarks.analysis import check, propagation
from initbench.benchmarks.results import ResultStore

X = jax.random.normal(jax.random.key(1), (64, 32))


def mlp(activation="relu", init="he_normal", depth=4, width=32, **kw):
    return models.build(
        "mlp",
        input_shape=(32,),
        num_classes=10,
        depth=depth,
        width=width,
        activation=activation,
        kernel_init=init,
        **kw,
    )


def test_forward_statistics_match_a_direct_computation():
    model = mlp("tanh", "glorot_uniform")
    variables = model.init(jax.random.key(0), X[:1])
    table = propagation.layer_table(propagation.propagation(model, variables, X))
    _, state = model.apply(variables, X, mutable=["intermediates"])
    for layer, row in zip(models.per_layer(state["intermediates"]), table.itertuples(), strict=True):
        assert row.layer == layer["layer"]
        pre = np.asarray(layer["pre_activation"], np.float64)
        assert row.pre_activation_variance == pytest.approx(pre.var(), rel=1e-4)
        assert row.pre_activation_second_moment == pytest.approx((pre**2).mean(), rel=1e-4)
        if layer["activation"] is not None:
            act = np.asarray(layer["activation"], np.float64)
            assert row.activation_mean == pytest.approx(act.mean(), rel=1e-3, abs=1e-6)
            assert row.saturated_fraction == pytest.approx((np.abs(act) > 0.99).mean())


def test_backward_statistics_match_autodiff_through_the_layers():
    model = mlp("relu", "he_normal", depth=2)
    variables = model.init(jax.random.key(0), X[:1])
    labels = jnp.arange(64) % 10
    rows = propagation.propagation(model, variables, X, labels=labels)
    table = propagation.layer_table(rows).set_index("layer")
    p = variables["params"]

    def loss(h0):
        a0 = jax.nn.relu(h0)
        h1 = a0 @ p["layer_001"]["dense"]["kernel"] + p["layer_001"]["dense"]["bias"][None]
        logits = jax.nn.relu(h1) @ p["head"]["dense"]["kernel"] + p["head"]["dense"]["bias"][None]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1))

    h0 = X @ p["layer_000"]["dense"]["kernel"] + p["layer_000"]["dense"]["bias"][None]
    assert table.loc["layer_000", "gradient_variance"] == pytest.approx(float(jnp.var(jax.grad(loss)(h0))), rel=1e-4)
    assert table.loc["layer_000", "gradient_variance_ratio"] == 1.0
    assert table.loc["layer_000", "weight_gradient_variance_ratio"] == 1.0


def test_dead_units_and_histograms():
    # a bias of -10 kills every ReLU unit of the first layer
    model = mlp("relu", "he_normal", bias_init=inits.constant(-10.0))
    rows = propagation.propagation(model, model.init(jax.random.key(0), X[:1]), X)
    table = propagation.layer_table(rows).set_index("layer")
    assert table.loc["layer_000", "dead_fraction"] == 1.0
    hist = rows[(rows["layer"] == "layer_000") & rows["metric"].str.startswith("pre_activation_histogram_bin_")]
    assert len(hist) == len(propagation.HIST_EDGES) - 1
    assert hist["value"].sum() == pytest.approx(1.0)
    assert hist.sort_values("metric")["value"].iloc[0] == pytest.approx(1.0)  # all below -4: the first bin


def test_over_seeds_equals_each_seed_alone():
    model = mlp("tanh", "orthogonal")
    together = propagation.propagation_over_seeds(model, X, [3, 7])
    for seed in (3, 7):
        variables = jax.jit(model.init)(jax.random.key(seed), X[:1])
        alone = propagation.propagation(model, variables, X, key=jax.random.fold_in(jax.random.key(seed), 1))
        mine = together[together["seed"] == seed].reset_index(drop=True)
        hist = mine["metric"].str.contains("_histogram_bin_").to_numpy()
        np.testing.assert_allclose(mine["value"][~hist], alone["value"][~hist], rtol=2e-4, atol=1e-7)
        # a value on a bin edge may round across it: one element of 64 x 32 is 1/2048 of a bin's mass
        np.testing.assert_allclose(mine["value"][hist], alone["value"][hist], atol=1.01 / 2048)


def test_random_projection_jacobian_estimates_match_exact(monkeypatch):
    x = jax.random.normal(jax.random.key(2), (2, 48))
    model = models.build(
        "mlp", input_shape=(48,), num_classes=10, depth=3, width=48, activation="tanh", kernel_init="orthogonal"
    )
    variables = model.init(jax.random.key(0), x[:1])
    exact = propagation.network_metrics(propagation.propagation(model, variables, x, jacobian_examples=1))
    monkeypatch.setattr(propagation, "EXACT_JACOBIAN_LIMIT", 0)
    probe, _ = propagation.make_probe(model, variables, x, jacobian_examples=1, jacobian_probes=512)
    approx = {k: float(v) for k, v in jax.jit(probe)(variables, jax.random.key(0))["__network__"].items()}
    # Hutchinson with 512 probes: relative SE of tr(J^T J) is about sqrt(2 / 512) = 6%
    assert approx["jacobian_mean_squared_singular_value"] == pytest.approx(
        exact["jacobian_mean_squared_singular_value"], rel=0.3
    )
    assert approx["jacobian_max_singular_value"] == pytest.approx(exact["jacobian_max_singular_value"], rel=0.02)


class UserMLP(nn.Module):
    """A user's own model: no sow, no perturbation points."""

    depth: int
    width: int
    std: float

    @nn.compact
    def __call__(self, x):
        for _ in range(self.depth):
            x = jax.nn.relu(nn.Dense(self.width, kernel_init=nn.initializers.normal(self.std))(x))
        return nn.Dense(10)(x)


def test_generic_capture_on_a_users_model_matches_our_mlp():
    user = UserMLP(depth=12, width=64, std=math.sqrt(2 / 32))
    variables = user.init(jax.random.key(0), X[:1])
    rows = propagation.propagation(user, variables, X, activation="relu")
    table = propagation.layer_table(rows)
    assert list(table["layer"]) == [f"Dense_{i}" for i in range(13)]  # call order, not sorted order
    assert table["gradient_variance"].notna().all()
    # compare with a direct forward pass
    h = X @ variables["params"]["Dense_0"]["kernel"] + variables["params"]["Dense_0"]["bias"][None]
    assert table.iloc[0]["pre_activation_variance"] == pytest.approx(float(jnp.var(h)), rel=1e-4)
    assert table.iloc[0]["dead_fraction"] == pytest.approx(float(jnp.mean(jnp.all(h <= 0, axis=0))))


def test_check_verdicts_on_a_users_model():
    x = jax.random.normal(jax.random.key(4), (128, 64))
    good = UserMLP(depth=10, width=256, std=math.sqrt(2 / 256))  # He for the hidden layers
    x256 = jax.random.normal(jax.random.key(4), (128, 256))
    result = check.check_variance(good, good.init(jax.random.key(0), x256[:1]), x256, activation="relu")
    assert result.passed
    bad = UserMLP(depth=10, width=256, std=math.sqrt(1 / 256) / 2)
    result = check.check_variance(bad, bad.init(jax.random.key(0), x[:1]), x, activation="relu")
    assert not result.passed and (result.table["verdict"] == "vanishing").sum() >= 8


@pytest.mark.parametrize(
    ("activation", "init", "args", "passed", "verdict"),
    [
        ("relu", "he_normal", {}, True, "preserved"),
        ("relu", "glorot_normal", {}, False, "vanishing"),
        ("relu", "lecun_normal", {}, False, "vanishing"),
        ("tanh", "normal", {"stddev": 0.01}, False, "vanishing"),
        ("relu", "normal", {"stddev": 1.0}, False, "exploding"),
        ("linear", "orthogonal", {}, True, "preserved"),
    ],
)
def test_check_verdicts_on_known_configurations(activation, init, args, passed, verdict, tmp_path):
    result, paths = check.run_check(
        depth=20, width=128, activation=activation, init=init, init_args=args, batch_size=128, out=tmp_path
    )
    assert result.passed is passed
    hidden = result.table.iloc[:-1]
    assert (hidden["verdict"].iloc[5:] == verdict).all(), hidden
    assert hidden["matches_theory"].all(), hidden
    df = ResultStore(tmp_path).read()
    assert set(df["family"]) == {"mlp"} and df["layer"].notna().any() and df["layer"].isna().any()
    assert len(pd.read_parquet(tmp_path)) == len(df)  # the directory reads as one table (figures live in _report)
    assert paths["figure"].read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(paths["table"])) == 21


def test_check_cli_exit_codes(tmp_path, capsys):
    root = Path(__file__).resolve().parents[2]
    common = [
        sys.executable,
        "-m",
        "initbench.benchmarks.cli",
        "check",
        "--depth",
        "8",
        "--width",
        "64",
        "--batch-size",
        "64",
        "--no-write",
    ]
    good = subprocess.run([*common, "--init", "he_normal"], capture_output=True, text=True, cwd=root)
    assert good.returncode == 0, good.stderr
    assert "verdict: PRESERVED" in good.stdout and "jacobian_spread" in good.stdout
    bad = subprocess.run(
        [*common, "--activation", "tanh", "--init", "normal", "--init-args", "stddev=0.01"],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert bad.returncode == 1 and "NOT PRESERVED" in bad.stdout
    from initbench.benchmarks import cli

    for extra, message in [
        (["--init", "he_nrmal"], "unknown initializer 'he_nrmal'"),
        (["--init-args", "stddev"], "malformed argument 'stddev': expected name=value"),
        (["--init", "normal", "--init-args", "sd=1"], "normal() got unexpected argument(s) sd"),
        (["--activation", "relu:2"], "activation 'relu' takes no parameter"),
        (["--model", "vgg"], "unknown model family 'vgg'"),
        (["--tolerance", "0.5"], "tolerance must be > 1, got 0.5"),
    ]:
        assert cli.main([*common[3:], *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
