"""The ``interpscore`` command: score components, list formulas, re-render reports.

    interpscore score FILE.json [--formula VERSION|FILE] [--json]
    interpscore formula [--formula FILE]
    interpscore evidence REPORT.json [MORE.json ...] [--formula VERSION|FILE ...]
    interpscore report reports/interpscore.json [--out FILE.md]
    interpscore gate BASELINE.json CURRENT.json [--tolerance X] [--tolerance-for NAME=X]
    interpscore export REPORT.json --format saebench -o DIR [--release NAME]
    interpscore import-saebench FILE|DIR ... -o REPORT.json [--formula VERSION|FILE]
    interpscore merge RESULTS_DIR ... -o REPORT.json [--allow-partial]
    interpscore verify REPORT.json [--sae ID] [--tolerance X] [--metrics all] [--keep DIR]
    interpscore push REPORT.json --sae ID --repo REPO_ID [--create-pr] [--dry-run] …
    interpscore leaderboard-entry REPORT.json --sae ID [--submitted-by NAME] [--notes TEXT]
    interpscore site REPORT.json [REPORT.json …] -o DIR [--formula VERSION|FILE]
    interpscore launch --shards N --results-dir DIR [--executor slurm|local] … -- PYTEST_ARGS
    interpscore cache [list|clear] [--kind KIND] [--cache-dir DIR]

Errors print one line naming the problem and the fix, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

from interpscore.errors import BaselineError, InterpScoreError, summarize
from interpscore.formula import (
    Formula,
    all_formulas,
    entry_components,
    get_formula,
    known_components,
    score,
)
from interpscore.jsonio import finite_number, parse_json, read_bytes, shown
from interpscore.results.files import check_output, write_atomic
from interpscore.results.gate import compare, load_report, parse_tolerances, some_ids
from interpscore.results.markdown import render_markdown
from interpscore.results.report import SCHEMA
from interpscore.results.report_shape import check_report_shape
from interpscore.verify.command import add_verify_parser

#: Characters that end a line for str.splitlines(): escaped so that every error is one line.
_LINE_BREAKS = {c: repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(text: str) -> str:
    """``text`` with every line break escaped (an error is always one line)."""
    return text.translate(str.maketrans(_LINE_BREAKS))


def _read_json(path: str) -> Any:
    """A JSON file ('-' for stdin) parsed, or a one-line error naming the file."""
    if path == "-":
        try:
            raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
        except OSError as exc:
            raise InterpScoreError(f"Cannot read stdin: {exc.strerror}.", "pipe a file.") from exc
        return parse_json(raw, "stdin")
    return parse_json(read_bytes(Path(path), "file"), path)


def _components_of(item: Any, where: str, bounded: set[str]) -> tuple[str | None, dict[str, float]]:
    """Accept ``{component: value}``, ``{"components": {...}}`` or a report SAE entry.

    Every value must be a finite number (or null: missing); those of ``bounded`` names
    (the components) must lie in [0, 1], since a component is a fraction.
    """
    if not isinstance(item, dict):
        raise InterpScoreError(f"{where} is not a JSON object.", "give {component: value, ...}.")
    name = item.get("id") or item.get("name") or item.get("sae_repo")
    components = item.get("components", item)
    if not isinstance(components, dict):
        raise InterpScoreError(
            f"{where}: 'components' is not an object.", "give {component: value}."
        )
    components = entry_components(item, bounded) if "components" in item else components
    values: dict[str, float] = {}
    for key, value in components.items():
        if key in ("id", "name", "sae_repo"):
            continue
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InterpScoreError(
                f"{where}: component {shown(key)} is {value!r}, not a number.", "fix the value."
            )
        if not finite_number(value):
            raise InterpScoreError(
                f"{where}: component {shown(key)} is {value!r}, not a finite number.",
                "give a number, or null for a missing value.",
            )
        if key in bounded and not 0 <= value <= 1:
            raise InterpScoreError(
                f"{where}: component {shown(key)} is {value!r}, outside [0, 1].",
                "give components as fractions between 0 and 1.",
            )
        values[key] = float(value)
    if name is not None and not isinstance(name, str):
        name = json.dumps(name)
    return name, values


def cmd_score(args: argparse.Namespace) -> int:
    formula = get_formula(args.formula)
    data = _read_json(args.file)
    if isinstance(data, dict) and ("saes" in data or "schema" in data):
        check_report_shape(data, args.file, require=("saes",))
        data = data["saes"]
    items = data if isinstance(data, list) else [data]
    if not items:
        raise InterpScoreError(f"{args.file} holds no SAE to score.", "give at least one.")
    known = set(known_components()) | set(formula.weights)
    results = []
    for index, item in enumerate(items):
        name, components = _components_of(item, f"{args.file}[{index}]", known)
        unknown = sorted(set(components) - known)
        result = score(components, formula)
        results.append({"name": name or f"#{index + 1}", **result.to_dict(), "ignored": unknown})
    if args.json:
        print(json.dumps(results if isinstance(data, list) else results[0], indent=2))
        return 0
    for r in results:
        flag = f"  (partial: missing {', '.join(r['missing'])})" if r["partial"] else ""
        print(f"{one_line(r['name'])}: {r['interp_score']:.3f}{flag}")
    return 0


def _print_formula(formula: Formula) -> None:
    print(f"v{formula.version}  ({formula.source})  {formula.description}".rstrip())
    print(f"  InterpScore = {formula.expression()}")
    print(f"  l0_score target L0 = {formula.l0_target:g}")


def cmd_formula(args: argparse.Namespace) -> int:
    formulas = [get_formula(args.formula)] if args.formula else all_formulas()
    for formula in formulas:
        _print_formula(formula)
    if not args.formula:
        print("components a formula may use: " + ", ".join(known_components()))
    return 0


def _metric_names(names: list[str]) -> list[str]:
    """Registered metric names, or a one-line error naming the unknown one."""
    from interpscore.suites import REGISTRY

    known = {m.name for m in REGISTRY.metrics()}
    for name in names:
        if name not in known:
            raise InterpScoreError(
                f"--metric {shown(name)} is not a metric of any suite.",
                "see the README's Metrics section for the names.",
            )
    return names


def cmd_evidence(args: argparse.Namespace) -> int:
    from interpscore.results.evidence import evidence_markdown, evidence_rows, margin_rows

    reports = [load_report(path, require=("saes",)) for path in args.files]
    chosen = [get_formula(v) for v in args.formula] if args.formula else all_formulas()
    formulas = {f.version: dict(f.weights) for f in chosen}
    names = _metric_names(args.metric) if args.metric else None
    print(evidence_markdown(evidence_rows(reports, formulas, names)))
    print(evidence_markdown(margin_rows(reports, chosen)), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    source = Path(args.file)
    out = check_output(Path(args.out) if args.out else source.with_suffix(".md"), "file", (source,))
    report = _read_json(args.file)
    if isinstance(report, dict) and report.get("schema", SCHEMA) != SCHEMA:
        raise BaselineError(
            f"Report {args.file} has schema {report['schema']!r}; this version reads {SCHEMA!r}.",
            "regenerate it with this version of interpscore.",
        )
    check_report_shape(report, args.file, for_markdown=True)
    try:
        text = render_markdown(report)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # A family's own section reads its own keys; the shape check covers the shared ones.
        raise InterpScoreError(
            f"Report {args.file}: a section cannot be rendered from its data ({summarize(exc)}).",
            "regenerate the report with this version of interpscore.",
        ) from exc
    _write(out, text)
    print(out)
    return 0


def _write(path: Path, text: str) -> None:
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise InterpScoreError(
            f"Cannot write {path}: {exc.strerror or exc}.", "choose a path you can write."
        ) from exc


def cmd_gate(args: argparse.Namespace) -> int:
    tolerances = parse_tolerances(
        args.tolerance,
        args.tolerance_for,
        not args.ignore_intervals,
        ("--tolerance", "--tolerance-for"),
    )
    baseline = load_report(args.baseline, "Baseline")
    current = load_report(args.current)
    result = compare(baseline, current, tolerances)
    if result.unmatched:
        base_ids = [s["id"] for s in baseline["saes"]]
        now_ids = [s["id"] for s in current["saes"]]
        raise BaselineError(
            f"No SAE is in both baseline {args.baseline} ({some_ids(base_ids)}) and "
            f"{args.current} ({some_ids(now_ids)}): nothing was compared, so the gate fails.",
            "gate a report against a baseline of the same SAEs (they are matched by id).",
        )
    for note in result.notes:
        print(one_line(note))
    print("\n".join(result.table()) if result.regressions else "no regressions")
    return 0 if result.passed else 1


def cmd_export(args: argparse.Namespace) -> int:
    from interpscore.saebench.export import export_saebench

    out = check_output(Path(args.out), "folder")
    report = load_report(args.file, require=("saes",))  # the formula is not exported
    try:
        result = export_saebench(report, out, args.release)
    except InterpScoreError as exc:  # name the report the problem is in
        raise type(exc)(f"Exporting {args.file}: {exc.problem}", exc.fix) from exc
    for path in result.written:
        print(path)
    if not result.written:
        first = "; first: {1} of {0}: {2}".format(*result.skipped[0]) if result.skipped else ""
        raise InterpScoreError(
            f"{args.file} has no SAE with the values of any SAEBench eval{first}.",
            "export a report of a run that measured core, probing, tpp or absorption metrics.",
        )
    for sae, eval_type, why in result.skipped:
        print(one_line(f"not written: {eval_type} of {sae}: {why}"), file=sys.stderr)
    return 0


def cmd_import_saebench(args: argparse.Namespace) -> int:
    from interpscore.results.report import write_reports
    from interpscore.saebench.importer import expand, import_saebench

    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise InterpScoreError(
            f"Output {out} does not end in .json; its Markdown would take the same name.",
            "give a report path such as saebench/interpscore.json.",
        )
    paths = expand(args.files)
    for target in (out, out.with_suffix(".md"), out.with_suffix(".png")):
        check_output(target, "file", tuple(paths))
    formula = get_formula(args.formula)
    report, errors = import_saebench(paths, formula, sys.argv)
    if not report["saes"]:
        for line in errors[:-1]:
            print(f"interpscore: error: {one_line(line)}", file=sys.stderr)
        if not errors:
            raise InterpScoreError("No SAEBench file was read.", "pass result files.")
        raise InterpScoreError(f"No report written: {errors[-1]}")
    for line in errors:
        print(f"interpscore: error: {one_line(line)}", file=sys.stderr)
    try:
        json_path, md_path = write_reports(report, out)
    except OSError as exc:
        raise InterpScoreError(
            f"Cannot write {out}: {exc.strerror or exc}.", "choose a path you can write."
        ) from exc
    print(f"{len(report['saes'])} SAE(s) from {len(args.files)} path(s): {json_path}, {md_path}")
    return 1 if errors else 0


def cmd_merge(args: argparse.Namespace) -> int:
    from interpscore.cluster.merge import merge, write_merged

    merged = merge(args.dirs, sys.argv, allow_partial=args.allow_partial)
    json_path, md_path = write_merged(merged, Path(args.out))
    for note in merged.notes:
        print(one_line(note), file=sys.stderr)
    if merged.missing:
        print(f"partial: {len(merged.missing)} planned SAE(s) have no results", file=sys.stderr)
    print(
        f"{len(merged.report['saes'])} SAE(s) from {merged.units} result file(s): "
        f"{json_path}, {md_path}"
    )
    return 0


def _slurm_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InterpScoreError(
            f"--slurm-option {text!r} is not KEY=VALUE.",
            "give e.g. --slurm-option constraint=h100.",
        )
    return key.strip().replace("-", "_"), value


def _shard_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InterpScoreError(
            f"--only {text!r} is not a comma list of shard numbers.",
            "give e.g. --only 2 or --only 1,3.",
        ) from None


def cmd_launch(args: argparse.Namespace) -> int:
    from interpscore.cluster.launch import LaunchSettings, launch
    from interpscore.cluster.plan import parse_devices

    pytest_args = list(args.pytest_args)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]
    if not pytest_args:
        raise InterpScoreError(
            "No pytest arguments after `--`.",
            "give what each shard runs, e.g. -- benchmarks --sae=…",
        )
    if args.log_dir:
        log_dir = Path(args.log_dir)
    elif "://" in args.results_dir:
        raise InterpScoreError(
            f"--results-dir {args.results_dir} is a URL: the jobs' logs need a folder.",
            "give --log-dir on a file system the jobs can write.",
        )
    else:
        log_dir = Path(args.results_dir) / "logs"
    slurm: dict[str, object] = {}
    for name in ("partition", "account", "qos", "array_parallelism"):
        if getattr(args, name) is not None:
            slurm[name] = getattr(args, name)
    extra = dict(_slurm_option(text) for text in args.slurm_option)
    if extra:
        slurm["additional_parameters"] = extra
    results_dir = args.results_dir
    if "://" not in results_dir:
        results_dir = str(Path(results_dir).resolve())
    settings = LaunchSettings(
        pytest_args=tuple(pytest_args),
        shards=args.shards,
        results_dir=results_dir,
        log_dir=log_dir.resolve(),
        cwd=Path.cwd(),
        executor=args.executor,
        only=_shard_list(args.only) if args.only else (),
        force=args.force,
        timeout_min=args.timeout_min,
        gpus_per_shard=args.gpus_per_shard,
        cpus_per_shard=args.cpus_per_shard,
        mem_gb=args.mem_gb,
        devices=parse_devices(args.devices) if args.devices else (),
        slurm=slurm,
        setup=tuple(args.setup),
    )
    return launch(settings, Path(args.out), sys.argv, print, wait_for_jobs=not args.no_wait)


class _ArgumentError(InterpScoreError):
    """A command line argparse refuses."""


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one ``interpscore: error:`` line with the fix."""

    def error(self, message: str) -> NoReturn:
        raise _ArgumentError(f"{self.prog}: {message}.", f"see `{self.prog} --help`.")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="interpscore", description="InterpScore tools.")
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
    p = sub.add_parser(
        "evidence",
        help="Which components separate trained SAEs from every control, per formula.",
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="REPORT",
        help="reports of the same SAEs (a later one adds controls an earlier one skipped)",
    )
    p.add_argument(
        "--formula",
        action="append",
        default=None,
        help="a formula column (version or file; repeatable; default: built-in and shipped)",
    )
    p.add_argument(
        "--metric",
        action="append",
        default=None,
        metavar="NAME",
        help="rows for these metrics instead of the components (repeatable)",
    )
    p.set_defaults(func=cmd_evidence)
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
    p = sub.add_parser("merge", help="One report from results directories (--results-dir).")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="results directories or URLs")
    p.add_argument("-o", "--out", required=True, help="report path (JSON; .md beside it)")
    p.add_argument(
        "--allow-partial", action="store_true", help="merge even when planned SAEs are missing"
    )
    p.set_defaults(func=cmd_merge)
    add_verify_parser(sub)
    from interpscore.hub.command import add_hub_parsers

    add_hub_parsers(sub)
    from interpscore.site.command import add_site_parser

    add_site_parser(sub)
    _add_launch(sub)
    from interpscore.evaluation.cache_command import add_cache_parser

    add_cache_parser(sub)
    return parser


