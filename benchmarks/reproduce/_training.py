"""Training for reproductions: runs go through initbench's own trainer, never a loop of their own.

A reproduction states its runs as :class:`~initbench.benchmarks.spec.RunSpec` values (model,
init, data, optimizer, budget) and :func:`train_runs` trains them with
:func:`initbench.benchmarks.train.train_cohort`, one call per cohort (runs that share a
``cohort_key`` share one compiled program; members differ in init, seed and per-member
hyper-parameters). So every reproduction's numbers come from the code a user's ``initbench run``
uses, with its data order, divergence rule and evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from initbench.benchmarks.data import Dataset
    from initbench.benchmarks.spec import RunSpec


def train_runs(
    specs: Sequence[RunSpec], dataset: Dataset, *, keep_variables: bool = False, probe: Any = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Trains ``specs`` on ``dataset``: the trainer's tidy curves and, on request, the trained variables.

    Args:
      specs: The runs (validated here, before any work); any mix of cohorts, in any order.
      dataset: Their data, loaded once.
      keep_variables: Also return each run's trained variables (run_id -> ``{"params": ...}``).
      probe: Measured on every run at every evaluation (``train_cohort``'s ``probe``; rows with
        ``split = "probe"``).

    Returns:
      ``(curves, variables)``: the rows of every run (``run_id``, ``step``, ``split``, ``metric``,
      ``value``, ``status``, ...; a diverged run's evaluations after its divergence are NaN) and
      the variables by run_id (empty unless ``keep_variables``).
    """
    import pandas as pd

    from initbench.benchmarks.train import train_cohort

    for spec in specs:
        spec.validate()
    cohorts: dict[Any, list[RunSpec]] = {}
    for spec in specs:
        cohorts.setdefault(spec.cohort_key, []).append(spec)
    frames, variables = [], {}
    for cohort in cohorts.values():
        for rows, info in train_cohort(cohort, dataset, keep_variables=keep_variables, probe=probe):
            frames.append(rows)
            variables.update(info.get("variables", {}))
    return pd.concat(frames, ignore_index=True), variables


def final_values(curves: pd.DataFrame, run_id: str, step: int) -> dict[str, float]:
    """``{"train_accuracy": ..., "test_loss": ...}`` of one run at one evaluated step (NaN where diverged)."""
    sel = curves[(curves["run_id"] == run_id) & (curves["step"] == step) & curves["layer"].isna()]
    keys = sel["split"] + "_" + sel["metric"]
    out = {k: float(v) for k, v in zip(keys, sel["value"], strict=True)}
    if not out:
        raise AssertionError(f"run {run_id} has no evaluation at step {step}")
    return out
