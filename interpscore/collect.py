"""Turn recorded test results into report entries (runs on the pytest controller).

Metric tests attach records to ``item.user_properties`` under the key ``interpscore``;
those travel with every test report, including from xdist workers. The collector reads
them from the reports, so recording never depends on pytest-benchmark being active.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interpscore.formula import Formula, score

RECORD_KEY = "interpscore"


def records_of(report: Any) -> list[dict[str, Any]]:
    """The interpscore records attached to a test report."""
    return [value for key, value in getattr(report, "user_properties", ()) if key == RECORD_KEY]


def first_line(text: str) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


@dataclass
class SAEEntry:
    """What the collector knows about one SAE."""

    id: str
    spec: str
    describe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    replicates: dict[str, list[float]] = field(default_factory=dict)
    control_values: dict[str, dict[str, float]] = field(default_factory=dict)
    control_replicates: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class ResultCollector:
    """Accumulates records and outcomes; :meth:`entries` gives the per-SAE report blocks."""

    def __init__(self, specs: list[tuple[str, str]]) -> None:
        self.saes: dict[str, SAEEntry] = {sid: SAEEntry(sid, text) for sid, text in specs}
        self.passes: list[dict[str, Any]] = []
        self.run_details: dict[str, Any] = {}
        self.ground_truth: dict[str, dict[str, Any]] = {}

    def _entry(self, sid: str) -> SAEEntry:
        return self.saes.setdefault(sid, SAEEntry(sid, sid))

    def ingest(self, report: Any) -> None:
        """Take one test report (setup, call or teardown phase)."""
        records = records_of(report)
        if not records:
            return
        identity = next((r for r in records if r.get("kind") == "identity"), None)
        for record in records:
            kind = record.get("kind")
            if kind == "sae":
                self._entry(record["sae"]).describe = record["describe"]
            elif kind == "pass" and record["info"] not in self.passes:
                self.passes.append(record["info"])
            elif kind == "ground_truth" and report.when == "call":
                self.ground_truth[record["result"]["architecture"]] = record["result"]
            elif kind == "run":
                self.run_details.update(record["details"])
            elif kind == "metric" and report.when == "call":
                self._take_metric(record)
        if identity is None or not (report.failed or report.skipped):
            return
        entry = self._entry(identity["sae"])
        metric = identity.get("metric")
        message = first_line(report.longreprtext) or report.outcome
        if report.skipped:
            if metric and metric not in entry.metrics:
                entry.metrics[metric] = {"value": None, "status": "skipped", "reason": message}
            return
        if metric:
            entry.metrics[metric] = {
                **entry.metrics.get(metric, {}),
                "value": None,
                "status": "failed",
                "error": message,
            }
            entry.replicates.pop(metric, None)
        if message not in entry.errors:
            entry.errors.append(message)

    def _take_metric(self, record: dict[str, Any]) -> None:
        entry = self._entry(record["sae"])
        name = record["metric"]
        entry.metrics[name] = {
            k: v
            for k, v in record.items()
            if k not in ("kind", "sae", "metric", "replicates", "control_replicates")
        }
        if record.get("replicates") is not None:
            entry.replicates[name] = record["replicates"]
        for control, comparison in (record.get("controls") or {}).items():
            if comparison.get("value") is not None:
                entry.control_values.setdefault(control, {})[name] = comparison["value"]
        for control, reps in (record.get("control_replicates") or {}).items():
            entry.control_replicates.setdefault(control, {})[name] = reps


def score_block(
    components: dict[str, float], replicates: dict[str, list[float]], formula: Formula
) -> dict[str, Any]:
    """InterpScore of one set of components, with a bootstrap interval when every
    present component brought its replicates."""
    result = score(components, formula)
    block = result.to_dict()
    block["components"] = {name: components.get(name) for name in formula.components}
    reps = [
        np.asarray(replicates[n], dtype=np.float64) * w
        for n, w in formula.weights.items()
        if n in result.components and n in replicates
    ]
    block["interp_score_ci95"] = None
    if reps and len(reps) == len(result.components) and len({r.shape for r in reps}) == 1:
        total = np.sum(reps, axis=0)
        finite = total[np.isfinite(total)]
        if finite.size >= total.size / 2:
            low, high = np.percentile(finite, [2.5, 97.5])
            block["interp_score_ci95"] = [float(low), float(high)]
    return block


def components_of(metrics: dict[str, dict[str, Any]], formula: Formula) -> dict[str, float]:
    """Formula components that were measured and are finite numbers."""
    out = {}
    for name in formula.components:
        value = (metrics.get(name) or {}).get("value")
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[name] = float(value)
    return out
