import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits


def riemann_expectation(f, n=400001, half_width=12.0):
    # Independent check of the quadrature: a fine Riemann sum of f(z) phi(z) in float64.
    z = np.linspace(-half_width, half_width, n)
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return float(np.sum(f(z) * pdf) * (z[1] - z[0]))


def test_exact_gains_in_closed_form():
    assert inits.gain("linear", "forward") == pytest.approx(1.0, abs=1e-6)
    assert inits.gain("linear", "backward") == pytest.approx(1.0, abs=1e-6)
    # E[relu(z)^2] = 1/2, E[1{z > 0}] = 1/2
    assert inits.gain("relu", "forward") == pytest.approx(math.sqrt(2), rel=1e-6)
    assert inits.gain("relu", "backward") == pytest.approx(math.sqrt(2), rel=1e-6)
    # leaky relu: E[phi^2] = (1 + a^2) / 2
    for a in [0.01, 0.2, 0.5]:
        expected = math.sqrt(2 / (1 + a * a))
        assert inits.gain("leaky_relu", "forward", negative_slope=a) == pytest.approx(expected, rel=1e-6)
        assert inits.gain("leaky_relu", "backward", negative_slope=a) == pytest.approx(expected, rel=1e-6)
    # SELU is self-normalising: E[selu(z)^2] = 1 at unit variance (Klambauer et al. 2017).
    assert inits.gain("selu", "forward") == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("name", "f", "df"),
    [
        ("tanh", np.tanh, lambda z: 1 - np.tanh(z) ** 2),
        ("sigmoid", lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
        (
            "scaled_tanh",
            lambda z: 1.7159 * np.tanh(2 * z / 3),
            lambda z: 1.7159 * 2 / 3 * (1 - np.tanh(2 * z / 3) ** 2),
        ),
        ("softplus", lambda z: np.log1p(np.exp(z)), lambda z: 1 / (1 + np.exp(-z))),
        (
            "elu",
            lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
            lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0))),
        ),
    ],
)
def test_quadrature_gains_against_independent_integration(name, f, df):
    forward = 1 / math.sqrt(riemann_expectation(lambda z: f(z) ** 2))
    backward = 1 / math.sqrt(riemann_expectation(lambda z: df(z) ** 2))
    assert inits.gain(name, "forward") == pytest.approx(forward, rel=1e-4)
    assert inits.gain(name, "backward") == pytest.approx(backward, rel=1e-4)


def test_every_named_activation_has_exact_gains():
    for name in inits.ACTIVATIONS:
        assert 0 < inits.gain(name, "forward") < 10
        assert 0 < inits.gain(name, "backward") < 10


def test_user_callable():
    assert inits.gain(lambda x: 3.0 * x, "forward") == pytest.approx(1 / 3, rel=1e-6)
    assert inits.gain(jax.nn.relu, "backward") == pytest.approx(math.sqrt(2), rel=1e-6)


def test_activation_metadata():
    acts = inits.ACTIVATIONS
    assert acts["tanh"].odd and acts["tanh"].saturating
    assert not acts["relu"].odd and not acts["relu"].saturating
    x = jnp.linspace(-3, 3, 13)
    for name, act in acts.items():
        fn = act.bind()
        if act.odd:
            np.testing.assert_allclose(fn(-x), -fn(x), atol=1e-6, err_msg=name)


def test_gain_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"PyTorch's calculate_gain has no value for 'gelu'.*convention='forward'"):
        inits.gain("gelu")
    with pytest.raises(ValueError, match=r"unknown activation 'rleu'.*Did you mean 'relu'"):
        inits.gain("rleu")
    with pytest.raises(ValueError, match=r"unknown gain convention 'fwd'.*backward, forward, torch"):
        inits.gain("relu", "fwd")
    with pytest.raises(ValueError, match="takes no parameter"):
        inits.gain("relu", negative_slope=0.1)
    with pytest.raises(ValueError, match="no finite gain"):
        inits.gain(lambda x: 0.0 * x, "forward")
