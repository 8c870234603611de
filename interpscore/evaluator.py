"""The per-session evaluator: loads each SAE and model once and runs shared passes lazily.

The pytest plugin holds one :class:`Evaluator` per session (per xdist worker). The first
request for any core metric of an SAE runs the shared pass for *every* SAE of the
session that sits on the same (model, hook), plus their random-init controls, so one
language-model pass serves them all. Results and errors are cached per SAE: an SAE that
failed to load or evaluate raises its own error in its own tests and nowhere else.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from interpscore.absorption_suite import ABSORPTION_METRICS, AbsorptionSettings, AbsorptionSuite
from interpscore.controls import random_init_like
from interpscore.data import BUNDLED, TokenWindow, iter_texts, pack_tokens
from interpscore.errors import InterpScoreError, SpecError
from interpscore.formula import Formula, get_formula
from interpscore.hooked import HookedLM, HookSite
from interpscore.loading import LoadedSAE, SAESpec, load_sae
from interpscore.metrics.core import CoreMetric, core_metrics, evaluate
from interpscore.metrics.entropy import entropy_per_latent
from interpscore.metrics.stats import bootstrap_replicates, recentre, resample_weights
from interpscore.models import ModelRef, load_model
from interpscore.passes import PassInfo, run_core_pass
from interpscore.probing_suite import PROBING_METRICS, TPP_METRICS, ProbingSettings, ProbingSuite
from interpscore.values import MetricValue

log = logging.getLogger("interpscore.evaluator")

RANDOM_INIT = "random-init"
ENTROPY_MIN_COUNT = 10


@dataclass(frozen=True)
class RunSettings:
    """Everything that fixes what a run measures (recorded in the report's run block)."""

    dataset: str = BUNDLED
    tokens: int = 8192
    context_len: int = 128
    batch_size: int = 8
    seed: int = 0
    device: str = "cpu"
    model_override: str | None = None
    trust_remote_code: bool = False
    formula: Formula = field(default_factory=lambda: get_formula(None))
    controls: bool = True
    bootstrap: int = 1000
    downstream: bool = True
    show_progress: bool = True
    probing: ProbingSettings = field(default_factory=ProbingSettings)
    absorption: AbsorptionSettings = field(default_factory=AbsorptionSettings)
    control_metrics: str = "core"

    def to_dict(self) -> dict[str, Any]:
        skip = ("formula", "show_progress", "probing", "absorption")
        out = {k: v for k, v in self.__dict__.items() if k not in skip}
        out["formula"] = self.formula.version
        out["probing"] = {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in self.probing.__dict__.items()
            if k not in ("show_progress", "batch_size")
        }
        out["absorption"] = dict(self.absorption.__dict__)
        return out


@dataclass
class CoreResult:
    """Per-sequence statistics of one SAE on its hook group's window, and its latents'
    top activations (values and token ids, for token entropy)."""

    arrays: dict[str, np.ndarray]
    info: PassInfo
    top: tuple[np.ndarray, np.ndarray] | None = None


class Evaluator:
    """Loads SAEs and models once per session and serves core metric values."""

    def __init__(
        self,
        settings: RunSettings,
        specs: list[SAESpec],
        progress: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.specs = {s.id: s for s in specs}
        self._progress = progress
        self._loaded: dict[str, LoadedSAE | BaseException] = {}
        self._models: dict[str, HookedLM] = {}
        self._windows: dict[tuple[Any, ...], TokenWindow] = {}
        self._core: dict[str, CoreResult | BaseException] = {}
        self._controls: dict[str, torch.nn.Module] = {}
        self._suites: dict[str, ProbingSuite] = {}
        self._absorption: dict[str, AbsorptionSuite] = {}
        self._probing: dict[tuple[str, str], MetricValue] = {}
        self.passes: list[PassInfo] = []
        self._reported_passes = 0
        self.metrics: dict[str, CoreMetric] = core_metrics(settings.formula.l0_target)

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
        value = self._loaded[sae_id]
        if isinstance(value, BaseException):
            raise value
        return value

    def model(self, ref: ModelRef) -> HookedLM:
        """A model (or control variant) loaded once per session."""
        key = str(ref)
        if key not in self._models:
            self._models[key] = load_model(
                ref, device=self.settings.device, trust_remote_code=self.settings.trust_remote_code
            )
        return self._models[key]

    def window(self, lm: HookedLM, base: str) -> TokenWindow:
        """The token window for a tokenizer (models sharing a base share their window)."""
        s = self.settings
        key = (base, s.dataset, s.tokens, s.context_len)
        if key not in self._windows:
            self._windows[key] = pack_tokens(
                lm.tokenizer, iter_texts(s.dataset), s.tokens, s.context_len, s.dataset
            )
        return self._windows[key]

    def control_id(self, sae_id: str) -> str:
        return f"{sae_id}#{RANDOM_INIT}"

    def wants_random_control(self, loaded: LoadedSAE) -> bool:
        return self.settings.controls and loaded.control_of is None

    def random_control(self, sae_id: str) -> torch.nn.Module:
        """The random-init control of an SAE: same class and shape, seeded."""
        if sae_id not in self._controls:
            self._controls[sae_id] = random_init_like(
                self.sae(sae_id).sae, self.settings.seed
            ).eval()
        return self._controls[sae_id]

    # Core pass -----------------------------------------------------------------------

    def _group_members(self, loaded: LoadedSAE) -> list[LoadedSAE]:
        members = []
        for other_id in self.specs:
            try:
                other = self.sae(other_id)
            except InterpScoreError:
                continue
            if str(other.model) == str(loaded.model) and other.hook_name == loaded.hook_name:
                members.append(other)
        return members

    def core(self, sae_id: str) -> CoreResult:
        """Core statistics of an SAE (or of ``ID#random-init``), running its group's pass once."""
        if sae_id not in self._core:
            owner = sae_id.split("#", 1)[0]
            self._run_group(self.sae(owner))
        value = self._core[sae_id]
        if isinstance(value, BaseException):
            raise value
        return value

    def _run_group(self, loaded: LoadedSAE) -> None:
        members = self._group_members(loaded)
        try:
            lm = self.model(loaded.model)
            site = lm.site(loaded.hook_name)
            window = self.window(lm, loaded.model.base)
        except InterpScoreError as exc:
            for member in members:
                self._core[member.id] = exc
                self._core[self.control_id(member.id)] = exc
            return
        saes: dict[str, torch.nn.Module] = {}
        for member in members:
            if member.d_in != lm.d_model:
                error = SpecError(
                    f"SAE {member.id} has d_in={member.d_in}, but {site.name} of {lm.name} has "
                    f"width {lm.d_model}.",
                    "pass the --model the SAE was trained on, or fix d_in in its config.",
                )
                self._core[member.id] = error
                self._core[self.control_id(member.id)] = error
                continue
            saes[member.id] = member.sae
            if self.wants_random_control(member):
                saes[self.control_id(member.id)] = self.random_control(member.id)
        result = run_core_pass(
            lm,
            site,
            window,
            saes,
            batch_size=self.settings.batch_size,
            downstream=self.settings.downstream,
            progress=self._progress() if self._progress else None,
            show_progress=self.settings.show_progress,
        )
        self.passes.append(result.info)
        for sid in saes:
            if sid in result.errors:
                self._core[sid] = result.errors[sid]
            else:
                self._core[sid] = CoreResult(
                    {**result.group, **result.per_sae[sid]}, result.info, result.top.get(sid)
                )

    # Values --------------------------------------------------------------------------

    def core_value(self, sae_id: str, name: str) -> MetricValue:
        """A core metric's value and its bootstrap replicates (over sequences)."""
        metric = self.metrics[name]
        arrays = self.core(sae_id).arrays
        replicates = (
            bootstrap_replicates(metric.fn, arrays, self.settings.bootstrap, self.settings.seed)
            if self.settings.bootstrap > 0
            else None
        )
        value = evaluate(metric, arrays)
        details: dict[str, Any] = {}
        if metric.window and replicates is not None:
            replicates = np.clip(recentre(replicates, value), 0.0, 1.0)  # fractions
            details["ci_method"] = "percentile, re-centred on the value (window count)"
        return MetricValue(value, replicates, unit="sequence", details=details)

    def value(self, sae_id: str, metric: str) -> MetricValue:
        """Any metric by its report name (core, probing, TPP, absorption, token_entropy)."""
        if metric in self.metrics:
            return self.core_value(sae_id, metric)
        if metric in PROBING_METRICS or metric in TPP_METRICS:
            return self.probing_value(sae_id, metric)
        if metric in ABSORPTION_METRICS:
            return self.absorption_value(sae_id, metric)
        if metric == "token_entropy":
            return self.entropy_value(sae_id)
        raise KeyError(f"unknown metric {metric!r}")

    def skip_reason(self, sae_id: str, metric: str) -> str | None:
        """Why a metric is not run for this SAE (None when it is).

        SAEs on randomized transformers get the core metrics and token entropy unless
        ``control_metrics`` is "all": their other metrics need a separate pass over the
        probing texts on each randomized model.
        """
        if (
            self.settings.control_metrics == "all"
            or metric in self.metrics
            or metric == "token_entropy"
        ):
            return None
        loaded = self.sae(sae_id.split("#", 1)[0])
        if loaded.model.variant is None:
            return None
        return (
            f"{loaded.id} reads the randomized transformer {loaded.model}; only core metrics and "
            "token_entropy run for such controls (--model-control-metrics=all runs every metric)"
        )

    def entropy_value(self, sae_id: str) -> MetricValue:
        """Mean token entropy of latents' top activations (bootstrap over latents)."""
        result = self.core(sae_id)
        if result.top is None:
            raise ValueError("token entropy needs the top activations of the core pass")
        values, tokens = result.top
        entropies = entropy_per_latent(values, tokens, ENTROPY_MIN_COUNT)
        kept = entropies[np.isfinite(entropies)]
        if kept.size == 0:
            return MetricValue(
                None,
                details={"reason": f"no latent has {ENTROPY_MIN_COUNT} positive top activations"},
                applicable=False,
            )
        replicates = None
        if self.settings.bootstrap > 0 and kept.size > 1:
            seed = self.settings.seed + zlib.crc32(sae_id.encode())
            weights = resample_weights(kept.size, self.settings.bootstrap, seed)
            replicates = weights @ kept / kept.size
        quantiles = np.quantile(kept, [0.1, 0.25, 0.5, 0.75, 0.9])
        details = {
            "latents": int(kept.size),
            "top_activations_per_latent": int(values.shape[1]),
            "min_positive_activations": ENTROPY_MIN_COUNT,
            "quantiles_10_25_50_75_90": [float(q) for q in quantiles],
            "histogram": np.histogram(kept, bins=10, range=(0, np.log(values.shape[1])))[
                0
            ].tolist(),
        }
        return MetricValue(float(kept.mean()), replicates, "latent", details)

    # Probing ------------------------------------------------------------------------

    def module(self, sae_id: str) -> torch.nn.Module:
        """The SAE module of an id, or of its random-init control (``ID#random-init``)."""
        owner, _, control = sae_id.partition("#")
        return self.random_control(owner) if control else self.sae(owner).sae

    def _subject(self, sae_id: str) -> tuple[str, HookedLM, HookSite]:
        """The (model, hook) an SAE reads, checked against the SAE's width."""
        loaded = self.sae(sae_id.split("#", 1)[0])
        lm = self.model(loaded.model)
        site = lm.site(loaded.hook_name)
        if loaded.d_in != lm.d_model:
            raise SpecError(
                f"SAE {loaded.id} has d_in={loaded.d_in}, but {site.name} of {lm.name} has "
                f"width {lm.d_model}.",
                "pass the --model the SAE was trained on, or fix d_in in its config.",
            )
        return f"{loaded.model}|{loaded.hook_name}", lm, site

    def probing_suite(self, sae_id: str) -> ProbingSuite:
        """The probing task data of the SAE's (model, hook), built once."""
        key, lm, site = self._subject(sae_id)
        if key not in self._suites:
            self._suites[key] = ProbingSuite(lm, site, self.settings.probing)
        return self._suites[key]

    def absorption_value(self, sae_id: str, metric: str) -> MetricValue:
        """First-letter absorption metrics (the three are computed together)."""
        if (sae_id, metric) not in self._probing:
            key, lm, site = self._subject(sae_id)
            if key not in self._absorption:
                self._absorption[key] = AbsorptionSuite(lm, site, self.settings.absorption)
            context = self._progress() if self._progress else nullcontext()
            with context:
                values = self._absorption[key].values(self.module(sae_id))
            for name, value in values.items():
                self._probing[(sae_id, name)] = value
        return self._probing[(sae_id, metric)]

    def probing_value(self, sae_id: str, metric: str) -> MetricValue:
        """A probing or TPP metric (metrics computed together are cached together)."""
        if (sae_id, metric) not in self._probing:
            suite = self.probing_suite(sae_id)
            context = self._progress() if self._progress else nullcontext()
            with context:
                for name, value in suite.values(sae_id, self.module(sae_id), metric).items():
                    self._probing[(sae_id, name)] = value
        return self._probing[(sae_id, metric)]

    def drain_passes(self) -> list[PassInfo]:
        """Passes run since the last call (each is reported once)."""
        new, self._reported_passes = self.passes[self._reported_passes :], len(self.passes)
        return new

    def window_info(self, sae_id: str) -> dict[str, Any] | None:
        """The token window behind an SAE's core metrics, once its pass has run."""
        result = self._core.get(sae_id)
        if not isinstance(result, CoreResult):
            return None
        info = result.info
        return {
            "dataset": info.dataset,
            "n_sequences": info.n_sequences,
            "context_len": info.context_len,
            "n_positions": info.n_positions,
            "n_tokens": info.n_tokens,
        }

    def controls_of(self, sae_id: str) -> list[str]:
        """Controls to compare an SAE with: its random-init control and model-level controls."""
        loaded = self.sae(sae_id)
        out = [self.control_id(sae_id)] if self.wants_random_control(loaded) else []
        for other_id in self.specs:
            try:
                other = self.sae(other_id)
            except InterpScoreError:
                continue
            if other.control_of == sae_id:
                out.append(other_id)
        return out
