"""nnx modules through the model-level schemes: split at the boundary, one functional core, updated in place.

The schemes (:func:`inits.lsuv`, :func:`inits.fixup`, :func:`inits.skipinit`,
:func:`inits.rezero`, :func:`inits.zero_init`, :func:`inits.metainit`, :func:`inits.gradinit`)
are functions over a linen model's variables. An nnx module enters them as an :class:`NnxModel`:
its ``nnx.Param`` state as the ``params`` collection (a pure dict: attribute names, list indices
as ints), everything else (batch statistics, RNG state) held aside and merged into a fresh copy
for every call, so a call never mutates the caller's module and traces under ``jit``, ``vmap``
and ``grad``. The layers the schemes capture are the modules owning an ``nnx.Param`` named
``kernel`` (``nnx.Linear``, ``LinearGeneral``, ``Conv``, ``ConvTranspose``, a user's layer),
named by their attribute path (``blocks/0/conv_a``), in call order. The result is written back
into the caller's module, nnx's in-place convention (``nnx.update``), and the module is returned
in place of the variables. A family built with ``models.build_nnx`` (Flax's linen-to-nnx bridge)
runs as the linen model it wraps, with its parameters and batch statistics as the variables.

Under JAX transforms use nnx's own (``nnx.jit``, ``nnx.vmap``), which carry a module's updates
out of the trace, or split the module yourself: a plain ``jax.jit`` of a function that mutates a
module it closes over leaks tracers into it (nnx's rule, not this module's).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jax

from initbench.inits.errors import UsageError

_NORMS = ("BatchNorm", "LayerNorm", "RMSNorm", "GroupNorm", "InstanceNorm")


def is_nnx(model: Any) -> bool:
    """Whether ``model`` is a Flax nnx module."""
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - old Flax
        return False
    return isinstance(model, nnx.Module)


def _name(path: tuple[Any, ...]) -> str:
    return "/".join(str(p) for p in path)


class NnxModel:
    """A linen-like face of an nnx module: ``apply(variables, x)`` on a fresh merge of its parameters.

    Attributes:
      module: The caller's module (never mutated by :meth:`apply`; :meth:`write_back` updates it).
      variables: ``{"params": pure dict of its nnx.Param state}``.
      norms: The attribute paths of its normalization modules (BatchNorm, LayerNorm, ...).
    """

    def __init__(self, module: Any) -> None:
        from flax import nnx

        self.module = module
        split: tuple[Any, Any, Any] = nnx.split(module, nnx.Param, ...)  # type: ignore[assignment]
        self.graphdef, self._params, self._other = split
        self.variables = {"params": nnx.to_pure_dict(self._params)}
        kinds = tuple(getattr(nnx, n) for n in _NORMS if hasattr(nnx, n))
        self.norms = [_name(p) for p, m in nnx.iter_modules(module) if p and isinstance(m, kinds)]

    def merged(self, params: Any) -> Any:
        """A fresh module holding ``params`` (a pure dict, traced or not) and a copy of the other state."""
        from flax import nnx

        fresh = jax.tree_util.tree_map(lambda x: x, self._params)  # Variables of this trace
        nnx.replace_by_pure_dict(fresh, params)
        return nnx.merge(self.graphdef, fresh, jax.tree_util.tree_map(lambda x: x, self._other))

    def apply(self, variables: Any, *args: Any, mutable: Any = False, **kwargs: Any) -> Any:
        """The module's output on a fresh merge (linen's ``apply``: with ``mutable``, ``(out, {})``)."""
        out = self.merged(variables["params"])(*args, **kwargs)
        return (out, {}) if mutable is not False else out

    def calls(self, params: Any, *args: Any) -> tuple[Any, dict[str, tuple[Any, Any]]]:
        """The output and, per layer in call order, ``(its output, the layer module)``.

        A layer is a module owning an ``nnx.Param`` named ``kernel``; each of their classes'
        ``__call__`` is wrapped for the duration of the call (nnx has no method interceptor).
        """
        module = self.merged(params)
        layers = kernel_layers(module)
        captured: dict[str, tuple[Any, Any]] = {}

        def record(layer: Any, out: Any) -> Any:
            if isinstance(out, jax.Array):  # a kernel owner returning no array holds weights for others
                captured[layers[id(layer)][0]] = (out, layer)
            return out

        with layer_calls(layers, record):
            out = module(*args)
        return out, captured

    def write_back(self, variables: Any) -> Any:
        """Writes ``variables["params"]`` into the caller's module in place; returns the module."""
        return _write_params(self.module, variables)


