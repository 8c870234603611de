"""Test seconds charged to metric families (the run block's timing)."""

from __future__ import annotations

import pytest

from interpscore.results.timing import PhaseTimer, family_of


@pytest.mark.parametrize(
    ("nodeid", "family"),
    [
        ("benchmarks/test_core.py::test_core[topk-l0]", "core"),
        ("test_task_ground_truth.py::test_x", "task_ground_truth"),
        ("interpscore/benchmarks/test_probing.py::test_probing[a-b]", "probing"),
        ("conftest_family.py::test_y", "conftest_family"),
    ],
)
def test_family_is_the_module_name_without_test(nodeid, family):
    assert family_of(nodeid) == family


def test_seconds_add_up_by_family_largest_first():
    timer = PhaseTimer()
    for nodeid, seconds in [("a/test_core.py::t[1]", 1.5), ("test_tpp.py::t", 4.0)]:
        timer.add(nodeid, seconds)
    timer.add("a/test_core.py::t[2]", 1.0)
    timing = timer.to_dict()
    assert list(timing["by_family"].items()) == [("tpp", 4.0), ("core", 2.5)]
    assert timing["wall_seconds"] >= 0
