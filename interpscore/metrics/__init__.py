"""Metric math: pure functions and per-unit sufficient statistics, one module per family."""
