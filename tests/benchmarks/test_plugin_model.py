"""A user's own linen model (``package.module:attribute`` as the model family) through the trainer, TOML and CLI."""

import math
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench.benchmarks import cli, experiments, plugin_model
from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options
from initbench.inits.errors import UsageError

SOURCE = """
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
from flax import nnx


class TinyMLP(nn.Module):
    num_classes: int
    width: int = 32
    depth: int = 2

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape((x.shape[0], -1))
        for _ in range(self.depth):
            x = nn.BatchNorm(use_running_average=not train)(nn.relu(nn.Dense(self.width)(x)))
        return nn.Dense(self.num_classes)(x)


def plain(num_classes, hidden=16):
    class Plain(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(num_classes)(nn.tanh(nn.Dense(hidden)(x.reshape((x.shape[0], -1)))))

    return Plain()


def needs(num_classes, size: int):
    return plain(num_classes, size)


def three(num_classes):
    return 3


def open_ended(num_classes, **options):  # any option reaches the builder
    return plain(num_classes, options.get("hidden", 16))


def untyped(num_classes, kind, hidden=16):  # an unannotated required option: any scalar
    return plain(num_classes, hidden * (2 if kind == "wide" else 1))


class NoKernel(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        return x @ self.param("w", nn.initializers.lecun_normal(), (x.shape[-1], self.num_classes))


class Wide(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.num_classes + 3)(x.reshape((x.shape[0], -1)))


class Ints(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1))).astype(jnp.int32)


class Drop(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dense(self.num_classes)(nn.Dropout(0.1, deterministic=not train)(x.reshape((x.shape[0], -1))))


class NnxNet(nnx.Module):
    def __init__(self, num_classes: int, input_shape: tuple, width: int = 32, depth: int = 2, *, rngs: nnx.Rngs):
        n = 1
        for d in input_shape:
            n *= d
        sizes = [n] + [width] * depth
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
        self.norms = nnx.List([nnx.BatchNorm(width, rngs=rngs) for _ in range(depth)])
        self.head = nnx.Linear(width, num_classes, rngs=rngs)

    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        for layer, norm in zip(self.layers, self.norms):
            x = norm(nnx.relu(layer(x)))
        return self.head(x)


def nnx_plain(num_classes, hidden=16, *, rngs):
    return nnx.Sequential(nnx.Linear(64, hidden, rngs=rngs), nnx.tanh, nnx.Linear(hidden, num_classes, rngs=rngs))


def an_nnx(num_classes):
    return nnx.Linear(4, num_classes, rngs=nnx.Rngs(0))


class NnxDrop(nnx.Module):
    def __init__(self, num_classes, *, rngs):
        self.linear = nnx.Linear(64, num_classes, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)

    def __call__(self, x):
        return self.drop(self.linear(x.reshape((x.shape[0], -1))))


def linen_with_rngs(num_classes, *, rngs):
    return plain(num_classes)


class Deep(nn.Module):
    depth: int = 8
    width: int = 64
    num_classes: int = 10

    @nn.compact
    def __call__(self, x):
        for _ in range(self.depth):
            x = nn.relu(nn.Dense(self.width)(x))
        return nn.Dense(self.num_classes)(x)


class DeepBN(nn.Module):  # needs train (no default): BatchNorm after every layer
    depth: int = 8
    width: int = 64
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool):
        for _ in range(self.depth):
            x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Dense(self.width)(x)))
        return nn.Dense(self.num_classes)(x)


class NnxTied(nnx.Module):
    def __init__(self, num_classes, *, rngs):
        self.inp = nnx.Linear(64, 32, rngs=rngs)
        self.mid = nnx.Linear(32, 32, rngs=rngs)
        self.head = nnx.Linear(32, num_classes, rngs=rngs)

    def __call__(self, x):
        return self.head(self.mid(nnx.relu(self.mid(nnx.relu(self.inp(x))))))


class LinenTied(nn.Module):  # NnxTied's linen twin: one Dense module called twice
    num_classes: int = 10

    def setup(self):
        self.inp = nn.Dense(32)
        self.mid = nn.Dense(32)
        self.head = nn.Dense(self.num_classes)

    def __call__(self, x):
        return self.head(self.mid(nn.relu(self.mid(nn.relu(self.inp(x))))))


class NnxDropNoRngs(nnx.Module):  # its Dropout holds no rngs: fine in eval(), an error in train()
    def __init__(self, num_classes, *, rngs):
        self.linear = nnx.Linear(64, num_classes, rngs=rngs)
        self.drop = nnx.Dropout(0.1)

    def __call__(self, x):
        return self.drop(self.linear(x.reshape((x.shape[0], -1))))


class NnxPlainArray(nnx.Module):  # a plain array attribute: nnx takes it for static metadata
    def __init__(self, num_classes, *, rngs):
        self.linear = nnx.Linear(64, 8, rngs=rngs)
        self.readout = jnp.ones((8, num_classes))

    def __call__(self, x):
        return self.linear(x.reshape((x.shape[0], -1))) @ self.readout


class SeqMLP(nn.Module):  # Flax's canonical form: features as a Sequence[int]
    features: Sequence[int]

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        for f in self.features[:-1]:
            x = nn.relu(nn.Dense(f)(x))
        return nn.Dense(self.features[-1])(x)


class NoLayers(nnx.Module):  # its weights are no layer's kernel (a model that is one layer owns a 'kernel')
    def __init__(self, num_classes, *, rngs):
        self.w = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (64, num_classes)))

    def __call__(self, x):
        return x @ self.w[...]


class DeepNnx(nnx.Module):
    def __init__(self, input_shape, num_classes, depth: int = 8, width: int = 64, *, rngs):
        sizes = [input_shape[-1]] + [width] * depth
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
        self.head = nnx.Linear(width, num_classes, rngs=rngs)

    def __call__(self, x):
        for layer in self.layers:
            x = nnx.relu(layer(x))
        return self.head(x)
"""


