"""inits as a drop-in superset of jax.nn.initializers.

jax's own initializer test cases (its tests/nn_test.py, NNInitializersTest), written afresh
against ``inits``: every initializer x shapes x dtypes called as ``X()(key, shape, dtype)`` and
as ``X(dtype=dtype)(key, shape)``, the multi-axis, batch-axis and 1-D error cases, and the
"accidental upcasting" case. Then what a drop-in needs beyond that: the same signatures (same
positional order and defaults, extras keyword-only), the same numbers where the definitions
agree (bitwise), complex dtypes with exact E|w|^2, and traced hyper-parameters. Every
deliberate difference is listed in DIFFERENCES and checked to be what it says.
"""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits

JI = jax.nn.initializers
KEY = jax.random.key(0)

FLOATING = [jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64]
INEXACT = [*FLOATING, jnp.complex64, jnp.complex128]
ALL_SHAPES = [(2,), (2, 2), (2, 3), (3, 2), (2, 3, 4), (4, 3, 2), (2, 3, 4, 5)]


def shapes(min_dims=2, max_dims=4):
    return [s for s in ALL_SHAPES if min_dims <= len(s) <= max_dims]


# (name, factory, shapes, dtypes): jax's table of initializer records, the same cases.
RECORDS = [
    ("uniform", inits.uniform, shapes(1), FLOATING),
    ("normal", inits.normal, shapes(1), INEXACT),
    ("he_normal", inits.he_normal, shapes(), INEXACT),
    ("he_uniform", inits.he_uniform, shapes(), INEXACT),
    ("glorot_normal", inits.glorot_normal, shapes(), INEXACT),
    ("glorot_uniform", inits.glorot_uniform, shapes(), INEXACT),
    ("lecun_normal", inits.lecun_normal, shapes(), INEXACT),
    ("lecun_uniform", inits.lecun_uniform, shapes(), INEXACT),
    ("orthogonal", inits.orthogonal, shapes(2, 2), FLOATING),
    ("truncated_normal", inits.truncated_normal, shapes(1), FLOATING),
    ("delta_orthogonal", inits.delta_orthogonal, shapes(4, 4), FLOATING),
    (
        "variance_scaling_fan_geo_avg",
        lambda **kw: inits.variance_scaling(1, "fan_geo_avg", "normal", **kw),
        shapes(),
        FLOATING,
    ),
]
# By default: every shape in float32 and the first shape in complex64; the rest (bfloat16, float16,
# float64, complex128: without x64 the last two are float32 and complex64 again) is slow-marked to
# keep the default run short (each new shape and dtype compiles). `pytest -m slow` runs them all.
DEFAULT_DTYPES = (jnp.float32, jnp.complex64)
CASES = [
    pytest.param(
        name,
        factory,
        shape,
        dtype,
        id=f"{name}-{shape}-{jnp.dtype(dtype).name}",
        marks=() if dtype == jnp.float32 or (dtype in DEFAULT_DTYPES and shape == ss[0]) else pytest.mark.slow,
    )
    for name, factory, ss, dts in RECORDS
    for shape in ss
    for dtype in dts
]


@pytest.mark.parametrize(("name", "factory", "shape", "dtype"), CASES)
def test_initializer_called_with_dtype(name, factory, shape, dtype):
    out = factory()(jax.random.PRNGKey(0), shape, dtype)  # a legacy uint32 key, as jax's test uses
    assert out.shape == shape
    assert out.dtype == jax.dtypes.canonicalize_dtype(dtype)


# Built with a dtype: one case per record by default (its first shape, float32), every case when slow.
BUILT = [
    pytest.param(*c.values, id=c.id, marks=() if i == first else pytest.mark.slow)
    for i, c in enumerate(CASES)
    for first in [next(j for j, d in enumerate(CASES) if d.values[0] == c.values[0])]
]


@pytest.mark.parametrize(("name", "factory", "shape", "dtype"), BUILT)
def test_initializer_built_with_dtype(name, factory, shape, dtype):
    out = factory(dtype=dtype)(jax.random.PRNGKey(0), shape)
    assert out.shape == shape
    assert out.dtype == jax.dtypes.canonicalize_dtype(dtype)


