r"""Model-level, learned initialization: MetaInit and GradInit rescale each tensor by gradient descent.

Both are functions over Flax linen variables (model-level schemes, like :func:`lsuv`), not
per-tensor initializers: they run a short optimization of one scalar per parameter tensor
through the model. Both keep every tensor's direction and learn only its scale, and both are
pure: the whole loop is one ``lax.scan``, so they work under ``jax.jit`` and ``jax.vmap`` over
``key`` (and over the variables).

- :func:`metainit` (Dauphin & Schoenholz 2019) learns the norm of every kernel (every leaf with
  ``ndim >= 2``) by signed gradient descent with momentum on the *gradient quotient*, a measure
  of how far the loss is from locally quadratic-and-well-conditioned.
- :func:`gradinit` (Zhu et al. 2021) learns a scale for every leaf with Adam so that one step of
  SGD (or Adam) from the scaled network lowers the loss most, under a bound on the gradient norm.

The model is called as ``model.apply(variables, x)`` (its default, inference mode: a
normalization layer uses its stored statistics); the loss is the mean softmax cross entropy
against integer labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from initbench.inits._nnx import in_place
from initbench.inits.errors import UsageError, loop_count, positive_int

# A kernel collapsing to zero norm cannot be rescaled back (w * new / 0): MetaInit's norm is kept
# at least this fraction of the kernel's initial norm.
_METAINIT_NORM_FLOOR = 1e-3


def _finite(what: str, name: str, value: object, *, low: float, inclusive: bool, high: float | None = None) -> float:
    """``value`` as a float if it is a finite Python/numpy number in range; else one-line UsageError."""
    bound = f"{'>=' if inclusive else '>'} {low:g}" + (f" and < {high:g}" if high is not None else "")
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= low if inclusive else value > low)
        and (high is None or value < high)
    ):
        return float(value)
    raise UsageError(f"{what}: {name} must be a finite number {bound}, got {value!r}")


def _prepare(what: str, model: Any, variables: Any, batch: Any, labels: Any, batch_size: Any) -> tuple[dict, int]:
    """Checks the shared arguments; returns the variables as ``{"params": ..., ...}`` and the batch's rows."""
    if variables is None:
        raise UsageError(f"{what}: a linen model needs its variables (model.init(key, batch)), got None")
    variables = dict(variables) if "params" in variables else {"params": variables}
    shape = getattr(batch, "shape", None)
    if shape is None or len(shape) < 1 or shape[0] < 1:
        raise UsageError(f"{what}: batch must be an array of inputs (B, ...) with B >= 1, got shape {shape!r}")
    from initbench.inits._model import BatchMismatch, StackedKernels, capture

    # one scale per layer: a scanned stack stores its layers' kernels as one array, whose scale
    # (and its stacked biases, taken for kernels) would be shared: refused in one line
    try:
        capture(what, model, variables, batch[:1])
    except (StackedKernels, BatchMismatch):
        raise
    except UsageError:
        pass  # a model without Dense/Conv layers: the scheme's own checks speak
    rows = int(shape[0])
    if not isinstance(batch, jax.core.Tracer) and not np.isfinite(np.asarray(batch)).all():
        raise UsageError(f"{what}: batch holds non-finite values (nan or inf); its scales would be nan")
    if labels is not None:
        lshape = getattr(labels, "shape", None)
        if lshape != (rows,):
            raise UsageError(f"{what}: labels must have shape ({rows},) (one per row of batch), got {lshape!r}")
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise UsageError(f"{what}: labels must be integer class indices, got dtype {labels.dtype}")
        if not isinstance(labels, jax.core.Tracer):  # concrete labels: each a class of the model's output
            out = jax.eval_shape(lambda v, x: model.apply(v, x), variables, batch[:1])
            classes = getattr(out, "shape", (None,))[-1]
            values = np.asarray(labels)
            if classes is not None and values.size and (values.min() < 0 or values.max() >= classes):
                raise UsageError(
                    f"{what}: labels must be classes 0..{classes - 1} of the model's {classes} outputs, got values "
                    f"{int(values.min())}..{int(values.max())}"
                )
    if batch_size is not None:
        batch_size = positive_int(f"{what}: batch_size", batch_size)
        if batch_size > rows:
            raise UsageError(f"{what}: batch_size must be <= the batch's {rows} rows, got {batch_size}")
    return variables, rows


