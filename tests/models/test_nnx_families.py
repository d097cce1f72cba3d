"""models.build_nnx: initbench's families as nnx modules (Flax's bridge), equal to the linen model they wrap."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from initbench import inits, models
from initbench.inits.errors import UsageError

X = jax.random.normal(jax.random.key(1), (16, 8, 8, 1))
RESNET = {"blocks": (2,), "width": 8, "activation": "relu", "kernel_init": "he_normal"}


def variables_of(net):
    out = {"params": nnx.to_pure_dict(nnx.state(net, nnx.Param))}
    stats = nnx.to_pure_dict(nnx.state(net, nnx.BatchStat))
    return {**out, "batch_stats": stats} if stats else out


@pytest.mark.parametrize(
    ("family", "config", "x"),
    [
        ("mlp", {"depth": 3, "width": 16, "activation": "tanh", "kernel_init": "glorot_uniform"}, X.reshape(16, 64)),
        pytest.param("resnet", {**RESNET, "normalization": "batchnorm"}, X, marks=pytest.mark.slow),  # 3 s
    ],
)
def test_the_nnx_module_computes_what_the_linen_model_computes_with_its_parameters(family, config, x):
    net = models.build_nnx(family, rngs=nnx.Rngs(0), input_shape=x.shape[1:], **config)
    linen = models.build(family, input_shape=x.shape[1:], num_classes=10, **config)
    variables = variables_of(net)
    reference = jax.eval_shape(lambda: linen.init(jax.random.key(0), x))
    assert jax.tree.structure(variables) == jax.tree.structure(reference)  # the same names and shapes
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, reference)
    np.testing.assert_array_equal(np.asarray(net(x)), np.asarray(linen.apply(variables, x)))
    if "batch_stats" in variables:  # training mode: the statistics update in place, as linen's mutable update
        out, updates = linen.apply(variables, x, train=True, mutable=["batch_stats"])
        np.testing.assert_array_equal(np.asarray(net(x, train=True)), np.asarray(out))
        for a, b in zip(jax.tree.leaves(variables_of(net)["batch_stats"]), jax.tree.leaves(updates), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_its_weights_are_drawn_by_the_familys_initializer():
    net = models.build_nnx(
        "mlp", rngs=nnx.Rngs(0), input_shape=(256,), depth=1, width=512, activation="relu", kernel_init="he_normal"
    )
    w = np.asarray(nnx.to_pure_dict(nnx.state(net, nnx.Param))["layer_000"]["dense"]["kernel"])
    # He normal: Var w = 2 / 256 on 131,072 draws; the sample variance's relative SE is sqrt(2/n) = 0.4%
    assert abs(w.var() / (2 / 256) - 1) < 0.02


def test_a_scheme_runs_on_the_bridged_family_as_on_its_linen_model_in_place():
    config = {**RESNET, "normalization": "none", "residual_scale": 1.0, "branch_biases": True}
    net = models.build_nnx("resnet", rngs=nnx.Rngs(0), input_shape=(8, 8, 1), **config)
    linen = models.build("resnet", input_shape=(8, 8, 1), num_classes=10, **config)
    expected, expected_record = inits.fixup(linen, variables_of(net), X)
    returned, record = inits.fixup(net, None, X)
    assert returned is net and record == expected_record
    for a, b in zip(jax.tree.leaves(variables_of(net)), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.asarray(variables_of(net)["params"]["head"]["dense"]["kernel"]).any()  # Fixup's zero classifier


@pytest.mark.slow  # 3 s
def test_it_trains_with_an_nnx_optimizer():
    from initbench.benchmarks import data

    digits = data.load("digits")
    x, y = jnp.asarray(digits.x_train[:256]).reshape(256, 64), jnp.asarray(digits.y_train[:256])
    net = models.build_nnx(
        "mlp", rngs=nnx.Rngs(0), input_shape=(64,), depth=2, width=32, activation="relu", kernel_init="he_normal"
    )
    optimizer = nnx.Optimizer(net, optax.sgd(0.1), wrt=nnx.Param)

    def loss(model):
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    @nnx.jit
    def step(model, optimizer):
        value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return value

    first = float(step(net, optimizer))
    for _ in range(30):
        last = float(step(net, optimizer))
    assert last < 0.5 * first  # 31 full-batch steps on 256 digits


def test_bad_input_is_one_line():
    with pytest.raises(UsageError, match=r"rngs must be an nnx.Rngs \(nnx.Rngs\(0\)\), got int"):
        models.build_nnx("mlp", rngs=0, input_shape=(4,), depth=1, width=4, activation="relu", kernel_init="he_normal")
    with pytest.raises(UsageError, match=r"rngs needs a params \(or default\) stream"):
        models.build_nnx(
            "mlp",
            rngs=nnx.Rngs(dropout=0),
            input_shape=(4,),
            depth=1,
            width=4,
            activation="relu",
            kernel_init="he_normal",
        )
    with pytest.raises(UsageError, match="mlp needs field"):
        models.build_nnx("mlp", rngs=nnx.Rngs(0), input_shape=(4,), depth=1, width=4, activation="relu")
