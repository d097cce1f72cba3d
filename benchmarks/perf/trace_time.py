"""Trace, compile and init times of deep MLPs, unrolled vs ``nn.scan``.

Run: ``python -m initbench.benchmarks.perf.trace_time`` (width 256, batch 32, tanh). Prints, per
configuration, the time of ``jax.jit(model.init)`` (first call: trace + compile + run), of
tracing and compiling the forward pass, and of one forward call.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from initbench import models

CONFIGS = ((200, False, "he_normal"), (200, False, "orthogonal"), (200, True, "orthogonal"), (1000, True, "orthogonal"))


def main() -> None:
    """Prints one line per configuration."""
    x = jnp.ones((32, 64))
    for depth, scan, init in CONFIGS:
        model = models.build(
            "mlp",
            input_shape=(64,),
            num_classes=10,
            depth=depth,
            width=256,
            activation="tanh",
            kernel_init=init,
            scan=scan,
        )
        t0 = time.perf_counter()
        variables = jax.block_until_ready(jax.jit(model.init)(jax.random.key(0), x))
        t_init = time.perf_counter() - t0
        forward = jax.jit(model.apply)
        t0 = time.perf_counter()
        lowered = forward.lower(variables, x)
        t_trace = time.perf_counter() - t0
        t0 = time.perf_counter()
        compiled = lowered.compile()
        t_compile = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(variables, x))
        t_run = time.perf_counter() - t0
        print(
            f"depth={depth:4d} scan={scan!s:5} init={init:10s} jit(init) {t_init:6.2f}s  "
            f"trace {t_trace:5.2f}s  compile {t_compile:5.2f}s  forward {t_run * 1e3:6.1f}ms"
        )


if __name__ == "__main__":
    main()
