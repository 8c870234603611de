"""Core SAE metrics: reconstruction, sparsity and downstream loss.

Definitions follow SAEBench's ``core`` eval and SAELens' ``run_evals`` where those are
right, and fix them where they are not (see ``METRICS.md``):

* ``explained_variance`` is taken about the mean over all evaluation tokens, with the
  sums accumulated in float64 (SAEBench's current key takes it about zero);
  ``explained_variance_legacy`` is the paper's per-token form about the batch mean.
* ``mse_per_token`` (squared error summed over the width) and ``mse_per_element`` are
  reported under names that say what they are.
* The zero-ablation pass zeroes exactly the positions the SAE pass replaces (special
  tokens keep their clean activations in both), so neither pass is favoured.

Each metric is a function of sums over sequences (see :mod:`interpscore.metrics.stats`),
so the same code gives the value and its bootstrap interval. The per-token helpers are
pure: arrays in, per-sequence sums out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from interpscore.metrics.l0 import DEFAULT_L0_TARGET, l0_score
from interpscore.metrics.stats import Sums, weighted_sums

SumMetric = Callable[[Sums], np.ndarray]

EPS = 1e-12
LOSS_RECOVERED_FLOOR = 1e-8


def _row_sums(values: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    return (values * mask).sum(dim=-1).to(torch.float64).cpu().numpy()


def activation_sums(x: torch.Tensor, mask: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-sequence sums of the hooked activations (shared by every SAE on the hook).

    ``x`` is (n_seq, ctx, d) and ``mask`` (n_seq, ctx) is True where a position counts.
    """
    x64 = x.to(torch.float64)
    m = mask.to(torch.float64)
    return {
        "n_tok": m.sum(dim=-1).cpu().numpy(),
        "sum_x": (x64 * m[..., None]).sum(dim=1).cpu().numpy(),
        "sumsq_x": _row_sums((x64 * x64).sum(-1), m),
    }


def reconstruction_sums(
    x: torch.Tensor, x_hat: torch.Tensor, mask: torch.Tensor
) -> dict[str, np.ndarray]:
    """Per-sequence sums of the reconstruction terms of one SAE."""
    x64, xh64 = x.to(torch.float64), x_hat.to(torch.float64)
    m = mask.to(torch.float64)
    err = ((x64 - xh64) ** 2).sum(-1)
    x_norm = x64.norm(dim=-1)
    xh_norm = xh64.norm(dim=-1)
    dot = (x64 * xh64).sum(-1)
    n = m.sum().clamp(min=1.0)
    batch_mean = (x64 * m[..., None]).sum(dim=(0, 1)) / n
    centred = ((x64 - batch_mean) ** 2).sum(-1)
    legacy = 1.0 - err / centred
    return {
        "sse": _row_sums(err, m),
        "cos_sum": _row_sums(dot / (x_norm * xh_norm).clamp(min=EPS), m),
        "l2_ratio_sum": _row_sums(xh_norm / x_norm.clamp(min=EPS), m),
        "xhat_sq": _row_sums(xh_norm**2, m),
        "x_dot_xhat": _row_sums(dot, m),
        "ev_legacy_sum": _row_sums(torch.where(mask, legacy, torch.zeros_like(legacy)), m),
        "x_norm_sum": _row_sums(x_norm, m),
        "xhat_norm_sum": _row_sums(xh_norm, m),
    }


