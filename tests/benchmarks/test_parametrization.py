"""Width parametrizations: the rules, their plumbing into init and learning rates, and the coordinate check."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from initbench import models
from initbench.benchmarks import cli, data, parametrization
from initbench.benchmarks.groups import check_structure, structural_classes
from initbench.benchmarks.optimizers import OPTIMIZERS
from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options
from initbench.benchmarks.train import build_model, initial_variables, member_hyper, train_cohort
from initbench.inits.errors import UsageError


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def run(width, name="mup", optimizer="sgd", seed=0, steps=3, wd=0.0, family="mlp", **model):
    par = {"name": name, "base_width": 64} if name else ()
    return RunSpec(
        "p",
        "p",
        ModelSpec(family, "relu", 3 if family == "mlp" else None, width, options(**model)),
        InitSpec("he_normal"),
        DataSpec("digits", 64),
        TrainSpec(optimizer, lr=0.1 if optimizer == "sgd" else 0.01, steps=steps, eval_every=1, weight_decay=wd),
        seed,
        parametrization=par,
    )


def test_the_presets_multipliers_and_their_identity_at_the_base_width():
    # muP (TP5 Table 3 relative to SP at the base width): SGD input/bias lr x m, readout lr / m and
    # init std x m^-1/2; Adam hidden and readout lr / m; every preset is the plain run at m = 1
    sgd = parametrization.rules("mup", width=256, base_width=64, optimizer="momentum")
    assert sgd == {
        "init_scale": {"readout": 0.5},
        "lr_scale": {"input": 4.0, "readout": 0.25, "vector": 4.0},  # 0-d scalars: nothing grows
        "wd_scale": {},
        "eps_scale": {},
    }
    adamw = parametrization.rules("mup", width=256, base_width=64, optimizer="adamw")
    assert adamw["lr_scale"] == {"hidden": 0.25, "readout": 0.25}
    assert adamw["wd_scale"] == {"hidden": 4.0, "readout": 4.0}  # decoupled decay per step stays lr x wd
    ntk = parametrization.rules("ntk", width=32, base_width=64, optimizer="sgd")
    assert ntk == {"init_scale": {}, "lr_scale": {"hidden": 2.0, "readout": 2.0}, "wd_scale": {}, "eps_scale": {}}
    for name in parametrization.PRESETS:
        for optimizer, family in parametrization.FAMILIES.items():
            if family not in parametrization.PRESETS[name]["hidden"]:  # Everett's rows: Adam-like only
                assert "_align" in name and family == "sgd"
                continue
            if name.endswith("+eps") and optimizer not in parametrization.EPS_OPTIMIZERS:
                continue  # refused: no epsilon to scale
            assert parametrization.rules(name, width=64, base_width=64, optimizer=optimizer) == {
                "init_scale": {},
                "lr_scale": {},
                "wd_scale": {},
                "eps_scale": {},
            }
    # every optimizer but adafactor (relative updates: no rule yet) has a family
    assert set(OPTIMIZERS) - set(parametrization.FAMILIES) == {"adafactor"}


@pytest.mark.slow  # two trainings
@pytest.mark.parametrize(("name", "optimizer"), [("mup", "sgd"), ("mup+eps", "adam")])
def test_mup_at_the_base_width_is_the_plain_run_bitwise(digits, name, optimizer):
    plain, mup = run(64, name=None, optimizer=optimizer), run(64, name=name, optimizer=optimizer)
    assert plain.run_id != mup.run_id  # a parametrized run is named as one
    (a, _), *_ = list(train_cohort([plain], digits, devices=jax.devices()[:1]))
    (b, _), *_ = list(train_cohort([mup], digits, devices=jax.devices()[:1]))
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())


@pytest.mark.slow  # two inits of a width-256 MLP
def test_the_multipliers_reach_the_initial_weights_and_the_member_rates(digits):
    plain, mup = run(256, name=None), run(256)
    p0, p1 = initial_variables(plain, digits)["params"], initial_variables(mup, digits)["params"]
    np.testing.assert_allclose(p1["head"]["dense"]["kernel"], 0.5 * p0["head"]["dense"]["kernel"], rtol=2.5e-7)
    np.testing.assert_array_equal(p1["layer_001"]["dense"]["kernel"], p0["layer_001"]["dense"]["kernel"])
    hyper = member_hyper([plain, mup], jax.eval_shape(lambda: p0))
    lr = hyper["lr_scale"]
    assert float(lr["layer_000"]["dense"]["kernel"][1]) == 4.0 and float(lr["head"]["dense"]["kernel"][1]) == 0.25
    assert float(lr["layer_001"]["dense"]["kernel"][1]) == 1.0 and float(lr["layer_001"]["dense"]["bias"][1]) == 4.0
    assert float(lr["head"]["dense"]["bias"][1]) == 1.0  # the classifier's bias: size 10 at every width
    assert all(float(v[0]) == 1.0 for v in jax.tree_util.tree_leaves(lr))


def test_sp_at_any_base_width_is_one_run_and_an_empty_parametrization_keeps_the_run_id():
    a = RunSpec(*run(64, name=None).__dict__.values())
    sp1 = run(64, name="sp")
    sp2 = RunSpec(*list(run(64, name=None).__dict__.values())[:-1], parametrization={"name": "sp", "base_width": 8})
    assert sp1.parametrization == sp2.parametrization == (("name", "sp"),) and sp1.run_id == sp2.run_id
    assert a.run_id == run(64, name=None).run_id


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dict(name="mupp"), "unknown parametrization 'mupp'"),
        (dict(optimizer="adafactor"), "no learning-rate rule for optimizer 'adafactor'"),
        (dict(width=None), "scales with the model's width; this model has none"),
    ],
)
def test_bad_parametrizations_are_one_line(spec, message):
    width = spec.pop("width", 128)
    with pytest.raises(UsageError, match=message):
        run(width, **spec).validate()


@pytest.mark.parametrize("bad", ["mup", 42, (("name",),), (("name", "mup"), ("width", 8))])
def test_a_malformed_parametrization_is_one_line(bad):
    s = run(64, name=None)
    s = RunSpec(s.suite, s.benchmark, s.model, s.init, s.data, s.train, 0, parametrization=bad)
    with pytest.raises(UsageError, match="parametrization takes a name and a base_width"):
        s.validate()


def test_a_list_of_pairs_and_numpy_widths_are_the_same_run_as_a_dict():
    s = run(64, name=None)
    a = RunSpec(s.suite, s.benchmark, s.model, s.init, s.data, s.train, 0, {"name": "mup", "base_width": 16})
    pairs = [["base_width", np.int64(16)], ["name", "mup"]]
    b = RunSpec(s.suite, s.benchmark, s.model, s.init, s.data, s.train, 0, pairs)
    assert a.parametrization == b.parametrization and a.run_id == b.run_id and hash(b)


def test_a_scheme_refuses_a_parametrization():
    s = run(128)
    s = RunSpec(s.suite, s.benchmark, s.model, InitSpec("lsuv"), s.data, s.train, 0, s.parametrization)
    with pytest.raises(UsageError, match="lsuv is a model-level scheme"):
        s.validate()


@pytest.mark.parametrize(
    ("family", "fields"),
    [("mlp", {}), ("mlp", {"scan": True}), ("resnet", {"blocks": (1, 2)}), ("resnet", {"blocks": (3,), "scan": True})],
)
def test_layer_classes_by_shape_agree_with_the_names_on_initbench_models(digits, family, fields):
    # two abstract inits, no work: the classes a parametrization uses are the model's structure
    specs = [run(w, family=family, **fields) for w in (8, 16)]
    shapes = [
        jax.eval_shape(lambda s=s: build_model(s, digits).init(jax.random.key(0), jnp.zeros((1, 8, 8, 1))))["params"]
        for s in specs
    ]
    classes = structural_classes(*shapes)
    assert {"input", "hidden", "readout", "vector", "fixed"} <= set(classes.values())
    assert [c for p, c in classes.items() if p.startswith("head/") and p.endswith("bias")] == ["fixed"]
    check_structure(*shapes, "m")


def test_a_model_whose_names_and_shapes_disagree_cannot_be_classified():
    def params(n):  # "head" whose fan-in does not grow: a readout by name, an input layer by shape
        return {"layer_000": {"dense": {"kernel": np.zeros((4, n))}}, "head": {"dense": {"kernel": np.zeros((4, n))}}}

    with pytest.raises(UsageError, match="cannot classify head/dense/kernel: 'readout' by its name but 'input'"):
        check_structure(params(8), params(16), "m")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--parametrization", "mup"], "parametrization mup needs base_width"),
        (["--base-width", "8"], "base_width needs a parametrization"),
        (["--parametrization", "nt", "--base-width", "8"], "unknown parametrization 'nt'"),
        (["--parametrization", "mup", "--base-width", "8", "--model", "lenet5"], "this model has none"),
        # a bad value later in an axis is found before any work too
        (["--init", "he_normal,lsuv", "--parametrization", "mup", "--base-width", "8"], "lsuv is a model-level"),
        (["--parametrization", "sp,mup"], "parametrization mup needs base_width"),
        (["--parametrization", "mup", "--set", "base_width=[16,0]"], "below 2**31 (the tuned width), got 0"),
        (["--parametrization", "sp,foo", "--base-width", "8"], "unknown parametrization 'foo'"),
        (["--optimizer", "adafactor", "--parametrization", "sp,mup", "--base-width", "8"], "'adafactor'"),
        (
            [
                "--set",
                'model=[{family="mlp",depth=2,width=32},{family="lenet5"}]',
                "--parametrization",
                "sp,mup",
                "--base-width",
                "8",
            ],
            "this model has none",
        ),
    ],
)
def test_bad_command_lines_are_one_line(argv, message, tmp_path, capsys):
    assert cli.main(["run", *argv, "--steps", "2", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a run through the runner
def test_the_runner_records_the_parametrization_and_checks_the_structure(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", "--parametrization", "mup,sp", "--base-width", "8", "--width", "16", "--depth", "2"]
    assert cli.main([*argv, "--steps", "2", "--eval-every", "1", "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    runs = df.drop_duplicates("run_id").set_index("parametrization")["base_width"]
    assert runs["mup"] == 8 and pd.isna(runs["sp"]) and len(runs) == 2


def _coordinates(digits, name, optimizer, widths, seeds):
    """Mean |activation| per hidden layer and |logits| on a fixed batch at steps 0..3, mean over seeds."""
    x = jnp.asarray(digits.x_test[:64])
    out = {}
    for width in widths:
        specs = [run(width, name=name, optimizer=optimizer, seed=s) for s in range(seeds)]
        net = build_model(specs[0], digits)

        def probe(variables, net=net):
            logits, state = net.apply(variables, x, mutable=["intermediates"])
            acts = [layer["activation"] for layer in models.per_layer(state["intermediates"])][:-1]
            return {"logits": jnp.mean(jnp.abs(logits)), **{f"h{i}": jnp.mean(jnp.abs(a)) for i, a in enumerate(acts)}}

        rows = pd.concat([r for r, _ in train_cohort(specs, digits, devices=jax.devices()[:1], probe=probe)])
        out[width] = rows[rows["split"] == "probe"].groupby(["step", "metric"])["value"].mean()
    frame = pd.DataFrame(out)
    logw = np.log(np.asarray(widths, np.float64))
    return {key: float(np.polyfit(logw, np.log(frame.loc[key].to_numpy()), 1)[0]) for key in frame.index}


@pytest.mark.slow  # 2 parametrizations x 3 widths x 3 seeds x 2 optimizers, 3 steps each
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_coordinate_check_sp_blows_up_with_width_and_mup_does_not(digits, optimizer):
    # microsoft/mup's coordinate check: after 3 steps at one learning rate, the logits' coordinates
    # grow ~ width^1 under SP and stay ~ width^0 under muP (theory); the hidden layers' stay flat
    # under muP. Bounds: the theory's slopes 1 and 0 with margins set from a first measurement
    # (widths 64..1024, 4 seeds: SP logits 0.90 / 1.21, muP logits -0.08 / 0.06, muP hidden <= 0.11
    # / 0.18 for SGD / Adam); at init muP's readout std x m^-1/2 gives the logits slope -1/2.
    widths = (64, 256, 1024)
    sp = _coordinates(digits, "sp", optimizer, widths, 3)
    mup = _coordinates(digits, "mup", optimizer, widths, 3)
    assert sp[3, "logits"] > 0.6, sp
    assert abs(mup[3, "logits"]) < 0.25, mup
    assert abs(mup[0, "logits"] + 0.5) < 0.1, mup
    assert all(mup[3, f"h{i}"] < 0.3 for i in range(3)), mup
    assert math.isfinite(sp[3, "h2"])


def _rows(slopes_by_seed, widths=(128, 256, 512, 1024), layer="head", step=1):
    return pd.DataFrame(
        [
            {"layer": layer, "step": step, "seed": s, "width": w, "value": 0.5 * w**slope}
            for s, slope in enumerate(slopes_by_seed)
            for w in widths
        ]
    )


@pytest.mark.parametrize(
    ("slopes", "verdict", "code"),
    [
        ((0.01, -0.02, 0.0, 0.02), "width-stable", 0),
        ((1.0, 1.02, 0.98, 1.01), "grows as width^1.00", 1),
        ((-0.5, -0.52, -0.49, -0.5), "shrinks as width^-0.50", 1),
        ((0.1, 0.4, -0.2, 0.3), "inconclusive", 3),  # mean 0.15, but the seeds disagree
        ((0.24, 0.26, 0.25, 0.25), "inconclusive", 3),  # on the band's edge
    ],
)
def test_coord_verdicts_from_the_slopes_and_their_student_t_interval(slopes, verdict, code):
    from initbench.benchmarks import coord

    table = coord.verdicts(_rows(slopes))
    assert table["verdict"].tolist() == [verdict]
    assert coord.exit_code(table) == code
    assert table["slope"].iloc[0] == pytest.approx(np.mean(slopes), abs=1e-9)


def test_coord_step_zero_is_not_judged_and_a_diverged_width_fails():
    from initbench.benchmarks import coord

    rows = pd.concat([_rows((1.0, 1.0), step=0), _rows((0.0, 0.01), step=1)])
    rows.loc[(rows["step"] == 1) & (rows["width"] == 1024) & (rows["seed"] == 1), "value"] = np.nan
    table = coord.verdicts(rows)
    assert table["step"].tolist() == [1] and table["verdict"].tolist() == ["diverged at width 1024"]
    assert coord.exit_code(table) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--width", "64"], "drop --width"),
        (["--steps", "5"], "drop --steps"),
        (["--seeds", "1"], "at least 2 seeds"),
        (["--widths", "64,64"], "at least two different ones"),
        (["--widths", "64,128", "--lr", "0.1,0.2"], "one value of every other field"),
        (["--widths", "64,128", "--parametrization", "mup", "--model", "lenet5"], "lenet5 has no field(s) width"),
    ],
)
def test_coord_check_bad_input_is_one_line(argv, message, tmp_path, capsys):
    assert cli.main(["coord-check", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # two coordinate checks at the default widths (128..2048) and seeds (5): ~30 s each
def test_coord_check_passes_mup_and_fails_sp_with_adam(tmp_path, capsys):
    # issue 24's acceptance commands: muP exits 0; SP exits 1 naming the growing layers
    out = tmp_path / "coord"
    argv = ["coord-check", "--model", "mlp", "--optimizer", "adam"]
    assert cli.main([*argv, "--parametrization", "mup", "--out", str(out)]) == 0
    assert "every layer width-stable" in capsys.readouterr().out
    rows = pd.read_parquet(out)  # a coord results directory: pandas reads it whole (figure and table are _-named)
    assert set(rows["width"]) == {128, 256, 512, 1024, 2048} and set(rows["split"]) == {"probe"}
    assert (out / "_coord.png").exists() and (out / "_verdicts.md").exists()
    assert cli.main([*argv, "--parametrization", "sp"]) == 1
    printed = capsys.readouterr().out
    assert "not width-stable: head (step 1: grows as width^" in printed


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_multipliers_by_structure_equal_the_runners_by_name_on_initbench_models(digits, optimizer):
    # the public function for one's own model (classes from shapes) and the runner (classes from
    # names, checked against the shapes) give the same per-parameter rates and init scales
    from initbench.benchmarks.groups import lr_scale_tree

    spec = run(256, optimizer=optimizer)

    def shapes(width):
        s = run(width, optimizer=optimizer)
        return jax.eval_shape(lambda: build_model(s, digits).init(jax.random.key(0), jnp.zeros((1, 8, 8, 1))))["params"]

    m = parametrization.multipliers(shapes(256), shapes(512), "mup", width_mult=4.0, optimizer=optimizer)
    for field, kind in (("lr_scale", "lr"), ("init_scale", "init")):
        by_name = lr_scale_tree(shapes(256), spec.scale_rules(field))
        assert jax.tree_util.tree_leaves(by_name) == jax.tree_util.tree_leaves(m[kind]), field


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "mupp"}, "unknown parametrization 'mupp'"),
        ({"width_mult": 0.0}, "width_mult must be a number > 0"),
        ({"width_mult": True}, "width_mult must be a number > 0"),
        ({"optimizer": "adafactor"}, "no learning-rate rule for optimizer 'adafactor'"),
    ],
)
def test_multipliers_bad_input_is_one_line(kwargs, message):
    p = {"w": {"kernel": np.zeros((4, 8))}}
    args = {"name": "mup", "width_mult": 2.0, "optimizer": "adam", **kwargs}
    with pytest.raises(UsageError, match=message):
        parametrization.multipliers(p, p, args.pop("name"), **args)


@pytest.mark.parametrize(("name", "optimizer"), [("mup", "adam"), ("mup+eps", "adam"), ("sp", "momentum")])
def test_multipliers_depth_rule_equals_the_runners_on_initbench_resnet(digits, name, optimizer):
    # one's own model's depth rule (branch patterns given) and the runner's (ResNet's block names) agree
    # on every parameter's rate and epsilon, and on the branch multiplier
    from initbench.benchmarks.groups import lr_scale_tree

    def spec(width):
        s = resnet_run((16,), alpha=0.5, base_depth=4, optimizer=optimizer, name=name, base_width=8)
        return dataclasses.replace(s, model=dataclasses.replace(s.model, width=width))

    def shapes(width):
        s = spec(width)
        return jax.eval_shape(lambda: build_model(s, digits).init(jax.random.key(0), jnp.zeros((1, 8, 8, 1))))["params"]

    m = parametrization.multipliers(
        shapes(32),
        shapes(64),
        name,
        width_mult=4.0,
        optimizer=optimizer,
        depth_alpha=0.5,
        depth=16,
        base_depth=4,
        branches=parametrization.BRANCH_PATTERNS,
    )
    assert m["branch_multiplier"] == dict(spec(32).architecture)["branch_multiplier"] == 0.5
    fields = (("lr_scale", "lr"), ("eps_scale", "eps")) if name.endswith("+eps") else (("lr_scale", "lr"),)
    for field, kind in fields:
        by_name = lr_scale_tree(shapes(32), spec(32).scale_rules(field), field=field)
        assert jax.tree_util.tree_leaves(by_name) == pytest.approx(jax.tree_util.tree_leaves(m[kind]), rel=1e-12)
    plain = parametrization.multipliers(shapes(32), shapes(64), name, width_mult=4.0, optimizer=optimizer)
    assert "branch_multiplier" not in plain and plain["init"] == m["init"]  # depth leaves the init alone


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth_alpha": 0.5, "depth": 8}, "depth_alpha needs base_depth, branches"),
        ({"depth": 8}, "depth without depth_alpha is moot"),
        (
            {"depth_alpha": 0.5, "depth": 8, "base_depth": 2, "branches": ("blk/*",)},
            r"branch pattern 'blk/\*' selects no parameter \(paths: w/kernel\)",
        ),
        ({"depth_alpha": 2.0, "depth": 8, "base_depth": 2, "branches": ("w/*",)}, "depth_alpha must be a number in"),
        ({"depth_alpha": 0.5, "depth": 0, "base_depth": 2, "branches": ("w/*",)}, "depth must be a positive integer"),
        ({"depth_alpha": 0.5, "depth": 8, "base_depth": 2, "branches": "w/*"}, "branches must be a tuple of glob"),
    ],
)
def test_multipliers_depth_rule_bad_input_is_one_line(kwargs, message):
    p = {"w": {"kernel": np.zeros((4, 8))}}
    with pytest.raises(UsageError, match=message):
        parametrization.multipliers(p, p, "mup", width_mult=2.0, optimizer="adam", **kwargs)


# --- the multiplier-free presets against the forms with multipliers (exact identities of the dynamics) ---

D_IN, D_OUT, BASE, BATCH_N = 6, 3, 16, 32


def _mlp_params(n, z):
    """A 2-hidden-layer MLP's parameters from standard-normal draws ``z`` (std 1/sqrt(fan_in); biases 0.1)."""
    shapes = {"layer_000": (D_IN, n), "layer_001": (n, n), "head": (n, D_OUT)}
    return {
        name: {"dense": {"kernel": z[name]["kernel"] / math.sqrt(s[0]), "bias": 0.1 * z[name]["bias"]}}
        for name, s in shapes.items()
    }


