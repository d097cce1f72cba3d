"""Multi-process runs through ``jax.distributed``: start-up, agreement between processes, faults.

One job may span several processes (hosts of a cluster, or local processes for testing). Each
process runs the same command: they all plan the same runs, every cohort's members are sharded
over *all* processes' devices (one global mesh), metrics are gathered to every process, and only
process 0 writes the results directory. The pieces here:

- :func:`initialize`: ``jax.distributed.initialize`` from explicit flags
  (``--coordinator HOST:PORT --num-processes N --process-id I``) or, with no flags, from JAX's
  own cluster detection when the environment is a multi-process SLURM step, an Open MPI job or
  a multi-host TPU slice (:func:`detect_cluster`). CPU processes use gloo collectives over TCP.
- :func:`check_same`, :func:`min_over_processes`, :func:`from_writer`: the few facts processes
  must agree on (the plan, the chunk width, the runs left to do), each checked or broadcast.
- :class:`PeerFailure`: a collective failed because another process died; the CLI prints one
  line and exits 3 without waiting for JAX's shutdown barrier.

Every function is a no-op (or the identity) in a single-process job.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from initbench.inits.errors import UsageError

T = TypeVar("T")

#: Exit code of a process whose job failed because another process of it failed.
PEER_FAILURE_EXIT = 3

#: Seconds without a heartbeat after which the coordination service declares a process dead.
DEFAULT_HEARTBEAT_TIMEOUT_S = 60


class PeerFailure(RuntimeError):
    """A collective operation failed: another process of the job died or stopped answering."""


@dataclass(frozen=True)
class ProcessInfo:
    """Where this process stands in its job.

    Attributes:
      index: ``jax.process_index()``.
      count: ``jax.process_count()``.
      source: ``single``, ``flags`` or the detected cluster (``slurm``, ``ompi``, ``tpu``, ``env``).
    """

    index: int = 0
    count: int = 1
    source: str = "single"

    @property
    def is_writer(self) -> bool:
        """Process 0 writes the results; the others only compute."""
        return self.index == 0


def parse_coordinator(value: str) -> str:
    """Validates ``HOST:PORT`` (a name, IPv4 address or ``[IPv6]``, and a port in 1..65535)."""
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d+)", value or "")
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise UsageError(f"--coordinator must be HOST:PORT (e.g. 10.0.0.1:12345), got {value!r}")
    return value


def detect_cluster(env: Mapping[str, str] | None = None) -> str | None:
    """The multi-process environment JAX can initialize itself from, or None.

    Only environments with more than one process count: a one-task SLURM allocation or a plain
    shell stays single-process.

    Returns:
      ``env`` (``JAX_COORDINATOR_ADDRESS`` is set), ``slurm`` (a SLURM step with
      ``SLURM_NTASKS > 1``), ``ompi`` (Open MPI with ``OMPI_COMM_WORLD_SIZE > 1``), ``tpu`` (a
      multi-host Cloud TPU slice: ``TPU_WORKER_HOSTNAMES`` lists several hosts, or
      ``MEGASCALE_COORDINATOR_ADDRESS`` is set), else None.
    """
    env = os.environ if env is None else env

    def count(name: str) -> int:
        try:
            return int(env.get(name, "1"))
        except ValueError:
            return 1

    if env.get("JAX_COORDINATOR_ADDRESS"):
        return "env"
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    if all(k in env for k in slurm) and count("SLURM_NTASKS") > 1:
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in env and count("OMPI_COMM_WORLD_SIZE") > 1:
        return "ompi"
    if "," in env.get("TPU_WORKER_HOSTNAMES", "") or env.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return "tpu"
    return None


def validate_flags(coordinator: str | None, num_processes: int | None, process_id: int | None) -> bool:
    """Checks the three flags together; True when they ask for a multi-process job.

    Raises:
      UsageError: only some of the three are given, or the id is outside ``[0, num_processes)``.
    """
    given = {"--coordinator": coordinator, "--num-processes": num_processes, "--process-id": process_id}
    if all(v is None for v in given.values()):
        return False
    missing = [k for k, v in given.items() if v is None]
    if missing:
        need = "--coordinator, --num-processes and --process-id"
        raise UsageError(f"a multi-process run needs {need}; missing {', '.join(missing)}")
    parse_coordinator(coordinator)
    if not isinstance(num_processes, int) or num_processes < 1:
        raise UsageError(f"--num-processes must be a positive integer, got {num_processes!r}")
    if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
        raise UsageError(f"--process-id must be in [0, {num_processes}), got {process_id!r}")
    return True


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto: bool = True,
    heartbeat_timeout_s: int = DEFAULT_HEARTBEAT_TIMEOUT_S,
    init_timeout_s: int = 300,
) -> ProcessInfo:
    """Joins a multi-process job, or stays a single process; call before any other JAX use.

    With the three flags, process ``I`` of ``N`` connects to the coordinator (process 0 serves
    it at ``HOST:PORT``). Without them and with ``auto``, a detected cluster environment
    (:func:`detect_cluster`) initializes through JAX's own detection. CPU collectives use gloo.

    Args:
      coordinator: ``HOST:PORT`` of process 0.
      num_processes: Processes in the job.
      process_id: This process's index.
      auto: Use JAX's cluster detection when no flags are given.
      heartbeat_timeout_s: A process silent this long is declared dead and the job stops.
      init_timeout_s: How long to wait for all processes to connect.

    Raises:
      UsageError: inconsistent flags, or the processes did not connect in time.
    """
    explicit = validate_flags(coordinator, num_processes, process_id)
    source = "flags" if explicit else (detect_cluster() if auto else None)
    if source is None:
        return ProcessInfo()
    import jax

    if jax.distributed.is_initialized():
        return ProcessInfo(jax.process_index(), jax.process_count(), source)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = dict(heartbeat_timeout_seconds=int(heartbeat_timeout_s), initialization_timeout=int(init_timeout_s))
    if explicit:
        kwargs.update(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    where = coordinator or source
    who = f"process {process_id} of {num_processes}" if explicit else f"a process of the {source} job"
    resume = "completed chunks are saved, rerun the same command to resume"
    _abort_line(  # JAX aborts the process when the job never forms (a peer that never joins)
        f"initbench: error ({who}): the job at {where} did not form within {init_timeout_s}s: a process never "
        "joined or stopped answering (JAX aborted: its log above); nothing was trained: start every process "
        "of the job (the same command)"
    )
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as err:  # JaxRuntimeError is a RuntimeError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"could not join the multi-process job at {where} within {init_timeout_s}s: {first}") from err
    info = ProcessInfo(jax.process_index(), jax.process_count(), source)
    _abort_line(  # ... and when the coordination service reports a lost process (process 0 lost, above all)
        f"initbench: error (process {info.index} of {info.count}): another process of this job failed or "
        f"stopped answering (JAX's coordination service aborted this one: its log above); {resume}"
    )
    return info


_ABORT: dict[str, object] = {}  # the SIGABRT handler (kept alive) and its line: one per process, like the signal


def _abort_line(text: str, code: int = PEER_FAILURE_EXIT) -> None:
    """Makes a C++ abort of this process end with ``text`` on stderr and exit ``code`` (not SIGABRT).

    JAX's coordination client ends the process with a fatal log (``client.h: Terminating process
    because the JAX distributed service detected fatal errors``) and ``abort()`` when it loses the
    coordination service (process 0 died) or the job never forms; no Python exception is raised,
    so only a signal handler can say so. The handler is C-callable (ctypes) and takes the GIL to
    print the line, then leaves with ``os._exit``. Called again, it replaces the line. Without a
    libc to install it (not Linux or macOS) the abort stays JAX's.
    """
    import ctypes
    import signal

    _ABORT["text"], _ABORT["code"] = text, code
    if "handler" in _ABORT:
        return
    try:
        libc = ctypes.CDLL(None)
        install = libc.signal
    except (OSError, AttributeError):
        return
    install.restype, install.argtypes = ctypes.c_void_p, [ctypes.c_int, ctypes.c_void_p]

    def on_abort(signum: int) -> None:
        try:
            os.write(2, f"\n{_ABORT['text']}\n".encode())
        finally:
            os._exit(int(_ABORT["code"]))  # type: ignore[call-overload]

    handler = ctypes.CFUNCTYPE(None, ctypes.c_int)(on_abort)
    install(signal.SIGABRT, ctypes.cast(handler, ctypes.c_void_p))
    _ABORT["handler"] = handler


def current() -> ProcessInfo:
    """This process's place in the job (index 0 of 1 when not distributed)."""
    import jax

    return ProcessInfo(jax.process_index(), jax.process_count(), "flags" if jax.process_count() > 1 else "single")


