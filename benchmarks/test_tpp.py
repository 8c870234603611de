"""TPP: the notebook's column-zeroing definition (InterpScore's component), its
chance-anchored variant, and SAEBench's residual-stream ablation at every N."""

from __future__ import annotations

import pytest

from interpscore.probing_suite import TPP_METRICS


@pytest.mark.parametrize("metric", TPP_METRICS)
def test_tpp(metric, measure, evaluator):
    measure(metric, lambda sid: evaluator.value(sid, metric))
