"""One parametrized battery over the whole registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits

# Arguments for entries whose factory needs some (or where a non-default case is the
# more demanding one). Every registry entry runs through the battery: see test_every_entry_has_a_case.
CASE_KWARGS = {
    "constant": {"value": 0.3},
    "torch_default_bias": {"fan_in": 100},
    "variance_scaling": {
        "scale": 2.0,
        "mode": "fan_avg",
        "distribution": "truncated_normal",
        "lower": -1.0,
        "upper": 3.0,
    },
    "he_normal": {"negative_slope": 0.2, "mode": "fan_out"},
    "truncated_normal": {"stddev": 0.5, "lower": -0.5, "upper": 2.5, "mean": 0.1},
    "uniform": {"low": -0.2, "high": 0.6},
    "normal": {"stddev": 1.0, "mean": 0.5},
    "sparse": {"sparsity": 0.8, "stddev": 0.5},
}
NAMES = [e.name for e in inits.available()]
# The 16-bit dtypes (one code path: 16-bit floats sample in float32) are slow-marked to keep the
# default run short; `pytest -m slow` runs them. By default bfloat16 is covered by
# tests/inits/test_jax_superset.py (bitwise bfloat16 parity, no accidental upcasting).
DTYPES = [jnp.float32, *(pytest.param(d, marks=pytest.mark.slow) for d in (jnp.bfloat16, jnp.float16))]
DENSE_SHAPE = (384, 256)
CONV_SHAPE = (3, 3, 32, 64)


def make(name):
    return inits.get(name, **CASE_KWARGS.get(name, {}))


def shapes_for(name):
    if name == "identity":  # Dense only, as torch's eye_
        return [(64, 96), (96, 64)]
    if name in ("delta_orthogonal", "dirac"):
        return [CONV_SHAPE, (5, 32, 32), (64, 96)]
    return [DENSE_SHAPE, CONV_SHAPE]


CASES = [(n, s) for n in NAMES for s in shapes_for(n)]
KEY = jax.random.key(20261127)


def test_every_entry_has_a_case():
    assert set(NAMES) == {n for n, _ in CASES}
    assert len(NAMES) == len(set(NAMES))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "bfloat16", "float16"])
@pytest.mark.parametrize(("name", "shape"), CASES)
def test_shape_dtype_determinism_jit(name, shape, dtype):
    init = make(name)
    out = init(KEY, shape, dtype)
    assert out.shape == shape
    assert out.dtype == jnp.dtype(dtype)
    assert bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_array_equal(np.asarray(init(KEY, shape, dtype)), np.asarray(out))
    jitted = jax.jit(init, static_argnums=(1, 2))(KEY, shape, dtype)
    # Same random bits; XLA may fuse `x * scale + shift` into one FMA under jit, a 1-ulp
    # rounding difference of the operands (at most one ulp of the largest of them).
    eps = float(jnp.finfo(dtype).eps)
    ref = np.asarray(out, np.float64)
    np.testing.assert_allclose(np.asarray(jitted, np.float64), ref, rtol=eps, atol=eps * np.abs(ref).max())
    other = init(jax.random.key(1), shape, dtype)
    if inits.entry(name).random:
        assert not np.array_equal(np.asarray(other), np.asarray(out))
    else:
        np.testing.assert_array_equal(np.asarray(other), np.asarray(out))


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_vmap_over_keys_is_bitwise_per_member(name, shape):
    init = make(name)
    keys = jax.random.split(KEY, 3)
    stacked = jax.vmap(lambda k: init(k, shape))(keys)
    assert stacked.shape == (3, *shape)
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(stacked[i]), np.asarray(init(keys[i], shape)))


def moment_bounds(sample, n_se=5.0):
    """Tolerances of about n_se standard errors for the sample mean and variance.

    SE(mean) = sigma / sqrt(n); SE(var) = sqrt((m4 - sigma^4) / n), with the fourth central
    moment m4 estimated from the sample (it covers normal, uniform, truncated and sparse).
    """
    x = sample.astype(np.float64).ravel()
    n = x.size
    centred = x - x.mean()
    var = np.mean(centred**2)
    m4 = np.mean(centred**4)
    return n_se * np.sqrt(var / n), n_se * np.sqrt(max(m4 - var**2, 0.0) / n)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "bfloat16", "float16"])
@pytest.mark.parametrize(("name", "shape"), [c for c in CASES if make(c[0]).moments is not None])
def test_mean_and_variance_match_closed_form(name, shape, dtype):
    init = make(name)
    target_mean, target_var = init.target(shape)
    sample = np.asarray(init(KEY, shape, dtype), np.float64)
    if target_var == 0:
        np.testing.assert_allclose(sample, target_mean, rtol=1e-2 if dtype != jnp.float32 else 1e-7)
        return
    tol_mean, tol_var = moment_bounds(sample)
    # Rounding to a 16-bit float adds at most (half an ulp)^2 of variance: ~1e-5 relative.
    tol_var += 1e-5 * target_var if dtype != jnp.float32 else 0.0
    assert abs(sample.mean() - target_mean) < tol_mean, (sample.mean(), target_mean, tol_mean)
    assert abs(sample.var() - target_var) < tol_var, (sample.var(), target_var, tol_var)


def test_tolerances_are_tight_enough_to_catch_a_wrong_fan():
    # A wrong fan (fan_out instead of fan_in on a 384x256 kernel) must fail the variance check.
    sample = np.asarray(inits.he_normal(mode="fan_out")(KEY, DENSE_SHAPE), np.float64)
    _, tol_var = moment_bounds(sample)
    assert abs(sample.var() - 2.0 / 384) > 10 * tol_var


@pytest.mark.parametrize("name", [n for n in NAMES if make(n).moments is not None])
def test_moments_hold_over_many_keys(name):
    # Exact in expectation: averaging over 64 independent draws on a small kernel shrinks the
    # standard error 8x, so a bias the single-draw test could miss shows here.
    init = make(name)
    shape = (48, 40)
    draws = np.asarray(jax.vmap(lambda k: init(k, shape))(jax.random.split(KEY, 64)), np.float64)
    mean, var = init.target(shape)
    if var == 0:
        np.testing.assert_allclose(draws, mean, rtol=1e-7)
        return
    tol_mean, tol_var = moment_bounds(draws)
    assert abs(draws.mean() - mean) < tol_mean
    assert abs(draws.var() - var) < tol_var


@pytest.mark.parametrize("name", NAMES)
def test_every_initializer_pickles_as_the_call_that_made_it(name):
    # pickle, copy and multiprocessing: an Init travels as its factory call and draws bitwise the same
    import copy
    import pickle

    init = make(name)
    shape = shapes_for(name)[0]
    for back in (pickle.loads(pickle.dumps(init)), copy.deepcopy(init)):
        assert repr(back) == repr(init)
        np.testing.assert_array_equal(np.asarray(back(KEY, shape)), np.asarray(init(KEY, shape)))


def test_flax_names_zeros_init_and_ones_init():
    from flax.linen import initializers as flax_inits

    for ours, theirs in ((inits.zeros_init(), flax_inits.zeros_init()), (inits.ones_init(), flax_inits.ones_init())):
        np.testing.assert_array_equal(np.asarray(ours(KEY, (3, 4))), np.asarray(theirs(KEY, (3, 4))))
    assert repr(inits.zeros_init()) == "zeros()" and repr(inits.ones_init()) == "ones()"


def test_an_init_built_by_hand_refuses_pickling_in_one_line():
    import pickle

    hand = inits.Init("mine", (), lambda key, shape, dtype: jnp.zeros(shape, dtype))
    with pytest.raises(TypeError, match=r"mine\(\) cannot be pickled: it was built with Init\(...\) or changed by"):
        pickle.dumps(hand)
    # a factory's Init changed by dataclasses.replace is no longer its factory's call: refused, never stale
    import dataclasses

    changed = dataclasses.replace(inits.normal(0.1), dtype=jnp.float16)
    with pytest.raises(TypeError, match=r"changed by dataclasses.replace, not made by an initbench factory"):
        pickle.dumps(changed)
