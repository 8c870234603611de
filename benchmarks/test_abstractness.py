"""Abstractness after Heap et al. (2025): token entropy of each latent's top activations,
reported for every SAE and beside its controls."""

from __future__ import annotations

import pytest

from interpscore.suites import metric_names


@pytest.mark.parametrize("metric", metric_names("abstractness"))
def test_abstractness(metric, measure):
    measure(metric)
