"""The ``interpscore`` command: score components, list formulas, re-render reports.

    interpscore score FILE.json [--formula VERSION|FILE] [--json]
    interpscore formula [--formula FILE]
    interpscore report reports/interpscore.json [--out FILE.md]
    interpscore gate BASELINE.json CURRENT.json [--tolerance X] [--tolerance-for NAME=X]
    interpscore export REPORT.json --format saebench -o DIR [--release NAME]
    interpscore import-saebench FILE|DIR ... -o REPORT.json [--formula VERSION|FILE]

Errors print one line naming the problem and the fix, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from interpscore.errors import InterpScoreError
from interpscore.formula import BUILTIN, Formula, get_formula, known_components, score
from interpscore.results.files import write_atomic
from interpscore.results.gate import compare, load_report, parse_tolerances
from interpscore.results.markdown import render_markdown


def _read_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise InterpScoreError(f"Cannot read {path}: {exc.strerror}.", "check the path.") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InterpScoreError(
            f"{path} is not JSON ({exc.msg}, line {exc.lineno}).", "fix the file."
        ) from exc


def _components_of(item: Any, where: str) -> tuple[str | None, dict[str, float]]:
    """Accept ``{component: value}``, ``{"components": {...}}`` or a report SAE entry."""
    if not isinstance(item, dict):
        raise InterpScoreError(f"{where} is not a JSON object.", "give {component: value, ...}.")
    name = item.get("id") or item.get("name") or item.get("sae_repo")
    components = item.get("components", item)
    if not isinstance(components, dict):
        raise InterpScoreError(
            f"{where}: 'components' is not an object.", "give {component: value}."
        )
    values: dict[str, float] = {}
    for key, value in components.items():
        if key in ("id", "name", "sae_repo"):
            continue
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InterpScoreError(
                f"{where}: component {key} is {value!r}, not a number.", "fix the value."
            )
        values[key] = float(value)
    return (str(name) if name is not None else None), values


def cmd_score(args: argparse.Namespace) -> int:
    formula = get_formula(args.formula)
    data = _read_json(args.file)
    if isinstance(data, dict) and isinstance(data.get("saes"), list):
        data = data["saes"]
    items = data if isinstance(data, list) else [data]
    results = []
    for index, item in enumerate(items):
        name, components = _components_of(item, f"{args.file}[{index}]")
        unknown = sorted(set(components) - set(known_components()) - set(formula.weights))
        result = score(components, formula)
        results.append({"name": name or f"#{index + 1}", **result.to_dict(), "ignored": unknown})
    if args.json:
        print(json.dumps(results if isinstance(data, list) else results[0], indent=2))
        return 0
    for r in results:
        flag = f"  (partial: missing {', '.join(r['missing'])})" if r["partial"] else ""
        print(f"{r['name']}: {r['interp_score']:.3f}{flag}")
    return 0


def _print_formula(formula: Formula) -> None:
    print(f"v{formula.version}  ({formula.source})  {formula.description}".rstrip())
    print(f"  InterpScore = {formula.expression()}")
    print(f"  l0_score target L0 = {formula.l0_target:g}")


def cmd_formula(args: argparse.Namespace) -> int:
    formulas = [get_formula(args.formula)] if args.formula else list(BUILTIN.values())
    for formula in formulas:
        _print_formula(formula)
    if not args.formula:
        print("components a formula may use: " + ", ".join(known_components()))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    report = _read_json(args.file)
    if not isinstance(report, dict) or "saes" not in report or "formula" not in report:
        raise InterpScoreError(
            f"{args.file} is not an interpscore report (no 'saes' / 'formula').",
            "pass the interpscore.json written by `pytest benchmarks`.",
        )
    out = Path(args.out) if args.out else Path(args.file).with_suffix(".md")
    write_atomic(out, render_markdown(report))
    print(out)
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    baseline = load_report(args.baseline, "Baseline")
    current = load_report(args.current)
    tolerances = parse_tolerances(args.tolerance, args.tolerance_for, not args.ignore_intervals)
    result = compare(baseline, current, tolerances)
    for note in result.notes:
        print(note)
    print("\n".join(result.table()) if result.regressions else "no regressions")
    return 0 if result.passed else 1


def cmd_export(args: argparse.Namespace) -> int:
    from interpscore.saebench.export import export_saebench

    report = load_report(args.file)
    result = export_saebench(report, Path(args.out), args.release)
    for path in result.written:
        print(path)
    for sae, eval_type, why in result.skipped:
        print(f"not written: {eval_type} of {sae}: {why}", file=sys.stderr)
    if not result.written:
        raise InterpScoreError(
            f"{args.file} has no SAE with the values of any SAEBench eval.",
            "export a report of a run that measured core, probing, tpp or absorption metrics.",
        )
    return 0


def cmd_import_saebench(args: argparse.Namespace) -> int:
    from interpscore.results.report import write_reports
    from interpscore.saebench.importer import expand, import_saebench

    formula = get_formula(args.formula)
    report, errors = import_saebench(expand(args.files), formula, sys.argv)
    for line in errors:
        print(f"interpscore: error: {line}", file=sys.stderr)
    if not report["saes"]:
        raise InterpScoreError("No SAEBench file could be read.", "see the errors above.")
    json_path, md_path = write_reports(report, Path(args.out))
    print(f"{len(report['saes'])} SAE(s) from {len(args.files)} path(s): {json_path}, {md_path}")
    return 1 if errors else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interpscore", description="InterpScore tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("score", help="InterpScore of a JSON object of components (or a list).")
    p.add_argument(
        "file", help="JSON file ('-' for stdin): {component: value}, a list, or a report"
    )
    p.add_argument("--formula", default=None, help="formula version or .toml/.json file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_score)
    p = sub.add_parser("formula", help="List formula versions and their weights.")
    p.add_argument("--formula", default=None, help="show (and validate) one version or file")
    p.set_defaults(func=cmd_formula)
    p = sub.add_parser("report", help="Re-render the Markdown of an interpscore.json.")
    p.add_argument("file")
    p.add_argument("--out", default=None, help="Markdown path (default: beside the JSON)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("gate", help="Compare a report with a baseline; exit 1 on regressions.")
    p.add_argument("baseline")
    p.add_argument("current")
    p.add_argument("--tolerance", default="0", help="allowed drop for every value (default 0)")
    p.add_argument("--tolerance-for", action="append", default=[], metavar="NAME=X")
    p.add_argument(
        "--ignore-intervals", action="store_true", help="fail on drops inside the 95%% CI too"
    )
    p.set_defaults(func=cmd_gate)
    p = sub.add_parser("export", help="Write a report in another format (SAEBench's files).")
    p.add_argument("file", help="an interpscore.json")
    p.add_argument("--format", required=True, choices=["saebench"])
    p.add_argument("-o", "--out", required=True, help="folder (SAEBench's eval_results)")
    p.add_argument(
        "--release",
        default="interpscore",
        help="release name in the file names and sae_lens_release_id (default interpscore)",
    )
    p.set_defaults(func=cmd_export)
    p = sub.add_parser(
        "import-saebench", help="Turn SAEBench result files into an interpscore report."
    )
    p.add_argument("files", nargs="+", help="*_eval_results.json files or folders of them")
    p.add_argument("-o", "--out", required=True, help="report path (JSON; .md beside it)")
    p.add_argument("--formula", default=None, help="formula version or .toml/.json file")
    p.set_defaults(func=cmd_import_saebench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InterpScoreError as exc:
        print(f"interpscore: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
