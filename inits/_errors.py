"""Shared error builders: every message names the bad value and the valid choices."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import jax.numpy as jnp
import numpy as np


def unknown_choice(what: str, value: object, choices: Iterable[str]) -> ValueError:
    """A ValueError for an unknown name, listing the choices and the closest match."""
    choices = sorted(choices)
    msg = f"unknown {what} {value!r}; valid choices: {', '.join(choices)}"
    if isinstance(value, str):
        close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
        if close:
            msg += f". Did you mean {close[0]!r}?"
    return ValueError(msg)


def check_float_dtype(dtype: object, what: str) -> np.dtype:
    """Returns ``dtype`` as a numpy dtype; raises TypeError unless it is a real float."""
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"{what}: {dtype!r} is not a dtype") from None
    if jnp.issubdtype(dt, jnp.complexfloating):
        raise TypeError(
            f"{what}: complex dtype {dt} is not supported; use a real float dtype (float32, bfloat16, float16, float64)"
        )
    if not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(
            f"{what}: dtype {dt} is not a float dtype; initializers produce float32, "
            "bfloat16, float16 or float64 arrays"
        )
    return dt


def check_nonnegative(name: str, value: float, what: str) -> float:
    """Raises ValueError for a negative or non-finite scalar argument."""
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{what}: {name} must be a finite number >= 0, got {value!r}")
    return v
