"""Token activations of probing-task texts, computed once per (model, hook, task).

Each text is truncated to ``max_tokens`` tokens (BOS included) and run to the hook only.
Activations at ordinary tokens are kept in one flat tensor with per-text offsets; BOS and
padding never enter a pooled feature (the InterpScore notebook pools BOS in, whose norm
dwarfs every other token's). Every SAE then needs only an encode of these tokens, and
every probing metric reads the same pooled features.

:func:`collect_cached` keeps them in the value cache, keyed by the model's content, the
hook and the exact token ids of the texts: a warm run tokenizes and runs no model.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from interpscore.evaluation.cache import Store
from interpscore.subjects.hooked import HookedLM, HookSite
from interpscore.subjects.tasks import ProbingTask
from interpscore.subjects.tokens import bos_id, boundary_ids, special_ids

#: Latents (rows × width) encoded at once when pooling: 128 MiB in float32.
MAX_BLOCK_ELEMENTS = 1 << 25


@dataclass
class TaskActivations:
    """Ordinary-token activations of a task's texts, and their per-text means."""

    task: ProbingTask
    acts: torch.Tensor
    offsets: np.ndarray
    seconds: float

    @property
    def n_texts(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.acts.shape[0])

    def pooled(self) -> np.ndarray:
        """Mean activation per text over its ordinary tokens, (n_texts, d)."""
        return segment_mean(self.acts, self.offsets)


def segment_mean(
    values: torch.Tensor, offsets: np.ndarray, transform=None, chunk: int = 8192
) -> np.ndarray:
    """Mean of consecutive row segments ``values[offsets[i]:offsets[i+1]]``.

    ``transform`` (e.g. an SAE's encode) is applied chunk by chunk first, so the
    transformed rows are never all held at once (a wide SAE gets shorter chunks: at most
    ``MAX_BLOCK_ELEMENTS`` latents per chunk); sums are kept in float64.
    """
    lengths = np.diff(offsets)
    index = torch.from_numpy(np.repeat(np.arange(len(lengths)), lengths))
    if transform is not None and values.shape[0]:
        width = transform(values[:1]).shape[1]
        chunk = min(chunk, max(1, MAX_BLOCK_ELEMENTS // width))
    sums: torch.Tensor | None = None
    for lo in range(0, values.shape[0], chunk):
        block = values[lo : lo + chunk]
        block = transform(block) if transform is not None else block
        if sums is None:
            sums = torch.zeros(len(lengths), block.shape[1], dtype=torch.float64)
        sums.index_add_(0, index[lo : lo + chunk], block.to(torch.float64))
    if sums is None:
        raise ValueError("no rows to pool")
    return (sums / torch.from_numpy(lengths).clamp(min=1)[:, None]).numpy()


def tokenize_texts(lm: HookedLM, texts: list[str], max_tokens: int) -> list[list[int]]:
    """BOS + the first ``max_tokens - 1`` tokens of each text (at least one real token)."""
    bos = bos_id(lm.tokenizer)
    encoded = lm.tokenizer(texts, add_special_tokens=False)["input_ids"]
    out = []
    for text, ids in zip(texts, encoded, strict=True):
        if not ids:
            raise ValueError(f"text {text!r} has no tokens")
        out.append([bos, *ids[: max_tokens - 1]])
    return out


@torch.inference_mode()
def collect(
    lm: HookedLM,
    site: HookSite,
    task: ProbingTask,
    max_tokens: int,
    batch_size: int = 32,
    show_progress: bool = True,
    sequences: list[list[int]] | None = None,
) -> TaskActivations:
    """Run every text to the hook (length-sorted batches, right padding, no attention
    across padding since the model is causal and padded positions are dropped);
    ``sequences`` are the texts' token ids when already tokenized."""
    start = time.perf_counter()
    if sequences is None:
        sequences = tokenize_texts(lm, task.texts, max_tokens)
    special = set(special_ids(lm.tokenizer))
    pad = boundary_ids(lm.tokenizer)[1]
    order = np.argsort([len(s) for s in sequences], kind="stable")
    per_text: list[torch.Tensor | None] = [None] * len(sequences)
    batches = range(0, len(order), batch_size)
    for lo in tqdm(
        batches,
        desc=f"{task.name} activations",
        unit="batch",
        disable=not show_progress,
        leave=False,
    ):
        chosen = order[lo : lo + batch_size]
        width = max(len(sequences[i]) for i in chosen)
        ids = torch.full((len(chosen), width), pad, dtype=torch.long)
        for row, i in enumerate(chosen):
            ids[row, : len(sequences[i])] = torch.tensor(sequences[i])
        acts = lm.activations(ids.to(lm.device), site).to("cpu", torch.float32)
        for row, i in enumerate(chosen):
            keep = torch.tensor([t not in special for t in sequences[i]])
            per_text[i] = acts[row, : len(sequences[i])][keep]
    lengths = [t.shape[0] for t in per_text]  # type: ignore[union-attr]
    if min(lengths) == 0:
        empty = task.texts[lengths.index(0)]
        raise ValueError(f"task {task.name}: text {empty!r} has only special tokens")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return TaskActivations(task, torch.cat(per_text), offsets, time.perf_counter() - start)  # type: ignore[arg-type]


TASK_ACTS = "task_acts"


def collect_cached(
    lm: HookedLM,
    site: HookSite,
    task: ProbingTask,
    max_tokens: int,
    batch_size: int,
    show_progress: bool,
    cache: tuple[Store, Mapping[str, Any]] | None,
) -> TaskActivations:
    """:func:`collect`, served from the value cache when ``cache`` (the store and the
    model's key) holds the same texts' activations."""
    if cache is None:
        return collect(lm, site, task, max_tokens, batch_size, show_progress)
    start = time.perf_counter()
    store, base = cache
    sequences = tokenize_texts(lm, task.texts, max_tokens)
    key = {
        **base,
        "hook": site.name,
        "batch_size": batch_size,
        "special": sorted(special_ids(lm.tokenizer)),
        "pad": boundary_ids(lm.tokenizer)[1],
        "token_ids": hashlib.sha256(json.dumps(sequences).encode()).hexdigest(),
    }
    hit = store.get(TASK_ACTS, key)
    if hit is not None and {"acts", "offsets"} <= set(hit.tensors):
        offsets = hit.tensors["offsets"].numpy()
        return TaskActivations(task, hit.tensors["acts"], offsets, time.perf_counter() - start)
    data = collect(lm, site, task, max_tokens, batch_size, show_progress, sequences)
    store.put(TASK_ACTS, key, {"acts": data.acts, "offsets": torch.from_numpy(data.offsets)})
    return data


@torch.inference_mode()
def pooled_latents(sae: torch.nn.Module, data: TaskActivations) -> np.ndarray:
    """Per-text mean of the SAE's latents over ordinary tokens, (n_texts, d_sae)."""
    return segment_mean(data.acts, data.offsets, transform=sae.encode)
