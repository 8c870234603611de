"""Many machines: ``--shard I/N`` (a cost-balanced share of the SAEs), ``--results-dir``
(per-SAE results files, resumed on a rerun) and ``--force``; the options of
:mod:`.scheduling` (``--devices``) are declared here too. It wires; the logic is in
:mod:`interpscore.cluster`.

Result files are written by the process that ran the tests (an xdist worker, or the only
process), as soon as the last test of an SAE has finished; a worker takes whole groups, so
it runs every test of its SAEs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from interpscore.cluster.plan import Shard, bundles, parse_devices, parse_shard, peek
from interpscore.cluster.store import (
    ResultsDir,
    StoreError,
    UnitResult,
    first_difference,
    resume_reason,
    run_unit,
    sae_identity,
    sae_unit,
)
from interpscore.errors import InterpScoreError
from interpscore.pytest_plugin.options import GROUP, SETTINGS, is_worker, shard_plan, specs
from interpscore.pytest_plugin.reporting import run_block
from interpscore.pytest_plugin.scheduling import distributing, is_run_level, sae_of
from interpscore.results.collect import outcome_message, records_of
from interpscore.results.report import library_versions
from interpscore.settings import checked

WRITER = pytest.StashKey["ResultsWriter"]()
WORKER_KEY = "interpscore_results"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(*GROUP)
    group.addoption(
        "--shard",
        default=None,
        type=checked(parse_shard),
        metavar="I/N",
        help="Evaluate shard I of N: a deterministic share of the SAEs balanced by expected "
        "cost (each with its model-level controls); run-level families run in shard 1.",
    )
    group.addoption(
        "--results-dir",
        default=None,
        metavar="DIR",
        help="Write each SAE's results to DIR (a shared folder or an fsspec URL) as soon as "
        "its tests finish; a rerun skips SAEs whose results there are complete, passed and "
        "made with the same settings. `interpscore merge DIR -o FILE` builds the report.",
    )
    group.addoption(
        "--force",
        action="store_true",
        default=False,
        help="With --results-dir: evaluate every SAE again, even those already complete.",
    )
    group.addoption(
        "--devices",
        default=None,
        type=checked(parse_devices),
        metavar="LIST",
        help="One pytest-xdist worker per device (a comma list of CUDA ids, or all): worker i "
        "sees only device i (CUDA_VISIBLE_DEVICES), so --device cuda is its own GPU.",
    )


def fingerprint_settings(config: pytest.Config) -> dict[str, Any]:
    """What a result file must have been made with to count: the run's settings and every
    family's, the formula's values and the library versions."""
    formula = config.stash[SETTINGS].formula
    return {
        "run": run_block(config),
        "formula": {
            "version": formula.version,
            "weights": dict(formula.weights),
            "l0_target": formula.l0_target,
        },
        "libraries": library_versions(),
    }


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """With ``--results-dir``: check it, record the plan, and start the results writer
    (after the run's settings are parsed and xdist's dispatch is decided)."""
    if config.option.force and not config.option.results_dir:
        raise pytest.UsageError("--force only applies with --results-dir. Fix: add --results-dir.")
    if not config.option.results_dir:
        return
    if distributing(config) and config.option.dist != "loadgroup":
        raise pytest.UsageError(
            f"--results-dir needs every SAE's tests on one worker; --dist {config.option.dist} "
            "spreads them. Fix: use --dist loadgroup (the default with -n or --devices)."
        )
    store = ResultsDir(_resolved(config, config.option.results_dir))
    try:
        store.check()
        settings = fingerprint_settings(config)
        if not is_worker(config):
            _check_plans(store, settings, config.option.force)
            plan = shard_plan(config)
            store.write_plan(plan.to_dict(), settings)
    except InterpScoreError as exc:
        raise pytest.UsageError(f"--results-dir: {exc}") from exc
    if distributing(config):
        return  # the workers run the tests and write the results
    writer = ResultsWriter(config, store, settings)
    config.stash[WRITER] = writer
    config.pluginmanager.register(writer, "interpscore-results")


def _resolved(config: pytest.Config, root: str) -> str:
    """A local results directory relative to where pytest was started; URLs as given."""
    if "://" in root or Path(root).is_absolute():
        return root
    return str(Path(config.invocation_params.dir) / root)


def _check_plans(store: ResultsDir, settings: dict[str, Any], force: bool) -> None:
    for path, plan in store.plans():
        difference = first_difference(plan["settings"], settings)
        if difference and not force:
            raise StoreError(
                f"{store} holds results made with other settings ({difference}; see {path}).",
                "use another --results-dir, or pass --force to redo this shard's SAEs there.",
            )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """After ``-k``/``-m``: run-level tests only in shard 1, an empty shard's placeholder
    tests out, and with ``--results-dir`` the SAEs whose results are already complete."""
    shard: Shard | None = config.option.shard
    drop: list[pytest.Item] = []
    for item in items:
        if "sae_id" in item.fixturenames and sae_of(item) is None:
            drop.append(item)  # the placeholder of an empty parametrization: no SAE here
        elif is_run_level(item) and shard is not None and shard.index != 1:
            drop.append(item)
    writer = config.stash.get(WRITER, None)
    if writer is not None:
        dropped_so_far = set(drop)
        drop += writer.select([item for item in items if item not in dropped_so_far])
    if drop:
        dropped = set(drop)
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if item not in dropped]


def needed_specs(config: pytest.Config) -> list[Any]:
    """The SAEs this process evaluates: the shard's, less those whose results are complete
    (so that they are neither loaded nor put in a language-model pass)."""
    writer = config.stash.get(WRITER, None)
    done = writer.complete_saes if writer is not None else set()
    return [spec for spec in specs(config) if spec.id not in done]


def selection_key(item: pytest.Item) -> str:
    """A test's name without its SAE: the same for every SAE and on every machine."""
    params = dict(getattr(getattr(item, "callspec", None), "params", {}))
    params.pop("sae_id", None)
    inner = ",".join(f"{k}={params[k]}" for k in sorted(params))
    name = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
    return f"{name}[{inner}]" if inner else name


