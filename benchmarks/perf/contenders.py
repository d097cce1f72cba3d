"""Independent contenders for the throughput benchmark: hand-written JAX, PyTorch, the matmul limit.

Nothing here uses initbench's models, initializers, data path or trainer, so a speed ratio
against these measures initbench, not a copy of itself:

* :func:`handwritten` is the speed of light of initbench's design: one ``jit(vmap(scan))`` over
  members and steps, written directly in ``jax.numpy``/``lax`` (MLP or LeNet-5), plain SGD,
  per-epoch permutations computed once, batches gathered inside the scan. For a conv net on
  CPU it takes the fastest form measured there: im2col convolutions and ``lax.map`` over members.
* :func:`torch_loop` is PyTorch as people write it: ``torch.nn`` modules with
  ``torch.nn.init`` and a standard loop, one run after another (never a dependency of
  initbench; used when importable).
* :func:`matmul_gflops` is the machine's measured fp32 matmul rate under XLA.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Workload:
    """One training workload, the same for every contender.

    Attributes:
      name: Short name.
      model: ``mlp`` or ``lenet5``.
      input_shape: One example's shape.
      depth: Hidden layers (MLP).
      width: Hidden units (MLP).
      activation: ``tanh`` or ``relu``.
      n_train: Training examples (Gaussian inputs).
      batch_size: Examples per step.
      steps: SGD steps per run.
      members: Runs (seeds) trained together.
      lr: SGD learning rate.
      num_classes: Output units.
    """

    name: str
    model: str
    input_shape: tuple[int, ...]
    depth: int = 0
    width: int = 0
    activation: str = "tanh"
    n_train: int = 4096
    batch_size: int = 64
    steps: int = 1000
    members: int = 32
    lr: float = 0.05
    num_classes: int = 10


def _act(name: str) -> Callable[[jax.Array], jax.Array]:
    return {"tanh": jnp.tanh, "relu": jax.nn.relu}[name]


def _mlp_params(key: jax.Array, w: Workload) -> list[tuple[jax.Array, jax.Array]]:
    sizes = [math.prod(w.input_shape), *[w.width] * w.depth, w.num_classes]
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        (jax.random.normal(k, (a, b)) / jnp.sqrt(float(a)), jnp.zeros(b))
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def _bias(h: jax.Array, b: jax.Array) -> jax.Array:
    return h + b.reshape((1,) * (h.ndim - 1) + (-1,))  # explicit broadcast (strict rank promotion)


def _mlp_apply(params: list, x: jax.Array, act: Callable) -> jax.Array:
    h = x.reshape(x.shape[0], -1)
    for i, (k, b) in enumerate(params):
        h = _bias(h @ k, b)
        if i < len(params) - 1:
            h = act(h)
    return h


def _lenet_params(key: jax.Array, w: Workload) -> dict[str, Any]:
    height, _, channels = w.input_shape
    spatial = (height // 2 - 4) // 2  # 'SAME' conv1 + pool, 'VALID' conv2 + pool: 28 -> 14 -> 10 -> 5
    shapes = {
        "c1": (5, 5, channels, 6),
        "c2": (5, 5, 6, 16),
        "f1": (16 * spatial * spatial, 120),
        "f2": (120, 84),
        "f3": (84, w.num_classes),
    }
    keys = jax.random.split(key, len(shapes))
    params = {}
    for k, (name, shape) in zip(keys, shapes.items(), strict=True):
        fan_in = math.prod(shape[:-1])
        params[name] = (jax.random.normal(k, shape) / jnp.sqrt(float(fan_in)), jnp.zeros(shape[-1]))
    return params


def _conv(h: jax.Array, k: jax.Array, padding: str) -> jax.Array:
    # XLA:CPU's convolutions are slow inside loops and when batched over members; the fastest
    # hand-written form there is im2col (shifted slices, one matmul). Elsewhere: lax.conv.
    if jax.default_backend() != "cpu":
        return jax.lax.conv_general_dilated(h, k, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    kh, kw, _, out = k.shape
    if padding == "SAME":
        h = jnp.pad(h, ((0, 0), (kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2), (0, 0)))
    rows, cols = h.shape[1] - kh + 1, h.shape[2] - kw + 1
    patches = jnp.concatenate([h[:, i : i + rows, j : j + cols, :] for i in range(kh) for j in range(kw)], axis=-1)
    return patches @ k.reshape(-1, out)


def _lenet_apply(params: dict, x: jax.Array, act: Callable) -> jax.Array:
    def conv(h, kb, padding):
        k, b = kb
        return _bias(_conv(h, k, padding), b)

    def pool(h):
        return jax.lax.reduce_window(h, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4.0

    h = pool(act(conv(x, params["c1"], "SAME")))
    h = pool(act(conv(h, params["c2"], "VALID")))
    h = h.reshape(h.shape[0], -1)
    h = act(_bias(h @ params["f1"][0], params["f1"][1]))
    h = act(_bias(h @ params["f2"][0], params["f2"][1]))
    return _bias(h @ params["f3"][0], params["f3"][1])


def _model(w: Workload) -> tuple[Callable, Callable]:
    act = _act(w.activation)
    if w.model == "mlp":
        return (lambda k: _mlp_params(k, w)), (lambda p, x: _mlp_apply(p, x, act))
    return (lambda k: _lenet_params(k, w)), (lambda p, x: _lenet_apply(p, x, act))


def _loss(apply: Callable, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = apply(params, x)
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))


def handwritten(
    w: Workload, x: np.ndarray, y: np.ndarray, evaluate: tuple[np.ndarray, ...] | None = None
) -> Callable[[], Any]:
    """The hand-written ``jit(vmap(scan))``: returns a function that trains every member once.

    With ``evaluate = (x_a, y_a, x_b, y_b)``, each member also computes its mean loss and
    accuracy on both sets before the first step and after the last (the evaluations initbench's
    trainer does at step 0 and at the end), in the same program: the same work as initbench.
    """
    init, apply = _model(w)

    def measure(p: Any, xs: jax.Array, ys: jax.Array) -> jax.Array:
        logits = apply(p, xs)
        loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), ys[:, None], axis=1))
        return jnp.stack([loss, jnp.mean((jnp.argmax(logits, -1) == ys).astype(jnp.float32))])

    sets = tuple(jax.device_put(a) for a in evaluate) if evaluate is not None else ()
    n, batch = len(y), w.batch_size
    per_epoch = n // batch
    n_epochs = math.ceil(w.steps / per_epoch)

    def member(seed: jax.Array, x_all: jax.Array, y_all: jax.Array) -> jax.Array:
        key = jax.random.key(seed)
        params = init(jax.random.fold_in(key, 0))
        data_key = jax.random.fold_in(key, 1)
        orders = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(data_key, e), n))(jnp.arange(n_epochs))

        def step(p, t):
            idx = jax.lax.dynamic_slice(orders[t // per_epoch], ((t % per_epoch) * batch,), (batch,))
            loss, grads = jax.value_and_grad(lambda q: _loss(apply, q, x_all[idx], y_all[idx]))(p)
            return jax.tree_util.tree_map(lambda a, g: a - w.lr * g, p, grads), loss

        start = [measure(params, *pair) for pair in zip(sets[::2], sets[1::2], strict=True)]
        params, losses = jax.lax.scan(step, params, jnp.arange(w.steps))
        end = [measure(params, *pair) for pair in zip(sets[::2], sets[1::2], strict=True)]
        return jnp.concatenate([losses[-1:], *start, *end])

    if w.model != "mlp" and jax.default_backend() == "cpu":  # XLA:CPU: conv nets run faster one member at a time
        program = jax.jit(lambda seeds, x_all, y_all: jax.lax.map(lambda s: member(s, x_all, y_all), seeds))
    else:
        program = jax.jit(jax.vmap(member, in_axes=(0, None, None)))
    seeds = jnp.arange(w.members)
    x_dev, y_dev = jax.device_put(x), jax.device_put(y)
    return lambda: jax.block_until_ready(program(seeds, x_dev, y_dev))


def step_flops(w: Workload) -> float:
    """FLOPs of one SGD step of one member, from XLA's cost analysis of the hand-written step."""
    init, apply = _model(w)
    params = init(jax.random.key(0))
    x = jnp.zeros((w.batch_size, *w.input_shape), jnp.float32)
    y = jnp.zeros((w.batch_size,), jnp.int32)

    def step(p: Any) -> Any:
        grads = jax.grad(lambda q: _loss(apply, q, x, y))(p)
        return jax.tree_util.tree_map(lambda a, g: a - w.lr * g, p, grads)

    cost = jax.jit(step).lower(params).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost.get("flops", math.nan)) if cost else math.nan


