"""Activating and non-activating examples of SAE latents, collected in the shared pass.

Each sequence of the window is cut into fixed windows of ``window`` tokens after BOS
(delphi's 32-token examples). Before anything is sampled, sequences are split at random
(seeded) into an *explain* half and a *test* half, so explanations and the examples that
test them never share a sequence (delphi draws both from one pool). For a seeded sample of
candidate latents the :class:`ExampleCollector` keeps, per latent and half, a uniform
sample without replacement of the windows where it fires (priority sampling with a hash of
(sequence, window, latent) as the priority, so the result does not depend on batching),
the strongest test windows, and a sample of test windows where it never fires. Memory is
bounded by latents × kept examples × window, whatever the number of tokens read.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from interpscore.evaluation.cache_keys import tensor_hash
from interpscore.evaluation.shared_pass import Accumulator, Batch

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def priority(ids: np.ndarray, seed: int) -> np.ndarray:
    """A reproducible uniform number in [0, 1) per integer id (splitmix64 of id and seed)."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) + np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9) & _MASK64
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB) & _MASK64
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass
class Pool:
    """Kept windows per candidate latent (row-major over candidates): the best ``size`` by
    ``keys``, with where each window is and the latent's activation on its tokens."""

    keys: torch.Tensor  # (C, size) float64, -inf where empty
    rows: torch.Tensor  # (C, size) int64
    starts: torch.Tensor  # (C, size) int64
    peaks: torch.Tensor  # (C, size) float32
    acts: torch.Tensor | None  # (C, size, window) float32, None for non-activating pools

    @classmethod
    def empty(cls, n: int, size: int, window: int, with_acts: bool) -> Pool:
        return cls(
            torch.full((n, size), -math.inf, dtype=torch.float64),
            torch.zeros((n, size), dtype=torch.long),
            torch.zeros((n, size), dtype=torch.long),
            torch.zeros((n, size)),
            torch.zeros((n, size, window)) if with_acts else None,
        )

    def merge(
        self,
        keys: torch.Tensor,
        rows: torch.Tensor,
        starts: torch.Tensor,
        peaks: torch.Tensor,
        acts: torch.Tensor | None,
    ) -> None:
        """Keep the best of the kept and the new windows (new: (C, M) and (C, M, window))."""
        all_keys = torch.cat([self.keys, keys], dim=1)
        best = torch.topk(all_keys, self.keys.shape[1], dim=1).indices
        self.keys = all_keys.gather(1, best)
        self.rows = torch.cat([self.rows, rows], dim=1).gather(1, best)
        self.starts = torch.cat([self.starts, starts], dim=1).gather(1, best)
        self.peaks = torch.cat([self.peaks, peaks], dim=1).gather(1, best)
        if self.acts is not None and acts is not None:
            index = best[..., None].expand(-1, -1, self.acts.shape[2])
            self.acts = torch.cat([self.acts, acts], dim=1).gather(1, index)

    def entries(self, c: int) -> list[int]:
        """Positions of the kept windows of candidate ``c``."""
        return [i for i in range(self.keys.shape[1]) if math.isfinite(float(self.keys[c, i]))]


@dataclass
class Example:
    """One window of one sequence, with the latent's activation on each of its tokens."""

    row: int
    start: int
    tokens: list[int]
    acts: np.ndarray

    @property
    def id(self) -> str:
        return f"{self.row}:{self.start}"

    @property
    def peak(self) -> float:
        return float(self.acts.max()) if len(self.acts) else 0.0


