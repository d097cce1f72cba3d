r"""Signal-propagation probe: per-layer forward and backward statistics and Jacobian spectra.

For a Flax model, its variables and a batch, :func:`propagation` measures at once:

* forward, per layer: mean, variance and second moment of pre-activations and activations,
  the fraction of saturated units (tanh-like :math:`|\phi| > 0.99` of its bound, sigmoid within
  0.01 of 0 or 1), the fraction of dead units (ReLU: zero for every example and position),
  histograms on fixed bin edges (:data:`HIST_EDGES`, end bins absorb the tails) so runs are
  comparable, and the participation ratio of the activations (their effective rank);
* backward, per layer: the variance of :math:`\partial L/\partial h` and of
  :math:`\partial L/\partial W`, and both relative to layer 1 (Glorot & Bengio 2010, Figs 6-8);
* the Jacobian :math:`J = \partial h^{L}/\partial x` of the last hidden pre-activation with
  respect to the input, per example: mean of :math:`s^2`, spread
  :math:`\mathrm{Var}[s^2]/\mathbb{E}[s^2]^2` and max :math:`s`, exactly by SVD when
  :math:`n_{in} n_{out} \le` ``exact_jacobian_limit``, else by random projections (Hutchinson
  estimates of :math:`\mathrm{tr}(J^TJ)` and :math:`\mathrm{tr}((J^TJ)^2)`, power iteration for
  the max) (Saxe et al. 2014; Pennington et al. 2017).

The loss is the cross-entropy with ``labels`` when given, else :math:`\langle f(x), g\rangle / B`
with a fixed Gaussian cotangent :math:`g` drawn from ``key`` (a random readout, the usual
probe of back-propagation at initialization). A classifier whose kernel is exactly zero
(Fixup, ZerO) passes no gradient to the body at step 0; then the random readout is applied to
the classifier's input (the last hidden layer) instead, so the backward statistics describe
the body as the gradient sees it once the classifier has moved.

Layers are found from what the model sows (every ``models`` family sows and exposes
perturbation points), or for any other Flax model by a generic capture of its layers, as the
model-level schemes define them: every module that owns a ``kernel`` parameter and returns an
array (``Dense``, ``Conv``, ``nnx.Linear``, a layer class of one's own; the root of a model that
is one layer, named ``""``), through ``nn.intercept_methods`` (linen) or their classes'
``__call__`` wrapped while the probe traces the model and restored after (nnx,
``inits._nnx.layer_calls``). Layers are named by their module path (``Dense_3``; ``layers/0``)
in call order. Captured outputs are the pre-activations; activations are then unknown unless
``activation`` is given, and are computed as ``activation(pre)``. An nnx module is probed as
it stands (its ``nnx.Param`` state are the parameters). :func:`propagation_over_seeds` vmaps
the whole probe over seeds of a linen module in one compiled program.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from initbench import models
from initbench.inits.errors import UsageError
from initbench.models.activations import ACTIVATIONS, ActivationSpec, describe, resolve

HIST_EDGES = np.linspace(-4.0, 4.0, 33)
EXACT_JACOBIAN_LIMIT = 1 << 22


def _owns_kernel(module: nn.Module) -> bool:
    """A layer, as the schemes define it (:func:`initbench.inits._model.capture`): a module owning a ``kernel``."""
    return module.scope is not None and module.has_variable("params", "kernel")


def _activation_name(model: nn.Module, activation: ActivationSpec | None) -> str | None:
    spec = activation if activation is not None else getattr(model, "activation", None)
    if spec is None:
        return None
    return describe(spec).partition(":")[0]


def _inference(model: Any) -> dict[str, Any]:
    """``{"train": False}`` for a linen module whose ``__call__`` takes ``train`` (a user's may require it)."""
    import inspect

    if not isinstance(model, nn.Module):
        return {}
    return {"train": False} if "train" in inspect.signature(type(model).__call__).parameters else {}


def _uses_sow(model: nn.Module, variables: Any, x: jax.Array) -> bool:
    phase = _inference(model)
    _, state = jax.eval_shape(lambda v, x: model.apply(v, x, mutable=["intermediates"], **phase), variables, x[:1])
    tree = state.get("intermediates", {})
    return any(models.per_layer(tree)) if tree else False


def _kernel_paths(params: Any) -> dict[tuple[str, ...], Any]:
    flat = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        keys = tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
        if keys[-1] == "value" and len(keys) > 1:  # an nnx Variable's array
            keys = keys[:-1]
        if keys[-1] != "kernel":
            continue
        if models.unstacked_path(keys[:-1], 0) is None:
            flat[keys[:-1]] = leaf
            continue
        # a scanned stack's kernel (a leading layer/block axis): each element under its unscanned path
        for j in range(leaf.shape[0]):
            flat[tuple(models.unstacked_path(keys[:-1], j) or ())] = leaf[j]
    return flat


def _layer_kernel(kernels: dict, layer: str) -> Any:
    parts = tuple(layer.split("/")) if layer else ()  # the root of a model that is one layer: ""
    if parts in kernels:  # the layer owns its kernel (the root's path is (): any child's parent too)
        return kernels[parts]
    # a layer module that holds its linear map as a child ("dense"/"conv")
    return next((k for path, k in kernels.items() if path[:-1] == parts), None)


def _capture(captured: dict[str, jax.Array], pert: dict | None, name: str, out: jax.Array) -> jax.Array:
    """Records layer ``name``'s output (plus its perturbation, when the probe differentiates) once."""
    if name in captured:
        raise UsageError(
            f"layer {name} is called twice (shared or tied weights): the probe measures each layer's output once;"
            " not yet"
        )
    if pert is not None and name in pert:
        out = out + pert[name].astype(out.dtype)
    captured[name] = out
    return out


def is_nnx(model: Any) -> bool:
    """Whether ``model`` is a Flax nnx module (instance)."""
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - old Flax
        return False
    return isinstance(model, nnx.Module)


class _Nnx:
    """An nnx module as the probe sees it: ``variables = {"params": Param state, "other": the rest}``."""

    def __init__(self, model: Any) -> None:
        from flax import nnx

        self.nnx = nnx
        self.graphdef, params, other = nnx.split(model, nnx.Param, ...)
        self.variables = {"params": params, "other": other}

    def run(self, v: Any, x: jax.Array, pert: dict | None) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Logits and the captured linear outputs (call order), adding ``pert[name]`` to each.

        The module runs in ``eval()`` mode (``train=False`` where its ``__call__`` takes it):
        deterministic, as the probe's statistics need. A layer called twice (tied weights) is
        refused: its two outputs would be one name.
        """
        import inspect

        from initbench.inits._nnx import kernel_layers, layer_calls

        module = self.nnx.merge(self.graphdef, v["params"], v["other"])
        module.eval()
        layers = kernel_layers(module)
        captured: dict[str, jax.Array] = {}

        def record(layer: Any, out: Any) -> Any:
            if not isinstance(out, jax.Array):  # a kernel owner whose output is no array: not a layer's output
                return out
            return _capture(captured, pert, layers[id(layer)][0], out)

        phase = {"train": False} if "train" in inspect.signature(type(module).__call__).parameters else {}
        with layer_calls(layers, record):
            logits = module(x, **phase)
        return logits, captured

    def apply(self, v: Any, x: jax.Array) -> jax.Array:
        """The logits (the linen ``apply`` the probe uses for shapes)."""
        return self.run(v, x, None)[0]


def _cast(tree: Any, dtype: Any) -> Any:
    """Floating leaves of ``tree`` as ``dtype`` (None: unchanged)."""
    if dtype is None:
        return tree
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating) else a, tree
    )


def _loss(logits: jax.Array, labels: jax.Array | None, cotangent: jax.Array) -> jax.Array:
    if labels is not None:
        log_probs = jax.nn.log_softmax(logits.reshape(logits.shape[0], -1))
        return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))
    return jnp.sum(logits * cotangent) / logits.shape[0]


def participation_ratio(a: jax.Array) -> jax.Array:
    """(tr S)^2 / tr(S^2) of the uncentred second-moment matrix S of the examples' features."""
    flat = a.reshape(a.shape[0], -1)
    gram = flat @ flat.T  # B x B has the same nonzero spectrum as A^T A
    return jnp.trace(gram) ** 2 / jnp.sum(gram * gram)


def _scale(a: jax.Array) -> jax.Array:
    """max|a| (1 for an all-zero array), outside the gradient."""
    scale = jax.lax.stop_gradient(jnp.max(jnp.abs(a)))
    return jnp.where(scale > 0, scale, 1.0)


def _safe_second_moment(a: jax.Array) -> jax.Array:
    """mean(a^2) computed on a / max|a|: the float32 sum of many large squares cannot overflow."""
    scale = _scale(a)
    return jnp.mean(jnp.square(a / scale)) * scale * scale


def _safe_var(a: jax.Array) -> jax.Array:
    """var(a) computed like :func:`_safe_second_moment`."""
    scale = _scale(a)
    return jnp.var(a / scale) * scale * scale


def _layer_stats(pre: jax.Array, act: jax.Array | None, act_name: str | None) -> dict[str, jax.Array]:
    out = {
        "units": jnp.float32(pre.shape[-1]),
        "pre_activation_mean": jnp.mean(pre),
        "pre_activation_variance": _safe_var(pre),
        "pre_activation_second_moment": _safe_second_moment(pre),
    }
    edges = jnp.asarray(HIST_EDGES, pre.dtype)

    def hist(v):
        clipped = jnp.clip(v.ravel(), edges[0], edges[-1])
        counts, _ = jnp.histogram(clipped, bins=edges)
        return counts / v.size

    out["pre_activation_histogram"] = hist(pre)
    if act is None:
        return out
    out.update(
        activation_mean=jnp.mean(act),
        activation_variance=_safe_var(act),
        activation_second_moment=_safe_second_moment(act),
        activation_histogram=hist(act),
        activation_participation_ratio=participation_ratio(act),
    )
    meta = ACTIVATIONS.get(act_name) if act_name else None
    if meta is not None and meta.saturating:
        out["saturated_fraction"] = jnp.mean(meta.saturated(act).astype(jnp.float32))
    if meta is not None and meta.dies:
        alive = jnp.any(act.reshape(-1, act.shape[-1]) != 0, axis=0)
        out["dead_fraction"] = 1.0 - jnp.mean(alive.astype(jnp.float32))
    return out


def _jacobian_stats(g: Callable[[jax.Array], jax.Array], x: jax.Array, key: jax.Array, probes: int) -> dict:
    n_in = x.size
    n_out = jax.eval_shape(g, x).size
    flat_g = lambda v: g(v.reshape(x.shape)).ravel()  # noqa: E731
    n = min(n_in, n_out)
    if n_in * n_out <= EXACT_JACOBIAN_LIMIT:
        # forward mode when the input is the smaller side: n_in JVPs, not n_out VJPs (a wide conv net's
        # batched reverse passes need tens of GB at 8x8x3 inputs)
        jacobian = jax.jacfwd if n_in < n_out else jax.jacrev
        s = jnp.linalg.svd(jacobian(flat_g)(x.ravel()), compute_uv=False)[:n]
        s2 = s**2
        m1, m2, s_max = jnp.mean(s2), jnp.mean(s2**2), jnp.max(s)
    else:
        vs = jax.random.normal(key, (probes, n_in))

        def quad(v):
            _, jv = jax.jvp(flat_g, (x.ravel(),), (v,))
            (jtjv,) = jax.vjp(flat_g, x.ravel())[1](jv)
            return jnp.sum(jv**2), jnp.sum(jtjv**2)

        tr1, tr2 = jax.vmap(quad)(vs)
        m1, m2 = jnp.mean(tr1) / n, jnp.mean(tr2) / n

        def power(v, _):
            _, jv = jax.jvp(flat_g, (x.ravel(),), (v,))
            (w,) = jax.vjp(flat_g, x.ravel())[1](jv)
            return w / jnp.linalg.norm(w), None

        v, _ = jax.lax.scan(power, vs[0] / jnp.linalg.norm(vs[0]), None, length=30)
        s_max = jnp.linalg.norm(jax.jvp(flat_g, (x.ravel(),), (v,))[1])
    return {
        "jacobian_mean_squared_singular_value": m1,
        "jacobian_spread": m2 / m1**2 - 1.0,
        "jacobian_max_singular_value": s_max,
    }


def make_probe(
    model: nn.Module,
    variables: Any,
    x: jax.Array,
    *,
    labels: jax.Array | None = None,
    activation: ActivationSpec | None = None,
    jacobian_examples: int = 4,
    jacobian_probes: int = 16,
    jacobian_layers: Sequence[str] = (),
) -> tuple[Callable[[Any, jax.Array], dict[str, Any]], list[str]]:
    """A pure function ``(variables, key) -> {layer: {metric: array}}`` and the layer names.

    The function is jit- and vmap-able (over variables and keys); see :func:`propagation`.
    ``jacobian_layers`` names further layers whose Jacobian from the input is measured (their
    rows carry the ``jacobian_*`` metrics); the last hidden layer's is always measured.
    """
    act_name = _activation_name(model, activation)
    act_fn = resolve(activation) if activation is not None else None
    sown = not isinstance(model, _Nnx) and _uses_sow(model, variables, x)
    out_shape = jax.eval_shape(lambda v: model.apply(v, x, **_inference(model)), variables).shape

    if sown:
        _, pert_shapes = jax.eval_shape(lambda v: model.apply(v, x, mutable=["perturbations"]), variables)
        pert_shapes = pert_shapes["perturbations"]

        # BatchNorm as training sees it at step 0: batch statistics, not the fresh running averages
        # (which make it an identity); the per-example Jacobian below stays in inference mode
        batch_stats = "batch_stats" in variables

        def forward(v, pert):
            if batch_stats:
                logits, state = model.apply(
                    {**v, "perturbations": pert}, x, train=True, mutable=["intermediates", "batch_stats"]
                )
            else:
                logits, state = model.apply({**v, "perturbations": pert}, x, mutable=["intermediates"])
            return logits, models.per_layer(state["intermediates"])

        def hidden(v, x1, name):
            _, state = model.apply(v, x1[None], mutable=["intermediates"])
            layers = models.per_layer(state["intermediates"])
            return next(layer for layer in layers if layer["layer"] == name)["pre_activation"][0]

        names = _execution_order(lambda v: [layer["layer"] for layer in forward(v, _zeros(pert_shapes))[1]], variables)
    else:
        if isinstance(model, _Nnx):
            nnx_model = model

            def run_pres(v, x_in, pert, train=True):  # nnx: always eval() mode (see _Nnx.run)
                return nnx_model.run(v, x_in, pert)

        else:
            import inspect

            # a module that takes ``train``: the forward pass as training sees it at step 0 (BatchNorm on
            # the batch's statistics), the per-example Jacobian in inference mode (a batch of one)
            takes_train = "train" in inspect.signature(type(model).__call__).parameters

            def run_pres(v, x_in, pert, train=True):
                captured: dict[str, jax.Array] = {}  # call order: a layer's output when its call returns
                active: set[str] = set()

                def interceptor(next_fun, args, kwargs, context):
                    module = context.module
                    if context.method_name != "__call__" or not _owns_kernel(module):
                        return next_fun(*args, **kwargs)
                    name = "/".join(module.scope.path)
                    if name in active:  # the layer's own call nested in it (a subclass's super().__call__)
                        return next_fun(*args, **kwargs)
                    active.add(name)
                    try:
                        out = next_fun(*args, **kwargs)
                    finally:
                        active.discard(name)
                    if not isinstance(out, jax.Array):  # Flax's recurrent DenseParams returns its kernel and
                        return out  # bias: weights held for others, not a layer's output
                    return _capture(captured, pert, name, out)

                phase = {"train": train} if takes_train else {}
                stats = ["batch_stats"] if train and takes_train and "batch_stats" in v else []
                with nn.intercept_methods(interceptor):
                    out = model.apply(v, x_in, mutable=stats or False, **phase)
                return (out[0] if stats else out), captured

        names = _execution_order(lambda v: list(run_pres(v, x, None)[1]), variables)
        if not names:
            raise UsageError(
                "the model calls no layer (a module owning a 'kernel' parameter: nn.Dense, nnx.Linear, Conv, a "
                "layer of one's own): nothing to probe"
            )
        pert_shapes = jax.eval_shape(lambda v: run_pres(v, x, None)[1], variables)

        def forward(v, pert):
            logits, pres = run_pres(v, x, pert)
            return logits, [
                {"layer": n, "pre_activation": pres[n], "activation": act_fn(pres[n]) if act_fn is not None else None}
                for n in names
            ]

        def hidden(v, x1, name):
            return run_pres(v, x1[None], None, False)[1][name][0]

    def probe(v: Any, key: jax.Array) -> dict[str, Any]:
        k_cot, k_jac = jax.random.split(key)
        cotangent = jax.random.normal(k_cot, out_shape)
        head = _layer_kernel(_kernel_paths(v["params"]), names[-1]) if len(names) >= 2 else None

        def loss_fn(params, pert):
            logits, layers = forward({**v, "params": params}, pert)
            loss = _loss(logits, labels, cotangent)
            if head is None:
                return loss, layers
            # A classifier that starts at exactly 0 (Fixup, ZerO) passes no gradient to the body at step 0;
            # from step 1 on it does. Then the readout is put on the classifier's input instead, so the
            # backward statistics describe the body rather than report an exact zero.
            last = layers[-2]["activation"] if layers[-2]["activation"] is not None else layers[-2]["pre_activation"]
            body = jnp.sum(last * jax.random.normal(jax.random.fold_in(k_cot, 1), last.shape)) / last.shape[0]
            return jnp.where(jnp.all(head == 0), body.astype(loss.dtype), loss), layers

        (_, layers), (g_params, g_pert) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
            v["params"], _zeros(pert_shapes)
        )
        # gradient pytrees come back with sorted keys: match layers by name, never by position
        if sown:
            grads = {g["layer"]: g["pre_activation"] for g in models.per_layer(g_pert)}
        else:
            grads = dict(g_pert)
        kernels = _kernel_paths(g_params)
        result: dict[str, Any] = {}
        for layer in layers:
            stats = _layer_stats(layer["pre_activation"], layer["activation"], act_name)
            stats["gradient_variance"] = jnp.var(grads[layer["layer"]])
            wgrad = _layer_kernel(kernels, layer["layer"])
            if wgrad is not None:
                stats["weight_gradient_variance"] = jnp.var(wgrad)
            result[layer["layer"]] = stats
        first = result[names[0]]
        for stats in result.values():
            stats["gradient_variance_ratio"] = stats["gradient_variance"] / first["gradient_variance"]
            if "weight_gradient_variance" in stats and "weight_gradient_variance" in first:
                stats["weight_gradient_variance_ratio"] = (
                    stats["weight_gradient_variance"] / first["weight_gradient_variance"]
                )
        if len(names) >= 2:
            n_ex = min(jacobian_examples, x.shape[0])
            keys = jax.random.split(k_jac, n_ex)
            for name in [*(n for n in jacobian_layers if n != names[-2]), names[-2]]:
                jac = jax.vmap(
                    lambda x1, k, name=name: _jacobian_stats(lambda z: hidden(v, z, name), x1, k, jacobian_probes)
                )(x[:n_ex], keys)
                means = {metric: jnp.mean(value) for metric, value in jac.items()}
                if name == names[-2]:
                    result["__network__"] = means
                if name in jacobian_layers:
                    result[name].update(means)
        return result

    return probe, names


