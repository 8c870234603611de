"""The table of metric families: suite name → suite, metric name → its declaration.

Like sae-lens' SAE registry, registration refuses duplicates (a suite name or a metric
name taken twice), so a report key always means one thing. Families outside this package
register through the ``interpscore.suites`` entry-point group or by calling
:meth:`Registry.register` (for example from a ``conftest.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from importlib.metadata import entry_points

from interpscore.suites.base import MetricSpec, Suite

ENTRY_POINT_GROUP = "interpscore.suites"


class Registry:
    """Registered suites and their metrics, in registration order."""

    def __init__(self) -> None:
        self._suites: dict[str, Suite] = {}
        self._metrics: dict[str, MetricSpec] = {}
        self._listeners: dict[str, Callable[[Suite], None]] = {}

    def register(self, suite: Suite) -> Suite:
        """Add a suite; its metrics are stamped with the suite's name."""
        if suite.name in self._suites:
            raise ValueError(f"a suite named {suite.name!r} is already registered")
        taken = [m.name for m in suite.metrics if m.name in self._metrics]
        if taken:
            raise ValueError(f"suite {suite.name!r} declares metrics already registered: {taken}")
        names = [m.name for m in suite.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"suite {suite.name!r} declares a metric twice")
        stamped = tuple(dataclasses.replace(m, suite=suite.name) for m in suite.metrics)
        suite.metrics = stamped  # type: ignore[misc]
        self._suites[suite.name] = suite
        self._metrics.update({m.name: m for m in stamped})
        for listener in self._listeners.values():
            listener(suite)
        return suite

    def unregister(self, name: str) -> None:
        """Remove a suite and its metrics (for tests that register a family of their own)."""
        suite = self._suites.pop(name)
        for metric in suite.metrics:
            self._metrics.pop(metric.name, None)

    def on_register(self, listener: Callable[[Suite], None], key: str) -> None:
        """Call ``listener`` for every suite registered from now on (replacing the listener
        registered earlier under the same ``key``)."""
        self._listeners[key] = listener

    def load_entry_points(self) -> None:
        """Register the suites that installed packages declare under ``interpscore.suites``."""
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._suites:
                continue
            loaded = ep.load()
            self.register(loaded() if isinstance(loaded, type) else loaded)

    def __contains__(self, metric: object) -> bool:
        """Whether a metric of this name is registered."""
        return metric in self._metrics

    def suites(self) -> list[Suite]:
        return list(self._suites.values())

    def suite(self, name: str) -> Suite:
        if name not in self._suites:
            raise KeyError(f"no suite named {name!r}; registered: {', '.join(self._suites)}")
        return self._suites[name]

    def metric(self, name: str) -> MetricSpec:
        if name not in self._metrics:
            raise KeyError(f"no metric named {name!r}")
        return self._metrics[name]

    def suite_of(self, metric: str) -> Suite:
        return self._suites[self.metric(metric).suite]

    def metrics(self, suite: str | None = None) -> list[MetricSpec]:
        """Every metric, or one suite's, in declaration order."""
        if suite is not None:
            return list(self.suite(suite).metrics)
        return list(self._metrics.values())

    def names(self, suite: str) -> list[str]:
        """One suite's metric names (what its benchmark test parametrizes over)."""
        return [m.name for m in self.suite(suite).metrics]

    def components(self) -> dict[str, str]:
        """Metrics a formula may weight, with their descriptions."""
        return {m.name: m.description for m in self._metrics.values() if m.component}
