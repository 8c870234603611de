"""Core metrics: one test per (SAE, metric), all served by one shared pass per hook.

The first test of an SAE runs the language-model pass for every SAE on its
(model, hook) and their random-init controls; the rest read the cached statistics.
"""

from __future__ import annotations

import pytest

from interpscore.metrics.core import core_metrics

CORE_METRICS = list(core_metrics())


@pytest.mark.parametrize("metric", CORE_METRICS)
def test_core(metric, measure, evaluator):
    measure(metric, lambda sid: evaluator.value(sid, metric))
