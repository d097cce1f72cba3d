"""Throughput of the cohort trainer against sequential baselines, measured side by side.

Three ways to train the same M runs (same specs, same steps), timed in one process after a
warm-up call of each (compilation excluded), median of ``--repeats``:

* ``cohort``: :func:`benchmarks.train.train_cohort` on all M runs: one ``jit(vmap(scan))``;
* ``sequential_scan``: the same trainer called once per run (M programs of one member);
* ``python_loop``: the loop most code writes: a jitted optax step per run, called from a Python
  ``for`` loop over steps, batches gathered on device.

Run: ``python -m initbench.benchmarks.perf.throughput --members 32 --steps 300`` (add ``--model lenet5``).
Prints and optionally writes (``--json``) run-steps per second of each and the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import optax

from initbench.benchmarks import data as data_lib
from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec
from initbench.benchmarks.train import build_model, initial_variables, make_optimizer, run_keys, train_cohort


def make_specs(model: str, members: int, steps: int, batch_size: int, dataset: str) -> list[RunSpec]:
    """M runs of one cohort: He-normal init, seeds 0..M-1."""
    model_spec = ModelSpec("mlp", "relu", depth=3, width=128) if model == "mlp" else ModelSpec(model, "relu")
    return [
        RunSpec(
            "throughput",
            model,
            model_spec,
            InitSpec("he_normal"),
            DataSpec(dataset, batch_size),
            TrainSpec("sgd", lr=0.05, steps=steps, eval_every=max(1, steps // 3)),
            seed,
        )
        for seed in range(members)
    ]


def _cohort(specs: list[RunSpec], dataset: data_lib.Dataset) -> None:
    for rows, _ in train_cohort(specs, dataset):
        assert len(rows)


def _sequential_scan(specs: list[RunSpec], dataset: data_lib.Dataset) -> None:
    for spec in specs:
        _cohort([spec], dataset)


def _python_loop(specs: list[RunSpec], dataset: data_lib.Dataset) -> None:
    first = specs[0]
    model = build_model(first, dataset)
    tx = make_optimizer(first.train)
    batch, n = first.data.batch_size, len(dataset.y_train)
    per_epoch = n // batch
    x_all, y_all = jax.device_put(dataset.x_train), jax.device_put(dataset.y_train)

    @jax.jit
    def step(params, opt_state, data_key, t):
        order = jax.random.permutation(jax.random.fold_in(data_key, t // per_epoch), n)
        idx = jax.lax.dynamic_slice(order, ((t % per_epoch) * batch,), (batch,))

        def loss_fn(p):
            logits = model.apply({"params": p}, x_all[idx])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y_all[idx]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    for spec in specs:
        params = initial_variables(spec, dataset)["params"]
        opt_state = tx.init(params)
        data_key = run_keys(spec.seed)[1]
        for t in range(spec.train.steps):
            params, opt_state, loss = step(params, opt_state, data_key, jnp.int32(t))
        jax.block_until_ready(loss)


METHODS = {"cohort": _cohort, "sequential_scan": _sequential_scan, "python_loop": _python_loop}


def measure(specs: list[RunSpec], dataset: data_lib.Dataset, repeats: int) -> dict[str, Any]:
    """Median wall time and run-steps/s of each method (after one warm-up call each)."""
    total_steps = sum(s.train.steps for s in specs)
    out: dict[str, Any] = {}
    for name, method in METHODS.items():
        method(specs, dataset)  # warm-up: compile
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            method(specs, dataset)
            times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        out[name] = {"median_s": median, "times_s": times, "run_steps_per_s": total_steps / median}
    for name in ("sequential_scan", "python_loop"):
        out[f"cohort_speedup_vs_{name}"] = out[name]["median_s"] / out["cohort"]["median_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mlp", choices=["mlp", "lenet5"])
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if min(args.members, args.steps, args.batch_size, args.repeats) < 1:
        print("throughput: error: --members, --steps, --batch-size and --repeats must be positive", file=sys.stderr)
        return 2
    dataset = data_lib.load(args.dataset)
    specs = make_specs(args.model, args.members, args.steps, args.batch_size, args.dataset)
    result = measure(specs, dataset, args.repeats)
    devices = jax.devices()
    result["config"] = {
        **vars(args),
        "backend": jax.default_backend(),
        "device": devices[0].device_kind,
        "devices": len(devices),
    }
    for name in METHODS:
        r = result[name]
        print(f"{name:16s} median {r['median_s']:8.3f} s  {r['run_steps_per_s']:10.0f} run-steps/s")
    print(
        f"cohort speed-up: x{result['cohort_speedup_vs_sequential_scan']:.1f} vs sequential_scan, "
        f"x{result['cohort_speedup_vs_python_loop']:.1f} vs python_loop "
        f"({args.members} runs x {args.steps} steps, {args.model}, {result['config']['device']})"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
