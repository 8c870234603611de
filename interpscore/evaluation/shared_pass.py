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

With a value cache (:mod:`interpscore.evaluation.pass_cache`) the pass reuses what does
not depend on the SAEs under test: stored batches replace the runs to the hook (and the
clean logits come from the stored last layer's output through the final norm and the
unembedding, no layer), a
``cacheable`` accumulator's stored batch statistics replace its ``add_batch`` calls, and
a random-init control runs only through the accumulators whose result is not stored.
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

from interpscore.evaluation.heap import release_free_memory
from interpscore.evaluation.pass_cache import PassCache
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
    #: True when what ``add_batch`` gathers and each result depend on nothing but the
    #: batches, the SAE and :meth:`cache_params`: then both may come from the value cache.
    cacheable: bool = False

    def cache_params(self) -> dict[str, Any]:
        """Settings that shape this accumulator's results (part of their cache keys)."""
        return {}

    def start(self, saes: Mapping[str, nn.Module]) -> None:
        """Called once before the first batch."""

    def add_batch(self, batch: Batch) -> None:
        """Called once per batch, before the SAEs."""

    def add_sae(self, key: str, batch: Batch, f: torch.Tensor, x_hat: torch.Tensor) -> None:
        """Called per batch for each SAE with its latents and reconstruction."""

    def result(self, key: str) -> Any:
        """What the SAE ``key`` gets from this accumulator after the pass."""
        raise KeyError(key)

    def group_state(self) -> Any:
        """What ``add_batch`` gathered, as a mapping of arrays (``cacheable`` only)."""
        return None

    def restore_group(self, state: Mapping[str, Any]) -> None:
        """Take stored ``group_state``, after ``start``; ``add_batch`` is then not called."""
        raise TypeError(f"accumulator {self.name} keeps no batch statistics")


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
    cache: PassCache | None = None,
) -> PassResult:
    """Run the pass for every SAE in ``saes`` (all on ``site`` of ``lm``), reusing what
    ``cache`` holds."""
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
    served = _stored_controls(cache, saes, accumulators, ends) if cache else {}
    todo = {key: [a for a in accumulators if a.name not in served.get(key, {})] for key in saes}
    for acc in accumulators:
        acc.start({k: m for k, m in saes.items() if acc in todo[k]})
    restored = _restore_groups(cache, accumulators, ends) if cache else set()
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
            needs_logits = any(a.needs_logits for a in active)
            stored = cache.batch(rows) if cache else None
            if stored is not None:
                x, logp_clean = _stored_batch(lm, site, tokens, stored, needs_logits, calls)
            else:
                x, logp_clean, final = _lm_batch(lm, site, tokens, needs_logits, cache, calls)
                if cache:
                    cache.put_batch(rows, x, final)
                del final
            batch = Batch(lm, site, rows, tokens, mask, x, logp_clean, calls)
            for acc in active:
                if id(acc) not in restored:
                    acc.add_batch(batch)
            for key, sae in saes.items():
                needed = [a for a in active if a in todo[key]]
                if key in errors or not needed:
                    continue
                try:
                    f = sae.encode(x)
                    x_hat = sae.decode(f)
                    for acc in needed:
                        acc.add_sae(key, batch, f, x_hat)
                    del f, x_hat
                except Exception as exc:  # noqa: BLE001 - recorded per SAE, raised in its own tests
                    log.error("SAE %s failed during the pass on %s: %s", key, site.name, exc)
                    errors[key] = exc
            del batch, x, logp_clean
            release_free_memory()  # peak memory flat in the window (see evaluation.heap)
    info.seconds = time.perf_counter() - start
    info.lm_forward_calls = dict(calls)
    results = {
        acc.name: {key: acc.result(key) for key in saes if key not in errors and acc in todo[key]}
        for acc in accumulators
    }
    for key, stored_results in served.items():
        for name, result in stored_results.items():
            results[name][key] = result
    if cache:
        _store(cache, accumulators, ends, restored, results, served)
    return PassResult(results, errors, info)


