import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits, models

KEY = jax.random.key(0)


def init_apply(model, shape, batch=2, train=False):
    x = jax.random.normal(jax.random.key(1), (batch, *shape))
    variables = model.init(KEY, x)
    mutable = ["intermediates", "batch_stats"] if train else ["intermediates"]
    # not jitted: jit returns dicts with sorted keys, and per_layer reads execution order from insertion order
    y, state = model.apply(variables, x, train=train, mutable=mutable)
    return variables, y, state


def conv_params(c_in, c_out, k=3):
    return k * k * c_in * c_out + c_out


def dense_params(n_in, n_out):
    return n_in * n_out + n_out


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        # conv1 6x(5x5xC+1), conv2 16x(5x5x6+1), fc 400/64 -> 120 -> 84 -> 10
        ((32, 32, 1), 156 + 2416 + dense_params(400, 120) + dense_params(120, 84) + dense_params(84, 10)),
        ((28, 28, 1), 156 + 2416 + dense_params(400, 120) + dense_params(120, 84) + dense_params(84, 10)),
        ((32, 32, 3), 456 + 2416 + dense_params(400, 120) + dense_params(120, 84) + dense_params(84, 10)),
        ((8, 8, 1), 156 + 2416 + dense_params(64, 120) + dense_params(120, 84) + dense_params(84, 10)),
    ],
)
def test_lenet5_parameter_counts_and_shapes(shape, expected):
    model = models.build(
        "lenet5", input_shape=shape, num_classes=10, activation="scaled_tanh", kernel_init="lecun_normal"
    )
    variables, y, _ = init_apply(model, shape)
    assert y.shape == (2, 10)
    assert models.count_params(variables["params"]) == expected
    if shape == (32, 32, 1):
        assert expected == 61706  # the usual LeNet-5 count


def plain_cnn_params(stages, head_widths, c_in=3, classes=10):
    total, prev = 0, c_in
    for channels, n in stages:
        total += conv_params(prev, channels) + (n - 1) * conv_params(channels, channels)
        prev = channels
    for w in head_widths:
        total += dense_params(prev, w)
        prev = w
    return total + dense_params(prev, classes)


@pytest.mark.parametrize("preset", ["he22_cpu", "he30_cpu", "xiao_cpu"])
def test_plain_cnn_presets(preset):
    cfg = models.PLAIN_CNN_PRESETS[preset]
    model = models.build(
        "plain_cnn", input_shape=(32, 32, 3), num_classes=10, preset=preset, activation="relu", kernel_init="he_normal"
    )
    variables, y, state = init_apply(model, (32, 32, 3))
    assert y.shape == (2, 10)
    assert models.count_params(variables["params"]) == plain_cnn_params(cfg["stages"], cfg.get("head_widths", ()))
    weight_layers = sum(n for _, n in cfg["stages"]) + len(cfg.get("head_widths", ())) + 1
    layers = models.per_layer(state["intermediates"])
    assert len(layers) == weight_layers
    if preset.startswith("he"):
        assert weight_layers == int(preset[2:4])
    # hand count for he22_cpu: 224 + 5*584 + 1168 + 6*2320 + 4640 + 6*9248 + 2112 + 650
    if preset == "he22_cpu":
        assert models.count_params(variables["params"]) == 81122


def test_plain_cnn_stride_downsampling_shapes():
    model = models.build(
        "plain_cnn",
        input_shape=(32, 32, 3),
        num_classes=5,
        preset="xiao_cpu",
        activation="tanh",
        kernel_init="delta_orthogonal",
    )
    _, y, state = init_apply(model, (32, 32, 3))
    layers = models.per_layer(state["intermediates"])
    assert [layer["pre_activation"].shape[1] for layer in layers[:3]] == [32, 16, 8]
    assert y.shape == (2, 5)


def test_mlp_layer_names_order_and_shapes():
    model = models.build(
        "mlp", input_shape=(8, 8, 1), num_classes=10, depth=4, width=32, activation="tanh", kernel_init="glorot_uniform"
    )
    _, y, state = init_apply(model, (8, 8, 1), batch=3)
    layers = models.per_layer(state["intermediates"])
    assert [layer["layer"] for layer in layers] == ["layer_000", "layer_001", "layer_002", "layer_003", "head"]
    assert all(layer["pre_activation"].shape == (3, 32) for layer in layers[:-1])
    assert layers[-1]["activation"] is None
    np.testing.assert_array_equal(layers[-1]["pre_activation"], y)
    for layer in layers[:-1]:
        np.testing.assert_allclose(layer["activation"], jnp.tanh(layer["pre_activation"]), rtol=1e-6)


