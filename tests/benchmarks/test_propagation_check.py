"""The probe's measurements and the check's verdicts, on our models and on a user's own model."""

import math
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from initbench import inits, models
from initbench.benchmarks import cli
from initbench.benchmarks.analysis import check, propagation
from initbench.benchmarks.results import ResultStore
from initbench.inits.errors import UsageError

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


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
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


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
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


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
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


@pytest.mark.slow  # a few seconds: in the slow run, which CI makes
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


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
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


# ---------------------------------------------------------------------------- the check's verdicts

CASES = {
    # name: (run_check arguments, expected forward, backward, jacobian verdict)
    "relu_he": (dict(activation="relu", init="he_normal", depth=20, width=512), ("preserved",) * 3),
    "tanh_small": (
        dict(activation="tanh", init="normal", init_args={"stddev": 0.01}, depth=20, width=128),
        ("vanishing",) * 3,
    ),
    "tanh_critical_line": (
        dict(activation="tanh", weight_variance=1.76, bias_variance=0.05, depth=20, width=256),
        ("preserved",) * 3,
    ),
    # SELU + LeCun normalizes the forward signal, but chi_1 = 1.0716 at its fixed point: the
    # gradient grows by that factor per layer (mean-field theory and measurement agree)
    "selu_lecun": (
        dict(activation="selu", init="lecun_normal", depth=20, width=256),
        ("preserved", "exploding", None),  # Jacobian: exploding at depth 50; at 20, past the transient, undecided
    ),
    "narrow": (dict(activation="linear", init="lecun_normal", depth=20, width=16), ("inconclusive",) * 3),
}


def run(case, **kw):
    args, _ = CASES[case] if case in CASES else (dict(), None)
    result, _ = check.run_check(batch_size=64, seeds=4, out=None, **{**args, **kw})
    return result


# every case in the slow run that CI makes (relu_he alone takes 6 s; the default run keeps the
# check's end-to-end CLI test, which prints three verdicts and the phase)
@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_check_verdicts_on_constructed_cases(case):
    result = run(case)
    expected = CASES[case][1]
    got = tuple(result.verdicts[s].verdict.split(" at width")[0] for s in check.SIGNALS)
    assert all(e is None or g == e for g, e in zip(got, expected, strict=True)), result.verdicts
    assert result.passed == all(e == "preserved" for e in expected)
    if case == "narrow":
        assert result.inconclusive and "would decide it" in result.verdicts["forward"].note
        assert result.verdicts["forward"].verdict == "inconclusive at width 16"
    if case == "selu_lecun":  # the measured rate is the theory's log chi_1
        assert result.verdicts["backward"].rate == pytest.approx(math.log(result.phase["chi_1"]), abs=0.02)


@pytest.mark.slow
def test_relu_normal_1_overflows_in_float32_and_explodes_in_float64():
    args = dict(activation="relu", init="normal", init_args={"stddev": 1.0}, depth=36, width=64, seeds=2)
    f32, _ = check.run_check(batch_size=32, out=None, **args)
    # located where it first appears; everything after it is exploding, never "vanishing"
    assert f32.verdicts["forward"].verdict == "exploding"
    assert f32.verdicts["forward"].note.startswith("overflow at layer") and "float32" in f32.verdicts["forward"].note
    assert all(v.verdict == "exploding" for v in f32.verdicts.values())
    f64, _ = check.run_check(batch_size=32, out=None, dtype="float64", **args)
    assert jnp.zeros(()).dtype == jnp.float32  # float64 is enabled for the check only
    assert all(v.verdict == "exploding" and not v.note for v in f64.verdicts.values())
    # sigma_w^2 = 64 and ReLU: the second moment grows by sigma_w^2 / 2 = 32 per layer
    assert f64.verdicts["forward"].rate == pytest.approx(math.log(32), abs=0.1)


@pytest.mark.slow
def test_tanh_glorot_depth_50_is_critical_slow_decay_not_vanishing():
    result = run(None, activation="tanh", init="glorot_normal", depth=50, width=256)
    # q^l ~ 1/(2l) (polynomial) forward; chi_l = 1 - 2 q^l, so the gradient falls like l/L toward the input
    for signal in check.SIGNALS:
        assert result.verdicts[signal].verdict == "critical: slow decay", result.verdicts[signal]
    assert result.phase["phase"] == "critical" and result.passed
    assert "l^-1" in result.verdicts["forward"].note


