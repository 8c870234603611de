"""``interpscore site REPORT.json … -o DIR [--formula VERSION|FILE]``: the CLI glue."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interpscore.errors import InterpScoreError
from interpscore.formula import all_formulas, get_formula, known_components
from interpscore.results.files import check_output
from interpscore.results.gate import load_report

#: The files a site folder holds (each is refused when it is a folder or an input).
SITE_FILES = ("index.html", "site.js", "site.css")


def report_labels(paths: Sequence[Path]) -> list[str]:
    """A public label per report: the fewest trailing parts of its path that tell it from
    the others (``a/interpscore.json`` beside ``b/interpscore.json``), never the whole
    absolute path. The same file given twice gets the same label."""
    parts = [Path(p).resolve().parts[1:] or (Path(p).name,) for p in paths]
    labels = []
    for mine in parts:
        others = {other for other in parts if other != mine}
        k = 1
        while k < len(mine) and any(other[-k:] == mine[-k:] for other in others):
            k += 1
        labels.append("/".join(mine[-k:]))
    return labels


def cmd_site(args: argparse.Namespace) -> int:
    """Read the reports, build the page's data, write the site and print its page."""
    from interpscore.results.evidence import evidence_rows
    from interpscore.site.data import build_site_data
    from interpscore.site.render import render_site

    inputs = tuple(Path(p) for p in args.reports)
    out = check_output(Path(args.out), "folder", inputs)
    for name in SITE_FILES:
        check_output(out / name, "file", inputs)
    formula = get_formula(args.formula) if args.formula else None
    labels = report_labels(inputs)
    reports = [(label, load_report(p, "Report")) for label, p in zip(labels, inputs, strict=True)]
    columns = {f.version: dict(f.weights) for f in all_formulas()}
    data = build_site_data(
        reports, known_components(), formula, lambda report: evidence_rows(report, columns)
    )
    try:
        written = render_site(data, out)
    except OSError as exc:
        raise InterpScoreError(
            f"Cannot write the site into {out}: {exc.strerror or exc}.",
            "choose a folder you can write.",
        ) from exc
    print(written[0])
    return 0


def add_site_parser(sub: Any) -> None:
    """The ``site`` subcommand on the CLI's subparsers."""
    p = sub.add_parser(
        "site",
        help="Write a static leaderboard site (opens from disk, offline).",
        description="Table with intervals and controls, plots, a page per SAE and an "
        "editable formula whose download `interpscore score --formula` accepts.",
    )
    p.add_argument("reports", nargs="+", metavar="REPORT.json", help="interpscore reports")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="site folder")
    p.add_argument(
        "--formula", default=None, help="re-score every SAE with this version or .toml/.json"
    )
    p.set_defaults(func=cmd_site)
