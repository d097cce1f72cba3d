"""``initbench launch``: start N local processes of one multi-process run and watch them.

For testing a multi-process job on one machine (and for a multi-process job on one multi-GPU
node). Each process runs ``python -m initbench.benchmarks.cli run ... --coordinator
127.0.0.1:PORT --num-processes N --process-id I``. If one exits non-zero, the others get
``grace_s`` seconds to stop by themselves (they do within a second when a collective finds the
peer gone, or after the heartbeat timeout otherwise) and are then killed, so the launcher never
hangs; its exit code is the first failure's.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from initbench.inits.errors import UsageError

_OWN_FLAGS = ("--coordinator", "--num-processes", "--process-id", "--single-process", "--devices")


def free_port() -> int:
    """A TCP port on the loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def commands(n: int, argv: Sequence[str], port: int, *, python: str = sys.executable) -> list[list[str]]:
    """The command line of each of the ``n`` processes.

    Raises:
      UsageError: ``argv`` is not an ``initbench run`` command, or it sets a flag the launcher owns.
    """
    argv = list(argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv or argv[0] != "run":
        expected = "expected `-- run [EXPERIMENT] ...`"
        raise UsageError(f"launch starts `initbench run ...` processes: {expected}, got {argv[:3]}")
    owned = [a for a in argv if a.split("=")[0] in _OWN_FLAGS]
    if owned:
        raise UsageError(f"launch sets {', '.join(_OWN_FLAGS)} itself; remove {owned}")
    base = [python, "-m", "initbench.benchmarks.cli", *argv, "--coordinator", f"127.0.0.1:{port}"]
    return [[*base, "--num-processes", str(n), "--process-id", str(i)] for i in range(n)]


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal k: 128 + k, as a shell reports it


MAX_PROCESSES = 256
MAX_DEVICES_PER_PROCESS = 1024


def launch(
    n: int,
    argv: Sequence[str],
    *,
    port: int | None = None,
    devices_per_process: int | None = None,
    grace_s: float = 30.0,
    python: str = sys.executable,
) -> int:
    """Runs ``initbench run`` as ``n`` cooperating local processes; returns the job's exit code.

    Args:
      n: Number of processes.
      argv: The ``run`` command, e.g. ``["run", "quick", "--out", "results/q"]``.
      port: Coordinator port on 127.0.0.1 (default: a free one).
      devices_per_process: CPU devices per process (XLA's forced host device count).
      grace_s: Seconds the others get to stop after one process fails, before they are killed.
      python: The interpreter.

    Returns:
      0 when every process succeeded, else the first failing process's exit code.
    """
    if n < 1:
        raise UsageError(f"launch needs at least 1 process, got {n}")
    if n > MAX_PROCESSES:  # one machine's processes: a larger count is a typo (each starts a JAX runtime)
        raise UsageError(f"launch starts at most {MAX_PROCESSES} local processes, got {n}")
    if devices_per_process is not None and not 1 <= devices_per_process <= MAX_DEVICES_PER_PROCESS:
        raise UsageError(
            f"--devices-per-process must be in 1..{MAX_DEVICES_PER_PROCESS} (forced CPU devices), got "
            f"{devices_per_process}"
        )
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"--port must be in 1..65535, got {port}")
    cmds = commands(n, argv, port or free_port(), python=python)
    env = os.environ.copy()
    if devices_per_process:
        kept = re.sub(r"--xla_force_host_platform_device_count=\S*", "", env.get("XLA_FLAGS", ""))
        env["XLA_FLAGS"] = f"{kept} --xla_force_host_platform_device_count={devices_per_process}".strip()
    procs = [subprocess.Popen(cmd, env=env) for cmd in cmds]
    failed: tuple[int, int] | None = None
    deadline = None
    try:
        while any(p.poll() is None for p in procs):
            for i, p in enumerate(procs):
                if failed is None and p.returncode not in (None, 0):
                    failed, deadline = (i, p.returncode), time.monotonic() + grace_s
            if deadline is not None and time.monotonic() > deadline:
                _stop(procs)
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        _stop(procs, grace_s=10.0)
        return 130
    if failed is None:
        failed = next(((i, p.returncode) for i, p in enumerate(procs) if p.returncode != 0), None)
    if failed is None:
        return 0
    i, code = failed
    others = ", ".join(f"{j}: {_exit_code(p.returncode)}" for j, p in enumerate(procs) if j != i)
    print(
        f"initbench launch: process {i} of {n} exited with {_exit_code(code)} (others: {others or 'none'}); "
        "completed chunks are saved, rerun the same command to resume",
        file=sys.stderr,
    )
    return _exit_code(code)


def _stop(procs: Sequence[subprocess.Popen], grace_s: float = 5.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    end = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
