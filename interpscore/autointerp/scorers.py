"""Explaining latents and scoring explanations, for all selected latents of one SAE at once.

A :class:`Case` holds one latent's examples; :func:`render` turns them into the texts every
prompt needs (plain, correctly marked, wrongly marked). :func:`explain` asks the explainer
for one phrase per latent. Each scorer takes the rendered cases and one explanation per
latent and returns a :class:`Scored`: one score per latent (an AUROC, or SAEBench's
accuracy), per-latent extras, and how each answer was read (log-probabilities, parsed
text, or failed). Every request of a scorer goes to the backend in one call, so backends
batch them and the response cache replays them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from interpscore.autointerp import prompts as P
from interpscore.autointerp.examples import Example
from interpscore.llm.backends import Backend, ChoiceAnswer
from interpscore.llm.embeddings import SentenceEmbedder
from interpscore.metrics import autointerp as am

EXPLANATION_TOKENS = 20
# SAEBench's 14 examples: 2 strongest, 2 sampled in proportion to activation², 10 random
SAEBENCH_TOP = 2
SAEBENCH_WEIGHTED = 2
SAEBENCH_RANDOM = 10
SAEBENCH_TOKENS = 2 * 14 + 5  # SAEBench's max_tokens_in_prediction


@dataclass
class Case:
    """One latent's examples: explain half, and the test half's activating (quantile-
    stratified), silent (random, without replacement), strongest, importance-sampled, and
    the silent windows of SAEBench's protocol."""

    latent: int
    explain: list[Example]
    active: list[Example]
    silent: list[Example]
    strongest: list[Example]
    weighted: list[Example]
    random: list[Example]
    fires: tuple[int, int]

    def example_ids(self) -> dict[str, list[str]]:
        return {
            "explain": [e.id for e in self.explain],
            "active": [e.id for e in self.active],
            "silent": [e.id for e in self.silent],
            "saebench_top": [e.id for e in self.strongest],
            "saebench_weighted": [e.id for e in self.weighted],
            "saebench_random": [e.id for e in self.random],
        }


@dataclass
class Rendered:
    """The texts of one case, as each prompt shows them."""

    explain_marked: list[str]
    active_plain: list[str]
    active_marked: list[str]
    silent_plain: list[str]
    silent_mismarked: list[str]
    saebench_texts: list[str]
    saebench_positives: list[int]

    @property
    def labels(self) -> list[bool]:
        """Active examples first, then silent ones (the order every scorer uses)."""
        return [True] * len(self.active_plain) + [False] * len(self.silent_plain)


def render(tokenizer: Any, case: Case, rng: np.random.Generator) -> Rendered:
    """Texts for every prompt; wrong marks and SAEBench's order drawn from ``rng``."""
    active_masks = [P.active_mask(e) for e in case.active]
    n_marks = max(1, int(np.ceil(np.mean([m.sum() for m in active_masks])))) if active_masks else 1
    saebench = [*case.strongest, *case.weighted, *case.random]
    positive = [e.peak > 0 for e in saebench]
    order = rng.permutation(len(saebench))
    return Rendered(
        explain_marked=[P.render(tokenizer, e, P.active_mask(e)) for e in case.explain],
        active_plain=[P.render(tokenizer, e) for e in case.active],
        active_marked=[
            P.render(tokenizer, e, m) for e, m in zip(case.active, active_masks, strict=True)
        ],
        silent_plain=[P.render(tokenizer, e) for e in case.silent],
        silent_mismarked=[
            P.render(tokenizer, e, P.wrongly_marked(e, n_marks, rng)) for e in case.silent
        ],
        saebench_texts=[P.render(tokenizer, saebench[i]) for i in order],
        saebench_positives=[k + 1 for k, i in enumerate(order) if positive[i]],
    )


@dataclass
class Scored:
    """One scorer on one set of explanations: a score per latent and how answers were read."""

    per_latent: np.ndarray
    extras: dict[str, list[float | None]] = field(default_factory=dict)
    answers: Counter[str] = field(default_factory=Counter)
    unread: str | None = None  # the first answer that could not be read, to show the user

    @property
    def unreadable(self) -> bool:
        """Every answer failed to parse: the score would be a tie made of nothing."""
        return bool(self.answers) and set(self.answers) == {"failed"}


def explain(backend: Backend, cases: Sequence[Rendered]) -> tuple[list[str], list[bool]]:
    """One explanation per latent, and whether each failed to parse (then the placeholder
    ``Explanation could not be parsed.`` is scored, as delphi does)."""
    answers = backend.generate(
        [P.explain_chat(c.explain_marked) for c in cases], EXPLANATION_TOKENS
    )
    parsed = [P.parse_explanation(a.text) for a in answers]
    return [p if p is not None else P.NO_EXPLANATION for p in parsed], [p is None for p in parsed]