@pytest.mark.slow
@pytest.mark.parametrize(("residual_scale", "expected"), [(None, "exploding"), (0.0, "preserved")])
def test_resnet_without_normalization(residual_scale, expected):
    extra = {"blocks": (3, 3, 3), "normalization": "none"}
    if residual_scale is not None:
        extra["residual_scale"] = residual_scale  # a zero last layer per branch (SkipInit)
    result, _ = check.run_check(
        model="resnet", width=16, input_shape=(16, 16, 3), batch_size=64, seeds=4, out=None, extra=extra
    )
    assert result.verdicts["forward"].verdict == expected, result.verdicts
    judged = result.table[result.table["judged"]]["layer"]
    assert not any("/conv_" in n for n in judged)  # the residual stream, not the branches


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_users_linen_and_nnx_models_give_the_same_numbers():
    from flax import nnx

    class NnxMLP(nnx.Module):
        def __init__(self, depth, width, rngs):
            self.layers = nnx.List([nnx.Linear(width, width, rngs=rngs) for _ in range(depth)])
            self.head = nnx.Linear(width, 10, rngs=rngs)

        def __call__(self, x):
            for layer in self.layers:
                x = jax.nn.relu(layer(x))
            return self.head(x)

    x = jax.random.normal(jax.random.key(4), (64, 64))
    user = UserMLP(depth=6, width=64, std=math.sqrt(2 / 64))
    variables = user.init(jax.random.key(0), x[:1])
    net = NnxMLP(6, 64, nnx.Rngs(0))
    for i, layer in enumerate([*net.layers, net.head]):  # the same weights
        for name in ("kernel", "bias"):
            var, value = getattr(layer, name), variables["params"][f"Dense_{i}"][name]
            var.set_value(value) if hasattr(var, "set_value") else setattr(var, "value", value)
    linen_rows = propagation.layer_table(propagation.propagation(user, variables, x, activation="relu"))
    nnx_rows = propagation.layer_table(propagation.propagation(net, None, x, activation="relu"))
    assert list(nnx_rows["layer"]) == [f"layers/{i}" for i in range(6)] + ["head"]
    for column in (
        "pre_activation_second_moment",
        "gradient_variance",
        "weight_gradient_variance",
        "activation_participation_ratio",
    ):
        np.testing.assert_allclose(nnx_rows[column], linen_rows[column], rtol=1e-5)
    a = check.check_variance(user, variables, x, activation="relu")
    b = check.check_variance(net, None, x, activation="relu")
    for signal in check.SIGNALS:
        assert a.verdicts[signal].verdict == b.verdicts[signal].verdict
        assert a.verdicts[signal].rate == pytest.approx(b.verdicts[signal].rate, rel=1e-4, abs=1e-7)


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_check_cli_prints_three_verdicts_and_the_phase(tmp_path, capsys):
    from initbench.benchmarks import cli

    argv = [
        "check",
        "--depth",
        "12",
        "--width",
        "128",
        "--batch-size",
        "64",
        "--activation",
        "tanh",
        "--weight-variance",
        "1.76",
        "--bias-variance",
        "0.05",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    for line in (
        "forward   preserved",
        "backward  preserved",
        "jacobian  preserved",
        "mean-field phase: critical",
        "predicted_variance",
        "predicted_gradient_variance",
        "verdict: PRESERVED",
    ):
        assert line in out, out
    stored = ResultStore(tmp_path)
    assert stored.provenance_of(stored.files()[0])["check"]["verdicts"]["forward"]["verdict"] == "preserved"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--init", "he_nrmal"], "unknown initializer 'he_nrmal'"),
        (["--init-args", "stddev"], "malformed argument 'stddev': expected name=value"),
        (["--init", "normal", "--init-args", "sd=1"], "normal() got unexpected argument(s) sd"),
        (["--activation", "relu:2"], "activation 'relu' takes no parameter"),
        (["--model", "vgg"], "unknown model family 'vgg'"),
        (["--tolerance", "0.5"], "tolerance must be > 1, got 0.5"),
        (["--model", "resnet", "--init", "identity"], "identity cannot initialize this resnet"),
        (["--model", "resnet", "--depth", "5"], "check: drop --depth (an MLP's; a resnet sets its own depth)"),
        (["--model", "lenet5", "--width", "4"], "check: drop --width (an MLP's or a ResNet's; a lenet5 sets its own"),
        (["--weight-variance", "2", "--init", "he_normal"], "check: drop --init (--weight-variance sets the"),
        (["--weight-variance", "2", "--init-args", "stddev=0.1"], "check: drop --init-args (--weight-variance"),
        (["--bias-variance", "0.1", "--bias-init", "zeros"], "check: drop --bias-init (--bias-variance sets the"),
        (["--no-write"], "check: drop --out (--no-write writes nothing)"),
        (["--input-variance", "1e39"], "--input-variance must fit in float32 (at most 3.4e+38), got 1e+39"),
        (["--seeds", "99999999999999999999"], "(99,999,999,999,999,999,999 seeds x batch 16 through every layer)"),
        (["--seeds", "100000000"], "(100,000,000 seeds x batch 16 through every layer), more than half of this"),
        (["--transient", "2"], "transient 2 leaves fewer than 3 of the 4 judged layers to fit: at most 1"),
        (["--init", "normal(stddev=0.1)", "--init-args", "stddev=0.2"], "--init and --init-args both set stddev"),
        (["--blocks", "2,2"], "--blocks and --norm are ResNet options"),
        (["--weight-variance", "-1"], "--weight-variance must be a finite number > 0, got -1.0"),
        (["--bias-init", "normal(sd=0.1)"], "normal() got unexpected argument(s) sd"),
        (["--input-variance", "0"], "--input-variance must be a finite number > 0, got 0.0"),
        (["--dtype", "float16"], "invalid choice: 'float16'"),
        # values that were silently replaced (nan biases became zero biases) or left nothing to fit
        (["--bias-variance", "nan"], "--bias-variance must be a finite number >= 0, got nan"),
        (["--input-variance", "inf"], "--input-variance must be a finite number > 0, got inf"),
        (["--weight-variance", "nan"], "--weight-variance must be a finite number > 0, got nan"),
        (["--transient", "100"], "--transient 100 leaves no layer to fit: it must be below --depth 4"),
    ],
)
def test_check_bad_input_is_one_line(extra, message, tmp_path, capsys):
    from initbench.benchmarks import cli

    out = tmp_path / "never"
    model = extra[extra.index("--model") + 1] if "--model" in extra else "mlp"
    sizes = {"mlp": ["--depth", "4", "--width", "16"], "resnet": ["--width", "16"]}.get(model, [])
    argv = ["check", *sizes, "--batch-size", "16", "--out", str(out), *extra]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.slow
