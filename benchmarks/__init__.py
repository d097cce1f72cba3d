"""initbench benchmarks: specs, data, the cohort trainer, signal propagation, theory, reports."""

from initbench.inits import __version__ as __version__
