"""Benchmarks at ReasonLite scale (`make bench`): see tests/benchmarks/run_all.py and BENCHMARKS.md."""
