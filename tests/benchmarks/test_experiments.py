"""Experiments as data: TOML files and command-line grids -> RunSpecs -> rows, and every bad input."""

import dataclasses
import hashlib
import itertools
import json
import textwrap

import numpy as np
import pytest

from initbench.benchmarks import cli, experiments
from initbench.benchmarks.results import ResultStore
from initbench.benchmarks.spec import NUMERICS_VERSION, DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options
from initbench.inits.errors import UsageError

SWEEP = """
name = "sweep"
description = "lr x init x depth"
seeds = 2
init = ["he_normal", {name = "normal", stddev = 0.01}, "lecun_normal"]

[model]
family = "mlp"
depth = [1, 2]
width = 8
activation = "tanh"

[data]
name = "gaussian"
batch_size = 16
dim = 6
n_train = 64
n_test = 32

[train]
lr = [0.01, 0.1]
steps = 4
eval_every = 2
"""


def write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


SMALL = "[model]\ndepth = 3\nwidth = 4\n[train]\nsteps = 2\neval_every = 1\n"


def resolve(tmp_path, text, **kw):
    return experiments.resolve(experiments.load(write(tmp_path, text)), **kw)


def test_a_sweep_is_exactly_the_product(tmp_path):
    plan = resolve(tmp_path, SWEEP)
    got = [(s.model.depth, s.init.label, s.train.lr, s.seed) for s in plan.full]
    inits = ["he_normal", "normal(stddev=0.01)", "lecun_normal"]
    assert sorted(got) == sorted(itertools.product([1, 2], inits, [0.01, 0.1], [0, 1]))
    assert len(got) == len(set(got)) == 24 and len({s.run_id for s in plan.full}) == 24
    assert {k: v for k, v in plan.varying.items() if len(v) > 1}.keys() == {
        "model",
        "depth",
        "init",
        "init_args",
        "lr",
        "seed",
    }


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_file_round_trip_to_rows_with_every_swept_field_as_a_column(tmp_path):
    path = write(tmp_path, SWEEP.replace('"lecun_normal"]', '"lecun_normal"]\nbias = {name = "normal", stddev = 0.1}'))
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--only", "depth=1", "--seeds", "1", "--out", str(out), "--quiet"]) == 0
    df = ResultStore(out).read()
    plan = experiments.resolve(experiments.load(path), overrides={"seeds": 1}, only={"depth": ["1"]})
    assert set(df["run_id"]) == {s.run_id for s in plan.specs} and df["run_id"].nunique() == 6
    runs = df.drop_duplicates("run_id").set_index("run_id")
    for spec in plan.specs:
        row = runs.loc[spec.run_id]
        assert (row["suite"], row["depth"], row["lr"], row["init"], row["init_args"]) == (
            "sweep",
            1,
            spec.train.lr,
            spec.init.name,
            spec.init.args_label,
        )
        assert (row["bias_init"], row["bias_args"], row["dataset"]) == ("normal", "stddev=0.1", "gaussian")
        assert row["dataset_options"] == '{"dim": 6, "n_test": 32, "n_train": 64}'
    assert sorted(df["step"].unique()) == [0, 2, 4]


def test_the_command_line_and_the_equivalent_file_give_the_same_runs(tmp_path):
    text = """
        name = "adhoc"
        benchmark = "train"
        seeds = 3
        init = ["he_normal", "lecun_normal"]
        bias = {name = "normal", stddev = 0.2236}
        [model]
        family = "mlp"
        depth = 30
        width = 256
        activation = "relu"
        [data]
        name = "gaussian"
        batch_size = 128
        dim = 784
        n_train = 4096
        [train]
        optimizer = "momentum"
        lr = [0.01, 0.1]
        momentum = 0.5
        weight_decay = 0.0001
        schedule = "cosine"
        steps = 2000
        eval_every = 100
    """
    argv = [
        "--model",
        "mlp",
        "--depth",
        "30",
        "--width",
        "256",
        "--activation",
        "relu",
        "--init",
        "he_normal,lecun_normal",
        "--bias-init",
        "normal(stddev=0.2236)",
        "--lr",
        "0.01,0.1",
        "--batch-size",
        "128",
        "--optimizer",
        "momentum",
        "--momentum",
        "0.5",
        "--weight-decay",
        "0.0001",
        "--schedule",
        "cosine",
        "--steps",
        "2000",
        "--eval-every",
        "100",
        "--seeds",
        "3",
        "--dataset",
        "gaussian",
        "--dataset-args",
        "dim=784,n_train=4096",
    ]
    args = cli.build_parser().parse_args(["show", *argv])
    exp, scale, overrides, only = cli.grid_from_args(args)
    from_cli = experiments.resolve(exp, scale, overrides, only)
    from_file = resolve(tmp_path, text)
    assert [s.run_id for s in from_cli.full] == [s.run_id for s in from_file.full]
    assert len(from_file.full) == 12
    # the generic --set reaches the same fields
    args = cli.build_parser().parse_args(
        ["show", *argv[:-4], "--set", "data.name=gaussian", "--set", "data.dim=784", "--set", "data.n_train=4096"]
    )
    assert [s.run_id for s in experiments.resolve(*cli.grid_from_args(args)).full] == [s.run_id for s in from_file.full]


