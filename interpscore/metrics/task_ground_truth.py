"""Task ground truth (Makelov, Lange & Nanda 2024; SAGE): pure math on arrays.

A templated task has attributes with known values per prompt. The *supervised dictionary*
of one read position is the mean activation plus one centred feature per attribute value,
``u[a][v] = E[x | a = v] − E[x]``; a prompt's supervised reconstruction is the mean plus
the features of its values. SAEs are judged against it by logit differences kept
(sufficiency), moved (sparse control) and by how well single latents detect attribute
values (F1). Everything here is arrays in, numbers out; the suite runs the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from interpscore.metrics.probing import fit_logistic

#: Latent counts tried when counting the latents a detector needs.
DETECTOR_KS = (1, 2, 4, 8, 16, 32)
#: The value reported for an attribute value no detector of up to 32 latents reaches.
NOT_REACHED = 2 * DETECTOR_KS[-1]


@dataclass(frozen=True)
class SupervisedDictionary:
    """Mean activation and centred attribute-value features of one read position."""

    mean: np.ndarray
    features: dict[str, np.ndarray]
    values: dict[str, tuple[str, ...]]

    def reconstruct(self, labels: Mapping[str, np.ndarray]) -> np.ndarray:
        """Mean plus the features of each prompt's values, (n, d)."""
        out = np.repeat(self.mean[None], len(next(iter(labels.values()))), axis=0)
        for attribute, index in labels.items():
            out = out + self.features[attribute][index]
        return out

    def edit(self, x: np.ndarray, attribute: str, source: np.ndarray, target: np.ndarray):
        """``x`` with ``attribute`` moved from each row's ``source`` value to ``target``."""
        features = self.features[attribute]
        return x - features[source] + features[target]


def fit_supervised_dictionary(
    x: np.ndarray, labels: Mapping[str, np.ndarray], values: Mapping[str, tuple[str, ...]]
) -> SupervisedDictionary:
    """Attribute-value means of ``x`` (n, d), centred on the mean over all rows.

    ``labels[a]`` holds each row's value index of attribute ``a``; a value with no row has
    a zero feature (it cannot be estimated, and is never asked for on rows that have it).
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    features = {}
    for attribute, index in labels.items():
        n_values = len(values[attribute])
        sums = np.zeros((n_values, x.shape[1]))
        np.add.at(sums, index, x)
        counts = np.bincount(index, minlength=n_values)[:, None]
        features[attribute] = np.where(counts > 0, sums / np.maximum(counts, 1) - mean, 0.0)
    return SupervisedDictionary(mean, features, {a: tuple(v) for a, v in values.items()})


def _sum(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return values.sum() if weights is None else weights @ values


def kept_fraction(
    patched: np.ndarray,
    clean: np.ndarray,
    baseline: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Sufficiency: the logit difference kept by a replacement, between the mean-ablation
    baseline (0) and the clean run (1), as a ratio of sums over prompts.

    ``weights`` (resamples, n) gives one value per bootstrap resample.

    >>> float(kept_fraction(np.array([2.0, 3.0]), np.array([4.0, 4.0]), np.array([0.0, 0.0])))
    0.625
    """
    return _sum(patched - baseline, weights) / _sum(clean - baseline, weights)


def moved_fraction(
    source: np.ndarray,
    edited: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Sparse control: how far an edit moves the logit difference from the source prompt's
    value (0) to the counterfactual's, reached by patching in its activation (1).

    >>> float(moved_fraction(np.array([4.0]), np.array([0.0]), np.array([-4.0])))
    0.5
    """
    return _sum(source - edited, weights) / _sum(source - target, weights)


def greedy_edit_latents(
    target: np.ndarray, steps: np.ndarray, w_dec: np.ndarray, k: int
) -> np.ndarray:
    """For each row, the ``k`` latents whose edits best build ``target`` (rows, d), greedily.

    Latent j's edit adds ``steps[r, j] * w_dec[j]`` (its value moved by ``steps``); each
    step takes the latent that most reduces the squared distance between the target and
    the sum of the chosen edits (matching pursuit with fixed coefficients). Returns
    (rows, k) latent indices in the order chosen, so a prefix is the choice for smaller k.
    """
    residual = np.asarray(target, dtype=np.float64).copy()
    steps = np.asarray(steps, dtype=np.float64)
    w_dec = np.asarray(w_dec, dtype=np.float64)
    norms = (w_dec**2).sum(axis=1)
    rows = np.arange(len(residual))
    chosen = np.zeros((len(residual), k), dtype=np.int64)
    taken = np.zeros(steps.shape, dtype=bool)
    for step in range(k):
        gain = 2 * steps * (residual @ w_dec.T) - steps**2 * norms
        gain[taken] = -np.inf
        best = gain.argmax(axis=1)
        chosen[:, step] = best
        taken[rows, best] = True
        residual -= steps[rows, best][:, None] * w_dec[best]
    return chosen


def best_thresholds(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each column of ``scores`` (n, m), the threshold ``t`` whose detector
    ``score > t`` has the best F1 for the boolean ``y``, and that F1.

    Candidate thresholds sit just below each observed score (and at the maximum, which
    detects nothing). Ties go to the higher threshold.
    """
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    n_pos = y.sum()
    order = np.argsort(-scores, axis=0, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=0)
    tp = np.cumsum(y[order], axis=0)
    predicted = np.arange(1, len(y) + 1)[:, None]
    # Only cut between distinct scores: a detector predicts every row with an equal score.
    last_of_run = np.ones_like(sorted_scores, dtype=bool)
    last_of_run[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    f1 = np.where(last_of_run, 2 * tp / (predicted + n_pos), -1.0)
    best = f1.argmax(axis=0)
    cols = np.arange(scores.shape[1])
    below = sorted_scores[best, cols]
    following = np.where(
        best + 1 < len(y), sorted_scores[np.minimum(best + 1, len(y) - 1), cols], -np.inf
    )
    threshold = np.where(np.isfinite(following), (below + following) / 2, below - 1.0)
    return threshold, np.maximum(f1[best, cols], 0.0)


def f1(predicted: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """F1 of boolean predictions, plain or per resample of ``weights`` (resamples, n);
    0 when there is neither a positive nor a prediction."""
    predicted, y = np.asarray(predicted, bool), np.asarray(y, bool)
    tp, fp, fn = (predicted & y), (predicted & ~y), (~predicted & y)
    tp, fp, fn = (_sum(a.astype(np.float64), weights) for a in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0)


def latents_to_reach(
    z_train: np.ndarray,
    y_train: np.ndarray,
    z_test: np.ndarray,
    y_test: np.ndarray,
    ranking: np.ndarray,
    target: float = 0.9,
) -> tuple[int, dict[int, float]]:
    """The fewest latents (of :data:`DETECTOR_KS`, best-ranked first) whose logistic
    detector, fit on train, reaches test F1 ``target``; :data:`NOT_REACHED` when none
    does. Also returns the test F1 at each k tried."""
    scores: dict[int, float] = {}
    scale = z_train.std(axis=0) + 1e-6  # latents on one scale, so the fit converges
    for k in DETECTOR_KS:
        columns = ranking[:k]
        probe = fit_logistic(z_train[:, columns] / scale[columns], y_train, balanced=True)
        predicted = probe.predict(z_test[:, columns] / scale[columns]).astype(bool)
        scores[k] = float(f1(predicted, y_test))
        if scores[k] >= target:
            return k, scores
    return NOT_REACHED, scores