def _draws(n, key):
    shapes = {"layer_000": (D_IN, n), "layer_001": (n, n), "head": (n, D_OUT)}
    keys = jax.random.split(key, 6)
    return {
        name: {"kernel": jax.random.normal(keys[2 * i], s), "bias": jax.random.normal(keys[2 * i + 1], (s[1],))}
        for i, (name, s) in enumerate(shapes.items())
    }


def _forward(params, x, mult):
    """``mult[layer]`` multiplies the layer's input (microsoft/mup's MuReadout: ``x * output_mult / width_mult``)."""
    for name in ("layer_000", "layer_001", "head"):
        d = params[name]["dense"]
        x = (x * mult.get(name, 1.0)) @ d["kernel"] + d["bias"][None, :]
        if name != "head":
            x = jnp.tanh(x)
    return x


def _train(params, lr_tree, mult, optimizer, x, y, steps=5, lr=0.05):
    """Full-batch steps of SGD or Adam (epsilon 0: the symmetry is exact only without it); outputs after each."""
    import optax

    def loss(p):
        return jnp.mean((_forward(p, x, mult) - y) ** 2)

    base = optax.scale_by_adam(eps=0.0) if optimizer == "adam" else optax.identity()

    def step(carry, _):
        params, state = carry
        with jax.numpy_dtype_promotion("standard"):  # optax's bias correction: a float power of an int count
            u, state = base.update(jax.grad(loss)(params), state, params)
        params = jax.tree_util.tree_map(lambda p, u, s: p - lr * s * u, params, u, lr_tree)
        return (params, state), _forward(params, x, mult)

    _, outs = jax.jit(lambda p: jax.lax.scan(step, (p, base.init(p)), None, length=steps))(params)
    return np.asarray(outs)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("n", [256])
