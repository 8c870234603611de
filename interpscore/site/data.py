"""The JSON the leaderboard page embeds, built from one or more reports (pure functions).

Only what the pages show goes in: identity, InterpScore with its interval and controls,
every metric's value, interval, status and controls, details that are small, and the
autointerp explanations with their examples. Large details (per-letter absorption, per
latent examples) stay in the report. No path of this machine is added: a formula file is
named by its file name only, and an ``sae_repo`` that is an absolute local path is shown
by its last part.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from interpscore.errors import InterpScoreError
from interpscore.formula import (
    WEIGHT_SUM_TOLERANCE,
    Formula,
    all_formulas,
    entry_components,
    score,
)
from interpscore.jsonio import finite_number, shown
from interpscore.results.formatting import natural_key
from interpscore.results.public import public_repo
from interpscore.results.records import is_model_control, side_of

SITE_SCHEMA = "interpscore-site/1"
#: A metric's details key is embedded when its JSON is at most this long.
SMALL_DETAIL_CHARS = 400
#: Autointerp explanations shown per metric, examples per explanation, characters each.
SHOWCASE_LATENTS = 12
SHOWCASE_EXAMPLES = 4
SHOWCASE_CHARS = 300
#: Identity fields copied from a report's SAE entry.
IDENTITY = (
    "model",
    "hook",
    "layer",
    "architecture",
    "d_in",
    "d_sae",
    "k",
    "control_of",
    "tokens_trained",
    "status",
    "eval_tokens",
)
#: Report-level run settings shown in the page header.
RUN_FIELDS = ("dataset", "tokens", "context_len", "seed", "bootstrap", "timestamp")

EvidenceRows = Callable[[dict[str, Any]], list[dict[str, str]]]


class SiteError(InterpScoreError):
    """Reports that cannot be shown together on one site."""


def _num(value: Any) -> float | None:
    return float(value) if finite_number(value) else None


def _ci(value: Any) -> list[float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(finite_number, value)):
        return [float(value[0]), float(value[1])]
    return None


def _clip(text: Any, limit: int = SHOWCASE_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _controls(metric: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A metric's comparisons with its controls. One that was skipped or broke (``error``)
    is kept and says so, with no side: it is evidence neither way."""
    out = []
    for name, control in (metric.get("controls") or {}).items():
        if not isinstance(control, Mapping):
            continue
        row: dict[str, Any] = {
            "name": str(name),
            "kind": control.get("kind"),
            "value": _num(control.get("value")),
            "difference": _num(control.get("difference")),
            "difference_ci95": _ci(control.get("difference_ci95")),
        }
        broken = bool(control.get("error") or control.get("skipped"))
        row["side"] = None if broken else side_of(row["difference_ci95"])
        if control.get("error"):
            row["error"] = _clip(control["error"])
        elif control.get("skipped"):
            row["skipped"] = _clip(control["skipped"])
        out.append(row)
    return out


def _small_details(details: Any) -> tuple[dict[str, Any], list[str]]:
    """Details keys whose JSON is short, and the names of those left in the report."""
    kept: dict[str, Any] = {}
    omitted: list[str] = []
    if not isinstance(details, Mapping):
        return kept, omitted
    for key, value in details.items():
        text = json.dumps(value, allow_nan=True, default=str)
        if len(text) <= SMALL_DETAIL_CHARS and "NaN" not in text and "Infinity" not in text:
            kept[str(key)] = value
        else:
            omitted.append(str(key))
    return kept, omitted


def _metric(name: str, metric: Mapping[str, Any]) -> dict[str, Any]:
    details, omitted = _small_details(metric.get("details"))
    out: dict[str, Any] = {
        "value": _num(metric.get("value")),
        "ci95": _ci(metric.get("ci95")),
        "ci_unit": metric.get("ci_unit"),
        "status": metric.get("status"),
        "controls": _controls(metric),
        "details": {} if name.startswith("autointerp_") else details,
        "details_omitted": sorted(
            set(omitted) | (set(details) if name.startswith("autointerp_") else set())
        ),
    }
    if metric.get("reason"):
        out["reason"] = _clip(metric["reason"])
    if metric.get("error"):
        out["error"] = _clip(metric["error"])
    return out


