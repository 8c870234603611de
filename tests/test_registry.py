"""The suite registry: a family added from outside the package reaches the report through
the real plugin, registration refuses ambiguity, and the package has no import cycles."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import subjects
import torch

import interpscore
from interpscore.suites import REGISTRY, MetricSpec, Registry, Suite
from interpscore.suites.core import CoreSuite

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]

FAMILY = """
from dataclasses import dataclass

from interpscore.evaluation.shared_pass import Accumulator
from interpscore.results.records import MetricValue
from interpscore.settings import option, positive_int
from interpscore.suites import REGISTRY, MetricSpec, Suite


@dataclass(frozen=True)
class PeakSettings:
    offset: int = option(0, "--peak-offset", "Added to the peak.", type=positive_int)


class PeakAccumulator(Accumulator):
    name = "peak"

    def start(self, saes):
        self.peak = dict.fromkeys(saes, 0.0)

    def add_sae(self, key, batch, f, x_hat):
        kept = f[batch.mask]
        self.peak[key] = max(self.peak[key], float(kept.max()))

    def result(self, key):
        return self.peak[key]


class PeakSuite(Suite):
    name = "peak"
    settings_type = PeakSettings
    metrics = (
        MetricSpec("peak_latent", "largest latent activation", direction="none", ci_unit=None),
        MetricSpec(
            "peak_latent_x2", "twice that", direction="none", ci_unit=None, params={"factor": 2}
        ),
    )

    def accumulators(self, group):
        return [PeakAccumulator()]

    def compute(self, subject, metric):
        peak = subject.pass_result("peak") + subject.settings.offset
        return {m.name: MetricValue(peak * m.params.get("factor", 1)) for m in self.metrics}


REGISTRY.register(PeakSuite())


def pytest_unconfigure(config):
    REGISTRY.unregister("peak")
"""

BENCHMARK = """
import pytest

from interpscore.suites import metric_names


@pytest.mark.parametrize("metric", metric_names("peak"))
def test_peak(metric, measure):
    measure(metric)
