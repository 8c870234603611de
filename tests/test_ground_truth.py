"""Ground-truth metrics: known answers, and agreement with sae-lens' own synthetic eval."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpscore.metrics.ground_truth import matched_correlation, mmcs
from interpscore.subjects.controls import random_init_like
from interpscore.subjects.synthetic import SyntheticSettings, SyntheticWorld


def test_known_answers():
    features = np.eye(4)
    assert mmcs(features, features) == pytest.approx(1.0)
    assert matched_correlation(features[::-1], features) == pytest.approx(1.0)
    # A decoder of the sums of pairs: each feature's best cosine is 1/sqrt(2).
    pairs = np.array([[1, 1, 0, 0], [0, 0, 1, 1.0]])
    assert mmcs(pairs, features) == pytest.approx(1 / np.sqrt(2))
    assert mmcs(-features, features) == pytest.approx(0.0)  # signed: anti-aligned rows do not count
    assert matched_correlation(-features, features) == pytest.approx(1.0)  # sae-lens' |cos|


@pytest.fixture(scope="module")
def world_and_sae():
    world = SyntheticWorld(
        SyntheticSettings(n_features=32, hidden_dim=16, d_sae=32, training_samples=150_000)
    )
    sae, _ = world.train("topk")
    return world, sae


def test_our_metrics_agree_with_sae_lens_eval(world_and_sae):
    from sae_lens.synthetic import eval_sae_on_synthetic_data

    world, sae = world_and_sae
    torch.manual_seed(11)
    with torch.no_grad():
        theirs = eval_sae_on_synthetic_data(sae, world.features, world.generator, num_samples=5000)
    world.settings = SyntheticSettings(**{**world.settings.__dict__, "eval_samples": 5000})
    ours = world.score(sae, seed=11)
    assert ours["matched_correlation"] == pytest.approx(theirs.mcc, abs=1e-6)
    assert ours["explained_variance"] == pytest.approx(theirs.explained_variance, abs=1e-6)
    assert ours["l0"] == pytest.approx(theirs.sae_l0, abs=1e-6)
    assert ours["true_l0"] == pytest.approx(theirs.true_l0, abs=1e-6)
    assert ours["dead_fraction"] == pytest.approx(theirs.dead_latents / 32, abs=1e-6)


def test_trained_sae_recovers_features_better_than_its_random_init_control(world_and_sae):
    world, sae = world_and_sae
    trained = world.score(sae, seed=3)
    control = world.score(random_init_like(sae, seed=0).eval(), seed=3)
    assert trained["mmcs"] > control["mmcs"] + 0.1
    assert trained["explained_variance"] > control["explained_variance"] + 0.3


def test_a_stored_result_is_reused_only_under_the_same_settings(tmp_path):
    """The value cache keeps each architecture's trained result: a second run reuses it
    (marked ``cached``), other settings train afresh."""
    from interpscore.evaluation.cache import Store

    store = Store(tmp_path)
    settings = SyntheticSettings(
        n_features=16, hidden_dim=8, d_sae=16, training_samples=8_192, eval_samples=2_000
    )
    first = SyntheticWorld(settings, store=store).evaluate("topk")
    again = SyntheticWorld(settings, store=store).evaluate("topk")
    assert "cached" not in first
    assert again.pop("cached") is True
    assert again == first
    other = SyntheticWorld(SyntheticSettings(**{**settings.__dict__, "seed": 1}), store=store)
    assert "cached" not in other.evaluate("topk")
    assert "cached" not in SyntheticWorld(settings).evaluate("topk")  # no store: no reuse
