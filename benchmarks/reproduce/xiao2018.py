r"""``xiao2018``: Xiao et al. 2018: delta-orthogonal kernels make deep vanilla tanh CNNs isometric and trainable.

Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington 2018, "Dynamical Isometry and a Mean Field
Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural Networks" (ICML). The
paper: a delta-orthogonal kernel (every tap zero but the centre, an orthogonal matrix;
``inits.delta_orthogonal``, Algorithm 1) makes a convolution norm-preserving, so a deep vanilla
tanh CNN at a critical point :math:`(\sigma_w^2, \sigma_b^2)` has an input-output Jacobian
whose singular values concentrate (dynamical isometry, as orthogonal fully connected nets), while
Gaussian kernels of the same variance :math:`\sigma_w^2/(k^2 c)` spread them with depth; the
delta-orthogonal nets then train fast at depths where Gaussian ones are slow or stuck.

Setup: :math:`3 \times 3` convolutions with circular padding (the operator is then exactly
block-diagonalised by the 2-D Fourier transform, ``theory.circular_conv_singular_values``;
computed here as the dense circulant operator on the feature map, one matmul per layer); tanh;
critical point on the line parametrised by :math:`q^*` (``theory.critical_point_for_q_star``,
:math:`q^* = 0.05`: :math:`\sigma_w^2 \approx 1.094`, :math:`\sigma_b^2 \approx 1.3\cdot10^{-4}`).

(a) Isometry, with criteria:

* one delta-orthogonal convolution (gain 1, :math:`c` channels, :math:`8 \times 8` maps): every
  singular value of the operator is 1: :math:`\max|s - 1| \le 2 \cdot 9c \cdot u` (float32
  unit roundoff :math:`u = 2^{-24}`, the rounding of the kernel's orthogonalisation);
* a Gaussian kernel with the same variance (:math:`1/(9c)`): at every frequency the transfer
  matrix is a :math:`c \times c` Gaussian matrix of variance :math:`1/c`, so the pooled spread
  :math:`\mathrm{Var}[s^2]/\mathbb{E}[s^2]^2` lies between 1 (complex, Marchenko-Pastur) and
  :math:`1 + 1/c` (real frequencies): criterion within that interval widened by 4 standard
  errors (delta method over seeds);
* the Jacobian :math:`J_l = \partial h^l / \partial \tanh(h^0)` of the deep part (input at
  :math:`q^*`: each pixel's :math:`c` channels on the sphere of squared radius :math:`c q^*`),
  per depth: delta-orthogonal's spread within 4 standard errors (over seeds) plus
  :math:`4/c` relative (mean-field theory is exact as :math:`c \to \infty`; its corrections
  are :math:`O(1/c)`; the constant 4 is an allowance, not derived) plus :math:`2 l\,n u` of
  rounding, of the orthogonal mean-field value :math:`\sum_{k<l} (\mu_2/\mu_1^2 - 1)`
  (``theory.jacobian_spectrum(orthogonal=True)``);
  Gaussian's larger at every depth, seed by seed: the smallest Gaussian spread over the seeds
  exceeds the largest delta-orthogonal one (a rank criterion: at :math:`l \gtrsim c/8` the
  Gaussian spread is heavy-tailed, one seed can dominate the mean and its standard error, and
  it exceeds the mean-field value :math:`l + \sum(\ldots)`, which is shown but not claimed).

(b) Training: digits (8x8) through a fixed stride-2 lifting convolution (Gaussian, the same in
both arms, scaled so the deep part starts at :math:`q^*`) to :math:`4 \times 4 \times c`, then
``depth`` identical circular tanh convolutions (delta-orthogonal vs Gaussian, both at the
critical point, biases :math:`\mathcal{N}(0, \sigma_b^2)`), global average pooling and a dense
head; SGD with momentum 0.9 (learning rate chosen so both arms train stably in a pilot),
``jit`` + ``lax.scan``. Criterion: training accuracy (full training set, every 50 steps)
>= 90%; delta-orthogonal must reach it, in fewer steps than Gaussian (mean over seeds; a
seed that never reaches it counts as infinite).

Scales. ``cpu``: the operator at 16 channels on :math:`8 \times 8` maps (8 seeds); the Jacobian at 16
channels to depth 32 (8 seeds, 2 inputs each); the training at 8 channels and depth 32 (2 seeds).
``full`` (a few minutes on 2 cores): the operator at the paper scale's 128 channels (on
:math:`16 \times 16` maps, 8 seeds), the Jacobian at 64 channels to depth 128 (the same depth/width
ratio 2 as ``cpu``; 8 seeds, 2 inputs each; its :math:`1024 \times 1024` dense operator per layer),
and the training unchanged from ``cpu``: this module trains through the dense circulant
operator, whose :math:`(s^2 c)^2` entries per layer (9.8 million at :math:`14 \times 14` maps of 16
channels, a 28x28 image after the stride-2 lift) rule out real 28x28 images here, so the training
claim at ``full`` is the ``cpu`` measurement again (digits). The criteria are the same at every
scale, fixed before the ``full`` scale was first run.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from initbench import inits
from initbench.benchmarks.reproduce import Claim, Reproduction

Q_STAR = 0.05
STANDARD_ERRORS = 4.0
UNIT_ROUNDOFF = 2.0**-24
ACCURACY = 0.9
FINITE_WIDTH = 4.0  # allowance FINITE_WIDTH / c (relative) for the O(1/c) corrections to mean-field theory
EVAL_EVERY = 50
# operator: (channels, map size, seeds); jacobian: (channels, depth, seeds, examples per seed)
SIZES: dict[str, dict[str, Any]] = {
    "smoke": {
        "operator": (8, 8, 4),
        "jacobian": (8, 8, 4, 2),
        "training": {"channels": 4, "depth": 8, "steps": 100, "batch": 64, "lr": 0.002, "seeds": 1},
    },
    "cpu": {
        "operator": (16, 8, 8),
        "jacobian": (16, 32, 8, 2),
        "training": {"channels": 8, "depth": 32, "steps": 1500, "batch": 64, "lr": 0.002, "seeds": 2},
    },
    "full": {
        "operator": (128, 16, 8),
        "jacobian": (64, 128, 8, 2),
        "training": {"channels": 8, "depth": 32, "steps": 1500, "batch": 64, "lr": 0.002, "seeds": 2},
    },
    "paper": {
        "operator": (128, 32, 8),
        "jacobian": (128, 256, 8, 2),
        "training": {"channels": 128, "depth": 256, "steps": 3000, "batch": 128, "lr": 0.002, "seeds": 2},
    },
}
SPATIAL = 4  # feature-map side of the deep part (8x8 digits after the stride-2 lift)
PARTS = ("operator", "jacobian", "training")  # the measurements' parts, in the order run() stacks them


def critical_point() -> tuple[float, float]:
    """(sigma_w^2, sigma_b^2) on the tanh critical line with fixed point q* = Q_STAR."""
    from initbench.benchmarks.analysis import theory

    return theory.critical_point_for_q_star("tanh", Q_STAR)


def kernel_init(kind: str, channels: int, weight_variance: float):
    """Delta-orthogonal with gain sigma_w, or Gaussian with the same variance sigma_w^2 / (9 c)."""
    if kind == "delta_orthogonal":
        return inits.delta_orthogonal(math.sqrt(weight_variance))
    return inits.normal(math.sqrt(weight_variance / (9 * channels)))


@functools.lru_cache(maxsize=8)
def _shifts(size: int) -> np.ndarray:
    """(9, size^2, size^2): tap t of a 3x3 circular convolution reads input pixel p for output pixel q."""
    out = np.zeros((9, size * size, size * size), np.float32)
    for t, (di, dj) in enumerate((i - 1, j - 1) for i in range(3) for j in range(3)):
        for a in range(size):
            for b in range(size):
                out[t, ((a + di) % size) * size + (b + dj) % size, a * size + b] = 1.0
    return out


def conv_operator(kernel: jax.Array, size: int) -> jax.Array:
    """The dense matrix of a 3x3 circular convolution on ``size x size`` maps: ``x_flat @ M`` (HWC order)."""
    ci, co = kernel.shape[2:]
    m = jnp.einsum("tpq,tio->piqo", jnp.asarray(_shifts(size)), kernel.reshape(9, ci, co))
    return m.reshape(size * size * ci, size * size * co)


def _draw(kind: str, key: jax.Array, depth: int, channels: int, weight_variance: float) -> jax.Array:
    init = kernel_init(kind, channels, weight_variance)
    return jax.vmap(lambda k: init(k, (3, 3, channels, channels)))(jax.random.split(key, depth))


def measure_operator(scale: str) -> pd.DataFrame:
    """Singular values of one circular convolution (gain 1) per kernel kind and seed: moments, max |s - 1|."""
    from initbench.benchmarks.analysis import theory

    channels, size, seeds = SIZES[scale]["operator"]
    rows = []
    for kind in ("delta_orthogonal", "gaussian"):
        for seed in range(seeds):
            kernel = np.asarray(_draw(kind, jax.random.key(seed), 1, channels, 1.0)[0], np.float64)
            s = theory.circular_conv_singular_values(kernel, size)
            s2 = s * s
            common = {"part": "operator", "init": kind, "seed": seed, "depth": 1, "channels": channels}
            for metric, v in (
                ("mean_s2", s2.mean()),
                ("mean_s4", (s2 * s2).mean()),
                ("max_abs_s_minus_1", np.abs(s - 1).max()),
            ):
                rows.append({**common, "metric": metric, "value": float(v)})
            if seed == 0:
                rows += [{**common, "metric": "singular_value", "value": float(v)} for v in s]
    return pd.DataFrame(rows)


@jax.jit
def _jacobian_moments(kernels: jax.Array, biases: jax.Array, h0: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per layer l and example: mean s^2 and mean s^4 of J_l = d h^l / d tanh(h^0) (row convention)."""
    n = h0.shape[-1]
    size = math.isqrt(n // kernels.shape[-1])

    def layer(carry, kb):
        a, jac = carry  # activations feeding the layer, and their Jacobian w.r.t. tanh(h0)
        m = conv_operator(kb[0], size)
        h = a @ m + jnp.tile(kb[1], size * size)[None, :]
        jh = jac @ m
        gram = jnp.swapaxes(jh, -1, -2) @ jh
        stats = (jnp.trace(gram, axis1=-2, axis2=-1) / n, jnp.sum(gram * gram, axis=(-2, -1)) / n)
        return (jnp.tanh(h), jh * (1.0 - jnp.tanh(h) ** 2)[:, None, :]), stats

    start = (jnp.tanh(h0), jnp.broadcast_to(jnp.eye(n, dtype=h0.dtype), (h0.shape[0], n, n)))
    _, (s2, s4) = jax.lax.scan(layer, start, (kernels, biases))
    return s2, s4  # (depth, examples)


def measure_jacobian(scale: str) -> pd.DataFrame:
    """Per (kernel kind, seed, depth): the Jacobian's mean s^2 and s^4 pooled over the examples."""
    channels, depth, seeds, examples = SIZES[scale]["jacobian"]
    sw, sb = critical_point()
    n = SPATIAL * SPATIAL * channels
    rows = []
    for kind in ("delta_orthogonal", "gaussian"):
        for seed in range(seeds):
            kk, kb, kx = jax.random.split(jax.random.key(100 + seed), 3)
            kernels = _draw(kind, kk, depth, channels, sw)
            biases = math.sqrt(sb) * jax.random.normal(kb, (depth, channels))
            # the deep part's input at q*: every pixel's c channels on the sphere of squared radius c q* (a
            # delta-orthogonal kernel never mixes pixels, so a chi^2_c spread of pixel norms would persist to the
            # top: a finite-c effect outside the mean-field theory, where every unit sits at q*)
            h0 = jax.random.normal(kx, (examples, SPATIAL * SPATIAL, channels))
            h0 = h0 / jnp.linalg.norm(h0, axis=-1, keepdims=True) * math.sqrt(channels * Q_STAR)
            h0 = h0.reshape(examples, n)
            s2, s4 = (np.asarray(v, np.float64).mean(1) for v in _jacobian_moments(kernels, biases, h0))
            for layer in range(depth):
                for metric, v in (("mean_s2", s2[layer]), ("mean_s4", s4[layer])):
                    rows.append(
                        {
                            "part": "jacobian",
                            "init": kind,
                            "seed": seed,
                            "depth": layer + 1,
                            "channels": channels,
                            "metric": metric,
                            "value": float(v),
                        }
                    )
    return pd.DataFrame(rows)


def spread(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (init, depth): pooled spread n<s^4>/<s^2>^2 - 1 over seeds and its delta-method standard error."""
    rows = []
    sel = frame[frame["metric"].isin(["mean_s2", "mean_s4"])]
    for (kind, depth), d in sel.groupby(["init", "depth"]):
        wide = d.pivot_table(index="seed", columns="metric", values="value")
        a, b = wide["mean_s2"].to_numpy(), wide["mean_s4"].to_numpy()
        ma, mb = a.mean(), b.mean()
        grad = np.array([-2.0 * mb / ma**3, 1.0 / ma**2])
        cov = np.cov(np.stack([a, b])) if len(a) > 1 else np.full((2, 2), np.nan)
        se = math.sqrt(max(float(grad @ cov @ grad), 0.0) / len(a))
        rows.append(
            {
                "init": kind,
                "depth": int(depth),
                "spread": float(mb / ma**2 - 1.0),
                "se": se,
                "seeds": len(a),
                "channels": int(d["channels"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


@functools.lru_cache(maxsize=4)
def mean_field_spread(depth: int) -> dict[str, np.ndarray]:
    """Mean-field Jacobian spread per depth 1..depth (orthogonal and Gaussian weights) at the critical point."""
    from initbench.benchmarks.analysis import theory

    sw, sb = critical_point()
    moment = (Q_STAR - sb) / sw  # E[tanh(h0)^2] that puts layer 1 at q*
    out = {}
    for kind, orthogonal in (("delta_orthogonal", True), ("gaussian", False)):
        out[kind] = np.array(
            [
                theory.jacobian_spectrum("tanh", d, sw, sb, moment, orthogonal=orthogonal)["spread"]
                for d in range(1, depth + 1)
            ]
        )
    return out


def _model(params: dict, x: jax.Array) -> jax.Array:
    """Lift (stride 2, fixed init), ``depth`` circular tanh convolutions, global average pool, dense head."""
    channels = params["head"].shape[0]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
    side = x.shape[1] // 2
    cols = [xp[:, i : i + 2 * side : 2, j : j + 2 * side : 2, :] for i in range(3) for j in range(3)]
    h = (jnp.concatenate(cols, -1) @ params["lift"].reshape(-1, channels)).reshape(x.shape[0], -1)

    def layer(h, kb):
        return jnp.tanh(h) @ conv_operator(kb[0], side) + jnp.tile(kb[1], side * side)[None, :], None

    h, _ = jax.lax.scan(layer, h, (params["kernels"], params["biases"]))
    pooled = jnp.tanh(h).reshape(x.shape[0], side * side, channels).mean(1)
    return pooled @ params["head"] + params["head_bias"][None, :]


def init_params(kind: str, key: jax.Array, channels: int, depth: int, in_channels: int, classes: int) -> dict:
    """Parameters of :func:`_model`; only the deep kernels depend on ``kind`` (same keys otherwise)."""
    sw, sb = critical_point()
    k_lift, k_deep, k_bias, k_head = jax.random.split(key, 4)
    lift_std = math.sqrt((Q_STAR - sb) / (9 * in_channels))  # standardized inputs: the deep part starts at q*
    return {
        "lift": inits.normal(lift_std)(k_lift, (3, 3, in_channels, channels)),
        "kernels": _draw(kind, k_deep, depth, channels, sw),
        "biases": math.sqrt(sb) * jax.random.normal(k_bias, (depth, channels)),
        "head": inits.normal(1.0 / math.sqrt(channels))(k_head, (channels, classes)),
        "head_bias": jnp.zeros((classes,)),
    }


def measure_training(scale: str) -> pd.DataFrame:
    """Training loss and accuracy on the full training set every EVAL_EVERY steps, per kernel kind and seed."""
    from initbench.benchmarks import data

    cfg = SIZES[scale]["training"]
    ds = data.load("digits")
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    tx = optax.sgd(cfg["lr"], momentum=0.9)
    rounds = cfg["steps"] // EVAL_EVERY

    def evaluate(params):
        logits = _model(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), jnp.mean(logits.argmax(-1) == y)

    def loss_fn(params, idx):
        return optax.softmax_cross_entropy_with_integer_labels(_model(params, x[idx]), y[idx]).mean()

    @jax.jit
    def train(params, key):
        def step(carry, k):
            p, opt = carry
            idx = jax.random.choice(k, len(y), (cfg["batch"],), replace=False)
            grads = jax.grad(loss_fn)(p, idx)
            updates, opt = tx.update(grads, opt, p)
            return (optax.apply_updates(p, updates), opt), None

        def chunk(carry, k):
            carry, _ = jax.lax.scan(step, carry, jax.random.split(k, EVAL_EVERY))
            return carry, evaluate(carry[0])

        _, (loss, acc) = jax.lax.scan(chunk, (params, tx.init(params)), jax.random.split(key, rounds))
        first = evaluate(params)
        return jnp.concatenate([first[0][None], loss]), jnp.concatenate([first[1][None], acc])

    rows = []
    for kind in ("delta_orthogonal", "gaussian"):
        for seed in range(cfg["seeds"]):
            params = init_params(kind, jax.random.key(seed), cfg["channels"], cfg["depth"], x.shape[-1], ds.num_classes)
            loss, acc = (np.asarray(v, np.float64) for v in train(params, jax.random.key(1000 + seed)))
            for i, (lv, av) in enumerate(zip(loss, acc, strict=True)):
                for metric, v in (("train_loss", lv), ("train_accuracy", av)):
                    rows.append(
                        {
                            "part": "training",
                            "init": kind,
                            "seed": seed,
                            "depth": cfg["depth"],
                            "channels": cfg["channels"],
                            "step": i * EVAL_EVERY,
                            "metric": metric,
                            "value": float(v),
                        }
                    )
    return pd.DataFrame(rows)


def steps_to_accuracy(training: pd.DataFrame) -> dict[str, float]:
    """Per kernel kind: mean over seeds of the first evaluated step with accuracy >= ACCURACY (inf if a seed never)."""
    acc = training[training["metric"] == "train_accuracy"]
    out = {}
    for kind, g in acc.groupby("init"):
        per_seed = []
        for _, s in g.groupby("seed"):
            hit = s[(s["value"] >= ACCURACY) & np.isfinite(s["value"])].sort_values("step")
            per_seed.append(float(hit["step"].iloc[0]) if len(hit) else math.inf)
        out[kind] = float(np.mean(per_seed))
    return out


def claims(measurements: pd.DataFrame, scale: str) -> list[Claim]:
    """The claims, checked on the measurements alone (criteria in the module docstring).

    The mean-field values the Jacobian claims compare with are :func:`mean_field_spread`, a deterministic
    function of the module's constants and the measured depth.

    Args:
      measurements: The tidy rows :func:`run` returns (``operator``, ``jacobian`` and ``training`` parts).
      scale: The scale they were measured at (the criteria are the same at every scale).

    Returns:
      The five claims, in the order of the module docstring.
    """
    operator, jacobian, training = (measurements[measurements["part"] == part] for part in PARTS)
    out = []
    c = int(operator["channels"].iloc[0])
    delta = operator[(operator["init"] == "delta_orthogonal") & (operator["metric"] == "max_abs_s_minus_1")]
    worst, bound = float(delta["value"].max()), 2 * 9 * c * UNIT_ROUNDOFF
    out.append(
        Claim(
            "delta-orthogonal convolution is an isometry",
            "a delta-orthogonal kernel makes the convolution norm-preserving: every singular value is 1",
            f"max |s - 1| over all singular values and seeds <= 2 * 9c * u = {bound:.2g} (float32 rounding)",
            f"max |s - 1| = {worst:.2g} ({c} channels, {delta['seed'].nunique()} seeds)",
            bool(np.isfinite(delta["value"]).all() and worst <= bound),
            kind="check",
            note="exact by the delta-orthogonal kernel's construction",
        )
    )
    g = spread(operator[operator["init"] == "gaussian"]).iloc[0]
    lo, hi = 1.0 - STANDARD_ERRORS * g["se"], 1.0 + 1.0 / c + STANDARD_ERRORS * g["se"]
    out.append(
        Claim(
            "Gaussian convolution has a broad spectrum",
            "a Gaussian kernel of the same variance spreads the singular values (Marchenko-Pastur per frequency)",
            f"pooled Var[s^2]/E[s^2]^2 in [1, 1 + 1/c] widened by {STANDARD_ERRORS:g} SE (delta-orthogonal: 0)",
            f"spread {g['spread']:.3f} +- {g['se']:.3f}, allowed [{lo:.3f}, {hi:.3f}]",
            bool(math.isfinite(g["spread"]) and lo <= g["spread"] <= hi),
        )
    )

    table = spread(jacobian).set_index(["init", "depth"])
    depth = int(jacobian["depth"].max())
    n = SPATIAL * SPATIAL * int(jacobian["channels"].iloc[0])
    theory = mean_field_spread(depth)
    orth = table.loc["delta_orthogonal"]
    gauss = table.loc["gaussian"]
    layers = np.asarray(orth.index)
    expected = theory["delta_orthogonal"][layers - 1]
    channels = int(jacobian["channels"].iloc[0])
    tol = STANDARD_ERRORS * orth["se"].to_numpy() + FINITE_WIDTH / channels * expected + 2 * layers * n * UNIT_ROUNDOFF
    dev = np.abs(orth["spread"].to_numpy() - expected)
    shown = [d for d in (1, 2, 4, 8, 16, 32, 64, 128, 256) if d in orth.index]
    out.append(
        Claim(
            "delta-orthogonal tanh CNN keeps dynamical isometry",
            "at a critical point the Jacobian of a deep delta-orthogonal tanh CNN has concentrated singular values "
            "(the orthogonal mean-field spread)",
            f"Jacobian spread within {STANDARD_ERRORS:g} seed-SEs + {FINITE_WIDTH:g}/c relative (finite width c = "
            f"{channels}) + rounding of the orthogonal mean-field value at every depth 1..{depth}",
            "; ".join(
                f"l={d}: {orth.loc[d, 'spread']:.3g} +- {orth.loc[d, 'se']:.2g} "
                f"(theory {theory['delta_orthogonal'][d - 1]:.3g})"
                for d in shown
            )
            + f"; worst {np.nanmax(dev / tol):.2f} of tolerance",
            bool(np.isfinite(dev).all() and (dev <= tol).all()),
        )
    )
    per_seed = jacobian[jacobian["metric"].isin(["mean_s2", "mean_s4"])].pivot_table(
        index=["init", "depth", "seed"], columns="metric", values="value"
    )
    per_seed = (per_seed["mean_s4"] / per_seed["mean_s2"] ** 2 - 1.0).groupby(["init", "depth"])
    g_min, o_max = per_seed.min().loc["gaussian"], per_seed.max().loc["delta_orthogonal"]
    seeds = jacobian["seed"].nunique()
    out.append(
        Claim(
            "Gaussian tanh CNN loses it",
            "with Gaussian kernels of the same variance the Jacobian spectrum spreads with depth",
            f"at every depth every seed's Gaussian spread exceeds every seed's delta-orthogonal spread (complete "
            f"separation of {seeds} + {seeds} seeds: probability 1/C({2 * seeds},{seeds}) per depth if they were "
            "alike)",
            "; ".join(
                f"l={d}: Gaussian {gauss.loc[d, 'spread']:.3g} (seeds >= {g_min.loc[d]:.3g}; mean field "
                f"{theory['gaussian'][d - 1]:.3g}) vs delta-orthogonal seeds <= {o_max.loc[d]:.3g}"
                for d in shown
            ),
            bool(np.isfinite(g_min.to_numpy()).all() and (g_min > o_max).all()),
        )
    )

    steps = steps_to_accuracy(training)
    t_orth, t_gauss = steps.get("delta_orthogonal", math.inf), steps.get("gaussian", math.inf)
    final = training[training["metric"] == "train_accuracy"]
    final = final[final["step"] == final["step"].max()].groupby("init")["value"].mean()
    budget = int(training["step"].max())

    def fmt(t: float) -> str:
        return f"{t:g}" if math.isfinite(t) else f"not reached in {budget}"

    out.append(
        Claim(
            "delta-orthogonal trains faster",
            "a deep vanilla tanh CNN with delta-orthogonal kernels trains quickly; with Gaussian kernels it is slower "
            "or stuck",
            f"steps to {ACCURACY:.0%} training accuracy (mean over seeds): delta-orthogonal reaches it, in fewer steps "
            "than Gaussian (never = infinite)",
            f"delta-orthogonal {fmt(t_orth)}, Gaussian {fmt(t_gauss)} ({int(training['depth'].iloc[0])} layers, "
            f"{int(training['channels'].iloc[0])} channels); final accuracy delta-orthogonal "
            f"{final.get('delta_orthogonal', math.nan):.3f}, Gaussian {final.get('gaussian', math.nan):.3f}",
            math.isfinite(t_orth) and t_orth < t_gauss,
        )
    )
    return out


def figures(operator: pd.DataFrame, jacobian: pd.DataFrame, training: pd.DataFrame) -> dict:
    """Operator singular values; Jacobian spread per depth with theory; training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"delta_orthogonal": "C1", "gaussian": "C0"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    sv = operator[operator["metric"] == "singular_value"]
    edges = np.linspace(0, 2.5, 51)
    for kind, c in colors.items():
        s = sv[sv["init"] == kind]["value"].to_numpy()
        axes[0].hist(np.clip(s, edges[0], edges[-1]), bins=edges, color=c, alpha=0.6, density=True, label=kind)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("singular value")
    axes[0].set_title(f"one 3x3 circular convolution, {int(operator['channels'].iloc[0])} channels", fontsize=9)
    table = spread(jacobian)
    depth = int(jacobian["depth"].max())
    theory = mean_field_spread(depth)
    layers = np.arange(1, depth + 1)
    for kind, c in colors.items():
        t = table[table["init"] == kind]
        y = np.maximum(t["spread"].to_numpy(), 1e-6)
        err = STANDARD_ERRORS * t["se"].to_numpy()
        axes[1].errorbar(
            t["depth"],
            y,
            yerr=[np.minimum(err, 0.9 * y), err],
            fmt="o",
            color=c,
            markersize=3,
            label=f"{kind}, measured ({STANDARD_ERRORS:g} SE)",
        )
        axes[1].plot(layers, np.maximum(theory[kind], 1e-6), "-", color=c, lw=0.8, label=f"{kind}, mean field")
    axes[1].set_xscale("log", base=2)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("depth l")
    axes[1].set_title(f"Jacobian Var[s^2]/E[s^2]^2, critical tanh (q* = {Q_STAR})", fontsize=9)
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = {"isometry": fig}

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for (kind, seed), g in training.groupby(["init", "seed"]):
        for ax, metric in zip(axes, ("train_loss", "train_accuracy"), strict=True):
            m = g[g["metric"] == metric].sort_values("step")
            ax.plot(m["step"], m["value"], color=colors[kind], lw=1, label=kind if seed == 0 else None)
    axes[1].axhline(ACCURACY, color="grey", ls=":", lw=0.8)
    axes[0].set_title(f"{int(training['depth'].iloc[0])}-layer vanilla tanh CNN on digits: training loss", fontsize=9)
    axes[1].set_title("training accuracy (full training set)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    out["training"] = fig
    return out


def run(scale: str) -> Reproduction:
    """Measures all parts, checks the claims on the rows it returns, draws the figures."""
    operator, jacobian, training = measure_operator(scale), measure_jacobian(scale), measure_training(scale)
    rows = pd.concat([operator, jacobian, training], ignore_index=True)
    return Reproduction("xiao2018", scale, claims(rows, scale), rows, figures(operator, jacobian, training))
