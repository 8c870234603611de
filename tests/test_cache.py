"""The on-disk value cache: hits, misses, bad entries rebuilt, eviction, listing, the CLI."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch

from interpscore.cli import main
from interpscore.errors import SpecError
from interpscore.evaluation.cache import (
    DATA,
    MANIFEST,
    TENSORS,
    Store,
    digest_of,
    format_size,
    parse_size,
)

KEY = {"model": "abc", "hook": "blocks.1.hook_resid_post", "tokens": [1, 2, 3], "seed": 0}


def _put(store: Store, kind: str = "acts", key: dict | None = None, n: int = 16) -> Path:
    assert store.put(kind, key or KEY, {"x": torch.arange(n, dtype=torch.float32)}, {"v": 1.5})
    return store.root / kind / digest_of(kind, key or KEY)


def test_hit_returns_the_stored_tensors_and_data_exactly(tmp_path):
    store = Store(tmp_path)
    x = torch.randn(5, 3, dtype=torch.float64)
    assert store.put("acts", KEY, {"x": x}, {"v": 0.1 + 0.2, "n": [1, 2]})
    hit = store.get("acts", dict(reversed(list(KEY.items()))))  # key order does not matter
    assert hit is not None
    assert torch.equal(hit.tensors["x"], x)
    assert hit.tensors["x"].dtype == torch.float64
    assert hit.data == {"v": 0.1 + 0.2, "n": [1, 2]}


@pytest.mark.parametrize(
    "change",
    [{"model": "abd"}, {"hook": "blocks.0.hook_resid_post"}, {"tokens": [1, 2]}, {"seed": 1}],
)
def test_any_key_change_misses(tmp_path, change):
    store = Store(tmp_path)
    _put(store)
    assert store.get("acts", KEY | change) is None
    assert store.get("other", KEY) is None
    assert store.get("acts", KEY) is not None


def test_corrupt_payload_is_reported_deleted_and_missed(tmp_path, caplog):
    store = Store(tmp_path)
    path = _put(store)
    data = bytearray((path / TENSORS).read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    (path / TENSORS).write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, "interpscore.cache"):
        assert store.get("acts", KEY) is None
    assert "corrupt" in caplog.text
    assert "rebuilding" in caplog.text
    assert not path.exists()
    _put(store)  # rebuilt
    assert store.get("acts", KEY) is not None


@pytest.mark.parametrize("damage", ["truncated manifest", "missing payload", "other key"])
def test_bad_manifest_or_missing_file_is_never_used(tmp_path, caplog, damage):
    store = Store(tmp_path)
    path = _put(store)
    manifest = path / MANIFEST
    if damage == "truncated manifest":
        manifest.write_text(manifest.read_text()[:40])
    elif damage == "missing payload":
        (path / DATA).unlink()
    else:
        content = json.loads(manifest.read_text())
        content["key"]["seed"] = 7
        manifest.write_text(json.dumps(content))
    with caplog.at_level(logging.WARNING, "interpscore.cache"):
        assert store.get("acts", KEY) is None
    assert "deleting and rebuilding" in caplog.text
    assert not path.exists()


def test_least_recently_used_entries_are_evicted_first(tmp_path):
    store = Store(tmp_path, max_bytes=10**9)
    paths = [_put(store, key=KEY | {"seed": i}, n=1000) for i in range(3)]
    for i, path in enumerate(paths):  # used in order 0, 1, 2 ...
        os.utime(path / MANIFEST, (1000 + i, 1000 + i))
    store.get("acts", KEY | {"seed": 0})  # ... then 0 again: 1 is the oldest
    one = store.entries()[0].size
    store.max_bytes = 3 * one + 50  # manifests differ by a few bytes
    _put(store, key=KEY | {"seed": 3}, n=1000)
    assert [e.key["seed"] for e in store.entries()] == [2, 0, 3]
    assert store.size() <= store.max_bytes


def test_an_entry_larger_than_the_store_is_not_kept(tmp_path):
    store = Store(tmp_path, max_bytes=100)
    assert not store.put("acts", KEY, {"x": torch.zeros(1000)})
    assert store.entries() == []
    assert store.get("acts", KEY) is None


def test_size_listing_and_clear_by_kind(tmp_path):
    store = Store(tmp_path)
    _put(store, "acts")
    _put(store, "control")
    entries = store.entries()
    assert {e.kind for e in entries} == {"acts", "control"}
    assert store.size() == sum(e.size for e in entries) > 0
    assert [e.kind for e in store.clear("acts")] == ["acts"]
    assert [e.kind for e in store.entries()] == ["control"]
    store.clear()
    assert store.entries() == []
    assert store.size() == 0


def test_sizes_parse_and_print():
    assert parse_size("10GB") == 10 * 10**9
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("1500") == 1500
    assert format_size(1_500_000) == "1.5 MB"
    with pytest.raises(SpecError, match=r"use e\.g\. 10GB"):
        parse_size("ten gigs")


def test_cli_lists_and_clears(tmp_path, capsys):
    store = Store(tmp_path)
    _put(store, "acts")
    _put(store, "control")
    assert main(["cache", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "acts" in out
    assert "control" in out
    assert "2 entries" in out
    assert main(["cache", "clear", "--kind", "acts", "--cache-dir", str(tmp_path)]) == 0
    assert "removed 1 entry" in capsys.readouterr().out
    assert [e.kind for e in store.entries()] == ["control"]
    assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 0
    assert store.entries() == []
    assert main(["cache", "list", "--cache-dir", str(tmp_path)]) == 0
    assert "0 entries" in capsys.readouterr().out


def test_control_values_round_trip_exactly_or_are_not_stored(tmp_path):
    import numpy as np

    from interpscore.evaluation.control_values import load_value, store_value
    from interpscore.results.records import MetricValue

    store = Store(tmp_path)
    reps = np.random.default_rng(0).random(50)
    value = MetricValue(0.1 + 0.2, reps, unit="example", details={"k": 5, "auc": {"a": 1 / 3}})
    assert store_value(store, KEY, value)
    back = load_value(store, KEY)
    assert back is not None
    assert (back.value, back.unit, back.details) == (value.value, value.unit, value.details)
    assert np.array_equal(back.replicates, reps)
    nested = MetricValue(
        0.5,
        reps,
        unit="prompt",
        ceilings={"supervised": MetricValue(0.9, reps[::-1].copy(), "prompt")},
        nulls={"shuffled": MetricValue(0.2, None, "latent")},
        breakdown={"ioi": 0.4, "capitals": 0.6},
    )
    assert store_value(store, KEY | {"nested": True}, nested)
    again = load_value(store, KEY | {"nested": True})
    assert again is not None
    assert again.breakdown == nested.breakdown
    assert again.ceilings["supervised"].value == 0.9
    assert np.array_equal(again.ceilings["supervised"].replicates, reps[::-1])
    assert again.nulls["shuffled"].replicates is None
    assert again.nulls["shuffled"].unit == "latent"
    assert not store_value(store, KEY | {"nan": True}, MetricValue(float("nan")))
    assert not store_value(store, KEY | {"seed": 1}, MetricValue(1.0, details={"t": (1, 2)}))
    assert load_value(store, KEY | {"seed": 1}) is None
