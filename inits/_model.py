r"""Model-level, data-dependent initialization: LSUV (layer-sequential unit variance).

Mishkin & Matas 2016, "All you need is a good init", ICLR, Algorithm 1:

1. pre-initialize every convolution and fully connected kernel with an orthonormal matrix
   (the kernel flattened to ``(receptive field x in, out)``; :func:`inits.orthogonal`);
2. for each such layer :math:`L`, in the order the forward pass calls them, with a batch of
   data: while :math:`|\mathrm{Var}[B_L] - 1| \ge \text{tol}` and fewer than ``max_iters``
   iterations, :math:`W_L \leftarrow W_L / \sqrt{\mathrm{Var}[B_L]}`, where :math:`B_L` is the
   layer's output (its linear output, before any normalization or activation).

A function over variables, not a per-tensor initializer: it needs the model and data. It works
on any Flax linen model (the capture intercepts the call of every module that owns a ``kernel``
parameter: Dense, DenseGeneral, Conv, ConvTranspose, initbench's own layers, a user's) and on
nnx models (every module owning an ``nnx.Param`` named ``kernel``; :mod:`initbench.inits._nnx`:
updated in place, as nnx code expects). The algorithm's data-dependent iteration
is a ``lax.while_loop`` per layer, so LSUV runs under ``jit`` and ``vmap`` over keys (the
trainer initializes every member of a cohort this way); called on concrete values it is jitted
and its record checked (a dead layer is a one-line error).

This module also holds the layer capture the other model-level schemes share
(:mod:`initbench.inits._residual`, :mod:`initbench.inits._learned`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import jax
import jax.numpy as jnp

from initbench.inits._nnx import NnxModel, in_place, is_nnx
from initbench.inits.errors import UsageError, first_line, loop_count, positive_int


def linen_variables(what: str, model: Any, variables: Any) -> dict[str, Any]:
    """``variables`` as a linen variables dict (bare params are wrapped); one-line errors otherwise."""
    if is_nnx(model):
        raise UsageError(f"{what}: takes a Flax linen module and its variables, got an nnx module")
    if variables is None or not hasattr(variables, "keys") or not variables:
        raise UsageError(f"{what}: a linen model needs its variables (model.init(key, batch)), got {variables!r}")
    return dict(variables) if "params" in variables else {"params": variables}


class StackedKernels(UsageError):
    """A layer called inside ``nn.scan``: its kernel is one slice of a stacked array."""


class BatchMismatch(UsageError):
    """The batch's examples are not the shape the model's variables were made for."""


class LayerOutputs(Protocol):
    """What :func:`capture` returns: ``params -> {layer: output}``, with the capture's other parts as attributes."""

    apply: Callable[[Any, dict[str, Any], Any], dict[str, jax.Array]]  # the same, other collections and batch given
    in_axes: dict[str, int]  # leading kernel axes that are the layer's input
    conv: dict[str, bool]  # whether the layer is a convolution
    stacked: dict[str, int]  # layers inside a scan (allow_stacked): the stack's length; 1 otherwise

    def __call__(self, params: Any) -> dict[str, jax.Array]: ...