def _autointerp(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Explanations with their examples, from the ``autointerp_*`` metrics that have them."""
    out = []
    for name in sorted(metrics, key=natural_key):
        details = (metrics[name] or {}).get("details") if name.startswith("autointerp_") else None
        if not isinstance(details, Mapping) or not isinstance(details.get("showcase"), list):
            continue
        showcase = []
        for item in details["showcase"][:SHOWCASE_LATENTS]:
            if not isinstance(item, Mapping):
                continue
            examples = item.get("examples") if isinstance(item.get("examples"), list) else []
            showcase.append(
                {
                    "latent": item.get("latent"),
                    "explanation": _clip(item.get("explanation", "")),
                    "examples": [_clip(e) for e in examples[:SHOWCASE_EXAMPLES]],
                }
            )
        nulls = (
            details.get("null_values") if isinstance(details.get("null_values"), Mapping) else {}
        )
        out.append(
            {
                "metric": name,
                "scorer": details.get("scorer"),
                "value": _num(metrics[name].get("value")),
                "ci95": _ci(metrics[name].get("ci95")),
                "null_values": {str(k): _num(v) for k, v in nulls.items()},
                "showcase": showcase,
            }
        )
    return out


def _score_fields(block: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "interp_score": _num(block.get("interp_score")),
        "interp_score_ci95": _ci(block.get("interp_score_ci95")),
        "partial": bool(block.get("partial")),
        "missing": [str(m) for m in block.get("missing") or []],
        "contributions": {str(k): _num(v) for k, v in (block.get("contributions") or {}).items()},
        "components": {str(k): _num(v) for k, v in (block.get("components") or {}).items()},
    }


def _components(entry: Mapping[str, Any], names: Collection[str]) -> dict[str, float | None]:
    """The component values ``interpscore score`` reads from a report entry
    (:func:`entry_components`); anything not a finite number is None (missing)."""
    return {str(k): _num(v) for k, v in entry_components(entry, names).items()}


def _block(
    block: Mapping[str, Any],
    components: dict[str, float | None],
    formula: Formula | None,
    keep_ci: bool,
) -> dict[str, Any]:
    """A score block with the effective components: the report's score as it is, or
    re-scored with ``formula`` (an interval is kept only where ``keep_ci``). A block the
    run could not score (``interp_score`` null: a failed SAE) stays without a score."""
    if formula is None or _num(block.get("interp_score")) is None:
        return {**_score_fields(block), "components": components}
    result = score(components, formula)
    return {
        **_score_fields({**result.to_dict(), "components": components}),
        "interp_score_ci95": _ci(block.get("interp_score_ci95")) if keep_ci else None,
    }


def _sae(
    sae: Mapping[str, Any],
    source: int,
    names: Collection[str],
    formula: Formula | None,
    keep_ci: bool,
) -> dict[str, Any]:
    metrics = {k: v for k, v in (sae.get("metrics") or {}).items() if isinstance(v, Mapping)}
    own = _block(sae, _components(sae, names), formula, keep_ci)
    controls = {}
    for name, block in (sae.get("controls") or {}).items():
        if not isinstance(block, Mapping):
            continue
        # A control's entry as `interpscore score` would read it: its components over
        # the control's values recorded beside each of the SAE's metrics.
        entry = {
            "components": block.get("components") or {},
            "metrics": {
                n: {"value": ((m.get("controls") or {}).get(name) or {}).get("value")}
                for n, m in metrics.items()
            },
        }
        difference_ci = _ci(block.get("difference_ci95")) if keep_ci else None
        controls[str(name)] = {
            "kind": block.get("kind"),
            **_block(block, _components(entry, names), formula, keep_ci),
            # the paired 95% interval on SAE − control InterpScore, when the report has one
            "difference_ci95": difference_ci,
            "side": side_of(difference_ci),
        }
    return {
        "id": str(sae["id"]),
        "source": source,
        "sae_repo": public_repo(sae.get("sae_repo")),
        **{key: sae.get(key) for key in IDENTITY},
        "is_control": is_model_control(sae),
        "errors": [_clip(e) for e in (sae.get("errors") or [])],
        **own,
        "l0": _num((metrics.get("l0") or {}).get("value")),
        "controls": controls,
        "metrics": {n: _metric(n, metrics[n]) for n in sorted(metrics, key=natural_key)},
        "autointerp": _autointerp(metrics),
    }


def _formula_block(formula: Mapping[str, Any] | Formula) -> dict[str, Any]:
    data = formula.to_dict() if isinstance(formula, Formula) else dict(formula)
    return {
        "version": str(data["version"]),
        "weights": {str(k): float(v) for k, v in data["weights"].items()},
        "l0_target": _num(data.get("l0_target")),
        "description": str(data.get("description") or ""),
        "expression": str(data.get("expression") or ""),
    }


def _check_together(
    reports: Sequence[tuple[str, Mapping[str, Any]]], formula: Formula | None
) -> None:
    """Refuse reports that one table cannot show: other formulas (without --formula),
    another l0_score target than --formula's, or one SAE id twice."""
    versions = {str(r["formula"]["version"]) for _, r in reports}
    if formula is None and len(versions) > 1:
        raise SiteError(
            f"The reports use different formula versions ({', '.join(sorted(versions))}).",
            "pass --formula VERSION|FILE to re-score every SAE with one formula.",
        )
    if formula is not None and "l0_score" in formula.weights:
        for name, report in reports:
            target = report["formula"].get("l0_target")
            if finite_number(target) and float(target) != formula.l0_target:
                raise SiteError(
                    f"Report {name} measured l0_score against target L0 {target:g}; formula "
                    f"{formula.version!r} uses {formula.l0_target:g}.",
                    "use a formula with the report's l0_target, or re-run with it.",
                )
    seen: dict[str, str] = {}
    for name, report in reports:
        for sae in report["saes"]:
            if sae["id"] in seen:
                raise SiteError(
                    f"SAE {shown(sae['id'])} is in both {seen[sae['id']]} and {name}.",
                    "render those reports on separate sites (ids must be unique).",
                )
            seen[sae["id"]] = name


def _evidence(
    reports: Sequence[tuple[str, Mapping[str, Any]]], evidence_rows: EvidenceRows | None
) -> list[dict[str, str]]:
    """The formula-evidence rows of every report (cells as text), a report column when
    there are several."""
    if evidence_rows is None:
        return []
    rows: list[dict[str, str]] = []
    for name, report in reports:
        for row in evidence_rows(dict(report)):
            cells = {str(k): "" if v is None else str(v) for k, v in row.items()}
            rows.append({"report": name, **cells} if len(reports) > 1 else cells)
    return rows


def build_site_data(
    reports: Sequence[tuple[str, Mapping[str, Any]]],
    known: Mapping[str, str],
    formula: Formula | None = None,
    evidence_rows: EvidenceRows | None = None,
) -> dict[str, Any]:
    """Everything the page shows, from ``(name, report)`` pairs (reports already checked).

    Without ``formula`` the reports' scores are kept as they are (the reports must share
    one formula version); with it every SAE and control is re-scored with it, and an
    interval is kept only where the weights did not change (intervals need the replicates,
    which the report does not hold).
    """
    if not reports:
        raise SiteError("No report to show.", "pass at least one interpscore.json.")
    _check_together(reports, formula)
    first = reports[0][1]["formula"]
    shown_formula = _formula_block(formula) if formula else _formula_block(first)
    saes: list[dict[str, Any]] = []
    for index, (_, report) in enumerate(reports):
        keep_ci = formula is None or (
            dict(formula.weights) == dict(report["formula"]["weights"])
            and formula.l0_target == report["formula"].get("l0_target", formula.l0_target)
        )
        names = {*known, *report["formula"]["weights"], *(formula.weights if formula else ())}
        saes.extend(_sae(s, index, names, formula, keep_ci) for s in report["saes"])
    metric_names = sorted({m for s in saes for m in s["metrics"]}, key=natural_key)
    published = all_formulas()
    return {
        "schema": SITE_SCHEMA,
        "formula": shown_formula,
        "rescored": formula is not None,
        "builtin_versions": [f.version for f in published],
        "formulas": [
            {"version": f.version, "weights": dict(f.weights), "description": f.description}
            for f in published
        ],
        "weight_sum_tolerance": WEIGHT_SUM_TOLERANCE,
        "known_components": dict(known),
        "reports": [
            {
                "name": name,
                "formula_version": str(report["formula"]["version"]),
                **{k: (report.get("run") or {}).get(k) for k in RUN_FIELDS},
            }
            for name, report in reports
        ],
        "metric_names": metric_names,
        # in report order: the page ranks (its formula is editable), SAEs without a score
        # and model controls are not ranked
        "saes": saes,
        "evidence": _evidence(reports, evidence_rows),
    }


def embed_json(data: Any) -> str:
    """JSON for a ``<script type="application/json">``: no NaN, and no ``<``, ``>`` or ``&``
    that could end the element or start a comment (they are written as \\u escapes)."""
    text = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
