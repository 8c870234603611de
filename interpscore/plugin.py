"""pytest glue for InterpScore: options, fixtures, recording and the session report.

This module wires; it does not compute. Metric math lives in :mod:`interpscore.metrics`,
passes in :mod:`interpscore.passes`, report rendering in :mod:`interpscore.report`.

* ``--sae`` values (or the bundled zoo) parametrize the session-scoped ``sae_id``
  fixture, so every SAE is a readable test id and ``-k`` selects SAEs and metrics.
* The ``measure`` fixture times a metric (through pytest-benchmark when active),
  compares it with the SAE's controls and attaches a record to the test report.
* On the controller, records from every test report (xdist workers included) are
  aggregated and written to ``interpscore.json`` and ``interpscore.md`` at session end.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pytest

from interpscore.absorption_suite import AbsorptionSettings
from interpscore.collect import RECORD_KEY, ResultCollector
from interpscore.errors import InterpScoreError
from interpscore.evaluator import Evaluator, RunSettings
from interpscore.formula import get_formula
from interpscore.gate import GateResult, Tolerances, load_baseline, parse_tolerances
from interpscore.gate import compare as compare_to_baseline
from interpscore.ground_truth import SyntheticSettings, SyntheticWorld
from interpscore.loading import SAESpec, parse_sae_spec, unique_ids
from interpscore.probing_suite import ProbingSettings
from interpscore.report import build_report, summary_lines, write_reports
from interpscore.tasks import DEFAULT_TASKS
from interpscore.values import MetricValue, compare
from interpscore.zoo import DEFAULT_MODEL_CONTROLS, zoo_specs

SETTINGS = pytest.StashKey[RunSettings]()
SPECS = pytest.StashKey[list[SAESpec]]()
EVALUATOR = pytest.StashKey[Evaluator]()

DEFAULTS = {
    "tokens": 8192,
    "context_len": 128,
    "batch_size": 8,
    "seed": 0,
    "bootstrap": 1000,
    "probe_examples": 600,
    "probe_max_tokens": 128,
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("interpscore", "InterpScore SAE evaluation")
    group.addoption(
        "--sae",
        action="append",
        default=[],
        metavar="SPEC",
        help="SAE to evaluate (repeatable): a local sae-lens or dictionary_learning directory, "
        "REPO_ID[/PATH][@REVISION] on the hub, or a sae-lens RELEASE/SAE_ID; NAME=SPEC sets "
        "the test id. Default: the bundled zoo.",
    )
    group.addoption(
        "--model",
        default=None,
        metavar="MODEL",
        help=(
            "Override the SAEs' model: an alias (smollm2-135m), a local directory, a .gguf "
            "file or a hub id."
        ),
    )
    group.addoption(
        "--dataset",
        default="bundled",
        metavar="DATASET",
        help=(
            "Evaluation text: 'bundled' (default), a local .txt/.jsonl/.parquet/.csv file, or "
            "a hub dataset ID[:CONFIG][@SPLIT]."
        ),
    )
    group.addoption(
        "--tokens",
        type=int,
        default=DEFAULTS["tokens"],
        metavar="N",
        help=f"Token positions in the evaluation window (default {DEFAULTS['tokens']}).",
    )
    group.addoption(
        "--context-len",
        type=int,
        default=DEFAULTS["context_len"],
        metavar="N",
        help=f"Context length of each sequence, BOS included (default {DEFAULTS['context_len']}).",
    )
    group.addoption(
        "--batch-size",
        type=int,
        default=DEFAULTS["batch_size"],
        metavar="N",
        help=f"Sequences per forward pass (default {DEFAULTS['batch_size']}).",
    )
    group.addoption(
        "--seed",
        type=int,
        default=DEFAULTS["seed"],
        metavar="N",
        help="Seed for controls, splits and bootstrap resampling (default 0).",
    )
    group.addoption(
        "--device",
        default="cpu",
        metavar="DEVICE",
        help="Torch device: cpu (default), cuda, cuda:N, or auto.",
    )
    group.addoption(
        "--formula",
        default=None,
        metavar="VERSION|FILE",
        help="InterpScore formula version or a .toml/.json formula file (default 0.0.1).",
    )
    group.addoption(
        "--interpscore-json",
        default="reports/interpscore.json",
        metavar="PATH",
        help=(
            "Where to write the JSON report; the Markdown goes beside it (default "
            "reports/interpscore.json)."
        ),
    )
    group.addoption(
        "--no-controls",
        action="store_true",
        default=False,
        help="Skip the random-init control evaluated beside every SAE.",
    )
    group.addoption(
        "--model-controls",
        default=DEFAULT_MODEL_CONTROLS,
        metavar="LIST",
        help=(
            "Zoo SAEs trained on randomized transformers to include when --sae is not given: "
            "comma list of rerandomized-excl-emb, rerandomized-incl-emb, noise-embeddings, or "
            "'all' / 'none' (default: the two re-randomized ones)."
        ),
    )
    group.addoption(
        "--model-control-metrics",
        choices=("core", "all"),
        default="core",
        help="Metrics for SAEs on randomized transformers: core (core metrics and token "
        "entropy, the default) or all.",
    )
    group.addoption(
        "--bootstrap",
        type=int,
        default=DEFAULTS["bootstrap"],
        metavar="N",
        help="Bootstrap resamples for 95%% intervals; 0 turns intervals off (default 1000).",
    )
    group.addoption(
        "--probing-tasks",
        action="append",
        default=[],
        metavar="TASKS",
        help="Probing tasks (repeatable, or comma-separated names): bundled "
        "wordnet_topic, code_language, vader_sentiment (default: all three); the notebook's "
        "toxicity, sentiment (need the hub); file:PATH; hf:ID[:CONFIG][@SPLIT]#text=COL,label=COL.",
    )
    group.addoption(
        "--probe-examples",
        type=int,
        default=DEFAULTS["probe_examples"],
        metavar="N",
        help=f"Examples per probing task, balanced over classes, split 70/10/20 "
        f"(default {DEFAULTS['probe_examples']}; the notebook uses 1500).",
    )
    group.addoption(
        "--probe-max-tokens",
        type=int,
        default=DEFAULTS["probe_max_tokens"],
        metavar="N",
        help=f"Tokens read per probing text, BOS included (default {DEFAULTS['probe_max_tokens']}; "
        "SAEBench uses 128, the notebook 256).",
    )
    group.addoption(
        "--tpp-concept",
        default="vader_sentiment",
        metavar="TASK[:CLASS]",
        help="Concept task of the notebook TPP (binary task, or CLASS of a multi-class task; "
        "default vader_sentiment; the notebook uses toxicity).",
    )
    group.addoption(
        "--tpp-n",
        type=int,
        default=20,
        metavar="N",
        help="Latents zeroed by the notebook TPP (default 20).",
    )
    group.addoption(
        "--absorption-words",
        type=int,
        default=1500,
        metavar="N",
        help="Single-token words for first-letter absorption, spread over letters (default 1500).",
    )
    group.addoption(
        "--absorption-min-letters",
        type=int,
        default=20,
        metavar="N",
        help="Letters whose probe F1 must exceed 0.6 for absorption to apply (default 20, "
        "as SAEBench).",
    )
    group.addoption(
        "--interpscore-baseline",
        default=None,
        metavar="PATH",
        help="Regression gate: fail the session when the InterpScore or a component drops "
        "below this earlier interpscore.json by more than the tolerance.",
    )
    group.addoption(
        "--gate-tolerance",
        default="0",
        metavar="X",
        help="Allowed drop for every compared value (default 0).",
    )
    group.addoption(
        "--gate-tolerance-for",
        action="append",
        default=[],
        metavar="NAME=X",
        help="Allowed drop for one component or interp_score (repeatable).",
    )
    group.addoption(
        "--gate-ignore-intervals",
        action="store_true",
        default=False,
        help="Fail on any drop beyond the tolerance, even inside the 95%% interval.",
    )
    group.addoption(
        "--trust-remote-code",
        action="store_true",
        default=False,
        help="Allow models whose code lives in their hub repo (off by default).",
    )


def _settings(config: pytest.Config) -> RunSettings:
    opt = config.option
    for name in (
        "tokens",
        "context_len",
        "batch_size",
        "probe_examples",
        "probe_max_tokens",
        "tpp_n",
        "absorption_words",
    ):
        if getattr(opt, name) <= 0:
            raise pytest.UsageError(
                f"--{name.replace('_', '-')} must be a positive integer, got {getattr(opt, name)}."
            )
    if opt.bootstrap < 0:
        raise pytest.UsageError(f"--bootstrap must be 0 or more, got {opt.bootstrap}.")
    device = opt.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        formula = get_formula(opt.formula)
    except InterpScoreError as exc:
        raise pytest.UsageError(str(exc)) from exc
    return RunSettings(
        dataset=opt.dataset,
        tokens=opt.tokens,
        context_len=opt.context_len,
        batch_size=opt.batch_size,
        seed=opt.seed,
        device=device,
        model_override=opt.model,
        trust_remote_code=opt.trust_remote_code,
        formula=formula,
        controls=not opt.no_controls,
        control_metrics=opt.model_control_metrics,
        bootstrap=opt.bootstrap,
        show_progress=not _is_worker(config),
        probing=ProbingSettings(
            tasks=tuple(opt.probing_tasks or [DEFAULT_TASKS]),
            examples=opt.probe_examples,
            max_tokens=opt.probe_max_tokens,
            tpp_concept=opt.tpp_concept,
            tpp_n=opt.tpp_n,
            seed=opt.seed,
            bootstrap=opt.bootstrap,
            show_progress=not _is_worker(config),
        ),
        absorption=AbsorptionSettings(
            n_words=opt.absorption_words,
            min_letters=opt.absorption_min_letters,
            seed=opt.seed,
            bootstrap=opt.bootstrap,
        ),
    )


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _specs(config: pytest.Config) -> list[SAESpec]:
    """The session's SAE specs, parsed once (the bundled zoo when --sae is absent)."""
    if SPECS not in config.stash:
        try:
            if config.option.sae:
                specs = [parse_sae_spec(text) for text in config.option.sae]
            else:
                specs = zoo_specs(config.option.model_controls)
        except InterpScoreError as exc:
            raise pytest.UsageError(str(exc)) from exc
        config.stash[SPECS] = unique_ids(specs)
    return config.stash[SPECS]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "interpscore_metric(name): the test measures and records the named metric"
    )
    config.addinivalue_line(
        "markers", "interpscore_sanity: a sanity assertion about the evaluated subjects"
    )
    config.stash[SETTINGS] = _settings(config)
    if config.option.sae:
        _specs(config)
    if not _is_worker(config):
        baseline, tolerances = None, None
        if config.option.interpscore_baseline:
            try:
                baseline = load_baseline(config.option.interpscore_baseline)
                tolerances = parse_tolerances(
                    config.option.gate_tolerance,
                    config.option.gate_tolerance_for,
                    not config.option.gate_ignore_intervals,
                )
            except InterpScoreError as exc:
                raise pytest.UsageError(str(exc)) from exc
        reporting = ReportingSession(config, baseline, tolerances)
        config.pluginmanager.register(reporting, "interpscore-reporting")
    numprocesses = getattr(config.option, "numprocesses", None)
    if numprocesses and getattr(config.option, "dist", "no") == "load":
        # Keep each SAE's tests on one worker so its shared pass runs once.
        config.option.dist = "loadgroup"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sae_id" in metafunc.fixturenames:
        ids = [spec.id for spec in _specs(metafunc.config)]
        metafunc.parametrize("sae_id", ids, ids=ids, scope="session")


