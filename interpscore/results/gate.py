"""Regression gate: compare a report with a baseline ``interpscore.json``.

For every SAE (matched by id) the InterpScore and each formula component are compared.
A value regresses when it falls more than its tolerance below the baseline; by default it
must also fall outside its own 95% interval (the interval's upper end is below
``baseline − tolerance``), so that noise does not fail a build. Missing or extra SAEs are
reported, never a crash. A baseline of another schema is refused; one made with another
formula version is compared on the components both share, and the notes say so.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interpscore.errors import BaselineError
from interpscore.formula import known_components
from interpscore.jsonio import parse_json, read_bytes, shown
from interpscore.results.markdown import regression_table
from interpscore.results.report import SCHEMA
from interpscore.results.report_shape import SCORE, check_report_shape


@dataclass(frozen=True)
class Tolerances:
    """Allowed drop, globally and per name (a component or ``interp_score``)."""

    default: float = 0.0
    per_name: dict[str, float] = field(default_factory=dict)
    use_intervals: bool = True

    def of(self, name: str) -> float:
        return self.per_name.get(name, self.default)


def parse_tolerance(text: str, what: str = "--gate-tolerance") -> float:
    """An allowed drop: a finite number of 0 or more."""
    try:
        value = float(text)
    except ValueError as exc:
        raise BaselineError(
            f"{what} {text!r} is not a number.", "give a number such as 0.01."
        ) from exc
    if not math.isfinite(value) or value < 0:
        raise BaselineError(f"{what} is {text}.", "give a finite number of 0 or more.")
    return value


def tolerance_names() -> tuple[list[str], list[str]]:
    """(names the gate compares: interp_score and the components, every name a user may
    mean: those and every registered metric)."""
    from interpscore.suites import REGISTRY

    compared = [SCORE, *known_components()]
    return compared, [*compared, *(m.name for m in REGISTRY.metrics() if m.name not in compared)]


def parse_tolerance_item(
    text: str, what: str = "--gate-tolerance-for", extra: Collection[str] = ()
) -> tuple[str, float]:
    """``NAME=X``, where NAME is ``interp_score``, a formula component, or one of ``extra``
    (names a caller compares besides those; the gate passes none)."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise BaselineError(f"{what} {text!r} is not NAME=VALUE.", "write e.g. tpp=0.05.")
    compared, known = tolerance_names()
    allowed = [*compared, *(n for n in extra if n not in compared)]
    if name not in allowed:
        close = difflib.get_close_matches(name, allowed, n=4, cutoff=0.6)
        why = (
            "a metric that is not a formula component"
            if name in known
            else f"not a known name{'; did you mean ' + ', '.join(close) + '?' if close else ''}"
        )
        who = "the gate never compares" if not extra else "is never compared"
        raise BaselineError(
            f"{what} names {name!r}, which {who} ({why}).",
            f"use interp_score or a component: {', '.join(compared[1:])}"
            f"{' (or a metric)' if extra else ''}.",
        )
    return name, parse_tolerance(value, f"{what} {name}")


def parse_tolerances(
    default: str | float,
    per_name: list[str],
    use_intervals: bool = True,
    options: tuple[str, str] = ("--gate-tolerance", "--gate-tolerance-for"),
    extra: Collection[str] = (),
) -> Tolerances:
    """Validate ``--gate-tolerance`` and ``--gate-tolerance-for NAME=VALUE`` values
    (``options`` names the two options in messages; ``extra`` names that may be given
    besides interp_score and the components, see :func:`parse_tolerance_item`)."""
    table: dict[str, float] = {}
    for item in per_name:
        name, value = parse_tolerance_item(item, options[1], extra)
        if name in table and table[name] != value:
            raise BaselineError(
                f"{options[1]} gives {name} two tolerances ({table[name]:g} and {value:g}).",
                "give each name once.",
            )
        table[name] = value
    return Tolerances(parse_tolerance(str(default), options[0]), table, use_intervals)


