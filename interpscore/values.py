"""Metric values with their bootstrap replicates, and comparisons with controls."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interpscore.metrics.stats import percentile_interval


@dataclass(frozen=True)
class MetricValue:
    """A metric's value, its bootstrap replicates (when made) and extra details.

    ``applicable`` is False when a metric's precondition fails (for example a model that
    cannot do the absorption task); ``value`` is then None and ``details`` say why.
    """

    value: float | None
    replicates: np.ndarray | None = None
    unit: str = "sequence"
    details: dict[str, Any] = field(default_factory=dict)
    applicable: bool = True

    @property
    def ci95(self) -> tuple[float, float] | None:
        return percentile_interval(self.replicates)

    @property
    def finite(self) -> bool:
        return self.value is not None and math.isfinite(self.value)


@dataclass(frozen=True)
class ControlComparison:
    """A control's value beside the SAE's, with a paired interval on SAE − control."""

    value: float | None
    difference: float | None
    difference_ci95: tuple[float, float] | None

    @property
    def distinguishes(self) -> bool | None:
        """Whether the interval on (SAE − control) excludes zero; None without one."""
        if self.difference_ci95 is None:
            return None
        return self.difference_ci95[0] > 0 or self.difference_ci95[1] < 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "difference": self.difference,
            "difference_ci95": list(self.difference_ci95) if self.difference_ci95 else None,
            "distinguishes": self.distinguishes,
        }


def compare(sae: MetricValue, control: MetricValue) -> ControlComparison:
    """Compare an SAE's value with a control's.

    Replicates made with the same seed over the same units share their resamples, so
    their difference is a paired bootstrap of the difference.
    """
    if not (sae.finite and control.finite):
        return ControlComparison(control.value if control.finite else None, None, None)
    difference = float(sae.value) - float(control.value)  # type: ignore[arg-type]
    paired = (
        sae.replicates is not None
        and control.replicates is not None
        and sae.replicates.shape == control.replicates.shape
        and sae.unit == control.unit
    )
    interval = percentile_interval(sae.replicates - control.replicates) if paired else None  # type: ignore[operator]
    return ControlComparison(float(control.value), difference, interval)  # type: ignore[arg-type]
