"""``interpscore.md``: a leaderboard table like the seed's, controls, then a breakdown per
SAE, run-level families, the regression gate and the language-model passes."""

from __future__ import annotations

from typing import Any

from interpscore.results.formatting import ci_text, fmt, score_text
from interpscore.results.records import side_of
from interpscore.suites import REGISTRY


def _run_line(run: dict[str, Any]) -> str:
    if run.get("imported_from") == "saebench":
        return (
            f"Imported from {len(run.get('files') or [])} SAEBench result file(s) on "
            f"{run.get('timestamp')}: each value's status names the SAEBench field it came "
            "from; only fields whose definition agrees with ours are shown as our metrics."
        )
    return (
        f"Dataset `{run.get('dataset')}`, {run.get('tokens')} token positions at context "
        f"{run.get('context_len')}, seed {run.get('seed')}, bootstrap resamples "
        f"{run.get('bootstrap')}; {run.get('timestamp')}."
    )


def render_markdown(report: dict[str, Any]) -> str:
    formula = report["formula"]
    run = report["run"]
    comps = list(formula["weights"])
    lines = [
        "# InterpScore report",
        "",
        f"Formula v{formula['version']}: `InterpScore = {formula['expression']}`"
        + (f" (l0_score target L0 = {formula['l0_target']:g})" if formula.get("l0_target") else ""),
        "",
        _run_line(run),
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
        width = f"{sae.get('d_sae') or '—'} / {('k=' + fmt(k, 0)) if k else '—'}"
        cells = [fmt((sae.get("components") or {}).get(c)) for c in comps]
        status = "" if sae.get("status") == "ok" else " (failed)"
        lines.append(
            f"| {rank} | {sae['id']}{status} | {sae.get('model', '—')} · {sae.get('hook', '—')} | "
            f"{width} | " + " | ".join(cells) + f" | {score_text(sae)} |"
        )
    lines += _controls_section(report)
    lines += ["", "## Breakdown per SAE"]
    for sae in report["saes"]:
        lines += _breakdown(sae, formula)
    for suite in REGISTRY.suites():
        lines += suite.markdown(report)
    lines += _gate_section(report)
    lines += _passes_section(run.get("passes") or [])
    lines += _timing_section(run.get("timing"))
    return "\n".join(lines) + "\n"


def regression_table(rows: list[dict[str, Any]]) -> list[str]:
    """A Markdown table of gate rows (dicts as in ``GateRow.to_dict``)."""
    if not rows:
        return []

    def num(x: float | None) -> str:
        return "—" if x is None else f"{x:.4f}"

    out = [
        "| SAE | component | baseline | now | change | 95% CI | tolerance |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]" if r["ci95"] else "—"
        out.append(
            f"| {r['sae']} | {r['name']} | {num(r['baseline'])} | {num(r['now'])} | "
            f"{num(r['change'])} | {ci} | {r['tolerance']:g} |"
        )
    return out


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One line per SAE for the terminal: id, InterpScore (≥ when partial), status."""
    lines = []
    for sae in report["saes"]:
        missing = f"  missing: {', '.join(sae['missing'])}" if sae.get("missing") else ""
        status = "" if sae.get("status") == "ok" else f"  [{sae.get('status')}]"
        lines.append(f"{sae['id']:<32} {score_text(sae):<28}{missing}{status}")
    return lines


def _passes_section(passes: list[dict[str, Any]]) -> list[str]:
    if not passes:
        return []
    lines = [
        "",
        "## Language-model passes",
        "",
        "| model | hook | SAEs | sequences × context | accumulators | seconds | forward calls |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in passes:
        calls = ", ".join(f"{k} {v}" for k, v in (p.get("lm_forward_calls") or {}).items())
        lines.append(
            f"| {p['model']} | {p['hook']} | {len(p['sae_ids'])} | "
            f"{p['n_sequences']} × {p['context_len']} | {', '.join(p.get('accumulators', []))} | "
            f"{p['seconds']:.1f} | {calls} |"
        )
    return lines


def _timing_section(timing: dict[str, Any] | None) -> list[str]:
    if not timing:
        return []
    lines = [
        "",
        "## Where the time went",
        "",
        f"Session wall time {timing['wall_seconds']:.1f} s. Test seconds by family (a "
        "family's first test also runs the passes it needs):",
        "",
        "| family | seconds |",
        "|---|---|",
    ]
    lines += [f"| {name} | {sec:.1f} |" for name, sec in timing["by_family"].items()]
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
            rows.append(f"| {sae['id']} | {control} | {score_text(sae)} | {score_text(block)} |")
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


def _control_cell(comp: dict[str, Any] | None) -> str:
    if not comp:
        return "—"
    if comp.get("error"):
        return f"error: {comp['error']}"
    if comp.get("skipped"):
        return "not run"
    mark = {"above": " ▲", "below": " ▼"}.get(side_of(comp.get("difference_ci95")) or "", "")
    return (
        f"{fmt(comp.get('value'))} (Δ {fmt(comp.get('difference'))} "
        f"{ci_text(comp.get('difference_ci95'))}){mark}"
    )


def _breakdown(sae: dict[str, Any], formula: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"### {sae['id']}",
        "",
        f"{sae.get('sae_repo', '')} · {sae.get('model', '—')} · {sae.get('hook', '—')} · "
        f"architecture {sae.get('architecture', '—')} · d_sae {sae.get('d_sae', '—')} · "
        f"k {fmt(sae.get('k'), 0)} · status **{sae.get('status')}**",
        "",
        f"InterpScore **{score_text(sae)}**"
        + (f" — missing: {', '.join(sae['missing'])}" if sae.get("missing") else ""),
        "",
        "| component | weight | value | contribution |",
        "|---|---|---|---|",
    ]
    for name, weight in formula["weights"].items():
        value = (sae.get("components") or {}).get(name)
        contribution = (sae.get("contributions") or {}).get(name)
        lines.append(f"| {name} | ×{weight:.2f} | {fmt(value)} | {fmt(contribution)} |")
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
            elif m.get("source"):
                status = f"{status} ({m['source']})"
            cells = [_control_cell((m.get("controls") or {}).get(c)) for c in control_names]
            lines.append(
                f"| {name} | {fmt(m.get('value'))} | {ci_text(m.get('ci95'))} | {status} |"
                + "".join(f" {c} |" for c in cells)
            )
    if sae.get("errors"):
        lines += ["", "Errors:", *[f"- {e}" for e in sae["errors"]]]
    return lines
