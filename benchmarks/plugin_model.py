r"""A user's own Flax model (linen or nnx) where initbench names a model family: ``package.module:attribute``.

``attribute`` is a ``flax.linen`` or ``flax.nnx`` Module class, or a builder returning one. It is
called with the keyword arguments it declares among ``num_classes`` (the dataset's classes),
``input_shape`` (one example's shape), ``depth``, ``width``, ``activation`` (when the run sets
them) and the run's model options (``--model-args``, TOML ``[model]`` fields), typed from its
signature (one it does not declare is refused, not ignored). Its ``__call__(x)`` returns the
logits, ``(batch, num_classes)`` floats (checked abstractly before any work); one that also takes
``train`` gets it (so BatchNorm knows the phase; its ``batch_stats`` are then trained like
initbench's). A module that needs a PRNG stream when applied (dropout) is refused: the trainer
gives none yet.

**nnx** (:class:`NnxPluginModel`): the class (or builder) also gets ``rngs`` (an
``nnx.Rngs`` of the run's init key) and is split at the boundary into its graph, its
``nnx.Param`` state (the trainer's ``params``) and its ``nnx.BatchStat`` state
(``batch_stats``), as nested dicts keyed by the attribute names (``layers/0/kernel``); every step
merges them back into the module and calls it, in ``train()`` or ``eval()`` mode, so one
functional trainer serves both APIs. Other nnx state (an ``Rngs`` stream held for dropout, a
user's own ``nnx.Variable`` kinds) is refused in one line.

**The run's initializer** replaces every parameter named ``kernel`` (and the bias initializer
every ``bias``) after the module's own ``init``, each drawn from
:math:`\mathrm{fold\_in}(k, \mathrm{crc32}(\text{path}))` (:func:`initbench.inits.reinit`);
fans come from the kernel's shape, as for initbench's layers (``Dense``: ``(in, out)``;
``Conv``: ``(h, w, in, out)``). Other parameters (embeddings, normalization scales) keep the
module's own init. A plug-in model has no initbench layer-naming contract, so model-level
schemes, parametrizations and the layer classes of ``lr_scale``/``init_scale`` (path patterns
work) are refused for it in one line, as are ``initbench check`` and ``coord-check`` (probe any
model with :func:`initbench.benchmarks.analysis.propagation.propagation`).

The run identity records the target with its distribution's version and module digest
(``ModelSpec.plugin``), so an edited model gives new run_ids.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
from typing import Any

import jax

from initbench.inits.errors import UsageError

# what initbench passes when the factory declares it (the rest are the run's model options)
PROVIDED = ("num_classes", "input_shape", "rngs")
CORE = ("depth", "width", "activation")


def factory(target: str) -> Any:
    """The user's Module class or builder (imported now: one line when it cannot be)."""
    from initbench.inits.registry import _attribute

    found = _attribute(target)
    if not callable(found):
        raise UsageError(f"model plug-in {target!r} is a {type(found).__name__}, not a linen Module class or builder")
    return found


def parameters(target: str) -> dict[str, inspect.Parameter]:
    """The keyword parameters the factory declares (a linen Module class: its fields; an nnx one: ``__init__``'s)."""
    import flax.linen as nn
    from flax import nnx

    found = factory(target)
    if isinstance(found, type) and issubclass(found, nnx.Module):
        declared = dict(inspect.signature(found.__init__).parameters)
        declared.pop(next(iter(declared)), None)  # self
        return declared
    if isinstance(found, type) and issubclass(found, nn.Module):
        fields = {f.name: f for f in dataclasses.fields(found) if f.init and f.name not in ("parent", "name")}
        return {
            n: inspect.Parameter(
                n,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                else f.default,
                annotation=f.type,
            )
            for n, f in fields.items()
        }
    return dict(inspect.signature(found).parameters)


def options(target: str) -> dict[str, inspect.Parameter]:
    """The model options a run may set: the factory's parameters less what initbench provides."""
    return {n: p for n, p in parameters(target).items() if n not in PROVIDED and p.kind != p.VAR_KEYWORD}


