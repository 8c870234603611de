"""Ground-truth feature recovery: decoder directions against known feature directions.

* ``mmcs``: mean over true features of the largest cosine with any decoder row (Sharkey et
  al. 2022). Signed: a latent that only fires non-negatively recovers a feature only if its
  decoder row points the same way.
* ``matched_correlation``: mean |cos| over a one-to-one Hungarian matching of decoder rows
  and true features (sae-lens' ``mean_correlation_coefficient``, arXiv:2505.20254).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def cosine_matrix(w_dec: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Cosines between decoder rows (d_sae, d) and true features (n, d): (d_sae, n)."""
    a = w_dec / np.maximum(np.linalg.norm(w_dec, axis=1, keepdims=True), 1e-12)
    b = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def mmcs(w_dec: np.ndarray, features: np.ndarray) -> float:
    """Mean over true features of the max cosine with any decoder row."""
    return float(cosine_matrix(w_dec, features).max(axis=0).mean())


def matched_correlation(w_dec: np.ndarray, features: np.ndarray) -> float:
    """Mean |cos| of the Hungarian one-to-one matching of latents and features."""
    similarity = np.abs(cosine_matrix(w_dec, features))
    rows, cols = linear_sum_assignment(1.0 - similarity)
    return float(similarity[rows, cols].mean())