def test_packaged_quick_is_the_main_job(tmp_path):
    plan = experiments.resolve(experiments.load("quick"), "smoke")
    assert len(plan.full) == 24  # 2 models x 2 activations x 3 inits x 2 seeds
    he = RunSpec(
        "quick",
        "init_x_activation",
        ModelSpec("mlp", "relu", 2, 32),
        InitSpec("he_normal"),
        DataSpec("digits", 64),
        TrainSpec("sgd", 0.05, 20, 10),
        1,
    )
    assert he.run_id in {s.run_id for s in plan.full}
    cpu = experiments.resolve(experiments.load("quick"), "cpu")
    torch = [s for s in cpu.full if s.init.name == "torch_default"]
    assert torch and all(s.init.bias == "torch_default" for s in torch)  # an init's own bias
    assert all(s.init.bias == "zeros" for s in cpu.full if s.init.name != "torch_default")
    assert len(cpu.full) == 96 and len(experiments.resolve(experiments.load("quick"), "paper").full) == 720


@pytest.mark.slow  # a 30-layer training run: ~5 s
def test_he2015_depth30_runs_at_smoke_scale(tmp_path):
    out = tmp_path / "he"
    assert cli.main(["run", "he2015-depth30", "--scale", "smoke", "--out", str(out), "--quiet"]) == 0
    df = ResultStore(out).read()
    assert set(df["init"]) == {"he_normal", "lecun_normal"} and set(df["depth"]) == {30}
    assert set(df["suite"]) == {"he2015-depth30"} and set(df["benchmark"]) == {"convergence"}
    cpu = experiments.resolve(experiments.load("he2015-depth30"))
    assert cpu.scale == "cpu" and len(cpu.full) == 6
    t = cpu.full[0].train
    assert (t.optimizer, t.lr, t.steps, cpu.full[0].data.batch_size, cpu.full[0].model.width) == (
        "sgd",
        0.01,
        2000,
        128,
        256,
    )


def test_init_argument_axes_zips_and_scales(tmp_path):
    plan = resolve(
        tmp_path,
        """
        init = {name = "variance_scaling", scale = [1.0, 1.76, 4.0], mode = "fan_in", distribution = "normal"}
        bias = [{name = "normal", stddev = [0.1, 0.2]}, "zeros"]
        [model]
        family = "mlp"
        activation = "tanh"
        [[zip]]
        model.depth = [10, 20]
        model.width = [64, 32]
        [scale.small]
        model = {activation = "relu"}
        [scale.small.train]
        steps = 7
    """,
        scale="small",
    )
    scales = (1.0, 1.76, 4.0)
    assert {s.init.args for s in plan.full} == {options(scale=v, mode="fan_in", distribution="normal") for v in scales}
    assert {(s.init.bias, s.init.bias_args) for s in plan.full} == {
        ("normal", options(stddev=0.1)),
        ("normal", options(stddev=0.2)),
        ("zeros", ()),
    }
    assert {(s.model.depth, s.model.width) for s in plan.full} == {(10, 64), (20, 32)}  # zipped, not a product
    assert len(plan.full) == 3 * 3 * 2
    assert {s.model.activation for s in plan.full} == {"relu"} and {s.train.steps for s in plan.full} == {7}


