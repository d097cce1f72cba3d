r"""``zhang2019``: Zhang, Dauphin & Ma 2019, "Fixup Initialization: Residual Learning Without Normalization" (ICLR).

**At initialization (section 2).** A residual net without normalization, He-initialized,
explodes: each block adds a branch whose output variance is comparable to its input's, so the
signal grows geometrically with depth and the initial logits (and loss) are huge. Fixup
(section 3: classifier and last layer of each branch at 0, the other branch layers scaled by
:math:`L^{-1/(2m-2)}`, scalar multipliers 1 and scalar biases 0) starts every block at the
identity, so the per-block signal is flat and the initial loss is exactly
:math:`\ln(\text{classes})`. Measured on a one-stage ResNet of ``L`` blocks and width 16
(the library's ``models.build("resnet", blocks=(L,), normalization="none", residual_scale=1,
branch_biases=True)`` block, post-activation :math:`x_{l+1} = \mathrm{relu}(x_l + F(x_l))` as
in the paper's Fig. 1, with its blocks under one ``lax.scan``: see Deviations), Fixup's rule
applied as ``inits.fixup`` applies it (a test checks they agree), on Gaussian 8x8x3 inputs,
over seeds: the second moment
:math:`q_l = \mathbb{E}[x_l^2]` of every block's output (post-ReLU outputs have a non-zero mean,
so the second moment is what propagates). Four inits: He (no multiplier), Fixup, SkipInit
(De & Smith 2020: He with a zero multiplier) and "Fixup rule 2 only" (He with the branches'
first layers scaled by :math:`L^{-1/2}`, last layers not zeroed: shows that Fixup's rescaling
alone bounds the growth, beyond the trivial identity at init).

Theory (infinite width, mean field, computed by :func:`mean_field` with the zero padding of the
8x8 maps): with :math:`q` the block input's second moment, the branch output is a centred
Gaussian of variance :math:`2 s q` independent of :math:`x` (He: :math:`s = 1`; rule 2 only:
:math:`s = 1/L`; less at the borders), and :math:`q' = \mathbb{E}[\mathrm{relu}(x + y)^2]
\in [(1 + 2s) q / 2, (1 + 2s) q]` (:math:`x \ge 0`): He grows by a factor in [1.5, 3] per block
(the paper's pre-activation analysis: 2), rule 2 only by at most
:math:`(1 + 2/L)^L < e^2` over all :math:`L` blocks. Claims (criteria set before measuring):

* He explodes: the per-block factor (geometric mean over blocks 2..L of :math:`q_l/q_{l-1}`,
  averaged in log over seeds) is within 15% of the mean-field factor (the random-walk
  fluctuation of a width-16 net over ``L`` blocks is a few percent per block) and at least 1.4
  (so :math:`q_L/q_1 \ge 1.4^{L-1}`: exponential in depth);
* Fixup and SkipInit are flat: :math:`|q_L/q_1 - 1| < 10^{-5}` (exact identity at init up to
  float32 rounding);
* Fixup's rescaling alone bounds the growth: :math:`q_L/q_1 \le e^2` (the mean-field bound) and
  within 25% of the mean-field value;
* initial loss: Fixup's is :math:`\ln 10` to within :math:`10^{-5}` (zero classifier); He's at
  the deepest net exceeds :math:`10 \ln 10`.

**Depth sweep of early accuracy (Fig. 3).** The paper trains CIFAR-10 ResNets of increasing
depth (up to 10,000 layers) for one epoch at BatchNorm's learning rate: without normalization
He init diverges at depth, Fixup trains at every depth with first-epoch accuracy close to
BatchNorm's. Here, through initbench's own trainer and models (the ``zhang2019-depth``
experiment, ``initbench run zhang2019-depth``): embedded digits (8x8x1, 1437 train / 360
test), ``models.ResNet`` with one stage of width 8 and ``L`` blocks for ``L`` in the scale's
depths, SGD with momentum 0.9 and base lr 0.1 (the paper's BatchNorm learning rate), a short
budget of minibatch steps ("early accuracy"), 4 arms: He without normalization, ``inits.fixup``
and ``inits.skipinit`` (both without normalization; their schemes set the architecture: Fixup's
scalar biases and multipliers, SkipInit's multipliers) and He with BatchNorm after every
convolution; test accuracy after the budget, over seeds. The three no-normalization arms train
with the Fixup authors' published recipe (their ``cifar_train.py``, also GradInit's
``train_cifar.py`` for the fixup archs: every parameter whose name contains ``bias`` or
``scale`` at a tenth of the base learning rate) as the trainer's per-parameter learning rates,
``lr_scale = {bias = 0.1, scalar = 0.1}``: every bias (per-channel and the classifier's),
Fixup's scalar biases and the branch multipliers at 0.01, the kernels at 0.1 (a test checks the
selection against the authors' name rule); the BatchNorm arm trains every parameter at 0.1.
A run diverges when its training loss turns non-finite or exceeds 100x its step-0 value (the
trainer's rule). Claims:

* He without normalization diverges or stalls at the deepest depth: every seed diverges, or its
  test accuracy stays below 0.2 (chance is 0.1; the binomial standard error on 360 test images
  is 0.016);
* Fixup trains at every depth: no seed diverges and the mean test accuracy is at least 0.5;
* Fixup is not worse than BatchNorm, nor than SkipInit, at any depth: the 95% Welch-t interval
  over seeds of other - Fixup mean accuracy lies below :data:`MARGIN` (0.05). One-sided: the
  paper claims Fixup matches BatchNorm, not that it beats it. Until issue 25 the rule was
  "Fixup >= other - (0.05 + 2 x the seeds' combined standard error)": more seed noise allowed
  more; the revision came after the numbers were seen (the gallery row says so).

Deviations. CPU-sized: Gaussian 8x8x3 inputs at init and digits (8x8x1) for training, not
CIFAR-10 (which cannot be had offline here); width 16 (init) and 8 (training); at ``cpu``
scale 32 blocks at init and depths 4 and 16 blocks (10 and 34 layers) in training, not up to
10,000 layers; a fixed number of steps, not an epoch of CIFAR. The at-init part uses this
module's own residual net, the library's Fixup block with its blocks under one ``lax.scan``
(stacked block parameters), because the library's ResNet unrolls its blocks (a 32-block
init + ``inits.fixup`` + probe takes about a minute on 2 cores); the Fixup rule is applied as
``inits.fixup`` does it (a test checks the two agree). In training, "He without
normalization" is the library ResNet without normalization (per-channel conv biases, no
multipliers), BatchNorm uses running averages at evaluation (momentum 0.9), and the data order
is the trainer's (one permutation per epoch). Of the authors' recipe we keep the per-group
learning rates and momentum 0.9 but not their weight decay (1e-4), mixup, data augmentation or
learning-rate schedule (a constant lr over a short budget); the batch is 64 at ``cpu`` scale
(128 in the paper, which the time budget does not allow) at the same base lr 0.1 for every arm
(the authors' code would scale the kernels' lr by batch / 128, to 0.05, and not the biases').
``paper`` scale stops at 256 blocks: deeper unrolled nets compile for too long.

History (reported, not hidden). The first ``cpu`` run trained every parameter of every arm at
lr 0.1 with batches of 16: Fixup's test accuracy was 0.253 (4 blocks) and 0.094 (16 blocks)
against BatchNorm's 0.875 and 0.383, so "Fixup trains at every depth" and "Fixup matches
BatchNorm" failed (SkipInit diverged at 4 blocks, 0.078 at 16). That setup did not follow the
paper's recipe (a runner experiment on the library ResNet, 4 blocks, width 16, batch 128, also
saw Fixup blow up at lr 0.05 with one lr for all parameters but train at 0.01), so the training
was changed to the recipe above (biases and multipliers at lr / 10, no-norm arms only) and the
``cpu`` batch to 64; the claims' criteria were not changed. The second ``cpu`` run (this
recipe, batch 64, 138 s wall, on this module's own scanned net with its own loop) still failed
both claims: Fixup 0.429 +- 0.324 (seeds 0.106 and 0.753) at 4 blocks and 0.075 at 16 against
BatchNorm's 0.949 and 0.763 (SkipInit 0.633 and 0.376; He diverged at 16 blocks); a trace of
4 blocks, seed 0, showed the loss falling to 2.08 by step 60, then a jump after which it sat at
ln 10. The third version (this one) trains on the library's trainer, ResNet and schemes with
the recipe as per-parameter learning rates and the same criteria, except that "diverges" is
now the trainer's rule (a loss non-finite or above 100x its step-0 value, fixed in the trainer
before this run), where it was a non-finite loss; its numbers are in the gallery.
Instability at lr 0.1 at width 8, not the scalars' lr, is the remaining suspect (issue 25:
the setup, not the criteria, is what should change).

Scales: ``smoke`` (4 blocks at init, depth 2 for 10 steps of 16), ``cpu`` (32 blocks at init
over 4 seeds; depths 4 and 16 for 150 steps of 64, 2 seeds), ``paper`` (configured, not run
here: the depths of Fig. 3 up to 256 blocks, 1000 steps of 128, 5 seeds); the training sizes
are the ``zhang2019-depth`` experiment's scales.
"""

