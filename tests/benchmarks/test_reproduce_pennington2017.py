"""pennington2017: each claim checker on constructed measurements (and a case where it must fail), the exact
Jacobian against jax.jacfwd, and the reproduction end to end at smoke scale."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from initbench import inits
from initbench.benchmarks import cli
from initbench.benchmarks.reproduce import pennington2017 as p17

EXCESS = {1 / 64: 0.0017, 1 / 4: 0.137, 1.0: 0.583, None: 1.0}  # mu_2/mu_1^2 - 1 per layer; None: ReLU
WIDTH, DEPTH = 64, 32


def row(part, metric, value, activation=None, q_star=math.nan, weights=None, **cols):
    return {
        **dict.fromkeys(p17.COLUMNS, math.nan),
        "part": part,
        "metric": metric,
        "value": value,
        "activation": activation,
        "q_star": q_star,
        "weights": weights,
        **cols,
    }


def theory_spread(q, weights, depth):
    return depth * (weights == "gaussian") + (depth - 1) * EXCESS[q]


def constructed_spectra(scale, change=None):
    """Measured = theory, except ``change(q, weights, depth, value) -> value``."""
    rows = [row("setup", "width", WIDTH)]
    for q in EXCESS:
        activation, q_star = ("relu", math.nan) if q is None else ("tanh", q)
        for weights in p17.WEIGHTS:
            for depth in range(1, DEPTH + 1):
                value = theory_spread(q, weights, depth)
                value = change(q, weights, depth, value) if change else value
                rows.append(row("spectrum", "spread", value, activation, q_star, weights, depth=depth, seed=0))
                if depth & (depth - 1) == 0:
                    rows.append(
                        row(
                            "theory",
                            "spread",
                            theory_spread(q, weights, depth),
                            activation,
                            q_star,
                            weights,
                            depth=depth,
                        )
                    )
            for depth in (2, DEPTH):
                for s in np.linspace(0.5, 1.5, 8):
                    rows.append(row("singular_values", "s", s, activation, q_star, weights, depth=depth))
    return pd.DataFrame(rows, columns=p17.COLUMNS)


def constructed_training(scale, below_at=None):
    below_at = below_at or {"orthogonal": 100, "gaussian": 400}
    rows = []
    for weights, at in below_at.items():
        for step in range(0, 801, 50):
            rows.append(
                row(
                    "training",
                    "train_loss",
                    2.3 if step < at else 0.3,
                    "tanh",
                    1 / 64,
                    weights,
                    depth=64,
                    step=step,
                    seed=0,
                )
            )
    return pd.DataFrame(rows, columns=p17.COLUMNS)


def isometry_broken(q, weights, depth, value):
    return 4.0 if (q, weights, depth) == (1 / 64, "orthogonal", DEPTH) else value  # > 32/10, < q*=1/4: 0.137*31


def q_order_swapped(q, weights, depth, value):
    if weights == "orthogonal" and depth == DEPTH and q in (1 / 4, 1.0):
        return theory_spread(1.0 if q == 1 / 4 else 1 / 4, weights, depth)
    return value


@pytest.mark.parametrize(
    ("change", "training", "failing"),
    [
        (None, {}, set()),
        (isometry_broken, {}, {"dynamical isometry"}),
        (q_order_swapped, {}, {"isometry needs small q*"}),
        (
            lambda q, w, d, v: 1.0 if (q, w, d) == (None, "orthogonal", WIDTH // 8) else v,
            {},
            {"ReLU gains nothing from orthogonal", "theory agrees"},
        ),  # 1 < 8/4: the ReLU spread stopped growing
        (
            lambda q, w, d, v: 10.0 if (q, w, d) == (None, "orthogonal", DEPTH) else v,
            {},
            set(),
        ),  # beyond width/8 the finite-width spread is not judged
        (lambda q, w, d, v: 1.5 * v if (q, w, d) == (1.0, "gaussian", 4) else v, {}, {"theory agrees"}),
        (lambda q, w, d, v: 1.5 * v if (q, w, d) == (1.0, "gaussian", 16) else v, {}, set()),  # 16 > width/8
        (None, {"below_at": {"orthogonal": 400, "gaussian": 400}}, {"orthogonal trains faster"}),
        (None, {"below_at": {"orthogonal": 100, "gaussian": 10**9}}, set()),  # Gaussian never: infinitely many
    ],
)
def test_claims_on_constructed_measurements(change, training, failing):
    rows = pd.concat(
        [constructed_spectra("smoke", change), constructed_training("smoke", **training)], ignore_index=True
    )
    claims = p17.claims(rows, "smoke")
    assert {c.name for c in claims if not c.passed} == failing, claims


def test_run_wires_measurements_claims_and_figures(monkeypatch):
    monkeypatch.setattr(p17, "measure_spectra", lambda scale: constructed_spectra(scale, None))
    monkeypatch.setattr(p17, "measure_training", lambda scale: constructed_training(scale))
    result = p17.run("smoke")
    assert result.passed and set(result.figures) == {"spread_vs_depth", "singular_value_histograms", "training"}
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.slow  # a few seconds of compilation
@pytest.mark.parametrize(("orthogonal", "relu"), [(True, False), (False, True)])
def test_the_jacobian_is_jacfwd_of_the_net(orthogonal, relu):
    width, layers = 6, 2
    member = {"sigma_w2": jnp.asarray([1.7]), "sigma_b2": jnp.asarray([0.1]), "relu": jnp.asarray([relu])}
    x = jax.random.normal(jax.random.key(0), (1, width))
    key = jax.random.key(3)
    carry = (x, jnp.eye(width)[None], jnp.ones(1, bool), key[None])
    _, jac, _, _ = p17._segment(width, layers, orthogonal)(carry, member)[0]
    keys = jax.random.split(key, layers + 1)[1:]
    params = []
    for k in keys:
        kw, kb = jax.random.split(k)
        params.append(
            (p17._kernel(kw, (width, width), 1.7, orthogonal), math.sqrt(0.1) * inits.normal(1.0)(kb, (width,)))
        )
    phi = jax.nn.relu if relu else jnp.tanh

    def net(v):
        h = v @ params[0][0] + params[0][1]
        for w, b in params[1:]:
            h = phi(h) @ w + b
        return h

    np.testing.assert_allclose(np.asarray(jac[0]), np.asarray(jax.jacfwd(net)(x[0])), rtol=1e-5, atol=1e-6)
    if orthogonal:  # sqrt(sigma_w^2) times an orthogonal matrix
        w = np.asarray(params[0][0])
        np.testing.assert_allclose(w @ w.T, 1.7 * np.eye(width), atol=1e-5)


@pytest.mark.slow
def test_pennington2017_end_to_end_at_smoke_scale(tmp_path):
    code = cli.main(["reproduce", "pennington2017", "--scale", "smoke", "--out", str(tmp_path)])
    assert code in (0, 1)  # 20 training steps decide nothing; the pipeline is what is tested
    folder = tmp_path / "pennington2017"
    verdicts = pd.read_csv(folder / "verdicts.csv").set_index("name")
    assert len(verdicts) == 5 and verdicts.loc["dynamical isometry", "passed"]  # holds at any width
    rows = pd.read_parquet(folder / "measurements.parquet")
    assert set(rows["part"]) >= {"spectrum", "theory", "singular_values", "training"}
    for name in ("spread_vs_depth", "singular_value_histograms", "training"):
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # compiles two 64-layer inits
@pytest.mark.parametrize("scale", ["smoke", "cpu"])  # a tall input kernel (64 -> 16), a wide one (64 -> 128)
def test_both_kinds_of_training_kernel_have_the_critical_fan_in_variance(scale):
    # orthogonal: exactly sigma_w^2 / n_in per entry (the input kernel widened by init_scale);
    # Gaussian: in expectation, within 5 standard errors of the mean of squares
    from initbench.benchmarks import data
    from initbench.benchmarks.analysis import theory
    from initbench.benchmarks.train import initial_variables

    ds = data.load("digits")
    n_in = int(np.prod(ds.input_shape))
    sw, _ = theory.critical_point_for_q_star("tanh", p17.TRAIN_Q_STAR)
    specs = p17.training_specs(scale, n_in)
    for (weights, _), spec in specs.items():
        kernel = np.asarray(initial_variables(spec, ds)["params"]["layer_000"]["dense"]["kernel"], np.float64)
        n_out = kernel.shape[1]
        if weights == "orthogonal":
            gram = kernel @ kernel.T if n_in < n_out else kernel.T @ kernel
            np.testing.assert_allclose(gram, sw * max(n_in, n_out) / n_in * np.eye(min(n_in, n_out)), atol=1e-5)
        else:
            squares = kernel.ravel() ** 2 * n_in
            se = squares.std(ddof=1) / math.sqrt(squares.size)
            assert abs(squares.mean() - sw) < 5 * se
