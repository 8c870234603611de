"""Report assembly: the ``interpscore.json`` object, and writing it with its Markdown and
figure.

The JSON holds one entry per SAE under ``saes`` and a ``run`` block; it also carries the
keys of the InterpScore notebook's ``interpscore.json`` where the data exists. Run-level
families (ground truth) add a list under their own name. Files are written atomically and
NaN is never written: a metric without a finite value has ``value: null`` and a status.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from interpscore.formula import Formula, score
from interpscore.results.collect import ResultCollector, SAEEntry
from interpscore.results.files import dumps, write_atomic
from interpscore.results.formatting import natural_key
from interpscore.results.markdown import render_markdown
from interpscore.results.plots import plot_report
from interpscore.suites import REGISTRY

SCHEMA = "interpscore-report/1"
SOURCES = [
    "InterpScore leaderboard formula v0.0.1 (OpenInterpretability)",
    "SAEBench: Karvonen et al. 2025 (core, sparse probing, TPP, absorption definitions)",
    "SAELens run_evals (core metric definitions)",
    "Heap et al. 2025, Automated Interpretability Metrics Do Not Distinguish Trained and "
    "Random Transformers (randomized controls)",
]
LIBRARIES = (
    "interpscore",
    "torch",
    "transformers",
    "sae-lens",
    "scikit-learn",
    "numpy",
    "datasets",
)
NOTEBOOK_DETAIL_KEYS = (
    "probing_tasks",
    "probing_per_task_auc",
    "tpp_concept",
    "tpp_top_features",
)


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


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


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _status(entry: SAEEntry) -> str:
    if entry.errors or any(m.status == "failed" for m in entry.metrics.values()):
        return "failed"
    return "ok"


def build_entry(entry: SAEEntry, formula: Formula, timestamp: str) -> dict[str, Any]:
    """One SAE's report block: identity, InterpScore, every metric, controls."""
    describe = dict(entry.describe) or {"id": entry.id, "sae_repo": entry.id}
    components = {
        n: float(entry.metrics[n].value)  # type: ignore[arg-type]
        for n in formula.components
        if n in entry.metrics and _finite(entry.metrics[n].value)
    }
    replicates = {n: m.replicates for n, m in entry.metrics.items() if m.replicates is not None}
    control_values: dict[str, dict[str, float]] = {}
    control_reps: dict[str, dict[str, list[float]]] = {}
    kinds: dict[str, str] = {}
    for name, m in entry.metrics.items():
        for key, comparison in m.controls.items():
            if comparison.kind in ("null", "ceiling"):  # a family's own reference: no score
                continue
            kinds[key] = comparison.kind
            if _finite(comparison.value):
                control_values.setdefault(key, {})[name] = comparison.value  # type: ignore[assignment]
        for key, reps in m.control_replicates.items():
            control_reps.setdefault(key, {})[name] = reps
    controls = {
        key: {
            "kind": kinds[key],
            **score_block(
                {k: v for k, v in values.items() if k in formula.weights},
                control_reps.get(key, {}),
                formula,
            ),
        }
        for key, values in control_values.items()
    }
    metrics = sorted(entry.metrics.items(), key=lambda item: natural_key(item[0]))
    eval_tokens = next((m.window["n_tokens"] for _, m in metrics if m.window), None)
    out: dict[str, Any] = {
        **describe,
        "d_model": describe.get("d_in"),
        "status": _status(entry),
        "errors": list(entry.errors),
        **score_block(components, replicates, formula),
        "metrics": {name: m.to_dict() for name, m in metrics},
        "controls": controls,
        "eval_tokens": eval_tokens,
        "version": formula.version,
        "weights": dict(formula.weights),
        "timestamp": timestamp,
        "sources": SOURCES,
    }
    for key in NOTEBOOK_DETAIL_KEYS:
        out[key] = next((m.details[key] for _, m in metrics if key in m.details), None)
    return out


def build_report(
    collector: ResultCollector,
    run: dict[str, Any],
    formula: Formula,
    command: list[str],
) -> dict[str, Any]:
    """The whole report object (what is written to interpscore.json)."""
    timestamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    saes = [build_entry(e, formula, timestamp) for e in collector.saes.values()]
    saes.sort(key=lambda s: (s["interp_score"] is None, -(s["interp_score"] or 0.0)))
    return {
        "schema": SCHEMA,
        "version": formula.version,
        "formula": formula.to_dict(),
        "weights": dict(formula.weights),
        "run": {
            **run,
            "passes": collector.passes,
            "libraries": library_versions(),
            "timestamp": timestamp,
            "command": redact(command),
        },
        "saes": saes,
        **{
            suite.name: list(collector.run_results.get(suite.name, {}).values())
            for suite in REGISTRY.suites()
            if not suite.per_sae
        },
        "sources": SOURCES,
    }


_SECRET = re.compile(
    r"hf_[A-Za-z0-9]{8,}|(token|password|secret|api[_-]?key)\s*[=:]", re.IGNORECASE
)


def redact(argv: list[str]) -> list[str]:
    """The command line with anything that looks like a credential replaced, and the
    program by its name only (its path is the machine's, not the run's)."""
    program = [Path(argv[0]).name] if argv else []
    return program + ["<redacted>" if _SECRET.search(arg) else arg for arg in argv[1:]]


def write_reports(report: dict[str, Any], json_path: Path) -> tuple[Path, Path]:
    """Write the JSON, the Markdown and the figure beside it; each atomically."""
    md_path = json_path.with_suffix(".md")
    figure = plot_report(report, json_path.with_suffix(".png"))
    if figure is not None:
        report = {**report, "figure": figure.name}
    write_atomic(json_path, dumps(report))
    write_atomic(md_path, render_markdown(report))
    return json_path, md_path
