"""``interpscore verify REPORT``: re-run the evaluation a report names and check it.

Thin glue: read the report, choose SAEs and names, re-run (or read ``--rerun``), compare
(:mod:`interpscore.verify.compare`), print the table. Exit 0 when every value agrees, 1
when one does not, 2 on a user error (one line).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from interpscore.errors import BaselineError, InterpScoreError
from interpscore.results.files import check_output
from interpscore.results.gate import Tolerances, load_report, parse_tolerances, tolerance_names
from interpscore.verify.compare import (
    Row,
    compare_entries,
    consistency_row,
    names_to_verify,
    table,
)
from interpscore.verify.rerun import (
    REPORT_NAME,
    Rerun,
    check_dataset,
    check_rerun,
    dump_command,
    execute,
    pytest_command,
    report_formula,
    run_block,
    same_settings,
    select_saes,
)

OPTIONS = ("--tolerance", "--tolerance-for")


def verify_tolerances(default: str, items: list[str], mode: str) -> Tolerances:
    """``--tolerance`` and ``--tolerance-for NAME=X``: the gate's parsing for the InterpScore
    and the components; with ``--metrics all`` any registered metric may be named too."""
    compared, known = tolerance_names()
    tolerances = parse_tolerances(default, items, True, OPTIONS, extra=known)
    metrics = [name for name in tolerances.per_name if name not in compared]
    if metrics and mode != "all":
        raise BaselineError(
            f"--tolerance-for names {metrics[0]}, which is verified only with --metrics all.",
            "add --metrics all, or name interp_score or a component.",
        )
    return tolerances


#: What a re-run writes into its folder: the report, the formula file (when the formula is
#: not built in) and the pytest log.
KEPT_FILES = (REPORT_NAME, "formula.json", "verify.log")


def keep_folder(keep: str, inputs: tuple[Path, ...]) -> Path:
    """``--keep DIR``, refused before anything runs when it cannot be written, when a file
    the re-run writes there is an input, or when it already holds a report (which a failed
    re-run would leave to pass for this one)."""
    folder = check_output(Path(keep), "folder", inputs)
    for name in KEPT_FILES:
        check_output(folder / name, "file", inputs)
    if (folder / REPORT_NAME).exists():
        raise InterpScoreError(
            f"--keep folder {folder} already holds a {REPORT_NAME}.",
            f"give a new or empty folder, or remove {folder / REPORT_NAME} first.",
        )
    return folder


def _rerun(
    args: argparse.Namespace,
    report: dict[str, Any],
    entries: list[dict[str, Any]],
    names: list[str],
) -> dict[str, Any]:
    """Evaluate again (in ``--keep DIR`` or a temporary folder) and read the result."""
    keep = keep_folder(args.keep, (Path(args.report),)) if args.keep else None
    check_dataset(report["run"])
    with tempfile.TemporaryDirectory(prefix="interpscore-verify-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / REPORT_NAME
        command = pytest_command(report, entries, names, out, args.device)
        log = folder / "verify.log"
        print(
            f"re-running {len(entries)} SAE(s) with pytest (log: "
            f"{log if keep else 'kept only with --keep'})",
            file=sys.stderr,
        )
        started = time.monotonic()
        rerun: Rerun = execute(command, out, log)
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"\ncommand: {dump_command(command)}\n")
        print(f"re-run took {time.monotonic() - started:.0f} s", file=sys.stderr)
        return check_rerun(rerun, entries, log if keep else None)


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-run and compare; the table and the exit status say whether the report holds."""
    tolerances = verify_tolerances(args.tolerance, args.tolerance_for, args.metrics)
    if args.keep and args.rerun:
        raise _conflict()
    report = load_report(args.report)
    run_block(report, args.report)
    entries = select_saes(report, args.sae, args.report)
    formula = report_formula(report)  # before the re-run: an unusable formula stops here
    weights = list((report.get("formula") or {}).get("weights") or {})
    names = list(
        dict.fromkeys(n for e in entries for n in names_to_verify(e, weights, args.metrics))
    )
    if args.rerun:
        rerun = load_report(args.rerun, "Re-run report")
        same_settings(report, rerun, args.rerun)
    else:
        rerun = _rerun(args, report, entries, names)
    by_id = {e["id"]: e for e in rerun.get("saes") or []}
    rows: list[Row] = []
    for entry in entries:
        wanted = names_to_verify(entry, weights, args.metrics)
        rows.append(consistency_row(entry, formula))
        rows += compare_entries(entry, by_id.get(entry["id"]), wanted, tolerances)
    print("\n".join(table(rows)))
    failed = [r for r in rows if not r.agrees]
    print(f"{len(failed)} of {len(rows)} value(s) disagree" if failed else f"all {len(rows)} agree")
    return 1 if failed else 0


def _conflict() -> InterpScoreError:
    return InterpScoreError(
        "--keep and --rerun were both given: --rerun evaluates nothing, so there is nothing "
        "to keep.",
        "give --keep DIR to re-run and keep it, then --rerun DIR/interpscore.json to compare.",
    )


def add_verify_parser(sub: Any) -> None:
    """The ``verify`` subcommand (called from :func:`interpscore.cli.build_parser`)."""
    p = sub.add_parser(
        "verify",
        help="Re-run the evaluation a report names and check its values; exit 1 if any disagrees.",
        description="Re-evaluates each SAE with the report's run settings (pytest on the "
        "installed benchmarks, no controls) and checks each value against the report's 95% "
        "interval or the tolerance.",
    )
    p.add_argument("report", help="an interpscore.json with a run block")
    p.add_argument(
        "--sae",
        action="append",
        default=[],
        metavar="ID",
        help="SAE id to verify (repeatable; default: every SAE that is not a control)",
    )
    p.add_argument("--tolerance", default="0", help="allowed difference for every value")
    p.add_argument("--tolerance-for", action="append", default=[], metavar="NAME=X")
    p.add_argument(
        "--metrics",
        default="components",
        choices=["components", "all"],
        help="the formula's components and interp_score (default), or every metric",
    )
    p.add_argument("--device", default=None, help="re-run device (default: the report's)")
    p.add_argument("--keep", default=None, metavar="DIR", help="keep the re-run report here")
    p.add_argument(
        "--rerun",
        default=None,
        metavar="REPORT",
        help="compare this earlier re-run (from --keep) instead of evaluating again",
    )
    p.set_defaults(func=cmd_verify)
