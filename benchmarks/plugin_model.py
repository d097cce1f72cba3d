r"""A user's own linen model where initbench names a model family: ``package.module:attribute``.

``attribute`` is a ``flax.linen`` Module class or a builder returning a linen Module. It is
called with the keyword arguments it declares among ``num_classes`` (the dataset's classes),
``input_shape`` (one example's shape), ``depth``, ``width``, ``activation`` (when the run sets
them) and the run's model options (``--model-args``, TOML ``[model]`` fields), typed from its
signature. Its ``__call__(x)`` returns the logits; one that also takes ``train`` gets it (so
BatchNorm and dropout know the phase; its ``batch_stats`` are then trained like initbench's).

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
PROVIDED = ("num_classes", "input_shape")
CORE = ("depth", "width", "activation")


def factory(target: str) -> Any:
    """The user's Module class or builder (imported now: one line when it cannot be)."""
    from initbench.inits.registry import _attribute

    found = _attribute(target)
    if not callable(found):
        raise UsageError(f"model plug-in {target!r} is a {type(found).__name__}, not a linen Module class or builder")
    return found


def parameters(target: str) -> dict[str, inspect.Parameter]:
    """The keyword parameters the factory declares (a Module class: its dataclass fields)."""
    import flax.linen as nn

    found = factory(target)
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
    """

    target: str
    module: Any
    kernel_init: Any
    bias_init: Any
    takes_train: bool

    def init(self, key: jax.Array, x: Any, **kwargs: Any) -> Any:
        """The module's own ``init``, then the run's initializers on its kernels and biases."""
        from initbench.inits import reinit
        from initbench.inits._reinit import leaf_path

        phase = {"train": False} if self.takes_train else {}
        variables = dict(self.module.init(key, x, **phase, **kwargs))
        params = variables.get("params", {})
        paths = [leaf_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
        used = {
            pattern: init
            for name, init in (("kernel", self.kernel_init), ("bias", self.bias_init))
            for pattern in (name, f"*/{name}")
            if any(fnmatch.fnmatchcase(p, pattern) for p in paths)
        }
        if not used:
            return variables
        variables["params"] = reinit(params, jax.random.fold_in(key, 1), used)
        return variables

    def apply(self, variables: Any, x: Any, train: bool = False, mutable: Any = False, **kwargs: Any) -> Any:
        """The module's ``apply``, with ``train`` when it takes one."""
        phase = {"train": train} if self.takes_train else {}
        return self.module.apply(variables, x, mutable=mutable, **phase, **kwargs)


def build(
    target: str, *, input_shape: tuple[int, ...], num_classes: int, kernel_init: Any, bias_init: Any, **config: Any
) -> PluginModel:
    """The user's model with the run's initializers (see the module docstring).

    Raises:
      UsageError: The target cannot be imported or is not callable; an option it does not take
        (naming those it takes); a required one missing; a result that is not a linen Module (an
        nnx module: not yet).
    """
    import flax.linen as nn

    from initbench import inits
    from initbench.inits.registry import FAN_IN_BIASES

    found = factory(target)
    declared = parameters(target)
    if isinstance(bias_init, str):  # a registered name, as initbench's models take it
        if bias_init in FAN_IN_BIASES:
            raise UsageError(
                f"bias init {bias_init} needs each layer's fan-in, which a plug-in model's biases do not carry; "
                "name another bias init"
            )
        bias_init = inits.get(bias_init)
    open_ended = any(p.kind == p.VAR_KEYWORD for p in declared.values())
    given = {k: v for k, v in config.items() if k in declared or open_ended or k not in CORE}
    if "activation" in given and "activation" not in declared and not open_ended:
        given.pop("activation")  # every run has one (relu by default): used only where declared
    unknown = sorted(set(given) - set(declared)) if not open_ended else []
    if unknown:
        raise UsageError(
            f"model plug-in {target} takes no option(s) {', '.join(unknown)}; it takes: "
            f"{', '.join(options(target)) or 'none'}"
        )
    provided = {"num_classes": num_classes, "input_shape": tuple(input_shape)}
    kwargs = {**{k: v for k, v in provided.items() if k in declared}, **given}
    missing = sorted(
        n
        for n, p in declared.items()
        if p.default is p.empty and n not in kwargs and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    )
    if missing:
        raise UsageError(f"model plug-in {target} needs option(s) {', '.join(missing)} (--model-args or [model])")
    module = found(**kwargs)
    if not isinstance(module, nn.Module):
        kind = type(module).__module__.split(".")[0] + "." + type(module).__name__
        raise UsageError(
            f"model plug-in {target}(...) must give a flax.linen Module, got a {kind}"
            + (" (nnx models: not yet; wrap it with nnx.bridge.to_linen)" if "nnx" in type(module).__module__ else "")
        )
    call = inspect.signature(type(module).__call__).parameters
    return PluginModel(target, module, kernel_init, bias_init, "train" in call)
