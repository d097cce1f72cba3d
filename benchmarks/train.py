"""The cohort trainer: one ``jit(vmap(scan))`` program trains every member of a cohort.

A cohort is a set of runs that share a compiled shape (model, data, ``TrainSpec.program``:
optimizer and its arguments, schedule, steps); its members differ in initialization, seed and
the optimizer's hyper-parameters (learning rate, momentum, weight decay, clipping norm:
``spec.HYPER_PARAMETERS``; per-parameter multipliers ``lr_scale`` and ``wd_scale``; the
divergence factor), which each member carries as data in its training state, so a
learning-rate sweep is one program. Members sharing an initializer are initialized by one
vmapped call, each bitwise the weights its run alone gets (:func:`initial_stack`); the
members' variables are stacked on a leading axis that is sharded over the devices, and every
``eval_every`` steps one compiled segment (``lax.scan`` over steps, ``vmap`` over members)
runs, followed by the evaluation. Data are device arrays passed as arguments, the training
state buffers are donated, and a member whose loss turns non-finite or exceeds its divergence
bound is recorded as diverged at that step without disturbing the others. Running out of
device memory is one line naming the width that fits (:class:`OutOfMemory`).
"""

from __future__ import annotations

import collections
import hashlib
import math
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from initbench import models
from initbench.benchmarks import checkpoint as ckpt
from initbench.benchmarks.data import Dataset
from initbench.benchmarks.groups import lr_scale_tree
from initbench.benchmarks.paths import host_memory
from initbench.benchmarks.spec import EPS_OPTIMIZERS, HYPER_PARAMETERS, NUMERICS_VERSION, RunSpec, TrainSpec
from initbench.inits.errors import UsageError, first_line, positive_int

EVAL_BATCH = 1024
Progress = Callable[[int, str], None]
Probe = Callable[[dict[str, Any]], dict[str, Any]]  # one member's variables -> {metric: scalar or {layer: scalar}}


def build_model(spec: RunSpec, dataset: Dataset) -> Any:
    """The Flax module of a run, with its initializers and architecture (its scheme's fields, the depth rule's).

    A plug-in family (``package.module:attribute``) is the user's linen module behind the same
    ``init``/``apply`` (:mod:`initbench.benchmarks.plugin_model`).
    """
    from initbench.benchmarks import plugin_model
    from initbench.inits.registry import is_plugin

    build = plugin_model.build if is_plugin(spec.model.family) else models.build
    return build(
        spec.model.family,
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
        kernel_init=spec.init.kernel(),
        bias_init=spec.init.bias_init(),
        **dict(spec.architecture),
    )


def scheme_init(spec: RunSpec, dataset: Dataset, *, record: bool = False) -> Callable[..., Any]:
    """A run's pure initialization ``f(init_key, x, y) -> variables``: ``model.init``, then its scheme.

    With ``record``, ``f`` returns ``(variables before the scheme, after it, the scheme's record)``
    (the record must then be arrays to leave a ``jit``: MetaInit's and GradInit's are).

    A model-level scheme (``spec.init.scheme``) gets the training set (data schemes: shuffled by
    ``fold_in(init_key, 1)``, so any rows it takes are a seeded draw; the others: the first
    ``batch_size`` rows, whose shape is all they read), the labels if it reads them, a key
    ``fold_in(init_key, 2)`` if it draws randomness of its own, and the init's arguments over
    the registry's ``run_options``. ``x``/``y`` are arguments, not constants of the program.

    ``spec.init.scale`` and the parametrization's init multipliers (``spec.scale_rules``)
    multiply the drawn parameters (per-tensor initializers only): each
    parameter by the product of its selected multipliers (``groups.lr_scale_tree``), those with
    none left untouched, so their bits are the plain init's.
    """
    model = build_model(spec, dataset)
    example = np.zeros((1, *dataset.input_shape), np.float32)  # numpy: a constant of every trace, never a tracer
    scheme = spec.init.scheme
    rules = spec.scale_rules("init_scale")

    def init(key: jax.Array, x: jax.Array, y: jax.Array) -> dict[str, Any]:
        variables = model.init(key, example)
        variables = {k: v for k, v in variables.items() if k != "intermediates"}
        if rules:
            scales = lr_scale_tree(variables["params"], rules, spec.model.label, field="init_scale")
            variables["params"] = jax.tree_util.tree_map(
                lambda p, m: p if m == 1.0 else p * jnp.asarray(m, p.dtype), variables["params"], scales
            )
        if scheme is None:
            return (variables, variables, {}) if record else variables
        if scheme.data:
            order = jax.random.permutation(jax.random.fold_in(key, 1), x.shape[0])
            x, y = x[order], y[order]
        else:
            x = x[: spec.data.batch_size]
        options = {**dict(scheme.run_options), **spec.init.scheme_options()}
        after, notes = scheme.apply(model, variables, x, key=jax.random.fold_in(key, 2), labels=y, options=options)
        return (variables, after, notes) if record else after

    return init


def init_data(spec: RunSpec, dataset: Dataset) -> tuple[jax.Array, jax.Array]:
    """What :func:`scheme_init` reads of the dataset: the training set (empty arrays without a scheme).

    Device copies are kept per dataset object (one transfer per dataset, not per member); the
    entry holds the dataset, so its ``id`` cannot be reused while cached.
    """
    if spec.init.scheme is None:
        return jnp.zeros((0, *dataset.input_shape), jnp.float32), jnp.zeros((0,), jnp.int32)

    def put() -> tuple[Dataset, jax.Array, jax.Array]:
        with jax.ensure_compile_time_eval():  # concrete even when first asked inside a trace (eval_shape)
            return dataset, jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)

    entry = _DEVICE_DATA.get(id(dataset), put)
    return entry[1], entry[2]


