"""Multi-process runs: two real local processes (gloo over the loopback) against one process.

The two-process runs start real ``jax.distributed`` jobs through ``initbench launch``; each is
bounded by a subprocess timeout, so a hang fails the test instead of stalling the suite.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from initbench.benchmarks import cli, distributed, launch
from initbench.benchmarks.results import ResultStore
from initbench.inits.errors import UsageError

# an ad-hoc grid of one small MLP cohort (2 inits x 2 seeds), small enough for the default test run
RUN = [
    "run",
    "--depth",
    "2",
    "--width",
    "32",
    "--init",
    "he_normal,glorot_uniform",
    "--seeds",
    "2",
    "--batch-size",
    "64",
    "--lr",
    "0.05",
    "--steps",
    "20",
    "--eval-every",
    "10",
    "--quiet",
]
KEYS = ["run_id", "step", "split", "metric"]
BOUND_S = 240  # a generous wall-clock bound on any multi-process job in these tests


def one_device_env() -> dict[str, str]:
    env = os.environ.copy()
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
    return env


def table(path):
    df = ResultStore(path).read()
    return df.sort_values(KEYS).reset_index(drop=True)


def reap(procs: list[subprocess.Popen]) -> None:
    """Kills and waits for every process still running and closes its pipe (none outlives its test)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()


