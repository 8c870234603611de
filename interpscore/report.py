"""Report assembly and rendering: ``interpscore.json`` and ``interpscore.md``.

The JSON holds one entry per SAE under ``saes`` and a ``run`` block; it also carries the
keys of the InterpScore notebook's ``interpscore.json`` where the data exists. Files are
written atomically (temporary file in the same folder, then ``os.replace``) and NaN is
never written: a metric without a finite value has ``value: null`` and a status.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from interpscore.collect import ResultCollector, components_of, score_block
from interpscore.formula import Formula

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


def natural_key(name: str) -> list[Any]:
    """Sort key that puts k2 before k10 and @5 before @50."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _status(metrics: dict[str, dict[str, Any]], errors: list[str]) -> str:
    if errors or any(m.get("status") == "failed" for m in metrics.values()):
        return "failed"
    return "ok"


def build_entry(entry: Any, formula: Formula, timestamp: str) -> dict[str, Any]:
    """One SAE's report block: identity, InterpScore, every metric, controls."""
    describe = dict(entry.describe) or {"id": entry.id, "sae_repo": entry.spec}
    components = components_of(entry.metrics, formula)
    block = score_block(components, entry.replicates, formula)
    controls = {}
    for control, values in entry.control_values.items():
        control_block = score_block(
            {k: v for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(v)},
            entry.control_replicates.get(control, {}),
            formula,
        )
        controls[control] = control_block
    eval_tokens = next(
        (m["window"]["n_tokens"] for m in entry.metrics.values() if m.get("window")), None
    )
    out: dict[str, Any] = {
        **describe,
        "d_model": describe.get("d_in"),
        "status": _status(entry.metrics, entry.errors),
        "errors": list(entry.errors),
        **block,
        "metrics": dict(sorted(entry.metrics.items(), key=lambda item: natural_key(item[0]))),
        "controls": controls,
        "eval_tokens": eval_tokens,
        "version": formula.version,
        "weights": dict(formula.weights),
        "timestamp": timestamp,
        "sources": SOURCES,
    }
    for key in NOTEBOOK_DETAIL_KEYS:
        out[key] = next(
            (m["details"][key] for m in entry.metrics.values() if key in (m.get("details") or {})),
            None,
        )
    return out


def build_report(
    collector: ResultCollector, settings: dict[str, Any], formula: Formula, command: list[str]
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
            **settings,
            **collector.run_details,
            "passes": collector.passes,
            "libraries": library_versions(),
            "timestamp": timestamp,
            "command": redact(command),
        },
        "saes": saes,
        "ground_truth": list(collector.ground_truth.values()),
        "sources": SOURCES,
    }


_SECRET = re.compile(
    r"hf_[A-Za-z0-9]{8,}|(token|password|secret|api[_-]?key)\s*[=:]", re.IGNORECASE
)


def redact(argv: list[str]) -> list[str]:
    """The command line with anything that looks like a credential replaced."""
    return ["<redacted>" if _SECRET.search(arg) else arg for arg in argv]


def publish(tmp: str, path: Path) -> None:
    """Give a finished temporary file the usual permissions and move it onto ``path``.

    mkstemp creates files readable by their owner only; a report should be as readable
    as any file the user writes (0666 less the umask).
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_atomic(path: Path, text: str) -> None:
    """Write text so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def dumps(report: dict[str, Any]) -> str:
    """JSON text; refuses NaN/inf so that none can slip into a report."""
    return json.dumps(report, indent=2, allow_nan=False, sort_keys=False) + "\n"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    return str(value)


def _ci(ci: list[float] | None) -> str:
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""


def _score_text(block: dict[str, Any]) -> str:
    if block.get("interp_score") is None:
        return "—"
    text = ("≥" if block.get("partial") else "") + _fmt(block["interp_score"])
    ci = block.get("interp_score_ci95")
    return f"{text} {_ci(ci)}".strip()


