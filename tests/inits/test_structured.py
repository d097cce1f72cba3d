import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits
from initbench.inits._structured import zero_hadamard_matrix

KEY = jax.random.key(7)


@pytest.mark.parametrize("shape", [(128, 64), (64, 128), (100, 100), (3, 3, 16, 32), (3, 3, 64, 32)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal_is_orthogonal(shape, gain):
    w = np.asarray(inits.orthogonal(gain)(KEY, shape), np.float64)
    m = w.reshape(-1, shape[-1])
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(gram.shape[0]), atol=1e-5 * gain**2)


def test_orthogonal_column_axis():
    w = np.asarray(inits.orthogonal(column_axis=0)(KEY, (32, 64)), np.float64)
    np.testing.assert_allclose(w @ w.T, np.eye(32), atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 3, 16, 32), (3, 16, 16), (3, 3, 3, 8, 8), (5, 5, 32, 16)])
def test_delta_orthogonal_centre_tap_orthogonal_other_taps_zero(shape):
    w = np.asarray(inits.delta_orthogonal(1.5)(KEY, shape), np.float64)
    centre = tuple((k - 1) // 2 for k in shape[:-2])
    tap = w[centre]
    n_in, n_out = shape[-2:]
    gram = tap @ tap.T if n_in <= n_out else tap.T @ tap
    np.testing.assert_allclose(gram, 2.25 * np.eye(min(n_in, n_out)), atol=1e-5)
    rest = w.copy()
    rest[centre] = 0
    assert not rest.any()


def test_delta_orthogonal_on_a_dense_kernel_is_orthogonal():
    w = np.asarray(inits.delta_orthogonal()(KEY, (32, 64)), np.float64)
    np.testing.assert_allclose(w @ w.T, np.eye(32), atol=1e-5)


def test_delta_orthogonal_conv_is_an_isometry():
    # A 'SAME' circular conv with a delta-orthogonal kernel (in == out) preserves the norm.
    w = inits.delta_orthogonal()(KEY, (3, 3, 16, 16))
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 16))
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(float(jnp.sum(y**2)), float(jnp.sum(x**2)), rtol=1e-5)


def test_identity_and_dirac_are_exact():
    np.testing.assert_array_equal(inits.identity(2.0)(KEY, (4, 6)), 2.0 * np.eye(4, 6))
    with pytest.raises(ValueError, match="identity takes kernels of at most 2 dims"):  # as torch eye_; dirac for convs
        inits.identity()(KEY, (3, 3, 4, 4))
    np.testing.assert_array_equal(inits.dirac()(KEY, (5, 3)), np.eye(5, 3))
    w = np.asarray(inits.dirac()(KEY, (3, 3, 4, 4)))
    expected = np.zeros((3, 3, 4, 4))
    expected[1, 1] = np.eye(4)
    np.testing.assert_array_equal(w, expected)
    x = jax.random.normal(KEY, (1, 5, 5, 4))
    y = jax.lax.conv_general_dilated(
        x, jnp.asarray(w, jnp.float32), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


def test_dirac_with_groups():
    # 2 groups, 3 in-channels per group, 4 out per group: group g maps its input i to output 4g + i.
    w = np.asarray(inits.dirac(groups=2)(KEY, (3, 3, 3, 8)))
    centre = w[1, 1]
    expected = np.zeros((3, 8))
    for g in range(2):
        for i in range(3):
            expected[i, 4 * g + i] = 1
    np.testing.assert_array_equal(centre, expected)
    assert w.sum() == 6


@pytest.mark.parametrize(("shape", "sparsity"), [((100, 30), 0.9), ((3, 3, 10, 7), 0.5), ((40, 5), 0.0)])
def test_sparse_nonzero_counts_are_exact(shape, sparsity):
    w = np.asarray(inits.sparse(sparsity, 1.0)(KEY, shape)).reshape(-1, shape[-1])
    n_in = w.shape[0]
    expected_nonzero = n_in - int(np.ceil(sparsity * n_in))
    np.testing.assert_array_equal((w != 0).sum(axis=0), expected_nonzero)
    # the zero pattern differs between units (it is random per unit)
    if 0 < sparsity:
        assert len({tuple(col) for col in (w == 0).T}) > 1


def test_zero_hadamard_cases():
    np.testing.assert_array_equal(zero_hadamard_matrix(5, 5), np.eye(5))
    np.testing.assert_array_equal(zero_hadamard_matrix(6, 3), np.eye(6, 3))
    # expanding to exactly 2^m outputs: W W^T = c^2 2^m I = 2 I (c = 2^{-(m-1)/2})
    w = zero_hadamard_matrix(5, 16)
    np.testing.assert_allclose(w @ w.T, 2.0 * np.eye(5), atol=1e-12)
    assert set(np.unique(np.abs(w))) == {2.0 ** (-1.5)}
    conv = np.asarray(inits.zero_hadamard()(KEY, (3, 3, 4, 8)))
    np.testing.assert_allclose(conv[1, 1], zero_hadamard_matrix(4, 8), rtol=1e-7)
    assert not np.delete(conv.reshape(9, 4, 8), 4, axis=0).any()
