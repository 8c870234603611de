"""One figure for the report: the InterpScore of each SAE, term by term, beside its controls,
and the sparsity / fidelity trade-off (L0 against loss recovered)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from interpscore.results.files import save_atomic

#: The marker of each kind of control, in this figure and in each SAE's hub chart.
CONTROL_MARKERS = {"random-init": "x", "model": "D"}


def plot_report(report: dict[str, Any], path: Path) -> Path | None:
    """Write ``path`` (PNG) atomically; None when no SAE has a score to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    saes = [s for s in report["saes"] if s.get("interp_score") is not None]
    if not saes:
        return None
    components = list(report["formula"]["weights"])
    fig, (bars, trade) = plt.subplots(
        1, 2, figsize=(13, 0.45 * len(saes) + 2.5), width_ratios=[3, 2]
    )
    names = [s["id"] for s in saes][::-1]
    left = [0.0] * len(saes)
    colors = plt.get_cmap("tab10")
    for index, component in enumerate(components):
        widths = [(s.get("contributions") or {}).get(component, 0.0) for s in saes][::-1]
        bars.barh(names, widths, left=left, color=colors(index), label=component)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for row, sae in enumerate(saes[::-1]):
        ci = sae.get("interp_score_ci95")
        if ci:
            bars.plot(ci, [row, row], color="black", lw=1)
        for block in (sae.get("controls") or {}).values():
            if block.get("interp_score") is not None:
                marker = CONTROL_MARKERS.get(block.get("kind"), CONTROL_MARKERS["model"])
                bars.plot(block["interp_score"], row, marker=marker, color="black", ms=6, ls="none")
    bars.set_xlabel(
        f"InterpScore v{report['formula']['version']} (x: random-init control, ◆: model control)"
    )
    bars.set_xlim(0, 1)
    bars.legend(fontsize=7, loc="lower right")
    for sae in saes:
        metrics = sae.get("metrics") or {}
        l0 = (metrics.get("l0") or {}).get("value")
        recovered = (metrics.get("loss_recovered") or {}).get("value")
        if l0 and recovered is not None:
            marker = CONTROL_MARKERS["model"] if sae.get("control_of") else "o"
            trade.scatter([l0], [recovered], marker=marker)
            trade.annotate(
                sae["id"], (l0, recovered), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    trade.set_xscale("log")
    trade.set_xlabel("L0 (log scale)")
    trade.set_ylabel("loss recovered")
    trade.axvline(report["formula"].get("l0_target", 80), color="grey", ls=":", lw=1)
    fig.tight_layout()
    try:
        save_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), suffix=".png")
    finally:
        plt.close(fig)
    return path