def test_mup_multiplier_free_equals_microsoft_mups_table8_form(optimizer, n):
    # TP5 Table 8 as microsoft/mup implements it: the readout's input times 1/m (MuReadout), its
    # init at the base width's std; MuSGD: vector-like (one width-sized dim: input kernel, hidden
    # biases, readout kernel) lr x m, hidden lr x 1, fixed (the classifier's bias) lr x 1; MuAdam:
    # hidden lr / m, the rest x 1. initbench's mup: no multiplier, the rules of `multipliers`.
    m = n / BASE
    z = _draws(n, jax.random.key(0))
    kx, ky = jax.random.split(jax.random.key(1))
    x, y = jax.random.normal(kx, (BATCH_N, D_IN)), jax.random.normal(ky, (BATCH_N, D_OUT))

    table8 = _mlp_params(n, z)
    table8["head"]["dense"]["kernel"] = z["head"]["kernel"] / math.sqrt(BASE)  # constant init std
    one = jax.tree_util.tree_map(lambda _: 1.0, table8)
    lr8 = jax.tree_util.tree_map(lambda _: 1.0, table8)
    if optimizer == "sgd":
        for name, leaf in (("layer_000", "kernel"), ("layer_000", "bias"), ("layer_001", "bias"), ("head", "kernel")):
            lr8[name]["dense"][leaf] = m
    else:
        lr8["layer_001"]["dense"]["kernel"] = 1.0 / m
    want = _train(table8, lr8, {"head": 1.0 / m}, optimizer, x, y)

    plain = _mlp_params(n, z)
    shapes = jax.eval_shape(lambda: _mlp_params(2 * n, _draws(2 * n, jax.random.key(0))))
    rules = parametrization.multipliers(plain, shapes, "mup", width_mult=m, optimizer=optimizer)
    ours = jax.tree_util.tree_map(lambda p, s: p * s, plain, rules["init"])
    got = _train(ours, rules["lr"], {}, optimizer, x, y)
    assert rules["lr"]["head"]["dense"]["bias"] == 1.0 and one  # the classifier's bias is "fixed"
    # float32 rounding of a few products per step: relative 1e-5 of the outputs' scale
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))
    assert np.abs(got[-1] - got[0]).max() > 100 * 1e-5 * float(np.abs(want).max())  # it trained