def test_scanned_mlp_equals_unrolled_in_structure_and_names():
    kw = {
        "input_shape": (16,),
        "num_classes": 3,
        "depth": 6,
        "width": 8,
        "activation": "relu",
        "kernel_init": "he_normal",
    }
    scanned = models.build("mlp", scan=True, **kw)
    variables, y, state = init_apply(scanned, (16,))
    layers = models.per_layer(state["intermediates"])
    assert [layer["layer"] for layer in layers] == [f"layer_{i:03d}" for i in range(6)] + ["head"]
    stack = variables["params"]["stack_001"]["layer"]["dense"]["kernel"]
    assert stack.shape == (5, 8, 8)
    assert not np.allclose(stack[0], stack[1])  # each member has its own key
    # forward pass by hand from the stacked parameters
    x = jax.random.normal(jax.random.key(1), (2, 16))
    p = variables["params"]
    h = jax.nn.relu(x @ p["layer_000"]["dense"]["kernel"] + p["layer_000"]["dense"]["bias"][None])
    for i in range(5):
        h = jax.nn.relu(h @ stack[i] + p["stack_001"]["layer"]["dense"]["bias"][i][None])
    expected = h @ p["head"]["dense"]["kernel"] + p["head"]["dense"]["bias"][None]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_resnet_blocks_and_fixup_hooks():
    kw = {
        "input_shape": (16, 16, 3),
        "num_classes": 10,
        "blocks": (2, 1, 1),
        "width": 8,
        "activation": "relu",
        "kernel_init": "he_normal",
    }
    model = models.build("resnet", **kw)
    variables, y, state = init_apply(model, (16, 16, 3), train=True)
    assert y.shape == (2, 10)
    assert "batch_stats" in state
    names = [layer["layer"] for layer in models.per_layer(state["intermediates"])]
    assert names[:4] == ["stem", "block_00/conv_a", "block_00/conv_b", "block_00"]
    assert names[-1] == "head" and len(names) == 1 + 4 * 3 + 1
    # SkipInit (branch scale 0): every block is act(shortcut(x)); identity shortcuts pass x through
    skip = models.build("resnet", normalization="none", residual_scale=0.0, branch_biases=True, **kw)
    variables, _, state = init_apply(skip, (16, 16, 3))
    layers = {layer["layer"]: layer for layer in models.per_layer(state["intermediates"])}
    np.testing.assert_array_equal(layers["block_00"]["pre_activation"], layers["stem"]["activation"])
    block = variables["params"]["block_00"]
    assert {"bias_1a", "bias_1b", "bias_2a", "bias_2b", "branch_scale"} <= set(block)
    assert float(block["branch_scale"]) == 0.0


@pytest.mark.parametrize(
    ("family", "shape", "cfg"),
    [
        ("mlp", (64,), {"depth": 3, "width": 256}),
        ("plain_cnn", (16, 16, 3), {"stages": ((32, 2), (64, 2))}),
        ("lenet5", (28, 28, 1), {}),
    ],
)
@pytest.mark.parametrize("init_name", ["he_normal", "glorot_uniform", "lecun_uniform"])
def test_chosen_init_reaches_every_kernel(family, shape, cfg, init_name):
    model = models.build(family, input_shape=shape, num_classes=10, activation="relu", kernel_init=init_name, **cfg)
    variables, _, _ = init_apply(model, shape)
    init = inits.get(init_name)
    kernels = [
        leaf for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"]) if path[-1].key == "kernel"
    ]
    assert kernels
    for w in kernels:
        _, target = init.target(w.shape)
        w = np.asarray(w, np.float64)
        # 5 standard errors of a variance estimate (normal kurtosis bounds the three families)
        assert abs(w.var() - target) < 5 * math.sqrt(2 / w.size) * target + 1e-12, (w.shape, w.var(), target)