def render_markdown(report: dict[str, Any]) -> str:
    """A leaderboard table like the seed's, then a breakdown per SAE."""
    formula = report["formula"]
    run = report["run"]
    comps = list(formula["weights"])
    lines = [
        "# InterpScore report",
        "",
        f"Formula v{formula['version']}: `InterpScore = {formula['expression']}`"
        + (f" (l0_score target L0 = {formula['l0_target']:g})" if formula.get("l0_target") else ""),
        "",
        f"Dataset `{run.get('dataset')}`, {run.get('tokens')} token positions at context "
        f"{run.get('context_len')}, seed {run.get('seed')}, bootstrap resamples "
        f"{run.get('bootstrap')}; {run.get('timestamp')}.",
        "",
        "A score marked ≥ is partial: its missing components count as zero.",
        "",
        *(
            [f"![InterpScore by component, with controls]({report['figure']})", ""]
            if report.get("figure")
            else []
        ),
        "## Leaderboard",
        "",
        "| # | SAE | model · hook | d_sae / k | " + " | ".join(comps) + " | InterpScore (95% CI) |",
        "|---|---|---|---|" + "---|" * len(comps) + "---|",
    ]
    for rank, sae in enumerate(report["saes"], 1):
        k = sae.get("k")
        width = f"{sae.get('d_sae') or '—'} / {('k=' + _fmt(k, 0)) if k else '—'}"
        cells = [_fmt((sae.get("components") or {}).get(c)) for c in comps]
        status = "" if sae.get("status") == "ok" else " (failed)"
        lines.append(
            f"| {rank} | {sae['id']}{status} | {sae.get('model', '—')} · {sae.get('hook', '—')} | "
            f"{width} | " + " | ".join(cells) + f" | {_score_text(sae)} |"
        )
    lines += _controls_section(report)
    lines += ["", "## Breakdown per SAE"]
    for sae in report["saes"]:
        lines += _breakdown(sae, formula)
    lines += _ground_truth_section(report)
    lines += _gate_section(report)
    passes = run.get("passes") or []
    if passes:
        lines += [
            "",
            "## Language-model passes",
            "",
            "| model | hook | SAEs | sequences × context | seconds | forward calls |",
            "|---|---|---|---|---|---|",
        ]
        for p in passes:
            calls = ", ".join(f"{k} {v}" for k, v in (p.get("lm_forward_calls") or {}).items())
            lines.append(
                f"| {p['model']} | {p['hook']} | {len(p['sae_ids'])} | "
                f"{p['n_sequences']} × {p['context_len']} | {p['seconds']:.1f} | {calls} |"
            )
    return "\n".join(lines) + "\n"