from __future__ import annotations

import json
import math
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from initbench import inits
from initbench.benchmarks.reproduce import Claim, Reproduction
from initbench.benchmarks.reproduce._stats import difference, mean_se
from initbench.models.layers import conv2d

SIZES = {
    "smoke": {
        "init_blocks": 4,
        "init_width": 8,
        "init_batch": 16,
        "init_seeds": 2,
    },
    "cpu": {
        "init_blocks": 32,
        "init_width": 16,
        "init_batch": 64,
        "init_seeds": 4,
    },
    "paper": {
        "init_blocks": 256,
        "init_width": 16,
        "init_batch": 128,
        "init_seeds": 8,
    },
}
INIT_SCHEMES = ("he", "fixup", "skipinit", "fixup_rule2_only")
TRAIN_SCHEMES = ("he", "fixup", "skipinit", "batchnorm")
NUM_CLASSES = 10
CHANCE_STALL = 0.2  # test accuracy below this counts as "stalled" (chance 0.1)
TRAINS = 0.5  # Fixup "trains": mean test accuracy at least this
MARGIN = 0.05  # Fixup "comparable": the other's accuracy above Fixup's by at most this (95% interval)
HE_FACTOR_TOL = 0.15
RULE2_TOL = 0.25
EXACT = 1e-5
EXPERIMENT = "zhang2019-depth"  # the depth sweep's training grid (benchmarks/experiments/zhang2019-depth.toml)
SCHEMES_OF = {"he_normal": "he", "fixup": "fixup", "skipinit": "skipinit"}  # the no-norm arms' inits