_PEER_SIGNS = re.compile(
    r"gloo|connection (closed|reset|refused)|heartbeat|unavailable|deadline exceeded|barrier|coordination service"
    r"|nccl|socket closed|broken pipe",
    re.IGNORECASE,
)
_COLLECTIVE_SIGNS = re.compile(r"\b(gloo|nccl)\b.*\bfailed\b|coordination service", re.IGNORECASE | re.DOTALL)


def as_peer_failure(err: BaseException) -> PeerFailure | None:
    """A :class:`PeerFailure` when ``err`` is a collective that failed because a peer went away, else None."""
    if isinstance(err, PeerFailure):
        return err
    # JAX reports a lost peer as a JaxRuntimeError (a RuntimeError) or, when the loss breaks a
    # collective's dispatch, as a ValueError naming the collective library (seen under load: "Gloo
    # AllGather failed: ... Connection reset by peer"); another type must name that library too
    if not isinstance(err, Exception) or isinstance(err, UsageError):
        return None
    text = str(err).strip()
    signs = _PEER_SIGNS if isinstance(err, RuntimeError) else _COLLECTIVE_SIGNS
    if not signs.search(text):
        return None
    first = text.splitlines()[0][:200]
    return PeerFailure(f"another process of this job failed or stopped answering ({first})")


