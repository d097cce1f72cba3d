"""MetaInit (Dauphin & Schoenholz 2019) and GradInit (Zhu et al. 2021): each lowers its own objective,
rescales every tensor by one scalar, is pure under jit and vmap, and refuses bad input in one line."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from initbench import inits, models
from initbench.inits import gradinit, metainit
from initbench.inits.errors import UsageError

X = jax.random.normal(jax.random.key(1), (128, 16))
Y = jax.random.randint(jax.random.key(2), (128,), 0, 4)


def mlp(sigma_w2, depth=6):
    return models.build(
        "mlp",
        input_shape=(16,),
        num_classes=4,
        depth=depth,
        width=32,
        activation="tanh",
        kernel_init=inits.variance_scaling(sigma_w2, "fan_in", "normal"),
    )


def loss_of(net):
    def loss(params, x, y):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(net.apply({"params": params}, x), y))

    return loss


def gradient_quotient(net, x, y, eps=1e-5):
    """The paper's GQ as a jitted ``params -> float``, written independently of the module: Hg as the gradient of
    ||g||^2 / 2 (its appendix code)."""
    loss = loss_of(net)

    @jax.jit
    def terms(params):
        g = jax.grad(loss)(params, x, y)
        half_sq = lambda p: 0.5 * sum(jnp.sum(a**2) for a in jax.tree_util.tree_leaves(jax.grad(loss)(p, x, y)))  # noqa: E731
        hg = jax.grad(half_sq)(params)
        g, hg = jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(hg)
        signs = [jnp.where(a >= 0, 1.0, -1.0) for a in g]  # sign(0) = +1
        return [jnp.sum(jnp.abs((a - b) / (a + eps * s) - 1)) for a, b, s in zip(g, hg, signs, strict=True)]

    return lambda params: float(sum(terms(params))) / sum(a.size for a in jax.tree_util.tree_leaves(params))


def flat(params):
    return {jax.tree_util.keystr(p): np.asarray(v, np.float64) for p, v in jax.tree_util.tree_leaves_with_path(params)}


def assert_one_factor_per_tensor(old, new, *, kernels_only):
    for name, before in flat(old).items():
        after = flat(new)[name]
        if kernels_only and before.ndim < 2:
            np.testing.assert_array_equal(after, before, err_msg=name)  # bitwise
        elif np.any(before != 0):
            ratio = after[before != 0] / before[before != 0]
            np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(after, before, err_msg=name)  # zeros stay zeros


def one_step_objective(net, x, y, eta=0.1):
    """GradInit's objective at fixed data as a jitted ``params -> (value, ||g||)``: the loss after one normalized SGD
    step of size eta, over eta."""
    loss = loss_of(net)

    @jax.jit
    def objective(params):
        g = jax.grad(loss)(params, x, y)
        norm = jnp.sqrt(sum(jnp.sum(a**2) for a in jax.tree_util.tree_leaves(g)))
        moved = jax.tree_util.tree_map(lambda w, d: w - eta * d / norm, params, g)
        return loss(moved, x, y) / eta, norm

    return lambda params: tuple(float(v) for v in objective(params))


# ---------------------------------------------------------------------------------------------- MetaInit


@pytest.fixture(scope="module")
def meta():
    """MetaInit on fixed data (labels given, full batch) on an ordered-phase net: eager, jitted, vmapped."""
    net = mlp(0.25, depth=3)  # ordered phase: vanishing gradients
    variables, other = net.init(jax.random.key(0), X[:1]), net.init(jax.random.key(9), X[:1])
    keys = jnp.stack([jax.random.key(3), jax.random.key(4)])

    def run(v, k):
        return metainit(net, v, X, key=k, labels=Y, steps=40)

    stacked = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), variables, other)
    return {
        "net": net,
        "variables": variables,
        "other": other,
        "keys": keys,
        "eager": run(variables, keys[0]),
        "jitted": jax.jit(run),
        "vmapped": jax.vmap(run)(stacked, keys),
    }


def test_metainit_lowers_the_gradient_quotient_and_only_rescales_kernels(meta):
    net, variables, (new, record) = meta["net"], meta["variables"], meta["eager"]
    gq = gradient_quotient(net, X, Y)
    before, after = gq(variables["params"]), gq(new["params"])
    assert after < 0.8 * before, (before, after)  # measured 0.385 -> 0.212 (seeds 1, 2: 0.318 -> 0.187, 0.377 -> 0.181)
    np.testing.assert_allclose(float(record["objective"][0]), before, rtol=1e-4)  # its own GQ is the paper's
    assert_one_factor_per_tensor(variables["params"], new["params"], kernels_only=True)
    assert record["objective"].shape == (40,)
    kernel_paths = [
        "/".join(str(k.key) for k in path)
        for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"])
        if leaf.ndim >= 2
    ]
    assert sorted(record["scales"]) == sorted(kernel_paths) and len(kernel_paths) == 4
    for path, scale in record["scales"].items():
        old, fresh = variables["params"], new["params"]
        for part in path.split("/"):
            old, fresh = old[part], fresh[part]
        ratio = np.linalg.norm(np.asarray(fresh, np.float64)) / np.linalg.norm(np.asarray(old, np.float64))
        np.testing.assert_allclose(float(scale), ratio, rtol=1e-5)


def assert_trees_close(a, b, index=None):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(x if index is None else x[index], y, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # a second compilation of the loop: ~5 s
def test_metainit_under_jit_equals_eager(meta):
    assert_trees_close(meta["jitted"](meta["variables"], meta["keys"][0]), meta["eager"])


def test_metainit_vmapped_over_keys_and_variables_equals_separate_calls(meta):
    jitted, keys = meta["jitted"], meta["keys"]
    assert_trees_close(meta["vmapped"], jitted(meta["variables"], keys[0]), 0)
    assert_trees_close(meta["vmapped"], jitted(meta["other"], keys[1]), 1)  # a second net, one program


@pytest.mark.slow  # three more compilations: ~9 s
def test_metainit_data_modes_draw_by_the_key_and_bare_params_are_accepted():
    net = mlp(1.0, depth=1)
    params = net.init(jax.random.key(0), X[:1])["params"]

    @jax.jit
    def run(k):
        noise = metainit(net, params, X, key=k, batch_size=8, steps=3)  # the paper's: Gaussian inputs, random labels
        rows = metainit(net, params, X, key=k, labels=Y, batch_size=32, steps=3)  # 32 of the 128 rows per step
        return noise, rows

    first, again, other = run(jax.random.key(1)), run(jax.random.key(1)), run(jax.random.key(2))
    for mode in (0, 1):
        np.testing.assert_array_equal(first[mode][1]["objective"], again[mode][1]["objective"])  # same key, same bits
        assert not np.allclose(first[mode][1]["objective"], other[mode][1]["objective"])  # the key picks the data
    new = first[0][0]
    assert set(new) == {"params"}  # bare params come back as {"params": ...}, as lsuv's do
    assert jax.tree_util.tree_structure(new["params"]) == jax.tree_util.tree_structure(params)


# ---------------------------------------------------------------------------------------------- GradInit


@pytest.fixture(scope="module")
def grad():
    """GradInit on a chaotic-phase net (||g|| = 1.4 > gamma = 1 on X): eager, jitted, vmapped over two keys.

    min_scale 0.5 binds (with the default 0.01 the kernels' scales fall to ~0.25)."""
    net = mlp(4.0, depth=3)  # chaotic phase: exploding gradients
    variables = net.init(jax.random.key(2), X[:1])
    keys = jnp.stack([jax.random.key(3), jax.random.key(4)])

    def run(k):
        return gradinit(net, variables, X, key=k, labels=Y, steps=100, lr=1e-2, min_scale=0.5)

    return {
        "net": net,
        "variables": variables,
        "keys": keys,
        "eager": run(keys[0]),
        "jitted": jax.jit(run),
        "vmapped": jax.vmap(run)(keys),
    }


def test_gradinit_lowers_the_one_step_loss_and_meets_the_gradient_norm_bound(grad):
    net, variables, (new, record) = grad["net"], grad["variables"], grad["eager"]
    objective = one_step_objective(net, X, Y)
    (before, gnorm_before), (after, gnorm_after) = objective(variables["params"]), objective(new["params"])
    assert gnorm_before > 1.0 > gnorm_after, (gnorm_before, gnorm_after)  # measured 1.41 -> 0.47
    assert after < before - 2.0, (before, after)  # measured 21.0 -> 14.5 (loss after the step 2.10 -> 1.45)
    constraint = np.asarray(record["constraint"])
    assert constraint[:5].all() and 0 < constraint.sum() < 100  # first the bound, then the objective
    recorded = np.asarray(record["objective"])
    np.testing.assert_allclose(recorded[constraint], np.asarray(record["gnorm"])[constraint])
    assert_one_factor_per_tensor(variables["params"], new["params"], kernels_only=False)
    paths = {"/".join(str(k.key) for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(variables["params"])}
    assert set(record["scales"]) == paths
    np.testing.assert_allclose(float(record["initial_loss"]), float(record["loss"][0]))


@pytest.mark.slow  # an eager GradInit: ~13 s
def test_gradinit_under_jit_equals_eager(grad):
    assert_trees_close(grad["jitted"](grad["keys"][0]), grad["eager"])


def test_gradinit_vmapped_over_keys_equals_separate_calls(grad):
    for i in range(2):
        assert_trees_close(grad["vmapped"], grad["jitted"](grad["keys"][i]), i)


def test_gradinit_objective_steps_descend(grad):
    record = grad["eager"][1]
    constraint = np.asarray(record["constraint"])
    objective = np.asarray(record["objective"])[~constraint]  # the loss after the simulated step, over eta
    assert objective.size >= 50
    assert objective[-10:].mean() < objective[:10].mean() - 0.5, objective  # measured 16.25 -> 14.69


def test_gradinit_scales_respect_min_scale(grad):
    scales = {k: float(v) for k, v in grad["eager"][1]["scales"].items()}
    kernels = [v for k, v in scales.items() if k.endswith("kernel")]
    assert min(kernels) == pytest.approx(0.5)  # the clamp was reached
    assert all(v >= np.float32(0.5) for v in kernels)  # the scales are float32
    assert all(v >= 0.0 for k, v in scales.items() if k.endswith("bias"))


# ---------------------------------------------------------------------------------------------- bad input

NET = mlp(1.0, depth=1)
VARS = NET.init(jax.random.key(0), X[:1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps must be a positive integer, got 0"),
        ({"steps": 2.0}, "steps must be a positive integer, got 2.0"),
        ({"lr": 0.0}, r"lr must be a finite number > 0, got 0.0"),
        ({"lr": float("nan")}, r"lr must be a finite number > 0, got nan"),
        ({"momentum": 1.0}, r"momentum must be a finite number >= 0 and < 1, got 1.0"),
        ({"eps": -1e-5}, r"eps must be a finite number > 0, got -1e-05"),
        ({"batch_size": 129}, r"batch_size must be <= the batch's 128 rows, got 129"),
        ({"labels": Y[:10]}, r"labels must have shape \(128,\).*got \(10,\)"),
        ({"labels": jnp.zeros(128)}, r"labels must be integer class indices, got dtype float32"),
        ({"labels": Y * 3}, r"labels must be classes 0..3 of the model's 4 outputs, got values 0..9"),
    ],
)
def test_metainit_bad_arguments(kwargs, match):
    with pytest.raises(UsageError, match=f"^metainit: {match}"):
        metainit(NET, VARS, X, key=jax.random.key(0), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": None}, "labels are required"),
        ({"alg": "rmsprop"}, "unknown alg 'rmsprop'; valid choices: adam, sgd"),
        ({"steps": -1}, "steps must be a positive integer, got -1"),
        ({"lr": -1e-3}, r"lr must be a finite number > 0, got -0.001"),
        ({"eta": 0}, r"eta must be a finite number > 0, got 0"),
        ({"gamma": 0.0}, r"gamma must be a finite number > 0, got 0.0"),
        ({"min_scale": -0.1}, r"min_scale must be a finite number >= 0, got -0.1"),
        ({"grad_clip": float("inf")}, r"grad_clip must be a finite number >= 0, got inf"),
        ({"batch_size": 1}, r"batch_size must be >= 2 .*got 1"),
        ({"batch_size": 256}, r"batch_size must be <= the batch's 128 rows, got 256"),
        ({"labels": Y[:, None]}, r"labels must have shape \(128,\).*got \(128, 1\)"),
        ({"labels": Y + 4}, r"labels must be classes 0..3 of the model's 4 outputs, got values 4..7"),
        ({"labels": Y - 1}, r"labels must be classes 0..3 of the model's 4 outputs, got values -1..2"),
        ({"normalize_grad": 1}, r"normalize_grad must be True or False, got 1"),
        ({"steps": 10**11}, r"steps must be at most 2147483647 \(an int32 loop counter\), got 100000000000"),
    ],
)
def test_gradinit_bad_arguments(kwargs, match):
    with pytest.raises(UsageError, match=f"^gradinit: {match}"):
        gradinit(NET, VARS, X, key=jax.random.key(0), **{"labels": Y, **kwargs})


@pytest.mark.parametrize("scheme", [metainit, gradinit])
def test_an_nnx_module_with_variables_given_is_one_line(scheme):
    # nnx modules are taken (tests/inits/test_nnx_schemes.py); their variables are their own
    from flax import nnx

    layer = nnx.Linear(16, 4, rngs=nnx.Rngs(0))
    with pytest.raises(UsageError, match=r"an nnx module holds its own parameters: pass None") as err:
        scheme(layer, {"params": {}}, X, key=jax.random.key(0), labels=Y)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("scheme", [metainit, gradinit])
def test_a_batch_with_nan_is_refused_before_any_step(scheme):
    with pytest.raises(UsageError, match=r"batch holds non-finite values \(nan or inf\)"):
        scheme(NET, VARS, X.at[3, 2].set(jnp.nan), key=jax.random.key(0), labels=Y, steps=2)  # gave nan weights


def test_lsuv_refuses_an_empty_batch_and_an_iteration_count_beyond_int32():
    with pytest.raises(
        UsageError, match=r"lsuv: batch must be an array of inputs \(B, ...\) with B >= 1, got shape \(0, 16\)"
    ):
        inits.lsuv(NET, VARS, X[:0])  # was a ZeroDivisionError
    with pytest.raises(UsageError, match=r"lsuv: max_iters must be at most 2147483647"):
        inits.lsuv(NET, VARS, X, max_iters=10**11)  # was an OverflowError from jit
    with pytest.raises(UsageError, match=r"lsuv: target_variance must be a number > 0 \(in float32\), got 1e\+39"):
        inits.lsuv(NET, VARS, X, target_variance=1e39)


def test_gradinit_takes_labels_as_a_list():
    listed = gradinit(NET, VARS, X, key=jax.random.key(0), labels=[int(v) for v in Y], steps=2)
    arrayed = gradinit(NET, VARS, X, key=jax.random.key(0), labels=Y, steps=2)
    np.testing.assert_array_equal(np.asarray(listed[1]["loss"]), np.asarray(arrayed[1]["loss"]))


@pytest.mark.parametrize("scheme", ["lsuv", "metainit", "gradinit"])
def test_a_batch_of_other_features_than_the_variables_is_one_line(scheme):
    kwargs = {"key": jax.random.key(0)} | ({"labels": Y} if scheme == "gradinit" else {})
    with pytest.raises(
        ValueError, match=rf"^{scheme}: the batch's examples \(8,\) do not fit the model's variables"
    ) as e:
        getattr(inits, scheme)(NET, VARS, X[:, :8], **kwargs)  # was flax's ScopeParamShapeError
    assert "\n" not in str(e.value)
