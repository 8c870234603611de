"""A random-init control's metric values in the value cache.

The control is a function of the SAE's class, config and seed, so its values on the
same model data are the same in every run: a family keys them by what it computed them
from (:func:`control_key`: the control's weights, the model, the hook, the run's seed and
bootstrap, and the family's ``inputs``, content hashes of its data and its settings) and
stores each value with its bootstrap replicates (which the paired intervals read), its
details and its nested null and ceiling values. A value whose details are not plain JSON
(or hold NaN) is not stored, and is recomputed on the next run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

from interpscore.evaluation.cache import Store
from interpscore.evaluation.cache_keys import module_hash
from interpscore.results.records import RANDOM_INIT, MetricValue

if TYPE_CHECKING:
    from interpscore.suites.base import SubjectContext

CONTROL_VALUE = "control_value"
V = TypeVar("V")


def control_key(
    base: Mapping[str, Any], control: nn.Module, metric: str, inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """The key of a control's value: the model's key, the control's weights, the metric and
    whatever else the family computed it from (``inputs``: data hashes, settings, seed)."""
    return {**base, "control": module_hash(control), "metric": metric, "inputs": dict(inputs)}


def _encode(value: MetricValue, path: str, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    replicates = None
    if value.replicates is not None:
        replicates = f"{path}replicates"
        tensors[replicates] = torch.from_numpy(value.replicates.copy())
    return {
        "value": value.value,
        "replicates": replicates,
        "unit": value.unit,
        "details": value.details,
        "applicable": value.applicable,
        "breakdown": value.breakdown,
        "nulls": {k: _encode(v, f"{path}nulls.{k}.", tensors) for k, v in value.nulls.items()},
        "ceilings": {
            k: _encode(v, f"{path}ceilings.{k}.", tensors) for k, v in value.ceilings.items()
        },
    }


def _decode(data: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> MetricValue:
    name = data["replicates"]
    return MetricValue(
        data["value"],
        None if name is None else tensors[name].numpy(),
        unit=data["unit"],
        details=data["details"],
        applicable=data["applicable"],
        nulls={k: _decode(v, tensors) for k, v in data["nulls"].items()},
        ceilings={k: _decode(v, tensors) for k, v in data["ceilings"].items()},
        breakdown=data["breakdown"],
    )


def load_value(store: Store, key: Mapping[str, Any]) -> MetricValue | None:
    hit = store.get(CONTROL_VALUE, key)
    if hit is None or not isinstance(hit.data, dict):
        return None
    try:
        return _decode(hit.data, hit.tensors)
    except (KeyError, TypeError):  # an entry of another layout: recomputed and replaced
        return None


def store_value(store: Store, key: Mapping[str, Any], value: MetricValue) -> bool:
    """Store a value (False when it holds what JSON cannot give back exactly)."""
    tensors: dict[str, torch.Tensor] = {}
    data = _encode(value, "", tensors)
    try:
        if json.loads(json.dumps(data)) != data:
            return False
    except (TypeError, ValueError):
        return False
    return store.put(CONTROL_VALUE, key, tensors, data)


def cached_control_values(
    subject: SubjectContext,
    metrics: Sequence[str],
    inputs: Mapping[str, Any],
    compute: Callable[[], dict[str, V]],
) -> dict[str, V | MetricValue]:
    """``compute()`` for a subject, served from the value cache when the subject is a
    random-init control whose every value in ``metrics`` is stored under ``inputs``
    (anything else is computed; the control's computed values are stored)."""
    cache = subject.group.value_cache()
    if cache is None or subject.ref.control != RANDOM_INIT:
        return compute()  # type: ignore[return-value]
    store, base = cache
    inputs = {
        **inputs,
        "hook": subject.group.site.name,
        "seed": subject.run.seed,
        "bootstrap": subject.run.bootstrap,
    }
    keys = {name: control_key(base, subject.sae, name, inputs) for name in metrics}
    stored = {name: load_value(store, key) for name, key in keys.items()}
    if all(value is not None for value in stored.values()):
        return stored  # type: ignore[return-value]
    out = compute()
    for name, value in out.items():
        if name in keys and isinstance(value, MetricValue):
            store_value(store, keys[name], value)
    return out  # type: ignore[return-value]
