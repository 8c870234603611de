"""Probing metrics on pooled features: arrays in, numbers (or bootstrap replicates) out.

Two families that share a name in the field but not a definition, named apart here:

* the InterpScore notebook's ``sparse_probing`` (a dense, class-balanced logistic
  regression on all pooled latents, test AUROC) and its ``tpp`` (zero the probe's top-N
  |coef| latent columns in the test features, AUROC drop over clean AUROC, clipped);
* SAEBench's k-sparse probing (top-k latents by |mean difference| on train, logistic
  regression on those k, test accuracy) and its TPP (ablate each class's top-N latents in
  the residual stream with the error term kept, score every class probe, intended drop
  minus mean unintended drop).

Latents and probes are chosen on train (probe regularisation on validation), never on
test. Every scorer takes optional bootstrap ``weights`` (n_resamples, n_test) over test
examples and then returns one value per resample, so intervals and paired comparisons
come from the same code as the value.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

EPS = 1e-8


def weighted_auroc(
    scores: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Area under the ROC curve with ties counted half; vectorised over weight rows.

    ``weights`` is (n,) or (n_resamples, n); None means all ones. Returns NaN where a
    resample has no positives or no negatives.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    w = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(scores, kind="mergesort")
    s, pos, w = scores[order], positive[order], w[..., order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    w_pos = np.add.reduceat(w * pos, starts, axis=-1)
    w_neg = np.add.reduceat(w * ~pos, starts, axis=-1)
    below = np.cumsum(w_neg, axis=-1) - w_neg
    area = (w_pos * (below + 0.5 * w_neg)).sum(-1)
    total = w_pos.sum(-1) * w_neg.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, area / np.where(total > 0, total, 1.0), np.nan)


def weighted_accuracy(correct: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Fraction correct, vectorised over weight rows."""
    correct = np.asarray(correct, dtype=np.float64)
    if weights is None:
        return np.asarray(correct.mean())
    return (weights * correct).sum(-1) / weights.sum(-1)


