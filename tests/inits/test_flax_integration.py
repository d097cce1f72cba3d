import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initbench import inits

KEY = jax.random.key(11)


def within_5_se(w, target_var):
    w = np.asarray(w, np.float64).ravel()
    # Normal-like entries: SE(var) <= sqrt(2/n) var (uniform and truncated are lighter-tailed).
    return abs(w.var() - target_var) < 5 * np.sqrt(2 / w.size) * target_var


@pytest.mark.parametrize(
    ("init", "var_of"),
    [
        (inits.he_normal(), lambda fi, fo: 2 / fi),
        (inits.glorot_uniform(), lambda fi, fo: 2 / (fi + fo)),
        (inits.lecun_truncated_normal(), lambda fi, fo: 1 / fi),
        (inits.he_uniform(mode="fan_out"), lambda fi, fo: 2 / fo),
    ],
    ids=repr,
)
def test_dense_and_conv_reach_target_variance(init, var_of):
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(64, (3, 3), kernel_init=init)(x)
            x = nn.Conv(96, (3, 3), kernel_init=init)(x)
            x = x.reshape(x.shape[0], -1)
            return nn.Dense(128, kernel_init=init, bias_init=inits.zeros())(x)

    params = Net().init(KEY, jnp.ones((1, 4, 4, 3)))["params"]
    assert within_5_se(params["Conv_0"]["kernel"], var_of(27, 9 * 64))
    assert within_5_se(params["Conv_1"]["kernel"], var_of(9 * 64, 9 * 96))
    assert within_5_se(params["Dense_0"]["kernel"], var_of(16 * 96, 128))
    assert not np.asarray(params["Dense_0"]["bias"]).any()


def test_grouped_conv_fan_out_with_layout():
    init = inits.he_normal(mode="fan_out", layout=inits.conv_layout(4))
    params = nn.Conv(128, (3, 3), feature_group_count=4, kernel_init=init).init(KEY, jnp.ones((1, 6, 6, 32)))
    assert within_5_se(params["params"]["kernel"], 2 / (9 * 128 / 4))


def test_registry_names_work_as_flax_inits():
    for name in ["he_normal", "xavier_uniform", "orthogonal", "zero_hadamard", "flax_default"]:
        params = nn.Dense(16, kernel_init=inits.get(name)).init(KEY, jnp.ones((2, 16)))
        assert params["params"]["kernel"].shape == (16, 16)


def test_bf16_params():
    params = nn.Dense(256, param_dtype=jnp.bfloat16, kernel_init=inits.he_normal()).init(
        KEY, jnp.ones((1, 512), jnp.bfloat16)
    )
    assert params["params"]["kernel"].dtype == jnp.bfloat16
    assert within_5_se(params["params"]["kernel"], 2 / 512)
