"""Abstractness after Heap et al. (2025): entropy of each latent's top activations over
token ids.

For every latent the ``n_top`` largest activations on the evaluation window are kept
(streamed, O(d_sae·n_top) memory) with the id of the token they fired on. The latent's
activation mass over those token ids forms a distribution; its entropy (nats) is high for
latents that respond to many different tokens (more abstract) and zero for a latent that
only fires on one token. Latents with fewer than ``min_count`` positive activations in
their top set are left out, since their entropy is bounded by the count.
"""

from __future__ import annotations

import numpy as np
import torch


class TopActivations:
    """Running top-``n`` activations per latent and the token ids they fired on."""

    def __init__(self, d_sae: int, n_top: int) -> None:
        self.values = torch.zeros(d_sae, n_top)
        self.tokens = torch.full((d_sae, n_top), -1, dtype=torch.long)

    def update(self, f: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> None:
        """Merge a batch: ``f`` (..., d_sae) latents, ``tokens``/``mask`` (...)."""
        flat = f[mask].to(torch.float32).T  # (d_sae, n_tokens)
        ids = tokens[mask].expand(flat.shape[0], -1)
        values = torch.cat([self.values, flat.clamp(min=0)], dim=1)
        top = torch.topk(values, self.values.shape[1], dim=1)
        self.tokens = torch.cat([self.tokens, ids], dim=1).gather(1, top.indices)
        self.values = top.values


def entropy_per_latent(values: np.ndarray, tokens: np.ndarray, min_count: int) -> np.ndarray:
    """Entropy (nats) of each latent's activation mass over token ids; NaN if too few."""
    out = np.full(values.shape[0], np.nan)
    for i in range(values.shape[0]):
        positive = values[i] > 0
        if positive.sum() < min_count:
            continue
        ids, inverse = np.unique(tokens[i][positive], return_inverse=True)
        mass = np.bincount(inverse, weights=values[i][positive], minlength=len(ids))
        p = mass / mass.sum()
        out[i] = float(-(p * np.log(p)).sum())
    return out
