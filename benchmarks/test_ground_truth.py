"""Ground truth: SAEs of several architectures trained on synthetic activations with known
features, scored by MMCS and Hungarian-matched correlation beside a random-init control."""

from __future__ import annotations

import pytest

from interpscore.ground_truth import RECIPES


@pytest.mark.parametrize("architecture", list(RECIPES))
def test_ground_truth_recovery(architecture, synthetic_world, record_ground_truth):
    result = synthetic_world.evaluate(architecture)
    record_ground_truth(result)
    assert result["mmcs"] > result["control"]["mmcs"] + 0.2
    assert result["matched_correlation"] > result["control"]["matched_correlation"] + 0.2
    assert result["explained_variance"] > 0.5
