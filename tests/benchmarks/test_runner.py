"""End to end: CLI -> parquet -> report; cohort equalities; resume; divergence; bad input."""

import dataclasses
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from initbench.benchmarks import cli, data
from initbench.benchmarks.report import mean_ci
from initbench.benchmarks.results import COLUMNS, ResultStore
from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options
from initbench.benchmarks.train import (
    _stack,
    build_model,
    clear_caches,
    initial_stack,
    initial_variables,
    run_keys,
    train_cohort,
)
from initbench.inits.errors import UsageError

RUN = ["run", "quick", "--init", "he_normal,zeros", "--activation", "relu", "--quiet"]
KEYS = ["run_id", "step", "split", "metric"]


def sorted_rows(df):
    return df.sort_values(KEYS).reset_index(drop=True)[[*KEYS, "value", "status"]]


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    assert cli.main([*RUN, "--out", str(out)]) == 0
    return out


def test_run_writes_tidy_parquet_with_provenance(smoke_dir):
    store = ResultStore(smoke_dir)
    files = store.files()
    assert len(files) == 2  # one cohort per model (mlp, lenet5), one chunk each
    df = store.read()
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    # 2 models x 2 inits x 2 seeds; evals at steps 0, 10, 20
    assert df["run_id"].nunique() == 8
    assert sorted(df["step"].unique()) == [0, 10, 20]
    assert set(df["metric"]) == {"loss", "accuracy", "grad_norm"}
    assert not df.duplicated(KEYS).any()
    # initial loss of zero init is exactly ln(10): all logits equal
    zero = df[(df["init"] == "zeros") & (df["step"] == 0) & (df["metric"] == "loss")]
    np.testing.assert_allclose(zero["value"], np.log(10), rtol=1e-6)
    meta = store.provenance_of(files[0])
    for key in (
        "initbench",
        "jax",
        "jaxlib",
        "flax",
        "backend",
        "device_kind",
        "device_count",
        "git_commit",
        "started_utc",
        "written_utc",
    ):
        assert key in meta
    assert meta["chunk"]["members"] == 4
    # --init overrides the grid: its cohorts have 2 inits x 2 seeds, width ceil(4 / 4 devices) = 1
    assert (meta["chunk"]["members_per_device"], meta["chunk"]["devices"]) == (1, 4)