def layer_names(
    model: Any, variables: Any | None, batch: jax.Array, init: Callable[[jax.Array], Any] | None = None
) -> list[str]:
    """The probed layers of a model in call order (no computation: traced abstractly).

    Args:
      model: A linen or nnx module.
      variables: Its variables (None: ``init``, else a linen module's ``init``, traced abstractly).
      batch: Example inputs.
      init: ``key -> variables`` (as :func:`propagation_over_seeds` takes it), for ``variables=None``.
    """
    if is_nnx(model):
        model = _Nnx(model)
        variables = model.variables if init is None else jax.eval_shape(init, jax.random.key(0))
    elif variables is None and init is not None:
        variables = jax.eval_shape(init, jax.random.key(0))
    elif variables is None:
        variables = jax.eval_shape(lambda k: model.init(k, batch[:1], **_inference(model)), jax.random.key(0))
    elif "params" not in variables:
        variables = {"params": variables}
    return make_probe(model, variables, batch)[1]


def _execution_order(trace: Callable[[Any], list[str]], variables: Any) -> list[str]:
    """Layer names in call order, read while tracing (jax returns dicts with sorted keys)."""
    order: list[str] = []

    def record(v):
        order.extend(trace(v))
        return jnp.zeros(())

    jax.eval_shape(record, variables)
    return order