@pytest.mark.parametrize(("optimizer", "c_shift"), [("sgd", 2.0), ("adam", 1.0)])
def test_the_abc_symmetry_leaves_training_unchanged(optimizer, c_shift):
    # Yang & Hu 2021 (TP4) / Everett et al. 2024 Sec. 2: W = n^-a w, w ~ N(0, n^-2b), lr n^-c; the
    # map (a, b, c) -> (a + t, b - t, c - 2t) (SGD) or (c - t) (Adam) gives the same function at
    # every step: the reason the presets can fold multipliers into init and learning rate
    n = 128
    z = _draws(n, jax.random.key(2))
    kx, ky = jax.random.split(jax.random.key(3))
    x, y = jax.random.normal(kx, (BATCH_N, D_IN)), jax.random.normal(ky, (BATCH_N, D_OUT))
    layers = ("layer_000", "layer_001", "head")
    abc = {"layer_000": (-0.5, 0.5, 0.0), "layer_001": (0.0, 0.5, 0.0), "head": (0.5, 0.5, 0.0)}  # TP4's muP
    theta = {"layer_000": 0.5, "layer_001": -0.25, "head": -0.5}

    def arm(shift):
        params, lr, mult = {}, {}, {}
        for name in layers:
            a, b, c = abc[name]
            t = theta[name] if shift else 0.0
            a, b, c = a + t, b - t, c - c_shift * t
            # the multiplier n^-a on the kernel: on the layer's input; the bias keeps its own scale
            params[name] = {"dense": {"kernel": z[name]["kernel"] * n**-b, "bias": 0.1 * z[name]["bias"]}}
            lr[name] = {"dense": {"kernel": n**-c, "bias": 1.0}}
            mult[name] = n**-a
        return _train(params, lr, mult, optimizer, x, y, lr=0.01)

    base, moved = arm(False), arm(True)
    np.testing.assert_allclose(moved, base, rtol=0, atol=1e-5 * float(np.abs(base).max()))
    assert np.abs(base[-1] - base[0]).max() > 100 * 1e-5 * float(np.abs(base).max())  # it trained


