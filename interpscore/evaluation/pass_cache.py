"""What the shared pass reuses from the value cache: nothing that depends on the SAE.

Three kinds of entries, all keyed by the model's content, the hook, the exact token ids
of the window, dtype, device kind and library versions (:func:`pass_key`):

* ``lm_batch``: one batch's hook activations and the last layer's output, so that a warm
  pass runs no layer for the clean logits (only the final norm and the unembedding: storing
  vocabulary-wide log-probabilities would cost 200 MB per batch of SmolLM2);
* ``group_stats``: what an accumulator gathered from the batches alone (core: clean and
  zero-ablated losses, activation sums), so the zero-ablation runs are skipped;
* ``control_result``: an accumulator's result for a random-init control, keyed by a hash
  of the control's weights (deterministic given class, config and seed) and the
  accumulator's :meth:`~interpscore.evaluation.shared_pass.Accumulator.cache_params`, so
  a control runs only through the accumulators whose result is not stored.

Results are stored only when they are a mapping of arrays (per-sequence sums, counts):
anything else is recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from interpscore.evaluation.cache import Store
from interpscore.evaluation.cache_keys import tensor_hash

LM_BATCH = "lm_batch"
GROUP_STATS = "group_stats"
CONTROL_RESULT = "control_result"


def pass_key(
    base: Mapping[str, Any], hook: str, tokens: torch.Tensor, special: torch.Tensor
) -> dict[str, Any]:
    """The fields every entry of one pass shares: the model's ``base`` key, the hook and
    the window's token ids (and which of them are special)."""
    return {**base, "hook": hook, "window": tensor_hash(tokens, special)}


def arrays_to_tensors(result: Any) -> dict[str, torch.Tensor] | None:
    """A result as tensors, when it is a mapping of numpy arrays (else None)."""
    if not isinstance(result, Mapping) or not result:
        return None
    if not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in result.items()):
        return None
    if any(v.dtype == object for v in result.values()):
        return None
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in result.items()}


def tensors_to_arrays(tensors: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in tensors.items()}


@dataclass
class PassCache:
    """The value cache as one pass sees it: ``key`` from :func:`pass_key`, and the hash
    of each random-init control's weights by its key in the pass."""

    store: Store
    key: dict[str, Any]
    controls: dict[str, str] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def _count(self, what: str) -> None:
        self.hits[what] = self.hits.get(what, 0) + 1

    # Batches -------------------------------------------------------------------------

    def _batch_key(self, rows: slice) -> dict[str, Any]:
        return {**self.key, "rows": [rows.start, rows.stop]}

    def batch(self, rows: slice) -> dict[str, torch.Tensor] | None:
        """A batch's stored hook activations ``x`` (and, when the clean pass kept it, the
        last layer's output ``final``), or None."""
        hit = self.store.get(LM_BATCH, self._batch_key(rows))
        if hit is None or "x" not in hit.tensors:
            return None
        self._count(LM_BATCH)
        return hit.tensors

    def put_batch(self, rows: slice, x: torch.Tensor, final: torch.Tensor | None) -> None:
        tensors = {"x": x} if final is None else {"x": x, "final": final}
        self.store.put(LM_BATCH, self._batch_key(rows), tensors)

    # Accumulators' batch-only statistics ---------------------------------------------

    def _group_key(self, name: str, params: Mapping[str, Any], rows: int) -> dict[str, Any]:
        return {**self.key, "accumulator": name, "params": dict(params), "rows": rows}

    def group(
        self, name: str, params: Mapping[str, Any], rows: int
    ) -> dict[str, np.ndarray] | None:
        hit = self.store.get(GROUP_STATS, self._group_key(name, params, rows))
        if hit is None:
            return None
        self._count(GROUP_STATS)
        return tensors_to_arrays(hit.tensors)

    def put_group(self, name: str, params: Mapping[str, Any], rows: int, state: Any) -> None:
        tensors = arrays_to_tensors(state)
        if tensors is not None:
            self.store.put(GROUP_STATS, self._group_key(name, params, rows), tensors)

    # Random-init controls ------------------------------------------------------------

    def _control_key(
        self, key: str, name: str, params: Mapping[str, Any], rows: int
    ) -> dict[str, Any]:
        return {
            **self._group_key(name, params, rows),
            "control": self.controls[key],
        }

    def control(
        self, key: str, name: str, params: Mapping[str, Any], rows: int
    ) -> dict[str, np.ndarray] | None:
        """A control's stored result from an accumulator, or None."""
        if key not in self.controls:
            return None
        hit = self.store.get(CONTROL_RESULT, self._control_key(key, name, params, rows))
        if hit is None:
            return None
        self._count(CONTROL_RESULT)
        return tensors_to_arrays(hit.tensors)

    def put_control(
        self, key: str, name: str, params: Mapping[str, Any], rows: int, result: Any
    ) -> None:
        tensors = arrays_to_tensors(result) if key in self.controls else None
        if tensors is not None:
            self.store.put(CONTROL_RESULT, self._control_key(key, name, params, rows), tensors)