def _zeros(shapes: Any) -> Any:
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _to_rows(result: dict[str, Any], names: list[str], seed_axis: bool) -> pd.DataFrame:
    rows = []
    order = {n: i for i, n in enumerate(names)}
    for layer, stats in result.items():
        for metric, value in stats.items():
            value = np.asarray(value, np.float64)
            if metric.endswith("_histogram"):
                for b in range(value.shape[-1]):
                    rows += _expand(layer, order, f"{metric}_bin_{b:02d}", value[..., b], seed_axis)
            else:
                rows += _expand(layer, order, metric, value, seed_axis)
    return pd.DataFrame(rows)


def _expand(layer: str, order: dict, metric: str, value: np.ndarray, seed_axis: bool) -> list[dict]:
    name = None if layer == "__network__" else layer
    index = order.get(layer)
    if not seed_axis:
        return [{"layer": name, "layer_index": index, "metric": metric, "value": float(value)}]
    return [
        {"seed": s, "layer": name, "layer_index": index, "metric": metric, "value": float(v)}
        for s, v in enumerate(value)
    ]


def propagation(
    model: nn.Module,
    params: Any,
    batch: jax.Array,
    *,
    labels: jax.Array | None = None,
    activation: ActivationSpec | None = None,
    key: jax.Array | None = None,
    jacobian_examples: int = 4,
    dtype: Any = None,
    jacobian_layers: Sequence[str] = (),
) -> pd.DataFrame:
    """Per-layer forward/backward statistics of one network as a tidy DataFrame.

    Args:
      model: Any Flax linen module, or an nnx module (probed as it stands).
      params: Its variables (``{"params": ...}`` and any other collections) or bare params;
        None for an nnx module.
      batch: Input examples ``(B, ...)``.
      labels: Integer labels for a cross-entropy loss; None uses a random Gaussian readout.
      activation: The activation (needed for activation statistics of models that do not sow).
      key: Key of the random readout and Jacobian projections (default ``key(0)``).
      jacobian_examples: Examples whose Jacobian spectra are averaged.
      dtype: Cast parameters and inputs to this float type (``float64`` needs ``jax_enable_x64``).
      jacobian_layers: Further layers whose input Jacobian is measured (see :func:`make_probe`).

    Returns:
      Columns ``layer`` (None for network-level metrics such as the Jacobian), ``layer_index``
      (execution order), ``metric``, ``value``.
    """
    if is_nnx(model):
        model = _Nnx(model)
        variables = model.variables
    else:
        variables = params if "params" in params else {"params": params}
    variables, batch = _cast(variables, dtype), _cast(batch, dtype)
    probe, names = make_probe(
        model,
        variables,
        batch,
        labels=labels,
        activation=activation,
        jacobian_examples=jacobian_examples,
        jacobian_layers=jacobian_layers,
    )
    result = jax.jit(probe)(variables, key if key is not None else jax.random.key(0))
    return _to_rows(result, names, seed_axis=False)


