"""``interpscore merge``: one report from results directories.

Every unit file keeps its tests' reports (outcomes and the records they carried), so the
merge replays them into the same :class:`~interpscore.results.collect.ResultCollector` that
a single process fills while it runs, and builds the report with the same code: the values,
intervals, controls and InterpScores are those of one process evaluating the same SAEs.
Results made with other settings, formula, library versions or another selection of tests
are refused, and so is a plan with SAEs that have no results (unless ``allow_partial``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interpscore.cluster.store import (
    SAE_PREFIX,
    ResultsDir,
    StoreError,
    UnitResult,
    first_difference,
    sae_unit,
)
from interpscore.errors import InterpScoreError
from interpscore.formula import Formula
from interpscore.results.collect import RECORD_KEY, ResultCollector
from interpscore.results.files import check_output
from interpscore.results.report import build_report, write_reports


@dataclass
class ReplayedReport:
    """One phase of a test report, rebuilt from a result file (what ``ingest`` reads)."""

    when: str
    outcome: str
    user_properties: list[tuple[str, Any]]
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"

    @property
    def skipped(self) -> bool:
        return self.outcome == "skipped"

    @property
    def longrepr(self) -> Any:
        # A skip as pytest keeps it, (path, line, reason): the collector reads the reason.
        return ("", 0, self.message) if self.skipped else None

    @property
    def longreprtext(self) -> str:
        return self.message


def replay(unit: UnitResult, collector: ResultCollector) -> None:
    """Feed a unit's test reports to a collector, in the order they were made."""
    for test in unit.outcomes:
        for phase in test["phases"]:
            records = phase.get("records", test["records"][: int(phase.get("n", 0))])
            collector.ingest(
                ReplayedReport(
                    phase["when"],
                    phase["outcome"],
                    [(RECORD_KEY, r) for r in records],
                    str(phase.get("message", "")),
                )
            )


@dataclass
class Merged:
    """A merged report and what the merge noticed."""

    report: dict[str, Any]
    units: int
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _load(roots: list[str]) -> tuple[list[tuple[str, UnitResult]], list[tuple[str, dict]]]:
    units: list[tuple[str, UnitResult]] = []
    plans: list[tuple[str, dict[str, Any]]] = []
    for root in roots:
        store = ResultsDir(root)
        found = store.units()
        plans += store.plans()
        if not found:
            raise StoreError(
                f"{root} holds no interpscore results (no saes/ or run-level/ files).",
                "give the --results-dir of a run (pytest benchmarks --results-dir DIR …).",
            )
        units += found
    return units, plans


def _check_same_run(units: list[tuple[str, UnitResult]]) -> None:
    """Refuse files made with other settings, or with another selection of tests."""
    ref_path, ref = units[0]
    for path, unit in units[1:]:
        difference = first_difference(ref.settings, unit.settings)
        if difference:
            raise StoreError(
                f"{path} was made with other settings than {ref_path}: {difference}.",
                "merge results of one run; redo the odd SAEs with the run's settings "
                "(--force), or merge the two runs separately.",
            )
    saes = [(p, u) for p, u in units if u.unit.startswith(SAE_PREFIX)]
    for path, unit in saes[1:]:
        if unit.tests != saes[0][1].tests:
            odd = sorted(set(unit.tests) ^ set(saes[0][1].tests))
            raise StoreError(
                f"{path} and {saes[0][0]} ran different tests (e.g. {odd[0]}).",
                "evaluate every SAE with the same benchmarks and -k selection.",
            )


def _unique(units: list[tuple[str, UnitResult]]) -> dict[str, tuple[str, UnitResult]]:
    """One file per unit; the same results twice (two copies of a folder) count once."""
    out: dict[str, tuple[str, UnitResult]] = {}
    for path, unit in units:
        if unit.unit in out:
            other_path, other = out[unit.unit]
            same = (other.outcomes, other.identity) == (unit.outcomes, unit.identity)
            if not same:
                raise StoreError(
                    f"{unit.unit} has different results in {other_path} and {path}.",
                    "merge one of the two folders, or delete the stale file.",
                )
            continue
        out[unit.unit] = (path, unit)
    return out


def merge(roots: list[str], command: list[str], allow_partial: bool = False) -> Merged:
    """The report of the SAEs in ``roots`` (one or more results directories)."""
    units, plans = _load(roots)
    _check_same_run(units)
    by_unit = _unique(units)
    settings = units[0][1].settings
    notes: list[str] = []
    expected: dict[str, str] = {}  # SAE id -> "shard I/N of plan P"
    for path, plan in plans:
        difference = first_difference(plan["settings"], settings)
        if difference:
            notes.append(f"ignored plan {path}: made with other settings ({difference})")
            continue
        for sae_id, where in plan["saes"].items():
            label = f"shard {where.get('shard')}/{plan.get('shards')} of plan {plan.get('plan')}"
            expected.setdefault(sae_id, label)
    missing = [sae_id for sae_id in expected if sae_unit(sae_id) not in by_unit]
    if missing and not allow_partial:
        shown = "; ".join(f"{i} ({expected[i]})" for i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise StoreError(
            f"{len(missing)} of {len(expected)} planned SAE(s) have no results: {shown}{more}.",
            "run those shards again (they resume where they stopped), or pass --allow-partial "
            "to merge what is there.",
        )
    order = [sae_unit(i) for i in expected if sae_unit(i) in by_unit]
    order += sorted(u for u in by_unit if u not in order)
    collector = ResultCollector()
    for unit in order:
        replay(by_unit[unit][1], collector)
    formula_data = by_unit[order[0]][1].formula
    formula = Formula(
        version=str(formula_data["version"]),
        weights=dict(formula_data["weights"]),
        l0_target=float(formula_data["l0_target"]),
        description=str(formula_data.get("description", "")),
        source=str(formula_data.get("source", "builtin")),
    )
    report = build_report(collector, dict(settings["run"]), formula, command)
    report["run"]["libraries"] = settings["libraries"]
    report["run"]["merged"] = {
        "results": len(by_unit),
        "shards": sorted({u.shard for _, u in by_unit.values() if u.shard}),
        "missing": missing,
    }
    failed = [u for u in order if by_unit[u][1].status != "ok"]
    if failed:
        notes.append(f"{len(failed)} unit(s) have failed tests; their entries say why")
    return Merged(report, len(by_unit), missing, notes)


def write_merged(merged: Merged, out: Path) -> tuple[Path, Path]:
    """Write the merged report (JSON, Markdown and figure beside it), refusing an output
    path that cannot be written before writing anything."""
    if out.suffix.lower() != ".json":
        raise InterpScoreError(
            f"Output {out} does not end in .json; its Markdown would take the same name.",
            "give a report path such as reports/runs/interpscore.json.",
        )
    for target in (out, out.with_suffix(".md"), out.with_suffix(".png")):
        check_output(target, "file")
    try:
        return write_reports(merged.report, out)
    except OSError as exc:
        raise InterpScoreError(
            f"Cannot write {out}: {exc.strerror or exc}.", "choose a path you can write."
        ) from exc