def load_report(
    path: str | Path, role: str = "Report", require: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """Read a report (a baseline or a new run); refuse files that are not interpscore
    reports of this schema, or whose parts have the wrong shape (see check_report_shape;
    ``require`` names the top-level keys the caller needs, by default formula and saes)."""
    path = Path(path)
    raw = read_bytes(path, role.lower(), BaselineError)
    data = parse_json(raw, f"{role} {path}", BaselineError)
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != SCHEMA:
        raise BaselineError(
            f"{role} {path} has schema {schema!r}; this harness compares {SCHEMA!r}.",
            "regenerate it with this version of interpscore.",
        )
    return check_report_shape(data, path, role, require=require)


@dataclass
class GateRow:
    sae: str
    name: str
    baseline: float | None
    now: float | None
    ci95: list[float] | None
    tolerance: float
    regression: bool

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.now is None:
            return None
        return self.now - self.baseline

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "change": self.change}


@dataclass
class GateResult:
    rows: list[GateRow]
    missing_saes: list[str]
    extra_saes: list[str]
    notes: list[str]
    #: Why nothing could be compared (no SAE id in both reports); the gate then fails.
    unmatched: str | None = None

    @property
    def regressions(self) -> list[GateRow]:
        return [r for r in self.rows if r.regression]

    @property
    def passed(self) -> bool:
        return not self.regressions and self.unmatched is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "regressions": [r.to_dict() for r in self.regressions],
            "compared": [r.to_dict() for r in self.rows],
            "missing_saes": self.missing_saes,
            "extra_saes": self.extra_saes,
            "notes": self.notes,
            "unmatched": self.unmatched,
        }

    def table(self) -> list[str]:
        """Markdown rows of the regressions (empty when there are none)."""
        return regression_table([r.to_dict() for r in self.regressions])


def _value(entry: dict[str, Any], name: str) -> tuple[float | None, list[float] | None]:
    if name == SCORE:
        if entry.get("partial"):
            return None, None
        return entry.get(SCORE), entry.get("interp_score_ci95")
    metric = (entry.get("metrics") or {}).get(name) or {}
    value = metric.get("value", (entry.get("components") or {}).get(name))
    return value, metric.get("ci95")


def compare(
    baseline: dict[str, Any], current: dict[str, Any], tolerances: Tolerances
) -> GateResult:
    """Compare every SAE of ``current`` with its baseline entry."""
    notes = []
    base_formula, now_formula = baseline.get("formula", {}), current.get("formula", {})
    names = list(now_formula.get("weights", {}))
    same_formula = base_formula.get("version") == now_formula.get("version")
    if same_formula:
        names = [SCORE, *names]
    else:
        shared = [n for n in names if n in base_formula.get("weights", {})]
        notes.append(
            f"Baseline formula v{base_formula.get('version')} differs from "
            f"v{now_formula.get('version')}: InterpScore not compared; compared only the shared "
            f"components {', '.join(shared) or 'none'}."
        )
        names = shared
    base_saes = {s["id"]: s for s in baseline.get("saes", [])}
    now_saes = {s["id"]: s for s in current.get("saes", [])}
    rows = []
    for sid, entry in now_saes.items():
        if sid not in base_saes:
            continue
        for name in names:
            before, _ = _value(base_saes[sid], name)
            if before is None:
                continue
            now, ci = _value(entry, name)
            tol = tolerances.of(name)
            if now is None:
                regression = True
            else:
                upper = ci[1] if tolerances.use_intervals and ci else now
                regression = upper < before - tol
            rows.append(GateRow(sid, name, before, now, ci, tol, regression))
    missing = sorted(set(base_saes) - set(now_saes))
    extra = sorted(set(now_saes) - set(base_saes))
    if missing:
        notes.append(f"In the baseline but not in this run: {', '.join(missing)}.")
    if extra:
        notes.append(f"New in this run (no baseline): {', '.join(extra)}.")
    unmatched = None
    if not set(base_saes) & set(now_saes):
        unmatched = (
            f"No SAE is in both the baseline ({some_ids(base_saes)}) and this run "
            f"({some_ids(now_saes)}), so nothing was compared and the gate fails."
        )
        notes.insert(0, unmatched)
    return GateResult(rows, missing, extra, notes, unmatched)


def some_ids(ids: dict[str, Any] | list[str], limit: int = 3) -> str:
    """A few ids for a message: ``a, b, c and 4 more`` or ``no SAEs``."""
    if not ids:
        return "no SAEs"
    named = ", ".join(shown(i) for i in list(ids)[:limit])
    return named + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