def test_report_writes_markdown_and_figures(smoke_dir, tmp_path):
    assert cli.main(["report", str(smoke_dir), "--out", str(tmp_path), "--target-accuracy", "0.2"]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "| relu | he_normal | 0/2 |" in text
    assert "## init_x_activation: lenet5 on digits" in text and "mlp(depth=2, width=32)" in text
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == 4
    zero = summary[summary["init"] == "zeros"].iloc[0]
    assert zero["initial_train_loss"] == pytest.approx(np.log(10), rel=1e-6)
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 4  # per model: one curve figure (relu) and one heatmap
    for png in pngs:
        assert f"]({png.name})" in text  # linked from the report
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.slow  # report and export of 8 runs: ~2.5 s
def test_report_exports_tensorboard_event_files_that_read_back_to_the_results(smoke_dir, tmp_path):
    from initbench.benchmarks.tensorboard import read_scalars

    tb = tmp_path / "tb"
    assert cli.main(["report", str(smoke_dir), "--out", str(tmp_path / "r"), "--tensorboard", str(tb)]) == 0
    df = ResultStore(smoke_dir).read()
    index = pd.read_csv(tb / "runs.csv")
    assert len(index) == df["run_id"].nunique() == 8 and index["folder"].is_unique
    folders = zip(index["folder"], index["init"], index["seed"], strict=True)
    assert all(f"init={i}" in f and f"seed={s}" in f for f, i, s in folders)
    for run_id, folder in zip(index["run_id"], index["folder"], strict=True):
        got = read_scalars(tb / folder)
        rows = df[(df["run_id"] == run_id) & np.isfinite(df["value"])]
        want = {
            f"{split}/{metric}": sorted(
                (int(st), float(np.float32(v))) for st, v in zip(g["step"], g["value"], strict=True)
            )
            for (split, metric), g in rows[rows["layer"].isna()].groupby(["split", "metric"])
        }
        assert {tag: sorted(points) for tag, points in got.items()} == want  # every value, bitwise in float32
    assert not list(tb.glob(".*"))  # no temporary folder left
    again = ["report", str(smoke_dir), "--out", str(tmp_path / "r"), "--tensorboard", str(tb)]
    assert cli.main(again) == 0  # a second export replaces each run's folder, not adds a second event file
    assert all(len(list((tb / f).iterdir())) == 1 for f in index["folder"])


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("{results}/tb", "is inside the results directory"),
        ("{tmp}/file.txt", "is a file, not a directory"),
        ("/proc/initbench_tb", "is not writable"),
    ],
)
def test_a_bad_tensorboard_folder_is_one_line_before_any_work(smoke_dir, tmp_path, where, message, capsys):
    (tmp_path / "file.txt").write_text("x")
    where = where.format(results=smoke_dir, tmp=tmp_path)
    assert cli.main(["report", str(smoke_dir), "--out", str(tmp_path / "r"), "--tensorboard", where]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_tensorboard_without_its_package_is_one_line(smoke_dir, tmp_path, capsys, monkeypatch):
    import builtins

    real = builtins.__import__

    def without(name, *args, **kwargs):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    assert cli.main(["report", str(smoke_dir), "--out", str(tmp_path / "r"), "--tensorboard", str(tmp_path)]) == 2
    assert "pip install 'initbench[tensorboard]'" in capsys.readouterr().err


def test_same_command_twice_gives_identical_values(smoke_dir, tmp_path):
    assert cli.main([*RUN, "--out", str(tmp_path)]) == 0
    pd.testing.assert_frame_equal(sorted_rows(ResultStore(tmp_path).read()), sorted_rows(ResultStore(smoke_dir).read()))


def test_rerun_skips_completed_runs(smoke_dir, capsys):
    before = ResultStore(smoke_dir).files()
    assert cli.main([*RUN, "--out", str(smoke_dir)]) == 0
    assert "0 runs trained in 0 cohorts, 8 already complete" in capsys.readouterr().out
    assert ResultStore(smoke_dir).files() == before


def test_interrupted_run_resumes_to_the_same_table(smoke_dir, tmp_path, monkeypatch):
    real_write = ResultStore.write
    calls = []

    def interrupt_second_write(self, rows, name, meta):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_write(self, rows, name, meta)

    monkeypatch.setattr(ResultStore, "write", interrupt_second_write)
    assert cli.main([*RUN, "--out", str(tmp_path)]) == 130
    assert len(ResultStore(tmp_path).files()) == 1
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    monkeypatch.setattr(ResultStore, "write", real_write)
    assert cli.main([*RUN, "--out", str(tmp_path)]) == 0
    resumed = ResultStore(tmp_path).read()
    assert not resumed.duplicated(KEYS).any()
    pd.testing.assert_frame_equal(sorted_rows(resumed), sorted_rows(ResultStore(smoke_dir).read()))


def spec(init, seed, *, steps=30, lr=0.05, depth=2, width=32, batch=32):
    return RunSpec(
        "test",
        "cohort",
        ModelSpec("mlp", "relu", depth, width),
        init,
        DataSpec("digits", batch),
        TrainSpec("sgd", lr=lr, steps=steps, eval_every=10),
        seed,
    )


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def run_rows(specs, dataset, **kw):
    return pd.concat([rows for rows, _ in train_cohort(specs, dataset, **kw)])


def test_cohort_member_matches_the_run_alone(digits):
    he, glorot = InitSpec("he_normal"), InitSpec("glorot_uniform")
    cohort = [spec(he, 0), spec(glorot, 1), spec(he, 2), spec(glorot, 0)]
    # initial weights: the cohort stacks exactly what an independent init of each run gives
    stacked = _stack([initial_variables(s, digits)["params"] for s in cohort])
    for i, s in enumerate(cohort):
        alone = jax.jit(build_model(s, digits).init)(run_keys(s.seed)[0], digits.x_train[:1])["params"]
        for a, b in zip(jax.tree_util.tree_leaves(alone), jax.tree_util.tree_leaves(stacked), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b[i]))
    together = sorted_rows(run_rows(cohort, digits))
    for s in cohort[1:3]:
        alone = sorted_rows(run_rows([s], digits))
        mine = together[together["run_id"] == s.run_id].reset_index(drop=True)
        np.testing.assert_allclose(mine["value"], alone["value"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("init", [InitSpec("he_normal"), InitSpec("lsuv")])
def test_initial_variables_asked_inside_a_trace_first_leave_no_tracer_in_the_caches(init, digits):
    # eval_shape first: the cached init program and device data must not hold that trace's values
    s = spec(init, 0, depth=1, width=8)
    clear_caches()
    shapes = jax.eval_shape(lambda: initial_variables(s, digits))
    concrete = initial_variables(s, digits)  # raised UnexpectedTracerError before
    assert jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), concrete) == jax.tree_util.tree_map(
        lambda a: (a.shape, a.dtype), shapes
    )


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_sharded_and_chunked_cohorts_match_one_device(digits):
    assert len(jax.devices()) == 4  # tests/conftest.py forces 4 CPU devices
    cohort = [spec(InitSpec("he_normal"), s, steps=20) for s in range(5)]
    one = sorted_rows(run_rows(cohort, digits, devices=jax.devices()[:1]))
    sharded = sorted_rows(run_rows(cohort, digits))  # 5 members padded to 8 over 4 devices
    np.testing.assert_allclose(sharded["value"], one["value"], rtol=1e-5, atol=1e-6)
    chunks = list(train_cohort(cohort, digits, devices=jax.devices()[:1], max_members=2))
    assert [info["members"] for _, info in chunks] == [2, 2, 1]
    assert {info["chunk_size"] for _, info in chunks} == {2}  # the last chunk is padded to the width
    chunked = sorted_rows(pd.concat([r for r, _ in chunks]))
    np.testing.assert_allclose(chunked["value"], one["value"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_a_diverging_member_is_recorded_and_the_others_finish(digits):
    blowup = InitSpec("normal", options(stddev=100.0))
    cohort = [spec(blowup, 0, lr=0.5, depth=4), spec(InitSpec("he_normal"), 0, lr=0.5, depth=4)]
    rows = run_rows(cohort, digits)
    bad = rows[rows["run_id"] == cohort[0].run_id]
    good = rows[rows["run_id"] == cohort[1].run_id]
    assert set(bad["status"]) == {"diverged"}
    step = bad[bad["metric"] == "diverged_at_step"]["value"].iloc[0]
    assert 0 <= step < 30
    assert set(good["status"]) == {"ok"}
    final = good[(good["step"] == 30) & (good["metric"] == "loss")]["value"]
    assert np.isfinite(final).all()


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_tfds_adapter_on_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=96):
        ds = data.load("mnist")
        assert ds.x_train.shape == (96, 28, 28, 1) and ds.num_classes == 10
        np.testing.assert_allclose(ds.x_train.mean(), 0.0, atol=1e-5)
        code = cli.main([*RUN, "--dataset", "mnist", "--steps", "4", "--out", str(tmp_path)])
    assert code == 0
    df = ResultStore(tmp_path).read()
    assert set(df["dataset"]) == {"mnist"} and df["step"].max() == 4


def test_run_id_is_stable_and_sensitive():
    s = spec(InitSpec("he_normal"), 0)
    assert s.run_id == spec(InitSpec("he_normal"), 0).run_id
    assert len({s.run_id, dataclasses.replace(s, seed=1).run_id, spec(InitSpec("he_normal"), 0, lr=0.1).run_id}) == 3
    assert s.run_id == "362f2e71f042074b"  # changes only with the spec or NUMERICS_VERSION


def test_run_id_of_a_run_with_every_later_field_is_stable():
    """Multipliers, Adam's epsilon rules and a parametrization: the run_id the uncached conversion gave."""
    init = InitSpec("he_normal", bias="normal", bias_args=options(stddev=0.1), scale=(("input", 2.0),))
    train = TrainSpec("adam", lr=1e-3, lr_scale=(("scalar", 0.1),), eps_scale=(("hidden", 0.5),))
    par = (("base_width", 16), ("name", "mup"))
    s = RunSpec("t", "x", ModelSpec("mlp", "tanh", 3, 32), init, DataSpec("digits", 32), train, 3, par)
    assert s.run_id == "1448d9e4063ade22"
    assert s.run_id != dataclasses.replace(s, train=dataclasses.replace(train, eps_scale=())).run_id


def test_run_ids_of_equal_specs_with_different_payloads_differ_whichever_comes_first():
    """stddev=1 and stddev=1.0 are equal specs (==) with different payloads: the cache must not merge them."""
    a = spec(InitSpec("normal", args=options(stddev=1)), 0)
    b = spec(InitSpec("normal", args=options(stddev=1.0)), 0)
    assert a == b
    first = a.run_id, b.run_id
    assert first[0] != first[1] and (b.run_id, a.run_id) == first[::-1]


def test_a_sub_spec_that_cannot_be_hashed_still_has_an_identity():
    from initbench.benchmarks.spec import _part_identity

    @dataclasses.dataclass(frozen=True)
    class Part:
        values: list
        plugin: str = ""

    assert _part_identity(Part([1, 2]), ("plugin",)) == {"values": [1, 2]}
    assert _part_identity(Part([1, 2], "m:f"), ("plugin",)) == {"values": [1, 2], "plugin": "m:f"}


def test_mean_ci_matches_student_t():
    mean, half, n = mean_ci([1.0, 2.0, 3.0, float("nan")])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.302652729911275 / np.sqrt(3))