def make_optimizer(
    train: TrainSpec, hyper: Mapping[str, Any] | None = None, *, params: Any = None
) -> optax.GradientTransformation:
    """The optax optimizer of a TrainSpec: clipping, weight decay, the optimizer, schedule, per-parameter rates.

    The chain (:mod:`initbench.benchmarks.optimizers`): ``clip_by_global_norm`` (``clip_norm >
    0``), coupled weight decay, the optimizer's direction with its ``optimizer_args``, decoupled
    weight decay, ``scale_by_learning_rate`` with the schedule, then each parameter's ``lr_scale``
    multiplier (:func:`initbench.benchmarks.groups.lr_scale_tree`): a per-parameter learning rate
    for every optimizer (decoupled decay is scaled with it, as AdamW's is with ``lr``). The decay
    of parameter ``p`` is ``weight_decay x wd_scale(p) x p``.

    Args:
      train: The optimizer, its arguments, schedule and step count (``train.program``: what shapes
        the state).
      hyper: The values of ``HYPER_PARAMETERS`` (``lr``, ``momentum``, ``weight_decay``,
        ``clip_norm``) as numbers or 0-d arrays, and optionally ``lr_scale``/``wd_scale``, trees
        like the parameters of multipliers (default: ``train``'s own). The trainer passes one
        member's traced values, so members that differ only in them share a program; the state's
        structure never depends on them.
      params: The parameters (or their shapes), needed to expand ``train.lr_scale``/``wd_scale``
        when ``hyper`` is not given.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = make_optimizer(TrainSpec(optimizer="adamw", lr=1e-3, weight_decay=0.1))
      >>> p = {"w": jnp.ones(2)}
      >>> updates, _ = tx.update({"w": jnp.zeros(2)}, tx.init(p), p)  # a zero gradient: decay only
      >>> [round(float(u), 6) for u in updates["w"]]  # -lr x weight_decay x p
      [-0.0001, -0.0001]
    """
    from initbench.benchmarks import optimizers

    train.validate()  # every value, one line each: this builds what the spec says or nothing
    h: Mapping[str, Any]
    if hyper is None:
        h = train.hyper()
        for name in ("lr_scale", "wd_scale", "eps_scale"):
            rules = getattr(train, name)
            if rules:
                if params is None:
                    raise ValueError(f"make_optimizer: train.{name} needs the parameters (params=) to expand its rules")
                h = {**h, name: lr_scale_tree(params, rules, field=name)}
    else:
        h = hyper
    peak = h["lr"]
    warmup = train.warmup
    if train.schedule == "constant" and warmup == 0:
        lr: Any = peak
    else:
        # the schedule's shape at peak 1, times this member's peak (optax's warm-up schedule
        # branches on its peak in Python, so a traced peak cannot enter it)
        if train.schedule == "constant":
            shape = optax.linear_schedule(0.0, 1.0, warmup)  # then 1 from step `warmup` on
        elif warmup == 0:
            shape = optax.cosine_decay_schedule(1.0, train.steps)
        else:
            shape = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, train.steps)

        def lr(count: jax.Array) -> jax.Array:
            # optax mixes its int32 step count with Python floats, which strict dtype promotion refuses;
            # the count as float32 gives bitwise the same rates (checked over 1,200 steps)
            return peak * shape(count.astype(jnp.float32))

    entry = optimizers.get(train.optimizer)
    decay = _decay(h["weight_decay"], h.get("wd_scale")) if train.weight_decay > 0 else None
    parts: list[optax.GradientTransformation] = []
    if train.clip_norm > 0:  # structural (train.program); the norm is data
        parts.append(optax.clip_by_global_norm(h["clip_norm"]))
    if decay is not None and entry.decay == "coupled":
        parts.append(decay)
    if "eps_scale" in h and train.optimizer in EPS_OPTIMIZERS:
        # Adam with epsilon eps x s is Adam fed the gradient / s (u = m/(sqrt(v) + eps) is otherwise
        # invariant to the gradient's scale); s = 1 divides exactly: the plain optimizer bitwise
        parts.append(_divide_per_parameter(h["eps_scale"]))
    if entry.direction is not None:
        kwargs = optimizers.kwargs(train.optimizer, train.optimizer_args)
        if entry.momentum:
            kwargs["decay"] = h["momentum"]
        factory = DIRECTIONS.get(entry.direction) or getattr(optax, entry.direction)
        parts.append(_standard_promotion(factory(**kwargs)))
        if entry.descends:
            parts.append(optax.scale(-1.0))  # back to the ascent direction (an exact sign flip)
    if decay is not None and entry.decay == "decoupled":
        parts.append(decay)
    parts.append(optax.scale_by_learning_rate(lr))
    tx = optax.chain(*parts)
    if "lr_scale" in h:
        tx = optax.chain(tx, _scale_per_parameter(h["lr_scale"]))
    return tx


def scale_by_adam_atan2(
    b1: float = 0.9, b2: float = 0.999, a: float = 1.27, b: float = 1.0
) -> optax.GradientTransformation:
    r"""Adam-atan2's direction (Everett et al. 2024, "Scaling Exponents Across Parameterizations and Optimizers").

    Adam's moments and bias corrections, with the division by :math:`\sqrt{\hat v} + \epsilon`
    replaced by

    .. math:: u = a \operatorname{atan2}(\hat m, b \sqrt{\hat v}),

    which has no epsilon and is invariant to the gradient's scale (:math:`g \to c g`, :math:`c > 0`,
    gives the same update), so per-layer gradient scales that shrink with width cannot fall under an
    epsilon ("epsilon underflow"). Where :math:`|\hat m| \ll b \sqrt{\hat v}` it is Adam's
    update times :math:`a/b`; it is bounded by :math:`a \pi / 2`. Defaults ``a = 1.27``, ``b = 1``
    as in lucidrains' adam-atan2-pytorch (muGPT's JAX loop uses ``a = b = 1``; the paper's appendix C.5
    tunes both).

    Example:
      >>> import jax.numpy as jnp
      >>> tx = scale_by_adam_atan2()
      >>> g = {"w": jnp.array([1e-12, -3.0])}
      >>> u, _ = tx.update(g, tx.init(g))
      >>> [round(float(v), 4) for v in u["w"]]  # first step: a atan2(g, |g|) = +-a pi/4 at any scale
      [0.9975, -0.9975]
    """
    adam = optax.scale_by_adam(b1=b1, b2=b2, eps=0.0)  # its moments and bias corrections; the update below

    def init(params: Any) -> Any:
        return adam.init(params)

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        mu = optax.tree_utils.tree_update_moment(updates, state.mu, b1, 1)
        nu = optax.tree_utils.tree_update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = optax.safe_increment(state.count)

        def direction(m: jax.Array, v: jax.Array) -> jax.Array:
            # bias corrections 1 - beta^t in the moment's dtype (beta may be a Python float or a
            # traced per-member array; the count is int32): no implicit promotion
            t = count.astype(m.dtype)
            m_hat = m / (1 - jnp.asarray(b1, m.dtype) ** t)
            v_hat = v / (1 - jnp.asarray(b2, v.dtype) ** t)
            return jnp.asarray(a, m.dtype) * jnp.arctan2(m_hat, jnp.asarray(b, v.dtype) * jnp.sqrt(v_hat))

        out = jax.tree_util.tree_map(direction, mu, nu)
        return out, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


# initbench's own optimizer directions (the rest are optax's factories by name)
DIRECTIONS: dict[str, Callable[..., optax.GradientTransformation]] = {"scale_by_adam_atan2": scale_by_adam_atan2}


