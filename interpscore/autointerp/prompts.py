"""What the explainer and the scorers are shown, and how their answers are read.

Examples are rendered token by token; tokens where the latent is active above
``MARK_FRACTION`` of the example's peak are wrapped as ``<<tok>>``, consecutive ones
together (delphi's marking). Newlines show as ``↵`` so an example stays on one line.
Each prompt's answer format and its parser live side by side here; the parsers are pure
functions, checked by hand-written answers in the tests.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from interpscore.autointerp.examples import Example
from interpscore.llm.backends import Chat

MARK_FRACTION = 0.3
NEUTRAL_DESCRIPTION = "Various unrelated sentences."
NO_EXPLANATION = "Explanation could not be parsed."
YES_NO = ("Yes", "No")


def token_strings(tokenizer: Any, tokens: Sequence[int]) -> list[str]:
    """Each token's text (special tokens as empty strings, newlines as ↵)."""
    special = set(tokenizer.all_special_ids)
    return [
        "" if t in special else tokenizer.decode([t]).replace("\n", "↵").replace("\ufffd", "")
        for t in tokens
    ]


def marked(pieces: Sequence[str], mask: Sequence[bool]) -> str:
    """The text with the masked tokens wrapped as <<...>>, runs of them together."""
    out, run = [], []
    for piece, on in zip(pieces, mask, strict=True):
        if on:
            run.append(piece)
            continue
        if run:
            out.append(f"<<{''.join(run)}>>")
            run = []
        out.append(piece)
    if run:
        out.append(f"<<{''.join(run)}>>")
    return "".join(out).strip()


def active_mask(example: Example) -> np.ndarray:
    """Tokens where the latent is above MARK_FRACTION of the example's peak."""
    peak = example.peak
    return (example.acts > MARK_FRACTION * peak) if peak > 0 else np.zeros(len(example.acts), bool)


def render(tokenizer: Any, example: Example, mark: np.ndarray | None = None) -> str:
    """An example as text, with ``mark`` (default: its active tokens) wrapped."""
    pieces = token_strings(tokenizer, example.tokens)
    if mark is None:
        return "".join(pieces).strip()
    return marked(pieces, list(mark))


def wrongly_marked(example: Example, n_marks: int, rng: np.random.Generator) -> np.ndarray:
    """Marks on ``n_marks`` random tokens of an example (the fuzzing scorer's negatives)."""
    mask = np.zeros(len(example.tokens), dtype=bool)
    mask[rng.choice(len(mask), min(n_marks, len(mask)), replace=False)] = True
    return mask


def top_tokens_explanation(tokenizer: Any, examples: Sequence[Example], n: int = 3) -> str:
    """A control explanation from the activating tokens alone: "the tokens X, Y, Z" by
    activation mass, no language model involved."""
    mass: Counter[str] = Counter()
    for ex in examples:
        for piece, act, on in zip(
            token_strings(tokenizer, ex.tokens), ex.acts, active_mask(ex), strict=True
        ):
            if on and piece.strip():
                mass[piece.strip()] += float(act)
    names = [f'"{token}"' for token, _ in mass.most_common(n)]
    return "the tokens " + ", ".join(names) if names else NO_EXPLANATION


# Explanation ------------------------------------------------------------------------------

EXPLAIN_SYSTEM = (
    "You are a meticulous AI researcher studying one feature of a language model. You see "
    "text excerpts; the tokens where the feature is active are marked like <<this>>. Say in "
    "one short phrase what the marked tokens have in common (a word, a topic, a grammatical "
    "role). Reply with the phrase only."
)


def explain_chat(texts: Sequence[str]) -> Chat:
    body = "\n".join(f"{i}. {t}" for i, t in enumerate(texts, 1))
    return Chat(EXPLAIN_SYSTEM, f"Excerpts:\n{body}\n\nWhat do the marked tokens have in common?")


_LABEL = re.compile(r"^\s*(\[?explanation\]?|answer|phrase|feature)\s*:\s*", re.IGNORECASE)


def parse_explanation(text: str) -> str | None:
    """The first non-empty line that is not a preamble (ending in a colon), without a
    leading label, list marker, quotes or final period; None when nothing usable is left
    (empty, or longer than 200 characters)."""
    for line in text.splitlines():
        if line.rstrip().endswith(":"):
            continue
        line = _LABEL.sub("", line).strip().strip("`*").strip()
        line = re.sub(r"^([-*•]|\d+[.)])\s+", "", line)
        if len(line) > 1 and line[0] == line[-1] and line[0] in "\"'":
            line = line[1:-1].strip()
        line = re.sub(r"^(this|the) (feature|neuron) (activates|fires) on\s+", "", line, flags=re.I)
        line = line.rstrip(".").strip()
        if line:
            return line if len(line) <= 200 else None
    return None


# Detection and fuzzing --------------------------------------------------------------------

DETECTION_SYSTEM = (
    "A feature of a language model is described as: {explanation}\n"
    "Is the feature active anywhere in the text the user gives? Answer Yes or No."
)
FUZZING_SYSTEM = (
    "A feature of a language model is described as: {explanation}\n"
    "In the text the user gives, some tokens are marked like <<this>>. Are the marked tokens "
    "ones this feature is active on? Answer Yes or No."
)


def detection_chat(explanation: str, text: str) -> Chat:
    return Chat(DETECTION_SYSTEM.format(explanation=explanation), f"Text: {text}")


def fuzzing_chat(explanation: str, marked_text: str) -> Chat:
    return Chat(FUZZING_SYSTEM.format(explanation=explanation), f"Text: {marked_text}")


# Surprisal --------------------------------------------------------------------------------


def surprisal_pair(explanation: str | None, text: str) -> tuple[str, str]:
    """(prefix, text): the text after a description, or after the neutral one."""
    description = explanation if explanation is not None else NEUTRAL_DESCRIPTION
    return f"Description: {description}\nText:", f" {text}"


# SAEBench ---------------------------------------------------------------------------------

SAEBENCH_SYSTEM = (
    "We're studying neurons in a neural network. Each neuron activates on some particular "
    "word, words, substring or concept in a short document. You will be given a short "
    "explanation of what this neuron activates on, and then be shown {n} example sequences "
    "in random order. Return a comma-separated list of the examples where you think the "
    'neuron activates at least once, for example "2, 5, 7". If you think it activates on '
    'none of them, answer "None". Reply with nothing else.'
)


def saebench_chat(explanation: str, texts: Sequence[str]) -> Chat:
    body = "\n".join(f"{i}. {t}" for i, t in enumerate(texts, 1))
    return Chat(
        SAEBENCH_SYSTEM.format(n=len(texts)),
        f"Here is the explanation: this neuron fires on {explanation}.\n\n"
        f"Here are the examples:\n\n{body}",
    )


def parse_index_list(text: str, n: int) -> list[int] | None:
    """SAEBench's reading of an answer list: "and" as a comma, "None" as empty, 1-based
    numbers; None (unparseable) when anything else is in it. Out-of-range numbers are
    dropped, as SAEBench ignores them."""
    cleaned = text.strip().replace(" and ", ",").replace("None", "").replace("none", "")
    cleaned = cleaned.strip().strip(".")
    if not cleaned:
        return []
    parts = [p.strip() for p in cleaned.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        return None
    return sorted({int(p) for p in parts if 1 <= int(p) <= n})
