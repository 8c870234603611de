"""Typed results: a metric's value with its replicates, comparisons with controls, and the
record of one measured metric that travels from a test to the report.

A :class:`MetricRecord` crosses process boundaries (pytest-xdist workers send test reports
to the controller), so it has one :meth:`MetricRecord.to_dict` / :meth:`from_dict` pair;
everything else reads the typed object. The report keys (``value``, ``status``, ``ci95``,
``ci_unit``, ``seconds``, ``details``, ``controls``, ``window``) are what the gate and users
rely on, and stay as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from interpscore.metrics.stats import percentile_interval

Status = Literal["passed", "not_applicable", "failed", "skipped"]
ControlKind = Literal["random-init", "model", "null", "ceiling"]
RANDOM_INIT: ControlKind = "random-init"


@dataclass(frozen=True)
class SubjectRef:
    """What a metric is computed on: an SAE of the run, or a control generated for one.

    ``control`` is None for the SAE itself and ``"random-init"`` for its seeded random-init
    control. SAEs trained on randomized transformers are SAEs of the run in their own right
    (their config says which SAE they control).
    """

    sae_id: str
    control: str | None = None

    @property
    def key(self) -> str:
        """The name used in reports (``topk`` or ``topk#random-init``)."""
        return self.sae_id if self.control is None else f"{self.sae_id}#{self.control}"

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class MetricValue:
    """A metric's value, its bootstrap replicates (when made) and extra details.

    ``applicable`` is False when a metric's precondition fails (for example a model that
    cannot do the absorption task); ``value`` is then None and ``details`` say why.
    ``nulls`` are the same metric under null conditions the family builds itself (autointerp
    scores another latent's explanation on the same examples), and ``ceilings`` under the
    best conditions it knows (task ground truth's supervised dictionary); both are compared
    like controls. ``breakdown`` holds the parts a value averages (one number per task), so
    a control's parts can be shown beside the SAE's.
    """

    value: float | None
    replicates: np.ndarray | None = None
    unit: str = "sequence"
    details: dict[str, Any] = field(default_factory=dict)
    applicable: bool = True
    nulls: dict[str, MetricValue] = field(default_factory=dict)
    ceilings: dict[str, MetricValue] = field(default_factory=dict)
    breakdown: dict[str, float] = field(default_factory=dict)

    @classmethod
    def not_applicable(cls, reason: str, **details: Any) -> MetricValue:
        return cls(None, details={**details, "reason": reason}, applicable=False)

    @property
    def ci95(self) -> tuple[float, float] | None:
        return percentile_interval(self.replicates)

    @property
    def finite(self) -> bool:
        return self.value is not None and math.isfinite(self.value)


def side_of(interval: Sequence[float] | None) -> str | None:
    """Where an SAE sits against a control, from the paired 95% interval on SAE − control:
    ``above`` or ``below`` zero, or ``tied`` (it covers zero); None without an interval.
    (``distinguishes`` alone does not say which way.)"""
    if interval is None:
        return None
    if interval[0] > 0:
        return "above"
    return "below" if interval[1] < 0 else "tied"


def is_model_control(entry: Mapping[str, Any]) -> bool:
    """A report entry that is another SAE's control (an SAE of a randomized transformer)."""
    return bool(entry.get("control_of"))


@dataclass(frozen=True)
class ControlComparison:
    """A control's value beside the SAE's, with a paired interval on SAE − control.

    A control that was not run (``skipped``) or broke (``error``) says so instead.
    """

    kind: ControlKind
    value: float | None = None
    difference: float | None = None
    difference_ci95: tuple[float, float] | None = None
    skipped: str | None = None
    error: str | None = None
    breakdown: dict[str, float] = field(default_factory=dict)

    @property
    def distinguishes(self) -> bool | None:
        """Whether the interval on (SAE − control) excludes zero; None without one."""
        if self.difference_ci95 is None:
            return None
        return self.difference_ci95[0] > 0 or self.difference_ci95[1] < 0

    def to_dict(self) -> dict[str, Any]:
        if self.skipped is not None:
            return {"kind": self.kind, "skipped": self.skipped}
        if self.error is not None:
            return {"kind": self.kind, "error": self.error}
        out = {
            "kind": self.kind,
            "value": self.value,
            "difference": self.difference,
            "difference_ci95": list(self.difference_ci95) if self.difference_ci95 else None,
            "distinguishes": self.distinguishes,
        }
        return {**out, "breakdown": dict(self.breakdown)} if self.breakdown else out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControlComparison:
        ci = data.get("difference_ci95")
        return cls(
            kind=data["kind"],
            value=data.get("value"),
            difference=data.get("difference"),
            difference_ci95=tuple(ci) if ci else None,  # type: ignore[arg-type]
            skipped=data.get("skipped"),
            error=data.get("error"),
            breakdown=dict(data.get("breakdown") or {}),
        )


def compare(sae: MetricValue, control: MetricValue, kind: ControlKind) -> ControlComparison:
    """Compare an SAE's value with a control's.

    Replicates made with the same seed over the same units share their resamples, so
    their difference is a paired bootstrap of the difference.
    """
    if not (sae.finite and control.finite):
        value = control.value if control.finite else None
        return ControlComparison(kind, value, breakdown=control.breakdown)
    difference = float(sae.value) - float(control.value)  # type: ignore[arg-type]
    paired = (
        sae.replicates is not None
        and control.replicates is not None
        and sae.replicates.shape == control.replicates.shape
        and sae.unit == control.unit
    )
    interval = percentile_interval(sae.replicates - control.replicates) if paired else None  # type: ignore[operator]
    return ControlComparison(
        kind,
        float(control.value),  # type: ignore[arg-type]
        difference,
        interval,
        breakdown=control.breakdown,
    )


@dataclass
class MetricRecord:
    """One measured metric of one SAE, as it goes into the report.

    ``replicates`` and ``control_replicates`` are kept for formula components only: the
    report builder needs them for the InterpScore interval, and they are not written out.
    """

    sae: str
    metric: str
    status: Status
    value: float | None = None
    ci95: tuple[float, float] | None = None
    ci_unit: str | None = None
    seconds: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    controls: dict[str, ControlComparison] = field(default_factory=dict)
    window: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None
    #: Where a value not measured by this harness came from (e.g. an imported SAEBench file).
    source: str | None = None
    replicates: list[float] | None = None
    control_replicates: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self, *, wire: bool = False) -> dict[str, Any]:
        """The report entry; ``wire=True`` adds what travels to the report builder only."""
        out: dict[str, Any] = {"value": self.value, "status": self.status}
        if self.source is not None:
            out["source"] = self.source
        if self.status == "passed":
            out |= {
                "ci95": list(self.ci95) if self.ci95 else None,
                "ci_unit": self.ci_unit,
                "seconds": self.seconds,
                "details": self.details,
                "controls": {k: c.to_dict() for k, c in self.controls.items()},
                "window": self.window,
            }
        elif self.status == "not_applicable":
            out |= {"seconds": self.seconds, "details": self.details}
        if self.params:
            out["params"] = dict(self.params)
        if self.error is not None:
            out["error"] = self.error
        if self.reason is not None:
            out["reason"] = self.reason
        if wire:
            out |= {
                "sae": self.sae,
                "metric": self.metric,
                "replicates": self.replicates,
                "control_replicates": self.control_replicates,
            }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricRecord:
        ci = data.get("ci95")
        return cls(
            sae=data["sae"],
            metric=data["metric"],
            status=data["status"],
            value=data.get("value"),
            ci95=tuple(ci) if ci else None,  # type: ignore[arg-type]
            ci_unit=data.get("ci_unit"),
            seconds=data.get("seconds"),
            details=data.get("details") or {},
            controls={
                k: ControlComparison.from_dict(v) for k, v in (data.get("controls") or {}).items()
            },
            window=data.get("window"),
            params=data.get("params") or {},
            error=data.get("error"),
            reason=data.get("reason"),
            source=data.get("source"),
            replicates=data.get("replicates"),
            control_replicates=data.get("control_replicates") or {},
        )
