"""Strict numerics for every test, and a multi-device CPU for the sharding tests."""

import os

# Must be set before JAX initialises its backends: 4 CPU devices to test sharded cohorts.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
