"""Re-running the evaluation a report names: the real ``pytest`` on the installed benchmarks.

The re-run is ``python -m pytest --pyargs interpscore.benchmarks`` in a subprocess, with
each SAE as ``--sae=ID=SPEC`` from its entry's ``sae_repo``, the report's settings turned
back into options (:func:`interpscore.verify.run_options.run_options`), ``-k`` selecting the
families of the verified metrics, and no controls: controls are evaluated beside an SAE
and do not change its own values (tests/test_verify.py checks this). Before anything runs,
what can be checked cheaply is checked: the run block, the SAE ids and specs, the dataset.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interpscore.errors import InterpScoreError
from interpscore.formula import BUILTIN, Formula
from interpscore.jsonio import shown
from interpscore.results.files import dumps, write_atomic
from interpscore.results.gate import load_report, some_ids
from interpscore.results.records import is_model_control
from interpscore.results.report_shape import SCORE
from interpscore.suites import REGISTRY
from interpscore.verify.run_options import default_options, run_options

BENCHMARKS = "interpscore.benchmarks"
#: Options the re-run sets itself: the device is the verifier's, controls are left out.
OWN_OPTIONS = ("--device", "--no-controls", "--model-controls", "--model-control-metrics")
NO_CONTROLS = ("--no-controls", "--model-controls=none")
REPORT_NAME = "interpscore.json"
#: Run-block fields verify reads itself (not only through :func:`run_options`): text only.
TEXT_FIELDS = ("dataset", "device")


def run_block(report: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The report's run block, or a one-line error: without it nothing can be re-run."""
    run = report.get("run")
    if not isinstance(run, dict) or not run:
        raise InterpScoreError(
            f"Report {path} has no run block: the settings it was made with are unknown.",
            "verify a report written by `pytest benchmarks` (or interpscore merge), which "
            "records them.",
        )
    if "imported_from" in run:
        raise InterpScoreError(
            f"Report {path} was imported from {shown(run['imported_from'])}: verify re-runs "
            "only reports made by `pytest benchmarks`.",
            "verify them by re-running SAEBench (then interpscore import-saebench its new "
            "result files).",
        )
    for key in TEXT_FIELDS:
        value = run.get(key)
        if key in run and (not isinstance(value, str) or not value.strip()):
            raise InterpScoreError(
                f"Report {path}: the run block's {key} is {value!r}, not a name.",
                "regenerate the report with `pytest benchmarks`, which records it as text.",
            )
    return run


def select_saes(report: dict[str, Any], ids: list[str], path: str | Path) -> list[dict[str, Any]]:
    """The entries to verify: those named (in the order given), or every SAE that is not
    another SAE's control."""
    entries = {e["id"]: e for e in report.get("saes") or []}
    if not ids:
        chosen = [e for e in entries.values() if not is_model_control(e)]
        if not chosen:
            raise InterpScoreError(
                f"Report {path} has no SAE that is not a control.", "name one with --sae ID."
            )
        return chosen
    unknown = [i for i in ids if i not in entries]
    if unknown:
        raise InterpScoreError(
            f"Report {path} has no SAE {', '.join(map(repr, unknown))}.",
            f"use --sae with one of its ids: {some_ids(list(entries), limit=10)}.",
        )
    return [entries[i] for i in dict.fromkeys(ids)]


def sae_option(entry: dict[str, Any]) -> str:
    """``--sae=ID=SPEC`` from the entry's ``sae_repo``; the spec must resolve here."""
    from interpscore.subjects.loading import parse_sae_spec

    sid, repo = entry["id"], entry.get("sae_repo")
    if not isinstance(repo, str) or not repo:
        raise InterpScoreError(
            f"SAE {sid} has no sae_repo in the report: what to load is unknown.",
            "verify a report written by `pytest benchmarks`, which records each SAE's spec.",
        )
    spec = f"{sid}={repo}"
    try:
        parse_sae_spec(spec)
    except InterpScoreError as exc:
        raise InterpScoreError(
            f"SAE {sid}: its spec {repo!r} does not resolve here ({exc.problem})",
            f"{exc.fix or 'make the SAE available'} — or verify where {repo} is available.",
        ) from exc
    return f"--sae={spec}"


