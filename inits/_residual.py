r"""Model-level schemes that use the architecture: Fixup, SkipInit, ReZero (residual nets) and ZerO.

Functions over a linen model's variables (the shared capture of :mod:`initbench.inits._model`:
every module that owns a ``kernel``, in call order). A **residual branch** is a module that owns
a scalar parameter ``branch_scale`` (the learned multiplier at the end of the branch, Fixup's
and SkipInit's); its layers are the captured layers below it, except those under a child named
in ``shortcut_names`` (the projection on the skip path). ``models.build("resnet", ...,
residual_scale=..., branch_biases=...)`` writes this structure (``initbench run``/``check``
set those fields when the init is ``fixup``, ``skipinit`` or ``zero_init``); a user's model
gets the same treatment by naming its multiplier ``branch_scale``.

- **Fixup** (Zhang, Dauphin & Ma 2019, "Fixup Initialization: Residual Learning Without
  Normalization", ICLR, section 3): (1) the classification layer and the last layer of each
  residual branch start at 0; (2) every other layer keeps its standard (He) init, and the
  layers inside residual branches are scaled by :math:`L^{-1/(2m-2)}` (``L`` branches of
  ``m`` layers); (3) a scalar multiplier (1) per branch and scalar biases (0) before each
  convolution, linear and activation layer.
- **SkipInit** (De & Smith 2020, "Batch Normalization Biases Residual Blocks Towards the
  Identity Function in Deep Networks", NeurIPS, section 4): no normalization; each branch ends
  in a learned scalar :math:`\alpha = 0`, so every block starts as the identity; He elsewhere.
- **ReZero** (Bachlechner, Majumder, Mao, Cottrell & McAuley 2021, "ReZero is All You Need:
  Fast Convergence at Large Depth", UAI, section 3): :math:`x_{l+1} = x_l + \alpha_l F(x_l)` with
  a learned :math:`\alpha_l = 0`, the layers keeping their init. It is SkipInit's form without
  SkipInit's redraw, and it allows normalization: whatever a branch computes (a pre-LayerNorm
  transformer block, a BatchNorm conv), the block starts as the identity.
- **ZerO** (Zhao, Schaefer & Anandkumar 2021, "ZerO Initialization: Initializing Neural
  Networks with only Zeros and Ones", TMLR 2022, Algorithms 1-2): every layer is the
  identity, a partial identity or :math:`c\, I^* H_m I^*` (:func:`inits.zero_hadamard`; the
  centre tap of a convolution); in a residual net the last layer of each branch and the
  classifier are 0 (the authors' ResNets zero their residual convolutions and classifier).
  Deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from initbench.inits._model import (
    LayerOutputs,
    capture,
    get_path,
    has_path,
    kernel_path,
    linen_variables,
    matrix_shape,
    set_path,
)
from initbench.inits._nnx import NnxModel, in_place
from initbench.inits.errors import UsageError

BRANCH_SCALE = "branch_scale"
_SHORTCUTS = ("shortcut",)


def _leaf_paths(params: Any, keep: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of every parameter for which ``keep(name, value)`` holds."""
    out = []
    for k, v in params.items():
        if hasattr(v, "keys"):
            out += _leaf_paths(v, keep, (*prefix, k))
        elif keep(str(k), v):
            out.append((*prefix, k))
    return out


def _norm_modules(variables: dict[str, Any]) -> list[str]:
    """Normalization found in the variables: batch statistics, or modules named ``*norm*`` holding only scale/bias."""
    found = ["batch_stats"] if "batch_stats" in variables else []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        for k, v in node.items():
            if hasattr(v, "keys"):
                leaves = not any(hasattr(x, "keys") for x in v.values())
                if leaves and "norm" in str(k).lower() and set(map(str, v)) <= {"scale", "bias"}:
                    found.append("/".join((*path, str(k))))
                else:
                    walk(v, (*path, str(k)))

    walk(variables["params"], ())
    return found


# (variables, layers in call order, {branch: its layers}, capture outputs, {branch: blocks it stands for})
_Structure = tuple[dict[str, Any], list[str], dict[str, list[str]], LayerOutputs, dict[str, int]]


