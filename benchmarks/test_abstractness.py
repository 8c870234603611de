"""Abstractness after Heap et al. (2025): token entropy of each latent's top activations,
reported for every SAE and beside its controls."""

from __future__ import annotations

import pytest


@pytest.mark.interpscore_metric("token_entropy")
def test_token_entropy(measure, evaluator):
    measure("token_entropy", evaluator.entropy_value)