def capture(
    what: str, model: Any, variables: dict[str, Any], batch: Any, *, allow_stacked: bool = False
) -> tuple[list[str], LayerOutputs]:
    """The layers of a linen model in call order, and a pure ``params -> {layer: output}``.

    A layer is a module that owns a ``kernel`` parameter (``nn.Dense``, ``nn.Conv``, initbench's
    ``Conv``, a user's layer; the root of a model that is one layer, named ``""``) and returns an
    array (Flax's recurrent ``DenseParams`` returns its kernel and bias for others to use: no
    layer); its output is what its ``__call__`` returns. Layer names are
    module paths joined with ``/`` (``block_00/conv_a/conv``). The function traces under
    ``jit``, ``vmap`` and ``grad``; ``outputs.in_axes[layer]`` is how many leading kernel axes
    are its input (``nn.DenseGeneral``: ``len(axis)``; a convolution: every axis but the last)
    and ``outputs.conv[layer]`` whether it is a convolution (a module with ``kernel_size``).
    Collections other than ``params`` (batch statistics of a BatchNorm in training mode) are
    passed in and their updates dropped.

    With ``allow_stacked``, a layer called inside ``nn.scan`` (its kernel stored with a leading
    axis of the stack's length, ``outputs.stacked[layer]``) is one entry standing for the whole
    stack: for schemes that set kernels by structure alone (Fixup, SkipInit, ZerO), never for
    those that read a layer's output (its captured output is one scan step's).

    Raises:
      UsageError: the model calls a layer inside ``nn.scan`` (stacked kernels: no layer owns its
        kernel) when not ``allow_stacked``, or calls no layer at all.
    """
    import flax
    import flax.linen as nn

    others = {k: v for k, v in variables.items() if k != "params"}

    seen: dict[str, tuple[int, ...]] = {}  # the kernel shape each layer sees (a scanned layer: one slice)
    in_axes: dict[str, int] = {}
    conv: dict[str, bool] = {}

    def apply(params: Any, others: dict[str, Any], batch: Any) -> dict[str, jax.Array]:
        captured: dict[str, jax.Array] = {}

        def interceptor(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            module = context.module
            if context.method_name == "__call__" and module.scope is not None and isinstance(out, jax.Array):
                if module.has_variable("params", "kernel"):  # (an owner returning no array holds others' weights)
                    name = "/".join(module.scope.path)
                    captured[name] = out
                    shape = tuple(module.get_variable("params", "kernel").shape)
                    seen[name] = shape
                    conv[name] = hasattr(module, "kernel_size")
                    axis = None if conv[name] else getattr(module, "axis", -1)
                    in_axes[name] = len(shape) - 1 if conv[name] else (len(axis) if isinstance(axis, tuple) else 1)
            return out

        if isinstance(model, NnxModel):  # an nnx module: its layers' calls, wrapped (nnx has no interceptor)
            for name, (out, layer) in model.calls(params, batch)[1].items():
                captured[name] = out
                seen[name] = tuple(jnp.shape(layer.kernel[...]))
                conv[name] = hasattr(layer, "kernel_size")
                features = getattr(layer, "in_features", None)
                in_axes[name] = (
                    len(seen[name]) - 1 if conv[name] else len(features) if isinstance(features, tuple) else 1
                )
            return captured
        with nn.intercept_methods(interceptor):
            model.apply({**others, "params": params}, batch, mutable=list(others))
        return captured

    def outputs(params: Any) -> dict[str, jax.Array]:
        return apply(params, others, batch)

    result = cast(LayerOutputs, outputs)  # mypy does not follow attributes set on a function
    result.apply = apply  # the same, with the other collections and batch as arguments

    result.in_axes = in_axes
    result.conv = conv
    result.stacked = {}

    abstract = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), variables["params"]
    )
    try:
        order = list(jax.eval_shape(lambda p: {k: jnp.sum(v) for k, v in outputs(p).items()}, abstract))
    except flax.errors.ScopeParamShapeError as err:  # a batch of other features than the variables were made for
        raise BatchMismatch(
            f"{what}: the batch's examples {tuple(jnp.shape(batch)[1:])} do not fit the model's variables "
            f"({first_line(err)})"
        ) from err
    except UsageError:
        raise
    except (TypeError, ValueError) as err:  # an nnx module's layers meet the batch: shapes JAX refuses
        if not isinstance(model, NnxModel):
            raise
        raise BatchMismatch(
            f"{what}: the batch's examples {tuple(jnp.shape(batch)[1:])} do not fit the module "
            f"({type(err).__name__}: {first_line(err)})"
        ) from err
    order.sort(key=list(seen).index)  # eval_shape returns dicts with sorted keys: call order is ``seen``'s
    if not order:
        raise UsageError(
            f"{what}: the model calls no layer (a module owning a 'kernel' parameter: Dense, Conv, a layer of one's "
            "own) on this batch: nothing to initialize"
        )
    for layer in order:
        stored = get_path(abstract, kernel_path(what, abstract, layer)).shape
        result.stacked[layer] = 1
        if allow_stacked and len(stored) == len(seen[layer]) + 1 and tuple(stored[1:]) == seen[layer]:
            result.stacked[layer] = int(stored[0])
        elif tuple(stored) != seen[layer]:
            raise StackedKernels(
                f"{what}: layer {layer!r} sees a {seen[layer]} kernel stored as {tuple(stored)}: the model calls its "
                f"layers inside a scan (stacked kernels); {what} sets each layer's own kernel: build it with scan=False"
            )
    return order, result


def kernel_path(what: str, params: Any, layer: str, leaf: str = "kernel") -> tuple[Any, ...]:
    """The params path of a layer's kernel (keys as stored: nnx list indices are ints)."""
    path, node = [], params
    for part in (*(layer.split("/") if layer else ()), leaf):  # the root module's path is "": a model that is one layer
        match = [k for k in (node.keys() if hasattr(node, "keys") else ()) if str(k) == part]
        if not match:
            raise UsageError(
                f"{what}: layer {layer!r} has no {leaf} of its own at params/{layer}/{leaf}; {what} sets each "
                "layer's kernel (a model built with scan=True stacks them: build it with scan=False)"
            )
        path.append(match[0])
        node = node[match[0]]
    return tuple(path)


