import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits
from initbench.inits import _fans

# (layout, shape, hand-computed fan_in, fan_out)
FAN_CASES = [
    (inits.DENSE, (784, 300), 784, 300),
    (inits.conv_layout(), (5, 5, 3, 6), 5 * 5 * 3, 5 * 5 * 6),
    (inits.conv_layout(), (3, 16, 32), 3 * 16, 3 * 32),  # 1-D conv
    (inits.conv_layout(), (3, 3, 3, 8, 16), 27 * 8, 27 * 16),  # 3-D conv
    # grouped conv, 16 in / 4 groups -> kernel in-axis 4; one input reaches 32/4 outputs per tap
    (inits.conv_layout(4), (3, 3, 4, 32), 9 * 4, 9 * 8),
    # depthwise, 8 channels, multiplier 2
    (inits.conv_layout(8), (3, 3, 1, 16), 9, 9 * 2),
    (inits.conv_transpose_layout(), (4, 4, 32, 16), 16 * 32, 16 * 16),
    (inits.conv_transpose_layout(transpose_kernel=True), (4, 4, 16, 32), 16 * 32, 16 * 16),
    (inits.dense_general_layout(2, 1), (8, 4, 10), 32, 10),
    (inits.dense_general_layout(1, 2, 1), (3, 6, 4, 5), 6, 20),
    (inits.ensemble_layout(), (10, 64, 32), 64, 32),
    (inits.ensemble_layout(1, inits.conv_layout()), (5, 3, 3, 4, 8), 36, 72),
]


@pytest.mark.parametrize(("layout", "shape", "fan_in", "fan_out"), FAN_CASES, ids=lambda v: getattr(v, "name", None))
def test_fans_match_hand_computed(layout, shape, fan_in, fan_out):
    assert _fans.compute_fans(shape, layout) == (fan_in, fan_out)


@pytest.mark.parametrize(("layout", "shape", "fan_in", "fan_out"), FAN_CASES, ids=lambda v: getattr(v, "name", None))
def test_layout_reaches_the_sampled_variance(layout, shape, fan_in, fan_out):
    init = inits.variance_scaling(1.0, "fan_out", "normal", layout=layout)
    assert init.target(shape) == (0.0, 1.0 / fan_out)
    init = inits.he_normal(layout=layout)
    assert init.target(shape) == (0.0, 2.0 / fan_in)


def test_fans_agree_with_jax_where_jax_has_the_layout():
    from jax._src.nn.initializers import _compute_fans

    for shape, axes in [((784, 300), (-2, -1, ())), ((3, 3, 16, 32), (-2, -1, ())), ((10, 64, 32), (-2, -1, (0,)))]:
        ours = _fans.compute_fans(shape, inits.Layout(*axes))
        assert ours == tuple(float(f) for f in _compute_fans(shape, *axes))


def test_preset_names_resolve():
    init = inits.he_normal(layout="conv_transpose_transposed_kernel")
    assert init.target((4, 4, 16, 32)) == (0.0, 2.0 / (16 * 32))


def test_flax_dense_general_flattens_batch_into_fan_in():
    # Documented Flax quirk: DenseGeneral hands kernel_init a flattened 2-D shape.
    seen = []

    def spy(key, shape, dtype=jnp.float32):
        seen.append(tuple(shape))
        return jnp.zeros(shape, dtype)

    module = nn.DenseGeneral(features=(4, 5), axis=(-2, -1), kernel_init=spy)
    module.init(jax.random.key(0), jnp.ones((2, 3, 6)))
    assert seen == [(18, 20)]


@pytest.mark.slow  # several seconds: out of the default suite's time (CI runs it)
def test_flax_conv_kernel_layout_is_window_in_per_group_out():
    params = nn.Conv(32, (3, 3), feature_group_count=4).init(jax.random.key(0), jnp.ones((1, 8, 8, 16)))
    assert params["params"]["kernel"].shape == (3, 3, 4, 32)
    params = nn.ConvTranspose(16, (4, 4)).init(jax.random.key(0), jnp.ones((1, 8, 8, 32)))
    assert params["params"]["kernel"].shape == (4, 4, 32, 16)
    params = nn.ConvTranspose(16, (4, 4), transpose_kernel=True).init(jax.random.key(0), jnp.ones((1, 8, 8, 32)))
    assert params["params"]["kernel"].shape == (4, 4, 16, 32)


def test_bad_layouts():
    with pytest.raises(ValueError, match="at least 4 dims"):
        _fans.compute_fans((3, 3, 16), inits.dense_general_layout(2, 1, 1))
    with pytest.raises(ValueError, match="overlap"):
        _fans.compute_fans((4, 4), inits.Layout(0, 0))
    with pytest.raises(ValueError, match="not divisible by feature_group_count=3"):
        _fans.compute_fans((3, 3, 4, 32), inits.conv_layout(3))
    with pytest.raises(ValueError, match="feature_group_count must be a positive integer"):
        inits.conv_layout(0)
    with pytest.raises(ValueError, match=r"unknown layout 'cnov'.*Did you mean 'conv'"):
        inits.he_normal(layout="cnov")
    assert np.isfinite(_fans.compute_fans((1, 1), inits.DENSE)).all()