"""


def test_a_family_registered_from_a_conftest_reaches_the_report(
    pytester: pytest.Pytester, tiny_corpus, tiny_saes, tiny_llama
):
    pytester.makeconftest(FAMILY)
    pytester.makepyfile(
        test_peak=BENCHMARK, test_core=(REPO / "benchmarks" / "test_core.py").read_text()
    )
    common = [
        f"--sae={tiny_saes['identity']}",
        f"--dataset={tiny_corpus}",
        "--tokens=1024",
        "--context-len=64",
        "--bootstrap=0",
        "--no-controls",
        "--no-cache",  # each run counts its own forward calls
        "-p",
        "no:randomly",
        "--benchmark-disable",
    ]
    assert "--peak-offset=PEAK_OFFSET" in pytester.runpytest("--help").stdout.str()
    result = pytester.runpytest(*common, "--peak-offset=3", "--interpscore-json=both.json")
    result.assert_outcomes(passed=2 + len(REGISTRY.names("core")))
    report = json.loads((pytester.path / "both.json").read_text())
    (sae,) = report["saes"]
    # The identity SAE's latents are (relu(x), relu(-x)): its peak is max |x| on the window.
    acts = subjects.activations(tiny_llama, tiny_corpus, n_positions=1024)
    expected = float(acts.abs().max()) + 3
    assert sae["metrics"]["peak_latent"]["value"] == pytest.approx(expected, rel=1e-5)
    assert sae["metrics"]["peak_latent_x2"]["value"] == pytest.approx(2 * expected, rel=1e-5)
    assert sae["metrics"]["peak_latent_x2"]["params"] == {"factor": 2}
    assert report["run"]["peak"] == {"offset": 3}
    # The family joined the one shared pass: no extra forward call.
    (shared,) = report["run"]["passes"]
    assert shared["accumulators"] == ["core", "peak"]
    core_only = pytester.runpytest(*common, "test_core.py", "--interpscore-json=core.json")
    core_only.assert_outcomes(passed=len(REGISTRY.names("core")))
    (alone,) = json.loads((pytester.path / "core.json").read_text())["run"]["passes"]
    assert alone["accumulators"] == ["core"]
    assert shared["lm_forward_calls"] == alone["lm_forward_calls"]
    # The same family alone needs no logits: the pass runs only to the hook.
    peak_only = pytester.runpytest(*common, "test_peak.py", "--interpscore-json=peak.json")
    peak_only.assert_outcomes(passed=2)
    (to_hook,) = json.loads((pytester.path / "peak.json").read_text())["run"]["passes"]
    assert to_hook["lm_forward_calls"] == {"to_hook": alone["lm_forward_calls"]["clean_full"]}
    assert "peak" not in [s.name for s in REGISTRY.suites()]  # unregistered at unconfigure


def test_bad_values_fail_while_parsing_before_any_model_loads(pytester, tiny_saes):
    pytester.makepyfile(test_core=(REPO / "benchmarks" / "test_core.py").read_text())
    for bad, message in [
        ("--tokens=0", "argument --tokens: must be a positive integer, got '0'"),
        ("--context-len=1", "argument --context-len: must be at least 2, got '1'"),
        ("--bootstrap=-1", "argument --bootstrap: must be 0 or more, got '-1'"),
        ("--probing-tasks=nope", "argument --probing-tasks: Unknown probing task 'nope'."),
        ("--gate-tolerance-for=tpq=0.1", "names 'tpq', which the gate never compares"),
        ("--device=gpu", "argument --device: unknown device 'gpu'"),
    ]:
        result = pytester.runpytest(f"--sae={tiny_saes['topk']}", bad)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, bad
        assert message in result.stderr.str(), bad


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a CPU-only machine")
def test_cuda_on_a_machine_without_one_names_the_fix(pytester, tiny_saes):
    result = pytester.runpytest(f"--sae={tiny_saes['topk']}", "--device=cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "torch sees no CUDA device on this machine" in result.stderr.str()
    assert "use --device cpu" in result.stderr.str()


class _Tiny(Suite):
    name = "tiny"
    metrics = (MetricSpec("tiny_metric", "a metric"),)


def test_registration_refuses_duplicates():
    registry = Registry()
    registry.register(_Tiny())
    with pytest.raises(ValueError, match="already registered"):
        registry.register(_Tiny())

    class Clash(Suite):
        name = "clash"
        metrics = (MetricSpec("tiny_metric", "the same name again"),)

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Clash())
    registry.register(CoreSuite())
    with pytest.raises(ValueError, match="already registered"):
        registry.register(CoreSuite())


def test_a_component_is_bounded_and_higher_is_better():
    with pytest.raises(ValueError, match=r"bounded in \[0, 1\]"):
        MetricSpec("bad", "unbounded", component=True)


def test_every_per_sae_family_has_a_benchmark_module_over_its_metrics():
    for suite in REGISTRY.suites():
        module = REPO / "benchmarks" / f"test_{suite.name}.py"
        assert module.is_file(), suite.name
        if suite.per_sae:
            assert f'metric_names("{suite.name}")' in module.read_text(), suite.name


def test_metric_parameters_are_declared_not_parsed_from_names():
    k_sparse = [m for m in REGISTRY.metrics("probing") if "k" in m.params]
    assert [m.params["k"] for m in k_sparse] == [1, 2, 5, 10, 20, 50]
    assert all(m.name == f"sparse_probing_k{m.params['k']}" for m in k_sparse)


def test_every_module_imports_on_its_own():
    """Import each module first in a fresh interpreter: an import cycle fails here whatever
    order the test suite happens to import things in."""
    names = [
        m.name
        for m in pkgutil.walk_packages(interpscore.__path__, "interpscore.")
        if m.name != "interpscore.__main__"
    ]
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('interpscore')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
