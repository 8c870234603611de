"""One SAE's entry for the leaderboard site's ``lib/leaderboard.ts``, as TypeScript.

The site lists each SAE as an object literal in an array; its page shows the values as
``L12``, ``200M`` tokens, ``k=128`` and components to 3 decimals, so the entry carries
them in that form. The text depends only on its inputs (the date defaults to the report's),
so the same report gives the same line.
"""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Any

from interpscore.errors import InterpScoreError
from interpscore.hub.entry import as_integer, local_sae_repo
from interpscore.jsonio import finite_number, shown
from interpscore.results.public import public_path

#: Suffixes of the page's token counts (200M, 8B, 1B).
_UNITS = ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K"))


def human_tokens(count: int | float | None) -> str | None:
    """A token count as the page writes it: 999424 -> "1M", 1.5e9 -> "1.5B", 512 -> "512"."""
    if count is None or not math.isfinite(count):
        return None
    for size, suffix in _UNITS:
        shown = round(count / size, 1)
        if shown >= 1:
            return f"{shown:g}{suffix}" if shown < 1000 else f"{round(count / size):d}{suffix}"
    return f"{round(count):d}"


def layer_label(layer: int | float | None) -> str | None:
    """The page's layer label: 12 -> "L12"."""
    return None if layer is None else f"L{as_integer(layer)}"


def default_notes(report: dict[str, Any], sae: dict[str, Any]) -> str:
    """A one-line account of the evaluation, like the page's notes (tokens, probes, TPP)."""
    run = report.get("run") or {}
    parts = [f"interpscore {(run.get('libraries') or {}).get('interpscore') or ''}".rstrip()]
    if sae.get("eval_tokens") is not None:
        tokens = _count(sae, "eval_tokens")
        dataset = run.get("dataset", "?")
        dataset = public_path(dataset, check_disk=True) if isinstance(dataset, str) else dataset
        parts.append(f"{tokens:,} eval tokens ({dataset})")
    if sae.get("probing_tasks"):
        parts.append("probes " + ", ".join(str(t) for t in sae["probing_tasks"]))
    if sae.get("tpp_concept"):
        parts.append(f"TPP {sae['tpp_concept']} top {sae.get('tpp_top_features')}")
    if sae.get("interp_score_ci95"):
        low, high = sae["interp_score_ci95"]
        parts.append(f"InterpScore 95% CI [{low:.3f}, {high:.3f}]")
    return "; ".join(parts)


def _count(sae: dict[str, Any], key: str) -> int:
    """The SAE's token count ``key`` as an integer, refused when it is not a number."""
    value = sae[key]
    if not finite_number(value) or value < 0:
        raise InterpScoreError(
            f"SAE {shown(sae['id'])} has {key} {shown(str(value))}, not a token count.",
            f"fix {key} in the report (a number, or null).",
        )
    return round(value)


def submission_date(report: dict[str, Any], sae: dict[str, Any], given: str | None) -> str:
    """``given``, else the date of the SAE's (or the run's) timestamp; refused when there is
    none or it does not start with a date."""
    stamp = given or sae.get("timestamp") or (report.get("run") or {}).get("timestamp")
    if stamp is None:
        raise InterpScoreError(
            f"SAE {shown(sae['id'])} and its report have no timestamp.",
            "give the date with --submitted-at YYYY-MM-DD.",
        )
    try:
        return date.fromisoformat(str(stamp)[:10]).isoformat()
    except ValueError as exc:
        raise InterpScoreError(
            f"The report's timestamp {shown(str(stamp))} does not start with a date.",
            "give the date with --submitted-at YYYY-MM-DD.",
        ) from exc


def entry_sae_repo(sae: dict[str, Any], sae_repo: str | None = None) -> str:
    """Where the entry says the SAE is: ``sae_repo`` when given, else the report's (or the
    SAE's id), refused when the report's is a local folder."""
    if sae_repo is not None:
        return sae_repo
    if local_sae_repo(sae):
        raise InterpScoreError(
            f"SAE {shown(sae['id'])} was loaded from a local folder, which is not public.",
            "name its hub repository with --sae-repo REPO_ID.",
        )
    return sae.get("sae_repo") or sae["id"]


def leaderboard_entry(
    report: dict[str, Any],
    sae: dict[str, Any],
    submitted_by: str = "",
    notes: str | None = None,
    submitted_at: str | None = None,
    sae_repo: str | None = None,
) -> dict[str, Any]:
    """The entry's fields in the site's order (``None`` prints as ``null``)."""
    formula = report["formula"]
    components = sae.get("components") or {}
    model = sae.get("model")
    trained = None if sae.get("tokens_trained") is None else _count(sae, "tokens_trained")
    return {
        "sae_repo": entry_sae_repo(sae, sae_repo),
        "model": public_path(model) if isinstance(model, str) else model,
        "layer": layer_label(sae.get("layer")),
        "d_sae": as_integer(sae.get("d_sae")),
        "k": as_integer(sae.get("k")),
        "tokens_trained": human_tokens(trained),
        "components": {name: _three(components.get(name)) for name in formula["weights"]},
        "interp_score": _three(sae.get("interp_score")),
        "submitted_at": submission_date(report, sae, submitted_at),
        "submitted_by": submitted_by,
        "notebook_version": formula["version"],
        "notes": default_notes(report, sae) if notes is None else notes,
    }


class Fixed3(float):
    """A number the entry shows with 3 decimals (0.990, not 0.99)."""


def _three(value: float | None) -> Fixed3 | None:
    """A component or score (load_report has checked it is a finite number or null)."""
    return None if value is None else Fixed3(round(float(value), 3))


def to_typescript(entry: dict[str, Any]) -> str:
    """The entry as one line of a TypeScript array: ``{ key: value, ... },``."""
    return _literal(entry) + ","


def _literal(value: Any) -> str:
    if isinstance(value, dict):
        body = ", ".join(f"{_key(k)}: {_literal(v)}" for k, v in value.items())
        return "{ " + body + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Fixed3):
        return f"{value:.3f}"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=True)


def _key(name: str) -> str:
    """A property name: bare when it is an identifier, a JSON string otherwise."""
    return name if name.isidentifier() and name.isascii() else json.dumps(name)
