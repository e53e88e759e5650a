"""Benchmarks that measure resource use of the pipeline's readers and writers."""
