"""Suites: named grids of runs at named scales (``smoke`` seconds, ``cpu`` minutes, ``paper`` accelerators)."""

from initbench.benchmarks.suites import quick
from initbench.benchmarks.suites.base import Grid as Grid
from initbench.benchmarks.suites.base import Suite as Suite
from initbench.inits.registry import Registry

SUITES: Registry[Suite] = Registry("suite", (quick.SUITE,))


def get_suite(name: str) -> Suite:
    """A suite by name (an unknown name lists the suites)."""
    return SUITES[name]
