"""Results you can trust: typed tables every tool reads, no pooling, divergence as divergence, honest errors."""

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from initbench.benchmarks import cli, data, runner
from initbench.benchmarks.report import per_run, summarize
from initbench.benchmarks.results import CHECK, RUNS, ResultStore
from initbench.benchmarks.spec import NUMERICS_VERSION, DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options
from initbench.benchmarks.train import train_cohort
from initbench.inits.errors import UsageError

RUN = ["run", "quick", "--init", "he_normal", "--seeds", "2", "--quiet"]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert cli.main([*RUN, "--out", str(out)]) == 0  # MLP (depth, width int) and LeNet-5 (null): one table
    assert cli.main(["report", str(out)]) == 0  # figures and csv files land in out/_report
    return out


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def spec(init, seed, *, lr=0.05, steps=30, depth=2):
    return RunSpec(
        "test",
        "results",
        ModelSpec("mlp", "relu", depth, 32),
        init,
        DataSpec("digits", 32),
        TrainSpec("sgd", lr=lr, steps=steps, eval_every=10),
        seed,
    )


def values(rows):
    return rows.set_index(["run_id", "step", "split", "metric"]).sort_index()["value"]


# 1. one typed table that every reader reads
def test_pandas_and_arrow_read_the_directory_directly(runs_dir):
    (runs_dir / ".stale.parquet.tmp").write_bytes(b"half a file")  # an interrupted write's leftover
    df = pd.read_parquet(runs_dir)
    table = ds.dataset(runs_dir).to_table()
    assert len(df) == table.num_rows == len(ResultStore(runs_dir).read())
    assert table.schema.equals(RUNS.schema, check_metadata=False)
    assert df["depth"].isna().any() and df["depth"].notna().any()  # LeNet-5 has none, the MLP has one
    assert (runs_dir / "_report" / "report.md").is_file() and (runs_dir / "_initbench.json").is_file()
    (runs_dir / ".stale.parquet.tmp").unlink()


def test_every_file_has_the_kinds_exact_schema(runs_dir):
    for path in ResultStore(runs_dir).files():
        assert pq.read_schema(path).remove_metadata().equals(RUNS.schema)
    assert json.loads((runs_dir / "_initbench.json").read_text())["kind"] == "runs"


def test_stale_temporary_files_are_cleaned_by_the_next_writer(tmp_path):
    store = ResultStore(tmp_path, kind="runs")
    with store.writing(NUMERICS_VERSION):
        pass
    (tmp_path / ".old.parquet.tmp").write_bytes(b"x")
    (tmp_path / "._initbench.json.0a1b2c3d.tmp").write_bytes(b"{")  # a manifest write killed midway
    (tmp_path / ".notes.tmp").write_bytes(b"mine")  # not initbench's: kept
    with store.writing(NUMERICS_VERSION):
        assert not (tmp_path / ".old.parquet.tmp").exists()
        assert not (tmp_path / "._initbench.json.0a1b2c3d.tmp").exists()
    assert (tmp_path / ".notes.tmp").read_bytes() == b"mine"


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch):
    store = ResultStore(tmp_path, kind="runs")

    def full(table, where, **kw):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    rows = pd.DataFrame(
        {c: pd.Series(dtype=t.to_pandas_dtype()) for c, t in zip(RUNS.columns, RUNS.schema.types, strict=True)}
    )
    with store.writing(NUMERICS_VERSION), pytest.raises(UsageError) as err:
        store.write(rows, "x", {})
    assert str(err.value) == (
        f"cannot write results to {str(tmp_path)!r}: No space left on device; completed chunks are saved: make "
        "room and rerun the same command to resume"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "_initbench.json"]


