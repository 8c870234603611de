"""Parametrization and fixtures: SAEs as a session-scoped parameter, the evaluator, and the
``measure`` fixture that times one metric and attaches its record to the test report."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest

from interpscore.evaluation.evaluator import Evaluator
from interpscore.evaluation.settings import RunSettings
from interpscore.pytest_plugin.distribution import needed_specs
from interpscore.pytest_plugin.options import SETTINGS, SUITE_SETTINGS, specs
from interpscore.pytest_plugin.scheduling import xdist_group
from interpscore.results.collect import record
from interpscore.results.records import MetricRecord, MetricValue
from interpscore.subjects.loading import LoadedSAE
from interpscore.suites import REGISTRY

EVALUATOR = pytest.StashKey[Evaluator]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sae_id" in metafunc.fixturenames:
        ids = [spec.id for spec in specs(metafunc.config)]
        metafunc.parametrize("sae_id", ids, ids=ids, scope="session")


def metric_of(item: pytest.Item) -> str | None:
    """The metric a test measures: its ``interpscore_metric`` marker or ``metric`` parameter."""
    marker = item.get_closest_marker("interpscore_metric")
    if marker is not None and marker.args:
        return str(marker.args[0])
    params = getattr(getattr(item, "callspec", None), "params", {})
    return str(params["metric"]) if "metric" in params else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = xdist_group(config, item)  # xdist: a worker takes a whole group
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if not isinstance(params.get("sae_id"), str):
            continue
        item.user_properties.append(
            record("identity", sae=params["sae_id"], metric=metric_of(item))
        )


def _wanted_suites(session: pytest.Session) -> set[str] | None:
    """Families whose metrics this session runs (their accumulators join the shared pass);
    None (all) when no metric test is selected."""
    names = {metric_of(item) for item in session.items}
    suites = {REGISTRY.metric(n).suite for n in names if n is not None and n in REGISTRY}
    return suites or None


@pytest.fixture(scope="session")
def interpscore_settings(pytestconfig: pytest.Config) -> RunSettings:
    """The run's settings, parsed from the InterpScore command-line options."""
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def evaluator(request: pytest.FixtureRequest, interpscore_settings: RunSettings) -> Evaluator:
    """The session's evaluator: loads SAEs and models once and runs the shared passes."""
    config = request.config
    if EVALUATOR not in config.stash:
        capture = config.pluginmanager.getplugin("capturemanager")

        def progress() -> AbstractContextManager[Any]:
            return capture.global_and_fixture_disabled() if capture else nullcontext()

        config.stash[EVALUATOR] = Evaluator(
            interpscore_settings,
            needed_specs(config),
            suite_settings=config.stash[SUITE_SETTINGS],
            wanted=_wanted_suites(request.session),
            progress=progress,
        )
    return config.stash[EVALUATOR]


@pytest.fixture(scope="session")
def sae(evaluator: Evaluator, sae_id: str) -> LoadedSAE:
    """The SAE under test, loaded once."""
    return evaluator.sae(sae_id)


class Measure:
    """Measures one metric of the SAE under test and attaches its record to the report."""

    def __init__(self, request: pytest.FixtureRequest, evaluator: Evaluator, sae_id: str) -> None:
        self.request = request
        self.evaluator = evaluator
        self.sae_id = sae_id

    def _timer(self) -> Callable[[Callable[[], MetricValue]], MetricValue]:
        if self.request.config.pluginmanager.hasplugin("pytest_benchmark"):
            bench = self.request.getfixturevalue("benchmark")
            return lambda fn: bench.pedantic(fn, rounds=1, iterations=1, warmup_rounds=0)
        return lambda fn: fn()

    def __call__(self, metric: str) -> MetricRecord:
        reason = self.evaluator.skip_reason(self.sae_id, metric)
        if reason is not None:
            pytest.skip(reason)
        props = self.request.node.user_properties
        props.append(
            record("sae", sae=self.sae_id, describe=self.evaluator.sae(self.sae_id).describe())
        )
        try:
            result = self.evaluator.measure(self.sae_id, metric, self._timer())
        finally:
            props.extend(record("pass", info=i.to_dict()) for i in self.evaluator.drain_passes())
        props.append(record("metric", record=result.to_dict(wire=True)))
        return result


@pytest.fixture
def measure(request: pytest.FixtureRequest, evaluator: Evaluator, sae_id: str) -> Measure:
    """Call ``measure(metric)`` to measure and record one metric of the SAE under test."""
    return Measure(request, evaluator, sae_id)


@pytest.fixture
def record_run_result(request: pytest.FixtureRequest) -> Callable[[str, str, dict[str, Any]], None]:
    """Call ``record_run_result(suite, key, result)`` to put a run-level family's result row
    (for example one ground-truth architecture) in the report."""

    def attach(suite: str, key: str, result: dict[str, Any]) -> None:
        request.node.user_properties.append(
            record("run_result", suite=suite, key=key, result=result)
        )

    return attach
