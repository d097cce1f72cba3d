"""Structured initializers: orthogonal, delta-orthogonal, identity/dirac, sparse, ZerO."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from initbench.inits._core import Init, concrete, hyper, provenance, recipe
from initbench.inits.errors import UsageError, check_nonnegative, positive_int

_FACTORIZABLE = tuple(np.dtype(t) for t in (np.float32, np.float64, np.complex64, np.complex128))


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    # QR is not implemented for bfloat16/float16; factor in float32 and cast the result.
    return dtype if dtype in _FACTORIZABLE else np.dtype(np.float32)


def _orthogonal_matrix(key: jax.Array, n_rows: int, n_cols: int, dtype: np.dtype) -> jax.Array:
    return jax.random.orthogonal(key, n_rows, (), _compute_dtype(dtype), n_cols)


def _scale_or_gain(scale: Any, gain: Any, what: str) -> tuple[Any, float | None]:
    # jax names the multiplier `scale`; initbench (and PyTorch) `gain`: either, not both.
    if gain is not None:
        if not (isinstance(scale, float | int) and scale == 1.0):
            raise UsageError(
                f"{what}: give scale or gain (the same multiplier), not both: scale={scale!r}, gain={gain!r}"
            )
        return hyper("gain", gain, what)
    return hyper("scale", scale, what)


@recipe
def orthogonal(scale: Any = 1.0, column_axis: int = -1, dtype: Any = None, *, gain: Any = None) -> Init:
    r"""Haar-random (semi-)orthogonal matrix times ``scale`` (Saxe et al. 2014).

    The kernel is viewed as a matrix with ``shape[column_axis]`` columns and every other
    axis flattened into rows (for a conv kernel: the receptive field times the input
    channels). If rows >= columns the columns are orthonormal, else the rows are. Each entry
    then has mean 0 and variance :math:`g^2 / \max(\text{rows}, \text{cols})`. A complex dtype
    gives a Haar-random (semi-)unitary matrix, :math:`\mathbb{E}|w|^2` the same.
    Bitwise equal to ``jax.nn.initializers.orthogonal(scale, column_axis, dtype)`` for float32.

    Saxe, McClelland & Ganguli 2014, "Exact solutions to the nonlinear dynamics of learning
    in deep linear neural networks", ICLR; sampling after Mezzadri 2007.

    Args:
      scale: Multiplier g (>= 0), jax's name; a number or a traced scalar (differentiable).
      column_axis: Axis holding the columns.
      dtype: Default dtype (real or complex); None: JAX's default float.
      gain: The same multiplier under PyTorch's name (keyword-only): ``inits.gain(activation)``
        for nonlinear nets. Give ``scale`` or ``gain``.
    """
    gain, g = _scale_or_gain(scale, gain, "orthogonal")

    def sizes(shape: tuple[int, ...]) -> tuple[int, int]:
        try:
            n_cols = shape[column_axis]
        except IndexError:
            raise UsageError(f"orthogonal: column_axis={column_axis} out of range for shape {shape}") from None
        return math.prod(shape) // n_cols, n_cols

    def sample(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
        n_rows, n_cols = sizes(shape)
        q = _orthogonal_matrix(key, n_rows, n_cols, dtype)
        q = jnp.reshape(q, (*np.delete(shape, column_axis), shape[column_axis]))
        q = jnp.moveaxis(q, -1, column_axis)
        return (jnp.array(gain, q.dtype) * q).astype(dtype)

    def moments(shape: tuple[int, ...]) -> tuple[float, float]:
        concrete("orthogonal", gain=g)
        assert g is not None  # concrete() raised otherwise
        return 0.0, g**2 / max(sizes(shape))

    return Init(
        "orthogonal",
        (("gain", provenance(g)), ("column_axis", column_axis)),
        sample,
        moments,
        min_ndim=2,
        dtype=dtype,
        complex_ok=True,
    )


def _center(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple((k - 1) // 2 for k in shape[:-2])


@recipe
def delta_orthogonal(scale: Any = 1.0, column_axis: int = -1, dtype: Any = None, *, gain: Any = None) -> Init:
    """Delta-orthogonal convolution kernel (Xiao et al. 2018).

    For a kernel ``(*window, in, out)`` every tap is zero except the centre one
    (index ``(k - 1) // 2`` per window axis), which is a Haar-random ``(in, out)`` matrix
    times ``gain``. With ``in <= out`` it has orthonormal rows, so the convolution is a norm-
    preserving map of the input (all singular values of the input-output Jacobian equal to
    ``gain``: dynamical isometry). With ``in > out`` (allowed here; ``jax.nn.initializers``
    raises) the centre tap has orthonormal columns: a projection that preserves the norm of
    the back-propagated gradient but keeps only ``out / in`` of the forward signal's energy
    in expectation. A 2-D ``(in, out)`` kernel is a convolution with an empty window: it gets
    the orthogonal matrix itself, so Dense heads of conv nets take the same initializer.

    Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington 2018, "Dynamical Isometry and a Mean
    Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural Networks",
    ICML, Algorithm 1.

    The signature is ``jax.nn.initializers.delta_orthogonal``'s (``scale``, ``column_axis`` of
    the centre matrix, ``dtype``; real or complex); jax refuses in > out and 2-D kernels, this
    accepts both as described.

    Args:
      scale: Multiplier of the centre tap (>= 0), jax's name; a number or a traced scalar.
      column_axis: Axis of the ``(in, out)`` centre matrix holding its columns (-1: out).
      dtype: Default dtype (real or complex); None: JAX's default float.
      gain: The same multiplier under PyTorch's name (keyword-only). Give ``scale`` or ``gain``.
    """
    gain, g = _scale_or_gain(scale, gain, "delta_orthogonal")
    if column_axis not in (-1, -2, 0, 1):
        raise UsageError(f"delta_orthogonal: column_axis must be -1 or -2 (of the centre matrix), got {column_axis!r}")
    centre = orthogonal(gain, column_axis=column_axis)

    def sample(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
        q = centre.sample(key, tuple(shape[-2:]), dtype)
        return jnp.zeros(shape, dtype).at[_center(shape)].set(q)

    params = (("gain", provenance(g)),) + ((("column_axis", column_axis),) if column_axis != -1 else ())
    return Init("delta_orthogonal", params, sample, None, min_ndim=2, dtype=dtype, complex_ok=True)


def _dirac_matrix(shape: tuple[int, ...], groups: int, gain: float, dtype) -> jax.Array:
    n_in, n_out = shape[-2], shape[-1]
    if n_out % groups:
        raise UsageError(f"dirac: out features {n_out} not divisible by groups={groups}")
    out_per_group = n_out // groups
    m = np.zeros((n_in, n_out), np.float64)
    for g in range(groups):
        for i in range(min(n_in, out_per_group)):
            m[i, g * out_per_group + i] = gain
    return jnp.asarray(m, dtype)


@recipe
def identity(gain: float = 1.0) -> Init:
    """Identity map times ``gain`` for Dense kernels: ``torch.nn.init.eye_``.

    For a Dense ``(in, out)`` kernel with ``in != out`` the leading ``min(in, out)`` diagonal
    is ``gain`` and the rest 0. Like ``eye_``, it refuses other shapes: a convolution's
    identity is :func:`dirac`. Le, Jaitly & Hinton 2015 ("IRNN") use it for recurrent weights.
    Deterministic.

    Args:
      gain: Value on the diagonal (>= 0).
    """
    gain = check_nonnegative("gain", gain, "identity")
    return dataclasses.replace(dirac(1, gain), name="identity", params=(("gain", gain),), min_ndim=2, max_ndim=2)


@recipe
def dirac(groups: int = 1, gain: float = 1.0) -> Init:
    """Dirac delta conv kernel: the convolution is the identity map (``torch.nn.init.dirac_``).

    For ``(*window, in // groups, out)``: the centre tap maps input channel ``i`` of group
    ``g`` to output channel ``g * out_per_group + i`` for ``i < min(in_per_group,
    out_per_group)``; everything else is 0. A 2-D kernel is its own centre tap. Deterministic.

    Args:
      groups: The convolution's feature_group_count.
      gain: Value of the nonzero taps (>= 0).
    """
    gain = check_nonnegative("gain", gain, "dirac")
    groups = positive_int("dirac: groups", groups)

    def sample(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
        center = _dirac_matrix(shape, groups, gain, dtype)
        return jnp.zeros(shape, dtype).at[_center(shape)].set(center)

    return Init("dirac", (("groups", groups), ("gain", gain)), sample, None, min_ndim=2)


@recipe
def sparse(sparsity: float = 0.9, stddev: float = 0.01) -> Init:
    r"""Sparse initialization (Martens 2010, "Deep learning via Hessian-free optimization").

    For each output unit (last axis) exactly ``ceil(sparsity * n)`` of its ``n`` incoming
    weights (every other axis flattened) are zero, chosen uniformly at random; the others are
    :math:`\mathcal{N}(0, \text{stddev}^2)`. Each entry has mean 0 and variance
    :math:`\text{stddev}^2 (n - \lceil s n \rceil) / n`. Martens used 15 nonzero
    weights per unit; PyTorch's ``sparse_`` has the same parametrisation as here.

    Args:
      sparsity: Fraction of zero incoming weights per unit, in [0, 1).
      stddev: Standard deviation of the nonzero weights (>= 0).
    """
    if isinstance(sparsity, bool | np.bool_) or not isinstance(sparsity, numbers.Real) or not 0 <= sparsity < 1:
        raise UsageError(f"sparse: sparsity must be a number in [0, 1), got {sparsity!r}")  # nan fails too
    sparsity = float(sparsity)
    if isinstance(stddev, bool | np.bool_) or not isinstance(stddev, numbers.Real):  # True is no stddev of 1
        raise UsageError(f"sparse: stddev must be a number, got {stddev!r}")
    stddev = check_nonnegative("stddev", stddev, "sparse")

    def zeros_per_unit(n_in: int) -> int:
        return math.ceil(sparsity * n_in)

    def sample(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
        n_in = math.prod(shape[:-1])
        k_mask, k_values = jax.random.split(key)
        ranks = jnp.argsort(jnp.argsort(jax.random.uniform(k_mask, (n_in, shape[-1])), axis=0), axis=0)
        values = jax.random.normal(k_values, (n_in, shape[-1]), dtype) * jnp.array(stddev, dtype)
        out = jnp.where(ranks < zeros_per_unit(n_in), jnp.zeros((), dtype), values)
        return out.reshape(shape)

    def moments(shape: tuple[int, ...]) -> tuple[float, float]:
        n_in = math.prod(shape[:-1])
        return 0.0, stddev**2 * (n_in - zeros_per_unit(n_in)) / n_in

    return Init("sparse", (("sparsity", sparsity), ("stddev", stddev)), sample, moments, min_ndim=2)


def _sylvester_hadamard(order: int) -> np.ndarray:
    h = np.ones((1, 1))
    for _ in range(order):
        h = np.block([[h, h], [h, -h]])
    return h


def zero_hadamard_matrix(n_in: int, n_out: int) -> np.ndarray:
    r"""The ``(in, out)`` ZerO matrix (Zhao et al. 2021, Algorithm 1), as float64.

    In the paper's ``(out, in)`` convention, with :math:`P_l` outputs and :math:`P_{l-1}`
    inputs: :math:`I` if equal, the partial identity :math:`I^*` if :math:`P_l < P_{l-1}`, else
    :math:`c\, I^{*}_{P_l \times 2^m} H_m I^{*}_{2^m \times P_{l-1}}` with
    :math:`m = \lceil \log_2 P_l \rceil`, :math:`c = 2^{-(m-1)/2}` and :math:`H_m` the
    Sylvester Hadamard matrix of order :math:`2^m`.
    """
    if n_out <= n_in:
        return np.eye(n_in, n_out)
    m = math.ceil(math.log2(n_out))
    w = 2.0 ** (-(m - 1) / 2) * _sylvester_hadamard(m)[:n_out, :n_in]
    return w.T


@recipe
def zero_hadamard() -> Init:
    """ZerO initialization: only zeros, ones and a Hadamard transform (Zhao et al. 2021).

    Dense kernels ``(in, out)`` get :func:`zero_hadamard_matrix`; conv kernels get it on the
    centre tap and zeros elsewhere (the paper's Algorithm 2). Deterministic: ZerO breaks the
    symmetry of expanding layers with the Hadamard transform instead of randomness.

    Zhao, Schäfer & Anandkumar 2021, "ZerO Initialization: Initializing Neural Networks with
    only Zeros and Ones", TMLR 2022.
    """

    def sample(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
        center = jnp.asarray(zero_hadamard_matrix(shape[-2], shape[-1]), dtype)
        if len(shape) == 2:
            return center
        return jnp.zeros(shape, dtype).at[_center(shape)].set(center)

    return Init("zero_hadamard", (), sample, None, min_ndim=2)
