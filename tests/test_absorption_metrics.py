"""First-letter absorption math on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from interpscore.metrics import absorption as ab


def _case(main_act: float, absorber_act: float):
    d, direction = 4, np.array([1.0, 0.0, 0.0, 0.0])
    w_dec = np.array(
        [
            [1.0, 0.0, 0.0, 0.0],  # 0: the main latent, along the probe
            [0.9, 0.4359, 0.0, 0.0],  # 1: an absorbing latent, cos 0.9 with the probe
            [0.0, 0.0, 1.0, 0.0],  # 2: unrelated
        ]
    )
    f = np.array([[main_act, absorber_act, 0.3]])
    x = f @ w_dec + np.zeros((1, d))
    return ab.absorption(x, f, w_dec, direction, main=[0])


def test_main_latent_carrying_the_letter_is_not_absorbed():
    fraction, full = _case(main_act=1.0, absorber_act=0.0)
    assert fraction[0] == 0.0
    assert not full[0]


def test_absorber_carrying_everything_is_full_absorption():
    fraction, full = _case(main_act=0.0, absorber_act=1.0)
    assert fraction[0] == 1.0
    assert full[0]


def test_shared_projection_gives_a_partial_fraction():
    # main projects 0.5; absorber projects 0.9 * 0.5 = 0.45; a = 0.95
    fraction, full = _case(main_act=0.5, absorber_act=0.5)
    absorbed = min(0.45, 0.95 - 0.5)
    assert fraction[0] == pytest.approx(absorbed / (absorbed + 0.5))
    assert not full[0]


def test_small_absorbers_below_the_proportion_do_not_count():
    # absorber projects 0.9 * 0.1 = 0.09 < 0.4 * a
    fraction, _ = _case(main_act=0.2, absorber_act=0.1)
    assert fraction[0] == 0.0


def test_main_latents_find_a_planted_letter_latent():
    rng = np.random.default_rng(0)
    n = 300
    positive = rng.random(n) < 0.2
    f = np.abs(rng.normal(size=(n, 20))) * 0.1
    f[:, 5] = positive * 2.0
    chosen, history = ab.main_latents(f[:200], positive[:200], f[200:], positive[200:])
    assert chosen == [5]
    assert history[0] == pytest.approx(1.0)
