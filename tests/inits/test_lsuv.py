"""LSUV (Mishkin & Matas 2016): every layer's output variance within tol on the batch, linen and nnx."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits, models

X = jax.random.normal(jax.random.key(1), (256, 32))


def mlp(activation, scan=False, depth=8):
    return models.build(
        "mlp",
        input_shape=(32,),
        num_classes=10,
        depth=depth,
        width=64,
        activation=activation,
        kernel_init="he_normal",
        scan=scan,
    )


def layer_outputs(model, variables, x):
    """Each Dense's output, computed independently of lsuv's own capture (the model's sown pre-activations)."""
    _, state = model.apply(variables, x, mutable=["intermediates"])
    return [layer["pre_activation"] for layer in models.per_layer(state["intermediates"])]


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_every_layer_ends_at_unit_variance(activation):
    net = mlp(activation)
    variables = net.init(jax.random.key(0), X[:1])
    new, record = inits.lsuv(net, variables, X, key=jax.random.key(2))
    assert [r["layer"] for r in record] == [f"{models.layer_name(i)}/dense" for i in range(8)] + ["head/dense"]
    assert all(r["converged"] and r["iterations"] >= 1 for r in record)
    hidden = layer_outputs(net, new, X)
    assert len(hidden) == 9  # 8 hidden layers and the head
    for out in hidden:
        assert abs(float(jnp.var(out)) - 1.0) < 0.1
    # with zero biases one rescaling is exact: the variance scales with the kernel's square
    assert max(abs(r["variance"] - 1.0) for r in record) < 1e-4


def test_orthonormal_pre_init_and_rescale_keep_orthogonal_directions():
    net = mlp("tanh", depth=2)
    new, _ = inits.lsuv(net, net.init(jax.random.key(0), X[:1]), X, key=jax.random.key(2))
    w = np.asarray(new["params"][models.layer_name(1)]["dense"]["kernel"], np.float64)  # (64, 64)
    gram = w.T @ w
    np.testing.assert_allclose(gram, gram[0, 0] * np.eye(64), atol=1e-5 * gram[0, 0])  # c * orthogonal


def test_without_a_key_the_given_kernels_are_only_rescaled():
    net = mlp("relu", depth=3)
    variables = net.init(jax.random.key(0), X[:1])
    new, _ = inits.lsuv(net, variables, X)
    for name in (models.layer_name(0), models.layer_name(2), "head"):
        before = np.asarray(variables["params"][name]["dense"]["kernel"], np.float64)
        after = np.asarray(new["params"][name]["dense"]["kernel"], np.float64)
        ratio = after / before
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-5)


def test_deterministic_in_the_key():
    net = mlp("tanh", depth=3)
    variables = net.init(jax.random.key(0), X[:1])
    a, _ = inits.lsuv(net, variables, X, key=jax.random.key(5))
    b, _ = inits.lsuv(net, variables, X, key=jax.random.key(5))
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow  # 7 s of compilation
def test_convolutions():
    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            for _ in range(4):
                x = nn.relu(nn.Conv(8, (3, 3))(x))
            return nn.Dense(10)(x.reshape(x.shape[0], -1))

    x = jax.random.normal(jax.random.key(1), (32, 8, 8, 3))
    model = CNN()
    new, record = inits.lsuv(model, model.init(jax.random.key(0), x), x, key=jax.random.key(3))
    assert [r["layer"] for r in record] == ["Conv_0", "Conv_1", "Conv_2", "Conv_3", "Dense_0"]
    assert all(abs(r["variance"] - 1.0) < 0.1 for r in record)
    h = x
    for i in range(4):
        h = nn.Conv(8, (3, 3)).apply({"params": new["params"][f"Conv_{i}"]}, h)
        assert abs(float(jnp.var(h)) - 1.0) < 0.1
        h = jax.nn.relu(h)


@pytest.mark.slow  # nnx runs eagerly: 3 s
def test_an_nnx_module_is_updated_in_place_to_unit_variance():
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List([nnx.Linear(32, 32, rngs=rngs) for _ in range(4)])
            self.head = nnx.Linear(32, 10, rngs=rngs)

        def __call__(self, x):
            for layer in self.layers:
                x = jnp.tanh(layer(x))
            return self.head(x)

    net = Net(nnx.Rngs(0))
    new, record = inits.lsuv(net, None, X, key=jax.random.key(4))
    assert [r["layer"] for r in record] == ["layers/0", "layers/1", "layers/2", "layers/3", "head"]
    assert new is net  # nnx's convention: the caller's module holds the result
    h = X
    for layer in new.layers:
        pre = layer(h)
        assert abs(float(jnp.var(pre)) - 1.0) < 0.1
        h = jnp.tanh(pre)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tol": 0.0}, "lsuv: tol must be a number > 0, got 0.0"),
        ({"max_iters": 0}, "lsuv: max_iters must be a positive integer, got 0"),
        ({"target_variance": -1.0}, "target_variance must be a number > 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    net = mlp("tanh", depth=2)
    with pytest.raises(ValueError, match=match):
        inits.lsuv(net, net.init(jax.random.key(0), X[:1]), X, **kwargs)


def test_a_scanned_stack_is_named_as_the_problem():
    net = mlp("tanh", scan=True, depth=4)
    with pytest.raises(ValueError, match="build it with scan=False"):
        inits.lsuv(net, net.init(jax.random.key(0), X[:1]), X)


def test_a_dead_layer_is_named():
    net = models.build(
        "mlp", input_shape=(32,), num_classes=10, depth=2, width=16, activation="relu", kernel_init="zeros"
    )
    with pytest.raises(ValueError, match=r"layer 'layer_000/dense' has output variance 0.0 on this batch"):
        inits.lsuv(net, net.init(jax.random.key(0), X[:1]), X)


def test_a_model_without_linear_layers():
    class Nothing(nn.Module):
        @nn.compact
        def __call__(self, x):
            return jnp.tanh(x)

    with pytest.raises(ValueError, match="calls no layer"):
        inits.lsuv(Nothing(), {"params": {}}, X)


def test_a_second_eager_call_reuses_the_compiled_program():
    from initbench.inits import _model

    net = mlp("tanh", depth=3)
    variables = net.init(jax.random.key(0), X[:1])
    inits.lsuv(net, variables, X, key=jax.random.key(1))
    size = len(_model._COMPILED)
    again, _ = inits.lsuv(net, variables, X, key=jax.random.key(2))  # another key: the same program
    assert len(_model._COMPILED) == size
    traced = jax.jit(lambda k: inits.lsuv(net, variables, X, key=k)[0])(jax.random.key(2))  # the traced path
    for a, b in zip(jax.tree_util.tree_leaves(again), jax.tree_util.tree_leaves(traced), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=0)
