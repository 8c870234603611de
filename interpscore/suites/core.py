"""Core metrics: reconstruction, sparsity and downstream loss, from one shared pass.

The :class:`CoreStatistics` accumulator keeps per-sequence sums (see
:mod:`interpscore.metrics.core`): the hook group's clean and zero-ablated losses and
activation sums once per batch, and each SAE's reconstruction, sparsity and patched-run
losses. Every metric is a function of those sums, so the value and its bootstrap interval
(over sequences) come from the same code.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from interpscore.evaluation.shared_pass import Accumulator, Batch
from interpscore.metrics import core as cm
from interpscore.metrics.stats import SequenceStats, bootstrap_replicates, recentre
from interpscore.results.records import MetricValue
from interpscore.suites.base import GroupContext, MetricSpec, SubjectContext, Suite

UNIT = (0.0, 1.0)

#: Counts over the whole window (a latent ever firing): a bootstrap resample holds only
#: ~63% distinct sequences, so their replicates are biased low and are re-centred.
WINDOW_METRICS = frozenset({"alive", "dead_fraction"})
#: Why a core ratio can be 0/0 for a subject (then it is not applicable, never a number).
UNDEFINED = {
    "relative_reconstruction_bias": "E⟨x, x̂⟩ = 0 (the reconstruction is zero or orthogonal "
    "to the input)",
    "ce_loss_score": "zero-ablating the hook leaves the loss unchanged (CE_zero = CE_clean)",
    "kl_div_score": "zero-ablating the hook leaves the predictions unchanged (KL_zero = 0)",
    "explained_variance": "the activations have no variance on this window",
    "explained_variance_legacy": "the activations have no variance within a batch",
}
#: Key of the per-latent token counts (d_sae,) in the pass result: not per sequence, so
#: kept apart from the sums the metrics and their bootstrap read.
LATENT_COUNTS = "latent_token_counts"


class CoreStatistics(Accumulator):
    """Per-sequence sums of the clean, zero-ablated and SAE-patched runs."""

    name = "core"
    needs_logits = True
    cacheable = True

    def start(self, saes: Mapping[str, nn.Module]) -> None:
        self.group = SequenceStats()
        self.stats = {key: SequenceStats() for key in saes}
        self.counts: dict[str, torch.Tensor] = {}

    def add_batch(self, batch: Batch) -> None:
        logp, tokens, mask, x = batch.logp_clean, batch.tokens, batch.mask, batch.x
        assert logp is not None  # needs_logits
        self.group.add(**cm.clean_loss_sums(logp, tokens, mask))
        # The zero-ablation replaces exactly the positions an SAE replaces.
        zeroed = torch.where(mask[..., None], torch.zeros_like(x), x)
        logits = batch.logits_with(zeroed, "from_hook_zero")
        self.group.add(**cm.downstream_sums(logp, logits, tokens, mask, "zero"))
        self.group.add(**cm.activation_sums(x, mask))

    def add_sae(self, key: str, batch: Batch, f: torch.Tensor, x_hat: torch.Tensor) -> None:
        x, mask, logp = batch.x, batch.mask, batch.logp_clean
        assert logp is not None
        rows = {**cm.reconstruction_sums(x, x_hat, mask), **cm.sparsity_sums(f, mask)}
        patched = torch.where(mask[..., None], x_hat.to(x.dtype), x)
        logits = batch.logits_with(patched, "from_hook_sae")
        rows |= cm.downstream_sums(logp, logits, batch.tokens, mask, "sae")
        self.stats[key].add(**rows)
        counts = cm.latent_token_counts(f, mask)
        self.counts[key] = self.counts[key] + counts if key in self.counts else counts

    def group_state(self) -> dict[str, np.ndarray]:
        return self.group.arrays

    def restore_group(self, state: Mapping[str, np.ndarray]) -> None:
        self.group = SequenceStats()
        self.group.add(**state)

    def result(self, key: str) -> dict[str, np.ndarray]:
        return {
            **self.group.arrays,
            **self.stats[key].arrays,
            LATENT_COUNTS: self.counts[key].cpu().numpy(),
        }


class CoreSuite(Suite):
    name = "core"
    description = "Reconstruction, sparsity and downstream loss (SAEBench core, SAELens)"
    on_model_controls = True
    metrics = (
        MetricSpec(
            "loss_recovered",
            "(CE_zero − CE_sae)/max(CE_zero − CE_clean, 1e-8), clipped to [0, 1]",
            bounds=UNIT,
            component=True,
        ),
        MetricSpec("ce_loss_score", "(CE_zero − CE_sae)/(CE_zero − CE_clean), unclipped"),
        MetricSpec("kl_div_score", "(KL_zero − KL_sae)/KL_zero"),
        MetricSpec(
            "ce_loss_clean", "mean next-token CE of the clean model (nats)", direction="none"
        ),
        MetricSpec(
            "ce_loss_with_sae", "mean CE with the SAE reconstruction spliced in", direction="lower"
        ),
        MetricSpec("ce_loss_with_ablation", "mean CE with the hook zeroed", direction="none"),
        MetricSpec("kl_div_with_sae", "mean KL(clean || SAE-patched)", direction="lower"),
        MetricSpec("kl_div_with_ablation", "mean KL(clean || zero-ablated)", direction="none"),
        MetricSpec("explained_variance", "1 − Σ‖x−x̂‖²/Σ‖x−x̄‖², x̄ over all tokens"),
        MetricSpec("explained_variance_legacy", "mean over tokens of 1 − ‖x−x̂‖²/‖x−x̄_batch‖²"),
        MetricSpec("mse_per_token", "mean over tokens of ‖x−x̂‖²", direction="lower"),
        MetricSpec(
            "mse_per_element", "mean over tokens and dimensions of (x−x̂)²", direction="lower"
        ),
        MetricSpec("cossim", "mean cos(x, x̂)", bounds=(-1.0, 1.0)),
        MetricSpec("l2_ratio", "mean ‖x̂‖/‖x‖", direction="none"),
        MetricSpec("relative_reconstruction_bias", "E‖x̂‖² / E⟨x, x̂⟩", direction="none"),
        MetricSpec("l0", "mean number of non-zero latents per token", direction="none"),
        MetricSpec("l1", "mean Σ|f| per token", direction="none"),
        MetricSpec(
            "dead_fraction",
            "fraction of latents that never fire on the window",
            direction="lower",
            bounds=UNIT,
        ),
        MetricSpec(
            "alive",
            "1 − fraction of latents that never fire on the evaluation window",
            bounds=UNIT,
            component=True,
        ),
        MetricSpec(
            "l0_score",
            "exp(−|ln(L0/target)|) = min(L0/target, target/L0); peaks at the formula's target L0",
            bounds=UNIT,
            component=True,
        ),
    )

    def accumulators(self, group: GroupContext) -> list[Accumulator]:
        return [CoreStatistics()]

    def compute(self, subject: SubjectContext, metric: MetricSpec) -> dict[str, MetricValue]:
        """One core metric and its bootstrap replicates (over sequences)."""
        arrays = dict(subject.pass_result("core"))
        counts = arrays.pop(LATENT_COUNTS)
        run = subject.run
        fn = (
            cm.l0_score_of_sums(run.formula.l0_target)
            if metric.name == "l0_score"
            else cm.SUM_METRICS[metric.name]
        )
        value = cm.evaluate(fn, arrays)
        if not np.isfinite(value):
            why = UNDEFINED.get(metric.name, "its denominator is zero on this window")
            return {metric.name: MetricValue.not_applicable(f"undefined for this SAE (0/0): {why}")}
        replicates = (
            bootstrap_replicates(fn, arrays, run.bootstrap, run.seed) if run.bootstrap > 0 else None
        )
        details = {}
        if metric.name in WINDOW_METRICS and replicates is not None:
            replicates = np.clip(recentre(replicates, value), 0.0, 1.0)  # fractions
            details["ci_method"] = "percentile, re-centred on the value (window count)"
        if metric.name == "alive":
            details |= saebench_misc_metrics(subject.sae, counts, arrays)
        elif metric.name == "l2_ratio":
            details |= {
                name: cm.evaluate(cm.SUM_METRICS[name], arrays)
                for name in ("l2_norm_in", "l2_norm_out")
            }
        return {metric.name: MetricValue(value, replicates, unit="sequence", details=details)}


def saebench_misc_metrics(
    sae: nn.Module, counts: np.ndarray, arrays: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """SAEBench's ``misc_metrics`` companions of ``alive`` (so that a report exports to its
    core file): firing-density statistics on the window, and the mean over latents of the
    largest cosine similarity of a latent's encoder (decoder) direction with any other's."""
    n_tokens = float(arrays["n_tok"].sum())
    out = cm.density_statistics(counts / n_tokens)
    with torch.no_grad():
        for part, weights in (("encoder", sae.W_enc.T), ("decoder", sae.W_dec)):
            out[f"average_max_{part}_cosine_sim"] = float(cm.max_cosine_to_others(weights).mean())
    return out
