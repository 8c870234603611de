"""The session's evaluator: loads each SAE and model once, groups SAEs by (model, hook),
runs the shared pass once per group, dispatches metrics to their suites through the
registry, compares every value with the SAE's controls and returns typed records.

The first value any SAE needs from a pass runs it for *every* SAE of the session on the
same (model, hook) and their random-init controls, with the accumulators of every family
the session asked for, so one language-model pass serves them all. Errors are kept per
SAE: an SAE that failed to load or evaluate raises its own error in its own tests and
nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from interpscore.errors import InterpScoreError, SpecError, summarize
from interpscore.evaluation.cache import Store
from interpscore.evaluation.cache_keys import base_key, module_hash
from interpscore.evaluation.pass_cache import PassCache, pass_key
from interpscore.evaluation.settings import RunSettings
from interpscore.evaluation.shared_pass import Accumulator, PassInfo, run_shared_pass
from interpscore.results.records import (
    RANDOM_INIT,
    ControlComparison,
    ControlKind,
    MetricRecord,
    MetricValue,
    SubjectRef,
    compare,
)
from interpscore.subjects.controls import random_init_like
from interpscore.subjects.data import TokenWindow, iter_texts, pack_tokens
from interpscore.subjects.hooked import HookedLM, HookSite
from interpscore.subjects.loading import LoadedSAE, SAESpec, load_sae
from interpscore.subjects.models import ModelRef, load_model
from interpscore.suites import REGISTRY, Registry, Suite

log = logging.getLogger("interpscore.evaluation")

Timer = Callable[[Callable[[], MetricValue]], MetricValue]


class MetricError(InterpScoreError):
    """A metric that produced no usable number (NaN, inf) for an SAE."""


@dataclass
class HookGroup:
    """The SAEs of one (model, hook), their window, their suites' state and pass results."""

    evaluator: Evaluator
    model: ModelRef
    lm: HookedLM
    site: HookSite
    window: TokenWindow
    run: RunSettings
    saes: dict[str, nn.Module]
    errors: dict[str, BaseException] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    _states: dict[str, Any] = field(default_factory=dict)

    def settings(self, suite: str) -> Any:
        return self.evaluator.suite_settings(suite)

    def state(self, suite: str) -> Any:
        if suite not in self._states:
            with self.progress():
                self._states[suite] = self.evaluator.registry.suite(suite).prepare(self)
        return self._states[suite]

    def progress(self) -> AbstractContextManager[Any]:
        return self.evaluator.progress()

    def run_state(self, suite: str) -> Any:
        return self.evaluator.run_state(suite)

    def value_cache(self) -> tuple[Store, dict[str, Any]] | None:
        """The value cache and the key fields of this group's model (None: no cache)."""
        base = self.evaluator.cache_key(self.model, self.lm)
        if self.evaluator.cache is None or base is None:
            return None
        return self.evaluator.cache, base

    def pass_result(self, key: str, accumulator: str) -> Any:
        """An SAE's result from an accumulator, running a pass when it has not run yet."""
        if key not in self.errors and accumulator not in self.results:
            self._run(self.evaluator.accumulators_for(self, accumulator))
        if key in self.errors:
            raise self.errors[key]
        return self.results[accumulator][key]

    def _run(self, accumulators: list[Accumulator]) -> None:
        core_rows = self.window.n_sequences
        rows = max([core_rows, *(a.n_rows or 0 for a in accumulators)])
        window = (
            self.window
            if rows == core_rows
            else self.evaluator.window(self.lm, self.model.base, rows * self.run.context_len)
        )
        saes = {k: m for k, m in self.saes.items() if k not in self.errors}
        try:
            cache = self.evaluator.pass_cache(self, window, saes)
            result = run_shared_pass(
                self.lm,
                self.site,
                window,
                saes,
                accumulators,
                core_rows=core_rows,
                batch_size=self.run.batch_size,
                progress=self.progress(),
                show_progress=self.run.show_progress,
                cache=cache,
            )
        except Exception as exc:  # noqa: BLE001 - the whole group failed: each SAE reports it
            log.error("The pass on %s %s failed: %s", self.lm.name, self.site.name, exc)
            for key in saes:
                self.errors[key] = exc
            return
        self.evaluator.passes.append(result.info)
        self.errors.update(result.errors)
        for name, per_key in result.results.items():
            self.results[name] = per_key


@dataclass
class Subject:
    """One SAE (or control) on its group, as a suite's ``compute`` sees it."""

    ref: SubjectRef
    sae: nn.Module
    group: HookGroup
    suite: str
    is_control: bool

    @property
    def run(self) -> RunSettings:
        return self.group.run

    @property
    def settings(self) -> Any:
        return self.group.settings(self.suite)

    @property
    def state(self) -> Any:
        return self.group.state(self.suite)

    def pass_result(self, accumulator: str) -> Any:
        return self.group.pass_result(self.ref.key, accumulator)


