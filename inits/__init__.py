"""initbench's initializer library: JAX factories that plug straight into Flax.

>>> import flax.linen as nn, inits
>>> layer = nn.Dense(128, kernel_init=inits.he_normal())

Every public name is a factory returning an :class:`Init`, a
``jax.nn.initializers.Initializer``-compatible ``init(key, shape, dtype=jnp.float32)``.
"""

from inits._basic import constant as constant
from inits._basic import normal as normal
from inits._basic import ones as ones
from inits._basic import truncated_normal as truncated_normal
from inits._basic import uniform as uniform
from inits._basic import zeros as zeros
from inits._core import Init as Init
from inits._fans import DENSE as DENSE
from inits._fans import LAYOUTS as LAYOUTS
from inits._fans import Layout as Layout
from inits._fans import compute_fans as compute_fans
from inits._fans import conv_layout as conv_layout
from inits._fans import conv_transpose_layout as conv_transpose_layout
from inits._fans import dense_general_layout as dense_general_layout
from inits._fans import ensemble_layout as ensemble_layout
from inits._gains import ACTIVATIONS as ACTIVATIONS
from inits._gains import Activation as Activation
from inits._gains import gain as gain
from inits._gains import gaussian_expectation as gaussian_expectation
from inits._gains import get_activation as get_activation
from inits._structured import delta_orthogonal as delta_orthogonal
from inits._structured import dirac as dirac
from inits._structured import identity as identity
from inits._structured import orthogonal as orthogonal
from inits._structured import sparse as sparse
from inits._structured import zero_hadamard as zero_hadamard
from inits._variance import flax_default as flax_default
from inits._variance import glorot_normal as glorot_normal
from inits._variance import glorot_standard as glorot_standard
from inits._variance import glorot_uniform as glorot_uniform
from inits._variance import he_normal as he_normal
from inits._variance import he_truncated_normal as he_truncated_normal
from inits._variance import he_uniform as he_uniform
from inits._variance import kaiming_normal as kaiming_normal
from inits._variance import kaiming_uniform as kaiming_uniform
from inits._variance import keras_default as keras_default
from inits._variance import lecun_normal as lecun_normal
from inits._variance import lecun_truncated_normal as lecun_truncated_normal
from inits._variance import lecun_uniform as lecun_uniform
from inits._variance import torch_default as torch_default
from inits._variance import torch_default_bias as torch_default_bias
from inits._variance import variance_scaling as variance_scaling
from inits._variance import xavier_normal as xavier_normal
from inits._variance import xavier_uniform as xavier_uniform
from inits.registry import Entry as Entry
from inits.registry import available as available
from inits.registry import entry as entry
from inits.registry import get as get

__version__ = "0.1.0"