@dataclass
class LatentExamples:
    """What the pass kept for the candidate latents of one SAE."""

    candidates: np.ndarray
    explain_counts: np.ndarray
    test_counts: np.ndarray
    windows_per_half: tuple[int, int]
    explain: Pool
    test: Pool
    strongest: Pool
    silent: Pool
    tokens: np.ndarray
    window: int

    def fingerprint(self) -> str:
        """A content hash of the candidates, their counts, every pool and the windows'
        tokens: what a random-init control's stored autointerp values are keyed by."""
        arrays: list[Any] = [self.candidates, self.explain_counts, self.test_counts, self.tokens]
        for pool in (self.explain, self.test, self.strongest, self.silent):
            arrays += [pool.keys, pool.rows, pool.starts, pool.peaks]
            arrays += [] if pool.acts is None else [pool.acts]
        shape = np.array([*self.windows_per_half, self.window], dtype=np.int64)
        return tensor_hash(shape, *arrays)

    def example(self, pool: Pool, c: int, i: int) -> Example:
        row, start = int(pool.rows[c, i]), int(pool.starts[c, i])
        tokens = self.tokens[row, start : start + self.window].tolist()
        acts = pool.acts[c, i, : len(tokens)].numpy() if pool.acts is not None else None
        return Example(row, start, tokens, acts if acts is not None else np.zeros(len(tokens)))

    def stratified(
        self, pool: Pool, c: int, n: int, n_quantiles: int, rng: np.random.Generator
    ) -> list[Example]:
        """``n`` kept activating windows spread over activation quantiles (delphi's sampling):
        sorted by peak activation, cut into equal-count slices, the same number from each."""
        kept = sorted(pool.entries(c), key=lambda i: -float(pool.peaks[c, i]))
        if len(kept) <= n:
            return [self.example(pool, c, i) for i in kept]
        slices = [s for s in np.array_split(np.array(kept), min(n_quantiles, n)) if len(s)]
        chosen: list[int] = []
        per = [n // len(slices) + (k < n % len(slices)) for k in range(len(slices))]
        for part, take in zip(slices, per, strict=True):
            chosen += [int(i) for i in rng.choice(part, min(take, len(part)), replace=False)]
        return [self.example(pool, c, i) for i in chosen]

    def first(self, pool: Pool, c: int, n: int) -> list[Example]:
        """The first ``n`` kept windows in key order (a uniform sample without replacement
        for priority-keyed pools, the strongest for the peak-keyed one)."""
        return [self.example(pool, c, i) for i in pool.entries(c)[:n]]


@dataclass
class _Kept:
    """The collector's state for one SAE."""

    candidates: np.ndarray
    seed: int
    explain_counts: np.ndarray
    test_counts: np.ndarray
    explain: Pool
    test: Pool
    strongest: Pool
    silent: Pool


class ExampleCollector(Accumulator):
    """Collects examples of a seeded sample of candidate latents of every SAE in the pass."""

    name = "autointerp_examples"

    def __init__(
        self,
        n_rows: int,
        n_candidates: int | None,
        window: int,
        pool_size: int,
        silent_size: int,
        strongest_size: int,
        seed: int,
    ) -> None:
        self.n_rows = n_rows
        self.n_candidates = n_candidates
        self.window = window
        self.sizes = (pool_size, silent_size, strongest_size)
        self.seed = seed
        self.is_test = np.random.default_rng(seed).random(n_rows) < 0.5

    def start(self, saes: Mapping[str, nn.Module]) -> None:
        self.tokens: list[np.ndarray] = []
        self.halves = [0, 0]
        self.kept: dict[str, _Kept] = {}
        pool, silent, strongest = self.sizes
        for key, sae in saes.items():
            d_sae = int(sae.cfg.d_sae)
            seed = self.seed + zlib.crc32(key.encode())
            n = d_sae if self.n_candidates is None else min(d_sae, self.n_candidates)
            self.kept[key] = _Kept(
                candidates=np.random.default_rng(seed).permutation(d_sae)[:n],
                seed=seed,
                explain_counts=np.zeros(n, dtype=np.int64),
                test_counts=np.zeros(n, dtype=np.int64),
                explain=Pool.empty(n, pool, self.window, True),
                test=Pool.empty(n, pool, self.window, True),
                strongest=Pool.empty(n, strongest, self.window, True),
                silent=Pool.empty(n, silent, self.window, False),
            )

    def add_batch(self, batch: Batch) -> None:
        tokens = batch.tokens.cpu().numpy()
        self.tokens.append(tokens)
        n_windows = len(range(1, tokens.shape[1], self.window))
        test = self.is_test[batch.rows]
        self.halves[0] += int((~test).sum()) * n_windows
        self.halves[1] += int(test.sum()) * n_windows

    def add_sae(self, key: str, batch: Batch, f: torch.Tensor, x_hat: torch.Tensor) -> None:
        k = self.kept[key]
        candidates = torch.from_numpy(k.candidates)
        acts = f[..., candidates.to(f.device)].to(torch.float32).cpu()  # (B, T, C)
        acts = acts * batch.mask.cpu()[..., None]
        b, t, c = acts.shape
        n_windows = len(range(1, t, self.window))
        padded = torch.zeros(b, 1 + n_windows * self.window, c)
        padded[:, :t] = acts
        grid = padded[:, 1:].reshape(b, n_windows, self.window, c)  # (B, nW, W, C)
        peaks = grid.amax(dim=2)  # (B, nW, C)
        rows = torch.arange(batch.rows.start, batch.rows.stop)
        starts = 1 + self.window * torch.arange(n_windows)
        window_ids = rows[:, None, None] * n_windows + torch.arange(n_windows)[None, :, None]
        ids = (window_ids * 2**20 + candidates[None, None, :]).numpy()
        prio = torch.from_numpy(priority(ids, k.seed))
        test = torch.from_numpy(self.is_test[batch.rows])[:, None, None]
        firing = peaks > 0

        def flat(x: torch.Tensor) -> torch.Tensor:  # (B, nW, C, ...) -> (C, B*nW, ...)
            return x.reshape(b * n_windows, c, *x.shape[3:]).transpose(0, 1)

        where = (
            flat(rows[:, None, None].expand(b, n_windows, c).contiguous()),
            flat(starts[None, :, None].expand(b, n_windows, c).contiguous()),
            flat(peaks),
        )
        window_acts = flat(grid.permute(0, 1, 3, 2).contiguous())  # (C, B*nW, W)
        never = torch.tensor(-math.inf, dtype=torch.float64)
        for in_half, counts, pool in (
            (~test, k.explain_counts, k.explain),
            (test, k.test_counts, k.test),
        ):
            keep = firing & in_half
            counts += keep.sum(dim=(0, 1)).numpy()
            pool.merge(flat(torch.where(keep, prio, never)), *where, window_acts)
        strong = torch.where(firing & test, peaks.double(), never)
        k.strongest.merge(flat(strong), *where, window_acts)
        k.silent.merge(flat(torch.where(~firing & test, prio, never)), *where, None)

    def result(self, key: str) -> LatentExamples:
        k = self.kept[key]
        return LatentExamples(
            candidates=k.candidates,
            explain_counts=k.explain_counts,
            test_counts=k.test_counts,
            windows_per_half=(self.halves[0], self.halves[1]),
            explain=k.explain,
            test=k.test,
            strongest=k.strongest,
            silent=k.silent,
            tokens=np.concatenate(self.tokens),
            window=self.window,
        )