# 2. the report never pools different experiments; numerics versions never mix
@pytest.mark.slow  # two grids trained: ~3.5 s
def test_report_keeps_different_step_counts_apart(runs_dir, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(runs_dir, mixed)
    assert cli.main([*RUN, "--steps", "10", "--out", str(mixed)]) == 0  # same configs, other schedule length
    runs = per_run(ResultStore(mixed).read(), 0.9)
    summary = summarize(runs)
    lenet = summary[(summary["family"] == "lenet5") & (summary["activation"] == "relu")]
    assert sorted(lenet["steps"]) == [10, 20] and (lenet["seeds"] == 2).all()


def test_a_directory_of_another_numerics_version_is_refused(runs_dir, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(runs_dir, old)
    manifest = json.loads((old / "_initbench.json").read_text())
    (old / "_initbench.json").write_text(json.dumps({**manifest, "numerics_version": "1"}))
    before = sorted(old.rglob("*"))
    assert cli.main([*RUN, "--out", str(old)]) == 2
    assert "numerics version '1'" in capsys.readouterr().err
    assert sorted(old.rglob("*")) == before


# 3. one writer at a time; one row per observation
def test_a_second_writer_is_refused_with_the_holders_name(tmp_path, capsys):
    out = tmp_path / "busy"
    with ResultStore(out, kind="runs").writing(NUMERICS_VERSION):
        assert cli.main([*RUN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is being written by pid" in err and len(err.strip().splitlines()) == 1
    assert not ResultStore(out).files()


def test_identical_copies_collapse_and_disagreeing_copies_name_both_files(runs_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(runs_dir, copy)
    first = ResultStore(copy).files()[0]
    shutil.copy(first, copy / "duplicate.parquet")
    assert len(ResultStore(copy).read()) == len(ResultStore(runs_dir).read())
    table = pq.read_table(first)
    changed = table.set_column(
        table.schema.get_field_index("value"), "value", pa.compute.add(table.column("value"), 1.0)
    )
    pq.write_table(changed, copy / "duplicate.parquet")
    with pytest.raises(UsageError, match=f"files duplicate.parquet and {first.name}|files {first.name} and duplicate"):
        ResultStore(copy).read()


# 4. divergence is counted, excluded, and ends the curves
@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_divergence_is_nan_after_the_step_counted_and_excluded(digits):
    blowup, he = InitSpec("normal", options(stddev=100.0)), InitSpec("he_normal")
    cohort = [spec(blowup, s, lr=0.5, depth=4) for s in range(3)] + [spec(he, s, lr=0.5, depth=4) for s in range(3)]
    rows = pd.concat([r for r, _ in train_cohort(cohort, digits)])
    bad = rows[rows["init"] == "normal"]
    assert set(bad["status"]) == {"diverged"}
    for _, run in bad.groupby("run_id"):
        step = run.loc[run["metric"] == "diverged_at_step", "value"].iloc[0]
        after = run[(run["step"] > step) & (run["metric"] != "diverged_at_step")]
        assert len(after) and after["value"].isna().all()  # no argmax-of-NaN accuracy after divergence
    runs = per_run(rows, 0.5)
    assert runs.loc[runs["status"] == "diverged", ["final_test_accuracy", "best_test_accuracy"]].isna().all().all()
    summary = summarize(runs).set_index("init")
    assert (summary.loc["normal", "diverged"], summary.loc["normal", "seeds"]) == (3, 3)
    assert math.isnan(summary.loc["normal", "final_test_accuracy"])
    assert summary.loc["he_normal", "diverged"] == 0 and summary.loc["he_normal", "final_test_accuracy"] > 0.2


def test_summary_statistics_use_the_same_non_diverged_seeds_for_every_metric():
    base = {c: "x" for c in RUNS.config_columns} | {"steps": 10, "depth": 2, "width": 4, "lr": 0.1}
    runs = pd.DataFrame(
        [
            {
                **base,
                "run_id": f"r{i}",
                "seed": i,
                "status": status,
                "final_test_accuracy": acc,
                "best_test_accuracy": acc,
                "final_train_loss": loss,
                "initial_train_loss": 2.3,
                "steps_to_target": 5.0,
            }
            for i, (status, acc, loss) in enumerate(
                [("ok", 0.8, 0.5), ("ok", 0.9, 0.3), ("diverged", math.nan, math.nan)]
            )
        ]
    )
    row = summarize(runs).iloc[0]
    assert (row["seeds"], row["diverged"]) == (3, 1)
    assert row["final_test_accuracy"] == pytest.approx(0.85) and row["final_train_loss"] == pytest.approx(0.4)
    assert row["reached_target"] == pytest.approx(2 / 3)


# 5. chunking never changes a run's numbers silently
@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_same_width_is_bitwise_whatever_the_chunk_composition(digits):
    cohort = [spec(InitSpec(n), s) for n in ("he_normal", "glorot_uniform") for s in range(3)]
    one = jax.devices()[:1]
    full = values(pd.concat([r for r, _ in train_cohort(cohort, digits, devices=one, width=3)]))
    subset = values(pd.concat([r for r, _ in train_cohort([cohort[4], cohort[1]], digits, devices=one, width=3)]))
    np.testing.assert_array_equal(subset.to_numpy(), full.loc[subset.index].to_numpy())  # resume, filter: bitwise
    # another width or device count: other XLA kernels, equal within float rounding only
    narrow = values(pd.concat([r for r, _ in train_cohort(cohort, digits, devices=one, width=1)]))
    two = values(pd.concat([r for r, _ in train_cohort(cohort, digits, devices=jax.devices()[:2], width=3)]))
    for other in (narrow, two):
        np.testing.assert_allclose(other.to_numpy(), full.loc[other.index].to_numpy(), rtol=1e-5, atol=1e-6)


def test_a_filtered_run_then_the_full_suite_equals_the_full_suite(runs_dir, tmp_path):
    out = tmp_path / "filtered"
    assert cli.main([*RUN, "--only", "activation=tanh", "--out", str(out)]) == 0
    assert cli.main([*RUN, "--out", str(out)]) == 0  # trains only the relu runs, same widths
    a, b = ResultStore(out).read(), ResultStore(runs_dir).read()
    np.testing.assert_array_equal(values(a).to_numpy(), values(b).loc[values(a).index].to_numpy())
    widths = {json.dumps(ResultStore.provenance_of(p)["chunk"]["members_per_device"]) for p in ResultStore(out).files()}
    assert widths == {"1"}  # the grid's cohort (1 init x 2 seeds) over 4 devices, filtered or not


# 6. files, kinds and arguments are checked before any work, and named when wrong
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_corrupt_file_is_named(runs_dir, tmp_path, damage, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(runs_dir, broken)
    victim = ResultStore(broken).files()[0]
    victim.write_bytes(b"" if damage == "empty" else victim.read_bytes()[:200])
    for argv in (["report", str(broken)], [*RUN, "--out", str(broken)]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert victim.name in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_kinds_do_not_mix(runs_dir, tmp_path, capsys):
    checks = tmp_path / "checks"
    # a narrow check is inconclusive (exit 3); what matters here is the kind of directory it writes
    assert cli.main(["check", "--depth", "3", "--width", "16", "--batch-size", "16", "--out", str(checks)]) in (0, 3)
    assert pq.read_schema(ResultStore(checks).files()[0]).remove_metadata().equals(CHECK.schema)
    capsys.readouterr()
    before = sorted(checks.rglob("*"))
    assert cli.main(["report", str(checks)]) == 2
    assert "holds variance-preservation checks" in capsys.readouterr().err
    assert cli.main([*RUN, "--out", str(checks)]) == 2
    assert "use another directory" in capsys.readouterr().err
    assert sorted(checks.rglob("*")) == before
    assert cli.main(["check", "--depth", "3", "--width", "16", "--batch-size", "16", "--out", str(runs_dir)]) == 2


def test_write_time_is_the_time_of_each_write(runs_dir):
    for path in ResultStore(runs_dir).files():
        meta = ResultStore.provenance_of(path)
        assert meta["written_utc"] >= meta["started_utc"]


def test_an_init_label_with_two_arguments_can_be_selected():
    assert cli.split_top_level("normal(stddev=0.01, mean=0.5),zeros") == ["normal(stddev=0.01, mean=0.5)", "zeros"]
    args = cli.build_parser().parse_args(["run", "quick", "--init", "normal(stddev=1.0),he_normal"])
    assert args.init == ["normal(stddev=1.0)", "he_normal"]


def test_a_float_shape_is_refused():
    from initbench import inits

    with pytest.raises(UsageError, match="shape must be a sequence of ints"):
        inits.he_normal()(jax.random.key(0), (4.5, 4))


def test_bad_init_arguments_are_named(capsys):
    assert cli.main(["check", "--init", "normal", "--init-args", "stddev=abc", "--no-write"]) == 2
    assert "normal: stddev must be a number, got 'abc'" in capsys.readouterr().err


# 7. progress off a terminal is periodic log lines
@pytest.mark.slow  # a training run for its log lines: ~7 s
def test_progress_without_a_terminal_logs_lines(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "initbench.benchmarks.cli",
            "run",
            "quick",
            "--init",
            "zeros",
            "--activation",
            "relu",
            "--seeds",
            "1",
            "--steps",
            "10",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("initbench: ")]
    assert lines and lines[-1].startswith("initbench: 20/20 run-steps (100%)") and "run-steps/s" in lines[-1]


def test_progress_logs_while_nothing_advances(capsys):
    # a long compile reports itself: lines keep coming with the phase, not silence until the first step
    bar = runner.Progress(100, "log", every_s=0.05)
    bar.update(0, "mlp relu 4 runs: initializing, compiling")
    lines: list[str] = []
    deadline = time.monotonic() + 30  # twice in 0.1 s when idle; a loaded machine gets time
    while len(lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        lines += capsys.readouterr().err.splitlines()
    bar.update(100, "mlp relu 4 runs")
    bar.close()
    last = capsys.readouterr().err.splitlines()[-1]
    assert len(lines) >= 2 and all(line.startswith("initbench: 0/100 run-steps (0%)") for line in lines), lines
    assert all(line.endswith("mlp relu 4 runs: initializing, compiling") for line in lines), lines
    assert last.startswith("initbench: 100/100 run-steps (100%)")
    assert not bar._heartbeat.is_alive()


@pytest.mark.parametrize(
    ("intruder", "message"),
    [
        ("foreign", "is not of this directory's schema (columns missing: ['run_id', 'numerics_version', 'suite']"),
        ("retyped", "is not of this directory's schema (column depth is string, not int64)"),
        ("hidden", "holds .copy.parquet, a parquet file pandas and pyarrow skip"),
        ("underscore", "holds _copy.parquet, a parquet file pandas and pyarrow skip"),
    ],
)
def test_a_file_initbench_did_not_write_is_refused_by_name(runs_dir, tmp_path, intruder, message, capsys):
    # never merged as null rows, never cast, never read by one reader and skipped by the other
    out = tmp_path / "copy"
    shutil.copytree(runs_dir, out, ignore=shutil.ignore_patterns("_report"))
    table = pq.read_table(sorted(out.glob("*.parquet"))[0])
    if intruder == "foreign":
        pq.write_table(pa.table({"a": [1, 2]}), out / "other.parquet")
    elif intruder == "retyped":
        i = table.schema.get_field_index("depth")
        pq.write_table(table.set_column(i, "depth", table.column("depth").cast(pa.string())), out / "zz.parquet")
    else:
        pq.write_table(table, out / (".copy.parquet" if intruder == "hidden" else "_copy.parquet"))
    for argv in (["report", str(out)], ["run", *RUN[1:], "--out", str(out)]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len([e for e in err if e.startswith("initbench: error")]) == 1 and message in err[-1], err


def test_a_report_inside_the_results_directory_must_be_skipped_by_readers(runs_dir, capsys):
    for out, message in (
        (runs_dir / "sub", "is inside the results directory"),
        (runs_dir, "is the results directory itself"),
    ):
        assert cli.main(["report", str(runs_dir), "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert not (runs_dir / "sub").exists()
    assert cli.main(["report", str(runs_dir), "--out", str(runs_dir / "_mine")]) == 0
    assert len(pd.read_parquet(runs_dir)) == len(ResultStore(runs_dir).read())


def test_a_report_is_not_written_into_another_results_directory(runs_dir, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(runs_dir, other)
    before = sorted(p.name for p in other.iterdir())
    assert cli.main(["report", str(runs_dir), "--out", str(other)]) == 2
    assert "is a results directory: the report's files would sit among its results" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == before


# grid analysis: the best value of a field per configuration, figures against a field
def constructed_summary():
    from initbench.benchmarks.report import CONFIG

    base = dict.fromkeys(CONFIG, "")
    rows = []
    for width, losses in ((64, {0.01: 0.9, 0.1: 0.4, 1.0: 0.6}), (256, {0.01: 0.8, 0.1: 0.5, 1.0: 0.3})):
        for lr, loss in losses.items():
            rows.append(
                {
                    **base,
                    "model": f"mlp(width={width})",
                    "width": width,
                    "lr": lr,
                    "init": "he_normal",
                    "label": "he_normal",
                    "final_train_loss": loss,
                    "final_train_loss_ci95": 0.01,
                    "final_test_accuracy": 1 - loss,
                    "final_test_accuracy_ci95": 0.01,
                }
            )
    return pd.DataFrame(rows)


def test_best_over_a_field_per_configuration_of_the_others():
    from initbench.benchmarks.report import best_over

    table = best_over(constructed_summary(), "lr")
    assert table[["width", "best_lr", "at_edge"]].values.tolist() == [[64, 0.1, False], [256, 1.0, True]]
    assert table["runner_up_gap"].round(6).tolist() == [0.2, 0.2]
    # accuracy is better high: the same optima; a value whose seeds all diverged cannot be best
    assert best_over(constructed_summary(), "lr", "final_test_accuracy")["best_lr"].tolist() == [0.1, 1.0]
    summary = constructed_summary()
    summary.loc[(summary["width"] == 256) & (summary["lr"] == 1.0), "final_train_loss"] = math.nan
    assert best_over(summary, "lr")["best_lr"].tolist() == [0.1, 0.1]
    # over width: the model label, which carries the width, does not split the configurations
    by_width = best_over(constructed_summary(), "width")
    assert by_width[["lr", "best_width"]].values.tolist() == [[0.01, 256], [0.1, 64], [1.0, 256]]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--best", "learning_rate"], "unknown --best field 'learning_rate'"),
        (["--hue", "width"], "--hue needs --x"),
        (["--x", "lr", "--hue", "lr"], "--x and --hue are both lr"),
        (["--best", "lr", "--metric", "accuracy"], "unknown --metric 'accuracy'"),
        (["--best", "lr"], "lr takes one value in these results (0.05): nothing to compare"),
    ],
)
def test_bad_grid_analysis_options_are_one_line_and_write_nothing(runs_dir, tmp_path, argv, message, capsys):
    assert cli.main(["report", str(runs_dir), "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow  # trains a 3 x 2 grid of 2 seeds
def test_the_report_writes_the_best_table_and_the_figure_against_a_field(tmp_path):
    out = tmp_path / "g"
    argv = ["run", "--depth", "1", "--width", "8,16", "--lr", "0.01,0.1,1.0", "--steps", "20", "--seeds", "2"]
    assert cli.main([*argv, "--quiet", "--out", str(out)]) == 0
    assert cli.main(["report", str(out), "--best", "lr", "--x", "lr", "--hue", "width"]) == 0
    best = pd.read_csv(out / "_report" / "best_lr.csv")
    assert sorted(best["width"]) == [8, 16] and set(best["best_lr"]) <= {0.01, 0.1, 1.0}
    text = (out / "_report" / "report.md").read_text()
    assert "## Best lr by final_train_loss" in text and "grid_lr_width_" in text
    figures = sorted(p.name for p in (out / "_report").glob("grid_lr_width_*.png"))
    assert len(figures) == 1 and (out / "_report" / figures[0]).read_bytes()[:4] == b"\x89PNG"