def _decay(rate: Any, scales: Any) -> optax.GradientTransformation:
    """Adds ``rate x scale x p`` to each parameter's update (optax's ``add_decayed_weights`` without scales)."""
    if scales is None:
        return optax.add_decayed_weights(rate)

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        if params is None:
            raise ValueError("weight decay needs the parameters: call update(grads, state, params)")
        return jax.tree_util.tree_map(lambda u, p, s: u + (rate * s) * p, updates, params, scales), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _scale_per_parameter(scales: Any) -> optax.GradientTransformation:
    """Multiplies each parameter's update by its entry of ``scales`` (a tree like the parameters)."""

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        return jax.tree_util.tree_map(lambda u, m: u * m, updates, scales), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _divide_per_parameter(scales: Any) -> optax.GradientTransformation:
    """Divides each parameter's update by its entry of ``scales`` (a tree like the parameters)."""

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        return jax.tree_util.tree_map(lambda u, s: u / jnp.asarray(s, u.dtype), updates, scales), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _standard_promotion(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` with its update traced under JAX's standard dtype promotion.

    optax's Adam bias correction raises a Python float to its int32 step count, which strict
    promotion (the test suite's, and a user's ``jax_numpy_dtype_promotion="strict"``) refuses;
    standard promotion computes it in float32, as an unconfigured JAX does.
    """

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        with jax.numpy_dtype_promotion("standard"):
            return tx.update(updates, state, params)

    return optax.GradientTransformation(tx.init, update)


def member_hyper(specs: Sequence[RunSpec], params: Any, dtype: Any = jnp.float32) -> dict[str, Any]:
    """Each run's optimizer data, stacked over the runs: ``HYPER_PARAMETERS``, ``lr_scale``, ``wd_scale``.

    ``lr_scale`` and ``wd_scale`` are trees like one member's ``params`` (arrays or shapes) of
    per-run multipliers (all ones for a run without rules: ``x * 1`` is exact); ``eps_scale`` too
    for runs that scale Adam's epsilon (``RunSpec.scales_eps``, part of the cohort key: every
    member of a cohort agrees).
    """
    out: dict[str, Any] = {
        name: jnp.asarray([s.train.hyper()[name] for s in specs], dtype) for name in HYPER_PARAMETERS
    }
    names = ("lr_scale", "wd_scale") + (("eps_scale",) if specs and specs[0].scales_eps else ())
    for name in names:
        keys = [(s.scale_rules(name), s.model.label) for s in specs]
        # one tree per distinct rule set: the members of a cohort mostly share theirs
        trees = {k: lr_scale_tree(params, k[0], k[1], field=name) for k in dict.fromkeys(keys)}
        out[name] = jax.tree_util.tree_map(lambda *m: jnp.asarray(m, dtype), *(trees[k] for k in keys))
    return out


def run_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """``(init_key, data_key)`` of a seed: the same seed gives the same weights and data order."""
    key = jax.random.key(seed)
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


# Every member's data key in one compiled call (bitwise run_keys(seed)[1]): per-member eager calls
# cost 0.41 s for 256 members on an H200, more than 1000 training steps of the small MLP.
_data_keys = jax.jit(jax.vmap(lambda seed: run_keys(seed)[1]))
_init_keys = jax.jit(jax.vmap(lambda seed: run_keys(seed)[0]))


class _LRU:
    """A small least-recently-used cache of compiled functions (bounded: one process may run many shapes)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
        else:
            self._items[key] = make()
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return self._items[key]

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()


# Compiled init functions and cohort programs, reused across cohorts of one shape. They never
# change results; the bound keeps a long grid of distinct shapes from holding every program.
_INIT_CACHE = _LRU(64)
_DEVICE_DATA = _LRU(4)  # id(dataset) -> (dataset, x_train, y_train) on the device, for model-level schemes
_PROGRAM_CACHE = _LRU(16)
_BATCHED_INIT_CACHE = _LRU(64)  # vmapped init programs (one per init group; the member count is a shape)


def clear_caches() -> None:
    """Drops the compiled init functions, cohort programs and device copies of data this process keeps."""
    _INIT_CACHE.clear()
    _BATCHED_INIT_CACHE.clear()
    _PROGRAM_CACHE.clear()
    _DEVICE_DATA.clear()


class TrainState(NamedTuple):
    """The scan carry of one member (stacked over members in a cohort).

    Attributes:
      params: Model parameters.
      model_state: Non-parameter collections (batch statistics); empty for most models.
      opt_state: The optimizer's state.
      data_key: The member's data-order key (its seed's second key).
      diverged_at: First step whose minibatch loss was non-finite, -1 before (the bound on the
        evaluated loss is checked at evaluations, on the host: :func:`_train_chunk`).
      grad_norm_sum: Sum of gradient global norms over the current segment.
      layer_grad_sum: With ``TrainSpec.layer_records``, per layer (:func:`layer_norms`' keys) the
        sum of its kernel gradient's norms over the current segment; empty otherwise.
      hyper: The member's optimizer data, read by every update (not constants of the program):
        ``HYPER_PARAMETERS`` -> 0-d arrays, and ``lr_scale`` -> a tree like ``params`` of
        per-parameter multipliers (:func:`member_hyper`).
    """

    params: Any
    model_state: Any
    opt_state: Any
    data_key: jax.Array
    diverged_at: jax.Array
    grad_norm_sum: jax.Array
    hyper: dict[str, jax.Array]
    layer_grad_sum: dict[str, jax.Array]


def _init_key(spec: RunSpec, dataset: Dataset) -> tuple:
    # the program depends on the data only through its shapes (arguments), and on the batch size
    # where a scheme reads a batch-shaped template (MetaInit)
    return (
        spec.model,
        spec.init,
        spec.scale_rules("init_scale"),  # a parametrization's init multipliers (width-dependent)
        dataset.name,
        dataset.input_shape,
        dataset.num_classes,
        spec.data.batch_size if spec.init.scheme is not None else None,
    )


def initial_variables(spec: RunSpec, dataset: Dataset) -> dict[str, Any]:
    """A run's initial variables (params and batch statistics), as a run alone gets them."""
    jitted = _INIT_CACHE.get(_init_key(spec, dataset), lambda: jax.jit(scheme_init(spec, dataset)))
    return jitted(run_keys(spec.seed)[0], *init_data(spec, dataset))


# Initializers whose draw goes through a QR decomposition: batched QR may take another algorithm
# than one matrix at a time (cuSOLVER's batched geqrf), so their members are initialized one call
# each. Every other per-tensor initializer is elementwise on counter-based random bits, so a
# vmapped call gives each member bitwise its own call's weights (tested over the whole registry).
_QR_INITS = frozenset({"orthogonal", "delta_orthogonal"})


def batched_init(spec: RunSpec) -> bool:
    """Whether members with ``spec``'s init are initialized by one vmapped call (bitwise as alone).

    Per-tensor initializers: yes, except those drawn through a QR decomposition. Model-level
    schemes: no (their matmuls and loops batched may round differently; GradInit's do on CPU).
    """
    if spec.init.scheme is not None:
        return False
    return spec.init.name not in _QR_INITS and spec.init.bias not in _QR_INITS


def initial_stack(specs: Sequence[RunSpec], dataset: Dataset, slots: Sequence[int] | None = None) -> Any:
    """The initial variables of ``specs`` stacked on a leading axis (zeros outside ``slots``).

    Members sharing a model and init (one ``initial_variables`` program) are initialized by one
    vmapped call over their keys where :func:`batched_init` allows, each bitwise as alone; the
    rest one call each. ``slots``: the indices to initialize (default: all; a multi-process job
    initializes only its own devices' members).
    """
    slots = range(len(specs)) if slots is None else sorted(slots)
    groups: dict[Any, list[int]] = {}
    for i in slots:
        groups.setdefault(_init_key(specs[i], dataset) if batched_init(specs[i]) else ("one", i), []).append(i)
    parts: list[tuple[list[int], Any]] = []
    for key, members in groups.items():
        first = specs[members[0]]
        if key[0] == "one":
            parts.append((members, _stack([initial_variables(first, dataset)])))
            continue
        init = _BATCHED_INIT_CACHE.get(key, lambda s=first: jax.jit(jax.vmap(scheme_init(s, dataset), (0, None, None))))
        seeds = jnp.asarray([specs[i].seed for i in members], jnp.uint32)
        parts.append((members, init(_init_keys(seeds), *init_data(first, dataset))))
    if len(parts) == 1 and parts[0][0] == list(range(len(specs))):
        return parts[0][1]
    order = [i for members, _ in parts for i in members]
    joined = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *(tree for _, tree in parts))
    if len(order) == len(specs):  # every slot: a permutation
        where = np.empty(len(specs), np.int32)
        where[np.asarray(order)] = np.arange(len(order))
        return jax.tree_util.tree_map(lambda a: a[where], joined)
    index = jnp.asarray(order, jnp.int32)
    return jax.tree_util.tree_map(lambda a: jnp.zeros((len(specs), *a.shape[1:]), a.dtype).at[index].set(a), joined)


def batch_indices(data_key: jax.Array, steps: jax.Array, *, n_train: int, batch_size: int) -> jax.Array:
    """The training examples of each step: ``(len(steps), batch_size)`` indices.

    Data order is a pure function of (seed, epoch): epoch ``e`` visits the training set in the
    order ``permutation(fold_in(data_key, e), n_train)``, ``batch_size`` examples per step, the
    remainder dropped. ``steps`` must be consecutive. This is the order's definition (tests and
    reference loops use it); the trainer draws the same permutations lazily, one per epoch its
    loop reaches.
    """
    steps_per_epoch = n_train // batch_size
    n_epochs = min(steps.shape[0] // steps_per_epoch + 2, steps.shape[0])
    first = steps[0] // steps_per_epoch
    epochs = first + jnp.arange(n_epochs, dtype=steps.dtype)
    orders = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(data_key, e), n_train))(epochs)
    offsets = jnp.arange(batch_size, dtype=steps.dtype)[None, :]
    positions = (steps % steps_per_epoch)[:, None] * batch_size + offsets
    return orders[(steps // steps_per_epoch - first)[:, None], positions]


@dataclass(frozen=True)
class _Program:
    """The compiled pieces of one cohort."""

    segment: Callable
    evaluate: Callable
    init_opt: Callable  # (stacked params, per-member hyper) -> stacked optimizer states
    layer_norms: Callable  # stacked params -> {layer: per-member kernel norms}


MemberMap = Literal["vmap", "map"]


def default_member_map(spec: RunSpec) -> MemberMap:
    """How a cohort's members share a device: ``vmap`` (batched), or ``map`` (one after another).

    ``map`` for convolutional families on CPU, ``vmap`` otherwise. Measured on 2 CPU cores,
    LeNet-5 on 28x28 inputs, batch 128, 8 members: vmap 50 run-steps/s, lax.map 117 (XLA:CPU's
    member-batched convolution matmuls are slower than one member at a time), while the small
    MLP gains from batching small matmuls. Both are one compiled program per segment.
    """
    return "map" if jax.default_backend() == "cpu" and spec.model.family != "mlp" else "vmap"


def _make_program(
    model: Any, train: TrainSpec, batch_size: int, n_train: int, member_map: MemberMap, mesh: Mesh
) -> _Program:
    def apply(params, state, x, train):
        variables = {"params": params, **state}
        if train and state:
            logits, new_state = model.apply(variables, x, train=True, mutable=list(state))
            return logits, new_state
        return model.apply(variables, x, train=train), state

    smoothing = train.label_smoothing
    records = train.layer_records

    def loss_fn(params, state, x, y):
        logits, new_state = apply(params, state, x, True)
        if smoothing:  # structural (train.program)
            targets = optax.smooth_labels(jax.nn.one_hot(y, logits.shape[-1], dtype=logits.dtype), smoothing)
            loss = optax.softmax_cross_entropy(logits, targets).mean()
        else:
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, (logits, new_state)

    per_epoch = n_train // batch_size

    def member_segment(carry: TrainState, x_train, y_train, steps) -> TrainState:
        # the data order of batch_indices, one permutation per epoch the segment visits: the
        # first step's epoch up front, the next one at each epoch boundary inside the loop (the
        # condition reads only the step, never a member's data, so under vmap it stays a branch;
        # a static bound on the epochs would sort one more permutation per segment, which is
        # as costly as the training itself for short segments)
        def order_of(epoch):
            return jax.random.permutation(jax.random.fold_in(carry.data_key, epoch), n_train)

        def body(c_and_order, step):
            c, order = c_and_order
            order = jax.lax.cond(
                (step % per_epoch == 0) & (step != steps[0]), lambda: order_of(step // per_epoch), lambda: order
            )
            idx = jax.lax.dynamic_slice(order, ((step % per_epoch) * batch_size,), (batch_size,))
            (loss, (_, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                c.params, c.model_state, x_train[idx], y_train[idx]
            )
            tx = make_optimizer(train, c.hyper)  # this member's rates, traced: one program for every rate
            updates, opt_state = tx.update(grads, c.opt_state, c.params)
            c = c._replace(
                params=optax.apply_updates(c.params, updates),
                model_state=model_state,
                opt_state=opt_state,
                diverged_at=jnp.where((c.diverged_at < 0) & ~jnp.isfinite(loss), step, c.diverged_at),
                grad_norm_sum=c.grad_norm_sum + _global_norm(grads),
                layer_grad_sum=({k: c.layer_grad_sum[k] + v for k, v in layer_norms(grads).items()} if records else {}),
            )
            return (c, order), None

        (carry, _), _ = jax.lax.scan(body, (carry, order_of(steps[0] // per_epoch)), steps)
        return carry

    def member_evaluate(params, state, xs, ys, mask):
        # xs: (n_batches, EVAL_BATCH, ...); padded examples have mask 0
        def one(batch):
            x, y, m = batch
            logits, _ = apply(params, state, x, False)
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            correct = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
            return jnp.sum(losses * m), jnp.sum(correct * m)

        loss_sum, correct_sum = jax.lax.map(one, (xs, ys, mask))
        n = jnp.sum(mask)
        return jnp.sum(loss_sum) / n, jnp.sum(correct_sum) / n

    if member_map == "vmap":
        members_segment = jax.vmap(member_segment, in_axes=(0, None, None, None))
    else:
        # each device runs its own block of members one after another (no batching over members)
        def on_device(carry: TrainState, x_train, y_train, steps) -> TrainState:
            return jax.lax.map(lambda member: member_segment(member, x_train, y_train, steps), carry)

        members_segment = jax.shard_map(
            on_device, mesh=mesh, in_specs=(P("members"), P(), P(), P()), out_specs=P("members"), check_vma=False
        )

    segment = jax.jit(members_segment, donate_argnums=(0,))
    evaluate = jax.jit(jax.vmap(member_evaluate, in_axes=(0, 0, None, None, None)))
    init_opt = jax.jit(jax.vmap(lambda params, hyper: make_optimizer(train, hyper).init(params)))
    return _Program(segment, evaluate, init_opt, jax.jit(jax.vmap(layer_norms)))


def layer_norms(params: Any) -> dict[str, jax.Array]:
    """The Frobenius norm of every layer's kernel, keyed by the layer's module path (``head/dense``).

    A layer is a module owning a ``kernel`` (or ``embedding``). A scanned stack's kernel (a
    leading layer axis) gives one norm per layer under its unscanned name
    (``models.catalog.unstacked_path``: ``stack_001/layer/dense`` -> ``layer_001/dense``,
    ``layer_002/dense``, ...; ``blocks_01/block/conv_a/conv`` -> ``block_01/conv_a/conv``, ...).

    Example:
      >>> import jax.numpy as jnp
      >>> norms = layer_norms({"layer_000": {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}})
      >>> {k: float(v) for k, v in norms.items()}
      {'layer_000/dense': 2.0}
    """
    from initbench.benchmarks.groups import param_path
    from initbench.models.catalog import unstacked_path

    out: dict[str, jax.Array] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        parts = param_path(path).split("/")
        if parts[-1] not in ("kernel", "embedding"):
            continue
        if unstacked_path(parts[:-1], 0) is None:
            out["/".join(parts[:-1])] = jnp.sqrt(jnp.sum(jnp.square(leaf)))
            continue
        norms = jnp.sqrt(jnp.sum(jnp.square(leaf), axis=tuple(range(1, leaf.ndim))))
        for j in range(leaf.shape[0]):
            out["/".join(unstacked_path(parts[:-1], j) or ())] = norms[j]
    return out


def _global_norm(tree: Any) -> jax.Array:
    # optax renamed global_norm to tree.norm; this works on every version
    return jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(tree)))


def _eval_batches(x: np.ndarray, y: np.ndarray, cap: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(y) if cap is None else min(cap, len(y))
    size = min(EVAL_BATCH, n)
    n_batches = math.ceil(n / size)
    pad = n_batches * size - n
    xs = np.concatenate([x[:n], np.zeros((pad, *x.shape[1:]), x.dtype)]).reshape(n_batches, size, *x.shape[1:])
    ys = np.concatenate([y[:n], np.zeros(pad, y.dtype)]).reshape(n_batches, size)
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)]).reshape(n_batches, size)
    return xs, ys, mask


def _tree_bytes(tree: Any) -> int:
    return sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(tree))


def member_bytes(spec: RunSpec, dataset: Dataset) -> int:
    """Estimated device memory of one member: weights, gradients, optimizer state, activations."""
    model = build_model(spec, dataset)
    x = jax.ShapeDtypeStruct((spec.data.batch_size, *dataset.input_shape), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *dataset.input_shape))))
    _, state = jax.eval_shape(lambda v, x: model.apply(v, x, mutable=["intermediates"]), variables, x)
    params = _tree_bytes(variables["params"])
    from initbench.benchmarks.optimizers import get

    slots = get(spec.train.optimizer).slots
    # forward activations kept for the backward pass, plus their gradients and temporaries
    activations = 3 * _tree_bytes(state.get("intermediates", {}))
    return params * (3 + slots) + activations


def memory_budget(devices: Sequence[jax.Device]) -> int:
    """Bytes one device may spend on cohort members (half of its memory; a quarter of host RAM on CPU).

    Judged from this process's own devices (another host's cannot be queried); a multi-process
    job takes the minimum over processes (:func:`initbench.benchmarks.distributed.min_over_processes`).
    """
    local = [d for d in devices if d.process_index == jax.process_index()] or list(devices)
    stats = local[0].memory_stats() if local[0].platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] * 0.5)
    return int(host_memory() * 0.25 / max(1, len(local)))


def members_per_device(
    cohort_size: int, per_member: int, devices: Sequence[jax.Device], max_members: int | None = None
) -> int:
    """The chunk width ``W``: members each device trains at once, fixed for a whole cohort.

    ``W = min(ceil(cohort_size / devices), what fits the memory budget, max_members / devices)``,
    at least 1. ``cohort_size`` is the cohort's size in the *full plan* (the experiment before
    any filter or resume), so a subset, a resume or a rerun trains every member in a program of
    the same shape, and a member's numbers are bitwise those of the full run.
    """
    n_dev = len(devices)
    fit = max(1, memory_budget(devices) // max(1, per_member))
    width = min(math.ceil(cohort_size / n_dev), fit)
    if max_members is not None:
        width = min(width, max(1, max_members // n_dev))
    return max(1, width)


def _is_oom(err: Exception) -> bool:
    return "RESOURCE_EXHAUSTED" in str(err) or "Out of memory" in str(err)


class OutOfMemory(UsageError):
    """A cohort's chunk did not fit in device memory; the message names how many members per device fit."""


def _device_limit(device: jax.Device) -> int:
    """Bytes of memory a device has (its allocator's limit; on CPU, the host's RAM)."""
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    return host_memory()


def segment_bytes(spec: RunSpec, dataset: Dataset, program: _Program, members: int, mesh: Mesh) -> int:
    """Device bytes of one training segment of ``members`` members (XLA's compiled memory analysis).

    Arguments, outputs and temporaries of the compiled segment per device, minus the donated
    buffers it reuses; from an abstract lowering (no memory is allocated).
    """
    sharded, replicated = NamedSharding(mesh, P("members")), NamedSharding(mesh, P())
    init = scheme_init(spec, dataset)
    x, y = init_data(spec, dataset)
    variables = jax.eval_shape(init, run_keys(spec.seed)[0], x, y)
    params = variables["params"]
    dtype = jax.tree_util.tree_leaves(params)[0].dtype

    def stacked(tree: Any, sharding: NamedSharding = sharded) -> Any:
        return jax.tree_util.tree_map(
            lambda a: jax.ShapeDtypeStruct((members, *a.shape), a.dtype, sharding=sharding), tree
        )

    hyper = jax.eval_shape(lambda: member_hyper([spec] * members, params, dtype))
    hyper = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharded), hyper)
    opt_state = jax.eval_shape(program.init_opt, stacked(params), hyper)
    keys = jax.eval_shape(_data_keys, jax.ShapeDtypeStruct((members,), jnp.uint32))
    per_member = jax.ShapeDtypeStruct((members,), jnp.float32, sharding=sharded)
    carry = TrainState(
        stacked(params),
        stacked({k: v for k, v in variables.items() if k != "params"}),
        jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharded), opt_state),
        jax.ShapeDtypeStruct(keys.shape, keys.dtype, sharding=sharded),
        jax.ShapeDtypeStruct((members,), jnp.int32, sharding=sharded),
        per_member,
        hyper,
        {k: per_member for k in jax.eval_shape(layer_norms, params)} if spec.train.layer_records else {},
    )
    n = len(dataset.y_train)
    data = (
        jax.ShapeDtypeStruct((n, *dataset.input_shape), jnp.float32, sharding=replicated),
        jax.ShapeDtypeStruct((n,), jnp.int32, sharding=replicated),
    )
    length = min(spec.train.eval_every, spec.train.steps)
    steps = jax.ShapeDtypeStruct((length,), jnp.int32, sharding=replicated)
    stats = program.segment.lower(carry, *data, steps).compile().memory_analysis()
    return int(
        stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes - stats.alias_size_in_bytes
    )


def _out_of_memory(
    spec: RunSpec, dataset: Dataset, program: _Program, width: int, devices: Sequence[jax.Device], mesh: Mesh
) -> OutOfMemory:
    """The one-line error of a chunk that ran out of memory, with the width that fits (measured)."""
    n_dev = len(devices)
    device = devices[0]
    limit = _device_limit(device)
    members = f"{width} member{'s' if width != 1 else ''}"
    what = (
        f"out of memory: {members} per device of {spec.model.label} {spec.model.activation} "
        f"(batch {spec.data.batch_size}) do not fit on {device.device_kind} ({limit / 2**30:.1f} GiB)"
    )
    try:
        one, two = (segment_bytes(spec, dataset, program, w * n_dev, mesh) for w in (1, 2))
    except Exception:  # the analysis is advice; without it, say what to try
        return OutOfMemory(f"{what}: rerun with --max-members {max(1, width // 2) * n_dev} or a smaller batch_size")
    member = max(1, two - one)
    fit = int((0.9 * limit - (one - member)) // member)  # a 10% margin for the allocator
    if fit < 1 or width == 1:
        return OutOfMemory(
            f"{what}: one member's training segment takes {one / 2**20:.0f} MiB; reduce batch_size or the model"
        )
    fit = min(fit, width - 1)
    return OutOfMemory(
        f"{what}: the training segment takes {(one - member) / 2**20:.0f} MiB plus {member / 2**20:.1f} MiB per "
        f"member, so {fit} per device fit: rerun with --max-members {fit * n_dev}"
    )


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _put(tree: Any, sharding: NamedSharding) -> Any:
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    # multi-process: every process holds the same full host value; each local device takes its shard
    return jax.tree_util.tree_map(lambda x: _put_global(x, sharding), tree)


def _put_global(x: Any, sharding: NamedSharding) -> jax.Array:
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        # typed keys have no host form: move their raw data and wrap it again on the devices
        data = _put_global(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def _local_slots(sharding: NamedSharding, members: int) -> set[int]:
    """Indices of the members that this process's devices hold."""
    slots: set[int] = set()
    for index in sharding.addressable_devices_indices_map((members,)).values():
        slots.update(range(members)[index[0]])
    return slots


def _gather(tree: Any) -> Any:
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def train_cohort(
    specs: Sequence[RunSpec],
    dataset: Dataset,
    *,
    devices: Sequence[jax.Device] | None = None,
    max_members: int | None = None,
    width: int | None = None,
    member_map: MemberMap | None = None,
    progress: Progress | None = None,
    keep_variables: bool = False,
    probe: Probe | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every_s: float = 60.0,
) -> Iterator[tuple[pd.DataFrame, dict[str, Any]]]:
    """Trains a cohort; yields ``(rows, chunk_info)`` after each chunk of members.

    Every chunk is one program of ``width x devices`` members (the last one padded with copies
    of its first member, whose rows are dropped), so each member's numbers depend on the chunk
    width and the device count, never on which other members share its chunk: bitwise equal
    across subsets, resumes and chunkings of one width (the runner fixes the width from the full
    plan, :func:`members_per_device`). Another width or device count changes them within float
    rounding (XLA picks other kernels for other batch shapes).

    Args:
      specs: Runs with one ``cohort_key`` (they may differ in init, seed and ``HYPER_PARAMETERS``).
      dataset: Their data, loaded once.
      devices: Devices to shard the members over (default: all).
      max_members: Cap on members per chunk (default: what fits in memory).
      width: Members per device per chunk (default: :func:`members_per_device` of these specs).
      member_map: ``vmap`` or ``map`` (default: :func:`default_member_map`); numbers agree within
        float rounding.
      progress: Called with ``(steps_done_in_chunk, message)`` after each segment, and with
        ``(0, message)`` when a chunk starts (initializing, compiling).
      keep_variables: Also return each member's trained variables: ``chunk_info["variables"]``
        maps each run_id of the chunk to its variables after the last step (``params`` and any
        batch statistics, as numpy arrays on the host): what ``model.apply`` takes.
      probe: ``probe(variables) -> {metric: scalar}`` or ``{metric: {layer: scalar}}``, evaluated
        on every member at every evaluation (step 0, each ``eval_every``, the end), outside the
        training loop (``jit(vmap(probe))``, so it never changes the trained numbers). ``variables``
        is one member's ``{"params": ..., **model_state}``; the probe closes over whatever data it
        reads (a fixed batch). Its values come back as rows with ``split = "probe"`` (``layer``
        set for nested dicts), NaN after a member's divergence like every evaluation.
      checkpoint_dir: Save each chunk's state (weights, optimizer state, data keys, the records
        so far) there at evaluation boundaries, at most every ``checkpoint_every_s`` seconds (0:
        every segment), and resume a chunk from its checkpoint: an interrupted chunk loses at most
        that much, and the resumed rows are bitwise the uninterrupted ones. A chunk's file is
        named by a digest of its runs, layout and numerics version and removed once the chunk's
        rows were taken (after the ``yield``). Single-process only (ignored in a multi-process job).
      checkpoint_every_s: Least seconds between two checkpoints of a chunk.

    Raises:
      ValueError: the specs are not one cohort, or the batch is larger than the training set.
    """
    specs = list(specs)
    if len({s.cohort_key for s in specs}) != 1:
        raise UsageError(
            "train_cohort needs runs that share model, data, optimizer, schedule and steps (one cohort_key)"
        )
    first = specs[0]
    n_train = len(dataset.y_train)
    if first.data.batch_size > n_train:
        raise UsageError(
            f"batch_size {first.data.batch_size} exceeds the {n_train} training examples of {dataset.name}"
        )
    devices = list(devices or jax.devices())
    mesh = Mesh(np.asarray(devices), ("members",))
    members_sharding, replicated = NamedSharding(mesh, P("members")), NamedSharding(mesh, P())
    member_map = member_map or default_member_map(first)
    if member_map not in ("vmap", "map"):
        raise UsageError(f"member_map must be 'vmap' or 'map', got {member_map!r}")
    program_key = (
        first.model,
        first.architecture,
        first.train.program,
        first.scales_eps,  # the hyper-parameters' structure: with or without the epsilon tree
        first.data.batch_size,
        dataset.input_shape,
        dataset.num_classes,
        n_train,
        member_map,
        tuple(d.id for d in devices),
    )

    def make() -> _Program:
        # the program depends on neither the initializer nor the rates (members carry those), so
        # one program serves every cohort of this shape
        model = build_model(first, dataset)
        return _make_program(model, first.train, first.data.batch_size, n_train, member_map, mesh)

    program = _PROGRAM_CACHE.get(program_key, make)
    probe_fn = _check_probe(probe, first, dataset) if probe is not None else None
    x_train, y_train = _put((dataset.x_train, dataset.y_train), replicated)
    test_batches = _put(_eval_batches(dataset.x_test, dataset.y_test, first.data.eval_examples), replicated)
    train_cap = first.data.eval_examples or len(dataset.y_test)
    train_batches = _put(_eval_batches(dataset.x_train, dataset.y_train, train_cap), replicated)

    n_dev = len(devices)
    if width is None:
        width = members_per_device(len(specs), member_bytes(first, dataset), devices, max_members)
    width = positive_int("width", width)
    every_s = float(checkpoint_every_s)
    if not (every_s >= 0 and math.isfinite(every_s)):
        raise UsageError(f"checkpoint_every_s must be a finite number >= 0, got {checkpoint_every_s!r}")
    saving = checkpoint_dir is not None and jax.process_count() == 1
    start = 0
    while start < len(specs):
        chunk = specs[start : start + width * n_dev]
        where = None
        if saving:
            identity = (NUMERICS_VERSION, [s.run_id for s in chunk], width * n_dev, program_key[-2:])
            digest = hashlib.sha256(repr(identity).encode()).hexdigest()[:20]
            where = Path(str(checkpoint_dir)) / f"chunk-{digest}.npz"
        try:
            rows, info = _train_chunk(
                chunk,
                dataset,
                program=program,
                train_data=(x_train, y_train),
                eval_data=(train_batches, test_batches),
                slots=width * n_dev,
                sharding=members_sharding,
                progress=progress,
                keep_variables=keep_variables,
                probe=probe_fn,
                checkpoint=where,
                checkpoint_every_s=every_s,
            )
        except Exception as err:
            if _is_oom(err):
                # one line naming the width that fits; never a silent smaller width (other numbers)
                raise _out_of_memory(first, dataset, program, width, devices, mesh) from err
            raise
        info.update(members_per_device=width, devices=n_dev, chunk_size=width * n_dev, member_map=member_map)
        yield rows, info
        if where is not None:  # the consumer has the rows (written them): the checkpoint is spent
            where.unlink(missing_ok=True)
        start += len(chunk)


def _train_chunk(
    chunk: Sequence[RunSpec],
    dataset: Dataset,
    *,
    program: _Program,
    train_data: tuple[jax.Array, jax.Array],
    eval_data: tuple[Any, Any],
    slots: int,
    sharding: NamedSharding,
    progress: Progress | None,
    keep_variables: bool = False,
    probe: Callable[..., Any] | None = None,
    checkpoint: Path | None = None,
    checkpoint_every_s: float = 60.0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    t0 = time.perf_counter()
    train = chunk[0].train
    what = f"{chunk[0].model.label} {chunk[0].model.activation} {len(chunk)} runs"
    if progress:  # a program's first chunk compiles first (minutes for a deep unscanned net)
        progress(0, f"{what}: initializing, compiling")
    padded = list(chunk) + [chunk[0]] * (slots - len(chunk))
    # each process initializes only the members its own devices hold (all of them in one process);
    # the other slots are zeros that never leave this host (see _put)
    local = _local_slots(sharding, len(padded))
    variables = initial_stack(padded, dataset, local)
    params = variables["params"]
    state = {k: v for k, v in variables.items() if k != "params"}
    # the rates in the weights' dtype, per-parameter multipliers over one member's parameter tree
    one = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), params)
    hyper = member_hyper(padded, one, jax.tree_util.tree_leaves(params)[0].dtype)
    opt_state = program.init_opt(params, hyper)
    data_keys = _data_keys(jnp.asarray([s.seed for s in padded], jnp.uint32))
    m = len(padded)
    carry = _put(
        TrainState(
            params,
            state,
            opt_state,
            data_keys,
            jnp.full((m,), -1, jnp.int32),
            jnp.zeros((m,), jnp.float32),
            hyper,
            _zero_layer_sums(params, m) if train.layer_records else {},
        ),
        sharding,
    )
    (train_batches, test_batches) = eval_data
    records: list[tuple[int, dict[str, np.ndarray]]] = []
    per_layer: list[tuple[int, str, dict[str, np.ndarray]]] = []  # (step, metric, {layer: per member})
    probes: list[tuple[int, dict[str, Any]]] = []  # (step, {metric: per member or {layer: per member}})

    def evaluate(step: int, carry: TrainState, grad_norm: np.ndarray | None, length: int = 1) -> None:
        tr = program.evaluate(carry.params, carry.model_state, *train_batches)
        te = program.evaluate(carry.params, carry.model_state, *test_batches)
        values = _gather({"train_loss": tr[0], "train_accuracy": tr[1], "test_loss": te[0], "test_accuracy": te[1]})
        if grad_norm is not None:
            values["grad_norm"] = grad_norm
        records.append((step, values))
        if probe is not None:
            probes.append((step, _gather(probe({"params": carry.params, **carry.model_state}))))
        if train.layer_records:
            per_layer.append((step, "weight_norm", _gather(program.layer_norms(carry.params))))
            if grad_norm is not None:
                sums = _gather(carry.layer_grad_sum)
                per_layer.append((step, "grad_norm", {k: np.asarray(v) / length for k, v in sums.items()}))

    # Divergence: a non-finite minibatch loss at step d (inside the loop, TrainState.diverged_at),
    # or, at an evaluation at step s, a non-finite evaluated loss (the last update's too) or a
    # training loss above divergence_factor x its step-0 value: the same examples compared with
    # themselves (a minibatch's loss is noisier than the bound a factor near 1 sets)
    factors = np.asarray([s.train.divergence_factor for s in padded], np.float64)
    flagged = np.full(len(padded), -1, np.int64)

    def judge(step: int) -> None:
        values = records[-1][1]
        train_loss = np.asarray(values["train_loss"], np.float64)
        bad = ~np.isfinite(train_loss) | ~np.isfinite(np.asarray(values["test_loss"], np.float64))
        if step > 0:
            with np.errstate(invalid="ignore", over="ignore"):
                bad |= train_loss > factors * start_loss
        flagged[(flagged < 0) & bad] = step

    step = 0
    saved = _resume(checkpoint, carry, chunk, sharding) if checkpoint is not None else None
    resumed_at = saved["step"] if saved is not None else 0
    if saved is not None:  # the state at the checkpoint's evaluation boundary, records up to it
        carry, step = saved["carry"], saved["step"]
        records[:] = [(int(k), v) for k, v in saved["records"]]
        per_layer[:] = [(int(k), str(metric), v) for k, metric, v in saved["per_layer"]]
        probes[:] = [(int(k), v) for k, v in saved["probes"]]
        flagged[:] = saved["flagged"]
        if progress:
            progress(step, f"{what}: resumed at step {step}")
    else:
        evaluate(0, carry, None)
        judge(0)
    start_loss = np.asarray(records[0][1]["train_loss"], np.float64)
    compile_s = None
    last_save = time.perf_counter()
    while step < train.steps:
        length = min(train.eval_every, train.steps - step)
        t_seg = time.perf_counter()
        carry = carry._replace(
            grad_norm_sum=jnp.zeros_like(carry.grad_norm_sum),
            layer_grad_sum=jax.tree_util.tree_map(jnp.zeros_like, carry.layer_grad_sum),
        )
        carry = program.segment(carry, *train_data, jnp.arange(step, step + length, dtype=jnp.int32))
        step += length
        grad_norm = np.asarray(_gather(carry.grad_norm_sum)) / length
        evaluate(step, carry, grad_norm, length)
        judge(step)
        if compile_s is None:
            compile_s = time.perf_counter() - t_seg
        if checkpoint is not None and step < train.steps and time.perf_counter() - last_save >= checkpoint_every_s:
            _save(checkpoint, carry, chunk, step, records, per_layer, probes, flagged)
            last_save = time.perf_counter()
        if progress:
            progress(length, what)
    in_loop = np.asarray(_gather(carry.diverged_at)).astype(np.int64)
    diverged_at = np.where((in_loop >= 0) & (flagged >= 0), np.minimum(in_loop, flagged), np.maximum(in_loop, flagged))
    rows = _rows(chunk, records, diverged_at, per_layer, probes)
    wall = time.perf_counter() - t0
    info = {
        "members": len(chunk),
        "steps": train.steps,
        "wall_s": round(wall, 3),
        "first_segment_s": round(compile_s or 0.0, 3),
        "member_steps_per_s": round(len(chunk) * train.steps / wall, 1),
        "resumed_at_step": resumed_at,
    }
    if keep_variables:
        final = _gather({"params": carry.params, **carry.model_state})
        info["variables"] = {
            s.run_id: jax.tree_util.tree_map(lambda a, i=i: np.asarray(a[i]), final) for i, s in enumerate(chunk)
        }
    return rows, info


def _host_leaf(x: Any) -> np.ndarray:
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)  # typed keys have no host form: their raw data
    return np.asarray(x)


def _save(
    where: Path,
    carry: TrainState,
    chunk: Sequence[RunSpec],
    step: int,
    records: list[Any],
    per_layer: list[Any],
    probes: list[Any],
    flagged: np.ndarray,
) -> None:
    """Writes a chunk's state after ``step`` (an evaluation boundary) to ``where``, atomically."""
    ckpt.write(
        where,
        {
            "run_ids": [s.run_id for s in chunk],
            "step": step,
            "leaves": [_host_leaf(x) for x in jax.tree_util.tree_leaves(carry)],
            "records": records,
            "per_layer": per_layer,
            "probes": probes,
            "flagged": flagged,
        },
    )


def _resume(where: Path, fresh: TrainState, chunk: Sequence[RunSpec], sharding: NamedSharding) -> dict | None:
    """The saved state of this chunk, its carry on the devices; None when absent or not this chunk's."""
    saved = ckpt.read(where)
    if saved is None or saved.get("run_ids") != [s.run_id for s in chunk]:
        return None
    leaves, treedef = jax.tree_util.tree_flatten(fresh)
    if len(saved["leaves"]) != len(leaves):
        return None
    restored = []
    for new, old in zip(saved["leaves"], leaves, strict=True):
        if jnp.issubdtype(old.dtype, jax.dtypes.prng_key):
            new = jax.random.wrap_key_data(jnp.asarray(new), impl=jax.random.key_impl(old))
        if new.shape != old.shape or new.dtype != old.dtype:
            return None
        restored.append(new)
    saved["carry"] = jax.device_put(jax.tree_util.tree_unflatten(treedef, restored), sharding)
    return saved


def _check_probe(probe: Any, spec: RunSpec, dataset: Dataset) -> Callable[..., Any]:
    """``jit(vmap(probe))`` after checking, without work, that it maps members' variables to real scalars.

    Traced abstractly under ``vmap`` over two members, as the trainer calls it, so a probe that
    cannot be batched fails here, before any training.
    """
    if not callable(probe):
        raise UsageError(f"probe must be a function of one member's variables, got {type(probe).__name__}")
    one = jax.eval_shape(scheme_init(spec, dataset), run_keys(spec.seed)[0], *init_data(spec, dataset))
    two = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct((2, *a.shape), a.dtype), one)
    batched = jax.vmap(probe)
    try:
        out = jax.eval_shape(batched, two)
    except Exception as err:
        raise UsageError(f"probe failed on the members' variables ({type(err).__name__}: {first_line(err)})") from err
    if not isinstance(out, dict) or not out:
        raise UsageError(f"probe must return a non-empty dict {{metric: scalar}}, got {type(out).__name__}")
    for metric, value in out.items():
        if isinstance(value, dict) and not value:
            raise UsageError(f"probe: {metric!r} is an empty dict; give {{layer: scalar}} or a scalar")
        leaves = value.items() if isinstance(value, dict) else [(None, value)]
        for layer, leaf in leaves:
            where = metric if layer is None else f"{metric}[{layer!r}]"
            keys_ok = isinstance(metric, str) and (layer is None or isinstance(layer, str))
            shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
            real = dtype is not None and not jnp.issubdtype(dtype, jnp.complexfloating)
            if not keys_ok or shape != (2,) or not real:
                got = f"shape {shape[1:]} {dtype}" if shape else type(leaf).__name__
                raise UsageError(f"probe: {where!r} must be a real scalar under str keys, got {got}")
    return jax.jit(batched)


def _zero_layer_sums(params: Any, members: int) -> dict[str, jax.Array]:
    shapes = jax.eval_shape(lambda p: layer_norms(jax.tree_util.tree_map(lambda a: a[0], p)), params)
    return {k: jnp.zeros((members,), jnp.float32) for k in shapes}


def _rows(chunk: Sequence[RunSpec], records, diverged_at: np.ndarray, per_layer=(), probes=()) -> pd.DataFrame:
    # A member whose training loss turned non-finite at step d has garbage weights after it: every
    # evaluation after step d is recorded as NaN (not the accuracy of argmax over NaN logits), so
    # curves end at the divergence and no metric of a diverged run can pass for a measurement.
    out: list[dict[str, Any]] = []
    for i, spec in enumerate(chunk):
        ident = spec.identity()
        diverged = diverged_at[i] >= 0
        status = "diverged" if diverged else "ok"
        for step, values in records:
            for key, array in values.items():
                split, _, metric = key.partition("_") if key != "grad_norm" else ("train", "", "grad_norm")
                value = math.nan if diverged and step > diverged_at[i] else float(array[i])
                out.append(
                    {
                        **ident,
                        "step": step,
                        "split": split,
                        "layer": None,
                        "metric": metric,
                        "value": value,
                        "status": status,
                    }
                )
        if status == "diverged":
            out.append(
                {
                    **ident,
                    "step": int(diverged_at[i]),
                    "split": "train",
                    "layer": None,
                    "metric": "diverged_at_step",
                    "value": float(diverged_at[i]),
                    "status": status,
                }
            )
        probed = [
            (step, metric, {None: value} if not isinstance(value, dict) else value)
            for step, values in probes
            for metric, value in values.items()
        ]
        for (step, metric, layers), split in [(r, "train") for r in per_layer] + [(r, "probe") for r in probed]:
            for layer, array in layers.items():
                value = math.nan if diverged and step > diverged_at[i] else float(array[i])
                out.append(
                    {
                        **ident,
                        "step": step,
                        "split": split,
                        "layer": layer,
                        "metric": metric,
                        "value": value,
                        "status": status,
                    }
                )
    return pd.DataFrame(out)
