"""Core metrics: one test per (SAE, metric), all served by one shared pass per hook.

The first test of an SAE runs the language-model pass for every SAE on its
(model, hook) and their random-init controls; the rest read the cached statistics.
"""

from __future__ import annotations

import pytest

from interpscore.suites import metric_names


@pytest.mark.parametrize("metric", metric_names("core"))
def test_core(metric, measure):
    measure(metric)