def test_everetts_table_in_the_multiplier_free_form_is_the_symmetry_s():
    # the presets are derived from Everett et al. 2024's (a, b, c) rows; by the abc symmetry NTK must
    # equal SP and MFP must equal muP, and full alignment must give the hand-written ntk/mup Adam rules
    def table(name):
        return {w: parametrization.rules(name, width=w, base_width=64, optimizer="adam") for w in (16, 64, 256, 1024)}

    assert table("mup_full_align") == table("mup") == table("mfp") == table("mfp_full_align")
    assert table("sp_full_align") == table("ntk_full_align") == table("ntk")
    assert table("sp_no_align") == table("ntk_no_align") and table("mup_no_align") == table("mfp_no_align")
    assert table("mup_no_align")[256] == {
        "init_scale": {"readout": 0.5},
        "lr_scale": {"hidden": 0.5, "readout": 0.5},  # 1/sqrt(m): no alignment
        "wd_scale": {},
        "eps_scale": {},
    }
    assert table("sp_no_align")[1024]["init_scale"] == {}  # SP's init at every width
    assert parametrization.rules("mfp", width=256, base_width=64, optimizer="sgd") == parametrization.rules(
        "mup", width=256, base_width=64, optimizer="sgd"
    )


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_everetts_adam_presets_refuse_sgd_in_one_line(optimizer):
    with pytest.raises(
        UsageError, match=f"mup_no_align has exponents for Adam-like optimizers only.*not for {optimizer}"
    ):
        parametrization.rules("mup_no_align", width=128, base_width=64, optimizer=optimizer)
    with pytest.raises(UsageError, match="Adam-like optimizers only"):
        run(128, name="sp_full_align", optimizer=optimizer).validate()


# ---------------------------------------------------------------------------- depth (TP6, CompleteP)


def resnet_run(blocks, alpha=0.5, base_depth=1, optimizer="adam", name="sp", scan=False, base_width=8, **model):
    par = {"name": name, "base_width": base_width}
    if alpha is not None:
        par |= {"depth_alpha": alpha, "base_depth": base_depth}
    return RunSpec(
        "p",
        "p",
        ModelSpec("resnet", "relu", None, 8, options(blocks=tuple(blocks), normalization="none", scan=scan, **model)),
        InitSpec("he_normal"),
        DataSpec("digits", 32),
        TrainSpec(optimizer, lr=0.01, steps=2, eval_every=1, weight_decay=0.1 if optimizer == "adamw" else 0.0),
        0,
        parametrization=par,
    )


@pytest.mark.parametrize(
    ("alpha", "optimizer", "depth", "multiplier", "lr"),
    [
        (0.5, "adam", 16, 0.5, 0.5),  # Depth-muP, Adam: lr x L^-1/2 (TP6's gamma = 1/2)
        (0.5, "sgd", 16, 0.5, 1.0),  # Depth-muP, SGD: lr unchanged (gamma = 0)
        (1.0, "adam", 16, 0.25, 1.0),  # CompleteP, Adam: hidden lr constant in depth
        (1.0, "momentum", 16, 0.25, 4.0),  # SGD with branch 1/L: lr x L
        (0.5, "adamw", 64, 0.25, 0.25),
        (0.0, "adam", 16, 1.0, 0.25),  # no branch scaling: every branch's rate / L
        (0.5, "adam", 4, 1.0, 1.0),  # the base depth: the plain run
    ],
)
def test_the_depth_rule_table(alpha, optimizer, depth, multiplier, lr):
    r = parametrization.depth_rules(alpha, depth=depth, base_depth=4, optimizer=optimizer, residual_scale=True)
    assert r["branch_multiplier"] == multiplier
    patterns = (*parametrization.BRANCH_PATTERNS, "block*/branch_scale")
    assert r["lr_scale"] == (dict.fromkeys(patterns, lr) if lr != 1.0 else {})
    decoupled = OPTIMIZERS[optimizer].decay == "decoupled"
    assert r["wd_scale"] == (dict.fromkeys(patterns, 1 / lr) if lr != 1.0 and decoupled else {})


