"""Every model-level scheme takes an nnx module: bitwise its linen twin's result, written into the module in place."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from initbench import inits
from initbench.inits.errors import UsageError

X = jax.random.normal(jax.random.key(1), (64, 8))
Y = jax.random.randint(jax.random.key(2), (64,), 0, 10)
# the data-dependent ones run eagerly for seconds: in the slow run, which CI makes
SLOW = pytest.mark.slow
SCHEMES = [  # fixup's comparison costs about 5 s (its He redraw and scaling, eager, on both twins)
    "skipinit",
    "rezero",
    "zero_init",
    *(pytest.param(n, marks=SLOW) for n in ("fixup", "lsuv", "metainit", "gradinit")),
]


class Block(nnx.Module):  # a Fixup-style residual block: scalar biases, two layers, a branch multiplier
    def __init__(self, width, rngs):
        self.bias_a = nnx.Param(jnp.zeros(()))
        self.dense_a = nnx.Linear(width, width, rngs=rngs)
        self.bias_b = nnx.Param(jnp.zeros(()))
        self.dense_b = nnx.Linear(width, width, rngs=rngs)
        self.branch_scale = nnx.Param(jnp.full((), 0.5))

    def __call__(self, x):
        h = jax.nn.relu(self.dense_a(x + self.bias_a))
        return jax.nn.relu(x + self.branch_scale * self.dense_b(h + self.bias_b))


class Net(nnx.Module):
    def __init__(self, rngs, width=16, blocks=4):
        self.stem = nnx.Linear(8, width, rngs=rngs)
        self.blocks = nnx.List([Block(width, rngs) for _ in range(blocks)])
        self.head = nnx.Linear(width, 10, rngs=rngs)

    def __call__(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class LinenBlock(nn.Module):  # the same block in linen, parameters under the same names
    width: int

    @nn.compact
    def __call__(self, x):
        bias_a = self.param("bias_a", nn.initializers.zeros, ())
        bias_b = self.param("bias_b", nn.initializers.zeros, ())
        scale = self.param("branch_scale", nn.initializers.zeros, ())
        h = jax.nn.relu(nn.Dense(self.width, name="dense_a")(x + bias_a))
        return jax.nn.relu(x + scale * nn.Dense(self.width, name="dense_b")(h + bias_b))


class LinenNet(nn.Module):
    width: int = 16
    n: int = 4

    def setup(self):
        self.stem = nn.Dense(self.width)
        self.blocks = [LinenBlock(self.width) for _ in range(self.n)]  # named blocks_0, blocks_1, ...
        self.head = nn.Dense(10)

    def __call__(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def as_linen(tree):
    """An nnx pure dict as the twin's linen params: a list ``blocks: {0: ...}`` becomes ``blocks_0``."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v and all(isinstance(i, int) for i in v):
            out.update({f"{k}_{i}": as_linen(sub) for i, sub in v.items()})
        else:
            out[k] = as_linen(v) if isinstance(v, dict) else v
    return out


def params_of(module):
    return nnx.to_pure_dict(nnx.state(module, nnx.Param))


def arguments(name):
    return {"metainit": {"steps": 5}, "gradinit": {"labels": Y, "steps": 5}}.get(name, {})


@pytest.mark.parametrize("name", SCHEMES)
def test_an_nnx_module_gets_bitwise_its_linen_twins_result_in_place(name):
    net = Net(nnx.Rngs(0))
    start = as_linen(params_of(net))
    twin = LinenNet()
    assert jax.tree.structure(start) == jax.tree.structure(twin.init(jax.random.key(0), X)["params"])
    scheme = getattr(inits, name)
    expected, expected_record = scheme(twin, {"params": start}, X, key=jax.random.key(3), **arguments(name))
    returned, record = scheme(net, None, X, key=jax.random.key(3), **arguments(name))
    assert returned is net  # nnx's convention: the caller's module holds the result
    got = as_linen(params_of(net))
    assert jax.tree.structure(got) == jax.tree.structure(expected["params"])
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected["params"]), strict=True):
        assert jnp.array_equal(a, b)
    if name in ("fixup", "skipinit", "rezero", "zero_init"):  # the record names the layers by the module's paths
        assert str(record).replace("blocks/", "blocks_") == str(expected_record).replace("blocks/", "blocks_")
    moved = [not jnp.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(start), strict=True)]
    assert any(moved)  # the twin comparison is not vacuous: the scheme changed the module