def _choice_scores(
    backend: Backend,
    cases: Sequence[Rendered],
    explanations: Sequence[str],
    texts: Callable[[Rendered], list[str]],
    chat: Callable[[str, str], Any],
) -> Scored:
    chats, spans = [], []
    for case, explanation in zip(cases, explanations, strict=True):
        start = len(chats)
        chats += [chat(explanation, t) for t in texts(case)]
        spans.append((start, len(chats)))
    answers: list[ChoiceAnswer] = backend.choose(chats, P.YES_NO)
    scores = am.answers_or_tie([a.probability for a in answers])
    per_latent, balanced = [], []
    for case, (lo, hi) in zip(cases, spans, strict=True):
        per_latent.append(am.auroc(scores[lo:hi], case.labels))
        balanced.append(am.balanced_accuracy(scores[lo:hi], case.labels, 0.5))
    unread = next((a.text for a in answers if a.method == "failed"), None)
    return Scored(
        np.array(per_latent),
        {"balanced_accuracy": balanced},
        Counter(a.method for a in answers),
        unread,
    )


def detection(backend: Backend, cases: Sequence[Rendered], explanations: Sequence[str]) -> Scored:
    """Does the text activate the latent? P(Yes) on plain active and silent examples."""
    return _choice_scores(
        backend, cases, explanations, lambda c: c.active_plain + c.silent_plain, P.detection_chat
    )


def fuzzing(backend: Backend, cases: Sequence[Rendered], explanations: Sequence[str]) -> Scored:
    """Are the marked tokens the right ones? Active examples marked where the latent fires
    against silent examples marked on as many random tokens."""
    return _choice_scores(
        backend, cases, explanations, lambda c: c.active_marked + c.silent_mismarked, P.fuzzing_chat
    )


def surprisal(
    backend: Backend,
    cases: Sequence[Rendered],
    explanations: Sequence[str],
    baseline: Sequence[np.ndarray],
) -> Scored:
    """How much more likely each example becomes after the explanation than after a neutral
    description (mean log-probability per token); AUROC of active against silent."""
    pairs, spans = [], []
    for case, explanation in zip(cases, explanations, strict=True):
        start = len(pairs)
        pairs += [P.surprisal_pair(explanation, t) for t in case.active_plain + case.silent_plain]
        spans.append((start, len(pairs)))
    logps = np.array([r.mean_logprob for r in backend.text_logprob(pairs)])
    per_latent, gains = [], []
    for case, (lo, hi), base in zip(cases, spans, baseline, strict=True):
        gain = logps[lo:hi] - base
        per_latent.append(am.auroc(gain, case.labels))
        gains.append(float(gain[: len(case.active_plain)].mean()))
    return Scored(
        np.array(per_latent), {"mean_gain_on_active": gains}, Counter(logprobs=len(pairs))
    )


def surprisal_baseline(backend: Backend, cases: Sequence[Rendered]) -> list[np.ndarray]:
    """Each example's mean log-probability after the neutral description (once per SAE)."""
    pairs = [P.surprisal_pair(None, t) for c in cases for t in c.active_plain + c.silent_plain]
    logps = np.array([r.mean_logprob for r in backend.text_logprob(pairs)])
    out, start = [], 0
    for case in cases:
        n = len(case.labels)
        out.append(logps[start : start + n])
        start += n
    return out


def embedding(
    embedder: SentenceEmbedder, cases: Sequence[Rendered], explanations: Sequence[str]
) -> Scored:
    """Cosine similarity of explanation and example under a sentence-embedding model."""
    queries = embedder.embed(list(explanations))
    per_latent = []
    for i, case in enumerate(cases):
        docs = embedder.embed(case.active_plain + case.silent_plain)
        similarity = (docs @ queries[i]).to(torch.float64).numpy()
        per_latent.append(am.auroc(similarity, case.labels))
    return Scored(np.array(per_latent), {}, Counter(embedding=sum(len(c.labels) for c in cases)))


def saebench(backend: Backend, cases: Sequence[Rendered], explanations: Sequence[str]) -> Scored:
    """SAEBench's protocol: 14 shuffled examples (2 strongest, 2 importance-sampled, 10
    silent), the model lists those it thinks activate; accuracy over the 14. An answer that
    cannot be read counts as "none" (and is counted as failed)."""
    chats = [P.saebench_chat(e, c.saebench_texts) for c, e in zip(cases, explanations, strict=True)]
    answers = backend.generate(chats, SAEBENCH_TOKENS)
    per_latent, balanced, floors, methods = [], [], [], Counter()
    unread = None
    for case, answer in zip(cases, answers, strict=True):
        n = len(case.saebench_texts)
        predicted = P.parse_index_list(answer.text, n)
        methods["parsed" if predicted is not None else "failed"] += 1
        if predicted is None and unread is None:
            unread = answer.text
        chosen = predicted or []
        per_latent.append(am.saebench_accuracy(chosen, case.saebench_positives, n))
        balanced.append(am.saebench_balanced(chosen, case.saebench_positives, n))
        floors.append(am.none_floor(len(case.saebench_positives), n))
    return Scored(
        np.array(per_latent),
        {"balanced_accuracy": balanced, "none_floor": floors},
        methods,
        unread,
    )
