"""Abstractness after Heap et al. (2025): token entropy of each latent's top activations.

The :class:`TopActivationsAccumulator` keeps every latent's largest activations on the
window during the shared pass (no logits needed); ``token_entropy`` is the mean over
latents of the entropy of their activation mass over token ids, with a bootstrap interval
over latents.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from interpscore.evaluation.shared_pass import Accumulator, Batch
from interpscore.metrics.entropy import TopActivations, entropy_per_latent
from interpscore.metrics.stats import resample_weights
from interpscore.results.records import MetricValue
from interpscore.suites.base import GroupContext, MetricSpec, SubjectContext, Suite


@dataclass(frozen=True)
class AbstractnessSettings:
    top_n: int = 50
    min_count: int = 10


class TopActivationsAccumulator(Accumulator):
    """Each latent's ``top_n`` largest activations and the tokens they fired on."""

    name = "top_activations"
    cacheable = True

    def __init__(self, top_n: int) -> None:
        self.top_n = top_n

    def cache_params(self) -> dict[str, Any]:
        return {"top_n": self.top_n}

    def start(self, saes: Mapping[str, nn.Module]) -> None:
        self.tops = {
            key: TopActivations(int(sae.cfg.d_sae), self.top_n) for key, sae in saes.items()
        }

    def add_sae(self, key: str, batch: Batch, f: torch.Tensor, x_hat: torch.Tensor) -> None:
        self.tops[key].update(f, batch.tokens, batch.mask)

    def result(self, key: str) -> dict[str, np.ndarray]:
        top = self.tops[key]
        return {"values": top.values.numpy(), "tokens": top.tokens.numpy()}


class AbstractnessSuite(Suite):
    name = "abstractness"
    description = "Token entropy of latents' top activations (Heap et al. 2025)"
    settings_type = AbstractnessSettings
    on_model_controls = True
    metrics = (
        MetricSpec(
            "token_entropy",
            "mean over latents of the entropy (nats) of their top-activation mass over token "
            "ids; higher is more abstract",
            direction="none",
            bounds=(0.0, None),
            ci_unit="latent",
        ),
    )

    def accumulators(self, group: GroupContext) -> list[Accumulator]:
        return [TopActivationsAccumulator(group.settings(self.name).top_n)]

    def compute(self, subject: SubjectContext, metric: MetricSpec) -> dict[str, MetricValue]:
        s: AbstractnessSettings = subject.settings
        top = subject.pass_result("top_activations")
        values, tokens = top["values"], top["tokens"]
        entropies = entropy_per_latent(values, tokens, s.min_count)
        kept = entropies[np.isfinite(entropies)]
        if kept.size == 0:
            reason = f"no latent has {s.min_count} positive top activations"
            return {metric.name: MetricValue.not_applicable(reason)}
        replicates = None
        run = subject.run
        if run.bootstrap > 0 and kept.size > 1:
            seed = run.seed + zlib.crc32(subject.ref.key.encode())
            weights = resample_weights(kept.size, run.bootstrap, seed)
            replicates = weights @ kept / kept.size
        quantiles = np.quantile(kept, [0.1, 0.25, 0.5, 0.75, 0.9])
        details = {
            "latents": int(kept.size),
            "top_activations_per_latent": int(values.shape[1]),
            "min_positive_activations": s.min_count,
            "quantiles_10_25_50_75_90": [float(q) for q in quantiles],
            "histogram": np.histogram(kept, bins=10, range=(0, np.log(values.shape[1])))[
                0
            ].tolist(),
        }
        return {metric.name: MetricValue(float(kept.mean()), replicates, "latent", details)}