def _branch_scales(params: Any) -> dict[str, int]:
    """Residual branches (modules owning ``branch_scale``) -> how many blocks each stands for.

    A scalar ``branch_scale`` is one block; one of shape ``(n,)`` is a scanned stack of ``n``
    identical blocks (``nn.scan`` stores their parameters with a leading axis).
    """
    out = {}
    for p in _leaf_paths(params, lambda name, v: name == BRANCH_SCALE and jnp.ndim(v) in (0, 1)):
        out["/".join(map(str, p[:-1]))] = int(jnp.shape(get_path(params, p))[0]) if jnp.ndim(get_path(params, p)) else 1
    return out


def _branch_scalars(params: Any, branches: dict[str, int]) -> list[tuple[str, ...]]:
    """Every scalar parameter: 0-d ones, and in a scanned branch the ``(n,)`` ones (a scalar per block)."""
    stacks = [b for b, n in branches.items() if n > 1]

    def keep(path: tuple[str, ...], v: Any) -> bool:
        if jnp.ndim(v) == 0:
            return True
        joined = "/".join(map(str, path))
        return jnp.ndim(v) == 1 and any(
            joined.startswith(b + "/") and jnp.shape(v)[0] == branches[b] and joined.count("/") == b.count("/") + 1
            for b in stacks
        )

    return [p for p in _leaf_paths(params, lambda name, v: True) if keep(p, get_path(params, p))]


def _structure(
    what: str,
    model: Any,
    variables: Any,
    batch: Any,
    shortcut_names: Sequence[str],
    *,
    need_branches: bool,
    allow_norm: bool = False,
) -> _Structure:
    """``(variables, layers in call order, {branch: its layers in call order}, outputs, {branch: blocks})``."""
    variables = linen_variables(what, model, variables)
    if isinstance(shortcut_names, str):
        shortcut_names = (shortcut_names,)
    if not isinstance(shortcut_names, Sequence) or not all(isinstance(n, str) for n in shortcut_names):
        raise UsageError(f"{what}: shortcut_names must be a name or a sequence of names, got {shortcut_names!r}")
    multiplicity = _branch_scales(variables["params"])
    branch_paths = list(multiplicity)
    if need_branches:
        if not branch_paths:
            raise UsageError(
                f"{what}: the model has no residual branches: no module owns a scalar '{BRANCH_SCALE}' parameter; "
                f"give each residual block a learned scalar named '{BRANCH_SCALE}' that multiplies its branch's "
                f"output (initbench's resnet has one when residual_scale is set: initbench run/check set it for "
                f"--init {what})"
            )
        norms = [] if allow_norm else model.norms if isinstance(model, NnxModel) else _norm_modules(variables)
        if norms:
            raise UsageError(
                f"{what} is for residual nets without normalization, found {', '.join(norms[:3])} in the model "
                "(its paper's nets have none): remove it, or use rezero, which allows normalization"
            )
    order, outputs = capture(what, model, variables, batch, allow_stacked=True)
    branches: dict[str, list[str]] = {}
    for b in branch_paths:
        prefix = b + "/" if b else ""  # a branch at the root: the model is one residual block
        branches[b] = [
            layer
            for layer in order
            if layer.startswith(prefix) and layer[len(prefix) :].split("/")[0] not in shortcut_names
        ]
    for b, inside in branches.items():
        if not inside:
            raise UsageError(f"{what}: residual branch {b!r} calls no Dense/Conv layer")
        if any(outputs.stacked[layer] != multiplicity[b] for layer in inside):
            raise UsageError(
                f"{what}: residual branch {b!r} stands for {multiplicity[b]} blocks but its layers are stacked "
                f"{sorted({outputs.stacked[layer] for layer in inside})} deep: a branch is one scan body"
            )
    outside = [layer for layer in order if not any(layer in inside for inside in branches.values())]
    if any(outputs.stacked[layer] > 1 for layer in outside):
        raise UsageError(
            f"{what}: layers inside a scan outside any residual branch (no '{BRANCH_SCALE}'): {what} sets each "
            "layer's own kernel: build it with scan=False"
        )
    return variables, order, branches, outputs, multiplicity


def _set_kernel(what: str, params: Any, layer: str, fn: Any) -> Any:
    path = kernel_path(what, params, layer)
    return set_path(params, path, fn(get_path(params, path)))


