"""A family's prepared state in the value cache: what it computes once per (model, hook)
before any SAE (absorption's word activations and letter probes, task ground truth's
prompt runs), stored as named arrays under the model's key and the family's inputs.

A family turns its state into arrays and back; :func:`cached_arrays` serves the arrays
from the store when an entry of the same key holds every name the family reads, and
builds (and stores) them otherwise. Values are bit-for-bit those of a cold build: arrays
are stored as they are, in their own dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np

from interpscore.evaluation.cache import Store
from interpscore.evaluation.pass_cache import arrays_to_tensors, tensors_to_arrays


def cached_arrays(
    cache: tuple[Store, Mapping[str, Any]] | None,
    kind: str,
    key: Mapping[str, Any],
    required: Collection[str],
    build: Callable[[], dict[str, np.ndarray]],
) -> tuple[dict[str, np.ndarray], bool]:
    """``build()``, or its stored arrays when ``cache`` (the store and the model's key) holds
    an entry of ``kind`` under ``key`` with every name in ``required``; and whether they
    came from the store."""
    if cache is None:
        return build(), False
    store, base = cache
    full = {**base, **key}
    hit = store.get(kind, full)
    if hit is not None:
        arrays = tensors_to_arrays(hit.tensors)
        if set(required) <= set(arrays):
            return arrays, True
    arrays = build()
    tensors = arrays_to_tensors(arrays)
    if tensors is not None:
        store.put(kind, full, tensors)
    return arrays, False