def linen_view(module: Any) -> tuple[Any, dict[str, Any]] | None:
    """``(the linen model, its variables)`` of a module from Flax's bridge (``bridge.ToNNX``), else None."""
    from flax import nnx
    from flax.nnx import bridge

    if not isinstance(module, bridge.ToNNX):
        return None
    variables = {"params": nnx.to_pure_dict(nnx.state(module, nnx.Param))}
    stats = nnx.to_pure_dict(nnx.state(module, nnx.BatchStat))
    if stats:
        variables["batch_stats"] = stats
    return module.to_nnx__module, variables


def _write_params(module: Any, variables: Any) -> Any:
    """``variables["params"]`` into the module's ``nnx.Param`` state, in place; returns the module."""
    from flax import nnx

    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, variables["params"])
    nnx.update(module, state)
    return module


def kernel_layers(module: Any) -> dict[int, tuple[str, Any]]:
    """The layers of an nnx module by ``id``: ``(path, module)`` of every module owning an ``nnx.Param`` ``kernel``.

    The root too (path ``""``): a model that is one layer. The same definition as linen's
    (a module that owns a ``kernel`` parameter), for the schemes and the probe alike.
    """
    from flax import nnx

    return {
        id(m): (_name(p), m) for p, m in nnx.iter_modules(module) if isinstance(getattr(m, "kernel", None), nnx.Param)
    }


@contextmanager
def layer_calls(layers: dict[int, tuple[str, Any]], hook: Callable[[Any, Any], Any]) -> Iterator[None]:
    """For the duration, a call of one of ``layers`` (a module's :func:`kernel_layers`) returns ``hook(layer, output)``.

    nnx has no method interceptor (linen's ``nn.intercept_methods``): the layers' classes have
    their ``__call__`` wrapped, and restored after. Instances of those classes outside the
    module's layers are untouched; a layer's call nested in its own (a subclass calling
    ``super().__call__``) is not hooked: the outermost call is the layer's output.
    """
    classes = {type(m) for _, m in layers.values()}
    originals = {cls: cls.__dict__["__call__"] for cls in classes if "__call__" in cls.__dict__}
    inherited = [cls for cls in classes if "__call__" not in cls.__dict__]
    active: set[int] = set()

    def wrap(original: Callable) -> Callable:
        def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
            if id(layer) not in layers or id(layer) in active:
                return original(layer, *args, **kwargs)
            active.add(id(layer))
            try:
                out = original(layer, *args, **kwargs)
            finally:
                active.discard(id(layer))
            return hook(layer, out)

        return call

    try:
        for cls, original in originals.items():
            cls.__call__ = wrap(original)
        for cls in inherited:  # a layer class that inherits __call__: its own wrapper, removed after
            cls.__call__ = wrap(cls.__call__)
        yield
    finally:
        for cls, original in originals.items():
            cls.__call__ = original
        for cls in inherited:
            del cls.__call__


def in_place(what: str) -> Callable[[Callable], Callable]:
    """Decorates a scheme ``fn(model, variables, ...) -> (variables, record)`` to take nnx modules too.

    An nnx module (``variables`` None) runs as an :class:`NnxModel`; the new parameters are
    written into it in place and ``(module, record)`` is returned. A linen model is passed through.
    """

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def scheme(model: Any, variables: Any, *args: Any, **kwargs: Any) -> Any:
            if not is_nnx(model):
                return fn(model, variables, *args, **kwargs)
            if variables is not None:
                raise UsageError(
                    f"{what}: an nnx module holds its own parameters: pass None as the variables, got "
                    f"{type(variables).__name__}"
                )
            bridged = linen_view(model)  # initbench's family through Flax's bridge: the linen model itself
            if bridged is not None:
                new, record = fn(*bridged, *args, **kwargs)
                return _write_params(model, new), record
            view = NnxModel(model)
            new, record = fn(view, view.variables, *args, **kwargs)
            return view.write_back(new), record

        return scheme

    return decorate