def test_the_call_dtype_overrides_the_factory_dtype():
    assert inits.normal(dtype=jnp.bfloat16)(KEY, (3, 3), jnp.float16).dtype == jnp.float16
    assert inits.zeros(dtype=jnp.complex64)(KEY, (2,)).dtype == jnp.complex64
    assert inits.zeros(KEY, (2,)).dtype == jnp.float32  # still an initializer itself


def test_variance_scaling_multi_axis_and_batch_axis():
    shape = (2, 3, 4, 5)
    multi = inits.variance_scaling(1.0, "fan_avg", "truncated_normal", in_axis=(0, 1), out_axis=(-2, -1))
    assert multi(KEY, shape).shape == shape
    assert multi.target(shape) == (0.0, pytest.approx(1.0 / ((6 + 20) / 2)))
    batch = inits.variance_scaling(1.0, "fan_avg", "truncated_normal", in_axis=0, out_axis=(2, 3), batch_axis=1)
    assert batch(KEY, shape).shape == shape
    assert batch.target(shape) == (0.0, pytest.approx(1.0 / ((2 + 20) / 2)))
    for ours, theirs in (
        (multi, JI.variance_scaling(1.0, "fan_avg", "truncated_normal", (0, 1), (-2, -1))),
        (batch, JI.variance_scaling(1.0, "fan_avg", "truncated_normal", 0, (2, 3), 1)),
    ):
        np.testing.assert_array_equal(np.asarray(ours(KEY, shape)), np.asarray(theirs(KEY, shape)))


def test_one_dimensional_kernel_is_a_value_error():
    with pytest.raises(ValueError, match="at least 2"):
        inits.variance_scaling(1.0, "fan_avg", "truncated_normal")(KEY, (5,))


@pytest.mark.parametrize("factory", [inits.uniform, inits.normal, inits.truncated_normal])
def test_no_accidental_upcasting(factory):
    init = factory(jnp.array(1.0, dtype=jnp.float32), jnp.bfloat16)
    assert init(KEY, (4, 4)).dtype == jnp.bfloat16


# --- signatures: a superset of jax's ---------------------------------------------------------
JAX_NAMES = sorted(n for n in dir(JI) if not n.startswith("_") and n != "Initializer")


def test_every_jax_initializer_has_an_inits_namesake():
    assert set(JAX_NAMES) <= set(dir(inits)), set(JAX_NAMES) - set(dir(inits))


@pytest.mark.parametrize("name", JAX_NAMES)
def test_signature_is_a_superset(name):
    theirs = list(inspect.signature(getattr(JI, name)).parameters.values())
    ours = list(inspect.signature(getattr(inits, name)).parameters.values())
    assert [(p.name, p.kind) for p in ours[: len(theirs)]] == [(p.name, p.kind) for p in theirs], "names and order"
    for o, t in zip(ours, theirs, strict=False):
        # the same default; a default where jax has none only widens the calls that work
        # (zeros() and ones() return the initializer, zeros(key, shape) the array)
        assert o.default == t.default or (t.default is t.empty and name in ("zeros", "ones")), (o, t)
    assert all(p.kind == p.KEYWORD_ONLY for p in ours[len(theirs) :]), "initbench's extras are keyword-only"


# --- the same numbers where the definitions agree --------------------------------------------
BITWISE = [
    ("uniform", inits.uniform(0.3), JI.uniform(0.3)),
    ("normal", inits.normal(0.05), JI.normal(0.05)),
    ("he_uniform", inits.he_uniform(), JI.he_uniform()),
    ("glorot_uniform", inits.glorot_uniform(), JI.glorot_uniform()),
    ("lecun_uniform", inits.lecun_uniform(), JI.lecun_uniform()),
    ("orthogonal", inits.orthogonal(1.3), JI.orthogonal(1.3)),
    ("constant", inits.constant(-7), JI.constant(-7)),
    (
        "variance_scaling",
        inits.variance_scaling(0.7, "fan_geo_avg", "truncated_normal"),
        JI.variance_scaling(0.7, "fan_geo_avg", "truncated_normal"),
    ),
    # jax's truncated-normal families, under their initbench names (DIFFERENCES)
    ("he_normal", inits.he_truncated_normal(), JI.he_normal()),
    ("lecun_normal", inits.lecun_truncated_normal(), JI.lecun_normal()),
    ("glorot_normal", inits.glorot_truncated_normal(), JI.glorot_normal()),
]


