"""Autointerp scores as pure functions: per-latent scores from per-example answers, and the
mean over latents with its bootstrap interval.

Per latent, every scorer yields one number per test example (P(Yes), a log-likelihood
ratio, a similarity) and a label (does the latent fire on the example, or are its marks
right). The latent's score is the AUROC of numbers against labels: independent of a
threshold and of the class balance, unlike SAEBench's plain accuracy, where answering
"none" scores 10/14. A failed answer keeps its example with an uninformative 0.5 (a tie)
instead of dropping it. Scores are not pooled over latents: each latent counts once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from interpscore.metrics.probing import weighted_auroc

FAILED_ANSWER = 0.5


def answers_or_tie(probabilities: Sequence[float | None]) -> np.ndarray:
    """Answer probabilities with failed answers (None) as ties at 0.5."""
    return np.array([FAILED_ANSWER if p is None else p for p in probabilities], dtype=np.float64)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """AUROC of scores against labels (ties count half); NaN without both labels."""
    return float(weighted_auroc(np.asarray(scores, dtype=np.float64), np.asarray(labels)))


def balanced_accuracy(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> float:
    """Mean of the true-positive and true-negative rates of ``score > threshold``."""
    predicted = np.asarray(scores) > threshold
    truth = np.asarray(labels, dtype=bool)
    rates = [(predicted[truth] == 1).mean(), (predicted[~truth] == 0).mean()]
    return float(np.mean(rates))


def saebench_accuracy(predicted: Sequence[int], positives: Sequence[int], n: int) -> float:
    """SAEBench's score: fraction of the n examples (1-based) classified right."""
    chosen, truth = set(predicted), set(positives)
    return sum((i in chosen) == (i in truth) for i in range(1, n + 1)) / n


def saebench_balanced(predicted: Sequence[int], positives: Sequence[int], n: int) -> float:
    """The same answer scored by balanced accuracy, where "none" gets 0.5."""
    chosen, truth = set(predicted), set(positives)
    pos = [i in chosen for i in range(1, n + 1) if i in truth]
    neg = [i not in chosen for i in range(1, n + 1) if i not in truth]
    return float(np.mean([np.mean(pos), np.mean(neg)]))


def none_floor(n_positive: int, n: int) -> float:
    """What answering "none" scores under SAEBench's accuracy."""
    return (n - n_positive) / n


def mean_over_latents(
    per_latent: np.ndarray, weights: np.ndarray | None
) -> tuple[float, np.ndarray | None]:
    """Mean of per-latent scores (NaN latents left out) and its bootstrap replicates under
    resampling ``weights`` (replicates × latents, shared by an SAE's conditions so that their
    differences are paired); None without weights."""
    values = np.asarray(per_latent, dtype=np.float64)
    finite = np.isfinite(values)
    value = float(values[finite].mean()) if finite.any() else float("nan")
    if weights is None:
        return value, None
    w = weights * finite
    with np.errstate(invalid="ignore", divide="ignore"):
        return value, (w @ np.where(finite, values, 0.0)) / w.sum(1)