# ----------------------------------------------------------------------------------------------- at init


def _box(q: jax.Array) -> jax.Array:
    """3x3 sum with zero padding of a ``(..., H, W)`` map (the receptive field of a SAME 3x3 conv)."""
    p = jnp.pad(q, [(0, 0)] * (q.ndim - 2) + [(1, 1), (1, 1)])
    h, w = q.shape[-2:]
    return sum(p[..., i : i + h, j : j + w] for i in range(3) for j in range(3))


def mean_field(blocks: int, *, branch_scale: float = 1.0, size: int = 8, population: int = 4096) -> np.ndarray:
    r"""Infinite-width second moments :math:`q_l` (``l = 1..blocks``) of the no-norm He ResNet's block outputs.

    Unit-variance Gaussian inputs through the He stem (3x3, ReLU); per block the branch
    :math:`y = W_b\,\mathrm{relu}(W_a x)` is, per pixel, a centred Gaussian of variance
    :math:`2 \cdot \mathrm{box}(s \cdot \mathrm{box}(q)/9)/9` (He kernels, zero padding;
    ``branch_scale`` ``s`` multiplies :math:`\mathrm{Var}[W_a]`), independent of :math:`x`; the
    block output :math:`\mathrm{relu}(x + y)` is sampled per pixel from a population of
    ``population`` values (the distribution of :math:`x` is not Gaussian). Fixed keys.
    """
    key = jax.random.key(12345)
    ones = jnp.ones((size, size))
    stem_var = 2.0 * _box(ones) / 9.0  # fan-in counts the 3 channels; zero padding drops taps at the border
    x = jax.nn.relu(jnp.sqrt(stem_var)[None] * jax.random.normal(jax.random.fold_in(key, 0), (population, size, size)))
    out = []
    for layer in range(blocks):
        q = jnp.mean(x**2, axis=0)
        var_a = branch_scale * 2.0 * _box(q) / 9.0
        var_y = 2.0 * _box(var_a / 2.0) / 9.0
        noise = jax.random.normal(jax.random.fold_in(key, layer + 1), x.shape)
        x = jax.nn.relu(x + jnp.sqrt(var_y)[None] * noise)
        out.append(float(jnp.mean(x**2)))
    return np.asarray(out)


