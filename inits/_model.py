r"""Model-level, data-dependent initialization: LSUV (layer-sequential unit variance).

Mishkin & Matas 2016, "All you need is a good init", ICLR, Algorithm 1:

1. pre-initialize every convolution and fully connected kernel with an orthonormal matrix
   (the kernel flattened to ``(receptive field x in, out)``; :func:`inits.orthogonal`);
2. for each such layer :math:`L`, in the order the forward pass calls them, with a batch of
   data: while :math:`|\mathrm{Var}[B_L] - 1| \ge \text{tol}` and fewer than ``max_iters``
   iterations, :math:`W_L \leftarrow W_L / \sqrt{\mathrm{Var}[B_L]}`, where :math:`B_L` is the
   layer's output (its linear output, before any normalization or activation).

A function over variables, not a per-tensor initializer: it needs the model and data. It works
on any Flax linen model whose Dense/DenseGeneral/Conv/ConvTranspose layers own their kernels
(the capture intercepts those modules' calls, as the propagation probe does) and on nnx models
(Linear/LinearGeneral/Conv/ConvTranspose). Each linen forward pass is jitted (nnx runs eagerly);
the outer loop is the algorithm's data-dependent iteration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from initbench.inits.errors import UsageError, positive_int

_LINEN_LINEAR = ("Dense", "DenseGeneral", "Conv", "ConvTranspose", "ConvLocal")
_NNX_LINEAR = ("Linear", "LinearGeneral", "Conv", "ConvTranspose")


def _linen_capture(model: Any, variables: Any, batch: jax.Array) -> tuple[list[str], Any]:
    """Layer paths in call order and a jitted ``params -> {path: output}``."""
    import flax.linen as nn

    linear = tuple(getattr(nn, n) for n in _LINEN_LINEAR if hasattr(nn, n))
    others = {k: v for k, v in variables.items() if k != "params"}

    def outputs(params):
        captured: dict[str, jax.Array] = {}

        def interceptor(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if isinstance(context.module, linear) and context.method_name == "__call__":
                captured["/".join(context.module.scope.path)] = out
            return out

        with nn.intercept_methods(interceptor):
            model.apply({**others, "params": params}, batch)
        return captured

    order: list[str] = []

    def record(params):
        order.extend(outputs(params))
        return jnp.zeros(())

    jax.eval_shape(record, variables["params"])
    jitted = jax.jit(outputs)
    try:  # a layer called inside nn.scan leaks its (stacked) output out of the scan's trace
        leaked = any(isinstance(v, jax.core.Tracer) for v in jitted(variables["params"]).values())
    except jax.errors.UnexpectedTracerError:
        leaked = True
    if leaked:
        raise UsageError(
            "lsuv: the model calls its layers inside a scan (stacked kernels); LSUV rescales each layer's own "
            "kernel: build it with scan=False"
        )
    return order, jitted


def _is_nnx(model: Any) -> bool:
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - old Flax
        return False
    return isinstance(model, nnx.Module)


def _kernel_path(params: Any, layer: str) -> tuple[Any, ...]:
    """The params path of a layer's kernel (keys as stored: nnx list indices are ints)."""
    path, node = [], params
    for part in (*layer.split("/"), "kernel"):
        match = [k for k in (node.keys() if hasattr(node, "keys") else ()) if str(k) == part]
        if not match:
            raise UsageError(
                f"lsuv: layer {layer!r} has no kernel of its own at params/{layer}/kernel; LSUV rescales each "
                "layer's kernel (a model built with scan=True stacks them: build it with scan=False)"
            )
        path.append(match[0])
        node = node[match[0]]
    return tuple(path)


def _get(tree: Any, path: Sequence[Any]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: Any, path: Sequence[Any], value: Any) -> Any:
    if not path:
        return value
    out = dict(tree)
    out[path[0]] = _set(tree[path[0]], path[1:], value)
    return out


def _orthonormal(key: jax.Array, kernel: jax.Array) -> jax.Array:
    from initbench.inits._structured import orthogonal

    if kernel.ndim < 2:
        return kernel
    return orthogonal()(key, kernel.shape, kernel.dtype)


