"""Writing the site: ``index.html`` with the data embedded, and the script and style sheet
beside it (shipped as package data), each file written atomically."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from interpscore.results.files import write_atomic
from interpscore.site.data import embed_json

#: Files copied from the package's assets as they are.
STATIC = ("site.js", "site.css")
PLACEHOLDER = "__INTERPSCORE_SITE_DATA__"


def asset(name: str) -> str:
    """The text of one file under ``interpscore/site/assets``."""
    return resources.files("interpscore.site").joinpath("assets", name).read_text("utf-8")


def index_html(data: dict[str, Any]) -> str:
    """The page with ``data`` embedded as JSON (escaped so that no text can end the element)."""
    template = asset("index.html")
    if template.count(PLACEHOLDER) != 1:  # pragma: no cover - a packaging mistake
        raise RuntimeError("the site template must hold the data placeholder exactly once")
    return template.replace(PLACEHOLDER, embed_json(data))


def render_site(data: dict[str, Any], out: Path) -> list[Path]:
    """Write the site into folder ``out``; the paths written, the page first."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "index.html"]
    write_atomic(written[0], index_html(data))
    for name in STATIC:
        write_atomic(out / name, asset(name))
        written.append(out / name)
    return written