def propagation_over_seeds(
    model: nn.Module,
    batch: jax.Array,
    seeds: Sequence[int],
    *,
    labels: jax.Array | None = None,
    activation: ActivationSpec | None = None,
    jacobian_examples: int = 4,
    dtype: Any = None,
    jacobian_layers: Sequence[str] = (),
    init: Callable[[jax.Array], Any] | None = None,
) -> pd.DataFrame:
    """:func:`propagation` at initialization for several seeds of a linen module, vmapped in one program.

    Seed ``s`` initializes the model with ``jax.random.key(s)`` (in float32, then cast to
    ``dtype``) and draws its readout from ``fold_in(key(s), 1)``. Returns the same columns
    plus ``seed``. ``init`` (``key -> variables``, jitted here) replaces ``model.init`` on the
    batch's first example: a model-level scheme (LSUV, Fixup, ...) applied after it.

    An nnx module needs ``init``, returning its state split as ``{"params": its nnx.Param
    state, "other": the rest}`` (``nnx.split(module, nnx.Param, ...)``'s two states); the module
    given is the graph they are merged into (an abstract one, from ``nnx.eval_shape``, will do).

    Raises:
      UsageError: an nnx module without ``init`` (or construct one network per seed and call
        :func:`propagation`).
    """
    if is_nnx(model):
        if init is None:
            raise UsageError(
                "seeds initialize an nnx module through init (key -> {'params': its Param state, 'other': the "
                "rest}); or probe one module as it stands with propagation()"
            )
        model = _Nnx(model)
    example = batch[:1].astype(jnp.float32)
    init = jax.jit(init or (lambda k: model.init(k, example)))
    variables = [_cast(init(jax.random.key(s)), dtype) for s in seeds]
    batch = _cast(batch, dtype)
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *variables)
    probe, names = make_probe(
        model,
        variables[0],
        batch,
        labels=labels,
        activation=activation,
        jacobian_examples=jacobian_examples,
        jacobian_layers=jacobian_layers,
    )
    keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in seeds])
    result = jax.jit(jax.vmap(probe))(stacked, keys)
    rows = _to_rows(result, names, seed_axis=True)
    rows["seed"] = np.asarray(seeds)[rows["seed"].to_numpy()]
    return rows


def layer_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Wide view: one row per layer (and seed), one column per scalar metric (histograms dropped)."""
    scalar = rows[~rows["metric"].str.contains("_histogram_bin_") & rows["layer"].notna()]
    index = ["layer_index", "layer"] + (["seed"] if "seed" in rows else [])
    return scalar.pivot_table(index=index, columns="metric", values="value").reset_index().sort_values(index)


def network_metrics(rows: pd.DataFrame) -> dict[str, float]:
    """The network-level metrics (Jacobian), averaged over seeds if any."""
    net = rows[rows["layer"].isna()]
    return {m: float(v) for m, v in net.groupby("metric")["value"].mean().items()}