@dataclasses.dataclass(frozen=True)
class PluginModel:
    """A user's linen module with the run's initializers, behind the ``init``/``apply`` the trainer calls.

    Attributes:
      target: ``package.module:attribute``.
      module: The user's linen module.
      kernel_init: Draws every ``kernel`` parameter.
      bias_init: Draws every ``bias`` parameter.
      takes_train: Whether the module's ``__call__`` takes ``train``.
      bias_given: Whether the run names a bias initializer other than zeros (every run's
        default): then the module must have a ``bias`` for it to draw.
    """

    target: str
    module: Any
    kernel_init: Any
    bias_init: Any
    takes_train: bool
    bias_given: bool = False

    def init(self, key: jax.Array, x: Any, **kwargs: Any) -> Any:
        """The module's own ``init``, then the run's initializers on its kernels and biases.

        Raises:
          UsageError: The module has no ``kernel`` parameter (the run's initializer would draw
            nothing), or no ``bias`` while a bias initializer other than zeros is named.
        """
        from initbench.inits import reinit
        from initbench.inits._reinit import leaf_path

        variables = dict(self._own_init(key, x, **kwargs))
        params = variables.get("params", {})
        paths = [leaf_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
        used = {
            pattern: init
            for name, init in (("kernel", self.kernel_init), ("bias", self.bias_init))
            for pattern in (name, f"*/{name}")
            if any(fnmatch.fnmatchcase(p, pattern) for p in paths)
        }
        if not any(p.endswith("kernel") for p in used):
            shown = ", ".join(paths[:5]) or "none"
            raise UsageError(
                f"model plug-in {self.target} has no parameter named 'kernel' for the run's initializer to draw "
                f"(its parameters: {shown})"
            )
        if self.bias_given and not any(p.endswith("bias") for p in used):
            raise UsageError(f"model plug-in {self.target} has no parameter named 'bias' for the bias initializer")
        variables["params"] = reinit(params, jax.random.fold_in(key, 1), used)
        return variables

    def _own_init(self, key: jax.Array, x: Any, **kwargs: Any) -> Any:
        """The module's own variables (before the run's initializers)."""
        phase = {"train": False} if self.takes_train else {}
        return _user(self.target, "init", lambda: self.module.init(key, x, **phase, **kwargs))

    def apply(self, variables: Any, x: Any, train: bool = False, mutable: Any = False, **kwargs: Any) -> Any:
        """The module's ``apply``, with ``train`` when it takes one."""
        phase = {"train": train} if self.takes_train else {}
        return self.module.apply(variables, x, mutable=mutable, **phase, **kwargs)

    def check(self, variables: Any, x: Any, num_classes: int) -> None:
        """Abstractly: the logits of a batch are ``(batch, num_classes)`` floats, in training and evaluation.

        Raises:
          UsageError: Logits of another shape or dtype, or the module failing on the batch (a
            missing argument, a PRNG stream such as dropout's, which the trainer does not give:
            not yet), named in one line.
        """
        import jax.numpy as jnp

        state = [k for k in variables if k != "params"]
        for train in (False, True) if self.takes_train else (False,):

            def forward(v: Any, x: Any, train: bool = train) -> Any:
                out = self.apply(v, x, train=train, mutable=state if train and state else False)
                return out[0] if train and state else out

            logits = _user(self.target, "apply", lambda f=forward: jax.eval_shape(f, variables, x))
            if not hasattr(logits, "shape") or logits.shape != (x.shape[0], num_classes):
                raise UsageError(
                    f"model plug-in {self.target} gives logits of shape {getattr(logits, 'shape', type(logits))} for a "
                    f"batch of {x.shape[0]}; the dataset has {num_classes} classes: ({x.shape[0]}, {num_classes})"
                )
            if not jnp.issubdtype(logits.dtype, jnp.floating):
                raise UsageError(f"model plug-in {self.target} gives {logits.dtype} logits; they must be floats")


def _paths(state: Any) -> list[tuple[str, ...]]:
    """Each leaf's path in an nnx ``State`` as text keys (its variables' ``.value`` left out), in leaf order."""
    out = []
    for path, _ in jax.tree_util.tree_flatten_with_path(state)[0]:
        keys = [getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path]
        out.append(tuple(str(k) for k in (keys[:-1] if keys and keys[-1] == "value" else keys)))
    return out


@dataclasses.dataclass(frozen=True)
class _Split:
    """One nnx state kind's structure: its treedef and each leaf's text path, to go to and from nested dicts."""

    treedef: Any
    paths: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, state: Any) -> _Split:
        return cls(jax.tree_util.tree_structure(state), tuple(_paths(state)))

    def to_dict(self, state: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path, leaf in zip(self.paths, jax.tree_util.tree_leaves(state), strict=True):
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = leaf
        return out

    def from_dict(self, tree: Any) -> Any:
        leaves = []
        for path in self.paths:
            node = tree
            for key in path:
                node = node[key]
            leaves.append(node)
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


@dataclasses.dataclass(frozen=True)
class NnxPluginModel(PluginModel):
    """A user's nnx module behind the same ``init``/``apply``: split into dicts at the boundary, merged per call.

    ``takes_train`` is always True here: ``check`` then traces the module in ``train()`` and in
    ``eval()`` mode, which differ for BatchNorm and for a Dropout built without rngs.

    Attributes:
      build: ``build(rngs) -> nnx.Module``: the user's class or builder with the run's options.
      graphdef: The module's graph (static), from an abstract build.
      params: The structure of its ``nnx.Param`` state.
      stats: The structure of its ``nnx.BatchStat`` state (None when it has none).
      call_takes_train: Whether its ``__call__`` takes ``train`` (then it gets the phase, as
        well as the ``train()``/``eval()`` mode).
    """

    build: Any = None
    graphdef: Any = None
    params: Any = None
    stats: Any = None
    call_takes_train: bool = False
    abstract: Any = None

    def nnx_state(self, variables: Any) -> dict[str, Any]:
        """``variables`` as the nnx probe takes them: ``{"params": Param state, "other": BatchStat state}``."""
        from flax import nnx

        other = self.stats.from_dict(variables["batch_stats"]) if self.stats is not None else nnx.State({})
        return {"params": self.params.from_dict(variables["params"]), "other": other}

    def _own_init(self, key: jax.Array, x: Any, **kwargs: Any) -> dict[str, Any]:
        from flax import nnx

        module = _user(self.target, "init", lambda: self.build(nnx.Rngs(key)))
        _, params, stats, _ = nnx.split(module, nnx.Param, nnx.BatchStat, ...)
        out = {"params": self.params.to_dict(params)}
        return out | ({"batch_stats": self.stats.to_dict(stats)} if self.stats is not None else {})

    def apply(self, variables: Any, x: Any, train: bool = False, mutable: Any = False, **kwargs: Any) -> Any:
        """Merges ``variables`` into the module and calls it in ``train()``/``eval()`` mode; ``mutable`` as linen's."""
        from flax import nnx

        states = [self.params.from_dict(variables["params"])]
        if self.stats is not None:
            states.append(self.stats.from_dict(variables["batch_stats"]))
        module = nnx.merge(self.graphdef, *states)
        module.train() if train else module.eval()
        out = module(x, train=train, **kwargs) if self.call_takes_train else module(x, **kwargs)
        if mutable is False:
            return out
        wanted = [mutable] if isinstance(mutable, str) else list(mutable)
        updates = {}
        if "batch_stats" in wanted and self.stats is not None:
            updates["batch_stats"] = self.stats.to_dict(nnx.state(module, nnx.BatchStat))
        return out, updates


def _user(target: str, what: str, call: Any) -> Any:
    """Runs the user's code; its own error (not initbench's) becomes one line naming the plug-in."""
    try:
        return call()
    except UsageError:
        raise
    except Exception as err:  # the user's model failed on initbench's call: their code, one line
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UsageError(f"model plug-in {target} failed in {what}: {type(err).__name__}: {text}"[:400]) from err


def build(
    target: str, *, input_shape: tuple[int, ...], num_classes: int, kernel_init: Any, bias_init: Any, **config: Any
) -> PluginModel:
    """The user's model with the run's initializers (see the module docstring).

    Raises:
      UsageError: The target cannot be imported or is not callable; an option it does not take
        (naming those it takes); a required one missing; a result that is not a linen or nnx
        Module; nnx state the trainer cannot carry.
    """
    import flax.linen as nn
    from flax import nnx

    from initbench import inits
    from initbench.inits.registry import FAN_IN_BIASES, missing_arguments

    found = factory(target)
    declared = parameters(target)
    bias_given = not (isinstance(bias_init, str) and bias_init == "zeros")
    if isinstance(bias_init, str):  # a registered name, as initbench's models take it
        if bias_init in FAN_IN_BIASES:
            raise UsageError(
                f"bias init {bias_init} needs each layer's fan-in, which a plug-in model's biases do not carry; "
                "name another bias init"
            )
        bias_init = inits.get(bias_init)
    open_ended = any(p.kind == p.VAR_KEYWORD for p in declared.values())
    given = dict(config)
    for key in CORE:  # a core field the model does not take would be silently ignored: refused, but
        if key in given and key not in declared and not open_ended:  # relu, every run's default activation
            if key == "activation" and given[key] == "relu":
                given.pop(key)
                continue
            raise UsageError(
                f"model plug-in {target} takes no {key} (it would be ignored); it takes: "
                f"{', '.join(options(target)) or 'none'}"
            )
    unknown = sorted(set(given) - set(declared)) if not open_ended else []
    if unknown:
        raise UsageError(
            f"model plug-in {target} takes no option(s) {', '.join(unknown)}; it takes: "
            f"{', '.join(options(target)) or 'none'}"
        )
    provided = {"num_classes": num_classes, "input_shape": tuple(input_shape)}
    kwargs = {**{k: v for k, v in provided.items() if k in declared}, **given}
    missing = sorted(m for m in missing_arguments(declared, kwargs) if m != "rngs")  # nnx's: given at init
    if missing:
        raise UsageError(f"model plug-in {target} needs option(s) {', '.join(missing)} (--model-args or [model])")
    if (isinstance(found, type) and issubclass(found, nnx.Module)) or "rngs" in declared:

        def make(rngs: Any) -> Any:
            module = found(**kwargs, rngs=rngs)
            if not isinstance(module, nnx.Module):  # checked inside: eval_shape cannot return it
                raise UsageError(
                    f"model plug-in {target}(..., rngs=...) must give a flax.nnx Module, got a {_kind(module)}"
                )
            return module

        try:
            abstract = _user(target, "its construction", lambda: nnx.eval_shape(lambda: make(nnx.Rngs(0))))
        except UsageError as err:
            if "metadata" in str(err):  # nnx's word for a plain array held as an attribute: name it
                _plain_arrays(target, lambda: make(nnx.Rngs(0)))
            raise
        return _nnx(target, make, abstract, kernel_init, bias_init, bias_given)
    module = _user(target, "its construction", lambda: found(**kwargs))
    if isinstance(module, nnx.Module):
        raise UsageError(
            f"model plug-in {target} builds an nnx Module without taking rngs; an nnx builder must take "
            "rngs (an nnx.Rngs) so each run's key draws its parameters"
        )
    if not isinstance(module, nn.Module):
        raise UsageError(
            f"model plug-in {target}(...) must give a flax.linen or flax.nnx Module, got a {_kind(module)}"
        )
    call = inspect.signature(type(module).__call__).parameters
    return PluginModel(target, module, kernel_init, bias_init, "train" in call, bias_given)


def _plain_arrays(target: str, make: Any) -> None:
    """Raises one line naming an nnx module's attribute that holds a plain array (not an nnx.Variable)."""
    import numpy as np
    from flax import nnx

    try:
        module = make()
    except Exception:  # it fails eagerly too: the caller's line stands
        return
    for path, sub in nnx.iter_modules(module):
        for name, value in vars(sub).items():
            if isinstance(value, jax.Array | np.ndarray):
                where = "/".join(map(str, (*path, name)))
                raise UsageError(
                    f"model plug-in {target} holds a plain array in attribute {where!r}, which nnx treats as static "
                    "metadata: wrap it in nnx.Param (trained) or nnx.Variable (a constant)"
                )


def _kind(value: Any) -> str:
    return type(value).__module__.split(".")[0] + "." + type(value).__name__


def _nnx(target: str, make: Any, abstract: Any, kernel_init: Any, bias_init: Any, bias_given: bool) -> NnxPluginModel:
    """The nnx module split at the boundary (see the module docstring); other nnx state refused in one line."""
    from flax import nnx

    graphdef, params, stats, rest = nnx.split(abstract, nnx.Param, nnx.BatchStat, ...)
    other = _paths(rest)
    if other:
        raise UsageError(
            f"model plug-in {target} holds nnx state other than nnx.Param and nnx.BatchStat ("
            + ", ".join("/".join(p) for p in other[:3])
            + "): an Rngs stream (dropout) or a Variable kind of its own, which the trainer does not carry yet"
        )
    call = inspect.signature(type(abstract).__call__).parameters
    has_stats = bool(jax.tree_util.tree_leaves(stats))
    return NnxPluginModel(
        target,
        None,
        kernel_init,
        bias_init,
        True,  # checked in train() and eval() mode: they differ (BatchNorm, a Dropout without rngs)
        bias_given,
        build=make,
        graphdef=graphdef,
        params=_Split.of(params),
        stats=_Split.of(stats) if has_stats else None,
        call_takes_train="train" in call,
        abstract=abstract,
    )