def macro_auroc(proba: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Binary AUROC of class 1, or the macro one-vs-rest AUROC for more classes
    (as ``roc_auc_score(multi_class="ovr", average="macro")``)."""
    if proba.shape[1] == 2:
        return weighted_auroc(proba[:, 1], y == 1, weights)
    return np.mean(
        [weighted_auroc(proba[:, c], y == c, weights) for c in range(proba.shape[1])], axis=0
    )


def fit_logistic(
    x: np.ndarray, y: np.ndarray, *, balanced: bool = False, c: float = 1.0, max_iter: int = 1000
) -> LogisticRegression:
    """sklearn's LogisticRegression (lbfgs, L2) on unscaled inputs, as both peers use it.

    Whether lbfgs converged within ``max_iter`` is kept as ``clf.converged_`` (the peers'
    settings often stop at the limit; the warning is recorded instead of printed).
    """
    clf = LogisticRegression(C=c, max_iter=max_iter, class_weight="balanced" if balanced else None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(x, y)
    clf.converged_ = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return clf


# The InterpScore notebook's definitions --------------------------------------------------


def dense_probe_auroc(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, LogisticRegression]:
    """Notebook ``sparse_probing`` for one task: balanced LR on all features, test AUROC."""
    clf = fit_logistic(x_train, y_train, balanced=True)
    return macro_auroc(clf.predict_proba(x_test), y_test, weights), clf


@dataclass(frozen=True)
class TPPZeroing:
    """Notebook TPP on one binary concept: clean and ablated AUROC, and the two scores."""

    auc_clean: np.ndarray
    auc_ablated: np.ndarray
    top_latents: list[int]

    @property
    def tpp(self) -> np.ndarray:
        """(clean − ablated)/clean, clipped to [0, 1] (the notebook's component)."""
        return np.clip((self.auc_clean - self.auc_ablated) / np.maximum(self.auc_clean, EPS), 0, 1)

    @property
    def chance_anchored(self) -> np.ndarray:
        """(clean − ablated)/(clean − 0.5), clipped; NaN where clean AUROC ≤ 0.5."""
        headroom = self.auc_clean - 0.5
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (self.auc_clean - self.auc_ablated) / np.where(headroom > 0, headroom, np.nan)
        return np.clip(value, 0, 1)


def tpp_zeroing(
    clf: LogisticRegression,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_top: int,
    weights: np.ndarray | None = None,
) -> TPPZeroing:
    """Zero the ``n_top`` largest-|coef| columns of the test features only; re-score."""
    if clf.coef_.shape[0] != 1:
        raise ValueError("tpp_zeroing needs a binary probe")
    top = np.argsort(-np.abs(clf.coef_[0]), kind="stable")[:n_top]
    ablated = x_test.copy()
    ablated[:, top] = 0.0
    clean = weighted_auroc(clf.predict_proba(x_test)[:, 1], y_test == 1, weights)
    after = weighted_auroc(clf.predict_proba(ablated)[:, 1], y_test == 1, weights)
    return TPPZeroing(clean, after, [int(i) for i in top])


# SAEBench's definitions -------------------------------------------------------------------


def one_vs_rest_indices(y: np.ndarray, positive: int, seed: int) -> np.ndarray:
    """All examples of ``positive`` plus as many seeded-random others (balanced), sorted."""
    rng = np.random.default_rng(seed)
    pos = np.flatnonzero(y == positive)
    neg = np.flatnonzero(y != positive)
    chosen = rng.choice(neg, size=min(len(pos), len(neg)), replace=False)
    return np.sort(np.concatenate([pos, chosen]))


def binary_problems(y: np.ndarray, n_classes: int, seed: int) -> list[tuple[int, np.ndarray]]:
    """SAEBench's one-vs-rest problems: (positive class, example indices) per class.

    A two-class task is one problem (class 1 against class 0) on all examples.
    """
    if n_classes == 2:
        return [(1, np.arange(len(y)))]
    return [(c, one_vs_rest_indices(y, c, seed + c)) for c in range(n_classes)]


def top_k_mean_difference(x: np.ndarray, positive: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k features with the largest |mean(pos) − mean(neg)| (on train)."""
    diff = np.abs(x[positive].mean(0) - x[~positive].mean(0))
    return np.argsort(-diff, kind="stable")[:k]


@dataclass(frozen=True)
class KSparseFit:
    """A k-sparse probe's test scores; weight them for accuracy/AUROC or resamples."""

    scores: np.ndarray
    positive: np.ndarray
    latents: list[int]

    def accuracy(self, weights: np.ndarray | None = None) -> np.ndarray:
        return weighted_accuracy((self.scores > 0) == self.positive, weights)

    def auroc(self, weights: np.ndarray | None = None) -> np.ndarray:
        return weighted_auroc(self.scores, self.positive, weights)


def k_sparse_probe(
    x_train: np.ndarray, pos_train: np.ndarray, x_test: np.ndarray, pos_test: np.ndarray, k: int
) -> KSparseFit:
    """SAEBench k-sparse probe: top-k by mean difference on train, LR(C=1) on those k."""
    chosen = top_k_mean_difference(x_train, pos_train, k)
    clf = fit_logistic(x_train[:, chosen], pos_train)
    return KSparseFit(clf.decision_function(x_test[:, chosen]), pos_test, [int(i) for i in chosen])


def dense_probe_accuracy(
    x_train: np.ndarray,
    pos_train: np.ndarray,
    x_val: np.ndarray,
    pos_val: np.ndarray,
    x_test: np.ndarray,
    pos_test: np.ndarray,
    grid: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
) -> float:
    """SAEBench's ``llm_test_accuracy`` for one binary problem: LR on every feature, test
    accuracy; C is chosen on validation accuracy (SAEBench keeps the best *test* epoch)."""
    best: tuple[float, LogisticRegression] | None = None
    for strength in grid:
        clf = fit_logistic(x_train, pos_train, c=strength)
        score = float(clf.score(x_val, pos_val))
        if best is None or score > best[0]:
            best = (score, clf)
    assert best is not None
    return float(best[1].score(x_test, pos_test))


@dataclass(frozen=True)
class ClassProbe:
    """A linear probe in model-activation space for one class-vs-rest problem."""

    positive: int
    coef: np.ndarray
    intercept: float
    train_idx: np.ndarray
    test_idx: np.ndarray
    c: float

    def correct(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return ((x @ self.coef + self.intercept) > 0) == (y == self.positive)


def train_class_probes(
    x: np.ndarray,
    y: np.ndarray,
    split_train: np.ndarray,
    split_val: np.ndarray,
    split_test: np.ndarray,
    n_classes: int,
    seed: int,
    grid: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
) -> list[ClassProbe]:
    """One LR probe per class on pooled model activations; C chosen on validation accuracy
    (SAEBench keeps the epoch with the best *test* accuracy; this does not look at test)."""
    probes = []
    for c in range(n_classes):
        tr = split_train[one_vs_rest_indices(y[split_train], c, seed + c)]
        va = split_val[one_vs_rest_indices(y[split_val], c, seed + 100 + c)]
        te = split_test[one_vs_rest_indices(y[split_test], c, seed + 200 + c)]
        best = None
        for strength in grid:
            clf = fit_logistic(x[tr], y[tr] == c, c=strength)
            score = clf.score(x[va], y[va] == c)
            if best is None or score > best[0]:
                best = (score, strength, clf)
        _, strength, clf = best  # type: ignore[misc]
        probes.append(
            ClassProbe(c, clf.coef_[0].copy(), float(clf.intercept_[0]), tr, te, strength)
        )
    return probes


def tpp_saebench(
    probes: list[ClassProbe],
    x_model: np.ndarray,
    latents: np.ndarray,
    w_dec: np.ndarray,
    y: np.ndarray,
    ns: Sequence[int],
    test_index: np.ndarray,
    weights: Sequence[np.ndarray | None] = (None,),
) -> dict[int, list[dict[str, np.ndarray]]]:
    """SAEBench TPP for one multi-class task.

    ``x_model``/``latents`` are pooled over ordinary tokens for every example. For class i,
    latent effects are clamp(mean_pos − mean_neg, 0) ⊙ (w_i · W_decᵀ) on i's train set;
    the top-N latents S_i are ablated with the error term kept, which for mean-pooled
    features is exactly x̄' = x̄ − f̄[S_i] @ W_dec[S_i]. Each entry of ``weights`` (None, or
    resamples over ``test_index`` order) gives one result per N: total, intended and
    unintended (means over classes).
    """
    n = len(probes)
    position = {int(e): j for j, e in enumerate(test_index)}
    columns = [np.array([position[int(e)] for e in p.test_idx]) for p in probes]

    def accuracies(correct: list[np.ndarray]) -> list[list[np.ndarray]]:
        return [
            [
                weighted_accuracy(c, None if w is None else w[..., cols])
                for c, cols in zip(correct, columns, strict=True)
            ]
            for w in weights
        ]

    clean = accuracies([p.correct(x_model[p.test_idx], y[p.test_idx]) for p in probes])
    effects = []
    for p in probes:
        pos = y[p.train_idx] == p.positive
        delta = np.clip(
            latents[p.train_idx][pos].mean(0) - latents[p.train_idx][~pos].mean(0), 0, None
        )
        effects.append(delta * (w_dec @ p.coef))
    out: dict[int, list[dict[str, np.ndarray]]] = {}
    for n_ablate in ns:
        drops: list[list[list[np.ndarray]]] = []  # [class i][weights][probe j]
        for i in range(n):
            nonzero = np.flatnonzero(effects[i] != 0)
            chosen = nonzero[
                np.argsort(-effects[i][nonzero], kind="stable")[: min(n_ablate, len(nonzero))]
            ]
            ablated = x_model - latents[:, chosen] @ w_dec[chosen]
            after = accuracies([p.correct(ablated[p.test_idx], y[p.test_idx]) for p in probes])
            drops.append(
                [[clean[w][j] - after[w][j] for j in range(n)] for w in range(len(weights))]
            )
        results = []
        for w in range(len(weights)):
            intended = np.mean([drops[i][w][i] for i in range(n)], axis=0)
            unintended = np.mean(
                [np.mean([drops[i][w][j] for j in range(n) if j != i], axis=0) for i in range(n)],
                axis=0,
            )
            results.append(
                {"total": intended - unintended, "intended": intended, "unintended": unintended}
            )
        out[n_ablate] = results
    return out
