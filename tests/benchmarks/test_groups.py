"""Per-parameter learning rates: layer classes, path patterns, and the trainer's updates."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from initbench import models
from initbench.benchmarks import cli, data
from initbench.benchmarks.groups import CLASSES, lr_scale_tree, param_class, param_path
from initbench.benchmarks.runner import cohorts
from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options
from initbench.benchmarks.train import batch_indices, build_model, initial_variables, run_keys, train_cohort
from initbench.inits.errors import UsageError


def classes_of(family, input_shape, **config):
    net = models.build(
        family, input_shape=input_shape, num_classes=3, activation="relu", kernel_init="he_normal", **config
    )
    shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, *input_shape)))["params"]
    leaves = jax.tree_util.tree_flatten_with_path(shapes)[0]
    return {param_path(p): param_class(param_path(p), len(leaf.shape)) for p, leaf in leaves}


def test_classes_partition_an_mlp_by_the_layer_naming_contract():
    got = classes_of("mlp", (4,), depth=3, width=8)
    assert got == {
        "layer_000/dense/kernel": "input",
        "layer_001/dense/kernel": "hidden",
        "layer_002/dense/kernel": "hidden",
        "head/dense/kernel": "readout",
        **{f"{m}/dense/bias": "bias" for m in ("layer_000", "layer_001", "layer_002", "head")},
    }
    scanned = classes_of("mlp", (4,), depth=4, width=8, scan=True)  # a stacked kernel is hidden, its bias a bias
    assert scanned["stack_001/layer/dense/kernel"] == "hidden" and scanned["stack_001/layer/dense/bias"] == "bias"


def test_classes_of_a_fixup_resnet():
    got = classes_of("resnet", (8, 8, 3), blocks=(1, 1, 1), width=4, residual_scale=1.0, branch_biases=True)
    assert got["block_00/branch_scale"] == "scalar" and got["block_00/bias_1a"] == "scalar"
    assert got["block_00/conv_a/norm/scale"] == "bias" and got["head/dense/kernel"] == "readout"
    assert set(got.values()) == set(CLASSES)


def test_rules_compose_by_product_and_a_selector_must_select():
    params = {
        "layer_000": {"kernel": np.zeros((4, 8)), "bias": np.zeros(8)},
        "head": {"kernel": np.zeros((8, 3)), "bias": np.zeros(3)},
    }
    scales = lr_scale_tree(params, (("bias", 0.1), ("head/*", 0.5), ("readout", 3.0)))
    assert scales == {"layer_000": {"kernel": 1.0, "bias": 0.1}, "head": {"kernel": 1.5, "bias": 0.05}}
    for bad in ("scalr", "head/dense/*"):  # a misspelled class is a path pattern that selects nothing
        with pytest.raises(
            UsageError, match=re.escape(f"lr_scale selector '{bad}' selects no parameter of m; classes")
        ):
            lr_scale_tree(params, ((bad, 2.0),), "m")
    # a class this model lacks selects nothing here (the runner refuses it only if no model of the grid has it)
    assert lr_scale_tree(params, (("scalar", 2.0),), "m") == lr_scale_tree(params, (), "m")
    # "vector": the bias class outside the classifier (the width-sized vectors a parametrization scales)
    assert lr_scale_tree(params, (("vector", 4.0),), "m") == {
        "layer_000": {"kernel": 1.0, "bias": 4.0},
        "head": {"kernel": 1.0, "bias": 1.0},
    }
    from initbench.benchmarks.groups import classes_present

    assert classes_present(params) == {"input", "readout", "bias", "vector"}
    assert "vector" not in classes_present({"head": {"kernel": np.zeros((8, 3)), "bias": np.zeros(3)}})


def test_a_vector_rule_selects_every_width_sized_vector_of_a_resnet():
    net = models.build(
        "resnet",
        input_shape=(8, 8, 1),
        num_classes=3,
        activation="relu",
        kernel_init="he_normal",
        blocks=(1, 1),
        width=8,
    )
    shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))["params"]
    got = {
        param_path(p): float(v)
        for p, v in jax.tree_util.tree_flatten_with_path(lr_scale_tree(shapes, (("vector", 2.0),)))[0]
    }
    vectors = {p for p, v in got.items() if v == 2.0}
    assert vectors and all(not p.startswith("head/") and not p.endswith("kernel") for p in vectors)
    assert all(got[p] == 1.0 for p in got if p.startswith("head/"))
    assert {p.rsplit("/", 1)[-1] for p in vectors} >= {"scale", "bias"}  # BatchNorm's scale and offset


def spec(lr_scale, *, seed=0, optimizer="sgd", lr=0.1):
    train = TrainSpec(optimizer, lr=lr, steps=20, eval_every=10, lr_scale=options(**lr_scale))
    return RunSpec(
        "t", "groups", ModelSpec("mlp", "tanh", 2, 16), InitSpec("he_normal"), DataSpec("digits", 32), train, seed
    )


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


@pytest.mark.slow
def test_per_parameter_rates_equal_a_hand_written_sgd_loop(digits):
    # an independent loop: p <- p - lr x (its multiplier) x g, the multipliers written out by hand
    rules = {"readout": 0.5, "bias": 0.1, "layer_001/*": 3.0}
    s = spec(rules)
    rows = pd.concat([r for r, _ in train_cohort([s], digits, devices=jax.devices()[:1])])
    model = build_model(s, digits)
    params = initial_variables(s, digits)["params"]
    by_hand = {
        "layer_000": {"dense": {"kernel": 1.0, "bias": 0.1}},
        "layer_001": {"dense": {"kernel": 3.0, "bias": 0.3}},
        "head": {"dense": {"kernel": 0.5, "bias": 0.1}},  # classes partition: the head's bias is a bias
    }
    x, y = jnp.asarray(digits.x_train), jnp.asarray(digits.y_train)

    def loss(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, xb), yb).mean()

    idx = batch_indices(run_keys(s.seed)[1], jnp.arange(20, dtype=jnp.int32), n_train=len(y), batch_size=32)
    for t in range(20):
        grads = jax.grad(loss)(params, x[idx[t]], y[idx[t]])
        params = jax.tree_util.tree_map(lambda p, g, m: p + (-0.1 * g) * m, params, grads, by_hand)
    n = len(digits.y_test)  # the trainer's train loss reads as many training examples as the test set has
    got = rows[(rows["step"] == 20) & (rows["split"] == "train") & (rows["metric"] == "loss")]["value"].iloc[0]
    assert got == pytest.approx(float(loss(params, x[:n], y[:n])), rel=1e-5)
    plain = pd.concat([r for r, _ in train_cohort([spec({})], digits, devices=jax.devices()[:1])])
    other = plain[(plain["step"] == 20) & (plain["split"] == "train") & (plain["metric"] == "loss")]["value"].iloc[0]
    assert abs(other - got) > 1e-3  # the rules changed the training


def test_an_lr_scale_sweep_is_one_program_and_members_equal_their_runs_alone(digits):
    grid = [spec(r, optimizer="momentum") for r in ({}, {"hidden": 1.0}, {"bias": 0.1}, {"readout": 0.2, "input": 5.0})]
    assert len(cohorts(grid)) == 1
    assert grid[0].run_id != grid[2].run_id
    one = jax.devices()[:1]
    together = pd.concat([r for r, _ in train_cohort(grid, digits, devices=one, width=4)])
    ones = [together[together["run_id"] == s.run_id].sort_values(["step", "split", "metric"]) for s in grid[:2]]
    np.testing.assert_array_equal(ones[0]["value"].to_numpy(), ones[1]["value"].to_numpy())  # x 1 is exact
    for s in grid[2:]:
        alone = pd.concat([r for r, _ in train_cohort([s], digits, devices=one, width=4)])
        mine = together[together["run_id"] == s.run_id]
        keys = ["step", "split", "metric"]
        np.testing.assert_array_equal(
            mine.sort_values(keys)["value"].to_numpy(), alone.sort_values(keys)["value"].to_numpy()
        )


def test_the_command_line_refuses_a_selector_that_selects_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", "quick", "--scale", "smoke", "--lr-scale", "scalar=0.1", "--out", str(out), "--quiet"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "lr_scale selector 'scalar' selects no parameter of any model of the grid (lenet5, mlp(depth=2, width=32)"
        in err
    )
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    argv[5] = "head/dense/kernl=0.5"  # a path pattern must select in every model
    assert cli.main(argv) == 2
    assert (
        "lr_scale selector 'head/dense/kernl' selects no parameter of mlp(depth=2, width=32)" in capsys.readouterr().err
    )
