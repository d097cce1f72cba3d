"""A user's own initializer and dataset (``package.module:attribute``) through the registries, run, check, TOML."""

import math
import re
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits
from initbench.benchmarks import cli
from initbench.benchmarks.results import ResultStore
from initbench.benchmarks.spec import InitSpec

SOURCE = """
import jax
import jax.numpy as jnp
from initbench import inits


def scaled_orthogonal(gain=1.0):
    return inits.orthogonal(gain=gain)


def half_normal(stddev=0.1):
    def init(key, shape, dtype=jnp.float32):
        return jnp.abs(jax.random.normal(key, shape, dtype)) * stddev
    return init


def broken():
    return 3


not_a_factory = 3


def blobs(n: int = 60, dim: int = 6, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, dim)) + y[:, None]
    half = n // 2
    return {"x_train": x[:half], "y_train": y[:half], "x_test": x[half:], "y_test": y[half:], "num_classes": 3}


def shrink(model, variables, batch, *, factor: float = 0.5):
    '''Every kernel times factor, measured on nothing: a deterministic scheme.'''
    params = jax.tree_util.tree_map_with_path(
        lambda path, v: v * factor if str(path[-1]).endswith("'kernel']") else v, variables["params"]
    )
    return {**variables, "params": params}, {"factor": factor}


def unit_logits(model, variables, batch, *, key=None, labels=None):
    '''The readout rescaled so that the logits on the batch have unit variance (reads data and labels).'''
    assert labels is not None and key is not None
    logits = model.apply(variables, batch)
    params = dict(variables["params"])
    params["head"] = jax.tree_util.tree_map(lambda v: v / jnp.std(logits), params["head"])  # logits / their std
    return {**variables, "params": params}, {}


def required_opt(model, variables, batch, *, factor):
    return variables, {}


def typed(model, variables, batch, *, steps: int = 2, rate=0.5, label: str = "a"):
    return variables, {}


def open_scheme(model, variables, batch, **options):
    return variables, options


def raises(model, variables, batch):
    raise ValueError("boom inside the plug-in")


def renamed(m, v, b, *, key=None):
    return v, {}


def returns_dict(model, variables, batch):
    return variables


def wrong_shapes(model, variables, batch):
    return jax.tree_util.tree_map(lambda v: v[..., :1], variables), {}


def untyped_blobs(n=60, tag=None):  # unannotated: typed by the default, else any scalar
    return blobs(n=n)


def needs_n(n: int):
    return blobs(n=n)


def bad_labels():
    import numpy as np

    x, y = np.zeros((4, 2)), np.array([0, 1, 5, 0])
    return {"x_train": x, "y_train": y, "x_test": x[:2], "y_test": y[:2], "num_classes": 3}
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    name = f"userinits_{tmp_path.name.replace('-', '_')}"  # a fresh module per test (no stale import)
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_a_plugin_factory_builds_an_init_or_wraps_a_jax_initializer(plugin):
    ortho = inits.get(f"{plugin}:scaled_orthogonal", gain=2.0)
    w = np.asarray(ortho(jax.random.key(0), (16, 16)))
    np.testing.assert_allclose(w.T @ w, 4.0 * np.eye(16), atol=1e-4)  # the built-in's draws: an Init as returned
    half = inits.get(f"{plugin}:half_normal", stddev=0.5)
    assert isinstance(half, inits.Init) and repr(half) == f"{plugin}:half_normal(stddev=0.5)"
    draw = half(jax.random.key(1), (64, 64))
    assert draw.dtype == jnp.float32 and float(draw.min()) >= 0.0
    np.testing.assert_array_equal(
        np.asarray(draw), np.abs(np.asarray(jax.random.normal(jax.random.key(1), (64, 64)))) * 0.5
    )
    with pytest.raises(ValueError, match=r"takes kernels|shape must"):  # shapes checked as for the built-ins
        half(jax.random.key(1), (3, -1))


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        (":nope", r"plug-in '{m}:nope': '{m}' has no attribute 'nope'"),
        (":not_a_factory", r"plug-in '{m}:not_a_factory' is a int, not a factory of initializers"),
        (":broken", r"plug-in {m}:broken\(...\) must return an initializer .* got a int"),
    ],
)
def test_a_bad_plugin_is_one_line(plugin, attribute, message):
    with pytest.raises(ValueError, match=message.format(m=plugin)) as err:
        inits.get(plugin + attribute)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"plug-in 'no_such_module_anywhere:f': cannot import"):
        inits.get("no_such_module_anywhere:f")


def test_the_run_identity_follows_the_plugins_code(plugin, tmp_path):
    before = InitSpec(f"{plugin}:half_normal")
    (tmp_path / f"{plugin}.py").write_text(textwrap.dedent(SOURCE) + "\n# edited\n")
    after = InitSpec(f"{plugin}:half_normal")
    assert before.plugin.startswith(f"{plugin}:half_normal=-/") and before.plugin != after.plugin
    assert InitSpec("he_normal").plugin == ""  # built-ins: no fingerprint, run_ids as before


@pytest.mark.slow  # three short training runs and a check
def test_a_plugin_runs_through_run_check_and_a_toml_experiment(plugin, tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["run", "--depth", "1", "--width", "8", "--steps", "2", "--seeds", "1", "--quiet", "--out", str(out)]
    assert cli.main([*argv, "--init", f"{plugin}:half_normal(stddev=0.05),he_normal"]) == 0
    table = ResultStore(out).read()
    assert set(table["init"]) == {f"{plugin}:half_normal", "he_normal"}
    assert cli.main(
        ["check", "--no-write", "--depth", "6", "--width", "16", "--seeds", "2", "--init", f"{plugin}:half_normal"]
    ) in (0, 1, 3)
    init = f'[{{name = "{plugin}:scaled_orthogonal", gain = [1.0, 2.0]}}]'
    assert len(toml_run_ids(tmp_path, init, 'family = "mlp"\ndepth = 1\nwidth = 8\nactivation = "tanh"')) == 2


def toml_run_ids(tmp_path, init, model):
    """The run_ids of a two-step TOML experiment with this ``init`` value and ``[model]`` body."""
    toml = tmp_path / "exp.toml"
    toml.write_text(
        f"seeds = 1\ninit = {init}\n[model]\n{model}\n"
        '[data]\nname = "digits"\nbatch_size = 16\n[train]\noptimizer = "sgd"\nlr = 0.05\nsteps = 2\neval_every = 1\n'
    )
    assert cli.main(["run", str(toml), "--quiet", "--out", str(tmp_path / "t")]) == 0
    return set(ResultStore(tmp_path / "t").read()["run_id"])


def test_a_plugin_scheme_is_a_scheme_with_its_signature_read(plugin):
    from initbench.inits.registry import plugin_scheme

    shrink, unit = plugin_scheme(f"{plugin}:shrink"), plugin_scheme(f"{plugin}:unit_logits")
    assert shrink is not None and not shrink.labels and not shrink.random and shrink.data
    assert shrink.options().keys() == {"factor"} and shrink.formula.startswith("Every kernel times factor")
    assert unit is not None and unit.labels and unit.random
    assert plugin_scheme(f"{plugin}:half_normal") is None and plugin_scheme("he_normal") is None  # initializers
    assert InitSpec(f"{plugin}:shrink").scheme == shrink and InitSpec(f"{plugin}:half_normal").scheme is None
    assert InitSpec(f"{plugin}:shrink").plugin.startswith(f"{plugin}:shrink=")  # its code is in the run identity


def test_a_plugin_scheme_runs_on_the_model_the_trainer_builds(plugin):
    from initbench.benchmarks import data, experiments
    from initbench.benchmarks.train import run_keys, scheme_init

    dataset = data.load("digits")
    doc = {
        "init": [{"name": f"{plugin}:shrink", "factor": 0.25, "base": "normal(stddev=0.1)"}],
        "model": {"family": "mlp", "depth": 2, "width": 16, "activation": "relu"},
        "data": {"name": "digits", "batch_size": 32},
        "train": {"optimizer": "sgd", "lr": 0.1, "steps": 1, "eval_every": 1},
    }
    (spec,) = experiments.resolve(experiments.from_doc(doc, "test")).full
    spec.init.validate()
    before, after, record = scheme_init(spec, dataset, record=True)(run_keys(0)[0], dataset.x_train, dataset.y_train)
    assert record == {"factor": 0.25}
    flat = jax.tree_util.tree_flatten_with_path(before["params"])[0]
    for (path, b), a in zip(flat, jax.tree_util.tree_leaves(after["params"]), strict=True):
        expected = b * 0.25 if "kernel" in str(path[-1]) else b
        np.testing.assert_array_equal(np.asarray(a), np.asarray(expected))
    first = next(b for _, b in flat if b.shape == (64, 16))  # the input layer: 1,024 draws, std's SE 2.2%
    assert float(jnp.std(first)) == pytest.approx(0.1, rel=0.1)  # built with its base; 4.5 SE


@pytest.mark.parametrize(
    ("init", "message"),
    [
        (":required_opt", r"{m}:required_opt needs argument\(s\) factor, e.g. {m}:required_opt\(factor=0.1\)"),
        (":typed(steps=0.5)", r"{m}:typed: steps must be an integer, got 0.5"),
        (":typed(rate=abc)", r"{m}:typed: rate must be a finite number, got 'abc'"),
        (":typed(rate=inf)", r"{m}:typed: rate must be a finite number, got inf"),  # was taken
        (":typed(label=3)", r"{m}:typed: label must be a string, got 3"),
        (":typed(other=1)", r"{m}:typed got unexpected argument\(s\) other; valid arguments: base, steps, rate, label"),
        (":raises", r"scheme plug-in {m}:raises failed: ValueError: boom inside the plug-in"),
        (":renamed", r"a model-level scheme plug-in is a function whose first parameters are named model, variables"),
    ],
)
def test_a_plugin_schemes_bad_options_and_own_errors_are_one_line_before_any_work(
    plugin, init, message, tmp_path, capsys
):
    argv = ["run", "--depth", "1", "--width", "8", "--steps", "2", "--seeds", "1", "--quiet"]
    assert cli.main([*argv, "--init", plugin + init, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(message.format(m=plugin), err) and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_a_plugin_scheme_taking_kwargs_takes_any_option_and_never_kwargs_by_name(plugin):
    from initbench.inits.registry import plugin_scheme

    scheme = plugin_scheme(f"{plugin}:open_scheme")
    assert scheme.options() == {} and scheme.open_ended
    InitSpec(f"{plugin}:open_scheme", (("anything", 1), ("tag", "x"))).validate()
    assert InitSpec(f"{plugin}:typed", (("steps", 3), ("rate", 1))).validate() is None  # an int passes for a float


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        (":returns_dict", "scheme plug-in {m}:returns_dict must return (variables, record), got dict"),
        (":wrong_shapes", "scheme plug-in {m}:wrong_shapes must return variables of the structure, shapes"),
    ],
)
def test_a_plugin_scheme_returning_the_wrong_thing_is_one_line_before_any_work(
    plugin, attribute, message, tmp_path, capsys
):
    argv = ["run", "--depth", "1", "--width", "8", "--steps", "2", "--seeds", "1", "--quiet"]
    assert cli.main([*argv, "--init", plugin + attribute, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message.format(m=plugin) in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # two short training runs
def test_a_plugin_scheme_trains_from_the_command_line_and_toml_with_its_options(plugin, tmp_path):
    out = tmp_path / "r"
    argv = ["run", "--depth", "1", "--width", "8", "--steps", "2", "--seeds", "1", "--quiet", "--out", str(out)]
    assert cli.main([*argv, "--init", f"{plugin}:unit_logits,{plugin}:shrink(factor=0.5)"]) == 0
    table = ResultStore(out).read()
    assert set(table["init"]) == {f"{plugin}:unit_logits", f"{plugin}:shrink"}
    init = f'[{{name = "{plugin}:shrink", factor = [0.5, 1.0]}}]'
    resnet = 'family = "resnet"\nblocks = [1]\nwidth = 4\nnormalization = "none"\nactivation = "relu"'
    assert len(toml_run_ids(tmp_path, init, resnet)) == 2


def test_an_unannotated_dataset_option_is_typed_by_its_default_else_any_scalar(plugin):
    from initbench.benchmarks import experiments

    def specs(**data):
        doc = {"seeds": 1, "data": {"name": f"{plugin}:untyped_blobs", **data}, "train": {"steps": 1}}
        return experiments.resolve(experiments.from_doc(doc, "t")).specs

    assert [dict(s.data.extra)["n"] for s in specs(n=[80, 100])] == [80, 100]  # was refused: "must be a string"
    assert dict(specs(tag="a")[0].data.extra)["tag"] == "a" and dict(specs(tag=2)[0].data.extra)["tag"] == 2
    with pytest.raises(ValueError, match="n must be an integer, got 'many'"):
        specs(n="many")


def test_a_plugin_dataset_loads_checked_and_typed(plugin):
    from initbench.benchmarks import data

    ds = data.load(f"{plugin}:blobs", n=40, dim=5)
    assert ds.name == f"{plugin}:blobs" and ds.input_shape == (5,) and ds.num_classes == 3
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32 and len(ds.y_test) == 20
    with pytest.raises(ValueError, match=rf"dataset plug-in {plugin}:bad_labels: y_train must be integer classes in"):
        data.load(f"{plugin}:bad_labels")
    with pytest.raises(ValueError, match=rf"dataset {plugin}:blobs has no option\(s\) nope; valid options: n, dim"):
        data.load(f"{plugin}:blobs", nope=1)


@pytest.mark.slow  # a short training run on the plug-in's data
def test_a_plugin_dataset_trains_from_the_command_line_with_its_options(plugin, tmp_path, capsys):
    out = tmp_path / "d"
    argv = ["run", "--depth", "1", "--width", "8", "--steps", "2", "--seeds", "1", "--batch-size", "8", "--quiet"]
    assert cli.main([*argv, "--dataset", f"{plugin}:blobs", "--dataset-args", "n=50,dim=4", "--out", str(out)]) == 0
    table = ResultStore(out).read()
    assert set(table["dataset"]) == {f"{plugin}:blobs"}
    assert cli.main([*argv, "--dataset", f"{plugin}:blobs", "--dataset-args", "bad=1", "--out", str(out)]) == 2
    assert f"dataset {plugin}:blobs: unknown field 'bad'; valid: batch_size, dim" in capsys.readouterr().err


@pytest.fixture
def installed(plugin, tmp_path):
    """A distribution ``user-inits`` 2.5 installed on sys.path, declaring entry points in initbench.plugins."""

    def install(lines):
        info = tmp_path / "user_inits-2.5.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: user-inits\nVersion: 2.5\n")
        (info / "top_level.txt").write_text(plugin + "\n")
        (info / "entry_points.txt").write_text("[initbench.plugins]\n" + "".join(f"{k} = {v}\n" for k, v in lines))
        return plugin

    return install


def test_an_installed_entry_point_names_a_plugin_everywhere_its_target_would(installed, tmp_path):
    from initbench.benchmarks import data, experiments
    from initbench.inits.registry import installed_plugins

    m = installed([("half", f"{plugin_of(installed)}:half_normal"), ("blobs", f"{plugin_of(installed)}:blobs")])
    assert installed_plugins() == {"blobs": f"{m}:blobs", "half": f"{m}:half_normal"}
    by_name, by_target = inits.get("half", stddev=0.5), inits.get(f"{m}:half_normal", stddev=0.5)
    key = jax.random.key(3)
    np.testing.assert_array_equal(np.asarray(by_name(key, (8, 8))), np.asarray(by_target(key, (8, 8))))
    # one run identity for the name and the target, with the distribution's version (named unlike its module)
    assert InitSpec("half") == InitSpec(f"{m}:half_normal")
    assert InitSpec("half").plugin.startswith(f"{m}:half_normal=2.5/")
    assert data.load("blobs", n=20).num_classes == 3

    def runs(init, dataset):
        doc = {"seeds": 1, "init": init, "data": {"name": dataset, "n": 40}, "train": {"steps": 1}}
        return experiments.resolve(experiments.from_doc(doc, "t")).specs

    specs = runs(["half", "he_normal"], "blobs")
    assert {s.init.name for s in specs} == {f"{m}:half_normal", "he_normal"}
    assert {s.data.name for s in specs} == {f"{m}:blobs"}
    targets = runs([f"{m}:half_normal", "he_normal"], f"{m}:blobs")
    assert [s.run_id for s in specs] == [s.run_id for s in targets]


def plugin_of(install):
    return install([])


def test_a_builtin_name_wins_over_an_entry_point_and_unknown_names_list_the_installed(installed):
    from initbench.inits.registry import expand

    m = installed([("he_normal", f"{plugin_of(installed)}:broken"), ("halfn", f"{plugin_of(installed)}:half_normal")])
    assert expand("he_normal", inits.registry.INITS) == "he_normal" and repr(inits.get("he_normal")).startswith("he")
    with pytest.raises(ValueError, match=r"unknown initializer 'halfm'.*halfn") as err:
        inits.get("halfm")
    assert "\n" not in str(err.value) and m


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([("odd", "not a target")], r"entry point 'odd' of user-inits in initbench.plugins is 'not a target', not"),
    ],
)
def test_a_malformed_entry_point_is_one_line(installed, lines, message):
    installed(lines)
    with pytest.raises(ValueError, match=message) as err:
        inits.get("odd")
    assert "\n" not in str(err.value)


def test_list_shows_the_installed_plugins(installed, capsys):
    m = plugin_of(installed)
    installed([("half", f"{m}:half_normal")])
    assert cli.main(["list", "inits"]) == 0
    assert f"half                     plug-in            {m}:half_normal (entry point in initbench.plugins)" in (
        capsys.readouterr().out
    )


def test_the_command_line_takes_an_installed_name_for_init_and_dataset(installed, capsys):
    m = plugin_of(installed)
    installed([("half", f"{m}:half_normal"), ("blobs", f"{m}:blobs")])
    argv = ["show", "--init", "half(stddev=0.05),he_normal", "--dataset", "blobs", "--dataset-args", "n=400"]
    assert cli.main([*argv, "--depth", "1", "--width", "4", "--steps", "1", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{m}:half_normal" in out and f"{m}:blobs" in out


def test_a_dataset_plugins_missing_required_option_is_one_line(plugin):
    from initbench.benchmarks import data

    with pytest.raises(ValueError, match=r"dataset plug-in .*:needs_n needs option\(s\) n") as err:
        data.load(f"{plugin}:needs_n")
    assert "\n" not in str(err.value)
    assert data.load(f"{plugin}:needs_n", n=40).num_classes == 3


def test_entry_point_names_with_dots_and_values_with_extras_work_and_list_marks_shadowed_names(installed, capsys):
    m = plugin_of(installed)
    installed([("my.half", f"{m}:half_normal [fast]"), ("he_normal", f"{m}:half_normal")])
    from initbench.inits.registry import installed_plugins

    assert installed_plugins()["my.half"] == f"{m}:half_normal"  # the extras name no part of the target
    assert repr(inits.get("my.half", stddev=0.5)) == f"{m}:half_normal(stddev=0.5)"
    assert cli.main(["list", "inits"]) == 0
    out = capsys.readouterr().out
    shadowed = f"he_normal                plug-in            {m}:half_normal (entry point in initbench.plugins)"
    assert shadowed + " (unused: a built-in has this name)" in out


@pytest.mark.slow  # two variance checks
def test_check_judges_a_plugin_scheme_not_its_base(plugin, capsys):
    # He kernels x 0.5 on ReLU: the forward second moment x 1/4 per layer; He alone keeps it
    argv = ["check", "--no-write", "--depth", "8", "--width", "64", "--seeds", "2", "--activation", "relu"]
    import re

    assert cli.main([*argv, "--init", "he_normal"]) in (0, 3)  # kept, or undecided at this size: never vanishing
    capsys.readouterr()
    assert cli.main([*argv, "--init", f"{plugin}:shrink"]) == 1
    out = capsys.readouterr().out
    rate = float(re.search(r"forward +vanishing: rate (-?[0-9.]+)/layer", out).group(1))
    assert abs(rate - math.log(0.25)) < 0.15, out  # ln(1/4) per layer, finite-width noise well inside 0.15


def test_the_run_identity_follows_the_users_helper_modules_too(tmp_path, monkeypatch):
    from initbench.inits.registry import local_imports

    stem = f"own_{tmp_path.name.replace('-', '_')}"
    pkg = tmp_path / f"{stem}_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "util.py").write_text("SCALE = 0.5\n")
    (pkg / "deep.py").write_text("from . import util\n")
    (tmp_path / f"{stem}_helpers.py").write_text(f"import numpy\nfrom {stem}_pkg import deep\nSTD = 0.1\n")
    (tmp_path / f"{stem}_unrelated.py").write_text("X = 1\n")
    (tmp_path / f"{stem}.py").write_text(
        f"import jax\nimport {stem}_helpers as h\nfrom initbench import inits\n\n"
        "def half(stddev=None):\n    return inits.normal(stddev=stddev or h.STD)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module(stem)
    # transitively: the helper, the package it imports from, and the module a relative import names
    assert [n for n, _ in local_imports(module)] == [
        f"{stem}_helpers",
        f"{stem}_pkg",
        f"{stem}_pkg.deep",
        f"{stem}_pkg.util",
    ]
    before = InitSpec(f"{stem}:half").plugin
    (tmp_path / f"{stem}_unrelated.py").write_text("X = 2\n")  # not imported: the identity stays
    assert InitSpec(f"{stem}:half").plugin == before
    (pkg / "util.py").write_text("SCALE = 0.25\n")  # two imports deep: a new identity
    assert InitSpec(f"{stem}:half").plugin != before
    assert "+L" in before