def test_array_of_model_tables_and_model_options(tmp_path):
    plan = resolve(
        tmp_path,
        """
        [[model]]
        family = "mlp"
        depth = 2
        width = 8
        use_bias = [true, false]
        normalization = "layernorm"
        [[model]]
        family = "resnet"
        blocks = [[1, 1, 1], [2, 2, 2]]
        width = 8
        normalization = "none"
        [[model]]
        family = "plain_cnn"
        preset = "he22_cpu"
    """,
    )
    labels = [s.model.label for s in plan.full]
    assert len(labels) == 5
    assert "resnet(width=8, blocks=(2, 2, 2), normalization='none')" in labels
    assert "mlp(depth=2, width=8, normalization='layernorm', use_bias=False)" in labels


def test_command_line_overrides_a_file(tmp_path):
    path = write(tmp_path, SWEEP)
    args = cli.build_parser().parse_args(
        ["show", str(path), "--depth", "5", "--lr", "0.3", "--seeds", "1", "--dataset", "digits"]
    )
    plan = experiments.resolve(*cli.grid_from_args(args))
    assert {(s.model.depth, s.train.lr, s.seed, s.data.name, s.data.extra) for s in plan.full} == {
        (5, 0.3, 0, "digits", ())
    }
    assert len(plan.full) == 3  # the inits axis stays


def test_show_prints_the_grid(tmp_path, capsys):
    assert cli.main(["show", str(write(tmp_path, SWEEP))]) == 0
    out = capsys.readouterr().out
    assert "runs: 24; cohorts: 2; compiled training programs: 2" in out  # the lr sweep shares its program
    assert "sgd lr 0.01..0.1 (2 values), 4 steps: 12 runs" in out
    assert "varies: model = mlp(depth=1, width=8), mlp(depth=2, width=8)" in out
    assert "lr = 0.01, 0.1" in out and "work: 96 run-steps, 1,536 training examples" in out


