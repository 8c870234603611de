"""Metric families and their registry.

Each family is one module here declaring a :class:`~interpscore.suites.base.Suite`: its
metrics, settings (and their command-line options), accumulators for the shared pass,
shared state per (model, hook), and how it computes values for one SAE. The evaluator,
the pytest plugin, the formula's component list and the report all read this registry;
none of them names a family.

Adding a family: write ``interpscore/suites/<family>.py`` (the suite), its pure metric
functions under ``interpscore/metrics/``, and ``benchmarks/test_<family>.py``; register
the suite below (or, from another package, through the ``interpscore.suites`` entry
point or :func:`register`).
"""

from __future__ import annotations

from interpscore.suites.absorption import AbsorptionSuite
from interpscore.suites.abstractness import AbstractnessSuite
from interpscore.suites.autointerp import AutointerpSuite
from interpscore.suites.base import GroupContext, MetricSpec, RunContext, SubjectContext, Suite
from interpscore.suites.core import CoreSuite
from interpscore.suites.ground_truth import GroundTruthSuite
from interpscore.suites.probing import ProbingSuite
from interpscore.suites.registry import Registry
from interpscore.suites.task_ground_truth import TaskGroundTruthSuite
from interpscore.suites.tpp import TppSuite

REGISTRY = Registry()
for _suite in (
    CoreSuite(),
    ProbingSuite(),
    TppSuite(),
    AbsorptionSuite(),
    AbstractnessSuite(),
    AutointerpSuite(),
    GroundTruthSuite(),
    TaskGroundTruthSuite(),
):
    REGISTRY.register(_suite)
REGISTRY.load_entry_points()

register = REGISTRY.register


def metric_names(suite: str) -> list[str]:
    """The metric names of a registered family (what its benchmark test runs over)."""
    return REGISTRY.names(suite)


__all__ = [
    "REGISTRY",
    "GroupContext",
    "MetricSpec",
    "Registry",
    "RunContext",
    "SubjectContext",
    "Suite",
    "metric_names",
    "register",
]