def test_torch_default_bias_uses_each_layers_fan_in():
    model = models.build(
        "mlp",
        input_shape=(400,),
        num_classes=10,
        depth=1,
        width=300,
        activation="relu",
        kernel_init="torch_default",
        bias_init="torch_default",
    )
    variables, _, _ = init_apply(model, (400,))
    b0 = np.asarray(variables["params"]["layer_000"]["dense"]["bias"])
    bh = np.asarray(variables["params"]["head"]["dense"]["bias"])
    assert 0.9 / math.sqrt(400) < np.abs(b0).max() <= 1 / math.sqrt(400)
    assert np.abs(bh).max() <= 1 / math.sqrt(300)


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_vmap_over_stacked_params_equals_per_member():
    model = models.build("lenet5", input_shape=(28, 28, 1), num_classes=10, activation="relu", kernel_init="he_normal")
    x = jax.random.normal(jax.random.key(2), (4, 28, 28, 1))
    keys = jax.random.split(KEY, 3)
    stacked = jax.jit(jax.vmap(lambda k: model.init(k, x)))(keys)
    batched = jax.jit(jax.vmap(model.apply, in_axes=(0, None)))(stacked, x)
    init = jax.jit(model.init)
    for i in range(3):
        member = init(keys[i], x)
        np.testing.assert_array_equal(
            np.asarray(jax.tree_util.tree_leaves(member)[0]), np.asarray(jax.tree_util.tree_leaves(stacked)[0][i])
        )
        np.testing.assert_allclose(batched[i], jax.jit(model.apply)(member, x), rtol=1e-5, atol=1e-6)


