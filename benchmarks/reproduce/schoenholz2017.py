r"""``schoenholz2017``: Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017, "Deep Information Propagation" (ICLR).

Random tanh nets :math:`h^l = W^l \tanh(h^{l-1}) + b^l` (:math:`h^1 = W^1 x + b^1`) with
:math:`W_{ij} \sim \mathcal{N}(0, \sigma_w^2/N)` and :math:`b_i \sim \mathcal{N}(0, \sigma_b^2)`. Mean-field
theory (Poole et al. 2016; :mod:`benchmarks.analysis.theory`) gives the fixed point :math:`q^*` of the
pre-activations' second moment, the fixed point :math:`c^*` of the correlation of two inputs' pre-activations,
the order-to-chaos line :math:`\chi_1 = \sigma_w^2 \mathbb{E}[\phi'(\sqrt{q^*}z)^2] = 1` (ordered:
:math:`c^l \to 1`; chaotic: :math:`c^l \to c^* < 1`) and the depth scales :math:`\xi_q` and
:math:`\xi_c = -1/\ln \chi_c` over which :math:`q^l` and :math:`c^l` reach their fixed points; :math:`\xi_c`
diverges on the line. The paper's claim: a net can be trained only where its depth is below about
:math:`6\xi_c`. The random nets of parts 1-2 are plain matrix products; kernels are ``inits.lecun_normal``
draws (variance :math:`1/n_{in}`) times :math:`\sigma_w`, biases ``inits.normal(1.0)`` draws times
:math:`\sigma_b`, and one draw of those standard weights serves every :math:`(\sigma_w^2, \sigma_b^2)` of a
grid (common random numbers), so the grid points differ only in the variances.

1. Phase diagram (paper Fig. 1): over a grid of :math:`\sigma_w^2 \in [0.5, 4]` and
   :math:`\sigma_b^2 \in [0.01, 0.3]`, pairs of inputs (correlation 0, second moment set so that
   :math:`q^1 = q^*`) go through one random net of width 256 and depth 100 (``cpu``); the measured phase is
   "ordered" when the mean :math:`1 - c^L` over 8 pairs is below :data:`ORDERED_BELOW` = 1e-3 at the last
   layer (:math:`1 - c` is computed from the difference of the two pre-activations, exact to ~1e-14).
2. Depth scales (paper Fig. 3), :math:`\sigma_b^2 = 0.05`, 13 values of :math:`\sigma_w^2 \in [1, 4]`,
   64 nets of width 256 and depth 100 (``cpu``). :math:`\xi_c`: two groups of input pairs start on either side
   of the fixed point (correlations :math:`c^* \pm 0.15`; in the ordered phase :math:`1 - 0.3` and 1), so the
   quadratic part of the correlation map cancels in their gap :math:`c_b^l - c_a^l`, which decays as
   :math:`e^{-l/\xi_c}`; :math:`\xi_c` is :math:`-1/\text{slope}` of a weighted least-squares line through
   :math:`\ln` of the gap (mean over nets) over the layers where the gap exceeds 3 standard errors (in the
   ordered phase from where it is below 0.1). :math:`\xi_q` likewise from the gap of :math:`q^l` between the
   same inputs scaled to :math:`q^1 = (1 \pm 0.3) q^*`.
3. Trainability (paper Figs. 5-6; there MNIST and CIFAR-10 to depth 300): at :math:`\sigma_b^2 = 0.05`,
   tanh MLPs of width 64 with depth (hidden layers) 10..100 and 9 values of :math:`\sigma_w^2 \in [1, 4]`
   are trained on digits with plain SGD by initbench's trainer (``models.MLP`` with scanned layers, kernels
   ``variance_scaling(sigma_w^2, "fan_in", "normal")``, biases ``normal(sigma_b)``; learning rate 0.003,
   batch 32, 1,000 steps, seed 0 for every run, so the :math:`\sigma_w^2` of a depth share their standard
   draws, their batch order and one program); "trained" = training accuracy (whole training set) of at
   least :data:`TRAINED_ACCURACY` = 0.5 (chance is 0.1), drawn against the :math:`6\xi_c` curve. A diverged
   run counts as not trained.

Claims and their criteria (fixed from the paper and the theory before measuring):

* critical line (theory): :math:`\sigma_w^2 = 1` at :math:`\sigma_b^2 = 0` (within 1e-3), increasing with
  :math:`\sigma_b^2`;
* phase: at grid points away from the line (theory :math:`\xi_c \le L/8`, so that :math:`c` has had 8
  depth scales to settle), the measured phase equals the theory's at >= 95% of the points;
* :math:`\xi_c`: measured within 15% of theory at every :math:`\sigma_w^2` with theory :math:`\xi_c \le L/5`
  (away from criticality: at least 5 depth scales in the net);
* :math:`\xi_c` peaks at criticality: the largest measured :math:`\xi_c` is at the grid point nearest the
  critical :math:`\sigma_w^2` (within one grid step);
* :math:`\xi_q` stays finite through the transition: measured within 15% of theory at every :math:`\sigma_w^2`;
* trainability: "trained" agrees with "depth < :math:`6\xi_c`" at >= 80% of the cells, not counting the cells
  near the boundary (depth / :math:`6\xi_c` in [2/3, 3/2]).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from initbench import inits
from initbench.benchmarks.reproduce import Claim, Reproduction

if TYPE_CHECKING:
    from initbench.benchmarks.spec import RunSpec


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The sizes of one scale (see the module docstring)."""

    phase_width: int
    phase_depth: int
    phase_pairs: int
    phase_weight_variances: tuple[float, ...]
    phase_bias_variances: tuple[float, ...]
    xi_width: int
    xi_depth: int
    xi_seeds: int
    xi_pairs: int
    xi_weight_variances: tuple[float, ...]
    train_dataset: str
    train_width: int
    train_depths: tuple[int, ...]
    train_weight_variances: tuple[float, ...]
    train_steps: int
    train_batch: int
    train_learning_rate: float
    theory_points: int  # resolution of the drawn theory curves (critical line, xi curves)