def check_dataset(run: dict[str, Any]) -> None:
    """Read the first document of the run's dataset: an unreachable one stops here."""
    from interpscore.subjects.data import BUNDLED, iter_texts

    dataset = run.get("dataset", BUNDLED)
    try:
        next(iter(iter_texts(dataset)))
    except StopIteration:
        raise InterpScoreError(
            f"The run block's dataset {dataset!r} holds no text here.",
            "verify where the report's dataset is available.",
        ) from None
    except InterpScoreError as exc:
        raise InterpScoreError(
            f"The run block's dataset {dataset!r} cannot be read here ({exc.problem})",
            "verify on a machine that reaches it (the same path, or the hub); "
            f"{exc.fix or ''}".rstrip("; "),
        ) from exc


def formula_file(formula: dict[str, Any]) -> dict[str, Any] | None:
    """The formula as a formula file's content, or None when it is a built-in version
    (the re-run then names the version)."""
    version = formula.get("version")
    builtin = BUILTIN.get(version) if isinstance(version, str) else None
    if builtin is not None and dict(builtin.weights) == formula.get("weights"):
        return None
    if builtin is not None:
        raise InterpScoreError(
            f"The report's formula v{version} has other weights than the built-in v{version}.",
            "verify with the version of interpscore that wrote the report.",
        )
    return {
        key: formula[key]
        for key in ("version", "weights", "l0_target", "description")
        if key in formula
    }


def report_formula(report: dict[str, Any]) -> Formula:
    """The formula the report's ``formula`` block describes (a built-in version, or one
    built from the block as :func:`formula_file` writes it for the re-run)."""
    block = report.get("formula") or {}
    content = formula_file(block)
    if content is None:
        return BUILTIN[block["version"]]
    return Formula(
        version=content["version"],
        weights=content["weights"],
        **{k: content[k] for k in ("l0_target", "description") if content.get(k) is not None},
    )


def families(names: list[str]) -> list[str]:
    """The per-SAE families whose benchmark tests measure ``names`` (unknown names have
    none: the re-run will not have them, and they fail)."""
    found = {REGISTRY.suite_of(n).name for n in names if n != SCORE and n in REGISTRY}
    return [s.name for s in REGISTRY.suites() if s.name in found and s.per_sae]


def pytest_command(
    report: dict[str, Any],
    entries: list[dict[str, Any]],
    names: list[str],
    out: Path,
    device: str | None,
) -> list[str]:
    """The re-run's command line (formula file, if any, written beside ``out``)."""
    run = report["run"]
    selected = families(names)
    if not selected:
        raise InterpScoreError(
            f"No registered family measures {', '.join(names)}.",
            "verify a report of this version of interpscore's metrics.",
        )
    content = formula_file(report.get("formula") or {})
    if content is None:
        formula = f"--formula={report['formula']['version']}"
    else:
        path = out.with_name("formula.json")
        write_atomic(path, dumps(content))
        formula = f"--formula={path}"
    return [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        BENCHMARKS,
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-q",
        "--benchmark-disable",
        *(sae_option(e) for e in entries),
        *run_options(run, skip=OWN_OPTIONS),
        formula,
        f"--device={device or run.get('device') or 'cpu'}",
        *NO_CONTROLS,
        "--no-cache",  # a verification recomputes, never reads stored values
        "-k",
        " or ".join(f"test_{name}" for name in selected),
        f"--interpscore-json={out}",
    ]


@dataclass(frozen=True)
class Rerun:
    """A finished re-run: its report (None when none was written) and its output."""

    report: dict[str, Any] | None
    returncode: int
    output: str