def write_old_schema(path):
    # a directory of the first results schema: parquet files and no manifest
    table = pa.Table.from_pandas(pd.DataFrame({c: [] for c in COLUMNS}))
    table = table.replace_schema_metadata({b"initbench": json.dumps({"schema_version": 1}).encode()})
    pq.write_table(table, path / "old.parquet")


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (
            ["run", "quikc"],
            "unknown experiment 'quikc'; packaged experiments: dauphin2019-rescue, glorot2010-table1, "
            "he2015-depth30, mishkin2016, quick, zhang2019-depth, zhao2021, zhu2021-rescue",
        ),
        (["run", "quick", "--scale", "huge"], "experiment quick: unknown scale 'huge'; valid: cpu, paper, smoke"),
        (["run", "quick", "--init", "he_nromal"], "experiment quick: unknown initializer 'he_nromal'"),
        (["run", "quick", "--activation", "gleu"], "experiment quick: unknown activation 'gleu'"),
        (["run", "quick", "--dataset", "mnsit"], "experiment quick: unknown dataset 'mnsit'; valid: cifar10"),
        (["run", "quick", "--init", "a,,b"], "argument --init: malformed list 'a,,b'"),
        (["run", "quick", "--seeds", "0"], "argument --seeds: expected positive integers, got '0'"),
        (["run", "quick", "--steps", "-3"], "argument --steps: expected positive integers, got '-3'"),
        (["run", "quick", "--only", "init=lecun_normal"], "--only init: unknown value 'lecun_normal'"),
        (["run", "quick", "--devices", "9"], "--devices must be between 1 and the 4 available, got 9"),
        (["run", "quick", "--dataset", "cifar10", "--data-dir", "{tmp}/tfds"], "dataset 'cifar10' is not prepared"),
        (["report", "{tmp}/nothing"], "no result files in"),
        (["report", "{tmp}", "--target-accuracy", "2"], "--target-accuracy must be in (0, 1], got 2.0"),
        (["run", "quick", "--out", "{tmp}/file.txt/out"], "is not writable"),
        (
            ["run", "quick", "--out", "{tmp}/old"],
            "written by an older initbench (results schema 1, no _initbench.json)",
        ),
        (["run", "quick", "--json", "{tmp}/missing/summary.json"], "argument --json: cannot write"),
        (["run", "quick", "--json", "{tmp}"], "is a directory; give a file path"),
        # tried, not judged from permission bits (root passes os.access on /proc)
        (["run", "quick", "--out", "/proc/initbench_never"], "results directory '/proc/initbench_never' is not"),
        (["run", "quick", "--json", "/proc/initbench.json"], "cannot write '/proc/initbench.json': directory"),
        (["run", "quick", "--out", "{tmp}/r", "--json", "{tmp}/r"], "is the results directory (--out); give another"),
        (["report", "{tmp}", "--out", "/proc/initbench_report"], "--out '/proc/initbench_report' is not writable"),
        (  # 1.3e10 weights with Adam: ~240 GiB for one run, refused before the lock (was an XLA traceback)
            ["run", "--depth", "4", "--width", "65536", "--optimizer", "adam"],
            "mlp(depth=4, width=65536): one run needs about",
        ),
        (["report", "{tmp}/old"], "written by an older initbench"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, match, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "old").mkdir()
    write_old_schema(tmp_path / "old")
    before = sorted(p for p in tmp_path.rglob("*"))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = cli.main(argv) if argv[0] != "run" or "--out" in argv else cli.main([*argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert match in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p for p in tmp_path.rglob("*")) == before


@pytest.mark.slow  # a fresh interpreter: ~3 s
def test_console_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "initbench.benchmarks.cli",
            "run",
            "quick",
            "--init",
            "nope",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("initbench: error: experiment quick: unknown initializer 'nope'")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # a few seconds: in the slow run, which CI makes
@pytest.mark.slow  # ~20 s: every contender compiles
def test_throughput_benchmark_runs_every_contender(tmp_path):
    from initbench.benchmarks.perf import throughput

    out = tmp_path / "rows.csv"
    assert (
        throughput.main(
            [
                "--workload",
                "small",
                "--members",
                "2",
                "--steps",
                "5",
                "--repeats",
                "1",
                "--sequential-members",
                "1",
                "--no-torch",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = pd.read_csv(out).set_index("contender")
    assert list(rows.index) == ["initbench", "handwritten", "hw_evaluating", "jax_loop"]
    assert (rows["run_steps_per_s"] > 0).all() and rows.loc["handwritten", "ratio_to_handwritten"] == 1.0
    assert rows.loc["hw_evaluating", "ratio_to_evaluating"] == 1.0
    assert (rows["gflops"] > 0).all() and (rows["matmul_limit_gflops"] > 0).all()
    assert throughput.main(["--members", "0"]) == 2


@pytest.mark.parametrize(("start", "length"), [(0, 7), (5, 3), (3, 12), (11, 1)])
def test_batch_indices_follow_the_per_epoch_permutation(start, length):
    from initbench.benchmarks.train import batch_indices

    key, n_train, batch = jax.random.key(7), 23, 5  # 4 steps per epoch, 3 examples dropped per epoch
    steps = jax.numpy.arange(start, start + length, dtype=jax.numpy.int32)
    got = np.asarray(batch_indices(key, steps, n_train=n_train, batch_size=batch))
    for row, t in zip(got, range(start, start + length), strict=True):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, t // 4), n_train))
        np.testing.assert_array_equal(row, order[(t % 4) * batch : (t % 4 + 1) * batch])


@pytest.mark.parametrize("schedule", ["cosine", "warmup_cosine"])
def test_schedules_run_under_strict_promotion_with_optax_rates(schedule):
    import optax

    from initbench.benchmarks.train import make_optimizer

    train = TrainSpec("sgd", lr=0.1, steps=100, schedule=schedule)
    tx = make_optimizer(train)
    params = {"w": jnp.ones((3,))}
    state = tx.init(params)
    reference = (
        optax.cosine_decay_schedule(0.1, 100)
        if schedule == "cosine"
        else optax.warmup_cosine_decay_schedule(0.0, 0.1, 5, 100)
    )
    # the trainer's form: the peak as a traced per-member array
    traced = jax.jit(lambda lr, g, st: make_optimizer(train, {**train.hyper(), "lr": lr}).update(g, st, params))
    traced_state = state
    for step in range(3):  # one SGD update per step: -lr(step) x gradient 1
        updates, state = tx.update({"w": jnp.ones((3,))}, state, params)
        from_array, traced_state = traced(jnp.float32(0.1), {"w": jnp.ones((3,))}, traced_state)
        expected = reference(jnp.asarray(step, jnp.float32))
        # peak x the schedule's shape at peak 1: optax's rate within float32 rounding
        np.testing.assert_allclose(np.asarray(updates["w"]), np.full(3, -expected, np.float32), rtol=3e-7)
        np.testing.assert_array_equal(np.asarray(from_array["w"]), np.asarray(updates["w"]))


def sweep_spec(
    seed, *, lr, momentum=None, weight_decay=0.0, optimizer="momentum", schedule="constant", steps=20, **knobs
):
    train = TrainSpec(
        optimizer,
        lr=lr,
        steps=steps,
        eval_every=10,
        schedule=schedule,
        momentum=momentum,
        weight_decay=weight_decay,
        **knobs,
    )
    model, data_spec = ModelSpec("mlp", "tanh", 2, 16), DataSpec("digits", 32)
    return RunSpec("test", "sweep", model, InitSpec("he_normal"), data_spec, train, seed)


def test_a_hyper_parameter_sweep_is_one_cohort_and_each_member_equals_its_run_alone(digits):
    from initbench.benchmarks.runner import cohorts

    grid = [
        sweep_spec(seed, lr=lr, momentum=m, weight_decay=wd)
        for lr in (0.01, 0.1, 0.4)
        for m in (0.5, 0.9)
        for wd in (1e-4, 1e-2)
        for seed in (0,)
    ]
    assert len(cohorts(grid)) == 1 and len({s.run_id for s in grid}) == 12
    # weight decay on or off is structure, its value is data; so are the optimizer and schedule
    assert len(cohorts([*grid, sweep_spec(0, lr=0.1)])) == 2
    assert len(cohorts([*grid, sweep_spec(0, lr=0.1, weight_decay=1e-3, schedule="cosine")])) == 2
    one = jax.devices()[:1]
    together = sorted_rows(run_rows(grid, digits, devices=one, width=12))
    for s in (grid[0], grid[5], grid[11]):  # the same width: bitwise, whatever rates share the chunk
        alone = sorted_rows(run_rows([s], digits, devices=one, width=12))
        mine = together[together["run_id"] == s.run_id].reset_index(drop=True)
        np.testing.assert_array_equal(mine["value"].to_numpy(), alone["value"].to_numpy())
    finals = together[(together["step"] == 20) & (together["split"] == "train") & (together["metric"] == "loss")]
    assert finals["value"].nunique() == 12  # every member trained with its own rates


@pytest.mark.parametrize(
    ("optimizer", "schedule", "weight_decay", "knobs"),
    [
        ("momentum", "constant", 1e-3, {}),
        pytest.param(
            "adamw",
            "constant",
            1e-2,
            {"clip_norm": 1.0, "label_smoothing": 0.1, "warmup_steps": 5},
            marks=pytest.mark.slow,
        ),
        pytest.param("adam", "warmup_cosine", 0.0, {}, marks=pytest.mark.slow),
        pytest.param("sgd", "cosine", 1e-2, {}, marks=pytest.mark.slow),
        pytest.param(
            "momentum", "cosine", 1e-2, {"optimizer_args": {"nesterov": True}, "clip_norm": 0.5}, marks=pytest.mark.slow
        ),
        pytest.param("lion", "constant", 1e-1, {"wd_scale": {"bias": 0.0}}, marks=pytest.mark.slow),
    ],
)
def test_traced_rates_train_as_an_independent_loop_with_constant_rates(
    digits, optimizer, schedule, weight_decay, knobs
):
    # the trainer's program reads each member's rates as arrays; an independent optax loop with
    # the same rates as Python constants (and the same weights and batches) ends at the same loss
    import optax

    from initbench.benchmarks.train import batch_indices, make_optimizer

    lrs = (0.003, 0.03) if optimizer in ("adam", "adamw") else (3e-4, 1e-3) if optimizer == "lion" else (0.05, 0.2)
    specs = [
        sweep_spec(3, lr=lr, optimizer=optimizer, schedule=schedule, weight_decay=weight_decay, **knobs) for lr in lrs
    ]
    smoothing = knobs.get("label_smoothing", 0.0)
    rows = run_rows(specs, digits, devices=jax.devices()[:1])
    x, y = jnp.asarray(digits.x_train), jnp.asarray(digits.y_train)
    for s in specs:
        model = build_model(s, digits)
        params = initial_variables(s, digits)["params"]
        tx = make_optimizer(s.train, params=params)  # constants
        opt_state = tx.init(params)

        def loss(p, xb, yb, model=model):
            return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, xb), yb).mean()

        def smoothed(p, xb, yb, model=model):  # (1 - a) one-hot + a / K, written out
            logp = jax.nn.log_softmax(model.apply({"params": p}, xb))
            targets = (1 - smoothing) * jax.nn.one_hot(yb, 10) + smoothing / 10
            return -jnp.mean(jnp.sum(targets * logp, axis=-1))

        @jax.jit  # the rates are Python constants of this program, not data
        def step(params, opt_state, xb, yb, tx=tx, objective=smoothed if smoothing else loss):
            updates, opt_state = tx.update(jax.grad(objective)(params, xb, yb), opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        idx = batch_indices(run_keys(s.seed)[1], jnp.arange(20, dtype=jnp.int32), n_train=len(y), batch_size=32)
        for t in range(20):
            params, opt_state = step(params, opt_state, x[idx[t]], y[idx[t]])
        n = len(digits.y_test)  # the trainer's train loss reads as many training examples as the test set has
        expected = float(loss(params, x[:n], y[:n]))
        mine = rows[(rows["run_id"] == s.run_id) & (rows["step"] == 20) & (rows["split"] == "train")]
        got = float(mine[mine["metric"] == "loss"]["value"].iloc[0])
        assert got == pytest.approx(expected, rel=1e-5), (s.train, got, expected)


def test_trained_variables_on_request_reproduce_the_last_evaluation(digits):
    cohort = [spec(InitSpec("he_normal"), s, steps=20) for s in range(3)]
    chunks = list(train_cohort(cohort, digits, devices=jax.devices()[:1], max_members=2, keep_variables=True))
    assert len(chunks) == 2  # variables come back from every chunk
    rows = pd.concat([r for r, _ in chunks])
    variables = {k: v for _, info in chunks for k, v in info["variables"].items()}
    assert set(variables) == {s.run_id for s in cohort}
    x, y = jnp.asarray(digits.x_test), jnp.asarray(digits.y_test)
    for s in cohort:
        model = build_model(s, digits)
        start = initial_variables(s, digits)["params"]
        assert not np.array_equal(
            variables[s.run_id]["params"]["head"]["dense"]["kernel"], start["head"]["dense"]["kernel"]
        )
        logits = model.apply(variables[s.run_id], x)
        loss = float(jnp.mean(optax_ce(logits, y)))
        final = rows[(rows["run_id"] == s.run_id) & (rows["step"] == 20) & (rows["split"] == "test")]
        assert loss == pytest.approx(final[final["metric"] == "loss"]["value"].iloc[0], rel=1e-6)
    plain = list(train_cohort(cohort[:1], digits, devices=jax.devices()[:1]))
    assert "variables" not in plain[0][1]


def optax_ce(logits, labels):
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def test_a_finite_but_absurd_loss_is_a_divergence(digits):
    # tanh at lr 30 plateaus at a finite training loss ~250x its step-0 value: diverged under the
    # default bound (100x), a finished run with divergence_factor = inf (only non-finite losses);
    # the factor is per-member data, so both share one program, and a sane member is untouched
    from initbench.benchmarks.runner import cohorts

    def make(lr, factor):
        train = TrainSpec("sgd", lr=lr, steps=30, eval_every=10, divergence_factor=factor)
        return RunSpec(
            "t", "div", ModelSpec("mlp", "tanh", 2, 32), InitSpec("he_normal"), DataSpec("digits", 64), train, 0
        )

    absurd, unbounded, sane = make(30.0, 100.0), make(30.0, math.inf), make(0.1, 100.0)
    assert len(cohorts([absurd, unbounded, sane])) == 1
    rows = run_rows([absurd, unbounded, sane], digits, devices=jax.devices()[:1])

    def of(s):
        return rows[rows["run_id"] == s.run_id]

    loss = of(unbounded)[(of(unbounded)["split"] == "train") & (of(unbounded)["metric"] == "loss")]
    start, later = loss["value"].iloc[0], loss["value"].iloc[1:]
    assert (of(unbounded)["status"] == "ok").all() and np.isfinite(later).all() and (later > 100 * start).all()
    assert (of(absurd)["status"] == "diverged").all()
    step = of(absurd)[of(absurd)["metric"] == "diverged_at_step"]["value"].iloc[0]
    assert step == 10  # the first evaluation after step 0, which already reads > 100x
    after = of(absurd)[(of(absurd)["step"] > step) & (of(absurd)["metric"] == "loss")]
    assert after["value"].isna().all()
    assert (of(sane)["status"] == "ok").all()


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_out_of_memory_is_one_line_naming_the_width_that_fits(digits, monkeypatch, tmp_path, capsys):
    # a device that runs out of memory: one line naming how many members per device fit (measured
    # from the compiled segment's memory analysis), never a silently smaller chunk (other numbers)
    from jax.sharding import Mesh

    from initbench.benchmarks import train

    cohort = [spec(InitSpec("he_normal"), s, steps=20) for s in range(8)]
    first = cohort[0]
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("members",))
    program = train._make_program(build_model(first, digits), first.train, 32, len(digits.y_train), "vmap", mesh)
    one, two, four = (train.segment_bytes(first, digits, program, w, mesh) for w in (1, 2, 4))
    member = two - one
    assert member > 0 and abs((four - one) - 3 * member) <= 0.05 * four  # linear in the members
    fixed = one - member
    limit = int((fixed + 3.5 * member) / 0.9) + 1  # room for 3 members (with the allocator's 10% margin)

    def exhausted(*args, **kwargs):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 123456 bytes")

    monkeypatch.setattr(train, "_train_chunk", exhausted)
    monkeypatch.setattr(train, "_device_limit", lambda device: limit)
    with pytest.raises(train.OutOfMemory) as err:
        list(train_cohort(cohort, digits, devices=jax.devices()[:1], width=8, member_map="vmap"))
    message = str(err.value)
    assert "\n" not in message and message.startswith("out of memory: 8 members per device of mlp(depth=2, width=32)")
    assert message.endswith("so 3 per device fit: rerun with --max-members 3")
    monkeypatch.setattr(train, "_device_limit", lambda device: fixed)  # not even one member
    with pytest.raises(train.OutOfMemory, match="reduce batch_size or the model"):
        list(train_cohort(cohort, digits, devices=jax.devices()[:1], width=8, member_map="vmap"))
    # through the CLI: one line, exit 2, nothing written
    out = tmp_path / "out"
    code = cli.main(["run", "--depth", "2", "--width", "8", "--steps", "10", "--eval-every", "10", "--out", str(out)])
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("initbench: error")]
    assert len(errors) == 1 and "out of memory: 1 member per device" in errors[0]
    assert errors[0].endswith("reduce batch_size or the model")
    assert not list(out.glob("*.parquet"))


def _leaves_equal(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb, strict=True))


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_one_vmapped_init_call_per_group_gives_each_member_its_own_weights(digits):
    from initbench.benchmarks.train import batched_init, initial_stack

    inits = [InitSpec("he_normal"), InitSpec("orthogonal"), InitSpec("lsuv"), InitSpec("normal", (("stddev", 0.3),))]
    specs = [spec(init, seed) for seed in (4, 0, 9) for init in inits]
    assert [batched_init(s) for s in specs[:4]] == [True, False, False, True]  # QR and schemes: one call each
    stacked = initial_stack(specs, digits)
    for i, s in enumerate(specs):
        alone = initial_variables(s, digits)
        assert _leaves_equal(jax.tree_util.tree_map(lambda a, i=i: a[i], stacked), alone), s.init.label
    # a multi-process job's slots: only those are initialized, the others are zeros
    part = initial_stack(specs, digits, {1, 2, 7})
    for i in range(len(specs)):
        got = jax.tree_util.tree_map(lambda a, i=i: a[i], part)
        want = initial_variables(specs[i], digits) if i in (1, 2, 7) else jax.tree_util.tree_map(jnp.zeros_like, got)
        assert _leaves_equal(got, want)