def test_eps_presets_scale_the_branch_epsilon_with_depth_as_completep():
    # CompleteP's eps x (L/L0)^-alpha on the branch parameters, with a +eps preset and an epsilon optimizer only
    patterns = parametrization.BRANCH_PATTERNS
    assert parametrization.depth_rules(1.0, depth=16, base_depth=4, optimizer="adam", eps=True)["eps_scale"] == (
        dict.fromkeys(patterns, 0.25)
    )
    assert parametrization.depth_rules(0.5, depth=16, base_depth=4, optimizer="adamw", eps=True)["eps_scale"] == (
        dict.fromkeys(patterns, 0.5)
    )
    assert parametrization.depth_rules(0.5, depth=4, base_depth=4, optimizer="adam", eps=True)["eps_scale"] == {}
    assert parametrization.depth_rules(0.5, depth=16, base_depth=4, optimizer="adam")["eps_scale"] == {}
    assert parametrization.depth_rules(0.5, depth=16, base_depth=4, optimizer="lion", eps=True)["eps_scale"] == {}
    ruled = resnet_run((4,), alpha=1.0, base_depth=1, name="sp+eps")  # L = 4: branch eps x 1/4
    assert ruled.scales_eps and dict(ruled.scale_rules("eps_scale")) == dict.fromkeys(patterns, 0.25)
    assert not resnet_run((4,), alpha=1.0, base_depth=1, name="sp").scales_eps


@pytest.mark.slow  # 18 gradients of ResNets up to 32 blocks
def test_the_branch_gradients_at_init_against_depth_as_the_readme_states(digits):
    # the README's numbers: slope of log2 RMS branch-kernel gradient (conv_a, conv_b, mean over blocks) against
    # log2 L, L = 2, 8, 32 blocks of 32 channels, no normalization, base depth 2, at initialization, 3 seeds.
    # alpha = 1 follows CompleteP's L^-1 (within 0.35); alpha = 1/2 does not follow L^-1/2 in this model
    # (the unnormalized stream grows with depth: logit std 2.0 at L = 2, 4.6 at L = 32)
    from initbench.benchmarks.groups import param_path

    x, y = jnp.asarray(digits.x_train[:512]), jnp.asarray(digits.y_train[:512])
    depths = (2, 8, 32)

    def rms(alpha, depth, seed):
        base = resnet_run((depth,), alpha=alpha, base_depth=2, name="sp+eps", base_width=32)
        spec = dataclasses.replace(base, seed=seed, model=dataclasses.replace(base.model, width=32))
        net, params = build_model(spec, digits), initial_variables(spec, digits)["params"]
        grads = jax.grad(lambda p: jnp.mean(-jax.nn.log_softmax(net.apply({"params": p}, x))[jnp.arange(512), y]))(
            params
        )
        flat = jax.tree_util.tree_flatten_with_path(grads)[0]
        return np.mean([float(jnp.sqrt(jnp.mean(g**2))) for path, g in flat if "/conv_" in param_path(path)])

    slopes = {
        alpha: float(
            np.mean([np.polyfit(np.log2(depths), np.log2([rms(alpha, d, s) for d in depths]), 1)[0] for s in range(3)])
        )
        for alpha in (0.5, 1.0)
    }
    print(f"branch-gradient slopes against log2 depth: {slopes}")
    assert abs(slopes[1.0] + 1.0) < 0.35, slopes
    assert slopes[0.5] > -0.35, slopes  # not -1/2: the README says so


@pytest.mark.parametrize("scan", [False, True])
def test_the_depth_rule_reaches_the_branch_multiplier_and_exactly_the_branch_parameters_rates(digits, scan):
    spec = resnet_run((1, 3), alpha=0.5, base_depth=1, scan=scan)  # L = 4: multiplier 1/2, Adam rates x 1/2
    assert dict(spec.architecture)["branch_multiplier"] == 0.5
    assert build_model(spec, digits).branch_multiplier == 0.5
    params = initial_variables(spec, digits)["params"]
    lr = member_hyper([spec], params)["lr_scale"]
    branch = 0
    for path, value in jax.tree_util.tree_flatten_with_path(lr)[0]:
        text = "/".join(str(k.key) for k in path)
        inside = text.startswith("block") and ("/conv_a/" in text or "/conv_b/" in text)
        branch += inside
        assert float(value[0]) == (0.5 if inside else 1.0), text  # stem, shortcut, head: untouched
    # two convs' kernels and biases per block: 4 blocks, or 2 blocks and a stack of 2
    assert branch == (12 if scan else 16)


def test_the_depth_rule_at_the_base_depth_is_the_plain_runs_program():
    ruled, plain = resnet_run((2, 2), base_depth=4), resnet_run((2, 2), alpha=None)
    assert ruled.architecture == plain.architecture and ruled.cohort_key == plain.cohort_key
    for field in ("init_scale", "lr_scale", "wd_scale"):
        assert ruled.scale_rules(field) == plain.scale_rules(field)
    assert ruled.run_id != plain.run_id
    assert ruled.identity()["depth_alpha"] == 0.5 and ruled.identity()["base_depth"] == 4
    assert resnet_run((2,), alpha=1).run_id == resnet_run((2,), alpha=1.0).run_id  # one run
    assert resnet_run((2,), alpha=-0.0).run_id == resnet_run((2,), alpha=0).run_id


def test_the_depth_rule_composes_with_mup_and_fixups_branch_scalars():
    spec = resnet_run((4,), base_depth=1, name="mup", optimizer="adamw", residual_scale=1.0, branch_biases=True)
    rules = dict(spec.scale_rules("lr_scale"))
    assert rules["block*/conv_a/*"] == rules["block*/branch_scale"] == rules["block*/bias_1a"] == 0.5
    assert "block*/bias_2b" not in rules  # added after the multiplier
    assert dict(spec.scale_rules("wd_scale"))["block*/conv_b/*"] == 2.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            lambda: RunSpec(
                *list(run(64).__dict__.values())[:-1],
                {"name": "mup", "base_width": 64, "depth_alpha": 0.5, "base_depth": 2},
            ),
            "model mlp has none",
        ),
        (lambda: resnet_run((2,), alpha=1.5), r"depth_alpha must be a number in \[0, 1\]"),
        (lambda: resnet_run((2,), alpha=True), r"depth_alpha must be a number in \[0, 1\]"),
        (lambda: resnet_run((2,), base_depth=None), "needs base_depth, a positive integer"),
        (lambda: resnet_run((2,), base_depth=10**22), "needs base_depth, a positive integer below 2..31"),
        (lambda: resnet_run((2,), name="mup", base_width=10**22), "needs base_width, a positive integer below 2..31"),
        (lambda: RunSpec(*list(run(64).__dict__.values())[:-1], {"name": "sp", "base_width": "abc"}), "needs base_w"),
        (lambda: resnet_run((2,), optimizer="adafactor"), "no learning-rate rule for optimizer 'adafactor'"),
        (lambda: resnet_run((2,), branch_multiplier=0.5), "drop the model's branch_multiplier"),
        (
            lambda: RunSpec(*list(resnet_run((2,)).__dict__.values())[:-1], {"name": "sp", "base_depth": 2}),
            "base_depth needs depth_alpha",
        ),
    ],
)
def test_bad_depth_rules_are_one_line(spec, message):
    with pytest.raises(UsageError, match=message):
        spec().validate()