@pytest.fixture
def user(tmp_path, monkeypatch):
    name = f"usermodels_{tmp_path.name.replace('-', '_')}"  # a fresh module per test
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def built(target, init="he_normal", bias="zeros", **config):
    spec = InitSpec(init, bias=bias)
    return plugin_model.build(
        target, input_shape=(64,), num_classes=10, kernel_init=spec.kernel(), bias_init=spec.bias_init(), **config
    )


@pytest.mark.slow  # inits of a 512-wide net and a BatchNorm apply: 5-8 s
def test_every_kernel_and_bias_is_drawn_by_the_runs_initializers(user):
    model = built(f"{user}:TinyMLP", init="he_normal", bias="ones", width=512, depth=2)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 64)))
    params = variables["params"]
    first, second, head = params["Dense_0"]["kernel"], params["Dense_1"]["kernel"], params["Dense_2"]["kernel"]
    # He normal: variance 2 / fan_in, within 5 standard errors of the sample variance (2 var^2 / (n - 1))
    for kernel in (first, second, head):
        n, target = kernel.size, 2.0 / kernel.shape[0]
        assert abs(float(jnp.var(kernel)) - target) <= 5 * target * math.sqrt(2 / (n - 1))
    assert all(float(params[k]["bias"].min()) == 1.0 for k in ("Dense_0", "Dense_1", "Dense_2"))
    assert float(params["BatchNorm_0"]["scale"].min()) == 1.0  # the module's own init for the rest
    again = model.init(jax.random.key(0), jnp.zeros((1, 64)))["params"]["Dense_0"]["kernel"]
    np.testing.assert_array_equal(np.asarray(first), np.asarray(again))  # determinism by the key


@pytest.mark.slow  # inits of a 512-wide net and a BatchNorm apply: 5-8 s
def test_zeros_init_gives_zero_kernels_and_the_train_flag_reaches_batchnorm(user):
    model = built(f"{user}:TinyMLP", init="zeros", width=8, depth=1)
    assert model.takes_train
    variables = model.init(jax.random.key(0), jnp.zeros((1, 64)))
    assert all(float(jnp.abs(v["kernel"]).max()) == 0.0 for k, v in variables["params"].items() if "Dense" in k)
    x = jax.random.normal(jax.random.key(1), (16, 64))
    _, state = model.apply(variables, x, train=True, mutable=["batch_stats"])
    assert "batch_stats" in state
    assert not built(f"{user}:plain", hidden=4).takes_train