@pytest.mark.slow
def test_every_batched_registry_initializer_is_bitwise_its_member_alone(digits):
    # the claim batched_init rests on, over the whole registry (an MLP's dense kernels and a CNN's
    # convolution kernels): a vmapped call over several seeds gives each seed its own call's bits
    from initbench.benchmarks.train import batched_init, initial_stack
    from initbench.inits.registry import INITS

    checked = 0
    for i, name in enumerate(INITS):
        # every initializer on dense kernels; every third also on LeNet-5's convolution kernels
        # (one compile per init and model: all of them would take minutes)
        for model in (ModelSpec("mlp", "tanh", 2, 16), ModelSpec("lenet5", "relu"))[: 2 if i % 3 == 0 else 1]:
            s0 = RunSpec("t", "b", model, InitSpec(name), DataSpec("digits", 32), TrainSpec(), 0)
            try:
                s0.validate()
                initial_variables(s0, digits)
            except ValueError:  # an init that does not fit this layer (identity on a non-square kernel)
                continue
            if not batched_init(s0):
                continue
            specs = [dataclasses.replace(s0, seed=k) for k in (0, 5, 11)]
            stacked = initial_stack(specs, digits)
            for i, s in enumerate(specs):
                assert _leaves_equal(
                    jax.tree_util.tree_map(lambda a, i=i: a[i], stacked), initial_variables(s, digits)
                ), (
                    name,
                    model.family,
                )
            checked += 1
    assert checked >= 30


