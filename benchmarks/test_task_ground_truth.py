"""Task ground truth on the model: templated tasks with known variables, their supervised
dictionary as the ceiling and the random-init SAE as the floor (Makelov et al.; SAGE)."""

from __future__ import annotations

import pytest

from interpscore.suites import metric_names


@pytest.mark.parametrize("metric", metric_names("task_ground_truth"))
def test_task_ground_truth(metric, measure):
    measure(metric)