def init_moments(scheme: str, blocks: int, width: int, x: jax.Array, labels: jax.Array, seeds: int):
    """Per seed: second moments of the stem and block outputs, initial loss, logit variance (one jit per shape)."""
    stacked = jax.tree_util.tree_map(
        lambda *a: jnp.stack(a),
        *[
            init_train_params(jax.random.fold_in(jax.random.key(seed), 0), blocks, width, x.shape[-1], scheme)
            for seed in range(seeds)
        ],
    )
    return _moments(stacked, x, labels)


@jax.jit
def _moments(stacked: dict, x: jax.Array, labels: jax.Array):
    def one(p):
        logits, q = train_forward(p, x, moments=True)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return q, loss, jnp.var(logits)

    return jax.vmap(one)(stacked)


def measure_at_init(scale: str) -> pd.DataFrame:
    """Per (scheme, seed, block): the block output's second moment; plus block 0 = the stem and the initial loss.

    Rows: ``scheme, seed, block, metric, value``: ``second_moment`` (block 1..L, 0 the stem
    output), per (scheme, seed) ``initial_loss`` and ``logit_variance`` (block -1), and the
    ``mean_field`` prediction (seed -1) for He and Fixup rule 2 only.
    """
    s = SIZES[scale]
    blocks, width, n, seeds = s["init_blocks"], s["init_width"], s["init_batch"], s["init_seeds"]
    x = jax.random.normal(jax.random.key(1000), (n, 8, 8, 3))
    labels = jax.random.randint(jax.random.key(1001), (n,), 0, NUM_CLASSES)
    rows = []
    for scheme in INIT_SCHEMES:
        q, loss, logit_var = (np.asarray(a) for a in init_moments(scheme, blocks, width, x, labels, seeds))
        for seed in range(seeds):
            rows += [
                {"scheme": scheme, "seed": seed, "block": b, "metric": "second_moment", "value": float(v)}
                for b, v in enumerate(q[seed])
            ]
            rows.append(
                {"scheme": scheme, "seed": seed, "block": -1, "metric": "initial_loss", "value": float(loss[seed])}
            )
            rows.append(
                {
                    "scheme": scheme,
                    "seed": seed,
                    "block": -1,
                    "metric": "logit_variance",
                    "value": float(logit_var[seed]),
                }
            )
    mf = {"he": mean_field(blocks), "fixup_rule2_only": mean_field(blocks, branch_scale=1.0 / blocks)}
    for scheme, values in mf.items():
        rows += [
            {"scheme": scheme, "seed": -1, "block": b + 1, "metric": "mean_field", "value": float(v)}
            for b, v in enumerate(values)
        ]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- depth sweep


def _conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return conv2d(x, kernel, (1, 1), "SAME")


def init_train_params(key: jax.Array, blocks: int, width: int, in_channels: int, scheme: str) -> dict:
    """Parameters of the at-init ResNet for one scheme (block parameters stacked on a leading axis).

    He kernels everywhere (``inits.he_normal``); then ``fixup``: classifier and ``conv_b`` zero,
    ``conv_a`` scaled by :math:`L^{-1/2}` (m = 2); ``fixup_rule2_only``: ``conv_a`` scaled only;
    ``skipinit``: multipliers 0. Scalar biases 0 and multipliers 1 otherwise.
    """
    he = inits.he_normal()
    k = jax.random.split(key, 4)
    p = {
        "stem": he(k[0], (3, 3, in_channels, width)),
        "stem_bias": jnp.zeros((width,)),
        "conv_a": jax.vmap(lambda kk: he(kk, (3, 3, width, width)))(jax.random.split(k[1], blocks)),
        "conv_b": jax.vmap(lambda kk: he(kk, (3, 3, width, width)))(jax.random.split(k[2], blocks)),
        "biases": jnp.zeros((blocks, 4)),
        "scale": jnp.ones((blocks,)),
        "head_bias_in": jnp.zeros(()),
        "head": he(k[3], (width, NUM_CLASSES)),
        "head_bias": jnp.zeros((NUM_CLASSES,)),
    }
    if scheme == "fixup":
        p["conv_a"] = p["conv_a"] * blocks ** (-0.5)
        p["conv_b"] = jnp.zeros_like(p["conv_b"])
        p["head"] = jnp.zeros_like(p["head"])
    elif scheme == "fixup_rule2_only":
        p["conv_a"] = p["conv_a"] * blocks ** (-0.5)
    elif scheme == "skipinit":
        p["scale"] = jnp.zeros((blocks,))
    return p