def _collective(fn, *args):
    try:
        return fn(*args)
    except Exception as err:
        failure = as_peer_failure(err)
        if failure is None:
            raise
        raise failure from err


def guard(items: Iterator[T]) -> Iterator[T]:
    """Yields from ``items``, turning a failure caused by a lost peer into :class:`PeerFailure`.

    Only in a multi-process job: a single process's errors pass through untouched.
    """
    import jax

    if jax.process_count() == 1:
        yield from items
        return
    it = iter(items)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except Exception as err:
            failure = as_peer_failure(err)
            if failure is None:
                raise
            raise failure from err
        yield item


def digest(text: str) -> int:
    """A 31-bit digest of a text (fits an int32 on every backend)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def check_same(what: str, text: str) -> None:
    """Raises on every process unless all processes computed the same ``text`` (by digest).

    Raises:
      UsageError: the processes disagree (e.g. different commands or package versions).
    """
    import jax

    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    values = np.asarray(_collective(multihost_utils.process_allgather, np.int32(digest(text)))).ravel()
    if len(set(values.tolist())) > 1:
        raise UsageError(
            f"the {jax.process_count()} processes disagree on {what} (digests {values.tolist()}): "
            "run the same command and initbench version everywhere"
        )


def min_over_processes(value: int) -> int:
    """The smallest of every process's ``value`` (the same on all processes)."""
    import jax

    if jax.process_count() == 1:
        return int(value)
    from jax.experimental import multihost_utils

    return int(np.min(_collective(multihost_utils.process_allgather, np.int64(value))))


def from_writer(values: np.ndarray | None, size: int, error: str | None = None) -> np.ndarray:
    """Broadcasts process 0's int array of ``size`` to every process.

    Process 0 passes ``values`` (or ``error`` when it cannot go on, e.g. the results directory
    is locked); the others pass None. Every process returns the writer's array, or raises.

    Raises:
      UsageError: on the other processes, when process 0 reported an error.
    """
    import jax

    if jax.process_count() == 1:
        return np.asarray(values)
    from jax.experimental import multihost_utils

    buf = np.zeros(size + 1, np.int32)
    if jax.process_index() == 0:
        buf[0] = 1 if error else 0
        if values is not None and not error:
            buf[1:] = values
    out = np.asarray(_collective(multihost_utils.broadcast_one_to_all, buf))
    if out[0] and jax.process_index() != 0:
        raise UsageError("process 0 stopped before training (see its error); nothing was written")
    return out[1:]
