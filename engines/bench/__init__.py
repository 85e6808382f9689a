"""Benchmarks: timing with raw samples, the measurement loop, published tables, reports."""