def test_check_names_its_files_after_the_real_model(tmp_path):
    _, paths = check.run_check(
        model="resnet",
        width=4,
        input_shape=(8, 8, 3),
        batch_size=8,
        seeds=1,
        out=tmp_path,
        extra={"blocks": (1, 1, 1), "normalization": "none"},
    )
    name = Path(paths["results"]).name
    assert name.startswith("check_resnet_width_4__blocks__1__1__1___normalization__none") and "512" not in name


# ---------------------------------------------------------------------------- found by an independent review


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # ordered tanh (chi_1 = 0.9): exponential loss, never "critical" (its phase says ordered)
        (dict(activation="tanh", weight_variance=0.9, depth=20, width=256), ("vanishing",) * 3),
        # huge inputs: the float32 sum of the squares must not pass for an overflow of the signal
        (dict(activation="relu", init="he_normal", depth=6, width=256, input_variance=2e34), ("preserved",) * 3),
        # no signal at all: vanishing from layer 1, not "too few layers"
        (dict(activation="tanh", init="zeros", depth=6, width=32), ("vanishing",) * 3),
        # 4 layers of the approach to q* = 0.57: a transient, not a trend
        (
            dict(activation="tanh", weight_variance=1.76, bias_variance=0.05, depth=4, width=256),
            ("inconclusive", None, "inconclusive"),
        ),
    ],
)
def test_review_cases(args, expected):
    result, _ = check.run_check(batch_size=64, seeds=4, out=None, **args)
    for signal, want in zip(check.SIGNALS, expected, strict=True):
        if want is not None:
            assert result.verdicts[signal].verdict.split(" at width")[0] == want, result.verdicts


