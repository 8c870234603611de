"""Known answers for autointerp with the embedded SmolLM2-135M-Instruct, on latents planted
on real text (one fires on every token holding a digit, one on the token " Python"), scored
with a correct and a wrong explanation (see :mod:`interpscore.autointerp.planted`).

Asserted: the embedding scorer gives both correct explanations an AUROC of at least 0.8,
well above the wrong ones; the surprisal scorer ranks the token latent's correct explanation
clearly above a wrong one, and wrong explanations score about 0.5. Not asserted, because it
does not hold with this model (measured, in the README): surprisal reaches 0.75 on the token
latent, not 0.8, and nothing on the digit latent; detection, fuzzing and SAEBench's protocol
stay at chance or at the "none" floor. SmolLM2-135M is too small to judge explanations.
"""

from __future__ import annotations

import pytest

from interpscore.autointerp.planted import known_answers, planted_cases
from interpscore.llm.backends import TransformersBackend
from interpscore.llm.embeddings import SentenceEmbedder


@pytest.fixture(scope="module")
def table():
    from interpscore.subjects.models import load_model

    lm = load_model("smollm2-135m")
    backend = TransformersBackend(lm.model, lm.tokenizer, "smollm2-135m")
    cases = planted_cases(lm.tokenizer, n_test=60)
    return known_answers(
        backend, SentenceEmbedder("all-minilm-l6-v2"), cases, ("surprisal", "embedding")
    )


def test_surprisal_tells_the_token_latents_explanation_from_a_wrong_one(table):
    (_, python), (digits_wrong, python_wrong) = (
        table["surprisal"]["correct"],
        table["surprisal"]["wrong"],
    )
    assert python - python_wrong >= 0.15, table
    assert abs(python_wrong - 0.5) <= 0.15, table
    assert abs(digits_wrong - 0.5) <= 0.15, table


def test_embedding_knows_both_latents(table):
    right, wrong = table["embedding"]["correct"], table["embedding"]["wrong"]
    assert min(right) >= 0.8, table
    assert all(r - w >= 0.25 for r, w in zip(right, wrong, strict=True)), table