def _grid(lo: float, hi: float, n: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.linspace(lo, hi, n))


SIZES = {
    "smoke": Sizes(
        32,
        24,
        4,
        _grid(0.5, 4.0, 4),
        (0.05, 0.2),
        32,
        30,
        4,
        4,
        _grid(1.0, 4.0, 5),
        "digits",
        16,
        (4,),
        _grid(1.0, 4.0, 3),
        20,
        16,
        0.003,
        5,
    ),
    "cpu": Sizes(
        256,
        100,
        8,
        _grid(0.5, 4.0, 15),
        (0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
        256,
        100,
        64,
        12,
        _grid(1.0, 4.0, 13),
        "digits",
        64,
        (10, 20, 30, 40, 60, 80, 100),
        _grid(1.0, 4.0, 9),
        1000,
        32,
        0.003,
        41,
    ),
    "paper": Sizes(
        1000,
        300,
        16,
        _grid(0.5, 4.0, 29),
        _grid(0.01, 0.3, 11),
        1000,
        300,
        256,
        16,
        _grid(1.0, 4.0, 25),
        "mnist",
        300,
        (10, 25, 50, 75, 100, 150, 200, 250, 300),
        _grid(1.0, 4.0, 13),
        20000,
        128,
        0.001,
        61,
    ),
}
BIAS_VARIANCE = 0.05  # sigma_b^2 of the paper's Figs. 3, 5 and 6
PAIR_OFFSET = 0.15  # the two pair groups start at c* -+ this
Q_OFFSET = 0.3  # the two q probes start at (1 -+ this) q*
ORDERED_BELOW = 1e-3  # measured phase: ordered iff mean 1 - c^L is below this
SETTLED_DEPTH_SCALES = 8  # phase claim: only points with theory xi_c <= L / 8
FIT_DEPTH_SCALES = 5  # xi_c claim: only points with theory xi_c <= L / 5
XI_TOLERANCE = 0.15
PHASE_AGREEMENT = 0.95
TRAINED_ACCURACY = 0.5
TRAIN_AGREEMENT = 0.8
TRAINABLE_MULTIPLE = 6.0  # the paper: trainable iff depth < 6 xi_c
BOUNDARY_BAND = (2 / 3, 3 / 2)  # cells with depth / (6 xi_c) in this band are not counted
TRAIN_EVAL_EXAMPLES = 1 << 20  # evaluate on the whole training set (any size up to this)
COLUMNS = ["part", "sigma_w2", "sigma_b2", "depth", "layer", "metric", "value"]


def _fixed_points(weight_variances, bias_variances) -> list:
    from initbench.benchmarks.analysis import theory

    return [theory.fixed_point("tanh", sw, sb) for sw, sb in zip(weight_variances, bias_variances, strict=True)]


def one_minus_cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    r""":math:`1 - \cos(a, b)` over the last axis, from :math:`d = a - b` so that it is exact near 0.

    :math:`|a||b| - a\cdot b = (|d|^2 - (|a| - |b|)^2)/2` and :math:`|a| - |b| = d\cdot(a + b)/(|a| + |b|)`.
    """
    d = a - b
    na, nb = jnp.linalg.norm(a, axis=-1), jnp.linalg.norm(b, axis=-1)
    norm_gap = jnp.sum(d * (a + b), axis=-1) / (na + nb)
    return (jnp.sum(d * d, axis=-1) - norm_gap**2) / (2 * na * nb)


@functools.lru_cache(maxsize=16)
def _propagator(depth: int, width: int, pairs: int):
    """``f(keys, points) -> dict of (seeds, depth, M)``: :func:`propagate` over seeds, jitted."""

    def one(key: jax.Array, points: dict[str, jax.Array]) -> dict[str, jax.Array]:
        kx, kw = jax.random.split(key)
        z1, z2, z3, zq = jax.random.normal(kx, (4, pairs, width))

        def mix(c: jax.Array, z: jax.Array) -> jax.Array:  # (M, pairs, width): correlation c with z1
            return c[:, None, None] * z1[None] + jnp.sqrt(1 - c**2)[:, None, None] * z[None]

        scale = points["input_scale"][:, None, None]
        h = jnp.concatenate(
            [
                scale * jnp.broadcast_to(z1, (len(scale), pairs, width)),
                scale * mix(points["c_a"], z2),
                scale * mix(points["c_b"], z3),
                points["q_scale_lo"][:, None, None] * zq[None],
                points["q_scale_hi"][:, None, None] * zq[None],
            ],
            axis=1,
        )
        sw = jnp.sqrt(points["weight_variance"])[:, None, None]
        sb = jnp.sqrt(points["bias_variance"])[:, None, None]

        def layer(carry, k):
            h, first = carry
            kw_, kb_ = jax.random.split(k)
            w, b = inits.lecun_normal()(kw_, (width, width)), inits.normal(1.0)(kb_, (width,))
            h = sw * (jnp.where(first, h, jnp.tanh(h)) @ w) + sb * b[None, None]
            x1, xa, xb, qlo, qhi = jnp.split(h, 5, axis=1)
            out = {
                "one_minus_c_a": one_minus_cosine(x1, xa).mean(-1),
                "one_minus_c_b": one_minus_cosine(x1, xb).mean(-1),
                "q_lo": jnp.mean(qlo**2, axis=(1, 2)),
                "q_hi": jnp.mean(qhi**2, axis=(1, 2)),
            }
            return (h, False), out

        _, out = jax.lax.scan(layer, (h, True), jax.random.split(kw, depth))
        return out

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def propagate(
    seeds: int, points: dict[str, np.ndarray], *, depth: int, width: int, pairs: int, key: int = 0
) -> dict[str, np.ndarray]:
    r"""Random tanh nets over a grid of points, several seeds; per-layer correlations and second moments.

    Inputs :math:`z_1, z_2, z_3, z_q \sim \mathcal{N}(0, I)` (``pairs`` of each): :math:`x_1 = z_1`,
    :math:`x_a = c_a z_1 + \sqrt{1 - c_a^2} z_2`, :math:`x_b` likewise with :math:`c_b, z_3`, all times
    ``input_scale``; the q probes are :math:`z_q` times ``q_scale_lo`` and ``q_scale_hi``.

    Args:
      seeds: Independent nets (each shared by every point).
      points: Arrays of equal length M: ``weight_variance``, ``bias_variance``, ``input_scale``, ``c_a``,
        ``c_b``, ``q_scale_lo``, ``q_scale_hi``.
      depth: Weight layers.
      width: Units per layer (and input dimension).
      pairs: Inputs per group.
      key: Seed of the first net.

    Returns:
      ``(seeds, depth, M)`` arrays: ``one_minus_c_a`` and ``one_minus_c_b`` (mean over pairs of
      :math:`1 - \cos(h^l(x_1), h^l(x_{a,b}))`), ``q_lo`` and ``q_hi`` (mean :math:`(h^l)^2` of the probes).
    """
    pts = {k: jnp.asarray(np.asarray(v, np.float32)) for k, v in points.items()}
    out = _propagator(depth, width, pairs)(jax.random.split(jax.random.key(key), seeds), pts)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def _points(fps, weight_variances, bias_variances, c_a, c_b) -> dict[str, np.ndarray]:
    sw, sb = np.asarray(weight_variances, np.float64), np.asarray(bias_variances, np.float64)
    q = np.asarray([f.q_star for f in fps])

    def scale(q1):  # input second moment s^2 with q^1 = sw s^2 + sb
        return np.sqrt(np.maximum(q1 - sb, 0.0) / sw)

    return {
        "weight_variance": sw,
        "bias_variance": sb,
        "input_scale": scale(q),
        "c_a": np.asarray(c_a, np.float64),
        "c_b": np.asarray(c_b, np.float64),
        "q_scale_lo": scale((1 - Q_OFFSET) * q),
        "q_scale_hi": scale((1 + Q_OFFSET) * q),
    }


def decay_length(gap: np.ndarray, start_below: float | None = None) -> tuple[float, int]:
    r"""Depth scale of a decaying gap, from its per-seed values ``(seeds, layers)``.

    :math:`-1/\text{slope}` of the weighted least-squares line through :math:`\ln \bar g^l` (weights
    :math:`\bar g^l / \mathrm{se}^l`) over the layers from the first where :math:`\bar g \le` ``start_below``
    (or layer 1) up to the first where :math:`\bar g < 3\,\mathrm{se}`.

    Returns:
      The depth scale (inf when the gap does not decay; nan with fewer than 3 layers to fit) and the
      number of layers fitted.
    """
    mean = gap.mean(0)
    se = gap.std(0, ddof=1) / math.sqrt(gap.shape[0]) if gap.shape[0] > 1 else np.zeros_like(mean)
    se = np.maximum(se, 1e-9 * np.abs(mean) + 1e-300)
    start = int(np.argmax(mean <= start_below)) if start_below is not None and (mean <= start_below).any() else 0
    lost = (mean < 3 * se)[start:]
    stop = start + (int(np.argmax(lost)) if lost.any() else len(lost))
    if stop - start < 3:
        return math.nan, stop - start
    layers = np.arange(start + 1, stop + 1, dtype=np.float64)
    slope = np.polyfit(layers, np.log(mean[start:stop]), 1, w=mean[start:stop] / se[start:stop])[0]
    return (-1.0 / slope if slope < 0 else math.inf), stop - start


def _rows(part: str, **cols) -> list[dict]:
    return [{**dict.fromkeys(COLUMNS, math.nan), "part": part, **cols}]


def measure_phase(scale: str) -> pd.DataFrame:
    """Phase diagram: theory's critical line and 1 - c^L of random nets over the (sigma_w^2, sigma_b^2) grid."""
    from initbench.benchmarks.analysis import theory

    s = SIZES[scale]
    sw, sb = (a.ravel() for a in np.meshgrid(s.phase_weight_variances, s.phase_bias_variances))
    fps = _fixed_points(sw, sb)
    points = _points(fps, sw, sb, np.zeros_like(sw), np.ones_like(sw))
    out = propagate(1, points, depth=s.phase_depth, width=s.phase_width, pairs=s.phase_pairs)
    rows = []
    for i, fp in enumerate(fps):
        for metric, value in (
            ("one_minus_c", out["one_minus_c_a"][0, -1, i]),
            ("theory_chi1", fp.chi1),
            ("theory_xi_c", fp.xi_c),
            ("theory_c_star", fp.c_star),
        ):
            rows += _rows("phase", sigma_w2=sw[i], sigma_b2=sb[i], layer=s.phase_depth, metric=metric, value=value)
    for b in np.linspace(0.0, max(s.phase_bias_variances), (s.theory_points + 1) // 3):
        crit = theory.critical_weight_variance("tanh", float(b))
        rows += _rows("critical_line", sigma_b2=float(b), metric="sigma_w2_critical", value=crit)
    return pd.DataFrame(rows, columns=COLUMNS)


def measure_depth_scales(scale: str) -> pd.DataFrame:
    """Depth scales xi_c and xi_q at sigma_b^2 = 0.05: measured (see the module docstring) and theory."""
    from initbench.benchmarks.analysis import theory

    s = SIZES[scale]
    sw = np.asarray(s.xi_weight_variances)
    sb = np.full_like(sw, BIAS_VARIANCE)
    fps = _fixed_points(sw, sb)
    c_star = np.asarray([f.c_star for f in fps])
    chaotic = c_star < 1
    c_b = np.where(chaotic, np.minimum(c_star + PAIR_OFFSET, 0.999), 1.0)
    c_a = c_b - 2 * PAIR_OFFSET
    out = propagate(
        s.xi_seeds, _points(fps, sw, sb, c_a, c_b), depth=s.xi_depth, width=s.xi_width, pairs=s.xi_pairs, key=1
    )
    c_gap = out["one_minus_c_a"] - out["one_minus_c_b"]  # c_b - c_a, (seeds, layers, M)
    q_gap = out["q_hi"] - out["q_lo"]
    rows = []
    for i, fp in enumerate(fps):
        xi_c, n_c = decay_length(c_gap[:, :, i], None if chaotic[i] else 2 * PAIR_OFFSET / 3)
        xi_q, n_q = decay_length(q_gap[:, :, i] / fp.q_star)
        for metric, value in (
            ("xi_c", xi_c),
            ("xi_q", xi_q),
            ("fit_layers_c", n_c),
            ("fit_layers_q", n_q),
            ("theory_xi_c", fp.xi_c),
            ("theory_xi_q", fp.xi_q),
            ("theory_chi1", fp.chi1),
            ("theory_c_star", fp.c_star),
        ):
            rows += _rows("depth_scales", sigma_w2=sw[i], sigma_b2=BIAS_VARIANCE, metric=metric, value=value)
        for metric, gap in (("c_gap", c_gap[:, :, i]), ("q_gap", q_gap[:, :, i] / fp.q_star)):
            for layer, value in enumerate(gap.mean(0), 1):
                rows += _rows("gap", sigma_w2=sw[i], sigma_b2=BIAS_VARIANCE, layer=layer, metric=metric, value=value)
    crit = theory.critical_weight_variance("tanh", BIAS_VARIANCE)
    rows += _rows("critical_line", sigma_b2=BIAS_VARIANCE, metric="sigma_w2_critical", value=crit)
    fine = np.unique(np.concatenate([np.linspace(sw.min(), sw.max(), s.theory_points), [crit]]))
    for v, fp in zip(fine, _fixed_points(fine, np.full_like(fine, BIAS_VARIANCE)), strict=True):
        for metric, value in (("theory_xi_c", fp.xi_c), ("theory_xi_q", fp.xi_q)):
            rows += _rows("theory_curve", sigma_w2=v, sigma_b2=BIAS_VARIANCE, metric=metric, value=value)
    return pd.DataFrame(rows, columns=COLUMNS)


def trainability_specs(scale: str) -> dict[tuple[int, float], RunSpec]:
    r"""The trainability runs by ``(depth, sigma_w^2)``: tanh MLPs with Gaussian weights and biases.

    Kernels ``variance_scaling(sigma_w^2, "fan_in", "normal")`` (the paper's
    :math:`\mathcal{N}(0, \sigma_w^2/N)`, the readout too), biases ``normal(sigma_b)``; seed 0 for
    every run, so all :math:`\sigma_w^2` of a depth share their standard draws and batch order (common
    random numbers) and one compiled program. Training accuracy is evaluated on the whole training set.
    """
    from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec, options

    s = SIZES[scale]
    out = {}
    for depth in s.train_depths:
        for v in s.train_weight_variances:
            out[(depth, v)] = RunSpec(
                "schoenholz2017",
                "trainability",
                ModelSpec("mlp", "tanh", depth, s.train_width, options(scan=True)),
                InitSpec(
                    "variance_scaling",
                    options(scale=float(v), mode="fan_in", distribution="normal"),
                    "normal",
                    options(stddev=math.sqrt(BIAS_VARIANCE)),
                ),
                DataSpec(s.train_dataset, s.train_batch, eval_examples=TRAIN_EVAL_EXAMPLES),
                TrainSpec("sgd", lr=s.train_learning_rate, steps=s.train_steps, eval_every=s.train_steps),
                0,
            )
    return out


def measure_trainability(scale: str) -> pd.DataFrame:
    """Training and test accuracy over (sigma_w^2, depth) at sigma_b^2 = 0.05 after a fixed SGD budget.

    The runs of :func:`trainability_specs`, trained by initbench's trainer (plain SGD, one program per
    depth); a run that diverged has NaN accuracies (never "trained").
    """
    from initbench.benchmarks import data
    from initbench.benchmarks.reproduce._training import final_values, train_runs

    s = SIZES[scale]
    ds = data.load(s.train_dataset)
    specs = trainability_specs(scale)
    curves, _ = train_runs(list(specs.values()), ds)
    rows = []
    for (depth, v), spec in specs.items():
        final = final_values(curves, spec.run_id, s.train_steps)
        for metric in ("train_accuracy", "test_accuracy", "train_loss"):
            rows += _rows(
                "trainability", sigma_w2=v, sigma_b2=BIAS_VARIANCE, depth=depth, metric=metric, value=final[metric]
            )
    sw = np.asarray(s.train_weight_variances)
    for v, fp in zip(sw, _fixed_points(sw, np.full_like(sw, BIAS_VARIANCE)), strict=True):
        rows += _rows("trainability", sigma_w2=v, sigma_b2=BIAS_VARIANCE, metric="theory_xi_c", value=fp.xi_c)
    return pd.DataFrame(rows, columns=COLUMNS)


def _wide(df: pd.DataFrame, part: str, index: list[str]) -> pd.DataFrame:
    sel = df[df["part"] == part]
    return sel.pivot_table(index=index, columns="metric", values="value", aggfunc="first").reset_index()


def _critical_line(measurements: pd.DataFrame) -> pd.DataFrame:
    """The theory's critical line: the ``critical_line`` rows of every part, one per sigma_b^2, by sigma_b^2."""
    line = measurements[measurements["part"] == "critical_line"]
    return line.drop_duplicates("sigma_b2").sort_values("sigma_b2")


def claims(measurements: pd.DataFrame, scale: str) -> list[Claim]:
    """The claims of the module docstring, from the rows of :func:`run` (all three parts) alone."""
    out = []
    line = _critical_line(measurements)
    crit = line["value"].to_numpy()
    at_zero = crit[0] if len(line) and line["sigma_b2"].iloc[0] == 0 else math.nan
    rising = bool(np.all(np.diff(crit) > 0))
    out.append(
        Claim(
            "critical line",
            "the order-to-chaos line chi_1 = 1 starts at sigma_w^2 = 1 for sigma_b^2 = 0 and moves to "
            "larger sigma_w^2 as sigma_b^2 grows",
            "theory: sigma_w^2* within 1e-3 of 1 at sigma_b^2 = 0, increasing",
            f"sigma_w^2* = {at_zero:.4f} at sigma_b^2 = 0 -> {crit[-1]:.3f} at sigma_b^2 = "
            f"{line['sigma_b2'].iloc[-1]:g}"
            f" ({'increasing' if rising else 'not increasing'})",
            abs(at_zero - 1) < 1e-3 and rising,
            kind="check",
            note="computed from the mean-field theory alone: no measurement enters it",
        )
    )

    grid = _wide(measurements, "phase", ["sigma_w2", "sigma_b2", "layer"])
    depth = float(grid["layer"].max())
    settled = grid[grid["theory_xi_c"] <= depth / SETTLED_DEPTH_SCALES]
    theory_ordered = settled["theory_chi1"] < 1
    measured_ordered = settled["one_minus_c"] < ORDERED_BELOW
    agree = float(np.mean(theory_ordered == measured_ordered)) if len(settled) else math.nan
    wrong = settled[theory_ordered != measured_ordered]
    where = ", ".join(f"({r.sigma_w2:g}, {r.sigma_b2:g})" for r in wrong.itertuples())
    out.append(
        Claim(
            "phase diagram",
            "ordered phase (chi_1 < 1): correlations of two inputs go to c = 1; chaotic: to c* < 1",
            f"at grid points with theory xi_c <= L/{SETTLED_DEPTH_SCALES} (L = {depth:g}), measured phase (ordered iff "
            f"1 - c^L < {ORDERED_BELOW:g}) = theory's at >= {PHASE_AGREEMENT:.0%}",
            f"{agree:.1%} of {len(settled)} points agree ({len(grid) - len(settled)} near the line not counted)"
            + (f"; disagree at (sigma_w^2, sigma_b^2) {where}" if len(wrong) else ""),
            bool(agree >= PHASE_AGREEMENT),
        )
    )

    xi = _wide(measurements, "depth_scales", ["sigma_w2"]).sort_values("sigma_w2")
    xi_depth = float(measurements.loc[measurements["part"] == "gap", "layer"].max())
    away = xi[xi["theory_xi_c"] <= xi_depth / FIT_DEPTH_SCALES]
    ratio = (away["xi_c"] / away["theory_xi_c"]).to_numpy()
    worst = float(np.nanmax(np.abs(ratio - 1))) if len(ratio) and not np.isnan(ratio).all() else math.nan
    listing = ", ".join(f"{r.sigma_w2:g}: {r.xi_c:.2f} vs {r.theory_xi_c:.2f}" for r in away.itertuples())
    out.append(
        Claim(
            "xi_c matches theory",
            "c^l approaches its fixed point as exp(-l/xi_c), xi_c = -1/ln chi_c (theory and simulation agree, Fig. 3)",
            f"measured xi_c within {XI_TOLERANCE:.0%} of theory at every sigma_w^2 with theory xi_c <= "
            f"L/{FIT_DEPTH_SCALES}"
            f" (L = {xi_depth:g}; sigma_b^2 = {BIAS_VARIANCE})",
            f"worst |measured/theory - 1| = {worst:.3f} over {len(away)} points (sigma_w^2: measured vs theory "
            f"{listing})",
            bool(len(ratio) and np.all(np.abs(ratio - 1) <= XI_TOLERANCE)),
        )
    )

    crit_b = line.loc[line["sigma_b2"] == BIAS_VARIANCE, "value"].iloc[0]
    step = float(np.min(np.diff(xi["sigma_w2"].to_numpy())))
    peak = xi.loc[xi["xi_c"].fillna(-1.0).replace(math.inf, 1e300).idxmax()]
    out.append(
        Claim(
            "xi_c peaks at criticality",
            "xi_c diverges at the order-to-chaos transition",
            f"the largest measured xi_c is within one grid step ({step:g}) of the critical sigma_w^2",
            f"largest measured xi_c = {peak['xi_c']:.1f} at sigma_w^2 = {peak['sigma_w2']:g}; critical sigma_w^2 = "
            f"{crit_b:.3f}",
            bool(abs(peak["sigma_w2"] - crit_b) <= step + 1e-9),
        )
    )

    ratio_q = (xi["xi_q"] / xi["theory_xi_q"]).to_numpy()
    worst_q = float(np.nanmax(np.abs(ratio_q - 1))) if not np.isnan(ratio_q).all() else math.nan
    out.append(
        Claim(
            "xi_q finite, matches theory",
            "q^l reaches q* within a few layers everywhere: xi_q stays finite through the transition (Fig. 3)",
            f"measured xi_q within {XI_TOLERANCE:.0%} of theory at every sigma_w^2",
            f"worst |measured/theory - 1| = {worst_q:.3f}; measured xi_q {np.nanmin(xi['xi_q']):.2f} to "
            f"{np.nanmax(xi['xi_q']):.2f} (theory {xi['theory_xi_q'].min():.2f} to {xi['theory_xi_q'].max():.2f})",
            bool(np.all(np.abs(ratio_q - 1) <= XI_TOLERANCE)),
        )
    )

    cells = _trainability_cells(measurements)
    counted = cells[~cells["near_boundary"]]
    agree_t = float(np.mean(counted["trained"] == counted["predicted"])) if len(counted) else math.nan
    wrong = counted[counted["trained"] != counted["predicted"]]
    where = ", ".join(f"({r.sigma_w2:g}, {r.depth:g})" for r in wrong.itertuples())
    out.append(
        Claim(
            "trainable iff depth < 6 xi_c",
            "networks train precisely when depth < ~6 xi_c (Figs. 5-6)",
            f"'trained' (training accuracy >= {TRAINED_ACCURACY}) = 'depth < 6 xi_c' at >= {TRAIN_AGREEMENT:.0%} of "
            "cells "
            f"with depth / 6 xi_c outside [{BOUNDARY_BAND[0]:.2f}, {BOUNDARY_BAND[1]:.2f}]",
            f"{agree_t:.1%} of {len(counted)} cells agree ({len(cells) - len(counted)} near the boundary not counted; "
            f"{int(cells['trained'].sum())} of {len(cells)} trained)"
            + (f"; disagree at (sigma_w^2, depth) {where}" if len(wrong) else ""),
            bool(agree_t >= TRAIN_AGREEMENT),
        )
    )
    return out


def _trainability_cells(training: pd.DataFrame) -> pd.DataFrame:
    sel = training[training["part"] == "trainability"]
    xi = sel[sel["metric"] == "theory_xi_c"].set_index("sigma_w2")["value"]
    cells = _wide(sel[sel["metric"] != "theory_xi_c"], "trainability", ["sigma_w2", "depth"])
    cells["xi_c"] = cells["sigma_w2"].map(xi)
    relative = cells["depth"] / (TRAINABLE_MULTIPLE * cells["xi_c"])
    cells["predicted"] = relative < 1
    cells["near_boundary"] = (relative >= BOUNDARY_BAND[0]) & (relative <= BOUNDARY_BAND[1])
    cells["trained"] = (cells["train_accuracy"] >= TRAINED_ACCURACY) & np.isfinite(cells["train_loss"])
    return cells


def figures(phase: pd.DataFrame, scales: pd.DataFrame, training: pd.DataFrame) -> dict:
    """The phase diagram, the depth scales, and the trainability heat map with 6 xi_c."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}
    grid = _wide(phase, "phase", ["sigma_w2", "sigma_b2", "layer"])
    line = phase[phase["part"] == "critical_line"].sort_values("sigma_b2")
    depth = float(grid["layer"].max())
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    settled = grid["theory_xi_c"] <= depth / SETTLED_DEPTH_SCALES
    colour = np.log10(np.clip(grid["one_minus_c"].to_numpy(), 1e-12, 1))
    sc = ax.scatter(
        grid["sigma_w2"][settled], grid["sigma_b2"][settled], c=colour[settled], cmap="viridis", vmin=-12, vmax=0, s=40
    )
    ax.scatter(
        grid["sigma_w2"][~settled],
        grid["sigma_b2"][~settled],
        c=colour[~settled],
        cmap="viridis",
        vmin=-12,
        vmax=0,
        s=40,
        marker="s",
        edgecolors="grey",
        linewidths=0.5,
    )
    ax.plot(line["value"], line["sigma_b2"], "r-", label="theory: chi_1 = 1")
    fig.colorbar(sc, ax=ax, label=f"log10(1 - c^L), L = {depth:g}")
    ax.set_xlabel("sigma_w^2")
    ax.set_ylabel("sigma_b^2")
    ax.set_title("tanh phase diagram: ordered (left, c -> 1) and chaotic (right); squares: near the line")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    figs["phase_diagram"] = fig

    xi = _wide(scales, "depth_scales", ["sigma_w2"]).sort_values("sigma_w2")
    curve = _wide(scales, "theory_curve", ["sigma_w2"]).sort_values("sigma_w2")
    crit = scales[scales["part"] == "critical_line"]["value"].iloc[0]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, name in zip(axes[:2], ("xi_q", "xi_c"), strict=True):
        ax.semilogy(curve["sigma_w2"], curve[f"theory_{name}"], "k-", label="theory")
        ax.semilogy(xi["sigma_w2"], xi[name], "o", color="C3", label="measured")
        ax.axvline(crit, color="grey", ls=":", lw=0.8)
        ax.set_xlabel("sigma_w^2")
        ax.set_title(f"{name} (sigma_b^2 = {BIAS_VARIANCE})")
        ax.legend(fontsize=7)
    gap = scales[(scales["part"] == "gap") & (scales["metric"] == "c_gap")]
    for i, (v, g) in enumerate(gap.groupby("sigma_w2")):
        if i % 3 == 0:
            axes[2].semilogy(g["layer"], g["value"].where(g["value"] > 0), label=f"sigma_w^2 = {v:g}")
    axes[2].set_xlabel("layer l")
    axes[2].set_title("c_b^l - c_a^l: gap of the two pair groups (mean of nets)", fontsize=9)
    axes[2].legend(fontsize=6)
    fig.tight_layout()
    figs["depth_scales"] = fig

    cells = _trainability_cells(training)
    acc = cells.pivot_table(index="depth", columns="sigma_w2", values="train_accuracy")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    sw, depths = acc.columns.to_numpy(), acc.index.to_numpy()
    mesh = ax.pcolormesh(_edges(sw), _edges(depths), acc.to_numpy(), cmap="magma", vmin=0, vmax=1, shading="flat")
    fig.colorbar(mesh, ax=ax, label="training accuracy")
    ax.plot(curve["sigma_w2"], TRAINABLE_MULTIPLE * curve["theory_xi_c"], "w--", label="6 xi_c (theory)")
    ax.set_ylim(_edges(depths)[0], _edges(depths)[-1])
    ax.set_xlabel("sigma_w^2")
    ax.set_ylabel("depth (hidden layers)")
    ax.set_title(f"tanh MLPs after a fixed SGD budget (sigma_b^2 = {BIAS_VARIANCE})")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    figs["trainability"] = fig
    return figs


def _edges(centres: np.ndarray) -> np.ndarray:
    c = np.asarray(centres, np.float64)
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])


def run(scale: str) -> Reproduction:
    """Measures the three parts, checks the claims, draws the figures."""
    phase, scales, training = measure_phase(scale), measure_depth_scales(scale), measure_trainability(scale)
    rows = pd.concat([phase, scales, training], ignore_index=True)
    return Reproduction("schoenholz2017", scale, claims(rows, scale), rows, figures(phase, scales, training))
