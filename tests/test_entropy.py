"""Token entropy of top activations: streaming top-k and hand-computed entropies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interpscore.metrics.entropy import TopActivations, entropy_per_latent


def test_streaming_top_activations_equal_one_shot_topk():
    torch.manual_seed(0)
    f = torch.relu(torch.randn(6, 20, 8))
    tokens = torch.randint(0, 50, (6, 20))
    mask = torch.rand(6, 20) > 0.1
    top = TopActivations(8, 5)
    for lo in (0, 2, 4):
        top.update(f[lo : lo + 2], tokens[lo : lo + 2], mask[lo : lo + 2])
    flat, ids = f[mask], tokens[mask]
    expected = torch.topk(flat.T, 5, dim=1)
    torch.testing.assert_close(top.values, expected.values)
    assert torch.equal(top.tokens, ids[expected.indices])


def test_entropy_hand_cases():
    values = np.array(
        [
            [1.0] * 10 + [0.0] * 2,  # one token only -> 0
            [2.0] * 12,  # four tokens, equal mass -> ln 4
            [1.0] * 3 + [0.0] * 9,  # too few activations -> NaN
        ]
    )
    tokens = np.array([[7] * 12, [1, 2, 3, 4] * 3, [5] * 12])
    out = entropy_per_latent(values, tokens, min_count=10)
    assert out[0] == pytest.approx(0.0)
    assert out[1] == pytest.approx(math.log(4))
    assert math.isnan(out[2])