def launch_cmd(n: int, argv: list[str], **kw) -> list[str]:
    extra = [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    return [sys.executable, "-m", "initbench.benchmarks.cli", "launch", "-n", str(n), *extra, "--", *argv]


@pytest.fixture(scope="module")
def two_process_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("two")
    cmd = launch_cmd(2, [*RUN, "--out", str(out)], devices_per_process=1)
    done = subprocess.run(cmd, env=one_device_env(), capture_output=True, text=True, timeout=BOUND_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "in 2 processes" in done.stdout
    return out


@pytest.mark.slow  # two processes start (about 15 s with the fixture); CI runs it
def test_two_processes_equal_one_process_with_two_devices(two_process_dir, tmp_path):
    # the same global mesh of two devices and chunk width: bitwise the numbers of one process
    # that holds exactly two devices (a separate process: this one has four, and XLA:CPU's
    # kernels for a program on 2 of 4 devices differ in the last bit)
    env = one_device_env()
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    cmd = [sys.executable, "-m", "initbench.benchmarks.cli", *RUN, "--out", str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=BOUND_S)
    assert done.returncode == 0, done.stderr[-2000:]
    two, one = table(two_process_dir), table(tmp_path)
    assert list(two["run_id"]) == list(one["run_id"])
    np.testing.assert_array_equal(two["value"].to_numpy(), one["value"].to_numpy())
    # exactly one writer: one file per cohort chunk, each written once, by process 0
    store = ResultStore(two_process_dir)
    assert len(store.files()) == 1  # one cohort, one chunk of 2 members per device
    meta = store.provenance_of(store.files()[0])
    assert meta["processes"] == 2 and meta["chunk"]["devices"] == 2 and meta["chunk"]["processes"] == 2


@pytest.mark.slow
def test_two_processes_agree_with_one_device_within_rounding(two_process_dir, tmp_path):
    # one device trains the cohort in chunks twice as wide: other kernels, same run_ids, values
    # within float32 rounding of the accumulated training
    assert cli.main([*RUN, "--devices", "1", "--out", str(tmp_path)]) == 0
    two, one = table(two_process_dir), table(tmp_path)
    assert list(two["run_id"]) == list(one["run_id"])
    np.testing.assert_allclose(two["value"].to_numpy(), one["value"].to_numpy(), rtol=2e-5, atol=1e-6)


@pytest.mark.slow
def test_killed_process_stops_the_other_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "r"
    argv = ["run", "quick", "--steps", "400", "--out", str(out), "--quiet"]
    port = launch.free_port()
    procs = [
        subprocess.Popen([*cmd, "--heartbeat-timeout", "10"], env=one_device_env(), stderr=subprocess.PIPE, text=True)
        for cmd in launch.commands(2, argv, port)
    ]
    try:
        store = ResultStore(out)
        deadline = time.monotonic() + BOUND_S
        while not (out.exists() and store.files()):  # wait for the first chunk, then kill mid-run
            assert time.monotonic() < deadline and procs[0].poll() is None
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        _, err = procs[0].communicate(timeout=60)
        assert procs[0].returncode == distributed.PEER_FAILURE_EXIT
        assert time.monotonic() - killed_at < 60
        last = last_initbench_line(err)
        assert last.startswith("initbench: error (process 0 of 2): another process of this job failed"), last
        assert "rerun the same command to resume" in last
        procs[1].communicate()
    finally:  # a failed assertion must not leave a process behind (its warnings would fail the next test)
        reap(procs)
    partial = set(store.read()["run_id"])
    assert 0 < len(partial) < 24
    # rerun: trains only what is missing, and the table is whole
    done = subprocess.run(
        launch_cmd(2, argv, devices_per_process=1),
        env=one_device_env(),
        capture_output=True,
        text=True,
        timeout=BOUND_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(partial)} already complete" in done.stdout
    assert store.read()["run_id"].nunique() == 24


def last_initbench_line(err: str) -> str:
    """The last line initbench wrote to stderr (gRPC's C++ logger, on a thread of its own, may still
    print "Socket closed" after it: seen once in CI at f8af73d); all of stderr's tail if none."""
    ours = [line for line in err.strip().splitlines() if line.startswith("initbench")]
    return ours[-1] if ours else err[-500:]


@pytest.mark.slow
def test_losing_process_0_ends_the_survivor_in_one_line(tmp_path):
    # process 0 serves the coordination service: JAX aborts the survivor (SIGABRT) when it goes;
    # initbench's abort handler makes that one line and exit 3
    out = tmp_path / "r"
    argv = ["run", "quick", "--steps", "400", "--out", str(out), "--quiet"]
    procs = [
        subprocess.Popen(cmd, env=one_device_env(), stderr=subprocess.PIPE, text=True)
        for cmd in launch.commands(2, argv, launch.free_port())
    ]
    try:
        store = ResultStore(out)
        deadline = time.monotonic() + BOUND_S
        while not (out.exists() and store.files()):  # mid-run: after the first chunk
            assert time.monotonic() < deadline and procs[1].poll() is None
            time.sleep(0.2)
        procs[0].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        _, err = procs[1].communicate(timeout=60)
        assert procs[1].returncode == distributed.PEER_FAILURE_EXIT, err[-2000:]
        assert time.monotonic() - killed_at < 30
        last = last_initbench_line(err)
        assert last.startswith("initbench: error (process 1 of 2): another process of this job failed"), last
        assert last.endswith("rerun the same command to resume")
    finally:
        reap(procs)


@pytest.mark.slow
@pytest.mark.parametrize("process_id", [0, 1])  # the coordinator alone; a process whose coordinator never starts
def test_a_job_that_never_forms_ends_in_one_line_after_the_join_timeout(process_id, tmp_path):
    out = tmp_path / "never"
    port = launch.free_port()
    flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(process_id)]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "initbench.benchmarks.cli", *RUN, "--out", str(out), *flags, "--join-timeout", "3"],
        env=one_device_env(),
        capture_output=True,
        text=True,
        timeout=BOUND_S,
    )
    assert done.returncode == distributed.PEER_FAILURE_EXIT, done.stderr[-2000:]
    assert time.monotonic() - started < 3 + 60  # the join timeout, JAX's last registration attempt, start-up
    last = last_initbench_line(done.stderr)
    assert last.startswith(f"initbench: error (process {process_id} of 2): the job at 127.0.0.1:{port} did not form")
    assert "within 3s" in last and not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"], "HOST:PORT"),
        (["--coordinator", "localhost:1234"], "missing --num-processes, --process-id"),
        (["--coordinator", "127.0.0.1:99999", "--num-processes", "2", "--process-id", "0"], "HOST:PORT"),
        (["--num-processes", "2", "--process-id", "0"], "missing --coordinator"),
        (["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"], "must be in [0, 2)"),
    ],
)
def test_bad_multi_process_flags_fail_before_any_work(flags, message, tmp_path, capsys):
    out = tmp_path / "never"
    assert cli.main([*RUN, "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("initbench: error:") and message in err and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--", "list"], "launch starts `initbench run ...`"),
        ([], "launch starts `initbench run ...`"),
        (["--", "run", "quick", "--process-id", "1"], "remove ['--process-id']"),
        (["--", "run", "quick", "--devices=2"], "remove ['--devices=2']"),
    ],
)
def test_launch_refuses_what_it_cannot_run(argv, message, capsys):
    assert cli.main(["launch", "-n", "2", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_launch_commands_are_one_job():
    cmds = launch.commands(3, ["--", "run", "quick", "--out", "x"], 4321, python="py")
    assert [c[-1] for c in cmds] == ["0", "1", "2"]
    for c in cmds:
        assert c[:5] == ["py", "-m", "initbench.benchmarks.cli", "run", "quick"]
        assert c[c.index("--coordinator") + 1] == "127.0.0.1:4321" and c[c.index("--num-processes") + 1] == "3"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, None),
        (
            {
                "SLURM_JOB_ID": "1",
                "SLURM_STEP_NODELIST": "n1",
                "SLURM_NTASKS": "1",
                "SLURM_PROCID": "0",
                "SLURM_LOCALID": "0",
            },
            None,
        ),
        (
            {
                "SLURM_JOB_ID": "1",
                "SLURM_STEP_NODELIST": "n[1-2]",
                "SLURM_NTASKS": "2",
                "SLURM_PROCID": "1",
                "SLURM_LOCALID": "0",
            },
            "slurm",
        ),
        ({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "4"}, None),  # an allocation, not a step: sbatch without srun
        ({"OMPI_MCA_orte_hnp_uri": "1.0;tcp://10.0.0.1:1", "OMPI_COMM_WORLD_SIZE": "4"}, "ompi"),
        ({"OMPI_MCA_orte_hnp_uri": "1.0;tcp://10.0.0.1:1", "OMPI_COMM_WORLD_SIZE": "1"}, None),
        ({"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}, "tpu"),
        ({"TPU_WORKER_HOSTNAMES": "localhost"}, None),
        ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, "env"),
    ],
)
def test_cluster_detection_needs_more_than_one_process(env, expected):
    assert distributed.detect_cluster(env) == expected


