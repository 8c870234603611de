"""Gather what tests recorded into per-SAE entries (on the pytest controller).

Tests attach records to ``item.user_properties`` under the key ``interpscore``; they travel
with every test report, xdist workers' included. Each record is a small dict with a
``kind``: ``identity`` (which SAE and metric a test is about), ``sae`` (the SAE's
description), ``pass`` (a language-model pass that ran), ``metric`` (a
:class:`~interpscore.results.records.MetricRecord`) or ``run_result`` (a row of a
run-level family such as ground truth). Test outcomes fill in what no record says: a
failed metric test marks its metric failed with the error, a skipped one skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interpscore.results.records import MetricRecord

RECORD_KEY = "interpscore"


def record(kind: str, **payload: Any) -> tuple[str, dict[str, Any]]:
    """A ``user_properties`` entry carrying one record."""
    return RECORD_KEY, {"kind": kind, **payload}


def records_of(report: Any) -> list[dict[str, Any]]:
    """The interpscore records attached to a test report."""
    return [value for key, value in getattr(report, "user_properties", ()) if key == RECORD_KEY]


def last_line(text: str) -> str:
    """The last non-blank line of a failure text (where pytest puts the error itself)."""
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def outcome_message(report: Any) -> str:
    """What a failed or skipped test says: the error's last line, or a skip's reason alone
    (pytest keeps a skip as (path, line, reason); the path must not reach the report)."""
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return last_line(report.longreprtext) or report.outcome


@dataclass
class SAEEntry:
    """What the collector knows about one SAE."""

    id: str
    describe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, MetricRecord] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class ResultCollector:
    """Accumulates records and outcomes into per-SAE entries, passes and run-level results."""

    def __init__(self) -> None:
        self.saes: dict[str, SAEEntry] = {}
        self.passes: list[dict[str, Any]] = []
        self.run_results: dict[str, dict[str, dict[str, Any]]] = {}

    @property
    def empty(self) -> bool:
        return not self.saes and not self.run_results

    def _entry(self, sid: str) -> SAEEntry:
        return self.saes.setdefault(sid, SAEEntry(sid))

    def ingest(self, report: Any) -> None:
        """Take one test report (setup, call or teardown phase)."""
        records = records_of(report)
        if not records:
            return
        identity = None
        for item in records:
            kind = item["kind"]
            if kind == "identity":
                identity = item
            elif kind == "sae":
                self._entry(item["sae"]).describe = item["describe"]
            elif kind == "pass" and item["info"] not in self.passes:
                self.passes.append(item["info"])
            elif kind == "run_result" and report.when == "call":
                self.run_results.setdefault(item["suite"], {})[item["key"]] = item["result"]
            elif kind == "metric" and report.when == "call":
                metric = MetricRecord.from_dict(item["record"])
                self._entry(metric.sae).metrics[metric.metric] = metric
        if identity is not None and (report.failed or report.skipped):
            self._outcome(identity["sae"], identity.get("metric"), report)

    def _outcome(self, sid: str, metric: str | None, report: Any) -> None:
        entry = self._entry(sid)
        message = outcome_message(report)
        if report.skipped:
            if metric and metric not in entry.metrics:
                entry.metrics[metric] = MetricRecord(sid, metric, "skipped", reason=message)
            return
        if metric:
            previous = entry.metrics.get(metric)
            entry.metrics[metric] = MetricRecord(
                sid, metric, "failed", params=previous.params if previous else {}, error=message
            )
        if message not in entry.errors:
            entry.errors.append(message)
