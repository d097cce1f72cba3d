"""Framework-default presets against their frameworks' published formulas and jax.nn.initializers."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits

KEY = jax.random.key(3)
JI = jax.nn.initializers

BITWISE = [
    (inits.flax_default(), nn.linear.default_kernel_init),
    (inits.lecun_truncated_normal(), JI.lecun_normal()),
    (inits.he_truncated_normal(), JI.he_normal()),
    (inits.glorot_uniform(), JI.glorot_uniform()),
    (inits.keras_default(), JI.glorot_uniform()),
    (inits.he_uniform(), JI.he_uniform()),
    (inits.lecun_uniform(), JI.lecun_uniform()),
    (inits.glorot_normal(), JI.variance_scaling(1.0, "fan_avg", "normal")),
    (inits.he_normal(), JI.variance_scaling(2.0, "fan_in", "normal")),
    (
        inits.variance_scaling(0.7, "fan_geo_avg", "truncated_normal"),
        JI.variance_scaling(0.7, "fan_geo_avg", "truncated_normal"),
    ),
    (inits.normal(0.05), JI.normal(0.05)),
    (inits.orthogonal(1.3), JI.orthogonal(1.3)),
    (inits.zeros(), JI.zeros),
    (inits.ones(), JI.ones),
]


@pytest.mark.parametrize(("ours", "theirs"), BITWISE, ids=lambda v: repr(v)[:40])
@pytest.mark.parametrize("shape", [(64, 48), (3, 3, 8, 16)])
def test_bitwise_equal_to_jax(ours, theirs, shape):
    np.testing.assert_array_equal(np.asarray(ours(KEY, shape)), np.asarray(theirs(KEY, shape, jnp.float32)))


def test_delta_orthogonal_matches_jax_when_in_le_out():
    np.testing.assert_array_equal(
        np.asarray(inits.delta_orthogonal()(KEY, (3, 3, 8, 16))), np.asarray(JI.delta_orthogonal()(KEY, (3, 3, 8, 16)))
    )


@pytest.mark.parametrize("shape", [(300, 200), (5, 5, 6, 16)])
def test_torch_default_bounds_are_one_over_sqrt_fan_in(shape):
    fan_in = math.prod(shape[:-1])
    bound = 1.0 / math.sqrt(fan_in)
    w = np.asarray(inits.torch_default()(KEY, shape), np.float64)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # the support reaches the bound
    assert inits.torch_default().target(shape) == (0.0, pytest.approx(bound**2 / 3))
    b = np.asarray(inits.torch_default_bias(fan_in)(KEY, (shape[-1],)))
    assert np.abs(b).max() <= bound


def test_keras_default_bounds_are_glorot():
    w = np.asarray(inits.keras_default()(KEY, (300, 200)), np.float64)
    limit = math.sqrt(6 / 500)
    assert limit * 0.99 < np.abs(w).max() <= limit


def test_torch_calculate_gain_table():
    # Published values of torch.nn.init.calculate_gain.
    assert inits.gain("linear") == 1.0
    assert inits.gain("sigmoid") == 1.0
    assert inits.gain("tanh") == pytest.approx(5 / 3)
    assert inits.gain("relu") == pytest.approx(math.sqrt(2))
    assert inits.gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert inits.gain("leaky_relu", negative_slope=0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert inits.gain("selu") == pytest.approx(0.75)


def test_against_pytorch_when_installed():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    for name, param in [
        ("linear", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", 0.3),
        ("selu", None),
        ("sigmoid", None),
    ]:
        kwargs = {"negative_slope": param} if param is not None else {}
        assert inits.gain(name, **kwargs) == pytest.approx(torch.nn.init.calculate_gain(name, param))
    layer = torch.nn.Linear(300, 200)
    bound = 1 / math.sqrt(300)
    assert layer.weight.abs().max().item() <= bound and layer.bias.abs().max().item() <= bound
    conv = torch.nn.Conv2d(8, 16, 3, groups=2)
    assert conv.weight.abs().max().item() <= 1 / math.sqrt(4 * 9)
    assert inits.torch_default().target((3, 3, 4, 16))[1] == pytest.approx(1 / (3 * 36))
