"""The one language-model pass per (model, hook, window), fed to the suites' accumulators.

For each batch of the token window the model runs once: in full when an accumulator needs
the clean logits, otherwise only as far as the hook. Every SAE on the hook encodes the
same activations; each accumulator then sees the batch once (``add_batch``) and every
SAE's latents and reconstruction (``add_sae``). An accumulator that needs patched runs
asks the batch for them (:meth:`Batch.logits_with`), which starts at the hook and counts
the forward call. Adding an SAE therefore costs one encode/decode and its accumulators'
work per batch, never a new clean pass; adding a metric family costs its accumulator.

An accumulator may read more of the window than the core metrics do (``n_rows``): the
window is packed for the largest request, batches are cut at every accumulator's end,
and rows beyond the core window run only to the hook.

A failure inside one SAE (a shape error, say) is recorded against that SAE, whose
partial statistics are dropped; the other SAEs carry on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from interpscore.subjects.data import TokenWindow
from interpscore.subjects.hooked import HookedLM, HookSite

log = logging.getLogger("interpscore.pass")


@dataclass
class Batch:
    """One batch of the window, as every accumulator sees it."""

    lm: HookedLM
    site: HookSite
    rows: slice
    tokens: torch.Tensor
    mask: torch.Tensor
    x: torch.Tensor
    logp_clean: torch.Tensor | None
    calls: dict[str, int]

    def logits_with(self, acts: torch.Tensor, label: str) -> torch.Tensor:
        """Logits with the hook's activations replaced by ``acts`` (counted as ``label``)."""
        self.calls[label] = self.calls.get(label, 0) + 1
        return self.lm.logits_from(self.tokens, self.site, acts)


class Accumulator:
    """Statistics a suite collects during the shared pass.

    Subclasses set ``name`` (how suites ask for the result), ``needs_logits`` (whether the
    batch must carry the clean log-probabilities) and ``n_rows`` (rows of the window read;
    None means the core window), and override the methods they need. One instance serves
    one pass; ``start`` receives the SAEs (by report key) before the first batch.
    """

    name: str = ""
    needs_logits: bool = False
    n_rows: int | None = None

    def start(self, saes: Mapping[str, nn.Module]) -> None:
        """Called once before the first batch."""

    def add_batch(self, batch: Batch) -> None:
        """Called once per batch, before the SAEs."""

    def add_sae(self, key: str, batch: Batch, f: torch.Tensor, x_hat: torch.Tensor) -> None:
        """Called per batch for each SAE with its latents and reconstruction."""

    def result(self, key: str) -> Any:
        """What the SAE ``key`` gets from this accumulator after the pass."""
        raise KeyError(key)


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
    sae_ids: list[str]
    accumulators: list[str]
    seconds: float = 0.0
    lm_forward_calls: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PassResult:
    """Each accumulator's results by SAE key, the SAEs that failed, and the pass's cost."""

    results: dict[str, dict[str, Any]]
    errors: dict[str, BaseException]
    info: PassInfo


def _batches(ends: list[int], batch_size: int) -> Iterator[slice]:
    """Row slices of at most ``batch_size`` that never straddle one of ``ends``."""
    start = 0
    for end in sorted(set(ends)):
        for lo in range(start, end, batch_size):
            yield slice(lo, min(lo + batch_size, end))
        start = end


def run_shared_pass(
    lm: HookedLM,
    site: HookSite,
    window: TokenWindow,
    saes: Mapping[str, nn.Module],
    accumulators: list[Accumulator],
    *,
    core_rows: int | None = None,
    batch_size: int,
    progress: AbstractContextManager[Any] | None = None,
    show_progress: bool = True,
) -> PassResult:
    """Run the pass for every SAE in ``saes`` (all on ``site`` of ``lm``)."""
    core_rows = window.n_sequences if core_rows is None else core_rows
    ends = {id(a): min(a.n_rows or core_rows, window.n_sequences) for a in accumulators}
    info = PassInfo(
        model=lm.name,
        hook=site.name,
        dataset=window.dataset,
        n_sequences=window.n_sequences,
        context_len=window.context_len,
        n_positions=window.n_positions,
        n_tokens=window.n_tokens,
        sae_ids=list(saes),
        accumulators=[a.name for a in accumulators],
    )
    for acc in accumulators:
        acc.start(saes)
    errors: dict[str, BaseException] = {}
    calls: dict[str, int] = {}
    start = time.perf_counter()
    slices = list(_batches(list(ends.values()), batch_size))
    with progress or nullcontext(), torch.inference_mode():
        bar = tqdm(
            slices,
            desc=f"{lm.name} {site.name}: {len(saes)} SAE(s)",
            unit="batch",
            disable=not show_progress,
            leave=False,
        )
        for rows in bar:
            active = [a for a in accumulators if ends[id(a)] >= rows.stop]
            tokens = window.tokens[rows].to(lm.device)
            mask = ~window.special[rows].to(lm.device)
            logp_clean = None
            if any(a.needs_logits for a in active):
                x, logits = lm.clean_pass(tokens, site)
                calls["clean_full"] = calls.get("clean_full", 0) + 1
                logp_clean = torch.log_softmax(logits.to(torch.float32), dim=-1)
                del logits
            else:
                x = lm.activations(tokens, site)
                calls["to_hook"] = calls.get("to_hook", 0) + 1
            batch = Batch(lm, site, rows, tokens, mask, x, logp_clean, calls)
            for acc in active:
                acc.add_batch(batch)
            for key, sae in saes.items():
                if key in errors:
                    continue
                try:
                    f = sae.encode(x)
                    x_hat = sae.decode(f)
                    for acc in active:
                        acc.add_sae(key, batch, f, x_hat)
                except Exception as exc:  # noqa: BLE001 - recorded per SAE, raised in its own tests
                    log.error("SAE %s failed during the pass on %s: %s", key, site.name, exc)
                    errors[key] = exc
    info.seconds = time.perf_counter() - start
    info.lm_forward_calls = dict(calls)
    results = {
        acc.name: {key: acc.result(key) for key in saes if key not in errors}
        for acc in accumulators
    }
    return PassResult(results, errors, info)