@pytest.mark.slow  # ~6 s
def test_segments_that_start_mid_epoch_and_cross_epochs_follow_batch_indices(digits):
    # 1437 examples / batch 64: 22 steps per epoch; segments of 15 steps start mid-epoch and cross
    # epochs 1 and 2 inside the loop: the trainer's lazily drawn order is batch_indices' order
    import optax

    from initbench.benchmarks.train import batch_indices, make_optimizer

    train = TrainSpec("sgd", lr=0.05, steps=50, eval_every=15)
    s = RunSpec("t", "epochs", ModelSpec("mlp", "tanh", 1, 16), InitSpec("he_normal"), DataSpec("digits", 64), train, 5)
    rows = run_rows([s], digits, devices=jax.devices()[:1])
    model, params = build_model(s, digits), initial_variables(s, digits)["params"]
    tx = make_optimizer(s.train)
    state = tx.init(params)
    x, y = jnp.asarray(digits.x_train), jnp.asarray(digits.y_train)

    def loss(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, xb), yb).mean()

    idx = batch_indices(run_keys(s.seed)[1], jnp.arange(50, dtype=jnp.int32), n_train=len(y), batch_size=64)
    assert len({int(i) for i in idx[:22].ravel()}) == 22 * 64  # an epoch visits distinct examples
    for t in range(50):
        updates, state = tx.update(jax.grad(loss)(params, x[idx[t]], y[idx[t]]), state, params)
        params = optax.apply_updates(params, updates)
    n = len(digits.y_test)
    final = rows[(rows["step"] == 50) & (rows["split"] == "train") & (rows["metric"] == "loss")]["value"].iloc[0]
    assert final == pytest.approx(float(loss(params, x[:n], y[:n])), rel=1e-5)


