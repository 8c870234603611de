"""Which formula components tell trained SAEs from their controls, read from a report.

A component earns a place in a formula only if it separates: for every trained SAE of the
report and every control measured beside it, the paired 95% interval on (SAE − control)
lies above zero. Components are higher-better fractions, so the direction matters: an SAE
significantly *below* its control (``distinguishes`` is two-sided) counts against it. A
control that was not run for a metric is reported as such and neither helps nor hurts; a
component with no control measured at all cannot separate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from interpscore.formula import Formula, Score, known_components, score
from interpscore.results.records import is_model_control, side_of

#: Label of the random-init control (each SAE's own, same class and shape, seeded).
RANDOM_INIT = "random-init"


@dataclass
class ControlTally:
    """How one control compared with the trained SAEs on one component."""

    above: int = 0  # trained SAE's interval on the difference lies above zero
    measured: int = 0  # a paired difference interval exists
    not_run: int = 0  # skipped for this metric (e.g. model controls run only core)
    failed: int = 0  # the control broke, or has a value but no paired interval

    def cell(self) -> str:
        extra = ", ".join(
            f"{n} {what}" for n, what in ((self.not_run, "not run"), (self.failed, "failed")) if n
        )
        if not self.measured:
            return extra or "—"
        return f"{self.above}/{self.measured}" + (f" ({extra})" if extra else "")


@dataclass
class Separation:
    """The evidence for one component: per control label, how many trained SAEs beat it."""

    component: str
    values: dict[str, float] = field(default_factory=dict)  # trained SAE id -> value
    controls: dict[str, ControlTally] = field(default_factory=dict)

    @property
    def separates(self) -> bool:
        """Above every measured control for every trained SAE, with some control measured;
        a control that failed leaves the question open, so it never separates."""
        tallies = self.controls.values()
        if any(t.failed for t in tallies):
            return False
        measured = [t for t in tallies if t.measured]
        return bool(measured) and all(t.above == t.measured for t in measured)


def _label(control_id: str, comparison: Mapping[str, Any]) -> str:
    if comparison.get("kind") == RANDOM_INIT:
        return RANDOM_INIT
    return control_id.removeprefix("control-")


def trained_entries(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The report's SAEs that are neither model controls nor failed."""
    return [
        sae
        for sae in report.get("saes", [])
        if not is_model_control(sae) and sae.get("status", "ok") == "ok"
    ]


def merged_metrics(reports: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Trained SAE id -> metric -> {value, controls}, over several reports of the same SAEs.

    A later report adds the controls an earlier one skipped (e.g. a run with
    ``--model-control-metrics=all`` beside the main job); a comparison measured in one
    report is never replaced by a skipped one.
    """
    merged: dict[str, dict[str, Any]] = {}
    for report in reports:
        for sae in trained_entries(report):
            metrics = merged.setdefault(sae["id"], {})
            for name, metric in (sae.get("metrics") or {}).items():
                if not metric or metric.get("value") is None:
                    continue
                entry = metrics.setdefault(name, {"value": metric["value"], "controls": {}})
                for control_id, comparison in (metric.get("controls") or {}).items():
                    known = entry["controls"].get(control_id)
                    if known is None or ("skipped" in known and "skipped" not in comparison):
                        entry["controls"][control_id] = comparison
    return merged


def separation(
    report: Mapping[str, Any] | Sequence[Mapping[str, Any]], components: Sequence[str]
) -> list[Separation]:
    """One :class:`Separation` per component, from the controls recorded in the report(s)."""
    merged = merged_metrics([report] if isinstance(report, Mapping) else report)
    out = []
    for name in components:
        sep = Separation(name)
        for sae_id, metrics in merged.items():
            metric = metrics.get(name)
            if metric is None:
                continue
            sep.values[sae_id] = float(metric["value"])
            for control_id, comparison in metric["controls"].items():
                tally = sep.controls.setdefault(_label(control_id, comparison), ControlTally())
                side = side_of(comparison.get("difference_ci95"))
                if "skipped" in comparison:
                    tally.not_run += 1
                elif side is None:
                    tally.failed += 1
                else:
                    tally.measured += 1
                    tally.above += side == "above"
        out.append(sep)
    return out


def evidence_rows(
    report: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    formulas: Mapping[str, Mapping[str, float]] | None = None,
    components: Sequence[str] | None = None,
) -> list[dict[str, str]]:
    """The evidence table as rows of strings (column -> cell), one row per component.

    ``formulas`` maps a formula version to its weights (a column each); by default the
    report's own formula. ``components`` defaults to every component a formula may weight.
    """
    if components is None:
        components = list(known_components())
    reports = [report] if isinstance(report, Mapping) else list(report)
    if formulas is None:
        formula = reports[0].get("formula") or {}
        formulas = {str(formula.get("version", "report")): formula.get("weights", {})}
    seps = separation(reports, components)
    labels = sorted({label for s in seps for label in s.controls}, key=_label_order)
    rows = []
    for sep in seps:
        row = {"component": sep.component}
        for version, weights in formulas.items():
            weight = weights.get(sep.component)
            row[f"v{version}"] = f"{weight:g}" if weight else ""
        row["trained SAEs"] = str(len(sep.values))
        for label in labels:
            row[f"above {label}"] = sep.controls.get(label, ControlTally()).cell()
        row["separates"] = "yes" if sep.separates else "no"
        rows.append(row)
    return rows


def _label_order(label: str) -> tuple[int, str]:
    return (label != RANDOM_INIT, label)


def evidence_markdown(rows: Sequence[Mapping[str, str]]) -> str:
    """``rows`` (from :func:`evidence_rows`) as a Markdown table."""
    if not rows:
        return ""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def margin_rows(
    report: Mapping[str, Any] | Sequence[Mapping[str, Any]], formulas: Sequence[Formula]
) -> list[dict[str, str]]:
    """Per trained SAE and formula: its score, its random-init control's, and the margin.

    The control's score uses the control values recorded beside each component, so a
    formula whose components separate trained SAEs from controls shows a positive margin.
    A score that misses a component is marked ``≥`` (a lower bound) and has no margin.
    """
    merged = merged_metrics([report] if isinstance(report, Mapping) else report)
    rows = []
    for sae_id, metrics in merged.items():
        row = {"SAE": sae_id}
        for formula in formulas:
            own = {name: metrics[name]["value"] for name in formula.weights if name in metrics}
            control = {
                name: comparison.get("value")
                for name in formula.weights
                for comparison in metrics.get(name, {}).get("controls", {}).values()
                if comparison.get("kind") == RANDOM_INIT
            }
            mine, theirs = score(own, formula), score(control, formula)
            tag = f"v{formula.version}"
            row[tag] = _score_cell(mine)
            row[f"{tag} random-init"] = _score_cell(theirs)
            exact = not (mine.partial or theirs.partial)
            row[f"{tag} margin"] = f"{mine.value - theirs.value:+.3f}" if exact else ""
        rows.append(row)
    return rows


def _score_cell(result: Score) -> str:
    return ("≥" if result.partial else "") + f"{result.value:.3f}"