@pytest.mark.slow  # two inits and three applies: ~2 s
def test_an_nnx_model_is_split_at_the_boundary_and_computes_what_its_layers_say(user):
    model = built(f"{user}:NnxNet", init="he_normal", bias="ones", width=8, depth=1)
    assert isinstance(model, plugin_model.NnxPluginModel) and model.takes_train
    variables = model.init(jax.random.key(0), jnp.zeros((1, 64)))
    params, stats = variables["params"], variables["batch_stats"]
    assert set(params) == {"layers", "norms", "head"} and set(params["layers"]) == {"0"}
    assert float(params["layers"]["0"]["bias"].min()) == float(params["head"]["bias"].max()) == 1.0  # the run's
    assert float(params["norms"]["0"]["scale"].min()) == 1.0  # the module's own init for the rest
    x = jax.random.normal(jax.random.key(1), (16, 64))
    w, b = params["layers"]["0"]["kernel"], params["layers"]["0"]["bias"]
    norm, run = params["norms"]["0"], stats["norms"]["0"]

    def by_hand(mean, var):  # rank promotion is an error here: rows broadcast explicitly
        h = jnp.maximum(x @ w + b[None], 0)
        h = (h - mean[None]) / jnp.sqrt(var[None] + 1e-5) * norm["scale"][None] + norm["bias"][None]
        return h @ params["head"]["kernel"] + params["head"]["bias"][None]

    np.testing.assert_allclose(model.apply(variables, x), by_hand(run["mean"], run["var"]), rtol=1e-5, atol=1e-6)
    logits, new = model.apply(variables, x, train=True, mutable=["batch_stats"])
    h = jnp.maximum(x @ w + b[None], 0)  # training mode: the batch's own statistics, running ones updated
    np.testing.assert_allclose(logits, by_hand(h.mean(0), h.var(0)), rtol=1e-4, atol=1e-5)
    running = new["batch_stats"]["norms"]["0"]["mean"]
    np.testing.assert_allclose(running, 0.01 * h.mean(0), rtol=1e-5, atol=1e-8)  # nnx's momentum 0.99
    again = model.init(jax.random.key(0), jnp.zeros((1, 64)))["params"]["layers"]["0"]["kernel"]
    np.testing.assert_array_equal(np.asarray(w), np.asarray(again))  # determinism by the key
    other = model.init(jax.random.key(1), jnp.zeros((1, 64)))["params"]["layers"]["0"]["kernel"]
    assert not np.array_equal(np.asarray(w), np.asarray(other))


def test_a_sequence_option_is_a_tuple_and_a_list_of_them_a_sweep(user):
    doc = {"seeds": 1, "model": {"family": f"{user}:SeqMLP", "features": [[32, 10], [16, 10]]}, "train": {"steps": 1}}
    specs = experiments.resolve(experiments.from_doc(doc, "t")).specs
    assert [dict(s.model.extra)["features"] for s in specs] == [(32, 10), (16, 10)]
    doc["model"]["features"] = [32, 10]  # one value
    assert [dict(s.model.extra)["features"] for s in experiments.resolve(experiments.from_doc(doc, "t")).specs] == [
        (32, 10)
    ]


def test_an_unannotated_required_option_takes_any_scalar_and_its_defaults_type_types_the_others(user):
    def specs(**model):
        doc = {"seeds": 1, "model": {"family": f"{user}:untyped", **model}, "train": {"steps": 1}}
        return experiments.resolve(experiments.from_doc(doc, "t")).specs

    assert [dict(s.model.extra)["kind"] for s in specs(kind=["wide", 3, True])] == ["wide", 3, True]
    with pytest.raises(UsageError, match="hidden must be an integer, got 'big'"):  # typed by its default 16
        specs(kind="wide", hidden="big")
    with pytest.raises(UsageError, match="kind must be a finite number, a string or true/false, got nan"):
        specs(kind=float("nan"))


def test_a_builder_taking_kwargs_takes_any_option_from_toml_and_the_command_line(user, capsys):
    doc = {"seeds": 1, "model": {"family": f"{user}:open_ended", "hidden": [4, 8], "tag": "x"}, "train": {"steps": 1}}
    specs = experiments.resolve(experiments.from_doc(doc, "t")).specs
    assert [dict(s.model.extra) for s in specs] == [{"hidden": 4, "tag": "x"}, {"hidden": 8, "tag": "x"}]
    argv = ["show", "--model", f"{user}:open_ended", "--model-args", "hidden=4", "--steps", "1", "--seeds", "1"]
    assert cli.main(argv) == 0, capsys.readouterr().err  # was refused: "takes no option hidden"


