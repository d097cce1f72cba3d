"""Measured vs target variance of every registered initializer on a Dense and a Conv kernel."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from initbench import inits

DENSE_SHAPE = (512, 256)
CONV_SHAPE = (3, 3, 64, 128)
# Arguments for factories that need some; the rest use their defaults.
EXAMPLE_KWARGS: dict[str, dict] = {
    "constant": {"value": 0.1},
    "torch_default_bias": {"fan_in": 512},
    "variance_scaling": {"scale": 1.0, "mode": "fan_avg", "distribution": "truncated_normal"},
}


def variance_table(seed: int = 0) -> pd.DataFrame:
    """One row per (initializer, kernel): measured mean/variance, target, and z-scores.

    The z-score of the variance uses SE = sqrt((m4 - var^2) / n) with the sample's fourth
    central moment, so |z| < 5 is the battery's pass criterion.
    """
    rows = []
    key = jax.random.key(seed)
    for entry in inits.available():
        init = entry.factory(**EXAMPLE_KWARGS.get(entry.name, {}))
        for kernel, shape in (("dense", DENSE_SHAPE), ("conv", CONV_SHAPE)):
            if len(shape) < init.min_ndim or (init.max_ndim is not None and len(shape) > init.max_ndim):
                continue
            sample = np.asarray(init(key, shape), np.float64).ravel()
            mean, var = sample.mean(), sample.var()
            target_var = init.target(shape)[1] if init.moments else np.nan
            centred = sample - mean
            se_var = np.sqrt(max(np.mean(centred**4) - var**2, 0.0) / sample.size)
            rows.append(
                {
                    "init": entry.name,
                    "family": entry.family,
                    "kernel": kernel,
                    "shape": "x".join(map(str, shape)),
                    "mean": mean,
                    "variance": var,
                    "target_variance": target_var,
                    "ratio": var / target_var if target_var else np.nan,
                    "z_variance": (var - target_var) / se_var if se_var > 0 else np.nan,
                }
            )
    return pd.DataFrame(rows)
