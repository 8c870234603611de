"""Read SAEBench result files into our report, so that their SAEs are ranked, rendered,
compared and gated beside our own runs.

Each SAEBench field whose definition agrees with one of our metrics (see
:mod:`interpscore.saebench.mapping`) fills that metric, marked with its source; every
number of every file is also kept verbatim under the entry's ``saebench`` block. The
InterpScore of an imported SAE uses only components with an exact mapping
(``loss_recovered`` from the three mean losses by our formula, ``alive`` = ``frac_alive``,
``l0_score`` from ``l0``) and is marked partial; nothing is filled from a metric of
another definition. Older key names are read (``mean_absorption_score``, ``shift_metrics``
of SCR files) and ``sae_cfg_dict`` may be absent. A malformed or unknown file raises
:class:`SAEBenchFileError` naming the file and the key; the caller goes on with the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from interpscore.errors import InterpScoreError
from interpscore.formula import Formula
from interpscore.jsonio import finite_number, first_nonfinite, parse_json, read_bytes, shown
from interpscore.metrics import core as cm
from interpscore.metrics.l0 import l0_score
from interpscore.results.collect import ResultCollector, SAEEntry
from interpscore.results.records import MetricRecord
from interpscore.results.report import build_report
from interpscore.saebench.mapping import FIELDS, finite
from interpscore.saebench.schema import EVAL_TYPES, EvalType, check, get_path, known_paths
from interpscore.suites import REGISTRY

#: Older SAEBench key names, read as their current ones.
ALIASES = {"mean.mean_absorption_score": "mean.mean_absorption_fraction_score"}
#: Eval types we keep verbatim but have no metric of ours for.
KEPT_ONLY = ("scr",)


class SAEBenchFileError(InterpScoreError):
    """A SAEBench file that cannot be read; the message names the file and the key."""


@dataclass
class Imported:
    """SAEBench values of one SAE, gathered from its files."""

    release: str | None
    sae_id: str
    model: str | None = None
    cfg: dict[str, Any] = field(default_factory=dict)
    timestamp: str | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.release}/{self.sae_id}" if self.release else self.sae_id


def _eval_type_of(doc: dict[str, Any], path: Path) -> str:
    """The eval type a file declares, or the one its metric categories identify."""
    declared = doc.get("eval_type_id")
    metrics = doc.get("eval_result_metrics")
    if not isinstance(metrics, dict):
        raise SAEBenchFileError(
            f"{path.name}: key eval_result_metrics is missing or not an object.",
            "pass SAEBench result files (*_eval_results.json).",
        )
    if isinstance(declared, str):
        if declared == "absorption":
            declared = "absorption_first_letter"
        if declared in EVAL_TYPES or declared in KEPT_ONLY:
            return declared
        raise SAEBenchFileError(
            f"{path.name}: eval_type_id {declared[:60]!r} is not one this version reads.",
            f"pass files of {', '.join([*EVAL_TYPES, *KEPT_ONLY])}.",
        )
    by_category = {
        "model_behavior_preservation": "core",
        "llm": "sparse_probing",
        "tpp_metrics": "tpp",
        "scr_metrics": "scr",
        "shift_metrics": "scr",
        "mean": "absorption_first_letter",
        "autointerp": "autointerp",
    }
    for category, eval_type in by_category.items():
        if category in metrics:
            return eval_type
    raise SAEBenchFileError(
        f"{path.name}: no eval_type_id, and eval_result_metrics has none of the known "
        f"categories ({', '.join(shown(str(k)) for k in sorted(metrics)[:8])}).",
        "pass SAEBench result files of core, sparse_probing, tpp, scr, absorption or autointerp.",
    )


def _normalise(metrics: dict[str, Any]) -> dict[str, Any]:
    """Current key names for older ones (a copy)."""
    out = json.loads(json.dumps(metrics))
    for old, new in ALIASES.items():
        category, key = old.split(".")
        block = out.get(category)
        if isinstance(block, dict) and key in block:
            block.setdefault(new.split(".")[1], block.pop(key))
    return out


def _import_problems(doc: dict[str, Any], eval_type: EvalType) -> list[str]:
    """What stops a file from being imported: values of the wrong type, a missing
    identity, or none of the eval's fields. Fields a current schema requires but older
    SAEBench versions did not write (``sae_cfg_dict``, std devs, ``misc_metrics``, …) may
    be absent: only what is present is read."""
    problems = [
        p
        for p in check(doc, eval_type)
        if not p.startswith("missing key") or p.startswith("missing key sae_lens_id")
    ]
    present = [path for path in known_paths(eval_type) if _has(doc["eval_result_metrics"], path)]
    if not present:
        problems.append(
            f"eval_result_metrics holds none of the fields of {eval_type.id} "
            f"(such as {eval_type.required[0] if eval_type.required else eval_type.optional[0]})"
        )
    return problems


def _has(metrics: dict[str, Any], path: str) -> bool:
    try:
        get_path(metrics, path)
    except KeyError:
        return False
    return True


#: Envelope checks alone, for files of the eval types kept verbatim (``scr``).
_ENVELOPE_ONLY = EvalType("envelope", "", ())
#: What an imported SAE keeps of ``sae_cfg_dict`` (see ``_describe``).
CFG_KEYS = ("model_name", "hook_name", "hook_layer", "d_in", "d_sae", "architecture", "k")
CFG_KEYS += ("training_tokens",)
#: Epoch milliseconds that a date can be made of (years 1970 to 9999).
MAX_EPOCH_MILLIS = 253_402_300_799_999


def _out_of_bounds(doc: dict[str, Any], eval_type: str) -> list[str]:
    """Values of fields that fill one of our metrics and lie outside its bounds (a
    fraction of 1.7, a negative L0): refused, never clipped."""
    problems = []
    for f in FIELDS:
        if (
            f.eval_type != eval_type
            or not f.same
            or f.derive
            or f.detail
            or f.metric not in REGISTRY
        ):
            continue
        try:
            value = get_path(doc["eval_result_metrics"], f.path)
        except KeyError:
            continue
        low, high = REGISTRY.metric(f.metric).bounds
        if finite_number(value) and (
            (low is not None and value < low) or (high is not None and value > high)
        ):
            span = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
            problems.append(f"key eval_result_metrics.{f.path} is {value!r}, outside {span}")
    return problems


def read_file(path: Path) -> tuple[str, dict[str, Any]]:
    """(eval type, document with current key names) of one SAEBench file."""
    doc = parse_json(
        read_bytes(path, "SAEBench file", SAEBenchFileError), path.name, SAEBenchFileError
    )
    if not isinstance(doc, dict):
        raise SAEBenchFileError(f"{path.name} is not a JSON object.", "pass SAEBench files.")
    eval_type = _eval_type_of(doc, path)
    doc = {**doc, "eval_result_metrics": _normalise(doc["eval_result_metrics"])}
    known = EVAL_TYPES.get(eval_type, _ENVELOPE_ONLY)
    problems = (
        _import_problems(doc, known)
        if eval_type in EVAL_TYPES
        else [p for p in check(doc, known) if not p.startswith("missing key") or "sae_lens_id" in p]
    )
    if not problems:  # the envelope's types are right: its parts can be read
        kept = {
            "eval_result_metrics": doc["eval_result_metrics"],
            "sae_cfg_dict": {
                k: v for k, v in (doc.get("sae_cfg_dict") or {}).items() if k in CFG_KEYS
            },
        }
        bad = first_nonfinite(kept)
        if bad is not None:
            problems.append(f"key {bad} is NaN or infinite (write null for a missing value)")
        problems += _out_of_bounds(doc, eval_type)
        millis = doc.get("datetime_epoch_millis")
        if finite_number(millis) and not 0 <= millis <= MAX_EPOCH_MILLIS:
            problems.append(f"key datetime_epoch_millis is {millis!r}, not a date")
        model = (doc.get("eval_config") or {}).get("model_name")
        if model is not None and not isinstance(model, str):
            problems.append(f"key eval_config.model_name is {type(model).__name__}, not text")
    if problems:
        raise SAEBenchFileError(
            f"{path.name} ({eval_type}): {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + ".",
            "pass an unmodified SAEBench result file.",
        )
    if not doc.get("sae_lens_id"):
        raise SAEBenchFileError(
            f"{path.name}: key sae_lens_id is missing or empty.",
            "pass SAEBench result files; they name the SAE in sae_lens_id.",
        )
    return eval_type, doc


def expand(paths: list[str]) -> list[Path]:
    """Files as given, and every ``*_eval_results.json`` below each directory (sorted)."""
    out: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(path.rglob("*_eval_results.json"))
            if not found:
                raise InterpScoreError(
                    f"Directory {text} holds no *_eval_results.json files.",
                    "pass SAEBench's eval_results folder or the files themselves.",
                )
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise InterpScoreError(f"{text} does not exist.", "check the path.")
    return out


def _records(imported: Imported, formula: Formula) -> dict[str, MetricRecord]:
    """Our metrics from the SAEBench values whose definitions agree, marked with source."""
    records: dict[str, MetricRecord] = {}

    def put(metric: str, value: Any, source: str) -> None:
        if finite(value):
            records[metric] = MetricRecord(
                imported.id, metric, "passed", value=float(value), source=source
            )

    for f in FIELDS:
        if not f.same or f.derive is not None or f.detail is not None:
            continue
        doc = imported.files.get(f.eval_type)
        if doc is None:
            continue
        try:
            value = get_path(doc["eval_result_metrics"], f.path)
        except KeyError:
            continue
        put(f.metric, value, f"saebench:{f.eval_type}/{f.path}")
    if all(
        name in records for name in ("ce_loss_clean", "ce_loss_with_sae", "ce_loss_with_ablation")
    ):
        # Our formula on SAEBench's three mean losses: clipping ce_loss_score alone is not
        # the same where ablation does not hurt (CE_abl < CE_clean gives a positive ratio).
        means = {
            "ce_clean": "ce_loss_clean",
            "ce_sae": "ce_loss_with_sae",
            "ce_zero": "ce_loss_with_ablation",
        }
        sums = {key: np.float64(records[name].value) for key, name in means.items()}
        value = float(cm.SUM_METRICS["loss_recovered"]({**sums, "n_ce": np.float64(1.0)}))
        put(
            "loss_recovered",
            value,
            "saebench:core/model_performance_preservation "
            "(ce_loss_without_sae, ce_loss_with_sae, ce_loss_with_ablation)",
        )
    if "alive" in records:
        put(
            "dead_fraction",
            1.0 - records["alive"].value,  # type: ignore[operator]
            "saebench:core/misc_metrics.frac_alive (1 − frac_alive)",
        )
    if "l0" in records:
        put(
            "l0_score",
            l0_score(records["l0"].value, formula.l0_target),  # type: ignore[arg-type]
            f"saebench:core/sparsity.l0 (l0_score at target {formula.l0_target:g})",
        )
    return records


def _describe(imported: Imported) -> dict[str, Any]:
    cfg = imported.cfg
    return {
        "id": imported.id,
        "sae_repo": f"saebench:{imported.id}",
        "model": imported.model or cfg.get("model_name"),
        "hook": cfg.get("hook_name"),
        "layer": cfg.get("hook_layer"),
        "d_in": cfg.get("d_in"),
        "d_sae": cfg.get("d_sae"),
        "architecture": cfg.get("architecture"),
        "k": cfg.get("k"),
        "control_of": None,
        "tokens_trained": cfg.get("training_tokens"),
    }


def import_saebench(
    paths: list[Path], formula: Formula, command: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """Our report of every readable file, and one error line per file that was not."""
    errors: list[str] = []
    saes: dict[tuple[str | None, str], Imported] = {}
    for path in paths:
        try:
            eval_type, doc = read_file(path)
        except SAEBenchFileError as exc:
            errors.append(str(exc))
            continue
        key = (doc.get("sae_lens_release_id"), str(doc["sae_lens_id"]))
        imported = saes.setdefault(key, Imported(*key))
        if eval_type in imported.files:
            errors.append(
                f"{path.name}: a second {eval_type} file for SAE {imported.id}; the first was kept."
                " Fix: pass one result file per SAE and eval type."
            )
            continue
        imported.files[eval_type] = {**doc, "file": path.name}
        imported.cfg = imported.cfg or doc.get("sae_cfg_dict") or {}
        imported.model = imported.model or (doc.get("eval_config") or {}).get("model_name")
        millis = doc.get("datetime_epoch_millis")
        if isinstance(millis, int) and not isinstance(millis, bool):
            stamp = datetime.fromtimestamp(millis / 1000, timezone.utc)
            imported.timestamp = max(imported.timestamp or "", stamp.isoformat(timespec="seconds"))
    collector = ResultCollector()
    for imported in saes.values():
        entry = SAEEntry(imported.id, _describe(imported), _records(imported, formula))
        collector.saes[imported.id] = entry
    run = {
        "imported_from": "saebench",
        "files": [p.name for p in paths],
    }
    report = build_report(collector, run, formula, command)
    by_id = {i.id: i for i in saes.values()}
    for sae in report["saes"]:
        imported = by_id[sae["id"]]
        sae["imported_from"] = "saebench"
        sae["saebench"] = {
            eval_type: {
                "file": doc["file"],
                "eval_id": doc.get("eval_id"),
                "datetime_epoch_millis": doc.get("datetime_epoch_millis"),
                "sae_bench_commit_hash": doc.get("sae_bench_commit_hash"),
                "eval_result_metrics": doc["eval_result_metrics"],
            }
            for eval_type, doc in imported.files.items()
        }
        if imported.timestamp:
            sae["timestamp"] = imported.timestamp
    return report, errors