def sparsity_sums(f: torch.Tensor, mask: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-sequence L0/L1 sums and which latents fired in each sequence."""
    active = (f != 0) & mask[..., None]
    return {
        "l0_sum": active.sum(dim=(1, 2)).to(torch.float64).cpu().numpy(),
        "l1_sum": (f.abs() * mask[..., None]).sum(dim=(1, 2)).to(torch.float64).cpu().numpy(),
        "fired": active.any(dim=1).cpu().numpy(),
    }


def latent_token_counts(f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """How many counted tokens each latent fires on, (d_sae,) float64: O(d_sae) memory
    for the whole window, unlike per-sequence arrays."""
    return ((f != 0) & mask[..., None]).sum(dim=tuple(range(f.ndim - 1))).to(torch.float64)


def density_statistics(density: np.ndarray) -> dict[str, float]:
    """SAEBench's ``misc_metrics`` of per-latent firing densities (fraction of tokens):
    the fraction of latents firing on more than 1% / 10% of tokens, and the share of all
    firings those latents account for (0 when nothing fires)."""
    density = np.asarray(density, dtype=np.float64)
    total = density.sum()
    out = {}
    for label, threshold in (("1", 0.01), ("10", 0.1)):
        over = density > threshold
        out[f"freq_over_{label}_percent"] = float(over.mean())
        out[f"normalized_freq_over_{label}_percent"] = (
            float(density[over].sum() / total) if total > 0 else 0.0
        )
    return out


def max_cosine_to_others(vectors: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """For each row of ``vectors`` (n, d), its largest cosine similarity with any other
    row, in row chunks so that no (n, n) matrix is held (wide SAEs)."""
    unit = torch.nn.functional.normalize(vectors.detach().to(torch.float32), dim=-1)
    n = unit.shape[0]
    out = torch.empty(n, dtype=torch.float32)
    for start in range(0, n, chunk):
        sims = unit[start : start + chunk] @ unit.T
        rows = torch.arange(sims.shape[0])
        sims[rows, rows + start] = -torch.inf
        out[start : start + chunk] = sims.max(dim=-1).values
    return out


def token_cross_entropy(logp: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token loss at positions 0..ctx-2, (n_seq, ctx-1), from log-probabilities."""
    return -logp[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1)


def loss_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions whose prediction counts: those whose input token is ordinary (as SAELens).

    A prediction made from a special token (BOS, a document separator) is dropped; a
    prediction of a separator is kept, as it is a real next-token prediction.
    """
    return mask[:, :-1]


def kl_per_token(logp_clean: torch.Tensor, logp_new: torch.Tensor) -> torch.Tensor:
    """KL(p_clean || p_new) at every position, summed over the vocabulary."""
    return (logp_clean.exp() * (logp_clean - logp_new)).sum(-1)


def downstream_sums(
    logp_clean: torch.Tensor,
    logits_new: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    prefix: str,
) -> dict[str, np.ndarray]:
    """Per-sequence CE and KL sums of a patched run, keys prefixed (``sae`` or ``zero``)."""
    logp_new = torch.log_softmax(logits_new.to(torch.float32), dim=-1)
    lm = loss_mask(mask)
    return {
        f"ce_{prefix}": _row_sums(token_cross_entropy(logp_new, tokens), lm),
        f"kl_{prefix}": _row_sums(kl_per_token(logp_clean, logp_new), mask),
    }


def clean_loss_sums(
    logp_clean: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor
) -> dict[str, np.ndarray]:
    """Per-sequence clean CE sums and the counts of CE and KL positions."""
    lm = loss_mask(mask)
    return {
        "ce_clean": _row_sums(token_cross_entropy(logp_clean, tokens), lm),
        "n_ce": lm.sum(-1).to(torch.float64).cpu().numpy(),
        "n_kl": mask.sum(-1).to(torch.float64).cpu().numpy(),
    }


# Metric functions over sums. Each works on scalars or on arrays with a leading resample axis.


def _explained_variance(s: Sums) -> np.ndarray:
    total = s["sumsq_x"] - (s["sum_x"] ** 2).sum(-1) / s["n_tok"]
    return 1.0 - s["sse"] / total


def _l0(s: Sums) -> np.ndarray:
    return s["l0_sum"] / s["n_tok"]


def _ce(key: str) -> SumMetric:
    return lambda s: s[key] / s["n_ce"]


def _kl(key: str) -> SumMetric:
    return lambda s: s[key] / s["n_kl"]


def _ce_loss_score(s: Sums) -> np.ndarray:
    return (s["ce_zero"] - s["ce_sae"]) / (s["ce_zero"] - s["ce_clean"])


def _loss_recovered(s: Sums) -> np.ndarray:
    recovered = (s["ce_zero"] - s["ce_sae"]) / np.maximum(
        s["ce_zero"] - s["ce_clean"], LOSS_RECOVERED_FLOOR * s["n_ce"]
    )
    return np.clip(recovered, 0.0, 1.0)


def _kl_div_score(s: Sums) -> np.ndarray:
    return (s["kl_zero"] - s["kl_sae"]) / s["kl_zero"]


def _alive(s: Sums) -> np.ndarray:
    return (s["fired"] > 0).mean(axis=-1)


def l0_score_of_sums(target: float = DEFAULT_L0_TARGET) -> SumMetric:
    """``l0_score`` (see :func:`interpscore.metrics.l0.l0_score`) from the L0 sums."""
    return lambda s: l0_score(_l0(s), target)


#: Every core metric as a function of per-unit sums (``l0_score`` at the default target).
SUM_METRICS: dict[str, SumMetric] = {
    "loss_recovered": _loss_recovered,
    "ce_loss_score": _ce_loss_score,
    "kl_div_score": _kl_div_score,
    "ce_loss_clean": _ce("ce_clean"),
    "ce_loss_with_sae": _ce("ce_sae"),
    "ce_loss_with_ablation": _ce("ce_zero"),
    "kl_div_with_sae": _kl("kl_sae"),
    "kl_div_with_ablation": _kl("kl_zero"),
    "explained_variance": _explained_variance,
    "explained_variance_legacy": lambda s: s["ev_legacy_sum"] / s["n_tok"],
    "mse_per_token": lambda s: s["sse"] / s["n_tok"],
    "mse_per_element": lambda s: s["sse"] / (s["n_tok"] * s["sum_x"].shape[-1]),
    "cossim": lambda s: s["cos_sum"] / s["n_tok"],
    "l2_ratio": lambda s: s["l2_ratio_sum"] / s["n_tok"],
    "l2_norm_in": lambda s: s["x_norm_sum"] / s["n_tok"],
    "l2_norm_out": lambda s: s["xhat_norm_sum"] / s["n_tok"],
    "relative_reconstruction_bias": lambda s: s["xhat_sq"] / s["x_dot_xhat"],
    "l0": _l0,
    "l1": lambda s: s["l1_sum"] / s["n_tok"],
    "alive": _alive,
    "dead_fraction": lambda s: 1.0 - _alive(s),
    "l0_score": l0_score_of_sums(),
}


def evaluate(metric: SumMetric, arrays: Mapping[str, np.ndarray]) -> float:
    """A metric of sums, over all units."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(metric(weighted_sums(arrays, None)))


def _single(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x)
    if x.ndim == 2:
        x = x[None]
    return x, torch.ones(x.shape[:2], dtype=torch.bool)


def metric_from_arrays(
    name: str, x: torch.Tensor, x_hat: torch.Tensor | None = None, f: torch.Tensor | None = None
) -> float:
    """Any activation-level core metric on in-memory arrays, all tokens counted.

    ``x``/``x_hat`` are (n_tokens, d) or (n_seq, ctx, d); ``f`` has the same leading shape.
    """
    x, mask = _single(x)
    arrays: dict[str, np.ndarray] = activation_sums(x, mask)
    if x_hat is not None:
        arrays |= reconstruction_sums(x, _single(x_hat)[0], mask)
    if f is not None:
        arrays |= sparsity_sums(_single(f)[0], mask)
    return evaluate(SUM_METRICS[name], arrays)


def explained_variance(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """1 − Σ‖x−x̂‖² / Σ‖x−x̄‖² for activations (n_tokens, d) or (n_seq, ctx, d)."""
    return metric_from_arrays("explained_variance", x, x_hat)


def cossim(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean cosine similarity between activations and reconstructions (zero norms guarded)."""
    return metric_from_arrays("cossim", x, x_hat)


def mse_per_token(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean over tokens of the squared error summed over the width."""
    return metric_from_arrays("mse_per_token", x, x_hat)


def l0(f: torch.Tensor) -> float:
    """Mean number of non-zero latents per token for latents (n_tokens, d_sae)."""
    return metric_from_arrays("l0", torch.zeros(*f.shape[:-1], 1), f=f)