def regression_table(rows: list[dict[str, Any]]) -> list[str]:
    """A Markdown table of gate rows (dicts as in ``GateRow.to_dict``)."""
    if not rows:
        return []

    def fmt(x: float | None) -> str:
        return "—" if x is None else f"{x:.4f}"

    out = [
        "| SAE | component | baseline | now | change | 95% CI | tolerance |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]" if r["ci95"] else "—"
        out.append(
            f"| {r['sae']} | {r['name']} | {fmt(r['baseline'])} | {fmt(r['now'])} | "
            f"{fmt(r['change'])} | {ci} | {r['tolerance']:g} |"
        )
    return out


def _ground_truth_section(report: dict[str, Any]) -> list[str]:
    rows = report.get("ground_truth") or []
    if not rows:
        return []
    settings = rows[0]["settings"]
    lines = [
        "",
        "## Ground truth (synthetic features)",
        "",
        f"{settings['n_features']} known features in {settings['hidden_dim']} dimensions, "
        f"correlated sparse firing (sae-lens synthetic); SAEs of width {settings['d_sae']} "
        f"trained on {settings['training_samples']:,} samples. Control: random-init SAE of the "
        "same shape.",
        "",
        "| architecture | MMCS | matched corr. | explained variance | L0 (true) | dead | "
        "control MMCS | control matched corr. |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r["control"]
        lines.append(
            f"| {r['architecture']} | {_fmt(r['mmcs'])} | {_fmt(r['matched_correlation'])} | "
            f"{_fmt(r['explained_variance'])} | {_fmt(r['l0'], 2)} ({_fmt(r['true_l0'], 2)}) | "
            f"{_fmt(r['dead_fraction'])} | {_fmt(c['mmcs'])} | {_fmt(c['matched_correlation'])} |"
        )
    return lines


def _gate_section(report: dict[str, Any]) -> list[str]:
    gate = report.get("gate")
    if not gate:
        return []
    verdict = (
        "passed" if gate["passed"] else f"**failed** ({len(gate['regressions'])} regression(s))"
    )
    lines = ["", "## Regression gate", "", f"Against `{gate['baseline']}`: {verdict}.", ""]
    lines += [f"- {note}" for note in gate["notes"]]
    table = regression_table(gate["regressions"])
    lines += ["", *table] if table else []
    return lines


def _controls_section(report: dict[str, Any]) -> list[str]:
    rows = []
    for sae in report["saes"]:
        for control, block in (sae.get("controls") or {}).items():
            rows.append(f"| {sae['id']} | {control} | {_score_text(sae)} | {_score_text(block)} |")
    if not rows:
        return []
    return [
        "",
        "## Controls",
        "",
        "Random-init SAEs of the same shape on the same tokens, and SAEs trained with the same "
        "recipe on randomized transformers (Heap et al. 2025).",
        "",
        "Per-metric tables mark ▲ (▼) where the 95% interval of SAE − control lies above "
        "(below) zero, i.e. where the metric tells the SAE from the control.",
        "",
        "| SAE | control | SAE InterpScore | control InterpScore |",
        "|---|---|---|---|",
        *rows,
    ]


def _breakdown(sae: dict[str, Any], formula: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"### {sae['id']}",
        "",
        f"{sae.get('sae_repo', '')} · {sae.get('model', '—')} · {sae.get('hook', '—')} · "
        f"architecture {sae.get('architecture', '—')} · d_sae {sae.get('d_sae', '—')} · "
        f"k {_fmt(sae.get('k'), 0)} · status **{sae.get('status')}**",
        "",
        f"InterpScore **{_score_text(sae)}**"
        + (f" — missing: {', '.join(sae['missing'])}" if sae.get("missing") else ""),
        "",
        "| component | weight | value | contribution |",
        "|---|---|---|---|",
    ]
    for name, weight in formula["weights"].items():
        value = (sae.get("components") or {}).get(name)
        contribution = (sae.get("contributions") or {}).get(name)
        lines.append(f"| {name} | ×{weight:.2f} | {_fmt(value)} | {_fmt(contribution)} |")
    metrics = sae.get("metrics") or {}
    if metrics:
        control_names = sorted({c for m in metrics.values() for c in (m.get("controls") or {})})
        header = "| metric | value | 95% CI | status |" + "".join(
            f" {c} (Δ, 95% CI) |" for c in control_names
        )
        lines += ["", header, "|---|---|---|---|" + "---|" * len(control_names)]
        for name, m in metrics.items():
            status = m.get("status", "")
            if status == "failed":
                status = f"failed: {m.get('error', '')}"
            cells = []
            for c in control_names:
                comp = (m.get("controls") or {}).get(c)
                if not comp:
                    cells.append("—")
                elif comp.get("error"):
                    cells.append(f"error: {comp['error']}")
                elif comp.get("skipped"):
                    cells.append("not run")
                else:
                    ci = comp.get("difference_ci95") or [0.0, 0.0]
                    mark = " ▲" if ci[0] > 0 else " ▼" if ci[1] < 0 else ""
                    cells.append(
                        f"{_fmt(comp.get('value'))} (Δ {_fmt(comp.get('difference'))} "
                        f"{_ci(comp.get('difference_ci95'))}){mark}"
                    )
            lines.append(
                f"| {name} | {_fmt(m.get('value'))} | {_ci(m.get('ci95'))} | {status} |"
                + "".join(f" {c} |" for c in cells)
            )
    if sae.get("errors"):
        lines += ["", "Errors:", *[f"- {e}" for e in sae["errors"]]]
    return lines


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One line per SAE for the terminal: id, InterpScore (≥ when partial), status."""
    lines = []
    for sae in report["saes"]:
        missing = f"  missing: {', '.join(sae['missing'])}" if sae.get("missing") else ""
        status = "" if sae.get("status") == "ok" else f"  [{sae.get('status')}]"
        lines.append(f"{sae['id']:<32} {_score_text(sae):<28}{missing}{status}")
    return lines


def write_reports(report: dict[str, Any], json_path: Path) -> tuple[Path, Path]:
    """Write the JSON, the Markdown and the figure beside it; each atomically."""
    from interpscore.plots import plot_report

    md_path = json_path.with_suffix(".md")
    figure = plot_report(report, json_path.with_suffix(".png"))
    if figure is not None:
        report = {**report, "figure": figure.name}
    write_atomic(json_path, dumps(report))
    write_atomic(md_path, render_markdown(report))
    return json_path, md_path
