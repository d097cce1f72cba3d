"""Re-initialize chosen leaves of an existing parameter tree (linen params, nnx state, any pytree)."""

from __future__ import annotations

import fnmatch
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import jax

from initbench.inits.errors import UsageError


def leaf_path(path: tuple[Any, ...]) -> str:
    """A pytree key path as ``a/b/c``; an nnx Variable's trailing ``value`` attribute is dropped."""
    parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
    if parts and isinstance(path[-1], jax.tree_util.GetAttrKey) and parts[-1] == "value":
        parts = parts[:-1]
    return "/".join(parts)


def reinit(tree: Any, key: jax.Array, rules: Mapping[str, Callable[..., jax.Array]]) -> Any:
    r"""Returns ``tree`` with the leaves whose path matches a rule drawn anew by that rule's initializer.

    Each leaf's path is its keys joined with ``/`` (``layer_000/dense/kernel`` in linen params;
    ``params/...`` when whole variables are given; ``linear/kernel`` in an nnx ``State``). A leaf
    takes the first rule, in the mapping's order, whose ``fnmatch`` pattern matches its path
    (``*`` also crosses ``/``); other leaves are returned untouched (the same arrays). The new
    leaf is ``init(k, leaf.shape, leaf.dtype)`` with :math:`k = \mathrm{fold\_in}(\text{key},
    \mathrm{crc32}(\text{path}))`: a leaf's draw depends on the key and its own path only, never
    on which other leaves are re-drawn. Pure: works under ``jit`` and ``vmap`` over keys.

    Example:
      >>> import jax
      >>> import flax.linen as nn
      >>> from initbench import inits
      >>> params = nn.Dense(4).init(jax.random.key(0), jax.numpy.ones((1, 3)))["params"]
      >>> new = inits.reinit(params, jax.random.key(1), {"kernel": inits.zeros(), "bias": inits.ones()})
      >>> float(new["kernel"].sum()), float(new["bias"].sum())
      (0.0, 4.0)

    For an nnx module: ``nnx.update(model, inits.reinit(nnx.state(model, nnx.Param), key, rules))``.

    Args:
      tree: Any pytree of arrays (linen params or variables, an nnx ``State``, optax-style trees).
      key: PRNG key.
      rules: ``{pattern: initializer}``; an initializer is any ``init(key, shape, dtype)``.

    Raises:
      UsageError: a rule that matches no leaf (named, with some of the paths there are), an
        initializer that is not callable, or no rules.
    """
    if not isinstance(rules, Mapping):
        raise UsageError(f"reinit: rules must be a mapping {{pattern: initializer}}, got {rules!r}")
    if not rules:
        raise UsageError("reinit: give at least one {pattern: initializer} rule")
    for pattern, init in rules.items():
        if not isinstance(pattern, str) or not callable(init):
            raise UsageError(f"reinit: a rule is 'pattern': initializer, got {pattern!r}: {init!r}")
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = [leaf_path(p) for p, _ in flat]
    chosen = [next((p for p in rules if fnmatch.fnmatchcase(path, p)), None) for path in paths]
    unused = [p for p in rules if p not in chosen]
    for pattern in unused:
        shadowed = [q for q in rules if q != pattern and any(fnmatch.fnmatchcase(path, pattern) for path in paths)]
        if shadowed:
            raise UsageError(f"reinit: pattern {pattern!r} is shadowed: every leaf it matches takes an earlier rule")
    if unused:
        shown = ", ".join(paths[:6]) + (", ..." if len(paths) > 6 else "")
        raise UsageError(f"reinit: pattern(s) {', '.join(map(repr, unused))} match no leaf; the paths are: {shown}")
    leaves = []
    for path, (_, leaf), rule in zip(paths, flat, chosen, strict=True):
        if rule is None:
            leaves.append(leaf)
            continue
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
            raise UsageError(f"reinit: leaf {path!r} is a {type(leaf).__name__}, not an array: nothing to draw")
        k = jax.random.fold_in(key, zlib.crc32(path.encode()) & 0x7FFFFFFF)
        new = rules[rule](k, leaf.shape, leaf.dtype)
        if getattr(new, "shape", None) != leaf.shape or getattr(new, "dtype", None) != leaf.dtype:
            got = f"{getattr(new, 'shape', None)} {getattr(new, 'dtype', type(new).__name__)}"
            raise UsageError(f"reinit: rule {rule!r} drew {got} for leaf {path!r}, which is {leaf.shape} {leaf.dtype}")
        leaves.append(new)
    return jax.tree_util.tree_unflatten(treedef, leaves)
