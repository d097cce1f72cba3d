"""Throughput of initbench's cohort trainer side by side with independent contenders.

One command, one process per workload, every contender on the same workload (model, batch
size, SGD, steps, members, Gaussian data), each timed after a warm-up call (compilation
excluded), median of ``--repeats``:

* ``initbench``: the public trainer path, :func:`initbench.benchmarks.train.train_cohort` on
  RunSpecs (evaluation at step 0 and at the end included, one segment);
* ``handwritten``: a minimal ``jit(vmap(scan))`` written directly in ``jax.numpy``/``lax``
  (:mod:`.contenders`): the speed of light of initbench's design;
* ``hw_evaluating``: the same program also evaluating loss and accuracy on the training and
  test examples initbench evaluates, at the first and last step (initbench's work, by hand);
* ``jax_loop``: a jitted step called from Python, one run at a time (the Flax/optax habit);
* ``torch_1t`` / ``torch_2t``: PyTorch with 1 and 2 threads, one run at a time (when importable;
  the best is named in the ratios);
* the machine's limit: measured XLA fp32 matmul GFLOP/s, beside each contender's achieved
  GFLOP/s (XLA's FLOP count of one hand-written step x run-steps/s).

Sequential contenders (``jax_loop``, PyTorch) run ``--sequential-members`` runs (default 4):
their rate per run-step does not depend on how many runs follow each other.

Run: ``python -m initbench.benchmarks.perf.throughput`` (all workloads; ``--workload small``,
``--members N --steps N`` to override, ``--scaling`` for members 1..256 and forced CPU devices
1, 2, 4; ``--compile-cache`` for cold/warm first-segment times). Prints a table with ratios and
writes tidy rows with ``--out FILE.csv`` (and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

# The workloads: MLP 64 -> 3x64 tanh (4,096 examples), MLP 784 -> 5x256 tanh (MNIST-sized
# data), LeNet-5 on 28x28 inputs; every one SGD on Gaussian inputs.
WORKLOADS = {
    "small": dict(
        model="mlp", input_shape=(64,), depth=3, width=64, n_train=4096, batch_size=64, steps=1000, members=32
    ),
    "medium": dict(
        model="mlp", input_shape=(784,), depth=5, width=256, n_train=60000, batch_size=128, steps=300, members=8
    ),
    "lenet": dict(model="lenet5", input_shape=(28, 28, 1), n_train=10000, batch_size=128, steps=200, members=8),
}


_MODULE = "initbench.benchmarks.perf.throughput"  # __name__ is "__main__" under python -m


def _time(fn: Callable[[], Any], repeats: int) -> tuple[float, float, list[float]]:
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), times


def _initbench(w: Any) -> tuple[Callable[[], Any], Any]:
    from initbench.benchmarks import data as data_lib
    from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options
    from initbench.benchmarks.train import train_cohort

    model = ModelSpec("mlp", w.activation, w.depth, w.width) if w.model == "mlp" else ModelSpec("lenet5", w.activation)
    data_options = options(shape=list(w.input_shape), n_train=w.n_train, n_test=1024)
    specs = [
        RunSpec(
            "throughput",
            w.name,
            model,
            InitSpec("lecun_normal"),
            DataSpec("gaussian", w.batch_size, data_options),
            TrainSpec("sgd", lr=w.lr, steps=w.steps, eval_every=w.steps),
            seed,
        )
        for seed in range(w.members)
    ]
    dataset = data_lib.load("gaussian", **dict(data_options))

    def run() -> None:
        for rows, _ in train_cohort(specs, dataset, width=len(specs)):
            assert len(rows)

    return run, dataset


def _jax_loop(w: Any, dataset: Any, members: int) -> Callable[[], Any]:
    import jax
    import jax.numpy as jnp
    import optax

    from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec
    from initbench.benchmarks.train import build_model, initial_variables, run_keys

    model_spec = (
        ModelSpec("mlp", w.activation, w.depth, w.width) if w.model == "mlp" else ModelSpec("lenet5", w.activation)
    )
    specs = [
        RunSpec(
            "t",
            "t",
            model_spec,
            InitSpec("lecun_normal"),
            DataSpec("gaussian", w.batch_size),
            TrainSpec(lr=w.lr, steps=w.steps),
            s,
        )
        for s in range(members)
    ]
    model, tx = build_model(specs[0], dataset), optax.sgd(w.lr)
    n, batch = len(dataset.y_train), w.batch_size
    per_epoch = n // batch
    x_all, y_all = jax.device_put(dataset.x_train), jax.device_put(dataset.y_train)

    @jax.jit
    def step(params, opt_state, order, t):
        idx = jax.lax.dynamic_slice(order, ((t % per_epoch) * batch,), (batch,))

        def loss_fn(p):
            logits = model.apply({"params": p}, x_all[idx])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y_all[idx]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    permute = jax.jit(lambda key, e: jax.random.permutation(jax.random.fold_in(key, e), n))

    def run() -> None:
        for spec in specs:
            params = initial_variables(spec, dataset)["params"]
            opt_state = tx.init(params)
            data_key = run_keys(spec.seed)[1]
            for t in range(spec.train.steps):
                if t % per_epoch == 0:
                    order = permute(data_key, t // per_epoch)
                params, opt_state, loss = step(params, opt_state, order, jnp.int32(t))
            jax.block_until_ready(loss)

    return run


def run_workload(
    name: str, *, members: int | None, steps: int | None, repeats: int, sequential_members: int, torch: bool
) -> list[dict[str, Any]]:
    """Every contender on one workload, in this process; returns tidy rows."""
    import jax

    from initbench.benchmarks.perf import contenders

    spec = {**WORKLOADS[name]}
    if members is not None:
        spec["members"] = members
    if steps is not None:
        spec["steps"] = steps
    w = contenders.Workload(name=name, **spec)
    flops = contenders.step_flops(w)
    limit = contenders.matmul_gflops()
    bf16 = contenders.matmul_gflops(dtype="bfloat16") if jax.default_backend() != "cpu" else None
    device = jax.devices()[0].device_kind
    rows: list[dict[str, Any]] = []

    def record(contender: str, fn: Callable[[], Any], runs: int, threads: int | None = None, reps: int = repeats):
        first, median, times = _time(fn, reps)
        rate = runs * w.steps / median
        rows.append(
            {
                "workload": name,
                "contender": contender,
                "threads": threads,
                "members": runs,
                "steps": w.steps,
                "batch_size": w.batch_size,
                "median_s": median,
                "times_s": json.dumps([round(t, 4) for t in times]),
                "first_call_s": first,
                "compile_s": max(0.0, first - median),
                "run_steps_per_s": rate,
                "gflops": rate * flops / 1e9,
                "matmul_limit_gflops": limit,
                "matmul_bf16_gflops": bf16,
                "device": device,
                "devices": len(jax.devices()),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
        print(
            f"  {contender:12s} {rate:11.0f} run-steps/s  {rows[-1]['gflops']:7.2f} GFLOP/s  (median {median:.3f} s)",
            flush=True,
        )

    print(f"{name}: {w}", flush=True)
    run, dataset = _initbench(w)
    record("initbench", run, w.members)
    record("handwritten", contenders.handwritten(w, dataset.x_train, dataset.y_train), w.members)
    # the same program with initbench's evaluations (1,024 training and the test examples, at the
    # first and last step): the same work as initbench, for the ratio that compares like with like
    n_eval = len(dataset.y_test)  # initbench's training-set evaluation reads as many examples as the test set
    sets = (dataset.x_train[:n_eval], dataset.y_train[:n_eval], dataset.x_test, dataset.y_test)
    record("hw_evaluating", contenders.handwritten(w, dataset.x_train, dataset.y_train, sets), w.members)
    seq = min(sequential_members, w.members)
    record("jax_loop", _jax_loop(w, dataset, seq), seq, reps=1)
    if torch and contenders.torch_available():
        for threads in (1, 2):
            record(
                f"torch_{threads}t",
                contenders.torch_loop(w, dataset.x_train, dataset.y_train, seq, threads),
                seq,
                threads,
                reps=1,
            )
    best = {r["contender"]: r["run_steps_per_s"] for r in rows}
    for r in rows:
        r["ratio_to_handwritten"] = r["run_steps_per_s"] / best["handwritten"]
        r["ratio_to_evaluating"] = r["run_steps_per_s"] / best["hw_evaluating"]
        r["fraction_of_matmul_limit"] = r["gflops"] / limit
    return rows


def _subprocess_rows(args: list[str], env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        path = fh.name
    try:
        subprocess.run(
            [sys.executable, "-m", _MODULE, *args, "--json", path], check=True, env={**os.environ, **(env or {})}
        )
        with open(path) as fh:
            return json.load(fh)
    finally:
        os.unlink(path)


def _summary(rows: list[dict[str, Any]]) -> None:
    print("\nworkload  contender      run-steps/s  x handwritten  x evaluating  GFLOP/s  % matmul limit")
    for r in rows:
        print(
            f"{r['workload']:9s} {r['contender']:13s} {r['run_steps_per_s']:11.0f} {r['ratio_to_handwritten']:13.2f} "
            f"{r['ratio_to_evaluating']:12.2f} {r['gflops']:8.2f} {100 * r['fraction_of_matmul_limit']:14.1f}"
        )
    for name in dict.fromkeys(r["workload"] for r in rows):
        by = {r["contender"]: r["run_steps_per_s"] for r in rows if r["workload"] == name}
        torch = {k: v for k, v in by.items() if k.startswith("torch")}
        if torch:
            best = max(torch, key=torch.get)
            print(f"{name}: initbench / best PyTorch ({best}) = x{by['initbench'] / torch[best]:.2f}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="all", choices=["all", *WORKLOADS])
    parser.add_argument("--members", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sequential-members", type=int, default=4)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--scaling", action="store_true", help="members 1..256 and forced CPU devices 1, 2, 4")
    parser.add_argument("--compile-cache", action="store_true", help="first-segment time, cold and warm cache")
    parser.add_argument("--json", help="write the rows as JSON")
    parser.add_argument("--out", help="write the rows as CSV")
    args = parser.parse_args(argv)
    for name in ("members", "steps", "repeats", "sequential_members"):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(
                f"throughput: error: --{name.replace('_', '-')} must be a positive integer, got {value}",
                file=sys.stderr,
            )
            return 2
    common = ["--repeats", str(args.repeats), "--sequential-members", str(args.sequential_members)]
    common += ["--no-torch"] if args.no_torch else []
    rows: list[dict[str, Any]] = []
    if args.compile_cache:
        rows = compile_cache_rows()
    elif args.scaling:
        rows = scaling_rows(args.steps or 200, args.repeats)
    elif args.workload == "all":  # one process per workload: its own peak memory, no cross-talk
        for name in WORKLOADS:
            extra = [
                *(["--members", str(args.members)] if args.members else []),
                *(["--steps", str(args.steps)] if args.steps else []),
            ]
            rows += _subprocess_rows(["--workload", name, *common, *extra])
        _summary(rows)
    else:
        rows = run_workload(
            args.workload,
            members=args.members,
            steps=args.steps,
            repeats=args.repeats,
            sequential_members=args.sequential_members,
            torch=not args.no_torch,
        )
        if not args.json:
            _summary(rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1, default=str)
    if args.out:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.out, index=False)
    return 0


def scaling_rows(steps: int, repeats: int) -> list[dict[str, Any]]:
    """Small MLP: members 1..256 on one device, and 32 members on 1, 2, 4 forced CPU devices."""
    rows = []
    for members in (1, 4, 16, 64, 256):
        got = _subprocess_rows(
            [
                "--workload",
                "small",
                "--members",
                str(members),
                "--steps",
                str(steps),
                "--repeats",
                str(repeats),
                "--sequential-members",
                "1",
                "--no-torch",
            ]
        )
        rows += [{**r, "scaling": "members"} for r in got if r["contender"] in ("initbench", "handwritten")]
    for devices in (1, 2, 4):
        env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        got = _subprocess_rows(
            [
                "--workload",
                "small",
                "--members",
                "32",
                "--steps",
                str(steps),
                "--repeats",
                str(repeats),
                "--sequential-members",
                "1",
                "--no-torch",
            ],
            env,
        )
        rows += [{**r, "scaling": "devices"} for r in got if r["contender"] == "initbench"]
    print("\nscaling  members devices  initbench run-steps/s  per member  x handwritten")
    for r in (r for r in rows if r["contender"] == "initbench"):
        print(
            f"{r['scaling']:8s} {r['members']:7d} {r['devices']:7d} {r['run_steps_per_s']:21.0f} "
            f"{r['run_steps_per_s'] / r['members']:11.1f} {r['ratio_to_handwritten']:13.2f}"
        )
    return rows


_FIRST_SEGMENT = """
import json, sys, time, jax
from initbench.benchmarks.perf.throughput import _initbench, WORKLOADS
from initbench.benchmarks.perf.contenders import Workload
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
from initbench.benchmarks.train import train_cohort
run, _ = _initbench(Workload(name="small", **{**WORKLOADS["small"], "steps": 100}))
t0 = time.perf_counter(); run(); print(json.dumps(time.perf_counter() - t0))
"""


def compile_cache_rows() -> list[dict[str, Any]]:
    """First call of the small workload in fresh processes: empty, then warm persistent cache."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for state in ("cold", "warm"):
            out = subprocess.run(
                [sys.executable, "-c", _FIRST_SEGMENT, cache], capture_output=True, text=True, check=True
            )
            seconds = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"workload": "small", "contender": "initbench", "cache": state, "first_call_s": seconds})
            print(f"first call (init, compile, 100 steps, 2 evaluations), {state} cache: {seconds:.2f} s")
    return rows


if __name__ == "__main__":
    sys.exit(main())
