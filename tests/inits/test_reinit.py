"""inits.reinit: chosen leaves of an existing tree drawn anew, the rest untouched."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from initbench import inits, models

KEY = jax.random.key(7)


@pytest.fixture(scope="module")
def params():
    net = models.build(
        "mlp", input_shape=(8,), num_classes=3, depth=3, width=16, activation="relu", kernel_init="he_normal"
    )
    return net.init(jax.random.key(0), jnp.ones((1, 8)))["params"]


def leaves(tree):
    from initbench.inits._reinit import leaf_path

    return {leaf_path(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_matching_leaves_are_redrawn_and_the_rest_are_the_same_arrays(params):
    new = inits.reinit(params, KEY, {"head/*": inits.zeros(), "*kernel": inits.orthogonal()})
    old, got = leaves(params), leaves(new)
    assert set(got) == set(old)
    for path, value in got.items():
        if path.startswith("head/"):
            assert not value.any(), path  # the first matching rule wins: the head's kernel is zeros too
        elif path.endswith("kernel"):
            assert value.shape == old[path].shape and value.dtype == old[path].dtype
            q = value if value.shape[0] >= value.shape[1] else value.T
            np.testing.assert_allclose(q.T @ q, np.eye(q.shape[1]), atol=1e-5)  # orthonormal columns
        else:
            np.testing.assert_array_equal(value, old[path])  # biases untouched


def test_a_leaf_draw_depends_on_the_key_and_its_path_only(params):
    one = leaves(inits.reinit(params, KEY, {"layer_001/dense/kernel": inits.normal(1.0)}))
    two = leaves(inits.reinit(params, KEY, {"layer_001/dense/kernel": inits.normal(1.0), "head/*": inits.ones()}))
    np.testing.assert_array_equal(one["layer_001/dense/kernel"], two["layer_001/dense/kernel"])
    other = leaves(inits.reinit(params, jax.random.key(8), {"layer_001/dense/kernel": inits.normal(1.0)}))
    assert not np.array_equal(one["layer_001/dense/kernel"], other["layer_001/dense/kernel"])
    jitted = jax.jit(lambda p, k: inits.reinit(p, k, {"layer_001/dense/kernel": inits.normal(1.0)}))(params, KEY)
    np.testing.assert_array_equal(leaves(jitted)["layer_001/dense/kernel"], one["layer_001/dense/kernel"])


def test_an_nnx_state_round_trips_into_its_module():
    model = nnx.Linear(5, 3, rngs=nnx.Rngs(0))
    bias = np.asarray(model.bias[...])
    nnx.update(model, inits.reinit(nnx.state(model, nnx.Param), KEY, {"kernel": inits.constant(0.5)}))
    np.testing.assert_array_equal(np.asarray(model.kernel[...]), np.full((5, 3), 0.5, np.float32))
    np.testing.assert_array_equal(np.asarray(model.bias[...]), bias)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"*/conv/kernel": inits.zeros()}, r"reinit: pattern\(s\) '\*/conv/kernel' match no leaf; the paths are: head"),
        ({"kernel": inits.zeros()}, r"pattern\(s\) 'kernel' match no leaf"),  # a path is matched whole
        ({}, r"reinit: give at least one"),
        ({"*kernel": "he_normal"}, r"reinit: a rule is 'pattern': initializer, got '\*kernel': 'he_normal'"),
        ([("*kernel", inits.zeros())], r"reinit: rules must be a mapping \{pattern: initializer\}"),
        ({"*": inits.zeros(), "head/*": inits.ones()}, r"reinit: pattern 'head/\*' is shadowed: every leaf it matches"),
        (
            {"head/dense/kernel": lambda k, s, d: jnp.zeros((2, 2), jnp.int8)},
            r"reinit: rule 'head/dense/kernel' drew \(2, 2\) int8 for leaf 'head/dense/kernel', which is \(16, 3\)",
        ),
    ],
)
def test_bad_rules_are_one_line(params, rules, message):
    with pytest.raises(ValueError, match=message) as err:
        inits.reinit(params, KEY, rules)
    assert "\n" not in str(err.value)


def test_linen_variables_carry_the_collection_in_the_path():
    variables = nn.Dense(2).init(jax.random.key(0), jnp.ones((1, 3)))
    new = inits.reinit(variables, KEY, {"params/bias": inits.ones()})
    np.testing.assert_array_equal(np.asarray(new["params"]["bias"]), np.ones(2, np.float32))


def test_a_leaf_that_is_no_array_is_named():
    with pytest.raises(ValueError, match=r"reinit: leaf 'kernel' is a float, not an array: nothing to draw"):
        inits.reinit({"kernel": 1.5}, KEY, {"kernel": inits.zeros()})
