"""What a metric family declares, and what it is given when it computes.

A :class:`Suite` is one metric family: its metrics (:class:`MetricSpec`), its settings
(a frozen dataclass whose fields declare their command-line options, see
:mod:`interpscore.settings`), the accumulators it adds to the shared language-model pass,
the state it shares between the SAEs of one (model, hook), and how it computes values for
one SAE. The evaluator calls it through the two contexts below and never by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from torch import nn

from interpscore.errors import InterpScoreError
from interpscore.results.records import MetricValue, SubjectRef
from interpscore.settings import to_dict

if TYPE_CHECKING:
    from interpscore.evaluation.cache import Store
    from interpscore.evaluation.settings import RunSettings
    from interpscore.evaluation.shared_pass import Accumulator
    from interpscore.subjects.data import TokenWindow
    from interpscore.subjects.hooked import HookedLM, HookSite
    from interpscore.subjects.models import ModelRef

Direction = Literal["higher", "lower", "none"]
CiUnit = Literal["sequence", "example", "word", "letter", "latent", "prompt"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its report name, what it means and how to read it.

    ``params`` holds the parameters that the name encodes for readers
    (``sparse_probing_k5`` has ``{"k": 5}``); code reads the parameters, never the name.
    ``component`` marks metrics a formula may weight: bounded in [0, 1], higher better.
    ``ci_unit`` is what the bootstrap interval resamples (None: no interval).
    """

    name: str
    description: str
    direction: Direction = "higher"
    bounds: tuple[float | None, float | None] = (None, None)
    ci_unit: CiUnit | None = "sequence"
    params: Mapping[str, Any] = field(default_factory=dict)
    component: bool = False
    suite: str = ""

    def __post_init__(self) -> None:
        if self.component and (self.bounds != (0.0, 1.0) or self.direction != "higher"):
            raise ValueError(f"component {self.name} must be bounded in [0, 1], higher better")


class GroupContext(Protocol):
    """The (model, hook) that a suite's shared state is built for."""

    lm: HookedLM
    site: HookSite
    window: TokenWindow
    run: RunSettings

    def settings(self, suite: str) -> Any:
        """A suite's settings for this run."""

    def state(self, suite: str) -> Any:
        """A suite's shared state on this (model, hook), prepared once."""

    def progress(self) -> AbstractContextManager[Any]:
        """A context in which progress bars are shown."""

    def run_state(self, suite: str) -> Any:
        """A suite's session-wide state (see :meth:`Suite.prepare_run`), built once."""

    def value_cache(self) -> tuple[Store, dict[str, Any]] | None:
        """The value cache and the key fields of this group's model (None: no cache)."""


class RunContext(Protocol):
    """What a family's session-wide state is built from."""

    settings: RunSettings

    def suite_settings(self, suite: str) -> Any:
        """A suite's settings for this run."""

    def model(self, ref: ModelRef) -> HookedLM:
        """A language model, loaded once per session."""


class SubjectContext(Protocol):
    """One SAE (or control) on its (model, hook), as a suite's ``compute`` sees it."""

    ref: SubjectRef
    sae: nn.Module
    group: GroupContext
    run: RunSettings
    settings: Any
    state: Any
    #: A random-init control, or an SAE that is some other SAE's control (randomized model).
    is_control: bool

    def pass_result(self, accumulator: str) -> Any:
        """This SAE's result from an accumulator of the shared pass (running it once)."""


class Suite:
    """A metric family. Subclass, fill the class attributes, implement :meth:`compute`
    (per-SAE families) or use :meth:`prepare_run` (run-level ones), and register an instance
    (see :mod:`interpscore.suites`)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    settings_type: ClassVar[type | None] = None
    #: Run for SAEs on randomized transformers by default (else only with
    #: ``--model-control-metrics=all``: such metrics need separate passes on each model).
    on_model_controls: ClassVar[bool] = False
    #: False for families that evaluate no SAE of the run (ground truth on synthetic data):
    #: their tests record run-level results instead of per-SAE metrics.
    per_sae: ClassVar[bool] = True

    def default_settings(self) -> Any:
        return self.settings_type() if self.settings_type is not None else None

    def skip_reason(self, settings: Any, metric: str) -> str | None:
        """Why this run's settings switch ``metric`` off (None: it runs)."""
        return None

    def accumulators(self, group: GroupContext) -> list[Accumulator]:
        """Accumulators this family adds to the shared pass on ``group``."""
        return []

    def prepare(self, group: GroupContext) -> Any:
        """State shared by every SAE on ``group`` (task data, probes, …), built once."""
        return None

    def compute(
        self, subject: SubjectContext, metric: MetricSpec
    ) -> Mapping[str, MetricValue | InterpScoreError]:
        """Values for one SAE: ``metric`` and any metrics computed with it, by name. A metric
        that could not be computed maps to its error, raised when that metric is asked for."""
        raise TypeError(f"suite {self.name} computes no per-SAE values")

    def prepare_run(self, ctx: RunContext) -> Any:
        """Session-wide state (a synthetic world, a language-model backend), built once."""
        raise TypeError(f"suite {self.name} has no session-wide state")

    def markdown(self, report: dict[str, Any]) -> list[str]:
        """Markdown lines of this family's own section of the report (none by default)."""
        return []

    def settings_dict(self, settings: Any) -> dict[str, Any]:
        """What the report's run block records of this family's settings."""
        return to_dict(settings) if dataclasses.is_dataclass(settings) else {}