@pytest.mark.slow  # two ResNet trainings
def test_the_depth_flags_train_and_are_columns_of_the_table(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["run", "--model", "resnet", "--model-args", "blocks=[[1],[4]]", "--width", "4", "--steps", "1"]
    argv += ["--optimizer", "adam", "--parametrization", "sp", "--depth-alpha", "0.5", "--base-depth", "1"]
    assert cli.main([*argv, "--out", str(out), "--eval-every", "1"]) == 0
    rows = pd.read_parquet(out)
    assert set(rows["depth_alpha"]) == {0.5} and set(rows["base_depth"]) == {1} and rows["run_id"].nunique() == 2
    assert cli.main(["run", "--depth-alpha", "0.5", "--out", str(tmp_path / "x")]) == 2
    assert "depth_alpha needs a parametrization" in capsys.readouterr().err


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_depth_alpha_is_an_axis_and_the_base_depth_shares_the_plain_program(capsys):
    argv = ["show", "--model", "resnet", "--model-args", "blocks=[[1],[4]]", "--width", "4", "--optimizer", "adam"]
    assert cli.main([*argv, "--parametrization", "sp", "--depth-alpha", "0.5,1", "--base-depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "runs: 4; cohorts: 3; compiled training programs: 3" in out  # 1 block: multiplier 1 for both alphas
    assert "depth_alpha = 0.5, 1.0" in out
    assert (
        cli.main(
            [*argv, "--parametrization", "sp", "--depth-alpha", "0.5,1", "--base-depth", "1", "--only", "depth_alpha=1"]
        )
        == 0
    )
    assert "runs: 2 of the grid's 4 (--only)" in capsys.readouterr().out  # compared as numbers: 1 is 1.0


# ---------------------------------------------------------------------------- Adam's epsilon (+eps)


def test_eps_presets_scale_the_epsilon_like_the_gradient_and_refuse_optimizers_without_one(digits):
    mup = parametrization.rules("mup+eps", width=256, base_width=64, optimizer="adamw")
    assert mup["eps_scale"] == {"input": 0.25, "hidden": 0.25, "vector": 0.25}  # m^-1; readout, fixed: 1
    assert {k: v for k, v in mup.items() if k != "eps_scale"} == {
        k: v
        for k, v in parametrization.rules("mup", width=256, base_width=64, optimizer="adamw").items()
        if k != "eps_scale"
    }
    assert parametrization.rules("sp+eps", width=256, base_width=64, optimizer="adam")["eps_scale"] == {
        "input": 0.5,
        "hidden": 0.5,
        "vector": 0.5,
    }
    for optimizer in ("lion", "adam_atan2", "sgd"):
        with pytest.raises(UsageError, match=f"mup\\+eps scales Adam's epsilon; optimizer '{optimizer}' adds none"):
            run(256, name="mup+eps", optimizer=optimizer).validate()
    spec = run(256, name="mup+eps", optimizer="adam")
    params = initial_variables(spec, digits)["params"]
    eps = member_hyper([spec], params)["eps_scale"]
    assert float(eps["layer_000"]["dense"]["kernel"][0]) == 0.25 and float(eps["head"]["dense"]["kernel"][0]) == 1.0
    assert "eps_scale" not in member_hyper([run(256, name="mup", optimizer="lion")], params)  # no epsilon: no tree
    m = parametrization.multipliers(params, params, "mup+eps", width_mult=4.0, optimizer="adam")
    assert set(m) == {"init", "lr", "eps"}


@pytest.mark.slow  # 18 gradients of MLPs up to width 1024
def test_the_gradients_scale_with_width_as_the_eps_exponents_say(digits):
    # theory (this module's form): input, hidden and vector gradients ~ m^(r - 1/2), r the readout's
    # init exponent (SP 0, muP -1/2); the readout kernel's ~ m^0. Measured: the slope of log2 RMS
    # gradient against log2 width over widths 64..1024, mean of 3 seeds, within 0.3 (the two
    # presets' predictions differ by 0.5: the bands do not overlap); finite-width slopes drift by 0.1-0.2
    from initbench.benchmarks.groups import param_class, param_path

    x, y = jnp.asarray(digits.x_train[:512]), jnp.asarray(digits.y_train[:512])
    widths = (64, 256, 1024)

    def rms(spec):
        net = build_model(spec, digits)
        params = initial_variables(spec, digits)["params"]
        grads = jax.grad(lambda p: jnp.mean(-jax.nn.log_softmax(net.apply({"params": p}, x))[jnp.arange(512), y]))(
            params
        )
        out = {}
        for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
            text = param_path(path)
            cls = param_class(text, g.ndim)
            if cls == "bias" and not text.startswith("head"):
                out.setdefault("vector", []).append(float(jnp.sqrt(jnp.mean(g**2))))
            elif cls in ("input", "hidden", "readout"):
                out.setdefault(cls, []).append(float(jnp.sqrt(jnp.mean(g**2))))
        return {k: float(np.mean(v)) for k, v in out.items()}

    for name in ("sp", "mup"):
        table = {(w, s): rms(run(w, name=name, optimizer="adam", seed=s)) for w in widths for s in range(3)}
        exponents = parametrization.rules(name + "+eps", width=128, base_width=64, optimizer="adam")["eps_scale"]
        for cls in ("input", "hidden", "vector", "readout"):
            theory = math.log2(exponents.get(cls, 1.0))  # m = 2: the exponent itself
            slopes = [
                np.polyfit(np.log2(widths), np.log2([table[(w, s)][cls] for w in widths]), 1)[0] for s in range(3)
            ]
            assert abs(float(np.mean(slopes)) - theory) < 0.3, (name, cls, slopes, theory)


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_eps_scale_on_the_command_line_is_member_data_and_refused_without_an_epsilon(tmp_path, capsys):
    argv = ["show", "--optimizer", "adam", "--lr", "0.01,0.001", "--parametrization", "mup+eps,mup"]
    assert cli.main([*argv, "--base-width", "32", "--width", "64", "--eps-scale", "readout=0.5"]) == 0
    out = capsys.readouterr().out
    assert "runs: 4; cohorts: 1; compiled training programs: 1" in out  # rates and epsilons are data
    assert cli.main(["run", "--optimizer", "lion", "--eps-scale", "hidden=0.5", "--out", str(tmp_path / "x")]) == 2
    assert "eps_scale multiplies an epsilon added to sqrt(v); optimizer lion has none" in capsys.readouterr().err


def test_only_runs_that_scale_the_epsilon_carry_its_step_so_other_adam_programs_are_unchanged(digits):
    # the epsilon step is its own program: a plain Adam run's program has no eps tree, as before the feature
    plain, ruled = run(64, name="mup", optimizer="adam"), run(256, name="mup+eps", optimizer="adam")
    assert not plain.scales_eps and ruled.scales_eps and not run(64, name="mup+eps", optimizer="adam").scales_eps
    params = initial_variables(plain, digits)["params"]
    assert "eps_scale" not in member_hyper([plain], params)
    eps = dataclasses.replace(plain, train=dataclasses.replace(plain.train, eps_scale=(("hidden", 0.5),)))
    assert eps.scales_eps and eps.cohort_key != plain.cohort_key


MUP_TABLE = {  # TP5 Table 3's muP with Adam, written out: equal to the preset
    "input": {"sgd": 1.0},
    "vector": {"sgd": 1.0},
    "hidden": {"adam": -1.0},
    "readout": {"init": -0.5, "sgd": -1.0, "adam": -1.0},
}


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_a_user_table_equal_to_a_preset_gives_the_presets_rules(optimizer):
    name = parametrization.table_name(MUP_TABLE)
    assert parametrization.exponents(name) == {
        cls: {**row, **dict.fromkeys(("init", "sgd", "adam"), 0.0), **MUP_TABLE.get(cls, {})}
        for cls, row in parametrization.PRESETS["mup"].items()
    }
    for width in (64, 256, 1024):
        assert parametrization.rules(name, width=width, base_width=64, optimizer=optimizer) == parametrization.rules(
            "mup", width=width, base_width=64, optimizer=optimizer
        )
    assert run(256, name=name, optimizer=optimizer).scale_rules("lr_scale") == run(
        256, name="mup", optimizer=optimizer
    ).scale_rules("lr_scale")


def test_a_user_table_in_toml_is_one_grid_value_and_one_run_identity():
    from initbench.benchmarks import experiments

    def specs(value):
        doc = {
            "seeds": 1,
            "parametrization": value,
            "base_width": 8,
            "model": {"width": [8, 16], "depth": 1},
            "train": {"optimizer": "adam", "lr": 0.01, "steps": 1},
        }
        return experiments.resolve(experiments.from_doc(doc, "t")).specs

    a = specs({"readout": {"init": -0.5, "adam": -1}, "hidden": {"adam": -1.0}})
    b = specs("table:hidden.adam=-1.0/readout.adam=-1.0/readout.init=-0.5")  # the same table, by its name
    c = specs("table:readout.init=-.5/readout.adam=-1/hidden.adam=-1")  # spelled otherwise
    assert [s.run_id for s in a] == [s.run_id for s in b] == [s.run_id for s in c]
    assert dict(a[1].scale_rules("lr_scale")) == {"hidden": 0.5, "readout": 0.5}
    assert dict(a[1].scale_rules("init_scale")) == {"readout": 2**-0.5}
    grid = specs([{"readout": {"adam": -1}}, "mup"])  # an axis of a table and a preset
    assert {dict(s.parametrization)["name"] for s in grid} == {"table:readout.adam=-1.0", "mup"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"output": {"init": -1}}, "unknown parametrization table class 'output'"),
        ({"readout": {"lr": -1}}, "unknown parametrization table readout exponent 'lr'"),
        ({"readout": {"init": "half"}}, r"readout.init must be a number in \[-8, 8\]"),
        ({"readout": {"init": 1e9}}, r"readout.init must be a number in \[-8, 8\]"),
        ({"readout": -1}, "readout must map exponents"),
        ("table:readout.init", "is not CLASS.KEY=VALUE"),
        ("table:readout.init=x", "is not CLASS.KEY=VALUE"),
        ("mupp", "unknown parametrization 'mupp'"),
    ],
)
def test_a_bad_user_table_is_one_line(value, message):
    from initbench.benchmarks import experiments

    doc = {"seeds": 1, "parametrization": value, "base_width": 8, "model": {"width": 16, "depth": 1}}
    with pytest.raises(UsageError, match=message) as err:
        experiments.resolve(experiments.from_doc(doc, "t"))
    assert "\n" not in str(err.value)


