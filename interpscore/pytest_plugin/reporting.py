"""Session reporting: collect records, build and write the reports, run the gate."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interpscore.errors import InterpScoreError
from interpscore.pytest_plugin.options import SETTINGS, SUITE_SETTINGS, is_worker
from interpscore.results.collect import ResultCollector
from interpscore.results.gate import GateResult, Tolerances, load_report
from interpscore.results.gate import compare as compare_to_baseline
from interpscore.results.markdown import summary_lines
from interpscore.results.report import build_report, write_reports
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
    config.pluginmanager.register(
        ReportingSession(config, baseline, tolerances), "interpscore-reporting"
    )


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

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.ingest(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.collector.empty:
            return
        formula = self.config.stash[SETTINGS].formula
        report = build_report(self.collector, run_block(self.config), formula, sys.argv)
        if self.baseline is not None and self.tolerances is not None:
            self.gate = compare_to_baseline(self.baseline, report, self.tolerances)
            report["gate"] = {
                "baseline": self.config.option.interpscore_baseline,
                **self.gate.to_dict(),
            }
            if not self.gate.passed:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        path = Path(self.config.option.interpscore_json)
        if not path.is_absolute():
            path = Path(self.config.invocation_params.dir) / path
        self.written = write_reports(report, path)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.written is None:
            return
        terminalreporter.write_sep("=", "InterpScore")
        for line in summary_lines(json.loads(self.written[0].read_text())):
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