@pytest.mark.parametrize(("name", "ours", "theirs"), BITWISE, ids=[b[0] for b in BITWISE])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_bitwise_equal_to_jax(name, ours, theirs, dtype):
    shape = (16, 12)
    if dtype == jnp.bfloat16 and name in BFLOAT16_DIFFERS:
        pytest.skip(BFLOAT16_DIFFERS[name])
    np.testing.assert_array_equal(np.asarray(ours(KEY, shape, dtype)), np.asarray(theirs(KEY, shape, dtype)))


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
def test_complex_normal_and_uniform_are_jax_bitwise(distribution):
    ours = inits.variance_scaling(2.0, "fan_in", distribution)
    theirs = JI.variance_scaling(2.0, "fan_in", distribution)
    np.testing.assert_array_equal(
        np.asarray(ours(KEY, (16, 12), jnp.complex64)), np.asarray(theirs(KEY, (16, 12), jnp.complex64))
    )


# In bfloat16 the random initializers draw in float32 and round once (DIFFERENCES: "16-bit
# floats"), where jax draws in bfloat16 (its normal loses ~0.5% of the variance, its truncated
# normal tails and centring) or raises (QR of bfloat16). constant is the bfloat16 bitwise case.
BFLOAT16_DIFFERS = {
    n: "16-bit floats sample in float32 here"
    for n in (
        "variance_scaling",
        "he_normal",
        "lecun_normal",
        "glorot_normal",
        "orthogonal",
        "uniform",
        "normal",
        "he_uniform",
        "glorot_uniform",
        "lecun_uniform",
    )
}


def test_bfloat16_truncated_draws_are_the_float32_draw_rounded():
    # the float32 draw, scaled by the bfloat16-rounded variance: within one bfloat16 ulp (2^-7)
    ours = np.asarray(inits.he_truncated_normal()(KEY, (16, 12), jnp.bfloat16), np.float32)
    np.testing.assert_allclose(ours, np.asarray(JI.he_normal()(KEY, (16, 12))), rtol=2**-7, atol=0)
    with pytest.raises(Exception):  # noqa: B017 - jax's own failure (no bfloat16 QR), whatever its type
        JI.orthogonal()(KEY, (16, 12), jnp.bfloat16)
    assert inits.orthogonal()(KEY, (16, 12), jnp.bfloat16).dtype == jnp.bfloat16


# Deliberate differences: (jax call, what initbench does instead, the exact initbench equivalent).
DIFFERENCES = {
    "he_normal": ("truncated normal", "plain normal (He et al. 2015, eq. 10)", "he_truncated_normal"),
    "lecun_normal": ("truncated normal", "plain normal (LeCun et al. 1998)", "lecun_truncated_normal"),
    "glorot_normal": ("truncated normal", "plain normal (Glorot & Bengio 2010, eq. 12)", "glorot_truncated_normal"),
    "truncated_normal": ("stddev of the untruncated normal", "stddev of the samples", "truncated_normal(0.8796 s)"),
    "variance_scaling/complex truncated_normal": ("E|w|^2 1.87% above scale/n", "exact", "-"),
    "delta_orthogonal": ("raises for in > out and for 2-D kernels", "accepts both (documented)", "-"),
    "16-bit floats": ("drawn in 16 bits (variance ~0.5% low); orthogonal raises", "drawn in float32, rounded", "-"),
    "negative scales, bounds with no mass": ("accepted (sign flips, zeros)", "one-line errors (house rule)", "-"),
}


