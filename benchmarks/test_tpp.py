"""TPP: the notebook's column-zeroing definition (InterpScore's component), its
chance-anchored variant, and SAEBench's residual-stream ablation at every N."""

from __future__ import annotations

import pytest

from interpscore.suites import metric_names


@pytest.mark.parametrize("metric", metric_names("tpp"))
def test_tpp(metric, measure):
    measure(metric)