@pytest.mark.slow
def test_the_sweep_benchmark_compiles_one_program_and_each_rate_alone_is_bitwise_its_member(tmp_path, capsys):
    from initbench.benchmarks.perf import sweep

    out = tmp_path / "sweep.json"
    assert sweep.main(["--lrs", "3", "--seeds", "2", "--steps", "20", "--repeats", "1", "--json", str(out)]) == 0
    numbers = json.loads(out.read_text())
    assert numbers["programs"] == {"sweep": 1, "seeds": 1}
    assert numbers["bitwise_equal_alone"] == 3 and numbers["max_rel_diff"] == 0.0
    assert sweep.main(["--lrs", "0"]) == 2


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
@pytest.mark.parametrize("scan", [False, True])
def test_layer_records_are_the_kernels_norms_and_their_gradients(digits, scan):
    # SGD: p1 = p0 - lr g, so one step's kernel gradient norm is |p1 - p0| / lr, per layer; a
    # scanned stack reports each of its layers under its own name, as models.per_layer does
    model = ModelSpec("mlp", "tanh", 3, 16, options(scan=True) if scan else ())
    train = TrainSpec("sgd", lr=0.1, steps=1, eval_every=1, layer_records=True)
    s = RunSpec("t", "layers", model, InitSpec("he_normal"), DataSpec("digits", 32), train, 3)
    (rows, info), *_ = list(train_cohort([s], digits, devices=jax.devices()[:1], keep_variables=True))
    layers = rows[rows["layer"].notna()]
    expected = {"layer_000/dense", "layer_001/dense", "layer_002/dense", "head/dense"}
    assert set(layers["layer"]) == expected
    start = initial_variables(s, digits)["params"]
    end = info["variables"][s.run_id]["params"]

    def kernels(params):
        from initbench.benchmarks.train import layer_norms

        return {k: np.asarray(v) for k, v in layer_norms(params).items()}

    def diff(a, b):
        return jax.tree_util.tree_map(lambda x, y: np.asarray(x, np.float64) - np.asarray(y, np.float64), a, b)

    got = layers.set_index(["step", "metric", "layer"])["value"]
    for layer, norm in kernels(start).items():
        assert got[0, "weight_norm", layer] == pytest.approx(float(norm), rel=1e-6)
    for layer, norm in kernels(end).items():
        assert got[1, "weight_norm", layer] == pytest.approx(float(norm), rel=1e-6)
    for layer, moved in kernels(diff(end, start)).items():
        assert got[1, "grad_norm", layer] == pytest.approx(float(moved) / 0.1, rel=1e-4)
    total = rows[(rows["metric"] == "grad_norm") & rows["layer"].isna() & (rows["step"] == 1)]["value"].iloc[0]
    per_layer = np.sqrt(sum(got[1, "grad_norm", layer] ** 2 for layer in expected))
    assert per_layer <= total * (1 + 1e-6)  # kernels only: the global norm also holds the biases


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_init_scale_multiplies_the_selected_initial_parameters_and_leaves_the_rest_bitwise(digits):
    # multipliers compose (class x path pattern); a member initialized in a batch with others is
    # bitwise the member alone; unselected parameters are the plain init's bits
    def spec(scale):
        init = InitSpec("he_normal", bias="normal", bias_args=options(stddev=0.1), scale=scale)
        return RunSpec("t", "scale", ModelSpec("mlp", "tanh", 3, 16), init, DataSpec("digits", 32), TrainSpec(), 0)

    rules = {"input": 2.0, "readout": 0.0, "bias": 0.5, "layer_001/*": 3.0}
    plain, scaled = (initial_variables(spec(r), digits)["params"] for r in ({}, rules))
    np.testing.assert_array_equal(scaled["layer_000"]["dense"]["kernel"], 2 * plain["layer_000"]["dense"]["kernel"])
    np.testing.assert_array_equal(scaled["head"]["dense"]["kernel"], 0 * plain["head"]["dense"]["kernel"])
    # x 3 and x 1.5 are one float32 rounding each, which XLA may fold into the init's own scaling
    ulp2 = 2 * float(np.finfo(np.float32).eps)
    k1, b1 = scaled["layer_001"]["dense"]["kernel"], scaled["layer_001"]["dense"]["bias"]
    np.testing.assert_allclose(k1, 3 * plain["layer_001"]["dense"]["kernel"], rtol=ulp2, atol=0)
    np.testing.assert_allclose(b1, 1.5 * plain["layer_001"]["dense"]["bias"], rtol=ulp2, atol=0)
    np.testing.assert_array_equal(scaled["layer_002"]["dense"]["kernel"], plain["layer_002"]["dense"]["kernel"])
    np.testing.assert_array_equal(scaled["layer_002"]["dense"]["bias"], 0.5 * plain["layer_002"]["dense"]["bias"])
    stack = initial_stack([spec(rules), spec({})], digits)["params"]
    for one, i in ((scaled, 0), (plain, 1)):
        for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(stack), strict=True):
            np.testing.assert_array_equal(a, b[i])