@pytest.mark.parametrize("name", ["he_normal", "lecun_normal", "glorot_normal"])
def test_plain_names_are_plain_normals(name):
    # jax's are truncated at 2 standard deviations of the untruncated normal, 2 / 0.8796 = 2.274
    # sigma of the samples: no |w| beyond. A plain normal has 2.30% of its entries there (SE 0.045%).
    shape = (384, 288)
    edge = 2 * math.sqrt(inits.get(name).target(shape)[1]) / 0.87962566103423978
    ours = np.abs(np.asarray(inits.get(name)(KEY, shape))) > edge
    theirs = np.abs(np.asarray(getattr(JI, name)()(KEY, shape))) > edge * 1.0001
    assert 0.0207 < ours.mean() < 0.0253 and not theirs.any()


def test_truncated_normal_stddev_is_the_samples():
    # jax's stddev is the untruncated normal's; ours of the samples: ours(0.8796 s) == jax(s).
    sigma = 0.87962566103423978  # std of N(0, 1) truncated to (-2, 2)
    ours = np.asarray(inits.truncated_normal(0.5 * sigma)(KEY, (64, 64)))
    theirs = np.asarray(JI.truncated_normal(0.5)(KEY, (64, 64)))
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-7)


def test_delta_orthogonal_accepts_what_jax_refuses():
    w = inits.delta_orthogonal()(KEY, (3, 3, 16, 8))  # in > out: orthonormal columns on the centre tap
    np.testing.assert_allclose(np.asarray(w[1, 1].T @ w[1, 1]), np.eye(8), atol=1e-5)
    with pytest.raises(ValueError):
        JI.delta_orthogonal()(KEY, (3, 3, 16, 8))


# --- complex dtypes: exact E|w|^2, half in each part -----------------------------------------
COMPLEX = [
    ("normal", inits.normal(0.3)),
    ("normal mean", inits.normal(0.3, mean=0.5)),
    ("uniform", inits.uniform(low=-0.2, high=0.6)),
    ("truncated_normal", inits.truncated_normal(0.4)),
    ("truncated_normal upper 1", inits.truncated_normal(0.4, lower=-1.0, upper=1.0)),
    ("he_normal", inits.he_normal()),
    ("he_uniform", inits.he_uniform()),
    ("he_truncated_normal", inits.he_truncated_normal()),
    ("glorot_normal", inits.glorot_normal()),
    ("glorot_uniform", inits.glorot_uniform()),
    ("lecun_normal", inits.lecun_normal()),
    ("lecun_uniform", inits.lecun_uniform()),
    ("lecun_truncated_normal", inits.lecun_truncated_normal()),
    ("variance_scaling fan_avg truncated", inits.variance_scaling(2.0, "fan_avg", "truncated_normal")),
    ("orthogonal", inits.orthogonal(1.5)),
]


def second_moment_bound(z, n_se=5.0):
    """n_se standard errors of mean |z - m|^2, from the sample's own fourth moment."""
    a = np.abs(z - z.mean()) ** 2
    return n_se * a.std() / math.sqrt(a.size)


@pytest.mark.parametrize(("label", "init"), COMPLEX, ids=[c[0] for c in COMPLEX])
@pytest.mark.parametrize("dtype", [jnp.complex64, pytest.param(jnp.complex128, marks=pytest.mark.slow)])
def test_complex_entries_have_exact_moments(label, init, dtype):
    shape = (384, 256)
    mean, var = init.target(shape)
    z = np.asarray(init(KEY, shape, dtype)).astype(np.complex128).ravel()
    assert z.dtype == np.complex128 and np.asarray(init(KEY, shape, dtype)).dtype == jax.dtypes.canonicalize_dtype(
        dtype
    )
    tol = second_moment_bound(z)
    assert abs(np.mean(np.abs(z - mean) ** 2) - var) < tol, (np.mean(np.abs(z - mean) ** 2), var, tol)
    # circular: the real and imaginary parts carry half each, uncorrelated; the mean is real
    re, im = z.real - mean, z.imag
    assert abs(np.mean(re**2) - var / 2) < tol and abs(np.mean(im**2) - var / 2) < tol
    assert abs(np.mean(re * im)) < tol
    assert abs(z.mean() - mean) < 5 * math.sqrt(var / z.size)