def test_activation_specs():
    model = models.build(
        "mlp", input_shape=(8,), num_classes=2, depth=1, width=4, activation="prelu", kernel_init="he_normal"
    )
    variables, _, state = init_apply(model, (8,))
    assert float(variables["params"]["layer_000"]["act"]["negative_slope"]) == 0.25
    model = models.build(
        "mlp", input_shape=(8,), num_classes=2, depth=1, width=4, activation="leaky_relu:0.2", kernel_init="he_normal"
    )
    _, _, state = init_apply(model, (8,))
    layer = models.per_layer(state["intermediates"])[0]
    pre = layer["pre_activation"]
    np.testing.assert_allclose(layer["activation"], jnp.where(pre >= 0, pre, 0.2 * pre), rtol=1e-6)
    model = models.build(
        "mlp", input_shape=(8,), num_classes=2, depth=1, width=4, activation=jnp.sin, kernel_init="he_normal"
    )
    _, _, state = init_apply(model, (8,))
    layer = models.per_layer(state["intermediates"])[0]
    np.testing.assert_allclose(layer["activation"], jnp.sin(layer["pre_activation"]), rtol=1e-6)


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_deep_scanned_mlp_builds_and_runs():
    model = models.build(
        "mlp",
        input_shape=(32,),
        num_classes=10,
        depth=1000,
        width=64,
        activation="tanh",
        kernel_init="orthogonal",
        scan=True,
    )
    _variables, y, state = init_apply(model, (32,))
    assert len(models.per_layer(state["intermediates"])) == 1001
    assert bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"family": "mpl"},
            ValueError,
            r"unknown model family 'mpl'; valid choices: lenet5, mlp, plain_cnn, resnet\. Did you mean 'mlp'",
        ),
        ({"family": "mlp", "widht": 3}, TypeError, r"mlp has no field\(s\) widht; valid fields: .*width"),
        ({"family": "mlp", "activation": "tahn"}, ValueError, r"unknown activation 'tahn'.*Did you mean 'tanh'"),
        ({"family": "mlp", "activation": "relu:0.3"}, ValueError, "activation 'relu' takes no parameter"),
        (
            {"family": "mlp", "kernel_init": "he_nrmal"},
            ValueError,
            r"unknown initializer 'he_nrmal'.*Did you mean 'he_normal'",
        ),
        ({"family": "mlp", "depth": 0}, ValueError, "depth must be a positive integer, got 0"),
        (
            {"family": "mlp", "normalization": "groupnorm"},
            ValueError,
            r"unknown normalization 'groupnorm'; valid choices: batchnorm, layernorm, none",
        ),
        (
            {"family": "lenet5", "width": None},
            TypeError,
            r"lenet5 has no field\(s\) depth; valid fields: activation, bias_init",
        ),
        (
            {"family": "plain_cnn", "depth": None, "width": None, "stages": ((8, 1),) * 6},
            ValueError,
            r"too deep in downsampling for 16x16 inputs \(needs at least 32x32\)",
        ),
        (
            {"family": "plain_cnn", "depth": None, "width": None, "preset": "he40"},
            ValueError,
            "unknown plain_cnn preset 'he40'",
        ),
        (
            {"family": "resnet", "depth": None, "width": 8, "blocks": (1, 1, 1, 1, 1, 1)},
            ValueError,
            "too deep in downsampling",
        ),
        (
            {"family": "mlp", "depth": 2, "input_shape": (0, 3)},
            ValueError,
            "input_shape must be non-empty with positive dims",
        ),
        (
            {"family": "resnet", "depth": None, "width": 8, "blocks": (1, 1), "input_shape": (64,)},
            ValueError,
            r"resnet needs \(height, width, channels\) inputs",
        ),
        ({"family": "mlp", "depth": 2, "scan": "yes"}, TypeError, "mlp scan must be true or false, got 'yes'"),
        ({"family": "mlp", "depth": 2, "use_bias": "no"}, TypeError, "mlp use_bias must be true or false"),
        (
            {"family": "resnet", "depth": None, "width": 8, "blocks": (1,), "residual_scale": float("nan")},
            ValueError,
            r"resnet residual_scale must be None or a finite number \(in float32\), got nan",
        ),
        (
            {"family": "resnet", "depth": None, "width": 8, "blocks": (1,), "residual_scale": "one"},
            ValueError,
            r"resnet residual_scale must be None or a finite number \(in float32\), got 'one'",
        ),
        ({"family": "mlp", "depth": 10**9}, ValueError, "mlp has 1,000,000,000 weight layers, more than the 100,000"),
        (
            {"family": "plain_cnn", "depth": None, "width": None, "stages": ((4, 1),), "kernel_size": 0},
            ValueError,
            "plain_cnn kernel_size must be a positive integer, got 0",  # was a traceback at init
        ),
        (
            {"family": "lenet5", "depth": None, "width": None, "pooling": "median"},
            ValueError,
            "unknown lenet5 pooling 'median'; valid choices: avg, max",  # was max pooling, silently
        ),
        (
            {"family": "plain_cnn", "depth": None, "width": None, "stages": ((4, 1),), "downsample": "avg"},
            ValueError,
            "unknown plain_cnn downsample 'avg'; valid choices: pool, stride",
        ),
        (
            {"family": "plain_cnn", "depth": None, "width": None, "stages": ((4, 1),), "head_widths": (0,)},
            ValueError,
            r"plain_cnn head_widths must be positive integers, got \(0,\)",
        ),
        (
            {"family": "plain_cnn", "depth": None, "width": None, "stages": ((8, 2.5),)},
            ValueError,
            r"plain_cnn stages' \(channels, n_convs\) must be a sequence of integers, got \(8, 2.5\)",
        ),
        (
            {"family": "mlp", "input_shape": (8.7,)},
            ValueError,
            r"input_shape must be a sequence of integers, got \(8.7,\)",
        ),
        ({"family": "mlp", "input_shape": "ab"}, ValueError, "input_shape must be a sequence of integers, got 'ab'"),
        (
            {"family": "resnet", "depth": None, "width": 8, "blocks": (1,), "residual_scale": 1e39},
            ValueError,
            r"resnet residual_scale must be None or a finite number \(in float32\), got 1e\+39",
        ),
        ({"family": "mlp", "activation": "leaky_relu:nan"}, ValueError, "activation parameter must be a finite number"),
        (
            {"family": "lenet5", "depth": None, "width": None, "input_shape": (100000, 100000, 1)},
            ValueError,
            r"lenet5 on \(100000, 100000, 1\) inputs has about 1.2e\+12 weights",
        ),
        (
            {"family": "plain_cnn", "depth": None, "width": None, "preset": ["he22"]},
            ValueError,
            r"unknown plain_cnn preset \['he22'\]",
        ),
        (
            {"family": "mlp", "depth": 2, "width": 2**20},  # 768 x 2**20 + 2**40 + 10 x 2**20
            ValueError,
            r"mlp has about 1.1e\+12 weights, more than the 1.72e\+10 \(2\*\*34\) initbench builds",
        ),
        (
            {"family": "resnet", "depth": None, "width": 8, "blocks": (50_000, 1)},
            ValueError,
            "resnet has 100,002 weight layers",
        ),
        (
            {"family": "plain_cnn", "depth": None, "width": None, "stages": ((2**17, 2),)},
            ValueError,
            r"plain_cnn has about 1.55e\+11 weights",  # 9 x 2**17 x (3 + 2**17)
        ),
    ],
)
def test_build_errors(kwargs, error, match):
    cfg = {
        "family": "mlp",
        "input_shape": (16, 16, 3),
        "depth": 2,
        "width": 8,
        "activation": "relu",
        "kernel_init": "he_normal",
    }
    cfg.update(kwargs)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    family, input_shape = cfg.pop("family"), cfg.pop("input_shape")
    with pytest.raises(error, match=match):
        models.build(family, input_shape=input_shape, num_classes=10, **cfg)