@pytest.mark.slow
def test_a_probe_measures_every_member_at_every_evaluation_and_never_changes_training(digits):
    # the probe's last rows are the probe applied to the returned trained variables; with and
    # without a probe the curves are bitwise equal; per-layer values land in the layer column
    model = ModelSpec("mlp", "tanh", 2, 16)
    train = TrainSpec("sgd", lr=0.1, steps=6, eval_every=3)
    specs = [RunSpec("t", "probe", model, InitSpec("he_normal"), DataSpec("digits", 32), train, i) for i in (0, 1)]
    x = jnp.asarray(digits.x_test[:50])

    def probe(variables):
        kernel = variables["params"]["layer_000"]["dense"]["kernel"]
        return {"kernel_sum": jnp.sum(kernel), "abs_mean": {"a": jnp.mean(jnp.abs(kernel)), "x": jnp.mean(x)}}

    one = jax.devices()[:1]
    (rows, info), *_ = list(train_cohort(specs, digits, devices=one, keep_variables=True, probe=probe))
    (plain, _), *_ = list(train_cohort(specs, digits, devices=one))
    probed = rows[rows["split"] == "probe"]
    assert sorted(set(probed["step"])) == [0, 3, 6]
    assert len(probed) == 2 * 3 * 3  # members x evaluations x values
    trained = rows[rows["split"] != "probe"].reset_index(drop=True)
    assert trained["layer"].isna().all() and plain["layer"].isna().all()
    pd.testing.assert_frame_equal(trained.drop(columns="layer"), plain.reset_index(drop=True).drop(columns="layer"))
    for s in specs:
        mine = probed[(probed["run_id"] == s.run_id) & (probed["step"] == 6)].set_index(["metric", "layer"])
        want = probe(jax.tree_util.tree_map(jnp.asarray, info["variables"][s.run_id]))
        assert mine.loc[("kernel_sum", None), "value"] == pytest.approx(float(want["kernel_sum"]), rel=1e-5)
        assert mine.loc[("abs_mean", "a"), "value"] == pytest.approx(float(want["abs_mean"]["a"]), rel=1e-6)
        start = probe(jax.tree_util.tree_map(jnp.asarray, initial_variables(s, digits)))
        first = probed[(probed["run_id"] == s.run_id) & (probed["step"] == 0) & (probed["metric"] == "kernel_sum")]
        assert first["value"].iloc[0] == pytest.approx(float(start["kernel_sum"]), rel=1e-5)


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        ("mean", "probe must be a function"),
        (lambda v: [1.0], "non-empty dict"),
        (lambda v: {}, "non-empty dict"),
        (lambda v: {"k": v["params"]["head"]["dense"]["kernel"]}, "'k' must be a real scalar"),
        (lambda v: {"k": {"a": jnp.ones(2)}}, "k['a']"),
        (lambda v: {"k": v["params"]["no_such_layer"]}, "probe failed"),
        (lambda v: {"k": {}}, "'k' is an empty dict"),
        (lambda v: {"k": {0: jnp.sum(v["params"]["head"]["dense"]["bias"])}}, "k[0]' must be a real scalar under str"),
        (lambda v: {"k": jnp.sum(v["params"]["head"]["dense"]["bias"]).astype(jnp.complex64)}, "complex64"),
    ],
)
def test_a_bad_probe_is_one_line_before_any_training(digits, probe, message):
    train = TrainSpec("sgd", lr=0.1, steps=10**6, eval_every=10**6)  # would take hours if it started
    s = RunSpec("t", "probe", ModelSpec("mlp", "tanh", 1, 8), InitSpec("he_normal"), DataSpec("digits", 32), train, 0)
    with pytest.raises(UsageError, match=re.escape(message)):
        next(iter(train_cohort([s], digits, devices=jax.devices()[:1], probe=probe)))


def test_divergence_compares_the_evaluated_loss_with_itself_and_sees_the_last_update(digits):
    # a factor near 1 at a tiny lr: the loss only falls, so nothing diverges (a minibatch's loss
    # against the evaluated step-0 loss would have flagged step 0); an update that blows the
    # weights up at the very last step is a divergence at that evaluation
    from initbench.benchmarks.runner import cohorts

    def make(lr, factor, steps):
        train = TrainSpec("sgd", lr=lr, steps=steps, eval_every=steps, divergence_factor=factor)
        return RunSpec(
            "t", "div", ModelSpec("mlp", "relu", 1, 16), InitSpec("he_normal"), DataSpec("digits", 64), train, 0
        )

    careful, blown = make(1e-4, 1.01, 4), make(1e30, 100.0, 1)
    rows = run_rows([careful], digits, devices=jax.devices()[:1])
    assert (rows["status"] == "ok").all() and np.isfinite(rows["value"]).all()
    rows = run_rows([blown], digits, devices=jax.devices()[:1])
    assert (rows["status"] == "diverged").all()
    assert rows[rows["metric"] == "diverged_at_step"]["value"].tolist() == [1.0]
    assert len(cohorts([careful, make(1e-4, 100.0, 4)])) == 1


