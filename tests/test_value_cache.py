"""The value cache through the real plugin: a warm run gives the cold run's values bit for
bit, skips the model work it stored, and rebuilds a corrupt entry instead of using it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import subjects

from interpscore.evaluation.cache import TENSORS, Store
from interpscore.evaluation.pass_cache import PassCache, pass_key
from interpscore.evaluation.shared_pass import Accumulator, run_shared_pass
from interpscore.subjects.data import iter_texts, pack_tokens
from interpscore.subjects.loading import load_sae
from interpscore.subjects.models import load_model
from interpscore.suites.abstractness import TopActivationsAccumulator
from interpscore.suites.core import CoreStatistics

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]

KINDS = {"lm_batch", "group_stats", "control_result", "task_acts", "control_value"}


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
    assert {"sparse_probing", "sparse_probing_k5"} <= stored  # absorption: n/a on this model
    cold_calls, warm_calls = _passes(pytester, "cold.json"), _passes(pytester, "warm.json")
    # the warm pass ran no layer before the hook, no zero-ablation and not the control:
    # one clean tail from the stored activations and the SAE's
    assert set(cold_calls[0]) == {"clean_full", "from_hook_zero", "from_hook_sae"}
    assert set(warm_calls[0]) == {"cached", "clean_tail", "from_hook_sae"}
    assert warm_calls[0]["cached"] == warm_calls[0]["clean_tail"] == cold_calls[0]["clean_full"]
    assert 2 * warm_calls[0]["from_hook_sae"] == cold_calls[0]["from_hook_sae"]

    damaged = [_corrupt(store, kind) for kind in sorted(KINDS)]
    pytester.runpytest(*args, "--interpscore-json=repaired.json").assert_outcomes(
        **outcomes["cold"]
    )
    assert _values(pytester, "repaired.json") == _values(pytester, "cold.json")
    for entry in store.entries():  # every entry, the rebuilt ones included, verifies
        assert store.get(entry.kind, entry.key) is not None, entry.kind
    assert all(path.exists() for path in damaged)  # rebuilt under the same key


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


def test_a_stored_control_skips_its_tail_but_feeds_uncached_accumulators(
    tiny_llama, tiny_corpus, tiny_saes, tmp_path
):
    """The main job's pass mixes cacheable accumulators (core, top activations) with one
    that is not (autointerp's examples): a warm control then runs no tail, only the encode
    the uncached accumulator needs, and every stored result is the cold one."""
    lm = load_model(str(tiny_llama))
    site = lm.site(subjects.HOOK)
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
    assert cold.info.lm_forward_calls == {"clean_full": 4, "from_hook_zero": 4, "from_hook_sae": 4}
    assert warm.info.lm_forward_calls == {"cached": 4, "clean_tail": 4}
    assert warm.results["counting"]["c"] == cold.results["counting"]["c"] == 4
    for name in ("core", "top_activations"):
        for field, array in cold.results[name]["c"].items():
            np.testing.assert_array_equal(warm.results[name]["c"][field], array, err_msg=field)