@pytest.mark.slow  # a few seconds: in the slow run, which CI makes
def test_a_zeroed_residual_branch_is_bypassed_not_vanishing():
    class Residual(nn.Module):
        @nn.compact
        def __call__(self, x):
            for _ in range(8):
                h = jax.nn.relu(nn.Dense(64, kernel_init=nn.initializers.he_normal())(x))
                x = x + nn.Dense(64, kernel_init=nn.initializers.zeros)(h)  # the branch starts at zero
            return nn.Dense(10)(x)

    x = jax.random.normal(jax.random.key(2), (64, 64))
    result = check.check_variance(Residual(), None, x, activation="relu", seeds=[0, 1, 2, 3])
    assert result.verdicts["forward"].verdict != "vanishing", result.verdicts
    assert not result.verdicts["forward"].note.startswith("underflow")
    judged = result.table[result.table["judged"]]["layer"].tolist()
    assert "Dense_1" not in judged and "Dense_0" in judged  # the zero branch outputs are bypassed


@pytest.mark.slow
def test_batchnorm_is_probed_with_batch_statistics():
    net = models.build(
        "resnet",
        input_shape=(8, 8, 3),
        num_classes=10,
        activation="relu",
        kernel_init="he_normal",
        blocks=(2, 2, 2),
        width=8,
        normalization="batchnorm",
    )
    x = jax.random.normal(jax.random.key(1), (32, 8, 8, 3))
    table = propagation.layer_table(propagation.propagation(net, net.init(jax.random.key(0), x[:1]), x))
    q = table.set_index("layer")["pre_activation_second_moment"]
    assert q[[n for n in q.index if n.endswith("conv_a")]].to_numpy() == pytest.approx(1.0, abs=1e-3)  # normalized
    assert q[[n for n in q.index if n.startswith("block") and "/" not in n]].max() < 4  # the stream stays O(1)


# ---------------------------------------------------------------------------- parametrizations


@pytest.mark.slow  # three to four checks, each compiled: 10-40 s
def test_a_parametrization_scales_the_readout_at_init_and_equals_the_plain_check_at_its_base_width():
    args = dict(depth=6, width=64, seeds=2, batch_size=32, out=None)
    plain, _ = check.run_check(**args)
    base, _ = check.run_check(**args, parametrization="mup", base_width=64)
    pd.testing.assert_frame_equal(plain.table, base.table)  # m = 1: the plain check, bitwise
    wide, _ = check.run_check(**args, parametrization="mup", base_width=16)  # m = 4: readout std x 1/2
    hidden = wide.table["layer"] != "head"
    np.testing.assert_array_equal(
        wide.table.loc[hidden, "measured_variance"], plain.table.loc[hidden, "measured_variance"]
    )
    head = plain.table["layer"] == "head"
    assert float(wide.table.loc[head, "measured_variance"].iloc[0]) == pytest.approx(
        float(plain.table.loc[head, "measured_variance"].iloc[0]) / 4, rel=1e-5
    )
    assert bool(wide.table.loc[head, "matches_theory"].iloc[0])  # the prediction carries the readout's multiplier
    assert {k: v.verdict for k, v in wide.verdicts.items()} == {k: v.verdict for k, v in plain.verdicts.items()}


@pytest.mark.slow  # three to four checks, each compiled: 10-40 s
def test_a_table_that_shrinks_the_hidden_weights_is_judged_vanishing_and_matches_its_theory():
    # input and hidden std x m^-1/2 at m = 4: He's variance x 1/4 per layer, ReLU: vanishing, as predicted
    result, _ = check.run_check(
        depth=12,
        width=128,
        seeds=2,
        batch_size=64,
        out=None,
        parametrization="table:hidden.init=-0.5/input.init=-0.5",
        base_width=32,
    )
    assert result.verdicts["forward"].verdict == "vanishing"
    assert result.verdicts["forward"].rate == pytest.approx(math.log(0.25), abs=0.05)
    assert result.table.loc[result.table["judged"], "matches_theory"].all()