def _per_block(outputs: LayerOutputs, layer: str, fn: Any) -> Any:
    """``fn(w)`` of one block's kernel, applied to each block of a scanned stack (a leading axis)."""
    if outputs.stacked.get(layer, 1) == 1:
        return fn
    return lambda w: jnp.stack([fn(w[j]) for j in range(w.shape[0])])


def _zero_layer(what: str, params: Any, layer: str) -> Any:
    """The layer's kernel and bias (if any) set to 0."""
    params = _set_kernel(what, params, layer, jnp.zeros_like)
    bias = (*kernel_path(what, params, layer)[:-1], "bias")
    if has_path(params, bias):
        params = set_path(params, bias, jnp.zeros_like(get_path(params, bias)))
    return params


def _he_redraw(what: str, params: Any, order: list[str], key: jax.Array | None, outputs: LayerOutputs) -> Any:
    """Every kernel He-normal, with the fan-in of the matrix it applies (conv: receptive field x in)."""
    if key is None:
        return params
    from initbench.inits._variance import he_normal

    for layer, k in zip(order, jax.random.split(key, len(order)), strict=True):

        def one(w, k, layer=layer):
            return he_normal()(k, matrix_shape(w.shape, outputs.in_axes[layer]), w.dtype).reshape(w.shape)

        def draw(w, k=k, layer=layer, one=one):
            if outputs.stacked.get(layer, 1) == 1:
                return one(w, k)
            # a scanned stack: each block its own draw
            return jnp.stack([one(w[j], kj) for j, kj in enumerate(jax.random.split(k, w.shape[0]))])

        params = _set_kernel(what, params, layer, draw)
    return params


