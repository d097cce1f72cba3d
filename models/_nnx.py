"""initbench's model families as nnx modules: one (linen) definition serves both APIs.

:func:`build_nnx` builds a family with :func:`models.build` and wraps it with Flax's own
linen-to-nnx bridge (``flax.nnx.bridge.ToNNX``), initialized at once (``bridge.lazy_init`` on one
example of ``input_shape``): its ``nnx.Param`` state is exactly the linen model's ``params`` tree
(the same layer names: ``layer_000/dense/kernel``), its ``nnx.BatchStat`` state the
``batch_stats``, and ``module(x, train=True)`` updates BatchNorm's statistics in place, as nnx
code expects. The linen model's initializers draw the weights, from the ``params`` stream of the
given ``nnx.Rngs``. Every model-level scheme takes the module (``inits.fixup(net, None, x)``):
it runs on the wrapped linen model and writes the result into the module in place.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import nnx
from flax.nnx import bridge

from initbench.inits.errors import UsageError


class Family(bridge.ToNNX):
    """An initbench family as an nnx module: ``module(x, train=False)``; see :func:`build_nnx`."""

    def __call__(self, x: Any, train: bool = False) -> Any:  # type: ignore[override]
        """The logits; with ``train`` BatchNorm uses and updates its batch statistics (in place)."""
        return super().__call__(x, train=train, mutable=["batch_stats"] if train else False)


def build_nnx(family: str, *, rngs: nnx.Rngs, input_shape: Any, num_classes: int = 10, **config: Any) -> Family:
    """The family ``family`` as an initialized nnx module (Flax's linen-to-nnx bridge over :func:`models.build`).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from initbench import models
      >>> net = models.build_nnx("mlp", rngs=nnx.Rngs(0), input_shape=(64,), depth=2, width=32,
      ...                        activation="relu", kernel_init="he_normal")
      >>> net(jnp.ones((5, 64))).shape
      (5, 10)
      >>> sorted(nnx.to_pure_dict(nnx.state(net, nnx.Param)))  # the linen model's parameter names
      ['head', 'layer_000', 'layer_001']

    Args:
      family: ``mlp``, ``lenet5``, ``plain_cnn`` or ``resnet``.
      rngs: The module's random streams (its ``params`` stream draws the weights).
      input_shape: One example's shape, without the batch axis.
      num_classes: Output units.
      **config: The family's fields, as :func:`models.build` takes them.

    Raises:
      UsageError: what :func:`models.build` refuses; ``rngs`` that is not an ``nnx.Rngs``.
    """
    from initbench.models._build import build

    if not isinstance(rngs, nnx.Rngs):
        raise UsageError(f"build_nnx: rngs must be an nnx.Rngs (nnx.Rngs(0)), got {type(rngs).__name__}")
    if not hasattr(rngs, "params"):  # neither a params nor a default stream: the weights have no key
        raise UsageError("build_nnx: rngs needs a params (or default) stream to draw the weights: nnx.Rngs(0)")
    linen = build(family, input_shape=input_shape, num_classes=num_classes, **config)
    module = Family(linen, rngs=rngs)
    bridge.lazy_init(module, jnp.zeros((1, *tuple(input_shape)), jnp.float32))
    return module