def test_a_table_with_eps_needs_an_optimizer_with_an_epsilon():
    name = parametrization.table_name({"hidden": {"eps": -1.0}})
    assert parametrization.scales_eps(name)
    assert parametrization.rules(name, width=256, base_width=64, optimizer="adam")["eps_scale"] == {"hidden": 0.25}
    with pytest.raises(UsageError, match="scales Adam's epsilon"):
        parametrization.rules(name, width=256, base_width=64, optimizer="sgd")


def test_a_table_key_given_twice_and_multipliers_beyond_float32_are_one_line():
    with pytest.raises(UsageError, match=r"readout.init is given twice"):
        parametrization.exponents("table:readout.init=-0.5/readout.init=-1")
    for name, width in (("table:hidden.init=-8", 2**31 - 1), ("table:hidden.sgd=8", 2**31 - 1)):
        with pytest.raises(UsageError, match="outside float32's range"):
            parametrization.rules(name, width=width, base_width=1, optimizer="sgd")


def test_the_checks_init_rules_need_no_optimizer():
    # the init part of a +eps preset or an eps table does not depend on the optimizer
    assert parametrization.init_rules("mup+eps", 8, width=32) == {"readout": 0.5}
    assert parametrization.init_rules("table:readout.eps=-1.0/readout.init=-0.5", 8, width=32) == {"readout": 0.5}
    assert parametrization.init_rules("sp", None, width=32) == {}
