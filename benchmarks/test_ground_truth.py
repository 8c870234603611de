"""Ground truth: SAEs of several architectures trained on synthetic activations with known
features, scored by MMCS and Hungarian-matched correlation beside a random-init control."""

from __future__ import annotations

import pytest

from interpscore.suites import REGISTRY

SUITE = REGISTRY.suite("ground_truth")


@pytest.fixture(scope="session")
def synthetic_world(evaluator):
    return evaluator.run_state(SUITE.name)


@pytest.mark.parametrize("architecture", SUITE.architectures)
def test_ground_truth_recovery(architecture, synthetic_world, record_run_result):
    result = synthetic_world.evaluate(architecture)
    record_run_result(SUITE.name, architecture, result)
    assert result["mmcs"] > result["control"]["mmcs"] + 0.2
    assert result["matched_correlation"] > result["control"]["matched_correlation"] + 0.2
    assert result["explained_variance"] > 0.5