def test_missing_field_is_named():
    with pytest.raises(ValueError, match="mlp needs field\\(s\\) kernel_init"):
        models.build("mlp", input_shape=(4,), num_classes=2, depth=1, width=2, activation="relu")


@pytest.mark.parametrize(
    ("shape", "kernel", "strides", "padding"),
    [
        ((2, 14, 14, 6), (5, 5, 6, 16), (1, 1), "VALID"),
        ((3, 9, 9, 4), (3, 3, 4, 8), (2, 2), "SAME"),
        ((1, 7, 6, 2), (3, 2, 2, 3), (1, 2), ((1, 2), (0, 1))),
    ],
)
def test_im2col_convolution_equals_lax_convolution(shape, kernel, strides, padding):
    from initbench.models.layers import conv2d

    x = jax.random.normal(jax.random.key(0), shape)
    k = jax.random.normal(jax.random.key(1), kernel)
    ref = jax.lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    got = jax.jit(conv2d, static_argnums=(2, 3))(x, k, strides, padding)  # traced on CPU: im2col
    assert got.shape == ref.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-5, atol=1e-5)
    g_ref = jax.grad(
        lambda k: jnp.sum(
            jnp.tanh(jax.lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")))
        )
    )(k)
    g_got = jax.grad(lambda k: jnp.sum(jnp.tanh(conv2d(x, k, strides, padding))))(k)
    np.testing.assert_allclose(np.asarray(g_got), np.asarray(g_ref), rtol=1e-4, atol=1e-4)


def _resnets(**extra):
    kw = dict(input_shape=(8, 8, 1), num_classes=10, blocks=(4, 3), width=4, activation="relu", kernel_init="he_normal")
    return models.build("resnet", **kw, **extra), models.build("resnet", scan=True, **kw, **extra)


def _restack(params):
    """An unscanned (4, 3) ResNet's params in the scanned layout: blocks 1-3 and 5-6 stacked."""
    params = dict(params)

    def stack(names):
        return {"block": jax.tree_util.tree_map(lambda *t: jnp.stack(t), *[params.pop(n) for n in names])}

    params["blocks_01"] = stack(["block_01", "block_02", "block_03"])
    params["blocks_05"] = stack(["block_05", "block_06"])
    return params


@pytest.mark.slow  # 3-5 s each
@pytest.mark.parametrize("normalization", ["none", "batchnorm"])
def test_scanned_resnet_is_the_unrolled_one_with_stacked_blocks(normalization):
    # the same function (the unrolled net's params restacked give its outputs within float32
    # rounding, both jitted), the same probe names in the same order, and its stacks are named
    # blocks_k: each stage's blocks after the first, under one nn.scan
    plain, scanned = _resnets(normalization=normalization)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    variables = plain.init(jax.random.key(1), x)
    params = variables["params"]
    shapes = jax.eval_shape(lambda: scanned.init(jax.random.key(1), x))["params"]
    assert sorted(shapes) == ["block_00", "block_04", "blocks_01", "blocks_05", "head", "stem"]
    restacked = _restack(params)
    assert jax.tree_util.tree_map(jnp.shape, restacked) == jax.tree_util.tree_map(lambda s: s.shape, shapes)
    others = {k: v for k, v in variables.items() if k != "params"}
    if others:  # batch statistics stack like the params
        others = {k: _restack(v) for k, v in others.items()}
    (y1, s1), (y2, s2) = (
        jax.jit(lambda v, net=net: net.apply(v, x, mutable=["intermediates"]))(v)
        for net, v in ((plain, variables), (scanned, {"params": restacked, **others}))
    )
    np.testing.assert_allclose(np.asarray(y1), np.asarray(y2), rtol=2e-5, atol=2e-5)
    # per_layer reads dicts in execution order: the un-jitted apply's
    _, s1 = plain.apply(variables, x, mutable=["intermediates"])
    _, s2 = scanned.apply({"params": restacked, **others}, x, mutable=["intermediates"])
    a, b = models.per_layer(s1["intermediates"]), models.per_layer(s2["intermediates"])
    assert [layer["layer"] for layer in a] == [layer["layer"] for layer in b]
    assert [layer["layer"] for layer in b][:5] == [
        "stem",
        "block_00/conv_a",
        "block_00/conv_b",
        "block_00",
        "block_01/conv_a",
    ]
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(u["pre_activation"]), np.asarray(v["pre_activation"]), atol=1e-4)