def _metric_name(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("interpscore_metric")
    if marker is not None and marker.args:
        return str(marker.args[0])
    params = getattr(getattr(item, "callspec", None), "params", {})
    return str(params["metric"]) if "metric" in params else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "sae_id" not in params:
            continue
        item.user_properties.append(
            (
                RECORD_KEY,
                {"kind": "identity", "sae": params["sae_id"], "metric": _metric_name(item)},
            )
        )
        item.add_marker(pytest.mark.xdist_group("interpscore"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, InterpScoreError):
        report.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"
    return report


class ReportingSession:
    """Controller-side plugin object: collects records and writes the reports."""

    def __init__(
        self, config: pytest.Config, baseline: dict[str, Any] | None, tolerances: Tolerances | None
    ) -> None:
        self.config = config
        self.collector = ResultCollector([])
        self.written: tuple[Path, Path] | None = None
        self.baseline = baseline
        self.tolerances = tolerances
        self.gate: GateResult | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.ingest(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.collector.saes and not self.collector.ground_truth:
            return
        settings = self.config.stash[SETTINGS]
        report = build_report(self.collector, settings.to_dict(), settings.formula, sys.argv)
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


# Fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def interpscore_settings(pytestconfig: pytest.Config) -> RunSettings:
    """The run's settings, parsed from the InterpScore command-line options."""
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def evaluator(pytestconfig: pytest.Config, interpscore_settings: RunSettings) -> Evaluator:
    """The session's evaluator: loads SAEs and models once and runs the shared passes."""
    if EVALUATOR not in pytestconfig.stash:
        capture = pytestconfig.pluginmanager.getplugin("capturemanager")

        def progress() -> AbstractContextManager[Any]:
            return capture.global_and_fixture_disabled() if capture else nullcontext()

        pytestconfig.stash[EVALUATOR] = Evaluator(
            interpscore_settings, _specs(pytestconfig), progress=progress
        )
    return pytestconfig.stash[EVALUATOR]


@pytest.fixture(scope="session")
def sae(evaluator: Evaluator, sae_id: str) -> Any:
    """The SAE under test (a :class:`interpscore.loading.LoadedSAE`), loaded once."""
    return evaluator.sae(sae_id)


class Measure:
    """Times a metric, compares it with controls and records it on the test report."""

    def __init__(self, request: pytest.FixtureRequest, evaluator: Evaluator, sae_id: str) -> None:
        self.request = request
        self.evaluator = evaluator
        self.sae_id = sae_id

    def _timer(self) -> Callable[[Callable[[], MetricValue]], MetricValue]:
        config = self.request.config
        if config.pluginmanager.hasplugin("pytest_benchmark"):
            bench = self.request.getfixturevalue("benchmark")
            return lambda fn: bench.pedantic(fn, rounds=1, iterations=1, warmup_rounds=0)
        return lambda fn: fn()

    def __call__(
        self,
        metric: str,
        compute: Callable[[str], MetricValue],
        *,
        component: bool | None = None,
    ) -> MetricValue:
        """Measure ``metric`` with ``compute(sae_id)``; controls use the same function."""
        loaded = self.evaluator.sae(self.sae_id)
        reason = self.evaluator.skip_reason(self.sae_id, metric)
        if reason is not None:
            pytest.skip(reason)
        node = self.request.node
        node.user_properties.append(
            (RECORD_KEY, {"kind": "sae", "sae": self.sae_id, "describe": loaded.describe()})
        )
        start = time.perf_counter()
        result = self._timer()(lambda: compute(self.sae_id))
        seconds = time.perf_counter() - start
        for info in self.evaluator.drain_passes():
            node.user_properties.append((RECORD_KEY, {"kind": "pass", "info": info.to_dict()}))
        if not result.applicable:
            record = {"value": None, "status": "not_applicable", "details": result.details}
            node.user_properties.append(
                (
                    RECORD_KEY,
                    {
                        "kind": "metric",
                        "sae": self.sae_id,
                        "metric": metric,
                        "seconds": seconds,
                        **record,
                    },
                )
            )
            return result
        if not result.finite:
            pytest.fail(f"{metric} of {self.sae_id} is not a finite number ({result.value}).")
        if component is None:
            component = metric in self.evaluator.settings.formula.weights
        controls, control_reps = {}, {}
        for control in self.evaluator.controls_of(self.sae_id):
            skipped = self.evaluator.skip_reason(control, metric)
            if skipped is not None:
                controls[control] = {"skipped": skipped}
                continue
            try:
                theirs = compute(control)
            except Exception as exc:  # noqa: BLE001 - a broken control is reported, not fatal
                controls[control] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
                continue
            controls[control] = compare(result, theirs).to_dict()
            if component and theirs.replicates is not None:
                control_reps[control] = theirs.replicates.tolist()
        record = {
            "kind": "metric",
            "sae": self.sae_id,
            "metric": metric,
            "value": float(result.value),  # type: ignore[arg-type]
            "status": "passed",
            "ci95": list(result.ci95) if result.ci95 else None,
            "ci_unit": result.unit if result.replicates is not None else None,
            "seconds": seconds,
            "details": result.details,
            "controls": controls,
            "window": self.evaluator.window_info(self.sae_id),
        }
        if component and result.replicates is not None:
            record["replicates"] = result.replicates.tolist()
            record["control_replicates"] = control_reps
        node.user_properties.append((RECORD_KEY, record))
        if not all(math.isfinite(x) for x in (record["ci95"] or [])):
            pytest.fail(f"{metric} of {self.sae_id} has a non-finite interval.")
        return result


@pytest.fixture(scope="session")
def synthetic_world(interpscore_settings: RunSettings) -> SyntheticWorld:
    """Synthetic activations with known features (sae-lens synthetic), built once."""
    return SyntheticWorld(SyntheticSettings(seed=interpscore_settings.seed))


@pytest.fixture
def record_ground_truth(request: pytest.FixtureRequest) -> Callable[[dict[str, Any]], None]:
    """Call with one architecture's ground-truth results to put them in the report."""

    def record(result: dict[str, Any]) -> None:
        request.node.user_properties.append(
            (RECORD_KEY, {"kind": "ground_truth", "result": result})
        )

    return record


@pytest.fixture
def measure(request: pytest.FixtureRequest, evaluator: Evaluator, sae_id: str) -> Measure:
    """Call ``measure(metric, compute)`` to measure and record one metric of the SAE."""
    return Measure(request, evaluator, sae_id)