class Evaluator:
    """Loads SAEs and models once per session and serves any registered metric."""

    def __init__(
        self,
        settings: RunSettings,
        specs: list[SAESpec],
        *,
        suite_settings: Mapping[str, Any] | None = None,
        wanted: Iterable[str] | None = None,
        registry: Registry = REGISTRY,
        progress: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.specs = {s.id: s for s in specs}
        self.registry = registry
        self._suite_settings = dict(suite_settings or {})
        self._wanted = set(wanted) if wanted is not None else None
        self._progress = progress
        self._loaded: dict[str, LoadedSAE | InterpScoreError] = {}
        self._models: dict[str, HookedLM] = {}
        self._windows: dict[tuple[Any, ...], TokenWindow] = {}
        self._groups: dict[tuple[str, str], HookGroup | BaseException] = {}
        self._controls: dict[str, nn.Module] = {}
        self._values: dict[tuple[SubjectRef, str], MetricValue | InterpScoreError] = {}
        self._run_states: dict[str, Any] = {}
        self._base_keys: dict[str, dict[str, Any]] = {}
        self.cache = settings.value_cache()
        self.passes: list[PassInfo] = []
        self._reported_passes = 0

    # Settings and progress ------------------------------------------------------------

    def suite_settings(self, suite: str) -> Any:
        if suite not in self._suite_settings:
            self._suite_settings[suite] = self.registry.suite(suite).default_settings()
        return self._suite_settings[suite]

    def progress(self) -> AbstractContextManager[Any]:
        return self._progress() if self._progress else nullcontext()

    # Loading -------------------------------------------------------------------------

    def sae(self, sae_id: str) -> LoadedSAE:
        """The loaded SAE, or its load error raised again."""
        if sae_id not in self._loaded:
            try:
                loaded = load_sae(self.specs[sae_id], device=self.settings.device)
                if self.settings.model_override:
                    loaded.model = loaded.model.with_base(self.settings.model_override)
                if not loaded.model.base:
                    raise SpecError(
                        f"The config of SAE {sae_id} names no model.",
                        "pass --model (an alias, a local directory, a .gguf file or a hub id).",
                    )
                self._loaded[sae_id] = loaded
            except InterpScoreError as exc:
                self._loaded[sae_id] = exc
            except Exception as exc:  # noqa: BLE001 - one SAE's broken files fail it alone
                self._loaded[sae_id] = SpecError(
                    f"SAE {sae_id} could not be loaded ({summarize(exc)}).",
                    "check its files (cfg.json and weights), or re-download / re-export it.",
                )
        value = self._loaded[sae_id]
        if isinstance(value, InterpScoreError):
            raise value
        return value

    def loaded(self) -> list[LoadedSAE]:
        """Every SAE of the session that loads."""
        out = []
        for sae_id in self.specs:
            try:
                out.append(self.sae(sae_id))
            except InterpScoreError:
                continue
        return out

    def model(self, ref: ModelRef) -> HookedLM:
        """A model (or control variant) loaded once per session."""
        key = str(ref)
        if key not in self._models:
            self._models[key] = load_model(
                ref,
                device=self.settings.device,
                dtype=self.settings.dtype,
                trust_remote_code=self.settings.trust_remote_code,
            )
        return self._models[key]

    def window(self, lm: HookedLM, base: str, n_positions: int) -> TokenWindow:
        """The token window of a tokenizer (models sharing a base share their window)."""
        s = self.settings
        key = (base, s.dataset, n_positions, s.context_len)
        if key not in self._windows:
            self._windows[key] = pack_tokens(
                lm.tokenizer, iter_texts(s.dataset), n_positions, s.context_len, s.dataset
            )
        return self._windows[key]

    # Subjects and controls -----------------------------------------------------------

    @staticmethod
    def ref(subject: SubjectRef | str) -> SubjectRef:
        return subject if isinstance(subject, SubjectRef) else SubjectRef(subject)

    def random_control_ref(self, sae_id: str) -> SubjectRef:
        return SubjectRef(sae_id, RANDOM_INIT)

    def wants_random_control(self, loaded: LoadedSAE) -> bool:
        return self.settings.controls and loaded.control_of is None

    def module(self, ref: SubjectRef) -> nn.Module:
        """The SAE module of a subject: the SAE itself or its seeded random-init control."""
        loaded = self.sae(ref.sae_id)
        if ref.control is None:
            return loaded.sae
        if ref.control != RANDOM_INIT:
            raise KeyError(f"unknown control {ref.control!r}")
        if ref.sae_id not in self._controls:
            self._controls[ref.sae_id] = random_init_like(loaded.sae, self.settings.seed).eval()
        return self._controls[ref.sae_id]

    def controls_of(self, sae_id: str) -> list[tuple[SubjectRef, ControlKind]]:
        """Controls to compare an SAE with: its random-init control and model-level controls."""
        loaded = self.sae(sae_id)
        out: list[tuple[SubjectRef, ControlKind]] = []
        if self.wants_random_control(loaded):
            out.append((self.random_control_ref(sae_id), RANDOM_INIT))
        out += [(SubjectRef(o.id), "model") for o in self.loaded() if o.control_of == sae_id]
        return out

    # Groups and passes ---------------------------------------------------------------

    def group(self, sae_id: str) -> HookGroup:
        """The (model, hook) group of an SAE, built once for all its members."""
        loaded = self.sae(sae_id)
        key = (str(loaded.model), loaded.hook_name)
        if key not in self._groups:
            self._groups[key] = self._build_group(loaded)
        group = self._groups[key]
        if isinstance(group, BaseException):
            raise group
        return group

    def _build_group(self, loaded: LoadedSAE) -> HookGroup | InterpScoreError:
        try:
            lm = self.model(loaded.model)
            lm.check_context(self.settings.context_len)
            site = lm.site(loaded.hook_name)
            window = self.window(lm, loaded.model.base, self.settings.tokens)
        except InterpScoreError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - this group's SAEs fail; other groups run
            return SpecError(
                f"Model {loaded.model} or the dataset could not be read for hook "
                f"{loaded.hook_name} ({summarize(exc)}).",
                "check --model and --dataset (a model folder, .gguf file or hub id; a text "
                "file, JSONL, parquet, CSV or hub dataset).",
            )
        group = HookGroup(self, loaded.model, lm, site, window, self.settings, {})
        for member in self.loaded():
            if (str(member.model), member.hook_name) != (str(loaded.model), loaded.hook_name):
                continue
            keys = [member.id]
            if self.wants_random_control(member):
                keys.append(self.random_control_ref(member.id).key)
            if member.d_in != lm.d_model:
                error = SpecError(
                    f"SAE {member.id} has d_in={member.d_in}, but {site.name} of {lm.name} has "
                    f"width {lm.d_model}.",
                    "pass the --model the SAE was trained on, or fix d_in in its config.",
                )
                group.errors.update(dict.fromkeys(keys, error))
                continue
            group.saes[member.id] = member.sae
            if len(keys) == 2:
                group.saes[keys[1]] = self.module(self.random_control_ref(member.id))
        return group

    def accumulators_for(self, group: HookGroup, needed: str) -> list[Accumulator]:
        """Accumulators of the next pass on ``group``: those of every wanted family that have
        not run there yet, and ``needed`` in any case."""
        fresh = []
        for suite in self.registry.suites():
            wanted = self._wanted is None or suite.name in self._wanted
            for acc in suite.accumulators(group):
                if acc.name not in group.results and (wanted or acc.name == needed):
                    fresh.append(acc)
        if needed not in {a.name for a in fresh}:
            raise KeyError(f"no registered suite contributes an accumulator named {needed!r}")
        return fresh

    def cache_key(self, ref: ModelRef, lm: HookedLM) -> dict[str, Any] | None:
        """What every cache entry about a model is keyed by (None without a cache)."""
        if self.cache is None:
            return None
        if str(ref) not in self._base_keys:
            key = base_key(ref, lm.model, self.settings.dtype, lm.device)
            self._base_keys[str(ref)] = key | {"batch_size": self.settings.batch_size}
        return self._base_keys[str(ref)]

    def pass_cache(
        self, group: HookGroup, window: TokenWindow, saes: Mapping[str, nn.Module]
    ) -> PassCache | None:
        """The value cache as a pass on ``group`` over ``window`` sees it."""
        base = self.cache_key(group.model, group.lm)
        if self.cache is None or base is None:
            return None
        controls = {self.random_control_ref(sae_id).key for sae_id in self.specs}
        return PassCache(
            self.cache,
            pass_key(base, group.site.name, window.tokens, window.special),
            {key: module_hash(module) for key, module in saes.items() if key in controls},
        )

    def drain_passes(self) -> list[PassInfo]:
        """Passes run since the last call (each is reported once)."""
        new, self._reported_passes = self.passes[self._reported_passes :], len(self.passes)
        return new

    def window_info(self, subject: SubjectRef | str) -> dict[str, Any] | None:
        """The core token window behind a subject's values, once a pass has read it."""
        ref = self.ref(subject)
        try:
            group = self.group(ref.sae_id)
        except InterpScoreError:
            return None
        if not group.results or ref.key in group.errors:
            return None
        return group.window.describe()

    # Values --------------------------------------------------------------------------

    def skip_reason(self, subject: SubjectRef | str, metric: str) -> str | None:
        """Why a metric is not run for a subject (None when it is).

        A family may switch a metric off through its settings (``Suite.skip_reason``). SAEs on
        randomized transformers get the families marked ``on_model_controls`` unless
        ``--model-control-metrics=all``: the others need separate passes over their data on
        each randomized model.
        """
        suite = self.registry.suite_of(metric)
        switched_off = suite.skip_reason(self.suite_settings(suite.name), metric)
        if switched_off is not None:
            return switched_off
        if self.settings.control_metrics == "all" or suite.on_model_controls:
            return None
        loaded = self.sae(self.ref(subject).sae_id)
        if loaded.model.variant is None:
            return None
        running = ", ".join(s.name for s in self.registry.suites() if s.on_model_controls)
        return (
            f"{loaded.id} reads the randomized transformer {loaded.model}; only the {running} "
            "families run for such controls (--model-control-metrics=all runs every metric)"
        )

    def value(self, subject: SubjectRef | str, metric: str) -> MetricValue:
        """Any registered metric of an SAE or control (values computed together are cached
        together)."""
        ref = self.ref(subject)
        if (ref, metric) not in self._values:
            spec = self.registry.metric(metric)
            suite = self.registry.suite(spec.suite)
            computed = suite.compute(self._subject(ref, suite), spec)
            if metric not in computed:
                raise KeyError(f"suite {suite.name} did not compute {metric}")
            for name, value in computed.items():
                declared = self.registry.metric(name)
                if isinstance(value, InterpScoreError):
                    self._values.setdefault((ref, name), value)
                    continue
                if value.replicates is not None and value.unit != declared.ci_unit:
                    raise ValueError(
                        f"{name}: replicates over {value.unit!r}, declared {declared.ci_unit!r}"
                    )
                self._values.setdefault((ref, name), value)
        value = self._values[(ref, metric)]
        if isinstance(value, InterpScoreError):
            raise value
        return value

    def _subject(self, ref: SubjectRef, suite: Suite) -> Subject:
        group = self.group(ref.sae_id)
        if ref.key in group.errors:
            raise group.errors[ref.key]
        is_control = ref.control is not None or self.sae(ref.sae_id).control_of is not None
        return Subject(ref, self.module(ref), group, suite.name, is_control)

    def run_state(self, suite: str) -> Any:
        """The state of a run-level family (ground truth's synthetic world), built once."""
        if suite not in self._run_states:
            with self.progress():
                self._run_states[suite] = self.registry.suite(suite).prepare_run(self)
        return self._run_states[suite]

    # Measuring -----------------------------------------------------------------------

    def measure(self, sae_id: str, metric: str, timer: Timer | None = None) -> MetricRecord:
        """Measure one metric of an SAE (timed by ``timer``), compare it with the SAE's
        controls on the same units, and return the record for the report."""
        spec = self.registry.metric(metric)
        ref = SubjectRef(sae_id)
        start = time.perf_counter()
        result = (timer or _call)(lambda: self.value(ref, metric))
        seconds = time.perf_counter() - start
        params = dict(spec.params)
        if not result.applicable:
            return MetricRecord(
                sae_id,
                metric,
                "not_applicable",
                seconds=seconds,
                details=result.details,
                params=params,
            )
        if not result.finite:
            raise MetricError(
                f"{metric} of {sae_id} is not a finite number ({result.value}).",
                "look at the SAE's weights and the metric's details; nothing was recorded.",
            )
        component = metric in self.settings.formula.weights
        controls: dict[str, ControlComparison] = {}
        control_reps: dict[str, list[float]] = {}
        for control, kind in self.controls_of(sae_id):
            skipped = self.skip_reason(control, metric)
            if skipped is not None:
                controls[control.key] = ControlComparison(kind, skipped=skipped)
                continue
            try:
                theirs = self.value(control, metric)
            except Exception as exc:  # noqa: BLE001 - a broken control is reported, not fatal
                message = f"{type(exc).__name__}: {exc}".splitlines()[0]
                controls[control.key] = ControlComparison(kind, error=message)
                continue
            controls[control.key] = compare(result, theirs, kind)
            if component and theirs.replicates is not None:
                control_reps[control.key] = theirs.replicates.tolist()
        for name, null in result.nulls.items():
            controls[name] = compare(result, null, "null")
        for name, ceiling in result.ceilings.items():
            controls[name] = compare(result, ceiling, "ceiling")
        return MetricRecord(
            sae=sae_id,
            metric=metric,
            status="passed",
            value=float(result.value),  # type: ignore[arg-type]
            ci95=result.ci95,
            ci_unit=result.unit if result.replicates is not None else None,
            seconds=seconds,
            details=result.details,
            controls=controls,
            window=self.window_info(ref),
            params=params,
            replicates=(
                result.replicates.tolist() if component and result.replicates is not None else None
            ),
            control_replicates=control_reps,
        )


def _call(fn: Callable[[], MetricValue]) -> MetricValue:
    return fn()
