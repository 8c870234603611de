"""Feature absorption on the first-letter task (SAEBench's definition), as pure functions.

Given residual activations at the word token of ``"{word} has the first letter:"``
prompts, a ground-truth letter probe, and an SAE's latents:

* the *main* latents of a letter are found by k-sparse probing (latents ranked on train,
  k grown while validation F1 improves by more than 0.03);
* for each test word the probe classifies correctly, the absorption fraction measures how
  much of the probe direction is carried by other latents aligned with the probe while the
  main latents fail to fire.

Differences from SAEBench, each fixing a pitfall it has: latents are ranked by their train
mean difference (SAEBench fits an L1 probe with Adam on GPU for the same purpose), k and the
probe's letter F1 are judged on validation rather than test, a latent's projection on the
probe is ``f_i·(d_i·p̂)`` (SAEBench uses the cosine, which assumes unit-norm decoder rows),
and every random choice is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import f1_score

from interpscore.metrics.probing import fit_logistic

FULL_ABSORPTION_COS = 0.025
ABSORPTION_COS = 0.1
PROJECTION_PROPORTION = 0.4
MAX_ABSORBING = 3
LIVE = 1e-8


def f1(scores: np.ndarray, positive: np.ndarray) -> float:
    return float(f1_score(positive, scores > 0, zero_division=0.0))


@dataclass(frozen=True)
class LetterProbe:
    """A one-vs-rest logistic probe for one letter on residual activations."""

    coef: np.ndarray
    intercept: float
    f1_val: float

    @property
    def direction(self) -> np.ndarray:
        return self.coef / np.linalg.norm(self.coef)

    def scores(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef + self.intercept


def fit_letter_probe(
    x_train: np.ndarray, pos_train: np.ndarray, x_val: np.ndarray, pos_val: np.ndarray
) -> LetterProbe:
    clf = fit_logistic(x_train, pos_train, balanced=True)
    probe = LetterProbe(clf.coef_[0].copy(), float(clf.intercept_[0]), 0.0)
    return LetterProbe(probe.coef, probe.intercept, f1(probe.scores(x_val), pos_val))


def main_latents(
    f_train: np.ndarray,
    pos_train: np.ndarray,
    f_val: np.ndarray,
    pos_val: np.ndarray,
    max_k: int = 10,
    f1_jump: float = 0.03,
) -> tuple[list[int], list[float]]:
    """SAEBench's feature-split rule: grow k while validation F1 jumps by more than f1_jump.

    Latents are ranked by mean(pos) − mean(neg) on train (signed: latents that fire for
    the letter). Returns the chosen latents and the F1 at each k tried.
    """
    diff = f_train[pos_train].mean(0) - f_train[~pos_train].mean(0)
    ranking = np.argsort(-diff, kind="stable")
    chosen: list[int] = []
    history: list[float] = []
    previous = -100.0
    for k in range(1, max_k + 1):
        top = ranking[:k]
        clf = fit_logistic(f_train[:, top], pos_train, balanced=True, max_iter=500)
        score = f1(clf.decision_function(f_val[:, top]), pos_val)
        history.append(score)
        if score > previous + f1_jump:
            previous, chosen = score, [int(i) for i in top]
        else:
            break
    return chosen, history


def absorption(
    x: np.ndarray, f: np.ndarray, w_dec: np.ndarray, direction: np.ndarray, main: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Absorption fraction and full-absorption flag for each row (words of one letter).

    ``x`` (n, d) residuals, ``f`` (n, d_sae) latents, ``w_dec`` (d_sae, d), ``direction``
    the unit probe direction, ``main`` the letter's main latents.
    """
    a = x @ direction
    along = w_dec @ direction
    cos = along / np.maximum(np.linalg.norm(w_dec, axis=1), 1e-12)
    proj = f * along
    main_mask = np.zeros(w_dec.shape[0], dtype=bool)
    main_mask[main] = True
    main_proj = proj[:, main_mask].sum(1)
    candidates = np.where((~main_mask) & (cos >= ABSORPTION_COS), proj, 0.0)
    candidates = np.where(candidates > 0, candidates, 0.0)
    top = -np.sort(-candidates, axis=1)[:, :MAX_ABSORBING].sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(a != 0, top / a, 0.0)
        absorbed = np.minimum(top, a - main_proj)
        partial = np.clip(absorbed / (absorbed + main_proj), 0.0, 1.0)
    fraction = np.where(
        (main_proj >= a) | (share < PROJECTION_PROPORTION),
        0.0,
        np.where(main_proj <= 0, 1.0, partial),
    )
    best = np.argmax(proj, axis=1)
    rows = np.arange(len(x))
    with np.errstate(divide="ignore", invalid="ignore"):
        top_share = np.where(a != 0, proj[rows, best] / a, 0.0)
    full = (
        (np.abs(f[:, main_mask]) < LIVE).all(1)
        & (cos[best] >= FULL_ABSORPTION_COS)
        & (a >= 0)
        & (top_share >= PROJECTION_PROPORTION)
    )
    return fraction, full