@pytest.mark.slow  # 3-6 s each
@pytest.mark.parametrize(
    ("scheme", "extra"),
    [
        ("fixup", {"residual_scale": 1.0, "branch_biases": True, "normalization": "none"}),
        ("skipinit", {"residual_scale": 0.0, "normalization": "none"}),
        ("zero_init", {"residual_scale": 1.0, "normalization": "none"}),
    ],
)
def test_residual_schemes_on_a_scanned_resnet_are_bitwise_the_unrolled_ones(scheme, extra):
    # a scanned stack of n blocks counts as n branches (Fixup's L), each block's kernel is set
    # as its unrolled twin's, bitwise; with a key (He redraw) the draws differ by design, the
    # structure (zeroed, scaled) does not
    plain, scanned = _resnets(**extra)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    variables = plain.init(jax.random.key(1), x)
    fn = getattr(inits, scheme)
    (after_plain, record_plain), (after_scanned, record_scanned) = (
        fn(plain, variables, x),
        fn(scanned, {"params": _restack(variables["params"])}, x),
    )
    same = jax.tree_util.tree_map(
        lambda u, v: bool(jnp.array_equal(u, v)), _restack(after_plain["params"]), after_scanned["params"]
    )
    assert all(jax.tree_util.tree_leaves(same))
    numbers = {k: v for k, v in record_plain.items() if not isinstance(v, list)}
    assert numbers == {k: v for k, v in record_scanned.items() if not isinstance(v, list)}
    if scheme == "fixup":
        assert record_scanned["branches"] == 7 and record_scanned["scale"] == pytest.approx(7**-0.5)
        redrawn, _ = fn(scanned, {"params": _restack(variables["params"])}, x, key=jax.random.key(5))
        conv_b = redrawn["params"]["blocks_01"]["block"]["conv_b"]["conv"]["kernel"]
        conv_a = redrawn["params"]["blocks_01"]["block"]["conv_a"]["conv"]["kernel"]
        assert not jnp.any(conv_b) and bool(jnp.all(jnp.std(conv_a, axis=(1, 2, 3, 4)) > 0))
        assert not bool(jnp.array_equal(conv_a[0], conv_a[1]))  # each block its own draw


