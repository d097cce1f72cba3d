"""Registry: initializer name -> entry (factory, family, formula, reference, support)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

from inits import _basic, _structured, _variance
from inits._core import Init
from inits._errors import unknown_choice


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered initializer.

    Attributes:
      name: Registry name (``inits.get(name)``).
      factory: The factory; ``factory(**kwargs)`` returns an :class:`inits.Init`.
      family: ``basic``, ``lecun``, ``glorot``, ``he``, ``framework_default`` or ``structured``.
      formula: The distribution, in plain text.
      reference: Paper or source.
      supports: What kernels it applies to.
      random: False for deterministic initializers.
    """

    name: str
    factory: Callable[..., Init]
    family: str
    formula: str
    reference: str
    supports: str = "any rank >= 1 (fans from the layout: Dense, Conv, grouped, transposed, ensembles)"
    random: bool = True

    @property
    def arguments(self) -> tuple[str, ...]:
        """The keyword arguments the factory accepts."""
        return tuple(inspect.signature(self.factory).parameters)


_GB = "Glorot & Bengio 2010, AISTATS"
_HE = "He, Zhang, Ren & Sun 2015, Delving Deep into Rectifiers, ICCV"
_LECUN = "LeCun, Bottou, Orr & Mueller 1998, Efficient BackProp"
_KERNEL = "kernels of rank >= 2 (fans from the layout: Dense, Conv, grouped, transposed, ensembles)"