def test_an_nnx_models_options_come_from_its_init_and_toml_types_them(user):
    assert list(plugin_model.options(f"{user}:NnxNet")) == ["width", "depth"]
    doc = {"seeds": 1, "model": {"family": f"{user}:NnxNet", "width": [8, 16], "depth": 1}, "train": {"steps": 1}}
    specs = experiments.resolve(experiments.from_doc(doc, "t")).specs
    assert [s.model.width for s in specs] == [8, 16]
    assert list(plugin_model.options(f"{user}:nnx_plain")) == ["hidden"]


@pytest.mark.parametrize(
    ("target", "config", "message"),
    [
        (":TinyMLP", {"widht": 4}, r"takes no option\(s\) widht; it takes: width, depth"),
        (":needs", {}, r"needs option\(s\) size"),
        (":three", {}, "must give a flax.linen or flax.nnx Module, got a builtins.int"),
        (":an_nnx", {}, "builds an nnx Module without taking rngs; an nnx builder must take rngs"),
        (":NnxDrop", {}, r"holds nnx state other than nnx.Param and nnx.BatchStat \(drop/rngs/"),
        (":linen_with_rngs", {}, r"\(\.\.\., rngs=\.\.\.\) must give a flax.nnx Module"),
        (":nothing", {}, "has no attribute 'nothing'"),
    ],
)
def test_a_bad_model_plugin_is_one_line(user, target, config, message):
    with pytest.raises(UsageError, match=message) as err:
        built(user + target, **config)
    assert "\n" not in str(err.value)


def test_the_run_identity_follows_the_models_code(user, tmp_path):
    before = ModelSpec(f"{user}:TinyMLP", width=8)
    (tmp_path / f"{user}.py").write_text(textwrap.dedent(SOURCE) + "\n# edited\n")
    after = ModelSpec(f"{user}:TinyMLP", width=8)
    assert before.plugin.startswith("-/") and before.plugin != after.plugin
    assert ModelSpec("mlp", depth=2, width=8).plugin == ""  # initbench's families: run_ids as before

    def run(model):
        return RunSpec("s", "b", model, InitSpec("he_normal"), DataSpec("digits", 32), TrainSpec(steps=1), 0)

    assert run(before).run_id != run(after).run_id


def toml_runs(user, **model):
    doc = {"seeds": 1, "model": {"family": f"{user}:TinyMLP", **model}, "train": {"steps": 1}}
    return experiments.resolve(experiments.from_doc(doc, "t")).specs