BAD = [
    ("[model]\nfamily = 'mlp'\ndepht = 3\n", "exp.toml: model mlp: unknown field 'depht'", "Did you mean 'depth'?"),
    ("[train]\nlr = 'fast'\n", "exp.toml: train.lr must be a finite number, got 'fast'", ""),
    ("[train]\nlr = []\n", "exp.toml: train.lr is an empty axis", ""),
    ("init = {name = 'normal', sd = 0.1}\n", "exp.toml: normal() got unexpected argument(s) sd", "stddev"),
    ("init = 'constant'\n", "exp.toml: constant() needs argument(s) value, e.g. constant(value=0.1)", ""),
    ("init = 'he_nromal'\n", "exp.toml: unknown initializer 'he_nromal'", "Did you mean 'he_normal'?"),
    ("[model]\nfamily = 'lenet5'\nblocks = [1]\n", "exp.toml: model lenet5: unknown field 'blocks'", "pooling"),
    (
        "[data]\nname = 'gaussian'\ndims = 4\n",
        "exp.toml: dataset gaussian: unknown field 'dims'",
        "Did you mean 'dim'?",
    ),
    ("[[zip]]\nmodel.depth = [1, 2]\nmodel.width = [8]\n", "exp.toml: [[zip]] lists differ in length", ""),
    ("seeds = 0\n", "exp.toml: seeds must be a positive count", ""),
    ("seeds = [0, -1]\n", "exp.toml: seeds must be integers in [0, 2**32), got -1", ""),
    ("seeds = [3, 3]\n", "exp.toml: seeds lists 3 twice: [3, 3]", ""),
    ("sedes = 3\n", "exp.toml: unknown field 'sedes'", "Did you mean 'seeds'?"),
    ("[model\n", "exp.toml: not valid TOML", ""),
    ("[train]\noptimizer = 'adamm'\n", "exp.toml: unknown optimizer 'adamm'", "Did you mean 'adam'?"),
    ("[train]\noptimizer = 'adam'\noptimizer_args = {beta2 = 0.9}\n", "optimizer adam takes no argument 'beta2'", "b2"),
    ("[train]\noptimizer = 'adam'\noptimizer_args = {b2 = 1.0}\n", "optimizer_args.b2 of adam must be", "< 1"),
    ("[train]\noptimizer = 'momentum'\noptimizer_args = {nesterov = 1}\n", "nesterov of momentum must be true", ""),
    (
        "[train]\noptimizer = 'adam'\nmomentum = 0.5\n",
        "momentum is an argument of optimizer momentum; adam has none",
        "b1",
    ),
    ("[train]\nwd_scale = {bias = -1}\nweight_decay = 0.1\n", "train.wd_scale.bias must be a finite number >= 0", ""),
    ("[train]\nclip_norm = -1.0\n", "clip_norm must be a finite number >= 0", ""),
    ("[train]\nsteps = 10\nwarmup_steps = 10\n", "warmup_steps must be an integer in [0, steps = 10), got 10", ""),
    ("[train]\nlabel_smoothing = 1.0\n", "label_smoothing must be in [0, 1), got 1.0", ""),
    ("[train]\ndivergence_factor = 1\n", "divergence_factor must be a number > 1", "inf"),
    ("[train]\ndivergence_factor = 'big'\n", "train.divergence_factor must be a number > 1", ""),
    ("[train]\nlr_scale = {bias = 0}\n", "exp.toml: train.lr_scale.bias must be a finite number > 0, got 0", ""),
    ("[train]\nlr_scale = 0.1\n", "exp.toml: train.lr_scale takes a table like {scalar = 0.1", ""),
    ("[train]\nlr_scale = {bias = true}\n", "exp.toml: train.lr_scale.bias must be a finite number > 0, got True", ""),
    ("init = {name = 'normal', stddev = {a = 1}}\n", "exp.toml: init.stddev takes a value or a list", ""),
    ("init_scale = {readout = -1}\n", "exp.toml: init_scale.readout must be a finite number >= 0, got -1", ""),
    ("init_scale = 2\n", "exp.toml: init_scale takes a table like {scalar = 0.1", ""),
    ("init = 'lsuv'\ninit_scale = {readout = 0}\n", "lsuv is a model-level scheme that sets its own scales", ""),
    ("[data]\nbatch_size = [16, 0]\n", "exp.toml: batch_size must be a positive integer, got 0", ""),
    ("[data]\neval_examples = 0\n", "exp.toml: eval_examples must be a positive integer, got 0", ""),
    ("name = 'a/b'\n", "exp.toml: experiment name 'a/b' must be letters", ""),
    ("[train]\nlr = inf\n", "exp.toml: train.lr must be a finite number, got inf", ""),
    (
        "[train]\noptimizer = 'momentum'\nmomentum = -1\n",
        "exp.toml: momentum must be in [0, 1) (in float32), got -1.0",
        "",
    ),
    ("[model]\nuse_bias = 'False'\n", "exp.toml: model.use_bias must be true or false, got 'False'", ""),
    ("[model]\nfamily = 'lenet5'\npooling = 'bogus'\n", "unknown value of model.pooling 'bogus'; valid: avg, max", ""),
    (
        "[model]\ndepth = [1, 2]\nwidth = 8\n[[zip]]\nmodel.depth = [5, 6]\nmodel.width = [4, 4]\n",
        "model.depth is set both in [model] and in a [[zip]]",
        "",
    ),
    ("[scale.smoke]\nseed = 1\n", "exp.toml: [scale.smoke]: unknown field 'seed'", "Did you mean 'seeds'?"),
    ("[data]\nbatch_size = 100000\n", "batch_size 100000 exceeds the 1437 training examples of digits", ""),
    ("init = {name = 'he_normal', in_axis = 5}\n", "mlp(depth=3, width=4) with he_normal(in_axis=5)", ""),
]


