"""Autointerp with controls: explanations of SAE latents scored by detection, fuzzing,
surprisal, embedding and SAEBench's protocol, each beside the nulls that tell whether the
score means anything.

Examples are collected within the shared pass (:mod:`interpscore.autointerp.examples`),
from a window that may be larger than the core one, with explain and test examples on
disjoint sequences. A seeded sample of alive latents is explained by a language model
(in-process SmolLM2-135M-Instruct by default, or any OpenAI-compatible server), and every
explanation is scored by every scorer; each scorer's value is the mean over latents of a
per-latent score with a bootstrap interval over latents. Beside each SAE's value the same
pipeline scores two nulls on the same latents and examples: another latent's explanation
(shuffled) and the explanation "the tokens X, Y, Z" built from the activating tokens alone.
The random-init control and the SAEs of randomized transformers are explained and scored
the same way. Every model answer is cached on disk, so a rerun replays them.
"""

from __future__ import annotations

import argparse
import math
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interpscore.autointerp import prompts as P
from interpscore.autointerp import scorers as S
from interpscore.autointerp.examples import ExampleCollector, LatentExamples
from interpscore.evaluation.control_values import cached_control_values
from interpscore.evaluation.shared_pass import Accumulator
from interpscore.llm.backends import Backend, BackendError, TransformersBackend, Unsupported
from interpscore.llm.cache import CachedBackend, CacheStats, ResponseCache
from interpscore.llm.embeddings import SentenceEmbedder
from interpscore.llm.http import OpenAICompatibleBackend
from interpscore.metrics import autointerp as am
from interpscore.metrics.stats import resample_weights
from interpscore.results.formatting import code_span, fmt, plain_text
from interpscore.results.records import MetricValue
from interpscore.settings import option, positive_int, to_dict
from interpscore.subjects.models import cache_root, parse_model_ref
from interpscore.suites.base import GroupContext, MetricSpec, RunContext, SubjectContext, Suite

SCORERS = ("detection", "fuzzing", "surprisal", "embedding", "saebench")
DEFAULT_SCORERS = ("embedding",)
NULLS = ("shuffled-explanation", "top-tokens")
UNIT = (0.0, 1.0)


def latent_count(text: str) -> int | None:
    """A positive number of latents, or ``all`` (None)."""
    return None if text == "all" else positive_int(text)


def scorer_list(text: str) -> tuple[str, ...]:
    if text.strip() == "all":
        return SCORERS
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [n for n in names if n not in SCORERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scorer(s) {', '.join(unknown) or '(none given)'}; use a comma list of "
            f"{', '.join(SCORERS)}"
        )
    return names


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


@dataclass(frozen=True)
class AutointerpSettings:
    latents: int | None = option(
        8,
        "--autointerp-latents",
        "Alive latents explained per SAE (a seeded sample), or 'all'.",
        metavar="N|all",
        type=latent_count,
    )
    tokens: int | None = option(
        None,
        "--autointerp-tokens",
        "Token positions read for examples, in the same pass (default: the core window; "
        "more reads further with forwards to the hook only).",
        metavar="N",
        type=positive_int,
    )
    model: str = option(
        "smollm2-135m",
        "--autointerp-model",
        "Explainer and scorer: a model alias, directory or hub id run in this process, or "
        "the model name on --autointerp-server.",
        metavar="MODEL",
    )
    server: str | None = option(
        None,
        "--autointerp-server",
        "Base URL of an OpenAI-compatible server (vLLM, llama.cpp, transformers serve, "
        "OpenAI), e.g. http://127.0.0.1:8000/v1.",
        metavar="URL",
    )
    api_key_env: str | None = option(
        None,
        "--autointerp-api-key-env",
        "Environment variable holding the server's API key (the key is never written).",
        metavar="NAME",
    )
    embedding: str = option(
        "all-minilm-l6-v2",
        "--autointerp-embedding",
        "Sentence-embedding model of the embedding scorer: alias, directory or hub id.",
        metavar="MODEL",
    )
    scorers: tuple[str, ...] = option(
        DEFAULT_SCORERS,
        "--autointerp-scorers",
        f"Scorers to run, a comma list of {', '.join(SCORERS)} ('all' for every one). The "
        "default keeps the main job's budget on 2 CPU cores; run all with a capable model.",
        metavar="LIST",
        type=scorer_list,
    )
    cache: str = option(
        "default",
        "--autointerp-cache",
        "Folder of cached model answers ('default': $INTERPSCORE_CACHE/autointerp; 'none': "
        "no cache).",
        metavar="DIR",
    )
    concurrency: int = option(
        4,
        "--autointerp-concurrency",
        "Requests in flight to a server.",
        metavar="N",
        type=positive_int,
    )
    timeout: float = option(
        60.0,
        "--autointerp-timeout",
        "Seconds per server request.",
        metavar="S",
        type=positive_float,
    )
    window: int = option(
        16,
        "--autointerp-window",
        "Tokens per example window (delphi uses 32, SAEBench 21; 16 keeps the main job's budget).",
        metavar="N",
        type=positive_int,
    )
    explain_examples: int = 6
    test_examples: int = 6
    silent_examples: int = 6
    min_examples: int = 5
    quantiles: int = 5
    pool_size: int = 40
    candidates_per_latent: int = 4
    batch_size: int = 16

    def cache_root(self) -> Path | None:
        if self.cache == "none":
            return None
        return cache_root() / "autointerp" if self.cache == "default" else Path(self.cache)


