"""A small chart of one SAE for its repository: each component of the formula and the
InterpScore with their 95% intervals, and the controls' values beside them.

It uses the report figure's markers (``interpscore.results.plots.CONTROL_MARKERS``): x for
the random-init control, ◆ for a model control. The PNG is made in memory, since it is uploaded, not
written; the same report gives the same bytes with the same matplotlib.
"""

from __future__ import annotations

import io
from typing import Any

from interpscore.hub.entry import missing_components
from interpscore.results.plots import CONTROL_MARKERS


def sae_chart_png(report: dict[str, Any], sae: dict[str, Any]) -> bytes:
    """The chart of ``sae`` as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["formula"]["weights"])
    metrics = sae.get("metrics") or {}
    rows: list[tuple[str, float | None, list[float] | None, list[tuple[str, float]]]] = []
    for name in names:
        metric = metrics.get(name) or {}
        controls = [
            (c.get("kind") or "", c["value"])
            for c in (metric.get("controls") or {}).values()
            if isinstance(c.get("value"), (int, float)) and c.get("kind") in CONTROL_MARKERS
        ]
        rows.append((name, (sae.get("components") or {}).get(name), metric.get("ci95"), controls))
    score_controls = [
        (b.get("kind") or "", b["interp_score"])
        for b in (sae.get("controls") or {}).values()
        if b.get("interp_score") is not None and b.get("kind") in CONTROL_MARKERS
    ]
    rows.append(
        ("InterpScore", sae.get("interp_score"), sae.get("interp_score_ci95"), score_controls)
    )
    rows.reverse()
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 2))
    colors = plt.get_cmap("tab10")
    seen: set[str] = set()
    for y, (name, value, ci, controls) in enumerate(rows):
        color = "black" if name == "InterpScore" else colors(names.index(name))
        if value is None:
            ax.text(0.01, y, "missing", va="center", fontsize=8, color="grey")
        else:
            ax.barh(y, value, color=color, alpha=0.75, height=0.6)
            ax.text(1.015, y, f"{value:.3f}", fontsize=8, va="center")
        if ci:
            ax.plot(ci, [y, y], color="black", lw=1.5)
            ax.plot(ci, [y, y], color="black", lw=0, marker="|", ms=8)
        for kind, control in controls:
            label = f"{kind} control" if kind not in seen else None
            seen.add(kind)
            ax.plot(
                control,
                y,
                marker=CONTROL_MARKERS[kind],
                color="crimson",
                ls="none",
                ms=7,
                label=label,
                clip_on=False,
            )
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.set_xlim(0, 1.1)
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_xlabel("value (bars), 95% interval (lines), controls (markers)")
    missing = missing_components(report, sae)
    title = f"{sae['id']} · InterpScore v{report['formula']['version']}"
    ax.set_title(title + (f" (partial: {', '.join(missing)})" if missing else ""), fontsize=10)
    if seen:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.tight_layout()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=100, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()