@in_place("fixup")
def fixup(
    model: Any,
    variables: Any,
    batch: jax.Array,
    *,
    key: jax.Array | None = None,
    shortcut_names: Sequence[str] = _SHORTCUTS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    r"""Fixup (Zhang, Dauphin & Ma 2019, section 3) over a residual net without normalization.

    With ``L`` residual branches of ``m`` layers each: the last layer of each branch and the
    classifier (the last layer called) are set to 0 (kernel and bias); the other layers inside
    branches are scaled by :math:`L^{-1/(2m-2)}`; the layers outside branches (stem, shortcut
    projections) keep their init; every branch multiplier ``branch_scale`` is set to 1 and every
    other scalar parameter whose name starts with ``bias`` (Fixup's scalar biases) to 0.

    Args:
      model: A linen module whose residual branches own a scalar ``branch_scale`` and scalar
        biases (``models.build("resnet", ..., normalization="none", residual_scale=1.0,
        branch_biases=True)``).
      variables: Its variables (or bare params).
      batch: Example inputs (only their shape is used: the capture traces the call order).
      key: If given, every kernel is first redrawn He-normal (:func:`inits.he_normal`); None
        keeps the given kernels (the model's He init).
      shortcut_names: Children of a branch module on the skip path, not in the branch.

    Returns:
      ``(variables, record)``: record ``{"branches": L, "layers_per_branch": m, "scale":
      L^(-1/(2m-2)), "zeroed": [layers set to 0], "scaled": [layers scaled]}``.

    Raises:
      ValueError: no ``branch_scale`` (e.g. a plain MLP), normalization layers, branches of
        different depths or of one layer, branches without scalar biases.
    """
    variables, order, branches, outputs, multiplicity = _structure(
        "fixup", model, variables, batch, shortcut_names, need_branches=True
    )
    sizes = sorted({len(v) for v in branches.values()})
    if len(sizes) != 1 or sizes[0] < 2:
        raise UsageError(
            f"fixup: needs residual branches of m >= 2 layers, all alike (the scale L^(-1/(2m-2))), got branches "
            f"of {sizes} layers (a projection on the skip path counts unless its name is in shortcut_names="
            f"{tuple(shortcut_names) if not isinstance(shortcut_names, str) else (shortcut_names,)})"
        )
    scalars = _branch_scalars(variables["params"], multiplicity)
    for b in branches:
        own = [p for p in scalars if "/".join(map(str, p)).startswith(b + "/" if b else "")]
        if not any(str(p[-1]).startswith("bias") for p in own):
            raise UsageError(
                f"fixup: residual branch {b!r} has no scalar biases (Fixup's rule 3): build the resnet with "
                "branch_biases=True"
            )
    n_branches, m = sum(multiplicity[b] for b in branches), sizes[0]  # a scanned stack counts its blocks
    scale = n_branches ** (-1.0 / (2 * m - 2))
    params = _he_redraw("fixup", variables["params"], order, key, outputs)
    zeroed, scaled = [order[-1]], []
    for inside in branches.values():
        zeroed += [inside[-1]] if inside[-1] not in zeroed else []
        scaled += inside[:-1]
    for layer in scaled:
        params = _set_kernel("fixup", params, layer, lambda w: w * jnp.asarray(scale, w.dtype))
    for layer in zeroed:
        params = _zero_layer("fixup", params, layer)
    for p in scalars:
        if p[-1] == BRANCH_SCALE:
            params = set_path(params, p, jnp.ones_like(get_path(params, p)))
        elif str(p[-1]).startswith("bias"):
            params = set_path(params, p, jnp.zeros_like(get_path(params, p)))
    record = {"branches": n_branches, "layers_per_branch": m, "scale": scale, "zeroed": zeroed, "scaled": scaled}
    return {**variables, "params": params}, record


@in_place("skipinit")
def skipinit(
    model: Any,
    variables: Any,
    batch: jax.Array,
    *,
    key: jax.Array | None = None,
    alpha: float = 0.0,
    shortcut_names: Sequence[str] = _SHORTCUTS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    r"""SkipInit (De & Smith 2020, section 4): every residual branch's multiplier set to ``alpha`` (0).

    :math:`x_{l+1} = x_l + \alpha f_l(x_l)` with :math:`\alpha = 0` at initialization: each
    block starts as the identity and the network's output variance does not grow with depth,
    without normalization. The layers keep their (He) init.

    Args:
      model: A linen module whose residual branches own a scalar ``branch_scale``
        (``models.build("resnet", ..., normalization="none", residual_scale=0.0)``).
      variables: Its variables (or bare params).
      batch: Example inputs (their shape).
      key: If given, every kernel is first redrawn He-normal; None keeps the given kernels.
      alpha: The multipliers' initial value (the paper's 0; a finite number).
      shortcut_names: Children of a branch module on the skip path.

    Returns:
      ``(variables, record)``: record ``{"branches": L, "alpha": alpha}``.

    Raises:
      ValueError: no ``branch_scale`` (a plain MLP), normalization layers, a non-finite alpha.
    """
    if isinstance(alpha, bool) or not (isinstance(alpha, int | float) and abs(alpha) <= 3.4028234663852886e38):
        raise UsageError(f"skipinit: alpha must be a finite number (in float32), got {alpha!r}")  # nan fails too
    variables, order, _, outputs, multiplicity = _structure(
        "skipinit", model, variables, batch, shortcut_names, need_branches=True
    )
    params = _he_redraw("skipinit", variables["params"], order, key, outputs)
    for p in _branch_scalars(params, multiplicity):
        if p[-1] == BRANCH_SCALE:
            params = set_path(params, p, jnp.full_like(get_path(params, p), alpha))
    return {**variables, "params": params}, {"branches": sum(multiplicity.values()), "alpha": float(alpha)}


@in_place("rezero")
def rezero(
    model: Any,
    variables: Any,
    batch: jax.Array,
    *,
    key: jax.Array | None = None,
    shortcut_names: Sequence[str] = _SHORTCUTS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    r"""ReZero (Bachlechner et al. 2021, section 3): every residual branch's multiplier set to 0, nothing else.

    :math:`x_{l+1} = x_l + \alpha_l F(x_l)` with the learned :math:`\alpha_l = 0`: every block is
    exactly the identity at initialization, so signals and gradients pass any depth unchanged at
    step 0, and each :math:`\alpha_l` grows as training needs it. The layers keep the model's own
    init (the paper keeps the architecture's standard one). Normalization is allowed anywhere
    (inside a branch it cannot undo the zero multiplier): a pre-LayerNorm transformer block with a
    ``branch_scale`` is ReZero's own setting.

    Args:
      model: A linen module whose residual branches own a scalar ``branch_scale``
        (``models.build("resnet", ..., residual_scale=0.0)``, with any normalization).
      variables: Its variables (or bare params).
      batch: Example inputs (their shape).
      key: Unused (ReZero draws nothing); accepted for the common interface.
      shortcut_names: Children of a branch module on the skip path.

    Returns:
      ``(variables, record)``: record ``{"branches": L}``.

    Raises:
      ValueError: no ``branch_scale`` (a plain MLP).

    Example:
      >>> import jax
      >>> from initbench import inits, models
      >>> net = models.build("resnet", input_shape=(8, 8, 3), num_classes=10, blocks=(2,), width=8,
      ...                    activation="relu", kernel_init="he_normal", normalization="layernorm",
      ...                    residual_scale=1.0)
      >>> x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
      >>> new, record = inits.rezero(net, net.init(jax.random.key(1), x[:1]), x)
      >>> record, float(new["params"]["block_00"]["branch_scale"])
      ({'branches': 2}, 0.0)
    """
    del key
    variables, _, _, _, multiplicity = _structure(
        "rezero", model, variables, batch, shortcut_names, need_branches=True, allow_norm=True
    )
    params = variables["params"]
    for p in _branch_scalars(params, multiplicity):
        if p[-1] == BRANCH_SCALE:
            params = set_path(params, p, jnp.zeros_like(get_path(params, p)))
    return {**variables, "params": params}, {"branches": sum(multiplicity.values())}


@in_place("zero_init")
def zero_init(
    model: Any,
    variables: Any,
    batch: jax.Array,
    *,
    key: jax.Array | None = None,
    shortcut_names: Sequence[str] = _SHORTCUTS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    r"""ZerO over a whole model (Zhao, Schaefer & Anandkumar 2021, Algorithms 1 and 2).

    Every layer's kernel becomes :func:`inits.zero_hadamard`'s matrix for its ``(in, out)``:
    :math:`I` (equal widths), the partial identity :math:`I^*` (narrowing) or
    :math:`c\, I^* H_m I^*`, :math:`c = 2^{-(m-1)/2}` (widening), on the centre tap of a
    convolution. In a residual net (modules owning ``branch_scale``) the last layer of each
    branch and the classifier are 0 and the multipliers 1. Every bias and other scalar is 0.
    Deterministic: ``key`` is accepted for the common interface and unused.

    Args:
      model: A linen module.
      variables: Its variables (or bare params).
      batch: Example inputs (their shape).
      key: Unused (ZerO has no randomness).
      shortcut_names: Children of a branch module on the skip path.

    Returns:
      ``(variables, record)``: record ``{"hadamard": [layers], "identity": [layers], "zeroed": [layers]}``.

    Raises:
      ValueError: a model with no Dense/Conv layer, a scanned stack outside a residual branch.
    """
    from initbench.inits._structured import zero_hadamard, zero_hadamard_matrix

    del key
    variables, order, branches, outputs, multiplicity = _structure(
        "zero_init", model, variables, batch, shortcut_names, need_branches=False
    )
    params = variables["params"]
    zeroed = [inside[-1] for inside in branches.values()] + ([order[-1]] if branches else [])
    record: dict[str, list[str]] = {"hadamard": [], "identity": [], "zeroed": zeroed}
    for layer in order:
        if layer in zeroed:
            params = _zero_layer("zero_init", params, layer)
            continue
        w = get_path(params, kernel_path("zero_init", params, layer))
        one = w.shape[1:] if outputs.stacked.get(layer, 1) > 1 else w.shape  # a block's kernel
        if outputs.conv[layer]:  # the ZerO matrix on the centre tap (Algorithm 2)
            n_in, n_out = one[-2], one[-1]
            fn = _per_block(outputs, layer, lambda w: zero_hadamard()(jax.random.key(0), w.shape, w.dtype))
        else:  # Dense, DenseGeneral: the matrix it applies, (inputs, outputs)
            n_in, n_out = matrix_shape(one, outputs.in_axes[layer])
            matrix = jnp.asarray(zero_hadamard_matrix(n_in, n_out), w.dtype)
            fn = _per_block(outputs, layer, lambda w, m=matrix: m.reshape(w.shape))
        params = _set_kernel("zero_init", params, layer, fn)
        record["hadamard" if n_out > n_in else "identity"].append(layer)
    for path in _leaf_paths(params, lambda name, v: name.startswith("bias")):
        params = set_path(params, path, jnp.zeros_like(get_path(params, path)))
    for p in _branch_scalars(params, multiplicity):
        if p[-1] == BRANCH_SCALE:
            params = set_path(params, p, jnp.ones_like(get_path(params, p)))
    return {**variables, "params": params}, record
