r"""The statistics of the reproductions' claims: one module, so every claim judges seeds alike.

Claims over a few seeds compare means with **95% Student-t intervals**, never a fixed
"2 standard errors" (at 3 seeds the 95% quantile is 4.30, not 2):

* :func:`mean_se`: the mean and its standard error over seeds (nan with fewer than 2);
* :func:`ci`: the mean and the half-width of its 95% t-interval (``n - 1`` degrees of freedom);
* :func:`difference`: the difference of two arms' means, its standard error and the Welch
  (Satterthwaite) degrees of freedom, optionally with an extra variance of known (infinite)
  degrees of freedom, such as a test set's binomial :math:`p(1-p)/n`:

  .. math:: \nu = \frac{(s_a^2/n_a + s_b^2/n_b + v)^2}{(s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1)}.

Two kinds of comparison claims follow (:class:`Difference`):

* **better**: "A beats B" holds when the interval of :math:`\bar a - \bar b` lies above 0
  (:attr:`Difference.low` > 0);
* **not worse**: "A is as good as B" holds when the interval of :math:`\bar b - \bar a` lies
  below a margin :math:`\delta` fixed in the claim (:attr:`Difference.high` <= delta), so more
  noise makes such a claim harder to pass, not easier (a fixed-SE rule allows any gap when the
  seeds disagree).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

LEVEL = 0.95


def _seeds(values: Any) -> np.ndarray:
    """One value per seed as a 1-d float64 array (a scalar is one seed; more dimensions are refused)."""
    x = np.atleast_1d(np.asarray(values, np.float64))
    if x.ndim != 1:
        raise ValueError(f"one value per seed (a 1-d sequence), got shape {x.shape}")
    return x


def t_quantile(dof: float, level: float = LEVEL) -> float:
    """The two-sided ``level`` quantile of Student's t with ``dof`` degrees of freedom (the normal's at inf).

    Example:
      >>> round(t_quantile(2), 3), round(t_quantile(math.inf), 3)
      (4.303, 1.96)
    """
    from scipy import stats

    if not dof > 0:
        return math.nan
    return float(stats.t.ppf(0.5 + level / 2, dof)) if math.isfinite(dof) else float(stats.norm.ppf(0.5 + level / 2))


def mean_se(values: Any) -> tuple[float, float]:
    """Mean and standard error of the mean over seeds (the SE is nan with fewer than 2 values).

    Example:
      >>> mean_se([1.0, 2.0, 3.0])
      (2.0, 0.577...)
    """
    x = _seeds(values)
    if len(x) == 0:
        return math.nan, math.nan
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan
    return float(x.mean()), se


def ci(values: Any) -> tuple[float, float]:
    """Mean and 95% Student-t half-width over seeds; an infinite value (a diverged run) makes the mean infinite.

    Example:
      >>> ci([1.0, 2.0, 3.0])
      (2.0, 2.484...)
      >>> ci([1.0, float("inf")]), ci([1.0, float("nan")])
      ((inf, 0.0), (nan, inf))
    """
    x = _seeds(values)
    if np.isnan(x).any() or (np.isposinf(x).any() and np.isneginf(x).any()):
        return math.nan, math.inf
    if np.isinf(x).any():
        return float(x[np.isinf(x)][0]), 0.0
    if len(x) < 2:
        return (float(x.mean()) if len(x) else math.nan), math.inf
    return float(x.mean()), t_quantile(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))


@dataclasses.dataclass(frozen=True)
class Difference:
    r"""The difference of two arms' means with its 95% Welch-t interval.

    Attributes:
      value: :math:`\bar a - \bar b`.
      se: Its standard error (seeds of both arms, plus any extra variance).
      dof: Welch-Satterthwaite degrees of freedom (inf when only the extra variance is left).
      half: The interval's half-width, ``t_quantile(dof) x se`` (nan without enough seeds).
    """

    value: float
    se: float
    dof: float
    half: float

    @property
    def low(self) -> float:
        """The interval's lower end (nan when it cannot be formed)."""
        return self.value - self.half

    @property
    def high(self) -> float:
        """The interval's upper end (nan when it cannot be formed)."""
        return self.value + self.half

    def better(self) -> bool:
        """A beats B: the whole interval is above 0."""
        return bool(self.low > 0)

    def within(self, delta: float) -> bool:
        """B beats A by at most ``delta`` (``self`` is B - A): the whole interval is below ``delta``."""
        return bool(self.high <= delta)


def difference(a: Any, b: Any, extra_var: float = 0.0) -> Difference:
    """``mean(a) - mean(b)`` with its 95% Welch-t interval; ``extra_var`` adds a variance of infinite dof.

    Each arm needs at least 2 seeds (else the interval is nan, and every claim on it fails).
    A non-finite value in either arm makes the difference nan.

    Example:
      >>> d = difference([0.9, 0.92, 0.91], [0.5, 0.52, 0.51])
      >>> round(d.value, 3), round(d.low, 3), d.better()
      (0.4, 0.377, True)
    """
    x, y = _seeds(a), _seeds(b)
    if not (isinstance(extra_var, int | float) and not isinstance(extra_var, bool) and extra_var >= 0):
        raise ValueError(f"extra_var must be a variance, a number >= 0, got {extra_var!r}")  # nan fails too
    if len(x) < 2 or len(y) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        value = float(x.mean() - y.mean()) if len(x) and len(y) else math.nan
        return Difference(value if np.isfinite(value) else math.nan, math.nan, math.nan, math.nan)
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se2 = va + vb + extra_var
    denominator = va**2 / (len(x) - 1) + vb**2 / (len(y) - 1)
    dof = se2**2 / denominator if denominator > 0 else math.inf
    se = math.sqrt(se2)
    return Difference(float(x.mean() - y.mean()), se, float(dof), t_quantile(dof) * se if se > 0 else 0.0)
