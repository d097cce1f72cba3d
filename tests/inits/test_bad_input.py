"""Every bad input raises before sampling, with a message naming the value and the choices."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits
from initbench.inits._core import normal_reach

KEY = jax.random.key(0)


@pytest.mark.parametrize(
    ("make", "shape", "error", "match"),
    [
        (inits.he_normal, (10,), ValueError, r"he_normal needs a shape with at least 2 dims, got \(10,\)"),
        (inits.glorot_uniform, (), ValueError, "at least 2 dims"),
        (inits.delta_orthogonal, (16,), ValueError, "delta_orthogonal needs a shape with at least 2 dims"),
        (inits.orthogonal, (-1, 4), ValueError, r"every dim of the shape must be >= 0, got \(-1, 4\)"),
        (inits.normal, (3, -2), ValueError, "must be >= 0"),
        (inits.identity, (4,), ValueError, "identity needs a shape with at least 2 dims"),
    ],
)
def test_bad_shapes(make, shape, error, match):
    with pytest.raises(error, match=match):
        make()(KEY, shape)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, jnp.uint8])
def test_non_float_dtype(dtype):
    with pytest.raises(TypeError, match=r"is not a float dtype; initializers produce float32"):
        inits.he_normal()(KEY, (4, 4), dtype)


@pytest.mark.parametrize("name", ["sparse", "dirac", "identity", "zero_hadamard", "torch_default_bias"])
def test_complex_dtype_is_refused_where_undefined(name):
    init = inits.get(name, **({"fan_in": 4} if name == "torch_default_bias" else {}))
    with pytest.raises(TypeError, match=f"{name}: complex dtype complex64 is not supported by this initializer"):
        init(KEY, (4, 4), jnp.complex64)


def test_complex_truncated_normal_needs_symmetric_bounds():
    with pytest.raises(ValueError, match=r"needs lower = -upper; got lower=-1\.0, upper=2\.0"):
        inits.truncated_normal(0.1, lower=-1.0)(KEY, (4, 4), jnp.complex64)


def test_scale_and_gain_or_high_are_one_argument():
    with pytest.raises(ValueError, match="give scale or gain"):
        inits.orthogonal(2.0, gain=1.5)
    with pytest.raises(ValueError, match="give scale \\(the upper bound\\) or high"):
        inits.uniform(0.5, high=1.0)


@pytest.mark.parametrize("value", [jnp.ones(3), "big", complex(1, 1)])
def test_scale_must_be_a_real_scalar(value):
    with pytest.raises(ValueError, match="stddev must be a"):
        inits.normal(value)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda: inits.variance_scaling(1.0, "fan_inn", "normal"),
            ValueError,
            r"unknown mode 'fan_inn'; valid choices: fan_avg, fan_geo_avg, fan_in, fan_out\. Did you mean 'fan_in'",
        ),
        (
            lambda: inits.variance_scaling(1.0, "fan_in", "gaussian"),
            ValueError,
            r"unknown distribution 'gaussian'; valid choices: normal, truncated_normal, uniform",
        ),
        (lambda: inits.he_normal(mode="avg"), ValueError, "unknown mode 'avg'"),
        (
            lambda: inits.variance_scaling(-1.0, "fan_in", "normal"),
            ValueError,
            "scale must be a finite number >= 0, got -1.0",
        ),
        (lambda: inits.normal(-0.1), ValueError, "normal: stddev must be a finite number >= 0, got -0.1"),
        (lambda: inits.truncated_normal(stddev=float("nan")), ValueError, "stddev must be a finite number"),
        (lambda: inits.orthogonal(gain=-1.0), ValueError, "orthogonal: gain must be a finite number >= 0"),
        (lambda: inits.glorot_normal(gain=-2.0), ValueError, "gain must be a finite number >= 0"),
        (
            lambda: inits.truncated_normal(lower=1.0, upper=1.0),
            ValueError,
            "need lower < upper, got lower=1.0, upper=1.0",
        ),
        (lambda: inits.he_truncated_normal(lower=2.0, upper=-2.0), ValueError, "lower < upper"),
        (lambda: inits.truncated_normal(lower=9.0, upper=10.0), ValueError, "almost no mass"),
        (lambda: inits.uniform(low=1.0, high=0.0), ValueError, "need low <= high, got low=1.0, high=0.0"),
        (lambda: inits.sparse(sparsity=1.0), ValueError, r"sparsity must be a number in \[0, 1\), got 1.0"),
        (lambda: inits.dirac(groups=0), ValueError, "groups must be a positive integer, got 0"),
        (lambda: inits.torch_default_bias(0), ValueError, "fan_in must be a positive integer, got 0"),
        (
            lambda: inits.get("he_nromal"),
            ValueError,
            r"unknown initializer 'he_nromal'; valid choices: .*Did you mean 'he_normal'",
        ),
        (
            lambda: inits.get("he_normal", slope=0.1),
            TypeError,
            r"he_normal\(\) got unexpected argument\(s\) slope; valid arguments: .*negative_slope",
        ),
        (lambda: inits.available("hee"), ValueError, r"unknown family 'hee'.*Did you mean 'he'"),
    ],
)
def test_bad_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_dirac_groups_must_divide_out():
    with pytest.raises(ValueError, match="out features 6 not divisible by groups=4"):
        inits.dirac(groups=4)(KEY, (3, 3, 2, 6))


def test_errors_raise_before_sampling_under_jit():
    # Validation is static (shapes and dtypes), so it fires at trace time, not as a NaN later.
    with pytest.raises(ValueError, match="at least 2 dims"):
        jax.jit(lambda k: inits.he_normal()(k, (5,)))(KEY)


@pytest.mark.parametrize(
    ("init", "dtype", "match"),
    [
        (lambda: inits.normal(1e6), jnp.float16, r"normal: stddev = 1e\+06 overflows float16 \(largest finite 65504\)"),
        (lambda: inits.normal(1e300), jnp.float32, r"stddev = 1e\+300 overflows float32"),
        (lambda: inits.uniform(low=-1e39, high=0.0), jnp.float32, r"uniform: low = -1e\+39 overflows float32"),
        (lambda: inits.constant(7e4), jnp.bfloat16, None),  # bfloat16 reaches 3.4e38: representable
        (lambda: inits.normal(1e6), jnp.float32, None),
        # the Gaussian's tails: 60000 x 5.42 (float32 draws, rounded to float16) overflows 65504
        (lambda: inits.normal(6e4), jnp.float16, r"normal: with stddev = 60000, mean = 0 draws reach about 3.26e\+05"),
        (lambda: inits.normal(2000.0, mean=6e4), jnp.float16, r"draws reach about 7.09e\+04, beyond float16's"),
        (lambda: inits.normal(1.2e4), jnp.float16, None),  # 12000 x 5.43 < 65504
        # bfloat16 is no numpy inexact type: checked all the same
        (lambda: inits.normal(1e38), jnp.bfloat16, r"draws reach about 5.43e\+38, beyond bfloat16's largest finite"),
        (lambda: inits.uniform(low=-1.8e38, high=1.8e38), jnp.float32, r"high - low = 3.6e\+38 overflows float32"),
        (lambda: inits.truncated_normal(3e38), jnp.float32, r"truncated_normal: with stddev = 3e\+38.*reach about 6.8"),
        (
            lambda: inits.truncated_normal(1.0, None, 7.9, 9.0),
            jnp.float32,
            r"float32 cannot resolve the truncated normal",
        ),
        (lambda: inits.truncated_normal(1.0, None, 4.0, 5.0), jnp.float32, None),  # ~1000 float32 steps: drawn
        # scales that underflow: every weight 0 (or denormal), with no word
        (lambda: inits.normal(1e-40), jnp.float32, r"normal: stddev 1e-40 is below float32's smallest normal number"),
        (lambda: inits.normal(1e-10), jnp.float16, r"stddev 1e-10 is below float16's smallest normal number"),
        (lambda: inits.he_normal(negative_slope=1e20), jnp.float32, r"he_normal: variance scale / fan for shape"),
        (lambda: inits.uniform(low=0.0, high=1e-45), jnp.float32, r"uniform: high - low 1e-45 is below float32's"),
    ],
)
def test_a_parameter_that_overflows_the_dtype_is_refused_not_sampled_as_inf(init, dtype, match):
    if match is None:
        assert bool(jnp.isfinite(init()(KEY, (4, 4), dtype)).all())
        return
    with pytest.raises(ValueError, match=match):
        init()(KEY, (4, 4), dtype)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16])  # initbench draws 16-bit floats in float32
def test_normal_reach_bounds_the_draws_jax_can_make(dtype):
    # jax.random.normal is sqrt(2) erfinv(u), u >= nextafter(-1, 0): its most extreme draw, computed by jax
    lo = np.nextafter(np.array(-1, dtype), np.array(0, dtype))
    extreme = abs(float(jax.scipy.special.erfinv(jnp.asarray(lo, dtype)))) * math.sqrt(2)
    reach = normal_reach(np.dtype(dtype))
    assert extreme <= reach <= extreme * 1.003, (extreme, reach)  # 0.1% margin plus the inverse's rounding


def test_variance_scaling_whose_variance_overflows_for_a_shape_is_refused():
    # scale 3e38 over a fan of 1: sqrt(3 x 3e38) is computed from an infinite 3v in float32
    with pytest.raises(ValueError, match=r"variance_scaling: scale 3e\+38 gives variance 3e\+38 for shape \(1, 1\)"):
        inits.variance_scaling(3e38, "fan_in", "uniform")(KEY, (1, 1))
    assert bool(jnp.isfinite(inits.variance_scaling(3e38, "fan_in", "uniform")(KEY, (4, 4))).all())  # 3 x 7.5e37


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("0.5",), r"sparse: sparsity must be a number in \[0, 1\), got '0.5'"),
        ((True,), r"sparse: sparsity must be a number in \[0, 1\), got True"),
        ((float("nan"),), r"sparsity must be a number in \[0, 1\), got nan"),
        ((0.5, "0.1"), r"sparse: stddev must be a number, got '0.1'"),
        ((0.5, True), r"sparse: stddev must be a number, got True"),  # was stddev 1.0
    ],
)
def test_sparse_takes_numbers_only(args, match):
    with pytest.raises(ValueError, match=match):
        inits.sparse(*args)


def test_a_complex_constant_in_a_real_dtype_is_refused():
    with pytest.raises(ValueError, match=r"constant: value \(1\+1j\) is complex and the dtype float32 is not"):
        inits.constant(1 + 1j)(KEY, (2, 2))  # was a ComplexWarning, then a TypeError from inside jax
    np.testing.assert_array_equal(np.asarray(inits.constant(1 + 1j)(KEY, (2,), jnp.complex64)), [1 + 1j, 1 + 1j])


def test_a_spread_the_dtype_cannot_resolve_at_the_mean_and_a_nan_constant_are_refused():
    with pytest.raises(
        ValueError, match=r"normal: float16 resolves only 63.5 near the mean 65000, more than stddev 0.1"
    ):
        inits.normal(0.1, mean=6.5e4)(KEY, (4, 4), jnp.float16)  # every weight was 65000
    with pytest.raises(ValueError, match=r"truncated_normal: bfloat16 resolves only"):
        inits.truncated_normal(0.01, mean=1.0)(KEY, (4, 4), jnp.bfloat16)
    assert float(jnp.std(inits.normal(0.1, mean=1.0)(KEY, (64, 64), jnp.float16).astype(jnp.float32))) > 0.09
    with pytest.raises(ValueError, match=r"constant: value must not be nan, got nan"):
        inits.constant(float("nan"))
    assert bool(jnp.isinf(inits.constant(float("inf"))(KEY, (2,))).all())  # an infinite constant is a value