def test_jax_complex_truncated_normal_is_the_measured_bias():
    # jax divides by 0.95311 (E|z|^2 = 0.90842) where the truncated second moment is 0.92537.
    shape = (512, 512)
    ours = np.asarray(inits.lecun_truncated_normal()(KEY, shape, jnp.complex64))
    theirs = np.asarray(JI.lecun_normal()(KEY, shape, jnp.complex64))
    ratio_ours = np.mean(np.abs(ours) ** 2) * 512
    ratio_theirs = np.mean(np.abs(theirs) ** 2) * 512
    tol = 5 * second_moment_bound(theirs.ravel(), 1.0) * 512
    assert abs(ratio_ours - 1.0) < tol
    assert abs(ratio_theirs - 0.92537 / 0.95311164380491208**2) < tol  # 1.0187
    assert inits._core.complex_truncated_second_moment(2.0) == pytest.approx(1 - 4 * math.exp(-4) / (1 - math.exp(-4)))


def test_complex_orthogonal_is_unitary():
    w = np.asarray(inits.orthogonal(dtype=jnp.complex64)(KEY, (12, 8)))
    np.testing.assert_allclose(w.conj().T @ w, np.eye(8), atol=1e-5)
    assert np.abs(w.imag).max() > 0.1


# --- traced hyper-parameters -----------------------------------------------------------------
def test_jit_over_a_scale():
    @jax.jit
    def draw(stddev):
        return inits.normal(stddev)(KEY, (8, 8))

    np.testing.assert_allclose(np.asarray(draw(2.0)), 2.0 * np.asarray(inits.normal(1.0)(KEY, (8, 8))), rtol=1e-6)


LINEAR = 1.0  # w = g * base (+ g where the mean is g too): d sum(w) / dg = sum(w(1))
SQRT = 0.5 / math.sqrt(0.7)  # variance_scaling's scale multiplies the variance: w = sqrt(g) * base


@pytest.mark.parametrize(
    ("build", "factor"),
    [
        (lambda g: inits.orthogonal(g), LINEAR),
        (lambda g: inits.orthogonal(gain=g), LINEAR),
        (lambda g: inits.variance_scaling(g, "fan_in", "truncated_normal"), SQRT),
        (lambda g: inits.variance_scaling(g, "fan_avg", "uniform"), SQRT),
        (lambda g: inits.glorot_uniform(gain=g), LINEAR),
        (lambda g: inits.truncated_normal(g, mean=g), LINEAR),
        (lambda g: inits.uniform(g), LINEAR),
        (lambda g: inits.delta_orthogonal(g), LINEAR),
    ],
)
def test_grad_with_respect_to_a_scale(build, factor):
    shape = (3, 3, 4, 4)
    grad = jax.grad(lambda g: build(g)(KEY, shape).sum())(0.7)
    np.testing.assert_allclose(float(grad), factor * float(build(1.0)(KEY, shape).sum()), rtol=1e-4, atol=1e-5)


