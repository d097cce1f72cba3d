"""initbench: a JAX/Flax research benchmark suite for neural-network weight initialization.

Three packages, each a folder at the repository's top level (this folder links to them):
``initbench.inits`` (initializers and model-level schemes), ``initbench.models`` (Flax model
families) and ``initbench.benchmarks`` (the run pipeline, analysis and reproductions). Importing
``initbench`` imports none of them.
"""