@pytest.mark.slow  # ~20 s: two probes of a 7-block ResNet
def test_the_propagation_probe_reads_a_scanned_resnet_per_block():
    # the same weights, scanned or not: every per-block statistic of the probe agrees (names,
    # order, values within float32 rounding), so `check` and the reproductions read either
    from initbench.benchmarks.analysis import propagation

    plain, scanned = _resnets(normalization="none", residual_scale=1.0)
    x = jax.random.normal(jax.random.key(0), (16, 8, 8, 1))
    params = plain.init(jax.random.key(1), x)["params"]
    a = propagation.propagation(plain, {"params": params}, x, activation="relu")
    b = propagation.propagation(scanned, {"params": _restack(params)}, x, activation="relu")
    keys = ["layer", "metric"]
    a, b = a.set_index(keys)["value"], b.set_index(keys)["value"]
    assert list(a.index) == list(b.index) and "block_02/conv_b" in set(a.index.get_level_values("layer"))
    finite = np.isfinite(a.to_numpy())
    np.testing.assert_allclose(b.to_numpy()[finite], a.to_numpy()[finite], rtol=1e-3, atol=1e-6)


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_schemes_that_set_one_scale_per_layer_refuse_a_scanned_stack_and_run_builds_it_unscanned():
    # MetaInit and GradInit learn one scale per kernel array: on a stack that would be one scale
    # shared by its blocks (and its stacked biases taken for kernels); they refuse it in one line,
    # and run/check build the ResNet unscanned for them (Fixup, SkipInit, ZerO keep the scan)
    from initbench.benchmarks.spec import InitSpec

    _, scanned = _resnets(normalization="none")
    x = jnp.ones((4, 8, 8, 1))
    variables = scanned.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="inside a scan"):
        inits.metainit(scanned, variables, x, key=jax.random.key(1))
    with pytest.raises(ValueError, match="inside a scan"):
        inits.gradinit(scanned, variables, x, key=jax.random.key(1), labels=jnp.zeros(4, jnp.int32))
    config = {"blocks": (4,), "width": 4, "normalization": "none", "scan": True}
    assert InitSpec("metainit").architecture("resnet", config)["scan"] is False
    assert InitSpec("gradinit").architecture("resnet", config)["scan"] is False
    assert InitSpec("fixup").architecture("resnet", config)["scan"] is True


@pytest.mark.slow  # four ResNets built and applied
def test_the_branch_multiplier_is_a_fixed_constant_on_every_branch():
    # c x branch equals a learned branch_scale initialised to c (the same product, bitwise); 1 is the
    # plain model bitwise; a scanned stack gets it in every block
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))

    def build(**cfg):
        return models.build(
            "resnet",
            input_shape=(8, 8, 1),
            num_classes=3,
            blocks=(3,),
            width=4,
            activation="relu",
            kernel_init="he_normal",
            normalization="none",
            **cfg,
        )

    def out(**cfg):
        net = build(**cfg)
        variables = net.init(jax.random.key(1), x)
        return variables, net.apply(variables, x)

    plain_vars, plain = out()
    np.testing.assert_array_equal(out(branch_multiplier=1.0)[1], plain)
    fixed_vars, fixed = out(branch_multiplier=0.25, residual_scale=1.0)
    learned_vars, learned = out(residual_scale=0.25)
    np.testing.assert_array_equal(fixed, learned)
    assert not np.allclose(fixed, plain)
    assert jax.tree_util.tree_structure(fixed_vars) == jax.tree_util.tree_structure(learned_vars)  # no new parameter
    assert jax.tree_util.tree_structure(out(branch_multiplier=0.25)[0]) == jax.tree_util.tree_structure(plain_vars)
    scanned_net = build(branch_multiplier=0.25, residual_scale=1.0, scan=True)
    params = dict(fixed_vars["params"])
    stacked = [params.pop(n) for n in ("block_01", "block_02")]
    params["blocks_01"] = {"block": jax.tree_util.tree_map(lambda *t: jnp.stack(t), *stacked)}
    np.testing.assert_allclose(scanned_net.apply({"params": params}, x), fixed, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True, "0.5", None, 1e-50, 1e39])
def test_a_bad_branch_multiplier_is_one_line(bad):
    with pytest.raises(ValueError, match="branch_multiplier must be a finite number > 0"):
        models.build(
            "resnet",
            input_shape=(8, 8, 1),
            num_classes=3,
            blocks=(1,),
            width=4,
            activation="relu",
            kernel_init="he_normal",
            branch_multiplier=bad,
        )


@pytest.mark.parametrize("bad", [None, 3, ("relu",)])
def test_an_activation_that_is_neither_a_name_nor_a_callable_is_one_line(bad):
    with pytest.raises(TypeError, match=r"mlp activation must be a name .* or a callable, got"):
        models.build("mlp", input_shape=(4,), num_classes=2, depth=2, width=4, activation=bad, kernel_init="he_normal")
