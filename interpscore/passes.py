"""The shared language-model pass behind every core metric.

For each batch of the token window, the model runs once to produce the hooked
activations and the clean logits. The zero-ablation run and each SAE's patched run
start from the hook. Every SAE on the hook reads the same activations, so adding an
SAE costs one encode/decode and one partial forward per batch, never a new clean pass.
Statistics are kept per sequence (O(batch) work per step, O(sequences) memory).

A failure inside one SAE (a shape error, say) is recorded against that SAE, whose
partial statistics are dropped; the other SAEs carry on.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from interpscore.data import TokenWindow
from interpscore.hooked import HookedLM, HookSite
from interpscore.metrics.core import (
    activation_sums,
    clean_loss_sums,
    downstream_sums,
    reconstruction_sums,
    sparsity_sums,
)
from interpscore.metrics.entropy import TopActivations
from interpscore.metrics.stats import SequenceStats

log = logging.getLogger("interpscore.passes")


@dataclass
class PassInfo:
    """What one shared pass read and what it cost."""

    model: str
    hook: str
    dataset: str
    n_sequences: int
    context_len: int
    n_positions: int
    n_tokens: int
    downstream: bool
    sae_ids: list[str]
    seconds: float = 0.0
    lm_forward_calls: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PassResult:
    """Per-sequence statistics of the hook group and of each SAE, and per-SAE errors."""

    group: dict[str, np.ndarray]
    per_sae: dict[str, dict[str, np.ndarray]]
    top: dict[str, tuple[np.ndarray, np.ndarray]]
    errors: dict[str, BaseException]
    info: PassInfo


def run_core_pass(
    lm: HookedLM,
    site: HookSite,
    window: TokenWindow,
    saes: dict[str, torch.nn.Module],
    *,
    batch_size: int,
    downstream: bool,
    progress: AbstractContextManager[Any] | None = None,
    show_progress: bool = True,
    top_n: int = 50,
) -> PassResult:
    """Run the shared pass for every SAE in ``saes`` (all on ``site`` of ``lm``)."""
    info = PassInfo(
        model=lm.name,
        hook=site.name,
        dataset=window.dataset,
        n_sequences=window.n_sequences,
        context_len=window.context_len,
        n_positions=window.n_positions,
        n_tokens=window.n_tokens,
        downstream=downstream,
        sae_ids=list(saes),
    )
    group = SequenceStats()
    stats = {sid: SequenceStats() for sid in saes}
    errors: dict[str, BaseException] = {}
    tops = (
        {sid: TopActivations(int(sae.cfg.d_sae), top_n) for sid, sae in saes.items()}
        if top_n
        else {}
    )
    calls = {"clean_full": 0, "to_hook": 0, "from_hook_zero": 0, "from_hook_sae": 0}
    device = lm.device
    start = time.perf_counter()
    batches = range(0, window.n_sequences, batch_size)
    with progress or nullcontext(), torch.inference_mode():
        bar = tqdm(
            batches,
            desc=f"{lm.name} {site.name}: {len(saes)} SAE(s)",
            unit="batch",
            disable=not show_progress,
            leave=False,
        )
        for lo in bar:
            tokens = window.tokens[lo : lo + batch_size].to(device)
            mask = ~window.special[lo : lo + batch_size].to(device)
            if downstream:
                x, logits = lm.clean_pass(tokens, site)
                calls["clean_full"] += 1
                logp_clean = torch.log_softmax(logits.to(torch.float32), dim=-1)
                del logits
                group.add(**clean_loss_sums(logp_clean, tokens, mask))
                zeroed = torch.where(mask[..., None], torch.zeros_like(x), x)
                group.add(
                    **downstream_sums(
                        logp_clean, lm.logits_from(tokens, site, zeroed), tokens, mask, "zero"
                    )
                )
                calls["from_hook_zero"] += 1
            else:
                x = lm.activations(tokens, site)
                calls["to_hook"] += 1
            group.add(**activation_sums(x, mask))
            for sid, sae in saes.items():
                if sid in errors:
                    continue
                try:
                    f = sae.encode(x)
                    x_hat = sae.decode(f)
                    rows = {**reconstruction_sums(x, x_hat, mask), **sparsity_sums(f, mask)}
                    if top_n:
                        tops[sid].update(f, tokens, mask)
                    if downstream:
                        patched = torch.where(mask[..., None], x_hat.to(x.dtype), x)
                        logits_sae = lm.logits_from(tokens, site, patched)
                        calls["from_hook_sae"] += 1
                        rows |= downstream_sums(logp_clean, logits_sae, tokens, mask, "sae")
                    stats[sid].add(**rows)
                except Exception as exc:  # noqa: BLE001 - recorded per SAE, raised in its own tests
                    log.error("SAE %s failed during the pass on %s: %s", sid, site.name, exc)
                    errors[sid] = exc
    info.seconds = time.perf_counter() - start
    info.lm_forward_calls = {k: v for k, v in calls.items() if v}
    return PassResult(
        group=group.arrays,
        per_sae={sid: s.arrays for sid, s in stats.items() if sid not in errors},
        top={
            sid: (t.values.numpy(), t.tokens.numpy())
            for sid, t in tops.items()
            if sid not in errors
        },
        errors=errors,
        info=info,
    )
