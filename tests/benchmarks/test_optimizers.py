"""The optimizer table: every name builds the optax optimizer it claims to be, and bad arguments fail in one line."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from initbench.benchmarks.optimizers import OPTIMIZERS, check_args
from initbench.benchmarks.spec import TrainSpec
from initbench.benchmarks.train import make_optimizer
from initbench.inits.errors import UsageError

LR, WD = 0.01, 0.05


def params_and_grads(steps=6):
    key = jax.random.key(7)
    params = {
        "layer": {"kernel": jax.random.normal(key, (130, 4)), "bias": jnp.full((4,), 0.3)},
        "scale": jnp.asarray(1.5),
    }
    grads = [
        jax.tree_util.tree_map(lambda p, i=i: jax.random.normal(jax.random.fold_in(key, i + 1), p.shape), params)
        for i in range(steps)
    ]
    return params, grads


def trajectory(tx, params, grads):
    state = tx.init(params)
    out = []
    for g in grads:
        with jax.numpy_dtype_promotion("standard"):  # optax's own bias corrections need it (the table's do not)
            updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        out.append(params)
    return out


def adam_atan2_reference(lr, wd, b1=0.9, b2=0.999, a=1.27, b=1.0):
    """Adam-atan2 (Everett et al. 2024) written out: p -= lr (a atan2(m^, b sqrt(v^)) + wd p)."""

    def init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return (0, zeros, zeros)

    def update(g, state, params):
        t, m, v = state
        t += 1
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        u = jax.tree_util.tree_map(
            lambda m, v, p: -lr * (a * jnp.arctan2(m / (1 - b1**t), b * jnp.sqrt(v / (1 - b2**t))) + wd * p),
            m,
            v,
            params,
        )
        return u, (t, m, v)

    return optax.GradientTransformation(init, update)


# optax's own named optimizers: the independent reference for each entry of the table
REFERENCE = {
    "adam_atan2": lambda wd: adam_atan2_reference(LR, wd),
    "sgd": lambda wd: optax.chain(optax.add_decayed_weights(wd), optax.sgd(LR)),
    "momentum": lambda wd: optax.chain(optax.add_decayed_weights(wd), optax.sgd(LR, momentum=0.9)),
    "adam": lambda wd: optax.chain(optax.add_decayed_weights(wd), optax.adam(LR)),
    "adamw": lambda wd: optax.adamw(LR, weight_decay=wd),
    "nadam": lambda wd: optax.chain(optax.add_decayed_weights(wd), optax.nadam(LR)),
    "adamax": lambda wd: optax.chain(optax.add_decayed_weights(wd), optax.adamax(LR)),
    "lion": lambda wd: optax.lion(LR, weight_decay=wd),
    "rmsprop": lambda wd: optax.chain(optax.add_decayed_weights(wd), optax.rmsprop(LR)),
    "adagrad": lambda wd: optax.chain(optax.add_decayed_weights(wd), optax.adagrad(LR)),
    # optax's Adafactor decays by an absolute rate; the table's decoupled decay is scaled by lr
    # (as AdamW's): at a constant lr, rate lr x wd
    "adafactor": lambda wd: optax.adafactor(LR, weight_decay_rate=LR * wd) if wd else optax.adafactor(LR),
}


def test_every_optimizer_has_a_reference():
    assert set(REFERENCE) == set(OPTIMIZERS)


@pytest.mark.parametrize("weight_decay", [0.0, WD])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_each_optimizer_is_optax_s_named_optimizer(name, weight_decay):
    params, grads = params_and_grads()
    mine = trajectory(make_optimizer(TrainSpec(name, lr=LR, weight_decay=weight_decay)), params, grads)
    ref = trajectory(REFERENCE[name](weight_decay), params, grads)
    for a, b in zip(mine, ref, strict=True):
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
            if name == "adam_atan2":  # written out here with other operation orders: float32 rounding
                np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=5e-7)  # ulps of O(1) values
            elif name == "adafactor":
                # optax.adafactor multiplies by lr before the parameter scale and the decay; the
                # table applies lr last: the same update within float32 rounding (a few ulps)
                np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-6, atol=1e-7)
            else:  # the same transformations in the same order: bitwise
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_optimizer_args_reach_the_transformation():
    params, grads = params_and_grads()
    mine = make_optimizer(TrainSpec("adam", lr=LR, optimizer_args={"b2": 0.95, "eps": 1e-6}))
    ref = optax.adam(LR, b2=0.95, eps=1e-6)
    np.testing.assert_array_equal(
        np.asarray(trajectory(mine, params, grads)[-1]["layer"]["kernel"]),
        np.asarray(trajectory(ref, params, grads)[-1]["layer"]["kernel"]),
    )
    nesterov = make_optimizer(TrainSpec("momentum", lr=LR, momentum=0.8, optimizer_args={"nesterov": True}))
    ref = optax.sgd(LR, momentum=0.8, nesterov=True)
    np.testing.assert_array_equal(
        np.asarray(trajectory(nesterov, params, grads)[-1]["scale"]),
        np.asarray(trajectory(ref, params, grads)[-1]["scale"]),
    )


def test_clipping_and_per_parameter_weight_decay():
    params, grads = params_and_grads()
    grads = [jax.tree_util.tree_map(lambda g: 10 * g, g) for g in grads]  # every step is clipped
    spec = TrainSpec("adamw", lr=LR, weight_decay=WD, clip_norm=1.0, wd_scale={"bias": 0.0, "scalar": 0.5})
    mine = trajectory(make_optimizer(spec, params=params), params, grads)
    # optax's AdamW decays by a mask only; write the scaled decay out: kernels 1, biases 0, scalars 0.5
    scales = {"layer": {"kernel": 1.0, "bias": 0.0}, "scale": 0.5}

    def decay(updates, state, p):
        return jax.tree_util.tree_map(lambda u, w, s: u + (WD * s) * w, updates, p, scales), state

    ref_tx = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.scale_by_adam(),
        optax.GradientTransformation(lambda p: optax.EmptyState(), decay),
        optax.scale_by_learning_rate(LR),
    )
    ref = trajectory(ref_tx, params, grads)
    for a, b in zip(mine, ref, strict=True):
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # the biases' decay is off: with a zero gradient they stay put while kernels shrink
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    tx = make_optimizer(spec, params=params)
    updates, _ = tx.update(zero, tx.init(params), params)
    assert float(jnp.max(jnp.abs(updates["layer"]["bias"]))) == 0.0
    np.testing.assert_allclose(
        np.asarray(updates["layer"]["kernel"]), -LR * WD * np.asarray(params["layer"]["kernel"]), rtol=1e-6
    )


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_warmup_is_linear_from_zero_to_the_peak(schedule):
    spec = TrainSpec("sgd", lr=0.2, steps=100, schedule=schedule, warmup_steps=10)
    assert spec.schedule == ("constant" if schedule == "constant" else "warmup_cosine") and spec.warmup == 10
    tx = make_optimizer(spec)
    p = {"w": jnp.zeros(())}
    state = tx.init(p)
    rates = []
    for _ in range(30):
        updates, state = tx.update({"w": jnp.ones(())}, state, p)
        rates.append(-float(updates["w"]))
    np.testing.assert_allclose(rates[:11], 0.2 * np.arange(11) / 10, rtol=1e-6, atol=1e-9)
    if schedule == "constant":
        assert rates[10:] == [pytest.approx(0.2, rel=1e-7)] * 20
    else:  # cosine decay over the remaining 90 steps
        expected = [0.2 * 0.5 * (1 + math.cos(math.pi * (t - 10) / 90)) for t in range(10, 30)]
        np.testing.assert_allclose(rates[10:], expected, rtol=1e-5)


def test_one_run_has_one_form():
    # unused or default arguments never change the identity (one run, one run_id)
    assert TrainSpec("momentum").momentum == 0.9 and TrainSpec("adam").momentum is None
    assert TrainSpec("momentum", momentum=0.9) == TrainSpec("momentum")
    assert TrainSpec("adam", optimizer_args={"b1": 0.9}) == TrainSpec("adam")
    assert TrainSpec(weight_decay=0.0, wd_scale={"bias": 0.0}) == TrainSpec()
    assert TrainSpec(schedule="warmup_cosine", steps=1000, warmup_steps=50) == TrainSpec(schedule="warmup_cosine")
    assert TrainSpec(schedule="warmup_cosine", warmup_steps=0) == TrainSpec(schedule="cosine")
    assert TrainSpec(schedule="cosine", steps=1000, warmup_steps=50) == TrainSpec(schedule="warmup_cosine")
    # the per-member values are data, the rest is the program
    assert TrainSpec(lr=0.1, clip_norm=1.0).program == TrainSpec(lr=0.3, clip_norm=2.0).program
    assert TrainSpec(clip_norm=1.0).program != TrainSpec().program
    assert TrainSpec("adam", optimizer_args={"b2": 0.95}).program != TrainSpec("adam").program
    assert TrainSpec(divergence_factor=10.0).program == TrainSpec().program


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("adam", {"beta1": 0.9}, "optimizer adam takes no argument 'beta1'; it takes: b1, b2, eps, eps_root"),
        ("sgd", {"nesterov": True}, "optimizer sgd takes no argument 'nesterov'; it takes: no arguments"),
        ("adam", {"b1": 1.0}, "optimizer_args.b1 of adam must be a finite number >= 0 and < 1, got 1.0"),
        ("adam", {"eps": float("nan")}, "optimizer_args.eps of adam must be a finite number > 0, got nan"),
        ("momentum", {"nesterov": "yes"}, "optimizer_args.nesterov of momentum must be true or false, got 'yes'"),
        ("adafactor", {"min_dim_size_to_factor": 0}, "must be an integer > 0, got 0"),
        ("adamm", {}, "unknown optimizer 'adamm'"),
        ("adam", "b1=0.9", "optimizer_args takes a table of argument = value"),
    ],
)
def test_bad_arguments_are_one_line(name, args, message):
    with pytest.raises(UsageError) as err:
        check_args(name, args)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_table_s_defaults_are_optax_s(name):
    # an argument at its default is dropped from the identity: the default must be what optax uses
    import inspect

    entry = OPTIMIZERS[name]
    if entry.direction is None:
        return
    from initbench.benchmarks.train import DIRECTIONS

    signature = inspect.signature(DIRECTIONS.get(entry.direction) or getattr(optax, entry.direction)).parameters
    for arg, default in entry.args.items():
        assert signature[arg].default == default, (name, arg)


def test_a_one_step_warmup_cosine_has_no_warmup_and_builds():
    spec = TrainSpec(schedule="warmup_cosine", steps=1, eval_every=1)
    assert spec.warmup == 0 and spec.validate() is None
    tx = make_optimizer(spec)
    p = {"w": jnp.zeros(())}
    updates, _ = tx.update({"w": jnp.ones(())}, tx.init(p), p)
    assert float(updates["w"]) == pytest.approx(-0.1)  # cosine at step 0: the peak


def test_make_optimizer_builds_only_what_validates():
    for bad in (TrainSpec("adam", momentum=0.5), TrainSpec(lr=-1.0), TrainSpec(clip_norm=-1.0)):
        with pytest.raises(UsageError):
            make_optimizer(bad)


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_adam_atan2_is_invariant_to_the_gradients_scale_where_adam_is_not(scale):
    # Everett et al. 2024: no epsilon, so a layer whose gradients shrink with width keeps its update
    params, grads = params_and_grads()
    scaled = [jax.tree_util.tree_map(lambda g: g * scale, gr) for gr in grads]
    # (Adam is nearly invariant to large scales too; its epsilon bites where gradients are small)
    for name, invariant in (("adam_atan2", True), ("adam", scale > 1)):
        tx = make_optimizer(TrainSpec(name, lr=LR))
        a = jax.tree_util.tree_leaves(trajectory(tx, params, grads)[-1])
        b = jax.tree_util.tree_leaves(trajectory(tx, params, scaled)[-1])
        # float32 rounding of the moments moves an update by about 1e-7 of its size (lr = 0.01)
        close = all(np.allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-8) for x, y in zip(a, b, strict=True))
        assert close is invariant, name


EPS_REFERENCE = {
    "adam": lambda wd, eps: optax.chain(optax.add_decayed_weights(wd), optax.adam(LR, eps=eps)),
    "adamw": lambda wd, eps: optax.adamw(LR, eps=eps, weight_decay=wd),
    "nadam": lambda wd, eps: optax.chain(optax.add_decayed_weights(wd), optax.nadam(LR, eps=eps)),
    "adamax": lambda wd, eps: optax.chain(optax.add_decayed_weights(wd), optax.adamax(LR, eps=eps)),
}


@pytest.mark.parametrize("weight_decay", [0.0, WD])
@pytest.mark.parametrize("name", list(EPS_REFERENCE))
def test_eps_scale_is_each_parameters_epsilon_times_its_multiplier(name, weight_decay):
    # gradients of 1e-8: the epsilon (1e-8) matters; per leaf, optax's optimizer with eps x s is the reference
    from initbench.benchmarks.spec import EPS_OPTIMIZERS

    assert set(EPS_REFERENCE) == set(EPS_OPTIMIZERS)
    params, grads = params_and_grads()
    grads = [jax.tree_util.tree_map(lambda g: 1e-8 * g, g) for g in grads]
    rules = {"layer/kernel": 0.01, "scale": 30.0}  # the bias keeps 1
    spec = TrainSpec(name, lr=LR, weight_decay=weight_decay, eps_scale=rules)
    spec.validate()
    mine = trajectory(make_optimizer(spec, params=params), params, grads)
    plain = trajectory(make_optimizer(TrainSpec(name, lr=LR, weight_decay=weight_decay)), params, grads)
    eps = {"kernel": 1e-8 * 0.01, "bias": 1e-8, "scale": 1e-8 * 30.0}
    for leaf, get in (
        ("kernel", lambda t: t["layer"]["kernel"]),
        ("bias", lambda t: t["layer"]["bias"]),
        ("scale", lambda t: t["scale"]),
    ):
        ref = trajectory(EPS_REFERENCE[name](weight_decay, eps[leaf]), get(params), [get(g) for g in grads])
        for a, b in zip(mine, ref, strict=True):  # the gradient / s in place of eps x s: float32 rounding
            np.testing.assert_allclose(np.asarray(get(a)), np.asarray(b), rtol=2e-6, atol=1e-7)
        moved = [np.abs(np.asarray(get(a)) - np.asarray(get(b))).max() for a, b in zip(mine, plain, strict=True)]
        if leaf == "bias":  # multiplier 1: bitwise the plain optimizer
            assert max(moved) == 0.0
        elif weight_decay == 0 or name == "adamw":  # the epsilon changed the trajectory (the test could fail);
            assert max(moved) > 1e-4  # with coupled decay the gradient is the decay's, far above epsilon


@pytest.mark.parametrize("name", ["sgd", "momentum", "lion", "adam_atan2", "rmsprop", "adafactor"])
def test_eps_scale_for_an_optimizer_without_an_added_epsilon_is_one_line(name):
    with pytest.raises(
        UsageError, match=f"eps_scale multiplies an epsilon added to sqrt.v.; optimizer {name} has none"
    ):
        TrainSpec(name, eps_scale={"hidden": 0.5}).validate()


@pytest.mark.parametrize("tiny", [1e-40, 1e-50])
def test_a_multiplier_that_is_zero_in_float32_is_refused(tiny):
    # below float32's smallest normal number a multiplier flushes to 0: the epsilon would vanish
    # (the run diverges) and a rate would silently freeze the parameter
    for field in ("eps_scale", "lr_scale"):
        with pytest.raises(UsageError, match=f"{field}.hidden must be at least float32's smallest normal number"):
            TrainSpec("adam", **{field: {"hidden": tiny}}).validate()
    with pytest.raises(UsageError, match=r"wd_scale.hidden must be 0 or at least float32's smallest normal"):
        TrainSpec("adamw", weight_decay=0.1, wd_scale={"hidden": tiny}).validate()
