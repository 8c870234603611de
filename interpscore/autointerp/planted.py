"""Known answers for an explainer/scorer model: latents planted on real text.

Two latents are defined by rule on the bundled corpus, so their correct explanations are
known: one is active on every token that holds a digit, one on the token " Python". Each is
scored with its correct explanation and with a wrong one by every scorer; a model fit to
judge explanations scores the correct ones high and the wrong ones near 0.5. The tests use
this with the embedded SmolLM2; ``python -m interpscore.autointerp.planted`` prints the
table for any in-process model or server, to check a scorer model before trusting it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from interpscore.autointerp import scorers as S
from interpscore.autointerp.examples import Example
from interpscore.llm.backends import Backend
from interpscore.llm.embeddings import SentenceEmbedder
from interpscore.subjects.data import TokenWindow, iter_texts, pack_tokens

LATENTS = ("digits", "python")
CORRECT = {"digits": "numbers and digits", "python": "the word Python"}
WRONG = {"digits": "animals and pets", "python": "colors of flowers"}


def planted_case(
    window: TokenWindow, fires: Callable[[int], bool], n_test: int, width: int, rng: Any
) -> S.Case:
    """A latent that is 1 on the tokens ``fires`` picks and 0 elsewhere; explain examples
    from even sequences, test examples from odd ones."""
    active: list[Example] = []
    silent: list[Example] = []
    for row in range(window.n_sequences):
        for start in range(1, window.context_len - width + 1, width):
            tokens = window.tokens[row, start : start + width].tolist()
            acts = np.array([1.0 if fires(t) else 0.0 for t in tokens])
            (active if acts.any() else silent).append(Example(row, start, tokens, acts))

    def pick(examples: list[Example], n: int, odd: int) -> list[Example]:
        pool = [e for e in examples if e.row % 2 == odd]
        return [pool[i] for i in rng.choice(len(pool), n, replace=False)]

    return S.Case(
        latent=0,
        explain=pick(active, 8, 0),
        active=pick(active, n_test, 1),
        silent=pick(silent, n_test, 1),
        strongest=pick(active, 2, 1),
        weighted=pick(active, 2, 1),
        random=pick(silent, S.SAEBENCH_RANDOM, 1),
        fires=(0, 0),
    )


def planted_cases(
    tokenizer: Any, n_test: int = 60, width: int = 16, seed: int = 0
) -> list[S.Rendered]:
    """The digit latent and the " Python" latent, rendered for every scorer."""
    window = pack_tokens(tokenizer, iter_texts("bundled"), 128 * 400, 128, "bundled")
    python = tokenizer.encode(" Python", add_special_tokens=False)[0]
    rng = np.random.default_rng(seed)
    rules = {
        "digits": lambda t: any(c.isdigit() for c in tokenizer.decode([t])),
        "python": lambda t: t == python,
    }
    cases = [planted_case(window, rules[name], n_test, width, rng) for name in LATENTS]
    return [S.render(tokenizer, case, rng) for case in cases]


def known_answers(
    backend: Backend,
    embedder: SentenceEmbedder | None,
    cases: list[S.Rendered],
    scorers: tuple[str, ...],
) -> dict[str, dict[str, list[float]]]:
    """{scorer: {"correct": [digits, python], "wrong": [digits, python]}}."""
    out: dict[str, dict[str, list[float]]] = {}
    baseline = S.surprisal_baseline(backend, cases) if "surprisal" in scorers else None
    for scorer in scorers:
        out[scorer] = {}
        for label, table in (("correct", CORRECT), ("wrong", WRONG)):
            explanations = [table[name] for name in LATENTS]
            if scorer == "surprisal":
                scored = S.surprisal(backend, cases, explanations, baseline)  # type: ignore[arg-type]
            elif scorer == "embedding":
                scored = S.embedding(embedder, cases, explanations)  # type: ignore[arg-type]
            else:
                scored = getattr(S, scorer)(backend, cases, explanations)
            out[scorer][label] = [round(float(v), 3) for v in scored.per_latent]
    return out


def main(argv: list[str] | None = None) -> int:
    from interpscore.llm.backends import TransformersBackend
    from interpscore.llm.http import OpenAICompatibleBackend
    from interpscore.subjects.models import load_model, parse_model_ref

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--server", default=None, help="OpenAI-compatible base URL")
    parser.add_argument("--tokenizer-model", default="smollm2-135m", help="text is tokenized so")
    parser.add_argument("--scorers", default="detection,fuzzing,surprisal,embedding,saebench")
    parser.add_argument("--examples", type=int, default=60)
    args = parser.parse_args(argv)
    tokenizer_lm = load_model(parse_model_ref(args.tokenizer_model))
    if args.server:
        backend: Backend = OpenAICompatibleBackend(args.server, args.model)
    else:
        lm = load_model(parse_model_ref(args.model))
        backend = TransformersBackend(lm.model, lm.tokenizer, args.model)
    scorers = tuple(args.scorers.split(","))
    embedder = SentenceEmbedder("all-minilm-l6-v2") if "embedding" in scorers else None
    cases = planted_cases(tokenizer_lm.tokenizer, args.examples)
    table = known_answers(backend, embedder, cases, scorers)
    print("| scorer | digits, correct | digits, wrong | Python, correct | Python, wrong |")
    print("|---|---|---|---|---|")
    for scorer, row in table.items():
        (dc, pc), (dw, pw) = row["correct"], row["wrong"]
        print(f"| {scorer} | {dc:.3f} | {dw:.3f} | {pc:.3f} | {pw:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