def _add_launch(sub: Any) -> None:
    p = sub.add_parser(
        "launch",
        help="Run the shards as submitit jobs (Slurm, or local), wait and merge.",
        description="Everything after `--` is what each shard runs with pytest; the launcher "
        "adds --shard I/N and --results-dir.",
    )
    p.add_argument("--shards", type=int, required=True, metavar="N", help="number of shards")
    p.add_argument("--results-dir", required=True, metavar="DIR", help="shared results folder")
    p.add_argument("--only", default=None, metavar="LIST", help="submit only these shards (1,3)")
    p.add_argument("--force", action="store_true", help="redo SAEs already complete")
    p.add_argument("--executor", default="auto", choices=["auto", "slurm", "local"])
    p.add_argument("--log-dir", default=None, help="job logs (default: RESULTS_DIR/logs)")
    p.add_argument("--timeout-min", type=int, default=24 * 60, help="per shard (default 1440)")
    p.add_argument("--gpus-per-shard", type=int, default=0, metavar="N")
    p.add_argument("--cpus-per-shard", type=int, default=None, metavar="N")
    p.add_argument("--mem-gb", type=int, default=None, metavar="N")
    p.add_argument("--devices", default=None, help="local executor: shard i gets device i")
    p.add_argument("--partition", default=None, help="Slurm partition")
    p.add_argument("--account", default=None, help="Slurm account")
    p.add_argument("--qos", default=None, help="Slurm QOS")
    p.add_argument("--array-parallelism", type=int, default=None, metavar="N")
    p.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--setup",
        action="append",
        default=[],
        metavar="CMD",
        help="shell line run before each job (e.g. . .venv/bin/activate)",
    )
    p.add_argument("--no-wait", action="store_true", help="submit and return")
    p.add_argument("-o", "--out", default="reports/runs/interpscore.json", help="merged report")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest arguments")
    p.set_defaults(func=cmd_launch)


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user's error is one ``interpscore: error:`` line and status 2."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except InterpScoreError as exc:
        print(f"interpscore: error: {one_line(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
