"""Benchmarks of initbench itself: throughput against independent contenders, trace and compile times."""
