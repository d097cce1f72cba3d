"""Fixup, SkipInit and ZerO over a model: exactly as the papers specify, jit/vmap-able, bad structure refused."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits, models
from initbench.inits._structured import zero_hadamard_matrix

X = jax.random.normal(jax.random.key(0), (8, 8, 8, 3))


def resnet(blocks=(2, 2), **fields):
    config = {"normalization": "none", "residual_scale": 1.0, "branch_biases": True, **fields}
    return models.build(
        "resnet",
        input_shape=(8, 8, 3),
        num_classes=10,
        blocks=blocks,
        width=8,
        activation="relu",
        kernel_init="he_normal",
        **config,
    )


@pytest.fixture(scope="module")
def fixup_case():
    net = resnet()
    variables = net.init(jax.random.key(1), X[:1])
    new, record = inits.fixup(net, variables, X)
    return net, variables, new, record


def kernel(params, layer):
    node = params
    for part in layer.split("/"):
        node = node[part]
    return node["kernel"]


def test_fixup_zeros_and_scalings_exactly_as_specified(fixup_case):
    _net, old, new, record = fixup_case
    p, q = old["params"], new["params"]
    branches = [f"block_{i:02d}" for i in range(4)]
    assert record["branches"] == 4 and record["layers_per_branch"] == 2
    scale = 4 ** (-1 / (2 * 2 - 2))  # L^(-1/(2m-2)) with L = 4 branches of m = 2 layers
    assert record["scale"] == pytest.approx(scale)
    assert record["zeroed"] == ["head/dense", *(f"{b}/conv_b/conv" for b in branches)]
    for b in branches:
        assert not np.any(np.asarray(q[b]["conv_b"]["conv"]["kernel"]))  # last layer of each branch: 0
        np.testing.assert_array_equal(  # the other branch layer: He x L^(-1/2), bitwise the product
            np.asarray(q[b]["conv_a"]["conv"]["kernel"]),
            np.asarray(p[b]["conv_a"]["conv"]["kernel"] * jnp.float32(scale)),
        )
        assert float(q[b]["branch_scale"]) == 1.0
        assert all(float(q[b][f"bias_{s}"]) == 0.0 for s in ("1a", "1b", "2a", "2b"))
    assert not np.any(np.asarray(q["head"]["dense"]["kernel"])) and not np.any(np.asarray(q["head"]["dense"]["bias"]))
    # outside the branches: the stem and the stride-2 projection keep their He init
    np.testing.assert_array_equal(np.asarray(q["stem"]["conv"]["kernel"]), np.asarray(p["stem"]["conv"]["kernel"]))
    np.testing.assert_array_equal(
        np.asarray(q["block_02"]["shortcut"]["kernel"]), np.asarray(p["block_02"]["shortcut"]["kernel"])
    )


def test_fixup_starts_at_ln_classes_and_every_block_is_the_identity(fixup_case):
    net, _, new, _ = fixup_case
    logits, state = net.apply(new, X, mutable=["intermediates"])
    assert not np.any(np.asarray(logits))  # zero classifier: softmax uniform, loss ln(10) for any label
    labels = jnp.arange(8) % 10
    loss = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(8), labels])
    assert float(loss) == pytest.approx(math.log(10), rel=1e-6)
    layers = {x["layer"]: x for x in models.per_layer(state["intermediates"])}
    stem = layers["stem"]["activation"]
    # block_00 and block_01 (no projection): relu(x + 0) = x on the stem's non-negative output
    np.testing.assert_allclose(np.asarray(layers["block_01"]["activation"]), np.asarray(stem), rtol=0, atol=0)


def test_fixup_jit_and_vmap_over_seeds_equal_eager():
    net = resnet(blocks=(2,))
    init = lambda k: inits.fixup(net, net.init(k, X[:1]), X)[0]  # noqa: E731
    keys = jax.random.split(jax.random.key(3), 2)
    eager = [init(k) for k in keys]
    batched = jax.jit(jax.vmap(init))(keys)
    for j in range(2):
        for a, b in zip(jax.tree_util.tree_leaves(eager[j]), jax.tree_util.tree_leaves(batched), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[j]), rtol=1e-6, atol=0)


def test_fixup_key_redraws_he_normal_kernels():
    net = resnet(blocks=(2,))
    v = net.init(jax.random.key(1), X[:1])
    new, _record = inits.fixup(net, v, X, key=jax.random.key(9))
    stem = np.asarray(new["params"]["stem"]["conv"]["kernel"])
    assert not np.array_equal(stem, np.asarray(v["params"]["stem"]["conv"]["kernel"]))
    # He normal: Var = 2 / fan_in, fan_in = 3 * 3 * 3; 216 entries: 4 standard errors of a sample variance
    assert np.var(stem) * 27 / 2 == pytest.approx(1.0, abs=4 * math.sqrt(2 / stem.size))


def test_skipinit_sets_every_multiplier_to_alpha_and_leaves_kernels():
    net = resnet(blocks=(2, 1), residual_scale=0.0, branch_biases=False)
    v = net.init(jax.random.key(1), X[:1])
    v["params"]["block_00"]["branch_scale"] = jnp.float32(0.7)  # whatever it was
    new, record = inits.skipinit(net, v, X)
    assert record == {"branches": 3, "alpha": 0.0}
    for b in ("block_00", "block_01", "block_02"):
        assert float(new["params"][b]["branch_scale"]) == 0.0
        np.testing.assert_array_equal(
            np.asarray(new["params"][b]["conv_a"]["conv"]["kernel"]),
            np.asarray(v["params"][b]["conv_a"]["conv"]["kernel"]),
        )
    # alpha = 0: every block without a projection is the identity (after the ReLU it ends in)
    _, state = net.apply(new, X, mutable=["intermediates"])
    layers = {x["layer"]: x for x in models.per_layer(state["intermediates"])}
    np.testing.assert_array_equal(
        np.asarray(layers["block_01"]["activation"]), np.asarray(layers["stem"]["activation"])
    )


@pytest.mark.parametrize("alpha", [1e39, float("nan"), True, "0"])
def test_skipinit_refuses_an_alpha_that_is_no_float32_number(alpha):
    net = resnet(blocks=(1,), residual_scale=0.0, branch_biases=False)
    v = net.init(jax.random.key(1), X[:1])
    with pytest.raises(ValueError, match=r"skipinit: alpha must be a finite number \(in float32\)"):
        inits.skipinit(net, v, X, alpha=alpha)  # 1e39 gave infinite multipliers


def test_zero_init_is_its_closed_form_and_deterministic():
    net = models.build(
        "mlp",
        input_shape=(12,),
        num_classes=10,
        depth=3,
        width=32,
        activation="relu",
        kernel_init="he_normal",
        bias_init="normal",
    )
    x = jax.random.normal(jax.random.key(0), (4, 12))
    a, record = inits.zero_init(net, net.init(jax.random.key(1), x[:1]), x)
    b, _ = inits.zero_init(net, net.init(jax.random.key(2), x[:1]), x)
    for u, w in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(w))  # no randomness: seeds agree bitwise
    p = a["params"]
    np.testing.assert_array_equal(np.asarray(p["layer_000"]["dense"]["kernel"]), zero_hadamard_matrix(12, 32))
    np.testing.assert_array_equal(np.asarray(p["layer_001"]["dense"]["kernel"]), np.eye(32))
    np.testing.assert_array_equal(np.asarray(p["head"]["dense"]["kernel"]), np.eye(32, 10))
    assert all(not np.any(np.asarray(p[k]["dense"]["bias"])) for k in p)
    assert record["hadamard"] == ["layer_000/dense"] and record["zeroed"] == []
    # 12 -> 32 widens: c = 2^{-(m-1)/2} with m = 5 and entries +-c: the Hadamard rows, not a partial identity
    first = np.asarray(p["layer_000"]["dense"]["kernel"])
    assert set(np.unique(np.abs(first))) == {2.0**-2}


def test_zero_init_on_a_resnet_zeros_branch_ends_and_classifier_and_centres_the_rest():
    net = resnet(blocks=(2,), branch_biases=False)
    new, record = inits.zero_init(net, net.init(jax.random.key(1), X[:1]), X)
    p = new["params"]
    assert record["zeroed"] == ["block_00/conv_b/conv", "block_01/conv_b/conv", "head/dense"]
    conv_a = np.asarray(p["block_00"]["conv_a"]["conv"]["kernel"])
    expected = np.zeros((3, 3, 8, 8))
    expected[1, 1] = np.eye(8)
    np.testing.assert_array_equal(conv_a, expected)  # identity on the centre tap
    assert float(p["block_00"]["branch_scale"]) == 1.0


def test_fixup_on_a_plain_mlp_names_what_is_missing():
    net = models.build(
        "mlp", input_shape=(12,), num_classes=10, depth=3, width=16, activation="relu", kernel_init="he_normal"
    )
    x = jnp.ones((2, 12))
    with pytest.raises(
        ValueError, match="fixup: the model has no residual branches: no module owns a scalar 'branch_scale' parameter"
    ) as err:
        inits.fixup(net, net.init(jax.random.key(0), x[:1]), x)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="skipinit: the model has no residual branches"):
        inits.skipinit(net, net.init(jax.random.key(0), x[:1]), x)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"normalization": "batchnorm"}, "fixup is for residual nets without normalization, found batch_stats"),
        ({"branch_biases": False}, "residual branch 'block_00' has no scalar biases"),
    ],
)
def test_fixup_refuses_normalization_and_missing_biases(fields, match):
    net = resnet(blocks=(1,), **fields)
    with pytest.raises(ValueError, match=match):
        inits.fixup(net, net.init(jax.random.key(0), X[:1]), X)


def test_fixup_refuses_one_layer_branches():
    class Block(nn.Module):  # a residual block whose branch is one layer: Fixup's exponent 1/(2m-2) is undefined
        @nn.compact
        def __call__(self, h):
            return h + self.param("branch_scale", nn.initializers.ones, ()) * nn.Dense(8)(h)

    class OneLayer(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(Block()(nn.Dense(8)(x)))

    x = jnp.ones((2, 4))
    model = OneLayer()
    with pytest.raises(ValueError, match=r"fixup: needs residual branches of m >= 2 layers"):
        inits.fixup(model, model.init(jax.random.key(0), x), x)


def test_a_scheme_name_is_not_a_per_tensor_initializer():
    with pytest.raises(ValueError, match="fixup is a model-level scheme"):
        inits.get("fixup")
    assert inits.SCHEMES.names() == ("lsuv", "fixup", "skipinit", "rezero", "zero_init", "metainit", "gradinit")
    assert not set(inits.SCHEMES.names()) & set(inits.INITS.names())
    for s in inits.SCHEMES.values():  # every registered scheme resolves and takes the common arguments
        params = list(inspect_params(s.function))
        assert params[:3] == ["model", "variables", "batch"] and "key" in params


def inspect_params(fn):
    import inspect

    return inspect.signature(fn).parameters


class _DenseGeneralNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.DenseGeneral((2, 4), use_bias=False)(x)  # 8 -> 8 as a (8, 2, 4) kernel
        return nn.Dense(3)(h.reshape(h.shape[0], -1))


def test_dense_general_kernels_are_the_matrices_they_apply():
    x = jnp.eye(8)
    model = _DenseGeneralNet()
    v = model.init(jax.random.key(0), x)
    new, record = inits.zero_init(model, v, x)
    kernel = np.asarray(new["params"]["DenseGeneral_0"]["kernel"])
    np.testing.assert_array_equal(kernel.reshape(8, 8), np.eye(8))  # square 8 -> 8: the identity, not a "centre tap"
    assert record["identity"] == ["DenseGeneral_0", "Dense_0"]
    lsuv_vars, _ = inits.lsuv(model, v, jax.random.normal(jax.random.key(1), (64, 8)), key=jax.random.key(2))
    w = np.asarray(lsuv_vars["params"]["DenseGeneral_0"]["kernel"]).reshape(8, 8)
    gram = w.T @ w
    np.testing.assert_allclose(gram / gram[0, 0], np.eye(8), atol=1e-5)  # orthonormal up to LSUV's one scale


def test_batchnorm_in_training_mode_is_captured_and_refused_by_fixup_in_one_line():
    class Block(nn.Module):
        @nn.compact
        def __call__(self, h):
            y = nn.Dense(8)(nn.relu(nn.Dense(8)(h)))
            return h + self.param("branch_scale", nn.initializers.ones, ()) * y

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.BatchNorm(use_running_average=False)(nn.Dense(8)(x))
            return nn.Dense(3)(Block()(Block()(h)))

    x = jax.random.normal(jax.random.key(0), (32, 4))
    model = Net()
    v = model.init(jax.random.key(1), x)
    _new, record = inits.lsuv(model, v, x, key=jax.random.key(2))  # batch statistics are passed in, updates dropped
    assert len(record) == 6 and all(r["converged"] for r in record)
    with pytest.raises(ValueError, match="fixup is for residual nets without normalization, found batch_stats"):
        inits.fixup(model, v, x)


def test_a_single_block_as_the_model_and_a_dense_named_like_a_norm():
    class Block(nn.Module):  # the whole model is one residual block: its branch is at the root
        @nn.compact
        def __call__(self, h):
            y = nn.Dense(4, name="input_normalizer")(h)  # a Dense whose name contains "norm" is not normalization
            y = nn.relu(nn.Dense(4, name="middle")(y))
            y = nn.Dense(4, name="last")(y)
            return (
                h
                + self.param("branch_scale", nn.initializers.ones, ()) * y
                + self.param("bias_out", nn.initializers.zeros, ())
            )

    x = jax.random.normal(jax.random.key(0), (8, 4))
    model = Block()
    new, record = inits.fixup(model, model.init(jax.random.key(1), x), x, shortcut_names="none")
    assert record["branches"] == 1 and record["layers_per_branch"] == 3
    assert record["zeroed"] == ["last"]  # the last layer called: classifier and branch end alike
    np.testing.assert_array_equal(np.asarray(model.apply(new, x)), np.asarray(x))  # the block starts as the identity


@pytest.mark.parametrize(
    "scheme",
    [
        pytest.param("lsuv", marks=pytest.mark.slow),  # ~6 s of compilation each
        "zero_init",
        pytest.param("skipinit", marks=pytest.mark.slow),
    ],
)
def test_schemes_vmapped_over_seeds_equal_each_seed_alone(scheme):
    if scheme == "skipinit":
        net = resnet(blocks=(1,), residual_scale=0.0, branch_biases=False)
        x = X
    else:
        net = models.build(
            "mlp", input_shape=(12,), num_classes=4, depth=2, width=16, activation="tanh", kernel_init="orthogonal"
        )
        x = jax.random.normal(jax.random.key(0), (32, 12))
    fn = getattr(inits, scheme)
    init = lambda k: fn(net, net.init(k, x[:1]), x)[0]  # noqa: E731
    keys = jax.random.split(jax.random.key(5), 3)
    batched = jax.jit(jax.vmap(init))(keys)
    for j, k in enumerate(keys):
        for a, b in zip(jax.tree_util.tree_leaves(init(k)), jax.tree_util.tree_leaves(batched), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[j]), rtol=2e-5, atol=1e-6)


def test_schemes_name_a_bad_shortcut_list_and_empty_variables():
    net = resnet(blocks=(1,), residual_scale=0.0, branch_biases=False)
    v = net.init(jax.random.key(1), X[:1])
    with pytest.raises(ValueError, match=r"fixup: shortcut_names must be a name or a sequence of names, got 5"):
        inits.fixup(net, v, X, shortcut_names=5)  # was "argument of type 'int' is not iterable"
    with pytest.raises(
        ValueError, match=r"lsuv: a linen model needs its variables \(model.init\(key, batch\)\), got \{\}"
    ):
        inits.lsuv(net, {}, X)  # was flax's ScopeCollectionNotFound


@pytest.mark.slow  # three ResNets initialized and applied: ~5 s
@pytest.mark.parametrize("normalization", ["none", "batchnorm", "layernorm"])
def test_rezero_zeroes_every_multiplier_keeps_every_layer_and_allows_normalization(normalization):
    net = resnet(blocks=(2, 1), normalization=normalization, residual_scale=0.7, branch_biases=False)
    v = net.init(jax.random.key(1), X[:1])
    new, record = inits.rezero(net, v, X)
    assert record == {"branches": 3}
    flat_old = jax.tree_util.tree_leaves_with_path(v["params"])
    flat_new = dict(jax.tree_util.tree_leaves_with_path(new["params"]))
    for path, leaf in flat_old:  # the multipliers are 0 and every other parameter is bitwise unchanged
        if path[-1].key == "branch_scale":
            assert float(flat_new[path]) == 0.0
        else:
            np.testing.assert_array_equal(np.asarray(flat_new[path]), np.asarray(leaf))
    # every block without a projection is exactly the identity (after the ReLU it ends in), whatever its norm
    mutable = ["intermediates", "batch_stats"] if normalization == "batchnorm" else ["intermediates"]
    _, state = net.apply(new, X, mutable=mutable, **({"train": True} if normalization == "batchnorm" else {}))
    layers = {x["layer"]: x for x in models.per_layer(state["intermediates"])}
    np.testing.assert_array_equal(
        np.asarray(layers["block_01"]["activation"]), np.asarray(layers["stem"]["activation"])
    )


def test_rezero_needs_branch_multipliers_and_says_how_a_users_block_gets_one():
    mlp = models.build(
        "mlp", input_shape=(4,), num_classes=3, depth=2, width=8, activation="relu", kernel_init="he_normal"
    )
    v = mlp.init(jax.random.key(0), jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match="give each residual block a learned scalar named 'branch_scale'"):
        inits.rezero(mlp, v, jnp.zeros((2, 4)))
    net = resnet(normalization="batchnorm", residual_scale=0.0, branch_biases=False)  # SkipInit's paper: none
    with pytest.raises(ValueError, match=r"without normalization, found batch_stats.* or use rezero"):
        inits.skipinit(net, net.init(jax.random.key(1), X[:1]), X)
