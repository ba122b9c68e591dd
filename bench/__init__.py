"""Benchmarks (not tests): data generators, runners and their results under ``bench/results``."""
