"""Probing metric math on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from interpscore.metrics import probing
from interpscore.subjects.tasks import ProbingTask


def _planted(n: int = 400, d: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    rng.shuffle(y)
    x = np.abs(rng.normal(size=(n, d))) * 0.1  # non-negative noise latents
    x[:, 7] = y * 3.0  # a latent that equals the label
    return x, y


def test_weighted_auroc_matches_sklearn_with_ties_and_repeats():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, 200).astype(float)  # many ties
    labels = rng.random(200) > 0.4
    assert probing.weighted_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    counts = rng.integers(0, 3, 200).astype(float)
    repeated = np.repeat(np.arange(200), counts.astype(int))
    expected = roc_auc_score(labels[repeated], scores[repeated])
    assert probing.weighted_auroc(scores, labels, counts[None])[0] == pytest.approx(expected)


def test_macro_auroc_matches_sklearn_ovr():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 300)
    proba = rng.dirichlet(np.ones(4), 300)
    expected = roc_auc_score(y, proba, multi_class="ovr", average="macro")
    assert probing.macro_auroc(proba, y) == pytest.approx(expected)


def test_planted_latent_gives_perfect_probes_and_maximal_tpp():
    x, y = _planted()
    tr, te = np.arange(300), np.arange(300, 400)
    auc, clf = probing.dense_probe_auroc(x[tr], y[tr], x[te], y[te])
    assert auc == pytest.approx(1.0)
    fit = probing.k_sparse_probe(x[tr], y[tr] == 1, x[te], y[te] == 1, k=1)
    assert fit.latents == [7]
    assert fit.accuracy() == pytest.approx(1.0)
    result = probing.tpp_zeroing(clf, x[te], y[te], n_top=1)
    assert result.top_latents == [7]
    # Without the label latent the probe is left with noise: AUROC falls to about chance.
    assert result.auc_ablated == pytest.approx(0.5, abs=0.1)
    assert result.chance_anchored == pytest.approx(1.0, abs=0.2)
    assert result.tpp == pytest.approx(0.5, abs=0.1)  # the notebook's normaliser caps near 0.5


def test_dense_probe_accuracy_is_perfect_on_a_planted_label_and_chance_on_noise():
    x, y = _planted()
    tr, va, te = np.arange(200), np.arange(200, 300), np.arange(300, 400)
    pos = y == 1
    acc = probing.dense_probe_accuracy(x[tr], pos[tr], x[va], pos[va], x[te], pos[te])
    assert acc == pytest.approx(1.0)
    noise = np.random.default_rng(5).normal(size=x.shape)
    acc = probing.dense_probe_accuracy(noise[tr], pos[tr], noise[va], pos[va], noise[te], pos[te])
    assert acc == pytest.approx(0.5, abs=0.15)


def test_noise_latents_give_chance_auroc_and_no_tpp():
    rng = np.random.default_rng(3)
    x = np.abs(rng.normal(size=(2000, 16)))
    y = rng.integers(0, 2, 2000)
    tr, te = np.arange(1500), np.arange(1500, 2000)
    auc, clf = probing.dense_probe_auroc(x[tr], y[tr], x[te], y[te])
    assert auc == pytest.approx(0.5, abs=0.06)
    result = probing.tpp_zeroing(clf, x[te], y[te], n_top=4)
    assert result.tpp == pytest.approx(0.0, abs=0.06)


def test_notebook_tpp_formula_by_hand():
    """Hand case: a fixed probe, one test column zeroed, AUROC 1 -> 0.75."""
    clf = LogisticRegression().fit(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([0, 1]))
    clf.coef_ = np.array([[2.0, 1.0]])
    clf.intercept_ = np.array([-1.0])
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 2.0], [1.0, 0.5]])
    y = np.array([0, 0, 1, 1])
    # clean scores 0, 1, 4, 2.5 -> AUROC 1; zeroing column 0 (largest |coef|) -> 0, 1, 2, 0.5
    # positives (2, 0.5) vs negatives (0, 1): pairs won 2 + 1 of 4 -> AUROC 0.75
    result = probing.tpp_zeroing(clf, x, y, n_top=1)
    assert result.auc_clean == pytest.approx(1.0)
    assert result.auc_ablated == pytest.approx(0.75)
    assert result.tpp == pytest.approx((1.0 - 0.75) / 1.0)
    assert result.chance_anchored == pytest.approx((1.0 - 0.75) / 0.5)


def test_saebench_tpp_ablates_the_planted_class_latent():
    """Three classes, each carried by one latent along its own residual direction."""
    rng = np.random.default_rng(4)
    n, d = 600, 8
    y = np.repeat([0, 1, 2], n // 3)
    w_dec = np.zeros((5, d))
    w_dec[np.arange(3), np.arange(3)] = 1.0  # latent c writes along axis c
    w_dec[3:, 3:5] = np.eye(2)  # two noise latents
    latents = np.zeros((n, 5))
    latents[np.arange(n), y] = 2.0
    latents[:, 3:] = np.abs(rng.normal(size=(n, 2)))
    x = latents @ w_dec + 0.05 * rng.normal(size=(n, d))  # error term: small noise
    idx = rng.permutation(n)
    train, val, test = np.sort(idx[:360]), np.sort(idx[360:420]), np.sort(idx[420:])
    probes = probing.train_class_probes(x, y, train, val, test, 3, seed=0)
    result = probing.tpp_saebench(probes, x, latents, w_dec, y, [1], test)
    (point,) = result[1]
    assert point["intended"] > 0.3  # the class's own probe collapses
    assert abs(point["unintended"]) < 0.1  # the others hardly move
    assert point["total"] == pytest.approx(point["intended"] - point["unintended"])


def test_splits_are_disjoint_stratified_and_keep_groups_together():
    texts = [f"t{i}" for i in range(300)]
    labels = ["a", "b", "c"] * 100
    groups = [f"g{i // 2}" for i in range(300)]
    labels = [labels[2 * (i // 2)] for i in range(300)]  # one label per group
    task = ProbingTask("t", texts, labels, "test", groups=groups)
    split = task.split(seed=0)
    sets = [set(split.train), set(split.val), set(split.test)]
    assert not (sets[0] & sets[1])
    assert not (sets[0] & sets[2])
    assert not (sets[1] & sets[2])
    assert sum(map(len, sets)) == 300
    g = np.array(groups)
    assert not set(g[split.train]) & set(g[split.test])
    assert split.sizes()["test"] == pytest.approx(60, abs=6)
    assert np.array_equal(task.split(seed=0).test, split.test)
    assert not np.array_equal(task.split(seed=1).test, split.test)