def test_the_evaluating_contender_evaluates_what_it_trains():
    # the hand-written program with evaluations returns, per member, the last step's loss, then
    # (loss, accuracy) on each set before training and after it: the loss before training is
    # the plain cross-entropy of the initial network on that set, and training lowers it
    from initbench.benchmarks.perf import contenders

    w = contenders.Workload(
        name="t", model="mlp", input_shape=(8,), depth=1, width=16, n_train=256, steps=50, members=2, lr=0.5
    )
    key = jax.random.key(0)
    x = np.asarray(jax.random.normal(key, (256, 8)), np.float32)
    y = np.asarray((x[:, 0] > 0).astype(np.int32))
    out = np.asarray(contenders.handwritten(w, x, y, (x[:64], y[:64], x[64:128], y[64:128]))())
    assert out.shape == (2, 1 + 4 + 4)
    start, end = out[:, 1:5], out[:, 5:9]
    assert np.all(end[:, 0] < start[:, 0]) and np.all(end[:, 1] > 0.8)  # training set: loss down, accuracy up
    assert np.all((start[:, 1::2] >= 0) & (start[:, 1::2] <= 1))


class _Stop(Exception):
    pass


def test_an_interrupted_chunk_resumes_from_its_checkpoint_bitwise(digits, tmp_path):
    specs = [spec(InitSpec(name), 0, steps=40, lr=0.01) for name in ("he_normal", "lecun_normal")]
    whole = sorted_rows(run_rows(specs, digits))
    where = tmp_path / "_checkpoints"
    done: list[int] = []

    def stop_after_20(n, message):
        done.append(n)
        if sum(done) >= 20:  # the state after step 20 is saved (every segment), then the run dies
            raise _Stop

    with pytest.raises(_Stop):
        run_rows(specs, digits, checkpoint_dir=where, checkpoint_every_s=0, progress=stop_after_20)
    (saved,) = where.iterdir()
    calls: list[tuple[int, str]] = []
    resumed = list(
        train_cohort(specs, digits, checkpoint_dir=where, checkpoint_every_s=0, progress=lambda *a: calls.append(a))
    )
    assert calls[1] == (20, f"{specs[0].model.label} relu 2 runs: resumed at step 20")  # after 'initializing'
    assert resumed[0][1]["resumed_at_step"] == 20
    pd.testing.assert_frame_equal(sorted_rows(pd.concat([rows for rows, _ in resumed])), whole)  # bitwise
    assert not saved.exists()  # spent once the rows were taken


@pytest.mark.slow  # ~6 s
def test_a_damaged_checkpoint_is_ignored(digits, tmp_path):
    specs = [spec(InitSpec("he_normal"), seed, steps=20, lr=0.01) for seed in (0, 1)]
    whole = sorted_rows(run_rows(specs, digits))
    where = tmp_path / "_checkpoints"

    def stop(n, message):
        if n:
            raise _Stop

    with pytest.raises(_Stop):
        run_rows(specs, digits, checkpoint_dir=where, checkpoint_every_s=0, progress=stop)
    (saved,) = where.iterdir()
    saved.write_bytes(saved.read_bytes()[:100])  # truncated by a crash of the disk: not an npz
    rows = list(train_cohort(specs, digits, checkpoint_dir=where, checkpoint_every_s=0))
    assert rows[0][1]["resumed_at_step"] == 0
    pd.testing.assert_frame_equal(sorted_rows(pd.concat([r for r, _ in rows])), whole)


def test_checkpoint_files_round_trip_without_pickle(tmp_path):
    from initbench.benchmarks import checkpoint

    obj = {"step": 3, "ids": ["a", "b"], "rows": [(1, {"x": np.arange(3.0)}), (2, {"x": np.float32(2)})], "n": None}
    checkpoint.write(tmp_path / "c.npz", obj)
    back = checkpoint.read(tmp_path / "c.npz")
    assert back["step"] == 3 and back["ids"] == ["a", "b"] and back["n"] is None
    np.testing.assert_array_equal(back["rows"][0][1]["x"], np.arange(3.0))
    assert back["rows"][1][1]["x"].dtype == np.float32
    assert checkpoint.read(tmp_path / "c.npz", only="ids") == ["a", "b"]
    assert checkpoint.read(tmp_path / "missing.npz") is None
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left


@pytest.mark.slow  # a kill -9 mid-cohort, then the rerun: ~1 min
def test_kill_9_mid_cohort_resumes_from_the_checkpoint_to_the_uninterrupted_table(tmp_path):
    argv = [sys.executable, "-m", "initbench.benchmarks.cli", "run", "--depth", "2", "--width", "64", "--steps"]
    argv += ["20000", "--eval-every", "500", "--seeds", "2", "--quiet", "--checkpoint-every", "0", "--out"]
    killed = subprocess.Popen([*argv, str(tmp_path / "killed")], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list((tmp_path / "killed" / "_checkpoints").glob("chunk-*.npz")):
            assert killed.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(2)  # a few more segments
        assert killed.poll() is None, "finished before the kill: give it more steps"
        killed.kill()
    finally:
        killed.wait()
    assert not ResultStore(tmp_path / "killed").files()  # one chunk: nothing was written before the kill
    rerun = subprocess.run([*argv, str(tmp_path / "killed")], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and "1 chunk(s) resumed from a checkpoint" in rerun.stdout, rerun.stderr
    assert not (tmp_path / "killed" / "_checkpoints").exists()
    argv[argv.index("--checkpoint-every") + 1] = "off"  # the uninterrupted run, saving nothing
    assert subprocess.run([*argv, str(tmp_path / "whole")], capture_output=True, timeout=600).returncode == 0
    pd.testing.assert_frame_equal(
        sorted_rows(ResultStore(tmp_path / "killed").read()), sorted_rows(ResultStore(tmp_path / "whole").read())
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_members": 0}, "max_members must be a positive integer, got 0"),
        ({"max_members": 2.5}, "max_members must be a positive integer, got 2.5"),
        ({"progress": "loud"}, "progress must be 'bar', 'log' or 'off', got 'loud'"),
        ({"overrides": [("train.steps", 2)]}, "overrides must be a mapping {'dotted.field': value}"),
        ({"out": None}, "out must be a directory path (str or Path), got None"),
        ({"only": {"init": "he_normal"}}, "only must be a mapping {field: [values, ...]} (lists, not strings)"),
        ({"checkpoint_every_s": -1.0}, "checkpoint_every_s must be a finite number >= 0 or None, got -1.0"),
        ({"checkpoint_every_s": "off"}, "checkpoint_every_s must be a finite number >= 0 or None, got 'off'"),
        ({"checkpoint_every_s": True}, "checkpoint_every_s must be a finite number >= 0 or None, got True"),
    ],
)
def test_the_python_run_api_checks_its_arguments_as_the_command_line_does(kwargs, message, tmp_path):
    from initbench.benchmarks.runner import run_experiment

    kwargs = {"out": tmp_path / "never", **kwargs}
    with pytest.raises(UsageError) as err:
        run_experiment("quick", **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "never").exists()
