"""Validation shared by every initbench package: one error family, one check per kind of value.

Every message names the bad value and the valid choices. Bad input raises a :class:`UsageError`
(a ``ValueError``, so code written against ``jax.nn.initializers`` keeps catching what it
caught) or a :class:`UsageTypeError` (also a ``TypeError``). The ``initbench`` command line
prints these as one line and exits 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable

import numpy as np


class UsageError(ValueError):
    """Bad input from a user: an unknown name, an out-of-range number, an unusable file or directory."""


class UsageTypeError(UsageError, TypeError):
    """Bad input of the wrong kind: an argument a function does not take, a value of the wrong type."""


def unknown_choice(what: str, value: object, choices: Iterable[str]) -> UsageError:
    """A UsageError for an unknown name, listing the choices and the closest match.

    Example:
      >>> str(unknown_choice("activation", "tahn", ["tanh", "relu"]))
      "unknown activation 'tahn'; valid choices: relu, tanh. Did you mean 'tanh'?"
    """
    choices = sorted(choices)
    msg = f"unknown {what} {value!r}; valid choices: {', '.join(choices)}"
    if isinstance(value, str):
        close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
        if close:
            msg += f". Did you mean {close[0]!r}?"
    return UsageError(msg)


def positive_int(name: str, value: object) -> int:
    """Returns ``value`` if it is a positive integer (``True`` and ``4.0`` are not); else raises UsageError.

    Numpy integers are accepted. This is the one positive-integer check of the project.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def loop_count(name: str, value: object) -> int:
    """A positive integer that fits the int32 counter of a jitted loop (``lax.scan``/``while_loop``)."""
    n = positive_int(name, value)
    if n > 2**31 - 1:
        raise UsageError(f"{name} must be at most 2147483647 (an int32 loop counter), got {value!r}")
    return n


def check_nonnegative(name: str, value: float, what: str) -> float:
    """Returns ``value`` as a float; raises UsageError for a negative or non-finite scalar."""
    if type(value).__name__.endswith("Tracer"):  # jax tracers (jit/grad/vmap), without importing jax here
        raise UsageError(f"{what}: {name} must be a concrete number (it fixes the structure), got a traced value")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise UsageError(f"{what}: {name} must be a finite number >= 0, got {value!r}")
    return v


def check_dtype(dtype: object, what: str, *, complex_ok: bool = False) -> np.dtype:
    """Returns ``dtype`` as the numpy dtype JAX will produce; raises UsageTypeError for a non-float dtype.

    ``None`` means JAX's default float (float32, or float64 with ``jax_enable_x64``), as in
    ``jax.nn.initializers``; a 64-bit dtype is canonicalized the way JAX does (float64 is
    float32 unless x64 is enabled). Complex dtypes are accepted when ``complex_ok``.
    """
    import jax  # deferred: listing the registries must not import JAX
    import jax.numpy as jnp

    if dtype is None:
        return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))
    try:
        dt = jnp.dtype(dtype)  # type: ignore[call-overload]  # any object; numpy's stubs take dtype-likes only
    except TypeError:
        raise UsageTypeError(f"{what}: {dtype!r} is not a dtype") from None
    if jnp.issubdtype(dt, jnp.complexfloating):
        if not complex_ok:
            raise UsageTypeError(
                f"{what}: complex dtype {dt} is not supported by this initializer; use a real float dtype "
                "(float32, bfloat16, float16, float64)"
            )
    elif not jnp.issubdtype(dt, jnp.floating):
        raise UsageTypeError(
            f"{what}: dtype {dt} is not a float dtype; initializers produce float32, bfloat16, float16 or float64"
            + (" (or complex64, complex128)" if complex_ok else "")
            + " arrays"
        )
    return np.dtype(jax.dtypes.canonicalize_dtype(dt))


def first_line(err: BaseException) -> str:
    r"""The one line a command line prints for ``err``: its message's first line, or its type's name.

    Example:
      >>> first_line(UsageError("unknown activation 'tahn'\nmore detail"))
      "unknown activation 'tahn'"
    """
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
