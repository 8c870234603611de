"""Session reporting: collect records, build and write the reports, run the gate."""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interpscore.errors import InterpScoreError
from interpscore.pytest_plugin.options import SETTINGS, SUITE_SETTINGS, is_worker
from interpscore.results.collect import ResultCollector
from interpscore.results.files import check_output
from interpscore.results.gate import GateResult, Tolerances, load_report
from interpscore.results.gate import compare as compare_to_baseline
from interpscore.results.markdown import summary_lines
from interpscore.results.report import build_report, write_reports
from interpscore.results.timing import PhaseTimer
from interpscore.suites import REGISTRY


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if is_worker(config):
        return
    baseline, tolerances = None, None
    if config.option.interpscore_baseline:
        try:
            baseline = load_report(config.option.interpscore_baseline, "Baseline")
        except InterpScoreError as exc:
            raise pytest.UsageError(str(exc)) from exc
        tolerances = Tolerances(
            config.option.gate_tolerance,
            dict(config.option.gate_tolerance_for),
            not config.option.gate_ignore_intervals,
        )
    try:
        check_output(report_path(config), "file")
    except InterpScoreError as exc:
        raise pytest.UsageError(f"--interpscore-json: {exc}") from exc
    config.pluginmanager.register(
        ReportingSession(config, baseline, tolerances), "interpscore-reporting"
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def report_path(config: pytest.Config) -> Path:
    """Where the report goes: ``--interpscore-json``, relative to the invocation folder."""
    path = Path(config.option.interpscore_json)
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path


def interrupted_path(path: Path) -> Path:
    """Where an interrupted run's report goes, beside the complete one it must not replace."""
    return path.with_name(f"{path.stem}.interrupted{path.suffix}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, InterpScoreError):
        report.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"
    return report


def run_block(config: pytest.Config) -> dict[str, Any]:
    """The run's settings and every family's, as the report records them."""
    suite_settings = config.stash[SUITE_SETTINGS]
    block = config.stash[SETTINGS].to_dict()
    for suite in REGISTRY.suites():
        recorded = suite.settings_dict(suite_settings.get(suite.name))
        if recorded:
            block[suite.name] = recorded
    return block


class ReportingSession:
    """Controller-side plugin object: collects records and writes the reports."""

    def __init__(
        self, config: pytest.Config, baseline: dict[str, Any] | None, tolerances: Tolerances | None
    ) -> None:
        self.config = config
        self.collector = ResultCollector()
        self.written: tuple[Path, Path] | None = None
        self.baseline = baseline
        self.tolerances = tolerances
        self.gate: GateResult | None = None
        self._previous_sigterm: Any = None
        self.timer = PhaseTimer()

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Let SIGTERM (a scheduler's pre-emption, ``kill``) end the run as Ctrl-C does, so
        the interrupted-run report is written and the last complete report is kept."""
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.ingest(report)
        self.timer.add(report.nodeid, report.duration)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.collector.empty:
            return
        formula = self.config.stash[SETTINGS].formula
        run = {**run_block(self.config), "timing": self.timer.to_dict()}
        report = build_report(self.collector, run, formula, sys.argv)
        if self.baseline is not None and self.tolerances is not None:
            self.gate = compare_to_baseline(self.baseline, report, self.tolerances)
            report["gate"] = {
                "baseline": self.config.option.interpscore_baseline,
                **self.gate.to_dict(),
            }
            if not self.gate.passed:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        path = report_path(self.config)
        if session.exitstatus == pytest.ExitCode.INTERRUPTED:
            # Never replace the last complete report with part of a run.
            report["run"]["interrupted"] = True
            path = interrupted_path(path)
        try:
            self.written = write_reports(report, path)
        except OSError as exc:
            self.written = self._save_elsewhere(report, path, exc)

    def _save_elsewhere(
        self, report: dict[str, Any], path: Path, exc: OSError
    ) -> tuple[Path, Path]:
        """The output location broke during the run: keep the results in a temporary folder
        and say where, rather than losing the evaluation."""
        folder = Path(tempfile.mkdtemp(prefix="interpscore-"))
        written = write_reports(report, folder / path.name)
        self.config.get_terminal_writer().line(
            f"InterpScore: could not write {path} ({exc.strerror or exc}); the report was "
            f"saved to {written[0]} instead.",
            red=True,
        )
        return written

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.written is None:
            return
        report = json.loads(self.written[0].read_text())
        interrupted = bool(report["run"].get("interrupted"))
        title = "InterpScore (interrupted: partial results)" if interrupted else "InterpScore"
        terminalreporter.write_sep("=", title)
        for line in summary_lines(report):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"reports: {self.written[0]} and {self.written[1]}")
        if self.gate is not None:
            verdict = (
                "passed"
                if self.gate.passed
                else f"FAILED: {len(self.gate.regressions)} regression(s)"
            )
            terminalreporter.write_sep("=", f"InterpScore regression gate {verdict}")
            for line in [*self.gate.notes, *self.gate.table()]:
                terminalreporter.write_line(line)
