"""One SAE of a report in the leaderboard notebook's ``interpscore.json`` schema.

The public leaderboard ingests the file that its notebook (18_interpscore_eval.ipynb)
writes to an SAE's repository; our report's SAE entries already carry the notebook's keys.
This module picks one SAE (refusing what the leaderboard should not list) and lays it out
in the notebook's key order, with what only this harness measures (intervals, controls,
the run's settings) under one extra key, :data:`HARNESS_KEY`.
"""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

from interpscore.errors import InterpScoreError, redact_secrets
from interpscore.jsonio import shown
from interpscore.results.gate import some_ids
from interpscore.results.public import is_local_source, public_path
from interpscore.results.records import is_model_control

#: The notebook's top-level keys, in its order.
NOTEBOOK_KEYS = (
    "version",
    "sae_repo",
    "model",
    "layer",
    "d_model",
    "d_sae",
    "k",
    "tokens_trained",
    "eval_tokens",
    "probing_tasks",
    "probing_per_task_auc",
    "tpp_concept",
    "tpp_top_features",
    "components",
    "weights",
    "interp_score",
    "timestamp",
    "sources",
)
#: Our additions, kept out of the notebook's keys so that its readers see its schema.
HARNESS_KEY = "interpscore_harness"
#: Run settings that are records of the execution, not settings (and may hold local paths).
_RUN_RECORDS = ("passes", "command")
#: Run settings that may name a local file or folder, even by a relative path.
_RUN_PATHS = ("dataset", "model_override", "formula")
#: Setting names whose value would be a credential.
_SECRET_NAME = re.compile(r"(^|_)(token|secret|password|api_?key)$", re.IGNORECASE)


def select_sae(report: dict[str, Any], sae_id: str, allow_partial: bool = False) -> dict[str, Any]:
    """The report's SAE ``sae_id``, refused when the leaderboard should not list it: a
    control (random-init or a randomized model), a failed evaluation, or missing components
    (unless ``allow_partial``)."""
    saes = {s["id"]: s for s in report["saes"]}
    if "#" in sae_id:
        raise InterpScoreError(
            f"{shown(sae_id)} is a control ({sae_id.partition('#')[2]}) of "
            f"{shown(sae_id.partition('#')[0])}, not an SAE to submit.",
            "give the id of a trained SAE.",
        )
    if sae_id not in saes:
        raise InterpScoreError(
            f"SAE {shown(sae_id)} is not in the report (it has {some_ids(list(saes))}).",
            "give one of the report's SAE ids (`interpscore score REPORT`).",
        )
    sae = saes[sae_id]
    if is_model_control(sae):
        raise InterpScoreError(
            f"{shown(sae_id)} is a model control of {shown(str(sae['control_of']))} "
            f"(model {sae.get('model')}), not an SAE to submit.",
            "give the id of a trained SAE.",
        )
    if sae.get("status") != "ok":
        errors = "; ".join(str(e) for e in sae.get("errors") or []) or "a metric failed"
        raise InterpScoreError(
            f"SAE {shown(sae_id)} has status {sae.get('status')!r} ({errors}).",
            "fix the failure and re-run its evaluation before submitting.",
        )
    if sae.get("interp_score") is None:
        raise InterpScoreError(f"SAE {shown(sae_id)} has no InterpScore.", "re-run it.")
    missing = missing_components(report, sae)
    if missing and not allow_partial:
        raise InterpScoreError(
            f"SAE {shown(sae_id)} is partial: missing component(s) {', '.join(missing)}.",
            "run the metric families that give them, or pass --allow-partial.",
        )
    return sae


def missing_components(report: dict[str, Any], sae: dict[str, Any]) -> list[str]:
    """The formula's components this SAE has no value for (its own list, or null values)."""
    components = sae.get("components") or {}
    names = list(report["formula"]["weights"])
    absent = [n for n in names if components.get(n) is None]
    return list(dict.fromkeys([*(sae.get("missing") or []), *absent]))


def as_integer(value: Any) -> Any:
    """80.0 -> 80 (the notebook writes k and counts as integers); anything else as is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def local_sae_repo(sae: dict[str, Any]) -> bool:
    """The SAE's ``sae_repo`` is a folder of the machine that evaluated it (not public)."""
    repo = sae.get("sae_repo")
    return isinstance(repo, str) and is_local_source(repo)


