"""The value cache through the real plugin: a warm run gives the cold run's values bit for
bit, skips the model work it stored, and rebuilds a corrupt entry instead of using it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import subjects

from interpscore.evaluation.cache import DATA, TENSORS, Store
from interpscore.evaluation.evaluator import Evaluator
from interpscore.evaluation.pass_cache import PassCache, pass_key
from interpscore.evaluation.settings import RunSettings
from interpscore.evaluation.shared_pass import Accumulator, run_shared_pass
from interpscore.subjects.data import iter_texts, pack_tokens
from interpscore.subjects.loading import load_sae, parse_sae_spec
from interpscore.subjects.models import load_model
from interpscore.suites.abstractness import TopActivationsAccumulator
from interpscore.suites.core import CoreStatistics

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]

KINDS = {
    "lm_batch",
    "group_stats",
    "control_result",
    "task_acts",
    "control_value",
    "absorption_words",
    "probing_reference",
}


def _untimed(details: dict[str, Any] | None) -> dict[str, Any] | None:
    """Details without wall times (a warm run is meant to differ there)."""
    if details is None:
        return None
    return {k: v for k, v in details.items() if not k.endswith("_seconds")}


def _values(pytester: pytest.Pytester, name: str) -> dict[str, Any]:
    """Every value, interval and control comparison of the report (no timings)."""
    report = json.loads((pytester.path / name).read_text())
    (sae,) = [s for s in report["saes"] if s["id"] == "topk"]
    metrics = {
        metric: (m.get("value"), m.get("ci95"), m.get("controls"), _untimed(m.get("details")))
        for metric, m in sae["metrics"].items()
    }
    return {"metrics": metrics, "score": (sae["interp_score"], sae["interp_score_ci95"])}


def _passes(pytester: pytest.Pytester, name: str) -> list[dict[str, int]]:
    text = (pytester.path / name).read_text()
    return [p["lm_forward_calls"] for p in json.loads(text)["run"]["passes"]]


def _corrupt(store: Store, kind: str) -> Path:
    entry = next(e for e in store.entries(kind))
    payload = entry.path / TENSORS
    if not payload.exists():
        payload = entry.path / DATA
    data = bytearray(payload.read_bytes())
    data[-1] ^= 0xFF
    payload.write_bytes(bytes(data))
    return entry.path


def test_warm_run_gives_identical_values_and_rebuilds_corrupt_entries(
    pytester, bench, tiny_saes, tmp_path
):
    pytester.makepyfile(
        test_probing=(REPO / "benchmarks" / "test_probing.py").read_text(),
        test_abstractness=(REPO / "benchmarks" / "test_abstractness.py").read_text(),
        test_absorption=(REPO / "benchmarks" / "test_absorption.py").read_text(),
        test_tpp=(REPO / "benchmarks" / "test_tpp.py").read_text(),
    )
    cache = tmp_path / "values"
    args = [*bench, f"--sae={tiny_saes['topk']}", "--probe-examples=150", f"--cache-dir={cache}"]
    outcomes = {}
    for run in ("cold", "warm"):
        result = pytester.runpytest(*args, f"--interpscore-json={run}.json")
        outcomes[run] = result.parseoutcomes()
    assert outcomes["cold"] == outcomes["warm"]
    assert _values(pytester, "warm.json") == _values(pytester, "cold.json")
    store = Store(cache)
    assert {e.kind for e in store.entries()} == KINDS
    stored = {e.key["metric"] for e in store.entries("control_value")}
    assert {"sparse_probing", "sparse_probing_k5", "tpp", "tpp_saebench@2"} <= stored
    cold_calls, warm_calls = _passes(pytester, "cold.json"), _passes(pytester, "warm.json")
    # the warm pass ran no layer for the clean logits (the final norm and the unembedding
    # of the stored last layer's output), no zero-ablation and not the control: the SAE's
    assert set(cold_calls[0]) == {"clean_full", "from_hook_zero", "from_hook_sae"}
    assert set(warm_calls[0]) == {"cached", "clean_head", "from_hook_sae"}
    assert warm_calls[0]["cached"] == warm_calls[0]["clean_head"] == cold_calls[0]["clean_full"]
    assert 2 * warm_calls[0]["from_hook_sae"] == cold_calls[0]["from_hook_sae"]

    damaged = [_corrupt(store, kind) for kind in sorted(KINDS)]
    pytester.runpytest(*args, "--interpscore-json=repaired.json").assert_outcomes(
        **outcomes["cold"]
    )
    assert _values(pytester, "repaired.json") == _values(pytester, "cold.json")
    for entry in store.entries():  # every entry, the rebuilt ones included, verifies
        assert store.get(entry.kind, entry.key) is not None, entry.kind
    assert all(path.exists() for path in damaged)  # rebuilt under the same key


def test_absorption_words_and_probes_come_back_from_the_value_cache(
    tiny_corpus, tiny_saes, monkeypatch
):
    """A second run reads the words, their activations and the letter probes from the value
    cache instead of running the model and fitting probes, and they are the first run's
    exactly (the same fingerprint: the control's stored values keep matching)."""
    import interpscore.suites.absorption as family

    built = []
    real = family.build_word_data
    monkeypatch.setattr(family, "build_word_data", lambda *a: built.append(1) or real(*a))
    states = []
    for _ in ("cold", "warm"):
        settings = RunSettings(
            dataset=str(tiny_corpus), tokens=512, context_len=64, show_progress=False
        )
        evaluator = Evaluator(settings, [parse_sae_spec(f"topk={tiny_saes['topk']}")])
        group = evaluator.group("topk")
        states.append(group.state("absorption"))
        evaluator.value("topk", "absorption")
    assert len(built) == 1
    cold, warm = states
    assert warm.fingerprint() == cold.fingerprint()
    assert warm.probes.keys() == cold.probes.keys()
    assert len(warm.probes) > 0
    for name, array in cold.to_arrays().items():
        assert warm.to_arrays()[name].dtype == array.dtype
        np.testing.assert_array_equal(warm.to_arrays()[name], array)


def test_the_models_own_probes_come_back_from_the_value_cache(tiny_corpus, tiny_saes, monkeypatch):
    """The model-space probes behind k-sparse probing's reference numbers are fitted once
    per hook and data; a second run reads them (no probe fitted on model activations) and
    reports the same numbers."""
    import interpscore.suites.probing as family
    from interpscore.suites.probing import ProbingSettings

    fitted = []
    real = family.probing.dense_probe_accuracy
    monkeypatch.setattr(
        family.probing, "dense_probe_accuracy", lambda *a: fitted.append(1) or real(*a)
    )
    details, counts = [], []
    for _ in ("cold", "warm"):
        settings = RunSettings(
            dataset=str(tiny_corpus), tokens=512, context_len=64, show_progress=False
        )
        evaluator = Evaluator(
            settings,
            [parse_sae_spec(f"topk={tiny_saes['topk']}")],
            suite_settings={"probing": ProbingSettings(examples=150)},
        )
        details.append(evaluator.value("topk", "sparse_probing_k5").details)
        counts.append(len(fitted))
    assert counts[0] > 0
    assert counts[1] == counts[0]  # the warm run fitted none
    for name in ("llm_reference", "llm_reference_accuracy", "llm_dense_accuracy"):
        assert details[1][name] == details[0][name]


def test_no_cache_writes_nothing_and_gives_the_same_values(pytester, bench, tiny_saes, tmp_path):
    cache = tmp_path / "values"
    args = [*bench, f"--sae={tiny_saes['topk']}", f"--cache-dir={cache}", "-k", "l0 or loss"]
    pytester.runpytest(*args, "--no-cache", "--interpscore-json=off.json")
    assert Store(cache).entries() == []
    pytester.runpytest(*args, "--interpscore-json=on.json")
    assert Store(cache).size() > 0
    assert _values(pytester, "off.json") == _values(pytester, "on.json")


class _Counting(Accumulator):
    """Not cacheable: counts the SAE batches it sees."""

    name = "counting"

    def start(self, saes):
        self.seen = dict.fromkeys(saes, 0)

    def add_sae(self, key, batch, f, x_hat):
        self.seen[key] += 1

    def result(self, key):
        return self.seen[key]


@pytest.mark.parametrize("hook", [subjects.HOOK, "blocks.0.hook_resid_post"])
def test_a_stored_control_skips_its_tail_but_feeds_uncached_accumulators(
    tiny_llama, tiny_corpus, tiny_saes, tmp_path, hook
):
    """The main job's pass mixes cacheable accumulators (core, top activations) with one
    that is not (autointerp's examples): a warm control then runs no tail, only the encode
    the uncached accumulator needs, and every stored result is the cold one. The clean
    logits come from the final norm and unembedding alone, whether the hook is the last
    layer's output or an earlier one (whose entries then also hold the last layer's)."""
    lm = load_model(str(tiny_llama))
    site = lm.site(hook)
    window = pack_tokens(lm.tokenizer, iter_texts(str(tiny_corpus)), 1024, 64, "tiny")
    saes = {"c": load_sae(str(tiny_saes["topk"])).sae}
    store = Store(tmp_path / "values")
    runs = []
    for _ in ("cold", "warm"):
        cache = PassCache(
            store, pass_key({"model": "tiny"}, site.name, window.tokens, window.special), {"c": "h"}
        )
        accs = [CoreStatistics(), TopActivationsAccumulator(5), _Counting()]
        runs.append(
            run_shared_pass(
                lm, site, window, saes, accs, batch_size=4, show_progress=False, cache=cache
            )
        )
    cold, warm = runs
    finals = {"final" in store.get(e.kind, e.key).tensors for e in store.entries("lm_batch")}
    assert finals == {site != lm.final_site}
    assert cold.info.lm_forward_calls == {"clean_full": 4, "from_hook_zero": 4, "from_hook_sae": 4}
    assert warm.info.lm_forward_calls == {"cached": 4, "clean_head": 4}
    assert warm.results["counting"]["c"] == cold.results["counting"]["c"] == 4
    for name in ("core", "top_activations"):
        for field, array in cold.results[name]["c"].items():
            np.testing.assert_array_equal(warm.results[name]["c"][field], array, err_msg=field)
