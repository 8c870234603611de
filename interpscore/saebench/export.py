"""Write a report as SAEBench result files: one per SAE and eval type, in SAEBench's
folders (``core/``, ``sparse_probing/``, ``tpp/``, ``absorption/``, ``autointerp/``) and
file names (``{release}_{sae_id}_eval_results.json``, ``/`` written as ``_``).

A file is written only when the report holds every field SAEBench requires for that eval;
otherwise the reason is returned, naming the first missing field and the metric it needs.
Each file's ``eval_config.interpscore`` records where every field came from and, for
fields whose definition differs from SAEBench's, how; every file is checked against
SAEBench's schema before it is written.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from interpscore import __version__
from interpscore.errors import InterpScoreError, summarize
from interpscore.results.files import dumps, write_atomic
from interpscore.saebench.mapping import Field, fields_of, passed
from interpscore.saebench.schema import EVAL_TYPES, SCHEMA_VERSION, EvalType, check, set_path

DEFAULT_RELEASE = "interpscore"


@dataclass
class ExportResult:
    written: list[Path] = field(default_factory=list)
    #: (SAE id, eval type, why no file was written)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)


def file_name(release: str, sae_id: str) -> str:
    """SAEBench's result file name for one SAE."""
    return f"{release}_{sae_id}_eval_results.json".replace("/", "_")


def _epoch_millis(entry: dict[str, Any], report: dict[str, Any]) -> int:
    stamp = entry.get("timestamp") or (report.get("run") or {}).get("timestamp")
    if not stamp:
        raise InterpScoreError(
            f"SAE {entry.get('id')!r} has no timestamp.", "export a report written by pytest."
        )
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1000)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise InterpScoreError(
            f"SAE {entry.get('id')!r}: key timestamp {stamp!r} is not an ISO date and time "
            f"({summarize(exc)}).",
            "write it as e.g. 2026-01-02T03:04:05+00:00, or regenerate the report.",
        ) from exc


def _saebench_config(eval_type: str, entry: dict[str, Any], run: dict[str, Any]) -> dict:
    """The fields of SAEBench's eval config that this run has an answer for."""
    config: dict[str, Any] = {"model_name": entry.get("model"), "llm_dtype": "float32"}
    probing = run.get("probing") or {}
    if eval_type == "core":
        config |= {
            "batch_size_prompts": run.get("batch_size"),
            "dataset": run.get("dataset"),
            "context_size": run.get("context_len"),
            "compute_kl": True,
            "compute_ce_loss": True,
            "compute_l2_norms": True,
            "compute_sparsity_metrics": True,
            "compute_variance_metrics": True,
            "compute_featurewise_density_statistics": True,
            "compute_featurewise_weight_based_metrics": True,
            "exclude_special_tokens_from_reconstruction": True,
        }
    elif eval_type == "sparse_probing":
        config |= {
            "random_seed": run.get("seed"),
            "dataset_names": list(probing.get("tasks") or []),
            "context_length": probing.get("max_tokens"),
        }
    elif eval_type == "tpp":
        tpp = passed(entry, "tpp_saebench@20") or {}
        config |= {
            "random_seed": run.get("seed"),
            "perform_scr": False,
            "dataset_names": list(tpp.get("details", {}).get("tasks") or []),
            "context_length": probing.get("max_tokens"),
        }
    elif eval_type == "absorption_first_letter":
        absorption = run.get("absorption") or {}
        config |= {
            "random_seed": run.get("seed"),
            "f1_jump_threshold": absorption.get("f1_jump"),
            "max_k_value": absorption.get("max_k"),
            "min_GT_probe_f1": absorption.get("min_probe_f1"),
        }
    elif eval_type == "autointerp":
        autointerp = run.get("autointerp") or {}
        config |= {"random_seed": run.get("seed"), "llm_context_size": autointerp.get("window")}
    return {k: v for k, v in config.items() if v is not None}


def _provenance(fields: list[Field], run: dict[str, Any]) -> dict[str, Any]:
    return {
        "written_by": f"interpscore {__version__}",
        "schema": SCHEMA_VERSION,
        "fields": {
            f.path: {"from": f.source, "same_definition": f.same, "note": f.note} for f in fields
        },
        "run": {k: v for k, v in run.items() if k not in ("passes", "command")},
    }


def _sae_cfg(entry: dict[str, Any]) -> dict[str, Any]:
    cfg = {
        "architecture": entry.get("architecture"),
        "d_in": entry.get("d_in"),
        "d_sae": entry.get("d_sae"),
        "hook_name": entry.get("hook"),
        "hook_layer": entry.get("layer"),
        "model_name": entry.get("model"),
        "k": entry.get("k"),
    }
    return {k: v for k, v in cfg.items() if v is not None}