def _path_str(path: tuple[Any, ...]) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def _loss_fn(model: Any, variables: dict) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
    """``(params, x, y) -> mean softmax cross entropy`` of the model with its other collections fixed."""
    others = {k: v for k, v in variables.items() if k != "params"}

    def loss(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        logits = model.apply({**others, "params": params}, x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    return loss


def _rows(key: jax.Array, rows: int, n: int) -> jax.Array:
    """``n`` distinct row indices out of ``rows``."""
    return jax.random.permutation(key, rows)[:n]


def _gradient_quotient(loss: Callable[[Any], jax.Array], params: Any, *, eps: float = 1e-5) -> jax.Array:
    r"""The gradient quotient of MetaInit (Dauphin & Schoenholz 2019, its definition and appendix code).

    .. math::
       \mathrm{GQ}(\theta) = \frac{1}{N} \sum_i \left| \frac{g_i - (Hg)_i}{g_i + \epsilon\,
       \mathrm{sign}(g_i)} - 1 \right|,

    with :math:`g = \nabla L(\theta)`, :math:`Hg = \nabla_\theta \tfrac12 \|g\|^2` (a
    Hessian-vector product), :math:`\mathrm{sign}(0) = +1`, the :math:`\epsilon` term held constant
    (no gradient flows through it), and the sum over every entry of every leaf of ``params``
    (:math:`N` entries in all; the authors' code sums over all parameters, biases included).
    Differentiable in ``params`` (MetaInit descends its gradient).

    Args:
      loss: ``params -> scalar`` loss.
      params: A pytree of float arrays.
      eps: The denominator's guard, > 0 (the paper's 1e-5).

    Returns:
      The scalar gradient quotient.
    """
    grad = jax.grad(loss)
    g = grad(params)
    _, hg = jax.jvp(grad, (params,), (g,))  # H g, differentiable through both g and H

    def term(gi: jax.Array, hi: jax.Array) -> jax.Array:
        guard = lax.stop_gradient(jnp.where(gi >= 0, jnp.asarray(eps, gi.dtype), jnp.asarray(-eps, gi.dtype)))
        return jnp.sum(jnp.abs((gi - hi) / (gi + guard) - 1))

    leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(term, g, hg))
    count = sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
    # an array: sum()'s int start is returned only for no leaves, where count is 0 and this raises
    return cast(jax.Array, sum(leaves)) / count


@in_place("metainit")
def metainit(
    model: Any,
    variables: Any,
    batch: jax.Array,
    *,
    key: jax.Array,
    labels: jax.Array | None = None,
    steps: int = 500,
    lr: float = 0.1,
    momentum: float = 0.9,
    eps: float = 1e-5,
    batch_size: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    r"""MetaInit: learn each kernel's norm by minimizing the gradient quotient.

    Dauphin & Schoenholz 2019, "MetaInit: Initializing learning by learning to initialize",
    NeurIPS, the algorithm and its appendix code. A function over variables (a model-level scheme):
    each of ``steps`` iterations draws data, evaluates the gradient quotient

    .. math::
       \mathrm{GQ}(\theta) = \frac{1}{N} \sum_i \left| \frac{g_i - (Hg)_i}{g_i + \epsilon\,
       \mathrm{sign}(g_i)} - 1 \right|, \qquad g = \nabla_\theta L,\ Hg = \nabla_\theta
       \tfrac12\|g\|^2

    over all parameters (as the authors' code does; :func:`_gradient_quotient`) and its gradient,
    and then updates the norm of every kernel :math:`W` (every leaf with ``ndim >= 2``) by signed
    gradient descent with momentum:

    .. math::
       s = \mathrm{sign}\Big(\frac{\langle W, \partial\mathrm{GQ}/\partial W\rangle}{\|W\|}\Big),
       \quad m \leftarrow \mu m - \eta s, \quad W \leftarrow W\,\frac{\|W\| + m}{\|W\|}.

    Biases and other leaves with ``ndim < 2`` are left bitwise as they are. Data: without
    ``labels``, as in the paper, every step draws fresh inputs :math:`x \sim N(0, 1)` of the
    batch's shape (``batch_size`` rows if set; ``batch`` gives only the shape and dtype) and labels
    uniform over the model's classes (its logits' last axis); with ``labels``, every step uses
    ``(batch, labels)``, or ``batch_size`` rows of it sampled without replacement.

    Guard (not in the paper): a step that would take a norm to ``<= 0`` sets it to 1e-3 of the
    kernel's initial norm instead (the momentum is kept), so the kernel can still grow back; a
    kernel of zero norm has no norm to learn and is left as it is.

    Published defaults (the paper's appendix code and Section 4): ``steps=500``, ``lr=0.1``,
    ``momentum=0.9``, ``eps=1e-5``, random Gaussian inputs and labels.

    Example:
      >>> import jax
      >>> from initbench import models
      >>> net = models.build("mlp", input_shape=(16,), num_classes=4, depth=3, width=32,
      ...                    activation="tanh", kernel_init="he_normal")
      >>> x = jax.numpy.zeros((32, 16))
      >>> variables = net.init(jax.random.key(0), x[:1])
      >>> new, record = metainit(net, variables, x, key=jax.random.key(1), steps=5)
      >>> record["objective"].shape
      (5,)

    Args:
      model: A flax.linen module, called as ``model.apply(variables, x)``, or an nnx module (``variables``
        None; updated in place and returned in place of the variables).
      variables: Its variables ``{"params": ..., ...}`` (or bare params).
      batch: Inputs ``(B, ...)``: the data with ``labels``, else only the shape and dtype of the
        random inputs.
      key: PRNG key of the data draws.
      labels: Optional integer labels ``(B,)``: learn on ``(batch, labels)`` instead of noise.
      steps: Iterations (a positive integer; the paper's 500).
      lr: Step on the norms, > 0 (the paper's 0.1).
      momentum: Momentum of the norm updates, in [0, 1) (the paper's 0.9).
      eps: Guard of the gradient quotient's denominator, > 0 (the paper's 1e-5).
      batch_size: Rows per step (<= B); None: B.

    Returns:
      ``(variables, record)``: the new variables (``{"params": ..., ...}``, the other collections
      as given) and a dict of arrays: ``"objective"``, shape ``(steps,)``, the gradient quotient at
      each step before its update; ``"scales"``, ``{kernel path ("layer/dense/kernel"): final
      norm / initial norm}`` (scalars).

    Raises:
      UsageError: bad steps/lr/momentum/eps/batch_size; labels of the wrong shape
        or dtype; a model without kernels.
    """
    what = "metainit"
    steps = loop_count(f"{what}: steps", steps)
    lr = _finite(what, "lr", lr, low=0.0, inclusive=False)
    momentum = _finite(what, "momentum", momentum, low=0.0, inclusive=True, high=1.0)
    eps = _finite(what, "eps", eps, low=0.0, inclusive=False)
    if isinstance(labels, list | tuple):  # a list of class indices is labels too
        labels = jnp.asarray(labels)
    variables, rows = _prepare(what, model, variables, batch, labels, batch_size)
    params = variables["params"]
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    kernels = [i for i, (_, leaf) in enumerate(flat) if jnp.ndim(leaf) >= 2]
    if not kernels:
        raise UsageError(f"{what}: the variables hold no kernel (no parameter with ndim >= 2): nothing to rescale")
    loss = _loss_fn(model, variables)
    n = rows if batch_size is None else batch_size
    if labels is None:
        logits = jax.eval_shape(lambda p: model.apply({**variables, "params": p}, batch[:1]), params)
        num_classes = int(logits.shape[-1])

    def draw(k: jax.Array) -> tuple[jax.Array, jax.Array]:
        if labels is None:  # the paper: Gaussian inputs, uniform labels
            kx, ky = jax.random.split(k)
            x = jax.random.normal(kx, (n, *batch.shape[1:]), batch.dtype)
            return x, jax.random.randint(ky, (n,), 0, num_classes)
        if batch_size is None:
            return batch, labels
        idx = _rows(k, rows, n)
        return batch[idx], labels[idx]

    leaves = [leaf for _, leaf in flat]
    norm0 = [jnp.linalg.norm(leaves[i]) for i in kernels]

    def step(carry, k):
        leaves, memory = carry
        x, y = draw(k)

        def objective(ks):
            full = list(leaves)
            for i, w in zip(kernels, ks, strict=True):
                full[i] = w
            return _gradient_quotient(lambda p: loss(p, x, y), jax.tree_util.tree_unflatten(treedef, full), eps=eps)

        gq, dks = jax.value_and_grad(objective)([leaves[i] for i in kernels])
        new_leaves, new_memory = list(leaves), []
        for j, (i, dw) in enumerate(zip(kernels, dks, strict=True)):
            w = leaves[i]
            norm = jnp.linalg.norm(w)
            s = jnp.sign(jnp.sum(w * dw))  # the sign of d GQ / d norm = <W, dGQ/dW> / ||W||
            m = momentum * memory[j] - lr * s
            new_norm = norm + m
            new_norm = jnp.where(new_norm > 0, new_norm, _METAINIT_NORM_FLOOR * norm0[j])
            # a zero kernel has no norm to learn
            ratio = jnp.where(norm > 0, new_norm / jnp.where(norm > 0, norm, 1), 1)
            new_leaves[i] = w * ratio.astype(w.dtype)
            new_memory.append(m)
        return (new_leaves, new_memory), gq

    memory0 = [jnp.zeros((), n0.dtype) for n0 in norm0]
    (leaves, _), objective = lax.scan(step, (leaves, memory0), jax.random.split(key, steps))
    scales = {
        _path_str(flat[i][0]): jnp.linalg.norm(leaves[i]) / jnp.where(norm0[j] > 0, norm0[j], 1)
        for j, i in enumerate(kernels)
    }
    new_params = jax.tree_util.tree_unflatten(treedef, leaves)
    return {**variables, "params": new_params}, {"objective": objective, "scales": scales}


@in_place("gradinit")
def gradinit(
    model: Any,
    variables: Any,
    batch: jax.Array,
    *,
    key: jax.Array,
    labels: jax.Array,
    steps: int = 390,
    lr: float = 1e-3,
    eta: float = 0.1,
    gamma: float = 1.0,
    min_scale: float = 0.01,
    grad_clip: float = 1.0,
    batch_size: int = 64,
    normalize_grad: bool = True,
    alg: Literal["sgd", "adam"] = "sgd",
) -> tuple[dict[str, Any], dict[str, Any]]:
    r"""GradInit: learn a scale per tensor so that the first optimizer step lowers the loss most.

    Zhu, Ni, Xu, Kong, Huang & Goldstein 2021, "GradInit: Learning to initialize neural networks
    for stable and efficient training", NeurIPS, Algorithm 1 and the authors' code
    (``gradinit_utils.py``, ``RescaleAdam``). A function over variables (a model-level scheme):
    every parameter leaf :math:`\theta_i` gets a scalar :math:`\alpha_i` (initially 1) and the
    network uses :math:`\alpha_i\theta_i`. Each iteration samples disjoint minibatches
    :math:`S_0, S_1` of ``batch_size // 2`` rows, computes :math:`L = L(S_0 \cup S_1;
    \alpha\theta)` and :math:`g = \nabla_{\alpha\theta} L` (differentiated through, as a function
    of :math:`\alpha`), and :math:`\|g\|` (:math:`\ell_2` for ``"sgd"``, :math:`\ell_1` for
    ``"adam"``). Then:

    - if :math:`\|g\| > \gamma` (a constraint step): the objective is :math:`\|g\|`;
    - else the objective is :math:`L(S_0 \cup S_2;\ \alpha\theta - \eta A(g)) / \eta`, with
      :math:`S_2` a fresh half minibatch and :math:`A(g) = g / \|g\|_2` (``normalize_grad``) or
      :math:`g` for ``"sgd"``, :math:`\mathrm{sign}(g)` for ``"adam"``, held constant (the
      authors' ``grad.detach()``).

    :math:`\alpha` takes one Adam step (learning rate ``lr``, betas 0.9/0.999, eps 1e-8) on the
    objective's gradient, each coordinate first clipped to ``[-grad_clip, grad_clip]``, then is
    clamped to :math:`\alpha \ge` ``min_scale`` for weights and :math:`\alpha \ge 0` for biases
    (a leaf whose name starts with ``bias``). As in the authors' ``RescaleAdam``, constraint steps
    and objective steps keep separate Adam moments and step counts. The result is
    :math:`\alpha_i\theta_i` per leaf. Each iteration's key draws its minibatches (without
    replacement; :math:`S_2` is disjoint from :math:`S_0 \cup S_1` when the batch has
    ``3 * (batch_size // 2)`` rows, as consecutive loader batches are, else drawn independently).

    Published defaults (the authors' ``train_cifar.py`` and ``launch/run_gradinit.sh``):
    ``alg="sgd"``, ``eta=0.1``, ``lr=1e-3`` (``train_cifar.py``'s default, also the launch script's
    for ResNet-110 with BN; the scripts use 1e-2 to 1e-1 for other nets), ``min_scale=0.01``,
    ``steps=390`` (one CIFAR-10 epoch at batch 128), ``grad_clip=1``; ``gamma=1`` and
    ``normalize_grad=True`` are the launch scripts' (``train_cifar.py``'s own defaults are
    ``gamma=inf``, no normalization). The authors' :math:`S_0 \cup S_1` is one training batch (two
    loader batches of half its size: 128 rows at their default ``--batchsize``); here
    ``batch_size`` defaults to 64 rows (halves of 32): pass 128 for theirs.

    Example:
      >>> import jax
      >>> from initbench import models
      >>> net = models.build("mlp", input_shape=(16,), num_classes=4, depth=3, width=32,
      ...                    activation="relu", kernel_init="he_normal")
      >>> x = jax.random.normal(jax.random.key(0), (96, 16))
      >>> y = jax.random.randint(jax.random.key(1), (96,), 0, 4)
      >>> variables = net.init(jax.random.key(2), x[:1])
      >>> new, record = gradinit(net, variables, x, key=jax.random.key(3), labels=y, steps=5)
      >>> record["objective"].shape, record["constraint"].dtype
      ((5,), dtype('bool'))

    Args:
      model: A flax.linen module, called as ``model.apply(variables, x)``, or an nnx module (``variables``
        None; updated in place and returned in place of the variables).
      variables: Its variables ``{"params": ..., ...}`` (or bare params).
      batch: Inputs ``(B, ...)`` the minibatches are drawn from.
      key: PRNG key of the minibatch draws.
      labels: Integer labels ``(B,)`` (required).
      steps: Iterations (a positive integer; the authors' 390).
      lr: Adam's learning rate on the scales, > 0 (the authors' 1e-3).
      eta: The simulated first step's size, > 0 (the authors' 0.1).
      gamma: Bound on the gradient norm, > 0 (the authors' launch scripts' 1).
      min_scale: Least scale of a non-bias leaf, >= 0 (the authors' 0.01).
      grad_clip: Per-coordinate clip of the gradient wrt the scales, >= 0; 0 turns clipping off,
        as in the authors' code (their 1).
      batch_size: Rows of :math:`S_0 \cup S_1`, an integer >= 2 and <= B (halves of
        ``batch_size // 2``).
      normalize_grad: For ``"sgd"``, step along :math:`g / \|g\|_2` (the authors' default True).
      alg: ``"sgd"`` or ``"adam"``: the optimizer whose first step is simulated.

    Returns:
      ``(variables, record)``: the new variables (``{"params": ..., ...}``, other collections as
      given) and a dict of arrays: ``"objective"`` ``(steps,)``, each iteration's objective
      (:math:`\|g\|` or the updated loss over :math:`\eta`); ``"constraint"`` ``(steps,)`` bool,
      whether the iteration was a constraint step; ``"gnorm"`` ``(steps,)``, :math:`\|g\|`;
      ``"loss"`` ``(steps,)``, :math:`L(S_0 \cup S_1)` before each update; ``"initial_loss"``,
      ``loss[0]``; ``"scales"``, ``{leaf path ("layer/dense/kernel"): final alpha}`` (scalars).

    Raises:
      UsageError: missing labels or labels of the wrong shape or dtype; bad
        steps/lr/eta/gamma/min_scale/grad_clip/batch_size/alg.
    """
    what = "gradinit"
    if alg not in ("sgd", "adam"):
        raise UsageError(f"{what}: unknown alg {alg!r}; valid choices: adam, sgd")
    if not isinstance(normalize_grad, bool):
        raise UsageError(f"{what}: normalize_grad must be True or False, got {normalize_grad!r}")
    steps = loop_count(f"{what}: steps", steps)
    lr = _finite(what, "lr", lr, low=0.0, inclusive=False)
    eta = _finite(what, "eta", eta, low=0.0, inclusive=False)
    gamma = _finite(what, "gamma", gamma, low=0.0, inclusive=False)
    min_scale = _finite(what, "min_scale", min_scale, low=0.0, inclusive=True)
    grad_clip = _finite(what, "grad_clip", grad_clip, low=0.0, inclusive=True)
    if labels is None:
        raise UsageError(f"{what}: labels are required (integer classes, one per row of batch), got None")
    batch_size = positive_int(f"{what}: batch_size", batch_size)
    if batch_size < 2:
        raise UsageError(f"{what}: batch_size must be >= 2 (two halves of batch_size // 2 rows), got {batch_size}")
    if isinstance(labels, list | tuple):  # a list of class indices is labels too
        labels = jnp.asarray(labels)
    variables, rows = _prepare(what, model, variables, batch, labels, batch_size)
    params = variables["params"]
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    theta = [leaf for _, leaf in flat]
    names = [_path_str(path) for path, _ in flat]
    floors = [0.0 if name.rsplit("/", 1)[-1].startswith("bias") else min_scale for name in names]
    loss = _loss_fn(model, variables)
    half = batch_size // 2
    disjoint = 3 * half <= rows

    def scaled(alpha: jax.Array) -> Any:
        return jax.tree_util.tree_unflatten(treedef, [alpha[i].astype(t.dtype) * t for i, t in enumerate(theta)])

    def objective(alpha: jax.Array, k: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array]]:
        k01, k2 = jax.random.split(k)
        perm = jax.random.permutation(k01, rows)
        s0, s1 = perm[:half], perm[half : 2 * half]
        s2 = perm[2 * half : 3 * half] if disjoint else _rows(k2, rows, half)
        p = scaled(alpha)
        s01 = jnp.concatenate([s0, s1])
        value, g = jax.value_and_grad(loss)(p, batch[s01], labels[s01])
        gs = jax.tree_util.tree_leaves(g)
        if alg == "adam":  # an array: sum()'s int start is for no leaves, which lax.cond below refuses
            gnorm = cast(jax.Array, sum(jnp.sum(jnp.abs(x)) for x in gs))
        else:
            gnorm = jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in gs))
        constraint = lax.stop_gradient(gnorm) > gamma

        def after_step() -> jax.Array:
            if alg == "adam":
                direction = jax.tree_util.tree_map(jnp.sign, g)
            elif normalize_grad:
                safe = jnp.where(gnorm > 0, gnorm, jnp.ones_like(gnorm))
                direction = jax.tree_util.tree_map(lambda x: x / safe, g)
            else:
                direction = g
            direction = lax.stop_gradient(direction)  # the authors' grad.detach()
            moved = jax.tree_util.tree_map(lambda w, d: w - eta * d, p, direction)
            s02 = jnp.concatenate([s0, s2])
            return loss(moved, batch[s02], labels[s02]) / eta

        obj = lax.cond(constraint, lambda: gnorm, after_step)
        return obj, (constraint, gnorm, value)

    b1, b2, adam_eps = 0.9, 0.999, 1e-8
    floor = jnp.asarray(floors, jnp.float32)

    def step(carry, k):
        # one Adam step on the vector of scales; constraint and objective steps keep separate moments and counts
        alpha, (m_obj, v_obj, n_obj), (m_con, v_con, n_con) = carry
        (obj, (constraint, gnorm, value)), grad = jax.value_and_grad(objective, has_aux=True)(alpha, k)
        if grad_clip > 0:
            grad = jnp.clip(grad, -grad_clip, grad_clip)
        n_obj = n_obj + jnp.where(constraint, 0, 1)
        n_con = n_con + jnp.where(constraint, 1, 0)
        count = jnp.where(constraint, n_con, n_obj).astype(jnp.float32)
        m = b1 * jnp.where(constraint, m_con, m_obj) + (1 - b1) * grad
        v = b2 * jnp.where(constraint, v_con, v_obj) + (1 - b2) * jnp.square(grad)
        update = (m / (1 - b1**count)) / (jnp.sqrt(v / (1 - b2**count)) + adam_eps)
        alpha = jnp.maximum(alpha - lr * update, floor)
        moments_obj = (jnp.where(constraint, m_obj, m), jnp.where(constraint, v_obj, v), n_obj)
        moments_con = (jnp.where(constraint, m, m_con), jnp.where(constraint, v, v_con), n_con)
        return (alpha, moments_obj, moments_con), (obj, constraint, gnorm, value)

    zeros, count0 = jnp.zeros((len(theta),), jnp.float32), jnp.zeros((), jnp.int32)
    carry0 = (jnp.ones((len(theta),), jnp.float32), (zeros, zeros, count0), (zeros, zeros, count0))
    (alpha, _, _), (obj, constraint, gnorm, value) = lax.scan(step, carry0, jax.random.split(key, steps))
    record = {
        "objective": obj,
        "constraint": constraint,
        "gnorm": gnorm,
        "loss": value,
        "initial_loss": value[0],
        "scales": {name: alpha[i] for i, name in enumerate(names)},
    }
    return {**variables, "params": scaled(alpha)}, record