def has_path(params: Any, path: Sequence[Any]) -> bool:
    """Whether ``params`` has a leaf at ``path``."""
    for key in path:
        if not hasattr(params, "keys") or key not in params:
            return False
        params = params[key]
    return True


def get_path(tree: Any, path: Sequence[Any]) -> Any:
    """The node of ``tree`` at ``path``."""
    for key in path:
        tree = tree[key]
    return tree


def set_path(tree: Any, path: Sequence[Any], value: Any) -> Any:
    """A copy of ``tree`` (nested dicts) with ``value`` at ``path``."""
    if not path:
        return value
    out = dict(tree)
    out[path[0]] = set_path(tree[path[0]], path[1:], value)
    return out


def concrete(*trees: Any) -> bool:
    """Whether no leaf of ``trees`` is being traced (an eager call, whose results can be checked)."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(trees))


def matrix_shape(kernel_shape: Sequence[int], in_axes: int) -> tuple[int, int]:
    """A kernel as the ``(inputs, outputs)`` matrix it applies (its first ``in_axes`` axes are the input)."""
    return math.prod(kernel_shape[:in_axes]), math.prod(kernel_shape[in_axes:])


def _orthonormal(key: jax.Array, kernel: jax.Array, in_axes: int) -> jax.Array:
    from initbench.inits._structured import orthogonal

    if kernel.ndim < 2:
        return kernel
    return orthogonal()(key, matrix_shape(kernel.shape, in_axes), kernel.dtype).reshape(kernel.shape)


@in_place("lsuv")
def lsuv(
    model: Any,
    variables: Any,
    batch: jax.Array,
    *,
    key: jax.Array | None = None,
    tol: float = 0.1,
    max_iters: int = 10,
    target_variance: float = 1.0,
    batch_size: int | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    r"""LSUV: orthonormal kernels, then each layer's output variance scaled to 1 on ``batch``.

    Mishkin & Matas 2016, Algorithm 1 (see the module docstring): for each linear layer in
    call order, :math:`W \leftarrow W / \sqrt{\mathrm{Var}[B]}` until
    :math:`|\mathrm{Var}[B] - v| <` ``tol`` or ``max_iters`` rescalings (``v`` =
    ``target_variance``, 1 in the paper). Biases are left as they are (zero in the paper).
    Runs under ``jit``/``vmap``: the record's numbers are then arrays and unchecked, and it holds
    layer names (strings), so return only the variables from a transformed function.

    Args:
      model: A Flax linen module (with ``variables``) or an nnx module (``variables`` None).
      variables: The linen variables ``{"params": ..., ...}`` (or bare params); None for nnx.
      batch: A batch of inputs, ``(B, ...)``.
      key: Key of the orthonormal pre-initialization (step 1); None keeps the given kernels
        (LSUV's rescaling alone).
      tol: Tolerance on the variance (> 0; the paper's 0.1).
      max_iters: Most rescalings per layer (a positive integer; the paper's 10).
      target_variance: The variance each layer's output is scaled to (> 0).
      batch_size: Use this many rows of ``batch``, drawn without replacement with
        ``fold_in(key, 1)`` (None: all of it). ``initbench run`` passes the training set and 256.

    Returns:
      ``(variables, record)``: the new variables (an nnx module: the module, updated in place) and, per layer in
      call order, ``{"layer", "iterations", "initial_variance", "variance", "converged"}``.

    Raises:
      ValueError: bad tol/max_iters/target_variance/batch_size, a model without linear layers, a
        layer whose kernel is not its own (scanned stacks), a zero or non-finite output variance.
    """
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol > 0):
        raise UsageError(f"lsuv: tol must be a number > 0, got {tol!r}")
    if isinstance(target_variance, bool) or not (
        isinstance(target_variance, int | float) and 0 < target_variance <= 3.4028234663852886e38
    ):
        raise UsageError(f"lsuv: target_variance must be a number > 0 (in float32), got {target_variance!r}")
    max_iters = loop_count("lsuv: max_iters", max_iters)
    rows = getattr(batch, "shape", None)
    if not rows or rows[0] < 1:
        got = f"shape {rows!r}" if rows is not None else f"a {type(batch).__name__}"
        raise UsageError(f"lsuv: batch must be an array of inputs (B, ...) with B >= 1, got {got}")
    batch = subsample("lsuv", batch, batch_size, key)[0]
    variables = linen_variables("lsuv", model, variables)
    order, outputs = capture("lsuv", model, variables, batch)
    params = variables["params"]
    paths = {layer: kernel_path("lsuv", params, layer) for layer in order}
    frozen = _Frozen(paths, outputs.in_axes)
    eager = concrete(params, batch, key)
    if not eager:
        params, stats = _run(outputs, tuple(order), frozen, params, key, tol, max_iters, target_variance)
        return {**variables, "params": params}, _record(order, stats, tol, target_variance, eager)
    others = {k: v for k, v in variables.items() if k != "params"}
    signature = (
        model,
        tuple(order),
        frozen,
        jax.tree_util.tree_structure((params, others)),
        tuple((jnp.shape(a), jnp.result_type(a)) for a in jax.tree_util.tree_leaves((params, others, batch))),
        key is None,
        tol,
        max_iters,
        target_variance,
    )
    compiled = _COMPILED.get(signature)
    if compiled is None:  # one compilation per model, shapes and options: a second call (another key) reuses it
        apply = outputs.apply

        def run(p, o, b, k):
            return _run(lambda q: apply(q, o, b), tuple(order), frozen, p, k, tol, max_iters, target_variance)

        compiled = _COMPILED[signature] = jax.jit(run)
        while len(_COMPILED) > _COMPILED_SIZE:
            _COMPILED.pop(next(iter(_COMPILED)))
    params, stats = compiled(params, others, batch, key)
    return {**variables, "params": params}, _record(order, stats, tol, target_variance, eager)


# LSUV programs compiled by eager calls, by (model, layers, shapes, options): bounded, never changes a result
_COMPILED: dict[Any, Any] = {}
_COMPILED_SIZE = 16


def subsample(what: str, batch: Any, batch_size: int | None, key: jax.Array | None, labels: Any = None) -> tuple:
    """``batch_size`` rows of ``batch`` (and ``labels``) drawn without replacement, or all of them."""
    if batch_size is None:
        return batch, labels
    batch_size = positive_int(f"{what}: batch_size", batch_size)
    if batch_size > batch.shape[0]:
        raise UsageError(f"{what}: batch_size {batch_size} exceeds the {batch.shape[0]} examples given")
    if key is None:
        rows = jnp.arange(batch_size)
    else:
        rows = jax.random.permutation(jax.random.fold_in(key, 1), batch.shape[0])[:batch_size]
    return batch[rows], None if labels is None else labels[rows]


class _Frozen:
    """A hashable wrapper (a static jit argument) around the layers' kernel paths and input axes."""

    def __init__(self, value: dict[str, tuple[Any, ...]], in_axes: dict[str, int]) -> None:
        self.value = value
        self.in_axes = {layer: in_axes.get(layer, 1) for layer in value}
        self._key = tuple(sorted((k, tuple(map(str, v)), self.in_axes[k]) for k, v in value.items()))

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Frozen) and self._key == other._key


def _run(outputs, order, paths, params, key, tol, max_iters, target_variance):
    """LSUV over ``order``: one ``lax.while_loop`` of rescalings per layer; returns params and stats."""
    paths, in_axes = paths.value, paths.in_axes
    if key is not None:
        for layer, k in zip(order, jax.random.split(key, len(order)), strict=True):
            kernel = get_path(params, paths[layer])
            params = set_path(params, paths[layer], _orthonormal(k, kernel, in_axes[layer]))
    current = outputs(params)  # every layer's output; rescaling layer L changes only L and what follows
    stats = []
    for layer in order:
        path = paths[layer]
        initial = jnp.var(current[layer])

        def going(carry, layer=layer):
            _, out, it = carry
            v = jnp.var(out[layer])
            return (jnp.abs(v - target_variance) >= tol) & (it < max_iters) & jnp.isfinite(v) & (v > 0)

        def rescale(carry, path=path, layer=layer):
            p, out, it = carry
            kernel = get_path(p, path)
            factor = jnp.sqrt(target_variance / jnp.var(out[layer]))
            p = set_path(p, path, kernel * factor.astype(kernel.dtype))
            return p, outputs(p), it + 1

        params, current, iterations = jax.lax.while_loop(going, rescale, (params, current, jnp.asarray(0)))
        stats.append((iterations, initial, jnp.var(current[layer])))
    return params, stats


def _record(order, stats, tol, target_variance, check):
    record = []
    for layer, (iterations, initial, variance) in zip(order, stats, strict=True):
        if check:
            iterations, initial, variance = int(iterations), float(initial), float(variance)
            if not math.isfinite(variance) or variance <= 0:
                raise UsageError(
                    f"lsuv: layer {layer!r} has output variance {variance} on this batch: it cannot be rescaled "
                    "(a dead layer or an overflow upstream)"
                )
            converged: Any = abs(variance - target_variance) < tol
        else:
            converged = jnp.abs(variance - target_variance) < tol
        record.append(
            {
                "layer": layer,
                "iterations": iterations,
                "initial_variance": initial,
                "variance": variance,
                "converged": converged,
            }
        )
    return record