def train_forward(p: dict, x: jax.Array, *, moments: bool = False):
    """Logits of the at-init ResNet: the library's post-activation Fixup block, blocks under ``lax.scan``.

    With ``moments``: ``(logits, second moments of the stem and every block output)``.
    """
    h = jax.nn.relu(_conv(x, p["stem"]) + p["stem_bias"][None, None, None, :])

    def block(h, bp):
        b = bp["biases"]
        y = _conv(h + b[0], bp["conv_a"])
        y = jax.nn.relu(y + b[1])
        y = _conv(y + b[2], bp["conv_b"])
        h = jax.nn.relu(h + y * bp["scale"] + b[3])
        return h, jnp.mean(h**2) if moments else None

    q0 = jnp.mean(h**2)
    h, q = jax.lax.scan(block, h, {k: p[k] for k in ("conv_a", "conv_b", "biases", "scale")})
    pooled = jnp.mean(h, axis=(1, 2)) + p["head_bias_in"]
    logits = pooled @ p["head"] + p["head_bias"][None, :]
    return (logits, jnp.concatenate([q0[None], q])) if moments else logits


# ``(arm, overrides)`` of the ``zhang2019-depth`` experiment: its no-norm grid, then the BatchNorm arm
ARMS = (("no_norm", {}), ("batchnorm", {"init": "he_normal", "model.normalization": "batchnorm", "train.lr_scale": {}}))


def measure_depth_sweep(scale: str) -> pd.DataFrame:
    """Per (scheme, depth, seed): test accuracy after the budget, training loss at step 0 and at the end, divergence.

    Trains the ``zhang2019-depth`` experiment through initbench's runner and cohort trainer
    (``models.ResNet``, ``inits.fixup``/``skipinit``, the authors' ``lr_scale``), and its
    BatchNorm arm (He init, BatchNorm after every convolution, one learning rate).
    """
    from initbench.benchmarks.results import ResultStore
    from initbench.benchmarks.runner import run_experiment

    frames = []
    for arm, overrides in ARMS:
        with tempfile.TemporaryDirectory() as out:
            run_experiment(EXPERIMENT, scale, out, overrides=overrides)
            df = ResultStore(out).read()
        frames.append(df.assign(arm=arm))
    df = pd.concat(frames, ignore_index=True)
    rows = []
    for _, g in df.groupby("run_id", sort=False):
        first = g.iloc[0]
        scheme = "batchnorm" if first["arm"] == "batchnorm" else SCHEMES_OF[first["init"]]
        last = g["step"].max()

        def value(step: int, split: str, metric: str, g: pd.DataFrame = g) -> float:
            hit = g[(g["step"] == step) & (g["split"] == split) & (g["metric"] == metric)]["value"]
            return float(hit.iloc[0]) if len(hit) else math.nan

        diverged = bool((g["status"] == "diverged").any())
        at = g[g["metric"] == "diverged_at_step"]["value"]
        rows.append(
            {
                "scheme": scheme,
                "depth": int(json.loads(first["model_options"])["blocks"][0]),
                "seed": int(first["seed"]),
                "test_accuracy": value(last, "test", "accuracy"),
                "initial_loss": value(0, "train", "loss"),
                "final_loss": value(last, "train", "loss"),
                "diverged": diverged,
                "diverged_at": int(at.iloc[0]) if len(at) else -1,
            }
        )
    return pd.DataFrame(rows).sort_values(["depth", "scheme", "seed"], ignore_index=True)


# ---------------------------------------------------------------------------------------------- claims