def test_a_toml_experiment_types_the_models_options_from_its_fields(user):
    specs = toml_runs(user, width=[8, 16], depth=1)
    assert [s.model.label for s in specs] == [f"{user}:TinyMLP(depth=1, width=8)", f"{user}:TinyMLP(depth=1, width=16)"]
    with pytest.raises(UsageError, match=r"t: model .*TinyMLP: unknown field 'widht'"):
        toml_runs(user, widht=8)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--init", "lsuv"], "init lsuv is a model-level scheme for initbench's models"),
        (["--parametrization", "mup", "--base-width", "8"], "a parametrization goes by layer class"),
        (["--lr-scale", "readout=0.1"], "lr_scale selects layer class readout"),
    ],
)
def test_what_needs_initbenchs_layer_contract_is_refused_in_one_line(user, argv, message, capsys, tmp_path):
    base = ["run", "--model", f"{user}:TinyMLP", "--width", "8", "--steps", "1", "--out", str(tmp_path / "o")]
    assert cli.main([*base, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # four checks of 8-layer nets, 2 seeds each: ~10 s
@pytest.mark.parametrize("model", ["Deep", "DeepNnx"])
def test_check_judges_a_users_linen_and_nnx_model_against_the_rate_theory_gives(user, model, tmp_path):
    from initbench.benchmarks.analysis.check import run_check
    from initbench.benchmarks.results import ResultStore

    def check(init, init_args, out=None):
        return run_check(
            model=f"{user}:{model}",
            depth=None,
            width=None,
            activation=None,
            init=init,
            init_args=init_args,
            input_shape=(64,),
            seeds=2,
            out=out,
        )

    # N(0, 0.05^2) on fan-in 64, ReLU: each layer multiplies the second moment by 0.05^2 x 64 / 2 = 0.08
    # (the module's own LeCun init would give 1/2, He 1). At width N a layer's log-ratio has variance
    # at most 5/N (relu(h)^2's relative variance, examples fully correlated) and bias -5/(2N): the
    # rate over 7 ratios x 2 seeds is within the bias plus 3 standard deviations of log 0.08
    result, _ = check("normal", {"stddev": 0.05}, tmp_path / "r")
    forward = result.verdicts["forward"]
    assert forward.verdict == "vanishing" and not result.passed
    n = 64
    assert abs(forward.rate - math.log(0.08)) <= 5 / (2 * n) + 3 * math.sqrt(5 / n / 14), forward.rate
    assert set(ResultStore(tmp_path / "r").read()["family"]) == {f"{user}:{model}"}
    he, _ = check("he_normal", {})  # 2 / fan_in with ReLU: neither vanishing nor exploding
    assert {v.verdict for v in he.verdicts.values()}.isdisjoint({"vanishing", "exploding"}), he.verdicts


@pytest.mark.slow  # an 8-layer BatchNorm net, 2 seeds: ~5 s
def test_check_probes_a_linen_batchnorm_model_with_batch_statistics_as_training_does(user):
    from initbench.benchmarks.analysis.check import run_check

    # N(0, 0.05^2) kernels shrink each Dense output by 0.08, but BatchNorm on the batch's statistics restores
    # unit variance before the next layer: preserved. Its fresh running averages (inference) would not.
    result, _ = run_check(
        model=f"{user}:DeepBN",
        depth=None,
        width=None,
        activation=None,
        init="normal",
        init_args={"stddev": 0.05},
        input_shape=(64,),
        seeds=2,
        out=None,
    )
    forward = result.verdicts["forward"]
    assert forward.verdict in ("preserved", "inconclusive at width 64"), forward  # not vanishing
    assert abs(forward.rate) < 0.3, forward  # against log(0.08) = -2.53 per layer without the batch's statistics
    q = result.table["measured_variance"].to_numpy()[1:-1]
    # each layer sees relu(a unit-variance normalized input): second moment 1/2, so 0.05^2 x 64 / 2 = 0.08
    assert np.allclose(q, 0.05**2 * 64 / 2, rtol=0.2), q


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("NnxTied", "layer mid is called twice (shared or tied weights)"),
        ("LinenTied", "layer mid is called twice (shared or tied weights)"),
        ("NoLayers", "has no parameter named 'kernel' for the run's initializer to draw (its parameters: w)"),
        ("NnxNet", "holds nnx BatchNorm statistics"),
        ("DeepNnx", "the check needs about 2.39e+03 GiB (4 seeds x batch 256"),  # 8e10 weights, abstractly
    ],
)
def test_check_refuses_what_its_probe_cannot_measure_in_one_line(user, model, message, capsys):
    size = ["--width", "200000", "--depth", "3"] if model == "DeepNnx" else []
    assert cli.main(["check", "--model", f"{user}:{model}", "--input-shape", "64", *size, "--no-write"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "needs --input-shape (one example's shape"),
        (["--input-shape", "64", "--blocks", "1,1"], "--blocks is an option of initbench's model families"),
        (["--input-shape", "64", "--init", "lsuv"], "init lsuv is a model-level scheme for initbench's models"),
        (["--input-shape", "64", "--width", "8", "--model-args", "depth=2"], None),  # declared: taken
        (["--input-shape", "64", "--model-args", "size=3"], r"takes no option(s) size; it takes: depth, width"),
        (["--input-shape", "64", "--activation", "tanh"], "takes no activation (it would be ignored"),
        (["--input-shape", "64", "--activation", "relu"], "takes no activation (it would be ignored"),  # explicit
    ],
)
def test_check_of_a_plugin_model_takes_its_own_options_and_refuses_the_rest(user, argv, message, capsys):
    from initbench.benchmarks.analysis import check

    if message is None:  # validated, then measured: stop at the measuring (the slow test above measures)
        import unittest.mock

        with unittest.mock.patch.object(check, "check_variance", side_effect=SystemExit(7)):
            with pytest.raises(SystemExit):
                cli.main(["check", "--model", f"{user}:Deep", *argv, "--no-write"])
        return
    assert cli.main(["check", "--model", f"{user}:Deep", *argv, "--no-write"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_check_refuses_model_args_for_initbenchs_families(capsys):
    assert cli.main(["check", "--model", "mlp", "--model-args", "x=1", "--no-write"]) == 2
    assert "--model-args are a plug-in model's options; mlp takes none" in capsys.readouterr().err


@pytest.mark.slow  # trains 4 short runs per model
@pytest.mark.parametrize("model", ["TinyMLP", "NnxNet"])  # linen and nnx
def test_a_plugin_model_trains_from_the_command_line(user, tmp_path, model):
    from initbench.benchmarks.results import ResultStore

    out = tmp_path / "r"
    argv = ["run", "--model", f"{user}:{model}", "--width", "16", "--depth", "1", "--init", "he_normal,zeros"]
    assert cli.main([*argv, "--steps", "60", "--seeds", "2", "--quiet", "--out", str(out)]) == 0
    rows = ResultStore(out).read()
    acc = rows[(rows["metric"] == "accuracy") & (rows["split"] == "test")]
    last = acc[acc["step"] == acc["step"].max()].groupby("init")["value"].mean()
    assert last["he_normal"] > 0.3 > last["zeros"]  # He trains; zero kernels leave every unit alike
    assert set(rows["family"]) == {f"{user}:{model}"}


def test_spec_options_of_a_plugin_are_its_extra_fields(user):
    spec = ModelSpec(f"{user}:plain", extra=options(hidden=4))
    assert spec.config() == {"activation": "relu", "hidden": 4}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "{m}:plain", "--width", "8"], "takes no width (it would be ignored); it takes: hidden"),
        (["--model", "{m}:TinyMLP", "--activation", "tanh"], "takes no activation (it would be ignored)"),
        # relu given explicitly is refused too (it was taken for the default and recorded)
        (["--model", "{m}:TinyMLP", "--activation", "relu"], "takes no activation (it would be ignored)"),
        (["--model", "{m}:NoKernel"], "has no parameter named 'kernel' for the run's initializer to draw"),
        (["--model", "{m}:plain", "--bias-init", "ones", "--model-args", "hidden=4"], None),  # it has biases
        (["--model", "{m}:Wide"], "gives logits of shape (32, 13) for a batch of 32; the dataset has 10 classes"),
        (["--model", "{m}:Ints"], "gives int32 logits; they must be floats"),
        (["--model", "{m}:Drop"], 'failed in apply: InvalidRngError: Dropout_0 needs PRNG for "dropout"'),
        (["--model", "{m}:NnxNet", "--width", "8"], None),  # nnx: trained like linen
        (["--model", "{m}:NnxDrop"], "holds nnx state other than nnx.Param and nnx.BatchStat"),
        (["--model", "{m}:NnxDropNoRngs"], "failed in apply: ValueError: `deterministic` is False, but no `rngs`"),
        (["--model", "{m}:NnxPlainArray"], "holds a plain array in attribute 'readout', which nnx treats as static"),
    ],
)
def test_a_model_that_would_train_wrongly_is_refused_before_any_work(user, argv, message, capsys):
    argv = [a.format(m=user) for a in argv]
    code = cli.main(["show", *argv, "--batch-size", "32", "--steps", "1", "--seeds", "1"])
    err = capsys.readouterr().err.strip()
    if message is None:
        assert code == 0, err
        return
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_the_identity_follows_the_module_that_defines_a_re_exported_model(tmp_path, monkeypatch):
    package = tmp_path / f"pkg_{tmp_path.name.replace('-', '_')}"
    package.mkdir()
    (package / "__init__.py").write_text("from .models import Net\n")
    (package / "models.py").write_text(textwrap.dedent(SOURCE).replace("class TinyMLP", "class Net"))
    monkeypatch.syspath_prepend(str(tmp_path))
    before = ModelSpec(f"{package.name}:Net").plugin
    (package / "models.py").write_text(textwrap.dedent(SOURCE).replace("class TinyMLP", "class Net") + "\n# x\n")
    import importlib
    import sys

    importlib.reload(sys.modules[f"{package.name}.models"])
    assert ModelSpec(f"{package.name}:Net").plugin != before  # __init__.py unchanged, the model's file edited


def test_a_parametrization_for_a_plugin_model_names_the_reason_even_without_a_width(user, capsys, tmp_path):
    # the model's own width option is no run width: the width check must not speak first ("this model has none")
    argv = ["run", "--model", f"{user}:TinyMLP", "--parametrization", "mup", "--base-width", "8", "--steps", "1"]
    assert cli.main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("the plug-in model " + f"{user}:TinyMLP has no layer-naming contract (not yet)"), err
