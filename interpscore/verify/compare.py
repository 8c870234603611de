"""Does a re-run agree with a report, value by value? A pure comparison of two SAE entries.

A value agrees when the re-run's number lies inside the report's 95% interval of it
(``ci95`` of the metric, ``interp_score_ci95`` of the score) or within the tolerance of the
reported number. Nothing missing passes: a value the re-run lacks, one that is NaN or not
a number, or one the report gives without the re-run (or the reverse) disagrees. Only a
metric that both give no value with the same status (both skipped, say) agrees without a
number. The gate (:mod:`interpscore.results.gate`) asks a different question, whether a
value dropped, so only its :class:`~interpscore.results.gate.Tolerances` is shared.

A re-run cannot tell an edit that stays inside a value's interval from noise, so
:func:`consistency_row` also checks, without a re-run, that the reported InterpScore follows
from the entry's own components.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interpscore.formula import Formula, entry_components, score
from interpscore.jsonio import finite_number
from interpscore.results.formatting import ci_text, fmt
from interpscore.results.gate import Tolerances
from interpscore.results.report_shape import SCORE

HEADER = ("SAE", "component", "reported", "ci95", "re-run", "verdict")


@dataclass(frozen=True)
class Row:
    """One compared value of one SAE."""

    sae: str
    name: str
    reported: Any
    ci95: Any
    rerun: Any
    tolerance: float
    agrees: bool
    verdict: str

    def cells(self) -> tuple[str, ...]:
        """The row as table cells (4 decimals: the differences verified are small)."""
        ci = self.ci95 if isinstance(self.ci95, (list, tuple)) and len(self.ci95) == 2 else None
        return (
            self.sae,
            self.name,
            _cell(self.reported),
            ci_text(ci, 4) or "—",
            _cell(self.rerun),
            self.verdict,
        )


def _cell(value: Any) -> str:
    return fmt(value, 4) if isinstance(value, (int, float)) or value is None else repr(value)


def _interval(ci: Any) -> tuple[float, float] | None:
    """The interval as two finite numbers, low first; None when there is none usable."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(map(finite_number, ci)):
        return float(ci[0]), float(ci[1])
    return None


def value_of(entry: dict[str, Any] | None, name: str) -> tuple[Any, Any, str | None]:
    """(value, ci95, why there is no value) of ``name`` in an SAE entry: the InterpScore
    or a metric (its component value when the metric itself is absent)."""
    if entry is None:
        return None, None, "SAE not in the re-run"
    if name == SCORE:
        if SCORE not in entry:
            return None, None, "no interp_score"
        why = f"partial: missing {', '.join(entry.get('missing') or [])}"
        partial = why if entry.get("partial") else None
        return entry.get(SCORE), entry.get("interp_score_ci95"), partial
    metric = (entry.get("metrics") or {}).get(name)
    if isinstance(metric, dict):
        why = metric.get("error") or metric.get("reason") or metric.get("status")
        return metric.get("value"), metric.get("ci95"), f"{metric.get('status')}: {why}"
    components = entry.get("components") or {}
    if name in components:
        return components[name], None, None
    return None, None, "not measured"


def compare_value(
    sae: str, name: str, reported: dict[str, Any], rerun: dict[str, Any] | None, tol: Tolerances
) -> Row:
    """The verdict on one value of one SAE (see the module docstring)."""
    before, ci, why_before = value_of(reported, name)
    now, _, why_now = value_of(rerun, name)
    tolerance = tol.of(name)

    def row(agrees: bool, verdict: str) -> Row:
        return Row(sae, name, before, ci, now, tolerance, agrees, verdict)

    if rerun is None:
        return row(False, f"MISSING in re-run ({why_now})")
    if name == SCORE and bool(reported.get("partial")) != bool(rerun.get("partial")):
        side = "re-run" if rerun.get("partial") else "report"
        why = why_now if side == "re-run" else why_before
        return row(False, f"DISAGREES: only the {side} is {why}")
    if before is None and now is None:
        same = why_before == why_now
        return row(same, "agrees (no value in either)" if same else f"MISSING: {why_now}")
    if now is None:
        return row(False, f"MISSING in re-run ({why_now})")
    if not finite_number(now):
        return row(False, f"NOT A NUMBER in re-run ({now!r})")
    if before is None:
        return row(False, f"DISAGREES: the report has no value ({why_before})")
    if not finite_number(before):
        return row(False, f"NOT A NUMBER in the report ({before!r})")
    interval = _interval(ci)
    if interval is not None and interval[0] <= now <= interval[1]:
        return row(True, "agrees (in ci95)")
    difference = now - before
    if abs(difference) <= tolerance:
        return row(True, f"agrees (within tolerance {tolerance:g})")
    where = "outside ci95" if interval is not None else "no ci95"
    return row(False, f"DISAGREES ({where}; re-run {difference:+.4g})")


def compare_entries(
    reported: dict[str, Any],
    rerun: dict[str, Any] | None,
    names: list[str],
    tolerances: Tolerances,
) -> list[Row]:
    """Rows for ``names`` of one SAE: its report entry against its re-run entry (None when
    the re-run has no entry for it)."""
    sae = str(reported.get("id"))
    return [compare_value(sae, name, reported, rerun, tolerances) for name in names]


#: The row that checks a reported InterpScore against its own components.
CONSISTENCY = f"{SCORE} (from its components)"
#: How far a reported InterpScore may lie from the formula applied to its components.
CONSISTENCY_TOLERANCE = 1e-9


def consistency_row(reported: dict[str, Any], formula: Formula) -> Row:
    """Does the reported InterpScore follow from the entry's own components (the formula
    applied as ``interpscore score`` does)? A hand-edited score that no longer does, or a
    partial flag that does not match the missing components, disagrees; no re-run is needed."""
    sae = str(reported.get("id"))
    recomputed = score(entry_components(reported, formula.weights), formula)
    given = reported.get(SCORE)

    def row(agrees: bool, verdict: str) -> Row:
        return Row(sae, CONSISTENCY, given, None, recomputed.value, 0.0, agrees, verdict)

    if not finite_number(given):
        return row(False, f"NOT A NUMBER in the report ({given!r})")
    if bool(reported.get("partial")) != recomputed.partial:
        if recomputed.partial:
            why = f"the components miss {', '.join(recomputed.missing)} but it is not partial"
        else:
            why = "it is partial but no component is missing"
        return row(False, f"DISAGREES: {why}")
    difference = given - recomputed.value
    if abs(difference) > CONSISTENCY_TOLERANCE:
        gives = f"{recomputed.value:.6g}"
        return row(False, f"DISAGREES: its components give {gives} (reported {difference:+.4g})")
    return row(True, "agrees (follows from its components)")


def names_to_verify(reported: dict[str, Any], formula_weights: list[str], mode: str) -> list[str]:
    """What is verified of an SAE: the InterpScore and the formula's components
    (``components``), or those and every metric of its entry (``all``)."""
    names = [SCORE, *formula_weights]
    if mode == "all":
        names += [n for n in (reported.get("metrics") or {}) if n not in names]
    return names


def table(rows: list[Row]) -> list[str]:
    """A plain-text table of ``rows`` under the header, columns aligned."""
    cells = [HEADER, *(r.cells() for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER) - 1)]
    return ["  ".join(c[i].ljust(w) for i, w in enumerate(widths)) + "  " + c[-1] for c in cells]