_ENTRIES = (
    Entry("zeros", _basic.zeros, "basic", "w = 0", "symmetry problem baseline", random=False),
    Entry("ones", _basic.ones, "basic", "w = 1", "-", random=False),
    Entry("constant", _basic.constant, "basic", "w = value", "-", random=False),
    Entry("normal", _basic.normal, "basic", "w ~ N(mean, stddev^2)", "presets normal(0.01), normal(1.0)"),
    Entry("uniform", _basic.uniform, "basic", "w ~ U[low, high)", "Keras RandomUniform"),
    Entry(
        "truncated_normal", _basic.truncated_normal, "basic", "N(0,1) on [lower, upper], rescaled to std = stddev", "-"
    ),
    Entry(
        "variance_scaling",
        _variance.variance_scaling,
        "variance_scaling",
        "Var[w] = scale / n(mode)",
        "jax.nn.initializers.variance_scaling",
        _KERNEL,
    ),
    Entry("lecun_normal", _variance.lecun_normal, "lecun", "N(0, 1/fan_in)", _LECUN, _KERNEL),
    Entry("lecun_uniform", _variance.lecun_uniform, "lecun", "U[-sqrt(3/fan_in), sqrt(3/fan_in)]", _LECUN, _KERNEL),
    Entry(
        "lecun_truncated_normal",
        _variance.lecun_truncated_normal,
        "lecun",
        "truncated N, Var = 1/fan_in exactly",
        _LECUN,
        _KERNEL,
    ),
    Entry("glorot_normal", _variance.glorot_normal, "glorot", "N(0, 2 g^2/(fan_in + fan_out))", _GB, _KERNEL),
    Entry(
        "glorot_uniform",
        _variance.glorot_uniform,
        "glorot",
        "U[-g sqrt(6/(fan_in + fan_out)), +]",
        _GB + ", eq. 16",
        _KERNEL,
    ),
    Entry("xavier_normal", _variance.xavier_normal, "glorot", "alias of glorot_normal", _GB, _KERNEL),
    Entry("xavier_uniform", _variance.xavier_uniform, "glorot", "alias of glorot_uniform", _GB, _KERNEL),
    Entry(
        "glorot_standard",
        _variance.glorot_standard,
        "glorot",
        "U[-1/sqrt(fan_in), 1/sqrt(fan_in)]",
        _GB + ", eq. 1",
        _KERNEL,
    ),
    Entry("he_normal", _variance.he_normal, "he", "N(0, 2/((1 + a^2) n))", _HE, _KERNEL),
    Entry("he_uniform", _variance.he_uniform, "he", "U[-sqrt(6/((1 + a^2) n)), +]", _HE, _KERNEL),
    Entry(
        "he_truncated_normal",
        _variance.he_truncated_normal,
        "he",
        "truncated N, Var = 2/((1 + a^2) n) exactly",
        _HE,
        _KERNEL,
    ),
    Entry("kaiming_normal", _variance.kaiming_normal, "he", "alias of he_normal", _HE, _KERNEL),
    Entry("kaiming_uniform", _variance.kaiming_uniform, "he", "alias of he_uniform", _HE, _KERNEL),
    Entry(
        "torch_default",
        _variance.torch_default,
        "framework_default",
        "U[-1/sqrt(fan_in), 1/sqrt(fan_in)]",
        "torch.nn.Linear.reset_parameters",
        _KERNEL,
    ),
    Entry(
        "torch_default_bias",
        _variance.torch_default_bias,
        "framework_default",
        "U[-1/sqrt(fan_in), 1/sqrt(fan_in)] (weight fan_in)",
        "torch.nn.Linear.reset_parameters",
        "biases (fan_in given)",
    ),
    Entry(
        "keras_default", _variance.keras_default, "framework_default", "glorot_uniform", "keras.layers.Dense", _KERNEL
    ),
    Entry(
        "flax_default",
        _variance.flax_default,
        "framework_default",
        "truncated N(+-2 std), Var = 1/fan_in",
        "flax.linen.linear.default_kernel_init",
        _KERNEL,
    ),
    Entry(
        "orthogonal",
        _structured.orthogonal,
        "structured",
        "g * Haar (semi-)orthogonal",
        "Saxe, McClelland & Ganguli 2014, ICLR",
        "rank >= 2 (conv: flattened receptive field)",
    ),
    Entry(
        "delta_orthogonal",
        _structured.delta_orthogonal,
        "structured",
        "centre tap g * orthogonal, other taps 0",
        "Xiao et al. 2018, ICML",
        "conv kernels (rank >= 3)",
    ),
    Entry(
        "identity",
        _structured.identity,
        "structured",
        "g * I",
        "Le, Jaitly & Hinton 2015",
        "Dense kernels (rank 2)",
        random=False,
    ),
    Entry(
        "dirac",
        _structured.dirac,
        "structured",
        "centre tap identity per group",
        "torch.nn.init.dirac_",
        "conv kernels (rank >= 3)",
        random=False,
    ),
    Entry(
        "sparse",
        _structured.sparse,
        "structured",
        "ceil(s n) zeros per unit, rest N(0, stddev^2)",
        "Martens 2010, ICML",
        "rank >= 2",
    ),
    Entry(
        "zero_hadamard",
        _structured.zero_hadamard,
        "structured",
        "I, partial I, or c I* H_m I*",
        "Zhao, Schaefer & Anandkumar 2021 (ZerO)",
        "rank >= 2",
        random=False,
    ),
)

REGISTRY: dict[str, Entry] = {e.name: e for e in _ENTRIES}


def available(family: str | None = None) -> tuple[Entry, ...]:
    """Every registered initializer (optionally one family), in registry order."""
    if family is None:
        return _ENTRIES
    families = {e.family for e in _ENTRIES}
    if family not in families:
        raise unknown_choice("family", family, families)
    return tuple(e for e in _ENTRIES if e.family == family)


def entry(name: str) -> Entry:
    """The registry entry for ``name``; unknown names list the choices and the closest match."""
    if name not in REGISTRY:
        raise unknown_choice("initializer", name, REGISTRY)
    return REGISTRY[name]


def get(name: str, **kwargs) -> Init:
    """Builds a registered initializer: ``inits.get("he_normal", mode="fan_out")``.

    Raises:
      ValueError: unknown name (with the closest match).
      TypeError: an argument the factory does not take (the valid ones are listed).
    """
    e = entry(name)
    params = inspect.signature(e.factory).parameters
    bad = sorted(set(kwargs) - set(params))
    if bad:
        raise TypeError(
            f"{name}() got unexpected argument(s) {', '.join(bad)}; valid arguments: {', '.join(params) or 'none'}"
        )
    return e.factory(**kwargs)