@pytest.mark.slow  # three to four checks, each compiled: 10-40 s
def test_the_check_records_its_parametrization_and_keeps_older_run_ids(tmp_path):
    from initbench.benchmarks.results import ResultStore
    from initbench.benchmarks.spec import InitSpec, ModelSpec

    argv = ["check", "--depth", "4", "--width", "32", "--batch-size", "16", "--seeds", "1"]
    assert cli.main([*argv, "--parametrization", "mup", "--base-width", "8", "--out", str(tmp_path / "a")]) in (0, 1, 3)
    rows = ResultStore(tmp_path / "a", kind="check").read()
    assert set(rows["parametrization"]) == {"mup"} and set(rows["base_width"]) == {8}
    assert set(rows["init_scale"]) == {'{"readout": 0.5}'}
    plain = check.check_identity(ModelSpec("mlp", "relu", 4, 32), InitSpec("he_normal"), (32,), 16, 0)
    assert plain["run_id"] not in set(rows["run_id"])
    # a check without a parametrization hashes what it did before parametrizations existed
    legacy = {k: plain[k] for k in plain if k not in ("run_id", "init_scale", "parametrization", "base_width")}
    import hashlib
    import json

    assert plain["run_id"] == hashlib.sha256(json.dumps(legacy, sort_keys=True, default=str).encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--base-width", "8"], "--base-width needs --parametrization"),
        (["--parametrization", "mup"], "parametrization mup needs base_width"),
        (["--parametrization", "mupp", "--base-width", "8"], "unknown parametrization 'mupp'"),
        (["--parametrization", "mup", "--base-width", "8", "--model", "lenet5"], "this model has none"),
        (["--parametrization", "mup", "--base-width", "8", "--init", "lsuv"], "lsuv is a model-level scheme"),
    ],
)
def test_a_bad_check_parametrization_is_one_line(extra, message, tmp_path, capsys):
    model = extra[extra.index("--model") + 1] if "--model" in extra else "mlp"
    sizes = ["--depth", "4", "--width", "16"] if model == "mlp" else []
    assert cli.main(["check", *sizes, "--batch-size", "16", "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # a 512-example check of 4 seeds
def test_the_heads_prediction_keeps_the_classifier_bias_out_of_the_readout_multiplier():
    result, _ = check.run_check(
        depth=4,
        width=32,
        activation="tanh",
        weight_variance=1.76,
        bias_variance=0.5,
        seeds=4,
        batch_size=512,
        out=None,
        parametrization="mup",
        base_width=4,
    )
    head = result.table[result.table["layer"] == "head"].iloc[0]
    assert bool(head["matches_theory"]), head  # readout^2 sigma_w^2 E[phi^2] + sigma_b^2, not readout^2 x both


@pytest.mark.slow  # four probes, several seconds: out of the default suite's time (CI runs it)
def test_a_users_own_layer_classes_are_probed_as_layers_in_linen_and_nnx():
    # a layer is a module owning a kernel, as for the schemes: a user's own Dense and a subclass of
    # nn.Dense calling super().__call__ (linen), a class of its own and a subclass of nnx.Linear
    # (nnx; a subclass is measured once, at its outermost call: it was refused as "called twice") are probed
    # with the numbers of the same weights in the standard layers (before, they were left out silently)
    from flax import nnx

    class OwnDense(nn.Module):
        features: int

        @nn.compact
        def __call__(self, x):
            kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
            return x @ kernel + self.param("bias", nn.initializers.zeros, (self.features,))[None]

    class Sub(nn.Dense):  # its call and nn.Dense's within it: one layer, measured once
        def __call__(self, x):
            return super().__call__(x)

    class Own(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jnp.tanh(OwnDense(16)(x))
            x = jnp.tanh(Sub(16)(x))
            return OwnDense(4)(x)

    class Standard(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jnp.tanh(nn.Dense(16, name="OwnDense_0")(x))
            x = jnp.tanh(nn.Dense(16, name="Sub_0")(x))
            return nn.Dense(4, name="OwnDense_1")(x)

    class NnxOwn(nnx.Module):
        def __init__(self, n_in, n_out, rngs):
            self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (n_in, n_out)))

        def __call__(self, x):
            return x @ self.kernel[...]

    class NnxSub(nnx.Linear):
        def __call__(self, x):
            return super().__call__(x)

    class NnxNet(nnx.Module):
        def __init__(self, own, rngs):
            self.a = NnxOwn(8, 16, rngs) if own else nnx.Linear(8, 16, use_bias=False, rngs=rngs)
            self.b = (NnxSub if own else nnx.Linear)(16, 16, rngs=rngs)
            self.c = NnxOwn(16, 4, rngs) if own else nnx.Linear(16, 4, use_bias=False, rngs=rngs)

        def __call__(self, x):
            return self.c(jnp.tanh(self.b(jnp.tanh(self.a(x)))))

    x = jax.random.normal(jax.random.key(4), (64, 8))
    variables = Own().init(jax.random.key(0), x)
    own = propagation.layer_table(propagation.propagation(Own(), variables, x, activation="tanh"))
    standard = propagation.layer_table(propagation.propagation(Standard(), variables, x, activation="tanh"))
    nnx_own = propagation.layer_table(propagation.propagation(NnxNet(True, nnx.Rngs(0)), None, x, activation="tanh"))
    nnx_std = propagation.layer_table(propagation.propagation(NnxNet(False, nnx.Rngs(0)), None, x, activation="tanh"))
    assert list(own["layer"]) == ["OwnDense_0", "Sub_0", "OwnDense_1"] == list(standard["layer"])
    assert list(nnx_own["layer"]) == ["a", "b", "c"] == list(nnx_std["layer"])
    for column in ("pre_activation_second_moment", "gradient_variance", "weight_gradient_variance"):
        np.testing.assert_allclose(own[column], standard[column], rtol=1e-6)
        np.testing.assert_allclose(nnx_own[column], nnx_std[column], rtol=1e-6)


@pytest.mark.slow  # two probes: a few seconds
def test_a_model_without_layers_is_one_line_and_a_model_that_is_one_layer_is_probed():
    from flax import nnx

    class Weights(nnx.Module):  # weights, but no module owns a 'kernel'
        def __init__(self, rngs):
            self.w = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (8, 4)))

        def __call__(self, x):
            return x @ self.w[...]

    x = jax.random.normal(jax.random.key(4), (16, 8))
    with pytest.raises(UsageError, match=r"^the model calls no layer \(a module owning a 'kernel' parameter"):
        propagation.propagation(Weights(nnx.Rngs(0)), None, x)
    dense = nn.Dense(4)
    for model, variables in ((nnx.Linear(8, 4, rngs=nnx.Rngs(0)), None), (dense, dense.init(jax.random.key(0), x))):
        table = propagation.layer_table(propagation.propagation(model, variables, x))
        assert list(table["layer"]) == [""]
        assert np.isfinite(table["weight_gradient_variance"]).all()  # the root's own kernel, found


@pytest.mark.slow  # a probe and an LSUV run: a few seconds
def test_a_kernel_owner_that_returns_no_array_is_no_layer():
    # Flax's OptimizedLSTMCell holds DenseParams modules that own a kernel and return (kernel, bias)
    # for the cell to use: neither the probe nor the schemes take them for layers (the probe crashed)
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            cell = nn.OptimizedLSTMCell(16)
            _, h = cell(cell.initialize_carry(jax.random.key(0), x.shape), x)
            hidden = nn.Dense(16, name="hidden")(h)
            return nn.Dense(4, name="head")(jnp.tanh(hidden))

    x = jax.random.normal(jax.random.key(0), (32, 8))
    variables = Net().init(jax.random.key(1), x)
    assert list(propagation.layer_table(propagation.propagation(Net(), variables, x))["layer"]) == ["hidden", "head"]
    _, record = inits.lsuv(Net(), variables, x)
    assert [r["layer"] for r in record] == ["hidden", "head"]