@pytest.mark.parametrize(("text", "message", "hint"), BAD)
def test_bad_files_fail_in_one_line_before_any_work(text, message, hint, tmp_path, capsys):
    # on a small valid base (a later table of the same name replaces it), so only the bad key can fail
    base = "" if ("[model]" in text or "[train]" in text or "[model" in text) else SMALL
    path = write(tmp_path, text + ("\n" + base if base and not text.startswith("[") else "") if base else text)
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("initbench: error: ")
    assert message in err.replace(str(tmp_path) + "/", ""), err
    assert hint in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "train.lrr=0.1"], "command line: unknown field 'train.lrr'"),
        (["--init", "normal", "--init-args", "sd=1"], "normal() got unexpected argument(s) sd"),
        (["--init-args", "stddev=1"], "--init-args needs --init"),
        (
            ["--model", "resnet", "--model-args", "blocks=[1,1,1],norm=none"],
            "command line: unknown field 'model.norm'; valid: model.activation",
        ),
        (["--model-args", "norm=none"], "Did you mean 'model.normalization'?"),
        (
            ["--dataset", "digits", "--dataset-args", "dim=4"],
            "dataset digits: unknown field 'dim'; valid: batch_size, eval_examples, name",
        ),
        (
            ["--model", "mlp", "--depth", "2", "--width", "4", "--dataset", "digits", "--model-args", "stages=[[8,1]]"],
            "unknown field 'stages'",
        ),
        (["--model", "lenet5", "--dataset", "gaussian"], "lenet5 needs (height, width, channels) inputs"),
        (["--seeds", "2,3"], "--seeds is a count"),
        (["--init", "normal(name=zeros)"], "initializer 'normal(name=zeros)': 'name' is not an argument"),
        (["--init", "normal(stddev=true)"], "normal: stddev must be a number, got the bool True"),
        (["--init", "constant"], "constant() needs argument(s) value"),
        (["--model-args", "depth=3", "--depth", "1"], "--model-args depth and --depth both set model.depth"),
        (["--lr", "0.1", "--set", "train.lr=0.2"], "--set train.lr and --lr both set train.lr"),
        (["--init", "he_normal", "--set", "init=zeros"], "--set init and --init both set init"),
        (["--steps", "99999999999999999999"], "steps must be at most 2147483647 (the int32 step counter)"),
        (["--optimizer", "adam", "--momentum", "0.5"], "momentum is an argument of optimizer momentum; adam has"),
        (["--lr-scale", "scalar=0.1"], "lr_scale selector 'scalar' selects no parameter of any model of the grid"),
        (["--optimizer", "adam", "--optimizer-args", "b2=[0.9,0.95]"], "train.optimizer_args.b2 takes one value"),
        (["--lr-scale", "bias=0.5", "--lr-scale", "input=0.5"], "--lr-scale given 2 times; put every entry in one"),
        (["--weight-decay", "1e300"], "weight_decay must fit in float32 (|x| <= 3.4e+38), got 1e+300"),
        (["--optimizer", "momentum", "--momentum", "0.99999999999"], "momentum must be in [0, 1) (in float32)"),
        (["--optimizer", "adafactor", "--optimizer-args", "clipping_threshold=0"], "must be a finite number > 0"),
        (["--wd-scale", "nosuch=0", "--weight-decay", "0.1"], "wd_scale selector 'nosuch' selects no parameter of"),
        (["--wd-scale", "bias=-1"], "train.wd_scale.bias must be a finite number >= 0, got -1"),
        (["--init-scale", "scalar=0"], "init_scale selector 'scalar' selects no parameter of any model of the grid"),
        (["--init-scale", "nohead/*=0"], "init_scale selector 'nohead/*' selects no parameter of mlp"),
        (["--init-scale", "input=2", "--init-scale", "bias=1"], "--init-scale given 2 times; put every entry in one"),
        (["--model-args", "use_bias=false", "--model-args", "depth=2"], "--model-args given 2 times; put every"),
        (["--dataset-args", "dim=8", "--dataset-args", "dim=9"], "--dataset-args given 2 times; put every"),
        (["--init", "normal", "--init-args", "stddev=1", "--init-args", "mean=0"], "--init-args given 2 times"),
        (["--init-scale", "input=2", "--set", "init_scale={input=3}"], "both set init_scale"),
        (["--name", "_under"], "experiment name '_under' must be letters"),
        (["--steps", "2", "--steps", "3"], "argument --steps: given more than once; give it once"),
        (["--lr", "0.1,0.1"], "command line: train.lr lists 0.1 twice: [0.1, 0.1]"),  # was merged into one run
        (["--init", "he_normal,he_normal"], "command line: init lists he_normal twice"),
        (["--init", "normal(stddev=1),normal(stddev=1.0)"], "command line: init lists normal(stddev=1.0) twice"),
        (["--checkpoint-every", "-1"], "argument --checkpoint-every: expected seconds >= 0 or off, got '-1'"),
        (["--checkpoint-every", "nan"], "argument --checkpoint-every: expected seconds >= 0 or off, got 'nan'"),
        (["--init", "he_normal", "--init", "lecun_normal"], "argument --init: given more than once"),
        (["nope.toml"], "cannot read experiment file 'nope.toml'"),
        (["--scale", "cpu"], "command line: defines no scales"),
    ],
)
def test_bad_command_lines_fail_in_one_line(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_more_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    for argv, message in [
        (["run", str(latin)], "not a UTF-8 text file"),
        (["run", "--init", "normal(0.1)"], "initializer 'normal(0.1)': malformed argument '0.1'"),
        (["run", "--set", "zip=5"], "zip takes a list of tables"),
        (["run", "--init", "normal(stddev=0.1)", "--init-args", "stddev=0.2"], "--init-args both set stddev"),
        (["run", "--init-args", "stddev=0.1,stddev=0.2", "--init", "normal"], "argument 'stddev' given twice"),
        (["run", "--out", ""], "expected a directory path, got an empty string"),
        (["launch", "-n", "2", "--", "run", "--init", "nope"], "unknown initializer 'nope'"),
        (["launch", "-n", "2", "--grace", "nan", "--", "run"], "--grace must be a finite number"),
        (["launch", "-n", "2", "--", "run", "--lr", "0.1", "--lr", "0.2"], "argument --lr: given more than once"),
        (["launch", "-n", "1", "--devices-per-process", "100000000", "--", "run"], "--devices-per-process must be in"),
        (["launch", "-n", "100000", "--", "run"], "launch starts at most 256 local processes, got 100000"),
        (["run", "--join-timeout", "2147483648"], "argument --join-timeout: expected at most 2147483647 seconds"),
        (["run", "--join-timeout", "5", "--single-process"], "--join-timeout applies to a multi-process job; this"),
        (["run", "--heartbeat-timeout", "99999999999999999999"], "argument --heartbeat-timeout: expected at most"),
        (["check", "--depth", "3", "--depth", "4"], "argument --depth: given more than once"),
    ]:
        argv = [*argv, "--out", str(out)] if argv[0] == "run" and "--out" not in argv else argv
        if argv[0] == "launch":
            argv = [*argv, "--out", str(out)]
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (argv, err)
        assert not out.exists()


def test_overrides_reach_the_entries_that_take_them(tmp_path):
    args = cli.build_parser().parse_args(["show", "quick", "--depth", "1", "--only", "lr=0.050"])
    plan = experiments.resolve(*cli.grid_from_args(args))
    assert {(s.model.family, s.model.depth) for s in plan.full} == {("mlp", 1), ("lenet5", None)}
    assert len(plan.specs) == len(plan.full)  # --only compares numbers: 0.050 is 0.05
    args = cli.build_parser().parse_args(
        ["show", "--set", "model=[{family='mlp', depth=1, width=4}, {family='lenet5'}]", "--seeds", "1"]
    )
    assert {s.model.family for s in experiments.resolve(*cli.grid_from_args(args)).full} == {"mlp", "lenet5"}
    # a plain CNN's stages written as they are: one value, not an axis of pairs
    args = cli.build_parser().parse_args(["show", "--model", "plain_cnn", "--model-args", "stages=[[8,2],[16,2]]"])
    (spec,) = experiments.resolve(*cli.grid_from_args(args)).full
    assert dict(spec.model.extra)["stages"] == ((8, 2), (16, 2))


def test_equal_values_are_one_run(tmp_path):
    a = resolve(tmp_path, "init = {name = 'normal', stddev = 1}\n[model]\nuse_bias = true\n")
    b = resolve(tmp_path, "init = {name = 'normal', stddev = 1.0}\n")
    assert [s.run_id for s in a.full] == [s.run_id for s in b.full]  # 1 is 1.0; use_bias = true is the default
    path = write(tmp_path, "[data]\nname = 'gaussian'\ndim = 8\n")
    args = cli.build_parser().parse_args(["show", str(path), "--dataset", "gaussian"])  # restating keeps dim
    assert dict(experiments.resolve(*cli.grid_from_args(args)).full[0].data.extra) == {"dim": 8}


def test_values_from_the_command_line_are_toml():
    assert experiments.parse_value("0.1") == 0.1 and experiments.parse_value("[1, 2]") == [1, 2]
    assert experiments.parse_value("relu") == "relu" and experiments.parse_value("true") is True
    assert experiments.parse_value('{name = "normal", stddev = 0.1}') == {"name": "normal", "stddev": 0.1}
    assert experiments.nest({"train.lr": 1, "seeds": 2}) == {"train": {"lr": 1}, "seeds": 2}
    with pytest.raises(UsageError, match="is zipped with"):
        exp = experiments.from_doc({"zip": [{"model": {"depth": [1, 2], "width": [3, 4]}}]}, "x.toml")
        experiments.resolve(exp, overrides={"model.depth": 5})


def test_sparse_inputs_have_the_stated_distribution():
    from initbench.benchmarks.data import load

    d = load("sparse", dim=300, density=0.2, n_train=2000, n_test=100)
    x = d.x_train
    assert x.shape == (2000, 300) and x.min() == 0.0 and x.max() <= 1.0
    n = x.size
    # fraction of non-zeros: binomial, within 5 standard errors
    assert abs((x > 0).mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / n)
    # E[x] = density / 2, Var[x] = density / 3 - density^2 / 4
    var = 0.2 / 3 - 0.04 / 4
    assert abs(x.mean() - 0.1) < 5 * np.sqrt(var / n)
    assert len(np.unique(d.y_train)) == 10
    with pytest.raises(UsageError, match="density must be in"):
        load("sparse", density=0.0)


def test_a_table_valued_field_is_replaced_whole_not_merged():
    # lr_scale = {} on top of {bias = 0.1, scalar = 0.1} removes the rules (a value, not a section)
    base = {"train": {"lr_scale": {"bias": 0.1, "scalar": 0.1}, "lr": 0.1}, "model": {"depth": 2}}
    merged = experiments.merge(base, {"train": {"lr_scale": {}}, "model": {"width": 8}})
    assert merged == {"train": {"lr_scale": {}, "lr": 0.1}, "model": {"depth": 2, "width": 8}}
    merged = experiments.merge(base, {"train": {"lr_scale": {"readout": 0.5}}})
    assert merged["train"]["lr_scale"] == {"readout": 0.5}
    merged = experiments.merge({"init_scale": {"input": 2.0, "readout": 0.0}}, {"init_scale": {"bias": 0.5}})
    assert merged == {"init_scale": {"bias": 0.5}}


def test_init_scale_is_an_axis_in_the_identity_and_a_run_without_it_keeps_its_run_id(tmp_path):
    # a list of tables is an axis; multipliers of 1 drop out (the same run as no rule); the run
    # without multipliers hashes as before the field existed
    specs = resolve(tmp_path, "init_scale = [{}, {readout = 0}, {readout = 1}, {input = 2, hidden = 1}]\n" + SMALL).full
    assert [s.init.scale for s in specs] == [(), (("readout", 0.0),), (("input", 2.0),)]
    assert [s.identity()["init_scale"] for s in specs] == ["{}", '{"readout": 0.0}', '{"input": 2.0}']
    plain = specs[0]
    payload = dataclasses.asdict(plain)
    del payload["init"]["scale"], payload["parametrization"], payload["train"]["eps_scale"]
    del payload["init"]["plugin"], payload["data"]["plugin"], payload["model"]["plugin"]  # empty for built-ins
    old = json.dumps({"spec": payload, "numerics": NUMERICS_VERSION}, sort_keys=True, default=str)
    assert plain.run_id == hashlib.sha256(old.encode()).hexdigest()[:16]
    assert len({s.run_id for s in specs}) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr-scale", "scalar=0.1"], "lr_scale selector 'scalar' selects no parameter of any model of the grid"),
        (["--wd-scale", "nosuch=0", "--weight-decay", "0.1"], "wd_scale selector 'nosuch' selects no parameter of"),
        (["--model", "lenet5", "--dataset", "gaussian"], "lenet5 needs (height, width, channels) inputs"),
    ],
)
def test_show_checks_what_run_checks(argv, message, capsys):
    assert cli.main(["show", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