def test_under_nnx_jit_the_update_reaches_the_callers_module():
    net = Net(nnx.Rngs(0))

    @nnx.jit
    def fixup(module, x):
        inits.fixup(module, None, x)

    fixup(net, X)
    assert not jnp.any(net.head.kernel[...]) and float(net.blocks[2].branch_scale[...]) == 1.0
    assert not jnp.any(net.blocks[0].dense_b.kernel[...])  # each branch's last layer at zero


def test_nnx_errors_speak_of_the_users_module():
    net = Net(nnx.Rngs(0))
    with pytest.raises(UsageError, match=r"^fixup: an nnx module holds its own parameters: pass None") as err:
        inits.fixup(net, {"params": params_of(net)}, X)
    assert "\n" not in str(err.value)

    class Normed(Net):
        def __init__(self, rngs):
            super().__init__(rngs)
            self.norm = nnx.LayerNorm(16, rngs=rngs)

        def __call__(self, x):
            return super().__call__(self.norm(self.stem(x)) @ jnp.eye(16, 8))

    normed = Normed(nnx.Rngs(0))
    with pytest.raises(UsageError, match=r"^skipinit is for residual nets without normalization, found norm in"):
        inits.skipinit(normed, None, X)
    before = params_of(normed)
    returned, _ = inits.rezero(normed, None, X)  # rezero allows normalization
    assert returned is normed and float(normed.blocks[0].branch_scale[...]) == 0.0
    assert jnp.array_equal(normed.norm.scale[...], before["norm"]["scale"])

    class Plain(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(8, 8, rngs=rngs)

        def __call__(self, x):
            return self.a(x)

    with pytest.raises(UsageError, match=r"^fixup: the model has no residual branches"):
        inits.fixup(Plain(nnx.Rngs(0)), None, X)
    for scheme in (inits.skipinit, inits.zero_init, inits.lsuv):  # a batch of other features: one line
        with pytest.raises(UsageError, match=r"the batch's examples \(7,\) do not fit the module \(TypeError"):
            scheme(Net(nnx.Rngs(0)), None, jnp.ones((5, 7)))
    with pytest.raises(UsageError, match=r"^lsuv: batch must be an array of inputs \(B, ...\) with B >= 1, got a list"):
        inits.lsuv(Net(nnx.Rngs(0)), None, [[1.0] * 8] * 4)


def test_a_model_that_is_one_layer_is_that_layer_in_linen_and_nnx():
    # the root module owns the kernel (its path is ""): LSUV scales it to unit output variance, and the
    # nnx module gets bitwise its linen twin's kernel (both used to find no layer)
    linen = nn.Dense(4)
    start = linen.init(jax.random.key(0), X)
    linen_out, linen_record = inits.lsuv(linen, start, 3.0 * X)
    module = nnx.Linear(8, 4, rngs=nnx.Rngs(0))
    module.kernel[...], module.bias[...] = start["params"]["kernel"], start["params"]["bias"]
    returned, record = inits.lsuv(module, None, 3.0 * X)
    assert returned is module and record == linen_record and [r["layer"] for r in record] == [""]
    assert record[0]["iterations"] >= 1 and record[0]["converged"]
    assert jnp.array_equal(module.kernel[...], linen_out["params"]["kernel"])
    assert abs(float(jnp.var(linen.apply(linen_out, 3.0 * X))) - 1.0) < 0.1  # LSUV's default tolerance
