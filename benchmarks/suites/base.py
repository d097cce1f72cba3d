"""Suite and Grid: named grids of runs at named scales (``smoke`` seconds, ``cpu`` minutes, ``paper`` accelerators)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

from initbench.benchmarks.spec import DataSpec, InitSpec, ModelSpec, RunSpec, TrainSpec
from initbench.inits.errors import positive_int, unknown_choice


@dataclasses.dataclass(frozen=True)
class Grid:
    """A grid declared as data: the product of its axes is the list of runs.

    Attributes:
      models: Model specs.
      inits: Initialization specs.
      activations: Activation names (each replaces the model's activation).
      data: The data spec.
      train: The optimization spec.
      seeds: Number of seeds (0 .. seeds-1).
    """

    models: tuple[ModelSpec, ...]
    inits: tuple[InitSpec, ...]
    activations: tuple[str, ...]
    data: DataSpec
    train: TrainSpec
    seeds: int


@dataclasses.dataclass(frozen=True)
class Suite:
    """A named suite: a description and one grid per scale."""

    name: str
    description: str
    benchmark: str
    grids: dict[str, Grid]

    def specs(
        self,
        scale: str = "smoke",
        *,
        seeds: int | None = None,
        steps: int | None = None,
        inits: Sequence[str] | None = None,
        activations: Sequence[str] | None = None,
        dataset: str | None = None,
    ) -> list[RunSpec]:
        """The runs of a scale, with the CLI's overrides and filters applied.

        Filters name values of the grid (an init by registry name or full label); a filter
        value that matches nothing raises ValueError listing the grid's values.
        """
        if scale not in self.grids:
            raise unknown_choice(f"scale of suite {self.name}", scale, self.grids)
        grid = self.grids[scale]
        for name, value in (("seeds", seeds), ("steps", steps)):
            if value is not None:
                positive_int(f"--{name}", value)
        init_specs = _select("init", grid.inits, inits, lambda i: (i.name, i.label))
        acts = _select("activation", grid.activations, activations, lambda a: (a,))
        train = grid.train if steps is None else dataclasses.replace(grid.train, steps=steps)
        data = grid.data if dataset is None else DataSpec(dataset, grid.data.batch_size, (), grid.data.eval_examples)
        runs = []
        for model, act, init, seed in itertools.product(grid.models, acts, init_specs, range(seeds or grid.seeds)):
            model = dataclasses.replace(model, activation=act)
            runs.append(RunSpec(self.name, self.benchmark, model, init, data, train, seed))
        return runs


def _select(what: str, values: Sequence[Any], wanted: Sequence[str] | None, names) -> list[Any]:
    if not wanted:
        return list(values)
    known = {n for v in values for n in names(v)}
    for w in wanted:
        if w not in known:
            raise unknown_choice(f"{what} in this suite", w, known)
    return [v for v in values if set(names(v)) & set(wanted)]