def _read(f: Field, entry: dict[str, Any]) -> float | int | None:
    """One field's value; a one-line error naming the SAE and the metric when the metric's
    details do not have the shape the field reads."""
    try:
        return f.read(entry)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise InterpScoreError(
            f"SAE {entry.get('id')!r}: key metrics.{f.metric} cannot be read for SAEBench's "
            f"{f.path} ({summarize(exc)}).",
            "correct that metric's details, or regenerate the report.",
        ) from exc


def build_file(
    eval_type: EvalType, entry: dict[str, Any], report: dict[str, Any], release: str
) -> dict[str, Any] | str:
    """One SAEBench result file for one SAE, or why it cannot be written."""
    fields = fields_of(eval_type.id)
    values = {f.path: _read(f, entry) for f in fields}
    for f in fields:
        if f.path in eval_type.required and values[f.path] is None:
            return f"the report has no value for {f.path} (from {f.source})"
    present = [f for f in fields if values[f.path] is not None]
    if not present:
        return (
            f"the report has none of its metrics ({', '.join(sorted({f.metric for f in fields}))})"
        )
    metrics: dict[str, Any] = {}
    for f in present:
        set_path(metrics, f.path, values[f.path])
    for category in eval_type.categories:
        metrics.setdefault(category, {})
    run = report.get("run") or {}
    intervals = {
        f.path: (passed(entry, f.metric) or {}).get("ci95")
        for f in present
        if f.detail is None and f.derive is None
    }
    doc = {
        "eval_type_id": eval_type.id,
        "eval_config": {
            **_saebench_config(eval_type.id, entry, run),
            "interpscore": _provenance(present, run),
        },
        "eval_id": str(uuid.uuid4()),
        "datetime_epoch_millis": _epoch_millis(entry, report),
        "eval_result_metrics": metrics,
        "eval_result_details": [],
        "eval_result_unstructured": {
            "ci95": {path: ci for path, ci in intervals.items() if ci is not None}
        },
        "sae_bench_commit_hash": f"none (written by interpscore {__version__})",
        "sae_lens_id": str(entry["id"]),
        "sae_lens_release_id": release,
        "sae_lens_version": (run.get("libraries") or {}).get("sae-lens"),
        "sae_cfg_dict": _sae_cfg(entry),
    }
    problems = check(doc, eval_type)
    if problems:  # our own writer broke the format: a bug, never a file
        raise AssertionError(f"{eval_type.id} file for {entry['id']}: {problems}")
    return doc


def export_saebench(
    report: dict[str, Any], out_dir: Path, release: str = DEFAULT_RELEASE
) -> ExportResult:
    """Write every (SAE, eval type) file the report supports under ``out_dir``.

    Every file is built and its path checked before the first is written, so that a
    report that cannot be exported leaves nothing behind, and two SAEs whose ids give the
    same file name are refused rather than one overwriting the other.
    """
    result = ExportResult()
    planned: dict[Path, tuple[str, dict[str, Any]]] = {}
    for entry in report.get("saes") or []:
        for eval_type in EVAL_TYPES.values():
            built = build_file(eval_type, entry, report, release)
            if isinstance(built, str):
                result.skipped.append((str(entry["id"]), eval_type.id, built))
                continue
            name = file_name(release, str(entry["id"]))
            if "\0" in name or len(os.fsencode(name)) > 255:
                raise InterpScoreError(
                    f"SAE {entry['id']!r} with release {release!r} gives no usable file name.",
                    "use a shorter SAE id or --release without NUL characters.",
                )
            path = out_dir / eval_type.folder / name
            if path in planned:
                raise InterpScoreError(
                    f"SAEs {planned[path][0]!r} and {entry['id']!r} both give the file {path}.",
                    "give the SAEs ids that differ in more than '/' versus '_'.",
                )
            planned[path] = (str(entry["id"]), built)
    for path in planned:
        for target, kind in ((path.parent, "folder"), (path, "file")):
            if target.exists() and (target.is_dir() != (kind == "folder")):
                raise InterpScoreError(
                    f"Cannot write {path}: {target} exists and is not a {kind}.",
                    "export to another folder (-o), or move that path away.",
                )
    for path, (_, built) in planned.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, dumps(built))
        except OSError as exc:
            raise InterpScoreError(
                f"Cannot write {path}: {exc.strerror or exc}.", "export to a folder you can write."
            ) from exc
        result.written.append(path)
    return result
