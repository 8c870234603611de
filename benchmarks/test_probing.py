"""Probing metrics: the InterpScore notebook's sparse_probing and SAEBench's k-sparse probing.

Task texts are run to the hook once per (model, hook, task); each SAE then needs one
encode of those tokens and its probe fits.
"""

from __future__ import annotations

import pytest

from interpscore.suites import metric_names


@pytest.mark.parametrize("metric", metric_names("probing"))
def test_probing(metric, measure):
    measure(metric)
