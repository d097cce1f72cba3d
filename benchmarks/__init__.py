"""initbench benchmarks: specs, data, the cohort trainer, signal propagation, theory, reports."""

from inits import __version__ as __version__