def notebook_json(
    report: dict[str, Any], sae: dict[str, Any], sae_repo: str | None = None
) -> dict[str, Any]:
    """The SAE's ``interpscore.json``: the notebook's keys in its order, then ours.
    ``sae_repo`` replaces the report's (which must then not be a local folder: the caller
    names where the SAE is public); a local model path is reduced to its last part."""
    if sae_repo is None and local_sae_repo(sae):
        raise InterpScoreError(
            f"SAE {shown(sae['id'])} was loaded from a local folder, which is not public.",
            "name the hub repository that holds it.",
        )
    out: dict[str, Any] = {key: sae.get(key) for key in NOTEBOOK_KEYS}
    if sae_repo is not None:
        out["sae_repo"] = sae_repo
    if isinstance(out["model"], str):
        out["model"] = public_path(out["model"])
    out["version"] = sae.get("version") or report["formula"]["version"]
    out["weights"] = sae.get("weights") or dict(report["formula"]["weights"])
    out["sources"] = sae.get("sources") or report.get("sources")
    for key in ("layer", "d_model", "d_sae", "k", "tokens_trained", "eval_tokens"):
        out[key] = as_integer(out[key])
    out[HARNESS_KEY] = harness_block(report, sae)
    return out


def harness_block(report: dict[str, Any], sae: dict[str, Any]) -> dict[str, Any]:
    """What this harness adds: 95% intervals, controls, the formula, the run's settings."""
    formula = report["formula"]
    names = list(formula["weights"])
    metrics = sae.get("metrics") or {}
    run = report.get("run") or {}
    return {
        "sae_id": sae["id"],
        "harness_version": (run.get("libraries") or {}).get("interpscore"),
        "uploaded_with": _installed_version(),
        "report_schema": report.get("schema"),
        "status": sae.get("status"),
        "partial": bool(missing_components(report, sae)),
        "missing": missing_components(report, sae),
        "formula": {
            "version": formula["version"],
            "expression": formula.get("expression"),
            "weights": dict(formula["weights"]),
            "l0_target": formula.get("l0_target"),
        },
        "intervals": {
            "level": 0.95,
            "components": {n: (metrics.get(n) or {}).get("ci95") for n in names},
            "interp_score": sae.get("interp_score_ci95"),
        },
        "controls": {
            "components": {n: component_controls(metrics.get(n) or {}) for n in names},
            "interp_score": {
                key: {
                    "kind": block.get("kind"),
                    "interp_score": block.get("interp_score"),
                    "interp_score_ci95": block.get("interp_score_ci95"),
                    "partial": block.get("partial"),
                    "missing": block.get("missing") or [],
                }
                for key, block in (sae.get("controls") or {}).items()
            },
        },
        "run": run_settings(run),
    }


def component_controls(metric: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each control of one metric: its kind, value, difference from the SAE and whether
    the 95% interval of that difference excludes 0 (``skipped`` says why one did not run)."""
    out: dict[str, dict[str, Any]] = {}
    for key, control in (metric.get("controls") or {}).items():
        row = {
            "kind": control.get("kind"),
            "value": control.get("value"),
            "difference": control.get("difference"),
            "difference_ci95": control.get("difference_ci95"),
            "distinguishes": control.get("distinguishes"),
        }
        if control.get("skipped"):
            row["skipped"] = control["skipped"]
        out[key] = row
    return out


def run_settings(run: dict[str, Any]) -> dict[str, Any]:
    """The run block without its execution records, without anything secret-looking and
    with each local path reduced to its last part (the dataset file, a model folder)."""
    kept = {
        k: public_path(v, check_disk=True) if k in _RUN_PATHS and isinstance(v, str) else v
        for k, v in run.items()
        if k not in _RUN_RECORDS
    }
    return _scrub(kept)


def _scrub(value: Any) -> Any:
    """``value`` with credential-named keys dropped and credentials inside text redacted."""
    if isinstance(value, dict):
        return {
            k: _scrub(v)
            for k, v in value.items()
            if not (_SECRET_NAME.search(str(k)) and v not in (None, ""))
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return public_path(redact_secrets(value))
    return value


def _installed_version() -> str | None:
    try:
        return metadata.version("interpscore")
    except metadata.PackageNotFoundError:
        return None