class ResultsWriter:
    """Writes each unit's results file once its last selected test has finished, and decides
    which units a rerun skips."""

    def __init__(self, config: pytest.Config, store: ResultsDir, settings: dict[str, Any]):
        self.config = config
        self.store = store
        self.settings = settings
        self.formula = config.stash[SETTINGS].formula.to_dict()
        shard = config.option.shard
        self.shard = str(shard) if shard is not None else None
        self.plan = shard_plan(config).plan_id
        self.unit_of: dict[str, str] = {}
        self.key_of: dict[str, str] = {}
        self.pending: dict[str, set[str]] = {}
        self.tests: dict[str, list[str]] = {}
        self.identity: dict[str, dict[str, Any] | None] = {}
        self.outcomes: dict[str, dict[str, dict[str, Any]]] = {}
        self.seconds: dict[str, float] = {}
        self.complete_saes: set[str] = set()
        self.summary: dict[str, Any] = {"written": [], "skipped": [], "rerun": {}}

    # Which units run ------------------------------------------------------------------

    def select(self, items: list[pytest.Item]) -> list[pytest.Item]:
        """Plan every unit of the selected items; returns the items of complete units."""
        by_unit: dict[str, list[pytest.Item]] = {}
        for item in items:
            sae_id = sae_of(item)
            if sae_id is not None:
                by_unit.setdefault(sae_unit(sae_id), []).append(item)
            elif is_run_level(item):
                by_unit.setdefault(run_unit(item.path.name), []).append(item)
        by_id = {spec.id: spec for spec in specs(self.config)}
        reasons: dict[str, str | None] = {}
        for unit, unit_items in by_unit.items():
            self.tests[unit] = sorted(selection_key(item) for item in unit_items)
            sae_id = unit.partition(":")[2] if unit.startswith("sae:") else None
            self.identity[unit] = sae_identity(by_id[sae_id]) if sae_id in by_id else None
            reasons[unit] = self._reason(unit)
        self._whole_bundles(reasons, by_id)
        skipped: list[pytest.Item] = []
        for unit, unit_items in by_unit.items():
            if reasons[unit] is None:
                skipped += unit_items
                self.summary["skipped"].append(unit)
                if unit.startswith("sae:"):
                    self.complete_saes.add(unit.partition(":")[2])
                continue
            if reasons[unit] != "no results yet":
                self.summary["rerun"][unit] = reasons[unit]
            self.pending[unit] = {item.nodeid for item in unit_items}
            self.unit_of.update(dict.fromkeys(self.pending[unit], unit))
            self.key_of.update({item.nodeid: selection_key(item) for item in unit_items})
            self.outcomes[unit] = {}
            self.seconds[unit] = 0.0
        self._publish()
        return skipped

    def _reason(self, unit: str) -> str | None:
        if self.config.option.force:
            return "--force"
        try:
            existing = self.store.read_unit(unit)
        except StoreError as exc:
            return f"unreadable ({exc.problem})"
        return resume_reason(existing, self.settings, self.tests[unit], self.identity[unit])

    def _whole_bundles(self, reasons: dict[str, str | None], by_id: dict[str, Any]) -> None:
        """An SAE is compared with its model-level controls: when one of them runs, all do."""
        model_override = self.config.stash[SETTINGS].model_override
        facts = {sae_id: peek(spec, model_override) for sae_id, spec in by_id.items()}
        for bundle in bundles(by_id, facts):
            units = [sae_unit(i) for i in bundle if sae_unit(i) in reasons]
            running = [u for u in units if reasons[u] is not None]
            for unit in units:
                if running and reasons[unit] is None:
                    other = running[0].partition(":")[2]
                    reasons[unit] = f"runs with {other}, which is not complete"

    # Recording ------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        unit = self.unit_of.get(report.nodeid)
        if unit is None:
            return
        entry = self.outcomes[unit].setdefault(
            report.nodeid, {"test": self.key_of[report.nodeid], "records": [], "phases": []}
        )
        records = records_of(report)
        phase: dict[str, Any] = {"when": report.when, "outcome": report.outcome, "n": len(records)}
        if report.failed or report.skipped:
            phase["message"] = outcome_message(report)
        if records[: len(entry["records"])] == entry["records"]:
            entry["records"] = records
        else:  # records are only ever appended; should that change, keep each phase's own
            phase["records"] = records
        entry["phases"].append(phase)
        self.seconds[unit] += report.duration
        if report.when != "teardown":
            return
        self.pending[unit].discard(report.nodeid)
        if not self.pending[unit]:
            self._write(unit)

    def _write(self, unit: str) -> None:
        outcomes = list(self.outcomes[unit].values())
        failed = any(p["outcome"] == "failed" for entry in outcomes for p in entry["phases"])
        result = UnitResult(
            unit=unit,
            settings=self.settings,
            formula=self.formula,
            tests=self.tests[unit],
            identity=self.identity[unit],
            status="failed" if failed else "ok",
            outcomes=outcomes,
            shard=self.shard,
            plan=self.plan,
            worker={
                "worker": getattr(self.config, "workerinput", {}).get("workerid", "main"),
                "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            },
            seconds=self.seconds[unit],
        )
        try:
            self.summary["written"].append(self.store.write_unit(result))
        except StoreError as exc:
            self.config.get_terminal_writer().line(f"InterpScore: {exc}", red=True)
            self.summary.setdefault("errors", []).append(str(exc))
        self._publish()

    def _publish(self) -> None:
        """Keep the summary where an xdist controller reads it (sent when the worker ends)."""
        if is_worker(self.config):
            self.config.workeroutput[WORKER_KEY] = self.summary  # type: ignore[attr-defined]


# Summary on the controller (or the single process) --------------------------------------

SUMMARY = pytest.StashKey[dict[str, Any]]()


def _summary(config: pytest.Config) -> dict[str, Any]:
    if SUMMARY not in config.stash:
        config.stash[SUMMARY] = {"written": [], "skipped": [], "rerun": {}, "errors": []}
    return config.stash[SUMMARY]


def _absorb(config: pytest.Config, part: dict[str, Any]) -> None:
    total = _summary(config)
    for key in ("written", "skipped", "errors"):
        total[key] += [x for x in part.get(key, []) if x not in total[key]]
    total["rerun"].update(part.get("rerun", {}))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """An xdist worker ended: take what it wrote and skipped."""
    part = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if part:
        _absorb(node.config, part)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    writer = config.stash.get(WRITER, None)
    if writer is not None and not is_worker(config):
        _absorb(config, writer.summary)
    summary = config.stash.get(SUMMARY, None)
    if summary and summary["errors"] and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # results were lost: say so
    if session.exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED:
        return
    if summary and summary["skipped"]:
        session.exitstatus = pytest.ExitCode.OK  # every selected SAE was already complete
    elif config.option.shard is not None and not specs(config):
        # More shards than SAE bundles: having nothing to do is this shard's right outcome.
        session.exitstatus = pytest.ExitCode.OK
        config.get_terminal_writer().line(
            f"InterpScore: shard {config.option.shard} holds no SAE (more shards than SAEs)."
        )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    summary = config.stash.get(SUMMARY, None)
    if not summary or is_worker(config):
        return
    write = terminalreporter.write_line
    terminalreporter.write_sep("-", f"InterpScore results in {config.option.results_dir}")
    write(
        f"{len(summary['written'])} result file(s) written; {len(summary['skipped'])} unit(s) "
        "already complete, not run again (--force reruns them)"
    )
    reruns = sorted(summary["rerun"].items())
    for unit, reason in reruns[:5]:
        write(f"ran again: {unit} ({reason})")
    if len(reruns) > 5:
        write(f"… and {len(reruns) - 5} more")
    for error in summary["errors"]:
        write(f"not written: {error}", red=True)