def execute(command: list[str], out: Path, log: Path) -> Rerun:
    """Run the command, its output to ``log``; read the report it wrote."""
    with log.open("w", encoding="utf-8") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    output = log.read_text(encoding="utf-8", errors="replace")
    report = load_report(out, "Re-run report") if out.is_file() else None
    return Rerun(report, done.returncode, output)


#: How pytest states a refused command line: argparse's ``PROG: error: …`` after an
#: ``ERROR: usage:`` line, or ``ERROR: …`` for a plugin's UsageError.
_USAGE = (
    re.compile(r"^\S.*: error: (.+)$", re.MULTILINE),
    re.compile(r"^ERROR: (?!usage:)(.+)$", re.MULTILINE),
)


def _as_error(message: str, context: str) -> InterpScoreError:
    """``PROBLEM Fix: FIX`` (how an InterpScoreError prints) as an error with ``context``."""
    problem, _, fix = message.partition(" Fix: ")
    return InterpScoreError(f"{context}: {problem.strip()}", fix.strip() or None)


def _error_names() -> set[str]:
    names, todo = set(), [InterpScoreError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def check_rerun(rerun: Rerun, entries: list[dict[str, Any]], log: Path | None) -> dict[str, Any]:
    """The re-run's report, or a one-line error when it could not evaluate at all: pytest
    refused the options, or an SAE's every test failed on a user error (a model that cannot
    be loaded here, say). Failures of single metrics are left to the comparison."""
    where = f"see {log}" if log else "add --keep DIR to keep its log"
    if rerun.report is None:
        for pattern in _USAGE:
            usage = pattern.findall(rerun.output)
            if usage:
                raise _as_error(usage[-1], "The re-run refused its options")
        last = [line for line in rerun.output.splitlines() if line.strip()][-1:] or ["none"]
        raise InterpScoreError(
            f"The re-run wrote no report (pytest exit {rerun.returncode}; last line: "
            f"{last[0].strip()}).",
            where + ".",
        )
    by_id = {e["id"]: e for e in rerun.report.get("saes") or []}
    user_errors = _error_names()
    for entry in entries:
        new = by_id.get(entry["id"])
        if new is None or any(
            (m or {}).get("value") is not None for m in (new.get("metrics") or {}).values()
        ):
            continue
        for error in new.get("errors") or []:
            kind, sep, message = str(error).partition(": ")
            if sep and kind in user_errors:
                raise _as_error(message, f"The re-run of {entry['id']} could not evaluate it")
    return rerun.report


def same_settings(report: dict[str, Any], rerun: dict[str, Any], path: str | Path) -> None:
    """Refuse a re-run report made with other settings than the report (``--rerun``)."""
    mine = run_options(report["run"], skip=OWN_OPTIONS)
    theirs = run_options(run_block(rerun, path), skip=OWN_OPTIONS)
    versions = (
        (report.get("formula") or {}).get("version"),
        (rerun.get("formula") or {}).get("version"),
    )
    defaults = default_options(OWN_OPTIONS)
    differ = sorted(
        option
        for option in set(mine) ^ set(theirs)
        if not _default_where_absent(option, mine, theirs, defaults)
    )
    if versions[0] != versions[1]:
        differ.insert(0, f"formula v{versions[0]} vs v{versions[1]}")
    if differ:
        raise InterpScoreError(
            f"Re-run {path} was made with other settings than the report ({differ[0]}"
            f"{f' and {len(differ) - 1} more' if len(differ) > 1 else ''}).",
            "re-run with interpscore verify (without --rerun), or pass the re-run of this report.",
        )


def _default_where_absent(
    option: str, mine: list[str], theirs: list[str], defaults: set[str]
) -> bool:
    """An option one block has at its default while the other lacks the key (a report
    written before the setting existed): the two runs agree on it."""
    flag = option.partition("=")[0]
    other = theirs if option in mine else mine
    absent = all(o.partition("=")[0] != flag for o in other)
    return absent and option in defaults


def dump_command(command: list[str]) -> str:
    """The command as one line for the log (JSON quoting keeps spaces visible)."""
    return json.dumps(command)
