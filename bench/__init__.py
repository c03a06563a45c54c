"""Benchmarks of the Ensemble Gateway: ``python -m bench [names...] [--quick]`` (see bench/README.md)."""
