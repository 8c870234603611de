"""Core metrics: hand-computed cases, streaming == in-memory, and known-answer SAEs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import subjects
import torch

from interpscore.evaluation.evaluator import Evaluator
from interpscore.evaluation.settings import RunSettings
from interpscore.evaluation.shared_pass import run_shared_pass
from interpscore.metrics import core
from interpscore.metrics.stats import (
    SequenceStats,
    bootstrap_replicates,
    percentile_interval,
    recentre,
)
from interpscore.subjects.data import iter_texts, pack_tokens
from interpscore.subjects.loading import parse_sae_spec
from interpscore.subjects.models import load_model
from interpscore.suites.core import WINDOW_METRICS, CoreStatistics


def test_explained_variance_hand_computed():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # mean (2, 0); total SS = 1 + 1 = 2
    x_hat = torch.tensor([[1.0, 1.0], [3.0, 0.0]])  # residual SS = 1
    assert core.explained_variance(x, x_hat) == pytest.approx(0.5)


def test_explained_variance_is_about_the_mean_not_zero():
    torch.manual_seed(0)
    x = torch.randn(4096, 16, dtype=torch.float64) + 3.0
    x_hat = x + 0.5 * torch.randn_like(x)
    expected = 1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert core.explained_variance(x, x_hat) == pytest.approx(float(expected), rel=1e-9)
    # Taking variance about zero (the SAEBench 0.6.0 bug) would read much higher.
    about_zero = 1 - ((x - x_hat) ** 2).sum() / (x**2).sum()
    assert float(about_zero) > core.explained_variance(x, x_hat) + 0.1


def test_cossim_guards_zero_norms():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert core.cossim(x, torch.zeros_like(x)) == 0.0
    assert core.cossim(x, 3 * x) == pytest.approx(1.0)


def test_mse_per_token_and_l0_hand_computed():
    x = torch.zeros(2, 3)
    x_hat = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]])  # errors 2 and 4
    assert core.mse_per_token(x, x_hat) == pytest.approx(3.0)
    f = torch.tensor([[0.0, 1.5, -2.0, 0.0], [3.0, 0.0, 0.0, 0.0]])
    assert core.l0(f) == pytest.approx(1.5)


def test_streaming_sums_equal_in_memory_values():
    torch.manual_seed(1)
    x = torch.randn(6, 10, 8) * 4 + 1
    x_hat = x + torch.randn_like(x)
    f = torch.relu(torch.randn(6, 10, 32))
    mask = torch.rand(6, 10) > 0.2
    stats = SequenceStats()
    for lo in (0, 2, 5):  # uneven batches
        hi = {0: 2, 2: 5, 5: 6}[lo]
        stats.add(
            **core.activation_sums(x[lo:hi], mask[lo:hi]),
            **core.reconstruction_sums(x[lo:hi], x_hat[lo:hi], mask[lo:hi]),
            **core.sparsity_sums(f[lo:hi], mask[lo:hi]),
        )
    metrics = core.SUM_METRICS
    xs, xhs, fs = x[mask], x_hat[mask], f[mask]
    assert core.evaluate(metrics["explained_variance"], stats.arrays) == pytest.approx(
        core.explained_variance(xs, xhs)
    )
    assert core.evaluate(metrics["cossim"], stats.arrays) == pytest.approx(core.cossim(xs, xhs))
    assert core.evaluate(metrics["l0"], stats.arrays) == pytest.approx(core.l0(fs))
    alive = float(((fs != 0).any(0)).float().mean())
    assert core.evaluate(metrics["alive"], stats.arrays) == pytest.approx(alive)
    rrb = float((xhs.norm(dim=-1) ** 2).sum() / (xs * xhs).sum())
    assert core.evaluate(metrics["relative_reconstruction_bias"], stats.arrays) == pytest.approx(
        rrb
    )


def test_kl_and_cross_entropy_hand_computed():
    logp_clean = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]]]))
    logp_new = torch.log(torch.tensor([[[0.5, 0.5], [0.5, 0.5]]]))
    kl = core.kl_per_token(logp_clean, logp_new)
    assert kl[0, 0] == pytest.approx(0.0)
    assert kl[0, 1] == pytest.approx(0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5))
    tokens = torch.tensor([[0, 1]])
    assert core.token_cross_entropy(logp_clean, tokens)[0, 0] == pytest.approx(math.log(2))


def test_loss_scores_from_hand_sums():
    metrics = core.SUM_METRICS
    sums = {
        "ce_clean": np.array(2.0),
        "ce_sae": np.array(3.0),
        "ce_zero": np.array(6.0),
        "n_ce": np.array(1.0),
    }
    assert metrics["ce_loss_score"](sums) == pytest.approx(0.75)
    assert metrics["loss_recovered"]({**sums, "ce_sae": np.array(7.0)}) == 0.0  # clipped
    assert metrics["ce_loss_score"]({**sums, "ce_sae": np.array(7.0)}) == pytest.approx(-0.25)


def test_bootstrap_is_deterministic_and_brackets_the_value():
    rng = np.random.default_rng(0)
    arrays = {"sse": rng.random(50), "n_tok": np.full(50, 10.0)}
    fn = core.SUM_METRICS["mse_per_token"]
    a = bootstrap_replicates(fn, arrays, 500, seed=3)
    b = bootstrap_replicates(fn, arrays, 500, seed=3)
    assert np.array_equal(a, b)
    low, high = percentile_interval(a)
    value = arrays["sse"].sum() / arrays["n_tok"].sum()
    assert low < value < high


def test_window_count_interval_is_recentred_on_the_value():
    """Each of 40 latents fires in one sequence only: every latent is alive on the window,
    but a resample misses ~37% of the sequences, so raw replicates sit near 0.63."""
    arrays = {"fired": np.eye(40)}
    assert "alive" in WINDOW_METRICS
    assert "l0" not in WINDOW_METRICS
    raw = bootstrap_replicates(core.SUM_METRICS["alive"], arrays, 400, seed=0)
    assert percentile_interval(raw)[1] < 0.8
    low, high = percentile_interval(recentre(raw, 1.0))
    assert low < 1.0 < high
    assert high - low == pytest.approx(np.subtract(*percentile_interval(raw)[::-1]))


def _pass_for(tiny_llama, tiny_corpus, sae_dirs):
    lm = load_model(str(tiny_llama))
    site = lm.site(subjects.HOOK)
    window = pack_tokens(lm.tokenizer, iter_texts(str(tiny_corpus)), 2048, 64, "tiny")
    from interpscore.subjects.loading import load_sae

    saes = {name: load_sae(str(path)).sae for name, path in sae_dirs.items()}
    result = run_shared_pass(
        lm, site, window, saes, [CoreStatistics()], batch_size=8, show_progress=False
    )
    return {name: result.results["core"][name] for name in saes}


def test_identity_sae_gives_perfect_scores(tiny_llama, tiny_corpus, tiny_saes):
    arrays = _pass_for(tiny_llama, tiny_corpus, {"identity": tiny_saes["identity"]})["identity"]
    metrics = core.SUM_METRICS
    value = {name: core.evaluate(m, arrays) for name, m in metrics.items()}
    assert value["explained_variance"] == pytest.approx(1.0, abs=1e-6)
    assert value["cossim"] == pytest.approx(1.0, abs=1e-6)
    assert value["ce_loss_score"] == pytest.approx(1.0, abs=1e-4)
    assert value["kl_div_score"] == pytest.approx(1.0, abs=1e-4)
    assert value["mse_per_token"] == pytest.approx(0.0, abs=1e-8)
    assert value["l2_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert value["relative_reconstruction_bias"] == pytest.approx(1.0, abs=1e-6)


def test_zero_sae_recovers_nothing(tiny_llama, tiny_corpus, tiny_saes):
    arrays = _pass_for(tiny_llama, tiny_corpus, {"zero": tiny_saes["zero"]})["zero"]
    metrics = core.SUM_METRICS
    assert core.evaluate(metrics["loss_recovered"], arrays) == 0.0
    assert core.evaluate(metrics["ce_loss_score"], arrays) == pytest.approx(0.0, abs=1e-6)
    assert core.evaluate(metrics["kl_div_score"], arrays) == pytest.approx(0.0, abs=1e-6)


def test_special_tokens_are_masked_in_both_patched_passes(tiny_llama, tiny_corpus, tiny_saes):
    """The zero-ablation keeps BOS/EOS activations exactly as the SAE pass does."""
    arrays = _pass_for(tiny_llama, tiny_corpus, {"zero": tiny_saes["zero"]})["zero"]
    # A zero SAE splices zeros at ordinary tokens only; if ablation zeroed BOS too, the
    # two runs would differ and ce_sae would not equal ce_zero sequence by sequence.
    np.testing.assert_allclose(arrays["ce_sae"], arrays["ce_zero"], rtol=1e-6)


def test_trained_sae_beats_its_random_init_control(tiny_llama, tiny_corpus, tiny_saes):
    """On a random tiny model CE-based scores are not meaningful (zero-ablation can lower
    CE), so this compares the KL score and explained variance."""
    settings = RunSettings(
        dataset=str(tiny_corpus), tokens=4096, context_len=64, bootstrap=200, show_progress=False
    )
    evaluator = Evaluator(settings, [parse_sae_spec(str(tiny_saes["topk"]))])
    sid = "topk"
    for name in ("kl_div_score", "explained_variance"):
        mine = evaluator.value(sid, name)
        control = evaluator.value(evaluator.random_control_ref(sid), name)
        assert mine.value > control.value, name
        assert mine.ci95[0] <= mine.value <= mine.ci95[1]
    assert evaluator.passes[0].lm_forward_calls["clean_full"] == 8  # 64 sequences / batch 8


def test_density_statistics_by_hand():
    density = np.array([0.0, 0.005, 0.02, 0.2, 0.5])
    stats = core.density_statistics(density)
    assert stats["freq_over_1_percent"] == pytest.approx(3 / 5)
    assert stats["freq_over_10_percent"] == pytest.approx(2 / 5)
    assert stats["normalized_freq_over_1_percent"] == pytest.approx(0.72 / 0.725)
    assert stats["normalized_freq_over_10_percent"] == pytest.approx(0.7 / 0.725)
    assert core.density_statistics(np.zeros(4))["normalized_freq_over_1_percent"] == 0.0


def test_max_cosine_to_others_known_answers():
    eye = torch.eye(6)
    assert torch.equal(core.max_cosine_to_others(eye), torch.zeros(6))
    rows = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    expected = torch.tensor([1.0, 1.0, 2**-0.5, 2**-0.5])
    assert torch.allclose(core.max_cosine_to_others(rows), expected)
    wide = torch.randn(50, 7)
    assert torch.allclose(core.max_cosine_to_others(wide, chunk=8), core.max_cosine_to_others(wide))


def test_latent_token_counts_and_norms_count_only_masked_tokens():
    f = torch.tensor([[[1.0, 0.0], [2.0, 3.0], [0.0, 5.0]]])
    mask = torch.tensor([[True, True, False]])
    assert core.latent_token_counts(f, mask).tolist() == [2.0, 1.0]
    x = torch.tensor([[[3.0, 4.0], [0.0, 1.0], [9.0, 9.0]]])
    sums = core.reconstruction_sums(x, 2 * x, mask)
    assert sums["x_norm_sum"][0] == pytest.approx(6.0)
    assert sums["xhat_norm_sum"][0] == pytest.approx(12.0)