def test_single_process_helpers_are_identities():
    assert distributed.initialize() == distributed.ProcessInfo(0, 1, "single")
    assert distributed.min_over_processes(7) == 7
    np.testing.assert_array_equal(distributed.from_writer(np.arange(3), 3), np.arange(3))
    distributed.check_same("the plan", "anything")  # nothing to compare with


def test_peer_failures_are_told_apart_from_bugs():
    gloo = RuntimeError("UNKNOWN: Gloo AllGather failed: [pair.cc:547] Connection closed by peer [127.0.0.1]:8900")
    assert isinstance(distributed.as_peer_failure(gloo), distributed.PeerFailure)
    assert distributed.as_peer_failure(RuntimeError("RESOURCE_EXHAUSTED: Out of memory")) is None
    assert distributed.as_peer_failure(ValueError("connection closed")) is None
    # under load JAX raised the same lost peer as a ValueError from process_allgather's dispatch
    dispatch = ValueError(
        "UNKNOWN: Gloo AllGather failed: [external/gloo/gloo/transport/tcp/pair.cc:538] Read error "
        "[127.0.0.1]:17823: Connection reset by peer"
    )
    assert isinstance(distributed.as_peer_failure(dispatch), distributed.PeerFailure)
    assert distributed.as_peer_failure(UsageError("gloo failed: a user's words")) is None
    assert distributed.as_peer_failure(KeyboardInterrupt()) is None


def test_coordinator_addresses():
    for good in ("127.0.0.1:1234", "node-01.cluster:8476", "[::1]:80"):
        assert distributed.parse_coordinator(good) == good
    for bad in ("", "1234", "host:", "host:0", "host:65536", "a b:12"):
        with pytest.raises(UsageError, match="HOST:PORT"):
            distributed.parse_coordinator(bad)