def test_vmap_over_scales():
    scales = jnp.array([0.5, 1.0, 2.0])
    direct = jax.vmap(lambda s: inits.normal(s)(KEY, (6, 6)))(scales)
    assert direct.shape == (3, 6, 6)
    np.testing.assert_allclose(np.asarray(direct[2]), 2 * np.asarray(direct[1]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(direct[1]), np.asarray(inits.normal(1.0)(KEY, (6, 6))), rtol=1e-6)


def test_target_says_clearly_when_a_scale_is_traced():
    @jax.jit
    def target(stddev):
        return inits.normal(stddev).target((4, 4))[1]

    with pytest.raises(ValueError, match="target\\(shape\\) needs concrete hyper-parameters, but stddev is traced"):
        target(1.0)
    assert inits.normal(jnp.array(0.5)).target((4, 4)) == (0.0, 0.25)  # a concrete array is a number


def test_concrete_values_are_still_validated():
    with pytest.raises(ValueError, match="normal: stddev must be a finite number >= 0, got -1"):
        inits.normal(-1)
    with pytest.raises(ValueError, match="stddev must be a finite number >= 0"):
        inits.normal(jnp.array(-1.0))
    with pytest.raises(ValueError, match="stddev must be a scalar"):
        jax.jit(lambda s: inits.normal(s)(KEY, (2, 2)))(jnp.ones(3))


def test_flax_dense_takes_the_factory_dtype_default():
    import flax.linen as nn

    layer = nn.Dense(4, kernel_init=inits.he_normal(dtype=jnp.bfloat16), param_dtype=jnp.float32)
    params = layer.init(KEY, jnp.ones((1, 3)))["params"]
    assert params["kernel"].dtype == jnp.float32  # Flax passes param_dtype: the call's dtype wins, as in jax


# --- cases found by an independent review ------------------------------------------------------
def test_flax_default_embed_init_overlapping_axes_as_jax():
    import flax.linen as nn

    ids = jnp.ones((2, 8), jnp.int32)
    ours = nn.Embed(100, 16, embedding_init=inits.variance_scaling(1.0, "fan_in", "normal", out_axis=0))
    theirs = nn.Embed(100, 16, embedding_init=JI.variance_scaling(1.0, "fan_in", "normal", out_axis=0))
    a, b = ours.init(KEY, ids)["params"]["embedding"], theirs.init(KEY, ids)["params"]["embedding"]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # fan_in = 16: jax's arithmetic
    with pytest.raises(ValueError, match="overlap"):  # an explicit Layout stays strict
        inits.variance_scaling(1.0, "fan_in", "normal", layout=inits.Layout(0, 0))(KEY, (4, 4))


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_])
def test_zeros_ones_constant_take_any_dtype(dtype):
    for init, value in ((inits.zeros(), 0), (inits.ones(), 1), (inits.constant(1), 1)):
        out = init(KEY, (3,), dtype)
        assert out.dtype == jnp.dtype(dtype) and (np.asarray(out) == value).all()
    with pytest.raises(TypeError, match="not a float dtype"):
        inits.normal()(KEY, (3,), dtype)


def test_empty_and_int_shapes_as_jax():
    for init in (inits.normal(), inits.he_uniform(), inits.orthogonal(), inits.zeros(), inits.truncated_normal()):
        assert init(KEY, (3, 0)).shape == (3, 0)
    assert inits.zeros(KEY, 3).shape == (3,) == JI.zeros(KEY, 3).shape
    with pytest.raises(ValueError, match="empty kernel"):
        inits.normal().target((3, 0))


def test_constant_takes_what_jax_takes():
    assert complex(inits.constant(1 + 2j, jnp.complex64)(KEY, (2,))[0]) == 1 + 2j
    assert np.isneginf(np.asarray(inits.constant(-jnp.inf)(KEY, (2,)))).all()
    out = jax.jit(lambda v: inits.constant(v)(KEY, (2, 3)))(jnp.arange(3.0))
    np.testing.assert_array_equal(np.asarray(out), np.tile(np.arange(3.0), (2, 1)))


def test_explicit_none_dtype_is_the_default_float_as_jax():
    assert (
        inits.normal(dtype=jnp.bfloat16)(KEY, (2,), None).dtype == JI.normal(dtype=jnp.bfloat16)(KEY, (2,), None).dtype
    )
    assert inits.normal(dtype=jnp.bfloat16)(KEY, (2,)).dtype == jnp.bfloat16


def test_bfloat16_variance_is_exact_where_jax_loses_it():
    # 4M entries: SE of the variance ratio ~ sqrt(2 / 4e6) = 0.07%; jax's bfloat16 he_normal is ~1.4% low
    shape = (2000, 2000)
    ours = np.asarray(inits.he_normal(dtype=jnp.bfloat16)(KEY, shape), np.float64).var() / (2 / 2000)
    theirs = np.asarray(JI.variance_scaling(2.0, "fan_in", "normal", dtype=jnp.bfloat16)(KEY, shape), np.float64).var()
    assert abs(ours - 1) < 5 * math.sqrt(2 / 4e6) < abs(theirs / (2 / 2000) - 1)