@dataclass
class Runtime:
    """The session's explainer/scorer backend (cached) and embedding model."""

    backend: CachedBackend
    embedding_spec: str
    _embedder: SentenceEmbedder | None = None

    @property
    def embedder(self) -> SentenceEmbedder:
        if self._embedder is None:
            self._embedder = SentenceEmbedder(self.embedding_spec)
        return self._embedder


def make_backend(s: AutointerpSettings, ctx: RunContext) -> Backend:
    if s.server:
        backend = OpenAICompatibleBackend(
            s.server,
            s.model,
            api_key_env=s.api_key_env,
            concurrency=s.concurrency,
            timeout=s.timeout,
        )
        backend.check_model()
        return backend
    lm = ctx.model(parse_model_ref(s.model))
    return TransformersBackend(lm.model, lm.tokenizer, s.model, s.batch_size)


@dataclass
class Selection:
    """The latents explained for one SAE, and why the other candidates were not."""

    cases: list[S.Case]
    never_fired: list[int]
    too_few: list[dict[str, int]]


def select(ex: LatentExamples, s: AutointerpSettings, rng: np.random.Generator) -> Selection:
    """Candidates in their seeded order, kept while they fire on enough windows of both
    halves and enough silent windows exist; the rest are listed with their counts."""
    cases, never, few = [], [], []
    for c, latent in enumerate(ex.candidates.tolist()):
        if s.latents is not None and len(cases) == s.latents:
            break
        fires = (int(ex.explain_counts[c]), int(ex.test_counts[c]))
        silent = len(ex.silent.entries(c))
        if fires == (0, 0):
            never.append(latent)
            continue
        if min(fires) < s.min_examples or silent < max(s.silent_examples, S.SAEBENCH_RANDOM):
            few.append({"latent": latent, "explain": fires[0], "test": fires[1], "silent": silent})
            continue
        strongest = ex.first(ex.strongest, c, S.SAEBENCH_TOP)
        taken = {e.id for e in strongest}
        pool = [i for i in ex.test.entries(c) if ex.example(ex.test, c, i).id not in taken]
        weights = np.array([float(ex.test.peaks[c, i]) ** 2 for i in pool])
        n_weighted = min(S.SAEBENCH_WEIGHTED, len(pool))
        picked = rng.choice(pool, n_weighted, replace=False, p=weights / weights.sum())
        cases.append(
            S.Case(
                latent=latent,
                explain=ex.stratified(ex.explain, c, s.explain_examples, s.quantiles, rng),
                active=ex.stratified(ex.test, c, s.test_examples, s.quantiles, rng),
                silent=ex.first(ex.silent, c, s.silent_examples),
                strongest=strongest,
                weighted=[ex.example(ex.test, c, int(i)) for i in picked],
                random=ex.first(ex.silent, c, S.SAEBENCH_RANDOM),
                fires=fires,
            )
        )
    return Selection(cases, never, few)


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded permutation without fixed points (each latent gets another's explanation)."""
    order = rng.permutation(n)
    return np.roll(order, 1)[np.argsort(order)]


class AutointerpSuite(Suite):
    name = "autointerp"
    description = "Explanations of latents scored by detection, fuzzing, surprisal, embedding"
    settings_type = AutointerpSettings
    on_model_controls = True
    metrics = (
        MetricSpec(
            "autointerp_detection",
            "mean over latents of the AUROC of P(Yes) to 'does this text activate the latent'",
            bounds=UNIT,
            ci_unit="latent",
            params={"scorer": "detection"},
        ),
        MetricSpec(
            "autointerp_fuzzing",
            "mean over latents of the AUROC of P(Yes) to 'are the marked tokens right'",
            bounds=UNIT,
            ci_unit="latent",
            params={"scorer": "fuzzing"},
        ),
        MetricSpec(
            "autointerp_surprisal",
            "mean over latents of the AUROC of the log-likelihood gain from the explanation",
            bounds=UNIT,
            ci_unit="latent",
            params={"scorer": "surprisal"},
        ),
        MetricSpec(
            "autointerp_embedding",
            "mean over latents of the AUROC of explanation-example embedding similarity",
            bounds=UNIT,
            ci_unit="latent",
            params={"scorer": "embedding"},
        ),
        MetricSpec(
            "autointerp_saebench",
            "SAEBench autointerp accuracy over 14 examples (answering 'none' scores 10/14)",
            bounds=UNIT,
            ci_unit="latent",
            params={"scorer": "saebench"},
        ),
    )

    def skip_reason(self, settings: AutointerpSettings, metric: str) -> str | None:
        scorer = next(m.params["scorer"] for m in self.metrics if m.name == metric)
        if scorer in settings.scorers:
            return None
        return (
            f"the {scorer} scorer is not among --autointerp-scorers "
            f"({','.join(settings.scorers)}); add it to run it"
        )

    def accumulators(self, group: GroupContext) -> list[Accumulator]:
        s: AutointerpSettings = group.settings(self.name)
        run = group.run
        return [
            ExampleCollector(
                n_rows=-(-(s.tokens or run.tokens) // run.context_len),
                n_candidates=None if s.latents is None else s.latents * s.candidates_per_latent,
                window=s.window,
                pool_size=s.pool_size,
                silent_size=max(s.silent_examples, S.SAEBENCH_RANDOM),
                strongest_size=S.SAEBENCH_TOP,
                seed=run.seed,
            )
        ]

    def prepare_run(self, ctx: RunContext) -> Runtime:
        s: AutointerpSettings = ctx.suite_settings(self.name)
        backend = CachedBackend(make_backend(s, ctx), ResponseCache(s.cache_root()))
        return Runtime(backend, s.embedding)

    def compute(
        self, subject: SubjectContext, metric: MetricSpec
    ) -> dict[str, MetricValue | BackendError]:
        """Every wanted scorer's value for one SAE (a random-init control's from the value
        cache when stored under the same examples, settings, language model and seed)."""
        s: AutointerpSettings = subject.settings
        examples: LatentExamples = subject.pass_result("autointerp_examples")
        seed = subject.run.seed + zlib.crc32(subject.ref.key.encode())
        wanted = [m for m in self.metrics if m.params["scorer"] in s.scorers]
        runtime: Runtime = subject.group.run_state(self.name)
        unrelated = {"cache", "concurrency", "timeout"}  # where answers are kept, how fetched
        inputs = {
            "examples": examples.fingerprint(),
            "settings": {k: v for k, v in to_dict(s).items() if k not in unrelated},
            "llm": runtime.backend.identity(),
            "subject_seed": seed,
        }
        return cached_control_values(
            subject,
            [m.name for m in wanted],
            inputs,
            lambda: self._compute(subject, examples, seed, wanted),
        )

    def _compute(
        self,
        subject: SubjectContext,
        examples: LatentExamples,
        seed: int,
        wanted: list[MetricSpec],
    ) -> dict[str, MetricValue | BackendError]:
        s: AutointerpSettings = subject.settings
        run = subject.run
        rng = np.random.default_rng(seed)
        chosen = select(examples, s, rng)
        skipped = {
            "candidates": len(examples.candidates),
            "never_fired": chosen.never_fired,
            "too_few_examples": chosen.too_few,
        }
        if len(chosen.cases) < 2:
            reason = (
                f"{len(chosen.cases)} latent(s) fire on at least {s.min_examples} windows of both "
                f"halves among {len(examples.candidates)} candidates; 2 are needed"
            )
            return {m.name: MetricValue.not_applicable(reason, **skipped) for m in wanted}
        runtime: Runtime = subject.group.run_state(self.name)
        before = CacheStats(**vars(runtime.backend.stats))
        tokenizer = subject.group.lm.tokenizer
        with subject.group.progress():
            rendered = [S.render(tokenizer, case, rng) for case in chosen.cases]
            explanations, failed = S.explain(runtime.backend, rendered)
            conditions = {"own": explanations}
            if not subject.is_control:
                shuffled = derangement(len(explanations), rng)
                conditions["shuffled-explanation"] = [explanations[i] for i in shuffled]
                conditions["top-tokens"] = [
                    P.top_tokens_explanation(tokenizer, c.explain) for c in chosen.cases
                ]
            scored, unsupported = self._score(runtime, rendered, conditions, s.scorers)
        weights = (
            resample_weights(len(chosen.cases), run.bootstrap, seed) if run.bootstrap > 0 else None
        )
        common = {
            "latents": [
                {
                    "latent": case.latent,
                    "explanation": explanations[i],
                    "explanation_failed": failed[i],
                    "fires_explain_test": list(case.fires),
                    "examples": case.example_ids(),
                    "top_tokens_explanation": conditions.get("top-tokens", [None] * (i + 1))[i],
                }
                for i, case in enumerate(chosen.cases)
            ],
            "showcase": [
                {
                    "latent": c.latent,
                    "explanation": explanations[i],
                    "examples": r.explain_marked[:3],
                }
                for i, (c, r) in enumerate(zip(chosen.cases[:3], rendered[:3], strict=True))
            ],
            "explanation_parse_failures": int(sum(failed)),
            "skipped": skipped,
            "examples_per_latent": {
                "explain": s.explain_examples,
                "active": s.test_examples,
                "silent": s.silent_examples,
                "window_tokens": s.window,
            },
            "windows_per_half": list(examples.windows_per_half),
            "llm": {
                **runtime.backend.identity(),
                **vars(runtime.backend.stats.minus(before)),
            },
        }
        out = {}
        for spec in wanted:
            name = spec.params["scorer"]
            if name in unsupported:
                out[spec.name] = MetricValue.not_applicable(unsupported[name], **skipped)
                continue
            own = scored[name]["own"]
            if own.unreadable:
                model, example = runtime.backend.identity()["model"], (own.unread or "")[:80]
                out[spec.name] = BackendError(
                    f"None of the {own.answers['failed']} answers of the {name} scorer from "
                    f"{model} could be read (one was {example!r}).",
                    "use a server that returns token log-probabilities (vLLM, llama.cpp, "
                    "OpenAI) or a model that answers in the format asked.",
                )
                continue
            out[spec.name] = self._value(name, scored[name], weights, common)
        return out

    def _score(
        self,
        runtime: Runtime,
        rendered: list[S.Rendered],
        conditions: dict[str, list[str]],
        scorers: tuple[str, ...],
    ) -> tuple[dict[str, dict[str, S.Scored]], dict[str, str]]:
        backend = runtime.backend
        out: dict[str, dict[str, S.Scored]] = {}
        unsupported: dict[str, str] = {}
        baseline = None
        for name in scorers:
            out[name] = {}
            for condition, explanations in conditions.items():
                try:
                    if name == "surprisal":
                        baseline = baseline or S.surprisal_baseline(backend, rendered)
                        result = S.surprisal(backend, rendered, explanations, baseline)
                    elif name == "embedding":
                        result = S.embedding(runtime.embedder, rendered, explanations)
                    else:
                        result = getattr(S, name)(backend, rendered, explanations)
                except Unsupported as exc:
                    unsupported[name] = str(exc)
                    break
                out[name][condition] = result
        return out, unsupported

    def _value(
        self,
        scorer: str,
        by_condition: dict[str, S.Scored],
        weights: np.ndarray | None,
        common: dict[str, Any],
    ) -> MetricValue:
        own = by_condition["own"]
        value, replicates = am.mean_over_latents(own.per_latent, weights)
        nulls = {}
        for condition in NULLS:
            if condition in by_condition:
                null_value, null_reps = am.mean_over_latents(
                    by_condition[condition].per_latent, weights
                )
                nulls[condition] = MetricValue(null_value, null_reps, "latent")
        answers: Counter[str] = Counter()
        for scored in by_condition.values():
            answers.update(scored.answers)
        details = {
            **common,
            "scorer": scorer,
            "per_latent": [None if not math.isfinite(v) else float(v) for v in own.per_latent],
            "per_latent_extras": own.extras,
            "answers": dict(answers),
            "null_values": {k: v.value for k, v in nulls.items()},
        }
        if scorer == "saebench":
            details["none_floor"] = float(np.mean(own.extras["none_floor"]))
            details["balanced_accuracy"] = float(np.mean(own.extras["balanced_accuracy"]))
        return MetricValue(value, replicates, "latent", details, nulls=nulls)

    def markdown(self, report: dict[str, Any]) -> list[str]:
        return autointerp_markdown(report, [m.name for m in self.metrics])


def autointerp_markdown(report: dict[str, Any], names: list[str]) -> list[str]:
    """The seed paper's question on this run (autointerp of trained SAEs beside their
    controls, with token entropy), and a few latents with their explanations."""
    saes = [s for s in report["saes"] if any(n in s.get("metrics", {}) for n in names)]
    present = [
        n for n in names if any((s["metrics"].get(n) or {}).get("status") == "passed" for s in saes)
    ]
    if not present:
        return []
    header = ["SAE", *[n.removeprefix("autointerp_") for n in present], "token_entropy"]
    lines = [
        "",
        "## Autointerp",
        "",
        "Mean over latents of each scorer that ran (AUROC; SAEBench: accuracy over 14 "
        'examples, where answering "none" scores the floor shown), with token entropy. Under '
        "each SAE, its controls and nulls: ▲/▼ where the 95% interval of SAE − control "
        "excludes 0, i.e. where the score tells them apart (Heap et al. 2025 ask this of SAEs "
        "on randomized transformers).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for sae in saes:
        metrics = sae["metrics"]
        row = [f"**{sae['id']}**"]
        for n in present:
            m = metrics.get(n) or {}
            cell = fmt(m.get("value"))
            if n == "autointerp_saebench" and m.get("details", {}).get("none_floor") is not None:
                cell += f" (floor {fmt(m['details']['none_floor'])})"
            row.append(cell)
        row.append(fmt((metrics.get("token_entropy") or {}).get("value")))
        lines.append("| " + " | ".join(row) + " |")
        controls = sorted({c for n in present for c in (metrics.get(n) or {}).get("controls", {})})
        for control in controls:
            cells = [f"↳ {control}"]
            for n in present:
                comp = ((metrics.get(n) or {}).get("controls") or {}).get(control) or {}
                ci = comp.get("difference_ci95")
                mark = (" ▲" if ci[0] > 0 else " ▼" if ci[1] < 0 else "") if ci else ""
                cells.append(fmt(comp.get("value")) + mark if "value" in comp else "—")
            entropy = ((metrics.get("token_entropy") or {}).get("controls") or {}).get(control)
            cells.append(fmt((entropy or {}).get("value")))
            lines.append("| " + " | ".join(cells) + " |")
    showcase = next(
        (s for s in saes if not s.get("control_of") and present and present[0] in s["metrics"]),
        None,
    )
    details = ((showcase or {}).get("metrics", {}).get(present[0]) or {}).get("details") or {}
    if details.get("showcase"):
        lines += ["", f"Latents of {showcase['id']} with their explanations:", ""]  # type: ignore[index]
        for item in details["showcase"]:
            lines.append(f"- latent {item['latent']}: *{plain_text(item['explanation'])}*")
            lines += [f"  - {code_span(text)}" for text in item["examples"]]
    return lines