def matmul_gflops(n: int | None = None, repeats: int = 10, dtype: Any = jnp.float32) -> float:
    """Measured matmul rate of this machine under XLA: ``2 n^3`` FLOPs per product, median.

    ``n`` defaults to 1024 on CPU and 8192 on accelerators (big enough to reach their peak).
    """
    n = n or (1024 if jax.default_backend() == "cpu" else 8192)
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    f = jax.jit(lambda a, b: a @ b)
    jax.block_until_ready(f(a, b))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a, b))
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def torch_available() -> bool:
    """Whether PyTorch can be imported (it is never a dependency of initbench)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_loop(w: Workload, x: np.ndarray, y: np.ndarray, members: int, threads: int) -> Callable[[], Any]:
    """PyTorch as people write it: ``torch.nn`` + ``torch.nn.init`` + a loop, one run after another."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[w.activation]
    xt = torch.from_numpy(np.array(x if w.model == "mlp" else np.moveaxis(x, -1, 1), copy=True))  # writable
    yt = torch.from_numpy(y.astype(np.int64))
    n, batch = len(y), w.batch_size
    per_epoch = n // batch

    def build() -> nn.Module:
        if w.model == "mlp":
            sizes = [math.prod(w.input_shape), *[w.width] * w.depth]
            layers: list[nn.Module] = [nn.Flatten()]
            for a, b in itertools.pairwise(sizes):
                layers += [nn.Linear(a, b), act()]
            layers.append(nn.Linear(sizes[-1], w.num_classes))
            net = nn.Sequential(*layers)
        else:
            spatial = (w.input_shape[0] // 2 - 4) // 2
            net = nn.Sequential(
                nn.Conv2d(w.input_shape[-1], 6, 5, padding=2),
                act(),
                nn.AvgPool2d(2),
                nn.Conv2d(6, 16, 5),
                act(),
                nn.AvgPool2d(2),
                nn.Flatten(),
                nn.Linear(16 * spatial * spatial, 120),
                act(),
                nn.Linear(120, 84),
                act(),
                nn.Linear(84, w.num_classes),
            )
        for m in net.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="linear")  # LeCun normal, as the other contenders
                nn.init.zeros_(m.bias)
        return net

    def run() -> float:
        loss = torch.zeros(())
        for seed in range(members):
            torch.manual_seed(seed)
            net = build()
            opt = torch.optim.SGD(net.parameters(), lr=w.lr)
            generator = torch.Generator().manual_seed(seed)
            order = torch.randperm(n, generator=generator)
            for t in range(w.steps):
                if t and t % per_epoch == 0:
                    order = torch.randperm(n, generator=generator)
                idx = order[(t % per_epoch) * batch : (t % per_epoch + 1) * batch]
                opt.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
        return float(loss.detach())

    return run