def lsuv(
    model: Any,
    variables: Any,
    batch: jax.Array,
    *,
    key: jax.Array | None = None,
    tol: float = 0.1,
    max_iters: int = 10,
    target_variance: float = 1.0,
) -> tuple[Any, list[dict[str, Any]]]:
    r"""LSUV: orthonormal kernels, then each layer's output variance scaled to 1 on ``batch``.

    Mishkin & Matas 2016, Algorithm 1 (see the module docstring): for each linear layer in
    call order, :math:`W \leftarrow W / \sqrt{\mathrm{Var}[B]}` until
    :math:`|\mathrm{Var}[B] - v| <` ``tol`` or ``max_iters`` rescalings (``v`` =
    ``target_variance``, 1 in the paper). Biases are left as they are (zero in the paper).

    Args:
      model: A Flax linen module (with ``variables``) or an nnx module (``variables`` None).
      variables: The linen variables ``{"params": ..., ...}`` (or bare params); None for nnx.
      batch: A batch of inputs, ``(B, ...)``.
      key: Key of the orthonormal pre-initialization (step 1); None keeps the given kernels
        (LSUV's rescaling alone).
      tol: Tolerance on the variance (> 0; the paper's 0.1).
      max_iters: Most rescalings per layer (a positive integer; the paper's 10).
      target_variance: The variance each layer's output is scaled to (> 0).

    Returns:
      ``(variables, record)``: the new variables (an nnx module: a new module) and, per layer in
      call order, ``{"layer", "iterations", "initial_variance", "variance", "converged"}``.

    Raises:
      ValueError: bad tol/max_iters/target_variance, a model without linear layers, a layer whose
        kernel is not its own (scanned stacks), a non-finite output variance.
    """
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol > 0):
        raise UsageError(f"lsuv: tol must be a number > 0, got {tol!r}")
    if not (isinstance(target_variance, int | float) and math.isfinite(target_variance) and target_variance > 0):
        raise UsageError(f"lsuv: target_variance must be a number > 0, got {target_variance!r}")
    max_iters = positive_int("lsuv: max_iters", max_iters)
    if _is_nnx(model):
        return _lsuv_nnx(model, batch, key, tol, max_iters, target_variance)
    if variables is None:
        raise UsageError("lsuv: a linen model needs its variables (model.init(key, batch))")
    variables = dict(variables) if "params" in variables else {"params": variables}
    order, outputs = _linen_capture(model, variables, batch)
    params = variables["params"]

    params, record = _run(order, outputs, params, lambda layer: _kernel_path(params, layer), key, tol, max_iters,
                          target_variance)  # fmt: skip
    return {**variables, "params": params}, record


def _run(order, outputs, params, path_of, key, tol, max_iters, target_variance):
    if not order:
        raise UsageError("lsuv: the model calls no Dense/Conv layer on this batch: nothing to initialize")
    paths = {layer: path_of(layer) for layer in order}
    if key is not None:
        for layer, k in zip(order, jax.random.split(key, len(order)), strict=True):
            params = _set(params, paths[layer], _orthonormal(k, _get(params, paths[layer])))
    record = []
    current = outputs(params)  # every layer's output; rescaling layer L changes only L and what follows
    for layer in order:
        variance = float(jnp.var(current[layer]))
        initial, iterations = variance, 0
        while abs(variance - target_variance) >= tol and iterations < max_iters:
            if not math.isfinite(variance) or variance <= 0:
                raise UsageError(
                    f"lsuv: layer {layer!r} has output variance {variance} on this batch: it cannot be rescaled "
                    "(a dead layer or an overflow upstream)"
                )
            kernel = _get(params, paths[layer])
            factor = math.sqrt(target_variance / variance)
            params = _set(params, paths[layer], kernel * jnp.asarray(factor, kernel.dtype))
            current = outputs(params)
            variance = float(jnp.var(current[layer]))
            iterations += 1
        record.append({"layer": layer, "iterations": iterations, "initial_variance": initial, "variance": variance,
                       "converged": abs(variance - target_variance) < tol})  # fmt: skip
    return params, record


def _lsuv_nnx(model, batch, key, tol, max_iters, target_variance):
    from flax import nnx

    linear = tuple(getattr(nnx, n) for n in _NNX_LINEAR if hasattr(nnx, n))
    graphdef, params, other = nnx.split(nnx.clone(model), nnx.Param, ...)  # the caller's module stays as it is
    state = nnx.to_pure_dict(params)

    def outputs(pure):
        module = nnx.merge(graphdef, params, other)
        nnx.replace_by_pure_dict(p := nnx.state(module, nnx.Param), pure)
        nnx.update(module, p)
        names = {id(m): "/".join(str(x) for x in path) for path, m in nnx.iter_modules(module)}
        captured: dict[str, jax.Array] = {}
        originals = {cls: cls.__call__ for cls in linear}

        def wrap(original):
            def call(layer, *args, **kwargs):
                out = original(layer, *args, **kwargs)
                if id(layer) in names:
                    captured[names[id(layer)]] = out
                return out

            return call

        try:
            for cls, original in originals.items():
                cls.__call__ = wrap(original)
            module(batch)
        finally:
            for cls, original in originals.items():
                cls.__call__ = original
        return captured

    order = list(outputs(state))  # eagerly: insertion (call) order
    # eager: an nnx module's Variables cannot be updated from inside a jit trace of this loop
    pure, record = _run(order, outputs, state, lambda layer: _kernel_path(state, layer), key, tol,
                        max_iters, target_variance)  # fmt: skip
    new = nnx.merge(graphdef, params, other)
    p = nnx.state(new, nnx.Param)
    nnx.replace_by_pure_dict(p, pure)
    nnx.update(new, p)
    return new, record
