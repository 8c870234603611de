"""How numbers and intervals are written in Markdown and on the terminal."""

from __future__ import annotations

import re
from typing import Any


def fmt(value: Any, digits: int = 3) -> str:
    """A value for a table cell: — for missing, 3 decimals, or 3 significant digits when tiny
    or huge."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    return str(value)


def ci_text(ci: list[float] | tuple[float, float] | None, digits: int = 3) -> str:
    """An interval as ``[low, high]`` (``digits`` decimals, as :func:`fmt`); empty without one."""
    return f"[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]" if ci else ""


def score_text(block: dict[str, Any]) -> str:
    """An InterpScore with its interval; ≥ in front when it is partial (a lower bound)."""
    if block.get("interp_score") is None:
        return "—"
    text = ("≥" if block.get("partial") else "") + fmt(block["interp_score"])
    return f"{text} {ci_text(block.get('interp_score_ci95'))}".strip()


def natural_key(name: str) -> list[Any]:
    """Sort key that puts k2 before k10 and @5 before @50."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def code_span(text: str) -> str:
    """Model or corpus text as a Markdown code span that its own backticks cannot end."""
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if runs else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def plain_text(text: str) -> str:
    """Model-written text for Markdown prose: emphasis, links and HTML shown, not rendered."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", text)