def _lm_batch(
    lm: HookedLM,
    site: HookSite,
    tokens: torch.Tensor,
    needs_logits: bool,
    cache: PassCache | None,
    calls: dict[str, int],
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The hook activations of a batch, the clean log-probabilities when needed, and (to
    store, with a cache) the last layer's output they were computed from."""
    if not needs_logits:
        calls["to_hook"] = calls.get("to_hook", 0) + 1
        return lm.activations(tokens, site), None, None
    calls["clean_full"] = calls.get("clean_full", 0) + 1
    if cache is not None and lm.final_site not in (None, site):
        x, final, logits = lm.clean_pass_with_final(tokens, site)
    else:  # no cache, or the hook is the last layer's output: x is what would be kept
        (x, logits), final = lm.clean_pass(tokens, site), None
    return x, torch.log_softmax(logits.to(torch.float32), dim=-1), final


def _stored_batch(
    lm: HookedLM,
    site: HookSite,
    tokens: torch.Tensor,
    stored: Mapping[str, torch.Tensor],
    needs_logits: bool,
    calls: dict[str, int],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stored hook activations, and the clean log-probabilities recomputed from what is
    stored: from the last layer's output (final norm and unembedding only), or else from
    one tail run on the hook activations. Either way the very same inputs reach the same
    modules, so the numbers are the full forward's."""
    x = stored["x"].to(lm.device)
    calls["cached"] = calls.get("cached", 0) + 1
    if not needs_logits:
        return x, None
    final = stored.get("final", x if site == lm.final_site else None)
    if final is not None and lm.final_site is not None:
        calls["clean_head"] = calls.get("clean_head", 0) + 1
        logits = lm.logits_from(tokens, lm.final_site, final.to(lm.device))
    else:
        calls["clean_tail"] = calls.get("clean_tail", 0) + 1
        logits = lm.logits_from(tokens, site, x)
    return x, torch.log_softmax(logits.to(torch.float32), dim=-1)


def _stored_controls(
    cache: PassCache,
    saes: Mapping[str, nn.Module],
    accumulators: list[Accumulator],
    ends: dict[int, int],
) -> dict[str, dict[str, Any]]:
    """Stored results of the controls, by control and accumulator: a control runs only
    through the accumulators whose result is not stored (none: it leaves the pass)."""
    served: dict[str, dict[str, Any]] = {}
    for key in saes:
        if key not in cache.controls:
            continue
        for acc in accumulators:
            if not acc.cacheable:
                continue
            result = cache.control(key, acc.name, acc.cache_params(), ends[id(acc)])
            if result is not None:
                served.setdefault(key, {})[acc.name] = result
    return served


def _restore_groups(
    cache: PassCache, accumulators: list[Accumulator], ends: dict[int, int]
) -> set[int]:
    """Accumulators whose batch statistics came from the cache (by ``id``)."""
    restored = set()
    for acc in accumulators:
        params = acc.cache_params()
        state = cache.group(acc.name, params, ends[id(acc)]) if acc.cacheable else None
        if state is not None:
            acc.restore_group(state)
            restored.add(id(acc))
    return restored


def _store(
    cache: PassCache,
    accumulators: list[Accumulator],
    ends: dict[int, int],
    restored: set[int],
    results: dict[str, dict[str, Any]],
    served: Mapping[str, Any],
) -> None:
    """Store the batch statistics and the controls' results that were computed."""
    for acc in accumulators:
        if not acc.cacheable:
            continue
        params = acc.cache_params()
        if id(acc) not in restored:
            cache.put_group(acc.name, params, ends[id(acc)], acc.group_state())
        for key, result in results[acc.name].items():
            if key in cache.controls and acc.name not in served.get(key, {}):
                cache.put_control(key, acc.name, params, ends[id(acc)], result)
