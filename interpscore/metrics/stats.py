"""Per-sequence sufficient statistics, weighted sums and bootstrap intervals.

Every streaming metric is a function of sums over evaluation units (sequences for
token metrics, examples for probing). Keeping the per-unit sums, rather than one
running total, costs O(units) memory and buys two things: the metric and its
bootstrap interval come from the same code (a resample is just a weight vector), and
values do not depend on how units were batched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

Sums = Mapping[str, np.ndarray]


class SequenceStats:
    """Named arrays whose first axis is the evaluation unit (one row per sequence)."""

    def __init__(self) -> None:
        self._parts: dict[str, list[np.ndarray]] = {}
        self._frozen: dict[str, np.ndarray] | None = None

    def add(self, **rows: np.ndarray) -> None:
        """Append rows (one per unit) for each named statistic."""
        if self._frozen is not None:
            raise RuntimeError("SequenceStats is frozen; create a new one to add rows.")
        for name, value in rows.items():
            self._parts.setdefault(name, []).append(np.asarray(value))

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The statistics as arrays with the unit axis first (concatenated once)."""
        if self._frozen is None:
            self._frozen = {k: np.concatenate(v, axis=0) for k, v in self._parts.items()}
            self._parts = {}
        return self._frozen


def weighted_sums(
    arrays: Mapping[str, np.ndarray], weights: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Sums over the unit axis of unit-first arrays, plain (``weights`` None) or weighted by
    ``weights`` of shape (n_units,) or (n_resamples, n_units)."""
    out: dict[str, np.ndarray] = {}
    for key, arr in arrays.items():
        flat = arr.reshape(arr.shape[0], -1)
        if weights is None:
            total = flat.sum(axis=0, dtype=np.float64)
            out[key] = total.reshape(arr.shape[1:])
        else:
            dtype = np.float32 if flat.dtype == np.bool_ else np.float64
            total = weights.astype(dtype) @ flat.astype(dtype)
            lead = (weights.shape[0],) if weights.ndim == 2 else ()
            out[key] = np.asarray(total).reshape(lead + arr.shape[1:])
    return out


def resample_weights(n_units: int, n_resamples: int, seed: int) -> np.ndarray:
    """Multinomial bootstrap weights, (n_resamples, n_units), reproducible from the seed."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_units, size=(n_resamples, n_units))
    weights = np.zeros((n_resamples, n_units), dtype=np.float64)
    np.add.at(weights, (np.arange(n_resamples)[:, None], idx), 1.0)
    return weights


def bootstrap_replicates(
    metric: Callable[[Sums], np.ndarray | float],
    arrays: Mapping[str, np.ndarray],
    n_resamples: int,
    seed: int,
    chunk: int = 100,
) -> np.ndarray | None:
    """The metric on ``n_resamples`` unit-resampled sums; None with fewer than 2 units.

    ``metric`` must accept sums with a leading resample axis (numpy broadcasting). Two
    metrics bootstrapped with the same seed over the same number of units see the same
    resamples, so their replicates can be subtracted for a paired interval.
    """
    n_units = next(iter(arrays.values())).shape[0]
    if n_units < 2 or n_resamples < 1:
        return None
    weights = resample_weights(n_units, n_resamples, seed)
    values = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, n_resamples, chunk):
            block = weights[start : start + chunk]
            value = np.asarray(metric(weighted_sums(arrays, block)), dtype=np.float64)
            values.append(np.broadcast_to(value, (block.shape[0],)))
    return np.concatenate(values)


def recentre(replicates: np.ndarray, value: float) -> np.ndarray:
    """Shift replicates so their mean is ``value`` (removes the bootstrap's own bias).

    For a statistic like "fraction of latents that fire at least once", a resample sees
    fewer distinct sequences than the sample, so every replicate is biased the same way;
    shifting by the estimated bias keeps the spread and puts the interval around the value.
    """
    return replicates + (value - float(np.nanmean(replicates)))


def percentile_interval(
    replicates: np.ndarray | None, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile interval of finite replicates; None when fewer than half are finite."""
    if replicates is None:
        return None
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0 or finite.size < replicates.size / 2:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)
