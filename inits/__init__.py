"""initbench's initializer library: JAX factories that plug straight into Flax.

>>> import flax.linen as nn
>>> from initbench import inits
>>> layer = nn.Dense(128, kernel_init=inits.he_normal())

Every public name is a factory returning an :class:`Init`, a
``jax.nn.initializers.Initializer``-compatible ``init(key, shape, dtype=jnp.float32)``.

Names are imported on first use (PEP 562): importing the package and listing the registries
import no JAX; type checkers and editors read the ``TYPE_CHECKING`` imports below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from initbench.inits.registry import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "constant": "_basic",
    "normal": "_basic",
    "ones": "_basic",
    "truncated_normal": "_basic",
    "uniform": "_basic",
    "zeros": "_basic",
    "zeros_init": "_basic",
    "ones_init": "_basic",
    "Init": "_core",
    "DENSE": "_fans",
    "LAYOUTS": "_fans",
    "Layout": "_fans",
    "compute_fans": "_fans",
    "conv_layout": "_fans",
    "conv_transpose_layout": "_fans",
    "dense_general_layout": "_fans",
    "ensemble_layout": "_fans",
    "ACTIVATIONS": "_gains",
    "Activation": "_gains",
    "gain": "_gains",
    "gaussian_expectation": "_gains",
    "gaussian_quadrature": "_gains",
    "get_activation": "_gains",
    "lsuv": "_model",
    "reinit": "_reinit",
    "fixup": "_residual",
    "skipinit": "_residual",
    "rezero": "_residual",
    "zero_init": "_residual",
    "metainit": "_learned",
    "gradinit": "_learned",
    "delta_orthogonal": "_structured",
    "dirac": "_structured",
    "identity": "_structured",
    "orthogonal": "_structured",
    "sparse": "_structured",
    "zero_hadamard": "_structured",
    "flax_default": "_variance",
    "glorot_normal": "_variance",
    "glorot_standard": "_variance",
    "glorot_truncated_normal": "_variance",
    "glorot_uniform": "_variance",
    "he_normal": "_variance",
    "he_truncated_normal": "_variance",
    "he_uniform": "_variance",
    "kaiming_normal": "_variance",
    "kaiming_uniform": "_variance",
    "keras_default": "_variance",
    "lecun_normal": "_variance",
    "lecun_truncated_normal": "_variance",
    "lecun_uniform": "_variance",
    "torch_default": "_variance",
    "torch_default_bias": "_variance",
    "variance_scaling": "_variance",
    "xavier_normal": "_variance",
    "xavier_uniform": "_variance",
    "Entry": "registry",
    "available": "registry",
    "entry": "registry",
    "get": "registry",
    "get_bias": "registry",
    "FAN_IN_BIASES": "registry",
    "Registry": "registry",
    "INITS": "registry",
    "SCHEMES": "registry",
    "Scheme": "registry",
    "scheme": "registry",
    "UsageError": "errors",
    "UsageTypeError": "errors",
}
__all__ = sorted(_EXPORTS)

if not TYPE_CHECKING:  # type checkers see the imports below, so a misspelled name is an error
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from initbench.inits._basic import constant as constant
    from initbench.inits._basic import normal as normal
    from initbench.inits._basic import ones as ones
    from initbench.inits._basic import ones_init as ones_init
    from initbench.inits._basic import truncated_normal as truncated_normal
    from initbench.inits._basic import uniform as uniform
    from initbench.inits._basic import zeros as zeros
    from initbench.inits._basic import zeros_init as zeros_init
    from initbench.inits._core import Init as Init
    from initbench.inits._fans import DENSE as DENSE
    from initbench.inits._fans import LAYOUTS as LAYOUTS
    from initbench.inits._fans import Layout as Layout
    from initbench.inits._fans import compute_fans as compute_fans
    from initbench.inits._fans import conv_layout as conv_layout
    from initbench.inits._fans import conv_transpose_layout as conv_transpose_layout
    from initbench.inits._fans import dense_general_layout as dense_general_layout
    from initbench.inits._fans import ensemble_layout as ensemble_layout
    from initbench.inits._gains import ACTIVATIONS as ACTIVATIONS
    from initbench.inits._gains import Activation as Activation
    from initbench.inits._gains import gain as gain
    from initbench.inits._gains import gaussian_expectation as gaussian_expectation
    from initbench.inits._gains import gaussian_quadrature as gaussian_quadrature
    from initbench.inits._gains import get_activation as get_activation
    from initbench.inits._learned import gradinit as gradinit
    from initbench.inits._learned import metainit as metainit
    from initbench.inits._model import lsuv as lsuv
    from initbench.inits._reinit import reinit as reinit
    from initbench.inits._residual import fixup as fixup
    from initbench.inits._residual import rezero as rezero
    from initbench.inits._residual import skipinit as skipinit
    from initbench.inits._residual import zero_init as zero_init
    from initbench.inits._structured import delta_orthogonal as delta_orthogonal
    from initbench.inits._structured import dirac as dirac
    from initbench.inits._structured import identity as identity
    from initbench.inits._structured import orthogonal as orthogonal
    from initbench.inits._structured import sparse as sparse
    from initbench.inits._structured import zero_hadamard as zero_hadamard
    from initbench.inits._variance import flax_default as flax_default
    from initbench.inits._variance import glorot_normal as glorot_normal
    from initbench.inits._variance import glorot_standard as glorot_standard
    from initbench.inits._variance import glorot_truncated_normal as glorot_truncated_normal
    from initbench.inits._variance import glorot_uniform as glorot_uniform
    from initbench.inits._variance import he_normal as he_normal
    from initbench.inits._variance import he_truncated_normal as he_truncated_normal
    from initbench.inits._variance import he_uniform as he_uniform
    from initbench.inits._variance import kaiming_normal as kaiming_normal
    from initbench.inits._variance import kaiming_uniform as kaiming_uniform
    from initbench.inits._variance import keras_default as keras_default
    from initbench.inits._variance import lecun_normal as lecun_normal
    from initbench.inits._variance import lecun_truncated_normal as lecun_truncated_normal
    from initbench.inits._variance import lecun_uniform as lecun_uniform
    from initbench.inits._variance import torch_default as torch_default
    from initbench.inits._variance import torch_default_bias as torch_default_bias
    from initbench.inits._variance import variance_scaling as variance_scaling
    from initbench.inits._variance import xavier_normal as xavier_normal
    from initbench.inits._variance import xavier_uniform as xavier_uniform
    from initbench.inits.errors import UsageError as UsageError
    from initbench.inits.errors import UsageTypeError as UsageTypeError
    from initbench.inits.registry import FAN_IN_BIASES as FAN_IN_BIASES
    from initbench.inits.registry import INITS as INITS
    from initbench.inits.registry import SCHEMES as SCHEMES
    from initbench.inits.registry import Entry as Entry
    from initbench.inits.registry import Registry as Registry
    from initbench.inits.registry import Scheme as Scheme
    from initbench.inits.registry import available as available
    from initbench.inits.registry import entry as entry
    from initbench.inits.registry import get as get
    from initbench.inits.registry import get_bias as get_bias
    from initbench.inits.registry import scheme as scheme