def _growth(init_df: pd.DataFrame, scheme: str) -> tuple[float, float, float]:
    """(per-block factor, q_L/q_1, its seeds' SE of log factor) averaged in log over seeds."""
    q = init_df[(init_df["scheme"] == scheme) & (init_df["metric"] == "second_moment") & (init_df["block"] >= 1)]
    table = q.pivot(index="seed", columns="block", values="value").sort_index(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(table.iloc[:, -1].to_numpy() / table.iloc[:, 0].to_numpy())
    per_block = log_ratio / max(table.shape[1] - 1, 1)
    se = float(np.std(per_block, ddof=1) / math.sqrt(len(per_block))) if len(per_block) > 1 else math.nan
    return float(np.exp(np.mean(per_block))), float(np.exp(np.mean(log_ratio))), se


def _mean_field_growth(init_df: pd.DataFrame, scheme: str) -> tuple[float, float]:
    mf = init_df[(init_df["scheme"] == scheme) & (init_df["metric"] == "mean_field")].sort_values("block")["value"]
    mf = mf.to_numpy()
    return float((mf[-1] / mf[0]) ** (1 / max(len(mf) - 1, 1))), float(mf[-1] / mf[0])


def _accuracies(sweep: pd.DataFrame, scheme: str, depth: int) -> pd.Series:
    """The seeds' test accuracies (a diverged seed counts as chance, 0.1)."""
    return sweep[(sweep["scheme"] == scheme) & (sweep["depth"] == depth)]["test_accuracy"].fillna(1.0 / NUM_CLASSES)


def _stat(sweep: pd.DataFrame, scheme: str, depth: int) -> tuple[float, float]:
    """Mean and SE over seeds of the test accuracy (a diverged seed counts as chance, 0.1)."""
    return mean_se(_accuracies(sweep, scheme, depth))


SWEEP_COLUMNS = ("test_accuracy", "initial_loss", "final_loss", "diverged", "diverged_at")


def tidy(init_df: pd.DataFrame, sweep: pd.DataFrame) -> pd.DataFrame:
    """The measurements of both parts as one tidy frame: ``part, scheme, seed, block | depth, metric, value``.

    The at-init rows as :func:`measure_at_init` gives them (``part = "at_init"``, ``depth`` NaN);
    the depth sweep's columns melted into ``metric, value`` (``part = "depth_sweep"``, ``block``
    NaN; ``diverged`` as 0/1). :func:`split` inverts it.
    """
    rows = pd.concat(
        [
            init_df.assign(part="at_init"),
            sweep.melt(id_vars=["scheme", "depth", "seed"], var_name="metric", value_name="value").assign(
                part="depth_sweep"
            ),
        ],
        ignore_index=True,
    )
    rows["value"] = rows["value"].astype(float)
    return rows


def split(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(init_df, sweep)`` of :func:`measure_at_init` and :func:`measure_depth_sweep` from :func:`tidy`'s rows."""
    init_df = rows[rows["part"] == "at_init"][["scheme", "seed", "block", "metric", "value"]]
    init_df = init_df.astype({"seed": int, "block": int}).reset_index(drop=True)
    sweep_rows = rows[rows["part"] == "depth_sweep"]
    wide = sweep_rows.pivot(index=["scheme", "depth", "seed"], columns="metric", values="value")
    sweep = wide.reindex(columns=list(SWEEP_COLUMNS)).reset_index()
    sweep.columns.name = None
    sweep = sweep.astype({"depth": int, "seed": int, "diverged": bool, "diverged_at": int})
    return init_df, sweep.sort_values(["depth", "scheme", "seed"], ignore_index=True)


def claims(measurements: pd.DataFrame, scale: str) -> list[Claim]:
    """The claims of the module docstring, from :func:`tidy`'s rows alone (every size they need is in the rows)."""
    del scale  # the rows carry every size the claims use (blocks, depths, seeds)
    init_df, sweep = split(measurements)
    out = []
    blocks = int(init_df[init_df["metric"] == "second_moment"]["block"].max())
    he_factor, he_total, he_se = _growth(init_df, "he")
    mf_factor, _ = _mean_field_growth(init_df, "he")
    ok = abs(he_factor / mf_factor - 1) <= HE_FACTOR_TOL and he_factor >= 1.4
    out.append(
        Claim(
            "He init explodes without normalization",
            "with He init and no normalization the variance grows"
            " exponentially with depth (Var doubles per block for x + F(x))",
            f"per-block factor of E[x^2] within {HE_FACTOR_TOL:.0%} of the mean-field factor and >= 1.4"
            " (q_L/q_1 >= 1.4^(L-1))",
            f"{blocks} blocks: per-block factor {he_factor:.3f} (seeds' SE of the log {he_se:.3f}; mean field"
            f" {mf_factor:.3f}), q_L/q_1 = {he_total:.3g}",
            bool(ok),
        )
    )
    flat = {k: _growth(init_df, k)[1] for k in ("fixup", "skipinit")}
    ok = all(abs(v - 1) < EXACT for v in flat.values())
    out.append(
        Claim(
            "Fixup and SkipInit are flat at init",
            "Fixup (zero last layer per branch) starts every residual block at"
            " the identity: no growth with depth (so does SkipInit's zero multiplier)",
            f"|q_L/q_1 - 1| < {EXACT:g} for both",
            f"{blocks} blocks: Fixup q_L/q_1 = {flat['fixup']:.7f}, SkipInit {flat['skipinit']:.7f}",
            bool(ok),
            kind="check",
            note=(
                "Fixup's zero last layer and SkipInit's zero multiplier make every branch output 0 at init: exact by "
                "construction"
            ),
        )
    )
    _, r2_total, _ = _growth(init_df, "fixup_rule2_only")
    _, r2_mf = _mean_field_growth(init_df, "fixup_rule2_only")
    ok = r2_total <= math.e**2 and abs(r2_total / r2_mf - 1) <= RULE2_TOL
    out.append(
        Claim(
            "Fixup's rescaling alone bounds the growth",
            "scaling the branches by L^(-1/(2m-2)) keeps the output variance O(1) in depth (section 3)",
            f"q_L/q_1 <= e^2 = {math.e**2:.2f} (mean-field bound) and within {RULE2_TOL:.0%} of the mean-field value",
            f"{blocks} blocks, conv_a x L^-1/2, conv_b He: q_L/q_1 = {r2_total:.3f} (mean field {r2_mf:.3f}; He:"
            f" {he_total:.3g})",
            bool(ok),
        )
    )
    loss = init_df[init_df["metric"] == "initial_loss"].groupby("scheme")["value"]
    fix_dev = float((loss.get_group("fixup") - math.log(NUM_CLASSES)).abs().max())
    he_loss = float(loss.get_group("he").min())
    ok = fix_dev < EXACT and he_loss > 10 * math.log(NUM_CLASSES)
    out.append(
        Claim(
            "initial loss",
            "Fixup's zero classifier starts at loss ln(classes); He init without normalization starts with huge logits",
            f"Fixup within {EXACT:g} of ln 10 = {math.log(10):.4f}; He's (every seed) > 10 ln 10",
            f"Fixup max |loss - ln 10| = {fix_dev:.2g}; He (smallest over seeds, {blocks} blocks) {he_loss:.4g}",
            bool(ok),
        )
    )

    depths = sorted(sweep["depth"].unique())
    deepest = sweep[(sweep["scheme"] == "he") & (sweep["depth"] == depths[-1])]
    acc = deepest["test_accuracy"]
    ok = bool(len(deepest)) and bool((deepest["diverged"] | (acc < CHANCE_STALL)).all())
    out.append(
        Claim(
            "He without normalization fails at depth",
            "without normalization, He-initialized deep ResNets diverge at BatchNorm's learning rate (Fig. 3)",
            f"at the deepest depth every seed diverges (loss non-finite or > 100x its start) or stays below"
            f" {CHANCE_STALL} test accuracy",
            f"{depths[-1]} blocks: {int(deepest['diverged'].sum())}/{len(deepest)} diverged, accuracies "
            + ", ".join("nan" if np.isnan(a) else f"{a:.3f}" for a in acc)
            + "; by depth: "
            + ", ".join(f"{d}: {_stat(sweep, 'he', d)[0]:.3f}" for d in depths),
            ok,
        )
    )
    fix = sweep[sweep["scheme"] == "fixup"]
    means = {d: _stat(sweep, "fixup", d) for d in depths}
    ok = not fix["diverged"].any() and all(m >= TRAINS for m, _ in means.values())
    out.append(
        Claim(
            "Fixup trains at every depth",
            "Fixup trains residual nets of any depth without normalization (Fig. 3)",
            f"no seed diverges and mean test accuracy >= {TRAINS} at every depth",
            "Fixup accuracy by depth: "
            + ", ".join(f"{d}: {m:.3f} +- {se:.3f}" for d, (m, se) in means.items())
            + f"; diverged {int(fix['diverged'].sum())}",
            bool(ok),
        )
    )
    for other, label in (("batchnorm", "BatchNorm"), ("skipinit", "SkipInit")):
        parts, ok = [], True
        for d in depths:
            (fm, _), (om, _) = means[d], _stat(sweep, other, d)
            gap = difference(_accuracies(sweep, other, d), _accuracies(sweep, "fixup", d))
            ok &= gap.within(MARGIN)
            parts.append(f"{d}: Fixup {fm:.3f} vs {om:.3f} (gap interval [{gap.low:.3f}, {gap.high:.3f}])")
        out.append(
            Claim(
                f"Fixup matches {label}",
                f"Fixup's early accuracy is comparable to {label}'s at every depth"
                + (" (Fig. 3)" if other == "batchnorm" else " (De & Smith 2020's no-norm alternative)"),
                f"at every depth the 95% Welch-t interval over seeds of {label} - Fixup mean accuracy is below"
                f" {MARGIN} [criterion revised after the cpu numbers were seen: was Fixup >= {label} - ({MARGIN} +"
                " 2 x combined seed SE) (issue 25)]",
                "; ".join(parts),
                bool(ok),
            )
        )
    return out


# --------------------------------------------------------------------------------------------- figures


def figures(init_df: pd.DataFrame, sweep: pd.DataFrame) -> dict:
    """Per-block second moment at init (with mean field) and the depth sweep of early accuracy (Fig. 3's form)."""
    import matplotlib.pyplot as plt

    out = {}
    fig, ax = plt.subplots(figsize=(7, 4))
    q = init_df[init_df["metric"] == "second_moment"]
    labels = {"he": "He (no norm)", "fixup": "Fixup", "skipinit": "SkipInit", "fixup_rule2_only": "Fixup rule 2 only"}
    for scheme, g in q.groupby("scheme"):
        m = g.groupby("block")["value"].apply(lambda v: float(np.exp(np.mean(np.log(v)))))
        ax.plot(m.index, m.to_numpy(), "o-", ms=3, label=labels[scheme])
    mf = init_df[init_df["metric"] == "mean_field"]
    for scheme, g in mf.groupby("scheme"):
        ax.plot(g["block"], g["value"], "k--", lw=1, label=f"mean field ({labels[scheme]})")
    ax.set_yscale("log")
    ax.set_xlabel("block l (0: stem)")
    ax.set_ylabel("E[x_l^2] (geometric mean over seeds)")
    ax.set_title("At init: no-normalization ResNet, 8x8x3 Gaussian inputs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["variance_per_block"] = fig
    fig, ax = plt.subplots(figsize=(7, 4))
    names = {"he": "He, no norm", "fixup": "Fixup", "skipinit": "SkipInit", "batchnorm": "He + BatchNorm"}
    for scheme in TRAIN_SCHEMES:
        depths = sorted(sweep["depth"].unique())
        stats = [_stat(sweep, scheme, d) for d in depths]
        ax.errorbar(
            [2 * d + 2 for d in depths],
            [m for m, _ in stats],
            yerr=[s for _, s in stats],
            marker="o",
            capsize=3,
            label=names[scheme],
        )
    ax.set_xscale("log")
    ax.set_xlabel("depth (layers = 2 x blocks + 2)")
    ax.set_ylabel("test accuracy after the budget (diverged = 0.1)")
    ax.set_title("Fig 3: early test accuracy vs depth (digits, SGD lr 0.1; no norm: biases, multipliers 0.01)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["depth_sweep"] = fig
    return out


def run(scale: str) -> Reproduction:
    """Measures both parts, checks the claims, draws the figures."""
    import matplotlib

    matplotlib.use("Agg")
    rows = tidy(measure_at_init(scale), measure_depth_sweep(scale))
    return Reproduction("zhang2019", scale, claims(rows, scale), rows, figures(*split(rows)))
